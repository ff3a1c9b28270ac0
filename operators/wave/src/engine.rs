//! The wave engine: MigrationPlans and ReleaseRollouts drive their sites
//! through their steps, a few at a time, wave after wave.
//!
//! Every step of every site is recorded in the plan's status before its work
//! starts, and the work of a step is idempotent (objects with fixed names,
//! annotations set to a value), so an operator killed at any point resumes
//! where it was: it repeats the work of the recorded step, which finds it
//! done, and never starts a step it has not recorded.
//!
//! This module reads the caches, records the plan's status and does the
//! plan-level work (nodes, old volumes, events); what to do is decided in
//! `plan` (the plan) and `step` (each site), and done for a site by `act`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::core::DeserializeGuard;
use kube::core::object::HasStatus;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use mutu_api::common::SITE_LABEL;
use mutu_api::wave::{SiteProgress, WaveStatus};
use mutu_api::{Backup, MigrationPlan, PloneSite, Product, ProductSpec, ReleaseRollout};
use mutu_model::wave::progress;
use mutu_model::wave::{self, Cohort};
use mutu_runtime::conditions::Desired as Cond;
use mutu_runtime::{Context, Reason};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::plan::{self, Finished, Kind, PlanRef};

/// Settings of the wave engine.
#[derive(Clone, Debug)]
pub struct Config {
    /// How often a plan with sites in flight re-checks them.
    pub tick: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(5),
        }
    }
}

type Labels = Vec<(&'static str, String)>;

/// `mutu_wave_sites{kind,plan,state}`: the sites of each plan by state.
#[derive(Clone, Default)]
pub struct WaveMetrics {
    sites: prometheus_client::metrics::family::Family<
        Labels,
        prometheus_client::metrics::gauge::Gauge,
    >,
}

impl WaveMetrics {
    pub fn register(&self, metrics: &mutu_runtime::Metrics) {
        metrics.register(|r| {
            r.register(
                "wave_sites",
                "Sites of each MigrationPlan and ReleaseRollout by state (pending, in_flight, done, failed)",
                self.sites.clone(),
            );
        });
    }

    fn set(&self, kind: &str, plan: &str, counts: &mutu_api::wave::SiteCounts) {
        for (state, n) in [
            ("pending", counts.pending),
            ("in_flight", counts.in_flight),
            ("done", counts.done),
            ("failed", counts.failed),
        ] {
            self.sites
                .get_or_create(&vec![
                    ("kind", kind.to_string()),
                    ("plan", plan.to_string()),
                    ("state", state.to_string()),
                ])
                .set(i64::from(n));
        }
    }

    fn forget(&self, kind: &str, plan: &str) {
        for state in ["pending", "in_flight", "done", "failed"] {
            self.sites.remove(&vec![
                ("kind", kind.to_string()),
                ("plan", plan.to_string()),
                ("state", state.to_string()),
            ]);
        }
    }
}

/// The caches of the engine.
pub struct Caches {
    pub config: Config,
    pub sites: Store<DeserializeGuard<PloneSite>>,
    pub products: Store<DeserializeGuard<Product>>,
    pub migrations: Store<DeserializeGuard<MigrationPlan>>,
    pub rollouts: Store<DeserializeGuard<ReleaseRollout>>,
    pub backups: Store<DeserializeGuard<Backup>>,
    pub nodes: Store<Node>,
    pub pods: Store<Pod>,
    /// The status each plan was last given (by uid): the cache may lag behind
    /// the engine's own writes, and a step must never be taken twice.
    pub memo: Mutex<HashMap<String, WaveStatus>>,
    /// Plans seen (uid → kind and name), to drop the metrics of deleted ones.
    pub seen: Mutex<HashMap<String, (&'static str, String)>>,
    pub metrics: WaveMetrics,
}

impl Caches {
    pub(crate) async fn ready(&self) -> bool {
        mutu_runtime::controller::caches_listed(async {
            let _ = self.sites.wait_until_ready().await;
            let _ = self.products.wait_until_ready().await;
            let _ = self.migrations.wait_until_ready().await;
            let _ = self.rollouts.wait_until_ready().await;
            let _ = self.backups.wait_until_ready().await;
            let _ = self.nodes.wait_until_ready().await;
            let _ = self.pods.wait_until_ready().await;
        })
        .await
    }

    pub(crate) fn site(&self, ns: &str, name: &str) -> Option<PloneSite> {
        self.sites
            .get(&ObjectRef::new(name).within(ns))
            .and_then(|s| s.0.as_ref().ok().cloned())
    }

    pub(crate) fn all_sites(&self) -> Vec<PloneSite> {
        self.sites
            .state()
            .iter()
            .filter_map(|s| s.0.as_ref().ok().cloned())
            .collect()
    }

    pub(crate) fn product(&self, name: &str) -> Option<ProductSpec> {
        self.products
            .get(&ObjectRef::new(name))
            .and_then(|p| p.0.as_ref().ok().map(|p| p.spec.clone()))
    }

    pub(crate) fn backup(&self, ns: &str, name: &str) -> Option<Backup> {
        self.backups
            .get(&ObjectRef::new(name).within(ns))
            .and_then(|b| b.0.as_ref().ok().cloned())
    }

    pub(crate) fn node_pool(&self, node: &str) -> Option<String> {
        self.nodes
            .get(&ObjectRef::new(node))
            .and_then(|n| n.labels().get(mutu_api::POOL_LABEL).cloned())
    }

    /// The site's server pods (instances and ZEO), wherever they are.
    pub(crate) fn server_pods(&self, ns: &str, site: &str) -> Vec<Arc<Pod>> {
        self.pods
            .state()
            .into_iter()
            .filter(|p| {
                p.namespace().as_deref() == Some(ns)
                    && p.labels().get(SITE_LABEL).map(String::as_str) == Some(site)
                    && matches!(
                        p.labels().get(mutu_api::COMPONENT).map(String::as_str),
                        Some("instance" | "zeo")
                    )
            })
            .collect()
    }

    /// Sites in flight in any plan but `uid`.
    pub(crate) fn busy_elsewhere(&self, uid: &str) -> BTreeSet<String> {
        let migrations = self.migrations.state();
        let rollouts = self.rollouts.state();
        let statuses = migrations
            .iter()
            .filter_map(|m| m.0.as_ref().ok())
            .map(|m| (m.uid(), m.status.as_ref()))
            .chain(
                rollouts
                    .iter()
                    .filter_map(|r| r.0.as_ref().ok())
                    .map(|r| (r.uid(), r.status.as_ref())),
            );
        plan::busy_elsewhere(uid, statuses)
    }
}

/// The finalizer of plans: a plan being deleted starts no more sites, lets
/// those in flight finish (done, or put back where they were), puts back in
/// service the nodes it cordoned when it did not complete, and only then goes.
pub const FINALIZER: &str = "hosting.imio.be/wave";

/// How long a changed site may take to be Ready, by default.
const DEFAULT_VERIFY: Duration = Duration::from_secs(600);
const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Why a reconcile of a plan failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot {what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
}

impl Reason for Error {
    fn reason(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "ApiError",
        }
    }
}

pub fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Kube { what, source }
}

