//! Helpers of the certificate tests: creating Certificates, reading their
//! Secrets, checking chains with openssl, and Pebble's issuing root.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use kube::Client;
use kube::api::{Api, PostParams};
use mutu_api::{Certificate, CertificateIssuer};
use mutu_runtime::conditions;
use mutu_runtime::testing::{unique_name, wait_for};
use serde_json::json;

/// A Certificate for `names` issued by `issuer` into Secret `<name>-tls`.
pub fn certificate_json(ns: &str, name: &str, names: &[String], issuer: &str) -> serde_json::Value {
    json!({
        "apiVersion": mutu_api::API_VERSION,
        "kind": "Certificate",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "dnsNames": names,
            "secretName": format!("{name}-tls"),
            "issuerRef": {"name": issuer},
        },
    })
}

/// Creates the Certificate `value`.
pub async fn create_certificate(
    client: &Client,
    value: serde_json::Value,
) -> anyhow::Result<Certificate> {
    let cert: Certificate = serde_json::from_value(value)?;
    let ns = cert.metadata.namespace.clone().unwrap_or_default();
    Ok(Api::<Certificate>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &cert)
        .await?)
}

/// Waits until the Certificate is Ready and `extra` holds.
pub async fn wait_certificate(
    client: &Client,
    ns: &str,
    name: &str,
    timeout: Duration,
    what: &str,
    extra: impl Fn(&Certificate) -> bool + Send + 'static,
) -> anyhow::Result<Certificate> {
    let api: Api<Certificate> = Api::namespaced(client.clone(), ns);
    Ok(
        wait_for(&api, name, timeout, what, move |c: Option<&Certificate>| {
            c.is_some_and(|c| {
                c.status
                    .as_ref()
                    .is_some_and(|s| conditions::is_true(&s.conditions, "Ready"))
                    && extra(c)
            })
        })
        .await?,
    )
}

/// The condition `type_` of a Certificate: (status, reason, message).
pub fn condition(cert: &Certificate, type_: &str) -> Option<(String, String, String)> {
    let status = cert.status.as_ref()?;
    conditions::find(&status.conditions, type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// The PEM texts of a TLS Secret: (tls.crt, tls.key, ca.crt).
pub async fn secret_pems(
    client: &Client,
    ns: &str,
    name: &str,
) -> anyhow::Result<(String, String, Option<String>)> {
    let secret = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), ns)
        .get(name)
        .await?;
    anyhow::ensure!(
        secret.type_.as_deref() == Some("kubernetes.io/tls"),
        "Secret {ns}/{name} is of type {:?}",
        secret.type_
    );
    let data = secret.data.unwrap_or_default();
    let text = |k: &str| {
        data.get(k)
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
    };
    Ok((
        text("tls.crt").ok_or_else(|| anyhow::anyhow!("no tls.crt"))?,
        text("tls.key").ok_or_else(|| anyhow::anyhow!("no tls.key"))?,
        text("ca.crt"),
    ))
}

/// A scratch directory of the test's own.
pub fn scratch(prefix: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(unique_name(&format!("mutu-{prefix}")));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Runs openssl; its stdout, or an error with its stderr.
pub fn openssl(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("openssl").args(args).output()?;
    anyhow::ensure!(
        out.status.success(),
        "openssl {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Splits a PEM bundle into its certificates.
pub fn split_pem(bundle: &str) -> Vec<String> {
    bundle
        .split_inclusive("-----END CERTIFICATE-----")
        .map(str::trim)
        .filter(|p| p.contains("BEGIN CERTIFICATE"))
        .map(|p| format!("{p}\n"))
        .collect()
}

/// Checks with openssl that `chain` (leaf first, then intermediates) verifies
/// up to `root`, for TLS servers, that its names are exactly `names`, and that
/// `key` is the leaf's key.
pub fn verify(chain: &str, key: &str, root: &str, names: &[String]) -> anyhow::Result<()> {
    let dir = scratch("verify")?;
    let certs = split_pem(chain);
    anyhow::ensure!(!certs.is_empty(), "tls.crt holds no certificate");
    let leaf = dir.join("leaf.pem");
    std::fs::write(&leaf, &certs[0])?;
    let untrusted = dir.join("untrusted.pem");
    std::fs::write(&untrusted, certs[1..].concat())?;
    let root_file = dir.join("root.pem");
    std::fs::write(&root_file, root)?;
    let key_file = dir.join("key.pem");
    std::fs::write(&key_file, key)?;
    let p = |f: &PathBuf| f.display().to_string();
    let mut args = vec!["verify", "-purpose", "sslserver"];
    let (root_s, untrusted_s, leaf_s) = (p(&root_file), p(&untrusted), p(&leaf));
    args.extend(["-CAfile", &root_s]);
    if certs.len() > 1 {
        args.extend(["-untrusted", &untrusted_s]);
    }
    args.push(&leaf_s);
    let out = openssl(&args)?;
    anyhow::ensure!(out.contains(": OK"), "openssl verify: {out}");

    let san = openssl(&["x509", "-noout", "-ext", "subjectAltName", "-in", &leaf_s])?;
    let mut got: Vec<String> = san
        .split([',', '\n'])
        .filter_map(|s| s.trim().strip_prefix("DNS:").map(str::to_string))
        .collect();
    got.sort();
    let mut want = names.to_vec();
    want.sort();
    anyhow::ensure!(got == want, "the certificate names {got:?}, not {want:?}");

    let cert_pub = openssl(&["x509", "-noout", "-pubkey", "-in", &leaf_s])?;
    let key_pub = openssl(&["pkey", "-pubout", "-in", &p(&key_file)])?;
    anyhow::ensure!(
        cert_pub == key_pub,
        "tls.key is not the key of the certificate"
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The port of the API server of `KUBECONFIG` (the other local ports derive from it).
pub fn api_port() -> anyhow::Result<u16> {
    let path = std::env::var("KUBECONFIG").map_err(|_| anyhow::anyhow!("KUBECONFIG is not set"))?;
    let text = std::fs::read_to_string(&path)?;
    let server = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .ok_or_else(|| anyhow::anyhow!("no server in {path}"))?;
    let port = server
        .rsplit(':')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no port in {server}"))?;
    Ok(port)
}

/// Pebble's issuing root (from its management API), fetched trusting only the
/// dev-acme issuer's CA bundle.
pub async fn pebble_root(client: &Client) -> anyhow::Result<String> {
    let issuer = Api::<CertificateIssuer>::all(client.clone())
        .get("dev-acme")
        .await?;
    let bundle = issuer
        .spec
        .acme
        .and_then(|a| a.ca_bundle)
        .ok_or_else(|| anyhow::anyhow!("dev-acme has no caBundle"))?;
    let dir = scratch("pebble-root")?;
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, bundle)?;
    let url = format!("https://127.0.0.1:{}/roots/0", api_port()? + 8557);
    let out = Command::new("curl")
        .args(["-fsS", "--cacert", &ca.display().to_string(), &url])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "cannot fetch {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
