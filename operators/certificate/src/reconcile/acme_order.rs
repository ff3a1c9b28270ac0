//! One resumable step of an ACME order: place it within the issuer's
//! rate-limit budget (or resume it from the status), publish and validate
//! its HTTP-01 challenges, send the CSR, download the certificate.

use std::ops::ControlFlow;
use std::time::Duration;

use instant_acme::{Account, Identifier, NewOrder, Order, Problem};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use mutu_api::certificate::{AcmeOrder, CertificateStatus};
use mutu_api::issuer::AcmeIssuer;
use mutu_runtime::conditions::Desired as Cond;

use super::challenge::{cleanup_challenge, publish_challenges};
use super::context::Error;
use super::fleet_orders::{budget_metrics, same_names_in_flight, stored_orders};
use super::private_key::next_key;
use super::status::ISSUING;
use super::{Step, Target, to_std};
use crate::acme::{self, AcmeError, Progress};
use crate::budget::{self, Decision, Denied};
use crate::pki;

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

/// What a stage gives: the next stage's input, or the step's outcome.
type Next<T> = Result<ControlFlow<Step, T>, Error>;

/// One step of an ACME order: place it (within the budget) or resume it from
/// the status, publish and validate its challenges, finalize, download.
pub(super) async fn acme_step(
    t: &Target<'_>,
    acme_spec: &AcmeIssuer,
    status: &mut CertificateStatus,
    secret: Option<&Secret>,
    ready: &Cond<'_>,
) -> Result<Step, Error> {
    let account = match account(t, acme_spec).await? {
        ControlFlow::Continue(account) => account,
        ControlFlow::Break(step) => return Ok(step),
    };
    // The server asked the account to wait (`Retry-After` of a 429 or 503): no request before.
    if let Some(until) = asked(t) {
        return Ok(Step::Wait {
            reason: "AcmeRetrying",
            message: format!("the ACME server asked to wait until {until} (Retry-After)"),
            after: to_std(until.duration_since(t.now)) + Duration::from_millis(50),
        });
    }
    // An order for other names (the spec changed during it) is abandoned.
    if order_for_other_names(status.order.as_ref(), &t.names) {
        cleanup_challenge(t.ctx, &t.ns, &t.name, &t.key).await?;
        status.order = None;
    }
    let found = match status.order.clone() {
        Some(rec) => resume_order(t, &account, &rec).await?,
        None => place_order(t, &account, acme_spec, status, ready).await?,
    };
    let mut order = match found {
        ControlFlow::Continue(order) => order,
        ControlFlow::Break(step) => return Ok(step),
    };
    advance(t, &mut order, acme_spec, secret).await
}

/// The issuer's ACME account; a configuration the account cannot be made
/// with waits for the issuer to be fixed.
async fn account(t: &Target<'_>, acme_spec: &AcmeIssuer) -> Next<Account> {
    let ctx = t.ctx;
    let namespace = &ctx.data.config.namespace;
    let got = (ctx.data.accounts)
        .get(ctx.client(), namespace, &t.issuer_name, acme_spec)
        .await;
    match got {
        Ok(a) => Ok(ControlFlow::Continue(a)),
        Err(AcmeError::Config(message)) => Ok(ControlFlow::Break(Step::Wait {
            reason: "IssuerNotReady",
            message,
            after: Duration::from_secs(30),
        })),
        Err(e) => Err(e.into()),
    }
}

/// Whether the order in progress is for other names than the spec's `names`.
fn order_for_other_names(order: Option<&AcmeOrder>, names: &[String]) -> bool {
    order.is_some_and(|o| budget::name_set(&o.dns_names) != names)
}

/// The order recorded in the status, read again from the ACME server.
async fn resume_order(t: &Target<'_>, account: &Account, rec: &AcmeOrder) -> Next<Order> {
    match account.order(rec.url.clone()).await {
        Ok(o) => Ok(ControlFlow::Continue(o)),
        // A passing refusal waits; any other, the order is lost.
        Err(instant_acme::Error::Api(p)) => Ok(ControlFlow::Break(
            passing(&p, t.now, asked(t)).unwrap_or_else(|| Step::Failed {
                message: format!(
                    "the order {} can no longer be read: {}",
                    rec.url,
                    acme::problem_text(&p)
                ),
                until: None,
            }),
        )),
        Err(e) => Err(AcmeError::from(e).into()),
    }
}

