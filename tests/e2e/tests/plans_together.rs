//! A MigrationPlan and a ReleaseRollout applied together over the same 20 ZEO
//! sites (two members, ten each), round after round (2 by default,
//! `MUTU_PLANS_TOGETHER_ROUNDS` to change it): each round moves the sites to
//! the other pool (frontend and physical in turn) and upgrades them to a new
//! release (2.0, 3.0, ...), both plans with up to 10 sites in flight, the
//! per-site hold (`hosting.imio.be/held-by`) deciding which plan works on a
//! site first. Each round takes about 80 s here.
//!
//! While a round runs, watches of the sites, the plans, their Backups,
//! Restores, Jobs, Deployments and volume claims check every version the API
//! server hands out:
//!
//! - a site's maintenance marks (`offline`, `maintenance`) name its holder (or
//!   a Restore its holder made), and only its holder changes its release (the
//!   rollout) or its pool and data volume (the migration): no site is worked on
//!   by both plans at once; each plan holds each site once, in one stretch;
//! - neither plan has more sites in flight than its `maxInFlight`, in its
//!   status or on the sites themselves (sites it keeps offline or stopped);
//! - each site's steps only go forward in each plan (no step taken twice), a
//!   wave starts only once the one before it is finished, and a site done stays
//!   done (its finish time never changes);
//! - each site's release (status) and its instances' image go from the old
//!   release to the new one once, never back;
//! - no Backup, Restore or Job (backup, restore, upgrade) is created twice
//!   under one name;
//! - a data volume claim is deleted only while another one, there, supersedes
//!   it.
//!
//! Once both plans are complete: every site is done in both (none failed), is
//! Ready, on the plan's target pool and on the rollout's release (both its
//! instances run its image), out of maintenance and held by no one; its ZEO
//! server mounts the claim the migration made, the only one of the site's
//! claims superseded by none, and every older one leads to it
//! (`superseded-by`); each plan made exactly one Backup per site and step
//! (`-pre` for both, `-final` for the migration), each complete with one Job
//! that succeeded once, and the migration one Restore per site, of its
//! `-final` Backup, the rollout none; the nodes the migration cordoned are of
//! the pool it emptied. The plans are then deleted, the nodes take sites
//! again, and the next round starts. At the end the members (and their
//! namespaces) and the Product go.
//!
//! Settings: waves of 20, `maxInFlight` 10 each, a `verifyTimeout` of 90 s (it
//! only matters to a site that fails) and a `retention` of 1 s (the old claim
//! is deleted by the plan as soon as the site is moved, and the finished backup
//! Jobs' pods that held it with it). The members keep the storage quota mutu
//! computes (two volumes a site): each move must free what the one before it
//! took, or the next is refused at its preflight.
//!
//! `make test` runs 2 rounds (there and back); `MUTU_PLANS_TOGETHER_ROUNDS=20
//! cargo test -p mutu-e2e --test migration plans_together` runs 20 (about 27 min).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use mutu_api::wave::{SiteStep, WaveStatus};
use mutu_api::{Backup, MemberTenant, MigrationPlan, PloneSite, ReleaseRollout, Restore};
use mutu_e2e::{create_product, create_rollout, member_with_sites};
use mutu_runtime::conditions;
use mutu_runtime::testing::{self, eventually, unique_name};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::{check_site, create_plan, pools, set_cordon};

/// Sites per member; two members.
const SITES_PER_MEMBER: usize = 10;
const ROUNDS: usize = 2;
const WAVE_SIZE: i32 = 20;
const MIGRATION_IN_FLIGHT: i32 = 10;
const ROLLOUT_IN_FLIGHT: i32 = 10;
/// How long one round may take, both plans together.
const ROUND_TIMEOUT: Duration = Duration::from_secs(300);
const TIMEOUT: Duration = Duration::from_secs(300);

