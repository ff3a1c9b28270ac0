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

/// Whether `domain` is a public suffix (the Public Suffix List's, private section included):
/// names under it belong to whoever registers them, never to one member.
pub fn is_public_suffix(domain: &str) -> bool {
    psl::domain_str(domain.trim_end_matches('.')).is_none()
}

/// The domains `tenant` may serve names under: those of its spec it was admitted with
/// (`status.domains`; all of them for a tenant the controller has not looked at since that
/// field exists), never a public suffix (the tenant controller refuses those too).
pub fn granted_domains(tenant: &MemberTenant) -> impl Iterator<Item = &String> {
    let admitted = tenant.status.as_ref().and_then(|s| s.domains.as_ref());
    tenant
        .spec
        .domains
        .iter()
        .filter(move |d| !is_public_suffix(d) && admitted.is_none_or(|a| a.contains(d)))
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
    let mut out = Vec::new();
    if let Some(problem) = crate::names::site_name_problem(&site.name_any()) {
        out.push(refuse("InvalidName", None, problem));
    }
    let Some(tenant) = tenant else {
        out.push(refuse(
            "NoTenant",
            None,
            format!(
                "namespace {ns} is not the namespace of a MemberTenant; create sites in the member's namespace (tenant-<member>)"
            ),
        ));
        return out;
    };
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
        if !granted_domains(tenant).any(|d| is_within_domain(host, d)) {
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
        let mine = serves(site, host);
        // The hostname first: it rules out nearly every site, without copying. A site that
        // serves the hostname comes before one that only asks for it (an older site editing
        // in another's hostname takes nothing); between equals, the older site.
        let earlier = all()
            .filter(|o| o.spec.hostnames.iter().any(|h| h == host) || serves(o, host))
            .filter(|o| !is_same(o, site) && o.meta().deletion_timestamp.is_none())
            .find(|o| match (serves(o, host), mine) {
                (true, false) => true,
                (false, true) => false,
                _ => claim_key(o) < key,
            });
        if let Some(other) = earlier {
            let other_ns = other.namespace().unwrap_or_default();
            let owner = tenant_name(&other_ns)
                .map(|t| format!(" of member {t}"))
                .unwrap_or_default();
            out.push(refuse(
                "HostnameTaken",
                Some(host),
                format!(
                    "spec.hostnames: {host} is already {} by site {other_ns}/{}{owner}; choose another hostname",
                    if serves(other, host) { "served" } else { "claimed" },
                    other.name_any()
                ),
            ));
        }
    }
    out
}

/// The hostnames `site` was admitted with and serves: its status's, or for a site admitted
/// before the status recorded them, its spec's.
pub fn served(site: &PloneSite) -> &[String] {
    match site.status.as_ref() {
        Some(st) if !st.hostnames.is_empty() => &st.hostnames,
        Some(st) if st.release.is_some() => &site.spec.hostnames,
        _ => &[],
    }
}

fn serves(site: &PloneSite, host: &str) -> bool {
    served(site).iter().any(|h| h == host)
}

