//! The members' portal in a real headless Chromium against `mutu portal` on
//! 127.0.0.1 and the real control plane. The browser sends the identity
//! headers that the authenticating proxy sends in production; the portal
//! trusts them from 127.0.0.1 only. Every page visited is kept as a
//! screenshot in `.mutu/test-artifacts/portal/` (or `$MUTU_TEST_ARTIFACTS/portal/`).

use std::path::PathBuf;
use std::time::Duration;

use kube::api::{Api, PostParams};
use mutu_api::provisioning::Decision;
use mutu_api::{PloneSite, ProvisioningRequest};
use mutu_e2e::browser::Browser;
use mutu_e2e::portal::Portal;
use mutu_e2e::{create_site, member_entitled_to_one, repo_root, site_json};
use mutu_runtime::testing::{self, eventually, unique_name};
use serde_json::json;

const SITE_TIMEOUT: Duration = Duration::from_secs(150);

fn artifacts() -> PathBuf {
    std::env::var_os("MUTU_TEST_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".mutu/test-artifacts"))
        .join("portal")
}

#[tokio::test]
async fn an_agent_asks_for_a_site_sees_it_ready_and_sees_nothing_of_another_member()
-> anyhow::Result<()> {
    let client = testing::client().await?;
    let shots = artifacts();
    let (a, ns_a, product, domain_a) = member_entitled_to_one(
        &client,
        "portal-a",
        json!({"provisioning": {"approval": "Auto"}}),
        json!({}),
    )
    .await?;
    // Another member, with a site of its own.
    let (b, ns_b, product_b, domain_b) =
        member_entitled_to_one(&client, "portal-b", json!({}), json!({})).await?;
    let secret_host = format!("secret.{domain_b}");
    create_site(
        &client,
        site_json(
            &ns_b,
            "delib",
            &product_b,
            std::slice::from_ref(&secret_host),
        ),
    )
    .await?;

    let portal = Portal::start().await?;
    let browser = Browser::start().await?;
    let agent = format!("agent@{a}.test");
    let group = format!("{a}-admins");
    browser.identify(&agent, &[group.as_str()]).await?;

    // Home sends a member's agent to their sites.
    browser.goto(&format!("{}/", portal.url)).await?;
    let text = browser
        .wait_text("Mes sites", Duration::from_secs(10))
        .await?;
    assert!(
        browser
            .url()
            .await?
            .ends_with(&format!("/membres/{a}/sites")),
        "{text}"
    );
    assert!(text.contains("pas encore de site"), "{text}");
    browser.screenshot(&shots, "01-mes-sites-vide").await?;

    // The form: the product from the entitlements, a hostname under the domain.
    browser.click("a[href$='/demander']").await?;
    browser
        .wait_text("Adresse du site", Duration::from_secs(10))
        .await?;
    browser.screenshot(&shots, "02-demander-un-site").await?;
    let host = format!("www.{domain_a}");
    browser.fill("#adresse", &host).await?;
    browser.click("button[type=submit]").await?;
    browser
        .wait_text("Vérification", Duration::from_secs(10))
        .await?;
    browser.screenshot(&shots, "03-demande-envoyee").await?;
    let text = browser
        .wait_text("votre site est en ligne", SITE_TIMEOUT)
        .await?;
    assert!(text.contains("approuvée automatiquement"), "{text}");
    assert!(text.contains(&host), "{text}");
    browser.screenshot(&shots, "04-site-en-ligne").await?;

    // The site exists, created as asked, and is listed as online.
    let sites: Api<PloneSite> = Api::namespaced(client.clone(), &ns_a);
    let site = sites.get(&product).await?;
    assert_eq!(site.spec.hostnames, vec![host.clone()]);
    browser
        .goto(&format!("{}/membres/{a}/sites", portal.url))
        .await?;
    let text = browser
        .wait_text("En ligne", Duration::from_secs(10))
        .await?;
    assert!(text.contains(&host), "{text}");
    // The certificate's expiry, once it is issued.
    browser
        .wait_text("expire le", Duration::from_secs(60))
        .await?;
    browser.screenshot(&shots, "05-mes-sites").await?;

    // Another member's pages, by editing the URL: refused by RBAC, nothing shown.
    for path in [
        format!("/membres/{b}/sites"),
        format!("/membres/{b}/demander"),
        format!("/membres/{b}/demandes/delib"),
    ] {
        browser.goto(&format!("{}{path}", portal.url)).await?;
        let text = browser
            .wait_text("Accès refusé", Duration::from_secs(10))
            .await?;
        assert!(
            !text.contains(&secret_host),
            "{path} shows {secret_host}: {text}"
        );
    }
    browser.screenshot(&shots, "06-autre-membre-refuse").await?;
    let requests_b: Api<ProvisioningRequest> = Api::namespaced(client.clone(), &ns_b);
    assert!(requests_b.list(&Default::default()).await?.items.is_empty());

    // A hostname of another member's domain: the reason, in French.
    let (c, ns_c, _, domain_c) = member_entitled_to_one(
        &client,
        "portal-c",
        json!({"provisioning": {"approval": "Auto"}}),
        json!({}),
    )
    .await?;
    browser
        .identify(
            &format!("agent@{c}.test"),
            &[format!("{c}-admins").as_str()],
        )
        .await?;
    browser
        .goto(&format!("{}/membres/{c}/demander", portal.url))
        .await?;
    browser
        .wait_text("Adresse du site", Duration::from_secs(10))
        .await?;
    let foreign = format!("www.{domain_b}");
    browser.fill("#adresse", &foreign).await?;
    browser.click("button[type=submit]").await?;
    let text = browser
        .wait_text("n'appartient pas aux domaines", Duration::from_secs(30))
        .await?;
    assert!(text.contains(&foreign), "{text}");
    assert!(
        text.contains(&domain_c),
        "names the member's domains: {text}"
    );
    browser.screenshot(&shots, "07-adresse-etrangere").await?;
    let sites_c: Api<PloneSite> = Api::namespaced(client.clone(), &ns_c);
    assert!(sites_c.list(&Default::default()).await?.items.is_empty());

    browser.quit().await;
    Ok(())
}

#[tokio::test]
async fn an_approver_approves_a_pending_request_in_the_portal() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let shots = artifacts();
    let (_, ns, product, domain) =
        member_entitled_to_one(&client, "portal-m", json!({}), json!({})).await?;
    let requests: Api<ProvisioningRequest> = Api::namespaced(client.clone(), &ns);
    let body = json!({
        "apiVersion": "hosting.imio.be/v1alpha1", "kind": "ProvisioningRequest",
        "metadata": {"name": "delib", "namespace": ns},
        "spec": {"product": product, "hostnames": [format!("d.{domain}")],
                 "comment": "Séances du conseil en ligne"},
    });
    requests
        .create(&PostParams::default(), &serde_json::from_value(body)?)
        .await?;
    eventually(
        Duration::from_secs(30),
        "the request to wait for an approver",
        || {
            let requests = requests.clone();
            async move {
                let r = requests.get("delib").await.ok()?;
                let status = r.status?;
                mutu_runtime::conditions::is_true(&status.conditions, "Validated").then_some(())
            }
        },
    )
    .await?;

    let portal = Portal::start().await?;
    let browser = Browser::start().await?;
    let approver = unique_name("approbateur");
    browser.identify(&approver, &["mutu-approvers"]).await?;
    browser
        .goto(&format!("{}/approbations", portal.url))
        .await?;
    let text = browser
        .wait_text(&format!("{ns}/delib"), Duration::from_secs(10))
        .await?;
    assert!(text.contains("Séances du conseil en ligne"), "{text}");
    browser.screenshot(&shots, "08-approbations").await?;
    browser
        .click(&format!(
            "form[action='/approbations/{ns}/delib'] button:not(.deny)"
        ))
        .await?;
    browser
        .wait_text("approuvée", Duration::from_secs(10))
        .await?;
    browser.screenshot(&shots, "09-approuvee").await?;
    let r = requests.get("delib").await?;
    let status = r.status.unwrap_or_default();
    assert_eq!(status.decision, Some(Decision::Approved));
    assert_eq!(status.decided_by.as_deref(), Some(approver.as_str()));

    // A member's agent gets no approvals page.
    browser
        .identify("agent@elsewhere.test", &["elsewhere-admins"])
        .await?;
    browser
        .goto(&format!("{}/approbations", portal.url))
        .await?;
    browser
        .wait_text("réservée aux approbateurs", Duration::from_secs(10))
        .await?;
    browser.quit().await;
    Ok(())
}

#[tokio::test]
async fn identity_headers_from_anyone_but_the_proxy_are_refused() -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let portal = Portal::start().await?;
    let port = portal
        .url
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_string();
    // From 127.0.0.2, another address of the loopback: not the proxy.
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind("127.0.0.2:0".parse()?)?;
    let mut stream = socket.connect(format!("127.0.0.1:{port}").parse()?).await?;
    stream
        .write_all(b"GET /approbations HTTP/1.0\r\nX-Forwarded-User: admin\r\nX-Forwarded-Groups: mutu-approvers\r\n\r\n")
        .await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    assert!(
        answer.starts_with("HTTP/1.0 401") || answer.starts_with("HTTP/1.1 401"),
        "{answer}"
    );
    assert!(answer.contains("connexion de la coopérative"), "{answer}");
    Ok(())
}