pub type Ctx = Context<Caches>;

fn std_duration(d: Option<&kube::core::Duration>, default: Duration) -> Duration {
    d.map(|d| Duration::from(*d)).unwrap_or(default)
}

pub async fn reconcile_migration(plan: Arc<MigrationPlan>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let s = &plan.spec;
    let plan_ref = PlanRef {
        kind: Kind::Migration {
            from: s.from.as_str().to_string(),
            to: s.to.as_str().to_string(),
        },
        name: plan.name_any(),
        uid: plan.uid().unwrap_or_default(),
        owner: plan.controller_owner_ref(&()).unwrap_or_default(),
        wave_size: s.wave_size,
        max_in_flight: s.max_in_flight,
        window: s.window.clone(),
        paused: s.paused,
        threshold: s.failure_threshold,
        verify: std_duration(s.verify_timeout.as_ref(), DEFAULT_VERIFY),
        retention: std_duration(s.retention.as_ref(), DEFAULT_RETENTION),
    };
    let spec = s.clone();
    advance_plan(plan.as_ref(), plan_ref, &ctx, move |sites| {
        wave::migration_candidates(&spec, sites).map_err(|e| e.to_string())
    })
    .await
}

pub async fn reconcile_rollout(plan: Arc<ReleaseRollout>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let s = &plan.spec;
    let plan_ref = PlanRef {
        kind: Kind::Rollout {
            product: s.product.clone(),
            release: s.release.clone(),
        },
        name: plan.name_any(),
        uid: plan.uid().unwrap_or_default(),
        owner: plan.controller_owner_ref(&()).unwrap_or_default(),
        wave_size: s.wave_size,
        max_in_flight: s.max_in_flight,
        window: s.window.clone(),
        paused: s.paused,
        threshold: s.failure_threshold,
        verify: std_duration(s.verify_timeout.as_ref(), DEFAULT_VERIFY),
        retention: DEFAULT_RETENTION,
    };
    let spec = s.clone();
    advance_plan(plan.as_ref(), plan_ref, &ctx, move |sites| {
        wave::rollout_candidates(&spec, sites).map_err(|e| e.to_string())
    })
    .await
}

