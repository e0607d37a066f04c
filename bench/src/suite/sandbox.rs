//! W8: custom functions in the sandbox — a trivial function's test run at 1 and 8 clients against a
//! bare `bwrap … python3 -c pass` start measured in the same run (the floor), and `GET /health`
//! while 8 sandboxes spin at their CPU limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::time::Instant;
use uuid::Uuid;

use super::http::Api;
use super::report::{Baseline, Figure};
use crate::cpu;
use crate::stats::{percentile, summarise};
use crate::workload::{self, Worker};

/// Concurrent runs the bench gives the server's sandbox, and the queue behind them.
pub const SLOTS: usize = 8;
pub const QUEUE: usize = 16;
/// Debian's interpreter: what the sandbox runs by default.
const PYTHON: &str = "/usr/bin/python3";

/// The floor: bubblewrap starting the interpreter with the sandbox's namespaces and its read-only
/// view of `/usr`, and nothing else (no uid drop, rlimits, seccomp or server around it).
pub const BARE: &str = "bwrap --unshare-all --die-with-parent --new-session --ro-bind /usr /usr \
     --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/bin /bin --proc /proc \
     --dev /dev --tmpfs /tmp /usr/bin/python3 -c pass";

struct BareStart;

impl Worker for BareStart {
    async fn step(&mut self) -> anyhow::Result<()> {
        let mut words = BARE.split_whitespace();
        let program = words.next().context("empty command")?;
        let status = tokio::process::Command::new(program)
            .args(words)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await?;
        anyhow::ensure!(status.success(), "bare bwrap start: {status}");
        Ok(())
    }
}

/// One `POST /functions/{id}/test` whose run must end with `status`.
struct TestRun {
    api: Api,
    path: String,
    expect: &'static str,
}

impl TestRun {
    async fn once(&self) -> anyhow::Result<()> {
        let (body, _) = self
            .api
            .write(
                Method::POST,
                &self.path,
                &json!({"input": {"n": 1}}),
                StatusCode::OK,
            )
            .await?;
        let status = body["status"].as_str().unwrap_or_default();
        anyhow::ensure!(
            status == self.expect,
            "run status {status}, expected {}: {body}",
            self.expect
        );
        Ok(())
    }
}

impl Worker for TestRun {
    async fn step(&mut self) -> anyhow::Result<()> {
        self.once().await
    }
}

async fn function(api: &Api, project: Uuid, name: &str, code: &str) -> anyhow::Result<String> {
    let (body, _) = api
        .write(
            Method::POST,
            &format!("/projects/{project}/functions"),
            &json!({"name": name, "language": "python", "function_code": code}),
            StatusCode::CREATED,
        )
        .await?;
    let id = body["id"].as_str().context("no function id")?;
    Ok(format!("/functions/{id}/test"))
}

/// W8's figures: the test run at each client count against the bare start, then health under
/// spinning sandboxes.
pub async fn w8(
    api: &Api,
    base: &str,
    clients: &[usize],
    warmup: Duration,
    window: Duration,
    probe: &cpu::Probe,
) -> anyhow::Result<Vec<Figure>> {
    let (body, _) = api
        .write(
            Method::POST,
            "/projects",
            &json!({"name": "W8 functions"}),
            StatusCode::CREATED,
        )
        .await?;
    let project: Uuid = body["id"].as_str().context("no project id")?.parse()?;
    let trivial = function(
        api,
        project,
        "echo",
        "def handler(input):\n    return input\n",
    )
    .await?;
    let spin = function(
        api,
        project,
        "spin",
        "def handler(input):\n    while True:\n        pass\n",
    )
    .await?;
    let mut figures = Vec::new();
    for &n in clients {
        let bare = workload::run(
            (0..n).map(|_| BareStart).collect(),
            warmup,
            window,
            probe.clone(),
        )
        .await?;
        let runs = workload::run(
            (0..n)
                .map(|_| TestRun {
                    api: api.clone(),
                    path: trivial.clone(),
                    expect: "ok",
                })
                .collect(),
            warmup,
            window,
            probe.clone(),
        )
        .await?;
        let s = summarise(&[&runs]);
        let b = summarise(&[&bare]);
        let mut f = Figure::throughput(
            "W8",
            "function test run (POST /functions/{id}/test, trivial)",
            "runs/s",
            n,
            &s,
        );
        f.error_samples = runs.error_samples.clone();
        let ratio = if s.p50_ms > 0.0 {
            b.p50_ms / s.p50_ms
        } else {
            0.0
        };
        f.baselines.push(Baseline {
            name: "bare bwrap + python3 -c pass start".into(),
            sql: BARE.into(),
            value: b.events_per_sec,
            p50_ms: Some(b.p50_ms),
            p99_ms: Some(b.p99_ms),
            ops: b.events,
            errors: b.errors,
            ratio,
        });
        f.note = Some(format!(
            "ratio = bare p50 / run p50; the bench sets BACKFORGE_SANDBOX_SLOTS={SLOTS}, BACKFORGE_SANDBOX_QUEUE={QUEUE}; \
             bare start p50 {:.1} ms, run p50 {:.1} ms",
            b.p50_ms, s.p50_ms
        ));
        f.goal(
            format!(
                "W8 p50 <= 1.5 x the bare start at {n} clients ({:.2} x)",
                if b.p50_ms > 0.0 {
                    s.p50_ms / b.p50_ms
                } else {
                    f64::INFINITY
                }
            ),
            s.p50_ms <= 1.5 * b.p50_ms && s.errors == 0 && b.errors == 0,
        );
        eprintln!(
            "W8 {n} clients: {:.1} runs/s p50 {:.1} ms, bare {:.1}/s p50 {:.1} ms",
            s.events_per_sec, s.p50_ms, b.events_per_sec, b.p50_ms
        );
        figures.push(f);
    }
    figures.push(health_under_spin(api, base, &spin, window).await?);
    Ok(figures)
}

