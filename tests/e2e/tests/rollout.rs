//! ReleaseRollouts on the real control plane: a product's sites move to a new
//! release in waves, a site whose upgrade fails goes back to its previous
//! release with the data of its pre-upgrade backup while the others go on,
//! the failure threshold halts a rollout, and `paused` holds it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use mutu_api::{PloneSite, ReleaseRollout, Restore};
use mutu_e2e::{create_product, create_rollout, member_with_sites};
use mutu_runtime::conditions;
use mutu_runtime::testing::{self, eventually, unique_name};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(240);

fn steps(r: &ReleaseRollout) -> BTreeMap<String, String> {
    r.status
        .iter()
        .flat_map(|s| s.site_progress.iter())
        .map(|p| (p.name.clone(), format!("{:?}", p.step)))
        .collect()
}

#[tokio::test]
async fn a_rollout_upgrades_the_sites_in_waves_and_puts_back_the_one_whose_upgrade_fails()
-> anyhow::Result<()> {
    let client = testing::client().await?;
    let product = unique_name("roll-p");
    create_product(&client, &product, json!({})).await?;
    let mut names: Vec<String> = (1..=19).map(|i| format!("town-{i:02}")).collect();
    // The test bed fails the upgrade Job of a site named *-upgrade-fails.
    names.push("town-20-upgrade-fails".into());
    let ns = member_with_sites(&client, "roll", &product, &names, json!({}), TIMEOUT).await?;
    let sites: Api<PloneSite> = Api::namespaced(client.clone(), &ns);

    let rollout = unique_name("roll");
    create_rollout(
        &client,
        &rollout,
        json!({"product": product, "release": "2.0", "waveSize": 5, "maxInFlight": 3,
               "failureThreshold": 3, "verifyTimeout": "60s"}),
    )
    .await?;
    let api: Api<ReleaseRollout> = Api::all(client.clone());
    // Never more than 3 sites between their backup and their check: the plan
    // says so, and so do the sites themselves (the release annotation set
    // while the site does not run it yet).
    let most = Arc::new(AtomicUsize::new(0));
    let most_sites = Arc::new(AtomicUsize::new(0));
    let finished = eventually(TIMEOUT, "the rollout to finish", || {
        let (api, sites, rollout) = (api.clone(), sites.clone(), rollout.clone());
        let (most, most_sites) = (most.clone(), most_sites.clone());
        async move {
            let r = api.get(&rollout).await.ok()?;
            let st = r.status.clone()?;
            most.fetch_max(st.sites.in_flight.max(0) as usize, Ordering::Relaxed);
            let changing = sites
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .iter()
                .filter(|s| {
                    s.annotations()
                        .get(mutu_api::RELEASE_ANNOTATION)
                        .map(String::as_str)
                        == Some("2.0")
                        && s.status.as_ref().and_then(|st| st.release.as_deref()) != Some("2.0")
                })
                .count();
            most_sites.fetch_max(changing, Ordering::Relaxed);
            conditions::is_true(&st.conditions, mutu_api::CONDITION_COMPLETE).then_some(r)
        }
    })
    .await?;
    let st = finished.status.clone().unwrap_or_default();
    assert_eq!(
        (st.sites.total, st.sites.done, st.sites.failed),
        (20, 19, 1),
        "steps: {:?}",
        steps(&finished)
    );
    let (most, most_sites) = (
        most.load(Ordering::Relaxed),
        most_sites.load(Ordering::Relaxed),
    );
    assert!(most <= 3, "{most} sites in flight at once");
    assert!(most > 0, "the rollout was seen at work");
    assert!(most_sites <= 3, "{most_sites} sites were upgrading at once");
    assert_eq!(st.waves.len(), 4, "20 sites in waves of 5");
    assert!(st.waves.iter().all(|w| w.completion_time.is_some()));

    for name in &names {
        let s = sites.get(name).await?;
        let status = s.status.clone().unwrap_or_default();
        let ready = conditions::is_true(&status.conditions, mutu_api::CONDITION_READY);
        assert!(ready, "{name} is Ready");
        if name.ends_with("-upgrade-fails") {
            assert_eq!(
                status.release.as_deref(),
                Some("1.0"),
                "{name} stays on 1.0"
            );
            let p = st
                .site_progress
                .iter()
                .find(|p| &p.name == name)
                .ok_or_else(|| anyhow::anyhow!("{name} not in the rollout's status"))?;
            assert_eq!(p.step, mutu_api::wave::SiteStep::Failed);
            assert_eq!(p.failed_step, Some(mutu_api::wave::SiteStep::Upgrading));
            let reason = p.reason.clone().unwrap_or_default();
            assert!(
                reason.contains("back on release 1.0 with its data of before the upgrade"),
                "{reason}"
            );
            // Its data went back to the backup taken before the upgrade.
            let restores: Api<Restore> = Api::namespaced(client.clone(), &ns);
            let restore = restores
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .find(|r| &r.spec.site == name)
                .ok_or_else(|| anyhow::anyhow!("no Restore of {name}"))?;
            assert!(
                restore.spec.backup.ends_with("-pre"),
                "{}",
                restore.spec.backup
            );
            assert!(conditions::is_true(
                &restore.status.clone().unwrap_or_default().conditions,
                mutu_api::CONDITION_COMPLETE
            ));
            assert!(
                !s.annotations()
                    .contains_key(mutu_api::MAINTENANCE_ANNOTATION),
                "{name} is out of maintenance"
            );
        } else {
            assert_eq!(status.release.as_deref(), Some("2.0"), "{name} runs 2.0");
            assert_eq!(status.previous_release.as_deref(), Some("1.0"));
        }
        // Offline from its backup until the end, so that a rollback drops
        // nothing: every site is back online afterwards, upgraded or not.
        assert!(
            !s.annotations().contains_key(mutu_api::OFFLINE_ANNOTATION),
            "{name} still shows the maintenance page"
        );
    }

    api.delete(&rollout, &DeleteParams::default()).await?;
    mutu_e2e::fault_scenario_passed(
        "a rollout whose upgrade Job fails on one site: that site is put back on its release, the others go on",
    );
    Ok(())
}

