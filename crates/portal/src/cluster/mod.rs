//! Kubernetes, read and written as the caller (an impersonating client), so
//! that RBAC alone decides what an agent sees and does: their member, its
//! sites, the catalog, requests, new requests and decisions, and whether they
//! may decide. Answers are the plain values of [`crate::model`]; failures are
//! typed ([`Failure`], [`CreateError`], [`DecideError`]).

mod provisioning;

use std::collections::{BTreeSet, HashMap};

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use mutu_api::provisioning::SiteOptions;
use mutu_api::tenant::Admins;
use mutu_api::{
    Certificate, MemberTenant, PloneSite, Product, ProvisioningRequest, ProvisioningRequestSpec,
    tenant_namespace,
};
use mutu_runtime::conditions;

use crate::Identity;
use crate::model::{Member, MemberLink, NewRequest, ProductNames, Request, Site, SiteState};

pub use provisioning::{DecideError, decide};

/// Why a read or write failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Kubernetes does not let the caller do it (403).
    #[error("forbidden")]
    Forbidden,
    /// What was asked for does not exist (404).
    #[error("not found")]
    NotFound,
    /// Anything else: the API server or the way to it failed.
    #[error(transparent)]
    Unavailable(kube::Error),
}

impl From<kube::Error> for Failure {
    fn from(e: kube::Error) -> Self {
        match e {
            kube::Error::Api(s) if s.code == 403 => Failure::Forbidden,
            kube::Error::Api(s) if s.code == 404 => Failure::NotFound,
            e => Failure::Unavailable(e),
        }
    }
}

/// Why a new request was not created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The API server refused it as it is (422), with its message.
    #[error("rejected: {0}")]
    Rejected(String),
    /// A request of that name exists already (409).
    #[error("a request of that name exists")]
    NameTaken,
    #[error(transparent)]
    Failed(Failure),
}

/// The members naming `who` (or one of their groups) as admins, listed with
/// the portal's own client `own`.
pub async fn members_of(own: &Client, who: &Identity) -> Result<Vec<MemberLink>, Failure> {
    let tenants = Api::<MemberTenant>::all(own.clone())
        .list(&ListParams::default())
        .await?;
    Ok(tenants
        .items
        .iter()
        .filter(|t| administers(&t.spec.admins, who))
        .map(|t| MemberLink {
            name: t.name_any(),
            display_name: t.spec.display_name.clone(),
        })
        .collect())
}

/// Whether these admins include `who`, by name or by one of their groups.
fn administers(admins: &Admins, who: &Identity) -> bool {
    admins.users.contains(&who.user) || admins.groups.iter().any(|g| who.groups.contains(g))
}

