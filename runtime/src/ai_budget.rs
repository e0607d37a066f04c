//! The command-side AI budget tables' one home (`ai_user_budgets`, `ai_budget`, `ai_budget_requests`, created by the command API's migration V6): per-user budgets, admission and settlement, as side writes of the events they follow.
//!
//! The command API admits an AI request in the transaction of its `AiRequested` append
//! ([`Admission`]); the worker settles it in the transaction of its terminal event
//! ([`Settlement`]). Admission locks the user's month row (`SELECT … FOR UPDATE`), so two
//! admissions for one user are decided one after the other on what the other committed: under any
//! concurrency spent + reserved never passes the budget. Amounts travel as decimal text and are
//! `numeric` in PostgreSQL: exact both ways.

use std::str::FromStr;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use domain::ai::budget::{self, BudgetExceeded, MonthSpend};
use event_store::StoreError;
use event_store::application::{Landed, SideWrites};
use event_store::postgres::map_pg;
use rust_decimal::Decimal;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

/// A refused admission: the numbers and the seconds to the next UTC month. Travels out of the
/// append's transaction inside `StoreError::Backend` and becomes 429 `ai-budget-exceeded`
/// (`ApiError`'s `From<StoreError>`); nothing of the request was appended.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{exceeded}")]
pub struct BudgetRefused {
    pub exceeded: BudgetExceeded,
    pub retry_after_secs: u64,
}

fn decimal(text: &str) -> Result<Decimal, StoreError> {
    Decimal::from_str(text).map_err(|e| {
        StoreError::Backend(anyhow::anyhow!(
            "an AI budget amount `{text}` is unreadable: {e}"
        ))
    })
}

/// Writes (or, with `None`, removes) a user's own budget; a side write of `UserAiBudgetSet`.
pub struct SetUserBudget {
    pub user_id: Uuid,
    pub budget_usd: Option<Decimal>,
    pub at: OffsetDateTime,
}

#[async_trait]
impl SideWrites for SetUserBudget {
    fn is_empty(&self) -> bool {
        false
    }

    async fn write(&self, tx: &Transaction<'_>, _landed: &Landed) -> Result<(), StoreError> {
        match self.budget_usd {
            Some(budget) => tx
                .execute(
                    "INSERT INTO ai_user_budgets (user_id, budget_usd, updated_at)
                     VALUES ($1, $2::text::numeric, $3)
                     ON CONFLICT (user_id) DO UPDATE
                         SET budget_usd = EXCLUDED.budget_usd, updated_at = EXCLUDED.updated_at",
                    &[&self.user_id, &budget.to_string(), &self.at],
                )
                .await
                .map_err(map_pg)?,
            None => tx
                .execute(
                    "DELETE FROM ai_user_budgets WHERE user_id = $1",
                    &[&self.user_id],
                )
                .await
                .map_err(map_pg)?,
        };
        Ok(())
    }
}

/// Admission of one AI request: reserve its worst case in the user's month row, or refuse. A side
/// write of `AiRequested`, so a refusal leaves nothing behind and an admission is never without
/// its event.
pub struct Admission {
    pub request_id: Uuid,
    pub user_id: Uuid,
    /// When the request is made: its month is the one charged, now and at settlement.
    pub at: OffsetDateTime,
    pub reservation_usd: Decimal,
    /// `BACKFORGE_AI_MONTHLY_BUDGET_USD`: the budget of a user without one of their own.
    pub default_budget_usd: Option<Decimal>,
}

impl Admission {
    fn month(&self) -> Date {
        budget::month_of(self.at)
    }
}

#[async_trait]
impl SideWrites for Admission {
    fn is_empty(&self) -> bool {
        false
    }

    async fn write(&self, tx: &Transaction<'_>, _landed: &Landed) -> Result<(), StoreError> {
        let month = self.month();
        tx.execute(
            "INSERT INTO ai_budget (user_id, month) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&self.user_id, &month],
        )
        .await
        .map_err(map_pg)?;
        // The lock every admission of this user and month queues on.
        let row = tx
            .query_one(
                "SELECT b.spent_usd::text, b.reserved_usd::text, u.budget_usd::text
                 FROM ai_budget b LEFT JOIN ai_user_budgets u ON u.user_id = b.user_id
                 WHERE b.user_id = $1 AND b.month = $2
                 FOR UPDATE OF b",
                &[&self.user_id, &month],
            )
            .await
            .map_err(map_pg)?;
        let spend = MonthSpend {
            spent_usd: decimal(row.get(0))?,
            reserved_usd: decimal(row.get(1))?,
        };
        let own: Option<&str> = row.get(2);
        let budget_usd = match own {
            Some(text) => Some(decimal(text)?),
            None => self.default_budget_usd,
        };
        if let Err(exceeded) = budget::admit(budget_usd, spend, self.reservation_usd) {
            let refused = BudgetRefused {
                exceeded,
                retry_after_secs: budget::retry_after_seconds(OffsetDateTime::now_utc()),
            };
            return Err(StoreError::Backend(anyhow::Error::new(refused)));
        }
        let reservation = self.reservation_usd.to_string();
        tx.execute(
            "UPDATE ai_budget SET reserved_usd = reserved_usd + $3::text::numeric
             WHERE user_id = $1 AND month = $2",
            &[&self.user_id, &month, &reservation],
        )
        .await
        .map_err(map_pg)?;
        tx.execute(
            "INSERT INTO ai_budget_requests (request_id, user_id, month, reserved_usd)
             VALUES ($1, $2, $3, $4::text::numeric)",
            &[&self.request_id, &self.user_id, &month, &reservation],
        )
        .await
        .map_err(map_pg)?;
        Ok(())
    }
}

/// Settlement of one AI request: its reservation is replaced by its actual cost in the month it
/// was admitted in. A side write of its terminal event (`AiRequestSucceeded` or `AiRequestFailed`,
/// the sweeper's included). Idempotent: only a request not yet settled changes the month row.
pub struct Settlement {
    pub request_id: Uuid,
    pub cost_usd: Decimal,
}

#[async_trait]
impl SideWrites for Settlement {
    fn is_empty(&self) -> bool {
        false
    }

    async fn write(&self, tx: &Transaction<'_>, landed: &Landed) -> Result<(), StoreError> {
        if !landed.appended {
            return Ok(());
        }
        tx.execute(
            "WITH settled AS (
                 UPDATE ai_budget_requests
                 SET cost_usd = $2::text::numeric, settled_at = now()
                 WHERE request_id = $1 AND cost_usd IS NULL
                 RETURNING user_id, month, reserved_usd
             )
             UPDATE ai_budget b
             SET reserved_usd = b.reserved_usd - s.reserved_usd,
                 spent_usd = b.spent_usd + $2::text::numeric
             FROM settled s
             WHERE b.user_id = s.user_id AND b.month = s.month",
            &[&self.request_id, &self.cost_usd.to_string()],
        )
        .await
        .map_err(map_pg)?;
        Ok(())
    }
}
