//! `mutu dev stop|start|restart COMPONENT` and `mutu dev node not-ready|ready
//! NODE`: the local control plane hurts itself on purpose, so that tests and
//! users can rehearse a failure (an API server or etcd restart, Pebble or Solr
//! down, a node lost) and see what mutu does.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
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

/// The value of kwok's annotation on a node it no longer keeps.
const PAUSED: &str = "paused-by-mutu-dev";
/// The taint the node-lifecycle controller puts on a node whose Ready is False.
const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";

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
            _ => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if !procs.started_alive(pid) {
                    bail!(
                        "{name} exited at start-up; last lines of {}:\n{}",
                        procs.log_file(&name).display(),
                        procs.log_tail(&name, 20)
                    );
                }
            }
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
    if nodes::kind(layout) == nodes::NodeKind::Real {
        bail!(
            "{} is a real node: stop its kubelet instead (mutu dev stop kubelet-{}), and start it again with mutu dev start kubelet-{}",
            args.node,
            args.node,
            args.node
        );
    }
    let client = bootstrap::client(&layout.kubeconfig()).await?;
    let api: Api<Node> = Api::all(client);
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
            let now = jiff::Timestamp::now()
                .round(jiff::Unit::Second)?
                .to_string();
            api.patch_status(
                &args.node,
                &params,
                &Patch::Strategic(json!({"status": {"conditions": [{
                    "type": "Ready", "status": "False", "reason": "StoppedByMutuDev",
                    "message": "mutu dev node not-ready: the node stopped answering",
                    "lastHeartbeatTime": now, "lastTransitionTime": now,
                }]}})),
            )
            .await?;
            wait_node(
                &api,
                &args.node,
                "to be tainted not-ready by the controller-manager",
                |n| taints(n).iter().any(|t| t == NOT_READY_TAINT),
            )
            .await?;
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

fn ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
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
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok(node) = api.get(name).await
            && done(&node)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("node {name} did not come {what} within 90 s");
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