#[tokio::test]
async fn a_migration_and_a_rollout_together_over_the_same_sites_lose_and_repeat_nothing()
-> anyhow::Result<()> {
    let client = testing::client().await?;
    let rounds = std::env::var("MUTU_PLANS_TOGETHER_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(ROUNDS);
    let product = unique_name("tog-p");
    let mut namespaces = Vec::new();
    let mut plans = Vec::new();
    let result = scenario(&client, &product, rounds, &mut namespaces, &mut plans).await;
    // Whatever happened, the next test gets the cluster back as it was.
    let cleaned = clean_up(&client, &product, &namespaces, &plans).await;
    result.and(cleaned)
}

async fn scenario(
    client: &Client,
    product: &str,
    rounds: usize,
    namespaces: &mut Vec<String>,
    plans: &mut Vec<(String, String)>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    create_product(client, product, json!({"replicas": 2})).await?;
    let run = unique_name("tog");
    let labels = json!({"together": run});
    let names: Vec<String> = (1..=SITES_PER_MEMBER)
        .map(|i| format!("site-{i:02}"))
        .collect();
    let (a, b) = futures::join!(
        member_with_sites(client, "tog-a", product, &names, labels.clone(), TIMEOUT),
        member_with_sites(client, "tog-b", product, &names, labels.clone(), TIMEOUT),
    );
    namespaces.extend([a?, b?]);
    let sites: Vec<(String, String)> = namespaces
        .iter()
        .flat_map(|ns| names.iter().map(move |n| (ns.clone(), n.clone())))
        .collect();
    let site_api: Api<PloneSite> = Api::all(client.clone());
    let first = site_api
        .list(&ListParams::default().labels(&format!("together={run}")))
        .await?;
    let mut pool = first
        .items
        .first()
        .and_then(|s| s.status.as_ref()?.pool.clone())
        .ok_or_else(|| anyhow::anyhow!("the sites have no pool"))?;
    let mut release = "1.0".to_string();
    for (ns, name) in &sites {
        check_site(client, ns, name, &pool, &format!("data-{name}-zeo-0")).await?;
    }
    println!(
        "plans together: {} sites Ready on pool {pool} in {:.1}s",
        sites.len(),
        started.elapsed().as_secs_f64()
    );
    for round in 1..=rounds {
        let to = if pool == mutu_api::POOL_PHYSICAL {
            mutu_api::POOL_FRONTEND
        } else {
            mutu_api::POOL_PHYSICAL
        };
        let next = format!("{}.0", round + 1);
        let r = Round {
            index: round,
            migration: unique_name(&format!("tog-m{round}")),
            rollout: unique_name(&format!("tog-r{round}")),
            from: pool.clone(),
            to: to.to_string(),
            previous: release.clone(),
            release: next.clone(),
            run: run.clone(),
            product: product.to_string(),
        };
        plans.push((r.migration.clone(), r.rollout.clone()));
        r.play(client, namespaces, &sites).await?;
        pool = to.to_string();
        release = next;
    }
    println!(
        "plans together: {rounds} rounds over {} sites in {:.1}s",
        sites.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One round: its two plans, where they take the sites.
struct Round {
    index: usize,
    migration: String,
    rollout: String,
    from: String,
    to: String,
    previous: String,
    release: String,
    run: String,
    product: String,
}

impl Round {
    fn migration_who(&self) -> String {
        format!("migration/{}", self.migration)
    }

    fn rollout_who(&self) -> String {
        format!("rollout/{}", self.rollout)
    }

    async fn play(
        &self,
        client: &Client,
        namespaces: &[String],
        sites: &[(String, String)],
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let record = Arc::new(Mutex::new(Record::new(self)));
        let watches = tokio::spawn(watch_all(
            client.clone(),
            namespaces.to_vec(),
            self,
            record.clone(),
        ));
        // The watches list first: what they see of the round starts from there.
        let listed = eventually(TIMEOUT, "the watches to list", || async {
            let r = record.lock().unwrap_or_else(|e| e.into_inner());
            (r.listed >= r.streams && r.streams > 0).then_some(())
        })
        .await;
        if let Err(e) = listed {
            watches.abort();
            return Err(e.into());
        }
        let result = self.run_and_check(client, sites, &record, started).await;
        watches.abort();
        // After a failure, the test's clean-up removes the plans.
        result?;
        // Deleted, the plans go (they have no site in flight); the nodes the
        // migration cordoned take sites again, for the next move back.
        self.delete_plans(client).await?;
        set_cordon(client, mutu_api::POOL_PHYSICAL, false).await?;
        set_cordon(client, mutu_api::POOL_FRONTEND, false).await
    }

    async fn run_and_check(
        &self,
        client: &Client,
        sites: &[(String, String)],
        record: &Arc<Mutex<Record>>,
        started: Instant,
    ) -> anyhow::Result<()> {
        let migration = json!({
            "selector": {"matchLabels": {"together": self.run}},
            "from": self.from, "to": self.to,
            "waveSize": WAVE_SIZE, "maxInFlight": MIGRATION_IN_FLIGHT,
            "failureThreshold": sites.len(), "verifyTimeout": "90s",
            // The old volume goes as soon as the site is moved: the next move
            // needs its room in the member's storage quota (two volumes a site).
            "retention": "1s",
        });
        let rollout = json!({
            "product": self.product, "release": self.release,
            "waveSize": WAVE_SIZE, "maxInFlight": ROLLOUT_IN_FLIGHT,
            "failureThreshold": sites.len(), "verifyTimeout": "90s",
        });
        let (m, r) = futures::join!(
            create_plan(client, &self.migration, migration),
            create_rollout(client, &self.rollout, rollout),
        );
        m?;
        r?;
        let migrations: Api<MigrationPlan> = Api::all(client.clone());
        let rollouts: Api<ReleaseRollout> = Api::all(client.clone());
        let complete = |st: Option<&WaveStatus>| {
            st.is_some_and(|st| conditions::is_true(&st.conditions, mutu_api::CONDITION_COMPLETE))
        };
        let times: Arc<Mutex<(Option<f64>, Option<f64>)>> = Default::default();
        let (m_done, r_done) = eventually(ROUND_TIMEOUT, "both plans to complete", || {
            let (migrations, rollouts, times) =
                (migrations.clone(), rollouts.clone(), times.clone());
            async move {
                let m = migrations.get(&self.migration).await.ok()?;
                let r = rollouts.get(&self.rollout).await.ok()?;
                let (m_complete, r_complete) =
                    (complete(m.status.as_ref()), complete(r.status.as_ref()));
                let mut t = times.lock().unwrap_or_else(|e| e.into_inner());
                let now = started.elapsed().as_secs_f64();
                if m_complete && t.0.is_none() {
                    t.0 = Some(now);
                }
                if r_complete && t.1.is_none() {
                    t.1 = Some(now);
                }
                (m_complete && r_complete).then_some((m, r))
            }
        })
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "round {}: {e}; so far: {}",
                self.index,
                record.lock().unwrap_or_else(|e| e.into_inner()).summary()
            )
        })?;
        let both_complete = started.elapsed().as_secs_f64();
        let (m_time, r_time) = *times.lock().unwrap_or_else(|e| e.into_inner());

        // Each plan did every site, and none failed.
        for (who, st) in [
            (
                self.migration_who(),
                m_done.status.clone().unwrap_or_default(),
            ),
            (
                self.rollout_who(),
                r_done.status.clone().unwrap_or_default(),
            ),
        ] {
            let not_done: Vec<String> = st
                .site_progress
                .iter()
                .filter(|p| p.step != SiteStep::Done)
                .map(|p| format!("{}/{}: {:?} {:?}", p.namespace, p.name, p.step, p.reason))
                .collect();
            anyhow::ensure!(
                (st.sites.total, st.sites.done, st.sites.failed)
                    == (sites.len() as i32, sites.len() as i32, 0),
                "round {}: {who}: {:?}, not done: {not_done:?}",
                self.index,
                st.sites
            );
            let waves = sites.len().div_ceil(WAVE_SIZE as usize);
            anyhow::ensure!(
                st.waves.len() == waves && st.waves.iter().all(|w| w.completion_time.is_some()),
                "round {}: {who}: waves {:?}",
                self.index,
                st.waves
            );
        }
        // The nodes the migration cordoned are of the pool it emptied.
        let node_pools = pools(client).await?;
        let m_status = m_done.status.clone().unwrap_or_default();
        for node in &m_status.cordoned_nodes {
            anyhow::ensure!(
                node_pools.get(node) == Some(&self.from),
                "round {}: {} cordoned {node}, not of pool {}",
                self.index,
                self.migration,
                self.from
            );
        }

        // Every site: Ready on the target pool, on the new release, out of
        // maintenance, on its one new volume, held by no one.
        for (ns, name) in sites {
            self.check_site_after(client, ns, name).await?;
        }
        let made = self.check_made(client, sites).await?;
        let (claims, deleting) = self.data_claims(client, sites).await?;

        // What the watches saw while the round ran.
        let r = record.lock().unwrap_or_else(|e| e.into_inner());
        r.check(self, sites)?;
        println!(
            "round {:2} ({} -> {}, release {} -> {}): {:.1}s (migration complete at {:.1}s, rollout at {:.1}s, checked {:.1}s later); {made}; {}; {claims} data claims ({deleting} being deleted, {} seen deleted)\n  mean seconds per step: {}",
            self.index,
            self.from,
            self.to,
            self.previous,
            self.release,
            started.elapsed().as_secs_f64(),
            m_time.unwrap_or_default(),
            r_time.unwrap_or_default(),
            started.elapsed().as_secs_f64() - both_complete,
            r.summary(),
            r.deleted_claims.len(),
            r.timings(),
        );
        Ok(())
    }

    /// Checks each site's data volume claims: one holds its data (superseded
    /// by none, not being deleted: the one its ZEO server mounts, checked with
    /// the site), every other one is superseded, through a chain of claims
    /// that ends there. Returns (claims, old ones being deleted).
    async fn data_claims(
        &self,
        client: &Client,
        sites: &[(String, String)],
    ) -> anyhow::Result<(usize, usize)> {
        let namespaces: BTreeSet<&String> = sites.iter().map(|(ns, _)| ns).collect();
        let mut claims: BTreeMap<String, BTreeMap<String, PersistentVolumeClaim>> = BTreeMap::new();
        for ns in namespaces {
            let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
            for c in api.list(&ListParams::default()).await?.items {
                claims
                    .entry(ns.clone())
                    .or_default()
                    .insert(c.name_any(), c);
            }
        }
        let (mut count, mut deleting) = (0, 0);
        for (ns, name) in sites {
            let prefix = format!("data-{name}-zeo-");
            let of_site: BTreeMap<&String, &PersistentVolumeClaim> = claims
                .get(ns)
                .into_iter()
                .flatten()
                .filter(|(c, _)| c.starts_with(&prefix))
                .collect();
            let superseded = |c: &PersistentVolumeClaim| {
                c.annotations()
                    .get(mutu_api::SUPERSEDED_BY_ANNOTATION)
                    .cloned()
            };
            let live: Vec<&&String> = of_site
                .iter()
                .filter(|(_, c)| superseded(c).is_none() && c.metadata.deletion_timestamp.is_none())
                .map(|(n, _)| n)
                .collect();
            anyhow::ensure!(
                live.len() == 1,
                "round {}: {ns}/{name} has {} claims holding its data: {live:?} (of {:?})",
                self.index,
                live.len(),
                of_site.keys().collect::<Vec<_>>()
            );
            for (claim, c) in &of_site {
                count += 1;
                if c.metadata.deletion_timestamp.is_some() {
                    deleting += 1;
                }
                // Follow the chain: it ends at the live claim.
                let mut at = (*claim).clone();
                for _ in 0..=of_site.len() {
                    match of_site.get(&at).and_then(|c| superseded(c)) {
                        Some(next) => at = next,
                        None => break,
                    }
                }
                anyhow::ensure!(
                    &&at == live[0],
                    "round {}: {ns}/{claim} leads to {at}, not to {}",
                    self.index,
                    live[0]
                );
            }
        }
        Ok((count, deleting))
    }

    async fn check_site_after(&self, client: &Client, ns: &str, name: &str) -> anyhow::Result<()> {
        let api: Api<PloneSite> = Api::namespaced(client.clone(), ns);
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
        let last: Arc<Mutex<String>> = Default::default();
        let checked = eventually(Duration::from_secs(60), "the site to settle", || {
            let (api, claims, last) = (api.clone(), claims.clone(), last.clone());
            async move {
                let outcome: anyhow::Result<()> = async {
                    let s = api.get(name).await?;
                    let volume = s
                        .annotations()
                        .get(mutu_api::DATA_VOLUME_ANNOTATION)
                        .cloned()
                        .ok_or_else(|| anyhow::anyhow!("no data volume annotation"))?;
                    check_site(client, ns, name, &self.to, &volume).await?;
                    let claim = claims.get(&volume).await?;
                    anyhow::ensure!(
                        claim.annotations().get("hosting.imio.be/migrated-by")
                            == Some(&self.migration),
                        "{volume} was not made by {}: {:?}",
                        self.migration,
                        claim.annotations()
                    );
                    anyhow::ensure!(
                        !claim
                            .annotations()
                            .contains_key(mutu_api::SUPERSEDED_BY_ANNOTATION)
                            && claim.metadata.deletion_timestamp.is_none(),
                        "{volume}, which the site mounts, is superseded or deleted"
                    );
                    let st = s.status.clone().unwrap_or_default();
                    anyhow::ensure!(
                        st.release.as_deref() == Some(self.release.as_str())
                            && st.previous_release.as_deref() == Some(self.previous.as_str()),
                        "release {:?}, previous {:?}",
                        st.release,
                        st.previous_release
                    );
                    anyhow::ensure!(
                        s.annotations().get(mutu_api::HELD_BY_ANNOTATION).is_none()
                            && st.held_by.is_none(),
                        "still held: {:?} / {:?}",
                        s.annotations().get(mutu_api::HELD_BY_ANNOTATION),
                        st.held_by
                    );
                    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
                    let instances = pods
                        .list(&ListParams::default().labels(&format!(
                            "hosting.imio.be/site={name},{}=instance",
                            mutu_api::COMPONENT
                        )))
                        .await?;
                    let tag = format!(":{}", self.release);
                    let images: Vec<String> = instances
                        .items
                        .iter()
                        .filter(|p| p.metadata.deletion_timestamp.is_none())
                        .filter_map(|p| p.spec.as_ref()?.containers.first()?.image.clone())
                        .collect();
                    anyhow::ensure!(
                        images.len() == 2 && images.iter().all(|i| i.ends_with(&tag)),
                        "instances run {images:?}"
                    );
                    Ok(())
                }
                .await;
                match outcome {
                    Ok(()) => Some(()),
                    Err(e) => {
                        *last.lock().unwrap_or_else(|e| e.into_inner()) = e.to_string();
                        None
                    }
                }
            }
        })
        .await;
        let last = last.lock().unwrap_or_else(|e| e.into_inner()).clone();
        checked.map_err(|e| anyhow::anyhow!("round {}: {ns}/{name}: {e}: {last}", self.index))
    }

    /// Checks the Backups, their Jobs and the Restores the plans made; returns
    /// their counts.
    async fn check_made(
        &self,
        client: &Client,
        sites: &[(String, String)],
    ) -> anyhow::Result<String> {
        let namespaces: BTreeSet<&String> = sites.iter().map(|(ns, _)| ns).collect();
        let (m_who, r_who) = (self.migration_who(), self.rollout_who());
        // (plan, namespace/site) -> names of its Backups
        let mut backups: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        let mut restores: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
        let (mut jobs_counted, mut backups_counted) = (0, 0);
        for ns in namespaces {
            let jobs = Api::<Job>::namespaced(client.clone(), ns)
                .list(&ListParams::default())
                .await?
                .items;
            for b in Api::<Backup>::namespaced(client.clone(), ns)
                .list(&ListParams::default())
                .await?
                .items
            {
                let by = b.annotations().get(mutu_api::MADE_BY_ANNOTATION).cloned();
                let Some(by) = by.filter(|by| *by == m_who || *by == r_who) else {
                    continue;
                };
                backups_counted += 1;
                let st = b.status.clone().unwrap_or_default();
                anyhow::ensure!(
                    conditions::is_true(&st.conditions, mutu_api::CONDITION_COMPLETE),
                    "round {}: Backup {ns}/{} of {by} is not complete: {:?}",
                    self.index,
                    b.name_any(),
                    st.conditions
                );
                let uid = b.uid().unwrap_or_default();
                let runs: Vec<&Job> = jobs
                    .iter()
                    .filter(|j| j.owner_references().iter().any(|o| o.uid == uid))
                    .collect();
                let once = runs.len() == 1
                    && runs.iter().all(|j| {
                        let s = j.status.clone().unwrap_or_default();
                        s.succeeded == Some(1) && s.failed.unwrap_or(0) == 0
                    });
                anyhow::ensure!(
                    once,
                    "round {}: Backup {ns}/{} did not run exactly once: {:?}",
                    self.index,
                    b.name_any(),
                    runs.iter()
                        .map(|j| (j.name_any(), j.status.clone()))
                        .collect::<Vec<_>>()
                );
                jobs_counted += runs.len();
                backups
                    .entry((by, format!("{ns}/{}", b.spec.site)))
                    .or_default()
                    .push(b.name_any());
            }
            for r in Api::<Restore>::namespaced(client.clone(), ns)
                .list(&ListParams::default())
                .await?
                .items
            {
                let by = r.annotations().get(mutu_api::MADE_BY_ANNOTATION).cloned();
                let Some(by) = by.filter(|by| *by == m_who || *by == r_who) else {
                    continue;
                };
                let st = r.status.clone().unwrap_or_default();
                anyhow::ensure!(
                    conditions::is_true(&st.conditions, mutu_api::CONDITION_COMPLETE),
                    "round {}: Restore {ns}/{} of {by} is not complete: {:?}",
                    self.index,
                    r.name_any(),
                    st.conditions
                );
                restores
                    .entry((by, format!("{ns}/{}", r.spec.site)))
                    .or_default()
                    .push((r.name_any(), r.spec.backup.clone()));
            }
        }
        let mut restores_counted = 0;
        for (ns, name) in sites {
            let key = format!("{ns}/{name}");
            let of = |who: &str| {
                let mut names = backups
                    .get(&(who.to_string(), key.clone()))
                    .cloned()
                    .unwrap_or_default();
                names.sort();
                names
            };
            let m = of(&m_who);
            anyhow::ensure!(
                m.len() == 2 && m[0].ends_with("-final") && m[1].ends_with("-pre"),
                "round {}: {key}: the migration's Backups are {m:?}, not one -pre and one -final",
                self.index
            );
            let r = of(&r_who);
            anyhow::ensure!(
                r.len() == 1 && r[0].ends_with("-pre"),
                "round {}: {key}: the rollout's Backups are {r:?}, not one -pre",
                self.index
            );
            let data = restores
                .get(&(m_who.clone(), key.clone()))
                .cloned()
                .unwrap_or_default();
            anyhow::ensure!(
                data.len() == 1 && data[0].0.ends_with("-data") && data[0].1 == m[0],
                "round {}: {key}: the migration's Restores are {data:?}, not one of {}",
                self.index,
                m[0]
            );
            restores_counted += data.len();
            let back = restores.get(&(r_who.clone(), key.clone()));
            anyhow::ensure!(
                back.is_none(),
                "round {}: {key}: the rollout restored {back:?}, though no upgrade failed",
                self.index
            );
        }
        Ok(format!(
            "{backups_counted} Backups ({jobs_counted} Jobs, each run once), {restores_counted} Restores"
        ))
    }

    /// Deletes both plans and waits until they are gone.
    async fn delete_plans(&self, client: &Client) -> anyhow::Result<()> {
        delete_plans(client, &self.migration, &self.rollout).await
    }
}

