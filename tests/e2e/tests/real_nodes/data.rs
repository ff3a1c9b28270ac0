//! A site's content through mutu's data operations, on real nodes: what the
//! site acknowledged is there afterwards, byte for byte.

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::Api;
use kube::api::PostParams;
use kube::{Client, ResourceExt};
use mutu_api::wave::SiteStep;
use mutu_api::{Backup, MigrationPlan, PloneSite, Product, ReleaseRollout, Restore};
use mutu_e2e::real::{
    PloneContent, TIMEOUT, Writer, all_there, apply_catalog, client, member, pod_ready, pods,
    random_bytes, ready_site, site_ready,
};
use mutu_e2e::{create_in as create, create_site, kubectl};
use mutu_runtime::conditions;
use mutu_runtime::testing::{eventually, unique_name};
use serde_json::json;

/// Waits until the run `name` (Backup or Restore) is Complete; fails at once
/// when it Failed, with its conditions and the namespace's Job pods.
pub(crate) async fn completed<K>(client: &Client, ns: &str, name: &str) -> anyhow::Result<()>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + HasRun,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let outcome = eventually(TIMEOUT, &format!("{name} to complete"), || async {
        let run = api.get(name).await.ok()?;
        let conds = run.conditions();
        if conditions::is_true(&conds, "Failed") {
            return Some(Err(format!("{conds:?}")));
        }
        conditions::is_true(&conds, "Complete").then_some(Ok(()))
    })
    .await;
    match outcome {
        Ok(Ok(())) => Ok(()),
        failed => {
            let pods = kubectl(["-n", ns, "get", "pods", "-o", "wide"]);
            let logs = kubectl([
                "-n",
                ns,
                "logs",
                "--tail=40",
                "-l",
                "batch.kubernetes.io/job-name",
                "--all-containers",
                "--prefix",
            ]);
            anyhow::bail!(
                "{name}: {failed:?}\n--- pods:\n{}\n--- Job logs:\n{}{}",
                pods.stdout,
                logs.stdout,
                logs.stderr
            )
        }
    }
}

/// The conditions of a Backup or a Restore.
pub(crate) trait HasRun {
    fn conditions(&self) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>;
}

impl HasRun for Backup {
    fn conditions(&self) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        self.status.clone().unwrap_or_default().conditions
    }
}

impl HasRun for Restore {
    fn conditions(&self) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
        self.status.clone().unwrap_or_default().conditions
    }
}

#[tokio::test]
async fn a_zeo_sites_backup_holds_its_content_and_a_restore_brings_it_back_byte_for_byte()
-> anyhow::Result<()> {
    let client = client().await?;
    let (_, ns, domain) = member(&client, "rn-data", json!({"dev-plone": 1})).await?;
    let host = format!("data.{domain}");
    ready_site(
        &client,
        &ns,
        "data",
        json!({"product": "dev-plone", "hostnames": [host]}),
    )
    .await?;
    let site = PloneContent::of(&client, &ns, "data", &host).await?;
    site.wait_serving().await?;

    // Content, then a backup of it.
    let blob = random_bytes(300 * 1024);
    site.create_document("kept", "<p>Ordre du jour du conseil</p>")
        .await?;
    site.create_document("changed", "<p>Version approuvée</p>")
        .await?;
    site.create_file("annex", &blob).await?;
    mutu_e2e::backup_site(&client, &ns, "before", "data").await?;
    completed::<Backup>(&client, &ns, "before").await?;
    // The member's backup volume is shared by every node (ReadWriteMany).
    let claim = Api::<PersistentVolumeClaim>::namespaced(client.clone(), &ns)
        .get("backups")
        .await?;
    assert_eq!(claim.status.and_then(|s| s.phase).as_deref(), Some("Bound"));

    // Changes after the backup: a text changed, the file deleted, a page added.
    site.set_text("changed", "<p>Version modifiée par erreur</p>")
        .await?;
    site.delete("annex").await?;
    site.create_document("after", "<p>Écrit après la sauvegarde</p>")
        .await?;
    assert_eq!(site.file_bytes("annex").await?, None);
    assert!(site.document_text("after").await?.is_some());

    // The restore puts the site back as it was at the backup.
    mutu_e2e::restore_site(&client, &ns, "undo", "data", "before").await?;
    completed::<Restore>(&client, &ns, "undo").await?;
    site.wait_serving().await?;
    assert_eq!(
        site.document_text("kept").await?.as_deref(),
        Some("<p>Ordre du jour du conseil</p>")
    );
    assert_eq!(
        site.document_text("changed").await?.as_deref(),
        Some("<p>Version approuvée</p>")
    );
    let restored = site.file_bytes("annex").await?;
    assert!(
        restored.as_deref() == Some(blob.as_slice()),
        "the file's blob is not the one backed up ({:?} bytes)",
        restored.map(|b| b.len())
    );
    assert_eq!(site.document_text("after").await?, None);

    // A point in time between two backups: exactly what the site held then.
    site.create_document("minutes", "<p>Procès-verbal</p>")
        .await?;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    // Kubernetes' times are to the second: this one is after "minutes" was
    // written, and "late" is written more than a second later.
    let at = jiff::Timestamp::now();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    site.create_document("late", "<p>Écrit après le moment choisi</p>")
        .await?;
    site.set_text("kept", "<p>Modifié après le moment choisi</p>")
        .await?;
    mutu_e2e::backup_site(&client, &ns, "later", "data").await?;
    completed::<Backup>(&client, &ns, "later").await?;
    create::<Restore>(
        &client,
        &ns,
        json!({
            "apiVersion": mutu_api::API_VERSION, "kind": "Restore",
            "metadata": {"name": "at-minutes", "namespace": ns},
            "spec": {"site": "data", "backup": "later", "confirm": "data", "pointInTime": at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()},
        }),
    )
    .await?;
    completed::<Restore>(&client, &ns, "at-minutes").await?;
    site.wait_serving().await?;
    assert_eq!(
        site.document_text("minutes").await?.as_deref(),
        Some("<p>Procès-verbal</p>")
    );
    assert_eq!(
        site.document_text("late").await?,
        None,
        "written after the time"
    );
    assert_eq!(
        site.document_text("kept").await?.as_deref(),
        Some("<p>Ordre du jour du conseil</p>"),
        "changed after the time"
    );
    assert!(site.file_bytes("annex").await?.as_deref() == Some(blob.as_slice()));
    mutu_e2e::real::free(&[&ns]);
    Ok(())
}

