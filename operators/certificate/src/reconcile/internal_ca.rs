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
    let lifetime = lifetime(cert);
    let ca = match &issuer.spec.ca {
        Some(ca_spec) => {
            let namespace = &ctx.data.config.namespace;
            let api: Api<Secret> = Api::namespaced(ctx.client().clone(), namespace);
            let ca_secret =
                api.get_opt(&ca_spec.secret_name)
                    .await
                    .map_err(|source| Error::Secret {
                        name: format!("{namespace}/{}", ca_spec.secret_name),
                        source,
                    })?;
            match load_ca(ca_secret.as_ref(), namespace, &ca_spec.secret_name) {
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

/// The lifetime the spec asks for, or the default.
fn lifetime(cert: &Certificate) -> SignedDuration {
    cert.spec
        .duration
        .and_then(|d| SignedDuration::try_from(std::time::Duration::from(d)).ok())
        .unwrap_or(DEFAULT_LIFETIME)
}

/// The internal CA from its Secret `namespace/name`, or why it cannot sign.
fn load_ca(secret: Option<&Secret>, namespace: &str, name: &str) -> Result<pki::Ca, String> {
    secret
        .and_then(|s| Some((secret_text(s, "tls.crt")?, secret_text(s, "tls.key")?)))
        .ok_or_else(|| {
            format!("the CA Secret {namespace}/{name} does not exist or lacks tls.crt and tls.key")
        })
        .and_then(|(c, k)| pki::Ca::load(&c, &k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use mutu_api::CertificateSpec;
    use std::collections::BTreeMap;

    fn cert(yaml: &str) -> Certificate {
        let spec: CertificateSpec = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        Certificate::new("www", spec)
    }

    const SPEC: &str = "dnsNames: [www.mons.be]\nsecretName: www-tls\nissuerRef: {name: dev-ca}\n";

    #[test]
    fn the_lifetime_is_the_spec_s_or_ninety_days() {
        assert_eq!(lifetime(&cert(SPEC)), DEFAULT_LIFETIME);
        let short = cert(&format!("{SPEC}duration: 48h\n"));
        assert_eq!(lifetime(&short), SignedDuration::from_hours(48));
    }

    #[test]
    fn the_ca_loads_from_its_secret_or_says_what_is_missing() {
        let missing = load_ca(None, "mutu-system", "dev-ca");
        assert_eq!(
            missing.err().as_deref(),
            Some("the CA Secret mutu-system/dev-ca does not exist or lacks tls.crt and tls.key")
        );
        let now = k8s_openapi::jiff::Timestamp::now();
        let (crt, key) = pki::new_ca("dev", now).unwrap_or_else(|e| panic!("{e}"));
        let secret = Secret {
            data: Some(BTreeMap::from([
                ("tls.crt".to_string(), ByteString(crt.into_bytes())),
                ("tls.key".to_string(), ByteString(key.into_bytes())),
            ])),
            ..Default::default()
        };
        assert!(load_ca(Some(&secret), "mutu-system", "dev-ca").is_ok());
    }
}
