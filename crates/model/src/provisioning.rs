//! A member's request for a new site: the names of its states, the site it
//! asks for, and every reason it cannot be fulfilled, decided from its
//! tenant, the catalog and the whole fleet (the site admission and the quota
//! rules, as the site and tenant operators apply them).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};
use mutu_api::common::{CONDITION_READY, REQUEST_LABEL, is_dns_label};
use mutu_api::provisioning::RequestReason;
use mutu_api::{MemberTenant, PloneSite, PloneSiteSpec, ProductSpec, ProvisioningRequest};
use serde_json::json;

use crate::admission;
use crate::quantity;
use crate::quota::{Config as TenantConfig, PerInstance, SITE_COUNT, counted_per_instance};

/// ClusterRole of the people who decide members' requests (and of its ClusterRoleBinding).
pub const APPROVER_ROLE: &str = "mutu:request-approver";

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
    pub fn new(code: &'static str, subject: Option<String>, message: String) -> Self {
        Self {
            code,
            subject,
            message,
        }
    }

    pub fn reason(&self) -> RequestReason {
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
    } else if let Some(problem) = crate::names::site_name_problem(&name) {
        out.push(Problem::new(
            "InvalidSiteName",
            Some(name.clone()),
            problem.replacen("metadata.name", "spec.siteName", 1),
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
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == CONDITION_READY));
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
            let refusals = admission::refusals(&candidate, view.tenant, view.catalog, view.sites);
            // The site's name is the request's `spec.siteName`, said above as InvalidSiteName.
            for refusal in refusals.into_iter().filter(|r| r.reason != "InvalidName") {
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
    let (hard, _) = crate::quota::hard(tenant, view.catalog, view.tenant_config);
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
            let counted = counted_per_instance(&with_replicas(spec, site.spec.replicas));
            used.cpu += counted.cpu;
            used.memory += counted.memory;
            used.storage += counted.storage;
        }
    }
    let new = counted_per_instance(&with_replicas(product, replicas));
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