/// Runs `python3 -c CODE` in the first Ready instance of `site`; its output.
async fn in_instance(client: &Client, ns: &str, site: &str, code: &str) -> anyhow::Result<String> {
    let pod = eventually(TIMEOUT, "a Ready instance", || async {
        pods(client, ns, site, "instance")
            .await
            .ok()?
            .into_iter()
            .find(|p| pod_ready(p) && p.metadata.deletion_timestamp.is_none())
    })
    .await?;
    let out = kubectl([
        "-n",
        ns,
        "exec",
        &pod.name_any(),
        "--",
        "python3",
        "-c",
        code,
    ]);
    anyhow::ensure!(out.success, "{code}: {}", out.stderr);
    Ok(out.stdout)
}

/// Adds `note` to the generic application's notes (kept on its volume).
async fn add_note(client: &Client, ns: &str, site: &str, note: &str) -> anyhow::Result<()> {
    let code = format!(
        "import urllib.request as u; r = u.urlopen(u.Request('http://127.0.0.1:8080/notes', data={note:?}.encode(), method='POST'), timeout=5); print(r.status)"
    );
    in_instance(client, ns, site, &code).await.map(|_| ())
}

/// The generic application's notes, as it serves them.
async fn notes(client: &Client, ns: &str, site: &str) -> anyhow::Result<String> {
    let code = "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8080/notes', timeout=5).read().decode(), end='')";
    in_instance(client, ns, site, code).await
}

