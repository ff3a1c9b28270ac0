//! CEL rules of MemberTenant and ProvisioningRequest: one valid and one invalid object each.

use serde_json::{Value, json};

use super::{accepted, merged, object, rejected};
use crate::{MemberTenant, ProvisioningRequest};

fn tenant(patch: Value) -> MemberTenant {
    let base = json!({
        "displayName": "Ville de Mons",
        "category": "commune",
        "province": "hainaut",
        "population": 95299,
        "domains": ["mons.be"],
        "entitlements": { "delib": 1, "web": 2 },
    });
    object(merged(base, patch))
}

fn request(patch: Value) -> ProvisioningRequest {
    let base = json!({ "product": "web", "hostnames": ["www.clavier.be"] });
    object(merged(base, patch))
}

#[test]
fn tenant_domains_must_be_lower_case_dns_names() {
    accepted(tenant(json!({ "domains": ["mons.be", "ville-de-mons.be"] })).validate_cel());
    rejected(
        tenant(json!({ "domains": ["Mons.be"] })).validate_cel(),
        "spec.domains",
    );
    rejected(
        tenant(json!({ "domains": ["*.mons.be"] })).validate_cel(),
        "spec.domains",
    );
}

#[test]
fn tenant_population_cannot_be_negative() {
    accepted(tenant(json!({ "population": 0 })).validate_cel());
    rejected(
        tenant(json!({ "population": -1 })).validate_cel(),
        "spec.population",
    );
}

#[test]
fn tenant_entitlements_cannot_be_negative() {
    accepted(tenant(json!({ "entitlements": { "delib": 0 } })).validate_cel());
    let negative = json!({ "entitlements": { "delib": -1 } });
    rejected(tenant(negative).validate_cel(), "spec.entitlements");
}

#[test]
fn tenant_quota_sites_cannot_be_negative() {
    accepted(tenant(json!({ "quota": { "sites": 0, "cpu": "4" } })).validate_cel());
    rejected(
        tenant(json!({ "quota": { "sites": -1 } })).validate_cel(),
        "spec.quota.sites",
    );
}

#[test]
fn tenant_deletion_policy_defaults_to_retain() {
    assert_eq!(
        tenant(json!({})).spec.deletion_policy,
        crate::DeletionPolicy::Retain
    );
}

#[test]
fn request_hostnames_must_be_lower_case_dns_names() {
    accepted(request(json!({ "hostnames": ["www.clavier.be", "clavier.be"] })).validate_cel());
    let bad = json!({ "hostnames": ["www.clavier.be", "WWW.CLAVIER.BE"] });
    rejected(request(bad).validate_cel(), "spec.hostnames");
}

#[test]
fn request_needs_at_least_one_hostname() {
    rejected(
        request(json!({ "hostnames": [] })).validate_cel(),
        "spec.hostnames",
    );
}

#[test]
fn request_replicas_cannot_be_negative() {
    accepted(request(json!({ "options": { "replicas": 2, "language": "de" } })).validate_cel());
    let bad = json!({ "options": { "replicas": -1 } });
    rejected(request(bad).validate_cel(), "spec.options.replicas");
}
