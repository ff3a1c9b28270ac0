//! From the fleet to a night's plan, purely: which policy covers each site,
//! how long each site's backup is expected to take (from its recent backups),
//! which night is "tonight", and the plan itself. The operator's engine and
//! `mutu backup schedule` both call [`night_plan`], so they always agree.

use std::collections::HashMap;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use kube::ResourceExt;
use mutu_api::backup::BackupTrigger;
use mutu_api::{Backup, BackupPolicy, PloneSite};

use crate::schedule::{self, Caps, Plan, Site, WindowError};

/// Recent durations considered for a site's expected backup length.
const HISTORY: usize = 5;

/// `namespace/name` of a site.
pub fn site_id(site: &PloneSite) -> String {
    format!(
        "{}/{}",
        site.namespace().unwrap_or_default(),
        site.name_any()
    )
}

/// The default policy: the oldest of those marked default (several is a
/// mistake the status reports).
pub fn default_policy(policies: &[BackupPolicy]) -> Option<&BackupPolicy> {
    policies
        .iter()
        .filter(|p| p.spec.default)
        .min_by_key(|p| (p.creation_timestamp().map(|t| t.0), p.name_any()))
}

/// The policy that covers `site`: the one it names, else the one listing its
/// product, else the default. `None` when it names a policy that does not exist.
pub fn policy_of<'a>(site: &PloneSite, policies: &'a [BackupPolicy]) -> Option<&'a BackupPolicy> {
    if let Some(name) = site.spec.backup.as_ref().and_then(|b| b.policy.as_ref()) {
        return policies.iter().find(|p| &p.name_any() == name);
    }
    policies
        .iter()
        .filter(|p| p.spec.products.contains(&site.spec.product))
        .min_by_key(|p| p.name_any())
        .or_else(|| default_policy(policies))
}

/// Whether the nightly schedule backs `site` up.
pub fn scheduled(site: &PloneSite) -> bool {
    site.metadata.deletion_timestamp.is_none()
        && !site.spec.backup.as_ref().is_some_and(|b| b.suspended)
}

/// Expected minutes of each site's backup: the median of its last successful
/// backups, rounded up; sites with no history get the default.
pub fn expected_minutes<'a>(backups: impl Iterator<Item = &'a Backup>) -> HashMap<String, u32> {
    let mut by_site: HashMap<String, Vec<(Timestamp, i64)>> = HashMap::new();
    for b in backups {
        let Some(status) = &b.status else { continue };
        if !mutu_runtime::conditions::is_true(&status.conditions, mutu_api::CONDITION_COMPLETE) {
            continue;
        }
        let (Some(start), Some(end)) = (&status.start_time, &status.completion_time) else {
            continue;
        };
        let secs = end.0.duration_since(start.0).as_secs().max(0);
        let id = format!("{}/{}", b.namespace().unwrap_or_default(), b.spec.site);
        by_site.entry(id).or_default().push((end.0, secs));
    }
    by_site
        .into_iter()
        .map(|(id, mut runs)| {
            runs.sort();
            let mut recent: Vec<i64> = runs.iter().rev().take(HISTORY).map(|r| r.1).collect();
            recent.sort_unstable();
            let median = recent[recent.len() / 2];
            (id, ((median + 59) / 60).max(1) as u32)
        })
        .collect()
}

/// The night whose window is open at `now`, else the next one to open: the
/// local date its window starts on.
pub fn tonight(policy: &BackupPolicy, now: Timestamp) -> Result<Date, WindowError> {
    let tz = TimeZone::get(&policy.spec.window.time_zone)
        .map_err(|_| WindowError::TimeZone(policy.spec.window.time_zone.clone()))?;
    let today = now.to_zoned(tz).date();
    let yesterday = today.yesterday().unwrap_or(today);
    let tomorrow = today.tomorrow().unwrap_or(today);
    for date in [yesterday, today] {
        let (_, closes) = schedule::window_of(&policy.spec.window, date)?;
        if now < closes.timestamp() {
            return Ok(date);
        }
    }
    Ok(tomorrow)
}

/// How long after the window (or a run's planned end, when later) a missed start is still
/// made up.
pub const CATCH_UP: jiff::SignedDuration = jiff::SignedDuration::from_hours(1);

/// A scheduled Backup to create now: its namespace, name and site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    pub namespace: String,
    pub name: String,
    pub site: String,
}