/// A new order, once no other Certificate orders the same names and the
/// budget allows it; recorded in the status before anything else is done
/// with it.
async fn place_order(
    t: &Target<'_>,
    account: &Account,
    acme_spec: &AcmeIssuer,
    status: &mut CertificateStatus,
    ready: &Cond<'_>,
) -> Next<Order> {
    if let Some(other) = same_names_in_flight(t.ctx, &t.issuer_name, &t.key, &t.names) {
        return Ok(ControlFlow::Break(Step::Wait {
            reason: "OrderInProgress",
            message: format!(
                "Certificate {other} has an order in progress for the same names; waiting for it"
            ),
            after: Duration::from_secs(5),
        }));
    }
    let at = match reserve(t, acme_spec) {
        ControlFlow::Continue(at) => at,
        ControlFlow::Break(step) => return Ok(ControlFlow::Break(step)),
    };
    let order = match send_order(t, account, acme_spec, at).await? {
        ControlFlow::Continue(order) => order,
        ControlFlow::Break(step) => return Ok(ControlFlow::Break(step)),
    };
    t.ctx.data.metrics.order_placed(&t.issuer_name);
    record_order(status, order.url(), &t.names, at, t.now);
    // Durable before anything else is done with the order.
    let msg = format!("order {} placed for {}", order.url(), t.names.join(", "));
    let placed = Cond::new(ISSUING, true, "OrderPlaced", msg);
    t.write(status.clone(), &[ready.clone(), placed]).await?;
    tracing::info!(certificate = %t.key, order = %order.url(), "ACME order placed");
    Ok(ControlFlow::Continue(order))
}

/// A place in the issuer's rate-limit budget for a new order, or the wait
/// for one.
fn reserve(t: &Target<'_>, acme_spec: &AcmeIssuer) -> ControlFlow<Step, Timestamp> {
    let limits = acme_spec.rate_limits.clone().unwrap_or_default();
    let stored = stored_orders(t.ctx, &t.issuer_name);
    let budget = &t.ctx.data.budget;
    let decision = budget.reserve(
        &t.issuer_name,
        &limits,
        stored.clone(),
        &t.key,
        &t.names,
        t.now,
    );
    budget_metrics(t.ctx, &t.issuer_name, &limits, stored, t.now);
    match decision {
        Decision::Wait { denied, ahead } => {
            tracing::debug!(certificate = %t.key, ahead, limit = denied.limit, until = %denied.until, "waiting for budget");
            ControlFlow::Break(budget_wait(&denied, t.now))
        }
        Decision::Granted { at } => ControlFlow::Continue(at),
    }
}

/// Waiting for the budget until `denied.until`, spread a little so that the
/// certificates waiting do not all ask again at once.
fn budget_wait(denied: &Denied, now: Timestamp) -> Step {
    let wait = to_std(denied.until.duration_since(now)).max(Duration::from_secs(1));
    Step::Wait {
        reason: "WaitingForBudget",
        message: denied.message(),
        after: mutu_runtime::controller::jitter(wait, 0.05) + Duration::from_millis(200),
    }
}

/// Asks the ACME server for a new order for the names, with the budget's
/// place `at`. A refused order gives its place back; an unknown outcome
/// keeps it counted.
async fn send_order(
    t: &Target<'_>,
    account: &Account,
    acme_spec: &AcmeIssuer,
    at: Timestamp,
) -> Next<Order> {
    let identifiers: Vec<Identifier> = t.names.iter().map(|n| Identifier::Dns(n.clone())).collect();
    let mut new_order = NewOrder::new(&identifiers);
    if let Some(profile) = acme_spec.profile.as_deref() {
        new_order = new_order.profile(profile);
    }
    match account.new_order(&new_order).await {
        Ok(o) => Ok(ControlFlow::Continue(o)),
        Err(instant_acme::Error::Api(p)) => {
            // Refused: no order exists, so it does not count.
            t.ctx.data.budget.release(&t.issuer_name, &t.key, at);
            Ok(ControlFlow::Break(order_refused(&p, t.now, asked(t))))
        }
        // Unknown outcome: the reservation stays counted.
        Err(e) => Err(AcmeError::from(e).into()),
    }
}

