//! The operators as a child process (`mutu operator run`): started, stopped,
//! asked over HTTP whether they are ready and for their metrics, and their
//! memory read from /proc.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;

/// How the operators are started: the kubeconfig of the benchmark's control
/// plane, the port of their metrics and readiness, the file they log to.
pub(super) struct Launch {
    pub(super) kubeconfig: PathBuf,
    pub(super) metrics_port: u16,
    pub(super) log: PathBuf,
}

/// The operators, as `mutu operator run`, with their memory sampled.
pub(super) struct Operator {
    child: Child,
    metrics: String,
}

impl Operator {
    pub(super) fn start(launch: &Launch) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&launch.log)?;
        let addr = format!("127.0.0.1:{}", launch.metrics_port);
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
            .env("KUBECONFIG", &launch.kubeconfig)
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

    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(super) fn rss_mb(&self) -> f64 {
        rss_kb(self.pid()) as f64 / 1024.0
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

    /// Stops the operators as Kubernetes would (SIGTERM), and waits for them.
    pub(super) fn stop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid() as i32),
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

/// The highest resident memory of a process, sampled every half second from
/// its start until it is stopped.
pub(super) struct PeakRss {
    peak_kb: Arc<AtomicU64>,
    sampling: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl PeakRss {
    pub(super) fn start(pid: u32) -> Self {
        let peak_kb = Arc::new(AtomicU64::new(0));
        let sampling = Arc::new(AtomicBool::new(true));
        let task = {
            let (peak_kb, sampling) = (peak_kb.clone(), sampling.clone());
            tokio::spawn(async move {
                while sampling.load(Ordering::Relaxed) {
                    peak_kb.fetch_max(rss_kb(pid), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            })
        };
        Self {
            peak_kb,
            sampling,
            task,
        }
    }

    /// Stops the sampling: the peak, in MB.
    pub(super) async fn stop(self) -> f64 {
        self.sampling.store(false, Ordering::Relaxed);
        let _ = self.task.await;
        self.peak_kb.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

/// Resident memory of a process, from /proc; 0 if unknown.
fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| vm_rss_kb(&s))
        .unwrap_or(0)
}

/// The resident memory in a process's /proc status, in kB.
fn vm_rss_kb(status: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// The body of a plain HTTP/1.0 GET of `url` (`http://host:port/path`).
async fn get(url: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (host, path) = host_and_path(url);
    let mut stream = tokio::net::TcpStream::connect(host).await?;
    stream
        .write_all(format!("GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    Ok(body(&response))
}

/// `http://host:port/path` as `host:port` and `path` (without its first slash).
fn host_and_path(url: &str) -> (&str, &str) {
    let url = url.strip_prefix("http://").unwrap_or(url);
    url.split_once('/').unwrap_or((url, ""))
}

/// What follows the headers of an HTTP response; empty without headers' end.
fn body(response: &str) -> String {
    response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_is_read_from_the_status() {
        let status = "Name:\tmutu\nVmPeak:\t  900 kB\nVmRSS:\t   51234 kB\nThreads:\t8\n";
        assert_eq!(vm_rss_kb(status), Some(51234));
        assert_eq!(vm_rss_kb("Name:\tmutu\n"), None);
        assert_eq!(rss_kb(u32::MAX), 0);
    }

    #[test]
    fn a_url_splits_into_host_and_path() {
        assert_eq!(
            host_and_path("http://127.0.0.1:23454/readyz"),
            ("127.0.0.1:23454", "readyz")
        );
        assert_eq!(host_and_path("127.0.0.1:80/a/b"), ("127.0.0.1:80", "a/b"));
        assert_eq!(host_and_path("http://127.0.0.1:80"), ("127.0.0.1:80", ""));
    }

    #[test]
    fn the_body_follows_the_headers() {
        let response = "HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nready\n";
        assert_eq!(body(response), "ready\n");
        assert_eq!(body("HTTP/1.0 200 OK\r\n"), "");
    }
}
