//! Verification of a generated backend: its static checks (`ruff check`, `ruff format --check`,
//! `mypy`, with the configuration it ships) and its own pytest suite, run inside the sandbox,
//! offline, in a pool and under a limit profile of their own (`BACKFORGE_SANDBOX_VERIFY_*`).
//!
//! The Python environment is built once per pair of hash-pinned requirements files, outside the
//! sandbox (the only step with network): the sandbox's interpreter makes the virtualenv and its pip
//! installs wheels only (`--only-binary=:all: --require-hashes --no-deps`, so no package code runs
//! at install time). The sandbox binds it read-only at its own path (its scripts and `pyvenv.cfg`
//! hold absolute paths; its home is the interpreter's prefix, which every run binds). The project
//! is written to a per-run directory (created 0700, handed to the run's slot uid by the pool) bound
//! writable at its own path; tool caches go to the run's `/tmp`. One run does all four steps
//! (`verify_driver.py`) and answers with one JSON line; the directory is removed afterwards and
//! nothing in it is read. Both live in the verification directory ([`crate::cache::shared_dir`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use domain::generation::TestReport;
use runtime::settings::SandboxSettings;
use sandbox::{Bind, Limits, Program, RunStatus, Sandbox, SandboxConfig};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::process::Command;
use tokio::sync::{Mutex, OnceCell};

/// Builds virtual environments one at a time: two generations must not race to create one.
static VENV_LOCK: Mutex<()> = Mutex::const_new(());

/// The requirements files verification installs, in this order, from the generated tree.
pub const REQUIREMENTS_FILES: [&str; 2] = ["requirements.txt", "requirements-dev.txt"];

/// The program of a verify run, passed to the virtualenv's `python -I -B -c`.
const DRIVER: &str = include_str!("verify_driver.py");

/// Environment variables pip may need to reach its index from this machine (a mirror, a proxy, a
/// local wheel directory, a CA bundle); nothing else of the server's environment reaches it.
const PIP_ENVIRONMENT: [&str; 8] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// A virtual environment of `python` (the sandbox's interpreter) with `files` (name, content:
/// hash-pinned requirements files) installed, reused for identical files and interpreter. Every
/// requirement must be pinned with its hashes and come as a wheel (`--require-hashes`, `--no-deps`,
/// `--only-binary=:all:`): the lock is complete, nothing unpinned is resolved, and no package's
/// code runs while it is installed. Made readable (not writable) by every uid.
pub async fn ensure_venv(
    root: &Path,
    python: &Path,
    files: &[(&str, &[u8])],
    timeout: Duration,
) -> anyhow::Result<PathBuf> {
    let mut hasher = Sha256::new();
    hasher.update(python.as_os_str().as_encoded_bytes());
    hasher.update([0]);
    for (name, content) in files {
        hasher.update(name.as_bytes());
        hasher.update([0]);
        hasher.update(
            u64::try_from(content.len())
                .unwrap_or(u64::MAX)
                .to_le_bytes(),
        );
        hasher.update(content);
    }
    let key = hex::encode(hasher.finalize());
    let dir = root.join(&key[..16]);
    let ready_marker = dir.join(".backforge-ready");
    if ready_marker.exists() {
        return Ok(dir);
    }
    let _guard = VENV_LOCK.lock().await;
    if ready_marker.exists() {
        return Ok(dir);
    }
    if dir.exists() {
        tokio::fs::remove_dir_all(&dir).await.ok();
    }
    crate::cache::shared_dir(root)?;
    run(
        Command::new(python).arg("-m").arg("venv").arg(&dir),
        timeout,
    )
    .await
    .with_context(|| format!("{} -m venv failed", python.display()))?;
    let mut install = Command::new(dir.join("bin/python"));
    install.args([
        "-I",
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "-q",
        "--only-binary=:all:",
        "--require-hashes",
        "--no-deps",
    ]);
    for (name, content) in files {
        let path = dir.join(name);
        tokio::fs::write(&path, content).await?;
        install.arg("-r").arg(&path);
    }
    install
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    for (key, value) in std::env::vars() {
        if key.starts_with("PIP_") || PIP_ENVIRONMENT.contains(&key.as_str()) || key == "HOME" {
            install.env(key, value);
        }
    }
    run(&mut install, timeout)
        .await
        .context("installing the generated requirements failed")?;
    // Readable and searchable by the sandbox's uids, writable by the server alone, whatever the
    // umask was.
    run(
        Command::new("chmod")
            .args(["-R", "u+rwX,go+rX,go-w"])
            .arg(&dir),
        timeout,
    )
    .await
    .context("cannot open the virtualenv to the sandbox")?;
    tokio::fs::write(&ready_marker, b"ok").await?;
    Ok(dir)
}