/// The time the issuer's ACME server last asked (with `Retry-After`) to wait until, if ahead.
fn asked(t: &Target<'_>) -> Option<Timestamp> {
    let at = t.ctx.data.accounts.hint(&t.issuer_name).ahead()?;
    Timestamp::try_from(at).ok()
}

/// A failed step for an order the server refused, unless the refusal passes ([`passing`]).
fn order_refused(p: &Problem, now: Timestamp, asked: Option<Timestamp>) -> Step {
    passing(p, now, asked).unwrap_or_else(|| Step::Failed {
        message: format!(
            "the ACME server refused the order: {}",
            acme::problem_text(p)
        ),
        until: None,
    })
}

/// The wait after a refusal that records no failure: a [`acme::transient`] problem is tried
/// again in seconds; a rate limit (`rateLimited`) waits until the time the server gives, in its
/// message or its `Retry-After` (`asked`), an hour when it gives none. Any other refusal
/// is a failure.
fn passing(p: &Problem, now: Timestamp, asked: Option<Timestamp>) -> Option<Step> {
    if acme::transient(p) {
        return Some(try_again(p));
    }
    let limited = p
        .r#type
        .as_deref()
        .is_some_and(|t| t.ends_with(":rateLimited"));
    if !limited {
        return None;
    }
    let until = retry_after_in(p.detail.as_deref().unwrap_or_default())
        .or(asked)
        .filter(|at| *at > now)
        .unwrap_or(now + SignedDuration::from_hours(1));
    Some(Step::Wait {
        reason: "AcmeRetrying",
        message: format!(
            "the ACME server answered {}; trying again at {until}",
            acme::problem_text(p)
        ),
        after: to_std(until.duration_since(now)) + Duration::from_millis(50),
    })
}

/// A refusal met while the order moves on: a passing one waits ([`passing`]), any other fails
/// the step.
fn refused_midway(t: &Target<'_>, e: AcmeError) -> Result<Step, Error> {
    match &e {
        AcmeError::Refused(p) => passing(p, t.now, asked(t)).ok_or_else(|| e.into()),
        _ => Err(e.into()),
    }
}

/// A passing refusal ([`acme::transient`]): no failure is recorded and nothing backs off; the
/// step is tried again in seconds.
fn try_again(p: &Problem) -> Step {
    Step::Wait {
        reason: "AcmeRetrying",
        message: format!(
            "the ACME server answered {}; trying again in {} s",
            acme::problem_text(p),
            acme::TRANSIENT_RETRY.as_secs()
        ),
        after: acme::TRANSIENT_RETRY,
    }
}

/// Records a placed order: in progress, and among the orders of the last
/// week (older ones are forgotten).
fn record_order(
    status: &mut CertificateStatus,
    url: &str,
    names: &[String],
    at: Timestamp,
    now: Timestamp,
) {
    status
        .recent_orders
        .retain(|t| t.0 + budget::HISTORY >= now);
    status.recent_orders.push(Time(at));
    status.order = Some(AcmeOrder {
        url: url.to_string(),
        dns_names: names.to_vec(),
        placed_at: Time(at),
    });
}

