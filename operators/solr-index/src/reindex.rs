//! The reindex Job of a site: the site's own instance, as its Deployment runs
//! it (same release image, same database connection, same Solr user), with one
//! difference: collective.solr writes into the new collection instead of the
//! alias, and the container runs mutu's reindex script once instead of serving.
//! Everything here is pure and unit-tested.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, PodTemplateSpec};
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use mutu_api::SolrIndex;

use crate::reconcile::Names;

/// Component label of reindex Jobs and their pods.
pub const COMPONENT: &str = "reindex";
/// The script the site operator ships in the site's scripts ConfigMap.
pub const SCRIPT: &str = mutu_model::scripts::REINDEX_SOLR.name;
/// Name of the scripts volume in the site's pods.
const SCRIPTS_VOLUME: &str = "mutu";

/// Name of the Job that reindexes `site` into the collection of configset `version`.
pub fn job_name(site: &str, version: &str) -> String {
    let name = format!("{site}-reindex-v{version}");
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    name.trim_end_matches('-').to_string()
}

/// Name of the Job that catches the collection of configset `version` up,
/// through the alias, once the alias serves it (see [`Mode::CatchUp`]).
pub fn catch_up_job_name(site: &str, version: &str) -> String {
    const SUFFIX: &str = "-catch-up";
    let base: String = job_name(site, version)
        .chars()
        .take(63 - SUFFIX.len())
        .collect();
    format!("{}{SUFFIX}", base.trim_end_matches('-'))
}

/// Name of the Job that catches the index up for the value `token` of the
/// annotation `hosting.imio.be/catch-up` (see [`mutu_api::CATCH_UP_ANNOTATION`]).
pub fn requested_catch_up_job_name(site: &str, token: &str) -> String {
    let token: String = token
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(8)
        .collect();
    let suffix = format!("-catch-up-{token}");
    let site: String = job_name(site, "")
        .trim_end_matches("-reindex-v")
        .chars()
        .take(63 - suffix.len())
        .collect();
    format!("{}{suffix}", site.trim_end_matches('-'))
}

/// What a Job of the index does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Clears the new collection and reindexes the whole site into it, while
    /// the alias still serves the previous one.
    Reindex,
    /// Once the alias serves the new collection: brings it in line with the
    /// site's catalog through the alias (`reindex_solr.py --catch-up`), for
    /// the changes the site made while the reindex ran (they went to the
    /// previous collection, where the alias pointed then).
    CatchUp,
}

pub use mutu_runtime::jobs::{JobState, state as job_state};

/// What is missing to build a reindex Job from the site as it runs.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Blocked {
    #[error(
        "product {0} has no upgradeCommand: mutu runs the reindex script with it (e.g. [zconsole, run, /app/etc/zope.conf]); set it in the Product"
    )]
    Command(String),
    #[error("the site's Deployment {0} has no container")]
    Container(String),
    #[error(
        "the site's instances have no COLLECTIVE_SOLR_BASE: the site does not use this index (is spec.solr.enabled false?)"
    )]
    SolrBase,
    #[error(
        "the site's instances do not mount mutu's scripts (volume {SCRIPTS_VOLUME}): is the site a Plone site?"
    )]
    Scripts,
}

