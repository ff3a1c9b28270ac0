//! A control plane of a test's own (`mutu dev up` in a directory and on a
//! port of its own), for the tests that run mutu as in production: the Helm
//! chart, leader election. Stopped and removed when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

use kube::Client;

use crate::repo_root;

/// The outcome of one command.
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `program ARGS` from the checkout, against `kubeconfig` if given.
pub fn run(program: &Path, args: &[&str], kubeconfig: Option<&Path>) -> anyhow::Result<Run> {
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(repo_root());
    if let Some(k) = kubeconfig {
        cmd.env("KUBECONFIG", k);
    }
    let out = cmd.output()?;
    Ok(Run {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// The mutu binary under test.
pub fn mutu_bin() -> anyhow::Result<PathBuf> {
    std::env::var("MUTU_BIN")
        .map(PathBuf::from)
        .map_err(|_| anyhow::anyhow!("MUTU_BIN is not set; run through `make test`"))
}

/// A client of the cluster of `kubeconfig`.
pub async fn client_of(kubeconfig: &Path) -> anyhow::Result<Client> {
    let config = kube::config::Kubeconfig::read_from(kubeconfig)?;
    Ok(Client::try_from(
        kube::Config::from_custom_kubeconfig(config, &Default::default()).await?,
    )?)
}

pub struct Plane {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    port: u16,
}

impl Plane {
    /// A fresh control plane in `.mutu/NAME` on `port` (the ports derived
    /// from it, API port - 1442 up to + 8557, must miss every other plane's).
    pub fn up(name: &str, port: u16) -> anyhow::Result<Self> {
        Self::up_with(name, port, &[])
    }

    /// As [`Plane::up`], with more arguments to `mutu dev up` (e.g. `--nodes real`).
    pub fn up_with(name: &str, port: u16, extra: &[&str]) -> anyhow::Result<Self> {
        let dir = repo_root().join(".mutu").join(name);
        let bin = mutu_bin()?;
        let port_arg = port.to_string();
        let dir_arg = dir.display().to_string();
        let _ = run(
            &bin,
            &["dev", "down", "--dir", &dir_arg, "--api-port", &port_arg],
            None,
        );
        let mut args = vec!["dev", "up", "--dir", &dir_arg, "--api-port", &port_arg];
        args.extend_from_slice(extra);
        let r = run(&bin, &args, None)?;
        anyhow::ensure!(r.success, "mutu dev up failed:\n{}", r.stderr);
        Ok(Self {
            kubeconfig: dir.join("kubeconfig"),
            dir,
            port,
        })
    }

    pub async fn client(&self) -> anyhow::Result<Client> {
        client_of(&self.kubeconfig).await
    }

    /// The `NAME=VALUE` pairs that `mutu dev env` exports for this plane.
    pub fn env(&self) -> anyhow::Result<Vec<(String, String)>> {
        let bin = mutu_bin()?;
        let r = run(
            &bin,
            &[
                "dev",
                "env",
                "--dir",
                &self.dir.display().to_string(),
                "--api-port",
                &self.port.to_string(),
            ],
            None,
        )?;
        anyhow::ensure!(r.success, "mutu dev env failed:\n{}", r.stderr);
        Ok(r.stdout
            .lines()
            .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }
}

impl Drop for Plane {
    fn drop(&mut self) {
        if let Ok(bin) = mutu_bin() {
            let _ = run(
                &bin,
                &[
                    "dev",
                    "down",
                    "--dir",
                    &self.dir.display().to_string(),
                    "--api-port",
                    &self.port.to_string(),
                ],
                None,
            );
        }
    }
}

/// A process killed (SIGKILL) when dropped.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
