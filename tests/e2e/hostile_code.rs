//! The hostile programs and what containing them means, shared by every route that runs a
//! caller's code (`POST /ai/sandbox-execute`, `POST /functions/{id}/test`): each program gets its
//! status, no result holds a secret of the server or a host file's content, `GET /health` answers
//! within 1 s throughout, and afterwards no process of the sandbox's uids remains.

use std::future::Future;
use std::net::TcpListener;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::process::eventually;
use tests::{TestApp, TestUser};

/// Slots each attacked server gets (`BACKFORGE_SANDBOX_SLOTS`).
const SLOTS: u32 = 4;

/// The sandbox settings of a server under attack: uids of its own (`RLIMIT_NPROC` counts a uid's
/// processes machine-wide, and the check for leftovers must not see another server's runs), in a
/// range no other suite draws from.
pub struct Uids {
    pub range: Range<u32>,
    base: String,
    slots: String,
}

impl Uids {
    pub fn fresh() -> Self {
        let base = 66_000 + (uuid::Uuid::new_v4().as_u128() % 500) as u32 * 8;
        Self {
            range: base..base + SLOTS,
            base: base.to_string(),
            slots: SLOTS.to_string(),
        }
    }

    /// The environment overrides that give a server these uids.
    pub fn settings(&self) -> [(&'static str, &str); 2] {
        [
            ("BACKFORGE_SANDBOX_UID_BASE", self.base.as_str()),
            ("BACKFORGE_SANDBOX_SLOTS", self.slots.as_str()),
        ]
    }
}

/// A server under attack.
pub struct Target<'a> {
    /// `http://127.0.0.1:<port>`, where `GET /health` is.
    pub address: &'a str,
    /// The server's `DATABASE_URL`, which no run may see.
    pub database_url: &'a str,
    pub uids: &'a Uids,
}

/// One hostile program: a top-level `handler(input)`, so both routes run it the same way.
struct Program {
    name: &'static str,
    code: String,
    /// The statuses it may end with; empty: any (its check is what remains afterwards).
    statuses: &'static [&'static str],
    /// The output it must return, when that is the check.
    output: Option<Value>,
}

