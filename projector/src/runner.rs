//! The live projector: one leader per database follows the feed from its checkpoint and applies
//! batches; others wait for the leadership lock and take over when the leader dies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use event_store::{EventStore, PgEventStore, Position};
use runtime::metrics::Metrics;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;
use uuid::Uuid;

use crate::apply::{Applied, ProjectStates, apply_batch};
use crate::schema::{self, LIVE, PROJECTION};

/// Events read and applied per transaction.
pub const BATCH: usize = 1000;
/// The advisory lock that elects the read-model projector.
const LEADER_LOCK: i64 = 0x5250_4c45_4144_0001;
/// How long an idle projector waits for a feed signal before polling anyway.
const IDLE_POLL: Duration = Duration::from_millis(250);
/// Project rows the live projector keeps as it last wrote them (a few KB each).
const PROJECT_STATES: usize = 4096;

/// What the leader knows from its own last committed batch: the checkpoint it moved to and the
/// project rows it wrote. Taken out for a batch and put back only after that batch committed, so
/// a failure or a lost compare-and-set (a replay swap, another writer) makes the next batch read
/// both from PostgreSQL again.
struct Warm {
    checkpoint: Position,
    states: ProjectStates,
}

/// Leadership held on a dedicated connection: a pooled one would go back to the pool still
/// holding the lock, or be recycled and silently drop it.
pub(crate) struct Leadership {
    client: tokio_postgres::Client,
    driver: JoinHandle<()>,
}

impl Leadership {
    pub(crate) fn alive(&self) -> bool {
        !self.driver.is_finished() && !self.client.is_closed()
    }
}

pub(crate) async fn try_lead(database_url: &str, key: i64) -> anyhow::Result<Option<Leadership>> {
    let (client, connection) = tokio_postgres::connect(database_url, NoTls).await?;
    let driver = tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "projector leadership connection closed");
        }
    });
    let got: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
        .await?
        .get(0);
    if got {
        Ok(Some(Leadership { client, driver }))
    } else {
        driver.abort();
        Ok(None)
    }
}

/// The read-model projector of one process.
pub struct Projector {
    pub store: PgEventStore,
    pub pool: Pool,
    pub database_url: String,
    pub metrics: Metrics,
    pub instance: Uuid,
    checkpoint_tx: Arc<watch::Sender<Position>>,
    warm: std::sync::Mutex<Option<Warm>>,
}

impl Projector {
    pub fn new(store: PgEventStore, pool: Pool, database_url: String, metrics: Metrics) -> Self {
        let (checkpoint_tx, _) = watch::channel(Position::START);
        metrics.describe(
            "backforge_projection_lag_seconds",
            "Age of the newest event a projection has applied while it is behind; 0 when caught up",
        );
        metrics.describe(
            "backforge_projection_events_total",
            "Events applied by a projection",
        );
        metrics.describe(
            "backforge_projection_leader",
            "1 while this process leads the projection",
        );
        Self {
            store,
            pool,
            database_url,
            metrics,
            instance: Uuid::new_v4(),
            checkpoint_tx: Arc::new(checkpoint_tx),
            warm: std::sync::Mutex::new(None),
        }
    }

    /// The checkpoint this process has seen applied (by itself, or read back while leading).
    pub fn checkpoints(&self) -> watch::Receiver<Position> {
        self.checkpoint_tx.subscribe()
    }

