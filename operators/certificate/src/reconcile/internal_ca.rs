//! Issuing without ACME: signed by the internal CA (its certificate and key
//! in a Secret of the operator's namespace) or self-signed, in one step.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::Api;
use mutu_api::{Certificate, CertificateIssuer};

use super::Step;
use super::context::{Ctx, Error};
use super::private_key::issuance_key;
use super::tls_secret::secret_text;
use crate::pki;

/// Lifetime of certificates from the internal CA or self-signed when the spec sets none.
pub const DEFAULT_LIFETIME: SignedDuration = SignedDuration::from_hours(24 * 90);

/// Issuance by the internal CA or self-signed: immediate.
pub(super) async fn local_step(
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
