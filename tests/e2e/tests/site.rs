//! The PloneSite operator against the real control plane: sites become Ready
//! on their pool with replicas spread, are admitted only within the member's
//! entitlements and domains, upgrade only after the upgrade Job succeeded,
//! keep their data on deletion with Retain, stop with a suspended member, and
//! a fleet spreads evenly over the frontends.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use mutu_api::{Certificate, MemberTenant, PloneSite};
use mutu_e2e::{
    create_product, create_site, create_tenant_with, site_json, wait_ready, wait_site_condition,
};
use mutu_runtime::testing::{self, eventually, unique_name};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(90);

/// A product and a member entitled to `count` sites of it; returns (product, tenant namespace, domain).
async fn member_with_product(
    client: &Client,
    prefix: &str,
    count: i32,
) -> anyhow::Result<(String, String, String)> {
    let product = unique_name(&format!("{prefix}-p"));
    create_product(client, &product, json!({})).await?;
    let (_, ns, domain) = mutu_e2e::member_entitled_to(client, prefix, &product, count).await?;
    Ok((product, ns, domain))
}

async fn site_conditions(
    client: &Client,
    ns: &str,
    name: &str,
) -> anyhow::Result<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>> {
    let site = Api::<PloneSite>::namespaced(client.clone(), ns)
        .get(name)
        .await?;
    Ok(site.status.map(|s| s.conditions).unwrap_or_default())
}

fn instance_pods(pods: &[Pod], site: &str) -> Vec<Pod> {
    pods.iter()
        .filter(|p| p.labels().get("hosting.imio.be/site").map(String::as_str) == Some(site))
        .filter(|p| {
            p.labels()
                .get("app.kubernetes.io/component")
                .map(String::as_str)
                == Some("instance")
        })
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_site_becomes_ready_on_its_pool_with_replicas_on_different_nodes() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let (product, ns, domain) = member_with_product(&client, "ready", 1).await?;
    create_site(
        &client,
        site_json(&ns, "delib", &product, &[format!("deliberations.{domain}")]),
    )
    .await?;
    let site = wait_site_condition(&client, &ns, "delib", "Ready", "True", None, TIMEOUT).await?;
    let status = site.status.unwrap_or_default();
    assert_eq!(status.pool.as_deref(), Some("frontend"));
    assert_eq!(status.release.as_deref(), Some("1.0"));
    assert_eq!(status.url, Some(format!("https://deliberations.{domain}")));
    assert_eq!(status.ready_replicas, Some(2));
    assert!(!status.nodes.is_empty());
    assert!(
        status.nodes.iter().all(|n| n.starts_with("frontend-")),
        "{:?}",
        status.nodes
    );

    let pods = Api::<Pod>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await?;
    let instances = instance_pods(&pods.items, "delib");
    assert_eq!(instances.len(), 2);
    let nodes: BTreeSet<String> = instances
        .iter()
        .filter_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
        .collect();
    assert_eq!(nodes.len(), 2, "the two replicas share a node: {nodes:?}");
    for pod in &pods.items {
        let labels = pod.labels();
        assert_eq!(
            labels
                .get("app.kubernetes.io/managed-by")
                .map(String::as_str),
            Some("mutu")
        );
        assert!(
            labels.contains_key("app.kubernetes.io/instance")
                && labels.contains_key("app.kubernetes.io/component")
        );
    }
    let products: Api<mutu_api::Product> = Api::all(client.clone());
    eventually(TIMEOUT, "the product to count its ready site", || async {
        let status = products.get(&product).await.ok()?.status?;
        let ready = status.conditions.iter().find(|c| c.type_ == "Ready")?;
        (status.sites == Some(1)
            && status.sites_on_release == Some(1)
            && ready.message.contains("1 ready"))
        .then_some(())
    })
    .await?;
    let created = site_conditions(&client, &ns, "delib").await?;
    assert!(
        created
            .iter()
            .any(|c| c.type_ == "SiteCreated" && c.status == "True"),
        "the site-creation Job ran: {created:?}"
    );
    Ok(())
}

