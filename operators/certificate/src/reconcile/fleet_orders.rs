//! What the other Certificates of an ACME issuer say about its orders: those
//! placed in the last week (counted against the rate-limit budget) and those
//! in progress for the same names.

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use mutu_api::issuer::AcmeRateLimits;

use super::context::Ctx;
use crate::budget::{self, Placed};

/// The orders that the cached Certificates of `issuer` record.
pub(super) fn stored_orders(ctx: &Ctx, issuer: &str) -> Vec<Placed> {
    ctx.data
        .certificates
        .state()
        .iter()
        .filter_map(|c| c.0.as_ref().ok())
        .filter(|c| c.spec.issuer_ref.name == issuer)
        .flat_map(|c| {
            let key = format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any());
            let names = budget::name_set(&c.spec.dns_names);
            c.status
                .iter()
                .flat_map(|s| s.recent_orders.iter())
                .map(move |t| Placed {
                    certificate: key.clone(),
                    names: names.clone(),
                    at: t.0,
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Another Certificate of `issuer` with an order in progress for the same names.
pub(super) fn same_names_in_flight(
    ctx: &Ctx,
    issuer: &str,
    key: &str,
    names: &[String],
) -> Option<String> {
    ctx.data
        .certificates
        .state()
        .iter()
        .filter_map(|c| c.0.as_ref().ok())
        .filter(|c| c.spec.issuer_ref.name == issuer)
        .filter(|c| format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any()) != key)
        .find(|c| {
            c.status
                .as_ref()
                .and_then(|s| s.order.as_ref())
                .is_some_and(|o| budget::name_set(&o.dns_names) == names)
        })
        .map(|c| format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any()))
}

pub(super) fn budget_metrics(
    ctx: &Ctx,
    issuer: &str,
    limits: &AcmeRateLimits,
    stored: Vec<Placed>,
    now: Timestamp,
) {
    let used = budget::used_in_window(&stored, &limits.new_orders, now);
    let allowed = budget::allowed(limits.new_orders.limit, limits.budget_percent);
    ctx.data
        .metrics
        .budget(issuer, used as i64, i64::from(allowed));
    for (issuer, n) in ctx.data.budget.queue_lengths() {
        ctx.data.metrics.queue(&issuer, n as i64);
    }
}
