//! One reconcile of a SolrIndex: the configset version uploaded once, the
//! collection built from it, the alias Plone talks to, a Solr user of the
//! site's own allowed only its collection, and the status read from Solr.
//! Deletion goes through a finalizer that honours `deletionPolicy`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use mutu_api::common::DeletionPolicy;
use mutu_api::solr::{PendingCollection, PreviousCollection, SolrIndexStatus};
use mutu_api::{PloneSite, Product, SolrIndex};
use mutu_runtime::conditions::Desired as Cond;
use mutu_runtime::controller::finalizer_reason;
use mutu_runtime::create::Created;
use mutu_runtime::{Context, Reason};

use crate::catch_up::{CATCH_UP_FAILED, CATCHING_UP, catch_up, requested_catch_up};
use crate::configset;
use crate::reindex::{self, JobState};

/// Finalizer that lets mutu honour `deletionPolicy` before an index goes.
pub const FINALIZER: &str = "hosting.imio.be/solr-index";
/// Condition: Solr cannot be reached or refuses; mutu retries with backoff.
pub const DEGRADED: &str = "Degraded";
/// Condition: the alias serves the collection of the configset version asked.
pub const REINDEXED: &str = "Reindexed";

/// Operator-wide settings of the SolrIndex controller.
#[derive(Clone, Debug)]
pub struct Config {
    /// The operator's namespace, where the admin Secret lives.
    pub namespace: String,
    /// Secret with Solr's admin `username`, `password` and, optionally, `url`.
    pub admin_secret: String,
    /// Base URL of the default Solr, when the admin Secret names none.
    pub default_url: String,
    /// How long a collection the alias left is kept, unless the index says otherwise.
    pub keep_previous: Duration,
}

pub struct Caches {
    pub config: Config,
    /// Solr keeps users and permissions in one security.json and refuses
    /// concurrent edits ("failed to persist security config"): this process
    /// edits it one change at a time.
    pub security: tokio::sync::Mutex<()>,
    /// The reindex Jobs (label component=reindex), slimmed to their status.
    pub jobs: Store<Job>,
    /// The last check of Solr's security rules (see [`missing_rules`]).
    pub safety: tokio::sync::Mutex<Option<SafetyCheck>>,
}

/// The role of Solr's admin, the only one the catch-all `all` may name.
pub const ADMIN_ROLE: &str = "admin";
/// Condition reason: Solr's security rules miss what site users rely on.
pub const SOLR_UNSAFE: &str = "SolrUnsafe";
/// How long a check that found the rules in place is trusted.
const SAFE_FOR: Duration = Duration::from_secs(600);
/// How soon rules found missing are checked again.
const UNSAFE_FOR: Duration = Duration::from_secs(30);

/// What the last check of a Solr's security rules found.
#[derive(Clone, Debug)]
pub struct SafetyCheck {
    base: String,
    at: std::time::Instant,
    missing: Vec<String>,
}

impl SafetyCheck {
    /// Whether this check still answers for the Solr at `base` at `now`.
    fn still_holds(&self, base: &str, now: std::time::Instant) -> bool {
        let trusted = if self.missing.is_empty() {
            SAFE_FOR
        } else {
            UNSAFE_FOR
        };
        self.base == base && now.saturating_duration_since(self.at) < trusted
    }
}

/// The security rules missing from `solr` (empty: all in place), from the
/// last check if it is recent enough: Solr is asked again only after
/// [`SAFE_FOR`] (or [`UNSAFE_FOR`] when rules were missing), or when the
/// operator talks to another Solr.
async fn missing_rules(
    ctx: &Ctx,
    solr: &mutu_solr::Client,
) -> Result<Vec<String>, mutu_solr::Error> {
    let mut last = ctx.data.safety.lock().await;
    if let Some(check) = last.as_ref()
        && check.still_holds(solr.base(), std::time::Instant::now())
    {
        return Ok(check.missing.clone());
    }
    let missing = solr.missing_security_rules(ADMIN_ROLE).await?;
    if missing.is_empty() {
        tracing::info!(solr = %solr.base(), "Solr's security rules are in place");
    } else {
        tracing::error!(
            solr = %solr.base(),
            missing = %missing.join("; "),
            "Solr's security rules are missing; no site user is created or changed until they are added"
        );
    }
    *last = Some(SafetyCheck {
        base: solr.base().to_string(),
        at: std::time::Instant::now(),
        missing: missing.clone(),
    });
    Ok(missing)
}

