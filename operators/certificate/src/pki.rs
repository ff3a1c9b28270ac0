//! Keys, certificates and CSRs (pure): reading what a Secret holds, creating
//! an internal CA, signing a leaf with it (or with its own key), and the CSR
//! sent to an ACME server.

use std::collections::BTreeSet;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// What mutu reads of a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspected {
    pub not_before: Timestamp,
    pub not_after: Timestamp,
    /// DNS names of the subject alternative names.
    pub names: BTreeSet<String>,
    /// DER of the subject public key info, to compare with a private key.
    pub spki: Vec<u8>,
    /// The ACME renewal-information identifier (authority key id and serial), when the
    /// certificate has an authority key identifier.
    pub ari_id: Option<String>,
    pub is_ca: bool,
}

impl Inspected {
    pub fn lifetime(&self) -> SignedDuration {
        self.not_after.duration_since(self.not_before)
    }
}

/// The certificates of a PEM bundle, in order.
pub fn pem_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate bundle: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in the PEM text".into());
    }
    Ok(certs)
}

/// Reads one certificate.
pub fn inspect(der: &CertificateDer<'_>) -> Result<Inspected, String> {
    let (_, cert) = X509Certificate::from_der(der.as_ref())
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let ts = |t: i64| Timestamp::from_second(t).map_err(|e| format!("bad validity date: {e}"));
    let mut names = BTreeSet::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                names.insert(dns.to_ascii_lowercase());
            }
        }
    }
    let ari_id = instant_acme::CertificateIdentifier::try_from(der)
        .ok()
        .map(|id| id.to_string());
    Ok(Inspected {
        not_before: ts(cert.validity().not_before.timestamp())?,
        not_after: ts(cert.validity().not_after.timestamp())?,
        names,
        spki: cert.tbs_certificate.subject_pki.raw.to_vec(),
        ari_id,
        is_ca: cert.is_ca(),
    })
}

/// Reads a PEM private key.
pub fn key_from_pem(pem: &str) -> Result<KeyPair, String> {
    KeyPair::from_pem(pem).map_err(|e| format!("not a usable PEM private key: {e}"))
}

/// Whether `key` is the private key of the certificate `cert`.
pub fn key_matches(key: &KeyPair, cert: &Inspected) -> bool {
    key.subject_public_key_info() == cert.spki
}

/// A new ECDSA P-256 key.
pub fn new_key() -> Result<KeyPair, rcgen::Error> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
}

/// A certificate signing request for `names`, as DER.
pub fn csr(names: &[String], key: &KeyPair) -> Result<Vec<u8>, rcgen::Error> {
    let mut params = CertificateParams::new(names.to_vec())?;
    params.distinguished_name = DistinguishedName::new();
    Ok(params.serialize_request(key)?.der().to_vec())
}

fn offset(t: Timestamp) -> Result<time::OffsetDateTime, rcgen::Error> {
    time::OffsetDateTime::from_unix_timestamp(t.as_second())
        .map_err(|_| rcgen::Error::CouldNotParseCertificationRequest)
}

/// A serial number from the system's cryptographic generator: serial numbers must be
/// unpredictable.
fn random_serial() -> Result<SerialNumber, rcgen::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|_| rcgen::Error::RingUnspecified)?;
    // A positive integer: the top bit clear, and never zero.
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

/// A new CA certificate and key (PEM), valid for ten years.
pub fn new_ca(common_name: &str, now: Timestamp) -> Result<(String, String), rcgen::Error> {
    let key = new_key()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "mutu");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = offset(now - SignedDuration::from_secs(3600))?;
    params.not_after = offset(now + SignedDuration::from_hours(24 * 3650))?;
    params.serial_number = Some(random_serial()?);
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A CA loaded from its PEM certificate and key.
pub struct Ca {
    pub cert_pem: String,
    key: KeyPair,
}

