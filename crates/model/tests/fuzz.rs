//! Fuzzing of the hosting rules with what a member controls: every custom
//! resource read from arbitrary JSON (most of it shaped like the real thing,
//! with strange strings, huge numbers and fields of the wrong type), then
//! admitted, rendered, counted and named. Reading may fail; nothing may panic,
//! and each function keeps the promise its documentation makes.
//!
//! Each target runs its corpus (`tests/fuzz-corpus/<target>/`) first, then
//! random cases: `MUTU_FUZZ_CASES` of them (`make fuzz` asks for many).

#[path = "../../../tests/fuzz-corpus/harness.rs"]
mod harness;
#[path = "../../../tests/fuzz-corpus/resources.rs"]
mod resources;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use mutu_api::common::{Window, is_dns_label, is_dns_name};
use mutu_api::product::StorageMode;
use mutu_api::{
    Backup, BackupPolicy, Certificate, CertificateIssuer, MemberTenant, MigrationPlan, PloneSite,
    Product, ProductSpec, ProvisioningRequest, ReleaseRollout, Restore, SolrIndex,
};
use mutu_model::admission::{self, Refusal};
use mutu_model::provisioning::{self, MAX_SITE_NAME, View};
use mutu_model::quota::{self, SITE_COUNT};
use mutu_model::storage::{self, Storage};
use mutu_model::{names, placement, quantity, schedule};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use harness::{corpus_lines, fuzz};
use resources::*;

fn specs(target: &str) -> Vec<Value> {
    docs(target).into_iter().map(|(_, v)| v).collect()
}

fn catalog_seed() -> Vec<(String, Value)> {
    docs("product")
        .into_iter()
        .map(|(_, p)| {
            let name = p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            (name, p["spec"].clone())
        })
        .collect()
}

fn read_catalog(products: &[(String, Value)]) -> BTreeMap<String, ProductSpec> {
    products
        .iter()
        .filter_map(|(name, spec)| Some((name.clone(), read(spec)?)))
        .collect()
}

/// The sites of `values` that read, each `namespace/name` once (as in a cluster).
fn read_fleet(values: &[Value]) -> Vec<PloneSite> {
    let mut fleet: Vec<PloneSite> = Vec::new();
    for site in values.iter().filter_map(read::<PloneSite>) {
        if !fleet.iter().any(|o| same(o, &site)) {
            fleet.push(site);
        }
    }
    fleet
}

fn same(a: &PloneSite, b: &PloneSite) -> bool {
    a.namespace() == b.namespace() && a.metadata.name == b.metadata.name
}

fn deleting(s: &PloneSite) -> bool {
    s.metadata.deletion_timestamp.is_some()
}

fn key(s: &PloneSite) -> (Option<Timestamp>, String, String) {
    (
        s.metadata.creation_timestamp.as_ref().map(|t| t.0),
        s.namespace().unwrap_or_default(),
        s.metadata.name.clone().unwrap_or_default(),
    )
}

/// What the site serves, as its documentation says: its status's hostnames,
/// else its spec's once it runs a release, else nothing.
fn served_oracle(s: &PloneSite) -> Vec<String> {
    match &s.status {
        Some(st) if !st.hostnames.is_empty() => st.hostnames.clone(),
        Some(st) if st.release.is_some() => s.spec.hostnames.clone(),
        _ => vec![],
    }
}

fn serves(s: &PloneSite, host: &str) -> bool {
    served_oracle(s).iter().any(|h| h == host)
}

/// Whether `host` is under a domain the tenant may serve: one of its spec
/// (that its status admitted, when it says), never a public suffix.
fn granted(tenant: &MemberTenant, host: &str) -> bool {
    let admitted = tenant.status.as_ref().and_then(|s| s.domains.as_ref());
    tenant.spec.domains.iter().any(|d| {
        !admission::is_public_suffix(d)
            && admitted.is_none_or(|a| a.contains(d))
            && (host == d || host.ends_with(&format!(".{d}")))
    })
}

fn pairs(refusals: &[Refusal]) -> Vec<(&'static str, Option<String>)> {
    refusals
        .iter()
        .map(|r| (r.reason, r.subject.clone()))
        .collect()
}

// ---------------------------------------------------------------------------
// Every kind of the API, from its corpus with edits: read, written back as
// JSON and YAML (as `mutu request render` and the CRD tools print them), and
// checked with its CEL rules as the API server would.

/// One edit of a document: at its `n`-th node (in document order).
#[derive(Clone, Debug)]
enum Edit {
    Replace(Value),
    Remove,
    Insert(String, Value),
}

const KEYS: &[&str] = &[
    "hostnames",
    "release",
    "replicas",
    "storage",
    "mode",
    "size",
    "secretRef",
    "name",
    "namespace",
    "annotations",
    "labels",
    "status",
    "deletionTimestamp",
    "creationTimestamp",
    "solr",
    "enabled",
    "tls",
    "issuer",
    "backup",
    "policy",
    "suspended",
    "deletionPolicy",
    "language",
    "domains",
    "entitlements",
    "quota",
    "cpu",
    "memory",
    "sites",
    "admins",
    "users",
    "groups",
    "provisioning",
    "siteName",
    "options",
    "comment",
    "site",
    "window",
    "start",
    "end",
    "timeZone",
    "dnsNames",
    "secretName",
    "issuerRef",
    "selector",
    "matchLabels",
    "matchExpressions",
    "cohorts",
    "waveSize",
    "from",
    "to",
    "backupName",
    "retention",
    "schedule",
];

