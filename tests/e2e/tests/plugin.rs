//! `kubectl mutu`: kubectl finds the plugin on the PATH and runs mutu's
//! commands through it, with their short names; the on-call commands
//! (`site status`, `certificate status|renew`, `backup now`, `restore`,
//! `maintenance on|off`, `plan pause|resume|status`, `report`) against the
//! control plane, and kubectl's completion of the plugin's words.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use kube::api::{Api, ListParams, PostParams};
use mutu_api::{Certificate, PloneSite, ReleaseRollout, Restore};
use mutu_e2e::member_with_site;
use mutu_runtime::conditions;
use mutu_runtime::testing::{self, unique_name};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(90);

fn kubectl_with_plugin(args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    kubectl_with_plugin_env(args, &[])
}

/// `kubectl ARGS` with the plugin on the PATH, without the environment variables `unset`.
fn kubectl_with_plugin_env(
    args: &[&str],
    unset: &[&str],
) -> anyhow::Result<(bool, String, String)> {
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
    let mut command = Command::new("kubectl");
    command.args(args).env("PATH", path);
    for var in unset {
        command.env_remove(var);
    }
    let out = command.output()?;
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

/// `kubectl mutu ARGS` that must succeed: its standard output.
fn mutu_ok(args: &[&str]) -> anyhow::Result<String> {
    let mut all = vec!["mutu"];
    all.extend_from_slice(args);
    let (ok, stdout, stderr) = kubectl_with_plugin(&all)?;
    anyhow::ensure!(ok, "kubectl {}: {stderr}\n{stdout}", all.join(" "));
    Ok(stdout)
}

/// `kubectl mutu ARGS` that must fail: its standard error.
fn mutu_fails(args: &[&str]) -> anyhow::Result<String> {
    let mut all = vec!["mutu"];
    all.extend_from_slice(args);
    let (ok, stdout, stderr) = kubectl_with_plugin(&all)?;
    anyhow::ensure!(!ok, "kubectl {} succeeded: {stdout}", all.join(" "));
    Ok(stderr)
}

#[tokio::test]
async fn kubectl_mutu_site_status_certificate_and_maintenance() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let (ns, _) = member_with_site(&client, "plug-site", json!({}), TIMEOUT).await?;
    let target = format!("{ns}/delib");

    // One screen: the site, its workloads, data volume, certificate and events.
    let text = mutu_ok(&["site", "status", &target])?;
    for expected in [
        format!("PloneSite {target}: Ready"),
        "Deployment".to_string(),
        "data-delib-zeo-0".to_string(),
        "delib-tls".to_string(),
        "Recent Events".to_string(),
    ] {
        assert!(text.contains(&expected), "{expected:?} in\n{text}");
    }
    // NAME with -n, and the kubeconfig and context given on the command line only.
    let kubeconfig = std::env::var("KUBECONFIG")?;
    let context = mutu_e2e::kubectl(["config", "current-context"]).stdout;
    let (ok, stdout, stderr) = kubectl_with_plugin_env(
        &[
            "mutu",
            "site",
            "status",
            "delib",
            "-n",
            &ns,
            "-o",
            "json",
            "--kubeconfig",
            &kubeconfig,
            "--context",
            context.trim(),
        ],
        &["KUBECONFIG"],
    )?;
    assert!(ok, "{stderr}");
    let view: serde_json::Value = serde_json::from_str(&stdout)?;
    assert_eq!(view["name"], "delib");
    assert_eq!(view["certificates"][0]["name"], "delib-tls");
    assert!(
        view["pods"].as_array().is_some_and(|p| !p.is_empty()),
        "{view}"
    );
    let e = mutu_fails(&["site", "status", &target, "--context", "no-such-context"])?;
    assert!(e.contains("no-such-context"), "{e}");
    let e = mutu_fails(&["site", "status", &format!("{ns}/nope")])?;
    assert!(e.contains(&format!("no PloneSite {ns}/nope")), "{e}");

    // The site's mutu Certificate, by the site's name, then renewed now.
    let text = mutu_ok(&["certificate", "status", &target])?;
    assert!(
        text.contains(&format!("mutu Certificate {ns}/delib-tls: Ready")),
        "{text}"
    );
    let text = mutu_ok(&[
        "certificate",
        "renew",
        &format!("{ns}/delib-tls"),
        "--timeout",
        "60s",
    ])?;
    assert!(text.contains("renewed:"), "{text}");
    let cert = Api::<Certificate>::namespaced(client.clone(), &ns)
        .get("delib-tls")
        .await?;
    let renewed = cert
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, "RenewalRequested").cloned());
    assert_eq!(renewed.map(|c| c.reason), Some("Renewed".to_string()));

    // Maintenance on: the servers stop; again: nothing to do; off: Ready again.
    let text = mutu_ok(&["maintenance", "on", &target, "--timeout", "60s"])?;
    assert!(text.contains("servers stopped"), "{text}");
    let site = Api::<PloneSite>::namespaced(client.clone(), &ns)
        .get("delib")
        .await?;
    assert!(
        site.metadata
            .annotations
            .unwrap_or_default()
            .get(mutu_api::MAINTENANCE_ANNOTATION)
            .is_some_and(|v| v.starts_with("ops/"))
    );
    let text = mutu_ok(&["maintenance", "on", &target])?;
    assert!(text.contains("already in maintenance"), "{text}");
    let text = mutu_ok(&["maintenance", "off", &target, "--timeout", "60s"])?;
    assert!(text.contains("Ready: serving again"), "{text}");
    Ok(())
}

