//! Running a controller the same way everywhere: one malformed object is
//! reported and skipped (never fatal), concurrency is bounded, triggers are
//! debounced, failures back off per object (exponentially, reset on success),
//! periodic requeues are jittered, and every reconcile is measured.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::core::DeserializeGuard;
use kube::runtime::controller::{Action, Config, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::queue::Queue;
use crate::{Applier, Health, Metrics};

/// An error a controller can report: its reason is used as the Event reason
/// and as the `reason` label of `mutu_reconcile_errors_total`.
pub trait Reason: std::error::Error + Send + Sync + 'static {
    /// A short PascalCase reason, e.g. `DomainConflict`.
    fn reason(&self) -> &'static str;
}

/// Tuning of one controller.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Reconciles running at once.
    pub concurrency: u16,
    /// Triggers of one object closer together than this are merged.
    pub debounce: Duration,
    /// Periodic re-check of an object that is fine (jittered by ±20 %).
    pub requeue: Duration,
    /// First retry after a failure; doubles with each further failure.
    pub backoff_base: Duration,
    /// Longest wait between retries.
    pub backoff_cap: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            concurrency: 8,
            debounce: Duration::from_millis(500),
            requeue: Duration::from_secs(600),
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(300),
        }
    }
}

/// Everything a reconcile gets besides its object: the shared plumbing and the
/// operator's own `data`.
pub struct Context<T> {
    pub name: &'static str,
    pub applier: Applier,
    pub metrics: Metrics,
    pub health: Health,
    pub settings: Settings,
    pub data: T,
    recorder: Recorder,
    backoff: Backoff,
    /// Objects waiting for a reconcile (`mutu_queue_depth`).
    pub queue: Arc<Queue>,
    reported_invalid: Mutex<HashSet<String>>,
    written: Written,
}

impl<T> Context<T> {
    pub fn new(
        name: &'static str,
        client: Client,
        metrics: Metrics,
        health: Health,
        settings: Settings,
        data: T,
    ) -> Self {
        let reporter = Reporter {
            controller: format!("mutu-{name}"),
            instance: std::env::var("POD_NAME").ok(),
        };
        let depth = metrics
            .queue_depth
            .get_or_create(&vec![("controller", name.to_string())])
            .clone();
        Self {
            name,
            applier: Applier::new(client.clone(), name, metrics.clone()),
            recorder: Recorder::new(client, reporter),
            metrics,
            health,
            backoff: Backoff::new(settings.backoff_base, settings.backoff_cap),
            queue: Arc::new(Queue::new(depth)),
            settings,
            data,
            reported_invalid: Mutex::new(HashSet::new()),
            written: Written::default(),
        }
    }

    pub fn client(&self) -> &Client {
        self.applier.client()
    }

    /// The periodic requeue of an object that is fine, jittered by ±20 % so a
    /// whole fleet does not re-check in the same second.
    pub fn requeue(&self) -> Action {
        Action::requeue(jitter(self.settings.requeue, 0.2))
    }

    /// Publishes a Kubernetes Event about `obj` (best effort: a failure is logged).
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        self.event_ref(&obj.object_ref(&()), warning, reason, note)
            .await;
    }

    async fn event_ref(
        &self,
        reference: &ObjectReference,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_string(),
            note: Some(truncate(&note, 1000)),
            action: "Reconcile".to_string(),
            secondary: None,
        };
        match self.recorder.publish(&event, reference).await {
            Ok(()) => self.metrics.write(self.name, "event", "Event"),
            Err(e) => tracing::warn!(controller = self.name, error = %e, "cannot publish event"),
        }
    }

    /// Runs `apply` (the object lives) or `cleanup` (it is being deleted)
    /// through kube's finalizer helper under the finalizer `name`, counting
    /// the write that adds the finalizer to a new object.
    pub async fn finalized<K, E, A, AF, C, CF>(
        &self,
        api: &kube::Api<K>,
        name: &str,
        obj: Arc<K>,
        apply: A,
        cleanup: C,
    ) -> Result<Action, finalizer::Error<E>>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + serde::Serialize + Debug,
        E: std::error::Error + 'static,
        A: FnOnce(Arc<K>) -> AF,
        AF: Future<Output = Result<Action, E>>,
        C: FnOnce(Arc<K>) -> CF,
        CF: Future<Output = Result<Action, E>>,
    {
        if !obj.finalizers().iter().any(|f| f == name) && obj.meta().deletion_timestamp.is_none() {
            self.metrics.write(self.name, "finalizer", &K::kind(&()));
        }
        finalizer::finalizer(api, name, obj, |event| async move {
            match event {
                finalizer::Event::Apply(obj) => apply(obj).await,
                finalizer::Event::Cleanup(obj) => cleanup(obj).await,
            }
        })
        .await
    }

    /// Failures in a row of the object `key` (`namespace/name`).
    pub fn failures(&self, key: &str) -> u32 {
        self.backoff.failures(key)
    }

    /// Writes the status of `obj` with the conditions `conds` (see
    /// [`crate::status::write`]), under this controller's field manager.
    pub async fn write_status<K, S>(
        &self,
        api: &kube::Api<K>,
        obj: &K,
        desired: S,
        conds: &[crate::conditions::Desired<'_>],
    ) -> Result<bool, kube::Error>
    where
        K: Resource<DynamicType = ()>
            + Clone
            + DeserializeOwned
            + Debug
            + kube::core::object::HasStatus<Status = S>,
        S: serde::Serialize + crate::status::WithConditions,
    {
        let written = crate::status::write_returning(
            api,
            obj,
            desired,
            conds,
            self.applier.field_manager(),
            &self.metrics,
            self.name,
        )
        .await?;
        let Some(written) = written else {
            return Ok(false);
        };
        // The API server stored a new version: until the cache shows it, the
        // version read here is out of date.
        if let Some(read) = obj.resource_version()
            && written.resource_version().as_deref() != Some(read.as_str())
        {
            self.written.record(key_of(obj), read, Instant::now());
        }
        Ok(true)
    }
}

