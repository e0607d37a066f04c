//! Connecting to NATS and the JetStream streams both sides need: created on start-up by whichever
//! process comes first (idempotent, safe to race).

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use crate::names::Names;

/// JetStream's duplicate window: a publish repeated within it (same `Nats-Msg-Id`) is dropped.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// How long the events stream keeps an integration event.
pub const EVENTS_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Connects to NATS; the client reconnects by itself after a connection loss, and keeps trying
/// when the server is not up yet.
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
        subjects: vec![names.all_events()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        duplicate_window: DUPLICATE_WINDOW,
        max_age: EVENTS_MAX_AGE,
        ..Default::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("cannot create stream {}: {e}", names.events_stream()))?;
    js.get_or_create_stream(stream::Config {
        name: names.jobs_stream(),
        subjects: vec![names.all_jobs()],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("cannot create stream {}: {e}", names.jobs_stream()))?;
    Ok(())
}
