//! One reconcile of a Certificate: check what the Secret holds (pure), decide
//! whether to issue (missing, tampered, for other names, spec changed, renewal
//! time reached), then issue through the internal CA, self-signed, or one
//! resumable step of an ACME order at a time, within the fleet's budget and
//! the certificate's failure backoff.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use instant_acme::{Identifier, NewOrder};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use mutu_api::certificate::{AcmeOrder, CertificateStatus, RotationPolicy};
use mutu_api::common::TENANT_NAMESPACE_PREFIX;
use mutu_api::common::is_within_domain;
use mutu_api::issuer::{AcmeIssuer, AcmeRateLimits};
use mutu_api::{Certificate, CertificateIssuer, MemberTenant};
use mutu_runtime::conditions::Desired as Cond;
use mutu_runtime::{ApplyError, Context, Reason};

use crate::acme::{self, AcmeError, Progress};
use crate::budget::{self, Decision, Placed};
use crate::metrics::CertMetrics;
use crate::pki::{self, Inspected};
use crate::solver::{self, Route, Tokens};

/// Annotations on the Secret: which Certificate and issuer it belongs to, and
/// the hash of the spec it was issued for.
pub const CERTIFICATE_ANNOTATION: &str = "hosting.imio.be/certificate";
pub const ISSUER_ANNOTATION: &str = "hosting.imio.be/issuer";
pub const ISSUED_FOR_ANNOTATION: &str = "hosting.imio.be/issued-for";
/// Component label of the Secrets this controller writes.
pub const SECRET_COMPONENT: &str = "certificate";
/// Component label of the Secret holding the key of an order in progress.
pub const NEXT_KEY_COMPONENT: &str = "certificate-next-key";

/// Condition types.
pub const READY: &str = "Ready";
pub const ISSUING: &str = "Issuing";

/// Lifetime of certificates from the internal CA or self-signed when the spec sets none.
pub const DEFAULT_LIFETIME: SignedDuration = SignedDuration::from_hours(24 * 90);

/// A suggested renewal window: start and end.
pub type Window = (Timestamp, Timestamp);

/// Operator-wide settings of the certificate controller.
#[derive(Clone, Debug)]
pub struct Config {
    /// The operator's namespace: ACME account keys, CA Secrets and the challenge Ingresses.
    pub namespace: String,
    /// Where challenge Ingresses send the ACME server.
    pub route: Route,
    /// Time between publishing a challenge and asking the server to validate
    /// it, so that ingress controllers have loaded the route.
    pub propagation_delay: Duration,
    /// First wait after a failed issuance; doubles with each failure in a row.
    pub retry_base: Duration,
    /// Longest wait between failed issuances.
    pub retry_cap: Duration,
    /// Prefixes of the ACME directory URLs the operator may talk to (any when
    /// empty): the test bed and the demo allow only the local ACME server.
    pub acme_server_allow: Vec<String>,
}

/// The caches, accounts, budget and solver of the certificate controller.
pub struct Data {
    pub config: Config,
    pub certificates: Store<DeserializeGuard<Certificate>>,
    pub issuers: Store<DeserializeGuard<CertificateIssuer>>,
    pub tenants: Store<DeserializeGuard<MemberTenant>>,
    pub secrets: Store<Secret>,
    pub ingresses: Store<PartialObjectMeta<Ingress>>,
    pub accounts: Arc<acme::Accounts>,
    pub budget: budget::Budget,
    pub tokens: Tokens,
    pub metrics: CertMetrics,
    /// When each certificate's challenges were first published in this process.
    pub presented: Mutex<HashMap<String, Instant>>,
    /// When each certificate's ACME renewal window was last read, and what it said.
    pub ari: Mutex<HashMap<String, (Instant, Option<Window>)>>,
}

impl Data {
    pub async fn ready(&self) -> bool {
        mutu_runtime::controller::caches_listed(async {
            let _ = self.certificates.wait_until_ready().await;
            let _ = self.issuers.wait_until_ready().await;
            let _ = self.tenants.wait_until_ready().await;
            let _ = self.secrets.wait_until_ready().await;
            let _ = self.ingresses.wait_until_ready().await;
        })
        .await
    }
}

