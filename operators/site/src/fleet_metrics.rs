//! The fleet's readiness as metrics, kept by the product controller (which
//! recounts a product whenever one of its sites changes): sites, Ready sites
//! and sites on the current release per product, and, only for the sites
//! that are not Ready, since when (the Ready condition's last transition)
//! and why. Ready sites have no series, so 10,000 healthy sites cost nothing.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use kube::{Resource, ResourceExt};
use mutu_api::PloneSite;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

type Labels = Vec<(&'static str, String)>;
/// A not-Ready series: namespace, name, reason.
type Series = (String, String, String);

/// One site that is not Ready: its series' labels and value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotReady {
    pub namespace: String,
    pub name: String,
    pub reason: String,
    /// Unix time since which it has not been Ready.
    pub since: i64,
}

#[derive(Clone, Default)]
pub struct FleetMetrics {
    sites: Family<Labels, Gauge>,
    ready: Family<Labels, Gauge>,
    on_release: Family<Labels, Gauge>,
    not_ready_since: Family<Labels, Gauge>,
    /// Per product, the not-Ready series it set, to remove them once the site
    /// is Ready again, gone, or has changed its reason.
    known: Arc<Mutex<HashMap<String, HashSet<Series>>>>,
}

impl FleetMetrics {
    pub fn register(&self, metrics: &mutu_runtime::Metrics) {
        metrics.register(|r| {
            r.register(
                "product_sites",
                "Sites of each product (not being deleted)",
                self.sites.clone(),
            );
            r.register(
                "product_sites_ready",
                "Sites of each product whose Ready condition is True",
                self.ready.clone(),
            );
            r.register(
                "product_sites_on_release",
                "Sites of each product running its current release",
                self.on_release.clone(),
            );
            r.register(
                "site_not_ready_since_timestamp_seconds",
                "For each site that is not Ready, and only those: since when (Unix time), with the Ready condition's reason",
                self.not_ready_since.clone(),
            );
        });
    }

    /// Records one product's counts and the sites of it that are not Ready.
    pub fn product(&self, product: &str, counts: (i32, i32, i32), not_ready: &[NotReady]) {
        let label = vec![("product", product.to_string())];
        self.sites.get_or_create(&label).set(i64::from(counts.0));
        self.ready.get_or_create(&label).set(i64::from(counts.1));
        self.on_release
            .get_or_create(&label)
            .set(i64::from(counts.2));
        let now: HashSet<Series> = not_ready
            .iter()
            .map(|n| (n.namespace.clone(), n.name.clone(), n.reason.clone()))
            .collect();
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        let before = known.entry(product.to_string()).or_default();
        for gone in before.difference(&now) {
            self.not_ready_since.remove(&series(gone));
        }
        for n in not_ready {
            self.not_ready_since
                .get_or_create(&series(&(
                    n.namespace.clone(),
                    n.name.clone(),
                    n.reason.clone(),
                )))
                .set(n.since);
        }
        *before = now;
    }
}

fn series((namespace, name, reason): &Series) -> Labels {
    vec![
        ("namespace", namespace.clone()),
        ("name", name.clone()),
        ("reason", reason.clone()),
    ]
}

/// The sites of `product` that are not Ready: since the Ready condition's
/// last transition, or since the site was created when it has none yet.
pub fn not_ready<'a>(
    product: &str,
    sites: impl IntoIterator<Item = &'a PloneSite>,
) -> Vec<NotReady> {
    let mut out = Vec::new();
    for site in sites {
        if site.spec.product != product || site.meta().deletion_timestamp.is_some() {
            continue;
        }
        let ready = site.status.as_ref().and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == mutu_api::CONDITION_READY)
        });
        if ready.is_some_and(|c| c.status == "True") {
            continue;
        }
        let since = ready
            .map(|c| c.last_transition_time.0.as_second())
            .or_else(|| {
                site.meta()
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.as_second())
            })
            .unwrap_or_default();
        out.push(NotReady {
            namespace: site.namespace().unwrap_or_default(),
            name: site.name_any(),
            reason: ready
                .map(|c| c.reason.clone())
                .unwrap_or_else(|| "NotReported".to_string()),
            since,
        });
    }
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(name: &str, product: &str, ready: Option<(&str, &str, &str)>) -> PloneSite {
        let status = match ready {
            Some((status, reason, at)) => format!(
                "status:\n  conditions:\n  - {{type: Ready, status: \"{status}\", reason: {reason}, message: m, lastTransitionTime: \"{at}\"}}\n"
            ),
            None => String::new(),
        };
        serde_saphyr::from_str(&format!(
            "apiVersion: hosting.imio.be/v1alpha1\nkind: PloneSite\nmetadata: {{name: {name}, namespace: tenant-mons, creationTimestamp: \"2026-01-01T00:00:00Z\"}}\nspec: {{product: {product}, hostnames: [a.mons.be]}}\n{status}"
        ))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn only_the_sites_that_are_not_ready_have_a_series() {
        let sites = [
            site(
                "a",
                "delib",
                Some(("True", "Serving", "2026-01-02T00:00:00Z")),
            ),
            site(
                "b",
                "delib",
                Some(("False", "Starting", "2026-01-03T00:00:00Z")),
            ),
            site("c", "delib", None),
            site(
                "d",
                "web",
                Some(("False", "Starting", "2026-01-03T00:00:00Z")),
            ),
        ];
        let n = not_ready("delib", &sites);
        assert_eq!(n.len(), 2, "{n:?}");
        assert_eq!(
            (n[0].name.as_str(), n[0].reason.as_str()),
            ("b", "Starting")
        );
        assert_eq!(n[0].since, 1_767_398_400);
        assert_eq!(
            (n[1].name.as_str(), n[1].reason.as_str()),
            ("c", "NotReported")
        );
        assert_eq!(
            n[1].since, 1_767_225_600,
            "a site without a Ready condition counts from its creation"
        );
    }

    #[test]
    fn a_site_ready_again_or_with_another_reason_loses_its_old_series() {
        let m = FleetMetrics::default();
        let registry = mutu_runtime::Metrics::new();
        m.register(&registry);
        let b = |reason: &str| NotReady {
            namespace: "tenant-mons".into(),
            name: "b".into(),
            reason: reason.into(),
            since: 100,
        };
        m.product("delib", (2, 1, 2), &[b("Starting")]);
        let text = registry.encode();
        assert!(
            text.contains("mutu_product_sites{product=\"delib\"} 2"),
            "{text}"
        );
        assert!(text.contains("reason=\"Starting\"} 100"), "{text}");
        m.product("delib", (2, 1, 2), &[b("Suspended")]);
        let text = registry.encode();
        assert!(!text.contains("reason=\"Starting\""), "{text}");
        assert!(text.contains("reason=\"Suspended\"} 100"), "{text}");
        m.product("delib", (2, 2, 2), &[]);
        let text = registry.encode();
        assert!(
            !text.contains("site_not_ready_since_timestamp_seconds{"),
            "{text}"
        );
        assert!(
            text.contains("mutu_product_sites_ready{product=\"delib\"} 2"),
            "{text}"
        );
    }
}
