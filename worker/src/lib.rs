//! The worker: a durable pull consumer of generation jobs with explicit acks, progress acks while
//! working, a deadline per job, bounded concurrency and bounded redelivery with backoff; the last
//! failed delivery and a deadline sweeper record failures, so nothing stays running forever. It
//! runs on a multi-threaded runtime of its own, and the generator in a child process.

pub mod ai;
pub mod artifacts;
pub mod cache;
pub mod generate;
pub mod job;
pub mod sweep;
pub mod verify;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use event_store::PgEventStore;
use futures::StreamExt;
use messaging::{GenerationJob, Job, Names};
use runtime::metrics::Metrics;
use tokio::sync::{Semaphore, watch};

use crate::job::{JobContext, Outcome};

/// How the worker behaves; every value has a `BACKFORGE_` variable.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Generation jobs handled at once (CPU-bound: the generator and the verify run).
    pub concurrency: usize,
    /// AI jobs handled at once (`BACKFORGE_AI_WORKER_CONCURRENCY`): each mostly waits for its
    /// model, for seconds, so they get their own, larger bound.
    pub ai_concurrency: usize,
    /// A job still running after this is abandoned and retried (or failed on its last delivery).
    pub job_deadline: Duration,
    /// Deliveries of one job, the first included.
    pub max_deliver: i64,
    /// Bounds building a verification virtualenv (`BACKFORGE_VERIFY_TIMEOUT_SECS`); the verify
    /// run itself is bounded by the job's deadline and `BACKFORGE_SANDBOX_VERIFY_*`.
    pub verify_timeout: Duration,
    /// How long the server waits for an ack (or a progress ack) before redelivering.
    pub ack_wait: Duration,
    /// Threads of the worker's own runtime (`BACKFORGE_WORKER_THREADS`).
    pub threads: usize,
    /// How the generator's child process runs and what bounds it.
    pub generator: generate::GeneratorProcess,
    /// The verification directory (virtualenvs and per-run project directories):
    /// `BACKFORGE_VENV_DIR`, else [`VERIFY_DIR_DEFAULT`]. Every directory above it must be
    /// searchable by the sandbox's uids and writable only by root ([`cache::shared_dir`]).
    pub venv_dir: PathBuf,
}

/// Where verification keeps its virtualenvs and per-run directories by default: outside any
/// home directory, which the sandbox's uids cannot enter.
pub const VERIFY_DIR_DEFAULT: &str = "/var/cache/backforge/verify";

/// The generator child's default address-space limit (`BACKFORGE_GENERATOR_MEMORY_BYTES`).
pub const GENERATOR_MEMORY_BYTES_DEFAULT: u64 = 512 * 1024 * 1024;

impl WorkerSettings {
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let num = |key: &str, default: u64| -> anyhow::Result<u64> {
            match get(key) {
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{key} must be a whole number")),
                None => Ok(default),
            }
        };
        let job_deadline = Duration::from_secs(num("BACKFORGE_JOB_DEADLINE_SECS", 600)?.max(5));
        let exe = match get("BACKFORGE_GENERATOR_EXE").filter(|e| !e.is_empty()) {
            Some(exe) => PathBuf::from(exe),
            None => std::env::current_exe()
                .map_err(|e| anyhow::anyhow!("cannot find this executable's path: {e}"))?,
        };
        let generator = generate::GeneratorProcess {
            exe,
            prlimit: generate::find_prlimit(),
            memory_bytes: num(
                "BACKFORGE_GENERATOR_MEMORY_BYTES",
                GENERATOR_MEMORY_BYTES_DEFAULT,
            )?,
            // Inside the job's own deadline, so the job can still record why it failed.
            timeout: Duration::from_secs(num("BACKFORGE_GENERATOR_TIMEOUT_SECS", 120)?.max(1))
                .min(job_deadline.mul_f64(0.9)),
        };
        let venv_dir = match get("BACKFORGE_VENV_DIR").filter(|d| !d.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from(VERIFY_DIR_DEFAULT),
        };
        Ok(Self {
            concurrency: num("BACKFORGE_WORKER_CONCURRENCY", 2)?.max(1) as usize,
            ai_concurrency: num("BACKFORGE_AI_WORKER_CONCURRENCY", 8)?.clamp(1, 256) as usize,
            job_deadline,
            max_deliver: num("BACKFORGE_JOB_MAX_DELIVER", 4)?.clamp(1, 20) as i64,
            verify_timeout: Duration::from_secs(num("BACKFORGE_VERIFY_TIMEOUT_SECS", 300)?.max(5)),
            ack_wait: Duration::from_secs(num("BACKFORGE_JOB_ACK_WAIT_SECS", 30)?.max(1)),
            threads: num("BACKFORGE_WORKER_THREADS", 2)?.clamp(1, 64) as usize,
            generator,
            venv_dir,
        })
    }
}