#[tokio::test]
async fn ingress_and_certificate_carry_exactly_the_hostnames() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let (product, ns, domain) = member_with_product(&client, "tls", 1).await?;
    let hosts = vec![format!("www.{domain}"), domain.clone()];
    create_site(&client, site_json(&ns, "web", &product, &hosts)).await?;
    wait_site_condition(&client, &ns, "web", "Ready", "True", None, TIMEOUT).await?;
    let ingress = Api::<Ingress>::namespaced(client.clone(), &ns)
        .get("web")
        .await?;
    let spec = ingress.spec.unwrap_or_default();
    let rule_hosts: Vec<String> = spec
        .rules
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| r.host)
        .collect();
    assert_eq!(rule_hosts, hosts);
    let tls = spec.tls.unwrap_or_default();
    assert_eq!(tls.len(), 1);
    assert_eq!(tls[0].hosts.clone().unwrap_or_default(), hosts);
    let cert = Api::<Certificate>::namespaced(client.clone(), &ns)
        .get("web-tls")
        .await?;
    assert_eq!(cert.spec.dns_names, hosts);
    assert_eq!(Some(cert.spec.secret_name), tls[0].secret_name.clone());
    Ok(())
}

#[tokio::test]
async fn sites_outside_the_entitlements_or_domains_are_refused_and_serve_nothing()
-> anyhow::Result<()> {
    let client = testing::client().await?;
    let (product, ns, domain) = member_with_product(&client, "adm", 3).await?;
    let (other_product, other_ns, other_domain) =
        member_with_product(&client, "adm-other", 1).await?;
    create_site(
        &client,
        site_json(
            &other_ns,
            "web",
            &other_product,
            &[format!("www.{other_domain}")],
        ),
    )
    .await?;
    wait_site_condition(&client, &other_ns, "web", "Ready", "True", None, TIMEOUT).await?;

    let cases = [
        (
            "foreign",
            product.clone(),
            format!("www.{other_domain}"),
            "ForeignHostname",
            other_domain.clone(),
        ),
        (
            "unentitled",
            other_product.clone(),
            format!("x.{domain}"),
            "NotEntitled",
            other_product.clone(),
        ),
    ];
    for (name, prod, host, reason, mentioned) in &cases {
        create_site(
            &client,
            site_json(&ns, name, prod, std::slice::from_ref(host)),
        )
        .await?;
        let site = wait_site_condition(&client, &ns, name, "Ready", "False", Some(reason), TIMEOUT)
            .await?;
        let message = site
            .status
            .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.message)
            .unwrap_or_default();
        assert!(message.contains(mentioned.as_str()), "{reason}: {message}");
    }
    // The refused sites count against the namespace's site quota (3), so an
    // entitled site still fits, and is served.
    create_site(
        &client,
        site_json(&ns, "first", &product, &[format!("first.{domain}")]),
    )
    .await?;
    wait_site_condition(&client, &ns, "first", "Ready", "True", None, TIMEOUT).await?;
    for name in ["foreign", "unentitled"] {
        assert!(
            Api::<Deployment>::namespaced(client.clone(), &ns)
                .get_opt(name)
                .await?
                .is_none(),
            "refused site {name} must serve nothing"
        );
        assert!(
            Api::<Ingress>::namespaced(client.clone(), &ns)
                .get_opt(name)
                .await?
                .is_none()
        );
    }
    Ok(())
}

