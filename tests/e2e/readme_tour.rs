//! The README's curl tour, extracted from README.md and run as written (twice, against one
//! server), so the commands a new user copies cannot drift from what the server answers.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tests::TestDatabase;
use tests::process::Backforge;

/// The first `sh` block after the tour's heading.
fn tour_script() -> String {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let text = std::fs::read_to_string(&readme).expect("README.md");
    let tour = text
        .split_once("## A tour with curl")
        .map(|(_, rest)| rest)
        .expect("the README has a tour");
    let (_, block) = tour.split_once("```sh\n").expect("the tour has a sh block");
    let (script, _) = block.split_once("\n```").expect("the block ends");
    script.to_owned()
}

fn run_tour(script: &str, dir: &Path) -> String {
    let output = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "the tour failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_tour_runs_as_written_twice_in_a_row_against_one_server() {
    let db = TestDatabase::create().await.expect("database");
    let serve = Backforge::start("serve", &db.url, &[]).await;
    let script = tour_script();
    assert!(
        script.contains("B=http://127.0.0.1:8080/api/v1"),
        "the tour names the default address"
    );
    let script = script.replace("http://127.0.0.1:8080", &serve.address);
    let dir = std::env::temp_dir().join(format!("bf-tour-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    for run in 1..=2 {
        let started = std::time::Instant::now();
        let out = tokio::task::spawn_blocking({
            let (script, dir) = (script.clone(), dir.clone());
            move || run_tour(&script, &dir)
        })
        .await
        .expect("the tour ran");
        for expected in [
            "\"email\": \"ada@example.com\"",
            "\"name\": \"Shop v2\"",
            "generation: succeeded",
            "ProjectUpdated",
            "ProjectArchived",
        ] {
            assert!(
                out.contains(expected),
                "run {run} lacks {expected:?}:\n{out}"
            );
        }
        let codes: Vec<&str> = out
            .lines()
            .filter(|l| l.len() == 3 && l.bytes().all(|b| b.is_ascii_digit()))
            .collect();
        assert_eq!(
            codes,
            ["404", "204"],
            "run {run}: archived read, then logout:\n{out}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "run {run} took {:?}",
            started.elapsed()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_tail_writes_only_json_lines_to_stdout_so_jq_reads_them() {
    let db = TestDatabase::create().await.expect("database");
    let serve = Backforge::start("serve", &db.url, &[]).await;
    let prefix = tests::process::nats_prefix(&db.url);
    // The documented pipeline, `backforge events tail | jq -c .type`, built as two processes the
    // test owns (so both are killed at the end; a shell would leave the tail running).
    // (`--unbuffered` only because jq buffers when its output is a pipe, as it is here.)
    let mut source = tokio::process::Command::new(tests::process::binary())
        .args(["events", "tail"])
        .env("DATABASE_URL", &db.url)
        .env("BACKFORGE_NATS_PREFIX", &prefix)
        .env("JWT_SECRET", tests::TEST_JWT_SECRET)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("events tail starts");
    let events: std::process::Stdio = source
        .stdout
        .take()
        .expect("the tail's stdout")
        .try_into()
        .expect("a pipe");
    let mut tail = tokio::process::Command::new("jq")
        .args(["--unbuffered", "-c", ".type"])
        .stdin(events)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("jq starts");
    let stdout = tail.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout);
    // Writes until the tail has printed a line (it subscribes after it starts).
    let (user, _) = serve.register("Tailor").await;
    let first = tokio::time::timeout(Duration::from_secs(30), async {
        use tokio::io::AsyncBufReadExt;
        let mut line = String::new();
        loop {
            serve
                .post(
                    "/projects",
                    Some(&user.access_token),
                    serde_json::json!({"name": "Tailed"}),
                )
                .await
                .expect(201);
            line.clear();
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_secs(2), lines.read_line(&mut line)).await
            {
                if n > 0 {
                    return line.clone();
                }
            }
        }
    })
    .await
    .expect("the tail printed an event");
    let _ = tail.kill().await;
    let _ = source.kill().await;
    let kind: String = serde_json::from_str(first.trim()).expect("jq printed a JSON string");
    assert!(kind.starts_with(&format!("{prefix}.")), "{kind}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_env_fills_in_unset_variables_and_the_development_secret_warning_is_logged() {
    let db = TestDatabase::create().await.expect("database");
    let dir = std::env::temp_dir().join(format!("bf-dotenv-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    std::fs::write(dir.join(".env"), format!("DATABASE_URL={}\n", db.url)).expect(".env");
    // No DATABASE_URL and no JWT_SECRET in the environment: .env names the database, and the
    // development secret is used with a warning in the log.
    let output = tokio::process::Command::new(tests::process::binary())
        .arg("migrate")
        .current_dir(&dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .output()
        .await
        .expect("backforge migrate runs");
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "migrate failed:\n{stderr}");
    assert!(stderr.contains("read settings from .env"), "{stderr}");
    assert!(stderr.contains("JWT_SECRET is not set"), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !stdout.contains("JWT_SECRET") && !stdout.contains(" INFO "),
        "logs go to stderr, not stdout: {stdout}"
    );
    let pool = event_store::setup::pool(&db.url, 1).expect("pool");
    let client = pool.get().await.expect("the .env database was created");
    client
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .expect("and migrated");
}