/// Why a certificate reconcile failed (and will be retried soon).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Apply(#[from] Box<ApplyError>),
    #[error("cannot write the Certificate status: {0}")]
    Status(#[source] kube::Error),
    #[error("cannot read or write Secret {name}: {source}")]
    Secret {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Acme(#[from] AcmeError),
    #[error("cannot make a key or certificate: {0}")]
    Crypto(String),
}

impl From<ApplyError> for Error {
    fn from(e: ApplyError) -> Self {
        Error::Apply(Box::new(e))
    }
}

impl Reason for Error {
    fn reason(&self) -> &'static str {
        match self {
            Error::Apply(_) => "ApplyFailed",
            Error::Status(_) => "StatusFailed",
            Error::Secret { .. } => "SecretFailed",
            Error::Acme(_) => "AcmeUnavailable",
            Error::Crypto(_) => "CryptoFailed",
        }
    }
}

type Ctx = Context<Data>;

/// The hash of what a certificate is issued for: a change re-issues it.
pub fn spec_hash(cert: &Certificate) -> String {
    let names = budget::name_set(&cert.spec.dns_names);
    mutu_runtime::apply::fingerprint(&(
        names,
        &cert.spec.issuer_ref.name,
        cert.spec
            .duration
            .map(|d| std::time::Duration::from(d).as_secs()),
    ))
    .unwrap_or_default()
}

/// What the Secret holds, judged against the spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Current {
    /// The certificate in the Secret, when it can be read.
    pub inspected: Option<Inspected>,
    /// Whether it serves the spec's names now (valid, right key, right names).
    pub serving: bool,
    /// Why a new certificate is needed, if one is: (reason, message).
    pub reissue: Option<(&'static str, String)>,
}

fn secret_text(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
}

/// Judges the Secret `secret` of a certificate for `names` (sorted) issued for `hash`.
pub fn judge(secret: Option<&Secret>, names: &[String], hash: &str, now: Timestamp) -> Current {
    let fail = |reason, message: String| Current {
        inspected: None,
        serving: false,
        reissue: Some((reason, message)),
    };
    let Some(secret) = secret else {
        return fail("Missing", "the Secret does not exist".into());
    };
    let (Some(crt), Some(key)) = (
        secret_text(secret, "tls.crt"),
        secret_text(secret, "tls.key"),
    ) else {
        return fail("Missing", "the Secret has no tls.crt or no tls.key".into());
    };
    let inspected = match pki::pem_certs(&crt).and_then(|c| pki::inspect(&c[0])) {
        Ok(i) => i,
        Err(e) => return fail("Unreadable", format!("tls.crt: {e}")),
    };
    let key = match pki::key_from_pem(&key) {
        Ok(k) => k,
        Err(e) => return fail("Unreadable", format!("tls.key: {e}")),
    };
    let mut current = Current {
        inspected: Some(inspected.clone()),
        serving: false,
        reissue: None,
    };
    if !pki::key_matches(&key, &inspected) {
        current.reissue = Some((
            "KeyMismatch",
            "tls.key does not belong to the certificate in tls.crt".into(),
        ));
        return current;
    }
    let have: Vec<String> = inspected.names.iter().cloned().collect();
    if have != names {
        current.reissue = Some((
            "NamesDiffer",
            format!(
                "the certificate is for {}, the spec asks for {}",
                have.join(", "),
                names.join(", ")
            ),
        ));
        return current;
    }
    if now >= inspected.not_after {
        current.reissue = Some((
            "Expired",
            format!("the certificate expired at {}", inspected.not_after),
        ));
        return current;
    }
    current.serving = true;
    let issued_for = secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ISSUED_FOR_ANNOTATION));
    if issued_for.map(String::as_str) != Some(hash) {
        current.reissue = Some((
            "SpecChanged",
            "the spec changed since the certificate was issued".into(),
        ));
    }
    current
}

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

