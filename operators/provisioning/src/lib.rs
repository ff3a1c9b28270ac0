//! The ProvisioningRequest operator: members ask for new sites; mutu checks
//! each request against the member's entitlements, domains, names and quota
//! (every reason at once), approves it when the member's or product's policy
//! says so or waits for an approver, then creates the PloneSite (or, in GitOps
//! mode, records its YAML for a pull request) and follows it to Ready. This
//! crate exposes its controller, its checks and the approver role.

pub mod check;
pub mod rbac;
mod reconcile;

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, predicates, watcher};
use kube::{Client, ResourceExt};
use mutu_api::common::TENANT_NAMESPACE_PREFIX;
use mutu_api::{MemberTenant, PloneSite, Product, ProvisioningRequest};
use mutu_runtime::watch::{after_initial_list, main_watch};
use mutu_runtime::{Context, Health, Metrics, Settings};

/// Name of this controller in metrics, events and its field manager (`mutu-provisioning`).
pub const NAME: &str = "provisioning";

/// Operator-wide settings of the provisioning controller.
#[derive(Clone, Debug)]
pub struct Config {
    /// How the tenant operator sizes quotas (a request must fit in them).
    pub tenant: mutu_model::quota::Config,
    /// Group (as the identity provider sends it) bound to the approver role.
    pub approvers_group: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            tenant: mutu_model::quota::Config::default(),
            approvers_group: rbac::DEFAULT_APPROVERS_GROUP.to_string(),
        }
    }
}

/// Errors that stop the provisioning controller from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot install the approver role {name}: {source}")]
    Rbac {
        name: &'static str,
        #[source]
        source: mutu_runtime::ApplyError,
    },
}

/// The requests of namespace `ns`.
fn requests_in(
    store: &Store<DeserializeGuard<ProvisioningRequest>>,
    ns: Option<&str>,
) -> Vec<ObjectRef<DeserializeGuard<ProvisioningRequest>>> {
    let Some(ns) = ns else { return Vec::new() };
    store
        .state()
        .iter()
        .filter(|r| r.0.as_ref().ok().and_then(|r| r.namespace()).as_deref() == Some(ns))
        .filter_map(|r| {
            let r = r.0.as_ref().ok()?;
            Some(ObjectRef::new(&r.name_any()).within(ns))
        })
        .collect()
}

/// Runs the provisioning controller until `shutdown` completes.
pub async fn run(
    client: Client,
    metrics: Metrics,
    health: Health,
    config: Config,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), StartError> {
    // Written only when they differ from the copies in the cluster.
    let applier = mutu_runtime::Applier::new(client.clone(), NAME, metrics.clone());
    let rbac_error = |source| StartError::Rbac {
        name: rbac::APPROVER_ROLE,
        source,
    };
    applier
        .apply_uncached(rbac::approver_role())
        .await
        .map_err(rbac_error)?;
    applier
        .apply_uncached(rbac::approver_binding(&config.approvers_group))
        .await
        .map_err(rbac_error)?;

    let (requests, request_stream) = main_watch(
        Api::<DeserializeGuard<ProvisioningRequest>>::all(client.clone()),
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
    let (sites, site_stream) = main_watch(
        Api::<DeserializeGuard<PloneSite>>::all(client.clone()),
        watcher::Config::default(),
        &health,
        &metrics,
    );
    let data = reconcile::Caches {
        tenant_config: config.tenant,
        requests: requests.clone(),
        tenants: tenants.clone(),
        products: products.clone(),
        sites: sites.clone(),
    };
    let ctx = Arc::new(Context::new(NAME, client, metrics, health, settings, data));
    let queue = ctx.queue.clone();

    let by_site = requests.clone();
    let by_tenant = requests.clone();
    let controller = Controller::for_stream(queue.watch(request_stream), requests)
        // A site's creation, readiness or deletion changes what the requests
        // of its namespace find: a hostname or name taken, an entitlement
        // used, their own site Ready.
        .watches_stream(
            after_initial_list(site_stream, sites.clone()),
            queue.via(move |site: DeserializeGuard<PloneSite>| {
                let ns = match &site.0 {
                    Ok(s) => s.namespace(),
                    Err(e) => e.metadata.namespace.clone(),
                };
                requests_in(&by_site, ns.as_deref())
            }),
        )
        // A tenant's entitlements, domains, policy or readiness.
        .watches_stream(
            after_initial_list(tenant_stream, tenants.clone()),
            queue.via(move |tenant: DeserializeGuard<MemberTenant>| {
                let ns = match &tenant.0 {
                    Ok(t) => Some(format!("{TENANT_NAMESPACE_PREFIX}{}", t.name_any())),
                    Err(_) => None,
                };
                requests_in(&by_tenant, ns.as_deref())
            }),
        )
        // A Product's spec (its policy, quota or replicas), not its status.
        .reconcile_all_on(
            after_initial_list(
                product_stream.predicate_filter(predicates::generation, Default::default()),
                products.clone(),
            )
            .map(|_| ()),
        )
        .graceful_shutdown_on(shutdown);
    mutu_runtime::controller::run(controller, ctx, reconcile::reconcile).await;
    Ok(())
}
