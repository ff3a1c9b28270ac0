//! The steps of one site of a plan, pure. Given where the site is (its
//! recorded [`SiteProgress`]) and what the engine saw of it ([`World`]), a
//! step says what to read first ([`Outcome::Look`]) or what to do and where
//! the site goes next ([`Outcome::Then`]). The executor (`act`) reads and
//! acts; nothing here talks to the cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;
use mutu_api::wave::{SiteProgress, SiteStep};
use mutu_api::{Certificate, PloneSite, ProductSpec};
use mutu_model::storage::{self, Storage};
use mutu_model::{names, quantity};
use mutu_runtime::conditions;
use mutu_runtime::jobs::JobState;

use crate::plan::PlanRef;

/// Annotation on the volumes a MigrationPlan created: the plan's name.
pub const MIGRATED_BY: &str = "hosting.imio.be/migrated-by";

/// What becomes of a site after working on its step.
#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    /// Still at it, because…
    Wait(String),
    /// On to the next step.
    Go(SiteStep, String),
    /// The step failed: put the site back (or, before anything changed, just count it).
    Fail(String),
}

/// The state of a Backup or Restore run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Run {
    Running(String),
    Complete,
    Failed(String),
}

/// What a step needs read from the API server before it can decide: read
/// only when a step gets that far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Look {
    /// Room on the target pool (from the node and pod caches).
    Room,
    /// The site's Certificate.
    Certificate,
    /// The site's Ingress.
    Ingress,
    /// The site's new data volume and, if missing, its current one.
    Volumes,
    /// The copy Job, built from the site's ZEO server.
    CopyJob,
    /// The plan's Restore of the site.
    Restore,
}

/// Something to do to the cluster.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Set (or, with `None`, remove) annotations of the site.
    Annotate(Vec<(&'static str, Option<String>)>),
    /// Create the plan's Backup `name` of the site.
    CreateBackup { name: String },
    /// Create the site's new data volume.
    CreateVolume(Box<PersistentVolumeClaim>),
    /// Create the Job that restores the last Backup into the new volume.
    CreateCopyJob(Box<Job>),
    /// Create the plan's Restore `name` of Backup `backup` of the site.
    CreateRestore { name: String, backup: String },
    /// Delete these server pods of the site (left on the wrong pool).
    DeletePods(Vec<String>),
}

/// What the step says.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Read this, then ask again.
    Look(Look),
    /// Do these, in order, and the site goes on so.
    Then(Vec<Action>, Next),
}

fn then(actions: Vec<Action>, next: Next) -> Outcome {
    Outcome::Then(actions, next)
}

fn next(next: Next) -> Outcome {
    Outcome::Then(Vec::new(), next)
}

/// One server pod of the site.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Server {
    pub name: String,
    pub zeo: bool,
    pub deleting: bool,
    /// The pool of its node, once scheduled on a node with one.
    pub pool: Option<String>,
}

/// The site's new and current data volumes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Volumes {
    pub new_exists: bool,
    /// The current one, read only when the new one is missing.
    pub origin: Option<PersistentVolumeClaim>,
}

/// What the engine saw of a site and around it. The cache reads are always
/// filled; the [`Look`]s are `None` until read.
#[derive(Clone, Debug)]
pub struct World {
    pub now: Time,
    pub site: PloneSite,
    pub product: Option<ProductSpec>,
    /// The plan's Backups of the site (by name) that exist.
    pub backups: BTreeMap<String, Run>,
    /// The site's server pods (instances and ZEO), wherever they are.
    pub servers: Vec<Server>,
    /// The copy Job's state, when it exists.
    pub copy_job: Option<JobState>,
    pub room: Option<Result<(), String>>,
    pub certificate: Option<Result<(), String>>,
    pub ingress_offline: Option<bool>,
    pub volumes: Option<Volumes>,
    /// The copy Job to create, or why it cannot be.
    pub copy_job_built: Option<Result<Job, String>>,
    /// The Restore's run, `Some(None)` when it does not exist.
    pub restore: Option<Option<Run>>,
}