/// Why a certificate is refused before anything is issued.
pub fn refusal(
    cert: &Certificate,
    issuer: &CertificateIssuer,
    tenants: &Store<DeserializeGuard<MemberTenant>>,
) -> Option<(&'static str, String)> {
    let ns = cert.namespace().unwrap_or_default();
    if let Some(tenant_name) = ns.strip_prefix(TENANT_NAMESPACE_PREFIX) {
        let tenant = tenants
            .get(&ObjectRef::new(tenant_name))
            .and_then(|t| t.0.as_ref().ok().cloned());
        let Some(tenant) = tenant else {
            return Some((
                "NoTenant",
                format!(
                    "namespace {ns} belongs to no MemberTenant {tenant_name}; no certificate is issued in it"
                ),
            ));
        };
        let foreign: Vec<&String> = cert
            .spec
            .dns_names
            .iter()
            .filter(|n| {
                let bare = n.trim_start_matches("*.");
                !tenant
                    .spec
                    .domains
                    .iter()
                    .any(|d| is_within_domain(bare, d))
            })
            .collect();
        if !foreign.is_empty() {
            return Some((
                "ForeignDomain",
                format!(
                    "spec.dnsNames: {} {} not under the domains of member {tenant_name} ({}); use names under those domains, or ask for the domain to be added to the MemberTenant",
                    foreign
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    if foreign.len() == 1 { "is" } else { "are" },
                    tenant.spec.domains.join(", ")
                ),
            ));
        }
    }
    if issuer.spec.acme.is_some()
        && let Some(w) = cert.spec.dns_names.iter().find(|n| n.starts_with("*."))
    {
        return Some((
            "WildcardNotSupported",
            format!(
                "spec.dnsNames: {w} is a wildcard, which ACME HTTP-01 cannot prove; list the names, or use an internal CA issuer"
            ),
        ));
    }
    None
}

/// Backoff after `failures` failed issuances in a row: base doubling to the cap.
pub fn retry_delay(base: Duration, cap: Duration, failures: i32) -> Duration {
    let n = failures.clamp(1, 30) as u32 - 1;
    base.saturating_mul(2u32.saturating_pow(n)).min(cap)
}

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

/// `Ready`: the Secret serves a valid certificate for the names.
fn serving(secret: &str, names: &[String], not_after: Timestamp) -> Cond<'static> {
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
fn up_to_date(renewal: Timestamp) -> Cond<'static> {
    Cond::new(
        ISSUING,
        false,
        "UpToDate",
        format!("next renewal at {renewal}"),
    )
}

async fn write(
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

/// The Secret `name`, from the cache or, when the cache has none (a Secret
/// mutu did not label), from the API server.
async fn read_secret(ctx: &Ctx, ns: &str, name: &str) -> Result<Option<Secret>, Error> {
    if let Some(s) = ctx.data.secrets.get(&ObjectRef::new(name).within(ns)) {
        return Ok(Some((*s).clone()));
    }
    let api: Api<Secret> = Api::namespaced(ctx.client().clone(), ns);
    api.get_opt(name).await.map_err(|source| Error::Secret {
        name: format!("{ns}/{name}"),
        source,
    })
}

/// Writes the certificate's Secret. Not owned by the Certificate: deleting a
/// Certificate never deletes the certificate and key that an Ingress serves.
async fn write_secret(
    ctx: &Ctx,
    cert: &Certificate,
    issuer: &str,
    hash: &str,
    chain: &str,
    key_pem: &str,
    ca: Option<&str>,
) -> Result<(), Error> {
    let ns = cert.namespace().unwrap_or_default();
    let name = cert.name_any();
    let uid = cert.uid().unwrap_or_default();
    let mut data = BTreeMap::from([
        ("tls.crt".to_string(), ByteString(chain.as_bytes().to_vec())),
        (
            "tls.key".to_string(),
            ByteString(key_pem.as_bytes().to_vec()),
        ),
    ]);
    if let Some(ca) = ca {
        data.insert("ca.crt".to_string(), ByteString(ca.as_bytes().to_vec()));
    }
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(cert.spec.secret_name.clone()),
            namespace: Some(ns),
            labels: Some(mutu_runtime::labels::standard(
                &name,
                &uid,
                SECRET_COMPONENT,
            )),
            annotations: Some(BTreeMap::from([
                (CERTIFICATE_ANNOTATION.to_string(), name),
                (ISSUER_ANNOTATION.to_string(), issuer.to_string()),
                (ISSUED_FOR_ANNOTATION.to_string(), hash.to_string()),
            ])),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Default::default()
    };
    ctx.applier.apply(&ctx.data.secrets, secret).await?;
    Ok(())
}

