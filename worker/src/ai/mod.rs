//! The AI job consumer: a durable JetStream pull consumer of `<prefix>.jobs.ai` with explicit
//! acks, progress acks while a model is called, a deadline per job, bounded concurrency and
//! bounded redelivery with backoff (the generation consumer's rules), and a sweeper that fails AI
//! requests no job will finish.

pub mod budget;
pub mod job;
pub mod sweep;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use domain::Limits;
use event_store::PgEventStore;
use futures::StreamExt;
use messaging::{AiJob, Job, Names};
use runtime::metrics::Metrics;
use tokio::sync::{Semaphore, watch};

use crate::WorkerSettings;
use job::{AiJobContext, Outcome};

/// The AI consumer's name in metrics and `/health/ready`.
pub const AI_WORKER: &str = "ai_worker";

/// The models' client, under the SSRF rule of the environment: production's (https only, no
/// private address) or development's (loopback and http allowed);
/// `BACKFORGE_AI_ALLOW_PRIVATE_URLS=true` lets either reach private addresses.
pub fn client_from_env(
    production: bool,
    get: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<ai::AiClient> {
    let allow_private = match get("BACKFORGE_AI_ALLOW_PRIVATE_URLS")
        .as_deref()
        .map(str::trim)
    {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(other) => anyhow::bail!(
            "BACKFORGE_AI_ALLOW_PRIVATE_URLS must be `true` or `false`, not `{}`",
            other.chars().take(40).collect::<String>()
        ),
    };
    let policy = if production {
        ai::NetworkPolicy::production(allow_private)
    } else {
        ai::NetworkPolicy::development(allow_private)
    };
    Ok(ai::AiClient::new(policy)?)
}

pub struct AiWorker {
    pub store: PgEventStore,
    pub nats: async_nats::Client,
    pub names: Names,
    /// The generation worker's settings: the same deadline and redelivery rules; AI jobs run
    /// `ai_concurrency` at once.
    pub settings: WorkerSettings,
    pub metrics: Metrics,
    pub client: ai::AiClient,
    pub limits: Limits,
    /// The sandbox's function pool, where generated code is compiled and its examples run.
    pub functions: Arc<sandbox::Functions>,
}

impl AiWorker {
    /// Consumes AI jobs until `shutdown`; reconnects and recreates the consumer after failures.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut pause = Duration::from_millis(500);
        while !*shutdown.borrow() {
            match self.consume(&mut shutdown).await {
                Ok(()) => pause = Duration::from_millis(500),
                Err(error) => {
                    tracing::warn!(error = ?error, "AI worker lost its job stream; retrying");
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
        let consumer_name = self.names.job_consumer(AiJob::KIND);
        let consumer = stream
            .get_or_create_consumer(
                &consumer_name,
                pull::Config {
                    durable_name: Some(consumer_name.clone()),
                    filter_subject: self.names.job_subject(AiJob::KIND),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: self.settings.ack_wait,
                    max_deliver: self.settings.max_deliver,
                    // As for generations: never less than `ack_wait`, so a job still working
                    // (progress acks every ack_wait / 3) is not redelivered meanwhile.
                    backoff: crate::backoff(self.settings.max_deliver)
                        .into_iter()
                        .map(|step| step.max(self.settings.ack_wait))
                        .collect(),
                    ..Default::default()
                },
            )
            .await?;
        let mut messages = consumer.messages().await?;
        let permits = Arc::new(Semaphore::new(self.settings.ai_concurrency));
        tracing::info!("worker consuming AI jobs");
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
        let job = match AiJob::from_body(&message.payload) {
            Ok(job) => job,
            Err(error) => {
                tracing::error!(%error, "malformed AI job; dropping it");
                let _ = message.ack_with(AckKind::Term).await;
                return;
            }
        };
        let span = tracing::info_span!("ai_request", id = %job.ai_request_id, delivery = delivered);
        tracing::Instrument::instrument(self.handle_job(message, job, delivered), span).await;
    }

    fn count(&self, outcome: &'static str) {
        self.metrics.inc(
            "backforge_ai_jobs_total",
            vec![("outcome", outcome.into())],
            1,
        );
    }

    async fn handle_job(&self, message: jetstream::Message, job: AiJob, delivered: i64) {
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
        let ctx = AiJobContext {
            store: &self.store,
            client: &self.client,
            limits: &self.limits,
            functions: &self.functions,
            deadline: std::time::Instant::now() + self.settings.job_deadline,
        };
        let delivery = u32::try_from(delivered).unwrap_or(u32::MAX);
        let result =
            tokio::time::timeout(self.settings.job_deadline, job::run(&ctx, &job, delivery)).await;
        progress.abort();
        let error = match result {
            Ok(Ok(outcome)) => {
                self.count(match &outcome {
                    Outcome::Succeeded => "succeeded",
                    Outcome::Failed(error) => {
                        tracing::info!(%error, "AI request failed");
                        "failed"
                    }
                    Outcome::AlreadyFinished => "skipped",
                });
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
            tracing::error!(%error, "AI request failed on its last delivery");
            let reason = format!("failed after {delivered} deliveries: {error}");
            match job::record_failure(&self.store, &job, &reason).await {
                Ok(()) => self.count("failed"),
                // The sweeper records it later if the store is down now.
                Err(e) => tracing::error!(error = ?e, "could not record the failure"),
            }
            let _ = message.ack_with(AckKind::Term).await;
        } else {
            tracing::warn!(%error, "AI job delivery failed; it will be redelivered");
            let delay = crate::backoff(self.settings.max_deliver)
                .get((delivered - 1).max(0) as usize)
                .copied();
            let _ = message.ack_with(AckKind::Nak(delay)).await;
        }
    }
}
