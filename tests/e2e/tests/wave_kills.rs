//! The operator killed with SIGKILL at every step boundary of a migration and
//! of a release rollout (a module of the migration tests: it kills the shared
//! operator). One ZEO site is moved to the other pool by a MigrationPlan, then
//! upgraded by a ReleaseRollout; each time the plan's status shows the site at
//! a step it was not killed at yet (each step is recorded before its work
//! starts), the operator is killed and started again. The boundaries are the
//! steps the engine records, as they come: the test then checks that every
//! step of the happy path (`MIGRATION_STEPS`, `ROLLOUT_STEPS`) was one.
//!
//! After each plan: the site is done, Ready, out of maintenance and held by no
//! one, on the target pool (or release); what must not run twice ran once:
//! each of the plan's Backups and its Restore made once, each of their Jobs
//! succeeded once and never failed, no other Job, the upgrade Job (watched:
//! the site operator deletes it once done) made once, succeeded once and never
//! failed; the old volume kept and marked superseded.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::runtime::{WatchStreamExt, watcher};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, DeleteParams, ListParams};
use kube::{Client, ResourceExt};
use mutu_api::wave::{SiteProgress, SiteStep, WaveStatus};
use mutu_api::{Backup, MigrationPlan, PloneSite, ReleaseRollout, Restore};
use mutu_e2e::{create_product, member_with_sites, restart_operator};
use mutu_runtime::conditions;
use mutu_runtime::testing::{self, unique_name};
use serde_json::json;

use super::create_plan;

const TIMEOUT: Duration = Duration::from_secs(240);

/// The steps of a ZEO site's move, in order (`operators/wave/src/step.rs`, `migrate`).
const MIGRATION_STEPS: &[SiteStep] = &[
    SiteStep::Preflight,
    SiteStep::Maintenance,
    SiteStep::CopyingData,
    SiteStep::Moving,
    SiteStep::Verifying,
];
/// The steps of a site's upgrade, in order (`operators/wave/src/step.rs`, `upgrade`).
const ROLLOUT_STEPS: &[SiteStep] = &[
    SiteStep::Preflight,
    SiteStep::Upgrading,
    SiteStep::Verifying,
];

