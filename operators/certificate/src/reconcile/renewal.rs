//! When a certificate is renewed: inside the ACME server's suggested renewal
//! window (ARI) when it gives one, else at `renewBefore` or two thirds of the
//! lifetime, spread by a stable per-certificate jitter.

use std::time::{Duration, Instant};

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use mutu_api::{Certificate, CertificateIssuer};

use super::context::Ctx;
use crate::pki::Inspected;

/// A suggested renewal window: start and end.
pub type Window = (Timestamp, Timestamp);

/// A stable fraction in [0, 1) for `key`: where in its window a certificate renews.
fn fraction(key: &str) -> f64 {
    let hash = mutu_runtime::apply::fingerprint(&key).unwrap_or_default();
    let n = u64::from_str_radix(&hash, 16).unwrap_or(0);
    (n >> 11) as f64 / (1u64 << 53) as f64
}

/// When to renew `cert`, whose Secret holds `ins`: inside the ACME server's
/// window when it suggests one, else at `renewBefore` before expiry or at two
/// thirds of the lifetime; moved earlier by a stable per-certificate jitter
/// (up to 5 % of the lifetime, at most an hour) so that certificates issued
/// together do not renew together.
pub fn renewal_time(
    cert: &Certificate,
    ins: &Inspected,
    window: Option<(Timestamp, Timestamp)>,
    key: &str,
) -> Timestamp {
    let frac = fraction(&format!("{key}@{}", ins.not_after));
    let seconds = |t: Timestamp| Timestamp::from_second(t.as_second()).unwrap_or(t);
    if let Some((start, end)) = window
        && end > start
    {
        let span = end.duration_since(start);
        return seconds(start + span.mul_f64(frac));
    }
    let lifetime = ins.lifetime();
    let base = match cert.spec.renew_before {
        Some(rb) => {
            let rb =
                SignedDuration::try_from(std::time::Duration::from(rb)).unwrap_or(lifetime / 3);
            ins.not_after - rb.min(lifetime)
        }
        None => ins.not_before + lifetime.mul_f64(2.0 / 3.0),
    };
    let spread = lifetime.mul_f64(0.05).min(SignedDuration::from_hours(1));
    let t = base - spread.mul_f64(frac);
    seconds(t.max(ins.not_before))
}

/// A new certificate is due once its renewal time is reached.
pub(super) fn renewal_due(renewal: Timestamp, now: Timestamp) -> Option<(&'static str, String)> {
    (now >= renewal).then(|| ("Renewing", format!("renewal time {renewal} reached")))
}

/// How long the ACME server's answer about a certificate's window is kept.
const ARI_EVERY: Duration = Duration::from_secs(6 * 3600);

/// The ACME server's suggested renewal window for the certificate `ins`,
/// read at most every 6 hours per certificate (and again after each issuance).
pub(super) async fn ari_window(
    ctx: &Ctx,
    issuer: &CertificateIssuer,
    ins: &Inspected,
    key: &str,
) -> Option<(Timestamp, Timestamp)> {
    let id = ins.ari_id.clone()?;
    let cache_key = format!("{key}@{id}");
    if let Some(window) = cached_window(ctx, &cache_key) {
        return window;
    }
    let acme_spec = issuer.spec.acme.as_ref()?;
    let account = ctx
        .data
        .accounts
        .get(
            ctx.client(),
            &ctx.data.config.namespace,
            &issuer.name_any(),
            acme_spec,
        )
        .await
        .ok()?;
    let quoted = serde_json::to_string(&id).ok()?;
    let parsed: instant_acme::CertificateIdentifier<'_> = serde_json::from_str(&quoted).ok()?;
    let window = match account.renewal_info(&parsed).await {
        Ok((info, _)) => suggested_window(info.suggested_window.start, info.suggested_window.end),
        Err(e) => {
            tracing::debug!(certificate = %key, error = %e, "no ACME renewal information");
            None
        }
    };
    remember_window(ctx, key, cache_key, window);
    window
}

/// The window read after a new certificate was issued: the cached answer for
/// the certificate is dropped first.
pub(super) async fn window_after_issuance(
    ctx: &Ctx,
    issuer: &CertificateIssuer,
    ins: &Inspected,
    key: &str,
) -> Option<Window> {
    ctx.data
        .ari
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(key);
    ari_window(ctx, issuer, ins, key).await
}

