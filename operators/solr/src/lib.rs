//! The SolrIndex operator: for each site's index in the shared SolrCloud, the
//! configset version (uploaded once), the collection built from it, the alias
//! Plone queries, and a Solr user of the site's own that may use only its
//! collection. This crate exposes its controller and nothing else.

mod configset;
mod reconcile;

use std::future::Future;
use std::sync::Arc;

use kube::Client;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Controller;
use kube::runtime::watcher;
use mutu_api::SolrIndex;
use mutu_runtime::{Context, Health, Metrics, Settings};

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
    let controller = Controller::new(
        Api::<DeserializeGuard<SolrIndex>>::all(client.clone()),
        watcher::Config::default(),
    )
    .graceful_shutdown_on(shutdown);
    let ctx = Arc::new(Context::new(
        NAME,
        client,
        metrics,
        health,
        settings,
        reconcile::Data {
            config,
            security: tokio::sync::Mutex::new(()),
        },
    ));
    mutu_runtime::controller::run(controller, ctx, reconcile::reconcile).await;
}
