//! Feed relays to NATS JetStream: integration events (CloudEvents) and generation jobs. Each has its
//! own checkpoint and leader; up to 32 publishes are in flight, and the checkpoint advances only
//! over the contiguous prefix the server has acknowledged.

use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use bytes::Bytes;
use deadpool_postgres::Pool;
use domain::AnyEvent;
use domain::generation::GenerationEvent;
use event_store::{EventStore, PgEventStore, Position, RecordedEvent};
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use runtime::metrics::Metrics;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::nats::{self, Names};
use crate::runner::{try_lead, wait_or_stop};

/// Publishes awaiting their acknowledgement at once.
pub const IN_FLIGHT: usize = 32;
const BATCH: usize = 512;

/// What a relay publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayKind {
    /// Every domain event, as a CloudEvent on `<PREFIX>_EVENTS`.
    Events,
    /// A job on `<PREFIX>_JOBS` per `GenerationRequested`.
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

/// The job message of a requested generation.
pub fn generation_job(recorded: &RecordedEvent, event: &GenerationEvent) -> Option<Value> {
    match event {
        GenerationEvent::GenerationRequested {
            generation_id,
            project_id,
            project_version,
            target,
            verify,
            ..
        } => Some(json!({
            "generation_id": generation_id, "project_id": project_id, "project_version": project_version,
            "target": target, "verify": verify, "event_id": recorded.event_id,
            "position": recorded.position.to_token(),
        })),
        _ => None,
    }
}

pub struct Relay {
    pub kind: RelayKind,
    pub store: PgEventStore,
    pub pool: Pool,
    pub database_url: String,
    pub nats: async_nats::Client,
    pub names: Names,
    pub metrics: Metrics,
}

impl Relay {
    /// Runs until `shutdown`: waits for this relay's leadership, then relays.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let js = jetstream::new(self.nats.clone());
        while !*shutdown.borrow() {
            let leadership = match try_lead(&self.database_url, self.kind.lock()).await {
                Ok(Some(l)) => l,
                Ok(None) => {
                    wait_or_stop(&mut shutdown, Duration::from_millis(500)).await;
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, relay = self.kind.name(), "cannot reach PostgreSQL for relay leadership");
                    wait_or_stop(&mut shutdown, Duration::from_secs(1)).await;
                    continue;
                }
            };
            tracing::info!(relay = self.kind.name(), "relay leads");
            let mut signal = self.store.feed_signal();
            let mut streams_ready = false;
            // The checkpoint as this leader last saved it: read once, then kept in memory.
            let mut at: Option<Position> = None;
            let mut backoff = Duration::from_millis(200);
            while !*shutdown.borrow() && leadership.alive() {
                if !streams_ready {
                    // Bounded: a request sent while disconnected may never be answered.
                    let ensured = tokio::time::timeout(
                        Duration::from_secs(5),
                        nats::ensure_streams(&js, &self.names),
                    )
                    .await
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("NATS did not answer within 5 s")));
                    match ensured {
                        Ok(()) => streams_ready = true,
                        Err(error) => {
                            tracing::warn!(%error, relay = self.kind.name(), "NATS unavailable; events wait in the store");
                            wait_or_stop(&mut shutdown, backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                            continue;
                        }
                    }
                }
                let from = match at {
                    Some(from) => Ok(from),
                    None => self.checkpoint().await,
                };
                let stepped = match from {
                    Ok(from) => tokio::time::timeout(Duration::from_secs(30), self.step(&js, from))
                        .await
                        .unwrap_or_else(|_| {
                            Err(anyhow::anyhow!(
                                "NATS acknowledgements did not arrive within 30 s"
                            ))
                        }),
                    Err(e) => Err(e),
                };
                if let Ok((_, to)) = &stepped {
                    at = Some(*to);
                } else {
                    at = None;
                }
                match stepped.map(|(step, _)| step) {
                    Ok(Step::More) => backoff = Duration::from_millis(200),
                    // The visible feed is relayed: wait for the next commit (or poll).
                    Ok(Step::CaughtUp) => {
                        tokio::select! {
                            _ = signal.changed() => {}
                            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                            _ = shutdown.changed() => {}
                        }
                    }
                    Err(error) => {
                        tracing::warn!(error = ?error, relay = self.kind.name(), "relay step failed; retrying");
                        streams_ready = false;
                        wait_or_stop(&mut shutdown, backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
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
        Ok(Position {
            tx: row.get::<_, i64>(0).max(0) as u64,
            seq: row.get::<_, i64>(1).max(0) as u64,
        })
    }

    async fn save(&self, at: Position) -> anyhow::Result<()> {
        let client = self.pool.get().await?;
        client
            .execute(
                "UPDATE relay_checkpoints SET tx = $2, seq = $3, updated_at = now() WHERE name = $1",
                &[&self.kind.name(), &(at.tx as i64), &(at.seq as i64)],
            )
            .await?;
        Ok(())
    }

    fn message(&self, recorded: &RecordedEvent) -> anyhow::Result<Option<(String, Value)>> {
        // Jobs come from one event type only; the others need not be decoded at all.
        if self.kind == RelayKind::Jobs && recorded.event_type != JOB_EVENT {
            return Ok(None);
        }
        let event = recorded
            .decode::<AnyEvent>()
            .map_err(|e| anyhow::anyhow!("event {} cannot be decoded: {e}", recorded.event_id))?;
        Ok(match (self.kind, &event) {
            (RelayKind::Events, any) => nats::cloud_event(&self.names, recorded, any),
            (RelayKind::Jobs, AnyEvent::Generation(g)) => {
                generation_job(recorded, g).map(|job| (self.names.job_subject("generation"), job))
            }
            (RelayKind::Jobs, _) => None,
        })
    }

    /// Relays one batch after `from`; answers how it went and the checkpoint saved.
    async fn step(
        &self,
        js: &jetstream::Context,
        from: Position,
    ) -> anyhow::Result<(Step, Position)> {
        let events = self.store.read_feed(from, BATCH).await?;
        if events.is_empty() {
            return Ok((Step::CaughtUp, from));
        }
        let mut acked = from;
        let mut in_flight = FuturesOrdered::new();
        let mut failure = None;
        for recorded in &events {
            let position = recorded.position;
            let message = match self.message(recorded) {
                Ok(m) => m,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            };
            match message {
                Some((subject, payload)) => {
                    let publish = PublishMessage::build()
                        .payload(Bytes::from(payload.to_string()))
                        .message_id(recorded.event_id.to_string());
                    match js.send_publish(subject, publish).await {
                        Ok(ack) => in_flight.push_back(futures::future::Either::Left(async move {
                            ack.await.map(|_| position).map_err(anyhow::Error::from)
                        })),
                        Err(e) => {
                            failure = Some(anyhow::Error::from(e));
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
            Some(e) => Err(e),
            None if events.len() < BATCH => Ok((Step::CaughtUp, acked)),
            None => Ok((Step::More, acked)),
        }
    }
}

/// The only event type the jobs relay publishes.
const JOB_EVENT: &str = "GenerationRequested";

enum Step {
    /// A full batch was relayed: more may be waiting.
    More,
    /// Everything visible is relayed.
    CaughtUp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jobs_relay_filters_on_a_type_the_domain_writes() {
        assert!(domain::generation::GenerationEvent::TYPES.contains(&JOB_EVENT));
    }
}
