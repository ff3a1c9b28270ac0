//! A node lost during a backup (a module of the serial tests: a NotReady node
//! would disturb the others). The node that holds a ZEO site's data volume
//! stops answering (`mutu dev node not-ready`: kwok stops keeping it, the
//! controller-manager marks it NotReady and taints it) right when a Backup of
//! the site is asked for. The backup's Job must read that volume, so its pod
//! cannot run anywhere else: the Backup waits, neither failed nor done twice.
//! When the node is back, the same Job runs once, the Backup completes, and the
//! site is Ready on the same volume. And a node lost while a MigrationPlan
//! moves a site off it: the move goes on without it.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use mutu_api::{Backup, PloneSite};
use mutu_e2e::member_with_site;

use crate::dev_faults::dev;
use mutu_runtime::conditions;
use mutu_runtime::testing::{self, eventually, wait_for};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(120);

fn condition(backup: &Backup, kind: &str) -> Option<String> {
    backup
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, kind))
        .map(|c| c.status.clone())
}

/// The node site `delib`'s ZEO server runs on.
async fn zeo_node(pods: &Api<Pod>) -> anyhow::Result<String> {
    let zeo = zeo_pods(pods).await?;
    zeo.first()
        .and_then(|p| p.spec.as_ref()?.node_name.clone())
        .ok_or_else(|| anyhow::anyhow!("the ZEO server of delib runs on no node: {zeo:?}"))
}

async fn zeo_pods(pods: &Api<Pod>) -> anyhow::Result<Vec<Pod>> {
    Ok(pods
        .list(&ListParams::default().labels(&format!(
            "{}=delib,app.kubernetes.io/component=zeo",
            mutu_api::common::SITE_LABEL
        )))
        .await?
        .items)
}

#[tokio::test]
async fn a_node_lost_during_a_backup_holds_it_and_once_back_the_backup_runs_once()
-> anyhow::Result<()> {
    let client = testing::client().await?;
    let (ns, _) = member_with_site(&client, "node-lost", json!({}), TIMEOUT).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let node = zeo_node(&pods).await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let volume_uid = claims.get("data-delib-zeo-0").await?.uid();

    dev(&["node", "not-ready", &node])?;
    let lost = async {
        mutu_e2e::backup_site(&client, &ns, "during-loss", "delib").await?;
        let backups: Api<Backup> = Api::namespaced(client.clone(), &ns);
        let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
        // The Backup's Job is made, and its pod cannot run while the node is lost.
        eventually(TIMEOUT, "the backup Job to be made", || async {
            jobs.get_opt("backup-during-loss").await.ok()?.map(|_| ())
        })
        .await?;
        tokio::time::sleep(Duration::from_secs(10)).await;
        let backup = backups.get("during-loss").await?;
        assert_ne!(
            condition(&backup, "Complete").as_deref(),
            Some("True"),
            "a backup of a lost node's volume completed: {:?}",
            backup.status
        );
        assert_ne!(
            condition(&backup, "Failed").as_deref(),
            Some("True"),
            "{:?}",
            backup.status
        );
        let job_pods = pods
            .list(&ListParams::default().labels("job-name=backup-during-loss"))
            .await?
            .items;
        for pod in &job_pods {
            let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
            assert!(
                matches!(phase.as_deref(), None | Some("Pending")),
                "the backup's pod {} ran while its volume's node is lost: {phase:?} on {:?}",
                pod.name_any(),
                pod.spec.as_ref().and_then(|s| s.node_name.clone())
            );
        }
        anyhow::Ok(job_pods.len())
    }
    .await;
    // Whatever happened, the node comes back for the tests after this one.
    dev(&["node", "ready", &node])?;
    let pending = lost?;

    let backups: Api<Backup> = Api::namespaced(client.clone(), &ns);
    let done = wait_for(
        &backups,
        "during-loss",
        TIMEOUT,
        "the backup to complete once the node is back",
        |b: Option<&Backup>| b.and_then(|b| condition(b, "Complete")).as_deref() == Some("True"),
    )
    .await?;
    assert_ne!(condition(&done, "Failed").as_deref(), Some("True"));
    let jobs: Vec<String> = Api::<Job>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|j| j.name_any())
        .filter(|n| n.starts_with("backup-"))
        .collect();
    assert_eq!(jobs, ["backup-during-loss"], "the backup's Job, once");
    let job = Api::<Job>::namespaced(client.clone(), &ns)
        .get("backup-during-loss")
        .await?;
    let status = job.status.unwrap_or_default();
    assert_eq!(status.succeeded, Some(1), "{status:?}");
    assert_eq!(status.failed.unwrap_or(0), 0, "{status:?}");
    // The site is Ready again, on the volume it had.
    let sites: Api<PloneSite> = Api::namespaced(client.clone(), &ns);
    wait_for(
        &sites,
        "delib",
        TIMEOUT,
        "the site to be Ready again",
        |s: Option<&PloneSite>| {
            s.and_then(|s| s.status.as_ref())
                .and_then(|st| conditions::find(&st.conditions, "Ready"))
                .is_some_and(|c| c.status == "True")
        },
    )
    .await?;
    assert_eq!(
        claims.get("data-delib-zeo-0").await?.uid(),
        volume_uid,
        "the site's data volume is the one it had"
    );
    eprintln!(
        "node {node} lost during the backup: {pending} pod(s) of its Job waited; once back, the Job ran once"
    );
    mutu_e2e::fault_scenario_passed(
        "a node lost during a backup: the backup waits, runs once when the node is back, the data volume kept",
    );
    Ok(())
}