async fn run(command: &mut Command, timeout: Duration) -> anyhow::Result<String> {
    command.kill_on_drop(true);
    let output = tokio::time::timeout(timeout, command.output())
        .await
        .map_err(|_| anyhow::anyhow!("timed out after {} s", timeout.as_secs()))??;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if !output.status.success() {
        anyhow::bail!("exited with {}: {}", output.status, tail(&text, 4000));
    }
    Ok(text)
}

fn tail(text: &str, max: usize) -> String {
    let start = text.len().saturating_sub(max);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    text[start..].to_owned()
}

/// Counts from pytest's JUnit XML: (tests, failures + errors, skipped).
pub fn junit_counts(xml: &str) -> Option<(u64, u64, u64)> {
    let mut totals = (0u64, 0u64, 0u64);
    let mut found = false;
    for tag in xml.split("<testsuite").skip(1) {
        let head = &tag[..tag.find('>')?];
        let attr = |name: &str| -> u64 {
            head.split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                .and_then(|v| v.trim_end_matches('/').trim_end_matches('"').parse().ok())
                .unwrap_or(0)
        };
        totals.0 += attr("tests");
        totals.1 += attr("failures") + attr("errors");
        totals.2 += attr("skipped");
        found = true;
    }
    found.then_some(totals)
}

/// One static check of the generated code and what it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// `ruff check`, `ruff format --check` or `mypy`.
    pub name: &'static str,
    /// Findings: lint violations, files that would be reformatted, type errors.
    pub findings: u64,
    /// The tool's output (its tail).
    pub output: String,
    pub duration: Duration,
}

/// What verification found: the static checks, in order, and the test suite's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub checks: Vec<CheckReport>,
    pub tests: TestReport,
}

/// Where verification runs: the verify pool of the sandbox (its own slots and uids), its limit
/// profile, the interpreter virtualenvs are made with, and the verification directory. The pool's
/// self-test runs once, at start or before the first verification; while it has not passed,
/// verification fails naming `sandbox-unavailable`'s cause and nothing runs unsandboxed.
pub struct Verifier {
    sandbox: Result<Sandbox, String>,
    health: OnceCell<Result<(), String>>,
    limits: Limits,
    /// A run's wall clock when set; otherwise what is left of the job's deadline.
    wall: Option<Duration>,
    python: PathBuf,
    dir: PathBuf,
    /// Bounds making a virtualenv (`BACKFORGE_VERIFY_TIMEOUT_SECS`), within the job's deadline.
    install_timeout: Duration,
    /// When stale per-run directories were last swept (see [`sweep_due`]).
    last_sweep: std::sync::Mutex<Option<Instant>>,
}

/// Open files of a verify run (pytest, mypy and their imports).
const VERIFY_OPEN_FILES: u64 = 1024;

/// Kept of each step's output inside the run; the result line carries four of them.
const STEP_OUTPUT_CAP: usize = 64 * 1024;

/// The largest result line of a run of `steps` steps: the driver keeps `STEP_OUTPUT_CAP`
/// characters of each step's output and of the JUnit report, and `json.dumps` (ASCII) writes a
/// character as up to 12 bytes (`\ud83d\ude00`); the rest of the line is small. A run's stdout
/// is kept up to this at least, so output that is mostly non-ASCII cannot cut the line.
fn result_bytes(steps: usize) -> usize {
    (steps + 1) * STEP_OUTPUT_CAP * 12 + 64 * 1024
}

/// Left of the job's deadline when a run's wall clock ends, to record what happened.
const RECORD_MARGIN: Duration = Duration::from_secs(5);

