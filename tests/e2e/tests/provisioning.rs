//! ProvisioningRequests against the real control plane: every refusal reason
//! at once, automatic approval, an approver's decision through `mutu request`
//! (and a member admin's refused by RBAC), and GitOps mode.

use std::time::Duration;

use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use mutu_api::provisioning::Decision;
use mutu_api::{PloneSite, ProvisioningRequest};
use mutu_e2e::{client_as, create_site, kubectl, member_entitled_to_one, site_json};
use mutu_runtime::conditions;
use mutu_runtime::testing::{self, unique_name, wait_for};
use serde_json::json;

/// A site's creation, instances and certificate on the simulated nodes.
const SITE_TIMEOUT: Duration = Duration::from_secs(120);
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);
const APPROVERS: &str = "mutu-approvers";

/// A kubeconfig like the test bed's, acting as `user` in `groups`.
fn kubeconfig_as(user: &str, groups: &[&str]) -> anyhow::Result<std::path::PathBuf> {
    let out = kubectl(["config", "view", "--raw", "--minify", "-o", "json"]);
    anyhow::ensure!(out.success, "kubectl config view: {}", out.stderr);
    let mut config: serde_json::Value = serde_json::from_str(&out.stdout)?;
    let users = config["users"]
        .as_array_mut()
        .ok_or_else(|| anyhow::anyhow!("no users in the kubeconfig"))?;
    for u in users {
        u["user"]["as"] = json!(user);
        u["user"]["as-groups"] = json!(groups);
    }
    let path = mutu_e2e::certs::scratch("kubeconfig")?.join("config");
    std::fs::write(&path, serde_json::to_vec(&config)?)?;
    Ok(path)
}

/// Runs `mutu ARGS` with the kubeconfig `config`; (success, stdout, stderr).
fn mutu(config: &std::path::Path, args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    let bin = std::env::var("MUTU_BIN")
        .map_err(|_| anyhow::anyhow!("MUTU_BIN is not set; run through `make test`"))?;
    let out = std::process::Command::new(bin)
        .args(args)
        .env("KUBECONFIG", config)
        .output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

fn request_json(ns: &str, name: &str, spec: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "hosting.imio.be/v1alpha1", "kind": "ProvisioningRequest",
        "metadata": {"name": name, "namespace": ns}, "spec": spec,
    })
}

async fn create_request(
    client: &Client,
    ns: &str,
    name: &str,
    spec: serde_json::Value,
) -> anyhow::Result<ProvisioningRequest> {
    let api: Api<ProvisioningRequest> = Api::namespaced(client.clone(), ns);
    Ok(api
        .create(
            &PostParams::default(),
            &serde_json::from_value(request_json(ns, name, spec))?,
        )
        .await?)
}

fn condition(r: &ProvisioningRequest, type_: &str) -> Option<(String, String)> {
    let c = conditions::find(&r.status.as_ref()?.conditions, type_)?;
    Some((c.status.clone(), c.reason.clone()))
}