/// A node lost during a migration's data step: the node of a ZEO site's
/// server (on the pool being left) stops answering once a MigrationPlan's
/// fresh Backup of the site is complete, as the plan takes the site offline to
/// move it. The move does not need that node: the servers' pods are evicted
/// from it, the last Backup reads the volume (simulated volumes are not bound
/// to a node; a node-bound volume holds its Backup until the node is back, as
/// the backup scenario above shows), a Restore fills the new volume on the
/// other pool, and the site is Ready there while the node is still lost.
/// Nothing fails, each Job runs once, the old volume is kept and marked
/// superseded, and once the node is back nothing moves again.
#[tokio::test]
async fn a_node_lost_during_a_migrations_data_step_does_not_stop_the_move() -> anyhow::Result<()> {
    use mutu_api::wave::SiteStep;
    use mutu_api::{MigrationPlan, Restore};

    let client = testing::client().await?;
    let (ns, _) = member_with_site(&client, "node-lost-mig", json!({}), TIMEOUT).await?;
    let sites: Api<PloneSite> = Api::namespaced(client.clone(), &ns);
    let run = testing::unique_name("lostmig");
    sites
        .patch(
            "delib",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&json!({"metadata": {"labels": {"node-lost": run}}})),
        )
        .await?;
    let from = sites
        .get("delib")
        .await?
        .status
        .and_then(|s| s.pool)
        .ok_or_else(|| anyhow::anyhow!("{ns}/delib has no pool"))?;
    let to = if from == mutu_api::POOL_FRONTEND {
        mutu_api::POOL_PHYSICAL
    } else {
        mutu_api::POOL_FRONTEND
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let node = zeo_node(&pods).await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let volume_uid = claims.get("data-delib-zeo-0").await?.uid();

    let plan = testing::unique_name("lost-move");
    let plans: Api<MigrationPlan> = Api::all(client.clone());
    mutu_e2e::create_migration_plan(
        &client,
        &plan,
        json!({"selector": {"matchLabels": {"node-lost": run}}, "from": from, "to": to,
               "waveSize": 1, "maxInFlight": 1, "failureThreshold": 1,
               "verifyTimeout": "120s"}),
    )
    .await?;
    let step = || async {
        let p = plans.get(&plan).await.ok()?;
        p.status?.site_progress.into_iter().next()
    };
    let backups: Api<Backup> = Api::namespaced(client.clone(), &ns);
    let pre = format!("{plan}-delib-pre");
    let lost = async {
        eventually(TIMEOUT, "the plan's fresh Backup to complete", || async {
            let b = backups.get_opt(&pre).await.ok()??;
            (condition(&b, "Complete").as_deref() == Some("True")).then_some(())
        })
        .await?;
        dev(&["node", "not-ready", &node])?;
        let at = step().await.map(|p| p.step);
        let done = eventually(
            Duration::from_secs(240),
            "the site's move to finish with its node lost",
            || async {
                step()
                    .await
                    .filter(|p| matches!(p.step, SiteStep::Done | SiteStep::Failed))
            },
        )
        .await?;
        anyhow::ensure!(done.step == SiteStep::Done, "the move failed: {done:?}");
        let lost_yet = Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
            .get(&node)
            .await?
            .spec
            .and_then(|s| s.taints)
            .unwrap_or_default()
            .iter()
            .any(|t| t.key == "node.kubernetes.io/not-ready");
        anyhow::ensure!(lost_yet, "node {node} came back before the move finished");
        anyhow::Ok(at)
    }
    .await;
    // Whatever happened, the node comes back for the tests after this one.
    let back = dev(&["node", "ready", &node]);
    let result = async {
        let at = lost?;
        back?;
        let site = sites.get("delib").await?;
        let st = site.status.clone().unwrap_or_default();
        anyhow::ensure!(
            conditions::is_true(&st.conditions, "Ready") && st.pool.as_deref() == Some(to),
            "delib is not Ready on {to}: {:?} {:?}",
            st.pool,
            st.conditions
        );
        for key in [
            mutu_api::OFFLINE_ANNOTATION,
            mutu_api::MAINTENANCE_ANNOTATION,
        ] {
            anyhow::ensure!(
                !site.annotations().contains_key(key),
                "delib still has {key}"
            );
        }
        let new_volume = site
            .annotations()
            .get(mutu_api::DATA_VOLUME_ANNOTATION)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("delib has no new data volume"))?;
        let old = claims.get("data-delib-zeo-0").await?;
        anyhow::ensure!(old.uid() == volume_uid, "the old volume is the one it had");
        anyhow::ensure!(
            old.annotations().get(mutu_api::SUPERSEDED_BY_ANNOTATION) == Some(&new_volume),
            "the old volume is marked superseded by {new_volume}: {:?}",
            old.annotations()
        );
        // The site's servers run on the target pool, from the new volume.
        let zeo = zeo_pods(&pods).await?;
        let mounted: Vec<String> = zeo
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .flat_map(|p| p.spec.iter().flat_map(|s| s.volumes.iter().flatten()))
            .filter_map(|v| Some(v.persistent_volume_claim.as_ref()?.claim_name.clone()))
            .collect();
        anyhow::ensure!(mounted == [new_volume.clone()], "the ZEO server mounts {mounted:?}");
        // The plan's Backups and its Restore, each once, each Job run once.
        let made: Vec<String> = backups
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .map(|b| b.name_any())
            .collect();
        anyhow::ensure!(
            made == [format!("{plan}-delib-final"), pre.clone()],
            "the plan's two Backups: {made:?}"
        );
        let restores: Vec<String> = Api::<Restore>::namespaced(client.clone(), &ns)
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .map(|r| r.name_any())
            .collect();
        anyhow::ensure!(
            restores == [format!("{plan}-delib-data")],
            "one Restore: {restores:?}"
        );
        let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
        let mut ran = 0;
        for job in jobs.list(&ListParams::default()).await?.items {
            let name = job.name_any();
            if name.starts_with("backup-") || name.starts_with("restore-") {
                let status = job.status.clone().unwrap_or_default();
                anyhow::ensure!(
                    status.succeeded == Some(1) && status.failed.unwrap_or(0) == 0,
                    "Job {name} ran once and succeeded: {status:?}"
                );
                ran += 1;
            }
        }
        anyhow::ensure!(ran == 3, "two backup Jobs and one restore Job, found {ran}");
        // Once the node is back, the plan is done with the site: nothing moves again.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let again = step().await.map(|p| p.step);
        anyhow::ensure!(again == Some(SiteStep::Done), "after the node came back: {again:?}");
        eprintln!(
            "node {node} lost at step {at:?} of the move: the site moved to {to} on {new_volume} without it"
        );
        anyhow::Ok(())
    }
    .await;
    // The plan goes; the nodes it cordoned (it moved all its sites: they
    // would stay so) take sites again, and the member goes with its site, now
    // on the other pool.
    let _ = plans
        .delete(&plan, &kube::api::DeleteParams::default())
        .await;
    let gone = eventually(TIMEOUT, "the plan to be gone", || async {
        plans.get_opt(&plan).await.ok()?.is_none().then_some(())
    })
    .await;
    let put_back = mutu_e2e::put_back(&client, &from, std::slice::from_ref(&ns), TIMEOUT).await;
    gone?;
    result?;
    put_back?;
    mutu_e2e::fault_scenario_passed(
        "a node lost during a migration's data step: the site moves without it, each Job once, the old volume kept",
    );
    Ok(())
}
