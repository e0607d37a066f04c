//! Application functions for accounts: register, log in, refresh, log out, profile, password.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use domain::FieldError;
use domain::email::{EmailReservationEvent, reservation_stream};
use domain::ids::UserId;
use domain::user::{
    ChangePassword, RegisterUser, Role, UpdateProfile, User, UserCommand, UserError,
    normalize_email, validate_password,
};
use event_store::application::{Pin, Source, Step, stamp};
use event_store::{ExpectedVersion, Position, StreamAppend};
use runtime::http_headers::rfc3339;
use runtime::{ApiError, Authenticated, ProblemType};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::CommandState;
use crate::execute::{Plan, SideWrite, WriteAnswer, failure};
use crate::http::RequestMeta;
use crate::load::{Loaded, load};
use crate::passwords::Lane;
use crate::tokens::{self, RefreshToken, Rotation};

/// The same answer for an unknown e-mail, a wrong password and a deactivated account.
const BAD_LOGIN: &str = "the e-mail address or password is wrong";

pub fn user_error(e: UserError) -> ApiError {
    match e {
        UserError::Validation(errors) => ApiError::invalid("the request is invalid", errors),
        UserError::NotFound => ApiError::not_found("no such user"),
        UserError::AlreadyRegistered => {
            ApiError::conflict(ProblemType::Conflict, "the user is registered already")
        }
        UserError::Deactivated => {
            ApiError::conflict(ProblemType::Conflict, "the account is deactivated")
        }
    }
}

fn email_stream(email: &str) -> String {
    reservation_stream(&hex::encode(Sha256::digest(email.as_bytes())))
}

fn user_json(user: &User) -> Value {
    json!({"id": user.id, "email": user.email, "name": user.name, "role": user.role})
}

fn profile_json(user: &User) -> Value {
    json!({
        "id": user.id, "email": user.email, "name": user.name, "role": user.role,
        "created_at": rfc3339(user.created_at), "updated_at": rfc3339(user.updated_at),
    })
}

/// The step of a command on the caller's own user stream.
fn user_step<'a>(state: &'a CommandState, meta: &RequestMeta, user: Uuid) -> Step<'a, User> {
    Step {
        stream: UserId::from_uuid(user).stream(),
        source: Source::Fold,
        pin: Pin::Latest,
        limits: &state.settings.limits,
        metadata: meta.metadata(Some(user)),
    }
}

/// The token fields of an answer.
fn token_body(
    state: &CommandState,
    access: String,
    refresh: &RefreshToken,
) -> serde_json::Map<String, Value> {
    let mut body = serde_json::Map::new();
    body.insert("access_token".into(), Value::String(access));
    body.insert("refresh_token".into(), Value::String(refresh.plain.clone()));
    body.insert("token_type".into(), Value::String("Bearer".into()));
    body.insert("expires_in".into(), json!(state.jwt.ttl().as_secs()));
    body
}

pub struct Registration {
    pub email: String,
    pub password: String,
    pub name: String,
}

pub async fn register(
    state: &CommandState,
    meta: &RequestMeta,
    input: Registration,
) -> Result<HttpResponse, ApiError> {
    // Before any work: every registration costs an argon2 hash and leaves an account behind.
    state
        .register_limiter
        .check(&meta.client_ip)
        .map_err(ApiError::rate_limited)?;
    let limits = &state.settings.limits;
    // The password is checked here, as it never enters a command; every other rule of
    // registration is the domain's, decided on the address as given.
    let mut errors: Vec<FieldError> = Vec::new();
    if let Err(e) = validate_password(&input.password, limits) {
        errors.push(e);
    }
    let user_id = UserId::from_uuid(Uuid::now_v7());
    let now = OffsetDateTime::now_utc();
    let command = UserCommand::Register(RegisterUser {
        user_id,
        email: input.email.clone(),
        name: input.name.clone(),
        role: Role::Member,
        at: now,
    });
    let events = match User::default().decide(&command, limits) {
        Ok(events) if errors.is_empty() => events,
        Ok(_) => return Err(ApiError::invalid("the request is invalid", errors)),
        Err(UserError::Validation(mut more)) => {
            more.extend(errors);
            return Err(ApiError::invalid("the request is invalid", more));
        }
        Err(other) => return Err(user_error(other)),
    };
    let mut user = User::default();
    for e in &events {
        user.evolve(e);
    }
    // The address as the domain normalised it names the reservation stream and the credentials.
    let email = user.email.clone();
    let hash = state.passwords.hash(Lane::Other, input.password).await?;
    let refresh = RefreshToken::generate();
    let access = state.jwt.issue(user_id.as_uuid(), 1, now)?;
    let reservation = EmailReservationEvent::EmailReserved { user_id };
    let email_stream = email_stream(&email);
    let stream = user_id.stream();
    let metadata = meta.metadata(Some(user_id.as_uuid()));
    let make_plan = async || {
        let plan = Plan::new(stream.clone(), 0, Position::START)
            .append(StreamAppend::new(
                email_stream.clone(),
                ExpectedVersion::NoStream,
                stamp(std::slice::from_ref(&reservation), &metadata, None),
            ))
            .append(StreamAppend::new(
                stream.clone(),
                ExpectedVersion::NoStream,
                stamp(&events, &metadata, None),
            ))
            .side_write(SideWrite::new(
                "INSERT INTO credentials (user_id, email, password_hash, security_version, role, active)
                 VALUES ($1, $2, $3, 1, 'member', true)",
                vec![Box::new(user_id.as_uuid()), Box::new(email.clone()), Box::new(hash.clone())],
            ))
            .side_write(refresh.insert(Uuid::now_v7(), user_id.as_uuid(), now, state.settings.refresh_token_ttl))
            .unique(
                email_stream.clone(),
                ProblemType::EmailTaken,
                "an account with this e-mail address exists already",
            );
        let mut body = token_body(state, access.clone(), &refresh);
        body.insert("user".into(), user_json(&user));
        let id = user_id;
        Ok(plan.reply(move |version, position| {
            let mut body = body.clone();
            body.insert("version".into(), json!(version));
            body.insert("position".into(), json!(position.to_token()));
            WriteAnswer {
                status: StatusCode::CREATED,
                body: Some(Value::Object(body)),
                location: Some(format!("/api/v1/auth/profile#{id}")),
                version,
                position,
            }
        }))
    };
    state.executor.run(None, &[], Pin::Latest, make_plan).await
}

