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

    /// Current state: `Valid` (entitlement, domains and quota check out), `Ready` once the
    /// site is created and ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// `Pending`, `Approved` or `Denied`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,

    /// Why the request cannot be approved as it is, or why it was denied, one reason per item.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,

    /// Who decided (the identity of the approver).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,

    /// When the decision was taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision_time: Option<Time>,

    /// Name of the PloneSite created for the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,

    /// The PloneSite the request renders to, as YAML: what approval will create.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rendered_site: Option<String>,
}