impl Ca {
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Self, String> {
        let key = key_from_pem(key_pem)?;
        let certs = pem_certs(cert_pem)?;
        let inspected = inspect(&certs[0])?;
        if !inspected.is_ca {
            return Err(
                "the certificate is not a CA certificate (basicConstraints CA:FALSE)".into(),
            );
        }
        if !key_matches(&key, &inspected) {
            return Err("the key does not belong to the CA certificate".into());
        }
        Ok(Self {
            cert_pem: cert_pem.to_string(),
            key,
        })
    }
}

/// A leaf certificate (PEM) for `names`, valid from now for `lifetime`, for the
/// public key of `key`, signed by `ca` or, without one, by `key` itself.
pub fn sign_leaf(
    names: &[String],
    key: &KeyPair,
    ca: Option<&Ca>,
    now: Timestamp,
    lifetime: SignedDuration,
) -> Result<String, rcgen::Error> {
    let mut params = CertificateParams::new(names.to_vec())?;
    let mut dn = DistinguishedName::new();
    if let Some(first) = names.first() {
        dn.push(DnType::CommonName, first.as_str());
    }
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = ca.is_some();
    // A minute of slack for clocks that lag behind.
    params.not_before = offset(now - SignedDuration::from_secs(60))?;
    params.not_after = offset(now + lifetime)?;
    params.serial_number = Some(random_serial()?);
    let cert = match ca {
        Some(ca) => {
            let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, &ca.key)?;
            params.signed_by(key, &issuer)?
        }
        None => params.self_signed(key)?,
    };
    Ok(cert.pem())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["www.mons.be".into(), "mons.be".into()]
    }

    #[test]
    fn a_ca_signs_leaves_for_exactly_the_names_and_the_key() {
        let now = Timestamp::from_second(1_800_000_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let (ca_pem, ca_key) = new_ca("mutu test CA", now).unwrap_or_default();
        let ca = Ca::load(&ca_pem, &ca_key).unwrap_or_else(|e| panic!("{e}"));
        let key = new_key().unwrap_or_else(|e| panic!("{e}"));
        let pem = sign_leaf(
            &names(),
            &key,
            Some(&ca),
            now,
            SignedDuration::from_hours(24),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let certs = pem_certs(&pem).unwrap_or_else(|e| panic!("{e}"));
        let leaf = inspect(&certs[0]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            leaf.names,
            BTreeSet::from(["mons.be".to_string(), "www.mons.be".to_string()])
        );
        assert!(key_matches(&key, &leaf));
        assert!(!key_matches(
            &new_key().unwrap_or_else(|e| panic!("{e}")),
            &leaf
        ));
        assert!(!leaf.is_ca);
        assert_eq!(leaf.not_after, now + SignedDuration::from_hours(24));
        assert!(
            leaf.ari_id.is_some(),
            "a CA-signed leaf names its authority key"
        );
    }

    #[test]
    fn a_ca_secret_whose_key_does_not_match_is_refused() {
        let now = Timestamp::from_second(1_800_000_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let (ca_pem, _) = new_ca("one", now).unwrap_or_default();
        let (_, other_key) = new_ca("two", now).unwrap_or_default();
        let err = Ca::load(&ca_pem, &other_key).err().unwrap_or_default();
        assert!(err.contains("does not belong"), "{err}");
    }

    #[test]
    fn self_signed_leaves_verify_with_their_own_key() {
        let now = Timestamp::from_second(1_800_000_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let key = new_key().unwrap_or_else(|e| panic!("{e}"));
        let pem = sign_leaf(&names(), &key, None, now, SignedDuration::from_hours(1))
            .unwrap_or_else(|e| panic!("{e}"));
        let leaf =
            inspect(&pem_certs(&pem).unwrap_or_default()[0]).unwrap_or_else(|e| panic!("{e}"));
        assert!(key_matches(&key, &leaf));
        assert_eq!(leaf.lifetime(), SignedDuration::from_secs(3660));
    }

    #[test]
    fn garbage_is_reported_not_panicked_on() {
        assert!(pem_certs("hello").is_err());
        assert!(
            key_from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err()
        );
    }
}
