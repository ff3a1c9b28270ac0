//! A renewal asked for by a person (`kubectl mutu certificate renew`, as
//! cert-manager's `cmctl renew`): a new value of the annotation
//! `hosting.imio.be/renew-requested` on the Certificate (by convention the
//! time of the request) asks for one new certificate now, whatever its
//! renewal time. The reconciler issues it as any renewal (same issuer, same
//! budget and backoff), then records in the status that this value was
//! honoured: condition `RenewalRequested` False, reason `Renewed`, its message
//! naming the value. A value is honoured once; the record comes with the
//! status write that triggers the next reconcile, so a cache of Secrets that
//! lags never makes a second certificate for the same request.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use mutu_runtime::conditions::Desired as Cond;

/// Annotation on a Certificate asking for a new certificate now.
pub const RENEW_REQUESTED_ANNOTATION: &str = "hosting.imio.be/renew-requested";
/// Condition type recording the last renewal request and whether it was honoured.
pub const RENEWAL_REQUESTED: &str = "RenewalRequested";
/// Reason of [`RENEWAL_REQUESTED`] once the request was honoured.
pub const RENEWED: &str = "Renewed";
/// Reason of [`RENEWAL_REQUESTED`] while the request waits for its certificate.
pub const PENDING: &str = "Pending";

/// Where a Certificate's renewal request stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RenewRequest {
    /// No request (no annotation, or an empty one).
    None,
    /// The annotation was removed while its request waited: the pending record goes.
    Withdrawn,
    /// The request with this value waits for its new certificate.
    Pending(String),
    /// The request with this value was honoured.
    Done(String),
}

/// The start of the message of a honoured request of `value`.
fn done_prefix(value: &str) -> String {
    format!("renewal requested at {value} done:")
}

/// Where the request of a Certificate with these annotations and status
/// conditions stands.
pub fn renew_request(
    annotations: &BTreeMap<String, String>,
    conditions: &[Condition],
) -> RenewRequest {
    let Some(value) = annotations
        .get(RENEW_REQUESTED_ANNOTATION)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
    else {
        let waiting = conditions
            .iter()
            .any(|c| c.type_ == RENEWAL_REQUESTED && c.status == "True");
        return if waiting {
            RenewRequest::Withdrawn
        } else {
            RenewRequest::None
        };
    };
    let done = conditions.iter().any(|c| {
        c.type_ == RENEWAL_REQUESTED
            && c.status == "False"
            && c.reason == RENEWED
            && c.message.starts_with(&done_prefix(value))
    });
    if done {
        RenewRequest::Done(value.to_string())
    } else {
        RenewRequest::Pending(value.to_string())
    }
}

/// Why a new certificate is due for the pending request `value`.
pub(super) fn due(value: &str) -> (&'static str, String) {
    (
        "RenewalRequested",
        format!("renewal requested at {value} (annotation {RENEW_REQUESTED_ANNOTATION})"),
    )
}

/// `RenewalRequested` while the request `value` waits for its certificate.
pub(super) fn pending(value: &str) -> Cond<'static> {
    Cond::new(
        RENEWAL_REQUESTED,
        true,
        PENDING,
        format!("renewal requested at {value}: a new certificate is being issued"),
    )
}

/// `RenewalRequested` once the request waiting was withdrawn (its annotation removed).
pub(super) fn withdrawn() -> Cond<'static> {
    Cond::new(
        RENEWAL_REQUESTED,
        false,
        "Withdrawn",
        format!(
            "the renewal request was withdrawn (annotation {RENEW_REQUESTED_ANNOTATION} removed)"
        ),
    )
}

/// `RenewalRequested` once the request `value` got the certificate valid
/// from `not_before` until `not_after`.
pub(super) fn done(value: &str, not_before: Timestamp, not_after: Timestamp) -> Cond<'static> {
    Cond::new(
        RENEWAL_REQUESTED,
        false,
        RENEWED,
        format!(
            "{} a new certificate, valid from {not_before} until {not_after}",
            done_prefix(value)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn annotated(value: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(RENEW_REQUESTED_ANNOTATION.to_string(), value.to_string())])
    }

    /// The condition as the status writer stores it.
    fn stored(c: &Cond<'_>) -> Condition {
        Condition {
            type_: c.type_.to_string(),
            status: if c.status { "True" } else { "False" }.to_string(),
            reason: c.reason.to_string(),
            message: c.message.clone(),
            observed_generation: None,
            last_transition_time: Time(t(0)),
        }
    }

    #[test]
    fn a_request_is_pending_until_its_value_is_recorded_as_renewed() {
        let none = BTreeMap::new();
        assert_eq!(renew_request(&none, &[]), RenewRequest::None);
        assert_eq!(renew_request(&annotated("  "), &[]), RenewRequest::None);

        let first = "2026-12-07T10:00:00Z";
        assert_eq!(
            renew_request(&annotated(first), &[]),
            RenewRequest::Pending(first.into())
        );
        // Pending is written while the certificate is issued: still pending.
        let waiting = [stored(&pending(first))];
        assert_eq!(
            renew_request(&annotated(first), &waiting),
            RenewRequest::Pending(first.into())
        );
        // Once the new certificate is stored, the same value is never honoured again.
        let renewed = [stored(&done(first, t(10), t(100)))];
        assert_eq!(
            renew_request(&annotated(first), &renewed),
            RenewRequest::Done(first.into())
        );
        // A new request (a new value) asks again, also one that starts like the old one.
        let second = "2026-12-07T10:00:00.5Z";
        assert_eq!(
            renew_request(&annotated(second), &renewed),
            RenewRequest::Pending(second.into())
        );
        let longer = format!("{first} again");
        assert_eq!(
            renew_request(&annotated(&longer), &renewed),
            RenewRequest::Pending(longer.clone())
        );
        // The annotation removed while waiting: the record of the wait goes.
        assert_eq!(renew_request(&none, &waiting), RenewRequest::Withdrawn);
        assert_eq!(renew_request(&none, &renewed), RenewRequest::None);
        assert_eq!(
            renew_request(&none, &[stored(&withdrawn())]),
            RenewRequest::None
        );
        // Only the operator's own record counts.
        let mut forged = stored(&done(first, t(10), t(100)));
        forged.reason = "Other".into();
        assert_eq!(
            renew_request(&annotated(first), &[forged]),
            RenewRequest::Pending(first.into())
        );
    }

    #[test]
    fn the_conditions_say_what_was_asked_and_what_was_issued() {
        let p = pending("v1");
        assert!(p.status && p.reason == PENDING && p.message.contains("v1"));
        let d = done("v1", t(10), t(100));
        assert!(!d.status && d.reason == RENEWED);
        assert!(d.message.contains(&t(100).to_string()), "{}", d.message);
        let (reason, msg) = due("v1");
        assert_eq!(reason, "RenewalRequested");
        assert!(msg.contains(RENEW_REQUESTED_ANNOTATION) && msg.contains("v1"));
    }
}
