//! An approver's decision on a request, as `mutu request` and the portal
//! record it: in the request's status, over the version read (so a request
//! edited meanwhile is not approved unseen), as the identity the API server
//! knows the caller by. Only the approver role may write it: member admins
//! cannot approve their own requests.

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use mutu_api::ProvisioningRequest;
use mutu_api::provisioning::Decision;
use serde_json::json;

use mutu_model::provisioning::{APPROVER_ROLE, VALIDATED};

/// Field manager of the decisions people write.
pub const MANAGER: &str = "mutu-request";

/// Why a decision was not recorded, or a site not rendered.
#[derive(Debug, thiserror::Error)]
pub enum DecisionError {
    #[error("ProvisioningRequest {0} not found (see kubectl get provisioningrequests -A)")]
    NotFound(String),
    #[error(
        "{0} has not been checked by mutu yet (is the operator running?); try again in a few seconds"
    )]
    NotChecked(String),
    #[error(
        "{id} was already decided ({how}); a decision stands until the member edits the request"
    )]
    AlreadyDecided { id: String, how: String },
    #[error("{id} cannot be approved: {reasons}")]
    NotValid { id: String, reasons: String },
    #[error(
        "you may not {what} {id}: deciding requests needs the approver role (ClusterRole {APPROVER_ROLE}); member admins cannot decide their own requests ({message})"
    )]
    Forbidden {
        what: &'static str,
        id: String,
        message: String,
    },
    #[error(
        "{0} changed while you decided (the member may have edited it): look at it again and retry"
    )]
    Conflict(String),
    #[error("cannot ask the API server who you are (SelfSubjectReview): {0}")]
    WhoAmI(String),
    #[error("say why the request is denied; the member reads it")]
    NoReason,
    #[error(
        "{id} is not approved ({how}); a site is rendered for approved requests only: mutu request approve {id}"
    )]
    NotApproved { id: String, how: String },
    #[error("{id} has no rendered site: it does not pass its checks any more ({reasons})")]
    NotRendered { id: String, reasons: String },
    #[error("cannot {what} {id}: {source}")]
    Api {
        what: &'static str,
        id: String,
        #[source]
        source: kube::Error,
    },
}

fn api_error(e: kube::Error, id: &str, what: &'static str) -> DecisionError {
    match e {
        kube::Error::Api(s) if s.code == 403 => DecisionError::Forbidden {
            what,
            id: id.to_string(),
            message: s.message,
        },
        kube::Error::Api(s) if s.code == 409 => DecisionError::Conflict(id.to_string()),
        source => DecisionError::Api {
            what,
            id: id.to_string(),
            source,
        },
    }
}

/// Reads the request NS/NAME.
pub async fn get(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<ProvisioningRequest, DecisionError> {
    let id = format!("{ns}/{name}");
    Api::<ProvisioningRequest>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| api_error(e, &id, "read"))?
        .ok_or(DecisionError::NotFound(id))
}

/// Whether the request carries a decision taken on its current spec.
pub fn current_decision(request: &ProvisioningRequest) -> Decision {
    let status = request.status.clone().unwrap_or_default();
    let current = status.decided_generation.is_some()
        && status.decided_generation == request.metadata.generation;
    if current {
        status.decision.unwrap_or_default()
    } else {
        Decision::Pending
    }
}

/// The state of the decision, in words.
pub fn decision_text(request: &ProvisioningRequest) -> String {
    let status = request.status.clone().unwrap_or_default();
    let by = status.decided_by.clone().unwrap_or_else(|| "?".to_string());
    match (status.decision, current_decision(request)) {
        (Some(Decision::Approved | Decision::Denied), Decision::Pending) => {
            "it was edited after its decision".to_string()
        }
        (_, Decision::Approved) => format!("approved by {by}"),
        (_, Decision::Denied) => format!("denied by {by}"),
        _ => "pending".to_string(),
    }
}

