//! Waiting after failed issuances: the delay doubles with each failure in a
//! row, up to a cap.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use mutu_api::certificate::CertificateStatus;

/// Backoff after `failures` failed issuances in a row: base doubling to the cap.
pub fn retry_delay(base: Duration, cap: Duration, failures: i32) -> Duration {
    let n = failures.clamp(1, 30) as u32 - 1;
    base.saturating_mul(2u32.saturating_pow(n)).min(cap)
}

/// When the next attempt may start, after `failures` in a row, the last at `last`.
pub(super) fn next_attempt(
    last: Timestamp,
    base: Duration,
    cap: Duration,
    failures: i32,
) -> Timestamp {
    last + SignedDuration::try_from(retry_delay(base, cap, failures)).unwrap_or_default()
}

/// What the `Issuing` condition says while backing off.
pub(super) fn backoff_message(failures: i32, last_message: &str, retry_at: Timestamp) -> String {
    format!("{failures} failed attempt(s), the last: {last_message}; next attempt at {retry_at}")
}

/// When a certificate whose last attempts failed may try again, if that is
/// still ahead of `now`, with the message to show meanwhile. An order in
/// progress is always followed.
pub(super) fn pending_backoff(
    status: &CertificateStatus,
    base: Duration,
    cap: Duration,
    now: Timestamp,
) -> Option<(Timestamp, String)> {
    if status.order.is_some() {
        return None;
    }
    let (Some(n), Some(last)) = (status.failed_attempts, status.last_failure_time.as_ref()) else {
        return None;
    };
    if n <= 0 {
        return None;
    }
    let retry_at = next_attempt(last.0, base, cap, n);
    let last_message = status.last_failure_message.clone().unwrap_or_default();
    (now < retry_at).then(|| (retry_at, backoff_message(n, &last_message, retry_at)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_backoff_doubles_from_the_base_to_the_cap() {
        let base = Duration::from_secs(3600);
        let cap = Duration::from_secs(24 * 3600);
        let got: Vec<u64> = (1..=7)
            .map(|n| retry_delay(base, cap, n).as_secs() / 3600)
            .collect();
        assert_eq!(got, vec![1, 2, 4, 8, 16, 24, 24]);
    }

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn attempts_wait_for_the_backoff_after_the_last_failure() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        use mutu_api::certificate::AcmeOrder;
        let base = Duration::from_secs(60);
        let cap = Duration::from_secs(3600);
        let mut status = CertificateStatus {
            failed_attempts: Some(2),
            last_failure_time: Some(Time(t(0))),
            last_failure_message: Some("refused".into()),
            ..Default::default()
        };
        let (at, msg) = pending_backoff(&status, base, cap, t(100)).unwrap_or_else(|| panic!());
        assert_eq!(at, t(120), "two failures: twice the base");
        assert_eq!(
            msg,
            format!("2 failed attempt(s), the last: refused; next attempt at {at}")
        );
        assert_eq!(
            pending_backoff(&status, base, cap, t(120)),
            None,
            "time is up"
        );

        status.order = Some(AcmeOrder {
            url: "https://acme/order/1".into(),
            dns_names: Vec::new(),
            placed_at: Time(t(0)),
        });
        assert_eq!(
            pending_backoff(&status, base, cap, t(100)),
            None,
            "an order is followed"
        );
        status.order = None;
        status.failed_attempts = Some(0);
        assert_eq!(
            pending_backoff(&status, base, cap, t(100)),
            None,
            "no failures"
        );
    }
}
