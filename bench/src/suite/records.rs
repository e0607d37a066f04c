//! W10, W10u and W11 (issue 19's W7, W7u and "the list"): live record creates at 1/8/32 clients
//! against W1's raw INSERT, and the list query over loaded records against its own SQL run raw.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::Pool;
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use super::http::Api;
use super::pg;
use super::report::Figure;
use crate::baseline;
use crate::cpu;
use crate::stats::summarise;
use crate::workload::{self, Worker};

/// W11's query string, as issue 19 gives it.
pub const W11_QUERY: &str = "status=paid&total__gte=100&sort=-created_at&limit=50";

/// The statement the platform runs for [`W11_QUERY`] on the W11 entity, with its parameters:
/// `read_model::records::list_statement` for the same schema, query and page size (the page plus
/// one row, which tells whether there is a next page): the W11 baseline, run raw on the same table.
pub fn w11_statement(
    project: Uuid,
    feature: Uuid,
) -> anyhow::Result<read_model::records::ListStatement> {
    let raw = entity("Sales", false);
    let schema = domain::crud_schema::EntitySchema::parse(
        &raw["schema_definition"],
        &domain::error::Pointer::root(),
        &domain::Limits::default(),
    )
    .map_err(|e| anyhow::anyhow!("the W11 schema: {e:?}"))?;
    let pairs: Vec<(String, String)> = W11_QUERY
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(name, _)| *name != "limit")
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    let query = schema
        .parse_query(&pairs)
        .map_err(|e| anyhow::anyhow!("the W11 query: {e:?}"))?;
    Ok(read_model::records::list_statement(
        project,
        feature,
        &schema,
        &query,
        None,
        W11_PAGE + 1,
    ))
}

/// W11's page size, the `limit` of [`W11_QUERY`].
const W11_PAGE: usize = 50;

/// The five-field entity of W10 (string, integer, decimal, enum, datetime); with `unique`, its
/// string field is unique (W10u).
pub fn entity(name: &str, unique: bool) -> Value {
    let mut number =
        json!({"name": "number", "type": "string", "required": true, "max_length": 40});
    if unique {
        number["unique"] = json!(true);
    }
    json!({
        "name": name,
        "feature_type": "crud",
        "schema_definition": {
            "entity": name.to_ascii_lowercase().trim_end_matches('s'),
            "fields": [
                number,
                {"name": "quantity", "type": "integer", "min": 0},
                {"name": "total", "type": "decimal", "precision": 10, "scale": 2},
                {"name": "status", "type": "enum", "values": ["new", "paid", "shipped", "void", "refunded"], "required": true},
                {"name": "placed_at", "type": "datetime"}
            ]
        }
    })
}

/// The n-th record: `status` cycles over five values (one in five `paid`), `total` over 0-199.99
/// (half ≥ 100) independently, so W11's filter keeps about 10 %.
pub fn record(n: u64) -> Value {
    let statuses = ["new", "paid", "shipped", "void", "refunded"];
    let cents = (n.wrapping_mul(7919) / 5) % 20_000;
    json!({
        "number": format!("N-{n}"),
        "quantity": n % 100,
        "total": format!("{}.{:02}", cents / 100, cents % 100),
        "status": statuses[(n % 5) as usize],
        "placed_at": format!("2026-{:02}-{:02}T{:02}:00:00Z", n % 12 + 1, n % 28 + 1, n % 24),
    })
}

/// One client creating records of one entity.
pub struct Create {
    pub api: Api,
    pub path: Arc<str>,
    pub counter: Arc<AtomicU64>,
}

impl Worker for Create {
    async fn step(&mut self) -> anyhow::Result<()> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        self.api
            .write(Method::POST, &self.path, &record(n), StatusCode::CREATED)
            .await?;
        Ok(())
    }
}

/// One client reading W11's list through HTTP.
struct List {
    api: Api,
    path: Arc<str>,
}

impl Worker for List {
    async fn step(&mut self) -> anyhow::Result<()> {
        self.api.get_ok(&self.path).await?;
        Ok(())
    }
}

/// One client running W11's statement raw.
struct RawList {
    pool: Pool,
    statement: read_model::records::ListStatement,
}

