//! MigrationPlans on the real control plane, with the cluster to themselves
//! (run after the serial tests): the operator places new sites on the physical
//! pool (`--default-pool physical`), a plan moves 30 of them to the frontend
//! pool in waves of 10 with at most 3 in flight, through a SIGKILL of the
//! operator, and cordons the emptied physical nodes; a site whose verify step
//! fails goes back to the physical pool on its original volume while the
//! others go on.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use mutu_api::wave::SiteStep;
use mutu_api::{MigrationPlan, PloneSite};
use mutu_e2e::create_migration_plan as create_plan;
use mutu_e2e::{create_product, member_with_sites, restart_operator};
use mutu_runtime::conditions;
use mutu_runtime::testing::{self, eventually, unique_name};
use serde_json::json;
mod plans_together;
mod wave_kills;

const TIMEOUT: Duration = Duration::from_secs(300);
const PHYSICAL: &[&str] = &["--default-pool", "physical"];

/// The pool of every node.
async fn pools(client: &Client) -> anyhow::Result<BTreeMap<String, String>> {
    Ok(Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|n| {
            let pool = n
                .labels()
                .get(mutu_api::POOL_LABEL)
                .cloned()
                .unwrap_or_default();
            (n.name_any(), pool)
        })
        .collect())
}

async fn set_cordon(client: &Client, pool: &str, on: bool) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    for (name, p) in pools(client).await? {
        if p == pool {
            let value = if on { json!(true) } else { json!(null) };
            nodes
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"spec": {"unschedulable": value}})),
                )
                .await?;
        }
    }
    Ok(())
}

/// Checks that `site` serves on `pool` only, with its ZEO data on `volume`.
async fn check_site(
    client: &Client,
    ns: &str,
    site: &str,
    pool: &str,
    volume: &str,
) -> anyhow::Result<()> {
    let s = Api::<PloneSite>::namespaced(client.clone(), ns)
        .get(site)
        .await?;
    let st = s.status.clone().unwrap_or_default();
    anyhow::ensure!(
        conditions::is_true(&st.conditions, mutu_api::CONDITION_READY),
        "{ns}/{site} is not Ready: {:?}",
        st.conditions
    );
    anyhow::ensure!(st.pool.as_deref() == Some(pool), "{site} on {:?}", st.pool);
    for key in [
        mutu_api::OFFLINE_ANNOTATION,
        mutu_api::MAINTENANCE_ANNOTATION,
    ] {
        anyhow::ensure!(!s.annotations().contains_key(key), "{site} still has {key}");
    }
    let node_pools = pools(client).await?;
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("hosting.imio.be/site={site}")))
        .await?;
    let servers: Vec<&Pod> = pods
        .items
        .iter()
        .filter(|p| {
            matches!(
                p.labels().get(mutu_api::COMPONENT).map(String::as_str),
                Some("instance" | "zeo")
            ) && p.metadata.deletion_timestamp.is_none()
        })
        .collect();
    anyhow::ensure!(servers.len() == 3, "{site} runs {} servers", servers.len());
    for p in servers {
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        anyhow::ensure!(
            node_pools.get(&node).map(String::as_str) == Some(pool),
            "{} runs on {node}, not on pool {pool}",
            p.name_any()
        );
    }
    let zeo = Api::<StatefulSet>::namespaced(client.clone(), ns)
        .get(&format!("{site}-zeo"))
        .await?;
    let claim = zeo
        .spec
        .template
        .spec
        .and_then(|p| p.volumes)
        .unwrap_or_default()
        .into_iter()
        .find(|v| v.name == "data")
        .and_then(|v| v.persistent_volume_claim)
        .map(|c| c.claim_name);
    anyhow::ensure!(
        claim.as_deref() == Some(volume),
        "{site}'s ZEO mounts {claim:?}"
    );
    Ok(())
}

