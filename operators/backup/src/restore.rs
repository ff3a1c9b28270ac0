//! The Restore controller: puts the site in maintenance (the site operator
//! stops its servers; annotation `hosting.imio.be/maintenance`), restores the
//! backup into its data volume with a Job (the data it replaces is moved
//! aside, and put back if anything fails), lifts the maintenance, and reports
//! `Complete` once the site is Ready again, or `Failed` with the reason.
//!
//! A reconcile checks what the Restore names (its Backup, [`check_backup`];
//! its site; an earlier restore of the site, [`earlier_restore`]), then goes
//! by its Job's state: starts it ([`RestoreRun::start`]), waits for it, or
//! reports how it ended ([`RestoreRun::finish`], [`site_after_restore`]).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use mutu_api::backup::RestoreSpec;
use mutu_api::{Backup, PloneSite, Restore, RunStatus, SolrIndex};
use mutu_runtime::conditions::{self, Desired as Cond};
use serde_json::json;

use crate::context::{Ctx, Error, fail_if_confirmed_missing, kube_err};
use crate::jobs::{self, JobState};
use crate::status::{done, failed_and_done, finished, waiting, working, write};
use crate::storage::{Storage, ensure_volume, storage};

/// Annotation on a PloneSite that stops its servers; the value says who asked.
pub const MAINTENANCE: &str = mutu_api::MAINTENANCE_ANNOTATION;
/// Finalizer that lifts the maintenance when a Restore is deleted midway.
pub const FINALIZER: &str = "hosting.imio.be/restore";

pub mod forget;
use forget::forget_set_aside;

/// Annotation on a Backup naming the Restores that ran from it (`name=uid`,
/// comma-separated, the newest last), so that a Restore deleted and applied
/// again (a GitOps pipeline re-applying its YAML) does not run again.
pub const RESTORED_BY: &str = "hosting.imio.be/restored-by";
/// How many Restores a Backup remembers.
const REMEMBERED: usize = 50;

