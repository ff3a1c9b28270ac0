//! The operators as a child process (`mutu operator run`): started, stopped,
//! asked over HTTP whether they are ready and for their metrics, and their
//! memory read from /proc.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

/// The operators, as `mutu operator run`, with their memory sampled.
pub(super) struct Operator {
    pub(super) child: Child,
    metrics: String,
}

impl Operator {
    pub(super) fn start(
        kubeconfig: &std::path::Path,
        metrics_port: u16,
        log: &std::path::Path,
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let addr = format!("127.0.0.1:{metrics_port}");
        let child = Command::new(exe)
            .args([
                "operator",
                "run",
                "--metrics-addr",
                &addr,
                "--default-issuer",
                "dev-ca",
                "--acme-solver-addr",
                "off",
            ])
            .env("KUBECONFIG", kubeconfig)
            .env("MUTU_ACME_SERVER_ALLOW", "https://127.0.0.1:")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("cannot start the operators")?;
        Ok(Self {
            child,
            metrics: format!("http://{addr}"),
        })
    }

    pub(super) fn rss_mb(&self) -> f64 {
        rss_kb(self.child.id()) as f64 / 1024.0
    }

    pub(super) async fn wait_ready(&self) -> anyhow::Result<()> {
        let url = format!("{}/readyz", self.metrics);
        for _ in 0..300 {
            if get(&url).await.is_ok_and(|b| b.trim() == "ready") {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        anyhow::bail!("the operators did not become ready (see the log)")
    }

    pub(super) async fn metrics(&self) -> anyhow::Result<String> {
        get(&format!("{}/metrics", self.metrics)).await
    }

    pub(super) fn stop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident memory of a process, from /proc.
pub(super) fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

pub(super) async fn get(url: &str) -> anyhow::Result<String> {
    let url = url.strip_prefix("http://").unwrap_or(url);
    let (host, path) = url.split_once('/').unwrap_or((url, ""));
    let mut stream = tokio::net::TcpStream::connect(host).await?;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(format!("GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await?;
    Ok(body
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default())
}