/// Whether the caller may decide on requests (patch their status), as
/// Kubernetes answers; no if it cannot answer.
pub async fn may_decide(c: &Client) -> bool {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some(mutu_api::GROUP.to_string()),
                resource: Some("provisioningrequests".to_string()),
                subresource: Some("status".to_string()),
                verb: Some("patch".to_string()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<SelfSubjectAccessReview>::all(c.clone())
        .create(&PostParams::default(), &review)
        .await
        .ok()
        .and_then(|r| r.status)
        .is_some_and(|s| s.allowed)
}

/// The member `tenant` (RBAC refuses another member's).
pub async fn member(c: &Client, tenant: &str) -> Result<Member, Failure> {
    let t = Api::<MemberTenant>::all(c.clone()).get(tenant).await?;
    Ok(member_from(tenant, &t))
}

/// The member named `tenant` as its MemberTenant `t` describes it.
fn member_from(tenant: &str, t: &MemberTenant) -> Member {
    let status = t.status.as_ref();
    Member {
        name: tenant.to_string(),
        display_name: t.spec.display_name.clone(),
        namespace: status
            .and_then(|s| s.namespace.clone())
            .unwrap_or_else(|| tenant_namespace(tenant)),
        domains: t.spec.domains.clone(),
        entitlements: t.spec.entitlements.clone(),
        used: status.map(|s| s.sites.clone()).unwrap_or_default(),
    }
}

/// The sites of namespace `ns` by name, with their certificates' expiry
/// (none if certificates cannot be read).
pub async fn sites(c: &Client, ns: &str) -> Result<Vec<Site>, Failure> {
    let mut sites = Api::<PloneSite>::namespaced(c.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items;
    sites.sort_by_key(|s| s.name_any());
    let expiry = certificate_expiry(c, ns).await;
    Ok(sites.iter().map(|s| site_from(s, &expiry)).collect())
}

/// When each certificate of namespace `ns` expires, by certificate name.
async fn certificate_expiry(c: &Client, ns: &str) -> HashMap<String, Time> {
    Api::<Certificate>::namespaced(c.clone(), ns)
        .list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .into_iter()
                .filter_map(|cert| {
                    let after = cert.status.as_ref()?.not_after.clone()?;
                    Some((cert.name_any(), after))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The site `s`, its certificate being `<name>-tls` in `expiry`.
fn site_from(s: &PloneSite, expiry: &HashMap<String, Time>) -> Site {
    let status = s.status.clone().unwrap_or_default();
    let state = if conditions::is_true(&status.conditions, mutu_api::CONDITION_READY) {
        SiteState::Online
    } else if s.metadata.deletion_timestamp.is_some() {
        SiteState::Deleting
    } else {
        SiteState::Preparing
    };
    Site {
        host: s.spec.hostnames.first().cloned().unwrap_or_default(),
        product: s.spec.product.clone(),
        release: status.release,
        state,
        certificate_expiry: expiry.get(&format!("{}-tls", s.name_any())).cloned(),
        last_backup: status.last_backup,
    }
}

/// The catalog's names of its products (none if it cannot be read).
pub async fn product_names(c: &Client) -> ProductNames {
    Api::<Product>::all(c.clone())
        .list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .into_iter()
                .map(|p| (p.name_any(), p.spec.display_name.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The requests of namespace `ns` (none if they cannot be read).
pub async fn requests(c: &Client, ns: &str) -> Vec<Request> {
    Api::<ProvisioningRequest>::namespaced(c.clone(), ns)
        .list(&ListParams::default())
        .await
        .map(|l| l.items.iter().map(provisioning::request).collect())
        .unwrap_or_default()
}

/// Every member's requests (for approvers).
pub async fn all_requests(c: &Client) -> Result<Vec<Request>, Failure> {
    let list = Api::<ProvisioningRequest>::all(c.clone())
        .list(&ListParams::default())
        .await?;
    Ok(list.items.iter().map(provisioning::request).collect())
}

/// The request `ns`/`name`.
pub async fn request(c: &Client, ns: &str, name: &str) -> Result<Request, Failure> {
    let r = Api::<ProvisioningRequest>::namespaced(c.clone(), ns)
        .get(name)
        .await?;
    Ok(provisioning::request(&r))
}

/// The names the sites and requests of namespace `ns` use (those that can
/// be read).
pub async fn taken_names(c: &Client, ns: &str) -> BTreeSet<String> {
    let mut taken = BTreeSet::new();
    if let Ok(l) = Api::<PloneSite>::namespaced(c.clone(), ns)
        .list(&ListParams::default())
        .await
    {
        taken.extend(l.items.iter().map(|s| s.name_any()));
    }
    if let Ok(l) = Api::<ProvisioningRequest>::namespaced(c.clone(), ns)
        .list(&ListParams::default())
        .await
    {
        taken.extend(l.items.iter().map(|r| r.name_any()));
    }
    taken
}

/// Creates the request `ns`/`name` for a site of the same name.
pub async fn create_request(
    c: &Client,
    ns: &str,
    name: &str,
    new: &NewRequest,
) -> Result<(), CreateError> {
    Api::<ProvisioningRequest>::namespaced(c.clone(), ns)
        .create(&PostParams::default(), &request_object(ns, name, new))
        .await
        .map(|_| ())
        .map_err(|e| match e {
            kube::Error::Api(s) if s.code == 422 => CreateError::Rejected(s.message),
            kube::Error::Api(s) if s.code == 409 => CreateError::NameTaken,
            e => CreateError::Failed(e.into()),
        })
}

/// The ProvisioningRequest `ns`/`name` asking for `new`, its site named `name`.
fn request_object(ns: &str, name: &str, new: &NewRequest) -> ProvisioningRequest {
    let mut request = ProvisioningRequest::new(
        name,
        ProvisioningRequestSpec {
            product: new.product.clone(),
            hostnames: new.hostnames.clone(),
            site_name: Some(name.to_string()),
            options: SiteOptions {
                replicas: None,
                language: new.language,
            },
            comment: new.comment.clone(),
        },
    );
    request.metadata.namespace = Some(ns.to_string());
    request
}

#[cfg(test)]
mod tests {
    use super::*;
    use mutu_api::provisioning::Language;
    use serde_json::json;

    fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
        serde_json::from_value(value).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn admins_are_named_or_in_a_group() {
        let admins = Admins {
            groups: vec!["ans-admins".into()],
            users: vec!["agent@ans.be".into()],
        };
        let who = |user: &str, groups: &[&str]| Identity {
            user: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        };
        assert!(administers(&admins, &who("agent@ans.be", &[])));
        assert!(administers(&admins, &who("paul", &["staff", "ans-admins"])));
        assert!(!administers(&admins, &who("paul", &["mons-admins"])));
    }

    #[test]
    fn a_member_without_a_namespace_yet_has_the_usual_one() {
        let t: MemberTenant = from_json(json!({
            "apiVersion": mutu_api::API_VERSION, "kind": "MemberTenant",
            "metadata": {"name": "ans"},
            "spec": {"displayName": "Ans", "category": "commune", "domains": ["ans.be"],
                     "admins": {}, "entitlements": {"web": 2}},
        }));
        let m = member_from("ans", &t);
        assert_eq!(m.namespace, tenant_namespace("ans"));
        assert_eq!(m.domains, vec!["ans.be".to_string()]);
        assert_eq!(m.entitlements.get("web"), Some(&2));
        assert!(m.used.is_empty());
    }

    #[test]
    fn a_site_is_online_deleting_or_in_preparation() {
        let site = |extra: serde_json::Value, status: serde_json::Value| -> PloneSite {
            let mut metadata = json!({"name": "web", "namespace": "tenant-ans"});
            if let (Some(m), Some(e)) = (metadata.as_object_mut(), extra.as_object()) {
                m.extend(e.clone());
            }
            from_json(json!({
                "apiVersion": mutu_api::API_VERSION, "kind": "PloneSite",
                "metadata": metadata,
                "spec": {"product": "web", "hostnames": ["www.ans.be", "ans.be"]},
                "status": status,
            }))
        };
        let ready = json!({"conditions": [{"type": "Ready", "status": "True", "reason": "R",
            "message": "", "lastTransitionTime": "2025-01-01T00:00:00Z"}], "release": "6.1"});
        let expiry = HashMap::from([(
            "web-tls".to_string(),
            from_json::<Time>(json!("2025-06-07T08:00:00Z")),
        )]);
        let s = site_from(&site(json!({}), ready), &expiry);
        assert_eq!(s.state, SiteState::Online);
        assert_eq!(s.host, "www.ans.be");
        assert_eq!(s.release.as_deref(), Some("6.1"));
        assert!(s.certificate_expiry.is_some());
        let deleting = json!({"deletionTimestamp": "2025-03-01T00:00:00Z", "finalizers": ["x"]});
        let s = site_from(&site(deleting, json!(null)), &HashMap::new());
        assert_eq!(s.state, SiteState::Deleting);
        assert!(s.certificate_expiry.is_none());
        let s = site_from(&site(json!({}), json!({})), &HashMap::new());
        assert_eq!(s.state, SiteState::Preparing);
    }

    #[test]
    fn a_new_request_names_its_site_and_namespace() {
        let new = NewRequest {
            product: "web".into(),
            hostnames: vec!["www.ans.be".into()],
            language: Language::Nl,
            comment: None,
        };
        let value = serde_json::to_value(request_object("tenant-ans", "web-2", &new))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            value,
            json!({
                "apiVersion": mutu_api::API_VERSION, "kind": "ProvisioningRequest",
                "metadata": {"name": "web-2", "namespace": "tenant-ans"},
                "spec": {"product": "web", "hostnames": ["www.ans.be"], "siteName": "web-2",
                         "options": {"language": "nl"}},
            })
        );
    }
}
