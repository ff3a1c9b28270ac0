//! The SolrIndex operator against the real control plane and the real Solr:
//! an index gets its collection and alias (checked through Solr's own API)
//! and a user of its own who can search it and nothing else; Retain keeps
//! the collection on delete, Delete removes collection, alias and user.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, PostParams};
use mutu_api::SolrIndex;
use mutu_runtime::conditions;
use mutu_runtime::testing::{self, eventually, wait_for};
use mutu_solr::{Client, Credentials};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(60);

async fn admin(client: &kube::Client) -> anyhow::Result<Client> {
    mutu_e2e::solr_admin(client).await
}

/// The site's own Solr client, from the Secret the operator wrote.
async fn site_client(
    client: &kube::Client,
    admin: &Client,
    ns: &str,
    secret: &str,
) -> anyhow::Result<Client> {
    let s = Api::<Secret>::namespaced(client.clone(), ns)
        .get(secret)
        .await?;
    let data = s.data.unwrap_or_default();
    let text = |k: &str| {
        data.get(k)
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            .unwrap_or_default()
    };
    Ok(admin.as_user(Credentials {
        user: text("username"),
        password: text("password"),
    }))
}

#[tokio::test]
async fn an_index_gets_its_collection_alias_and_a_user_for_it_alone() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let solr = admin(&client).await?;
    let ns = testing::namespace(&client, "solr-index").await?;
    let idx = mutu_e2e::ready_solr_index(&client, &ns, "delib", "Delete").await?;
    let other = mutu_e2e::ready_solr_index(&client, &ns, "web", "Delete").await?;
    let status = idx.status.clone().unwrap_or_default();
    let alias = format!("{ns}.delib");
    let collection = format!("{alias}_v1");
    assert_eq!(status.alias.as_deref(), Some(alias.as_str()));
    assert_eq!(status.collection.as_deref(), Some(collection.as_str()));
    assert_eq!(status.configset_version.as_deref(), Some("1"));
    assert_eq!(status.documents, Some(0));
    // Checked through Solr's own API.
    assert!(solr.collections().await?.contains(&collection));
    assert_eq!(solr.aliases().await?.get(&alias), Some(&collection));
    assert!(
        solr.configsets()
            .await?
            .contains(&"mutu-plone-v1".to_string())
    );

    // A document indexed through the alias is found.
    let doc = json!({"UID": "u1", "Title": "Conseil communal du 3 mars", "portal_type": "Meeting", "allowedRolesAndUsers": ["Anonymous"]});
    solr.index(&alias, &[doc]).await?;
    assert_eq!(solr.count(&alias).await?, 1);

    // The site's user: its own index, not the other site's (Solr says 403).
    let user = site_client(&client, &solr, &ns, "delib-solr").await?;
    let counted = eventually(TIMEOUT, "the site's user to search its index", || {
        let user = user.clone();
        let alias = alias.clone();
        async move { user.count(&alias).await.ok() }
    })
    .await?;
    assert_eq!(counted, 1);
    let other_alias = other.status.and_then(|s| s.alias).unwrap_or_default();
    let refused = user.count(&other_alias).await.err();
    assert_eq!(
        refused.as_ref().and_then(mutu_solr::Error::status),
        Some(403),
        "{refused:?}"
    );

    // One collection for this index, not one per reconcile it went through.
    let ours = solr
        .collections()
        .await?
        .into_iter()
        .filter(|c| c.starts_with(&format!("{alias}_v")))
        .count();
    assert_eq!(ours, 1);

    // Delete removes the collection, the alias and the credentials.
    let api: Api<SolrIndex> = Api::namespaced(client.clone(), &ns);
    api.delete("delib", &DeleteParams::default()).await?;
    eventually(
        TIMEOUT,
        "the index, its collection and its alias to be gone",
        || {
            let (api, solr, alias, collection) =
                (api.clone(), solr.clone(), alias.clone(), collection.clone());
            async move {
                let gone = api.get_opt("delib").await.ok()?.is_none();
                let collections = solr.collections().await.ok()?;
                let aliases = solr.aliases().await.ok()?;
                (gone && !collections.contains(&collection) && !aliases.contains_key(&alias))
                    .then_some(())
            }
        },
    )
    .await?;
    assert!(
        Api::<Secret>::namespaced(client.clone(), &ns)
            .get_opt("delib-solr")
            .await?
            .is_none(),
        "the site's Solr credentials are removed with Delete"
    );
    api.delete("web", &DeleteParams::default()).await?;
    Ok(())
}