/// `GET /health` in a loop while `SLOTS` clients keep a spinning function running (each run ends
/// at the CPU limit, answered `timeout`).
async fn health_under_spin(
    api: &Api,
    base: &str,
    spin: &str,
    window: Duration,
) -> anyhow::Result<Figure> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut spinners = Vec::new();
    for _ in 0..SLOTS {
        let run = TestRun {
            api: api.clone(),
            path: spin.to_owned(),
            expect: "timeout",
        };
        let stop = stop.clone();
        spinners.push(tokio::spawn(async move {
            let (mut runs, mut errors, mut sample) = (0u64, 0u64, None);
            while !stop.load(Ordering::Relaxed) {
                match run.once().await {
                    Ok(()) => runs += 1,
                    Err(e) => {
                        errors += 1;
                        sample.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            (runs, errors, sample)
        }));
    }
    // Every slot busy before the window opens.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let url = format!("{base}/health");
    let (mut latencies, mut errors, mut samples) = (Vec::new(), 0u64, Vec::new());
    let end = Instant::now() + window;
    while Instant::now() < end {
        let t = Instant::now();
        let answer = api.http.get(&url).send().await;
        match answer {
            Ok(a) if a.status() == StatusCode::OK => {
                latencies.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            other => {
                errors += 1;
                if samples.len() < 3 {
                    samples.push(format!("{:?}", other.map(|a| a.status())));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (mut spun, mut spin_errors) = (0u64, 0u64);
    for s in spinners {
        let (runs, errs, sample) = s.await?;
        spun += runs;
        spin_errors += errs;
        if let Some(sample) = sample.filter(|_| samples.len() < 5) {
            samples.push(sample);
        }
    }
    latencies.sort_unstable();
    let ms = |p: f64| percentile(&latencies, p) / 1000.0;
    let mut f = Figure::new(
        "W8",
        format!("GET /health while {SLOTS} sandboxes spin at their CPU limit"),
        "ms p99",
    );
    f.clients = 1;
    f.ops = latencies.len() as u64;
    f.errors = errors + spin_errors;
    f.p50_ms = Some(ms(50.0));
    f.p99_ms = Some(ms(99.0));
    f.value = ms(99.0);
    f.error_samples = samples;
    f.note = Some(format!(
        "{spun} spinning runs ended with `timeout` during the window; {spin_errors} ended otherwise"
    ));
    let p99 = f.value;
    f.goal(
        format!("W8 health p99 <= 20 ms under spinning sandboxes ({p99:.1})"),
        p99 <= 20.0 && f.ops > 0 && f.errors == 0,
    );
    eprintln!("W8 health p99 {p99:.1} ms, {spun} spinning runs");
    Ok(f)
}

/// The interpreter the floor runs must be the one the sandbox runs.
pub fn check_python() -> anyhow::Result<()> {
    anyhow::ensure!(
        std::path::Path::new(PYTHON).exists(),
        "W8 needs Debian's {PYTHON} (and bubblewrap)"
    );
    Ok(())
}
