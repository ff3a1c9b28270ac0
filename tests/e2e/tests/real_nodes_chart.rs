//! The Helm chart on real nodes: `helm install` of charts/mutu with the
//! operator image built here (images/mutu) runs two operator replicas as
//! pods; one leads and reconciles a member's site; when the leader's pod is
//! killed, the other takes the Lease over and reconciles the next site. Runs
//! after tests/real_nodes.rs, once the operator that `make test` started on
//! the host is stopped (two operators must not share a cluster).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use mutu_api::PloneSite;
use mutu_e2e::plane::run;
use mutu_e2e::{create_site, create_tenant_with, kubectl, repo_root, wait_ready};
use mutu_runtime::testing::{eventually, unique_name};
use serde_json::json;

const NS: &str = "mutu-chart";
const RELEASE: &str = "real";
const TIMEOUT: Duration = Duration::from_secs(300);

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name)
        .map_err(|_| anyhow::anyhow!("{name} is not set: run through `make test` (real nodes)"))
}

fn helm_bin() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("MUTU_HELM") {
        return Ok(PathBuf::from(path));
    }
    let out = Command::new("bash")
        .arg(repo_root().join("tests/cluster/tool.sh"))
        .arg("helm")
        .stderr(Stdio::inherit())
        .output()?;
    anyhow::ensure!(out.status.success(), "tests/cluster/tool.sh helm failed");
    let text = String::from_utf8(out.stdout)?;
    Ok(PathBuf::from(
        text.lines().last().unwrap_or_default().trim(),
    ))
}

/// Stops the operator that `make test` runs on the host, if any.
fn stop_host_operator() {
    if let Ok(file) = std::env::var("MUTU_OPERATOR_PID_FILE")
        && let Ok(pid) = std::fs::read_to_string(file)
    {
        let _ = Command::new("kill").arg(pid.trim()).status();
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// The workspace version: the operator image's tag and the chart's appVersion.
fn version() -> anyhow::Result<String> {
    let text = std::fs::read_to_string(repo_root().join("Cargo.toml"))?;
    let mut in_package = false;
    for line in text.lines() {
        if line.starts_with('[') {
            in_package = line.trim() == "[workspace.package]";
        } else if in_package && let Some(v) = line.strip_prefix("version = ") {
            return Ok(v.trim().trim_matches('"').to_string());
        }
    }
    anyhow::bail!("no [workspace.package] version in Cargo.toml")
}

async fn operator_pods(client: &Client) -> anyhow::Result<Vec<Pod>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), NS);
    let list = api
        .list(&ListParams::default().labels("app.kubernetes.io/component=operator"))
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect())
}

fn running_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn lease_holder(client: &Client) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), NS);
    leases
        .get("mutu-operator")
        .await
        .ok()?
        .spec?
        .holder_identity
}

async fn site_ready(client: &Client, ns: &str, name: &str, domain: &str) -> anyhow::Result<()> {
    create_site(
        client,
        json!({
            "apiVersion": "hosting.imio.be/v1alpha1", "kind": "PloneSite",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"product": "dev-generic-stateless", "hostnames": [format!("{name}.{domain}")]},
        }),
    )
    .await?;
    let api: Api<PloneSite> = Api::namespaced(client.clone(), ns);
    eventually(TIMEOUT, &format!("site {ns}/{name} Ready"), || async {
        let s = api.get(name).await.ok()?;
        s.status
            .as_ref()
            .is_some_and(|st| mutu_runtime::conditions::is_true(&st.conditions, "Ready"))
            .then_some(())
    })
    .await?;
    Ok(())
}

async fn api_pod(client: &Client, name: &str) -> anyhow::Result<Pod> {
    Ok(Api::<Pod>::namespaced(client.clone(), NS).get(name).await?)
}

