//! The SolrIndex operator: for each site's index in the shared SolrCloud, the
//! configset version (uploaded once), the collection built from it, the alias
//! Plone queries, and a Solr user of the site's own that may use only its
//! collection. This crate exposes its controller and nothing else.

mod catch_up;
mod configset;
mod reconcile;
mod reindex;

use std::future::Future;
use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use kube::Client;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use mutu_api::SolrIndex;
use mutu_runtime::watch::{main_watch, slim_children_watch_of};
use mutu_runtime::{Context, Health, Metrics, Settings};

/// Keeps only what the controller reads of a reindex Job: its metadata and state.
fn slim_job(job: &mut Job) {
    job.spec = None;
    job.meta_mut().annotations = None;
}

pub use reconcile::Config;

/// Name of this controller in metrics, events and its field manager (`mutu-solr`).
pub const NAME: &str = "solr";

/// Runs the SolrIndex controller until `shutdown` completes.
pub async fn run(
    client: Client,
    metrics: Metrics,
    health: Health,
    config: Config,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    // The reindex Jobs: their state decides when an alias moves.
    let (jobs, job_stream) = slim_children_watch_of::<Job>(
        &client,
        &health,
        &metrics,
        &format!("{}={}", mutu_api::COMPONENT, reindex::COMPONENT),
        slim_job,
    );
    let (indexes, index_stream) = main_watch(
        Api::<DeserializeGuard<SolrIndex>>::all(client.clone()),
        watcher::Config::default(),
        &health,
        &metrics,
    );
    let controller = Controller::for_stream(index_stream, indexes)
        .watches_stream(job_stream, |job: Job| {
            let ns = job.namespace()?;
            job.owner_references()
                .iter()
                .find(|o| o.kind == "SolrIndex" && o.controller == Some(true))
                .map(|o| ObjectRef::new(&o.name).within(&ns))
        })
        .graceful_shutdown_on(shutdown);
    let ctx = Arc::new(Context::new(
        NAME,
        client,
        metrics,
        health,
        settings,
        reconcile::Caches {
            config,
            security: tokio::sync::Mutex::new(()),
            jobs,
            safety: tokio::sync::Mutex::new(None),
        },
    ));
    mutu_runtime::controller::run(controller, ctx, reconcile::reconcile).await;
}
