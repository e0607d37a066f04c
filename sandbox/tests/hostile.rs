//! The sandbox against hostile programs, for real (bubblewrap, setpriv and Debian's python3 must be
//! installed, and the tests run as root, as `.ci/run` does): each is stopped with its own status,
//! sees no secret, no host file, no network, and leaves no process behind.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use sandbox::{Bind, Limits, Program, RunStatus, Sandbox, SandboxConfig, SandboxError};

/// A pool of its own per test (its own uids), so tests run in parallel.
fn sandbox(uid_base: u32, slots: usize, queue: usize) -> Sandbox {
    let dir = std::env::temp_dir().join(format!("bf-sandbox-test-{uid_base}"));
    Sandbox::new(SandboxConfig {
        python: PathBuf::from("/usr/bin/python3"),
        uid_base,
        slots,
        queue,
        state_dir: dir,
    })
    .expect("a sandbox")
}

fn python(code: &str) -> Program {
    Program::python(["-c", code], Vec::new())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Processes on the host owned by `uid`.
fn processes_of(uid: u32) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok())
        .filter(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .is_some_and(|u| u == uid.to_string())
        })
        .count()
}

#[tokio::test]
async fn the_self_test_passes_and_a_program_gets_its_input() {
    let sandbox = sandbox(62000, 1, 1);
    sandbox.self_test().await.expect("self-test");
    let program = Program::python(
        [
            "-c",
            "import sys, json; print(json.load(sys.stdin)['n'] + 1)",
        ],
        br#"{"n": 41}"#.to_vec(),
    );
    let output = sandbox.run(&program).await.expect("run");
    assert_eq!(
        (output.status, text(&output.stdout)),
        (RunStatus::Exited(0), "42\n".into())
    );
}

#[tokio::test]
async fn the_servers_environment_and_files_are_invisible() {
    let sandbox = sandbox(62010, 1, 1);
    let secret = std::env::temp_dir().join("bf-sandbox-secret");
    std::fs::write(&secret, "top secret").expect("write");
    let code = format!(
        r#"
import os
print(sorted(os.environ))
print(os.getuid(), os.getgid())
for path in ["/etc/shadow", "/root", "{secret}", "/proc/1/environ"]:
    try:
        print(path, open(path).read()[:20])
    except Exception as e:
        print(path, type(e).__name__)
try:
    open("/usr/bf-written", "w")
    print("wrote /usr")
except Exception as e:
    print("usr", type(e).__name__)
"#,
        secret = secret.display()
    );
    let output = sandbox.run(&python(&code)).await.expect("run");
    let out = text(&output.stdout);
    assert_eq!(
        output.status,
        RunStatus::Exited(0),
        "{}",
        text(&output.stderr)
    );
    assert!(!out.contains("top secret"), "{out}");
    assert!(
        !out.contains("JWT_SECRET") && !out.contains("DATABASE_URL"),
        "{out}"
    );
    assert!(out.contains("62010 62010"), "runs as its slot's uid: {out}");
    assert!(!out.contains("wrote /usr"), "{out}");
    assert!(!out.contains("root:"), "{out}");
}

#[tokio::test]
async fn there_is_no_network() {
    let sandbox = sandbox(62020, 1, 1);
    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let code = format!(
        r#"
import socket
for host in ["127.0.0.1", "10.0.0.1"]:
    try:
        socket.create_connection((host, {port}), timeout=1)
        print("connected", host)
    except Exception as e:
        print("refused", host, type(e).__name__)
"#
    );
    let output = sandbox.run(&python(&code)).await.expect("run");
    let out = text(&output.stdout);
    assert!(!out.contains("connected"), "{out}");
    assert!(listener.accept().is_err(), "the listener saw a connection");
}

