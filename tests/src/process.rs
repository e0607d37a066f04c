//! The real `backforge` binary as child processes: start a subcommand on a free port, wait for
//! `/health`, talk to it over HTTP, SIGKILL or SIGTERM it, and read its log for assertion messages.
//!
//! The binary is the one next to the test executable (`target/<profile>/backforge`). It is built
//! once per test run with `cargo build -p backforge` (a no-op when fresh, so the suite never drives
//! a stale binary); `BACKFORGE_BIN` names another binary and skips the build.
//!
//! Every process of one test shares the test's database and so its NATS prefix (derived from the
//! database name); the last of them to go deletes that prefix's JetStream streams.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;

use crate::{Answer, TEST_JWT_SECRET, TestUser};

/// How long a process may take from spawn to answering `/health` (cold starts run migrations,
/// and the suite shares two cores with other tests).
const START_DEADLINE: Duration = Duration::from_secs(30);

/// The `backforge` binary to run, built (or refreshed) once per test process.
pub fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os("BACKFORGE_BIN") {
            return PathBuf::from(path);
        }
        let exe = std::env::current_exe().expect("the test executable's path");
        // target/<profile>/deps/e2e-<hash> → target/<profile>/backforge
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test executable lives in target/<profile>/deps")
            .to_path_buf();
        let binary = profile_dir.join(format!("backforge{}", std::env::consts::EXE_SUFFIX));
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the tests crate lives in the workspace");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .current_dir(workspace)
            .args(["build", "--quiet", "-p", "backforge"]);
        match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => {}
            Some("release") => {
                build.arg("--release");
            }
            Some(profile) => {
                build.args(["--profile", profile]);
            }
        }
        if let Some(target_dir) = profile_dir.parent() {
            build.arg("--target-dir").arg(target_dir);
        }
        match build.status() {
            Ok(status) => assert!(
                status.success(),
                "`cargo build -p backforge` failed ({status}); the suite will not run a stale binary"
            ),
            // No cargo here (the suite runs from a copied target directory): use what is there.
            Err(error) => eprintln!("warning: cannot run cargo ({error}); using {binary:?} as it is"),
        }
        assert!(binary.exists(), "no backforge binary at {binary:?}");
        binary
    })
}

/// The NATS prefix of the test that owns `database_url`: every process of one test (they share
/// its database) gets the same one, and no two tests share it. It starts like every test prefix
/// (`bft_`), so `clean-nats` finds what a crashed run leaves.
pub fn nats_prefix(database_url: &str) -> String {
    let name = database_url
        .split('?')
        .next()
        .and_then(|base| base.rsplit('/').next())
        .unwrap_or_default();
    let id = name
        .strip_prefix(event_store::testkit::TEST_DB_PREFIX)
        .and_then(|rest| rest.get(..12))
        .filter(|id| id.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            database_url.hash(&mut hasher);
            format!("{:012x}", hasher.finish() & 0xffff_ffff_ffff)
        });
    format!("{}{id}", crate::nats::TEST_PREFIX)
}

/// Live processes per NATS prefix: the last one to go deletes the prefix's streams.
static PREFIX_USERS: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());

fn retain_prefix(prefix: &str) {
    if let Ok(mut users) = PREFIX_USERS.lock() {
        *users.entry(prefix.to_owned()).or_default() += 1;
    }
}

/// Drops one user of `prefix`; the last one deletes its JetStream streams.
fn release_prefix(prefix: &str) {
    let last = PREFIX_USERS.lock().is_ok_and(|mut users| {
        let count = users.entry(prefix.to_owned()).or_default();
        *count = count.saturating_sub(1);
        let last = *count == 0;
        if last {
            users.remove(prefix);
        }
        last
    });
    if !last {
        return;
    }
    let prefix = prefix.to_owned();
    // Drop runs outside any runtime we could borrow; a short-lived thread does the I/O.
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            let url = crate::nats::shared_url();
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                crate::nats::delete_streams(&url, &prefix),
            )
            .await;
        });
    })
    .join();
}

/// A port nobody listens on right now (bind port 0, read it, let it go).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn log_file(label: &str) -> (PathBuf, File) {
    let dir = std::env::temp_dir().join("backforge-e2e");
    std::fs::create_dir_all(&dir).expect("log directory");
    let label: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let path = dir.join(format!("{label}-{}.log", Uuid::new_v4().simple()));
    let file = File::create(&path).expect("log file");
    (path, file)
}