/// A site whose name would name another site's Service (`delib-zeo` is the
/// Service of site `delib`'s ZEO server), or an invalid Service (`1web`), is
/// refused with what to change, and takes nothing from the first site.
#[tokio::test]
async fn a_site_named_like_another_sites_zeo_server_or_after_a_digit_is_refused_and_takes_nothing()
-> anyhow::Result<()> {
    let client = testing::client().await?;
    let (product, ns, domain) = member_with_product(&client, "name", 3).await?;
    create_site(
        &client,
        site_json(&ns, "delib", &product, &[format!("delib.{domain}")]),
    )
    .await?;
    wait_site_condition(&client, &ns, "delib", "Ready", "True", None, TIMEOUT).await?;
    let services = Api::<k8s_openapi::api::core::v1::Service>::namespaced(client.clone(), &ns);
    let zeo_selector = |s: k8s_openapi::api::core::v1::Service| {
        s.spec.and_then(|s| s.selector).unwrap_or_default()
    };
    let before = zeo_selector(services.get("delib-zeo").await?);

    for (name, says) in [
        ("delib-zeo", "names a Service of site \"delib\""),
        ("1web", "must start with a lower-case letter"),
    ] {
        create_site(
            &client,
            site_json(&ns, name, &product, &[format!("{name}.{domain}")]),
        )
        .await?;
        let site = wait_site_condition(
            &client,
            &ns,
            name,
            "Ready",
            "False",
            Some("InvalidName"),
            TIMEOUT,
        )
        .await?;
        let message = site
            .status
            .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.message)
            .unwrap_or_default();
        assert!(message.contains(says), "{name}: {message}");
        assert!(
            Api::<Deployment>::namespaced(client.clone(), &ns)
                .get_opt(name)
                .await?
                .is_none(),
            "refused site {name} must serve nothing"
        );
    }
    // The ZEO server's Service still selects the first site's ZEO server, and it stays Ready.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = zeo_selector(services.get("delib-zeo").await?);
    assert_eq!(after, before);
    assert_eq!(
        after.get("hosting.imio.be/site").map(String::as_str),
        Some("delib")
    );
    wait_site_condition(&client, &ns, "delib", "Ready", "True", None, TIMEOUT).await?;
    Ok(())
}

