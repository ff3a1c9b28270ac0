//! A site's search index moving to a new configset version, against the real
//! control plane and the real Solr: the new collection is built beside the one
//! serving, the site's reindex Job runs into it, and the alias moves only when
//! that Job succeeded; the old collection is kept until `keepPreviousFor` has
//! passed. A failing reindex leaves the alias where it was and says so.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use mutu_api::{PloneSite, SolrIndex};
use mutu_e2e::{member_with_site, solr_admin};
use mutu_runtime::conditions;
use mutu_runtime::testing::{self, eventually, wait_for};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(90);

/// A member entitled to one site of a new Solr-enabled product (with `overrides`),
/// and that site, Ready, with its index Ready; returns (namespace, alias).
async fn site_with_index(
    client: &Client,
    prefix: &str,
    overrides: serde_json::Value,
) -> anyhow::Result<(String, String)> {
    let mut spec = json!({"solr": {"enabled": true}});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), overrides.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    let (ns, _) = member_with_site(client, prefix, spec, TIMEOUT).await?;
    let indexes: Api<SolrIndex> = Api::namespaced(client.clone(), &ns);
    wait_for(
        &indexes,
        "delib",
        TIMEOUT,
        "the site's index to be Ready",
        |i: Option<&SolrIndex>| {
            i.and_then(|i| i.status.as_ref())
                .is_some_and(|s| conditions::is_true(&s.conditions, "Ready"))
        },
    )
    .await?;
    Ok((ns.clone(), format!("{ns}.delib")))
}

async fn set_version(client: &Client, ns: &str, version: &str) -> anyhow::Result<()> {
    Api::<PloneSite>::namespaced(client.clone(), ns)
        .patch(
            "delib",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"solr": {"configsetVersion": version}}})),
        )
        .await?;
    Ok(())
}

fn reindexed(idx: &SolrIndex) -> Option<Condition> {
    idx.status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, "Reindexed").cloned())
}

fn job_complete(job: &Job) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| {
            c.iter()
                .any(|c| c.type_ == "Complete" && c.status == "True")
        })
}

