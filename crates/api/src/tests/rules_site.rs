//! CEL rules of PloneSite, Product and SolrIndex: one valid and one invalid object each.

use serde_json::{Value, json};

use super::{accepted, merged, object, rejected};
use crate::{PloneSite, Product, SolrIndex};

fn site(patch: Value) -> PloneSite {
    let base = json!({ "product": "delib", "hostnames": ["deliberations.mons.be"] });
    object(merged(base, patch))
}

fn product(patch: Value) -> Product {
    let base = json!({
        "displayName": "ia.Délib",
        "engine": "plone",
        "image": "registry.imio.be/imio/delib",
        "release": "4.2.18",
    });
    object(merged(base, patch))
}

#[test]
fn site_product_cannot_change_after_creation() {
    let old = site(json!({}));
    accepted(site(json!({ "replicas": 3 })).validate_cel_update(&old));
    rejected(
        site(json!({ "product": "docs" })).validate_cel_update(&old),
        "spec.product",
    );
}

#[test]
fn site_hostnames_must_be_lower_case_dns_names() {
    accepted(site(json!({ "hostnames": ["deliberations.mons.be", "mons.be"] })).validate_cel());
    for bad in [
        "Deliberations.Mons.be",
        "mons..be",
        "-mons.be",
        "mons.be.",
        "https://mons.be",
    ] {
        rejected(
            site(json!({ "hostnames": [bad] })).validate_cel(),
            "spec.hostnames",
        );
    }
}

#[test]
fn site_needs_at_least_one_hostname() {
    rejected(
        site(json!({ "hostnames": [] })).validate_cel(),
        "spec.hostnames",
    );
}

#[test]
fn site_release_must_be_an_image_tag() {
    accepted(site(json!({ "release": "4.2.18" })).validate_cel());
    rejected(
        site(json!({ "release": "4.2.18 beta" })).validate_cel(),
        "spec.release",
    );
}

#[test]
fn site_replicas_cannot_be_negative() {
    accepted(site(json!({ "replicas": 0 })).validate_cel());
    rejected(
        site(json!({ "replicas": -1 })).validate_cel(),
        "spec.replicas",
    );
}

#[test]
fn site_on_relstorage_needs_a_secret() {
    let with_secret = json!({ "storage": { "mode": "relstorage", "secretRef": { "name": "pg" } } });
    accepted(site(with_secret).validate_cel());
    accepted(site(json!({ "storage": { "mode": "zeo" } })).validate_cel());
    let without = json!({ "storage": { "mode": "relstorage" } });
    rejected(site(without).validate_cel(), "spec.storage.secretRef");
}

#[test]
fn site_storage_mode_cannot_change_once_set() {
    let old = site(json!({ "storage": { "mode": "zeo" } }));
    let grown = site(json!({ "storage": { "mode": "zeo", "size": "40Gi" } }));
    accepted(grown.validate_cel_update(&old));
    let moved = json!({ "storage": { "mode": "relstorage", "secretRef": { "name": "pg" } } });
    rejected(site(moved).validate_cel_update(&old), "spec.storage.mode");
}

#[test]
fn product_storage_mode_is_for_plone_only() {
    accepted(product(json!({ "storage": { "mode": "relstorage" } })).validate_cel());
    let generic = json!({ "engine": "generic", "storage": { "mode": "zeo" } });
    rejected(product(generic).validate_cel(), "spec.storage.mode");
}

#[test]
fn product_solr_is_for_plone_only() {
    accepted(product(json!({ "solr": { "enabled": true } })).validate_cel());
    accepted(product(json!({ "engine": "generic", "solr": { "enabled": false } })).validate_cel());
    let generic = json!({ "engine": "generic", "solr": { "enabled": true } });
    rejected(product(generic).validate_cel(), "spec.solr.enabled");
}

#[test]
fn product_image_has_no_tag() {
    accepted(product(json!({ "image": "registry.imio.be:5000/imio/delib" })).validate_cel());
    for bad in [
        "registry.imio.be/imio/delib:4.2.18",
        "registry.imio.be/imio/delib@sha256:ab",
    ] {
        rejected(
            product(json!({ "image": bad })).validate_cel(),
            "spec.image",
        );
    }
}

#[test]
fn product_release_must_be_an_image_tag() {
    accepted(product(json!({ "release": "4.2.18-rc1" })).validate_cel());
    rejected(
        product(json!({ "release": "-4.2" })).validate_cel(),
        "spec.release",
    );
}

#[test]
fn product_replicas_cannot_be_negative() {
    accepted(product(json!({ "replicas": 0 })).validate_cel());
    rejected(
        product(json!({ "replicas": -2 })).validate_cel(),
        "spec.replicas",
    );
}

#[test]
fn product_health_path_is_absolute() {
    accepted(product(json!({ "healthPath": "/@@ok" })).validate_cel());
    rejected(
        product(json!({ "healthPath": "ok" })).validate_cel(),
        "spec.healthPath",
    );
}

#[test]
fn product_port_is_a_tcp_port() {
    accepted(product(json!({ "port": 65535 })).validate_cel());
    rejected(product(json!({ "port": 0 })).validate_cel(), "spec.port");
    rejected(
        product(json!({ "port": 70000 })).validate_cel(),
        "spec.port",
    );
}

#[test]
fn product_defaults_fill_replicas_port_and_health_path() {
    let spec = product(json!({})).spec;
    assert_eq!(
        (spec.replicas, spec.port, spec.health_path.as_str()),
        (1, 8080, "/ok")
    );
}

#[test]
fn solr_index_spec_may_be_empty() {
    accepted(object::<SolrIndex>(json!({})).validate_cel());
}

#[test]
fn solr_index_url_is_http() {
    let ok = json!({ "url": "http://solr.solr.svc:8983/solr" });
    accepted(object::<SolrIndex>(ok).validate_cel());
    let bad = json!({ "url": "solr.solr.svc:8983" });
    rejected(object::<SolrIndex>(bad).validate_cel(), "spec.url");
}