#[tokio::test]
async fn a_generic_products_volume_is_backed_up_and_restored_as_it_was() -> anyhow::Result<()> {
    let client = client().await?;
    let (_, ns, domain) = member(&client, "rn-vol", json!({"dev-generic": 1})).await?;
    ready_site(
        &client,
        &ns,
        "notes",
        json!({"product": "dev-generic", "hostnames": [format!("notes.{domain}")]}),
    )
    .await?;
    add_note(&client, &ns, "notes", "budget 2027 adopted").await?;
    add_note(&client, &ns, "notes", "séance du 12 janvier").await?;
    let at_backup = notes(&client, &ns, "notes").await?;
    assert!(at_backup.contains("budget 2027 adopted"), "{at_backup}");
    mutu_e2e::backup_site(&client, &ns, "night", "notes").await?;
    completed::<Backup>(&client, &ns, "night").await?;
    let backup = Api::<Backup>::namespaced(client.clone(), &ns)
        .get("night")
        .await?;
    assert!(
        backup
            .status
            .as_ref()
            .and_then(|s| s.size)
            .is_some_and(|bytes| bytes > 0),
        "the backup reports its size: {:?}",
        backup.status
    );

    add_note(&client, &ns, "notes", "written after the backup").await?;
    assert_ne!(notes(&client, &ns, "notes").await?, at_backup);
    mutu_e2e::restore_site(&client, &ns, "back", "notes", "night").await?;
    completed::<Restore>(&client, &ns, "back").await?;
    assert_eq!(notes(&client, &ns, "notes").await?, at_backup);

    // A point in time between backups is not something a copy of a volume has.
    create::<Restore>(
        &client,
        &ns,
        json!({
            "apiVersion": mutu_api::API_VERSION, "kind": "Restore",
            "metadata": {"name": "at-noon", "namespace": ns},
            "spec": {"site": "notes", "backup": "night", "confirm": "notes", "pointInTime": "2026-01-01T12:00:00Z"},
        }),
    )
    .await?;
    let restores: Api<Restore> = Api::namespaced(client.clone(), &ns);
    let failed = eventually(
        TIMEOUT,
        "the point-in-time restore to be refused",
        || async {
            let r = restores.get("at-noon").await.ok()?;
            let conds = r.status.unwrap_or_default().conditions;
            conds
                .into_iter()
                .find(|c| c.type_ == "Failed" && c.status == "True")
        },
    )
    .await?;
    assert_eq!(failed.reason, "PointInTimeUnsupported");
    assert!(
        failed.message.contains("spec.pointInTime"),
        "{}",
        failed.message
    );
    assert_eq!(notes(&client, &ns, "notes").await?, at_backup);
    mutu_e2e::real::free(&[&ns]);
    Ok(())
}

/// Waits until `site` serves, then checks that every page of `acknowledged`
/// (at least two: the writer wrote meanwhile) is there with its text.
#[tokio::test]
async fn a_migration_moves_a_zeo_sites_data_to_the_other_node_and_loses_no_acknowledged_write()
-> anyhow::Result<()> {
    let client = client().await?;
    let (_, ns, domain) = member(&client, "rn-move", json!({"dev-plone": 1})).await?;
    let host = format!("move.{domain}");
    let run = unique_name("move");
    create_site(
        &client,
        json!({
            "apiVersion": "hosting.imio.be/v1alpha1", "kind": "PloneSite",
            "metadata": {"name": "move", "namespace": ns, "labels": {"migration": run}},
            "spec": {"product": "dev-plone", "hostnames": [host]},
        }),
    )
    .await?;
    site_ready(&client, &ns, "move").await?;
    let site = std::sync::Arc::new(PloneContent::of(&client, &ns, "move", &host).await?);
    site.wait_serving().await?;
    let blob = random_bytes(200 * 1024);
    site.create_file("annex", &blob).await?;
    site.create_document("before", "<p>Avant le déménagement</p>")
        .await?;

    // An agent keeps writing while the site moves from frontend-1 to physical-1.
    let writer = Writer::start(site.clone(), "w");
    let plan = unique_name("to-physical");
    let body: MigrationPlan = serde_json::from_value(json!({
        "apiVersion": "hosting.imio.be/v1alpha1", "kind": "MigrationPlan",
        "metadata": {"name": plan},
        "spec": {"selector": {"matchLabels": {"migration": run}}, "from": "frontend",
                 "to": "physical", "waveSize": 1, "maxInFlight": 1, "failureThreshold": 1,
                 "verifyTimeout": "600s"},
    }))?;
    let plans: Api<MigrationPlan> = Api::all(client.clone());
    plans.create(&PostParams::default(), &body).await?;
    let done = eventually(TIMEOUT, "the site to move", || async {
        let p = plans.get(&plan).await.ok()?;
        let st = p.status?;
        let progress = st.site_progress.iter().find(|p| p.name == "move")?;
        matches!(progress.step, SiteStep::Done | SiteStep::Failed).then(|| progress.clone())
    })
    .await?;
    // A little more writing on the new node, then every acknowledged page.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let acknowledged = writer.stop().await?;
    assert_eq!(done.step, SiteStep::Done, "{:?}", done.reason);

    for component in ["zeo", "instance"] {
        let running: Vec<_> = pods(&client, &ns, "move", component)
            .await?
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        assert!(!running.is_empty(), "no {component} of the moved site runs");
        for pod in running {
            assert_eq!(
                pod.spec.and_then(|s| s.node_name).as_deref(),
                Some("physical-1"),
                "{component} of the moved site"
            );
        }
    }
    all_there(&site, &acknowledged, "the move").await?;
    assert_eq!(
        site.document_text("before").await?.as_deref(),
        Some("<p>Avant le déménagement</p>")
    );
    assert!(site.file_bytes("annex").await?.as_deref() == Some(blob.as_slice()));
    plans.delete(&plan, &Default::default()).await?;
    mutu_e2e::real::free(&[&ns]);
    Ok(())
}