/// The Restores that ran from `backup`, as (name, uid).
fn restored_by(backup: &Backup) -> Vec<(String, String)> {
    backup
        .annotations()
        .get(RESTORED_BY)
        .map(|v| {
            v.split(',')
                .filter_map(|e| e.split_once('='))
                .map(|(n, u)| (n.to_string(), u.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a Restore named like `r`, but another object, already ran from `backup`.
fn ran_before(r: &Restore, backup: &Backup) -> bool {
    let (name, uid) = (r.name_any(), r.uid().unwrap_or_default());
    restored_by(backup)
        .iter()
        .any(|(n, u)| *n == name && *u != uid)
}

/// The annotation value recording `r` on `backup` (the oldest entries dropped), or `None`
/// when it is recorded already.
fn record_restore(r: &Restore, backup: &Backup) -> Option<String> {
    let entry = (r.name_any(), r.uid().unwrap_or_default());
    let mut list = restored_by(backup);
    if list.contains(&entry) {
        return None;
    }
    list.push(entry);
    let skip = list.len().saturating_sub(REMEMBERED);
    Some(
        list[skip..]
            .iter()
            .map(|(n, u)| format!("{n}={u}"))
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// Why `r` may not overwrite `site` yet: the site is live (Ready) and the Restore does not
/// confirm it by naming it in `spec.confirm`. A plan's own Restores (a rollback) need no
/// confirmation.
fn unconfirmed(r: &Restore, site: &PloneSite) -> Option<String> {
    let live = site
        .status
        .as_ref()
        .is_some_and(|s| conditions::is_true(&s.conditions, mutu_api::CONDITION_READY));
    let name = site.name_any();
    if !live || owner_holder(r).is_some() || r.spec.confirm.as_deref() == Some(name.as_str()) {
        return None;
    }
    Some(format!(
        "site {name} is live (Ready): this restore would replace its current data, so it must be confirmed; nothing was changed. Create the Restore again with spec.confirm: {name}"
    ))
}

/// The value of the maintenance annotation this restore sets on its site.
fn maintenance_mark(r: &Restore) -> String {
    format!("restore/{}", r.name_any())
}

/// What the Backup a Restore names allows.
#[derive(Debug, PartialEq, Eq)]
enum BackupCheck {
    /// It completed, for the Restore's site.
    Restorable,
    /// It is a backup of this other site.
    OfAnotherSite(String),
    /// It failed: there is nothing to restore from.
    Failed,
    /// It has not completed yet.
    NotComplete,
}

/// Whether `backup` can be restored into `site`.
fn check_backup(site: &str, backup: &Backup) -> BackupCheck {
    if backup.spec.site != site {
        return BackupCheck::OfAnotherSite(backup.spec.site.clone());
    }
    let backup_conditions = backup
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    if conditions::is_true(backup_conditions, mutu_api::CONDITION_FAILED) {
        BackupCheck::Failed
    } else if conditions::is_true(backup_conditions, mutu_api::CONDITION_COMPLETE) {
        BackupCheck::Restorable
    } else {
        BackupCheck::NotComplete
    }
}

/// The unfinished restore of `r`'s site that goes before `r`: one restore of
/// a site at a time, the oldest first (by creation, then name).
fn earlier_restore<'a>(r: &Restore, restores: &'a [Arc<Restore>]) -> Option<&'a Arc<Restore>> {
    let ns = r.namespace();
    let mine = (r.creation_timestamp().map(|t| t.0), r.name_any());
    restores.iter().find(|o| {
        o.namespace() == ns
            && o.spec.site == r.spec.site
            && o.name_any() != r.name_any()
            && !finished(o.status.as_ref())
            && (o.creation_timestamp().map(|t| t.0), o.name_any()) < mine
    })
}

/// A backup of `site` in `ns` that has started and not finished.
fn running_backup<'a>(ns: &str, site: &str, backups: &'a [Arc<Backup>]) -> Option<&'a Arc<Backup>> {
    backups.iter().find(|b| {
        b.namespace().as_deref() == Some(ns)
            && b.spec.site == site
            && b.status.as_ref().is_some_and(|s| s.start_time.is_some())
            && !finished(b.status.as_ref())
    })
}

/// A backup of `site` in `ns` that runs, by name: one whose Backup says it started and
/// has not finished, or whose Job runs (a Backup's status may lag behind its Job: a
/// restore and a backup of the same site ran at once, found by the model check,
/// tests/model.rs), in the cache of Jobs or made by this process and not in it yet.
pub fn backup_running(
    ns: &str,
    site: &str,
    backups: &[Arc<Backup>],
    jobs: &[Arc<Job>],
    unseen: &[crate::backup::Started],
) -> Option<String> {
    running_backup(ns, site, backups)
        .map(|b| format!("Backup {}", b.name_any()))
        .or_else(|| {
            crate::backup::job_running(jobs::BACKUP, ns, site, jobs, unseen)
                .map(|job| format!("the backup Job {job}"))
        })
}

/// Whether `pod` is one of a site's servers (its ZEO server or an instance).
fn is_server(pod: &Pod) -> bool {
    matches!(
        pod.labels().get(mutu_api::COMPONENT).map(String::as_str),
        Some("zeo" | "instance")
    )
}

/// The arguments of the restore tool for `spec`, from the repository `repo`.
fn restore_args(storage: &Storage, repo: String, spec: &RestoreSpec) -> Vec<String> {
    let mut args = vec!["restore".to_string()];
    match storage {
        Storage::Zeo(_) => {
            args.extend([
                "--data".to_string(),
                jobs::DATA_DIR.into(),
                "--repo".into(),
                repo,
            ]);
            match &spec.point_in_time {
                Some(t) => args.extend(["--at".to_string(), t.0.to_string()]),
                None => args.extend(["--id".to_string(), spec.backup.clone()]),
            }
        }
        // A dump is one point in time: the backup's (a restore at another
        // time is refused before, see `point_in_time_refusal`).
        Storage::Rel { .. } => args.extend([
            "--repo".to_string(),
            repo,
            "--id".into(),
            spec.backup.clone(),
        ]),
        Storage::Volume { .. } => args.extend([
            "--data".to_string(),
            jobs::DATA_DIR.into(),
            "--repo".into(),
            repo,
            "--id".into(),
            spec.backup.clone(),
        ]),
    }
    args
}

/// Why a restore at `spec.pointInTime` cannot be done on `storage`: only a
/// ZEO site's repository has the history between backups.
fn point_in_time_refusal(storage: &Storage, spec: &RestoreSpec) -> Option<String> {
    let at = spec.point_in_time.as_ref()?;
    (!storage.point_in_time()).then(|| {
        let what = match storage {
            Storage::Rel { .. } => "a RelStorage site's backups are dumps",
            _ => "a generic product's backups are copies of its volume",
        };
        format!(
            "cannot restore to {}: {what}, each of one point in time; remove spec.pointInTime to restore Backup {} as it was taken",
            at.0, spec.backup
        )
    })
}

/// How the site is once its restore Job has succeeded.
#[derive(Debug, PartialEq, Eq)]
enum SiteAfterRestore {
    /// Not Ready again since the restore (or not cached).
    Starting,
    /// Ready since the restore.
    Ready,
    /// Kept offline by someone else (a MigrationPlan moving it), named here:
    /// it is not Ready until they bring it back, and the restore is done now.
    HeldOffline(String),
}

/// How long a restored site's search index may take to catch up before the
/// restore completes without it.
const SEARCH_CATCH_UP_LIMIT: Duration = Duration::from_secs(15 * 60);

/// Where the site's search index is after the restore.
enum Search {
    /// The site has no SolrIndex.
    None,
    /// Its catch-up with the restored content runs.
    CatchingUp,
    /// It is in line with the restored content.
    InLine,
    /// Its catch-up failed, for this reason.
    Failed(String),
}

/// How `site` is after a restore Job that completed at `done_at`: Ready again
/// is a Ready condition that turned true after it.
fn site_after_restore(
    site: Option<&PloneSite>,
    done_at: Option<jiff::Timestamp>,
) -> SiteAfterRestore {
    let Some(site) = site else {
        return SiteAfterRestore::Starting;
    };
    if let Some(by) = site.annotations().get(mutu_api::OFFLINE_ANNOTATION) {
        return SiteAfterRestore::HeldOffline(by.clone());
    }
    let ready = site
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, mutu_api::CONDITION_READY))
        .is_some_and(|c| {
            c.status == "True" && done_at.is_none_or(|d| c.last_transition_time.0 >= d)
        });
    if ready {
        SiteAfterRestore::Ready
    } else {
        SiteAfterRestore::Starting
    }
}

async fn set_maintenance(
    ctx: &Ctx,
    ns: &str,
    site: &str,
    value: Option<&str>,
) -> Result<(), Error> {
    let api: Api<PloneSite> = Api::namespaced(ctx.client().clone(), ns);
    let patch = json!({"metadata": {"annotations": {MAINTENANCE: value}}});
    match api
        .patch(site, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            ctx.metrics.write(ctx.name, "patch", "PloneSite");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(source) => Err(Error::Kube {
            what: format!("set the maintenance of site {site}"),
            source,
        }),
    }
}

/// The hold a plan that owns this Restore has on the site (its own Restores, taken while the
/// plan holds the site), e.g. `migration/<plan>`.
fn owner_holder(r: &Restore) -> Option<String> {
    r.owner_references()
        .iter()
        .find_map(|o| match o.kind.as_str() {
            "MigrationPlan" => Some(format!("migration/{}", o.name)),
            "ReleaseRollout" => Some(format!("rollout/{}", o.name)),
            _ => None,
        })
}

/// Lets go of the site if this restore holds it.
async fn let_go(ctx: &Ctx, r: &Restore) -> Result<(), Error> {
    let ns = r.namespace().unwrap_or_default();
    let me = mutu_runtime::lock::restore_holder(&r.name_any());
    let holds = ctx
        .data
        .site(&ns, &r.spec.site)
        .is_some_and(|s| mutu_runtime::lock::holder(&s) == Some(me.as_str()));
    if holds {
        mutu_runtime::lock::let_go(ctx.client(), &ns, &r.spec.site, &me)
            .await
            .map_err(kube_err("let go of the site"))?;
        ctx.metrics.write(ctx.name, "patch", "PloneSite");
    }
    Ok(())
}

/// Lifts the maintenance of the site if this restore set it.
async fn lift_maintenance(ctx: &Ctx, r: &Restore) -> Result<(), Error> {
    let ns = r.namespace().unwrap_or_default();
    let site = ctx.data.site(&ns, &r.spec.site);
    if site.is_some_and(|s| s.annotations().get(MAINTENANCE) == Some(&maintenance_mark(r))) {
        set_maintenance(ctx, &ns, &r.spec.site, None).await?;
    }
    Ok(())
}

pub async fn reconcile(r: Arc<Restore>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if !ctx.data.ready().await {
        return Ok(mutu_runtime::controller::not_listed_yet());
    }
    let ns = r.namespace().unwrap_or_default();
    let api: Api<Restore> = Api::namespaced(ctx.client().clone(), &ns);
    let (c, a) = (&ctx, &api);
    ctx.finalized(
        &api,
        FINALIZER,
        r,
        |r| async move { restore(&r, c, a).await },
        |r| async move {
            lift_maintenance(c, &r).await?;
            let_go(c, &r).await?;
            Ok(Action::await_change())
        },
    )
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(other.to_string()),
    })
}

