//! The Backup controller: one Job per Backup, in the site's namespace, that
//! copies what changed in the site's ZODB (repozo, incremental) and blobs into
//! the member's backup volume, then drops from the repository what no Backup
//! object keeps any more. Reports `Complete` or `Failed`, with the times and
//! size. A running restore of the same site goes first.
//!
//! A reconcile reads the Backup and what it names from the caches, decides
//! the next step from them ([`next_step`] and [`hold`], both pure), takes it,
//! and writes the status that step reports.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, ObjectMeta};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use mutu_api::{Backup, BackupPolicy, PloneSite, RunStatus};
use mutu_runtime::conditions::Desired as Cond;

use crate::context::{Ctx, Error, fail_if_confirmed_missing};
use crate::jobs::{self, JobState};
use crate::status::{done, failed, failed_and_done, finished, waiting, working, write};
use crate::storage::{Storage, ensure_volume, storage};

/// What a reconcile does next, from the state of the Backup's Job.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// No Job yet: start one, unless something holds the backup (see [`hold`]).
    Start,
    /// The Job runs: report it and look again later.
    Watch,
    /// The Job succeeded: the backup is complete.
    Complete,
    /// The Job failed, with Kubernetes' message.
    Fail(String),
}

/// The next step of a Backup whose Job is in `job` (`None`: no Job yet).
fn next_step(job: Option<JobState>) -> Step {
    match job {
        None => Step::Start,
        Some(JobState::Running) => Step::Watch,
        Some(JobState::Succeeded) => Step::Complete,
        Some(JobState::Failed(why)) => Step::Fail(why),
    }
}

/// Longest a backup Job may run: past it, Kubernetes stops it and the Backup fails, so a
/// stuck backup does not hold its policy's place for the rest of the night.
pub const DEADLINE: Duration = Duration::from_secs(6 * 3600);
/// How long a backup Job whose pod is not running yet (unschedulable, refused by a quota,
/// its image not pulled) keeps its place among its policy's running backups.
pub const START_GRACE: Duration = Duration::from_secs(10 * 60);
/// Most manual backups of one member that run at once (the others queue): one member
/// cannot take every place of a policy.
pub const MANUAL_PER_MEMBER: usize = 2;

/// How busy a policy is: its backups whose Jobs run, and its cap.
#[derive(Debug, PartialEq, Eq)]
pub struct PolicyLoad {
    pub policy: String,
    pub running: usize,
    pub max_concurrent: i32,
}

/// Why a Backup without a Job does not start one yet.
#[derive(Debug, PartialEq, Eq)]
pub enum Hold {
    /// This restore of the same site runs first.
    Restore(String),
    /// The policy runs as many backups as it allows.
    Queued(PolicyLoad),
    /// The member runs as many manual backups at once as it may.
    MemberBusy(usize),
}

/// Whether a backup may start its Job: not while a restore of its site runs
/// (`restore_running`), nor while its policy is at its cap (`load`; the cap
/// holds for every backup, scheduled or not, and is at least one).
pub fn hold(
    restore_running: Option<String>,
    manual_running: Option<usize>,
    load: Option<PolicyLoad>,
) -> Option<Hold> {
    if let Some(restore) = restore_running {
        return Some(Hold::Restore(restore));
    }
    if let Some(n) = manual_running.filter(|n| *n >= MANUAL_PER_MEMBER) {
        return Some(Hold::MemberBusy(n));
    }
    load.filter(|l| l.running >= l.max_concurrent.max(1) as usize)
        .map(Hold::Queued)
}

/// Whether a backup Job takes a place among its policy's running backups: it runs, and
/// its pod does (a ready pod), or it was made less than [`START_GRACE`] ago.
pub fn takes_a_place(job: &Job, now: jiff::Timestamp) -> bool {
    if jobs::job_state(job) != JobState::Running {
        return false;
    }
    let status = job.status.as_ref();
    let ready = status.and_then(|s| s.ready).unwrap_or(0) > 0;
    let made = job.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let young = made.is_none_or(|t| {
        now.duration_since(t) < jiff::SignedDuration::try_from(START_GRACE).unwrap_or_default()
    });
    ready || young
}

/// The backup Jobs of `policy` that take a place (see [`takes_a_place`]).
fn running_backups_of(policy: &str, jobs: &[Arc<Job>], now: jiff::Timestamp) -> usize {
    jobs.iter()
        .filter(|j| {
            j.labels().get(mutu_api::COMPONENT).map(String::as_str) == Some(jobs::BACKUP)
                && j.labels().get(jobs::POLICY_LABEL).map(String::as_str) == Some(policy)
                && takes_a_place(j, now)
        })
        .count()
}

