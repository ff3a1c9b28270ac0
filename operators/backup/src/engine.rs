//! The backup engine: one task, the only writer of the policies' status, of
//! the scheduled Backups and of retention, working from an index of the whole
//! fleet (the watch caches of sites, policies, backups and restores). Every
//! tick it plans tonight for each policy (the same pure plan as `mutu backup
//! schedule`), starts the backups whose time has come, prunes what retention
//! no longer keeps, and records each site's last successful backup. Nothing is
//! written when nothing changed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use jiff::tz::TimeZone;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use mutu_api::backup::{BackupPolicyStatus, BackupTrigger, Retention};
use mutu_api::{Backup, BackupPolicy, PloneSite, Restore};
use mutu_runtime::conditions::{self, Desired as Cond};
use mutu_runtime::create::Created;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde_json::json;

use crate::context::Ctx;
use crate::fleet;
use crate::status::finished;

use crate::fleet::CATCH_UP;
/// A site without a successful backup for this long counts as stale.
const STALE: jiff::SignedDuration = jiff::SignedDuration::from_hours(26);

type Labels = Vec<(&'static str, String)>;

/// The engine's metrics.
#[derive(Clone, Default)]
pub struct BackupMetrics {
    last_success: Family<Labels, Gauge>,
    stale: Gauge,
    size: Family<Labels, Gauge>,
    duration: Family<Labels, Gauge>,
    /// 1 for each site whose backups are suspended (spec.backup.suspended),
    /// and only those: alerts on stale backups leave them out.
    suspended: Family<Labels, Gauge>,
    known: Arc<Mutex<HashSet<(String, String)>>>,
}

impl BackupMetrics {
    pub fn register(&self, metrics: &mutu_runtime::Metrics) {
        metrics.register(|r| {
            r.register(
                "backup_last_success_timestamp_seconds",
                "When each site's last successful backup completed (Unix time)",
                self.last_success.clone(),
            );
            r.register(
                "backup_sites_stale",
                "Sites without a successful backup in the last 26 hours",
                self.stale.clone(),
            );
            r.register(
                "backup_last_size_bytes",
                "Bytes the last successful backup of each site added",
                self.size.clone(),
            );
            r.register(
                "backup_last_duration_seconds",
                "How long the last successful backup of each site took",
                self.duration.clone(),
            );
            r.register(
                "backup_suspended",
                "1 for each site whose backups are suspended (spec.backup.suspended); no series for the others",
                self.suspended.clone(),
            );
        });
    }
}

/// What retention deletes among the backups of one site: scheduled backups
/// beyond the daily, weekly and monthly counts (the newest of each day, ISO
/// week and month, in the policy's time zone), and failed scheduled ones older
/// than the daily count of days. Manual, migration and rollout backups are
/// never deleted by retention.
pub fn expired(
    backups: &[&Backup],
    retention: &Retention,
    tz: &TimeZone,
    now: Timestamp,
) -> Vec<String> {
    let mut done: Vec<(Timestamp, &Backup)> = Vec::new();
    let mut delete = Vec::new();
    for b in backups {
        if b.spec.trigger != BackupTrigger::Scheduled {
            continue;
        }
        let Some(s) = &b.status else { continue };
        let at = s.completion_time.as_ref().map(|t| t.0);
        if conditions::is_true(&s.conditions, mutu_api::CONDITION_COMPLETE) {
            if let Some(at) = at {
                done.push((at, b));
            }
        } else if conditions::is_true(&s.conditions, mutu_api::CONDITION_FAILED)
            && at.is_some_and(|at| {
                now.duration_since(at)
                    > jiff::SignedDuration::from_hours(24 * i64::from(retention.daily.max(1)))
            })
        {
            delete.push(b.name_any());
        }
    }
    done.sort_by_key(|b| std::cmp::Reverse((b.0, b.1.name_any())));
    let mut keep: HashSet<String> = HashSet::new();
    let mut keep_newest = |count: i32, key: &dyn Fn(&jiff::Zoned) -> (i16, i16, i8)| {
        let mut seen = HashSet::new();
        for (at, b) in &done {
            if seen.len() >= count.max(0) as usize {
                break;
            }
            if seen.insert(key(&at.to_zoned(tz.clone()))) {
                keep.insert(b.name_any());
            }
        }
    };
    keep_newest(retention.daily, &|z| (z.year(), z.day_of_year(), 0));
    keep_newest(retention.weekly, &|z| {
        let w = z.date().iso_week_date();
        (w.year(), i16::from(w.week()), 0)
    });
    keep_newest(retention.monthly, &|z| (z.year(), 0, z.month()));
    delete.extend(
        done.iter()
            .map(|(_, b)| b.name_any())
            .filter(|n| !keep.contains(n)),
    );
    delete.sort();
    delete
}

/// Runs the engine until `shutdown`.
pub async fn run(
    ctx: Arc<Ctx>,
    metrics: BackupMetrics,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    // Start from complete caches.
    let _ = tokio::join!(
        ctx.data.sites_cache.wait_until_ready(),
        ctx.data.policies_cache.wait_until_ready(),
        ctx.data.backups_cache.wait_until_ready(),
        ctx.data.restores_cache.wait_until_ready(),
    );
    loop {
        if let Err(e) = tick(&ctx, &metrics, Timestamp::now()).await {
            tracing::warn!(error = %e, "backup engine: a step failed; retried at the next tick");
        }
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(mutu_runtime::controller::jitter(ctx.data.config.tick, 0.1)) => {}
        }
    }
}