/// Issuance by the internal CA or self-signed: immediate.
async fn local_step(
    ctx: &Ctx,
    cert: &Certificate,
    issuer: &CertificateIssuer,
    names: &[String],
    secret: Option<&Secret>,
    now: Timestamp,
) -> Result<Step, Error> {
    let key = issuance_key(cert, secret)?;
    let lifetime = cert
        .spec
        .duration
        .and_then(|d| SignedDuration::try_from(std::time::Duration::from(d)).ok())
        .unwrap_or(DEFAULT_LIFETIME);
    let ca = match &issuer.spec.ca {
        Some(ca_spec) => {
            let api: Api<Secret> =
                Api::namespaced(ctx.client().clone(), &ctx.data.config.namespace);
            let ca_secret =
                api.get_opt(&ca_spec.secret_name)
                    .await
                    .map_err(|source| Error::Secret {
                        name: format!("{}/{}", ctx.data.config.namespace, ca_spec.secret_name),
                        source,
                    })?;
            let loaded = ca_secret
                .as_ref()
                .and_then(|s| Some((secret_text(s, "tls.crt")?, secret_text(s, "tls.key")?)))
                .ok_or_else(|| {
                    format!(
                        "the CA Secret {}/{} does not exist or lacks tls.crt and tls.key",
                        ctx.data.config.namespace, ca_spec.secret_name
                    )
                })
                .and_then(|(c, k)| pki::Ca::load(&c, &k));
            match loaded {
                Ok(ca) => Some(ca),
                Err(message) => {
                    return Ok(Step::Wait {
                        reason: "IssuerNotReady",
                        message,
                        after: Duration::from_secs(10),
                    });
                }
            }
        }
        None => None,
    };
    let chain = pki::sign_leaf(names, &key, ca.as_ref(), now, lifetime)
        .map_err(|e| Error::Crypto(e.to_string()))?;
    let ca_pem = ca.map(|c| c.cert_pem).unwrap_or_else(|| chain.clone());
    Ok(Step::Issued {
        chain,
        key_pem: key.serialize_pem(),
        ca: Some(ca_pem),
    })
}

/// The key of a new certificate: the Secret's own with `rotationPolicy: Never`
/// (when it has a usable one), a new one otherwise.
fn issuance_key(cert: &Certificate, secret: Option<&Secret>) -> Result<rcgen::KeyPair, Error> {
    let keep = cert
        .spec
        .private_key
        .as_ref()
        .is_some_and(|k| k.rotation_policy == RotationPolicy::Never);
    if keep
        && let Some(k) = secret
            .and_then(|s| secret_text(s, "tls.key"))
            .and_then(|p| pki::key_from_pem(&p).ok())
    {
        return Ok(k);
    }
    pki::new_key().map_err(|e| Error::Crypto(e.to_string()))
}

/// Name of the Secret holding the key of the order in progress.
fn next_key_name(secret_name: &str) -> String {
    let stem: String = secret_name.chars().take(240).collect();
    format!("{}-next-key", stem.trim_end_matches(['-', '.']))
}

