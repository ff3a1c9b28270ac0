//! The local control plane's PKI: one CA, the API server's serving certificate,
//! a client certificate per component, and the service-account signing key;
//! and, signed by the same CA, the serving certificate of Pebble's HTTPS
//! listeners. Generated once per state directory and reused by later
//! `mutu dev up` runs.

use std::path::Path;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, date_time_ymd,
};

/// A client identity of the control plane: file stem, common name, organisation.
pub struct Identity {
    pub stem: &'static str,
    pub common_name: &'static str,
    pub organization: Option<&'static str>,
}

/// Everyone who talks to the API server with a client certificate.
pub const IDENTITIES: &[Identity] = &[
    Identity {
        stem: "admin",
        common_name: "mutu-admin",
        organization: Some("system:masters"),
    },
    Identity {
        stem: "controller-manager",
        common_name: "system:kube-controller-manager",
        organization: None,
    },
    Identity {
        stem: "scheduler",
        common_name: "system:kube-scheduler",
        organization: None,
    },
    Identity {
        stem: "kwok",
        common_name: "kwok",
        organization: Some("system:masters"),
    },
    // The real nodes (`mutu dev up --nodes real`): each kubelet as its node,
    // which the Node authorizer and NodeRestriction confine to that node.
    Identity {
        stem: "node-physical-1",
        common_name: "system:node:physical-1",
        organization: Some("system:nodes"),
    },
    Identity {
        stem: "node-frontend-1",
        common_name: "system:node:frontend-1",
        organization: Some("system:nodes"),
    },
    // Bound to system:node-proxier by the API server's default policy.
    Identity {
        stem: "kube-proxy",
        common_name: "system:kube-proxy",
        organization: None,
    },
    // Given read access to pods, namespaces, nodes and NetworkPolicies by a
    // ClusterRole of `mutu dev up --nodes real`.
    Identity {
        stem: "kube-router",
        common_name: "mutu-dev:kube-router",
        organization: None,
    },
    // The API server's identity towards the kubelets (logs, exec, port-forward).
    Identity {
        stem: "apiserver-kubelet-client",
        common_name: "kube-apiserver-kubelet-client",
        organization: Some("system:masters"),
    },
];

/// Creates every file of the PKI under `dir` unless the CA already exists there.
pub fn ensure(dir: &Path) -> anyhow::Result<()> {
    if dir.join("ca.crt").exists() && dir.join("sa.key").exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = name("mutu-dev-ca", None);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut ca_params);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    write(dir, "ca.crt", &ca_cert.pem())?;
    write(dir, "ca.key", &ca_key.serialize_pem())?;
    let issuer = Issuer::new(ca_params, ca_key);

    let serving_key = KeyPair::generate()?;
    let mut serving = CertificateParams::new(vec![
        "localhost".to_string(),
        "kubernetes".to_string(),
        "kubernetes.default".to_string(),
        "kubernetes.default.svc".to_string(),
        "kubernetes.default.svc.cluster.local".to_string(),
    ])?;
    serving
        .subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    serving
        .subject_alt_names
        .push(SanType::IpAddress([10, 96, 0, 1].into()));
    // Where the real nodes and their pods reach it (`mutu dev up --nodes real`).
    serving
        .subject_alt_names
        .push(SanType::IpAddress(super::nodes::HOST_IP.into()));
    serving.distinguished_name = name("kube-apiserver", None);
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut serving);
    let cert = serving.signed_by(&serving_key, &issuer)?;
    write(dir, "apiserver.crt", &cert.pem())?;
    write(dir, "apiserver.key", &serving_key.serialize_pem())?;

    for id in IDENTITIES {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(id.common_name, id.organization);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        validity(&mut params);
        let cert = params.signed_by(&key, &issuer)?;
        write(dir, &format!("{}.crt", id.stem), &cert.pem())?;
        write(dir, &format!("{}.key", id.stem), &key.serialize_pem())?;
    }

    let sa = KeyPair::generate()?;
    write(dir, "sa.pub", &sa.public_key_pem())?;
    // Written last: its presence marks a complete PKI.
    write(dir, "sa.key", &sa.serialize_pem())?;
    Ok(())
}

/// Creates `cert.pem` and `key.pem` under `dir` unless they exist: a serving
/// certificate for 127.0.0.1 and `localhost` named `common_name`, signed by the
/// CA of the PKI in `pki` (which [`ensure`] created).
pub fn ensure_localhost_serving(pki: &Path, dir: &Path, common_name: &str) -> anyhow::Result<()> {
    if dir.join("cert.pem").exists() && dir.join("key.pem").exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let read = |file: &str| {
        let path = pki.join(file);
        std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {}; remove the state directory with `mutu dev down` and run `mutu dev up` again",
                path.display()
            )
        })
    };
    let ca_key = KeyPair::from_pem(&read("ca.key")?).context("the dev CA's key is invalid")?;
    let issuer = Issuer::from_ca_cert_pem(&read("ca.crt")?, ca_key)
        .context("the dev CA's certificate is invalid")?;

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec!["localhost".to_string()])?;
    params
        .subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    params.distinguished_name = name(common_name, None);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut params);
    let cert = params.signed_by(&key, &issuer)?;
    write(dir, "key.pem", &key.serialize_pem())?;
    // Written last: its presence marks a complete pair.
    write(dir, "cert.pem", &cert.pem())
}

fn name(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(o) = organization {
        dn.push(DnType::OrganizationName, o);
    }
    dn.push(DnType::CommonName, common_name);
    dn
}

fn validity(params: &mut CertificateParams) {
    params.not_before = date_time_ymd(2025, 1, 1);
    params.not_after = date_time_ymd(2045, 1, 1);
}

fn write(dir: &Path, file: &str, contents: &str) -> anyhow::Result<()> {
    let path = dir.join(file);
    std::fs::write(&path, contents).with_context(|| format!("cannot write {}", path.display()))
}

/// A kubeconfig for `identity` with its certificate and key embedded.
pub fn kubeconfig(dir: &Path, server: &str, stem: &str) -> anyhow::Result<String> {
    use base64::Engine;
    let b64 = |file: String| -> anyhow::Result<String> {
        let path = dir.join(&file);
        let data =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(data))
    };
    Ok(format!(
        "apiVersion: v1
kind: Config
clusters:
- name: mutu-dev
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: {stem}
  user:
    client-certificate-data: {crt}
    client-key-data: {key}
contexts:
- name: mutu-dev
  context:
    cluster: mutu-dev
    user: {stem}
current-context: mutu-dev
",
        ca = b64("ca.crt".into())?,
        crt = b64(format!("{stem}.crt"))?,
        key = b64(format!("{stem}.key"))?,
    ))
}
