//! Real-node tests that kill the operator (SIGKILL, then the same command
//! again): they run one at a time, after the other real-node tests, so that
//! no other test loses its operator meanwhile.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::Client;
use kube::api::{Api, ListParams};
use mutu_api::{Backup, PloneSite, Restore, SolrIndex};
use mutu_e2e::real::{PloneContent, TIMEOUT, client, member, ready_site};
use mutu_e2e::{backup_site, restart_operator, restore_site, solr_admin};
use mutu_runtime::conditions;
use mutu_runtime::testing::eventually;
use serde_json::json;

/// The reason of a run's `Progressing` condition, and whether it is Complete
/// (an error when it Failed).
fn stage(
    conds: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> anyhow::Result<(String, bool)> {
    if let Some(failed) = conditions::find(conds, "Failed").filter(|c| c.status == "True") {
        anyhow::bail!("failed: {}", failed.message);
    }
    let reason = conditions::find(conds, "Progressing")
        .map(|c| c.reason.clone())
        .unwrap_or_default();
    Ok((reason, conditions::is_true(conds, "Complete")))
}

/// Follows a run until it is Complete, and kills the operator (then starts
/// it again) right after each new stage the run's status shows: each step
/// boundary of the run. Returns the stages seen, in order.
async fn complete_through_kills<F, Fut>(what: &str, read: F) -> anyhow::Result<Vec<String>>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<
            Output = anyhow::Result<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>,
        >,
{
    let mut seen: Vec<String> = Vec::new();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{what} did not complete; stages seen: {seen:?}"
        );
        let (reason, complete) = stage(&read().await?)
            .map_err(|e| anyhow::anyhow!("{what} {e}; stages seen: {seen:?}"))?;
        if complete {
            return Ok(seen);
        }
        if !reason.is_empty() && seen.last() != Some(&reason) {
            seen.push(reason);
            restart_operator(true, &[]).await?;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The Jobs of namespace `ns` whose name starts with `prefix`, and how many
/// pods each ran to success.
async fn jobs(client: &Client, ns: &str, prefix: &str) -> anyhow::Result<Vec<(String, i32)>> {
    Ok(Api::<Job>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|j| {
            let name = j.metadata.name.clone()?;
            name.starts_with(prefix).then(|| {
                let done = j.status.and_then(|s| s.succeeded).unwrap_or(0);
                (name, done)
            })
        })
        .collect())
}

#[tokio::test]
async fn a_backup_and_a_restore_survive_the_operator_killed_at_every_step() -> anyhow::Result<()> {
    let client = client().await?;
    let (_, ns, domain) = member(&client, "rn-kill", json!({"dev-plone-solr": 1})).await?;
    let host = format!("kill.{domain}");
    ready_site(
        &client,
        &ns,
        "kill",
        json!({"product": "dev-plone-solr", "hostnames": [host]}),
    )
    .await?;
    let indexes: Api<SolrIndex> = Api::namespaced(client.clone(), &ns);
    let alias = eventually(TIMEOUT, "the site's index to be Ready", || async {
        let status = indexes.get("kill").await.ok()?.status?;
        conditions::is_true(&status.conditions, "Ready")
            .then_some(status.alias)
            .flatten()
    })
    .await?;
    let site = PloneContent::of(&client, &ns, "kill", &host).await?;
    site.wait_serving().await?;
    site.create_document("kept", "<p>Ordre du jour keptword</p>")
        .await?;
    site.create_document("changed", "<p>Version approuvée</p>")
        .await?;

    // The backup, the operator killed after each of its stages.
    backup_site(&client, &ns, "before", "kill").await?;
    let backups: Api<Backup> = Api::namespaced(client.clone(), &ns);
    let backup_stages = complete_through_kills("Backup before", || async {
        Ok(backups
            .get("before")
            .await?
            .status
            .unwrap_or_default()
            .conditions)
    })
    .await?;
    assert!(!backup_stages.is_empty(), "no stage of the backup seen");
    assert_eq!(
        jobs(&client, &ns, "backup-").await?,
        [("backup-before".to_string(), 1)],
        "the backup ran once"
    );

    // Changes, then the restore, the operator killed after each of its stages.
    site.set_text("changed", "<p>Modifié après la sauvegarde</p>")
        .await?;
    site.delete("kept").await?;
    site.create_document("after", "<p>Écrit après gammaword</p>")
        .await?;
    restore_site(&client, &ns, "undo", "kill", "before").await?;
    let restores: Api<Restore> = Api::namespaced(client.clone(), &ns);
    let stages = complete_through_kills("Restore undo", || async {
        Ok(restores
            .get("undo")
            .await?
            .status
            .unwrap_or_default()
            .conditions)
    })
    .await?;
    let stages: BTreeSet<String> = stages.into_iter().collect();
    for boundary in ["Stopping", "Restoring", "Starting", "CatchingUpSearch"] {
        assert!(
            stages.contains(boundary),
            "the operator was not killed after {boundary}: stages seen {stages:?}"
        );
    }
    assert_eq!(
        jobs(&client, &ns, "restore-").await?,
        [("restore-undo".to_string(), 1)],
        "the restore ran once"
    );

    // The site serves what it held at the backup, out of maintenance, and
    // its search index says the same.
    site.wait_serving().await?;
    let now = Api::<PloneSite>::namespaced(client.clone(), &ns)
        .get("kill")
        .await?;
    let annotations = now.metadata.annotations.unwrap_or_default();
    assert!(
        !annotations.contains_key(mutu_api::MAINTENANCE_ANNOTATION)
            && !annotations.contains_key(mutu_api::OFFLINE_ANNOTATION),
        "the site is still held: {annotations:?}"
    );
    assert_eq!(
        site.document_text("kept").await?.as_deref(),
        Some("<p>Ordre du jour keptword</p>")
    );
    assert_eq!(
        site.document_text("changed").await?.as_deref(),
        Some("<p>Version approuvée</p>")
    );
    assert_eq!(site.document_text("after").await?, None);
    let solr = solr_admin(&client).await?;
    for (q, want) in [
        ("SearchableText:keptword", 1),
        ("SearchableText:gammaword", 0),
    ] {
        let found = solr.select(&alias, &[("q", q), ("rows", "0")]).await?;
        assert_eq!(found["response"]["numFound"], want, "{q} in {alias}");
    }
    for stage in &backup_stages {
        mutu_e2e::fault_scenario_passed(&format!(
            "operator SIGKILL after the backup's step {stage}: the backup ran once and holds the site's content"
        ));
    }
    for stage in &stages {
        mutu_e2e::fault_scenario_passed(&format!(
            "operator SIGKILL after the restore's step {stage}: it ran once and the site is back as at the backup"
        ));
    }
    mutu_e2e::real::free(&[&ns]);
    Ok(())
}
