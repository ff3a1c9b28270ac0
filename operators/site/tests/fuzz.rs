//! Fuzzing of the site builders ([`mutu_site::build`]) with what a member
//! controls: a PloneSite read from arbitrary JSON shaped like one (its name,
//! hostnames, release, replicas, storage, search and TLS settings), a Product
//! of the catalog, and the reconcile's decisions. Building never fails nor
//! panics, and every child is one the API server takes: a valid name in the
//! site's namespace, labels and selectors that match, exactly the site's
//! hostnames, and no name another site of the namespace uses.
//!
//! The corpus (`tests/fuzz-corpus/plonesite/`, with the products of
//! `tests/fuzz-corpus/product/`) runs first, then `MUTU_FUZZ_CASES` random cases.

#[path = "../../../tests/fuzz-corpus/harness.rs"]
mod harness;
#[path = "../../../tests/fuzz-corpus/resources.rs"]
mod resources;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::ResourceExt;
use mutu_api::product::Engine;
use mutu_api::{PloneSite, ProductSpec};
use mutu_model::names;
use mutu_model::storage::{self, Storage};
use mutu_site::build::{Desired, Plan, SITE_LABEL, build};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::Value;

use harness::fuzz;
use resources::*;

/// What the reconcile decides beside the spec: the release the instances run
/// (the site's pinned one, a member's choice), the release to upgrade to,
/// the pool, suspension, issuer, Solr, creation, a migrated volume, offline.
#[derive(Clone, Debug)]
struct Decisions {
    release: String,
    upgrade_to: Option<String>,
    pool: String,
    suspended: bool,
    issuer: String,
    solr: bool,
    create_site: bool,
    data_volume: Option<String>,
    offline: bool,
    maintenance_port: i32,
}

fn decisions() -> BoxedStrategy<Decisions> {
    (
        (
            text(RELEASES),
            prop::option::of(text(RELEASES)),
            pick(&["frontend", "physical"]),
            any::<bool>(),
            text(&["letsencrypt", "internal-ca"]),
        ),
        (
            any::<bool>(),
            any::<bool>(),
            prop::option::weighted(0.2, pick(&["data-delib-zeo-1a2b3c"])),
            any::<bool>(),
            prop_oneof![Just(8080), any::<i32>()],
        ),
    )
        .prop_map(
            |(
                (release, upgrade_to, pool, suspended, issuer),
                (solr, create_site, data_volume, offline, maintenance_port),
            )| Decisions {
                release,
                upgrade_to,
                pool,
                suspended,
                issuer,
                solr,
                create_site,
                data_volume,
                offline,
                maintenance_port,
            },
        )
        .boxed()
}

fn plan(site: &PloneSite, d: &Decisions) -> Plan {
    let solr_env = if d.solr {
        BTreeMap::from([
            ("COLLECTIVE_SOLR_HOST".to_string(), "solr".to_string()),
            (
                "COLLECTIVE_SOLR_BASE".to_string(),
                format!("/solr/{}", site.name_any()),
            ),
        ])
    } else {
        BTreeMap::new()
    };
    Plan {
        product: site.spec.product.clone(),
        release: d.release.clone(),
        upgrade_to: d.upgrade_to.clone(),
        pool: d.pool.clone(),
        suspended: d.suspended,
        issuer: d.issuer.clone(),
        ingress_class: "nginx".to_string(),
        solr_env,
        create_site: d.create_site,
        data_volume: d.data_volume.clone(),
        offline: d.offline,
        maintenance_backend: (
            "mutu-maintenance.mutu-system.svc".to_string(),
            d.maintenance_port,
        ),
    }
}

/// A site, a second one it is moved beside (same namespace), its product and
/// the reconcile's decisions.
#[derive(Clone, Debug)]
struct Case {
    site: Value,
    neighbour: Value,
    product: Value,
    decisions: Decisions,
}

