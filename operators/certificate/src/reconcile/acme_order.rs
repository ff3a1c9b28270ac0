//! One resumable step of an ACME order: place it within the issuer's
//! rate-limit budget (or resume it from the status), publish and validate
//! its HTTP-01 challenges, send the CSR, download the certificate.

use std::time::{Duration, Instant};

use instant_acme::{Identifier, NewOrder};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::Api;
use mutu_api::Certificate;
use mutu_api::certificate::{AcmeOrder, CertificateStatus};
use mutu_api::issuer::AcmeIssuer;
use mutu_runtime::conditions::Desired as Cond;

use super::challenge::cleanup_challenge;
use super::context::{Ctx, Error};
use super::fleet_orders::{budget_metrics, same_names_in_flight, stored_orders};
use super::private_key::next_key;
use super::status::ISSUING;
use super::{Step, to_std};
use crate::acme::{self, AcmeError, Progress};
use crate::budget::{self, Decision};
use crate::pki;
use crate::solver;

/// The time named in a rate-limit refusal ("retry after 2026-11-28T10:00:00Z"), if any.
fn retry_after_in(detail: &str) -> Option<Timestamp> {
    let lower = detail.to_ascii_lowercase();
    let at = lower.find("retry after ")? + "retry after ".len();
    let rest = &detail[at..];
    let token: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ',' && *c != ';')
        .collect();
    token.trim_end_matches(['.', ':']).parse::<Timestamp>().ok()
}

/// One step of an ACME order: place it (within the budget) or resume it from
/// the status, publish and validate its challenges, finalize, download.
#[allow(clippy::too_many_arguments)]
pub(super) async fn acme_step(
    ctx: &Ctx,
    api: &Api<Certificate>,
    cert: &Certificate,
    issuer_name: &str,
    acme_spec: &AcmeIssuer,
    status: &mut CertificateStatus,
    names: &[String],
    secret: Option<&Secret>,
    ready: &Cond<'_>,
    now: Timestamp,
) -> Result<Step, Error> {
    let ns = cert.namespace().unwrap_or_default();
    let name = cert.name_any();
    let key = format!("{ns}/{name}");
    let account = match ctx
        .data
        .accounts
        .get(
            ctx.client(),
            &ctx.data.config.namespace,
            issuer_name,
            acme_spec,
        )
        .await
    {
        Ok(a) => a,
        Err(AcmeError::Config(message)) => {
            return Ok(Step::Wait {
                reason: "IssuerNotReady",
                message,
                after: Duration::from_secs(30),
            });
        }
        Err(e) => return Err(e.into()),
    };

    // An order for other names (the spec changed during it) is abandoned.
    if status
        .order
        .as_ref()
        .is_some_and(|o| budget::name_set(&o.dns_names) != names)
    {
        cleanup_challenge(ctx, &ns, &name, &key).await?;
        status.order = None;
    }

    let mut order = match status.order.clone() {
        Some(rec) => match account.order(rec.url.clone()).await {
            Ok(o) => o,
            Err(instant_acme::Error::Api(p)) => {
                return Ok(Step::Failed {
                    message: format!(
                        "the order {} can no longer be read: {}",
                        rec.url,
                        acme::problem_text(&p)
                    ),
                    until: None,
                });
            }
            Err(e) => return Err(AcmeError::from(e).into()),
        },
        None => {
            if let Some(other) = same_names_in_flight(ctx, issuer_name, &key, names) {
                return Ok(Step::Wait {
                    reason: "OrderInProgress",
                    message: format!(
                        "Certificate {other} has an order in progress for the same names; waiting for it"
                    ),
                    after: Duration::from_secs(5),
                });
            }
            let limits = acme_spec.rate_limits.clone().unwrap_or_default();
            let stored = stored_orders(ctx, issuer_name);
            let decision =
                ctx.data
                    .budget
                    .reserve(issuer_name, &limits, stored.clone(), &key, names, now);
            budget_metrics(ctx, issuer_name, &limits, stored, now);
            let at = match decision {
                Decision::Wait { denied, ahead } => {
                    tracing::debug!(certificate = %key, ahead, limit = denied.limit, until = %denied.until, "waiting for budget");
                    let wait = to_std(denied.until.duration_since(now)).max(Duration::from_secs(1));
                    return Ok(Step::Wait {
                        reason: "WaitingForBudget",
                        message: denied.message(),
                        after: mutu_runtime::controller::jitter(wait, 0.05)
                            + Duration::from_millis(200),
                    });
                }
                Decision::Granted { at } => at,
            };
            let identifiers: Vec<Identifier> =
                names.iter().map(|n| Identifier::Dns(n.clone())).collect();
            let mut new_order = NewOrder::new(&identifiers);
            if let Some(profile) = acme_spec.profile.as_deref() {
                new_order = new_order.profile(profile);
            }
            let placed = account.new_order(&new_order).await;
            let order = match placed {
                Ok(o) => o,
                Err(instant_acme::Error::Api(p)) => {
                    // Refused: no order exists, so it does not count.
                    ctx.data.budget.release(issuer_name, &key, at);
                    let text = acme::problem_text(&p);
                    let limited = p
                        .r#type
                        .as_deref()
                        .is_some_and(|t| t.ends_with(":rateLimited"));
                    let until = limited.then(|| {
                        retry_after_in(p.detail.as_deref().unwrap_or_default())
                            .unwrap_or(now + SignedDuration::from_hours(1))
                    });
                    return Ok(Step::Failed {
                        message: format!("the ACME server refused the order: {text}"),
                        until,
                    });
                }
                // Unknown outcome: the reservation stays counted.
                Err(e) => return Err(AcmeError::from(e).into()),
            };
            ctx.data.metrics.order_placed(issuer_name);
            status
                .recent_orders
                .retain(|t| t.0 + budget::HISTORY >= now);
            status.recent_orders.push(Time(at));
            status.order = Some(AcmeOrder {
                url: order.url().to_string(),
                dns_names: names.to_vec(),
                placed_at: Time(at),
            });
            // Durable before anything else is done with the order.
            let msg = format!("order {} placed for {}", order.url(), names.join(", "));
            ctx.write_status(
                api,
                cert,
                status.clone(),
                &[ready.clone(), Cond::new(ISSUING, true, "OrderPlaced", msg)],
            )
            .await
            .map_err(Error::Status)?;
            tracing::info!(certificate = %key, order = %order.url(), "ACME order placed");
            order
        }
    };

    match acme::progress(&mut order).await? {
        Progress::Pending {
            tokens,
            to_validate,
        } => {
            let hostnames: Vec<String> = tokens.iter().map(|t| t.hostname.clone()).collect();
            ctx.data.tokens.set(&key, tokens);
            let ingress = solver::ingress(
                &ctx.data.config.route,
                &ns,
                &name,
                &cert.uid().unwrap_or_default(),
                &hostnames,
                acme_spec.http01.ingress_class_name.as_deref(),
            );
            ctx.applier.apply(&ctx.data.ingresses, ingress).await?;
            let since = *ctx
                .data
                .presented
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(key.clone())
                .or_insert_with(Instant::now);
            let delay = ctx.data.config.propagation_delay;
            if since.elapsed() < delay {
                return Ok(Step::Wait {
                    reason: "ChallengePublished",
                    message: format!(
                        "answering the HTTP-01 challenges of {}",
                        hostnames.join(", ")
                    ),
                    after: delay - since.elapsed() + Duration::from_millis(50),
                });
            }
            if to_validate > 0 {
                acme::validate(&mut order).await?;
            }
            Ok(Step::Wait {
                reason: "Validating",
                message: format!("the ACME server is validating {}", hostnames.join(", ")),
                after: Duration::from_secs(1),
            })
        }
        Progress::Processing => Ok(Step::Wait {
            reason: "Validating",
            message: "the ACME server is processing the order".into(),
            after: Duration::from_secs(1),
        }),
        Progress::Ready => {
            let Some(key_pem) = next_key(ctx, cert, secret, true).await? else {
                return Err(Error::Crypto("the order's key could not be stored".into()));
            };
            let key_pair = pki::key_from_pem(&key_pem).map_err(Error::Crypto)?;
            let csr = pki::csr(names, &key_pair).map_err(|e| Error::Crypto(e.to_string()))?;
            order.finalize_csr(&csr).await.map_err(AcmeError::from)?;
            finish(&mut order, ctx, cert, secret).await
        }
        Progress::Valid => finish(&mut order, ctx, cert, secret).await,
        Progress::Invalid(reason) => Ok(Step::Failed {
            message: reason,
            until: None,
        }),
    }
}

