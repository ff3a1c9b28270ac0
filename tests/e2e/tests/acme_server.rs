//! `mutu dev up` runs Pebble beside the control plane: its ACME directory and
//! management API answer over TLS with the dev CA that the `dev-acme` issuer
//! carries, pebble-challtestsrv resolves every name to 127.0.0.1, and the
//! issuers `dev-acme` and `dev-ca` exist. The ports derive from the API
//! server's port (16443 for `make test`: directory 24000, management 25000,
//! DNS 18053, HTTP-01 15002), read from the kubeconfig.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use mutu_api::CertificateIssuer;
use mutu_runtime::testing;

/// Pebble's ports for the control plane of `KUBECONFIG`, as `mutu dev up` derives them.
struct Ports {
    directory: u16,
    management: u16,
    dns: u16,
}

async fn ports() -> anyhow::Result<Ports> {
    let config = kube::Config::infer()
        .await
        .context("no kubeconfig; run the tests through `make test`")?;
    let api = config
        .cluster_url
        .port_u16()
        .context("the kubeconfig's server URL names no port")?;
    Ok(Ports {
        directory: api + 7557,
        management: api + 8557,
        dns: api + 1610,
    })
}

/// The CA bundle of the `dev-acme` issuer, written to a file of this test's own.
struct CaFile(PathBuf);

impl CaFile {
    async fn of_dev_acme() -> anyhow::Result<Self> {
        let client = testing::client().await?;
        let issuer = Api::<CertificateIssuer>::all(client)
            .get("dev-acme")
            .await?;
        let bundle = issuer
            .spec
            .acme
            .and_then(|acme| acme.ca_bundle)
            .context("the dev-acme issuer has no spec.acme.caBundle")?;
        let path =
            std::env::temp_dir().join(format!("{}.pem", testing::unique_name("dev-acme-ca")));
        std::fs::write(&path, bundle)?;
        Ok(Self(path))
    }
}

