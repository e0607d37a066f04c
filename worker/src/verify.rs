//! Verification of a generated backend: unpack it in a throw-away directory, run its static checks
//! (`ruff check`, `ruff format --check`, `mypy`, with the configuration it ships) and its own pytest
//! suite, with a timeout, in a Python environment built once per pair of hash-pinned requirements
//! files. Both live in the worker's private cache directory ([`crate::cache`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use domain::generation::TestReport;
use sha2::{Digest, Sha256};
use tokio::process::Command;
use tokio::sync::Mutex;

/// Builds virtual environments one at a time: two generations must not race to create one.
static VENV_LOCK: Mutex<()> = Mutex::const_new(());

/// The requirements files verification installs, in this order, from the generated tree.
pub const REQUIREMENTS_FILES: [&str; 2] = ["requirements.txt", "requirements-dev.txt"];

/// A virtual environment with `files` (name, content: hash-pinned requirements files) installed,
/// reused for identical files. Every requirement must be pinned with its hashes (`--require-hashes`,
/// `--no-deps`): the lock is complete, so nothing unpinned is ever resolved.
pub async fn ensure_venv(
    root: &Path,
    files: &[(&str, &[u8])],
    timeout: Duration,
) -> anyhow::Result<PathBuf> {
    let mut hasher = Sha256::new();
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
    crate::cache::private_dir(root)?;
    run(
        Command::new("python3").arg("-m").arg("venv").arg(&dir),
        timeout,
    )
    .await
    .context("python3 -m venv failed")?;
    let mut install = Command::new(dir.join("bin/python"));
    install.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "-q",
        "--require-hashes",
        "--no-deps",
    ]);
    for (name, content) in files {
        let path = dir.join(name);
        tokio::fs::write(&path, content).await?;
        install.arg("-r").arg(&path);
    }
    run(&mut install, timeout)
        .await
        .context("installing the generated requirements failed")?;
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

/// Writes `files` under a fresh directory of `venv_root` (the private cache, created 0700 if
/// missing), runs the static checks and the suite; the report says what happened.
pub async fn verify(
    files: &BTreeMap<String, Vec<u8>>,
    venv_root: &Path,
    timeout: Duration,
) -> anyhow::Result<Verification> {
    let mut requirements = Vec::new();
    for name in REQUIREMENTS_FILES {
        let content = files
            .get(name)
            .with_context(|| format!("the generated backend has no {name}"))?;
        requirements.push((name, content.as_slice()));
    }
    // Checked before anything in it is trusted: a venv another user could write is theirs.
    crate::cache::private_dir(venv_root)?;
    let venv = ensure_venv(venv_root, &requirements, timeout).await?;
    let work = venv_root.join(format!("work-{}", uuid::Uuid::new_v4().simple()));
    let result = verify_in(&work, &venv, files, timeout).await;
    tokio::fs::remove_dir_all(&work).await.ok();
    result
}

async fn verify_in(
    work: &Path,
    venv: &Path,
    files: &BTreeMap<String, Vec<u8>>,
    timeout: Duration,
) -> anyhow::Result<Verification> {
    for (name, content) in files {
        let path = work.join(name);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::write(&path, content).await?;
    }
    let mut checks = Vec::new();
    for check in &CHECKS {
        checks.push(static_check(check, work, venv, timeout).await?);
    }
    let tests = pytest(work, venv, timeout).await?;
    Ok(Verification { checks, tests })
}

/// A static check: its name, its command (a program of the virtualenv and its arguments, run in
/// the generated tree) and how its output counts findings.
struct Check {
    name: &'static str,
    program: &'static str,
    args: &'static [&'static str],
    count: fn(&str) -> Option<u64>,
}

// No tool keeps a cache in the throw-away tree; each reads the configuration the app ships
// (ruff.toml, mypy.ini), so verification checks exactly what the app's own CI checks. mypy's
// cache lives in the virtualenv (see `static_check`): the installed packages' analysis, most of a
// cold run, is then done once per virtualenv.
const CHECKS: [Check; 3] = [
    Check {
        name: "ruff check",
        program: "ruff",
        args: &["check", "--no-cache", "--output-format=concise", "."],
        count: ruff_check_count,
    },
    Check {
        name: "ruff format --check",
        program: "ruff",
        args: &[
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
        program: "mypy",
        args: &["."],
        count: mypy_count,
    },
];

async fn static_check(
    check: &Check,
    work: &Path,
    venv: &Path,
    timeout: Duration,
) -> anyhow::Result<CheckReport> {
    let started = std::time::Instant::now();
    let mut command = Command::new(venv.join("bin").join(check.program));
    if check.program == "mypy" {
        // Entries are keyed by module and checked against the source's hash, so runs on other
        // apps (same module names) only miss; mypy replaces its cache files atomically.
        command.arg(format!(
            "--cache-dir={}",
            venv.join(".mypy_cache").display()
        ));
    }
    command
        .args(check.args)
        .current_dir(work)
        .env("NO_COLOR", "1")
        .env_remove("DATABASE_URL")
        .kill_on_drop(true);
    let output = tokio::time::timeout(timeout, command.output())
        .await
        .map_err(|_| anyhow::anyhow!("{} timed out after {} s", check.name, timeout.as_secs()))?
        .with_context(|| format!("cannot run {}", check.name))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // Exit 0 is no finding; 1 is findings, counted from the output; anything else (or output that
    // cannot be counted) means the tool itself failed.
    let findings = match output.status.code() {
        Some(0) => 0,
        Some(1) => (check.count)(&text).filter(|n| *n > 0).with_context(|| {
            format!(
                "{} failed without a finding: {}",
                check.name,
                tail(&text, 2000)
            )
        })?,
        _ => anyhow::bail!(
            "{} could not run ({}): {}",
            check.name,
            output.status,
            tail(&text, 2000)
        ),
    };
    Ok(CheckReport {
        name: check.name,
        findings,
        output: tail(&text, 4000),
        duration: started.elapsed(),
    })
}

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

async fn pytest(work: &Path, venv: &Path, timeout: Duration) -> anyhow::Result<TestReport> {
    let junit = work.join("junit.xml");
    let mut command = Command::new(venv.join("bin/python"));
    command
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .arg(format!("--junitxml={}", junit.display()))
        .current_dir(work)
        .env_remove("DATABASE_URL")
        .kill_on_drop(true);
    let output = tokio::time::timeout(timeout, command.output())
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "the generated test suite timed out after {} s",
                timeout.as_secs()
            )
        })??;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let xml = tokio::fs::read_to_string(&junit).await.unwrap_or_default();
    let (tests, failed, skipped) = junit_counts(&xml)
        .with_context(|| format!("pytest wrote no JUnit report: {}", tail(&text, 2000)))?;
    Ok(TestReport {
        passed: u32::try_from(tests.saturating_sub(failed + skipped)).unwrap_or(u32::MAX),
        failed: u32::try_from(failed).unwrap_or(u32::MAX),
        report: tail(&text, 8000),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
