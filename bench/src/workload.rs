//! The timed runner: N tasks loop on one operation, a warm-up, then a measured window.

use std::future::Future;
use std::time::Duration;

use tokio::time::{Instant, sleep_until};

use crate::cpu;

/// One concurrent client of a workload: its `step` writes one event.
pub trait Worker: Send + 'static {
    fn step(&mut self) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// What one run of a workload measured. Only operations that completed inside the measured window
/// count; an operation that fails counts as an error, never as throughput.
#[derive(Debug, Default, Clone)]
pub struct RunResult {
    /// Length of the measured window.
    pub window: Duration,
    /// Successful operations completed in the window.
    pub ops: u64,
    /// Failed operations completed in the window.
    pub errors: u64,
    /// Failed operations during the warm-up.
    pub warmup_errors: u64,
    /// Successful operations of the whole run: warm-up, window and those still in flight at its end.
    pub all_ops: u64,
    /// CPU spent during the window (Linux only).
    pub cpu: Option<cpu::Delta>,
    /// Latency of every successful operation of the window, in microseconds.
    pub latencies_us: Vec<u32>,
    /// The first few distinct error messages.
    pub error_samples: Vec<String>,
}

impl RunResult {
    fn merge(&mut self, other: RunResult) {
        self.ops += other.ops;
        self.errors += other.errors;
        self.warmup_errors += other.warmup_errors;
        self.all_ops += other.all_ops;
        self.latencies_us.extend(other.latencies_us);
        for sample in other.error_samples {
            note_error(&mut self.error_samples, sample);
        }
    }
}

const MAX_ERROR_SAMPLES: usize = 5;

fn note_error(samples: &mut Vec<String>, message: String) {
    if samples.len() < MAX_ERROR_SAMPLES && !samples.contains(&message) {
        samples.push(message);
    }
}

/// Runs every worker on its own task: `warmup`, then `window` measured, with `probe` reading CPU
/// counters at both ends of the window. Tasks stop starting
/// operations at the end of the window; operations still in flight then are not counted.
pub async fn run<W: Worker>(
    workers: Vec<W>,
    warmup: Duration,
    window: Duration,
    probe: cpu::Probe,
) -> anyhow::Result<RunResult> {
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + window;
    let cpu_probe = tokio::spawn(async move {
        sleep_until(measure_from).await;
        let first = probe.snapshot().await?;
        sleep_until(end).await;
        let last = probe.snapshot().await?;
        Some(first.until(&last))
    });
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|mut worker| {
            tokio::spawn(async move {
                let mut result = RunResult {
                    latencies_us: Vec::with_capacity(16 * 1024),
                    ..RunResult::default()
                };
                loop {
                    let t0 = Instant::now();
                    if t0 >= end {
                        break;
                    }
                    let outcome = worker.step().await;
                    let t1 = Instant::now();
                    let measured = t1 >= measure_from && t1 < end;
                    if outcome.is_ok() {
                        result.all_ops += 1;
                    }
                    match outcome {
                        Ok(()) if measured => {
                            result.ops += 1;
                            let us = (t1 - t0).as_micros();
                            result
                                .latencies_us
                                .push(u32::try_from(us).unwrap_or(u32::MAX));
                        }
                        Ok(()) => {}
                        Err(error) => {
                            if measured {
                                result.errors += 1;
                            } else if t1 < measure_from {
                                result.warmup_errors += 1;
                            }
                            note_error(&mut result.error_samples, format!("{error:#}"));
                        }
                    }
                }
                result
            })
        })
        .collect();
    let mut total = RunResult {
        window,
        ..RunResult::default()
    };
    for task in tasks {
        total.merge(task.await?);
    }
    total.cpu = cpu_probe.await?;
    Ok(total)
}
