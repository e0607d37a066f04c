//! One run: the command line that confines it, the deadline that kills its PID namespace, and the
//! pipes read up to their cap.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

/// What one run may use. Every field is a setting (`BACKFORGE_SANDBOX_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall clock; at the deadline the whole PID namespace is killed.
    pub wall: Duration,
    /// CPU seconds (`RLIMIT_CPU`).
    pub cpu_seconds: u64,
    /// Address space in bytes (`RLIMIT_AS`).
    pub address_space_bytes: u64,
    /// Processes of the run's uid (`RLIMIT_NPROC`).
    pub processes: u64,
    /// Size of the private `/tmp` (a tmpfs).
    pub tmp_bytes: u64,
    /// Largest file the run may write (`RLIMIT_FSIZE`).
    pub file_bytes: u64,
    /// Open files (`RLIMIT_NOFILE`).
    pub open_files: u64,
    /// Bytes kept of stdout and of stderr each; the rest is read and discarded.
    pub output_bytes: usize,
}

impl Default for Limits {
    /// The profile of a function run: wall 5 s, CPU 2 s, 256 MiB of address space, 16 processes,
    /// a 16 MiB `/tmp`, 1 MiB per written file, 64 open files, 64 KiB of stdout and stderr each.
    fn default() -> Self {
        Self {
            wall: Duration::from_secs(5),
            cpu_seconds: 2,
            address_space_bytes: 256 * 1024 * 1024,
            processes: 16,
            tmp_bytes: 16 * 1024 * 1024,
            file_bytes: 1024 * 1024,
            open_files: 64,
            output_bytes: 64 * 1024,
        }
    }
}

/// A host directory the run sees at the same absolute path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    /// Read-only: it and every directory above it must be readable by any uid (the slot's uid
    /// opens it), and writable by none but root.
    ReadOnly(PathBuf),
    Writable(PathBuf),
    /// A scratch directory handed to the run: once the pool has picked the slot, the directory
    /// and everything in it are given to the slot's uid and gid (the caller creates it 0700, so
    /// no other uid can enter it), then bound writable. Afterwards its contents are the run's:
    /// the caller reads nothing from it and removes it (`std::fs::remove_dir_all`, as root).
    Handed(PathBuf),
}

/// What to run: the interpreter's arguments, its standard input, extra directories, a working
/// directory inside the sandbox, the interpreter (a virtualenv's, under a bound directory, or the
/// pool's), extra environment variables, and the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub args: Vec<String>,
    pub stdin: Vec<u8>,
    pub binds: Vec<Bind>,
    pub workdir: Option<PathBuf>,
    /// Runs this interpreter instead of the pool's (`<venv>/bin/python`, whose `pyvenv.cfg`
    /// names the pool's interpreter as its home: the prefix bound read-only). `None`: the pool's.
    pub interpreter: Option<PathBuf>,
    /// Set inside the sandbox after `HOME=/tmp` and `PATH=/usr/bin:/bin`, which they may replace;
    /// nothing else of any environment reaches the run.
    pub env: Vec<(String, String)>,
    /// Ends the run at this instant if its wall clock has not ended it before (a run that waited
    /// for a slot gets only what is left: a job's deadline counts from before the wait).
    pub deadline: Option<Instant>,
    pub limits: Limits,
}

impl Program {
    /// `python3 -I -B <args…>` with `stdin`, under the default limits.
    pub fn python(args: impl IntoIterator<Item = impl Into<String>>, stdin: Vec<u8>) -> Self {
        Self {
            args: args.into_iter().map(Into::into).collect(),
            stdin,
            binds: Vec::new(),
            workdir: None,
            interpreter: None,
            env: Vec::new(),
            deadline: None,
            limits: Limits::default(),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// The interpreter exited with this code.
    Exited(i32),
    /// It was killed by this signal (`SIGXCPU` at the CPU limit, `SIGKILL` by the kernel…).
    Signalled(i32),
    /// The wall clock ran out and the run was killed.
    TimedOut,
}

/// A finished run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    pub status: RunStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Whether stdout or stderr held more than `output_bytes`.
    pub truncated: bool,
    pub elapsed: Duration,
}

/// Everything a run needs from its pool.
pub(crate) struct Confinement<'a> {
    pub python: &'a Path,
    pub uid: u32,
    pub filter: &'a Path,
    pub clone3_filter: &'a Path,
}

