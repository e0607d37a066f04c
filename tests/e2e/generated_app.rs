//! The generated python-fastapi backend, end to end: a project built through the domain is
//! generated, unzipped and run for real. Its own pytest suite must pass on SQLite and on a scratch
//! PostgreSQL database, must fail once a constraint is broken in the generated code, and the app,
//! served by uvicorn, must answer a hand-written table of requests with exactly the statuses of
//! the generated app's contract (the README it ships with).
//!
//! Python runs from one virtualenv per pinned `requirements.txt`, built once (about a minute) under
//! `target/tmp/py-venv-<hash>` and reused by later runs (`PYTHON` names another interpreter than
//! `python3`; the pins are for Python 3.11). Every Python step has a timeout and its output is
//! printed when it fails.

mod checks;
mod contract;
pub(crate) mod record_cases;
mod upgrade;
mod verify_sandbox;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use domain::Limits;
use domain::generation::Target;
use domain::project::{CreateProject, FeatureType, NewFeature, Project, ProjectCommand};
use domain::testing::{feature_id, project_id, t0, user_id};
use generator::Artifact;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

const PIP_TIMEOUT: Duration = Duration::from_secs(900);
const PYTEST_TIMEOUT: Duration = Duration::from_secs(600);
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The customer name's max_length: a value found nowhere else in the schema, so the broken
/// copy can drop exactly this check.
const NAME_MAX: u32 = 77;

// ---------------------------------------------------------------------------------------------
// The project and its artifact
// ---------------------------------------------------------------------------------------------

fn crud(n: u128, name: &str, schema: Value) -> NewFeature {
    NewFeature::new(feature_id(n), name, FeatureType::Crud).with_schema(schema)
}

/// A shop: customers, products and orders referencing both (a composite unique, enums, patterns,
/// decimals), plus auth (products `shared_read`, the rest `owner_scoped`), file storage and a
/// disabled analytics feature the generator must skip.
fn shop() -> Project {
    let mut dashboards = NewFeature::new(feature_id(6), "Dashboards", FeatureType::Analytics);
    dashboards.is_enabled = false;
    let features = vec![
        crud(
            1,
            "Customers",
            json!({"entity": "customer", "fields": [
                {"name": "name", "type": "string", "required": true, "max_length": NAME_MAX},
                {"name": "email", "type": "string", "required": true, "unique": true,
                 "pattern": "^[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}$"},
                {"name": "tier", "type": "enum", "values": ["bronze", "silver", "gold"], "default": "bronze"},
                {"name": "credit", "type": "decimal", "precision": 10, "scale": 2, "min": 0, "max": 10000},
                {"name": "birthday", "type": "date"},
                {"name": "vip", "type": "boolean", "default": false},
                {"name": "notes", "type": "text", "max_length": 500}
            ]}),
        ),
        crud(
            2,
            "Products",
            json!({"entity": "product", "fields": [
                {"name": "sku", "type": "string", "required": true, "unique": true,
                 "pattern": "^[A-Z]{3}-[0-9]{4}$"},
                {"name": "title", "type": "string", "required": true, "min_length": 2, "max_length": 120},
                {"name": "price", "type": "decimal", "precision": 12, "scale": 2, "min": 0, "required": true},
                {"name": "weight", "type": "float", "min": 0},
                {"name": "stock", "type": "integer", "min": 0, "max": 100000, "default": 0},
                {"name": "tags", "type": "json"},
                {"name": "released_at", "type": "datetime"}
            ]}),
        ),
        crud(
            3,
            "Orders",
            json!({"entity": "order", "plural": "orders", "fields": [
                {"name": "customer_id", "type": "reference", "references": "customer", "required": true},
                {"name": "product_id", "type": "reference", "references": "product", "required": true},
                {"name": "quantity", "type": "integer", "min": 1, "max": 1000, "required": true},
                {"name": "status", "type": "enum", "values": ["new", "paid", "shipped"], "default": "new"},
                {"name": "number", "type": "string", "required": true, "pattern": "^ORD-[0-9]{6}$"},
                {"name": "placed_on", "type": "date"},
                {"name": "replaces_id", "type": "reference", "references": "order"}
            ], "unique": [["customer_id", "number"]]}),
        ),
        NewFeature {
            configuration: Some(json!({"entities": {"product": "shared_read"}})),
            ..NewFeature::new(feature_id(4), "Accounts", FeatureType::Auth)
        },
        NewFeature::new(feature_id(5), "Attachments", FeatureType::FileStorage),
        dashboards,
    ];
    project_of(features)
}