pub async fn login(
    state: &CommandState,
    meta: &RequestMeta,
    email: &str,
    password: String,
) -> Result<HttpResponse, ApiError> {
    state
        .ip_limiter
        .check(&format!("ip:{}", meta.client_ip))
        .map_err(ApiError::rate_limited)?;
    let email = normalize_email(email, &state.settings.limits)
        .map_err(|e| ApiError::invalid(e.message.clone(), vec![e]))?;
    // Keyed on the account *and* the client: guesses from elsewhere exhaust their own bucket and
    // never lock the owner out; the per-IP limit above bounds each guesser.
    state
        .account_limiter
        .check(&format!("account:{email}|{}", meta.client_ip))
        .map_err(ApiError::rate_limited)?;
    let client = state.pool.get().await?;
    let row = client
        .query_opt(
            "SELECT user_id, password_hash, security_version, active FROM credentials WHERE email = $1",
            &[&email],
        )
        .await?;
    let (user_id, hash, sv, active) = match &row {
        Some(row) => (
            Some(row.try_get::<_, Uuid>(0)?),
            Some(row.try_get::<_, String>(1)?),
            row.try_get::<_, i64>(2)?,
            row.try_get::<_, bool>(3)?,
        ),
        None => (None, None, 0, false),
    };
    drop(client);
    let verified = state.passwords.verify(Lane::Login, password, hash).await?;
    let user_id = match user_id {
        Some(id) if verified && active => id,
        _ => return Err(ApiError::unauthorized(BAD_LOGIN)),
    };
    let loaded: Loaded<User> = load(&state.store, &UserId::from_uuid(user_id).stream()).await?;
    let now = OffsetDateTime::now_utc();
    let refresh = RefreshToken::generate();
    issue_if_unchanged(state, user_id, sv, &refresh, now).await?;
    let access = state.jwt.issue(user_id, sv, now)?;
    let mut body = token_body(state, access, &refresh);
    body.insert("user".into(), user_json(&loaded.state));
    Ok(WriteAnswer {
        status: StatusCode::OK,
        body: Some(Value::Object(body)),
        location: None,
        version: loaded.version,
        position: loaded.position,
    }
    .into_response())
}