async fn delete_plans(client: &Client, migration: &str, rollout: &str) -> anyhow::Result<()> {
    let migrations: Api<MigrationPlan> = Api::all(client.clone());
    let rollouts: Api<ReleaseRollout> = Api::all(client.clone());
    let _ = migrations.delete(migration, &DeleteParams::default()).await;
    let _ = rollouts.delete(rollout, &DeleteParams::default()).await;
    eventually(TIMEOUT, "the plans to be gone", || async {
        let m = migrations.get_opt(migration).await.ok()?;
        let r = rollouts.get_opt(rollout).await.ok()?;
        (m.is_none() && r.is_none()).then_some(())
    })
    .await?;
    Ok(())
}

/// Makes sure both plans are gone, after a failure too: a plan whose site
/// cannot finish never lets go of its finalizer, which then goes by hand.
async fn remove_plans(client: &Client, migration: &str, rollout: &str) -> anyhow::Result<()> {
    if delete_plans(client, migration, rollout).await.is_ok() {
        return Ok(());
    }
    let none = json!({"metadata": {"finalizers": null}});
    let patch = Patch::Merge(&none);
    let _ = Api::<MigrationPlan>::all(client.clone())
        .patch(migration, &PatchParams::default(), &patch)
        .await;
    let _ = Api::<ReleaseRollout>::all(client.clone())
        .patch(rollout, &PatchParams::default(), &patch)
        .await;
    delete_plans(client, migration, rollout).await?;
    anyhow::bail!("the plans {migration} and {rollout} did not finish when deleted")
}

