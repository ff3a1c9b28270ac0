//! Whether a site may be served, decided from the whole fleet at once: its
//! namespace must be a member's, its product in the catalog and the member's
//! entitlements (within their count), its hostnames under the member's
//! domains and not used by any earlier site anywhere in the cluster.

use std::collections::BTreeMap;

use kube::{Resource, ResourceExt};
use mutu_api::common::{TENANT_NAMESPACE_PREFIX, is_within_domain};
use mutu_api::{MemberTenant, PloneSite, ProductSpec};

/// Why a site is not served, with what to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    /// What the refusal is about: the product or hostname concerned.
    pub subject: Option<String>,
    pub message: String,
}

fn refuse(reason: &'static str, subject: Option<&str>, message: String) -> Refusal {
    Refusal {
        reason,
        subject: subject.map(str::to_string),
        message,
    }
}

/// Order of claims: the older site (by creation time, then namespace/name)
/// first. Borrowed: this is computed for sites across the whole fleet.
fn claim_key(site: &PloneSite) -> (Option<k8s_openapi::jiff::Timestamp>, &str, &str) {
    let meta = site.meta();
    (
        meta.creation_timestamp.as_ref().map(|t| t.0),
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default(),
    )
}

fn is_same(a: &PloneSite, b: &PloneSite) -> bool {
    a.meta().namespace == b.meta().namespace && a.meta().name == b.meta().name
}

/// The tenant owning the namespace `ns`, if it is a member's namespace.
pub fn tenant_name(ns: &str) -> Option<&str> {
    ns.strip_prefix(TENANT_NAMESPACE_PREFIX)
}

