//! The generation sweeper: fails generations that no job will finish, so none stays `running` or
//! `requested` forever: running past every delivery's deadline, or still queued after
//! `BACKFORGE_GENERATION_QUEUE_TIMEOUT`. A consumer like the others: it retries a failed sweep
//! with backoff, reports itself stalled meanwhile, and is supervised by the binary.

use std::time::Duration;

use domain::generation::GenerationStatus;
use event_store::PgEventStore;
use runtime::supervise::{Backoff, Consumers, MAX_BACKOFF, cause_chain, wait_or_stop};
use time::OffsetDateTime;
use tokio::sync::watch;
use uuid::Uuid;

use crate::WorkerSettings;
use crate::job::{self, GenerationJob};

/// The sweeper's name in metrics and `/health/ready`.
pub const SWEEPER: &str = "generation_sweeper";

pub struct Sweeper {
    pub store: PgEventStore,
    pub consumers: Consumers,
    /// A generation running longer than this has outlived every delivery of its job.
    pub running_limit: Duration,
    /// A generation requested longer ago than this and never started is failed.
    pub queue_timeout: Duration,
}

/// What one sweep failed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub overdue_running: usize,
    pub stuck_requested: usize,
}

/// One open generation past its limit.
struct Overdue {
    job: GenerationJob,
    since: OffsetDateTime,
}

impl Sweeper {
    pub fn new(
        store: PgEventStore,
        consumers: Consumers,
        settings: &WorkerSettings,
        queue_timeout: Duration,
    ) -> Self {
        consumers.register(SWEEPER);
        Self {
            store,
            consumers,
            running_limit: running_limit(settings),
            queue_timeout,
        }
    }

    /// How often it sweeps: often enough that a short queue timeout (tests) is honoured promptly,
    /// never more than every second nor less than every 30 s.
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
                    self.consumers.lag(SWEEPER, 0.0);
                    if let Some(stall) = self.consumers.ok(SWEEPER) {
                        tracing::info!(stalled_since = %stall.since, "the generation sweeper works again");
                    }
                    if swept != Swept::default() {
                        tracing::info!(
                            running = swept.overdue_running,
                            requested = swept.stuck_requested,
                            "failed generations that no job will finish"
                        );
                    }
                }
                Err(error) => {
                    pause = backoff.next_wait();
                    let cause = cause_chain(&error);
                    tracing::error!(consumer = SWEEPER, cause = %cause, retry_in = ?pause, "generation sweep failed; retrying");
                    self.consumers.stalled(SWEEPER, cause, None);
                }
            }
        }
    }

    async fn overdue(
        &self,
        status: GenerationStatus,
        limit: Duration,
    ) -> anyhow::Result<Vec<Overdue>> {
        let client = self.store.pool().get().await?;
        let rows = read_model::rows::overdue(&client, status, limit).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let generation_id: Uuid = row.id;
            let version = row.project_version;
            // Stored data that says nothing sensible is an error, never a silent default.
            let project_version = version.and_then(|v| u64::try_from(v).ok()).ok_or_else(|| {
                anyhow::anyhow!("generation {generation_id} has no valid project_version")
            })?;
            out.push(Overdue {
                job: GenerationJob {
                    generation_id,
                    project_id: row.project_id,
                    project_version,
                    event_id: Uuid::nil(),
                },
                since: row.since,
            });
        }
        Ok(out)
    }

    /// One sweep: fails generations running past `running_limit` and generations still
    /// `requested` after `queue_timeout`.
    pub async fn sweep_once(&self) -> anyhow::Result<Swept> {
        let mut swept = Swept::default();
        let running = self
            .overdue(GenerationStatus::Running, self.running_limit)
            .await?;
        for overdue in running {
            let reason = format!(
                "the generation exceeded its deadline of {} s",
                self.running_limit.as_secs()
            );
            job::record_failure(&self.store, &overdue.job, &reason, Vec::new(), None).await?;
            swept.overdue_running += 1;
        }
        let queued = self
            .overdue(GenerationStatus::Requested, self.queue_timeout)
            .await?;
        for overdue in queued {
            let waited = (OffsetDateTime::now_utc() - overdue.since).whole_seconds();
            let reason = format!(
                "no worker started the generation within {} s of its request \
                 (BACKFORGE_GENERATION_QUEUE_TIMEOUT; it waited {waited} s); request a new one",
                self.queue_timeout.as_secs()
            );
            tracing::warn!(generation = %overdue.job.generation_id, waited, "failing a generation stuck in the queue");
            job::record_failure(&self.store, &overdue.job, &reason, Vec::new(), None).await?;
            swept.stuck_requested += 1;
        }
        Ok(swept)
    }
}

/// A running generation older than this has outlived every delivery of its job, with the
/// redelivery backoff between them.
pub fn running_limit(settings: &WorkerSettings) -> Duration {
    settings.job_deadline * (u32::try_from(settings.max_deliver).unwrap_or(u32::MAX) + 1)
        + crate::backoff(settings.max_deliver)
            .iter()
            .sum::<Duration>()
}
