//! One reconcile of a PloneSite: admission against the whole fleet (pure),
//! the release and placement decisions, the children (pure), apply what
//! changed, prune what is no longer wanted, then the status from what runs.
//! Deletion goes through a finalizer that honours `deletionPolicy`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::controller::Action;
use kube::runtime::finalizer;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use mutu_api::common::DeletionPolicy;
use mutu_api::site::PloneSiteStatus;
use mutu_api::{Certificate, MemberTenant, PloneSite, Product, ProductSpec, SolrIndex};
use mutu_runtime::conditions::{self, Desired as Cond};
use mutu_runtime::controller::finalizer_reason;
use mutu_runtime::index::LabelIndex;
use mutu_runtime::{ApplyError, Context, Reason};

use crate::build::{self, Plan, SITE_LABEL};
use mutu_model::admission::{self, Refusal};

/// Finalizer that lets mutu honour `deletionPolicy` before a site goes.
pub const FINALIZER: &str = "hosting.imio.be/site";
/// Condition recording that the Plone site exists in its database.
pub const SITE_CREATED: &str = "SiteCreated";
/// Condition saying the site's servers are all ready, whether or not the public
/// sees them (a site in maintenance is available but not Ready).
pub const CONDITION_AVAILABLE: &str = "Available";

fn storage_is_zeo(site: &PloneSite, product: &ProductSpec) -> bool {
    mutu_model::storage::of_site(site, product) == mutu_model::storage::Storage::Zeo
}

/// Operator-wide settings of the site controller.
#[derive(Clone, Debug)]
pub struct Config {
    /// Pool new sites are placed on.
    pub default_pool: String,
    /// CertificateIssuer of sites that name none.
    pub default_issuer: String,
    /// IngressClass of the sites' Ingresses.
    pub ingress_class: String,
    /// Base URL of the shared Solr, e.g. `http://solr.solr.svc:8983/solr`.
    pub solr_url: String,
    /// Host and port of the maintenance page server (`mutu maintenance-page`).
    pub maintenance_backend: (String, i32),
}

impl Default for Config {
    fn default() -> Self {
        Self {
            default_pool: mutu_api::POOL_FRONTEND.to_string(),
            default_issuer: "letsencrypt".to_string(),
            ingress_class: "nginx".to_string(),
            solr_url: "http://solr.solr.svc:8983/solr".to_string(),
            maintenance_backend: ("mutu-maintenance.mutu-system.svc".to_string(), 8080),
        }
    }
}

/// The caches and settings of the site controller.
pub struct Caches {
    pub config: Config,
    pub sites: Store<DeserializeGuard<PloneSite>>,
    pub tenants: Store<DeserializeGuard<MemberTenant>>,
    pub products: Store<DeserializeGuard<Product>>,
    pub pods: Store<Pod>,
    pub jobs: Store<Job>,
    pub configs: Store<PartialObjectMeta<ConfigMap>>,
    pub statefulsets: Store<PartialObjectMeta<StatefulSet>>,
    pub services: Store<PartialObjectMeta<Service>>,
    pub claims: Store<PartialObjectMeta<PersistentVolumeClaim>>,
    pub deployments: Store<PartialObjectMeta<Deployment>>,
    pub pdbs: Store<PartialObjectMeta<PodDisruptionBudget>>,
    pub ingresses: Store<PartialObjectMeta<Ingress>>,
    pub certificates: Store<PartialObjectMeta<Certificate>>,
    pub indexes: Store<PartialObjectMeta<SolrIndex>>,
    pub secrets: Store<PartialObjectMeta<Secret>>,
    /// The children of each site, by their owner-uid label (all kinds above).
    pub owned: LabelIndex,
    /// The pods of each site, by their site label.
    pub pods_of_site: LabelIndex,
}

