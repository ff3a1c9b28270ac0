//! One reconcile of a MemberTenant: validate against all tenants (pure), build
//! the children (pure), apply what changed, prune what is no longer wanted,
//! then write the status from what was applied. Deletion goes through a
//! finalizer that honours `deletionPolicy`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use kube::api::{Api, Patch, PatchParams};
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::controller::Action;
use kube::runtime::finalizer;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use mutu_api::common::DeletionPolicy;
use mutu_api::tenant::MemberTenantStatus;
use mutu_api::{MemberTenant, PloneSite, Product, ProductSpec, TENANT_LABEL, tenant_namespace};
use mutu_runtime::conditions::{self, Desired as Cond};
use mutu_runtime::controller::finalizer_reason;
use mutu_runtime::{ApplyError, Context, Reason};
use serde_json::json;

use crate::build::{self, Config};
use crate::validate::{self, Refusal};

/// Finalizer that lets mutu honour `deletionPolicy` before a tenant goes.
pub const FINALIZER: &str = "hosting.imio.be/tenant";
/// Annotation put on a namespace kept after its tenant was deleted.
pub const RETAINED: &str = "hosting.imio.be/retained-from-tenant";

/// The caches and settings of the tenant controller.
pub struct Caches {
    pub config: Config,
    /// Asks the controller to reconcile other tenants (domain claims changed).
    pub recheck: futures::channel::mpsc::UnboundedSender<ObjectRef<DeserializeGuard<MemberTenant>>>,
    pub tenants: Store<DeserializeGuard<MemberTenant>>,
    pub products: Store<DeserializeGuard<Product>>,
    pub sites: Store<DeserializeGuard<PloneSite>>,
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    pub quotas: Store<PartialObjectMeta<ResourceQuota>>,
    pub limits: Store<PartialObjectMeta<LimitRange>>,
    pub policies: Store<PartialObjectMeta<NetworkPolicy>>,
    pub bindings: Store<PartialObjectMeta<RoleBinding>>,
    pub reader_roles: Store<PartialObjectMeta<ClusterRole>>,
    pub reader_bindings: Store<PartialObjectMeta<ClusterRoleBinding>>,
}

/// Why a tenant reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("cannot write the MemberTenant status: {0}")]
    Status(#[source] kube::Error),
    #[error("cannot read or change the namespace {namespace}: {source}")]
    Namespace {
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("namespace {namespace} is still being deleted; the MemberTenant goes when it is gone")]
    Terminating { namespace: String },
    #[error("{0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
}

impl Reason for Error {
    fn reason(&self) -> &'static str {
        match self {
            Error::Apply(_) => "ApplyFailed",
            Error::Status(_) => "StatusFailed",
            Error::Namespace { .. } => "NamespaceFailed",
            Error::Terminating { .. } => "NamespaceTerminating",
            Error::Finalizer(inner) => finalizer_reason(inner),
        }
    }
}

type Ctx = Context<Caches>;

impl Caches {
    /// Waits until every cache has its first full list, so that a reconcile
    /// never mistakes a not-yet-listed child for a missing one (which would
    /// write after every restart).
    async fn ready(&self) -> bool {
        mutu_runtime::controller::caches_listed(async {
            let _ = self.tenants.wait_until_ready().await;
            let _ = self.products.wait_until_ready().await;
            let _ = self.sites.wait_until_ready().await;
            let _ = self.namespaces.wait_until_ready().await;
            let _ = self.quotas.wait_until_ready().await;
            let _ = self.limits.wait_until_ready().await;
            let _ = self.policies.wait_until_ready().await;
            let _ = self.bindings.wait_until_ready().await;
            let _ = self.reader_roles.wait_until_ready().await;
            let _ = self.reader_bindings.wait_until_ready().await;
        })
        .await
    }

    /// The cached tenants, shared with the cache (not copied).
    fn tenants(&self) -> Vec<Arc<DeserializeGuard<MemberTenant>>> {
        self.tenants.state()
    }

