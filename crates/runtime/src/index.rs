//! Cached objects by the value of one label, so that a controller finds the
//! children of one owner without scanning the caches of the whole fleet.
//!
//! A reflector's store answers "this object?" in constant time but "the objects
//! labelled so" only by reading every object. At 10,000 sites the site
//! controller's caches hold about 100,000 children; reading them all for each
//! reconcile made a converge cost the square of the fleet. A [`LabelIndex`] is
//! fed by the same watch events as the store (see
//! [`crate::watch::indexed_children_watch`]) and keeps, per kind, namespace and
//! label value, the names of the objects: a lookup costs what it returns.

use std::any::TypeId;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use kube::Resource;
use kube::runtime::watcher;

/// Where an object sits: its kind (the Rust type), namespace and name.
type ObjectKey = (TypeId, Option<String>, String);
/// What the index is keyed by: kind, namespace and the label's value.
type ValueKey = (TypeId, Option<String>, String);

#[derive(Default)]
struct State {
    names: HashMap<ValueKey, BTreeSet<String>>,
    value_of: HashMap<ObjectKey, String>,
    /// Objects seen since each kind's relist began; the others are gone at its end.
    relisting: HashMap<TypeId, HashSet<(Option<String>, String)>>,
}

impl State {
    fn remove(&mut self, key: &ObjectKey) {
        if let Some(value) = self.value_of.remove(key) {
            let vkey = (key.0, key.1.clone(), value);
            if let Some(names) = self.names.get_mut(&vkey) {
                names.remove(&key.2);
                if names.is_empty() {
                    self.names.remove(&vkey);
                }
            }
        }
    }

    fn set(&mut self, key: ObjectKey, value: Option<&str>) {
        if self.value_of.get(&key).map(String::as_str) == value {
            return;
        }
        self.remove(&key);
        if let Some(value) = value {
            self.names
                .entry((key.0, key.1.clone(), value.to_string()))
                .or_default()
                .insert(key.2.clone());
            self.value_of.insert(key, value.to_string());
        }
    }
}

/// Names of cached objects by (kind, namespace, value of `label`). Cheap to
/// clone; clones share the index.
#[derive(Clone)]
pub struct LabelIndex {
    label: &'static str,
    state: Arc<Mutex<State>>,
}

impl LabelIndex {
    /// An empty index of the objects' `label`.
    pub fn new(label: &'static str) -> Self {
        LabelIndex {
            label,
            state: Arc::default(),
        }
    }

