//! Writing a resource's status only when it differs from what is stored.

use std::fmt::Debug;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::core::object::HasStatus;

use crate::Metrics;
use crate::conditions::{self, Desired};

/// Now, truncated to the second: the precision the API server stores, so a
/// time written and read back compares equal.
pub fn now() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

/// Applies `desired` as the status of `obj` (server-side apply on the status
/// subresource under `manager`) unless `current` already equals it.
/// Returns whether it wrote.
pub async fn apply_status<K, S>(
    api: &Api<K>,
    obj: &K,
    current: Option<&S>,
    desired: &S,
    manager: &str,
    metrics: &Metrics,
    controller: &str,
) -> Result<bool, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Serialize,
{
    apply_status_at(
        api, obj, current, desired, None, manager, metrics, controller,
    )
    .await
    .map(|written| written.is_some())
}

/// [`apply_status`], with the object's `resourceVersion` as a precondition
/// when `version` is given: the API server then refuses (409) if the object
/// changed since it was read.
#[allow(clippy::too_many_arguments)]
async fn apply_status_at<K, S>(
    api: &Api<K>,
    obj: &K,
    current: Option<&S>,
    desired: &S,
    version: Option<&str>,
    manager: &str,
    metrics: &Metrics,
    controller: &str,
) -> Result<Option<K>, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Serialize,
{
    let current = current
        .map(serde_json::to_value)
        .transpose()
        .map_err(kube::Error::SerdeError)?;
    let desired_value = serde_json::to_value(desired).map_err(kube::Error::SerdeError)?;
    if current.as_ref() == Some(&desired_value) {
        return Ok(None);
    }
    let mut body = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": desired_value,
    });
    if let Some(version) = version {
        body["metadata"] = json!({ "resourceVersion": version });
    }
    let written = api
        .patch_status(
            &obj.name_any(),
            &PatchParams::apply(manager).force(),
            &Patch::Apply(&body),
        )
        .await?;
    metrics.write(controller, "status", &K::kind(&()));
    Ok(Some(written))
}

/// A status with standard conditions (every mutu kind's status).
pub trait WithConditions {
    fn conditions(&self) -> &[Condition];
    fn conditions_mut(&mut self) -> &mut Vec<Condition>;
}

macro_rules! with_conditions {
    ($($t:ty),* $(,)?) => {$(
        impl WithConditions for $t {
            fn conditions(&self) -> &[Condition] {
                &self.conditions
            }
            fn conditions_mut(&mut self) -> &mut Vec<Condition> {
                &mut self.conditions
            }
        }
    )*};
}

with_conditions!(
    mutu_api::MemberTenantStatus,
    mutu_api::ProductStatus,
    mutu_api::PloneSiteStatus,
    mutu_api::SolrIndexStatus,
    mutu_api::CertificateStatus,
    mutu_api::CertificateIssuerStatus,
    mutu_api::backup::BackupPolicyStatus,
    mutu_api::RunStatus,
    mutu_api::WaveStatus,
    mutu_api::ProvisioningRequestStatus,
);

/// Writes `desired` as the status of `obj`, with its conditions merged from
/// `conds` (transition times kept where the status did not flip), unless the
/// result equals the stored status. Returns whether it wrote.
pub async fn write<K, S>(
    api: &Api<K>,
    obj: &K,
    desired: S,
    conds: &[Desired<'_>],
    manager: &str,
    metrics: &Metrics,
    controller: &str,
) -> Result<bool, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + HasStatus<Status = S>,
    S: Serialize + WithConditions,
{
    write_returning(api, obj, desired, conds, manager, metrics, controller)
        .await
        .map(|written| written.is_some())
}

/// [`write`], returning the object as the API server stored it when it wrote.
pub async fn write_returning<K, S>(
    api: &Api<K>,
    obj: &K,
    mut desired: S,
    conds: &[Desired<'_>],
    manager: &str,
    metrics: &Metrics,
    controller: &str,
) -> Result<Option<K>, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + HasStatus<Status = S>,
    S: Serialize + WithConditions,
{
    let previous = obj.status().map(|s| s.conditions()).unwrap_or(&[]);
    *desired.conditions_mut() = conditions::merge(previous, conds, obj.meta().generation, now());
    apply_status_at(
        api,
        obj,
        obj.status(),
        &desired,
        None,
        manager,
        metrics,
        controller,
    )
    .await
}

/// [`write`], only over the version of `obj` that was read: if the object
/// changed since (e.g. someone else wrote a field of its status), nothing is
/// written and the result is `Ok(false)`; the change's watch event brings the
/// new version to reconcile.
pub async fn write_over_read<K, S>(
    api: &Api<K>,
    obj: &K,
    mut desired: S,
    conds: &[Desired<'_>],
    manager: &str,
    metrics: &Metrics,
    controller: &str,
) -> Result<bool, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + HasStatus<Status = S>,
    S: Serialize + WithConditions,
{
    let previous = obj.status().map(|s| s.conditions()).unwrap_or(&[]);
    *desired.conditions_mut() = conditions::merge(previous, conds, obj.meta().generation, now());
    let version = obj.resource_version();
    match apply_status_at(
        api,
        obj,
        obj.status(),
        &desired,
        Some(version.as_deref().unwrap_or_default()),
        manager,
        metrics,
        controller,
    )
    .await
    {
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        other => other.map(|written| written.is_some()),
    }
}