/// Every child of `d`: its kind and metadata.
fn children(d: &Desired) -> Vec<(&'static str, &ObjectMeta)> {
    let mut out: Vec<(&'static str, &ObjectMeta)> = Vec::new();
    out.extend(d.config.iter().map(|c| ("ConfigMap", &c.metadata)));
    out.extend(d.zeo.iter().map(|c| ("StatefulSet", &c.metadata)));
    out.extend(d.services.iter().map(|c| ("Service", &c.metadata)));
    out.extend(
        d.data
            .iter()
            .map(|c| ("PersistentVolumeClaim", &c.metadata)),
    );
    out.extend(
        d.zeo_data
            .iter()
            .map(|c| ("PersistentVolumeClaim", &c.metadata)),
    );
    out.extend(d.deployment.iter().map(|c| ("Deployment", &c.metadata)));
    out.extend(d.pdb.iter().map(|c| ("PodDisruptionBudget", &c.metadata)));
    out.extend(d.ingress.iter().map(|c| ("Ingress", &c.metadata)));
    out.extend(d.certificate.iter().map(|c| ("Certificate", &c.metadata)));
    out.extend(d.solr_index.iter().map(|c| ("SolrIndex", &c.metadata)));
    out.extend(d.jobs.iter().map(|c| ("Job", &c.metadata)));
    out
}

/// A label value the API server takes: at most 63 characters, alphanumerics,
/// '-', '_' and '.' inside.
fn label_value(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() <= 63
        && (b.is_empty()
            || (b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))))
}

/// A Service's name (RFC 1035): a DNS label starting with a letter.
fn dns1035_label(name: &str) -> bool {
    label_of_at_most(name, 63) && name.starts_with(|c: char| c.is_ascii_lowercase())
}

/// The selector picks the pods of the template.
fn selects(selector: Option<&LabelSelector>, template: Option<&ObjectMeta>) -> bool {
    let wanted = selector
        .and_then(|s| s.match_labels.clone())
        .unwrap_or_default();
    let labels = template.and_then(|m| m.labels.clone()).unwrap_or_default();
    !wanted.is_empty() && wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn built(site: &PloneSite, product: &ProductSpec, plan: &Plan) -> Result<Desired, TestCaseError> {
    build(site, product, plan).map_err(|e| TestCaseError::fail(format!("build failed: {e}")))
}

fn check(case: Case) -> Result<(), TestCaseError> {
    let (Some(mut site), Some(product)) = (
        read::<PloneSite>(&case.site),
        read::<ProductSpec>(&case.product),
    ) else {
        return Ok(());
    };
    // The API server gives every object its UUID.
    site.metadata.uid = Some("5173e1c2-0d9a-4b8e-9f53-1b2c3d4e5f60".to_string());
    let plan = plan(&site, &case.decisions);
    let d = built(&site, &product, &plan)?;
    let name = site.name_any();
    let ns = site.namespace();
    // A name admission takes (the names of its children are derived from it).
    let requestable = names::site_name_problem(&name).is_none();

    let mut seen = BTreeSet::new();
    for (kind, meta) in children(&d) {
        let child = meta.name.clone().unwrap_or_default();
        prop_assert!(seen.insert((kind, child.clone())), "two {kind} {child}");
        prop_assert_eq!(&meta.namespace, &ns, "{} {}", kind, child);
        let labels = meta.labels.clone().unwrap_or_default();
        prop_assert_eq!(labels.get(SITE_LABEL), Some(&name), "{} {}", kind, child);
        if requestable {
            prop_assert!(
                label_of_at_most(&child, 63),
                "{kind} {child:?} is no valid name"
            );
            for (k, v) in &labels {
                prop_assert!(label_value(v), "{kind} {child}: label {k}={v:?}");
            }
        }
        if requestable && kind == "Service" {
            prop_assert!(dns1035_label(&child), "Service {child:?}");
        }
    }

    // Exactly the site's hostnames, on its certificate's Secret.
    let ingress = d
        .ingress
        .as_ref()
        .ok_or_else(|| TestCaseError::fail("no Ingress"))?;
    let spec = ingress.spec.clone().unwrap_or_default();
    let hosts: Vec<String> = spec
        .rules
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| r.host)
        .collect();
    prop_assert_eq!(&hosts, &site.spec.hostnames);
    let tls = spec.tls.unwrap_or_default();
    prop_assert_eq!(tls.len(), 1);
    prop_assert_eq!(tls[0].hosts.as_ref(), Some(&site.spec.hostnames));
    prop_assert_eq!(tls[0].secret_name.clone(), Some(names::tls_secret(&name)));
    let cert = d
        .certificate
        .as_ref()
        .ok_or_else(|| TestCaseError::fail("no Certificate"))?;
    prop_assert_eq!(&cert.spec.dns_names, &site.spec.hostnames);
    prop_assert_eq!(&cert.spec.secret_name, &names::tls_secret(&name));
    prop_assert!(
        cert.metadata.owner_references.is_none(),
        "the certificate outlives the site"
    );

    // Instances: as many as asked (none when suspended), selecting their own pods.
    let deployment = d
        .deployment
        .as_ref()
        .ok_or_else(|| TestCaseError::fail("no Deployment"))?;
    let replicas = if plan.suspended {
        0
    } else {
        site.spec.replicas.unwrap_or(product.replicas).max(0)
    };
    let dspec = &deployment.spec;
    prop_assert_eq!(dspec.replicas, Some(replicas));
    prop_assert!(selects(
        Some(&dspec.selector),
        dspec.template.metadata.as_ref()
    ));
    prop_assert_eq!(d.pdb.is_some(), replicas > 1);
    if let Some(pdb) = &d.pdb {
        let pspec = pdb.spec.clone().unwrap_or_default();
        prop_assert!(selects(
            pspec.selector.as_ref(),
            dspec.template.metadata.as_ref()
        ));
    }

    // Storage: where the rules of `storage` put the data.
    let kind = storage::of_site(&site, &product);
    prop_assert_eq!(d.zeo.is_some(), kind == Storage::Zeo);
    prop_assert_eq!(
        d.zeo_data.is_some(),
        kind == Storage::Zeo && plan.data_volume.is_none()
    );
    prop_assert_eq!(d.data.is_some(), kind == Storage::Volume);
    if let Some(zeo) = &d.zeo {
        prop_assert!(selects(
            Some(&zeo.spec.selector),
            zeo.spec.template.metadata.as_ref()
        ));
        prop_assert_eq!(zeo.spec.replicas, Some(i32::from(!plan.suspended)));
    }
    for claim in d.data.iter().chain(&d.zeo_data) {
        prop_assert!(
            claim.metadata.owner_references.is_none(),
            "the data outlives the site"
        );
        let size = claim
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .map(|q| q.0.clone());
        prop_assert_eq!(size, Some(storage::size(&site, &product)));
    }

    // Offline, the public goes to the maintenance page's Service.
    if !site.spec.hostnames.is_empty() {
        let to = if plan.offline {
            names::offline_service(&name)
        } else {
            name.clone()
        };
        prop_assert_eq!(backends(ingress), BTreeSet::from([to]));
    }
    if plan.offline {
        prop_assert!(
            d.services
                .iter()
                .any(|s| s.name_any() == names::offline_service(&name))
        );
    }

    // Jobs only for a running Plone site; the creation once asked.
    if plan.suspended || product.engine != Engine::Plone {
        prop_assert!(d.jobs.is_empty());
    }

    // The same site builds the same children.
    let again = built(&site, &product, &plan)?;
    prop_assert_eq!(json(&again), json(&d));

    // A second site of the namespace never names a child as this one does
    // (both of names admission takes).
    if let Some(mut neighbour) = read::<PloneSite>(&case.neighbour) {
        neighbour.metadata.namespace = site.namespace();
        let other = neighbour.name_any();
        if other != name && requestable && names::site_name_problem(&other).is_none() {
            let plan2 = Plan {
                product: neighbour.spec.product.clone(),
                ..plan.clone()
            };
            let theirs = built(&neighbour, &product, &plan2)?;
            let mine: BTreeSet<(&str, String)> = children(&d)
                .into_iter()
                .map(|(k, m)| (k, m.name.clone().unwrap_or_default()))
                .collect();
            for (kind, meta) in children(&theirs) {
                let child = meta.name.clone().unwrap_or_default();
                prop_assert!(
                    !mine.contains(&(kind, child.clone())),
                    "sites {name} and {other} both want {kind} {child}"
                );
            }
        }
    }
    Ok(())
}

