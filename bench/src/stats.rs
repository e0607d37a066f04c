//! Summaries of runs: events per second and latency percentiles.

use serde::Serialize;

use crate::cpu;
use crate::workload::RunResult;

/// The figures reported for one run, or for all runs of a workload together.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub events: u64,
    pub errors: u64,
    pub warmup_errors: u64,
    pub seconds: f64,
    pub events_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    /// CPU during the windows (Linux only).
    pub cpu: Option<cpu::Usage>,
}

/// Summarises runs as one: throughput over their summed windows, percentiles over every latency.
pub fn summarise(runs: &[&RunResult]) -> Summary {
    let events: u64 = runs.iter().map(|r| r.ops).sum();
    let seconds: f64 = runs.iter().map(|r| r.window.as_secs_f64()).sum();
    let mut latencies: Vec<u32> = runs
        .iter()
        .flat_map(|r| r.latencies_us.iter().copied())
        .collect();
    latencies.sort_unstable();
    let mean_us = if latencies.is_empty() {
        0.0
    } else {
        latencies.iter().map(|&l| f64::from(l)).sum::<f64>() / latencies.len() as f64
    };
    let cpu = runs
        .iter()
        .map(|r| r.cpu)
        .collect::<Option<Vec<_>>>()
        .and_then(|deltas| {
            deltas
                .into_iter()
                .reduce(|mut sum, d| {
                    sum += d;
                    sum
                })?
                .usage(events)
        });
    Summary {
        events,
        errors: runs.iter().map(|r| r.errors).sum(),
        warmup_errors: runs.iter().map(|r| r.warmup_errors).sum(),
        seconds,
        events_per_sec: if seconds > 0.0 {
            events as f64 / seconds
        } else {
            0.0
        },
        p50_ms: percentile(&latencies, 50.0) / 1000.0,
        p99_ms: percentile(&latencies, 99.0) / 1000.0,
        max_ms: latencies.last().map_or(0.0, |&l| f64::from(l)) / 1000.0,
        mean_ms: mean_us / 1000.0,
        cpu,
    }
}

/// The nearest-rank percentile of sorted values (0 when there are none).
pub fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    f64::from(sorted[index])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7], 99.0), 7.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn runs_add_up() {
        let a = RunResult {
            window: Duration::from_secs(2),
            ops: 100,
            errors: 1,
            latencies_us: vec![1000; 100],
            ..RunResult::default()
        };
        let b = RunResult {
            window: Duration::from_secs(2),
            ops: 300,
            latencies_us: vec![3000; 300],
            ..RunResult::default()
        };
        let s = summarise(&[&a, &b]);
        assert!(s.cpu.is_none(), "no CPU figures unless every run has them");
        assert_eq!(s.events, 400);
        assert_eq!(s.errors, 1);
        assert_eq!(s.events_per_sec, 100.0);
        assert_eq!(s.p50_ms, 3.0);
        assert_eq!(s.p99_ms, 3.0);
    }

    #[test]
    fn cpu_figures_add_up_across_runs() {
        let delta = cpu::Delta {
            host_busy: 300,
            host_total: 400,
            cpus: 2,
            bench: 50,
            server: Some(200),
            child: None,
        };
        let run = RunResult {
            window: Duration::from_secs(2),
            ops: 1000,
            cpu: Some(delta),
            ..RunResult::default()
        };
        let s = summarise(&[&run, &run]);
        let cpu = s.cpu.expect("cpu");
        assert_eq!(cpu.postgres_pct, Some(100.0));
        assert_eq!(cpu.postgres_ms_per_1k_events, Some(2000.0));
    }
}
