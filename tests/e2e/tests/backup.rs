//! Backups and restores against the real control plane: an on-demand Backup
//! runs its Job against the site's data and completes; a Restore of it puts
//! the site in maintenance, restores, and brings the site back Ready;
//! retention never removes a backup while a restore of the site runs.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use mutu_api::{Backup, BackupPolicy, PloneSite, Restore};
use mutu_e2e::{create_in as create, member_with_site};
use mutu_runtime::conditions;
use mutu_runtime::testing::{self, eventually, unique_name, wait_for};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(90);

async fn member_site(
    client: &Client,
    prefix: &str,
    overrides: serde_json::Value,
) -> anyhow::Result<(String, String)> {
    member_with_site(client, prefix, overrides, TIMEOUT).await
}

fn cond(
    status: Option<&mutu_api::RunStatus>,
    t: &str,
) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    status.and_then(|s| conditions::find(&s.conditions, t).cloned())
}

#[tokio::test]
async fn an_on_demand_backup_completes_and_its_restore_brings_the_site_back() -> anyhow::Result<()>
{
    let client = testing::client().await?;
    let (ns, _) = member_site(&client, "backup", json!({})).await?;
    mutu_e2e::backup_site(&client, &ns, "before-council", "delib").await?;
    let backups: Api<Backup> = Api::namespaced(client.clone(), &ns);
    let done = wait_for(
        &backups,
        "before-council",
        TIMEOUT,
        "the backup to complete",
        |b: Option<&Backup>| {
            b.and_then(|b| cond(b.status.as_ref(), "Complete"))
                .is_some_and(|c| c.status == "True")
        },
    )
    .await?;
    let status = done.status.clone().unwrap_or_default();
    assert!(status.start_time.is_some() && status.completion_time.is_some());
    assert!(
        status.start_time.as_ref().map(|t| t.0) <= status.completion_time.as_ref().map(|t| t.0)
    );
    assert_eq!(
        status.location.as_deref(),
        Some(format!("{ns}/delib/before-council").as_str())
    );
    assert!(
        cond(Some(&status), "Ready").is_some_and(|c| c.status == "True"),
        "restorable"
    );

    // The Job read the site's data (read-only, beside its ZEO server) into the member's volume.
    let job = Api::<Job>::namespaced(client.clone(), &ns)
        .get("backup-before-council")
        .await?;
    let pod = job.spec.and_then(|s| s.template.spec).unwrap_or_default();
    let claims: Vec<(String, Option<bool>)> = pod
        .volumes
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| {
            v.persistent_volume_claim
                .map(|c| (c.claim_name, c.read_only))
        })
        .collect();
    assert!(
        claims.contains(&("data-delib-zeo-0".to_string(), Some(true))),
        "{claims:?}"
    );
    assert!(claims.iter().any(|c| c.0 == "backups"), "{claims:?}");
    let script = pod.containers[0]
        .command
        .clone()
        .unwrap_or_default()
        .join(" ");
    assert!(
        script.contains("zodb_backup.py")
            && script.contains("backup --data /data --repo /backups/delib --id before-council"),
        "{script}"
    );
    assert!(
        Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns)
            .get_opt("backups")
            .await?
            .is_some(),
        "the member's backup volume exists"
    );
    // The site shows its last successful backup.
    let sites: Api<PloneSite> = Api::namespaced(client.clone(), &ns);
    wait_for(
        &sites,
        "delib",
        TIMEOUT,
        "the site's lastBackup",
        |s: Option<&PloneSite>| {
            s.and_then(|s| s.status.as_ref())
                .and_then(|s| s.last_backup.as_ref())
                .map(|t| t.0)
                == status.completion_time.as_ref().map(|t| t.0)
        },
    )
    .await?;

    // A restore of it: maintenance, the restore Job, and the site Ready again.
    mutu_e2e::restore_site(&client, &ns, "undo", "delib", "before-council").await?;
    let restores: Api<Restore> = Api::namespaced(client.clone(), &ns);
    let mut saw_maintenance = false;
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let site = sites.get("delib").await?;
        let ready = site
            .status
            .as_ref()
            .and_then(|s| conditions::find(&s.conditions, "Ready").cloned());
        saw_maintenance |= ready.as_ref().is_some_and(|c| c.reason == "Maintenance");
        let r = restores.get("undo").await?;
        if cond(r.status.as_ref(), "Complete").is_some_and(|c| c.status == "True") {
            break;
        }
        assert!(
            cond(r.status.as_ref(), "Failed").is_none_or(|c| c.status != "True"),
            "{:?}",
            r.status
        );
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the restore did not complete: {:?}",
            r.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        saw_maintenance,
        "the site was in maintenance during the restore"
    );
    let site = sites.get("delib").await?;
    assert!(conditions::is_true(
        &site.status.clone().unwrap_or_default().conditions,
        "Ready"
    ));
    assert!(
        !site
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key(mutu_api::MAINTENANCE_ANNOTATION)
    );
    let job = Api::<Job>::namespaced(client.clone(), &ns)
        .get("restore-undo")
        .await?;
    let pod = job.spec.and_then(|s| s.template.spec).unwrap_or_default();
    let args = pod.containers[0]
        .command
        .clone()
        .unwrap_or_default()
        .join(" ");
    assert!(
        args.ends_with("restore --data /data --repo /backups/delib --id before-council"),
        "{args}"
    );
    let writable = pod
        .volumes
        .unwrap_or_default()
        .into_iter()
        .find(|v| v.name == "data")
        .and_then(|v| v.persistent_volume_claim)
        .and_then(|c| c.read_only);
    assert_ne!(writable, Some(true), "a restore writes the site's data");

    // Once kept long enough (20 s on this control plane, `--restore-keep-before`), the data
    // the restore set aside is deleted by a Job, and the Restore says so.
    let forget = eventually(TIMEOUT, "the Job deleting the data set aside", || async {
        Api::<Job>::namespaced(client.clone(), &ns)
            .get_opt("forget-undo")
            .await
            .ok()?
    })
    .await?;
    let pod = forget
        .spec
        .and_then(|s| s.template.spec)
        .unwrap_or_default();
    let command = pod.containers[0]
        .command
        .clone()
        .unwrap_or_default()
        .join(" ");
    assert!(
        command.ends_with("forget-before --data /data --older-than 20"),
        "{command}"
    );
    let marked = wait_for(
        &restores,
        "undo",
        TIMEOUT,
        "the Restore marked once its set-aside data is deleted",
        |r: Option<&Restore>| {
            r.is_some_and(|r| {
                r.metadata
                    .annotations
                    .as_ref()
                    .is_some_and(|a| a.contains_key("hosting.imio.be/set-aside-deleted"))
            })
        },
    )
    .await?;
    let value = marked
        .metadata
        .annotations
        .unwrap_or_default()
        .get("hosting.imio.be/set-aside-deleted")
        .cloned()
        .unwrap_or_default();
    assert!(!value.starts_with("failed"), "{value}");

    // A restore of a backup that does not exist says what to change.
    mutu_e2e::restore_site(&client, &ns, "typo", "delib", "before-counsil").await?;
    let failed = wait_for(
        &restores,
        "typo",
        TIMEOUT,
        "the refusal",
        |r: Option<&Restore>| {
            r.and_then(|r| cond(r.status.as_ref(), "Failed"))
                .is_some_and(|c| c.status == "True")
        },
    )
    .await?;
    let message = cond(failed.status.as_ref(), "Failed")
        .map(|c| c.message)
        .unwrap_or_default();
    assert!(
        message.contains("spec.backup") && message.contains("before-counsil"),
        "{message}"
    );
    assert!(
        !sites
            .get("delib")
            .await?
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key(mutu_api::MAINTENANCE_ANNOTATION),
        "a refused restore never stops the site"
    );

    // A restore over the live site that does not confirm it (spec.confirm) changes nothing.
    create::<Restore>(
        &client,
        &ns,
        json!({"apiVersion": mutu_api::API_VERSION, "kind": "Restore",
               "metadata": {"name": "unconfirmed", "namespace": ns},
               "spec": {"site": "delib", "backup": "before-council"}}),
    )
    .await?;
    let refused = wait_for(
        &restores,
        "unconfirmed",
        TIMEOUT,
        "the refusal of an unconfirmed restore",
        |r: Option<&Restore>| {
            r.and_then(|r| cond(r.status.as_ref(), "Failed"))
                .is_some_and(|c| c.status == "True")
        },
    )
    .await?;
    let failed = cond(refused.status.as_ref(), "Failed")
        .ok_or_else(|| anyhow::anyhow!("no Failed condition"))?;
    assert_eq!(failed.reason, "NotConfirmed");
    assert!(
        failed.message.contains("spec.confirm: delib"),
        "{}",
        failed.message
    );
    // The Restore YAML applied again by a pipeline (deleted, then created again): it does
    // not run a second time.
    let jobs = Api::<Job>::namespaced(client.clone(), &ns);
    let first_job = jobs.get("restore-undo").await?.metadata.uid;
    restores.delete("undo", &DeleteParams::default()).await?;
    eventually(TIMEOUT, "the first Restore to be gone", || async {
        restores.get_opt("undo").await.ok()?.is_none().then_some(())
    })
    .await?;
    mutu_e2e::restore_site(&client, &ns, "undo", "delib", "before-council").await?;
    let again = wait_for(
        &restores,
        "undo",
        TIMEOUT,
        "the re-applied Restore to finish",
        |r: Option<&Restore>| {
            r.and_then(|r| cond(r.status.as_ref(), "Complete"))
                .is_some_and(|c| c.status == "True")
        },
    )
    .await?;
    let complete = cond(again.status.as_ref(), "Complete")
        .ok_or_else(|| anyhow::anyhow!("no Complete condition"))?;
    assert_eq!(complete.reason, "AlreadyRan", "{}", complete.message);
    assert!(
        again.status.and_then(|s| s.start_time).is_none(),
        "it never started"
    );
    let job_now = jobs
        .get_opt("restore-undo")
        .await?
        .and_then(|j| j.metadata.uid);
    assert!(
        job_now.is_none() || job_now == first_job,
        "no second restore Job ran"
    );
    assert!(jobs.get_opt("restore-unconfirmed").await?.is_none());
    let site = sites.get("delib").await?;
    assert!(
        !site
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key(mutu_api::MAINTENANCE_ANNOTATION),
        "neither stopped the site"
    );
    sites.delete("delib", &DeleteParams::default()).await?;
    Ok(())
}