/// Redelivery delays after the 1st, 2nd, … failed delivery.
fn backoff(max_deliver: i64) -> Vec<Duration> {
    let steps = [2u64, 10, 30, 60, 120];
    (0..(max_deliver - 1).max(0) as usize)
        .map(|i| Duration::from_secs(steps[i.min(steps.len() - 1)]))
        .collect()
}

pub struct Worker {
    pub store: PgEventStore,
    pub nats: async_nats::Client,
    pub names: Names,
    pub settings: WorkerSettings,
    pub metrics: Metrics,
    /// Where generated backends are verified: the sandbox's verify pool (see [`verify::Verifier`]).
    pub verifier: Arc<verify::Verifier>,
}

impl Worker {
    /// Runs [`Worker::run`] on a multi-threaded runtime of its own, on threads of its own, so no
    /// job step can hold up the caller's runtime (which may serve HTTP and run the projector).
    /// Returns when the worker stops; a panic in it is resumed here, for the caller's supervisor.
    /// The runtime is shut down on the way out, which kills the children of unfinished jobs.
    pub async fn run_isolated(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        let threads = self.settings.threads;
        let (done, stopped) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("backforge-worker".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .thread_name("backforge-worker")
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        tracing::error!(%error, "cannot build the worker's runtime");
                        return;
                    }
                };
                let outcome =
                    runtime.block_on(async move { tokio::spawn(self.run(shutdown)).await });
                runtime.shutdown_timeout(Duration::from_secs(5));
                let _ = done.send(outcome);
            });
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start the worker's thread");
            return;
        }
        if let Ok(Err(error)) = stopped.await {
            if error.is_panic() {
                std::panic::resume_unwind(error.into_panic());
            }
        }
    }

    /// Consumes jobs until `shutdown`; reconnects and recreates the consumer after failures.
    /// (The sweeper, `sweep::Sweeper`, runs beside it as a consumer of its own.)
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        // The verify pool's self-test, once, beside the jobs (a verification waits for it).
        let verifier = self.verifier.clone();
        tokio::spawn(async move { verifier.self_test().await });
        let generator = &self.settings.generator;
        if generator.prlimit.is_none() && generator.memory_bytes > 0 {
            tracing::warn!(
                "util-linux `prlimit` was not found: the generator runs without its memory limit"
            );
        }
        let mut pause = Duration::from_millis(500);
        while !*shutdown.borrow() {
            match self.consume(&mut shutdown).await {
                Ok(()) => pause = Duration::from_millis(500),
                Err(error) => {
                    tracing::warn!(error = ?error, "worker lost its job stream; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.changed() => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    async fn consume(self: &Arc<Self>, shutdown: &mut watch::Receiver<bool>) -> anyhow::Result<()> {
        let js = jetstream::new(self.nats.clone());
        messaging::ensure_streams(&js, &self.names).await?;
        let stream = js.get_stream(self.names.jobs_stream()).await?;
        let consumer_name = self.names.job_consumer(GenerationJob::KIND);
        let consumer = stream
            .get_or_create_consumer(
                &consumer_name,
                pull::Config {
                    durable_name: Some(consumer_name.clone()),
                    filter_subject: self.names.job_subject(GenerationJob::KIND),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: self.settings.ack_wait,
                    max_deliver: self.settings.max_deliver,
                    // The server waits backoff[n] (not `ack_wait`) for an ack or a progress ack
                    // of the (n+1)th delivery when a backoff is set: a step shorter than the
                    // progress acks' period (ack_wait / 3) redelivered a job still running (after
                    // 2 s), so a second delivery generated and verified the same job again. Never
                    // less than `ack_wait`; a failed delivery's delay is the NAK's own.
                    backoff: backoff(self.settings.max_deliver)
                        .into_iter()
                        .map(|step| step.max(self.settings.ack_wait))
                        .collect(),
                    ..Default::default()
                },
            )
            .await?;
        let mut messages = consumer.messages().await?;
        let permits = Arc::new(Semaphore::new(self.settings.concurrency));
        tracing::info!("worker consuming generation jobs");
        loop {
            let permit = tokio::select! {
                p = permits.clone().acquire_owned() => p?,
                _ = shutdown.changed() => return Ok(()),
            };
            let message = tokio::select! {
                m = messages.next() => m,
                _ = shutdown.changed() => return Ok(()),
            };
            let Some(message) = message else {
                anyhow::bail!("the job stream ended");
            };
            let message = message.map_err(|e| anyhow::anyhow!("{e}"))?;
            let me = self.clone();
            tokio::spawn(async move {
                me.handle(message).await;
                drop(permit);
            });
        }
    }

    async fn handle(&self, message: jetstream::Message) {
        let delivered = message.info().map(|i| i.delivered).unwrap_or(1);
        let job = match GenerationJob::from_body(&message.payload) {
            Ok(job) => job,
            Err(error) => {
                tracing::error!(%error, "malformed generation job; dropping it");
                let _ = message.ack_with(AckKind::Term).await;
                return;
            }
        };
        let span = tracing::info_span!("generation", id = %job.generation_id, attempt = delivered);
        // `instrument`, not `span.enter()`: a guard held across awaits would lend this span to
        // whatever else runs on the thread meanwhile.
        tracing::Instrument::instrument(self.handle_job(message, job, delivered), span).await;
    }

    async fn handle_job(&self, message: jetstream::Message, job: GenerationJob, delivered: i64) {
        // Keep the server from redelivering while this is still working.
        let progress_every = (self.settings.ack_wait / 3).max(Duration::from_millis(300));
        let progress = {
            let message = message.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(progress_every).await;
                    if message.ack_with(AckKind::Progress).await.is_err() {
                        return;
                    }
                }
            })
        };
        let ctx = JobContext {
            store: &self.store,
            generator: &self.settings.generator,
            verifier: &self.verifier,
            deadline: std::time::Instant::now() + self.settings.job_deadline,
        };
        let attempt = u32::try_from(delivered).unwrap_or(u32::MAX);
        let result =
            tokio::time::timeout(self.settings.job_deadline, job::run(&ctx, &job, attempt)).await;
        progress.abort();
        let error = match result {
            Ok(Ok(outcome)) => {
                let label = match &outcome {
                    Outcome::Succeeded => "succeeded",
                    Outcome::Failed(reason) => {
                        tracing::info!(%reason, "generation failed");
                        "failed"
                    }
                    Outcome::AlreadyFinished => "skipped",
                };
                self.metrics.inc(
                    "backforge_generation_jobs_total",
                    vec![("outcome", label.into())],
                    1,
                );
                let _ = message.ack().await;
                return;
            }
            Ok(Err(error)) => format!("{error:#}"),
            Err(_) => format!(
                "the job exceeded its deadline of {} s",
                self.settings.job_deadline.as_secs()
            ),
        };
        if delivered >= self.settings.max_deliver {
            tracing::error!(%error, "generation failed on its last delivery");
            let reason = format!("failed after {delivered} attempts: {error}");
            match job::record_failure(&self.store, &job, &reason, Vec::new(), None).await {
                Ok(()) => {
                    self.metrics.inc(
                        "backforge_generation_jobs_total",
                        vec![("outcome", "failed".into())],
                        1,
                    );
                    let _ = message.ack_with(AckKind::Term).await;
                }
                // The sweeper records it later if the store is down now.
                Err(e) => {
                    tracing::error!(error = ?e, "could not record the failure");
                    let _ = message.ack_with(AckKind::Term).await;
                }
            }
        } else {
            tracing::warn!(%error, "generation attempt failed; it will be redelivered");
            let delay = backoff(self.settings.max_deliver)
                .get((delivered - 1).max(0) as usize)
                .copied();
            let _ = message.ack_with(AckKind::Nak(delay)).await;
        }
    }
}
