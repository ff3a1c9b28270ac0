//! Unit tests of the hosting API: the CRDs' shape, every CEL rule, the examples and the
//! invalid fixtures. No cluster: CEL rules run client-side with kube's `validate_cel`.

mod common;
mod crds;
mod examples;
mod fixtures;
mod rules_backup;
mod rules_certificate;
mod rules_site;
mod rules_tenant;
mod rules_wave;

use std::path::PathBuf;

use kube::Resource;
use kube::core::cel::ValidationErrors;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// Root of the workspace (`examples/` and `tests/fixtures/` live there), from the
/// `CARGO_MANIFEST_DIR` cargo sets when the tests run: a shared target directory
/// may hold a test binary built from another checkout.
pub(crate) fn workspace_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("../..")
}

/// `base` with `patch` applied as a JSON merge patch (RFC 7386: `null` removes a key).
pub(crate) fn merged(mut base: Value, patch: Value) -> Value {
    merge(&mut base, patch);
    base
}

fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(&key);
                } else {
                    merge(target.entry(key).or_insert(Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch,
    }
}

/// An object of kind `K` named `example` with the given spec (namespaced kinds in `default`).
pub(crate) fn object<K>(spec: Value) -> K
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    let mut metadata = json!({ "name": "example" });
    if is_namespaced::<K>() {
        metadata["namespace"] = json!("default");
    }
    let doc = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": metadata,
        "spec": spec,
    });
    match serde_json::from_value(doc) {
        Ok(object) => object,
        Err(err) => panic!("test object of kind {} does not parse: {err}", K::kind(&())),
    }
}

fn is_namespaced<K: Resource<DynamicType = ()>>() -> bool {
    std::any::type_name::<K::Scope>().ends_with("NamespaceResourceScope")
}

/// Asserts that CEL accepted the object, showing the failures otherwise.
#[track_caller]
pub(crate) fn accepted(result: Result<(), ValidationErrors>) {
    if let Err(errors) = result {
        panic!("expected the object to be accepted, got {errors}");
    }
}

/// Asserts that CEL refused the object with exactly one failure whose message names `field`.
#[track_caller]
pub(crate) fn rejected(result: Result<(), ValidationErrors>, field: &str) {
    match result {
        Ok(()) => panic!("expected the object to be refused with a message naming {field}"),
        Err(errors) => {
            assert_eq!(
                errors.len(),
                1,
                "expected exactly one failure, got {errors}"
            );
            assert!(
                errors[0].message.starts_with(&format!("{field}:"))
                    || errors[0].message.starts_with(&format!("{field} ")),
                "message {:?} (at {}) does not name {field}",
                errors[0].message,
                errors[0].field_path
            );
        }
    }
}

/// Runs the generated `validate_cel` (or `validate_cel_update` against `old`) of the typed
/// kind named in `doc`. `Err` when the document does not read as that kind.
pub(crate) fn validate_typed(
    doc: &Value,
    old: Option<&Value>,
) -> Result<Result<(), ValidationErrors>, String> {
    use crate::*;
    let kind = doc["kind"].as_str().unwrap_or_default();
    match kind {
        "MemberTenant" => typed::<MemberTenant>(doc, old),
        "Product" => typed::<Product>(doc, old),
        "PloneSite" => typed::<PloneSite>(doc, old),
        "SolrIndex" => typed::<SolrIndex>(doc, old),
        "Certificate" => typed::<Certificate>(doc, old),
        "CertificateIssuer" => typed::<CertificateIssuer>(doc, old),
        "BackupPolicy" => typed::<BackupPolicy>(doc, old),
        "Backup" => typed::<Backup>(doc, old),
        "Restore" => typed::<Restore>(doc, old),
        "MigrationPlan" => typed::<MigrationPlan>(doc, old),
        "ReleaseRollout" => typed::<ReleaseRollout>(doc, old),
        "ProvisioningRequest" => typed::<ProvisioningRequest>(doc, old),
        other => Err(format!("unknown kind {other:?}")),
    }
}

/// The typed kinds' generated CEL methods, behind one trait so tests can call them generically.
pub(crate) trait Cel: Sized + DeserializeOwned + serde::Serialize {
    fn create(&self) -> Result<(), ValidationErrors>;
    fn update(&self, old: &Self) -> Result<(), ValidationErrors>;
}

macro_rules! cel_kinds {
    ($($kind:ty),*) => {$(
        impl Cel for $kind {
            fn create(&self) -> Result<(), ValidationErrors> {
                self.validate_cel()
            }
            fn update(&self, old: &Self) -> Result<(), ValidationErrors> {
                self.validate_cel_update(old)
            }
        }
    )*};
}

cel_kinds!(
    crate::MemberTenant,
    crate::Product,
    crate::PloneSite,
    crate::SolrIndex,
    crate::Certificate,
    crate::CertificateIssuer,
    crate::BackupPolicy,
    crate::Backup,
    crate::Restore,
    crate::MigrationPlan,
    crate::ReleaseRollout,
    crate::ProvisioningRequest
);

fn typed<K: Cel>(doc: &Value, old: Option<&Value>) -> Result<Result<(), ValidationErrors>, String> {
    let new: K = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    match old {
        None => Ok(new.create()),
        Some(old) => {
            let old: K = serde_json::from_value(old.clone()).map_err(|e| e.to_string())?;
            Ok(new.update(&old))
        }
    }
}

/// Every document of a (multi-document) YAML file, as JSON values.
pub(crate) fn yaml_documents(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    serde_saphyr::from_multiple(&text)
        .unwrap_or_else(|err| panic!("{} is not valid YAML: {err}", path.display()))
}

/// The `.yaml` files of a directory, sorted.
pub(crate) fn yaml_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    files
}
