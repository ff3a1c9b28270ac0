//! The Backup controller: one Job per Backup, in the site's namespace, that
//! copies what changed in the site's ZODB (repozo, incremental) and blobs into
//! the member's backup volume, then drops from the repository what no Backup
//! object keeps any more. Reports `Complete` or `Failed`, with the times and
//! size. A running restore of the same site goes first.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, ObjectMeta};
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use mutu_api::product::StorageMode;
use mutu_api::{Backup, BackupPolicy, PloneSite, Product, Restore, RunStatus};
use mutu_runtime::conditions::Desired as Cond;
use mutu_runtime::{Context, Reason};

use crate::jobs::{self, JobState};

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
}

impl Default for Config {
    fn default() -> Self {
        Self {
            volume_claim: "backups".into(),
            volume_size: "100Gi".into(),
            storage_class: None,
            tick: Duration::from_secs(10),
            postgres_image: "docker.io/library/postgres:17-alpine".into(),
        }
    }
}

/// The index the backup controllers and the engine share: the watch caches
/// (malformed objects are kept in them, and skipped here).
pub struct Data {
    pub config: Config,
    pub jobs: Store<Job>,
    pub restores_cache: Store<DeserializeGuard<Restore>>,
    pub backups_cache: Store<DeserializeGuard<Backup>>,
    pub policies_cache: Store<DeserializeGuard<BackupPolicy>>,
    pub sites_cache: Store<DeserializeGuard<PloneSite>>,
}

fn valid<K: Clone>(g: &DeserializeGuard<K>) -> Option<Arc<K>> {
    g.0.as_ref().ok().map(|k| Arc::new(k.clone()))
}

fn all<K: Resource<DynamicType = ()> + Clone + 'static>(
    store: &Store<DeserializeGuard<K>>,
) -> Vec<Arc<K>> {
    store.state().iter().filter_map(|g| valid(g)).collect()
}

impl Data {
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
            );
        })
        .await
    }
    pub fn site(&self, ns: &str, name: &str) -> Option<Arc<PloneSite>> {
        self.sites_cache
            .get(&ObjectRef::new(name).within(ns))
            .and_then(|g| valid(&g))
    }
    pub fn sites(&self) -> Vec<Arc<PloneSite>> {
        all(&self.sites_cache)
    }
    pub fn backup(&self, ns: &str, name: &str) -> Option<Arc<Backup>> {
        self.backups_cache
            .get(&ObjectRef::new(name).within(ns))
            .and_then(|g| valid(&g))
    }
    pub fn backups(&self) -> Vec<Arc<Backup>> {
        all(&self.backups_cache)
    }
    pub fn restores(&self) -> Vec<Arc<Restore>> {
        all(&self.restores_cache)
    }
    pub fn policy(&self, name: &str) -> Option<Arc<BackupPolicy>> {
        self.policies_cache
            .get(&ObjectRef::new(name))
            .and_then(|g| valid(&g))
    }
    pub fn policies(&self) -> Vec<Arc<BackupPolicy>> {
        all(&self.policies_cache)
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

pub(crate) fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let what = what.into();
    move |source| Error::Kube { what, source }
}

pub type Ctx = Context<Data>;

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

/// Whether a run (Backup or Restore) has finished, either way.
pub fn finished(status: Option<&RunStatus>) -> bool {
    status.is_some_and(|s| {
        mutu_runtime::conditions::is_true(&s.conditions, mutu_api::CONDITION_COMPLETE)
            || mutu_runtime::conditions::is_true(&s.conditions, mutu_api::CONDITION_FAILED)
    })
}