#[tokio::test]
async fn the_operator_killed_at_every_step_of_a_move_and_an_upgrade_repeats_nothing()
-> anyhow::Result<()> {
    let client = testing::client().await?;
    let product = unique_name("kill-p");
    create_product(&client, &product, json!({"replicas": 2})).await?;
    let run = unique_name("kill");
    let ns = member_with_sites(
        &client,
        "kill-w",
        &product,
        &["k".to_string()],
        json!({"killed": run}),
        TIMEOUT,
    )
    .await?;
    let migration = unique_name("kill-m");
    let rollout = unique_name("kill-r");
    let from: anyhow::Result<String> = Api::<PloneSite>::namespaced(client.clone(), &ns)
        .get("k")
        .await
        .map_err(anyhow::Error::from)
        .and_then(|s| {
            s.status
                .and_then(|st| st.pool)
                .ok_or_else(|| anyhow::anyhow!("{ns}/k has no pool"))
        });
    let result = match &from {
        Ok(from) => scenario(&client, &ns, &product, &run, from, &migration, &rollout).await,
        Err(e) => Err(anyhow::anyhow!("{e}")),
    };
    // Whatever happened, no plan left behind (each kill started the operator
    // again: it runs), the nodes the migration cordoned take sites again, and
    // the member goes with its site.
    let migrations: Api<MigrationPlan> = Api::all(client.clone());
    let _ = migrations
        .delete(&migration, &DeleteParams::default())
        .await;
    let _ = Api::<ReleaseRollout>::all(client.clone())
        .delete(&rollout, &DeleteParams::default())
        .await;
    let gone = mutu_runtime::testing::eventually(TIMEOUT, "the plan to be gone", || async {
        migrations
            .get_opt(&migration)
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    let put_back = match &from {
        Ok(from) => mutu_e2e::put_back(&client, from, std::slice::from_ref(&ns), TIMEOUT).await,
        Err(e) => Err(anyhow::anyhow!("the site's pool: {e}")),
    };
    gone?;
    result?;
    put_back?;
    Ok(())
}

async fn scenario(
    client: &Client,
    ns: &str,
    product: &str,
    run: &str,
    from: &str,
    migration: &str,
    rollout: &str,
) -> anyhow::Result<()> {
    let sites: Api<PloneSite> = Api::namespaced(client.clone(), ns);
    let site = sites.get("k").await?;
    let st = site.status.clone().unwrap_or_default();
    let to = if from == mutu_api::POOL_FRONTEND {
        mutu_api::POOL_PHYSICAL
    } else {
        mutu_api::POOL_FRONTEND
    };
    let release = st.release.clone().unwrap_or_default();

    // The move.
    create_plan(
        client,
        migration,
        json!({"selector": {"matchLabels": {"killed": run}}, "from": from, "to": to,
               "waveSize": 1, "maxInFlight": 1, "failureThreshold": 1,
               "verifyTimeout": "120s"}),
    )
    .await?;
    let plans: Api<MigrationPlan> = Api::all(client.clone());
    let killed = kill_at_each_step(migration, || async {
        Ok(plans.get(migration).await?.status)
    })
    .await?;
    ensure_all(&killed, MIGRATION_STEPS, "migration")?;
    let site = settled(&sites, ns).await?;
    anyhow::ensure!(
        site.status.as_ref().and_then(|s| s.pool.as_deref()) == Some(to),
        "k is not on {to}"
    );
    let new_volume = site
        .annotations()
        .get(mutu_api::DATA_VOLUME_ANNOTATION)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("k has no new data volume"))?;
    let old = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
        .get("data-k-zeo-0")
        .await?;
    anyhow::ensure!(
        old.annotations().get(mutu_api::SUPERSEDED_BY_ANNOTATION) == Some(&new_volume),
        "the old volume kept, superseded by {new_volume}: {:?}",
        old.annotations()
    );
    made_once(
        client,
        ns,
        &[format!("{migration}-k-final"), format!("{migration}-k-pre")],
        &[format!("{migration}-k-data")],
        &[],
    )
    .await?;

    // The upgrade.
    let next = format!("{release}-next");
    let api: Api<ReleaseRollout> = Api::all(client.clone());
    // The site operator deletes the upgrade Job once the site runs the new
    // release: every version of the site's Jobs is watched meanwhile.
    let seen = watch_jobs(client, ns);
    mutu_e2e::create_rollout(
        client,
        rollout,
        json!({"product": product, "release": next, "waveSize": 1, "maxInFlight": 1,
               "failureThreshold": 1, "verifyTimeout": "120s"}),
    )
    .await?;
    let killed =
        kill_at_each_step(rollout, || async { Ok(api.get(rollout).await?.status) }).await?;
    ensure_all(&killed, ROLLOUT_STEPS, "rollout")?;
    let site = settled(&sites, ns).await?;
    anyhow::ensure!(
        site.status.as_ref().and_then(|s| s.release.as_deref()) == Some(next.as_str()),
        "k is not on release {next}: {:?}",
        site.status.as_ref().and_then(|s| s.release.clone())
    );
    made_once(
        client,
        ns,
        &[
            format!("{migration}-k-final"),
            format!("{migration}-k-pre"),
            format!("{rollout}-k-pre"),
        ],
        &[format!("{migration}-k-data")],
        &[],
    )
    .await?;
    let upgrade = mutu_model::names::upgrade_job("k", &next);
    let versions = seen
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .get(&upgrade)
        .cloned()
        .unwrap_or_default();
    anyhow::ensure!(
        versions.uids.len() == 1 && versions.succeeded == 1 && versions.failed == 0,
        "the upgrade Job {upgrade} made once, succeeded once, never failed: {versions:?}"
    );
    for step in MIGRATION_STEPS {
        mutu_e2e::fault_scenario_passed(&format!(
            "operator SIGKILL at the migration step {step:?} of a site: resumed there, nothing run twice"
        ));
    }
    for step in ROLLOUT_STEPS {
        mutu_e2e::fault_scenario_passed(&format!(
            "operator SIGKILL at the rollout step {step:?} of a site: resumed there, nothing run twice"
        ));
    }
    Ok(())
}

/// What was seen of one Job name: its uids, and the most pods it counted
/// succeeded and failed.
#[derive(Clone, Debug, Default)]
struct Seen {
    uids: BTreeSet<String>,
    succeeded: i32,
    failed: i32,
}

/// Watches the Jobs of `ns` in the background (for as long as the test runs).
fn watch_jobs(client: &Client, ns: &str) -> Arc<Mutex<BTreeMap<String, Seen>>> {
    let seen: Arc<Mutex<BTreeMap<String, Seen>>> = Arc::default();
    let api: Api<Job> = Api::namespaced(client.clone(), ns);
    let record = seen.clone();
    tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher(api, watcher::Config::default()).applied_objects());
        while let Some(Ok(job)) = events.next().await {
            let Ok(mut seen) = record.lock() else { return };
            let s = seen.entry(job.name_any()).or_default();
            s.uids.insert(job.uid().unwrap_or_default());
            let status = job.status.clone().unwrap_or_default();
            s.succeeded = s.succeeded.max(status.succeeded.unwrap_or(0));
            s.failed = s.failed.max(status.failed.unwrap_or(0));
        }
    });
    seen
}

