//! The generator in a child process: `backforge generate` started through util-linux's `prlimit`
//! with `RLIMIT_AS` (the workspace forbids `unsafe`, so no `pre_exec`), fed the job on stdin,
//! read back as a ZIP on stdout, and killed at its wall clock. A generation that is too slow or
//! too large costs the child, never the worker's process, and its failure is final: the
//! generator is a pure function, so a retry would fail the same way.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use domain::generation::Target;
use domain::ids::GenerationId;
use domain::project::Project;
use generator::child::{
    ChildInput, ChildJob, ChildRefusal, EXIT_BAD_JOB, EXIT_GENERATED, EXIT_REFUSED,
};
use generator::{Artifact, Base, GenerateError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

/// The most of the child's stderr kept: a refusal lists one message per problem.
const STDERR_MAX_BYTES: usize = 256 * 1024;
/// The most of the child's own words that go into a recorded failure reason.
const REASON_MAX_BYTES: usize = 2000;

/// How the generator's child process is started and bounded.
#[derive(Debug, Clone)]
pub struct GeneratorProcess {
    /// The `backforge` binary (`BACKFORGE_GENERATOR_EXE`, default: the running executable).
    pub exe: PathBuf,
    /// util-linux's `prlimit`; without it the child runs with no memory limit (a warning at start).
    pub prlimit: Option<PathBuf>,
    /// `RLIMIT_AS` of the child in bytes (`BACKFORGE_GENERATOR_MEMORY_BYTES`); 0 sets none.
    pub memory_bytes: u64,
    /// Wall clock of one run (`BACKFORGE_GENERATOR_TIMEOUT_SECS`, at most the job deadline).
    pub timeout: Duration,
}

/// Why the child produced no artifact.
#[derive(Debug)]
pub enum ChildError {
    /// The project cannot be generated (the generator's own refusal, as in-process).
    Refused(GenerateError),
    /// The run hit a limit or crashed; the reason is final and goes into `GenerationFailed`.
    Failed(String),
    /// The child could not be run at all (spawn failed, misconfigured executable): worth a
    /// redelivery.
    Unavailable(anyhow::Error),
}

impl GeneratorProcess {
    /// `prlimit --as=N -- <exe> generate`, with a clean environment and piped standard streams.
    fn command(&self) -> Command {
        let mut command = match &self.prlimit {
            Some(prlimit) if self.memory_bytes > 0 => {
                let mut c = Command::new(prlimit);
                c.arg(format!("--as={}", self.memory_bytes))
                    .arg("--")
                    .arg(&self.exe);
                c
            }
            _ => Command::new(&self.exe),
        };
        command
            .arg("generate")
            // The child needs no setting, and secrets have no business in it.
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// The most stdout the worker reads: the child cannot hold a larger archive anyway.
    fn output_max_bytes(&self) -> usize {
        match self.memory_bytes {
            0 => 1 << 30,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        }
    }

    fn memory_text(&self) -> String {
        format!("{} MiB", self.memory_bytes.div_ceil(1024 * 1024))
    }

    /// Generates `project` at `version` in a child process, with no base.
    pub async fn generate(
        &self,
        project: &Project,
        version: u64,
        target: Target,
    ) -> Result<Artifact, ChildError> {
        self.generate_on(project, version, target, None).await
    }

    /// Generates `project` at `version` in a child process, on `base` (the base generation's
    /// migrations and model, and its id) when there is one.
    #[tracing::instrument(skip_all, fields(version))]
    pub async fn generate_on(
        &self,
        project: &Project,
        version: u64,
        target: Target,
        base: Option<(Base, GenerationId)>,
    ) -> Result<Artifact, ChildError> {
        let (base, base_generation_id) = base.unzip();
        let job = ChildInput {
            job: ChildJob {
                project: project.clone(),
                project_version: version,
                target,
            },
            base_generation_id,
            base,
        };
        let input = serde_json::to_vec(&job)
            .map_err(|e| ChildError::Unavailable(anyhow::anyhow!("cannot encode the job: {e}")))?;
        drop(job);
        let mut child = self.command().spawn().map_err(|e| {
            ChildError::Unavailable(anyhow::anyhow!(
                "cannot start the generator ({}): {e}",
                self.exe.display()
            ))
        })?;
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(ChildError::Unavailable(anyhow::anyhow!(
                "the generator's standard streams are missing"
            )));
        };
        let out_max = self.output_max_bytes();
        let run = async {
            let write = async {
                // A child that dies early closes its stdin; its exit status says why.
                let _ = stdin.write_all(&input).await;
                drop(stdin);
            };
            let ((), out, err) = tokio::join!(
                write,
                read_capped(stdout, out_max),
                read_capped(stderr, STDERR_MAX_BYTES)
            );
            (out, err)
        };
        let (out, err) = match tokio::time::timeout(self.timeout, run).await {
            Ok(streams) => streams,
            Err(_) => {
                let _ = child.kill().await;
                return Err(ChildError::Failed(format!(
                    "the generator exceeded its time limit of {} s",
                    self.timeout.as_secs()
                )));
            }
        };
        let (out, out_complete) = out;
        if !out_complete {
            let _ = child.kill().await;
            return Err(ChildError::Failed(format!(
                "the generated archive exceeds {out_max} bytes"
            )));
        }
        // Both pipes are closed, so the child has ended or is about to.
        let status = match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
            Ok(Ok(status)) => status,
            Ok(Err(e)) => {
                return Err(ChildError::Unavailable(anyhow::anyhow!(
                    "cannot wait for the generator: {e}"
                )));
            }
            Err(_) => {
                let _ = child.kill().await;
                return Err(ChildError::Failed(
                    "the generator did not exit after closing its output".into(),
                ));
            }
        };
        self.outcome(status, out, &err.0)
    }

    fn outcome(
        &self,
        status: ExitStatus,
        out: Vec<u8>,
        err: &[u8],
    ) -> Result<Artifact, ChildError> {
        let stderr = String::from_utf8_lossy(err);
        match status.code() {
            Some(EXIT_GENERATED) => Artifact::from_zip(out).map_err(|e| {
                ChildError::Failed(format!(
                    "the generator's output is not a readable archive: {e}"
                ))
            }),
            Some(EXIT_REFUSED) => match serde_json::from_str::<ChildRefusal>(stderr.trim()) {
                Ok(refusal) => Err(ChildError::Refused(GenerateError::Refused(
                    refusal.problems,
                ))),
                Err(e) => Err(ChildError::Failed(format!(
                    "the generator refused the project but its reasons are unreadable ({e})"
                ))),
            },
            _ if out_of_memory(&stderr, status) => Err(ChildError::Failed(format!(
                "the generator exceeded its memory limit of {}",
                self.memory_text()
            ))),
            // `prlimit` itself could not start the generator: a configuration problem.
            Some(_) if stderr.starts_with("prlimit:") => Err(ChildError::Unavailable(
                anyhow::anyhow!("{}", clean(&stderr)),
            )),
            Some(EXIT_BAD_JOB) => Err(ChildError::Failed(format!(
                "the generator could not read its job: {}",
                clean(&stderr)
            ))),
            _ => Err(ChildError::Failed(format!(
                "the generator stopped ({}): {}",
                describe(status),
                clean(&stderr)
            ))),
        }
    }
}

