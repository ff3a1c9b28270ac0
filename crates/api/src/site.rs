//! PloneSite: one hosted instance of a product in a tenant namespace (workloads, storage,
//! ingress, TLS, Solr, backups). Where it runs is mutu's decision, shown in its status.

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use crate::common::{DeletionPolicy, RELEASE_RULE, SecretRef, dns_name_list};
use crate::product::StorageMode;

/// A hosted Plone site of one member: the desired product, release, hostnames and data.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "hosting.imio.be",
    version = "v1alpha1",
    kind = "PloneSite",
    namespaced,
    status = "PloneSiteStatus",
    cel,
    derive = "PartialEq",
    shortname = "ps",
    category = "mutu",
    doc = "A hosted instance of a catalog product for one member, in the member's namespace. mutu runs its workloads, storage, ingress, TLS certificate, Solr index and backups, and chooses the node pool it runs on.",
    printcolumn(name = "Product", type_ = "string", json_path = ".spec.product"),
    printcolumn(name = "Release", type_ = "string", json_path = ".status.release"),
    printcolumn(name = "URL", type_ = "string", json_path = ".status.url"),
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
    printcolumn(name = "Pool", type_ = "string", json_path = ".status.pool"),
    printcolumn(
        name = "Nodes",
        type_ = "string",
        json_path = ".status.nodes",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PloneSiteSpec {
    /// Name of the Product this site is an instance of (e.g. `delib`, `docs`, `web`). Fixed at
    /// creation: to change product, create a new site and migrate the content.
    #[schemars(length(max = 63))]
    #[x_kube(validation = Rule::new("self == oldSelf").message(
        "spec.product: cannot be changed after creation; create a new PloneSite for another product"
    ))]
    pub product: String,

    /// Release (image tag) to run, e.g. `4.2.18`. Leave it out to follow the Product's current
    /// release; set it to pin this site (a ReleaseRollout moves pinned sites too).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    #[x_kube(validation = Rule::new(RELEASE_RULE).message(
        "spec.release: must be an image tag: letters, digits, '_', '.' and '-', e.g. 4.2.18"
    ))]
    pub release: Option<String>,

    /// Public hostnames the site answers on, e.g. `deliberations.mons.be`. The first one is the
    /// canonical URL. Each must be a lower-case DNS name under one of the tenant's domains; the
    /// TLS certificate covers all of them. At least 1, at most 32.
    #[schemars(schema_with = "hostnames_schema")]
    pub hostnames: Vec<String>,

    /// Number of Plone instances (pods) serving the site. Leave it out for the Product's
    /// default; 0 stops the site without deleting its data.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0").message(
        "spec.replicas: must be 0 or more (0 stops the site and keeps its data)"
    ))]
    pub replicas: Option<i32>,

    /// Main language of the site, set when it is created: `fr` (the default), `de`, `nl` or
    /// `en`. Changing it later changes nothing in the existing site.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<crate::provisioning::Language>,

    /// Where the site's database lives. Leave it out for the Product's defaults.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<SiteStorage>,

    /// Search with Solr. Leave it out for the Product's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub solr: Option<SiteSolr>,

    /// TLS certificate settings. Leave it out for the default issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<SiteTls>,

    /// Backup settings. Leave it out for the BackupPolicy that covers the product or the
    /// default policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<SiteBackup>,

    /// What happens to the site's data (volume or database, Solr index, backups) when the
    /// PloneSite is deleted: `Retain` (the default) keeps it, `Delete` removes it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

fn hostnames_schema(_: &mut SchemaGenerator) -> Schema {
    dns_name_list("spec.hostnames", "deliberations.mons.be", false, true, 32)
}

/// Where a site's ZODB lives: ZEO filestorage on a volume, or RelStorage on PostgreSQL.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.mode) || self.mode != 'relstorage' || has(self.secretRef)").message(
    "spec.storage.secretRef: required when spec.storage.mode is relstorage (the Secret holding the PostgreSQL connection)"
).field_path(".secretRef").reason(Reason::FieldValueRequired))]
pub struct SiteStorage {
    /// `zeo` (filestorage on a volume served by a ZEO server) or `relstorage` (PostgreSQL).
    /// Leave it out for the Product's mode. Fixed once set: moving between modes is a data
    /// migration.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message(
        "spec.storage.mode: cannot be changed once set; moving between zeo and relstorage is a data migration to a new site"
    ))]
    pub mode: Option<StorageMode>,

    /// Size of the volume for `zeo` (filestorage and blobs), e.g. `20Gi`. Leave it out for the
    /// Product's size. Volumes can grow, not shrink.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<Quantity>,

    /// StorageClass of the volume for `zeo`. Leave it out for the cluster default.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub storage_class_name: Option<String>,

    /// For `relstorage`: the Secret in the site's namespace whose `dsn` key holds the
    /// PostgreSQL connection string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
}

/// Solr search for one site.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SiteSolr {
    /// Whether the site gets a Solr index. Leave it out for the Product's setting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,

    /// Version of the Product's configset to use, e.g. `3`. Leave it out for the Product's
    /// current configset version.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub configset_version: Option<String>,
}

/// TLS for one site.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SiteTls {
    /// Name of the CertificateIssuer that issues the site's certificate. Leave it out for the
    /// operator's default issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub issuer: Option<String>,
}

/// Backups of one site.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SiteBackup {
    /// Name of the BackupPolicy for this site. Leave it out for the policy that lists the
    /// site's product, or else the default policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub policy: Option<String>,

    /// Stop scheduled backups of this site (manual Backups still run). Existing backups are
    /// kept.
    #[serde(default)]
    pub suspended: bool,
}

/// What mutu observed about a site.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PloneSiteStatus {
    /// The `metadata.generation` this status describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Current state: `Ready` (serving on every hostname), and the state of storage, TLS,
    /// Solr and backups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// Canonical URL of the site (the first hostname, over https).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,

    /// Hostnames the site was admitted with, and serves. A change of `spec.hostnames` is
    /// admitted as a whole: while it names a hostname that is refused (another member's, or
    /// outside the member's domains), the site keeps serving these, and its `Degraded`
    /// condition says what is refused and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,

    /// Who works on the site's data now, one at a time (a Restore, a MigrationPlan or a
    /// ReleaseRollout; see the annotation `hosting.imio.be/held-by`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_by: Option<String>,

    /// Release (image tag) the site runs now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,

    /// Release it ran before the last upgrade: what a rollback returns to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_release: Option<String>,

    /// Node pool the site's pods run on (`frontend` or `physical`). Chosen by mutu; only a
    /// MigrationPlan moves a site.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,

    /// Nodes the site's pods run on now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,

    /// Number of Plone instances ready to serve.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,

    /// When the last successful backup of the site completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<Time>,
}