fn now_time() -> Time {
    Time(mutu_runtime::status::now())
}

/// A plan's object as the engine handles it, for both kinds.
pub trait Plan:
    Resource<DynamicType = ()>
    + Clone
    + DeserializeOwned
    + Serialize
    + std::fmt::Debug
    + HasStatus<Status = WaveStatus>
{
}

impl<K> Plan for K where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug
        + HasStatus<Status = WaveStatus>
{
}

/// One reconcile of a plan of either kind.
async fn advance_plan<K: Plan>(
    plan: &K,
    plan_ref: PlanRef,
    ctx: &Ctx,
    candidates_of: impl Fn(&[PloneSite]) -> Result<Vec<Cohort>, String>,
) -> Result<Action, Error> {
    let data = &ctx.data;
    if !data.ready().await {
        return Ok(mutu_runtime::controller::not_listed_yet());
    }
    let api: Api<K> = Api::all(ctx.client().clone());
    let deleting = plan.meta().deletion_timestamp.is_some();
    let finalized = plan.finalizers().iter().any(|f| f == FINALIZER);
    if deleting && !finalized {
        return Ok(Action::await_change());
    }
    if !finalized {
        // The write brings the plan back with its finalizer; the work starts then.
        let mut list = plan.finalizers().to_vec();
        list.push(FINALIZER.to_string());
        set_finalizers(ctx, &api, plan, &plan_ref, list).await?;
        return Ok(Action::await_change());
    }
    let memo = data
        .memo
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&plan_ref.uid)
        .cloned();
    // Without a memo of the status last written (after a start, or a status write that
    // failed, perhaps after the API server applied it), the plan as it is now: a cache
    // lagging behind that write would have the plan redo a step it recorded done, or
    // write a site back to a step it had left (found by the model check, tests/model.rs).
    let fresh = match memo {
        Some(_) => None,
        None => match api.get_opt(&plan_ref.name).await {
            Ok(Some(now)) => Some(now),
            Ok(None) => return Ok(Action::await_change()),
            Err(source) => {
                return Err(Error::Kube {
                    what: format!("read the plan {}", plan_ref.name),
                    source,
                });
            }
        },
    };
    let plan: &K = fresh.as_ref().unwrap_or(plan);
    let stored = memo.or_else(|| plan.status().cloned()).unwrap_or_default();
    let mut status = stored.clone();
    status.observed_generation = plan.meta().generation;
    let now = now_time();
    let sites = data.all_sites();
    let (invalid, cohort_of_wave) =
        plan::record_waves(&mut status, &plan_ref, &sites, candidates_of(&sites));
    if let Kind::Rollout { product, .. } = &plan_ref.kind
        && data.product(product).is_none()
    {
        let conds = vec![Cond::new(
            mutu_api::CONDITION_PROGRESSING,
            false,
            "NoProduct",
            format!("spec.product: there is no Product {product}; nothing is upgraded"),
        )];
        return finish(ctx, &api, plan, &plan_ref, status, conds, false).await;
    }
    let counted = progress::counts(status.site_progress.iter());
    let hold = plan::hold(&plan_ref, invalid.as_deref(), &counted, &now);
    let busy_sites = data.busy_elsewhere(&plan_ref.uid);
    let site_of = |ns: &str, name: &str| {
        let site = data.site(ns, name)?;
        let product = data.product(&site.spec.product);
        Some((site, product))
    };
    // The sites in flight before this reconcile: only their recorded steps are worked on.
    let recorded = plan::begin(
        &plan_ref,
        &mut status,
        &stored,
        hold.as_ref(),
        deleting,
        &busy_sites,
        site_of,
        &now,
    );
    if plan::uncordon(&plan_ref, &status.site_progress) {
        uncordon(
            ctx,
            plan,
            &mut status,
            "a site is being put back on its pool",
        )
        .await?;
    }
    let events = work_on(ctx, &plan_ref, &mut status.site_progress, recorded, &now).await?;
    crate::act::let_go_finished(ctx, &plan_ref, plan::to_let_go(&stored.site_progress)).await?;
    if let Kind::Migration { from, .. } = &plan_ref.kind {
        delete_old_volumes(ctx, &plan_ref, &mut status.site_progress, &now).await?;
        if !deleting {
            cordon(ctx, plan, from, &mut status, &sites).await?;
        }
    }
    let (mut conds, busy) = plan::settle(
        &mut status,
        &plan_ref,
        invalid.as_deref(),
        &cohort_of_wave,
        &now,
    );
    for (failed, site, reason) in events {
        let reason_code = if failed { "SiteFailed" } else { "SiteDone" };
        ctx.event(plan, failed, reason_code, format!("{site}: {reason}"))
            .await;
    }
    if deleting {
        let counted = progress::counts(status.site_progress.iter());
        // Once no site is in flight in the status as last written too: the sites finished
        // in this reconcile are let go of from the next one, after their status is written.
        if counted.in_flight == 0 && progress::counts(stored.site_progress.iter()).in_flight == 0 {
            return let_go_of_plan(ctx, &api, plan, &plan_ref, status).await;
        }
        conds = vec![Cond::new(
            mutu_api::CONDITION_PROGRESSING,
            true,
            "Deleting",
            plan::deleting(&counted),
        )];
    }
    finish(ctx, &api, plan, &plan_ref, status, conds, busy).await
}