/// The Job of `idx` doing `mode` for `n.collection`, from the site's instance
/// Deployment `deployment` and its product's `command` (the prefix that runs a
/// script in the site, e.g. `zconsole run zope.conf`).
pub fn build(
    idx: &SolrIndex,
    n: &Names,
    deployment: &Deployment,
    product: &str,
    command: &[String],
    mode: Mode,
) -> Result<Job, Blocked> {
    if command.is_empty() {
        return Err(Blocked::Command(product.to_string()));
    }
    let template = deployment.spec.template.clone();
    let pod = template.spec.unwrap_or_default();
    let Some(instance) = pod.containers.first() else {
        return Err(Blocked::Container(deployment.name_any()));
    };
    let scripts = instance
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == SCRIPTS_VOLUME)
        .map(|m| m.mount_path.trim_end_matches('/').to_string())
        .ok_or(Blocked::Scripts)?;

    // The same settings as the instances, but a reindex writes into the new
    // collection, not the alias the site serves from; a catch-up writes
    // through the alias, which serves the new collection by then.
    let mut env: Vec<EnvVar> = instance.env.clone().unwrap_or_default();
    let base = env
        .iter_mut()
        .find(|e| e.name == "COLLECTIVE_SOLR_BASE")
        .ok_or(Blocked::SolrBase)?;
    if mode == Mode::Reindex {
        let path = base.value.clone().unwrap_or_default();
        let parent = path
            .trim_end_matches('/')
            .rsplit_once('/')
            .map(|(p, _)| p.to_string())
            .unwrap_or_default();
        base.value = Some(format!("{parent}/{}", n.collection));
    }
    let site_id = env
        .iter()
        .find(|e| e.name == "SITE_ID")
        .and_then(|e| e.value.clone())
        .unwrap_or_else(|| "Plone".to_string());

    let mut full = command.to_vec();
    full.push(format!("{scripts}/{SCRIPT}"));
    full.push(site_id);
    if mode == Mode::CatchUp {
        full.push("--catch-up".to_string());
    }
    let name = match mode {
        Mode::Reindex => job_name(&n.site, &n.version),
        Mode::CatchUp => catch_up_job_name(&n.site, &n.version),
    };

    let uid = idx.uid().unwrap_or_default();
    let mut pod_labels = mutu_runtime::labels::standard(&n.site, &uid, COMPONENT);
    let template_labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    for key in [mutu_api::PRODUCT_LABEL, mutu_api::POOL_LABEL] {
        if let Some(v) = template_labels.get(key) {
            pod_labels.insert(key.to_string(), v.clone());
        }
    }
    let container = Container {
        name: COMPONENT.to_string(),
        image: instance.image.clone(),
        image_pull_policy: instance.image_pull_policy.clone(),
        command: Some(full),
        env: Some(env),
        env_from: instance.env_from.clone(),
        volume_mounts: instance.volume_mounts.clone(),
        resources: instance.resources.clone(),
        security_context: instance.security_context.clone(),
        ..Default::default()
    };
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: idx.namespace(),
            labels: Some(mutu_runtime::labels::standard(&n.site, &uid, COMPONENT)),
            annotations: Some(BTreeMap::from([(
                "hosting.imio.be/collection".to_string(),
                n.collection.clone(),
            )])),
            owner_references: idx.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(1),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".to_string()),
                    containers: vec![container],
                    volumes: pod.volumes.clone(),
                    affinity: pod.affinity.clone(),
                    node_selector: pod.node_selector.clone(),
                    tolerations: pod.tolerations.clone(),
                    service_account_name: pod.service_account_name.clone(),
                    security_context: pod.security_context.clone(),
                    image_pull_secrets: pod.image_pull_secrets.clone(),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    })
}

