//! Pebble, Let's Encrypt's ACME test server, and pebble-challtestsrv as its DNS
//! server, started beside the local control plane so that certificates are
//! issued through a real ACME exchange: the ACME directory and Pebble's
//! management API on HTTPS (a certificate of the dev CA), a DNS server that
//! resolves every name to 127.0.0.1 (no AAAA answers), and HTTP-01 challenges
//! validated on a loopback port where `mutu operator run --acme-solver-addr`
//! answers them. Every port derives from the API server's port, so that the
//! dev cluster (6443) and the test cluster (16443) run side by side.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;

use super::process::Processes;
use super::{Layout, pki, step, wait_port};

/// The DNS server, then Pebble, in start order.
pub const COMPONENTS: [&str; 2] = ["pebble-challtestsrv", "pebble"];

/// The loopback ports of Pebble and its DNS server for one API server port.
pub struct Ports {
    /// Pebble's ACME directory, `https://127.0.0.1:PORT/dir` (API port + 7557).
    pub directory: u16,
    /// Pebble's management API, e.g. `/roots/0` (API port + 8557).
    pub management: u16,
    /// pebble-challtestsrv's DNS server, UDP and TCP (API port + 1610).
    pub dns: u16,
    /// pebble-challtestsrv's management API (API port + 1612).
    pub dns_management: u16,
    /// Where Pebble fetches HTTP-01 challenge responses (API port - 1441); the
    /// operator's solver listens there, nothing of `mutu dev up` does.
    pub http01: u16,
    /// Where Pebble would check TLS-ALPN-01 challenges (API port - 1442); unused.
    pub tls_alpn01: u16,
}

impl Ports {
    /// The ports for `api_port`, or an error if one of them would fall outside
    /// 1024-65535.
    pub fn new(api_port: u16) -> anyhow::Result<Self> {
        let port = |offset: i32| -> anyhow::Result<u16> {
            u16::try_from(i32::from(api_port) + offset)
                .ok()
                .filter(|p| *p >= 1024)
                .with_context(|| {
                    format!(
                        "--api-port {api_port} cannot be used: the ports of Pebble and its DNS \
                         server derive from it (API port - 1442 up to API port + 8557) and must \
                         stay within 1024-65535; choose an API port between 2466 and 56978, \
                         e.g. the default 6443"
                    )
                })
        };
        Ok(Self {
            directory: port(7557)?,
            management: port(8557)?,
            dns: port(1610)?,
            dns_management: port(1612)?,
            http01: port(-1441)?,
            tls_alpn01: port(-1442)?,
        })
    }

    /// The URL of the ACME directory.
    pub fn directory_url(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.directory)
    }

    /// The address the operator's HTTP-01 solver must listen on.
    pub fn solver_addr(&self) -> String {
        format!("127.0.0.1:{}", self.http01)
    }

    fn dns_addr(&self) -> String {
        format!("127.0.0.1:{}", self.dns)
    }
}

fn dir(layout: &Layout) -> PathBuf {
    layout.state.join("pebble")
}

/// Pebble's JSON configuration: loopback listeners with the dev CA's serving
/// certificate, HTTP-01 on the solver's port, and short retry hints.
fn config(dir: &Path, ports: &Ports) -> serde_json::Value {
    json!({
        "pebble": {
            "listenAddress": format!("127.0.0.1:{}", ports.directory),
            "managementListenAddress": format!("127.0.0.1:{}", ports.management),
            "certificate": dir.join("cert.pem"),
            "privateKey": dir.join("key.pem"),
            "httpPort": ports.http01,
            "tlsPort": ports.tls_alpn01,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "retryAfter": {"authz": 1, "order": 1},
            "keyAlgorithm": "ecdsa",
            "profiles": {
                "default": {
                    "description": "90-day certificates, like Let's Encrypt's classic profile",
                    "validityPeriod": 7776000,
                },
                "shortlived": {
                    "description": "6-day certificates, like Let's Encrypt's shortlived profile",
                    "validityPeriod": 518400,
                },
            },
        }
    })
}

/// Starts pebble-challtestsrv and Pebble unless they are running, and waits
/// until the ACME directory answers over TLS with the dev CA.
pub async fn up(
    layout: &Layout,
    procs: &Processes,
    bin: &Path,
    started: Instant,
) -> anyhow::Result<()> {
    let ports = &layout.acme;
    let dir = dir(layout);
    pki::ensure_localhost_serving(&layout.pki(), &dir, "pebble")?;
    let config_file = dir.join("config.json");
    let text = serde_json::to_string_pretty(&config(&dir, ports))?;
    std::fs::write(&config_file, text + "\n")
        .with_context(|| format!("cannot write {}", config_file.display()))?;

    let dns_args: Vec<String> = [
        "-defaultIPv4",
        "127.0.0.1",
        // No AAAA answers: Pebble would try ::1 first, where the solver does
        // not listen.
        "-defaultIPv6",
        "",
        "-dnsserver",
        &ports.dns_addr(),
        "-management",
        &format!("127.0.0.1:{}", ports.dns_management),
        // Challenges are answered by the operator, not by challtestsrv.
        "-http01",
        "",
        "-https01",
        "",
        "-tlsalpn01",
        "",
        "-doh",
        "",
    ]
    .iter()
    .map(|s| (*s).to_string())
    .collect();
    let name = "pebble-challtestsrv";
    let (pid, new) = ensure_running(procs, bin, name, &dns_args, &[], started)?;
    if new {
        wait_port(
            procs,
            name,
            pid,
            ports.dns_management,
            Duration::from_secs(30),
        )
        .await?;
    }

    let pebble_args = vec![
        "-config".to_string(),
        config_file.display().to_string(),
        "-dnsserver".to_string(),
        ports.dns_addr(),
    ];
    // No random 0-15 s pause before each validation. Pebble's default nonce
    // rejection (5 %) stays: clients must retry on badNonce.
    let env = [("PEBBLE_VA_NOSLEEP", "1")];
    let (pid, _) = ensure_running(procs, bin, "pebble", &pebble_args, &env, started)?;
    let ca = std::fs::read(layout.pki().join("ca.crt"))
        .with_context(|| format!("cannot read {}", layout.pki().join("ca.crt").display()))?;
    wait_directory(procs, pid, ports, &ca).await?;
    step(
        started,
        &format!(
            "Pebble's ACME directory answers at {} (DNS 127.0.0.1:{}, HTTP-01 challenges fetched from port {})",
            ports.directory_url(),
            ports.dns,
            ports.http01
        ),
    );
    Ok(())
}

