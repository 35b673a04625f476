//! Prometheus metrics of the server: requests, the stored revision, reconciles, drift repairs and
//! the plugin probe.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The content type of the text exposition format written by [`Metrics::encode`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of one HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template, such as `/api/ucp/config-toml`; `unmatched` for unknown paths.
    pub route: String,
    /// The HTTP method.
    pub method: String,
    /// The status code of the answer.
    pub status: u16,
}

/// Labels of request latency: the route and method, not the status, to keep series few.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route template.
    pub route: String,
    /// The HTTP method.
    pub method: String,
}

/// Labels of one reconcile pass.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// What the pass concluded, such as `installed`, `unchanged` or `blocked`.
    pub outcome: String,
}

/// Every metric the server exports, registered once.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Requests by route, method and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Request latency by route and method, in seconds.
    pub request_duration: Family<RouteLabels, Histogram>,
    /// The current configuration revision; 0 before the first one.
    pub config_revision: Gauge,
    /// Reconcile passes by outcome.
    pub reconciles: Family<OutcomeLabels, Counter>,
    /// Times the installed file was put back after someone changed it.
    pub drift_repairs: Counter,
    /// Latency of the plugin health probe, in seconds.
    pub probe_duration: Histogram,
    /// 1 when the last probe found the plugin healthy, 0 when not, -1 when none was needed.
    pub plugin_healthy: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric under the `ucp_kms` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ucp_kms");

        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        let request_duration = Family::<RouteLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.0005, 2.0, 16))) as fn() -> Histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "Latency of HTTP requests by route and method",
            request_duration.clone(),
        );
        let config_revision = Gauge::default();
        registry.register(
            "config_revision",
            "Revision of the stored UCP configuration, 0 before the first one",
            config_revision.clone(),
        );
        let reconciles = Family::<OutcomeLabels, Counter>::default();
        registry.register("reconciles", "Reconcile passes by outcome", reconciles.clone());
        let drift_repairs = Counter::default();
        registry.register(
            "drift_repairs",
            "Times the installed EncryptionConfiguration was restored after an outside change",
            drift_repairs.clone(),
        );
        let probe_duration = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "plugin_probe_duration_seconds",
            "Latency of the KMS plugin health probe",
            probe_duration.clone(),
        );
        let plugin_healthy = Gauge::default();
        plugin_healthy.set(-1);
        registry.register(
            "plugin_healthy",
            "1 when the last probe found the KMS plugin healthy, 0 when not, -1 when KMS is off",
            plugin_healthy.clone(),
        );

        Self {
            registry: Arc::new(registry),
            requests,
            request_duration,
            config_revision,
            reconciles,
            drift_repairs,
            probe_duration,
            plugin_healthy,
        }
    }

    /// Records one answered request.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let labels = RequestLabels { route: route.to_owned(), method: method.to_owned(), status };
        self.requests.get_or_create(&labels).inc();
        let labels = RouteLabels { route: route.to_owned(), method: method.to_owned() };
        self.request_duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    /// Records one reconcile pass.
    pub fn observe_reconcile(&self, outcome: &str) {
        self.reconciles.get_or_create(&OutcomeLabels { outcome: outcome.to_owned() }).inc();
    }

    /// The metrics in the text exposition format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_what_was_observed() {
        let metrics = Metrics::new();
        metrics.observe_request("/_ping", "GET", 200, Duration::from_millis(3));
        metrics.observe_reconcile("installed");
        metrics.drift_repairs.inc();
        metrics.config_revision.set(7);
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"ucp_kms_http_requests_total{route="/_ping",method="GET",status="200"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"ucp_kms_reconciles_total{outcome="installed"} 1"#), "{text}");
        assert!(text.contains("ucp_kms_drift_repairs_total 1"), "{text}");
        assert!(text.contains("ucp_kms_config_revision 7"), "{text}");
        assert!(text.contains("ucp_kms_plugin_healthy -1"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