/// The Services the Ingress sends its visitors to.
fn backends(ingress: &k8s_openapi::api::networking::v1::Ingress) -> BTreeSet<String> {
    let rules = ingress
        .spec
        .as_ref()
        .and_then(|s| s.rules.clone())
        .unwrap_or_default();
    rules
        .iter()
        .flat_map(|r| r.http.iter().flat_map(|h| &h.paths))
        .filter_map(|p| p.backend.service.as_ref().map(|s| s.name.clone()))
        .collect()
}

fn json(d: &Desired) -> Value {
    serde_json::json!({
        "config": d.config, "zeo": d.zeo, "services": d.services, "data": d.data,
        "zeo_data": d.zeo_data, "deployment": d.deployment, "pdb": d.pdb,
        "ingress": d.ingress, "certificate": d.certificate, "solr_index": d.solr_index,
        "jobs": d.jobs, "admin": d.admin,
    })
}

#[test]
fn fuzz_site_builders() {
    let products = docs("product");
    let sites = docs("plonesite");
    let seeds = sites
        .iter()
        .enumerate()
        .map(|(i, (name, site))| {
            // The product it names, else one of the catalog.
            let product = products
                .iter()
                .find(|(_, p)| p["metadata"]["name"] == site["spec"]["product"])
                .unwrap_or(&products[i % products.len()])
                .1["spec"]
                .clone();
            let decisions = Decisions {
                release: "4.2.18".into(),
                upgrade_to: (i % 2 == 0).then(|| "4.3.0".into()),
                pool: "frontend".into(),
                suspended: i % 3 == 2,
                issuer: "letsencrypt".into(),
                solr: i % 2 == 1,
                create_site: true,
                data_volume: None,
                offline: i % 4 == 3,
                maintenance_port: 8080,
            };
            let neighbour = sites[(i + 1) % sites.len()].1.clone();
            (
                name.clone(),
                Case {
                    site: site.clone(),
                    neighbour,
                    product,
                    decisions,
                },
            )
        })
        .collect();
    let cases = (site_json(), site_json(), product_spec_json(), decisions()).prop_map(
        |(site, neighbour, product, decisions)| Case {
            site,
            neighbour,
            product,
            decisions,
        },
    );
    fuzz("site-builders", seeds, cases, check);
}