impl Caches {
    /// Waits until every cache has its first full list (see the tenant controller).
    async fn ready(&self) -> bool {
        mutu_runtime::controller::caches_listed(async {
            let _ = self.sites.wait_until_ready().await;
            let _ = self.tenants.wait_until_ready().await;
            let _ = self.products.wait_until_ready().await;
            let _ = self.pods.wait_until_ready().await;
            let _ = self.jobs.wait_until_ready().await;
            let _ = self.configs.wait_until_ready().await;
            let _ = self.statefulsets.wait_until_ready().await;
            let _ = self.services.wait_until_ready().await;
            let _ = self.claims.wait_until_ready().await;
            let _ = self.deployments.wait_until_ready().await;
            let _ = self.pdbs.wait_until_ready().await;
            let _ = self.ingresses.wait_until_ready().await;
            let _ = self.certificates.wait_until_ready().await;
            let _ = self.indexes.wait_until_ready().await;
            let _ = self.secrets.wait_until_ready().await;
        })
        .await
    }

    fn catalog(&self) -> BTreeMap<String, ProductSpec> {
        self.products
            .state()
            .iter()
            .filter_map(|p| p.0.as_ref().ok())
            .map(|p| (p.name_any(), p.spec.clone()))
            .collect()
    }
}

/// Why a site reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("cannot write the PloneSite status: {0}")]
    Status(#[source] kube::Error),
    #[error("cannot build the site's children: {0}")]
    Build(#[source] serde_json::Error),
    #[error("cannot create the site's administrator Secret: {0}")]
    Admin(String),
    #[error("{0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
}

impl Reason for Error {
    fn reason(&self) -> &'static str {
        match self {
            Error::Apply(_) => "ApplyFailed",
            Error::Status(_) => "StatusFailed",
            Error::Build(_) => "BuildFailed",
            Error::Admin(_) => "AdminSecretFailed",
            Error::Finalizer(inner) => finalizer_reason(inner),
        }
    }
}

type Ctx = Context<Caches>;