async fn restore(r: &Restore, ctx: &Ctx, api: &Api<Restore>) -> Result<Action, Error> {
    if finished(r.status.as_ref()) {
        lift_maintenance(ctx, r).await?;
        let_go(ctx, r).await?;
        return forget_set_aside(r, ctx).await;
    }
    let run = RestoreRun::read(ctx, api, r);
    let ns = run.ns.clone();
    let (site_name, backup_name) = (&r.spec.site, &r.spec.backup);

    let Some(backup) = ctx.data.backup(&ns, backup_name) else {
        return fail_if_confirmed_missing::<Backup, _, _>(ctx, &ns, backup_name, || {
            run.no_backup()
        })
        .await;
    };
    match check_backup(site_name, &backup) {
        BackupCheck::Restorable => {}
        BackupCheck::OfAnotherSite(other) => {
            let msg = format!(
                "spec.backup: Backup {backup_name} is a backup of site {other}, not of {site_name}"
            );
            return run.fail("WrongSite", msg).await;
        }
        BackupCheck::Failed => {
            let msg =
                format!("Backup {backup_name} failed and cannot be restored; choose another one");
            return run.fail("BackupFailed", msg).await;
        }
        BackupCheck::NotComplete => {
            let msg = format!("Backup {backup_name} has not completed yet");
            return run.wait("WaitingForBackup", msg).await;
        }
    }
    let Some(site) = ctx.data.site(&ns, site_name) else {
        return fail_if_confirmed_missing::<PloneSite, _, _>(ctx, &ns, site_name, || run.no_site())
            .await;
    };
    if run.status.start_time.is_none() && owner_holder(r).is_none() {
        if ran_before(r, &backup) {
            return run.already_ran(&backup).await;
        }
        if let Some(msg) = unconfirmed(r, &site) {
            return run.fail("NotConfirmed", msg).await;
        }
    }
    // A plan's own Restore, while the plan holds the site, goes before older Restores (they
    // wait for the plan's hold anyway).
    let under_plans_hold = owner_holder(r).is_some_and(|plan| {
        ctx.data
            .site(&ns, site_name)
            .is_some_and(|s| mutu_runtime::lock::holder(&s) == Some(plan.as_str()))
    });
    if let Some(first) = earlier_restore(r, &ctx.data.restores()).filter(|_| !under_plans_hold) {
        let msg = format!("Restore {} of the site runs first", first.name_any());
        return run.wait("WaitingForRestore", msg).await;
    }

    let job = ctx.data.job(&ns, &run.job_name);
    match job.as_deref().map(jobs::job_state) {
        None => run.start().await,
        Some(JobState::Running) => Ok(Action::requeue(Duration::from_secs(60))),
        Some(JobState::Failed(why)) => run.job_failed(&why).await,
        Some(JobState::Succeeded) => run.finish(job.as_deref()).await,
    }
}

/// One reconcile of a Restore that has not finished: what it acts on, and
/// the status it writes (the current one, seen at this generation).
struct RestoreRun<'a> {
    ctx: &'a Ctx,
    api: &'a Api<Restore>,
    restore: &'a Restore,
    ns: String,
    status: RunStatus,
    now: Time,
    job_name: String,
}

impl<'a> RestoreRun<'a> {
    fn read(ctx: &'a Ctx, api: &'a Api<Restore>, restore: &'a Restore) -> Self {
        let mut status = restore.status.clone().unwrap_or_default();
        status.observed_generation = restore.meta().generation;
        Self {
            ctx,
            api,
            restore,
            ns: restore.namespace().unwrap_or_default(),
            status,
            now: Time(mutu_runtime::status::now()),
            job_name: jobs::job_name(jobs::RESTORE, &restore.name_any()),
        }
    }

