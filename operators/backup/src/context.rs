//! What every part of the backup operator shares: the operator-wide settings
//! ([`Config`]), the watch caches the controllers and the engine read
//! ([`Caches`]), the error type of a reconcile, and the check that an object
//! missing from a cache is missing from the API server too.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use mutu_api::{Backup, BackupPolicy, PloneSite, Product, Restore};
use mutu_runtime::{Context, Reason};

use crate::status::finished;

/// Operator-wide settings of the backup controllers.
#[derive(Clone, Debug)]
pub struct Config {
    /// The member's backup volume claim, in each tenant namespace.
    pub volume_claim: String,
    /// Its size when mutu creates it.
    pub volume_size: String,
    /// Its StorageClass (the cluster's default when empty).
    pub storage_class: Option<String>,
    /// How often the engine looks at the fleet.
    pub tick: Duration,
    /// Image with the PostgreSQL client tools, for RelStorage sites' backups.
    pub postgres_image: String,
    /// Image with a shell, tar and gzip, for generic products' volumes.
    pub volume_image: String,
    /// How long the data a restore of a ZEO site set aside (`before-restore-*` in its data
    /// volume) is kept before a Job deletes it.
    pub keep_before_restore: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            volume_claim: "backups".into(),
            volume_size: "100Gi".into(),
            storage_class: None,
            tick: Duration::from_secs(10),
            postgres_image: "docker.io/library/postgres:17-alpine".into(),
            volume_image: "docker.io/library/busybox:1.37".into(),
            keep_before_restore: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// The index the backup controllers and the engine share: the watch caches
/// (malformed objects are kept in them, and skipped here).
pub struct Caches {
    pub config: Config,
    pub jobs: Store<Job>,
    pub restores_cache: Store<DeserializeGuard<Restore>>,
    pub backups_cache: Store<DeserializeGuard<Backup>>,
    pub policies_cache: Store<DeserializeGuard<BackupPolicy>>,
    pub sites_cache: Store<DeserializeGuard<PloneSite>>,
    pub products_cache: Store<DeserializeGuard<Product>>,
    /// Held while a Backup weighs its policy's load and starts its Job, so that two
    /// Backups reconciled at once cannot both take the last place.
    pub start_lock: tokio::sync::Mutex<()>,
    /// Backup Jobs this process created lately (`ns/name` → what they count against and
    /// when), counted until the cache shows them.
    pub started: std::sync::Mutex<std::collections::HashMap<String, crate::backup::Started>>,
}

/// The object a cache entry holds, unless it could not be deserialized.
fn well_formed<K: Clone>(entry: &DeserializeGuard<K>) -> Option<Arc<K>> {
    entry.0.as_ref().ok().map(|k| Arc::new(k.clone()))
}

/// Every well-formed object of a cache.
fn every_well_formed<K: Resource<DynamicType = ()> + Clone + 'static>(
    store: &Store<DeserializeGuard<K>>,
) -> Vec<Arc<K>> {
    store
        .state()
        .iter()
        .filter_map(|entry| well_formed(entry))
        .collect()
}

