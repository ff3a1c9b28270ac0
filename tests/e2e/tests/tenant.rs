//! The MemberTenant operator against the real control plane: a member gets its
//! namespace, quota, network policies and admin access; members are isolated
//! from each other; deletion honours deletionPolicy; domains are claimed once.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use mutu_api::{MemberTenant, PloneSite};
use mutu_e2e::{can_i, create_tenant, wait_ready};
use mutu_runtime::conditions;
use mutu_runtime::testing::{self, eventually, unique_name, wait_for};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(60);

fn site(name: &str, ns: &str, hostname: &str) -> anyhow::Result<PloneSite> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "hosting.imio.be/v1alpha1",
        "kind": "PloneSite",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"product": "delib", "hostnames": [hostname]},
    }))?)
}

#[tokio::test]
async fn a_member_gets_its_namespace_quota_policies_and_admin_access() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let name = unique_name("mt");
    create_tenant(&client, &name, &[format!("{name}.test")], "Delete").await?;
    let tenant = wait_ready(&client, &name).await?;
    let ns = tenant.status.and_then(|s| s.namespace).unwrap_or_default();
    assert_eq!(ns, format!("tenant-{name}"));

    let namespace = Api::<Namespace>::all(client.clone()).get(&ns).await?;
    let labels = namespace.labels();
    assert_eq!(labels["hosting.imio.be/category"], "commune");
    assert_eq!(labels["hosting.imio.be/province"], "namur");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "mutu");

    let quota = Api::<ResourceQuota>::namespaced(client.clone(), &ns)
        .get("tenant-quota")
        .await?;
    let hard = quota.spec.and_then(|s| s.hard).unwrap_or_default();
    assert_eq!(
        hard["count/plonesites.hosting.imio.be"].0, "3",
        "delib 2 + web 1"
    );

    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await?;
    let mut names: Vec<String> = policies.items.iter().map(|p| p.name_any()).collect();
    names.sort();
    // One policy per purpose; the test bed's operator names no database nor
    // mail relay, and its Solr is the default URL's (namespace solr).
    assert_eq!(
        names,
        vec![
            "allow-dns",
            "allow-solr",
            "allow-tenant-traffic",
            "default-deny"
        ]
    );
    let solr = policies
        .items
        .iter()
        .find(|p| p.name_any() == "allow-solr")
        .and_then(|p| serde_json::to_value(&p.spec).ok())
        .unwrap_or_default();
    assert_eq!(
        solr["egress"][0]["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        "solr",
        "{solr}"
    );
    assert_eq!(solr["egress"][0]["ports"][0]["port"], 8983, "{solr}");

    let binding = Api::<RoleBinding>::namespaced(client.clone(), &ns)
        .get("tenant-admins")
        .await?;
    let subjects: Vec<String> = binding
        .subjects
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert!(
        subjects.contains(&format!("agent@{name}.test")),
        "{subjects:?}"
    );
    Ok(())
}