#[tokio::test]
async fn a_busy_loop_and_its_daemons_end_at_the_deadline_and_leave_nothing_behind() {
    let sandbox = sandbox(62030, 1, 1);
    let program = Program {
        limits: Limits {
            wall: Duration::from_millis(1500),
            ..Limits::default()
        },
        ..python(
            r#"
import os
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        while True: pass
while True: pass
"#,
        )
    };
    let output = sandbox.run(&program).await.expect("run");
    assert_eq!(output.status, RunStatus::TimedOut);
    assert!(
        output.elapsed < Duration::from_secs(4),
        "{:?}",
        output.elapsed
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        processes_of(62030),
        0,
        "a process of the run's uid survived"
    );
}

#[tokio::test]
async fn memory_processes_and_output_are_bounded() {
    let sandbox = sandbox(62040, 1, 1);
    let memory = sandbox
        .run(&python("x = bytearray(2 * 1024 * 1024 * 1024)"))
        .await
        .expect("run");
    assert_ne!(memory.status, RunStatus::Exited(0));
    assert!(
        text(&memory.stderr).contains("MemoryError"),
        "{}",
        text(&memory.stderr)
    );
    let forks = sandbox
        .run(&python(
            r#"
import os
n = 0
try:
    for _ in range(200):
        if os.fork() == 0:
            import time; time.sleep(5); os._exit(0)
        n += 1
except OSError as e:
    print("stopped at", n, e.errno)
"#,
        ))
        .await
        .expect("run");
    assert!(
        text(&forks.stdout).contains("stopped at"),
        "{}",
        text(&forks.stdout)
    );
    let flood = sandbox
        .run(&python(
            "import sys\nfor _ in range(20000): sys.stdout.write('x' * 1000)",
        ))
        .await
        .expect("run");
    assert!(flood.truncated);
    assert_eq!(flood.stdout.len(), Limits::default().output_bytes);
    let shm = sandbox
        .run(&python(
            "open('/dev/shm/big', 'wb').write(b'x' * (8 * 1024 * 1024))",
        ))
        .await
        .expect("run");
    assert_ne!(shm.status, RunStatus::Exited(0), "/dev/shm is bounded");
}

#[tokio::test]
async fn namespaces_and_mounts_are_refused_by_the_filter() {
    let sandbox = sandbox(62050, 1, 1);
    let output = sandbox
        .run(&python(
            r#"
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
print("unshare", libc.unshare(0x10000000), ctypes.get_errno())
print("mount", libc.mount(b"none", b"/tmp", b"tmpfs", 0, None), ctypes.get_errno())
"#,
        ))
        .await
        .expect("run");
    let out = text(&output.stdout);
    assert!(
        out.contains("unshare -1 1"),
        "{out} {}",
        text(&output.stderr)
    );
    assert!(out.contains("mount -1 1"), "{out}");
}

