//! CEL rules of Certificate and CertificateIssuer: one valid and one invalid object each.

use serde_json::{Value, json};

use super::fixtures::{raw, validate_raw};
use super::{accepted, merged, object, rejected};
use crate::{Certificate, CertificateIssuer};

fn base_spec() -> Value {
    json!({
        "dnsNames": ["deliberations.mons.be"],
        "secretName": "deliberations-mons-be-tls",
        "issuerRef": { "name": "letsencrypt" },
    })
}

fn certificate(patch: Value) -> Certificate {
    object(merged(base_spec(), patch))
}

fn acme() -> Value {
    json!({
        "server": "https://127.0.0.1:14000/dir",
        "email": "hosting@imio.be",
        "accountKeySecretRef": { "name": "dev-acme-account" },
    })
}

fn issuer(spec: Value) -> CertificateIssuer {
    object(spec)
}

#[test]
fn certificate_dns_names_must_be_lower_case_dns_names_or_wildcards() {
    let ok = json!({ "dnsNames": ["mons.be", "*.mons.be"] });
    accepted(certificate(ok).validate_cel());
    for bad in ["Mons.be", "www.*.mons.be", "*mons.be", "mons_be"] {
        rejected(
            certificate(json!({ "dnsNames": [bad] })).validate_cel(),
            "spec.dnsNames",
        );
    }
}

#[test]
fn certificate_needs_at_least_one_dns_name() {
    rejected(
        certificate(json!({ "dnsNames": [] })).validate_cel(),
        "spec.dnsNames",
    );
}

#[test]
fn certificate_secret_name_is_a_kubernetes_name() {
    rejected(
        certificate(json!({ "secretName": "Mons_TLS" })).validate_cel(),
        "spec.secretName",
    );
}

#[test]
fn certificate_durations_are_go_durations() {
    let ok = json!({ "duration": "2160h", "renewBefore": "720h30m" });
    accepted(certificate(ok).validate_cel());
    // "90d" is no Go duration: it cannot even be read into the typed object, so the raw
    // manifest is checked, as the API server would.
    for (field, patch) in [
        ("spec.duration", json!({ "duration": "90d" })),
        (
            "spec.renewBefore",
            json!({ "duration": "2160h", "renewBefore": "30 days" }),
        ),
    ] {
        let spec = merged(base_spec(), patch);
        rejected(validate_raw(&raw("Certificate", spec), None), field);
    }
}

#[test]
fn certificate_renews_before_it_expires() {
    let ok = json!({ "duration": "2160h", "renewBefore": "720h" });
    accepted(certificate(ok).validate_cel());
    let bad = json!({ "duration": "720h", "renewBefore": "2160h" });
    rejected(certificate(bad).validate_cel(), "spec.renewBefore");
}

#[test]
fn issuer_has_exactly_one_type() {
    accepted(issuer(json!({ "acme": acme() })).validate_cel());
    accepted(issuer(json!({ "ca": { "secretName": "dev-ca", "create": true } })).validate_cel());
    accepted(issuer(json!({ "selfSigned": {} })).validate_cel());
    rejected(issuer(json!({})).validate_cel(), "spec");
    let both = json!({ "acme": acme(), "selfSigned": {} });
    rejected(issuer(both).validate_cel(), "spec");
}

#[test]
fn issuer_acme_server_is_https() {
    let plain = merged(acme(), json!({ "server": "http://acme.example/dir" }));
    rejected(
        issuer(json!({ "acme": plain })).validate_cel(),
        "spec.acme.server",
    );
}

#[test]
fn issuer_acme_email_is_an_address() {
    let bad = merged(acme(), json!({ "email": "hosting" }));
    rejected(
        issuer(json!({ "acme": bad })).validate_cel(),
        "spec.acme.email",
    );
}