    /// Asks for the tenants that `tenant`'s domain claims may affect to be
    /// checked again: those overlapping its domains, and those refused for a
    /// domain conflict. Only when its spec changed (or it goes), so two
    /// tenants never re-trigger each other forever.
    fn recheck_neighbours(&self, tenant: &MemberTenant) {
        let spec_changed =
            tenant.status.as_ref().and_then(|s| s.observed_generation) != tenant.meta().generation;
        if !spec_changed && tenant.meta().deletion_timestamp.is_none() {
            return;
        }
        let cached = self.tenants();
        let all: Vec<&MemberTenant> = cached.iter().filter_map(|t| t.0.as_ref().ok()).collect();
        let mut names = validate::overlapping(tenant, all.iter().copied());
        names.extend(all.iter().filter_map(|t| {
            let ready =
                conditions::find(&t.status.as_ref()?.conditions, mutu_api::CONDITION_READY)?;
            (ready.reason == "DomainConflict").then(|| t.name_any())
        }));
        names.sort();
        names.dedup();
        for name in names.into_iter().filter(|n| *n != tenant.name_any()) {
            let _ = self.recheck.unbounded_send(ObjectRef::new(&name));
        }
    }
}

pub async fn reconcile(tenant: Arc<MemberTenant>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if !ctx.data.ready().await {
        return Ok(mutu_runtime::controller::not_listed_yet());
    }
    ctx.data.recheck_neighbours(&tenant);
    let api: Api<MemberTenant> = Api::all(ctx.client().clone());
    let (c, a) = (&ctx, &api);
    ctx.finalized(
        &api,
        FINALIZER,
        tenant,
        |tenant| async move { provision(&tenant, c, a).await },
        |tenant| async move { release(&tenant, c).await },
    )
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

fn catalog(store: &Store<DeserializeGuard<Product>>) -> BTreeMap<String, ProductSpec> {
    store
        .state()
        .iter()
        .filter_map(|p| p.0.as_ref().ok())
        .map(|p| (p.name_any(), p.spec.clone()))
        .collect()
}

/// Sites of the namespace `ns`, counted per product; a site being deleted no
/// longer counts.
fn sites_per_product(
    store: &Store<DeserializeGuard<PloneSite>>,
    ns: &str,
) -> BTreeMap<String, i32> {
    let mut counts = BTreeMap::new();
    for site in store.state() {
        if let Ok(site) = &site.0
            && site.metadata.namespace.as_deref() == Some(ns)
            && site.metadata.deletion_timestamp.is_none()
        {
            *counts.entry(site.spec.product.clone()).or_insert(0) += 1;
        }
    }
    counts
}

/// Checks the namespace `ns` is free or already this tenant's.
async fn namespace_refusal(
    tenant: &MemberTenant,
    ns: &str,
    ctx: &Ctx,
) -> Result<Option<Refusal>, Error> {
    let name = tenant.name_any();
    let owner_of = |labels: &BTreeMap<String, String>| labels.get(TENANT_LABEL).cloned();
    if let Some(cached) = ctx.data.namespaces.get(&ObjectRef::new(ns)) {
        return Ok(match owner_of(cached.labels()) {
            Some(owner) if owner == name => None,
            other => Some(Refusal::NamespaceTaken {
                namespace: ns.to_string(),
                owner: other,
            }),
        });
    }
    let api: Api<Namespace> = Api::all(ctx.client().clone());
    let existing = api
        .get_metadata_opt(ns)
        .await
        .map_err(|source| Error::Namespace {
            namespace: ns.to_string(),
            source,
        })?;
    Ok(existing.and_then(|found| match owner_of(found.labels()) {
        Some(owner) if owner == name => None,
        other => Some(Refusal::NamespaceTaken {
            namespace: ns.to_string(),
            owner: other,
        }),
    }))
}

async fn provision(
    tenant: &MemberTenant,
    ctx: &Ctx,
    api: &Api<MemberTenant>,
) -> Result<Action, Error> {
    let name = tenant.name_any();
    let ns = tenant_namespace(&name);
    let cached = ctx.data.tenants();
    let all = cached.iter().filter_map(|t| t.0.as_ref().ok());
    let mut refusals = validate::refusals(tenant, all);
    if refusals.is_empty()
        && let Some(taken) = namespace_refusal(tenant, &ns, ctx).await?
    {
        refusals.push(taken);
    }

    let current = tenant.status.clone().unwrap_or_default();
    let mut desired_status = MemberTenantStatus {
        observed_generation: tenant.meta().generation,
        namespace: current.namespace.clone(),
        sites: sites_per_product(&ctx.data.sites, &ns),
        ..current.clone()
    };
    let mut conds = Vec::new();
    let suspended = tenant.spec.suspended;
    conds.push(Cond::new(
        "Suspended",
        suspended,
        if suspended { "Suspended" } else { "Active" },
        if suspended {
            "spec.suspended is true: the member's sites are scaled to zero and serve nothing; no data is deleted"
        } else {
            "the member's sites are served"
        },
    ));

    if let Some(first) = refusals.first() {
        // An admitted tenant keeps the domains it held and still asks for (or, admitted
        // before they were recorded, those not refused); one never admitted holds none.
        let refused: BTreeSet<&str> = refusals.iter().filter_map(Refusal::domain).collect();
        let held = match (&current.domains, &current.namespace) {
            (Some(held), _) => held.clone(),
            (None, Some(_)) => tenant.spec.domains.clone(),
            (None, None) => Vec::new(),
        };
        desired_status.domains = Some(
            held.into_iter()
                .filter(|d| tenant.spec.domains.contains(d) && !refused.contains(d.as_str()))
                .collect(),
        );
        let message = refusals
            .iter()
            .map(Refusal::message)
            .collect::<Vec<_>>()
            .join("; ");
        conds.push(Cond::new(
            mutu_api::CONDITION_READY,
            false,
            first.reason(),
            message.clone(),
        ));
        let changed = ctx
            .write_status(api, tenant, desired_status, &conds)
            .await
            .map_err(Error::Status)?;
        if changed {
            ctx.event(tenant, true, first.reason(), message).await;
        }
        return Ok(ctx.requeue());
    }

    let desired = build::build(tenant, &catalog(&ctx.data.products), &ctx.data.config);
    let applier = &ctx.applier;
    applier
        .apply(&ctx.data.namespaces, desired.namespace)
        .await?;
    applier.apply(&ctx.data.quotas, desired.quota).await?;
    applier.apply(&ctx.data.limits, desired.limits).await?;
    applier.apply(&ctx.data.bindings, desired.admins).await?;
    applier
        .apply(&ctx.data.reader_roles, desired.reader_role)
        .await?;
    applier
        .apply(&ctx.data.reader_bindings, desired.reader_binding)
        .await?;
    let mut keep = BTreeSet::new();
    for policy in desired.policies {
        keep.insert((policy.namespace(), policy.name_any()));
        applier.apply(&ctx.data.policies, policy).await?;
    }
    let uid = tenant.uid().unwrap_or_default();
    applier.prune(&ctx.data.policies, &uid, &keep).await?;

    desired_status.namespace = Some(ns.clone());
    desired_status.domains = Some(tenant.spec.domains.clone());
    let usage: Vec<String> = tenant
        .spec
        .entitlements
        .iter()
        .map(|(p, n)| {
            format!(
                "{p} {}/{n}",
                desired_status.sites.get(p).copied().unwrap_or(0)
            )
        })
        .collect();
    let mut message = format!(
        "namespace {ns} with quota, network policies and admin access in place; sites: {}",
        if usage.is_empty() {
            "none entitled".to_string()
        } else {
            usage.join(", ")
        }
    );
    if !desired.unknown_products.is_empty() {
        message.push_str(&format!(
            "; entitled products not in the catalog, left out of the quota: {}",
            desired.unknown_products.join(", ")
        ));
    }
    conds.push(Cond::new(
        mutu_api::CONDITION_READY,
        true,
        "Provisioned",
        message,
    ));
    let was_ready = conditions::is_true(&current.conditions, mutu_api::CONDITION_READY);
    ctx.write_status(api, tenant, desired_status, &conds)
        .await
        .map_err(Error::Status)?;
    if !was_ready {
        ctx.event(
            tenant,
            false,
            "Provisioned",
            format!("namespace {ns} is ready for the member's sites"),
        )
        .await;
    }
    Ok(ctx.requeue())
}

/// The quota, limits and network policies of a retained namespace stay while its sites may
/// run: they lose their owner (the tenant), so that the garbage collector keeps them.
async fn keep_guards(tenant: &MemberTenant, ns: &str, ctx: &Ctx) -> Result<(), Error> {
    let uid = tenant.uid().unwrap_or_default();
    orphan::<ResourceQuota>(&ctx.data.quotas, &uid, ns, ctx).await?;
    orphan::<LimitRange>(&ctx.data.limits, &uid, ns, ctx).await?;
    orphan::<NetworkPolicy>(&ctx.data.policies, &uid, ns, ctx).await
}

/// Removes the owner references of the objects of `store` in `ns` that `uid` owns.
async fn orphan<K>(
    store: &Store<PartialObjectMeta<K>>,
    uid: &str,
    ns: &str,
    ctx: &Ctx,
) -> Result<(), Error>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let orphan = json!({"metadata": {"ownerReferences": null}});
    for obj in store.state() {
        if obj.namespace().as_deref() == Some(ns)
            && obj.owner_references().iter().any(|o| o.uid == uid)
        {
            Api::<K>::namespaced(ctx.client().clone(), ns)
                .patch_metadata(
                    &obj.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&orphan),
                )
                .await
                .map_err(|source| Error::Namespace {
                    namespace: ns.to_string(),
                    source,
                })?;
            ctx.metrics.write(ctx.name, "patch", &K::kind(&()));
        }
    }
    Ok(())
}