impl Verifier {
    /// Sets up the verify pool from the settings (`BACKFORGE_SANDBOX_PYTHON` and
    /// `BACKFORGE_SANDBOX_VERIFY_*`) and the verification directory; nothing runs yet.
    pub fn new(settings: &SandboxSettings, dir: PathBuf, install_timeout: Duration) -> Arc<Self> {
        let verify = &settings.verify;
        let state_dir =
            std::env::temp_dir().join(format!("backforge-verify-sandbox-{}", uuid::Uuid::new_v4()));
        let sandbox = Sandbox::new(SandboxConfig {
            python: settings.python.clone().into(),
            uid_base: verify.uid_base,
            slots: verify.slots,
            queue: verify.queue,
            state_dir,
        })
        .map_err(|e| e.to_string());
        Arc::new(Self {
            sandbox,
            health: OnceCell::new(),
            limits: Limits {
                wall: verify.wall.unwrap_or(Duration::MAX),
                cpu_seconds: verify.cpu_seconds,
                address_space_bytes: verify.memory_bytes,
                processes: verify.processes,
                tmp_bytes: verify.tmp_bytes,
                file_bytes: verify.file_bytes,
                open_files: VERIFY_OPEN_FILES,
                output_bytes: verify.output_bytes,
            },
            wall: verify.wall,
            python: settings.python.clone().into(),
            dir,
            install_timeout,
            last_sweep: std::sync::Mutex::new(None),
        })
    }

    /// Runs the pool's self-test unless it ran; its outcome stands for the process's life.
    pub async fn self_test(&self) -> Result<(), String> {
        self.health
            .get_or_init(|| async {
                let outcome = match &self.sandbox {
                    Ok(sandbox) => sandbox.self_test().await.map_err(|e| e.to_string()),
                    Err(cause) => Err(cause.clone()),
                };
                if let Err(cause) = &outcome {
                    tracing::warn!(%cause, "the verify sandbox is unavailable: verification fails");
                }
                outcome
            })
            .await
            .clone()
    }

    /// Why verification cannot run (`None` while the self-test has not finished, or passed).
    pub fn cause(&self) -> Option<String> {
        self.health.get().and_then(|h| h.as_ref().err().cloned())
    }

    async fn ready(&self) -> anyhow::Result<&Sandbox> {
        let tested = self.self_test().await;
        let cause = match (&tested, &self.sandbox) {
            (Ok(()), Ok(sandbox)) => return Ok(sandbox),
            (Err(cause), _) | (_, Err(cause)) => cause,
        };
        anyhow::bail!("sandbox-unavailable: the sandbox cannot run the test suite: {cause}")
    }

    /// The virtualenv the generated `files` name in their requirements files, made if missing.
    pub async fn venv(&self, files: &BTreeMap<String, Vec<u8>>) -> anyhow::Result<PathBuf> {
        let mut requirements = Vec::new();
        for name in REQUIREMENTS_FILES {
            let content = files
                .get(name)
                .with_context(|| format!("the generated backend has no {name}"))?;
            requirements.push((name, content.as_slice()));
        }
        // Checked before anything in it is trusted: a venv another user could write is theirs.
        crate::cache::shared_dir(&self.dir)?;
        let venvs = crate::cache::shared_dir(&self.dir.join("venvs"))?;
        let venv = ensure_venv(&venvs, &self.python, &requirements, self.install_timeout).await?;
        check_home(&venv, &self.python)?;
        Ok(venv)
    }

    /// Runs the static checks and the test suite of `files` in the verify sandbox; the run ends at
    /// the configured wall clock or a little before `deadline`, whichever is first.
    pub async fn verify(
        &self,
        files: &BTreeMap<String, Vec<u8>>,
        deadline: Instant,
    ) -> anyhow::Result<Verification> {
        let sandbox = self.ready().await?;
        let venv = self.venv(files).await?;
        let mut steps: Vec<Step> = CHECKS
            .iter()
            .map(|check| Step {
                name: check.name,
                args: check.args.to_vec(),
            })
            .collect();
        steps.push(Step {
            name: PYTEST,
            args: PYTEST_ARGS.to_vec(),
        });
        let ran = self
            .run_steps(sandbox, &venv, files, &steps, deadline)
            .await?;
        let mut checks = Vec::new();
        for check in &CHECKS {
            checks.push(check_report(check, ran.step(check.name)?)?);
        }
        let tests = test_report(&ran)?;
        Ok(Verification { checks, tests })
    }

