//! CPU accounting from Linux's /proc: the host, this process and the server's processes, per run.
//!
//! Client and server share the machine, so events/s depends on the CPU each side spends per event
//! and on what else runs; these figures make both visible. Server figures count the backends of the
//! benchmark database and the server's own processes (WAL writer, checkpointer, ...), not the
//! backends of other databases; they are absent when the server is not on this host, and all
//! figures are absent elsewhere than Linux.

use std::collections::HashMap;
use std::fs;
use std::sync::Arc;

use serde::Serialize;
use tokio_postgres::Client;

/// Cumulative CPU counters at one instant, in clock ticks.
#[derive(Debug, Clone)]
pub struct Snapshot {
    host_busy: u64,
    host_total: u64,
    cpus: u64,
    own: u64,
    /// The `backforge serve` child, when one is watched.
    child: Option<u64>,
    /// The server processes found on this host, by pid; `None` when there were none.
    server: Option<HashMap<u32, u64>>,
}

/// CPU spent between two snapshots, in clock ticks.
#[derive(Debug, Clone, Copy)]
pub struct Delta {
    pub host_busy: u64,
    pub host_total: u64,
    pub cpus: u64,
    pub bench: u64,
    pub server: Option<u64>,
    /// The watched `backforge serve` child, if any.
    pub child: Option<u64>,
}

impl std::ops::AddAssign for Delta {
    fn add_assign(&mut self, o: Delta) {
        self.host_busy += o.host_busy;
        self.host_total += o.host_total;
        self.cpus = self.cpus.max(o.cpus);
        self.bench += o.bench;
        self.server = match (self.server, o.server) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        self.child = match (self.child, o.child) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
    }
}

/// CPU use of a run, in percent of one core (200 = two cores busy), and per 1,000 events.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    pub host_busy_pct: f64,
    pub bench_pct: f64,
    /// The benchmark database's backends and the server's own processes.
    pub postgres_pct: Option<f64>,
    /// Busy time of everything else on the host (other builds, tests, other databases).
    pub other_pct: Option<f64>,
    pub bench_ms_per_1k_events: f64,
    pub postgres_ms_per_1k_events: Option<f64>,
    /// The `backforge serve` child (suite only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serve_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serve_ms_per_1k_events: Option<f64>,
}

impl Delta {
    /// `events` completed while the counters ran.
    pub fn usage(&self, events: u64) -> Option<Usage> {
        if self.host_total == 0 || self.cpus == 0 {
            return None;
        }
        // /proc/stat's total advances `cpus` ticks per tick of wall time, so this needs no CLK_TCK.
        let wall_ticks = self.host_total as f64 / self.cpus as f64;
        let pct = |ticks: u64| 100.0 * ticks as f64 / wall_ticks;
        // Milliseconds of CPU per 1,000 events, with the tick length taken as 10 ms (USER_HZ = 100).
        let per_1k = |ticks: u64| {
            if events == 0 {
                0.0
            } else {
                ticks as f64 * 10.0 * 1000.0 / events as f64
            }
        };
        Some(Usage {
            host_busy_pct: pct(self.host_busy),
            bench_pct: pct(self.bench),
            postgres_pct: self.server.map(pct),
            other_pct: self.server.map(|s| {
                pct(self
                    .host_busy
                    .saturating_sub(self.bench + s + self.child.unwrap_or(0)))
            }),
            bench_ms_per_1k_events: per_1k(self.bench),
            postgres_ms_per_1k_events: self.server.map(per_1k),
            serve_pct: self.child.map(pct),
            serve_ms_per_1k_events: self.child.map(per_1k),
        })
    }
}

/// Takes snapshots for one database: asks the server which processes serve it, then reads /proc.
#[derive(Clone)]
pub struct Probe {
    client: Arc<Client>,
    child: Option<u32>,
}

impl Probe {
    /// `client` is connected to the benchmark database.
    pub fn new(client: Arc<Client>) -> Self {
        Self {
            client,
            child: None,
        }
    }

    /// Also counts the CPU of process `pid` (the `backforge serve` child).
    pub fn with_child(mut self, pid: Option<u32>) -> Self {
        self.child = pid;
        self
    }

