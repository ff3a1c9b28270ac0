//! What a request asks for, whether it can be fulfilled, and what its status
//! says, decided from its tenant, the catalog and the whole fleet. Pure
//! functions, unit-tested without a cluster.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};
use mutu_api::common::is_dns_label;
use mutu_api::provisioning::{
    self, Approval, Decision, Fulfilment, ProvisioningRequestStatus, RequestReason,
};
use mutu_api::{
    CONDITION_READY, MemberTenant, PloneSite, PloneSiteSpec, ProductSpec, ProvisioningRequest,
    REQUEST_LABEL,
};
use mutu_runtime::conditions::{self, Desired as Cond};
use mutu_tenant::build::{Config as TenantConfig, PerInstance, SITE_COUNT};
use mutu_tenant::quantity;
use serde_json::json;

/// The request passes every check.
pub const VALIDATED: &str = "Validated";
/// Someone (or the policy) approved the request.
pub const APPROVED: &str = "Approved";
/// The site exists and is Ready.
pub const FULFILLED: &str = "Fulfilled";
/// Who an automatic approval is recorded as.
pub const AUTO_APPROVER: &str = "mutu";
/// Longest site name a request may ask for: mutu derives the names of the
/// site's volume, Jobs and Services from it.
pub const MAX_SITE_NAME: usize = 40;

/// Name of the site a request asks for: `spec.siteName`, else the product's name.
pub fn site_name(request: &ProvisioningRequest) -> String {
    request
        .spec
        .site_name
        .clone()
        .unwrap_or_else(|| request.spec.product.clone())
}

/// The PloneSite a request asks for: what approval creates, or what the
/// GitOps repository should hold. It carries the request's name as a label
/// and no owner: the site outlives the request.
pub fn render(request: &ProvisioningRequest) -> Result<PloneSite, serde_json::Error> {
    let options = &request.spec.options;
    let mut spec = json!({
        "product": request.spec.product,
        "hostnames": request.spec.hostnames,
        "language": options.language,
    });
    if let Some(replicas) = options.replicas {
        spec["replicas"] = json!(replicas);
    }
    let spec: PloneSiteSpec = serde_json::from_value(spec)?;
    let mut site = PloneSite::new(&site_name(request), spec);
    site.metadata.namespace = request.namespace();
    site.metadata.labels = Some(BTreeMap::from([(
        REQUEST_LABEL.to_string(),
        request.name_any(),
    )]));
    Ok(site)
}

/// The rendered site as YAML, as `mutu request render` prints it.
pub fn render_yaml(request: &ProvisioningRequest) -> Option<String> {
    let site = render(request).ok()?;
    serde_saphyr::to_string(&site).ok()
}

/// One reason a request cannot be fulfilled as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub code: &'static str,
    pub subject: Option<String>,
    pub message: String,
}

impl Problem {
    fn new(code: &'static str, subject: Option<String>, message: String) -> Self {
        Self {
            code,
            subject,
            message,
        }
    }

    fn reason(&self) -> RequestReason {
        RequestReason {
            code: self.code.to_string(),
            subject: self.subject.clone(),
            message: self.message.clone(),
        }
    }
}

/// What a request is checked against.
pub struct View<'a> {
    /// The MemberTenant owning the request's namespace, if any.
    pub tenant: Option<&'a MemberTenant>,
    /// Products by name.
    pub catalog: &'a BTreeMap<String, ProductSpec>,
    /// Every site of the cluster.
    pub sites: &'a [&'a PloneSite],
    /// How the tenant operator sizes quotas.
    pub tenant_config: &'a TenantConfig,
}

