//! What the engine knows of a plan, whatever its kind, and the plan-level
//! rules, pure: what holds new sites back, how a site starts, how a step's
//! outcome is recorded, which old volumes and which nodes are done with, and
//! the conditions the plan shows.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::ResourceExt;
use mutu_api::common::SITE_LABEL;
use mutu_api::wave::{SiteCounts, SiteProgress, SiteStep, WaveStatus};
use mutu_api::{PloneSite, ProductSpec};
use mutu_model::names;
use mutu_model::storage::{self, Storage};
use mutu_model::wave::progress::{self, Hold};
use mutu_model::wave::{self, Cohort};
use mutu_runtime::conditions::Desired as Cond;

use crate::step::{Next, age, human, is_true};

/// What a plan does to its sites.
#[derive(Clone, Debug)]
pub enum Kind {
    Migration { from: String, to: String },
    Rollout { product: String, release: String },
}

/// The parts of a plan's spec the engine reads, for both kinds.
#[derive(Clone, Debug)]
pub struct PlanRef {
    pub kind: Kind,
    pub name: String,
    pub uid: String,
    pub owner: OwnerReference,
    pub wave_size: i32,
    pub max_in_flight: i32,
    pub window: Option<mutu_api::Window>,
    pub paused: bool,
    pub threshold: i32,
    pub verify: Duration,
    pub retention: Duration,
}

impl PlanRef {
    /// Value of the maintenance annotations the plan sets.
    pub fn who(&self) -> String {
        match self.kind {
            Kind::Migration { .. } => format!("migration/{}", self.name),
            Kind::Rollout { .. } => format!("rollout/{}", self.name),
        }
    }

    /// Name of what the plan creates for `site` (`pre`, `final`, `data`, `restore`).
    pub fn object_name(&self, site: &str, what: &str) -> String {
        names::bounded(&self.name, &format!("{site}-{what}"))
    }

    /// The volume a migrated ZEO site's data is copied to.
    pub fn new_volume(&self, site: &str) -> String {
        names::migrated_data_claim(site, &self.uid)
    }

    /// The plan as the owner of what it creates: not the controller of a
    /// Backup (the backup operator runs it), and deleting the plan deletes them.
    pub fn owner_ref(&self) -> OwnerReference {
        OwnerReference {
            controller: Some(false),
            block_owner_deletion: Some(false),
            ..self.owner.clone()
        }
    }

    /// The kind's name, as in metrics.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::Migration { .. } => "MigrationPlan",
            Kind::Rollout { .. } => "ReleaseRollout",
        }
    }
}

/// Why no new site may start now, if none may: an invalid spec, the failure
/// threshold, a pause or the window, in that order.
pub fn hold(
    plan: &PlanRef,
    invalid: Option<&str>,
    counted: &SiteCounts,
    now: &Time,
) -> Option<Hold> {
    if let Some(message) = invalid {
        Some(Hold::OutsideWindow(message.to_string()))
    } else if counted.failed >= plan.threshold {
        Some(Hold::Halted {
            failed: counted.failed,
            threshold: plan.threshold,
        })
    } else if plan.paused {
        Some(Hold::Paused)
    } else if let Some(w) = &plan.window {
        match progress::window_open(w, now.0) {
            Ok(true) => None,
            Ok(false) => Some(Hold::OutsideWindow(format!(
                "outside the window {}–{} {}",
                w.start, w.end, w.time_zone
            ))),
            Err(message) => Some(Hold::OutsideWindow(message)),
        }
    } else {
        None
    }
}

/// Starts a site: its first step, and where it comes from (pool or release,
/// and the data volume of a ZEO site that moves).
pub fn start(
    plan: &PlanRef,
    p: &mut SiteProgress,
    site: &PloneSite,
    product: Option<&ProductSpec>,
    now: &Time,
) {
    let st = site.status.clone().unwrap_or_default();
    p.step = SiteStep::Preflight;
    p.since = Some(now.clone());
    p.reason = Some("starting".into());
    p.origin = match &plan.kind {
        Kind::Migration { .. } => st.pool.clone(),
        Kind::Rollout { .. } => st.release.clone(),
    };
    p.origin_volume = match (&plan.kind, product) {
        (Kind::Migration { .. }, Some(product))
            if storage::of_site(site, product) == Storage::Zeo =>
        {
            Some(
                site.annotations()
                    .get(mutu_api::DATA_VOLUME_ANNOTATION)
                    .cloned()
                    .unwrap_or_else(|| names::zeo_data_claim(&p.name)),
            )
        }
        _ => None,
    };
}

