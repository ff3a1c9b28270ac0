//! A control plane of the benchmark's own for each phase, started fresh and
//! given room on its simulated nodes for the fleet's pods.

use std::path::Path;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::FleetArgs;
use super::apply::FIELD_MANAGER;

/// Runs one phase on a control plane of its own, started fresh in the
/// benchmark's directory and removed afterwards unless kept.
pub(super) async fn on_fresh_control_plane<'a, F, Fut>(
    args: &FleetArgs,
    keep: bool,
    phase: F,
) -> anyhow::Result<()>
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + 'a,
{
    eprintln!(
        "starting the benchmark's control plane in {}",
        args.dir.display()
    );
    // Whatever a previous run left there goes first: each phase starts empty.
    crate::dev::stop(crate::dev::Local::at(&args.dir, args.api_port)?).await?;
    // SIGTERM or Ctrl-C stops the phase where it is (the operators' process
    // with it) and the control plane, as `mutu dev down` would, unless kept.
    let interrupted = crate::operator::shutdown_signal();
    tokio::pin!(interrupted);
    let work = async {
        let local = crate::dev::start(&args.dir, args.api_port, keep).await?;
        let client = client_of(&local.kubeconfig).await?;
        make_room(&client, args.sites).await?;
        phase(client).await
    };
    let result = tokio::select! {
        result = work => result,
        () = &mut interrupted => Err(anyhow::anyhow!(
            "interrupted: the benchmark stopped{}",
            if keep {
                format!(" (its control plane is kept in {})", args.dir.display())
            } else {
                " and stopped its control plane".to_string()
            }
        )),
    };
    if !keep {
        // Stopped from the pid files, so that a control plane interrupted
        // while starting is stopped too.
        crate::dev::stop(crate::dev::Local::at(&args.dir, args.api_port)?).await?;
    }
    result
}

/// A client of the API server that `kubeconfig` names.
async fn client_of(kubeconfig: &Path) -> anyhow::Result<Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    Ok(Client::try_from(config)?)
}

/// Room for the fleet's pods on the simulated nodes.
async fn make_room(client: &Client, n: u32) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let status = node_status(pods_per_node(n));
    for node in nodes.list(&ListParams::default()).await? {
        nodes
            .patch_status(
                &node.name_any(),
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&status),
            )
            .await?;
    }
    Ok(())
}

/// The pods a simulated node takes for a fleet of `n` sites.
fn pods_per_node(n: u32) -> u64 {
    (u64::from(n) * 5 / 5 + 1000).max(1000)
}

/// A node status whose capacity (and allocatable) holds `pods` pods.
fn node_status(pods: u64) -> serde_json::Value {
    let capacity = json!({"cpu": "2000", "memory": "8000Gi", "pods": pods.to_string(), "ephemeral-storage": "50Ti"});
    json!({"apiVersion": "v1", "kind": "Node", "status": {"capacity": capacity, "allocatable": capacity}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_take_the_fleet_and_a_thousand_pods_more() {
        assert_eq!(pods_per_node(1), 1001);
        assert_eq!(pods_per_node(819), 1819);
        assert_eq!(pods_per_node(20000), 21000);
    }

    #[test]
    fn the_node_status_gives_the_same_capacity_and_allocatable() {
        let status = node_status(1819);
        assert_eq!(status["kind"], "Node");
        assert_eq!(status["status"]["capacity"]["pods"], "1819");
        assert_eq!(
            status["status"]["capacity"],
            status["status"]["allocatable"]
        );
    }
}
