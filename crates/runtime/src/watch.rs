//! Watches that feed the controllers. Every watch reports to [`Health`] (a
//! watch broken for too long makes `/readyz` fail) and to the metrics, and
//! keeps its cache small: managed fields are dropped, and children are watched
//! as metadata only, limited to objects mutu manages.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::{WatchStreamExt, reflector::reflector};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::index::LabelIndex;
use crate::labels::managed_selector;
use crate::{Health, Metrics};

/// Page size of the initial lists: bounds the memory of a relist at fleet scale.
const PAGE_SIZE: u32 = 500;

/// The longest wait between two tries of a failing watch (before its ±20 % jitter).
pub const WATCH_BACKOFF_CAP: Duration = Duration::from_secs(15);

/// How long a watch waits before its next try, after `failures` failures in a
/// row: 0.8 s doubling to [`WATCH_BACKOFF_CAP`], ±20 %.
pub fn watch_retry_delay(failures: u32) -> Duration {
    let base = Duration::from_millis(800).saturating_mul(2u32.saturating_pow(failures.min(10)));
    crate::controller::jitter(base.min(WATCH_BACKOFF_CAP), 0.2)
}

/// Whether a watch failed because its resource version is gone (410: the API
/// server restarted, or etcd was compacted): nothing is wrong with the API
/// server, the watcher only has to list again.
fn expired(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::WatchError(status) => status.code == 410,
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => status.code == 410,
        _ => false,
    }
}

/// A watcher's stream, retried with a backoff: after a failure, the next try
/// waits [`watch_retry_delay`]; any event resets it. A watch whose resource
/// version expired lists again at once, as it would after a backoff that
/// follows an outage: with kube-runtime's default backoff (up to 30 s, plus
/// as much jitter) an operator took up to two minutes to see anything again
/// after an API server outage, one backoff to find the API server back and
/// its resource version expired, another before listing.
pub fn backed_off<S, T>(stream: S) -> impl Stream<Item = Result<T, watcher::Error>> + Send
where
    S: Stream<Item = Result<T, watcher::Error>> + Send + 'static,
    T: Send + 'static,
{
    futures::stream::unfold(
        (Box::pin(stream), 0u32, None::<Duration>),
        |(mut stream, failures, wait)| async move {
            if let Some(wait) = wait {
                tokio::time::sleep(wait).await;
            }
            let item = stream.next().await?;
            let (failures, wait) = match &item {
                Ok(_) => (0, None),
                Err(e) if expired(e) => (0, None),
                Err(_) => (
                    failures.saturating_add(1),
                    Some(watch_retry_delay(failures)),
                ),
            };
            Some((item, (stream, failures, wait)))
        },
    )
}

fn track<E, S, K>(
    stream: S,
    name: String,
    health: Health,
    metrics: Metrics,
) -> impl Stream<Item = Result<watcher::Event<K>, E>>
where
    S: Stream<Item = Result<watcher::Event<K>, E>>,
    E: std::fmt::Display,
{
    let label = vec![("watch", name.clone())];
    // Several controllers may watch one kind: each watch has its own health,
    // and the kind's gauge is 1 while any of them is broken.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // Health and the gauge are written when the watch breaks or mends, not on every event:
    // this runs for each event of the fleet's busiest watches.
    let mut broken = true;
    stream.inspect(move |event| match event {
        Ok(event) => {
            if std::mem::replace(&mut broken, false) {
                let others_broken = health.watch_ok(&name, id);
                metrics
                    .watch_broken
                    .get_or_create(&label)
                    .set(i64::from(others_broken));
            }
            if matches!(event, watcher::Event::Init) {
                metrics.watch_relists.get_or_create(&label).inc();
            }
        }
        Err(e) => {
            tracing::warn!(watch = %name, error = %e, "watch failed; retrying with backoff");
            health.watch_failed(&name, id);
            broken = true;
            metrics.watch_broken.get_or_create(&label).set(1);
            metrics.watch_errors.get_or_create(&label).inc();
        }
    })
}

/// A cached, tracked watch of every object of kind `K` (the kind a controller
/// reconciles), for `Controller::for_stream`.
pub fn main_watch<K>(
    api: Api<K>,
    config: watcher::Config,
    health: &Health,
    metrics: &Metrics,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let name = K::plural(&()).into_owned();
    let stream = backed_off(watcher(api, config.page_size(PAGE_SIZE)))
        .modify(|obj| obj.managed_fields_mut().clear());
    let stream = errors_dropped(
        reflector(writer, track(stream, name, health.clone(), metrics.clone())).touched_objects(),
    );
    (reader, stream)
}

