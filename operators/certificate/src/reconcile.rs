//! One reconcile of a Certificate: check what the Secret holds (pure), decide
//! whether to issue (missing, tampered, for other names, spec changed, renewal
//! time reached, renewal asked for by a person), then issue through the
//! internal CA, self-signed, or one resumable step of an ACME order at a time,
//! within the fleet's budget and the certificate's failure backoff.

mod acme_order;
mod backoff;
mod challenge;
mod context;
mod fleet_orders;
mod internal_ca;
mod private_key;
mod refusal;
mod renew_request;
mod renewal;
mod status;
mod tls_secret;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use mutu_api::certificate::CertificateStatus;
use mutu_api::{Certificate, CertificateIssuer};
use mutu_runtime::conditions::Desired as Cond;

use crate::budget;
use crate::pki;
use acme_order::acme_step;
use backoff::{backoff_message, next_attempt, pending_backoff};
use challenge::cleanup_challenge;
pub use context::{Caches, Config, Ctx, Error};
use internal_ca::local_step;
use private_key::delete_next_key;
use refusal::refusal;
pub use renew_request::{
    RENEW_REQUESTED_ANNOTATION, RENEWAL_REQUESTED, RenewRequest, renew_request,
};
use renewal::{ari_window, renewal_due, renewal_time, window_after_issuance};
use status::{
    backing_off, in_progress, issuer_missing, ready_condition, record_current, record_failure,
    record_issued, refused, serving, up_to_date, write,
};
pub use tls_secret::{CERTIFICATE_ANNOTATION, ISSUER_ANNOTATION, SECRET_COMPONENT};
use tls_secret::{judge, read_secret, spec_hash, write_secret};

fn to_std(d: SignedDuration) -> Duration {
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

/// How the issuance step ended.
enum Step {
    /// Still in progress: Issuing with this reason, check again after a while.
    Wait {
        reason: &'static str,
        message: String,
        after: Duration,
    },
    /// A new certificate chain (PEM), its key, and the CA certificate when known.
    Issued {
        chain: String,
        key_pem: String,
        ca: Option<String>,
    },
    /// Issuance failed; back off. `until` overrides the backoff (rate limited).
    Failed {
        message: String,
        until: Option<Timestamp>,
    },
}

/// What one reconcile works on: the Certificate, where it lives, the names it
/// asks for, and the time the reconcile started.
struct Target<'a> {
    ctx: &'a Ctx,
    cert: &'a Certificate,
    api: Api<Certificate>,
    ns: String,
    name: String,
    /// `namespace/name`: the certificate's key in the budget, the challenge
    /// tokens and the per-certificate caches.
    key: String,
    issuer_name: String,
    /// The spec's names, sorted and without duplicates.
    names: Vec<String>,
    now: Timestamp,
    /// The value of a renewal request not honoured yet (see [`renew_request`]).
    renew: Option<String>,
    /// A renewal request waited and its annotation is gone.
    renew_withdrawn: bool,
}

impl<'a> Target<'a> {
    fn new(ctx: &'a Ctx, cert: &'a Certificate) -> Self {
        let ns = cert.namespace().unwrap_or_default();
        let name = cert.name_any();
        let request = renew_request(
            cert.annotations(),
            cert.status.as_ref().map_or(&[], |s| &s.conditions),
        );
        Target {
            ctx,
            cert,
            api: Api::namespaced(ctx.client().clone(), &ns),
            key: format!("{ns}/{name}"),
            ns,
            name,
            issuer_name: cert.spec.issuer_ref.name.clone(),
            names: budget::name_set(&cert.spec.dns_names),
            now: mutu_runtime::status::now(),
            renew: match &request {
                RenewRequest::Pending(value) => Some(value.clone()),
                _ => None,
            },
            renew_withdrawn: request == RenewRequest::Withdrawn,
        }
    }

    fn secret_name(&self) -> &str {
        &self.cert.spec.secret_name
    }

