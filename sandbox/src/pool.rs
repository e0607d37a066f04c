//! The bounded pool of sandbox slots: one unprivileged host uid per slot, at most `slots` runs at
//! once and `queue` waiting; beyond that a run is refused as busy rather than piling up.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::SandboxError;
use crate::filter;
use crate::run::{self, Bind, Confinement, Program, RunOutput, RunStatus};

/// How a sandbox is set up (`BACKFORGE_SANDBOX_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// The interpreter every run uses (`BACKFORGE_SANDBOX_PYTHON`): Debian's `/usr/bin/python3`,
    /// never the first `python3` on PATH (a build in root's home an unprivileged uid cannot read).
    pub python: PathBuf,
    /// The first slot's uid and gid (`BACKFORGE_SANDBOX_UID_BASE`); slot n runs as base + n.
    pub uid_base: u32,
    /// Runs at once (`BACKFORGE_SANDBOX_SLOTS`).
    pub slots: usize,
    /// Runs that may wait for a slot (`BACKFORGE_SANDBOX_QUEUE`).
    pub queue: usize,
    /// Where the seccomp program is written (a root-owned directory).
    pub state_dir: PathBuf,
}

impl SandboxConfig {
    /// Refuses uids that would share identity with something else: root, `nobody` (65534), or a
    /// range that wraps.
    fn check(&self) -> Result<(), SandboxError> {
        let last = self
            .uid_base
            .checked_add(u32::try_from(self.slots).unwrap_or(u32::MAX))
            .ok_or_else(|| SandboxError::Unavailable("the sandbox uid range overflows".into()))?;
        if self.uid_base < 1000 || (self.uid_base..last).contains(&65534) {
            return Err(SandboxError::Unavailable(format!(
                "BACKFORGE_SANDBOX_UID_BASE {} must be at least 1000 and its range must not hold 65534",
                self.uid_base
            )));
        }
        if self.slots == 0 {
            return Err(SandboxError::Unavailable(
                "BACKFORGE_SANDBOX_SLOTS must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// A pool of sandbox slots. Cheap to clone.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    config: SandboxConfig,
    filter: PathBuf,
    /// The second filter (clone3 → `ENOSYS`), beside the first.
    clone3_filter: PathBuf,
    permits: Semaphore,
    /// Free uids, the one free longest first: a uid's exited processes stay charged against its
    /// `RLIMIT_NPROC` for a while (see [`run_started`]), so the least recently used one is taken.
    free_uids: Mutex<VecDeque<u32>>,
    waiting: AtomicUsize,
}

impl Drop for Inner {
    /// Removes the seccomp program, and its directory when nothing else is in it (a process start
    /// must not leave one behind per start).
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.filter);
        let _ = std::fs::remove_file(&self.clone3_filter);
        let _ = std::fs::remove_dir(&self.config.state_dir);
    }
}

impl Sandbox {
    /// Sets up the pool and writes the seccomp program. Runs nothing: see [`Sandbox::self_test`].
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        config.check()?;
        std::fs::create_dir_all(&config.state_dir)?;
        let filter = config.state_dir.join("seccomp.bpf");
        let program = filter::program_bytes().map_err(SandboxError::Unavailable)?;
        std::fs::write(&filter, program)?;
        let clone3_filter = config.state_dir.join("seccomp-clone3.bpf");
        let program = filter::clone3_program_bytes().map_err(SandboxError::Unavailable)?;
        std::fs::write(&clone3_filter, program)?;
        let free_uids = (0..config.slots)
            .map(|n| config.uid_base + n as u32)
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                permits: Semaphore::new(config.slots),
                free_uids: Mutex::new(free_uids),
                waiting: AtomicUsize::new(0),
                filter,
                clone3_filter,
                config,
            }),
        })
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    /// Runs `program` in a free slot, waiting in the bounded queue for one.
    pub async fn run(&self, program: &Program) -> Result<RunOutput, SandboxError> {
        let inner = &self.inner;
        let queued = inner.waiting.fetch_add(1, Ordering::AcqRel);
        let running = inner.config.slots - inner.permits.available_permits();
        if queued >= inner.config.queue && inner.permits.available_permits() == 0 {
            inner.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(SandboxError::Busy { running, queued });
        }
        let permit = {
            // Counted out of the queue however the wait ends (a caller may stop waiting).
            let _waiting = Waiting(&inner.waiting);
            inner.permits.acquire().await
        };
        let _permit =
            permit.map_err(|_| SandboxError::Unavailable("the sandbox pool is closed".into()))?;
        let slot = Slot::take(inner)?;
        for bind in &program.binds {
            if let Bind::Handed(dir) = bind {
                hand_over(dir.clone(), slot.uid).await?;
            }
        }
        let confinement = Confinement {
            python: &inner.config.python,
            uid: slot.uid,
            filter: &inner.filter,
            clone3_filter: &inner.clone3_filter,
        };
        Ok(run_started(&confinement, program).await?)
    }

    /// One trivial run that must print what it computed; its failure says why nothing can run.
    pub async fn self_test(&self) -> Result<(), SandboxError> {
        let program = Program::python(["-c", "print(6 * 7)"], Vec::new());
        let output = self.run(&program).await?;
        if output.status == RunStatus::Exited(0) && output.stdout == b"42\n" {
            return Ok(());
        }
        Err(SandboxError::Unavailable(format!(
            "the self-test run ended with {:?}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A slot's uid while a run has it: given back when the run ends, however it ends (a caller that
/// stops waiting drops the run, whose child is killed on drop).
struct Slot<'a> {
    inner: &'a Inner,
    uid: u32,
}

impl<'a> Slot<'a> {
    fn take(inner: &'a Inner) -> Result<Self, SandboxError> {
        let uid = inner
            .free_uids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
            .ok_or_else(|| SandboxError::Unavailable("no free sandbox uid".into()))?;
        Ok(Self { inner, uid })
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.inner
            .free_uids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(self.uid);
    }
}

/// Gives `dir` and everything under it to `uid` (and the gid of the same number), without
/// following a symbolic link. The tree is the caller's, written before the run.
async fn hand_over(dir: PathBuf, uid: u32) -> Result<(), SandboxError> {
    tokio::task::spawn_blocking(move || chown_tree(&dir, uid))
        .await
        .map_err(|e| SandboxError::Io(std::io::Error::other(e)))??;
    Ok(())
}

fn chown_tree(path: &Path, uid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid))?;
    if std::fs::symlink_metadata(path)?.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid)?;
        }
    }
    Ok(())
}

