//! The HTTP side: an authenticated client of the real API and the suite's HTTP workers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::workload::Worker;

/// One authenticated caller of the API (cheap to clone: reqwest shares its connection pool).
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
    pub token: Arc<str>,
}

impl Api {
    /// Registers a fresh user (one argon2 hash, untimed) and keeps its access token.
    pub async fn register(base: &str) -> anyhow::Result<(Self, Uuid)> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()?;
        let email = format!("bench-{}@example.com", Uuid::new_v4().simple());
        let answer = http
            .post(format!("{base}/api/v1/auth/register"))
            .json(&json!({"email": email, "password": "bench-password-1", "name": "Bench"}))
            .send()
            .await?;
        let status = answer.status();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status == StatusCode::CREATED, "register: {status} {body}");
        let token = body["access_token"].as_str().context("no access_token")?;
        let user = body["user"]["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .context("no user id")?;
        Ok((
            Self {
                http,
                base: base.to_owned(),
                token: token.into(),
            },
            user,
        ))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    /// A write; returns the body and the `Backforge-Position` header.
    pub async fn write(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
        expect: StatusCode,
    ) -> anyhow::Result<(Value, String)> {
        let answer = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&*self.token)
            .json(body)
            .send()
            .await?;
        let status = answer.status();
        let position = answer
            .headers()
            .get("Backforge-Position")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(status == expect, "{path}: HTTP {status} {body}");
        Ok((body, position))
    }

    /// A read, optionally waiting for `min_position`; fails unless 200.
    pub async fn read(&self, path: &str, min_position: Option<&str>) -> anyhow::Result<Value> {
        let mut request = self.http.get(self.url(path)).bearer_auth(&*self.token);
        if let Some(p) = min_position {
            request = request.header("Backforge-Min-Position", p);
        }
        let answer = request.send().await?;
        let status = answer.status();
        let body = answer.bytes().await?;
        anyhow::ensure!(
            status == StatusCode::OK,
            "GET {path}: HTTP {status} {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        );
        Ok(serde_json::from_slice(&body)?)
    }

    /// A read, optionally waiting for `min_position`, that fails unless it answers 200 with a body
    /// holding `needle`: proof that the read shows a write without parsing the whole body (W2's
    /// ~30 KB projects parsed into `Value`s took a third of the machine from the server).
    pub async fn read_showing(
        &self,
        path: &str,
        min_position: &str,
        needle: &str,
    ) -> anyhow::Result<usize> {
        let answer = self
            .http
            .get(self.url(path))
            .bearer_auth(&*self.token)
            .header("Backforge-Min-Position", min_position)
            .send()
            .await?;
        let status = answer.status();
        let body = answer.bytes().await?;
        anyhow::ensure!(status == StatusCode::OK, "GET {path}: HTTP {status}");
        anyhow::ensure!(
            memchr::memmem::find(&body, needle.as_bytes()).is_some(),
            "GET {path} at position {min_position} does not show {needle}"
        );
        Ok(body.len())
    }

    /// A read whose body is only checked for 200 and drained (what a client must at least do).
    pub async fn get_ok(&self, path: &str) -> anyhow::Result<usize> {
        let answer = self
            .http
            .get(self.url(path))
            .bearer_auth(&*self.token)
            .send()
            .await?;
        let status = answer.status();
        let body = answer.bytes().await?;
        anyhow::ensure!(status == StatusCode::OK, "GET {path}: HTTP {status}");
        Ok(body.len())
    }
}

/// The body of W1's command: a small `crud` entity with a name unique in the whole run.
/// The n-th command's feature name: unique, so a read can be checked for it.
pub fn feature_name(n: u64) -> String {
    format!("Feature {n}")
}

pub fn feature_body(n: u64) -> Value {
    json!({
        "name": feature_name(n),
        "feature_type": "crud",
        "schema_definition": {
            "entity": format!("item_{n}"),
            "fields": [
                {"name": "title", "type": "string", "required": true, "max_length": 120},
                {"name": "amount", "type": "decimal", "precision": 12, "scale": 2, "min": 0}
            ]
        }
    })
}

/// Picks the n-th command's project: spread over all projects (a multiplicative hash).
pub fn pick(projects: &[Uuid], n: u64) -> Uuid {
    projects[(n.wrapping_mul(2_654_435_761) % projects.len() as u64) as usize]
}

/// W1: POST /projects/{id}/features on the existing projects.
pub struct AddFeature {
    pub api: Api,
    pub projects: Arc<Vec<Uuid>>,
    pub counter: Arc<AtomicU64>,
}

impl AddFeature {
    /// One command: returns the project and the position of its event.
    pub async fn once(&self) -> anyhow::Result<(Uuid, String)> {
        self.numbered()
            .await
            .map(|(_, project, position)| (project, position))
    }

    /// One command: returns its number (see [`feature_name`]), the project and its position.
    pub async fn numbered(&self) -> anyhow::Result<(u64, Uuid, String)> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let project = pick(&self.projects, n);
        let (_, position) = self
            .api
            .write(
                reqwest::Method::POST,
                &format!("/projects/{project}/features"),
                &feature_body(n),
                StatusCode::CREATED,
            )
            .await?;
        Ok((n, project, position))
    }
}

impl Worker for AddFeature {
    async fn step(&mut self) -> anyhow::Result<()> {
        self.once().await.map(|_| ())
    }
}

/// W3 and W5: GET of a path chosen per call.
pub struct Get {
    pub api: Api,
    pub paths: Arc<Vec<String>>,
    pub n: u64,
}

impl Worker for Get {
    async fn step(&mut self) -> anyhow::Result<()> {
        self.n = self.n.wrapping_add(1);
        let i = (self.n.wrapping_mul(2_654_435_761) % self.paths.len() as u64) as usize;
        self.api.get_ok(&self.paths[i]).await.map(|_| ())
    }
}
