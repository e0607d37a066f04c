//! AI usage reports: `GET /ai/usage` (the caller's own attempts) and `GET /admin/ai/usage` (everyone's), their costs added up exactly per day, model, project or user over a bounded range.

use actix_web::{HttpRequest, HttpResponse, get, web};
use domain::FieldError;
use read_model::ai_usage::{self, UsageGrouping, UsageRow};
use runtime::http_headers::rfc3339;
use runtime::openapi::ReadHeaders;
use runtime::{ApiError, Authenticated};
use rust_decimal::Decimal;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, Duration, OffsetDateTime, Time};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::QueryState;
use crate::extract::Fresh;
use crate::params::Query;
use crate::routes::read_error;

/// The longest range one report covers.
pub const MAX_RANGE_DAYS: i64 = 366;
/// The most groups one report answers (a day grouping has at most 367).
pub const MAX_GROUPS: usize = 1_000;

/// One group of a usage report.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UsageGroup {
    /// The UTC day (`YYYY-MM-DD`), the model's name, the project's id or the user's id.
    key: String,
    /// The exact sum of the attempts' costs: a decimal string with 6 places.
    cost_usd: String,
    input_tokens: u64,
    output_tokens: u64,
    /// Attempts recorded in the range (failed ones count).
    attempts: u64,
    /// Distinct AI requests those attempts belong to.
    requests: u64,
}

/// A usage report.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UsageReport {
    /// RFC 3339, inclusive.
    from: String,
    /// RFC 3339, exclusive.
    to: String,
    /// `day`, `model`, `project` or `user`.
    group_by: String,
    /// The groups, ordered by key.
    groups: Vec<UsageGroup>,
    /// Every group added up: `{cost_usd, input_tokens, output_tokens, attempts}` (not requests:
    /// one request's attempts may fall on two days).
    total: UsageTotal,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UsageTotal {
    cost_usd: String,
    input_tokens: u64,
    output_tokens: u64,
    attempts: u64,
}

/// An instant from `from`/`to`: RFC 3339, or a date (`YYYY-MM-DD`, midnight UTC; for `to`, the
/// end of that day).
fn instant(raw: &str, end_of_day: bool) -> Option<OffsetDateTime> {
    if let Ok(at) = OffsetDateTime::parse(raw, &Rfc3339) {
        return Some(at);
    }
    let date = Date::parse(raw, format_description!("[year]-[month]-[day]")).ok()?;
    let midnight = date.with_time(Time::MIDNIGHT).assume_utc();
    if end_of_day {
        midnight.checked_add(Duration::DAY)
    } else {
        Some(midnight)
    }
}

/// The report's range and grouping from the query string; every bad value is a 422 naming its
/// parameter. Defaults: the current UTC month, grouped by day.
fn report_params(
    query: &Query,
    admin: bool,
) -> Result<(OffsetDateTime, OffsetDateTime, UsageGrouping), ApiError> {
    let now = OffsetDateTime::now_utc();
    let mut problems = Vec::new();
    let mut read = |key: &str, end: bool, default: OffsetDateTime| match query.get(key) {
        None => default,
        Some(raw) => instant(raw, end).unwrap_or_else(|| {
            problems.push(FieldError::new(
                key,
                "must be an RFC 3339 date-time or a date (YYYY-MM-DD)",
            ));
            default
        }),
    };
    let from = read(
        "from",
        false,
        domain::ai::budget::month_of(now)
            .with_time(Time::MIDNIGHT)
            .assume_utc(),
    );
    let to = read("to", true, domain::ai::budget::next_month_start(now));
    let grouping = match query.get("group_by") {
        None => Some(UsageGrouping::Day),
        Some(raw) => UsageGrouping::parse(raw).filter(|g| admin || *g != UsageGrouping::User),
    };
    let grouping = grouping.unwrap_or_else(|| {
        let allowed = if admin {
            "day, model, project or user"
        } else {
            "day, model or project"
        };
        problems.push(FieldError::new("group_by", format!("must be {allowed}")));
        UsageGrouping::Day
    });
    if problems.is_empty() {
        if to <= from {
            problems.push(FieldError::new("to", "must be after `from`"));
        } else if to - from > Duration::days(MAX_RANGE_DAYS) {
            problems.push(FieldError::new(
                "to",
                format!("the range is at most {MAX_RANGE_DAYS} days"),
            ));
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::invalid("the usage query is invalid", problems));
    }
    Ok((from, to, grouping))
}

