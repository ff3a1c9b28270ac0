//! The Restore controller: puts the site in maintenance (the site operator
//! stops its servers; annotation `hosting.imio.be/maintenance`), restores the
//! backup into its data volume with a Job (the data it replaces is moved
//! aside, and put back if anything fails), lifts the maintenance, and reports
//! `Complete` once the site is Ready again, or `Failed` with the reason.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use mutu_api::{Backup, PloneSite, Restore, RunStatus};
use mutu_runtime::conditions::{self, Desired as Cond};
use serde_json::json;

use crate::context::{CACHE_CATCHING_UP, Ctx, Error, confirmed_missing, kube_err};
use crate::jobs::{self, JobState};
use crate::status::{finished, write};
use crate::storage::{Storage, ensure_volume};

/// Annotation on a PloneSite that stops its servers; the value says who asked.
pub const MAINTENANCE: &str = mutu_api::MAINTENANCE_ANNOTATION;
/// Finalizer that lifts the maintenance when a Restore is deleted midway.
pub const FINALIZER: &str = "hosting.imio.be/restore";

fn who(r: &Restore) -> String {
    format!("restore/{}", r.name_any())
}

async fn fail(
    ctx: &Ctx,
    api: &Api<Restore>,
    r: &Restore,
    mut status: RunStatus,
    reason: &str,
    msg: String,
) -> Result<Action, Error> {
    status.completion_time = Some(Time(mutu_runtime::status::now()));
    write(
        ctx,
        api,
        r,
        status,
        &[
            Cond::new(mutu_api::CONDITION_FAILED, true, reason, msg.clone()),
            Cond::new(mutu_api::CONDITION_COMPLETE, false, reason, msg.clone()),
            Cond::new(
                mutu_api::CONDITION_PROGRESSING,
                false,
                "Done",
                "finished".to_string(),
            ),
        ],
    )
    .await?;
    ctx.event(r, true, reason, msg).await;
    Ok(Action::await_change())
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

/// Lifts the maintenance of the site if this restore set it.
async fn lift(ctx: &Ctx, r: &Restore) -> Result<(), Error> {
    let ns = r.namespace().unwrap_or_default();
    let site = ctx.data.site(&ns, &r.spec.site);
    if site.is_some_and(|s| s.annotations().get(MAINTENANCE) == Some(&who(r))) {
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
            lift(c, &r).await?;
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
        lift(ctx, r).await?;
        return Ok(Action::await_change());
    }
    let ns = r.namespace().unwrap_or_default();
    let mut status = r.status.clone().unwrap_or_default();
    status.observed_generation = r.meta().generation;
    let site_name = &r.spec.site;

    let Some(backup) = ctx.data.backup(&ns, &r.spec.backup) else {
        if !confirmed_missing::<Backup>(ctx, &ns, &r.spec.backup).await? {
            return Ok(Action::requeue(CACHE_CATCHING_UP));
        }
        return fail(ctx, api, r, status, "NoBackup", format!(
            "spec.backup: no Backup {} in namespace {ns}; list them with kubectl -n {ns} get backups -l hosting.imio.be/site={site_name}",
            r.spec.backup
        )).await;
    };
    if &backup.spec.site != site_name {
        return fail(
            ctx,
            api,
            r,
            status,
            "WrongSite",
            format!(
                "spec.backup: Backup {} is a backup of site {}, not of {site_name}",
                r.spec.backup, backup.spec.site
            ),
        )
        .await;
    }
    let backup_status = backup.status.clone().unwrap_or_default();
    if conditions::is_true(&backup_status.conditions, mutu_api::CONDITION_FAILED) {
        return fail(
            ctx,
            api,
            r,
            status,
            "BackupFailed",
            format!(
                "Backup {} failed and cannot be restored; choose another one",
                r.spec.backup
            ),
        )
        .await;
    }
    if !conditions::is_true(&backup_status.conditions, mutu_api::CONDITION_COMPLETE) {
        write(
            ctx,
            api,
            r,
            status,
            &[Cond::new(
                mutu_api::CONDITION_PROGRESSING,
                false,
                "WaitingForBackup",
                format!("Backup {} has not completed yet", r.spec.backup),
            )],
        )
        .await?;
        return Ok(Action::requeue(Duration::from_secs(10)));
    }
    if ctx.data.site(&ns, site_name).is_none() {
        if !confirmed_missing::<PloneSite>(ctx, &ns, site_name).await? {
            return Ok(Action::requeue(CACHE_CATCHING_UP));
        }
        return fail(
            ctx,
            api,
            r,
            status,
            "NoSite",
            format!("spec.site: no PloneSite {site_name} in namespace {ns}"),
        )
        .await;
    }
    // One restore of a site at a time: the oldest first.
    let mine = (r.creation_timestamp().map(|t| t.0), r.name_any());
    if let Some(first) = ctx.data.restores().iter().find(|o| {
        o.namespace().as_deref() == Some(ns.as_str())
            && &o.spec.site == site_name
            && o.name_any() != r.name_any()
            && !finished(o.status.as_ref())
            && (o.creation_timestamp().map(|t| t.0), o.name_any()) < mine
    }) {
        write(
            ctx,
            api,
            r,
            status,
            &[Cond::new(
                mutu_api::CONDITION_PROGRESSING,
                false,
                "WaitingForRestore",
                format!("Restore {} of the site runs first", first.name_any()),
            )],
        )
        .await?;
        return Ok(Action::requeue(Duration::from_secs(10)));
    }

    let job_name = jobs::job_name(jobs::RESTORE, &r.name_any());
    let job = ctx.data.jobs.get(&ObjectRef::new(&job_name).within(&ns));
    let now = Time(mutu_runtime::status::now());
    match job.as_deref().map(jobs::job_state) {
        None => {
            // A backup of the site that is running finishes first.
            if let Some(b) = ctx.data.backups().iter().find(|b| {
                b.namespace().as_deref() == Some(ns.as_str())
                    && &b.spec.site == site_name
                    && b.status.as_ref().is_some_and(|s| s.start_time.is_some())
                    && !finished(b.status.as_ref())
            }) {
                write(
                    ctx,
                    api,
                    r,
                    status,
                    &[Cond::new(
                        mutu_api::CONDITION_PROGRESSING,
                        false,
                        "WaitingForBackup",
                        format!("Backup {} of the site is running", b.name_any()),
                    )],
                )
                .await?;
                return Ok(Action::requeue(Duration::from_secs(10)));
            }
            status.start_time.get_or_insert(now);
            let site = ctx.data.site(&ns, site_name);
            if site
                .as_ref()
                .and_then(|s| s.annotations().get(MAINTENANCE).cloned())
                != Some(who(r))
            {
                set_maintenance(ctx, &ns, site_name, Some(&who(r))).await?;
            }
            // Wait until the site's servers have stopped (the database is closed).
            let pods: Api<Pod> = Api::namespaced(ctx.client().clone(), &ns);
            let running = pods
                .list(&ListParams::default().labels(&format!("{}={site_name}", jobs::SITE_LABEL)))
                .await
                .map_err(kube_err("list the site's pods"))?
                .items
                .into_iter()
                .filter(|p| {
                    matches!(
                        p.labels().get(mutu_api::COMPONENT).map(String::as_str),
                        Some("zeo" | "instance")
                    )
                })
                .count();
            if running > 0 {
                write(ctx, api, r, status, &[Cond::new(
                    mutu_api::CONDITION_PROGRESSING, true, "Stopping",
                    format!("site {site_name} is in maintenance; waiting for its {running} server(s) to stop"),
                ), Cond::new(mutu_api::CONDITION_COMPLETE, false, "Stopping", "the restore has not run yet".to_string())]).await?;
                return Ok(Action::requeue(Duration::from_secs(2)));
            }
            let Some(site) = ctx.data.site(&ns, site_name) else {
                if !confirmed_missing::<PloneSite>(ctx, &ns, site_name).await? {
                    return Ok(Action::requeue(CACHE_CATCHING_UP));
                }
                return fail(
                    ctx,
                    api,
                    r,
                    status,
                    "NoSite",
                    format!("spec.site: no PloneSite {site_name} in namespace {ns}"),
                )
                .await;
            };
            let storage = match crate::storage::storage(ctx, &ns, &site).await? {
                Ok(s) => s,
                Err(msg) => {
                    lift(ctx, r).await?;
                    return fail(ctx, api, r, status, "Unsupported", msg).await;
                }
            };
            ensure_volume(ctx, &ns).await?;
            let repo = format!("{}/{site_name}", jobs::BACKUPS_DIR);
            let mut args = vec!["restore".to_string()];
            match &storage {
                Storage::Zeo(_) => {
                    args.extend([
                        "--data".to_string(),
                        jobs::DATA_DIR.into(),
                        "--repo".into(),
                        repo,
                    ]);
                    match &r.spec.point_in_time {
                        Some(t) => args.extend(["--at".to_string(), t.0.to_string()]),
                        None => args.extend(["--id".to_string(), r.spec.backup.clone()]),
                    }
                }
                // A dump is one point in time: the backup's.
                Storage::Rel { .. } => args.extend([
                    "--repo".to_string(),
                    repo,
                    "--id".into(),
                    r.spec.backup.clone(),
                ]),
            }
            let spec = jobs::Spec {
                component: jobs::RESTORE,
                name: job_name.clone(),
                namespace: ns.clone(),
                site: site_name,
                owner: r.controller_owner_ref(&()).unwrap_or_default(),
                owner_uid: r.uid().unwrap_or_default(),
                args,
                backups_claim: &ctx.data.config.volume_claim,
                policy: None,
                writes_data: true,
                data_claim: None,
                pool: None,
            };
            let built = match &storage {
                Storage::Zeo(zeo) => jobs::build(&spec, zeo),
                Storage::Rel { secret } => {
                    Ok(jobs::pg_job(&spec, &ctx.data.config.postgres_image, secret))
                }
            };
            let job = match built {
                Ok(j) => j,
                Err(blocked) => {
                    lift(ctx, r).await?;
                    return fail(ctx, api, r, status, "Unsupported", blocked.to_string()).await;
                }
            };
            ctx.create_once(&Api::<Job>::namespaced(ctx.client().clone(), &ns), &job)
                .await
                .map_err(|source| Error::Kube {
                    what: format!("create Job {job_name}"),
                    source,
                })?;
            write(
                ctx,
                api,
                r,
                status,
                &[
                    Cond::new(
                        mutu_api::CONDITION_PROGRESSING,
                        true,
                        "Restoring",
                        format!("Job {job_name} restores Backup {}", r.spec.backup),
                    ),
                    Cond::new(
                        mutu_api::CONDITION_COMPLETE,
                        false,
                        "Restoring",
                        format!("Job {job_name} restores Backup {}", r.spec.backup),
                    ),
                ],
            )
            .await?;
            Ok(Action::requeue(Duration::from_secs(60)))
        }
        Some(JobState::Running) => Ok(Action::requeue(Duration::from_secs(60))),
        Some(JobState::Failed(why)) => {
            lift(ctx, r).await?;
            fail(ctx, api, r, status, "JobFailed", format!(
                "Job {job_name} failed ({why}); the site's data is as it was before the restore (the script puts it back) and the site is started again. Read the Job's log: kubectl -n {ns} logs job/{job_name}"
            )).await
        }
        Some(JobState::Succeeded) => {
            lift(ctx, r).await?;
            let done_at = job
                .as_ref()
                .and_then(|j| j.status.as_ref())
                .and_then(|s| s.completion_time.clone())
                .map(|t| t.0);
            // Ready again since the restore: a Ready condition that turned true after it.
            let site = ctx.data.site(&ns, site_name);
            // A site someone else keeps offline (a MigrationPlan moving it) is
            // not Ready until they bring it back: the restore is done now.
            let held_offline = site
                .as_ref()
                .and_then(|s| s.annotations().get(mutu_api::OFFLINE_ANNOTATION).cloned());
            let ready = held_offline.is_some()
                || site
                    .as_ref()
                    .and_then(|s| s.status.as_ref())
                    .and_then(|s| {
                        conditions::find(&s.conditions, mutu_api::CONDITION_READY).cloned()
                    })
                    .is_some_and(|c| {
                        c.status == "True" && done_at.is_none_or(|d| c.last_transition_time.0 >= d)
                    });
            if !ready {
                write(
                    ctx,
                    api,
                    r,
                    status,
                    &[Cond::new(
                        mutu_api::CONDITION_PROGRESSING,
                        true,
                        "Starting",
                        format!(
                            "Backup {} is restored; waiting for site {site_name} to be Ready again",
                            r.spec.backup
                        ),
                    )],
                )
                .await?;
                return Ok(Action::requeue(Duration::from_secs(5)));
            }
            status.completion_time = Some(now);
            let msg = match &held_offline {
                Some(by) => format!(
                    "site {site_name} restored from Backup {}; it stays offline for {by}, which brings it back",
                    r.spec.backup
                ),
                None => format!(
                    "site {site_name} restored from Backup {} and Ready again",
                    r.spec.backup
                ),
            };
            write(
                ctx,
                api,
                r,
                status,
                &[
                    Cond::new(mutu_api::CONDITION_COMPLETE, true, "Restored", msg.clone()),
                    Cond::new(
                        mutu_api::CONDITION_PROGRESSING,
                        false,
                        "Done",
                        "finished".to_string(),
                    ),
                ],
            )
            .await?;
            ctx.event(r, false, "Restored", msg).await;
            Ok(Action::await_change())
        }
    }
}