/// The key for the order in progress, created (and kept in a Secret owned by
/// the Certificate) before the CSR is sent, so that a restart between sending
/// it and downloading the certificate loses nothing.
async fn next_key(
    ctx: &Ctx,
    cert: &Certificate,
    secret: Option<&Secret>,
    create: bool,
) -> Result<Option<String>, Error> {
    let ns = cert.namespace().unwrap_or_default();
    let name = next_key_name(&cert.spec.secret_name);
    let api: Api<Secret> = Api::namespaced(ctx.client().clone(), &ns);
    let err = |source| Error::Secret {
        name: format!("{ns}/{name}"),
        source,
    };
    if let Some(s) = api.get_opt(&name).await.map_err(err)?
        && let Some(pem) = secret_text(&s, "tls.key")
    {
        return Ok(Some(pem));
    }
    if !create {
        return Ok(None);
    }
    let pem = issuance_key(cert, secret)?.serialize_pem();
    let obj = Secret {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            labels: Some(mutu_runtime::labels::standard(
                &cert.name_any(),
                &cert.uid().unwrap_or_default(),
                NEXT_KEY_COMPONENT,
            )),
            owner_references: Some(vec![OwnerReference {
                api_version: mutu_api::API_VERSION.into(),
                kind: "Certificate".into(),
                name: cert.name_any(),
                uid: cert.uid().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "tls.key".to_string(),
            ByteString(pem.clone().into_bytes()),
        )])),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => {
            ctx.metrics.write(ctx.name, "create", "Secret");
            Ok(Some(pem))
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            Box::pin(next_key(ctx, cert, secret, false)).await
        }
        Err(source) => Err(err(source)),
    }
}

async fn delete_next_key(ctx: &Ctx, ns: &str, secret_name: &str) -> Result<(), Error> {
    let name = next_key_name(secret_name);
    let api: Api<Secret> = Api::namespaced(ctx.client().clone(), ns);
    if api
        .get_metadata_opt(&name)
        .await
        .map_err(|source| Error::Secret {
            name: format!("{ns}/{name}"),
            source,
        })?
        .is_some()
    {
        ctx.applier.delete::<Secret>(Some(ns), &name).await?;
    }
    Ok(())
}

/// Stops answering the certificate's challenges and removes its challenge Ingress.
async fn cleanup_challenge(ctx: &Ctx, ns: &str, name: &str, key: &str) -> Result<(), Error> {
    ctx.data.tokens.clear(key);
    ctx.data
        .presented
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(key);
    let route_ns = &ctx.data.config.route.namespace;
    let ingress = solver::ingress_name(ns, name);
    if ctx
        .data
        .ingresses
        .get(&ObjectRef::new(&ingress).within(route_ns))
        .is_some()
    {
        ctx.applier
            .delete::<Ingress>(Some(route_ns), &ingress)
            .await?;
    }
    Ok(())
}

/// The ACME server's suggested renewal window for the certificate `ins`,
/// read at most every 6 hours per certificate (and again after each issuance).
async fn ari_window(
    ctx: &Ctx,
    issuer: &CertificateIssuer,
    ins: &Inspected,
    key: &str,
) -> Option<(Timestamp, Timestamp)> {
    const EVERY: Duration = Duration::from_secs(6 * 3600);
    let id = ins.ari_id.clone()?;
    let cache_key = format!("{key}@{id}");
    if let Some((at, window)) = ctx
        .data
        .ari
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&cache_key)
        && at.elapsed() < EVERY
    {
        return *window;
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
        Ok((info, _)) => {
            let ts = |t: time::OffsetDateTime| Timestamp::from_second(t.unix_timestamp()).ok();
            match (
                ts(info.suggested_window.start),
                ts(info.suggested_window.end),
            ) {
                (Some(s), Some(e)) => Some((s, e)),
                _ => None,
            }
        }
        Err(e) => {
            tracing::debug!(certificate = %key, error = %e, "no ACME renewal information");
            None
        }
    };
    let mut map = ctx.data.ari.lock().unwrap_or_else(|e| e.into_inner());
    let prefix = format!("{key}@");
    map.retain(|k, _| !k.starts_with(&prefix));
    map.insert(cache_key, (Instant::now(), window));
    window
}