/// The scheduled Backups whose time has come at `now`: the runs of tonight's plan (see
/// [`tonight`]) and of the night before, whose start has passed and whose catch-up has
/// not (an hour after the window closes, or after the run's planned end when later).
/// The night before counts until then: after its window closes `tonight` is already the
/// next night, and a run planned after the window (the window cannot hold the fleet), or
/// missed while the operator was down, would otherwise never start (found by the model
/// check, tests/model.rs). The Backups that exist are left to the caller.
pub fn due(
    policy: &BackupPolicy,
    policies: &[BackupPolicy],
    sites: &[PloneSite],
    backups: &[Backup],
    now: Timestamp,
) -> Result<Vec<Due>, WindowError> {
    let tonight = tonight(policy, now)?;
    let mut out = Vec::new();
    for date in [tonight.yesterday().unwrap_or(tonight), tonight] {
        let plan = night_plan(policy, policies, sites, backups, date)?;
        for run in &plan.runs {
            let late_limit = plan.closes.timestamp().max(run.end) + CATCH_UP;
            if run.start > now || now > late_limit {
                continue;
            }
            let Some((ns, site)) = run.site.split_once('/') else {
                continue;
            };
            out.push(Due {
                namespace: ns.to_string(),
                name: scheduled_name(site, date),
                site: site.to_string(),
            });
        }
    }
    Ok(out)
}

/// The plan of `policy` for the night starting on `date`: every site it covers
/// that the schedule backs up, with its node and expected length.
pub fn night_plan(
    policy: &BackupPolicy,
    policies: &[BackupPolicy],
    sites: &[PloneSite],
    backups: &[Backup],
    date: Date,
) -> Result<Plan, WindowError> {
    let (opens, closes) = schedule::window_of(&policy.spec.window, date)?;
    let minutes = expected_minutes(backups.iter());
    let name = policy.name_any();
    let fleet: Vec<Site> = sites
        .iter()
        .filter(|s| scheduled(s))
        .filter(|s| policy_of(s, policies).is_some_and(|p| p.name_any() == name))
        .map(|s| {
            let id = site_id(s);
            Site {
                node: s.status.as_ref().and_then(|st| st.nodes.first().cloned()),
                minutes: minutes
                    .get(&id)
                    .copied()
                    .unwrap_or(schedule::DEFAULT_EXPECTED_MINUTES),
                id,
            }
        })
        .collect();
    let caps = Caps {
        max_concurrent: policy.spec.max_concurrent.max(1) as u32,
        max_per_node: policy.spec.max_per_node.map(|n| n.max(1) as u32),
    };
    Ok(schedule::plan(opens, closes, &fleet, caps))
}

/// The pack night of `policy` on `date`, when it packs that day: the window
/// runs from `pack.start` (an hour before the backup window when absent) to
/// the backup window's start, so a pack never overlaps the backups; the same
/// planner spreads the sites in it under the same caps.
pub fn pack_plan(
    policy: &BackupPolicy,
    policies: &[BackupPolicy],
    sites: &[PloneSite],
    backups: &[Backup],
    date: Date,
) -> Result<Option<Plan>, WindowError> {
    let Some(pack) = &policy.spec.pack else {
        return Ok(None);
    };
    if weekday(pack.day) != date.weekday() {
        return Ok(None);
    }
    let backup_start = &policy.spec.window.start;
    let start = match &pack.start {
        Some(s) => s.clone(),
        None => {
            let (opens, _) = schedule::window_of(&policy.spec.window, date)?;
            let hour_before = opens.timestamp() - jiff::SignedDuration::from_hours(1);
            hour_before
                .to_zoned(opens.time_zone().clone())
                .strftime("%H:%M")
                .to_string()
        }
    };
    let mut packing = policy.clone();
    packing.spec.window = mutu_api::Window {
        start,
        end: backup_start.clone(),
        time_zone: policy.spec.window.time_zone.clone(),
    };
    if packing.spec.window.start == packing.spec.window.end {
        return Ok(None);
    }
    night_plan(&packing, policies, sites, backups, date).map(Some)
}

fn weekday(day: mutu_api::backup::Weekday) -> jiff::civil::Weekday {
    use mutu_api::backup::Weekday as W;
    match day {
        W::Monday => jiff::civil::Weekday::Monday,
        W::Tuesday => jiff::civil::Weekday::Tuesday,
        W::Wednesday => jiff::civil::Weekday::Wednesday,
        W::Thursday => jiff::civil::Weekday::Thursday,
        W::Friday => jiff::civil::Weekday::Friday,
        W::Saturday => jiff::civil::Weekday::Saturday,
        W::Sunday => jiff::civil::Weekday::Sunday,
    }
}

