//! Commit signals: a local watch for readers in this process, one coalescing NOTIFY sender, and a
//! LISTEN task that turns other processes' commits into local ticks.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use futures::StreamExt;
use tokio::sync::{Notify, watch};
use tokio_postgres::{AsyncMessage, NoTls};

/// The NOTIFY channel; NOTIFY is scoped to one database, so installations never hear each other.
pub const CHANNEL: &str = "backforge_events";

#[derive(Clone)]
pub(crate) struct Signals {
    local: Arc<watch::Sender<u64>>,
    wake_notifier: Arc<Notify>,
}

impl Signals {
    /// Starts the notifier task. NOTIFY is sent after commit, never inside the append transaction
    /// (that would serialise every commit on the notification queue lock), and many commits that
    /// land while one NOTIFY is in flight are folded into the next one.
    pub(crate) fn start(pool: Pool) -> Self {
        let (local, _) = watch::channel(0u64);
        let wake_notifier = Arc::new(Notify::new());
        let wake = wake_notifier.clone();
        tokio::spawn(async move {
            loop {
                wake.notified().await;
                let sent = async {
                    let client = pool.get().await.map_err(|e| e.to_string())?;
                    client
                        .batch_execute(&format!("NOTIFY {CHANNEL}"))
                        .await
                        .map_err(|e| e.to_string())
                }
                .await;
                if let Err(error) = sent {
                    // Readers fall back to polling; nothing is lost, only latency.
                    tracing::debug!(%error, "commit notification not sent");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        });
        Self {
            local: Arc::new(local),
            wake_notifier,
        }
    }

    pub(crate) fn committed(&self) {
        self.tick();
        self.wake_notifier.notify_one();
    }

    fn tick(&self) {
        self.local.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.local.subscribe()
    }

    /// Turns other processes' commits into local ticks, and ticks whenever the listener (re)connects
    /// or loses its connection: commits may have happened while nobody listened.
    pub(crate) fn listen(&self, database_url: String) {
        let signals = self.clone();
        listen_forever(database_url, CHANNEL, move |_| signals.tick());
    }
}

/// What a LISTEN connection reports to its handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// LISTEN is in place (after every connect): from now on no notification is missed.
    Listening,
    /// A notification with its payload.
    Notification(String),
    /// The connection is gone: notifications are missed until the next `Listening`.
    Lost,
}

/// Holds a dedicated connection with `LISTEN channel` for the life of the process (a pooled one
/// would be recycled and lose it), reconnecting with backoff, and tells `on` what it hears. The one
/// LISTEN loop: commit signals and the security-version cache both use it.
pub fn listen_forever(
    database_url: String,
    channel: &'static str,
    on: impl Fn(Heard) + Send + Sync + 'static,
) {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            match listen_once(&database_url, channel, &on).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(error) => {
                    tracing::warn!(%error, channel, "listener lost its connection; retrying")
                }
            }
            on(Heard::Lost);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    });
}

async fn listen_once(
    database_url: &str,
    channel: &str,
    on: &(impl Fn(Heard) + Send + Sync),
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = tokio_postgres::connect(database_url, NoTls).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_owned()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "listener connection failed");
                    break;
                }
            }
        }
    });
    client.batch_execute(&format!("LISTEN {channel}")).await?;
    on(Heard::Listening);
    while let Some(payload) = rx.recv().await {
        on(Heard::Notification(payload));
    }
    driver.abort();
    Ok(())
}
