//! The children a MemberTenant wants, as pure functions of its spec and the
//! product catalog: its namespace, ResourceQuota, LimitRange, NetworkPolicies
//! the RoleBinding of its admins, and their read access to their own
//! MemberTenant and the catalog. No client here; unit-tested from YAML.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, Namespace, ResourceQuota, ResourceQuotaSpec,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use mutu_api::product::DEFAULT_REQUESTS;
use mutu_api::{MemberTenant, ProductSpec, TENANT_LABEL, tenant_namespace};
use mutu_model::egress::{Destination, Peer};
use mutu_model::quota;
pub use mutu_model::quota::{Config, PerInstance, SITE_COUNT, counted_per_instance, footprint};
use mutu_runtime::labels;

/// Name of the ClusterRole that a tenant's admins are bound to in their namespace.
pub const ADMIN_ROLE: &str = "mutu:tenant-admin";
/// Everything one tenant wants to exist.
#[derive(Clone, Debug)]
pub struct Desired {
    pub namespace: Namespace,
    pub quota: ResourceQuota,
    pub limits: LimitRange,
    pub policies: Vec<NetworkPolicy>,
    pub admins: RoleBinding,
    /// Lets the admins read their own MemberTenant and the catalog (cluster-scoped).
    pub reader_role: ClusterRole,
    pub reader_binding: ClusterRoleBinding,
    /// Entitled products missing from the catalog (left out of the quota).
    pub unknown_products: Vec<String>,
}

fn meta(
    tenant: &MemberTenant,
    name: &str,
    component: &str,
    namespace: Option<&str>,
    owned: bool,
) -> ObjectMeta {
    let tenant_name = tenant.name_any();
    let uid = tenant.uid().unwrap_or_default();
    let mut labels = labels::standard(&tenant_name, &uid, component);
    labels.insert(TENANT_LABEL.to_string(), tenant_name);
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some(labels),
        owner_references: owned.then(|| tenant.controller_owner_ref(&()).into_iter().collect()),
        ..Default::default()
    }
}

/// Builds every child of `tenant` from its spec and the `catalog` (products by name).
pub fn build(
    tenant: &MemberTenant,
    catalog: &BTreeMap<String, ProductSpec>,
    config: &Config,
) -> Desired {
    let ns = tenant_namespace(&tenant.name_any());
    let (quota, unknown_products) = quota(tenant, catalog, config, &ns);
    Desired {
        namespace: namespace(tenant, &ns),
        quota,
        limits: limit_range(tenant, &ns),
        policies: network_policies(tenant, &ns, config),
        admins: admin_binding(tenant, &ns),
        reader_role: reader_role(tenant),
        reader_binding: reader_binding(tenant),
        unknown_products,
    }
}

fn namespace(tenant: &MemberTenant, ns: &str) -> Namespace {
    // No owner reference: deleting the tenant must never let the garbage
    // collector take the namespace; the finalizer decides (deletionPolicy).
    let mut metadata = meta(tenant, ns, "namespace", None, false);
    let labels = metadata.labels.get_or_insert_with(BTreeMap::new);
    let category = serde_json::to_value(tenant.spec.category).ok();
    if let Some(category) = category.as_ref().and_then(|v| v.as_str()) {
        labels.insert("hosting.imio.be/category".to_string(), category.to_string());
    }
    let province = tenant
        .spec
        .province
        .and_then(|p| serde_json::to_value(p).ok());
    if let Some(province) = province.as_ref().and_then(|v| v.as_str()) {
        labels.insert("hosting.imio.be/province".to_string(), province.to_string());
    }
    Namespace {
        metadata,
        ..Default::default()
    }
}

/// The tenant's ResourceQuota: its hard limits are [`quota::hard`].
fn quota(
    tenant: &MemberTenant,
    catalog: &BTreeMap<String, ProductSpec>,
    config: &Config,
    ns: &str,
) -> (ResourceQuota, Vec<String>) {
    let (hard, unknown) = quota::hard(tenant, catalog, config);
    let quota = ResourceQuota {
        metadata: meta(tenant, "tenant-quota", "quota", Some(ns), true),
        spec: Some(ResourceQuotaSpec {
            hard: Some(hard),
            ..Default::default()
        }),
        ..Default::default()
    };
    (quota, unknown)
}

