//! Certificates against the real control plane and the real ACME server
//! (Pebble, with real HTTP-01 validation against the operator's solver):
//! chains that verify with exactly the requested names, renewal, re-issue of
//! a lost or tampered Secret, refusal of a member's foreign names without any
//! order, a burst held within a small rate-limit budget, and sites' TLS.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use mutu_api::{Certificate, CertificateIssuer};
use mutu_e2e::certs::{
    certificate_json, condition, create_certificate, openssl, pebble_root, scratch, secret_pems,
    verify, wait_certificate,
};
use mutu_e2e::{create_tenant, wait_ready};
use mutu_runtime::testing::{self, eventually, unique_name};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(90);

fn names(prefix: &str, domain: &str) -> Vec<String> {
    vec![format!("{prefix}.{domain}"), domain.to_string()]
}

#[tokio::test]
async fn the_internal_ca_issues_a_chain_that_verifies_against_ca_crt() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let ns = testing::namespace(&client, "cert-ca").await?;
    let domain = format!("{}.example.be", unique_name("ca"));
    let want = names("www", &domain);
    create_certificate(&client, certificate_json(&ns, "www", &want, "dev-ca")).await?;
    let cert = wait_certificate(
        &client,
        &ns,
        "www",
        TIMEOUT,
        "the dev-ca certificate",
        |_| true,
    )
    .await?;
    let (crt, key, ca) = secret_pems(&client, &ns, "www-tls").await?;
    let ca = ca.ok_or_else(|| anyhow::anyhow!("an internal CA certificate comes with ca.crt"))?;
    verify(&crt, &key, &ca, &want)?;
    let status = cert.status.unwrap_or_default();
    let (nb, na, renewal) = (
        status.not_before.map(|t| t.0),
        status.not_after.map(|t| t.0),
        status.renewal_time.map(|t| t.0),
    );
    let (Some(nb), Some(na), Some(renewal)) = (nb, na, renewal) else {
        anyhow::bail!("status lacks notBefore, notAfter or renewalTime");
    };
    // 90 days by default, renewed at two thirds (less at most an hour of jitter).
    assert_eq!(
        na.duration_since(nb),
        SignedDuration::from_hours(24 * 90) + SignedDuration::from_secs(60)
    );
    let two_thirds = nb + na.duration_since(nb).mul_f64(2.0 / 3.0);
    assert!(
        renewal <= two_thirds && renewal >= two_thirds - SignedDuration::from_hours(1),
        "{renewal}"
    );
    Ok(())
}

#[tokio::test]
async fn the_acme_server_issues_after_real_http01_validation() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let ns = testing::namespace(&client, "cert-acme").await?;
    let domain = format!("{}.example.be", unique_name("acme"));
    let want = names("www", &domain);
    create_certificate(&client, certificate_json(&ns, "www", &want, "dev-acme")).await?;
    let cert = wait_certificate(
        &client,
        &ns,
        "www",
        TIMEOUT,
        "the dev-acme certificate",
        |_| true,
    )
    .await?;
    let (crt, key, _) = secret_pems(&client, &ns, "www-tls").await?;
    let root = pebble_root(&client).await?;
    verify(&crt, &key, &root, &want)?;
    let status = cert.status.unwrap_or_default();
    assert_eq!(
        status.recent_orders.len(),
        1,
        "one order: {:?}",
        status.recent_orders
    );
    assert!(status.order.is_none(), "no order left in progress");
    // The challenge route existed only while the order was pending.
    let challenge_routes = Api::<Ingress>::namespaced(client.clone(), "mutu-system")
        .list(&ListParams::default().labels("app.kubernetes.io/component=acme-challenge"))
        .await?
        .items
        .into_iter()
        .filter(|i| {
            i.annotations()
                .get("hosting.imio.be/certificate")
                .map(String::as_str)
                == Some(&format!("{ns}/www"))
        })
        .count();
    assert_eq!(
        challenge_routes, 0,
        "the challenge Ingress is removed after issuance"
    );
    Ok(())
}

