//! The wave engine of MigrationPlans and ReleaseRollouts (controller `wave`).
//!
//! The waves, which sites change together and in which order, are pure: the
//! same function gives the preview (`mutu migrate preview`, `mutu rollout
//! preview`) and the plan the engine records when it starts, so what is
//! previewed is what runs. The engine (`engine`) then drives each site
//! through its steps, recorded in the plan's status (`progress`).

mod engine;
pub mod progress;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{self, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use mutu_api::{Backup, MigrationPlan, Product, ReleaseRollout};
use mutu_runtime::watch::{main_watch, slim_children_watch_of};
use mutu_runtime::{Context, Health, Metrics, Settings};

pub use engine::Config;

/// Name of this controller in metrics, events and its field manager (`mutu-wave`).
pub const NAME: &str = "wave";

/// Keeps only what the engine reads of a Job: metadata and state.
fn slim_job(job: &mut Job) {
    job.spec = None;
    job.meta_mut().annotations = None;
}

/// Keeps only what the engine reads of a pod: labels, node, requests, phase.
fn slim_pod(pod: &mut Pod) {
    let meta = pod.meta_mut();
    meta.annotations = None;
    meta.managed_fields = None;
    meta.owner_references = None;
    if let Some(spec) = pod.spec.as_mut() {
        spec.volumes = None;
        spec.affinity = None;
        spec.tolerations = None;
        spec.topology_spread_constraints = None;
        spec.init_containers = None;
        for c in spec.containers.iter_mut() {
            c.env = None;
            c.command = None;
            c.args = None;
            c.volume_mounts = None;
            c.readiness_probe = None;
            c.liveness_probe = None;
            c.startup_probe = None;
            c.ports = None;
        }
    }
    if let Some(status) = pod.status.as_mut() {
        status.container_statuses = None;
        status.conditions = None;
        status.init_container_statuses = None;
    }
}

/// Runs the MigrationPlan and ReleaseRollout controllers until `shutdown` completes.
pub async fn run(
    client: Client,
    metrics: Metrics,
    health: Health,
    config: Config,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let (sites, site_stream) = main_watch(
        Api::<DeserializeGuard<mutu_api::PloneSite>>::all(client.clone()),
        watcher::Config::default(),
        &health,
        &metrics,
    );
    let (products, product_stream) = main_watch(
        Api::<DeserializeGuard<Product>>::all(client.clone()),
        watcher::Config::default(),
        &health,
        &metrics,
    );
    let (migrations, migration_stream) = main_watch(
        Api::<DeserializeGuard<MigrationPlan>>::all(client.clone()),
        watcher::Config::default(),
        &health,
        &metrics,
    );
    let (rollouts, rollout_stream) = main_watch(
        Api::<DeserializeGuard<ReleaseRollout>>::all(client.clone()),
        watcher::Config::default(),
        &health,
        &metrics,
    );
    let (backups, backup_stream) = main_watch(
        Api::<DeserializeGuard<Backup>>::all(client.clone()),
        watcher::Config::default(),
        &health,
        &metrics,
    );
    let (nodes, node_stream) = main_watch(
        Api::<Node>::all(client.clone()),
        watcher::Config::default(),
        &health,
        &metrics,
    );
    let (jobs, job_stream) = slim_children_watch_of::<Job>(
        &client,
        &health,
        &metrics,
        &format!("{}={}", mutu_api::COMPONENT, engine::MIGRATE),
        slim_job,
    );
    // Every pod, cut down: the room left on a pool counts them all.
    let (pods, pod_writer) = reflector::store();
    let pod_stream = reflector(
        pod_writer,
        watcher(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default().page_size(500),
        )
        .default_backoff()
        .modify(slim_pod),
    )
    .touched_objects();
    let metrics_of_waves = engine::WaveMetrics::default();
    metrics_of_waves.register(&metrics);
    let ctx = Arc::new(Context::new(
        NAME,
        client.clone(),
        metrics.clone(),
        health.clone(),
        settings.clone(),
        engine::Data {
            config,
            sites,
            products,
            migrations: migrations.clone(),
            rollouts: rollouts.clone(),
            backups,
            jobs,
            nodes,
            pods,
            memo: Default::default(),
            seen: Default::default(),
            metrics: metrics_of_waves.clone(),
        },
    ));
    let shutdown = shutdown.shared();
    // A change of a site, a backup or a Job re-checks every plan: there are few.
    let (m_tx, m_rx) = futures::channel::mpsc::unbounded::<()>();
    let (r_tx, r_rx) = futures::channel::mpsc::unbounded::<()>();
    let poke = move |_| {
        let _ = m_tx.unbounded_send(());
        let _ = r_tx.unbounded_send(());
        std::future::ready(())
    };
    let triggers = futures::stream::select(
        futures::stream::select(site_stream.map(|_| ()), backup_stream.map(|_| ())),
        job_stream.map(|_| ()),
    )
    .for_each(poke);
    let migrations_ctl = Controller::for_stream(migration_stream, migrations)
        .reconcile_all_on(m_rx)
        .graceful_shutdown_on(shutdown.clone());
    let rollouts_ctl = Controller::for_stream(rollout_stream, rollouts)
        .reconcile_all_on(r_rx)
        .graceful_shutdown_on(shutdown.clone());
    let drain = futures::future::join4(
        triggers,
        product_stream.for_each(|_| std::future::ready(())),
        node_stream.for_each(|_| std::future::ready(())),
        pod_stream.for_each(|_| std::future::ready(())),
    );
    let stop = shutdown.clone();
    let drain = async move {
        tokio::select! {
            _ = drain => {}
            _ = stop => {}
        }
    };
    futures::join!(
        mutu_runtime::controller::run(migrations_ctl, ctx.clone(), engine::reconcile_migration),
        mutu_runtime::controller::run(rollouts_ctl, ctx.clone(), engine::reconcile_rollout),
        drain,
    );
}

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};
use mutu_api::{MigrationPlanSpec, PloneSite, ReleaseRolloutSpec};
use serde::Serialize;