/// The report of `user` (or everyone's).
async fn report(
    state: &QueryState,
    req: &HttpRequest,
    user: Option<Uuid>,
    admin: bool,
) -> Result<HttpResponse, ApiError> {
    let query = Query::parse(req)?;
    let (from, to, grouping) = report_params(&query, admin)?;
    let client = state.pool.get().await?;
    let rows = ai_usage::usage(&client, from, to, user, grouping, MAX_GROUPS + 1)
        .await
        .map_err(read_error)?;
    drop(client);
    if rows.len() > MAX_GROUPS {
        return Err(ApiError::invalid_field(
            "to",
            format!("the range holds over {MAX_GROUPS} groups; narrow it"),
        ));
    }
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let mut total_cost = Decimal::ZERO;
    let (mut input, mut output, mut attempts) = (0u64, 0u64, 0u64);
    let mut groups = Vec::with_capacity(rows.len());
    for UsageRow {
        key,
        cost_usd,
        input_tokens,
        output_tokens,
        attempts: a,
        requests: r,
    } in rows
    {
        let cost: Decimal = cost_usd.parse().map_err(ApiError::internal)?;
        total_cost += cost;
        input = input.saturating_add(count(input_tokens));
        output = output.saturating_add(count(output_tokens));
        attempts = attempts.saturating_add(count(a));
        groups.push(json!({
            "key": key,
            "cost_usd": cost_usd,
            "input_tokens": count(input_tokens),
            "output_tokens": count(output_tokens),
            "attempts": count(a),
            "requests": count(r),
        }));
    }
    total_cost.rescale(domain::ai::money::PRICE_SCALE);
    Ok(HttpResponse::Ok().json(json!({
        "from": rfc3339(from),
        "to": rfc3339(to),
        "group_by": grouping.as_str(),
        "groups": groups,
        "total": {
            "cost_usd": total_cost.to_string(),
            "input_tokens": input,
            "output_tokens": output,
            "attempts": attempts,
        },
    })))
}

/// The caller's own AI usage: their requests' attempt costs, grouped.
#[utoipa::path(get, path = "/api/v1/ai/usage", tag = "ai", security(("bearer" = [])),
    params(("from" = Option<String>, Query, description = "RFC 3339 or YYYY-MM-DD (midnight UTC), inclusive; default: the start of the current UTC month"),
           ("to" = Option<String>, Query, description = "RFC 3339 or YYYY-MM-DD (the end of that day), exclusive; default: the start of the next UTC month; at most 366 days after `from`"),
           ("group_by" = Option<String>, Query, description = "`day` (default, UTC), `model` or `project`"),
           ReadHeaders),
    responses((status = 200, description = "The report: exact decimal strings", body = UsageReport),
              (status = 422, description = "A bad `from`, `to` or `group_by`, or a range over 366 days")))]
#[get("/ai/usage")]
pub async fn my_usage(
    state: web::Data<QueryState>,
    req: HttpRequest,
    caller: Authenticated,
    _fresh: Fresh,
) -> Result<HttpResponse, ApiError> {
    report(&state, &req, Some(caller.user_id), false).await
}

/// Everyone's AI usage (admins only), grouped.
#[utoipa::path(get, path = "/api/v1/admin/ai/usage", tag = "admin", security(("bearer" = [])),
    params(("from" = Option<String>, Query, description = "RFC 3339 or YYYY-MM-DD (midnight UTC), inclusive; default: the start of the current UTC month"),
           ("to" = Option<String>, Query, description = "RFC 3339 or YYYY-MM-DD (the end of that day), exclusive; default: the start of the next UTC month; at most 366 days after `from`"),
           ("group_by" = Option<String>, Query, description = "`day` (default, UTC), `model`, `project` or `user`"),
           ReadHeaders),
    responses((status = 200, description = "The report: exact decimal strings", body = UsageReport),
              (status = 403, description = "Only admins see everyone's usage"),
              (status = 422, description = "A bad `from`, `to` or `group_by`, or a range over 366 days")))]
#[get("/admin/ai/usage")]
pub async fn all_usage(
    state: web::Data<QueryState>,
    req: HttpRequest,
    caller: Authenticated,
    _fresh: Fresh,
) -> Result<HttpResponse, ApiError> {
    if !caller.is_admin() {
        return Err(ApiError::forbidden("only admins see everyone's AI usage"));
    }
    report(&state, &req, None, true).await
}