/// The lifetime of a Ready certificate, from its status.
fn lifetime(cert: &Certificate) -> anyhow::Result<SignedDuration> {
    let status = cert.status.clone().unwrap_or_default();
    match (&status.not_before, &status.not_after) {
        (Some(from), Some(to)) => Ok(to.0.duration_since(from.0)),
        _ => anyhow::bail!("status lacks notBefore or notAfter: {status:?}"),
    }
}

#[tokio::test]
async fn an_issuers_acme_profile_chooses_the_certificates_lifetime() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let ns = testing::namespace(&client, "cert-profile").await?;
    let issuers = Api::<CertificateIssuer>::all(client.clone());
    let dev = issuers.get("dev-acme").await?;
    let mut acme = serde_json::to_value(dev.spec.acme.ok_or_else(|| anyhow::anyhow!("dev-acme"))?)?;
    let issuer = unique_name("shortlived");
    acme["accountKeySecretRef"] = json!({"name": format!("{issuer}-account")});
    acme["profile"] = json!("shortlived");
    let issuer_obj: CertificateIssuer = serde_json::from_value(json!({
        "apiVersion": mutu_api::API_VERSION, "kind": "CertificateIssuer",
        "metadata": {"name": issuer}, "spec": {"acme": acme},
    }))?;
    issuers.create(&PostParams::default(), &issuer_obj).await?;

    // Pebble picks a profile at random when an order names none: several
    // certificates per issuer, so that a profile left out would show.
    let domain = format!("{}.example.be", unique_name("profile"));
    for i in 0..3 {
        for (prefix, from) in [("short", issuer.as_str()), ("classic", "dev-acme")] {
            let name = format!("{prefix}{i}");
            let want = vec![format!("{name}.{domain}")];
            create_certificate(&client, certificate_json(&ns, &name, &want, from)).await?;
        }
    }
    for i in 0..3 {
        for (prefix, days) in [("short", 6), ("classic", 90)] {
            let name = format!("{prefix}{i}");
            let cert =
                wait_certificate(&client, &ns, &name, TIMEOUT, "the certificate", |_| true).await?;
            let hours = lifetime(&cert)?.as_secs() / 3600;
            assert!(
                (days * 24 - 1..=days * 24 + 1).contains(&hours),
                "{name}: {hours} h, not {days} days"
            );
        }
    }
    issuers.delete(&issuer, &DeleteParams::default()).await?;
    Ok(())
}