fn limit_range(tenant: &MemberTenant, ns: &str) -> LimitRange {
    let q = |s: &str| Quantity(s.to_string());
    LimitRange {
        metadata: meta(tenant, "tenant-limits", "limits", Some(ns), true),
        spec: Some(LimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".to_string(),
                default_request: Some(BTreeMap::from([
                    ("cpu".to_string(), q(DEFAULT_REQUESTS.0)),
                    ("memory".to_string(), q(DEFAULT_REQUESTS.1)),
                ])),
                default: Some(BTreeMap::from([("memory".to_string(), q("1Gi"))])),
                max: Some(BTreeMap::from([
                    ("cpu".to_string(), q("4")),
                    ("memory".to_string(), q("8Gi")),
                ])),
                ..Default::default()
            }],
        }),
    }
}

fn namespace_peer(name: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "kubernetes.io/metadata.name".to_string(),
                name.to_string(),
            )])),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn same_namespace() -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(LabelSelector::default()),
        ..Default::default()
    }
}

/// The peer of a destination: pods of a namespace (all, or those with its
/// labels), or an address block.
fn peer(destination: &Destination) -> NetworkPolicyPeer {
    match &destination.peer {
        Peer::Namespace { name, pods } => NetworkPolicyPeer {
            pod_selector: (!pods.is_empty()).then(|| LabelSelector {
                match_labels: Some(pods.clone()),
                ..Default::default()
            }),
            ..namespace_peer(name)
        },
        Peer::Block(cidr) => NetworkPolicyPeer {
            ip_block: Some(IPBlock {
                cidr: cidr.clone(),
                except: None,
            }),
            ..Default::default()
        },
    }
}

/// Name of the NetworkPolicy that denies everything not allowed by the others.
pub const DEFAULT_DENY: &str = "default-deny";
/// Traffic within the namespace, and from the ingress controller.
pub const ALLOW_TENANT_TRAFFIC: &str = "allow-tenant-traffic";
/// Egress to the cluster's DNS.
pub const ALLOW_DNS: &str = "allow-dns";
/// Egress to the shared Solr.
pub const ALLOW_SOLR: &str = "allow-solr";
/// Egress to the RelStorage databases.
pub const ALLOW_DATABASE: &str = "allow-database";
/// Egress to the mail relay.
pub const ALLOW_MAIL_RELAY: &str = "allow-mail-relay";

/// A policy `name` letting every pod of the namespace connect to
/// `destinations` on their ports, over `protocols`; none without destinations
/// (so a setting removed takes its policy away).
fn egress_policy(
    tenant: &MemberTenant,
    ns: &str,
    name: &str,
    destinations: &[Destination],
    protocols: &[&str],
) -> Option<NetworkPolicy> {
    if destinations.is_empty() {
        return None;
    }
    let rules = destinations
        .iter()
        .map(|d| NetworkPolicyEgressRule {
            to: Some(vec![peer(d)]),
            ports: Some(
                protocols
                    .iter()
                    .map(|protocol| NetworkPolicyPort {
                        protocol: Some(protocol.to_string()),
                        port: Some(IntOrString::Int(i32::from(d.port))),
                        ..Default::default()
                    })
                    .collect(),
            ),
        })
        .collect();
    Some(NetworkPolicy {
        metadata: meta(tenant, name, "network-policy", Some(ns), true),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Egress".to_string()]),
            egress: Some(rules),
            ..Default::default()
        }),
    })
}

