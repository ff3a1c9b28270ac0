//! `mutu dev stop|start|restart` and `mutu dev node` on the tests' own control
//! plane (a module of the serial tests: they have the cluster to themselves):
//! the scheduler and the controller-manager restarted, after which a new site
//! still becomes Ready, and a simulated node made NotReady, tainted by the
//! controller-manager's node-lifecycle controller, then Ready again.

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::Api;
use mutu_e2e::{create_product, member_with_sites, plane};
use mutu_runtime::testing::{self, unique_name};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(120);

/// `mutu dev ARGS` on this control plane (MUTU_DEV_DIR and MUTU_DEV_API_PORT
/// name it); fails with its output when it fails.
pub(crate) fn dev(args: &[&str]) -> anyhow::Result<String> {
    let mutu = plane::mutu_bin()?;
    let mut all = vec!["dev"];
    all.extend_from_slice(args);
    let run = plane::run(&mutu, &all, None)?;
    anyhow::ensure!(
        run.success,
        "mutu {}: {}{}",
        all.join(" "),
        run.stdout,
        run.stderr
    );
    Ok(run.stderr)
}

fn condition(node: &Node, kind: &str) -> Option<String> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.clone())
}

fn tainted_not_ready(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|t| t.iter().any(|t| t.key == "node.kubernetes.io/not-ready"))
}

