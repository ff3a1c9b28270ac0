//! The plain values the pages show: a member, its sites and its requests, as
//! read from Kubernetes and already interpreted, so that rendering them needs
//! neither a client nor mutu's condition names.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use mutu_api::provisioning::{Language, RequestReason};
use serde::Serialize;

/// Product names as the catalog shows them, by product.
pub type ProductNames = BTreeMap<String, String>;

/// A member the caller administers, as the home page links to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemberLink {
    /// The MemberTenant's name, in the pages' paths.
    pub name: String,
    pub display_name: String,
}

/// A member's tenant, as its pages need it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Member {
    /// The MemberTenant's name, in the pages' paths.
    pub name: String,
    pub display_name: String,
    /// Where its sites and requests are.
    pub namespace: String,
    /// The domains its sites' addresses must be under.
    pub domains: Vec<String>,
    /// Sites the member may have, by product.
    pub entitlements: BTreeMap<String, i32>,
    /// Sites the member has, by product.
    pub used: BTreeMap<String, i32>,
}

/// Where a site is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SiteState {
    /// Ready: it serves its pages.
    Online,
    /// Being deleted.
    Deleting,
    /// Neither: being created or updated.
    Preparing,
}

/// One of the member's sites.
#[derive(Clone, Debug, PartialEq)]
pub struct Site {
    /// Its first hostname (empty if it has none).
    pub host: String,
    /// Its product's name in the catalog.
    pub product: String,
    /// The release it runs, once known.
    pub release: Option<String>,
    pub state: SiteState,
    /// When its TLS certificate expires, once issued.
    pub certificate_expiry: Option<Time>,
    /// When it was last backed up.
    pub last_backup: Option<Time>,
}

/// What mutu's checks say of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checks {
    /// Not checked yet.
    Running,
    /// It passes them.
    Passed,
    /// It does not pass them (its reasons say why).
    Failed,
}

/// The decision on a request's current spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pending,
    /// Approved by mutu itself, without an approver.
    ApprovedAutomatically,
    Approved {
        by: String,
    },
    Denied {
        by: String,
    },
}

/// How far an approved request's site is, before it is online.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fulfilment {
    /// The cooperative adds the site to its GitOps repository.
    AwaitingGitOps,
    /// The site is being created.
    Creating,
    /// The site was created, then deleted.
    SiteDeleted,
    /// None of those, or not known yet.
    Unknown,
}

/// A ProvisioningRequest.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub namespace: String,
    pub name: String,
    /// The product asked for (its name in the catalog).
    pub product: String,
    pub hostnames: Vec<String>,
    /// Why the member needs the site.
    pub comment: Option<String>,
    pub checks: Checks,
    pub verdict: Verdict,
    pub fulfilment: Fulfilment,
    /// Whether its site is online.
    pub ready: bool,
    /// Why it cannot go through, if it cannot.
    pub reasons: Vec<RequestReason>,
}

impl Request {
    /// Its first hostname (empty if it has none).
    pub fn host(&self) -> &str {
        self.hostnames
            .first()
            .map(String::as_str)
            .unwrap_or_default()
    }

    pub fn denied(&self) -> bool {
        matches!(self.verdict, Verdict::Denied { .. })
    }

    pub fn pending(&self) -> bool {
        self.verdict == Verdict::Pending
    }
}

/// A new request, as an agent fills it in (checked by the portal already).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRequest {
    pub product: String,
    /// Lower-case DNS names, without duplicates, at least one.
    pub hostnames: Vec<String>,
    pub language: Language,
    /// Why the member needs the site; never empty.
    pub comment: Option<String>,
}