/// A cached, tracked, metadata-only watch of the objects of kind `K` that mutu
/// manages (label `app.kubernetes.io/managed-by=mutu`), in every namespace.
pub fn children_watch<K>(
    client: &Client,
    health: &Health,
    metrics: &Metrics,
) -> (
    Store<PartialObjectMeta<K>>,
    impl Stream<Item = Result<PartialObjectMeta<K>, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    children_watch_with(client, health, metrics, None)
}

/// [`children_watch`] that also keeps `index` (see [`LabelIndex`]) up to date
/// with what it caches.
pub fn indexed_children_watch<K>(
    client: &Client,
    health: &Health,
    metrics: &Metrics,
    index: &LabelIndex,
) -> (
    Store<PartialObjectMeta<K>>,
    impl Stream<Item = Result<PartialObjectMeta<K>, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    children_watch_with(client, health, metrics, Some(index.clone()))
}

fn children_watch_with<K>(
    client: &Client,
    health: &Health,
    metrics: &Metrics,
    index: Option<LabelIndex>,
) -> (
    Store<PartialObjectMeta<K>>,
    impl Stream<Item = Result<PartialObjectMeta<K>, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let api: Api<PartialObjectMeta<K>> = Api::all(client.clone());
    let (reader, writer) = reflector::store();
    let config = watcher::Config::default()
        .labels(&managed_selector())
        .page_size(PAGE_SIZE);
    let name = K::plural(&()).into_owned();
    let stream = backed_off(watcher(api, config)).modify(|obj| obj.managed_fields_mut().clear());
    let stream = feed::<K, _, _>(stream, index);
    let stream = errors_dropped(
        reflector(writer, track(stream, name, health.clone(), metrics.clone())).touched_objects(),
    );
    let stream = after_initial_list(stream, reader.clone());
    (reader, stream)
}

/// Drops the errors of a watch's stream once [`track`] has reported them (the
/// watcher retries by itself). A controller's input must carry none: kube-runtime's
/// controller splits its input into items and errors, and an error met by the
/// items' side while the errors' side has already been polled is left without a
/// wake-up, which stalled every watch of the controller (their list answers sat
/// unread) until some unrelated timer woke it, for seconds to minutes after an
/// API server restart.
pub fn errors_dropped<T, E>(
    stream: impl Stream<Item = Result<T, E>> + Send + 'static,
) -> impl Stream<Item = Result<T, E>> + Send + 'static
where
    T: Send + 'static,
    E: Send + 'static,
{
    stream.filter(|event| std::future::ready(event.is_ok()))
}

/// Passes the events of `stream` on, after `index` (if any) has seen them.
fn feed<K, S, E>(
    stream: impl Stream<Item = Result<watcher::Event<S>, E>>,
    index: Option<LabelIndex>,
) -> impl Stream<Item = Result<watcher::Event<S>, E>>
where
    K: 'static,
    S: Resource,
{
    stream.inspect(move |event| {
        if let (Some(index), Ok(event)) = (&index, event) {
            index.observe::<K, S>(event);
        }
    })
}

/// A cached, tracked watch of the full objects of kind `K` that mutu manages,
/// each cut down by `slim` to what the controller reads (e.g. a pod's node and
/// readiness), for children whose status matters. Events of the initial list
/// are dropped as in [`children_watch`].
pub fn slim_children_watch<K>(
    client: &Client,
    health: &Health,
    metrics: &Metrics,
    slim: fn(&mut K),
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    slim_children_watch_of(client, health, metrics, "", slim)
}

/// [`slim_children_watch`] of only the children that also match the label
/// selector `labels` (e.g. `app.kubernetes.io/component=reindex`).
pub fn slim_children_watch_of<K>(
    client: &Client,
    health: &Health,
    metrics: &Metrics,
    labels: &str,
    slim: fn(&mut K),
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    slim_children_watch_with(client, health, metrics, labels, slim, None)
}

/// [`slim_children_watch`] that also keeps `index` (see [`LabelIndex`]) up to
/// date with what it caches.
pub fn indexed_slim_children_watch<K>(
    client: &Client,
    health: &Health,
    metrics: &Metrics,
    slim: fn(&mut K),
    index: &LabelIndex,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    slim_children_watch_with(client, health, metrics, "", slim, Some(index.clone()))
}

