//! A site's search on real nodes: Plone indexes its content into the site's
//! Solr alias through collective.solr and searches it, and a reindex into a
//! new configset version, with a writer running, leaves every document
//! findable without the site ever searching an empty collection.

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use mutu_api::{PloneSite, SolrIndex};
use mutu_e2e::real::{PloneContent, TIMEOUT, Writer, client, member, ready_site};
use mutu_e2e::solr_admin;
use mutu_runtime::conditions;
use mutu_runtime::testing::eventually;
use serde_json::json;

/// The ids (`getId`) of every document in `alias`.
async fn indexed(solr: &mutu_solr::Client, alias: &str) -> anyhow::Result<BTreeSet<String>> {
    let found = solr
        .select(alias, &[("q", "*:*"), ("fl", "getId"), ("rows", "100000")])
        .await?;
    Ok(found["response"]["docs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["getId"].as_str().map(str::to_string))
        .collect())
}

/// The ids of what the site's own search (plone.restapi's `@search`, which
/// collective.solr answers from Solr) finds for `words`.
async fn site_search(site: &PloneContent, words: &str) -> anyhow::Result<Vec<String>> {
    let answer = site
        .call(
            reqwest::Method::GET,
            &format!("/@search?SearchableText={words}&b_size=1000"),
            None,
        )
        .await?;
    anyhow::ensure!(
        answer.status == 200,
        "searching the site: {} {}",
        answer.status,
        String::from_utf8_lossy(&answer.body)
    );
    Ok(answer.json()["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["@id"].as_str())
        .filter_map(|u| u.rsplit('/').next().map(str::to_string))
        .collect())
}

async fn index_of(client: &Client, ns: &str, name: &str) -> anyhow::Result<SolrIndex> {
    Ok(Api::<SolrIndex>::namespaced(client.clone(), ns)
        .get(name)
        .await?)
}

/// What a searcher saw while the index moved: the fewest documents the alias
/// held, and the fewest of the first documents the site's search found.
struct Seen {
    alias_min: i64,
    site_min: usize,
    samples: usize,
    errors: Vec<String>,
}

#[tokio::test]
async fn a_sites_documents_are_found_in_its_solr_alias_and_still_after_a_reindex_with_a_writer_running()
-> anyhow::Result<()> {
    let client = client().await?;
    let (_, ns, domain) = member(&client, "rn-search", json!({"dev-plone-solr": 1})).await?;
    let host = format!("search.{domain}");
    ready_site(
        &client,
        &ns,
        "search",
        json!({"product": "dev-plone-solr", "hostnames": [host]}),
    )
    .await?;
    let first = eventually(TIMEOUT, "the site's index to be Ready", || async {
        let idx = index_of(&client, &ns, "search").await.ok()?;
        let status = idx.status.clone()?;
        conditions::is_true(&status.conditions, "Ready").then_some(status)
    })
    .await?;
    assert_eq!(first.configset_version.as_deref(), Some("1"));
    let alias = first
        .alias
        .clone()
        .ok_or_else(|| anyhow::anyhow!("a Ready index names no alias: {first:?}"))?;
    let solr = solr_admin(&client).await?;
    let site = Arc::new(PloneContent::of(&client, &ns, "search", &host).await?);
    site.wait_serving().await?;

    // Documents written through the site are in its Solr alias, each found
    // by its own words, by Solr and by the site's search.
    let first_docs: Vec<String> = (0..5).map(|i| format!("page-{i}")).collect();
    for (i, id) in first_docs.iter().enumerate() {
        site.create_document(
            id,
            &format!("<p>Délibération mutusearch numéro unique{i}word</p>"),
        )
        .await?;
    }
    for (i, id) in first_docs.iter().enumerate() {
        let found = solr
            .select(
                &alias,
                &[
                    ("q", &format!("SearchableText:unique{i}word")),
                    ("fl", "getId"),
                ],
            )
            .await?;
        let ids: Vec<&str> = found["response"]["docs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["getId"].as_str())
            .collect();
        assert_eq!(ids, vec![id.as_str()], "Solr's answer for unique{i}word");
        assert_eq!(
            site_search(&site, &format!("unique{i}word")).await?,
            vec![id.clone()],
            "the site's search for unique{i}word"
        );
    }

    // A searcher watches the alias and the site's search while a writer adds
    // pages and the index moves to configset version 2.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let watcher = {
        let (solr, site, alias) = (solr.clone(), site.clone(), alias.clone());
        tokio::spawn(async move {
            let mut seen = Seen {
                alias_min: i64::MAX,
                site_min: usize::MAX,
                samples: 0,
                errors: Vec::new(),
            };
            while !*stopped.borrow() {
                match solr.count(&alias).await {
                    Ok(n) => seen.alias_min = seen.alias_min.min(n),
                    Err(e) => seen.errors.push(format!("alias: {e}")),
                }
                match site_search(&site, "mutusearch").await {
                    Ok(ids) => seen.site_min = seen.site_min.min(ids.len()),
                    Err(e) => seen.errors.push(format!("site: {e}")),
                }
                seen.samples += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            seen
        })
    };
    let writer = Writer::start(site.clone(), "w");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    Api::<PloneSite>::namespaced(client.clone(), &ns)
        .patch(
            "search",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"solr": {"configsetVersion": "2"}}})),
        )
        .await?;
    let moved = eventually(
        TIMEOUT,
        "the index to be reindexed into version 2",
        || async {
            let idx = index_of(&client, &ns, "search").await.ok()?;
            let status = idx.status.clone()?;
            let reindexed = conditions::find(&status.conditions, "Reindexed")?;
            if reindexed.reason == "ReindexFailed" {
                return Some(Err(reindexed.message.clone()));
            }
            (reindexed.status == "True" && status.configset_version.as_deref() == Some("2"))
                .then_some(Ok(status))
        },
    )
    .await?
    .map_err(|why| anyhow::anyhow!("the reindex failed: {why}"))?;
    assert_ne!(
        moved.collection, first.collection,
        "a new collection serves"
    );
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let acknowledged = writer.stop().await?;
    let _ = stop.send(true);
    let seen = watcher.await?;

    // Never an empty (or partial) collection searched meanwhile.
    assert!(seen.samples >= 10, "too few searches: {}", seen.samples);
    assert!(
        seen.alias_min >= first_docs.len() as i64,
        "the alias held only {} documents at one point",
        seen.alias_min
    );
    assert!(
        seen.site_min >= first_docs.len(),
        "the site's search found only {} of the first pages at one point",
        seen.site_min
    );
    assert!(seen.errors.is_empty(), "searches failed: {:?}", seen.errors);

    // Every page the site acknowledged, before and during the reindex, is in
    // the new collection, and the site finds them.
    assert!(acknowledged.len() >= 5, "the writer wrote {acknowledged:?}");
    let wanted: BTreeSet<String> = first_docs.iter().chain(&acknowledged).cloned().collect();
    let missing = eventually(TIMEOUT, "every page in the new collection", || async {
        let found = indexed(&solr, &alias).await.ok()?;
        let missing: Vec<String> = wanted.difference(&found).cloned().collect();
        missing.is_empty().then_some(missing)
    })
    .await;
    assert!(
        missing.is_ok(),
        "pages missing from {}: {:?}",
        moved.collection.unwrap_or_default(),
        wanted
            .difference(&indexed(&solr, &alias).await?)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        site_search(&site, "unique3word").await?,
        vec!["page-3".to_string()]
    );
    mutu_e2e::real::free(&[&ns]);
    Ok(())
}

