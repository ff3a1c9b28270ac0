//! `mutu portal`: the members' portal (see the `mutu_portal` crate), behind
//! the cooperative's authenticating proxy.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use anyhow::Context as _;
use clap::Args;
use tracing::info;

#[derive(Args)]
pub struct PortalArgs {
    /// A YAML file of settings: sections `operator`, `portal` and `log`, whose
    /// keys are the long flags' names (see the README). Flags and environment
    /// variables win over it.
    #[arg(long, env = "MUTU_CONFIG", value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// Address the portal is served on.
    #[arg(long, env = "MUTU_PORTAL_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Address of the authenticating proxy (e.g. oauth2-proxy), the only one
    /// whose X-Forwarded-User and X-Forwarded-Groups headers are believed
    /// (comma-separated for several).
    #[arg(
        long,
        env = "MUTU_PORTAL_TRUSTED_PROXY",
        value_delimiter = ',',
        required = true,
        value_name = "ADDR"
    )]
    trusted_proxy: Vec<String>,
}

/// An address as an IP, accepting `host:port` too (the port is ignored).
fn parse_ip(text: &str) -> anyhow::Result<IpAddr> {
    let text = text.trim();
    text.parse::<IpAddr>()
        .or_else(|_| text.parse::<SocketAddr>().map(|a| a.ip()))
        .map_err(|_| {
            anyhow::anyhow!(
                "--trusted-proxy: {text:?} is not an IP address; give the proxy's address as it connects to the portal, e.g. 10.0.0.12"
            )
        })
}

/// Serves the portal until SIGTERM or Ctrl-C.
pub async fn run(args: PortalArgs) -> anyhow::Result<()> {
    if let Some(file) = &args.config {
        tracing::info!(file = %file.display(), "settings read from the configuration file");
    }
    let trusted: BTreeSet<IpAddr> = args
        .trusted_proxy
        .iter()
        .filter(|t| !t.trim().is_empty())
        .map(|t| parse_ip(t))
        .collect::<anyhow::Result<_>>()?;
    if trusted.is_empty() {
        anyhow::bail!("--trusted-proxy: name the authenticating proxy's address, e.g. 10.0.0.12");
    }
    let kube = kube::Config::infer()
        .await
        .context("cannot find how to reach Kubernetes (set KUBECONFIG, or run in a pod)")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    info!(addr = %listener.local_addr()?, trusted = ?trusted, "serving the portal");
    mutu_portal::serve(
        listener,
        mutu_portal::Config {
            trusted_proxies: trusted,
            kube,
        },
        crate::operator::shutdown_signal(),
    )
    .await?;
    info!("stopped cleanly");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proxy_is_an_ip_with_or_without_port() {
        assert_eq!(
            parse_ip("10.0.0.12").ok(),
            Some(IpAddr::from([10, 0, 0, 12]))
        );
        assert_eq!(
            parse_ip("127.0.0.1:4180").ok(),
            Some(IpAddr::from([127, 0, 0, 1]))
        );
        let e = parse_ip("proxy.local")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("not an IP address"), "{e}");
    }
}
