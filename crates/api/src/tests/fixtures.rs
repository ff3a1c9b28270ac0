//! The invalid fixtures of tests/fixtures/invalid: each breaks exactly one CEL rule, the error
//! names the field its `# expect:` line says, and together they cover every rule of every CRD.

use std::collections::BTreeSet;

use kube::core::cel::{ValidationErrors, Validator};
use serde_json::{Value, json};

use super::{validate_typed, workspace_root, yaml_documents, yaml_files};
use crate::crds;

/// A raw manifest of `kind` named `example` (namespaced kinds in `default`).
pub(crate) fn raw(kind: &str, spec: Value) -> Value {
    let mut metadata = json!({ "name": "example" });
    if crd_of(kind).spec.scope == "Namespaced" {
        metadata["namespace"] = json!("default");
    }
    json!({ "apiVersion": crate::API_VERSION, "kind": kind, "metadata": metadata, "spec": spec })
}

fn crd_of(
    kind: &str,
) -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    crds()
        .into_iter()
        .find(|crd| crd.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD of kind {kind}"))
}

fn schema_of(kind: &str) -> Value {
    let crd = crd_of(kind);
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref());
    serde_json::to_value(schema).unwrap_or_default()
}

/// Checks a raw manifest against the CEL rules of its CRD, as the API server does (and as the
/// generated `validate_cel` does after reading the typed object).
pub(crate) fn validate_raw(doc: &Value, old: Option<&Value>) -> Result<(), ValidationErrors> {
    let kind = doc["kind"].as_str().unwrap_or_default();
    Validator::new().validate(&schema_of(kind), doc, old)
}

struct Fixture {
    name: String,
    expect: String,
    docs: Vec<Value>,
}

fn fixtures() -> Vec<Fixture> {
    let dir = workspace_root().join("tests/fixtures/invalid");
    let files = yaml_files(&dir);
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
        .iter()
        .map(|path| {
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let expect = text
                .lines()
                .next()
                .and_then(|line| line.strip_prefix("# expect: "))
                .unwrap_or_else(|| panic!("{name} does not start with '# expect: <message part>'"))
                .trim()
                .to_string();
            Fixture {
                name,
                expect,
                docs: yaml_documents(path),
            }
        })
        .collect()
}

/// The single failure of a fixture: creating it (one document), or changing the first
/// document into the second (two documents, for rules about changes).
fn failure(fixture: &Fixture) -> kube::core::cel::ValidationError {
    let (new, old) = match fixture.docs.as_slice() {
        [new] => (new, None),
        [old, new] => {
            assert!(
                validate_raw(old, None).is_ok(),
                "{}: first document must be valid",
                fixture.name
            );
            assert!(
                validate_raw(new, None).is_ok(),
                "{}: second document must be valid when created",
                fixture.name
            );
            (new, Some(old))
        }
        _ => panic!(
            "{}: one document, or two (original then change)",
            fixture.name
        ),
    };
    let errors = match validate_raw(new, old) {
        Ok(()) => panic!("{}: accepted, but must break one rule", fixture.name),
        Err(errors) => errors,
    };
    assert_eq!(
        errors.len(),
        1,
        "{}: must break exactly one rule, broke {errors}",
        fixture.name
    );
    if let Ok(typed) = validate_typed(new, old) {
        assert!(
            typed.is_err(),
            "{}: the typed validate_cel accepted it",
            fixture.name
        );
    }
    errors[0].clone()
}

#[test]
fn each_invalid_fixture_breaks_exactly_one_rule_and_the_message_names_the_field() {
    for fixture in fixtures() {
        let error = failure(&fixture);
        let field = error.message.split(':').next().unwrap_or_default();
        assert!(
            error.message.starts_with(&fixture.expect) && fixture.expect.starts_with(field),
            "{}: '# expect: {}' must be the start of the message, from the field it names: {:?}",
            fixture.name,
            fixture.expect,
            error.message
        );
    }
}

#[test]
fn namespaced_fixtures_use_the_default_namespace() {
    for fixture in fixtures() {
        for doc in &fixture.docs {
            let kind = doc["kind"].as_str().unwrap_or_default();
            let namespaced = crd_of(kind).spec.scope == "Namespaced";
            let namespace = doc["metadata"]["namespace"].as_str();
            assert_eq!(
                namespace,
                namespaced.then_some("default"),
                "{}",
                fixture.name
            );
        }
    }
}

#[test]
fn every_cel_rule_has_an_invalid_fixture() {
    let mut rules = BTreeSet::new();
    for crd in crds() {
        let schema = crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref());
        let schema = serde_json::to_value(schema).unwrap_or_default();
        super::crds::walk(&schema, "", &mut |_, node| {
            for rule in node["x-kubernetes-validations"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let message = rule["message"].as_str().unwrap_or_default().to_string();
                rules.insert((crd.spec.names.kind.clone(), message));
            }
        });
    }
    let covered: BTreeSet<_> = fixtures()
        .iter()
        .map(|fixture| {
            let kind = fixture.docs[0]["kind"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            (kind, failure(fixture).message)
        })
        .collect();
    let missing: Vec<_> = rules.difference(&covered).collect();
    assert!(missing.is_empty(), "rules without a fixture: {missing:#?}");
}
