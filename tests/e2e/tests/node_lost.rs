//! A node lost during a backup (a module of the serial tests: a NotReady node
//! would disturb the others). The node that holds a ZEO site's data volume
//! stops answering (`mutu dev node not-ready`: kwok stops keeping it, the
//! controller-manager marks it NotReady and taints it) right when a Backup of
//! the site is asked for. The backup's Job must read that volume, so its pod
//! cannot run anywhere else: the Backup waits, neither failed nor done twice.
//! When the node is back, the same Job runs once, the Backup completes, and the
//! site is Ready on the same volume.

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

#[tokio::test]
async fn a_node_lost_during_a_backup_holds_it_and_once_back_the_backup_runs_once()
-> anyhow::Result<()> {
    let client = testing::client().await?;
    let (ns, _) = member_with_site(&client, "node-lost", json!({}), TIMEOUT).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let zeo = pods
        .list(&ListParams::default().labels(&format!(
            "{}=delib,app.kubernetes.io/component=zeo",
            mutu_api::common::SITE_LABEL
        )))
        .await?
        .items;
    let node = zeo
        .first()
        .and_then(|p| p.spec.as_ref()?.node_name.clone())
        .ok_or_else(|| anyhow::anyhow!("the ZEO server of delib runs on no node: {zeo:?}"))?;
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
