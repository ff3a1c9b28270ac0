//! What a request's status says, decided from its tenant, the catalog and the
//! whole fleet: the checks themselves are the model's
//! ([`mutu_model::provisioning`]); this module turns them into the status, the
//! conditions, the site to create and the Event. Pure functions, unit-tested
//! without a cluster.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};
use mutu_api::provisioning::{
    self, Approval, Decision, Fulfilment, ProvisioningRequestStatus, RequestReason,
};
use mutu_api::{CONDITION_READY, PloneSite, ProvisioningRequest, REQUEST_LABEL};
pub use mutu_model::provisioning::*;
use mutu_runtime::conditions::{self, Desired as Cond};

/// Something worth an Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

/// What one reconcile decides: the status to write, with its conditions, the
/// site to create, if any, and an Event.
pub struct Outcome {
    pub status: ProvisioningRequestStatus,
    pub conditions: Vec<Cond<'static>>,
    pub create: Option<PloneSite>,
    pub note: Option<Note>,
}

fn both(ok: bool, reason: &'static str, message: String) -> [Cond<'static>; 2] {
    [
        Cond::new(FULFILLED, ok, reason, message.clone()),
        Cond::new(CONDITION_READY, ok, reason, message),
    ]
}

/// Decides the status of `request` from `view`, at `now`.
pub fn evaluate(request: &ProvisioningRequest, view: &View<'_>, now: Timestamp) -> Outcome {
    let generation = request.meta().generation;
    let ns = request.namespace().unwrap_or_default();
    let request_name = request.name_any();
    let name = site_name(request);
    let current = request.status.clone().unwrap_or_default();
    let mut status = ProvisioningRequestStatus {
        observed_generation: generation,
        ..current.clone()
    };
    let decided_now =
        current.decided_generation.is_some() && current.decided_generation == generation;
    let tenant_policy = view.tenant.and_then(|t| t.spec.provisioning.as_ref());
    let product_policy = view
        .catalog
        .get(&request.spec.product)
        .and_then(|p| p.provisioning.as_ref());
    let fulfilment = tenant_policy.map(|t| t.fulfilment).unwrap_or_default();

    let existing = view
        .sites
        .iter()
        .copied()
        .find(|s| s.namespace().as_deref() == Some(ns.as_str()) && s.name_any() == name);
    let labelled = existing.is_some_and(|s| s.labels().get(REQUEST_LABEL) == Some(&request_name));
    // In GitOps mode the site may come back from the repository without the
    // label: the approved request's site is the one of its name and product.
    let gitops_site = fulfilment == Fulfilment::GitOps
        && decided_now
        && current.decision == Some(Decision::Approved)
        && existing.is_some_and(|s| s.spec.product == request.spec.product);
    let was_fulfilled = current.site.is_some();

    // The site exists: follow it to Ready. The request is done with checks.
    if let Some(site) = existing.filter(|_| labelled || gitops_site || was_fulfilled) {
        status.site = Some(name.clone());
        status.reasons.clear();
        let ready = site
            .status
            .as_ref()
            .and_then(|s| conditions::find(&s.conditions, CONDITION_READY));
        let is_ready = ready.is_some_and(|c| c.status == "True");
        let was_ready = conditions::is_true(&current.conditions, FULFILLED);
        let conds = if is_ready {
            let url = site
                .status
                .as_ref()
                .and_then(|s| s.url.clone())
                .unwrap_or_else(|| {
                    format!(
                        "https://{}/",
                        site.spec
                            .hostnames
                            .first()
                            .map(String::as_str)
                            .unwrap_or_default()
                    )
                });
            both(
                true,
                "SiteReady",
                format!("site {ns}/{name} is Ready at {url}"),
            )
        } else {
            both(
                false,
                "SiteNotReady",
                format!(
                    "site {ns}/{name} is being set up{}",
                    ready
                        .map(|c| format!(": {}", c.message))
                        .unwrap_or_default()
                ),
            )
        };
        return Outcome {
            status,
            conditions: conds.to_vec(),
            create: None,
            note: (is_ready && !was_ready).then(|| Note {
                warning: false,
                reason: "Fulfilled",
                message: format!("site {ns}/{name} is Ready"),
            }),
        };
    }
    if was_fulfilled {
        return Outcome {
            status,
            conditions: both(
                false,
                "SiteDeleted",
                format!(
                    "site {ns}/{name} was deleted; the request does not create it again: make a new request for a new site"
                ),
            )
            .to_vec(),
            create: None,
            note: None,
        };
    }

    let problems = problems(request, view, existing);
    let valid = problems.is_empty();
    let mut conds = Vec::new();
    conds.push(match problems.first() {
        None => Cond::new(
            VALIDATED,
            true,
            "Valid",
            format!(
                "{} for {}: entitled, under the member's domains, names free, within quota",
                request.spec.product,
                request.spec.hostnames.join(", ")
            ),
        ),
        Some(first) => Cond::new(
            VALIDATED,
            false,
            first.code,
            problems
                .iter()
                .map(|p| p.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
    });
    status.reasons = problems.iter().map(Problem::reason).collect();
    status.rendered_site = if valid { render_yaml(request) } else { None };

    // A decision covers the generation it was taken on only.
    let mut decision = if decided_now {
        current.decision.unwrap_or_default()
    } else {
        status.decided_by = None;
        status.decision_time = None;
        status.decided_generation = None;
        status.decision_message = None;
        Decision::Pending
    };
    let mut note = None;
    if decision == Decision::Pending
        && valid
        && provisioning::approval(tenant_policy, product_policy) == Approval::Auto
    {
        let by = if tenant_policy.and_then(|t| t.approval).is_some() {
            format!(
                "MemberTenant {}",
                view.tenant.map(|t| t.name_any()).unwrap_or_default()
            )
        } else {
            format!("Product {}", request.spec.product)
        };
        decision = Decision::Approved;
        status.decided_by = Some(AUTO_APPROVER.to_string());
        status.decision_time = Some(Time(now));
        status.decided_generation = generation;
        status.decision_message = Some(format!(
            "approved automatically: the policy of {by} approves valid requests"
        ));
        note = Some(Note {
            warning: false,
            reason: "AutoApproved",
            message: format!("approved automatically by the policy of {by}"),
        });
    }
    status.decision = Some(decision);
    let by = status.decided_by.clone().unwrap_or_default();
    let invalid_message = || {
        format!(
            "the request cannot be fulfilled as it is: {}; edit the request",
            problems
                .iter()
                .map(|p| p.message.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        )
    };
    let mut create = None;
    match decision {
        Decision::Denied => {
            let why = status.decision_message.clone().unwrap_or_default();
            status.reasons.push(RequestReason {
                code: "Denied".to_string(),
                subject: Some(by.clone()),
                message: if why.is_empty() {
                    format!("denied by {by}")
                } else {
                    format!("denied by {by}: {why}")
                },
            });
            let message = format!(
                "denied by {by}{}",
                if why.is_empty() {
                    String::new()
                } else {
                    format!(": {why}")
                }
            );
            conds.push(Cond::new(APPROVED, false, "Denied", message.clone()));
            conds.extend(both(false, "Denied", message));
        }
        Decision::Approved => {
            conds.push(Cond::new(
                APPROVED,
                true,
                "Approved",
                format!("approved by {by}"),
            ));
            if !valid {
                conds.extend(both(false, "NotValid", invalid_message()));
            } else if fulfilment == Fulfilment::GitOps {
                conds.extend(both(
                    false,
                    "AwaitingGitOps",
                    format!(
                        "add the site to the GitOps repository (mutu request render {ns}/{request_name}); the request completes when site {ns}/{name} appears"
                    ),
                ));
            } else {
                create = render(request).ok();
                conds.extend(both(
                    false,
                    "Creating",
                    format!("creating site {ns}/{name}"),
                ));
            }
        }
        Decision::Pending => {
            if valid {
                conds.push(Cond::new(
                    APPROVED,
                    false,
                    "WaitingForApprover",
                    format!(
                        "waiting for an approver: mutu request approve {ns}/{request_name} (or deny it with a reason)"
                    ),
                ));
                conds.extend(both(
                    false,
                    "NotApproved",
                    "waiting for approval".to_string(),
                ));
            } else {
                conds.push(Cond::new(APPROVED, false, "NotValid", invalid_message()));
                conds.extend(both(false, "NotValid", invalid_message()));
            }
        }
    }
    Outcome {
        status,
        conditions: conds,
        create,
        note,
    }
}

#[cfg(test)]
mod tests;