impl World {
    /// What is seen of `site` at `now`, before anything else is read.
    pub fn new(now: Time, site: PloneSite) -> Self {
        World {
            now,
            site,
            product: None,
            backups: BTreeMap::new(),
            servers: Vec::new(),
            copy_job: None,
            room: None,
            certificate: None,
            ingress_offline: None,
            volumes: None,
            copy_job_built: None,
            restore: None,
        }
    }

    fn ns(&self) -> String {
        self.site.namespace().unwrap_or_default()
    }

    /// The site's servers are all ready, and only on `pool`.
    fn available_on(&self, pool: &str) -> bool {
        is_true(&self.site, "Available")
            && self.site.status.as_ref().and_then(|s| s.pool.as_deref()) == Some(pool)
            && self.servers.iter().all(|s| s.pool.as_deref() == Some(pool))
    }

    /// The annotation change that makes the site so, if it is not already.
    fn annotate(&self, wanted: &[(&'static str, Option<String>)]) -> Option<Action> {
        let current = self.site.annotations();
        wanted
            .iter()
            .any(|(k, v)| current.get(*k) != v.as_ref())
            .then(|| Action::Annotate(wanted.to_vec()))
    }

    /// The run of Backup `name`, and the action that creates it if missing.
    fn backup(&self, name: &str) -> (Option<Action>, Run) {
        match self.backups.get(name) {
            Some(run) => (None, run.clone()),
            None => (
                Some(Action::CreateBackup {
                    name: name.to_string(),
                }),
                Run::Running(format!("Backup {name} started")),
            ),
        }
    }
}

pub fn cond<'a>(site: &'a PloneSite, type_: &str) -> Option<&'a Condition> {
    site.status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, type_))
}

pub fn is_true(site: &PloneSite, type_: &str) -> bool {
    cond(site, type_).is_some_and(|c| c.status == "True")
}

fn ready(site: &PloneSite) -> bool {
    is_true(site, mutu_api::CONDITION_READY)
}

pub fn ready_message(site: &PloneSite) -> String {
    cond(site, mutu_api::CONDITION_READY)
        .map(|c| format!("{} ({})", c.message, c.reason))
        .unwrap_or_else(|| "no Ready condition yet".into())
}

/// How long since `since`.
pub fn age(since: Option<&Time>, now: &Time) -> Duration {
    since
        .map(|s| {
            let secs = now.0.as_second() - s.0.as_second();
            Duration::from_secs(secs.max(0) as u64)
        })
        .unwrap_or_default()
}