/// Names that shadow Python, Pydantic and SQLAlchemy helpers, every field kind, a cycle through
/// an optional reference, a self-reference, a composite unique of optional references, a unique
/// boolean (two rows at most), and neither auth nor file storage.
fn awkward() -> Project {
    let features = vec![
        crud(
            1,
            "Base \"things\"",
            json!({"entity": "base", "fields": [
                {"name": "date", "type": "date", "required": true},
                {"name": "type", "type": "string", "max_length": 1},
                {"name": "match", "type": "enum", "values": ["self", "TRUE", "x"]},
                {"name": "decimal", "type": "decimal", "precision": 38, "scale": 10},
                {"name": "uuid", "type": "uuid", "default": "123e4567-e89b-12d3-a456-426614174000"},
                {"name": "ratio", "type": "float", "min": -1e300, "max": 1e300, "default": 0.5},
                {"name": "count", "type": "integer"},
                {"name": "flag", "type": "boolean", "unique": true, "required": true},
                {"name": "blob", "type": "json", "required": true},
                {"name": "note", "type": "text"},
                {"name": "re", "type": "string", "pattern": "(?i)^x+$", "min_length": 2, "max_length": 4},
                {"name": "sa", "type": "string", "min_length": 3, "max_length": 3},
                {"name": "at", "type": "datetime", "unique": true, "default": "2025-01-31T23:30:00-05:00"},
                {"name": "mapped_column", "type": "integer", "min": -5, "max": 5, "default": -5},
                {"name": "selected", "type": "string", "pattern": "\\p{Greek}{2}"},
                {"name": "favourite_id", "type": "reference", "references": "app"}
            ]}),
        ),
        crud(
            2,
            "Apps",
            json!({"entity": "app", "fields": [
                {"name": "base_id", "type": "reference", "references": "base", "required": true, "unique": true},
                {"name": "session", "type": "string", "required": true, "default": "s"},
                {"name": "response", "type": "date", "default": "2024-02-29"}
            ]}),
        ),
        crud(
            3,
            "Nones",
            json!({"entity": "none", "fields": [
                {"name": "parent_id", "type": "reference", "references": "none"},
                {"name": "app_id", "type": "reference", "references": "app"}
            ], "unique": [["parent_id", "app_id"]]}),
        ),
    ];
    project_of(features)
}

fn project_of(features: Vec<NewFeature>) -> Project {
    let command = ProjectCommand::CreateProject(CreateProject {
        project_id: project_id(1),
        owner_id: user_id(1),
        name: "Corner \"shop\"".into(),
        description: Some("A shop generated end to end.\nSecond line.".into()),
        generation_mode: None,
        features,
        at: t0(),
    });
    let events = Project::default()
        .decide(&command, &Limits::default())
        .expect("the project is valid");
    let mut project = Project::default();
    for event in &events {
        project.evolve(event);
    }
    project
}

fn artifact() -> &'static Artifact {
    static ARTIFACT: OnceLock<Artifact> = OnceLock::new();
    ARTIFACT.get_or_init(|| {
        generator::generate(&shop(), 3, Target::PythonFastapi).expect("the shop generates")
    })
}

/// A fresh directory holding the unzipped shop.
fn unpack(label: &str) -> PathBuf {
    unpack_artifact(artifact(), label)
}

fn unpack_artifact(artifact: &Artifact, label: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("bf-generated-{label}-{}", Uuid::new_v4().simple()));
    let files = generator::read_zip(&artifact.zip).expect("the artifact unzips");
    assert_eq!(files.len(), artifact.file_count);
    for (name, content) in files {
        let path = dir.join(&name);
        fs::create_dir_all(path.parent().expect("a file has a parent")).expect("mkdir");
        fs::write(&path, content).expect("write a generated file");
    }
    dir
}

// ---------------------------------------------------------------------------------------------
// Python: one cached virtualenv, commands with timeouts
// ---------------------------------------------------------------------------------------------

/// FNV-1a: a stable name for the virtualenv of one requirements file.
fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

struct Output {
    success: bool,
    timed_out: bool,
    text: String,
}

/// Runs `command` with stdout and stderr captured into one log, killing it after `timeout`.
fn run(command: &mut Command, timeout: Duration) -> Output {
    let log = std::env::temp_dir().join(format!("bf-generated-{}.log", Uuid::new_v4().simple()));
    let file = fs::File::create(&log).expect("a log file");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log handle"))
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let deadline = Instant::now() + timeout;
    let (success, timed_out) = loop {
        match child.try_wait().expect("wait for a child") {
            Some(status) => break (status.success(), false),
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break (false, true);
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let text = String::from_utf8_lossy(&fs::read(&log).unwrap_or_default()).into_owned();
    let _ = fs::remove_file(&log);
    Output {
        success,
        timed_out,
        text,
    }
}

/// The virtualenv with the artifact's pinned requirements, built once per requirements file.
/// Built in a scratch directory and renamed into place, so concurrent test processes never see a
/// half-built one (`python -m` keeps working after the rename).
fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let files = &artifact().files;
        let locks: Vec<(&str, &[u8])> = worker::verify::REQUIREMENTS_FILES
            .iter()
            .map(|name| (*name, files[*name].as_slice()))
            .collect();
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let key = locks
            .iter()
            .fold(0u64, |hash, (_, lock)| hash.rotate_left(1) ^ fnv64(lock));
        let dir = root.join(format!("py-venv-{key:016x}"));
        let marker = dir.join("backforge-ready");
        if marker.exists() {
            return dir;
        }
        let started = Instant::now();
        let scratch = root.join(format!("py-venv-building-{}", Uuid::new_v4().simple()));
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let made = run(
            Command::new(&python).arg("-m").arg("venv").arg(&scratch),
            Duration::from_secs(120),
        );
        assert!(made.success, "`{python} -m venv` failed:\n{}", made.text);
        // As the generated README and CI install them: hash-checked, the locks complete.
        let mut install = Command::new(scratch.join("bin").join("python"));
        install
            .args(["-m", "pip", "install", "--disable-pip-version-check", "-q"])
            .args(["--require-hashes", "--no-deps"])
            .env("PIP_NO_INPUT", "1");
        for (name, lock) in &locks {
            let path = scratch.join(name);
            fs::write(&path, lock).expect("write a requirements file");
            install.arg("-r").arg(&path);
        }
        let installed = run(&mut install, PIP_TIMEOUT);
        if !installed.success {
            let _ = fs::remove_dir_all(&scratch);
            panic!(
                "pip install failed{}:\n{}",
                if installed.timed_out {
                    " (timed out)"
                } else {
                    ""
                },
                installed.text
            );
        }
        fs::write(scratch.join("backforge-ready"), b"ok").expect("write the marker");
        if fs::rename(&scratch, &dir).is_err() {
            // Another process finished first; its virtualenv is as good as ours.
            let _ = fs::remove_dir_all(&scratch);
            assert!(marker.exists(), "no usable virtualenv at {dir:?}");
        }
        eprintln!(
            "built the generated app's virtualenv in {:.1?} at {dir:?}",
            started.elapsed()
        );
        dir
    })
}

