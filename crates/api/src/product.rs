//! Product: one product of the catalog (delib, docs, pst, urban, web, ...): its engine, image,
//! current release and the defaults every site of the product starts from.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::RELEASE_RULE;

/// A product of the hosting catalog and the defaults of its sites.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "hosting.imio.be",
    version = "v1alpha1",
    kind = "Product",
    status = "ProductStatus",
    cel,
    derive = "PartialEq",
    shortname = "prod",
    category = "mutu",
    doc = "A product of the hosting catalog (ia.Délib, ia.Docs, ia.Web, ...): what it runs on, which image and release, and the defaults of every site of the product.",
    printcolumn(
        name = "Display Name",
        type_ = "string",
        json_path = ".spec.displayName"
    ),
    printcolumn(name = "Engine", type_ = "string", json_path = ".spec.engine"),
    printcolumn(name = "Release", type_ = "string", json_path = ".spec.release"),
    printcolumn(name = "Sites", type_ = "integer", json_path = ".status.sites"),
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
#[x_kube(validation = Rule::new("self.engine == 'plone' || !has(self.storage) || !has(self.storage.mode)").message(
    "spec.storage.mode: only engine plone has a storage mode (zeo or relstorage); remove it for engine generic"
).field_path(".storage.mode").reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("self.engine == 'plone' || !has(self.solr) || !self.solr.enabled").message(
    "spec.solr.enabled: only engine plone sites use Solr; set it to false or remove spec.solr for engine generic"
).field_path(".solr.enabled").reason(Reason::FieldValueForbidden))]
pub struct ProductSpec {
    /// Name shown to members and in the portal, e.g. `ia.Délib`.
    #[schemars(length(max = 128))]
    pub display_name: String,

    /// What runs the product: `plone` (Plone with a ZODB, Solr optional) or `generic` (any web
    /// application image listening on `port`).
    pub engine: Engine,

    /// Image repository without tag, e.g. `registry.imio.be/imio/delib`. The tag is the release.
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new("!self.contains('@') && !self.matches(':[^/]*$')").message(
        "spec.image: must be an image repository without tag or digest, e.g. registry.imio.be/imio/delib; the tag goes in spec.release"
    ))]
    pub image: String,

    /// Current release (image tag), e.g. `4.2.18`: what new sites get and what sites without a
    /// pinned release run. Changing it does not upgrade running sites; a ReleaseRollout does.
    #[schemars(length(max = 128))]
    #[x_kube(validation = Rule::new(RELEASE_RULE).message(
        "spec.release: must be an image tag: letters, digits, '_', '.' and '-', e.g. 4.2.18"
    ))]
    pub release: String,

    /// Default number of instances (pods) of each site.
    #[serde(default = "default_replicas")]
    #[x_kube(validation = Rule::new("self >= 0").message("spec.replicas: must be 0 or more"))]
    pub replicas: i32,

    /// CPU and memory of each instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<InstanceResources>,

    /// Default storage of each site.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<ProductStorage>,

    /// Solr search for the product's sites (engine `plone` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub solr: Option<ProductSolr>,

    /// HTTP path that answers 200 when an instance is healthy, e.g. `/ok`. Used by the
    /// readiness probe and by wave checks after a move or an upgrade.
    #[serde(default = "default_health_path")]
    #[schemars(length(max = 256))]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message(
        "spec.healthPath: must be an absolute HTTP path starting with '/', e.g. /ok"
    ))]
    pub health_path: String,

    /// Command run once in the new release's image before the instances restart on it, e.g.
    /// `[/app/bin/zconsole, run, /app/etc/zope.conf]`. For engine plone, mutu appends its
    /// upgrade script and the site id (`/opt/mutu/upgrade_site.py Plone`), which runs the core
    /// and add-on upgrade steps. Empty: no upgrade step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub upgrade_command: Vec<String>,

    /// Command run once when a site is created, e.g. `[/app/bin/zconsole, run,
    /// /app/etc/zope.conf]`. For engine plone, mutu appends its creation script, the site id
    /// and title (`/opt/mutu/create_site.py Plone TITLE`). Empty: nothing to run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub site_creation_command: Vec<String>,

    /// What one instance counts against its tenant's quota. mutu counts at least what an
    /// instance runs at its busiest: its ZEO server, its servers and one more pod (a rolling
    /// update's surge, or a site-creation, upgrade, backup or reindex Job), and its volume.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<InstanceQuota>,

    /// How members' requests for this product (ProvisioningRequests) are decided and what
    /// they may ask for. Leave it out for manual approval and at most the default replicas.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provisioning: Option<crate::provisioning::ProductProvisioning>,

    /// TCP port the application listens on.
    #[serde(default = "default_port")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message(
        "spec.port: must be a TCP port between 1 and 65535, e.g. 8080"
    ))]
    pub port: i32,
}