/// Deletes what the test made: its plans, its members (and so their
/// namespaces, waited for), its Product; and the nodes take sites again.
async fn clean_up(
    client: &Client,
    product: &str,
    namespaces: &[String],
    plans: &[(String, String)],
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut result = Ok(());
    if let Some((m, r)) = plans.last() {
        result = remove_plans(client, m, r).await;
    }
    set_cordon(client, mutu_api::POOL_PHYSICAL, false).await?;
    set_cordon(client, mutu_api::POOL_FRONTEND, false).await?;
    let tenants: Api<MemberTenant> = Api::all(client.clone());
    for ns in namespaces {
        if let Some(tenant) = ns.strip_prefix("tenant-") {
            let _ = tenants.delete(tenant, &DeleteParams::default()).await;
        }
    }
    let all: Api<Namespace> = Api::all(client.clone());
    eventually(TIMEOUT, "the members' namespaces to be gone", || async {
        for ns in namespaces {
            if all.get_opt(ns).await.ok()?.is_some() {
                return None;
            }
        }
        Some(())
    })
    .await?;
    let _ = Api::<mutu_api::Product>::all(client.clone())
        .delete(product, &DeleteParams::default())
        .await;
    println!(
        "plans together: cleaned up in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    result
}

/// Starts the watches of a round; they record into `record` until aborted.
fn watch_all(
    client: Client,
    namespaces: Vec<String>,
    round: &Round,
    record: Arc<Mutex<Record>>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut streams: Vec<futures::future::BoxFuture<'static, ()>> = Vec::new();
    let sites: Api<PloneSite> = Api::all(client.clone());
    let by_run = watcher::Config::default().labels(&format!("together={}", round.run));
    streams.push(Box::pin(watch(sites, by_run, record.clone(), Record::site)));
    let name = |n: &str| watcher::Config::default().fields(&format!("metadata.name={n}"));
    streams.push(Box::pin(watch(
        Api::<MigrationPlan>::all(client.clone()),
        name(&round.migration),
        record.clone(),
        |r, p: &MigrationPlan, _| r.plan(&p.name_any(), p.status.as_ref()),
    )));
    streams.push(Box::pin(watch(
        Api::<ReleaseRollout>::all(client.clone()),
        name(&round.rollout),
        record.clone(),
        |r, p: &ReleaseRollout, _| r.plan(&p.name_any(), p.status.as_ref()),
    )));
    for ns in &namespaces {
        let all = watcher::Config::default;
        streams.push(Box::pin(watch(
            Api::<Backup>::namespaced(client.clone(), ns),
            all(),
            record.clone(),
            |r, o: &Backup, _| r.once("Backup", o),
        )));
        streams.push(Box::pin(watch(
            Api::<Restore>::namespaced(client.clone(), ns),
            all(),
            record.clone(),
            |r, o: &Restore, _| r.once("Restore", o),
        )));
        streams.push(Box::pin(watch(
            Api::<Job>::namespaced(client.clone(), ns),
            all(),
            record.clone(),
            |r, o: &Job, _| r.once("Job", o),
        )));
        streams.push(Box::pin(watch(
            Api::<Deployment>::namespaced(client.clone(), ns),
            all(),
            record.clone(),
            Record::deployment,
        )));
        streams.push(Box::pin(watch(
            Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns),
            all(),
            record.clone(),
            Record::claim,
        )));
    }
    record.lock().unwrap_or_else(|e| e.into_inner()).streams = streams.len();
    async move {
        futures::future::join_all(streams).await;
    }
}