/// Waits until the request's condition `type_` has `status` (and `reason`, if given).
async fn wait_request(
    client: &Client,
    ns: &str,
    name: &str,
    type_: &str,
    status: &str,
    reason: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<ProvisioningRequest> {
    let api: Api<ProvisioningRequest> = Api::namespaced(client.clone(), ns);
    let what = format!(
        "request {ns}/{name}: {type_}={status} {}",
        reason.unwrap_or("")
    );
    Ok(wait_for(
        &api,
        name,
        timeout,
        &what,
        |r: Option<&ProvisioningRequest>| {
            r.and_then(|r| condition(r, type_))
                .is_some_and(|(s, why)| s == status && reason.is_none_or(|want| want == why))
        },
    )
    .await?)
}

fn codes(r: &ProvisioningRequest) -> Vec<String> {
    r.status
        .iter()
        .flat_map(|s| s.reasons.iter().map(|r| r.code.clone()))
        .collect()
}

#[tokio::test]
async fn a_request_gets_every_reason_it_is_refused_at_once() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let (_, ns, product, domain) = member_entitled_to_one(
        &client,
        "pr-refused",
        json!({}),
        json!({"quota": {"sites": 1}}),
    )
    .await?;
    // The member's one site: its name, hostname and entitlement are taken.
    create_site(
        &client,
        site_json(&ns, "delib", &product, &[format!("d.{domain}")]),
    )
    .await?;
    let api: Api<PloneSite> = Api::namespaced(client.clone(), &ns);
    wait_for(
        &api,
        "delib",
        CHECK_TIMEOUT,
        "the site to be cached",
        |s: Option<&PloneSite>| s.is_some(),
    )
    .await?;

    create_request(
        &client,
        &ns,
        "second",
        json!({"product": product, "siteName": "second",
               "hostnames": [format!("d.{domain}"), "www.elsewhere.test"],
               "options": {"replicas": 5}}),
    )
    .await?;
    let r = wait_request(
        &client,
        &ns,
        "second",
        "Validated",
        "False",
        None,
        CHECK_TIMEOUT,
    )
    .await?;
    let found = codes(&r);
    for want in [
        "OverEntitlement",
        "ForeignHostname",
        "HostnameTaken",
        "ReplicasOutOfRange",
        "QuotaExceeded",
    ] {
        assert!(
            found.iter().any(|c| c == want),
            "{want} missing from {found:?}"
        );
    }
    let status = r.status.clone().unwrap_or_default();
    assert_eq!(status.decision, Some(Decision::Pending));
    assert!(status.reasons.iter().all(|r| !r.message.is_empty()));
    let foreign = status.reasons.iter().find(|r| r.code == "ForeignHostname");
    assert_eq!(
        foreign.and_then(|r| r.subject.as_deref()),
        Some("www.elsewhere.test")
    );
    assert!(status.rendered_site.is_none());

    create_request(
        &client,
        &ns,
        "unknown",
        json!({"product": "no-such-product", "hostnames": [format!("x.{domain}")]}),
    )
    .await?;
    let r = wait_request(
        &client,
        &ns,
        "unknown",
        "Validated",
        "False",
        None,
        CHECK_TIMEOUT,
    )
    .await?;
    assert_eq!(codes(&r), vec!["UnknownProduct", "NotEntitled"]);

    create_request(
        &client,
        &ns,
        "same-name",
        json!({"product": product, "siteName": "delib", "hostnames": [format!("y.{domain}")]}),
    )
    .await?;
    let r = wait_request(
        &client,
        &ns,
        "same-name",
        "Validated",
        "False",
        None,
        CHECK_TIMEOUT,
    )
    .await?;
    assert!(
        codes(&r).contains(&"SiteNameTaken".to_string()),
        "{:?}",
        codes(&r)
    );

    // Outside any member's namespace.
    let elsewhere = testing::namespace(&client, "pr").await?;
    create_request(
        &client,
        &elsewhere,
        "orphan",
        json!({"product": product, "hostnames": [format!("z.{domain}")]}),
    )
    .await?;
    let r = wait_request(
        &client,
        &elsewhere,
        "orphan",
        "Validated",
        "False",
        None,
        CHECK_TIMEOUT,
    )
    .await?;
    assert_eq!(codes(&r), vec!["NoTenant"]);

    // Nothing was created for any of them.
    let sites = api.list(&Default::default()).await?;
    assert_eq!(sites.items.len(), 1, "only the member's own site");
    Ok(())
}

