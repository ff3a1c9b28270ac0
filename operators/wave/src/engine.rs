//! The wave engine: MigrationPlans and ReleaseRollouts drive their sites
//! through their steps, a few at a time, wave after wave.
//!
//! Every step of every site is recorded in the plan's status before its work
//! starts, and the work of a step is idempotent (objects with fixed names,
//! annotations set to a value), so an operator killed at any point resumes
//! where it was: it repeats the work of the recorded step, which finds it
//! done, and never starts a step it has not recorded.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::DeserializeGuard;
use kube::core::object::HasStatus;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use mutu_api::backup::BackupTrigger;
use mutu_api::common::SITE_LABEL;
use mutu_api::wave::{SiteProgress, SiteStep, WaveStatus};
use mutu_api::{
    Backup, Certificate, MigrationPlan, PloneSite, Product, ProductSpec, ReleaseRollout, Restore,
};
use mutu_runtime::conditions::{self, Desired as Cond};
use mutu_runtime::{Context, Reason};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use mutu_model::storage::{self, Storage};
use mutu_model::wave::progress::{self, Hold};
use mutu_model::wave::{self, Cohort};
use mutu_model::{names, quantity};

/// Settings of the wave engine.
#[derive(Clone, Debug)]
pub struct Config {
    /// The member's backup volume claim (as the backup operator's).
    pub backup_volume_claim: String,
    /// Image with PostgreSQL's client tools (as the backup operator's).
    pub postgres_image: String,
    /// How often a plan with sites in flight re-checks them.
    pub tick: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            backup_volume_claim: "backups".into(),
            postgres_image: "docker.io/library/postgres:17-alpine".into(),
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
pub struct Data {
    pub config: Config,
    pub sites: Store<DeserializeGuard<PloneSite>>,
    pub products: Store<DeserializeGuard<Product>>,
    pub migrations: Store<DeserializeGuard<MigrationPlan>>,
    pub rollouts: Store<DeserializeGuard<ReleaseRollout>>,
    pub backups: Store<DeserializeGuard<Backup>>,
    pub jobs: Store<Job>,
    pub nodes: Store<Node>,
    pub pods: Store<Pod>,
    /// The status each plan was last given (by uid): the cache may lag behind
    /// the engine's own writes, and a step must never be taken twice.
    pub memo: Mutex<HashMap<String, WaveStatus>>,
    /// Plans seen (uid → kind and name), to drop the metrics of deleted ones.
    pub seen: Mutex<HashMap<String, (&'static str, String)>>,
    pub metrics: WaveMetrics,
}

impl Data {
    async fn ready(&self) -> bool {
        mutu_runtime::controller::caches_listed(async {
            let _ = self.sites.wait_until_ready().await;
            let _ = self.products.wait_until_ready().await;
            let _ = self.migrations.wait_until_ready().await;
            let _ = self.rollouts.wait_until_ready().await;
            let _ = self.backups.wait_until_ready().await;
            let _ = self.jobs.wait_until_ready().await;
            let _ = self.nodes.wait_until_ready().await;
            let _ = self.pods.wait_until_ready().await;
        })
        .await
    }

    fn site(&self, ns: &str, name: &str) -> Option<PloneSite> {
        self.sites
            .get(&ObjectRef::new(name).within(ns))
            .and_then(|s| s.0.as_ref().ok().cloned())
    }

    fn all_sites(&self) -> Vec<PloneSite> {
        self.sites
            .state()
            .iter()
            .filter_map(|s| s.0.as_ref().ok().cloned())
            .collect()
    }

    fn product(&self, name: &str) -> Option<ProductSpec> {
        self.products
            .get(&ObjectRef::new(name))
            .and_then(|p| p.0.as_ref().ok().map(|p| p.spec.clone()))
    }

    fn backup(&self, ns: &str, name: &str) -> Option<Backup> {
        self.backups
            .get(&ObjectRef::new(name).within(ns))
            .and_then(|b| b.0.as_ref().ok().cloned())
    }

    fn node_pool(&self, node: &str) -> Option<String> {
        self.nodes
            .get(&ObjectRef::new(node))
            .and_then(|n| n.labels().get(mutu_api::POOL_LABEL).cloned())
    }

    /// The site's server pods (instances and ZEO), wherever they are.
    fn server_pods(&self, ns: &str, site: &str) -> Vec<Arc<Pod>> {
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
    fn busy_elsewhere(&self, uid: &str) -> BTreeSet<String> {
        let mut busy = BTreeSet::new();
        let mut add = |other: Option<String>, status: Option<&WaveStatus>| {
            if other.as_deref() == Some(uid) {
                return;
            }
            for p in status.map(|s| s.site_progress.as_slice()).unwrap_or(&[]) {
                if progress::in_flight(p.step) {
                    busy.insert(progress::key(p));
                }
            }
        };
        for m in self.migrations.state() {
            if let Ok(m) = &m.0 {
                add(m.uid(), m.status.as_ref());
            }
        }
        for r in self.rollouts.state() {
            if let Ok(r) = &r.0 {
                add(r.uid(), r.status.as_ref());
            }
        }
        busy
    }
}

/// Component label of the Jobs that copy a site's data to its new volume.
pub const MIGRATE: &str = "migrate";
/// Annotation on the volumes a MigrationPlan created: the plan's name.
pub const MIGRATED_BY: &str = "hosting.imio.be/migrated-by";
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

fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Kube { what, source }
}

type Ctx = Context<Data>;

/// What a plan does to its sites.
#[derive(Clone, Debug)]
enum Kind {
    Migration { from: String, to: String },
    Rollout { product: String, release: String },
}

/// The parts of a plan's spec the engine reads, for both kinds.
#[derive(Clone, Debug)]
struct Info {
    kind: Kind,
    name: String,
    uid: String,
    owner: OwnerReference,
    wave_size: i32,
    max_in_flight: i32,
    window: Option<mutu_api::Window>,
    paused: bool,
    threshold: i32,
    verify: Duration,
    retention: Duration,
}

impl Info {
    /// Value of the maintenance annotations the plan sets.
    fn who(&self) -> String {
        match self.kind {
            Kind::Migration { .. } => format!("migration/{}", self.name),
            Kind::Rollout { .. } => format!("rollout/{}", self.name),
        }
    }

    fn object_name(&self, site: &str, what: &str) -> String {
        mutu_model::names::bounded(&self.name, &format!("{site}-{what}"))
    }

