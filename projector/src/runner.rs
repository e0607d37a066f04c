//! The live projector: one leader per database follows the feed from its checkpoint and applies
//! batches; others wait for the leadership lock and take over when the leader dies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use domain::project::Project;
use event_store::{EventStore, PgEventStore, Position, StateCache};
use read_model::tables::{LIVE, PROJECTION};
use read_model::{Announced, FeatureLists, checkpoint};
use runtime::metrics::Metrics;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;
use uuid::Uuid;

use crate::apply::{Applied, ApplyError, DERIVED_COMMIT, ProjectStates, apply_batch};
use crate::parked;
use crate::supervise::{Backoff, Consumers, MAX_BACKOFF, Pace, age, cause_chain};

/// Events read and applied per transaction.
pub const BATCH: usize = 1000;
/// The advisory lock that elects the read-model projector.
const LEADER_LOCK: i64 = 0x5250_4c45_4144_0001;
/// How long an idle projector waits for a feed signal before polling anyway.
const IDLE_POLL: Duration = Duration::from_millis(250);
/// A caught-up projection reads again no sooner than this after its last read began
/// (`supervise::Pace`): the read models trail the feed by at most this much more, in exchange for
/// one batch where a loaded command side would otherwise cause one read, apply and checkpoint
/// per commit.
pub const READ_PACE: Duration = Duration::from_millis(5);
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
    /// Where this projection reports whether it moves (`read_models`).
    pub consumers: Consumers,
    checkpoint_tx: Arc<watch::Sender<Announced>>,
    warm: std::sync::Mutex<Option<Warm>>,
    /// The query side's feature lists in this process, carried to each committed version.
    feature_lists: Option<Arc<FeatureLists>>,
    /// The command side's folded projects, when it runs in this process.
    command_states: Option<Arc<StateCache<Project>>>,
}

/// A failed step: why, and what it knows about where the projection stands.
struct Failure {
    error: anyhow::Error,
    /// The oldest event the projection has not applied, when the step got to read it.
    oldest: Option<OffsetDateTime>,
    /// The event the failure is pinned to, when it is known.
    event_id: Option<Uuid>,
    /// Read at most this many events until the checkpoint passes `Narrow::until`.
    narrow: Option<Narrow>,
}

/// After a failure that a smaller batch can pin down, batches shrink until the checkpoint has
/// passed the failed batch: everything before the bad event applies, and the stall names it.
#[derive(Debug, Clone, Copy)]
struct Narrow {
    until: Position,
    limit: usize,
}

impl Failure {
    fn transient(error: impl Into<anyhow::Error>) -> Self {
        Self {
            error: error.into(),
            oldest: None,
            event_id: None,
            narrow: None,
        }
    }
}

impl Projector {
    pub fn new(
        store: PgEventStore,
        pool: Pool,
        database_url: String,
        metrics: Metrics,
        consumers: Consumers,
    ) -> Self {
        let (checkpoint_tx, _) = watch::channel(Announced::NONE);
        metrics.describe(
            "backforge_projection_lag_seconds",
            "Age of the oldest event a projection has not applied yet (also while it is stalled); 0 when caught up",
        );
        metrics.describe(
            "backforge_projection_events_total",
            "Events applied by a projection",
        );
        metrics.describe(
            "backforge_projection_leader",
            "1 while this process leads the projection",
        );
        consumers.register(PROJECTION);
        Self {
            store,
            pool,
            database_url,
            metrics,
            instance: Uuid::new_v4(),
            consumers,
            checkpoint_tx: Arc::new(checkpoint_tx),
            warm: std::sync::Mutex::new(None),
            feature_lists: None,
            command_states: None,
        }
    }

    /// Shares the in-process command side's cache of folded projects: after each commit the
    /// projector takes the command side's state of each project it wrote when that is at the
    /// same version, so the process holds each unchanged feature once.
    pub fn with_command_states(mut self, states: Arc<StateCache<Project>>) -> Self {
        self.command_states = Some(states);
        self
    }

