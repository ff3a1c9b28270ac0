//! High availability: operators started with `--leader-elect` against a
//! control plane of their own. Only the leader reconciles and writes; when it
//! is killed (SIGKILL) the standby takes over within a lease duration, finds
//! the finished work finished (no write) and does the new work; a leader that
//! stops cleanly hands the Lease over at once; a leader frozen (SIGSTOP) past
//! its Lease is replaced, and once resumed sends no write and stops.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use mutu_e2e::plane::{Killed, Plane, mutu_bin};
use mutu_e2e::{member_with_site, scrape};
use mutu_runtime::metrics::sum_samples;
use mutu_runtime::testing::eventually;

/// Ports derived from it (API port - 1442 up to + 8557) miss those of the
/// shared control plane (16443) and of the chart's (19443).
const API_PORT: u16 = 21443;
const TIMEOUT: Duration = Duration::from_secs(120);
/// The Lease's duration, and the retry period of the candidates.
const LEASE: Duration = Duration::from_secs(15);
const RETRY: Duration = Duration::from_secs(2);

fn operator(plane: &Plane, name: &str, port: u16) -> anyhow::Result<Killed> {
    let log = std::fs::File::create(plane.dir.join(format!("operator-{name}.log")))?;
    let metrics = format!("127.0.0.1:{port}");
    Ok(Killed(
        Command::new(mutu_bin()?)
            .args([
                "operator",
                "run",
                "--leader-elect",
                "--metrics-addr",
                &metrics,
            ])
            .env("KUBECONFIG", &plane.kubeconfig)
            .env("POD_NAME", name)
            .env("MUTU_DEFAULT_ISSUER", "dev-ca")
            .env("MUTU_ACME_SOLVER_ADDR", "off")
            .env("MUTU_ACME_SERVER_ALLOW", "https://127.0.0.1:")
            // Every request it sends, logged: a frozen leader's writes are looked for.
            .env("MUTU_LOG", "info,kube_client::client::builder=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?,
    ))
}

async fn metrics(port: u16) -> anyhow::Result<String> {
    scrape(&format!("http://127.0.0.1:{port}/metrics")).await
}

async fn leads(port: u16) -> bool {
    metrics(port)
        .await
        .is_ok_and(|m| m.lines().any(|l| l.trim() == "mutu_leader 1"))
}

async fn wait_ready(port: u16) -> anyhow::Result<()> {
    let url = format!("http://127.0.0.1:{port}/readyz");
    eventually(
        TIMEOUT,
        &format!("the operator on {port} to be ready"),
        || {
            let url = url.clone();
            async move { scrape(&url).await.ok().filter(|b| b.trim() == "ready") }
        },
    )
    .await?;
    Ok(())
}

/// Writes of the controllers that did the member's and its site's work.
fn site_work_writes(text: &str) -> u64 {
    ["tenant", "site", "product", "certificate"]
        .iter()
        .map(|c| {
            sum_samples(
                text,
                "mutu_api_writes_total",
                &format!("controller=\"{c}\""),
            )
        })
        .sum()
}

async fn holder(api: &Api<Lease>) -> anyhow::Result<(String, i32)> {
    let lease = api.get("mutu-operator").await?;
    let spec = lease.spec.unwrap_or_default();
    Ok((
        spec.holder_identity.unwrap_or_default(),
        spec.lease_transitions.unwrap_or(0),
    ))
}

/// Waits until the operator on `port` has reconciled and then stopped
/// reconciling for a few seconds; returns its metrics then.
async fn settle(port: u16) -> anyhow::Result<String> {
    Ok(eventually(
        TIMEOUT,
        &format!("the operator on {port} to settle"),
        || async move {
            let first = metrics(port).await.ok()?;
            tokio::time::sleep(Duration::from_secs(3)).await;
            let second = metrics(port).await.ok()?;
            let count = |t: &str| sum_samples(t, "mutu_reconciles_total", "controller=");
            (count(&first) > 0 && count(&first) == count(&second)).then_some(second)
        },
    )
    .await?)
}

fn signal(child: &Killed, signal: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.0.id().to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "cannot send SIG{signal}");
    Ok(())
}

fn terminate(child: &Killed) -> anyhow::Result<()> {
    signal(child, "TERM")
}