/// How long a run may wait for its uid's process count to come down before it starts.
const START_PATIENCE: Duration = Duration::from_secs(3);

/// What bwrap says when the slot uid's `RLIMIT_NPROC` refuses its first fork: nothing of the
/// program has run yet.
const NPROC_REFUSED: &[u8] = b"bwrap: Can't fork for pid 1: Resource temporarily unavailable";

/// What `setpriv` says (exiting 126) when the kernel refuses its exec for the same reason: the
/// uid was over its `RLIMIT_NPROC` when `setpriv` took it. Nothing of the program has run either.
const NPROC_EXEC_REFUSED: &[u8] =
    b"setpriv: failed to execute nice: Resource temporarily unavailable";

/// Whether a run ended before anything of its program ran, refused by the slot uid's process
/// count.
fn refused_start(output: &RunOutput) -> bool {
    match output.status {
        RunStatus::Exited(1) => output.stderr.starts_with(NPROC_REFUSED),
        RunStatus::Exited(126) => output.stderr.trim_ascii_end() == NPROC_EXEC_REFUSED,
        _ => false,
    }
}

/// Runs `program`, starting it again while bwrap cannot fork at all. The kernel (6.x) gives a
/// uid's process count back when the credentials of its exited tasks are freed after an RCU grace
/// period, so a slot's run that follows the previous one at once may find the count of that
/// finished run still charged (measured here: 26 of 40 back-to-back runs at `--nproc=16`, and up
/// to 1.4 s before a start succeeded; each run leaves about one process charged for ~0.5 s).
/// Only that refusal is retried, never a program that ran: first after 2 ms (a refused start
/// costs ~3 ms), then backing off to 200 ms.
async fn run_started(
    confinement: &Confinement<'_>,
    program: &Program,
) -> std::io::Result<RunOutput> {
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        let output = run::execute(run::command(confinement, program), program).await?;
        if !refused_start(&output) || started.elapsed() >= START_PATIENCE {
            return Ok(output);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(status: RunStatus, stderr: &[u8]) -> RunOutput {
        RunOutput {
            status,
            stdout: Vec::new(),
            stderr: stderr.to_vec(),
            truncated: false,
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn only_a_start_the_process_count_refused_is_started_again() {
        let fork = b"bwrap: Can't fork for pid 1: Resource temporarily unavailable\n";
        let exec = b"setpriv: failed to execute nice: Resource temporarily unavailable\n";
        assert!(refused_start(&ended(RunStatus::Exited(1), fork)));
        assert!(refused_start(&ended(RunStatus::Exited(126), exec)));
        // The same words with another exit, or followed by more output, are a program's own.
        assert!(!refused_start(&ended(RunStatus::Exited(0), fork)));
        assert!(!refused_start(&ended(RunStatus::Exited(1), exec)));
        assert!(!refused_start(&ended(
            RunStatus::Exited(126),
            b"setpriv: failed to execute nice: Resource temporarily unavailable\nmore"
        )));
        assert!(!refused_start(&ended(RunStatus::TimedOut, fork)));
    }
}
