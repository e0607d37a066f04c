//! The `backforge serve` child: spawn it on a free port, wait for `/health`, read its peak RSS,
//! kill it, and delete its JetStream streams.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;

/// The `backforge` binary: `BACKFORGE_BIN`, or the one built next to this executable (built or
/// refreshed first with cargo, so the suite never drives a stale binary).
pub fn binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("BACKFORGE_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .context("the bench executable has no directory")?;
    let binary = dir.join(format!("backforge{}", std::env::consts::EXE_SUFFIX));
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("bench lives in the workspace")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(workspace)
        // The same package selection `cargo run -p bench` resolves features for (bench turns on
        // features of shared crates), so this reuses bench's artifacts instead of building
        // every shared crate a second time with other features.
        .args(["build", "--quiet", "-p", "backforge", "-p", "bench"]);
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("release") => {
            build.arg("--release");
        }
        Some("debug") | None => {}
        Some(profile) => {
            build.args(["--profile", profile]);
        }
    }
    if let Some(target) = dir.parent() {
        build.arg("--target-dir").arg(target);
    }
    match build.status() {
        Ok(status) => anyhow::ensure!(status.success(), "`cargo build -p backforge` failed"),
        Err(error) => eprintln!("warning: cannot run cargo ({error}); using {binary:?} as it is"),
    }
    anyhow::ensure!(binary.exists(), "no backforge binary at {binary:?}");
    Ok(binary)
}

/// A JWT secret for the child (32+ bytes; it never leaves this machine).
pub const JWT_SECRET: &str = "bench-only-secret-0123456789abcdef0123456789";

/// The environment of every child this suite starts.
pub fn environment(
    database_url: &str,
    nats_prefix: &str,
    pool_size: usize,
) -> Vec<(String, String)> {
    vec![
        ("DATABASE_URL".into(), database_url.into()),
        ("JWT_SECRET".into(), JWT_SECRET.into()),
        ("BACKFORGE_NATS_PREFIX".into(), nats_prefix.into()),
        ("BACKFORGE_ENV".into(), "development".into()),
        ("BACKFORGE_DB_POOL_SIZE".into(), pool_size.to_string()),
        ("BACKFORGE_LOGIN_PER_IP_PER_MINUTE".into(), "100000".into()),
        (
            "BACKFORGE_LOGIN_PER_ACCOUNT_PER_MINUTE".into(),
            "100000".into(),
        ),
        (
            "BACKFORGE_REGISTER_PER_IP_PER_MINUTE".into(),
            "100000".into(),
        ),
        // W8: eight sandbox runs at once and a queue of sixteen behind them.
        (
            "BACKFORGE_SANDBOX_SLOTS".into(),
            super::sandbox::SLOTS.to_string(),
        ),
        (
            "BACKFORGE_SANDBOX_QUEUE".into(),
            super::sandbox::QUEUE.to_string(),
        ),
        // W8 measures the sandbox, not the per-user allowance of runs.
        (
            "BACKFORGE_SANDBOX_EXECUTIONS_PER_MINUTE".into(),
            "1000000".into(),
        ),
        ("RUST_LOG".into(), "warn".into()),
        ("NO_COLOR".into(), "1".into()),
    ]
}

pub struct Serve {
    child: Child,
    pub base: String,
    pub log: PathBuf,
}

impl Serve {
    pub async fn start(binary: &Path, env: &[(String, String)]) -> anyhow::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = format!("127.0.0.1:{port}");
        let log = std::env::temp_dir().join(format!("bench-serve-{port}.log"));
        let file = File::create(&log)?;
        let child = Command::new(binary)
            .arg("serve")
            .envs(env.iter().cloned())
            .env("BACKFORGE_ADDR", &addr)
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .spawn()
            .context("cannot spawn `backforge serve`")?;
        let mut serve = Serve {
            child,
            base: format!("http://{addr}"),
            log,
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = serve.child.try_wait()? {
                anyhow::bail!(
                    "`backforge serve` exited with {status}: {}",
                    std::fs::read_to_string(&serve.log).unwrap_or_default()
                );
            }
            let health = client.get(format!("{}/health", serve.base)).send().await;
            if health.is_ok_and(|r| r.status().is_success()) {
                return Ok(serve);
            }
            if Instant::now() >= until {
                serve.kill();
                anyhow::bail!("`backforge serve` did not answer /health in 60 s");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `VmHWM` (peak resident set) and `VmRSS` of `pid`, in MB.
pub fn memory_mb(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024.0)
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// A fresh NATS prefix: `bft_` + 12 hex digits (the test prefix, so `clean-nats` finds leftovers).
pub fn nats_prefix() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("bft_{}", &id[..12])
}

/// Deletes the two JetStream streams of `prefix`.
pub async fn delete_streams(nats_url: &str, prefix: &str) {
    let work = async {
        if let Ok(client) = async_nats::connect(nats_url).await {
            let js = async_nats::jetstream::new(client);
            for suffix in ["EVENTS", "JOBS"] {
                let _ = js
                    .delete_stream(format!("{}_{suffix}", prefix.to_uppercase()))
                    .await;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), work).await;
}
