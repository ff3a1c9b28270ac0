//! The catch-ups of a SolrIndex: Jobs that bring the collection the alias
//! serves in line with the site's content, right after a reindex moved the
//! alias (the changes the site made meanwhile), and when the annotation
//! `hosting.imio.be/catch-up` asks for it (a Restore, after putting older
//! data back).

use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use mutu_api::SolrIndex;
use mutu_runtime::conditions::Desired as Cond;

use crate::reconcile::{Ctx, Error, Names, REINDEXED, delete_job, reindex_job};
use crate::reindex::{self, JobState};

/// Reason of `Reindexed` while the catch-up Job runs, and when it failed.
pub(crate) const CATCHING_UP: &str = "CatchingUp";
pub(crate) const CATCH_UP_FAILED: &str = "CatchUpFailed";

/// The alias serves the collection just reindexed: runs the catch-up Job
/// (the changes the site made during the reindex, through the alias) and
/// returns the `Reindexed` condition: True once that Job succeeded.
pub(crate) async fn catch_up(
    idx: &SolrIndex,
    ctx: &Ctx,
    n: &Names,
) -> Result<Cond<'static>, Error> {
    let ns = idx.namespace().unwrap_or_default();
    let name = reindex::catch_up_job_name(&n.site, &n.version);
    Ok(match catch_up_job(idx, ctx, n, &name, None).await? {
        CatchUpRun::Running => Cond::new(
            REINDEXED,
            false,
            CATCHING_UP,
            format!(
                "alias {} serves {}; Job {name} indexes into it what the site changed during the reindex",
                n.alias, n.collection
            ),
        ),
        CatchUpRun::Blocked(blocked) => Cond::new(
            REINDEXED,
            false,
            CATCH_UP_FAILED,
            format!(
                "alias {} serves {}, but the changes made during the reindex cannot be indexed into it: {blocked}",
                n.alias, n.collection
            ),
        ),
        CatchUpRun::Failed(why) => {
            let message = format!(
                "alias {} serves {}, but Job {name}, which indexes what the site changed during the reindex, failed ({why}): documents changed meanwhile may be missing from search. Read its log (kubectl -n {ns} logs job/{name}), fix the cause and delete the Job to run it again",
                n.alias, n.collection
            );
            failed_once(idx, ctx, REINDEXED, &message).await;
            Cond::new(REINDEXED, false, CATCH_UP_FAILED, message)
        }
        CatchUpRun::Succeeded => {
            let message = format!(
                "alias {} serves {}, reindexed, with the changes made meanwhile (Job {name})",
                n.alias, n.collection
            );
            ctx.event(idx, false, "Reindexed", message.clone()).await;
            Cond::new(REINDEXED, true, "Reindexed", message)
        }
    })
}

/// How a catch-up Job stands.
enum CatchUpRun {
    /// It cannot be built, for this reason.
    Blocked(String),
    Running,
    Failed(String),
    Succeeded,
}

/// The catch-up Job `name` of the index (created when missing, annotated
/// with the catch-up asked `token` when there is one), and how it stands.
async fn catch_up_job(
    idx: &SolrIndex,
    ctx: &Ctx,
    n: &Names,
    name: &str,
    token: Option<&str>,
) -> Result<CatchUpRun, Error> {
    let ns = idx.namespace().unwrap_or_default();
    let uid = idx.uid().unwrap_or_default();
    let jobs: Api<Job> = Api::namespaced(ctx.client().clone(), &ns);
    let found = ctx.data.jobs.get(&ObjectRef::new(name).within(&ns));
    if let Some(job) = &found
        && job.labels().get(mutu_runtime::labels::OWNER_UID) != Some(&uid)
    {
        // Left by an earlier index of the same name: never taken for this one's.
        delete_job(ctx, &jobs, name).await?;
        return Ok(CatchUpRun::Running);
    }
    Ok(match found.map(|j| reindex::job_state(&j)) {
        None => match reindex_job(idx, ctx, n, reindex::Mode::CatchUp).await? {
            Err(blocked) => CatchUpRun::Blocked(blocked),
            Ok(mut job) => {
                job.metadata.name = Some(name.to_string());
                if let Some(token) = token {
                    job.annotations_mut()
                        .insert(mutu_api::CATCH_UP_ANNOTATION.to_string(), token.to_string());
                }
                if let Err(source) = ctx.create_once(&jobs, &job).await {
                    return Err(Error::Job {
                        name: name.to_string(),
                        source,
                    });
                }
                CatchUpRun::Running
            }
        },
        Some(JobState::Running) => CatchUpRun::Running,
        Some(JobState::Failed(why)) => CatchUpRun::Failed(why),
        Some(JobState::Succeeded) => CatchUpRun::Succeeded,
    })
}

/// A warning Event `CatchUpFailed` with `message`, unless the condition
/// `type_` already said that failure.
async fn failed_once(idx: &SolrIndex, ctx: &Ctx, type_: &str, message: &str) {
    let before = idx
        .status
        .as_ref()
        .and_then(|s| mutu_runtime::conditions::find(&s.conditions, type_))
        .map(|c| c.reason.clone());
    if before.as_deref() != Some(CATCH_UP_FAILED) {
        ctx.event(idx, true, CATCH_UP_FAILED, message.to_string())
            .await;
    }
}

/// Condition of the catch-ups asked through the annotation
/// `hosting.imio.be/catch-up`.
const CAUGHT_UP: &str = "CaughtUp";

/// The catch-up asked with the value `token` of the annotation: its Job
/// (created when missing), and the `CaughtUp` condition: True once the Job
/// succeeded.
pub(crate) async fn requested_catch_up(
    idx: &SolrIndex,
    ctx: &Ctx,
    n: &Names,
    token: &str,
) -> Result<Cond<'static>, Error> {
    let ns = idx.namespace().unwrap_or_default();
    let name = reindex::requested_catch_up_job_name(&n.site, token);
    Ok(match catch_up_job(idx, ctx, n, &name, Some(token)).await? {
        CatchUpRun::Running => Cond::new(
            CAUGHT_UP,
            false,
            CATCHING_UP,
            format!(
                "Job {name} brings {} in line with the site's content, as asked ({} {token})",
                n.alias,
                mutu_api::CATCH_UP_ANNOTATION
            ),
        ),
        CatchUpRun::Blocked(blocked) => Cond::new(
            CAUGHT_UP,
            false,
            CATCH_UP_FAILED,
            format!("the index cannot be brought in line with the site's content: {blocked}"),
        ),
        CatchUpRun::Failed(why) => {
            let message = format!(
                "Job {name}, which brings {} in line with the site's content, failed ({why}): search may show pages the site no longer has or miss some it has. Read its log (kubectl -n {ns} logs job/{name}), fix the cause and delete the Job to run it again",
                n.alias
            );
            failed_once(idx, ctx, CAUGHT_UP, &message).await;
            Cond::new(CAUGHT_UP, false, CATCH_UP_FAILED, message)
        }
        CatchUpRun::Succeeded => {
            let message = format!(
                "{} is in line with the site's content (Job {name}, asked with {token})",
                n.alias
            );
            ctx.event(idx, false, CAUGHT_UP, message.clone()).await;
            Cond::new(CAUGHT_UP, true, CAUGHT_UP, message)
        }
    })
}