#[tokio::test]
async fn an_admin_manages_sites_in_their_namespace_and_nothing_else() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let (a, b) = (unique_name("rbac-a"), unique_name("rbac-b"));
    create_tenant(&client, &a, &[format!("{a}.test")], "Delete").await?;
    create_tenant(&client, &b, &[format!("{b}.test")], "Delete").await?;
    wait_ready(&client, &a).await?;
    wait_ready(&client, &b).await?;
    let (ns_a, ns_b) = (format!("tenant-{a}"), format!("tenant-{b}"));
    let agent = format!("agent@{a}.test");

    for (verb, resource) in [
        ("create", "plonesites.hosting.imio.be"),
        ("delete", "plonesites.hosting.imio.be"),
        ("create", "provisioningrequests.hosting.imio.be"),
        ("create", "backups.hosting.imio.be"),
        ("create", "restores.hosting.imio.be"),
        ("get", "secrets"),
        ("list", "certificates.hosting.imio.be"),
    ] {
        assert!(
            can_i(&agent, verb, resource, Some(&ns_a)),
            "{agent} cannot {verb} {resource} in {ns_a}"
        );
        assert!(
            !can_i(&agent, verb, resource, Some(&ns_b)),
            "{agent} can {verb} {resource} in {ns_b}"
        );
    }
    assert!(!can_i(
        &agent,
        "create",
        "membertenants.hosting.imio.be",
        None
    ));
    assert!(!can_i(
        &agent,
        "update",
        "membertenants.hosting.imio.be",
        None
    ));
    assert!(
        !can_i(&agent, "create", "secrets", Some(&ns_a)),
        "secrets are read-only for admins"
    );
    for verb in ["delete", "update", "patch"] {
        assert!(
            !can_i(&agent, verb, "backups.hosting.imio.be", Some(&ns_a)),
            "a member may {verb} a Backup (deleting its object deletes its data at the next prune)"
        );
    }
    assert!(!can_i(&agent, "delete", "namespaces", None));
    assert!(
        can_i(
            &agent,
            "get",
            &format!("membertenants.hosting.imio.be/{a}"),
            None
        ),
        "an admin reads their own MemberTenant"
    );
    assert!(
        !can_i(
            &agent,
            "get",
            &format!("membertenants.hosting.imio.be/{b}"),
            None
        ),
        "but not another member's"
    );
    assert!(!can_i(
        &agent,
        "list",
        "membertenants.hosting.imio.be",
        None
    ));
    assert!(
        can_i(&agent, "list", "products.hosting.imio.be", None),
        "the catalog"
    );
    assert!(
        !can_i(&agent, "list", "plonesites.hosting.imio.be", None),
        "no cluster-wide listing"
    );
    Ok(())
}

