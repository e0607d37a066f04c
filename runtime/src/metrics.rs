//! Process metrics served at `/metrics`, kept and rendered by `prometheus-client` (OpenMetrics
//! text) behind a small API whose series are named at the call site.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The content type of `render`'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the request-latency buckets.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Labels of one series, in a stable order.
type Labels = Vec<(&'static str, String)>;

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// One metric family: every series of one name.
#[derive(Clone, Debug)]
enum Series {
    Counter(Family<Labels, Counter>),
    Gauge(Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>),
    Histogram(Family<Labels, Histogram, fn() -> Histogram>),
}

/// All metrics of one process.
#[derive(Clone)]
pub struct Metrics {
    families: Arc<Families>,
    registry: Arc<Registry>,
}

/// The families by name, with their help texts; also the registry's one collector.
#[derive(Debug, Default)]
struct Families {
    series: RwLock<BTreeMap<&'static str, Series>>,
    help: RwLock<BTreeMap<&'static str, &'static str>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let families = Arc::new(Families::default());
        let mut registry = Registry::default();
        registry.register_collector(Box::new(families.clone()));
        Self {
            families,
            registry: Arc::new(registry),
        }
    }

    pub fn describe(&self, name: &'static str, help: &'static str) {
        if let Ok(mut h) = self.families.help.write() {
            h.insert(name, help);
        }
    }

    pub fn inc(&self, name: &'static str, labels: Labels, by: u64) {
        if let Some(Series::Counter(family)) =
            self.family(name, || Series::Counter(Family::default()))
        {
            family.get_or_create(&escaped(labels)).inc_by(by);
        }
    }

    /// Sets a gauge.
    pub fn set(&self, name: &'static str, labels: Labels, value: f64) {
        if let Some(Series::Gauge(family)) = self.family(name, || Series::Gauge(Family::default()))
        {
            family.get_or_create(&escaped(labels)).set(value);
        }
    }

    pub fn observe(&self, name: &'static str, labels: Labels, seconds: f64) {
        if let Some(Series::Histogram(family)) = self.family(name, || {
            Series::Histogram(Family::new_with_constructor(
                latency_histogram as fn() -> Histogram,
            ))
        }) {
            family.get_or_create(&escaped(labels)).observe(seconds);
        }
    }

    /// The exposition text served at `/metrics` (`CONTENT_TYPE`).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(%error, "could not render the metrics");
        }
        out
    }

    /// The family `name`, created by `new` on first use. A name used with two kinds keeps the
    /// first; the caller's `if let` then drops the sample.
    fn family(&self, name: &'static str, new: impl FnOnce() -> Series) -> Option<Series> {
        if let Some(series) = self.families.series.read().ok()?.get(name) {
            return Some(series.clone());
        }
        let mut map = self.families.series.write().ok()?;
        Some(map.entry(name).or_insert_with(new).clone())
    }
}

/// Label values as the text format needs them: `\` and `"` escaped, a newline as `\n`
/// (prometheus-client writes values verbatim).
fn escaped(mut labels: Labels) -> Labels {
    for (_, value) in &mut labels {
        if value.contains(['\\', '"', '\n']) {
            *value = value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
        }
    }
    labels
}

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(help) = self.help.read().map(|h| h.clone()) else {
            return Ok(());
        };
        let Ok(series) = self.series.read().map(|s| s.clone()) else {
            return Ok(());
        };
        for (name, series) in series {
            let text = help.get(name).copied().unwrap_or("");
            match &series {
                // OpenMetrics names the family without `_total` and the encoder appends it to
                // every sample, so the series keep the names the callers gave them.
                Series::Counter(family) => {
                    let family_name = name.strip_suffix("_total").unwrap_or(name);
                    let metric =
                        encoder.encode_descriptor(family_name, text, None, family.metric_type())?;
                    family.encode(metric)?;
                }
                Series::Gauge(family) => {
                    let metric =
                        encoder.encode_descriptor(name, text, None, family.metric_type())?;
                    family.encode(metric)?;
                }
                Series::Histogram(family) => {
                    let metric =
                        encoder.encode_descriptor(name, text, None, family.metric_type())?;
                    family.encode(metric)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_render_in_the_openmetrics_text_format() {
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
        assert!(
            text.contains("# HELP backforge_requests HTTP requests\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE backforge_requests counter\n"),
            "{text}"
        );
        assert!(
            text.contains("backforge_requests_total{status=\"200\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("backforge_projection_lag_seconds{projection=\"read_models\"} 0.5\n"),
            "{text}"
        );
        assert!(
            text.contains("backforge_request_duration_seconds_bucket{le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("backforge_request_duration_seconds_bucket{le=\"0.001\"} 0\n"),
            "{text}"
        );
        // A series without labels renders `{}`, which the text format allows.
        assert!(
            text.contains("backforge_request_duration_seconds_count{} 1\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new();
        m.inc("backforge_odd_total", vec![("route", "a\"b\\c".into())], 1);
        assert!(
            m.render()
                .contains("backforge_odd_total{route=\"a\\\"b\\\\c\"} 1\n"),
            "{}",
            m.render()
        );
    }
}
