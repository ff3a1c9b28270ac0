//! Where a site's data lives: the scripts ConfigMap, the ZEO server and its
//! Service, and the data volume claims (the ZEO server's, or a generic
//! product's own).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, ContainerPort, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSpec,
    PodTemplateSpec, Probe, ResourceRequirements, Secret, Service, ServicePort, ServiceSpec,
    TCPSocketAction, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use mutu_api::product::ZEO_REQUESTS;
use mutu_api::{PloneSite, ProductSpec};
use mutu_model::{names, scripts, storage};

use super::pod::{self, meta};
use super::{Plan, SCRIPTS_DIR, ZEO_PORT, zeo_data_claim};

/// Component label of the ZEO server and its Service.
const ZEO: &str = "zeo";

/// Component label of the administrator's Secret.
const ADMIN: &str = "admin";

/// The user name of a Plone site's administrator.
pub const ADMIN_USER: &str = "admin";

/// Keys of the administrator's Secret ([`names::admin_secret`]).
pub const ADMIN_USER_KEY: &str = "username";
pub const ADMIN_PASSWORD_KEY: &str = "password";

/// The Secret with the administrator's credentials of a Plone site: a Manager
/// at the Zope root, which the instances make or update when they start.
/// Created once with `password`, then left as it is: the operator never
/// changes a password someone may be using.
pub fn admin_secret(site: &PloneSite, password: &str) -> Secret {
    let name = names::admin_secret(&site.name_any());
    Secret {
        metadata: meta(site, &name, ADMIN, true),
        type_: Some("kubernetes.io/basic-auth".to_string()),
        string_data: Some(BTreeMap::from([
            (ADMIN_USER_KEY.to_string(), ADMIN_USER.to_string()),
            (ADMIN_PASSWORD_KEY.to_string(), password.to_string()),
        ])),
        ..Default::default()
    }
}

/// The ZEO server's configuration: filestorage and blobs on the data volume.
pub fn zeo_conf() -> String {
    format!(
        "<zeo>\n  address 0.0.0.0:{ZEO_PORT}\n</zeo>\n<filestorage 1>\n  path /data/filestorage/Data.fs\n  blob-dir /data/blobstorage\n</filestorage>\n"
    )
}

/// The scripts mutu runs in a site's containers and Jobs, and the ZEO server's configuration.
pub(super) fn scripts_config(site: &PloneSite) -> ConfigMap {
    let mut data: BTreeMap<String, String> = scripts::ALL
        .iter()
        .map(|s| (s.name.to_string(), s.text.to_string()))
        .collect();
    data.insert("zeo.conf".to_string(), zeo_conf());
    ConfigMap {
        metadata: meta(
            site,
            &names::scripts_config(&site.name_any()),
            "scripts",
            true,
        ),
        data: Some(data),
        ..Default::default()
    }
}

/// The claim of the ZEO data: the plan's volume when a MigrationPlan placed
/// the data elsewhere, else the site's first volume.
fn zeo_volume(site: &PloneSite, plan: &Plan) -> String {
    plan.data_volume
        .clone()
        .unwrap_or_else(|| zeo_data_claim(&site.name_any()))
}

/// The ZEO data volume of a site whose data is on its first volume. Not owned:
/// it outlives the site unless deletionPolicy says Delete. A MigrationPlan may
/// place the data on another volume; mutu then keeps the first one as it is.
pub(super) fn zeo_claim(site: &PloneSite, product: &ProductSpec) -> PersistentVolumeClaim {
    data_claim(site, product, &zeo_data_claim(&site.name_any()))
}

/// The volume of a generic product's data. Not owned: the data outlives the
/// site unless deletionPolicy says Delete.
pub(super) fn generic_claim(site: &PloneSite, product: &ProductSpec) -> PersistentVolumeClaim {
    data_claim(site, product, &names::generic_data_claim(&site.name_any()))
}

/// A volume claim `name` of the site's storage size and class, not owned by the site.
fn data_claim(site: &PloneSite, product: &ProductSpec, name: &str) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: meta(site, name, "data", false),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_string()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(storage::size(site, product)),
                )])),
                ..Default::default()
            }),
            storage_class_name: storage::class(site, product),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The ZEO server: one replica (none when suspended) on the pool, serving the data volume.
pub(super) fn zeo_server(site: &PloneSite, product: &ProductSpec, plan: &Plan) -> StatefulSet {
    let zeo_name = names::zeo_server(&site.name_any());
    let container = Container {
        name: ZEO.to_string(),
        image: pod::image(product, &plan.release),
        command: Some(vec![
            "runzeo".to_string(),
            "-C".to_string(),
            format!("{SCRIPTS_DIR}/zeo.conf"),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some(ZEO.to_string()),
            container_port: ZEO_PORT,
            ..Default::default()
        }]),
        readiness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(ZEO_PORT),
                ..Default::default()
            }),
            ..Default::default()
        }),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity(ZEO_REQUESTS.0.to_string())),
                ("memory".to_string(), Quantity(ZEO_REQUESTS.1.to_string())),
            ])),
            ..Default::default()
        }),
        volume_mounts: Some(vec![pod::data_mount(), pod::scripts_mount()]),
        ..Default::default()
    };
    StatefulSet {
        metadata: meta(site, &zeo_name, ZEO, true),
        spec: StatefulSetSpec {
            replicas: Some(if plan.suspended { 0 } else { 1 }),
            service_name: Some(zeo_name),
            selector: pod::selector(site, ZEO),
            template: PodTemplateSpec {
                metadata: pod::pod_meta(site, ZEO, plan),
                spec: Some(PodSpec {
                    affinity: pod::affinity(&plan.pool),
                    topology_spread_constraints: pod::spread(site, ZEO, pod::STATEFULSET_REVISION),
                    security_context: pod::security_context(),
                    containers: vec![container],
                    volumes: Some(vec![
                        pod::data_volume(&zeo_volume(site, plan)),
                        pod::scripts_volume(site),
                    ]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The ZEO server's Service, that the instances and the Jobs connect to.
pub(super) fn zeo_service(site: &PloneSite) -> Service {
    Service {
        metadata: meta(site, &names::zeo_server(&site.name_any()), ZEO, true),
        spec: Some(ServiceSpec {
            selector: Some(pod::match_labels(site, ZEO)),
            ports: Some(vec![ServicePort {
                name: Some(ZEO.to_string()),
                port: ZEO_PORT,
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}