impl Program {
    fn new(name: &'static str, code: impl Into<String>, statuses: &'static [&'static str]) -> Self {
        Self {
            name,
            code: code.into(),
            statuses,
            output: None,
        }
    }
}

/// The hostile programs, as far as it runs in a few seconds; `port` is a listener no run may reach and
/// `marker` a host file no run may read.
fn programs(port: u16, marker: &str) -> Vec<Program> {
    let mut fds = Program::new(
        "/proc/self/fd",
        "import os\ndef handler(input):\n    open_fds = []\n    for fd in range(3, 1024):\n        try:\n            os.fstat(fd)\n            open_fds.append(fd)\n        except OSError:\n            pass\n    return {'listed': sorted(int(f) for f in os.listdir('/proc/self/fd'))[:3], 'beyond_stdio': open_fds}\n",
        &["ok"],
    );
    fds.output = Some(serde_json::json!({"listed": [0, 1, 2], "beyond_stdio": []}));
    vec![
        Program::new(
            "endless loop",
            "def handler(input):\n    while True:\n        pass\n",
            &["timeout"],
        ),
        Program::new(
            "time.sleep(60)",
            "import time\ndef handler(input):\n    time.sleep(60)\n",
            &["timeout"],
        ),
        Program::new(
            "memory bomb",
            "def handler(input):\n    x = bytearray(1 << 31)\n",
            &["memory_limit"],
        ),
        Program::new(
            "fork bomb",
            "import os\ndef handler(input):\n    while True:\n        os.fork()\n",
            &["error", "timeout"],
        ),
        Program::new(
            "100 MB of output",
            "import sys\ndef handler(input):\n    for _ in range(100):\n        sys.stdout.write('x' * (1 << 20))\n",
            &["output_limit"],
        ),
        Program::new(
            "1 GB to /tmp, /dev/shm and /dev in 1 MiB files",
            "def handler(input):\n    refused = []\n    for d in ['/tmp', '/dev/shm', '/dev']:\n        try:\n            for i in range(1024):\n                with open(f'{d}/fill{i}', 'wb') as f:\n                    f.write(b'x' * (1 << 20))\n        except OSError:\n            refused.append(d)\n    if len(refused) == 3:\n        raise OSError('every directory refused the gigabyte')\n    return refused\n",
            &["error"],
        ),
        Program::new(
            "the server's environment",
            "import os\ndef handler(input):\n    print(dict(os.environ))\n    print(open('/proc/1/environ').read())\n",
            &["ok"],
        ),
        Program::new(
            "host files: /etc/shadow, a root-owned 0600 file in a mounted tree",
            format!(
                "def handler(input):\n    found = []\n    for path in ['{marker}', '/etc/shadow', '/etc/hostname']:\n        try:\n            found.append(open(path).read())\n        except OSError:\n            pass\n    if not found:\n        raise PermissionError('no host file is readable')\n    return found\n"
            ),
            &["error"],
        ),
        Program::new(
            "the network",
            format!(
                "import socket\ndef handler(input):\n    socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
            ),
            &["error"],
        ),
        Program::new(
            "PostgreSQL on 127.0.0.1:5432",
            "import socket\ndef handler(input):\n    socket.create_connection(('127.0.0.1', 5432), timeout=1)\n",
            &["error"],
        ),
        Program::new(
            "mount(2) remount read-write, a user namespace, ptrace of a sibling",
            "import ctypes, os, time\ndef handler(input):\n    libc = ctypes.CDLL(None, use_errno=True)\n    escaped = []\n    if libc.mount(b'none', b'/usr', None, 32 | 4096, None) == 0:\n        escaped.append('mount')\n    if libc.unshare(0x10000000) == 0:\n        escaped.append('unshare')\n    child = os.fork()\n    if child == 0:\n        time.sleep(5)\n        os._exit(0)\n    if libc.ptrace(16, child, None, None) == 0:\n        escaped.append('ptrace')\n    os.kill(child, 9)\n    os.waitpid(child, 0)\n    if not escaped:\n        raise PermissionError('mount, unshare and ptrace refused')\n    return escaped\n",
            &["error"],
        ),
        Program::new(
            "a double-forked setsid process",
            "import os, time\ndef handler(input):\n    if os.fork() == 0:\n        os.setsid()\n        if os.fork() == 0:\n            while True:\n                time.sleep(1)\n        os._exit(0)\n    os.wait()\n    return 'detached'\n",
            &[],
        ),
        Program::new(
            "a signal to the parent",
            "import os, signal\ndef handler(input):\n    os.kill(os.getppid(), signal.SIGKILL)\n    os.kill(1, signal.SIGKILL)\n    return 'sent'\n",
            &["ok", "error"],
        ),
        fds,
    ]
}

/// Runs every program through `run` (code in, run result out), one after another, while `GET
/// /health` is polled; asserts each status, that nothing secret or of the host leaks, that health
/// answered within 1 s throughout, and that no process of the sandbox's uids remains.
pub async fn contain<F, Fut>(target: Target<'_>, run: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Value>,
{
    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    // A root-owned 0600 file in a tree the sandbox mounts (/usr, the interpreter's prefix, bound
    // read-only): visible to a run, never readable by it.
    let marker = Marker(
        std::path::Path::new("/usr/share")
            .join(format!("backforge-hostile-{}", uuid::Uuid::new_v4())),
    );
    let secret = format!("host-file-{}", uuid::Uuid::new_v4());
    std::fs::write(&marker.0, &secret).expect("marker");
    std::fs::set_permissions(
        &marker.0,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("marker mode");
    let forbidden = [
        tests::TEST_JWT_SECRET.to_owned(),
        target.database_url.to_owned(),
        "JWT_SECRET".to_owned(),
        "DATABASE_URL".to_owned(),
        secret,
        host_line("/etc/shadow"),
    ];

    let stop = Arc::new(AtomicBool::new(false));
    let health = tokio::spawn(poll_health(
        format!("{}/health", target.address),
        stop.clone(),
    ));
    for program in programs(port, &marker.0.display().to_string()) {
        let result = run(program.code).await;
        let status = result["status"].as_str().unwrap_or_default();
        assert!(
            program.statuses.is_empty() || program.statuses.contains(&status),
            "{}: {status}, expected one of {:?}: {result}",
            program.name,
            program.statuses
        );
        if let Some(output) = &program.output {
            assert_eq!(&result["output"], output, "{}: {result}", program.name);
        }
        let text = result.to_string();
        for leak in forbidden.iter().filter(|f| !f.is_empty()) {
            assert!(
                !text.contains(leak.as_str()),
                "{} leaked {leak}: {text}",
                program.name
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    let slowest = health.await.expect("health poller");
    assert!(
        slowest < Duration::from_secs(1),
        "GET /health took {slowest:?}"
    );
    drop(marker);
    assert!(listener.accept().is_err(), "the listener saw a connection");
    eventually(
        "no process of the sandbox's uids remains",
        Duration::from_secs(10),
        || async { leftovers(&target.uids.range).is_empty().then_some(()) },
    )
    .await;
}

/// A host file the test made, removed however the test ends.
struct Marker(std::path::PathBuf);

impl Drop for Marker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Polls `url` until `stop`, every 100 ms; returns the slowest answer. Fails on any non-200.
async fn poll_health(url: String, stop: Arc<AtomicBool>) -> Duration {
    let client = reqwest::Client::new();
    let mut slowest = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let answer = client
            .get(&url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("GET /health answers during the attack");
        assert_eq!(answer.status(), 200, "GET /health during the attack");
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    slowest
}

/// The first line of a host file (empty when unreadable or too short to tell).
fn host_line(path: &str) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let line = text.lines().next().unwrap_or_default();
    if line.len() < 8 {
        String::new()
    } else {
        line.to_owned()
    }
}

/// The processes whose real or effective uid is in `uids`, with their command lines.
fn leftovers(uids: &Range<u32>) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| {
            let status = std::fs::read_to_string(e.path().join("status")).ok()?;
            let ids = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
            ids.split_whitespace()
                .take(2)
                .filter_map(|id| id.parse::<u32>().ok())
                .any(|id| uids.contains(&id))
                .then(|| {
                    let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
                    format!(
                        "{}: {}",
                        e.file_name().to_string_lossy(),
                        String::from_utf8_lossy(&cmd)
                    )
                })
        })
        .collect()
}

/// A fork bomb that keeps its uid at its process limit: a child whose fork is refused tries again,
/// so every process spins until the wall clock kills the namespace.
const FORK_BOMB: &str = "import os\ndef handler(input):\n    while True:\n        try:\n            os.fork()\n        except OSError:\n            pass\n";

/// The sandbox answers 503 until its start-up self-test passed (with `Retry-After`); the suite's
/// helpers refuse any 5xx, so readiness is polled with the bare client.
pub(crate) async fn ready(app: &TestApp, user: &TestUser) {
    eventually(
        "the sandbox passes its self-test",
        Duration::from_secs(30),
        || async {
            let answer = app
                .client
                .post(app.url("/ai/sandbox-execute"))
                .bearer_auth(&user.access_token)
                .json(&json!({"language": "python", "code": "pass"}))
                .send()
                .await
                .ok()?;
            (answer.status() == 200).then_some(())
        },
    )
    .await;
}

/// The "fork bomb (while another user's normal run succeeds)": while one user's fork bomb
/// holds its slot's uid at its process limit through `POST /ai/sandbox-execute`, another user's
/// trivial function test runs in another slot and answers 200 `ok` with its output; the bomb ends
/// with its status, and nothing of either run remains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_bomb_does_not_stop_another_users_function_test() {
    let uids = Uids::fresh();
    let app = TestApp::spawn_with(&uids.settings()).await;
    let mallory = app.register("Mallory").await;
    let ada = app.register("Ada").await;
    ready(&app, &ada).await;
    let token = Some(ada.access_token.as_str());
    let project = app
        .post("/projects", token, json!({"name": "Shop"}))
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .expect("project id")
        .to_owned();
    let function = app
        .post(
            &format!("/projects/{project}/functions"),
            token,
            json!({"name": "echo", "language": "python",
                   "function_code": "def handler(input):\n    return input\n"}),
        )
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .expect("function id")
        .to_owned();
    let test = format!("/functions/{function}/test");

    let bomb_over = AtomicBool::new(false);
    let bomb = async {
        let answer = app
            .post(
                "/ai/sandbox-execute",
                Some(&mallory.access_token),
                json!({"language": "python", "code": FORK_BOMB, "input": null}),
            )
            .await;
        bomb_over.store(true, Ordering::SeqCst);
        answer
    };
    let normal = async {
        eventually(
            "the fork bomb holds its uid's processes",
            Duration::from_secs(4),
            || async { (leftovers(&uids.range).len() >= 8).then_some(()) },
        )
        .await;
        // Runs one after another until the bomb has its answer (at most 20: the allowance of
        // sandbox runs is 60 a minute), counting those that ended while it was still running.
        let mut during = 0;
        for _ in 0..20 {
            if bomb_over.load(Ordering::SeqCst) {
                break;
            }
            let answer = app.post(&test, token, json!({"input": {"n": 1}})).await;
            let body = answer.expect(200).body;
            assert_eq!(
                body["status"], "ok",
                "the normal run during the bomb: {body}"
            );
            assert_eq!(body["output"], json!({"n": 1}), "{body}");
            if !bomb_over.load(Ordering::SeqCst) {
                during += 1;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        during
    };
    let (bomb, during) = tokio::join!(bomb, normal);
    let bomb = bomb.expect(200).body;
    let status = bomb["status"].as_str().unwrap_or_default();
    assert!(
        ["error", "timeout"].contains(&status),
        "the fork bomb: {bomb}"
    );
    assert!(during >= 1, "no normal run ended while the fork bomb ran");
    let health = Instant::now();
    let answer = app
        .client
        .get(format!("{}/health", app.address))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("GET /health");
    assert_eq!(answer.status(), 200);
    assert!(health.elapsed() < Duration::from_secs(1));
    eventually(
        "no process of the sandbox's uids remains",
        Duration::from_secs(10),
        || async { leftovers(&uids.range).is_empty().then_some(()) },
    )
    .await;
}
