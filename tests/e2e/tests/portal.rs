//! The members' portal in a real headless Chromium against `mutu portal` on
//! 127.0.0.1 and the real control plane. The browser sends the identity
//! headers that the authenticating proxy sends in production; the portal
//! trusts them from 127.0.0.1 only. The agent's pages are seen in French (the
//! browser's language), then in German (the language switch), the approver's
//! in German (the browser's language); a request is made with the keyboard
//! alone. Every page visited is checked ([`Browser::audit`]: its language, no
//! text without translation, no serious or critical violation of axe-core's
//! accessibility rules) and kept as a screenshot in
//! `.mutu/test-artifacts/portal/` (or `$MUTU_TEST_ARTIFACTS/portal/`).

use std::path::PathBuf;
use std::time::Duration;

use kube::api::{Api, PostParams};
use mutu_api::provisioning::Decision;
use mutu_api::{PloneSite, ProvisioningRequest};
use mutu_e2e::browser::{Browser, Key};
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
    browser.audit(&shots, "01-mes-sites-vide", "fr").await?;

    // The form, with the keyboard alone: the skip link, the member's pages,
    // then each field in order, and Enter on the button.
    browser.tab_to("a:Aller au contenu").await?;
    browser.press(&[Key::Enter]).await?;
    browser.tab_to("a:Mes sites").await?;
    browser.tab_to("a:Demander un site").await?;
    browser.press(&[Key::Enter]).await?;
    browser
        .wait_text("Adresse du site", Duration::from_secs(10))
        .await?;
    browser.audit(&shots, "02-demander-un-site", "fr").await?;
    let host = format!("www.{domain_a}");
    browser.tab_to("a:Aller au contenu").await?;
    browser.press(&[Key::Enter]).await?;
    browser.tab_to("a:Mes sites").await?;
    browser.tab_to("a:Demander un site").await?;
    browser.tab_to("#produit").await?;
    browser.tab_to("#adresse").await?;
    browser.type_text(&host).await?;
    browser.tab_to("#alias").await?;
    browser.tab_to("#langue").await?;
    browser.tab_to("#commentaire").await?;
    browser.type_text("Le site de la commune").await?;
    browser.tab_to("button:Envoyer la demande").await?;
    browser.press(&[Key::Enter]).await?;
    browser
        .wait_text("Vérification", Duration::from_secs(10))
        .await?;
    // The request, as typed.
    let requests_a: Api<ProvisioningRequest> = Api::namespaced(client.clone(), &ns_a);
    let made = requests_a.list(&Default::default()).await?.items;
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(made[0].spec.hostnames, vec![host.clone()]);
    assert_eq!(
        made[0].spec.comment.as_deref(),
        Some("Le site de la commune")
    );
    browser.audit(&shots, "03-demande-envoyee", "fr").await?;
    let text = browser
        .wait_text("votre site est en ligne", SITE_TIMEOUT)
        .await?;
    assert!(text.contains("approuvée automatiquement"), "{text}");
    assert!(text.contains(&host), "{text}");
    browser.audit(&shots, "04-site-en-ligne", "fr").await?;

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
    browser.audit(&shots, "05-mes-sites", "fr").await?;

    // Another member's pages, by editing the URL: refused by RBAC, nothing shown.
    for (i, path) in [
        format!("/membres/{b}/sites"),
        format!("/membres/{b}/demander"),
        format!("/membres/{b}/demandes/delib"),
    ]
    .iter()
    .enumerate()
    {
        browser.goto(&format!("{}{path}", portal.url)).await?;
        let text = browser
            .wait_text("Accès refusé", Duration::from_secs(10))
            .await?;
        assert!(
            !text.contains(&secret_host),
            "{path} shows {secret_host}: {text}"
        );
        browser
            .audit(&shots, &format!("06-autre-membre-refuse-{}", i + 1), "fr")
            .await?;
    }
    let requests_b: Api<ProvisioningRequest> = Api::namespaced(client.clone(), &ns_b);
    assert!(requests_b.list(&Default::default()).await?.items.is_empty());

    // In German, with the switch every page has: a hostname of another
    // member's domain, and the reason.
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
    browser.click("a[hreflang='de']").await?;
    browser
        .wait_text("Adresse der Website", Duration::from_secs(10))
        .await?;
    browser.audit(&shots, "07-website-beantragen", "de").await?;
    let foreign = format!("www.{domain_b}");
    browser.fill("#adresse", &foreign).await?;
    browser.click("button[type=submit]").await?;
    let text = browser
        .wait_text("gehört nicht zu den Domains", Duration::from_secs(30))
        .await?;
    assert!(text.contains(&foreign), "{text}");
    assert!(
        text.contains(&domain_c),
        "names the member's domains: {text}"
    );
    browser.audit(&shots, "08-fremde-adresse", "de").await?;
    // The language chosen stays (a cookie) on the pages that follow.
    browser
        .goto(&format!("{}/membres/{c}/sites", portal.url))
        .await?;
    browser
        .wait_text("noch keine Website", Duration::from_secs(10))
        .await?;
    browser.audit(&shots, "09-meine-websites", "de").await?;
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
    // An approver of the German-speaking Community: the pages in German.
    let browser = Browser::start_in("de-BE,de,fr").await?;
    let approver = unique_name("approbateur");
    browser.identify(&approver, &["mutu-approvers"]).await?;
    browser
        .goto(&format!("{}/approbations", portal.url))
        .await?;
    let text = browser
        .wait_text(&format!("{ns}/delib"), Duration::from_secs(10))
        .await?;
    assert!(text.contains("Séances du conseil en ligne"), "{text}");
    assert!(text.contains("Zu genehmigende Anträge"), "{text}");
    browser.audit(&shots, "10-genehmigungen", "de").await?;
    browser
        .click(&format!(
            "form[action='/approbations/{ns}/delib'] button:not(.deny)"
        ))
        .await?;
    browser
        .wait_text(
            &format!("Antrag {ns}/delib genehmigt."),
            Duration::from_secs(10),
        )
        .await?;
    browser.audit(&shots, "11-genehmigt", "de").await?;
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
        .wait_text(
            "den Genehmigungsberechtigten der Genossenschaft vorbehalten",
            Duration::from_secs(10),
        )
        .await?;
    browser
        .audit(&shots, "12-nur-genehmigungsberechtigte", "de")
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