/// Makes sure the member's backup volume exists (never deleted by mutu).
pub async fn ensure_volume(ctx: &Ctx, ns: &str) -> Result<(), Error> {
    let cfg = &ctx.data.config;
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client().clone(), ns);
    if api
        .get_opt(&cfg.volume_claim)
        .await
        .map_err(kube_err("read the backup volume claim"))?
        .is_some()
    {
        return Ok(());
    }
    let mut spec = serde_json::json!({
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": cfg.volume_size}},
    });
    if let Some(class) = &cfg.storage_class {
        spec["storageClassName"] = serde_json::json!(class);
    }
    let claim: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
        "metadata": {"name": cfg.volume_claim, "namespace": ns, "labels": {
            mutu_api::MANAGED_BY: mutu_api::MANAGED_BY_VALUE,
            mutu_api::COMPONENT: "backups",
        }},
        "spec": spec,
    }))
    .map_err(|e| Error::Kube {
        what: "build the backup volume claim".into(),
        source: kube::Error::SerdeError(e),
    })?;
    ctx.create_once(&api, &claim)
        .await
        .map(|_| ())
        .map_err(|source| Error::Kube {
            what: "create the backup volume claim".into(),
            source,
        })
}

/// The running restore of `site` in `ns`, if any.
pub fn restore_running(ctx: &Ctx, ns: &str, site: &str) -> Option<Arc<Restore>> {
    ctx.data.restores().into_iter().find(|r| {
        r.namespace().as_deref() == Some(ns) && r.spec.site == site && !finished(r.status.as_ref())
    })
}