/// Moves the order on by what the ACME server says of it.
async fn advance(
    t: &Target<'_>,
    order: &mut Order,
    acme_spec: &AcmeIssuer,
    secret: Option<&Secret>,
) -> Result<Step, Error> {
    match acme::progress(order).await? {
        Progress::Pending {
            tokens,
            to_validate,
        } => {
            let class = acme_spec.http01.ingress_class_name.as_deref();
            let hostnames: Vec<String> = tokens.iter().map(|t| t.hostname.clone()).collect();
            let since = publish_challenges(t, tokens, &hostnames, class).await?;
            let delay = t.ctx.data.config.propagation_delay;
            if let Some(wait) = propagation_wait(since.elapsed(), delay, &hostnames) {
                return Ok(wait);
            }
            if to_validate > 0
                && let Err(e) = acme::validate(order).await
            {
                return refused_midway(t, e);
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
            match send_csr(t, order, secret).await {
                Err(Error::Acme(e)) => return refused_midway(t, e),
                other => other?,
            }
            finish(order, t, secret).await
        }
        Progress::Valid => finish(order, t, secret).await,
        Progress::Invalid(reason) => Ok(Step::Failed {
            message: reason,
            until: None,
        }),
    }
}

/// While the challenges published `elapsed` ago may not have reached the
/// ingress controllers yet, the wait until they have.
fn propagation_wait(elapsed: Duration, delay: Duration, hostnames: &[String]) -> Option<Step> {
    (elapsed < delay).then(|| Step::Wait {
        reason: "ChallengePublished",
        message: format!(
            "answering the HTTP-01 challenges of {}",
            hostnames.join(", ")
        ),
        after: delay - elapsed + Duration::from_millis(50),
    })
}

/// Finalizes the order with a CSR for the names, signed by the order's key
/// (kept in its Secret first).
async fn send_csr(t: &Target<'_>, order: &mut Order, secret: Option<&Secret>) -> Result<(), Error> {
    let Some(key_pem) = next_key(t.ctx, t.cert, secret, true).await? else {
        return Err(Error::Crypto("the order's key could not be stored".into()));
    };
    let key_pair = pki::key_from_pem(&key_pem).map_err(Error::Crypto)?;
    let csr = pki::csr(&t.names, &key_pair).map_err(|e| Error::Crypto(e.to_string()))?;
    order.finalize_csr(&csr).await.map_err(AcmeError::from)?;
    Ok(())
}

/// Downloads the certificate of a finalized order, paired with the order's key.
async fn finish(order: &mut Order, t: &Target<'_>, secret: Option<&Secret>) -> Result<Step, Error> {
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
            return Ok(
                passing(&p, t.now, asked(t)).unwrap_or_else(|| Step::Failed {
                    message: acme::problem_text(&p),
                    until: None,
                }),
            );
        }
        Err(e) => return Err(AcmeError::from(e).into()),
    };
    let Some(key_pem) = next_key(t.ctx, t.cert, secret, false).await? else {
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

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn problem(json: serde_json::Value) -> Problem {
        serde_json::from_value(json).unwrap_or_else(|e| panic!("{e}"))
    }

    fn failed(step: Step) -> (String, Option<Timestamp>) {
        match step {
            Step::Failed { message, until } => (message, until),
            _ => panic!("not a failure"),
        }
    }

    fn waits(step: Step) -> (&'static str, String, Duration) {
        match step {
            Step::Wait {
                reason,
                message,
                after,
            } => (reason, message, after),
            _ => panic!("not a wait"),
        }
    }

    /// A rate limit is no failure: it waits for the time the server gives, in its message,
    /// else in its `Retry-After`, else an hour, and records nothing that would back off.
    #[test]
    fn a_rate_limited_order_waits_for_the_time_the_server_names() {
        let named = problem(serde_json::json!({
            "type": "urn:ietf:params:acme:error:rateLimited",
            "detail": "too many new orders, retry after 2026-12-01T10:00:00Z",
        }));
        let now: Timestamp = "2026-12-01T09:00:00Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let (reason, message, after) = waits(order_refused(
            &named,
            now,
            Some(now + SignedDuration::from_secs(5)),
        ));
        assert_eq!(reason, "AcmeRetrying");
        assert!(
            message.contains("trying again at 2026-12-01T10:00:00Z"),
            "{message}"
        );
        assert_eq!(after, Duration::from_secs(3600) + Duration::from_millis(50));

        let unnamed = problem(serde_json::json!({
            "type": "urn:ietf:params:acme:error:rateLimited",
            "detail": "slow down",
        }));
        let (_, _, after) = waits(order_refused(&unnamed, t(0), Some(t(2))));
        assert_eq!(
            after,
            Duration::from_millis(2050),
            "the Retry-After it gave"
        );
        let (_, _, after) = waits(order_refused(&unnamed, t(0), None));
        assert_eq!(after, Duration::from_secs(3600) + Duration::from_millis(50));
        let (_, _, after) = waits(order_refused(&unnamed, t(10), Some(t(2))));
        assert_eq!(
            after,
            Duration::from_secs(3600) + Duration::from_millis(50),
            "a time gone by"
        );

        let other = problem(serde_json::json!({
            "type": "urn:ietf:params:acme:error:rejectedIdentifier",
            "detail": "retry after 2026-12-01T10:00:00Z",
        }));
        assert_eq!(
            failed(order_refused(&other, t(0), Some(t(2)))).1,
            None,
            "backs off"
        );
        assert!(passing(&other, t(0), Some(t(2))).is_none());
    }

    #[test]
    fn a_bad_nonce_or_a_server_error_is_tried_again_in_seconds_not_backed_off() {
        for kind in ["badNonce", "serverInternal"] {
            let p = problem(serde_json::json!({
                "type": format!("urn:ietf:params:acme:error:{kind}"),
                "detail": "JWS has an invalid anti-replay nonce",
            }));
            assert!(acme::transient(&p), "{kind}");
            match order_refused(&p, t(0), None) {
                Step::Wait {
                    reason,
                    message,
                    after,
                } => {
                    assert_eq!(reason, "AcmeRetrying");
                    assert!(message.contains(kind), "{message}");
                    assert_eq!(after, acme::TRANSIENT_RETRY);
                }
                _ => panic!("{kind}: not tried again soon"),
            }
        }
        let refused = problem(serde_json::json!({
            "type": "urn:ietf:params:acme:error:rejectedIdentifier",
        }));
        assert!(!acme::transient(&refused));
        assert!(!acme::transient(&problem(
            serde_json::json!({"detail": "no type"})
        )));
    }

    #[test]
    fn an_order_for_other_names_is_recognised_whatever_their_order() {
        let names = vec!["mons.be".to_string(), "www.mons.be".to_string()];
        let order = |dns: &[&str]| AcmeOrder {
            url: "https://acme/order/1".into(),
            dns_names: dns.iter().map(|s| s.to_string()).collect(),
            placed_at: Time(t(0)),
        };
        assert!(!order_for_other_names(None, &names));
        let same = order(&["www.mons.be", "mons.be"]);
        assert!(!order_for_other_names(Some(&same), &names));
        let fewer = order(&["www.mons.be"]);
        assert!(order_for_other_names(Some(&fewer), &names));
    }

    #[test]
    fn a_placed_order_is_recorded_and_week_old_orders_forgotten() {
        let week = budget::HISTORY.as_secs();
        let mut status = CertificateStatus {
            recent_orders: vec![Time(t(0)), Time(t(100))],
            ..Default::default()
        };
        let names = vec!["www.mons.be".to_string()];
        record_order(
            &mut status,
            "https://acme/order/2",
            &names,
            t(week + 50),
            t(week + 50),
        );
        assert_eq!(status.recent_orders, vec![Time(t(100)), Time(t(week + 50))]);
        let order = status.order.unwrap_or_else(|| panic!("no order"));
        assert_eq!(order.url, "https://acme/order/2");
        assert_eq!(
            (order.dns_names, order.placed_at),
            (names, Time(t(week + 50)))
        );
    }

    #[test]
    fn challenges_are_validated_only_once_they_had_time_to_propagate() {
        let hosts = vec!["www.mons.be".to_string()];
        let delay = Duration::from_secs(5);
        match propagation_wait(Duration::from_secs(2), delay, &hosts) {
            Some(Step::Wait { reason, after, .. }) => {
                assert_eq!(reason, "ChallengePublished");
                assert_eq!(after, Duration::from_millis(3050));
            }
            _ => panic!("should wait"),
        }
        assert!(propagation_wait(delay, delay, &hosts).is_none());
    }
}