#[tokio::test]
async fn every_configset_version_mutu_ships_makes_a_working_collection() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let solr = admin(&client).await?;
    let ns = testing::namespace(&client, "solr-v2").await?;
    let idx: SolrIndex = serde_json::from_value(json!({
        "apiVersion": mutu_api::API_VERSION, "kind": "SolrIndex",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"configset": "plone", "configsetVersion": "2", "deletionPolicy": "Delete"},
    }))?;
    let api: Api<SolrIndex> = Api::namespaced(client.clone(), &ns);
    api.create(&PostParams::default(), &idx).await?;
    let ready = wait_for(
        &api,
        "web",
        TIMEOUT,
        "the version 2 index to be Ready",
        |i: Option<&SolrIndex>| {
            i.and_then(|i| i.status.as_ref())
                .is_some_and(|s| conditions::is_true(&s.conditions, "Ready"))
        },
    )
    .await?;
    let status = ready.status.unwrap_or_default();
    assert_eq!(status.configset_version.as_deref(), Some("2"));
    let alias = format!("{ns}.web");
    // Version 2 makes keywords searchable as text.
    let doc = json!({"UID": "k1", "Title": "Budget", "Subject": ["Finances communales"]});
    solr.index(&alias, &[doc]).await?;
    assert_eq!(solr.count(&alias).await?, 1);
    api.delete("web", &DeleteParams::default()).await?;
    Ok(())
}

#[tokio::test]
async fn retain_keeps_the_collection_of_a_deleted_index() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let solr = admin(&client).await?;
    let ns = testing::namespace(&client, "solr-retain").await?;
    mutu_e2e::ready_solr_index(&client, &ns, "docs", "Retain").await?;
    let collection = format!("{ns}.docs_v1");
    let api: Api<SolrIndex> = Api::namespaced(client.clone(), &ns);
    api.delete("docs", &DeleteParams::default()).await?;
    eventually(TIMEOUT, "the index to be gone", || {
        let api = api.clone();
        async move { api.get_opt("docs").await.ok()?.is_none().then_some(()) }
    })
    .await?;
    assert!(
        solr.collections().await?.contains(&collection),
        "Retain keeps {collection}"
    );
    assert_eq!(
        solr.aliases().await?.get(&format!("{ns}.docs")),
        Some(&collection)
    );
    Ok(())
}

#[tokio::test]
async fn an_unknown_configset_version_is_refused_with_the_versions_mutu_ships() -> anyhow::Result<()>
{
    let client = testing::client().await?;
    let ns = testing::namespace(&client, "solr-version").await?;
    let idx: SolrIndex = serde_json::from_value(json!({
        "apiVersion": mutu_api::API_VERSION, "kind": "SolrIndex",
        "metadata": {"name": "pst", "namespace": ns},
        "spec": {"configsetVersion": "9", "deletionPolicy": "Delete"},
    }))?;
    let api: Api<SolrIndex> = Api::namespaced(client.clone(), &ns);
    api.create(&PostParams::default(), &idx).await?;
    let refused = wait_for(
        &api,
        "pst",
        TIMEOUT,
        "the refusal",
        |i: Option<&SolrIndex>| {
            i.and_then(|i| i.status.as_ref())
                .and_then(|s| conditions::find(&s.conditions, "Ready").cloned())
                .is_some_and(|c| c.reason == "UnknownConfigset")
        },
    )
    .await?;
    let message = refused
        .status
        .and_then(|s| conditions::find(&s.conditions, "Ready").map(|c| c.message.clone()))
        .unwrap_or_default();
    assert!(message.contains("1, 2"), "{message}");
    api.delete("pst", &DeleteParams::default()).await?;
    Ok(())
}