#[tokio::test]
async fn the_failure_threshold_halts_a_rollout_and_paused_holds_one() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let product = unique_name("halt-p");
    create_product(&client, &product, json!({})).await?;
    let names: Vec<String> = ["a-upgrade-fails", "b", "c"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let ns = member_with_sites(&client, "halt", &product, &names, json!({}), TIMEOUT).await?;
    let api: Api<ReleaseRollout> = Api::all(client.clone());

    // Paused from the start: nothing moves.
    let rollout = unique_name("halt");
    create_rollout(
        &client,
        &rollout,
        json!({"product": product, "release": "2.0", "waveSize": 1, "maxInFlight": 1,
               "failureThreshold": 1, "paused": true}),
    )
    .await?;
    let held = eventually(TIMEOUT, "the paused rollout to say so", || async {
        let r = api.get(&rollout).await.ok()?;
        let c = conditions::find(
            &r.status.as_ref()?.conditions,
            mutu_api::CONDITION_PROGRESSING,
        )?;
        (c.reason == "Paused").then_some(r)
    })
    .await?;
    assert_eq!(held.status.clone().unwrap_or_default().sites.pending, 3);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let still = api.get(&rollout).await?;
    assert!(
        steps(&still).values().all(|s| s == "Pending"),
        "a paused rollout starts nothing: {:?}",
        steps(&still)
    );

    // Resumed: the first site fails, which reaches the threshold of 1.
    api.patch(
        &rollout,
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"paused": false}})),
    )
    .await?;
    let halted = eventually(TIMEOUT, "the rollout to halt", || async {
        let r = api.get(&rollout).await.ok()?;
        let st = r.status.as_ref()?;
        (conditions::is_true(&st.conditions, mutu_api::CONDITION_FAILED) && st.sites.in_flight == 0)
            .then_some(r)
    })
    .await?;
    let st = halted.status.clone().unwrap_or_default();
    assert_eq!(
        (st.sites.failed, st.sites.pending),
        (1, 2),
        "{:?}",
        steps(&halted)
    );
    let progressing = conditions::find(&st.conditions, mutu_api::CONDITION_PROGRESSING).cloned();
    assert_eq!(progressing.map(|c| c.reason), Some("Halted".to_string()));
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = api.get(&rollout).await?;
    assert_eq!(
        after.status.clone().unwrap_or_default().sites.pending,
        2,
        "a halted rollout starts nothing more"
    );
    let sites: Api<PloneSite> = Api::namespaced(client.clone(), &ns);
    for name in ["b", "c"] {
        let s = sites.get(name).await?;
        assert_eq!(
            s.status.and_then(|s| s.release).as_deref(),
            Some("1.0"),
            "{name} was not touched"
        );
    }
    api.delete(&rollout, &DeleteParams::default()).await?;
    mutu_e2e::fault_scenario_passed(
        "failures reaching a rollout's threshold halt it; a paused rollout holds",
    );
    Ok(())
}