fn edit() -> BoxedStrategy<Edit> {
    let value = prop_oneof![
        3 => weird().prop_map(Value::from),
        1 => string(HOSTS),
        1 => quantity_json(),
        2 => int(),
        2 => any_json(),
    ];
    prop_oneof![
        4 => value.clone().prop_map(Edit::Replace),
        2 => Just(Edit::Remove),
        2 => (text(KEYS), value).prop_map(|(k, v)| Edit::Insert(k, v)),
    ]
    .boxed()
}

/// Applies `edit` to the node numbered `target` of `node` (counting from `*n`).
fn apply(node: &mut Value, n: &mut usize, target: usize, edit: &Edit) -> bool {
    if *n == target {
        match edit {
            Edit::Replace(v) => {
                *node = v.clone();
                return true;
            }
            Edit::Insert(k, v) => {
                match node {
                    Value::Object(m) => {
                        m.insert(k.clone(), v.clone());
                    }
                    Value::Array(a) => a.push(v.clone()),
                    other => *other = v.clone(),
                }
                return true;
            }
            Edit::Remove => {}
        }
    }
    *n += 1;
    match node {
        Value::Object(m) => {
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                if matches!(edit, Edit::Remove) && *n == target {
                    m.remove(&k);
                    return true;
                }
                if let Some(child) = m.get_mut(&k)
                    && apply(child, n, target, edit)
                {
                    return true;
                }
            }
        }
        Value::Array(a) => {
            for i in 0..a.len() {
                if matches!(edit, Edit::Remove) && *n == target {
                    a.remove(i);
                    return true;
                }
                if apply(&mut a[i], n, target, edit) {
                    return true;
                }
            }
        }
        _ => {}
    }
    false
}

fn nodes(v: &Value) -> usize {
    1 + match v {
        Value::Object(m) => m.values().map(nodes).sum(),
        Value::Array(a) => a.iter().map(nodes).sum(),
        _ => 0,
    }
}

const KINDS: &[&str] = &[
    "plonesite",
    "membertenant",
    "product",
    "provisioningrequest",
    "backup",
    "restore",
    "backuppolicy",
    "solrindex",
    "certificate",
    "certificateissuer",
    "migrationplan",
    "releaserollout",
];

/// `value` as a `K`: if it reads, it reads back the same from the JSON and
/// the YAML written of it, and its CEL rules run.
fn round_trip<K>(value: &Value, cel: impl Fn(&K) -> bool) -> Result<Option<bool>, TestCaseError>
where
    K: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug,
{
    let Some(object) = read::<K>(value) else {
        return Ok(None);
    };
    let json = serde_json::to_value(&object).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let again = read::<K>(&json);
    prop_assert_eq!(again.as_ref(), Some(&object), "JSON round trip");
    let yaml = serde_saphyr::to_string(&object).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back: Result<K, _> = serde_saphyr::from_str(&yaml);
    prop_assert!(
        back.as_ref().is_ok_and(|b| *b == object),
        "YAML round trip: {yaml}\nreads back as {back:?}"
    );
    Ok(Some(cel(&object)))
}

fn check_kind(kind: &str, value: &Value) -> Result<Option<bool>, TestCaseError> {
    match kind {
        "plonesite" => round_trip::<PloneSite>(value, |o| o.validate_cel().is_ok()),
        "membertenant" => round_trip::<MemberTenant>(value, |o| o.validate_cel().is_ok()),
        "product" => round_trip::<Product>(value, |o| o.validate_cel().is_ok()),
        "provisioningrequest" => {
            round_trip::<ProvisioningRequest>(value, |o| o.validate_cel().is_ok())
        }
        "backup" => round_trip::<Backup>(value, |o| o.validate_cel().is_ok()),
        "restore" => round_trip::<Restore>(value, |o| o.validate_cel().is_ok()),
        "backuppolicy" => round_trip::<BackupPolicy>(value, |o| o.validate_cel().is_ok()),
        "solrindex" => round_trip::<SolrIndex>(value, |o| o.validate_cel().is_ok()),
        "certificate" => round_trip::<Certificate>(value, |o| o.validate_cel().is_ok()),
        "certificateissuer" => round_trip::<CertificateIssuer>(value, |o| o.validate_cel().is_ok()),
        "migrationplan" => round_trip::<MigrationPlan>(value, |o| o.validate_cel().is_ok()),
        "releaserollout" => round_trip::<ReleaseRollout>(value, |o| o.validate_cel().is_ok()),
        other => Err(TestCaseError::fail(format!("no kind {other}"))),
    }
}

