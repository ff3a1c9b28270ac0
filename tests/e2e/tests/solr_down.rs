//! Solr down during a reindex (a module of the serial tests: Solr is shared by
//! every index of the plane). Two sites of a member, each with a Ready index
//! whose alias serves collection v1, move to configset version 2, and the real
//! Solr of the test bed stops (`mutu dev stop solr`) at two points of their
//! reindex:
//!
//! - `during`: while its reindex Job runs. Collection v2 is built and the Job
//!   `during-reindex-v2` made, then Solr stops; the Job then succeeds while
//!   Solr is down, so the alias cannot move. (The scheduler is held meanwhile,
//!   the Job's pod pending, only to pin that moment: on simulated nodes a Job
//!   completes within a second.)
//! - `before`: before its new collection exists. Solr is down when the site
//!   asks for version 2, so the operator cannot build collection v2.
//!
//! While Solr is down each index says so (Degraded, SolrUnreachable, "cannot
//! reach Solr"), its status keeps the collection that serves (and the one
//! pending), nothing is deleted, and the operator backs off rather than
//! spinning (its reconcile errors stay few). Once Solr is back, each reindex
//! resumes where it was: the alias moves to v2 only after its Job succeeded,
//! one collection per version, the Job made once and succeeded once, v1 kept
//! as `keepPreviousFor` says, and the index Ready.

use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use mutu_api::{PloneSite, SolrIndex};
use mutu_e2e::{create_product, member_with_sites, operator_metrics, solr_admin};
use mutu_runtime::conditions;
use mutu_runtime::metrics::sum_samples;
use mutu_runtime::testing::{self, eventually, unique_name, wait_for};
use serde_json::json;

use crate::dev_faults::dev;

const TIMEOUT: Duration = Duration::from_secs(90);
/// How long Solr stays down while the operator is watched.
const DOWN_FOR: Duration = Duration::from_secs(15);
/// Most failed reconciles of the SolrIndex controller allowed over [`DOWN_FOR`]:
/// with its backoff (1 s, doubling) it fails about five times.
const MAX_ERRORS: u64 = 20;

/// Failed reconciles of the SolrIndex controller (named `solr`) so far.
async fn reconcile_errors() -> anyhow::Result<u64> {
    Ok(sum_samples(
        &operator_metrics().await?,
        "mutu_reconcile_errors_total",
        "controller=\"solr\"",
    ))
}

async fn set_version(client: &Client, ns: &str, site: &str, version: &str) -> anyhow::Result<()> {
    Api::<PloneSite>::namespaced(client.clone(), ns)
        .patch(
            site,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"solr": {"configsetVersion": version}}})),
        )
        .await?;
    Ok(())
}

fn condition(idx: &SolrIndex, kind: &str) -> Option<Condition> {
    idx.status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, kind).cloned())
}

/// The index has seen the ask for version 2 and says Solr is unreachable.
fn degraded(idx: Option<&SolrIndex>) -> bool {
    idx.is_some_and(|i| {
        i.spec.configset_version.as_deref() == Some("2")
            && i.status.as_ref().and_then(|s| s.observed_generation) == i.metadata.generation
            && condition(i, "Degraded")
                .is_some_and(|c| c.status == "True" && c.reason == "SolrUnreachable")
    })
}

/// The alias serves `collection`, caught up, Ready and not Degraded.
fn settled_on(idx: Option<&SolrIndex>, collection: &str) -> bool {
    idx.and_then(|i| i.status.as_ref()).is_some_and(|s| {
        s.collection.as_deref() == Some(collection)
            && s.pending.is_none()
            && conditions::is_true(&s.conditions, "Reindexed")
            && conditions::is_true(&s.conditions, "Ready")
            && !conditions::is_true(&s.conditions, "Degraded")
    })
}

/// The name of the reindex Job of `site` into version 2.
fn job_name(site: &str) -> String {
    format!("{site}-reindex-v2")
}

/// One site's index as Solr stops: its alias and what is kept meanwhile.
struct Index {
    site: &'static str,
    alias: String,
    /// The uid of the site's Solr credentials, which must stay.
    secret: String,
    /// The uid of the reindex Job, made before Solr stopped (`during`).
    job: Option<String>,
}

impl Index {
    fn collection(&self, version: u8) -> String {
        format!("{}_v{version}", self.alias)
    }
}