#[tokio::test]
async fn a_rollout_upgrades_a_site_to_the_next_plone_release_and_loses_no_acknowledged_write()
-> anyhow::Result<()> {
    let client = client().await?;
    // A product of its own, so that the rollout takes no other test's site.
    apply_catalog()?;
    let products: Api<Product> = Api::all(client.clone());
    let mut spec = products.get("dev-plone").await?.spec;
    spec.release = "6.1.5".into();
    let product = unique_name("rn-roll-p");
    products
        .create(&PostParams::default(), &Product::new(&product, spec))
        .await?;
    let (_, ns, domain) = member(&client, "rn-roll", json!({ product.clone(): 1 })).await?;
    let host = format!("roll.{domain}");
    ready_site(
        &client,
        &ns,
        "roll",
        json!({"product": product, "hostnames": [host]}),
    )
    .await?;
    let site = std::sync::Arc::new(PloneContent::of(&client, &ns, "roll", &host).await?);
    site.wait_serving().await?;
    let blob = random_bytes(100 * 1024);
    site.create_file("annex", &blob).await?;
    site.create_document("before", "<p>Avant la mise à jour</p>")
        .await?;

    let writer = Writer::start(site.clone(), "w");
    let rollout = unique_name("to-622");
    let body: ReleaseRollout = serde_json::from_value(json!({
        "apiVersion": "hosting.imio.be/v1alpha1", "kind": "ReleaseRollout",
        "metadata": {"name": rollout},
        "spec": {"product": product, "release": "6.2.2", "waveSize": 1, "maxInFlight": 1,
                 "failureThreshold": 1, "verifyTimeout": "600s"},
    }))?;
    let rollouts: Api<ReleaseRollout> = Api::all(client.clone());
    rollouts.create(&PostParams::default(), &body).await?;
    let done = eventually(TIMEOUT, "the site's upgrade", || async {
        let r = rollouts.get(&rollout).await.ok()?;
        let progress = r
            .status?
            .site_progress
            .into_iter()
            .find(|p| p.name == "roll")?;
        matches!(progress.step, SiteStep::Done | SiteStep::Failed).then_some(progress)
    })
    .await?;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let acknowledged = writer.stop().await?;
    assert_eq!(done.step, SiteStep::Done, "{:?}", done.reason);

    let upgraded = Api::<PloneSite>::namespaced(client.clone(), &ns)
        .get("roll")
        .await?;
    let status = upgraded.status.unwrap_or_default();
    assert_eq!(status.release.as_deref(), Some("6.2.2"));
    assert_eq!(status.previous_release.as_deref(), Some("6.1.5"));
    for pod in pods(&client, &ns, "roll", "instance").await? {
        if pod.metadata.deletion_timestamp.is_none() && pod_ready(&pod) {
            let image = pod.spec.and_then(|s| s.containers[0].image.clone());
            assert_eq!(image.as_deref(), Some("mutu.local/plone:6.2.2"));
        }
    }
    all_there(&site, &acknowledged, "the upgrade").await?;
    assert_eq!(
        site.document_text("before").await?.as_deref(),
        Some("<p>Avant la mise à jour</p>")
    );
    assert!(site.file_bytes("annex").await?.as_deref() == Some(blob.as_slice()));
    rollouts.delete(&rollout, &Default::default()).await?;
    mutu_e2e::real::free(&[&ns]);
    Ok(())
}

/// The version of Plone's profile the site's database is at (what upgrade
/// steps change), from plone.restapi's `@system`.
async fn profile_version(site: &PloneContent) -> anyhow::Result<String> {
    let answer = site
        .call(reqwest::Method::GET, "/++api++/@system", None)
        .await?;
    anyhow::ensure!(answer.status == 200, "@system: {}", answer.status);
    answer.json()["plone_gs_metadata_version_installed"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("@system says no profile version: {}", answer.json()))
}

