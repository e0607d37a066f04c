//! Consumer health: which background consumers (the projection, the relays, the sweeper, the job
//! worker) are stalled and why, the metrics that say so, the backoff they retry with, and the
//! supervisor that restarts a consumer task that died.
//!
//! A consumer that fails never skips: it stays where it is, retries with [`Backoff`], logs the
//! cause chain once per backoff step (never a backtrace), and reports itself through
//! [`Consumers`]: `backforge_consumer_stalled{consumer}` 1, `backforge_consumer_lag_seconds`
//! growing, and `/health/ready`'s `checks.consumers`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::metrics::Metrics;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// 1 while a consumer is stalled, 0 while it moves.
pub const STALLED_METRIC: &str = "backforge_consumer_stalled";
/// Age of a consumer's oldest unprocessed event; 0 when it has processed everything visible.
pub const LAG_METRIC: &str = "backforge_consumer_lag_seconds";
/// Restarts of a consumer task that died (panicked or returned).
pub const RESTARTS_METRIC: &str = "backforge_consumer_restarts_total";
/// The longest a failing consumer waits before it tries again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A restarted task that has run this long without failing again is healthy as far as the
/// supervisor can tell (consumers that report their own progress clear their stall sooner).
const HEALTHY_AFTER: Duration = Duration::from_secs(10);

/// Why a consumer does not move, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stall {
    /// The cause chain of the last failure, in one line.
    pub reason: String,
    /// When the consumer first failed in this run of failures.
    pub since: OffsetDateTime,
    /// The event it cannot get past, when the failure is pinned to one.
    pub event_id: Option<Uuid>,
    /// Set by the supervisor (the task died), so only the supervisor clears it.
    by_supervisor: bool,
}

/// The health of every consumer in this process, shared by the consumers and `/health/ready`.
#[derive(Clone)]
pub struct Consumers {
    states: Arc<Mutex<BTreeMap<&'static str, Option<Stall>>>>,
    metrics: Metrics,
}

impl Consumers {
    pub fn new(metrics: Metrics) -> Self {
        metrics.describe(
            STALLED_METRIC,
            "1 while a consumer (projection, relay, sweeper, worker) cannot move past a failure",
        );
        metrics.describe(
            LAG_METRIC,
            "Age in seconds of the oldest event a consumer has not processed yet; 0 when caught up",
        );
        metrics.describe(
            RESTARTS_METRIC,
            "Times a consumer task died (panic or error) and was restarted",
        );
        Self {
            states: Arc::new(Mutex::new(BTreeMap::new())),
            metrics,
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn labels(name: &'static str) -> Vec<(&'static str, String)> {
        vec![("consumer", name.to_owned())]
    }

    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<&'static str, Option<Stall>>) -> T) -> T {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut states)
    }

    /// Makes `name` known (healthy) so it is reported and exported before its first step.
    pub fn register(&self, name: &'static str) {
        let new = self.with(|s| {
            let new = !s.contains_key(name);
            s.entry(name).or_insert(None);
            new
        });
        if new {
            self.metrics.set(STALLED_METRIC, Self::labels(name), 0.0);
        }
    }

    /// `name` moved: clears its stall. Returns the stall it recovered from, if any, so the caller
    /// can say once that it recovered.
    pub fn ok(&self, name: &'static str) -> Option<Stall> {
        let was = self.with(|s| s.insert(name, None).flatten());
        self.metrics.set(STALLED_METRIC, Self::labels(name), 0.0);
        was
    }

    /// `name` failed. Keeps the first `since` of a run of failures; returns true when this failure
    /// starts a new stall.
    pub fn stalled(&self, name: &'static str, reason: String, event_id: Option<Uuid>) -> bool {
        self.stall(name, reason, event_id, false)
    }

    fn stall(
        &self,
        name: &'static str,
        reason: String,
        event_id: Option<Uuid>,
        by_supervisor: bool,
    ) -> bool {
        let started = self.with(|s| {
            let slot = s.entry(name).or_insert(None);
            let (since, started) = match slot {
                Some(previous) => (previous.since, false),
                None => (OffsetDateTime::now_utc(), true),
            };
            *slot = Some(Stall {
                reason,
                since,
                event_id,
                by_supervisor,
            });
            started
        });
        self.metrics.set(STALLED_METRIC, Self::labels(name), 1.0);
        started
    }

    /// Sets the age of `name`'s oldest unprocessed event (0 when it is caught up).
    pub fn lag(&self, name: &'static str, seconds: f64) {
        self.metrics
            .set(LAG_METRIC, Self::labels(name), seconds.max(0.0));
    }

    /// Every consumer and its stall, by name.
    pub fn snapshot(&self) -> Vec<(&'static str, Option<Stall>)> {
        self.with(|s| s.iter().map(|(k, v)| (*k, v.clone())).collect())
    }

    pub fn any_stalled(&self) -> bool {
        self.with(|s| s.values().any(Option::is_some))
    }
}

/// The seconds since `at`, never negative (clocks of two machines may disagree a little).
pub fn age(at: OffsetDateTime) -> f64 {
    (OffsetDateTime::now_utc() - at).as_seconds_f64().max(0.0)
}

/// Exponential backoff from `min` to `max`, doubling per failure.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            next: min,
        }
    }

    /// The wait before the next attempt; the one after it is twice as long, up to `max`.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }

    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Spaces a caught-up feed consumer's reads: after it has read the whole visible feed, its next