/// Removes ANSI colour sequences, so logs can be searched for `field=value`.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn read_log(path: &Path) -> String {
    strip_ansi(&String::from_utf8_lossy(
        &std::fs::read(path).unwrap_or_default(),
    ))
}

/// The last `lines` lines of `log`, for assertion messages.
fn tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The environment every spawned process gets; `extra_env` entries replace these.
fn environment(database_url: &str, extra_env: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), database_url.into()),
        ("JWT_SECRET".into(), TEST_JWT_SECRET.into()),
        ("BACKFORGE_NATS_PREFIX".into(), nats_prefix(database_url)),
        ("BACKFORGE_ENV".into(), "development".into()),
        ("BACKFORGE_DB_POOL_SIZE".into(), "4".into()),
        ("BACKFORGE_LOGIN_PER_IP_PER_MINUTE".into(), "10000".into()),
        (
            "BACKFORGE_LOGIN_PER_ACCOUNT_PER_MINUTE".into(),
            "10000".into(),
        ),
        (
            "BACKFORGE_REGISTER_PER_IP_PER_MINUTE".into(),
            "10000".into(),
        ),
        ("BACKFORGE_HASH_OTHER_SLOTS".into(), "2".into()),
        ("RUST_LOG".into(), "info".into()),
        ("NO_COLOR".into(), "1".into()),
        ("RUST_BACKTRACE".into(), "1".into()),
    ];
    for (k, v) in extra_env {
        vars.retain(|(key, _)| key != k);
        vars.push(((*k).into(), (*v).into()));
    }
    vars
}

/// A `backforge` server process (`serve`, `command-api`, `query-api` or `projector`) on its own
/// port. Dropping it SIGKILLs it; its log is deleted then unless the test is failing.
pub struct Backforge {
    pub subcommand: String,
    pub api: Api,
    log: PathBuf,
    child: Child,
    exited: Option<ExitStatus>,
    /// The NATS prefix this process counts as a user of (when the suite chose it).
    nats_prefix: Option<String>,
}

impl std::ops::Deref for Backforge {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Backforge {
    /// Spawns `backforge <subcommand>` on `database_url` and waits until `/health` answers 200.
    /// `subcommand` may carry arguments separated by spaces.
    pub async fn start(subcommand: &str, database_url: &str, extra_env: &[(&str, &str)]) -> Self {
        // A port freed for us may be taken before the child binds it: try again on another.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut process = Self::spawn(subcommand, database_url, extra_env);
            match process.wait_healthy(START_DEADLINE).await {
                Ok(()) => return process,
                Err(log) if attempts < 3 && log.contains("cannot listen") => continue,
                Err(log) => panic!(
                    "`backforge {subcommand}` did not become healthy (log {:?}):\n{}",
                    process.log,
                    tail(&log, 40)
                ),
            }
        }
    }

    fn spawn(subcommand: &str, database_url: &str, extra_env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut vars = environment(database_url, &[("BACKFORGE_ADDR", &addr)]);
        for (k, v) in extra_env {
            vars.retain(|(key, _)| key != k);
            vars.push(((*k).into(), (*v).into()));
        }
        let nats_prefix = (!extra_env.iter().any(|(k, _)| *k == "BACKFORGE_NATS_PREFIX"))
            .then(|| nats_prefix(database_url));
        let (log, file) = log_file(subcommand);
        let stderr = file.try_clone().expect("log handle");
        let child = Command::new(binary())
            .args(subcommand.split_whitespace())
            .envs(vars)
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn `backforge {subcommand}`: {e}"));
        if let Some(prefix) = &nats_prefix {
            retain_prefix(prefix);
        }
        Backforge {
            subcommand: subcommand.to_owned(),
            api: Api::new(format!("http://{addr}")),
            log,
            child,
            exited: None,
            nats_prefix,
        }
    }

