//! Feed relays to NATS JetStream: integration events (CloudEvents) and generation jobs. Each has its
//! own checkpoint and leader; up to 32 publishes are in flight, and the checkpoint advances only
//! over the contiguous prefix the server has acknowledged. A relay that cannot publish an event
//! stalls on it (never skips it) until it can, or an operator parks it; a relay whose server's
//! `max_payload` cannot carry the largest accepted event refuses to start.

use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use bytes::Bytes;
use deadpool_postgres::Pool;
use domain::AnyEvent;
use event_store::{EventStore, PgEventStore, Position, RecordedEvent};
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use messaging::{AiJob, CloudEvent, GenerationJob, Job, Names, StoredEvent};
use runtime::metrics::Metrics;
use time::OffsetDateTime;
use tokio::sync::watch;
use uuid::Uuid;

use crate::parked;
use crate::runner::{Leadership, try_lead};
use crate::supervise::{Backoff, Consumers, MAX_BACKOFF, Pace, age, cause_chain, wait_or_stop};

/// Publishes awaiting their acknowledgement at once.
pub const IN_FLIGHT: usize = 32;
const BATCH: usize = 512;
/// A caught-up relay reads again no sooner than this after its last read began
/// (`supervise::Pace`): integration events and jobs leave at most this much later, in exchange
/// for one publish batch and one checkpoint write where a loaded command side would otherwise
/// cause one per commit.
pub const READ_PACE: Duration = Duration::from_millis(10);

/// What a relay publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayKind {
    /// Every domain event, as a CloudEvent on `<PREFIX>_EVENTS`.
    Events,
    /// A job on `<PREFIX>_JOBS` per `GenerationRequested` and per `AiRequested`.
    Jobs,
}

impl RelayKind {
    pub fn name(self) -> &'static str {
        match self {
            RelayKind::Events => "nats_events",
            RelayKind::Jobs => "nats_jobs",
        }
    }

    fn lock(self) -> i64 {
        match self {
            RelayKind::Events => 0x5250_4c45_4144_0002,
            RelayKind::Jobs => 0x5250_4c45_4144_0003,
        }
    }
}

/// What a relay adds to an event's own size on the wire (CloudEvent envelope, headers):
/// `BACKFORGE_MAX_EVENT_BYTES` plus this must fit the server's `max_payload`.
pub const ENVELOPE_ALLOWANCE: usize = 16 * 1024;
/// `BACKFORGE_MAX_EVENT_BYTES`'s default, for relays built without settings (tests).
pub const DEFAULT_MAX_EVENT_BYTES: usize = 512 * 1024;

pub struct Relay {
    pub kind: RelayKind,
    pub store: PgEventStore,
    pub pool: Pool,
    pub database_url: String,
    pub nats: async_nats::Client,
    pub names: Names,
    pub metrics: Metrics,
    /// Where this relay reports whether it moves.
    pub consumers: Consumers,
    /// The largest event the store accepts (`BACKFORGE_MAX_EVENT_BYTES`).
    pub max_event_bytes: usize,
}

/// A failed step: why, the checkpoint it got to, and the event it could not get past.
struct Failure {
    error: anyhow::Error,
    /// The oldest event not yet relayed, when the step read it.
    oldest: Option<OffsetDateTime>,
    event_id: Option<Uuid>,
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Self {
            error,
            oldest: None,
            event_id: None,
        }
    }
}

/// Whether the NATS server can carry every event the store accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Payload {
    Fits,
    /// No server `INFO` yet (not connected).
    Unknown,
    TooSmall {
        max_payload: usize,
    },
}

impl Relay {
    /// A relay with its own health registry and the default event size limit; see
    /// [`Relay::with_consumers`] and [`Relay::with_max_event_bytes`].
    pub fn new(
        kind: RelayKind,
        store: PgEventStore,
        database_url: String,
        nats: async_nats::Client,
        names: Names,
        metrics: Metrics,
    ) -> Self {
        Self {
            kind,
            pool: store.pool().clone(),
            store,
            database_url,
            nats,
            names,
            consumers: Consumers::new(metrics.clone()),
            metrics,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
        }
    }

