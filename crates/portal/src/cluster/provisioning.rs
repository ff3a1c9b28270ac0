//! What mutu's conditions and decisions on a ProvisioningRequest mean (as
//! plain values, with the names of the model's request states), and recording
//! an approver's decision.

use crate::decision::{self, DecisionError};
use kube::{Client, ResourceExt};
use mutu_api::ProvisioningRequest;
use mutu_api::provisioning::Decision;
use mutu_model::provisioning::{AUTO_APPROVER, FULFILLED, VALIDATED};
use mutu_runtime::conditions;

use crate::model::{Checks, Fulfilment, Request, Verdict};

/// Why a decision was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    /// The caller is not an approver.
    #[error("not an approver")]
    Forbidden,
    /// The request changed while the caller decided.
    #[error("the request changed")]
    Changed,
    /// An approval of a request that does not pass its checks.
    #[error("the request does not pass its checks")]
    NotValid,
    /// A denial without a reason.
    #[error("no reason given")]
    NoReason,
    /// The request's current spec was decided on already, the other way.
    #[error("already decided")]
    AlreadyDecided,
    /// There is no such request.
    #[error("no such request")]
    NotFound,
    /// Anything else, as mutu describes it.
    #[error("{0}")]
    Failed(String),
}

impl From<DecisionError> for DecideError {
    fn from(e: DecisionError) -> Self {
        match e {
            DecisionError::Forbidden { .. } => DecideError::Forbidden,
            DecisionError::Conflict(_) => DecideError::Changed,
            DecisionError::NotValid { .. } => DecideError::NotValid,
            DecisionError::NoReason => DecideError::NoReason,
            DecisionError::AlreadyDecided { .. } => DecideError::AlreadyDecided,
            DecisionError::NotFound(_) => DecideError::NotFound,
            other => DecideError::Failed(other.to_string()),
        }
    }
}

/// Records the caller's `decision` on the request `ns`/`name`, with `reason`
/// (needed to deny).
pub async fn decide(
    c: &Client,
    ns: &str,
    name: &str,
    decision: Decision,
    reason: Option<String>,
) -> Result<(), DecideError> {
    decision::decide(c, ns, name, decision, reason).await?;
    Ok(())
}

/// The request `r` as the pages show it.
pub fn request(r: &ProvisioningRequest) -> Request {
    let status = r.status.clone().unwrap_or_default();
    let conds = &status.conditions;
    Request {
        namespace: r.namespace().unwrap_or_default(),
        name: r.name_any(),
        product: r.spec.product.clone(),
        hostnames: r.spec.hostnames.clone(),
        comment: r.spec.comment.clone(),
        checks: match conditions::find(conds, VALIDATED) {
            None => Checks::Running,
            Some(_) if conditions::is_true(conds, VALIDATED) => Checks::Passed,
            Some(_) => Checks::Failed,
        },
        verdict: verdict(decision::current_decision(r), status.decided_by.clone()),
        fulfilment: fulfilment(
            conditions::find(conds, FULFILLED)
                .map(|c| c.reason.as_str())
                .unwrap_or_default(),
        ),
        ready: conditions::is_true(conds, mutu_api::CONDITION_READY),
        reasons: status.reasons,
    }
}

/// The current `decision`, taken by `by`.
fn verdict(decision: Decision, by: Option<String>) -> Verdict {
    let by = by.unwrap_or_default();
    match decision {
        Decision::Pending => Verdict::Pending,
        Decision::Approved if by == AUTO_APPROVER => Verdict::ApprovedAutomatically,
        Decision::Approved => Verdict::Approved { by },
        Decision::Denied => Verdict::Denied { by },
    }
}

/// What the reason of the `Fulfilled` condition says.
fn fulfilment(reason: &str) -> Fulfilment {
    match reason {
        "AwaitingGitOps" => Fulfilment::AwaitingGitOps,
        "Creating" | "SiteNotReady" => Fulfilment::Creating,
        "SiteDeleted" => Fulfilment::SiteDeleted,
        _ => Fulfilment::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cond(type_: &str, status: &str, reason: &str) -> serde_json::Value {
        json!({"type": type_, "status": status, "reason": reason, "message": "",
               "lastTransitionTime": "2025-01-01T00:00:00Z"})
    }

    fn pr(generation: i64, status: serde_json::Value) -> ProvisioningRequest {
        serde_json::from_value(json!({
            "apiVersion": mutu_api::API_VERSION, "kind": "ProvisioningRequest",
            "metadata": {"name": "web", "namespace": "tenant-ans", "generation": generation},
            "spec": {"product": "web", "hostnames": ["www.ans.be"], "comment": "pour la fête"},
            "status": status,
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_request_not_checked_yet_is_pending_with_its_checks_running() {
        let r = request(&pr(1, json!(null)));
        assert_eq!(r.namespace, "tenant-ans");
        assert_eq!(r.name, "web");
        assert_eq!(r.host(), "www.ans.be");
        assert_eq!(r.comment.as_deref(), Some("pour la fête"));
        assert_eq!(r.checks, Checks::Running);
        assert_eq!(r.verdict, Verdict::Pending);
        assert_eq!(r.fulfilment, Fulfilment::Unknown);
        assert!(!r.ready);
    }

    #[test]
    fn checks_pass_only_when_validated_is_true() {
        let with = |s: &str| request(&pr(1, json!({"conditions": [cond(VALIDATED, s, "x")]})));
        assert_eq!(with("True").checks, Checks::Passed);
        assert_eq!(with("False").checks, Checks::Failed);
        assert_eq!(with("Unknown").checks, Checks::Failed);
    }

    #[test]
    fn a_decision_counts_for_the_generation_it_was_taken_on() {
        let status = json!({"decision": "Approved", "decidedBy": "marie@imio.be",
                            "decidedGeneration": 1});
        assert_eq!(
            request(&pr(1, status.clone())).verdict,
            Verdict::Approved {
                by: "marie@imio.be".into()
            }
        );
        assert_eq!(request(&pr(2, status)).verdict, Verdict::Pending);
        let auto = json!({"decision": "Approved", "decidedBy": AUTO_APPROVER,
                          "decidedGeneration": 1});
        assert_eq!(
            request(&pr(1, auto)).verdict,
            Verdict::ApprovedAutomatically
        );
        let denied = json!({"decision": "Denied", "decidedBy": "marie@imio.be",
                            "decidedGeneration": 1});
        assert!(request(&pr(1, denied)).denied());
    }

    #[test]
    fn the_fulfilled_reason_and_ready_say_how_far_the_site_is() {
        let r = request(&pr(
            1,
            json!({"conditions": [cond(FULFILLED, "False", "SiteNotReady"),
                                  cond(mutu_api::CONDITION_READY, "True", "x")]}),
        ));
        assert_eq!(r.fulfilment, Fulfilment::Creating);
        assert!(r.ready);
        assert_eq!(fulfilment("AwaitingGitOps"), Fulfilment::AwaitingGitOps);
        assert_eq!(fulfilment("Creating"), Fulfilment::Creating);
        assert_eq!(fulfilment("SiteDeleted"), Fulfilment::SiteDeleted);
        assert_eq!(fulfilment(""), Fulfilment::Unknown);
    }

    #[test]
    fn errors_not_told_apart_keep_mutus_words() {
        let e = DecideError::from(DecisionError::NotChecked("tenant-ans/web".into()));
        assert_eq!(
            e.to_string(),
            DecisionError::NotChecked("tenant-ans/web".into()).to_string()
        );
        assert!(matches!(
            DecideError::from(DecisionError::NoReason),
            DecideError::NoReason
        ));
    }
}