async fn tick(ctx: &Ctx, metrics: &BackupMetrics, now: Timestamp) -> Result<(), kube::Error> {
    let policies: Vec<BackupPolicy> = ctx.data.policies().iter().map(|p| (**p).clone()).collect();
    let sites: Vec<PloneSite> = ctx.data.sites().iter().map(|s| (**s).clone()).collect();
    // The nights and the staleness of backups concern the sites that keep data.
    let with_data: Vec<PloneSite> = sites
        .iter()
        .filter(|s| ctx.data.keeps_data(s))
        .cloned()
        .collect();
    let backups: Vec<Backup> = ctx.data.backups().iter().map(|b| (**b).clone()).collect();
    let restores: Vec<Arc<Restore>> = ctx.data.restores();
    let existing: HashSet<(String, String)> = backups
        .iter()
        .map(|b| (b.namespace().unwrap_or_default(), b.name_any()))
        .collect();

    for policy in &policies {
        plan_policy(ctx, policy, &policies, &with_data, &backups, &existing, now).await?;
    }
    retention(ctx, &policies, &sites, &backups, &restores, now).await?;
    last_backups(ctx, metrics, &with_data, &backups, now).await?;
    Ok(())
}

async fn plan_policy(
    ctx: &Ctx,
    policy: &BackupPolicy,
    policies: &[BackupPolicy],
    sites: &[PloneSite],
    backups: &[Backup],
    existing: &HashSet<(String, String)>,
    now: Timestamp,
) -> Result<(), kube::Error> {
    let api: Api<BackupPolicy> = Api::all(ctx.client().clone());
    let mut status = BackupPolicyStatus {
        observed_generation: policy.meta().generation,
        ..policy.status.clone().unwrap_or_default()
    };
    let planned = fleet::tonight(policy, now)
        .and_then(|date| fleet::night_plan(policy, policies, sites, backups, date));
    let plan = match planned {
        Ok(p) => p,
        Err(e) => {
            ctx.write_status(
                &api,
                policy,
                status,
                &[Cond::new(
                    mutu_api::CONDITION_READY,
                    false,
                    "InvalidWindow",
                    e.to_string(),
                )],
            )
            .await?;
            return Ok(());
        }
    };
    status.sites = Some(plan.runs.len() as i32);
    status.opens = Some(Time(plan.opens.timestamp()));
    status.closes = Some(Time(plan.closes.timestamp()));
    status.expected_minutes = Some(plan.expected_minutes as i64);
    status.needed_concurrency = Some(plan.needed_concurrency as i64);
    status.peak_concurrency = Some(plan.peak() as i32);
    status.overruns = Some(plan.overruns as i32);
    let window = fleet::describe_window(&plan.opens, &plan.closes);
    let hours = |m: u64| format!("{} h {:02} min", m / 60, m % 60);
    let mut conds = vec![if plan.overruns == 0 {
        Cond::new(
            mutu_api::CONDITION_READY,
            true,
            "Planned",
            format!(
                "{} sites: {} of backups expected in {window}, at most {} at once (maxConcurrent {})",
                plan.runs.len(),
                hours(plan.expected_minutes),
                plan.peak(),
                policy.spec.max_concurrent
            ),
        )
    } else {
        Cond::new(
            mutu_api::CONDITION_READY,
            false,
            "WindowTooSmall",
            format!(
                "the window cannot hold the fleet: {} sites need {} of backups, the window is {window}, so at least {} must run at once but maxConcurrent is {}{}; {} backups are planned after the window closes. Raise maxConcurrent, widen the window, or move sites to another policy",
                plan.runs.len(),
                hours(plan.expected_minutes),
                plan.needed_concurrency,
                policy.spec.max_concurrent,
                policy
                    .spec
                    .max_per_node
                    .map(|n| format!(" (and maxPerNode {n})"))
                    .unwrap_or_default(),
                plan.overruns
            ),
        )
    }];
    if policy.spec.default
        && fleet::default_policy(policies).is_some_and(|d| d.name_any() != policy.name_any())
    {
        conds.push(Cond::new("Default", false, "AnotherDefault", format!(
            "another policy, {}, is the default (the oldest of those marked default); unmark this one",
            fleet::default_policy(policies).map(|d| d.name_any()).unwrap_or_default()
        )));
    }
    ctx.write_status(&api, policy, status, &conds).await?;

    pack(ctx, policy, policies, sites, backups, now).await?;

    // Start what is due: the runs whose time has come, once each per night.
    let due = fleet::due(policy, policies, sites, backups, now).unwrap_or_default();
    for run in due {
        if existing.contains(&(run.namespace.clone(), run.name.clone())) {
            continue;
        }
        let b = crate::backup::scheduled_backup(
            &run.namespace,
            &run.name,
            &run.site,
            &policy.name_any(),
        );
        ctx.create_once(
            &Api::<Backup>::namespaced(ctx.client().clone(), &run.namespace),
            &b,
        )
        .await?;
    }
    Ok(())
}