    /// Shares the query side's feature lists: after each commit the projector moves the lists
    /// they hold for the batch's projects to the versions it wrote.
    pub fn with_feature_lists(mut self, lists: Arc<FeatureLists>) -> Self {
        self.feature_lists = Some(lists);
        self
    }

    /// The checkpoint this process has seen applied (by itself, or read back while leading).
    pub fn checkpoints(&self) -> watch::Receiver<Announced> {
        self.checkpoint_tx.subscribe()
    }

    /// Exported on every step, stalled or not, so monitoring always sees how far behind it is.
    fn lag(&self, seconds: f64) {
        self.metrics.set(
            "backforge_projection_lag_seconds",
            vec![("projection", PROJECTION.into())],
            seconds,
        );
        self.consumers.lag(PROJECTION, seconds);
    }

    /// Runs until `shutdown` turns true: waits for leadership, then projects.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        // A run restarted by its supervisor (after a panic mid-lead) leads again only once it
        // has the lock: until then readers ask the table.
        self.checkpoint_tx.send_modify(|c| c.leads = false);
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
                    tracing::warn!(error = %cause_chain(&error), "cannot reach PostgreSQL for projector leadership; retrying");
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
            self.checkpoint_tx.send_modify(|c| c.leads = false);
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
        let mut backoff = Backoff::new(Duration::from_millis(100), MAX_BACKOFF);
        let mut narrow: Option<Narrow> = None;
        let mut pace = Pace::new(READ_PACE);
        while !*shutdown.borrow() {
            if !leadership.alive() {
                tracing::warn!("projector lost its leadership connection");
                return;
            }
            pace.read_starts();
            match self.step(&mut narrow).await {
                Ok(step) => {
                    backoff.reset();
                    if let Some(stall) = self.consumers.ok(PROJECTION) {
                        tracing::info!(stalled_since = %stall.since, "the read-model projection moves again");
                    }
                    // A short batch reached the end of the visible feed: wait for the next commit
                    // (one that landed meanwhile has already marked the signal) instead of re-reading.
                    if matches!(step, Step::Idle | Step::CaughtUp) {
                        tokio::select! {
                            _ = signal.changed() => {}
                            _ = tokio::time::sleep(IDLE_POLL) => {}
                            _ = shutdown.changed() => {}
                        }
                        pace.wait(shutdown).await;
                    }
                }
                Err(failure) => {
                    if let Some(oldest) = failure.oldest {
                        self.lag(age(oldest));
                    }
                    if failure.narrow.is_some() {
                        narrow = failure.narrow;
                    }
                    let wait = backoff.next_wait();
                    let cause = cause_chain(&failure.error);
                    // One line per backoff step, with the cause chain and never a backtrace.
                    tracing::error!(
                        consumer = PROJECTION,
                        event_id = ?failure.event_id,
                        cause = %cause,
                        retry_in = ?wait,
                        "the read-model projection cannot apply; it stays where it is and retries"
                    );
                    self.consumers.stalled(PROJECTION, cause, failure.event_id);
                    parked::wait_to_retry(
                        &self.store,
                        &self.pool,
                        PROJECTION,
                        shutdown,
                        wait,
                        failure.event_id,
                    )
                    .await;
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

    /// Reads one batch after the checkpoint and applies it, skipping parked events.
    async fn step(&self, narrow: &mut Option<Narrow>) -> Result<Step, Failure> {
        let mut client = self.pool.get().await.map_err(Failure::transient)?;
        let (from, mut states) = match self.take_warm() {
            Some(warm) => (warm.checkpoint, warm.states),
            None => (
                checkpoint::read(&client, LIVE)
                    .await
                    .map_err(Failure::transient)?,
                ProjectStates::new(PROJECT_STATES),
            ),
        };
        self.checkpoint_tx.send_if_modified(|c| {
            let now = Announced {
                at: from,
                leads: true,
            };
            let changed = *c != now;
            *c = now;
            changed
        });
        let limit = match *narrow {
            Some(n) if from < n.until => n.limit,
            _ => {
                *narrow = None;
                BATCH
            }
        };
        let events = self
            .store
            .read_feed(from, limit)
            .await
            .map_err(Failure::transient)?;
        let Some(first) = events.first() else {
            self.lag(0.0);
            self.keep_warm(Warm {
                checkpoint: from,
                states,
            });
            return Ok(Step::Idle);
        };
        let oldest = first.recorded_at;
        let started = Instant::now();
        let tx = client.transaction().await.map_err(Failure::transient)?;
        let (relaxed, parked) = tokio::join!(
            tx.batch_execute(DERIVED_COMMIT),
            parked::load(&tx, PROJECTION)
        );
        let parked = relaxed.and(parked).map_err(|e| Failure {
            oldest: Some(oldest),
            ..Failure::transient(e)
        })?;
        let applied = apply_batch(
            &tx,
            LIVE,
            from,
            &events,
            Some(self.instance),
            &mut states,
            &parked,
        )
        .await;
        let applied = match applied {
            Ok(applied) => applied,
            Err(error) => {
                let (event_id, narrow) = match &error {
                    // The bad event is known: apply what precedes it, then stop at it.
                    ApplyError::Poison { event_id, .. } => {
                        let index = events.iter().position(|e| e.event_id == *event_id);
                        let at = index.and_then(|i| events.get(i)).map(|e| e.position);
                        let narrow = at.zip(index).map(|(until, i)| Narrow {
                            until,
                            limit: i.max(1),
                        });
                        (Some(*event_id), narrow)
                    }
                    // PostgreSQL refused a write: one event at a time finds which.
                    ApplyError::Database(e) if e.as_db_error().is_some() => {
                        if events.len() == 1 {
                            (Some(first.event_id), None)
                        } else {
                            let until = events.last().map_or(from, |e| e.position);
                            (None, Some(Narrow { until, limit: 1 }))
                        }
                    }
                    ApplyError::Serialise(_) if events.len() == 1 => (Some(first.event_id), None),
                    _ => (None, None),
                };
                return Err(Failure {
                    error: anyhow::Error::new(error)
                        .context(format!("applying {} events after {from}", events.len())),
                    oldest: Some(oldest),
                    event_id,
                    narrow,
                });
            }
        };
        match applied {
            Applied::To(to) => {
                tx.commit().await.map_err(|e| Failure {
                    oldest: Some(oldest),
                    ..Failure::transient(e)
                })?;
                if let Some(command_states) = &self.command_states {
                    states.share_with(&events, command_states);
                }
                if let Some(lists) = &self.feature_lists {
                    states.carry_lists(&events, lists);
                }
                self.keep_warm(Warm {
                    checkpoint: to,
                    states,
                });
                self.checkpoint_tx.send_replace(Announced {
                    at: to,
                    leads: true,
                });
                let newest = events.last().map_or(oldest, |e| e.recorded_at);
                self.lag(if events.len() == limit && limit == BATCH {
                    age(newest)
                } else {
                    0.0
                });
                self.metrics.inc(
                    "backforge_projection_events_total",
                    vec![("projection", PROJECTION.into())],
                    events.len() as u64,
                );
                tracing::debug!(events = events.len(), elapsed = ?started.elapsed(), "batch projected");
                Ok(if events.len() < limit {
                    Step::CaughtUp
                } else {
                    Step::Applied
                })
            }
            Applied::Lost => {
                tracing::info!(
                    "checkpoint moved under the projector (replay swap or another writer); re-reading"
                );
                tx.rollback().await.map_err(Failure::transient)?;
                // The rows may have been rebuilt: lists kept at their versions are not proven.
                if let Some(lists) = &self.feature_lists {
                    lists.clear();
                }
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

pub(crate) use crate::supervise::wait_or_stop;
