//! The Jobs of backups and restores, built from the site's ZEO server as it
//! runs (its release image, its scripts, its data volume). Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMapVolumeSource, Container, EnvVar, EnvVarSource, NodeAffinity, NodeSelector,
    NodeSelectorRequirement, NodeSelectorTerm, PersistentVolumeClaimVolumeSource, PodAffinity,
    PodAffinityTerm, PodSpec, PodTemplateSpec, SecretKeySelector, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use kube::ResourceExt;
use kube::api::ObjectMeta;

/// Component labels of the Jobs.
pub const BACKUP: &str = "backup";
pub const RESTORE: &str = "restore";
/// The Job that deletes the data a restore set aside, once kept long enough.
pub const FORGET: &str = "forget";
/// The script the site operator ships in the site's scripts ConfigMap.
pub const SCRIPT: &str = mutu_model::scripts::ZODB_BACKUP.name;
pub use mutu_api::common::SITE_LABEL;
/// Label naming the policy whose cap a backup Job counts against.
pub const POLICY_LABEL: &str = "hosting.imio.be/backup-policy";
/// Where the member's backup volume is mounted, and the site's data.
pub const BACKUPS_DIR: &str = "/backups";
pub const DATA_DIR: &str = "/data";

/// Name of a Job for the run `name` (a Backup's or Restore's): the name itself
/// when it fits, else cut with a hash of the whole name.
pub fn job_name(prefix: &str, name: &str) -> String {
    mutu_model::names::bounded(prefix, name)
}

/// The labels of a run's Job and its pods: mutu's, the site's, the policy's.
fn job_labels(spec: &Spec<'_>) -> BTreeMap<String, String> {
    let mut labels = mutu_runtime::labels::standard(spec.site, &spec.owner_uid, spec.component);
    labels.insert(SITE_LABEL.to_string(), spec.site.to_string());
    if let Some(p) = &spec.policy {
        labels.insert(POLICY_LABEL.to_string(), p.clone());
    }
    labels
}

/// The member's backup volume, as the Jobs mount it.
fn backups_volume(spec: &Spec<'_>) -> Volume {
    Volume {
        name: "backups".into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: spec.backups_claim.to_string(),
            read_only: None,
        }),
        ..Default::default()
    }
}

/// What a backup or restore Job does.
pub struct Spec<'a> {
    pub component: &'static str,
    pub name: String,
    pub namespace: String,
    pub site: &'a str,
    pub owner: OwnerReference,
    pub owner_uid: String,
    /// Arguments of the script after its path, e.g. `backup --data /data ...`.
    pub args: Vec<String>,
    /// The member's backup volume claim.
    pub backups_claim: &'a str,
    pub policy: Option<String>,
    /// Whether the Job may write the site's data (a restore).
    pub writes_data: bool,
    /// Restore into this volume claim instead of the site's (a MigrationPlan's new volume).
    pub data_claim: Option<String>,
    /// Run on this node pool instead of the site's (where the new volume is).
    pub pool: Option<String>,
}

/// Why the Job cannot be built from the site as it runs.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Blocked {
    #[error("the site's ZEO server {0} has no container")]
    Container(String),
    #[error("the site's ZEO server {0} mounts no data volume claim")]
    Data(String),
    #[error("the site's ZEO server does not mount mutu's scripts")]
    Scripts,
}

