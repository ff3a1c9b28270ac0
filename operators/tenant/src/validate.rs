//! What a tenant may not claim, decided from all tenants at once: a domain
//! suffix belongs to the tenant that holds it (admitted with it, `status.domains`),
//! else to the first that asked for it; and a tenant's name must leave room for
//! its namespace name.

use kube::Resource;
use kube::ResourceExt;
use mutu_api::MemberTenant;
use mutu_api::common::TENANT_NAMESPACE_PREFIX;

/// Longest tenant name whose namespace name (`tenant-<name>`) is still valid.
pub const MAX_NAME: usize = 63 - TENANT_NAMESPACE_PREFIX.len();

/// A reason a tenant cannot be provisioned, with what to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    NameTooLong {
        name: String,
    },
    DomainConflict {
        domain: String,
        other: String,
        other_domain: String,
    },
    NamespaceTaken {
        namespace: String,
        owner: Option<String>,
    },
    PublicSuffix {
        domain: String,
    },
}

impl Refusal {
    /// The domain of `spec.domains` this refusal is about, if it is about one.
    pub fn domain(&self) -> Option<&str> {
        match self {
            Refusal::DomainConflict { domain, .. } | Refusal::PublicSuffix { domain } => {
                Some(domain)
            }
            _ => None,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::NameTooLong { .. } => "NameTooLong",
            Refusal::DomainConflict { .. } => "DomainConflict",
            Refusal::NamespaceTaken { .. } => "NamespaceTaken",
            Refusal::PublicSuffix { .. } => "PublicSuffix",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Refusal::NameTooLong { name } => format!(
                "the name {name:?} is {} characters long; a MemberTenant name may have at most {MAX_NAME} so that its namespace {TENANT_NAMESPACE_PREFIX}{name} is a valid name. Recreate it with a shorter name",
                name.len()
            ),
            Refusal::NamespaceTaken {
                namespace,
                owner: Some(owner),
            } => format!(
                "namespace {namespace} belongs to MemberTenant {owner}; this tenant cannot use it. Rename this tenant"
            ),
            Refusal::NamespaceTaken {
                namespace,
                owner: None,
            } => format!(
                "namespace {namespace} already exists and was not created by mutu for this tenant; mutu will not take it over. Rename this tenant, or move that namespace's content away and delete it"
            ),
            Refusal::PublicSuffix { domain } => format!(
                "spec.domains: {domain} is a public suffix (like be, co.uk or github.io): it would give this member every name registered under it, other members' included; use the member's own domain, e.g. mons.be"
            ),
            Refusal::DomainConflict {
                domain,
                other,
                other_domain,
            } => {
                if domain == other_domain {
                    format!(
                        "spec.domains: {domain} is already claimed by MemberTenant {other}; remove it from this tenant, or from {other} first"
                    )
                } else {
                    format!(
                        "spec.domains: {domain} overlaps {other_domain}, already claimed by MemberTenant {other}; remove it from this tenant, or from {other} first"
                    )
                }
            }
        }
    }
}

/// Whether one domain is the other or a name under it.
pub fn overlaps(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim_end_matches('.'), b.trim_end_matches('.'));
    // `a` under `b`: it ends with `b`, preceded by a dot (no copy: this runs
    // for every pair of domains of the cluster's tenants).
    let under = |a: &str, b: &str| a.strip_suffix(b).is_some_and(|head| head.ends_with('.'));
    a == b || under(a, b) || under(b, a)
}

/// Whether `t` was admitted with a domain overlapping `domain` (`status.domains`).
fn holds(t: &MemberTenant, domain: &str) -> bool {
    t.status
        .as_ref()
        .and_then(|s| s.domains.as_ref())
        .is_some_and(|held| held.iter().any(|d| overlaps(d, domain)))
}

