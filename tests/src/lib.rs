//! Helpers for the end-to-end suite: services spawned on fresh databases, and typed HTTP helpers.

use std::sync::Arc;

use event_store::PgEventStore;
pub use event_store::testkit::{PgHarness, PgTestStore, TestDatabase};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The JWT secret every spawned test app uses, so tests can forge tokens to attack it.
pub const TEST_JWT_SECRET: &str = "test-secret-that-is-long-enough-for-hs256-0123456789";

/// Settings for a test app on `database_url`; `overrides` replace environment variables.
pub fn test_settings(database_url: &str, overrides: &[(&str, &str)]) -> runtime::Settings {
    let mut vars: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), database_url.into()),
        ("JWT_SECRET".into(), TEST_JWT_SECRET.into()),
        ("BACKFORGE_DB_POOL_SIZE".into(), "8".into()),
        // Suites hammer login from one address; the limit tests lower these themselves.
        ("BACKFORGE_LOGIN_PER_IP_PER_MINUTE".into(), "10000".into()),
        (
            "BACKFORGE_LOGIN_PER_ACCOUNT_PER_MINUTE".into(),
            "10000".into(),
        ),
        // Suites register many users from 127.0.0.1 too, several at once.
        (
            "BACKFORGE_REGISTER_PER_IP_PER_MINUTE".into(),
            "10000".into(),
        ),
        ("BACKFORGE_HASH_OTHER_SLOTS".into(), "2".into()),
    ];
    for (k, v) in overrides {
        vars.retain(|(key, _)| key != k);
        vars.push(((*k).into(), (*v).into()));
    }
    runtime::Settings::from_lookup(|key| {
        vars.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    })
    .expect("test settings")
}

/// The command API running in-process on a fresh database, built by the binary's own
/// `App::build`; tests that need projections run them themselves.
pub struct TestApp {
    pub address: String,
    pub db: TestDatabase,
    pub client: reqwest::Client,
    pub store: Arc<PgEventStore>,
    pub pool: deadpool_postgres::Pool,
    stop: backforge::StopHandle,
}

/// The answer to a test request: status, headers and the JSON body (Null when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// Fails the test with the body when the status is not `expected`.
    #[track_caller]
    pub fn expect(self, expected: u16) -> Self {
        assert_eq!(
            self.status.as_u16(),
            expected,
            "unexpected status; body: {}",
            self.body
        );
        self
    }
}

/// A registered user with a live token pair.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub password: String,
    pub access_token: String,
    pub refresh_token: String,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&[]).await
    }

    pub async fn spawn_with(overrides: &[(&str, &str)]) -> TestApp {
        runtime::telemetry::init_for_tests();
        let db = TestDatabase::create().await.expect("test database");
        // Port 0 picks a free port; a test's own overrides come after and win.
        let mut vars = vec![("BACKFORGE_ADDR", "127.0.0.1:0")];
        vars.extend_from_slice(overrides);
        let settings = test_settings(&db.url, &vars);
        // The production wiring (it also creates the read-model and relay tables, for tests that
        // run projections in-process).
        let app = backforge::App::build(settings, backforge::Parts::COMMAND_API)
            .await
            .expect("command api");
        let address = format!("http://127.0.0.1:{}", app.port().expect("a bound port"));
        let stop = app.stop_handle();
        tokio::spawn(app.run_until_stopped(std::future::pending()));
        let pool = event_store::setup::pool(&db.url, 4).expect("pool");
        let store = Arc::new(PgEventStore::new(
            pool.clone(),
            Arc::new(domain::Upcasters::backforge()),
        ));
        TestApp {
            address,
            db,
            client: reqwest::Client::new(),
            store,
            pool,
            stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{}", self.address, path)
    }

    /// Sends `body` (JSON when `Some`) with optional bearer `token` and extra headers.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        Self::answer(response).await
    }

    /// Sends raw bytes with the given content type.
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        let mut request = self.client.request(method, self.url(path)).body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(ct) = content_type {
            request = request.header("Content-Type", ct);
        }
        Self::answer(request.send().await.expect("request sent")).await
    }

    async fn answer(response: reqwest::Response) -> Answer {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        assert!(status.as_u16() < 500, "a request got a {status}: {body}");
        if status.is_client_error() {
            let ct = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            assert_eq!(
                ct, "application/problem+json",
                "errors are problem documents: {body}"
            );
            assert_eq!(
                body["status"],
                json!(status.as_u16()),
                "problem status matches: {body}"
            );
            assert!(
                body["type"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("https://backforge.dev/problems/"))
            );
        }
        Answer {
            status,
            headers,
            body,
        }
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

    /// Registers a fresh user named `name`.
    pub async fn register(&self, name: &str) -> TestUser {
        let email = format!(
            "{}-{}@example.com",
            name.to_lowercase(),
            uuid::Uuid::new_v4().simple()
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
        TestUser {
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
        }
    }

    /// How many events the store holds.
    pub async fn event_count(&self) -> i64 {
        let client = self.pool.get().await.expect("client");
        client
            .query_one("SELECT count(*) FROM events", &[])
            .await
            .expect("count")
            .get(0)
    }

    /// Every stored event as `(stream_id, event_type, data, metadata)`.
    pub async fn all_events(&self) -> Vec<(String, String, Value, Value)> {
        let client = self.pool.get().await.expect("client");
        client
            .query(
                "SELECT stream_id, event_type, data, metadata FROM events ORDER BY position",
                &[],
            )
            .await
            .expect("events")
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Stop accepting and close connections before the database goes away.
        self.stop.stop();
    }
}

pub mod nats;
pub mod process;
