//! Standard status conditions: `lastTransitionTime` only moves when the status
//! flips, and nothing changes when the content is the same, so a reconcile that
//! finds nothing new writes nothing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// One condition as a controller wants it to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired<'a> {
    pub type_: &'a str,
    pub status: bool,
    pub reason: &'a str,
    pub message: String,
}

impl<'a> Desired<'a> {
    pub fn new(type_: &'a str, status: bool, reason: &'a str, message: impl Into<String>) -> Self {
        Self {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }
}

fn status_str(status: bool) -> &'static str {
    if status { "True" } else { "False" }
}

/// Builds the condition list from `desired`, keeping each condition's
/// `lastTransitionTime` from `current` when its status did not change.
/// Conditions of other types in `current` are kept as they are.
pub fn merge(
    current: &[Condition],
    desired: &[Desired<'_>],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let mut out: Vec<Condition> = current
        .iter()
        .filter(|c| !desired.iter().any(|d| d.type_ == c.type_))
        .cloned()
        .collect();
    for d in desired {
        let status = status_str(d.status);
        let previous = current.iter().find(|c| c.type_ == d.type_);
        let last_transition_time = match previous {
            Some(p) if p.status == status => p.last_transition_time.clone(),
            _ => Time(now),
        };
        out.push(Condition {
            type_: d.type_.to_string(),
            status: status.to_string(),
            reason: d.reason.to_string(),
            message: d.message.clone(),
            observed_generation: generation,
            last_transition_time,
        });
    }
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

/// The condition of type `type_`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition `type_` is present with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn unchanged_content_yields_identical_conditions() {
        let desired = [Desired::new("Ready", true, "Provisioned", "all good")];
        let first = merge(&[], &desired, Some(1), t(100));
        let second = merge(&first, &desired, Some(1), t(200));
        assert_eq!(first, second, "nothing changed, so nothing may differ");
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let ready = merge(
            &[],
            &[Desired::new("Ready", true, "Provisioned", "ok")],
            Some(1),
            t(100),
        );
        let new_message = merge(
            &ready,
            &[Desired::new("Ready", true, "Provisioned", "still ok")],
            Some(2),
            t(200),
        );
        assert_eq!(new_message[0].last_transition_time, Time(t(100)));
        assert_eq!(new_message[0].message, "still ok");
        assert_eq!(new_message[0].observed_generation, Some(2));
        let flipped = merge(
            &new_message,
            &[Desired::new("Ready", false, "DomainConflict", "no")],
            Some(2),
            t(300),
        );
        assert_eq!(flipped[0].last_transition_time, Time(t(300)));
        assert_eq!(flipped[0].status, "False");
    }

    #[test]
    fn other_condition_types_are_kept() {
        let current = merge(
            &[],
            &[Desired::new("Suspended", true, "Suspended", "")],
            None,
            t(1),
        );
        let out = merge(
            &current,
            &[Desired::new("Ready", true, "Provisioned", "")],
            None,
            t(2),
        );
        assert!(is_true(&out, "Suspended"));
        assert!(is_true(&out, "Ready"));
    }
}