/// Records the plan's waves over `sites` (once, then only added to) in
/// `status`, from the `candidates` among them (or why the spec cannot be
/// read); returns that reason, if any, and the cohort of each wave.
pub fn record_waves(
    status: &mut WaveStatus,
    plan: &PlanRef,
    sites: &[PloneSite],
    candidates: Result<Vec<Cohort>, String>,
) -> (Option<String>, BTreeMap<i32, String>) {
    let existing: BTreeSet<String> = sites.iter().map(wave::id).collect();
    let exists = |k: &str| existing.contains(k);
    let candidates = match candidates {
        Ok(candidates) => candidates,
        Err(message) => return (Some(message), BTreeMap::new()),
    };
    let planned = wave::waves(
        &status.site_progress,
        &status.waves,
        &candidates,
        plan.wave_size,
        exists,
    );
    wave::record(&mut status.site_progress, &planned, exists);
    let cohorts = planned
        .into_iter()
        .filter_map(|w| Some((w.index, w.cohort?)))
        .collect();
    (None, cohorts)
}

/// The sites in flight in any plan but `me` (by uid), from every plan's
/// `(uid, status)`: a site is in one plan at a time.
pub fn busy_elsewhere<'a>(
    me: &str,
    plans: impl IntoIterator<Item = (Option<String>, Option<&'a WaveStatus>)>,
) -> BTreeSet<String> {
    let mut busy = BTreeSet::new();
    for (uid, status) in plans {
        if uid.as_deref() == Some(me) {
            continue;
        }
        for p in status.map(|s| s.site_progress.as_slice()).unwrap_or(&[]) {
            if progress::in_flight(p.step) {
                busy.insert(progress::key(p));
            }
        }
    }
    busy
}

/// Begins a reconcile's work on `status` (the plan's status as last written,
/// `stored`, with its waves recorded): returns the sites whose recorded step
/// it works on, those in flight in `stored` (a site started now is worked on
/// from the next reconcile, once its first step is written), after starting,
/// unless something holds the plan (`hold`) or it is being deleted, the
/// pending sites of the current wave there is room for (not those `busy` in
/// another plan, nor those `site_of` (site and Product) cannot find).
#[allow(clippy::too_many_arguments)]
pub fn begin(
    plan: &PlanRef,
    status: &mut WaveStatus,
    stored: &WaveStatus,
    hold: Option<&Hold>,
    deleting: bool,
    busy: &BTreeSet<String>,
    site_of: impl Fn(&str, &str) -> Option<(PloneSite, Option<ProductSpec>)>,
    now: &Time,
) -> Vec<usize> {
    let recorded: Vec<usize> = (0..status.site_progress.len())
        .filter(|&i| progress::in_flight(status.site_progress[i].step))
        .filter(|&i| {
            let key = progress::key(&status.site_progress[i]);
            stored.site_progress.iter().any(|p| progress::key(p) == key)
        })
        .collect();
    if hold.is_none() && !deleting {
        for i in progress::to_start(&status.site_progress, plan.max_in_flight, busy) {
            let p = &mut status.site_progress[i];
            if let Some((site, product)) = site_of(&p.namespace, &p.name) {
                start(plan, p, &site, product.as_ref(), now);
            }
        }
    }
    recorded
}

/// The sites the plan may let go of (see `mutu_runtime::lock`): those finished
/// in the status as last written (`stored`), never one finished only in this
/// reconcile: its status write may still fail (or the operator stop first),
/// and a site let go before its plan's status says it is done with it may be
/// taken by another plan or a Restore while this plan, resuming from that
/// status, still works on it.
pub fn to_let_go(stored: &[SiteProgress]) -> impl Iterator<Item = &SiteProgress> {
    stored.iter().filter(|p| progress::finished(p.step))
}

