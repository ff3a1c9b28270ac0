//! Server-side applies of the benchmark's objects, typed or of any kind the
//! API server serves, and many of them at once.

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::Scope;
use kube::{Client, Discovery, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The field manager of every write of the benchmark.
pub(super) const FIELD_MANAGER: &str = "mutu-bench";

/// Server-side applies `body`, named `name`, through `api`.
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

/// Runs `work`, `concurrency` at a time, until all succeed or one fails.
pub(super) async fn all_of<F>(
    work: impl IntoIterator<Item = F>,
    concurrency: u16,
) -> anyhow::Result<()>
where
    F: Future<Output = anyhow::Result<()>>,
{
    futures::stream::iter(work)
        .buffer_unordered(usize::from(concurrency))
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// Server-side applies one object of any kind the API server serves.
pub(super) async fn apply_dynamic(
    client: &Client,
    discovery: &Discovery,
    obj: &serde_json::Value,
) -> anyhow::Result<()> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    let (group, version) = group_and_version(api_version);
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (ar, caps) = discovery
        .resolve_gvk(&gvk)
        .with_context(|| format!("the API server does not serve {api_version} {kind}"))?;
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let api: Api<DynamicObject> = match (caps.scope, obj["metadata"]["namespace"].as_str()) {
        (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
        _ => Api::all_with(client.clone(), &ar),
    };
    apply_retrying_conflicts(&api, name, obj)
        .await
        .with_context(|| format!("cannot apply {kind} {name}"))
}

/// A claim's creation can meet a conflict on the namespace's quota, which
/// the API server's quota admission updates for every concurrent claim:
/// the client retries, as the operators do.
async fn apply_retrying_conflicts(
    api: &Api<DynamicObject>,
    name: &str,
    obj: &serde_json::Value,
) -> Result<(), kube::Error> {
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
            Err(kube::Error::Api(e)) if e.code == 409 => match conflict_delay(attempt) {
                Some(delay) => {
                    attempt += 1;
                    tokio::time::sleep(delay).await;
                }
                None => return Err(kube::Error::Api(e)),
            },
            done => return done.map(|_| ()),
        }
    }
}

/// The wait before retrying after the conflict of attempt `attempt` (from
/// 0): 100 ms more each time; none after the tenth.
fn conflict_delay(attempt: u64) -> Option<Duration> {
    (attempt < 10).then(|| Duration::from_millis(100 * (attempt + 1)))
}

/// `apps/v1` as `apps` and `v1`; `v1`, of the core group, as `` and `v1`.
fn group_and_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_are_retried_ten_times_ever_later() {
        let delays: Vec<Duration> = (0..).map_while(conflict_delay).collect();
        assert_eq!(delays.len(), 10);
        assert_eq!(delays.first(), Some(&Duration::from_millis(100)));
        assert_eq!(delays.last(), Some(&Duration::from_secs(1)));
    }

    #[test]
    fn an_api_version_splits_into_group_and_version() {
        assert_eq!(group_and_version("apps/v1"), ("apps", "v1"));
        assert_eq!(
            group_and_version("hosting.imio.be/v1alpha1"),
            ("hosting.imio.be", "v1alpha1")
        );
        assert_eq!(group_and_version("v1"), ("", "v1"));
    }

    #[tokio::test]
    async fn all_of_stops_at_the_first_failure() {
        let ok = all_of((0..5).map(|_| async { anyhow::Ok(()) }), 2).await;
        assert!(ok.is_ok());
        let failed = all_of(
            (0..5).map(|i| async move {
                anyhow::ensure!(i != 3, "object {i} refused");
                Ok(())
            }),
            2,
        )
        .await;
        let e = failed.err().unwrap_or_else(|| panic!("no error"));
        assert_eq!(e.to_string(), "object 3 refused");
    }
}
