//! A real Apache Solr 9 (SolrCloud: one node and its embedded ZooKeeper)
//! beside the local control plane, built from Maven Central by tests/solr
//! and cached; Solr's BasicAuth and rule-based authorization are on, with an
//! admin whose password is generated once per state directory and kept in
//! the Secret `mutu-system/solr-admin`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::process::Processes;
use super::{Layout, step};

/// The process name of Solr in the state directory.
pub const COMPONENT: &str = "solr";
/// The Secret (in mutu-system) with Solr's admin `username` and `password`.
pub const ADMIN_SECRET: &str = "solr-admin";
const ADMIN_USER: &str = "admin";

/// Solr's port for an API server port: 8983 for 6443 (API port + 2540);
/// its ZooKeeper listens 1000 above.
pub fn port(api_port: u16) -> u16 {
    api_port.saturating_add(2540)
}

/// `http://127.0.0.1:PORT/solr`
pub fn url(api_port: u16) -> String {
    format!("http://127.0.0.1:{}/solr", port(api_port))
}

fn data_dir(layout: &Layout) -> PathBuf {
    layout.state.join("solr")
}

fn password_file(layout: &Layout) -> PathBuf {
    layout.state.join("solr-admin-password")
}

/// The admin password of this state directory, made on first use.
pub fn admin_password(layout: &Layout) -> anyhow::Result<String> {
    let file = password_file(layout);
    if let Ok(p) = std::fs::read_to_string(&file)
        && !p.trim().is_empty()
    {
        return Ok(p.trim().to_string());
    }
    let mut bytes = [0u8; 18];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("no random bytes for the password: {e}"))?;
    let password: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::create_dir_all(&layout.state)?;
    std::fs::write(&file, &password).with_context(|| format!("cannot write {}", file.display()))?;
    Ok(password)
}

/// Builds the launcher (cached by tests/solr/build.sh).
fn build(layout: &Layout) -> anyhow::Result<()> {
    let script = layout.root.join("tests/solr/build.sh");
    let status = std::process::Command::new("bash")
        .arg(&script)
        .stdout(std::process::Stdio::null())
        .status()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !status.success() {
        bail!(
            "{} failed ({status}); its output is above",
            script.display()
        );
    }
    Ok(())
}

/// Starts Solr unless it runs; returns its pid and whether it was started now.
pub fn start(layout: &Layout, procs: &Processes, started: Instant) -> anyhow::Result<(i32, bool)> {
    if let Some(pid) = procs.running(COMPONENT) {
        step(started, &format!("solr already running (pid {pid})"));
        return Ok((pid, false));
    }
    build(layout)?;
    admin_password(layout)?;
    let data = data_dir(layout);
    std::fs::create_dir_all(&data)?;
    let run = layout.root.join("tests/solr/run.sh");
    let args = vec![
        run.display().to_string(),
        data.display().to_string(),
        port(layout.api_port).to_string(),
    ];
    let file = password_file(layout).display().to_string();
    let envs = [
        ("SOLR_ADMIN_USER", ADMIN_USER),
        ("SOLR_ADMIN_PASSWORD_FILE", file.as_str()),
    ];
    let pid = procs.start(COMPONENT, Path::new("bash"), &args, &envs)?;
    step(
        started,
        &format!("started solr (pid {pid}) on {}", url(layout.api_port)),
    );
    Ok((pid, true))
}

/// Waits until Solr answers its admin as long as it runs, then puts the
/// admin's credentials in the Secret `mutu-system/solr-admin`.
pub async fn ready(
    layout: &Layout,
    procs: &Processes,
    pid: i32,
    client: &Client,
    namespace: &str,
    started: Instant,
) -> anyhow::Result<()> {
    let password = admin_password(layout)?;
    let solr = mutu_solr::Client::new(
        &url(layout.api_port),
        Some(mutu_solr::Credentials {
            user: ADMIN_USER.into(),
            password: password.clone(),
        }),
    )?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match solr.ping().await {
            Ok(()) => break,
            Err(e) => {
                if !procs.started_alive(pid) || Instant::now() > deadline {
                    bail!(
                        "Solr does not answer at {} ({e}); last lines of {}:\n{}",
                        url(layout.api_port),
                        procs.log_file(COMPONENT).display(),
                        procs.log_tail(COMPONENT, 30)
                    );
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    step(
        started,
        &format!("solr is ready ({})", url(layout.api_port)),
    );
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": ADMIN_SECRET, "namespace": namespace},
        "stringData": {"username": ADMIN_USER, "password": password, "url": url(layout.api_port)},
    });
    Api::<Secret>::namespaced(client.clone(), namespace)
        .patch(
            ADMIN_SECRET,
            &PatchParams::apply("mutu-dev").force(),
            &Patch::Apply(&secret),
        )
        .await
        .with_context(|| format!("cannot write the Secret {namespace}/{ADMIN_SECRET}"))?;
    Ok(())
}