#[tokio::test]
async fn an_upgrade_that_fails_after_committing_its_steps_leaves_the_site_on_its_release_and_data()
-> anyhow::Result<()> {
    let client = client().await?;
    // A product of its own whose upgrade runs Plone's real upgrade steps (they
    // commit), then fails: the worst case, a database half-way to the new release.
    apply_catalog()?;
    let products: Api<Product> = Api::all(client.clone());
    let mut spec = products.get("dev-plone").await?.spec;
    spec.release = "6.1.5".into();
    spec.upgrade_command = vec![
        "/bin/sh".into(),
        "-c".into(),
        "/app/bin/zconsole run /app/etc/zope.conf \"$0\" \"$@\" && echo 'upgraded; failing now' >&2 && exit 3".into(),
    ];
    let product = unique_name("rn-broken-p");
    products
        .create(&PostParams::default(), &Product::new(&product, spec))
        .await?;
    let (_, ns, domain) = member(&client, "rn-broken", json!({ product.clone(): 1 })).await?;
    let host = format!("broken.{domain}");
    ready_site(
        &client,
        &ns,
        "broken",
        json!({"product": product, "hostnames": [host]}),
    )
    .await?;
    let site = std::sync::Arc::new(PloneContent::of(&client, &ns, "broken", &host).await?);
    site.wait_serving().await?;
    let blob = random_bytes(100 * 1024);
    site.create_file("annex", &blob).await?;
    site.create_document("before", "<p>Avant la mise à jour</p>")
        .await?;
    let version = profile_version(&site).await?;

    let writer = Writer::start(site.clone(), "w");
    let rollout = unique_name("broken-to-622");
    let body: ReleaseRollout = serde_json::from_value(json!({
        "apiVersion": "hosting.imio.be/v1alpha1", "kind": "ReleaseRollout",
        "metadata": {"name": rollout},
        "spec": {"product": product, "release": "6.2.2", "waveSize": 1, "maxInFlight": 1,
                 "failureThreshold": 1, "verifyTimeout": "600s"},
    }))?;
    let rollouts: Api<ReleaseRollout> = Api::all(client.clone());
    rollouts.create(&PostParams::default(), &body).await?;
    // The upgrade Job really upgraded (and committed) before it failed. Its first attempt
    // upgrades, its retry finds nothing left to do: what every read of the pods' logs
    // showed is kept, as a pod's log may be read only while the other is not yet there, or
    // be gone once the rollback began.
    let seen = std::sync::Mutex::new(String::new());
    let log = eventually(TIMEOUT, "the upgrade Job to upgrade, then fail", || async {
        let out = kubectl([
            "-n",
            &ns,
            "logs",
            "-l",
            "batch.kubernetes.io/job-name=broken-upgrade-6-2-2",
            "--tail=-1",
        ]);
        let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        if !seen.contains(&out.stdout) {
            seen.push_str(&out.stdout);
        }
        (seen.contains("upgraded; failing now") && seen.contains("profile(s)"))
            .then(|| seen.clone())
    })
    .await?;
    assert!(
        log.contains("upgraded ") && log.contains("profile(s)"),
        "the upgrade ran no step of Plone's profile: {log}"
    );
    let done = eventually(TIMEOUT, "the site's upgrade to end", || async {
        let r = rollouts.get(&rollout).await.ok()?;
        let progress = r
            .status?
            .site_progress
            .into_iter()
            .find(|p| p.name == "broken")?;
        matches!(progress.step, SiteStep::Done | SiteStep::Failed).then_some(progress)
    })
    .await?;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let acknowledged = writer.stop().await?;
    assert_eq!(done.step, SiteStep::Failed, "{:?}", done.reason);

    // On its release, serving it, its database as before the upgrade (the
    // backup taken before it, restored), with every page it acknowledged.
    let now = Api::<PloneSite>::namespaced(client.clone(), &ns)
        .get("broken")
        .await?;
    assert_eq!(
        now.status.unwrap_or_default().release.as_deref(),
        Some("6.1.5")
    );
    let serving: Vec<_> = pods(&client, &ns, "broken", "instance")
        .await?
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && pod_ready(p))
        .collect();
    assert!(!serving.is_empty(), "no instance serves");
    for pod in serving {
        let image = pod.spec.and_then(|s| s.containers[0].image.clone());
        assert_eq!(image.as_deref(), Some("mutu.local/plone:6.1.5"));
    }
    all_there(&site, &acknowledged, "the failed upgrade").await?;
    assert_eq!(
        profile_version(&site).await?,
        version,
        "the database keeps steps of the failed upgrade"
    );
    assert_eq!(
        site.document_text("before").await?.as_deref(),
        Some("<p>Avant la mise à jour</p>")
    );
    assert!(site.file_bytes("annex").await?.as_deref() == Some(blob.as_slice()));
    rollouts.delete(&rollout, &Default::default()).await?;
    mutu_e2e::real::free(&[&ns]);
    mutu_e2e::fault_scenario_passed(
        "a Plone upgrade failing after committing its steps: the site is back on its release and data",
    );
    Ok(())
}
