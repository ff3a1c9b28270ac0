//! The data a restore of a ZEO site set aside in its volume (`before-restore-*`): kept for
//! `--restore-keep-before`, then deleted by a Job running `forget-before --older-than`.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use mutu_api::Restore;
use mutu_runtime::conditions;
use serde_json::json;

use crate::context::{Ctx, Error, kube_err};
use crate::jobs::{self, JobState};
use crate::storage::{Storage, storage};

/// Annotation on a Restore once the data it set aside is deleted: when, or why it was not.
pub const SET_ASIDE_DELETED: &str = "hosting.imio.be/set-aside-deleted";

/// When the data a restore set aside may go: `None` while it is kept (or there is nothing
/// to delete), else the wait before it may.
fn set_aside_due(r: &Restore, keep: Duration, now: jiff::Timestamp) -> Option<Duration> {
    let status = r.status.as_ref()?;
    let restored = conditions::find(&status.conditions, mutu_api::CONDITION_COMPLETE)
        .is_some_and(|c| c.status == "True" && c.reason != "AlreadyRan");
    if !restored || r.annotations().contains_key(SET_ASIDE_DELETED) {
        return None;
    }
    let done = status.completion_time.as_ref()?.0;
    let age = Duration::try_from(now.duration_since(done)).unwrap_or_default();
    Some(keep.saturating_sub(age))
}