#[tokio::test]
async fn thirty_sites_move_to_the_frontend_pool_through_an_operator_kill_and_a_failing_site_goes_back()
-> anyhow::Result<()> {
    let client = testing::client().await?;
    restart_operator(true, PHYSICAL).await?;
    let result = scenario(&client).await;
    // Whatever happened, the next user of the cluster gets it back as it was.
    let _ = Api::<Node>::all(client.clone())
        .delete(EMPTY_NODE, &DeleteParams::default())
        .await;
    set_cordon(&client, "physical", false).await?;
    restart_operator(true, &[]).await?;
    result
}

async fn scenario(client: &Client) -> anyhow::Result<()> {
    let product = unique_name("mig-p");
    create_product(client, &product, json!({"replicas": 2})).await?;
    let run = unique_name("mig");
    let labels = json!({"migration": run});
    let names: Vec<String> = (1..=10).map(|i| format!("site-{i:02}")).collect();
    let (a, b, c) = futures::join!(
        member_with_sites(client, "mig-a", &product, &names, labels.clone(), TIMEOUT),
        member_with_sites(client, "mig-b", &product, &names, labels.clone(), TIMEOUT),
        member_with_sites(client, "mig-c", &product, &names, labels.clone(), TIMEOUT),
    );
    let namespaces = [a?, b?, c?];
    for ns in &namespaces {
        for name in &names {
            check_site(client, ns, name, "physical", &format!("data-{name}-zeo-0")).await?;
        }
    }

    let plan = unique_name("to-frontend");
    create_plan(
        client,
        &plan,
        json!({"selector": {"matchLabels": {"migration": run}}, "from": "physical",
               "to": "frontend", "waveSize": 10, "maxInFlight": 3, "failureThreshold": 3,
               "verifyTimeout": "120s"}),
    )
    .await?;
    let api: Api<MigrationPlan> = Api::all(client.clone());
    let sites: Api<PloneSite> = Api::all(client.clone());
    let most_in_flight = Arc::new(Mutex::new(0usize));
    let before_kill: Arc<Mutex<Option<BTreeMap<String, String>>>> = Default::default();
    let done = eventually(TIMEOUT * 2, "the plan to move the 30 sites", || {
        let (api, sites, plan, run) = (api.clone(), sites.clone(), plan.clone(), run.clone());
        let (most, before_kill) = (most_in_flight.clone(), before_kill.clone());
        async move {
            let p = api.get(&plan).await.ok()?;
            let st = p.status.clone()?;
            // At most 3 sites between their fresh backup and their check, as
            // the sites themselves show it (maintenance page or stopped).
            let offline = sites
                .list(&ListParams::default().labels(&format!("migration={run}")))
                .await
                .ok()?
                .items
                .iter()
                .filter(|s| {
                    s.annotations().contains_key(mutu_api::OFFLINE_ANNOTATION)
                        || s.annotations()
                            .contains_key(mutu_api::MAINTENANCE_ANNOTATION)
                })
                .count();
            {
                let mut most = most.lock().unwrap_or_else(|e| e.into_inner());
                *most = (*most).max(offline).max(st.sites.in_flight.max(0) as usize);
            }
            // A wave starts only when the one before it is finished.
            let current = st
                .site_progress
                .iter()
                .filter(|s| !matches!(s.step, SiteStep::Done | SiteStep::Failed))
                .map(|s| s.wave)
                .min();
            if let Some(current) = current {
                let early: Vec<String> = st
                    .site_progress
                    .iter()
                    .filter(|s| s.wave > current && s.step != SiteStep::Pending)
                    .map(|s| format!("{}/{} (wave {})", s.namespace, s.name, s.wave))
                    .collect();
                assert!(
                    early.is_empty(),
                    "started before wave {current} finished: {early:?}"
                );
            }
            // Mid-plan, the operator dies (SIGKILL) and a new one takes over.
            let kill_now = {
                let mut killed = before_kill.lock().unwrap_or_else(|e| e.into_inner());
                let now = killed.is_none() && st.sites.done >= 8;
                if now {
                    *killed = Some(
                        st.site_progress
                            .iter()
                            .filter(|s| s.step == SiteStep::Done)
                            .map(|s| {
                                let at = s.finished.as_ref().map(|t| t.0.to_string());
                                (
                                    format!("{}/{}", s.namespace, s.name),
                                    at.unwrap_or_default(),
                                )
                            })
                            .collect(),
                    );
                }
                now
            };
            if kill_now {
                restart_operator(true, PHYSICAL).await.ok()?;
                return None;
            }
            conditions::is_true(&st.conditions, mutu_api::CONDITION_COMPLETE).then_some(p)
        }
    })
    .await?;
    let st = done.status.clone().unwrap_or_default();
    assert_eq!(
        (st.sites.total, st.sites.done, st.sites.failed),
        (30, 30, 0),
        "{:?}",
        st.site_progress
            .iter()
            .filter(|s| s.step != SiteStep::Done)
            .map(|s| (&s.name, s.step, &s.reason))
            .collect::<Vec<_>>()
    );
    assert_eq!(st.waves.len(), 3, "30 sites in waves of 10");
    let most = *most_in_flight.lock().unwrap_or_else(|e| e.into_inner());
    assert!(most <= 3, "{most} sites in flight at once");
    assert!(most > 0, "the plan was seen at work");
    // The sites done before the kill were not touched again after it.
    let before = before_kill
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the operator was never killed mid-plan"))?;
    assert!(
        before.len() >= 8 && before.len() < 30,
        "killed after {} sites",
        before.len()
    );
    for s in &st.site_progress {
        let key = format!("{}/{}", s.namespace, s.name);
        if let Some(at) = before.get(&key) {
            let now = s
                .finished
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default();
            assert_eq!(&now, at, "{key} was finished again after the restart");
        }
    }
    // None lost: every site serves on the frontend pool from its new volume;
    // its old volume is kept for the plan's retention.
    for ns in &namespaces {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
        for name in &names {
            let s = Api::<PloneSite>::namespaced(client.clone(), ns)
                .get(name)
                .await?;
            let volume = s
                .annotations()
                .get(mutu_api::DATA_VOLUME_ANNOTATION)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("{ns}/{name} has no new data volume"))?;
            check_site(client, ns, name, "frontend", &volume).await?;
            assert!(claims.get_opt(&volume).await?.is_some(), "{volume} exists");
            assert!(
                claims
                    .get_opt(&format!("data-{name}-zeo-0"))
                    .await?
                    .is_some(),
                "the old volume of {ns}/{name} is kept"
            );
        }
    }
    // The physical nodes hold no more sites: the plan cordoned them.
    let physical: Vec<String> = pools(client)
        .await?
        .into_iter()
        .filter(|(_, p)| p == "physical")
        .map(|(n, _)| n)
        .collect();
    let cordoned = eventually(
        TIMEOUT,
        "the emptied physical nodes to be cordoned",
        || async {
            let p = api.get(&plan).await.ok()?;
            let mut nodes = p.status?.cordoned_nodes;
            nodes.sort();
            (nodes == physical).then_some(nodes)
        },
    )
    .await?;
    for name in &cordoned {
        let node = Api::<Node>::all(client.clone()).get(name).await?;
        assert_eq!(
            node.spec.and_then(|s| s.unschedulable),
            Some(true),
            "{name}"
        );
    }
    mutu_e2e::fault_scenario_passed(
        "operator SIGKILL mid-migration (30 sites): no site redone, lost or left in maintenance",
    );
    api.delete(&plan, &DeleteParams::default()).await?;

    // A site whose servers never become ready on the frontend pool goes back.
    set_cordon(client, "physical", false).await?;
    let run2 = unique_name("mig2");
    let names2: Vec<String> = vec!["keep".into(), "x-frontend-unready".into()];
    let ns2 = member_with_sites(
        client,
        "mig-d",
        &product,
        &names2,
        json!({"migration": run2}),
        TIMEOUT,
    )
    .await?;
    let plan2 = unique_name("verify-fails");
    create_plan(
        client,
        &plan2,
        json!({"selector": {"matchLabels": {"migration": run2}}, "from": "physical",
               "to": "frontend", "waveSize": 2, "maxInFlight": 2, "failureThreshold": 2,
               "verifyTimeout": "20s"}),
    )
    .await?;
    let finished = eventually(TIMEOUT, "the second plan to finish", || async {
        let p = api.get(&plan2).await.ok()?;
        let st = p.status.as_ref()?;
        conditions::is_true(&st.conditions, mutu_api::CONDITION_COMPLETE).then_some(p)
    })
    .await?;
    let st = finished.status.clone().unwrap_or_default();
    assert_eq!((st.sites.done, st.sites.failed), (1, 1));
    let failed = st
        .site_progress
        .iter()
        .find(|s| s.name == "x-frontend-unready")
        .ok_or_else(|| anyhow::anyhow!("the failing site is not in the plan"))?;
    assert_eq!(failed.step, SiteStep::Failed);
    assert_eq!(failed.failed_step, Some(SiteStep::Verifying));
    let reason = failed.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("not ready on pool frontend")
            && reason.contains("put back on pool physical with its original data volume data-x-frontend-unready-zeo-0"),
        "{reason}"
    );
    check_site(
        client,
        &ns2,
        "x-frontend-unready",
        "physical",
        "data-x-frontend-unready-zeo-0",
    )
    .await?;
    let x = Api::<PloneSite>::namespaced(client.clone(), &ns2)
        .get("x-frontend-unready")
        .await?;
    assert!(
        !x.annotations()
            .contains_key(mutu_api::DATA_VOLUME_ANNOTATION)
    );
    let keep = Api::<PloneSite>::namespaced(client.clone(), &ns2)
        .get("keep")
        .await?;
    let volume = keep
        .annotations()
        .get(mutu_api::DATA_VOLUME_ANNOTATION)
        .cloned()
        .unwrap_or_default();
    check_site(client, &ns2, "keep", "frontend", &volume).await?;
    // The failed site lives on the physical pool: its nodes stay schedulable.
    assert!(st.cordoned_nodes.is_empty(), "{:?}", st.cordoned_nodes);

    // Where each site's data lives is written on the volumes themselves: the
    // moved site's first volume names the new one, the failed site's names none.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns2);
    let superseded = |c: &PersistentVolumeClaim| {
        c.annotations()
            .get(mutu_api::SUPERSEDED_BY_ANNOTATION)
            .cloned()
    };
    let first = claims.get("data-keep-zeo-0").await?;
    assert_eq!(superseded(&first), Some(volume.clone()));
    let back = claims.get("data-x-frontend-unready-zeo-0").await?;
    assert_eq!(superseded(&back), None, "rolled back: its data lives there");
    mutu_e2e::fault_scenario_passed(
        "a migrated site that never becomes Ready goes back to its pool and its data",
    );
    recreated_site_finds_its_data_and_retention_keeps_it(client, &ns2, &product, &volume, &plan2)
        .await?;
    api.delete(&plan2, &DeleteParams::default()).await?;
    eventually(TIMEOUT, "the second plan to be gone", || async {
        api.get_opt(&plan2).await.ok()?.is_none().then_some(())
    })
    .await?;
    // Its backups outlive it: a deleted plan takes no backup data with it.
    let made = plans_backups(client, &ns2, &plan2).await?;
    let expected: Vec<String> = [
        "keep-final",
        "keep-pre",
        "x-frontend-unready-final",
        "x-frontend-unready-pre",
    ]
    .iter()
    .map(|b| format!("{plan2}-{b}"))
    .collect();
    assert_eq!(made, expected, "the plan's backups of keep and x");
    a_plan_deleted_midway_finishes_its_site_in_flight_and_puts_its_nodes_back(client, &product)
        .await
}