/// The last work of a deleted plan, once no site is in flight: the nodes it
/// cordoned take sites again unless it moved every site it had to, and its
/// finalizer goes.
async fn let_go_of_plan<K: Plan>(
    ctx: &Ctx,
    api: &Api<K>,
    plan: &K,
    plan_ref: &PlanRef,
    mut status: WaveStatus,
) -> Result<Action, Error> {
    let counted = progress::counts(status.site_progress.iter());
    if !status.cordoned_nodes.is_empty() {
        if plan::uncordon_when_deleted(&counted) {
            let why = "the plan was deleted before it moved all its sites";
            uncordon(ctx, plan, &mut status, why).await?;
        } else {
            let message = format!(
                "the plan moved all its sites: nodes {} stay cordoned",
                status.cordoned_nodes.join(", ")
            );
            ctx.event(plan, false, "NodesStayCordoned", message).await;
        }
    }
    let list: Vec<String> = plan
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    set_finalizers(ctx, api, plan, plan_ref, list).await?;
    ctx.data
        .metrics
        .forget(plan_ref.kind_name(), &plan_ref.name);
    let mut memo = ctx.data.memo.lock().unwrap_or_else(|e| e.into_inner());
    memo.remove(&plan_ref.uid);
    Ok(Action::await_change())
}