/// Watches the plan's first site; each time it shows a step not killed at yet
/// (and not terminal), kills the operator and starts it again. Returns the
/// steps killed at, once the site is done.
async fn kill_at_each_step<F, Fut>(plan: &str, status: F) -> anyhow::Result<Vec<SiteStep>>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<WaveStatus>>>,
{
    let started = Instant::now();
    let mut killed: Vec<SiteStep> = Vec::new();
    loop {
        anyhow::ensure!(
            started.elapsed() < TIMEOUT,
            "plan {plan}: the site is not done after {TIMEOUT:?}; killed at {killed:?}"
        );
        let progress: Option<SiteProgress> = status()
            .await
            .ok()
            .flatten()
            .and_then(|s| s.site_progress.into_iter().next());
        if let Some(p) = progress {
            match p.step {
                SiteStep::Done => return Ok(killed),
                SiteStep::Failed | SiteStep::RollingBack => {
                    anyhow::bail!("plan {plan}: the site failed (killed at {killed:?}): {p:?}")
                }
                SiteStep::Pending => {}
                step if !killed.contains(&step) => {
                    restart_operator(true, &[]).await?;
                    killed.push(step);
                }
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ensure_all(killed: &[SiteStep], steps: &[SiteStep], what: &str) -> anyhow::Result<()> {
    let seen: BTreeSet<String> = killed.iter().map(|s| format!("{s:?}")).collect();
    let want: BTreeSet<String> = steps.iter().map(|s| format!("{s:?}")).collect();
    anyhow::ensure!(
        seen == want,
        "the {what} was killed at {killed:?}, not at each of {steps:?}"
    );
    Ok(())
}

/// Waits until the site is Ready, out of maintenance and held by no one (the
/// plan lets go of a site once its status records it done).
async fn settled(sites: &Api<PloneSite>, ns: &str) -> anyhow::Result<PloneSite> {
    let problem = |site: &PloneSite| {
        let st = site.status.clone().unwrap_or_default();
        if !conditions::is_true(&st.conditions, mutu_api::CONDITION_READY) {
            return Some(format!("{ns}/k is not Ready: {:?}", st.conditions));
        }
        [
            mutu_api::OFFLINE_ANNOTATION,
            mutu_api::MAINTENANCE_ANNOTATION,
            mutu_api::HELD_BY_ANNOTATION,
        ]
        .into_iter()
        .find(|key| site.annotations().contains_key(*key))
        .map(|key| format!("{ns}/k still has {key}"))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let site = sites.get("k").await?;
        match problem(&site) {
            None => return Ok(site),
            Some(why) if Instant::now() > deadline => anyhow::bail!(why),
            Some(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Exactly these Backups and Restores exist; their Jobs and the `others` Jobs
/// each succeeded once and never failed, and there is no other backup, restore
/// or upgrade Job.
async fn made_once(
    client: &Client,
    ns: &str,
    backups: &[String],
    restores: &[String],
    others: &[String],
) -> anyhow::Result<()> {
    let mut b: Vec<String> = Api::<Backup>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|b| b.name_any())
        .collect();
    b.sort();
    let mut want_b = backups.to_vec();
    want_b.sort();
    anyhow::ensure!(b == want_b, "Backups {b:?}, expected {want_b:?}");
    let r: Vec<String> = Api::<Restore>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|r| r.name_any())
        .collect();
    anyhow::ensure!(r == restores, "Restores {r:?}, expected {restores:?}");
    let mut want: Vec<String> = backups
        .iter()
        .map(|n| format!("backup-{n}"))
        .chain(restores.iter().map(|n| format!("restore-{n}")))
        .chain(others.iter().cloned())
        .collect();
    want.sort();
    let jobs = Api::<Job>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items;
    let mut found = Vec::new();
    for job in &jobs {
        let name = job.name_any();
        if !(name.starts_with("backup-")
            || name.starts_with("restore-")
            || name.contains("-upgrade-"))
        {
            continue;
        }
        let status = job.status.clone().unwrap_or_default();
        anyhow::ensure!(
            status.succeeded == Some(1) && status.failed.unwrap_or(0) == 0,
            "Job {name} succeeded once and never failed: {status:?}"
        );
        found.push(name);
    }
    found.sort();
    anyhow::ensure!(found == want, "Jobs {found:?}, expected {want:?}");
    Ok(())
}