/// The Backups that MigrationPlan `plan` made in `ns`, each checked to be
/// owned by nothing (so that deleting the plan deletes none).
async fn plans_backups(client: &Client, ns: &str, plan: &str) -> anyhow::Result<Vec<String>> {
    let made_by = format!("migration/{plan}");
    let mut names = Vec::new();
    for b in Api::<mutu_api::Backup>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items
    {
        if b.annotations().get(mutu_api::MADE_BY_ANNOTATION) == Some(&made_by) {
            assert!(
                b.owner_references().is_empty(),
                "{} is owned: {:?}",
                b.name_any(),
                b.owner_references()
            );
            names.push(b.name_any());
        }
    }
    names.sort();
    Ok(names)
}

/// Name of the empty node the mid-way deletion test adds to the physical pool.
const EMPTY_NODE: &str = "mig-empty-physical";

/// A plan deleted while a site is in flight, after it cordoned an emptied node:
/// it starts no other site, stays (saying why) until that site is done, then
/// goes, leaving no node cordoned, no site in maintenance or held, and its
/// backups.
async fn a_plan_deleted_midway_finishes_its_site_in_flight_and_puts_its_nodes_back(
    client: &Client,
    product: &str,
) -> anyhow::Result<()> {
    let run = unique_name("mig3");
    let names: Vec<String> = vec!["a".into(), "b".into(), "c".into()];
    let ns = member_with_sites(
        client,
        "mig-e",
        product,
        &names,
        json!({"migration": run}),
        TIMEOUT,
    )
    .await?;
    // A node of the physical pool that takes no pod: once a site has left,
    // it holds none and the plan cordons it.
    let nodes: Api<Node> = Api::all(client.clone());
    let body = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": EMPTY_NODE, "annotations": {"kwok.x-k8s.io/node": "fake"},
                     "labels": {mutu_api::POOL_LABEL: "physical", "type": "kwok"}},
        "spec": {"taints": [{"key": "mutu.test/empty", "effect": "NoSchedule"}]},
    });
    nodes
        .create(&PostParams::default(), &serde_json::from_value(body)?)
        .await?;
    let plan = unique_name("midway");
    create_plan(
        client,
        &plan,
        json!({"selector": {"matchLabels": {"migration": run}}, "from": "physical",
               "to": "frontend", "waveSize": 1, "maxInFlight": 1, "failureThreshold": 3,
               "verifyTimeout": "120s"}),
    )
    .await?;
    let api: Api<MigrationPlan> = Api::all(client.clone());
    let status = || async {
        api.get(&plan)
            .await
            .ok()
            .and_then(|p| p.status)
            .unwrap_or_default()
    };
    let pause = |paused: bool| {
        let (api, plan) = (api.clone(), plan.clone());
        async move {
            api.patch(
                &plan,
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"paused": paused}})),
            )
            .await
        }
    };
    // Paused with its first site in flight: it finishes that one, cordons the
    // emptied node and starts no other.
    eventually(TIMEOUT, "the first site in flight", || async {
        (status().await.sites.in_flight == 1).then_some(())
    })
    .await?;
    pause(true).await?;
    let cordoned = eventually(
        TIMEOUT,
        "the first site done, the empty node cordoned",
        || async {
            let st = status().await;
            (st.sites.done == 1 && st.cordoned_nodes.iter().any(|n| n == EMPTY_NODE))
                .then_some(st.cordoned_nodes)
        },
    )
    .await?;
    // Resumed, the second site starts; the plan is deleted while it is in flight.
    pause(false).await?;
    eventually(TIMEOUT, "the second site in flight", || async {
        let st = status().await;
        (st.sites.in_flight == 1 && st.sites.done == 1).then_some(())
    })
    .await?;
    api.delete(&plan, &DeleteParams::default()).await?;
    let message = eventually(TIMEOUT, "the plan to say it is being deleted", || async {
        let st = status().await;
        let c = conditions::find(&st.conditions, mutu_api::CONDITION_PROGRESSING)?;
        (c.reason == "Deleting").then(|| c.message.clone())
    })
    .await?;
    assert!(
        message.contains("1 site(s) in flight finish first")
            && message.contains("1 pending site(s) are not started"),
        "{message}"
    );
    eventually(TIMEOUT, "the deleted plan to be gone", || async {
        api.get_opt(&plan).await.ok()?.is_none().then_some(())
    })
    .await?;
    // The nodes it cordoned take sites again: it did not move all its sites.
    for name in &cordoned {
        let node = nodes.get(name).await?;
        assert_ne!(
            node.spec.and_then(|s| s.unschedulable),
            Some(true),
            "{name} is still cordoned"
        );
    }
    // The site in flight finished its move; the third was never touched.
    let sites: Api<PloneSite> = Api::namespaced(client.clone(), &ns);
    for name in ["a", "b"] {
        let s = sites.get(name).await?;
        let volume = s
            .annotations()
            .get(mutu_api::DATA_VOLUME_ANNOTATION)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("{ns}/{name} has no new data volume"))?;
        check_site(client, &ns, name, "frontend", &volume).await?;
    }
    check_site(client, &ns, "c", "physical", "data-c-zeo-0").await?;
    for s in sites.list(&ListParams::default()).await?.items {
        assert!(
            !s.annotations().contains_key(mutu_api::HELD_BY_ANNOTATION),
            "{} is still held",
            s.name_any()
        );
    }
    let made = plans_backups(client, &ns, &plan).await?;
    let expected: Vec<String> = ["a-final", "a-pre", "b-final", "b-pre"]
        .iter()
        .map(|b| format!("{plan}-{b}"))
        .collect();
    assert_eq!(made, expected, "the plan's backups of a and b, none of c");
    mutu_e2e::fault_scenario_passed(
        "a MigrationPlan deleted mid-way: its site in flight finishes, its nodes are uncordoned",
    );
    Ok(())
}

