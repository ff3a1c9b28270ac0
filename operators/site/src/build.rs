//! The children a PloneSite wants, as pure functions of the site, its product,
//! and the decisions the reconcile took (pool, release, suspension, upgrade).
//! No client here; unit-tested from YAML, and the serialized children of a set
//! of sites are compared with a recorded file (`build/testdata/children.json`).
//!
//! One function per child, grouped by what they serve: [`data`] the scripts, the
//! ZEO server and the volumes; [`instance`] the instances; [`public`] what the
//! visitors reach; [`search`] the Solr index; [`jobs`] the site's creation and
//! upgrade; [`pod`] what the children share.

mod data;
mod instance;
mod jobs;
mod pod;
mod public;
mod search;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use mutu_api::product::Engine;
use mutu_api::{Certificate, PloneSite, ProductSpec, SolrIndex};
use mutu_model::storage::{self, Storage};

pub use mutu_api::common::SITE_LABEL;
/// Where the scripts ConfigMap is mounted in the site's containers.
pub const SCRIPTS_DIR: &str = mutu_model::scripts::DIR;
/// Port of the ZEO server.
pub const ZEO_PORT: i32 = 8100;

/// What the reconcile decided, on top of the spec.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Product name (the catalog key).
    pub product: String,
    /// The release the instances run.
    pub release: String,
    /// A release to upgrade to (an upgrade Job runs first), if any.
    pub upgrade_to: Option<String>,
    /// Node pool of the site's pods.
    pub pool: String,
    /// The member is suspended: nothing runs.
    pub suspended: bool,
    /// CertificateIssuer of the site's certificate.
    pub issuer: String,
    /// IngressClass of the site's Ingress.
    pub ingress_class: String,
    /// Solr settings for the instances (`COLLECTIVE_SOLR_*`), when the site has an index.
    pub solr_env: BTreeMap<String, String>,
    /// The Plone site still has to be created (the creation Job is wanted).
    pub create_site: bool,
    /// Volume claim of the ZEO data, when a MigrationPlan placed it elsewhere than
    /// [`zeo_data_claim`].
    pub data_volume: Option<String>,
    /// The public sees the maintenance page (a plan or a restore at work).
    pub offline: bool,
    /// Host and port of the maintenance page server (`mutu maintenance-page`) that an offline
    /// site's Ingress sends its visitors to.
    pub maintenance_backend: (String, i32),
}

pub use data::{ADMIN_PASSWORD_KEY, ADMIN_USER, ADMIN_USER_KEY, admin_secret, zeo_conf};
pub use jobs::upgrade_job_name;
pub use mutu_model::names::{offline_service, zeo_data_claim};

/// Everything one site wants to exist.
#[derive(Clone, Debug, Default)]
pub struct Desired {
    pub config: Option<ConfigMap>,
    pub zeo: Option<StatefulSet>,
    pub services: Vec<Service>,
    pub data: Option<PersistentVolumeClaim>,
    /// The ZEO data volume, when the site's data is on its first volume.
    pub zeo_data: Option<PersistentVolumeClaim>,
    pub deployment: Option<Deployment>,
    pub pdb: Option<PodDisruptionBudget>,
    pub ingress: Option<Ingress>,
    pub certificate: Option<Certificate>,
    pub solr_index: Option<SolrIndex>,
    pub jobs: Vec<Job>,
    /// Whether the site has an administrator's Secret ([`admin_secret`]).
    pub admin: bool,
}

/// Builds every child of `site`. The children are typed values and building
/// them cannot fail; the `Result` is the callers' interface.
pub fn build(
    site: &PloneSite,
    product: &ProductSpec,
    plan: &Plan,
) -> Result<Desired, serde_json::Error> {
    let (mut zeo, mut zeo_data, mut volume) = (None, None, None);
    let mut services = Vec::new();
    let storage = storage::of_site(site, product);
    match storage {
        Storage::Zeo => {
            zeo = Some(data::zeo_server(site, product, plan));
            zeo_data = plan
                .data_volume
                .is_none()
                .then(|| data::zeo_claim(site, product));
            services.push(data::zeo_service(site));
        }
        Storage::Volume => volume = Some(data::generic_claim(site, product)),
        Storage::Rel | Storage::Nothing => {}
    }
    services.push(instance::instance_service(site, product));
    if plan.offline {
        services.push(public::offline_service(site, plan));
    }
    let several = instance::replicas(site, product, plan.suspended) > 1;
    Ok(Desired {
        // The scripts of the Jobs on its data (a generic product's volume
        // has its backups too).
        config: (product.engine == Engine::Plone || storage == Storage::Volume)
            .then(|| data::scripts_config(site)),
        zeo,
        services,
        deployment: Some(instance::instances(site, product, plan, volume.as_ref())),
        data: volume,
        zeo_data,
        pdb: several.then(|| instance::disruption_budget(site)),
        ingress: Some(public::ingress(site, plan)),
        certificate: Some(public::certificate(site, plan)),
        solr_index: search::wanted(site, product).then(|| search::solr_index(site, product)),
        jobs: jobs::jobs(site, product, plan),
        admin: product.engine == Engine::Plone,
    })
}

#[cfg(test)]
mod golden;

#[cfg(test)]
mod tests;
