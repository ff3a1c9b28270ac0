//! Private keys of certificates: the Secret's own key kept with
//! `rotationPolicy: Never`, and the key of an ACME order in progress, kept in
//! its own Secret so that an operator restart mid-order loses nothing.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use kube::api::{Api, ObjectMeta, PostParams};
use mutu_api::Certificate;
use mutu_api::certificate::RotationPolicy;

use super::context::{Ctx, Error};
use super::tls_secret::secret_text;
use crate::pki;

/// Component label of the Secret holding the key of an order in progress.
pub const NEXT_KEY_COMPONENT: &str = "certificate-next-key";

/// The key of a new certificate: the Secret's own with `rotationPolicy: Never`
/// (when it has a usable one), a new one otherwise.
pub(super) fn issuance_key(
    cert: &Certificate,
    secret: Option<&Secret>,
) -> Result<rcgen::KeyPair, Error> {
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
pub(super) async fn next_key(
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
    let obj = next_key_secret(cert, &name, &ns, &pem);
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => {
            ctx.metrics.write(ctx.name, "create", "Secret");
            Ok(Some(pem))
        }
        Err(e) if mutu_runtime::create::already_exists(&e) => {
            Box::pin(next_key(ctx, cert, secret, false)).await
        }
        Err(source) => Err(err(source)),
    }
}

/// The Secret `ns/name` keeping the key `pem` of an order in progress,
/// owned by the Certificate (deleting it deletes the key).
fn next_key_secret(cert: &Certificate, name: &str, ns: &str, pem: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(ns.to_string()),
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
            ByteString(pem.as_bytes().to_vec()),
        )])),
        ..Default::default()
    }
}

/// Deletes the Secret of the order's key, once the certificate is stored.
pub(super) async fn delete_next_key(ctx: &Ctx, ns: &str, secret_name: &str) -> Result<(), Error> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use mutu_api::CertificateSpec;

    #[test]
    fn the_order_key_secret_is_named_after_the_tls_secret_and_owned_by_the_certificate() {
        assert_eq!(next_key_name("www-tls"), "www-tls-next-key");
        assert_eq!(
            next_key_name(&"a".repeat(250)).len(),
            240 + "-next-key".len()
        );
        let spec: CertificateSpec = serde_saphyr::from_str(
            "dnsNames: [www.mons.be]\nsecretName: www-tls\nissuerRef: {name: dev-ca}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut cert = Certificate::new("www", spec);
        cert.metadata.uid = Some("u-1".into());
        let s = next_key_secret(&cert, "www-tls-next-key", "tenant-mons", "PEM");
        assert_eq!(s.metadata.namespace.as_deref(), Some("tenant-mons"));
        let owner = &s.metadata.owner_references.unwrap_or_default()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Certificate", "u-1")
        );
        assert_eq!(owner.controller, Some(true));
        let data = s.data.unwrap_or_default();
        assert_eq!(
            data.get("tls.key").map(|v| v.0.as_slice()),
            Some(&b"PEM"[..])
        );
        assert_eq!(
            s.metadata
                .labels
                .unwrap_or_default()
                .get(mutu_api::COMPONENT)
                .map(String::as_str),
            Some(NEXT_KEY_COMPONENT)
        );
    }
}