/// The moved site `keep` of `ns` (its data on `volume`) deleted with Retain and
/// re-applied from its YAML (no annotation): it mounts `volume`, not its
/// first volume; once plan `plan`'s retention passes, only the first volume,
/// superseded and mounted by nothing, goes.
async fn recreated_site_finds_its_data_and_retention_keeps_it(
    client: &Client,
    ns: &str,
    product: &str,
    volume: &str,
    plan: &str,
) -> anyhow::Result<()> {
    let sites: Api<PloneSite> = Api::namespaced(client.clone(), ns);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let yaml = sites.get("keep").await?;
    sites
        .patch(
            "keep",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"deletionPolicy": "Retain"}})),
        )
        .await?;
    sites.delete("keep", &DeleteParams::default()).await?;
    eventually(TIMEOUT, "the site to be gone", || async {
        sites.get_opt("keep").await.ok()?.is_none().then_some(())
    })
    .await?;
    let mut again = mutu_e2e::site_json(ns, "keep", product, &yaml.spec.hostnames);
    again["metadata"]["labels"] = json!(yaml.labels());
    sites
        .create(&PostParams::default(), &serde_json::from_value(again)?)
        .await?;
    eventually(TIMEOUT, "the re-created site to be Ready", || async {
        let s = sites.get("keep").await.ok()?;
        let st = s.status?;
        conditions::is_true(&st.conditions, mutu_api::CONDITION_READY).then_some(())
    })
    .await?;
    // Placed by the operator's default pool; its data found on the new volume.
    check_site(client, ns, "keep", "physical", volume).await?;

    // The plan's retention passes: the first volume goes, the live one stays.
    Api::<MigrationPlan>::all(client.clone())
        .patch(
            plan,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"retention": "1s"}})),
        )
        .await?;
    eventually(TIMEOUT, "the superseded first volume to go", || async {
        let c = claims.get_opt("data-keep-zeo-0").await.ok()?;
        c.is_none_or(|c| c.metadata.deletion_timestamp.is_some())
            .then_some(())
    })
    .await?;
    let live = claims.get(volume).await?;
    assert!(
        live.metadata.deletion_timestamp.is_none(),
        "{volume} is being deleted"
    );
    // Nor the failed site's volume, which it mounts.
    let failed = claims.get("data-x-frontend-unready-zeo-0").await?;
    assert!(failed.metadata.deletion_timestamp.is_none());
    check_site(client, ns, "keep", "physical", volume).await?;
    Ok(())
}
