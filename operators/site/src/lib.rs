//! The PloneSite operator: for each hosted instance of a catalog product, its
//! storage (ZEO on a volume, or RelStorage), its instances spread over its
//! pool's nodes, Service, Ingress and Certificate for exactly its hostnames,
//! its search index, the site-creation Job and, on a release change, the
//! upgrade Job that must succeed before the instances move to the new release.
//! This crate exposes its controller, and the pure build and admission
//! functions that the benchmark and the provisioning operator reuse.

pub mod build;
mod fleet_metrics;
mod product;
mod reconcile;

use std::future::Future;
use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Pod, PodSpec, PodStatus, Secret, Service,
};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, predicates, watcher};
use kube::{Client, Resource, ResourceExt};
use mutu_api::{Certificate, MemberTenant, PloneSite, Product, SolrIndex};
use mutu_runtime::index::LabelIndex;
use mutu_runtime::labels::OWNER_UID;
use mutu_runtime::watch::{
    after_initial_list, indexed_children_watch, indexed_slim_children_watch, main_watch,
};
use mutu_runtime::{Context, Health, Metrics, Settings};

pub use reconcile::Config;

/// Name of this controller in metrics, events and its field manager (`mutu-site`).
pub const NAME: &str = "site";

/// The site a child or pod belongs to, from its labels.
fn owning_site<K: Resource>(obj: &K) -> Option<ObjectRef<DeserializeGuard<PloneSite>>> {
    let ns = obj.meta().namespace.as_deref()?;
    let site = obj.meta().labels.as_ref()?.get(build::SITE_LABEL)?;
    Some(ObjectRef::new(site).within(ns))
}

/// Keeps only what the site controller reads of a pod: labels, node, readiness.
fn slim_pod(pod: &mut Pod) {
    pod.meta_mut().annotations = None;
    let node_name = pod.spec.as_ref().and_then(|s| s.node_name.clone());
    pod.spec = Some(PodSpec {
        node_name,
        containers: Vec::new(),
        ..Default::default()
    });
    let status = pod.status.take().unwrap_or_default();
    pod.status = Some(PodStatus {
        phase: status.phase,
        conditions: status.conditions,
        ..Default::default()
    });
}

/// Keeps only a Job's identity and outcome.
fn slim_job(job: &mut Job) {
    job.spec = None;
}