/// The version a collection of the index was built from (`<alias>_v<version>`).
pub fn version_of<'a>(n: &Names, collection: &'a str) -> Option<&'a str> {
    collection
        .strip_prefix(&n.alias)
        .and_then(|rest| rest.strip_prefix("_v"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mutu_api::SolrIndexSpec;
    use serde_json::json;

    fn deployment() -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "delib", "namespace": "tenant-mons"},
            "spec": {
                "selector": {"matchLabels": {"hosting.imio.be/site": "delib"}},
                "template": {
                    "metadata": {"labels": {
                        "hosting.imio.be/site": "delib",
                        "app.kubernetes.io/component": "instance",
                        mutu_api::POOL_LABEL: "frontend",
                        mutu_api::PRODUCT_LABEL: "delib",
                    }},
                    "spec": {
                        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": mutu_api::POOL_LABEL, "operator": "In", "values": ["frontend"]}]}]}}},
                        "containers": [{
                            "name": "instance",
                            "image": "registry.imio.be/imio/delib:4.2.18",
                            "ports": [{"containerPort": 8080}],
                            "readinessProbe": {"httpGet": {"path": "/ok", "port": 8080}},
                            "env": [
                                {"name": "SITE_ID", "value": "Plone"},
                                {"name": "ZEO_ADDRESS", "value": "delib-zeo:8100"},
                                {"name": "COLLECTIVE_SOLR_HOST", "value": "solr"},
                                {"name": "COLLECTIVE_SOLR_BASE", "value": "/solr/tenant-mons.delib"},
                                {"name": "COLLECTIVE_SOLR_LOGIN", "valueFrom": {"secretKeyRef": {"name": "delib-solr", "key": "username"}}},
                            ],
                            "volumeMounts": [{"name": "mutu", "mountPath": "/opt/mutu"}],
                        }],
                        "volumes": [{"name": "mutu", "configMap": {"name": "delib-mutu"}}],
                    },
                },
            },
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn index() -> SolrIndex {
        let mut idx = SolrIndex::new(
            "delib",
            SolrIndexSpec {
                configset_version: Some("2".into()),
                ..Default::default()
            },
        );
        idx.metadata.namespace = Some("tenant-mons".into());
        idx.metadata.uid = Some("uid-1".into());
        idx
    }

    fn command() -> Vec<String> {
        ["zconsole", "run", "/app/etc/zope.conf"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn the_job_runs_the_site_as_it_runs_writing_into_the_new_collection() {
        let idx = index();
        let n = crate::reconcile::names(&idx);
        let job = build(&idx, &n, &deployment(), "delib", &command(), Mode::Reindex)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(job.name_any(), "delib-reindex-v2");
        assert_eq!(
            job.owner_references()[0].kind,
            "SolrIndex",
            "the Job belongs to the index"
        );
        let pod = job
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.clone())
            .unwrap_or_default();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        assert!(pod.affinity.is_some(), "runs on the site's pool");
        let c = &pod.containers[0];
        assert_eq!(
            c.image.as_deref(),
            Some("registry.imio.be/imio/delib:4.2.18")
        );
        assert_eq!(
            c.command.clone().unwrap_or_default(),
            [
                "zconsole",
                "run",
                "/app/etc/zope.conf",
                "/opt/mutu/reindex_solr.py",
                "Plone"
            ]
        );
        assert!(c.readiness_probe.is_none() && c.ports.is_none());
        let env = c.env.clone().unwrap_or_default();
        let get = |k: &str| env.iter().find(|e| e.name == k).cloned();
        assert_eq!(
            get("COLLECTIVE_SOLR_BASE").and_then(|e| e.value).as_deref(),
            Some("/solr/tenant-mons.delib_v2")
        );
        assert!(get("ZEO_ADDRESS").is_some() && get("COLLECTIVE_SOLR_LOGIN").is_some());
        // Its pods are not the site's instances: the site must not count them.
        let labels = job
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.clone())
            .and_then(|m| m.labels)
            .unwrap_or_default();
        assert_eq!(labels["app.kubernetes.io/component"], "reindex");
        assert!(!labels.contains_key("hosting.imio.be/site"));
        assert_eq!(labels[mutu_api::POOL_LABEL], "frontend");
    }

    #[test]
    fn the_catch_up_job_writes_through_the_alias() {
        let idx = index();
        let n = crate::reconcile::names(&idx);
        let job = build(&idx, &n, &deployment(), "delib", &command(), Mode::CatchUp)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(job.name_any(), "delib-reindex-v2-catch-up");
        let c = &job
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.clone())
            .unwrap_or_default()
            .containers[0];
        let command = c.command.clone().unwrap_or_default();
        assert_eq!(
            command[3..],
            ["/opt/mutu/reindex_solr.py", "Plone", "--catch-up"]
        );
        let env = c.env.clone().unwrap_or_default();
        assert_eq!(
            env.iter()
                .find(|e| e.name == "COLLECTIVE_SOLR_BASE")
                .and_then(|e| e.value.as_deref()),
            Some("/solr/tenant-mons.delib"),
            "the alias, as the instances have it"
        );
    }

    #[test]
    fn a_job_that_cannot_be_built_says_what_to_change() {
        let idx = index();
        let n = crate::reconcile::names(&idx);
        assert_eq!(
            build(&idx, &n, &deployment(), "delib", &[], Mode::Reindex).err(),
            Some(Blocked::Command("delib".into()))
        );
        let mut d = deployment();
        if let Some(c) = d
            .spec
            .template
            .spec
            .as_mut()
            .and_then(|p| p.containers.first_mut())
        {
            c.env
                .get_or_insert_default()
                .retain(|e| e.name != "COLLECTIVE_SOLR_BASE");
        }
        assert_eq!(
            build(&idx, &n, &d, "delib", &command(), Mode::CatchUp).err(),
            Some(Blocked::SolrBase)
        );
    }

    #[test]
    fn job_names_are_bounded_and_valid() {
        assert_eq!(job_name("delib", "2"), "delib-reindex-v2");
        assert_eq!(job_name("delib", "2.1_x"), "delib-reindex-v2-1-x");
        let long = job_name(&"s".repeat(70), "1");
        assert!(long.len() <= 63 && !long.ends_with('-'));
        assert_eq!(
            requested_catch_up_job_name("delib", "1f0c9a7e-2b4d-4e61-9c1a-0d3e5f7a9b2c"),
            "delib-catch-up-1f0c9a7e"
        );
        let long = requested_catch_up_job_name(&"s".repeat(70), "ABC-def");
        assert!(long.len() <= 63 && long.ends_with("-catch-up-abcdef"));
        let long = catch_up_job_name(&"s".repeat(70), "1");
        assert!(long.len() <= 63 && long.ends_with("-catch-up") && !long.contains("--"));
    }

    #[test]
    fn the_version_is_read_from_the_collection_name() {
        let idx = index();
        let n = crate::reconcile::names(&idx);
        assert_eq!(version_of(&n, "tenant-mons.delib_v1"), Some("1"));
        assert_eq!(version_of(&n, "tenant-mons.other_v1"), None);
    }
}