    /// The volume a migrated ZEO site's data is copied to.
    fn new_volume(&self, site: &str) -> String {
        mutu_model::names::migrated_data_claim(site, &self.uid)
    }
}

fn std_duration(d: Option<&kube::core::Duration>, default: Duration) -> Duration {
    d.map(|d| Duration::from(*d)).unwrap_or(default)
}

pub async fn reconcile_migration(plan: Arc<MigrationPlan>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let s = &plan.spec;
    let info = Info {
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
    drive(plan.as_ref(), info, &ctx, move |sites| {
        wave::migration_candidates(&spec, sites).map_err(|e| e.to_string())
    })
    .await
}

pub async fn reconcile_rollout(plan: Arc<ReleaseRollout>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let s = &plan.spec;
    let info = Info {
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
    drive(plan.as_ref(), info, &ctx, move |sites| {
        wave::rollout_candidates(&spec, sites).map_err(|e| e.to_string())
    })
    .await
}

fn now_time() -> Time {
    Time(mutu_runtime::status::now())
}

fn age(since: Option<&Time>, now: &Time) -> Duration {
    since
        .map(|s| {
            let secs = now.0.as_second() - s.0.as_second();
            Duration::from_secs(secs.max(0) as u64)
        })
        .unwrap_or_default()
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s >= 60 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// One reconcile of a plan of either kind.
async fn drive<K>(
    plan: &K,
    info: Info,
    ctx: &Ctx,
    candidates_of: impl Fn(&[PloneSite]) -> Result<Vec<Cohort>, String>,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug
        + HasStatus<Status = WaveStatus>,
{
    let data = &ctx.data;
    if !data.ready().await {
        return Ok(mutu_runtime::controller::not_listed_yet());
    }
    let api: Api<K> = Api::all(ctx.client().clone());
    let stored = data
        .memo
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&info.uid)
        .cloned()
        .or_else(|| plan.status().cloned())
        .unwrap_or_default();
    let mut status = stored.clone();
    status.observed_generation = plan.meta().generation;
    let now = now_time();
    let mut conds: Vec<Cond> = Vec::new();

    // Which sites the plan covers: recorded once, then only added to.
    let sites = data.all_sites();
    let existing: BTreeSet<String> = sites
        .iter()
        .map(|s| format!("{}/{}", s.namespace().unwrap_or_default(), s.name_any()))
        .collect();
    // The cohort of each wave (rollouts), for the waves' progress.
    let mut cohort_of_wave: BTreeMap<i32, String> = BTreeMap::new();
    let exists = |k: &str| existing.contains(k);
    let invalid = match candidates_of(&sites) {
        Ok(candidates) => {
            let planned = wave::waves(
                &status.site_progress,
                &status.waves,
                &candidates,
                info.wave_size,
                exists,
            );
            wave::record(&mut status.site_progress, &planned, exists);
            for w in planned {
                if let Some(c) = w.cohort {
                    cohort_of_wave.insert(w.index, c);
                }
            }
            None
        }
        Err(message) => Some(message),
    };
    if let Kind::Rollout { product, .. } = &info.kind
        && data.product(product).is_none()
    {
        conds.push(Cond::new(
            mutu_api::CONDITION_PROGRESSING,
            false,
            "NoProduct",
            format!("spec.product: there is no Product {product}; nothing is upgraded"),
        ));
        return finish(ctx, &api, plan, &info, status, conds, false).await;
    }

    // Which sites may start now.
    let counted = progress::counts(status.site_progress.iter());
    let hold_of = |counted: &mutu_api::wave::SiteCounts| {
        if let Some(message) = &invalid {
            Some(Hold::OutsideWindow(message.clone()))
        } else if counted.failed >= info.threshold {
            Some(Hold::Halted {
                failed: counted.failed,
                threshold: info.threshold,
            })
        } else if info.paused {
            Some(Hold::Paused)
        } else if let Some(w) = &info.window {
            match progress::window_open(w, now.0) {
                Ok(true) => None,
                Ok(false) => Some(Hold::OutsideWindow(format!(
                    "outside the window {}–{} {}",
                    w.start, w.end, w.time_zone
                ))),
                Err(message) => Some(Hold::OutsideWindow(message)),
            }
        } else {
            None
        }
    };
    let hold = hold_of(&counted);
    // The sites in flight before this reconcile: only their recorded steps are worked on.
    let recorded: Vec<usize> = (0..status.site_progress.len())
        .filter(|&i| progress::in_flight(status.site_progress[i].step))
        .filter(|&i| {
            stored
                .site_progress
                .iter()
                .any(|p| progress::key(p) == progress::key(&status.site_progress[i]))
        })
        .collect();
    if hold.is_none() {
        let busy = data.busy_elsewhere(&info.uid);
        for i in progress::to_start(&status.site_progress, info.max_in_flight, &busy) {
            let p = &mut status.site_progress[i];
            let Some(site) = data.site(&p.namespace, &p.name) else {
                continue;
            };
            let st = site.status.clone().unwrap_or_default();
            p.step = SiteStep::Preflight;
            p.since = Some(now.clone());
            p.reason = Some("starting".into());
            p.origin = match &info.kind {
                Kind::Migration { .. } => st.pool.clone(),
                Kind::Rollout { .. } => st.release.clone(),
            };
            p.origin_volume = match (&info.kind, data.product(&site.spec.product)) {
                (Kind::Migration { .. }, Some(product))
                    if storage::of(&site, &product) == Storage::Zeo =>
                {
                    Some(
                        site.annotations()
                            .get(mutu_api::DATA_VOLUME_ANNOTATION)
                            .cloned()
                            .unwrap_or_else(|| names::zeo_data_claim(&p.name)),
                    )
                }
                _ => None,
            };
        }
    }

    // A site going back needs its pool: nodes the plan cordoned take sites again.
    if matches!(info.kind, Kind::Migration { .. })
        && status
            .site_progress
            .iter()
            .any(|p| p.step == SiteStep::RollingBack)
    {
        for name in std::mem::take(&mut status.cordoned_nodes) {
            let nodes: Api<Node> = Api::all(ctx.client().clone());
            match nodes
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"spec": {"unschedulable": null}})),
                )
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
            ctx.event(
                plan,
                false,
                "NodeUncordoned",
                format!("node {name} takes sites again: a site is being put back on its pool"),
            )
            .await;
        }
    }