/// Downloads the certificate of a finalized order, paired with the order's key.
async fn finish(
    order: &mut instant_acme::Order,
    ctx: &Ctx,
    cert: &Certificate,
    secret: Option<&Secret>,
) -> Result<Step, Error> {
    let chain = match order.certificate().await {
        Ok(Some(chain)) => chain,
        Ok(None) => {
            return Ok(Step::Wait {
                reason: "Finalizing",
                message: "the ACME server is signing the certificate".into(),
                after: Duration::from_secs(1),
            });
        }
        Err(instant_acme::Error::Api(p)) => {
            return Ok(Step::Failed {
                message: acme::problem_text(&p),
                until: None,
            });
        }
        Err(e) => return Err(AcmeError::from(e).into()),
    };
    let Some(key_pem) = next_key(ctx, cert, secret, false).await? else {
        return Ok(Step::Failed {
            message: "the private key of this order was lost; a new order will be placed".into(),
            until: Some(mutu_runtime::status::now()),
        });
    };
    Ok(Step::Issued {
        chain,
        key_pem,
        ca: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_refusals_name_when_to_retry() {
        let d = "too many certificates (5) already issued for this exact set of identifiers in the last 168h0m0s, retry after 2026-12-01T10:00:00Z: see https://letsencrypt.org/docs/rate-limits/";
        assert_eq!(
            retry_after_in(d).map(|t| t.to_string()),
            Some("2026-12-01T10:00:00Z".to_string())
        );
        assert_eq!(retry_after_in("no time here"), None);
    }
}
