//! SolrIndex: the search index of one site (Solr collection, alias and configset).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::core::Duration;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::common::{DURATION_RULE, DeletionPolicy};

/// The Solr index of one site. An empty spec means the default Solr and the product's
/// configset.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "hosting.imio.be",
    version = "v1alpha1",
    kind = "SolrIndex",
    plural = "solrindexes",
    namespaced,
    status = "SolrIndexStatus",
    cel,
    derive = "PartialEq",
    shortname = "solr",
    category = "mutu",
    doc = "The search index of one site: a Solr collection built from the product's configset, and the alias Plone talks to. Named like its PloneSite.",
    printcolumn(name = "Alias", type_ = "string", json_path = ".status.alias"),
    printcolumn(
        name = "Collection",
        type_ = "string",
        json_path = ".status.collection"
    ),
    printcolumn(
        name = "Configset",
        type_ = "string",
        json_path = ".status.configsetVersion"
    ),
    printcolumn(name = "Documents", type_ = "integer", json_path = ".status.documents"),
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
pub struct SolrIndexSpec {
    /// PloneSite this index belongs to, in the same namespace. Leave it out when the
    /// SolrIndex has the site's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub site: Option<String>,

    /// Base URL of the Solr cluster, e.g. `http://solr.solr.svc:8983/solr`. Leave it out for
    /// the operator's default Solr.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^https?://[^/ ]+(/[^ ]*)?$')").message(
        "spec.url: must be an http:// or https:// URL of a Solr cluster, e.g. http://solr.solr.svc:8983/solr"
    ))]
    pub url: Option<String>,

    /// Configset the collection is created from. Leave it out for the product's configset.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub configset: Option<String>,

    /// Version of the configset, e.g. `2`. Changing it builds a new collection beside the
    /// current one and runs the site's reindex Job into it; the alias stays on the current
    /// collection, so search keeps answering, and moves to the new one only when the Job
    /// succeeded (condition `Reindexed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message(
        "spec.configsetVersion: must be lower-case letters, digits and '-', e.g. 2"
    ))]
    pub configset_version: Option<String>,

    /// How long the collection the alias left behind is kept (so the index can go back to it)
    /// before it is deleted, as a duration such as `168h`. Leave it out for the operator's
    /// default (`--solr-keep-previous`, 7 days).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::common::read_optional_duration"
    )]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(DURATION_RULE).message(
        "spec.keepPreviousFor: must be a duration in hours, minutes or seconds, e.g. 168h"
    ))]
    pub keep_previous_for: Option<Duration>,

    /// What happens to the collection when the SolrIndex is deleted: `Retain` (the default)
    /// keeps it, `Delete` removes it.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// What mutu observed about a Solr index.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SolrIndexStatus {
    /// The `metadata.generation` this status describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Current state: `Ready` when the alias points to a collection that answers queries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// Solr collection holding the documents now, e.g. `tenant-mons-delib-v3`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,

    /// Alias Plone queries, e.g. `tenant-mons-delib`. It stays the same when the collection is
    /// rebuilt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,

    /// Configset version of the current collection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configset_version: Option<String>,

    /// Number of documents in the current collection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documents: Option<i64>,

    /// The collection being built for a new configset version, until its reindex Job succeeded
    /// and the alias moved to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<PendingCollection>,

    /// Collections the alias left, kept until `spec.keepPreviousFor` has passed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous: Vec<PreviousCollection>,

    /// The value of the annotation `hosting.imio.be/catch-up` whose catch-up succeeded last:
    /// the index was brought in line with the site's content after it was set (a Restore sets
    /// it, then waits for it here).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub caught_up: Option<String>,
}

/// A collection waiting for its reindex.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PendingCollection {
    /// The new collection, e.g. `tenant-mons.delib_v2`.
    pub collection: String,
    /// Its configset version.
    pub configset_version: String,
    /// The Job that reindexes the site into it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
}

/// A collection the alias no longer points to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PreviousCollection {
    /// The collection, e.g. `tenant-mons.delib_v1`.
    pub collection: String,
    /// When the alias moved away from it.
    pub retired_at: Time,
    /// When mutu deletes it.
    pub delete_after: Time,
}
