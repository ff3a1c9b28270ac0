//! What the children of a site share: their metadata and labels, the placement
//! of the site's pods on its pool, the volumes they mount, and the variables
//! that tell Plone where its data is.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, ConfigMapVolumeSource, EnvVar, EnvVarSource, NodeAffinity, NodeSelector,
    NodeSelectorRequirement, NodeSelectorTerm, PersistentVolumeClaimVolumeSource, PodAffinity,
    PodAffinityTerm, PodSecurityContext, SecretKeySelector, TopologySpreadConstraint, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::{Resource, ResourceExt};
use mutu_api::product::StorageMode;
use mutu_api::{PloneSite, ProductSpec};
use mutu_model::{names, storage};
use mutu_runtime::labels;

use super::{Plan, SCRIPTS_DIR, SITE_LABEL, ZEO_PORT};

/// Name of the volume (and its mount) of the scripts ConfigMap.
const SCRIPTS_VOLUME: &str = "mutu";
/// Name of the data volume (and its mount).
const DATA_VOLUME: &str = "data";

/// Metadata of a child of `site`: labels of the site and `component`, and the
/// site as owner when `owned` (what must outlive the site is not owned).
pub(super) fn meta(site: &PloneSite, name: &str, component: &str, owned: bool) -> ObjectMeta {
    let uid = site.uid().unwrap_or_default();
    let mut l = labels::standard(&site.name_any(), &uid, component);
    l.insert(SITE_LABEL.to_string(), site.name_any());
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: site.namespace(),
        labels: Some(l),
        owner_references: owned.then(|| site.controller_owner_ref(&()).into_iter().collect()),
        ..Default::default()
    }
}

/// Metadata of the pods of `component`: the site's, its product's and its pool's labels.
pub(super) fn pod_meta(site: &PloneSite, component: &str, plan: &Plan) -> Option<ObjectMeta> {
    let labels = BTreeMap::from([
        (
            labels::MANAGED_BY.to_string(),
            labels::MANAGED_BY_VALUE.to_string(),
        ),
        (labels::INSTANCE.to_string(), site.name_any()),
        (labels::COMPONENT.to_string(), component.to_string()),
        (SITE_LABEL.to_string(), site.name_any()),
        (mutu_api::PRODUCT_LABEL.to_string(), plan.product.clone()),
        (mutu_api::POOL_LABEL.to_string(), plan.pool.clone()),
    ]);
    Some(ObjectMeta {
        labels: Some(labels),
        ..Default::default()
    })
}

/// The labels that tell the pods of `component` of `site`.
pub(super) fn match_labels(site: &PloneSite, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (SITE_LABEL.to_string(), site.name_any()),
        (labels::COMPONENT.to_string(), component.to_string()),
    ])
}

/// The pods of `component` of `site`.
pub(super) fn selector(site: &PloneSite, component: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(match_labels(site, component)),
        ..Default::default()
    }
}

