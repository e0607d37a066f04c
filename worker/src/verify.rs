//! Verification of a generated backend: unpack it in a throw-away directory and run its own pytest
//! suite, with a timeout, in a Python environment built once per pinned requirements file. Both
//! live in the worker's private cache directory ([`crate::cache`]).

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

/// A virtual environment with `requirements` installed, reused for identical requirements.
pub async fn ensure_venv(
    root: &Path,
    requirements: &[u8],
    timeout: Duration,
) -> anyhow::Result<PathBuf> {
    let key = hex::encode(Sha256::digest(requirements));
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
    let req_file = dir.join("requirements.txt");
    tokio::fs::write(&req_file, requirements).await?;
    run(
        Command::new(dir.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "-q",
                "-r",
            ])
            .arg(&req_file),
        timeout,
    )
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

/// Writes `files` under a fresh directory of `venv_root` (the private cache, created 0700 if
/// missing) and runs the suite; the report says what happened.
pub async fn verify(
    files: &BTreeMap<String, Vec<u8>>,
    venv_root: &Path,
    timeout: Duration,
) -> anyhow::Result<TestReport> {
    let requirements = files
        .get("requirements.txt")
        .context("the generated backend has no requirements.txt")?;
    // Checked before anything in it is trusted: a venv another user could write is theirs.
    crate::cache::private_dir(venv_root)?;
    let venv = ensure_venv(venv_root, requirements, timeout).await?;
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
) -> anyhow::Result<TestReport> {
    for (name, content) in files {
        let path = work.join(name);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::write(&path, content).await?;
    }
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
}