/// SIGKILLs every process of the container `id` (its cgroup, under a real
/// node's cgroup); returns how many.
fn kill_container(id: &str) -> usize {
    fn walk(dir: &std::path::Path, id: &str, pids: &mut Vec<i32>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.filter_map(Result::ok) {
            let path = e.path();
            if !path.is_dir() {
                continue;
            }
            if e.file_name().to_string_lossy().contains(id)
                && let Ok(procs) = std::fs::read_to_string(path.join("cgroup.procs"))
            {
                pids.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
            walk(&path, id, pids);
        }
    }
    let mut pids = Vec::new();
    for root in ["/sys/fs/cgroup/pids", "/sys/fs/cgroup"] {
        let Ok(entries) = std::fs::read_dir(root) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            if e.file_name().to_string_lossy().starts_with("mutu-") {
                walk(&e.path(), id, &mut pids);
            }
        }
        if !pids.is_empty() {
            break;
        }
    }
    pids.sort_unstable();
    pids.dedup();
    for pid in &pids {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    pids.len()
}

#[tokio::test]
async fn the_chart_runs_two_operator_pods_from_the_image_built_here_and_the_leader_hands_over()
-> anyhow::Result<()> {
    stop_host_operator();
    let client = Client::try_default().await?;
    let kubeconfig = PathBuf::from(env("KUBECONFIG")?);
    let helm = helm_bin()?;

    // The Solr admin credentials, in the chart's namespace, with the URL the
    // pods reach Solr at.
    let out = kubectl(["create", "namespace", NS]);
    anyhow::ensure!(
        out.success || out.stderr.contains("AlreadyExists"),
        "{}",
        out.stderr
    );
    let solr_url = env("MUTU_SOLR_URL")?;
    let admin: Secret = Api::namespaced(client.clone(), "mutu-system")
        .get("solr-admin")
        .await?;
    let mut data = admin.data.clone().unwrap_or_default();
    data.insert(
        "url".into(),
        k8s_openapi::ByteString(solr_url.clone().into_bytes()),
    );
    let copy = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("solr-admin".into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    if secrets.get_opt("solr-admin").await?.is_none() {
        secrets.create(&PostParams::default(), &copy).await?;
    }

    let tag = version()?;
    let values = repo_root().join(".mutu/test-real-nodes-chart-values.yaml");
    std::fs::create_dir_all(values.parent().unwrap_or(&repo_root()))?;
    std::fs::write(
        &values,
        format!(
            "image:\n  repository: mutu.local/mutu\n  tag: \"{tag}\"\n  pullPolicy: Never\n\
             operator:\n  replicas: 2\n  leaderElection: true\n  defaultIssuer: dev-ca\n  \
             ingressClass: {class}\n  ingressNamespace: {ingress_ns}\n  \
             solr:\n    url: {solr_url}\n  \
             backup:\n    volumeSize: 1Gi\n  \
             resources:\n    requests: {{cpu: 50m, memory: 64Mi}}\n    limits: {{memory: 512Mi}}\n\
             portal:\n  enabled: false\nmaintenance:\n  enabled: false\n",
            class = env("MUTU_INGRESS_CLASS")?,
            ingress_ns = env("MUTU_INGRESS_NAMESPACE")?,
        ),
    )?;
    let r = run(
        &helm,
        &[
            "install",
            RELEASE,
            "charts/mutu",
            "--namespace",
            NS,
            "--values",
            &values.display().to_string(),
            "--wait",
            "--timeout",
            "300s",
        ],
        Some(&kubeconfig),
    )?;
    if !r.success {
        let pods = kubectl(["-n", NS, "describe", "pods"]);
        anyhow::bail!("helm install failed: {}\n{}", r.stderr, pods.stdout);
    }

    // Two operator pods, real containers of the image built here, on the real nodes.
    let pods = eventually(TIMEOUT, "two Ready operator pods", || async {
        let pods = operator_pods(&client).await.ok()?;
        (pods.len() == 2 && pods.iter().all(running_ready)).then_some(pods)
    })
    .await?;
    for pod in &pods {
        let spec = pod.spec.clone().unwrap_or_default();
        assert_eq!(
            spec.containers[0].image.as_deref(),
            Some(format!("mutu.local/mutu:{tag}").as_str())
        );
        let node = spec.node_name.unwrap_or_default();
        assert!(
            node == "physical-1" || node == "frontend-1",
            "{} on {node}",
            pod.name_any()
        );
    }
    let names: Vec<String> = pods.iter().map(ResourceExt::name_any).collect();
    let leader = eventually(TIMEOUT, "one operator pod to lead", || async {
        let holder = lease_holder(&client).await?;
        names
            .iter()
            .any(|n| holder.starts_with(n.as_str()))
            .then_some(holder)
    })
    .await?;
    let leader_identity = leader.clone();
    let leader_pod = names
        .iter()
        .find(|n| leader.starts_with(n.as_str()))
        .cloned()
        .unwrap_or_default();

    // The leader reconciles a member and its site.
    let out = kubectl([
        "apply",
        "-f",
        &repo_root()
            .join("examples/dev-catalog.yaml")
            .display()
            .to_string(),
    ]);
    anyhow::ensure!(out.success, "{}", out.stderr);
    let tenant = unique_name("rn-chart");
    let domain = format!("{tenant}.test");
    create_tenant_with(
        &client,
        &tenant,
        std::slice::from_ref(&domain),
        json!({"dev-generic-stateless": 2}),
    )
    .await?;
    wait_ready(&client, &tenant).await?;
    let ns = format!("tenant-{tenant}");
    site_ready(&client, &ns, "first", &domain).await?;

    // The leader's process is killed (SIGKILL, as by the kernel's OOM killer
    // or a lost node: no clean hand-over): another process takes the Lease
    // once it expires, and does the next work.
    let leader = api_pod(&client, &leader_pod).await?;
    let container = leader
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.container_id.clone())
        .unwrap_or_default();
    let id = container.trim_start_matches("containerd://").to_string();
    anyhow::ensure!(!id.is_empty(), "no container id for {leader_pod}");
    let killed = kill_container(&id);
    anyhow::ensure!(
        killed > 0,
        "no process of container {id} found in the nodes' cgroups"
    );
    let new_holder = eventually(TIMEOUT, "another operator to take the Lease", || async {
        let holder = lease_holder(&client).await?;
        (!holder.is_empty() && holder != leader_identity).then_some(holder)
    })
    .await?;
    eprintln!("the Lease went from {leader_identity} to {new_holder}");
    site_ready(&client, &ns, "second", &domain).await?;

    let r = run(
        &helm,
        &["uninstall", RELEASE, "--namespace", NS, "--wait"],
        Some(&kubeconfig),
    )?;
    anyhow::ensure!(r.success, "helm uninstall: {}", r.stderr);
    Ok(())
}
