//! The fleet's objects as a user would apply them: the benchmark's product,
//! its tenants and their sites, and the plan that spreads N sites over tenants.

use serde_json::json;

pub(super) const PRODUCT: &str = "bench";
pub(super) const SITES_PER_TENANT: u32 = 10;

pub(super) fn product() -> serde_json::Value {
    json!({
        "apiVersion": mutu_api::API_VERSION, "kind": "Product",
        "metadata": {"name": PRODUCT},
        "spec": {
            "displayName": "Benchmark site",
            "engine": "plone",
            "image": "registry.imio.be/bench/plone",
            "release": "1.0",
            "replicas": 1,
            "storage": {"mode": "zeo", "size": "1Gi"},
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
        },
    })
}

pub(super) fn tenant(name: &str, sites: u32) -> serde_json::Value {
    json!({
        "apiVersion": mutu_api::API_VERSION, "kind": "MemberTenant",
        "metadata": {"name": name},
        "spec": {
            "displayName": format!("Bench {name}"),
            "category": "commune",
            "province": "namur",
            "domains": [format!("{name}.test")],
            "entitlements": {PRODUCT: sites},
            "deletionPolicy": "Delete",
        },
    })
}

pub(super) fn site(tenant: &str, i: u32) -> serde_json::Value {
    json!({
        "apiVersion": mutu_api::API_VERSION, "kind": "PloneSite",
        "metadata": {"name": format!("site-{i:02}"), "namespace": mutu_api::tenant_namespace(tenant)},
        "spec": {"product": PRODUCT, "hostnames": [format!("site-{i:02}.{tenant}.test")]},
    })
}

/// The tenants and their sites: 10 sites per tenant, the last one fewer.
pub(super) fn fleet_plan(prefix: &str, sites: u32) -> Vec<(String, u32)> {
    let tenants = sites.div_ceil(SITES_PER_TENANT);
    (0..tenants)
        .map(|t| {
            let n = (sites - t * SITES_PER_TENANT).min(SITES_PER_TENANT);
            (format!("{prefix}-{t:05}"), n)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fleet_has_ten_sites_per_tenant() {
        let plan = fleet_plan("bench", 819);
        assert_eq!(plan.len(), 82);
        assert_eq!(plan.iter().map(|(_, k)| k).sum::<u32>(), 819);
        assert_eq!(plan.last().map(|(_, k)| *k), Some(9));
    }
}
