//! Reader of `rm.ai_usage`: AI attempt costs added up per day, model, project or user over a time range, exactly (`numeric` sums, read as decimal text).

use deadpool_postgres::GenericClient;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::rows::ReadError;

/// What usage is grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageGrouping {
    /// The UTC day an attempt was recorded (`YYYY-MM-DD`).
    Day,
    Model,
    Project,
    User,
}

impl UsageGrouping {
    pub const ALL: [UsageGrouping; 4] = [
        UsageGrouping::Day,
        UsageGrouping::Model,
        UsageGrouping::Project,
        UsageGrouping::User,
    ];

    /// The spelling of `group_by`.
    pub fn as_str(self) -> &'static str {
        match self {
            UsageGrouping::Day => "day",
            UsageGrouping::Model => "model",
            UsageGrouping::Project => "project",
            UsageGrouping::User => "user",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == raw)
    }

    fn key_sql(self) -> &'static str {
        match self {
            UsageGrouping::Day => "to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
            UsageGrouping::Model => "model",
            UsageGrouping::Project => "project_id::text",
            UsageGrouping::User => "user_id::text",
        }
    }
}

/// One group's totals. `cost_usd` is the exact sum, as decimal text with 6 places.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub key: String,
    pub cost_usd: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub attempts: i64,
    pub requests: i64,
}

/// Attempts recorded in `[from, to)`, of `user` when given (else everyone's), grouped by
/// `grouping` and ordered by key; at most `fetch` groups.
pub async fn usage<C: GenericClient>(
    client: &C,
    from: OffsetDateTime,
    to: OffsetDateTime,
    user: Option<Uuid>,
    grouping: UsageGrouping,
    fetch: usize,
) -> Result<Vec<UsageRow>, ReadError> {
    let key = grouping.key_sql();
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {key} AS key, sum(cost_usd)::text, sum(input_tokens)::bigint,
                    sum(output_tokens)::bigint, count(*), count(DISTINCT request_id)
             FROM rm.ai_usage
             WHERE recorded_at >= $1 AND recorded_at < $2 AND ($3::uuid IS NULL OR user_id = $3)
             GROUP BY 1 ORDER BY 1 LIMIT $4"
        ))
        .await?;
    let fetch = i64::try_from(fetch).unwrap_or(i64::MAX);
    let rows = client.query(&stmt, &[&from, &to, &user, &fetch]).await?;
    rows.into_iter()
        .map(|row| {
            Ok(UsageRow {
                key: row.try_get(0)?,
                cost_usd: row.try_get(1)?,
                input_tokens: row.try_get(2)?,
                output_tokens: row.try_get(3)?,
                attempts: row.try_get(4)?,
                requests: row.try_get(5)?,
            })
        })
        .collect()
}
