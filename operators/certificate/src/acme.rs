//! The ACME side: one account per issuer (its key kept in a Secret), the
//! HTTP client that trusts the issuer's CA bundle, and the steps of an order,
//! each of which can be resumed from the order URL after a restart.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use instant_acme::{
    Account, AuthorizationStatus, BodyWrapper, ChallengeStatus, ChallengeType, HttpClient, Key,
    OrderStatus, Problem,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use mutu_api::issuer::AcmeIssuer;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::pki;

/// Why talking to the ACME server failed.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The server said no, with its problem document.
    #[error("the ACME server refused: {}", problem_text(.0))]
    Refused(Problem),
    /// The server or the network failed; worth retrying soon.
    #[error("cannot talk to the ACME server: {0}")]
    Transport(String),
    /// The issuer's settings or account key are unusable.
    #[error("{0}")]
    Config(String),
    #[error("cannot read or create the ACME account key Secret: {0}")]
    Kube(#[source] kube::Error),
}

/// Whether the ACME server's problem is a passing one, to try again in seconds: a nonce it
/// did not take (RFC 8555 §6.5: servers may reject nonces, and clients retry; the client has
/// retried twice already) or an error of its own (`serverInternal`).
pub fn transient(p: &Problem) -> bool {
    matches!(
        p.r#type
            .as_deref()
            .map(|t| t.trim_start_matches("urn:ietf:params:acme:error:")),
        Some("badNonce" | "serverInternal")
    )
}

/// How long to wait before trying again after a [`transient`] problem.
pub const TRANSIENT_RETRY: std::time::Duration = std::time::Duration::from_secs(10);

pub fn problem_text(p: &Problem) -> String {
    let mut text = p.detail.clone().unwrap_or_else(|| "no detail".into());
    if let Some(t) = &p.r#type {
        text = format!(
            "{text} ({})",
            t.trim_start_matches("urn:ietf:params:acme:error:")
        );
    }
    for sub in &p.subproblems {
        if let Some(detail) = &sub.detail {
            text.push_str("; ");
            text.push_str(detail);
        }
    }
    text
}

impl From<instant_acme::Error> for AcmeError {
    fn from(e: instant_acme::Error) -> Self {
        match e {
            instant_acme::Error::Api(p) => AcmeError::Refused(p),
            other => AcmeError::Transport(other.to_string()),
        }
    }
}

/// The key of an ACME account Secret.
pub const ACCOUNT_KEY: &str = "tls.key";

/// The latest `Retry-After` an ACME server gave an issuer's account with a 429 or 503 answer:
/// instant-acme hands over a refusal's problem document, not its headers, so the issuer's HTTP
/// client ([`Watched`]) keeps the time here for the step that met the refusal.
#[derive(Default)]
pub struct RetryHint(std::sync::Mutex<Option<std::time::SystemTime>>);

impl RetryHint {
    fn set(&self, at: std::time::SystemTime) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(at);
    }

    /// The time the server last asked to wait until, if it is still ahead.
    pub fn ahead(&self) -> Option<std::time::SystemTime> {
        let at = *self.0.lock().unwrap_or_else(|e| e.into_inner());
        at.filter(|at| *at > std::time::SystemTime::now())
    }
}

/// `Retry-After` (RFC 9110): a number of seconds, or an HTTP date.
fn retry_after(value: &str) -> Option<std::time::SystemTime> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return std::time::SystemTime::now().checked_add(std::time::Duration::from_secs(seconds));
    }
    let at = k8s_openapi::jiff::fmt::rfc2822::parse(value).ok()?;
    Some(std::time::SystemTime::from(at.timestamp()))
}

/// An issuer's HTTP client that remembers the `Retry-After` of the server's 429 and 503 answers.
struct Watched {
    inner: Box<dyn HttpClient>,
    hint: Arc<RetryHint>,
}

impl HttpClient for Watched {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> std::pin::Pin<
        Box<dyn Future<Output = Result<instant_acme::BytesResponse, instant_acme::Error>> + Send>,
    > {
        let answer = self.inner.request(req);
        let hint = self.hint.clone();
        Box::pin(async move {
            let rsp = answer.await?;
            if matches!(rsp.parts.status.as_u16(), 429 | 503)
                && let Some(at) = rsp
                    .parts
                    .headers
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(retry_after)
            {
                hint.set(at);
            }
            Ok(rsp)
        })
    }
}

