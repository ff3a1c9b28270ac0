//! A hostile site against the shared Solr: with the Solr credentials the
//! operator gave its index (from the site's Secret), it tries to change the
//! configset every tenant's collection shares, the schema, another tenant's
//! collection; each attempt gets 403 and nothing of anyone changes, while the
//! site still searches and indexes its own collection.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams};
use mutu_api::SolrIndex;
use mutu_runtime::testing::{self, eventually};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(60);

/// The user name and password the operator stored in the Secret `secret`.
async fn site_credentials(
    client: &kube::Client,
    ns: &str,
    secret: &str,
) -> anyhow::Result<(String, String)> {
    let s = Api::<Secret>::namespaced(client.clone(), ns)
        .get(secret)
        .await?;
    let data = s.data.unwrap_or_default();
    let text = |k: &str| {
        data.get(k)
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            .ok_or_else(|| anyhow::anyhow!("Secret {ns}/{secret} has no {k}"))
    };
    Ok((text("username")?, text("password")?))
}

/// Raw HTTP against Solr as one user: the status and the body.
struct As {
    http: reqwest::Client,
    base: String,
    user: String,
    password: String,
}

impl As {
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, String)> {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "POST" => self.http.post(url),
            _ => self.http.get(url),
        };
        let req = req.basic_auth(&self.user, Some(&self.password));
        let req = match body {
            Some(b) => req
                .header("Content-Type", "application/json")
                .body(b.to_string()),
            None => req,
        };
        let rsp = req.send().await?;
        let status = rsp.status().as_u16();
        Ok((status, rsp.text().await.unwrap_or_default()))
    }

    /// Asserts that `method path` is refused with 403, and counts it.
    async fn refused(
        &self,
        case: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<()> {
        let (status, text) = self.call(method, path, body).await?;
        assert_eq!(
            status,
            403,
            "{case}: {method} {path} answered {status}: {}",
            text.chars().take(300).collect::<String>()
        );
        crate::count(case, &format!("Solr answered 403 to {method} {path}"));
        Ok(())
    }
}

pub async fn a_sites_solr_credentials_reach_only_its_own_collection() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let solr = mutu_e2e::solr_admin(&client).await?;
    let ns = testing::namespace(&client, "hostile-solr").await?;
    let other_ns = testing::namespace(&client, "hostile-solr-other").await?;
    let idx = mutu_e2e::ready_solr_index(&client, &ns, "web", "Delete").await?;
    let other = mutu_e2e::ready_solr_index(&client, &other_ns, "web", "Delete").await?;
    let status = idx.status.clone().unwrap_or_default();
    let alias = status.alias.clone().unwrap_or_default();
    let collection = status.collection.clone().unwrap_or_default();
    let other_collection = other
        .status
        .as_ref()
        .and_then(|s| s.collection.clone())
        .unwrap_or_default();
    assert!(!alias.is_empty() && !collection.is_empty() && !other_collection.is_empty());

    let (user, password) = site_credentials(&client, &ns, "web-solr").await?;
    let site = As {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?,
        base: solr.base().to_string(),
        user,
        password,
    };
    // Solr applies security changes through ZooKeeper: wait until the user searches.
    eventually(TIMEOUT, "the site's user to search its alias", || {
        let site = &site;
        let path = format!("/{alias}/select?q=*:*&rows=0&wt=json");
        async move {
            site.call("GET", &path, None)
                .await
                .ok()
                .filter(|(s, _)| *s == 200)
        }
    })
    .await?;

    // The configset every tenant's collection shares: no overlay, through
    // its own collection or its alias.
    let overlay = json!({"set-user-property": {"mutu.hostile": "x"}});
    site.refused(
        "a config overlay on the site's own collection",
        "POST",
        &format!("/{collection}/config"),
        Some(overlay.clone()),
    )
    .await?;
    site.refused(
        "a config overlay through the site's alias",
        "POST",
        &format!("/{alias}/config"),
        Some(overlay),
    )
    .await?;
    site.refused(
        "a request handler added through the config API",
        "POST",
        &format!("/{alias}/config"),
        Some(
            json!({"add-requesthandler": {"name": "/hostile", "class": "solr.DumpRequestHandler"}}),
        ),
    )
    .await?;
    // The configset is shared: an overlay would show through the other
    // tenant's collection.
    let overlay_of_other = read_overlay(&client, &solr, &other_collection).await?;
    assert!(
        !overlay_of_other.contains("mutu.hostile"),
        "the shared configset got the overlay: {overlay_of_other}"
    );

    // The schema API.
    site.refused(
        "a field added through the schema API",
        "POST",
        &format!("/{alias}/schema"),
        Some(json!({"add-field": {"name": "hostile", "type": "string"}})),
    )
    .await?;

    // Another tenant's collection: neither deleted nor read nor written.
    site.refused(
        "deleting another tenant's collection",
        "GET",
        &format!("/admin/collections?action=DELETE&name={other_collection}"),
        None,
    )
    .await?;
    assert!(
        solr.collections().await?.contains(&other_collection),
        "{other_collection} is gone"
    );
    site.refused(
        "reading another tenant's collection",
        "GET",
        &format!("/{other_collection}/select?q=*:*&wt=json"),
        None,
    )
    .await?;
    site.refused(
        "writing into another tenant's collection",
        "POST",
        &format!("/{other_collection}/update?commit=true"),
        Some(json!([{"UID": "hostile"}])),
    )
    .await?;
    site.refused(
        "listing the configsets",
        "GET",
        "/admin/configs?action=LIST",
        None,
    )
    .await?;
    assert_eq!(solr.count(&other_collection).await?, 0);

    // Its own index still works: update and select.
    let (status, body) = site
        .call(
            "POST",
            &format!("/{alias}/update?commit=true&wt=json"),
            Some(json!([{"UID": "own-1", "Title": "Conseil communal"}])),
        )
        .await?;
    assert_eq!(status, 200, "its own update: {body}");
    let (status, body) = site
        .call("GET", &format!("/{alias}/select?q=*:*&wt=json"), None)
        .await?;
    assert_eq!(status, 200, "its own select: {body}");
    let found: Value = serde_json::from_str(&body)?;
    assert_eq!(found["response"]["numFound"], json!(1), "{body}");

    for (ns, name) in [(&ns, "web"), (&other_ns, "web")] {
        Api::<SolrIndex>::namespaced(client.clone(), ns)
            .delete(name, &DeleteParams::default())
            .await?;
    }
    Ok(())
}

/// The config overlay of `collection`'s configset, read as the admin.
async fn read_overlay(
    client: &kube::Client,
    solr: &mutu_solr::Client,
    collection: &str,
) -> anyhow::Result<String> {
    let secret = Api::<Secret>::namespaced(client.clone(), "mutu-system")
        .get("solr-admin")
        .await?;
    let data = secret.data.unwrap_or_default();
    let text = |k: &str| {
        data.get(k)
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            .unwrap_or_default()
    };
    let admin = As {
        http: reqwest::Client::new(),
        base: solr.base().to_string(),
        user: text("username"),
        password: text("password"),
    };
    let (status, body) = admin
        .call(
            "GET",
            &format!("/{collection}/config/overlay?wt=json"),
            None,
        )
        .await?;
    assert_eq!(status, 200, "the admin reads the overlay: {body}");
    Ok(body)
}
