//! Certificate: a TLS certificate for some DNS names, kept valid in a Secret.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::core::Duration;
use kube::{CustomResource, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use crate::common::{DURATION_RULE, dns_name_list};

/// A TLS certificate kept valid in a Secret.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "hosting.imio.be",
    version = "v1alpha1",
    kind = "Certificate",
    namespaced,
    status = "CertificateStatus",
    cel,
    derive = "PartialEq",
    shortname = "mcert",
    category = "mutu",
    doc = "A TLS certificate for some DNS names, issued by a CertificateIssuer and kept valid in a Secret (tls.crt, tls.key, ca.crt). Renewed before it expires.",
    printcolumn(name = "Secret", type_ = "string", json_path = ".spec.secretName"),
    printcolumn(name = "Issuer", type_ = "string", json_path = ".spec.issuerRef.name"),
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
    // Future times as `date` columns print as <invalid>: these two are strings.
    printcolumn(name = "Expires", type_ = "string", json_path = ".status.notAfter"),
    printcolumn(
        name = "Renewal",
        type_ = "string",
        json_path = ".status.renewalTime",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(RENEW_BEFORE_SHORTER_RULE).message(
    "spec.renewBefore: must be shorter than spec.duration, e.g. duration 2160h with renewBefore 720h"
).field_path(".renewBefore"))]
pub struct CertificateSpec {
    /// DNS names the certificate is valid for, e.g. `deliberations.mons.be`. Lower-case DNS
    /// names; the first label may be `*` for a wildcard (`*.mons.be`: internal CA and
    /// self-signed only, ACME HTTP-01 cannot prove a wildcard).
    /// At least 1, at most 100.
    #[schemars(schema_with = "dns_names_schema")]
    pub dns_names: Vec<String>,

    /// Secret (in the same namespace) that receives the certificate and key, as a
    /// `kubernetes.io/tls` Secret.
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')").message(
        "spec.secretName: must be a Secret name: lower-case letters, digits, '-' and '.', e.g. deliberations-mons-be-tls"
    ))]
    pub secret_name: String,

    /// Issuer that signs the certificate.
    pub issuer_ref: IssuerRef,

    /// Requested lifetime, as a duration such as `2160h` (90 days). Leave it out for the
    /// issuer's default. ACME servers may issue a shorter one.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::common::read_optional_duration"
    )]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(DURATION_RULE).message(
        "spec.duration: must be a duration in hours, minutes or seconds, e.g. 2160h"
    ))]
    pub duration: Option<Duration>,

    /// How long before expiry renewal starts, as a duration such as `720h`. Leave it out to
    /// renew at two thirds of the lifetime (or inside the ACME server's renewal window).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::common::read_optional_duration"
    )]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(DURATION_RULE).message(
        "spec.renewBefore: must be a duration in hours, minutes or seconds, e.g. 720h"
    ))]
    pub renew_before: Option<Duration>,

    /// Private key settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<PrivateKey>,
}

/// CEL rule: `renewBefore` is shorter than `duration` (checked only when both are well-formed
/// durations; their own rules report malformed ones).
const RENEW_BEFORE_SHORTER_RULE: &str = "!has(self.duration) || !has(self.renewBefore) \
    || !self.duration.matches('^([0-9]+(h|m|s|ms))+$') || !self.renewBefore.matches('^([0-9]+(h|m|s|ms))+$') \
    || duration(self.renewBefore) < duration(self.duration)";

fn dns_names_schema(_: &mut SchemaGenerator) -> Schema {
    dns_name_list("spec.dnsNames", "deliberations.mons.be", true, true, 100)
}

/// Reference to the issuer of a certificate.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IssuerRef {
    /// Name of the issuer, e.g. `letsencrypt` or `dev-acme`.
    #[schemars(length(max = 253))]
    pub name: String,

    /// Kind of the issuer. Only `CertificateIssuer` (cluster-wide) exists today.
    #[serde(default)]
    pub kind: IssuerKind,
}

/// Kinds of issuer a certificate can reference.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[schemars(description = "")] // keep the field's doc in the CRD: see the `common` module doc
pub enum IssuerKind {
    /// A cluster-wide CertificateIssuer.
    #[default]
    CertificateIssuer,
}

/// Private key settings of a certificate.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PrivateKey {
    /// `Always` (the default) makes a new key at each renewal; `Never` keeps the key of the
    /// Secret.
    #[serde(default)]
    pub rotation_policy: RotationPolicy,
}

/// Whether a renewal makes a new private key.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[schemars(description = "")] // keep the field's doc in the CRD: see the `common` module doc
pub enum RotationPolicy {
    /// A new key at each renewal.
    #[default]
    Always,
    /// Keep the existing key.
    Never,
}

/// What mutu observed about a certificate.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStatus {
    /// The `metadata.generation` this status describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Current state: `Ready` when the Secret holds a valid certificate for all the
    /// `dnsNames`, `Progressing` while one is being issued.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// Start of validity of the certificate in the Secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Time>,

    /// Expiry of the certificate in the Secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Time>,

    /// When mutu will renew it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renewal_time: Option<Time>,

    /// When issuance last failed. Retries back off from there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<Time>,

    /// Why issuance last failed, as the issuer said it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure_message: Option<String>,

    /// Failed issuance attempts since the last success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_attempts: Option<i32>,

    /// The ACME order in progress. Recorded before anything else is done with it, so that a
    /// restarted operator resumes this order instead of placing another.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<AcmeOrder>,

    /// When ACME orders were placed for this certificate in the last 7 days, oldest first.
    /// The fleet-wide rate-limit budget is counted from these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub recent_orders: Vec<Time>,
}

/// An ACME order in progress.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AcmeOrder {
    /// URL of the order on the ACME server.
    pub url: String,
    /// The names it was placed for.
    pub dns_names: Vec<String>,
    /// When it was placed.
    pub placed_at: Time,
}
