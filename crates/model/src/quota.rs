//! What a member may use: what one instance of a product counts against its
//! member's quota, and the member's whole quota from its entitlements. The
//! tenant operator writes it as a ResourceQuota; a provisioning request is
//! checked against the same numbers before a site is created.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use mutu_api::product::{DEFAULT_REQUESTS, ZEO_REQUESTS};
use mutu_api::{MemberTenant, ProductSpec};

use crate::quantity;
use crate::storage;

/// Resource counted by the API server's object-count quota for sites.
pub const SITE_COUNT: &str = "count/plonesites.hosting.imio.be";

/// Operator-wide settings the children depend on.
#[derive(Clone, Debug)]
pub struct Config {
    /// Namespace of the ingress controller, allowed to reach the tenant's pods.
    pub ingress_namespace: String,
    /// Size of the member's backup volume (the backup Jobs' claim, one per
    /// namespace), counted in the storage quota.
    pub backup_volume_size: Quantity,
    /// Where the member's pods may connect outside their namespace.
    pub egress: crate::egress::Egress,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ingress_namespace: "ingress-nginx".to_string(),
            backup_volume_size: Quantity("100Gi".to_string()),
            egress: crate::egress::Egress::default(),
        }
    }
}

/// CPU (cores), memory and storage (bytes) one instance of a product counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerInstance {
    pub cpu: f64,
    pub memory: f64,
    pub storage: f64,
}

/// What one instance of `product` really requests when it is busiest: its ZEO
/// server, its servers plus one more pod (a rolling update's surge, or one of
/// its Jobs: site creation, upgrade, backup, reindex, each at most an
/// instance's size or the namespace's default), and its volume twice (a
/// migration copies it to a new one and keeps the old one for its retention).
pub fn footprint(product: &ProductSpec) -> PerInstance {
    let parse = |q: Option<&Quantity>| q.and_then(quantity::parse).unwrap_or(0.0);
    let fixed = |s: &str| quantity::parse(&Quantity(s.to_string())).unwrap_or(0.0);
    let requests = product.resources.as_ref().and_then(|r| r.requests.as_ref());
    let server_cpu = parse(requests.and_then(|r| r.cpu.as_ref()));
    let server_memory = parse(requests.and_then(|r| r.memory.as_ref()));
    let pods = f64::from(product.replicas.max(0));
    let zeo = storage::product_mode(product) == Some(mutu_api::product::StorageMode::Zeo);
    let (zeo_cpu, zeo_memory) = if zeo {
        (fixed(ZEO_REQUESTS.0), fixed(ZEO_REQUESTS.1))
    } else {
        (0.0, 0.0)
    };
    PerInstance {
        cpu: zeo_cpu + pods * server_cpu + server_cpu.max(fixed(DEFAULT_REQUESTS.0)),
        memory: zeo_memory + pods * server_memory + server_memory.max(fixed(DEFAULT_REQUESTS.1)),
        storage: 2.0 * parse(product.storage.as_ref().and_then(|s| s.size.as_ref())),
    }
}

/// What one instance of `product` counts against its tenant's quota: the
/// product's `spec.quota`, or its [`footprint`] where that is more, so that
/// every site a member is entitled to can run, upgrade and be backed up.
pub fn counted_per_instance(product: &ProductSpec) -> PerInstance {
    let parse = |q: Option<&Quantity>| q.and_then(quantity::parse).unwrap_or(0.0);
    let declared = product.quota.as_ref();
    let real = footprint(product);
    PerInstance {
        cpu: parse(declared.and_then(|q| q.cpu.as_ref())).max(real.cpu),
        memory: parse(declared.and_then(|q| q.memory.as_ref())).max(real.memory),
        storage: parse(declared.and_then(|q| q.storage.as_ref())).max(real.storage),
    }
}

/// The hard limits of a tenant's quota, and the entitled products missing from
/// the catalog (left out of it): the number of sites is the sum of its entitlements (or
/// `spec.quota.sites`), CPU, memory and storage the sum over its entitlements
/// of what each instance counts ([`counted_per_instance`]) and, for storage,
/// the member's backup volume, unless `spec.quota` overrides them.
pub fn hard(
    tenant: &MemberTenant,
    catalog: &BTreeMap<String, ProductSpec>,
    config: &Config,
) -> (BTreeMap<String, Quantity>, Vec<String>) {
    let entitled: i64 = tenant
        .spec
        .entitlements
        .values()
        .map(|n| i64::from((*n).max(0)))
        .sum();
    let (mut cpu, mut memory, mut storage) = (0.0, 0.0, 0.0);
    let mut unknown = Vec::new();
    for (product, count) in &tenant.spec.entitlements {
        let Some(spec) = catalog.get(product) else {
            unknown.push(product.clone());
            continue;
        };
        let n = f64::from((*count).max(0));
        let counted = counted_per_instance(spec);
        cpu += counted.cpu * n;
        memory += counted.memory * n;
        storage += counted.storage * n;
    }
    if storage > 0.0 {
        // The member's backup volume, once sites have volumes to back up.
        storage += quantity::parse(&config.backup_volume_size).unwrap_or(0.0);
    }
    let overrides = tenant.spec.quota.clone().unwrap_or_default();
    let sites = overrides.sites.map(i64::from).unwrap_or(entitled);
    let mut hard = BTreeMap::from([(SITE_COUNT.to_string(), Quantity(sites.to_string()))]);
    let mut put =
        |key: &str, explicit: Option<Quantity>, computed: f64, fmt: fn(f64) -> Quantity| {
            match explicit {
                Some(q) => {
                    hard.insert(key.to_string(), q);
                }
                None if computed > 0.0 => {
                    hard.insert(key.to_string(), fmt(computed));
                }
                None => {}
            }
        };
    put("requests.cpu", overrides.cpu, cpu, quantity::cpu);
    put("requests.memory", overrides.memory, memory, quantity::bytes);
    put(
        "requests.storage",
        overrides.storage,
        storage,
        quantity::bytes,
    );
    (hard, unknown)
}

