//! Certificates that are never issued: in a tenant namespace without its
//! MemberTenant, for names outside the member's domains, or wildcards from an
//! ACME issuer (HTTP-01 cannot prove them).

use kube::ResourceExt;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::{ObjectRef, Store};
use mutu_api::common::{TENANT_NAMESPACE_PREFIX, is_within_domain};
use mutu_api::{Certificate, CertificateIssuer, MemberTenant};

/// Why a certificate is refused before anything is issued.
pub fn refusal(
    cert: &Certificate,
    issuer: &CertificateIssuer,
    tenants: &Store<DeserializeGuard<MemberTenant>>,
) -> Option<(&'static str, String)> {
    let ns = cert.namespace().unwrap_or_default();
    if let Some(tenant_name) = ns.strip_prefix(TENANT_NAMESPACE_PREFIX) {
        let tenant = tenants
            .get(&ObjectRef::new(tenant_name))
            .and_then(|t| t.0.as_ref().ok().cloned());
        let Some(tenant) = tenant else {
            return Some((
                "NoTenant",
                format!(
                    "namespace {ns} belongs to no MemberTenant {tenant_name}; no certificate is issued in it"
                ),
            ));
        };
        let foreign: Vec<&String> = cert
            .spec
            .dns_names
            .iter()
            .filter(|n| {
                let bare = n.trim_start_matches("*.");
                !mutu_model::admission::granted_domains(&tenant).any(|d| is_within_domain(bare, d))
            })
            .collect();
        if !foreign.is_empty() {
            return Some((
                "ForeignDomain",
                format!(
                    "spec.dnsNames: {} {} not under the domains of member {tenant_name} ({}); use names under those domains, or ask for the domain to be added to the MemberTenant",
                    foreign
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    if foreign.len() == 1 { "is" } else { "are" },
                    tenant.spec.domains.join(", ")
                ),
            ));
        }
    }
    if issuer.spec.acme.is_some()
        && let Some(w) = cert.spec.dns_names.iter().find(|n| n.starts_with("*."))
    {
        return Some((
            "WildcardNotSupported",
            format!(
                "spec.dnsNames: {w} is a wildcard, which ACME HTTP-01 cannot prove; list the names, or use an internal CA issuer"
            ),
        ));
    }
    None
}
