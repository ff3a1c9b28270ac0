//! Hostile members through the API server: each case acts as a member's admin
//! (impersonation), tries one thing across the tenant boundary or against
//! data, and checks both the refusal (with what to change) and that nothing
//! of anyone was lost.

use crate::count;

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
    count(case, &message);
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

pub async fn a_member_editing_another_members_hostname_into_its_ready_site_takes_nothing()
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
    count(
        "edit another member's hostname into its Ready site",
        &refused.message,
    );
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
    count(
        "a valid new hostname beside another member's",
        &refused.message,
    );
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

pub async fn a_member_cannot_choose_to_delete_data_nor_set_the_platforms_annotations()
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

pub async fn kubernetes_own_identities_cannot_be_a_members_admins() -> anyhow::Result<()> {
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

pub async fn a_backup_policy_that_would_keep_no_backup_is_refused() -> anyhow::Result<()> {
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

pub async fn a_public_suffix_is_refused_as_a_members_domain_and_grants_nothing()
-> anyhow::Result<()> {
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
    count("a tenant claiming the public suffix be", &ready.message);
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

/// Creates `body` (JSON) through `api`; a body that does not parse is a test bug.
async fn create_json<K>(api: &Api<K>, body: serde_json::Value) -> Result<K, kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(body).map_err(kube::Error::SerdeError)?;
    api.create(&PostParams::default(), &obj).await
}

fn merge(patch: serde_json::Value) -> Patch<serde_json::Value> {
    Patch::Merge(patch)
}

/// The name of the first object of `api` (as the platform sees it), which must exist.
async fn first<K>(api: &Api<K>, what: &str) -> anyhow::Result<String>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug + kube::Resource,
{
    api.list(&Default::default())
        .await?
        .items
        .first()
        .map(kube::ResourceExt::name_any)
        .ok_or_else(|| anyhow::anyhow!("no {what}"))
}

pub async fn a_member_reaches_nothing_of_another_member_nor_of_the_platform_nor_above_its_role()
-> anyhow::Result<()> {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{
        Namespace, Node, PersistentVolumeClaim, Pod, ResourceQuota, Secret,
    };
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    use k8s_openapi::api::rbac::v1::RoleBinding;
    use kube::ResourceExt;
    use mutu_api::{
        Backup, CertificateIssuer, MigrationPlan, Product, ProvisioningRequest, ReleaseRollout,
        Restore, SolrIndex,
    };
    let client = testing::client().await?;
    let product = unique_name("hostile-p");
    create_product(&client, &product, json!({"replicas": 1})).await?;
    let (tenant, ns, _) = member_with_web(&client, "hostile-m", &product).await?;
    let (_, other_ns, other_host) = member_with_web(&client, "hostile-o", &product).await?;
    let member = member_admin(&tenant).await?;
    let dp = kube::api::DeleteParams::default();
    let ps = PatchParams::default();
    let forbidden = |verb: &str, resource: &str| format!("cannot {verb} resource \"{resource}\"");

    // Another member's namespace: nothing is visible, nothing is writable.
    let theirs = Api::<PloneSite>::namespaced(member.clone(), &other_ns);
    refused(
        "read another member's site",
        theirs.get("web").await,
        &forbidden("get", "plonesites"),
    );
    refused(
        "list every member's sites",
        Api::<PloneSite>::all(member.clone())
            .list(&Default::default())
            .await,
        &forbidden("list", "plonesites"),
    );
    refused(
        "edit another member's site",
        theirs
            .patch("web", &ps, &merge(json!({"spec": {"replicas": 0}})))
            .await,
        &forbidden("patch", "plonesites"),
    );
    refused(
        "delete another member's site",
        theirs.delete("web", &dp).await,
        &forbidden("delete", "plonesites"),
    );
    refused(
        "read another member's Secrets",
        Api::<Secret>::namespaced(member.clone(), &other_ns)
            .list(&Default::default())
            .await,
        &forbidden("list", "secrets"),
    );
    refused(
        "create a site in another member's namespace",
        create_json(
            &theirs,
            site_json(
                &other_ns,
                "squat",
                &product,
                &[format!("squat.{other_host}")],
            ),
        )
        .await,
        &forbidden("create", "plonesites"),
    );
    let request = json!({
        "apiVersion": mutu_api::API_VERSION, "kind": "ProvisioningRequest",
        "metadata": {"name": "squat", "namespace": other_ns},
        "spec": {"product": product, "siteName": "squat", "hostnames": [format!("squat.{other_host}")]},
    });
    refused(
        "ask for a site in another member's namespace",
        create_json(
            &Api::<ProvisioningRequest>::namespaced(member.clone(), &other_ns),
            request,
        )
        .await,
        &forbidden("create", "provisioningrequests"),
    );
    refused(
        "restore another member's site",
        create_json(
            &Api::<Restore>::namespaced(member.clone(), &other_ns),
            json!({"apiVersion": mutu_api::API_VERSION, "kind": "Restore",
                   "metadata": {"name": "overwrite", "namespace": other_ns},
                   "spec": {"site": "web", "backup": "any"}}),
        )
        .await,
        &forbidden("create", "restores"),
    );
    refused(
        "back up another member's site",
        create_json(
            &Api::<Backup>::namespaced(member.clone(), &other_ns),
            json!({"apiVersion": mutu_api::API_VERSION, "kind": "Backup",
                   "metadata": {"name": "copy", "namespace": other_ns},
                   "spec": {"site": "web"}}),
        )
        .await,
        &forbidden("create", "backups"),
    );

    // The platform's kinds.
    refused(
        "raise its own entitlements",
        Api::<MemberTenant>::all(member.clone())
            .patch(
                &tenant,
                &ps,
                &merge(json!({"spec": {"entitlements": {product.clone(): 100}}})),
            )
            .await,
        &forbidden("patch", "membertenants"),
    );
    refused(
        "create a member",
        create_json(
            &Api::<MemberTenant>::all(member.clone()),
            mutu_e2e::tenant_json(&unique_name("sock"), &["sock.test".into()], "Retain"),
        )
        .await,
        &forbidden("create", "membertenants"),
    );
    refused(
        "change a product's release",
        Api::<Product>::all(member.clone())
            .patch(&product, &ps, &merge(json!({"spec": {"release": "9.9"}})))
            .await,
        &forbidden("patch", "products"),
    );
    let plan_spec = json!({"from": "physical", "to": "frontend", "waveSize": 1, "maxInFlight": 1});
    refused(
        "start a migration",
        create_json(
            &Api::<MigrationPlan>::all(member.clone()),
            json!({"apiVersion": mutu_api::API_VERSION, "kind": "MigrationPlan",
                   "metadata": {"name": unique_name("move")}, "spec": plan_spec}),
        )
        .await,
        &forbidden("create", "migrationplans"),
    );
    refused(
        "start a rollout",
        create_json(
            &Api::<ReleaseRollout>::all(member.clone()),
            json!({"apiVersion": mutu_api::API_VERSION, "kind": "ReleaseRollout",
                   "metadata": {"name": unique_name("up")},
                   "spec": {"product": product, "release": "9.9", "waveSize": 1, "maxInFlight": 1}}),
        )
        .await,
        &forbidden("create", "releaserollouts"),
    );
    refused(
        "create a backup policy",
        create_json(
            &Api::<BackupPolicy>::all(member.clone()),
            json!({"apiVersion": mutu_api::API_VERSION, "kind": "BackupPolicy",
                   "metadata": {"name": unique_name("mine")},
                   "spec": {"window": {"start": "22:00", "end": "05:00"}, "maxConcurrent": 400,
                            "retention": {"daily": 1, "weekly": 0, "monthly": 0}}}),
        )
        .await,
        &forbidden("create", "backuppolicies"),
    );
    refused(
        "create a certificate issuer",
        create_json(
            &Api::<CertificateIssuer>::all(member.clone()),
            json!({"apiVersion": mutu_api::API_VERSION, "kind": "CertificateIssuer",
                   "metadata": {"name": unique_name("mine")}, "spec": {"selfSigned": {}}}),
        )
        .await,
        &forbidden("create", "certificateissuers"),
    );
    let node = first(&Api::<Node>::all(client.clone()), "node").await?;
    refused(
        "cordon a node",
        Api::<Node>::all(member.clone())
            .patch(&node, &ps, &merge(json!({"spec": {"unschedulable": true}})))
            .await,
        &forbidden("patch", "nodes"),
    );
    refused(
        "lift the platform's admission policy",
        Api::<k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding>::all(
            member.clone(),
        )
        .delete(mutu_api::policy::PLATFORM_FIELDS_POLICY, &dp)
        .await,
        &forbidden("delete", "validatingadmissionpolicybindings"),
    );

    // Its own namespace, above its role: what mutu made for it is read-only.
    let certificate = first(
        &Api::<Certificate>::namespaced(client.clone(), &ns),
        "certificate",
    )
    .await?;
    let certificates = Api::<Certificate>::namespaced(member.clone(), &ns);
    refused(
        "edit its certificate",
        certificates
            .patch(
                &certificate,
                &ps,
                &merge(json!({"spec": {"dnsNames": [other_host.clone()]}})),
            )
            .await,
        &forbidden("patch", "certificates"),
    );
    refused(
        "delete its certificate",
        certificates.delete(&certificate, &dp).await,
        &forbidden("delete", "certificates"),
    );
    refused(
        "delete its search index",
        Api::<SolrIndex>::namespaced(member.clone(), &ns)
            .delete("web", &dp)
            .await,
        &forbidden("delete", "solrindexes"),
    );
    let secrets = Api::<Secret>::namespaced(member.clone(), &ns);
    let tls = Api::<Secret>::namespaced(client.clone(), &ns)
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .find(|s| s.type_.as_deref() == Some("kubernetes.io/tls"))
        .map(|s| s.name_any())
        .ok_or_else(|| anyhow::anyhow!("no TLS Secret in {ns}"))?;
    refused(
        "delete its TLS Secret",
        secrets.delete(&tls, &dp).await,
        &forbidden("delete", "secrets"),
    );
    refused(
        "create a Secret",
        create_json(
            &secrets,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "mine"},
                   "stringData": {"k": "v"}}),
        )
        .await,
        &forbidden("create", "secrets"),
    );
    refused(
        "delete its site's data volume",
        Api::<PersistentVolumeClaim>::namespaced(member.clone(), &ns)
            .delete("data-web-zeo-0", &dp)
            .await,
        &forbidden("delete", "persistentvolumeclaims"),
    );
    refused(
        "bind cluster-admin in its namespace",
        create_json(
            &Api::<RoleBinding>::namespaced(member.clone(), &ns),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                   "metadata": {"name": "mine"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                               "name": "cluster-admin"},
                   "subjects": [{"kind": "User", "name": "agent", "apiGroup": "rbac.authorization.k8s.io"}]}),
        )
        .await,
        &forbidden("create", "rolebindings"),
    );
    let namespaces = Api::<Namespace>::all(member.clone());
    refused(
        "relabel its namespace",
        namespaces
            .patch(
                &ns,
                &ps,
                &merge(json!({"metadata": {"labels": {mutu_api::TENANT_LABEL: "other"}}})),
            )
            .await,
        &forbidden("patch", "namespaces"),
    );
    refused(
        "delete its namespace",
        namespaces.delete(&ns, &dp).await,
        &forbidden("delete", "namespaces"),
    );
    let quota = first(
        &Api::<ResourceQuota>::namespaced(client.clone(), &ns),
        "quota",
    )
    .await?;
    refused(
        "lift its quota",
        Api::<ResourceQuota>::namespaced(member.clone(), &ns)
            .delete(&quota, &dp)
            .await,
        &forbidden("delete", "resourcequotas"),
    );
    let policy = first(
        &Api::<NetworkPolicy>::namespaced(client.clone(), &ns),
        "network policy",
    )
    .await?;
    refused(
        "lift its network isolation",
        Api::<NetworkPolicy>::namespaced(member.clone(), &ns)
            .delete(&policy, &dp)
            .await,
        &forbidden("delete", "networkpolicies"),
    );
    refused(
        "run a pod of its own",
        create_json(
            &Api::<Pod>::namespaced(member.clone(), &ns),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "mine"},
                   "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
        )
        .await,
        &forbidden("create", "pods"),
    );
    refused(
        "run a Deployment of its own",
        create_json(
            &Api::<Deployment>::namespaced(member.clone(), &ns),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "mine"},
                   "spec": {"selector": {"matchLabels": {"a": "b"}},
                            "template": {"metadata": {"labels": {"a": "b"}},
                                         "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}),
        )
        .await,
        &forbidden("create", "deployments"),
    );
    refused(
        "write its site's status",
        Api::<PloneSite>::namespaced(member.clone(), &ns)
            .patch_status(
                "web",
                &ps,
                &merge(json!({"status": {"hostnames": [other_host.clone()]}})),
            )
            .await,
        &forbidden("patch", "plonesites/status"),
    );
    refused(
        "mark a backup as complete",
        Api::<Backup>::namespaced(member.clone(), &ns)
            .patch_status("any", &ps, &merge(json!({"status": {"sizeBytes": 1}})))
            .await,
        &forbidden("patch", "backups/status"),
    );

    // Nothing of anyone was lost or changed.
    let other_site = Api::<PloneSite>::namespaced(client.clone(), &other_ns)
        .get("web")
        .await?;
    assert_eq!(other_site.spec.hostnames, vec![other_host.clone()]);
    assert!(other_site.spec.replicas != Some(0));
    assert!(
        Api::<PloneSite>::namespaced(client.clone(), &other_ns)
            .get_opt("squat")
            .await?
            .is_none()
    );
    let own = Api::<PloneSite>::namespaced(client.clone(), &ns)
        .get("web")
        .await?;
    let hostnames = own.status.map(|s| s.hostnames).unwrap_or_default();
    assert!(!hostnames.contains(&other_host), "{hostnames:?}");
    let cert = Api::<Certificate>::namespaced(client.clone(), &ns)
        .get(&certificate)
        .await?;
    assert!(!cert.spec.dns_names.contains(&other_host));
    Api::<Secret>::namespaced(client.clone(), &ns)
        .get(&tls)
        .await?;
    Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns)
        .get("data-web-zeo-0")
        .await?;
    Api::<ResourceQuota>::namespaced(client.clone(), &ns)
        .get(&quota)
        .await?;
    Api::<NetworkPolicy>::namespaced(client.clone(), &ns)
        .get(&policy)
        .await?;
    let ours = Api::<Namespace>::all(client.clone()).get(&ns).await?;
    assert_eq!(
        ours.labels().get(mutu_api::TENANT_LABEL),
        Some(&tenant),
        "its namespace keeps its label"
    );
    let t = Api::<MemberTenant>::all(client.clone())
        .get(&tenant)
        .await?;
    assert_eq!(t.spec.entitlements.get(&product), Some(&1));
    let p = Api::<Product>::all(client.clone()).get(&product).await?;
    assert_eq!(p.spec.release, "1.0");
    let n = Api::<Node>::all(client.clone()).get(&node).await?;
    assert_ne!(n.spec.and_then(|s| s.unschedulable), Some(true));
    Ok(())
}