impl Drop for CaFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `curl --cacert CA URL`: the body, or an error with curl's message.
fn curl(ca: Option<&CaFile>, url: &str) -> anyhow::Result<String> {
    let mut command = Command::new("curl");
    command.args(["--silent", "--show-error", "--fail", "--max-time", "10"]);
    if let Some(ca) = ca {
        command.arg("--cacert").arg(&ca.0);
    }
    let out = command
        .arg(url)
        .output()
        .context("cannot run curl (it must be on the PATH)")?;
    if !out.status.success() {
        bail!(
            "curl {url} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn acme_directory_answers_over_tls_trusting_the_dev_acme_ca_bundle() -> anyhow::Result<()> {
    let ports = ports().await?;
    let ca = CaFile::of_dev_acme().await?;
    let url = format!("https://127.0.0.1:{}/dir", ports.directory);

    let directory: serde_json::Value = serde_json::from_str(&curl(Some(&ca), &url)?)?;
    let base = format!("https://127.0.0.1:{}/", ports.directory);
    for field in ["newNonce", "newAccount", "newOrder"] {
        let value = directory[field].as_str().unwrap_or_default();
        assert!(
            value.starts_with(&base),
            "directory field {field} is {value:?}, not a URL under {base}: {directory}"
        );
    }
    for profile in ["default", "shortlived"] {
        assert!(
            directory["meta"]["profiles"].get(profile).is_some(),
            "profile {profile} missing from the directory: {directory}"
        );
    }

    let untrusted = curl(None, &url);
    assert!(
        untrusted.is_err(),
        "the directory's certificate is trusted without the dev CA"
    );
    Ok(())
}

#[tokio::test]
async fn management_api_serves_pebbles_root_certificate() -> anyhow::Result<()> {
    let ports = ports().await?;
    let ca = CaFile::of_dev_acme().await?;
    let url = format!("https://127.0.0.1:{}/roots/0", ports.management);
    let root = curl(Some(&ca), &url)?;
    assert!(
        root.starts_with("-----BEGIN CERTIFICATE-----")
            && root.trim_end().ends_with("-----END CERTIFICATE-----"),
        "{url} is not a PEM certificate: {root}"
    );
    Ok(())
}

#[tokio::test]
async fn dev_issuers_and_the_operator_namespace_exist() -> anyhow::Result<()> {
    let ports = ports().await?;
    let client = testing::client().await?;
    Api::<Namespace>::all(client.clone())
        .get("mutu-system")
        .await
        .context("the operator's namespace mutu-system")?;
    let issuers: Api<CertificateIssuer> = Api::all(client);

    let acme_issuer = issuers.get("dev-acme").await?;
    let acme = acme_issuer.spec.acme.context("dev-acme has no spec.acme")?;
    assert_eq!(
        acme.server,
        format!("https://127.0.0.1:{}/dir", ports.directory)
    );
    assert_eq!(acme.email, "hosting@mutu.test");
    assert_eq!(acme.account_key_secret_ref.name, "dev-acme-account");
    let bundle = acme.ca_bundle.unwrap_or_default();
    assert!(
        bundle.starts_with("-----BEGIN CERTIFICATE-----"),
        "dev-acme's caBundle is not PEM: {bundle:?}"
    );
    assert!(acme_issuer.spec.ca.is_none() && acme_issuer.spec.self_signed.is_none());

    let ca_issuer = issuers.get("dev-ca").await?;
    let ca = ca_issuer.spec.ca.context("dev-ca has no spec.ca")?;
    assert_eq!(ca.secret_name, "dev-ca");
    assert!(ca.create, "dev-ca must create its CA");
    assert!(ca_issuer.spec.acme.is_none() && ca_issuer.spec.self_signed.is_none());
    Ok(())
}

#[tokio::test]
async fn challtestsrv_resolves_any_name_to_loopback_ipv4_only() -> anyhow::Result<()> {
    let ports = ports().await?;
    let server = format!("127.0.0.1:{}", ports.dns);
    let a = dns_query(&server, "www.mons.be", TYPE_A).await?;
    assert_eq!(a, vec![vec![127, 0, 0, 1]], "A records of www.mons.be");
    let aaaa = dns_query(&server, "www.mons.be", TYPE_AAAA).await?;
    assert!(
        aaaa.is_empty(),
        "www.mons.be has AAAA records {aaaa:?}: Pebble would validate on ::1"
    );
    Ok(())
}

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;

/// One DNS query over UDP: the data of the answers of type `qtype`.
async fn dns_query(server: &str, name: &str, qtype: u16) -> anyhow::Result<Vec<Vec<u8>>> {
    let id: u16 = 0x6d75;
    // Header: id, flags (recursion desired), 1 question, no other records.
    let mut query: Vec<u8> = Vec::new();
    for word in [id, 0x0100, 1, 0, 0, 0] {
        query.extend(word.to_be_bytes());
    }
    for label in name.split('.') {
        query.push(u8::try_from(label.len())?);
        query.extend(label.as_bytes());
    }
    query.push(0);
    query.extend(qtype.to_be_bytes());
    query.extend(1u16.to_be_bytes()); // class IN

    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    socket.send_to(&query, server).await?;
    let mut buf = [0u8; 1500];
    let len = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buf))
        .await
        .with_context(|| format!("no DNS answer from {server} within 5 s"))??;
    let msg = &buf[..len];

    let word = |at: usize| -> anyhow::Result<u16> {
        msg.get(at..at + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .context("truncated DNS message")
    };
    if word(0)? != id {
        bail!("DNS answer with another id");
    }
    let rcode = word(2)? & 0x000f;
    if rcode != 0 {
        bail!("DNS answer with rcode {rcode}");
    }
    let answers = word(6)?;
    // Skips a name: labels up to a zero byte, or up to a compression pointer.
    let skip_name = |mut at: usize| -> anyhow::Result<usize> {
        loop {
            let len = *msg.get(at).context("truncated DNS name")?;
            if len & 0xc0 == 0xc0 {
                return Ok(at + 2);
            }
            at += 1 + usize::from(len);
            if len == 0 {
                return Ok(at);
            }
        }
    };
    let mut at = skip_name(12)? + 4;
    let mut found = Vec::new();
    for _ in 0..answers {
        at = skip_name(at)?;
        let rtype = word(at)?;
        let rdlen = usize::from(word(at + 8)?);
        let data = msg
            .get(at + 10..at + 10 + rdlen)
            .context("truncated DNS record")?;
        if rtype == qtype {
            found.push(data.to_vec());
        }
        at += 10 + rdlen;
    }
    Ok(found)
}
