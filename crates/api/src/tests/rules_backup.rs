//! CEL rules of BackupPolicy (and the shared night window), Backup and Restore: one valid and
//! one invalid object each.

use serde_json::{Value, json};

use super::{accepted, merged, object, rejected};
use crate::{Backup, BackupPolicy, Restore};

fn policy(patch: Value) -> BackupPolicy {
    let base = json!({
        "default": true,
        "window": { "start": "22:00", "end": "05:00", "timeZone": "Europe/Brussels" },
        "maxConcurrent": 8,
    });
    object(merged(base, patch))
}

fn window(start: &str, end: &str) -> Value {
    json!({ "window": { "start": start, "end": end } })
}

#[test]
fn window_times_are_24_hour_hh_mm() {
    accepted(policy(window("00:00", "23:59")).validate_cel());
    for bad in ["24:00", "7:00", "22h00", "22:60"] {
        rejected(
            policy(window(bad, "05:00")).validate_cel(),
            "spec.window.start",
        );
        rejected(
            policy(window("05:00", bad)).validate_cel(),
            "spec.window.end",
        );
    }
}

#[test]
fn window_is_not_empty() {
    rejected(
        policy(window("22:00", "22:00")).validate_cel(),
        "spec.window",
    );
}

#[test]
fn window_time_zone_defaults_to_brussels_and_must_be_a_zone_name() {
    let spec = policy(json!({ "window": { "timeZone": null } })).spec;
    assert_eq!(spec.window.time_zone, "Europe/Brussels");
    accepted(policy(json!({ "window": { "timeZone": "UTC" } })).validate_cel());
    let bad = json!({ "window": { "timeZone": "Brussels time" } });
    rejected(policy(bad).validate_cel(), "spec.window.timeZone");
}

#[test]
fn policy_runs_at_least_one_backup_at_a_time() {
    accepted(policy(json!({ "maxConcurrent": 1, "maxPerNode": 1 })).validate_cel());
    rejected(
        policy(json!({ "maxConcurrent": 0 })).validate_cel(),
        "spec.maxConcurrent",
    );
    rejected(
        policy(json!({ "maxPerNode": 0 })).validate_cel(),
        "spec.maxPerNode",
    );
}

#[test]
fn policy_retention_counts_cannot_be_negative_nor_keep_nothing() {
    let keep_nothing = json!({ "retention": { "daily": 0, "weekly": 0, "monthly": 0 } });
    rejected(policy(keep_nothing).validate_cel(), "spec.retention");
    let keep_one = json!({ "retention": { "daily": 0, "weekly": 0, "monthly": 1 } });
    accepted(policy(keep_one).validate_cel());
    for period in ["daily", "weekly", "monthly"] {
        let bad = json!({ "retention": { period: -1 } });
        rejected(
            policy(bad).validate_cel(),
            &format!("spec.retention.{period}"),
        );
    }
}

#[test]
fn policy_pack_starts_at_an_hh_mm_time_and_keeps_days() {
    let ok = json!({ "pack": { "day": "sunday", "start": "21:00", "keepDays": 7 } });
    accepted(policy(ok).validate_cel());
    let bad_start = json!({ "pack": { "day": "sunday", "start": "9pm" } });
    rejected(policy(bad_start).validate_cel(), "spec.pack.start");
    let bad_days = json!({ "pack": { "day": "sunday", "keepDays": -1 } });
    rejected(policy(bad_days).validate_cel(), "spec.pack.keepDays");
}

#[test]
fn backup_cannot_be_changed_once_created() {
    let old: Backup = object(json!({ "site": "delib" }));
    accepted(old.validate_cel());
    accepted(old.validate_cel_update(&old));
    let changed: Backup = object(json!({ "site": "docs" }));
    rejected(changed.validate_cel_update(&old), "spec");
}

#[test]
fn restore_cannot_be_changed_once_created() {
    let old: Restore = object(json!({ "site": "delib", "backup": "delib-20191230-2214" }));
    accepted(old.validate_cel());
    let changed: Restore = object(json!({ "site": "delib", "backup": "delib-20191229-2214" }));
    rejected(changed.validate_cel_update(&old), "spec");
}