/// The counts, waves and conditions of the status after a reconcile's work,
/// and whether the plan has sites to watch closely.
pub fn settle(
    status: &mut WaveStatus,
    plan: &PlanRef,
    invalid: Option<&str>,
    cohort_of_wave: &BTreeMap<i32, String>,
    now: &Time,
) -> (Vec<Cond<'static>>, bool) {
    let counted = progress::counts(status.site_progress.iter());
    status.sites = counted.clone();
    status.current_wave = progress::current_wave(&status.site_progress);
    let before_waves = status.waves.clone();
    status.waves = progress::waves(
        &status.site_progress,
        &before_waves,
        |i| {
            before_waves
                .iter()
                .find(|w| w.index == i)
                .and_then(|w| w.cohort.clone())
                .or_else(|| cohort_of_wave.get(&i).cloned())
        },
        now,
    );
    // What holds the plan now, after this reconcile's work (a site may have failed).
    let held = hold(plan, invalid, &counted, now);
    let conds = conditions(plan, invalid, &counted, held.as_ref(), status.current_wave);
    let left = counted.pending + counted.in_flight;
    (conds, counted.in_flight > 0 || (left > 0 && held.is_none()))
}

/// A site finished, for the plan's events: (failed, `namespace/name`, why).
pub type Finished = (bool, String, String);

/// A site deleted while the plan worked on it fails.
pub fn site_gone(p: &mut SiteProgress, now: &Time) {
    p.failed_step = Some(p.step);
    p.step = SiteStep::Failed;
    p.reason = Some("the PloneSite was deleted while the plan worked on it".into());
    p.finished = Some(now.clone());
}

/// Records the outcome of a site's step; returns the site if it finished.
pub fn apply(p: &mut SiteProgress, next: Next, now: &Time) -> Option<Finished> {
    let id = progress::key(p);
    match next {
        Next::Wait(reason) => {
            p.reason = Some(reason);
            None
        }
        Next::Go(step, reason) => {
            let finished = matches!(step, SiteStep::Done | SiteStep::Failed).then(|| {
                p.finished = Some(now.clone());
                (step == SiteStep::Failed, id, reason.clone())
            });
            p.step = step;
            p.since = Some(now.clone());
            p.reason = Some(reason);
            finished
        }
        Next::Fail(reason) => {
            p.failed_step = Some(p.step);
            p.since = Some(now.clone());
            let finished = if p.step == SiteStep::Preflight {
                // Nothing was changed yet: nothing to put back.
                p.step = SiteStep::Failed;
                p.finished = Some(now.clone());
                Some((true, id, reason.clone()))
            } else {
                p.step = SiteStep::RollingBack;
                None
            };
            p.reason = Some(reason);
            finished
        }
    }
}

/// The old volume of a moved site once the plan's retention has passed.
pub fn expiring<'a>(p: &'a SiteProgress, retention: Duration, now: &Time) -> Option<&'a str> {
    (p.step == SiteStep::Done && age(p.finished.as_ref(), now) >= retention)
        .then_some(p.origin_volume.as_deref())
        .flatten()
}

/// The old volumes of moved sites whose retention has passed: each is
/// forgotten, and those the site does not use (`in_use`) are returned to be
/// deleted (index into `progress`, volume).
pub fn expired_volumes(
    progress: &mut [SiteProgress],
    retention: Duration,
    now: &Time,
    in_use: impl Fn(&SiteProgress) -> Option<String>,
) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, p) in progress.iter_mut().enumerate() {
        if expiring(p, retention, now).is_none() {
            continue;
        }
        // Asked before it is forgotten: `in_use` may look at the volume the
        // progress records.
        let used = in_use(p);
        if let Some(old) = p.origin_volume.take()
            && used.as_deref() != Some(old.as_str())
        {
            out.push((i, old));
        }
    }
    out
}

/// The reason of a moved site once its old volume is deleted.
pub fn volume_deleted(old: &str, retention: Duration) -> String {
    format!(
        "moved; its old volume {old} was deleted after the plan's retention ({})",
        human(retention)
    )
}

