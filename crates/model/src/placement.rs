//! Where a site runs: the node pool is mutu's decision (never a field Git
//! owns), and a site moves to a pool only where the pool has room for it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;
use mutu_api::product::ZEO_REQUESTS;
use mutu_api::{PloneSite, ProductSpec};

use crate::quantity;
use crate::storage::{self, Storage};

/// The pool a site runs on: the one a MigrationPlan set (annotation
/// `hosting.imio.be/pool`, when it is a valid name), else the one its status
/// records, else `default_pool` for a new site.
pub fn pool_of(site: &PloneSite, default_pool: &str) -> String {
    site.annotations()
        .get(mutu_api::POOL_ANNOTATION)
        .filter(|p| !p.is_empty() && mutu_api::common::is_dns_label(p))
        .cloned()
        .or_else(|| site.status.as_ref().and_then(|s| s.pool.clone()))
        .unwrap_or_else(|| default_pool.to_string())
}

/// Room for the site on `pool`: its servers' CPU and memory requests fit in
/// what the pool's schedulable nodes have left. A quantity that cannot be
/// read is said, never counted as nothing.
pub fn fits_on_pool(
    site: &PloneSite,
    product: &ProductSpec,
    pool: &str,
    nodes: &[Arc<Node>],
    pods: &[Arc<Pod>],
) -> Result<(), String> {
    let replicas = site.spec.replicas.unwrap_or(product.replicas).max(0) as i64;
    let req = product
        .resources
        .as_ref()
        .map(|r| r.to_requirements())
        .and_then(|r| r.requests)
        .unwrap_or_default();
    let of_product = || format!("the requests of Product {}", site.spec.product);
    // Saturating: a member's replicas times a product's requests may not fit
    // in 64 bits, and must then count as too much, never as little.
    let (mut cpu, mut mem) = (
        amount(&req, "cpu", of_product)?.saturating_mul(replicas),
        amount(&req, "memory", of_product)?.saturating_mul(replicas),
    );
    if storage::of_site(site, product) == Storage::Zeo {
        let zeo = |q: &str| Quantity(q.to_string());
        cpu = cpu.saturating_add(quantity::millicores(&zeo(ZEO_REQUESTS.0)).unwrap_or_default());
        mem = mem.saturating_add(quantity::units(&zeo(ZEO_REQUESTS.1)).unwrap_or_default());
    }
    let nodes: Vec<&Arc<Node>> = nodes
        .iter()
        .filter(|n| n.labels().get(mutu_api::POOL_LABEL).map(String::as_str) == Some(pool))
        .filter(|n| n.spec.as_ref().and_then(|s| s.unschedulable) != Some(true))
        .collect();
    if nodes.is_empty() {
        return Err(format!(
            "pool {pool} has no schedulable node (label {}={pool})",
            mutu_api::POOL_LABEL
        ));
    }
    let names: BTreeSet<String> = nodes.iter().map(|n| n.name_any()).collect();
    let (mut free_cpu, mut free_mem) = (0i64, 0i64);
    for n in &nodes {
        let alloc = n
            .status
            .as_ref()
            .and_then(|s| s.allocatable.clone())
            .unwrap_or_default();
        let of_node = || format!("what node {} can allocate", n.name_any());
        free_cpu = free_cpu.saturating_add(amount(&alloc, "cpu", of_node)?);
        free_mem = free_mem.saturating_add(amount(&alloc, "memory", of_node)?);
    }
    for p in pods {
        let on = p.spec.as_ref().and_then(|s| s.node_name.clone());
        let done = matches!(
            p.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        if done || !on.is_some_and(|n| names.contains(&n)) {
            continue;
        }
        for c in p.spec.iter().flat_map(|s| s.containers.iter()) {
            let r = c
                .resources
                .as_ref()
                .and_then(|r| r.requests.clone())
                .unwrap_or_default();
            let of_pod = || {
                format!(
                    "the requests of pod {}/{}",
                    p.namespace().unwrap_or_default(),
                    p.name_any()
                )
            };
            free_cpu = free_cpu.saturating_sub(amount(&r, "cpu", of_pod)?);
            free_mem = free_mem.saturating_sub(amount(&r, "memory", of_pod)?);
        }
    }
    if free_cpu < cpu || free_mem < mem {
        return Err(format!(
            "no room on pool {pool}: the site needs {cpu}m CPU and {} MiB of memory, the pool's {} schedulable nodes have {}m CPU and {} MiB left; add nodes to the pool or free some",
            mem >> 20,
            nodes.len(),
            free_cpu.max(0),
            free_mem.max(0) >> 20
        ));
    }
    Ok(())
}

/// Millicores (`cpu`) or bytes (anything else) of `resource` in `list`, 0
/// when it is not there; one that cannot be read says so, naming `whose`.
fn amount(
    list: &BTreeMap<String, Quantity>,
    resource: &str,
    whose: impl Fn() -> String,
) -> Result<i64, String> {
    let Some(q) = list.get(resource) else {
        return Ok(0);
    };
    let read = if resource == "cpu" {
        quantity::millicores(q)
    } else {
        quantity::units(q)
    };
    read.ok_or_else(|| {
        format!(
            "cannot read the {resource} quantity {:?} of {}: the room on the pool cannot be counted",
            q.0,
            whose()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FRONTEND: &str = "frontend";

    fn site() -> PloneSite {
        serde_json::from_value(json!({
            "apiVersion": "hosting.imio.be/v1alpha1", "kind": "PloneSite",
            "metadata": {"name": "delib", "namespace": "t"},
            "spec": {"product": "delib", "hostnames": ["delib.mons.be"]},
        }))
        .unwrap_or_else(|e| panic!("a site: {e}"))
    }

    fn zeo() -> ProductSpec {
        serde_json::from_value(json!({
            "displayName": "Delib", "engine": "plone", "image": "registry/delib",
            "release": "1", "replicas": 2,
            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
        }))
        .unwrap_or_else(|e| panic!("a product: {e}"))
    }

    #[test]
    fn a_site_runs_where_a_plan_put_it_else_where_it_ran_else_on_the_default_pool() {
        let mut s = site();
        assert_eq!(pool_of(&s, FRONTEND), FRONTEND);
        s.status = Some(serde_json::from_value(json!({"pool": "physical"})).unwrap_or_default());
        assert_eq!(pool_of(&s, FRONTEND), "physical");
        s.metadata.annotations = Some(BTreeMap::from([(
            mutu_api::POOL_ANNOTATION.to_string(),
            "frontend".to_string(),
        )]));
        assert_eq!(pool_of(&s, "physical"), FRONTEND);
        s.metadata.annotations = Some(BTreeMap::from([(
            mutu_api::POOL_ANNOTATION.to_string(),
            "Not A Pool!".to_string(),
        )]));
        assert_eq!(
            pool_of(&s, FRONTEND),
            "physical",
            "an invalid name is ignored"
        );
    }

    fn node(name: &str, pool: &str, cpu: &str, memory: &str) -> Arc<Node> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {mutu_api::POOL_LABEL: pool}},
                "status": {"allocatable": {"cpu": cpu, "memory": memory}},
            }))
            .unwrap_or_else(|e| panic!("a node: {e}")),
        )
    }

    fn pod_on(node: &str, cpu: &str, memory: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "other", "namespace": "t2"},
                "spec": {"nodeName": node, "containers": [{"name": "c",
                    "resources": {"requests": {"cpu": cpu, "memory": memory}}}]},
            }))
            .unwrap_or_else(|e| panic!("a pod: {e}")),
        )
    }

    #[test]
    fn a_site_fits_on_a_pool_only_with_room_on_its_schedulable_nodes() {
        let s = site();
        let p = zeo();
        assert!(
            fits_on_pool(&s, &p, FRONTEND, &[], &[])
                .is_err_and(|e| e.contains("no schedulable node"))
        );
        let nodes = [
            node("n1", FRONTEND, "2", "4Gi"),
            node("n2", "physical", "64", "64Gi"),
        ];
        assert_eq!(fits_on_pool(&s, &p, FRONTEND, &nodes, &[]), Ok(()));
        let busy = [pod_on("n1", "1950m", "1Gi")];
        let err = fits_on_pool(&s, &p, FRONTEND, &nodes, &busy)
            .err()
            .unwrap_or_default();
        assert!(err.starts_with("no room on pool frontend"), "{err}");
    }

    #[test]
    fn an_unreadable_quantity_is_named_not_counted_as_nothing() {
        let s = site();
        let nodes = [node("n1", FRONTEND, "2", "lots")];
        let err = fits_on_pool(&s, &zeo(), FRONTEND, &nodes, &[])
            .err()
            .unwrap_or_default();
        assert!(
            err.contains("\"lots\"") && err.contains("what node n1 can allocate"),
            "{err}"
        );
        let nodes = [node("n1", FRONTEND, "2", "4Gi")];
        let err = fits_on_pool(&s, &zeo(), FRONTEND, &nodes, &[pod_on("n1", "x", "1Gi")])
            .err()
            .unwrap_or_default();
        assert!(err.contains("pod t2/other"), "{err}");
    }
}
