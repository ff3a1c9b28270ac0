//! CertificateIssuer: how certificates are issued: ACME (HTTP-01), an internal CA, or
//! self-signed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use kube::core::Duration;

use crate::common::SecretRef;

/// How certificates are issued. Exactly one of `acme`, `ca` or `selfSigned`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "hosting.imio.be",
    version = "v1alpha1",
    kind = "CertificateIssuer",
    status = "CertificateIssuerStatus",
    cel,
    derive = "PartialEq",
    shortname = "ci",
    shortname = "certissuer",
    category = "mutu",
    doc = "How certificates are issued, cluster-wide: by an ACME server (Let's Encrypt, or Pebble in development) answering HTTP-01 challenges, by an internal CA, or self-signed. Certificates name it in spec.issuerRef.",
    printcolumn(name = "Type", type_ = "string", json_path = ".status.type"),
    printcolumn(
        name = "Server",
        type_ = "string",
        json_path = ".spec.acme.server",
        priority = 1
    ),
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
#[x_kube(validation = Rule::new("(has(self.acme) ? 1 : 0) + (has(self.ca) ? 1 : 0) + (has(self.selfSigned) ? 1 : 0) == 1").message(
    "spec: set exactly one of spec.acme, spec.ca or spec.selfSigned"
))]
pub struct CertificateIssuerSpec {
    /// Issue from an ACME server, proving control of each name with an HTTP-01 challenge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acme: Option<AcmeIssuer>,

    /// Issue from a CA whose certificate and key are in a Secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<CaIssuer>,

    /// Sign each certificate with its own key (tests and internal endpoints only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub self_signed: Option<SelfSignedIssuer>,
}

/// An ACME account on an ACME server.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AcmeIssuer {
    /// Directory URL of the ACME server, e.g.
    /// `https://acme-v02.api.letsencrypt.org/directory` or, in development,
    /// `https://127.0.0.1:14000/dir`.
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.startsWith('https://')").message(
        "spec.acme.server: must be the https:// URL of an ACME directory, e.g. https://acme-v02.api.letsencrypt.org/directory"
    ))]
    pub server: String,

    /// Contact address of the ACME account; the server sends expiry warnings there.
    #[schemars(length(max = 254))]
    #[x_kube(validation = Rule::new("self.matches('^[^@ ]+@[^@ ]+$')").message(
        "spec.acme.email: must be an e-mail address, e.g. hosting@imio.be"
    ))]
    pub email: String,

    /// Secret (in the operator's namespace) holding the ACME account key under `tls.key`.
    /// Created with a new key when missing.
    pub account_key_secret_ref: SecretRef,

    /// How HTTP-01 challenges are answered.
    #[serde(default)]
    pub http01: Http01Solver,

    /// PEM bundle of extra roots to trust when talking to the server (e.g. Pebble's). Leave it
    /// out for the system roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub ca_bundle: Option<String>,

    /// ACME profile of the orders (the server's directory lists them), e.g. `classic` or
    /// `shortlived` at Let's Encrypt. Left out: the server chooses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub profile: Option<String>,

    /// The server's rate limits, which mutu counts its own orders against and never exceeds:
    /// issuance waits in a queue instead. Let's Encrypt's limits when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<AcmeRateLimits>,
}

/// The rate limits of an ACME server, and the share of them mutu may use.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(window_rule("newOrders")).message(
    "spec.acme.rateLimits.newOrders.window: must be a duration in hours, minutes or seconds, e.g. 3h"
).field_path(".newOrders.window"))]
#[x_kube(validation = Rule::new(window_rule("certificatesPerDomain")).message(
    "spec.acme.rateLimits.certificatesPerDomain.window: must be a duration in hours, minutes or seconds, e.g. 168h"
).field_path(".certificatesPerDomain.window"))]
#[x_kube(validation = Rule::new(window_rule("duplicateCertificates")).message(
    "spec.acme.rateLimits.duplicateCertificates.window: must be a duration in hours, minutes or seconds, e.g. 168h"
).field_path(".duplicateCertificates.window"))]
pub struct AcmeRateLimits {
    /// New orders per account (Let's Encrypt: 300 per 3h).
    #[serde(default = "default_new_orders")]
    pub new_orders: RateLimit,

    /// Certificates per registered domain, e.g. every name under `mons.be` (Let's Encrypt: 50
    /// per 168h).
    #[serde(default = "default_per_domain")]
    pub certificates_per_domain: RateLimit,

    /// Certificates for exactly the same set of names (Let's Encrypt: 5 per 168h).
    #[serde(default = "default_duplicates")]
    pub duplicate_certificates: RateLimit,

    /// Share of each limit mutu may use, in percent (default 80), leaving room for manual
    /// orders and clock differences.
    #[serde(default = "default_budget_percent")]
    #[schemars(range(min = 1, max = 100))]
    pub budget_percent: u8,
}

impl Default for AcmeRateLimits {
    fn default() -> Self {
        Self {
            new_orders: default_new_orders(),
            certificates_per_domain: default_per_domain(),
            duplicate_certificates: default_duplicates(),
            budget_percent: default_budget_percent(),
        }
    }
}

/// At most `limit` events in any `window`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// Events allowed in one window.
    #[schemars(range(min = 1, max = 1000000))]
    pub limit: u32,

    /// Length of the rolling window, as a duration such as `3h` or `168h`.
    #[schemars(length(max = 32))]
    #[serde(deserialize_with = "crate::common::read_duration")]
    pub window: Duration,
}

/// CEL rule: the window of the limit `field`, when set, is a duration.
fn window_rule(field: &str) -> String {
    format!(
        "!has(self.{field}) || self.{field}.window.matches('{}')",
        crate::common::DURATION_PATTERN
    )
}

fn rate(limit: u32, hours: u64) -> RateLimit {
    RateLimit {
        limit,
        window: Duration::from(std::time::Duration::from_secs(hours * 3600)),
    }
}

fn default_new_orders() -> RateLimit {
    rate(300, 3)
}

fn default_per_domain() -> RateLimit {
    rate(50, 168)
}

fn default_duplicates() -> RateLimit {
    rate(5, 168)
}

fn default_budget_percent() -> u8 {
    80
}

/// HTTP-01 challenge settings.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Http01Solver {
    /// IngressClass of the temporary Ingress that serves challenge tokens. Leave it out for
    /// the cluster default.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub ingress_class_name: Option<String>,
}

/// A CA kept in a Secret.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CaIssuer {
    /// Secret (in the operator's namespace) holding the CA's `tls.crt` and `tls.key`.
    #[schemars(length(max = 253))]
    pub secret_name: String,

    /// Create a new CA in that Secret when it does not exist (development and internal use).
    #[serde(default)]
    pub create: bool,
}

/// Self-signed issuance; no settings.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
pub struct SelfSignedIssuer {}

/// What mutu observed about an issuer.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CertificateIssuerStatus {
    /// The `metadata.generation` this status describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Current state: `Ready` when the ACME account is registered or the CA is loaded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// Which kind of issuer this is: `ACME`, `CA` or `SelfSigned`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,

    /// URI of the registered ACME account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acme_account_uri: Option<String>,
}