/// Feeds every version a watch hands out to `on` (with whether it is gone).
async fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    record: Arc<Mutex<Record>>,
    on: fn(&mut Record, &K, bool),
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let mut events = std::pin::pin!(watcher(api, config).default_backoff());
    let mut lists = 0;
    while let Some(event) = events.next().await {
        let mut r = record.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => on(&mut r, &o, false),
            Ok(watcher::Event::Delete(o)) => on(&mut r, &o, true),
            Ok(watcher::Event::Init) => {
                lists += 1;
                if lists > 1 {
                    r.relists += 1;
                }
            }
            Ok(watcher::Event::InitDone) => {
                if lists == 1 {
                    r.listed += 1;
                }
            }
            Err(_) => r.errors += 1,
        }
    }
}

/// The plan a maintenance mark belongs to, among this round's: the plan's own
/// mark, or that of a Restore it made (`restore/<plan>-<site>-…`).
fn owner_of<'a>(mark: &str, plans: &'a [(String, String)]) -> Option<&'a str> {
    plans.iter().find_map(|(who, name)| {
        let restore = mark
            .strip_prefix("restore/")
            .is_some_and(|r| r.starts_with(&format!("{name}-")));
        (mark == who || restore).then_some(who.as_str())
    })
}

/// The order of a plan's steps, for a site done.
fn order(step: SiteStep, migration: bool) -> Option<usize> {
    let steps: &[SiteStep] = if migration {
        &[
            SiteStep::Pending,
            SiteStep::Preflight,
            SiteStep::Maintenance,
            SiteStep::CopyingData,
            SiteStep::Moving,
            SiteStep::Verifying,
            SiteStep::Done,
        ]
    } else {
        &[
            SiteStep::Pending,
            SiteStep::Preflight,
            SiteStep::Upgrading,
            SiteStep::Verifying,
            SiteStep::Done,
        ]
    };
    steps.iter().position(|s| *s == step)
}

