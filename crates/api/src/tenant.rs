//! MemberTenant: one member of the cooperative (commune, CPAS, zone...): its namespace, admins,
//! entitlements, quota and DNS domains.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use crate::common::{DeletionPolicy, dns_name_list};

/// A member of the cooperative and what it may host.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "hosting.imio.be",
    version = "v1alpha1",
    kind = "MemberTenant",
    status = "MemberTenantStatus",
    cel,
    derive = "PartialEq",
    shortname = "mt",
    category = "mutu",
    doc = "A member of the cooperative (commune, CPAS, police or rescue zone, province, intercommunale, RCA). mutu gives it a namespace tenant-<name>, access for its admins, and a quota; its sites may use only its domains and the products it is entitled to.",
    printcolumn(
        name = "Display Name",
        type_ = "string",
        json_path = ".spec.displayName"
    ),
    printcolumn(name = "Category", type_ = "string", json_path = ".spec.category"),
    printcolumn(
        name = "Province",
        type_ = "string",
        json_path = ".spec.province",
        priority = 1
    ),
    printcolumn(name = "Namespace", type_ = "string", json_path = ".status.namespace"),
    printcolumn(name = "Suspended", type_ = "boolean", json_path = ".spec.suspended"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MemberTenantSpec {
    /// Official name of the member, e.g. `Ville de Mons` or `CPAS de Wanze`.
    #[schemars(length(max = 128))]
    pub display_name: String,

    /// Kind of public body: commune, cpas, police-zone, rescue-zone, province,
    /// intercommunale or rca (autonomous municipal board).
    pub category: Category,

    /// Province the member belongs to. Leave it out for bodies spanning several provinces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub province: Option<Province>,

    /// Inhabitants served (for communes and CPAS), used to size defaults and reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0").message(
        "spec.population: must be 0 or more inhabitants"
    ))]
    pub population: Option<i64>,

    /// DNS suffixes the member's sites may use, e.g. `mons.be`: a site hostname must be one of
    /// them or a name under one. Lower-case DNS names, at most 32.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "domains_schema")]
    pub domains: Vec<String>,

    /// Who administers the member's sites and requests new ones.
    #[serde(default)]
    pub admins: Admins,

    /// Products the member may host and how many sites of each, keyed by Product name, e.g.
    /// `delib: 1`. A product not listed is not allowed. At most 64 products.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    #[x_kube(validation = Rule::new("self.all(product, self[product] >= 0)").message(
        "spec.entitlements: each product's site count must be 0 or more, e.g. delib: 1"
    ))]
    pub entitlements: BTreeMap<String, i32>,

    /// Overrides the quota mutu computes from the entitlements and the products' per-instance
    /// quota. Leave it out to use the computed quota.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<TenantQuota>,

    /// How the member's requests for new sites (ProvisioningRequests) are decided and
    /// fulfilled. Leave it out to follow the products' settings and let mutu create the sites.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provisioning: Option<crate::provisioning::TenantProvisioning>,

    /// Stops every site of the member (replicas 0) without deleting anything, e.g. while a
    /// member leaves. Set back to false to restart them.
    #[serde(default)]
    pub suspended: bool,

    /// What happens to the namespace and its sites' data when the MemberTenant is deleted:
    /// `Retain` (the default) keeps them, `Delete` removes them.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

fn domains_schema(_: &mut SchemaGenerator) -> Schema {
    dns_name_list("spec.domains", "mons.be", false, false, 32)
}

/// Kind of public body a member is.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
#[schemars(description = "")] // keep the field's doc in the CRD: see the `common` module doc
pub enum Category {
    /// A commune or ville.
    Commune,
    /// A public social-welfare centre.
    Cpas,
    /// A police zone.
    PoliceZone,
    /// A fire and rescue zone.
    RescueZone,
    /// A province.
    Province,
    /// An intercommunale.
    Intercommunale,
    /// An autonomous municipal board (régie communale autonome).
    Rca,
}

/// A province of Wallonia.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
#[schemars(description = "")] // keep the field's doc in the CRD: see the `common` module doc
pub enum Province {
    /// Hainaut.
    Hainaut,
    /// Liège.
    Liege,
    /// Luxembourg.
    Luxembourg,
    /// Namur.
    Namur,
    /// Walloon Brabant.
    BrabantWallon,
}

/// Admins of a member: identities as the identity provider sends them. Kubernetes' own
/// identities (`system:` users and groups, e.g. `system:authenticated`) are refused: they would
/// give the member's rights to everyone the cluster knows.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Admins {
    /// Groups whose members are admins (as sent in `X-Forwarded-Groups`), e.g. `mons-admins`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(max = 253)))]
    #[x_kube(validation = Rule::new("self.all(g, !g.startsWith('system:') && g != '')").message(
        "spec.admins.groups: a system: group (e.g. system:authenticated) or an empty name would give the member's rights to users who are not its admins; name the member's own group, e.g. mons-admins"
    ))]
    pub groups: Vec<String>,

    /// Individual admins (as sent in `X-Forwarded-User`), e.g. `jdupont@mons.be`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 253)))]
    #[x_kube(validation = Rule::new("self.all(u, !u.startsWith('system:') && u != '')").message(
        "spec.admins.users: a system: user (e.g. system:anonymous or a service account) or an empty name cannot be a member's admin; name a person, e.g. jdupont@mons.be"
    ))]
    pub users: Vec<String>,
}

/// Quota override of a member's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TenantQuota {
    /// Total CPU requests of the namespace, e.g. `8`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Quantity>,

    /// Total memory requests of the namespace, e.g. `16Gi`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,

    /// Total persistent storage of the namespace, e.g. `200Gi`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<Quantity>,

    /// Maximum number of sites, whatever the entitlements say.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0").message("spec.quota.sites: must be 0 or more"))]
    pub sites: Option<i32>,
}

/// What mutu observed about a member.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MemberTenantStatus {
    /// The `metadata.generation` this status describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Current state: `Ready` when the namespace, access and quota are in place.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// Namespace mutu created for the member (`tenant-<name>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// Number of sites the member has, per product, e.g. `delib: 1`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sites: BTreeMap<String, i32>,

    /// The domains the member was admitted with: its sites and certificates may use names
    /// under these only. A change of `spec.domains` that is refused leaves them as they
    /// were (a removed domain goes at once), and a domain held here comes before another
    /// tenant's claim on it, whatever the tenants' ages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domains: Option<Vec<String>>,
}
