//! What `mutu dev up` puts into a fresh control plane: the simulated nodes of
//! both pools, a default StorageClass whose claims get bound, the CRDs, the
//! operator's namespace and the CertificateIssuers of development.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::{Namespace, Node, ResourceQuota};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;

use super::step;

/// Nodes carrying this annotation are simulated by kwok.
pub const KWOK_ANNOTATION: &str = "kwok.x-k8s.io/node";
const FIELD_MANAGER: &str = "mutu-dev";
/// The operator's namespace, where the issuers' Secrets live.
pub const OPERATOR_NAMESPACE: &str = "mutu-system";

/// A simulated node: name, pool and capacity.
struct NodeSpec {
    name: &'static str,
    pool: &'static str,
    cpu: &'static str,
    memory: &'static str,
    pods: &'static str,
}

/// Three virtualised frontends and two legacy physical servers, sized so that
/// the whole 2019 fleet (`mutu fleet generate --profile imio-2019`: about 340
/// CPUs, 1.3 TiB of memory and 1,900 pods requested) fits on either pool: the
/// demo starts it on the physical pool and a MigrationPlan moves it. Pod
/// capacity is above a real kubelet's default for the same reason.
const NODES: [NodeSpec; 5] = [
    NodeSpec {
        name: "frontend-1",
        pool: mutu_api::POOL_FRONTEND,
        cpu: "192",
        memory: "768Gi",
        pods: "1500",
    },
    NodeSpec {
        name: "frontend-2",
        pool: mutu_api::POOL_FRONTEND,
        cpu: "192",
        memory: "768Gi",
        pods: "1500",
    },
    NodeSpec {
        name: "frontend-3",
        pool: mutu_api::POOL_FRONTEND,
        cpu: "192",
        memory: "768Gi",
        pods: "1500",
    },
    NodeSpec {
        name: "physical-1",
        pool: mutu_api::POOL_PHYSICAL,
        cpu: "256",
        memory: "1Ti",
        pods: "2500",
    },
    NodeSpec {
        name: "physical-2",
        pool: mutu_api::POOL_PHYSICAL,
        cpu: "256",
        memory: "1Ti",
        pods: "2500",
    },
];

/// A client for the kubeconfig that `mutu dev up` wrote.
pub async fn client(kubeconfig: &Path) -> anyhow::Result<Client> {
    let kc = Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("cannot read {}", kubeconfig.display()))?;
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    config.connect_timeout = Some(Duration::from_secs(2));
    config.read_timeout = Some(Duration::from_secs(10));
    Ok(Client::try_from(config)?)
}

/// Asks the API server's `/readyz`.
pub async fn readyz(client: &Client) -> anyhow::Result<()> {
    let request = http::Request::get("/readyz").body(Vec::new())?;
    let text = client.request_text(request).await?;
    if text.trim() == "ok" {
        Ok(())
    } else {
        bail!("not ready: {text}")
    }
}

/// Installs (or updates) the CRDs and waits until they are established.
pub async fn install_crds(client: &Client, started: Instant) -> anyhow::Result<()> {
    let ssa = PatchParams::apply(FIELD_MANAGER).force();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let wanted = mutu_api::crds();
    for crd in &wanted {
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.patch(&name, &ssa, &Patch::Apply(crd))
            .await
            .with_context(|| format!("cannot install CRD {name}"))?;
    }
    step(started, &format!("installed {} CRDs", wanted.len()));

    established(&crds, wanted.len(), started).await?;
    platform_fields_policy(client).await?;
    step(
        started,
        "installed the admission policy of the platform's fields (mutu-platform-fields)",
    );
    Ok(())
}

