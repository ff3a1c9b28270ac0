//! Helpers for mutu's end-to-end tests: the checkout's paths and `kubectl`
//! invocations against the control plane named by `KUBECONFIG`.

pub mod browser;
pub mod certs;
pub mod plane;
pub mod portal;
pub mod real;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kube::Client;
use kube::api::{Api, PostParams};
use mutu_api::MemberTenant;
use mutu_runtime::conditions;
use mutu_runtime::testing::wait_for;
use serde_json::json;

/// The root of the mutu checkout.
pub fn repo_root() -> PathBuf {
    // Read when the tests run (cargo sets it), not baked in when they were
    // built: a shared target directory may hold a build of another checkout.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Records that the fault scenario `name` ran and every check of it passed, in the file
/// `MUTU_FAULT_LOG` names (`tests/run.sh` sets it, counts the scenarios at the end, prints them
/// and fails when fewer than it expects passed). A test calls it after its checks, once per
/// fault it injected; without `MUTU_FAULT_LOG` it only prints the name.
pub fn fault_scenario_passed(name: &str) {
    use std::io::Write;
    let binary = std::env::args()
        .next()
        .map(PathBuf::from)
        .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
        .map(|f| f.split('-').next().unwrap_or_default().to_string())
        .unwrap_or_default();
    let line = format!("{binary}: {name}");
    println!("fault scenario passed: {line}");
    let Some(path) = std::env::var_os("MUTU_FAULT_LOG") else {
        return;
    };
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
    if let Err(e) = written {
        panic!("cannot record fault scenario {name} in {path:?}: {e}");
    }
}

/// Result of one kubectl run.
pub struct Kubectl {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `kubectl ARGS` against the cluster of `KUBECONFIG`.
pub fn kubectl<I, S>(args: I) -> Kubectl
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out: Output = match Command::new("kubectl").args(args).output() {
        Ok(out) => out,
        Err(e) => {
            return Kubectl {
                success: false,
                stdout: String::new(),
                stderr: format!("cannot run kubectl: {e}"),
            };
        }
    };
    Kubectl {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every `*.yaml` file directly under `dir`, sorted.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// `kubectl auth can-i VERB RESOURCE -n NS --as USER`: whether the API server allows it.
pub fn can_i(user: &str, verb: &str, resource: &str, namespace: Option<&str>) -> bool {
    let mut args = vec![
        "auth".to_string(),
        "can-i".to_string(),
        verb.to_string(),
        resource.to_string(),
        format!("--as={user}"),
    ];
    if let Some(ns) = namespace {
        args.push(format!("--namespace={ns}"));
    }
    let out = kubectl(&args);
    out.stdout.trim() == "yes"
}

/// The `/metrics` text of the operator that `make test` runs (`MUTU_OPERATOR_METRICS`).
pub async fn operator_metrics() -> anyhow::Result<String> {
    let url = std::env::var("MUTU_OPERATOR_METRICS").map_err(|_| {
        anyhow::anyhow!("MUTU_OPERATOR_METRICS is not set; run the tests through `make test`")
    })?;
    scrape(&url).await
}

/// A plain HTTP GET of a local `http://127.0.0.1:PORT/PATH` URL.
pub async fn scrape(url: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("only http:// URLs: {url}"))?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = tokio::net::TcpStream::connect(host).await?;
    let request = format!("GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await?;
    Ok(body
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(body))
}

/// A client that the API server takes for `user` in `groups` (impersonation).
pub async fn client_as(user: &str, groups: &[&str]) -> anyhow::Result<Client> {
    let mut config = kube::Config::infer().await?;
    config.auth_info.impersonate = Some(user.to_string());
    config.auth_info.impersonate_groups = Some(groups.iter().map(|g| g.to_string()).collect());
    Ok(Client::try_from(config)?)
}

/// A client acting as the admin of member `tenant` made by [`tenant_json`]: its user and
/// its group.
pub async fn member_admin(tenant: &str) -> anyhow::Result<Client> {
    client_as(
        &format!("agent@{tenant}.test"),
        &[&format!("{tenant}-admins"), "system:authenticated"],
    )
    .await
}

const TENANT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A MemberTenant entitled to delib 2 and web 1, with one admin user and group.
pub fn tenant_json(name: &str, domains: &[String], policy: &str) -> serde_json::Value {
    json!({
        "apiVersion": "hosting.imio.be/v1alpha1",
        "kind": "MemberTenant",
        "metadata": {"name": name},
        "spec": {
            "displayName": format!("Commune de {name}"),
            "category": "commune",
            "province": "namur",
            "population": 12000,
            "domains": domains,
            "admins": {"users": [format!("agent@{name}.test")], "groups": [format!("{name}-admins")]},
            "entitlements": {"delib": 2, "web": 1},
            "deletionPolicy": policy,
        },
    })
}

/// Creates the tenant of [`tenant_json`].
pub async fn create_tenant(
    client: &Client,
    name: &str,
    domains: &[String],
    policy: &str,
) -> anyhow::Result<()> {
    let api: Api<MemberTenant> = Api::all(client.clone());
    let body = serde_json::from_value(tenant_json(name, domains, policy))?;
    api.create(&PostParams::default(), &body).await?;
    Ok(())
}

/// Waits until the tenant `name` is Ready.
pub async fn wait_ready(client: &Client, name: &str) -> anyhow::Result<MemberTenant> {
    let api: Api<MemberTenant> = Api::all(client.clone());
    Ok(wait_for(
        &api,
        name,
        TENANT_TIMEOUT,
        "the tenant to be Ready",
        |t: Option<&MemberTenant>| {
            t.and_then(|t| t.status.as_ref())
                .is_some_and(|s| conditions::is_true(&s.conditions, "Ready"))
        },
    )
    .await?)
}

/// Creates a MemberTenant with these domains and entitlements (deletion policy Delete).
pub async fn create_tenant_with(
    client: &Client,
    name: &str,
    domains: &[String],
    entitlements: serde_json::Value,
) -> anyhow::Result<()> {
    let mut body = tenant_json(name, domains, "Delete");
    body["spec"]["entitlements"] = entitlements;
    let api: Api<MemberTenant> = Api::all(client.clone());
    api.create(&PostParams::default(), &serde_json::from_value(body)?)
        .await?;
    Ok(())
}

/// A new Product (`product_overrides` merged into its spec) and a new member
/// entitled to one site of it (`tenant_overrides` merged into its spec),
/// Ready. Returns (tenant, namespace, product, domain).
pub async fn member_entitled_to_one(
    client: &Client,
    prefix: &str,
    product_overrides: serde_json::Value,
    tenant_overrides: serde_json::Value,
) -> anyhow::Result<(String, String, String, String)> {
    let product = mutu_runtime::testing::unique_name(&format!("{prefix}-p"));
    create_product(client, &product, product_overrides).await?;
    let tenant = mutu_runtime::testing::unique_name(prefix);
    let domain = format!("{tenant}.test");
    let mut body = tenant_json(&tenant, std::slice::from_ref(&domain), "Delete");
    body["spec"]["entitlements"] = json!({ product.clone(): 1 });
    if let (Some(spec), Some(extra)) = (body["spec"].as_object_mut(), tenant_overrides.as_object())
    {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    let api: Api<MemberTenant> = Api::all(client.clone());
    api.create(&PostParams::default(), &serde_json::from_value(body)?)
        .await?;
    wait_ready(client, &tenant).await?;
    Ok((tenant.clone(), format!("tenant-{tenant}"), product, domain))
}

/// A new member entitled to `count` sites of `product` (its domain
/// `<tenant>.test`), Ready. Returns (tenant, namespace, domain).
pub async fn member_entitled_to(
    client: &Client,
    prefix: &str,
    product: &str,
    count: i32,
) -> anyhow::Result<(String, String, String)> {
    let tenant = mutu_runtime::testing::unique_name(prefix);
    let domain = format!("{tenant}.test");
    create_tenant_with(
        client,
        &tenant,
        std::slice::from_ref(&domain),
        json!({ product: count }),
    )
    .await?;
    wait_ready(client, &tenant).await?;
    Ok((tenant.clone(), format!("tenant-{tenant}"), domain))
}

/// Creates `value` (a namespaced object of kind `K`, e.g. a Backup or a
/// Restore) in `ns`.
pub async fn create_in<K>(client: &Client, ns: &str, value: serde_json::Value) -> anyhow::Result<K>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(value)?;
    Ok(Api::<K>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &obj)
        .await?)
}

/// Creates the Backup `name` of site `site` in namespace `ns` (taken now).
pub async fn backup_site(
    client: &Client,
    ns: &str,
    name: &str,
    site: &str,
) -> anyhow::Result<mutu_api::Backup> {
    create_in(
        client,
        ns,
        serde_json::json!({
            "apiVersion": mutu_api::API_VERSION, "kind": "Backup",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"site": site},
        }),
    )
    .await
}

/// Creates the Restore `name` of site `site` in namespace `ns` from Backup `backup`,
/// confirming that the site's current data is replaced (`spec.confirm`).
pub async fn restore_site(
    client: &Client,
    ns: &str,
    name: &str,
    site: &str,
    backup: &str,
) -> anyhow::Result<mutu_api::Restore> {
    create_in(
        client,
        ns,
        serde_json::json!({
            "apiVersion": mutu_api::API_VERSION, "kind": "Restore",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"site": site, "backup": backup, "confirm": site},
        }),
    )
    .await
}

