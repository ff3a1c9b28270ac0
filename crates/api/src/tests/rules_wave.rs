//! CEL rules of MigrationPlan and ReleaseRollout: one valid and one invalid object each.

use serde_json::{Value, json};

use super::fixtures::{raw, validate_raw};
use super::{accepted, merged, object, rejected};
use crate::{MigrationPlan, ReleaseRollout};

fn plan(patch: Value) -> MigrationPlan {
    let base = json!({ "from": "physical", "to": "frontend", "waveSize": 10 });
    object(merged(base, patch))
}

fn rollout(patch: Value) -> ReleaseRollout {
    let base = json!({ "product": "delib", "release": "4.2.19", "waveSize": 20 });
    object(merged(base, patch))
}

#[test]
fn plan_moves_sites_to_another_pool() {
    accepted(plan(json!({})).validate_cel());
    rejected(plan(json!({ "to": "physical" })).validate_cel(), "spec.to");
}

#[test]
fn plan_waves_hold_at_least_one_site() {
    rejected(
        plan(json!({ "waveSize": 0 })).validate_cel(),
        "spec.waveSize",
    );
    rejected(
        plan(json!({ "maxInFlight": 0 })).validate_cel(),
        "spec.maxInFlight",
    );
    rejected(
        plan(json!({ "failureThreshold": 0 })).validate_cel(),
        "spec.failureThreshold",
    );
}

#[test]
fn plan_defaults_to_one_site_in_flight_and_pausing_at_the_first_failure() {
    let spec = plan(json!({})).spec;
    assert_eq!((spec.max_in_flight, spec.failure_threshold), (1, 1));
}

#[test]
fn plan_retention_is_a_go_duration() {
    accepted(plan(json!({ "retention": "168h" })).validate_cel());
    // "7d" is no Go duration: it cannot be read into the typed object, so the raw manifest is
    // checked, as the API server would.
    let spec = json!({ "from": "physical", "to": "frontend", "waveSize": 10, "retention": "7d" });
    rejected(
        validate_raw(&raw("MigrationPlan", spec), None),
        "spec.retention",
    );
}

#[test]
fn plan_window_follows_the_window_rules() {
    let ok = json!({ "window": { "start": "22:00", "end": "05:00" } });
    accepted(plan(ok).validate_cel());
    let bad = json!({ "window": { "start": "22:00", "end": "5" } });
    rejected(plan(bad).validate_cel(), "spec.window.end");
}

#[test]
fn rollout_release_must_be_an_image_tag() {
    accepted(rollout(json!({})).validate_cel());
    rejected(
        rollout(json!({ "release": "latest!" })).validate_cel(),
        "spec.release",
    );
}

#[test]
fn rollout_waves_hold_at_least_one_site() {
    let cohorts =
        json!({ "cohorts": [{ "name": "pilot", "selector": { "matchLabels": { "a": "b" } } }] });
    accepted(rollout(cohorts).validate_cel());
    rejected(
        rollout(json!({ "waveSize": 0 })).validate_cel(),
        "spec.waveSize",
    );
    rejected(
        rollout(json!({ "maxInFlight": -1 })).validate_cel(),
        "spec.maxInFlight",
    );
    rejected(
        rollout(json!({ "failureThreshold": 0 })).validate_cel(),
        "spec.failureThreshold",
    );
}
