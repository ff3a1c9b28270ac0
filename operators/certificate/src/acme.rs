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

/// The HTTP client of an issuer: trusting only its CA bundle when it has one,
/// the system's roots otherwise.
fn http_client(ca_bundle: Option<&str>) -> Result<Option<Box<dyn HttpClient>>, AcmeError> {
    let Some(pem) = ca_bundle else {
        return Ok(None);
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        pki::pem_certs(pem).map_err(|e| AcmeError::Config(format!("spec.acme.caBundle: {e}")))?
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
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    let client: HyperClient<_, BodyWrapper<Bytes>> =
        HyperClient::builder(TokioExecutor::new()).build(connector);
    Ok(Some(Box::new(client)))
}

/// The ACME accounts of the issuers, registered once per process and issuer
/// settings.
#[derive(Default)]
pub struct Accounts {
    cache: tokio::sync::Mutex<HashMap<String, (String, Account)>>,
    /// Directory URL prefixes the operator may talk to; any when empty.
    allowed: Vec<String>,
}

impl Accounts {
    pub fn new(allowed: Vec<String>) -> Self {
        Self {
            cache: Default::default(),
            allowed,
        }
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
        let builder = match http_client(spec.ca_bundle.as_deref())? {
            Some(http) => Account::builder_with_http(http),
            None => Account::builder()?,
        };
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
