//! The Certificate's status: its conditions (`Ready`, `Issuing`), the fields
//! recorded from the Secret and from each issuance, and writing it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use mutu_api::Certificate;
use mutu_api::certificate::CertificateStatus;
use mutu_runtime::conditions::Desired as Cond;

use super::context::{Ctx, Error};
use super::tls_secret::Current;
use crate::pki::Inspected;

/// Condition types.
pub const READY: &str = "Ready";
pub const ISSUING: &str = "Issuing";

/// `Ready`: the Secret serves a valid certificate for the names.
pub(super) fn serving(secret: &str, names: &[String], not_after: Timestamp) -> Cond<'static> {
    Cond::new(
        READY,
        true,
        "Issued",
        format!(
            "the Secret {secret} holds a valid certificate for {} until {not_after}",
            names.join(", ")
        ),
    )
}

/// `Issuing`: nothing to do until the renewal time.
pub(super) fn up_to_date(renewal: Timestamp) -> Cond<'static> {
    Cond::new(
        ISSUING,
        false,
        "UpToDate",
        format!("next renewal at {renewal}"),
    )
}

/// `Ready` from what the Secret holds: true while it serves the names, else
/// why not (the reason a new certificate is due).
pub(super) fn ready_condition(
    current: &Current,
    due: Option<&(&'static str, String)>,
    secret_name: &str,
    names: &[String],
) -> Cond<'static> {
    if let (true, Some(ins)) = (current.serving, &current.inspected) {
        serving(secret_name, names, ins.not_after)
    } else {
        let (reason, msg) = due.cloned().unwrap_or(("Missing", String::new()));
        Cond::new(READY, false, reason, format!("Secret {secret_name}: {msg}"))
    }
}

/// `Ready` and `Issuing` when the issuer does not exist: still ready while
/// the Secret serves, but nothing can be renewed.
pub(super) fn issuer_missing(serving: bool, secret_name: &str, issuer: &str) -> [Cond<'static>; 2] {
    let msg = format!(
        "CertificateIssuer {issuer} does not exist; create it, or set spec.issuerRef.name to an existing one (kubectl get certificateissuers)"
    );
    let ready = if serving {
        Cond::new(
            READY,
            true,
            "Issued",
            format!(
                "the Secret {secret_name} holds a valid certificate; it cannot be renewed: {msg}"
            ),
        )
    } else {
        Cond::new(READY, false, "IssuerNotFound", msg.clone())
    };
    [ready, Cond::new(ISSUING, false, "IssuerNotFound", msg)]
}

/// `Ready` and `Issuing` of a refused certificate.
pub(super) fn refused(reason: &'static str, msg: String) -> [Cond<'static>; 2] {
    [
        Cond::new(READY, false, reason, msg.clone()),
        Cond::new(ISSUING, false, reason, msg),
    ]
}

/// `Issuing` while a step is in progress; false when the issuer cannot issue
/// at all.
pub(super) fn in_progress(reason: &'static str, message: String) -> Cond<'static> {
    Cond::new(ISSUING, reason != "IssuerNotReady", reason, message)
}

/// `Issuing` while waiting after failed attempts.
pub(super) fn backing_off(message: String) -> Cond<'static> {
    Cond::new(ISSUING, false, "Backoff", message)
}

/// Records the dates of the certificate the Secret holds; without one, no
/// dates and no renewal time.
pub(super) fn record_current(status: &mut CertificateStatus, inspected: Option<&Inspected>) {
    if let Some(ins) = inspected {
        status.not_before = Some(Time(ins.not_before));
        status.not_after = Some(Time(ins.not_after));
    } else {
        status.not_before = None;
        status.not_after = None;
        status.renewal_time = None;
    }
}

/// Records a new certificate: no order in progress, no failures, its dates
/// and its renewal time.
pub(super) fn record_issued(status: &mut CertificateStatus, ins: &Inspected, renewal: Timestamp) {
    status.order = None;
    status.failed_attempts = None;
    status.not_before = Some(Time(ins.not_before));
    status.not_after = Some(Time(ins.not_after));
    status.renewal_time = Some(Time(renewal));
}

/// Records a failed issuance: its order is dropped; returns the failures in
/// a row, this one included.
pub(super) fn record_failure(status: &mut CertificateStatus, message: &str, now: Timestamp) -> i32 {
    status.order = None;
    let n = status.failed_attempts.unwrap_or(0).saturating_add(1);
    status.failed_attempts = Some(n);
    status.last_failure_time = Some(Time(now));
    status.last_failure_message = Some(message.to_string());
    n
}

