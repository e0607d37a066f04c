//! HTTP handlers of `/auth/*`: request bodies in, one application function each, answers out.

use actix_web::{HttpRequest, HttpResponse, post, put, web};
use runtime::{ApiError, Authenticated, Json};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::CommandState;
use crate::http::RequestMeta;
use crate::users::{self, Registration};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Trimmed and compared case-insensitively; at most 254 characters.
    pub email: String,
    /// 10 to 128 characters.
    pub password: String,
    /// 1 to 100 characters.
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
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
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

/// Register a user: the e-mail reservation and `UserRegistered` are one atomic append.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, description = "Registered; the body carries the user, a token pair, version and position"),
              (status = 409, description = "E-mail address taken"), (status = 422, description = "Invalid input")))]
#[post("/auth/register")]
pub async fn register(
    state: web::Data<CommandState>,
    req: HttpRequest,
    meta: RequestMeta,
    body: Json<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let RegisterRequest {
        email,
        password,
        name,
    } = body.into_inner();
    users::register(
        &state,
        &req,
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
    responses((status = 200, description = "The user and a token pair"), (status = 401, description = "Wrong e-mail or password"),
              (status = 429, description = "Too many attempts")))]
#[post("/auth/login")]
pub async fn login(
    state: web::Data<CommandState>,
    req: HttpRequest,
    meta: RequestMeta,
    body: Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    crate::execute::refuse_idempotency_key(&req)?;
    let LoginRequest { email, password } = body.into_inner();
    users::login(&state, &meta, &email, password).await
}

/// Trade a refresh token for a new pair; the old one is spent, and reusing it revokes its family.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, description = "A new token pair"), (status = 401, description = "Invalid, spent or revoked token")))]
#[post("/auth/refresh")]
pub async fn refresh(
    state: web::Data<CommandState>,
    req: HttpRequest,
    body: Json<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    crate::execute::refuse_idempotency_key(&req)?;
    users::refresh(&state, &body.value.refresh_token).await
}

/// Revoke the refresh token's whole family.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204, description = "Logged out")))]
#[post("/auth/logout")]
pub async fn logout(
    state: web::Data<CommandState>,
    req: HttpRequest,
    body: Json<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    crate::execute::refuse_idempotency_key(&req)?;
    users::logout(&state, &body.value.refresh_token).await
}

/// Change the caller's display name.
#[utoipa::path(put, path = "/api/v1/auth/profile", tag = "auth", request_body = ProfileUpdate,
    security(("bearer" = [])),
    responses((status = 200, description = "The profile with version and position"), (status = 422, description = "Invalid name")))]
#[put("/auth/profile")]
pub async fn update_profile(
    state: web::Data<CommandState>,
    req: HttpRequest,
    meta: RequestMeta,
    caller: Authenticated,
    body: Json<ProfileUpdate>,
) -> Result<HttpResponse, ApiError> {
    users::update_profile(&state, &req, &meta, &caller, body.into_inner().name).await
}

/// Change the password: every older access token and refresh family stops working.
#[utoipa::path(post, path = "/api/v1/auth/change-password", tag = "auth", request_body = ChangePasswordRequest,
    security(("bearer" = [])),
    responses((status = 200, description = "A new token pair"), (status = 422, description = "Wrong current password or invalid new one")))]
#[post("/auth/change-password")]
pub async fn change_password(
    state: web::Data<CommandState>,
    req: HttpRequest,
    meta: RequestMeta,
    caller: Authenticated,
    body: Json<ChangePasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let ChangePasswordRequest {
        current_password,
        new_password,
    } = body.into_inner();
    users::change_password(&state, &req, &meta, &caller, current_password, new_password).await
}