/// Whether `other`'s claim on `domain` comes before `tenant`'s: the tenant that holds it
/// (was admitted with it) first, so that no tenant takes a domain from another by adding it
/// to its spec; between two that hold it, or two that only ask for it, the older one.
fn comes_first(other: &MemberTenant, tenant: &MemberTenant, domain: &str) -> bool {
    match (holds(other, domain), holds(tenant, domain)) {
        (true, false) => true,
        (false, true) => false,
        _ => claimed_before(other, tenant),
    }
}

/// Order of claims between equals: the older tenant (by creation time, then name).
fn claimed_before(a: &MemberTenant, b: &MemberTenant) -> bool {
    fn key(t: &MemberTenant) -> (Option<k8s_openapi::jiff::Timestamp>, &str) {
        (
            t.meta().creation_timestamp.as_ref().map(|t| t.0),
            t.meta().name.as_deref().unwrap_or_default(),
        )
    }
    key(a) < key(b)
}

/// Every refusal of `tenant`, given every tenant of the cluster (`tenant` may be among them).
pub fn refusals<'a>(
    tenant: &MemberTenant,
    all: impl IntoIterator<Item = &'a MemberTenant>,
) -> Vec<Refusal> {
    let name = tenant.name_any();
    let mut out = Vec::new();
    if name.len() > MAX_NAME {
        out.push(Refusal::NameTooLong { name: name.clone() });
    }
    let others: Vec<&MemberTenant> = all
        .into_iter()
        .filter(|o| o.meta().name.as_deref() != Some(name.as_str()))
        .filter(|o| o.meta().deletion_timestamp.is_none())
        .collect();
    for domain in &tenant.spec.domains {
        if mutu_model::admission::is_public_suffix(domain) {
            out.push(Refusal::PublicSuffix {
                domain: domain.clone(),
            });
            continue;
        }
        let conflict = others
            .iter()
            .filter(|o| comes_first(o, tenant, domain))
            .find_map(|o| {
                o.spec
                    .domains
                    .iter()
                    .find(|d| overlaps(domain, d))
                    .map(|d| (o.name_any(), d.clone()))
            });
        if let Some((other, other_domain)) = conflict {
            out.push(Refusal::DomainConflict {
                domain: domain.clone(),
                other,
                other_domain,
            });
        }
    }
    out
}

