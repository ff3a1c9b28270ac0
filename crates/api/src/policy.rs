//! Fields only the platform team decides: a ValidatingAdmissionPolicy (and its binding) that
//! the API server enforces on every write of a PloneSite by anyone else, a member's admin
//! first. Installed by `mutu dev up` and by the Helm chart (generated into
//! `charts/mutu/templates/` by `make crds`).
//!
//! What it refuses to a member, and why:
//! - `spec.deletionPolicy: Delete` on a site that did not have it: deleting the site would
//!   delete its data volumes and certificate with it;
//! - adding, changing or removing the annotations mutu's plans and the platform team use to
//!   move a site (`pool`, `data-volume`), stop it (`maintenance`, `offline`), upgrade it
//!   (`release`) or hold it for one of them (`held-by`).
//!
//! Who is the platform: users in the group `system:masters` or [`PLATFORM_GROUP`], and the
//! service accounts of mutu's own namespace (its operator and portal).

use serde_json::{Value, json};

use crate::common::{
    DATA_VOLUME_ANNOTATION, HELD_BY_ANNOTATION, MAINTENANCE_ANNOTATION, OFFLINE_ANNOTATION,
    POOL_ANNOTATION, RELEASE_ANNOTATION,
};

/// Name of the policy and of its binding that `mutu dev up` installs (the Helm chart names
/// its own after the release).
pub const PLATFORM_FIELDS_POLICY: &str = "mutu-platform-fields";

/// The group of the platform team's users (besides `system:masters`).
pub const PLATFORM_GROUP: &str = "mutu:platform";

/// Annotations of a PloneSite that only the platform sets.
pub const PLATFORM_ANNOTATIONS: [&str; 6] = [
    HELD_BY_ANNOTATION,
    POOL_ANNOTATION,
    DATA_VOLUME_ANNOTATION,
    MAINTENANCE_ANNOTATION,
    OFFLINE_ANNOTATION,
    RELEASE_ANNOTATION,
];

/// The labels of mutu's admission policies and bindings.
fn labels() -> Value {
    json!({
        "app.kubernetes.io/managed-by": "mutu",
        "app.kubernetes.io/component": "admission",
    })
}

/// The binding `name` that makes the API server deny what the policy `name` refuses.
fn binding(name: &str) -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name, "labels": labels()},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
        },
    })
}

/// The policy and its binding, both named `name`, for an operator running in `namespace` (a
/// Helm template may pass `{{ .Release.Namespace }}`).
pub fn platform_fields(name: &str, namespace: &str) -> Vec<Value> {
    let keys = PLATFORM_ANNOTATIONS
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let labels = labels();
    // Each platform annotation as "key=value", for the new and the old object.
    let pairs = |obj: &str| {
        format!(
            "has({obj}.metadata.annotations) ? {obj}.metadata.annotations.filter(k, k in variables.platformKeys).map(k, k + '=' + {obj}.metadata.annotations[k]) : []"
        )
    };
    let policy = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [{
                    "apiGroups": [crate::GROUP],
                    "apiVersions": ["*"],
                    "operations": ["CREATE", "UPDATE"],
                    "resources": ["plonesites"],
                }],
            },
            "matchConditions": [{
                "name": "not-the-platform",
                "expression": format!(
                    "!request.userInfo.groups.exists(g, g == 'system:masters' || g == '{PLATFORM_GROUP}') && !request.userInfo.username.startsWith('system:serviceaccount:{namespace}:')"
                ),
            }],
            "variables": [
                {"name": "platformKeys", "expression": format!("[{keys}]")},
                {"name": "now", "expression": pairs("object")},
                {"name": "before", "expression": format!(
                    "oldObject == null ? [] : ({})", pairs("oldObject")
                )},
            ],
            "validations": [
                {
                    "expression": "!has(object.spec.deletionPolicy) || object.spec.deletionPolicy != 'Delete' || (oldObject != null && has(oldObject.spec.deletionPolicy) && oldObject.spec.deletionPolicy == 'Delete')",
                    "message": "spec.deletionPolicy: Delete deletes the site's data volumes and certificate with the site, and only the platform team may choose it; leave it out (Retain keeps them) and ask the platform team if the data must go",
                    "reason": "Forbidden",
                },
                {
                    "expression": "variables.now.all(p, p in variables.before) && variables.before.all(p, p in variables.now)",
                    "messageExpression": format!(
                        "'metadata.annotations: ' + [{keys}].join(', ') + ' move, stop, upgrade or hold the site, and only the platform team and mutu set them; leave them as they are (changed: ' + (variables.now.filter(p, !(p in variables.before)) + variables.before.filter(p, !(p in variables.now))).map(p, p.split('=')[0]).join(', ') + ')'"
                    ),
                    "reason": "Forbidden",
                },
            ],
        },
    });
    vec![policy, binding(name)]
}