/// Every reason `site` is refused, given its tenant, the catalog and all sites.
pub fn refusals(
    site: &PloneSite,
    tenant: Option<&MemberTenant>,
    catalog: &BTreeMap<String, ProductSpec>,
    all: &[impl std::borrow::Borrow<PloneSite>],
) -> Vec<Refusal> {
    // Borrowed, never cloned: this runs on every reconcile, over the whole fleet.
    let all = || all.iter().map(|s| s.borrow());
    let ns = site.namespace().unwrap_or_default();
    let Some(tenant) = tenant else {
        return vec![refuse(
            "NoTenant",
            None,
            format!(
                "namespace {ns} is not the namespace of a MemberTenant; create sites in the member's namespace (tenant-<member>)"
            ),
        )];
    };
    let mut out = Vec::new();
    let product = &site.spec.product;
    if !catalog.contains_key(product) {
        let known: Vec<&str> = catalog.keys().map(String::as_str).collect();
        out.push(refuse(
            "UnknownProduct",
            Some(product),
            format!(
                "spec.product: {product} is not in the product catalog; known products: {}",
                known.join(", ")
            ),
        ));
    }
    match tenant.spec.entitlements.get(product) {
        None => out.push(refuse(
            "NotEntitled",
            Some(product),
            format!(
                "spec.product: MemberTenant {} is not entitled to {product}; ask for the entitlement to be added to the member",
                tenant.name_any()
            ),
        )),
        Some(&count) => {
            let mut same: Vec<&PloneSite> = all()
                .filter(|s| s.meta().namespace == site.meta().namespace && s.spec.product == *product)
                .filter(|s| s.meta().deletion_timestamp.is_none())
                .collect();
            same.sort_by_key(|s| claim_key(s));
            let position = same.iter().position(|s| is_same(s, site)).unwrap_or(same.len());
            if position >= usize::try_from(count.max(0)).unwrap_or(0) {
                out.push(refuse(
                    "OverEntitlement",
                    Some(product),
                    format!(
                        "spec.product: MemberTenant {} is entitled to {count} {product} site(s) and already has them; delete one or ask for a larger entitlement",
                        tenant.name_any()
                    ),
                ));
            }
        }
    }
    for host in &site.spec.hostnames {
        if !tenant
            .spec
            .domains
            .iter()
            .any(|d| is_within_domain(host, d))
        {
            out.push(refuse(
                "ForeignHostname",
                Some(host),
                format!(
                    "spec.hostnames: {host} is not under the member's domains ({}); use a name under one of them",
                    if tenant.spec.domains.is_empty() { "none".to_string() } else { tenant.spec.domains.join(", ") }
                ),
            ));
        }
    }
    let key = claim_key(site);
    for host in &site.spec.hostnames {
        // The hostname first: it rules out nearly every site, without copying.
        let earlier = all()
            .filter(|o| o.spec.hostnames.iter().any(|h| h == host))
            .filter(|o| !is_same(o, site) && o.meta().deletion_timestamp.is_none())
            .find(|o| claim_key(o) < key);
        if let Some(other) = earlier {
            out.push(refuse(
                "HostnameTaken",
                Some(host),
                format!(
                    "spec.hostnames: {host} is already served by site {}/{}; choose another hostname",
                    other.namespace().unwrap_or_default(),
                    other.name_any()
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> MemberTenant {
        serde_saphyr::from_str(
            "apiVersion: hosting.imio.be/v1alpha1\nkind: MemberTenant\nmetadata: {name: mons}\nspec:\n  displayName: Ville de Mons\n  category: commune\n  domains: [mons.be]\n  entitlements: {delib: 1}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn site(ns: &str, name: &str, created: &str, product: &str, hosts: &[&str]) -> PloneSite {
        serde_saphyr::from_str(&format!(
            "apiVersion: hosting.imio.be/v1alpha1\nkind: PloneSite\nmetadata: {{name: {name}, namespace: {ns}, creationTimestamp: \"{created}\"}}\nspec:\n  product: {product}\n  hostnames: [{}]\n",
            hosts.join(", ")
        ))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn catalog() -> BTreeMap<String, ProductSpec> {
        let p: mutu_api::Product = serde_saphyr::from_str(
            "apiVersion: hosting.imio.be/v1alpha1\nkind: Product\nmetadata: {name: delib}\nspec: {displayName: ia.Délib, engine: plone, image: registry.imio.be/imio/delib, release: \"4.2\"}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        BTreeMap::from([("delib".to_string(), p.spec)])
    }

    fn reasons(r: &[Refusal]) -> Vec<&'static str> {
        r.iter().map(|r| r.reason).collect()
    }

    #[test]
    fn an_entitled_site_under_the_members_domain_is_admitted() {
        let s = site(
            "tenant-mons",
            "delib",
            "2020-01-01T00:00:00Z",
            "delib",
            &["deliberations.mons.be"],
        );
        assert!(refusals(&s, Some(&tenant()), &catalog(), std::slice::from_ref(&s)).is_empty());
    }

    #[test]
    fn a_site_beyond_the_entitlement_is_refused_the_first_keeps_its_place() {
        let first = site(
            "tenant-mons",
            "a",
            "2020-01-01T00:00:00Z",
            "delib",
            &["a.mons.be"],
        );
        let second = site(
            "tenant-mons",
            "b",
            "2021-01-01T00:00:00Z",
            "delib",
            &["b.mons.be"],
        );
        let all = [first.clone(), second.clone()];
        assert!(refusals(&first, Some(&tenant()), &catalog(), &all).is_empty());
        assert_eq!(
            reasons(&refusals(&second, Some(&tenant()), &catalog(), &all)),
            vec!["OverEntitlement"]
        );
    }

    #[test]
    fn a_product_not_entitled_or_not_in_the_catalog_is_refused() {
        let s = site(
            "tenant-mons",
            "web",
            "2020-01-01T00:00:00Z",
            "web",
            &["www.mons.be"],
        );
        let r = refusals(&s, Some(&tenant()), &catalog(), std::slice::from_ref(&s));
        assert_eq!(reasons(&r), vec!["UnknownProduct", "NotEntitled"]);
        assert!(
            r[0].message.contains("known products: delib"),
            "{}",
            r[0].message
        );
    }

    #[test]
    fn a_hostname_outside_the_members_domains_is_refused_naming_them() {
        let s = site(
            "tenant-mons",
            "delib",
            "2020-01-01T00:00:00Z",
            "delib",
            &["deliberations.ans.be"],
        );
        let r = refusals(&s, Some(&tenant()), &catalog(), std::slice::from_ref(&s));
        assert_eq!(reasons(&r), vec!["ForeignHostname"]);
        assert!(r[0].message.contains("mons.be"), "{}", r[0].message);
    }

    #[test]
    fn a_hostname_used_by_an_earlier_site_anywhere_is_refused() {
        let theirs = site(
            "tenant-ans",
            "web",
            "2019-01-01T00:00:00Z",
            "web",
            &["www.mons.be"],
        );
        let ours = site(
            "tenant-mons",
            "delib",
            "2020-01-01T00:00:00Z",
            "delib",
            &["www.mons.be"],
        );
        let r = refusals(&ours, Some(&tenant()), &catalog(), &[theirs, ours.clone()]);
        assert_eq!(reasons(&r), vec!["HostnameTaken"]);
        assert!(r[0].message.contains("tenant-ans/web"), "{}", r[0].message);
    }

    #[test]
    fn a_site_outside_a_members_namespace_is_refused() {
        let s = site(
            "default",
            "delib",
            "2020-01-01T00:00:00Z",
            "delib",
            &["a.mons.be"],
        );
        assert_eq!(
            reasons(&refusals(&s, None, &catalog(), &[] as &[PloneSite])),
            vec!["NoTenant"]
        );
    }
}