/// How long a cache may lag behind a status write before the object is
/// reconciled from it anyway (a watch that never delivers is relisted long
/// before that).
pub const WRITE_LAG_LIMIT: Duration = Duration::from_secs(30);

/// Read your own writes: the version of each object a controller read just
/// before it wrote that object's status. While the cache still holds that
/// version, a reconcile would see the status as it was before the write (a
/// step it recorded as done looks undone) and act on it again, e.g. make
/// again a Job it has just deleted as finished. Such a reconcile is put off
/// until the cache shows a later version (the write's watch event triggers it
/// at once), at most [`WRITE_LAG_LIMIT`].
#[derive(Default)]
struct Written {
    read: Mutex<HashMap<String, (String, Instant)>>,
    /// When the records past the limit last went.
    pruned: Mutex<Option<Instant>>,
}

impl Written {
    fn record(&self, key: String, version: String, at: Instant) {
        let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        // An object deleted after its write is never reconciled again to
        // forget its record: records past the limit go now and then, so the
        // map holds only the last `WRITE_LAG_LIMIT`'s writes.
        let mut pruned = self.pruned.lock().unwrap_or_else(|e| e.into_inner());
        if pruned.is_none_or(|p| at.saturating_duration_since(p) >= WRITE_LAG_LIMIT) {
            read.retain(|_, (_, written)| at.saturating_duration_since(*written) < WRITE_LAG_LIMIT);
            *pruned = Some(at);
        }
        read.insert(key, (version, at));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.read.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether `version` of the object `key` is one read before a status
    /// write of this controller: the cache has not caught up with the write.
    fn lags(&self, key: &str, version: Option<&str>, now: Instant) -> bool {
        let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        match read.get(key) {
            None => false,
            Some((before, at))
                if Some(before.as_str()) == version
                    && now.saturating_duration_since(*at) < WRITE_LAG_LIMIT =>
            {
                true
            }
            Some(_) => {
                read.remove(key);
                false
            }
        }
    }
}

/// Per-object exponential backoff: `base`, doubling with each failure in a row
/// up to `cap`, ±10 % jitter; a success resets it.
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Records a failure of `key` and returns how long to wait before retrying.
    pub fn fail(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        let factor = 2u32.saturating_pow(n.saturating_sub(1).min(20));
        jitter(self.base.saturating_mul(factor).min(self.cap), 0.1)
    }

    /// Forgets the failures of `key`.
    pub fn reset(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(key);
    }

    /// Failures in a row of `key`.
    pub fn failures(&self, key: &str) -> u32 {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.get(key).copied().unwrap_or(0)
    }
}

/// The reason of a failure through [`Context::finalized`]: the reconcile
/// error's own, or `FinalizerFailed` when adding or removing the finalizer failed.
pub fn finalizer_reason<E: Reason>(error: &finalizer::Error<E>) -> &'static str {
    match error {
        finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e.reason(),
        _ => "FinalizerFailed",
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// `base` moved by a random fraction of up to `spread` either way.
pub fn jitter(base: Duration, spread: f64) -> Duration {
    let factor = 1.0 + spread * (fastrand::f64() * 2.0 - 1.0);
    base.mul_f64(factor.max(0.0))
}

/// A short id for one reconcile, unique in the process and unlikely to repeat
/// across restarts: the process's start (seconds, low 24 bits) and a counter.
fn reconcile_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static START: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let start = *START.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() & 0xff_ffff)
            .unwrap_or_default()
    });
    format!("{start:06x}-{:x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn key_of<K: Resource>(obj: &K) -> String {
    crate::queue::key(obj.meta().namespace.as_deref(), &obj.name_any())
}

