//! W9: an AI request → `succeeded` against a local OpenAI-format model server run inside the
//! bench that answers at once — Backforge's own overhead (submit → `succeeded` seen by
//! `GET /ai/requests/{id}`, minus the provider's own time measured on the provider's side), the
//! stages of that time from the request's own events, and the AI jobs' throughput at 8 clients.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use uuid::Uuid;

use super::http::Api;
use super::report::Figure;
use crate::cpu;
use crate::stats::{percentile, summarise};
use crate::workload::{self, Worker};

/// The model's name at the provider, the key the bench gives `serve`, and the prices (USD per
/// million tokens) that make every attempt cost something to compute.
const MODEL: &str = "bench-model";
const KEY: &str = "sk-bench-0123456789abcdef";
const INPUT_USD_PER_MTOK: &str = "2.5";
const OUTPUT_USD_PER_MTOK: &str = "10";
/// The token counts every answer reports.
const PROMPT_TOKENS: u64 = 1_500;
const COMPLETION_TOKENS: u64 = 300;
/// The marker each request's prompt carries, so the provider can tell whose call it served.
const MARKER: &[u8] = b"w9-";
const MARKER_HEX: usize = 32;
/// The largest request the provider reads (the rendered prompt is a few KiB).
const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// How W9 runs: sequential requests for the overhead, then `clients` in a closed loop.
#[derive(Debug, Clone, Copy)]
pub struct W9Plan {
    /// Sequential requests measured for the overhead (after `sequential_warmup` unmeasured ones).
    pub sequential: usize,
    pub sequential_warmup: usize,
    /// How often a sequential request is polled.
    pub sequential_poll: Duration,
    pub clients: usize,
    /// How often each of the `clients` polls its request.
    pub poll: Duration,
    pub warmup: Duration,
    pub window: Duration,
}

/// What the provider recorded for one marker: its own time summed over the calls, and the calls.
#[derive(Debug, Default, Clone, Copy)]
struct Served {
    micros: u64,
    calls: u32,
}

