//! One reconcile of a Certificate: check what the Secret holds (pure), decide
//! whether to issue (missing, tampered, for other names, spec changed, renewal
//! time reached), then issue through the internal CA, self-signed, or one
//! resumable step of an ACME order at a time, within the fleet's budget and
//! the certificate's failure backoff.

mod acme_order;
mod backoff;
mod challenge;
mod context;
mod fleet_orders;
mod internal_ca;
mod private_key;
mod refusal;
mod renewal;
mod status;
mod tls_secret;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use mutu_api::Certificate;
use mutu_runtime::conditions::Desired as Cond;

use crate::budget;
use crate::pki;
use acme_order::acme_step;
use backoff::retry_delay;
use challenge::cleanup_challenge;
pub use context::{Config, Ctx, Data, Error};
use internal_ca::local_step;
use private_key::delete_next_key;
use refusal::refusal;
use renewal::{ari_window, renewal_time};
use status::{ISSUING, READY, serving, up_to_date, write};
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

pub async fn reconcile(cert: Arc<Certificate>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if !ctx.data.ready().await {
        return Ok(mutu_runtime::controller::not_listed_yet());
    }
    let ns = cert.namespace().unwrap_or_default();
    let name = cert.name_any();
    let key = format!("{ns}/{name}");
    let api: Api<Certificate> = Api::namespaced(ctx.client().clone(), &ns);
    let now = mutu_runtime::status::now();
    let names = budget::name_set(&cert.spec.dns_names);
    let mut status = cert.status.clone().unwrap_or_default();
    status.observed_generation = cert.meta().generation;
    status.conditions = Vec::new();
    let issuer_name = cert.spec.issuer_ref.name.clone();

    // The issuer, without which nothing can be issued (what the Secret holds
    // still serves).
    let issuer = ctx
        .data
        .issuers
        .get(&ObjectRef::new(&issuer_name))
        .and_then(|i| i.0.as_ref().ok().cloned());
    let Some(issuer) = issuer else {
        let msg = format!(
            "CertificateIssuer {issuer_name} does not exist; create it, or set spec.issuerRef.name to an existing one (kubectl get certificateissuers)"
        );
        let secret = read_secret(&ctx, &ns, &cert.spec.secret_name).await?;
        let current = judge(secret.as_ref(), &names, &spec_hash(&cert), now);
        let ready = if current.serving {
            Cond::new(
                READY,
                true,
                "Issued",
                format!(
                    "the Secret {} holds a valid certificate; it cannot be renewed: {msg}",
                    cert.spec.secret_name
                ),
            )
        } else {
            Cond::new(READY, false, "IssuerNotFound", msg.clone())
        };
        write(
            &ctx,
            &api,
            &cert,
            status,
            &[ready, Cond::new(ISSUING, false, "IssuerNotFound", msg)],
        )
        .await?;
        return Ok(Action::await_change());
    };

    // Refusals: nothing is ever ordered for them.
    if let Some((reason, msg)) = refusal(&cert, &issuer, &ctx.data.tenants) {
        ctx.data.budget.not_waiting(&issuer_name, &key);
        cleanup_challenge(&ctx, &ns, &name, &key).await?;
        if let Some(order) = status.order.take() {
            tracing::info!(certificate = %key, order = %order.url, "order abandoned: the certificate is refused");
        }
        if write(
            &ctx,
            &api,
            &cert,
            status,
            &[
                Cond::new(READY, false, reason, msg.clone()),
                Cond::new(ISSUING, false, reason, msg.clone()),
            ],
        )
        .await?
        {
            ctx.event(&*cert, true, reason, msg).await;
        }
        return Ok(Action::await_change());
    }

    // What the Secret holds.
    let secret_name = cert.spec.secret_name.clone();
    let secret = read_secret(&ctx, &ns, &secret_name).await?;
    let hash = spec_hash(&cert);
    let current = judge(secret.as_ref(), &names, &hash, now);
    ctx.data.metrics.failed_attempts(
        &ns,
        &name,
        &issuer_name,
        status.failed_attempts.unwrap_or(0),
    );
    if let Some(ins) = &current.inspected {
        status.not_before = Some(Time(ins.not_before));
        status.not_after = Some(Time(ins.not_after));
        if current.serving {
            ctx.data
                .metrics
                .expiry(&ns, &name, &issuer_name, ins.not_after.as_second());
        }
    } else {
        status.not_before = None;
        status.not_after = None;
        status.renewal_time = None;
    }
    let mut due: Option<(&'static str, String)> = current.reissue.clone();
    if let (Some(ins), None) = (&current.inspected, &due) {
        let window = if issuer.spec.acme.is_some() {
            ari_window(&ctx, &issuer, ins, &key).await
        } else {
            None
        };
        let renewal = renewal_time(&cert, ins, window, &key);
        status.renewal_time = Some(Time(renewal));
        if now >= renewal {
            due = Some(("Renewing", format!("renewal time {renewal} reached")));
        }
    }
    let ready = if let (true, Some(ins)) = (current.serving, &current.inspected) {
        serving(&secret_name, &names, ins.not_after)
    } else {
        let (reason, msg) = due.clone().unwrap_or(("Missing", String::new()));
        Cond::new(READY, false, reason, format!("Secret {secret_name}: {msg}"))
    };

    let Some((due_reason, due_msg)) = due else {
        // Up to date: nothing pending.
        ctx.data.budget.not_waiting(&issuer_name, &key);
        cleanup_challenge(&ctx, &ns, &name, &key).await?;
        status.order = None;
        status.failed_attempts = None;
        let renewal = status.renewal_time.as_ref().map(|t| t.0).unwrap_or(now);
        write(&ctx, &api, &cert, status, &[ready, up_to_date(renewal)]).await?;
        let until = to_std(renewal.duration_since(now)).max(Duration::from_secs(1));
        return Ok(Action::requeue(until.min(ctx.settings.requeue)));
    };

    // Failure backoff (an order in progress is always followed).
    if status.order.is_none()
        && let (Some(n), Some(last)) = (status.failed_attempts, status.last_failure_time.as_ref())
        && n > 0
    {
        let delay = retry_delay(ctx.data.config.retry_base, ctx.data.config.retry_cap, n);
        let retry_at = last.0 + SignedDuration::try_from(delay).unwrap_or_default();
        if now < retry_at {
            let msg = format!(
                "{n} failed attempt(s), the last: {}; next attempt at {retry_at}",
                status.last_failure_message.clone().unwrap_or_default()
            );
            write(
                &ctx,
                &api,
                &cert,
                status,
                &[ready, Cond::new(ISSUING, false, "Backoff", msg)],
            )
            .await?;
            return Ok(Action::requeue(
                to_std(retry_at.duration_since(now)).max(Duration::from_secs(1)),
            ));
        }
    }

    tracing::debug!(certificate = %key, reason = due_reason, message = %due_msg, "issuing");
    let step = if let Some(acme_spec) = issuer.spec.acme.clone() {
        acme_step(
            &ctx,
            &api,
            &cert,
            &issuer_name,
            &acme_spec,
            &mut status,
            &names,
            secret.as_ref(),
            &ready,
            now,
        )
        .await?
    } else {
        local_step(&ctx, &cert, &issuer, &names, secret.as_ref(), now).await?
    };
    let issuer_type = if issuer.spec.acme.is_some() {
        "ACME"
    } else if issuer.spec.ca.is_some() {
        "CA"
    } else {
        "SelfSigned"
    };

    match step {
        Step::Wait {
            reason,
            message,
            after,
        } => {
            write(
                &ctx,
                &api,
                &cert,
                status,
                // In progress, except when the issuer cannot issue at all.
                &[
                    ready,
                    Cond::new(ISSUING, reason != "IssuerNotReady", reason, message),
                ],
            )
            .await?;
            Ok(Action::requeue(after))
        }
        Step::Issued { chain, key_pem, ca } => {
            let ins = pki::pem_certs(&chain)
                .and_then(|c| pki::inspect(&c[0]))
                .map_err(Error::Crypto)?;
            write_secret(
                &ctx,
                &cert,
                &issuer_name,
                &hash,
                &chain,
                &key_pem,
                ca.as_deref(),
            )
            .await?;
            delete_next_key(&ctx, &ns, &secret_name).await?;
            cleanup_challenge(&ctx, &ns, &name, &key).await?;
            ctx.data.metrics.issued(&issuer_name, issuer_type, "issued");
            ctx.data
                .metrics
                .expiry(&ns, &name, &issuer_name, ins.not_after.as_second());
            status.order = None;
            status.failed_attempts = None;
            ctx.data
                .metrics
                .failed_attempts(&ns, &name, &issuer_name, 0);
            status.not_before = Some(Time(ins.not_before));
            status.not_after = Some(Time(ins.not_after));
            let window = if issuer.spec.acme.is_some() {
                ctx.data
                    .ari
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&key);
                ari_window(&ctx, &issuer, &ins, &key).await
            } else {
                None
            };
            let renewal = renewal_time(&cert, &ins, window, &key);
            status.renewal_time = Some(Time(renewal));
            let msg = format!(
                "issued by {issuer_name} for {}, valid until {}",
                names.join(", "),
                ins.not_after
            );
            write(
                &ctx,
                &api,
                &cert,
                status,
                &[
                    serving(&secret_name, &names, ins.not_after),
                    up_to_date(renewal),
                ],
            )
            .await?;
            ctx.event(
                &*cert,
                false,
                "Issued",
                format!("{msg} ({due_reason}: {due_msg})"),
            )
            .await;
            let until = to_std(renewal.duration_since(now)).max(Duration::from_secs(1));
            Ok(Action::requeue(until.min(ctx.settings.requeue)))
        }
        Step::Failed { message, until } => {
            cleanup_challenge(&ctx, &ns, &name, &key).await?;
            ctx.data.metrics.issued(&issuer_name, issuer_type, "failed");
            status.order = None;
            let n = status.failed_attempts.unwrap_or(0).saturating_add(1);
            status.failed_attempts = Some(n);
            ctx.data
                .metrics
                .failed_attempts(&ns, &name, &issuer_name, n);
            status.last_failure_time = Some(Time(now));
            status.last_failure_message = Some(message.clone());
            let retry_at = until.unwrap_or_else(|| {
                now + SignedDuration::try_from(retry_delay(
                    ctx.data.config.retry_base,
                    ctx.data.config.retry_cap,
                    n,
                ))
                .unwrap_or_default()
            });
            let msg =
                format!("{n} failed attempt(s), the last: {message}; next attempt at {retry_at}");
            write(
                &ctx,
                &api,
                &cert,
                status,
                &[ready, Cond::new(ISSUING, false, "Backoff", msg.clone())],
            )
            .await?;
            ctx.event(&*cert, true, "IssuanceFailed", msg).await;
            Ok(Action::requeue(
                to_std(retry_at.duration_since(now)).max(Duration::from_secs(1)),
            ))
        }
    }
}
