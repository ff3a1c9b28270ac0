//! The Prometheus registry shared by every controller of one `mutu` process,
//! and the metrics every controller reports: reconciles, errors by reason,
//! durations, reconciles in flight, API writes by verb, broken watches.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

fn new_duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// The process-wide metrics registry. Cloning shares it.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
    pub(crate) reconciles: Family<Labels, Counter>,
    pub(crate) errors: Family<Labels, Counter>,
    pub(crate) durations: Family<Labels, Histogram, fn() -> Histogram>,
    pub(crate) in_flight: Family<Labels, Gauge>,
    pub(crate) writes: Family<Labels, Counter>,
    pub(crate) watch_errors: Family<Labels, Counter>,
    /// 1 while a watch fails, 0 once it delivers again.
    pub(crate) watch_broken: Family<Labels, Gauge>,
    /// Full lists of a watch: its start, and each time it lost its place.
    pub(crate) watch_relists: Family<Labels, Counter>,
    pub(crate) queue_depth: Family<Labels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric under the `mutu` prefix, and `mutu_up` set to 1.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mutu");
        let up: Gauge = Gauge::default();
        up.set(1);
        registry.register("up", "1 while this mutu process is running", up);
        let metrics = Self {
            registry: Arc::new(Mutex::new(Registry::default())),
            reconciles: Family::default(),
            errors: Family::default(),
            durations: Family::new_with_constructor(new_duration_histogram),
            in_flight: Family::default(),
            writes: Family::default(),
            watch_errors: Family::default(),
            watch_broken: Family::default(),
            watch_relists: Family::default(),
            queue_depth: Family::default(),
        };
        registry.register(
            "reconciles",
            "Reconciles by controller and result (ok, error, invalid)",
            metrics.reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciles by controller and error reason (the same reasons as the Events)",
            metrics.errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took, by controller",
            metrics.durations.clone(),
        );
        registry.register(
            "reconciles_in_flight",
            "Reconciles running right now, by controller",
            metrics.in_flight.clone(),
        );
        registry.register(
            "api_writes",
            "Writes to the Kubernetes API by controller, verb (apply, status, delete, create, event) and kind",
            metrics.writes.clone(),
        );
        registry.register(
            "watch_errors",
            "Errors of the watches feeding the controllers, by watched kind",
            metrics.watch_errors.clone(),
        );
        registry.register(
            "watch_broken",
            "1 while a watch feeding the controllers fails, 0 once it delivers again, by watched kind",
            metrics.watch_broken.clone(),
        );
        registry.register(
            "watch_relists",
            "Full lists of a watch (its start, and each time it lost its place), by watched kind",
            metrics.watch_relists.clone(),
        );
        registry.register(
            "queue_depth",
            "Objects triggered by a watch event and waiting for their reconcile, by controller",
            metrics.queue_depth.clone(),
        );
        *metrics.registry.lock().unwrap_or_else(|e| e.into_inner()) = registry;
        metrics
    }

    /// Lets a controller register metrics of its own.
    pub fn register<F: FnOnce(&mut Registry)>(&self, f: F) {
        let mut registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut registry);
    }

    /// Counts one write to the API server.
    pub fn write(&self, controller: &str, verb: &'static str, kind: &str) {
        self.writes
            .get_or_create(&vec![
                ("controller", controller.to_string()),
                ("verb", verb.to_string()),
                ("kind", kind.to_string()),
            ])
            .inc();
    }

    /// Total API writes made by `controller` so far.
    pub fn writes_by(&self, controller: &str) -> u64 {
        let text = self.encode();
        sum_samples(
            &text,
            "mutu_api_writes_total",
            &format!("controller=\"{controller}\""),
        )
    }

    /// The registry in the Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &registry);
        out
    }
}

/// Sums the samples of `metric` whose label set contains `matcher`, from a
/// text exposition (used by tests and benchmarks that scrape `/metrics`).
pub fn sum_samples(text: &str, metric: &str, matcher: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(metric) && l.contains(matcher))
        .filter_map(|l| l.rsplit(' ').next())
        .filter_map(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_registry_reports_the_process_as_up() {
        let text = Metrics::new().encode();
        assert!(text.contains("mutu_up 1"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn writes_are_counted_per_controller() {
        let metrics = Metrics::new();
        metrics.write("tenant", "apply", "Namespace");
        metrics.write("tenant", "apply", "ResourceQuota");
        metrics.write("site", "delete", "Service");
        assert_eq!(metrics.writes_by("tenant"), 2);
        assert_eq!(metrics.writes_by("site"), 1);
        assert_eq!(metrics.writes_by("solr"), 0);
    }
}
