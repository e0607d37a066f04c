//! Process metrics in the Prometheus text format: counters, gauges and latency histograms kept in
//! atomics, so recording costs no lock on the request path.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Upper bounds (seconds) of the request-latency buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; 12],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// Labels of one series, in a stable order.
type Labels = Vec<(&'static str, String)>;

/// All metrics of one process.
#[derive(Default, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    counters: Mutex<BTreeMap<(&'static str, Labels), Arc<AtomicU64>>>,
    gauges: Mutex<BTreeMap<(&'static str, Labels), Arc<AtomicU64>>>,
    histograms: Mutex<BTreeMap<(&'static str, Labels), Arc<Histogram>>>,
    help: Mutex<BTreeMap<&'static str, &'static str>>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn describe(&self, name: &'static str, help: &'static str) {
        if let Ok(mut h) = self.inner.help.lock() {
            h.insert(name, help);
        }
    }

    pub fn inc(&self, name: &'static str, labels: Labels, by: u64) {
        if let Ok(mut map) = self.inner.counters.lock() {
            map.entry((name, labels))
                .or_default()
                .fetch_add(by, Ordering::Relaxed);
        }
    }

    /// Sets a gauge (stored as f64 bits).
    pub fn set(&self, name: &'static str, labels: Labels, value: f64) {
        if let Ok(mut map) = self.inner.gauges.lock() {
            map.entry((name, labels))
                .or_default()
                .store(value.to_bits(), Ordering::Relaxed);
        }
    }

    pub fn observe(&self, name: &'static str, labels: Labels, seconds: f64) {
        let histogram = match self.inner.histograms.lock() {
            Ok(mut map) => map.entry((name, labels)).or_default().clone(),
            Err(_) => return,
        };
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                histogram.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        histogram.count.fetch_add(1, Ordering::Relaxed);
        histogram
            .sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    /// The exposition text served at `/metrics`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let help = self
            .inner
            .help
            .lock()
            .map(|h| h.clone())
            .unwrap_or_default();
        let header = |out: &mut String, name: &str, kind: &str| {
            if let Some(h) = help.get(name) {
                let _ = writeln!(out, "# HELP {name} {h}");
            }
            let _ = writeln!(out, "# TYPE {name} {kind}");
        };
        let fmt_labels = |labels: &Labels, extra: Option<(&str, String)>| {
            let mut parts: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
                .collect();
            if let Some((k, v)) = extra {
                parts.push(format!("{k}=\"{v}\""));
            }
            if parts.is_empty() {
                String::new()
            } else {
                format!("{{{}}}", parts.join(","))
            }
        };
        let mut last = "";
        if let Ok(map) = self.inner.counters.lock() {
            for ((name, labels), v) in map.iter() {
                if *name != last {
                    header(&mut out, name, "counter");
                    last = name;
                }
                let _ = writeln!(
                    out,
                    "{name}{} {}",
                    fmt_labels(labels, None),
                    v.load(Ordering::Relaxed)
                );
            }
        }
        last = "";
        if let Ok(map) = self.inner.gauges.lock() {
            for ((name, labels), v) in map.iter() {
                if *name != last {
                    header(&mut out, name, "gauge");
                    last = name;
                }
                let value = f64::from_bits(v.load(Ordering::Relaxed));
                let _ = writeln!(out, "{name}{} {value}", fmt_labels(labels, None));
            }
        }
        last = "";
        if let Ok(map) = self.inner.histograms.lock() {
            for ((name, labels), h) in map.iter() {
                if *name != last {
                    header(&mut out, name, "histogram");
                    last = name;
                }
                for (i, bound) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "{name}_bucket{} {}",
                        fmt_labels(labels, Some(("le", bound.to_string()))),
                        h.buckets[i].load(Ordering::Relaxed)
                    );
                }
                let count = h.count.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "{name}_bucket{} {count}",
                    fmt_labels(labels, Some(("le", "+Inf".into())))
                );
                let _ = writeln!(
                    out,
                    "{name}_sum{} {}",
                    fmt_labels(labels, None),
                    h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
                );
                let _ = writeln!(out, "{name}_count{} {count}", fmt_labels(labels, None));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_render_in_the_prometheus_text_format() {
        let m = Metrics::new();
        m.describe("backforge_requests_total", "HTTP requests");
        m.inc(
            "backforge_requests_total",
            vec![("status", "200".into())],
            2,
        );
        m.set(
            "backforge_projection_lag_seconds",
            vec![("projection", "read_models".into())],
            0.5,
        );
        m.observe("backforge_request_duration_seconds", vec![], 0.003);
        let text = m.render();
        assert!(text.contains("# HELP backforge_requests_total HTTP requests"));
        assert!(text.contains("backforge_requests_total{status=\"200\"} 2"));
        assert!(text.contains("backforge_projection_lag_seconds{projection=\"read_models\"} 0.5"));
        assert!(text.contains("backforge_request_duration_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("backforge_request_duration_seconds_bucket{le=\"0.001\"} 0"));
        assert!(text.contains("backforge_request_duration_seconds_count 1"));
    }
}