/// Writes the plan's finalizers over the version read: a plan changed since
/// (a lagging cache) gets a conflict and is reconciled again.
async fn set_finalizers<K: Plan>(
    ctx: &Ctx,
    api: &Api<K>,
    plan: &K,
    plan_ref: &PlanRef,
    list: Vec<String>,
) -> Result<(), Error> {
    let patch = json!({"metadata": {
        "finalizers": list,
        "resourceVersion": plan.resource_version(),
    }});
    match api
        .patch(
            &plan_ref.name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => {
            ctx.metrics
                .write(ctx.name, "finalizer", plan_ref.kind_name());
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(source) => Err(Error::Kube {
            what: format!("write the finalizers of {}", plan_ref.name),
            source,
        }),
    }
}

/// Works on the recorded step of each site in `recorded`; returns the sites
/// that finished.
async fn work_on(
    ctx: &Ctx,
    plan_ref: &PlanRef,
    progress: &mut [SiteProgress],
    recorded: Vec<usize>,
    now: &Time,
) -> Result<Vec<Finished>, Error> {
    let mut events = Vec::new();
    for i in recorded {
        let p = &mut progress[i];
        // The site as it is now, not as the cache shows it: a step weighs the annotations it
        // sets against it, and ends when they are set, so a copy that lags behind the plan's
        // own writes could end a step with the site left otherwise (e.g. a rollback giving up
        // with the site left offline: found by the model check, tests/model.rs). One read per
        // site in flight, at most `maxInFlight`.
        let sites: Api<PloneSite> = Api::namespaced(ctx.client().clone(), &p.namespace);
        let read = match sites.get_opt(&p.name).await {
            // A site that cannot be read as a PloneSite is one the plan cannot work on.
            Err(kube::Error::SerdeError(_)) => None,
            other => other.map_err(kube_err(format!(
                "read the site {}/{}",
                p.namespace, p.name
            )))?,
        };
        let Some(site) = read else {
            plan::site_gone(p, now);
            continue;
        };
        let next = crate::act::step(ctx, plan_ref, p, site, now).await?;
        events.extend(plan::apply(p, next, now));
    }
    Ok(events)
}

/// The nodes the plan cordoned take sites again.
async fn uncordon<K: Plan>(
    ctx: &Ctx,
    plan: &K,
    status: &mut WaveStatus,
    why: &str,
) -> Result<(), Error> {
    for name in std::mem::take(&mut status.cordoned_nodes) {
        let nodes: Api<Node> = Api::all(ctx.client().clone());
        let unset = json!({"spec": {"unschedulable": null}});
        match nodes
            .patch(&name, &PatchParams::default(), &Patch::Merge(&unset))
            .await
        {
            Ok(_) => ctx.metrics.write(ctx.name, "patch", "Node"),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => {
                return Err(Error::Kube {
                    what: format!("uncordon node {name}"),
                    source,
                });
            }
        }
        let message = format!("node {name} takes sites again: {why}");
        ctx.event(plan, false, "NodeUncordoned", message).await;
    }
    Ok(())
}

/// Deletes the old volumes of moved sites once the retention has passed.
async fn delete_old_volumes(
    ctx: &Ctx,
    plan_ref: &PlanRef,
    progress: &mut [SiteProgress],
    now: &Time,
) -> Result<(), Error> {
    // Never deleted: a volume a pod mounts, or one that holds the site's data now (nothing
    // supersedes it), whatever the site's annotations say (a site re-created from YAML has
    // none).
    let mut kept = BTreeMap::new();
    for p in progress.iter() {
        if let Some(old) = plan::expiring(p, plan_ref.retention, now)
            && let Some(why) = holds_data(ctx, &p.namespace, old).await?
        {
            kept.insert((p.namespace.clone(), old.to_string()), why);
        }
    }
    let in_use = |p: &SiteProgress| {
        if let Some(old) = &p.origin_volume
            && kept.contains_key(&(p.namespace.clone(), old.clone()))
        {
            return Some(old.clone());
        }
        let site = ctx.data.site(&p.namespace, &p.name)?;
        site.annotations()
            .get(mutu_api::DATA_VOLUME_ANNOTATION)
            .cloned()
    };
    let kept_before: Vec<(usize, String)> = progress
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let old = p.origin_volume.clone()?;
            kept.contains_key(&(p.namespace.clone(), old.clone()))
                .then_some((i, old))
        })
        .collect();
    let expired = plan::expired_volumes(progress, plan_ref.retention, now, in_use);
    for (i, old) in kept_before {
        let p = &mut progress[i];
        if p.origin_volume.is_none()
            && let Some(why) = kept.get(&(p.namespace.clone(), old.clone()))
        {
            p.reason = Some(format!(
                "moved; its old volume {old} is kept after the plan's retention: {why}"
            ));
        }
    }
    for (i, old) in expired {
        let p = &mut progress[i];
        let claims: Api<PersistentVolumeClaim> =
            Api::namespaced(ctx.client().clone(), &p.namespace);
        match claims.delete(&old, &DeleteParams::default()).await {
            Ok(_) => ctx
                .metrics
                .write(ctx.name, "delete", "PersistentVolumeClaim"),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => {
                return Err(Error::Kube {
                    what: format!("delete the old volume {old} of {}/{}", p.namespace, p.name),
                    source,
                });
            }
        }
        release_finished_pods(ctx, &p.namespace, &old).await?;
        p.reason = Some(plan::volume_deleted(&old, plan_ref.retention));
    }
    Ok(())
}

/// Deletes the finished pods (of backup Jobs, say) that mount the deleted claim `claim`:
/// they read nothing any more, but until they go the claim stays Terminating and its
/// storage counts against the member's quota (the Jobs keep their records).
async fn release_finished_pods(ctx: &Ctx, ns: &str, claim: &str) -> Result<(), Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client().clone(), ns);
    let list = pods
        .list(&kube::api::ListParams::default())
        .await
        .map_err(kube_err(format!("list the pods of {ns}")))?;
    for pod in list.items.iter().filter(|pod| {
        matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        ) && mounts(pod, claim)
    }) {
        let name = pod.name_any();
        match pods.delete(&name, &DeleteParams::default()).await {
            Ok(_) => ctx.metrics.write(ctx.name, "delete", "Pod"),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => {
                return Err(Error::Kube {
                    what: format!("delete the finished pod {ns}/{name} holding {claim}"),
                    source,
                });
            }
        }
    }
    Ok(())
}