    // Work on the recorded steps.
    let mut events = Vec::new();
    for i in recorded {
        let p = status.site_progress[i].clone();
        let Some(site) = data.site(&p.namespace, &p.name) else {
            let p = &mut status.site_progress[i];
            p.failed_step = Some(p.step);
            p.step = SiteStep::Failed;
            p.reason = Some("the PloneSite was deleted while the plan worked on it".into());
            p.finished = Some(now.clone());
            continue;
        };
        let next = match &info.kind {
            Kind::Migration { from, to } => migrate(ctx, &info, &p, &site, from, to, &now).await?,
            Kind::Rollout { release, .. } => upgrade(ctx, &info, &p, &site, release, &now).await?,
        };
        let p = &mut status.site_progress[i];
        match next {
            Next::Stay(reason) => p.reason = Some(reason),
            Next::Go(step, reason) => {
                if matches!(step, SiteStep::Done | SiteStep::Failed) {
                    p.finished = Some(now.clone());
                    events.push((
                        step == SiteStep::Failed,
                        format!("{}/{}", p.namespace, p.name),
                        reason.clone(),
                    ));
                }
                p.step = step;
                p.since = Some(now.clone());
                p.reason = Some(reason);
            }
            Next::Fail(reason) => {
                p.failed_step = Some(p.step);
                p.since = Some(now.clone());
                if p.step == SiteStep::Preflight {
                    // Nothing was changed yet: nothing to put back.
                    p.step = SiteStep::Failed;
                    p.finished = Some(now.clone());
                    events.push((true, format!("{}/{}", p.namespace, p.name), reason.clone()));
                } else {
                    p.step = SiteStep::RollingBack;
                }
                p.reason = Some(reason);
            }
        }
    }

    // Old volumes of moved sites go once the retention has passed.
    if let Kind::Migration { .. } = &info.kind {
        for p in status.site_progress.iter_mut() {
            if p.step != SiteStep::Done || age(p.finished.as_ref(), &now) < info.retention {
                continue;
            }
            if let Some(old) = p.origin_volume.take() {
                let in_use = data.site(&p.namespace, &p.name).and_then(|s| {
                    s.annotations()
                        .get(mutu_api::DATA_VOLUME_ANNOTATION)
                        .cloned()
                });
                if in_use.as_deref() == Some(old.as_str()) {
                    continue;
                }
                let claims: Api<PersistentVolumeClaim> =
                    Api::namespaced(ctx.client().clone(), &p.namespace);
                match claims.delete(&old, &DeleteParams::default()).await {
                    Ok(_) => ctx
                        .metrics
                        .write(ctx.name, "delete", "PersistentVolumeClaim"),
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(source) => {
                        return Err(Error::Kube {
                            what: format!(
                                "delete the old volume {old} of {}/{}",
                                p.namespace, p.name
                            ),
                            source,
                        });
                    }
                }
                p.reason = Some(format!(
                    "moved; its old volume {old} was deleted after the plan's retention ({})",
                    human(info.retention)
                ));
            }
        }
    }

    // Nodes of the pool being left that hold no more sites are cordoned.
    let counted = progress::counts(status.site_progress.iter());
    // A site placed on the pool but not running (e.g. put back and still
    // starting) may need any of its nodes: no cordon then.
    let unsettled = sites.iter().any(|s| {
        let st = s.status.as_ref();
        let on_from = matches!(&info.kind, Kind::Migration { from, .. } if st.and_then(|st| st.pool.as_deref()) == Some(from.as_str()));
        on_from && !is_true(s, "Available")
    });
    if let Kind::Migration { from, .. } = &info.kind
        && counted.in_flight == 0
        && counted.done > 0
        && !unsettled
    {
        for node in data.nodes.state() {
            let name = node.name_any();
            if node.labels().get(mutu_api::POOL_LABEL) != Some(from)
                || node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true)
                || status.cordoned_nodes.contains(&name)
            {
                continue;
            }
            let holds_sites = data.pods.state().iter().any(|p| {
                p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str())
                    && p.labels().contains_key(SITE_LABEL)
                    && matches!(
                        p.labels().get(mutu_api::COMPONENT).map(String::as_str),
                        Some("instance" | "zeo")
                    )
            });
            if holds_sites {
                continue;
            }
            let nodes: Api<Node> = Api::all(ctx.client().clone());
            nodes
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"spec": {"unschedulable": true}})),
                )
                .await
                .map_err(kube_err(format!("cordon node {name}")))?;
            ctx.metrics.write(ctx.name, "patch", "Node");
            status.cordoned_nodes.push(name.clone());
            ctx.event(
                plan,
                false,
                "NodeCordoned",
                format!("node {name} of pool {from} holds no more sites: cordoned"),
            )
            .await;
        }
    }

    // Counts, waves, conditions.
    let counted = progress::counts(status.site_progress.iter());
    status.sites = counted.clone();
    status.current_wave = progress::current_wave(&status.site_progress);
    let before_waves = status.waves.clone();
    status.waves = progress::waves(
        &status.site_progress,
        &before_waves,
        |i| {
            before_waves
                .iter()
                .find(|w| w.index == i)
                .and_then(|w| w.cohort.clone())
                .or_else(|| cohort_of_wave.get(&i).cloned())
        },
        &now,
    );
    let left = counted.pending + counted.in_flight;
    let halted = counted.failed >= info.threshold;
    // What holds the plan now, after this reconcile's work (a site may have failed).
    let hold = hold_of(&counted);
    let (progressing, reason, message) = match (&invalid, left, &hold) {
        (Some(message), _, _) => (false, "InvalidSpec", message.clone()),
        (None, 0, _) => (
            false,
            "Finished",
            format!(
                "{} of {} sites done, {} failed",
                counted.done, counted.total, counted.failed
            ),
        ),
        (None, _, Some(Hold::Halted { failed, threshold })) => (
            counted.in_flight > 0,
            "Halted",
            format!(
                "{failed} sites failed, the failure threshold is {threshold}: no new site starts; {} in flight finish. Look at the failed sites' reasons, then raise spec.failureThreshold to go on",
                counted.in_flight
            ),
        ),
        (None, _, Some(Hold::Paused)) => (
            counted.in_flight > 0,
            "Paused",
            format!(
                "spec.paused: no new site starts; {} in flight finish",
                counted.in_flight
            ),
        ),
        (None, _, Some(Hold::OutsideWindow(message))) => (
            counted.in_flight > 0,
            "OutsideWindow",
            format!(
                "{message}: no new site starts; {} in flight finish",
                counted.in_flight
            ),
        ),
        (None, _, None) => (
            true,
            "Running",
            format!(
                "wave {}: {} in flight, {} pending, {} done, {} failed",
                status.current_wave.unwrap_or_default(),
                counted.in_flight,
                counted.pending,
                counted.done,
                counted.failed
            ),
        ),
    };
    conds.push(Cond::new(
        mutu_api::CONDITION_PROGRESSING,
        progressing,
        reason,
        message,
    ));
    conds.push(Cond::new(
        mutu_api::CONDITION_COMPLETE,
        invalid.is_none() && left == 0,
        if left > 0 {
            "SitesLeft"
        } else if counted.failed > 0 {
            "DoneWithFailures"
        } else {
            "AllDone"
        },
        format!(
            "{} done, {} failed, {} left of {}",
            counted.done, counted.failed, left, counted.total
        ),
    ));
    conds.push(Cond::new(
        mutu_api::CONDITION_FAILED,
        halted,
        if halted {
            "ThresholdReached"
        } else {
            "BelowThreshold"
        },
        format!(
            "{} failed, the threshold is {}",
            counted.failed, info.threshold
        ),
    ));
    for (failed, site, reason) in events {
        ctx.event(
            plan,
            failed,
            if failed { "SiteFailed" } else { "SiteDone" },
            format!("{site}: {reason}"),
        )
        .await;
    }
    finish(
        ctx,
        &api,
        plan,
        &info,
        status,
        conds,
        counted.in_flight > 0 || (left > 0 && hold.is_none()),
    )
    .await
}

