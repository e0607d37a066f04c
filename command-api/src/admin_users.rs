//! `PUT /admin/users/{id}`: an admin sets a user's monthly AI budget (`UserAiBudgetSet` on the user's stream, with the command-side budget row in its transaction).
//!
//! Only `ai_monthly_budget_usd` for now; the other fields of the administration contract come with
//! the administration issue, and until then the body refuses them like any unknown field.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, put, web};
use domain::ids::UserId;
use domain::user::{SetAiBudget, User, UserCommand};
use event_store::application::{Source, Step};
use runtime::ai_budget::SetUserBudget;
use runtime::http_headers::rfc3339;
use runtime::{ApiError, Json};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::CommandState;
use crate::execute::{Plan, WriteAnswer, failure};
use crate::http::{Ids, PathId, Write, WriteBody};
use crate::users::user_error;

/// A user's id in an admin path (`/admin/users/{id}`).
pub struct AdminUserId(pub UserId);

impl PathId for AdminUserId {
    const SEGMENT: &'static str = "id";
    const WHAT: &'static str = "user";
    fn from_uuid(id: Uuid) -> Self {
        AdminUserId(UserId::from_uuid(id))
    }
}

/// `PUT /admin/users/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminUserUpdate {
    /// USD per UTC calendar month: a decimal (JSON number or string) ≥ 0 with at most 6 places,
    /// or `null` to drop the user's own budget (then `BACKFORGE_AI_MONTHLY_BUDGET_USD` applies,
    /// or none).
    #[serde(deserialize_with = "domain::ai::budget::deserialize_budget")]
    #[schema(value_type = Option<String>, example = "25.00")]
    pub ai_monthly_budget_usd: Option<Decimal>,
}

/// A user as an admin sees them.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AdminUserView {
    id: Uuid,
    email: String,
    name: String,
    /// `admin` or `member`.
    role: String,
    active: bool,
    /// The user's own monthly AI budget in USD (a decimal string), or null: the default applies.
    ai_monthly_budget_usd: Option<String>,
    created_at: String,
    updated_at: String,
    #[schema(schema_with = runtime::openapi::version)]
    version: u64,
    #[schema(schema_with = runtime::openapi::position)]
    position: String,
}

/// Set a user's monthly AI budget (admins only).
#[utoipa::path(put, path = "/api/v1/admin/users/{id}", tag = "admin", request_body = AdminUserUpdate,
    security(("bearer" = [])), params(("id" = Uuid, Path, description = "User id"), runtime::openapi::WriteHeaders),
    responses((status = 200, description = "The user's admin view", body = AdminUserView,
                headers(("ETag"), ("Backforge-Position"))),
              (status = 403, description = "Only admins manage users"),
              (status = 404, description = "No such user"),
              (status = 409, description = "The user is deactivated"),
              (status = 412, description = "If-Match does not match the user's current version"),
              (status = 422, description = "A budget that is not a decimal ≥ 0 with at most 6 places, or another field")))]
#[put("/admin/users/{id}")]
pub async fn update_user(
    state: web::Data<CommandState>,
    write: Write<Json<AdminUserUpdate>>,
    Ids(AdminUserId(user_id)): Ids<AdminUserId>,
) -> Result<HttpResponse, ApiError> {
    if !write.caller.is_admin() {
        return Err(ApiError::forbidden("only admins manage users"));
    }
    let budget = write.body.value.ai_monthly_budget_usd;
    let step = Step::<User> {
        stream: user_id.stream(),
        source: Source::Fold,
        pin: write.pin(),
        limits: &state.settings.limits,
        metadata: write.meta.metadata(Some(write.caller.user_id)),
    };
    let make_plan = async || {
        let at = OffsetDateTime::now_utc();
        let decided = step
            .decide(&state.store, |_| {
                Ok(UserCommand::SetAiBudget(SetAiBudget {
                    ai_monthly_budget_usd: budget,
                    at,
                }))
            })
            .await
            .map_err(|f| failure(f, user_error))?;
        let after = decided.after().clone();
        Ok(Plan::decided(step.stream.clone(), decided)
            .hook(SetUserBudget {
                user_id: user_id.as_uuid(),
                budget_usd: budget,
                at,
            })
            .reply(move |version, position| WriteAnswer {
                status: StatusCode::OK,
                body: Some(json!({
                    "id": after.id,
                    "email": after.email,
                    "name": after.name,
                    "role": after.role,
                    "active": after.active,
                    "ai_monthly_budget_usd": budget.map(|b| b.to_string()),
                    "created_at": rfc3339(after.created_at),
                    "updated_at": rfc3339(after.updated_at),
                    "version": version,
                    "position": position.to_token(),
                })),
                location: None,
                version,
                position,
            }))
    };
    state
        .executor
        .run(write.key.clone(), write.body.raw(), step.pin, make_plan)
        .await
}
