//! The approver role: who may decide members' requests. Member admins may
//! create and edit requests in their own namespace (the tenant admin role)
//! but never write a request's status, where the decision lives: only this
//! role may.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use mutu_runtime::labels;

pub use mutu_model::provisioning::APPROVER_ROLE;
/// Group bound to the approver role unless `--approvers-group` says otherwise.
pub const DEFAULT_APPROVERS_GROUP: &str = "mutu-approvers";

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        labels: Some(BTreeMap::from([
            (
                labels::MANAGED_BY.to_string(),
                labels::MANAGED_BY_VALUE.to_string(),
            ),
            (labels::COMPONENT.to_string(), "rbac".to_string()),
            (labels::INSTANCE.to_string(), "request-approver".to_string()),
        ])),
        ..Default::default()
    }
}

fn rule(resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![mutu_api::GROUP.to_string()]),
        resources: Some(resources.iter().map(|s| s.to_string()).collect()),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// What an approver may do, in every namespace.
pub fn approver_role() -> ClusterRole {
    ClusterRole {
        metadata: meta(APPROVER_ROLE),
        rules: Some(vec![
            // See every member's requests, to review them.
            rule(&["provisioningrequests"], &["get", "list", "watch"]),
            // Record a decision: it lives in the status, which member admins
            // cannot write.
            rule(
                &["provisioningrequests/status"],
                &["get", "patch", "update"],
            ),
            // Judge a request: the member's entitlements and domains, the
            // catalog, and the sites already there.
            rule(
                &["membertenants", "products", "plonesites"],
                &["get", "list", "watch"],
            ),
        ]),
        aggregation_rule: None,
    }
}

/// Binds the approver role to `group`.
pub fn approver_binding(group: &str) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(APPROVER_ROLE),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_string()),
            kind: "ClusterRole".to_string(),
            name: APPROVER_ROLE.to_string(),
        },
        subjects: Some(vec![Subject {
            kind: "Group".to_string(),
            name: group.to_string(),
            api_group: Some("rbac.authorization.k8s.io".to_string()),
            namespace: None,
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approvers_may_decide_but_not_create_or_delete_and_use_no_wildcard() {
        let role = approver_role();
        let rules = role.rules.unwrap_or_default();
        for r in &rules {
            assert!(!r.verbs.iter().any(|v| v == "*"), "{r:?}");
            assert!(!r.resources.iter().flatten().any(|v| v == "*"), "{r:?}");
            assert!(
                !r.verbs.iter().any(|v| v == "create" || v == "delete"),
                "{r:?}"
            );
        }
        let status = rules
            .iter()
            .find(|r| {
                r.resources
                    .iter()
                    .flatten()
                    .any(|x| x == "provisioningrequests/status")
            })
            .map(|r| r.verbs.clone());
        assert_eq!(
            status,
            Some(vec![
                "get".to_string(),
                "patch".to_string(),
                "update".to_string()
            ])
        );
    }

    #[test]
    fn the_binding_names_the_group() {
        let b = approver_binding("cpas-approvers");
        let subjects = b.subjects.unwrap_or_default();
        assert_eq!(subjects.len(), 1);
        assert_eq!(subjects[0].kind, "Group");
        assert_eq!(subjects[0].name, "cpas-approvers");
        assert_eq!(b.role_ref.name, APPROVER_ROLE);
    }
}