/// What the watches of a round saw, and what broke the rules as it was seen.
struct Record {
    /// (holder value, plan name) of the migration and of the rollout.
    plans: [(String, String); 2],
    max_in_flight: [i32; 2],
    streams: usize,
    listed: usize,
    relists: usize,
    errors: usize,
    violations: Vec<String>,
    /// Each site as last seen.
    sites: BTreeMap<String, PloneSite>,
    /// Each site's holders, one entry per change ("" for none).
    holders: BTreeMap<String, Vec<String>>,
    /// Each site's release (status), one entry per change.
    releases: BTreeMap<String, Vec<String>>,
    /// The image of each site's instances (its Deployment), one entry per change.
    images: BTreeMap<String, Vec<String>>,
    /// Most sites each plan kept offline or stopped at once, as the sites show it.
    most_working: [usize; 2],
    /// Most sites in flight in each plan's status.
    most_in_flight: [usize; 2],
    /// Each plan's steps of each site, one entry per change.
    steps: BTreeMap<(usize, String), Vec<SiteStep>>,
    /// When each plan's site entered each step, as seen, and when the plan
    /// took hold of it: where a round's time goes.
    entered: BTreeMap<(usize, String), Vec<(SiteStep, Instant)>>,
    held_at: BTreeMap<(usize, String), Instant>,
    /// When each plan's done sites finished, as first seen.
    finished: BTreeMap<(usize, String), String>,
    /// The uids seen under each kind and name.
    uids: BTreeMap<(String, String), BTreeSet<String>>,
    /// Data volume claims as last seen, and those seen deleted.
    claims: BTreeMap<String, PersistentVolumeClaim>,
    deleted_claims: BTreeSet<String>,
}

impl Record {
    fn new(round: &Round) -> Self {
        Record {
            plans: [
                (round.migration_who(), round.migration.clone()),
                (round.rollout_who(), round.rollout.clone()),
            ],
            max_in_flight: [MIGRATION_IN_FLIGHT, ROLLOUT_IN_FLIGHT],
            streams: 0,
            listed: 0,
            relists: 0,
            errors: 0,
            violations: Vec::new(),
            sites: BTreeMap::new(),
            holders: BTreeMap::new(),
            releases: BTreeMap::new(),
            images: BTreeMap::new(),
            most_working: [0; 2],
            most_in_flight: [0; 2],
            steps: BTreeMap::new(),
            entered: BTreeMap::new(),
            held_at: BTreeMap::new(),
            finished: BTreeMap::new(),
            uids: BTreeMap::new(),
            claims: BTreeMap::new(),
            deleted_claims: BTreeSet::new(),
        }
    }

    fn violate(&mut self, what: String) {
        if self.violations.len() < 50 {
            self.violations.push(what);
        }
    }

