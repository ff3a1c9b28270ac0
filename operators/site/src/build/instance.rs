//! The site's instances: their Deployment, spread over the pool's nodes, the
//! Service in front of them, and the disruption budget that keeps one of them
//! serving while nodes are drained.

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, HTTPGetAction, PersistentVolumeClaim, PodSpec,
    PodTemplateSpec, Probe, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use mutu_api::product::{Engine, InstanceResources};
use mutu_api::{PloneSite, ProductSpec};
use mutu_model::names;

use super::Plan;
use super::pod::{self, meta};

/// Component label of the instances, their Service and their budget.
const INSTANCE: &str = "instance";

/// How many instances run: the site's count, else the product's; none when suspended.
pub(super) fn replicas(site: &PloneSite, product: &ProductSpec, suspended: bool) -> i32 {
    if suspended {
        0
    } else {
        site.spec.replicas.unwrap_or(product.replicas).max(0)
    }
}

/// The instances' variables: the site and its storage, then Solr's settings
/// and the site's own Solr user when the site has an index.
fn env(site: &PloneSite, product: &ProductSpec, plan: &Plan) -> Vec<EnvVar> {
    let mut env = pod::storage_env(site, product);
    if product.engine == Engine::Plone {
        // The administrator the instance makes or updates at its start.
        env.extend(pod::admin_env(site));
    }
    env.extend(plan.solr_env.iter().map(|(k, v)| pod::env(k, v.clone())));
    if !plan.solr_env.is_empty() {
        // The site's own Solr user, written by the SolrIndex operator. Required:
        // an instance started before that Secret exists would talk to Solr
        // without a user for its whole life, and Solr refuses every write of
        // the site then. Kubelet starts the container once the Secret is there.
        for (var, key) in [
            ("COLLECTIVE_SOLR_LOGIN", "username"),
            ("COLLECTIVE_SOLR_PASSWORD", "password"),
        ] {
            let secret = names::solr_secret(&site.name_any());
            env.push(pod::secret_env(var, secret, key, None));
        }
    }
    env
}

/// A GET of the product's health path every `period` seconds.
fn health_probe(product: &ProductSpec, period: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(product.health_path.clone()),
            port: IntOrString::Int(product.port),
            ..Default::default()
        }),
        period_seconds: Some(period),
        ..Default::default()
    }
}

/// The instance container, and the pod's volumes: the scripts for Plone, and
/// the generic product's data volume `data` when it has one.
fn container(
    site: &PloneSite,
    product: &ProductSpec,
    plan: &Plan,
    data: Option<&PersistentVolumeClaim>,
) -> (Container, Vec<k8s_openapi::api::core::v1::Volume>) {
    let (mut volumes, mut mounts) = (vec![], vec![]);
    if product.engine == Engine::Plone {
        volumes.push(pod::scripts_volume(site));
        mounts.push(pod::scripts_mount());
    }
    if let Some(data) = data {
        volumes.push(pod::data_volume(&data.name_any()));
        mounts.push(pod::data_mount());
    }
    let container = Container {
        name: INSTANCE.to_string(),
        image: pod::image(product, &plan.release),
        ports: Some(vec![ContainerPort {
            name: Some("http".to_string()),
            container_port: product.port,
            ..Default::default()
        }]),
        env: Some(env(site, product, plan)),
        readiness_probe: Some(health_probe(product, 10)),
        liveness_probe: Some(Probe {
            failure_threshold: Some(6),
            ..health_probe(product, 30)
        }),
        resources: Some(
            product
                .resources
                .as_ref()
                .map(InstanceResources::to_requirements)
                .unwrap_or_default(),
        ),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    (container, volumes)
}

/// Whether a pod mounting `claim` can only run on the node its volume is
/// attached to (ReadWriteOnce, ReadWriteOncePod).
fn single_node(claim: &PersistentVolumeClaim) -> bool {
    let modes = claim
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.clone())
        .unwrap_or_default();
    !modes
        .iter()
        .any(|m| m == "ReadWriteMany" || m == "ReadOnlyMany")
}

/// How the instances move to a new template.
///
/// Without a volume: one new pod at a time, none stopped before its successor
/// is ready (`maxSurge: 1`, `maxUnavailable: 0`), so the site never stops.
///
/// With a volume only one node can mount (a generic product's `data` claim,
/// ReadWriteOnce): `Recreate`, the old pods gone before the new ones start. A
/// surge pod would need the old pod's node: the scheduler knows that only of
/// a local volume; a network volume still attached to the old node leaves a
/// surge pod elsewhere waiting for it forever, while `maxUnavailable: 0`
/// keeps the old pod; and a ReadWriteOncePod claim refuses a second pod even
/// on the same node. `maxSurge: 0, maxUnavailable: 1` would not wait for the
/// old pod to be gone, so two processes could write the same data at once.
/// Such a site stops for the time of the restart: one volume, one writer.
fn strategy(data: Option<&PersistentVolumeClaim>) -> DeploymentStrategy {
    if data.is_some_and(single_node) {
        return DeploymentStrategy {
            type_: Some("Recreate".to_string()),
            rolling_update: None,
        };
    }
    DeploymentStrategy {
        type_: Some("RollingUpdate".to_string()),
        rolling_update: Some(RollingUpdateDeployment {
            max_unavailable: Some(IntOrString::Int(0)),
            max_surge: Some(IntOrString::Int(1)),
        }),
    }
}

/// The instances of the site's release on its pool, rolled out by
/// [`strategy`]: spread over the pool's nodes, or, sharing a volume only one
/// node can mount, together on the node of that volume.
pub(super) fn instances(
    site: &PloneSite,
    product: &ProductSpec,
    plan: &Plan,
    data: Option<&PersistentVolumeClaim>,
) -> Deployment {
    let (container, volumes) = container(site, product, plan, data);
    let (affinity, spread) = if data.is_some_and(single_node) {
        (pod::colocated(site, INSTANCE, &plan.pool), None)
    } else {
        (
            pod::affinity(&plan.pool),
            pod::spread(site, INSTANCE, pod::DEPLOYMENT_REVISION),
        )
    };
    Deployment {
        metadata: meta(site, &site.name_any(), INSTANCE, true),
        spec: DeploymentSpec {
            replicas: Some(replicas(site, product, plan.suspended)),
            selector: pod::selector(site, INSTANCE),
            strategy: Some(strategy(data)),
            template: PodTemplateSpec {
                metadata: pod::pod_meta(site, INSTANCE, plan),
                spec: Some(PodSpec {
                    affinity,
                    topology_spread_constraints: spread,
                    security_context: pod::security_context(),
                    containers: vec![container],
                    volumes: Some(volumes),
                    ..Default::default()
                }),
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The instances' Service: port 80 to the product's port.
pub(super) fn instance_service(site: &PloneSite, product: &ProductSpec) -> Service {
    Service {
        metadata: meta(site, &site.name_any(), INSTANCE, true),
        spec: Some(ServiceSpec {
            selector: Some(pod::match_labels(site, INSTANCE)),
            ports: Some(vec![ServicePort {
                name: Some("http".to_string()),
                port: 80,
                target_port: Some(IntOrString::Int(product.port)),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// At least one instance stays while nodes are drained (for sites of several instances).
pub(super) fn disruption_budget(site: &PloneSite) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(site, &site.name_any(), INSTANCE, true),
        spec: Some(PodDisruptionBudgetSpec {
            min_available: Some(IntOrString::Int(1)),
            selector: Some(pod::selector(site, INSTANCE)),
            ..Default::default()
        }),
        ..Default::default()
    }
}