/// The confining command line: `sh` opens the seccomp programs as fds 3 and 4, `prlimit` sets the rlimits,
/// `setpriv` drops to the slot's uid, `nice` lowers the priority, and `bwrap` builds the box.
pub(crate) fn command(confinement: &Confinement<'_>, program: &Program) -> Command {
    let limits = &program.limits;
    let uid = confinement.uid.to_string();
    let mut args: Vec<String> = vec![
        "-c".into(),
        // `$0` and `$1` are the filters' paths; everything after them is the command to exec
        // with fds 3 and 4 open on them.
        r#"exec 3<"$0" 4<"$1" && shift && exec "$@""#.into(),
        confinement.filter.display().to_string(),
        confinement.clone3_filter.display().to_string(),
        "prlimit".into(),
        format!("--as={}", limits.address_space_bytes),
        format!("--cpu={}", limits.cpu_seconds),
        format!("--nproc={}", limits.processes),
        format!("--fsize={}", limits.file_bytes),
        format!("--nofile={}", limits.open_files),
        "--core=0".into(),
        "--".into(),
        "setpriv".into(),
        format!("--reuid={uid}"),
        format!("--regid={uid}"),
        "--clear-groups".into(),
        "--no-new-privs".into(),
        "--inh-caps=-all".into(),
        "--bounding-set=-all".into(),
        "--".into(),
        "nice".into(),
        "-n".into(),
        "10".into(),
        "bwrap".into(),
        "--unshare-all".into(),
        "--unshare-user".into(),
        "--disable-userns".into(),
        "--cap-drop".into(),
        "ALL".into(),
        "--clearenv".into(),
        "--new-session".into(),
        "--die-with-parent".into(),
        "--add-seccomp-fd".into(),
        "3".into(),
        "--add-seccomp-fd".into(),
        "4".into(),
    ];
    let prefix = interpreter_prefix(confinement.python);
    args.extend(["--ro-bind".into(), prefix.clone(), prefix.clone()]);
    for (link, target) in [
        ("/lib", "usr/lib"),
        ("/lib64", "usr/lib64"),
        ("/bin", "usr/bin"),
    ] {
        if prefix == "/usr" {
            args.extend(["--symlink".into(), target.into(), link.into()]);
        }
    }
    args.extend(
        [
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--size",
            "1048576",
            "--tmpfs",
            "/dev/shm",
            "--remount-ro",
            "/dev",
        ]
        .map(String::from),
    );
    args.extend([
        "--size".into(),
        limits.tmp_bytes.to_string(),
        "--tmpfs".into(),
        "/tmp".into(),
    ]);
    for bind in &program.binds {
        let (flag, path) = match bind {
            Bind::ReadOnly(path) => ("--ro-bind", path),
            Bind::Writable(path) | Bind::Handed(path) => ("--bind", path),
        };
        let path = path.display().to_string();
        args.extend([flag.into(), path.clone(), path]);
    }
    let workdir = program
        .workdir
        .as_ref()
        .map_or_else(|| "/tmp".to_owned(), |w| w.display().to_string());
    args.extend([
        "--chdir".into(),
        workdir,
        "--setenv".into(),
        "HOME".into(),
        "/tmp".into(),
    ]);
    args.extend(["--setenv".into(), "PATH".into(), "/usr/bin:/bin".into()]);
    for (name, value) in &program.env {
        args.extend(["--setenv".into(), name.clone(), value.clone()]);
    }
    let interpreter = program.interpreter.as_deref().unwrap_or(confinement.python);
    args.extend([
        "--".into(),
        interpreter.display().to_string(),
        "-I".into(),
        "-B".into(),
    ]);
    args.extend(program.args.iter().cloned());
    let mut command = Command::new("/bin/sh");
    command
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        // The namespace's init is bwrap, whose environment /proc/1/environ shows: no host path.
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// The directory the interpreter lives under (`/usr` for `/usr/bin/python3`), bound read-only.
fn interpreter_prefix(python: &Path) -> String {
    python
        .parent()
        .and_then(Path::parent)
        .filter(|p| p != &Path::new("/"))
        .map_or_else(|| "/usr".to_owned(), |p| p.display().to_string())
}

/// Runs `command` to its end or its deadline.
pub(crate) async fn execute(mut command: Command, program: &Program) -> std::io::Result<RunOutput> {
    let started = Instant::now();
    let mut child = command.spawn()?;
    let cap = program.limits.output_bytes;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let stdout = tokio::spawn(read_capped(stdout, cap));
    let stderr = tokio::spawn(read_capped(stderr, cap));
    if let Some(mut stdin) = child.stdin.take() {
        let input = program.stdin.clone();
        // A program that never reads its input must not block the run: written on the side.
        tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
        });
    }
    let wall = program.deadline.map_or(program.limits.wall, |deadline| {
        program
            .limits
            .wall
            .min(deadline.saturating_duration_since(started))
    });
    let status = match tokio::time::timeout(wall, child.wait()).await {
        Ok(status) => {
            let status = status?;
            match (
                status.code(),
                std::os::unix::process::ExitStatusExt::signal(&status),
            ) {
                (Some(code), _) => RunStatus::Exited(code),
                (None, Some(signal)) => RunStatus::Signalled(signal),
                (None, None) => RunStatus::Signalled(0),
            }
        }
        Err(_) => {
            // The child is bwrap itself (sh, prlimit, setpriv and nice exec'd into it); its child
            // is the PID namespace's init. Killing the init takes every process of the namespace,
            // daemons included, and bwrap reaps it and exits. (Killing bwrap first would leave the
            // init to be reaped by PID 1, as a zombie of the run's uid until it is.)
            if let Some(pid) = child.id() {
                kill_children(pid).await;
            }
            if tokio::time::timeout(Duration::from_secs(2), child.wait())
                .await
                .is_err()
            {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
            RunStatus::TimedOut
        }
    };
    let (stdout, out_cut) = stdout.await.unwrap_or_default();
    let (stderr, err_cut) = stderr.await.unwrap_or_default();
    Ok(RunOutput {
        status,
        stdout,
        stderr,
        truncated: out_cut || err_cut,
        elapsed: started.elapsed(),
    })
}