/// A duration as written in a spec: `10m`, `2h`, `45s`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s >= 60 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// The state of a Backup or Restore from its conditions.
pub fn run_state(conds: &[Condition]) -> Run {
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

/// The reason a site failed, without what the rollback added to it.
fn failure_of(p: &SiteProgress) -> String {
    p.reason
        .clone()
        .unwrap_or_default()
        .split(" — putting it back")
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The site's Certificate (`name`) is issued and valid for a day more.
pub fn certificate_valid(cert: Option<&Certificate>, name: &str, now: &Time) -> Result<(), String> {
    let Some(cert) = cert else {
        return Err(format!("the site has no Certificate {name} yet"));
    };
    let st = cert.status.clone().unwrap_or_default();
    let ready = conditions::find(&st.conditions, mutu_api::CONDITION_READY);
    if ready.is_none_or(|c| c.status != "True") {
        return Err(format!(
            "its Certificate {name} is not valid: {}",
            ready
                .map(|c| c.message.clone())
                .unwrap_or_else(|| "not issued yet".into())
        ));
    }
    let soon = now.0.as_second() + 24 * 3600;
    if let Some(after) = &st.not_after
        && after.0.as_second() < soon
    {
        return Err(format!(
            "its Certificate {name} expires within a day ({}); renew it first",
            after.0
        ));
    }
    Ok(())
}

/// The site's Ingress sends every visitor to the maintenance page (`offline`).
pub fn shows_maintenance(ingress: Option<&Ingress>, offline: &str) -> bool {
    ingress.is_some_and(|i| {
        let rules = i
            .spec
            .as_ref()
            .and_then(|s| s.rules.clone())
            .unwrap_or_default();
        !rules.is_empty()
            && rules.iter().all(|r| {
                r.http
                    .iter()
                    .flat_map(|h| h.paths.iter())
                    .all(|p| p.backend.service.as_ref().map(|s| s.name.as_str()) == Some(offline))
            })
    })
}

/// The new data volume `claim` of the plan `plan`, like the current one `old`.
pub fn new_claim(
    old: &PersistentVolumeClaim,
    claim: &str,
    ns: &str,
    plan: &str,
) -> PersistentVolumeClaim {
    let old_spec = old.spec.clone().unwrap_or_default();
    let mut labels = old.metadata.labels.clone().unwrap_or_default();
    labels.remove(mutu_runtime::labels::APPLIED_HASH);
    PersistentVolumeClaim {
        metadata: kube::api::ObjectMeta {
            name: Some(claim.to_string()),
            namespace: Some(ns.to_string()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                MIGRATED_BY.to_string(),
                plan.to_string(),
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
    }
}

/// Room for the site on `pool`: its servers' CPU and memory requests fit in
/// what the pool's schedulable nodes have left. A quantity that cannot be
/// read is said, never counted as nothing.
pub fn fits_on_pool(
    site: &PloneSite,
    product: &ProductSpec,
    pool: &str,
    nodes: &[Arc<Node>],
    pods: &[Arc<Pod>],
) -> Result<(), String> {
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
    let nodes: Vec<&Arc<Node>> = nodes
        .iter()
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
    for p in pods {
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

/// The site's Product, or the failure of a site whose Product is gone.
fn product(w: &World) -> Result<&ProductSpec, Outcome> {
    w.product.as_ref().ok_or_else(|| {
        next(Next::Fail(format!(
            "the site's Product {} does not exist",
            w.site.spec.product
        )))
    })
}

/// One step of a site of a MigrationPlan from pool `from` to pool `to`.
pub fn migrate(plan: &PlanRef, p: &SiteProgress, w: &World, from: &str, to: &str) -> Outcome {
    let product = match product(w) {
        Ok(product) => product,
        Err(outcome) => return outcome,
    };
    let kind = storage::of(&w.site, product);
    let origin_pool = p.origin.clone().unwrap_or_else(|| from.to_string());
    match p.step {
        SiteStep::Preflight => migration_preflight(plan, p, w, kind, &origin_pool, to),
        SiteStep::Maintenance => {
            let actions = w
                .annotate(&[(mutu_api::OFFLINE_ANNOTATION, Some(plan.who()))])
                .into_iter()
                .collect();
            match w.ingress_offline {
                None => Outcome::Look(Look::Ingress),
                Some(true) => then(
                    actions,
                    Next::Go(
                        SiteStep::CopyingData,
                        "visitors see the maintenance page".into(),
                    ),
                ),
                Some(false) => then(
                    actions,
                    Next::Wait(
                        "waiting for the site's Ingress to show the maintenance page".into(),
                    ),
                ),
            }
        }
        SiteStep::CopyingData => copy_data(plan, p, w, kind, to),
        SiteStep::Moving => {
            let mut wanted = vec![
                (mutu_api::POOL_ANNOTATION, Some(to.to_string())),
                (mutu_api::MAINTENANCE_ANNOTATION, None),
            ];
            if kind == Storage::Zeo {
                wanted.push((
                    mutu_api::DATA_VOLUME_ANNOTATION,
                    Some(plan.new_volume(&p.name)),
                ));
            }
            then(
                w.annotate(&wanted).into_iter().collect(),
                Next::Go(
                    SiteStep::Verifying,
                    format!("the site's servers start on pool {to}"),
                ),
            )
        }
        SiteStep::Verifying => {
            if w.available_on(to) {
                let actions = w
                    .annotate(&[(mutu_api::OFFLINE_ANNOTATION, None)])
                    .into_iter()
                    .collect();
                return then(
                    actions,
                    if ready(&w.site) {
                        Next::Go(SiteStep::Done, format!("Ready on pool {to}"))
                    } else {
                        Next::Wait("ready on the new pool; ending the maintenance".into())
                    },
                );
            }
            if age(p.since.as_ref(), &w.now) > plan.verify {
                return next(Next::Fail(format!(
                    "not ready on pool {to} after {}: {}",
                    human(plan.verify),
                    ready_message(&w.site)
                )));
            }
            next(Next::Wait(format!(
                "waiting for the site to be ready on pool {to}: {}",
                ready_message(&w.site)
            )))
        }
        SiteStep::RollingBack => migration_back(plan, p, w, kind, &origin_pool),
        SiteStep::Pending | SiteStep::Upgrading | SiteStep::Done | SiteStep::Failed => {
            next(Next::Wait(p.reason.clone().unwrap_or_default()))
        }
    }
}

/// Before anything changes: room on the new pool, a valid certificate, a
/// fresh Backup.
fn migration_preflight(
    plan: &PlanRef,
    p: &SiteProgress,
    w: &World,
    kind: Storage,
    origin_pool: &str,
    to: &str,
) -> Outcome {
    if kind == Storage::Volume {
        return next(Next::Fail(format!(
            "mutu cannot move the volume of a {} site yet; it stays on pool {origin_pool}",
            w.site.spec.product
        )));
    }
    match &w.room {
        None => return Outcome::Look(Look::Room),
        Some(Err(why)) => return next(Next::Fail(why.clone())),
        Some(Ok(())) => {}
    }
    match &w.certificate {
        None => return Outcome::Look(Look::Certificate),
        Some(Err(why)) => return next(Next::Fail(why.clone())),
        Some(Ok(())) => {}
    }
    if kind == Storage::Nothing {
        return next(Next::Go(SiteStep::Maintenance, "no data to back up".into()));
    }
    let name = plan.object_name(&p.name, "pre");
    let (create, run) = w.backup(&name);
    then(
        create.into_iter().collect(),
        match run {
            Run::Complete => Next::Go(
                SiteStep::Maintenance,
                format!("room on pool {to}, certificate valid, Backup {name} complete"),
            ),
            Run::Running(m) => Next::Wait(format!("fresh Backup {name}: {m}")),
            Run::Failed(m) => Next::Fail(format!("the fresh Backup {name} failed: {m}")),
        },
    )
}

/// Visitors see the maintenance page: a last Backup, the servers stop, the
/// Backup is restored into a new volume on the new pool.
fn copy_data(plan: &PlanRef, p: &SiteProgress, w: &World, kind: Storage, to: &str) -> Outcome {
    if kind != Storage::Zeo {
        return next(Next::Go(
            SiteStep::Moving,
            "the data stays where it is (outside the pools)".into(),
        ));
    }
    let last = plan.object_name(&p.name, "final");
    let (create, run) = w.backup(&last);
    match run {
        Run::Complete => {}
        Run::Running(m) => {
            return then(
                create.into_iter().collect(),
                Next::Wait(format!("last Backup {last}, with no visitor writing: {m}")),
            );
        }
        Run::Failed(m) => {
            return next(Next::Fail(format!("the last Backup {last} failed: {m}")));
        }
    }
    let mut actions: Vec<Action> = w
        .annotate(&[(mutu_api::MAINTENANCE_ANNOTATION, Some(plan.who()))])
        .into_iter()
        .collect();
    let running = w.servers.len();
    if running > 0 {
        return then(
            actions,
            Next::Wait(format!("waiting for the site's {running} servers to stop")),
        );
    }
    let new_volume = plan.new_volume(&p.name);
    let origin = p
        .origin_volume
        .clone()
        .unwrap_or_else(|| names::zeo_data_claim(&p.name));
    let Some(volumes) = &w.volumes else {
        return Outcome::Look(Look::Volumes);
    };
    if !volumes.new_exists {
        let Some(old) = &volumes.origin else {
            return then(
                actions,
                Next::Fail(format!(
                    "the site's data volume claim {origin} does not exist"
                )),
            );
        };
        actions.push(Action::CreateVolume(Box::new(new_claim(
            old,
            &new_volume,
            &w.ns(),
            &plan.name,
        ))));
    }
    let job = plan.object_name(&p.name, "data");
    let state = match &w.copy_job {
        Some(state) => Some(state.clone()),
        None => match &w.copy_job_built {
            None => return Outcome::Look(Look::CopyJob),
            Some(Err(why)) => return then(actions, Next::Fail(why.clone())),
            Some(Ok(built)) => {
                actions.push(Action::CreateCopyJob(Box::new(built.clone())));
                None
            }
        },
    };
    then(
        actions,
        match state {
            Some(JobState::Succeeded) => Next::Go(
                SiteStep::Moving,
                format!("data restored from Backup {last} into {new_volume} on pool {to}"),
            ),
            Some(JobState::Failed(m)) => Next::Fail(format!(
                "copying the data into {new_volume} failed: {m} (logs: kubectl logs -n {} job/{job})",
                w.ns()
            )),
            _ => Next::Wait(format!(
                "Job {job} restores Backup {last} into {new_volume}"
            )),
        },
    )
}

/// A failed migration puts the site back on its pool with its data.
fn migration_back(
    plan: &PlanRef,
    p: &SiteProgress,
    w: &World,
    kind: Storage,
    origin_pool: &str,
) -> Outcome {
    let failure = failure_of(p);
    if w.available_on(origin_pool) {
        let actions = w
            .annotate(&[
                (mutu_api::POOL_ANNOTATION, Some(origin_pool.to_string())),
                (mutu_api::MAINTENANCE_ANNOTATION, None),
                (mutu_api::OFFLINE_ANNOTATION, None),
            ])
            .into_iter()
            .collect();
        if !ready(&w.site) {
            return then(
                actions,
                Next::Wait(format!(
                    "{failure} — putting it back on pool {origin_pool}: ready there; ending the maintenance"
                )),
            );
        }
        return then(
            actions,
            Next::Go(
                SiteStep::Failed,
                format!(
                    "{failure}; put back on pool {origin_pool} with its original data{}",
                    p.origin_volume
                        .as_ref()
                        .map(|v| format!(" volume {v}"))
                        .unwrap_or_default()
                ),
            ),
        );
    }
    let mut wanted = vec![
        (mutu_api::POOL_ANNOTATION, Some(origin_pool.to_string())),
        (mutu_api::MAINTENANCE_ANNOTATION, None),
        (mutu_api::OFFLINE_ANNOTATION, Some(plan.who())),
    ];
    if kind == Storage::Zeo {
        let back_volume = p
            .origin_volume
            .clone()
            .filter(|v| *v != names::zeo_data_claim(&p.name));
        wanted.push((mutu_api::DATA_VOLUME_ANNOTATION, back_volume));
    }
    let mut actions: Vec<Action> = w.annotate(&wanted).into_iter().collect();
    // A StatefulSet does not replace a pod that never became ready (it waits
    // for a person): the ZEO servers left on the wrong pool go, once the site
    // is seen placed back.
    if w.site
        .annotations()
        .get(mutu_api::POOL_ANNOTATION)
        .map(String::as_str)
        == Some(origin_pool)
    {
        let strays: Vec<String> = w
            .servers
            .iter()
            .filter(|s| s.zeo && !s.deleting)
            .filter(|s| s.pool.as_deref().is_some_and(|on| on != origin_pool))
            .map(|s| s.name.clone())
            .collect();
        if !strays.is_empty() {
            actions.push(Action::DeletePods(strays));
        }
    }
    if age(p.since.as_ref(), &w.now) > plan.verify * 2 {
        actions.extend(w.annotate(&[(mutu_api::OFFLINE_ANNOTATION, None)]));
        return then(
            actions,
            Next::Go(
                SiteStep::Failed,
                format!(
                    "{failure}; put back on pool {origin_pool}, but it is not ready there either: {}",
                    ready_message(&w.site)
                ),
            ),
        );
    }
    then(
        actions,
        Next::Wait(format!(
            "{failure} — putting it back on pool {origin_pool}: {}",
            ready_message(&w.site)
        )),
    )
}

/// One step of a site of a ReleaseRollout to `release`.
pub fn upgrade(plan: &PlanRef, p: &SiteProgress, w: &World, release: &str) -> Outcome {
    let product = match product(w) {
        Ok(product) => product,
        Err(outcome) => return outcome,
    };
    let has_backup = matches!(storage::of(&w.site, product), Storage::Zeo | Storage::Rel);
    let running = w.site.status.as_ref().and_then(|s| s.release.as_deref());
    match p.step {
        SiteStep::Preflight => {
            if !ready(&w.site) {
                return next(Next::Fail(format!(
                    "the site is not Ready before the upgrade: {}",
                    ready_message(&w.site)
                )));
            }
            if !has_backup {
                return next(Next::Go(SiteStep::Upgrading, "no data to back up".into()));
            }
            let backup = plan.object_name(&p.name, "pre");
            let (create, run) = w.backup(&backup);
            then(
                create.into_iter().collect(),
                match run {
                    Run::Complete => Next::Go(
                        SiteStep::Upgrading,
                        format!("Backup {backup} complete; upgrading to {release}"),
                    ),
                    Run::Running(m) => {
                        Next::Wait(format!("Backup {backup} before the upgrade: {m}"))
                    }
                    Run::Failed(m) => Next::Fail(format!(
                        "the Backup {backup} before the upgrade failed: {m}"
                    )),
                },
            )
        }
        SiteStep::Upgrading => {
            let actions = w
                .annotate(&[(mutu_api::RELEASE_ANNOTATION, Some(release.to_string()))])
                .into_iter()
                .collect();
            if running == Some(release) {
                return then(
                    actions,
                    Next::Go(
                        SiteStep::Verifying,
                        format!("running release {release}; waiting for it to be Ready"),
                    ),
                );
            }
            if let Some(c) = cond(&w.site, "Degraded")
                && c.status == "True"
                && c.reason == "UpgradeFailed"
                && c.message.contains(&format!("release {release} "))
            {
                return then(actions, Next::Fail(c.message.clone()));
            }
            then(
                actions,
                Next::Wait(format!("the upgrade Job to {release} runs")),
            )
        }
        SiteStep::Verifying => {
            if running == Some(release) && ready(&w.site) {
                return next(Next::Go(
                    SiteStep::Done,
                    format!("Ready on release {release}"),
                ));
            }
            if age(p.since.as_ref(), &w.now) > plan.verify {
                return next(Next::Fail(format!(
                    "not Ready on release {release} after {}: {}",
                    human(plan.verify),
                    ready_message(&w.site)
                )));
            }
            next(Next::Wait(format!(
                "waiting for release {release} to be Ready: {}",
                ready_message(&w.site)
            )))
        }
        SiteStep::RollingBack => upgrade_back(plan, p, w, has_backup),
        SiteStep::Pending
        | SiteStep::Maintenance
        | SiteStep::CopyingData
        | SiteStep::Moving
        | SiteStep::Done
        | SiteStep::Failed => next(Next::Wait(p.reason.clone().unwrap_or_default())),
    }
}

/// A failed upgrade puts the site back on its release, with the data of
/// before the upgrade when it has data.
fn upgrade_back(plan: &PlanRef, p: &SiteProgress, w: &World, has_backup: bool) -> Outcome {
    let failure = failure_of(p);
    let origin = p.origin.clone().unwrap_or_default();
    if !has_backup {
        let actions = w
            .annotate(&[(mutu_api::RELEASE_ANNOTATION, Some(origin.clone()))])
            .into_iter()
            .collect();
        let running = w.site.status.as_ref().and_then(|s| s.release.as_deref());
        if running == Some(origin.as_str()) && ready(&w.site) {
            return then(
                actions,
                Next::Go(
                    SiteStep::Failed,
                    format!("{failure}; back on release {origin}"),
                ),
            );
        }
        return then(
            actions,
            Next::Wait(format!("{failure} — putting it back on release {origin}")),
        );
    }
    // The data goes back to the backup taken before the upgrade, then the
    // previous release starts on it.
    let backup = plan.object_name(&p.name, "pre");
    let name = plan.object_name(&p.name, "restore");
    let Some(restore) = &w.restore else {
        return Outcome::Look(Look::Restore);
    };
    let Some(run) = restore else {
        let mut actions: Vec<Action> = w
            .annotate(&[
                (mutu_api::RELEASE_ANNOTATION, Some(origin.clone())),
                (mutu_api::MAINTENANCE_ANNOTATION, Some(plan.who())),
            ])
            .into_iter()
            .collect();
        actions.push(Action::CreateRestore {
            name: name.clone(),
            backup: backup.clone(),
        });
        return then(
            actions,
            Next::Wait(format!(
                "{failure} — putting it back on release {origin}: Restore {name} of Backup {backup} started"
            )),
        );
    };
    next(match run {
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
        Run::Running(m) => Next::Wait(format!(
            "{failure} — putting it back on release {origin}: Restore {name}: {m}"
        )),
    })
}
