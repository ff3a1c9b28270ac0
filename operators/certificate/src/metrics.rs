//! The certificate controller's own metrics: expiry per certificate,
//! issuance results, ACME orders placed, the budget used and the queue
//! waiting for it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

type Labels = Vec<(&'static str, String)>;

#[derive(Clone, Default)]
pub struct CertMetrics {
    expiry: Family<Labels, Gauge>,
    issuances: Family<Labels, Counter>,
    orders: Family<Labels, Counter>,
    budget_used: Family<Labels, Gauge>,
    budget_allowed: Family<Labels, Gauge>,
    queue: Family<Labels, Gauge>,
    /// Failed issuances in a row, only for certificates with at least one.
    failed: Family<Labels, Gauge>,
    /// The certificates that have an expiry series, to drop it when they go.
    known: Arc<Mutex<HashSet<(String, String, String)>>>,
}

impl CertMetrics {
    pub fn register(&self, metrics: &mutu_runtime::Metrics) {
        metrics.register(|r| {
            r.register(
                "certificate_expiry_timestamp_seconds",
                "Expiry (Unix time) of the certificate each Certificate's Secret holds",
                self.expiry.clone(),
            );
            r.register(
                "certificate_issuances",
                "Issuances by issuer, issuer type and result (issued, failed)",
                self.issuances.clone(),
            );
            r.register(
                "acme_orders",
                "ACME orders placed by this process, by issuer",
                self.orders.clone(),
            );
            r.register(
                "acme_budget_orders_used",
                "New orders counted in the account's current rate-limit window, by issuer",
                self.budget_used.clone(),
            );
            r.register(
                "acme_budget_orders_allowed",
                "New orders mutu allows itself per rate-limit window (its share of the limit), by issuer",
                self.budget_allowed.clone(),
            );
            r.register(
                "certificate_failed_attempts",
                "Failed issuances in a row of each certificate (only those with at least one), as in its status.failedAttempts",
                self.failed.clone(),
            );
            r.register(
                "certificate_issuance_queue",
                "Certificates waiting for ACME rate-limit budget, by issuer",
                self.queue.clone(),
            );
        });
    }

    pub fn expiry(&self, namespace: &str, name: &str, issuer: &str, unix: i64) {
        let id = (namespace.to_string(), name.to_string(), issuer.to_string());
        self.expiry
            .get_or_create(&vec![
                ("namespace", id.0.clone()),
                ("name", id.1.clone()),
                ("issuer", id.2.clone()),
            ])
            .set(unix);
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id);
    }

    /// Drops the expiry series of certificates for which `keep` is false.
    pub fn retain(&self, keep: impl Fn(&str, &str) -> bool) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.retain(|(ns, name, issuer)| {
            let stay = keep(ns, name);
            if !stay {
                let labels = vec![
                    ("namespace", ns.clone()),
                    ("name", name.clone()),
                    ("issuer", issuer.clone()),
                ];
                self.expiry.remove(&labels);
                self.failed.remove(&labels);
            }
            stay
        });
    }

    /// Records a certificate's failed issuances in a row; none clears its series.
    pub fn failed_attempts(&self, namespace: &str, name: &str, issuer: &str, n: i32) {
        let labels = vec![
            ("namespace", namespace.to_string()),
            ("name", name.to_string()),
            ("issuer", issuer.to_string()),
        ];
        if n <= 0 {
            self.failed.remove(&labels);
            return;
        }
        self.failed.get_or_create(&labels).set(i64::from(n));
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((namespace.to_string(), name.to_string(), issuer.to_string()));
    }

    pub fn issued(&self, issuer: &str, issuer_type: &str, result: &str) {
        self.issuances
            .get_or_create(&vec![
                ("issuer", issuer.to_string()),
                ("type", issuer_type.to_string()),
                ("result", result.to_string()),
            ])
            .inc();
    }

    pub fn order_placed(&self, issuer: &str) {
        self.orders
            .get_or_create(&vec![("issuer", issuer.to_string())])
            .inc();
    }

    pub fn budget(&self, issuer: &str, used: i64, allowed: i64) {
        let l = vec![("issuer", issuer.to_string())];
        self.budget_used.get_or_create(&l).set(used);
        self.budget_allowed.get_or_create(&l).set(allowed);
    }

    pub fn queue(&self, issuer: &str, waiting: i64) {
        self.queue
            .get_or_create(&vec![("issuer", issuer.to_string())])
            .set(waiting);
    }
}