    /// A version of a site: who holds it, and whether what changed was
    /// changed by its holder.
    fn site(&mut self, s: &PloneSite, gone: bool) {
        let key = format!("{}/{}", s.namespace().unwrap_or_default(), s.name_any());
        let rv = s.resource_version().unwrap_or_default();
        let ann = s.annotations();
        let holder = ann
            .get(mutu_api::HELD_BY_ANNOTATION)
            .cloned()
            .unwrap_or_default();
        let holders = self.holders.entry(key.clone()).or_default();
        if holders.last() != Some(&holder) {
            holders.push(holder.clone());
            if let Some(i) = self.plans.iter().position(|(who, _)| *who == holder) {
                self.held_at
                    .entry((i, key.clone()))
                    .or_insert_with(Instant::now);
            }
        }
        let release = s
            .status
            .as_ref()
            .and_then(|st| st.release.clone())
            .unwrap_or_default();
        let releases = self.releases.entry(key.clone()).or_default();
        if releases.last() != Some(&release) {
            releases.push(release);
        }
        for mark in [
            mutu_api::OFFLINE_ANNOTATION,
            mutu_api::MAINTENANCE_ANNOTATION,
        ] {
            if let Some(v) = ann.get(mark) {
                let owner = owner_of(v, &self.plans);
                if owner != Some(holder.as_str()) || holder.is_empty() {
                    self.violate(format!(
                        "{key} (version {rv}): {mark}={v} while held by {holder:?}"
                    ));
                }
            }
        }
        let mut found = Vec::new();
        if let Some(prev) = self.sites.get(&key) {
            let changed = |k: &str| prev.annotations().get(k) != ann.get(k);
            let (migration, rollout) = (&self.plans[0].0, &self.plans[1].0);
            if changed(mutu_api::RELEASE_ANNOTATION) && holder != *rollout {
                found.push(format!(
                    "{key} (version {rv}): its release changed to {:?} while held by {holder:?}",
                    ann.get(mutu_api::RELEASE_ANNOTATION)
                ));
            }
            for k in [mutu_api::POOL_ANNOTATION, mutu_api::DATA_VOLUME_ANNOTATION] {
                if changed(k) && holder != *migration {
                    found.push(format!(
                        "{key} (version {rv}): {k} changed to {:?} while held by {holder:?}",
                        ann.get(k)
                    ));
                }
            }
        }
        for v in found {
            self.violate(v);
        }
        if gone {
            self.violate(format!("{key} was deleted"));
            self.sites.remove(&key);
        } else {
            self.sites.insert(key, s.clone());
        }
        for i in 0..2 {
            let who = self.plans[i].0.clone();
            let working = self
                .sites
                .values()
                .filter(|s| {
                    [
                        mutu_api::OFFLINE_ANNOTATION,
                        mutu_api::MAINTENANCE_ANNOTATION,
                    ]
                    .iter()
                    .filter_map(|m| s.annotations().get(*m))
                    .any(|v| owner_of(v, &self.plans) == Some(who.as_str()))
                })
                .count();
            self.most_working[i] = self.most_working[i].max(working);
            if working > self.max_in_flight[i] as usize {
                self.violate(format!(
                    "{who} keeps {working} sites offline or stopped at once (maxInFlight {})",
                    self.max_in_flight[i]
                ));
            }
        }
    }

    /// A version of a plan's status.
    fn plan(&mut self, name: &str, status: Option<&WaveStatus>) {
        let Some(i) = self.plans.iter().position(|(_, n)| n == name) else {
            return;
        };
        let Some(st) = status else { return };
        let who = self.plans[i].0.clone();
        let flying = st
            .site_progress
            .iter()
            .filter(|p| {
                !matches!(
                    p.step,
                    SiteStep::Pending | SiteStep::Done | SiteStep::Failed
                )
            })
            .count()
            .max(st.sites.in_flight.max(0) as usize);
        self.most_in_flight[i] = self.most_in_flight[i].max(flying);
        if flying > self.max_in_flight[i] as usize {
            self.violate(format!(
                "{who} has {flying} sites in flight (maxInFlight {})",
                self.max_in_flight[i]
            ));
        }
        let current = st
            .site_progress
            .iter()
            .filter(|p| !matches!(p.step, SiteStep::Done | SiteStep::Failed))
            .map(|p| p.wave)
            .min();
        for p in &st.site_progress {
            let key = format!("{}/{}", p.namespace, p.name);
            if current.is_some_and(|c| p.wave > c) && p.step != SiteStep::Pending {
                self.violate(format!(
                    "{who}: {key} of wave {} started before wave {current:?} finished",
                    p.wave
                ));
            }
            let steps = self.steps.entry((i, key.clone())).or_default();
            if steps.last() != Some(&p.step) {
                steps.push(p.step);
                self.entered
                    .entry((i, key.clone()))
                    .or_default()
                    .push((p.step, Instant::now()));
            }
            if p.step == SiteStep::Done {
                let at = p
                    .finished
                    .as_ref()
                    .map(|t| t.0.to_string())
                    .unwrap_or_default();
                let first = self.finished.entry((i, key.clone())).or_insert(at.clone());
                if *first != at {
                    let first = first.clone();
                    self.violate(format!(
                        "{who}: {key} finished again: at {first}, then at {at}"
                    ));
                }
            }
        }
    }