fn labels(controller: &str, extra: Option<(&'static str, &str)>) -> Vec<(&'static str, String)> {
    let mut l = vec![("controller", controller.to_string())];
    if let Some((k, v)) = extra {
        l.push((k, v.to_string()));
    }
    l
}

/// Runs `controller` with `reconcile` until the controller's shutdown trigger fires.
pub async fn run<K, T, F, Fut, E>(
    controller: Controller<DeserializeGuard<K>>,
    ctx: Arc<Context<T>>,
    reconcile: F,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    T: Send + Sync + 'static,
    F: Fn(Arc<K>, Arc<Context<T>>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    E: Reason,
{
    let name = ctx.name;
    let config = Config::default()
        .concurrency(ctx.settings.concurrency)
        .debounce(ctx.settings.debounce);
    let reconcile = Arc::new(reconcile);
    let guarded = move |guard: Arc<DeserializeGuard<K>>, ctx: Arc<Context<T>>| {
        let reconcile = reconcile.clone();
        async move {
            let in_flight = ctx
                .metrics
                .in_flight
                .get_or_create(&labels(ctx.name, None))
                .clone();
            match &guard.0 {
                Err(invalid) => {
                    ctx.queue.started(&crate::queue::key(
                        invalid.metadata.namespace.as_deref(),
                        invalid.metadata.name.as_deref().unwrap_or_default(),
                    ));
                    let key = format!(
                        "{}/{}@{}",
                        invalid.metadata.namespace.as_deref().unwrap_or_default(),
                        invalid.metadata.name.as_deref().unwrap_or_default(),
                        invalid
                            .metadata
                            .resource_version
                            .as_deref()
                            .unwrap_or_default()
                    );
                    tracing::warn!(controller = ctx.name, object = %key, error = %invalid.error, "malformed object skipped");
                    ctx.metrics
                        .reconciles
                        .get_or_create(&labels(ctx.name, Some(("result", "invalid"))))
                        .inc();
                    let first = ctx
                        .reported_invalid
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(key);
                    if first {
                        let reference = ObjectReference {
                            api_version: Some(K::api_version(&()).into_owned()),
                            kind: Some(K::kind(&()).into_owned()),
                            name: invalid.metadata.name.clone(),
                            namespace: invalid.metadata.namespace.clone(),
                            uid: invalid.metadata.uid.clone(),
                            ..Default::default()
                        };
                        ctx.event_ref(
                            &reference,
                            true,
                            "InvalidObject",
                            format!("mutu cannot read this object: {}", invalid.error),
                        )
                        .await;
                    }
                    Ok::<Action, ControllerError<E>>(Action::await_change())
                }
                Ok(obj) => {
                    let key = key_of(obj);
                    ctx.queue.started(&key);
                    if ctx.written.lags(
                        &key,
                        obj.meta().resource_version.as_deref(),
                        Instant::now(),
                    ) {
                        // The status write's own watch event reconciles it
                        // again as soon as the cache has it.
                        ctx.metrics
                            .reconciles
                            .get_or_create(&labels(ctx.name, Some(("result", "lagging"))))
                            .inc();
                        return Ok(Action::requeue(Duration::from_secs(2)));
                    }
                    in_flight.inc();
                    let started = Instant::now();
                    let id = reconcile_id();
                    // Every line logged during the reconcile names it.
                    let span = tracing::info_span!(
                        "reconcile",
                        controller = ctx.name,
                        namespace = obj.meta().namespace.as_deref().unwrap_or_default(),
                        object = %obj.name_any(),
                        reconcile_id = %id,
                    );
                    let result = reconcile(Arc::new(obj.clone()), ctx.clone())
                        .instrument(span)
                        .await;
                    in_flight.dec();
                    ctx.metrics
                        .durations
                        .get_or_create(&labels(ctx.name, None))
                        .observe(started.elapsed().as_secs_f64());
                    match result {
                        Ok(action) => {
                            ctx.metrics
                                .reconciles
                                .get_or_create(&labels(ctx.name, Some(("result", "ok"))))
                                .inc();
                            ctx.backoff.reset(&key);
                            Ok(action)
                        }
                        Err(error) => {
                            ctx.metrics
                                .reconciles
                                .get_or_create(&labels(ctx.name, Some(("result", "error"))))
                                .inc();
                            ctx.metrics
                                .errors
                                .get_or_create(&labels(ctx.name, Some(("reason", error.reason()))))
                                .inc();
                            Err(ControllerError { key, id, error })
                        }
                    }
                }
            }
        }
    };
    let error_policy =
        |_obj: Arc<DeserializeGuard<K>>, err: &ControllerError<E>, ctx: Arc<Context<T>>| {
            let delay = ctx.backoff.fail(&err.key);
            tracing::warn!(
                controller = ctx.name,
                object = %err.key,
                reconcile_id = %err.id,
                reason = err.error.reason(),
                error = %err.error,
                retry_in = ?delay,
                "reconcile failed"
            );
            Action::requeue(delay)
        };
    controller
        .with_config(config)
        .run(guarded, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(controller = name, error = %e, "controller event");
            }
        })
        .await;
}

/// A failed reconcile of the object `key`.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {error}")]
pub struct ControllerError<E: std::error::Error + 'static> {
    key: String,
    /// The failed reconcile's id, as its log lines carry it.
    id: String,
    #[source]
    error: E,
}

