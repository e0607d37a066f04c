//! The `append` benchmark: sets up a fresh database, alternates workloads (a) and (b), reports.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::Pool;
use domain::Upcasters;
use event_store::testkit::TestDatabase;
use event_store::{EventStore, PgEventStore, setup};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_postgres::{Client, NoTls};

use crate::args::AppendArgs;
use crate::backforge::StoreAppend;
use crate::baseline::{self, RawInsert};
use crate::cpu;
use crate::report::{self, Config, Machine, Report, Run, TableBytes, Workloads};
use crate::stats::summarise;
use crate::workload::{self, RunResult};

/// Concurrent clients of each workload.
pub const TASKS: usize = 32;
/// Connections in each workload's pool.
pub const POOL_SIZE: usize = 32;
/// Each workload runs this many times, alternating a, b, a, b.
pub const ROUNDS: usize = 2;

pub async fn run(args: &AppendArgs) -> anyhow::Result<()> {
    let started_at = OffsetDateTime::now_utc().format(&Rfc3339)?;
    let db = TestDatabase::create()
        .await
        .context("cannot create the benchmark database")?;
    eprintln!("database {} created", db.name);
    // Everything that uses the database runs before `db` drops it.
    let report = measure(&db, args, started_at).await;
    drop(db);
    let report = report?;
    print!("{}", report.table());
    report.write_json(&args.out)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

async fn measure(
    db: &TestDatabase,
    args: &AppendArgs,
    started_at: String,
) -> anyhow::Result<Report> {
    setup::migrate(&db.url).await?;
    let (client, connection) = tokio_postgres::connect(&db.url, NoTls).await?;
    let driver = tokio::spawn(connection);
    let client = Arc::new(client);
    let probe = cpu::Probe::new(client.clone());
    let machine = Machine::read(&client).await?;
    baseline::create_table(&client).await?;
    let indexes = baseline::index_shapes(&client, "public").await?;
    let baseline_indexes = baseline::index_shapes(&client, "baseline").await?;
    anyhow::ensure!(
        indexes == baseline_indexes,
        "the baseline table is not indexed like events: {indexes:?} vs {baseline_indexes:?}"
    );

    let raw_pool = setup::pool(&db.url, POOL_SIZE)?;
    let store_pool = setup::pool(&db.url, POOL_SIZE)?;
    let store: Arc<dyn EventStore> = Arc::new(PgEventStore::new(
        store_pool.clone(),
        Arc::new(Upcasters::backforge()),
    ));

    let (warmup, window) = (args.warmup(), args.duration());
    let mut a_runs: Vec<RunResult> = Vec::new();
    let mut b_runs: Vec<RunResult> = Vec::new();
    let mut runs = Vec::new();
    for round in 1..=ROUNDS {
        let workers = (0..TASKS)
            .map(|t| RawInsert::new(raw_pool.clone(), format!("raw-{round}-{t}")))
            .collect();
        let before = commits(&client).await?;
        let a = workload::run::<RawInsert>(workers, warmup, window, probe.clone()).await?;
        release(&raw_pool).await;
        progress(round, report::NAME_A, &a);
        runs.push(Run {
            round,
            workload: report::NAME_A,
            server_commits_per_event: per_event(commits(&client).await? - before, a.all_ops),
            summary: summarise(&[&a]),
        });
        a_runs.push(a);

        let workers = (0..TASKS)
            .map(|t| StoreAppend::new(store.clone(), format!("bench-{round}-{t}")))
            .collect();
        let before = commits(&client).await?;
        let b = workload::run::<StoreAppend>(workers, warmup, window, probe.clone()).await?;
        release(&store_pool).await;
        progress(round, report::NAME_B, &b);
        runs.push(Run {
            round,
            workload: report::NAME_B,
            server_commits_per_event: per_event(commits(&client).await? - before, b.all_ops),
            summary: summarise(&[&b]),
        });
        b_runs.push(b);
    }

    let size = async |table: &str| -> anyhow::Result<i64> {
        let row = client
            .query_one(
                "SELECT pg_total_relation_size($1::text::regclass)",
                &[&table],
            )
            .await?;
        Ok(row.get(0))
    };
    let table_bytes = TableBytes {
        raw_insert: size(baseline::TABLE).await?,
        backforge_append: size("public.events").await?,
    };
    raw_pool.close();
    store_pool.close();
    drop(probe);
    drop(client);
    driver.abort();

    let total = Workloads {
        raw_insert: summarise(&a_runs.iter().collect::<Vec<_>>()),
        backforge_append: summarise(&b_runs.iter().collect::<Vec<_>>()),
    };
    let ratio = if total.raw_insert.events_per_sec > 0.0 {
        total.backforge_append.events_per_sec / total.raw_insert.events_per_sec
    } else {
        0.0
    };
    let mut error_samples = Vec::new();
    for (name, r) in a_runs
        .iter()
        .map(|r| ("a", r))
        .chain(b_runs.iter().map(|r| ("b", r)))
    {
        for sample in &r.error_samples {
            let sample = format!("({name}) {sample}");
            if !error_samples.contains(&sample) {
                error_samples.push(sample);
            }
        }
    }
    Ok(Report {
        benchmark: "append",
        started_at,
        machine,
        config: Config {
            tasks: TASKS,
            pool_size: POOL_SIZE,
            warmup_secs: warmup.as_secs_f64(),
            duration_secs: window.as_secs_f64(),
            rounds: ROUNDS,
            quick: args.quick,
            order: "a, b, a, b".to_owned(),
        },
        indexes,
        runs,
        total,
        ratio_b_over_a: ratio,
        goal_ratio: report::GOAL_RATIO,
        goal_met: ratio >= report::GOAL_RATIO,
        table_bytes,
        error_samples,
    })
}

/// Closes a workload's idle connections, so the two pools never hold 64 connections at once
/// (max_connections is often 100, and tests may share the server). The next warm-up reopens them.
/// The pause lets the closed backends exit, which flushes their statistics.
async fn release(pool: &Pool) {
    pool.retain(|_, _| false);
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Transactions the benchmark database has committed so far.
async fn commits(client: &Client) -> anyhow::Result<i64> {
    let row = client
        .query_one(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

fn per_event(commits: i64, events: u64) -> f64 {
    if events == 0 {
        0.0
    } else {
        commits as f64 / events as f64
    }
}

fn progress(round: usize, name: &str, r: &RunResult) {
    let per_sec = r.ops as f64 / r.window.as_secs_f64().max(f64::EPSILON);
    eprintln!(
        "round {round} {name}: {per_sec:.0} events/s, {} errors",
        r.errors + r.warmup_errors
    );
}

/// How long a whole `append` run takes, for the start-up message.
pub fn expected_length(args: &AppendArgs) -> Duration {
    (args.warmup() + args.duration()) * (2 * ROUNDS) as u32
}
