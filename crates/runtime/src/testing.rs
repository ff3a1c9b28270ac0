//! Support for end-to-end tests against the local control plane that
//! `make test` starts: a client from `KUBECONFIG`, a namespace of its own for
//! each test, and waits with a timeout that say what they were waiting for.

use std::fmt::Debug;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::wait::{Condition, await_condition};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

/// Label put on every namespace a test creates, so a person can find them.
pub const TEST_LABEL: &str = "hosting.imio.be/e2e-test";

/// Errors of the test support; each says what the test was waiting for.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    #[error(
        "no Kubernetes API to test against: {0}. Run the tests through `make test`, which starts the local control plane and sets KUBECONFIG"
    )]
    NoCluster(String),
    #[error("timed out after {timeout:?} waiting for {what}")]
    Timeout { what: String, timeout: Duration },
    #[error("the watch broke while waiting for {what}: {message}")]
    Watch { what: String, message: String },
    #[error("Kubernetes API error while {what}: {source}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
}

/// A client for the cluster named by `KUBECONFIG` (the local control plane).
pub async fn client() -> Result<Client, TestError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::try_default()
        .await
        .map_err(|e| TestError::NoCluster(e.to_string()))
}

/// A name no other test of this run uses: `prefix` plus a short suffix.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let suffix =
        (nanos ^ std::process::id().rotate_left(16) ^ n.wrapping_mul(2_654_435_761)) % 0x10_0000;
    format!("{prefix}-{suffix:05x}")
}

/// Creates a namespace of the test's own, labelled as a test namespace.
pub async fn namespace(client: &Client, prefix: &str) -> Result<String, TestError> {
    let name = unique_name(&format!("e2e-{prefix}"));
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some([(TEST_LABEL.to_string(), prefix.to_string())].into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .map_err(|source| TestError::Api {
            what: format!("creating namespace {name}"),
            source,
        })?;
    Ok(name)
}

/// Waits until `condition` holds for the object `name`, or fails after `timeout`.
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    timeout: Duration,
    what: &str,
    condition: impl Condition<K>,
) -> Result<K, TestError>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let waited = tokio::time::timeout(timeout, await_condition(api.clone(), name, condition)).await;
    match waited {
        Ok(Ok(Some(obj))) => Ok(obj),
        Ok(Ok(None)) => Err(TestError::Timeout {
            what: format!("{what} ({name} was deleted)"),
            timeout,
        }),
        Ok(Err(e)) => Err(TestError::Watch {
            what: what.to_string(),
            message: e.to_string(),
        }),
        Err(_) => Err(TestError::Timeout {
            what: format!("{what} ({name})"),
            timeout,
        }),
    }
}

/// Polls `check` every half second until it returns `Some`, or fails after `timeout`.
pub async fn eventually<T, F, Fut>(
    timeout: Duration,
    what: &str,
    mut check: F,
) -> Result<T, TestError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(TestError::Timeout {
                what: what.to_string(),
                timeout,
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