/// While Solr is down: the index says so, keeps the collection that serves
/// (v1, and v2 pending once its Job is made), and deletes nothing.
async fn check_down(client: &Client, ns: &str, i: &Index) -> anyhow::Result<()> {
    let idx = Api::<SolrIndex>::namespaced(client.clone(), ns)
        .get(i.site)
        .await?;
    let site = i.site;
    let degraded = condition(&idx, "Degraded")
        .ok_or_else(|| anyhow::anyhow!("{site}: no Degraded condition: {:?}", idx.status))?;
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "SolrUnreachable"),
        "{site}: {degraded:?}"
    );
    assert!(
        degraded.message.starts_with("cannot reach Solr for "),
        "{site}: the condition names Solr unreachable: {}",
        degraded.message
    );
    // Ready keeps what it knew (the alias served when Solr stopped), with the
    // reason it cannot tell now.
    let ready = condition(&idx, "Ready")
        .ok_or_else(|| anyhow::anyhow!("{site}: no Ready condition: {:?}", idx.status))?;
    assert!(
        ready.message.starts_with("cannot reach Solr for "),
        "{site}: Ready names the failure: {ready:?}"
    );
    let status = idx.status.clone().unwrap_or_default();
    let (v1, v2) = (i.collection(1), i.collection(2));
    assert_eq!(
        status.collection.as_deref(),
        Some(v1.as_str()),
        "{site}: the status keeps the collection the alias serves"
    );
    assert_eq!(status.configset_version.as_deref(), Some("1"), "{site}");
    let pending = i.job.as_ref().map(|_| v2.as_str());
    assert_eq!(
        status.pending.as_ref().map(|p| p.collection.as_str()),
        pending,
        "{site}: {:?}",
        status.pending
    );
    assert!(
        status.previous.is_empty(),
        "{site}: no collection retired while Solr is down: {:?}",
        status.previous
    );
    assert!(
        !conditions::is_true(&status.conditions, "Reindexed"),
        "{site}: {:?}",
        status.conditions
    );
    assert_eq!(
        Api::<Secret>::namespaced(client.clone(), ns)
            .get(&format!("{site}-solr"))
            .await?
            .uid()
            .as_deref(),
        Some(i.secret.as_str()),
        "{site}: the site's Solr credentials are kept"
    );
    let job = Api::<Job>::namespaced(client.clone(), ns)
        .get_opt(&job_name(site))
        .await?;
    match &i.job {
        // No reindex Job without its collection.
        None => assert!(job.is_none(), "{site}: {job:?}"),
        Some(uid) => {
            let job = job.ok_or_else(|| anyhow::anyhow!("{site}: the reindex Job is gone"))?;
            assert_eq!(job.uid().as_deref(), Some(uid.as_str()), "{site}");
            assert!(job.metadata.deletion_timestamp.is_none(), "{site}");
        }
    }
    Ok(())
}

/// Once Solr is back (at `back`) and the index serves v2: the alias moved
/// after the Job succeeded, one collection per version, v1 kept as
/// `keepPreviousFor` says, the Job made once and run once.
async fn check_resumed(
    client: &Client,
    solr: &mutu_solr::Client,
    ns: &str,
    i: &Index,
    back: Timestamp,
) -> anyhow::Result<()> {
    let site = i.site;
    let (v1, v2) = (i.collection(1), i.collection(2));
    assert_eq!(solr.aliases().await?.get(&i.alias), Some(&v2), "{site}");
    let mut ours: Vec<String> = solr
        .collections()
        .await?
        .into_iter()
        .filter(|c| c.starts_with(&format!("{}_v", i.alias)))
        .collect();
    ours.sort();
    assert_eq!(
        ours,
        [v1.clone(), v2.clone()],
        "{site}: one collection per version"
    );
    assert_eq!(solr.count(&v1).await?, 1, "{site}: v1 keeps its documents");

    let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
    let name = job_name(site);
    let job = jobs.get(&name).await?;
    if let Some(uid) = &i.job {
        assert_eq!(
            job.uid().as_deref(),
            Some(uid.as_str()),
            "{name} was made again"
        );
    }
    let job_status = job.status.clone().unwrap_or_default();
    assert_eq!(job_status.succeeded, Some(1), "{name}: {job_status:?}");
    assert_eq!(job_status.failed.unwrap_or(0), 0, "{name}: {job_status:?}");
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("job-name={name}")))
        .await?
        .items;
    assert_eq!(pods.len(), 1, "{name} ran {} pods", pods.len());
    let mut names: Vec<String> = jobs
        .list(&ListParams::default().labels("app.kubernetes.io/component=reindex"))
        .await?
        .items
        .iter()
        .map(|j| j.name_any())
        .filter(|n| n.starts_with(&format!("{site}-")))
        .collect();
    names.sort();
    assert_eq!(names, [name.clone(), format!("{name}-catch-up")], "{site}");

    let idx = Api::<SolrIndex>::namespaced(client.clone(), ns)
        .get(site)
        .await?;
    let status = idx.status.unwrap_or_default();
    assert_eq!(status.configset_version.as_deref(), Some("2"), "{site}");
    let [kept] = status.previous.as_slice() else {
        anyhow::bail!("{site}: not v1 alone kept: {:?}", status.previous);
    };
    assert_eq!(kept.collection, v1, "{site}");
    let done = job_status
        .completion_time
        .ok_or_else(|| anyhow::anyhow!("{name} has no completion time"))?;
    // Times in seconds: the alias moved in or after the second Solr came back.
    assert!(
        kept.retired_at.0 >= done.0.round(jiff::Unit::Second)?
            && kept.retired_at.0 >= back - SignedDuration::from_secs(1),
        "{site}: the alias moved ({}) before its Job succeeded ({}) or Solr was back ({back})",
        kept.retired_at.0,
        done.0
    );
    assert_eq!(
        kept.delete_after.0.duration_since(kept.retired_at.0),
        SignedDuration::from_hours(7 * 24),
        "{site}: v1 kept for the default 7 days"
    );
    Ok(())
}