    /// Polls `/health` until 200; on failure returns the log.
    async fn wait_healthy(&mut self, deadline: Duration) -> Result<(), String> {
        let until = Instant::now() + deadline;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        loop {
            if let Some(status) = self.try_wait() {
                return Err(format!("exited with {status}\n{}", self.log()));
            }
            let health = client.get(format!("{}/health", self.address)).send().await;
            if health.is_ok_and(|r| r.status() == StatusCode::OK) {
                return Ok(());
            }
            if Instant::now() >= until {
                return Err(format!(
                    "no 200 from /health in {deadline:?}\n{}",
                    self.log()
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything the process wrote to stdout and stderr so far, without colours.
    pub fn log(&self) -> String {
        read_log(&self.log)
    }

    /// The last lines of the log, for assertion messages.
    pub fn log_tail(&self) -> String {
        format!(
            "--- {} log {:?} ---\n{}",
            self.subcommand,
            self.log,
            tail(&self.log(), 30)
        )
    }

    /// Waits until the log contains `needle`.
    pub async fn wait_for_log(&self, needle: &str, deadline: Duration) {
        let until = Instant::now() + deadline;
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < until,
                "`{needle}` never appeared in the log of `backforge {}`\n{}",
                self.subcommand,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// SIGKILL: no shutdown code runs. Returns once the process is gone.
    pub fn kill(&mut self) {
        if self.try_wait().is_none() {
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
    }

    /// SIGTERM: asks for a graceful shutdown; see [`Backforge::wait_exit`].
    pub fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("the `kill` command");
        assert!(status.success(), "kill -TERM {} failed", self.pid());
    }

    /// The exit status once the process exits within `deadline`, `None` if it is still running.
    pub async fn wait_exit(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + deadline;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= until {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Backforge {
    fn drop(&mut self) {
        self.kill();
        if let Some(prefix) = self.nats_prefix.take() {
            release_prefix(&prefix);
        }
        if std::thread::panicking() {
            eprintln!(
                "log of `backforge {}` kept at {:?}",
                self.subcommand, self.log
            );
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// What a one-shot subcommand (`migrate`, `replay`, `admin grant`) did.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    /// stdout and stderr interleaved, without colours.
    pub output: String,
}

impl Finished {
    /// Fails the test with the output unless the command exited 0.
    #[track_caller]
    pub fn expect_success(self) -> Self {
        assert!(
            self.status.success(),
            "backforge exited with {}:\n{}",
            self.status,
            self.output
        );
        self
    }
}

/// Runs `backforge <args>` on `database_url` to completion (at most `deadline`).
pub async fn run(
    args: &[&str],
    database_url: &str,
    extra_env: &[(&str, &str)],
    deadline: Duration,
) -> Finished {
    let (log, file) = log_file(&args.join("-"));
    let stderr = file.try_clone().expect("log handle");
    let mut child = tokio::process::Command::new(binary())
        .args(args)
        .envs(environment(database_url, extra_env))
        .stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn `backforge {}`: {e}", args.join(" ")));
    let status = match tokio::time::timeout(deadline, child.wait()).await {
        Ok(status) => status.expect("wait for backforge"),
        Err(_) => {
            let _ = child.kill().await;
            panic!(
                "`backforge {}` did not finish in {deadline:?}:\n{}",
                args.join(" "),
                read_log(&log)
            );
        }
    };
    let output = read_log(&log);
    let _ = std::fs::remove_file(&log);
    Finished { status, output }
}

/// An HTTP client for one process, with the suite's checks on every answer: never a 5xx (unless
/// asked for with [`Api::send_unchecked`]), and every 4xx a problem document.
#[derive(Clone)]
pub struct Api {
    /// `http://127.0.0.1:<port>`
    pub address: String,
    pub client: reqwest::Client,
}

impl Api {
    pub fn new(address: String) -> Self {
        Self {
            address,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
        }
    }

    /// `path` under `/api/v1`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.address)
    }

    /// Sends `body` (JSON when `Some`) with an optional bearer `token` and extra headers; `path` is
    /// under `/api/v1` unless it starts with `//` (then it is taken from the root: `//health`).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let answer = self
            .send_unchecked(method.clone(), path, token, body, headers)
            .await;
        check(&answer, &method, path);
        answer
    }

    /// Like [`Api::send`], but a 5xx is returned instead of failing the test.
    pub async fn send_unchecked(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let url = match path.strip_prefix("//") {
            Some(root) => format!("{}/{root}", self.address),
            None => self.url(path),
        };
        let mut request = self.client.request(method.clone(), &url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        self.send(Method::GET, path, token, None, &[]).await
    }

    /// A read that waits for the read models to reach `position` (`Backforge-Min-Position`).
    pub async fn get_at(&self, path: &str, token: Option<&str>, position: &str) -> Answer {
        self.send(
            Method::GET,
            path,
            token,
            None,
            &[("Backforge-Min-Position", position)],
        )
        .await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        self.send(Method::POST, path, token, Some(body), &[]).await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> Answer {
        self.send(Method::PUT, path, token, Some(body), &[]).await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Answer {
        self.send(Method::DELETE, path, token, None, &[]).await
    }

    /// Registers a fresh user named `name`; returns them with the write's position.
    pub async fn register(&self, name: &str) -> (TestUser, String) {
        let email = format!(
            "{}-{}@example.com",
            name.to_lowercase(),
            Uuid::new_v4().simple()
        );
        let password = "correct horse battery".to_owned();
        let answer = self
            .post(
                "/auth/register",
                None,
                json!({"email": email, "password": password, "name": name}),
            )
            .await
            .expect(201);
        let user = TestUser {
            id: answer.body["user"]["id"].as_str().expect("id").to_owned(),
            email,
            password,
            access_token: answer.body["access_token"]
                .as_str()
                .expect("access")
                .to_owned(),
            refresh_token: answer.body["refresh_token"]
                .as_str()
                .expect("refresh")
                .to_owned(),
        };
        (user, position_of(&answer))
    }
}

/// The consistency token of a write: the body's `position`, or the `Backforge-Position` header
/// of a 204 (they must agree when both are present).
#[track_caller]
pub fn position_of(answer: &Answer) -> String {
    let header = answer.header("Backforge-Position");
    match answer.body["position"].as_str() {
        Some(body) => {
            assert_eq!(
                header.as_deref(),
                Some(body),
                "the Backforge-Position header and the body's position differ"
            );
            body.to_owned()
        }
        None => header.unwrap_or_else(|| panic!("a write answered without a position: {answer:?}")),
    }
}

/// The suite's checks on every answer.
#[track_caller]
fn check(answer: &Answer, method: &Method, path: &str) {
    let status = answer.status;
    let body = &answer.body;
    assert!(
        status.as_u16() < 500,
        "{method} {path} got a {status}: {body}"
    );
    if status.is_client_error() {
        let ct = answer.header("content-type").unwrap_or_default();
        assert_eq!(
            ct, "application/problem+json",
            "{method} {path}: errors are problem documents: {body}"
        );
        assert_eq!(
            body["status"],
            json!(status.as_u16()),
            "{method} {path}: problem status matches: {body}"
        );
        assert!(
            body["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("https://backforge.dev/problems/")),
            "{method} {path}: problem type: {body}"
        );
    }
}

/// Polls `probe` until it returns `Some`, failing with `what` after `deadline`.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = Instant::now() + deadline;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < until,
            "timed out after {deadline:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Requests a verified generation of `project` through `writes` (202) and returns its id.
pub async fn request_verified_generation(writes: &Api, project: &str, token: &str) -> String {
    writes
        .post(
            &format!("/projects/{project}/generations"),
            Some(token),
            json!({"verify": true}),
        )
        .await
        .expect(202)
        .body["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// Generation `id` as `reads` answers it once it has succeeded or failed, failing the test
/// after `deadline`.
pub async fn finished_generation(reads: &Api, id: &str, token: &str, deadline: Duration) -> Value {
    eventually("the generation finishes", deadline, || async {
        let answer = reads.get(&format!("/generations/{id}"), Some(token)).await;
        matches!(
            answer.body["status"].as_str(),
            Some("succeeded") | Some("failed")
        )
        .then_some(answer.body)
    })
    .await
}

/// The verification directory (virtualenvs, per-run directories) that the suite's verifying
/// workers share (`target/tmp/worker-venvs`), for `BACKFORGE_VENV_DIR`.
pub fn worker_venvs() -> String {
    std::env::current_dir()
        .expect("cwd")
        .join("../target/tmp/worker-venvs")
        .display()
        .to_string()
}

/// The sandbox's verify pool for a test that verifies in its own process, on uids of its own
/// (`uid_base` on: tests running at once must not share them), in [`worker_venvs`].
pub fn verifier(uid_base: u32) -> std::sync::Arc<worker::verify::Verifier> {
    let settings = runtime::settings::Settings::from_lookup(|key| match key {
        "DATABASE_URL" => Some("postgres://postgres@127.0.0.1:5432/unused".into()),
        "BACKFORGE_SANDBOX_VERIFY_UID_BASE" => Some(uid_base.to_string()),
        _ => None,
    })
    .expect("the default settings");
    worker::verify::Verifier::new(
        &settings.sandbox,
        worker_venvs().into(),
        Duration::from_secs(600),
    )
}