/// Whether `pod` mounts the volume claim `claim`.
fn mounts(pod: &Pod, claim: &str) -> bool {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .any(|c| c.claim_name == claim)
}

/// Why the volume claim `claim` of site `site` still holds data: a pod that has not
/// finished mounts it, or no claim supersedes it; `None` when it may go.
async fn holds_data(ctx: &Ctx, ns: &str, claim: &str) -> Result<Option<String>, Error> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client().clone(), ns);
    let what = format!("read the volume claim {ns}/{claim}");
    let Some(volume) = claims.get_opt(claim).await.map_err(kube_err(what))? else {
        return Ok(None);
    };
    if !volume
        .annotations()
        .contains_key(mutu_api::SUPERSEDED_BY_ANNOTATION)
    {
        return Ok(Some(format!(
            "no claim supersedes it ({} is not set), so it may hold the site's data",
            mutu_api::SUPERSEDED_BY_ANNOTATION
        )));
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client().clone(), ns);
    let list = pods
        .list(&kube::api::ListParams::default())
        .await
        .map_err(kube_err(format!("list the pods of {ns}")))?;
    // A finished pod (a backup Job's, say) reads nothing any more.
    let running = |pod: &&Pod| {
        !matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
    };
    let mounted = list
        .items
        .iter()
        .filter(running)
        .find(|pod| mounts(pod, claim));
    Ok(mounted.map(|pod| format!("pod {} mounts it", pod.name_any())))
}

/// Cordons the nodes of the pool being left that hold no more sites.
async fn cordon<K: Plan>(
    ctx: &Ctx,
    plan: &K,
    from: &str,
    status: &mut WaveStatus,
    sites: &[PloneSite],
) -> Result<(), Error> {
    let counted = progress::counts(status.site_progress.iter());
    let nodes = ctx.data.nodes.state();
    let pods = ctx.data.pods.state();
    for name in plan::nodes_to_cordon(from, &counted, &status.cordoned_nodes, sites, &nodes, &pods)
    {
        let api: Api<Node> = Api::all(ctx.client().clone());
        api.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"unschedulable": true}})),
        )
        .await
        .map_err(kube_err(format!("cordon node {name}")))?;
        ctx.metrics.write(ctx.name, "patch", "Node");
        status.cordoned_nodes.push(name.clone());
        let message = format!("node {name} of pool {from} holds no more sites: cordoned");
        ctx.event(plan, false, "NodeCordoned", message).await;
    }
    Ok(())
}

async fn finish<K: Plan>(
    ctx: &Ctx,
    api: &Api<K>,
    plan: &K,
    plan_ref: &PlanRef,
    status: WaveStatus,
    conds: Vec<Cond<'_>>,
    busy: bool,
) -> Result<Action, Error> {
    if let Err(source) = ctx.write_status(api, plan, status.clone(), &conds).await {
        // The write may have been applied all the same: the next reconcile reads the plan.
        let mut memo = ctx.data.memo.lock().unwrap_or_else(|e| e.into_inner());
        memo.remove(&plan_ref.uid);
        return Err(Error::Kube {
            what: format!("write the status of {}", plan_ref.name),
            source,
        });
    }
    let live: BTreeSet<String> = ctx
        .data
        .migrations
        .state()
        .iter()
        .filter_map(|m| m.0.as_ref().ok().and_then(|m| m.uid()))
        .chain(
            ctx.data
                .rollouts
                .state()
                .iter()
                .filter_map(|r| r.0.as_ref().ok().and_then(|r| r.uid())),
        )
        .collect();
    let kind = plan_ref.kind_name();
    ctx.data.metrics.set(kind, &plan_ref.name, &status.sites);
    {
        // Plans that are gone are forgotten.
        let mut seen = ctx.data.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.retain(|uid, (kind, name)| {
            let keep = live.contains(uid);
            if !keep {
                ctx.data.metrics.forget(kind, name);
            }
            keep
        });
        seen.insert(plan_ref.uid.clone(), (kind, plan_ref.name.clone()));
    }
    let mut memo = ctx.data.memo.lock().unwrap_or_else(|e| e.into_inner());
    memo.retain(|uid, _| live.contains(uid));
    memo.insert(plan_ref.uid.clone(), status);
    Ok(if busy {
        Action::requeue(ctx.data.config.tick)
    } else {
        ctx.requeue()
    })
}