/// Label on the Job of a manual Backup.
pub const MANUAL_LABEL: &str = "hosting.imio.be/manual";

/// A backup or restore Job this process made, until the cache shows it.
#[derive(Clone, Debug)]
pub struct Started {
    pub namespace: String,
    pub site: String,
    /// [`jobs::BACKUP`] or [`jobs::RESTORE`].
    pub kind: &'static str,
    /// The Backup or Restore whose Job it is.
    pub owner: String,
    /// The policy a backup counts against.
    pub policy: Option<String>,
    pub manual: bool,
    pub at: std::time::Instant,
}

/// The Jobs of manual backups in namespace `ns` that run.
fn manual_running(ns: &str, jobs: &[Arc<Job>]) -> usize {
    jobs.iter()
        .filter(|j| {
            j.namespace().as_deref() == Some(ns)
                && j.labels().get(mutu_api::COMPONENT).map(String::as_str) == Some(jobs::BACKUP)
                && j.labels().contains_key(MANUAL_LABEL)
                && jobs::job_state(j) == JobState::Running
        })
        .count()
}

/// The Jobs this process made that the cache does not show yet (forgetting the others).
pub(crate) fn unseen(ctx: &Ctx, jobs: &[Arc<Job>]) -> Vec<Started> {
    let mut started = ctx.data.started.lock().unwrap_or_else(|e| e.into_inner());
    started.retain(|key, s| {
        let (ns, name) = key.split_once('/').unwrap_or_default();
        let seen = jobs
            .iter()
            .any(|j| j.namespace().as_deref() == Some(ns) && j.name_any() == name);
        !seen && !owner_over(ctx, s) && s.at.elapsed() < Duration::from_secs(120)
    });
    started.values().cloned().collect()
}

/// Whether the Backup or Restore that made `started` has finished or is gone (its Job
/// with it): its Job then no longer counts, even if the cache never showed it (a Job
/// made and removed between two looks).
fn owner_over(ctx: &Ctx, started: &Started) -> bool {
    let (ns, owner) = (started.namespace.as_str(), started.owner.as_str());
    if started.kind == jobs::RESTORE {
        ctx.data
            .restore(ns, owner)
            .is_none_or(|r| crate::status::finished(r.status.as_ref()))
    } else {
        ctx.data
            .backup(ns, owner)
            .is_none_or(|b| crate::status::finished(b.status.as_ref()))
    }
}

/// Whether a Job of `kind` of site `site` in `ns` runs: in the cache of Jobs, or made by
/// this process and not in the cache yet.
pub fn job_running(
    kind: &str,
    ns: &str,
    site: &str,
    jobs: &[Arc<Job>],
    unseen: &[Started],
) -> Option<String> {
    jobs.iter()
        .find(|j| {
            j.namespace().as_deref() == Some(ns)
                && j.labels().get(mutu_api::COMPONENT).map(String::as_str) == Some(kind)
                && j.labels().get(jobs::SITE_LABEL).map(String::as_str) == Some(site)
                && jobs::job_state(j) == JobState::Running
        })
        .map(|j| j.name_any())
        .or_else(|| {
            unseen
                .iter()
                .find(|s| s.kind == kind && s.namespace == ns && s.site == site)
                .map(|s| format!("{} of {site}", s.kind))
        })
}

/// What a Backup without a Job weighs before it starts one, all read at once while this
/// process starts no other Job (`Caches::start_lock`).
pub struct Weigh<'a> {
    pub namespace: &'a str,
    pub site: &'a str,
    pub manual: bool,
    /// The policy it counts against, if it exists, and its `maxConcurrent`.
    pub policy: Option<(&'a str, i32)>,
    /// A restore of the site that has started and not finished (the cache of Restores).
    pub restore_running: Option<String>,
    /// The cache of Jobs.
    pub jobs: &'a [Arc<Job>],
    /// The Jobs this process made that the cache does not show yet.
    pub unseen: &'a [Started],
    pub now: jiff::Timestamp,
}