    /// Runs only the test suite of `files` in the verify sandbox (as [`Verifier::verify`] does).
    pub async fn run_tests(
        &self,
        files: &BTreeMap<String, Vec<u8>>,
        deadline: Instant,
    ) -> anyhow::Result<TestReport> {
        let sandbox = self.ready().await?;
        let venv = self.venv(files).await?;
        let steps = [Step {
            name: PYTEST,
            args: PYTEST_ARGS.to_vec(),
        }];
        let ran = self
            .run_steps(sandbox, &venv, files, &steps, deadline)
            .await?;
        test_report(&ran)
    }

    async fn run_steps(
        &self,
        sandbox: &Sandbox,
        venv: &Path,
        files: &BTreeMap<String, Vec<u8>>,
        steps: &[Step],
        deadline: Instant,
    ) -> anyhow::Result<DriverResult> {
        let runs = crate::cache::shared_dir(&self.dir.join("runs"))?;
        // What a worker killed mid-run left behind (other workers may share the directory, so
        // only what no job can still be using).
        // At most once per SWEEP_EVERY, not on every run's path.
        if sweep_due(&self.last_sweep, Instant::now(), SWEEP_EVERY) {
            let swept = runs.clone();
            if let Err(error) =
                tokio::task::spawn_blocking(move || sweep_stale_runs(&swept, STALE_RUN)).await
            {
                tracing::error!(%error, "the sweep of stale verify runs died");
            }
        }
        let work = runs.join(uuid::Uuid::new_v4().simple().to_string());
        let result = self
            .run_in(sandbox, venv, &work, files, steps, deadline)
            .await;
        // Everything in it is the run's (and its uid's): removed as root, nothing read.
        let removed = work.clone();
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(removed)).await;
        result
    }

    async fn run_in(
        &self,
        sandbox: &Sandbox,
        venv: &Path,
        work: &Path,
        files: &BTreeMap<String, Vec<u8>>,
        steps: &[Step],
        deadline: Instant,
    ) -> anyhow::Result<DriverResult> {
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(work)
                .with_context(|| format!("cannot create {}", work.display()))?;
        }
        for (name, content) in files {
            let path = project_path(work, name)?;
            if let Some(parent) = path.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            tokio::fs::write(&path, content).await?;
        }
        let left = deadline
            .saturating_duration_since(Instant::now())
            .saturating_sub(RECORD_MARGIN);
        let wall = self.wall.map_or(left, |wall| wall.min(left));
        anyhow::ensure!(
            !wall.is_zero(),
            "no time is left of the job's deadline to verify"
        );
        let request = serde_json::json!({
            "steps": steps.iter().map(|s| serde_json::json!({"name": s.name, "args": s.args})).collect::<Vec<_>>(),
            "output_cap": STEP_OUTPUT_CAP,
            "junit": JUNIT,
        });
        let bin = venv.join("bin");
        let program = Program {
            interpreter: Some(bin.join("python")),
            binds: vec![
                Bind::ReadOnly(venv.to_path_buf()),
                Bind::Handed(work.to_path_buf()),
            ],
            workdir: Some(work.to_path_buf()),
            env: vec![
                ("PATH".into(), format!("{}:/usr/bin:/bin", bin.display())),
                ("NO_COLOR".into(), "1".into()),
                ("PYTHONDONTWRITEBYTECODE".into(), "1".into()),
                ("MYPY_CACHE_DIR".into(), "/tmp/mypy_cache".into()),
                ("RUFF_CACHE_DIR".into(), "/tmp/ruff_cache".into()),
            ],
            // The wall clock counts from the start, once a slot is free; the job's deadline
            // (less the margin to record the outcome) stands however long the run waited.
            deadline: deadline.checked_sub(RECORD_MARGIN),
            limits: Limits {
                wall,
                output_bytes: self.limits.output_bytes.max(result_bytes(steps.len())),
                ..self.limits.clone()
            },
            ..Program::python(["-c", DRIVER], request.to_string().into_bytes())
        };
        let output = sandbox
            .run(&program)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        match output.status {
            RunStatus::TimedOut => anyhow::bail!(
                "verification ran out of time in the sandbox after {} s (its wall clock is {} s, \
                 and it ends {} s before the job's deadline): {}",
                output.elapsed.as_secs(),
                wall.as_secs(),
                RECORD_MARGIN.as_secs(),
                tail(&stderr, 2000)
            ),
            RunStatus::Exited(0) => {}
            status => anyhow::bail!(
                "verification ended with {status:?} in the sandbox (CPU limit {} s, memory {} \
                 bytes): {}",
                self.limits.cpu_seconds,
                self.limits.address_space_bytes,
                tail(&stderr, 2000)
            ),
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let last = stdout.trim_end().rsplit('\n').next().unwrap_or_default();
        serde_json::from_str(last).with_context(|| {
            format!(
                "verification answered no result: {}",
                tail(&format!("{stdout}{stderr}"), 2000)
            )
        })
    }
}