fn default_replicas() -> i32 {
    1
}

fn default_health_path() -> String {
    "/ok".to_string()
}

fn default_port() -> i32 {
    8080
}

/// What runs a product.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[schemars(description = "")] // keep the field's doc in the CRD: see the `common` module doc
pub enum Engine {
    /// Plone on a ZODB (ZEO or RelStorage), optionally with Solr.
    Plone,
    /// Any web application image; no ZODB, no Solr.
    Generic,
}

/// Where a Plone site's ZODB lives.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
#[schemars(description = "")] // keep the field's doc in the CRD: see the `common` module doc
pub enum StorageMode {
    /// Filestorage and blobs on a volume, served by a ZEO server next to the instances.
    #[default]
    Zeo,
    /// RelStorage on a PostgreSQL database.
    Relstorage,
}

/// What the ZEO server of a site requests (engine plone, storage `zeo`).
pub const ZEO_REQUESTS: (&str, &str) = ("100m", "256Mi");

/// What a container that names no requests gets in a member's namespace (its LimitRange):
/// CPU and memory. mutu's site-creation and upgrade Jobs run with it.
pub const DEFAULT_REQUESTS: (&str, &str) = ("100m", "256Mi");

/// CPU and memory of each instance of a product.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct InstanceResources {
    /// What the scheduler reserves for each instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<ComputeResources>,

    /// The most each instance may use. Above its memory limit an instance is restarted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<ComputeResources>,
}

impl InstanceResources {
    /// The container resources these settings stand for.
    pub fn to_requirements(&self) -> ResourceRequirements {
        ResourceRequirements {
            requests: self.requests.as_ref().map(ComputeResources::to_map),
            limits: self.limits.as_ref().map(ComputeResources::to_map),
            ..ResourceRequirements::default()
        }
    }
}

/// An amount of CPU and memory.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ComputeResources {
    /// CPU, in cores or millicores, e.g. `500m`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Quantity>,

    /// Memory, e.g. `1Gi`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
}

impl ComputeResources {
    fn to_map(&self) -> BTreeMap<String, Quantity> {
        [("cpu", &self.cpu), ("memory", &self.memory)]
            .into_iter()
            .filter_map(|(name, value)| value.clone().map(|v| (name.to_string(), v)))
            .collect()
    }
}

/// Default storage of a product's sites.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProductStorage {
    /// `zeo` (the default for engine plone) or `relstorage`. Engine `generic` has no mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<StorageMode>,

    /// Size of each site's volume, e.g. `10Gi` (filestorage and blobs for `zeo`, the
    /// application's data for `generic`). No volume when left out for engine generic.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<Quantity>,

    /// StorageClass of the volumes. Leave it out for the cluster default.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub storage_class_name: Option<String>,
}

/// Solr settings of a product.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProductSolr {
    /// Whether sites of the product get a Solr index by default.
    #[serde(default)]
    pub enabled: bool,

    /// Name of the Solr configset the product's collections use, e.g. `plone` (mutu ships
    /// `plone` in versions 1 and 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub configset: Option<String>,

    /// Current version of that configset, e.g. `2`. New indexes use it; existing ones move to
    /// it when reindexed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub configset_version: Option<String>,
}

/// Resources one instance counts against its tenant's quota.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct InstanceQuota {
    /// CPU, e.g. `500m`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Quantity>,

    /// Memory, e.g. `1Gi`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,

    /// Persistent storage, e.g. `10Gi`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<Quantity>,
}

/// What mutu observed about a product.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProductStatus {
    /// The `metadata.generation` this status describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Current state: `Ready` when the product's image and release resolve.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// Number of PloneSites of this product across all tenants.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sites: Option<i32>,

    /// Number of those sites running `spec.release`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sites_on_release: Option<i32>,
}