/// The nodes of the pool being left (`from`) to cordon: schedulable, not
/// cordoned by the plan yet, holding no site's server. None while a site is
/// in flight, before any is done, or while a site placed on `from` is not
/// available (put back and starting, it may need any of them).
pub fn nodes_to_cordon(
    from: &str,
    counted: &SiteCounts,
    cordoned: &[String],
    sites: &[PloneSite],
    nodes: &[std::sync::Arc<Node>],
    pods: &[std::sync::Arc<Pod>],
) -> Vec<String> {
    let unsettled = sites.iter().any(|s| {
        s.status.as_ref().and_then(|st| st.pool.as_deref()) == Some(from)
            && !is_true(s, "Available")
    });
    if counted.in_flight > 0 || counted.done == 0 || unsettled {
        return Vec::new();
    }
    let holding: BTreeSet<&str> = pods
        .iter()
        .filter(|p| {
            p.labels().contains_key(SITE_LABEL)
                && matches!(
                    p.labels().get(mutu_api::COMPONENT).map(String::as_str),
                    Some("instance" | "zeo")
                )
        })
        .filter_map(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()))
        .collect();
    nodes
        .iter()
        .filter(|n| n.labels().get(mutu_api::POOL_LABEL).map(String::as_str) == Some(from))
        .filter(|n| n.spec.as_ref().and_then(|s| s.unschedulable) != Some(true))
        .map(|n| n.name_any())
        .filter(|n| !cordoned.contains(n) && !holding.contains(n.as_str()))
        .collect()
}

/// A migration with a site going back needs its pool: the nodes it cordoned
/// take sites again.
pub fn uncordon(plan: &PlanRef, progress: &[SiteProgress]) -> bool {
    matches!(plan.kind, Kind::Migration { .. })
        && progress.iter().any(|p| p.step == SiteStep::RollingBack)
}

/// Whether a deleted plan puts back in service the nodes it cordoned: yes
/// unless it moved every site it had (none pending or failed), since the
/// sites it leaves where they were may need their pool.
pub fn uncordon_when_deleted(counted: &SiteCounts) -> bool {
    counted.pending > 0 || counted.failed > 0
}

/// What a plan being deleted waits for.
pub fn deleting(counted: &SiteCounts) -> String {
    format!(
        "the plan is being deleted: {} site(s) in flight finish first (done, or put back where they were); {} pending site(s) are not started",
        counted.in_flight, counted.pending
    )
}

/// The plan's conditions (Progressing, Complete, Failed) after a reconcile.
pub fn conditions(
    plan: &PlanRef,
    invalid: Option<&str>,
    counted: &SiteCounts,
    hold: Option<&Hold>,
    current_wave: Option<i32>,
) -> Vec<Cond<'static>> {
    let left = counted.pending + counted.in_flight;
    let halted = counted.failed >= plan.threshold;
    let (progressing, reason, message) = progressing(invalid, counted, hold, current_wave);
    vec![
        Cond::new(
            mutu_api::CONDITION_PROGRESSING,
            progressing,
            reason,
            message,
        ),
        Cond::new(
            mutu_api::CONDITION_COMPLETE,
            invalid.is_none() && left == 0,
            if left > 0 {
                "SitesLeft"
            } else if counted.failed > 0 {
                "DoneWithFailures"
            } else {
                "AllDone"
            },
            format!(
                "{} done, {} failed, {} left of {}",
                counted.done, counted.failed, left, counted.total
            ),
        ),
        Cond::new(
            mutu_api::CONDITION_FAILED,
            halted,
            if halted {
                "ThresholdReached"
            } else {
                "BelowThreshold"
            },
            format!(
                "{} failed, the threshold is {}",
                counted.failed, plan.threshold
            ),
        ),
    ]
}