async fn finish<K>(
    ctx: &Ctx,
    api: &Api<K>,
    plan: &K,
    info: &Info,
    status: WaveStatus,
    conds: Vec<Cond<'_>>,
    busy: bool,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug
        + HasStatus<Status = WaveStatus>,
{
    ctx.write_status(api, plan, status.clone(), &conds)
        .await
        .map_err(kube_err(format!("write the status of {}", info.name)))?;
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
    let kind = match info.kind {
        Kind::Migration { .. } => "MigrationPlan",
        Kind::Rollout { .. } => "ReleaseRollout",
    };
    ctx.data.metrics.set(kind, &info.name, &status.sites);
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
        seen.insert(info.uid.clone(), (kind, info.name.clone()));
    }
    let mut memo = ctx.data.memo.lock().unwrap_or_else(|e| e.into_inner());
    memo.retain(|uid, _| live.contains(uid));
    memo.insert(info.uid.clone(), status);
    Ok(if busy {
        Action::requeue(ctx.data.config.tick)
    } else {
        ctx.requeue()
    })
}

/// What becomes of a site after working on its step.
enum Next {
    /// Still at it, because…
    Stay(String),
    /// On to the next step.
    Go(SiteStep, String),
    /// The step failed: put the site back (or, before anything changed, just count it).
    Fail(String),
}

fn cond<'a>(
    site: &'a PloneSite,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    site.status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, type_))
}

fn is_true(site: &PloneSite, type_: &str) -> bool {
    cond(site, type_).is_some_and(|c| c.status == "True")
}

fn ready_message(site: &PloneSite) -> String {
    cond(site, mutu_api::CONDITION_READY)
        .map(|c| format!("{} ({})", c.message, c.reason))
        .unwrap_or_else(|| "no Ready condition yet".into())
}

/// Sets (or, with `None`, removes) annotations of a site, unless they already are so.
async fn annotate(
    ctx: &Ctx,
    site: &PloneSite,
    wanted: &[(&str, Option<String>)],
) -> Result<(), Error> {
    let current = site.annotations();
    let changes: serde_json::Map<String, Value> = wanted
        .iter()
        .filter(|(k, v)| current.get(*k) != v.as_ref())
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    if changes.is_empty() {
        return Ok(());
    }
    let ns = site.namespace().unwrap_or_default();
    let api: Api<PloneSite> = Api::namespaced(ctx.client().clone(), &ns);
    match api
        .patch(
            &site.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": changes}})),
        )
        .await
    {
        Ok(_) => {
            ctx.metrics.write(ctx.name, "patch", "PloneSite");
            Ok(())
        }
        Err(source) => Err(Error::Kube {
            what: format!("annotate the site {ns}/{}", site.name_any()),
            source,
        }),
    }
}

/// Creates `obj` unless it exists: a step that repeats (after a restart)
/// finds what it created the first time.
async fn create_once<K>(ctx: &Ctx, api: &Api<K>, obj: &K, what: String) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => {
            ctx.metrics.write(ctx.name, "create", &K::kind(&()));
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(source) => Err(Error::Kube {
            what: format!("create {what}"),
            source,
        }),
    }
}

/// The state of a Backup or Restore run.
enum Run {
    Running(String),
    Complete,
    Failed(String),
}

fn run_state(conds: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition]) -> Run {
    if let Some(c) = conditions::find(conds, mutu_api::CONDITION_COMPLETE)
        && c.status == "True"
    {
        return Run::Complete;
    }
    if let Some(c) = conditions::find(conds, mutu_api::CONDITION_FAILED)
        && c.status == "True"
    {
        return Run::Failed(c.message.clone());
    }
    Run::Running(
        conditions::find(conds, mutu_api::CONDITION_COMPLETE)
            .map(|c| c.message.clone())
            .unwrap_or_else(|| "waiting for the backup operator".into()),
    )
}

/// The Backup `name` of the site, created (owned by the plan) if missing.
async fn ensure_backup(ctx: &Ctx, info: &Info, site: &PloneSite, name: &str) -> Result<Run, Error> {
    let ns = site.namespace().unwrap_or_default();
    if let Some(b) = ctx.data.backup(&ns, name) {
        return Ok(run_state(
            b.status
                .as_ref()
                .map(|s| s.conditions.as_slice())
                .unwrap_or(&[]),
        ));
    }
    let trigger = match info.kind {
        Kind::Migration { .. } => BackupTrigger::Migration,
        Kind::Rollout { .. } => BackupTrigger::Rollout,
    };
    let backup: Backup = serde_json::from_value(json!({
        "apiVersion": mutu_api::API_VERSION, "kind": "Backup",
        "metadata": {
            "name": name, "namespace": ns,
            "labels": {
                mutu_api::MANAGED_BY: mutu_api::MANAGED_BY_VALUE,
                mutu_api::INSTANCE: site.name_any(),
                mutu_api::COMPONENT: "backup",
                SITE_LABEL: site.name_any(),
            },
            "ownerReferences": [owner_ref(info)],
        },
        "spec": {"site": site.name_any(), "trigger": trigger},
    }))
    .map_err(|e| Error::Kube {
        what: format!("build the Backup {name}"),
        source: kube::Error::SerdeError(e),
    })?;
    let api: Api<Backup> = Api::namespaced(ctx.client().clone(), &ns);
    create_once(ctx, &api, &backup, format!("the Backup {ns}/{name}")).await?;
    Ok(Run::Running(format!("Backup {name} started")))
}

/// The plan as the owner of what it creates: not the controller of a Backup
/// (the backup operator runs it), and deleting the plan deletes them.
fn owner_ref(info: &Info) -> OwnerReference {
    OwnerReference {
        controller: Some(false),
        block_owner_deletion: Some(false),
        ..info.owner.clone()
    }
}