/// A model server on 127.0.0.1 speaking the OpenAI Chat Completions wire format: every request
/// is answered at once, on a kept-alive connection, with a valid `generate_config` proposal and
/// its `usage`; the time from a request's first bytes to its answer written is recorded under the
/// marker its prompt carries.
pub struct Provider {
    pub addr: SocketAddr,
    served: Arc<Mutex<HashMap<String, Served>>>,
    calls: Arc<AtomicU64>,
    unmarked: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Provider {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let served = Arc::new(Mutex::new(HashMap::new()));
        let calls = Arc::new(AtomicU64::new(0));
        let unmarked = Arc::new(AtomicU64::new(0));
        let answer: Arc<[u8]> = http_answer(&chat_completion(&proposal())).into();
        let task = {
            let (served, calls, unmarked) = (served.clone(), calls.clone(), unmarked.clone());
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let _ = stream.set_nodelay(true);
                    let connection = Connection {
                        served: served.clone(),
                        calls: calls.clone(),
                        unmarked: unmarked.clone(),
                        answer: answer.clone(),
                    };
                    tokio::spawn(connection.serve(stream));
                }
            })
        };
        Ok(Self {
            addr,
            served,
            calls,
            unmarked,
            task,
        })
    }

    /// The `BACKFORGE_AI_*` variables that make this server `serve`'s default model.
    pub fn environment(&self) -> Vec<(String, String)> {
        [
            ("BACKFORGE_AI_PROVIDER", "openai".to_owned()),
            ("BACKFORGE_AI_BASE_URL", format!("http://{}/v1", self.addr)),
            ("BACKFORGE_AI_MODEL", MODEL.to_owned()),
            ("BACKFORGE_AI_API_KEY", KEY.to_owned()),
            (
                "BACKFORGE_AI_INPUT_USD_PER_MTOK",
                INPUT_USD_PER_MTOK.to_owned(),
            ),
            (
                "BACKFORGE_AI_OUTPUT_USD_PER_MTOK",
                OUTPUT_USD_PER_MTOK.to_owned(),
            ),
            ("BACKFORGE_AI_MAX_OUTPUT_TOKENS", "2000".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Takes what was recorded for `marker`.
    fn take(&self, marker: &str) -> Option<Served> {
        self.served.lock().ok()?.remove(marker)
    }

    fn forget_all(&self) {
        if let Ok(mut served) = self.served.lock() {
            served.clear();
        }
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Connection {
    served: Arc<Mutex<HashMap<String, Served>>>,
    calls: Arc<AtomicU64>,
    unmarked: Arc<AtomicU64>,
    answer: Arc<[u8]>,
}

impl Connection {
    /// Serves requests on one kept-alive connection until the client closes it.
    async fn serve(self, mut stream: TcpStream) {
        let mut buffer: Vec<u8> = Vec::with_capacity(64 * 1024);
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            // The provider's clock starts when the request's first bytes are here.
            let mut first = None;
            let head_end = loop {
                if let Some(i) = find(&buffer, b"\r\n\r\n") {
                    break i;
                }
                if buffer.len() > MAX_REQUEST_BYTES {
                    return;
                }
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        first.get_or_insert_with(std::time::Instant::now);
                        buffer.extend_from_slice(&chunk[..n]);
                    }
                }
            };
            let started = first.unwrap_or_else(std::time::Instant::now);
            let length = content_length(&buffer[..head_end]).unwrap_or(0);
            if length > MAX_REQUEST_BYTES {
                return;
            }
            let body_start = head_end + 4;
            while buffer.len() < body_start + length {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                }
            }
            let marker = marker_in(&buffer[body_start..body_start + length]);
            if stream.write_all(&self.answer).await.is_err() {
                return;
            }
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.calls.fetch_add(1, Ordering::Relaxed);
            match marker {
                Some(marker) => {
                    if let Ok(mut served) = self.served.lock() {
                        let entry = served.entry(marker).or_default();
                        entry.micros += micros;
                        entry.calls += 1;
                    }
                }
                None => {
                    self.unmarked.fetch_add(1, Ordering::Relaxed);
                }
            }
            buffer.drain(..body_start + length);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The `content-length` of a request head.
fn content_length(head: &[u8]) -> Option<usize> {
    String::from_utf8_lossy(head)
        .split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
}

/// The first `w9-` followed by 32 hex digits in `body`.
fn marker_in(body: &[u8]) -> Option<String> {
    let mut from = 0;
    while let Some(i) = find(&body[from..], MARKER) {
        let start = from + i;
        let hex = body.get(start + MARKER.len()..start + MARKER.len() + MARKER_HEX)?;
        if hex.iter().all(u8::is_ascii_hexdigit) {
            return Some(
                String::from_utf8_lossy(&body[start..start + MARKER.len() + MARKER_HEX]).into(),
            );
        }
        from = start + MARKER.len();
    }
    None
}

/// One field of the strict answer form: every option present, `null` when unused.
fn field(name: &str, kind: &str) -> Value {
    json!({
        "name": name, "type": kind, "required": true, "unique": null, "default": null,
        "min_length": null, "max_length": null, "pattern": null, "min": null, "max": null,
        "precision": null, "scale": null, "values": null, "references": null,
    })
}

/// A valid `generate_config` proposal: one crud feature of two fields.
fn proposal() -> Value {
    json!({"features": [{
        "name": "Customers",
        "feature_type": "crud",
        "generation_mode": "ai_assisted",
        "configuration": null,
        "schema_definition": {
            "entity": "customer",
            "plural": null,
            "fields": [field("full_name", "string"), field("email", "string")],
            "unique": null,
        },
        "is_enabled": true,
    }]})
}

/// A Chat Completions answer whose content is `content` as JSON text, with `usage`.
fn chat_completion(content: &Value) -> Value {
    json!({
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": MODEL,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content.to_string(), "refusal": null},
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS
        }
    })
}

fn http_answer(body: &Value) -> Vec<u8> {
    let text = body.to_string();
    let mut answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        text.len()
    )
    .into_bytes();
    answer.extend_from_slice(text.as_bytes());
    answer
}

/// One AI request made and followed until `succeeded`.
struct Trip {
    id: Uuid,
    marker: String,
    /// Wall clock just before the POST was sent.
    sent_at: OffsetDateTime,
    /// Submit → the GET that answered `succeeded`.
    elapsed: Duration,
    /// GETs made.
    polls: u32,
}

/// A client of W9: submits `POST /ai/generate-config` for its project and polls
/// `GET /ai/requests/{id}` every `poll` until `succeeded` (`failed` is an error).
#[derive(Clone)]
struct AiClient {
    api: Api,
    project: Uuid,
    poll: Duration,
    /// Where the closed loop keeps its trips, for their stages afterwards.
    trips: Option<Arc<Mutex<Vec<Trip>>>>,
}

impl AiClient {
    async fn trip(&self) -> anyhow::Result<Trip> {
        let marker = format!("w9-{}", Uuid::new_v4().simple());
        let body = json!({
            "project_id": self.project,
            "prompt": format!("A shop that keeps its customers ({marker})"),
        });
        let sent_at = OffsetDateTime::now_utc();
        let t = Instant::now();
        let (answer, _) = self
            .api
            .write(
                Method::POST,
                "/ai/generate-config",
                &body,
                StatusCode::ACCEPTED,
            )
            .await?;
        let id: Uuid = answer["id"].as_str().context("no AI request id")?.parse()?;
        let path = format!("/ai/requests/{id}");
        let deadline = t + Duration::from_secs(60);
        let mut polls = 0;
        loop {
            polls += 1;
            let request = self.api.read(&path, None).await;
            match request.as_ref().ok().and_then(|r| r["status"].as_str()) {
                Some("succeeded") => {
                    return Ok(Trip {
                        id,
                        marker,
                        sent_at,
                        elapsed: t.elapsed(),
                        polls,
                    });
                }
                Some("failed") => anyhow::bail!("AI request failed: {}", request?["error"]),
                _ => {}
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "AI request {id} unfinished after 60 s"
            );
            tokio::time::sleep(self.poll).await;
        }
    }
}

impl Worker for AiClient {
    async fn step(&mut self) -> anyhow::Result<()> {
        let trip = self.trip().await?;
        if let Some(trips) = &self.trips
            && let Ok(mut trips) = trips.lock()
        {
            trips.push(trip);
        }
        Ok(())
    }
}

/// Milliseconds between two wall-clock instants (negative when `to` is earlier).
fn ms_between(from: OffsetDateTime, to: OffsetDateTime) -> f64 {
    (to - from).as_seconds_f64() * 1000.0
}

/// The stages of one request, in ms, from its events' `recorded_at` (the database's clock, on
/// this host): POST sent → `AiRequested`, → `AiRequestStarted` (relay, NATS, consumer),
/// → `AiAttemptRecorded` (loads, prompt, the model call, validation), → `AiRequestSucceeded`,
/// → seen `succeeded` by the GET.
const STAGES: [&str; 5] = [
    "submit -> AiRequested",
    "AiRequested -> AiRequestStarted",
    "AiRequestStarted -> AiAttemptRecorded",
    "AiAttemptRecorded -> AiRequestSucceeded",
    "AiRequestSucceeded -> GET answers succeeded",
];

async fn stages(db: &tokio_postgres::Client, trip: &Trip) -> anyhow::Result<[f64; 5]> {
    let stream = domain::ids::AiRequestId::from_uuid(trip.id).stream();
    let rows = db
        .query(
            "SELECT event_type, recorded_at FROM events WHERE stream_id = $1 ORDER BY stream_version",
            &[&stream],
        )
        .await?;
    let at = |kind: &str| -> anyhow::Result<OffsetDateTime> {
        rows.iter()
            .find(|r| r.get::<_, &str>(0) == kind)
            .map(|r| r.get::<_, OffsetDateTime>(1))
            .with_context(|| format!("AI request {} has no {kind}", trip.id))
    };
    let requested = at("AiRequested")?;
    let started = at("AiRequestStarted")?;
    let attempt = at("AiAttemptRecorded")?;
    let succeeded = at("AiRequestSucceeded")?;
    let seen = trip.sent_at + trip.elapsed;
    Ok([
        ms_between(trip.sent_at, requested),
        ms_between(requested, started),
        ms_between(started, attempt),
        ms_between(attempt, succeeded),
        ms_between(succeeded, seen),
    ])
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[(values.len() - 1) / 2]
}

/// The median of each stage over `trips`, as one line.
async fn stage_medians(db: &tokio_postgres::Client, trips: &[Trip]) -> anyhow::Result<String> {
    let mut stage_ms: [Vec<f64>; 5] = Default::default();
    for trip in trips {
        for (i, ms) in stages(db, trip).await?.into_iter().enumerate() {
            stage_ms[i].push(ms);
        }
    }
    Ok(STAGES
        .iter()
        .zip(stage_ms.iter_mut())
        .map(|(name, v)| format!("{name} {:.1}", median(v)))
        .collect::<Vec<_>>()
        .join(", "))
}

/// W9's figures: the overhead of sequential requests, then the throughput of `plan.clients`.
pub async fn w9(
    plan: &W9Plan,
    api: &Api,
    provider: &Provider,
    db: &tokio_postgres::Client,
    probe: &cpu::Probe,
) -> anyhow::Result<Vec<Figure>> {
    let mut projects = Vec::new();
    for c in 0..plan.clients.max(1) {
        let (body, position) = api
            .write(
                Method::POST,
                "/projects",
                &json!({"name": format!("W9 shop {c}")}),
                StatusCode::CREATED,
            )
            .await?;
        let project: Uuid = body["id"].as_str().context("no project id")?.parse()?;
        api.read(&format!("/projects/{project}"), Some(&position))
            .await?;
        projects.push(project);
    }
    let load_before = load_average();

    // ---- overhead: one request at a time ----
    let client = AiClient {
        api: api.clone(),
        project: projects[0],
        poll: plan.sequential_poll,
        trips: None,
    };
    for _ in 0..plan.sequential_warmup {
        client.trip().await?;
    }
    provider.forget_all();
    let (mut overheads, mut totals, mut provider_us) = (Vec::new(), Vec::new(), Vec::new());
    let mut trips = Vec::new();
    let (mut errors, mut samples, mut polls, mut extra_calls) = (0u64, Vec::new(), 0u64, 0u32);
    for _ in 0..plan.sequential {
        match client.trip().await {
            Ok(trip) => {
                let served = provider.take(&trip.marker).unwrap_or_default();
                if served.calls == 0 {
                    errors += 1;
                    if samples.len() < 5 {
                        samples.push(format!("the provider saw no call for {}", trip.marker));
                    }
                    continue;
                }
                extra_calls += served.calls - 1;
                polls += u64::from(trip.polls);
                let us = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
                totals.push(us(trip.elapsed));
                provider_us.push(u32::try_from(served.micros).unwrap_or(u32::MAX));
                overheads.push(us(trip
                    .elapsed
                    .saturating_sub(Duration::from_micros(served.micros))));
                trips.push(trip);
            }
            Err(e) => {
                errors += 1;
                let e = format!("{e:#}");
                if samples.len() < 5 && !samples.contains(&e) {
                    samples.push(e);
                }
            }
        }
    }
    for v in [&mut overheads, &mut totals, &mut provider_us] {
        v.sort_unstable();
    }
    let ms = |v: &[u32], p: f64| percentile(v, p) / 1000.0;
    let mut o = Figure::new(
        "W9",
        "AI request -> succeeded, Backforge's overhead (sequential)",
        "ms p50",
    );
    o.ops = overheads.len() as u64;
    o.errors = errors;
    o.p50_ms = Some(ms(&overheads, 50.0));
    o.p99_ms = Some(ms(&overheads, 99.0));
    o.value = ms(&overheads, 50.0);
    o.error_samples = samples;
    let stage_text = stage_medians(db, &trips).await?;
    o.note = Some(format!(
        "overhead = POST sent -> the GET that answers `succeeded` ({:.2} / {:.2} ms p50 / p99), minus the provider's own time \
         (first request byte -> answer written, p50 {:.3} ms); GET every {} ms ({:.1} GETs per request); \
         {} measured after {} unmeasured; {extra_calls} calls beyond one per request; \
         stage medians in ms from the request's events: {stage_text}; load average {load_before}",
        ms(&totals, 50.0),
        ms(&totals, 99.0),
        ms(&provider_us, 50.0),
        plan.sequential_poll.as_millis(),
        if o.ops > 0 {
            polls as f64 / o.ops as f64
        } else {
            0.0
        },
        o.ops,
        plan.sequential_warmup,
    ));
    let p50 = o.value;
    o.goal(
        format!("W9 overhead p50 <= 50 ms ({p50:.1})"),
        p50 <= 50.0 && o.ops > 0 && errors == 0,
    );
    eprintln!(
        "W9 overhead: p50 {p50:.1} ms, p99 {:.1} ms ({errors} errors); stages: {stage_text}",
        o.p99_ms.unwrap_or(0.0)
    );

    // ---- throughput: `clients` requests in flight ----
    let calls_before = provider.calls.load(Ordering::Relaxed);
    let loop_trips = Arc::new(Mutex::new(Vec::new()));
    let workers = projects
        .iter()
        .map(|p| AiClient {
            api: api.clone(),
            project: *p,
            poll: plan.poll,
            trips: Some(loop_trips.clone()),
        })
        .collect();
    let run = workload::run(workers, plan.warmup, plan.window, probe.clone()).await?;
    let loop_trips: Vec<Trip> = loop_trips
        .lock()
        .map(|mut t| std::mem::take(&mut *t))
        .unwrap_or_default();
    let loop_stages = stage_medians(db, &loop_trips).await?;
    let calls = provider.calls.load(Ordering::Relaxed) - calls_before;
    provider.forget_all();
    let s = summarise(&[&run]);
    let mut t = Figure::throughput(
        "W9",
        "AI requests -> succeeded (generate-config, closed loop)",
        "requests/s",
        plan.clients,
        &s,
    );
    t.error_samples = run.error_samples.clone();
    t.note = Some(format!(
        "each client submits, polls GET /ai/requests/{{id}} every {} ms until `succeeded`, then submits the next; \
         {:.1} s warm-up + {:.1} s window; p50/p99 = submit -> succeeded seen; the provider served {calls} calls \
         (warm-up, window and in flight); stage medians in ms over the {} requests finished (warm-up included): {loop_stages}; \
         load average {} at the end",
        plan.poll.as_millis(),
        plan.warmup.as_secs_f64(),
        plan.window.as_secs_f64(),
        loop_trips.len(),
        load_average(),
    ));
    let rate = t.value;
    t.goal(
        format!(
            "W9 >= 50 requests/s at {} clients ({rate:.1})",
            plan.clients
        ),
        rate >= 50.0 && t.errors == 0,
    );
    eprintln!(
        "W9 {} clients: {rate:.1} requests/s, p50 {:.1} ms, {} errors; stages: {loop_stages}",
        plan.clients,
        t.p50_ms.unwrap_or(0.0),
        t.errors
    );
    let unmarked = provider.unmarked.load(Ordering::Relaxed);
    if unmarked > 0 {
        t.error_samples
            .push(format!("{unmarked} provider calls carried no W9 marker"));
    }
    Ok(vec![o, t])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_is_found_in_a_request_body() {
        let id = Uuid::new_v4().simple().to_string();
        let body = format!(r#"{{"messages":[{{"content":"w9- no; a shop (w9-{id})"}}]}}"#);
        assert_eq!(marker_in(body.as_bytes()), Some(format!("w9-{id}")));
        assert_eq!(marker_in(b"w9-not-hex and w9-123"), None);
    }

    #[test]
    fn the_content_length_is_read_whatever_its_case() {
        let head = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nContent-Length: 42";
        assert_eq!(content_length(head), Some(42));
        assert_eq!(content_length(b"POST / HTTP/1.1\r\nhost: x"), None);
    }

    #[test]
    fn the_answer_is_a_chat_completion_of_a_valid_shape() {
        let answer = chat_completion(&proposal());
        let content: Value = serde_json::from_str(
            answer["choices"][0]["message"]["content"]
                .as_str()
                .unwrap_or_default(),
        )
        .unwrap_or(Value::Null);
        assert_eq!(
            content["features"][0]["schema_definition"]["entity"],
            "customer"
        );
        assert_eq!(
            answer["usage"]["total_tokens"],
            PROMPT_TOKENS + COMPLETION_TOKENS
        );
        let http = http_answer(&answer);
        let text = String::from_utf8_lossy(&http);
        let body = answer.to_string();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains(&format!("content-length: {}\r\n\r\n", body.len())));
        assert!(text.ends_with(&body));
    }
}