/// The local hour, in Brussels, `hours` from now, as HH:00.
fn brussels_hour_from_now(hours: i64) -> String {
    let now = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::get("Europe/Brussels").unwrap_or(jiff::tz::TimeZone::UTC));
    let then = now
        .checked_add(jiff::SignedDuration::from_hours(hours))
        .unwrap_or(now);
    format!("{:02}:00", then.hour())
}

#[tokio::test]
async fn retention_never_removes_a_backup_while_a_restore_of_the_site_runs() -> anyhow::Result<()> {
    let client = testing::client().await?;
    // In the test bed the Jobs of a release tagged "-slow" run for ten minutes.
    let (ns, product) = member_site(
        &client,
        "retain",
        json!({"release": "1.0-slow", "siteCreationCommand": []}),
    )
    .await?;
    // A policy for this product alone, keeping one daily backup, whose window is
    // not now (so the schedule adds no backup of its own).
    let policy = unique_name("keep-one");
    let body: BackupPolicy = serde_json::from_value(json!({
        "apiVersion": mutu_api::API_VERSION, "kind": "BackupPolicy",
        "metadata": {"name": policy},
        "spec": {
            "window": {"start": brussels_hour_from_now(3), "end": brussels_hour_from_now(4)},
            "maxConcurrent": 10, "products": [product],
            "retention": {"daily": 1, "weekly": 0, "monthly": 0},
        },
    }))?;
    Api::<BackupPolicy>::all(client.clone())
        .create(&PostParams::default(), &body)
        .await?;
    // Three nights of history: scheduled backups whose Jobs the operator starts,
    // recorded as completed on three different days.
    let backups: Api<Backup> = Api::namespaced(client.clone(), &ns);
    let now = jiff::Timestamp::now();
    for (i, days) in [(1, 2), (2, 1), (3, 0)] {
        let name = format!("night-{i}");
        create::<Backup>(
            &client,
            &ns,
            json!({
                "apiVersion": mutu_api::API_VERSION, "kind": "Backup",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"site": "delib", "policy": policy, "trigger": "Scheduled"},
            }),
        )
        .await?;
        wait_for(
            &backups,
            &name,
            TIMEOUT,
            "the backup Job to start",
            |b: Option<&Backup>| {
                b.and_then(|b| cond(b.status.as_ref(), "Progressing"))
                    .is_some_and(|c| c.reason == "Running")
            },
        )
        .await?;
        let done = now - jiff::SignedDuration::from_hours(24 * days + 1);
        let started = done - jiff::SignedDuration::from_mins(5);
        backups
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&json!({"status": {
                "startTime": started.to_string(), "completionTime": done.to_string(),
                "conditions": [
                    {"type": "Complete", "status": "True", "reason": "BackedUp", "message": "history", "lastTransitionTime": done.to_string()},
                    {"type": "Progressing", "status": "False", "reason": "Done", "message": "history", "lastTransitionTime": done.to_string()},
                ],
            }})))
            .await?;
    }
    // History has no Job running: the slow test Jobs of these backups go (a restore
    // waits for a backup Job of its site that runs, whatever its Backup says).
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let selector = format!("{}={}", mutu_api::COMPONENT, "backup");
    jobs.delete_collection(
        &DeleteParams::background(),
        &kube::api::ListParams::default().labels(&selector),
    )
    .await?;
    eventually(TIMEOUT, "the history's backup Jobs to go", || {
        let (jobs, selector) = (jobs.clone(), selector.clone());
        async move {
            let left = jobs
                .list(&kube::api::ListParams::default().labels(&selector))
                .await
                .ok()?;
            left.items.is_empty().then_some(())
        }
    })
    .await?;
    // A restore of the newest: it runs (ten minutes here) while retention looks.
    mutu_e2e::restore_site(&client, &ns, "slow", "delib", "night-3").await?;
    let restores: Api<Restore> = Api::namespaced(client.clone(), &ns);
    wait_for(
        &restores,
        "slow",
        TIMEOUT,
        "the restore Job to run",
        |r: Option<&Restore>| {
            r.and_then(|r| cond(r.status.as_ref(), "Progressing"))
                .is_some_and(|c| c.reason == "Restoring")
        },
    )
    .await?;
    // Several engine ticks (10 s each) while the restore runs: nothing is pruned.
    tokio::time::sleep(Duration::from_secs(25)).await;
    for name in ["night-1", "night-2", "night-3"] {
        assert!(
            backups.get_opt(name).await?.is_some(),
            "{name} was pruned during the restore"
        );
    }
    // Once the restore is gone, retention keeps the newest daily backup only.
    restores.delete("slow", &DeleteParams::default()).await?;
    eventually(TIMEOUT, "retention to prune the two older backups", || {
        let backups = backups.clone();
        async move {
            let gone = backups.get_opt("night-1").await.ok()?.is_none()
                && backups.get_opt("night-2").await.ok()?.is_none();
            gone.then_some(())
        }
    })
    .await?;
    assert!(
        backups.get_opt("night-3").await?.is_some(),
        "the newest is kept"
    );
    let site = Api::<PloneSite>::namespaced(client.clone(), &ns)
        .get("delib")
        .await?;
    assert!(
        !site
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key(mutu_api::MAINTENANCE_ANNOTATION),
        "deleting the restore lifted the maintenance"
    );
    Api::<BackupPolicy>::all(client.clone())
        .delete(&policy, &DeleteParams::default())
        .await?;
    Api::<PloneSite>::namespaced(client.clone(), &ns)
        .delete("delib", &DeleteParams::default())
        .await?;
    Ok(())
}