/// Creates a Plone Product named `name` (ZEO, 2 replicas, release 1.0, site
/// creation and upgrade commands), with `overrides` merged into its spec.
pub async fn create_product(
    client: &Client,
    name: &str,
    overrides: serde_json::Value,
) -> anyhow::Result<()> {
    let mut spec = json!({
        "displayName": format!("Product {name}"),
        "engine": "plone",
        "image": format!("registry.imio.be/e2e/{name}"),
        "release": "1.0",
        "replicas": 2,
        "storage": {"mode": "zeo", "size": "1Gi"},
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
        "siteCreationCommand": ["zconsole", "run", "/app/etc/zope.conf"],
        "upgradeCommand": ["zconsole", "run", "/app/etc/zope.conf"],
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), overrides.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    let body = json!({
        "apiVersion": "hosting.imio.be/v1alpha1", "kind": "Product",
        "metadata": {"name": name}, "spec": spec,
    });
    let api: Api<mutu_api::Product> = Api::all(client.clone());
    api.create(&PostParams::default(), &serde_json::from_value(body)?)
        .await?;
    Ok(())
}

/// A PloneSite of `product` in `namespace` answering on `hostnames`.
pub fn site_json(
    namespace: &str,
    name: &str,
    product: &str,
    hostnames: &[String],
) -> serde_json::Value {
    json!({
        "apiVersion": "hosting.imio.be/v1alpha1", "kind": "PloneSite",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"product": product, "hostnames": hostnames},
    })
}