/// Why the Backup does not start its Job yet, if it does not: a restore of its site
/// runs (its Restore says so, or its Job runs: the Restore's status may lag behind its
/// Job, found by the model check, tests/model.rs), its member runs as many manual
/// backups as it may, or its policy as many backups as it allows (Jobs that take a
/// place, and those this process made that the cache does not show yet).
pub fn weigh(w: &Weigh<'_>) -> Option<Hold> {
    let restore = w
        .restore_running
        .clone()
        .or_else(|| job_running(jobs::RESTORE, w.namespace, w.site, w.jobs, w.unseen));
    let not_yet = |f: &dyn Fn(&Started) -> bool| {
        w.unseen
            .iter()
            .filter(|s| s.kind == jobs::BACKUP && f(s))
            .count()
    };
    let manual = w.manual.then(|| {
        manual_running(w.namespace, w.jobs) + not_yet(&|s| s.namespace == w.namespace && s.manual)
    });
    let load = w.policy.map(|(policy, max_concurrent)| PolicyLoad {
        running: running_backups_of(policy, w.jobs, w.now)
            + not_yet(&|s| s.policy.as_deref() == Some(policy)),
        policy: policy.to_string(),
        max_concurrent,
    });
    hold(restore, manual, load)
}

/// The backups of `site` whose data the repository keeps: every Backup object
/// of the site that has not failed, and this one (last).
fn keep_ids(backups: &[Arc<Backup>], ns: &str, site: &str, this: &str) -> Vec<String> {
    let mut keep: Vec<String> = backups
        .iter()
        .filter(|b| b.namespace().as_deref() == Some(ns) && b.spec.site == site)
        .filter(|b| {
            // Running ones too: their data may be in the repository already.
            !b.status.as_ref().is_some_and(|s| {
                mutu_runtime::conditions::is_true(&s.conditions, mutu_api::CONDITION_FAILED)
            })
        })
        .map(|b| b.name_any())
        .filter(|n| n != this)
        .collect();
    keep.sort();
    keep.push(this.to_string());
    keep
}

/// The shell script of a backup Job, run as `sh -c SCRIPT TOOL` where TOOL is
/// the path of the backup tool: the backup `id` into `repo`, its result as the
/// termination message (read back for the size), then the pruning of what
/// `keep` no longer names.
fn backup_script(storage: &Storage, repo: &str, id: &str, keep: &[String]) -> String {
    let (runner, data) = match storage {
        Storage::Zeo(_) => ("python", format!(" --data {}", jobs::DATA_DIR)),
        Storage::Rel { .. } => ("sh", String::new()),
        Storage::Volume { .. } => ("sh", format!(" --data {}", jobs::DATA_DIR)),
    };
    let mut script = format!(
        "set -e\nout=$({runner} \"$0\" backup{data} --repo {repo} --id {id})\necho \"$out\"\necho \"$out\" > /dev/termination-log\n"
    );
    script.push_str(&format!(
        "{runner} \"$0\" prune --repo {repo} {} || echo 'backup done; pruning the repository failed, it is retried after the next backup' >&2\n",
        keep.iter().map(|k| format!("--keep {k}")).collect::<Vec<_>>().join(" ")
    ));
    script
}

/// Makes the Job's container run `script` with `sh -c`, its former second
/// command word (the tool's path) as `$0`.
fn run_script(job: &mut Job, script: String) {
    if let Some(c) = job
        .spec
        .as_mut()
        .and_then(|s| s.template.spec.as_mut())
        .and_then(|p| p.containers.first_mut())
    {
        let path = c
            .command
            .as_ref()
            .and_then(|cmd| cmd.get(1).cloned())
            .unwrap_or_default();
        c.command = Some(vec!["sh".into(), "-c".into(), script, path]);
    }
}

/// The conditions of a backup whose Job runs.
fn running(job: &str) -> [Cond<'static>; 2] {
    working("Running", format!("Job {job} backs the site up"))
}

/// The policy a backup counts against: its own, else its site's.
fn policy_of(ctx: &Ctx, backup: &Backup, site: &PloneSite) -> Option<String> {
    backup.spec.policy.clone().or_else(|| {
        let policies: Vec<BackupPolicy> =
            ctx.data.policies().iter().map(|p| (**p).clone()).collect();
        crate::fleet::policy_of(site, &policies).map(|p| p.name_any())
    })
}