/// Stores a login's refresh token only if the credentials still have the security version read
/// before the (slow) password check. `FOR SHARE` holds the row until the token commits, and a
/// password change, role change or deactivation updates that row before it revokes tokens: either
/// the change commits first and this login sees the new version and is refused, or this token
/// commits first and the change's revocation (a later statement) sees and revokes it. A login that
/// started before a change can never outlive it.
async fn issue_if_unchanged(
    state: &CommandState,
    user_id: Uuid,
    read_version: i64,
    refresh: &RefreshToken,
    now: OffsetDateTime,
) -> Result<(), ApiError> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let current = tx
        .query_opt(
            "SELECT security_version, active FROM credentials WHERE user_id = $1 FOR SHARE",
            &[&user_id],
        )
        .await?;
    let unchanged = match current {
        Some(row) => row.try_get::<_, i64>(0)? == read_version && row.try_get::<_, bool>(1)?,
        None => false,
    };
    if !unchanged {
        // The password (or the account) changed while this login was being checked: the password
        // it was checked against is no longer the account's.
        tracing::info!(%user_id, "login refused: the credentials changed during the check");
        return Err(ApiError::unauthorized(BAD_LOGIN));
    }
    refresh
        .insert(
            Uuid::now_v7(),
            user_id,
            now,
            state.settings.refresh_token_ttl,
        )
        .run(&tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn refresh(state: &CommandState, refresh_token: &str) -> Result<HttpResponse, ApiError> {
    match tokens::rotate(&state.pool, refresh_token, state.settings.refresh_token_ttl).await? {
        Rotation::Rotated {
            user_id,
            security_version,
            successor,
        } => {
            let access = state
                .jwt
                .issue(user_id, security_version, OffsetDateTime::now_utc())?;
            Ok(HttpResponse::Ok().json(Value::Object(token_body(state, access, &successor))))
        }
        Rotation::Refused => Err(ApiError::unauthorized(
            "the refresh token is invalid, expired or revoked",
        )),
    }
}

pub async fn logout(state: &CommandState, refresh_token: &str) -> Result<HttpResponse, ApiError> {
    tokens::revoke_family_of(&state.pool, refresh_token).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn update_profile(
    state: &CommandState,
    meta: &RequestMeta,
    caller: &Authenticated,
    name: String,
) -> Result<HttpResponse, ApiError> {
    let step = user_step(state, meta, caller.user_id);
    let make_plan = async || {
        let decided = step
            .decide(&state.store, |_| {
                Ok(UserCommand::UpdateProfile(UpdateProfile {
                    name: name.clone(),
                    at: OffsetDateTime::now_utc(),
                }))
            })
            .await
            .map_err(|f| failure(f, user_error))?;
        let after = decided.after().clone();
        Ok(
            Plan::decided(step.stream.clone(), decided).reply(move |version, position| {
                let mut body = profile_json(&after);
                body["version"] = json!(version);
                body["position"] = json!(position.to_token());
                WriteAnswer {
                    status: StatusCode::OK,
                    body: Some(body),
                    location: None,
                    version,
                    position,
                }
            }),
        )
    };
    state.executor.run(None, &[], step.pin, make_plan).await
}

pub async fn change_password(
    state: &CommandState,
    meta: &RequestMeta,
    caller: &Authenticated,
    current_password: String,
    new_password: String,
) -> Result<HttpResponse, ApiError> {
    let limits = &state.settings.limits;
    state
        .account_limiter
        .check(&format!("password:{}", caller.user_id))
        .map_err(ApiError::rate_limited)?;
    if let Err(e) = validate_password(&new_password, limits) {
        return Err(ApiError::invalid(
            "the new password is invalid",
            vec![FieldError::new("/new_password", e.message)],
        ));
    }
    let client = state.pool.get().await?;
    let row = client
        .query_opt(
            "SELECT password_hash FROM credentials WHERE user_id = $1",
            &[&caller.user_id],
        )
        .await?
        .ok_or_else(|| ApiError::unauthorized("the access token has been revoked"))?;
    let hash: String = row.try_get(0)?;
    drop(client);
    if !state
        .passwords
        .verify(Lane::Other, current_password, Some(hash))
        .await?
    {
        return Err(ApiError::invalid_field(
            "/current_password",
            "is not the current password",
        ));
    }
    let new_hash = state.passwords.hash(Lane::Other, new_password).await?;
    let step = user_step(state, meta, caller.user_id);
    let make_plan = async || {
        let now = OffsetDateTime::now_utc();
        let decided = step
            .decide(&state.store, |_| {
                Ok(UserCommand::ChangePassword(ChangePassword { at: now }))
            })
            .await
            .map_err(|f| failure(f, user_error))?;
        let client = state.pool.get().await?;
        let sv: i64 = client
            .query_one(
                "SELECT security_version FROM credentials WHERE user_id = $1",
                &[&caller.user_id],
            )
            .await?
            .try_get(0)?;
        let refresh = RefreshToken::generate();
        let access = state.jwt.issue(caller.user_id, sv + 1, now)?;
        let body = token_body(state, access, &refresh);
        Ok(Plan::decided(step.stream.clone(), decided)
            // The version check makes a concurrent change fail instead of skipping a bump.
            // The bump comes before the revocation: it takes the row lock that a login in
            // flight holds `FOR SHARE` while it stores its token (see `issue_if_unchanged`),
            // so the revocation below sees every token such a login stored.
            .side_write(SideWrite::new(
                "UPDATE credentials SET password_hash = $2, security_version = security_version + 1,
                        updated_at = now()
                 WHERE user_id = $1",
                vec![Box::new(caller.user_id), Box::new(new_hash.clone())],
            ))
            .side_write(tokens::revoke_all_of(caller.user_id))
            .side_write(refresh.insert(Uuid::now_v7(), caller.user_id, now, state.settings.refresh_token_ttl))
            .reply(move |version, position| {
                let mut body = body.clone();
                body.insert("version".into(), json!(version));
                body.insert("position".into(), json!(position.to_token()));
                WriteAnswer {
                    status: StatusCode::OK,
                    body: Some(Value::Object(body)),
                    location: None,
                    version,
                    position,
                }
            }))
    };
    state.executor.run(None, &[], step.pin, make_plan).await
}
