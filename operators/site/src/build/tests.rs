//! Unit tests of the builders, from YAML sites and products.

use std::collections::BTreeMap;

use kube::ResourceExt;
use mutu_runtime::labels;
use serde_json::{Value, json};

use super::*;
use mutu_api::Product;
use mutu_api::common::DeletionPolicy;

fn site(extra: &str) -> PloneSite {
    serde_saphyr::from_str(&format!(
        "apiVersion: hosting.imio.be/v1alpha1\nkind: PloneSite\nmetadata: {{name: delib, namespace: tenant-mons, uid: 5173-delib}}\nspec:\n  product: delib\n  hostnames: [deliberations.mons.be, conseil.mons.be]\n{extra}"
    ))
    .unwrap_or_else(|e| panic!("{e}"))
}

fn product(yaml: &str) -> ProductSpec {
    let p: Product = serde_saphyr::from_str(&format!(
        "apiVersion: hosting.imio.be/v1alpha1\nkind: Product\nmetadata: {{name: delib}}\nspec:\n{yaml}"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    p.spec
}

fn delib() -> ProductSpec {
    product(
        "  displayName: ia.Délib\n  engine: plone\n  image: registry.imio.be/imio/delib\n  release: \"4.2.18\"\n  replicas: 2\n  storage: {mode: zeo, size: 20Gi}\n  solr: {enabled: true, configset: delib, configsetVersion: \"3\"}\n  upgradeCommand: [zconsole, run, /app/etc/zope.conf]\n  siteCreationCommand: [zconsole, run, /app/etc/zope.conf]\n",
    )
}

fn plan() -> Plan {
    Plan {
        product: "delib".into(),
        release: "4.2.18".into(),
        upgrade_to: None,
        pool: "frontend".into(),
        suspended: false,
        issuer: "letsencrypt".into(),
        ingress_class: "nginx".into(),
        solr_env: BTreeMap::from([("COLLECTIVE_SOLR_HOST".into(), "solr".into())]),
        create_site: true,
        data_volume: None,
        offline: false,
        maintenance_backend: ("mutu-maintenance.mutu-system.svc".into(), 8080),
    }
}

fn build_ok(site: &PloneSite, product: &ProductSpec, plan: &Plan) -> Desired {
    build(site, product, plan).unwrap_or_else(|e| panic!("{e}"))
}

fn json_of<T: serde::Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or_default()
}

#[test]
fn ingress_and_certificate_carry_exactly_the_sites_hostnames() {
    let d = build_ok(&site(""), &delib(), &plan());
    let ingress = json_of(&d.ingress);
    let hosts: Vec<&str> = ingress["spec"]["rules"]
        .as_array()
        .map(|r| r.iter().filter_map(|r| r["host"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(hosts, vec!["deliberations.mons.be", "conseil.mons.be"]);
    assert_eq!(
        ingress["spec"]["tls"][0]["hosts"],
        json!(["deliberations.mons.be", "conseil.mons.be"])
    );
    assert_eq!(ingress["spec"]["tls"][0]["secretName"], "delib-tls");
    let cert = d.certificate.unwrap_or_else(|| panic!("no certificate"));
    assert_eq!(
        cert.spec.dns_names,
        vec!["deliberations.mons.be", "conseil.mons.be"]
    );
    assert_eq!(cert.spec.secret_name, "delib-tls");
    assert_eq!(cert.spec.issuer_ref.name, "letsencrypt");
    assert!(
        cert.metadata.owner_references.is_none(),
        "Retain must keep the certificate"
    );
}

#[test]
fn instances_run_the_release_only_on_the_pool_spread_over_nodes() {
    let d = build_ok(&site(""), &delib(), &plan());
    let dep = json_of(&d.deployment);
    let pod = &dep["spec"]["template"]["spec"];
    assert_eq!(dep["spec"]["replicas"], 2, "the product's default replicas");
    assert_eq!(
        pod["containers"][0]["image"],
        "registry.imio.be/imio/delib:4.2.18"
    );
    let term = &pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        [0]["matchExpressions"][0];
    assert_eq!(term["key"], mutu_api::POOL_LABEL);
    assert_eq!(term["values"], json!(["frontend"]));
    assert_eq!(
        pod["topologySpreadConstraints"][0]["topologyKey"],
        "kubernetes.io/hostname"
    );
    assert_eq!(
        pod["topologySpreadConstraints"][0]["whenUnsatisfiable"],
        "DoNotSchedule"
    );
    let env = pod["containers"][0]["env"].to_string();
    assert!(
        env.contains("ZEO_ADDRESS") && env.contains("delib-zeo:8100"),
        "{env}"
    );
    assert!(env.contains("COLLECTIVE_SOLR_HOST"), "{env}");
    assert!(
        env.contains("COLLECTIVE_SOLR_PASSWORD") && env.contains("-solr"),
        "the site's own Solr credentials: {env}"
    );
    assert_eq!(
        pod["containers"][0]["readinessProbe"]["httpGet"]["path"],
        "/ok"
    );
    assert!(d.pdb.is_some(), "2 replicas get a PodDisruptionBudget");
    let labels = &dep["spec"]["template"]["metadata"]["labels"];
    assert_eq!(labels[labels::MANAGED_BY], "mutu");
    assert_eq!(labels[labels::INSTANCE], "delib");
    assert_eq!(labels[labels::COMPONENT], "instance");
}

#[test]
fn zeo_keeps_its_data_on_a_volume_that_outlives_the_site() {
    let d = build_ok(&site(""), &delib(), &plan());
    let zeo = json_of(&d.zeo);
    let claim = json_of(&d.zeo_data);
    assert_eq!(claim["metadata"]["name"], "data-delib-zeo-0");
    assert!(
        claim["metadata"]["ownerReferences"].is_null(),
        "the data volume is not owned by the site"
    );
    assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "20Gi");
    assert_eq!(claim["metadata"]["labels"][labels::OWNER_UID], "5173-delib");
    assert_eq!(
        zeo["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "data-delib-zeo-0"
    );
    assert!(
        d.config
            .is_some_and(|c| c.data.unwrap_or_default()["zeo.conf"].contains("blob-dir"))
    );
}

#[test]
fn a_migrated_site_runs_on_its_new_volume_and_leaves_the_first_one_alone() {
    let moved = Plan {
        data_volume: Some("data-delib-zeo-m1a2b3".into()),
        pool: "physical".into(),
        ..plan()
    };
    let d = build_ok(&site(""), &delib(), &moved);
    assert!(
        d.zeo_data.is_none(),
        "mutu does not write the plan's volume"
    );
    let zeo = json_of(&d.zeo);
    assert_eq!(
        zeo["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "data-delib-zeo-m1a2b3"
    );
    assert_eq!(
        zeo["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"][0]["matchExpressions"][0]["values"][0],
        "physical"
    );
}

#[test]
fn an_offline_site_sends_its_visitors_to_the_maintenance_page() {
    let online = build_ok(&site(""), &delib(), &plan());
    assert!(
        !online
            .services
            .iter()
            .any(|s| s.name_any() == "delib-offline")
    );
    let offline = Plan {
        offline: true,
        ..plan()
    };
    let d = build_ok(&site(""), &delib(), &offline);
    let ingress = json_of(&d.ingress);
    for rule in ingress["spec"]["rules"].as_array().into_iter().flatten() {
        let backend = &rule["http"]["paths"][0]["backend"]["service"];
        assert_eq!(backend["name"], "delib-offline");
        assert_eq!(backend["port"]["number"], 8080);
    }
    let svc = d
        .services
        .iter()
        .find(|s| s.name_any() == "delib-offline")
        .map(json_of)
        .unwrap_or_else(|| panic!("no offline Service"));
    assert_eq!(svc["spec"]["type"], "ExternalName");
    assert_eq!(
        svc["spec"]["externalName"],
        "mutu-maintenance.mutu-system.svc"
    );
    assert_eq!(
        json_of(&d.deployment)["spec"]["replicas"],
        json_of(&online.deployment)["spec"]["replicas"],
        "offline alone keeps the servers running"
    );
}

#[test]
fn one_replica_gets_no_disruption_budget_and_a_suspended_member_runs_nothing() {
    let d = build_ok(&site("  replicas: 1\n"), &delib(), &plan());
    assert!(d.pdb.is_none());
    let suspended = Plan {
        suspended: true,
        ..plan()
    };
    let d = build_ok(&site(""), &delib(), &suspended);
    assert_eq!(json_of(&d.deployment)["spec"]["replicas"], 0);
    assert_eq!(json_of(&d.zeo)["spec"]["replicas"], 0);
    assert!(d.jobs.is_empty(), "no job runs for a suspended member");
    assert!(d.zeo.is_some(), "suspension deletes nothing");
}

#[test]
fn an_upgrade_job_runs_the_new_release_while_instances_stay_on_the_old() {
    let upgrading = Plan {
        upgrade_to: Some("4.3.0".into()),
        ..plan()
    };
    let d = build_ok(&site(""), &delib(), &upgrading);
    assert_eq!(
        json_of(&d.deployment)["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.imio.be/imio/delib:4.2.18"
    );
    let upgrade = d
        .jobs
        .iter()
        .find(|j| j.name_any() == "delib-upgrade-4-3-0")
        .unwrap_or_else(|| panic!("no upgrade job"));
    let container = &json_of(upgrade)["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "registry.imio.be/imio/delib:4.3.0");
    assert_eq!(
        container["command"]
            .as_array()
            .and_then(|c| c.last())
            .cloned(),
        Some(json!("Plone"))
    );
    assert!(container["command"].to_string().contains("upgrade_site.py"));
}

#[test]
fn search_index_follows_the_product_and_can_be_turned_off() {
    let d = build_ok(&site(""), &delib(), &plan());
    let index = d.solr_index.unwrap_or_else(|| panic!("no index"));
    assert_eq!(index.spec.configset_version.as_deref(), Some("3"));
    assert_eq!(index.spec.deletion_policy, DeletionPolicy::Retain);
    let d = build_ok(&site("  deletionPolicy: Delete\n"), &delib(), &plan());
    let index = d.solr_index.unwrap_or_else(|| panic!("no index"));
    assert_eq!(
        index.spec.deletion_policy,
        DeletionPolicy::Delete,
        "the index goes with the site's data"
    );
    let d = build_ok(&site("  solr: {enabled: false}\n"), &delib(), &plan());
    assert!(d.solr_index.is_none());
}

#[test]
fn a_generic_product_gets_its_own_volume_and_no_plone_jobs() {
    let atal = product(
        "  displayName: ATAL\n  engine: generic\n  image: registry.imio.be/atal/atal\n  release: \"7.3\"\n  storage: {size: 5Gi}\n  siteCreationCommand: [init]\n",
    );
    let d = build_ok(&site(""), &atal, &plan());
    assert!(d.zeo.is_none() && d.solr_index.is_none());
    assert!(d.jobs.is_empty());
    // Its volume's backups run the volume script from the site's scripts.
    let scripts = json_of(&d.config);
    assert!(
        scripts["data"]["volume_backup.sh"]
            .as_str()
            .is_some_and(|s| s.contains("volume_backup")),
        "{scripts}"
    );
    // Without a volume, nothing to back up: no scripts either.
    let stateless = product(
        "  displayName: AES\n  engine: generic\n  image: registry.imio.be/aes/aes\n  release: \"1\"\n",
    );
    assert!(build_ok(&site(""), &stateless, &plan()).config.is_none());
    let data = d.data.unwrap_or_else(|| panic!("no data volume"));
    assert!(
        data.metadata.owner_references.is_none(),
        "Retain must keep the volume"
    );
    assert_eq!(
        json_of(&data)["spec"]["resources"]["requests"]["storage"],
        "5Gi"
    );
}

#[test]
fn a_created_site_wants_no_creation_job_any_more() {
    let d = build_ok(
        &site(""),
        &delib(),
        &Plan {
            create_site: false,
            ..plan()
        },
    );
    assert!(
        d.jobs.is_empty(),
        "a finished creation Job is immutable and must not be re-applied"
    );
    let d = build_ok(&site(""), &delib(), &plan());
    assert_eq!(d.jobs.len(), 1);
    assert_eq!(d.jobs[0].name_any(), "delib-create");
}

#[test]
fn the_site_is_created_in_its_language_french_by_default() {
    let args = |site: &PloneSite| {
        let d = build_ok(site, &delib(), &plan());
        let job = json_of(&d.jobs[0]);
        let command = job["spec"]["template"]["spec"]["containers"][0]["command"].clone();
        command
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    assert_eq!(args(&site("")).last().map(String::as_str), Some("fr"));
    assert_eq!(
        args(&site("  language: de\n")).last().map(String::as_str),
        Some("de")
    );
}

#[test]
fn upgrade_job_names_are_valid_and_bounded() {
    assert_eq!(upgrade_job_name("delib", "4.2.18"), "delib-upgrade-4-2-18");
    let long = upgrade_job_name(&"s".repeat(60), "1.0");
    assert!(long.len() <= 63 && !long.ends_with('-'));
}

fn generic(replicas: i32) -> ProductSpec {
    product(&format!(
        "  displayName: Téléservices\n  engine: generic\n  image: registry.imio.be/imio/teleservices\n  release: \"2.14.0\"\n  replicas: {replicas}\n  storage: {{size: 10Gi}}\n  port: 8000\n"
    ))
}

#[test]
fn a_single_replica_site_with_a_one_node_volume_is_recreated_so_its_rollout_completes() {
    let d = build_ok(&site(""), &generic(1), &plan());
    let claim = json_of(&d.data);
    assert_eq!(claim["spec"]["accessModes"], json!(["ReadWriteOnce"]));
    let dep = json_of(&d.deployment);
    assert_eq!(dep["spec"]["replicas"], 1);
    // A surge pod would have to share the old pod's node (the volume's),
    // which a spread or a network volume still attached elsewhere forbids:
    // the old pod goes first.
    assert_eq!(dep["spec"]["strategy"], json!({"type": "Recreate"}));
    let pod = &dep["spec"]["template"]["spec"];
    assert_eq!(
        pod["volumes"],
        json!([{"name": "data", "persistentVolumeClaim": {"claimName": "delib-data"}}])
    );
    assert!(
        pod["topologySpreadConstraints"].is_null(),
        "replicas of one volume cannot be spread: {pod}"
    );
    assert_eq!(
        pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            [0]["matchExpressions"][0]["values"],
        json!(["frontend"]),
        "still on the pool"
    );
}

#[test]
fn replicas_sharing_a_one_node_volume_run_together_on_its_node() {
    let d = build_ok(&site(""), &generic(3), &plan());
    let dep = json_of(&d.deployment);
    assert_eq!(dep["spec"]["strategy"]["type"], "Recreate");
    let pod = &dep["spec"]["template"]["spec"];
    let term = &pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0];
    assert_eq!(term["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(
        term["labelSelector"]["matchLabels"],
        json!({"app.kubernetes.io/component": "instance", SITE_LABEL: "delib"})
    );
    assert!(pod["topologySpreadConstraints"].is_null());
}

#[test]
fn sites_without_a_volume_keep_a_rollout_that_never_stops_them() {
    for (name, product, replicas) in [
        ("zeo, several replicas", delib(), 2),
        (
            "generic without volume",
            {
                let mut p = generic(1);
                p.storage = None;
                p
            },
            1,
        ),
    ] {
        let d = build_ok(&site(""), &product, &plan());
        let dep = json_of(&d.deployment);
        assert_eq!(dep["spec"]["replicas"], replicas, "{name}");
        assert_eq!(
            dep["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}),
            "{name}"
        );
        assert!(
            dep["spec"]["template"]["spec"]["affinity"]["podAffinity"].is_null(),
            "{name}"
        );
    }
}

#[test]
fn the_spread_counts_only_pods_of_the_same_revision_on_schedulable_pool_nodes() {
    let d = build_ok(&site(""), &delib(), &plan());
    let dep = json_of(&d.deployment);
    let spread = &dep["spec"]["template"]["spec"]["topologySpreadConstraints"][0];
    // The surge pod of a rollout is not pushed off the node of the pod it replaces.
    assert_eq!(spread["matchLabelKeys"], json!(["pod-template-hash"]));
    assert_eq!(spread["maxSkew"], 1);
    assert_eq!(spread["nodeAffinityPolicy"], "Honor");
    // A node being drained is not a domain holding the minimum at zero.
    assert_eq!(spread["nodeTaintsPolicy"], "Honor");
    let zeo = json_of(&d.zeo);
    let spread = &zeo["spec"]["template"]["spec"]["topologySpreadConstraints"][0];
    assert_eq!(
        spread["matchLabelKeys"],
        json!(["controller-revision-hash"])
    );
    assert_eq!(spread["nodeTaintsPolicy"], "Honor");
}

#[test]
fn the_sites_pods_may_write_their_volumes_as_a_non_root_user() {
    let d = build_ok(&site(""), &delib(), &plan());
    let expected = json!({"fsGroup": 1000, "fsGroupChangePolicy": "OnRootMismatch"});
    let zeo = json_of(&d.zeo);
    assert_eq!(zeo["spec"]["template"]["spec"]["securityContext"], expected);
    let dep = json_of(&d.deployment);
    assert_eq!(dep["spec"]["template"]["spec"]["securityContext"], expected);
    assert!(!d.jobs.is_empty());
    for job in &d.jobs {
        let job = json_of(job);
        assert_eq!(
            job["spec"]["template"]["spec"]["securityContext"], expected,
            "{}",
            job["metadata"]["name"]
        );
    }
    let generic = build_ok(&site(""), &generic(1), &plan());
    let dep = json_of(&generic.deployment);
    assert_eq!(dep["spec"]["template"]["spec"]["securityContext"], expected);
}

#[test]
fn a_plone_sites_instances_take_their_administrator_from_the_sites_secret() {
    let site = site("");
    let d = build_ok(&site, &delib(), &plan());
    assert!(d.admin, "a Plone site has an administrator");
    let env = json_of(&d.deployment)["spec"]["template"]["spec"]["containers"][0]["env"].clone();
    for (var, key) in [
        ("PLONE_ADMIN_USER", "username"),
        ("PLONE_ADMIN_PASSWORD", "password"),
    ] {
        let found = env
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == var)
            .unwrap_or_else(|| panic!("{var} missing in {env}"));
        assert_eq!(found["valueFrom"]["secretKeyRef"]["name"], "delib-admin");
        assert_eq!(found["valueFrom"]["secretKeyRef"]["key"], key);
        // Required: an instance never starts without its administrator.
        assert!(found["valueFrom"]["secretKeyRef"]["optional"].is_null());
    }

    // The creation Job makes it too (creating the site may replace the root's
    // user folder); the upgrade Job does not need it.
    let jobs = json_of(&d.jobs).to_string();
    assert_eq!(jobs.matches("PLONE_ADMIN_PASSWORD").count(), 1, "{jobs}");
    let create = json_of(&d.jobs[0]);
    assert_eq!(create["metadata"]["name"], "delib-create");
    assert!(create.to_string().contains("delib-admin"));

    let secret = json_of(&admin_secret(&site, "s3cret-value"));
    assert_eq!(secret["metadata"]["name"], "delib-admin");
    assert_eq!(secret["type"], "kubernetes.io/basic-auth");
    assert_eq!(secret["stringData"]["username"], "admin");
    assert_eq!(secret["stringData"]["password"], "s3cret-value");
    assert_eq!(
        secret["metadata"]["ownerReferences"][0]["uid"],
        "5173-delib"
    );
    assert_eq!(
        secret["metadata"]["labels"][labels::MANAGED_BY],
        labels::MANAGED_BY_VALUE
    );

    let g = build_ok(&site, &generic(1), &plan());
    assert!(!g.admin, "a generic product has no Plone administrator");
    let text = json_of(&g.deployment).to_string();
    assert!(!text.contains("PLONE_ADMIN"), "{text}");
}
