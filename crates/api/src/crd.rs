//! Generation of the CustomResourceDefinitions: every kind in a stable order, their file
//! names in `crds/`, and their YAML.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::Value;

use crate::{
    Backup, BackupPolicy, Certificate, CertificateIssuer, MemberTenant, MigrationPlan, PloneSite,
    Product, ProvisioningRequest, ReleaseRollout, Restore, SolrIndex,
};

/// Every CRD of the hosting API, in a stable order (tenants and catalog first, then what
/// lives in tenant namespaces, then fleet-wide plans), with field docs ready for
/// `kubectl explain`.
pub fn crds() -> Vec<CustomResourceDefinition> {
    [
        MemberTenant::crd(),
        Product::crd(),
        PloneSite::crd(),
        SolrIndex::crd(),
        Certificate::crd(),
        CertificateIssuer::crd(),
        BackupPolicy::crd(),
        Backup::crd(),
        Restore::crd(),
        MigrationPlan::crd(),
        ReleaseRollout::crd(),
        ProvisioningRequest::crd(),
    ]
    .into_iter()
    .map(unwrap_descriptions)
    .collect()
}

/// File name of a CRD in `crds/`: its name plus `.yaml`, e.g. `plonesites.hosting.imio.be.yaml`.
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    let name = crd.metadata.name.as_deref().unwrap_or_default();
    format!("{name}.yaml")
}

/// First line of every generated CRD file.
pub const CRD_HEADER: &str =
    "# Generated from the types in crates/api (mutu-api); do not edit by hand.\n";

/// A CRD as YAML (with serde-saphyr, like kube), preceded by [`CRD_HEADER`].
pub fn crd_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_saphyr::SerializeError> {
    Ok(format!("{CRD_HEADER}{}", serde_saphyr::to_string(crd)?))
}

/// Field docs come from doc comments, wrapped at 100 columns; `kubectl explain` wraps text
/// itself, so line breaks inside a paragraph are joined (paragraphs stay apart).
fn unwrap_descriptions(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let Ok(mut value) = serde_json::to_value(&crd) else {
        return crd;
    };
    unwrap_in(&mut value);
    serde_json::from_value(value).unwrap_or(crd)
}

fn unwrap_in(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                match child {
                    Value::String(text) if key == "description" => *text = unwrap_text(text),
                    _ => unwrap_in(child),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(unwrap_in),
        _ => {}
    }
}

fn unwrap_text(text: &str) -> String {
    text.split("\n\n")
        .map(|paragraph| paragraph.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|paragraph| !paragraph.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::unwrap_text;

    #[test]
    fn descriptions_join_lines_but_keep_paragraphs() {
        let text = "Public hostnames the site\nanswers on.\n\nThe first one\n is canonical.";
        assert_eq!(
            unwrap_text(text),
            "Public hostnames the site answers on.\n\nThe first one is canonical."
        );
    }
}