/// The weekly pack: on the policy's pack day, each covered site's pack Job
/// starts at its time in the pack window (before the backup window).
async fn pack(
    ctx: &Ctx,
    policy: &BackupPolicy,
    policies: &[BackupPolicy],
    sites: &[PloneSite],
    backups: &[Backup],
    now: Timestamp,
) -> Result<(), kube::Error> {
    let Some(spec) = &policy.spec.pack else {
        return Ok(());
    };
    let tz = TimeZone::get(&policy.spec.window.time_zone).unwrap_or(TimeZone::UTC);
    let today = now.to_zoned(tz).date();
    for date in [today.yesterday().unwrap_or(today), today] {
        let Ok(Some(plan)) = fleet::pack_plan(policy, policies, sites, backups, date) else {
            continue;
        };
        for run in &plan.runs {
            if run.start > now || now > plan.closes.timestamp().max(run.end) + CATCH_UP {
                continue;
            }
            let Some((ns, site)) = run.site.split_once('/') else {
                continue;
            };
            let name = fleet::pack_name(site, date);
            if ctx
                .data
                .jobs
                .get(&kube::runtime::reflector::ObjectRef::new(&name).within(ns))
                .is_some()
            {
                continue;
            }
            let Some(zeo) = Api::<k8s_openapi::api::apps::v1::StatefulSet>::namespaced(
                ctx.client().clone(),
                ns,
            )
            .get_opt(&mutu_model::names::zeo_server(site))
            .await?
            else {
                continue; // not a ZEO site: nothing to pack
            };
            let Some(owner) = policy.controller_owner_ref(&()) else {
                continue;
            };
            let Ok(job) = crate::jobs::pack_job(&name, ns, site, owner, spec.keep_days, &zeo)
            else {
                continue;
            };
            let jobs =
                Api::<k8s_openapi::api::batch::v1::Job>::namespaced(ctx.client().clone(), ns);
            if ctx.create_once(&jobs, &job).await? == Created::New {
                tracing::info!(namespace = %ns, site = %site, job = %name, "weekly pack started");
            }
        }
    }
    Ok(())
}