#[tokio::test]
async fn kubectl_mutu_backup_now_and_restore() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let (ns, _) = member_with_site(&client, "plug-bk", json!({}), TIMEOUT).await?;
    let target = format!("{ns}/delib");

    let text = mutu_ok(&[
        "backup",
        "now",
        &target,
        "--name",
        "on-call",
        "--timeout",
        "60s",
    ])?;
    assert!(
        text.contains(&format!("mutu Backup {ns}/on-call complete")),
        "{text}"
    );

    // No terminal and no --yes: refused, saying what to add; nothing is created.
    let e = mutu_fails(&["restore", &target, "--from", "on-call"])?;
    assert!(e.contains("add --yes"), "{e}");
    // A time after the last backup: refused, saying what to do.
    let later = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1)).to_string();
    let e = mutu_fails(&["restore", &target, "--at", &later, "--yes"])?;
    assert!(e.contains("kubectl mutu backup now"), "{e}");
    let restores: Api<Restore> = Api::namespaced(client.clone(), &ns);
    assert!(
        restores
            .list(&ListParams::default())
            .await?
            .items
            .is_empty()
    );

    let text = mutu_ok(&[
        "restore",
        "delib",
        "-n",
        &ns,
        "--from",
        "on-call",
        "--yes",
        "--name",
        "undo",
        "--timeout",
        "80s",
    ])?;
    assert!(
        text.contains(&format!("mutu Restore {ns}/undo complete")),
        "{text}"
    );
    let restore = restores.get("undo").await?;
    assert_eq!(restore.spec.confirm.as_deref(), Some("delib"));
    Ok(())
}

#[tokio::test]
async fn kubectl_mutu_plan_pause_resume_and_status() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let product = unique_name("plug-plan-p");
    mutu_e2e::create_product(&client, &product, json!({})).await?;
    let name = unique_name("plug-plan");
    let rollouts: Api<ReleaseRollout> = Api::all(client.clone());
    rollouts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": mutu_api::API_VERSION, "kind": "ReleaseRollout",
                "metadata": {"name": name},
                "spec": {"product": product, "release": "2.0", "waveSize": 1},
            }))?,
        )
        .await?;

    let text = mutu_ok(&["plan", "status", &name])?;
    assert!(
        text.contains(&format!(
            "ReleaseRollout {name}: product {product} to release 2.0"
        )),
        "{text}"
    );
    let text = mutu_ok(&["plan", "pause", &name])?;
    assert!(text.contains("paused"), "{text}");
    assert!(rollouts.get(&name).await?.spec.paused);
    let json: serde_json::Value =
        serde_json::from_str(&mutu_ok(&["plan", "status", &name, "-o", "json"])?)?;
    assert_eq!(json["paused"], true);
    mutu_ok(&["plan", "resume", &name, "--kind", "releaserollout"])?;
    assert!(!rollouts.get(&name).await?.spec.paused);
    let e = mutu_fails(&["plan", "status", "no-such-plan"])?;
    assert!(
        e.contains("no MigrationPlan nor ReleaseRollout no-such-plan"),
        "{e}"
    );
    rollouts.delete(&name, &Default::default()).await?;
    Ok(())
}