    pub async fn snapshot(&self) -> Option<Snapshot> {
        let pids: Vec<u32> = match self
            .client
            .query(
                "SELECT pid FROM pg_stat_activity \
                 WHERE datname = current_database() OR datname IS NULL",
                &[],
            )
            .await
        {
            Ok(rows) => rows
                .iter()
                .filter_map(|r| r.get::<_, Option<i32>>(0))
                .filter_map(|p| u32::try_from(p).ok())
                .collect(),
            Err(_) => Vec::new(),
        };
        let child = self.child;
        tokio::task::spawn_blocking(move || {
            let mut snapshot = Snapshot::take(&pids)?;
            snapshot.child = child.and_then(|pid| {
                let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                Some(process_ticks(&stat)?.1)
            });
            Some(snapshot)
        })
        .await
        .ok()?
    }
}

impl Snapshot {
    /// Reads the counters of the host, this process and the `postgres` processes among
    /// `server_pids`; `None` where /proc is not Linux's.
    pub fn take(server_pids: &[u32]) -> Option<Self> {
        let stat = fs::read_to_string("/proc/stat").ok()?;
        let mut lines = stat.lines();
        let fields: Vec<u64> = lines
            .next()?
            .strip_prefix("cpu ")?
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is already in user).
        let total: u64 = fields.iter().take(8).sum();
        let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
        let cpus = lines
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .count() as u64;
        let own = process_ticks(&fs::read_to_string("/proc/self/stat").ok()?)?.1;
        let server: HashMap<u32, u64> = server_pids
            .iter()
            .filter_map(|&pid| {
                let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                let (comm, ticks) = process_ticks(&stat)?;
                (comm == "postgres").then_some((pid, ticks))
            })
            .collect();
        Some(Self {
            host_busy: total.saturating_sub(idle),
            host_total: total,
            cpus,
            own,
            child: None,
            server: (!server.is_empty()).then_some(server),
        })
    }

    /// What was spent from `self` to `later`. A server process that started in between counts
    /// with everything it spent; one that ended in between is missed.
    pub fn until(&self, later: &Snapshot) -> Delta {
        let server = match (&self.server, &later.server) {
            (Some(before), Some(after)) => Some(
                after
                    .iter()
                    .map(|(pid, &t)| t.saturating_sub(before.get(pid).copied().unwrap_or(0)))
                    .sum(),
            ),
            _ => None,
        };
        Delta {
            host_busy: later.host_busy.saturating_sub(self.host_busy),
            host_total: later.host_total.saturating_sub(self.host_total),
            cpus: later.cpus,
            bench: later.own.saturating_sub(self.own),
            server,
            child: match (self.child, later.child) {
                (Some(a), Some(b)) => Some(b.saturating_sub(a)),
                _ => None,
            },
        }
    }
}

/// The command name and utime + stime of a `/proc/<pid>/stat` line.
fn process_ticks(stat: &str) -> Option<(&str, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?;
    let rest: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_stat_line() {
        let line = "26294 (post gres) R 26290 26290 10304 0 -1 4194304 98 0 0 0 7 5 0 0 20 0 1 0";
        assert_eq!(process_ticks(line), Some(("post gres", 12)));
    }

    #[test]
    fn usage_in_percent_of_a_core() {
        let d = Delta {
            host_busy: 300,
            host_total: 400,
            cpus: 2,
            bench: 50,
            server: Some(200),
            child: None,
        };
        let u = d.usage(1000).expect("usage");
        assert_eq!(u.host_busy_pct, 150.0);
        assert_eq!(u.bench_pct, 25.0);
        assert_eq!(u.postgres_pct, Some(100.0));
        assert_eq!(u.other_pct, Some(25.0));
        assert_eq!(u.postgres_ms_per_1k_events, Some(2000.0));
    }

    #[test]
    fn sees_this_process() {
        if let Some(s) = Snapshot::take(&[]) {
            assert!(s.cpus >= 1);
            assert!(s.server.is_none());
        }
    }
}
