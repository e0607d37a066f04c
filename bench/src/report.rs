//! The results: machine facts, the printed table and the JSON file.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use tokio_postgres::Client;

use crate::stats::Summary;

/// The goal: Backforge appends at least half as fast as raw single INSERTs.
pub const GOAL_RATIO: f64 = 0.5;

/// Facts about the machine and server the numbers come from; read, never changed.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub server_version: String,
    pub synchronous_commit: String,
    pub fsync: String,
    pub wal_sync_method: String,
    /// Off on the development machines: tables loaded by a workload have no statistics until the
    /// suite analyzes them (W11 does, untimed).
    pub autovacuum: String,
    pub shared_buffers: String,
    pub max_connections: String,
    pub git_commit: String,
}

impl Machine {
    pub async fn read(client: &Client) -> anyhow::Result<Self> {
        let show = async |name: &str| -> anyhow::Result<String> {
            let row = client
                .query_one("SELECT current_setting($1)", &[&name])
                .await
                .with_context(|| format!("cannot read the server setting {name}"))?;
            Ok(row.get(0))
        };
        Ok(Self {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            server_version: show("server_version").await?,
            synchronous_commit: show("synchronous_commit").await?,
            fsync: show("fsync").await?,
            wal_sync_method: show("wal_sync_method").await?,
            autovacuum: show("autovacuum").await?,
            shared_buffers: show("shared_buffers").await?,
            max_connections: show("max_connections").await?,
            git_commit: git_commit(),
        })
    }
}

fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub tasks: usize,
    pub pool_size: usize,
    pub warmup_secs: f64,
    pub duration_secs: f64,
    pub rounds: usize,
    pub quick: bool,
    pub order: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub round: usize,
    pub workload: &'static str,
    /// Transactions the server committed per successful event over the whole run, warm-up
    /// included (1.0 for one autocommit statement per event; more when anything else commits).
    pub server_commits_per_event: f64,
    #[serde(flatten)]
    pub summary: Summary,
}

#[derive(Debug, Clone, Serialize)]
pub struct Workloads {
    pub raw_insert: Summary,
    pub backforge_append: Summary,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub benchmark: &'static str,
    pub started_at: String,
    pub machine: Machine,
    pub config: Config,
    /// Index definitions of both tables (names and schema stripped): they must be equal.
    pub indexes: Vec<String>,
    pub runs: Vec<Run>,
    pub total: Workloads,
    pub ratio_b_over_a: f64,
    pub goal_ratio: f64,
    pub goal_met: bool,
    /// Sizes after the runs (table plus indexes), in bytes.
    pub table_bytes: TableBytes,
    pub error_samples: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableBytes {
    pub raw_insert: i64,
    pub backforge_append: i64,
}

pub const NAME_A: &str = "(a) raw single INSERT";
pub const NAME_B: &str = "(b) PgEventStore::append";

impl Report {
    /// The human-readable table.
    pub fn table(&self) -> String {
        let m = &self.machine;
        let c = &self.config;
        let mut out = String::new();
        out.push_str(&format!(
            "append benchmark: {} tasks, pool {}, {} rounds of {:.1} s per workload after {:.1} s warm-up ({})\n",
            c.tasks, c.pool_size, c.rounds, c.duration_secs, c.warmup_secs, c.order
        ));
        out.push_str(&format!(
            "machine: {} cores, PostgreSQL {}, synchronous_commit={}, fsync={}, wal_sync_method={}, git {}\n\n",
            m.cores, m.server_version, m.synchronous_commit, m.fsync, m.wal_sync_method, m.git_commit
        ));
        out.push_str(&format!(
            "{:<6} {:<26} {:>10} {:>9} {:>9} {:>9} {:>9} {:>8}\n",
            "round", "workload", "events/s", "p50 ms", "p99 ms", "max ms", "events", "errors"
        ));
        let line = |round: &str, name: &str, s: &Summary| {
            format!(
                "{:<6} {:<26} {:>10.0} {:>9.2} {:>9.2} {:>9.1} {:>9} {:>8}\n",
                round,
                name,
                s.events_per_sec,
                s.p50_ms,
                s.p99_ms,
                s.max_ms,
                s.events,
                s.errors + s.warmup_errors
            )
        };
        for run in &self.runs {
            out.push_str(&line(&run.round.to_string(), run.workload, &run.summary));
        }
        out.push_str(&line("all", NAME_A, &self.total.raw_insert));
        out.push_str(&line("all", NAME_B, &self.total.backforge_append));
        out.push_str(&format!(
            "\nCPU during the windows, % of one core ({} cores = {}%), and CPU ms per 1,000 events:\n",
            m.cores,
            m.cores * 100
        ));
        out.push_str(&format!(
            "{:<6} {:<26} {:>6} {:>6} {:>6} {:>6} {:>9} {:>9} {:>9}\n",
            "round", "workload", "host", "pg", "bench", "other", "pg/1k", "bench/1k", "commits/ev"
        ));
        let cpu_line = |round: &str, name: &str, s: &Summary, commits: Option<f64>| {
            let opt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"));
            let commits = commits.map_or_else(|| "-".to_owned(), |c| format!("{c:.2}"));
            match &s.cpu {
                Some(c) => format!(
                    "{:<6} {:<26} {:>6.0} {:>6} {:>6.0} {:>6} {:>9} {:>9.0} {:>9}\n",
                    round,
                    name,
                    c.host_busy_pct,
                    opt(c.postgres_pct),
                    c.bench_pct,
                    opt(c.other_pct),
                    opt(c.postgres_ms_per_1k_events),
                    c.bench_ms_per_1k_events,
                    commits
                ),
                None => format!("{round:<6} {name:<26} (no /proc)\n"),
            }
        };
        for run in &self.runs {
            out.push_str(&cpu_line(
                &run.round.to_string(),
                run.workload,
                &run.summary,
                Some(run.server_commits_per_event),
            ));
        }
        out.push_str(&cpu_line("all", NAME_A, &self.total.raw_insert, None));
        out.push_str(&cpu_line("all", NAME_B, &self.total.backforge_append, None));
        out.push_str(&format!(
            "\nratio b/a = {:.2} (goal >= {:.2}: {})\n",
            self.ratio_b_over_a,
            self.goal_ratio,
            if self.goal_met { "met" } else { "NOT met" }
        ));
        for sample in &self.error_samples {
            out.push_str(&format!("error: {sample}\n"));
        }
        out
    }

    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("cannot write {}", path.display()))
    }
}