/// Deny by default; allow traffic within the namespace and from the ingress
/// controller, and, one policy per purpose so that `kubectl get netpol` says
/// what is allowed, connections to what the platform provides: DNS, Solr, the
/// RelStorage databases and the mail relay. Every pod of the namespace gets
/// the same: the instances, the ZEO server, and the Jobs of site creation,
/// upgrade, backup, restore, pack and reindex need the same peers. Another
/// member's pods are never a peer (unless an address block of the platform's
/// settings covers them).
fn network_policies(tenant: &MemberTenant, ns: &str, config: &Config) -> Vec<NetworkPolicy> {
    let deny = NetworkPolicy {
        metadata: meta(tenant, DEFAULT_DENY, "network-policy", Some(ns), true),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Ingress".to_string(), "Egress".to_string()]),
            ..Default::default()
        }),
    };
    let allow = NetworkPolicy {
        metadata: meta(
            tenant,
            ALLOW_TENANT_TRAFFIC,
            "network-policy",
            Some(ns),
            true,
        ),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Ingress".to_string(), "Egress".to_string()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![
                    same_namespace(),
                    namespace_peer(&config.ingress_namespace),
                ]),
                ..Default::default()
            }]),
            egress: Some(vec![NetworkPolicyEgressRule {
                to: Some(vec![same_namespace()]),
                ..Default::default()
            }]),
        }),
    };
    let egress = &config.egress;
    let tcp: &[&str] = &["TCP"];
    [
        Some(deny),
        Some(allow),
        egress_policy(tenant, ns, ALLOW_DNS, &egress.dns, &["UDP", "TCP"]),
        egress_policy(tenant, ns, ALLOW_SOLR, &egress.solr, tcp),
        egress_policy(tenant, ns, ALLOW_DATABASE, &egress.database, tcp),
        egress_policy(tenant, ns, ALLOW_MAIL_RELAY, &egress.mail_relay, tcp),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Name of the ClusterRole, and its ClusterRoleBinding, that let a tenant's
/// admins read their own MemberTenant and the catalog.
pub fn reader_name(tenant: &str) -> String {
    format!("mutu:tenant:{tenant}")
}

/// What a tenant's admins may read outside their namespace: their own
/// MemberTenant (entitlements, domains, status: what they may ask for) and the
/// product catalog (what there is to ask for). Nothing of another member.
fn reader_role(tenant: &MemberTenant) -> ClusterRole {
    let name = tenant.name_any();
    let rule = |resources: &[&str], names: Option<Vec<String>>, verbs: &[&str]| PolicyRule {
        api_groups: Some(vec![mutu_api::GROUP.to_string()]),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        resource_names: names,
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    ClusterRole {
        metadata: meta(tenant, &reader_name(&name), "rbac", None, true),
        rules: Some(vec![
            rule(
                &["membertenants"],
                Some(vec![name.clone()]),
                &["get", "watch"],
            ),
            rule(&["products"], None, &["get", "list", "watch"]),
        ]),
        aggregation_rule: None,
    }
}

fn reader_binding(tenant: &MemberTenant) -> ClusterRoleBinding {
    let name = reader_name(&tenant.name_any());
    ClusterRoleBinding {
        metadata: meta(tenant, &name, "rbac", None, true),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_string()),
            kind: "ClusterRole".to_string(),
            name,
        },
        subjects: Some(admin_subjects(tenant)),
    }
}

/// The tenant's admins as RBAC subjects: its groups, then its users.
fn admin_subjects(tenant: &MemberTenant) -> Vec<Subject> {
    let admins = &tenant.spec.admins;
    let groups = admins.groups.iter().map(|g| Subject {
        kind: "Group".to_string(),
        name: g.clone(),
        api_group: Some("rbac.authorization.k8s.io".to_string()),
        namespace: None,
    });
    let users = admins.users.iter().map(|u| Subject {
        kind: "User".to_string(),
        name: u.clone(),
        api_group: Some("rbac.authorization.k8s.io".to_string()),
        namespace: None,
    });
    groups.chain(users).collect()
}

fn admin_binding(tenant: &MemberTenant, ns: &str) -> RoleBinding {
    RoleBinding {
        metadata: meta(tenant, "tenant-admins", "rbac", Some(ns), true),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_string()),
            kind: "ClusterRole".to_string(),
            name: ADMIN_ROLE.to_string(),
        },
        subjects: Some(admin_subjects(tenant)),
    }
}