/// Room for the site on `pool`: its servers' CPU and memory requests fit in
/// what the pool's schedulable nodes have left. A quantity that cannot be
/// read is said, never counted as nothing.
fn room(data: &Data, site: &PloneSite, product: &ProductSpec, pool: &str) -> Result<(), String> {
    let replicas = site.spec.replicas.unwrap_or(product.replicas).max(0) as i64;
    let req = product
        .resources
        .as_ref()
        .map(|r| r.to_requirements())
        .and_then(|r| r.requests)
        .unwrap_or_default();
    let of_product = || format!("the requests of Product {}", site.spec.product);
    let (mut cpu, mut mem) = (
        amount(&req, "cpu", of_product)? * replicas,
        amount(&req, "memory", of_product)? * replicas,
    );
    if storage::of(site, product) == Storage::Zeo {
        cpu += 100;
        mem += 256 << 20;
    }
    let nodes: Vec<Arc<Node>> = data
        .nodes
        .state()
        .into_iter()
        .filter(|n| n.labels().get(mutu_api::POOL_LABEL).map(String::as_str) == Some(pool))
        .filter(|n| n.spec.as_ref().and_then(|s| s.unschedulable) != Some(true))
        .collect();
    if nodes.is_empty() {
        return Err(format!(
            "pool {pool} has no schedulable node (label {}={pool})",
            mutu_api::POOL_LABEL
        ));
    }
    let names: BTreeSet<String> = nodes.iter().map(|n| n.name_any()).collect();
    let (mut free_cpu, mut free_mem) = (0i64, 0i64);
    for n in &nodes {
        let alloc = n
            .status
            .as_ref()
            .and_then(|s| s.allocatable.clone())
            .unwrap_or_default();
        let of_node = || format!("what node {} can allocate", n.name_any());
        free_cpu += amount(&alloc, "cpu", of_node)?;
        free_mem += amount(&alloc, "memory", of_node)?;
    }
    for p in data.pods.state() {
        let on = p.spec.as_ref().and_then(|s| s.node_name.clone());
        let done = matches!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        if done || !on.is_some_and(|n| names.contains(&n)) {
            continue;
        }
        for c in p.spec.iter().flat_map(|s| s.containers.iter()) {
            let r = c
                .resources
                .as_ref()
                .and_then(|r| r.requests.clone())
                .unwrap_or_default();
            let of_pod = || {
                format!(
                    "the requests of pod {}/{}",
                    p.namespace().unwrap_or_default(),
                    p.name_any()
                )
            };
            free_cpu -= amount(&r, "cpu", of_pod)?;
            free_mem -= amount(&r, "memory", of_pod)?;
        }
    }
    if free_cpu < cpu || free_mem < mem {
        return Err(format!(
            "no room on pool {pool}: the site needs {cpu}m CPU and {} MiB of memory, the pool's {} schedulable nodes have {}m CPU and {} MiB left; add nodes to the pool or free some",
            mem >> 20,
            nodes.len(),
            free_cpu.max(0),
            free_mem.max(0) >> 20
        ));
    }
    Ok(())
}

/// Millicores (`cpu`) or bytes (anything else) of `resource` in `list`, 0
/// when it is not there; one that cannot be read says so, naming `whose`.
fn amount(
    list: &BTreeMap<String, Quantity>,
    resource: &str,
    whose: impl Fn() -> String,
) -> Result<i64, String> {
    let Some(q) = list.get(resource) else {
        return Ok(0);
    };
    let read = if resource == "cpu" {
        quantity::millicores(q)
    } else {
        quantity::units(q)
    };
    read.ok_or_else(|| {
        format!(
            "cannot read the {resource} quantity {:?} of {}: the room on the pool cannot be counted",
            q.0,
            whose()
        )
    })
}

/// The site's certificate is issued and not about to expire.
async fn certificate_valid(ctx: &Ctx, site: &PloneSite) -> Result<Result<(), String>, Error> {
    let ns = site.namespace().unwrap_or_default();
    let name = names::tls_secret(&site.name_any());
    let api: Api<Certificate> = Api::namespaced(ctx.client().clone(), &ns);
    let cert = match api.get_opt(&name).await {
        Ok(c) => c,
        Err(source) => {
            return Err(Error::Kube {
                what: format!("read the Certificate {ns}/{name}"),
                source,
            });
        }
    };
    let Some(cert) = cert else {
        return Ok(Err(format!("the site has no Certificate {name} yet")));
    };
    let st = cert.status.clone().unwrap_or_default();
    let ready = conditions::find(&st.conditions, mutu_api::CONDITION_READY);
    if ready.is_none_or(|c| c.status != "True") {
        return Ok(Err(format!(
            "its Certificate {name} is not valid: {}",
            ready
                .map(|c| c.message.clone())
                .unwrap_or_else(|| "not issued yet".into())
        )));
    }
    let soon = mutu_runtime::status::now().as_second() + 24 * 3600;
    if let Some(after) = &st.not_after
        && after.0.as_second() < soon
    {
        return Ok(Err(format!(
            "its Certificate {name} expires within a day ({}); renew it first",
            after.0
        )));
    }
    Ok(Ok(()))
}

/// Whether the site's Ingress sends its visitors to the maintenance page.
async fn ingress_offline(ctx: &Ctx, site: &PloneSite) -> Result<bool, Error> {
    let ns = site.namespace().unwrap_or_default();
    let api: Api<Ingress> = Api::namespaced(ctx.client().clone(), &ns);
    let ing = api
        .get_opt(&site.name_any())
        .await
        .map_err(kube_err(format!(
            "read the Ingress of {ns}/{}",
            site.name_any()
        )))?;
    let offline = names::offline_service(&site.name_any());
    Ok(ing.is_some_and(|i| {
        let rules = i.spec.and_then(|s| s.rules).unwrap_or_default();
        !rules.is_empty()
            && rules.iter().all(|r| {
                r.http.iter().flat_map(|h| h.paths.iter()).all(|p| {
                    p.backend.service.as_ref().map(|s| s.name.as_str()) == Some(offline.as_str())
                })
            })
    }))
}

/// The site's servers are all ready, and only on `pool`.
fn available_on(data: &Data, site: &PloneSite, pool: &str) -> bool {
    let st = site.status.clone().unwrap_or_default();
    is_true(site, "Available")
        && st.pool.as_deref() == Some(pool)
        && data
            .server_pods(&site.namespace().unwrap_or_default(), &site.name_any())
            .iter()
            .all(|p| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .and_then(|n| data.node_pool(n))
                    .as_deref()
                    == Some(pool)
            })
}

fn job_state(data: &Data, ns: &str, name: &str) -> Option<mutu_runtime::jobs::JobState> {
    data.jobs
        .get(&ObjectRef::new(name).within(ns))
        .map(|j| mutu_runtime::jobs::state(&j))
}