/// The Job for `spec`, from the site's ZEO StatefulSet `zeo`.
pub fn build(spec: &Spec<'_>, zeo: &StatefulSet) -> Result<Job, Blocked> {
    let template = zeo.spec.template.clone();
    let pod = template.spec.unwrap_or_default();
    let Some(server) = pod.containers.first() else {
        return Err(Blocked::Container(zeo.name_any()));
    };
    let scripts_mount = server
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == "mutu")
        .cloned()
        .ok_or(Blocked::Scripts)?;
    let scripts_volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "mutu")
        .cloned()
        .ok_or(Blocked::Scripts)?;
    // The ZEO server's data volume, wherever a MigrationPlan placed it.
    let data_claim = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "data")
        .and_then(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.clone())
        .ok_or_else(|| Blocked::Data(zeo.name_any()))?;
    let data_claim = spec.data_claim.clone().unwrap_or(data_claim);

    let labels = job_labels(spec);
    let mut command = vec![
        "python".to_string(),
        format!(
            "{}/{SCRIPT}",
            scripts_mount.mount_path.trim_end_matches('/')
        ),
    ];
    command.extend(spec.args.iter().cloned());
    let container = Container {
        name: spec.component.to_string(),
        image: server.image.clone(),
        image_pull_policy: server.image_pull_policy.clone(),
        command: Some(command),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "data".into(),
                mount_path: DATA_DIR.into(),
                read_only: Some(!spec.writes_data),
                ..Default::default()
            },
            VolumeMount {
                name: "backups".into(),
                mount_path: BACKUPS_DIR.into(),
                ..Default::default()
            },
            scripts_mount,
        ]),
        resources: server.resources.clone(),
        security_context: server.security_context.clone(),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Default::default()
    };
    // A ReadWriteOnce data volume is mounted where the ZEO server runs (a
    // backup), or where it ran (a restore, with the server stopped).
    // A stopped server (a site in maintenance, e.g. a migration's last
    // backup) has no pod to run beside: the volume is free to mount.
    let stopped = zeo.spec.replicas == Some(0);
    let affinity = if let Some(pool) = &spec.pool {
        Some(pool_affinity(pool))
    } else if spec.writes_data || stopped {
        pod.affinity.clone()
    } else {
        Some(Affinity {
            pod_affinity: Some(beside(spec.site, "zeo")),
            ..pod.affinity.clone().unwrap_or_default()
        })
    };
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(spec.name.clone()),
            namespace: Some(spec.namespace.clone()),
            labels: Some(labels.clone()),
            owner_references: Some(vec![spec.owner.clone()]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(1),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    containers: vec![container],
                    volumes: Some(vec![
                        Volume {
                            name: "data".into(),
                            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                                claim_name: data_claim,
                                read_only: Some(!spec.writes_data),
                            }),
                            ..Default::default()
                        },
                        backups_volume(spec),
                        scripts_volume,
                    ]),
                    affinity,
                    node_selector: pod.node_selector.clone(),
                    tolerations: pod.tolerations.clone(),
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

/// The script of RelStorage sites' backups (a PostgreSQL dump).
pub const PG_SCRIPT: &str = mutu_model::scripts::PG_BACKUP.name;