#[tokio::test]
async fn beyond_the_slots_and_the_queue_a_run_is_refused_as_busy() {
    let sandbox = sandbox(62060, 1, 1);
    let slow = Program {
        limits: Limits {
            wall: Duration::from_secs(3),
            ..Limits::default()
        },
        ..python("import time; time.sleep(2)")
    };
    let first = tokio::spawn({
        let sandbox = sandbox.clone();
        let slow = slow.clone();
        async move { sandbox.run(&slow).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = tokio::spawn({
        let sandbox = sandbox.clone();
        let slow = slow.clone();
        async move { sandbox.run(&slow).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let third = sandbox.run(&slow).await;
    assert!(matches!(third, Err(SandboxError::Busy { .. })), "{third:?}");
    assert!(first.await.expect("join").is_ok());
    assert!(second.await.expect("join").is_ok());
}

/// The run result of each program of the API's table, through the runner.
#[tokio::test]
async fn each_hostile_program_gets_its_status() {
    use sandbox::ExecutionStatus as S;
    let sandbox = sandbox(62070, 2, 4);
    let limits = Limits::default();
    let cases: &[(&str, S)] = &[
        (
            "def handler(input):\n    return {'sum': input['a'] + input['b']}",
            S::Ok,
        ),
        ("while True: pass", S::Timeout),
        ("import time\ntime.sleep(60)", S::Timeout),
        ("x = bytearray(1 << 31)", S::MemoryLimit),
        ("print('x' * (100 * 1024 * 1024))", S::OutputLimit),
        (
            "import sys\nsys.stderr.write('e' * 200000)\nraise SystemExit(3)",
            S::OutputLimit,
        ),
        ("open('/etc/shadow').read()", S::Error),
        (
            "import socket\nsocket.create_connection(('127.0.0.1', 5432), timeout=1)",
            S::Error,
        ),
        (
            "for i in range(1100):\n    open(f'/tmp/f{i}', 'wb').write(b'x' * (1 << 20))",
            S::Error,
        ),
        (
            "for i in range(1100):\n    open(f'/dev/shm/f{i}', 'wb').write(b'x' * (1 << 20))",
            S::Error,
        ),
        ("open('/dev/f', 'wb').write(b'x')", S::Error),
        ("def handler(input):\n    return {1, 2}", S::Error),
        ("def handler(input):\n    return float('nan')", S::Error),
        (
            "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)",
            S::Ok,
        ),
    ];
    for (code, expected) in cases {
        let input = serde_json::json!({"a": 1, "b": 2});
        let result = sandbox
            .execute(code, Some(&input), &limits)
            .await
            .expect("a run");
        assert_eq!(
            result.status, *expected,
            "{code}: {:?} {:.300}",
            result.error, result.stderr
        );
        assert!(!result.stdout.contains("root:"), "{code}");
    }
    let environ = sandbox
        .execute(
            "import os\nprint(sorted(os.environ), open('/proc/1/environ').read(), os.listdir('/proc/self/fd'))",
            None,
            &limits,
        )
        .await
        .expect("a run");
    assert_eq!(environ.status, S::Ok, "{environ:?}");
    assert!(!environ.stdout.contains("JWT_SECRET"), "{}", environ.stdout);
    // 3 is the descriptor `os.listdir` itself opened to list the directory.
    assert!(
        environ.stdout.ends_with("['0', '1', '2', '3']\n"),
        "{}",
        environ.stdout
    );
    assert!(!environ.stdout.contains("/work"), "{}", environ.stdout);
    let error = sandbox
        .execute("x = 1\n\ny = undefined_name", None, &limits)
        .await
        .expect("a run");
    let line = error.error.as_ref().and_then(|e| e.line);
    assert_eq!((error.status, line), (S::Error, Some(3)), "{error:?}");
}

#[tokio::test]
async fn code_is_compiled_by_the_real_interpreter_with_line_and_column() {
    let sandbox = sandbox(62080, 1, 2);
    let limits = Limits::default();
    let fine = sandbox
        .compile("def handler(input):\n    return input", &limits)
        .await
        .expect("compiled");
    assert_eq!(
        fine,
        sandbox::Compiled::Fine {
            defines_handler: true
        }
    );
    let missing = sandbox
        .compile("def other(x):\n    return x", &limits)
        .await
        .expect("compiled");
    assert_eq!(
        missing,
        sandbox::Compiled::Fine {
            defines_handler: false
        }
    );
    match sandbox
        .compile("def handler(input):\n    return (", &limits)
        .await
        .expect("compiled")
    {
        sandbox::Compiled::SyntaxError(error) => {
            assert_eq!(error.line, Some(2), "{error:?}");
            assert!(error.column.is_some(), "{error:?}");
        }
        other => panic!("a syntax error: {other:?}"),
    }
}

#[test]
fn a_dropped_sandbox_leaves_no_file_behind() {
    let dir = std::env::temp_dir().join("bf-sandbox-test-drop");
    let sandbox = Sandbox::new(SandboxConfig {
        python: PathBuf::from("/usr/bin/python3"),
        uid_base: 62090,
        slots: 1,
        queue: 1,
        state_dir: dir.clone(),
    })
    .expect("a sandbox");
    assert!(dir.join("seccomp.bpf").exists());
    drop(sandbox);
    assert!(!dir.exists(), "{dir:?} is left behind");
}

#[tokio::test]
async fn a_handed_directory_is_the_runs_alone_and_a_dropped_run_gives_its_slot_back() {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let sandbox = sandbox(62100, 1, 1);
    let dir = std::env::temp_dir().join(format!("bf-sandbox-handed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .expect("mkdir");
    std::fs::create_dir(dir.join("sub")).expect("mkdir sub");
    std::fs::write(dir.join("sub/given.txt"), b"given").expect("write");
    let path = dir.display().to_string();
    let program = Program {
        binds: vec![Bind::Handed(dir.clone())],
        workdir: Some(dir.clone()),
        env: vec![("MARKER".into(), "set".into())],
        ..python(
            r#"
import os
with open("sub/given.txt") as f:
    given = f.read()
with open("written.txt", "w") as f:
    f.write("mine")
print(given, os.getcwd(), os.stat(".").st_uid, os.environ["MARKER"], os.environ["HOME"])
"#,
        )
    };
    let output = sandbox.run(&program).await.expect("run");
    assert_eq!(
        output.status,
        RunStatus::Exited(0),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(
        text(&output.stdout),
        format!("given {path} 62100 set /tmp\n")
    );
    let written = std::fs::symlink_metadata(dir.join("written.txt")).expect("written");
    assert_eq!((written.uid(), written.gid()), (62100, 62100));
    assert_eq!(
        std::fs::metadata(dir.join("sub/given.txt"))
            .expect("given")
            .uid(),
        62100
    );
    std::fs::remove_dir_all(&dir).expect("removed as root");

    // A caller that stops waiting drops its run: the slot (and its uid) come back.
    let endless = Program {
        limits: Limits {
            wall: Duration::from_secs(30),
            ..Limits::default()
        },
        ..python("import time\ntime.sleep(30)")
    };
    let dropped = tokio::time::timeout(Duration::from_millis(500), sandbox.run(&endless)).await;
    assert!(dropped.is_err(), "the run was still going");
    let again = tokio::time::timeout(Duration::from_secs(10), sandbox.run(&python("print(1)")))
        .await
        .expect("the slot came back")
        .expect("run");
    assert_eq!(text(&again.stdout), "1\n");
}

#[tokio::test]
async fn a_run_may_start_threads_but_clone3_cannot_smuggle_a_namespace() {
    let sandbox = sandbox(62110, 1, 1);
    let output = sandbox
        .run(&python(
            r#"
import ctypes, threading
done = []
t = threading.Thread(target=lambda: done.append(1))
t.start(); t.join()
libc = ctypes.CDLL(None, use_errno=True)
# clone3(struct clone_args {flags = CLONE_NEWUSER}, size 88): refused before the kernel reads it.
args = (ctypes.c_uint64 * 11)(0x10000000)
r = libc.syscall(435, args, 88)
print(done, r, ctypes.get_errno())
"#,
        ))
        .await
        .expect("run");
    assert_eq!(
        output.status,
        RunStatus::Exited(0),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(text(&output.stdout), format!("[1] -1 {}\n", libc::ENOSYS));
}

#[tokio::test]
async fn a_deadline_ends_a_run_before_its_wall_clock_and_counts_the_wait_for_a_slot() {
    let sandbox = sandbox(62120, 1, 2);
    let sleeper = |wall: u64| Program {
        limits: Limits {
            wall: Duration::from_secs(wall),
            ..Limits::default()
        },
        ..python("import time\ntime.sleep(30)")
    };
    let started = std::time::Instant::now();
    let first = sleeper(2);
    let second = Program {
        deadline: Some(started + Duration::from_secs(3)),
        ..sleeper(30)
    };
    // The second waits about 2 s for the slot, then has about 1 s left of its deadline.
    let (first, second) = tokio::join!(sandbox.run(&first), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        sandbox.run(&second).await
    });
    assert_eq!(first.expect("first").status, RunStatus::TimedOut);
    let second = second.expect("second");
    assert_eq!(second.status, RunStatus::TimedOut);
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
}