    /// A version of a site's Deployment: the image its instances run.
    fn deployment(&mut self, d: &Deployment, _gone: bool) {
        let key = format!("{}/{}", d.namespace().unwrap_or_default(), d.name_any());
        let image = d
            .spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.containers.first()?.image.clone())
            .unwrap_or_default();
        let images = self.images.entry(key).or_default();
        if images.last() != Some(&image) {
            images.push(image);
        }
    }

    /// A version of an object that must be made once under its name.
    fn once<K: Resource<DynamicType = ()>>(&mut self, kind: &str, o: &K) {
        let key = (
            kind.to_string(),
            format!(
                "{}/{}",
                o.meta().namespace.clone().unwrap_or_default(),
                o.meta().name.clone().unwrap_or_default()
            ),
        );
        let uid = o.meta().uid.clone().unwrap_or_default();
        let uids = self.uids.entry(key.clone()).or_default();
        if uids.insert(uid.clone()) && uids.len() > 1 {
            let made = o
                .meta()
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default();
            let n = uids.len();
            self.violate(format!(
                "{} {} was made again (time {n}, uid {uid}, created {made})",
                key.0, key.1
            ));
        }
    }

    /// A version of a volume claim: a data claim that goes must be superseded
    /// by one that stays.
    fn claim(&mut self, c: &PersistentVolumeClaim, gone: bool) {
        let key = format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any());
        if !c.name_any().starts_with("data-") {
            return;
        }
        let going = gone || c.metadata.deletion_timestamp.is_some();
        // Checked as it goes: a claim already going when first seen went in
        // an earlier round, and was checked then.
        let was_there = self
            .claims
            .get(&key)
            .is_some_and(|c| c.metadata.deletion_timestamp.is_none());
        if going && was_there && self.deleted_claims.insert(key.clone()) {
            match c.annotations().get(mutu_api::SUPERSEDED_BY_ANNOTATION) {
                None => self.violate(format!(
                    "{key} was deleted while nothing supersedes it (it may hold its site's data)"
                )),
                Some(by) => {
                    let by_key = format!("{}/{by}", c.namespace().unwrap_or_default());
                    let live = self
                        .claims
                        .get(&by_key)
                        .is_some_and(|b| b.metadata.deletion_timestamp.is_none());
                    if !live {
                        self.violate(format!(
                            "{key} was deleted, superseded by {by}, which is not there"
                        ));
                    }
                }
            }
        }
        if gone {
            self.claims.remove(&key);
        } else {
            self.claims.insert(key, c.clone());
        }
    }

    /// Where each plan's time went: the mean time its sites spent at each
    /// step (seconds), and waiting for the other plan's hold (in Preflight).
    fn timings(&self) -> String {
        let mut out = Vec::new();
        for (i, (who, _)) in self.plans.iter().enumerate() {
            let mut spent: BTreeMap<usize, (SiteStep, f64, usize)> = BTreeMap::new();
            let (mut waited, mut waits) = (0.0, 0);
            for ((j, key), entered) in &self.entered {
                if *j != i {
                    continue;
                }
                for w in entered.windows(2) {
                    let at = order(w[0].0, i == 0).unwrap_or(99);
                    let e = spent.entry(at).or_insert((w[0].0, 0.0, 0));
                    e.1 += w[1].1.duration_since(w[0].1).as_secs_f64();
                    e.2 += 1;
                }
                let preflight = entered.iter().find(|(s, _)| *s == SiteStep::Preflight);
                if let (Some((_, from)), Some(held)) =
                    (preflight, self.held_at.get(&(i, key.clone())))
                {
                    waited += held.saturating_duration_since(*from).as_secs_f64();
                    waits += 1;
                }
            }
            let steps: Vec<String> = spent
                .values()
                .filter(|(step, _, _)| *step != SiteStep::Pending)
                .map(|(step, total, n)| format!("{step:?} {:.1}", total / (*n).max(1) as f64))
                .collect();
            out.push(format!(
                "{who}: {} (hold wait {:.1})",
                steps.join(", "),
                waited / f64::from(waits.max(1))
            ));
        }
        out.join("; ")
    }

    /// The counts of what was seen.
    fn summary(&self) -> String {
        let first = |who: &str| {
            self.holders
                .values()
                .filter(|h| h.iter().find(|h| !h.is_empty()).map(String::as_str) == Some(who))
                .count()
        };
        format!(
            "most in flight {}/{} (status) {}/{} (sites offline or stopped) of {}/{}; first held by the migration {}, by the rollout {}; {} violations; {} relists, {} watch errors",
            self.most_in_flight[0],
            self.most_in_flight[1],
            self.most_working[0],
            self.most_working[1],
            self.max_in_flight[0],
            self.max_in_flight[1],
            first(&self.plans[0].0),
            first(&self.plans[1].0),
            self.violations.len(),
            self.relists,
            self.errors,
        )
    }

    /// The rules over the whole round.
    fn check(&self, round: &Round, sites: &[(String, String)]) -> anyhow::Result<()> {
        let mut broken = self.violations.clone();
        for (ns, name) in sites {
            let key = format!("{ns}/{name}");
            // Each plan held the site once, in one stretch, and let go.
            let holders: Vec<&String> = self
                .holders
                .get(&key)
                .map(|h| h.iter().filter(|h| !h.is_empty()).collect())
                .unwrap_or_default();
            let both = holders.len() == 2
                && holders.contains(&&self.plans[0].0)
                && holders.contains(&&self.plans[1].0);
            if !both {
                broken.push(format!(
                    "{key}: held by {:?}, not once by each plan",
                    self.holders.get(&key)
                ));
            }
            // The site went to the new release once, and never back.
            let releases = self.releases.get(&key).cloned().unwrap_or_default();
            if releases != [round.previous.clone(), round.release.clone()] {
                broken.push(format!(
                    "{key}: its status went through releases {releases:?}"
                ));
            }
            // Its instances went to the new release's image once, never back.
            let images = self.images.get(&key).cloned().unwrap_or_default();
            let tags: Vec<&str> = images
                .iter()
                .map(|i| i.rsplit_once(':').map(|(_, t)| t).unwrap_or(i))
                .collect();
            if tags != [round.previous.as_str(), round.release.as_str()] {
                broken.push(format!("{key}: its instances ran {images:?}"));
            }
            // Each plan's steps went forward, to Done.
            for i in 0..2 {
                let steps = self
                    .steps
                    .get(&(i, key.clone()))
                    .cloned()
                    .unwrap_or_default();
                let orders: Vec<Option<usize>> = steps.iter().map(|s| order(*s, i == 0)).collect();
                let forward = orders.iter().all(Option::is_some)
                    && orders.windows(2).all(|w| w[0] < w[1])
                    && steps.last() == Some(&SiteStep::Done);
                if !forward {
                    broken.push(format!("{}: {key} went {steps:?}", self.plans[i].0));
                }
            }
        }
        for i in 0..2 {
            if self.most_in_flight[i] < 2 {
                broken.push(format!(
                    "{} never had two sites in flight at once",
                    self.plans[i].0
                ));
            }
        }
        anyhow::ensure!(
            broken.is_empty(),
            "round {}: {} broken rules:\n  {}",
            round.index,
            broken.len(),
            broken.join("\n  ")
        );
        Ok(())
    }
}