/// SIGKILLs the children of `pid` (the workspace forbids `unsafe`, so through `kill(1)`).
async fn kill_children(pid: u32) {
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    for child in children.split_whitespace() {
        let killed = Command::new("kill")
            .args(["-KILL", child])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .status()
            .await;
        if let Err(error) = killed {
            tracing::warn!(%error, "cannot kill a sandbox's namespace");
        }
    }
}

/// Reads a pipe to its end, keeping the first `cap` bytes.
async fn read_capped<R: AsyncRead + Unpin>(pipe: Option<R>, cap: usize) -> (Vec<u8>, bool) {
    let Some(mut pipe) = pipe else {
        return (Vec::new(), false);
    };
    let mut kept = Vec::new();
    let mut cut = false;
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match pipe.read(&mut buffer).await {
            Ok(0) | Err(_) => return (kept, cut),
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buffer[..n.min(room)]);
                cut |= n > room;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_of_debians_python_is_usr() {
        assert_eq!(interpreter_prefix(Path::new("/usr/bin/python3")), "/usr");
        assert_eq!(
            interpreter_prefix(Path::new("/opt/py/bin/python3")),
            "/opt/py"
        );
        assert_eq!(interpreter_prefix(Path::new("/python3")), "/usr");
    }

    #[tokio::test]
    async fn a_pipe_is_read_to_its_end_and_kept_up_to_its_cap() {
        let data: &[u8] = &[7u8; 100_000];
        let (kept, cut) = read_capped(Some(data), 1000).await;
        assert_eq!((kept.len(), cut), (1000, true));
        let (kept, cut) = read_capped(Some(&data[..10]), 1000).await;
        assert_eq!((kept.len(), cut), (10, false));
    }
}
