//! ProvisioningRequest: a member's request for a new site, validated, approved, then fulfilled.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use crate::common::dns_name_list;

/// A member's request for a new site.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "hosting.imio.be",
    version = "v1alpha1",
    kind = "ProvisioningRequest",
    namespaced,
    status = "ProvisioningRequestStatus",
    cel,
    derive = "PartialEq",
    shortname = "pr",
    category = "mutu",
    doc = "A member's request for a new site, in the member's namespace. mutu checks it against the tenant's entitlements, domains and quota, waits for approval, then creates the PloneSite it renders.",
    printcolumn(name = "Product", type_ = "string", json_path = ".spec.product"),
    printcolumn(name = "Hostname", type_ = "string", json_path = ".spec.hostnames[0]"),
    printcolumn(name = "Decision", type_ = "string", json_path = ".status.decision"),
    printcolumn(name = "Site", type_ = "string", json_path = ".status.site"),
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
pub struct ProvisioningRequestSpec {
    /// Product of the catalog wanted, e.g. `delib`. The tenant must be entitled to it.
    #[schemars(length(max = 63))]
    pub product: String,

    /// Hostnames the new site should answer on, e.g. `deliberations.clavier.be`. Lower-case DNS
    /// names under the tenant's domains. At least 1, at most 32.
    #[schemars(schema_with = "hostnames_schema")]
    pub hostnames: Vec<String>,

    /// Name of the PloneSite to create. Leave it out to use the product's name, e.g. `delib`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub site_name: Option<String>,

    /// Settings of the new site.
    #[serde(default)]
    pub options: SiteOptions,

    /// Why the member needs the site, for whoever approves it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub comment: Option<String>,
}

fn hostnames_schema(_: &mut SchemaGenerator) -> Schema {
    dns_name_list(
        "spec.hostnames",
        "deliberations.clavier.be",
        false,
        true,
        32,
    )
}

/// Settings of a requested site.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SiteOptions {
    /// Number of instances. Leave it out for the product's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0").message("spec.options.replicas: must be 0 or more"))]
    pub replicas: Option<i32>,

    /// Main language of the site: `fr` (the default), `de`, `nl` or `en`.
    #[serde(default)]
    pub language: Language,
}

/// Language of a site.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
#[schemars(description = "")] // keep the field's doc in the CRD: see the `common` module doc
pub enum Language {
    /// French.
    #[default]
    Fr,
    /// German (German-speaking Community).
    De,
    /// Dutch.
    Nl,
    /// English.
    En,
}

impl Language {
    /// The language's ISO 639-1 code, e.g. `fr`, as Plone takes it.
    pub fn code(self) -> &'static str {
        match self {
            Language::Fr => "fr",
            Language::De => "de",
            Language::Nl => "nl",
            Language::En => "en",
        }
    }
}

/// Decision on a request.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[schemars(description = "")] // keep the field's doc in the CRD: see the `common` module doc
pub enum Decision {
    /// Waiting for a person (or failing validation; see `reasons`).
    #[default]
    Pending,
    /// Approved: the site is created.
    Approved,
    /// Denied; `reasons` says why.
    Denied,
}

/// What mutu observed and decided about a request.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProvisioningRequestStatus {
    /// The `metadata.generation` this status describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Current state: `Validated` (entitlement, domains, names and quota check out),
    /// `Approved`, `Fulfilled` (the site exists and is Ready), and `Ready` (the same as
    /// `Fulfilled`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// `Pending`, `Approved` or `Denied`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,

    /// Every reason the request cannot be fulfilled as it is, one per item (all of them, not
    /// just the first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<RequestReason>,

    /// Who decided: the approver's identity, or `mutu` for an automatic approval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,

    /// When the decision was taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision_time: Option<Time>,

    /// The `metadata.generation` the decision was taken on. A change of the spec after it puts
    /// the request back to `Pending`: an approval covers only what the approver saw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_generation: Option<i64>,

    /// What the approver wrote with the decision: the reason of a denial, or a note.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub decision_message: Option<String>,

    /// Name of the PloneSite created for the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,

    /// The PloneSite the request renders to, as YAML: what approval will create.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rendered_site: Option<String>,
}

/// One reason a request cannot be fulfilled as it is.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RequestReason {
    /// What kind of problem, for programs (the portal words it in French): `NoTenant`,
    /// `UnknownProduct`, `NotEntitled`, `OverEntitlement`, `ForeignHostname`,
    /// `HostnameTaken`, `SiteNameTaken`, `ReplicasOutOfRange`, `QuotaExceeded`,
    /// `TenantNotReady` or `Denied`.
    pub code: String,

    /// What the reason is about: the hostname, product or site name concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,

    /// What is wrong and what to change, in English.
    pub message: String,
}

/// Who decides a request.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[schemars(description = "")] // keep the field's doc in the CRD: see the `common` module doc
pub enum Approval {
    /// mutu approves at once a request that passes every check.
    Auto,
    /// A person holding the approver role decides (`mutu request approve|deny`, or the portal).
    Manual,
}

/// How an approved request becomes a site.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[schemars(description = "")] // keep the field's doc in the CRD: see the `common` module doc
pub enum Fulfilment {
    /// mutu creates the PloneSite.
    #[default]
    Create,
    /// mutu does not create the site: it records the PloneSite's YAML in the request's status
    /// (`mutu request render NS/NAME` prints it) for a pull request to the GitOps repository.
    /// The request completes when that site appears.
    GitOps,
}

/// A Product's rules for members' requests.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProductProvisioning {
    /// Who decides members' requests for this product: `Auto` or `Manual`. A member's own
    /// setting (MemberTenant `spec.provisioning.approval`) wins. Leave both out for `Manual`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,

    /// Most instances a member may ask for in `spec.options.replicas`. Leave it out for the
    /// product's default number of instances.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message(
        "spec.provisioning.maxReplicas: must be 1 or more"
    ))]
    pub max_replicas: Option<i32>,
}

/// A member's rules for its requests.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TenantProvisioning {
    /// Who decides the member's requests: `Auto` or `Manual`. Leave it out to follow each
    /// product's setting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,

    /// How approved requests become sites: `Create` (the default) or `GitOps`.
    #[serde(default)]
    pub fulfilment: Fulfilment,
}

/// Who decides a request for `product` of a member: the member's setting, else the
/// product's, else a person.
pub fn approval(
    tenant: Option<&TenantProvisioning>,
    product: Option<&ProductProvisioning>,
) -> Approval {
    tenant
        .and_then(|t| t.approval)
        .or_else(|| product.and_then(|p| p.approval))
        .unwrap_or(Approval::Manual)
}