/// A completed restore of a ZEO site: once `--restore-keep-before` has passed, a Job
/// deletes the data it set aside (`forget-before`, only copies older than that, so a later
/// restore's copy stays), and the Restore is marked [`SET_ASIDE_DELETED`].
pub(super) async fn forget_set_aside(r: &Restore, ctx: &Ctx) -> Result<Action, Error> {
    let keep = ctx.data.config.keep_before_restore;
    let Some(wait) = set_aside_due(r, keep, jiff::Timestamp::now()) else {
        return Ok(Action::await_change());
    };
    if !wait.is_zero() {
        return Ok(Action::requeue(
            wait.min(Duration::from_secs(24 * 3600)) + Duration::from_secs(1),
        ));
    }
    let ns = r.namespace().unwrap_or_default();
    let Some(site) = ctx.data.site(&ns, &r.spec.site) else {
        return Ok(Action::await_change());
    };
    let Ok(storage @ Storage::Zeo(_)) = storage(ctx, &ns, &site).await? else {
        // Only a ZEO site's restore sets data aside in its volume.
        return Ok(Action::await_change());
    };
    let job_name = jobs::job_name(jobs::FORGET, &r.name_any());
    let mark = |value: String| async move {
        let api: Api<Restore> = Api::namespaced(ctx.client().clone(), &ns);
        let patch = json!({"metadata": {"annotations": {SET_ASIDE_DELETED: value}}});
        api.patch(
            &r.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(kube_err("mark the Restore's set-aside data as deleted"))?;
        ctx.metrics.write(ctx.name, "patch", "Restore");
        Ok::<_, Error>(())
    };
    match ctx
        .data
        .job(&r.namespace().unwrap_or_default(), &job_name)
        .as_deref()
        .map(jobs::job_state)
    {
        None => {
            let spec = jobs::Spec {
                component: jobs::FORGET,
                name: job_name.clone(),
                namespace: r.namespace().unwrap_or_default(),
                site: &r.spec.site,
                owner: r.controller_owner_ref(&()).unwrap_or_default(),
                owner_uid: r.uid().unwrap_or_default(),
                args: vec![
                    "forget-before".into(),
                    "--data".into(),
                    jobs::DATA_DIR.into(),
                    "--older-than".into(),
                    keep.as_secs().to_string(),
                ],
                backups_claim: &ctx.data.config.volume_claim,
                policy: None,
                writes_data: true,
                data_claim: None,
                pool: None,
            };
            let job = match storage.job(&spec, &ctx.data.config) {
                Ok(job) => job,
                Err(blocked) => {
                    mark(format!("not deleted: {blocked}")).await?;
                    return Ok(Action::await_change());
                }
            };
            ctx.create_once(
                &Api::<Job>::namespaced(ctx.client().clone(), &r.namespace().unwrap_or_default()),
                &job,
            )
            .await
            .map_err(|source| Error::Kube {
                what: format!("create Job {job_name}"),
                source,
            })?;
            Ok(Action::requeue(Duration::from_secs(60)))
        }
        Some(JobState::Running) => Ok(Action::requeue(Duration::from_secs(60))),
        Some(JobState::Succeeded) => {
            mark(mutu_runtime::status::now().to_string()).await?;
            let msg = format!(
                "the data this restore set aside in site {}'s volume (before-restore-*) is deleted, {} after the restore",
                r.spec.site,
                humantime(keep)
            );
            ctx.event(r, false, "SetAsideDeleted", msg).await;
            Ok(Action::await_change())
        }
        Some(JobState::Failed(why)) => {
            mark(format!("failed: {why}")).await?;
            let msg = format!(
                "Job {job_name} could not delete the data this restore set aside ({why}); it stays in the site's volume: kubectl -n {} logs job/{job_name}, then delete the before-restore-* directory by hand or remove the annotation {SET_ASIDE_DELETED} to try again",
                r.namespace().unwrap_or_default()
            );
            ctx.event(r, true, "SetAsideNotDeleted", msg).await;
            Ok(Action::await_change())
        }
    }
}

/// `d` as hours, or days when whole.
fn humantime(d: Duration) -> String {
    let hours = d.as_secs() / 3600;
    if hours >= 24 && hours.is_multiple_of(24) {
        format!("{} days", hours / 24)
    } else if hours > 0 {
        format!("{hours} h")
    } else {
        format!("{} s", d.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(t: &str) -> jiff::Timestamp {
        t.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn restore(conditions: serde_json::Value) -> Restore {
        serde_json::from_value(json!({
            "apiVersion": "hosting.imio.be/v1alpha1", "kind": "Restore",
            "metadata": {"name": "undo", "namespace": "tenant-mons"},
            "spec": {"site": "delib", "backup": "delib-1"},
            "status": {"conditions": conditions},
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_data_a_restore_set_aside_goes_once_kept_long_enough() {
        let week = Duration::from_secs(7 * 24 * 3600);
        let complete = |reason: &str| {
            let mut r = restore(
                json!([{"type": "Complete", "status": "True", "reason": reason,
                "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]),
            );
            if let Some(s) = r.status.as_mut() {
                s.completion_time = Some(Time(at("2026-01-01T00:00:00Z")));
            }
            r
        };
        let r = complete("Restored");
        assert_eq!(
            set_aside_due(&r, week, at("2026-01-02T00:00:00Z")),
            Some(Duration::from_secs(6 * 24 * 3600)),
            "a day after: six more days"
        );
        assert_eq!(
            set_aside_due(&r, week, at("2026-01-09T00:00:00Z")),
            Some(Duration::ZERO),
            "past the week: now"
        );
        // Already deleted, or a restore that set nothing aside: nothing to do.
        let mut done = r.clone();
        done.metadata.annotations = Some([(SET_ASIDE_DELETED.to_string(), "x".to_string())].into());
        assert_eq!(set_aside_due(&done, week, at("2026-01-09T00:00:00Z")), None);
        let again = complete("AlreadyRan");
        assert_eq!(
            set_aside_due(&again, week, at("2026-01-09T00:00:00Z")),
            None
        );
        let failed = restore(
            json!([{"type": "Failed", "status": "True", "reason": "JobFailed",
            "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]),
        );
        assert_eq!(
            set_aside_due(&failed, week, at("2026-01-09T00:00:00Z")),
            None
        );
        assert_eq!(humantime(week), "7 days");
        assert_eq!(humantime(Duration::from_secs(5)), "5 s");
    }
}