/// The orders that the cached Certificates of `issuer` record.
fn stored_orders(ctx: &Ctx, issuer: &str) -> Vec<Placed> {
    ctx.data
        .certificates
        .state()
        .iter()
        .filter_map(|c| c.0.as_ref().ok())
        .filter(|c| c.spec.issuer_ref.name == issuer)
        .flat_map(|c| {
            let key = format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any());
            let names = budget::name_set(&c.spec.dns_names);
            c.status
                .iter()
                .flat_map(|s| s.recent_orders.iter())
                .map(move |t| Placed {
                    certificate: key.clone(),
                    names: names.clone(),
                    at: t.0,
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Another Certificate of `issuer` with an order in progress for the same names.
fn same_names_in_flight(ctx: &Ctx, issuer: &str, key: &str, names: &[String]) -> Option<String> {
    ctx.data
        .certificates
        .state()
        .iter()
        .filter_map(|c| c.0.as_ref().ok())
        .filter(|c| c.spec.issuer_ref.name == issuer)
        .filter(|c| format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any()) != key)
        .find(|c| {
            c.status
                .as_ref()
                .and_then(|s| s.order.as_ref())
                .is_some_and(|o| budget::name_set(&o.dns_names) == names)
        })
        .map(|c| format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any()))
}

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
async fn acme_step(
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

fn budget_metrics(
    ctx: &Ctx,
    issuer: &str,
    limits: &AcmeRateLimits,
    stored: Vec<Placed>,
    now: Timestamp,
) {
    let used = budget::used_in_window(&stored, &limits.new_orders, now);
    let allowed = budget::allowed(limits.new_orders.limit, limits.budget_percent);
    ctx.data
        .metrics
        .budget(issuer, used as i64, i64::from(allowed));
    for (issuer, n) in ctx.data.budget.queue_lengths() {
        ctx.data.metrics.queue(&issuer, n as i64);
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
    fn failure_backoff_doubles_from_the_base_to_the_cap() {
        let base = Duration::from_secs(3600);
        let cap = Duration::from_secs(24 * 3600);
        let got: Vec<u64> = (1..=7)
            .map(|n| retry_delay(base, cap, n).as_secs() / 3600)
            .collect();
        assert_eq!(got, vec![1, 2, 4, 8, 16, 24, 24]);
    }

    fn tls_secret(names: &[&str], hash: &str, lifetime: i64, other_key: bool) -> Secret {
        let now = Timestamp::now();
        let key = pki::new_key().unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let pem = pki::sign_leaf(&names, &key, None, now, SignedDuration::from_secs(lifetime))
            .unwrap_or_else(|e| panic!("{e}"));
        let key_pem = if other_key {
            pki::new_key()
                .unwrap_or_else(|e| panic!("{e}"))
                .serialize_pem()
        } else {
            key.serialize_pem()
        };
        Secret {
            metadata: ObjectMeta {
                annotations: Some(BTreeMap::from([(
                    ISSUED_FOR_ANNOTATION.to_string(),
                    hash.to_string(),
                )])),
                ..Default::default()
            },
            data: Some(BTreeMap::from([
                ("tls.crt".to_string(), ByteString(pem.into_bytes())),
                ("tls.key".to_string(), ByteString(key_pem.into_bytes())),
            ])),
            ..Default::default()
        }
    }

    #[test]
    fn the_secret_is_judged_on_key_names_expiry_and_spec() {
        let names = vec!["mons.be".to_string(), "www.mons.be".to_string()];
        let now = Timestamp::now();
        let ok = tls_secret(&["www.mons.be", "mons.be"], "h", 3600, false);
        let j = judge(Some(&ok), &names, "h", now);
        assert!(j.serving && j.reissue.is_none(), "{j:?}");

        let j = judge(Some(&ok), &names, "other", now);
        assert!(
            j.serving,
            "a spec change keeps serving until the new one is there"
        );
        assert_eq!(j.reissue.map(|r| r.0), Some("SpecChanged"));

        let tampered = tls_secret(&["www.mons.be", "mons.be"], "h", 3600, true);
        let j = judge(Some(&tampered), &names, "h", now);
        assert!(!j.serving);
        assert_eq!(j.reissue.map(|r| r.0), Some("KeyMismatch"));

        let fewer = tls_secret(&["www.mons.be"], "h", 3600, false);
        assert_eq!(
            judge(Some(&fewer), &names, "h", now).reissue.map(|r| r.0),
            Some("NamesDiffer")
        );

        let later = now + SignedDuration::from_secs(7200);
        assert_eq!(
            judge(Some(&ok), &names, "h", later).reissue.map(|r| r.0),
            Some("Expired")
        );
        assert_eq!(
            judge(None, &names, "h", now).reissue.map(|r| r.0),
            Some("Missing")
        );
    }

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