/// The Job that runs `sh SCRIPT ARGS` (a script of the site's scripts
/// ConfigMap) in `image`, with the member's backup volume, `env`, and, when
/// `data` names a claim, that volume at [`DATA_DIR`] (written only by a
/// restore).
fn script_job(
    spec: &Spec<'_>,
    image: &str,
    script: mutu_model::scripts::Script,
    env: Vec<EnvVar>,
    data: Option<&str>,
) -> Job {
    let labels = job_labels(spec);
    // A backup of a volume runs beside the instances that mount it; a
    // restore (instances stopped) or a migration's where its pool says.
    let affinity = match (&spec.pool, data) {
        (Some(pool), _) => Some(pool_affinity(pool)),
        (None, Some(_)) if !spec.writes_data => Some(Affinity {
            pod_affinity: Some(beside(spec.site, "instance")),
            ..Default::default()
        }),
        _ => None,
    };
    let mut command = vec!["sh".to_string(), script.path()];
    command.extend(spec.args.iter().cloned());
    let mut mounts = vec![
        VolumeMount {
            name: "backups".into(),
            mount_path: BACKUPS_DIR.into(),
            ..Default::default()
        },
        VolumeMount {
            name: "mutu".into(),
            mount_path: mutu_model::scripts::DIR.into(),
            read_only: Some(true),
            ..Default::default()
        },
    ];
    let mut volumes = vec![
        backups_volume(spec),
        Volume {
            name: "mutu".to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name: mutu_model::names::scripts_config(spec.site),
                ..Default::default()
            }),
            ..Default::default()
        },
    ];
    if let Some(claim) = data {
        mounts.push(VolumeMount {
            name: "data".into(),
            mount_path: DATA_DIR.into(),
            read_only: Some(!spec.writes_data),
            ..Default::default()
        });
        volumes.push(Volume {
            name: "data".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: spec.data_claim.clone().unwrap_or_else(|| claim.to_string()),
                read_only: Some(!spec.writes_data),
            }),
            ..Default::default()
        });
    }
    Job {
        metadata: ObjectMeta {
            name: Some(spec.name.clone()),
            namespace: Some(spec.namespace.clone()),
            labels: Some(labels.clone()),
            owner_references: Some(vec![spec.owner.clone()]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(1),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    containers: vec![Container {
                        name: spec.component.to_string(),
                        image: Some(image.to_string()),
                        command: Some(command),
                        env: (!env.is_empty()).then_some(env),
                        volume_mounts: Some(mounts),
                        termination_message_policy: Some("FallbackToLogsOnError".into()),
                        ..Default::default()
                    }],
                    volumes: Some(volumes),
                    affinity,
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// Runs a pod on a node of `pool` (where a MigrationPlan's new volume is).
fn pool_affinity(pool: &str) -> Affinity {
    Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(vec![NodeSelectorRequirement {
                        key: mutu_api::POOL_LABEL.to_string(),
                        operator: "In".to_string(),
                        values: Some(vec![pool.to_string()]),
                    }]),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Runs a pod on the node of the site's `component` pods: a ReadWriteOnce
/// volume is mounted where the server that uses it runs.
fn beside(site: &str, component: &str) -> PodAffinity {
    PodAffinity {
        required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
            label_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([
                    (SITE_LABEL.to_string(), site.to_string()),
                    (mutu_api::COMPONENT.to_string(), component.to_string()),
                ])),
                ..Default::default()
            }),
            topology_key: "kubernetes.io/hostname".into(),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

/// The Job of `spec` on a RelStorage site: `pg_backup.sh` in a PostgreSQL
/// client image, with the DSN from the site's Secret `dsn_secret`.
pub fn pg_job(spec: &Spec<'_>, image: &str, dsn_secret: &str) -> Job {
    let env = vec![EnvVar {
        name: "RELSTORAGE_DSN".to_string(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: dsn_secret.to_string(),
                key: "dsn".to_string(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }];
    script_job(spec, image, mutu_model::scripts::PG_BACKUP, env, None)
}

/// The Job of `spec` on a generic product's site: `volume_backup.sh` in a
/// small image (a shell, tar and gzip), as root so that owners and modes come
/// back, with the site's data volume `claim`. The volume's node runs it.
pub fn volume_job(spec: &Spec<'_>, image: &str, claim: &str) -> Job {
    script_job(
        spec,
        image,
        mutu_model::scripts::VOLUME_BACKUP,
        Vec::new(),
        Some(claim),
    )
}

/// Component label of pack Jobs.
pub const PACK: &str = "pack";
/// The ZEO server's port (the site operator's).
pub const ZEO_PORT: i32 = 8100;

/// The command of a pack Job: ZEO's own `zeopack`, against the site's ZEO
/// server, keeping `keep_days` days of history.
pub fn pack_command(site: &str, keep_days: i32) -> Vec<String> {
    vec![
        "zeopack".to_string(),
        "-d".to_string(),
        keep_days.max(0).to_string(),
        format!("{}:{ZEO_PORT}", mutu_model::names::zeo_server(site)),
    ]
}

/// The weekly pack Job of `site` (named `name`), owned by its policy, in the
/// image of the site's ZEO server; finished pack Jobs go after a week.
pub fn pack_job(
    name: &str,
    namespace: &str,
    site: &str,
    owner: OwnerReference,
    keep_days: i32,
    zeo: &StatefulSet,
) -> Result<Job, Blocked> {
    let template = zeo.spec.template.clone();
    let pod = template.spec.unwrap_or_default();
    let Some(server) = pod.containers.first() else {
        return Err(Blocked::Container(zeo.name_any()));
    };
    let mut labels = mutu_runtime::labels::standard(site, &owner.uid, PACK);
    labels.insert(SITE_LABEL.to_string(), site.to_string());
    Ok(Job {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(labels.clone()),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(1),
            ttl_seconds_after_finished: Some(7 * 24 * 3600),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    containers: vec![Container {
                        name: PACK.to_string(),
                        image: server.image.clone(),
                        image_pull_policy: server.image_pull_policy.clone(),
                        command: Some(pack_command(site, keep_days)),
                        security_context: server.security_context.clone(),
                        ..Default::default()
                    }],
                    affinity: pod.affinity.clone(),
                    node_selector: pod.node_selector.clone(),
                    tolerations: pod.tolerations.clone(),
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

pub use mutu_runtime::jobs::{JobState, state as job_state};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn zeo() -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "delib-zeo", "namespace": "tenant-mons"},
            "spec": {
                "serviceName": "delib-zeo",
                "selector": {"matchLabels": {"hosting.imio.be/site": "delib"}},
                "template": {"spec": {
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "hosting.imio.be/pool", "operator": "In", "values": ["frontend"]}]}]}}},
                    "containers": [{"name": "zeo", "image": "registry.imio.be/imio/delib:4.2.18",
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "mutu", "mountPath": "/opt/mutu", "readOnly": true}]}],
                    "volumes": [
                        {"name": "data", "persistentVolumeClaim": {"claimName": "data-delib-zeo-0"}},
                        {"name": "mutu", "configMap": {"name": "delib-mutu"}},
                    ],
                }},
            },
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn spec(component: &'static str, writes: bool) -> Spec<'static> {
        Spec {
            component,
            name: job_name(component, "delib-20261128"),
            namespace: "tenant-mons".into(),
            site: "delib",
            owner: OwnerReference {
                api_version: "hosting.imio.be/v1alpha1".into(),
                kind: "Backup".into(),
                name: "delib-20261128".into(),
                uid: "u1".into(),
                controller: Some(true),
                ..Default::default()
            },
            owner_uid: "u1".into(),
            args: vec!["backup".into(), "--data".into(), "/data".into()],
            backups_claim: "backups",
            policy: Some("nightly".into()),
            writes_data: writes,
            data_claim: None,
            pool: None,
        }
    }

    #[test]
    fn a_migration_restores_into_the_new_volume_on_the_target_pool() {
        let mut s = spec(RESTORE, true);
        s.data_claim = Some("data-delib-zeo-m1".into());
        s.pool = Some("physical".into());
        let job = build(&s, &zeo()).unwrap_or_else(|e| panic!("{e}"));
        let value = serde_json::to_value(&job).unwrap_or_default();
        let pod = &value["spec"]["template"]["spec"];
        assert_eq!(
            pod["volumes"][0]["persistentVolumeClaim"]["claimName"],
            "data-delib-zeo-m1"
        );
        assert_eq!(
            pod["volumes"][0]["persistentVolumeClaim"]["readOnly"],
            false
        );
        assert_eq!(
            pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
                [0]["matchExpressions"][0]["values"],
            json!(["physical"])
        );
    }

    #[test]
    fn a_pack_runs_zeopack_against_the_sites_zeo_server() {
        let owner = spec(PACK, false).owner;
        let job = pack_job(
            "delib-pack-20261129",
            "tenant-mons",
            "delib",
            owner,
            7,
            &zeo(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let value = serde_json::to_value(&job).unwrap_or_default();
        let c = &value["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            c["command"],
            json!(["zeopack", "-d", "7", "delib-zeo:8100"])
        );
        assert_eq!(c["image"], "registry.imio.be/imio/delib:4.2.18");
        assert_eq!(value["spec"]["ttlSecondsAfterFinished"], 7 * 24 * 3600);
    }

    #[test]
    fn a_backup_reads_the_sites_data_where_its_zeo_server_runs() {
        let job = build(&spec(BACKUP, false), &zeo()).unwrap_or_else(|e| panic!("{e}"));
        let value = serde_json::to_value(&job).unwrap_or_default();
        let pod = &value["spec"]["template"]["spec"];
        assert_eq!(
            pod["containers"][0]["image"],
            "registry.imio.be/imio/delib:4.2.18"
        );
        assert_eq!(
            pod["containers"][0]["command"][1],
            "/opt/mutu/zodb_backup.py"
        );
        assert_eq!(
            pod["volumes"][0]["persistentVolumeClaim"]["claimName"],
            "data-delib-zeo-0"
        );
        assert_eq!(pod["volumes"][0]["persistentVolumeClaim"]["readOnly"], true);
        assert_eq!(
            pod["volumes"][1]["persistentVolumeClaim"]["claimName"],
            "backups"
        );
        assert_eq!(
            pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]["labelSelector"]
                ["matchLabels"]["app.kubernetes.io/component"],
            "zeo"
        );
        assert!(
            pod["affinity"]["nodeAffinity"].is_object(),
            "and on the site's pool"
        );
        assert_eq!(value["metadata"]["labels"][POLICY_LABEL], "nightly");
        // With its ZEO server stopped, a backup needs no pod to run beside.
        let mut stopped = zeo();
        stopped.spec.replicas = Some(0);
        let job = build(&spec(BACKUP, false), &stopped).unwrap_or_else(|e| panic!("{e}"));
        let value = serde_json::to_value(&job).unwrap_or_default();
        let affinity = &value["spec"]["template"]["spec"]["affinity"];
        assert!(
            affinity["podAffinity"].is_null() && affinity["nodeAffinity"].is_object(),
            "{affinity}"
        );
        let restore = build(&spec(RESTORE, true), &zeo()).unwrap_or_else(|e| panic!("{e}"));
        let value = serde_json::to_value(&restore).unwrap_or_default();
        assert_eq!(
            value["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["readOnly"],
            false
        );
    }

    #[test]
    fn a_relstorage_site_is_dumped_with_its_dsn_from_its_secret() {
        let mut spec = spec(BACKUP, false);
        spec.args = vec!["backup".into(), "--repo".into(), "/backups/delib".into()];
        let job = pg_job(&spec, "postgres:17-alpine", "delib-postgresql");
        let value = serde_json::to_value(&job).unwrap_or_default();
        let c = &value["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["image"], "postgres:17-alpine");
        assert_eq!(c["command"][1], "/opt/mutu/pg_backup.sh");
        assert_eq!(
            c["env"][0]["valueFrom"]["secretKeyRef"]["name"],
            "delib-postgresql"
        );
        let volumes = value["spec"]["template"]["spec"]["volumes"].to_string();
        assert!(
            volumes.contains("delib-mutu") && volumes.contains("backups"),
            "{volumes}"
        );
        assert!(
            !volumes.contains("data-delib"),
            "no ZODB volume for RelStorage"
        );
    }

    #[test]
    fn a_generic_products_volume_is_copied_beside_its_instances_and_restored_in_place() {
        let mut backup = spec(BACKUP, false);
        backup.site = "notes";
        backup.args = vec!["backup".into(), "--data".into(), "/data".into()];
        let job = volume_job(&backup, "busybox:1.37", "notes-data");
        let value = serde_json::to_value(&job).unwrap_or_default();
        let pod = &value["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        assert_eq!(c["image"], "busybox:1.37");
        assert_eq!(
            c["command"],
            json!([
                "sh",
                "/opt/mutu/volume_backup.sh",
                "backup",
                "--data",
                "/data"
            ])
        );
        // As root: no security context narrows it (owners come back on restore).
        assert!(c["securityContext"].is_null() && pod["securityContext"].is_null());
        let data = pod["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == "data")
            .cloned()
            .unwrap_or_default();
        assert_eq!(data["persistentVolumeClaim"]["claimName"], "notes-data");
        assert_eq!(data["persistentVolumeClaim"]["readOnly"], true);
        assert_eq!(
            pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]["labelSelector"]
                ["matchLabels"],
            json!({"hosting.imio.be/site": "notes", "app.kubernetes.io/component": "instance"})
        );
        let volumes = pod["volumes"].to_string();
        assert!(
            volumes.contains("notes-mutu") && volumes.contains("backups"),
            "{volumes}"
        );

        let mut restore = spec(RESTORE, true);
        restore.site = "notes";
        let value = serde_json::to_value(volume_job(&restore, "busybox:1.37", "notes-data"))
            .unwrap_or_default();
        let pod = &value["spec"]["template"]["spec"];
        assert!(
            pod["volumes"].to_string().contains("\"readOnly\":false"),
            "a restore writes the volume: {}",
            pod["volumes"]
        );
        assert!(pod["affinity"].is_null(), "the instances are stopped");
        // A migration restores into its new volume on its target pool.
        restore.data_claim = Some("notes-data-m1".into());
        restore.pool = Some("physical".into());
        let value = serde_json::to_value(volume_job(&restore, "busybox:1.37", "notes-data"))
            .unwrap_or_default();
        let pod = &value["spec"]["template"]["spec"];
        assert!(pod["volumes"].to_string().contains("notes-data-m1"));
        assert_eq!(
            pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
                [0]["matchExpressions"][0]["values"],
            json!(["physical"])
        );
    }

    #[test]
    fn job_names_fit_and_stay_distinct() {
        assert_eq!(
            job_name("backup", "delib-20261128"),
            "backup-delib-20261128"
        );
        let a = job_name("backup", &format!("{}-20261128", "x".repeat(60)));
        let b = job_name("backup", &format!("{}-20261129", "x".repeat(60)));
        assert!(a.len() <= 63 && b.len() <= 63 && a != b, "{a} {b}");
    }
}