/// Writes the status with the conditions; true when something changed.
pub(super) async fn write(
    ctx: &Ctx,
    api: &Api<Certificate>,
    cert: &Certificate,
    status: CertificateStatus,
    conds: &[Cond<'_>],
) -> Result<bool, Error> {
    ctx.write_status(api, cert, status, conds)
        .await
        .map_err(Error::Status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mutu_api::certificate::AcmeOrder;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn inspected(from: i64, to: i64) -> Inspected {
        Inspected {
            not_before: t(from),
            not_after: t(to),
            names: Default::default(),
            spki: Vec::new(),
            ari_id: None,
            is_ca: false,
        }
    }

    fn names() -> Vec<String> {
        vec!["www.mons.be".to_string()]
    }

    #[test]
    fn ready_follows_what_the_secret_serves() {
        let serving_now = Current {
            inspected: Some(inspected(0, 100)),
            serving: true,
            reissue: None,
        };
        let due = ("Renewing", "renewal time reached".to_string());
        let c = ready_condition(&serving_now, Some(&due), "www-tls", &names());
        assert!(c.status && c.reason == "Issued", "{c:?}");

        let missing = Current {
            inspected: None,
            serving: false,
            reissue: Some(("Missing", "the Secret does not exist".into())),
        };
        let c = ready_condition(&missing, missing.reissue.as_ref(), "www-tls", &names());
        assert!(!c.status && c.reason == "Missing", "{c:?}");
        assert_eq!(c.message, "Secret www-tls: the Secret does not exist");
        let c = ready_condition(&missing, None, "www-tls", &names());
        assert_eq!(
            (c.reason, c.message.as_str()),
            ("Missing", "Secret www-tls: ")
        );
    }

    #[test]
    fn a_missing_issuer_keeps_a_serving_secret_ready() {
        let [ready, issuing] = issuer_missing(true, "www-tls", "letsencrypt");
        assert!(ready.status && ready.reason == "Issued", "{ready:?}");
        assert!(ready.message.contains("cannot be renewed"));
        assert!(!issuing.status && issuing.reason == "IssuerNotFound");
        let [ready, _] = issuer_missing(false, "www-tls", "letsencrypt");
        assert!(!ready.status && ready.reason == "IssuerNotFound");
        assert!(
            ready
                .message
                .starts_with("CertificateIssuer letsencrypt does not exist")
        );
    }

    #[test]
    fn an_issuer_that_cannot_issue_is_not_in_progress() {
        assert!(in_progress("Validating", String::new()).status);
        assert!(!in_progress("IssuerNotReady", String::new()).status);
        assert!(!backing_off(String::new()).status);
        let [ready, issuing] = refused("ForeignDomain", "no".into());
        assert!(!ready.status && !issuing.status);
        assert_eq!((ready.type_, issuing.type_), (READY, ISSUING));
    }

    #[test]
    fn the_status_records_dates_issuances_and_failures() {
        let mut status = CertificateStatus {
            renewal_time: Some(Time(t(50))),
            ..Default::default()
        };
        record_current(&mut status, Some(&inspected(0, 100)));
        assert_eq!(status.not_after, Some(Time(t(100))));
        assert_eq!(
            status.renewal_time,
            Some(Time(t(50))),
            "kept until recomputed"
        );
        record_current(&mut status, None);
        assert_eq!(
            (&status.not_before, &status.not_after, &status.renewal_time),
            (&None, &None, &None)
        );

        status.order = Some(AcmeOrder {
            url: "https://acme/order/1".into(),
            dns_names: names(),
            placed_at: Time(t(0)),
        });
        assert_eq!(record_failure(&mut status, "refused", t(10)), 1);
        assert_eq!(record_failure(&mut status, "refused again", t(20)), 2);
        assert_eq!(status.order, None);
        assert_eq!(status.last_failure_time, Some(Time(t(20))));
        assert_eq!(
            status.last_failure_message.as_deref(),
            Some("refused again")
        );

        record_issued(&mut status, &inspected(30, 130), t(90));
        assert_eq!(status.failed_attempts, None);
        assert_eq!(status.not_before, Some(Time(t(30))));
        assert_eq!(status.renewal_time, Some(Time(t(90))));
    }
}
