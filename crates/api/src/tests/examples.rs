//! The examples in examples/: every document reads as its typed kind with no unknown field,
//! passes the CEL rules, and the examples hang together (sites of real tenants and products).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{validate_typed, workspace_root, yaml_documents, yaml_files};
use crate::common::{is_within_domain, tenant_namespace};
use crate::crds;

fn examples() -> Vec<(String, Value)> {
    let files = yaml_files(&workspace_root().join("examples"));
    assert!(!files.is_empty(), "no examples");
    let mut docs = vec![];
    for path in files {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        for doc in yaml_documents(&path) {
            // Other files of examples/ (e.g. the fleet profile) are not resources of the API.
            if doc["apiVersion"] == crate::API_VERSION {
                docs.push((name.clone(), doc));
            }
        }
    }
    docs
}

/// Fails when `raw` has a key the typed object dropped (a typo the API server would prune).
fn assert_no_unknown_fields(raw: &Value, typed: &Value, path: &str) {
    if let (Value::Object(raw), Value::Object(typed)) = (raw, typed) {
        for (key, value) in raw {
            let Some(typed_value) = typed.get(key) else {
                panic!("{path}.{key} is not a field of the API");
            };
            assert_no_unknown_fields(value, typed_value, &format!("{path}.{key}"));
        }
    }
    if let (Value::Array(raw), Value::Array(typed)) = (raw, typed) {
        for (i, (r, t)) in raw.iter().zip(typed).enumerate() {
            assert_no_unknown_fields(r, t, &format!("{path}[{i}]"));
        }
    }
}

fn round_trip(doc: &Value) -> Value {
    use crate::*;
    fn via<K: serde::de::DeserializeOwned + serde::Serialize>(doc: &Value) -> Value {
        let typed: K = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{e}"));
        serde_json::to_value(typed).unwrap_or_default()
    }
    match doc["kind"].as_str().unwrap_or_default() {
        "MemberTenant" => via::<MemberTenant>(doc),
        "Product" => via::<Product>(doc),
        "PloneSite" => via::<PloneSite>(doc),
        "SolrIndex" => via::<SolrIndex>(doc),
        "Certificate" => via::<Certificate>(doc),
        "CertificateIssuer" => via::<CertificateIssuer>(doc),
        "BackupPolicy" => via::<BackupPolicy>(doc),
        "Backup" => via::<Backup>(doc),
        "Restore" => via::<Restore>(doc),
        "MigrationPlan" => via::<MigrationPlan>(doc),
        "ReleaseRollout" => via::<ReleaseRollout>(doc),
        "ProvisioningRequest" => via::<ProvisioningRequest>(doc),
        other => panic!("unknown kind {other}"),
    }
}

#[test]
fn every_example_reads_as_its_kind_and_passes_the_cel_rules() {
    for (file, doc) in examples() {
        let name = format!("{file}: {} {}", doc["kind"], doc["metadata"]["name"]);
        match validate_typed(&doc, None) {
            Ok(Ok(())) => {}
            Ok(Err(errors)) => panic!("{name} breaks a rule: {errors}"),
            Err(err) => panic!("{name} does not read as its kind: {err}"),
        }
        assert_no_unknown_fields(&doc, &round_trip(&doc), &name);
    }
}

#[test]
fn every_kind_has_an_example_and_namespaced_ones_state_their_namespace() {
    let docs = examples();
    for crd in crds() {
        let kind = &crd.spec.names.kind;
        let of_kind: Vec<_> = docs
            .iter()
            .filter(|(_, d)| d["kind"] == kind.as_str())
            .collect();
        assert!(!of_kind.is_empty(), "no example of {kind}");
        for (file, doc) in of_kind {
            let namespace = doc["metadata"]["namespace"].as_str();
            let namespaced = crd.spec.scope == "Namespaced";
            assert_eq!(
                namespace.is_some(),
                namespaced,
                "{file}: {kind} {}",
                doc["metadata"]["name"]
            );
        }
    }
}

#[test]
fn example_sites_belong_to_example_tenants_and_use_their_domains_and_catalog_products() {
    let docs = examples();
    let products: BTreeSet<&str> = docs
        .iter()
        .filter(|(_, d)| d["kind"] == "Product")
        .filter_map(|(_, d)| d["metadata"]["name"].as_str())
        .collect();
    let domains: BTreeMap<String, Vec<&str>> = docs
        .iter()
        .filter(|(_, d)| d["kind"] == "MemberTenant")
        .map(|(_, d)| {
            let name = d["metadata"]["name"].as_str().unwrap_or_default();
            let list = d["spec"]["domains"].as_array().into_iter().flatten();
            (
                tenant_namespace(name),
                list.filter_map(Value::as_str).collect(),
            )
        })
        .collect();
    for (_, tenant) in docs.iter().filter(|(_, d)| d["kind"] == "MemberTenant") {
        for product in tenant["spec"]["entitlements"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            assert!(
                products.contains(product.as_str()),
                "entitlement to unknown product {product}"
            );
        }
    }
    for (file, site) in docs.iter().filter(|(_, d)| {
        ["PloneSite", "ProvisioningRequest"].contains(&d["kind"].as_str().unwrap_or_default())
    }) {
        let namespace = site["metadata"]["namespace"].as_str().unwrap_or_default();
        let product = site["spec"]["product"].as_str().unwrap_or_default();
        assert!(
            products.contains(product),
            "{file}: unknown product {product}"
        );
        let Some(tenant_domains) = domains.get(namespace) else {
            panic!("{file}: {namespace} is not the namespace of an example tenant");
        };
        for host in site["spec"]["hostnames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let ok = tenant_domains
                .iter()
                .any(|domain| is_within_domain(host, domain));
            assert!(ok, "{file}: {host} is outside the domains of {namespace}");
        }
    }
}