/// The HTTP client of an issuer: trusting only its CA bundle when it has one,
/// the system's roots otherwise; it keeps the server's `Retry-After` in `hint`.
fn http_client(
    ca_bundle: Option<&str>,
    hint: Arc<RetryHint>,
) -> Result<Box<dyn HttpClient>, AcmeError> {
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match ca_bundle {
        None => builder
            .try_with_platform_verifier()
            .map_err(|e| AcmeError::Config(format!("the system's TLS roots: {e}")))?,
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in pki::pem_certs(pem)
                .map_err(|e| AcmeError::Config(format!("spec.acme.caBundle: {e}")))?
            {
                roots
                    .add(cert)
                    .map_err(|e| AcmeError::Config(format!("spec.acme.caBundle: {e}")))?;
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| AcmeError::Config(format!("TLS settings: {e}")))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            builder.with_tls_config(tls)
        }
    };
    let connector = builder.https_only().enable_http1().build();
    let client: HyperClient<_, BodyWrapper<Bytes>> =
        HyperClient::builder(TokioExecutor::new()).build(connector);
    Ok(Box::new(Watched {
        inner: Box::new(client),
        hint,
    }))
}

/// The ACME accounts of the issuers, registered once per process and issuer
/// settings.
#[derive(Default)]
pub struct Accounts {
    cache: tokio::sync::Mutex<HashMap<String, (String, Account)>>,
    /// Per issuer, the `Retry-After` its server last gave.
    hints: std::sync::Mutex<HashMap<String, Arc<RetryHint>>>,
    /// Directory URL prefixes the operator may talk to; any when empty.
    allowed: Vec<String>,
}

impl Accounts {
    pub fn new(allowed: Vec<String>) -> Self {
        Self {
            cache: Default::default(),
            hints: Default::default(),
            allowed,
        }
    }

    /// Where issuer `name`'s HTTP client keeps its server's `Retry-After`.
    pub fn hint(&self, name: &str) -> Arc<RetryHint> {
        self.hints
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    /// The account of issuer `name`, registering it (or finding it again from
    /// its key) on first use. The key lives in the Secret named by the issuer,
    /// in `namespace`; it is created when missing and never replaced.
    pub async fn get(
        &self,
        client: &kube::Client,
        namespace: &str,
        name: &str,
        spec: &AcmeIssuer,
    ) -> Result<Account, AcmeError> {
        if !self.allowed.is_empty()
            && !self
                .allowed
                .iter()
                .any(|p| spec.server.starts_with(p.as_str()))
        {
            return Err(AcmeError::Config(format!(
                "spec.acme.server: {} is not among the ACME servers this operator may use ({}); change the server, or the operator's --acme-server-allow",
                spec.server,
                self.allowed.join(", ")
            )));
        }
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let key_pem = account_key(&secrets, &spec.account_key_secret_ref.name, name).await?;
        let fingerprint = mutu_runtime::apply::fingerprint(&(
            &spec.server,
            &spec.email,
            &spec.ca_bundle,
            &key_pem,
        ))
        .map_err(|e| AcmeError::Config(e.to_string()))?;
        let mut cache = self.cache.lock().await;
        if let Some((f, account)) = cache.get(name)
            && *f == fingerprint
        {
            return Ok(account.clone());
        }
        let key = pki::key_from_pem(&key_pem).map_err(|e| {
            AcmeError::Config(format!(
                "the ACME account key in Secret {namespace}/{}: {e}",
                spec.account_key_secret_ref.name
            ))
        })?;
        let der = key.serialize_der();
        let acme_key = Key::from_pkcs8_der(PrivatePkcs8KeyDer::from(der.clone())).map_err(|e| {
            AcmeError::Config(format!(
                "the ACME account key in Secret {namespace}/{} must be an ECDSA P-256 key: {e}",
                spec.account_key_secret_ref.name
            ))
        })?;
        let builder =
            Account::builder_with_http(http_client(spec.ca_bundle.as_deref(), self.hint(name))?);
        let (account, _) = builder
            .create_from_key(
                (
                    acme_key,
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der)),
                ),
                spec.server.clone(),
            )
            .await?;
        let contact = format!("mailto:{}", spec.email);
        account.update_contacts(&[contact.as_str()]).await?;
        cache.insert(name.to_string(), (fingerprint, account.clone()));
        Ok(account)
    }

    /// Forgets the account of `name` (its settings changed or it failed).
    pub async fn forget(&self, name: &str) {
        self.cache.lock().await.remove(name);
    }
}

