//! Hostile members: each case acts as a member's admin (impersonation through
//! the API server), tries one thing across the tenant boundary or against
//! data, and checks both the refusal (with what to change) and that nothing
//! of anyone was lost.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use k8s_openapi::api::networking::v1::Ingress;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use mutu_api::{BackupPolicy, Certificate, MemberTenant, PloneSite};
use mutu_e2e::{
    backup_site, create_product, create_site, member_admin, member_entitled_to, site_json,
    wait_site_condition,
};
use mutu_runtime::conditions;
use mutu_runtime::testing::{self, unique_name};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(120);

/// Hostile attempts refused so far in this run (printed with each one).
static REFUSED: AtomicUsize = AtomicUsize::new(0);

/// Checks that the API server refused `attempt`, with a message holding
/// `says` (what to change), and counts it.
fn refused<T: std::fmt::Debug>(case: &str, attempt: Result<T, kube::Error>, says: &str) {
    let message = match attempt {
        Err(kube::Error::Api(status)) => {
            assert!(
                status.code == 403 || status.code == 422,
                "{case}: refused with {}: {}",
                status.code,
                status.message
            );
            status.message
        }
        other => panic!("{case}: not refused: {other:?}"),
    };
    assert!(
        message.contains(says),
        "{case}: {says:?} not in {message:?}"
    );
    let n = REFUSED.fetch_add(1, Ordering::SeqCst) + 1;
    println!("hostile case {n} refused: {case}: {message}");
}

/// A member entitled to one site of `product`, with its site `web` on
/// `www.<tenant>.test`, Ready. Returns (tenant, namespace, hostname).
async fn member_with_web(
    client: &Client,
    prefix: &str,
    product: &str,
) -> anyhow::Result<(String, String, String)> {
    let (tenant, ns, domain) = member_entitled_to(client, prefix, product, 1).await?;
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

#[tokio::test]
async fn a_member_cannot_choose_to_delete_data_nor_set_the_platforms_annotations()
-> anyhow::Result<()> {
    let client = testing::client().await?;
    let product = unique_name("hostile-p");
    create_product(&client, &product, json!({"replicas": 1})).await?;
    let (tenant, ns, domain) = member_entitled_to(&client, "hostile-d", &product, 2).await?;
    let member = member_admin(&tenant).await?;
    let as_member = Api::<PloneSite>::namespaced(member.clone(), &ns);
    let as_platform = Api::<PloneSite>::namespaced(client.clone(), &ns);

    // A site whose deletion would delete its data: refused at creation.
    let mut doomed = site_json(&ns, "doomed", &product, &[format!("d.{domain}")]);
    doomed["spec"]["deletionPolicy"] = json!("Delete");
    let body: PloneSite = serde_json::from_value(doomed)?;
    refused(
        "create a site with deletionPolicy Delete",
        as_member.create(&PostParams::default(), &body).await,
        "spec.deletionPolicy: Delete",
    );
    assert!(as_platform.get_opt("doomed").await?.is_none());

    // The member's own site (Retain, the default), created by the member.
    let site = site_json(&ns, "web", &product, &[format!("www.{domain}")]);
    create_site(&member, site).await?;
    wait_site_condition(&client, &ns, "web", "Ready", "True", None, TIMEOUT).await?;
    refused(
        "switch a site to deletionPolicy Delete",
        as_member
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"deletionPolicy": "Delete"}})),
            )
            .await,
        "spec.deletionPolicy: Delete",
    );
    // Each annotation that moves, stops or upgrades a site.
    for (key, value) in [
        (mutu_api::POOL_ANNOTATION, "physical"),
        (mutu_api::DATA_VOLUME_ANNOTATION, "data-web-old"),
        (mutu_api::MAINTENANCE_ANNOTATION, "member"),
        (mutu_api::OFFLINE_ANNOTATION, "member"),
        (mutu_api::RELEASE_ANNOTATION, "0.0.1"),
        (mutu_api::HELD_BY_ANNOTATION, "restore/mine"),
    ] {
        refused(
            &format!("set {key} on a site"),
            as_member
                .patch(
                    "web",
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"metadata": {"annotations": {key: value}}})),
                )
                .await,
            &format!("changed: {key}"),
        );
    }
    // One the platform set cannot be lifted by the member either.
    as_platform
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": {
                mutu_api::OFFLINE_ANNOTATION: "platform"}}})),
        )
        .await?;
    refused(
        "remove the platform's offline annotation",
        as_member
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(&json!({"metadata": {"annotations": {
                    mutu_api::OFFLINE_ANNOTATION: null}}})),
            )
            .await,
        &format!("changed: {}", mutu_api::OFFLINE_ANNOTATION),
    );
    // The member still edits what is theirs, and its other annotations.
    as_member
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({
                "metadata": {"annotations": {"example.org/note": "ours"}},
                "spec": {"replicas": 2},
            })),
        )
        .await?;
    let now = as_platform.get("web").await?;
    assert_eq!(now.spec.deletion_policy, mutu_api::DeletionPolicy::Retain);
    assert_eq!(now.spec.replicas, Some(2));
    let annotations = now.metadata.annotations.unwrap_or_default();
    assert_eq!(
        annotations
            .get(mutu_api::OFFLINE_ANNOTATION)
            .map(String::as_str),
        Some("platform")
    );
    for key in [
        mutu_api::POOL_ANNOTATION,
        mutu_api::DATA_VOLUME_ANNOTATION,
        mutu_api::MAINTENANCE_ANNOTATION,
        mutu_api::RELEASE_ANNOTATION,
        mutu_api::HELD_BY_ANNOTATION,
    ] {
        assert!(
            !annotations.contains_key(key),
            "{key} was set: {annotations:?}"
        );
    }
    // A member takes a backup, but cannot delete it: its data would go with
    // the object at the site's next backup.
    backup_site(&member, &ns, "mine", "web").await?;
    let backups = Api::<mutu_api::Backup>::namespaced(member.clone(), &ns);
    refused(
        "delete a Backup",
        backups.delete("mine", &Default::default()).await,
        "cannot delete resource \"backups\"",
    );
    assert!(backups.get_opt("mine").await?.is_some());
    // Cleanup by the platform, which may choose Delete.
    as_platform
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"deletionPolicy": "Delete"}})),
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn kubernetes_own_identities_cannot_be_a_members_admins() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let api = Api::<MemberTenant>::all(client.clone());
    for (field, admins, says) in [
        (
            "groups",
            json!({"groups": ["system:authenticated"]}),
            "spec.admins.groups: a system: group",
        ),
        (
            "groups",
            json!({"groups": ["mons-admins", "system:serviceaccounts"]}),
            "spec.admins.groups: a system: group",
        ),
        (
            "users",
            json!({"users": ["system:anonymous"]}),
            "spec.admins.users: a system: user",
        ),
        (
            "users",
            json!({"users": ["system:serviceaccount:kube-system:default"]}),
            "spec.admins.users: a system: user",
        ),
        ("groups", json!({"groups": [""]}), "or an empty name"),
    ] {
        let name = unique_name("hostile-t");
        let mut body = mutu_e2e::tenant_json(&name, &[format!("{name}.test")], "Retain");
        body["spec"]["admins"] = admins.clone();
        let tenant: MemberTenant = serde_json::from_value(body)?;
        refused(
            &format!("a tenant whose admins.{field} are {admins}"),
            api.create(&PostParams::default(), &tenant).await,
            says,
        );
        assert!(api.get_opt(&name).await?.is_none());
    }
    Ok(())
}

