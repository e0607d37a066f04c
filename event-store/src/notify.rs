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

    /// Holds a dedicated connection with LISTEN (a pooled one would be recycled and lose it),
    /// reconnecting with backoff; each notification ticks the local watch.
    pub(crate) fn listen(&self, database_url: String) {
        let signals = self.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                match listen_once(&database_url, &signals).await {
                    Ok(()) => backoff = Duration::from_millis(100),
                    Err(error) => {
                        tracing::warn!(%error, "commit listener lost its connection; retrying")
                    }
                }
                // Commits may have happened while nobody listened.
                signals.tick();
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        });
    }
}

async fn listen_once(database_url: &str, signals: &Signals) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = tokio_postgres::connect(database_url, NoTls).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(_)) => {
                    if tx.send(()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "commit listener connection failed");
                    break;
                }
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    signals.tick();
    while rx.recv().await.is_some() {
        signals.tick();
    }
    driver.abort();
    Ok(())
}