impl Worker for RawList {
    async fn step(&mut self) -> anyhow::Result<()> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(&self.statement.sql).await?;
        let rows = client.query(&stmt, &self.statement.params()).await?;
        anyhow::ensure!(
            rows.len() == W11_PAGE + 1,
            "W11 baseline: {} rows",
            rows.len()
        );
        Ok(())
    }
}

/// A project with the W10, W10u and W11 entities; returns its id.
pub async fn project(api: &Api) -> anyhow::Result<Uuid> {
    let (body, _) = api
        .write(
            Method::POST,
            "/projects",
            &json!({"name": "Records bench", "features": [
                entity("Orders", false), entity("Coupons", true), entity("Sales", false)
            ]}),
            StatusCode::CREATED,
        )
        .await?;
    Ok(body["id"].as_str().context("no project id")?.parse()?)
}

/// W10 (`unique` false) or W10u at each of `clients`: each concurrency runs the raw INSERT (a),
/// then the creates, back to back; the goal compares the creates' ratio with W1's at the same
/// concurrency (`w1_ratios`, measured earlier in this run).
#[allow(clippy::too_many_arguments)]
pub async fn w10(
    api: &Api,
    project: Uuid,
    unique: bool,
    clients: &[usize],
    w1_ratios: &[(usize, f64)],
    raw_pool: &Pool,
    event: &event_store::NewEvent,
    warmup: Duration,
    window: Duration,
    probe: &cpu::Probe,
) -> anyhow::Result<Vec<Figure>> {
    let (id, plural, name) = if unique {
        (
            "W10u",
            "coupons",
            "create record, unique string (POST /projects/{id}/data/{plural})",
        )
    } else {
        (
            "W10",
            "orders",
            "create record, 5 fields (POST /projects/{id}/data/{plural})",
        )
    };
    let path: Arc<str> = format!("/projects/{project}/data/{plural}").into();
    let counter = Arc::new(AtomicU64::new(0));
    let metadata = serde_json::to_value(&event.metadata)?;
    let mut figures = Vec::new();
    for &c in clients {
        let workers = (0..c)
            .map(|t| pg::RawInsert {
                pool: raw_pool.clone(),
                stream_id: format!("raw-{id}-{c}-{t}"),
                version: 0,
                event: event.clone(),
                metadata: metadata.clone(),
            })
            .collect();
        let a = workload::run(workers, warmup, window, probe.clone()).await?;
        let workers = (0..c)
            .map(|_| Create {
                api: api.clone(),
                path: path.clone(),
                counter: counter.clone(),
            })
            .collect();
        let h = workload::run(workers, warmup, window, probe.clone()).await?;
        let mut f = Figure::throughput(id, name, "records/s", c, &summarise(&[&h]));
        f.error_samples = h.error_samples.clone();
        f.baseline(
            "(a) one-row INSERT, autocommit (W1's)",
            baseline::INSERT_SQL,
            &summarise(&[&a]),
            false,
        );
        for e in &a.error_samples {
            f.error_samples.push(format!("(a) {e}"));
        }
        let ratio = f.baselines[0].ratio;
        match w1_ratios.iter().find(|(n, _)| *n == c) {
            Some((_, w1)) => f.goal(
                format!("{id} / (a) >= W1 / (a) at {c} clients ({ratio:.3} vs {w1:.3})"),
                ratio >= *w1,
            ),
            None => f.note = Some("W1 did not run at this concurrency: no goal".into()),
        }
        eprintln!(
            "{id} {c} clients: {:.0} records/s, (a) {:.0}/s, ratio {ratio:.3}",
            f.value, f.baselines[0].value
        );
        figures.push(f);
    }
    Ok(figures)
}