/// The site YAML of an approved request.
pub fn rendered(request: &ProvisioningRequest) -> Result<String, DecisionError> {
    let id = format!(
        "{}/{}",
        request.namespace().unwrap_or_default(),
        request.name_any()
    );
    if current_decision(request) != Decision::Approved {
        return Err(DecisionError::NotApproved {
            how: decision_text(request),
            id,
        });
    }
    let status = request.status.clone().unwrap_or_default();
    status
        .rendered_site
        .ok_or_else(|| DecisionError::NotRendered {
            id,
            reasons: status
                .reasons
                .iter()
                .map(|r| r.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        })
}

/// Who the API server knows this client as.
pub async fn whoami(client: &Client) -> Result<String, DecisionError> {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .map_err(|e| DecisionError::WhoAmI(e.to_string()))?;
    review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| DecisionError::WhoAmI("the API server did not say".to_string()))
}

/// What recording a decision did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Recorded, as this identity.
    Now(String),
    /// The same decision was there already, by this identity.
    Already(String),
}

/// Records `decision` (Approved or Denied) on the request NS/NAME as the
/// caller of `client`, with `message` (a denial's reason is required).
pub async fn decide(
    client: &Client,
    ns: &str,
    name: &str,
    decision: Decision,
    message: Option<String>,
) -> Result<Recorded, DecisionError> {
    let id = format!("{ns}/{name}");
    let message = message.filter(|m| !m.trim().is_empty());
    if decision == Decision::Denied && message.is_none() {
        return Err(DecisionError::NoReason);
    }
    let request = get(client, ns, name).await?;
    let generation = request.metadata.generation;
    let status = request.status.clone().unwrap_or_default();
    if !(status.observed_generation.is_some() && status.observed_generation == generation) {
        return Err(DecisionError::NotChecked(id));
    }
    let current = current_decision(&request);
    if current == decision {
        return Ok(Recorded::Already(status.decided_by.unwrap_or_default()));
    }
    if current != Decision::Pending {
        return Err(DecisionError::AlreadyDecided {
            how: decision_text(&request),
            id,
        });
    }
    let valid = status
        .conditions
        .iter()
        .any(|c| c.type_ == VALIDATED && c.status == "True");
    if decision == Decision::Approved && !valid {
        let reasons: Vec<&str> = status.reasons.iter().map(|r| r.message.as_str()).collect();
        return Err(DecisionError::NotValid {
            id,
            reasons: if reasons.is_empty() {
                "it does not pass its checks".to_string()
            } else {
                reasons.join("; ")
            },
        });
    }
    let me = whoami(client).await?;
    let patch = json!({
        "metadata": {"resourceVersion": request.resource_version()},
        "status": {
            "decision": decision,
            "decidedBy": me,
            "decisionTime": Time(mutu_runtime::status::now()),
            "decidedGeneration": generation,
            "decisionMessage": message,
        },
    });
    Api::<ProvisioningRequest>::namespaced(client.clone(), ns)
        .patch_status(
            name,
            &PatchParams {
                field_manager: Some(MANAGER.to_string()),
                ..Default::default()
            },
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|e| api_error(e, &id, "decide on"))?;
    Ok(Recorded::Now(me))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(yaml_status: &str, generation: i64) -> ProvisioningRequest {
        serde_saphyr::from_str(&format!(
            "apiVersion: hosting.imio.be/v1alpha1\nkind: ProvisioningRequest\nmetadata: {{name: web, namespace: tenant-ans, generation: {generation}}}\nspec: {{product: web, hostnames: [www.ans.be]}}\nstatus: {yaml_status}\n"
        ))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn only_an_approved_request_of_the_current_generation_renders() {
        let status = "{decision: Approved, decidedBy: a, decidedGeneration: 1, renderedSite: \"kind: PloneSite\\n\"}";
        let e = rendered(&request(status, 2))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("edited after its decision"), "{e}");
        assert_eq!(
            rendered(&request(status, 1)).ok().as_deref(),
            Some("kind: PloneSite\n")
        );
        let denied = "{decision: Denied, decidedBy: b, decidedGeneration: 1}";
        let e = rendered(&request(denied, 1))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("denied by b"), "{e}");
    }

    #[test]
    fn a_decision_of_an_older_generation_is_pending() {
        let status = "{decision: Approved, decidedBy: a, decidedGeneration: 1}";
        assert_eq!(current_decision(&request(status, 1)), Decision::Approved);
        assert_eq!(current_decision(&request(status, 2)), Decision::Pending);
    }
}
