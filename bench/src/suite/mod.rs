//! The suite: W1-W11 and M1 against `backforge serve` (a child process, or `--url`), each with its
//! raw-PostgreSQL baseline measured in the same run at the same concurrency, pool size and session
//! settings.

mod ai_requests;
mod hostile;
mod http;
mod pg;
mod records;
mod report;
mod sandbox;
mod server;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::Pool;
use domain::Upcasters;
use event_store::testkit::TestDatabase;
use event_store::{EventStore, PgEventStore, ReadUntil, setup};
use futures::{SinkExt, StreamExt};
use read_model::LIVE;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::time::Instant;
use tokio_postgres::NoTls;
use uuid::Uuid;

use crate::args::SuiteArgs;
use crate::baseline;
use crate::cpu;
use crate::report::Machine;
use crate::stats::{percentile, summarise};
use crate::workload;
use http::{AddFeature, Api, Get, feature_name};
use pg::{QueryParams, Templates};
use report::{Figure, SuiteConfig, SuiteReport};

/// The statement `GET /projects/{id}` runs, the W3 baseline: taken from the query API itself, so
/// the two cannot drift apart.
pub const W3_SQL: &str = read_model::rows::PROJECT_WITH_FEATURES_SQL;
/// W5 history baseline: the same 200 rows of one page.
pub const W5_PAGE_SQL: &str = "SELECT position, stream_version, event_id, event_type, schema_version, \
     data, metadata, recorded_at FROM events WHERE stream_id = $1 AND stream_version > $2 \
     ORDER BY stream_version LIMIT 200";
/// W5 as_of_version baseline: the same 1,000 rows the fold reads.
pub const W5_ASOF_SQL: &str = "SELECT position, stream_version, event_id, event_type, schema_version, \
     data, metadata, recorded_at FROM events WHERE stream_id = $1 AND stream_version <= $2 \
     ORDER BY stream_version";
/// W4 baseline: the replayed read-model tables, copied in binary into tables made LIKE them.
pub const W4_TABLES: [&str; read_model::tables::TABLES.len()] = read_model::tables::TABLES;

struct Plan {
    quick: bool,
    projects: usize,
    warmup: Duration,
    window: Duration,
    w1_clients: [usize; 3],
    w3_clients: [usize; 2],
    w2_warmup: Duration,
    w2_window: Duration,
    w4_events: usize,
    w6_generator_runs: usize,
    w6_e2e_runs: usize,
    w7: hostile::W7Plan,
    w8_clients: [usize; 2],
    w9: ai_requests::W9Plan,
    w10_clients: [usize; 3],
    /// W11's records and the concurrent creates that load them.
    w11_records: u64,
    w11_load_clients: usize,
    w11_clients: [usize; 2],
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Plan {
                quick,
                projects: 100,
                warmup: Duration::from_millis(200),
                window: Duration::from_millis(700),
                w1_clients: [1, 8, 32],
                w3_clients: [8, 32],
                w2_warmup: Duration::from_millis(300),
                w2_window: Duration::from_millis(1500),
                w4_events: 20_000,
                w6_generator_runs: 3,
                w6_e2e_runs: 2,
                w7: hostile::W7Plan {
                    rounds: 1,
                    readers: 2,
                    flood: 40,
                },
                w8_clients: [1, 8],
                w9: ai_requests::W9Plan {
                    sequential: 10,
                    sequential_warmup: 2,
                    sequential_poll: Duration::from_millis(1),
                    clients: 8,
                    poll: Duration::from_millis(5),
                    warmup: Duration::from_millis(500),
                    window: Duration::from_millis(1500),
                },
                w10_clients: [1, 8, 32],
                w11_records: 2_000,
                w11_load_clients: 32,
                w11_clients: [1, 8],
            }
        } else {
            Plan {
                quick,
                projects: 1000,
                warmup: Duration::from_secs(2),
                window: Duration::from_secs(8),
                w1_clients: [1, 8, 32],
                w3_clients: [8, 32],
                w2_warmup: Duration::from_secs(2),
                w2_window: Duration::from_secs(10),
                w4_events: 1_000_000,
                w6_generator_runs: 30,
                w6_e2e_runs: 15,
                w7: hostile::W7Plan {
                    rounds: 5,
                    readers: 4,
                    flood: 300,
                },
                w8_clients: [1, 8],
                w9: ai_requests::W9Plan {
                    sequential: 200,
                    sequential_warmup: 10,
                    sequential_poll: Duration::from_millis(1),
                    clients: 8,
                    poll: Duration::from_millis(5),
                    warmup: Duration::from_secs(2),
                    window: Duration::from_secs(8),
                },
                w10_clients: [1, 8, 32],
                w11_records: 100_000,
                w11_load_clients: 32,
                w11_clients: [1, 8],
            }
        }
    }
}

