//! The backup operator: an engine that plans every policy's night and starts
//! the scheduled Backups, applies retention and records the sites' last
//! backups (one writer, over an index of the whole fleet), and the controllers
//! of the Backup and Restore runs. The plan is pure and shared with
//! `mutu backup schedule`.

pub mod backup;
mod context;
mod engine;
pub mod fleet;
pub mod jobs;
pub mod restore;
mod status;
mod storage;
pub use mutu_model::schedule;

use std::future::Future;
use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::batch::v1::Job;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use mutu_api::{Backup, BackupPolicy, PloneSite, Product, Restore};
use mutu_runtime::watch::{main_watch, slim_children_watch_of};
use mutu_runtime::{Context, Health, Metrics, Settings};

pub use context::Config;

/// Name of this controller in metrics, events and its field manager (`mutu-backup`).
pub const NAME: &str = "backup";

/// Keeps only what the controllers read of a Job: metadata and state.
fn slim_job(job: &mut Job) {
    job.spec = None;
    job.meta_mut().annotations = None;
}

/// The run (Backup or Restore) that owns a Job.
fn owner<K: Resource<DynamicType = ()>>(job: &Job) -> Option<ObjectRef<DeserializeGuard<K>>> {
    let ns = job.namespace()?;
    job.owner_references()
        .iter()
        .find(|o| o.kind == K::kind(&()) && o.controller == Some(true))
        .map(|o| ObjectRef::new(&o.name).within(&ns))
}

/// Runs the backup engine and the Backup and Restore controllers until `shutdown` completes.
pub async fn run(
    client: Client,
    metrics: Metrics,
    health: Health,
    config: Config,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let (sites, site_stream) = main_watch(
        Api::<DeserializeGuard<PloneSite>>::all(client.clone()),
        watcher::Config::default(),
        &health,
        &metrics,
    );
    let (policies, policy_stream) = main_watch(
        Api::<DeserializeGuard<BackupPolicy>>::all(client.clone()),
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
    // The catalog says which sites keep data (a generic product may keep none).
    let (products, product_stream) = main_watch(
        Api::<DeserializeGuard<Product>>::all(client.clone()),
        watcher::Config::default(),
        &health,
        &metrics,
    );
    let (restores, restore_stream) = main_watch(
        Api::<DeserializeGuard<Restore>>::all(client.clone()),
        watcher::Config::default(),
        &health,
        &metrics,
    );
    let (jobs, job_stream) = slim_children_watch_of::<Job>(
        &client,
        &health,
        &metrics,
        &format!("{} in (backup,restore,pack,forget)", mutu_api::COMPONENT),
        slim_job,
    );
    let ctx = Arc::new(Context::new(
        NAME,
        client.clone(),
        metrics.clone(),
        health.clone(),
        settings.clone(),
        context::Caches {
            config,
            jobs,
            restores_cache: restores.clone(),
            backups_cache: backups.clone(),
            policies_cache: policies,
            sites_cache: sites,
            products_cache: products,
            start_lock: Default::default(),
            started: Default::default(),
        },
    ));
    let backup_metrics = engine::BackupMetrics::default();
    backup_metrics.register(&metrics);

    let shutdown = shutdown.shared();
    // The Job events feed both controllers; each takes the Jobs it owns.
    let (job_tx, job_rx) = futures::channel::mpsc::unbounded::<Job>();
    let job_stream = job_stream.filter_map(move |event| {
        if let Ok(job) = &event {
            let _ = job_tx.unbounded_send(job.clone());
        }
        std::future::ready(Some(event))
    });
    let backups_ctl = Controller::for_stream(backup_stream, backups)
        .watches_stream(job_stream, |job: Job| owner::<Backup>(&job))
        .graceful_shutdown_on(shutdown.clone());
    let restores_ctl = Controller::for_stream(restore_stream, restores)
        .reconcile_on(job_rx.filter_map(|job| std::future::ready(owner::<Restore>(&job))))
        .graceful_shutdown_on(shutdown.clone());
    // The caches of sites, policies and products only need to be kept current.
    let drain = futures::future::join3(
        site_stream.for_each(|_| std::future::ready(())),
        policy_stream.for_each(|_| std::future::ready(())),
        product_stream.for_each(|_| std::future::ready(())),
    );
    let stop = shutdown.clone();
    let drain = async move {
        tokio::select! {
            _ = drain => {}
            _ = stop => {}
        }
    };
    futures::join!(
        mutu_runtime::controller::run(backups_ctl, ctx.clone(), backup::reconcile),
        mutu_runtime::controller::run(restores_ctl, ctx.clone(), restore::reconcile),
        engine::run(ctx.clone(), backup_metrics, shutdown.clone()),
        drain,
    );
}