pub async fn an_older_member_given_a_newer_members_domain_takes_nothing_from_it()
-> anyhow::Result<()> {
    let client = testing::client().await?;
    let product = unique_name("hostile-p");
    create_product(&client, &product, json!({"replicas": 1})).await?;
    // The older member; then the newer one, admitted with its domain and serving a site.
    let (older, older_ns, older_domain) =
        member_entitled_to(&client, "hostile-da", &product, 2).await?;
    let (newer, newer_ns, newer_host) = member_with_web(&client, "hostile-db", &product).await?;
    let newer_domain = newer_host.trim_start_matches("www.").to_string();
    let tenants = Api::<MemberTenant>::all(client.clone());
    let admitted = |t: &MemberTenant| t.status.as_ref().and_then(|s| s.domains.clone());
    testing::wait_for(
        &tenants,
        &newer,
        TIMEOUT,
        "the newer member's domains",
        |t: Option<&MemberTenant>| t.and_then(admitted) == Some(vec![newer_domain.clone()]),
    )
    .await?;
    // The older tenant is given the newer one's domain (a mistake in its YAML): age gives
    // no right to it.
    tenants
        .patch(
            &older,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"domains": [older_domain, newer_domain]}})),
        )
        .await?;
    let refused = testing::wait_for(
        &tenants,
        &older,
        TIMEOUT,
        "the older member refused",
        |t: Option<&MemberTenant>| {
            t.and_then(|t| t.status.as_ref())
                .and_then(|s| conditions::find(&s.conditions, "Ready"))
                .is_some_and(|c| c.reason == "DomainConflict")
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
        ready.message.contains(&newer_domain)
            && ready.message.contains(&format!("MemberTenant {newer}")),
        "{}",
        ready.message
    );
    count(
        "an older member given a newer member's domain",
        &ready.message,
    );
    // It keeps its own domain, and is granted nothing more.
    assert_eq!(admitted(&refused), Some(vec![older_domain.clone()]));
    // Its admin asks for a site under the newer member's domain: refused.
    let member = member_admin(&older).await?;
    let stolen = format!("shop.{newer_domain}");
    create_site(
        &member,
        site_json(&older_ns, "web", &product, std::slice::from_ref(&stolen)),
    )
    .await?;
    let sites = Api::<PloneSite>::namespaced(client.clone(), &older_ns);
    let site = testing::wait_for(
        &sites,
        "web",
        TIMEOUT,
        "the site refused",
        |s: Option<&PloneSite>| {
            s.and_then(|s| s.status.as_ref())
                .and_then(|s| conditions::find(&s.conditions, "Ready"))
                .is_some_and(|c| c.status == "False" && c.message.contains(&stolen))
        },
    )
    .await?;
    let message = site
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, "Ready"))
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains(&older_domain),
        "names what it may use: {message}"
    );
    count("a site under a domain its member was refused", &message);
    let ingresses = Api::<Ingress>::namespaced(client.clone(), &older_ns)
        .list(&Default::default())
        .await?;
    assert!(ingresses.items.is_empty(), "nothing serves {stolen}");
    // The newer member keeps its domain and its site.
    let newer_now = tenants.get(&newer).await?;
    assert_eq!(admitted(&newer_now), Some(vec![newer_domain.clone()]));
    assert!(conditions::is_true(
        &newer_now.status.clone().unwrap_or_default().conditions,
        "Ready"
    ));
    wait_site_condition(&client, &newer_ns, "web", "Ready", "True", None, TIMEOUT).await?;
    Ok(())
}

