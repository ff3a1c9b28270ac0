//! Writing a resource's status only when it differs from what is stored.

use std::fmt::Debug;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::Metrics;

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
    let current = current
        .map(serde_json::to_value)
        .transpose()
        .map_err(kube::Error::SerdeError)?;
    let desired_value = serde_json::to_value(desired).map_err(kube::Error::SerdeError)?;
    if current.as_ref() == Some(&desired_value) {
        return Ok(false);
    }
    let body = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": desired_value,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(manager).force(),
        &Patch::Apply(&body),
    )
    .await?;
    metrics.write(controller, "status", &K::kind(&()));
    Ok(true)
}