/// The ValidatingAdmissionPolicy that keeps the platform's fields of sites from members
/// (mutu_api::policy), and its binding. The operator runs in mutu-system.
async fn platform_fields_policy(client: &Client) -> anyhow::Result<()> {
    let ssa = PatchParams::apply(FIELD_MANAGER).force();
    for doc in
        mutu_api::policy::platform_fields(mutu_api::policy::PLATFORM_FIELDS_POLICY, "mutu-system")
    {
        let obj: kube::api::DynamicObject = serde_json::from_value(doc)?;
        let kind = obj
            .types
            .as_ref()
            .map(|t| t.kind.clone())
            .unwrap_or_default();
        let gvk = kube::api::GroupVersionKind::gvk("admissionregistration.k8s.io", "v1", &kind);
        let resource = kube::api::ApiResource::from_gvk(&gvk);
        let api: Api<kube::api::DynamicObject> = Api::all_with(client.clone(), &resource);
        let name = obj.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &ssa, &Patch::Apply(&obj))
            .await
            .with_context(|| format!("cannot install {kind} {name}"))?;
    }
    Ok(())
}

/// Applies nodes and the StorageClass, and waits until they are usable.
pub async fn apply(client: &Client, kwok: bool, started: Instant) -> anyhow::Result<()> {
    let ssa = PatchParams::apply(FIELD_MANAGER).force();
    if !kwok {
        // Real nodes get a StorageClass of real local volumes (dev::nodes).
        return quota_knows_sites(client, started).await;
    }

    let classes: Api<StorageClass> = Api::all(client.clone());
    let class = json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": "standard",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": "kubernetes.io/host-path",
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    });
    classes
        .patch("standard", &ssa, &Patch::Apply(&class))
        .await?;

    if !kwok {
        step(
            started,
            "applied the default StorageClass (real nodes come later)",
        );
        return quota_knows_sites(client, started).await;
    }
    let nodes: Api<Node> = Api::all(client.clone());
    for node in &NODES {
        let capacity = json!({
            "cpu": node.cpu, "memory": node.memory, "pods": node.pods,
            "ephemeral-storage": "500Gi",
        });
        let body = json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": node.name,
                "annotations": {KWOK_ANNOTATION: "fake"},
                "labels": {
                    mutu_api::POOL_LABEL: node.pool,
                    "kubernetes.io/hostname": node.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                },
            },
            "status": {"capacity": capacity, "allocatable": capacity},
        });
        nodes.patch(node.name, &ssa, &Patch::Apply(&body)).await?;
        nodes
            .patch_status(node.name, &ssa, &Patch::Apply(&body))
            .await?;
    }
    step(
        started,
        "applied 5 nodes (3 frontend, 2 physical) and the default StorageClass",
    );

    quota_knows_sites(client, started).await?;

    wait_until(
        started,
        "simulated nodes Ready",
        Duration::from_secs(60),
        || async {
            let list = nodes.list(&ListParams::default()).await.ok()?;
            let ready = list
                .items
                .iter()
                .filter(|n| {
                    n.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|cs| {
                            cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                        })
                })
                .count();
            (ready >= NODES.len()).then_some(())
        },
    )
    .await?;
    Ok(())
}

