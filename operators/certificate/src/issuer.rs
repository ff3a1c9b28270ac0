//! One reconcile of a CertificateIssuer: register the ACME account (its key
//! kept in a Secret), or load (and, when asked, create) the internal CA, and
//! say in the status whether certificates can be issued.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use mutu_api::CertificateIssuer;
use mutu_api::issuer::CertificateIssuerStatus;
use mutu_runtime::conditions::Desired as Cond;
use mutu_runtime::{Context, Reason};

use crate::acme::{self, AcmeError};
use crate::pki;

/// What the issuer controller shares with the certificate controller.
pub struct Caches {
    pub namespace: String,
    pub accounts: Arc<acme::Accounts>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write the CertificateIssuer status: {0}")]
    Status(#[source] kube::Error),
    #[error("cannot read or create Secret {name}: {source}")]
    Secret {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot create the CA: {0}")]
    Crypto(String),
}

impl Reason for Error {
    fn reason(&self) -> &'static str {
        match self {
            Error::Status(_) => "StatusFailed",
            Error::Secret { .. } => "SecretFailed",
            Error::Crypto(_) => "CryptoFailed",
        }
    }
}

type Ctx = Context<Caches>;

pub async fn reconcile(issuer: Arc<CertificateIssuer>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let name = issuer.name_any();
    let api: Api<CertificateIssuer> = Api::all(ctx.client().clone());
    let mut status = CertificateIssuerStatus {
        observed_generation: issuer.meta().generation,
        ..Default::default()
    };
    let (ok, reason, message, retry) = if let Some(acme_spec) = &issuer.spec.acme {
        status.r#type = Some("ACME".into());
        match ctx
            .data
            .accounts
            .get(ctx.client(), &ctx.data.namespace, &name, acme_spec)
            .await
        {
            Ok(account) => {
                status.acme_account_uri = Some(account.id().to_string());
                (
                    true,
                    "Registered",
                    format!("ACME account registered at {}", acme_spec.server),
                    None,
                )
            }
            Err(e) => {
                ctx.data.accounts.forget(&name).await;
                let reason = match e {
                    AcmeError::Config(_) => "InvalidSettings",
                    AcmeError::Refused(_) => "RegistrationRefused",
                    _ => "ServerUnavailable",
                };
                (false, reason, e.to_string(), Some(Duration::from_secs(30)))
            }
        }
    } else if let Some(ca) = &issuer.spec.ca {
        status.r#type = Some("CA".into());
        let secrets: Api<Secret> = Api::namespaced(ctx.client().clone(), &ctx.data.namespace);
        let secret_err = |source| Error::Secret {
            name: format!("{}/{}", ctx.data.namespace, ca.secret_name),
            source,
        };
        let mut secret = secrets.get_opt(&ca.secret_name).await.map_err(secret_err)?;
        if secret.is_none() && ca.create {
            let (crt, key) = pki::new_ca(&format!("mutu {name} CA"), mutu_runtime::status::now())
                .map_err(|e| Error::Crypto(e.to_string()))?;
            let obj = ca_secret(&ca.secret_name, &name, &crt, &key);
            match secrets.create(&PostParams::default(), &obj).await {
                Ok(s) => {
                    ctx.metrics.write(ctx.name, "create", "Secret");
                    ctx.event(
                        &*issuer,
                        false,
                        "CACreated",
                        format!(
                            "created a new CA in Secret {}/{}",
                            ctx.data.namespace, ca.secret_name
                        ),
                    )
                    .await;
                    secret = Some(s);
                }
                Err(e) if mutu_runtime::create::already_exists(&e) => {
                    secret = secrets.get_opt(&ca.secret_name).await.map_err(secret_err)?;
                }
                Err(e) => return Err(secret_err(e)),
            }
        }
        match secret {
            None => (
                false,
                "SecretNotFound",
                format!(
                    "Secret {}/{} does not exist; put the CA's tls.crt and tls.key there, or set spec.ca.create: true",
                    ctx.data.namespace, ca.secret_name
                ),
                None,
            ),
            Some(s) => {
                let text = |k: &str| {
                    s.data
                        .as_ref()
                        .and_then(|d| d.get(k))
                        .and_then(|v| String::from_utf8(v.0.clone()).ok())
                        .unwrap_or_default()
                };
                let loaded = pki::Ca::load(&text("tls.crt"), &text("tls.key")).and_then(|ca| {
                    let certs = pki::pem_certs(&ca.cert_pem)?;
                    pki::inspect(&certs[0])
                });
                match loaded {
                    Ok(ins) => (
                        true,
                        "Loaded",
                        format!(
                            "CA from Secret {}/{}, valid until {}",
                            ctx.data.namespace, ca.secret_name, ins.not_after
                        ),
                        None,
                    ),
                    Err(e) => (
                        false,
                        "InvalidCA",
                        format!("Secret {}/{}: {e}", ctx.data.namespace, ca.secret_name),
                        None,
                    ),
                }
            }
        }
    } else {
        status.r#type = Some("SelfSigned".into());
        (
            true,
            "SelfSigned",
            "each certificate is signed by its own key".to_string(),
            None,
        )
    };
    ctx.write_status(
        &api,
        &issuer,
        status,
        &[Cond::new(mutu_api::CONDITION_READY, ok, reason, message)],
    )
    .await
    .map_err(Error::Status)?;
    Ok(match retry {
        Some(after) => Action::requeue(after),
        None => ctx.requeue(),
    })
}

fn ca_secret(secret: &str, issuer: &str, crt: &str, key: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(secret.to_string()),
            labels: Some(BTreeMap::from([
                (
                    mutu_api::MANAGED_BY.to_string(),
                    mutu_api::MANAGED_BY_VALUE.to_string(),
                ),
                (mutu_api::COMPONENT.to_string(), "ca".to_string()),
            ])),
            annotations: Some(BTreeMap::from([(
                crate::reconcile::ISSUER_ANNOTATION.to_string(),
                issuer.to_string(),
            )])),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(BTreeMap::from([
            ("tls.crt".to_string(), ByteString(crt.as_bytes().to_vec())),
            ("tls.key".to_string(), ByteString(key.as_bytes().to_vec())),
            ("ca.crt".to_string(), ByteString(crt.as_bytes().to_vec())),
        ])),
        ..Default::default()
    }
}