#[tokio::test]
async fn an_auto_approved_request_creates_its_site_which_outlives_it() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let (_, ns, product, domain) = member_entitled_to_one(
        &client,
        "pr-auto",
        json!({"provisioning": {"approval": "Auto"}}),
        json!({}),
    )
    .await?;
    let host = format!("www.{domain}");
    create_request(
        &client,
        &ns,
        "web",
        json!({"product": product, "siteName": "web", "hostnames": [host],
               "options": {"language": "nl"}}),
    )
    .await?;
    let r = wait_request(&client, &ns, "web", "Ready", "True", None, SITE_TIMEOUT).await?;
    let status = r.status.clone().unwrap_or_default();
    assert_eq!(status.decision, Some(Decision::Approved));
    assert_eq!(status.decided_by.as_deref(), Some("mutu"));
    assert_eq!(status.site.as_deref(), Some("web"));
    assert_eq!(
        condition(&r, "Fulfilled"),
        Some(("True".into(), "SiteReady".into()))
    );

    let sites: Api<PloneSite> = Api::namespaced(client.clone(), &ns);
    let site = sites.get("web").await?;
    assert_eq!(site.spec.hostnames, vec![host]);
    assert_eq!(site.spec.language.map(|l| l.code()), Some("nl"));
    assert_eq!(
        site.labels()
            .get("hosting.imio.be/request")
            .map(String::as_str),
        Some("web")
    );
    assert!(
        site.owner_references().is_empty(),
        "the site outlives the request"
    );

    // Deleting the request leaves the site alone.
    let requests: Api<ProvisioningRequest> = Api::namespaced(client.clone(), &ns);
    requests.delete("web", &DeleteParams::default()).await?;
    testing::eventually(CHECK_TIMEOUT, "the request to be gone", || {
        let requests = requests.clone();
        async move { matches!(requests.get_opt("web").await, Ok(None)).then_some(()) }
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let site = sites.get("web").await?;
    assert!(site.metadata.deletion_timestamp.is_none());
    Ok(())
}

#[tokio::test]
async fn an_approver_decides_and_a_member_admin_cannot_approve_their_own_request()
-> anyhow::Result<()> {
    let client = testing::client().await?;
    let (tenant, ns, product, domain) =
        member_entitled_to_one(&client, "pr-manual", json!({}), json!({})).await?;
    let agent = format!("agent@{tenant}.test");
    let member_groups = [format!("{tenant}-admins")];
    let member_groups: Vec<&str> = member_groups.iter().map(String::as_str).collect();
    let as_agent = client_as(&agent, &member_groups).await?;

    // The member's agent asks, in their own namespace only.
    create_request(
        &as_agent,
        &ns,
        "delib",
        json!({"product": product, "hostnames": [format!("d.{domain}")]}),
    )
    .await?;
    let other = testing::namespace(&client, "pr-other").await?;
    let refused = create_request(
        &as_agent,
        &other,
        "delib",
        json!({"product": product, "hostnames": [format!("d.{domain}")]}),
    )
    .await;
    assert!(
        matches!(&refused, Err(e) if e.downcast_ref::<kube::Error>().is_some_and(|k| matches!(k, kube::Error::Api(s) if s.code == 403))),
        "a member admin created a request outside their namespace: {refused:?}"
    );

    let r = wait_request(
        &client,
        &ns,
        "delib",
        "Approved",
        "False",
        Some("WaitingForApprover"),
        CHECK_TIMEOUT,
    )
    .await?;
    assert_eq!(
        condition(&r, "Validated").map(|c| c.0),
        Some("True".to_string())
    );

    // The agent cannot write the decision: the status is the approvers'.
    let requests_as_agent: Api<ProvisioningRequest> = Api::namespaced(as_agent.clone(), &ns);
    let patch = json!({"status": {"decision": "Approved", "decidedBy": agent, "decidedGeneration": r.metadata.generation}});
    let denied = requests_as_agent
        .patch_status("delib", &PatchParams::default(), &Patch::Merge(&patch))
        .await;
    assert!(
        matches!(&denied, Err(kube::Error::Api(s)) if s.code == 403),
        "a member admin approved their own request: {denied:?}"
    );
    let agent_config = kubeconfig_as(&agent, &member_groups)?;
    let (ok, _, err) = mutu(
        &agent_config,
        &["request", "approve", format!("{ns}/delib").as_str()],
    )?;
    assert!(!ok, "mutu request approve succeeded for a member admin");
    assert!(err.contains("approver role"), "{err}");
    let requests: Api<ProvisioningRequest> = Api::namespaced(client.clone(), &ns);
    let still = requests.get("delib").await?;
    assert_eq!(
        still.status.and_then(|s| s.decision),
        Some(Decision::Pending)
    );

    // An approver approves: the site is created and followed to Ready.
    let approver = unique_name("approver");
    let approver_config = kubeconfig_as(&approver, &[APPROVERS])?;
    let (ok, out, err) = mutu(
        &approver_config,
        &["request", "approve", format!("{ns}/delib").as_str()],
    )?;
    assert!(ok, "approve failed: {err}");
    assert!(out.contains("approved by"), "{out}");
    let r = wait_request(&client, &ns, "delib", "Ready", "True", None, SITE_TIMEOUT).await?;
    let status = r.status.unwrap_or_default();
    assert_eq!(status.decided_by.as_deref(), Some(approver.as_str()));
    // No spec.siteName: the site is named after the product.
    assert_eq!(status.site.as_deref(), Some(product.as_str()));

    // A second request, denied with a reason, creates nothing.
    create_request(
        &as_agent,
        &ns,
        "extra",
        json!({"product": product, "siteName": "extra", "hostnames": [format!("e.{domain}")]}),
    )
    .await?;
    wait_request(
        &client,
        &ns,
        "extra",
        "Validated",
        "False",
        None,
        CHECK_TIMEOUT,
    )
    .await?;
    let (ok, _, err) = mutu(
        &approver_config,
        &[
            "request",
            "deny",
            format!("{ns}/extra").as_str(),
            "--reason",
            "un seul site délib par commune",
        ],
    )?;
    assert!(ok, "deny failed: {err}");
    let r = wait_request(
        &client,
        &ns,
        "extra",
        "Approved",
        "False",
        Some("Denied"),
        CHECK_TIMEOUT,
    )
    .await?;
    let denial = r
        .status
        .unwrap_or_default()
        .reasons
        .into_iter()
        .find(|r| r.code == "Denied");
    assert!(
        denial.is_some_and(|d| d.message.contains("un seul site délib par commune")),
        "the member reads why"
    );
    let sites: Api<PloneSite> = Api::namespaced(client.clone(), &ns);
    assert!(sites.get_opt("extra").await?.is_none());
    Ok(())
}

#[tokio::test]
async fn in_gitops_mode_the_site_is_rendered_and_the_request_completes_when_it_appears()
-> anyhow::Result<()> {
    let client = testing::client().await?;
    let (_, ns, product, domain) = member_entitled_to_one(
        &client,
        "pr-gitops",
        json!({}),
        json!({"provisioning": {"approval": "Auto", "fulfilment": "GitOps"}}),
    )
    .await?;
    create_request(
        &client,
        &ns,
        "web",
        json!({"product": product, "siteName": "web", "hostnames": [format!("www.{domain}")]}),
    )
    .await?;
    wait_request(
        &client,
        &ns,
        "web",
        "Fulfilled",
        "False",
        Some("AwaitingGitOps"),
        CHECK_TIMEOUT,
    )
    .await?;

    let admin_config = std::path::PathBuf::from(
        std::env::var("KUBECONFIG").map_err(|_| anyhow::anyhow!("KUBECONFIG is not set"))?,
    );
    let (ok, yaml, err) = mutu(
        &admin_config,
        &["request", "render", format!("{ns}/web").as_str()],
    )?;
    assert!(ok, "render failed: {err}");
    assert!(yaml.contains("kind: PloneSite"), "{yaml}");
    assert!(yaml.contains(&format!("www.{domain}")), "{yaml}");

    // mutu created nothing itself.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sites: Api<PloneSite> = Api::namespaced(client.clone(), &ns);
    assert!(
        sites.get_opt("web").await?.is_none(),
        "GitOps mode created the site"
    );

    // The pipeline applies the rendered YAML, under its own field manager.
    let file = mutu_e2e::certs::scratch("gitops")?.join("web.yaml");
    std::fs::write(&file, &yaml)?;
    let out = kubectl([
        "apply",
        "--server-side",
        "--field-manager=argocd-controller",
        "-f",
        file.to_str().unwrap_or_default(),
    ]);
    assert!(out.success, "kubectl apply: {}", out.stderr);
    let r = wait_request(&client, &ns, "web", "Ready", "True", None, SITE_TIMEOUT).await?;
    assert_eq!(r.status.and_then(|s| s.site).as_deref(), Some("web"));
    Ok(())
}