#[tokio::test]
async fn a_new_configset_version_moves_the_alias_only_after_the_reindex_job_succeeded()
-> anyhow::Result<()> {
    let client = testing::client().await?;
    let solr = solr_admin(&client).await?;
    let (ns, alias) = site_with_index(&client, "reindex", json!({})).await?;
    let (v1, v2) = (format!("{alias}_v1"), format!("{alias}_v2"));
    assert_eq!(solr.aliases().await?.get(&alias), Some(&v1));
    // What the site indexed so far, in the collection that serves.
    let doc = json!({"UID": "r1", "Title": "Procès-verbal du conseil", "portal_type": "Document"});
    solr.index(&alias, &[doc]).await?;

    set_version(&client, &ns, "2").await?;
    // Watch Solr's alias and the Job side by side: the alias may be on v2 only
    // once the Job has completed.
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let mut job_seen = false;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let job = jobs.get_opt("delib-reindex-v2").await?;
        let target = solr.aliases().await?.get(&alias).cloned();
        job_seen |= job.is_some();
        if target.as_ref() == Some(&v2) {
            let job = jobs.get("delib-reindex-v2").await?;
            assert!(
                job_complete(&job),
                "the alias moved before the Job succeeded"
            );
            break;
        }
        assert_eq!(
            target.as_ref(),
            Some(&v1),
            "the alias stays on v1 meanwhile"
        );
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the alias did not move to {v2}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(job_seen, "a reindex Job ran");

    // The Job ran the site's own release with collective.solr pointed at v2.
    let job = jobs.get("delib-reindex-v2").await?;
    let container = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| p.containers[0].clone())
        .unwrap_or_default();
    let base = container
        .env
        .unwrap_or_default()
        .into_iter()
        .find(|e| e.name == "COLLECTIVE_SOLR_BASE")
        .and_then(|e| e.value);
    assert!(
        base.as_deref()
            .is_some_and(|b| b.ends_with(&format!("/{v2}"))),
        "{base:?}"
    );
    assert!(
        container
            .command
            .unwrap_or_default()
            .iter()
            .any(|a| a.ends_with("/reindex_solr.py")),
        "the Job runs mutu's reindex script"
    );
    assert!(container.image.unwrap_or_default().ends_with(":1.0"));

    // The status says where things are; the old collection is kept. Reindexed
    // once the catch-up Job, started after the alias moved, indexed through
    // the alias what the site changed during the reindex.
    let indexes: Api<SolrIndex> = Api::namespaced(client.clone(), &ns);
    let idx = wait_for(
        &indexes,
        "delib",
        TIMEOUT,
        "the index to report the move, caught up",
        |i: Option<&SolrIndex>| {
            i.and_then(|i| i.status.as_ref()).is_some_and(|s| {
                s.collection.as_deref() == Some(v2.as_str())
                    && conditions::is_true(&s.conditions, "Reindexed")
            })
        },
    )
    .await?;
    let catch_up = jobs.get("delib-reindex-v2-catch-up").await?;
    assert!(job_complete(&catch_up), "Reindexed before the catch-up");
    let reindex_done = jobs
        .get("delib-reindex-v2")
        .await?
        .status
        .and_then(|s| s.completion_time);
    assert!(
        catch_up.metadata.creation_timestamp.as_ref() >= reindex_done.as_ref(),
        "the catch-up started before the reindex ended"
    );
    let container = catch_up
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| p.containers[0].clone())
        .unwrap_or_default();
    assert!(
        container
            .env
            .unwrap_or_default()
            .iter()
            .any(|e| e.name == "COLLECTIVE_SOLR_BASE"
                && e.value
                    .as_deref()
                    .is_some_and(|b| b.ends_with(&format!("/{alias}")))),
        "the catch-up writes through the alias"
    );
    assert_eq!(
        container
            .command
            .unwrap_or_default()
            .last()
            .map(String::as_str),
        Some("--catch-up")
    );
    let status = idx.status.clone().unwrap_or_default();
    assert_eq!(status.configset_version.as_deref(), Some("2"));
    assert!(status.pending.is_none(), "{:?}", status.pending);
    assert_eq!(
        status
            .previous
            .iter()
            .map(|p| p.collection.as_str())
            .collect::<Vec<_>>(),
        [v1.as_str()]
    );
    let kept = &status.previous[0];
    let days = kept
        .delete_after
        .0
        .duration_since(kept.retired_at.0)
        .as_secs();
    assert_eq!(days, 7 * 24 * 3600, "kept for the default 7 days");
    let cond = reindexed(&idx).ok_or_else(|| anyhow::anyhow!("no Reindexed condition"))?;
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("True", "Reindexed")
    );
    let collections = solr.collections().await?;
    assert!(collections.contains(&v1) && collections.contains(&v2));
    assert_eq!(
        solr.count(&v1).await?,
        1,
        "the old collection keeps its documents"
    );

    // Shortening the retention applies to the collection already retired.
    indexes
        .patch(
            "delib",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"keepPreviousFor": "3s"}})),
        )
        .await?;
    eventually(TIMEOUT, "the old collection to be deleted", || {
        let (solr, v1) = (solr.clone(), v1.clone());
        async move { (!solr.collections().await.ok()?.contains(&v1)).then_some(()) }
    })
    .await?;
    let idx = wait_for(
        &indexes,
        "delib",
        TIMEOUT,
        "the status to forget the deleted collection",
        |i: Option<&SolrIndex>| {
            i.and_then(|i| i.status.as_ref())
                .is_some_and(|s| s.previous.is_empty())
        },
    )
    .await?;
    assert_eq!(
        idx.status.and_then(|s| s.collection).as_deref(),
        Some(v2.as_str())
    );
    assert_eq!(solr.aliases().await?.get(&alias), Some(&v2));

    Api::<PloneSite>::namespaced(client.clone(), &ns)
        .delete("delib", &DeleteParams::default())
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_failing_reindex_leaves_the_alias_where_it_was() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let solr = solr_admin(&client).await?;
    // In the test bed the Jobs of a release tagged "-broken" fail; its servers run.
    let (ns, alias) = site_with_index(
        &client,
        "reindex-fail",
        json!({"release": "1.0-broken", "siteCreationCommand": []}),
    )
    .await?;
    let (v1, v2) = (format!("{alias}_v1"), format!("{alias}_v2"));
    set_version(&client, &ns, "2").await?;
    let indexes: Api<SolrIndex> = Api::namespaced(client.clone(), &ns);
    let idx = wait_for(
        &indexes,
        "delib",
        TIMEOUT,
        "the index to report the failed reindex",
        |i: Option<&SolrIndex>| {
            i.and_then(reindexed)
                .is_some_and(|c| c.reason == "ReindexFailed")
        },
    )
    .await?;
    let cond = reindexed(&idx).ok_or_else(|| anyhow::anyhow!("no Reindexed condition"))?;
    assert_eq!(cond.status, "False");
    assert!(
        cond.message.contains("delib-reindex-v2") && cond.message.contains(&v1),
        "the condition names the Job and where the alias stays: {}",
        cond.message
    );
    let status = idx.status.clone().unwrap_or_default();
    assert_eq!(status.collection.as_deref(), Some(v1.as_str()));
    assert_eq!(status.configset_version.as_deref(), Some("1"));
    assert_eq!(
        status.pending.as_ref().map(|p| p.collection.as_str()),
        Some(v2.as_str())
    );
    assert!(
        conditions::is_true(&status.conditions, "Ready"),
        "search still answers"
    );
    assert_eq!(solr.aliases().await?.get(&alias), Some(&v1));
    assert!(
        solr.collections().await?.contains(&v2),
        "the new collection is built"
    );
    // It stays that way: no retry loop moves the alias behind anyone's back.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(solr.aliases().await?.get(&alias), Some(&v1));

    // Going back to version 1 settles it: nothing pending, the failed Job removed.
    set_version(&client, &ns, "1").await?;
    let idx = wait_for(
        &indexes,
        "delib",
        TIMEOUT,
        "the index to settle on version 1",
        |i: Option<&SolrIndex>| {
            i.and_then(reindexed).is_some_and(|c| c.status == "True")
                && i.and_then(|i| i.status.as_ref())
                    .is_some_and(|s| s.pending.is_none())
        },
    )
    .await?;
    assert_eq!(
        idx.status.and_then(|s| s.collection).as_deref(),
        Some(v1.as_str())
    );
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    eventually(TIMEOUT, "the failed Job to be removed", || {
        let jobs = jobs.clone();
        async move {
            let job = jobs.get_opt("delib-reindex-v2").await.ok()?;
            job.is_none_or(|j| j.metadata.deletion_timestamp.is_some())
                .then_some(())
        }
    })
    .await?;
    assert_eq!(solr.aliases().await?.get(&alias), Some(&v1));
    Api::<PloneSite>::namespaced(client.clone(), &ns)
        .delete("delib", &DeleteParams::default())
        .await?;
    mutu_e2e::fault_scenario_passed(
        "a reindex Job that fails: the alias stays on the collection that works",
    );
    Ok(())
}