async fn retention(
    ctx: &Ctx,
    policies: &[BackupPolicy],
    sites: &[PloneSite],
    backups: &[Backup],
    restores: &[Arc<Restore>],
    now: Timestamp,
) -> Result<(), kube::Error> {
    let mut by_site: HashMap<(String, String), Vec<&Backup>> = HashMap::new();
    for b in backups {
        by_site
            .entry((b.namespace().unwrap_or_default(), b.spec.site.clone()))
            .or_default()
            .push(b);
    }
    for ((ns, site_name), list) in by_site {
        // Never while a backup or a restore of the same site runs.
        if list.iter().any(|b| !finished(b.status.as_ref()))
            || restores.iter().any(|r| {
                r.namespace().as_deref() == Some(ns.as_str())
                    && r.spec.site == site_name
                    && !finished(r.status.as_ref())
            })
        {
            continue;
        }
        let site = sites
            .iter()
            .find(|s| s.namespace().as_deref() == Some(ns.as_str()) && s.name_any() == site_name);
        let policy = list
            .iter()
            .find_map(|b| b.spec.policy.as_ref())
            .and_then(|p| policies.iter().find(|x| &x.name_any() == p))
            .or_else(|| site.and_then(|s| fleet::policy_of(s, policies)));
        let Some(policy) = policy else { continue };
        let tz = TimeZone::get(&policy.spec.window.time_zone).unwrap_or(TimeZone::UTC);
        for name in expired(&list, &policy.spec.retention, &tz, now) {
            match Api::<Backup>::namespaced(ctx.client().clone(), &ns)
                .delete(&name, &DeleteParams::background())
                .await
            {
                Ok(_) => {
                    ctx.metrics.write(ctx.name, "delete", "Backup");
                    tracing::info!(namespace = %ns, backup = %name, policy = %policy.name_any(), "retention deleted a backup");
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

async fn last_backups(
    ctx: &Ctx,
    metrics: &BackupMetrics,
    sites: &[PloneSite],
    backups: &[Backup],
    now: Timestamp,
) -> Result<(), kube::Error> {
    let mut last: HashMap<(String, String), &Backup> = HashMap::new();
    for b in backups {
        let Some(s) = &b.status else { continue };
        if !conditions::is_true(&s.conditions, mutu_api::CONDITION_COMPLETE)
            || s.completion_time.is_none()
        {
            continue;
        }
        let key = (b.namespace().unwrap_or_default(), b.spec.site.clone());
        let newer = last.get(&key).is_none_or(|o| {
            o.status
                .as_ref()
                .and_then(|s| s.completion_time.as_ref())
                .map(|t| t.0)
                < s.completion_time.as_ref().map(|t| t.0)
        });
        if newer {
            last.insert(key, b);
        }
    }
    let mut stale = 0;
    let mut seen = HashSet::new();
    for site in sites {
        let key = (site.namespace().unwrap_or_default(), site.name_any());
        let labels = vec![("namespace", key.0.clone()), ("site", key.1.clone())];
        seen.insert(key.clone());
        if fleet::scheduled(site) || site.metadata.deletion_timestamp.is_some() {
            metrics.suspended.remove(&labels);
        } else {
            metrics.suspended.get_or_create(&labels).set(1);
        }
        let Some(b) = last.get(&key) else {
            if fleet::scheduled(site)
                && site
                    .creation_timestamp()
                    .is_some_and(|t| now.duration_since(t.0) > STALE)
            {
                stale += 1;
            }
            continue;
        };
        let s = b.status.clone().unwrap_or_default();
        let done = s.completion_time.clone().map(|t| t.0).unwrap_or(now);
        metrics
            .last_success
            .get_or_create(&labels)
            .set(done.as_second());
        if let Some(size) = s.size {
            metrics.size.get_or_create(&labels).set(size);
        }
        if let Some(start) = s.start_time.as_ref() {
            metrics
                .duration
                .get_or_create(&labels)
                .set(done.duration_since(start.0).as_secs());
        }
        if fleet::scheduled(site) && now.duration_since(done) > STALE {
            stale += 1;
        }
        let recorded = site
            .status
            .as_ref()
            .and_then(|st| st.last_backup.as_ref())
            .map(|t| t.0);
        if recorded.is_none_or(|r| r < done) {
            Api::<PloneSite>::namespaced(ctx.client().clone(), &key.0)
                .patch_status(
                    &key.1,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"status": {"lastBackup": Time(done)}})),
                )
                .await?;
            ctx.metrics.write(ctx.name, "status", "PloneSite");
        }
    }
    metrics.stale.set(stale);
    // Series of sites that went away.
    let mut known = metrics.known.lock().unwrap_or_else(|e| e.into_inner());
    for key in known.difference(&seen).cloned().collect::<Vec<_>>() {
        let labels = vec![("namespace", key.0.clone()), ("site", key.1.clone())];
        metrics.last_success.remove(&labels);
        metrics.size.remove(&labels);
        metrics.duration.remove(&labels);
        metrics.suspended.remove(&labels);
        known.remove(&key);
    }
    known.extend(seen);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(name: &str, trigger: &str, done: &str, ok: bool) -> Backup {
        serde_json::from_value(json!({
            "apiVersion": "hosting.imio.be/v1alpha1", "kind": "Backup",
            "metadata": {"name": name, "namespace": "t"},
            "spec": {"site": "s", "trigger": trigger},
            "status": {"completionTime": done, "conditions": [
                {"type": if ok { "Complete" } else { "Failed" }, "status": "True", "reason": "x", "message": "", "lastTransitionTime": done}
            ]},
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn retention_keeps_the_newest_of_each_day_week_and_month() {
        let mut list = Vec::new();
        // 60 nightly backups, from 2026-09-30 to 2026-11-28, one a day at 23:30 UTC.
        let start: Timestamp = "2026-09-29T23:30:00Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        for i in 0..60 {
            let at = start + jiff::SignedDuration::from_hours(24 * i);
            list.push(backup(
                &format!("b{i:02}"),
                "Scheduled",
                &at.to_string(),
                true,
            ));
        }
        list.push(backup("manual", "Manual", "2026-01-01T00:00:00Z", true));
        list.push(backup(
            "old-failed",
            "Scheduled",
            "2026-11-01T00:00:00Z",
            false,
        ));
        let refs: Vec<&Backup> = list.iter().collect();
        let now: Timestamp = "2026-11-29T08:00:00Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let r = Retention {
            daily: 7,
            weekly: 4,
            monthly: 3,
        };
        let tz = TimeZone::get("Europe/Brussels").unwrap_or(TimeZone::UTC);
        let gone = expired(&refs, &r, &tz, now);
        let kept: Vec<String> = list
            .iter()
            .map(|b| b.name_any())
            .filter(|n| !gone.contains(n))
            .collect();
        assert!(
            kept.contains(&"manual".to_string()),
            "manual backups are never pruned"
        );
        assert!(gone.contains(&"old-failed".to_string()));
        // 7 newest days, plus the newest of older weeks and months.
        for i in 53..60 {
            assert!(kept.contains(&format!("b{i:02}")), "b{i} kept: {kept:?}");
        }
        let scheduled_kept = kept.iter().filter(|n| n.starts_with('b')).count();
        assert!((7..=7 + 4 + 3).contains(&scheduled_kept), "{kept:?}");
        assert!(gone.contains(&"b10".to_string()));
        // Nothing is kept twice over: running it again on what is kept deletes nothing more.
        let rest: Vec<&Backup> = list
            .iter()
            .filter(|b| !gone.contains(&b.name_any()))
            .collect();
        assert!(expired(&rest, &r, &tz, now).is_empty());
    }
}