// ---------------------------------------------------------------------------
// What the fuzzing found and is not fixed here, kept as named tests of the
// smallest input, ignored until it is.

fn site_named(name: &str) -> PloneSite {
    serde_json::from_value(serde_json::json!({
        "apiVersion": mutu_api::API_VERSION, "kind": "PloneSite",
        "metadata": {"name": name, "namespace": "tenant-mons"},
        "spec": {"product": "delib", "hostnames": [format!("{name}.mons.be")]},
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

fn zeo_product() -> ProductSpec {
    serde_json::from_value(serde_json::json!({
        "displayName": "ia.Délib", "engine": "plone", "image": "registry.imio.be/imio/delib",
        "release": "4.2.18", "storage": {"mode": "zeo"},
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

fn service_names(site: &PloneSite, offline: bool) -> Vec<String> {
    let d = Decisions {
        release: "4.2.18".into(),
        upgrade_to: None,
        pool: "frontend".into(),
        suspended: false,
        issuer: "letsencrypt".into(),
        solr: false,
        create_site: false,
        data_volume: None,
        offline,
        maintenance_port: 8080,
    };
    build(site, &zeo_product(), &plan(site, &d))
        .unwrap_or_else(|e| panic!("{e}"))
        .services
        .iter()
        .map(|s| s.name_any())
        .collect()
}

/// Found by fuzzing: sites `delib` and `delib-zeo` of one namespace (a member
/// could ask for the second with a ProvisioningRequest's `siteName`) both wanted
/// the Service `delib-zeo`: the ZEO server's of the first, the instances' of the
/// second, each reconcile taking it from the other (its selector, and its owner
/// label that pruning goes by). The same held for `S-offline` while `S` is
/// offline. Such names are now refused, by admission and by requests, and the
/// fuzzing above checks that two sites of names admission takes share no child.
#[test]
fn regression_a_site_named_after_another_sites_zeo_server_takes_its_service() {
    for (suffix, offline) in [("zeo", false), ("offline", true)] {
        let mine = format!("delib-{suffix}");
        let theirs = service_names(&site_named("delib"), offline);
        let clash = service_names(&site_named(&mine), false);
        assert!(
            clash.iter().any(|s| theirs.contains(s)),
            "the names would meet: {clash:?} {theirs:?}"
        );
        let refused = names::site_name_problem(&mine);
        assert!(
            refused
                .as_ref()
                .is_some_and(|p| p.contains("names a Service of site \"delib\"")),
            "{mine}: {refused:?}"
        );
    }
}

/// Found by fuzzing: a site name a request accepted (`1web`: a DNS label, at
/// most 40 characters) named the site's Services, which must be RFC 1035
/// labels (starting with a letter) unless the API server relaxes the rule
/// (feature gate `RelaxedServiceNameValidation` of recent Kubernetes):
/// elsewhere the site's Services were refused. Such names are now refused, by
/// admission and by requests, with what to change.
#[test]
fn regression_a_site_name_starting_with_a_digit_names_valid_services() {
    let refused = names::site_name_problem("1web");
    assert!(
        refused
            .as_ref()
            .is_some_and(|p| p.contains("must start with a lower-case letter")),
        "{refused:?}"
    );
    for name in service_names(&site_named("web1"), true) {
        assert!(dns1035_label(&name), "Service {name:?}");
    }
}