/// Name of the cohort of the sites no cohort of a rollout selects.
pub const REST: &str = "rest";

/// One wave: the sites (`namespace/name`, in order) that change together.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Wave {
    /// 1 for the first wave.
    pub index: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cohort: Option<String>,
    pub sites: Vec<String>,
}

/// A selector that cannot be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SelectorError {
    pub field: String,
    pub message: String,
}

fn selector(field: &str, s: &LabelSelector) -> Result<Selector, SelectorError> {
    Selector::try_from(s.clone()).map_err(|e| SelectorError {
        field: field.to_string(),
        message: format!("{e}; write matchLabels or matchExpressions with the operators In, NotIn, Exists or DoesNotExist"),
    })
}

fn id(site: &PloneSite) -> String {
    format!(
        "{}/{}",
        site.namespace().unwrap_or_default(),
        site.name_any()
    )
}

fn chunk(sites: Vec<String>, size: i32, cohort: Option<&str>, first: i32) -> Vec<Wave> {
    sites
        .chunks(size.max(1) as usize)
        .enumerate()
        .map(|(i, c)| Wave {
            index: first + i as i32,
            cohort: cohort.map(str::to_string),
            sites: c.to_vec(),
        })
        .collect()
}

/// The waves of a migration: the sites the selector matches that run on the
/// `from` pool now (sites already on `to` have nothing to do), in namespace
/// and name order, `waveSize` at a time.
pub fn migration_waves(
    spec: &MigrationPlanSpec,
    sites: &[PloneSite],
) -> Result<Vec<Wave>, SelectorError> {
    let sel = selector("spec.selector", &spec.selector)?;
    let mut ids: Vec<String> = sites
        .iter()
        .filter(|s| s.metadata.deletion_timestamp.is_none())
        .filter(|s| sel.matches(s.labels()))
        .filter(|s| s.status.as_ref().and_then(|st| st.pool.as_deref()) == Some(spec.from.as_str()))
        .map(id)
        .collect();
    ids.sort();
    Ok(chunk(ids, spec.wave_size, None, 1))
}

