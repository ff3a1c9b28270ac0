//! A control plane of the benchmark's own for each phase, started fresh and
//! given room on its simulated nodes for the fleet's pods.

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
    let local = crate::dev::start(&args.dir, args.api_port, keep).await?;
    let result = async {
        let kubeconfig = kube::config::Kubeconfig::read_from(&local.kubeconfig)?;
        let client = Client::try_from(
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?,
        )?;
        make_room(&client, args.sites).await?;
        phase(client).await
    }
    .await;
    if !keep {
        crate::dev::stop(local).await?;
    }
    result
}

/// Room for the fleet's pods on the simulated nodes.
pub(super) async fn make_room(client: &Client, n: u32) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let pods_per_node = (u64::from(n) * 5 / 5 + 1000).max(1000);
    for node in nodes.list(&ListParams::default()).await? {
        let name = node.name_any();
        let capacity = json!({"cpu": "2000", "memory": "8000Gi", "pods": pods_per_node.to_string(), "ephemeral-storage": "50Ti"});
        nodes
            .patch_status(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&json!({"apiVersion": "v1", "kind": "Node", "status": {"capacity": capacity, "allocatable": capacity}})),
            )
            .await?;
    }
    Ok(())
}