/// Starts `bin/name args` unless it is running; returns its pid and whether it
/// was started now.
fn ensure_running(
    procs: &Processes,
    bin: &Path,
    name: &str,
    args: &[String],
    envs: &[(&str, &str)],
    started: Instant,
) -> anyhow::Result<(i32, bool)> {
    if let Some(pid) = procs.running(name) {
        step(started, &format!("{name} already running (pid {pid})"));
        return Ok((pid, false));
    }
    let pid = procs.start(name, &bin.join(name), args, envs)?;
    step(started, &format!("started {name} (pid {pid})"));
    Ok((pid, true))
}

/// Waits until `GET /dir` answers with the directory, as long as Pebble (`pid`) runs.
async fn wait_directory(
    procs: &Processes,
    pid: i32,
    ports: &Ports,
    ca: &[u8],
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let error = match https_get(ports.directory, "/dir", ca) {
            Ok((200, body)) if body.contains("newOrder") => return Ok(()),
            Ok((status, body)) => format!("HTTP {status}: {body}"),
            Err(e) => format!("{e:#}"),
        };
        if !procs.started_alive(pid) || Instant::now() > deadline {
            bail!(
                "Pebble's ACME directory {} does not answer ({error}); last lines of {}:\n{}",
                ports.directory_url(),
                procs.log_file("pebble").display(),
                procs.log_tail("pebble", 20)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A GET of `https://127.0.0.1:PORT/PATH` trusting only the CAs in `ca_pem`:
/// the status code and the body.
pub(super) fn https_get(port: u16, path: &str, ca_pem: &[u8]) -> anyhow::Result<(u16, String)> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.context("invalid PEM certificate in the dev CA")?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let server = ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
    let connection = rustls::ClientConnection::new(Arc::new(config), server)?;

    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let socket = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        .with_context(|| format!("cannot connect to {addr}"))?;
    socket.set_read_timeout(Some(Duration::from_secs(5)))?;
    socket.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut tls = rustls::StreamOwned::new(connection, socket);
    // Pebble refuses requests without a User-Agent.
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: mutu-dev\r\nConnection: close\r\n\r\n"
    );
    tls.write_all(request.as_bytes())
        .with_context(|| format!("TLS with {addr} failed"))?;
    let mut response = Vec::new();
    if let Err(e) = tls.read_to_end(&mut response) {
        // A server that closes without close_notify still sent its answer.
        if e.kind() != std::io::ErrorKind::UnexpectedEof || response.is_empty() {
            return Err(e).with_context(|| format!("cannot read the answer of {addr}"));
        }
    }
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("not an HTTP answer from {addr}: {head}"))?;
    Ok((status, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports_of(api_port: u16) -> [u16; 6] {
        let p = Ports::new(api_port).unwrap_or_else(|e| panic!("{e:#}"));
        [
            p.directory,
            p.management,
            p.dns,
            p.dns_management,
            p.http01,
            p.tls_alpn01,
        ]
    }

    #[test]
    fn dev_and_test_clusters_get_distinct_ports() {
        assert_eq!(ports_of(6443), [14000, 15000, 8053, 8055, 5002, 5001]);
        assert_eq!(ports_of(16443), [24000, 25000, 18053, 18055, 15002, 15001]);
        assert_eq!(ports_of(2466)[5], 1024);
        assert_eq!(ports_of(56978)[1], 65535);
    }

    #[test]
    fn api_ports_whose_derived_ports_leave_the_range_are_refused() {
        for api_port in [0, 1024, 2465, 56979, 65535] {
            let Err(e) = Ports::new(api_port) else {
                panic!("--api-port {api_port} was accepted");
            };
            assert!(e.to_string().contains("between 2466 and 56978"), "{e}");
        }
    }

    #[test]
    fn pebble_config_listens_on_loopback_only() {
        let ports = Ports::new(6443).unwrap_or_else(|e| panic!("{e:#}"));
        let c = config(Path::new("/state/pebble"), &ports);
        assert_eq!(c["pebble"]["listenAddress"], "127.0.0.1:14000");
        assert_eq!(c["pebble"]["managementListenAddress"], "127.0.0.1:15000");
        assert_eq!(c["pebble"]["httpPort"], 5002);
        assert_eq!(c["pebble"]["certificate"], "/state/pebble/cert.pem");
        assert_eq!(
            c["pebble"]["profiles"]["shortlived"]["validityPeriod"],
            518400
        );
    }
}