/// The waves of a rollout: the product's sites not on the release yet,
/// cohort by cohort in the order given (a site goes to the first cohort that
/// selects it; those none selects come last, as cohort `rest`), `waveSize` at
/// a time, never two cohorts in one wave.
pub fn rollout_waves(
    spec: &ReleaseRolloutSpec,
    sites: &[PloneSite],
) -> Result<Vec<Wave>, SelectorError> {
    let cohorts = spec
        .cohorts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Ok((
                c.name.clone(),
                selector(&format!("spec.cohorts[{i}].selector"), &c.selector)?,
            ))
        })
        .collect::<Result<Vec<_>, SelectorError>>()?;
    let mut candidates: Vec<&PloneSite> = sites
        .iter()
        .filter(|s| s.metadata.deletion_timestamp.is_none())
        .filter(|s| s.spec.product == spec.product)
        .filter(|s| {
            s.status.as_ref().and_then(|st| st.release.as_deref()) != Some(spec.release.as_str())
        })
        .collect();
    candidates.sort_by_key(|s| id(s));
    let mut taken: BTreeSet<String> = BTreeSet::new();
    let mut groups: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for s in &candidates {
        let cohort = cohorts
            .iter()
            .position(|(_, sel)| sel.matches(s.labels()))
            .unwrap_or(cohorts.len());
        if taken.insert(id(s)) {
            groups.entry(cohort).or_default().push(id(s));
        }
    }
    let mut waves = Vec::new();
    for (i, members) in groups {
        let name = cohorts.get(i).map(|(n, _)| n.as_str()).unwrap_or(REST);
        let first = waves.len() as i32 + 1;
        waves.extend(chunk(members, spec.wave_size, Some(name), first));
    }
    Ok(waves)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn site(
        ns: &str,
        name: &str,
        labels: serde_json::Value,
        pool: &str,
        release: &str,
    ) -> PloneSite {
        serde_json::from_value(json!({
            "apiVersion": "hosting.imio.be/v1alpha1", "kind": "PloneSite",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"product": "delib", "hostnames": [format!("{name}.example.be")]},
            "status": {"pool": pool, "release": release},
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn fleet() -> Vec<PloneSite> {
        (0..25)
            .map(|i| {
                site(
                    &format!("tenant-{:02}", i % 5),
                    &format!("site-{i:02}"),
                    json!({"canary": if i % 10 == 0 { "yes" } else { "no" }, "migrate": "yes"}),
                    if i == 24 { "frontend" } else { "physical" },
                    if i == 23 { "4.3.0" } else { "4.2.18" },
                )
            })
            .collect()
    }

    #[test]
    fn a_migration_moves_the_selected_sites_on_the_from_pool_in_waves() {
        let spec: MigrationPlanSpec = serde_json::from_value(json!({
            "selector": {"matchLabels": {"migrate": "yes"}},
            "from": "physical", "to": "frontend", "waveSize": 10, "maxInFlight": 3,
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let waves = migration_waves(&spec, &fleet()).unwrap_or_else(|e| panic!("{e}"));
        let sizes: Vec<usize> = waves.iter().map(|w| w.sites.len()).collect();
        assert_eq!(sizes, [10, 10, 4], "site-24 is on frontend already");
        assert_eq!(waves[0].index, 1);
        assert!(
            waves
                .iter()
                .all(|w| w.sites.windows(2).all(|p| p[0] < p[1]))
        );
        let all: Vec<&String> = waves.iter().flat_map(|w| &w.sites).collect();
        assert!(!all.iter().any(|s| s.ends_with("site-24")));
        // The same answer for the fleet in another order.
        let mut reversed = fleet();
        reversed.reverse();
        assert_eq!(migration_waves(&spec, &reversed).ok(), Some(waves));
    }

    #[test]
    fn a_rollout_goes_cohort_by_cohort_and_skips_sites_on_the_release() {
        let spec: ReleaseRolloutSpec = serde_json::from_value(json!({
            "product": "delib", "release": "4.3.0",
            "cohorts": [{"name": "canary", "selector": {"matchLabels": {"canary": "yes"}}}],
            "waveSize": 10, "maxInFlight": 2,
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let waves = rollout_waves(&spec, &fleet()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(waves[0].cohort.as_deref(), Some("canary"));
        assert_eq!(waves[0].sites.len(), 3, "site-00, site-10, site-20");
        assert!(waves[1..].iter().all(|w| w.cohort.as_deref() == Some(REST)));
        let total: usize = waves.iter().map(|w| w.sites.len()).sum();
        assert_eq!(total, 24, "site-23 runs 4.3.0 already");
        let indexes: Vec<i32> = waves.iter().map(|w| w.index).collect();
        assert_eq!(indexes, [1, 2, 3, 4]);
    }

    #[test]
    fn a_selector_that_cannot_be_read_names_its_field() {
        let spec: MigrationPlanSpec = serde_json::from_value(json!({
            "selector": {"matchExpressions": [{"key": "migrate", "operator": "Near", "values": ["x"]}]},
            "from": "physical", "to": "frontend", "waveSize": 10,
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let err = migration_waves(&spec, &fleet())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("spec.selector:"), "{err}");
    }
}
