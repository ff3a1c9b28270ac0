//! The local control plane behaves like a real cluster: clients connect over
//! TLS, workloads are scheduled onto the simulated nodes and become Ready,
//! namespaces are garbage-collected, and volume claims are bound.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Node, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use mutu_runtime::testing::{self, eventually, wait_for};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(90);

#[tokio::test]
async fn rustls_client_connects_with_the_generated_kubeconfig() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let version = client.apiserver_version().await?;
    assert_eq!(version.major, "1");
    assert!(
        version.git_version.starts_with("v1.37."),
        "the API server reports {} instead of the pinned release",
        version.git_version
    );
    Ok(())
}

#[tokio::test]
async fn both_node_pools_are_ready_with_capacity() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let nodes: Api<Node> = Api::all(client);
    for (pool, expected) in [("frontend", 3), ("physical", 2)] {
        let list = nodes
            .list(&ListParams::default().labels(&format!("{}={pool}", mutu_api::POOL_LABEL)))
            .await?;
        assert_eq!(list.items.len(), expected, "nodes in pool {pool}");
        for node in list.items {
            let status = node.status.unwrap_or_default();
            let ready = status
                .conditions
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            assert!(ready, "node {:?} is not Ready", node.metadata.name);
            let pods = status.allocatable.unwrap_or_default().get("pods").cloned();
            assert!(
                pods.is_some(),
                "node {:?} has no pod capacity",
                node.metadata.name
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn deployment_becomes_ready_on_simulated_nodes_and_namespace_deletion_completes()
-> anyhow::Result<()> {
    let client = testing::client().await?;
    let ns = testing::namespace(&client, "deploy").await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "registry.imio.be/imio/web:1.0"}]},
            },
        },
    });
    deployments
        .patch(
            "web",
            &PatchParams::apply("e2e"),
            &Patch::Apply(&deployment),
        )
        .await?;
    wait_for(
        &deployments,
        "web",
        TIMEOUT,
        "3 ready replicas",
        |d: Option<&Deployment>| {
            d.and_then(|d| d.status.as_ref())
                .and_then(|s| s.ready_replicas)
                == Some(3)
        },
    )
    .await?;

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let list = pods.list(&ListParams::default().labels("app=web")).await?;
    assert_eq!(list.items.len(), 3);
    for pod in &list.items {
        let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
        assert_eq!(phase.as_deref(), Some("Running"));
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        assert!(
            node.starts_with("frontend-") || node.starts_with("physical-"),
            "pod scheduled on unexpected node {node:?}"
        );
    }

    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces.delete(&ns, &DeleteParams::default()).await?;
    eventually(TIMEOUT, "the namespace to be deleted", || async {
        match namespaces.get_opt(&ns).await {
            Ok(None) => Some(()),
            _ => None,
        }
    })
    .await?;
    let left = Api::<Pod>::all(client)
        .list(&ListParams::default().fields(&format!("metadata.namespace={ns}")))
        .await?;
    assert!(
        left.items.is_empty(),
        "pods left behind: {}",
        left.items.len()
    );
    Ok(())
}

#[tokio::test]
async fn statefulset_volume_claim_is_bound() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let ns = testing::namespace(&client, "sts").await?;
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let set = json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "zeo"},
        "spec": {
            "replicas": 1,
            "serviceName": "zeo",
            "selector": {"matchLabels": {"app": "zeo"}},
            "template": {
                "metadata": {"labels": {"app": "zeo"}},
                "spec": {"containers": [{
                    "name": "zeo",
                    "image": "registry.imio.be/imio/zeo:5",
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }]},
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            }],
        },
    });
    sets.patch("zeo", &PatchParams::apply("e2e"), &Patch::Apply(&set))
        .await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let claim = wait_for(
        &claims,
        "data-zeo-0",
        TIMEOUT,
        "the claim to be Bound",
        |c: Option<&PersistentVolumeClaim>| {
            c.and_then(|c| c.status.as_ref())
                .and_then(|s| s.phase.as_deref())
                == Some("Bound")
        },
    )
    .await?;
    assert!(claim.spec.and_then(|s| s.volume_name).is_some());
    wait_for(
        &sets,
        "zeo",
        TIMEOUT,
        "the StatefulSet to be ready",
        |s: Option<&StatefulSet>| {
            s.and_then(|s| s.status.as_ref())
                .and_then(|s| s.ready_replicas)
                == Some(1)
        },
    )
    .await?;
    Api::<Namespace>::all(client)
        .delete(&ns, &DeleteParams::default())
        .await?;
    Ok(())
}

#[tokio::test]
async fn the_operator_serves_health_and_metrics_and_stops_cleanly_on_sigterm() -> anyhow::Result<()>
{
    let bin = std::env::var("MUTU_BIN")
        .map_err(|_| anyhow::anyhow!("MUTU_BIN is not set; run through `make test`"))?;
    let addr = "127.0.0.1:19097";
    // The log goes to a file: a pipe nobody reads fills up (64 KiB) while the
    // operator reconciles the tenants of the other tests, and its next log
    // line then blocks the process, SIGTERM included.
    let log_path =
        std::env::temp_dir().join(format!("{}.log", testing::unique_name("mutu-sigterm")));
    let log = std::fs::File::create(&log_path)?;
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_else(|e| e.to_string());
    // Only the tenant controller: the other operator of this run does the work.
    let mut child = tokio::process::Command::new(bin)
        .args([
            "operator",
            "run",
            "--only",
            "tenant",
            "--metrics-addr",
            addr,
        ])
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()?;
    eventually(TIMEOUT, "/readyz to answer ready", || async {
        let body = mutu_e2e::scrape(&format!("http://{addr}/readyz"))
            .await
            .ok()?;
        body.starts_with("ready").then_some(())
    })
    .await?;
    let healthz = mutu_e2e::scrape(&format!("http://{addr}/healthz")).await?;
    assert_eq!(healthz.trim(), "ok");
    let metrics = mutu_e2e::scrape(&format!("http://{addr}/metrics")).await?;
    assert!(metrics.contains("mutu_up 1"), "{metrics}");
    assert!(
        metrics.contains("mutu_queue_depth{controller=\"tenant\"}"),
        "the tenant controller reports its queue: {metrics}"
    );

    let pid = child.id().ok_or_else(|| anyhow::anyhow!("no pid"))?;
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await?;
    assert!(killed.success());
    // The operator gives reconciles in flight 20 s before it stops anyway;
    // a pod's default termination grace is 30 s.
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "the operator still runs 30 s after SIGTERM; its log:\n{}",
                read_log()
            )
        })??;
    let log = read_log();
    assert!(
        status.success(),
        "the operator exited with {status} after SIGTERM; its log:\n{log}"
    );
    assert!(
        log.contains("stopped cleanly"),
        "the operator did not finish its reconciles within its grace; its log:\n{log}"
    );
    let _ = std::fs::remove_file(&log_path);
    Ok(())
}