/// The ids `q` finds in `alias`, sorted.
async fn found(solr: &mutu_solr::Client, alias: &str, q: &str) -> anyhow::Result<Vec<String>> {
    let answer = solr
        .select(alias, &[("q", q), ("fl", "getId"), ("rows", "1000")])
        .await?;
    let mut ids: Vec<String> = answer["response"]["docs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["getId"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    Ok(ids)
}

#[tokio::test]
async fn a_restore_brings_the_sites_search_index_back_in_line_with_the_restored_content()
-> anyhow::Result<()> {
    use mutu_api::{Backup, Restore};

    let client = client().await?;
    let (_, ns, domain) =
        member(&client, "rn-search-restore", json!({"dev-plone-solr": 1})).await?;
    let host = format!("found.{domain}");
    ready_site(
        &client,
        &ns,
        "found",
        json!({"product": "dev-plone-solr", "hostnames": [host]}),
    )
    .await?;
    let status = eventually(TIMEOUT, "the site's index to be Ready", || async {
        let status = index_of(&client, &ns, "found").await.ok()?.status?;
        conditions::is_true(&status.conditions, "Ready").then_some(status)
    })
    .await?;
    let alias = status
        .alias
        .ok_or_else(|| anyhow::anyhow!("a Ready index names no alias"))?;
    let solr = solr_admin(&client).await?;
    let site = PloneContent::of(&client, &ns, "found", &host).await?;
    site.wait_serving().await?;

    // Pages, a backup of them, then changes the index follows.
    site.create_document("kept", "<p>Ordre du jour keptword</p>")
        .await?;
    site.create_document("changed", "<p>Version approuvée alphaword</p>")
        .await?;
    mutu_e2e::backup_site(&client, &ns, "before", "found").await?;
    super::data::completed::<Backup>(&client, &ns, "before").await?;
    site.set_text("changed", "<p>Version modifiée betaword</p>")
        .await?;
    site.delete("kept").await?;
    site.create_document("after", "<p>Écrit après la sauvegarde gammaword</p>")
        .await?;
    assert_eq!(
        found(&solr, &alias, "SearchableText:keptword").await?,
        Vec::<String>::new()
    );
    assert_eq!(
        found(&solr, &alias, "SearchableText:betaword").await?,
        ["changed"]
    );
    assert_eq!(
        found(&solr, &alias, "SearchableText:gammaword").await?,
        ["after"]
    );

    // The restore puts the content back, and the index with it.
    mutu_e2e::restore_site(&client, &ns, "undo", "found", "before").await?;
    super::data::completed::<Restore>(&client, &ns, "undo").await?;
    let restore = Api::<Restore>::namespaced(client.clone(), &ns)
        .get("undo")
        .await?;
    let complete = restore
        .status
        .clone()
        .unwrap_or_default()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Complete")
        .map(|c| c.message)
        .unwrap_or_default();
    assert!(
        complete.contains("search index is in line"),
        "the restore completed without its index: {complete}"
    );
    site.wait_serving().await?;
    assert!(site.document_text("kept").await?.is_some());
    assert_eq!(site.document_text("after").await?, None);
    // Solr holds what the site holds again: the deleted page is back, the
    // page written after the backup is gone, the text is the backed-up one.
    assert_eq!(
        found(&solr, &alias, "SearchableText:keptword").await?,
        ["kept"]
    );
    assert_eq!(
        found(&solr, &alias, "SearchableText:alphaword").await?,
        ["changed"]
    );
    assert_eq!(
        found(&solr, &alias, "SearchableText:betaword").await?,
        Vec::<String>::new()
    );
    assert_eq!(
        found(&solr, &alias, "SearchableText:gammaword").await?,
        Vec::<String>::new()
    );
    // And the site's own search says the same.
    assert_eq!(site_search(&site, "keptword").await?, ["kept"]);
    assert_eq!(site_search(&site, "gammaword").await?, Vec::<String>::new());
    mutu_e2e::real::free(&[&ns]);
    Ok(())
}