#[tokio::test]
async fn a_hostname_of_another_members_site_is_refused_to_the_later_site() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let product = unique_name("host-p");
    create_product(&client, &product, json!({})).await?;
    let (a, b) = (unique_name("host-a"), unique_name("host-b"));
    let shared = format!("{a}.test");
    // Both members claim the host through their domains: b's domain is a
    // sibling, so only the hostname collides.
    create_tenant_with(
        &client,
        &a,
        std::slice::from_ref(&shared),
        json!({ product.clone(): 1 }),
    )
    .await?;
    create_tenant_with(
        &client,
        &b,
        &[format!("{b}.test")],
        json!({ product.clone(): 1 }),
    )
    .await?;
    wait_ready(&client, &a).await?;
    wait_ready(&client, &b).await?;
    let host = format!("www.{shared}");
    create_site(
        &client,
        site_json(
            &format!("tenant-{a}"),
            "web",
            &product,
            std::slice::from_ref(&host),
        ),
    )
    .await?;
    wait_site_condition(
        &client,
        &format!("tenant-{a}"),
        "web",
        "Ready",
        "True",
        None,
        TIMEOUT,
    )
    .await?;
    // b tries to take a's hostname: refused (not its domain, and already served).
    create_site(
        &client,
        site_json(
            &format!("tenant-{b}"),
            "web",
            &product,
            std::slice::from_ref(&host),
        ),
    )
    .await?;
    let refused = wait_site_condition(
        &client,
        &format!("tenant-{b}"),
        "web",
        "Ready",
        "False",
        None,
        TIMEOUT,
    )
    .await?;
    let message = refused
        .status
        .map(|s| format!("{:?}", s.conditions))
        .unwrap_or_default();
    assert!(
        message.contains("HostnameTaken") || message.contains("ForeignHostname"),
        "{message}"
    );
    assert!(
        message.contains(&format!("tenant-{a}/web")),
        "the message names the first claimant: {message}"
    );
    // a keeps serving it.
    wait_site_condition(
        &client,
        &format!("tenant-{a}"),
        "web",
        "Ready",
        "True",
        None,
        TIMEOUT,
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_release_bump_runs_the_upgrade_job_before_the_instances_change() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let (product, ns, domain) = member_with_product(&client, "upg", 1).await?;
    create_site(
        &client,
        site_json(&ns, "delib", &product, &[format!("d.{domain}")]),
    )
    .await?;
    wait_site_condition(&client, &ns, "delib", "Ready", "True", None, TIMEOUT).await?;
    // Watch the upgrade Job from before the bump: it is deleted once the site
    // moved, so its completion is recorded as it happens.
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let watch_config = watcher::Config::default().fields("metadata.name=delib-upgrade-2-0");
    let completion = tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher(jobs, watch_config).applied_objects());
        while let Some(Ok(job)) = events.next().await {
            if let Some(done) = job.status.and_then(|s| s.completion_time) {
                return Some(done.0);
            }
        }
        None
    });
    let sites: Api<PloneSite> = Api::namespaced(client.clone(), &ns);
    sites
        .patch(
            "delib",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"release": "2.0"}})),
        )
        .await?;
    let upgraded = eventually(TIMEOUT, "the site to run release 2.0", || async {
        let s = sites.get("delib").await.ok()?;
        (s.status.as_ref()?.release.as_deref() == Some("2.0")).then_some(s)
    })
    .await?;
    assert_eq!(
        upgraded.status.and_then(|s| s.previous_release).as_deref(),
        Some("1.0")
    );

    let job_done = tokio::time::timeout(TIMEOUT, completion)
        .await
        .ok()
        .and_then(Result::ok)
        .flatten()
        .ok_or_else(|| anyhow::anyhow!("the upgrade Job delib-upgrade-2-0 never completed"))?;
    let new_rs = eventually(TIMEOUT, "a ReplicaSet of release 2.0", || async {
        let list = Api::<ReplicaSet>::namespaced(client.clone(), &ns)
            .list(&ListParams::default())
            .await
            .ok()?;
        list.items.into_iter().find(|rs| {
            rs.spec
                .template
                .as_ref()
                .and_then(|t| t.spec.as_ref())
                .is_some_and(|p| {
                    p.containers
                        .iter()
                        .any(|c| c.image.as_deref().is_some_and(|i| i.ends_with(":2.0")))
                })
        })
    })
    .await?;
    let created = new_rs
        .metadata
        .creation_timestamp
        .map(|t| t.0)
        .ok_or_else(|| anyhow::anyhow!("ReplicaSet without creation time"))?;
    assert!(
        created >= job_done,
        "instances moved to 2.0 ({created}) before the upgrade finished ({job_done})"
    );
    wait_site_condition(&client, &ns, "delib", "Ready", "True", None, TIMEOUT).await?;
    Ok(())
}

#[tokio::test]
async fn a_failing_upgrade_leaves_the_previous_release_serving() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let (product, ns, domain) = member_with_product(&client, "fail", 1).await?;
    create_site(
        &client,
        site_json(&ns, "delib", &product, &[format!("d.{domain}")]),
    )
    .await?;
    wait_site_condition(&client, &ns, "delib", "Ready", "True", None, TIMEOUT).await?;
    // In the test bed a release tagged "-broken" fails as soon as it runs.
    let sites: Api<PloneSite> = Api::namespaced(client.clone(), &ns);
    sites
        .patch(
            "delib",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"release": "2.0-broken"}})),
        )
        .await?;
    let site = wait_site_condition(
        &client,
        &ns,
        "delib",
        "Degraded",
        "True",
        Some("UpgradeFailed"),
        Duration::from_secs(120),
    )
    .await?;
    let status = site.status.unwrap_or_default();
    assert_eq!(
        status.release.as_deref(),
        Some("1.0"),
        "the site stays on its previous release"
    );
    let deployment = Api::<Deployment>::namespaced(client.clone(), &ns)
        .get("delib")
        .await?;
    let image = deployment
        .spec
        .template
        .spec
        .and_then(|p| p.containers.first().and_then(|c| c.image.clone()))
        .unwrap_or_default();
    assert!(
        image.ends_with(":1.0"),
        "instances must keep the previous release, run {image}"
    );
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone());
    assert_eq!(
        ready.as_deref(),
        Some("True"),
        "the previous release keeps serving"
    );
    mutu_e2e::fault_scenario_passed(
        "an upgrade Job that fails: the previous release keeps serving",
    );
    Ok(())
}

