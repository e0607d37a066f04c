//! NATS helpers for tests: unique prefixes on the shared server, and private servers on free ports
//! for outage tests (never the shared one).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::StreamExt;

/// Every test prefix starts with this, so `clean-nats` can find leftovers.
pub const TEST_PREFIX: &str = "bft_";
pub const TEST_PREFIX_UPPER: &str = "BFT_";

pub fn shared_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A prefix of this test's own, so its streams and subjects overlap with no other test.
pub fn unique_prefix() -> String {
    format!(
        "{TEST_PREFIX}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// Deletes the two streams of `prefix` (end of a test; `clean-nats` catches what a crash leaves).
pub async fn delete_streams(url: &str, prefix: &str) {
    if let Ok(client) = async_nats::connect(url).await {
        let js = async_nats::jetstream::new(client);
        for suffix in ["EVENTS", "JOBS"] {
            let _ = js
                .delete_stream(format!("{}_{suffix}", prefix.to_uppercase()))
                .await;
        }
    }
}

/// Reads every message of `stream` currently stored, in order (payload and `Nats-Msg-Id`).
pub async fn read_stream(
    url: &str,
    stream: &str,
) -> anyhow::Result<Vec<(String, Option<String>, Vec<u8>)>> {
    let client = async_nats::connect(url).await?;
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream(stream).await?;
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            // Work-queue streams refuse consumers without acks; nothing is acked, so nothing is removed.
            ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
            // Nothing is acked, so the default limit of 1,000 pending acks would stop delivery
            // at the 1,000th message.
            max_ack_pending: 1_000_000,
            ..Default::default()
        })
        .await?;
    let mut out = Vec::new();
    // One fetch returns at most what the server allows per pull (1,000 here): fetch until a
    // batch comes back empty.
    loop {
        let before = out.len();
        let mut batch = consumer
            .fetch()
            .max_messages(1_000)
            .expires(Duration::from_millis(500))
            .messages()
            .await?;
        while let Some(message) = batch.next().await {
            let message = message.map_err(|e| anyhow::anyhow!("{e}"))?;
            let id = message
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Msg-Id"))
                .map(|v| v.to_string());
            out.push((message.subject.to_string(), id, message.payload.to_vec()));
        }
        if out.len() == before {
            return Ok(out);
        }
    }
}

/// A `nats-server` of the test's own, on a free port, with JetStream in a temp directory.
pub struct PrivateNats {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// The server's `max_payload`, when the test sets one (nats-server has no flag for it, so it
    /// goes through a configuration file).
    max_payload: Option<usize>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(14222)
}

impl PrivateNats {
    /// Chooses a port and a store directory without starting the server.
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("bft-nats-{}", uuid::Uuid::new_v4().simple()));
        Self {
            port: free_port(),
            dir,
            child: None,
            max_payload: None,
        }
    }

    /// The server will accept messages of at most `bytes` (its `max_payload`).
    pub fn with_max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = Some(bytes);
        self
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn start(&mut self) {
        let binary = [
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
            "nats-server",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("nats-server");
        let mut command = Command::new(binary);
        command.args([
            "-a",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-js",
            "-sd",
        ]);
        command.arg(&self.dir);
        if let Some(max_payload) = self.max_payload {
            std::fs::create_dir_all(&self.dir).expect("nats store directory");
            let config = self.dir.join("server.conf");
            std::fs::write(&config, format!("max_payload: {max_payload}\n"))
                .expect("nats-server configuration");
            command.arg("-c").arg(config);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "private nats-server did not open its port"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Default for PrivateNats {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
