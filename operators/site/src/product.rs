//! The catalog's view of the fleet: each Product's status counts its sites
//! and how many of them run its current release. Recounted when a product or
//! one of its sites changes; it writes only when a count moves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use mutu_api::product::ProductStatus;
use mutu_api::{PloneSite, Product};
use mutu_runtime::conditions::Desired as Cond;
use mutu_runtime::{Context, Reason};

/// The site cache the counts are read from.
pub struct Caches {
    pub sites: Store<DeserializeGuard<PloneSite>>,
    pub fleet: crate::fleet_metrics::FleetMetrics,
    /// When each product was last recounted.
    pub recounted: Mutex<HashMap<String, Instant>>,
}

/// Shortest time between two recounts of one product. A recount reads the
/// whole fleet; while sites converge, their events come every few
/// milliseconds, and recounting for each would keep a core busy. A change
/// within this time is counted at its end.
pub const RECOUNT_EVERY: Duration = Duration::from_secs(1);

/// How long to wait before recounting `product`, if it was recounted less than
/// [`RECOUNT_EVERY`] ago; otherwise records the recount as starting now.
fn too_soon(data: &Caches, product: &str, now: Instant) -> Option<Duration> {
    let mut recounted = data.recounted.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(wait) = recounted
        .get(product)
        .and_then(|at| RECOUNT_EVERY.checked_sub(now.saturating_duration_since(*at)))
        .filter(|wait| !wait.is_zero())
    {
        return Some(wait);
    }
    recounted.insert(product.to_string(), now);
    None
}

/// Why a product's status could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the Product status: {0}")]
pub struct Error(#[source] kube::Error);

impl Reason for Error {
    fn reason(&self) -> &'static str {
        "StatusFailed"
    }
}

/// Counts of one product's sites: all, ready, and on `release`.
pub fn counts<'a>(
    product: &str,
    release: &str,
    sites: impl IntoIterator<Item = &'a PloneSite>,
) -> (i32, i32, i32) {
    let (mut all, mut ready, mut current) = (0, 0, 0);
    let live = sites
        .into_iter()
        .filter(|s| s.spec.product == product && s.meta().deletion_timestamp.is_none());
    for site in live {
        all += 1;
        let status = site.status.as_ref();
        if status.is_some_and(|s| {
            mutu_runtime::conditions::is_true(&s.conditions, mutu_api::CONDITION_READY)
        }) {
            ready += 1;
        }
        if status.and_then(|s| s.release.as_deref()) == Some(release) {
            current += 1;
        }
    }
    (all, ready, current)
}

pub async fn reconcile(product: Arc<Product>, ctx: Arc<Context<Caches>>) -> Result<Action, Error> {
    if !mutu_runtime::controller::caches_listed(async {
        let _ = ctx.data.sites.wait_until_ready().await;
    })
    .await
    {
        return Ok(mutu_runtime::controller::not_listed_yet());
    }
    if let Some(wait) = too_soon(&ctx.data, &product.name_any(), Instant::now()) {
        return Ok(Action::requeue(wait));
    }
    // The cache's sites are read in place: copying the whole fleet at each
    // recount would cost the square of the fleet over a converge.
    let state = ctx.data.sites.state();
    let sites: Vec<&PloneSite> = state.iter().filter_map(|s| s.0.as_ref().ok()).collect();
    let (all, ready, current) = counts(
        &product.name_any(),
        &product.spec.release,
        sites.iter().copied(),
    );
    ctx.data.fleet.product(
        &product.name_any(),
        (all, ready, current),
        &crate::fleet_metrics::not_ready(&product.name_any(), sites.iter().copied()),
    );
    let status = ProductStatus {
        observed_generation: product.meta().generation,
        sites: Some(all),
        sites_on_release: Some(current),
        ..Default::default()
    };
    let conds = [Cond::new(
        mutu_api::CONDITION_READY,
        true,
        "InCatalog",
        format!(
            "{all} site(s), {ready} ready, {current} on release {}",
            product.spec.release
        ),
    )];
    let api: Api<Product> = Api::all(ctx.client().clone());
    ctx.write_status(&api, &product, status, &conds)
        .await
        .map_err(Error)?;
    Ok(ctx.requeue())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(product: &str, release: &str, ready: &str) -> PloneSite {
        serde_saphyr::from_str(&format!(
            "apiVersion: hosting.imio.be/v1alpha1\nkind: PloneSite\nmetadata: {{name: s, namespace: tenant-mons}}\nspec: {{product: {product}, hostnames: [a.mons.be]}}\nstatus:\n  release: \"{release}\"\n  conditions:\n  - {{type: Ready, status: \"{ready}\", reason: r, message: m, lastTransitionTime: \"2026-01-01T00:00:00Z\"}}\n"
        ))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_product_is_recounted_at_most_once_per_interval() {
        let (sites, _writer) = kube::runtime::reflector::store();
        let data = Caches {
            sites,
            fleet: crate::fleet_metrics::FleetMetrics::default(),
            recounted: Mutex::default(),
        };
        let t0 = Instant::now();
        assert_eq!(too_soon(&data, "delib", t0), None);
        let wait = too_soon(&data, "delib", t0 + Duration::from_millis(300));
        assert_eq!(wait, Some(RECOUNT_EVERY - Duration::from_millis(300)));
        // Another product has its own interval.
        assert_eq!(
            too_soon(&data, "web", t0 + Duration::from_millis(300)),
            None
        );
        assert_eq!(too_soon(&data, "delib", t0 + RECOUNT_EVERY), None);
        assert!(too_soon(&data, "delib", t0 + RECOUNT_EVERY).is_some());
    }

    #[test]
    fn counts_only_the_products_sites_their_readiness_and_release() {
        let sites = [
            site("delib", "4.2", "True"),
            site("delib", "4.1", "False"),
            site("web", "4.2", "True"),
        ];
        assert_eq!(counts("delib", "4.2", &sites), (2, 1, 1));
        assert_eq!(counts("docs", "4.2", &sites), (0, 0, 0));
    }
}
