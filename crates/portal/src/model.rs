//! The plain values the pages show and take: a member, its sites and its
//! requests, as read from Kubernetes and already interpreted, so that
//! rendering them needs neither a client nor mutu's condition names.

use mutu_api::provisioning::Language;

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