    /// Writes the status with `conds`, and with the condition of a pending (or
    /// withdrawn) renewal request unless `conds` records it.
    async fn write(&self, status: CertificateStatus, conds: &[Cond<'_>]) -> Result<bool, Error> {
        let mut all = conds.to_vec();
        if !all.iter().any(|c| c.type_ == RENEWAL_REQUESTED) {
            if let Some(value) = &self.renew {
                all.push(renew_request::pending(value));
            } else if self.renew_withdrawn {
                all.push(renew_request::withdrawn());
            }
        }
        write(self.ctx, &self.api, self.cert, status, &all).await
    }
}

/// What the Secret holds, judged against the spec, and whether a new
/// certificate is due (and why).
struct Assessment {
    secret: Option<Secret>,
    due: Option<(&'static str, String)>,
    /// The `Ready` condition that what the Secret holds gives.
    ready: Cond<'static>,
}

/// The pipeline: issuer found and certificate allowed, then what the Secret
/// holds and whether a new certificate is due, the failure backoff, and one
/// issuance step, each stage writing the status it ends with.
pub async fn reconcile(cert: Arc<Certificate>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if !ctx.data.ready().await {
        return Ok(mutu_runtime::controller::not_listed_yet());
    }
    let t = Target::new(&ctx, &cert);
    let mut status = cert.status.clone().unwrap_or_default();
    status.observed_generation = cert.meta().generation;
    status.conditions = Vec::new();

    let Some(issuer) = find_issuer(&ctx, &t.issuer_name) else {
        return no_issuer(&t, status).await;
    };
    if let Some((reason, msg)) = refusal(&cert, &issuer, &ctx.data.tenants) {
        return refuse(&t, status, reason, msg).await;
    }
    let seen = assess(&t, &issuer, &mut status).await?;
    let Some(due) = seen.due.clone() else {
        return keep(&t, status, seen.ready).await;
    };
    let config = &ctx.data.config;
    if let Some((retry_at, msg)) =
        pending_backoff(&status, config.retry_base, config.retry_cap, t.now)
    {
        t.write(status, &[seen.ready, backing_off(msg)]).await?;
        return Ok(Action::requeue(wait_until(retry_at, t.now)));
    }
    issue(&t, &issuer, status, seen, due).await
}

/// The issuer named by the spec, when it exists and can be read.
fn find_issuer(ctx: &Ctx, name: &str) -> Option<CertificateIssuer> {
    ctx.data
        .issuers
        .get(&ObjectRef::new(name))
        .and_then(|i| i.0.as_ref().ok().cloned())
}

/// Without its issuer nothing can be issued; what the Secret holds still serves.
async fn no_issuer(t: &Target<'_>, status: CertificateStatus) -> Result<Action, Error> {
    let secret = read_secret(t.ctx, &t.ns, t.secret_name()).await?;
    let current = judge(secret.as_ref(), &t.names, &spec_hash(t.cert), t.now);
    let conds = issuer_missing(current.serving, t.secret_name(), &t.issuer_name);
    t.write(status, &conds).await?;
    Ok(Action::await_change())
}

/// A refused certificate: nothing is ever ordered for it, and an order in
/// progress is abandoned.
async fn refuse(
    t: &Target<'_>,
    mut status: CertificateStatus,
    reason: &'static str,
    msg: String,
) -> Result<Action, Error> {
    t.ctx.data.budget.not_waiting(&t.issuer_name, &t.key);
    cleanup_challenge(t.ctx, &t.ns, &t.name, &t.key).await?;
    if let Some(order) = status.order.take() {
        tracing::info!(certificate = %t.key, order = %order.url, "order abandoned: the certificate is refused");
    }
    if t.write(status, &refused(reason, msg.clone())).await? {
        t.ctx.event(t.cert, true, reason, msg).await;
    }
    Ok(Action::await_change())
}

/// Reads and judges the Secret, records its certificate's dates and renewal
/// time in `status`, and decides whether a new certificate is due.
async fn assess(
    t: &Target<'_>,
    issuer: &CertificateIssuer,
    status: &mut CertificateStatus,
) -> Result<Assessment, Error> {
    let secret = read_secret(t.ctx, &t.ns, t.secret_name()).await?;
    let current = judge(secret.as_ref(), &t.names, &spec_hash(t.cert), t.now);
    let metrics = &t.ctx.data.metrics;
    let failures = status.failed_attempts.unwrap_or(0);
    metrics.failed_attempts(&t.ns, &t.name, &t.issuer_name, failures);
    record_current(status, current.inspected.as_ref());
    if let (true, Some(ins)) = (current.serving, &current.inspected) {
        metrics.expiry(&t.ns, &t.name, &t.issuer_name, ins.not_after.as_second());
    }
    let mut due = current.reissue.clone();
    if let (Some(ins), None) = (&current.inspected, &due) {
        let window = if issuer.spec.acme.is_some() {
            ari_window(t.ctx, issuer, ins, &t.key).await
        } else {
            None
        };
        let renewal = renewal_time(t.cert, ins, window, &t.key);
        status.renewal_time = Some(Time(renewal));
        due = renewal_due(renewal, t.now);
    }
    if let (None, Some(value)) = (&due, &t.renew) {
        due = Some(renew_request::due(value));
    }
    let ready = ready_condition(&current, due.as_ref(), t.secret_name(), &t.names);
    Ok(Assessment { secret, due, ready })
}

/// Up to date: nothing pending; check again at the renewal time.
async fn keep(
    t: &Target<'_>,
    mut status: CertificateStatus,
    ready: Cond<'static>,
) -> Result<Action, Error> {
    t.ctx.data.budget.not_waiting(&t.issuer_name, &t.key);
    cleanup_challenge(t.ctx, &t.ns, &t.name, &t.key).await?;
    status.order = None;
    status.failed_attempts = None;
    let renewal = status.renewal_time.as_ref().map(|r| r.0).unwrap_or(t.now);
    t.write(status, &[ready, up_to_date(renewal)]).await?;
    let until = wait_until(renewal, t.now);
    Ok(Action::requeue(until.min(t.ctx.settings.requeue)))
}

/// One issuance step through the issuer, and what its outcome writes.
async fn issue(
    t: &Target<'_>,
    issuer: &CertificateIssuer,
    mut status: CertificateStatus,
    seen: Assessment,
    due: (&'static str, String),
) -> Result<Action, Error> {
    tracing::debug!(certificate = %t.key, reason = due.0, message = %due.1, "issuing");
    let secret = seen.secret.as_ref();
    let step = if let Some(acme_spec) = issuer.spec.acme.clone() {
        acme_step(t, &acme_spec, &mut status, secret, &seen.ready).await?
    } else {
        local_step(t.ctx, t.cert, issuer, &t.names, secret, t.now).await?
    };
    match step {
        Step::Wait {
            reason,
            message,
            after,
        } => {
            t.write(status, &[seen.ready, in_progress(reason, message)])
                .await?;
            Ok(Action::requeue(after))
        }
        Step::Issued { chain, key_pem, ca } => {
            let issued = Issued { chain, key_pem, ca };
            store_issued(t, issuer, status, issued, due).await
        }
        Step::Failed { message, until } => {
            record_failed(t, issuer, status, seen.ready, message, until).await
        }
    }
}

/// A new certificate chain (PEM), its key, and the CA certificate when known.
struct Issued {
    chain: String,
    key_pem: String,
    ca: Option<String>,
}

/// Writes a new certificate to the Secret, drops what its order left behind,
/// and records it with its renewal time.
async fn store_issued(
    t: &Target<'_>,
    issuer: &CertificateIssuer,
    mut status: CertificateStatus,
    new: Issued,
    (due_reason, due_msg): (&'static str, String),
) -> Result<Action, Error> {
    let ins = pki::pem_certs(&new.chain)
        .and_then(|c| pki::inspect(&c[0]))
        .map_err(Error::Crypto)?;
    let hash = spec_hash(t.cert);
    let (chain, key_pem, ca) = (&new.chain, &new.key_pem, new.ca.as_deref());
    write_secret(t.ctx, t.cert, &t.issuer_name, &hash, chain, key_pem, ca).await?;
    delete_next_key(t.ctx, &t.ns, t.secret_name()).await?;
    cleanup_challenge(t.ctx, &t.ns, &t.name, &t.key).await?;
    let metrics = &t.ctx.data.metrics;
    metrics.issued(&t.issuer_name, issuer_type(issuer), "issued");
    metrics.expiry(&t.ns, &t.name, &t.issuer_name, ins.not_after.as_second());
    metrics.failed_attempts(&t.ns, &t.name, &t.issuer_name, 0);
    let window = if issuer.spec.acme.is_some() {
        window_after_issuance(t.ctx, issuer, &ins, &t.key).await
    } else {
        None
    };
    let renewal = renewal_time(t.cert, &ins, window, &t.key);
    record_issued(&mut status, &ins, renewal);
    let ready = serving(t.secret_name(), &t.names, ins.not_after);
    let mut conds = vec![ready, up_to_date(renewal)];
    if let Some(value) = &t.renew {
        conds.push(renew_request::done(value, ins.not_before, ins.not_after));
    }
    t.write(status, &conds).await?;
    let msg = issued_message(&t.issuer_name, &t.names, ins.not_after);
    let msg = format!("{msg} ({due_reason}: {due_msg})");
    t.ctx.event(t.cert, false, "Issued", msg).await;
    let until = wait_until(renewal, t.now);
    Ok(Action::requeue(until.min(t.ctx.settings.requeue)))
}

/// A failed issuance: its order is dropped and the next attempt backs off
/// (or waits for the time the ACME server named).
async fn record_failed(
    t: &Target<'_>,
    issuer: &CertificateIssuer,
    mut status: CertificateStatus,
    ready: Cond<'static>,
    message: String,
    until: Option<Timestamp>,
) -> Result<Action, Error> {
    cleanup_challenge(t.ctx, &t.ns, &t.name, &t.key).await?;
    let metrics = &t.ctx.data.metrics;
    metrics.issued(&t.issuer_name, issuer_type(issuer), "failed");
    let n = record_failure(&mut status, &message, t.now);
    metrics.failed_attempts(&t.ns, &t.name, &t.issuer_name, n);
    let config = &t.ctx.data.config;
    let retry_at =
        until.unwrap_or_else(|| next_attempt(t.now, config.retry_base, config.retry_cap, n));
    let msg = backoff_message(n, &message, retry_at);
    t.write(status, &[ready, backing_off(msg.clone())]).await?;
    t.ctx.event(t.cert, true, "IssuanceFailed", msg).await;
    Ok(Action::requeue(wait_until(retry_at, t.now)))
}

/// The kind of issuer, as the issuance metrics label it.
fn issuer_type(issuer: &CertificateIssuer) -> &'static str {
    if issuer.spec.acme.is_some() {
        "ACME"
    } else if issuer.spec.ca.is_some() {
        "CA"
    } else {
        "SelfSigned"
    }
}

/// The message of an issuance, for its event.
fn issued_message(issuer: &str, names: &[String], not_after: Timestamp) -> String {
    format!(
        "issued by {issuer} for {}, valid until {not_after}",
        names.join(", ")
    )
}

/// Time from `now` until `at`, at least a second.
fn wait_until(at: Timestamp, now: Timestamp) -> Duration {
    to_std(at.duration_since(now)).max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requeues_wait_at_least_a_second() {
        let now = Timestamp::from_second(1_800_000_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let later = now + SignedDuration::from_secs(90);
        assert_eq!(wait_until(later, now), Duration::from_secs(90));
        assert_eq!(wait_until(now, later), Duration::from_secs(1), "past");
    }
}
