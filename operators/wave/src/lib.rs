//! The wave engine of MigrationPlans and ReleaseRollouts (controller `wave`).
//!
//! The waves, which sites change together and in which order, are pure and
//! live in `mutu_model::wave`: the same function gives the preview (`mutu
//! migrate preview`, `mutu rollout preview`) and the waves the engine
//! records, so what is previewed is what runs. The engine (`engine`) then
//! drives each site through its steps, recorded in the plan's status.
//!
//! What the engine decides is pure and public: `plan` (the plan-level rules:
//! which sites start, how a step's outcome is recorded, which sites it lets
//! go of) and `step` (each site's step machine). `tests/model.rs` drives them
//! through every interleaving of a small world (an exhaustive search over its
//! states, with lagging caches, crashes and failures).

mod act;
mod engine;
pub mod plan;
pub mod step;

use std::future::Future;
use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod, PodCondition};
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{self, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use mutu_api::{Backup, MigrationPlan, Product, ReleaseRollout, Restore};
use mutu_runtime::watch::main_watch;
use mutu_runtime::{Context, Health, Metrics, Settings};

pub use engine::Config;
pub use mutu_model::wave::{
    Cohort, REST, SelectorError, Wave, id, migration_candidates, migration_waves,
    rollout_candidates, rollout_waves, waves,
};

/// Name of this controller in metrics, events and its field manager (`mutu-wave`).
pub const NAME: &str = "wave";

/// Keeps only what the engine reads of a pod: labels, node, images, requests,
/// phase and readiness.
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
        status.init_container_statuses = None;
        // Only whether it is Ready (a rollout checks its new instances are).
        status.conditions = status.conditions.take().map(|cs| {
            cs.into_iter()
                .filter(|c| c.type_ == "Ready")
                .map(|c| PodCondition {
                    type_: c.type_,
                    status: c.status,
                    ..Default::default()
                })
                .collect()
        });
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
    // A Restore that moves on (a migration's copy, a rollout's way back)
    // moves its plan on; the engine reads the few it needs from the API server.
    let (_restores, restore_stream) = main_watch(
        Api::<DeserializeGuard<Restore>>::all(client.clone()),
        watcher::Config::default(),
        &health,
        &metrics,
    );
    // Every pod, cut down: the room left on a pool counts them all.
    let (pods, pod_writer) = reflector::store();
    let pod_stream = reflector(
        pod_writer,
        mutu_runtime::watch::backed_off(watcher(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default().page_size(500),
        ))
        .modify(slim_pod),
    )
    .touched_objects();
    let pod_stream = mutu_runtime::watch::errors_dropped(pod_stream);
    let metrics_of_waves = engine::WaveMetrics::default();
    metrics_of_waves.register(&metrics);
    let ctx = Arc::new(Context::new(
        NAME,
        client.clone(),
        metrics.clone(),
        health.clone(),
        settings.clone(),
        engine::Caches {
            config,
            sites,
            products,
            migrations: migrations.clone(),
            rollouts: rollouts.clone(),
            backups,
            nodes,
            pods,
            memo: Default::default(),
            seen: Default::default(),
            metrics: metrics_of_waves.clone(),
        },
    ));
    let shutdown = shutdown.shared();
    // A change of a site, a Backup or a Restore re-checks every plan: there are few.
    let (m_tx, m_rx) = futures::channel::mpsc::unbounded::<()>();
    let (r_tx, r_rx) = futures::channel::mpsc::unbounded::<()>();
    let poke = move |_| {
        let _ = m_tx.unbounded_send(());
        let _ = r_tx.unbounded_send(());
        std::future::ready(())
    };
    let triggers = futures::stream::select(
        futures::stream::select(site_stream.map(|_| ()), backup_stream.map(|_| ())),
        restore_stream.map(|_| ()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slim_pod_keeps_its_image_and_readiness_only() {
        let mut pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "delib-1", "annotations": {"a": "b"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "r/delib:2.0",
                     "env": [{"name": "X", "value": "1"}]}]},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "message": "long text"},
                {"type": "PodScheduled", "status": "True"},
            ]},
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        slim_pod(&mut pod);
        let value = serde_json::to_value(&pod).unwrap_or_default();
        assert_eq!(value["spec"]["containers"][0]["image"], "r/delib:2.0");
        assert!(value["spec"]["containers"][0]["env"].is_null());
        assert_eq!(
            value["status"]["conditions"],
            serde_json::json!([{"type": "Ready", "status": "True"}])
        );
        assert!(value["metadata"]["annotations"].is_null());
    }
}