/// The Progressing condition: whether, why, and what is under way.
fn progressing(
    invalid: Option<&str>,
    counted: &SiteCounts,
    hold: Option<&Hold>,
    current_wave: Option<i32>,
) -> (bool, &'static str, String) {
    let left = counted.pending + counted.in_flight;
    match (invalid, left, hold) {
        (Some(message), _, _) => (false, "InvalidSpec", message.to_string()),
        (None, 0, _) => (
            false,
            "Finished",
            format!(
                "{} of {} sites done, {} failed",
                counted.done, counted.total, counted.failed
            ),
        ),
        (None, _, Some(Hold::Halted { failed, threshold })) => (
            counted.in_flight > 0,
            "Halted",
            format!(
                "{failed} sites failed, the failure threshold is {threshold}: no new site starts; {} in flight finish. Look at the failed sites' reasons, then raise spec.failureThreshold to go on",
                counted.in_flight
            ),
        ),
        (None, _, Some(Hold::Paused)) => (
            counted.in_flight > 0,
            "Paused",
            format!(
                "spec.paused: no new site starts; {} in flight finish",
                counted.in_flight
            ),
        ),
        (None, _, Some(Hold::OutsideWindow(message))) => (
            counted.in_flight > 0,
            "OutsideWindow",
            format!(
                "{message}: no new site starts; {} in flight finish",
                counted.in_flight
            ),
        ),
        (None, _, None) => (
            true,
            "Running",
            format!(
                "wave {}: {} in flight, {} pending, {} done, {} failed",
                current_wave.unwrap_or_default(),
                counted.in_flight,
                counted.pending,
                counted.done,
                counted.failed
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn time(s: &str) -> Time {
        Time(s.parse().unwrap_or_else(|e| panic!("{s}: {e}")))
    }

    fn migration() -> PlanRef {
        PlanRef {
            kind: Kind::Migration {
                from: "physical".into(),
                to: "frontend".into(),
            },
            name: "move".into(),
            uid: "uid-1".into(),
            owner: Default::default(),
            wave_size: 10,
            max_in_flight: 2,
            window: None,
            paused: false,
            threshold: 2,
            verify: Duration::from_secs(600),
            retention: Duration::from_secs(3600),
        }
    }

    fn site_at(step: SiteStep) -> SiteProgress {
        SiteProgress {
            step,
            ..progress::pending("t", "delib", 1)
        }
    }

    fn counts(pending: i32, in_flight: i32, done: i32, failed: i32) -> SiteCounts {
        SiteCounts {
            total: pending + in_flight + done + failed,
            pending,
            in_flight,
            done,
            failed,
        }
    }

    #[test]
    fn new_sites_are_held_by_an_invalid_spec_then_failures_then_a_pause() {
        let now = time("2026-11-28T12:00:00Z");
        let mut plan = migration();
        plan.paused = true;
        assert_eq!(
            hold(&plan, Some("spec.selector: bad"), &counts(1, 0, 0, 5), &now),
            Some(Hold::OutsideWindow("spec.selector: bad".into()))
        );
        assert_eq!(
            hold(&plan, None, &counts(1, 0, 0, 2), &now),
            Some(Hold::Halted {
                failed: 2,
                threshold: 2
            })
        );
        assert_eq!(
            hold(&plan, None, &counts(1, 0, 0, 1), &now),
            Some(Hold::Paused)
        );
        plan.paused = false;
        assert_eq!(hold(&plan, None, &counts(1, 0, 0, 1), &now), None);
        plan.window = Some(mutu_api::Window {
            start: "22:00".into(),
            end: "05:00".into(),
            time_zone: "Europe/Brussels".into(),
        });
        assert!(matches!(
            hold(&plan, None, &counts(1, 0, 0, 0), &now),
            Some(Hold::OutsideWindow(m)) if m.starts_with("outside the window 22:00–05:00")
        ));
    }

    #[test]
    fn a_starting_zeo_site_records_its_pool_and_data_volume() {
        let site: PloneSite = serde_json::from_value(json!({
            "apiVersion": "hosting.imio.be/v1alpha1", "kind": "PloneSite",
            "metadata": {"name": "delib", "namespace": "t"},
            "spec": {"product": "delib", "hostnames": ["delib.example.be"]},
            "status": {"pool": "physical", "release": "4.2.18"},
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let product: ProductSpec = serde_json::from_value(json!({
            "displayName": "Delib", "engine": "plone", "image": "r/delib", "release": "4.2.18",
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let now = time("2026-11-28T22:00:00Z");
        let mut p = site_at(SiteStep::Pending);
        start(&migration(), &mut p, &site, Some(&product), &now);
        assert_eq!(p.step, SiteStep::Preflight);
        assert_eq!(p.origin.as_deref(), Some("physical"));
        assert_eq!(p.origin_volume.as_deref(), Some("data-delib-zeo-0"));
        assert_eq!(p.since, Some(now));
    }

    #[test]
    fn a_failure_before_anything_changed_fails_at_once_and_later_rolls_back() {
        let now = time("2026-11-28T22:00:00Z");
        let mut p = site_at(SiteStep::Preflight);
        let event = apply(&mut p, Next::Fail("no room".into()), &now);
        assert_eq!(event, Some((true, "t/delib".into(), "no room".into())));
        assert_eq!(
            (p.step, p.failed_step),
            (SiteStep::Failed, Some(SiteStep::Preflight))
        );
        let mut p = site_at(SiteStep::CopyingData);
        assert_eq!(apply(&mut p, Next::Fail("job failed".into()), &now), None);
        assert_eq!(p.step, SiteStep::RollingBack);
        assert_eq!(p.failed_step, Some(SiteStep::CopyingData));
        assert!(p.finished.is_none());
    }

    #[test]
    fn a_site_is_let_go_of_only_once_its_status_says_it_is_finished() {
        // Finished in this reconcile only: its status write may fail, or the operator
        // stop, and the plan would resume working on a site another plan took meanwhile
        // (found by the model check, tests/model.rs: a moved site, let go of, upgraded by
        // a rollout, then put back on its old volume by the resumed migration).
        let stored = vec![
            site_at(SiteStep::Verifying),
            SiteProgress {
                name: "done".into(),
                ..site_at(SiteStep::Done)
            },
            SiteProgress {
                name: "failed".into(),
                ..site_at(SiteStep::Failed)
            },
        ];
        let names: Vec<&str> = to_let_go(&stored).map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["done", "failed"]);
    }

    #[test]
    fn a_site_that_finishes_is_an_event_and_one_that_waits_keeps_its_step() {
        let now = time("2026-11-28T22:00:00Z");
        let mut p = site_at(SiteStep::Verifying);
        assert_eq!(apply(&mut p, Next::Wait("starting".into()), &now), None);
        assert_eq!(
            (p.step, p.reason.as_deref()),
            (SiteStep::Verifying, Some("starting"))
        );
        let done = apply(&mut p, Next::Go(SiteStep::Done, "Ready".into()), &now);
        assert_eq!(done, Some((false, "t/delib".into(), "Ready".into())));
        assert_eq!(p.finished, Some(now.clone()));
        let mut gone = site_at(SiteStep::Moving);
        site_gone(&mut gone, &now);
        assert_eq!(
            (gone.step, gone.failed_step),
            (SiteStep::Failed, Some(SiteStep::Moving))
        );
    }

    #[test]
    fn an_old_volume_goes_after_the_retention_unless_the_site_uses_it() {
        let now = time("2026-11-28T22:00:00Z");
        let mut old = site_at(SiteStep::Done);
        old.finished = Some(time("2026-11-28T20:00:00Z"));
        old.origin_volume = Some("data-delib-zeo-0".into());
        let mut recent = old.clone();
        recent.name = "recent".into();
        recent.finished = Some(time("2026-11-28T21:30:00Z"));
        let mut used = old.clone();
        used.name = "used".into();
        let mut progress = vec![old, recent, used];
        let in_use = |p: &SiteProgress| (p.name == "used").then(|| "data-delib-zeo-0".to_string());
        let gone = expired_volumes(&mut progress, Duration::from_secs(3600), &now, in_use);
        assert_eq!(gone, [(0, "data-delib-zeo-0".to_string())]);
        assert!(progress[1].origin_volume.is_some(), "retention not passed");
        assert!(
            progress[2].origin_volume.is_none(),
            "in use: forgotten, kept"
        );
        assert_eq!(
            volume_deleted("v", Duration::from_secs(3600)),
            "moved; its old volume v was deleted after the plan's retention (1h)"
        );
    }

    #[test]
    fn an_old_volume_kept_for_what_its_progress_records_is_not_deleted() {
        // The engine keeps a volume a pod mounts, or one nothing supersedes,
        // by looking at the volume the site's progress records: it must still
        // be recorded when `in_use` is asked.
        let now = time("2026-11-28T22:00:00Z");
        let mut kept = site_at(SiteStep::Done);
        kept.finished = Some(time("2026-11-28T20:00:00Z"));
        kept.origin_volume = Some("data-delib-zeo-0".into());
        let mut progress = vec![kept];
        let in_use = |p: &SiteProgress| p.origin_volume.clone();
        let gone = expired_volumes(&mut progress, Duration::from_secs(3600), &now, in_use);
        assert_eq!(gone, []);
        assert!(progress[0].origin_volume.is_none(), "forgotten, kept");
    }

    fn node(name: &str, pool: &str) -> std::sync::Arc<Node> {
        std::sync::Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {mutu_api::POOL_LABEL: pool}},
            }))
            .unwrap_or_else(|e| panic!("{e}")),
        )
    }

    fn server_on(node: &str) -> std::sync::Arc<Pod> {
        std::sync::Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": "s", "namespace": "t",
                    "labels": {SITE_LABEL: "delib", mutu_api::COMPONENT: "instance"}},
                "spec": {"nodeName": node, "containers": []},
            }))
            .unwrap_or_else(|e| panic!("{e}")),
        )
    }

    #[test]
    fn a_deleted_plan_puts_its_nodes_back_unless_it_moved_every_site() {
        assert!(!uncordon_when_deleted(&counts(0, 0, 3, 0)));
        assert!(uncordon_when_deleted(&counts(2, 0, 3, 0)));
        assert!(uncordon_when_deleted(&counts(0, 0, 3, 1)));
        let message = deleting(&counts(4, 2, 1, 0));
        assert!(
            message.contains("2 site(s) in flight finish first"),
            "{message}"
        );
        assert!(
            message.contains("4 pending site(s) are not started"),
            "{message}"
        );
    }

    #[test]
    fn only_empty_nodes_of_the_pool_left_are_cordoned_once_sites_are_done() {
        let nodes = [
            node("a", "physical"),
            node("b", "physical"),
            node("c", "frontend"),
        ];
        let pods = [server_on("b")];
        let done = counts(0, 0, 1, 0);
        assert_eq!(
            nodes_to_cordon("physical", &done, &[], &[], &nodes, &pods),
            ["a"]
        );
        assert!(nodes_to_cordon("physical", &done, &["a".into()], &[], &nodes, &pods).is_empty());
        assert!(
            nodes_to_cordon("physical", &counts(0, 1, 1, 0), &[], &[], &nodes, &pods).is_empty(),
            "a site in flight"
        );
        assert!(
            nodes_to_cordon("physical", &counts(1, 0, 0, 0), &[], &[], &nodes, &pods).is_empty(),
            "nothing done yet"
        );
        let mut back = site_at(SiteStep::RollingBack);
        assert!(uncordon(&migration(), std::slice::from_ref(&back)));
        back.step = SiteStep::Done;
        assert!(!uncordon(&migration(), &[back]));
    }

    #[test]
    fn the_conditions_say_running_halted_or_finished() {
        let plan = migration();
        let running = conditions(&plan, None, &counts(3, 1, 1, 0), None, Some(1));
        assert_eq!((running[0].reason, running[0].status), ("Running", true));
        assert_eq!(
            running[0].message,
            "wave 1: 1 in flight, 3 pending, 1 done, 0 failed"
        );
        let halted = Hold::Halted {
            failed: 2,
            threshold: 2,
        };
        let c = conditions(&plan, None, &counts(3, 0, 1, 2), Some(&halted), Some(1));
        assert_eq!((c[0].reason, c[0].status), ("Halted", false));
        assert_eq!((c[2].reason, c[2].status), ("ThresholdReached", true));
        let c = conditions(&plan, None, &counts(0, 0, 4, 1), None, None);
        assert_eq!(c[0].reason, "Finished");
        assert_eq!((c[1].reason, c[1].status), ("DoneWithFailures", true));
        let c = conditions(
            &plan,
            Some("spec.selector: bad"),
            &counts(0, 0, 0, 0),
            None,
            None,
        );
        assert_eq!((c[0].reason, c[1].status), ("InvalidSpec", false));
    }
}