    /// The label this index reads.
    pub fn label(&self) -> &'static str {
        self.label
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The names of the objects of kind `K` in `namespace` whose label is `value`.
    pub fn names<K: 'static>(&self, namespace: Option<&str>, value: &str) -> Vec<String> {
        let key = (
            TypeId::of::<K>(),
            namespace.map(str::to_string),
            value.to_string(),
        );
        self.lock()
            .names
            .get(&key)
            .map(|n| n.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// How many objects the index holds, all kinds together.
    pub fn len(&self) -> usize {
        self.lock().value_of.len()
    }

    /// Whether the index holds no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Follows one watch event of objects of kind `K` (stored as `S`: the
    /// object itself or its metadata).
    pub fn observe<K: 'static, S: Resource>(&self, event: &watcher::Event<S>) {
        let kind = TypeId::of::<K>();
        let key_of = |o: &S| {
            (
                kind,
                o.meta().namespace.clone(),
                o.meta().name.clone().unwrap_or_default(),
            )
        };
        let label = self.label;
        fn value_of<'a, S: Resource>(o: &'a S, label: &str) -> Option<&'a str> {
            o.meta()
                .labels
                .as_ref()
                .and_then(|l| l.get(label))
                .map(String::as_str)
        }
        let mut state = self.lock();
        match event {
            watcher::Event::Init => {
                state.relisting.insert(kind, HashSet::new());
            }
            watcher::Event::InitApply(o) | watcher::Event::Apply(o) => {
                let key = key_of(o);
                if let Some(seen) = state.relisting.get_mut(&kind) {
                    seen.insert((key.1.clone(), key.2.clone()));
                }
                state.set(key, value_of(o, label));
            }
            watcher::Event::Delete(o) => state.remove(&key_of(o)),
            watcher::Event::InitDone => {
                if let Some(seen) = state.relisting.remove(&kind) {
                    let gone: Vec<ObjectKey> = state
                        .value_of
                        .keys()
                        .filter(|k| k.0 == kind && !seen.contains(&(k.1.clone(), k.2.clone())))
                        .cloned()
                        .collect();
                    for key in gone {
                        state.remove(&key);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ConfigMap, Service};
    use kube::api::ObjectMeta;
    use std::collections::BTreeMap;

    fn cm(ns: &str, name: &str, owner: Option<&str>) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                namespace: Some(ns.to_string()),
                name: Some(name.to_string()),
                labels: owner.map(|o| BTreeMap::from([("owner".to_string(), o.to_string())])),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn finds_the_objects_of_one_value_in_one_namespace_and_kind() {
        let index = LabelIndex::new("owner");
        index.observe::<ConfigMap, _>(&watcher::Event::Apply(cm("a", "one", Some("u1"))));
        index.observe::<ConfigMap, _>(&watcher::Event::Apply(cm("a", "two", Some("u1"))));
        index.observe::<ConfigMap, _>(&watcher::Event::Apply(cm("a", "three", Some("u2"))));
        index.observe::<ConfigMap, _>(&watcher::Event::Apply(cm("b", "four", Some("u1"))));
        index.observe::<ConfigMap, _>(&watcher::Event::Apply(cm("a", "bare", None)));
        assert_eq!(index.names::<ConfigMap>(Some("a"), "u1"), ["one", "two"]);
        assert_eq!(index.names::<ConfigMap>(Some("b"), "u1"), ["four"]);
        assert!(index.names::<Service>(Some("a"), "u1").is_empty());
        assert_eq!(index.len(), 4);
    }

    #[test]
    fn follows_a_changed_label_and_a_deletion() {
        let index = LabelIndex::new("owner");
        index.observe::<ConfigMap, _>(&watcher::Event::Apply(cm("a", "one", Some("u1"))));
        index.observe::<ConfigMap, _>(&watcher::Event::Apply(cm("a", "one", Some("u2"))));
        assert!(index.names::<ConfigMap>(Some("a"), "u1").is_empty());
        assert_eq!(index.names::<ConfigMap>(Some("a"), "u2"), ["one"]);
        index.observe::<ConfigMap, _>(&watcher::Event::Apply(cm("a", "one", None)));
        assert!(index.is_empty());
        index.observe::<ConfigMap, _>(&watcher::Event::Apply(cm("a", "one", Some("u2"))));
        index.observe::<ConfigMap, _>(&watcher::Event::Delete(cm("a", "one", Some("u2"))));
        assert!(index.names::<ConfigMap>(Some("a"), "u2").is_empty());
        assert!(index.is_empty());
    }

    #[test]
    fn a_relist_forgets_what_was_deleted_meanwhile_and_only_for_its_kind() {
        let index = LabelIndex::new("owner");
        index.observe::<ConfigMap, _>(&watcher::Event::Apply(cm("a", "kept", Some("u1"))));
        index.observe::<ConfigMap, _>(&watcher::Event::Apply(cm("a", "gone", Some("u1"))));
        index.observe::<Service, _>(&watcher::Event::Apply(cm("a", "svc", Some("u1"))));
        index.observe::<ConfigMap, ConfigMap>(&watcher::Event::Init);
        index.observe::<ConfigMap, _>(&watcher::Event::InitApply(cm("a", "kept", Some("u1"))));
        index.observe::<ConfigMap, _>(&watcher::Event::InitApply(cm("a", "new", Some("u1"))));
        // Until the relist is done, what it has not listed yet stays.
        assert_eq!(
            index.names::<ConfigMap>(Some("a"), "u1"),
            ["gone", "kept", "new"]
        );
        index.observe::<ConfigMap, ConfigMap>(&watcher::Event::InitDone);
        assert_eq!(index.names::<ConfigMap>(Some("a"), "u1"), ["kept", "new"]);
        assert_eq!(index.names::<Service>(Some("a"), "u1"), ["svc"]);
    }
}