/// The hostnames an admitted site serves given its `refusals`: its spec's when no refusal is
/// about a hostname it does not serve yet, else the ones it served (a change of hostnames is
/// admitted as a whole, or not at all), with the refusals that hold the change back.
pub fn admitted_hostnames<'a>(
    site: &PloneSite,
    refusals: &'a [Refusal],
) -> (Vec<String>, Vec<&'a Refusal>) {
    let blocking: Vec<&Refusal> = refusals
        .iter()
        .filter(|r| matches!(r.reason, "ForeignHostname" | "HostnameTaken"))
        .filter(|r| r.subject.as_deref().is_some_and(|h| !serves(site, h)))
        .collect();
    if blocking.is_empty() {
        (site.spec.hostnames.clone(), blocking)
    } else {
        (served(site).to_vec(), blocking)
    }
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
    fn only_the_domains_a_tenant_was_admitted_with_are_granted() {
        let mut t = tenant();
        t.spec.domains = vec!["mons.be".into(), "ans.be".into(), "be".into()];
        let granted = |t: &MemberTenant| granted_domains(t).cloned().collect::<Vec<_>>();
        // Not looked at since the field exists: its spec, public suffixes left out.
        assert_eq!(granted(&t), ["mons.be", "ans.be"]);
        // Admitted with mons.be only (ans.be was refused): ans.be grants nothing.
        t.status = Some(mutu_api::tenant::MemberTenantStatus {
            domains: Some(vec!["mons.be".into()]),
            ..Default::default()
        });
        assert_eq!(granted(&t), ["mons.be"]);
        // A domain removed from the spec goes, whatever the status says.
        t.spec.domains = vec!["ans.be".into()];
        assert!(granted(&t).is_empty());
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

    /// `s` as admitted with `hosts` (its status's hostnames and a release).
    fn serving(mut s: PloneSite, hosts: &[&str]) -> PloneSite {
        s.status = Some(mutu_api::PloneSiteStatus {
            release: Some("4.2".into()),
            hostnames: hosts.iter().map(|h| h.to_string()).collect(),
            ..Default::default()
        });
        s
    }

    #[test]
    fn an_older_site_editing_in_a_hostname_another_site_serves_is_refused_and_takes_nothing() {
        // mons (older) edits ans's hostname into its spec; ans serves it.
        let mons = serving(
            site(
                "tenant-mons",
                "delib",
                "2019-01-01T00:00:00Z",
                "delib",
                &["delib.mons.be", "www.ans.be"],
            ),
            &["delib.mons.be"],
        );
        let ans = serving(
            site(
                "tenant-ans",
                "web",
                "2020-01-01T00:00:00Z",
                "web",
                &["www.ans.be"],
            ),
            &["www.ans.be"],
        );
        let all = [mons.clone(), ans.clone()];
        let mut ans_tenant = tenant();
        ans_tenant.spec.domains = vec!["ans.be".into()];
        ans_tenant.spec.entitlements = BTreeMap::from([("web".to_string(), 1)]);
        let mut catalog = catalog();
        catalog.insert("web".into(), catalog["delib"].clone());
        // Even with the domain in its tenant, mons is refused: ans serves the name.
        let mut mons_tenant = tenant();
        mons_tenant.spec.domains.push("ans.be".into());
        let r = refusals(&mons, Some(&mons_tenant), &catalog, &all);
        assert_eq!(reasons(&r), vec!["HostnameTaken"]);
        assert_eq!(r[0].subject.as_deref(), Some("www.ans.be"));
        assert!(
            r[0].message
                .contains("served by site tenant-ans/web of member ans"),
            "{}",
            r[0].message
        );
        // mons keeps serving what it served; ans is not refused.
        let (hosts, blocking) = admitted_hostnames(&mons, &r);
        assert_eq!(hosts, vec!["delib.mons.be".to_string()]);
        assert_eq!(blocking.len(), 1);
        assert!(refusals(&ans, Some(&ans_tenant), &catalog, &all).is_empty());
    }

    #[test]
    fn a_change_of_hostnames_is_admitted_as_a_whole_and_old_refusals_do_not_hold_it() {
        let mut mons = serving(
            site(
                "tenant-mons",
                "delib",
                "2019-01-01T00:00:00Z",
                "delib",
                &["new.mons.be", "www.ans.be"],
            ),
            &["old.mons.be"],
        );
        let r = refusals(
            &mons,
            Some(&tenant()),
            &catalog(),
            std::slice::from_ref(&mons),
        );
        assert_eq!(reasons(&r), vec!["ForeignHostname"]);
        // One refused name holds back the whole change: the old names stay served.
        assert_eq!(
            admitted_hostnames(&mons, &r).0,
            vec!["old.mons.be".to_string()]
        );
        // A refusal about a name the site already serves (its domain was taken from the
        // member since) does not hold a change back.
        mons.spec.hostnames = vec!["new.mons.be".into(), "www.ans.be".into()];
        if let Some(st) = mons.status.as_mut() {
            st.hostnames = vec!["www.ans.be".into()];
        }
        let r = refusals(
            &mons,
            Some(&tenant()),
            &catalog(),
            std::slice::from_ref(&mons),
        );
        assert_eq!(reasons(&r), vec!["ForeignHostname"]);
        let (hosts, blocking) = admitted_hostnames(&mons, &r);
        assert_eq!(hosts, mons.spec.hostnames);
        assert!(blocking.is_empty());
    }

    #[test]
    fn a_site_admitted_before_its_status_recorded_hostnames_serves_its_spec() {
        let mut s = site(
            "tenant-mons",
            "delib",
            "2019-01-01T00:00:00Z",
            "delib",
            &["a.mons.be"],
        );
        assert!(served(&s).is_empty());
        s.status = Some(mutu_api::PloneSiteStatus {
            release: Some("4.2".into()),
            ..Default::default()
        });
        assert_eq!(served(&s), &["a.mons.be".to_string()]);
    }

    #[test]
    fn a_public_suffix_among_the_members_domains_grants_nothing() {
        let mut greedy = tenant();
        greedy.spec.domains = vec!["be".into(), "mons.be".into()];
        let s = site(
            "tenant-mons",
            "delib",
            "2020-01-01T00:00:00Z",
            "delib",
            &["www.namur.be", "delib.mons.be"],
        );
        let r = refusals(&s, Some(&greedy), &catalog(), std::slice::from_ref(&s));
        assert_eq!(reasons(&r), vec!["ForeignHostname"]);
        assert_eq!(r[0].subject.as_deref(), Some("www.namur.be"));
        assert!(is_public_suffix("be") && is_public_suffix("github.io"));
        assert!(!is_public_suffix("mons.be"));
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
