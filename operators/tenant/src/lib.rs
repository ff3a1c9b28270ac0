//! The MemberTenant operator: for each member of the cooperative, a namespace
//! of its own with a quota derived from its entitlements, a LimitRange,
//! deny-by-default NetworkPolicies and its admins' access; deletion honours
//! `deletionPolicy`. This crate exposes its controller and nothing else.

pub mod build;
mod reconcile;
mod validate;

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, predicates, watcher};
use kube::{Client, Resource};
use mutu_api::common::TENANT_NAMESPACE_PREFIX;
use mutu_api::{MemberTenant, PloneSite, Product, TENANT_LABEL};
use mutu_runtime::watch::{after_initial_list, children_watch, main_watch};
use mutu_runtime::{Context, Health, Metrics, Settings};

pub use build::Config;

/// Name of this controller in metrics, events and its field manager (`mutu-tenant`).
pub const NAME: &str = "tenant";

/// Errors that stop the tenant controller from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot install the ClusterRole {role} for tenant admins: {source}")]
    AdminRole {
        role: &'static str,
        #[source]
        source: mutu_runtime::ApplyError,
    },
}

/// Tenants that own a child: through the owner reference (namespaced children
/// of a cluster-scoped tenant) or the tenant label (the namespace itself).
fn owning_tenant<K: Resource>(obj: &K) -> Option<ObjectRef<DeserializeGuard<MemberTenant>>> {
    let by_owner = obj
        .meta()
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == "MemberTenant")
        .map(|o| o.name.clone());
    by_owner
        .or_else(|| obj.meta().labels.as_ref()?.get(TENANT_LABEL).cloned())
        .map(|name| ObjectRef::new(&name))
}

/// Runs the tenant controller until `shutdown` completes.
pub async fn run(
    client: Client,
    metrics: Metrics,
    health: Health,
    config: Config,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), StartError> {
    // Written only when it differs from the copy in the cluster.
    mutu_runtime::Applier::new(client.clone(), NAME, metrics.clone())
        .apply_uncached(build::admin_cluster_role())
        .await
        .map_err(|source| StartError::AdminRole {
            role: build::ADMIN_ROLE,
            source,
        })?;

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
    let (sites, site_stream) = main_watch(
        Api::<DeserializeGuard<PloneSite>>::all(client.clone()),
        watcher::Config::default(),
        &health,
        &metrics,
    );
    let (namespaces, ns_stream) = children_watch::<Namespace>(&client, &health, &metrics);
    let (quotas, quota_stream) = children_watch::<ResourceQuota>(&client, &health, &metrics);
    let (limits, limit_stream) = children_watch::<LimitRange>(&client, &health, &metrics);
    let (policies, policy_stream) = children_watch::<NetworkPolicy>(&client, &health, &metrics);
    let (bindings, binding_stream) = children_watch::<RoleBinding>(&client, &health, &metrics);
    let (reader_roles, reader_role_stream) =
        children_watch::<ClusterRole>(&client, &health, &metrics);
    let (reader_bindings, reader_binding_stream) =
        children_watch::<ClusterRoleBinding>(&client, &health, &metrics);

    // A tenant whose domains change may free or take a domain that another
    // tenant claims: its reconcile asks for those tenants to be checked again.
    let (recheck, recheck_rx) = futures::channel::mpsc::unbounded();
    let data = reconcile::Caches {
        recheck,
        config,
        tenants: tenants.clone(),
        products: products.clone(),
        sites: sites.clone(),
        namespaces: namespaces.clone(),
        quotas: quotas.clone(),
        limits: limits.clone(),
        policies: policies.clone(),
        bindings: bindings.clone(),
        reader_roles: reader_roles.clone(),
        reader_bindings: reader_bindings.clone(),
    };
    let ctx = Arc::new(Context::new(NAME, client, metrics, health, settings, data));
    let queue = ctx.queue.clone();

    let controller = Controller::for_stream(queue.watch(tenant_stream), tenants)
        .watches_stream(ns_stream, queue.via(|ns| owning_tenant(&ns)))
        .watches_stream(quota_stream, queue.via(|q| owning_tenant(&q)))
        .watches_stream(limit_stream, queue.via(|l| owning_tenant(&l)))
        .watches_stream(policy_stream, queue.via(|p| owning_tenant(&p)))
        .watches_stream(binding_stream, queue.via(|b| owning_tenant(&b)))
        .watches_stream(reader_role_stream, queue.via(|r| owning_tenant(&r)))
        .watches_stream(reader_binding_stream, queue.via(|b| owning_tenant(&b)))
        // A tenant's status counts its sites by product: only a site's
        // creation, spec (generation) and deletion (which bumps the generation
        // when it starts) change that, not the status writes of its progress.
        .watches_stream(
            after_initial_list(
                site_stream.predicate_filter(predicates::generation, Default::default()),
                sites.clone(),
            ),
            |site: DeserializeGuard<PloneSite>| {
                let ns = site.meta().namespace.clone().unwrap_or_default();
                ns.strip_prefix(TENANT_NAMESPACE_PREFIX).map(ObjectRef::new)
            },
        )
        // Likewise a Product's spec (its quota), not its status, which counts
        // the fleet's sites and changes with every site's progress.
        .reconcile_all_on(
            after_initial_list(
                product_stream.predicate_filter(predicates::generation, Default::default()),
                products.clone(),
            )
            .map(|_| ()),
        )
        .reconcile_on(recheck_rx)
        .graceful_shutdown_on(shutdown);
    mutu_runtime::controller::run(controller, ctx, reconcile::reconcile).await;
    Ok(())
}