/// Tenants whose domains overlap any of `tenant`'s (to re-check them when it changes).
pub fn overlapping<'a>(
    tenant: &MemberTenant,
    all: impl IntoIterator<Item = &'a MemberTenant>,
) -> Vec<String> {
    let name = tenant.name_any();
    all.into_iter()
        .filter(|o| o.meta().name.as_deref() != Some(name.as_str()))
        .filter(|o| {
            o.spec
                .domains
                .iter()
                .any(|d| tenant.spec.domains.iter().any(|m| overlaps(d, m)))
        })
        .map(|o| o.name_any())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str, created: &str, domains: &[&str]) -> MemberTenant {
        let yaml = format!(
            "apiVersion: hosting.imio.be/v1alpha1\nkind: MemberTenant\nmetadata: {{name: {name}, creationTimestamp: \"{created}\"}}\nspec:\n  displayName: {name}\n  category: commune\n  domains: [{}]\n",
            domains.join(", ")
        );
        serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("bad test tenant: {e}"))
    }

    #[test]
    fn domain_overlap_covers_equal_and_nested_names_only() {
        assert!(overlaps("mons.be", "mons.be"));
        assert!(overlaps("deliberations.mons.be", "mons.be"));
        assert!(overlaps("mons.be", "www.mons.be"));
        assert!(
            !overlaps("mons.be", "simons.be"),
            "a suffix must match whole labels"
        );
        assert!(!overlaps("mons.be", "ans.be"));
    }

    #[test]
    fn a_public_suffix_is_refused_as_a_members_domain() {
        for suffix in ["be", "co.uk", "github.io", "be."] {
            assert!(mutu_model::admission::is_public_suffix(suffix), "{suffix}");
        }
        for own in ["mons.be", "cpas.mons.be", "example.co.uk", "x.test"] {
            assert!(!mutu_model::admission::is_public_suffix(own), "{own}");
        }
        let greedy = tenant("greedy", "2019-01-01T00:00:00Z", &["be", "greedy.be"]);
        let refused = refusals(&greedy, std::slice::from_ref(&greedy));
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0].reason(), "PublicSuffix");
        assert!(
            refused[0]
                .message()
                .contains("spec.domains: be is a public suffix")
        );
    }

    #[test]
    fn the_later_claimant_of_a_domain_is_refused_naming_the_earlier() {
        let mons = tenant("mons", "2019-01-01T00:00:00Z", &["mons.be"]);
        let usurper = tenant("usurper", "2020-01-01T00:00:00Z", &["ans.be", "mons.be"]);
        let all = [mons.clone(), usurper.clone()];
        assert!(
            refusals(&mons, &all).is_empty(),
            "the first claimant keeps its domain"
        );
        let refused = refusals(&usurper, &all);
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].reason(), "DomainConflict");
        let message = refused[0].message();
        assert!(
            message.contains("mons.be") && message.contains("MemberTenant mons"),
            "{message}"
        );
    }

    #[test]
    fn the_tenant_that_holds_a_domain_comes_before_an_older_one_that_adds_it() {
        let held = |mut t: MemberTenant, domains: &[&str]| {
            t.status = Some(mutu_api::tenant::MemberTenantStatus {
                domains: Some(domains.iter().map(|d| d.to_string()).collect()),
                ..Default::default()
            });
            t
        };
        // The older tenant adds the newer one's admitted domain to its spec.
        let old = held(
            tenant("old", "2019-01-01T00:00:00Z", &["old.be", "new.be"]),
            &["old.be"],
        );
        let new = held(
            tenant("new", "2020-01-01T00:00:00Z", &["new.be"]),
            &["new.be"],
        );
        let all = [old.clone(), new.clone()];
        let refused = refusals(&old, all.iter());
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert_eq!(refused[0].domain(), Some("new.be"));
        assert!(
            refused[0].message().contains("MemberTenant new"),
            "{refused:?}"
        );
        assert!(refusals(&new, all.iter()).is_empty());
        // A subdomain of a held domain too.
        let sub = held(
            tenant("old", "2019-01-01T00:00:00Z", &["old.be", "www.new.be"]),
            &["old.be"],
        );
        assert_eq!(refusals(&sub, [sub.clone(), new.clone()].iter()).len(), 1);
        // Neither holds it (both only ask): the older one.
        let a = tenant("a", "2019-01-01T00:00:00Z", &["x.be"]);
        let b = tenant("b", "2020-01-01T00:00:00Z", &["x.be"]);
        assert!(refusals(&a, [a.clone(), b.clone()].iter()).is_empty());
        assert_eq!(refusals(&b, [a, b.clone()].iter()).len(), 1);
    }

    #[test]
    fn a_subdomain_of_another_tenants_domain_is_refused() {
        let mons = tenant("mons", "2019-01-01T00:00:00Z", &["mons.be"]);
        let cpas = tenant("cpas-mons", "2020-01-01T00:00:00Z", &["cpas.mons.be"]);
        let refused = refusals(&cpas, &[mons, cpas.clone()]);
        assert!(
            refused[0].message().contains("overlaps mons.be"),
            "{}",
            refused[0].message()
        );
    }

    #[test]
    fn names_too_long_for_a_namespace_are_refused() {
        let long = "a".repeat(MAX_NAME + 1);
        let t = tenant(&long, "2019-01-01T00:00:00Z", &[]);
        assert_eq!(refusals(&t, [&t])[0].reason(), "NameTooLong");
        let ok = tenant(&"a".repeat(MAX_NAME), "2019-01-01T00:00:00Z", &[]);
        assert!(refusals(&ok, [&ok]).is_empty());
    }
}