/// read starts no sooner than `interval` after the last one began. Under load every commit signals
/// the feed, and reading, applying and checkpointing a handful of events per signal costs the
/// database more statements than the commands themselves; a consumer that waits a few
/// milliseconds takes the same events in one batch. An idle consumer's first read after a commit
/// is not delayed (its last read is older than `interval`), and a consumer with a backlog reads
/// its next full batch at once.
#[derive(Debug, Clone)]
pub struct Pace {
    interval: Duration,
    last: Option<tokio::time::Instant>,
}

impl Pace {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: None,
        }
    }

    /// Marks the start of a read.
    pub fn read_starts(&mut self) {
        self.last = Some(tokio::time::Instant::now());
    }

    /// Waits until `interval` has passed since the last read began, or less if `shutdown` changes.
    pub async fn wait(&self, shutdown: &mut watch::Receiver<bool>) {
        if let Some(last) = self.last {
            tokio::select! {
                _ = tokio::time::sleep_until(last + self.interval) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

/// The cause chain of `error` on one line (`outer: inner: root`), without a backtrace: what a
/// retrying consumer logs once per backoff step.
pub fn cause_chain(error: &anyhow::Error) -> String {
    format!("{error:#}")
}

/// Waits `pause`, or less if `shutdown` changes.
pub async fn wait_or_stop(shutdown: &mut watch::Receiver<bool>, pause: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(pause) => {}
        _ = shutdown.changed() => {}
    }
}

/// Runs the consumer `name` as a task made by `start`, and starts it again with backoff whenever
/// it dies before `shutdown` (a panic, or a return while the process still runs). Each death is
/// logged once with its cause, counted in `backforge_consumer_restarts_total` and reported as a
/// stall until the new task has run for a while.
pub fn supervise<F, Fut>(
    name: &'static str,
    consumers: Consumers,
    mut shutdown: watch::Receiver<bool>,
    start: F,
) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    consumers.register(name);
    tokio::spawn(async move {
        let mut backoff = Backoff::new(Duration::from_secs(1), MAX_BACKOFF);
        loop {
            let started = Instant::now();
            let mut task = tokio::spawn(start());
            let mut healthy = Box::pin(tokio::time::sleep(HEALTHY_AFTER));
            let outcome = loop {
                tokio::select! {
                    outcome = &mut task => break outcome,
                    _ = &mut healthy, if !healthy.is_elapsed() => {
                        let cleared = consumers.with(|s| match s.get(name) {
                            Some(Some(stall)) if stall.by_supervisor => {
                                s.insert(name, None);
                                true
                            }
                            _ => false,
                        });
                        if cleared {
                            consumers.metrics.set(STALLED_METRIC, Consumers::labels(name), 0.0);
                            tracing::info!(consumer = name, "restarted consumer runs again");
                        }
                    }
                }
            };
            if *shutdown.borrow() {
                return;
            }
            let why = match outcome {
                Ok(()) => "its task returned while the process still runs".to_owned(),
                Err(error) if error.is_panic() => {
                    let panic = error.into_panic();
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic without a message".to_owned());
                    format!("its task panicked: {message}")
                }
                Err(error) => format!("its task was cancelled: {error}"),
            };
            if started.elapsed() > MAX_BACKOFF * 10 {
                backoff.reset();
            }
            let wait = backoff.next_wait();
            tracing::error!(consumer = name, cause = %why, restart_in = ?wait, "consumer died; restarting it");
            consumers
                .metrics
                .inc(RESTARTS_METRIC, Consumers::labels(name), 1);
            consumers.stall(name, format!("{why}; restarting"), None, true);
            wait_or_stop(&mut shutdown, wait).await;
            if *shutdown.borrow() {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let waits: Vec<u128> = (0..5).map(|_| b.next_wait().as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
        b.reset();
        assert_eq!(b.next_wait(), Duration::from_millis(100));
    }

    #[test]
    fn a_stall_keeps_its_first_time_and_shows_in_the_metrics_until_cleared() {
        let consumers = Consumers::new(Metrics::new());
        consumers.register("read_models");
        assert!(
            consumers
                .metrics()
                .render()
                .contains("backforge_consumer_stalled{consumer=\"read_models\"} 0")
        );
        assert!(consumers.stalled("read_models", "first".into(), None));
        let since = consumers.snapshot()[0].1.clone().unwrap().since;
        assert!(!consumers.stalled("read_models", "second".into(), Some(Uuid::nil())));
        let stall = consumers.snapshot()[0].1.clone().unwrap();
        assert_eq!(
            (stall.since, stall.reason.as_str(), stall.event_id),
            (since, "second", Some(Uuid::nil()))
        );
        assert!(consumers.any_stalled());
        assert!(
            consumers
                .metrics()
                .render()
                .contains("backforge_consumer_stalled{consumer=\"read_models\"} 1")
        );
        assert!(consumers.ok("read_models").is_some());
        assert!(!consumers.any_stalled());
    }

    #[test]
    fn the_cause_chain_is_one_line_without_a_backtrace() {
        let error = anyhow::anyhow!("root cause")
            .context("middle")
            .context("outer");
        assert_eq!(cause_chain(&error), "outer: middle: root cause");
    }

    #[tokio::test(start_paused = true)]
    async fn a_consumer_task_that_panics_is_restarted_and_counted() {
        let consumers = Consumers::new(Metrics::new());
        let (stop_tx, stop_rx) = watch::channel(false);
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let (alive_tx, mut alive_rx) = watch::channel(0usize);
        let alive_tx = Arc::new(alive_tx);
        let handle = supervise("flaky", consumers.clone(), stop_rx, move || {
            let runs = counted.clone();
            let alive = alive_tx.clone();
            async move {
                let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
                alive.send_replace(n);
                if n == 1 {
                    panic!("poisoned state");
                }
                std::future::pending::<()>().await;
            }
        });
        // The first run panics; the supervisor reports it and starts a second run.
        while *alive_rx.borrow() < 2 {
            alive_rx.changed().await.unwrap();
        }
        let stall = consumers.snapshot()[0]
            .1
            .clone()
            .expect("stalled after the panic");
        assert!(stall.reason.contains("poisoned state"), "{}", stall.reason);
        let text = consumers.metrics().render();
        assert!(text.contains("backforge_consumer_restarts_total{consumer=\"flaky\"} 1"));
        // Once the new run has lasted a while, the supervisor's stall is lifted.
        tokio::time::sleep(HEALTHY_AFTER + Duration::from_secs(1)).await;
        assert!(!consumers.any_stalled());
        let _ = stop_tx.send(true);
        handle.abort();
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_paced_consumer_waits_out_the_interval_only_after_a_recent_read() {
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let mut pace = Pace::new(Duration::from_millis(10));
        // Given no read yet, when it waits, then it goes on at once.
        let start = tokio::time::Instant::now();
        pace.wait(&mut stop_rx).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        // Given a read that began 3 ms ago, when it waits, then the next read starts 10 ms after it.
        pace.read_starts();
        tokio::time::sleep(Duration::from_millis(3)).await;
        pace.wait(&mut stop_rx).await;
        assert_eq!(start.elapsed(), Duration::from_millis(10));
        // Given a read longer ago than the interval (an idle consumer), it waits for nothing.
        pace.read_starts();
        tokio::time::sleep(Duration::from_millis(25)).await;
        let idle = tokio::time::Instant::now();
        pace.wait(&mut stop_rx).await;
        assert_eq!(idle.elapsed(), Duration::ZERO);
        // Given a fresh read, when shutdown is asked for, then the wait ends at once.
        pace.read_starts();
        stop_tx.send_replace(true);
        let stopping = tokio::time::Instant::now();
        pace.wait(&mut stop_rx).await;
        assert_eq!(stopping.elapsed(), Duration::ZERO);
    }
}
