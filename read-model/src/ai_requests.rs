//! Readers of `rm.ai_requests`: one AI request, a project's requests newest first, and the
//! requests the worker's sweeper must fail.

use std::time::Duration;

use deadpool_postgres::GenericClient;
use domain::ai::request::AiRequestStatus;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::rows::{ReadError, spelled};

/// An AI request row.
#[derive(Debug)]
pub struct AiRequestRow {
    pub project_id: Uuid,
    pub status: AiRequestStatus,
    /// The request as the domain serialises it (`domain::ai::request::AiRequest`).
    pub document: Value,
}

pub async fn ai_request<C: GenericClient>(
    client: &C,
    id: Uuid,
) -> Result<Option<AiRequestRow>, ReadError> {
    let stmt = client
        .prepare_cached("SELECT project_id, document, status FROM rm.ai_requests WHERE id = $1")
        .await?;
    let Some(row) = client.query_opt(&stmt, &[&id]).await? else {
        return Ok(None);
    };
    let status: &str = row.try_get(2)?;
    Ok(Some(AiRequestRow {
        project_id: row.try_get(0)?,
        status: spelled("ai_requests.status", status)?,
        document: row.try_get(1)?,
    }))
}

/// One entry of a project's AI request list.
#[derive(Debug)]
pub struct ListedAiRequest {
    pub id: Uuid,
    pub requested_at: OffsetDateTime,
    pub document: Value,
}

/// Up to `fetch` AI requests of a project, newest first, requested before `before`.
pub async fn list_ai_requests<C: GenericClient>(
    client: &C,
    project_id: Uuid,
    before: (OffsetDateTime, Uuid),
    fetch: usize,
) -> Result<Vec<ListedAiRequest>, ReadError> {
    let stmt = client
        .prepare_cached(
            "SELECT id, requested_at, document FROM rm.ai_requests
             WHERE project_id = $1 AND (requested_at, id) < ($2, $3)
             ORDER BY requested_at DESC, id DESC LIMIT $4",
        )
        .await?;
    let rows = client
        .query(
            &stmt,
            &[
                &project_id,
                &before.0,
                &before.1,
                &i64::try_from(fetch).unwrap_or(i64::MAX),
            ],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(ListedAiRequest {
                id: row.try_get(0)?,
                requested_at: row.try_get(1)?,
                document: row.try_get(2)?,
            })
        })
        .collect()
}

/// An AI request the sweeper must fail: in a state for longer than allowed.
#[derive(Debug)]
pub struct OverdueAiRequest {
    pub id: Uuid,
    pub project_id: Uuid,
    pub since: OffsetDateTime,
}

/// AI requests in `status` (`running`, timed from `started_at`, or `requested`, timed from
/// `requested_at`) for longer than `limit`; the status is spelled by the domain.
pub async fn overdue_ai_requests<C: GenericClient>(
    client: &C,
    status: AiRequestStatus,
    limit: Duration,
) -> Result<Vec<OverdueAiRequest>, ReadError> {
    let since = match status {
        AiRequestStatus::Running => "started_at",
        _ => "requested_at",
    };
    let sql = format!(
        "SELECT id, project_id, {since} FROM rm.ai_requests
         WHERE status = '{}' AND {since} < now() - make_interval(secs => $1)",
        status.as_str()
    );
    let rows = client.query(&sql, &[&limit.as_secs_f64()]).await?;
    rows.iter()
        .map(|row| {
            Ok(OverdueAiRequest {
                id: row.try_get(0)?,
                project_id: row.try_get(1)?,
                since: row.try_get(2)?,
            })
        })
        .collect()
}
