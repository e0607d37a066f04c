//! NATS names, stream set-up and the CloudEvents 1.0 form of an event, all derived from
//! `BACKFORGE_NATS_PREFIX` so installations (and parallel tests) never share a subject.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use domain::AnyEvent;
use event_store::RecordedEvent;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

/// JetStream's duplicate window: a publish repeated within it (same `Nats-Msg-Id`) is dropped.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub struct Names {
    pub prefix: String,
}

impl Names {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// Stream names may not contain `.`; the prefix is validated to letters, digits, `_` and `-`.
    pub fn events_stream(&self) -> String {
        format!("{}_EVENTS", self.prefix.to_uppercase())
    }

    pub fn jobs_stream(&self) -> String {
        format!("{}_JOBS", self.prefix.to_uppercase())
    }

    pub fn event_subject(&self, aggregate: &str, id: &str, event_type: &str) -> String {
        format!("{}.events.{aggregate}.{id}.{event_type}", self.prefix)
    }

    pub fn job_subject(&self, kind: &str) -> String {
        format!("{}.jobs.{kind}", self.prefix)
    }
}

/// Connects to NATS; the client reconnects by itself after a connection loss.
pub async fn connect(url: &str) -> anyhow::Result<async_nats::Client> {
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(3))
        .retry_on_initial_connect()
        .connect(url)
        .await?;
    Ok(client)
}

/// Creates both streams if missing (idempotent, safe to race).
pub async fn ensure_streams(js: &jetstream::Context, names: &Names) -> anyhow::Result<()> {
    js.get_or_create_stream(stream::Config {
        name: names.events_stream(),
        subjects: vec![format!("{}.events.>", names.prefix)],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        duplicate_window: DUPLICATE_WINDOW,
        max_age: Duration::from_secs(30 * 24 * 3600),
        ..Default::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("cannot create stream {}: {e}", names.events_stream()))?;
    js.get_or_create_stream(stream::Config {
        name: names.jobs_stream(),
        subjects: vec![format!("{}.jobs.>", names.prefix)],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("cannot create stream {}: {e}", names.jobs_stream()))?;
    Ok(())
}

/// The integration form of `event`, or `None` for events that are not published (the e-mail
/// reservation stream is an internal uniqueness device and names a hash of an address). An event
/// that should be published but cannot be put in that form is an error, never "nothing to
/// publish": the relay stalls on it instead of skipping it.
pub fn cloud_event(
    names: &Names,
    recorded: &RecordedEvent,
    event: &AnyEvent,
) -> anyhow::Result<Option<(String, Value)>> {
    let aggregate = match event {
        // Internal: the e-mail reservations name a hash of an address, and the operations
        // stream is the installation's own audit trail.
        AnyEvent::Email(_) | AnyEvent::Operations(_) => return Ok(None),
        other => other.aggregate(),
    };
    let id = recorded
        .stream_id
        .split_once('-')
        .map(|(_, id)| id.to_owned())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "event {} is in stream `{}`, which names no aggregate id",
                recorded.event_id,
                recorded.stream_id
            )
        })?;
    let mut data = recorded
        .data_value()
        .map_err(|e| anyhow::anyhow!("the body of event {} is not JSON: {e}", recorded.event_id))?;
    if let (AnyEvent::User(_), Some(obj)) = (event, data.as_object_mut()) {
        // User events never carry e-mail addresses to integrations.
        obj.remove("email");
    }
    let time = recorded
        .recorded_at
        .format(&Rfc3339)
        .map_err(|e| anyhow::anyhow!("event {} has no RFC 3339 time: {e}", recorded.event_id))?;
    let subject = names.event_subject(aggregate, &id, &recorded.event_type);
    let document = json!({
        "specversion": "1.0",
        "id": recorded.event_id,
        "type": format!("{}.{aggregate}.{}", names.prefix, recorded.event_type),
        "source": format!("/{}/{aggregate}/{id}", names.prefix),
        "subject": id,
        "time": time,
        "datacontenttype": "application/json",
        "data": data,
        "position": recorded.position.to_token(),
        "streamversion": recorded.stream_version,
        "correlationid": recorded.metadata.correlation_id,
        "causationid": recorded.metadata.causation_id,
    });
    Ok(Some((subject, document)))
}
