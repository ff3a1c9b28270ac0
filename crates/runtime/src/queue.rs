//! The objects waiting for a reconcile: triggered by a watch event, not yet
//! started. kube-runtime keeps its queue to itself, so the triggers are
//! counted on their way in and the starts on their way out; the size is the
//! `mutu_queue_depth` gauge.

use std::collections::HashSet;
use std::sync::Mutex;

use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use prometheus_client::metrics::gauge::Gauge;

/// Objects triggered and not yet reconciled, for one controller.
#[derive(Default)]
pub struct Queue {
    pending: Mutex<HashSet<String>>,
    depth: Gauge,
}

/// The key of an object: `namespace/name`, or `name` when cluster-scoped.
pub fn key(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

impl Queue {
    pub(crate) fn new(depth: Gauge) -> Self {
        Self {
            pending: Mutex::new(HashSet::new()),
            depth,
        }
    }

    fn update(&self, f: impl FnOnce(&mut HashSet<String>)) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut pending);
        self.depth
            .set(i64::try_from(pending.len()).unwrap_or(i64::MAX));
    }

    /// Records that these objects were triggered, and passes them on.
    pub fn tracked<K, I>(&self, refs: I) -> Vec<ObjectRef<K>>
    where
        K: Resource,
        K::DynamicType: Eq + std::hash::Hash + Clone,
        I: IntoIterator<Item = ObjectRef<K>>,
    {
        let refs: Vec<ObjectRef<K>> = refs.into_iter().collect();
        self.update(|pending| {
            for r in &refs {
                pending.insert(key(r.namespace.as_deref(), &r.name));
            }
        });
        refs
    }

    /// A watch mapper that records the objects `map` triggers.
    pub fn via<X, K, I, F>(
        self: &std::sync::Arc<Self>,
        map: F,
    ) -> impl Fn(X) -> Vec<ObjectRef<K>> + use<X, K, I, F>
    where
        K: Resource,
        K::DynamicType: Eq + std::hash::Hash + Clone,
        I: IntoIterator<Item = ObjectRef<K>>,
        F: Fn(X) -> I,
    {
        let queue = self.clone();
        move |x| queue.tracked(map(x))
    }

    /// The stream of the reconciled kind's own events, recording each object.
    pub fn watch<K, E, S>(
        self: &std::sync::Arc<Self>,
        stream: S,
    ) -> impl futures::Stream<Item = Result<K, E>> + Send + use<K, E, S>
    where
        K: Resource + Send,
        E: Send,
        S: futures::Stream<Item = Result<K, E>> + Send,
    {
        use futures::StreamExt;
        let queue = self.clone();
        stream.inspect(move |event| {
            if let Ok(obj) = event {
                queue.push(key(
                    obj.meta().namespace.as_deref(),
                    obj.meta().name.as_deref().unwrap_or_default(),
                ));
            }
        })
    }

    /// Records that the object `key` was triggered.
    pub fn push(&self, key: String) {
        self.update(|pending| {
            pending.insert(key);
        });
    }

    /// Records that the reconcile of `key` started.
    pub fn started(&self, key: &str) {
        self.update(|pending| {
            pending.remove(key);
        });
    }

    /// Objects waiting now.
    pub fn depth(&self) -> i64 {
        self.depth.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    #[test]
    fn an_object_triggered_twice_waits_once_until_its_reconcile_starts() {
        let queue = Queue::new(Gauge::default());
        let a = ObjectRef::<ConfigMap>::new("a").within("ns");
        queue.tracked([a.clone()]);
        queue.tracked([a.clone(), ObjectRef::new("b").within("ns")]);
        assert_eq!(queue.depth(), 2);
        queue.started("ns/a");
        assert_eq!(queue.depth(), 1);
        queue.started("ns/a");
        assert_eq!(
            queue.depth(),
            1,
            "a start of an object not waiting changes nothing"
        );
    }
}