pub async fn reconcile(backup: Arc<Backup>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if finished(backup.status.as_ref()) || backup.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if !ctx.data.ready().await {
        return Ok(mutu_runtime::controller::not_listed_yet());
    }
    let run = BackupRun::read(&ctx, &backup);
    let Some(site) = ctx.data.site(&run.ns, &backup.spec.site) else {
        let ns = run.ns.clone();
        return fail_if_confirmed_missing::<PloneSite, _, _>(&ctx, &ns, &backup.spec.site, || {
            run.no_site()
        })
        .await;
    };
    let job = ctx.data.job(&run.ns, &run.job_name);
    match next_step(job.as_deref().map(jobs::job_state)) {
        Step::Start => {
            // One start at a time in this process: the places a policy has left are
            // counted, then taken, before another Backup counts them.
            let _one_start = ctx.data.start_lock.lock().await;
            let policy = policy_of(&ctx, &backup, &site);
            let restore_running = ctx
                .data
                .restore_running(&run.ns, &backup.spec.site)
                .map(|r| r.name_any());
            let jobs = ctx.data.jobs.state();
            let unseen = unseen(&ctx, &jobs);
            let cap = policy
                .as_deref()
                .and_then(|p| ctx.data.policy(p))
                .map(|p| (p.name_any(), p.spec.max_concurrent));
            let why = weigh(&Weigh {
                namespace: &run.ns,
                site: &backup.spec.site,
                manual: backup.spec.trigger == mutu_api::backup::BackupTrigger::Manual,
                policy: cap.as_ref().map(|(name, max)| (name.as_str(), *max)),
                restore_running,
                jobs: &jobs,
                unseen: &unseen,
                now: jiff::Timestamp::now(),
            });
            match why {
                Some(why) => run.hold(why).await,
                None => run.start(&site, policy).await,
            }
        }
        Step::Watch => run.watch().await,
        Step::Complete => run.complete(job.as_deref()).await,
        Step::Fail(why) => run.fail(job.as_deref(), &why).await,
    }
}

/// One reconcile of a Backup that has not finished: what it acts on, and the
/// status it writes (the current one, seen at this generation).
struct BackupRun<'a> {
    ctx: &'a Ctx,
    backup: &'a Backup,
    api: Api<Backup>,
    ns: String,
    status: RunStatus,
    now: Time,
    job_name: String,
}

impl<'a> BackupRun<'a> {
    fn read(ctx: &'a Ctx, backup: &'a Backup) -> Self {
        let ns = backup.namespace().unwrap_or_default();
        let mut status = backup.status.clone().unwrap_or_default();
        status.observed_generation = backup.meta().generation;
        Self {
            ctx,
            backup,
            api: Api::namespaced(ctx.client().clone(), &ns),
            ns,
            status,
            now: Time(mutu_runtime::status::now()),
            job_name: jobs::job_name(jobs::BACKUP, &backup.name_any()),
        }
    }