#[test]
fn fuzz_custom_resources() {
    let corpus: Vec<(&str, String, Value)> = KINDS
        .iter()
        .flat_map(|kind| {
            docs(kind)
                .into_iter()
                .map(move |(name, doc)| (*kind, name, doc))
        })
        .collect();
    // Every file of the corpus reads and passes its rules as it is.
    for (kind, name, doc) in &corpus {
        let admitted = check_kind(kind, doc).unwrap_or_else(|e| panic!("{kind}/{name}: {e}"));
        assert_eq!(admitted, Some(true), "corpus {kind}/{name} is not admitted");
    }
    let docs: Vec<(&'static str, Value)> = corpus.into_iter().map(|(k, _, d)| (k, d)).collect();
    let count = docs.len();
    let seeds = (0..count).map(|i| (format!("{i}"), (i, vec![]))).collect();
    fuzz(
        "custom-resources",
        seeds,
        (0..count, vec((any::<usize>(), edit()), 0..4)),
        |(i, edits)| {
            let (kind, mut doc) = docs[i].clone();
            for (at, e) in &edits {
                let target = at % nodes(&doc);
                apply(&mut doc, &mut 0, target, e);
            }
            check_kind(kind, &doc).map(|_| ())
        },
    );
}

/// The API server's rule for hostnames (CEL) and the Rust one
/// ([`is_dns_name`], which the portal and the CSV import apply) agree.
#[test]
fn fuzz_hostnames() {
    let seeds = corpus_lines("hostname");
    let host = prop_oneof![
        2 => pick(HOSTS),
        4 => "[a-z0-9-]{1,64}(\\.[a-z0-9-]{1,64}){0,4}",
        1 => "[a-zA-Z0-9.*_-]{1,70}",
        1 => weird(),
    ];
    fuzz("hostname", seeds, host, |host| {
        let site: PloneSite = serde_json::from_value(json!({
            "apiVersion": mutu_api::API_VERSION, "kind": "PloneSite",
            "metadata": {"name": "web", "namespace": "tenant-mons"},
            "spec": {"product": "web", "hostnames": [host]},
        }))
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let cel = site.validate_cel().is_ok();
        // Longer names are the schema's maxLength to refuse, not CEL's.
        if host.len() <= mutu_api::common::MAX_DNS_NAME_LENGTH {
            prop_assert_eq!(
                cel,
                is_dns_name(&host),
                "CEL and is_dns_name differ on {:?}",
                host
            );
        }
        prop_assert_eq!(is_dns_name(&host), subdomain_of_at_most(&host, 253));
        // A trailing dot names the same zone: never a different public suffix answer.
        prop_assert_eq!(
            admission::is_public_suffix(&host),
            admission::is_public_suffix(&format!("{host}."))
        );
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// Admission.

#[derive(Clone, Debug)]
struct Fleet {
    tenant: Value,
    catalog: Vec<(String, Value)>,
    sites: Vec<Value>,
}

/// The parts of a fleet: its tenant, catalog and sites, whether to make them
/// fit together, and entitlement counts for that.
type FleetParts = (Value, Vec<(String, Value)>, Vec<Value>, bool, Vec<i32>);

fn fleet_parts() -> BoxedStrategy<FleetParts> {
    (
        tenant_json(),
        catalog_json(),
        vec(site_json(), 0..6),
        any::<bool>(),
        vec(0i32..4, 1..4),
    )
        .boxed()
}

/// A fleet of `parts`; half of them made to fit together (the tenant Ready,
/// entitled to the products of its sites and to `more_products`, which are in
/// the catalog, and owning the domains of most hostnames), so that admission
/// and requests get past their first checks.
fn assemble(parts: FleetParts, more_products: &[String]) -> Fleet {
    let (tenant, catalog, sites, fit, counts) = parts;
    let mut fleet = Fleet {
        tenant,
        catalog,
        sites,
    };
    if fit {
        fit_together(&mut fleet, more_products, &counts);
    }
    fleet
}

fn fleet() -> BoxedStrategy<Fleet> {
    fleet_parts().prop_map(|parts| assemble(parts, &[])).boxed()
}

fn fit_together(fleet: &mut Fleet, more_products: &[String], counts: &[i32]) {
    let products: BTreeSet<String> = fleet
        .sites
        .iter()
        .filter_map(|s| s["spec"]["product"].as_str().map(str::to_string))
        .chain(more_products.iter().cloned())
        .collect();
    if let Some(spec) = fleet.tenant.get_mut("spec").and_then(Value::as_object_mut) {
        if let Some(domains) = spec.entry("domains").or_insert(json!([])).as_array_mut() {
            domains.extend([json!("mons.be"), json!("ans.be")]);
        }
        if let Some(entitled) = spec
            .entry("entitlements")
            .or_insert(json!({}))
            .as_object_mut()
        {
            for (i, p) in products.iter().enumerate() {
                entitled
                    .entry(p.clone())
                    .or_insert(json!(counts[i % counts.len()]));
            }
        }
    }
    if let Some(tenant) = fleet.tenant.as_object_mut() {
        tenant.insert(
            "status".into(),
            json!({"conditions": [{"type": "Ready", "status": "True", "reason": "Ready",
                "message": "", "lastTransitionTime": "2020-01-01T00:00:00Z"}]}),
        );
    }
    for p in products {
        if !fleet.catalog.iter().any(|(n, _)| *n == p) {
            let spec =
                json!({"displayName": p, "engine": "plone", "image": "registry/p", "release": "1"});
            fleet.catalog.push((p, spec));
        }
    }
}

/// The corpus as fleets: every tenant with the whole catalog and every site.
fn fleet_seeds() -> Vec<(String, Fleet)> {
    let sites = specs("plonesite");
    docs("membertenant")
        .into_iter()
        .map(|(name, tenant)| {
            (
                name,
                Fleet {
                    tenant,
                    catalog: catalog_seed(),
                    sites: sites.clone(),
                },
            )
        })
        .collect()
}

/// The refusals the rules of [`admission`] describe for `site`, in order.
/// A name a site may have: a DNS label starting with a letter (it names the
/// site's Services), short enough for its nightly pack Job `<site>-pack-YYYYMMDD`,
/// and not ending like the Service of another site's ZEO server or maintenance page.
fn admissible_name(name: &str) -> bool {
    label_of_at_most(name, 63 - "-pack-20261207".len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with("-zeo")
        && !name.ends_with("-offline")
}

fn expected_refusals(
    site: &PloneSite,
    tenant: &MemberTenant,
    catalog: &BTreeMap<String, ProductSpec>,
    fleet: &[PloneSite],
) -> Vec<(&'static str, Option<String>)> {
    let mut want = Vec::new();
    if !admissible_name(&site.name_any()) {
        want.push(("InvalidName", None));
    }
    let product = &site.spec.product;
    if !catalog.contains_key(product) {
        want.push(("UnknownProduct", Some(product.clone())));
    }
    match tenant.spec.entitlements.get(product) {
        None => want.push(("NotEntitled", Some(product.clone()))),
        Some(&count) => {
            let rivals = fleet.iter().filter(|o| {
                o.namespace() == site.namespace() && o.spec.product == *product && !deleting(o)
            });
            let place = if deleting(site) {
                rivals.count()
            } else {
                rivals.filter(|o| key(o) < key(site)).count()
            };
            if place as i64 >= i64::from(count.max(0)) {
                want.push(("OverEntitlement", Some(product.clone())));
            }
        }
    }
    for host in &site.spec.hostnames {
        if !granted(tenant, host) {
            want.push(("ForeignHostname", Some(host.clone())));
        }
    }
    for host in &site.spec.hostnames {
        let mine = serves(site, host);
        let taken = fleet.iter().any(|o| {
            !same(o, site)
                && !deleting(o)
                && (o.spec.hostnames.contains(host) || serves(o, host))
                && match (serves(o, host), mine) {
                    (true, false) => true,
                    (false, true) => false,
                    _ => key(o) < key(site),
                }
        });
        if taken {
            want.push(("HostnameTaken", Some(host.clone())));
        }
    }
    want
}

fn check_admission(case: Fleet) -> Result<(), TestCaseError> {
    let tenant: Option<MemberTenant> = read(&case.tenant);
    let catalog = read_catalog(&case.catalog);
    let fleet = read_fleet(&case.sites);
    let reversed: Vec<&PloneSite> = fleet.iter().rev().collect();
    if let Some(t) = &tenant {
        let granted_domains: Vec<&String> = admission::granted_domains(t).collect();
        for d in &granted_domains {
            prop_assert!(!admission::is_public_suffix(d) && t.spec.domains.contains(d));
        }
    }
    let mut refused: BTreeMap<(usize, String), bool> = BTreeMap::new();
    for (i, site) in fleet.iter().enumerate() {
        let served = served_oracle(site);
        prop_assert_eq!(admission::served(site), served.as_slice());
        let without = admission::refusals(site, None, &catalog, &fleet);
        let name_refused = (!admissible_name(&site.name_any())).then_some(("InvalidName", None));
        prop_assert_eq!(
            pairs(&without),
            name_refused
                .into_iter()
                .chain([("NoTenant", None)])
                .collect::<Vec<_>>()
        );
        let Some(tenant) = &tenant else { continue };
        let r = admission::refusals(site, Some(tenant), &catalog, &fleet);
        prop_assert_eq!(pairs(&r), expected_refusals(site, tenant, &catalog, &fleet));
        // The order the fleet is listed in changes nothing.
        prop_assert_eq!(
            pairs(&r),
            pairs(&admission::refusals(
                site,
                Some(tenant),
                &catalog,
                &reversed
            ))
        );
        for host in &site.spec.hostnames {
            let taken = r
                .iter()
                .any(|x| x.reason == "HostnameTaken" && x.subject.as_ref() == Some(host));
            refused.insert((i, host.clone()), taken);
        }
        // A change of hostnames is admitted as a whole, and never brings in a
        // name outside the member's domains or another site's.
        let (hosts, blocking) = admission::admitted_hostnames(site, &r);
        for b in &blocking {
            prop_assert!(matches!(b.reason, "ForeignHostname" | "HostnameTaken"));
            prop_assert!(!serves(site, b.subject.as_deref().unwrap_or_default()));
        }
        if blocking.is_empty() {
            prop_assert_eq!(&hosts, &site.spec.hostnames);
        } else {
            prop_assert_eq!(&hosts, &served_oracle(site));
        }
        for host in &hosts {
            let refused_here = r.iter().any(|x| {
                matches!(x.reason, "ForeignHostname" | "HostnameTaken")
                    && x.subject.as_ref() == Some(host)
            });
            prop_assert!(
                serves(site, host) || (granted(tenant, host) && !refused_here),
                "{host} admitted for {}/{} without being granted",
                site.namespace().unwrap_or_default(),
                site.name_any()
            );
        }
    }
    // A hostname that only sites listing it serve is refused to all of them
    // but one: someone always wins it.
    if tenant.is_some() {
        let hosts: BTreeSet<&String> = fleet.iter().flat_map(|s| &s.spec.hostnames).collect();
        for host in hosts {
            let live: Vec<usize> = (0..fleet.len()).filter(|&i| !deleting(&fleet[i])).collect();
            let listing: Vec<usize> = live
                .iter()
                .copied()
                .filter(|&i| fleet[i].spec.hostnames.contains(host))
                .collect();
            let only_listers_serve = live
                .iter()
                .all(|&i| !serves(&fleet[i], host) || listing.contains(&i));
            if only_listers_serve && !listing.is_empty() {
                prop_assert!(
                    listing
                        .iter()
                        .any(|&i| !refused.get(&(i, host.clone())).copied().unwrap_or(true)),
                    "{host} refused to every site that asks for it"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn fuzz_admission() {
    fuzz("admission", fleet_seeds(), fleet(), check_admission);
}

// ---------------------------------------------------------------------------
// Provisioning requests.

#[derive(Clone, Debug)]
struct Asked {
    request: Value,
    fleet: Fleet,
}

fn tenant_config() -> quota::Config {
    quota::Config::default()
}

const PROBLEMS: &[&str] = &[
    "InvalidSiteName",
    "SiteNameTaken",
    "TenantNotReady",
    "NoTenant",
    "UnknownProduct",
    "NotEntitled",
    "OverEntitlement",
    "ForeignHostname",
    "HostnameTaken",
    "InvalidSpec",
    "ReplicasOutOfRange",
    "QuotaExceeded",
];

fn check_request(case: Asked) -> Result<(), TestCaseError> {
    let Some(request) = read::<ProvisioningRequest>(&case.request) else {
        return Ok(());
    };
    let tenant: Option<MemberTenant> = read(&case.fleet.tenant);
    let catalog = read_catalog(&case.fleet.catalog);
    let fleet = read_fleet(&case.fleet.sites);
    let sites: Vec<&PloneSite> = fleet.iter().collect();
    let config = tenant_config();
    let view = View {
        tenant: tenant.as_ref(),
        catalog: &catalog,
        sites: &sites,
        tenant_config: &config,
    };
    let name = provisioning::site_name(&request);
    prop_assert_eq!(
        &name,
        request
            .spec
            .site_name
            .as_ref()
            .unwrap_or(&request.spec.product)
    );
    let existing = fleet
        .iter()
        .find(|s| s.namespace() == request.namespace() && s.metadata.name.as_ref() == Some(&name));
    let problems = provisioning::problems(&request, &view, existing);
    let codes: Vec<&str> = problems.iter().map(|p| p.code).collect();
    for code in &codes {
        prop_assert!(PROBLEMS.contains(code), "unknown problem {code}");
    }
    let has = |code: &str| codes.contains(&code);
    let valid_name = label_of_at_most(&name, MAX_SITE_NAME) && admissible_name(&name);
    prop_assert_eq!(has("InvalidSiteName"), !valid_name);
    prop_assert_eq!(has("SiteNameTaken"), valid_name && existing.is_some());
    prop_assert_eq!(has("NoTenant"), tenant.is_none());
    let ready = tenant.as_ref().is_some_and(|t| {
        t.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True")
    });
    prop_assert_eq!(has("TenantNotReady"), tenant.is_some() && !ready);
    let product = catalog.get(&request.spec.product);
    let out_of_range = match (request.spec.options.replicas, product) {
        (Some(n), Some(p)) => !(1..=provisioning::max_replicas(p)).contains(&n),
        _ => false,
    };
    prop_assert_eq!(has("ReplicasOutOfRange"), out_of_range);

    // The site it renders is the one asked for, and reads back from its YAML.
    let site = provisioning::render(&request).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(site.name_any(), name.clone());
    prop_assert_eq!(site.namespace(), request.namespace());
    prop_assert_eq!(&site.spec.hostnames, &request.spec.hostnames);
    prop_assert_eq!(&site.spec.product, &request.spec.product);
    prop_assert_eq!(site.spec.replicas, request.spec.options.replicas);
    prop_assert_eq!(
        site.labels().get(mutu_api::REQUEST_LABEL),
        Some(&request.name_any())
    );
    let yaml = provisioning::render_yaml(&request);
    let back: Option<PloneSite> = yaml.as_deref().and_then(|y| serde_saphyr::from_str(y).ok());
    prop_assert_eq!(back.as_ref(), Some(&site), "rendered YAML: {:?}", yaml);

    // A request without problems makes a site that admission takes as it is.
    if problems.is_empty() {
        let tenant = tenant
            .as_ref()
            .ok_or_else(|| TestCaseError::fail("no problem without a tenant"))?;
        prop_assert!(valid_name && existing.is_none() && ready);
        prop_assert!(product.is_some());
        prop_assert!(tenant.spec.entitlements.contains_key(&request.spec.product));
        for host in &request.spec.hostnames {
            prop_assert!(granted(tenant, host), "{host} granted to no request");
        }
        let mut candidate = site.clone();
        candidate.metadata.creation_timestamp = Some(Time(Timestamp::MAX));
        let mut with: Vec<&PloneSite> = sites.clone();
        with.push(&candidate);
        let refusals = admission::refusals(&candidate, Some(tenant), &catalog, &with);
        prop_assert!(refusals.is_empty(), "admission refuses it: {refusals:?}");
    }
    Ok(())
}

#[test]
fn fuzz_provisioning() {
    let fleets = fleet_seeds();
    let seeds = docs("provisioningrequest")
        .into_iter()
        .flat_map(|(name, request)| {
            fleets.iter().map(move |(tenant, fleet)| {
                (
                    format!("{name} of {tenant}"),
                    Asked {
                        request: request.clone(),
                        fleet: fleet.clone(),
                    },
                )
            })
        })
        .collect();
    let asked = (request_json(), fleet_parts()).prop_map(|(request, parts)| {
        let product = request["spec"]["product"].as_str().map(str::to_string);
        let fleet = assemble(parts, &product.into_iter().collect::<Vec<_>>());
        Asked { request, fleet }
    });
    fuzz("provisioning", seeds, asked, check_request);
}

// ---------------------------------------------------------------------------
// Quantities, quotas, storage and placement.

#[test]
fn fuzz_quantities() {
    let seeds = corpus_lines("quantity");
    fuzz("quantity", seeds, quantity_text(), |text| {
        let q = Quantity(text.clone());
        let value = quantity::parse(&q);
        if let Some(v) = value {
            prop_assert!(v.is_finite(), "{text:?} reads as {v}");
        }
        prop_assert_eq!(quantity::millicores(&q).is_some(), value.is_some());
        prop_assert_eq!(quantity::units(&q).is_some(), value.is_some());
        // What the API server reads as a number and a suffix, read the same.
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
            .unwrap_or(t.len());
        let (number, suffix) = t.split_at(split);
        let factor = match suffix {
            "" => Some(1.0),
            "m" => Some(1e-3),
            "k" => Some(1e3),
            "M" => Some(1e6),
            "G" => Some(1e9),
            "T" => Some(1e12),
            "P" => Some(1e15),
            "Ki" => Some(1024.0),
            "Mi" => Some(1048576.0),
            "Gi" => Some(1073741824.0),
            "Ti" => Some(1099511627776.0),
            "Pi" => Some(1125899906842624.0),
            _ => None,
        };
        if let (Ok(n), Some(f)) = (number.parse::<f64>(), factor)
            && (n * f).is_finite()
        {
            let v = value.unwrap_or(f64::NAN);
            prop_assert!(
                (v - n * f).abs() <= 1e-9 * (n * f).abs(),
                "{text:?} reads as {v}"
            );
        }
        // Totals print back to what they count.
        if let Some(v) = value.filter(|v| (0.0..1e15).contains(v)) {
            let cpu = quantity::parse(&quantity::cpu(v)).unwrap_or(f64::NAN);
            prop_assert!((cpu - v).abs() <= 5e-4 + 1e-9 * v, "cpu({v}) = {cpu}");
            let bytes = quantity::parse(&quantity::bytes(v)).unwrap_or(f64::NAN);
            prop_assert!(
                bytes >= v - 2.0 && bytes <= v + 1048576.0,
                "bytes({v}) = {bytes}"
            );
        }
        Ok(())
    });
}

#[derive(Clone, Debug)]
struct Placed {
    site: Value,
    product: Value,
    nodes: Vec<Value>,
    pods: Vec<Value>,
}

fn node_json() -> BoxedStrategy<Value> {
    object(vec![
        (
            "metadata",
            1.0,
            object(vec![
                ("name", 1.0, string(&["n1", "n2", "n3"])),
                (
                    "labels",
                    0.9,
                    string(&["frontend", "physical"])
                        .prop_map(|p| json!({ mutu_api::POOL_LABEL: p }))
                        .boxed(),
                ),
            ]),
        ),
        ("spec", 0.3, object(vec![("unschedulable", 0.8, boolean())])),
        (
            "status",
            0.9,
            object(vec![(
                "allocatable",
                0.9,
                object(vec![
                    ("cpu", 0.9, quantity_json()),
                    ("memory", 0.9, quantity_json()),
                ]),
            )]),
        ),
    ])
}

fn pod_json() -> BoxedStrategy<Value> {
    let container = object(vec![
        ("name", 1.0, fixed(json!("c"))),
        (
            "resources",
            0.9,
            object(vec![(
                "requests",
                0.9,
                object(vec![
                    ("cpu", 0.8, quantity_json()),
                    ("memory", 0.8, quantity_json()),
                ]),
            )]),
        ),
    ]);
    object(vec![
        (
            "metadata",
            1.0,
            object(vec![
                ("name", 1.0, string(&["p"])),
                ("namespace", 0.9, string(NAMESPACES)),
            ]),
        ),
        (
            "spec",
            1.0,
            object(vec![
                ("nodeName", 0.9, string(&["n1", "n2", "n3"])),
                (
                    "containers",
                    1.0,
                    vec(container, 0..3).prop_map(Value::from).boxed(),
                ),
            ]),
        ),
        (
            "status",
            0.3,
            object(vec![(
                "phase",
                1.0,
                string(&["Running", "Succeeded", "Failed", "Pending"]),
            )]),
        ),
    ])
}

fn check_placement(case: Placed) -> Result<(), TestCaseError> {
    let (Some(site), Some(product)) = (
        read::<PloneSite>(&case.site),
        read::<ProductSpec>(&case.product),
    ) else {
        return Ok(());
    };
    let nodes: Vec<Arc<Node>> = case.nodes.iter().filter_map(read).map(Arc::new).collect();
    let pods: Vec<Arc<Pod>> = case.pods.iter().filter_map(read).map(Arc::new).collect();

    // The pool: a plan's annotation if it is a valid name, else the status's, else the default.
    let pool = placement::pool_of(&site, "frontend");
    let annotated = site
        .annotations()
        .get(mutu_api::POOL_ANNOTATION)
        .filter(|p| is_dns_label(p));
    let recorded = site.status.as_ref().and_then(|s| s.pool.as_ref());
    let default = "frontend".to_string();
    prop_assert_eq!(Some(&pool), annotated.or(recorded).or(Some(&default)));

    // Storage: the site's settings first, then the product's, then the defaults.
    let mode = storage::mode(&site, &product);
    let kind = storage::of_site(&site, &product);
    prop_assert_eq!(kind == Storage::Zeo, mode == Some(StorageMode::Zeo));
    prop_assert_eq!(kind == Storage::Rel, mode == Some(StorageMode::Relstorage));
    let size = site
        .spec
        .storage
        .as_ref()
        .and_then(|s| s.size.as_ref())
        .or(product.storage.as_ref().and_then(|s| s.size.as_ref()))
        .map(|q| q.0.clone())
        .unwrap_or_else(|| storage::DEFAULT_SIZE.to_string());
    prop_assert_eq!(storage::size(&site, &product), size);
    let secret = storage::relstorage_secret(&site);
    match site
        .spec
        .storage
        .as_ref()
        .and_then(|s| s.secret_ref.as_ref())
    {
        Some(r) => prop_assert_eq!(&secret, &r.name),
        None => prop_assert_eq!(&secret, &names::postgresql_secret(&site.name_any())),
    }

    // Room on the pool: never more with more pods on its nodes.
    let fits = placement::fits_on_pool(&site, &product, &pool, &nodes, &pods);
    let schedulable = nodes.iter().any(|n| {
        n.labels().get(mutu_api::POOL_LABEL) == Some(&pool)
            && n.spec.as_ref().and_then(|s| s.unschedulable) != Some(true)
    });
    // (The API server refuses negative requests: pods only take room.)
    let takes_room = pods.iter().all(|p| {
        p.spec.iter().flat_map(|s| &s.containers).all(|c| {
            let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
            requests
                .into_iter()
                .flat_map(|r| r.values())
                .all(|q| quantity::parse(q).is_none_or(|v| v >= 0.0))
        })
    });
    if fits.is_ok() {
        prop_assert!(schedulable, "fits on a pool without a node");
    }
    if fits.is_ok() && takes_room {
        for k in 0..pods.len() {
            prop_assert!(
                placement::fits_on_pool(&site, &product, &pool, &nodes, &pods[..k]).is_ok(),
                "fits with {} pods, not with {k} of them",
                pods.len()
            );
        }
    }
    Ok(())
}

#[test]
fn fuzz_placement() {
    let products = catalog_seed();
    let seeds = specs("plonesite")
        .into_iter()
        .enumerate()
        .map(|(i, site)| {
            let product = products[i % products.len()].1.clone();
            (
                format!("site {i}"),
                Placed {
                    site,
                    product,
                    nodes: vec![json!({
                        "metadata": {"name": "n1", "labels": {mutu_api::POOL_LABEL: "frontend"}},
                        "status": {"allocatable": {"cpu": "4", "memory": "16Gi"}},
                    })],
                    pods: vec![],
                },
            )
        })
        .collect();
    let placed = (
        site_json(),
        product_spec_json(),
        vec(node_json(), 0..4),
        vec(pod_json(), 0..4),
    )
        .prop_map(|(site, product, nodes, pods)| Placed {
            site,
            product,
            nodes,
            pods,
        });
    fuzz("placement", seeds, placed, check_placement);
}

fn check_quota(case: Fleet) -> Result<(), TestCaseError> {
    let Some(tenant) = read::<MemberTenant>(&case.tenant) else {
        return Ok(());
    };
    let catalog = read_catalog(&case.catalog);
    for product in catalog.values() {
        let real = quota::footprint(product);
        let counted = quota::counted_per_instance(product);
        prop_assert!(counted.cpu >= real.cpu || real.cpu.is_nan());
        prop_assert!(counted.memory >= real.memory || real.memory.is_nan());
        prop_assert!(counted.storage >= real.storage || real.storage.is_nan());
    }
    let (hard, unknown) = quota::hard(&tenant, &catalog, &tenant_config());
    let missing: Vec<String> = tenant
        .spec
        .entitlements
        .keys()
        .filter(|p| !catalog.contains_key(*p))
        .cloned()
        .collect();
    prop_assert_eq!(unknown, missing);
    let overrides = tenant.spec.quota.clone().unwrap_or_default();
    let sites = overrides.sites.map(i64::from).unwrap_or_else(|| {
        tenant
            .spec
            .entitlements
            .values()
            .map(|n| i64::from((*n).max(0)))
            .sum()
    });
    prop_assert_eq!(
        hard.get(SITE_COUNT).map(|q| q.0.clone()),
        Some(sites.to_string())
    );
    for (key, explicit) in [
        ("requests.cpu", &overrides.cpu),
        ("requests.memory", &overrides.memory),
        ("requests.storage", &overrides.storage),
    ] {
        match (explicit, hard.get(key)) {
            (Some(q), got) => prop_assert_eq!(got, Some(q)),
            // What mutu computes, the API server and mutu read back.
            (None, Some(q)) => prop_assert!(
                quantity::parse(q).is_some_and(|v| v.is_finite() && v > 0.0),
                "{key}: {q:?}"
            ),
            (None, None) => {}
        }
    }
    Ok(())
}

#[test]
fn fuzz_quota() {
    fuzz("quota", fleet_seeds(), fleet(), check_quota);
}

// ---------------------------------------------------------------------------
// Names.

fn name() -> BoxedStrategy<String> {
    prop_oneof![
        2 => pick(SITE_NAMES),
        3 => dns_label(),
        3 => dns_subdomain(),
        1 => weird(),
    ]
    .boxed()
}

#[test]
fn fuzz_names() {
    let seeds = corpus_lines("name")
        .into_iter()
        .map(|(at, line)| {
            let (prefix, name) = line.split_once(' ').unwrap_or(("backup", &line));
            (
                at,
                (prefix.to_string(), name.to_string(), "uid-1".to_string()),
            )
        })
        .collect();
    let names_ = (name(), name(), weird());
    fuzz("name", seeds, names_, |(prefix, name, uid)| {
        let full = format!("{prefix}-{name}");
        let b = names::bounded(&prefix, &name);
        prop_assert_eq!(&b, &names::bounded(&prefix, &name), "deterministic");
        if full.len() <= names::MAX_NAME {
            prop_assert_eq!(&b, &full);
        } else {
            prop_assert!(b.chars().count() <= names::MAX_NAME, "{b}");
            // Two long names never meet.
            let other = names::bounded(&prefix, &format!("{name}x"));
            prop_assert_ne!(&b, &other);
        }
        if full.is_ascii() {
            prop_assert!(b.len() <= names::MAX_NAME, "{b}: {} bytes", b.len());
        }
        if subdomain_of_at_most(&prefix, 253) && subdomain_of_at_most(&name, 253) {
            prop_assert!(subdomain_of_at_most(&b, 63), "{b:?} is no valid name");
        }
        if is_dns_label(&prefix) && is_dns_label(&name) {
            prop_assert!(label_of_at_most(&b, 63), "{b:?} is no valid label");
        }

        let claim = names::migrated_data_claim(&name, &uid);
        prop_assert_eq!(&claim, &names::migrated_data_claim(&name, &uid));
        prop_assert_ne!(&claim, &names::zeo_data_claim(&name));
        if name.is_ascii() {
            prop_assert!(claim.len() <= names::MAX_NAME, "{claim}");
        }
        if subdomain_of_at_most(&name, 253) {
            prop_assert!(
                subdomain_of_at_most(&claim, 63),
                "{claim:?} is no valid name"
            );
        }

        // A name admission takes names valid children.
        prop_assert_eq!(
            names::site_name_problem(&name).is_none(),
            admissible_name(&name),
            "{:?}",
            names::site_name_problem(&name)
        );
        if admissible_name(&name) {
            for child in [
                names::zeo_server(&name),
                names::zeo_data_claim(&name),
                names::generic_data_claim(&name),
                names::postgresql_secret(&name),
                names::admin_secret(&name),
                names::solr_secret(&name),
                names::tls_secret(&name),
                names::scripts_config(&name),
                names::offline_service(&name),
                names::create_job(&name),
            ] {
                prop_assert!(label_of_at_most(&child, 63), "{child:?}");
            }
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// Backup windows.

#[test]
fn fuzz_windows() {
    let seeds = corpus_lines("window")
        .into_iter()
        .map(|(at, line)| {
            let mut parts = line.split(' ');
            let start = parts.next().unwrap_or_default().to_string();
            let end = parts.next().unwrap_or_default().to_string();
            let zone = parts.next().unwrap_or_default().to_string();
            (at, (start, end, zone, 0u32))
        })
        .collect();
    let time = || {
        prop_oneof![
            4 => "([01][0-9]|2[0-3]):[0-5][0-9]",
            2 => "[+-]?[0-9]{1,3}:[+-]?[0-9]{1,3}",
            1 => weird(),
        ]
    };
    let zone = prop_oneof![
        4 => pick(&["Europe/Brussels", "UTC", "America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe"]),
        1 => weird(),
    ];
    let window = (time(), time(), zone, 0u32..40_000);
    fuzz("window", seeds, window, |(start, end, time_zone, day)| {
        let window = Window {
            start,
            end,
            time_zone,
        };
        let date = jiff::civil::date(2000, 1, 1)
            .checked_add(jiff::Span::new().days(i64::from(day)))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        if let Ok((opens, closes)) = schedule::window_of(&window, date) {
            prop_assert!(closes >= opens, "{window:?} on {date}: {opens} .. {closes}");
            let hours = opens.duration_until(&closes).as_hours();
            prop_assert!(hours <= 25, "{window:?} on {date}: {hours} hours");
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------
// What the fuzzing found, each kept as a named test of its smallest input
// (and as a line of the corpus).

/// `0e999` read as NaN (0 times infinity), which every comparison takes as
/// false: a quota limit written so was never exceeded, and a request read as
/// zero millicores. Neither it nor `1e999` (beyond a float) is read now.
#[test]
fn regression_a_quantity_beyond_a_float_is_not_read() {
    for text in ["0e999", "1e999", "-1e999"] {
        let q = Quantity(text.to_string());
        assert_eq!(quantity::parse(&q), None, "{text}");
        assert_eq!(quantity::millicores(&q), None, "{text}");
        assert_eq!(quantity::units(&q), None, "{text}");
    }
}

/// A long name cut just after a dot went on with a label starting with '-'
/// (`...aaaaaaa.-fa3e7369ea`): a Job or volume claim name the API server
/// refuses (a Backup's Job, a MigrationPlan's copy).
#[test]
fn regression_a_long_name_cut_after_a_dot_stays_a_valid_name() {
    let b = names::bounded(
        "aa00-00aaa-00a-a-aa000a0a00a00aa0-0---0-0a--aaaaaaa.a0-000a0",
        "delib",
    );
    assert!(subdomain_of_at_most(&b, 63), "{b}");
}

/// A member's replicas times a product's requests went beyond 64 bits: a
/// panic (attempt to multiply with overflow) in a debug build, and in a
/// release build a wrapped, negative need that fit on any pool.
#[test]
fn regression_replicas_times_requests_beyond_64_bits_do_not_fit() {
    let site: PloneSite = serde_json::from_value(json!({
        "apiVersion": mutu_api::API_VERSION, "kind": "PloneSite",
        "metadata": {"name": "delib", "namespace": "tenant-mons"},
        "spec": {"product": "delib", "hostnames": ["delib.mons.be"], "replicas": i32::MAX},
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    let product: ProductSpec = serde_json::from_value(json!({
        "displayName": "Delib", "engine": "generic", "image": "registry/delib", "release": "1",
        "resources": {"requests": {"cpu": "1", "memory": "8Gi"}},
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": "n1", "labels": {mutu_api::POOL_LABEL: "frontend"}},
        "status": {"allocatable": {"cpu": "64", "memory": "1Ti"}},
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    let fits = placement::fits_on_pool(&site, &product, "frontend", &[Arc::new(node)], &[]);
    assert!(
        fits.as_ref()
            .is_err_and(|e| e.starts_with("no room on pool frontend")),
        "{fits:?}"
    );
}

/// Found by fuzzing: a Certificate's `spec.duration` or `spec.renewBefore` (or a
/// CertificateIssuer's rate-limit `window`, a SolrIndex's `keepPreviousFor`, a plan's
/// `retention` or `verifyTimeout`) beyond 2^64 seconds (`310000000000000000m`, which the
/// CRD's rule then admitted) panicked on reading in kube's parser ("cannot convert float
/// seconds to Duration"), so an operator watching such an object panicked instead of
/// reporting it. The rule now bounds each number to 9 digits, and reading refuses a
/// duration beyond 100 years with a message.
#[test]
fn regression_a_duration_beyond_64_bits_of_seconds_fails_to_read() {
    let certificate = json!({
        "apiVersion": mutu_api::API_VERSION, "kind": "Certificate",
        "metadata": {"name": "www-mons-be", "namespace": "tenant-mons"},
        "spec": {"dnsNames": ["www.mons.be"], "secretName": "www-mons-be-tls",
                 "issuerRef": {"name": "letsencrypt", "kind": "CertificateIssuer"},
                 "duration": "310000000000000000m"},
    });
    let read = std::panic::catch_unwind(|| read::<Certificate>(&certificate).is_none());
    assert_eq!(read.ok(), Some(true), "reading it panics rather than fail");
}