/// Writes the status of a run (a Backup or a Restore).
pub(crate) async fn write<K>(
    ctx: &Ctx,
    api: &Api<K>,
    run: &K,
    status: RunStatus,
    conds: &[Cond<'_>],
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + kube::core::object::HasStatus<Status = RunStatus>,
{
    ctx.write_status(api, run, status, conds)
        .await
        .map(|_| ())
        .map_err(Error::Status)
}

/// The conditions of a backup whose Job runs.
fn running(job: &str) -> [Cond<'static>; 2] {
    let msg = format!("Job {job} backs the site up");
    [
        Cond::new(
            mutu_api::CONDITION_PROGRESSING,
            true,
            "Running",
            msg.clone(),
        ),
        Cond::new(mutu_api::CONDITION_COMPLETE, false, "Running", msg),
    ]
}

pub async fn reconcile(b: Arc<Backup>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if finished(b.status.as_ref()) || b.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    if !ctx.data.ready().await {
        return Ok(mutu_runtime::controller::not_listed_yet());
    }
    let ns = b.namespace().unwrap_or_default();
    let api: Api<Backup> = Api::namespaced(ctx.client().clone(), &ns);
    let mut status = b.status.clone().unwrap_or_default();
    status.observed_generation = b.meta().generation;
    let site_name = &b.spec.site;
    let now = Time(mutu_runtime::status::now());

    let Some(site) = ctx.data.site(&ns, site_name) else {
        if !confirmed_missing::<PloneSite>(&ctx, &ns, site_name).await? {
            return Ok(Action::requeue(CACHE_CATCHING_UP));
        }
        status.completion_time = Some(now);
        let msg = format!(
            "spec.site: no PloneSite {site_name} in namespace {ns}; a Backup names a site of its own namespace"
        );
        write(
            ctx.as_ref(),
            &api,
            &b,
            status,
            &[
                Cond::new(mutu_api::CONDITION_FAILED, true, "NoSite", msg.clone()),
                Cond::new(mutu_api::CONDITION_COMPLETE, false, "NoSite", msg),
            ],
        )
        .await?;
        return Ok(Action::await_change());
    };
    let policy = b.spec.policy.clone().or_else(|| {
        let policies: Vec<BackupPolicy> =
            ctx.data.policies().iter().map(|p| (**p).clone()).collect();
        crate::fleet::policy_of(&site, &policies).map(|p| p.name_any())
    });

    let job_name = jobs::job_name(jobs::BACKUP, &b.name_any());
    let job = ctx.data.jobs.get(&ObjectRef::new(&job_name).within(&ns));
    match job.as_deref().map(jobs::job_state) {
        None => {
            if let Some(r) = restore_running(&ctx, &ns, site_name) {
                write(
                    ctx.as_ref(),
                    &api,
                    &b,
                    status,
                    &[Cond::new(
                        mutu_api::CONDITION_PROGRESSING,
                        false,
                        "WaitingForRestore",
                        format!("Restore {} of the site runs first", r.name_any()),
                    )],
                )
                .await?;
                return Ok(Action::requeue(Duration::from_secs(10)));
            }
            // The policy's cap holds for every backup, scheduled or not.
            if let Some(p) = policy.as_ref().and_then(|p| ctx.data.policy(p)) {
                let running = ctx
                    .data
                    .jobs
                    .state()
                    .iter()
                    .filter(|j| {
                        j.labels().get(mutu_api::COMPONENT).map(String::as_str)
                            == Some(jobs::BACKUP)
                            && j.labels().get(jobs::POLICY_LABEL) == Some(&p.name_any())
                            && jobs::job_state(j) == JobState::Running
                    })
                    .count();
                if running >= p.spec.max_concurrent.max(1) as usize {
                    write(
                        ctx.as_ref(),
                        &api,
                        &b,
                        status,
                        &[Cond::new(
                            mutu_api::CONDITION_PROGRESSING,
                            false,
                            "Queued",
                            format!(
                                "{running} backups of policy {} run already (maxConcurrent {})",
                                p.name_any(),
                                p.spec.max_concurrent
                            ),
                        )],
                    )
                    .await?;
                    return Ok(Action::requeue(Duration::from_secs(15)));
                }
            }
            let storage = match storage(&ctx, &ns, &site).await? {
                Ok(s) => s,
                Err(msg) => {
                    write(
                        ctx.as_ref(),
                        &api,
                        &b,
                        status,
                        &[Cond::new(
                            mutu_api::CONDITION_PROGRESSING,
                            false,
                            "WaitingForSite",
                            msg,
                        )],
                    )
                    .await?;
                    return Ok(Action::requeue(Duration::from_secs(15)));
                }
            };
            ensure_volume(&ctx, &ns).await?;
            let repo = format!("{}/{site_name}", jobs::BACKUPS_DIR);
            let keep: Vec<String> = keep_ids(&ctx, &ns, site_name, &b.name_any());
            let (runner, data) = match &storage {
                Storage::Zeo(_) => ("python", format!(" --data {}", jobs::DATA_DIR)),
                Storage::Rel { .. } => ("sh", String::new()),
            };
            let mut script = format!(
                "set -e\nout=$({runner} \"$0\" backup{data} --repo {repo} --id {})\necho \"$out\"\necho \"$out\" > /dev/termination-log\n",
                b.name_any()
            );
            script.push_str(&format!(
                "{runner} \"$0\" prune --repo {repo} {} || echo 'backup done; pruning the repository failed, it is retried after the next backup' >&2\n",
                keep.iter().map(|k| format!("--keep {k}")).collect::<Vec<_>>().join(" ")
            ));
            let spec = jobs::Spec {
                component: jobs::BACKUP,
                name: job_name.clone(),
                namespace: ns.clone(),
                site: site_name,
                owner: b.controller_owner_ref(&()).unwrap_or_default(),
                owner_uid: b.uid().unwrap_or_default(),
                args: Vec::new(),
                backups_claim: &ctx.data.config.volume_claim,
                policy: policy.clone(),
                writes_data: false,
                data_claim: None,
                pool: None,
            };
            let built = match &storage {
                Storage::Zeo(zeo) => jobs::build(&spec, zeo),
                Storage::Rel { secret } => {
                    Ok(jobs::pg_job(&spec, &ctx.data.config.postgres_image, secret))
                }
            };
            let mut job = match built {
                Ok(j) => j,
                Err(blocked) => {
                    status.completion_time = Some(now);
                    let msg = blocked.to_string();
                    write(
                        ctx.as_ref(),
                        &api,
                        &b,
                        status,
                        &[
                            Cond::new(mutu_api::CONDITION_FAILED, true, "Unsupported", msg.clone()),
                            Cond::new(mutu_api::CONDITION_COMPLETE, false, "Unsupported", msg),
                        ],
                    )
                    .await?;
                    return Ok(Action::await_change());
                }
            };
            // sh -c SCRIPT SCRIPT_PATH: the backup, its result as the termination
            // message (read back for the size), then the pruning.
            if let Some(c) = job
                .spec
                .as_mut()
                .and_then(|s| s.template.spec.as_mut())
                .and_then(|p| p.containers.first_mut())
            {
                let path = c
                    .command
                    .as_ref()
                    .and_then(|cmd| cmd.get(1).cloned())
                    .unwrap_or_default();
                c.command = Some(vec!["sh".into(), "-c".into(), script, path]);
            }
            ctx.create_once(&Api::<Job>::namespaced(ctx.client().clone(), &ns), &job)
                .await
                .map_err(|source| Error::Kube {
                    what: format!("create Job {job_name}"),
                    source,
                })?;
            status.start_time.get_or_insert(now);
            status.location = Some(format!("{ns}/{site_name}/{}", b.name_any()));
            write(ctx.as_ref(), &api, &b, status, &running(&job_name)).await?;
            Ok(Action::requeue(Duration::from_secs(60)))
        }
        Some(JobState::Running) => {
            status.start_time.get_or_insert(now);
            write(ctx.as_ref(), &api, &b, status, &running(&job_name)).await?;
            Ok(Action::requeue(Duration::from_secs(60)))
        }
        Some(JobState::Succeeded) => {
            let job = job.unwrap_or_default();
            let js = job.status.clone().unwrap_or_default();
            status.start_time = status
                .start_time
                .or(js.start_time.clone())
                .or(Some(now.clone()));
            status.completion_time = js.completion_time.or(Some(now));
            if let Some(result) = termination_message(&ctx, &ns, &job_name).await {
                status.size = result.get("size").and_then(serde_json::Value::as_i64);
            }
            write(
                ctx.as_ref(),
                &api,
                &b,
                status,
                &[
                    Cond::new(
                        mutu_api::CONDITION_COMPLETE,
                        true,
                        "BackedUp",
                        format!("Job {job_name} succeeded"),
                    ),
                    Cond::new(
                        mutu_api::CONDITION_PROGRESSING,
                        false,
                        "Done",
                        "finished".to_string(),
                    ),
                    Cond::new(
                        mutu_api::CONDITION_READY,
                        true,
                        "Restorable",
                        "this backup can be restored".to_string(),
                    ),
                ],
            )
            .await?;
            ctx.event(
                b.as_ref(),
                false,
                "BackedUp",
                format!("Job {job_name} succeeded"),
            )
            .await;
            Ok(Action::await_change())
        }
        Some(JobState::Failed(why)) => {
            let job = job.unwrap_or_default();
            status.completion_time = job
                .status
                .as_ref()
                .and_then(|s| s.completion_time.clone())
                .or(Some(now));
            let msg = format!(
                "Job {job_name} failed ({why}); read its log: kubectl -n {ns} logs job/{job_name}"
            );
            write(
                ctx.as_ref(),
                &api,
                &b,
                status,
                &[
                    Cond::new(mutu_api::CONDITION_FAILED, true, "JobFailed", msg.clone()),
                    Cond::new(
                        mutu_api::CONDITION_COMPLETE,
                        false,
                        "JobFailed",
                        msg.clone(),
                    ),
                    Cond::new(
                        mutu_api::CONDITION_PROGRESSING,
                        false,
                        "Done",
                        "finished".to_string(),
                    ),
                ],
            )
            .await?;
            ctx.event(b.as_ref(), true, "BackupFailed", msg).await;
            Ok(Action::await_change())
        }
    }
}

/// Where a site keeps its database.
pub enum Storage {
    /// FileStorage and blobs behind its ZEO server (the StatefulSet).
    Zeo(Box<StatefulSet>),
    /// RelStorage in PostgreSQL; the Secret with its `dsn`.
    Rel { secret: String },
}

/// The storage of `site`, or why it cannot be worked on yet.
pub async fn storage(
    ctx: &Ctx,
    ns: &str,
    site: &PloneSite,
) -> Result<Result<Storage, String>, Error> {
    let name = site.name_any();
    // Only a site that names no storage mode needs its Product to know.
    let mut mode = site.spec.storage.as_ref().and_then(|s| s.mode);
    if mode.is_none() {
        let product = Api::<Product>::all(ctx.client().clone())
            .get_opt(&site.spec.product)
            .await
            .map_err(kube_err("read the site's product"))?;
        mode = product.and_then(|p| mutu_model::storage::mode(site, &p.spec));
    }
    if mode == Some(StorageMode::Relstorage) {
        let secret = mutu_model::storage::relstorage_secret(site);
        return Ok(Ok(Storage::Rel { secret }));
    }
    let zeo_name = mutu_model::names::zeo_server(&name);
    let zeo = Api::<StatefulSet>::namespaced(ctx.client().clone(), ns)
        .get_opt(&zeo_name)
        .await
        .map_err(kube_err("read the site's ZEO server"))?;
    Ok(zeo
        .map(|z| Storage::Zeo(Box::new(z)))
        .ok_or_else(|| format!("the site's ZEO server {zeo_name} does not exist yet")))
}

/// The backups of `site` whose data the repository keeps: every Backup object
/// of the site that has not failed, and this one (last).
fn keep_ids(ctx: &Ctx, ns: &str, site: &str, this: &str) -> Vec<String> {
    let mut keep: Vec<String> = ctx
        .data
        .backups()
        .iter()
        .filter(|b| b.namespace().as_deref() == Some(ns) && b.spec.site == site)
        .filter(|b| {
            // Running ones too: their data may be in the repository already.
            !b.status.as_ref().is_some_and(|s| {
                mutu_runtime::conditions::is_true(&s.conditions, mutu_api::CONDITION_FAILED)
            })
        })
        .map(|b| b.name_any())
        .filter(|n| n != this)
        .collect();
    keep.sort();
    keep.push(this.to_string());
    keep
}

/// The JSON line a Job's container left as its termination message.
async fn termination_message(ctx: &Ctx, ns: &str, job: &str) -> Option<serde_json::Value> {
    let pods: Api<Pod> = Api::namespaced(ctx.client().clone(), ns);
    let list = pods
        .list(&ListParams::default().labels(&format!("job-name={job}")))
        .await
        .ok()?;
    list.items.iter().find_map(|p| {
        let message = p
            .status
            .as_ref()?
            .container_statuses
            .as_ref()?
            .first()?
            .state
            .as_ref()?
            .terminated
            .as_ref()?
            .message
            .clone()?;
        serde_json::from_str(message.trim()).ok()
    })
}

/// Labels every Backup gets, for `kubectl get backups -l`.
pub fn labels(site: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(jobs::SITE_LABEL.to_string(), site.to_string())])
}

/// A Backup object of `site` (as the schedule makes them).
pub fn scheduled_backup(ns: &str, name: &str, site: &str, policy: &str) -> Backup {
    let mut b = Backup::new(
        name,
        mutu_api::BackupSpec {
            site: site.to_string(),
            policy: Some(policy.to_string()),
            trigger: mutu_api::backup::BackupTrigger::Scheduled,
        },
    );
    b.metadata = ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(ns.to_string()),
        labels: Some(labels(site)),
        ..Default::default()
    };
    b
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
        let data = Data {
            config: Config::default(),
            jobs,
            restores_cache,
            backups_cache,
            policies_cache,
            sites_cache,
        };
        assert!(!data.ready().await, "nothing listed yet");
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