fn python(app_dir: &Path) -> Command {
    let mut command = Command::new(venv().join("bin").join("python"));
    command
        .current_dir(app_dir)
        .env_remove("DATABASE_URL")
        .env_remove("APP_ENV")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("JWT_SECRET", "e2e-secret-that-is-long-enough-for-hs256");
    command
}

/// Counts of a pytest run, from its JUnit XML report.
#[derive(Debug)]
struct Report {
    tests: u64,
    failures: u64,
    errors: u64,
    skipped: u64,
    failed: Vec<String>,
    output: String,
}

/// The value of `name="…"` in the first `<tag …>` of `xml`.
fn attribute(xml: &str, tag: &str, name: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag} "))?;
    let element = &xml[start..start + xml[start..].find('>')?];
    let key = format!(" {name}=\"");
    let value_start = element.find(&key)? + key.len();
    let value_end = value_start + element[value_start..].find('"')?;
    Some(element[value_start..value_end].to_owned())
}

fn pytest(app_dir: &Path, database_url: Option<&str>) -> Report {
    pytest_with(app_dir, database_url, &[])
}

/// [`pytest`] with more arguments (`-x`, a selection).
fn pytest_with(app_dir: &Path, database_url: Option<&str>, args: &[&str]) -> Report {
    let junit = app_dir.join("junit.xml");
    let mut command = python(app_dir);
    command
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .args(args)
        .arg(format!("--junitxml={}", junit.display()));
    if let Some(url) = database_url {
        command.env("DATABASE_URL", url);
    }
    let started = Instant::now();
    let output = run(&mut command, PYTEST_TIMEOUT);
    assert!(!output.timed_out, "pytest timed out:\n{}", output.text);
    let xml = fs::read_to_string(&junit)
        .unwrap_or_else(|e| panic!("no JUnit report ({e}); pytest said:\n{}", output.text));
    let count = |name: &str| -> u64 {
        attribute(&xml, "testsuite", name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} count in the JUnit report:\n{xml}"))
    };
    let failed = xml
        .split("<testcase ")
        .skip(1)
        .filter(|case| {
            let body = &case[..case.find("</testcase>").unwrap_or(case.len())];
            body.contains("<failure") || body.contains("<error")
        })
        .filter_map(|case| attribute(&format!("<testcase {case}"), "testcase", "name"))
        .collect();
    let report = Report {
        tests: count("tests"),
        failures: count("failures"),
        errors: count("errors"),
        skipped: count("skipped"),
        failed,
        output: output.text,
    };
    eprintln!(
        "pytest ({}): {} tests, {} failures, {} errors, {} skipped in {:.1?}",
        database_url.map_or("sqlite", |_| "postgresql"),
        report.tests,
        report.failures,
        report.errors,
        report.skipped,
        started.elapsed()
    );
    report
}

/// No failure, no error, and at most `max_skipped` tests skipped (the suite skips a test when a
/// schema cannot hold the rows it needs, e.g. two rows of an entity with a unique boolean).
fn assert_passed(report: &Report, max_skipped: u64) {
    assert!(
        report.tests > 100,
        "the suite ran too few tests:\n{}",
        report.output
    );
    assert_eq!(
        (report.failures, report.errors),
        (0, 0),
        "the generated suite failed ({:?}):\n{}",
        report.failed,
        report.output
    );
    assert!(
        report.skipped <= max_skipped,
        "{} tests were skipped:\n{}",
        report.skipped,
        report.output
    );
}

// ---------------------------------------------------------------------------------------------
// The generated suite
// ---------------------------------------------------------------------------------------------

#[test]
fn the_generated_suite_passes_on_sqlite() {
    let dir = unpack("sqlite");
    let report = pytest(&dir, None);
    assert_passed(&report, 0);
    let _ = fs::remove_dir_all(&dir);
}