#[tokio::test]
async fn kubectl_mutu_report_is_a_bundle_without_secrets() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let dir = std::env::temp_dir().join(unique_name("mutu-report"));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("report.tar.gz");
    let text = mutu_ok(&["report", "-o", &file.display().to_string()])?;
    assert!(text.contains("wrote"), "{text}");
    let out = Command::new("tar")
        .arg("-xzf")
        .arg(&file)
        .arg("-C")
        .arg(&dir)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "tar: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.is_dir())
        .ok_or_else(|| anyhow::anyhow!("no directory in the bundle"))?;
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap_or_default();
    let versions: serde_json::Value = serde_json::from_str(&read("versions.json"))?;
    assert!(versions["server"]["gitVersion"].is_string(), "{versions}");
    assert!(versions["mutu"].is_string());
    assert!(
        versions["crds"].as_array().is_some_and(|c| {
            c.iter().any(|c| {
                c["name"] == "plonesites.hosting.imio.be" && c["sameAsThisMutu"].is_boolean()
            })
        }),
        "{versions}"
    );
    assert!(read("fleet-status.txt").contains("mutu fleet status"));
    assert!(!read("not-ready.txt").is_empty());
    // The test bed's operator runs beside the cluster, not in a pod: the bundle says so.
    assert!(
        read("operator-logs/NONE.txt").contains("outside the cluster"),
        "{:?}",
        std::fs::read_dir(root.join("operator-logs"))?.collect::<Vec<_>>()
    );

    // No Secret's data anywhere: not the Solr admin's password, no private key.
    let secret =
        Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), "mutu-system")
            .get("solr-admin")
            .await?;
    let password = secret
        .data
        .unwrap_or_default()
        .get("password")
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        .unwrap_or_default();
    assert!(password.len() >= 8, "the test bed's Solr password");
    let mut files = vec![root.clone()];
    let mut checked = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path)?.filter_map(|e| e.ok().map(|e| e.path())));
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        assert!(
            !text.contains(&password),
            "{} holds the Solr password",
            path.display()
        );
        assert!(
            !text.contains("PRIVATE KEY"),
            "{} holds a private key",
            path.display()
        );
        assert!(
            !text.contains("kind: Secret"),
            "{} holds a Secret",
            path.display()
        );
        checked += 1;
    }
    assert!(checked >= 6, "{checked} files");
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn kubectl_completes_the_plugins_words() -> anyhow::Result<()> {
    let bin = PathBuf::from(std::env::var("MUTU_BIN")?);
    let completer = bin.with_file_name("kubectl_complete-mutu");
    anyhow::ensure!(
        completer.exists(),
        "{} is missing: `make build` links it beside mutu",
        completer.display()
    );
    // kubectl asks `kubectl_complete-mutu` for the words after `kubectl mutu`.
    let (ok, stdout, stderr) = kubectl_with_plugin(&["__complete", "mutu", "si"])?;
    assert!(
        ok && stdout.lines().any(|l| l.starts_with("site")),
        "{stdout}{stderr}"
    );
    let (_, stdout, _) = kubectl_with_plugin(&["__complete", "mutu", "maintenance", ""])?;
    let words: Vec<&str> = stdout
        .lines()
        .map(|l| l.split('\t').next().unwrap_or_default())
        .collect();
    assert!(words.contains(&"on") && words.contains(&"off"), "{stdout}");
    // `mutu completion` writes the scripts of the shells.
    let text = mutu_ok(&["completion", "bash"])?;
    assert!(text.contains("_mutu"), "{text}");
    Ok(())
}