    /// Runs until `shutdown` turns true: waits for leadership, then projects.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let mut announced = false;
        while !*shutdown.borrow() {
            let leadership = match try_lead(&self.database_url, LEADER_LOCK).await {
                Ok(Some(l)) => l,
                Ok(None) => {
                    if !announced {
                        tracing::info!(instance = %self.instance, "another projector leads; waiting for leadership");
                        announced = true;
                    }
                    wait_or_stop(&mut shutdown, Duration::from_millis(500)).await;
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot reach PostgreSQL for projector leadership; retrying");
                    wait_or_stop(&mut shutdown, Duration::from_secs(1)).await;
                    continue;
                }
            };
            announced = false;
            tracing::info!(instance = %self.instance, "projector leads the read models");
            self.metrics.set(
                "backforge_projection_leader",
                vec![("projection", PROJECTION.into())],
                1.0,
            );
            self.take_warm();
            self.lead(&leadership, &mut shutdown).await;
            self.metrics.set(
                "backforge_projection_leader",
                vec![("projection", PROJECTION.into())],
                0.0,
            );
            drop(leadership);
        }
    }

    async fn lead(&self, leadership: &Leadership, shutdown: &mut watch::Receiver<bool>) {
        let mut signal = self.store.feed_signal();
        let mut backoff = Duration::from_millis(100);
        while !*shutdown.borrow() {
            if !leadership.alive() {
                tracing::warn!("projector lost its leadership connection");
                return;
            }
            match self.step().await {
                Ok(Step::Applied) => backoff = Duration::from_millis(100),
                // A short batch reached the end of the visible feed: wait for the next commit
                // (one that landed meanwhile has already marked the signal) instead of re-reading.
                Ok(Step::Idle | Step::CaughtUp) => {
                    backoff = Duration::from_millis(100);
                    tokio::select! {
                        _ = signal.changed() => {}
                        _ = tokio::time::sleep(IDLE_POLL) => {}
                        _ = shutdown.changed() => {}
                    }
                }
                Err(error) => {
                    tracing::error!(error = ?error, "projection step failed; retrying");
                    wait_or_stop(shutdown, backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    fn take_warm(&self) -> Option<Warm> {
        self.warm.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn keep_warm(&self, warm: Warm) {
        *self.warm.lock().unwrap_or_else(|e| e.into_inner()) = Some(warm);
    }

    /// Reads one batch after the checkpoint and applies it.
    async fn step(&self) -> anyhow::Result<Step> {
        let mut client = self.pool.get().await?;
        let (from, mut states) = match self.take_warm() {
            Some(warm) => (warm.checkpoint, warm.states),
            None => (
                schema::checkpoint(&client, LIVE).await?,
                ProjectStates::new(PROJECT_STATES),
            ),
        };
        self.checkpoint_tx.send_if_modified(|c| {
            let changed = *c != from;
            *c = from;
            changed
        });
        let events = self.store.read_feed(from, BATCH).await?;
        if events.is_empty() {
            self.metrics.set(
                "backforge_projection_lag_seconds",
                vec![("projection", PROJECTION.into())],
                0.0,
            );
            self.keep_warm(Warm {
                checkpoint: from,
                states,
            });
            return Ok(Step::Idle);
        }
        let started = Instant::now();
        let tx = client.transaction().await?;
        match apply_batch(&tx, LIVE, from, &events, Some(self.instance), &mut states).await? {
            Applied::To(to) => {
                tx.commit().await?;
                self.keep_warm(Warm {
                    checkpoint: to,
                    states,
                });
                self.checkpoint_tx.send_replace(to);
                let newest = events
                    .last()
                    .map(|e| e.recorded_at)
                    .unwrap_or_else(OffsetDateTime::now_utc);
                let lag = if events.len() == BATCH {
                    (OffsetDateTime::now_utc() - newest)
                        .as_seconds_f64()
                        .max(0.0)
                } else {
                    0.0
                };
                let labels = vec![("projection", PROJECTION.into())];
                self.metrics
                    .set("backforge_projection_lag_seconds", labels.clone(), lag);
                self.metrics.inc(
                    "backforge_projection_events_total",
                    labels,
                    events.len() as u64,
                );
                tracing::debug!(events = events.len(), elapsed = ?started.elapsed(), "batch projected");
                Ok(if events.len() < BATCH {
                    Step::CaughtUp
                } else {
                    Step::Applied
                })
            }
            Applied::Lost => {
                tracing::info!(
                    "checkpoint moved under the projector (replay swap or another writer); re-reading"
                );
                tx.rollback().await?;
                Ok(Step::Applied)
            }
        }
    }
}

enum Step {
    /// A full batch: more may be waiting.
    Applied,
    /// A short batch: the visible feed is applied.
    CaughtUp,
    /// Nothing to apply.
    Idle,
}

pub(crate) async fn wait_or_stop(shutdown: &mut watch::Receiver<bool>, pause: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(pause) => {}
        _ = shutdown.changed() => {}
    }
}