/// How long a reconcile waits for its caches' first lists before it gives its
/// slot back (see [`caches_listed`]).
pub const CACHE_WAIT: Duration = Duration::from_secs(2);

/// Waits (at most [`CACHE_WAIT`]) for `listed`, the first full lists of a
/// controller's caches. A reconcile must not act on a cache that is not
/// listed yet (it would take a not-yet-listed child for a missing one), but
/// must not hold its concurrency slot waiting either: the caches are fed by
/// the streams the controller itself polls, and a controller whose every slot
/// waits stops polling them. So a reconcile that gets `false` requeues itself
/// ([`Action::requeue`] of a second) and returns.
pub async fn caches_listed(listed: impl Future<Output = ()>) -> bool {
    tokio::time::timeout(CACHE_WAIT, listed).await.is_ok()
}

/// The requeue of a reconcile whose caches are not listed yet.
pub fn not_listed_yet() -> Action {
    Action::requeue(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_reconcile_waits_for_the_cache_to_show_its_own_status_write() {
        let written = Written::default();
        let t0 = Instant::now();
        assert!(!written.lags("ns/a", Some("10"), t0), "nothing written yet");
        written.record("ns/a".into(), "10".into(), t0);
        // The cache still holds the version the write was made over.
        assert!(written.lags("ns/a", Some("10"), t0 + Duration::from_secs(1)));
        assert!(!written.lags("ns/b", Some("10"), t0), "another object");
        // Once the cache shows any other version, the object is reconciled,
        // and the record is forgotten.
        assert!(!written.lags("ns/a", Some("11"), t0 + Duration::from_secs(1)));
        assert!(!written.lags("ns/a", Some("10"), t0 + Duration::from_secs(1)));
        // A cache that never catches up holds nothing up past the limit.
        written.record("ns/c".into(), "7".into(), t0);
        assert!(written.lags("ns/c", Some("7"), t0 + WRITE_LAG_LIMIT / 2));
        assert!(!written.lags("ns/c", Some("7"), t0 + WRITE_LAG_LIMIT));
    }

    #[test]
    fn records_of_objects_never_reconciled_again_do_not_pile_up() {
        let written = Written::default();
        let t0 = Instant::now();
        for i in 0..100 {
            written.record(format!("ns/gone-{i}"), "1".into(), t0);
        }
        assert_eq!(written.len(), 100);
        // A write a limit later forgets the old records (their objects were
        // deleted: nothing looks them up again).
        written.record("ns/new".into(), "5".into(), t0 + WRITE_LAG_LIMIT);
        assert_eq!(written.len(), 1);
        assert!(written.lags("ns/new", Some("5"), t0 + WRITE_LAG_LIMIT));
    }

    #[test]
    fn reconcile_ids_differ() {
        let a = super::reconcile_id();
        let b = super::reconcile_id();
        assert_ne!(a, b);
        assert_eq!(a.split('-').next().map(str::len), Some(6), "{a}");
    }

    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets_on_success() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let secs: Vec<f64> = (0..8)
            .map(|_| backoff.fail("ns/site").as_secs_f64())
            .collect();
        let expected = [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0];
        for (got, want) in secs.iter().zip(expected) {
            assert!((got - want).abs() <= want * 0.1 + 1e-9, "{secs:?}");
        }
        assert_eq!(backoff.failures("ns/site"), 8);
        assert_eq!(backoff.failures("ns/other"), 0, "backoff is per object");
        backoff.reset("ns/site");
        assert_eq!(backoff.failures("ns/site"), 0);
        assert!(backoff.fail("ns/site") <= Duration::from_millis(1100));
    }

    #[test]
    fn jitter_stays_within_its_spread() {
        for _ in 0..1000 {
            let d = jitter(Duration::from_secs(100), 0.2);
            assert!(
                d >= Duration::from_secs(80) && d <= Duration::from_secs(120),
                "{d:?}"
            );
        }
    }

    #[test]
    fn jittered_requeues_spread_out() {
        let values: HashSet<u128> = (0..50)
            .map(|_| jitter(Duration::from_secs(600), 0.2).as_millis())
            .collect();
        assert!(
            values.len() > 40,
            "requeues are not spread: {}",
            values.len()
        );
    }
}