#[tokio::test]
async fn one_holder_at_a_time_a_restore_and_a_rollout_wait_for_the_site_and_for_each_other()
-> anyhow::Result<()> {
    let client = testing::client().await?;
    let product = unique_name("hold-p");
    create_product(&client, &product, json!({})).await?;
    let names = vec!["town".to_string()];
    let ns = member_with_sites(&client, "hold", &product, &names, json!({}), TIMEOUT).await?;
    let sites: Api<PloneSite> = Api::namespaced(client.clone(), &ns);
    let held_by = |value: Option<&str>| json!({"metadata": {"annotations": {mutu_api::HELD_BY_ANNOTATION: value}}});
    // The platform team holds the site by hand; a backup of it is taken.
    sites
        .patch(
            "town",
            &PatchParams::default(),
            &Patch::Merge(&held_by(Some("ops/jdoe"))),
        )
        .await?;
    mutu_e2e::backup_site(&client, &ns, "before", "town").await?;
    let backups: Api<mutu_api::Backup> = Api::namespaced(client.clone(), &ns);
    eventually(TIMEOUT, "the backup to complete", || async {
        let b = backups.get("before").await.ok()?;
        conditions::is_true(&b.status?.conditions, mutu_api::CONDITION_COMPLETE).then_some(())
    })
    .await?;

    // A Restore and a ReleaseRollout of the site both wait for the person.
    mutu_e2e::restore_site(&client, &ns, "back", "town", "before").await?;
    let restores: Api<Restore> = Api::namespaced(client.clone(), &ns);
    eventually(TIMEOUT, "the restore to wait for the site", || async {
        let r = restores.get("back").await.ok()?;
        let c = conditions::find(&r.status?.conditions, mutu_api::CONDITION_PROGRESSING)?.clone();
        (c.reason == "WaitingForSite" && c.message.contains("held by ops/jdoe")).then_some(())
    })
    .await?;
    let rollout = unique_name("hold");
    create_rollout(
        &client,
        &rollout,
        json!({"product": product, "release": "2.0", "waveSize": 1, "maxInFlight": 1,
               "failureThreshold": 1, "verifyTimeout": "60s"}),
    )
    .await?;
    let api: Api<ReleaseRollout> = Api::all(client.clone());
    eventually(TIMEOUT, "the rollout to wait for the site", || async {
        let r = api.get(&rollout).await.ok()?;
        let p = r.status?.site_progress.into_iter().next()?;
        p.reason?.contains("held by ops/jdoe").then_some(())
    })
    .await?;
    eventually(TIMEOUT, "the site's status to name its holder", || async {
        let s = sites.get("town").await.ok()?;
        (s.status?.held_by.as_deref() == Some("ops/jdoe")).then_some(())
    })
    .await?;
    let site = sites.get("town").await?;
    for key in [
        mutu_api::MAINTENANCE_ANNOTATION,
        mutu_api::OFFLINE_ANNOTATION,
        mutu_api::RELEASE_ANNOTATION,
    ] {
        assert!(
            !site.annotations().contains_key(key),
            "{key} set while held"
        );
    }

    // Let go: each takes its turn, never both at once, and lets go at the end.
    sites
        .patch(
            "town",
            &PatchParams::default(),
            &Patch::Merge(&held_by(None)),
        )
        .await?;
    let seen: Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    eventually(TIMEOUT, "the restore and the rollout to finish", || {
        let (sites, restores, api, rollout, seen) = (
            sites.clone(),
            restores.clone(),
            api.clone(),
            rollout.clone(),
            seen.clone(),
        );
        async move {
            let s = sites.get("town").await.ok()?;
            let now = s
                .annotations()
                .get(mutu_api::HELD_BY_ANNOTATION)
                .cloned()
                .unwrap_or_default();
            {
                let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                if seen.last() != Some(&now) {
                    seen.push(now.clone());
                }
            }
            let r = restores.get("back").await.ok()?;
            let restored = r.status.as_ref().is_some_and(|st| {
                conditions::is_true(&st.conditions, mutu_api::CONDITION_COMPLETE)
            });
            let rolled = api.get(&rollout).await.ok()?.status.is_some_and(|st| {
                conditions::is_true(&st.conditions, mutu_api::CONDITION_COMPLETE)
            });
            (restored && rolled && now.is_empty()).then_some(())
        }
    })
    .await?;
    let holders = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let turns: Vec<&String> = holders.iter().filter(|h| !h.is_empty()).collect();
    let restore_holder = "restore/back".to_string();
    let rollout_holder = format!("rollout/{rollout}");
    assert!(
        turns.len() == 2 && turns.contains(&&restore_holder) && turns.contains(&&rollout_holder),
        "each holds the site once, one after the other: {holders:?}"
    );
    let done = api.get(&rollout).await?;
    let st = done.status.unwrap_or_default();
    assert_eq!(
        (st.sites.done, st.sites.failed),
        (1, 0),
        "{:?}",
        st.site_progress
    );
    // The site's status says who holds it, and then that nobody does.
    eventually(TIMEOUT, "the site's status to show no holder", || async {
        let s = sites.get("town").await.ok()?;
        s.status?.held_by.is_none().then_some(())
    })
    .await?;
    api.delete(&rollout, &DeleteParams::default()).await?;
    mutu_e2e::fault_scenario_passed(
        "a Restore and a rollout on one site at once: one holder at a time, each waits",
    );
    Ok(())
}
