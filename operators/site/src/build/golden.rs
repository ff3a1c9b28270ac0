//! Regression test of the builders: the serialized children of a set of
//! representative sites, compared with a recorded file. The operator
//! fingerprints what it applies, so any change of a child's JSON would re-apply
//! it on every site of the fleet; this test makes such a change visible.
//!
//! To record the file again after an intended change:
//! `MUTU_BLESS_GOLDEN=1 cargo test -p mutu-site golden`.

use std::collections::BTreeMap;

use mutu_api::{PloneSite, Product, ProductSpec};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{Desired, Plan, build};

const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/src/build/testdata/children.json"
);

fn site(name: &str, meta: &str, spec: &str) -> PloneSite {
    serde_saphyr::from_str(&format!(
        "apiVersion: hosting.imio.be/v1alpha1\nkind: PloneSite\nmetadata:\n  name: {name}\n  namespace: tenant-mons\n  uid: uid-{name}\n{meta}spec:\n  product: p\n  hostnames: [{name}.mons.be, www.{name}.mons.be]\n{spec}"
    ))
    .unwrap_or_else(|e| panic!("site {name}: {e}"))
}

fn product(yaml: &str) -> ProductSpec {
    let p: Product = serde_saphyr::from_str(&format!(
        "apiVersion: hosting.imio.be/v1alpha1\nkind: Product\nmetadata: {{name: p}}\nspec:\n{yaml}"
    ))
    .unwrap_or_else(|e| panic!("product: {e}"));
    p.spec
}

fn zeo_product() -> ProductSpec {
    product(
        "  displayName: ia.Délib\n  engine: plone\n  image: registry.imio.be/imio/delib\n  release: \"4.2.18\"\n  replicas: 2\n  storage: {mode: zeo, size: 20Gi, storageClassName: ceph-rbd}\n  solr: {enabled: true, configset: delib, configsetVersion: \"3\"}\n  upgradeCommand: [zconsole, run, /app/etc/zope.conf]\n  siteCreationCommand: [zconsole, run, /app/etc/zope.conf]\n  resources: {requests: {cpu: 250m, memory: 1Gi}, limits: {memory: 2Gi}}\n",
    )
}

fn rel_product() -> ProductSpec {
    product(
        "  displayName: Site web\n  engine: plone\n  image: registry.imio.be/imio/web\n  release: \"6.1.0\"\n  replicas: 1\n  storage: {mode: relstorage}\n  upgradeCommand: [zconsole, run, /app/etc/zope.conf]\n  siteCreationCommand: [zconsole, run, /app/etc/zope.conf]\n  healthPath: /health\n  port: 8081\n",
    )
}

fn generic_product(storage: &str) -> ProductSpec {
    product(&format!(
        "  displayName: ATAL\n  engine: generic\n  image: registry.imio.be/atal/atal\n  release: \"7.3\"\n  replicas: 3\n{storage}  siteCreationCommand: [init]\n  upgradeCommand: [migrate]\n  resources: {{requests: {{cpu: 100m}}}}\n"
    ))
}

fn plan() -> Plan {
    Plan {
        product: "p".into(),
        release: "4.2.18".into(),
        upgrade_to: None,
        pool: "frontend".into(),
        suspended: false,
        issuer: "letsencrypt".into(),
        ingress_class: "nginx".into(),
        solr_env: BTreeMap::from([
            ("COLLECTIVE_SOLR_HOST".into(), "solr".into()),
            ("COLLECTIVE_SOLR_BASE".into(), "/solr/tenant-mons-s".into()),
        ]),
        create_site: true,
        data_volume: None,
        offline: false,
        maintenance_backend: ("mutu-maintenance.mutu-system.svc".into(), 8080),
    }
}