/// Where the generated file `name` goes in the run's directory `work`: a relative path of
/// ordinary segments only, so no name (absolute, `..`) writes outside it as the server's user.
/// `generator::read_zip` refuses such names already; this holds for any caller of `verify`.
fn project_path(work: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let relative = Path::new(name);
    anyhow::ensure!(
        !name.is_empty()
            && relative
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_))),
        "the generated file name {name:?} is not a plain relative path"
    );
    Ok(work.join(relative))
}

/// The virtualenv's `home` (where its `bin/python` links to) must be inside what every run binds:
/// the interpreter's prefix (`/usr` for `/usr/bin/python3`), or nothing would start.
fn check_home(venv: &Path, python: &Path) -> anyhow::Result<()> {
    let cfg = std::fs::read_to_string(venv.join("pyvenv.cfg"))
        .with_context(|| format!("{} has no pyvenv.cfg", venv.display()))?;
    let home = cfg
        .lines()
        .filter_map(|line| line.split_once('='))
        .find(|(key, _)| key.trim() == "home")
        .map(|(_, value)| PathBuf::from(value.trim()))
        .with_context(|| format!("{}/pyvenv.cfg names no home", venv.display()))?;
    let prefix = python
        .parent()
        .and_then(Path::parent)
        .filter(|p| p != &Path::new("/"))
        .unwrap_or(Path::new("/usr"));
    anyhow::ensure!(
        home.starts_with(prefix),
        "the virtualenv's home {} is outside {}, the interpreter's prefix the sandbox binds",
        home.display(),
        prefix.display()
    );
    Ok(())
}

/// A per-run directory this old belongs to no running job (a job's deadline is minutes).
const STALE_RUN: Duration = Duration::from_secs(24 * 3600);

/// How often stale per-run directories are looked for (each is [`STALE_RUN`] old at least).
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Whether a sweep is due at `now` (none yet, or the last `every` ago); if so, records `now`.
fn sweep_due(last: &std::sync::Mutex<Option<Instant>>, now: Instant, every: Duration) -> bool {
    let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
    let due = last.is_none_or(|at| now.saturating_duration_since(at) >= every);
    if due {
        *last = Some(now);
    }
    due
}

/// Removes the per-run directories under `runs` last changed more than `age` ago.
fn sweep_stale_runs(runs: &Path, age: Duration) {
    let Ok(entries) = std::fs::read_dir(runs) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|elapsed| elapsed > age);
        if old {
            if let Err(error) = std::fs::remove_dir_all(entry.path()) {
                tracing::warn!(%error, dir = %entry.path().display(), "cannot remove a stale verify run");
            }
        }
    }
}

/// Where pytest writes its JUnit report inside the run.
const JUNIT: &str = "/tmp/junit.xml";

const PYTEST: &str = "pytest";

const PYTEST_ARGS: [&str; 5] = [
    "pytest",
    "-q",
    "-p",
    "no:cacheprovider",
    "--junitxml=/tmp/junit.xml",
];

/// One step of a run: `python -B -m <args…>` in the project's directory.
struct Step {
    name: &'static str,
    args: Vec<&'static str>,
}

/// What the driver answers.
#[derive(Debug, Deserialize)]
struct DriverResult {
    steps: Vec<StepResult>,
    #[serde(default)]
    junit: String,
}

#[derive(Debug, Deserialize)]
struct StepResult {
    name: String,
    code: i32,
    output: String,
    ms: u64,
}

impl DriverResult {
    fn step(&self, name: &str) -> anyhow::Result<&StepResult> {
        self.steps
            .iter()
            .find(|s| s.name == name)
            .with_context(|| format!("verification did not run {name}"))
    }
}