    /// Writes the status with `conds`.
    async fn write(self, conds: &[Cond<'_>]) -> Result<(), Error> {
        write(self.ctx, self.api, self.restore, self.status, conds).await
    }

    /// Reports what the restore waits for, and looks again in 10 s.
    async fn wait(self, reason: &str, msg: String) -> Result<Action, Error> {
        self.write(&[waiting(reason, msg)]).await?;
        Ok(Action::requeue(Duration::from_secs(10)))
    }

    /// Fails the restore for `reason`, with an Event.
    async fn fail(mut self, reason: &str, msg: String) -> Result<Action, Error> {
        let (ctx, restore) = (self.ctx, self.restore);
        self.status.completion_time = Some(Time(mutu_runtime::status::now()));
        self.write(&failed_and_done(reason, msg.clone())).await?;
        ctx.event(restore, true, reason, msg).await;
        Ok(Action::await_change())
    }

    /// A Restore of this name already ran from this Backup, as another object: this one is
    /// the same YAML applied again, and does nothing.
    async fn already_ran(mut self, backup: &Backup) -> Result<Action, Error> {
        let (ctx, restore) = (self.ctx, self.restore);
        let msg = format!(
            "a Restore {} already ran from Backup {} (recorded on the Backup, {RESTORED_BY}); this one, applied again, does nothing. To restore again, create a Restore with a new name",
            restore.name_any(),
            backup.name_any()
        );
        self.status.completion_time = Some(Time(mutu_runtime::status::now()));
        self.write(&[
            Cond::new(
                mutu_api::CONDITION_COMPLETE,
                true,
                "AlreadyRan",
                msg.clone(),
            ),
            done(),
        ])
        .await?;
        ctx.event(restore, false, "AlreadyRan", msg).await;
        Ok(Action::await_change())
    }

    /// Records on the Backup that this Restore runs from it (before its Job starts).
    async fn record(&self) -> Result<(), Error> {
        let (ctx, restore) = (self.ctx, self.restore);
        let Some(backup) = ctx.data.backup(&self.ns, &restore.spec.backup) else {
            return Ok(());
        };
        let Some(value) = record_restore(restore, &backup) else {
            return Ok(());
        };
        let api: Api<Backup> = Api::namespaced(ctx.client().clone(), &self.ns);
        let patch = json!({"metadata": {"annotations": {RESTORED_BY: value}}});
        api.patch(
            &backup.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(kube_err("record the restore on its Backup"))?;
        ctx.metrics.write(ctx.name, "patch", "Backup");
        Ok(())
    }

    /// The Backup the Restore names does not exist.
    async fn no_backup(self) -> Result<Action, Error> {
        let (ns, spec) = (&self.ns, &self.restore.spec);
        let msg = format!(
            "spec.backup: no Backup {} in namespace {ns}; list them with kubectl -n {ns} get bk -l hosting.imio.be/site={}",
            spec.backup, spec.site
        );
        self.fail("NoBackup", msg).await
    }

    /// The site the Restore names does not exist.
    async fn no_site(self) -> Result<Action, Error> {
        let (ns, site) = (&self.ns, &self.restore.spec.site);
        let msg = format!("spec.site: no PloneSite {site} in namespace {ns}");
        self.fail("NoSite", msg).await
    }

    /// Starts the restore: once no backup of the site runs, puts the site in
    /// maintenance, waits for its servers to stop, then creates the Job.
    async fn start(mut self) -> Result<Action, Error> {
        let (ctx, restore) = (self.ctx, self.restore);
        let site_name = &restore.spec.site;
        if let Some(running) = self.backup_running() {
            let msg = format!("{running} of the site is running");
            return self.wait("WaitingForBackup", msg).await;
        }
        // One holder at a time: a plan (or another restore) working on the site first.
        if let Some(site) = ctx.data.site(&self.ns, site_name) {
            let me = mutu_runtime::lock::restore_holder(&restore.name_any());
            let held = mutu_runtime::lock::holder(&site).map(str::to_string);
            let ours = held.as_deref() == Some(me.as_str())
                || (held.is_some() && held == owner_holder(restore));
            if !ours {
                if let Some(other) = &held {
                    let stale =
                        mutu_runtime::lock::is_stale(ctx.client(), &self.ns, site_name, other)
                            .await
                            .map_err(kube_err("read the holder of the site"))?;
                    if !stale {
                        let msg = format!(
                            "site {site_name} is held by {other} ({}); this restore starts when it lets go",
                            mutu_api::HELD_BY_ANNOTATION
                        );
                        return self.wait("WaitingForSite", msg).await;
                    }
                }
                mutu_runtime::lock::take(ctx.client(), &site, &me)
                    .await
                    .map_err(kube_err("take hold of the site"))?;
                ctx.metrics.write(ctx.name, "patch", "PloneSite");
                // Goes on once the cache shows the hold (or tries again).
                return Ok(Action::requeue(Duration::from_secs(1)));
            }
        }
        self.status.start_time.get_or_insert(self.now.clone());
        self.enter_maintenance().await?;
        let running = self.servers_running().await?;
        if running > 0 {
            self.write(&[
                Cond::new(
                    mutu_api::CONDITION_PROGRESSING,
                    true,
                    "Stopping",
                    format!("site {site_name} is in maintenance; waiting for its {running} server(s) to stop"),
                ),
                Cond::new(
                    mutu_api::CONDITION_COMPLETE,
                    false,
                    "Stopping",
                    "the restore has not run yet".to_string(),
                ),
            ])
            .await?;
            return Ok(Action::requeue(Duration::from_secs(2)));
        }
        let Some(site) = ctx.data.site(&self.ns, site_name) else {
            let ns = self.ns.clone();
            return fail_if_confirmed_missing::<PloneSite, _, _>(ctx, &ns, site_name, || {
                self.no_site()
            })
            .await;
        };
        if owner_holder(restore).is_none() {
            self.record().await?;
        }
        self.create_job(&site).await
    }

    /// A backup of the site that runs (see [`backup_running`]).
    fn backup_running(&self) -> Option<String> {
        let data = &self.ctx.data;
        let jobs = data.jobs.state();
        let unseen = crate::backup::unseen(self.ctx, &jobs);
        backup_running(
            &self.ns,
            &self.restore.spec.site,
            &data.backups(),
            &jobs,
            &unseen,
        )
    }

    /// Marks the site as in maintenance for this restore, unless it is already.
    async fn enter_maintenance(&self) -> Result<(), Error> {
        let (ctx, restore) = (self.ctx, self.restore);
        let mark = maintenance_mark(restore);
        let site = ctx.data.site(&self.ns, &restore.spec.site);
        if site
            .as_ref()
            .and_then(|s| s.annotations().get(MAINTENANCE).cloned())
            != Some(mark.clone())
        {
            set_maintenance(ctx, &self.ns, &restore.spec.site, Some(&mark)).await?;
        }
        Ok(())
    }

    /// How many of the site's servers still run (the database is closed once none does).
    async fn servers_running(&self) -> Result<usize, Error> {
        let pods: Api<Pod> = Api::namespaced(self.ctx.client().clone(), &self.ns);
        let selector = format!("{}={}", jobs::SITE_LABEL, self.restore.spec.site);
        Ok(pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(kube_err("list the site's pods"))?
            .items
            .iter()
            .filter(|p| is_server(p))
            .count())
    }

    /// Creates the restore Job on the site's storage, or fails the restore
    /// (and lifts the maintenance) when it cannot be built.
    async fn create_job(self, site: &PloneSite) -> Result<Action, Error> {
        let (ctx, restore) = (self.ctx, self.restore);
        let storage = match storage(ctx, &self.ns, site).await? {
            Ok(s) => s,
            Err(msg) => {
                lift_maintenance(ctx, restore).await?;
                return self.fail("Unsupported", msg).await;
            }
        };
        if let Some(msg) = point_in_time_refusal(&storage, &restore.spec) {
            lift_maintenance(ctx, restore).await?;
            return self.fail("PointInTimeUnsupported", msg).await;
        }
        ensure_volume(ctx, &self.ns).await?;
        let job = match self.job(&storage) {
            Ok(j) => j,
            Err(blocked) => {
                lift_maintenance(ctx, restore).await?;
                return self.fail("Unsupported", blocked.to_string()).await;
            }
        };
        {
            // One start at a time in this process, backups' and restores': a backup of the
            // site whose Job starts now, not in the caches yet, goes first.
            let _one_start = ctx.data.start_lock.lock().await;
            if let Some(running) = self.backup_running() {
                let msg = format!("{running} of the site is running");
                return self.wait("WaitingForBackup", msg).await;
            }
            ctx.create_once(
                &Api::<Job>::namespaced(ctx.client().clone(), &self.ns),
                &job,
            )
            .await
            .map_err(|source| Error::Kube {
                what: format!("create Job {}", self.job_name),
                source,
            })?;
            ctx.data.made(
                &self.job_name,
                crate::backup::Started {
                    namespace: self.ns.clone(),
                    site: restore.spec.site.clone(),
                    kind: jobs::RESTORE,
                    owner: restore.name_any(),
                    policy: None,
                    manual: false,
                    at: std::time::Instant::now(),
                },
            );
        }
        let msg = format!(
            "Job {} restores Backup {}",
            self.job_name, restore.spec.backup
        );
        self.write(&working("Restoring", msg)).await?;
        Ok(Action::requeue(Duration::from_secs(60)))
    }

    /// The site's search index after the restore: its Solr collection still
    /// holds what the site had before, so the index is asked to catch up with
    /// the restored content (the annotation `hosting.imio.be/catch-up`, set to
    /// this Restore's UID), and the restore completes once it did.
    async fn search_caught_up(&self) -> Result<Search, Error> {
        let (ctx, restore) = (self.ctx, self.restore);
        let api: Api<SolrIndex> = Api::namespaced(ctx.client().clone(), &self.ns);
        let Some(index) = api
            .get_opt(&restore.spec.site)
            .await
            .map_err(kube_err("read the site's SolrIndex"))?
        else {
            return Ok(Search::None);
        };
        let token = restore.uid().unwrap_or_default();
        let status = index.status.clone().unwrap_or_default();
        if status.caught_up.as_deref() == Some(token.as_str()) {
            return Ok(Search::InLine);
        }
        if index.annotations().get(mutu_api::CATCH_UP_ANNOTATION) != Some(&token) {
            let patch =
                json!({"metadata": {"annotations": {mutu_api::CATCH_UP_ANNOTATION: token}}});
            api.patch(
                &restore.spec.site,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(kube_err("ask the site's SolrIndex to catch up"))?;
            ctx.metrics.write(ctx.name, "patch", "SolrIndex");
            return Ok(Search::CatchingUp);
        }
        match conditions::find(&status.conditions, "CaughtUp") {
            Some(c) if c.status == "False" && c.reason == "CatchUpFailed" => {
                Ok(Search::Failed(c.message.clone()))
            }
            _ => Ok(Search::CatchingUp),
        }
    }

    /// The restore Job of this Restore, on `storage`.
    fn job(&self, storage: &Storage) -> Result<Job, jobs::Blocked> {
        let (ctx, restore) = (self.ctx, self.restore);
        let site_name = &restore.spec.site;
        let repo = format!("{}/{site_name}", jobs::BACKUPS_DIR);
        let spec = jobs::Spec {
            component: jobs::RESTORE,
            name: self.job_name.clone(),
            namespace: self.ns.clone(),
            site: site_name,
            owner: restore.controller_owner_ref(&()).unwrap_or_default(),
            owner_uid: restore.uid().unwrap_or_default(),
            args: restore_args(storage, repo, &restore.spec),
            backups_claim: &ctx.data.config.volume_claim,
            policy: None,
            writes_data: true,
            data_claim: None,
            pool: None,
        };
        storage.job(&spec, &ctx.data.config)
    }

    /// The Job failed (`why`): lifts the maintenance and fails the restore.
    async fn job_failed(self, why: &str) -> Result<Action, Error> {
        lift_maintenance(self.ctx, self.restore).await?;
        let (ns, job_name) = (&self.ns, &self.job_name);
        let msg = format!(
            "Job {job_name} failed ({why}); the site's data is as it was before the restore (the script puts it back) and the site is started again. Read the Job's log: kubectl -n {ns} logs job/{job_name}"
        );
        self.fail("JobFailed", msg).await
    }

    /// The Job succeeded: lifts the maintenance, and completes the restore
    /// once the site is Ready again (or held offline by someone else).
    async fn finish(mut self, job: Option<&Job>) -> Result<Action, Error> {
        let (ctx, restore) = (self.ctx, self.restore);
        lift_maintenance(ctx, restore).await?;
        let done_at = job
            .and_then(|j| j.status.as_ref())
            .and_then(|s| s.completion_time.clone())
            .map(|t| t.0);
        let (site_name, backup_name) = (&restore.spec.site, &restore.spec.backup);
        let site = ctx.data.site(&self.ns, site_name);
        let msg = match site_after_restore(site.as_deref(), done_at) {
            SiteAfterRestore::Starting => {
                self.write(&[Cond::new(
                    mutu_api::CONDITION_PROGRESSING,
                    true,
                    "Starting",
                    format!("Backup {backup_name} is restored; waiting for site {site_name} to be Ready again"),
                )])
                .await?;
                return Ok(Action::requeue(Duration::from_secs(5)));
            }
            SiteAfterRestore::HeldOffline(by) => format!(
                "site {site_name} restored from Backup {backup_name}; it stays offline for {by}, which brings it back"
            ),
            SiteAfterRestore::Ready => {
                let restored =
                    format!("site {site_name} restored from Backup {backup_name} and Ready again");
                // A catch-up that cannot start (Solr down: the index is
                // Degraded) does not hold the site's restore for ever.
                let waited_too_long = done_at.is_some_and(|d| {
                    self.now.0.duration_since(d).as_secs() > SEARCH_CATCH_UP_LIMIT.as_secs() as i64
                });
                match self.search_caught_up().await? {
                    Search::None => restored,
                    Search::InLine => format!("{restored}; its search index is in line with it"),
                    Search::Failed(why) => format!(
                        "{restored}, but its search index could not be brought in line with it: {why}"
                    ),
                    Search::CatchingUp if waited_too_long => format!(
                        "{restored}, but its search index was not brought in line with it within {} minutes (kubectl -n {} describe solrindex {site_name}); the index still catches up once it can, and until then search may show pages from before the restore",
                        SEARCH_CATCH_UP_LIMIT.as_secs() / 60,
                        self.ns
                    ),
                    Search::CatchingUp => {
                        self.write(&[Cond::new(
                            mutu_api::CONDITION_PROGRESSING,
                            true,
                            "CatchingUpSearch",
                            format!("site {site_name} is restored and serves; its search index is being brought in line with the restored content"),
                        )])
                        .await?;
                        return Ok(Action::requeue(Duration::from_secs(5)));
                    }
                }
            }
        };
        self.status.completion_time = Some(self.now.clone());
        self.write(&[
            Cond::new(mutu_api::CONDITION_COMPLETE, true, "Restored", msg.clone()),
            done(),
        ])
        .await?;
        ctx.event(restore, false, "Restored", msg).await;
        Ok(Action::await_change())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<K: serde::de::DeserializeOwned>(value: serde_json::Value) -> K {
        serde_json::from_value(value).unwrap_or_else(|e| panic!("{e}"))
    }

    fn condition(type_: &str, status: &str, at: &str) -> serde_json::Value {
        json!({"type": type_, "status": status, "reason": "R", "message": "", "lastTransitionTime": at})
    }

    fn backup(name: &str, site: &str, status: serde_json::Value) -> Arc<Backup> {
        Arc::new(parse(json!({
            "apiVersion": "hosting.imio.be/v1alpha1", "kind": "Backup",
            "metadata": {"name": name, "namespace": "tenant-mons"},
            "spec": {"site": site},
            "status": status,
        })))
    }

    fn restore(
        name: &str,
        site: &str,
        created: &str,
        conditions: serde_json::Value,
    ) -> Arc<Restore> {
        Arc::new(parse(json!({
            "apiVersion": "hosting.imio.be/v1alpha1", "kind": "Restore",
            "metadata": {"name": name, "namespace": "tenant-mons", "creationTimestamp": created},
            "spec": {"site": site, "backup": "delib-1"},
            "status": {"conditions": conditions},
        })))
    }

    fn site(annotations: serde_json::Value, conditions: serde_json::Value) -> PloneSite {
        parse(json!({
            "apiVersion": "hosting.imio.be/v1alpha1", "kind": "PloneSite",
            "metadata": {"name": "delib", "namespace": "tenant-mons", "annotations": annotations},
            "spec": {"product": "delib", "hostnames": ["delib.example.be"]},
            "status": {"conditions": conditions},
        }))
    }

    fn at(t: &str) -> jiff::Timestamp {
        t.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_restore_applied_again_as_a_new_object_is_recognised_on_its_backup() {
        let mut first: Restore =
            (*restore("undo", "delib", "2026-01-01T00:00:00Z", json!([]))).clone();
        first.metadata.uid = Some("uid-1".into());
        let mut b: Backup = (*backup("delib-1", "delib", json!({}))).clone();
        assert!(!ran_before(&first, &b));
        let value = record_restore(&first, &b).unwrap_or_default();
        assert_eq!(value, "undo=uid-1");
        b.metadata.annotations = Some([(RESTORED_BY.to_string(), value)].into());
        // The same object: recorded, and not taken for a second run.
        assert_eq!(record_restore(&first, &b), None);
        assert!(!ran_before(&first, &b));
        // The same YAML applied again: another object of the same name.
        let mut again = first.clone();
        again.metadata.uid = Some("uid-2".into());
        assert!(ran_before(&again, &b));
        // Another name is another restore.
        let mut other = first.clone();
        other.metadata.name = Some("undo-2".into());
        other.metadata.uid = Some("uid-3".into());
        assert!(!ran_before(&other, &b));
        // The Backup remembers the newest ones only.
        let mut long = b.clone();
        for i in 0..60 {
            let mut r = first.clone();
            r.metadata.name = Some(format!("r{i}"));
            r.metadata.uid = Some(format!("u{i}"));
            let v = record_restore(&r, &long).unwrap_or_default();
            long.metadata.annotations = Some([(RESTORED_BY.to_string(), v)].into());
        }
        let kept = restored_by(&long);
        assert_eq!(kept.len(), REMEMBERED);
        assert_eq!(kept.last(), Some(&("r59".to_string(), "u59".to_string())));
    }

    #[test]
    fn a_restore_over_a_live_site_must_name_it_in_confirm() {
        let ready = json!([condition("Ready", "True", "2026-01-01T00:00:00Z")]);
        let live = site(json!({}), ready);
        let down = site(
            json!({}),
            json!([condition("Ready", "False", "2026-01-01T00:00:00Z")]),
        );
        let mut r: Restore = (*restore("undo", "delib", "2026-01-01T00:00:00Z", json!([]))).clone();
        let why = unconfirmed(&r, &live).unwrap_or_default();
        assert!(
            why.contains("site delib is live") && why.contains("spec.confirm: delib"),
            "{why}"
        );
        assert_eq!(
            unconfirmed(&r, &down),
            None,
            "a site that is down is not live"
        );
        r.spec.confirm = Some("delib".into());
        assert_eq!(unconfirmed(&r, &live), None);
        // A plan's rollback needs none.
        r.spec.confirm = None;
        r.metadata.owner_references = Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                kind: "ReleaseRollout".into(),
                name: "to-6".into(),
                ..Default::default()
            },
        ]);
        assert_eq!(unconfirmed(&r, &live), None);
    }

    #[test]
    fn a_restore_made_by_a_plan_works_under_the_plans_hold_of_the_site() {
        let mut r: Restore = (*restore("copy", "delib", "2026-01-01T00:00:00Z", json!([]))).clone();
        assert_eq!(owner_holder(&r), None);
        let owner = |kind: &str| k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            kind: kind.into(),
            name: "to-frontend".into(),
            ..Default::default()
        };
        r.metadata.owner_references = Some(vec![owner("MigrationPlan")]);
        assert_eq!(owner_holder(&r).as_deref(), Some("migration/to-frontend"));
        r.metadata.owner_references = Some(vec![owner("ReleaseRollout")]);
        assert_eq!(owner_holder(&r).as_deref(), Some("rollout/to-frontend"));
        // Anything else owning it gives it no hold.
        r.metadata.owner_references = Some(vec![owner("Backup")]);
        assert_eq!(owner_holder(&r), None);
    }

    #[test]
    fn only_a_completed_backup_of_the_same_site_is_restored() {
        let done = json!({"conditions": [condition("Complete", "True", "2026-01-01T00:00:00Z")]});
        let failed = json!({"conditions": [condition("Failed", "True", "2026-01-01T00:00:00Z")]});
        assert_eq!(
            check_backup("delib", &backup("delib-1", "delib", done.clone())),
            BackupCheck::Restorable
        );
        assert_eq!(
            check_backup("delib", &backup("other-1", "other", done)),
            BackupCheck::OfAnotherSite("other".into())
        );
        assert_eq!(
            check_backup("delib", &backup("delib-1", "delib", failed)),
            BackupCheck::Failed
        );
        assert_eq!(
            check_backup("delib", &backup("delib-1", "delib", json!({}))),
            BackupCheck::NotComplete
        );
    }

    #[test]
    fn a_backup_of_another_site_is_refused_before_its_state_counts() {
        let failed = json!({"conditions": [condition("Failed", "True", "2026-01-01T00:00:00Z")]});
        assert_eq!(
            check_backup("delib", &backup("other-1", "other", failed)),
            BackupCheck::OfAnotherSite("other".into())
        );
    }

    #[test]
    fn one_restore_of_a_site_runs_at_a_time_the_oldest_first() {
        let none = json!([]);
        let done = json!([condition("Complete", "True", "2026-01-01T00:00:00Z")]);
        let mine = restore("b", "delib", "2026-01-01T10:00:00Z", none.clone());
        let restores = vec![
            restore("a-done", "delib", "2026-01-01T08:00:00Z", done),
            restore(
                "a-other-site",
                "other",
                "2026-01-01T08:00:00Z",
                none.clone(),
            ),
            mine.clone(),
            restore("c-newer", "delib", "2026-01-01T11:00:00Z", none.clone()),
        ];
        assert!(earlier_restore(&mine, &restores).is_none());
        let mut with_older = restores.clone();
        with_older.push(restore(
            "z-older",
            "delib",
            "2026-01-01T09:00:00Z",
            none.clone(),
        ));
        assert_eq!(
            earlier_restore(&mine, &with_older).map(|r| r.name_any()),
            Some("z-older".into())
        );
        // Created in the same second: the name decides.
        let mut same_time = restores;
        same_time.push(restore("a-same", "delib", "2026-01-01T10:00:00Z", none));
        assert_eq!(
            earlier_restore(&mine, &same_time).map(|r| r.name_any()),
            Some("a-same".into())
        );
    }

    #[test]
    fn a_backup_of_the_site_that_has_started_and_not_finished_goes_first() {
        let started = json!({"startTime": "2026-01-01T00:00:00Z", "conditions": []});
        let done = json!({"startTime": "2026-01-01T00:00:00Z", "conditions": [
            condition("Complete", "True", "2026-01-01T00:10:00Z")
        ]});
        let backups = vec![
            backup("delib-queued", "delib", json!({"conditions": []})),
            backup("delib-done", "delib", done),
            backup("other-running", "other", started.clone()),
        ];
        assert!(running_backup("tenant-mons", "delib", &backups).is_none());
        let mut running = backups;
        running.push(backup("delib-running", "delib", started));
        assert_eq!(
            running_backup("tenant-mons", "delib", &running).map(|b| b.name_any()),
            Some("delib-running".into())
        );
        assert!(running_backup("tenant-ath", "delib", &running).is_none());
    }

    #[test]
    fn only_the_zeo_server_and_instances_count_as_the_sites_servers() {
        let pod = |component: &str| -> Pod {
            parse(json!({"metadata": {"labels": {mutu_api::COMPONENT: component}}}))
        };
        assert!(is_server(&pod("zeo")));
        assert!(is_server(&pod("instance")));
        assert!(!is_server(&pod("backup")));
        assert!(!is_server(&parse(json!({"metadata": {}}))));
    }

    #[test]
    fn a_zeo_site_is_restored_to_the_point_in_time_else_to_the_backup() {
        let zeo = Storage::Zeo(Box::default());
        let mut spec = RestoreSpec {
            site: "delib".into(),
            backup: "delib-1".into(),
            point_in_time: None,
            confirm: None,
        };
        assert_eq!(
            restore_args(&zeo, "/backups/delib".into(), &spec),
            [
                "restore",
                "--data",
                "/data",
                "--repo",
                "/backups/delib",
                "--id",
                "delib-1"
            ]
        );
        spec.point_in_time = Some(Time(at("2026-01-01T03:00:00Z")));
        assert_eq!(
            restore_args(&zeo, "/backups/delib".into(), &spec),
            [
                "restore",
                "--data",
                "/data",
                "--repo",
                "/backups/delib",
                "--at",
                "2026-01-01T03:00:00Z"
            ]
        );
    }

    #[test]
    fn a_relstorage_site_is_restored_to_its_backups_dump() {
        let rel = Storage::Rel {
            secret: "delib-pg".into(),
        };
        let spec = RestoreSpec {
            site: "delib".into(),
            backup: "delib-1".into(),
            point_in_time: Some(Time(at("2026-01-01T03:00:00Z"))),
            confirm: None,
        };
        assert_eq!(
            restore_args(&rel, "/backups/delib".into(), &spec),
            ["restore", "--repo", "/backups/delib", "--id", "delib-1"]
        );
    }

    #[test]
    fn a_point_in_time_is_refused_where_backups_are_single_points() {
        let mut spec = RestoreSpec {
            site: "notes".into(),
            backup: "notes-1".into(),
            point_in_time: None,
            confirm: None,
        };
        let volume = Storage::Volume {
            claim: "notes-data".into(),
        };
        let rel = Storage::Rel {
            secret: "delib-pg".into(),
        };
        let zeo = Storage::Zeo(Box::default());
        for storage in [&volume, &rel, &zeo] {
            assert_eq!(point_in_time_refusal(storage, &spec), None);
        }
        assert_eq!(
            restore_args(&volume, "/backups/notes".into(), &spec),
            [
                "restore",
                "--data",
                "/data",
                "--repo",
                "/backups/notes",
                "--id",
                "notes-1"
            ]
        );
        spec.point_in_time = Some(Time(at("2026-01-01T03:00:00Z")));
        assert_eq!(point_in_time_refusal(&zeo, &spec), None);
        for (storage, what) in [(&volume, "copies of its volume"), (&rel, "dumps")] {
            let msg = point_in_time_refusal(storage, &spec).unwrap_or_default();
            assert!(
                msg.contains("2026-01-01T03:00:00Z")
                    && msg.contains(what)
                    && msg.contains("remove spec.pointInTime"),
                "{msg}"
            );
        }
    }

    #[test]
    fn a_restore_completes_once_the_site_is_ready_after_its_job() {
        let job_done = Some(at("2026-01-01T10:00:00Z"));
        let ready_after = site(
            json!({}),
            json!([condition("Ready", "True", "2026-01-01T10:05:00Z")]),
        );
        let ready_before = site(
            json!({}),
            json!([condition("Ready", "True", "2026-01-01T09:00:00Z")]),
        );
        let not_ready = site(
            json!({}),
            json!([condition("Ready", "False", "2026-01-01T10:05:00Z")]),
        );
        assert_eq!(
            site_after_restore(Some(&ready_after), job_done),
            SiteAfterRestore::Ready
        );
        assert_eq!(
            site_after_restore(Some(&ready_before), job_done),
            SiteAfterRestore::Starting
        );
        assert_eq!(
            site_after_restore(Some(&not_ready), job_done),
            SiteAfterRestore::Starting
        );
        assert_eq!(
            site_after_restore(None, job_done),
            SiteAfterRestore::Starting
        );
        // A Job without a completion time: any Ready site will do.
        assert_eq!(
            site_after_restore(Some(&ready_before), None),
            SiteAfterRestore::Ready
        );
    }

    #[test]
    fn a_site_held_offline_by_someone_else_completes_its_restore_without_being_ready() {
        let offline = site(
            json!({mutu_api::OFFLINE_ANNOTATION: "migrationplan/move-delib"}),
            json!([condition("Ready", "False", "2026-01-01T10:05:00Z")]),
        );
        assert_eq!(
            site_after_restore(Some(&offline), Some(at("2026-01-01T10:00:00Z"))),
            SiteAfterRestore::HeldOffline("migrationplan/move-delib".into())
        );
    }
}