/// A recorded case: name, site, product and plan.
type Case = (&'static str, PloneSite, ProductSpec, Plan);

/// The plan of a site without Solr.
fn no_solr() -> Plan {
    Plan {
        solr_env: BTreeMap::new(),
        ..plan()
    }
}

/// The representative sites.
fn cases() -> Vec<Case> {
    zeo_cases().into_iter().chain(other_cases()).collect()
}

/// Sites of a ZEO product.
fn zeo_cases() -> Vec<Case> {
    vec![
        ("zeo", site("zeo", "", ""), zeo_product(), plan()),
        (
            "zeo-created-upgrading",
            site("upg", "", "  replicas: 4\n  language: nl\n"),
            zeo_product(),
            Plan {
                create_site: false,
                upgrade_to: Some("4.3.0-rc.1".into()),
                ..plan()
            },
        ),
        (
            "zeo-creating-and-upgrading",
            site(
                "both",
                "  annotations: {hosting.imio.be/title: \"Commune de Mons\"}\n",
                "  language: de\n",
            ),
            zeo_product(),
            Plan {
                upgrade_to: Some("4.3.0".into()),
                ..plan()
            },
        ),
        (
            "zeo-migrated-volume",
            site("moved", "", ""),
            zeo_product(),
            Plan {
                data_volume: Some("data-moved-zeo-m1a2b3".into()),
                pool: "physical".into(),
                ..plan()
            },
        ),
        (
            "zeo-offline",
            site("off", "", "  replicas: 1\n"),
            zeo_product(),
            Plan {
                offline: true,
                create_site: false,
                ..plan()
            },
        ),
        (
            "zeo-suspended",
            site("susp", "", ""),
            zeo_product(),
            Plan {
                suspended: true,
                upgrade_to: Some("4.3.0".into()),
                ..plan()
            },
        ),
        (
            "zeo-site-storage-delete-solr-version",
            site(
                "own",
                "",
                "  replicas: 0\n  storage: {size: 50Gi, storageClassName: local-fast}\n  solr: {configsetVersion: \"4\"}\n  deletionPolicy: Delete\n",
            ),
            zeo_product(),
            plan(),
        ),
        (
            "zeo-solr-off",
            site("nosolr", "", "  solr: {enabled: false}\n"),
            zeo_product(),
            no_solr(),
        ),
    ]
}

/// Sites of a RelStorage product and of generic products.
fn other_cases() -> Vec<Case> {
    vec![
        (
            "relstorage",
            site(
                "rel",
                "",
                "  storage: {mode: relstorage, secretRef: {name: rel-pg}}\n",
            ),
            rel_product(),
            Plan {
                upgrade_to: Some("6.2.0".into()),
                ..no_solr()
            },
        ),
        (
            "relstorage-offline-suspended",
            site("relo", "", "  replicas: 2\n"),
            rel_product(),
            Plan {
                offline: true,
                suspended: true,
                ..no_solr()
            },
        ),
        (
            "generic-volume",
            site("atal", "", ""),
            generic_product("  storage: {size: 5Gi}\n"),
            Plan {
                upgrade_to: Some("7.4".into()),
                ..no_solr()
            },
        ),
        (
            "generic-site-volume-class",
            site(
                "atal2",
                "",
                "  storage: {size: 8Gi, storageClassName: nfs}\n  replicas: 1\n",
            ),
            generic_product(""),
            Plan {
                offline: true,
                ..no_solr()
            },
        ),
        (
            "generic-no-volume",
            site("novol", "", ""),
            generic_product(""),
            plan(),
        ),
    ]
}

fn value<T: Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or_else(|e| panic!("serialize: {e}"))
}

/// Every child of `d`, by the field of [`Desired`] it is in.
fn children(d: &Desired) -> Map<String, Value> {
    let Desired {
        config,
        zeo,
        services,
        data,
        zeo_data,
        deployment,
        pdb,
        ingress,
        certificate,
        solr_index,
        jobs,
        admin,
    } = d;
    Map::from_iter([
        ("config".to_string(), value(config)),
        ("zeo".to_string(), value(zeo)),
        ("services".to_string(), value(services)),
        ("data".to_string(), value(data)),
        ("zeo_data".to_string(), value(zeo_data)),
        ("deployment".to_string(), value(deployment)),
        ("pdb".to_string(), value(pdb)),
        ("ingress".to_string(), value(ingress)),
        ("certificate".to_string(), value(certificate)),
        ("solr_index".to_string(), value(solr_index)),
        ("jobs".to_string(), value(jobs)),
        ("admin".to_string(), value(admin)),
    ])
}

fn built() -> Map<String, Value> {
    cases()
        .into_iter()
        .map(|(name, site, product, plan)| {
            let d = build(&site, &product, &plan).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name.to_string(), Value::Object(children(&d)))
        })
        .collect()
}

#[test]
fn golden_children_are_unchanged() {
    let now = built();
    if std::env::var_os("MUTU_BLESS_GOLDEN").is_some() {
        let text = serde_json::to_string_pretty(&now).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(GOLDEN, text + "\n").unwrap_or_else(|e| panic!("{GOLDEN}: {e}"));
        return;
    }
    let text = std::fs::read_to_string(GOLDEN).unwrap_or_else(|e| panic!("{GOLDEN}: {e}"));
    let recorded: Map<String, Value> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{GOLDEN}: {e}"));
    assert_eq!(
        recorded.keys().collect::<Vec<_>>(),
        now.keys().collect::<Vec<_>>(),
        "the recorded cases"
    );
    for (case, children) in &now {
        for (field, child) in children.as_object().into_iter().flatten() {
            assert_eq!(
                &recorded[case][field], child,
                "case {case}, child {field}: the serialized child changed"
            );
        }
    }
}