#[tokio::test]
async fn a_site_beyond_the_entitlements_is_refused_by_the_api_server() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let name = unique_name("quota");
    create_tenant(&client, &name, &[format!("{name}.test")], "Delete").await?;
    wait_ready(&client, &name).await?;
    let ns = format!("tenant-{name}");
    let sites: Api<PloneSite> = Api::namespaced(client.clone(), &ns);
    // Entitled to 3 sites in all (delib 2 + web 1).
    for i in 1..=3 {
        let s = site(&format!("site-{i}"), &ns, &format!("s{i}.{name}.test"))?;
        // The quota controller may need a moment to publish the quota's first usage.
        let mut last_error = String::new();
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            match sites.create(&PostParams::default(), &s).await {
                Ok(_) => break,
                Err(e) if tokio::time::Instant::now() < deadline => last_error = e.to_string(),
                Err(e) => anyhow::bail!(
                    "site-{i} within the quota was refused for {TIMEOUT:?}: {e} (before: {last_error})"
                ),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let fourth = site("site-4", &ns, &format!("s4.{name}.test"))?;
    let refused = sites.create(&PostParams::default(), &fourth).await;
    match refused {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{status:?}");
            assert!(
                status.message.contains("exceeded quota"),
                "{}",
                status.message
            );
            assert!(
                status.message.contains("count/plonesites.hosting.imio.be"),
                "{}",
                status.message
            );
        }
        other => panic!("the site beyond the entitlements was not refused: {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn retain_keeps_the_namespace_and_its_volumes_and_delete_removes_it() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let tenants: Api<MemberTenant> = Api::all(client.clone());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let (kept, gone) = (unique_name("retain"), unique_name("delete"));
    create_tenant(&client, &kept, &[format!("{kept}.test")], "Retain").await?;
    create_tenant(&client, &gone, &[format!("{gone}.test")], "Delete").await?;
    wait_ready(&client, &kept).await?;
    wait_ready(&client, &gone).await?;

    // Some data in the member that leaves.
    let claims: Api<PersistentVolumeClaim> =
        Api::namespaced(client.clone(), &format!("tenant-{kept}"));
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }))?;
    claims.create(&PostParams::default(), &claim).await?;
    wait_for(
        &claims,
        "data",
        TIMEOUT,
        "the claim to be bound",
        |c: Option<&PersistentVolumeClaim>| {
            c.and_then(|c| c.status.as_ref())
                .and_then(|s| s.phase.as_deref())
                == Some("Bound")
        },
    )
    .await?;

    tenants.delete(&kept, &DeleteParams::default()).await?;
    tenants.delete(&gone, &DeleteParams::default()).await?;
    eventually(TIMEOUT, "both tenants to be gone", || async {
        let a = tenants.get_opt(&kept).await.ok()?;
        let b = tenants.get_opt(&gone).await.ok()?;
        (a.is_none() && b.is_none()).then_some(())
    })
    .await?;

    let retained = namespaces.get(&format!("tenant-{kept}")).await?;
    assert!(
        retained.metadata.deletion_timestamp.is_none(),
        "Retain must keep the namespace"
    );
    assert_eq!(
        retained
            .annotations()
            .get("hosting.imio.be/retained-from-tenant"),
        Some(&kept)
    );
    let claim = claims.get("data").await?;
    assert_eq!(
        claim.status.and_then(|s| s.phase).as_deref(),
        Some("Bound"),
        "the volume is kept"
    );
    // Its quota and network isolation stay for the sites that may still run there, owned
    // by nothing (the garbage collector would take them with the tenant otherwise).
    let retained_ns = format!("tenant-{kept}");
    let quota = Api::<ResourceQuota>::namespaced(client.clone(), &retained_ns)
        .get("tenant-quota")
        .await?;
    assert!(
        quota
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), &retained_ns)
        .list(&Default::default())
        .await?
        .items;
    assert!(!policies.is_empty(), "the network policies are kept");
    for p in &policies {
        assert!(
            p.metadata
                .owner_references
                .clone()
                .unwrap_or_default()
                .is_empty(),
            "{:?} still has an owner",
            p.metadata.name
        );
    }

    eventually(
        TIMEOUT,
        "the Delete tenant's namespace to be gone",
        || async {
            namespaces
                .get_opt(&format!("tenant-{gone}"))
                .await
                .ok()?
                .is_none()
                .then_some(())
        },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn deleting_a_tenant_whose_namespace_is_already_gone_does_not_hang() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let tenants: Api<MemberTenant> = Api::all(client.clone());
    let name = unique_name("nsgone");
    create_tenant(&client, &name, &[format!("{name}.test")], "Delete").await?;
    wait_ready(&client, &name).await?;
    Api::<Namespace>::all(client.clone())
        .delete(&format!("tenant-{name}"), &DeleteParams::default())
        .await?;
    tenants.delete(&name, &DeleteParams::default()).await?;
    eventually(TIMEOUT, "the tenant to be gone", || async {
        tenants.get_opt(&name).await.ok()?.is_none().then_some(())
    })
    .await?;
    mutu_e2e::fault_scenario_passed(
        "a tenant whose namespace was deleted behind mutu's back: its deletion completes",
    );
    Ok(())
}

