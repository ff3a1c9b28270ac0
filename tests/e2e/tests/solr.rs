//! The real Solr that `mutu dev up` starts, through mutu's Solr client: a
//! configset uploaded once, a collection and its alias, documents indexed and
//! counted through the alias, and a user restricted to one collection.

use std::collections::BTreeMap;
use std::path::Path;

use mutu_e2e::repo_root;
use mutu_runtime::testing::{self, unique_name};
use mutu_solr::{Client, Credentials};
use serde_json::json;

/// The admin client of the test bed's Solr.
async fn admin() -> anyhow::Result<Client> {
    mutu_e2e::solr_admin(&testing::client().await?).await
}

fn files_of(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Vec<u8>>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = format!(
            "{prefix}{}",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
        );
        if path.is_dir() {
            files_of(&path, &format!("{name}/"), out)?;
        } else {
            out.insert(name, std::fs::read(&path)?);
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_collection_behind_an_alias_is_searchable_and_closed_to_other_sites_users()
-> anyhow::Result<()> {
    let solr = admin().await?;
    let mut files = BTreeMap::new();
    files_of(
        &repo_root().join("operators/solr-index/configsets/plone"),
        "",
        &mut files,
    )?;
    let configset = unique_name("e2e-plone");
    solr.upload_configset(&configset, &files).await?;
    assert!(solr.configsets().await?.contains(&configset));
    // A configset version is never overwritten; Solr says why in its own words.
    let again = solr.upload_configset(&configset, &files).await.err();
    let message = again.map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains(&configset), "{message}");

    let site = unique_name("site").replace('-', "_");
    let other = unique_name("other").replace('-', "_");
    let collection = format!("{site}_v1");
    let other_collection = format!("{other}_v1");
    solr.create_collection(&collection, &configset).await?;
    solr.create_collection(&other_collection, &configset)
        .await?;
    solr.set_alias(&site, &collection).await?;
    let collections = solr.collections().await?;
    assert!(collections.contains(&collection) && collections.contains(&other_collection));
    assert_eq!(solr.aliases().await?.get(&site), Some(&collection));

    let docs = [
        json!({"UID": "a1", "Title": "Conseil communal", "portal_type": "Meeting", "path_string": "/Plone/a1", "allowedRolesAndUsers": ["Anonymous"]}),
        json!({"UID": "a2", "Title": "Délibération", "portal_type": "MeetingItem", "path_string": "/Plone/a2", "allowedRolesAndUsers": ["Manager"]}),
    ];
    solr.index(&site, &docs).await?;
    assert_eq!(
        solr.count(&site).await?,
        2,
        "both documents, through the alias"
    );
    assert_eq!(solr.count(&other_collection).await?, 0);

    // The site's own user: its collection (and the alias to it) and nothing else.
    let password = unique_name("pw");
    solr.set_user(&site, &password).await?;
    solr.set_user_roles(&site, &[&site]).await?;
    let all = solr
        .permissions()
        .await?
        .into_iter()
        .find(|p| p.name.as_deref() == Some("all"))
        .and_then(|p| p.index);
    solr.add_permission(&site, &[&collection], &["admin", &site], all)
        .await?;
    let user = solr.as_user(Credentials {
        user: site.clone(),
        password,
    });
    // Solr applies security changes through ZooKeeper, a moment later.
    let counted = testing::eventually(
        std::time::Duration::from_secs(20),
        "the new user's access to its collection",
        || {
            let user = user.clone();
            let site = site.clone();
            async move { user.count(&site).await.ok() }
        },
    )
    .await?;
    assert_eq!(counted, 2);
    let refused = user.count(&other_collection).await.err();
    assert_eq!(
        refused.as_ref().and_then(mutu_solr::Error::status),
        Some(403),
        "another site's collection: {refused:?}"
    );
    assert_eq!(
        user.collections().await.err().and_then(|e| e.status()),
        Some(403)
    );

    // Clean up: permissions (in one request, the highest index first, so that the others
    // stay where they are), user, alias, collections.
    let mut doomed: Vec<u32> = solr
        .permissions()
        .await?
        .into_iter()
        .filter(|p| {
            p.name
                .as_deref()
                .is_some_and(|n| mutu_solr::is_site_permission(&site, n))
        })
        .filter_map(|p| p.index)
        .collect();
    doomed.sort_unstable_by(|a, b| b.cmp(a));
    let commands: Vec<(&str, serde_json::Value)> = doomed
        .iter()
        .map(|i| ("delete-permission", serde_json::json!(i)))
        .collect();
    solr.edit_permissions("deleting the test's permissions", &commands)
        .await?;
    solr.delete_user(&site).await?;
    solr.delete_alias(&site).await?;
    solr.delete_collection(&collection).await?;
    solr.delete_collection(&other_collection).await?;
    assert!(!solr.collections().await?.contains(&collection));
    Ok(())
}

#[tokio::test]
async fn solr_refuses_anonymous_requests() -> anyhow::Result<()> {
    let solr = admin().await?;
    let anonymous = Client::new(solr.base(), None)?;
    let err = anonymous.collections().await.err();
    assert_eq!(err.and_then(|e| e.status()), Some(401));
    Ok(())
}