/// Runs the suite; `Ok(false)` when `--quick` found a workload without numbers.
pub async fn run(args: &SuiteArgs) -> anyhow::Result<bool> {
    let started = std::time::Instant::now();
    let started_at = OffsetDateTime::now_utc().format(&Rfc3339)?;
    let plan = Plan::new(args.quick);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Backforge's own default (runtime::Settings): cores × 4, at least 8. Both sides get it.
    let pool_size = std::env::var("BACKFORGE_DB_POOL_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or((cores * 4).max(8));
    let nats_url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let binary = server::binary()?;

    let (db, db_url) = match &args.url {
        Some(_) => (
            None,
            std::env::var("DATABASE_URL")
                .context("--url needs DATABASE_URL: the server's database")?,
        ),
        None => {
            let db = TestDatabase::create()
                .await
                .context("cannot create the benchmark database")?;
            let url = db.url.clone();
            eprintln!("database {} created", db.name);
            (Some(db), url)
        }
    };
    let prefix = server::nats_prefix();
    // W9's model server: in this process, started before `serve` so that its address can be
    // `serve`'s default model (a running server, `--url`, has its own models).
    let provider = if args.runs("W9") && args.url.is_none() {
        Some(ai_requests::Provider::start().await?)
    } else {
        None
    };
    let mut serve = None;
    let result = async {
        let base = match &args.url {
            Some(url) => url.clone(),
            None => {
                let mut env = server::environment(&db_url, &prefix, pool_size);
                if let Some(provider) = &provider {
                    env.extend(provider.environment());
                }
                let s = server::Serve::start(&binary, &env).await?;
                eprintln!(
                    "backforge serve (pid {}) on {}, NATS prefix {prefix}",
                    s.pid(),
                    s.base
                );
                let base = s.base.clone();
                serve = Some(s);
                base
            }
        };
        let pid = serve.as_ref().map(server::Serve::pid);
        let figures = measure(
            &plan,
            args,
            &base,
            &db_url,
            pool_size,
            pid,
            &binary,
            provider.as_ref(),
        )
        .await?;
        anyhow::Ok(figures)
    }
    .await;
    if let Some(mut s) = serve.take() {
        s.kill();
        if result.is_err() {
            eprintln!("serve log: {}", s.log.display());
        } else {
            let _ = std::fs::remove_file(&s.log);
        }
        server::delete_streams(&nats_url, &prefix).await;
    }
    let (figures, machine) = result?;
    drop(db);

    let goals_met = figures.iter().filter(|f| f.goal_met == Some(true)).count();
    let goals_missed = figures.iter().filter(|f| f.goal_met == Some(false)).count();
    let report = SuiteReport {
        benchmark: "suite",
        started_at,
        machine,
        config: SuiteConfig {
            quick: plan.quick,
            pool_size,
            warmup_secs: plan.warmup.as_secs_f64(),
            window_secs: plan.window.as_secs_f64(),
            projects: plan.projects,
            w4_events: plan.w4_events,
            target: args
                .url
                .clone()
                .unwrap_or_else(|| "backforge serve (child)".into()),
        },
        figures,
        goals_met,
        goals_missed,
    };
    print!("{}", report.table());
    report.write_json(&args.out)?;
    eprintln!(
        "wrote {} ({:.1} s)",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    let missing: Vec<String> = report
        .figures
        .iter()
        .filter(|f| !f.produced())
        .map(|f| format!("{} {}", f.id, f.name))
        .collect();
    let mut ok = true;
    for id in crate::args::WORKLOADS.iter().filter(|id| args.runs(id)) {
        if !report.figures.iter().any(|f| f.id == *id) {
            eprintln!("workload {id} produced no figure");
            ok = false;
        }
    }
    if !missing.is_empty() {
        eprintln!("figures without numbers: {}", missing.join(", "));
        ok = false;
    }
    Ok(ok)
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    plan: &Plan,
    args: &SuiteArgs,
    base: &str,
    db_url: &str,
    pool_size: usize,
    pid: Option<u32>,
    binary: &std::path::Path,
    provider: Option<&ai_requests::Provider>,
) -> anyhow::Result<(Vec<Figure>, Machine)> {
    let (client, connection) = tokio_postgres::connect(db_url, NoTls).await?;
    let driver = tokio::spawn(connection);
    let client = Arc::new(client);
    let machine = Machine::read(&client).await?;
    let probe = cpu::Probe::new(client.clone()).with_child(pid);
    client
        .batch_execute("DROP SCHEMA IF EXISTS baseline CASCADE")
        .await?;
    baseline::create_table(&client).await?;
    let store_pool = setup::pool(db_url, pool_size)?;
    let raw_pool = setup::pool(db_url, pool_size)?;
    let store: Arc<dyn EventStore> = Arc::new(PgEventStore::new(
        store_pool.clone(),
        Arc::new(Upcasters::backforge()),
    ));

    // ---- preparation (untimed) ----
    let t = Instant::now();
    let (api, user) = Api::register(base).await?;
    let (body, _) = api
        .write(
            Method::POST,
            "/projects",
            &json!({"name": "Template"}),
            StatusCode::CREATED,
        )
        .await?;
    let template_project: Uuid = body["id"].as_str().context("no project id")?.parse()?;
    let mut feature = http::feature_body(0);
    feature["name"] = json!(pg::TEMPLATE_FEATURE_NAME);
    feature["schema_definition"]["entity"] = json!(pg::TEMPLATE_ENTITY);
    let (body, _) = api
        .write(
            Method::POST,
            &format!("/projects/{template_project}/features"),
            &feature,
            StatusCode::CREATED,
        )
        .await?;
    let template_feature: Uuid = body["id"].as_str().context("no feature id")?.parse()?;
    api.write(
        Method::PUT,
        &format!("/projects/{template_project}/features/{template_feature}"),
        &json!({"name": format!("{} renamed", pg::TEMPLATE_FEATURE_NAME)}),
        StatusCode::OK,
    )
    .await?;
    let templates = Templates::capture(store.as_ref(), template_project, template_feature).await?;
    let projects = Arc::new(create_projects(&api, plan.projects).await?);
    eprintln!(
        "prepared {} projects in {:.1} s",
        projects.len(),
        t.elapsed().as_secs_f64()
    );

    let mut figures = Vec::new();
    let counter = Arc::new(AtomicU64::new(1));

    // ---- W1 ----
    let event = templates.instance(&templates.added, Uuid::new_v4(), Uuid::new_v4(), 0);
    let metadata = serde_json::to_value(&event.metadata)?;
    let mut w1_max: f64 = 0.0;
    let mut w1_ratios: Vec<(usize, f64)> = Vec::new();
    let w1_clients: &[usize] = if args.runs("W1") {
        &plan.w1_clients
    } else {
        &[]
    };
    for &c in w1_clients {
        let workers = (0..c)
            .map(|t| pg::RawInsert {
                pool: raw_pool.clone(),
                stream_id: format!("raw-{c}-{t}"),
                version: 0,
                event: event.clone(),
                metadata: metadata.clone(),
            })
            .collect();
        let a = workload::run(workers, plan.warmup, plan.window, probe.clone()).await?;
        let workers = (0..c)
            .map(|t| pg::StoreAppend {
                store: store.clone(),
                stream_id: format!("project-bench-b-{c}-{t}"),
                version: 0,
                event: event.clone(),
            })
            .collect();
        let b = workload::run(workers, plan.warmup, plan.window, probe.clone()).await?;
        let workers = (0..c)
            .map(|_| AddFeature {
                api: api.clone(),
                projects: projects.clone(),
                counter: counter.clone(),
            })
            .collect();
        let h = workload::run(workers, plan.warmup, plan.window, probe.clone()).await?;
        let mut f = Figure::throughput(
            "W1",
            "add feature (POST /projects/{id}/features)",
            "commands/s",
            c,
            &summarise(&[&h]),
        );
        f.error_samples = h.error_samples.clone();
        f.baseline(
            "(a) one-row INSERT, autocommit",
            baseline::INSERT_SQL,
            &summarise(&[&a]),
            false,
        );
        f.baseline("(b) PgEventStore::append, no HTTP", "PgEventStore::append (INSERT ... SELECT ... FROM unnest(...) WITH ORDINALITY, expected version checked), autocommit", &summarise(&[&b]), false);
        if c == 32 {
            let ratio = f.baselines[0].ratio;
            f.goal(
                format!("W1 >= 0.5 x (a) at 32 clients (ratio {ratio:.2})"),
                ratio >= 0.5,
            );
        }
        for (n, r) in [("a", &a), ("b", &b)] {
            for e in &r.error_samples {
                f.error_samples.push(format!("({n}) {e}"));
            }
        }
        eprintln!(
            "W1 {c} clients: {:.0} commands/s, (a) {:.0}/s, (b) {:.0}/s",
            f.value, f.baselines[0].value, f.baselines[1].value
        );
        w1_max = w1_max.max(f.value);
        w1_ratios.push((c, f.baselines[0].ratio));
        figures.push(f);
    }

    // ---- M1 ----
    if args.runs("M1") {
        let mut m1 = Figure::new("M1", "peak RSS of backforge serve (VmHWM) after W1", "MB");
        match pid.and_then(server::memory_mb) {
            Some((hwm, rss)) => {
                m1.value = hwm;
                m1.note = Some(format!(
                    "VmRSS now {rss:.1} MB; VmHWM covers start-up, preparation and W1"
                ));
                m1.goal(format!("M1 <= 150 MB ({hwm:.1})"), hwm <= 150.0);
            }
            None => {
                m1.note = Some("not measured: no child process (--url) or no /proc".into());
            }
        }
        eprintln!("M1: {:.1} MB", m1.value);
        figures.push(m1);
    }

    // ---- W2 ----
    if args.runs("W2") {
        settle(&api, &projects, &counter, &client).await?;
        let (rate, basis) = match args.w2_rate {
            Some(rate) => (f64::from(rate), "given by --w2-rate"),
            None => (w1_max * 0.5, "half of W1's best"),
        };
        figures.push(w2(plan, &api, &projects, &counter, rate, basis).await?);
    }

    // ---- W3 ----
    settle(&api, &projects, &counter, &client).await?;
    let w3_clients: &[usize] = if args.runs("W3") {
        &plan.w3_clients
    } else {
        &[]
    };
    let paths = Arc::new(
        projects
            .iter()
            .map(|p| format!("/projects/{p}"))
            .collect::<Vec<_>>(),
    );
    let params = Arc::new(
        projects
            .iter()
            .map(|p| QueryParams::TwoUuids(*p, user))
            .collect::<Vec<_>>(),
    );
    for &c in w3_clients {
        let workers = (0..c)
            .map(|t| pg::Query {
                pool: raw_pool.clone(),
                sql: W3_SQL,
                params: params.clone(),
                n: t as u64 * 7919,
                rows: 1,
            })
            .collect();
        let base_run = workload::run(workers, plan.warmup, plan.window, probe.clone()).await?;
        let workers = (0..c)
            .map(|t| Get {
                api: api.clone(),
                paths: paths.clone(),
                n: t as u64 * 7919,
            })
            .collect();
        let h = workload::run(workers, plan.warmup, plan.window, probe.clone()).await?;
        let mut f = Figure::throughput(
            "W3",
            "GET /projects/{id}",
            "requests/s",
            c,
            &summarise(&[&h]),
        );
        f.error_samples = h.error_samples.clone();
        f.baseline(
            "PK SELECT of the read-model project row",
            W3_SQL,
            &summarise(&[&base_run]),
            false,
        );
        let ratio = f.baselines[0].ratio;
        f.goal(
            format!("W3 >= 0.5 x baseline (ratio {ratio:.2})"),
            ratio >= 0.5,
        );
        eprintln!(
            "W3 {c} clients: {:.0} requests/s, baseline {:.0}/s",
            f.value, f.baselines[0].value
        );
        figures.push(f);
    }

    // ---- W5 ----
    if args.runs("W5") {
        figures.extend(w5(plan, &api, &store, &templates, &raw_pool, &probe).await?);
    }

    // ---- W6 ----
    if args.runs("W6") {
        figures.extend(w6(plan, &api, store.as_ref()).await?);
    }

    // ---- W7 ----
    if args.runs("W7") {
        figures.extend(hostile::w7(&plan.w7, &api, base).await?);
    }

    // ---- W8 ----
    if args.runs("W8") {
        sandbox::check_python()?;
        figures.extend(
            sandbox::w8(
                &api,
                base,
                &plan.w8_clients,
                plan.warmup,
                plan.window,
                &probe,
            )
            .await?,
        );
    }

    // ---- W9 ----
    if args.runs("W9") {
        match provider {
            Some(provider) => {
                settle(&api, &projects, &counter, &client).await?;
                figures.extend(ai_requests::w9(&plan.w9, &api, provider, &client, &probe).await?);
            }
            None => {
                let mut f = Figure::new("W9", "AI request -> succeeded", "ms p50");
                f.note = Some(
                    "not measured: a running server (--url) has no model pointing at the bench's provider"
                        .into(),
                );
                figures.push(f);
            }
        }
    }

    // ---- W10, W10u, W11 (issue 19's W7, W7u and the list) ----
    if ["W10", "W10u", "W11"].iter().any(|id| args.runs(id)) {
        settle(&api, &projects, &counter, &client).await?;
        let project = records::project(&api).await?;
        for (id, unique) in [("W10", false), ("W10u", true)] {
            if args.runs(id) {
                figures.extend(
                    records::w10(
                        &api,
                        project,
                        unique,
                        &plan.w10_clients,
                        &w1_ratios,
                        &raw_pool,
                        &event,
                        plan.warmup,
                        plan.window,
                        &probe,
                    )
                    .await?,
                );
            }
        }
        if args.runs("W11") {
            figures.extend(
                records::w11(
                    &api,
                    project,
                    plan.w11_records,
                    plan.w11_load_clients,
                    &plan.w11_clients,
                    &raw_pool,
                    &client,
                    plan.warmup,
                    plan.window,
                    &probe,
                )
                .await?,
            );
        }
    }

    raw_pool.close();
    store_pool.close();
    drop(probe);
    drop(client);
    driver.abort();

    // ---- W4 (a database of its own) ----
    if args.runs("W4") {
        figures.push(w4(plan, &templates, binary, pool_size).await?);
    }
    Ok((figures, machine))
}

/// Waits (untimed) until the projector has caught up with every earlier write: one command, then
/// a read that waits for its position, so no backlog of an earlier workload leaks into the next.
async fn settle(
    api: &Api,
    projects: &Arc<Vec<Uuid>>,
    counter: &Arc<AtomicU64>,
    db: &tokio_postgres::Client,
) -> anyhow::Result<()> {
    let t = Instant::now();
    let command = AddFeature {
        api: api.clone(),
        projects: projects.clone(),
        counter: counter.clone(),
    };
    let (project, position) = command.once().await?;
    for attempt in 0.. {
        match api
            .read(&format!("/projects/{project}"), Some(&position))
            .await
        {
            Ok(_) => break,
            Err(e) if attempt < 24 => eprintln!("waiting for the projector: {e:#}"),
            Err(e) => return Err(e),
        }
    }
    relays_caught_up(db).await?;
    eprintln!(
        "projector and relays caught up in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Waits (untimed, at most a minute) until both NATS relays have published everything written so
/// far: a backlog they publish would take CPU from the next workload.
async fn relays_caught_up(db: &tokio_postgres::Client) -> anyhow::Result<()> {
    let head: (i64, i64) = {
        let row = db
            .query_one(
                "SELECT transaction_id::text::int8, position FROM events
                 ORDER BY transaction_id DESC, position DESC LIMIT 1",
                &[],
            )
            .await?;
        (row.try_get(0)?, row.try_get(1)?)
    };
    for _ in 0..600 {
        let behind: i64 = db
            .query_one(
                "SELECT count(*) FROM relay_checkpoints WHERE (tx, seq) < ($1, $2)",
                &[&head.0, &head.1],
            )
            .await?
            .try_get(0)?;
        if behind == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Creates `n` projects through the API, 8 at a time, and waits until the read model shows each.
async fn create_projects(api: &Api, n: usize) -> anyhow::Result<Vec<Uuid>> {
    let mut created = Vec::with_capacity(n);
    let tasks = 8;
    let mut handles = Vec::new();
    for t in 0..tasks {
        let api = api.clone();
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in (t..n).step_by(tasks) {
                let (body, position) = api
                    .write(
                        Method::POST,
                        "/projects",
                        &json!({"name": format!("Bench project {i}"), "description": "A project of the benchmark."}),
                        StatusCode::CREATED,
                    )
                    .await?;
                let id: Uuid = body["id"].as_str().context("no project id")?.parse()?;
                mine.push((id, position));
            }
            for (id, position) in &mine {
                api.read(&format!("/projects/{id}"), Some(position)).await?;
            }
            anyhow::Ok(mine.into_iter().map(|(id, _)| id).collect::<Vec<_>>())
        }));
    }
    for h in handles {
        created.extend(h.await??);
    }
    Ok(created)
}

/// W2: open-loop commands at `rate`/s, each followed by a read that waits for its position.
async fn w2(
    plan: &Plan,
    api: &Api,
    projects: &Arc<Vec<Uuid>>,
    counter: &Arc<AtomicU64>,
    rate: f64,
    basis: &str,
) -> anyhow::Result<Figure> {
    let rate = rate.max(1.0);
    let command = Arc::new(AddFeature {
        api: api.clone(),
        projects: projects.clone(),
        counter: counter.clone(),
    });
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + plan.w2_warmup;
    let end = measure_from + plan.w2_window;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut handles = Vec::new();
    let mut i: u32 = 0;
    loop {
        let at = start + interval * i;
        if at >= end {
            break;
        }
        tokio::time::sleep_until(at).await;
        let command = command.clone();
        handles.push(tokio::spawn(async move {
            let outcome = async {
                let (n, project, position) = command.numbered().await?;
                let answered = Instant::now();
                let name = serde_json::to_string(&feature_name(n))?;
                command
                    .api
                    .read_showing(&format!("/projects/{project}"), &position, &name)
                    .await?;
                anyhow::Ok((answered, Instant::now()))
            }
            .await;
            (at, outcome)
        }));
        i += 1;
    }
    let (mut lag, mut total, mut cmd) = (Vec::new(), Vec::new(), Vec::new());
    let mut errors = 0u64;
    let mut samples = Vec::new();
    let us = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
    for h in handles {
        let (at, outcome) = h.await?;
        match outcome {
            Ok((answered, read)) if at >= measure_from => {
                lag.push(us(read - answered));
                total.push(us(read - at));
                cmd.push(us(answered - at));
            }
            Ok(_) => {}
            Err(e) => {
                errors += 1;
                let e = format!("{e:#}");
                if samples.len() < 5 && !samples.contains(&e) {
                    samples.push(e);
                }
            }
        }
    }
    for v in [&mut lag, &mut total, &mut cmd] {
        v.sort_unstable();
    }
    let ms = |v: &[u32], p: f64| percentile(v, p) / 1000.0;
    let mut f = Figure::new(
        "W2",
        format!("projection lag at {rate:.0} commands/s (open loop)"),
        "ms p99",
    );
    f.clients = 0;
    f.ops = lag.len() as u64;
    f.errors = errors;
    f.p50_ms = Some(ms(&lag, 50.0));
    f.p99_ms = Some(ms(&lag, 99.0));
    f.value = ms(&lag, 99.0);
    f.note = Some(format!(
        "lag = 2xx of the command -> the read with Backforge-Min-Position answers (includes one GET round trip); \
         from the scheduled send time: command p50 {:.2} / p99 {:.2} ms, command + read p50 {:.2} / p99 {:.2} ms; \
         offered {:.1} commands/s = {basis}",
        ms(&cmd, 50.0),
        ms(&cmd, 99.0),
        ms(&total, 50.0),
        ms(&total, 99.0),
        rate
    ));
    f.error_samples = samples;
    let p99 = f.value;
    f.goal(
        format!("W2 lag p99 <= 50 ms ({p99:.1})"),
        p99 <= 50.0 && f.ops > 0,
    );
    eprintln!(
        "W2: lag p50 {:.2} ms, p99 {p99:.2} ms, {errors} errors",
        f.p50_ms.unwrap_or(0.0)
    );
    Ok(f)
}

/// One W5 read: its name, the API paths, the baseline SQL, its parameters and its row count.
type W5Case = (
    &'static str,
    Vec<String>,
    &'static str,
    Vec<QueryParams>,
    usize,
);

/// W5: a project of 1,001 events (so `as_of_version=1000` folds exactly 1,000), seeded by one
/// append; history pages of 200 and the fold, each against reading the same rows.
async fn w5(
    plan: &Plan,
    api: &Api,
    store: &Arc<dyn EventStore>,
    templates: &Templates,
    raw_pool: &Pool,
    probe: &cpu::Probe,
) -> anyhow::Result<Vec<Figure>> {
    let project = Uuid::new_v4();
    // 1 created + 200 features + 4 × 200 updates = 1,001 events.
    let append = templates.project(project, 200, 4);
    let stream = append.stream_id.clone();
    let outcome = store.append(vec![append]).await?;
    api.read(
        &format!("/projects/{project}"),
        Some(&outcome.position.to_token()),
    )
    .await?;
    let db = raw_pool.get().await?;
    relays_caught_up(&db).await?;
    drop(db);
    let pages = [0i64, 200, 400, 600, 800];
    let mut figures = Vec::new();
    let cases: [W5Case; 2] = [
        (
            "history page (200 events, limit=200)",
            pages
                .iter()
                .map(|k| format!("/projects/{project}/history?after_version={k}&limit=200"))
                .collect(),
            W5_PAGE_SQL,
            pages
                .iter()
                .map(|k| QueryParams::StreamVersion(stream.clone(), *k))
                .collect(),
            200,
        ),
        (
            "as_of_version=1000 (folds 1,000 events)",
            vec![format!("/projects/{project}?as_of_version=1000")],
            W5_ASOF_SQL,
            vec![QueryParams::StreamVersion(stream.clone(), 1000)],
            1000,
        ),
    ];
    for (name, paths, sql, params, rows) in cases {
        let base_run = workload::run(
            vec![pg::Query {
                pool: raw_pool.clone(),
                sql,
                params: Arc::new(params),
                n: 0,
                rows,
            }],
            plan.warmup,
            plan.window,
            probe.clone(),
        )
        .await?;
        let h = workload::run(
            vec![Get {
                api: api.clone(),
                paths: Arc::new(paths),
                n: 0,
            }],
            plan.warmup,
            plan.window,
            probe.clone(),
        )
        .await?;
        let mut f = Figure::throughput("W5", name, "requests/s", 1, &summarise(&[&h]));
        f.error_samples = h.error_samples.clone();
        f.baseline(
            format!("SELECT of the same {rows} rows"),
            sql,
            &summarise(&[&base_run]),
            true,
        );
        let p99 = f.p99_ms.unwrap_or(f64::INFINITY);
        f.goal(format!("W5 p99 <= 20 ms ({p99:.1})"), p99 <= 20.0);
        eprintln!(
            "W5 {name}: p50 {:.2} ms p99 {p99:.2} ms",
            f.p50_ms.unwrap_or(0.0)
        );
        figures.push(f);
    }
    Ok(figures)
}

/// The 20 `crud` entities of W6: each with five fields, each but the first referencing the one before.
fn twenty_entities() -> Vec<Value> {
    (1..=20)
        .map(|i| {
            let mut fields = vec![
                json!({"name": "title", "type": "string", "required": true, "max_length": 120}),
                json!({"name": "amount", "type": "decimal", "precision": 12, "scale": 2, "min": 0}),
                json!({"name": "state", "type": "enum", "values": ["draft", "active", "closed"], "default": "draft"}),
                json!({"name": "notes", "type": "text"}),
                json!({"name": "due_on", "type": "date"}),
            ];
            if i > 1 {
                fields.push(json!({"name": "parent_id", "type": "reference", "references": format!("thing_{:02}", i - 1)}));
            }
            json!({
                "name": format!("Thing {i:02}"),
                "feature_type": "crud",
                "schema_definition": {"entity": format!("thing_{i:02}"), "fields": fields}
            })
        })
        .collect()
}

async fn w6(plan: &Plan, api: &Api, store: &dyn EventStore) -> anyhow::Result<Vec<Figure>> {
    let (body, position) = api
        .write(
            Method::POST,
            "/projects",
            &json!({"name": "Twenty entities", "features": twenty_entities()}),
            StatusCode::CREATED,
        )
        .await?;
    let project: Uuid = body["id"].as_str().context("no project id")?.parse()?;
    api.read(&format!("/projects/{project}"), Some(&position))
        .await?;

    // The generator alone, in-process, on the project state the worker would load.
    let stream = domain::ids::ProjectId::from_uuid(project).stream();
    let loaded: event_store::Loaded<domain::project::Project> =
        event_store::load(store, &stream, ReadUntil::End).await?;
    let mut times = Vec::new();
    let mut bytes = 0;
    for i in 0..=plan.w6_generator_runs {
        let t = std::time::Instant::now();
        let artifact = generator::generate(
            &loaded.state,
            loaded.version,
            domain::generation::Target::PythonFastapi,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let us = t.elapsed().as_micros();
        bytes = std::hint::black_box(artifact).zip.len();
        if i > 0 {
            // The first run warms caches and is not counted.
            times.push(u32::try_from(us).unwrap_or(u32::MAX));
        }
    }
    times.sort_unstable();
    let mut g = Figure::new("W6", "generator alone (20 entities, in-process)", "ms p50");
    g.p50_ms = Some(percentile(&times, 50.0) / 1000.0);
    g.p99_ms = Some(percentile(&times, 99.0) / 1000.0);
    g.value = g.p50_ms.unwrap_or(0.0);
    g.ops = times.len() as u64;
    g.note = Some(format!(
        "{} runs after one warm-up run; ZIP {} bytes",
        times.len(),
        bytes
    ));
    let p50 = g.value;
    g.goal(format!("W6 generator <= 100 ms ({p50:.1})"), p50 <= 100.0);
    eprintln!("W6 generator: p50 {p50:.1} ms");

    // Request -> GenerationCompleted, through the API, the relay, NATS and the worker.
    let mut times = Vec::new();
    let mut errors = 0;
    let mut samples = Vec::new();
    for _ in 0..plan.w6_e2e_runs {
        let t = Instant::now();
        let outcome = async {
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
                    Some("succeeded") => return anyhow::Ok(t.elapsed()),
                    Some("failed") => anyhow::bail!("generation failed: {}", g?["error"]),
                    _ => {}
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "generation {id} unfinished after 60 s"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        .await;
        match outcome {
            Ok(d) => times.push(u32::try_from(d.as_micros()).unwrap_or(u32::MAX)),
            Err(e) => {
                errors += 1;
                samples.push(format!("{e:#}"));
            }
        }
    }
    times.sort_unstable();
    let mut e = Figure::new(
        "W6",
        "request -> GenerationCompleted (end to end)",
        "ms p50",
    );
    e.p50_ms = Some(percentile(&times, 50.0) / 1000.0);
    e.p99_ms = Some(percentile(&times, 99.0) / 1000.0);
    e.value = e.p50_ms.unwrap_or(0.0);
    e.ops = times.len() as u64;
    e.errors = errors;
    e.error_samples = samples;
    e.note = Some(
        "polled every 5 ms with GET /generations/{id} until `succeeded` (verify=false); sequential"
            .into(),
    );
    let p50 = e.value;
    e.goal(
        format!("W6 end-to-end p50 <= 1 s ({p50:.0} ms)"),
        p50 <= 1000.0 && e.ops > 0,
    );
    eprintln!("W6 end to end: p50 {p50:.1} ms, {errors} errors");
    Ok(vec![g, e])
}

/// W4: seed the event mix by batch appends in a database of its own, run `backforge replay`, then
/// COPY the rows it produced into tables made like the read-model tables.
async fn w4(
    plan: &Plan,
    templates: &Templates,
    binary: &std::path::Path,
    pool_size: usize,
) -> anyhow::Result<Figure> {
    let db = TestDatabase::create().await?;
    let result = w4_in(plan, templates, binary, pool_size, &db.url).await;
    drop(db);
    result
}

async fn w4_in(
    plan: &Plan,
    templates: &Templates,
    binary: &std::path::Path,
    pool_size: usize,
    url: &str,
) -> anyhow::Result<Figure> {
    setup::migrate(url).await?;
    let pool = setup::pool(url, 4)?;
    let store: Arc<dyn EventStore> = Arc::new(PgEventStore::new(
        pool.clone(),
        Arc::new(Upcasters::backforge()),
    ));
    // The mix: per project 1 ProjectCreated, 3 FeatureAdded, 6 FeatureUpdated (10 events).
    let projects = plan.w4_events / 10;
    let per_batch = 100;
    let t = Instant::now();
    let batches = projects.div_ceil(per_batch);
    let next = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for _ in 0..2 {
        let (store, templates, next) = (store.clone(), templates.clone(), next.clone());
        handles.push(tokio::spawn(async move {
            loop {
                let b = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) as usize;
                if b >= batches {
                    return anyhow::Ok(());
                }
                let n = per_batch.min(projects - b * per_batch);
                let appends = (0..n)
                    .map(|_| templates.project(Uuid::new_v4(), 3, 2))
                    .collect();
                store.append(appends).await?;
            }
        }));
    }
    for h in handles {
        h.await??;
    }
    let events = projects * 10;
    eprintln!(
        "W4: seeded {events} events in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // `backforge replay`, timed by its own report (it excludes process start and migrations)
    // and by the wall clock.
    let env = server::environment(url, &server::nats_prefix(), pool_size);
    let t = Instant::now();
    let output = tokio::process::Command::new(binary)
        .arg("replay")
        .envs(env)
        .output()
        .await?;
    let wall = t.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "backforge replay failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (replayed, seconds) = parse_replay(&stdout).context("cannot read replay's report")?;

    // The baseline: COPY the same rows into the same tables.
    let (mut client, connection) = tokio_postgres::connect(url, NoTls).await?;
    let driver = tokio::spawn(connection);
    let missing: Vec<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
            &[&LIVE],
        )
        .await?
        .iter()
        .map(|r| r.try_get::<_, String>(0))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|t| !W4_TABLES.contains(&t.as_str()))
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "the read model has tables the W4 baseline does not copy: {}",
        missing.join(", ")
    );
    let mut ddl = String::from("CREATE SCHEMA copy_baseline;");
    for t in W4_TABLES {
        ddl.push_str(&format!(
            "CREATE TABLE copy_baseline.{t} (LIKE {LIVE}.{t} INCLUDING ALL);"
        ));
    }
    client.batch_execute(&ddl).await?;
    let mut data = Vec::new();
    let mut rows = 0i64;
    for t in W4_TABLES {
        let out = client
            .copy_out(&format!("COPY {LIVE}.{t} TO STDOUT (FORMAT binary)"))
            .await?;
        let chunks: Vec<_> = out
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        let count: i64 = client
            .query_one(&format!("SELECT count(*) FROM {LIVE}.{t}"), &[])
            .await?
            .get(0);
        rows += count;
        data.push((t, chunks));
    }
    let t = Instant::now();
    let tx = client.transaction().await?;
    for (table, chunks) in data {
        let sink = tx
            .copy_in(&format!(
                "COPY copy_baseline.{table} FROM STDIN (FORMAT binary)"
            ))
            .await?;
        futures::pin_mut!(sink);
        for chunk in chunks {
            sink.send(chunk).await?;
        }
        sink.finish().await?;
    }
    tx.commit().await?;
    let copy_secs = t.elapsed().as_secs_f64();
    drop(client);
    driver.abort();
    pool.close();

    let mut f = Figure::new(
        "W4",
        format!("backforge replay of {replayed} events"),
        "events/s",
    );
    f.value = replayed as f64 / seconds.max(f64::EPSILON);
    f.ops = replayed;
    let copy_rate = events as f64 / copy_secs.max(f64::EPSILON);
    f.baselines.push(report::Baseline {
        name: format!("COPY of the same {rows} rows into the same tables"),
        sql: W4_TABLES
            .iter()
            .map(|t| format!("COPY copy_baseline.{t} FROM STDIN (FORMAT binary)"))
            .collect::<Vec<_>>()
            .join("; "),
        value: copy_rate,
        p50_ms: None,
        p99_ms: None,
        ops: rows as u64,
        errors: 0,
        ratio: f.value / copy_rate,
    });
    f.note = Some(format!(
        "replay's own clock {seconds:.2} s (wall clock with process start and migrations {wall:.2} s); \
         COPY {copy_secs:.3} s for {rows} rows, one transaction; baseline events/s = events / COPY seconds; \
         mix per project: 1 ProjectCreated, 3 FeatureAdded, 6 FeatureUpdated"
    ));
    let ratio = f.baselines[0].ratio;
    f.goal(
        format!(
            "W4 >= 100,000 events/s ({:.0}) and >= 0.5 x COPY ({ratio:.2})",
            f.value
        ),
        f.value >= 100_000.0 && ratio >= 0.5,
    );
    eprintln!(
        "W4: replay {:.0} events/s, COPY-equivalent {copy_rate:.0} events/s",
        f.value
    );
    Ok(f)
}

/// Reads "replayed N events in S s (...)" from `backforge replay`'s output.
fn parse_replay(stdout: &str) -> Option<(u64, f64)> {
    let line = stdout.lines().find(|l| l.starts_with("replayed "))?;
    let mut words = line.split_whitespace();
    words.next();
    let events = words.next()?.parse().ok()?;
    words.next();
    words.next();
    let seconds = words.next()?.parse().ok()?;
    Some((events, seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_replay_report() {
        assert_eq!(
            parse_replay(
                "replayed 20000 events in 0.31 s (64516 events/s); read models swapped in\n"
            ),
            Some((20000, 0.31))
        );
        assert_eq!(parse_replay("nothing"), None);
    }

    #[test]
    fn twenty_entities_reference_their_predecessor() {
        let e = twenty_entities();
        assert_eq!(e.len(), 20);
        assert_eq!(
            e[19]["schema_definition"]["fields"][5]["references"],
            "thing_19"
        );
    }
}