fn check_report(check: &Check, ran: &StepResult) -> anyhow::Result<CheckReport> {
    let text = &ran.output;
    // Exit 0 is no finding; 1 is findings, counted from the output; anything else (or output that
    // cannot be counted) means the tool itself failed.
    let findings = match ran.code {
        0 => 0,
        1 => (check.count)(text).filter(|n| *n > 0).with_context(|| {
            format!(
                "{} failed without a finding: {}",
                check.name,
                tail(text, 2000)
            )
        })?,
        code => anyhow::bail!(
            "{} could not run (exit code {code}): {}",
            check.name,
            tail(text, 2000)
        ),
    };
    Ok(CheckReport {
        name: check.name,
        findings,
        output: tail(text, 4000),
        duration: Duration::from_millis(ran.ms),
    })
}

fn test_report(ran: &DriverResult) -> anyhow::Result<TestReport> {
    let pytest = ran.step(PYTEST)?;
    let (tests, failed, skipped) = junit_counts(&ran.junit).with_context(|| {
        format!(
            "pytest wrote no JUnit report: {}",
            tail(&pytest.output, 2000)
        )
    })?;
    Ok(TestReport {
        passed: u32::try_from(tests.saturating_sub(failed + skipped)).unwrap_or(u32::MAX),
        failed: u32::try_from(failed).unwrap_or(u32::MAX),
        report: tail(&pytest.output, 8000),
    })
}

/// A static check: its name, its arguments (`python -m <args…>` in the generated tree) and how
/// its output counts findings.
struct Check {
    name: &'static str,
    args: &'static [&'static str],
    count: fn(&str) -> Option<u64>,
}

// No tool keeps a cache in the project's directory (mypy's is in the run's /tmp); each reads the
// configuration the app ships (ruff.toml, mypy.ini), so verification checks exactly what the app's
// own CI checks.
const CHECKS: [Check; 3] = [
    Check {
        name: "ruff check",
        args: &[
            "ruff",
            "check",
            "--no-cache",
            "--output-format=concise",
            ".",
        ],
        count: ruff_check_count,
    },
    Check {
        name: "ruff format --check",
        args: &[
            "ruff",
            "format",
            "--check",
            "--no-cache",
            "--output-format=concise",
            ".",
        ],
        count: ruff_format_count,
    },
    Check {
        name: "mypy",
        args: &["mypy", "--cache-dir=/tmp/mypy_cache", "."],
        count: mypy_count,
    },
];

/// `ruff check --output-format=concise`: one `path:line:col: CODE message` line per finding.
fn ruff_check_count(text: &str) -> Option<u64> {
    Some(
        text.lines()
            .filter(|line| {
                let mut parts = line.splitn(4, ':');
                let (_, line_no, col) = (parts.next(), parts.next(), parts.next());
                line_no.is_some_and(|n| n.parse::<u64>().is_ok())
                    && col.is_some_and(|c| c.parse::<u64>().is_ok())
            })
            .count() as u64,
    )
}

/// `ruff format --check`'s summary: `N files would be reformatted, M files already formatted`.
fn ruff_format_count(text: &str) -> Option<u64> {
    text.lines()
        .rev()
        .filter(|line| line.contains(" would be reformatted"))
        .find_map(|line| line.split_whitespace().next()?.parse().ok())
}