#[tokio::test]
async fn the_weekly_pack_runs_zeopack_in_its_window_before_the_backups() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let (ns, product) = member_site(&client, "pack", json!({"replicas": 1})).await?;
    // Today is the pack day, the pack window opened a minute ago and the backup
    // window opens in ten minutes: the one site's pack (10 minutes expected) is due now.
    let tz = jiff::tz::TimeZone::get("Europe/Brussels").unwrap_or(jiff::tz::TimeZone::UTC);
    let now = jiff::Timestamp::now();
    let at = |mins: i64| (now + jiff::SignedDuration::from_mins(mins)).to_zoned(tz.clone());
    let opened = at(-1);
    let day = opened.strftime("%A").to_string().to_lowercase();
    let policy = unique_name("pack");
    let body: BackupPolicy = serde_json::from_value(json!({
        "apiVersion": mutu_api::API_VERSION, "kind": "BackupPolicy",
        "metadata": {"name": policy},
        "spec": {
            "window": {"start": at(10).strftime("%H:%M").to_string(), "end": at(180).strftime("%H:%M").to_string()},
            "maxConcurrent": 4, "products": [product],
            "pack": {"day": day, "start": opened.strftime("%H:%M").to_string(), "keepDays": 3},
        },
    }))?;
    let policies: Api<BackupPolicy> = Api::all(client.clone());
    policies.create(&PostParams::default(), &body).await?;
    let name = format!("delib-pack-{}", opened.strftime("%Y%m%d"));
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let job = eventually(Duration::from_secs(150), "the pack Job", || {
        let (jobs, name) = (jobs.clone(), name.clone());
        async move { jobs.get_opt(&name).await.ok().flatten() }
    })
    .await?;
    let pod = job.spec.and_then(|s| s.template.spec).unwrap_or_default();
    assert_eq!(
        pod.containers[0].command.clone().unwrap_or_default(),
        ["zeopack", "-d", "3", "delib-zeo:8100"],
        "ZEO's own zeopack against the site's ZEO server"
    );
    assert!(
        pod.containers[0]
            .image
            .clone()
            .unwrap_or_default()
            .ends_with(":1.0")
    );
    policies.delete(&policy, &DeleteParams::default()).await?;
    Api::<PloneSite>::namespaced(client.clone(), &ns)
        .delete("delib", &DeleteParams::default())
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_relstorage_site_is_backed_up_with_a_postgresql_dump() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let (ns, _) = member_site(
        &client,
        "pgdump",
        json!({"storage": {"mode": "relstorage"}, "replicas": 1}),
    )
    .await?;
    mutu_e2e::backup_site(&client, &ns, "dump-1", "delib").await?;
    let backups: Api<Backup> = Api::namespaced(client.clone(), &ns);
    wait_for(
        &backups,
        "dump-1",
        TIMEOUT,
        "the dump to complete",
        |b: Option<&Backup>| {
            b.and_then(|b| cond(b.status.as_ref(), "Complete"))
                .is_some_and(|c| c.status == "True")
        },
    )
    .await?;
    let job = Api::<Job>::namespaced(client.clone(), &ns)
        .get("backup-dump-1")
        .await?;
    let pod = job.spec.and_then(|s| s.template.spec).unwrap_or_default();
    let c = &pod.containers[0];
    assert!(
        c.image.clone().unwrap_or_default().contains("postgres"),
        "{:?}",
        c.image
    );
    let script = c.command.clone().unwrap_or_default().join(" ");
    assert!(
        script.contains("pg_backup.sh")
            && script.contains("backup --repo /backups/delib --id dump-1"),
        "{script}"
    );
    let dsn = c
        .env
        .clone()
        .unwrap_or_default()
        .into_iter()
        .find(|e| e.name == "RELSTORAGE_DSN");
    let secret = dsn
        .and_then(|e| e.value_from)
        .and_then(|v| v.secret_key_ref)
        .map(|r| (r.name, r.key));
    assert_eq!(
        secret,
        Some(("delib-postgresql".to_string(), "dsn".to_string())),
        "the DSN comes from the site's Secret"
    );
    Api::<PloneSite>::namespaced(client.clone(), &ns)
        .delete("delib", &DeleteParams::default())
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_generic_products_volume_is_backed_up_and_a_site_without_data_is_left_out()
-> anyhow::Result<()> {
    let client = testing::client().await?;
    let generic = |storage: serde_json::Value| {
        json!({
            "engine": "generic", "storage": storage,
            "siteCreationCommand": [], "upgradeCommand": [], "replicas": 1,
        })
    };
    let (ns_vol, with_volume) =
        member_site(&client, "genvol", generic(json!({"size": "1Gi"}))).await?;
    let (ns_none, without) = member_site(&client, "gennone", generic(json!(null))).await?;

    // The volume's backup: volume_backup.sh over the site's claim, read-only.
    mutu_e2e::backup_site(&client, &ns_vol, "files", "delib").await?;
    let backups: Api<Backup> = Api::namespaced(client.clone(), &ns_vol);
    wait_for(
        &backups,
        "files",
        TIMEOUT,
        "the volume's backup to complete",
        |b: Option<&Backup>| {
            b.and_then(|b| cond(b.status.as_ref(), "Complete"))
                .is_some_and(|c| c.status == "True")
        },
    )
    .await?;
    let job = Api::<Job>::namespaced(client.clone(), &ns_vol)
        .get("backup-files")
        .await?;
    let pod = job.spec.and_then(|s| s.template.spec).unwrap_or_default();
    let command = pod.containers[0].command.clone().unwrap_or_default();
    assert_eq!(command.first().map(String::as_str), Some("sh"));
    // As root, in the volume image: owners and modes come back on a restore.
    assert!(pod.containers[0].security_context.is_none());
    let script = command.join(" ");
    assert!(
        script.contains("/opt/mutu/volume_backup.sh")
            && script.contains("backup --data /data --repo /backups/delib --id files"),
        "{script}"
    );
    let claims: Vec<(String, Option<bool>)> = pod
        .volumes
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| {
            v.persistent_volume_claim
                .map(|c| (c.claim_name, c.read_only))
        })
        .collect();
    assert!(
        claims.contains(&("delib-data".to_string(), Some(true))),
        "{claims:?}"
    );

    // Without a volume there is nothing to back up: said at once.
    mutu_e2e::backup_site(&client, &ns_none, "nothing", "delib").await?;
    let done = wait_for(
        &Api::<Backup>::namespaced(client.clone(), &ns_none),
        "nothing",
        TIMEOUT,
        "the backup of a site without data to fail",
        |b: Option<&Backup>| {
            b.and_then(|b| cond(b.status.as_ref(), "Failed"))
                .is_some_and(|c| c.status == "True")
        },
    )
    .await?;
    let failed = cond(done.status.as_ref(), "Failed")
        .ok_or_else(|| anyhow::anyhow!("no Failed condition: {:?}", done.status))?;
    assert_eq!(failed.reason, "NoData");
    assert!(
        failed.message.contains("keeps no data"),
        "{}",
        failed.message
    );

    // The night plans the site with a volume, not the one without.
    let policy = unique_name("generic-night");
    let body: BackupPolicy = serde_json::from_value(json!({
        "apiVersion": mutu_api::API_VERSION, "kind": "BackupPolicy",
        "metadata": {"name": policy},
        "spec": {
            "window": {"start": brussels_hour_from_now(3), "end": brussels_hour_from_now(4)},
            "maxConcurrent": 4, "products": [with_volume, without],
            "retention": {"daily": 1, "weekly": 0, "monthly": 0},
        },
    }))?;
    let policies: Api<BackupPolicy> = Api::all(client.clone());
    policies.create(&PostParams::default(), &body).await?;
    let planned = wait_for(
        &policies,
        &policy,
        TIMEOUT,
        "the policy's plan",
        |p: Option<&BackupPolicy>| {
            p.and_then(|p| p.status.as_ref())
                .is_some_and(|s| s.sites.is_some())
        },
    )
    .await?;
    assert_eq!(planned.status.and_then(|s| s.sites), Some(1));
    policies.delete(&policy, &DeleteParams::default()).await?;
    Ok(())
}