/// What mutu's service accounts write in namespaces, by API group: the kinds the operator
/// makes for tenants (and its own Lease-free objects in its namespace).
const CONFINED: [(&str, &[&str]); 6] = [
    (
        "",
        &[
            "secrets",
            "configmaps",
            "services",
            "persistentvolumeclaims",
            "pods",
            "resourcequotas",
            "limitranges",
        ],
    ),
    ("apps", &["deployments", "statefulsets"]),
    ("batch", &["jobs"]),
    ("policy", &["poddisruptionbudgets"]),
    ("networking.k8s.io", &["ingresses", "networkpolicies"]),
    ("rbac.authorization.k8s.io", &["rolebindings", "roles"]),
];

/// A policy (and its binding), both named `name`, that confines the writes of the service
/// accounts of `namespace` (mutu's operator and portal) to tenant namespaces (labelled
/// [`crate::TENANT_LABEL`]) and `namespace` itself. Their ClusterRole lets them write
/// Secrets, Jobs, Deployments and RoleBindings in every namespace, because tenant
/// namespaces are made as tenants come; this policy keeps a stolen token of theirs out of
/// `kube-system` and every other namespace.
pub fn operator_confinement(name: &str, namespace: &str) -> Vec<Value> {
    let labels = labels();
    let mut rules: Vec<Value> = CONFINED
        .iter()
        .map(|(group, resources)| {
            json!({
                "apiGroups": [group],
                "apiVersions": ["*"],
                "operations": ["CREATE", "UPDATE", "DELETE"],
                "resources": resources,
            })
        })
        .collect();
    rules.push(json!({
        "apiGroups": [""],
        "apiVersions": ["*"],
        "operations": ["CREATE", "UPDATE", "DELETE"],
        "resources": ["namespaces"],
    }));
    let tenant = crate::TENANT_LABEL;
    let prefix = crate::common::TENANT_NAMESPACE_PREFIX;
    // A namespace is a tenant's when it was made labelled (as `tenant-<name>`) and kept
    // its label: mutu never labels a namespace it did not make.
    let labelled =
        |obj: &str| format!("has({obj}.metadata.labels) && '{tenant}' in {obj}.metadata.labels");
    let policy = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": rules},
            "matchConditions": [{
                "name": "mutus-own-service-accounts",
                "expression": format!(
                    "request.userInfo.username.startsWith('system:serviceaccount:{namespace}:')"
                ),
            }],
            "validations": [
                {
                    "expression": format!(
                        "request.resource.resource == 'namespaces' || request.namespace == '{namespace}' || (namespaceObject != null && {})",
                        labelled("namespaceObject")
                    ),
                    "messageExpression": format!(
                        "'mutu writes ' + request.resource.resource + ' only in tenant namespaces (labelled {tenant}) and in {namespace}; namespace ' + request.namespace + ' is neither'"
                    ),
                    "reason": "Forbidden",
                },
                {
                    "expression": format!(
                        "request.resource.resource != 'namespaces' || (oldObject == null ? object.metadata.name.startsWith('{prefix}') && {new} : {old} && (object == null || ({new} && object.metadata.labels['{tenant}'] == oldObject.metadata.labels['{tenant}'])))",
                        new = labelled("object"),
                        old = labelled("oldObject"),
                    ),
                    "messageExpression": format!(
                        "'mutu makes, changes and deletes only tenant namespaces ({prefix}NAME, labelled {tenant} when made, the label never changed): namespace ' + request.name + ' is not one'"
                    ),
                    "reason": "Forbidden",
                },
            ],
        },
    });
    vec![policy, binding(name)]
}

/// The chart's policies: [`platform_fields`] named `fields` and [`operator_confinement`]
/// named `confinement`, as one YAML stream with a header saying it is generated.
pub fn chart_policies_yaml(
    fields: &str,
    confinement: &str,
    namespace: &str,
) -> Result<String, serde_saphyr::SerializeError> {
    let mut out = platform_fields_yaml(fields, namespace)?;
    for doc in operator_confinement(confinement, namespace) {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&doc)?);
    }
    Ok(out)
}

/// [`platform_fields`] as one YAML stream, with a header saying it is generated.
pub fn platform_fields_yaml(
    name: &str,
    namespace: &str,
) -> Result<String, serde_saphyr::SerializeError> {
    let mut out = String::from(
        "# Generated by `make crds` from crates/api/src/policy.rs: do not edit by hand.\n",
    );
    for doc in platform_fields(name, namespace) {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&doc)?);
    }
    Ok(out)
}