/// mypy's summary: `Found N errors in M files (checked K source files)`.
fn mypy_count(text: &str) -> Option<u64> {
    text.lines()
        .rev()
        .find_map(|line| line.strip_prefix("Found "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_virtualenvs_home_must_be_inside_the_interpreters_prefix() {
        let venv = std::env::temp_dir().join(format!("bf-venv-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&venv).unwrap();
        std::fs::write(
            venv.join("pyvenv.cfg"),
            "home = /usr/bin\nversion = 3.11.2\n",
        )
        .unwrap();
        check_home(&venv, Path::new("/usr/bin/python3")).unwrap();
        std::fs::write(
            venv.join("pyvenv.cfg"),
            "home = /root/.pyenv/versions/3.11.7/bin\n",
        )
        .unwrap();
        let error = check_home(&venv, Path::new("/usr/bin/python3")).unwrap_err();
        assert!(error.to_string().contains("outside /usr"), "{error}");
        std::fs::remove_dir_all(&venv).unwrap();
    }

    #[test]
    fn the_drivers_largest_result_line_fits_what_a_run_keeps() {
        let dir = std::env::temp_dir().join(format!("bf-driver-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        // Characters outside the BMP: 12 bytes each once escaped, the worst case.
        let cap = STEP_OUTPUT_CAP;
        std::fs::write(
            dir.join("emit.py"),
            format!("print('\\U0001F600' * {})\n", cap * 2),
        )
        .unwrap();
        std::fs::write(dir.join("junit.xml"), "\u{1F600}".repeat(cap * 2)).unwrap();
        let step = serde_json::json!({"name": "emit", "args": ["emit"]});
        let request = serde_json::json!({
            "steps": [step, step, step, step],
            "output_cap": cap,
            "junit": dir.join("junit.xml"),
        });
        let mut child = std::process::Command::new("python3")
            .args(["-B", "-c", DRIVER])
            .current_dir(&dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(
            &mut child.stdin.take().unwrap(),
            request.to_string().as_bytes(),
        )
        .unwrap();
        let output = child.wait_with_output().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(output.status.success());
        let result: DriverResult = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(result.steps.len(), 4);
        assert_eq!(result.steps[0].output.chars().count(), cap);
        assert_eq!(result.junit.chars().count(), cap);
        assert!(
            output.stdout.len() <= result_bytes(4),
            "{} > {}",
            output.stdout.len(),
            result_bytes(4)
        );
        // More than the default BACKFORGE_SANDBOX_VERIFY_OUTPUT_BYTES (1 MiB) would keep.
        assert!(output.stdout.len() > 1 << 20);
    }

    #[test]
    fn a_generated_file_is_written_inside_the_runs_directory_only() {
        let work = Path::new("/var/cache/backforge/verify/runs/x");
        assert_eq!(
            project_path(work, "app/main.py").unwrap(),
            work.join("app/main.py")
        );
        for name in ["", "/etc/passwd", "../x", "app/../../x", "./x"] {
            assert!(project_path(work, name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn stale_runs_are_swept_at_most_once_per_interval() {
        let last = std::sync::Mutex::new(None);
        let start = Instant::now();
        let every = Duration::from_secs(3600);
        assert!(sweep_due(&last, start, every));
        assert!(!sweep_due(&last, start, every));
        assert!(!sweep_due(
            &last,
            start + every - Duration::from_secs(1),
            every
        ));
        assert!(sweep_due(&last, start + every, every));
        assert!(!sweep_due(&last, start + every, every));
    }

    #[test]
    fn only_stale_run_directories_are_swept() {
        let runs = std::env::temp_dir().join(format!("bf-runs-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(runs.join("fresh/inner")).unwrap();
        sweep_stale_runs(&runs, Duration::from_secs(3600));
        assert!(runs.join("fresh/inner").exists());
        sweep_stale_runs(&runs, Duration::ZERO);
        std::thread::sleep(Duration::from_millis(20));
        sweep_stale_runs(&runs, Duration::ZERO);
        assert_eq!(std::fs::read_dir(&runs).unwrap().count(), 0);
        std::fs::remove_dir_all(&runs).unwrap();
    }

    #[test]
    fn junit_counts_add_up_every_suite() {
        let xml = r#"<?xml version="1.0"?><testsuites><testsuite name="pytest" errors="1" failures="2" skipped="1" tests="10" time="1.0"><testcase/></testsuite></testsuites>"#;
        assert_eq!(junit_counts(xml), Some((10, 3, 1)));
        assert_eq!(junit_counts("<nothing/>"), None);
    }

    #[test]
    fn each_tools_output_is_counted_in_findings() {
        let ruff = "app/a.py:3:1: F401 [*] `os` imported but unused\napp/b.py:10:101: E501 Line too long (120 > 100)\nFound 2 errors.\n[*] 1 fixable with the `--fix` option.\n";
        assert_eq!(ruff_check_count(ruff), Some(2));
        let format = "app/a.py:3:1: unformatted: File would be reformatted\ntests/b.py:9:5: unformatted: File would be reformatted\n2 files would be reformatted, 30 files already formatted\n";
        assert_eq!(ruff_format_count(format), Some(2));
        let mypy = "app/a.py:1: error: Missing return type  [no-untyped-def]\nFound 7 errors in 3 files (checked 40 source files)\n";
        assert_eq!(mypy_count(mypy), Some(7));
        assert_eq!(
            mypy_count("Success: no issues found in 40 source files\n"),
            None
        );
    }
}