/// Deletion: `Retain` keeps the namespace and everything in it, its quota, limits and
/// network policies too (only mutu's hold and the admins' access go); `Delete` deletes
/// the namespace and waits until it is gone.
async fn release(tenant: &MemberTenant, ctx: &Ctx) -> Result<Action, Error> {
    let name = tenant.name_any();
    let ns = tenant_namespace(&name);
    let api: Api<Namespace> = Api::all(ctx.client().clone());
    let err = |source| Error::Namespace {
        namespace: ns.clone(),
        source,
    };
    let existing = api.get_metadata_opt(&ns).await.map_err(err)?;
    let ours = existing
        .as_ref()
        .is_some_and(|n| n.labels().get(TENANT_LABEL) == Some(&name));
    match (tenant.spec.deletion_policy, existing) {
        (_, None) => Ok(Action::await_change()),
        (_, Some(_)) if !ours => Ok(Action::await_change()),
        (DeletionPolicy::Retain, Some(found)) => {
            keep_guards(tenant, &ns, ctx).await?;
            if !found.annotations().contains_key(RETAINED) {
                let patch = json!({"metadata": {"annotations": {RETAINED: name}}});
                api.patch_metadata(&ns, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(err)?;
                ctx.metrics.write(ctx.name, "patch", "Namespace");
                ctx.event(
                    tenant,
                    false,
                    "Retained",
                    format!("deletionPolicy Retain: namespace {ns} and all its data are kept; delete it by hand when no longer needed"),
                )
                .await;
            }
            Ok(Action::await_change())
        }
        (DeletionPolicy::Delete, Some(found)) => {
            if found.meta().deletion_timestamp.is_none() {
                ctx.applier.delete::<Namespace>(None, &ns).await?;
                ctx.event(
                    tenant,
                    false,
                    "Deleting",
                    format!("deletionPolicy Delete: deleting namespace {ns}"),
                )
                .await;
            }
            // The finalizer stays until a later reconcile finds the namespace gone.
            Err(Error::Terminating { namespace: ns })
        }
    }
}