#[tokio::test]
async fn a_backup_policy_that_would_keep_no_backup_is_refused() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let api = Api::<BackupPolicy>::all(client.clone());
    let name = unique_name("hostile-keep-none");
    let body: BackupPolicy = serde_json::from_value(json!({
        "apiVersion": mutu_api::API_VERSION, "kind": "BackupPolicy",
        "metadata": {"name": name},
        "spec": {
            "window": {"start": "22:00", "end": "05:00"},
            "maxConcurrent": 4,
            "retention": {"daily": 0, "weekly": 0, "monthly": 0},
        },
    }))?;
    refused(
        "a BackupPolicy keeping 0 daily, 0 weekly, 0 monthly",
        api.create(&PostParams::default(), &body).await,
        "spec.retention: daily, weekly and monthly are all 0",
    );
    assert!(api.get_opt(&name).await?.is_none());
    // One backup kept is enough to be accepted.
    let mut one = body.clone();
    one.spec.retention.monthly = 1;
    api.create(&PostParams::default(), &one).await?;
    api.delete(&name, &Default::default()).await?;
    Ok(())
}

#[tokio::test]
async fn a_public_suffix_is_refused_as_a_members_domain_and_grants_nothing() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let name = unique_name("hostile-psl");
    let mut body = mutu_e2e::tenant_json(&name, &["be".to_string()], "Delete");
    body["spec"]["entitlements"] = json!({});
    let api = Api::<MemberTenant>::all(client.clone());
    api.create(&PostParams::default(), &serde_json::from_value(body)?)
        .await?;
    let refused = testing::wait_for(
        &api,
        &name,
        TIMEOUT,
        "the tenant to be refused",
        |t: Option<&MemberTenant>| {
            t.and_then(|t| t.status.as_ref())
                .and_then(|s| conditions::find(&s.conditions, "Ready"))
                .is_some_and(|c| c.status == "False" && c.reason == "PublicSuffix")
        },
    )
    .await?;
    let ready = refused
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, "Ready"))
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no Ready condition"))?;
    assert!(
        ready
            .message
            .contains("spec.domains: be is a public suffix"),
        "{ready:?}"
    );
    let n = REFUSED.fetch_add(1, Ordering::SeqCst) + 1;
    println!(
        "hostile case {n} refused: a tenant claiming the public suffix be: {}",
        ready.message
    );
    // It gets nothing: no namespace.
    let namespaces = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone());
    assert!(
        namespaces
            .get_opt(&format!("tenant-{name}"))
            .await?
            .is_none()
    );
    api.delete(&name, &Default::default()).await?;
    Ok(())
}