fn slim_children_watch_with<K>(
    client: &Client,
    health: &Health,
    metrics: &Metrics,
    labels: &str,
    slim: fn(&mut K),
    index: Option<LabelIndex>,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let api: Api<K> = Api::all(client.clone());
    let (reader, writer) = reflector::store();
    let selector = if labels.is_empty() {
        managed_selector()
    } else {
        format!("{},{labels}", managed_selector())
    };
    let config = watcher::Config::default()
        .labels(&selector)
        .page_size(PAGE_SIZE);
    let name = if labels.is_empty() {
        K::plural(&()).into_owned()
    } else {
        format!("{} ({labels})", K::plural(&()))
    };
    let stream = backed_off(watcher(api, config)).modify(move |obj| {
        obj.managed_fields_mut().clear();
        slim(obj);
    });
    let stream = feed::<K, _, _>(stream, index);
    let stream = errors_dropped(
        reflector(writer, track(stream, name, health.clone(), metrics.clone())).touched_objects(),
    );
    let stream = after_initial_list(stream, reader.clone());
    (reader, stream)
}

/// Drops the events of `stream` until `store` has its first full list. On
/// start-up every owner is reconciled once anyway; letting each child of the
/// initial list trigger its owner again would only repeat that work.
pub fn after_initial_list<K, T, E>(
    stream: impl Stream<Item = Result<T, E>> + Send + 'static,
    store: Store<K>,
) -> impl Stream<Item = Result<T, E>> + Send + 'static
where
    K: Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
    T: Send + 'static,
    E: Send + 'static,
{
    stream.filter(move |event| {
        let listed = store.wait_until_ready().now_or_never().is_some();
        std::future::ready(listed || event.is_err())
    })
}

/// The objects of `store` labelled with `label=value`.
pub fn with_label<K>(store: &Store<K>, label: &str, value: &str) -> Vec<Arc<K>>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store
        .state()
        .into_iter()
        .filter(|o| o.labels().get(label).is_some_and(|v| v == value))
        .collect()
}

/// A predicate on tenants as their sites and certificates read them: a change of the
/// spec (generation) or of the domains the tenant was admitted with (`status.domains`),
/// not of the rest of its status (it counts the sites, and changes with each of them).
pub fn tenant_admission(t: &kube::core::DeserializeGuard<mutu_api::MemberTenant>) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    t.meta().generation.hash(&mut h);
    t.0.as_ref()
        .ok()
        .and_then(|t| t.status.as_ref())
        .and_then(|s| s.domains.as_ref())
        .hash(&mut h);
    Some(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    #[test]
    fn a_failing_watch_waits_longer_each_time_up_to_the_cap() {
        let first = watch_retry_delay(0);
        assert!(
            first >= Duration::from_millis(640) && first <= Duration::from_millis(960),
            "{first:?}"
        );
        for failures in [5, 10, 40, u32::MAX] {
            let d = watch_retry_delay(failures);
            assert!(
                d >= WATCH_BACKOFF_CAP.mul_f64(0.8) && d <= WATCH_BACKOFF_CAP.mul_f64(1.2),
                "{failures}: {d:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_watch_lists_again_at_once_other_failures_wait() {
        let gone = || {
            watcher::Error::WatchError(Box::new(
                kube::core::Status::failure("too old resource version", "Expired").with_code(410),
            ))
        };
        let items: Vec<Result<u32, watcher::Error>> = vec![
            Err(watcher::Error::NoResourceVersion),
            Err(watcher::Error::NoResourceVersion),
            Err(gone()),
            Ok(1),
            Err(watcher::Error::NoResourceVersion),
            Ok(2),
        ];
        let mut stream = std::pin::pin!(backed_off(futures::stream::iter(items)));
        let mut at = Vec::new();
        let start = Instant::now();
        while let Some(item) = stream.next().await {
            at.push((item.is_ok(), start.elapsed()));
        }
        let gaps: Vec<Duration> = at.windows(2).map(|w| w[1].1 - w[0].1).collect();
        // After a failure: 0.8 s, then 1.6 s (±20 %); after the 410, none; after an
        // event, the backoff starts over.
        assert!(gaps[0] >= Duration::from_millis(640) && gaps[0] <= Duration::from_millis(960));
        assert!(gaps[1] >= Duration::from_millis(1280) && gaps[1] <= Duration::from_millis(1920));
        assert_eq!(
            gaps[2],
            Duration::ZERO,
            "an expired watch lists again at once"
        );
        assert_eq!(gaps[3], Duration::ZERO, "an event is passed on at once");
        assert!(gaps[4] >= Duration::from_millis(640) && gaps[4] <= Duration::from_millis(960));
        assert_eq!(at.len(), 6);
    }
}