/// W11: loads `records` records into the `sales` entity with `load_clients` concurrent creates
/// (untimed), waits until all are projected, then runs the list through HTTP and its statement
/// raw at each of `clients`, back to back.
#[allow(clippy::too_many_arguments)]
pub async fn w11(
    api: &Api,
    project: Uuid,
    records: u64,
    load_clients: usize,
    clients: &[usize],
    raw_pool: &Pool,
    client: &tokio_postgres::Client,
    warmup: Duration,
    window: Duration,
    probe: &cpu::Probe,
) -> anyhow::Result<Vec<Figure>> {
    let path = format!("/projects/{project}/data/sales");
    let t = tokio::time::Instant::now();
    let counter = AtomicU64::new(0);
    let (path_ref, counter_ref) = (&path, &counter);
    let results: Vec<anyhow::Result<(String, Option<Uuid>)>> =
        futures::stream::iter(0..load_clients)
            .map(|_| async move {
                let mut last = (String::new(), None);
                loop {
                    let n = counter_ref.fetch_add(1, Ordering::Relaxed);
                    if n >= records {
                        return Ok::<_, anyhow::Error>(last);
                    }
                    let (body, position) = api
                        .write(Method::POST, path_ref, &record(n), StatusCode::CREATED)
                        .await?;
                    let id = body["id"].as_str().and_then(|s| s.parse().ok());
                    if position.parse::<u64>().unwrap_or(0) >= last.0.parse::<u64>().unwrap_or(0) {
                        last = (position, id);
                    }
                }
            })
            .buffer_unordered(load_clients)
            .collect()
            .await;
    let mut newest = (String::new(), None);
    for r in results {
        let (position, id) = r?;
        if position.parse::<u64>().unwrap_or(0) >= newest.0.parse::<u64>().unwrap_or(0) {
            newest = (position, id);
        }
    }
    let loaded = t.elapsed().as_secs_f64();
    // Every record projected: the newest position read back with Backforge-Min-Position.
    let list_path = format!("{path}?{W11_QUERY}");
    let page = api.read(&list_path, Some(&newest.0)).await?;
    let items = page["items"].as_array().map_or(0, Vec::len);
    anyhow::ensure!(items == 50, "W11: the list answered {items} items, not 50");
    let record_id = newest.1.context("W11: no record id")?;
    let row = client
        .query_one(
            "SELECT project_id, feature_id FROM rm.records WHERE id = $1",
            &[&record_id],
        )
        .await?;
    let (project_id, feature): (Uuid, Uuid) = (row.try_get(0)?, row.try_get(1)?);
    let matching: i64 = client
        .query_one(
            "SELECT count(*) FROM rm.records WHERE project_id = $1 AND feature_id = $2 \
             AND data->>'status' = 'paid' AND (data->>'total')::numeric >= 100",
            &[&project_id, &feature],
        )
        .await?
        .try_get(0)?;
    // The statistics autovacuum would have gathered after such a load (the planner walks the
    // entity index only when it knows the entity is large); untimed. On a server with autovacuum
    // off, as on the development machines, nothing else would.
    client.batch_execute("ANALYZE rm.records").await?;
    eprintln!(
        "W11: {records} records loaded in {loaded:.1} s ({:.0}/s), {matching} match",
        records as f64 / loaded
    );
    let list_path: Arc<str> = list_path.into();
    let mut figures = Vec::new();
    for &c in clients {
        let workers = (0..c)
            .map(|_| {
                Ok(RawList {
                    pool: raw_pool.clone(),
                    statement: w11_statement(project_id, feature)?,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        let raw = workload::run(workers, warmup, window, probe.clone()).await?;
        let workers = (0..c)
            .map(|_| List {
                api: api.clone(),
                path: list_path.clone(),
            })
            .collect();
        let h = workload::run(workers, warmup, window, probe.clone()).await?;
        let mut f = Figure::throughput(
            "W11",
            format!("GET …/data/{{plural}}?{W11_QUERY}"),
            "requests/s",
            c,
            &summarise(&[&h]),
        );
        f.error_samples = h.error_samples.clone();
        f.baseline(
            "the same SELECT, raw",
            &w11_statement(project_id, feature)?.sql,
            &summarise(&[&raw]),
            false,
        );
        for e in &raw.error_samples {
            f.error_samples.push(format!("(raw) {e}"));
        }
        let ratio = f.baselines[0].ratio;
        let p99 = f.p99_ms.unwrap_or(f64::INFINITY);
        f.goal(
            format!("W11 >= 0.5 x raw (ratio {ratio:.2}) and p99 <= 50 ms ({p99:.1})"),
            ratio >= 0.5 && p99 <= 50.0,
        );
        f.note = Some(format!(
            "{records} records loaded by {load_clients} concurrent POSTs in {loaded:.1} s, then \
             ANALYZE rm.records (untimed); {matching} ({:.1} %) match the filter",
            matching as f64 * 100.0 / records as f64
        ));
        eprintln!(
            "W11 {c} clients: {:.0} requests/s p99 {p99:.1} ms, raw {:.0}/s",
            f.value, f.baselines[0].value
        );
        figures.push(f);
    }
    Ok(figures)
}