/// Name of the pack Job of `site` on `date`.
pub fn pack_name(site: &str, date: Date) -> String {
    let name = format!("{site}-pack-{}", date.strftime("%Y%m%d"));
    name.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

/// Name of the scheduled Backup of `site` for the night starting on `date`.
pub fn scheduled_name(site: &str, date: Date) -> String {
    let name = format!("{site}-{}", date.strftime("%Y%m%d"));
    name.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

/// Whether `backup` was made by the schedule.
pub fn is_scheduled(backup: &Backup) -> bool {
    backup.spec.trigger == BackupTrigger::Scheduled
}

/// The window of a plan, for messages: `22:00–05:00 Europe/Brussels (7 h)`.
pub fn describe_window(opens: &Zoned, closes: &Zoned) -> String {
    let minutes = closes
        .timestamp()
        .duration_since(opens.timestamp())
        .as_secs()
        / 60;
    format!(
        "{}–{} {} ({} h {:02} min)",
        opens.strftime("%H:%M"),
        closes.strftime("%H:%M"),
        opens.time_zone().iana_name().unwrap_or("UTC"),
        minutes / 60,
        minutes % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(name: &str, extra: serde_json::Value) -> BackupPolicy {
        let mut spec = json!({"window": {"start": "22:00", "end": "05:00"}, "maxConcurrent": 4});
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                s.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(json!({"apiVersion": "hosting.imio.be/v1alpha1", "kind": "BackupPolicy", "metadata": {"name": name}, "spec": spec}))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn site(ns: &str, name: &str, product: &str, backup: serde_json::Value) -> PloneSite {
        serde_json::from_value(json!({
            "apiVersion": "hosting.imio.be/v1alpha1", "kind": "PloneSite",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"product": product, "hostnames": [format!("{name}.example.be")], "backup": backup},
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn backup(ns: &str, site: &str, start: &str, end: &str) -> Backup {
        serde_json::from_value(json!({
            "apiVersion": "hosting.imio.be/v1alpha1", "kind": "Backup",
            "metadata": {"name": format!("{site}-{start}"), "namespace": ns},
            "spec": {"site": site},
            "status": {"startTime": start, "completionTime": end, "conditions": [
                {"type": "Complete", "status": "True", "reason": "Done", "message": "", "lastTransitionTime": end}
            ]},
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn runs_planned_after_a_full_window_start_after_it_closes() {
        // 22:00–22:20 UTC, one at a time, three sites of 10 minutes: one run is planned
        // after the window. Once the window has closed, "tonight" is the next night, and
        // the runner looked at it alone: that run never started (found by the model
        // check, tests/model.rs).
        let p = policy(
            "nightly",
            json!({"window": {"start": "22:00", "end": "22:20", "timeZone": "UTC"},
                   "maxConcurrent": 1, "default": true}),
        );
        let sites: Vec<PloneSite> = (0..3)
            .map(|i| site("t", &format!("s{i}"), "delib", json!({})))
            .collect();
        let policies = [p.clone()];
        let at = |t: &str| t.parse::<Timestamp>().unwrap_or_else(|e| panic!("{e}"));
        let date = "2026-11-28"
            .parse::<Date>()
            .unwrap_or_else(|e| panic!("{e}"));
        let plan = night_plan(&p, &policies, &sites, &[], date).unwrap_or_else(|e| panic!("{e}"));
        assert!(plan.overruns >= 1, "{} overruns", plan.overruns);
        let late = plan
            .runs
            .iter()
            .find(|r| r.overrun)
            .unwrap_or_else(|| panic!("no overrun"));
        let due_at = |t: Timestamp| {
            due(&p, &policies, &sites, &[], t)
                .unwrap_or_else(|e| panic!("{e}"))
                .into_iter()
                .map(|d| format!("{}/{}", d.namespace, d.name))
                .collect::<Vec<_>>()
        };
        let name = format!("{}-20261128", late.site);
        assert!(
            due_at(late.start).contains(&name),
            "due at its start, after the window: {:?}",
            due_at(late.start)
        );
        // Made up until an hour after its planned end, not later.
        assert!(due_at(late.end + CATCH_UP).contains(&name));
        assert!(!due_at(late.end + CATCH_UP + jiff::SignedDuration::from_mins(1)).contains(&name));
        // A run missed while the operator was down is made up after the window too.
        let first = plan.runs.first().unwrap_or_else(|| panic!("no run"));
        let missed = format!("{}-20261128", first.site);
        assert!(due_at(at("2026-11-28T22:40:00Z")).contains(&missed));
        // Before the window, nothing of last night nor of tonight.
        assert!(due_at(at("2026-11-28T21:00:00Z")).is_empty());
    }

    #[test]
    fn a_site_uses_the_policy_it_names_then_its_products_then_the_default() {
        let policies = vec![
            policy("nightly", json!({"default": true})),
            policy("delib", json!({"products": ["delib"]})),
            policy("custom", json!({})),
        ];
        let name = |s: &PloneSite| policy_of(s, &policies).map(|p| p.name_any());
        assert_eq!(
            name(&site("a", "s", "delib", json!({}))).as_deref(),
            Some("delib")
        );
        assert_eq!(
            name(&site("a", "s", "web", json!({}))).as_deref(),
            Some("nightly")
        );
        assert_eq!(
            name(&site("a", "s", "delib", json!({"policy": "custom"}))).as_deref(),
            Some("custom")
        );
        assert_eq!(
            name(&site("a", "s", "web", json!({"policy": "gone"}))),
            None
        );
        assert!(!scheduled(&site(
            "a",
            "s",
            "web",
            json!({"suspended": true})
        )));
    }

    #[test]
    fn the_expected_length_is_the_median_of_the_recent_backups() {
        let backups = [
            backup("a", "s", "2026-11-20T23:00:00Z", "2026-11-20T23:04:00Z"),
            backup("a", "s", "2026-11-21T23:00:00Z", "2026-11-21T23:30:00Z"),
            backup("a", "s", "2026-11-22T23:00:00Z", "2026-11-22T23:06:30Z"),
        ];
        let m = expected_minutes(backups.iter());
        assert_eq!(m.get("a/s"), Some(&7), "6.5 min, rounded up");
    }

    #[test]
    fn tonight_is_the_open_window_else_the_next() {
        let p = policy("nightly", json!({}));
        let at = |t: &str| t.parse::<Timestamp>().unwrap_or_else(|e| panic!("{e}"));
        // 02:00 in Brussels on the 29th: the window opened on the 28th.
        assert_eq!(
            tonight(&p, at("2026-11-29T01:00:00Z")).ok(),
            Some(Date::constant(2026, 11, 28))
        );
        // 12:00 on the 29th: the next window opens that evening.
        assert_eq!(
            tonight(&p, at("2026-11-29T11:00:00Z")).ok(),
            Some(Date::constant(2026, 11, 29))
        );
        // A window within the day that is over for today: tomorrow's.
        let early = policy(
            "early",
            json!({"window": {"start": "02:00", "end": "04:00"}}),
        );
        assert_eq!(
            tonight(&early, at("2026-11-29T10:00:00Z")).ok(),
            Some(Date::constant(2026, 11, 30))
        );
    }

    #[test]
    fn the_pack_runs_on_its_day_before_the_backup_window() {
        let p = policy(
            "nightly",
            json!({"pack": {"day": "sunday", "start": "21:00", "keepDays": 7}}),
        );
        let sites = vec![site("a", "web", "web", json!({}))];
        let policies = vec![policy("x", json!({"default": true}))];
        let mut all = policies.clone();
        all.push(p.clone());
        // 2026-11-29 is a Sunday.
        let plan = pack_plan(&p, &all, &sites, &[], Date::constant(2026, 11, 29))
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no pack on its day"));
        assert_eq!(plan.opens.strftime("%H:%M").to_string(), "21:00");
        assert_eq!(plan.closes.strftime("%H:%M").to_string(), "22:00");
        assert!(
            pack_plan(&p, &all, &sites, &[], Date::constant(2026, 11, 28))
                .ok()
                .flatten()
                .is_none()
        );
        let no_start = policy("n", json!({"pack": {"day": "sunday"}}));
        let plan = pack_plan(
            &no_start,
            std::slice::from_ref(&no_start),
            &[],
            &[],
            Date::constant(2026, 11, 29),
        )
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no pack"));
        assert_eq!(
            plan.opens.strftime("%H:%M").to_string(),
            "21:00",
            "an hour before 22:00"
        );
        assert_eq!(
            pack_name("web", Date::constant(2026, 11, 29)),
            "web-pack-20261129"
        );
    }

    #[test]
    fn the_night_plan_covers_exactly_the_policys_scheduled_sites() {
        let policies = vec![
            policy("nightly", json!({"default": true})),
            policy("delib", json!({"products": ["delib"]})),
        ];
        let sites = vec![
            site("a", "web", "web", json!({})),
            site("a", "delib", "delib", json!({})),
            site("b", "paused", "web", json!({"suspended": true})),
        ];
        let plan = night_plan(
            &policies[0],
            &policies,
            &sites,
            &[],
            Date::constant(2026, 11, 28),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let ids: Vec<&str> = plan.runs.iter().map(|r| r.site.as_str()).collect();
        assert_eq!(ids, ["a/web"]);
        assert_eq!(
            scheduled_name("web", Date::constant(2026, 11, 28)),
            "web-20261128"
        );
    }
}