#[tokio::test]
async fn a_short_lived_certificate_renews_by_itself() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let ns = testing::namespace(&client, "cert-renew").await?;
    let want = vec![format!("{}.example.be", unique_name("short"))];
    let mut value = certificate_json(&ns, "short", &want, "dev-ca");
    value["spec"]["duration"] = json!("40s");
    create_certificate(&client, value).await?;
    // The same, keeping its key across renewals.
    let mut kept = certificate_json(&ns, "kept", &want, "dev-ca");
    kept["spec"]["duration"] = json!("40s");
    kept["spec"]["privateKey"] = json!({"rotationPolicy": "Never"});
    create_certificate(&client, kept).await?;
    let kept_first = wait_certificate(
        &client,
        &ns,
        "kept",
        TIMEOUT,
        "the kept-key certificate",
        |_| true,
    )
    .await?;
    let kept_after = kept_first.status.and_then(|s| s.not_after).map(|t| t.0);
    let kept_key = secret_pems(&client, &ns, "kept-tls").await?.1;
    let first = wait_certificate(
        &client,
        &ns,
        "short",
        TIMEOUT,
        "the first certificate",
        |_| true,
    )
    .await?;
    let first_after = first.status.and_then(|s| s.not_after).map(|t| t.0);
    let (first_pem, first_key, _) = secret_pems(&client, &ns, "short-tls").await?;
    // Renewed at two thirds of 40s (+ the minute of back-dating): well before it expires.
    let renewed = wait_certificate(
        &client,
        &ns,
        "short",
        TIMEOUT,
        "a renewed certificate",
        move |c| {
            c.status
                .as_ref()
                .and_then(|s| s.not_after.as_ref())
                .map(|t| t.0)
                > first_after
        },
    )
    .await?;
    let (crt, key, ca) = secret_pems(&client, &ns, "short-tls").await?;
    assert_ne!(crt, first_pem);
    assert_ne!(key, first_key, "a renewal makes a new key by default");
    verify(&crt, &key, &ca.clone().unwrap_or_default(), &want)?;
    wait_certificate(
        &client,
        &ns,
        "kept",
        TIMEOUT,
        "the kept-key certificate renewed",
        move |c| {
            c.status
                .as_ref()
                .and_then(|s| s.not_after.as_ref())
                .map(|t| t.0)
                > kept_after
        },
    )
    .await?;
    let (kept_crt, kept_key_now, _) = secret_pems(&client, &ns, "kept-tls").await?;
    assert_eq!(kept_key_now, kept_key, "rotationPolicy Never keeps the key");
    verify(&kept_crt, &kept_key_now, &ca.unwrap_or_default(), &want)?;
    // Issued (its notBefore is back-dated a minute) before the first expired.
    let status = renewed.status.unwrap_or_default();
    let issued_at = status
        .not_before
        .map(|t| t.0 + SignedDuration::from_secs(60));
    assert!(
        issued_at.is_some() && first_after.is_some() && issued_at < first_after,
        "renewed at {issued_at:?}, the first certificate expired at {first_after:?}"
    );
    // They would go on renewing every few seconds: stop them.
    for name in ["short", "kept"] {
        Api::<Certificate>::namespaced(client.clone(), &ns)
            .delete(name, &DeleteParams::default())
            .await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_deleted_or_tampered_secret_is_issued_again() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let ns = testing::namespace(&client, "cert-heal").await?;
    let want = vec![format!("{}.example.be", unique_name("heal"))];
    create_certificate(&client, certificate_json(&ns, "heal", &want, "dev-ca")).await?;
    wait_certificate(
        &client,
        &ns,
        "heal",
        TIMEOUT,
        "the first certificate",
        |_| true,
    )
    .await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);

    // Deleted: a new one comes back.
    let before = secrets.get("heal-tls").await?.uid();
    secrets.delete("heal-tls", &DeleteParams::default()).await?;
    let secrets2 = secrets.clone();
    eventually(TIMEOUT, "the deleted Secret to be issued again", || {
        let secrets = secrets2.clone();
        let before = before.clone();
        async move {
            let s = secrets.get_opt("heal-tls").await.ok()??;
            (s.uid() != before).then_some(())
        }
    })
    .await?;
    let (crt, key, ca) = secret_pems(&client, &ns, "heal-tls").await?;
    verify(&crt, &key, &ca.clone().unwrap_or_default(), &want)?;

    // Tampered: a key that does not match the certificate.
    let dir = scratch("tamper")?;
    let other = dir.join("other.key");
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        &other.display().to_string(),
    ])?;
    let other_key = std::fs::read_to_string(&other)?;
    let patch = json!({"stringData": {"tls.key": other_key}});
    secrets
        .patch("heal-tls", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let secrets3 = secrets.clone();
    let tampered = other_key.clone();
    eventually(TIMEOUT, "the tampered Secret to be issued again", || {
        let secrets = secrets3.clone();
        let tampered = tampered.clone();
        async move {
            let s = secrets.get_opt("heal-tls").await.ok()??;
            let key = s
                .data?
                .get("tls.key")
                .map(|v| String::from_utf8_lossy(&v.0).into_owned())?;
            (key != tampered).then_some(())
        }
    })
    .await?;
    let (crt2, key2, _) = secret_pems(&client, &ns, "heal-tls").await?;
    assert_ne!(crt2, crt, "a new certificate, not the old one put back");
    verify(&crt2, &key2, &ca.clone().unwrap_or_default(), &want)?;

    // A spec change: one more name.
    let mut more = want.clone();
    more.push(format!("www.{}", want[0]));
    let certs: Api<Certificate> = Api::namespaced(client.clone(), &ns);
    let patch = json!({"spec": {"dnsNames": more}});
    certs
        .patch("heal", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let names = more.clone();
    let secrets4 = secrets.clone();
    let ca4 = ca.clone().unwrap_or_default();
    eventually(TIMEOUT, "a certificate for the new names", || {
        let secrets = secrets4.clone();
        let (names, ca) = (names.clone(), ca4.clone());
        async move {
            let s = secrets.get_opt("heal-tls").await.ok()??;
            let data = s.data?;
            let text = |k: &str| {
                data.get(k)
                    .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            };
            verify(&text("tls.crt")?, &text("tls.key")?, &ca, &names).ok()
        }
    })
    .await?;
    let _ = std::fs::remove_dir_all(&dir);
    mutu_e2e::fault_scenario_passed(
        "a certificate's Secret deleted or tampered with: issued again",
    );
    Ok(())
}

#[tokio::test]
async fn a_members_certificate_for_a_foreign_domain_is_refused_without_any_order()
-> anyhow::Result<()> {
    let client = testing::client().await?;
    let tenant = unique_name("certmember");
    let own = format!("{tenant}.be");
    create_tenant(&client, &tenant, std::slice::from_ref(&own), "Delete").await?;
    wait_ready(&client, &tenant).await?;
    let ns = mutu_api::tenant_namespace(&tenant);
    let foreign = vec![format!("www.{own}"), "www.someone-else.be".to_string()];
    create_certificate(&client, certificate_json(&ns, "typo", &foreign, "dev-acme")).await?;
    let api: Api<Certificate> = Api::namespaced(client.clone(), &ns);
    let refused = testing::wait_for(
        &api,
        "typo",
        TIMEOUT,
        "the refusal",
        |c: Option<&Certificate>| {
            c.and_then(|c| condition(c, "Ready"))
                .is_some_and(|(s, r, _)| s == "False" && r == "ForeignDomain")
        },
    )
    .await?;
    let (_, _, message) = condition(&refused, "Ready").unwrap_or_default();
    assert!(
        message.contains("www.someone-else.be") && message.contains(&own),
        "the message names the foreign name and the member's domains: {message}"
    );
    // Still nothing ordered a while later.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = api.get("typo").await?;
    let status = later.status.unwrap_or_default();
    assert!(
        status.order.is_none() && status.recent_orders.is_empty(),
        "{status:?}"
    );
    assert!(
        Api::<Secret>::namespaced(client.clone(), &ns)
            .get_opt("typo-tls")
            .await?
            .is_none()
    );

    // Fixing the name lets it through.
    let fixed = json!({"spec": {"dnsNames": [format!("www.{own}")]}});
    api.patch("typo", &PatchParams::default(), &Patch::Merge(&fixed))
        .await?;
    wait_certificate(
        &client,
        &ns,
        "typo",
        TIMEOUT,
        "the corrected certificate",
        |_| true,
    )
    .await?;
    Api::<mutu_api::MemberTenant>::all(client.clone())
        .delete(&tenant, &DeleteParams::default())
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_burst_larger_than_the_budget_is_queued_and_never_exceeds_it() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let ns = testing::namespace(&client, "cert-burst").await?;
    // An issuer of its own on the same ACME server: 3 orders per 20 s.
    let dev = Api::<CertificateIssuer>::all(client.clone())
        .get("dev-acme")
        .await?;
    let mut acme = serde_json::to_value(dev.spec.acme.ok_or_else(|| anyhow::anyhow!("dev-acme"))?)?;
    let issuer = unique_name("burst");
    acme["accountKeySecretRef"] = json!({"name": format!("{issuer}-account")});
    acme["rateLimits"] = json!({
        "newOrders": {"limit": 3, "window": "20s"},
        "budgetPercent": 100,
    });
    let issuer_obj: CertificateIssuer = serde_json::from_value(json!({
        "apiVersion": mutu_api::API_VERSION, "kind": "CertificateIssuer",
        "metadata": {"name": issuer}, "spec": {"acme": acme},
    }))?;
    let issuers = Api::<CertificateIssuer>::all(client.clone());
    issuers.create(&PostParams::default(), &issuer_obj).await?;

    let count = 7;
    let domain = format!("{}.example.be", unique_name("burst"));
    for i in 0..count {
        let want = vec![format!("site{i}.{domain}")];
        create_certificate(
            &client,
            certificate_json(&ns, &format!("c{i}"), &want, &issuer),
        )
        .await?;
    }
    let api: Api<Certificate> = Api::namespaced(client.clone(), &ns);
    let api2 = api.clone();
    let queued = eventually(TIMEOUT, "a certificate waiting for budget", || {
        let api = api2.clone();
        async move {
            let list = api.list(&ListParams::default()).await.ok()?;
            list.items
                .iter()
                .find_map(|c| condition(c, "Issuing").filter(|(_, r, _)| r == "WaitingForBudget"))
        }
    })
    .await?;
    assert!(queued.2.contains("allows 3 per 20s"), "{queued:?}");

    let all = eventually(
        Duration::from_secs(150),
        "every certificate of the burst",
        || {
            let api = api.clone();
            async move {
                let list = api.list(&ListParams::default()).await.ok()?;
                let ready = list
                    .items
                    .iter()
                    .filter(|c| condition(c, "Ready").is_some_and(|(s, _, _)| s == "True"))
                    .count();
                (ready == count).then_some(list.items)
            }
        },
    )
    .await?;
    let mut orders: Vec<Timestamp> = all
        .iter()
        .flat_map(|c| {
            c.status
                .iter()
                .flat_map(|s| s.recent_orders.iter().map(|t| t.0))
        })
        .collect();
    orders.sort();
    assert_eq!(orders.len(), count, "one order per certificate: {orders:?}");
    for (i, a) in orders.iter().enumerate() {
        let within = orders[i..]
            .iter()
            .filter(|b| **b < *a + SignedDuration::from_secs(20))
            .count();
        assert!(
            within <= 3,
            "{within} orders within 20s from {a}: {orders:?}"
        );
    }
    for c in &all {
        let (crt, key, _) = secret_pems(&client, &ns, &c.spec.secret_name).await?;
        verify(&crt, &key, &pebble_root(&client).await?, &c.spec.dns_names)?;
    }
    issuers.delete(&issuer, &DeleteParams::default()).await?;
    mutu_e2e::fault_scenario_passed(
        "a burst of orders beyond the ACME budget: queued, the budget never exceeded",
    );
    Ok(())
}

#[tokio::test]
async fn a_sites_ingress_serves_the_certificate_issued_for_its_hostnames() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let tenant = unique_name("tlsmember");
    let own = format!("{tenant}.be");
    create_tenant(&client, &tenant, std::slice::from_ref(&own), "Delete").await?;
    wait_ready(&client, &tenant).await?;
    let ns = mutu_api::tenant_namespace(&tenant);
    let product = unique_name("tlsprod");
    mutu_e2e::create_product(&client, &product, json!({})).await?;
    let patch = json!({"spec": {"entitlements": {product.clone(): 1}}});
    Api::<mutu_api::MemberTenant>::all(client.clone())
        .patch(&tenant, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    let host = format!("www.{own}");
    let mut site = mutu_e2e::site_json(&ns, "web", &product, std::slice::from_ref(&host));
    site["spec"]["tls"] = json!({"issuer": "dev-acme"});
    mutu_e2e::create_site(&client, site).await?;
    let ingress = eventually(TIMEOUT, "the site's Ingress", || {
        let api = Api::<Ingress>::namespaced(client.clone(), &ns);
        async move { api.get_opt("web").await.ok()? }
    })
    .await?;
    let tls = ingress.spec.and_then(|s| s.tls).unwrap_or_default();
    let secret = tls
        .first()
        .and_then(|t| t.secret_name.clone())
        .ok_or_else(|| anyhow::anyhow!("the site's Ingress has no TLS Secret"))?;
    let cert_name = secret.clone();
    wait_certificate(
        &client,
        &ns,
        &cert_name,
        TIMEOUT,
        "the site's certificate",
        |_| true,
    )
    .await?;
    let (crt, key, _) = secret_pems(&client, &ns, &secret).await?;
    verify(&crt, &key, &pebble_root(&client).await?, &[host])?;
    Api::<mutu_api::MemberTenant>::all(client.clone())
        .delete(&tenant, &DeleteParams::default())
        .await?;
    Ok(())
}