/// The message of the `SolrUnsafe` condition for the rules `missing`.
fn unsafe_message(base: &str, missing: &[String]) -> String {
    format!(
        "Solr at {base} lacks security rules that site users rely on, so mutu creates and changes no site user there: {}",
        missing.join("; ")
    )
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write the SolrIndex status: {0}")]
    Status(#[source] kube::Error),
    #[error("cannot read or write Secret {name}: {source}")]
    Secret {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Solr(#[from] mutu_solr::Error),
    #[error("cannot read or write the reindex Job {name}: {source}")]
    Job {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("{0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Reason for Error {
    fn reason(&self) -> &'static str {
        match self {
            Error::Status(_) => "StatusFailed",
            Error::Secret { .. } => "SecretFailed",
            Error::Job { .. } => "JobFailed",
            Error::Solr(e) if e.is_unreachable() => "SolrUnreachable",
            Error::Solr(_) => "SolrRefused",
            Error::Finalizer(inner) => finalizer_reason(inner),
        }
    }
}

pub(crate) type Ctx = Context<Caches>;

/// What one index is called in Solr.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    pub site: String,
    /// The alias Plone queries (and the name of the site's Solr user and role).
    pub alias: String,
    /// The collection of the configset version asked for.
    pub collection: String,
    pub configset: String,
    pub version: String,
    /// The configset version's name in Solr.
    pub solr_configset: String,
    /// The Secret (in the index's namespace) with the site's Solr credentials.
    pub secret: String,
    /// The authorization permission of the site's user.
    pub permission: String,
}

/// The names of `idx`'s alias, collection, configset, user and Secret.
pub fn names(idx: &SolrIndex) -> Names {
    let ns = idx.namespace().unwrap_or_default();
    let site = idx.spec.site.clone().unwrap_or_else(|| idx.name_any());
    let alias = mutu_model::names::solr_alias(&ns, &site);
    let configset = idx.spec.configset.clone().unwrap_or_else(|| "plone".into());
    let version = idx
        .spec
        .configset_version
        .clone()
        .unwrap_or_else(|| "1".into());
    Names {
        collection: mutu_model::names::solr_collection(&alias, &version),
        solr_configset: configset::solr_name(&configset, &version),
        secret: mutu_model::names::solr_secret(&site),
        permission: format!("mutu:{alias}"),
        site,
        alias,
        configset,
        version,
    }
}

/// The admin client, from the admin Secret.
async fn admin(ctx: &Ctx) -> Result<Option<mutu_solr::Client>, Error> {
    let cfg = &ctx.data.config;
    let api: Api<Secret> = Api::namespaced(ctx.client().clone(), &cfg.namespace);
    let Some(secret) = api
        .get_opt(&cfg.admin_secret)
        .await
        .map_err(|source| Error::Secret {
            name: format!("{}/{}", cfg.namespace, cfg.admin_secret),
            source,
        })?
    else {
        return Ok(None);
    };
    let data = secret.data.unwrap_or_default();
    let text = |k: &str| {
        data.get(k)
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
    };
    let (Some(user), Some(password)) = (text("username"), text("password")) else {
        return Ok(None);
    };
    let url = text("url").unwrap_or_else(|| cfg.default_url.clone());
    Ok(Some(mutu_solr::Client::new(
        &url,
        Some(mutu_solr::Credentials { user, password }),
    )?))
}

pub async fn reconcile(idx: Arc<SolrIndex>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = idx.namespace().unwrap_or_default();
    let api: Api<SolrIndex> = Api::namespaced(ctx.client().clone(), &ns);
    let (c, a) = (&ctx, &api);
    ctx.finalized(
        &api,
        FINALIZER,
        idx,
        |idx| async move { provision(&idx, c, a).await },
        |idx| async move { cleanup(&idx, c).await },
    )
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

async fn write(
    ctx: &Ctx,
    api: &Api<SolrIndex>,
    idx: &SolrIndex,
    status: SolrIndexStatus,
    conds: &[Cond<'_>],
) -> Result<(), Error> {
    ctx.write_status(api, idx, status, conds)
        .await
        .map(|_| ())
        .map_err(Error::Status)
}

async fn provision(idx: &SolrIndex, ctx: &Ctx, api: &Api<SolrIndex>) -> Result<Action, Error> {
    let n = names(idx);
    let mut status = idx.status.clone().unwrap_or_default();
    status.observed_generation = idx.meta().generation;

    let Some(files) = configset::files(&n.configset, &n.version) else {
        let shipped = configset::versions(&n.configset);
        let msg = if shipped.is_empty() {
            format!(
                "spec.configset: mutu ships no configset {}; the configsets it ships: {}",
                n.configset,
                configset::shipped()
            )
        } else {
            format!(
                "spec.configsetVersion: mutu ships no version {} of configset {}; shipped versions: {}",
                n.version,
                n.configset,
                shipped.join(", ")
            )
        };
        write(
            ctx,
            api,
            idx,
            status,
            &[Cond::new(
                mutu_api::CONDITION_READY,
                false,
                "UnknownConfigset",
                msg.clone(),
            )],
        )
        .await?;
        return Ok(Action::await_change());
    };
    let Some(solr) = admin(ctx).await? else {
        let msg = format!(
            "no Solr admin credentials: create Secret {}/{} with username and password (and url)",
            ctx.data.config.namespace, ctx.data.config.admin_secret
        );
        write(
            ctx,
            api,
            idx,
            status,
            &[Cond::new(
                mutu_api::CONDITION_READY,
                false,
                "NoSolrCredentials",
                msg,
            )],
        )
        .await?;
        return Ok(Action::requeue(Duration::from_secs(30)));
    };

    if let Some(url) = &idx.spec.url
        && url.trim_end_matches('/') != solr.base()
    {
        let msg = format!(
            "spec.url: {url} is not the Solr this operator manages ({}); leave spec.url out, or set it to that URL",
            solr.base()
        );
        write(
            ctx,
            api,
            idx,
            status,
            &[Cond::new(
                mutu_api::CONDITION_READY,
                false,
                "UnknownSolr",
                msg,
            )],
        )
        .await?;
        return Ok(Action::await_change());
    }
    match missing_rules(ctx, &solr).await {
        Ok(missing) if missing.is_empty() => {}
        Ok(missing) => {
            let msg = unsafe_message(solr.base(), &missing);
            write(
                ctx,
                api,
                idx,
                status,
                &[Cond::new(
                    mutu_api::CONDITION_READY,
                    false,
                    SOLR_UNSAFE,
                    msg,
                )],
            )
            .await?;
            return Ok(Action::requeue(UNSAFE_FOR));
        }
        Err(e) => return degraded(ctx, api, idx, status, e).await,
    }
    let (documents, target) = match ensure(idx, ctx, &solr, &n, &files).await {
        Ok(found) => found,
        Err(e) => return degraded(ctx, api, idx, status, e).await,
    };
    status.alias = Some(n.alias.clone());
    status.collection = Some(target.clone());
    status.configset_version = reindex::version_of(&n, &target).map(str::to_string);
    status.documents = Some(documents);
    let mut conds = vec![
        Cond::new(
            mutu_api::CONDITION_READY,
            true,
            "Ready",
            format!("alias {} serves collection {target}", n.alias),
        ),
        Cond::new(DEGRADED, false, "SolrAnswers", "Solr answers".to_string()),
    ];
    let now = mutu_runtime::status::now();
    // A collection asked for again is rebuilt, never deleted meanwhile.
    status.previous.retain(|p| p.collection != n.collection);
    if target == n.collection {
        status.pending = None;
        let requested = idx
            .annotations()
            .get(mutu_api::CATCH_UP_ANNOTATION)
            .filter(|t| !t.is_empty())
            .cloned();
        let mut keep = vec![
            reindex::job_name(&n.site, &n.version),
            reindex::catch_up_job_name(&n.site, &n.version),
        ];
        keep.extend(
            requested
                .iter()
                .map(|t| reindex::requested_catch_up_job_name(&n.site, t)),
        );
        drop_other_jobs(idx, ctx, &keep).await?;
        if let Some(token) = requested
            && status.caught_up.as_ref() != Some(&token)
        {
            let cond = requested_catch_up(idx, ctx, &n, &token).await?;
            if cond.status {
                status.caught_up = Some(token);
            }
            conds.push(cond);
        }
        let reindexed = idx
            .status
            .as_ref()
            .and_then(|s| mutu_runtime::conditions::find(&s.conditions, REINDEXED));
        if reindexed.is_some_and(|c| {
            c.status != "True" && matches!(c.reason.as_str(), CATCHING_UP | CATCH_UP_FAILED)
        }) {
            conds.push(catch_up(idx, ctx, &n).await?);
        } else if reindexed.is_some_and(|c| c.status != "True") {
            conds.push(Cond::new(
                REINDEXED,
                true,
                "Current",
                format!(
                    "the alias serves configset version {} as asked; nothing to reindex",
                    n.version
                ),
            ));
        }
    } else {
        match advance(idx, ctx, &solr, &n, &target, now, &mut status).await {
            Ok(cond) => conds.push(cond),
            Err(Step::Solr(e)) => return degraded(ctx, api, idx, status, e).await,
            Err(Step::Kube(e)) => return Err(e),
        }
    }
    let keep = keep_previous(idx, ctx);
    let next = match expire(idx, ctx, &solr, &n, &mut status, now, keep).await {
        Ok(next) => next,
        Err(e) => return degraded(ctx, api, idx, status, e).await,
    };
    write(ctx, api, idx, status, &conds).await?;
    Ok(match next {
        Some(wait) if wait < ctx.settings.requeue => Action::requeue(wait),
        _ => ctx.requeue(),
    })
}

/// Solr down or refusing: say so, keep what the status knew, back off.
async fn degraded(
    ctx: &Ctx,
    api: &Api<SolrIndex>,
    idx: &SolrIndex,
    status: SolrIndexStatus,
    e: mutu_solr::Error,
) -> Result<Action, Error> {
    let reason = if e.is_unreachable() {
        "SolrUnreachable"
    } else {
        "SolrRefused"
    };
    let ready = mutu_runtime::conditions::find(
        idx.status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or(&[]),
        mutu_api::CONDITION_READY,
    )
    .is_some_and(|c| c.status == "True");
    write(
        ctx,
        api,
        idx,
        status,
        &[
            Cond::new(
                mutu_api::CONDITION_READY,
                ready,
                if ready { "Ready" } else { reason },
                e.to_string(),
            ),
            Cond::new(DEGRADED, true, reason, e.to_string()),
        ],
    )
    .await?;
    Err(e.into())
}

/// What stopped a reindex step: Solr (reported as `Degraded`) or Kubernetes.
enum Step {
    Solr(mutu_solr::Error),
    Kube(Error),
}

impl From<mutu_solr::Error> for Step {
    fn from(e: mutu_solr::Error) -> Self {
        Step::Solr(e)
    }
}

impl From<Error> for Step {
    fn from(e: Error) -> Self {
        Step::Kube(e)
    }
}

/// How long the collection the alias leaves is kept.
fn keep_previous(idx: &SolrIndex, ctx: &Ctx) -> Duration {
    idx.spec
        .keep_previous_for
        .map(Duration::from)
        .unwrap_or(ctx.data.config.keep_previous)
}

/// The alias serves `target`, the spec asks for `n.collection` (built by now):
/// runs the site's reindex Job into it, and moves the alias once the Job
/// succeeded. Returns the `Reindexed` condition.
async fn advance(
    idx: &SolrIndex,
    ctx: &Ctx,
    solr: &mutu_solr::Client,
    n: &Names,
    target: &str,
    now: k8s_openapi::jiff::Timestamp,
    status: &mut SolrIndexStatus,
) -> Result<Cond<'static>, Step> {
    let ns = idx.namespace().unwrap_or_default();
    let uid = idx.uid().unwrap_or_default();
    let name = reindex::job_name(&n.site, &n.version);
    status.pending = Some(PendingCollection {
        collection: n.collection.clone(),
        configset_version: n.version.clone(),
        job: Some(name.clone()),
    });
    let jobs: Api<Job> = Api::namespaced(ctx.client().clone(), &ns);
    let found = ctx.data.jobs.get(&ObjectRef::new(&name).within(&ns));
    if let Some(job) = &found
        && job.labels().get(mutu_runtime::labels::OWNER_UID) != Some(&uid)
    {
        // Left by an earlier index of the same name: never taken for this one's.
        delete_job(ctx, &jobs, &name).await?;
        return Ok(Cond::new(
            REINDEXED,
            false,
            "Reindexing",
            format!("removing Job {name} of an earlier index before reindexing"),
        ));
    }
    let previous_reason = idx
        .status
        .as_ref()
        .and_then(|s| mutu_runtime::conditions::find(&s.conditions, REINDEXED))
        .map(|c| c.reason.clone());
    match found.map(|j| reindex::job_state(&j)) {
        None => match reindex_job(idx, ctx, n, reindex::Mode::Reindex).await? {
            Err(blocked) => Ok(Cond::new(
                REINDEXED,
                false,
                "ReindexBlocked",
                format!(
                    "collection {} is built, but the site cannot be reindexed into it: {blocked}",
                    n.collection
                ),
            )),
            Ok(job) => {
                match ctx.create_once(&jobs, &job).await {
                    Ok(Created::New) => {
                        ctx.event(
                            idx,
                            false,
                            "ReindexStarted",
                            format!("Job {name} reindexes the site into {}", n.collection),
                        )
                        .await;
                    }
                    Ok(Created::Existed) => {}
                    Err(source) => return Err(Error::Job { name, source }.into()),
                }
                Ok(reindexing(n, &name, target))
            }
        },
        Some(JobState::Running) => Ok(reindexing(n, &name, target)),
        Some(JobState::Failed(why)) => {
            let message = format!(
                "Job {name} failed ({why}); the alias stays on {target}. Read its log (kubectl -n {ns} logs job/{name}), fix the cause and delete the Job to run it again, or set the configset version back to {}",
                reindex::version_of(n, target).unwrap_or("the previous one")
            );
            if previous_reason.as_deref() != Some("ReindexFailed") {
                ctx.event(idx, true, "ReindexFailed", message.clone()).await;
            }
            Ok(Cond::new(REINDEXED, false, "ReindexFailed", message))
        }
        Some(JobState::Succeeded) => {
            solr.set_alias(&n.alias, &n.collection).await?;
            let delete_after = after(now, keep_previous(idx, ctx));
            status.previous.retain(|p| p.collection != target);
            status.previous.push(PreviousCollection {
                collection: target.to_string(),
                retired_at: Time(now),
                delete_after: Time(delete_after),
            });
            status.collection = Some(n.collection.clone());
            status.configset_version = Some(n.version.clone());
            status.documents = Some(solr.count(&n.collection).await?);
            status.pending = None;
            let message = format!(
                "Job {name} succeeded: alias {} moved from {target} to {}; {target} is kept until {delete_after}",
                n.alias, n.collection
            );
            ctx.event(idx, false, "AliasMoved", message.clone()).await;
            // What the site changed while the Job ran went to `target`: the
            // catch-up brings it into the new collection.
            Ok(catch_up(idx, ctx, n).await?)
        }
    }
}

fn reindexing(n: &Names, job: &str, target: &str) -> Cond<'static> {
    Cond::new(
        REINDEXED,
        false,
        "Reindexing",
        format!(
            "Job {job} reindexes the site into {}; the alias stays on {target} until it succeeds",
            n.collection
        ),
    )
}

/// The reindex (or catch-up) Job, built from the site's instances as they run now.
pub(crate) async fn reindex_job(
    idx: &SolrIndex,
    ctx: &Ctx,
    n: &Names,
    mode: reindex::Mode,
) -> Result<Result<Job, String>, Error> {
    let ns = idx.namespace().unwrap_or_default();
    let job = reindex::job_name(&n.site, &n.version);
    let kube_err = |source| Error::Job {
        name: job.clone(),
        source,
    };
    let sites: Api<PloneSite> = Api::namespaced(ctx.client().clone(), &ns);
    let Some(site) = sites.get_opt(&n.site).await.map_err(kube_err)? else {
        return Ok(Err(format!("no PloneSite {} in namespace {ns}", n.site)));
    };
    let products: Api<Product> = Api::all(ctx.client().clone());
    let Some(product) = products
        .get_opt(&site.spec.product)
        .await
        .map_err(kube_err)?
    else {
        return Ok(Err(format!("no Product {}", site.spec.product)));
    };
    let deployments: Api<Deployment> = Api::namespaced(ctx.client().clone(), &ns);
    let Some(deployment) = deployments.get_opt(&n.site).await.map_err(kube_err)? else {
        return Ok(Err(format!(
            "the site's instances (Deployment {}) do not exist yet",
            n.site
        )));
    };
    Ok(reindex::build(
        idx,
        n,
        &deployment,
        &site.spec.product,
        &product.spec.upgrade_command,
        mode,
    )
    .map_err(|b| b.to_string()))
}

pub(crate) async fn delete_job(ctx: &Ctx, jobs: &Api<Job>, name: &str) -> Result<(), Error> {
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    match jobs.delete(name, &params).await {
        Ok(_) => {
            ctx.metrics.write(ctx.name, "delete", "Job");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(source) => Err(Error::Job {
            name: name.to_string(),
            source,
        }),
    }
}

/// Once the alias serves the version asked, the reindex Jobs of other versions
/// are done with (the one of this version is kept for its log).
async fn drop_other_jobs(idx: &SolrIndex, ctx: &Ctx, keep: &[String]) -> Result<(), Error> {
    let ns = idx.namespace().unwrap_or_default();
    let uid = idx.uid().unwrap_or_default();
    let jobs: Api<Job> = Api::namespaced(ctx.client().clone(), &ns);
    for job in ctx.data.jobs.state() {
        let ours = job.namespace().as_deref() == Some(ns.as_str())
            && job.labels().get(mutu_runtime::labels::OWNER_UID) == Some(&uid);
        if ours && !keep.contains(&job.name_any()) && job.meta().deletion_timestamp.is_none() {
            delete_job(ctx, &jobs, &job.name_any()).await?;
        }
    }
    Ok(())
}

fn after(t: k8s_openapi::jiff::Timestamp, d: Duration) -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(k8s_openapi::jiff::Timestamp::MAX)
}

/// Deletes the collections the alias left once `keep` has passed since (the
/// index's setting now, so changing it applies to those already retired);
/// returns how long until the next one is due.
async fn expire(
    idx: &SolrIndex,
    ctx: &Ctx,
    solr: &mutu_solr::Client,
    n: &Names,
    status: &mut SolrIndexStatus,
    now: k8s_openapi::jiff::Timestamp,
    keep: Duration,
) -> Result<Option<Duration>, mutu_solr::Error> {
    for p in &mut status.previous {
        p.delete_after = Time(after(p.retired_at.0, keep));
    }
    let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut status.previous)
        .into_iter()
        .partition(|p| p.delete_after.0 <= now);
    status.previous = later;
    let serving = status.collection.clone().unwrap_or_default();
    let mut existing: Option<Vec<String>> = None;
    for p in due {
        if p.collection == serving || p.collection == n.collection {
            continue; // in use again: never deleted
        }
        let in_solr = match &existing {
            Some(list) => list,
            None => existing.insert(solr.collections().await?),
        };
        if in_solr.contains(&p.collection) {
            solr.delete_collection(&p.collection).await?;
            ctx.event(
                idx,
                false,
                "PreviousDeleted",
                format!(
                    "deleted collection {}, kept since {} (keepPreviousFor)",
                    p.collection, p.retired_at.0
                ),
            )
            .await;
        }
    }
    Ok(status
        .previous
        .iter()
        .map(|p| {
            let left = p.delete_after.0.duration_since(now);
            Duration::try_from(left).unwrap_or_default() + Duration::from_secs(1)
        })
        .min())
}

/// Makes Solr hold the index; returns its document count and the collection
/// its alias points to.
async fn ensure(
    idx: &SolrIndex,
    ctx: &Ctx,
    solr: &mutu_solr::Client,
    n: &Names,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<(i64, String), mutu_solr::Error> {
    if !solr.configsets().await?.contains(&n.solr_configset) {
        match solr.upload_configset(&n.solr_configset, files).await {
            Ok(()) => tracing::info!(configset = %n.solr_configset, "configset uploaded"),
            // Uploaded by another reconcile meanwhile: never overwritten.
            Err(e) if e.to_string().contains("already exists") => {}
            Err(e) => return Err(e),
        }
    }
    // The collection's name is fixed by the index and the version, so a retry
    // after a failure never makes a second one.
    let mut existing = solr.collections().await?;
    if !existing.contains(&n.collection) {
        match solr
            .create_collection(&n.collection, &n.solr_configset)
            .await
        {
            Ok(()) => {
                ctx.event(
                    idx,
                    false,
                    "CollectionCreated",
                    format!(
                        "created collection {} from {}",
                        n.collection, n.solr_configset
                    ),
                )
                .await;
            }
            Err(e) if e.to_string().contains("already exists") => {}
            Err(e) => return Err(e),
        }
        existing.push(n.collection.clone());
    }
    let aliases = solr.aliases().await?;
    let target = match aliases.get(&n.alias) {
        Some(t) => t.clone(),
        None => {
            solr.set_alias(&n.alias, &n.collection).await?;
            n.collection.clone()
        }
    };

    // The site's own user, allowed its collections (through its alias) only.
    ensure_user(idx, ctx, solr, n, &existing, &target).await?;
    let documents = solr.count(&target).await?;
    Ok((documents, target))
}

async fn ensure_user(
    idx: &SolrIndex,
    ctx: &Ctx,
    solr: &mutu_solr::Client,
    n: &Names,
    in_solr: &[String],
    target: &str,
) -> Result<(), mutu_solr::Error> {
    let ns = idx.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client().clone(), &ns);
    let existing = secrets.get_opt(&n.secret).await.ok().flatten();
    let password = existing.as_ref().and_then(|s| {
        s.data
            .as_ref()?
            .get("password")
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
    });
    let fresh = password.is_none();
    let password = match password {
        Some(p) => p,
        None => mutu_solr::new_password()?,
    };
    // The permissions list every collection of the index that exists, so the
    // user keeps access while the alias moves between versions.
    let mut collections: Vec<String> = in_solr
        .iter()
        .filter(|c| c.starts_with(&format!("{}_v", n.alias)))
        .cloned()
        .collect();
    if !collections.iter().any(|c| c == target) {
        collections.push(target.to_string());
    }
    collections.sort();
    let refs: Vec<&str> = collections.iter().map(String::as_str).collect();
    let desired = mutu_solr::site_permissions(&n.permission, &refs, &[ADMIN_ROLE, &n.alias]);
    let _one_editor = ctx.data.security.lock().await;
    let permissions = solr.permissions().await?;
    let has_any = permissions.iter().any(|p| {
        p.name
            .as_deref()
            .is_some_and(|name| mutu_solr::is_site_permission(&n.permission, name))
    });
    if fresh || !has_any {
        solr.set_user(&n.alias, &password).await?;
        solr.set_user_roles(&n.alias, &[&n.alias]).await?;
    }
    let commands = mutu_solr::plan_site_permissions(&permissions, &n.permission, &desired);
    if !commands.is_empty() {
        solr.edit_permissions(&format!("granting {} its rights", n.alias), &commands)
            .await?;
        tracing::info!(user = %n.alias, collections = ?collections, "site permissions set");
        settled(solr, &n.permission, &desired).await?;
    }
    if fresh {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(n.secret.clone()),
                namespace: Some(ns.clone()),
                labels: Some(mutu_runtime::labels::standard(
                    &n.site,
                    &idx.uid().unwrap_or_default(),
                    "solr-credentials",
                )),
                ..Default::default()
            },
            data: Some(BTreeMap::from([
                (
                    "username".to_string(),
                    ByteString(n.alias.clone().into_bytes()),
                ),
                ("password".to_string(), ByteString(password.into_bytes())),
                (
                    "alias".to_string(),
                    ByteString(n.alias.clone().into_bytes()),
                ),
            ])),
            ..Default::default()
        };
        match secrets.create(&PostParams::default(), &secret).await {
            Ok(_) => ctx.metrics.write(ctx.name, "create", "Secret"),
            Err(e) => {
                tracing::warn!(secret = %n.secret, error = %e, "cannot store the site's Solr credentials")
            }
        }
    }
    Ok(())
}

