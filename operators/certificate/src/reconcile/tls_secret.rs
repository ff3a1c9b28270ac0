//! The `kubernetes.io/tls` Secret a Certificate fills: whether what it holds
//! still serves the spec (pure), reading it, and writing a new certificate
//! and key into it.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, ObjectMeta};
use kube::runtime::reflector::ObjectRef;
use mutu_api::Certificate;

use super::context::{Ctx, Error};
use crate::budget;
use crate::pki::{self, Inspected};

/// Annotations on the Secret: which Certificate and issuer it belongs to, and
/// the hash of the spec it was issued for.
pub const CERTIFICATE_ANNOTATION: &str = "hosting.imio.be/certificate";
pub const ISSUER_ANNOTATION: &str = "hosting.imio.be/issuer";
pub const ISSUED_FOR_ANNOTATION: &str = "hosting.imio.be/issued-for";
/// Component label of the Secrets this controller writes.
pub const SECRET_COMPONENT: &str = "certificate";

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

pub(super) fn secret_text(secret: &Secret, key: &str) -> Option<String> {
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

/// The Secret `name`, from the cache or, when the cache has none (a Secret
/// mutu did not label), from the API server.
pub(super) async fn read_secret(ctx: &Ctx, ns: &str, name: &str) -> Result<Option<Secret>, Error> {
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
pub(super) async fn write_secret(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki;
    use k8s_openapi::jiff::SignedDuration;

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
}
