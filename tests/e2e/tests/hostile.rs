//! Hostile members: each case acts as a member's admin (impersonation through
//! the API server), tries one thing across the tenant boundary or against
//! data, and checks both the refusal (with what to change) and that nothing
//! of anyone was lost.

use std::time::Duration;

use k8s_openapi::api::networking::v1::Ingress;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use mutu_api::{Certificate, PloneSite};
use mutu_e2e::{
    create_product, create_site, create_tenant_with, member_admin, site_json, wait_ready,
    wait_site_condition,
};
use mutu_runtime::conditions;
use mutu_runtime::testing::{self, unique_name};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(120);

/// A member entitled to one site of `product`, with its site `web` on
/// `www.<tenant>.test`, Ready. Returns (tenant, namespace, hostname).
async fn member_with_web(
    client: &Client,
    prefix: &str,
    product: &str,
) -> anyhow::Result<(String, String, String)> {
    let tenant = unique_name(prefix);
    let domain = format!("{tenant}.test");
    create_tenant_with(
        client,
        &tenant,
        std::slice::from_ref(&domain),
        json!({ product: 1 }),
    )
    .await?;
    wait_ready(client, &tenant).await?;
    let ns = format!("tenant-{tenant}");
    let host = format!("www.{domain}");
    let mut site = site_json(&ns, "web", product, std::slice::from_ref(&host));
    site["spec"]["deletionPolicy"] = json!("Delete");
    create_site(client, site).await?;
    wait_site_condition(client, &ns, "web", "Ready", "True", None, TIMEOUT).await?;
    Ok((tenant, ns, host))
}

/// What a site serves: its status's hostnames, its Ingress's rules and its
/// Certificate's names.
async fn serving(client: &Client, ns: &str) -> anyhow::Result<[Vec<String>; 3]> {
    let site = Api::<PloneSite>::namespaced(client.clone(), ns)
        .get("web")
        .await?;
    let ingress = Api::<Ingress>::namespaced(client.clone(), ns)
        .get("web")
        .await?;
    let rules = ingress
        .spec
        .and_then(|s| s.rules)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| r.host)
        .collect();
    let cert = Api::<Certificate>::namespaced(client.clone(), ns)
        .get("web-tls")
        .await?;
    Ok([
        site.status.map(|s| s.hostnames).unwrap_or_default(),
        rules,
        cert.spec.dns_names,
    ])
}

async fn set_hostnames(client: &Client, ns: &str, hosts: &[&str]) -> anyhow::Result<()> {
    Api::<PloneSite>::namespaced(client.clone(), ns)
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"hostnames": hosts}})),
        )
        .await?;
    Ok(())
}

/// The site's `Degraded` condition once it is `status` for the current generation.
async fn degraded(
    client: &Client,
    ns: &str,
    status: &str,
) -> anyhow::Result<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    let api = Api::<PloneSite>::namespaced(client.clone(), ns);
    let site = testing::wait_for(
        &api,
        "web",
        TIMEOUT,
        &format!("Degraded={status}"),
        |s: Option<&PloneSite>| {
            s.is_some_and(|s| {
                let st = s.status.as_ref();
                st.and_then(|st| st.observed_generation) == s.metadata.generation
                    && st
                        .and_then(|st| conditions::find(&st.conditions, "Degraded"))
                        .is_some_and(|c| c.status == status)
            })
        },
    )
    .await?;
    site.status
        .and_then(|s| conditions::find(&s.conditions, "Degraded").cloned())
        .ok_or_else(|| anyhow::anyhow!("no Degraded condition"))
}

#[tokio::test]
async fn a_member_editing_another_members_hostname_into_its_ready_site_takes_nothing()
-> anyhow::Result<()> {
    let client = testing::client().await?;
    let product = unique_name("hostile-p");
    create_product(&client, &product, json!({})).await?;
    // The attacker's site is the older one: age gives no right to a name.
    let (attacker, a_ns, a_host) = member_with_web(&client, "hostile-a", &product).await?;
    let (victim, v_ns, v_host) = member_with_web(&client, "hostile-v", &product).await?;
    let before = serving(&client, &v_ns).await?;
    assert_eq!(
        before,
        [
            vec![v_host.clone()],
            vec![v_host.clone()],
            vec![v_host.clone()]
        ]
    );

    let as_attacker = member_admin(&attacker).await?;
    // The API server lets the member edit its own site...
    set_hostnames(&as_attacker, &a_ns, &[&a_host, &v_host]).await?;
    // ...and mutu refuses the change, naming the hostname and its owner.
    let refused = degraded(&client, &a_ns, "True").await?;
    assert_eq!(refused.reason, "ForeignHostname", "{refused:?}");
    for needle in [
        v_host.as_str(),
        &format!("served by site {v_ns}/web of member {victim}"),
        &format!("keeps serving {a_host}"),
    ] {
        assert!(
            refused.message.contains(needle),
            "{needle:?} not in {refused:?}"
        );
    }
    // Nothing moved: the attacker serves what it served, the victim too.
    assert_eq!(
        serving(&client, &a_ns).await?,
        [
            vec![a_host.clone()],
            vec![a_host.clone()],
            vec![a_host.clone()]
        ]
    );
    assert_eq!(serving(&client, &v_ns).await?, before);
    wait_site_condition(&client, &v_ns, "web", "Ready", "True", None, TIMEOUT).await?;
    wait_site_condition(&client, &a_ns, "web", "Ready", "True", None, TIMEOUT).await?;

    // A change is admitted as a whole: a valid new name beside the stolen one
    // is held back too.
    let new_host = format!("new.{attacker}.test");
    set_hostnames(&as_attacker, &a_ns, &[&new_host, &v_host]).await?;
    let refused = degraded(&client, &a_ns, "True").await?;
    assert!(refused.message.contains(&v_host), "{refused:?}");
    assert_eq!(serving(&client, &a_ns).await?[1], vec![a_host.clone()]);

    // Without the stolen name, the change is admitted and served.
    set_hostnames(&as_attacker, &a_ns, &[&new_host]).await?;
    let cleared = degraded(&client, &a_ns, "False").await?;
    assert_eq!(cleared.reason, "AsExpected");
    let now = serving(&client, &a_ns).await?;
    assert_eq!(now[0], vec![new_host.clone()]);
    assert_eq!(now[1], vec![new_host.clone()]);
    assert_eq!(now[2], vec![new_host.clone()]);
    assert_eq!(serving(&client, &v_ns).await?, before);
    Ok(())
}