/// The window last read for `cache_key`, when read less than 6 hours ago.
fn cached_window(ctx: &Ctx, cache_key: &str) -> Option<Option<Window>> {
    let map = ctx.data.ari.lock().unwrap_or_else(|e| e.into_inner());
    match map.get(cache_key) {
        Some((at, window)) if at.elapsed() < ARI_EVERY => Some(*window),
        _ => None,
    }
}

/// Keeps the window read for the certificate `key`, replacing what was kept
/// for its earlier certificates.
fn remember_window(ctx: &Ctx, key: &str, cache_key: String, window: Option<Window>) {
    let mut map = ctx.data.ari.lock().unwrap_or_else(|e| e.into_inner());
    let prefix = format!("{key}@");
    map.retain(|k, _| !k.starts_with(&prefix));
    map.insert(cache_key, (Instant::now(), window));
}

/// The ACME server's suggested window, to the second; none when either end
/// is out of range.
fn suggested_window(start: time::OffsetDateTime, end: time::OffsetDateTime) -> Option<Window> {
    let ts = |t: time::OffsetDateTime| Timestamp::from_second(t.unix_timestamp()).ok();
    match (ts(start), ts(end)) {
        (Some(s), Some(e)) => Some((s, e)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mutu_api::CertificateSpec;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn cert(yaml: &str) -> Certificate {
        let spec: CertificateSpec = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        let mut c = Certificate::new("www", spec);
        c.metadata.namespace = Some("tenant-mons".into());
        c
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

    const SPEC: &str = "dnsNames: [www.mons.be]\nsecretName: www-tls\nissuerRef: {name: dev-ca}\n";

    #[test]
    fn renewal_is_at_two_thirds_of_the_lifetime_less_a_small_stable_jitter() {
        let c = cert(SPEC);
        let ins = inspected(0, 90 * 86400);
        let r = renewal_time(&c, &ins, None, "tenant-mons/www");
        let two_thirds = t(60 * 86400);
        assert!(
            r <= two_thirds && r >= two_thirds - SignedDuration::from_hours(1),
            "{r}"
        );
        assert_eq!(r, renewal_time(&c, &ins, None, "tenant-mons/www"), "stable");
        // Many certificates issued together spread over the jitter span.
        let times: std::collections::BTreeSet<Timestamp> = (0..800)
            .map(|i| renewal_time(&c, &ins, None, &format!("ns/c{i}")))
            .collect();
        let per_minute = times
            .iter()
            .map(|t| times.range(*t..*t + SignedDuration::from_secs(60)).count())
            .max()
            .unwrap_or(0);
        assert!(
            per_minute <= 40,
            "{per_minute} of 800 renew within one minute"
        );
    }

    #[test]
    fn renew_before_and_the_acme_window_take_precedence() {
        let c = cert(&format!("{SPEC}renewBefore: 240h\n"));
        let ins = inspected(0, 90 * 86400);
        let r = renewal_time(&c, &ins, None, "k");
        assert!(
            r <= t(80 * 86400) && r >= t(80 * 86400) - SignedDuration::from_hours(1),
            "{r}"
        );
        let w = renewal_time(&c, &ins, Some((t(100), t(200))), "k");
        assert!(w >= t(100) && w < t(200), "{w}");
    }

    #[test]
    fn short_lived_certificates_renew_before_they_expire() {
        let c = cert(SPEC);
        let ins = inspected(0, 60);
        let r = renewal_time(&c, &ins, None, "k");
        assert!(r > t(0) && r <= t(40), "{r}");
    }

    #[test]
    fn a_new_certificate_is_due_once_the_renewal_time_is_reached() {
        assert_eq!(renewal_due(t(100), t(99)), None);
        let due = renewal_due(t(100), t(100));
        assert_eq!(due.map(|d| d.0), Some("Renewing"));
        assert!(renewal_due(t(100), t(101)).is_some());
    }

    #[test]
    fn the_suggested_window_is_kept_to_the_second() {
        let at = |s: i64| {
            time::OffsetDateTime::from_unix_timestamp(1_800_000_000 + s)
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let start = at(100) + time::Duration::milliseconds(700);
        assert_eq!(suggested_window(start, at(200)), Some((t(100), t(200))));
    }
}