/// Creates a site, retrying while the quota controller has not yet counted
/// the namespace's first usage ("status unknown for quota").
/// A 409 Conflict on the namespace's ResourceQuota (not on the object created).
fn quota_conflict(s: &kube::core::Status) -> bool {
    s.code == 409
        && s.reason == "Conflict"
        && s.details
            .as_ref()
            .is_some_and(|d| d.kind == "resourcequotas")
}

pub async fn create_site(
    client: &Client,
    site: serde_json::Value,
) -> anyhow::Result<mutu_api::PloneSite> {
    let ns = site["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let api: Api<mutu_api::PloneSite> = Api::namespaced(client.clone(), &ns);
    let body: mutu_api::PloneSite = serde_json::from_value(site)?;
    let deadline = tokio::time::Instant::now() + TENANT_TIMEOUT;
    loop {
        match api.create(&PostParams::default(), &body).await {
            Ok(created) => return Ok(created),
            // The quota admission of the API server answers "status unknown"
            // until the quota controller has counted the namespace, and a
            // Conflict on the quota when another update of it came first: both
            // say "try again", as any client must.
            Err(kube::Error::Api(s))
                if (s.message.contains("status unknown for quota") || quota_conflict(&s))
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Waits until the site's condition `type_` has `status` ("True"/"False") and,
/// if given, `reason`; returns the site.
pub async fn wait_site_condition(
    client: &Client,
    namespace: &str,
    name: &str,
    type_: &str,
    status: &str,
    reason: Option<&str>,
    timeout: std::time::Duration,
) -> anyhow::Result<mutu_api::PloneSite> {
    let api: Api<mutu_api::PloneSite> = Api::namespaced(client.clone(), namespace);
    let what = format!("site condition {type_}={status} {}", reason.unwrap_or(""));
    Ok(wait_for(
        &api,
        name,
        timeout,
        &what,
        |s: Option<&mutu_api::PloneSite>| {
            s.and_then(|s| s.status.as_ref())
                .and_then(|st| conditions::find(&st.conditions, type_).cloned())
                .is_some_and(|c| c.status == status && reason.is_none_or(|r| c.reason == r))
        },
    )
    .await?)
}

/// The admin client of the test bed's Solr, from the Secret `mutu-system/solr-admin`
/// that `mutu dev up` writes.
pub async fn solr_admin(client: &Client) -> anyhow::Result<mutu_solr::Client> {
    let secret =
        Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), "mutu-system")
            .get("solr-admin")
            .await?;
    let data = secret.data.unwrap_or_default();
    let text = |k: &str| {
        data.get(k)
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            .ok_or_else(|| anyhow::anyhow!("the Secret solr-admin has no {k}"))
    };
    Ok(mutu_solr::Client::new(
        &text("url")?,
        Some(mutu_solr::Credentials {
            user: text("username")?,
            password: text("password")?,
        }),
    )?)
}

/// A member entitled to one site of a new product (`create_product` with
/// `overrides`), and that site, `delib` (deletion policy Delete), Ready.
/// Returns (namespace, product).
pub async fn member_with_site(
    client: &Client,
    prefix: &str,
    overrides: serde_json::Value,
    timeout: std::time::Duration,
) -> anyhow::Result<(String, String)> {
    let product = mutu_runtime::testing::unique_name(&format!("{prefix}-p"));
    create_product(client, &product, overrides).await?;
    let tenant = mutu_runtime::testing::unique_name(prefix);
    let domain = format!("{tenant}.test");
    create_tenant_with(
        client,
        &tenant,
        std::slice::from_ref(&domain),
        json!({ product.clone(): 1 }),
    )
    .await?;
    wait_ready(client, &tenant).await?;
    let ns = format!("tenant-{tenant}");
    let mut site = site_json(&ns, "delib", &product, &[format!("d.{domain}")]);
    site["spec"]["deletionPolicy"] = json!("Delete");
    create_site(client, site).await?;
    wait_site_condition(client, &ns, "delib", "Ready", "True", None, timeout).await?;
    Ok((ns, product))
}

/// Replaces the operator that `make test` runs: SIGKILL (with `kill_first`),
/// then the same command again with `extra` arguments (its pid in the same
/// file, its output appended to the same log), and waits until it is ready.
pub async fn restart_operator(kill_first: bool, extra: &[&str]) -> anyhow::Result<()> {
    let var = |k: &str| {
        std::env::var(k).map_err(|_| anyhow::anyhow!("{k} is not set; run through `make test`"))
    };
    let pid_file = var("MUTU_OPERATOR_PID_FILE")?;
    let args = var("MUTU_OPERATOR_ARGS")?;
    let log = var("MUTU_OPERATOR_LOG")?;
    let bin = var("MUTU_BIN")?;
    if kill_first {
        let pid: i32 = std::fs::read_to_string(&pid_file)?.trim().parse()?;
        let status = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "cannot kill the operator (pid {pid})");
        // Its metrics port is free again once it is gone.
        for _ in 0..100 {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    let out = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(&log)?;
    let child = std::process::Command::new(bin)
        .args(args.split_whitespace())
        .args(extra)
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()?;
    std::fs::write(&pid_file, format!("{}\n", child.id()))?;
    let url = var("MUTU_OPERATOR_METRICS")?.replace("/metrics", "/readyz");
    mutu_runtime::testing::eventually(
        std::time::Duration::from_secs(60),
        "the restarted operator to be ready",
        || {
            let url = url.clone();
            async move { scrape(&url).await.ok().filter(|b| b.trim() == "ready") }
        },
    )
    .await?;
    Ok(())
}

/// A member entitled to `names.len()` sites of `product`, and those sites
/// (labelled `labels`, deletion policy Delete), all Ready. Returns the namespace.
pub async fn member_with_sites(
    client: &Client,
    prefix: &str,
    product: &str,
    names: &[String],
    labels: serde_json::Value,
    timeout: std::time::Duration,
) -> anyhow::Result<String> {
    let tenant = mutu_runtime::testing::unique_name(prefix);
    let domain = format!("{tenant}.test");
    create_tenant_with(
        client,
        &tenant,
        std::slice::from_ref(&domain),
        json!({ product: names.len() }),
    )
    .await?;
    wait_ready(client, &tenant).await?;
    let ns = format!("tenant-{tenant}");
    for name in names {
        let mut site = site_json(&ns, name, product, &[format!("{name}.{domain}")]);
        site["metadata"]["labels"] = labels.clone();
        site["spec"]["deletionPolicy"] = json!("Delete");
        create_site(client, site).await?;
    }
    for name in names {
        wait_site_condition(client, &ns, name, "Ready", "True", None, timeout).await?;
    }
    Ok(ns)
}

/// Creates the SolrIndex `name` in `ns` with this deletion policy, and waits until it is
/// Ready.
pub async fn ready_solr_index(
    client: &Client,
    ns: &str,
    name: &str,
    deletion_policy: &str,
) -> anyhow::Result<mutu_api::SolrIndex> {
    create_in::<mutu_api::SolrIndex>(
        client,
        ns,
        json!({
            "apiVersion": mutu_api::API_VERSION, "kind": "SolrIndex",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"deletionPolicy": deletion_policy},
        }),
    )
    .await?;
    let api: Api<mutu_api::SolrIndex> = Api::namespaced(client.clone(), ns);
    Ok(wait_for(
        &api,
        name,
        std::time::Duration::from_secs(60),
        "the index to be Ready",
        |i: Option<&mutu_api::SolrIndex>| {
            i.and_then(|i| i.status.as_ref())
                .is_some_and(|s| conditions::is_true(&s.conditions, "Ready"))
        },
    )
    .await?)
}

/// What a test that moved sites off pool `emptied` with a plan (deleted, and
/// gone) leaves to undo: the pool's nodes take sites again (a plan that moved
/// every site it selected leaves the pool it emptied cordoned), and the
/// members of `namespaces` go, with their sites, waited for (a site left on a
/// pool would keep a later plan from emptying it).
pub async fn put_back(
    client: &Client,
    emptied: &str,
    namespaces: &[String],
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::{Namespace, Node};
    use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
    let nodes: Api<Node> = Api::all(client.clone());
    let pool = ListParams::default().labels(&format!("{}={emptied}", mutu_api::POOL_LABEL));
    for node in nodes.list(&pool).await?.items {
        if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
            let name = node.metadata.name.clone().unwrap_or_default();
            nodes
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"spec": {"unschedulable": null}})),
                )
                .await?;
        }
    }
    let tenants: Api<MemberTenant> = Api::all(client.clone());
    for ns in namespaces {
        if let Some(tenant) = ns.strip_prefix("tenant-") {
            match tenants.delete(tenant, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let all: Api<Namespace> = Api::all(client.clone());
    mutu_runtime::testing::eventually(timeout, "the members' namespaces to be gone", || async {
        for ns in namespaces {
            if all.get_opt(ns).await.ok()?.is_some() {
                return None;
            }
        }
        Some(())
    })
    .await?;
    Ok(())
}

/// Creates the MigrationPlan `name` with `spec`.
pub async fn create_migration_plan(
    client: &Client,
    name: &str,
    spec: serde_json::Value,
) -> anyhow::Result<()> {
    create_wave::<mutu_api::MigrationPlan>(client, "MigrationPlan", name, spec).await
}

/// Creates the ReleaseRollout `name` with `spec`.
pub async fn create_rollout(
    client: &Client,
    name: &str,
    spec: serde_json::Value,
) -> anyhow::Result<()> {
    create_wave::<mutu_api::ReleaseRollout>(client, "ReleaseRollout", name, spec).await
}

async fn create_wave<K>(
    client: &Client,
    kind: &str,
    name: &str,
    spec: serde_json::Value,
) -> anyhow::Result<()>
where
    K: kube::Resource<Scope = kube::core::ClusterResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::all(client.clone());
    let body = json!({
        "apiVersion": "hosting.imio.be/v1alpha1", "kind": kind,
        "metadata": {"name": name}, "spec": spec,
    });
    api.create(&PostParams::default(), &serde_json::from_value(body)?)
        .await?;
    Ok(())
}
