//! The certificate controller's operator-wide settings, the caches and shared
//! state (ACME accounts, rate-limit budget, challenge tokens) it works with,
//! and why a reconcile can fail.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::reflector::Store;
use mutu_api::{Certificate, CertificateIssuer, MemberTenant};
use mutu_runtime::{ApplyError, Context, Reason};

use super::renewal::Window;
use crate::acme::{self, AcmeError};
use crate::budget;
use crate::metrics::CertMetrics;
use crate::solver::{Route, Tokens};

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
pub struct Caches {
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

impl Caches {
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

pub type Ctx = Context<Caches>;