#[tokio::test]
async fn a_domain_claimed_by_an_earlier_tenant_is_refused_naming_it() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let tenants: Api<MemberTenant> = Api::all(client.clone());
    let (first, second) = (unique_name("dom-first"), unique_name("dom-second"));
    let shared = format!("{first}.test");
    create_tenant(&client, &first, std::slice::from_ref(&shared), "Delete").await?;
    wait_ready(&client, &first).await?;
    create_tenant(&client, &second, &[format!("www.{shared}")], "Delete").await?;

    let refused = wait_for(
        &tenants,
        &second,
        TIMEOUT,
        "the second tenant to be refused",
        |t: Option<&MemberTenant>| {
            t.and_then(|t| t.status.as_ref())
                .and_then(|s| conditions::find(&s.conditions, "Ready").cloned())
                .is_some_and(|c| c.reason == "DomainConflict")
        },
    )
    .await?;
    let ready = conditions::find(&refused.status.unwrap_or_default().conditions, "Ready")
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no Ready condition"))?;
    assert_eq!(ready.status, "False");
    assert!(
        ready.message.contains(&first),
        "the message must name the earlier tenant: {}",
        ready.message
    );
    assert!(ready.message.contains("spec.domains"), "{}", ready.message);
    let ns = Api::<Namespace>::all(client.clone())
        .get_opt(&format!("tenant-{second}"))
        .await?;
    assert!(ns.is_none(), "a refused tenant gets no namespace");

    // The first claimant keeps it, and is still Ready.
    wait_ready(&client, &first).await?;

    // Once the first releases the domain, the second is provisioned by itself.
    let release = json!({"spec": {"domains": [format!("other-{first}.test")]}});
    tenants
        .patch(&first, &PatchParams::default(), &Patch::Merge(&release))
        .await?;
    wait_ready(&client, &second).await?;
    Ok(())
}

#[tokio::test]
async fn suspending_a_member_says_so_and_deletes_nothing() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let tenants: Api<MemberTenant> = Api::all(client.clone());
    let name = unique_name("susp");
    create_tenant(&client, &name, &[format!("{name}.test")], "Delete").await?;
    wait_ready(&client, &name).await?;
    tenants
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"suspended": true}})),
        )
        .await?;
    wait_for(
        &tenants,
        &name,
        TIMEOUT,
        "the Suspended condition",
        |t: Option<&MemberTenant>| {
            t.and_then(|t| t.status.as_ref())
                .is_some_and(|s| conditions::is_true(&s.conditions, "Suspended"))
        },
    )
    .await?;
    let ns = Api::<Namespace>::all(client.clone())
        .get(&format!("tenant-{name}"))
        .await?;
    assert!(ns.metadata.deletion_timestamp.is_none());
    Ok(())
}

/// Waits until `tenant`'s status counts `want` delib sites.
async fn wait_delib_count(client: &kube::Client, tenant: &str, want: i32) -> anyhow::Result<()> {
    let tenants: Api<MemberTenant> = Api::all(client.clone());
    wait_for(
        &tenants,
        tenant,
        TIMEOUT,
        &format!("the member's status to count {want} delib site(s)"),
        move |t: Option<&MemberTenant>| {
            t.and_then(|t| t.status.as_ref())
                .is_some_and(|s| s.sites.get("delib").copied().unwrap_or(0) == want)
        },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn the_members_status_counts_its_sites_as_they_come_and_go() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let name = unique_name("count");
    create_tenant(&client, &name, &[format!("{name}.test")], "Delete").await?;
    let tenant = wait_ready(&client, &name).await?;
    let ns = tenant.status.and_then(|s| s.namespace).unwrap_or_default();
    let sites: Api<PloneSite> = Api::namespaced(client.clone(), &ns);
    sites
        .create(
            &PostParams::default(),
            &site("d1", &ns, &format!("d1.{name}.test"))?,
        )
        .await?;
    wait_delib_count(&client, &name, 1).await?;
    sites
        .create(
            &PostParams::default(),
            &site("d2", &ns, &format!("d2.{name}.test"))?,
        )
        .await?;
    wait_delib_count(&client, &name, 2).await?;
    // No longer counted once its deletion starts, nor once it is gone.
    sites.delete("d1", &DeleteParams::default()).await?;
    wait_delib_count(&client, &name, 1).await?;
    eventually(TIMEOUT, "site d1 to be gone", || async {
        sites
            .get_opt("d1")
            .await
            .ok()
            .and_then(|s| s.is_none().then_some(()))
    })
    .await?;
    wait_delib_count(&client, &name, 1).await?;
    Ok(())
}
