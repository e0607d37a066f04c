//! W7: what one hostile user can do to everyone else (issue 10, H2 and M1). The three schemas that
//! used to stall the process are generated (or refused at write) while another user reads, and a
//! registration flood runs while another user signs in.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::time::Instant;
use uuid::Uuid;

use super::http::Api;
use super::report::Figure;
use crate::stats::percentile;

/// The schemas of finding H2, as one field of a `crud` entity each.
pub fn hostile_fields() -> [(&'static str, Value); 3] {
    [
        (
            "string of 10,000 [abc]",
            json!({"name": "code", "type": "string", "min_length": 10000, "max_length": 10000, "pattern": "[abc]"}),
        ),
        (
            "^(?:(?:(?:a{10}){10}){10}){10}$",
            json!({"name": "code", "type": "string", "max_length": 10000, "pattern": "^(?:(?:(?:a{10}){10}){10}){10}$"}),
        ),
        (
            "text of max_length 1e9",
            json!({"name": "body", "type": "text", "max_length": 1_000_000_000u32}),
        ),
    ]
}

/// Sizes of one W7 run.
pub struct W7Plan {
    /// Generations of each schema (the reads run during all of them).
    pub rounds: usize,
    /// Concurrent clients reading another user's project meanwhile.
    pub readers: usize,
    /// Registrations launched at once in the flood.
    pub flood: usize,
}

/// Reads `path` in a loop until `stop`; returns the latencies (µs) and the errors.
async fn read_loop(api: Api, path: String, stop: Arc<AtomicBool>) -> (Vec<u32>, u64, Vec<String>) {
    let (mut latencies, mut errors, mut samples) = (Vec::new(), 0u64, Vec::new());
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        match api.get_ok(&path).await {
            Ok(_) => latencies.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX)),
            Err(e) => {
                errors += 1;
                if samples.len() < 3 {
                    samples.push(format!("{e:#}"));
                }
            }
        }
        // A user clicking around, not a load generator: the figure is latency, not throughput.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (latencies, errors, samples)
}