/// Runs the site controller until `shutdown` completes.
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
    let (tenants, tenant_stream) = main_watch(
        Api::<DeserializeGuard<MemberTenant>>::all(client.clone()),
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

    // The children of each site and the pods of each site, found by label
    // without reading the caches of the whole fleet.
    let owned = LabelIndex::new(OWNER_UID);
    let pods_of_site = LabelIndex::new(build::SITE_LABEL);
    let (pods, pod_stream) =
        indexed_slim_children_watch::<Pod>(&client, &health, &metrics, slim_pod, &pods_of_site);
    let (jobs, job_stream) =
        indexed_slim_children_watch::<Job>(&client, &health, &metrics, slim_job, &owned);

    let (configs, config_stream) =
        indexed_children_watch::<ConfigMap>(&client, &health, &metrics, &owned);
    let (statefulsets, sts_stream) =
        indexed_children_watch::<StatefulSet>(&client, &health, &metrics, &owned);
    let (services, svc_stream) =
        indexed_children_watch::<Service>(&client, &health, &metrics, &owned);
    let (claims, claim_stream) =
        indexed_children_watch::<PersistentVolumeClaim>(&client, &health, &metrics, &owned);
    let (deployments, dep_stream) =
        indexed_children_watch::<Deployment>(&client, &health, &metrics, &owned);
    let (pdbs, pdb_stream) =
        indexed_children_watch::<PodDisruptionBudget>(&client, &health, &metrics, &owned);
    let (ingresses, ing_stream) =
        indexed_children_watch::<Ingress>(&client, &health, &metrics, &owned);
    let (certificates, cert_stream) =
        indexed_children_watch::<Certificate>(&client, &health, &metrics, &owned);
    let (indexes, idx_stream) =
        indexed_children_watch::<SolrIndex>(&client, &health, &metrics, &owned);
    // Only the administrators' Secrets are the site's (metadata only: the
    // operator never reads a password back).
    let (secrets, secret_stream) =
        indexed_children_watch::<Secret>(&client, &health, &metrics, &owned);

    // The catalog's counts follow the sites: every change of a site seen by
    // the site watch (once its cache is complete, so the count reads what the
    // event says) asks for its product to be recounted.
    let (recount, recount_rx) = futures::channel::mpsc::unbounded::<String>();
    let listed = sites.clone();
    let site_stream = site_stream.inspect(move |event| {
        if let Ok(DeserializeGuard(Ok(site))) = event
            && listed.wait_until_ready().now_or_never().is_some()
        {
            let _ = recount.unbounded_send(site.spec.product.clone());
        }
    });
    let data = reconcile::Caches {
        config,
        sites: sites.clone(),
        tenants: tenants.clone(),
        products: products.clone(),
        pods,
        jobs,
        configs,
        statefulsets,
        services,
        claims,
        deployments,
        pdbs,
        ingresses,
        certificates,
        indexes,
        secrets,
        owned,
        pods_of_site,
    };
    // The catalog's counts: recounted when a product or one of its sites changes.
    let catalog_ctx = Arc::new(Context::new(
        "product",
        client.clone(),
        metrics.clone(),
        health.clone(),
        settings.clone(),
        product::Caches {
            sites: sites.clone(),
            fleet: {
                let fleet = fleet_metrics::FleetMetrics::default();
                fleet.register(&metrics);
                fleet
            },
            recounted: Default::default(),
        },
    ));
    let shutdown = shutdown.shared();
    let (catalog_products, catalog_stream) = main_watch(
        Api::<DeserializeGuard<Product>>::all(client.clone()),
        watcher::Config::default(),
        &health,
        &metrics,
    );
    let catalog = Controller::for_stream(catalog_stream, catalog_products)
        .reconcile_on(recount_rx.map(|name| ObjectRef::new(&name)))
        .graceful_shutdown_on(shutdown.clone());
    let ctx = Arc::new(Context::new(NAME, client, metrics, health, settings, data));
    let queue = ctx.queue.clone();

    // A tenant change (suspension, entitlements, domains) re-checks its sites.
    let sites_of_tenant = sites.clone();
    let controller = Controller::for_stream(queue.watch(site_stream), sites)
        .watches_stream(pod_stream, queue.via(|p| owning_site(&p)))
        .watches_stream(job_stream, queue.via(|j| owning_site(&j)))
        .watches_stream(config_stream, queue.via(|o| owning_site(&o)))
        .watches_stream(sts_stream, queue.via(|o| owning_site(&o)))
        .watches_stream(svc_stream, queue.via(|o| owning_site(&o)))
        .watches_stream(claim_stream, queue.via(|o| owning_site(&o)))
        .watches_stream(dep_stream, queue.via(|o| owning_site(&o)))
        .watches_stream(pdb_stream, queue.via(|o| owning_site(&o)))
        .watches_stream(ing_stream, queue.via(|o| owning_site(&o)))
        .watches_stream(cert_stream, queue.via(|o| owning_site(&o)))
        .watches_stream(idx_stream, queue.via(|o| owning_site(&o)))
        .watches_stream(secret_stream, queue.via(|o| owning_site(&o)))
        // Only a change of a tenant's spec (generation) or of the domains it was
        // admitted with concerns its sites: the rest of its status counts them, and
        // each site's own status write would otherwise re-check all of its neighbours.
        .watches_stream(
            after_initial_list(
                tenant_stream
                    .predicate_filter(mutu_runtime::watch::tenant_admission, Default::default()),
                tenants,
            ),
            move |t: DeserializeGuard<MemberTenant>| {
                let ns = mutu_api::tenant_namespace(&t.name_any());
                sites_of_tenant
                    .state()
                    .into_iter()
                    .filter(|s| s.meta().namespace.as_deref() == Some(ns.as_str()))
                    .map(|s| ObjectRef::from_obj(&*s))
                    .collect::<Vec<_>>()
            },
        )
        // Likewise a Product's spec: its status counts the fleet's sites, and
        // re-checking every site on each count would never settle.
        .reconcile_all_on(
            after_initial_list(
                product_stream.predicate_filter(predicates::generation, Default::default()),
                products,
            )
            .map(|_| ()),
        )
        .graceful_shutdown_on(shutdown);
    let sites_done = mutu_runtime::controller::run(controller, ctx, reconcile::reconcile);
    let products_done = mutu_runtime::controller::run(catalog, catalog_ctx, product::reconcile);
    futures::join!(sites_done, products_done);
}