/// Runs the suite in `dir` against a scratch database `bft_<uuid>` created for it on the local
/// PostgreSQL server and dropped afterwards, whatever happened.
async fn pytest_on_postgresql(dir: &Path) -> Report {
    let server = "postgres://postgres@127.0.0.1:5432";
    let name = format!("bft_{}", Uuid::new_v4().simple());
    let (admin, connection) =
        tokio_postgres::connect(&format!("{server}/postgres"), tokio_postgres::NoTls)
            .await
            .expect("PostgreSQL at 127.0.0.1:5432");
    tokio::spawn(connection);
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create the scratch database");
    let url = format!("{server}/{name}");
    let ran = tokio::task::spawn_blocking({
        let dir = dir.to_owned();
        move || pytest(&dir, Some(&url))
    })
    .await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .expect("drop the scratch database");
    ran.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

#[tokio::test]
async fn the_generated_suite_passes_on_a_scratch_postgresql_database() {
    let dir = unpack("postgresql");
    assert_passed(&pytest_on_postgresql(&dir).await, 0);
    let _ = fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_suite_of_an_awkward_schema_passes_on_sqlite_and_postgresql() {
    let artifact = generator::generate(&awkward(), 1, Target::PythonFastapi)
        .expect("the awkward project generates");
    for lock in worker::verify::REQUIREMENTS_FILES {
        assert_eq!(
            artifact.files[lock],
            self::artifact().files[lock],
            "one virtualenv serves both projects"
        );
    }
    assert!(!artifact.files.contains_key("app/auth.py"));
    let dir = unpack_artifact(&artifact, "awkward");
    let sqlite = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || pytest(&dir, None)
    })
    .await
    .expect("pytest ran");
    // A unique boolean caps `base` at two rows: the two tests that need a third one (directly or
    // through the `base` parents of fresh `app` rows) skip.
    assert_passed(&sqlite, 2);
    assert_passed(&pytest_on_postgresql(&dir).await, 2);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_constraint_broken_in_the_generated_code_makes_the_suite_fail() {
    let dir = unpack("broken");
    let schemas = dir.join("app/schemas.py");
    let source = fs::read_to_string(&schemas).expect("schemas.py");
    let check = format!("max_length={NAME_MAX})");
    assert_eq!(
        source.matches(&check).count(),
        2,
        "customer.name's check, in its Create and Update schemas"
    );
    fs::write(&schemas, source.replace(&check, "max_length=None)")).expect("break schemas.py");

    let report = pytest(&dir, None);
    assert!(report.tests > 100, "{}", report.output);
    assert!(
        report.failures > 0,
        "the suite passed without the max_length check:\n{}",
        report.output
    );
    assert!(
        report
            .failed
            .iter()
            .any(|name| name.contains("name-too-long")),
        "the failures do not include the broken rule: {:?}",
        report.failed
    );
    let _ = fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// The app served by uvicorn, against a hand-written table of requests
// ---------------------------------------------------------------------------------------------

/// uvicorn serving the generated app; killed (by its own pid) when dropped.
struct Server {
    child: Child,
    log: PathBuf,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = fs::File::open(&self.log) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// uvicorn serving the app in `dir` (`app.main:app`) on `port`.
fn uvicorn(dir: &Path, port: u16) -> Command {
    let mut command = python(dir);
    command
        .args([
            "-m",
            "uvicorn",
            "app.main:app",
            "--host",
            "127.0.0.1",
            "--port",
        ])
        .arg(port.to_string());
    command
}

/// Migrates a fresh SQLite database with Alembic and starts uvicorn on a free port.
fn serve(dir: &Path) -> Server {
    let env = [
        (
            "DATABASE_URL",
            format!("sqlite:///{}", dir.join("app.db").display()),
        ),
        (
            "FILE_STORAGE_DIR",
            dir.join("data/files").display().to_string(),
        ),
        ("FILE_MAX_BYTES", "1024".to_owned()),
    ];
    let mut migrate = python(dir);
    migrate.args(["-m", "alembic", "upgrade", "head"]);
    for (k, v) in &env {
        migrate.env(k, v);
    }
    let migrated = run(&mut migrate, Duration::from_secs(120));
    assert!(
        migrated.success,
        "alembic upgrade head failed:\n{}",
        migrated.text
    );

    let port = free_port();
    let log = dir.join("uvicorn.log");
    let file = fs::File::create(&log).expect("uvicorn log");
    let mut command = uvicorn(dir, port);
    command
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log handle"))
        .stderr(file);
    for (k, v) in &env {
        command.env(k, v);
    }
    let child = command.spawn().expect("start uvicorn");
    Server {
        child,
        log,
        base: format!("http://127.0.0.1:{port}"),
    }
}

async fn wait_until_healthy(server: &mut Server, client: &reqwest::Client) {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(response) = client.get(format!("{}/health", server.base)).send().await {
            if response.status() == 200 {
                return;
            }
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("uvicorn exited with {status}:\n{}", server.log());
        }
        assert!(
            Instant::now() < deadline,
            "uvicorn did not answer /health within {START_TIMEOUT:?}:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

enum Auth {
    /// The token saved by the login step.
    Token,
    None,
    Bearer(&'static str),
}

enum Body {
    None,
    Json(Value),
    /// A multipart upload of one file in the field `file`: (name, content type, bytes).
    File(&'static str, &'static str, Vec<u8>),
}

/// One request of the table: `{key}` in the path or JSON body is replaced by a saved id.
struct Step {
    what: &'static str,
    method: Method,
    path: &'static str,
    body: Body,
    auth: Auth,
    status: u16,
    /// Saves the answer's `id` (or `access_token`) under this key.
    save: Option<&'static str>,
    /// For lists: the expected `total`.
    total: Option<u64>,
}

fn step(what: &'static str, method: Method, path: &'static str, status: u16) -> Step {
    Step {
        what,
        method,
        path,
        body: Body::None,
        auth: Auth::Token,
        status,
        save: None,
        total: None,
    }
}

impl Step {
    fn json(mut self, body: Value) -> Self {
        self.body = Body::Json(body);
        self
    }
    fn file(mut self, name: &'static str, content_type: &'static str, bytes: &[u8]) -> Self {
        self.body = Body::File(name, content_type, bytes.to_vec());
        self
    }
    fn anonymous(mut self) -> Self {
        self.auth = Auth::None;
        self
    }
    fn bearer(mut self, token: &'static str) -> Self {
        self.auth = Auth::Bearer(token);
        self
    }
    fn save(mut self, key: &'static str) -> Self {
        self.save = Some(key);
        self
    }
    fn total(mut self, total: u64) -> Self {
        self.total = Some(total);
        self
    }
}

fn substitute(text: &str, saved: &HashMap<&str, String>) -> String {
    saved.iter().fold(text.to_owned(), |text, (key, value)| {
        text.replace(&format!("{{{key}}}"), value)
    })
}

fn table() -> Vec<Step> {
    use Method as M;
    let account = json!({"email": "owner@example.com", "password": "a long enough password"});
    let customer =
        |name: &str, email: &str| json!({"name": name, "email": email, "credit": "12.50"});
    let order = |customer: &str, number: &str| json!({"customer_id": customer, "product_id": "{product}", "quantity": 2, "number": number});
    vec![
        step("health", M::GET, "/health", 200).anonymous(),
        step("OpenAPI", M::GET, "/openapi.json", 200).anonymous(),
        step("a list without a token", M::GET, "/api/customers", 401).anonymous(),
        step("a create without a token", M::POST, "/api/orders", 401)
            .anonymous()
            .json(json!({})),
        step("register", M::POST, "/api/auth/register", 201)
            .anonymous()
            .json(account.clone()),
        step("register again", M::POST, "/api/auth/register", 409)
            .anonymous()
            .json(account.clone()),
        step("login with a wrong password", M::POST, "/api/auth/login", 401)
            .anonymous()
            .json(json!({"email": "owner@example.com", "password": "not the password"})),
        step("login", M::POST, "/api/auth/login", 200)
            .anonymous()
            .json(account)
            .save("token"),
        step("a forged token", M::GET, "/api/customers", 401)
            .bearer("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.forged"),
        step("create a customer", M::POST, "/api/customers", 201)
            .json(customer("Ada", "ada@example.com"))
            .save("customer"),
        step("a duplicate unique e-mail", M::POST, "/api/customers", 409)
            .json(customer("Ada again", "ada@example.com")),
        step("a bad pattern", M::POST, "/api/customers", 422)
            .json(customer("Bob", "not an e-mail")),
        step("a bad enum value", M::POST, "/api/customers", 422)
            .json(json!({"name": "Bob", "email": "bob@example.com", "tier": "platinum"})),
        step("a decimal with too many places", M::POST, "/api/customers", 422)
            .json(json!({"name": "Bob", "email": "bob@example.com", "credit": "1.234"})),
        step("a decimal above max", M::POST, "/api/customers", 422)
            .json(json!({"name": "Bob", "email": "bob@example.com", "credit": "10000.01"})),
        step("a name one character too long", M::POST, "/api/customers", 422).json(
            json!({"name": "x".repeat(NAME_MAX as usize + 1), "email": "bob@example.com"}),
        ),
        step("a missing required field", M::POST, "/api/customers", 422)
            .json(json!({"email": "bob@example.com"})),
        step("an unknown field", M::POST, "/api/customers", 422)
            .json(json!({"name": "Bob", "email": "bob@example.com", "admin": true})),
        step("a second customer", M::POST, "/api/customers", 201)
            .json(json!({"name": "Bob", "email": "bob@example.com", "tier": "gold"}))
            .save("customer2"),
        step("create a product", M::POST, "/api/products", 201)
            .json(json!({"sku": "ABC-1234", "title": "Widget", "price": "9.99", "tags": ["a", {"b": 1}]}))
            .save("product"),
        step("a product with a bad sku", M::POST, "/api/products", 422)
            .json(json!({"sku": "abc-1234", "title": "Widget", "price": "9.99"})),
        step("a product with a too-short title", M::POST, "/api/products", 422)
            .json(json!({"sku": "ABD-1234", "title": "W", "price": "9.99"})),
        step("a negative stock", M::POST, "/api/products", 422)
            .json(json!({"sku": "ABD-1234", "title": "Widget", "price": "9.99", "stock": -1})),
        step("a naive datetime", M::POST, "/api/products", 422).json(
            json!({"sku": "ABD-1234", "title": "Widget", "price": "9.99", "released_at": "2025-01-01T10:00:00"}),
        ),
        step("create an order", M::POST, "/api/orders", 201)
            .json(order("{customer}", "ORD-000001"))
            .save("order"),
        step("a duplicate of the composite unique", M::POST, "/api/orders", 409)
            .json(order("{customer}", "ORD-000001")),
        step("the same number for another customer", M::POST, "/api/orders", 201)
            .json(order("{customer2}", "ORD-000001"))
            .save("order2"),
        step("a dangling reference", M::POST, "/api/orders", 422)
            .json(order("ffffffff-ffff-4fff-bfff-ffffffffffff", "ORD-000002")),
        step("a quantity below min", M::POST, "/api/orders", 422).json(
            json!({"customer_id": "{customer}", "product_id": "{product}", "quantity": 0, "number": "ORD-000003"}),
        ),
        step("a bad order number", M::POST, "/api/orders", 422)
            .json(order("{customer}", "ORD-12")),
        step("deleting a referenced customer", M::DELETE, "/api/customers/{customer}", 409),
        step("deleting a referenced product", M::DELETE, "/api/products/{product}", 409),
        step("an unknown id", M::GET, "/api/orders/00000000-0000-4000-8000-000000000000", 404),
        step("a malformed id", M::GET, "/api/orders/not-an-id", 422),
        step("get an order", M::GET, "/api/orders/{order}", 200),
        step("limit=0", M::GET, "/api/orders?limit=0", 422),
        step("limit=201", M::GET, "/api/orders?limit=201", 422),
        step("all orders", M::GET, "/api/orders?limit=200", 200).total(2),
        step("filter by reference", M::GET, "/api/orders?customer_id={customer}", 200).total(1),
        step("filter by enum", M::GET, "/api/customers?tier=bronze", 200).total(1),
        step("filter by number", M::GET, "/api/orders?number=ORD-000001", 200).total(2),
        step("filter by default value", M::GET, "/api/orders?status=new", 200).total(2),
        step("a filter of the wrong type", M::GET, "/api/orders?quantity=many", 422),
        step("an unknown filter", M::GET, "/api/orders?colour=red", 422),
        step("a range filter", M::GET, "/api/orders?quantity__gte=2&quantity__lt=3", 200).total(2),
        step("update an order", M::PATCH, "/api/orders/{order}", 200)
            .json(json!({"status": "paid", "placed_on": "2025-03-01"})),
        step("filter after the update", M::GET, "/api/orders?status=paid", 200).total(1),
        step("an empty update", M::PATCH, "/api/orders/{order}", 422).json(json!({})),
        step("a replacement without a required field", M::PUT, "/api/orders/{order}", 422)
            .json(json!({"status": "paid"})),
        step("an update above max", M::PATCH, "/api/orders/{order}", 422)
            .json(json!({"quantity": 1001})),
        step("an update to a duplicate", M::PATCH, "/api/orders/{order2}", 409)
            .json(json!({"customer_id": "{customer}"})),
        step("an update of an unknown id", M::PATCH, "/api/orders/00000000-0000-4000-8000-000000000000", 404)
            .json(json!({"quantity": 3})),
        step("upload a file", M::POST, "/api/files", 201)
            .file("notes.txt", "text/plain", b"hello from the e2e test\n")
            .save("file"),
        step("file metadata", M::GET, "/api/files/{file}", 200),
        step("download the file", M::GET, "/api/files/{file}/content", 200),
        step("an upload without a token", M::POST, "/api/files", 401)
            .anonymous()
            .file("notes.txt", "text/plain", b"x"),
        step("a disallowed content type", M::POST, "/api/files", 415)
            .file("page.html", "text/html", b"<script></script>"),
        step("a binary declared as image/png", M::POST, "/api/files", 415).file(
            "cat.png",
            "image/png",
            b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03\x00>\x00",
        ),
        step("a PNG declared as text/plain", M::POST, "/api/files", 415).file(
            "notes.txt",
            "text/plain",
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        ),
        step("a file over FILE_MAX_BYTES", M::POST, "/api/files", 413)
            .file("big.txt", "text/plain", &[b'x'; 2048]),
        step("delete the file", M::DELETE, "/api/files/{file}", 204),
        step("the deleted file's content", M::GET, "/api/files/{file}/content", 404),
        step("delete the orders", M::DELETE, "/api/orders/{order}", 204),
        step("delete the other order", M::DELETE, "/api/orders/{order2}", 204),
        step("delete the customer", M::DELETE, "/api/customers/{customer}", 204),
        step("the deleted customer", M::GET, "/api/customers/{customer}", 404),
        step("delete it again", M::DELETE, "/api/customers/{customer}", 404),
    ]
}

/// The shop unpacked under `label`, migrated and served until healthy, with an HTTP client.
async fn served(label: &str) -> (PathBuf, Server, reqwest::Client) {
    let dir = unpack(label);
    // The virtualenv build and Alembic block; keep them off the async workers.
    let mut server = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || serve(&dir)
    })
    .await
    .expect("uvicorn started");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");
    wait_until_healthy(&mut server, &client).await;
    (dir, server, client)
}

#[tokio::test]
async fn the_served_app_answers_the_contract() {
    let (dir, server, client) = served("served").await;

    let mut saved: HashMap<&str, String> = HashMap::new();
    let mut failures = Vec::new();
    for step in table() {
        let path = substitute(step.path, &saved);
        let mut request = client.request(step.method.clone(), format!("{}{path}", server.base));
        match (&step.auth, saved.get("token")) {
            (Auth::Token, Some(token)) => request = request.bearer_auth(token),
            (Auth::Bearer(token), _) => request = request.bearer_auth(token),
            _ => {}
        }
        request = match &step.body {
            Body::None => request,
            Body::Json(body) => {
                let body: Value = serde_json::from_str(&substitute(&body.to_string(), &saved))
                    .expect("the substituted body is JSON");
                request.json(&body)
            }
            Body::File(name, content_type, bytes) => {
                let boundary = "backforge-e2e-boundary";
                let mut body = format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: {content_type}\r\n\r\n"
                )
                .into_bytes();
                body.extend_from_slice(bytes);
                body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
                request
                    .header(
                        "Content-Type",
                        format!("multipart/form-data; boundary={boundary}"),
                    )
                    .body(body)
            }
        };
        let response = request.send().await.expect("the app answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        if status != step.status {
            failures.push(format!(
                "{} ({} {path}): expected {}, got {status}: {text}",
                step.what, step.method, step.status
            ));
            continue;
        }
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if let Some(key) = step.save {
            let value = body
                .get("id")
                .or_else(|| body.get("access_token"))
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("{}: no id in {text}", step.what));
            saved.insert(key, value.to_owned());
        }
        if let Some(total) = step.total {
            if body["total"] != total {
                failures.push(format!(
                    "{} ({path}): expected total {total}, got {text}",
                    step.what
                ));
            }
        }
        if step.what == "download the file" && text != "hello from the e2e test\n" {
            failures.push(format!("the download answered {text:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} step(s) failed:\n{}\n\nuvicorn log:\n{}",
        failures.len(),
        failures.join("\n"),
        server.log()
    );
    drop(server);
    let _ = fs::remove_dir_all(&dir);
}

/// The peak resident set (VmHWM) of process `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                line.strip_prefix("VmHWM:")
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .expect("VmHWM of the app's process")
}

const FIFTY_MIB: usize = 50 << 20;

/// Uploads a file of 50 MiB over `FILE_MAX_BYTES` to `addr` over a raw connection, announced by
/// Content-Length or chunked, writing until the app answers or stops reading: the status line
/// and how many body bytes had been written when the answer arrived (and in all).
fn oversized_upload(addr: &str, chunked: bool) -> (String, usize, usize) {
    use std::io::Write;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the app");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("a read timeout");
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .expect("a write timeout");
    let boundary = "bf-e2e-oversized";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.txt\"\r\nContent-Type: text/plain\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let file_bytes = FIFTY_MIB + 1024 + 1;
    let body_len = head.len() + file_bytes + tail.len();
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!("Content-Length: {body_len}")
    };
    let request = format!(
        "POST /api/files HTTP/1.1\r\nHost: {addr}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n{framing}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).expect("send the head");
    let sent = Arc::new(AtomicUsize::new(0));
    let mut writer = stream.try_clone().expect("a second handle");
    let writer = std::thread::spawn({
        let sent = Arc::clone(&sent);
        move || {
            let piece = vec![b'x'; 64 * 1024];
            let mut pieces: Vec<&[u8]> = vec![head.as_bytes()];
            let mut left = file_bytes;
            while left > 0 {
                let n = left.min(piece.len());
                pieces.push(&piece[..n]);
                left -= n;
            }
            pieces.push(tail.as_bytes());
            for piece in pieces {
                let written = if chunked {
                    writer
                        .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                        .and_then(|()| writer.write_all(piece))
                        .and_then(|()| writer.write_all(b"\r\n"))
                } else {
                    writer.write_all(piece)
                };
                if written.is_err() {
                    return;
                }
                sent.fetch_add(piece.len(), Ordering::SeqCst);
            }
            if chunked {
                let _ = writer.write_all(b"0\r\n\r\n");
            }
        }
    });
    let mut answer = [0u8; 1024];
    let read = std::io::Read::read(&mut stream, &mut answer).unwrap_or(0);
    let sent_at_answer = sent.load(Ordering::SeqCst);
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = writer.join();
    let status = String::from_utf8_lossy(&answer[..read])
        .lines()
        .next()
        .unwrap_or("")
        .to_owned();
    (status, sent_at_answer, sent.load(Ordering::SeqCst))
}

/// An upload 50 MiB over the limit is refused with 413 before its body is read to the end (both
/// when Content-Length announces it and when it comes chunked), and the app's memory stays flat.
#[tokio::test]
async fn an_upload_far_over_the_limit_is_refused_before_its_body_is_read() {
    let (dir, server, _client) = served("oversized").await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let pid = server.child.id();
    let before = peak_rss_kib(pid);
    for chunked in [false, true] {
        let addr = addr.clone();
        let (status, at_answer, in_all) =
            tokio::task::spawn_blocking(move || oversized_upload(&addr, chunked))
                .await
                .expect("the upload ran");
        let how = if chunked {
            "chunked"
        } else {
            "with Content-Length"
        };
        assert!(
            status.starts_with("HTTP/1.1 413"),
            "{how}: {status:?}\n{}",
            server.log()
        );
        assert!(
            at_answer < FIFTY_MIB / 2,
            "{how}: the answer came after {at_answer} bytes of {FIFTY_MIB}"
        );
        eprintln!("{how}: 413 after {at_answer} body bytes sent ({in_all} in all)");
    }
    let growth = peak_rss_kib(pid).saturating_sub(before);
    assert!(
        growth < 16 * 1024,
        "the app's peak memory grew by {growth} KiB during the uploads"
    );
    drop(server);
    let _ = fs::remove_dir_all(&dir);
}

/// The worker's own verification step (in the sandbox's verify pool), fed the generated files plus
/// one failing test: it must report the failure with counts from pytest's JUnit XML, so a failing
/// suite fails the generation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workers_verification_reports_a_failing_suite_with_its_counts() {
    let mut files = artifact().files.clone();
    files.insert(
        "tests/test_zz_deliberately_failing.py".into(),
        b"def test_this_one_fails():\n    assert 1 == 2\n".to_vec(),
    );
    let verifier = tests::process::verifier(70_900);
    let deadline = || Instant::now() + Duration::from_secs(600);
    let verification = verifier
        .verify(&files, deadline())
        .await
        .expect("the suite ran");
    let names: Vec<&str> = verification.checks.iter().map(|c| c.name).collect();
    assert_eq!(names, ["ruff check", "ruff format --check", "mypy"]);
    for check in &verification.checks {
        eprintln!(
            "{}: {} findings in {:.1?}",
            check.name, check.findings, check.duration
        );
        if check.findings > 0 {
            eprintln!("{}", check.output);
        }
    }
    let report = verification.tests;
    assert_eq!(
        report.failed, 1,
        "exactly the added test fails: {}",
        report.report
    );
    assert!(
        report.passed > 50,
        "the generated tests still pass: {}",
        report.passed
    );
    assert!(
        report.report.contains("test_this_one_fails"),
        "the report names the failure"
    );
    files.remove("tests/test_zz_deliberately_failing.py");
    let clean = verifier
        .verify(&files, deadline())
        .await
        .expect("the suite ran");
    assert_eq!(clean.tests.failed, 0, "{}", clean.tests.report);
}

/// A verify run is offline and holds none of the server's environment: a test that connects to a
/// listener on this machine and one that reads `JWT_SECRET` pass when pytest runs on the host with
/// the secret set, and both fail in the sandbox's verify profile (whose runs get no environment
/// but their own, whatever the worker's holds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verify_run_has_no_network_and_no_server_environment() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a listener");
    let port = listener.local_addr().expect("its address").port();
    let mut files: BTreeMap<String, Vec<u8>> = worker::verify::REQUIREMENTS_FILES
        .iter()
        .map(|name| {
            let content = artifact().files.get(*name).expect("a requirements file");
            ((*name).to_owned(), content.clone())
        })
        .collect();
    files.insert(
        "test_escape.py".into(),
        format!(
            "import os\nimport socket\n\n\n\
             def test_the_network_is_reachable():\n    \
             socket.create_connection((\"127.0.0.1\", {port}), timeout=5).close()\n\n\n\
             def test_the_server_secret_is_readable():\n    \
             assert os.environ.get(\"JWT_SECRET\") == \"escape-test-secret\"\n"
        )
        .into_bytes(),
    );
    let verifier = tests::process::verifier(70_910);
    let venv = verifier.venv(&files).await.expect("the virtualenv");

    // On the host, as the server would have run it before: both pass.
    let dir = std::env::temp_dir().join(format!("bf-escape-{}", Uuid::new_v4().simple()));
    fs::create_dir_all(&dir).expect("mkdir");
    fs::write(dir.join("test_escape.py"), &files["test_escape.py"]).expect("write");
    let outside = Command::new(venv.join("bin/python"))
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "test_escape.py",
        ])
        .current_dir(&dir)
        .env("JWT_SECRET", "escape-test-secret")
        .output()
        .expect("pytest on the host");
    let _ = fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&outside.stdout);
    assert!(outside.status.success(), "outside the sandbox: {text}");
    assert!(text.contains("2 passed"), "{text}");

    // The same file in the sandbox: both fail.
    let report = verifier
        .run_tests(&files, Instant::now() + Duration::from_secs(300))
        .await
        .expect("the suite ran in the sandbox");
    assert_eq!((report.passed, report.failed), (0, 2), "{}", report.report);
    assert!(
        report.report.contains("test_the_network_is_reachable")
            && report.report.contains("test_the_server_secret_is_readable"),
        "{}",
        report.report
    );
    drop(listener);
}