    /// Writes the status with `conds`.
    async fn write(self, conds: &[Cond<'_>]) -> Result<(), Error> {
        write(self.ctx, &self.api, self.backup, self.status, conds).await
    }

    /// Fails the backup for `reason`: nothing to back up, for good.
    async fn refuse(mut self, reason: &str, msg: String) -> Result<Action, Error> {
        self.status.completion_time = Some(self.now.clone());
        self.write(&failed(reason, msg)).await?;
        Ok(Action::await_change())
    }

    /// The site the Backup names does not exist.
    async fn no_site(self) -> Result<Action, Error> {
        let (site, ns) = (&self.backup.spec.site, &self.ns);
        let msg = format!(
            "spec.site: no PloneSite {site} in namespace {ns}; a Backup names a site of its own namespace"
        );
        self.refuse("NoSite", msg).await
    }

    /// Reports why the backup does not start yet.
    async fn hold(self, why: Hold) -> Result<Action, Error> {
        match why {
            Hold::Restore(restore) => {
                let msg = format!("Restore {restore} of the site runs first");
                self.write(&[waiting("WaitingForRestore", msg)]).await?;
                Ok(Action::requeue(Duration::from_secs(10)))
            }
            Hold::MemberBusy(running) => {
                let msg = format!(
                    "{running} manual backups of this member run already (at most {MANUAL_PER_MEMBER} at once); this one starts when one of them finishes"
                );
                self.write(&[waiting("Queued", msg)]).await?;
                Ok(Action::requeue(Duration::from_secs(15)))
            }
            Hold::Queued(load) => {
                let PolicyLoad {
                    policy,
                    running,
                    max_concurrent,
                } = load;
                let msg = format!(
                    "{running} backups of policy {policy} run already (maxConcurrent {max_concurrent})"
                );
                self.write(&[waiting("Queued", msg)]).await?;
                Ok(Action::requeue(Duration::from_secs(15)))
            }
        }
    }

    /// Starts the backup's Job once the site's storage is there.
    async fn start(mut self, site: &PloneSite, policy: Option<String>) -> Result<Action, Error> {
        if !self.ctx.data.keeps_data(site) {
            let msg = format!(
                "site {} keeps no data: its product {} has no volume, so there is nothing to back up (the nightly schedule leaves it out)",
                site.name_any(),
                site.spec.product
            );
            return self.refuse("NoData", msg).await;
        }
        let storage = match storage(self.ctx, &self.ns, site).await? {
            Ok(s) => s,
            Err(msg) => {
                self.write(&[waiting("WaitingForSite", msg)]).await?;
                return Ok(Action::requeue(Duration::from_secs(15)));
            }
        };
        ensure_volume(self.ctx, &self.ns).await?;
        let job = match self.job(&storage, policy.clone()) {
            Ok(job) => job,
            Err(blocked) => return self.refuse("Unsupported", blocked.to_string()).await,
        };
        self.ctx
            .create_once(
                &Api::<Job>::namespaced(self.ctx.client().clone(), &self.ns),
                &job,
            )
            .await
            .map_err(|source| Error::Kube {
                what: format!("create Job {}", self.job_name),
                source,
            })?;
        self.ctx.data.made(
            &self.job_name,
            Started {
                namespace: self.ns.clone(),
                site: self.backup.spec.site.clone(),
                kind: jobs::BACKUP,
                owner: self.backup.name_any(),
                policy,
                manual: self.backup.spec.trigger == mutu_api::backup::BackupTrigger::Manual,
                at: std::time::Instant::now(),
            },
        );
        let site_name = &self.backup.spec.site;
        self.status.start_time.get_or_insert(self.now.clone());
        self.status.location = Some(format!(
            "{}/{site_name}/{}",
            self.ns,
            self.backup.name_any()
        ));
        let conds = running(&self.job_name);
        self.write(&conds).await?;
        Ok(Action::requeue(Duration::from_secs(60)))
    }

    /// The backup Job of this Backup, on `storage`, counted against `policy`.
    fn job(&self, storage: &Storage, policy: Option<String>) -> Result<Job, jobs::Blocked> {
        let (ctx, backup) = (self.ctx, self.backup);
        let site_name = &backup.spec.site;
        let repo = format!("{}/{site_name}", jobs::BACKUPS_DIR);
        let keep = keep_ids(&ctx.data.backups(), &self.ns, site_name, &backup.name_any());
        let script = backup_script(storage, &repo, &backup.name_any(), &keep);
        let spec = jobs::Spec {
            component: jobs::BACKUP,
            name: self.job_name.clone(),
            namespace: self.ns.clone(),
            site: site_name,
            owner: backup.controller_owner_ref(&()).unwrap_or_default(),
            owner_uid: backup.uid().unwrap_or_default(),
            args: Vec::new(),
            backups_claim: &ctx.data.config.volume_claim,
            policy,
            writes_data: false,
            data_claim: None,
            pool: None,
        };
        let mut job = storage.job(&spec, &ctx.data.config)?;
        run_script(&mut job, script);
        if let Some(spec) = job.spec.as_mut() {
            spec.active_deadline_seconds = Some(DEADLINE.as_secs() as i64);
        }
        if backup.spec.trigger == mutu_api::backup::BackupTrigger::Manual {
            job.labels_mut()
                .insert(MANUAL_LABEL.to_string(), "true".to_string());
        }
        Ok(job)
    }

    /// The Job runs: says so, and looks again later.
    async fn watch(mut self) -> Result<Action, Error> {
        self.status.start_time.get_or_insert(self.now.clone());
        let conds = running(&self.job_name);
        self.write(&conds).await?;
        Ok(Action::requeue(Duration::from_secs(60)))
    }

    /// The Job succeeded: the backup is complete, with its times and size.
    async fn complete(mut self, job: Option<&Job>) -> Result<Action, Error> {
        let (ctx, backup) = (self.ctx, self.backup);
        let job_name = self.job_name.clone();
        let job_status = job.and_then(|j| j.status.clone()).unwrap_or_default();
        self.status.start_time = self
            .status
            .start_time
            .or(job_status.start_time.clone())
            .or(Some(self.now.clone()));
        self.status.completion_time = job_status.completion_time.or(Some(self.now.clone()));
        if let Some(result) = termination_message(ctx, &self.ns, &job_name).await {
            self.status.size = result.get("size").and_then(serde_json::Value::as_i64);
        }
        self.write(&[
            Cond::new(
                mutu_api::CONDITION_COMPLETE,
                true,
                "BackedUp",
                format!("Job {job_name} succeeded"),
            ),
            done(),
            Cond::new(
                mutu_api::CONDITION_READY,
                true,
                "Restorable",
                "this backup can be restored".to_string(),
            ),
        ])
        .await?;
        let msg = format!("Job {job_name} succeeded");
        ctx.event(backup, false, "BackedUp", msg).await;
        Ok(Action::await_change())
    }

    /// The Job failed (`why`): so does the backup.
    async fn fail(mut self, job: Option<&Job>, why: &str) -> Result<Action, Error> {
        let (ctx, backup, ns) = (self.ctx, self.backup, self.ns.clone());
        let job_name = self.job_name.clone();
        self.status.completion_time = job
            .and_then(|j| j.status.as_ref())
            .and_then(|s| s.completion_time.clone())
            .or(Some(self.now.clone()));
        let msg = format!(
            "Job {job_name} failed ({why}); read its log: kubectl -n {ns} logs job/{job_name}"
        );
        self.write(&failed_and_done("JobFailed", msg.clone()))
            .await?;
        ctx.event(backup, true, "BackupFailed", msg).await;
        Ok(Action::await_change())
    }
}

/// The JSON line a Job's container left as its termination message.
async fn termination_message(ctx: &Ctx, ns: &str, job: &str) -> Option<serde_json::Value> {
    let pods: Api<Pod> = Api::namespaced(ctx.client().clone(), ns);
    let list = pods
        .list(&ListParams::default().labels(&format!("job-name={job}")))
        .await
        .ok()?;
    list.items.iter().find_map(|p| {
        let message = p
            .status
            .as_ref()?
            .container_statuses
            .as_ref()?
            .first()?
            .state
            .as_ref()?
            .terminated
            .as_ref()?
            .message
            .clone()?;
        serde_json::from_str(message.trim()).ok()
    })
}

/// Labels every Backup gets, for `kubectl get bk -l`.
pub fn labels(site: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(jobs::SITE_LABEL.to_string(), site.to_string())])
}