    pub fn with_consumers(mut self, consumers: Consumers) -> Self {
        self.consumers = consumers;
        self
    }

    pub fn with_max_event_bytes(mut self, max_event_bytes: usize) -> Self {
        self.max_event_bytes = max_event_bytes;
        self
    }

    fn payload(&self) -> Payload {
        let max_payload = self.nats.server_info().max_payload;
        if max_payload == 0 {
            Payload::Unknown
        } else if self.max_event_bytes.saturating_add(ENVELOPE_ALLOWANCE) > max_payload {
            Payload::TooSmall { max_payload }
        } else {
            Payload::Fits
        }
    }

    fn lag(&self, seconds: f64) {
        self.consumers.lag(self.kind.name(), seconds);
    }

    /// Runs until `shutdown`: checks that the server's `max_payload` carries every event the
    /// store accepts, waits for this relay's leadership, then relays.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let name = self.kind.name();
        self.consumers.register(name);
        let js = jetstream::new(self.nats.clone());
        let mut refused = false;
        while !*shutdown.borrow() {
            match self.payload() {
                Payload::Fits => {
                    if refused {
                        tracing::info!(
                            relay = name,
                            "the NATS server's max_payload now fits; the relay starts"
                        );
                        refused = false;
                    }
                }
                Payload::Unknown => {
                    self.consumers
                        .stalled(name, "NATS is not connected yet".into(), None);
                    wait_or_stop(&mut shutdown, Duration::from_millis(250)).await;
                    continue;
                }
                Payload::TooSmall { max_payload } => {
                    let reason = format!(
                        "refusing to start: the NATS server's max_payload ({max_payload} bytes) is \
                         smaller than BACKFORGE_MAX_EVENT_BYTES ({}) + {ENVELOPE_ALLOWANCE} bytes of \
                         envelope, so the largest accepted event could never be published; raise \
                         max_payload on the server or lower BACKFORGE_MAX_EVENT_BYTES",
                        self.max_event_bytes
                    );
                    if !refused {
                        // Said once; the relay checks again quietly in case the server changes.
                        tracing::error!(relay = name, reason = %reason, "relay refuses to start");
                        refused = true;
                    }
                    self.consumers.stalled(name, reason, None);
                    wait_or_stop(&mut shutdown, Duration::from_secs(5)).await;
                    continue;
                }
            }
            let leadership = match try_lead(&self.database_url, self.kind.lock()).await {
                Ok(Some(l)) => l,
                Ok(None) => {
                    // Standing by for the leader is healthy.
                    self.consumers.ok(name);
                    wait_or_stop(&mut shutdown, Duration::from_millis(500)).await;
                    continue;
                }
                Err(error) => {
                    tracing::warn!(error = %cause_chain(&error), relay = name, "cannot reach PostgreSQL for relay leadership");
                    wait_or_stop(&mut shutdown, Duration::from_secs(1)).await;
                    continue;
                }
            };
            tracing::info!(relay = name, "relay leads");
            self.lead(&js, &leadership, &mut shutdown).await;
        }
    }

    async fn lead(
        &self,
        js: &jetstream::Context,
        leadership: &Leadership,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        let name = self.kind.name();
        let mut signal = self.store.feed_signal();
        let mut streams_ready = false;
        // The checkpoint as this leader last saved it: read once, then kept in memory.
        let mut at: Option<Position> = None;
        let mut backoff = Backoff::new(Duration::from_millis(200), MAX_BACKOFF);
        let mut pace = Pace::new(READ_PACE);
        while !*shutdown.borrow() && leadership.alive() {
            if !matches!(self.payload(), Payload::Fits) {
                // Reconnected to a server that cannot carry every event: give up leadership.
                return;
            }
            let stepped: Result<(Step, Position), Failure> = async {
                if !streams_ready {
                    // Bounded: a request sent while disconnected may never be answered.
                    tokio::time::timeout(
                        Duration::from_secs(5),
                        messaging::ensure_streams(js, &self.names),
                    )
                    .await
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("NATS did not answer within 5 s")))
                    .map_err(|e| e.context("NATS unavailable; events wait in the store"))?;
                    streams_ready = true;
                }
                let from = match at {
                    Some(from) => from,
                    None => self.checkpoint().await?,
                };
                pace.read_starts();
                match tokio::time::timeout(Duration::from_secs(30), self.step(js, from)).await {
                    Ok(stepped) => stepped,
                    Err(_) => Err(anyhow::anyhow!(
                        "NATS acknowledgements did not arrive within 30 s"
                    )
                    .into()),
                }
            }
            .await;
            match stepped {
                Ok((step, to)) => {
                    at = Some(to);
                    backoff.reset();
                    if let Some(stall) = self.consumers.ok(name) {
                        tracing::info!(relay = name, stalled_since = %stall.since, "relay moves again");
                    }
                    if matches!(step, Step::CaughtUp) {
                        // The visible feed is relayed: wait for the next commit (or poll).
                        tokio::select! {
                            _ = signal.changed() => {}
                            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                            _ = shutdown.changed() => {}
                        }
                        pace.wait(shutdown).await;
                    }
                }
                Err(failure) => {
                    at = None;
                    streams_ready = false;
                    if let Some(oldest) = failure.oldest {
                        self.lag(age(oldest));
                    }
                    let wait = backoff.next_wait();
                    let cause = cause_chain(&failure.error);
                    // One line per backoff step, with the cause chain and never a backtrace.
                    tracing::error!(
                        consumer = name,
                        event_id = ?failure.event_id,
                        cause = %cause,
                        retry_in = ?wait,
                        "relay cannot publish; it stays where it is and retries"
                    );
                    self.consumers.stalled(name, cause, failure.event_id);
                    parked::wait_to_retry(
                        &self.store,
                        &self.pool,
                        self.kind.name(),
                        shutdown,
                        wait,
                        failure.event_id,
                    )
                    .await;
                }
            }
        }
    }

    async fn checkpoint(&self) -> anyhow::Result<Position> {
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO relay_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
                &[&self.kind.name()],
            )
            .await?;
        let row = client
            .query_one(
                "SELECT tx, seq FROM relay_checkpoints WHERE name = $1",
                &[&self.kind.name()],
            )
            .await?;
        Ok(read_model::position(&row, 0)?)
    }

    async fn save(&self, at: Position) -> anyhow::Result<()> {
        let client = self.pool.get().await?;
        client
            .execute(
                "UPDATE relay_checkpoints SET tx = $2, seq = $3, updated_at = now() WHERE name = $1",
                &[&self.kind.name(), &i64::try_from(at.tx)?, &i64::try_from(at.seq)?],
            )
            .await?;
        Ok(())
    }

    /// The subject and body `recorded` is published as, if it is published by this relay.
    fn message(&self, recorded: &RecordedEvent) -> anyhow::Result<Option<(String, Vec<u8>)>> {
        // Jobs come from one event type only; the others need not be decoded at all.
        if self.kind == RelayKind::Jobs
            && !messaging::jobs::SOURCE_EVENTS.contains(&recorded.event_type.as_str())
        {
            return Ok(None);
        }
        let event = recorded.decode::<AnyEvent>().map_err(|e| {
            anyhow::Error::new(e).context(format!("event {} cannot be decoded", recorded.event_id))
        })?;
        let unwritable = |e: serde_json::Error| {
            anyhow::Error::new(e).context(format!("event {} cannot be written", recorded.event_id))
        };
        Ok(match (self.kind, &event) {
            (RelayKind::Events, any) => {
                let position = recorded.position.to_token();
                let stored = StoredEvent {
                    event_id: recorded.event_id,
                    stream_id: &recorded.stream_id,
                    stream_version: recorded.stream_version,
                    event_type: &recorded.event_type,
                    position: &position,
                    metadata: &recorded.metadata,
                    recorded_at: recorded.recorded_at,
                    data: recorded.data.get(),
                };
                match CloudEvent::of(&self.names, &stored, any)? {
                    Some((subject, document)) => {
                        Some((subject, document.to_body().map_err(unwritable)?))
                    }
                    None => None,
                }
            }
            (RelayKind::Jobs, AnyEvent::Generation(g)) => {
                match GenerationJob::of(g, recorded.event_id) {
                    Some(job) => Some((
                        self.names.job_subject(GenerationJob::KIND),
                        job.to_body().map_err(unwritable)?,
                    )),
                    None => None,
                }
            }
            (RelayKind::Jobs, AnyEvent::AiRequest(a)) => match AiJob::of(a, recorded.event_id) {
                Some(job) => Some((
                    self.names.job_subject(AiJob::KIND),
                    job.to_body().map_err(unwritable)?,
                )),
                None => None,
            },
            (RelayKind::Jobs, _) => None,
        })
    }

    /// Relays one batch after `from`, skipping parked events; answers how it went and the
    /// checkpoint saved. On failure everything acknowledged before the failing event is saved.
    async fn step(
        &self,
        js: &jetstream::Context,
        from: Position,
    ) -> Result<(Step, Position), Failure> {
        let events = self
            .store
            .read_feed(from, BATCH)
            .await
            .map_err(anyhow::Error::from)?;
        if events.is_empty() {
            self.lag(0.0);
            return Ok((Step::CaughtUp, from));
        }
        let parked = {
            let client = self.pool.get().await.map_err(anyhow::Error::from)?;
            parked::load(&client, self.kind.name())
                .await
                .map_err(anyhow::Error::from)?
        };
        let mut acked = from;
        let mut in_flight = FuturesOrdered::new();
        // The failure and the event it is pinned to.
        let mut failure: Option<(anyhow::Error, Option<Uuid>)> = None;
        for recorded in &events {
            let position = recorded.position;
            let event_id = recorded.event_id;
            let message = if parked.contains(event_id) {
                tracing::info!(relay = self.kind.name(), %event_id, "skipping a parked event");
                Ok(None)
            } else {
                self.message(recorded)
            };
            let message = match message {
                Ok(m) => m,
                Err(e) => {
                    failure = Some((e, Some(event_id)));
                    break;
                }
            };
            match message {
                Some((subject, payload)) => {
                    let publish = PublishMessage::build()
                        .payload(Bytes::from(payload))
                        .message_id(event_id.to_string());
                    match js.send_publish(subject, publish).await {
                        Ok(ack) => in_flight.push_back(futures::future::Either::Left(async move {
                            ack.await.map(|_| position).map_err(|e| {
                                (
                                    anyhow::Error::new(e)
                                        .context(format!("NATS refused event {event_id}")),
                                    Some(event_id),
                                )
                            })
                        })),
                        Err(e) => {
                            failure = Some((
                                anyhow::Error::new(e)
                                    .context(format!("cannot publish event {event_id}")),
                                Some(event_id),
                            ));
                            break;
                        }
                    }
                }
                // Not published: passes as soon as everything before it is acknowledged.
                None => in_flight.push_back(futures::future::Either::Right(
                    futures::future::ready(Ok(position)),
                )),
            }
            while in_flight.len() >= IN_FLIGHT {
                match in_flight.next().await {
                    Some(Ok(p)) => acked = p,
                    Some(Err(e)) => {
                        failure = Some(e);
                        break;
                    }
                    None => break,
                }
            }
            if failure.is_some() {
                break;
            }
        }
        if failure.is_none() {
            while let Some(result) = in_flight.next().await {
                match result {
                    Ok(p) => acked = p,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
        }
        if acked != from {
            self.save(acked).await?;
            self.metrics.inc(
                "backforge_relay_events_total",
                vec![("relay", self.kind.name().into())],
                events.iter().take_while(|e| e.position <= acked).count() as u64,
            );
        }
        match failure {
            Some((error, event_id)) => Err(Failure {
                error,
                oldest: events
                    .iter()
                    .find(|e| e.position > acked)
                    .map(|e| e.recorded_at),
                event_id,
            }),
            None if events.len() < BATCH => {
                self.lag(0.0);
                Ok((Step::CaughtUp, acked))
            }
            None => {
                self.lag(events.last().map_or(0.0, |e| age(e.recorded_at)));
                Ok((Step::More, acked))
            }
        }
    }
}

enum Step {
    /// A full batch was relayed: more may be waiting.
    More,
    /// Everything visible is relayed.
    CaughtUp,
}