/// The Job that restores the site's last backup into its new volume on `pool`.
async fn ensure_copy_job(
    ctx: &Ctx,
    info: &Info,
    site: &PloneSite,
    backup: &str,
    claim: &str,
    pool: &str,
) -> Result<Result<String, String>, Error> {
    let ns = site.namespace().unwrap_or_default();
    let name = info.object_name(&site.name_any(), "data");
    if ctx
        .data
        .jobs
        .get(&ObjectRef::new(&name).within(&ns))
        .is_some()
    {
        return Ok(Ok(name));
    }
    let sts: Api<StatefulSet> = Api::namespaced(ctx.client().clone(), &ns);
    let Some(zeo) = sts
        .get_opt(&names::zeo_server(&site.name_any()))
        .await
        .map_err(kube_err("read the site's ZEO server"))?
    else {
        return Ok(Err("the site has no ZEO server StatefulSet".into()));
    };
    let site_name = site.name_any();
    let spec = mutu_backup::jobs::Spec {
        component: MIGRATE,
        name: name.clone(),
        namespace: ns.clone(),
        site: &site_name,
        owner: info.owner.clone(),
        owner_uid: info.uid.clone(),
        args: vec![
            "restore".into(),
            "--data".into(),
            mutu_backup::jobs::DATA_DIR.into(),
            "--repo".into(),
            format!("{}/{site_name}", mutu_backup::jobs::BACKUPS_DIR),
            "--id".into(),
            backup.into(),
        ],
        backups_claim: &ctx.data.config.backup_volume_claim,
        policy: None,
        writes_data: true,
        data_claim: Some(claim.to_string()),
        pool: Some(pool.to_string()),
    };
    let job = match mutu_backup::jobs::build(&spec, &zeo) {
        Ok(j) => j,
        Err(blocked) => return Ok(Err(blocked.to_string())),
    };
    let api: Api<Job> = Api::namespaced(ctx.client().clone(), &ns);
    create_once(ctx, &api, &job, format!("the Job {ns}/{name}")).await?;
    Ok(Ok(name))
}

/// The site's new data volume, like its current one.
async fn ensure_volume(
    ctx: &Ctx,
    info: &Info,
    site: &PloneSite,
    origin: &str,
    claim: &str,
) -> Result<Result<(), String>, Error> {
    let ns = site.namespace().unwrap_or_default();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client().clone(), &ns);
    if api
        .get_opt(claim)
        .await
        .map_err(kube_err(format!("read the volume claim {ns}/{claim}")))?
        .is_some()
    {
        return Ok(Ok(()));
    }
    let Some(old) = api
        .get_opt(origin)
        .await
        .map_err(kube_err(format!("read the volume claim {ns}/{origin}")))?
    else {
        return Ok(Err(format!(
            "the site's data volume claim {origin} does not exist"
        )));
    };
    let old_spec = old.spec.unwrap_or_default();
    let mut labels = old.metadata.labels.unwrap_or_default();
    labels.remove(mutu_runtime::labels::APPLIED_HASH);
    let new = PersistentVolumeClaim {
        metadata: kube::api::ObjectMeta {
            name: Some(claim.to_string()),
            namespace: Some(ns.clone()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                MIGRATED_BY.to_string(),
                info.name.clone(),
            )])),
            ..Default::default()
        },
        spec: Some(k8s_openapi::api::core::v1::PersistentVolumeClaimSpec {
            access_modes: old_spec.access_modes,
            resources: old_spec.resources,
            storage_class_name: old_spec.storage_class_name,
            volume_mode: old_spec.volume_mode,
            ..Default::default()
        }),
        status: None,
    };
    create_once(ctx, &api, &new, format!("the volume claim {ns}/{claim}")).await?;
    Ok(Ok(()))
}

/// The site's Product, or the failure of a site whose Product is gone.
fn product_of(data: &Data, site: &PloneSite) -> Result<ProductSpec, Next> {
    data.product(&site.spec.product).ok_or_else(|| {
        Next::Fail(format!(
            "the site's Product {} does not exist",
            site.spec.product
        ))
    })
}

