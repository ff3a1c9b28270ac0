//! Server-side applies of the benchmark's objects, typed or of any kind the
//! API server serves.

use std::time::Duration;

use anyhow::Context;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub(super) const FIELD_MANAGER: &str = "mutu-bench";

pub(super) async fn apply_json<K>(
    api: &Api<K>,
    name: &str,
    body: &serde_json::Value,
) -> anyhow::Result<()>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(body),
    )
    .await
    .with_context(|| format!("cannot apply {name}"))?;
    Ok(())
}

/// Server-side applies one object of any kind the API server serves.
pub(super) async fn apply_dynamic(
    client: &Client,
    discovery: &kube::Discovery,
    obj: &serde_json::Value,
) -> anyhow::Result<()> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
    let (ar, caps) = discovery
        .resolve_gvk(&gvk)
        .with_context(|| format!("the API server does not serve {api_version} {kind}"))?;
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let api: Api<kube::api::DynamicObject> =
        match (caps.scope, obj["metadata"]["namespace"].as_str()) {
            (kube::discovery::Scope::Namespaced, Some(ns)) => {
                Api::namespaced_with(client.clone(), ns, &ar)
            }
            _ => Api::all_with(client.clone(), &ar),
        };
    // A claim's creation can meet a conflict on the namespace's quota, which
    // the API server's quota admission updates for every concurrent claim:
    // the client retries, as the operators do.
    let mut attempt = 0;
    loop {
        match api
            .patch(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(obj),
            )
            .await
        {
            Err(kube::Error::Api(e)) if e.code == 409 && attempt < 10 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            done => {
                done.with_context(|| format!("cannot apply {kind} {name}"))?;
                return Ok(());
            }
        }
    }
}
