//! The suite's report: one row per figure, its baselines and ratios, the goals; table and JSON.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::report::Machine;
use crate::stats::Summary;

#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    pub name: String,
    /// The statement(s) the baseline runs, verbatim.
    pub sql: String,
    pub value: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub ops: u64,
    pub errors: u64,
    /// Figure / baseline for throughput; baseline p50 / figure p50 for latency (1.0 = as fast).
    pub ratio: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub id: &'static str,
    pub name: String,
    pub clients: usize,
    pub unit: &'static str,
    pub value: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Successful operations in the measured window(s).
    pub ops: u64,
    /// Failed operations (window and warm-up); never counted as throughput.
    pub errors: u64,
    pub baselines: Vec<Baseline>,
    pub goal: Option<String>,
    pub goal_met: Option<bool>,
    /// The load generator's own CPU in % of one core during the window, and per 1,000 operations.
    pub bench_cpu_pct: Option<f64>,
    pub bench_cpu_ms_per_1k: Option<f64>,
    /// The `backforge serve` child's CPU per 1,000 operations, and PostgreSQL's.
    pub serve_cpu_ms_per_1k: Option<f64>,
    pub postgres_cpu_ms_per_1k: Option<f64>,
    pub note: Option<String>,
    pub error_samples: Vec<String>,
}

impl Figure {
    pub fn new(id: &'static str, name: impl Into<String>, unit: &'static str) -> Self {
        Self {
            id,
            name: name.into(),
            clients: 1,
            unit,
            value: 0.0,
            p50_ms: None,
            p99_ms: None,
            ops: 0,
            errors: 0,
            baselines: Vec::new(),
            goal: None,
            goal_met: None,
            bench_cpu_pct: None,
            bench_cpu_ms_per_1k: None,
            serve_cpu_ms_per_1k: None,
            postgres_cpu_ms_per_1k: None,
            note: None,
            error_samples: Vec::new(),
        }
    }

    /// A closed-loop throughput figure from a summary.
    pub fn throughput(
        id: &'static str,
        name: impl Into<String>,
        unit: &'static str,
        clients: usize,
        s: &Summary,
    ) -> Self {
        let mut f = Self::new(id, name, unit);
        f.clients = clients;
        f.value = s.events_per_sec;
        f.p50_ms = Some(s.p50_ms);
        f.p99_ms = Some(s.p99_ms);
        f.ops = s.events;
        f.errors = s.errors + s.warmup_errors;
        if let Some(c) = &s.cpu {
            f.bench_cpu_pct = Some(c.bench_pct);
            f.bench_cpu_ms_per_1k = Some(c.bench_ms_per_1k_events);
            f.serve_cpu_ms_per_1k = c.serve_ms_per_1k_events;
            f.postgres_cpu_ms_per_1k = c.postgres_ms_per_1k_events;
        }
        f
    }

    pub fn baseline(
        &mut self,
        name: impl Into<String>,
        sql: impl Into<String>,
        s: &Summary,
        latency: bool,
    ) {
        let ratio = if latency {
            if s.p50_ms > 0.0 {
                s.p50_ms / self.p50_ms.unwrap_or(f64::INFINITY).max(f64::EPSILON)
            } else {
                0.0
            }
        } else if s.events_per_sec > 0.0 {
            self.value / s.events_per_sec
        } else {
            0.0
        };
        self.baselines.push(Baseline {
            name: name.into(),
            sql: sql.into(),
            value: s.events_per_sec,
            p50_ms: Some(s.p50_ms),
            p99_ms: Some(s.p99_ms),
            ops: s.events,
            errors: s.errors + s.warmup_errors,
            ratio,
        });
    }

    pub fn goal(&mut self, text: impl Into<String>, met: bool) {
        self.goal = Some(text.into());
        self.goal_met = Some(met);
    }

    /// Ran and produced numbers.
    pub fn produced(&self) -> bool {
        self.value > 0.0 && self.value.is_finite() && self.baselines.iter().all(|b| b.value > 0.0)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SuiteConfig {
    pub quick: bool,
    pub pool_size: usize,
    pub warmup_secs: f64,
    pub window_secs: f64,
    pub projects: usize,
    pub w4_events: usize,
    pub target: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SuiteReport {
    pub benchmark: &'static str,
    pub started_at: String,
    pub machine: Machine,
    pub config: SuiteConfig,
    pub figures: Vec<Figure>,
    pub goals_met: usize,
    pub goals_missed: usize,
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
}

impl SuiteReport {
    pub fn table(&self) -> String {
        let m = &self.machine;
        let c = &self.config;
        let mut out = format!(
            "Backforge benchmark suite{}: pool {}, {:.1} s warm-up + {:.1} s window per closed-loop run, target {}\n\
             machine: {} cores, PostgreSQL {}, synchronous_commit={}, fsync={}, autovacuum={}, git {}\n\n",
            if c.quick { " (--quick)" } else { "" },
            c.pool_size,
            c.warmup_secs,
            c.window_secs,
            c.target,
            m.cores,
            m.server_version,
            m.synchronous_commit,
            m.fsync,
            m.autovacuum,
            m.git_commit
        );
        out.push_str(&format!(
            "{:<3} {:<44} {:>4} {:>11} {:<10} {:>8} {:>8} {:>6} {:>6} {:>7} {:>7}  {}\n",
            "id",
            "figure",
            "cli",
            "value",
            "unit",
            "p50 ms",
            "p99 ms",
            "errors",
            "gen%",
            "gen/1k",
            "srv/1k",
            "goal"
        ));
        for f in &self.figures {
            let goal = match (&f.goal, f.goal_met) {
                (Some(g), Some(true)) => format!("{g}: met"),
                (Some(g), Some(false)) => format!("{g}: MISSED"),
                _ => String::new(),
            };
            out.push_str(&format!(
                "{:<3} {:<44} {:>4} {:>11.1} {:<10} {:>8} {:>8} {:>6} {:>6} {:>7} {:>7}  {}\n",
                f.id,
                f.name,
                f.clients,
                f.value,
                f.unit,
                opt(f.p50_ms, 2),
                opt(f.p99_ms, 2),
                f.errors,
                opt(f.bench_cpu_pct, 0),
                opt(f.bench_cpu_ms_per_1k, 0),
                opt(f.serve_cpu_ms_per_1k, 0),
                goal
            ));
            for b in &f.baselines {
                out.push_str(&format!(
                    "    {:<44} {:>4} {:>11.1} {:<10} {:>8} {:>8} {:>6}   ratio {:.2}\n",
                    format!("baseline: {}", b.name),
                    f.clients,
                    b.value,
                    f.unit,
                    opt(b.p50_ms, 2),
                    opt(b.p99_ms, 2),
                    b.errors,
                    b.ratio
                ));
            }
            if let Some(note) = &f.note {
                out.push_str(&format!("    note: {note}\n"));
            }
            for e in &f.error_samples {
                out.push_str(&format!("    error: {e}\n"));
            }
        }
        out.push_str(&format!(
            "\ngoals: {} met, {} missed. gen% = the load generator's own CPU (% of one core); gen/1k, srv/1k = CPU ms per 1,000 operations of the generator and of `backforge serve`.\n",
            self.goals_met, self.goals_missed
        ));
        out
    }

    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(path, serde_json::to_string_pretty(self)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))
    }
}