/// One step of a site of a MigrationPlan.
async fn migrate(
    ctx: &Ctx,
    info: &Info,
    p: &SiteProgress,
    site: &PloneSite,
    from: &str,
    to: &str,
    now: &Time,
) -> Result<Next, Error> {
    let data = &ctx.data;
    let product = match product_of(data, site) {
        Ok(p) => p,
        Err(next) => return Ok(next),
    };
    let kind = storage::of(site, &product);
    let who = info.who();
    let origin_pool = p.origin.clone().unwrap_or_else(|| from.to_string());
    let new_volume = info.new_volume(&p.name);
    Ok(match p.step {
        SiteStep::Preflight => {
            if kind == Storage::Volume {
                return Ok(Next::Fail(format!(
                    "mutu cannot move the volume of a {} site yet; it stays on pool {origin_pool}",
                    site.spec.product
                )));
            }
            if let Err(why) = room(data, site, &product, to) {
                return Ok(Next::Fail(why));
            }
            if let Err(why) = certificate_valid(ctx, site).await? {
                return Ok(Next::Fail(why));
            }
            if kind == Storage::Nothing {
                return Ok(Next::Go(SiteStep::Maintenance, "no data to back up".into()));
            }
            let name = info.object_name(&p.name, "pre");
            match ensure_backup(ctx, info, site, &name).await? {
                Run::Complete => Next::Go(
                    SiteStep::Maintenance,
                    format!("room on pool {to}, certificate valid, Backup {name} complete"),
                ),
                Run::Running(m) => Next::Stay(format!("fresh Backup {name}: {m}")),
                Run::Failed(m) => Next::Fail(format!("the fresh Backup {name} failed: {m}")),
            }
        }
        SiteStep::Maintenance => {
            annotate(ctx, site, &[(mutu_api::OFFLINE_ANNOTATION, Some(who))]).await?;
            if ingress_offline(ctx, site).await? {
                Next::Go(
                    SiteStep::CopyingData,
                    "visitors see the maintenance page".into(),
                )
            } else {
                Next::Stay("waiting for the site's Ingress to show the maintenance page".into())
            }
        }
        SiteStep::CopyingData => {
            if kind != Storage::Zeo {
                return Ok(Next::Go(
                    SiteStep::Moving,
                    "the data stays where it is (outside the pools)".into(),
                ));
            }
            let last = info.object_name(&p.name, "final");
            match ensure_backup(ctx, info, site, &last).await? {
                Run::Complete => {}
                Run::Running(m) => {
                    return Ok(Next::Stay(format!(
                        "last Backup {last}, with no visitor writing: {m}"
                    )));
                }
                Run::Failed(m) => {
                    return Ok(Next::Fail(format!("the last Backup {last} failed: {m}")));
                }
            }
            annotate(ctx, site, &[(mutu_api::MAINTENANCE_ANNOTATION, Some(who))]).await?;
            let ns = site.namespace().unwrap_or_default();
            let running = data.server_pods(&ns, &p.name).len();
            if running > 0 {
                return Ok(Next::Stay(format!(
                    "waiting for the site's {running} servers to stop"
                )));
            }
            let origin = p
                .origin_volume
                .clone()
                .unwrap_or_else(|| names::zeo_data_claim(&p.name));
            if let Err(why) = ensure_volume(ctx, info, site, &origin, &new_volume).await? {
                return Ok(Next::Fail(why));
            }
            let job = match ensure_copy_job(ctx, info, site, &last, &new_volume, to).await? {
                Ok(job) => job,
                Err(why) => return Ok(Next::Fail(why)),
            };
            match job_state(data, &ns, &job) {
                Some(mutu_runtime::jobs::JobState::Succeeded) => Next::Go(
                    SiteStep::Moving,
                    format!("data restored from Backup {last} into {new_volume} on pool {to}"),
                ),
                Some(mutu_runtime::jobs::JobState::Failed(m)) => Next::Fail(format!(
                    "copying the data into {new_volume} failed: {m} (logs: kubectl logs -n {ns} job/{job})"
                )),
                _ => Next::Stay(format!(
                    "Job {job} restores Backup {last} into {new_volume}"
                )),
            }
        }
        SiteStep::Moving => {
            let volume = (kind == Storage::Zeo).then(|| new_volume.clone());
            let mut wanted = vec![
                (mutu_api::POOL_ANNOTATION, Some(to.to_string())),
                (mutu_api::MAINTENANCE_ANNOTATION, None),
            ];
            if volume.is_some() {
                wanted.push((mutu_api::DATA_VOLUME_ANNOTATION, volume));
            }
            annotate(ctx, site, &wanted).await?;
            Next::Go(
                SiteStep::Verifying,
                format!("the site's servers start on pool {to}"),
            )
        }
        SiteStep::Verifying => {
            if available_on(data, site, to) {
                annotate(ctx, site, &[(mutu_api::OFFLINE_ANNOTATION, None)]).await?;
                if is_true(site, mutu_api::CONDITION_READY) {
                    return Ok(Next::Go(SiteStep::Done, format!("Ready on pool {to}")));
                }
                return Ok(Next::Stay(
                    "ready on the new pool; ending the maintenance".into(),
                ));
            }
            if age(p.since.as_ref(), now) > info.verify {
                return Ok(Next::Fail(format!(
                    "not ready on pool {to} after {}: {}",
                    human(info.verify),
                    ready_message(site)
                )));
            }
            Next::Stay(format!(
                "waiting for the site to be ready on pool {to}: {}",
                ready_message(site)
            ))
        }
        SiteStep::RollingBack => {
            let back_volume = p
                .origin_volume
                .clone()
                .filter(|v| *v != names::zeo_data_claim(&p.name));
            let mut wanted = vec![
                (mutu_api::POOL_ANNOTATION, Some(origin_pool.clone())),
                (mutu_api::MAINTENANCE_ANNOTATION, None),
                (mutu_api::OFFLINE_ANNOTATION, Some(who)),
            ];
            if kind == Storage::Zeo {
                wanted.push((mutu_api::DATA_VOLUME_ANNOTATION, back_volume));
            }
            let failure = p.reason.clone().unwrap_or_default();
            let failure = failure
                .split(" — putting it back")
                .next()
                .unwrap_or_default()
                .to_string();
            if available_on(data, site, &origin_pool) {
                annotate(
                    ctx,
                    site,
                    &[
                        (mutu_api::POOL_ANNOTATION, Some(origin_pool.clone())),
                        (mutu_api::MAINTENANCE_ANNOTATION, None),
                        (mutu_api::OFFLINE_ANNOTATION, None),
                    ],
                )
                .await?;
                if !is_true(site, mutu_api::CONDITION_READY) {
                    return Ok(Next::Stay(format!(
                        "{failure} — putting it back on pool {origin_pool}: ready there; ending the maintenance"
                    )));
                }
                return Ok(Next::Go(
                    SiteStep::Failed,
                    format!(
                        "{failure}; put back on pool {origin_pool} with its original data{}",
                        p.origin_volume
                            .as_ref()
                            .map(|v| format!(" volume {v}"))
                            .unwrap_or_default()
                    ),
                ));
            }
            annotate(ctx, site, &wanted).await?;
            // A StatefulSet does not replace a pod that never became ready
            // (it waits for a person): the servers left on the wrong pool go.
            if site.annotations().get(mutu_api::POOL_ANNOTATION) == Some(&origin_pool) {
                stray_pods(ctx, site, &origin_pool).await?;
            }
            if age(p.since.as_ref(), now) > info.verify * 2 {
                annotate(ctx, site, &[(mutu_api::OFFLINE_ANNOTATION, None)]).await?;
                return Ok(Next::Go(
                    SiteStep::Failed,
                    format!(
                        "{failure}; put back on pool {origin_pool}, but it is not ready there either: {}",
                        ready_message(site)
                    ),
                ));
            }
            Next::Stay(format!(
                "{failure} — putting it back on pool {origin_pool}: {}",
                ready_message(site)
            ))
        }
        SiteStep::Pending | SiteStep::Upgrading | SiteStep::Done | SiteStep::Failed => {
            Next::Stay(p.reason.clone().unwrap_or_default())
        }
    })
}

/// Deletes the site's server pods that run outside `pool`.
async fn stray_pods(ctx: &Ctx, site: &PloneSite, pool: &str) -> Result<(), Error> {
    let ns = site.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client().clone(), &ns);
    for pod in ctx.data.server_pods(&ns, &site.name_any()) {
        let on = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .and_then(|n| ctx.data.node_pool(n));
        let zeo = pod.labels().get(mutu_api::COMPONENT).map(String::as_str) == Some("zeo");
        if !zeo
            || pod.metadata.deletion_timestamp.is_some()
            || on.is_none()
            || on.as_deref() == Some(pool)
        {
            continue;
        }
        match api.delete(&pod.name_any(), &DeleteParams::default()).await {
            Ok(_) => ctx.metrics.write(ctx.name, "delete", "Pod"),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => {
                return Err(Error::Kube {
                    what: format!(
                        "delete the pod {ns}/{} left on the wrong pool",
                        pod.name_any()
                    ),
                    source,
                });
            }
        }
    }
    Ok(())
}

