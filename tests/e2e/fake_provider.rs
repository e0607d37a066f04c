//! The fake OpenAI-format model server the AI end-to-end tests share (on 127.0.0.1: it records
//! every request and answers each connection with the next scripted body, at once or held until
//! released), and the answers and proposals they script.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tests::TestUser;
use tests::process::{Backforge, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

pub const KEY: &str = "sk-e2e-0123456789abcdef";

/// What the fake server recorded: each request's headers (lower-cased names) and JSON body.
pub type Sent = Arc<Mutex<Vec<(HashMap<String, String>, Value)>>>;

/// A model server on 127.0.0.1 answering each connection with the next scripted body (the last
/// repeats), in the OpenAI Chat Completions format, recording every request body.
pub struct FakeModel {
    pub addr: SocketAddr,
    requests: Sent,
    answers: Arc<Mutex<Vec<Value>>>,
    /// Answers wait for a permit: open (many permits) unless started [`FakeModel::held`].
    gate: Arc<Semaphore>,
}

impl FakeModel {
    pub async fn start(answers: Vec<Value>) -> Self {
        Self::gated(answers, Semaphore::MAX_PERMITS).await
    }

    /// A server that reads each request but holds its answer until [`FakeModel::release`].
    pub async fn held(answers: Vec<Value>) -> Self {
        Self::gated(answers, 0).await
    }

    /// Holds later answers again until the next [`FakeModel::release`].
    pub fn hold(&self) {
        self.gate.forget_permits(self.gate.available_permits());
    }

    /// Lets every held and later answer go.
    pub fn release(&self) {
        self.gate
            .add_permits(Semaphore::MAX_PERMITS - self.gate.available_permits());
    }

    async fn gated(answers: Vec<Value>, permits: usize) -> Self {
        let gate = Arc::new(Semaphore::new(permits));
        let open = gate.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        let answers = Arc::new(Mutex::new(answers));
        let scripted = answers.clone();
        let count = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let n = count.fetch_add(1, Ordering::SeqCst);
                let body = {
                    let answers = scripted.lock().expect("lock");
                    answers
                        .get(n)
                        .or(answers.last())
                        .cloned()
                        .expect("an answer")
                };
                tokio::spawn(serve(stream, body, recorded.clone(), open.clone()));
            }
        });
        Self {
            addr,
            requests,
            answers,
            gate,
        }
    }

    /// Scripts the answers once the ids they name exist (before any request reached the server).
    pub fn answer(&self, answers: Vec<Value>) {
        assert!(self.requests().is_empty(), "scripted after a request");
        *self.answers.lock().expect("lock") = answers;
    }

    pub fn requests(&self) -> Vec<(HashMap<String, String>, Value)> {
        self.requests.lock().expect("lock").clone()
    }
}

async fn serve(mut stream: TcpStream, answer: Value, recorded: Sent, gate: Arc<Semaphore>) {
    let Some((headers, sent)) = read_request(&mut stream).await else {
        return;
    };
    recorded.lock().expect("lock").push((headers, sent));
    // Permits are never taken away: a held answer waits for `release`, then goes.
    if gate.acquire().await.is_err() {
        return;
    }
    answer_with(&mut stream, 200, &answer.to_string()).await;
}

/// Reads one HTTP request: its headers (names in lower case) and its body as JSON (null when it
/// is not JSON); `None` when the client went away before the head ended.
pub async fn read_request(stream: &mut TcpStream) -> Option<(HashMap<String, String>, Value)> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let headers: HashMap<String, String> = head
        .split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    Some((
        headers,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    ))
}

/// Answers with `status` and the JSON text `text`, then closes the connection.
pub async fn answer_with(stream: &mut TcpStream, status: u16, text: &str) {
    let head = format!(
        "HTTP/1.1 {status} Scripted\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        text.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(text.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A Chat Completions answer whose content is `content` (as JSON text) and its token counts.
pub fn openai_answer(content: &Value, prompt_tokens: u64, completion_tokens: u64) -> Value {
    json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "test-model",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content.to_string(), "refusal": null},
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens
        }
    })
}

/// One field in the strict answer form: every option present, `null` when unused.
pub fn field(name: &str, kind: &str) -> Value {
    json!({
        "name": name, "type": kind, "required": true, "unique": null, "default": null,
        "min_length": null, "max_length": null, "pattern": null, "min": null, "max": null,
        "precision": null, "scale": null, "values": null, "references": null,
    })
}

/// A `generate_config` proposal of one crud feature whose one field is `field_name`.
pub fn proposal(field_name: &str) -> Value {
    json!({"features": [{
        "name": "Customers",
        "feature_type": "crud",
        "generation_mode": "ai_assisted",
        "configuration": null,
        "schema_definition": {
            "entity": "customer",
            "plural": null,
            "fields": [field("full_name", "string"), field(field_name, "string")],
            "unique": null,
        },
        "is_enabled": true,
    }]})
}

/// Valid, and one that breaks the domain's rules (`select` is an SQL reserved word, refused as
/// a field name) while meeting the JSON Schema.
pub fn valid() -> Value {
    proposal("email")
}

pub fn invalid() -> Value {
    proposal("select")
}

pub fn token(user: &TestUser) -> Option<&str> {
    Some(user.access_token.as_str())
}

pub async fn finished(app: &Backforge, id: &str, user: &TestUser) -> Value {
    eventually(
        "the AI request finishes",
        Duration::from_secs(60),
        || async {
            let answer = app.get(&format!("/ai/requests/{id}"), token(user)).await;
            let status = answer.body["status"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (answer.status.as_u16() == 200 && (status == "succeeded" || status == "failed"))
                .then_some(answer.body)
        },
    )
    .await
}