async fn a_site_comes_up(client: &Client, product: &str, prefix: &str) -> anyhow::Result<()> {
    member_with_sites(
        client,
        prefix,
        product,
        &["after".to_string()],
        json!({}),
        TIMEOUT,
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn the_scheduler_and_controller_manager_restart_and_a_node_goes_not_ready_and_back()
-> anyhow::Result<()> {
    let client = testing::client().await?;
    let product = unique_name("faults-p");
    create_product(&client, &product, json!({})).await?;

    // The scheduler and the controller-manager restarted: the pods of a site
    // created afterwards are scheduled and the site becomes Ready.
    for component in ["scheduler", "controller-manager"] {
        let out = dev(&["restart", component])?;
        assert!(
            out.contains(&format!("stopped kube-{component}"))
                && out.contains(&format!("started kube-{component}")),
            "{out}"
        );
    }
    a_site_comes_up(&client, &product, "faults").await?;
    mutu_e2e::fault_scenario_passed("kube-scheduler restarted: a new site is scheduled and Ready");
    mutu_e2e::fault_scenario_passed(
        "kube-controller-manager restarted: a new site's pods come and it is Ready",
    );

    // Stopping what is stopped, or starting what runs, is harmless.
    let out = dev(&["start", "scheduler"])?;
    assert!(out.contains("kube-scheduler is running already"), "{out}");
    let e = dev(&["stop", "kubelet"]).err().map(|e| e.to_string());
    assert!(
        e.as_deref()
            .is_some_and(|e| e.contains("unknown component \"kubelet\"")),
        "{e:?}"
    );

    let nodes: Api<Node> = Api::all(client.clone());
    let result = async {
        dev(&["node", "not-ready", "frontend-3"])?;
        let node = nodes.get("frontend-3").await?;
        assert_eq!(condition(&node, "Ready").as_deref(), Some("False"));
        assert!(tainted_not_ready(&node), "{:?}", node.spec);
        // kwok no longer keeps it: it stays NotReady.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let node = nodes.get("frontend-3").await?;
        assert_eq!(condition(&node, "Ready").as_deref(), Some("False"));
        anyhow::Ok(())
    }
    .await;
    // Whatever happened, the node is Ready again for the tests after this one.
    dev(&["node", "ready", "frontend-3"])?;
    result?;
    let node = nodes.get("frontend-3").await?;
    assert_eq!(condition(&node, "Ready").as_deref(), Some("True"));
    assert!(!tainted_not_ready(&node), "{:?}", node.spec);
    Ok(())
}

/// `(broken watches, relists so far)` from the operator's metrics.
async fn watch_state() -> anyhow::Result<(Vec<String>, u64)> {
    let text = mutu_e2e::operator_metrics().await?;
    let mut broken = Vec::new();
    let mut relists = 0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("mutu_watch_broken{") {
            if rest.ends_with("} 1") {
                broken.push(rest.trim_end_matches("} 1").to_string());
            }
        } else if let Some(rest) = line.strip_prefix("mutu_watch_relists_total{") {
            relists += rest
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or_default();
        }
    }
    Ok((broken, relists))
}

/// Restarts `component`, then waits until every watch of the operator
/// delivers again, within the time the watches' backoff allows, having listed
/// anew if `relist` (an API server restart expires their resource versions;
/// an etcd restart is hidden by the API server's watch cache).
async fn restart_and_watches_mend(component: &str, relist: bool) -> anyhow::Result<()> {
    let (_, before) = watch_state().await?;
    let out = dev(&["restart", component])?;
    assert!(out.contains(&format!("started {component}")), "{out}");
    let deadline = std::time::Instant::now() + Duration::from_secs(45);
    loop {
        let (broken, relists) = watch_state().await?;
        if broken.is_empty() && (relists > before || !relist) {
            return Ok(());
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "45 s after restarting {component}, the operator's watches are still broken: {broken:?} \
             (relists {before} -> {relists})"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The API server, then etcd, restarted under the operator: its watches
/// expire (410 Gone), list anew and deliver again, and a site
/// created afterwards becomes Ready. (Before the watches' errors were kept
/// out of the controllers' inputs, a controller's watches could sit unread
/// for minutes after an API server restart.)
#[tokio::test]
async fn after_the_api_server_and_etcd_restart_the_watches_mend_and_new_sites_come_up()
-> anyhow::Result<()> {
    let client = testing::client().await?;
    let product = unique_name("faults-a");
    create_product(&client, &product, json!({})).await?;
    restart_and_watches_mend("kube-apiserver", true).await?;
    restart_and_watches_mend("etcd", false).await?;
    let client = testing::client().await?;
    a_site_comes_up(&client, &product, "after-restarts").await?;
    mutu_e2e::fault_scenario_passed(
        "API server restarted: every watch expires (410 Gone), lists anew, and a new site is Ready",
    );
    mutu_e2e::fault_scenario_passed(
        "etcd restarted: every watch delivers again and a new site is Ready",
    );
    Ok(())
}

/// The API server stopped for longer than `/readyz` tolerates a broken watch
/// (`WATCH_GRACE`, 60 s): the operator stays up (`/healthz` answers, its
/// process runs), its `/readyz` fails and names the broken watches; once the
/// API server is back, every watch delivers again, `/readyz` is ready within
/// 45 s, and a new site becomes Ready.
#[tokio::test]
async fn the_api_server_down_past_the_readiness_grace_fails_readyz_then_the_operator_mends()
-> anyhow::Result<()> {
    let client = testing::client().await?;
    let product = unique_name("faults-r");
    create_product(&client, &product, json!({})).await?;
    let metrics = std::env::var("MUTU_OPERATOR_METRICS")?;
    let readyz = metrics.replace("/metrics", "/readyz");
    let healthz = metrics.replace("/metrics", "/healthz");
    let pid: u32 = std::fs::read_to_string(std::env::var("MUTU_OPERATOR_PID_FILE")?)?
        .trim()
        .parse()?;
    assert_eq!(mutu_e2e::scrape(&readyz).await?.trim(), "ready");
    let out = dev(&["stop", "kube-apiserver"])?;
    let stopped = std::time::Instant::now();
    let down = async {
        let body = testing::eventually(
            Duration::from_secs(120),
            "the operator's /readyz to fail on its broken watches",
            || async {
                let body = mutu_e2e::scrape(&readyz).await.ok()?;
                body.contains("watches broken for over").then_some(body)
            },
        )
        .await?;
        anyhow::ensure!(
            stopped.elapsed() >= mutu_runtime::server::WATCH_GRACE,
            "/readyz failed {:?} after the API server stopped, before its grace: {body}",
            stopped.elapsed()
        );
        anyhow::ensure!(body.contains("plonesites"), "{body}");
        anyhow::ensure!(
            mutu_e2e::scrape(&healthz).await?.trim() == "ok",
            "the operator is alive"
        );
        anyhow::ensure!(alive(pid), "the operator kept running");
        anyhow::Ok(body)
    }
    .await;
    // Whatever happened, the API server comes back for the tests after this one.
    let started = dev(&["start", "kube-apiserver"]);
    let body = down?;
    started?;
    let back = std::time::Instant::now();
    testing::eventually(
        Duration::from_secs(45),
        "the operator's /readyz to be ready again",
        || async {
            let ok = mutu_e2e::scrape(&readyz).await.ok()?.trim() == "ready";
            let (broken, _) = watch_state().await.ok()?;
            (ok && broken.is_empty()).then_some(())
        },
    )
    .await?;
    let mended = back.elapsed();
    assert!(alive(pid), "the same operator process");
    let client = testing::client().await?;
    a_site_comes_up(&client, &product, "after-down").await?;
    eprintln!(
        "{}; /readyz said: {}; ready again {mended:.1?} after the API server was back",
        out.trim(),
        body.trim()
    );
    mutu_e2e::fault_scenario_passed(
        "API server down past /readyz's grace: readyz fails naming the broken watches, the operator stays up, mends when it is back, a new site is Ready",
    );
    Ok(())
}

/// Whether the process `pid` still runs (a zombie does not).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            let state = stat.rsplit(") ").next().unwrap_or_default();
            !state.starts_with('Z')
        })
        .unwrap_or(false)
}

/// `mutu bench fleet` stopped by SIGTERM while its operators bring the fleet
/// up: it exits saying so, and stops everything it started (its control
/// plane's processes and the operators'), as `mutu dev down` would.
#[tokio::test]
async fn the_fleet_benchmark_stopped_by_sigterm_stops_what_it_started() -> anyhow::Result<()> {
    let mutu = plane::mutu_bin()?;
    let dir = std::env::temp_dir().join(format!("mutu-bench-sigterm-{}", std::process::id()));
    let log = dir.with_extension("log");
    let mut bench = std::process::Command::new(&mutu)
        .args(["bench", "fleet", "--sites", "20", "--api-port", "21443"])
        .arg("--dir")
        .arg(&dir)
        .arg("--allow-debug-build")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    // Until the operators work on the fleet.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !std::fs::read_to_string(&log)?.contains("the operators bring them to Ready") {
        anyhow::ensure!(
            std::time::Instant::now() < deadline && bench.try_wait()?.is_none(),
            "the benchmark did not start its fleet: {}",
            std::fs::read_to_string(&log)?
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut pids: Vec<(String, u32)> = Vec::new();
    for entry in std::fs::read_dir(dir.join("pids"))? {
        let entry = entry?;
        let pid = std::fs::read_to_string(entry.path())?.trim().parse()?;
        pids.push((entry.file_name().to_string_lossy().into_owned(), pid));
    }
    anyhow::ensure!(
        pids.iter()
            .any(|(name, _)| name.starts_with("kube-apiserver")),
        "{pids:?}"
    );
    // The operators' process: the benchmark's only child that is not the plane's.
    let children: Vec<u32> =
        std::fs::read_to_string(format!("/proc/{}/task/{}/children", bench.id(), bench.id()))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
    anyhow::ensure!(
        children.iter().any(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("operator\0run"))
        }),
        "the operators' process is not among the benchmark's children {children:?}"
    );
    let status = std::process::Command::new("kill")
        .args(["-TERM", &bench.id().to_string()])
        .status()?;
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(exit) = bench.try_wait()? {
            break exit;
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the benchmark did not stop within 60 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let output = std::fs::read_to_string(&log)?;
    assert!(!exit.success(), "{output}");
    assert!(
        output.contains("interrupted: the benchmark stopped and stopped its control plane"),
        "{output}"
    );
    let left: Vec<String> = pids
        .iter()
        .filter(|(_, pid)| alive(*pid))
        .map(|(name, pid)| format!("{name} ({pid})"))
        .chain(
            children
                .iter()
                .filter(|pid| alive(**pid))
                .map(|pid| format!("child {pid}")),
        )
        .collect();
    assert!(left.is_empty(), "still running: {left:?}\n{output}");
    mutu_e2e::fault_scenario_passed(
        "the fleet benchmark stopped by SIGTERM: it stops the control plane it started",
    );
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