#[tokio::test]
async fn retain_keeps_the_data_volume_and_certificate_of_a_deleted_site() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let (product, ns, domain) = member_with_product(&client, "keep", 1).await?;
    create_site(
        &client,
        site_json(&ns, "docs", &product, &[format!("ged.{domain}")]),
    )
    .await?;
    wait_site_condition(&client, &ns, "docs", "Ready", "True", None, TIMEOUT).await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let claim = eventually(TIMEOUT, "the ZEO data claim to be bound", || async {
        let c = claims.get_opt("data-docs-zeo-0").await.ok()??;
        (c.status.as_ref()?.phase.as_deref() == Some("Bound")).then_some(c)
    })
    .await?;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
    eventually(TIMEOUT, "the site's certificate to be issued", || async {
        secrets.get_opt("docs-tls").await.ok()?.map(|_| ())
    })
    .await?;
    let sites: Api<PloneSite> = Api::namespaced(client.clone(), &ns);
    sites.delete("docs", &DeleteParams::default()).await?;
    eventually(TIMEOUT, "the site to be gone", || async {
        sites.get_opt("docs").await.ok()?.is_none().then_some(())
    })
    .await?;
    eventually(TIMEOUT, "its workloads to be gone", || async {
        Api::<Deployment>::namespaced(client.clone(), &ns)
            .get_opt("docs")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await?;
    let kept = claims.get("data-docs-zeo-0").await?;
    assert_eq!(
        kept.metadata.uid, claim.metadata.uid,
        "the same volume claim is kept"
    );
    assert!(kept.metadata.deletion_timestamp.is_none());
    assert!(
        Api::<Certificate>::namespaced(client.clone(), &ns)
            .get_opt("docs-tls")
            .await?
            .is_some()
    );
    // The certificate and key it issued stay too.
    let (crt, key, ca) = mutu_e2e::certs::secret_pems(&client, &ns, "docs-tls").await?;
    mutu_e2e::certs::verify(
        &crt,
        &key,
        &ca.unwrap_or_default(),
        &[format!("ged.{domain}")],
    )?;
    Ok(())
}

#[tokio::test]
async fn a_suspended_members_sites_stop_and_keep_their_data() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let (product, ns, domain) = member_with_product(&client, "stop", 1).await?;
    create_site(
        &client,
        site_json(&ns, "web", &product, &[format!("www.{domain}")]),
    )
    .await?;
    wait_site_condition(&client, &ns, "web", "Ready", "True", None, TIMEOUT).await?;
    let tenant = ns.trim_start_matches("tenant-").to_string();
    Api::<MemberTenant>::all(client.clone())
        .patch(
            &tenant,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"suspended": true}})),
        )
        .await?;
    wait_site_condition(
        &client,
        &ns,
        "web",
        "Ready",
        "False",
        Some("Suspended"),
        TIMEOUT,
    )
    .await?;
    eventually(TIMEOUT, "no instance pods left", || async {
        let pods = Api::<Pod>::namespaced(client.clone(), &ns)
            .list(&ListParams::default())
            .await
            .ok()?;
        instance_pods(&pods.items, "web").is_empty().then_some(())
    })
    .await?;
    let claim = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns)
        .get("data-web-zeo-0")
        .await?;
    assert!(
        claim.metadata.deletion_timestamp.is_none(),
        "suspension deletes no data"
    );
    Ok(())
}