/// What a tenant admin may do, granted only inside the tenant's namespace by a
/// RoleBinding: manage sites, requests and restores; take backups (create and
/// read them: deleting a Backup is the platform's and retention's decision, as
/// a backup's data is kept only while its object exists); read the
/// certificates, search indexes, secrets and events of the namespace.
pub fn admin_cluster_role() -> ClusterRole {
    let rule = |groups: &[&str], resources: &[&str], verbs: &[&str]| PolicyRule {
        api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let manage = [
        "get", "list", "watch", "create", "update", "patch", "delete",
    ];
    let read = ["get", "list", "watch"];
    let mut labels = BTreeMap::new();
    labels.insert(
        labels::MANAGED_BY.to_string(),
        labels::MANAGED_BY_VALUE.to_string(),
    );
    labels.insert(labels::COMPONENT.to_string(), "rbac".to_string());
    labels.insert(labels::INSTANCE.to_string(), "tenant-admin".to_string());
    ClusterRole {
        metadata: ObjectMeta {
            name: Some(ADMIN_ROLE.to_string()),
            labels: Some(labels),
            ..Default::default()
        },
        rules: Some(vec![
            rule(
                &[mutu_api::GROUP],
                &["plonesites", "provisioningrequests", "restores"],
                &manage,
            ),
            rule(
                &[mutu_api::GROUP],
                &["backups"],
                &["get", "list", "watch", "create"],
            ),
            rule(&[mutu_api::GROUP], &["certificates", "solrindexes"], &read),
            rule(&[""], &["secrets", "events"], &read),
        ]),
        aggregation_rule: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mutu_api::product::Product;
    use mutu_model::quantity;

    fn tenant(yaml: &str) -> MemberTenant {
        serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("bad test tenant: {e}"))
    }

    fn catalog() -> BTreeMap<String, ProductSpec> {
        let products: Vec<Product> = ["delib", "web"]
            .iter()
            .map(|name| {
                let yaml = format!(
                    r#"
apiVersion: hosting.imio.be/v1alpha1
kind: Product
metadata: {{name: {name}}}
spec:
  displayName: {name}
  engine: plone
  image: registry.imio.be/imio/{name}
  release: "1.0"
  quota: {{cpu: 500m, memory: 1Gi, storage: 10Gi}}
"#
                );
                serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("bad test product: {e}"))
            })
            .collect();
        products
            .into_iter()
            .map(|p| (p.name_any(), p.spec))
            .collect()
    }

    const MONS: &str = r#"
apiVersion: hosting.imio.be/v1alpha1
kind: MemberTenant
metadata: {name: mons, uid: 0b5e-mons}
spec:
  displayName: Ville de Mons
  category: commune
  province: hainaut
  domains: [mons.be]
  admins: {groups: [mons-admins], users: [jdupont@mons.be]}
  entitlements: {delib: 1, web: 2, atal: 1}
"#;

    #[test]
    fn namespace_is_labelled_with_category_and_province_and_not_owned() {
        let d = build(&tenant(MONS), &catalog(), &Config::default());
        let labels = d.namespace.metadata.labels.clone().unwrap_or_default();
        assert_eq!(d.namespace.metadata.name.as_deref(), Some("tenant-mons"));
        assert_eq!(labels["hosting.imio.be/category"], "commune");
        assert_eq!(labels["hosting.imio.be/province"], "hainaut");
        assert_eq!(labels[TENANT_LABEL], "mons");
        assert_eq!(labels[labels::MANAGED_BY], "mutu");
        assert!(
            d.namespace.metadata.owner_references.is_none(),
            "an owner reference would let the garbage collector delete a retained namespace"
        );
    }

    #[test]
    fn quota_counts_sites_and_sums_product_quotas() {
        let d = build(&tenant(MONS), &catalog(), &Config::default());
        let hard = d.quota.spec.and_then(|s| s.hard).unwrap_or_default();
        assert_eq!(hard[SITE_COUNT].0, "4", "delib 1 + web 2 + atal 1");
        assert_eq!(hard["requests.cpu"].0, "1500m", "3 known instances x 500m");
        assert_eq!(hard["requests.memory"].0, "3Gi");
        assert_eq!(
            hard["requests.storage"].0, "130Gi",
            "30Gi and the backup volume"
        );
        assert_eq!(d.unknown_products, vec!["atal".to_string()]);
        assert_eq!(d.quota.metadata.namespace.as_deref(), Some("tenant-mons"));
    }

    #[test]
    fn an_instance_counts_what_it_really_runs_when_its_product_quota_is_less() {
        let product: Product = serde_saphyr::from_str(
            r#"
apiVersion: hosting.imio.be/v1alpha1
kind: Product
metadata: {name: delib}
spec:
  displayName: delib
  engine: plone
  image: registry.imio.be/imio/delib
  release: "1.0"
  replicas: 2
  resources: {requests: {cpu: 250m, memory: 1Gi}}
  storage: {mode: zeo, size: 20Gi}
  quota: {cpu: 500m, memory: 4Gi, storage: 10Gi}
"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let real = footprint(&product.spec);
        // ZEO 100m + 2 servers x 250m + one more pod (surge or Job) of 250m.
        assert_eq!(quantity::cpu(real.cpu).0, "850m");
        assert_eq!(quantity::bytes(real.memory).0, "3328Mi", "256Mi + 3 x 1Gi");
        assert_eq!(
            quantity::bytes(real.storage).0,
            "40Gi",
            "its volume and a copy"
        );
        let counted = counted_per_instance(&product.spec);
        assert_eq!(
            quantity::cpu(counted.cpu).0,
            "850m",
            "more than the 500m declared"
        );
        assert_eq!(
            quantity::bytes(counted.memory).0,
            "4Gi",
            "the declared 4Gi is more"
        );
        assert_eq!(
            quantity::bytes(counted.storage).0,
            "40Gi",
            "the volumes are more"
        );

        let mut catalog = catalog();
        catalog.insert("delib".to_string(), product.spec);
        let d = build(&tenant(MONS), &catalog, &Config::default());
        let hard = d.quota.spec.and_then(|s| s.hard).unwrap_or_default();
        assert_eq!(hard["requests.cpu"].0, "1850m", "delib 850m + web 2 x 500m");
    }

    #[test]
    fn explicit_quota_overrides_the_computed_one() {
        let yaml = format!("{MONS}  quota: {{cpu: \"8\", sites: 10}}\n");
        let d = build(&tenant(&yaml), &catalog(), &Config::default());
        let hard = d.quota.spec.and_then(|s| s.hard).unwrap_or_default();
        assert_eq!(hard["requests.cpu"].0, "8");
        assert_eq!(hard[SITE_COUNT].0, "10");
        assert_eq!(
            hard["requests.memory"].0, "3Gi",
            "not overridden, still computed"
        );
    }

    #[test]
    fn admins_are_bound_in_their_namespace_only() {
        let d = build(&tenant(MONS), &catalog(), &Config::default());
        assert_eq!(d.admins.metadata.namespace.as_deref(), Some("tenant-mons"));
        assert_eq!(d.admins.role_ref.name, ADMIN_ROLE);
        let subjects = d.admins.subjects.unwrap_or_default();
        let names: Vec<(&str, &str)> = subjects
            .iter()
            .map(|s| (s.kind.as_str(), s.name.as_str()))
            .collect();
        assert_eq!(
            names,
            vec![("Group", "mons-admins"), ("User", "jdupont@mons.be")]
        );
    }

    #[test]
    fn admins_may_read_their_own_tenant_and_the_catalog_only() {
        let d = build(&tenant(MONS), &catalog(), &Config::default());
        assert_eq!(
            d.reader_role.metadata.name.as_deref(),
            Some("mutu:tenant:mons")
        );
        let rules = d.reader_role.rules.clone().unwrap_or_default();
        let tenants = rules
            .iter()
            .find(|r| r.resources.iter().flatten().any(|x| x == "membertenants"))
            .unwrap_or_else(|| panic!("no rule on membertenants: {rules:?}"));
        assert_eq!(tenants.resource_names, Some(vec!["mons".to_string()]));
        assert_eq!(tenants.verbs, vec!["get".to_string(), "watch".to_string()]);
        for rule in &rules {
            assert!(
                !rule
                    .verbs
                    .iter()
                    .any(|v| ["create", "update", "patch", "delete", "*"].contains(&v.as_str())),
                "read only: {rule:?}"
            );
        }
        assert_eq!(d.reader_binding.role_ref.name, "mutu:tenant:mons");
        let subjects: Vec<String> = d
            .reader_binding
            .subjects
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(subjects, vec!["mons-admins", "jdupont@mons.be"]);
        assert!(
            d.reader_role
                .metadata
                .owner_references
                .is_some_and(|o| o.iter().any(|r| r.kind == "MemberTenant")),
            "goes with the tenant"
        );
    }

    fn policy<'a>(d: &'a Desired, name: &str) -> &'a NetworkPolicySpec {
        d.policies
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
            .and_then(|p| p.spec.as_ref())
            .unwrap_or_else(|| panic!("no NetworkPolicy {name}"))
    }

    fn names(d: &Desired) -> Vec<&str> {
        d.policies
            .iter()
            .filter_map(|p| p.metadata.name.as_deref())
            .collect()
    }

    /// The one egress rule of a policy's destination, as (peer, ports).
    fn egress(spec: &NetworkPolicySpec) -> Vec<(serde_json::Value, serde_json::Value)> {
        spec.egress
            .iter()
            .flatten()
            .map(|r| {
                (
                    serde_json::to_value(r.to.clone().unwrap_or_default()).unwrap_or_default(),
                    serde_json::to_value(r.ports.clone().unwrap_or_default()).unwrap_or_default(),
                )
            })
            .collect()
    }

    fn dest(text: &str) -> Destination {
        text.parse()
            .unwrap_or_else(|e| panic!("bad test destination {text}: {e}"))
    }

    #[test]
    fn network_policies_deny_by_default_and_allow_ingress_controller_dns_and_solr() {
        let config = Config {
            ingress_namespace: "ingress-system".to_string(),
            ..Config::default()
        };
        let d = build(&tenant(MONS), &catalog(), &config);
        assert_eq!(
            names(&d),
            vec![DEFAULT_DENY, ALLOW_TENANT_TRAFFIC, ALLOW_DNS, ALLOW_SOLR],
            "no database or mail relay unless the platform names one"
        );
        let deny = policy(&d, DEFAULT_DENY);
        assert!(deny.ingress.is_none() && deny.egress.is_none());

        let allow = policy(&d, ALLOW_TENANT_TRAFFIC);
        let from = serde_json::to_value(&allow.ingress).unwrap_or_default();
        assert_eq!(
            from,
            serde_json::json!([{"from": [
                {"podSelector": {}},
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-system"}}},
            ]}])
        );
        assert_eq!(
            egress(allow),
            vec![(
                serde_json::json!([{"podSelector": {}}]),
                serde_json::json!([])
            )],
            "out of the namespace only through the policies of a purpose"
        );

        let dns = policy(&d, ALLOW_DNS);
        assert_eq!(dns.policy_types, Some(vec!["Egress".to_string()]));
        assert_eq!(
            egress(dns),
            vec![(
                serde_json::json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}]),
                serde_json::json!([{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]),
            )]
        );
        assert_eq!(
            egress(policy(&d, ALLOW_SOLR)),
            vec![(
                serde_json::json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "solr"}}}]),
                serde_json::json!([{"port": 8983, "protocol": "TCP"}]),
            )]
        );
    }

    #[test]
    fn the_platforms_database_and_mail_relay_get_a_policy_each_and_go_with_their_setting() {
        let mut config = Config::default();
        config.egress.database = vec![
            dest("namespace/databases/app.kubernetes.io/name=postgresql:5432"),
            dest("10.20.0.0/24:5432"),
        ];
        config.egress.mail_relay = vec![dest("10.0.0.25:25")];
        let d = build(&tenant(MONS), &catalog(), &config);
        assert_eq!(
            egress(policy(&d, ALLOW_DATABASE)),
            vec![
                (
                    serde_json::json!([{
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "databases"}},
                        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "postgresql"}},
                    }]),
                    serde_json::json!([{"port": 5432, "protocol": "TCP"}]),
                ),
                (
                    serde_json::json!([{"ipBlock": {"cidr": "10.20.0.0/24"}}]),
                    serde_json::json!([{"port": 5432, "protocol": "TCP"}]),
                ),
            ]
        );
        assert_eq!(
            egress(policy(&d, ALLOW_MAIL_RELAY)),
            vec![(
                serde_json::json!([{"ipBlock": {"cidr": "10.0.0.25/32"}}]),
                serde_json::json!([{"port": 25, "protocol": "TCP"}]),
            )]
        );
        for p in &d.policies {
            let labels = p.metadata.labels.clone().unwrap_or_default();
            assert_eq!(
                labels.get(labels::OWNER_UID).map(String::as_str),
                Some("0b5e-mons"),
                "pruned by this label when no longer wanted"
            );
        }

        // The relay's setting removed: its policy is no longer wanted (the
        // reconcile prunes it), the others stay as they are.
        config.egress.mail_relay.clear();
        config.egress.solr.clear();
        let after = build(&tenant(MONS), &catalog(), &config);
        assert_eq!(
            names(&after),
            vec![
                DEFAULT_DENY,
                ALLOW_TENANT_TRAFFIC,
                ALLOW_DNS,
                ALLOW_DATABASE
            ]
        );
    }

    #[test]
    fn no_policy_lets_a_members_pods_reach_another_member() {
        let mut config = Config::default();
        config.egress.database = vec![dest("postgres.databases.svc:5432")];
        config.egress.mail_relay = vec![dest("namespace/mail:25")];
        let d = build(&tenant(MONS), &catalog(), &config);
        for p in &d.policies {
            let spec = p.spec.clone().unwrap_or_default();
            let peers = spec
                .egress
                .iter()
                .flatten()
                .flat_map(|r| r.to.clone().unwrap_or_default());
            for peer in peers {
                match (&peer.namespace_selector, &peer.ip_block) {
                    // Same namespace only.
                    (None, None) => assert!(peer.pod_selector.is_some()),
                    (Some(ns), None) => {
                        let name = ns
                            .match_labels
                            .as_ref()
                            .and_then(|l| l.get("kubernetes.io/metadata.name"));
                        assert!(
                            name.is_some_and(|n| !n.starts_with("tenant-")),
                            "{:?}: a namespace selector that may select a member: {ns:?}",
                            p.metadata.name
                        );
                    }
                    (_, Some(_)) => {}
                }
                assert!(
                    peer.pod_selector.is_some()
                        || peer.namespace_selector.is_some()
                        || peer.ip_block.is_some(),
                    "an empty peer allows everything"
                );
            }
        }
    }

    #[test]
    fn namespaced_children_are_owned_by_the_tenant() {
        let d = build(&tenant(MONS), &catalog(), &Config::default());
        for meta in [
            &d.quota.metadata,
            &d.limits.metadata,
            &d.admins.metadata,
            &d.policies[0].metadata,
        ] {
            let owners = meta.owner_references.clone().unwrap_or_default();
            assert_eq!(owners.len(), 1);
            assert_eq!(owners[0].kind, "MemberTenant");
            assert_eq!(owners[0].uid, "0b5e-mons");
            assert_eq!(
                meta.labels.as_ref().map(|l| l[labels::OWNER_UID].as_str()),
                Some("0b5e-mons")
            );
        }
    }

    #[test]
    fn admin_role_grants_nothing_cluster_wide_or_on_tenants() {
        let role = serde_json::to_string(&admin_cluster_role()).unwrap_or_default();
        assert!(!role.contains("membertenants"));
        assert!(!role.contains("\"*\""), "no wildcards");
    }
}