async fn scenario(client: &Client) -> anyhow::Result<u64> {
    let solr = solr_admin(client).await?;
    let product = unique_name("solr-down-p");
    create_product(client, &product, json!({"solr": {"enabled": true}})).await?;
    let ns = member_with_sites(
        client,
        "solr-down",
        &product,
        &["before".to_string(), "during".to_string()],
        json!({}),
        TIMEOUT,
    )
    .await?;
    let indexes: Api<SolrIndex> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let mut all = Vec::new();
    for site in ["before", "during"] {
        wait_for(
            &indexes,
            site,
            TIMEOUT,
            "the site's index to be Ready",
            |i: Option<&SolrIndex>| {
                i.and_then(|i| i.status.as_ref())
                    .is_some_and(|s| conditions::is_true(&s.conditions, "Ready"))
            },
        )
        .await?;
        let index = Index {
            site,
            alias: format!("{ns}.{site}"),
            secret: secrets
                .get(&format!("{site}-solr"))
                .await?
                .uid()
                .unwrap_or_default(),
            job: None,
        };
        assert_eq!(
            solr.aliases().await?.get(&index.alias),
            Some(&index.collection(1))
        );
        let doc = json!({"UID": format!("{site}-1"), "Title": "Délibération du collège", "portal_type": "Document"});
        solr.index(&index.alias, &[doc]).await?;
        all.push(index);
    }
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);

    // `during`: collection v2 built and the Job made, its pod held pending.
    let out = dev(&["stop", "scheduler"])?;
    assert!(out.contains("stopped kube-scheduler"), "{out}");
    set_version(client, &ns, "during", "2").await?;
    let job = eventually(TIMEOUT, "the reindex Job of during to be made", || async {
        jobs.get_opt(&job_name("during")).await.ok().flatten()
    })
    .await?;
    all[1].job = job.uid();
    assert!(solr.collections().await?.contains(&all[1].collection(2)));
    assert_eq!(
        solr.aliases().await?.get(&all[1].alias),
        Some(&all[1].collection(1))
    );
    let out = dev(&["stop", "solr"])?;
    assert!(out.contains("stopped solr"), "{out}");
    // `before`: asks for version 2 with Solr down.
    set_version(client, &ns, "before", "2").await?;
    // The Job of `during` runs and succeeds while Solr is down.
    dev(&["start", "scheduler"])?;
    eventually(TIMEOUT, "the reindex Job of during to succeed", || async {
        let job = jobs.get_opt(&job_name("during")).await.ok()??;
        (job.status?.succeeded == Some(1)).then_some(())
    })
    .await?;
    for site in ["before", "during"] {
        wait_for(
            &indexes,
            site,
            TIMEOUT,
            "the index to say Solr is unreachable",
            degraded,
        )
        .await?;
    }
    let errors_before = reconcile_errors().await?;
    tokio::time::sleep(DOWN_FOR).await;
    let errors = reconcile_errors().await? - errors_before;
    for index in &all {
        check_down(client, &ns, index).await?;
    }
    assert!(
        errors < MAX_ERRORS,
        "the SolrIndex controller failed {errors} times in {DOWN_FOR:?} with Solr down: it does not back off"
    );

    let back = Timestamp::now();
    dev(&["start", "solr"])?;
    for index in &all {
        let v2 = index.collection(2);
        wait_for(
            &indexes,
            index.site,
            TIMEOUT,
            "the reindex to resume and finish once Solr is back",
            |i: Option<&SolrIndex>| settled_on(i, &v2),
        )
        .await?;
        check_resumed(client, &solr, &ns, index, back).await?;
    }

    let sites: Api<PloneSite> = Api::namespaced(client.clone(), &ns);
    for site in ["before", "during"] {
        sites.delete(site, &DeleteParams::default()).await?;
    }
    Ok(errors)
}

#[tokio::test]
async fn solr_down_during_a_reindex_holds_the_alias_backs_off_and_resumes_once_back()
-> anyhow::Result<()> {
    let client = testing::client().await?;
    let started = Instant::now();
    let result = scenario(&client).await;
    // Whatever happened, Solr and the scheduler run again for the tests after this one.
    let scheduler = dev(&["start", "scheduler"]);
    let solr = dev(&["start", "solr"]);
    let errors = result?;
    scheduler?;
    solr?;
    eprintln!(
        "Solr down during two reindexes (before the new collection, while the Job ran): \
         {errors} failed reconciles over {DOWN_FOR:?}; both resumed ({:?} in all)",
        started.elapsed()
    );
    mutu_e2e::fault_scenario_passed(
        "Solr down during a reindex (before the new collection, and while its Job runs): Degraded, alias and collections kept, backs off, resumes once back with one collection per version and the Job run once",
    );
    Ok(())
}