pub async fn a_member_flooding_manual_backups_runs_two_at_a_time_and_all_complete()
-> anyhow::Result<()> {
    use k8s_openapi::api::batch::v1::Job;
    let client = testing::client().await?;
    let product = unique_name("hostile-p");
    create_product(&client, &product, json!({"replicas": 1})).await?;
    let (tenant, ns, _) = member_with_web(&client, "hostile-f", &product).await?;
    let member = member_admin(&tenant).await?;
    let names: Vec<String> = (1..=5).map(|i| format!("flood-{i}")).collect();
    for name in &names {
        backup_site(&member, &ns, name, "web").await?;
    }
    let backups = Api::<mutu_api::Backup>::namespaced(client.clone(), &ns);
    let jobs = Api::<Job>::namespaced(client.clone(), &ns);
    let mut most = 0;
    let mut queued = None;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let running = jobs
            .list(&Default::default())
            .await?
            .items
            .iter()
            .filter(|j| {
                mutu_runtime::jobs::state(j) == mutu_runtime::jobs::JobState::Running
                    && j.metadata
                        .name
                        .as_deref()
                        .is_some_and(|n| n.contains("flood-"))
            })
            .count();
        most = most.max(running);
        let list = backups.list(&Default::default()).await?.items;
        for b in &list {
            let waiting = b
                .status
                .as_ref()
                .and_then(|s| conditions::find(&s.conditions, "Progressing"))
                .filter(|c| {
                    c.reason == "Queued" && c.message.contains("manual backups of this member")
                });
            if let Some(c) = waiting {
                queued.get_or_insert(c.message.clone());
            }
        }
        let complete = list
            .iter()
            .filter(|b| {
                b.status
                    .as_ref()
                    .is_some_and(|s| conditions::is_true(&s.conditions, "Complete"))
            })
            .count();
        if complete == names.len() {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{complete} of {} manual backups complete",
            names.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(most <= 2, "{most} manual backups of one member ran at once");
    let message = queued.ok_or_else(|| anyhow::anyhow!("no backup was ever queued"))?;
    count("five manual backups at once", &message);
    Ok(())
}

pub async fn a_member_restoring_over_its_live_site_must_confirm_it() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let product = unique_name("hostile-p");
    create_product(&client, &product, json!({"replicas": 1})).await?;
    let (tenant, ns, _) = member_with_web(&client, "hostile-r", &product).await?;
    let member = member_admin(&tenant).await?;
    backup_site(&member, &ns, "mine", "web").await?;
    let backups = Api::<mutu_api::Backup>::namespaced(client.clone(), &ns);
    testing::wait_for(
        &backups,
        "mine",
        TIMEOUT,
        "the backup to complete",
        |b: Option<&mutu_api::Backup>| {
            b.and_then(|b| b.status.as_ref())
                .is_some_and(|s| conditions::is_true(&s.conditions, "Complete"))
        },
    )
    .await?;
    let restores = Api::<mutu_api::Restore>::namespaced(member.clone(), &ns);
    // A confirmation naming another site: refused by the API server.
    refused(
        "confirm a restore with another site's name",
        create_json(
            &restores,
            json!({"apiVersion": mutu_api::API_VERSION, "kind": "Restore",
                   "metadata": {"name": "wrong", "namespace": ns},
                   "spec": {"site": "web", "backup": "mine", "confirm": "other"}}),
        )
        .await,
        "spec.confirm",
    );
    // No confirmation over the live site: the Restore fails and touches nothing.
    create_json(
        &restores,
        json!({"apiVersion": mutu_api::API_VERSION, "kind": "Restore",
               "metadata": {"name": "oops", "namespace": ns},
               "spec": {"site": "web", "backup": "mine"}}),
    )
    .await?;
    let failed = testing::wait_for(
        &restores,
        "oops",
        TIMEOUT,
        "the unconfirmed restore to fail",
        |r: Option<&mutu_api::Restore>| {
            r.and_then(|r| r.status.as_ref())
                .is_some_and(|s| conditions::is_true(&s.conditions, "Failed"))
        },
    )
    .await?;
    let c = failed
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, "Failed"))
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no Failed condition"))?;
    assert_eq!(c.reason, "NotConfirmed", "{}", c.message);
    assert!(c.message.contains("spec.confirm: web"), "{}", c.message);
    count("a restore over its live site, unconfirmed", &c.message);
    assert!(
        failed.status.and_then(|s| s.start_time).is_none(),
        "it never started"
    );
    let site = Api::<PloneSite>::namespaced(client.clone(), &ns)
        .get("web")
        .await?;
    assert!(
        !site
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key(mutu_api::MAINTENANCE_ANNOTATION),
        "the site was never stopped"
    );
    wait_site_condition(&client, &ns, "web", "Ready", "True", None, TIMEOUT).await?;
    Ok(())
}