/// Requests a generation of `project` and polls until it has finished; returns the time from the
/// request to `succeeded`, or the failure.
async fn generate(api: &Api, project: Uuid) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let (body, _) = api
        .write(
            Method::POST,
            &format!("/projects/{project}/generations"),
            &json!({"verify": false}),
            StatusCode::ACCEPTED,
        )
        .await?;
    let id = body["id"].as_str().context("no generation id")?.to_owned();
    let deadline = t + Duration::from_secs(60);
    loop {
        let g = api.read(&format!("/generations/{id}"), None).await;
        match g.as_ref().ok().and_then(|g| g["status"].as_str()) {
            Some("succeeded") => return Ok(t.elapsed()),
            Some("failed") => anyhow::bail!("generation failed: {}", g?["error"]),
            _ => {}
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "generation {id} unfinished after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub async fn w7(plan: &W7Plan, api: &Api, base: &str) -> anyhow::Result<Vec<Figure>> {
    let mut figures = Vec::new();
    // The other user, with a project of their own to read.
    let (reader, _) = Api::register(base).await?;
    let (body, position) = reader
        .write(
            Method::POST,
            "/projects",
            &json!({"name": "Someone else's"}),
            StatusCode::CREATED,
        )
        .await?;
    let theirs = body["id"].as_str().context("no project id")?.to_owned();
    reader
        .read(&format!("/projects/{theirs}"), Some(&position))
        .await?;

    // The hostile user's projects: accepted ones are generated, refused ones noted.
    let mut accepted = Vec::new();
    let mut outcomes = Vec::new();
    for (name, field) in hostile_fields() {
        let body = json!({"name": format!("W7 {name}"), "features": [{"name": "Things",
            "feature_type": "crud", "schema_definition": {"entity": "thing", "fields": [field]}}]});
        let answer = api
            .http
            .post(api.url("/projects"))
            .bearer_auth(&*api.token)
            .json(&body)
            .send()
            .await?;
        let status = answer.status();
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        match status {
            StatusCode::CREATED => {
                let id: Uuid = body["id"].as_str().context("no project id")?.parse()?;
                accepted.push((name, id));
            }
            StatusCode::UNPROCESSABLE_ENTITY => outcomes.push(format!("{name}: refused (422)")),
            other => anyhow::bail!("POST /projects ({name}): HTTP {other} {body}"),
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..plan.readers)
        .map(|_| {
            tokio::spawn(read_loop(
                reader.clone(),
                format!("/projects/{theirs}"),
                stop.clone(),
            ))
        })
        .collect();
    let started = Instant::now();
    let mut times: Vec<u32> = Vec::new();
    let mut errors = 0;
    let mut samples = Vec::new();
    let mut worst: Vec<(&str, Duration)> = Vec::new();
    for _ in 0..plan.rounds {
        for (name, project) in &accepted {
            match generate(api, *project).await {
                Ok(d) => {
                    times.push(u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
                    match worst.iter_mut().find(|(n, _)| n == name) {
                        Some((_, w)) => *w = (*w).max(d),
                        None => worst.push((name, d)),
                    }
                }
                Err(e) => {
                    errors += 1;
                    samples.push(format!("{name}: {e:#}"));
                }
            }
        }
    }
    // Reads go on for at least a second even when every schema was refused.
    let minimum = started + Duration::from_secs(1);
    tokio::time::sleep_until(minimum).await;
    stop.store(true, Ordering::Relaxed);
    let (mut reads, mut read_errors, mut read_samples) = (Vec::new(), 0, Vec::new());
    for r in readers {
        let (l, e, s) = r.await?;
        reads.extend(l);
        read_errors += e;
        read_samples.extend(s);
    }
    times.sort_unstable();
    reads.sort_unstable();
    for (name, d) in &worst {
        outcomes.push(format!(
            "{name}: slowest {:.0} ms",
            d.as_secs_f64() * 1000.0
        ));
    }

    let mut g = Figure::new(
        "W7",
        "generation of the three H2 schemas (request -> succeeded, slowest)",
        "ms max",
    );
    g.ops = times.len() as u64;
    g.errors = errors;
    g.error_samples = samples;
    g.p50_ms = (!times.is_empty()).then(|| percentile(&times, 50.0) / 1000.0);
    g.p99_ms = (!times.is_empty()).then(|| percentile(&times, 99.0) / 1000.0);
    g.value = times.last().map_or(0.0, |&us| f64::from(us) / 1000.0);
    g.note = Some(format!(
        "{} round(s), sequential, verify=false, polled every 10 ms; {}",
        plan.rounds,
        outcomes.join("; ")
    ));
    if accepted.is_empty() {
        // Every schema was refused at write: nothing to generate, which meets the goal.
        g.value = f64::MIN_POSITIVE;
        g.goal("W7 generation <= 2 s (all three refused at write)", true);
    } else {
        let max = g.value;
        g.goal(
            format!("W7 generation <= 2 s ({max:.0} ms)"),
            max <= 2000.0 && errors == 0,
        );
    }
    eprintln!("W7 generation: {}", g.note.as_deref().unwrap_or_default());
    figures.push(g);

    let mut r = Figure::new(
        "W7",
        format!(
            "another user's GET /projects/{{id}} during those generations ({} clients)",
            plan.readers
        ),
        "ms p99",
    );
    r.clients = plan.readers;
    r.ops = reads.len() as u64;
    r.errors = read_errors;
    r.error_samples = read_samples;
    r.p50_ms = Some(percentile(&reads, 50.0) / 1000.0);
    r.p99_ms = Some(percentile(&reads, 99.0) / 1000.0);
    r.value = r.p99_ms.unwrap_or(0.0);
    r.note = Some(format!(
        "max {:.1} ms; each client waits 5 ms between reads",
        reads.last().map_or(0.0, |&us| f64::from(us) / 1000.0)
    ));
    let p99 = r.value;
    r.goal(format!("W7 reads p99 <= 100 ms ({p99:.1})"), p99 <= 100.0);
    eprintln!(
        "W7 reads during generation: p99 {p99:.1} ms over {} reads",
        reads.len()
    );
    figures.push(r);

    figures.push(login_under_flood(plan, base).await?);
    Ok(figures)
}

/// Logins of one user, one after another, while `plan.flood` registrations arrive at once.
async fn login_under_flood(plan: &W7Plan, base: &str) -> anyhow::Result<Figure> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()?;
    let email = format!("w7-{}@example.com", Uuid::new_v4().simple());
    let password = "bench-password-1";
    let answer = http
        .post(format!("{base}/api/v1/auth/register"))
        .json(&json!({"email": email, "password": password, "name": "Signs in"}))
        .send()
        .await?;
    anyhow::ensure!(
        answer.status() == StatusCode::CREATED,
        "register: HTTP {}",
        answer.status()
    );
    let login = {
        let http = http.clone();
        let email = email.clone();
        move || {
            let http = http.clone();
            let body = json!({"email": email, "password": password});
            async move {
                let t = Instant::now();
                let answer = http
                    .post(format!("{base}/api/v1/auth/login"))
                    .json(&body)
                    .send()
                    .await?;
                anyhow::ensure!(
                    answer.status() == StatusCode::OK,
                    "login: HTTP {}",
                    answer.status()
                );
                anyhow::Ok(t.elapsed())
            }
        }
    };
    // Unloaded, for comparison.
    let mut idle = Vec::new();
    for _ in 0..5 {
        idle.push(u32::try_from(login().await?.as_micros()).unwrap_or(u32::MAX));
    }
    idle.sort_unstable();

    let flood: Vec<_> = (0..plan.flood)
        .map(|i| {
            let http = http.clone();
            let base = base.to_owned();
            tokio::spawn(async move {
                let body = json!({"email": format!("flood-{i}-{}@example.com", Uuid::new_v4().simple()),
                    "password": "flood-password-1", "name": "Flood"});
                match http.post(format!("{base}/api/v1/auth/register")).json(&body).send().await {
                    Ok(answer) => answer.status().as_u16(),
                    Err(_) => 0,
                }
            })
        })
        .collect();
    let (mut times, mut errors, mut samples) = (Vec::new(), 0u64, Vec::new());
    let t = Instant::now();
    while flood.iter().any(|h| !h.is_finished()) || times.len() < 10 {
        match login().await {
            Ok(d) => times.push(u32::try_from(d.as_micros()).unwrap_or(u32::MAX)),
            Err(e) => {
                errors += 1;
                if samples.len() < 3 {
                    samples.push(format!("{e:#}"));
                }
            }
        }
        if t.elapsed() > Duration::from_secs(120) {
            break;
        }
    }
    let flood_secs = t.elapsed().as_secs_f64();
    let mut statuses: std::collections::BTreeMap<u16, usize> = std::collections::BTreeMap::new();
    for h in flood {
        *statuses.entry(h.await?).or_default() += 1;
    }
    times.sort_unstable();
    let mut f = Figure::new(
        "W7",
        format!("login during a flood of {} registrations", plan.flood),
        "ms p99",
    );
    f.ops = times.len() as u64;
    f.errors = errors;
    f.error_samples = samples;
    f.p50_ms = Some(percentile(&times, 50.0) / 1000.0);
    f.p99_ms = Some(percentile(&times, 99.0) / 1000.0);
    f.value = f.p99_ms.unwrap_or(0.0);
    f.note = Some(format!(
        "sequential logins of one user while the flood lasted ({flood_secs:.1} s); unloaded login p50 {:.1} ms; \
         registration answers {}",
        percentile(&idle, 50.0) / 1000.0,
        statuses
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let p99 = f.value;
    f.goal(
        format!("W7 login p99 <= 200 ms ({p99:.1})"),
        p99 <= 200.0 && errors == 0,
    );
    eprintln!(
        "W7 login under a registration flood: p99 {p99:.1} ms; {}",
        f.note.as_deref().unwrap_or_default()
    );
    Ok(f)
}