/// A Backup object of `site` (as the schedule makes them).
pub fn scheduled_backup(ns: &str, name: &str, site: &str, policy: &str) -> Backup {
    let mut b = Backup::new(
        name,
        mutu_api::BackupSpec {
            site: site.to_string(),
            policy: Some(policy.to_string()),
            trigger: mutu_api::backup::BackupTrigger::Scheduled,
        },
    );
    b.metadata = ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(ns.to_string()),
        labels: Some(labels(site)),
        ..Default::default()
    };
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(name: &str, policy: &str, component: &str, condition: Option<&str>) -> Arc<Job> {
        let conditions: Vec<serde_json::Value> = condition
            .map(|c| json!({"type": c, "status": "True"}))
            .into_iter()
            .collect();
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "tenant-mons", "labels": {
                    mutu_api::COMPONENT: component,
                    jobs::POLICY_LABEL: policy,
                }},
                "status": {"conditions": conditions},
            }))
            .unwrap_or_else(|e| panic!("{e}")),
        )
    }

    fn backup(ns: &str, name: &str, site: &str, failed: bool) -> Arc<Backup> {
        let conditions = if failed {
            json!([{"type": "Failed", "status": "True", "reason": "JobFailed", "message": "",
                    "lastTransitionTime": "2026-01-01T00:00:00Z"}])
        } else {
            json!([])
        };
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "hosting.imio.be/v1alpha1", "kind": "Backup",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"site": site},
                "status": {"conditions": conditions},
            }))
            .unwrap_or_else(|e| panic!("{e}")),
        )
    }

    fn load(running: usize, max_concurrent: i32) -> PolicyLoad {
        PolicyLoad {
            policy: "nightly".into(),
            running,
            max_concurrent,
        }
    }

    #[test]
    fn a_backup_without_a_job_starts_one_and_follows_it_to_its_end() {
        assert_eq!(next_step(None), Step::Start);
        assert_eq!(next_step(Some(JobState::Running)), Step::Watch);
        assert_eq!(next_step(Some(JobState::Succeeded)), Step::Complete);
        assert_eq!(
            next_step(Some(JobState::Failed("BackoffLimitExceeded".into()))),
            Step::Fail("BackoffLimitExceeded".into())
        );
    }

    #[test]
    fn a_running_restore_of_the_site_goes_first_even_below_the_cap() {
        assert_eq!(
            hold(Some("delib-1".into()), None, Some(load(0, 4))),
            Some(Hold::Restore("delib-1".into()))
        );
        assert_eq!(
            hold(Some("delib-1".into()), None, Some(load(4, 4))),
            Some(Hold::Restore("delib-1".into()))
        );
    }

    #[test]
    fn a_backup_is_queued_while_its_policy_runs_max_concurrent() {
        assert_eq!(hold(None, None, Some(load(3, 4))), None);
        assert_eq!(
            hold(None, None, Some(load(4, 4))),
            Some(Hold::Queued(load(4, 4)))
        );
        assert_eq!(
            hold(None, None, Some(load(5, 4))),
            Some(Hold::Queued(load(5, 4)))
        );
    }

    #[test]
    fn a_cap_below_one_still_lets_one_backup_run() {
        assert_eq!(hold(None, None, Some(load(0, 0))), None);
        assert_eq!(
            hold(None, None, Some(load(1, 0))),
            Some(Hold::Queued(load(1, 0)))
        );
    }

    #[test]
    fn a_backup_without_a_policy_is_never_queued() {
        assert_eq!(hold(None, None, None), None);
    }

    #[test]
    fn only_running_backup_jobs_of_the_policy_count_against_its_cap() {
        let jobs = [
            job("backup-a", "nightly", jobs::BACKUP, None),
            job("backup-b", "nightly", jobs::BACKUP, Some("Complete")),
            job("backup-c", "nightly", jobs::BACKUP, Some("Failed")),
            job("backup-d", "weekly", jobs::BACKUP, None),
            job("restore-e", "nightly", jobs::RESTORE, None),
            job("backup-f", "nightly", jobs::BACKUP, None),
        ];
        let now = jiff::Timestamp::now();
        assert_eq!(running_backups_of("nightly", &jobs, now), 2);
        assert_eq!(running_backups_of("weekly", &jobs, now), 1);
        assert_eq!(running_backups_of("monthly", &jobs, now), 0);
    }

    #[test]
    fn a_job_whose_pod_never_starts_gives_back_its_place_after_the_grace() {
        let made = |ago_minutes: i64, ready: i32| -> Job {
            let at = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(ago_minutes);
            serde_json::from_value(json!({
                "metadata": {"name": "backup-x", "namespace": "tenant-mons",
                             "creationTimestamp": at.to_string()},
                "status": {"ready": ready},
            }))
            .unwrap_or_else(|e| panic!("{e}"))
        };
        let now = jiff::Timestamp::now();
        assert!(
            takes_a_place(&made(1, 0), now),
            "just made: it may be starting"
        );
        assert!(!takes_a_place(&made(11, 0), now), "pending for 11 minutes");
        assert!(takes_a_place(&made(300, 1), now), "running for hours");
    }

    #[test]
    fn a_member_runs_at_most_two_manual_backups_at_once() {
        let labelled = |name: &str, done: Option<&str>| -> Arc<Job> {
            let mut j = (*job(name, "nightly", jobs::BACKUP, done)).clone();
            j.labels_mut().insert(MANUAL_LABEL.into(), "true".into());
            Arc::new(j)
        };
        let jobs = [
            labelled("backup-m1", None),
            labelled("backup-m2", None),
            labelled("backup-m3", Some("Complete")),
            job("backup-s", "nightly", jobs::BACKUP, None),
        ];
        assert_eq!(manual_running("tenant-mons", &jobs), 2);
        assert_eq!(manual_running("tenant-other", &jobs), 0);
        assert_eq!(
            hold(None, Some(2), Some(load(0, 4))),
            Some(Hold::MemberBusy(2))
        );
        assert_eq!(hold(None, Some(1), Some(load(0, 4))), None);
        // A running restore of the site still goes first.
        assert_eq!(
            hold(Some("r".into()), Some(2), None),
            Some(Hold::Restore("r".into()))
        );
    }

    fn site_job(ns: &str, site: &str, component: &str) -> Arc<Job> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": format!("{component}-{site}"), "namespace": ns, "labels": {
                    mutu_api::COMPONENT: component,
                    jobs::SITE_LABEL: site,
                }},
                "status": {"active": 1},
            }))
            .unwrap_or_else(|e| panic!("{e}")),
        )
    }

    #[test]
    fn a_restore_job_of_the_site_holds_a_backup_back_before_its_restore_says_it_started() {
        // The Restore's status (its start time) may lag behind its Job: a backup Job started
        // beside a running restore Job of the same site (found by the model check,
        // tests/model.rs). Its Job, cached or just made by this process, holds it back.
        let weigh_with = |jobs: &[Arc<Job>], unseen: &[Started]| {
            weigh(&Weigh {
                namespace: "tenant-mons",
                site: "delib",
                manual: false,
                policy: Some(("nightly", 4)),
                restore_running: None,
                jobs,
                unseen,
                now: jiff::Timestamp::now(),
            })
        };
        assert_eq!(weigh_with(&[], &[]), None);
        let cached = [site_job("tenant-mons", "delib", jobs::RESTORE)];
        assert!(matches!(weigh_with(&cached, &[]), Some(Hold::Restore(_))));
        let other_site = [site_job("tenant-mons", "urban", jobs::RESTORE)];
        assert_eq!(weigh_with(&other_site, &[]), None);
        let just_made = [Started {
            namespace: "tenant-mons".into(),
            site: "delib".into(),
            kind: jobs::RESTORE,
            owner: "restore-1".into(),
            policy: None,
            manual: false,
            at: std::time::Instant::now(),
        }];
        assert!(matches!(
            weigh_with(&[], &just_made),
            Some(Hold::Restore(_))
        ));
    }

    #[test]
    fn a_backup_job_holds_a_restore_back_before_its_backup_says_it_started() {
        // A Backup whose Job was made but whose status does not say so yet (the operator
        // stopped in between, or the cache lags): the restore of the site waits for it.
        let backups = [backup("tenant-mons", "delib-1", "delib", false)];
        let running = |jobs: &[Arc<Job>]| {
            crate::restore::backup_running("tenant-mons", "delib", &backups, jobs, &[])
        };
        assert_eq!(running(&[]), None);
        assert!(
            running(&[site_job("tenant-mons", "delib", jobs::BACKUP)])
                .is_some_and(|m| m.contains("backup Job"))
        );
        assert_eq!(
            running(&[site_job("tenant-mons", "urban", jobs::BACKUP)]),
            None
        );
    }

    #[test]
    fn the_repository_keeps_every_backup_of_the_site_that_has_not_failed_and_this_one_last() {
        let backups = [
            backup("tenant-mons", "delib-3", "delib", false),
            backup("tenant-mons", "delib-1", "delib", false),
            backup("tenant-mons", "delib-2", "delib", true),
            backup("tenant-mons", "other-1", "other", false),
            backup("tenant-ath", "delib-0", "delib", false),
            backup("tenant-mons", "delib-9", "delib", false),
        ];
        assert_eq!(
            keep_ids(&backups, "tenant-mons", "delib", "delib-3"),
            ["delib-1", "delib-9", "delib-3"]
        );
        assert_eq!(
            keep_ids(&[], "tenant-mons", "delib", "delib-3"),
            ["delib-3"]
        );
    }

    #[test]
    fn the_backup_script_reports_its_result_then_prunes_what_is_not_kept() {
        let rel = Storage::Rel {
            secret: "delib-pg".into(),
        };
        let keep = ["delib-1".to_string(), "delib-2".to_string()];
        assert_eq!(
            backup_script(&rel, "/backups/delib", "delib-2", &keep),
            "set -e\nout=$(sh \"$0\" backup --repo /backups/delib --id delib-2)\necho \"$out\"\necho \"$out\" > /dev/termination-log\n\
             sh \"$0\" prune --repo /backups/delib --keep delib-1 --keep delib-2 || echo 'backup done; pruning the repository failed, it is retried after the next backup' >&2\n"
        );
        let zeo = Storage::Zeo(Box::default());
        let script = backup_script(&zeo, "/backups/delib", "delib-2", &keep);
        assert!(
            script.contains(
                "out=$(python \"$0\" backup --data /data --repo /backups/delib --id delib-2)"
            ),
            "{script}"
        );
        assert!(script.contains("python \"$0\" prune --repo /backups/delib --keep delib-1"));
    }

    #[test]
    fn the_job_runs_the_script_with_the_tool_as_its_argument_zero() {
        let mut job: Job = serde_json::from_value(json!({
            "spec": {"template": {"spec": {"containers": [
                {"name": "backup", "command": ["python", "/opt/mutu/zodb-backup.py", "backup"]}
            ]}}},
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        run_script(&mut job, "echo hi".into());
        let command = job
            .spec
            .and_then(|s| s.template.spec)
            .and_then(|p| p.containers.into_iter().next())
            .and_then(|c| c.command);
        assert_eq!(
            command,
            Some(vec![
                "sh".to_string(),
                "-c".into(),
                "echo hi".into(),
                "/opt/mutu/zodb-backup.py".into()
            ])
        );
    }

    #[test]
    fn scheduled_backups_carry_their_site_label_and_policy() {
        let b = scheduled_backup("tenant-mons", "delib-20261128", "delib", "nightly");
        assert_eq!(b.namespace().as_deref(), Some("tenant-mons"));
        assert_eq!(
            b.labels().get(jobs::SITE_LABEL).map(String::as_str),
            Some("delib")
        );
        assert_eq!(b.spec.policy.as_deref(), Some("nightly"));
        assert_eq!(b.spec.trigger, mutu_api::backup::BackupTrigger::Scheduled);
    }
}