/// Every reason `request` cannot be fulfilled, given the site of the same
/// name in its namespace (`existing`, not one created for it).
pub fn problems(
    request: &ProvisioningRequest,
    view: &View<'_>,
    existing: Option<&PloneSite>,
) -> Vec<Problem> {
    let mut out = Vec::new();
    let ns = request.namespace().unwrap_or_default();
    let name = site_name(request);
    if !is_dns_label(&name) || name.len() > MAX_SITE_NAME {
        out.push(Problem::new(
            "InvalidSiteName",
            Some(name.clone()),
            format!(
                "spec.siteName: {name:?} cannot name a site; use lower-case letters, digits and '-', at most {MAX_SITE_NAME} characters, e.g. web"
            ),
        ));
    } else if existing.is_some() {
        out.push(Problem::new(
            "SiteNameTaken",
            Some(name.clone()),
            format!(
                "spec.siteName: a PloneSite named {name} already exists in {ns}; choose another name with spec.siteName"
            ),
        ));
    }
    if let Some(tenant) = view.tenant {
        let ready = tenant
            .status
            .as_ref()
            .and_then(|s| conditions::find(&s.conditions, CONDITION_READY));
        if ready.is_none_or(|c| c.status != "True") {
            out.push(Problem::new(
                "TenantNotReady",
                Some(tenant.name_any()),
                format!(
                    "MemberTenant {} is not Ready{}; its sites can be created once it is",
                    tenant.name_any(),
                    ready
                        .map(|c| format!(" ({})", c.message))
                        .unwrap_or_default()
                ),
            ));
        }
    }
    match render(request) {
        Ok(mut candidate) => {
            // The request comes after every site that exists: an existing site
            // keeps its hostnames and its place in the entitlement.
            candidate.metadata.creation_timestamp = Some(Time(Timestamp::MAX));
            for refusal in
                mutu_site::admission::refusals(&candidate, view.tenant, view.catalog, view.sites)
            {
                out.push(Problem::new(
                    refusal.reason,
                    refusal.subject,
                    refusal.message,
                ));
            }
        }
        Err(e) => out.push(Problem::new(
            "InvalidSpec",
            None,
            format!("the request does not describe a site: {e}"),
        )),
    }
    let product = view.catalog.get(&request.spec.product);
    if let (Some(replicas), Some(spec)) = (request.spec.options.replicas, product) {
        let max = max_replicas(spec);
        if !(1..=max).contains(&replicas) {
            out.push(Problem::new(
                "ReplicasOutOfRange",
                Some(replicas.to_string()),
                format!(
                    "spec.options.replicas: {replicas} instances is not allowed for {}; ask for 1 to {max}",
                    request.spec.product
                ),
            ));
        }
    }
    if let (Some(tenant), Some(spec)) = (view.tenant, product) {
        let in_namespace: Vec<&PloneSite> = view
            .sites
            .iter()
            .copied()
            .filter(|s| s.namespace().as_deref() == Some(ns.as_str()))
            .filter(|s| s.meta().deletion_timestamp.is_none())
            .collect();
        out.extend(quota_problems(
            tenant,
            view,
            &in_namespace,
            spec,
            request.spec.options.replicas,
        ));
    }
    out
}

/// Most instances a member may ask for: the product's `provisioning.maxReplicas`,
/// else its default number of instances.
pub fn max_replicas(product: &ProductSpec) -> i32 {
    product
        .provisioning
        .as_ref()
        .and_then(|p| p.max_replicas)
        .unwrap_or(product.replicas)
        .max(1)
}

fn with_replicas(product: &ProductSpec, replicas: Option<i32>) -> ProductSpec {
    let mut product = product.clone();
    if let Some(n) = replicas {
        product.replicas = n;
    }
    product
}

/// One resource of the quota: its key, its name, what the sites count, what
/// the new one needs, and how to print an amount.
type QuotaCheck = (&'static str, &'static str, f64, f64, fn(f64) -> Quantity);

/// Whether one more site of `product` fits in the tenant's quota, beside the
/// sites it already has, each counted as the tenant operator counts it.
fn quota_problems(
    tenant: &MemberTenant,
    view: &View<'_>,
    sites: &[&PloneSite],
    product: &ProductSpec,
    replicas: Option<i32>,
) -> Vec<Problem> {
    let desired = mutu_tenant::build::build(tenant, view.catalog, view.tenant_config);
    let hard = desired.quota.spec.and_then(|s| s.hard).unwrap_or_default();
    let limit = |key: &str| hard.get(key).and_then(quantity::parse);
    let mut out = Vec::new();
    if let Some(max) = limit(SITE_COUNT)
        && sites.len() as f64 + 1.0 > max + 1e-9
    {
        out.push(Problem::new(
            "QuotaExceeded",
            Some("sites".to_string()),
            format!(
                "the member's quota allows {max} site(s) and it has {}; delete a site or ask for a larger quota",
                sites.len()
            ),
        ));
    }
    let mut used = PerInstance {
        cpu: 0.0,
        memory: 0.0,
        storage: 0.0,
    };
    for site in sites {
        if let Some(spec) = view.catalog.get(&site.spec.product) {
            let counted =
                mutu_tenant::build::counted_per_instance(&with_replicas(spec, site.spec.replicas));
            used.cpu += counted.cpu;
            used.memory += counted.memory;
            used.storage += counted.storage;
        }
    }
    let new = mutu_tenant::build::counted_per_instance(&with_replicas(product, replicas));
    if used.storage + new.storage > 0.0 {
        // The member's backup volume, as in the tenant's computed quota.
        used.storage += quantity::parse(&view.tenant_config.backup_volume_size).unwrap_or(0.0);
    }
    let checks: [QuotaCheck; 3] = [
        ("requests.cpu", "CPU", used.cpu, new.cpu, quantity::cpu),
        (
            "requests.memory",
            "memory",
            used.memory,
            new.memory,
            quantity::bytes,
        ),
        (
            "requests.storage",
            "storage",
            used.storage,
            new.storage,
            quantity::bytes,
        ),
    ];
    for (key, what, used, need, fmt) in checks {
        if let Some(max) = limit(key)
            && need > 0.0
            && used + need > max * (1.0 + 1e-9)
        {
            out.push(Problem::new(
                "QuotaExceeded",
                Some(what.to_string()),
                format!(
                    "the member's {what} quota is {}: its sites count {} and the new site needs {}; ask for fewer instances or a larger quota",
                    fmt(max).0,
                    fmt(used).0,
                    fmt(need).0
                ),
            ));
        }
    }
    out
}

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