/// Whether the member's quotas, as the API server counts them (`hard` and
/// `used` of each ResourceQuota of its namespace), leave room for one more
/// volume claim of `size` bytes. A quota whose usage is not counted yet is
/// not judged (the API server still refuses the claim if it must). The error
/// says what is missing and what a person can do about it.
pub fn room_for_claim(
    quotas: &[k8s_openapi::api::core::v1::ResourceQuota],
    size: f64,
) -> Result<(), String> {
    for quota in quotas {
        let name = quota.metadata.name.as_deref().unwrap_or_default();
        let ns = quota.metadata.namespace.as_deref().unwrap_or_default();
        let Some(status) = &quota.status else {
            continue;
        };
        let (Some(hard), Some(used)) = (&status.hard, &status.used) else {
            continue;
        };
        let value =
            |map: &BTreeMap<String, Quantity>, key: &str| map.get(key).and_then(quantity::parse);
        if let (Some(limit), Some(taken)) = (
            value(hard, "requests.storage"),
            value(used, "requests.storage"),
        ) && taken + size > limit
        {
            return Err(format!(
                "the storage quota {name} of namespace {ns} has {} left of {} ({} used), and the new volume needs {}: raise the member's spec.quota.storage (MemberTenant), or delete the volumes it no longer needs (`kubectl get pvc -n {ns}`: old volumes of earlier moves, claims still Terminating while finished pods hold them)",
                human_bytes((limit - taken).max(0.0)),
                human_bytes(limit),
                human_bytes(taken),
                human_bytes(size),
            ));
        }
        if let (Some(limit), Some(taken)) = (
            value(hard, "persistentvolumeclaims"),
            value(used, "persistentvolumeclaims"),
        ) && taken + 1.0 > limit
        {
            return Err(format!(
                "the quota {name} of namespace {ns} allows {limit} volume claims and {taken} exist, and the move needs one more: raise it, or delete the claims the member no longer needs (`kubectl get pvc -n {ns}`)"
            ));
        }
    }
    Ok(())
}

/// Bytes for a person: whole GiB or MiB as a quota writes them.
fn human_bytes(bytes: f64) -> String {
    quantity::bytes(bytes).0
}

#[cfg(test)]
mod room_tests {
    use super::*;
    use k8s_openapi::api::core::v1::ResourceQuota;

    fn quota(hard: &[(&str, &str)], used: &[(&str, &str)]) -> ResourceQuota {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                .collect::<BTreeMap<_, _>>()
        };
        ResourceQuota {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("mutu-quota".into()),
                namespace: Some("member-a".into()),
                ..Default::default()
            },
            spec: None,
            status: Some(k8s_openapi::api::core::v1::ResourceQuotaStatus {
                hard: Some(map(hard)),
                used: Some(map(used)),
            }),
        }
    }

    const GI: f64 = 1024.0 * 1024.0 * 1024.0;

    #[test]
    fn a_claim_fits_when_the_storage_left_holds_it() {
        let q = quota(
            &[("requests.storage", "30Gi")],
            &[("requests.storage", "20Gi")],
        );
        assert_eq!(room_for_claim(std::slice::from_ref(&q), 10.0 * GI), Ok(()));
        let Err(err) = room_for_claim(&[q], 11.0 * GI) else {
            panic!("11Gi fit in 10Gi")
        };
        assert!(
            err.contains("has 10Gi left of 30Gi (20Gi used)")
                && err.contains("needs 11Gi")
                && err.contains("spec.quota.storage"),
            "{err}"
        );
    }

    #[test]
    fn the_count_of_claims_is_checked_too() {
        let q = quota(
            &[("persistentvolumeclaims", "3"), ("requests.storage", "1Ti")],
            &[("persistentvolumeclaims", "3"), ("requests.storage", "1Gi")],
        );
        let Err(err) = room_for_claim(&[q], GI) else {
            panic!("a fourth claim fit in a quota of 3")
        };
        assert!(err.contains("allows 3 volume claims and 3 exist"), "{err}");
    }

    #[test]
    fn a_quota_not_counted_yet_or_without_storage_is_not_judged() {
        let mut uncounted = quota(&[("requests.storage", "1Gi")], &[]);
        if let Some(status) = uncounted.status.as_mut() {
            status.used = None;
        }
        let cpu_only = quota(&[("requests.cpu", "2")], &[("requests.cpu", "2")]);
        assert_eq!(room_for_claim(&[uncounted, cpu_only], 5.0 * GI), Ok(()));
        assert_eq!(room_for_claim(&[], 5.0 * GI), Ok(()));
    }
}