/// The requests that write (POST, PUT, PATCH, DELETE) an operator's log shows it
/// sending at or after `since`.
fn writes_sent_since(log: &str, since: jiff::Timestamp) -> Vec<String> {
    log.lines()
        .filter(|line| {
            line.split_whitespace()
                .next()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .is_some_and(|t| t >= since)
        })
        .filter(|line| line.ends_with("kube_client::client::builder: requesting"))
        .filter(|line| {
            ["POST", "PUT", "PATCH", "DELETE"]
                .iter()
                .any(|m| line.contains(&format!("http.method={m} ")))
        })
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn only_the_leader_works_and_the_standby_takes_over_without_redoing_or_losing_work()
-> anyhow::Result<()> {
    let plane = Plane::up("test-ha", API_PORT)?;
    let client = plane.client().await?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "mutu-system");
    let (pa, pb, pc, pd) = (API_PORT + 10, API_PORT + 11, API_PORT + 12, API_PORT + 13);

    let a = operator(&plane, "a", pa)?;
    wait_ready(pa).await?;
    eventually(TIMEOUT, "a to lead", || async {
        leads(pa).await.then_some(())
    })
    .await?;
    let b = operator(&plane, "b", pb)?;
    wait_ready(pb).await?;
    assert!(
        holder(&leases).await?.0.starts_with("a-"),
        "a holds the Lease"
    );

    // The leader does the work; the standby nothing at all.
    member_with_site(&client, "ha", serde_json::json!({}), TIMEOUT).await?;
    let standby = metrics(pb).await?;
    assert!(!leads(pb).await, "b leads beside a");
    assert_eq!(
        sum_samples(&standby, "mutu_reconciles_total", "controller="),
        0,
        "the standby reconciled:\n{standby}"
    );
    assert_eq!(
        sum_samples(&standby, "mutu_api_writes_total", "controller="),
        0,
        "the standby wrote:\n{standby}"
    );

    // The leader finishes what the site's readiness triggered (e.g. the
    // product's counts), so that whatever the next leader writes is work
    // done twice.
    settle(pa).await?;

    // The leader dies: the standby takes over within a lease duration.
    let killed = Instant::now();
    drop(a);
    eventually(LEASE + RETRY * 5, "b to take over", || async {
        leads(pb).await.then_some(())
    })
    .await?;
    // A lease duration after the last renewal it saw, give or take a retry
    // period on each side (its last look, its next try).
    let took = killed.elapsed();
    assert!(
        took <= LEASE + RETRY * 3,
        "the standby took {took:?} to take over"
    );
    eprintln!("the standby took over {took:?} after the leader's SIGKILL");
    let (now_holder, transitions) = holder(&leases).await?;
    assert!(now_holder.starts_with("b-"), "{now_holder}");
    assert_eq!(transitions, 1);

    // It reconciles everything once, and finds the finished work finished.
    let settled = settle(pb).await?;
    assert_eq!(
        site_work_writes(&settled),
        0,
        "the new leader redid work:\n{settled}"
    );
    // New work is done: nothing was lost with the old leader.
    member_with_site(&client, "ha2", serde_json::json!({}), TIMEOUT).await?;
    mutu_e2e::fault_scenario_passed(
        "the leader SIGKILLed: the standby takes over within a lease, redoes nothing, loses nothing",
    );

    // A clean stop hands the Lease over at once, not after a lease duration.
    let c = operator(&plane, "c", pc)?;
    wait_ready(pc).await?;
    let stopping = Instant::now();
    terminate(&b)?;
    eventually(LEASE, "c to take over from b's clean stop", || async {
        leads(pc).await.then_some(())
    })
    .await?;
    let took = stopping.elapsed();
    assert!(
        took < LEASE,
        "a released Lease took {took:?} to change hands"
    );
    eprintln!("the Lease changed hands {took:?} after the leader's SIGTERM");
    assert!(holder(&leases).await?.0.starts_with("c-"));
    let log = std::fs::read_to_string(plane.dir.join("operator-b.log"))?;
    assert!(log.contains("lease released"), "b's log:\n{log}");
    mutu_e2e::fault_scenario_passed(
        "the leader stopped by SIGTERM: the Lease changes hands at once",
    );

    // The leader frozen (SIGSTOP) past its Lease: the standby takes over and
    // does new work; the old leader, resumed, writes nothing (its writes are
    // fenced by its own clock) and stops, having lost the Lease.
    let mut c = c;
    let d = operator(&plane, "d", pd)?;
    wait_ready(pd).await?;
    signal(&c, "STOP")?;
    let frozen = Instant::now();
    let resumed = async {
        eventually(
            LEASE + RETRY * 5,
            "d to take over from the frozen c",
            || async { leads(pd).await.then_some(()) },
        )
        .await?;
        eprintln!("d took over {:?} after c froze", frozen.elapsed());
        assert!(holder(&leases).await?.0.starts_with("d-"));
        member_with_site(&client, "ha3", serde_json::json!({}), TIMEOUT).await?;
        anyhow::Ok(())
    }
    .await;
    let since = jiff::Timestamp::now();
    signal(&c, "CONT")?;
    resumed?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = c.0.try_wait()? {
            break exit;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "c still runs 30 s after it resumed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let log = std::fs::read_to_string(plane.dir.join("operator-c.log"))?;
    assert!(!exit.success(), "c's log:\n{log}");
    assert!(
        log.contains("another process holds the lease; stepping down")
            || log.contains("the lease could not be renewed in time; stepping down"),
        "c's log:\n{log}"
    );
    let sent = writes_sent_since(&log, since);
    assert!(
        sent.is_empty(),
        "the resumed old leader sent writes:\n{}",
        sent.join("\n")
    );
    let refused = log
        .lines()
        .filter(|l| l.contains("write not sent: the leadership is not current"))
        .count();
    eprintln!("the resumed old leader stopped; writes it did not send: {refused}");
    assert!(leads(pd).await, "d leads");
    mutu_e2e::fault_scenario_passed(
        "the leader frozen (SIGSTOP) past its Lease, then resumed: it sends no write and steps down",
    );
    drop(d);
    let _ = Path::new(&plane.dir);
    Ok(())
}