/// One step of a site of a ReleaseRollout.
async fn upgrade(
    ctx: &Ctx,
    info: &Info,
    p: &SiteProgress,
    site: &PloneSite,
    release: &str,
    now: &Time,
) -> Result<Next, Error> {
    let data = &ctx.data;
    let product = match product_of(data, site) {
        Ok(p) => p,
        Err(next) => return Ok(next),
    };
    let kind = storage::of(site, &product);
    let has_backup = matches!(kind, Storage::Zeo | Storage::Rel);
    let st = site.status.clone().unwrap_or_default();
    let origin = p.origin.clone().unwrap_or_default();
    let backup = info.object_name(&p.name, "pre");
    Ok(match p.step {
        SiteStep::Preflight => {
            if !is_true(site, mutu_api::CONDITION_READY) {
                return Ok(Next::Fail(format!(
                    "the site is not Ready before the upgrade: {}",
                    ready_message(site)
                )));
            }
            if !has_backup {
                return Ok(Next::Go(SiteStep::Upgrading, "no data to back up".into()));
            }
            match ensure_backup(ctx, info, site, &backup).await? {
                Run::Complete => Next::Go(
                    SiteStep::Upgrading,
                    format!("Backup {backup} complete; upgrading to {release}"),
                ),
                Run::Running(m) => Next::Stay(format!("Backup {backup} before the upgrade: {m}")),
                Run::Failed(m) => Next::Fail(format!(
                    "the Backup {backup} before the upgrade failed: {m}"
                )),
            }
        }
        SiteStep::Upgrading => {
            annotate(
                ctx,
                site,
                &[(mutu_api::RELEASE_ANNOTATION, Some(release.to_string()))],
            )
            .await?;
            if st.release.as_deref() == Some(release) {
                return Ok(Next::Go(
                    SiteStep::Verifying,
                    format!("running release {release}; waiting for it to be Ready"),
                ));
            }
            if let Some(c) = cond(site, "Degraded")
                && c.status == "True"
                && c.reason == "UpgradeFailed"
                && c.message.contains(&format!("release {release} "))
            {
                return Ok(Next::Fail(c.message.clone()));
            }
            Next::Stay(format!("the upgrade Job to {release} runs"))
        }
        SiteStep::Verifying => {
            if st.release.as_deref() == Some(release) && is_true(site, mutu_api::CONDITION_READY) {
                return Ok(Next::Go(
                    SiteStep::Done,
                    format!("Ready on release {release}"),
                ));
            }
            if age(p.since.as_ref(), now) > info.verify {
                return Ok(Next::Fail(format!(
                    "not Ready on release {release} after {}: {}",
                    human(info.verify),
                    ready_message(site)
                )));
            }
            Next::Stay(format!(
                "waiting for release {release} to be Ready: {}",
                ready_message(site)
            ))
        }
        SiteStep::RollingBack => {
            let failure = p.reason.clone().unwrap_or_default();
            let failure = failure
                .split(" — putting it back")
                .next()
                .unwrap_or_default()
                .to_string();
            if !has_backup {
                annotate(
                    ctx,
                    site,
                    &[(mutu_api::RELEASE_ANNOTATION, Some(origin.clone()))],
                )
                .await?;
                if st.release.as_deref() == Some(origin.as_str())
                    && is_true(site, mutu_api::CONDITION_READY)
                {
                    return Ok(Next::Go(
                        SiteStep::Failed,
                        format!("{failure}; back on release {origin}"),
                    ));
                }
                return Ok(Next::Stay(format!(
                    "{failure} — putting it back on release {origin}"
                )));
            }
            // The data goes back to the backup taken before the upgrade, then
            // the previous release starts on it.
            let ns = site.namespace().unwrap_or_default();
            let name = info.object_name(&p.name, "restore");
            let api: Api<Restore> = Api::namespaced(ctx.client().clone(), &ns);
            let restore = api
                .get_opt(&name)
                .await
                .map_err(kube_err(format!("read the Restore {ns}/{name}")))?;
            let Some(restore) = restore else {
                annotate(
                    ctx,
                    site,
                    &[
                        (mutu_api::RELEASE_ANNOTATION, Some(origin.clone())),
                        (mutu_api::MAINTENANCE_ANNOTATION, Some(info.who())),
                    ],
                )
                .await?;
                let r: Restore = serde_json::from_value(json!({
                    "apiVersion": mutu_api::API_VERSION, "kind": "Restore",
                    "metadata": {
                        "name": name, "namespace": ns,
                        "labels": {
                            mutu_api::MANAGED_BY: mutu_api::MANAGED_BY_VALUE,
                            mutu_api::INSTANCE: p.name,
                            mutu_api::COMPONENT: "restore",
                            SITE_LABEL: p.name,
                        },
                        "ownerReferences": [owner_ref(info)],
                    },
                    "spec": {"site": p.name, "backup": backup},
                }))
                .map_err(|e| Error::Kube {
                    what: format!("build the Restore {name}"),
                    source: kube::Error::SerdeError(e),
                })?;
                create_once(ctx, &api, &r, format!("the Restore {ns}/{name}")).await?;
                return Ok(Next::Stay(format!(
                    "{failure} — putting it back on release {origin}: Restore {name} of Backup {backup} started"
                )));
            };
            match run_state(
                restore
                    .status
                    .as_ref()
                    .map(|s| s.conditions.as_slice())
                    .unwrap_or(&[]),
            ) {
                Run::Complete => Next::Go(
                    SiteStep::Failed,
                    format!(
                        "{failure}; back on release {origin} with its data of before the upgrade (Restore {name})"
                    ),
                ),
                Run::Failed(m) => Next::Go(
                    SiteStep::Failed,
                    format!(
                        "{failure}; back on release {origin}, but the Restore {name} of Backup {backup} failed: {m}. The site needs a person"
                    ),
                ),
                Run::Running(m) => Next::Stay(format!(
                    "{failure} — putting it back on release {origin}: Restore {name}: {m}"
                )),
            }
        }
        SiteStep::Pending
        | SiteStep::Maintenance
        | SiteStep::CopyingData
        | SiteStep::Moving
        | SiteStep::Done
        | SiteStep::Failed => Next::Stay(p.reason.clone().unwrap_or_default()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_quantity_is_named_not_counted_as_nothing() {
        let list = BTreeMap::from([
            ("cpu".to_string(), Quantity("1.5".into())),
            ("memory".to_string(), Quantity("lots".into())),
        ]);
        assert_eq!(amount(&list, "cpu", || "node n1".into()), Ok(1500));
        assert_eq!(
            amount(&list, "ephemeral-storage", || "node n1".into()),
            Ok(0)
        );
        let err = amount(&list, "memory", || "node n1".into())
            .err()
            .unwrap_or_default();
        assert!(err.contains("\"lots\"") && err.contains("node n1"), "{err}");
    }

    #[test]
    fn durations_read_back_as_written() {
        assert_eq!(human(Duration::from_secs(600)), "10m");
        assert_eq!(human(Duration::from_secs(7200)), "2h");
        assert_eq!(human(Duration::from_secs(45)), "45s");
    }
}
