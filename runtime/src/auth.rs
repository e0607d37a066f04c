//! Access tokens: HS256 JWTs with required claims, and the extractor that checks them against the
//! caller's current security version on every request.

use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use async_trait::async_trait;
use domain::user::Role;
use futures::future::LocalBoxFuture;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::problem::ApiError;
use crate::settings::Settings;

/// The claims of an access token. `sv` is the user's security version when the token was issued:
/// a password change, role change or deactivation bumps it and so kills every older token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub sub: Uuid,
    pub exp: i64,
    pub iat: i64,
    pub iss: String,
    pub aud: String,
    pub jti: Uuid,
    pub sv: i64,
}

/// Signs and verifies access tokens.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl JwtKeys {
    pub fn new(settings: &Settings) -> Self {
        let secret = settings.jwt_secret.expose().as_bytes();
        // HS256 only: a token naming any other algorithm (including `none`) is refused.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&settings.jwt_issuer]);
        validation.set_audience(&[&settings.jwt_audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = 5;
        validation.validate_exp = true;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: settings.jwt_issuer.clone(),
            audience: settings.jwt_audience.clone(),
            ttl: settings.access_token_ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Issues a token for `user_id` at security version `sv`.
    pub fn issue(&self, user_id: Uuid, sv: i64, now: OffsetDateTime) -> Result<String, ApiError> {
        let iat = now.unix_timestamp();
        let claims = AccessClaims {
            sub: user_id,
            iat,
            exp: iat + self.ttl.as_secs() as i64,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            jti: Uuid::new_v4(),
            sv,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(ApiError::internal)
    }

    /// Checks signature, algorithm, issuer, audience and expiry.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, ApiError> {
        jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|_| ApiError::unauthorized("the access token is invalid or expired"))
    }
}

/// What the server currently knows about a user's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityState {
    pub security_version: i64,
    pub role: Role,
    pub active: bool,
}

/// Looks up a user's security state; the command side owns it (the `credentials` table).
#[async_trait]
pub trait SecurityLookup: Send + Sync {
    /// The state as every request checks it (a cache may answer).
    async fn security_state(&self, user_id: Uuid) -> Result<Option<SecurityState>, ApiError>;

    /// The state read from its source now, never from a cache: for the writes that change
    /// credentials themselves (change-password).
    async fn current_security_state(
        &self,
        user_id: Uuid,
    ) -> Result<Option<SecurityState>, ApiError> {
        self.security_state(user_id).await
    }
}

/// Reads the command side's `credentials` table.
pub struct PgSecurityLookup {
    pool: deadpool_postgres::Pool,
}

impl PgSecurityLookup {
    pub fn new(pool: deadpool_postgres::Pool) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl SecurityLookup for PgSecurityLookup {
    async fn security_state(&self, user_id: Uuid) -> Result<Option<SecurityState>, ApiError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "SELECT security_version, role, active FROM credentials WHERE user_id = $1",
            )
            .await?;
        let Some(row) = client.query_opt(&stmt, &[&user_id]).await? else {
            return Ok(None);
        };
        let role: String = row.try_get(1)?;
        Ok(Some(SecurityState {
            security_version: row.try_get(0)?,
            role: if role == "admin" {
                Role::Admin
            } else {
                Role::Member
            },
            active: row.try_get(2)?,
        }))
    }
}

/// Everything the auth extractor needs, registered once as app data.
#[derive(Clone)]
pub struct Verifier {
    pub keys: JwtKeys,
    pub lookup: Arc<dyn SecurityLookup>,
}

/// An authenticated caller: a valid token whose security version is still current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub user_id: Uuid,
    pub role: Role,
    pub token_id: Uuid,
}

impl Authenticated {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

fn bearer(req: &HttpRequest) -> Result<String, ApiError> {
    let value = req.headers().get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized("an access token is required: Authorization: Bearer <token>")
    })?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not a bearer token"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthorized("the Authorization header is not a bearer token"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::unauthorized(
            "the Authorization header is not a bearer token",
        ));
    }
    Ok(token.trim().to_owned())
}

/// Checks the request's bearer token and its security version (`fresh`: read from `credentials`
/// now, bypassing the security-version cache).
fn authenticate(
    req: &HttpRequest,
    fresh: bool,
) -> LocalBoxFuture<'static, Result<Authenticated, ApiError>> {
    let verifier = req.app_data::<web::Data<Verifier>>().cloned();
    let token = bearer(req);
    Box::pin(async move {
        let verifier = verifier
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no Verifier registered")))?;
        let claims = verifier.keys.verify(&token?)?;
        let state = if fresh {
            verifier.lookup.current_security_state(claims.sub).await?
        } else {
            verifier.lookup.security_state(claims.sub).await?
        }
        .ok_or_else(|| ApiError::unauthorized("the access token is invalid or expired"))?;
        if !state.active || state.security_version != claims.sv {
            return Err(ApiError::unauthorized("the access token has been revoked"));
        }
        Ok(Authenticated {
            user_id: claims.sub,
            role: state.role,
            token_id: claims.jti,
        })
    })
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        authenticate(req, false)
    }
}

/// An authenticated caller whose security version was read from `credentials` for this request,
/// never from the security-version cache: what change-password stands on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreshlyAuthenticated(pub Authenticated);

impl FromRequest for FreshlyAuthenticated {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let authenticated = authenticate(req, true);
        Box::pin(async move { authenticated.await.map(FreshlyAuthenticated) })
    }
}
