//! The Jobs of a Plone site: the creation of the Plone site in its language,
//! and, on a release change, the upgrade that runs the new release's image
//! before the instances move to it. No Job runs for a suspended member.

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use kube::ResourceExt;
use mutu_api::product::Engine;
use mutu_api::{PloneSite, ProductSpec};
use mutu_model::{names, scripts};

use super::Plan;
use super::pod::{self, meta};

/// The Jobs the site wants now: its creation, then its upgrade.
pub(super) fn jobs(site: &PloneSite, product: &ProductSpec, plan: &Plan) -> Vec<Job> {
    if product.engine != Engine::Plone || plan.suspended {
        return vec![];
    }
    [
        create_job(site, product, plan),
        upgrade_job(site, product, plan),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The creation of the Plone site, while it has to be created and the product
/// says how: the `Plone` site, titled, in the site's language.
pub(super) fn create_job(site: &PloneSite, product: &ProductSpec, plan: &Plan) -> Option<Job> {
    if !plan.create_site || product.site_creation_command.is_empty() {
        return None;
    }
    let mut command = product.site_creation_command.clone();
    command.push(scripts::CREATE_SITE.path());
    // French unless the site says otherwise: the cooperative serves Wallonia.
    let language = site.spec.language.unwrap_or_default();
    command.extend([
        "Plone".to_string(),
        site_title(site),
        language.code().to_string(),
    ]);
    let name = names::create_job(&site.name_any());
    // The creation may replace the Zope root's user folder (Plone's own
    // then): the script makes the administrator there afterwards. A site
    // with an index gets Solr's settings: the script installs and turns on
    // collective.solr, so that the site indexes into its alias and searches it.
    let mut env = pod::admin_env(site);
    env.extend(plan.solr_env.iter().map(|(k, v)| pod::env(k, v.clone())));
    let work = Work {
        name: &name,
        component: "create-site",
        release: &plan.release,
        command,
        env,
    };
    Some(job(site, product, work, plan))
}

/// The upgrade of the Plone site to the plan's target release, in that release's image.
pub(super) fn upgrade_job(site: &PloneSite, product: &ProductSpec, plan: &Plan) -> Option<Job> {
    let target = plan.upgrade_to.as_ref()?;
    if product.upgrade_command.is_empty() {
        return None;
    }
    let mut command = product.upgrade_command.clone();
    command.push(scripts::UPGRADE_SITE.path());
    command.push("Plone".to_string());
    let name = upgrade_job_name(&site.name_any(), target);
    let work = Work {
        name: &name,
        component: "upgrade",
        release: target,
        command,
        env: Vec::new(),
    };
    Some(job(site, product, work, plan))
}

/// Name of the Job that upgrades `site` to `release`.
pub fn upgrade_job_name(site: &str, release: &str) -> String {
    mutu_model::names::upgrade_job(site, release)
}

/// The title of the Plone site: its annotation, else its first hostname, else its name.
fn site_title(site: &PloneSite) -> String {
    site.annotations()
        .get("hosting.imio.be/title")
        .cloned()
        .unwrap_or_else(|| {
            site.spec
                .hostnames
                .first()
                .cloned()
                .unwrap_or_else(|| site.name_any())
        })
}

/// What a Job of the site does: its name and component, the release whose
/// image runs `command`, and variables beside the site's storage.
struct Work<'a> {
    name: &'a str,
    component: &'a str,
    release: &'a str,
    command: Vec<String>,
    env: Vec<k8s_openapi::api::core::v1::EnvVar>,
}

/// The Job of `work`, run once on the site's pool, with the site's storage
/// and the scripts.
fn job(site: &PloneSite, product: &ProductSpec, work: Work<'_>, plan: &Plan) -> Job {
    let Work {
        name,
        component,
        release,
        command,
        env,
    } = work;
    let mut all_env = pod::storage_env(site, product);
    all_env.extend(env);
    Job {
        metadata: meta(site, name, component, true),
        spec: Some(JobSpec {
            backoff_limit: Some(1),
            template: PodTemplateSpec {
                metadata: pod::pod_meta(site, component, plan),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".to_string()),
                    affinity: pod::affinity(&plan.pool),
                    security_context: pod::security_context(),
                    containers: vec![Container {
                        name: component.to_string(),
                        image: pod::image(product, release),
                        command: Some(command),
                        env: Some(all_env),
                        volume_mounts: Some(vec![pod::scripts_mount()]),
                        ..Default::default()
                    }],
                    volumes: Some(vec![pod::scripts_volume(site)]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}
