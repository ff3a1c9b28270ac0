//! `kubectl mutu`: kubectl finds the plugin on the PATH and runs mutu's
//! commands through it, with their short names.

use std::path::PathBuf;
use std::process::Command;

fn kubectl_with_plugin(args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    let bin = PathBuf::from(
        std::env::var("MUTU_BIN")
            .map_err(|_| anyhow::anyhow!("MUTU_BIN is not set; run through `make test`"))?,
    );
    let dir = bin
        .parent()
        .ok_or_else(|| anyhow::anyhow!("MUTU_BIN has no directory"))?;
    anyhow::ensure!(
        dir.join("kubectl-mutu").exists(),
        "{} is missing: `make build` links it beside mutu",
        dir.join("kubectl-mutu").display()
    );
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("kubectl")
        .args(args)
        .env("PATH", path)
        .output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn kubectl_finds_the_plugin_and_runs_mutus_commands() -> anyhow::Result<()> {
    let (ok, stdout, stderr) = kubectl_with_plugin(&["plugin", "list"])?;
    assert!(ok && stdout.contains("kubectl-mutu"), "{stdout}{stderr}");

    // `kubectl mutu status` is `mutu fleet status`.
    let (ok, stdout, stderr) = kubectl_with_plugin(&["mutu", "status", "--output", "json"])?;
    assert!(ok, "kubectl mutu status: {stderr}");
    let status: serde_json::Value = serde_json::from_str(&stdout)?;
    assert!(status["tenants"]["total"].is_u64(), "{status}");
    assert!(status["sites"]["total"].is_u64(), "{status}");

    // A command without a short name passes through.
    let (ok, stdout, stderr) = kubectl_with_plugin(&["mutu", "crds"])?;
    assert!(
        ok && stdout.contains("plonesites.hosting.imio.be"),
        "{stderr}"
    );

    // Help speaks of the plugin, and a wrong command says what exists.
    let (ok, stdout, _) = kubectl_with_plugin(&["mutu", "--help"])?;
    assert!(
        ok && stdout.contains("kubectl mutu") && stdout.contains("status"),
        "{stdout}"
    );
    let (ok, _, stderr) = kubectl_with_plugin(&["mutu", "aprove", "x/y"])?;
    assert!(!ok && stderr.contains("aprove"), "{stderr}");
    // An approval of a request that does not exist names it.
    let (ok, _, stderr) =
        kubectl_with_plugin(&["mutu", "approve", "tenant-nobody/no-such-request"])?;
    assert!(!ok && stderr.contains("no-such-request"), "{stderr}");
    Ok(())
}