/// Creates the operator's namespace and applies the CertificateIssuers
/// `dev-acme` (the ACME server at `acme_server`, trusting the PEM `ca_bundle`)
/// and `dev-ca` (an internal CA the operator creates). Needs the CRDs.
pub async fn issuers(
    client: &Client,
    acme_server: &str,
    ca_bundle: &str,
    started: Instant,
) -> anyhow::Result<()> {
    let ssa = PatchParams::apply(FIELD_MANAGER).force();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": OPERATOR_NAMESPACE},
    });
    namespaces
        .patch(OPERATOR_NAMESPACE, &ssa, &Patch::Apply(&ns))
        .await
        .with_context(|| format!("cannot create the namespace {OPERATOR_NAMESPACE}"))?;

    // Plain JSON rather than mutu_api's structs: only these fields are ours.
    let issuer = |name: &str, spec: serde_json::Value| {
        json!({
            "apiVersion": format!("{}/v1alpha1", mutu_api::GROUP),
            "kind": "CertificateIssuer",
            "metadata": {"name": name},
            "spec": spec,
        })
    };
    let wanted = [
        issuer(
            "dev-acme",
            json!({"acme": {
                "server": acme_server,
                "email": "hosting@mutu.test",
                "accountKeySecretRef": {"name": "dev-acme-account"},
                "caBundle": ca_bundle,
                // 90-day certificates: without a profile, Pebble picks one
                // at random, 6-day ones among them.
                "profile": "default",
                // The local ACME server enforces no rate limit. Let's Encrypt's
                // (the defaults) would hold most of a whole fleet's
                // certificates for hours.
                "rateLimits": {
                    "newOrders": {"limit": 1_000_000, "window": "3h"},
                    "certificatesPerDomain": {"limit": 1_000_000, "window": "168h"},
                    "duplicateCertificates": {"limit": 1_000_000, "window": "168h"},
                },
            }}),
        ),
        issuer(
            "dev-ca",
            json!({"ca": {"secretName": "dev-ca", "create": true}}),
        ),
    ];
    let api: Api<mutu_api::CertificateIssuer> = Api::all(client.clone());
    for body in &wanted {
        let name = body["metadata"]["name"].as_str().unwrap_or_default();
        api.patch(name, &ssa, &Patch::Apply(body))
            .await
            .with_context(|| format!("cannot apply the CertificateIssuer {name}"))?;
    }
    step(
        started,
        &format!(
            "applied the namespace {OPERATOR_NAMESPACE} and the CertificateIssuers dev-acme ({acme_server}) and dev-ca"
        ),
    );
    Ok(())
}

async fn established(
    crds: &Api<CustomResourceDefinition>,
    count: usize,
    started: Instant,
) -> anyhow::Result<()> {
    wait_until(
        started,
        "CRDs established",
        Duration::from_secs(60),
        || async {
            let list = crds.list(&ListParams::default()).await.ok()?;
            let established = list
                .items
                .iter()
                .filter(|crd| {
                    crd.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|cs| {
                            cs.iter()
                                .any(|c| c.type_ == "Established" && c.status == "True")
                        })
                })
                .filter(|crd| crd.spec.group == mutu_api::GROUP)
                .count();
            (established >= count).then_some(())
        },
    )
    .await?;
    Ok(())
}

/// Waits until the controller-manager's quota controller counts PloneSites.
/// It discovers new resources every 30 s, and a quota created before that is
/// only recounted at its next full resync (minutes): until then the API server
/// refuses every site in a namespace with a site quota ("status unknown for
/// quota"). A probe quota, recreated until it is counted, proves it is done.
async fn quota_knows_sites(client: &Client, started: Instant) -> anyhow::Result<()> {
    // Kept between runs: a namespace being deleted would refuse the probe.
    const PROBE_NS: &str = "mutu-dev-probe";
    let resource = "count/plonesites.hosting.imio.be";
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": PROBE_NS}});
    namespaces
        .patch(
            PROBE_NS,
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Apply(&ns),
        )
        .await?;
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), PROBE_NS);
    let probe: ResourceQuota = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "probe", "namespace": PROBE_NS},
        "spec": {"hard": {resource: "1"}},
    }))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut reported = false;
    loop {
        let _ = quotas.delete("probe", &DeleteParams::default()).await;
        let _ = quotas.create(&PostParams::default(), &probe).await;
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let counted = quotas
                .get_opt("probe")
                .await?
                .and_then(|q| q.status)
                .and_then(|s| s.used)
                .is_some_and(|used| used.contains_key(resource));
            if counted {
                let _ = quotas.delete("probe", &DeleteParams::default()).await;
                step(started, "quota controller counts PloneSites");
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "the controller-manager's quota controller still does not count {resource} after 120 s"
            );
        }
        if !reported {
            step(
                started,
                "waiting for the quota controller to discover the CRDs (up to 30 s) ...",
            );
            reported = true;
        }
    }
}

async fn wait_until<F, Fut>(
    started: Instant,
    what: &str,
    timeout: Duration,
    mut check: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<()>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await.is_some() {
            step(started, what);
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "timed out after {timeout:?} waiting for {what}; see the logs under the state directory"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
