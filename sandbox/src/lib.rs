//! The one owner of every execution of untrusted code: each run is `bwrap` started by a child that
//! has dropped to its pool slot's unprivileged host uid, under a seccomp filter and rlimits, killed
//! with its whole PID namespace at the wall clock, with its output read up to a cap.
//!
//! Measured on Debian's bubblewrap 0.8: started as root, bwrap's child keeps a full capability set
//! in its user namespace (it can remount a read-only bind read-write), `--uid` maps to host root,
//! `/dev/shm` is unbounded and the environment passes through. So a run never starts bwrap as
//! root: `prlimit` sets the limits, `setpriv` drops to the slot's uid (no groups, no capabilities,
//! no new privileges), `nice` lowers its priority, and bwrap runs with `--unshare-all
//! --unshare-user --disable-userns --cap-drop ALL --clearenv` and a bounded `/tmp` and `/dev/shm`.
//! The workspace forbids `unsafe`, so nothing runs in `pre_exec`: the exec wrappers are
//! util-linux's and coreutils' own programs, and the seccomp programs reach bwrap on fds 3 and 4
//! through `sh`'s redirection.

mod execute;
mod filter;
pub mod function;
mod pool;
mod run;

pub use execute::{Compiled, Execution, ExecutionError, ExecutionStatus};
pub use function::{ExampleRun, Functions};
pub use pool::{Sandbox, SandboxConfig};
pub use run::{Bind, Limits, Program, RunOutput, RunStatus};

/// Why a run did not happen (a run that happened and failed is a [`RunOutput`]).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Every slot is running and the queue is full: try again later (503 with `Retry-After`).
    #[error("the sandbox is busy: {running} runs and {queued} queued")]
    Busy { running: usize, queued: usize },
    /// The sandbox cannot run anything on this machine (its start-up self-test failed).
    #[error("the sandbox is unavailable: {0}")]
    Unavailable(String),
    /// Starting or watching the run failed.
    #[error("the sandbox failed: {0}")]
    Io(#[from] std::io::Error),
}