/// Reads `stream` to its end or to `max` bytes; the flag says whether the end was reached.
async fn read_capped(stream: impl AsyncRead + Unpin, max: usize) -> (Vec<u8>, bool) {
    let mut buffer = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let mut capped = stream.take(limit);
    if capped.read_to_end(&mut buffer).await.is_err() {
        return (buffer, true);
    }
    if buffer.len() > max {
        buffer.truncate(max);
        return (buffer, false);
    }
    (buffer, true)
}

/// Whether the child died for want of memory: Rust's allocation-failure message (then SIGABRT),
/// an exec or mmap refused under the limit, or a SIGKILL nobody here sent (the kernel's OOM killer).
fn out_of_memory(stderr: &str, status: ExitStatus) -> bool {
    stderr.contains("memory allocation of")
        || stderr.contains("Cannot allocate memory")
        || stderr.contains("out of memory")
        || status.signal() == Some(9)
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// Foreign text made fit for an event: no NUL (PostgreSQL refuses it), at most
/// [`REASON_MAX_BYTES`] bytes, cut at a character boundary.
fn clean(text: &str) -> String {
    let text = text.trim().replace('\0', "\u{fffd}");
    if text.len() <= REASON_MAX_BYTES {
        return text;
    }
    let mut end = REASON_MAX_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// `prlimit` on the `PATH`, else Debian's location; `None` when neither exists.
pub fn find_prlimit() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("prlimit"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let debian = Path::new("/usr/bin/prlimit");
        debian.is_file().then(|| debian.to_path_buf())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_lose_nul_and_are_cut_at_a_character_boundary() {
        assert_eq!(clean(" a\0b \n"), "a\u{fffd}b");
        let long = "é".repeat(REASON_MAX_BYTES);
        let cut = clean(&long);
        assert!(cut.len() <= REASON_MAX_BYTES + '…'.len_utf8());
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn an_allocation_failure_is_told_from_a_crash() {
        let abort = ExitStatus::from_raw(6);
        assert!(out_of_memory(
            "memory allocation of 1073741824 bytes failed\n",
            abort
        ));
        assert!(!out_of_memory("thread 'main' panicked at src/x.rs", abort));
        assert!(out_of_memory("", ExitStatus::from_raw(9)));
    }
}
