//! The AI request sweeper: fails AI requests that no job will finish — running past every
//! delivery's deadline, or still queued after `BACKFORGE_GENERATION_QUEUE_TIMEOUT` — like the
//! generation sweeper, as a consumer of its own (retries with backoff, reports a stall).

use std::time::Duration;

use domain::ai::request::AiRequestStatus;
use event_store::PgEventStore;
use runtime::supervise::{Backoff, Consumers, MAX_BACKOFF, cause_chain, wait_or_stop};
use time::OffsetDateTime;
use tokio::sync::watch;
use uuid::Uuid;

use super::job::{self, AiJob};
use crate::WorkerSettings;

/// The sweeper's name in metrics and `/health/ready`.
pub const AI_SWEEPER: &str = "ai_sweeper";

pub struct AiSweeper {
    pub store: PgEventStore,
    pub consumers: Consumers,
    /// An AI request running longer than this has outlived every delivery of its job.
    pub running_limit: Duration,
    /// An AI request made longer ago than this and never started is failed.
    pub queue_timeout: Duration,
}

/// What one sweep failed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub overdue_running: usize,
    pub stuck_requested: usize,
}

impl AiSweeper {
    pub fn new(
        store: PgEventStore,
        consumers: Consumers,
        settings: &WorkerSettings,
        queue_timeout: Duration,
    ) -> Self {
        consumers.register(AI_SWEEPER);
        Self {
            store,
            consumers,
            running_limit: crate::sweep::running_limit(settings),
            queue_timeout,
        }
    }

    fn interval(&self) -> Duration {
        (self.queue_timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(30))
    }

    /// Sweeps until `shutdown`.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::new(Duration::from_secs(1), MAX_BACKOFF);
        let mut pause = self.interval();
        loop {
            wait_or_stop(&mut shutdown, pause).await;
            if *shutdown.borrow() {
                return;
            }
            match self.sweep_once().await {
                Ok(swept) => {
                    backoff.reset();
                    pause = self.interval();
                    self.consumers.lag(AI_SWEEPER, 0.0);
                    if let Some(stall) = self.consumers.ok(AI_SWEEPER) {
                        tracing::info!(stalled_since = %stall.since, "the AI sweeper works again");
                    }
                    if swept != Swept::default() {
                        tracing::info!(
                            running = swept.overdue_running,
                            requested = swept.stuck_requested,
                            "failed AI requests that no job will finish"
                        );
                    }
                }
                Err(error) => {
                    pause = backoff.next_wait();
                    let cause = cause_chain(&error);
                    tracing::error!(consumer = AI_SWEEPER, cause = %cause, retry_in = ?pause, "AI sweep failed; retrying");
                    self.consumers.stalled(AI_SWEEPER, cause, None);
                }
            }
        }
    }

    async fn overdue(
        &self,
        status: AiRequestStatus,
        limit: Duration,
    ) -> anyhow::Result<Vec<(AiJob, OffsetDateTime)>> {
        let client = self.store.pool().get().await?;
        let rows = read_model::ai_requests::overdue_ai_requests(&client, status, limit).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                (
                    AiJob {
                        ai_request_id: row.id,
                        project_id: row.project_id,
                        event_id: Uuid::nil(),
                    },
                    row.since,
                )
            })
            .collect())
    }

    /// One sweep: fails requests running past `running_limit` and requests still `requested`
    /// after `queue_timeout`.
    pub async fn sweep_once(&self) -> anyhow::Result<Swept> {
        let mut swept = Swept::default();
        for (job, _) in self
            .overdue(AiRequestStatus::Running, self.running_limit)
            .await?
        {
            let reason = format!(
                "the AI request exceeded its deadline of {} s",
                self.running_limit.as_secs()
            );
            job::record_failure(&self.store, &job, &reason).await?;
            swept.overdue_running += 1;
        }
        for (job, since) in self
            .overdue(AiRequestStatus::Requested, self.queue_timeout)
            .await?
        {
            let waited = (OffsetDateTime::now_utc() - since).whole_seconds();
            let reason = format!(
                "no worker started the AI request within {} s of its request \
                 (BACKFORGE_GENERATION_QUEUE_TIMEOUT; it waited {waited} s); make a new one",
                self.queue_timeout.as_secs()
            );
            tracing::warn!(ai_request = %job.ai_request_id, waited, "failing an AI request stuck in the queue");
            job::record_failure(&self.store, &job, &reason).await?;
            swept.stuck_requested += 1;
        }
        Ok(swept)
    }
}
