//! HTTP handlers of `/auth/*`: request bodies in, one application function each, answers out. The
//! `AuthWrite` extractor refuses an `Idempotency-Key` before any work.

use actix_web::{HttpResponse, post, put, web};
use runtime::auth::FreshlyAuthenticated;
use runtime::{ApiError, Authenticated, Json, openapi};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::CommandState;
use crate::http::AuthWrite;
use crate::users::{self, Registration};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    #[schema(schema_with = openapi::email)]
    pub email: String,
    #[schema(schema_with = openapi::password)]
    pub password: String,
    #[schema(schema_with = openapi::display_name)]
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(schema_with = openapi::email)]
    pub email: String,
    #[schema(schema_with = openapi::given_password)]
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdate {
    #[schema(schema_with = openapi::display_name)]
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    #[schema(schema_with = openapi::given_password)]
    pub current_password: String,
    #[schema(schema_with = openapi::password)]
    pub new_password: String,
}

/// Register a user: the e-mail reservation and `UserRegistered` are one atomic append.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, description = "Registered: the user, a token pair, version and position",
                body = openapi::Registered, headers(("Location"), ("ETag"), ("Backforge-Position"))),
              (status = 409, description = "E-mail address already registered"),
              (status = 422, description = "Invalid input, or an Idempotency-Key (not accepted on /auth)"),
              (status = 429, description = "Too many registrations from this address")))]
#[post("/auth/register")]
pub async fn register(
    state: web::Data<CommandState>,
    write: AuthWrite<Json<RegisterRequest>>,
) -> Result<HttpResponse, ApiError> {
    let AuthWrite { meta, body } = write;
    let RegisterRequest {
        email,
        password,
        name,
    } = body.into_inner();
    users::register(
        &state,
        &meta,
        Registration {
            email,
            password,
            name,
        },
    )
    .await
}

/// Log in with e-mail and password; rate-limited per client IP and per account.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, description = "The user and a token pair", body = openapi::LoggedIn,
                headers(("ETag"), ("Backforge-Position"))),
              (status = 401, description = "Wrong e-mail or password, or a deactivated account"),
              (status = 429, description = "Too many attempts for this address or account")))]
#[post("/auth/login")]
pub async fn login(
    state: web::Data<CommandState>,
    write: AuthWrite<Json<LoginRequest>>,
) -> Result<HttpResponse, ApiError> {
    let AuthWrite { meta, body } = write;
    let LoginRequest { email, password } = body.into_inner();
    users::login(&state, &meta, &email, password).await
}

/// Trade a refresh token for a new pair; the old one is spent, and reusing it revokes its family.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, description = "A new token pair", body = openapi::TokenPair),
              (status = 401, description = "Invalid, spent or revoked token")))]
#[post("/auth/refresh")]
pub async fn refresh(
    state: web::Data<CommandState>,
    write: AuthWrite<Json<RefreshRequest>>,
) -> Result<HttpResponse, ApiError> {
    users::refresh(&state, &write.body.value.refresh_token).await
}

/// Revoke the refresh token's whole family.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204, description = "Logged out: the token's whole family is revoked")))]
#[post("/auth/logout")]
pub async fn logout(
    state: web::Data<CommandState>,
    write: AuthWrite<Json<RefreshRequest>>,
) -> Result<HttpResponse, ApiError> {
    users::logout(&state, &write.body.value.refresh_token).await
}

/// Change the caller's display name.
#[utoipa::path(put, path = "/api/v1/auth/profile", tag = "auth", request_body = ProfileUpdate,
    security(("bearer" = [])),
    responses((status = 200, description = "The profile with version and position", body = openapi::ProfileUpdated,
                headers(("ETag"), ("Backforge-Position"))),
              (status = 409, description = "Changed concurrently"),
              (status = 422, description = "Invalid name, or an Idempotency-Key (not accepted on /auth)")))]
#[put("/auth/profile")]
pub async fn update_profile(
    state: web::Data<CommandState>,
    caller: Authenticated,
    write: AuthWrite<Json<ProfileUpdate>>,
) -> Result<HttpResponse, ApiError> {
    let AuthWrite { meta, body } = write;
    users::update_profile(&state, &meta, &caller, body.into_inner().name).await
}

/// Change the password: every older access token and refresh family stops working.
#[utoipa::path(post, path = "/api/v1/auth/change-password", tag = "auth", request_body = ChangePasswordRequest,
    security(("bearer" = [])),
    responses((status = 200, description = "A new token pair, version and position", body = openapi::PasswordChanged,
                headers(("ETag"), ("Backforge-Position"))),
              (status = 409, description = "Changed concurrently"),
              (status = 422, description = "Wrong current password, an invalid new one, or an Idempotency-Key"),
              (status = 429, description = "Too many attempts")))]
#[post("/auth/change-password")]
pub async fn change_password(
    state: web::Data<CommandState>,
    caller: FreshlyAuthenticated,
    write: AuthWrite<Json<ChangePasswordRequest>>,
) -> Result<HttpResponse, ApiError> {
    let AuthWrite { meta, body } = write;
    let ChangePasswordRequest {
        current_password,
        new_password,
    } = body.into_inner();
    let FreshlyAuthenticated(caller) = caller;
    let answer =
        users::change_password(&state, &meta, &caller, current_password, new_password).await;
    // Committed or not, this process's cached security version may now be old: drop it before
    // answering, so the old tokens stop working here at once.
    state.security.evict(caller.user_id);
    answer
}