/// Waits until Solr lists the site permissions as `desired`: Solr answers
/// reads from a copy of security.json that a ZooKeeper watch refreshes, and
/// the next edit must be computed from the stored one (commands name
/// permissions by their place in the list).
async fn settled(
    solr: &mutu_solr::Client,
    name: &str,
    desired: &[mutu_solr::Permission],
) -> Result<(), mutu_solr::Error> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let current = solr.permissions().await?;
        if mutu_solr::plan_site_permissions(&current, name, desired).is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(mutu_solr::Error::Unexpected {
                what: format!("setting the permissions {name}"),
                message: "Solr does not list them 10 s after accepting them".into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Deletion: `Retain` keeps everything in Solr (and the credentials);
/// `Delete` removes the alias, every collection of the index, the user, its
/// permission and its Secret.
async fn cleanup(idx: &SolrIndex, ctx: &Ctx) -> Result<Action, Error> {
    if idx.spec.deletion_policy != DeletionPolicy::Delete {
        ctx.event(
            idx,
            false,
            "Retained",
            "deletionPolicy Retain: the collection, alias and user are kept in Solr".to_string(),
        )
        .await;
        return Ok(Action::await_change());
    }
    let n = names(idx);
    let Some(solr) = admin(ctx).await? else {
        return Err(Error::Solr(mutu_solr::Error::Unexpected {
            what: "deleting the index".into(),
            message: "no Solr admin credentials".into(),
        }));
    };
    if solr.aliases().await?.contains_key(&n.alias) {
        solr.delete_alias(&n.alias).await?;
    }
    for c in solr.collections().await? {
        if c.starts_with(&format!("{}_v", n.alias)) {
            solr.delete_collection(&c).await?;
        }
    }
    let one_editor = ctx.data.security.lock().await;
    let current = solr.permissions().await?;
    let commands = mutu_solr::plan_site_permissions(&current, &n.permission, &[]);
    solr.edit_permissions(
        &format!("deleting the permissions of {}", n.alias),
        &commands,
    )
    .await?;
    let _ = solr.delete_user(&n.alias).await;
    drop(one_editor);
    let ns = idx.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client().clone(), &ns);
    match secrets.delete(&n.secret, &Default::default()).await {
        Ok(_) => ctx.metrics.write(ctx.name, "delete", "Secret"),
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(source) => {
            return Err(Error::Secret {
                name: format!("{ns}/{}", n.secret),
                source,
            });
        }
    }
    ctx.event(
        idx,
        false,
        "Deleted",
        format!("deleted alias {}, its collections and user", n.alias),
    )
    .await;
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mutu_api::SolrIndexSpec;

    #[test]
    fn an_index_is_named_after_its_namespace_site_and_version() {
        let mut idx = SolrIndex::new("delib", SolrIndexSpec::default());
        idx.metadata.namespace = Some("tenant-mons".into());
        let n = names(&idx);
        assert_eq!(n.alias, "tenant-mons.delib");
        assert_eq!(n.collection, "tenant-mons.delib_v1");
        assert_eq!(n.solr_configset, "mutu-plone-v1");
        assert_eq!(n.secret, "delib-solr");
        idx.spec.configset_version = Some("2".into());
        idx.spec.site = Some("site".into());
        let n = names(&idx);
        assert_eq!(n.collection, "tenant-mons.site_v2");
        assert_eq!(n.secret, "site-solr");
    }

    #[test]
    fn solr_security_is_checked_again_only_when_due_or_for_another_solr() {
        let at = std::time::Instant::now();
        let base = "http://solr:8983/solr";
        let safe = SafetyCheck {
            base: base.into(),
            at,
            missing: Vec::new(),
        };
        assert!(safe.still_holds(base, at + Duration::from_secs(599)));
        assert!(!safe.still_holds(base, at + SAFE_FOR));
        assert!(!safe.still_holds("http://other:8983/solr", at));
        let unsafe_ = SafetyCheck {
            missing: vec!["authorization: no catch-all".into()],
            ..safe
        };
        assert!(unsafe_.still_holds(base, at + Duration::from_secs(29)));
        assert!(!unsafe_.still_holds(base, at + UNSAFE_FOR));
        let msg = unsafe_message(base, &unsafe_.missing);
        assert!(
            msg.contains("http://solr:8983/solr") && msg.contains("no catch-all"),
            "{msg}"
        );
    }
}
