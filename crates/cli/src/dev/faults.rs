//! `mutu dev stop|start|restart COMPONENT` and `mutu dev node not-ready|ready
//! NODE`: the local control plane hurts itself on purpose, so that tests and
//! users can rehearse a failure (an API server or etcd restart, Pebble or Solr
//! down, a node lost) and see what mutu does.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use super::process::Processes;
use super::{COMPONENTS, Layout, acme, bootstrap, nodes, solr};

#[derive(Args)]
pub struct ComponentArgs {
    /// etcd, kube-apiserver (or apiserver), kube-controller-manager
    /// (controller-manager), kube-scheduler (scheduler), kwok, pebble,
    /// pebble-challtestsrv, solr, or a real node's process (kubelet-physical-1, ...).
    pub component: String,
}

#[derive(Args)]
pub struct NodeArgs {
    /// not-ready: kwok stops keeping the node alive and its Ready condition
    /// turns False, so the node-lifecycle controller taints it
    /// (node.kubernetes.io/not-ready) as for a lost node; ready: kwok keeps it
    /// again and it is Ready.
    #[arg(value_enum)]
    pub state: NodeState,
    /// The node, e.g. frontend-2.
    pub node: String,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NodeState {
    NotReady,
    Ready,
}

/// Waits until the controller-manager or the scheduler answers `/healthz` (over TLS,
/// trusting the certificate it made itself in its `--cert-dir`), or kwok has renewed the
/// Leases of the nodes it keeps since it started, as long as it runs.
async fn healthy(
    layout: &Layout,
    procs: &Processes,
    name: &str,
    pid: i32,
    started: Instant,
) -> anyhow::Result<()> {
    let since = jiff::Timestamp::now();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut client = None;
    loop {
        let answer = match name {
            "kube-controller-manager" => healthz(
                layout.api_port + 3,
                &layout.state.join("kcm-certs/kube-controller-manager.crt"),
            ),
            "kube-scheduler" => healthz(
                layout.api_port + 4,
                &layout.state.join("scheduler-certs/kube-scheduler.crt"),
            ),
            "kwok" => {
                if client.is_none() {
                    client = Some(bootstrap::client(&layout.kubeconfig()).await?);
                }
                match &client {
                    Some(client) => leases_renewed(client, since).await,
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        };
        match answer {
            Ok(()) => {
                super::step(started, &format!("{name} is healthy"));
                return Ok(());
            }
            Err(e) if !procs.started_alive(pid) || Instant::now() > deadline => {
                bail!(
                    "{name} is not healthy ({e:#}); last lines of {}:\n{}",
                    procs.log_file(name).display(),
                    procs.log_tail(name, 20)
                );
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// `GET /healthz` on 127.0.0.1:`port` answers `ok`, over TLS with the certificate (and
/// the CA that signed it) in `cert`.
fn healthz(port: u16, cert: &std::path::Path) -> anyhow::Result<()> {
    let pem = std::fs::read(cert).with_context(|| format!("cannot read {}", cert.display()))?;
    let (status, body) = acme::https_get(port, "/healthz", &pem)?;
    if status == 200 && body.trim() == "ok" {
        Ok(())
    } else {
        bail!("/healthz answers {status}: {}", body.trim())
    }
}

/// Every node kwok keeps has had its Lease renewed since `since`.
async fn leases_renewed(client: &Client, since: jiff::Timestamp) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    for node in nodes.list(&ListParams::default()).await?.items {
        let kept = node
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(bootstrap::KWOK_ANNOTATION))
            .is_some_and(|v| v == KEPT);
        if !kept {
            continue;
        }
        let name = node.metadata.name.unwrap_or_default();
        let renewed = leases
            .get_opt(&name)
            .await?
            .and_then(|l| l.spec)
            .and_then(|s| s.renew_time)
            .is_some_and(|t| t.0 >= since);
        if !renewed {
            bail!("kwok has not renewed the Lease of node {name} yet");
        }
    }
    Ok(())
}

/// The value of kwok's annotation on the nodes it keeps.
const KEPT: &str = "fake";
/// The value of kwok's annotation on a node it no longer keeps.
const PAUSED: &str = "paused-by-mutu-dev";
/// The taint the node-lifecycle controller puts on a node whose Ready is False.
const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
/// The taint it puts on a node that stopped reporting (Ready Unknown).
const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";

/// The process name of `name` as the user may spell it, or an error listing
/// the known ones.
fn resolve(layout: &Layout, name: &str) -> anyhow::Result<String> {
    let real = nodes::kind(layout) == nodes::NodeKind::Real;
    let alias = match name {
        "apiserver" => "kube-apiserver",
        "controller-manager" => "kube-controller-manager",
        "scheduler" => "kube-scheduler",
        other => other,
    };
    let mut known: Vec<String> = COMPONENTS
        .iter()
        .filter(|c| !(real && **c == "kwok"))
        .chain(acme::COMPONENTS.iter())
        .map(|c| (*c).to_string())
        .collect();
    known.push(solr::COMPONENT.to_string());
    if real {
        known.extend(nodes::process_names(layout));
    }
    if known.iter().any(|k| k == alias) {
        Ok(alias.to_string())
    } else {
        bail!(
            "unknown component {name:?} of the control plane in {}; known: {}",
            layout.state.display(),
            known.join(", ")
        )
    }
}

/// How long a component gets to stop after SIGTERM.
fn grace(name: &str) -> Duration {
    if name == solr::COMPONENT {
        Duration::from_secs(30)
    } else {
        Duration::from_secs(10)
    }
}

pub async fn stop(layout: &Layout, name: &str) -> anyhow::Result<()> {
    let name = resolve(layout, name)?;
    let procs = Processes::new(&layout.state);
    if procs.stop(&name, grace(&name)).await {
        eprintln!("stopped {name}");
    } else {
        eprintln!("{name} was not running");
    }
    Ok(())
}

pub async fn start(layout: &Layout, name: &str) -> anyhow::Result<()> {
    let name = resolve(layout, name)?;
    let procs = Processes::new(&layout.state);
    if let Some(pid) = procs.running(&name) {
        eprintln!("{name} is running already (pid {pid})");
        return Ok(());
    }
    let started = Instant::now();
    let bin = super::build(layout)?;
    if COMPONENTS.contains(&name.as_str()) {
        let (program, args) = super::component_command(layout, &bin, &name);
        let pid = procs.start(&name, &program, &args, &[])?;
        super::step(started, &format!("started {name} (pid {pid})"));
        match name.as_str() {
            "etcd" => {
                super::wait_port(
                    &procs,
                    &name,
                    pid,
                    layout.etcd_port(),
                    Duration::from_secs(30),
                )
                .await?
            }
            "kube-apiserver" => {}
            _ => healthy(layout, &procs, &name, pid, started).await?,
        }
        // After etcd or the API server, the plane is back once the API
        // server answers /readyz again.
        let api = match name.as_str() {
            "kube-apiserver" => Some(pid),
            "etcd" => procs.running("kube-apiserver"),
            _ => None,
        };
        if let Some(api) = api {
            super::wait_apiserver(layout, &procs, api, started).await?;
        }
    } else if acme::COMPONENTS.contains(&name.as_str()) {
        acme::up(layout, &procs, &bin, started).await?;
    } else if name == solr::COMPONENT {
        let (pid, _) = solr::start(layout, &procs, started)?;
        let client = bootstrap::client(&layout.kubeconfig()).await?;
        solr::ready(
            layout,
            &procs,
            pid,
            &client,
            bootstrap::OPERATOR_NAMESPACE,
            started,
        )
        .await?;
    } else {
        // A real node's process: `up` starts again whatever of them is not
        // running, with the settings it gave them.
        super::up(layout, nodes::NodeKind::Real).await?;
    }
    Ok(())
}

pub async fn node(layout: &Layout, args: NodeArgs) -> anyhow::Result<()> {
    let client = bootstrap::client(&layout.kubeconfig()).await?;
    let api: Api<Node> = Api::all(client);
    if nodes::kind(layout) == nodes::NodeKind::Real {
        return real_node(layout, &api, args).await;
    }
    let node = api
        .get(&args.node)
        .await
        .with_context(|| format!("no node {} in this control plane", args.node))?;
    let managed = node
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(bootstrap::KWOK_ANNOTATION))
        .cloned();
    if managed.is_none() {
        bail!(
            "node {} is not a simulated node of this control plane (no annotation {})",
            args.node,
            bootstrap::KWOK_ANNOTATION
        );
    }
    let params = PatchParams::default();
    match args.state {
        NodeState::NotReady => {
            // kwok first lets go of the node (no more heartbeats or lease
            // renewals), then the node says it is not ready, as a kubelet
            // that lost its runtime would.
            api.patch(
                &args.node,
                &params,
                &Patch::Merge(
                    json!({"metadata": {"annotations": {bootstrap::KWOK_ANNOTATION: PAUSED}}}),
                ),
            )
            .await?;
            // kwok may not have seen its annotation yet: while it keeps the node, it
            // reports it Ready again at once (its node-initialize stage). The node says
            // it is not ready until the controller-manager has tainted it.
            let deadline = Instant::now() + Duration::from_secs(90);
            loop {
                let node = api.get(&args.node).await?;
                if taints(&node).iter().any(|t| t == NOT_READY_TAINT) {
                    break;
                }
                if condition(&node) != Some("False") {
                    report_not_ready(&api, &args.node).await?;
                }
                if Instant::now() > deadline {
                    bail!(
                        "node {} did not come to be tainted not-ready by the controller-manager within 90 s (does it run?)",
                        args.node
                    );
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            eprintln!(
                "node {} is NotReady and tainted {NOT_READY_TAINT}",
                args.node
            );
        }
        NodeState::Ready => {
            api.patch(
                &args.node,
                &params,
                &Patch::Merge(
                    json!({"metadata": {"annotations": {bootstrap::KWOK_ANNOTATION: "fake"}}}),
                ),
            )
            .await?;
            wait_node(&api, &args.node, "to be Ready and untainted", |n| {
                ready(n) && !taints(n).iter().any(|t| t == NOT_READY_TAINT)
            })
            .await?;
            eprintln!("node {} is Ready", args.node);
        }
    }
    Ok(())
}

/// The node says it is not ready, as a kubelet whose runtime is down would.
async fn report_not_ready(api: &Api<Node>, node: &str) -> anyhow::Result<()> {
    let now = jiff::Timestamp::now()
        .round(jiff::Unit::Second)?
        .to_string();
    api.patch_status(
        node,
        &PatchParams::default(),
        &Patch::Strategic(json!({"status": {"conditions": [{
            "type": "Ready", "status": "False", "reason": "StoppedByMutuDev",
            "message": "mutu dev node not-ready: the node stopped answering",
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        }]}})),
    )
    .await
    .with_context(|| format!("cannot write the status of node {node}"))?;
    Ok(())
}

/// A real node: its kubelet stops (after the controller-manager's grace period, 50 s by
/// default, the node-lifecycle controller marks it Unknown and taints it unreachable),
/// or starts again.
async fn real_node(layout: &Layout, api: &Api<Node>, args: NodeArgs) -> anyhow::Result<()> {
    let procs = Processes::new(&layout.state);
    let run = args.state == NodeState::Ready;
    nodes::kubelet(layout, &procs, &args.node, run).await?;
    let lost = |n: &Node| {
        taints(n)
            .iter()
            .any(|t| t == NOT_READY_TAINT || t == UNREACHABLE_TAINT)
    };
    if run {
        wait_node(api, &args.node, "to be Ready and untainted", |n| {
            ready(n) && !lost(n)
        })
        .await?;
        eprintln!("node {} is Ready", args.node);
    } else {
        wait_node(
            api,
            &args.node,
            "to be marked lost by the controller-manager (its grace period is 50 s)",
            |n| !ready(n) && lost(n),
        )
        .await?;
        eprintln!(
            "node {} is NotReady ({}), its kubelet stopped",
            args.node,
            taints(&api.get(&args.node).await?).join(", ")
        );
    }
    Ok(())
}

/// The status of the node's Ready condition.
fn condition(node: &Node) -> Option<&str> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str())
}

fn ready(node: &Node) -> bool {
    condition(node) == Some("True")
}

fn taints(node: &Node) -> Vec<String> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .map(|t| t.iter().map(|t| t.key.clone()).collect())
        .unwrap_or_default()
}

async fn wait_node(
    api: &Api<Node>,
    name: &str,
    what: &str,
    done: impl Fn(&Node) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(node) = api.get(name).await
            && done(&node)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("node {name} did not come {what} within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        let dir = std::env::temp_dir().join(format!("mutu-faults-{}", std::process::id()));
        Layout::new(&super::super::DevArgs {
            command: super::super::DevCommand::Env,
            dir,
            api_port: 6443,
        })
        .unwrap_or_else(|e| panic!("{e:#}"))
    }

    #[test]
    fn components_are_known_by_their_names_and_short_names() {
        let layout = layout();
        for (given, name) in [
            ("apiserver", "kube-apiserver"),
            ("kube-apiserver", "kube-apiserver"),
            ("controller-manager", "kube-controller-manager"),
            ("scheduler", "kube-scheduler"),
            ("etcd", "etcd"),
            ("kwok", "kwok"),
            ("pebble", "pebble"),
            ("solr", "solr"),
        ] {
            assert_eq!(
                resolve(&layout, given).unwrap_or_else(|e| panic!("{e:#}")),
                name
            );
        }
        let e = match resolve(&layout, "kubelet") {
            Ok(name) => panic!("kubelet accepted as {name}"),
            Err(e) => format!("{e:#}"),
        };
        assert!(e.contains("unknown component \"kubelet\""), "{e}");
        assert!(e.contains("etcd, kube-apiserver"), "{e}");
    }

    #[test]
    fn solr_gets_the_longest_grace() {
        assert!(grace("solr") > grace("etcd"));
    }
}