/// Pods of the site run only on nodes of its pool.
pub(super) fn affinity(pool: &str) -> Option<Affinity> {
    let term = NodeSelectorTerm {
        match_expressions: Some(vec![NodeSelectorRequirement {
            key: mutu_api::POOL_LABEL.to_string(),
            operator: "In".to_string(),
            values: Some(vec![pool.to_string()]),
        }]),
        ..Default::default()
    };
    Some(Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![term],
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The node label a site's replicas are spread over.
const HOSTNAME: &str = "kubernetes.io/hostname";
/// The label naming the revision of a Deployment's pods (their ReplicaSet's template).
pub(super) const DEPLOYMENT_REVISION: &str = "pod-template-hash";
/// The label naming the revision of a StatefulSet's pods.
pub(super) const STATEFULSET_REVISION: &str = "controller-revision-hash";

/// Replicas of one site run on different nodes of its pool.
///
/// Only pods of the same revision count (`revision`, the label the workload
/// controller gives its pods' revision): during a rolling update the new pod
/// is not pushed off the node of the old one it replaces, which would leave
/// it nowhere to go when a volume ties it to that node or when every node of
/// the pool already has a replica.
///
/// The domains are the nodes the pods may run on: those of the pool
/// (`nodeAffinityPolicy: Honor`), and not those whose taints they do not
/// tolerate (`nodeTaintsPolicy: Honor`), such as a node being drained
/// (`node.kubernetes.io/unschedulable`); with the taints ignored, the empty
/// drained node would hold the minimum at 0 and its evicted replica could go
/// to no node that already has one.
pub(super) fn spread(
    site: &PloneSite,
    component: &str,
    revision: &str,
) -> Option<Vec<TopologySpreadConstraint>> {
    Some(vec![TopologySpreadConstraint {
        max_skew: 1,
        topology_key: HOSTNAME.to_string(),
        when_unsatisfiable: "DoNotSchedule".to_string(),
        label_selector: Some(selector(site, component)),
        match_label_keys: Some(vec![revision.to_string()]),
        node_affinity_policy: Some("Honor".to_string()),
        node_taints_policy: Some("Honor".to_string()),
        ..Default::default()
    }])
}

/// The pods of `component` of `site` run on the node of one of them: they
/// share a volume that only one node can mount. The first one goes wherever
/// its volume lets it (a pod that matches its own affinity term may start
/// alone).
pub(super) fn colocated(site: &PloneSite, component: &str, pool: &str) -> Option<Affinity> {
    Some(Affinity {
        pod_affinity: Some(PodAffinity {
            required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                label_selector: Some(selector(site, component)),
                topology_key: HOSTNAME.to_string(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..affinity(pool).unwrap_or_default()
    })
}

/// The group of the files the site's containers write on their volumes.
///
/// The images run as a non-root user (Plone's as uid 1000): a volume as the
/// storage provisions it belongs to root, so the pods ask for `fsGroup`, and
/// the kubelet gives the volume to this group (group-writable, set-gid) and
/// adds the group to the containers' processes, whatever their uid. Only
/// when the volume's top directory is not already the group's
/// (`OnRootMismatch`): a ZODB's blob directory holds millions of files, which
/// a recursive change at every start would take minutes over. The Jobs that
/// copy a site's pod (backup, restore, pack, reindex) copy this too.
pub(super) const FS_GROUP: i64 = 1000;

/// The security context of the site's pods: [`FS_GROUP`].
pub(super) fn security_context() -> Option<PodSecurityContext> {
    Some(PodSecurityContext {
        fs_group: Some(FS_GROUP),
        fs_group_change_policy: Some("OnRootMismatch".to_string()),
        ..Default::default()
    })
}

/// The product's image at `release`.
pub(super) fn image(product: &ProductSpec, release: &str) -> Option<String> {
    Some(names::release_image(&product.image, release))
}

/// The volume of the scripts ConfigMap.
pub(super) fn scripts_volume(site: &PloneSite) -> Volume {
    Volume {
        name: SCRIPTS_VOLUME.to_string(),
        config_map: Some(ConfigMapVolumeSource {
            name: names::scripts_config(&site.name_any()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The scripts, read-only at [`SCRIPTS_DIR`].
pub(super) fn scripts_mount() -> VolumeMount {
    VolumeMount {
        name: SCRIPTS_VOLUME.to_string(),
        mount_path: SCRIPTS_DIR.to_string(),
        read_only: Some(true),
        ..Default::default()
    }
}

/// The data volume, on the claim `claim`.
pub(super) fn data_volume(claim: &str) -> Volume {
    Volume {
        name: DATA_VOLUME.to_string(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: claim.to_string(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The data, at `/data`.
pub(super) fn data_mount() -> VolumeMount {
    VolumeMount {
        name: DATA_VOLUME.to_string(),
        mount_path: "/data".to_string(),
        ..Default::default()
    }
}

/// The variable `name` set to `value`.
pub(super) fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.into()),
        ..Default::default()
    }
}

/// The variable `name` read from the key `key` of the Secret `secret`.
pub(super) fn secret_env(name: &str, secret: String, key: &str, optional: Option<bool>) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret,
                key: key.to_string(),
                optional,
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The Plone site's id, and where its ZODB is: the site's ZEO server, or the
/// RelStorage connection of its Secret.
/// The administrator's variables, from the site's Secret (required: nothing
/// that sets up the administrator starts without it).
pub(super) fn admin_env(site: &PloneSite) -> Vec<EnvVar> {
    let secret = names::admin_secret(&site.name_any());
    [
        ("PLONE_ADMIN_USER", super::data::ADMIN_USER_KEY),
        ("PLONE_ADMIN_PASSWORD", super::data::ADMIN_PASSWORD_KEY),
    ]
    .into_iter()
    .map(|(var, key)| secret_env(var, secret.clone(), key, None))
    .collect()
}

pub(super) fn storage_env(site: &PloneSite, product: &ProductSpec) -> Vec<EnvVar> {
    let mut env = vec![self::env("SITE_ID", "Plone")];
    match storage::mode(site, product) {
        Some(StorageMode::Zeo) => env.push(self::env(
            "ZEO_ADDRESS",
            format!("{}:{ZEO_PORT}", names::zeo_server(&site.name_any())),
        )),
        Some(StorageMode::Relstorage) => env.push(secret_env(
            "RELSTORAGE_DSN",
            storage::relstorage_secret(site),
            "dsn",
            None,
        )),
        None => {}
    }
    env
}