pub async fn reconcile(site: Arc<PloneSite>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if !ctx.data.ready().await {
        return Ok(mutu_runtime::controller::not_listed_yet());
    }
    let ns = site.namespace().unwrap_or_default();
    let api: Api<PloneSite> = Api::namespaced(ctx.client().clone(), &ns);
    let (c, a) = (&ctx, &api);
    ctx.finalized(
        &api,
        FINALIZER,
        site,
        |site| async move { provision(&site, c, a).await },
        |site| async move { release(&site, c).await },
    )
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// The state of the site's upgrade Job towards `release`, if it exists.
enum JobState {
    Running,
    Succeeded,
    Failed(String),
}

fn job_state(jobs: &Store<Job>, ns: &str, name: &str) -> Option<JobState> {
    let job = jobs.get(&ObjectRef::new(name).within(ns))?;
    let status = job.status.clone().unwrap_or_default();
    let conds = status.conditions.unwrap_or_default();
    if conds
        .iter()
        .any(|c| c.type_ == "Complete" && c.status == "True")
    {
        Some(JobState::Succeeded)
    } else if let Some(failed) = conds
        .iter()
        .find(|c| c.type_ == "Failed" && c.status == "True")
    {
        Some(JobState::Failed(
            failed
                .message
                .clone()
                .unwrap_or_else(|| "the Job failed".to_string()),
        ))
    } else {
        Some(JobState::Running)
    }
}

/// Environment of the instances for collective.solr, pointing at the site's alias.
fn solr_env(config: &Config, ns: &str, site: &str) -> BTreeMap<String, String> {
    let url = config.solr_url.trim_end_matches('/');
    let without_scheme = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let (authority, base) = without_scheme
        .split_once('/')
        .unwrap_or((without_scheme, "solr"));
    let (host, port) = authority.split_once(':').unwrap_or((authority, "8983"));
    BTreeMap::from([
        ("COLLECTIVE_SOLR_HOST".to_string(), host.to_string()),
        ("COLLECTIVE_SOLR_PORT".to_string(), port.to_string()),
        (
            "COLLECTIVE_SOLR_BASE".to_string(),
            format!("/{base}/{}", alias_name(ns, site)),
        ),
        ("COLLECTIVE_SOLR_ACTIVE".to_string(), "true".to_string()),
    ])
}

/// The Solr alias a site's instances talk to.
pub fn alias_name(ns: &str, site: &str) -> String {
    mutu_model::names::solr_alias(ns, site)
}

async fn provision(site: &PloneSite, ctx: &Ctx, api: &Api<PloneSite>) -> Result<Action, Error> {
    let ns = site.namespace().unwrap_or_default();
    let name = site.name_any();
    let data = &ctx.data;
    let tenant = admission::tenant_name(&ns)
        .and_then(|t| data.tenants.get(&ObjectRef::new(t)))
        .and_then(|t| t.0.as_ref().ok().cloned());
    let catalog = data.catalog();
    let fleet = data.sites.state();
    let all: Vec<&PloneSite> = fleet.iter().filter_map(|s| s.0.as_ref().ok()).collect();
    let current = site.status.clone().unwrap_or_default();
    let refusals = admission::refusals(site, tenant.as_ref(), &catalog, &all);
    let admitted_before = current.release.is_some();
    if let Some(first) = refusals.first().filter(|_| !admitted_before) {
        let message = refusals
            .iter()
            .map(|r: &Refusal| r.message.clone())
            .collect::<Vec<_>>()
            .join("; ");
        let conds = [
            Cond::new(
                mutu_api::CONDITION_READY,
                false,
                first.reason,
                message.clone(),
            ),
            Cond::new(
                mutu_api::CONDITION_PROGRESSING,
                false,
                first.reason,
                "not admitted: nothing is served",
            ),
        ];
        let desired = PloneSiteStatus {
            observed_generation: site.meta().generation,
            ..current.clone()
        };
        if ctx
            .write_status(api, site, desired, &conds)
            .await
            .map_err(Error::Status)?
        {
            ctx.event(site, true, first.reason, message).await;
        }
        return Ok(ctx.requeue());
    }
    // Every change is admitted again: while spec.hostnames names a refused hostname, the site
    // keeps serving the ones it was admitted with (its children are built from those).
    let (hostnames, blocking) = admission::admitted_hostnames(site, &refusals);
    let held_back = (!blocking.is_empty()).then(|| {
        let message = blocking
            .iter()
            .map(|r| r.message.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        (
            blocking[0].reason,
            format!(
                "the change of spec.hostnames is refused: {message}. The site keeps serving {}",
                if hostnames.is_empty() {
                    "no hostname".to_string()
                } else {
                    hostnames.join(", ")
                }
            ),
        )
    });
    let admitted_site;
    let site = if hostnames == site.spec.hostnames {
        site
    } else {
        let mut copy = site.clone();
        copy.spec.hostnames = hostnames.clone();
        admitted_site = copy;
        &admitted_site
    };
    if current.hostnames != hostnames {
        // Recorded before anything serves them: this is what a later claim is weighed against.
        let desired = PloneSiteStatus {
            hostnames: hostnames.clone(),
            ..current.clone()
        };
        ctx.write_status(api, site, desired, &[])
            .await
            .map_err(Error::Status)?;
    }
    let (Some(tenant), Some(product)) = (tenant, catalog.get(&site.spec.product)) else {
        // Admitted earlier, but its tenant or product is gone now: keep
        // everything as it is and say so.
        let conds = [Cond::new(
            mutu_api::CONDITION_READY,
            false,
            "CatalogOrTenantMissing",
            "the site's MemberTenant or Product no longer exists; mutu leaves the site as it is",
        )];
        ctx.write_status(api, site, current.clone(), &conds)
            .await
            .map_err(Error::Status)?;
        return Ok(ctx.requeue());
    };

    // Where the site runs is mutu's decision (the model's placement rule).
    let annotation = |key: &str| {
        site.annotations()
            .get(key)
            .filter(|v| !v.is_empty())
            .cloned()
    };
    let pool = mutu_model::placement::pool_of(site, &data.config.default_pool);
    // A ReleaseRollout's release comes first, then the pin, then the Product's.
    let rollout_release = annotation(mutu_api::RELEASE_ANNOTATION);
    let wanted = rollout_release
        .clone()
        .or_else(|| site.spec.release.clone())
        .unwrap_or_else(|| product.release.clone());
    let mut status = PloneSiteStatus {
        observed_generation: site.meta().generation,
        url: site.spec.hostnames.first().map(|h| format!("https://{h}")),
        hostnames: hostnames.clone(),
        held_by: annotation(mutu_api::HELD_BY_ANNOTATION),
        pool: Some(pool.clone()),
        ..current.clone()
    };
    let mut upgrade_to = None;
    let mut upgrade_failure = None;
    let release = match current.release.clone() {
        None => wanted.clone(),
        Some(running) if running == wanted => running,
        // A rollout putting a site back on the release it came from (after restoring its
        // data from the backup taken before the upgrade): no upgrade Job.
        Some(running)
            if rollout_release.as_deref() == Some(wanted.as_str())
                && current.previous_release.as_deref() == Some(wanted.as_str()) =>
        {
            status.previous_release = Some(running);
            wanted.clone()
        }
        Some(running) if product.upgrade_command.is_empty() => {
            status.previous_release = Some(running);
            wanted.clone()
        }
        Some(running) => match job_state(&data.jobs, &ns, &build::upgrade_job_name(&name, &wanted))
        {
            Some(JobState::Succeeded) => {
                status.previous_release = Some(running);
                wanted.clone()
            }
            Some(JobState::Failed(message)) => {
                upgrade_to = Some(wanted.clone());
                upgrade_failure = Some(message);
                running
            }
            _ => {
                upgrade_to = Some(wanted.clone());
                running
            }
        },
    };
    status.release = Some(release.clone());
    // Once the Plone site exists (recorded in the SiteCreated condition) its
    // creation Job is not wanted any more: Job specs are immutable, and a
    // finished Job has nothing left to do.
    let needs_creation = product.engine == mutu_api::product::Engine::Plone
        && !product.site_creation_command.is_empty();
    let created = !needs_creation
        || conditions::is_true(&current.conditions, SITE_CREATED)
        || matches!(
            job_state(&data.jobs, &ns, &format!("{name}-create")),
            Some(JobState::Succeeded)
        );
    let solr = product.solr.as_ref().is_some_and(|s| s.enabled);
    // Someone works on the site's data (e.g. a Restore): its servers stop.
    let maintenance = annotation(mutu_api::MAINTENANCE_ANNOTATION);
    // The public sees the maintenance page (a plan at work, or any maintenance).
    let offline = annotation(mutu_api::OFFLINE_ANNOTATION).or_else(|| maintenance.clone());
    let plan = Plan {
        product: site.spec.product.clone(),
        release: release.clone(),
        upgrade_to: upgrade_to.clone(),
        pool,
        suspended: tenant.spec.suspended || maintenance.is_some(),
        issuer: site
            .spec
            .tls
            .as_ref()
            .and_then(|t| t.issuer.clone())
            .unwrap_or_else(|| data.config.default_issuer.clone()),
        ingress_class: data.config.ingress_class.clone(),
        solr_env: if solr {
            solr_env(&data.config, &ns, &name)
        } else {
            BTreeMap::new()
        },
        create_site: !created,
        data_volume: annotation(mutu_api::DATA_VOLUME_ANNOTATION)
            .or_else(|| live_data_claim(data, &ns, &name, storage_is_zeo(site, product))),
        offline: offline.is_some(),
        maintenance_backend: data.config.maintenance_backend.clone(),
    };
    let desired = build::build(site, product, &plan).map_err(Error::Build)?;
    apply_all(site, ctx, desired).await?;

    // Status from what runs.
    let pods: Vec<Arc<Pod>> = data
        .pods_of_site
        .names::<Pod>(Some(&ns), &name)
        .iter()
        .filter_map(|pod| data.pods.get(&ObjectRef::new(pod).within(&ns)))
        .filter(|p| p.labels().get(SITE_LABEL) == Some(&name))
        .collect();
    let instance_pods: Vec<&Arc<Pod>> = pods
        .iter()
        .filter(|p| p.labels().get(mutu_api::COMPONENT).map(String::as_str) == Some("instance"))
        .collect();
    let ready = instance_pods.iter().filter(|p| pod_ready(p)).count() as i32;
    let zeo_ready = !storage_is_zeo(site, product)
        || pods.iter().any(|p| {
            p.labels().get(mutu_api::COMPONENT).map(String::as_str) == Some("zeo") && pod_ready(p)
        });
    let mut nodes: Vec<String> = pods
        .iter()
        .filter(|p| {
            matches!(
                p.labels().get(mutu_api::COMPONENT).map(String::as_str),
                Some("instance" | "zeo")
            )
        })
        .filter_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
        .collect();
    nodes.sort();
    nodes.dedup();
    status.nodes = nodes;
    status.ready_replicas = Some(ready);
    let want = if tenant.spec.suspended {
        0
    } else {
        site.spec.replicas.unwrap_or(product.replicas).max(0)
    };
    let available =
        !tenant.spec.suspended && maintenance.is_none() && ready >= want && created && zeo_ready;
    let mut conds = vec![Cond::new(
        SITE_CREATED,
        created,
        if created { "Created" } else { "Creating" },
        if created {
            "the site exists in its database"
        } else {
            "the site-creation Job has not finished yet"
        },
    )];
    if tenant.spec.suspended {
        conds.push(Cond::new(mutu_api::CONDITION_READY, false, "Suspended", "the member is suspended: the site is scaled to zero and serves nothing; its data is kept"));
        conds.push(Cond::new(
            mutu_api::CONDITION_PROGRESSING,
            false,
            "Suspended",
            "nothing runs while the member is suspended",
        ));
    } else if let Some(who) = &maintenance {
        let msg =
            format!("in maintenance ({who}): the site's servers are stopped; its data is kept");
        conds.push(Cond::new(
            mutu_api::CONDITION_READY,
            false,
            "Maintenance",
            msg.clone(),
        ));
        conds.push(Cond::new(
            mutu_api::CONDITION_PROGRESSING,
            true,
            "Maintenance",
            msg,
        ));
    } else if let Some(who) = offline.as_ref().filter(|_| available) {
        let msg = format!(
            "{ready}/{want} instances ready on release {release}, but the public sees the maintenance page ({who})"
        );
        conds.push(Cond::new(
            mutu_api::CONDITION_READY,
            false,
            "Offline",
            msg.clone(),
        ));
        conds.push(Cond::new(
            mutu_api::CONDITION_PROGRESSING,
            true,
            "Offline",
            msg,
        ));
    } else if ready >= want && created && zeo_ready {
        conds.push(Cond::new(
            mutu_api::CONDITION_READY,
            true,
            "Serving",
            format!("{ready}/{want} instances ready on release {release}"),
        ));
        conds.push(Cond::new(
            mutu_api::CONDITION_PROGRESSING,
            upgrade_to.is_some() && upgrade_failure.is_none(),
            if upgrade_to.is_some() && upgrade_failure.is_none() {
                "Upgrading"
            } else {
                "Stable"
            },
            match (&upgrade_to, &upgrade_failure) {
                (Some(target), None) => format!(
                    "upgrade Job to release {target} is running; release {release} keeps serving"
                ),
                _ => format!("running release {release}"),
            },
        ));
    } else {
        let why = if !zeo_ready {
            "waiting for the ZEO server".to_string()
        } else if created {
            format!("{ready}/{want} instances ready")
        } else {
            "waiting for the site-creation Job".to_string()
        };
        conds.push(Cond::new(
            mutu_api::CONDITION_READY,
            false,
            "Starting",
            why.clone(),
        ));
        conds.push(Cond::new(
            mutu_api::CONDITION_PROGRESSING,
            true,
            "Starting",
            why,
        ));
    }
    conds.push(Cond::new(
        CONDITION_AVAILABLE,
        available,
        if available {
            "InstancesReady"
        } else {
            "NotAvailable"
        },
        if available {
            format!("{ready}/{want} instances ready on pool {}", plan.pool)
        } else {
            format!("{ready}/{want} instances ready")
        },
    ));
    match (&held_back, &upgrade_to, &upgrade_failure) {
        (Some((reason, message)), _, _) => {
            conds.push(Cond::new("Degraded", true, reason, message.clone()))
        }
        (None, Some(target), Some(message)) => conds.push(Cond::new(
            "Degraded",
            true,
            "UpgradeFailed",
            format!(
                "the upgrade to release {target} failed ({message}); release {release} keeps serving with its data untouched. Fix the release and set spec.release again, or set it back to {release}"
            ),
        )),
        _ => conds.push(Cond::new("Degraded", false, "AsExpected", "no failure")),
    }
    let was_degraded = conditions::is_true(&current.conditions, "Degraded");
    let degraded_reason = conditions::find(&current.conditions, "Degraded")
        .filter(|c| c.status == "True")
        .map(|c| c.reason.clone());
    ctx.write_status(api, site, status, &conds)
        .await
        .map_err(Error::Status)?;
    if let Some((reason, message)) = &held_back
        && degraded_reason.as_deref() != Some(*reason)
    {
        ctx.event(site, true, reason, message.clone()).await;
    }
    if let (None, Some(target), Some(message), false) =
        (&held_back, &upgrade_to, &upgrade_failure, was_degraded)
    {
        ctx.event(
            site,
            true,
            "UpgradeFailed",
            format!("upgrade to {target} failed: {message}; staying on {release}"),
        )
        .await;
    }
    Ok(ctx.requeue())
}

/// The claim a ZEO site's data lives on when no annotation says it: followed from its first
/// claim through the claims' `superseded-by` marks (a site re-created from YAML after a
/// migration finds its data so); `None` for the first claim itself.
fn live_data_claim(data: &Caches, ns: &str, site: &str, zeo: bool) -> Option<String> {
    if !zeo {
        return None;
    }
    let first = mutu_model::names::zeo_data_claim(site);
    let live = mutu_model::storage::live_claim(&first, |claim| {
        data.claims.get(&ObjectRef::new(claim).within(ns)).map(|c| {
            c.annotations()
                .get(mutu_api::SUPERSEDED_BY_ANNOTATION)
                .cloned()
        })
    });
    (live != first).then_some(live)
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Creates the site's administrator Secret with a new random password, unless
/// it exists. Deleting it is how a password is changed: a new one is made, and
/// the instances take it when they next start.
async fn ensure_admin(site: &PloneSite, ctx: &Ctx) -> Result<(), Error> {
    let ns = site.namespace().unwrap_or_default();
    let name = mutu_model::names::admin_secret(&site.name_any());
    if ctx
        .data
        .secrets
        .get(&ObjectRef::new(&name).within(&ns))
        .is_some()
    {
        return Ok(());
    }
    let password = new_password().map_err(|e| Error::Admin(e.to_string()))?;
    let secret = build::admin_secret(site, &password);
    let api: Api<Secret> = Api::namespaced(ctx.client().clone(), &ns);
    ctx.create_once(&api, &secret)
        .await
        .map(|_| ())
        .map_err(|e| Error::Admin(e.to_string()))
}

/// 24 random bytes from the operating system, URL-safe base64 (32 characters).
fn new_password() -> Result<String, getrandom::Error> {
    use base64::Engine as _;
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

async fn apply_all(site: &PloneSite, ctx: &Ctx, desired: build::Desired) -> Result<(), Error> {
    let a = &ctx.applier;
    let d = &ctx.data;
    let uid = site.uid().unwrap_or_default();
    macro_rules! keep {
        ($objs:expr) => {
            $objs
                .iter()
                .map(|o| (o.namespace(), o.name_any()))
                .collect::<BTreeSet<_>>()
        };
    }
    if desired.admin {
        ensure_admin(site, ctx).await?;
    }
    let configs: Vec<ConfigMap> = desired.config.into_iter().collect();
    let zeos: Vec<StatefulSet> = desired.zeo.into_iter().collect();
    let deployments: Vec<Deployment> = desired.deployment.into_iter().collect();
    let pdbs: Vec<PodDisruptionBudget> = desired.pdb.into_iter().collect();
    let ingresses: Vec<Ingress> = desired.ingress.into_iter().collect();
    let certificates: Vec<Certificate> = desired.certificate.into_iter().collect();
    let indexes: Vec<SolrIndex> = desired.solr_index.into_iter().collect();
    let (k_cfg, k_zeo, k_svc, k_dep, k_pdb, k_ing, k_job, k_idx) = (
        keep!(configs),
        keep!(zeos),
        keep!(desired.services),
        keep!(deployments),
        keep!(pdbs),
        keep!(ingresses),
        keep!(desired.jobs),
        keep!(indexes),
    );
    for o in configs {
        a.apply(&d.configs, o).await?;
    }
    for o in zeos {
        a.apply(&d.statefulsets, o).await?;
    }
    for o in desired.services {
        a.apply(&d.services, o).await?;
    }
    if let Some(o) = desired.data {
        a.apply(&d.claims, o).await?;
    }
    if let Some(o) = desired.zeo_data {
        a.apply(&d.claims, o).await?;
    }
    for o in deployments {
        a.apply(&d.deployments, o).await?;
    }
    for o in pdbs {
        a.apply(&d.pdbs, o).await?;
    }
    for o in certificates {
        a.apply(&d.certificates, o).await?;
    }
    for o in ingresses {
        a.apply(&d.ingresses, o).await?;
    }
    for o in indexes {
        a.apply(&d.indexes, o).await?;
    }
    for o in desired.jobs {
        a.apply(&d.jobs, o).await?;
    }
    let (o, ns) = (&d.owned, site.namespace());
    let ns = ns.as_deref();
    a.prune_indexed::<ConfigMap, _>(&d.configs, o, ns, &uid, &k_cfg)
        .await?;
    a.prune_indexed::<StatefulSet, _>(&d.statefulsets, o, ns, &uid, &k_zeo)
        .await?;
    a.prune_indexed::<Service, _>(&d.services, o, ns, &uid, &k_svc)
        .await?;
    a.prune_indexed::<Deployment, _>(&d.deployments, o, ns, &uid, &k_dep)
        .await?;
    a.prune_indexed::<PodDisruptionBudget, _>(&d.pdbs, o, ns, &uid, &k_pdb)
        .await?;
    a.prune_indexed::<Ingress, _>(&d.ingresses, o, ns, &uid, &k_ing)
        .await?;
    a.prune_indexed::<SolrIndex, _>(&d.indexes, o, ns, &uid, &k_idx)
        .await?;
    a.prune_indexed::<Job, _>(&d.jobs, o, ns, &uid, &k_job)
        .await?;
    Ok(())
}

/// Deletion: the workloads go with the site (owner references). `Retain` keeps
/// the data volumes and the certificate; `Delete` removes them too.
async fn release(site: &PloneSite, ctx: &Ctx) -> Result<Action, Error> {
    let uid = site.uid().unwrap_or_default();
    let ns = site.namespace();
    match site.spec.deletion_policy {
        DeletionPolicy::Retain => {
            ctx.event(
                site,
                false,
                "Retained",
                "deletionPolicy Retain: the site's volumes and certificate are kept".to_string(),
            )
            .await;
        }
        DeletionPolicy::Delete => {
            let owned = &ctx.data.owned;
            for claim in owned.names::<PersistentVolumeClaim>(ns.as_deref(), &uid) {
                ctx.applier
                    .delete::<PersistentVolumeClaim>(ns.as_deref(), &claim)
                    .await?;
            }
            for cert in owned.names::<Certificate>(ns.as_deref(), &uid) {
                ctx.applier
                    .delete::<Certificate>(ns.as_deref(), &cert)
                    .await?;
                // The certificate's Secret carries the Certificate's name
                // (and is not owned by it, so that Retain keeps it).
                ctx.applier
                    .delete::<k8s_openapi::api::core::v1::Secret>(ns.as_deref(), &cert)
                    .await?;
            }
        }
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::new_password;

    #[test]
    fn administrator_passwords_are_long_url_safe_and_never_repeat() {
        let (a, b) = (
            new_password().unwrap_or_default(),
            new_password().unwrap_or_default(),
        );
        assert_eq!(a.len(), 32, "{a}");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{a}"
        );
        assert_ne!(a, b);
    }
}