impl Caches {
    /// Waits until every cache has its first full list: right after a start
    /// (or an operator's restart), a reconcile must not take a site, Backup or
    /// Job the cache has not listed yet for a missing one, and fail a run for
    /// it.
    pub async fn ready(&self) -> bool {
        mutu_runtime::controller::caches_listed(async {
            let _ = futures::join!(
                self.sites_cache.wait_until_ready(),
                self.backups_cache.wait_until_ready(),
                self.restores_cache.wait_until_ready(),
                self.policies_cache.wait_until_ready(),
                self.jobs.wait_until_ready(),
                self.products_cache.wait_until_ready(),
            );
        })
        .await
    }
    pub fn site(&self, ns: &str, name: &str) -> Option<Arc<PloneSite>> {
        self.sites_cache
            .get(&ObjectRef::new(name).within(ns))
            .and_then(|entry| well_formed(&entry))
    }
    pub fn sites(&self) -> Vec<Arc<PloneSite>> {
        every_well_formed(&self.sites_cache)
    }
    /// Whether `site` keeps data to back up: not a generic product without a
    /// volume. A site whose product is unknown is taken to keep some (its
    /// backups then wait for the product, and say so).
    pub fn keeps_data(&self, site: &PloneSite) -> bool {
        self.product(&site.spec.product).is_none_or(|p| {
            mutu_model::storage::of_site(site, &p.spec) != mutu_model::storage::Storage::Nothing
        })
    }
    /// The catalog's Product `name`, if the cache has it.
    pub fn product(&self, name: &str) -> Option<Arc<Product>> {
        self.products_cache
            .get(&ObjectRef::new(name))
            .and_then(|entry| well_formed(&entry))
    }
    pub fn backup(&self, ns: &str, name: &str) -> Option<Arc<Backup>> {
        self.backups_cache
            .get(&ObjectRef::new(name).within(ns))
            .and_then(|entry| well_formed(&entry))
    }
    pub fn restore(&self, ns: &str, name: &str) -> Option<Arc<Restore>> {
        self.restores_cache
            .get(&ObjectRef::new(name).within(ns))
            .and_then(|entry| well_formed(&entry))
    }
    /// Records a Job this process just made (see [`crate::backup::unseen`]).
    pub fn made(&self, job_name: &str, started: crate::backup::Started) {
        self.started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(format!("{}/{job_name}", started.namespace), started);
    }
    pub fn backups(&self) -> Vec<Arc<Backup>> {
        every_well_formed(&self.backups_cache)
    }
    pub fn restores(&self) -> Vec<Arc<Restore>> {
        every_well_formed(&self.restores_cache)
    }
    pub fn policy(&self, name: &str) -> Option<Arc<BackupPolicy>> {
        self.policies_cache
            .get(&ObjectRef::new(name))
            .and_then(|entry| well_formed(&entry))
    }
    pub fn policies(&self) -> Vec<Arc<BackupPolicy>> {
        every_well_formed(&self.policies_cache)
    }
    /// The Job named `name` in `ns`, if the cache has it.
    pub fn job(&self, ns: &str, name: &str) -> Option<Arc<Job>> {
        self.jobs.get(&ObjectRef::new(name).within(ns))
    }
    /// The running restore of `site` in `ns`, if any: one that has started (it holds the
    /// site) and not finished. One still waiting (for the site's holder, e.g. a plan whose
    /// pre-upgrade backup this is) does not hold backups back.
    pub fn restore_running(&self, ns: &str, site: &str) -> Option<Arc<Restore>> {
        self.restores().into_iter().find(|r| {
            r.namespace().as_deref() == Some(ns)
                && r.spec.site == site
                && r.status.as_ref().is_some_and(|s| s.start_time.is_some())
                && !finished(r.status.as_ref())
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write the status: {0}")]
    Status(#[source] kube::Error),
    #[error("{0}")]
    Finalizer(String),
    #[error("cannot {what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
}

impl Reason for Error {
    fn reason(&self) -> &'static str {
        match self {
            Error::Status(_) => "StatusFailed",
            Error::Kube { .. } => "ApiFailed",
            Error::Finalizer(_) => "FinalizerFailed",
        }
    }
}

/// Turns a failed API call into an [`Error`] saying what could not be done.
pub(crate) fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Kube { what, source }
}

pub type Ctx = Context<Caches>;

/// Whether `name`, missing from a cache, is missing from the API server too.
/// A watch lags: a site created a moment before the Backup naming it may not
/// be cached yet. A run fails for a missing object only when the API server
/// confirms it; otherwise it is reconciled again once the cache has caught up.
pub(crate) async fn confirmed_missing<K>(ctx: &Ctx, ns: &str, name: &str) -> Result<bool, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(ctx.client().clone(), ns)
        .get_metadata_opt(name)
        .await
        .map(|found| found.is_none())
        .map_err(kube_err(format!("read {} {ns}/{name}", K::kind(&()))))
}

/// The requeue of a run whose object the API server has but its cache not yet.
pub(crate) const CACHE_CATCHING_UP: Duration = Duration::from_secs(1);

/// For an object `name` of kind `K` a run names and the cache lacks: runs
/// `fail` when the API server confirms it is missing, else reconciles the run
/// again once the cache has caught up.
pub(crate) async fn fail_if_confirmed_missing<K, Fail, Failing>(
    ctx: &Ctx,
    ns: &str,
    name: &str,
    fail: Fail,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    Fail: FnOnce() -> Failing,
    Failing: std::future::Future<Output = Result<Action, Error>>,
{
    if confirmed_missing::<K>(ctx, ns, name).await? {
        fail().await
    } else {
        Ok(Action::requeue(CACHE_CATCHING_UP))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector::{self, store::Writer};
    use kube::runtime::watcher::Event;

    fn listed<K>(writer: &mut Writer<K>)
    where
        K: Resource<DynamicType = ()> + Clone + 'static,
    {
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitDone);
    }

    #[tokio::test(start_paused = true)]
    async fn runs_wait_until_every_cache_is_listed() {
        let (sites_cache, mut sites) = reflector::store();
        let (backups_cache, mut backups) = reflector::store();
        let (restores_cache, mut restores) = reflector::store();
        let (policies_cache, mut policies) = reflector::store();
        let (jobs, mut job_writer) = reflector::store();
        let (products_cache, mut products) = reflector::store();
        let data = Caches {
            config: Config::default(),
            jobs,
            restores_cache,
            backups_cache,
            policies_cache,
            sites_cache,
            products_cache,
            start_lock: Default::default(),
            started: Default::default(),
        };
        assert!(!data.ready().await, "nothing listed yet");
        listed(&mut products);
        listed(&mut backups);
        listed(&mut restores);
        listed(&mut policies);
        listed(&mut job_writer);
        assert!(
            !data.ready().await,
            "the sites are not listed: a Backup would fail for a site not cached yet"
        );
        listed(&mut sites);
        assert!(data.ready().await);
    }
}