/// The PEM account key in Secret `secret`, created with a new key when missing.
async fn account_key(
    secrets: &Api<Secret>,
    secret: &str,
    issuer: &str,
) -> Result<String, AcmeError> {
    if let Some(s) = secrets.get_opt(secret).await.map_err(AcmeError::Kube)? {
        return s
            .data
            .as_ref()
            .and_then(|d| d.get(ACCOUNT_KEY))
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
            .ok_or_else(|| {
                AcmeError::Config(format!(
                    "Secret {secret} has no {ACCOUNT_KEY}; put the account's PEM key there, or delete the Secret to register a new account"
                ))
            });
    }
    let key = pki::new_key().map_err(|e| AcmeError::Config(e.to_string()))?;
    let pem = key.serialize_pem();
    let obj = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(secret.to_string()),
            labels: Some(
                [
                    (
                        mutu_api::MANAGED_BY.to_string(),
                        mutu_api::MANAGED_BY_VALUE.to_string(),
                    ),
                    (mutu_api::COMPONENT.to_string(), "acme-account".to_string()),
                ]
                .into(),
            ),
            annotations: Some([("hosting.imio.be/issuer".to_string(), issuer.to_string())].into()),
            ..Default::default()
        },
        data: Some(
            [(
                ACCOUNT_KEY.to_string(),
                ByteString(pem.clone().into_bytes()),
            )]
            .into(),
        ),
        ..Default::default()
    };
    match secrets.create(&PostParams::default(), &obj).await {
        Ok(_) => Ok(pem),
        // Another reconcile created it first: use theirs.
        Err(e) if mutu_runtime::create::already_exists(&e) => {
            Box::pin(account_key(secrets, secret, issuer)).await
        }
        Err(e) => Err(AcmeError::Kube(e)),
    }
}

/// A challenge to answer: the token the server will ask for and the key
/// authorization to answer with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub hostname: String,
    pub token: String,
    pub key_authorization: String,
}

/// Where an order stands.
#[derive(Debug)]
pub enum Progress {
    /// Challenges to answer; `to_validate` are not yet submitted to the server.
    Pending {
        tokens: Vec<Token>,
        to_validate: usize,
    },
    /// The server validated every name: send the CSR.
    Ready,
    /// The server is validating or signing.
    Processing,
    /// The certificate chain can be downloaded.
    Valid,
    /// The order failed, with the reason.
    Invalid(String),
}

/// Reads an order and its authorizations.
pub async fn progress(order: &mut instant_acme::Order) -> Result<Progress, AcmeError> {
    let state = order.refresh().await?;
    match state.status {
        OrderStatus::Ready => return Ok(Progress::Ready),
        OrderStatus::Processing => return Ok(Progress::Processing),
        OrderStatus::Valid => return Ok(Progress::Valid),
        OrderStatus::Invalid => {
            let mut reason = state
                .error
                .as_ref()
                .map(problem_text)
                .unwrap_or_else(|| "the order became invalid".into());
            // The challenge errors say why a name failed.
            let mut authzs = order.authorizations();
            while let Some(Ok(authz)) = authzs.next().await {
                for ch in &authz.challenges {
                    if let Some(err) = &ch.error {
                        reason = format!("{}: {}", authz.identifier(), problem_text(err));
                    }
                }
            }
            return Ok(Progress::Invalid(reason));
        }
        OrderStatus::Pending => {}
    }
    let mut tokens = Vec::new();
    let mut to_validate = 0;
    let mut authzs = order.authorizations();
    while let Some(authz) = authzs.next().await {
        let mut authz = authz?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => {
                return Ok(Progress::Invalid(format!(
                    "the authorization of {} is {other:?}",
                    authz.identifier()
                )));
            }
        }
        let hostname = authz.identifier().to_string();
        let Some(challenge) = authz.challenge(ChallengeType::Http01) else {
            return Ok(Progress::Invalid(format!(
                "the ACME server offers no HTTP-01 challenge for {hostname}"
            )));
        };
        if challenge.status == ChallengeStatus::Pending {
            to_validate += 1;
        }
        tokens.push(Token {
            hostname,
            token: challenge.token.clone(),
            key_authorization: challenge.key_authorization().as_str().to_string(),
        });
    }
    Ok(Progress::Pending {
        tokens,
        to_validate,
    })
}

/// Tells the server that every pending HTTP-01 challenge can be validated.
pub async fn validate(order: &mut instant_acme::Order) -> Result<(), AcmeError> {
    let mut authzs = order.authorizations();
    while let Some(authz) = authzs.next().await {
        let mut authz = authz?;
        if authz.status != AuthorizationStatus::Pending {
            continue;
        }
        if let Some(mut challenge) = authz.challenge(ChallengeType::Http01)
            && challenge.status == ChallengeStatus::Pending
        {
            challenge.set_ready().await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now = SystemTime::now();
        let in_two = retry_after("2").unwrap_or(now);
        assert!(in_two >= now + Duration::from_secs(1) && in_two <= now + Duration::from_secs(3));
        let dated = retry_after("Fri, 31 Dec 2100 23:59:59 GMT").map(|t| {
            t.duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default()
        });
        assert_eq!(dated, Some(4_133_980_799));
        assert_eq!(retry_after("soon"), None);

        let hint = RetryHint::default();
        assert_eq!(hint.ahead(), None);
        hint.set(now - Duration::from_secs(1));
        assert_eq!(hint.ahead(), None, "a time gone by asks nothing");
        hint.set(in_two);
        assert_eq!(hint.ahead(), Some(in_two));
    }
}