#[tokio::test]
async fn a_hundred_sites_balance_across_the_three_frontends() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let (product, ns, domain) = member_with_product(&client, "fleet", 100).await?;
    Api::<mutu_api::Product>::all(client.clone())
        .patch(
            &product,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 1}})),
        )
        .await?;
    for i in 0..100 {
        create_site(
            &client,
            site_json(
                &ns,
                &format!("site-{i:03}"),
                &product,
                &[format!("s{i}.{domain}")],
            ),
        )
        .await?;
    }
    let sites: Api<PloneSite> = Api::namespaced(client.clone(), &ns);
    eventually(Duration::from_secs(240), "100 sites Ready", || async {
        let list = sites.list(&ListParams::default()).await.ok()?;
        let ready = list
            .items
            .iter()
            .filter(|s| {
                s.status.as_ref().is_some_and(|st| {
                    st.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                })
            })
            .count();
        (ready == 100).then_some(())
    })
    .await?;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await?;
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for pod in &pods.items {
        let component = pod
            .labels()
            .get("app.kubernetes.io/component")
            .cloned()
            .unwrap_or_default();
        if component == "instance" || component == "zeo" {
            let node = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default();
            *per_node.entry(node).or_default() += 1;
        }
    }
    assert_eq!(
        per_node.len(),
        3,
        "every frontend and only frontends: {per_node:?}"
    );
    assert!(
        per_node.keys().all(|n| n.starts_with("frontend-")),
        "{per_node:?}"
    );
    let total: usize = per_node.values().sum();
    let mean = total as f64 / 3.0;
    for (node, count) in &per_node {
        let deviation = (*count as f64 - mean).abs() / mean;
        assert!(
            deviation <= 0.2,
            "{node} runs {count} pods, {:.0}% off the mean {mean:.1}: {per_node:?}",
            deviation * 100.0
        );
    }
    Ok(())
}

#[tokio::test]
async fn delete_policy_removes_the_data_volume_and_certificate_with_the_site() -> anyhow::Result<()>
{
    let client = testing::client().await?;
    let (product, ns, domain) = member_with_product(&client, "purge", 1).await?;
    let mut site = site_json(&ns, "docs", &product, &[format!("ged.{domain}")]);
    site["spec"]["deletionPolicy"] = json!("Delete");
    create_site(&client, site).await?;
    wait_site_condition(&client, &ns, "docs", "Ready", "True", None, TIMEOUT).await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    eventually(TIMEOUT, "the ZEO data claim", || async {
        claims.get_opt("data-docs-zeo-0").await.ok()?.map(|_| ())
    })
    .await?;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
    eventually(TIMEOUT, "the site's certificate to be issued", || async {
        secrets.get_opt("docs-tls").await.ok()?.map(|_| ())
    })
    .await?;
    let sites: Api<PloneSite> = Api::namespaced(client.clone(), &ns);
    sites.delete("docs", &DeleteParams::default()).await?;
    eventually(
        TIMEOUT,
        "the site, its claim, its certificate and its key to be gone",
        || async {
            let site = sites.get_opt("docs").await.ok()?;
            let claim = claims.get_opt("data-docs-zeo-0").await.ok()?;
            let cert = Api::<Certificate>::namespaced(client.clone(), &ns)
                .get_opt("docs-tls")
                .await
                .ok()?;
            let secret = secrets.get_opt("docs-tls").await.ok()?;
            // A claim still protected by its (departing) pod may linger in Terminating.
            let claim_gone = claim.is_none_or(|c| c.metadata.deletion_timestamp.is_some());
            (site.is_none() && claim_gone && cert.is_none() && secret.is_none()).then_some(())
        },
    )
    .await?;
    Ok(())
}
