//! The fleet's objects as a user would apply them: the benchmark's product,
//! its tenants and their sites, and the plan that spreads N sites over tenants.

use serde_json::json;

/// The product every site of the benchmark runs.
pub(super) const PRODUCT: &str = "bench";
/// Sites per tenant, the last tenant of a fleet excepted.
const SITES_PER_TENANT: u32 = 10;

/// A fleet's tenants, each with its count of sites.
pub(super) type Plan = Vec<(String, u32)>;

/// The benchmark's product: one small Plone server and its ZEO server per site.
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

/// A tenant entitled to `sites` sites of the benchmark's product.
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

/// The `i`-th site (from 1) of `tenant`.
pub(super) fn site(tenant: &str, i: u32) -> serde_json::Value {
    json!({
        "apiVersion": mutu_api::API_VERSION, "kind": "PloneSite",
        "metadata": {"name": site_name(i), "namespace": mutu_api::tenant_namespace(tenant)},
        "spec": {"product": PRODUCT, "hostnames": [format!("site-{i:02}.{tenant}.test")]},
    })
}

/// The name of a tenant's `i`-th site (from 1).
pub(super) fn site_name(i: u32) -> String {
    format!("site-{i:02}")
}

/// The tenants and their sites: 10 sites per tenant, the last one fewer.
pub(super) fn fleet_plan(prefix: &str, sites: u32) -> Plan {
    let tenants = sites.div_ceil(SITES_PER_TENANT);
    (0..tenants)
        .map(|t| {
            let n = (sites - t * SITES_PER_TENANT).min(SITES_PER_TENANT);
            (format!("{prefix}-{t:05}"), n)
        })
        .collect()
}

/// Every site of `plan`: its tenant and its index (from 1).
pub(super) fn sites_of(plan: &[(String, u32)]) -> impl Iterator<Item = (&str, u32)> {
    plan.iter()
        .flat_map(|(t, k)| (1..=*k).map(move |i| (t.as_str(), i)))
}

/// The `idx`-th site of the fleet (from 0): its tenant and its name.
pub(super) fn site_at(plan: &[(String, u32)], idx: u32) -> (&str, String) {
    let (t, _) = &plan[(idx / SITES_PER_TENANT) as usize];
    (t, site_name(idx % SITES_PER_TENANT + 1))
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

    #[test]
    fn a_small_fleet_has_one_tenant() {
        assert_eq!(fleet_plan("raw", 3), vec![("raw-00000".to_string(), 3)]);
        assert_eq!(fleet_plan("raw", 10).len(), 1);
        assert_eq!(fleet_plan("raw", 11).len(), 2);
    }

    #[test]
    fn the_sites_of_a_plan_are_numbered_from_one_in_each_tenant() {
        let plan = fleet_plan("bench", 12);
        let sites: Vec<(&str, u32)> = sites_of(&plan).collect();
        assert_eq!(sites.len(), 12);
        assert_eq!(sites[0], ("bench-00000", 1));
        assert_eq!(sites[9], ("bench-00000", 10));
        assert_eq!(sites[10], ("bench-00001", 1));
        assert_eq!(sites[11], ("bench-00001", 2));
    }

    #[test]
    fn a_site_is_found_by_its_place_in_the_fleet() {
        let plan = fleet_plan("bench", 25);
        assert_eq!(site_at(&plan, 0), ("bench-00000", "site-01".to_string()));
        assert_eq!(site_at(&plan, 13), ("bench-00001", "site-04".to_string()));
        assert_eq!(site_at(&plan, 24), ("bench-00002", "site-05".to_string()));
    }

    #[test]
    fn a_site_lives_in_its_tenant_namespace() {
        let s = site("bench-00001", 4);
        assert_eq!(s["metadata"]["name"], "site-04");
        assert_eq!(
            s["metadata"]["namespace"],
            mutu_api::tenant_namespace("bench-00001")
        );
        assert_eq!(s["spec"]["hostnames"][0], "site-04.bench-00001.test");
        assert_eq!(tenant("bench-00001", 7)["spec"]["entitlements"][PRODUCT], 7);
    }
}
