//! `mutu bench fleet --sites N`: on a local control plane of its own, how fast
//! and how frugally the operators bring a fleet of N sites (with their
//! tenants) to Ready, beside the floor the API server allows: a plain bulk
//! server-side apply of exactly the objects the operators create, rendered by
//! the same build functions.
//!
//! Each phase runs on a fresh control plane: the operators' converge, quiet
//! period, restart and changes on one, the bulk apply on another, so that
//! neither starts on a cluster holding the other's fleet. A phase can be run
//! alone (`--phase`), its results saved (`--save`) and merged with a saved
//! run of the other phase (`--merge`): at 10,000 sites each phase takes hours
//! on a small machine.
//!
//! The operators run as a child process (`mutu operator run`), so that their
//! memory is theirs alone. API writes are read from the API server's own
//! request metrics, counting only the kinds mutu writes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::reflector::{self, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use mutu_api::{MemberTenant, PloneSite, Product};
use mutu_runtime::conditions;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Args)]
pub struct FleetArgs {
    /// Sites in the fleet (10 per tenant).
    #[arg(long, default_value_t = 819, value_parser = clap::value_parser!(u32).range(1..=20000))]
    sites: u32,
    /// The quiet period in which nothing changes, in seconds.
    #[arg(long, default_value_t = 60)]
    quiet: u64,
    /// Spec changes timed from change to Ready, one site at a time.
    #[arg(long, default_value_t = 40)]
    changes: u32,
    /// Objects applied at once, by the bulk apply and when the fleet is applied.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    /// Longest wait for a fleet to be Ready, in seconds.
    #[arg(long, default_value_t = 7200)]
    timeout: u64,
    /// State directory of the benchmark's own control plane.
    #[arg(long, default_value = ".mutu/bench-fleet")]
    dir: PathBuf,
    /// API server port of the benchmark's control plane (the ports of its
    /// peers derive from it; all stay below the kernel's ephemeral ports).
    #[arg(long, default_value_t = 23443)]
    api_port: u16,
    /// Leave the control plane running afterwards.
    #[arg(long)]
    keep: bool,
    /// Print the results as JSON.
    #[arg(long, value_parser = ["json"])]
    output: Option<String>,
    /// Draw the sites Ready over time (operators and bulk apply) into this SVG file.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Which measures to take: all of them, or one phase alone.
    #[arg(long, value_enum, default_value_t = Phase::All)]
    phase: Phase,
    /// Save the results, with the curves, into this JSON file (for `--merge`).
    #[arg(long)]
    save: Option<PathBuf>,
    /// Take the other phase's results from a run saved with `--save`.
    #[arg(long)]
    merge: Option<PathBuf>,
}

/// The measures of one run.
#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    /// Both phases, one after the other.
    All,
    /// The operators: converge, quiet period, restart, changes, memory.
    Operators,
    /// The floor: the bulk server-side apply, no operator.
    Bulk,
}

impl Phase {
    fn operators(self) -> bool {
        self != Phase::Bulk
    }
    fn bulk(self) -> bool {
        self != Phase::Operators
    }
}

/// Results saved with their curves, and which phases they hold.
#[derive(Serialize, Deserialize, Debug, Default)]
struct Saved {
    #[serde(flatten)]
    results: Results,
    operators_measured: bool,
    bulk_measured: bool,
    operator_curve: Vec<(f64, u32)>,
    raw_curve: Vec<(f64, u32)>,
}

/// What one run measured.
#[derive(Serialize, Deserialize, Debug, Default, Clone)]
pub struct Results {
    sites: u32,
    tenants: u32,
    converge_s: f64,
    raw_apply_s: f64,
    ratio: f64,
    noop_writes: u64,
    noop_writes_by_operator: u64,
    restart_writes: u64,
    restart_writes_by_operator: u64,
    reconciles_per_object_after_restart: f64,
    baseline_rss_mb: f64,
    peak_rss_mb: f64,
    steady_rss_mb: f64,
    rss_per_site_kb: f64,
    p50_change_to_ready_s: f64,
    p99_change_to_ready_s: f64,
    #[serde(skip)]
    operator_curve: Vec<(f64, u32)>,
    #[serde(skip)]
    raw_curve: Vec<(f64, u32)>,
}

const PRODUCT: &str = "bench";
const FIELD_MANAGER: &str = "mutu-bench";
const SITES_PER_TENANT: u32 = 10;

pub async fn fleet(args: FleetArgs) -> anyhow::Result<()> {
    let mut r = Results {
        sites: args.sites,
        tenants: fleet_plan("bench", args.sites).len() as u32,
        ..Default::default()
    };
    // Read the saved run first: a wrong file fails before hours of work.
    let merged = match &args.merge {
        Some(path) => Some(read_saved(path, &args)?),
        None => None,
    };
    if args.phase.operators() {
        let keep = args.keep && !args.phase.bulk();
        on_fresh_control_plane(&args, keep, |client| operators(&args, client, &mut r)).await?;
    }
    if args.phase.bulk() {
        on_fresh_control_plane(&args, args.keep, |client| bulk(&args, client, &mut r)).await?;
    }
    if let Some(saved) = merged {
        r = merge(r, args.phase, saved);
    }
    if r.converge_s > 0.0 && r.raw_apply_s > 0.0 {
        r.ratio = r.converge_s / r.raw_apply_s;
    }
    if let Some(path) = &args.save {
        let saved = Saved {
            results: r.clone(),
            operators_measured: r.converge_s > 0.0,
            bulk_measured: r.raw_apply_s > 0.0,
            operator_curve: r.operator_curve.clone(),
            raw_curve: r.raw_curve.clone(),
        };
        std::fs::write(path, serde_json::to_string(&saved)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("saved: {}", path.display());
    }
    if let Some(path) = &args.plot {
        std::fs::write(path, svg(&r))
            .with_context(|| format!("cannot write the chart {}", path.display()))?;
        eprintln!("chart: {}", path.display());
    }
    if args.output.is_some() {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!("sites {} ({} tenants)", r.sites, r.tenants);
        if r.ratio > 0.0 {
            println!(
                "applied to all Ready: operators {:.1} s, bulk apply {:.1} s: ratio {:.2}",
                r.converge_s, r.raw_apply_s, r.ratio
            );
        } else if r.raw_apply_s > 0.0 {
            println!("applied to all Ready: bulk apply {:.1} s", r.raw_apply_s);
        }
        if r.converge_s == 0.0 {
            return Ok(());
        }
        if r.ratio == 0.0 {
            println!("applied to all Ready: operators {:.1} s", r.converge_s);
        }
        println!(
            "API writes in {} s with nothing changed: {} (operator's own count {})",
            args.quiet, r.noop_writes, r.noop_writes_by_operator
        );
        println!(
            "API writes after a restart: {} (operator's own count {}); reconciles per object: {:.2}",
            r.restart_writes, r.restart_writes_by_operator, r.reconciles_per_object_after_restart
        );
        println!(
            "operator memory: {:.0} MB empty, {:.0} MB peak, {:.0} MB steady, {:.1} kB per site",
            r.baseline_rss_mb, r.peak_rss_mb, r.steady_rss_mb, r.rss_per_site_kb
        );
        println!(
            "one site's spec change to Ready, the fleet idle: p50 {:.2} s, p99 {:.2} s",
            r.p50_change_to_ready_s, r.p99_change_to_ready_s
        );
    }
    Ok(())
}

fn product() -> serde_json::Value {
    json!({
        "apiVersion": mutu_api::API_VERSION, "kind": "Product",
        "metadata": {"name": PRODUCT},
        "spec": {
            "displayName": "Benchmark site",
            "engine": "plone",
            "image": "registry.imio.be/bench/plone",
            "release": "1.0",
            "replicas": 1,
            "storage": {"mode": "zeo", "size": "1Gi"},
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
        },
    })
}

fn tenant(name: &str, sites: u32) -> serde_json::Value {
    json!({
        "apiVersion": mutu_api::API_VERSION, "kind": "MemberTenant",
        "metadata": {"name": name},
        "spec": {
            "displayName": format!("Bench {name}"),
            "category": "commune",
            "province": "namur",
            "domains": [format!("{name}.test")],
            "entitlements": {PRODUCT: sites},
            "deletionPolicy": "Delete",
        },
    })
}

fn site(tenant: &str, i: u32) -> serde_json::Value {
    json!({
        "apiVersion": mutu_api::API_VERSION, "kind": "PloneSite",
        "metadata": {"name": format!("site-{i:02}"), "namespace": mutu_api::tenant_namespace(tenant)},
        "spec": {"product": PRODUCT, "hostnames": [format!("site-{i:02}.{tenant}.test")]},
    })
}

/// The tenants and their sites: 10 sites per tenant, the last one fewer.
fn fleet_plan(prefix: &str, sites: u32) -> Vec<(String, u32)> {
    let tenants = sites.div_ceil(SITES_PER_TENANT);
    (0..tenants)
        .map(|t| {
            let n = (sites - t * SITES_PER_TENANT).min(SITES_PER_TENANT);
            (format!("{prefix}-{t:05}"), n)
        })
        .collect()
}

async fn apply_json<K>(api: &Api<K>, name: &str, body: &serde_json::Value) -> anyhow::Result<()>
where
    K: Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(body),
    )
    .await
    .with_context(|| format!("cannot apply {name}"))?;
    Ok(())
}

/// The operators, as `mutu operator run`, with their memory sampled.
struct Operator {
    child: Child,
    metrics: String,
}

impl Operator {
    fn start(
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

    fn rss_mb(&self) -> f64 {
        rss_kb(self.child.id()) as f64 / 1024.0
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let url = format!("{}/readyz", self.metrics);
        for _ in 0..300 {
            if get(&url).await.is_ok_and(|b| b.trim() == "ready") {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        anyhow::bail!("the operators did not become ready (see the log)")
    }

    async fn metrics(&self) -> anyhow::Result<String> {
        get(&format!("{}/metrics", self.metrics)).await
    }

    fn stop(&mut self) {
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
fn rss_kb(pid: u32) -> u64 {
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

async fn get(url: &str) -> anyhow::Result<String> {
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

/// Sum of the samples of `metric` in Prometheus text whose labels pass `keep`.
fn sum_where(text: &str, metric: &str, keep: impl Fn(&BTreeMap<String, String>) -> bool) -> f64 {
    let mut total = 0.0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(metric) else {
            continue;
        };
        let (labels, value) = if let Some(r) = rest.strip_prefix('{') {
            let Some((l, v)) = r.split_once('}') else {
                continue;
            };
            (l, v)
        } else if rest.starts_with(' ') {
            ("", rest)
        } else {
            continue;
        };
        let map: BTreeMap<String, String> = labels
            .split("\",")
            .filter_map(|kv| kv.split_once("=\""))
            .map(|(k, v)| (k.trim().to_string(), v.trim_end_matches('"').to_string()))
            .collect();
        if keep(&map) {
            total += value.trim().parse::<f64>().unwrap_or(0.0);
        }
    }
    total
}

/// Writes the API server served on the kinds mutu writes (its own status
/// subresources included, the status that Kubernetes' controllers write excluded).
fn mutu_kind_writes(apiserver_metrics: &str) -> u64 {
    sum_where(apiserver_metrics, "apiserver_request_total", |l| {
        let verb = l.get("verb").map(String::as_str).unwrap_or_default();
        if !matches!(
            verb,
            "POST" | "PUT" | "PATCH" | "APPLY" | "DELETE" | "DELETECOLLECTION"
        ) {
            return false;
        }
        let group = l.get("group").map(String::as_str).unwrap_or_default();
        let resource = l.get("resource").map(String::as_str).unwrap_or_default();
        let sub = l.get("subresource").map(String::as_str).unwrap_or_default();
        match group {
            "hosting.imio.be" => true,
            "" => {
                sub.is_empty()
                    && matches!(
                        resource,
                        "configmaps"
                            | "services"
                            | "persistentvolumeclaims"
                            | "secrets"
                            | "namespaces"
                            | "resourcequotas"
                            | "limitranges"
                    )
            }
            "apps" => sub.is_empty() && matches!(resource, "statefulsets" | "deployments"),
            "networking.k8s.io" => {
                sub.is_empty() && matches!(resource, "ingresses" | "networkpolicies")
            }
            "policy" => sub.is_empty() && resource == "poddisruptionbudgets",
            "rbac.authorization.k8s.io" => {
                sub.is_empty()
                    && matches!(
                        resource,
                        "rolebindings" | "clusterroles" | "clusterrolebindings"
                    )
            }
            "batch" => sub.is_empty() && resource == "jobs",
            _ => false,
        }
    }) as u64
}

async fn apiserver_metrics(client: &Client) -> anyhow::Result<String> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    Ok(client.request_text(req).await?)
}

fn operator_writes(metrics: &str) -> u64 {
    sum_where(metrics, "mutu_api_writes_total", |_| true) as u64
}

fn reconciles(metrics: &str) -> f64 {
    sum_where(metrics, "mutu_reconciles_total", |_| true)
}

/// Sites Ready now, among those of the tenants named `prefix-*`.
/// A cache of every `K`, kept by a watch: what the benchmark reads every
/// second to draw its curves. Listing thousands of objects every second would
/// load the API server as much as what is measured; a watch sends each change
/// once. The watch runs until the returned task is aborted.
async fn watched<K>(api: Api<K>) -> anyhow::Result<(Store<K>, tokio::task::JoinHandle<()>)>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(api, watcher::Config::default().page_size(500)).default_backoff(),
    );
    let task = tokio::spawn(stream.for_each(|_| std::future::ready(())));
    reader
        .wait_until_ready()
        .await
        .context("the benchmark's watch stopped before its first list")?;
    Ok((reader, task))
}

/// Sites Ready among those in the namespaces of the fleet `prefix`.
fn sites_ready(store: &Store<PloneSite>, prefix: &str) -> u32 {
    let ns_prefix = mutu_api::tenant_namespace(prefix);
    store
        .state()
        .iter()
        .filter(|s| {
            s.namespace().is_some_and(|n| n.starts_with(&ns_prefix))
                && s.status.as_ref().is_some_and(|st| {
                    conditions::is_true(&st.conditions, mutu_api::CONDITION_READY)
                })
        })
        .count() as u32
}

/// Sites of the bulk apply whose two servers (the Plone deployment and its
/// ZEO statefulset `<site>-zeo`) are ready, in the namespaces starting with
/// `raw_ns`.
fn raw_sites_ready(
    deployments: &[Arc<Deployment>],
    statefulsets: &[Arc<StatefulSet>],
    raw_ns: &str,
) -> u32 {
    let mut ready: BTreeMap<(&str, &str), u8> = BTreeMap::new();
    for d in deployments {
        let ns = d.metadata.namespace.as_deref().unwrap_or_default();
        if ns.starts_with(raw_ns)
            && d.status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0)
                >= d.spec.replicas.unwrap_or(1)
        {
            let name = d.metadata.name.as_deref().unwrap_or_default();
            *ready.entry((ns, name)).or_default() += 1;
        }
    }
    for s in statefulsets {
        let ns = s.metadata.namespace.as_deref().unwrap_or_default();
        if ns.starts_with(raw_ns)
            && s.status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0)
                >= 1
        {
            let name = s.metadata.name.as_deref().unwrap_or_default();
            *ready
                .entry((ns, name.trim_end_matches("-zeo")))
                .or_default() += 1;
        }
    }
    ready.values().filter(|v| **v == 2).count() as u32
}

/// Runs `work` (an apply) and, beside it from its start, counts `ready()`
/// every `every` until `n` are ready and the work is done: the curve of
/// sites ready over time, in seconds since the start. An error of the work
/// ends it at once; `timeout` bounds the wait for `n`.
async fn sample_during<T>(
    work: impl std::future::Future<Output = anyhow::Result<T>>,
    ready: impl Fn() -> u32,
    n: u32,
    every: Duration,
    timeout: Duration,
    what: &str,
) -> anyhow::Result<(T, Vec<(f64, u32)>)> {
    let started = tokio::time::Instant::now();
    let sampling = async {
        let mut curve = Vec::new();
        loop {
            let count = ready();
            curve.push((started.elapsed().as_secs_f64(), count));
            if count >= n {
                return anyhow::Ok(curve);
            }
            anyhow::ensure!(
                started.elapsed() < timeout,
                "only {count} of {n} {what} after {} s",
                timeout.as_secs()
            );
            tokio::time::sleep(every).await;
        }
    };
    futures::try_join!(work, sampling)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Reads a run saved with `--save`, for the phase this run does not measure.
fn read_saved(path: &std::path::Path, args: &FleetArgs) -> anyhow::Result<Saved> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the saved run {}", path.display()))?;
    let saved: Saved = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a run saved by --save", path.display()))?;
    anyhow::ensure!(
        saved.results.sites == args.sites,
        "the saved run {} measured {} sites, this one {}: merge runs of the same size",
        path.display(),
        saved.results.sites,
        args.sites
    );
    let (needed, has) = match args.phase {
        Phase::Operators => ("bulk", saved.bulk_measured),
        Phase::Bulk => ("operators", saved.operators_measured),
        Phase::All => anyhow::bail!("--merge needs --phase operators or --phase bulk"),
    };
    anyhow::ensure!(
        has,
        "the saved run {} has no {needed} phase to merge",
        path.display()
    );
    Ok(saved)
}

/// Fills the phase this run did not measure from a saved run.
fn merge(mut r: Results, phase: Phase, saved: Saved) -> Results {
    let s = saved.results;
    match phase {
        Phase::Operators => {
            r.raw_apply_s = s.raw_apply_s;
            r.raw_curve = saved.raw_curve;
            r
        }
        Phase::Bulk => Results {
            raw_apply_s: r.raw_apply_s,
            raw_curve: r.raw_curve,
            operator_curve: saved.operator_curve,
            ..s
        },
        Phase::All => r,
    }
}

/// Runs one phase on a control plane of its own, started fresh in the
/// benchmark's directory and removed afterwards unless kept.
async fn on_fresh_control_plane<'a, F, Fut>(
    args: &FleetArgs,
    keep: bool,
    phase: F,
) -> anyhow::Result<()>
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + 'a,
{
    eprintln!(
        "starting the benchmark's control plane in {}",
        args.dir.display()
    );
    // Whatever a previous run left there goes first: each phase starts empty.
    crate::dev::stop(crate::dev::Local::at(&args.dir, args.api_port)?).await?;
    let local = crate::dev::start(&args.dir, args.api_port, keep).await?;
    let result = async {
        let kubeconfig = kube::config::Kubeconfig::read_from(&local.kubeconfig)?;
        let client = Client::try_from(
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?,
        )?;
        make_room(&client, args.sites).await?;
        phase(client).await
    }
    .await;
    if !keep {
        crate::dev::stop(local).await?;
    }
    result
}

/// Room for the fleet's pods on the simulated nodes.
async fn make_room(client: &Client, n: u32) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let pods_per_node = (u64::from(n) * 5 / 5 + 1000).max(1000);
    for node in nodes.list(&ListParams::default()).await? {
        let name = node.name_any();
        let capacity = json!({"cpu": "2000", "memory": "8000Gi", "pods": pods_per_node.to_string(), "ephemeral-storage": "50Ti"});
        nodes
            .patch_status(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&json!({"apiVersion": "v1", "kind": "Node", "status": {"capacity": capacity, "allocatable": capacity}})),
            )
            .await?;
    }
    Ok(())
}

/// The operators' phase: converge, quiet period, restart, changes, memory.
async fn operators(args: &FleetArgs, client: Client, r: &mut Results) -> anyhow::Result<()> {
    let n = args.sites;
    let kubeconfig = crate::dev::Local::at(&args.dir, args.api_port)?.kubeconfig;
    let products: Api<Product> = Api::all(client.clone());
    apply_json(&products, PRODUCT, &product()).await?;

    // 1. The operators bring the fleet from applied to Ready.
    let log = args.dir.join("operator.log");
    let metrics_port = args.api_port + 11;
    let mut operator = Operator::start(&kubeconfig, metrics_port, &log)?;
    operator.wait_ready().await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    r.baseline_rss_mb = operator.rss_mb();
    let plan = fleet_plan("bench", n);
    r.tenants = plan.len() as u32;
    let tenants: Api<MemberTenant> = Api::all(client.clone());
    let sites: Api<PloneSite> = Api::all(client.clone());
    eprintln!("applying {} tenants", plan.len());
    futures::stream::iter(plan.iter().map(|(t, k)| {
        let tenants = tenants.clone();
        async move { apply_json(&tenants, t, &tenant(t, *k)).await }
    }))
    .buffer_unordered(usize::from(args.concurrency))
    .try_collect::<Vec<_>>()
    .await?;
    wait_namespaces(&client, &plan, Duration::from_secs(args.timeout)).await?;

    let peak = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling, pid) = (peak.clone(), sampling.clone(), operator.child.id());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kb(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let (site_cache, site_watch) = watched(sites.clone()).await?;
    eprintln!("applying {n} sites; the operators bring them to Ready");
    let applied = {
        let sites_ns = client.clone();
        futures::stream::iter(
            plan.iter()
                .flat_map(|(t, k)| (1..=*k).map(move |i| (t.clone(), i)))
                .map(move |(t, i)| {
                    let client = sites_ns.clone();
                    async move {
                        let body = site(&t, i);
                        let api: Api<PloneSite> =
                            Api::namespaced(client, &mutu_api::tenant_namespace(&t));
                        apply_json(&api, &format!("site-{i:02}"), &body).await
                    }
                }),
        )
        .buffer_unordered(usize::from(args.concurrency))
        .try_collect::<Vec<_>>()
    };
    let sampled = sample_during(
        applied,
        || sites_ready(&site_cache, "bench"),
        n,
        Duration::from_secs(1),
        Duration::from_secs(args.timeout),
        "sites Ready",
    )
    .await;
    site_watch.abort();
    (_, r.operator_curve) = sampled?;
    r.converge_s = r.operator_curve.last().map(|c| c.0).unwrap_or_default();
    eprintln!("all {n} sites Ready in {:.1} s", r.converge_s);

    // 2. Nothing changes: no write.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let (api0, op0) = (
        mutu_kind_writes(&apiserver_metrics(&client).await?),
        operator_writes(&operator.metrics().await?),
    );
    eprintln!("quiet for {} s", args.quiet);
    tokio::time::sleep(Duration::from_secs(args.quiet)).await;
    let (api1, op1) = (
        mutu_kind_writes(&apiserver_metrics(&client).await?),
        operator_writes(&operator.metrics().await?),
    );
    r.noop_writes = api1.saturating_sub(api0);
    r.noop_writes_by_operator = op1.saturating_sub(op0);
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    r.peak_rss_mb = peak.load(Ordering::Relaxed) as f64 / 1024.0;
    r.steady_rss_mb = operator.rss_mb();
    r.rss_per_site_kb = ((r.steady_rss_mb - r.baseline_rss_mb) * 1024.0 / f64::from(n)).max(0.0);

    // 3. A restart: no write, each object reconciled about once.
    eprintln!("restarting the operators");
    operator.stop();
    let before = mutu_kind_writes(&apiserver_metrics(&client).await?);
    let mut operator = Operator::start(&kubeconfig, metrics_port, &log)?;
    operator.wait_ready().await?;
    let mut last = -1.0;
    let settle = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let now = reconciles(&operator.metrics().await?);
        if now == last || settle.elapsed() > Duration::from_secs(args.timeout) {
            break;
        }
        last = now;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after_metrics = operator.metrics().await?;
    r.restart_writes = mutu_kind_writes(&apiserver_metrics(&client).await?).saturating_sub(before);
    r.restart_writes_by_operator = operator_writes(&after_metrics);
    let certificates = Api::<mutu_api::Certificate>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items
        .len();
    let issuers = Api::<mutu_api::CertificateIssuer>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items
        .len();
    let objects = n as usize + plan.len() + certificates + issuers + 1;
    r.reconciles_per_object_after_restart = reconciles(&after_metrics) / objects as f64;

    // 4. One site changes while the fleet sits idle.
    let mut samples = Vec::new();
    let step = (n / args.changes.max(1)).max(1);
    for k in 0..args.changes.min(n) {
        let idx = k * step;
        let (t, _) = &plan[(idx / SITES_PER_TENANT) as usize];
        let name = format!("site-{:02}", idx % SITES_PER_TENANT + 1);
        let api: Api<PloneSite> = Api::namespaced(client.clone(), &mutu_api::tenant_namespace(t));
        let replicas = if k % 2 == 0 { 2 } else { 1 };
        let t0 = Instant::now();
        let patched = api
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER),
                &Patch::Merge(&json!({"spec": {"replicas": replicas}})),
            )
            .await?;
        let generation = patched.metadata.generation;
        loop {
            let s = api.get(&name).await?;
            let st = s.status.clone().unwrap_or_default();
            if st.observed_generation == generation
                && st.ready_replicas == Some(replicas)
                && conditions::is_true(&st.conditions, mutu_api::CONDITION_READY)
            {
                break;
            }
            anyhow::ensure!(
                t0.elapsed() < Duration::from_secs(300),
                "{t}/{name} did not become Ready after its change"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        samples.push(t0.elapsed().as_secs_f64());
    }
    samples.sort_by(f64::total_cmp);
    r.p50_change_to_ready_s = percentile(&samples, 50.0);
    r.p99_change_to_ready_s = percentile(&samples, 99.0);
    operator.stop();
    Ok(())
}

/// The floor's phase.
async fn bulk(args: &FleetArgs, client: Client, r: &mut Results) -> anyhow::Result<()> {
    let n = args.sites;
    // 5. The floor: the same objects, rendered by the same build functions,
    // applied in bulk with nobody reconciling, until their servers are ready.
    eprintln!("bulk apply of the same objects for {n} sites, no operator");
    let raw_plan = fleet_plan("raw", n);
    let product_spec: mutu_api::ProductSpec = serde_json::from_value(product()["spec"].clone())?;
    let catalog = BTreeMap::from([(PRODUCT.to_string(), product_spec.clone())]);
    let mut objects: Vec<serde_json::Value> = Vec::new();
    for (t, k) in &raw_plan {
        let mut tenant_obj: MemberTenant = serde_json::from_value(tenant(t, *k))?;
        tenant_obj.metadata.uid = Some(format!("raw-uid-{t}"));
        let d = mutu_tenant::build::build(&tenant_obj, &catalog, &Default::default());
        objects.push(serde_json::to_value(&d.namespace)?);
        objects.push(serde_json::to_value(&d.quota)?);
        objects.push(serde_json::to_value(&d.limits)?);
        for p in &d.policies {
            objects.push(serde_json::to_value(p)?);
        }
        objects.push(serde_json::to_value(&d.admins)?);
        objects.push(serde_json::to_value(&d.reader_role)?);
        objects.push(serde_json::to_value(&d.reader_binding)?);
        for i in 1..=*k {
            let mut s: PloneSite = serde_json::from_value(site(t, i))?;
            s.metadata.uid = Some(format!("raw-uid-{t}-{i}"));
            let plan = mutu_site::build::Plan {
                product: PRODUCT.into(),
                release: "1.0".into(),
                upgrade_to: None,
                pool: mutu_api::POOL_FRONTEND.into(),
                suspended: false,
                issuer: "dev-ca".into(),
                ingress_class: "nginx".into(),
                solr_env: BTreeMap::new(),
                create_site: false,
                data_volume: None,
                offline: false,
                maintenance_backend: ("mutu-maintenance.mutu-system.svc".into(), 8080),
            };
            let d = mutu_site::build::build(&s, &product_spec, &plan)?;
            let mut push = |v: serde_json::Value| objects.push(v);
            for o in d.config.iter() {
                push(serde_json::to_value(o)?);
            }
            for o in d.services.iter() {
                push(serde_json::to_value(o)?);
            }
            for o in d.zeo_data.iter().chain(d.data.iter()) {
                push(serde_json::to_value(o)?);
            }
            for o in d.zeo.iter() {
                push(serde_json::to_value(o)?);
            }
            for o in d.deployment.iter() {
                push(serde_json::to_value(o)?);
            }
            for o in d.pdb.iter() {
                push(serde_json::to_value(o)?);
            }
            for o in d.ingress.iter() {
                push(serde_json::to_value(o)?);
            }
            for o in d.certificate.iter() {
                push(serde_json::to_value(o)?);
            }
        }
    }
    // Nothing owns them (the owners do not exist): the garbage collector must not take them.
    for o in objects.iter_mut() {
        if let Some(m) = o.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            m.remove("ownerReferences");
        }
    }
    let discovery = kube::Discovery::new(client.clone()).run().await?;
    let (deployments, deployment_watch) = watched(Api::<Deployment>::all(client.clone())).await?;
    let (statefulsets, statefulset_watch) =
        watched(Api::<StatefulSet>::all(client.clone())).await?;
    // Namespaces first, then the rest, as an operator would. The count runs
    // beside the apply from its start: at 10,000 sites the apply itself takes
    // longer than its servers take to become ready.
    let (namespaces, rest): (Vec<_>, Vec<_>) =
        objects.into_iter().partition(|o| o["kind"] == "Namespace");
    let applied = async {
        for batch in [namespaces, rest] {
            futures::stream::iter(batch.into_iter().map(|o| {
                let client = client.clone();
                let discovery = &discovery;
                async move { apply_dynamic(&client, discovery, &o).await }
            }))
            .buffer_unordered(usize::from(args.concurrency))
            .try_collect::<Vec<_>>()
            .await?;
        }
        anyhow::Ok(())
    };
    let raw_ns = mutu_api::tenant_namespace("raw");
    let sampled = sample_during(
        applied,
        || raw_sites_ready(&deployments.state(), &statefulsets.state(), &raw_ns),
        n,
        Duration::from_secs(1),
        Duration::from_secs(args.timeout),
        "bulk-applied sites ready",
    )
    .await;
    deployment_watch.abort();
    statefulset_watch.abort();
    (_, r.raw_curve) = sampled?;
    r.raw_apply_s = r.raw_curve.last().map(|c| c.0).unwrap_or_default();
    Ok(())
}

/// Waits until every tenant's namespace exists.
async fn wait_namespaces(
    client: &Client,
    plan: &[(String, u32)],
    timeout: Duration,
) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let started = Instant::now();
    loop {
        let names: std::collections::BTreeSet<String> = api
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .map(|n| n.name_any())
            .collect();
        let missing = plan
            .iter()
            .filter(|(t, _)| !names.contains(&mutu_api::tenant_namespace(t)))
            .count();
        if missing == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < timeout,
            "{missing} tenant namespaces missing"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Server-side applies one object of any kind the API server serves.
async fn apply_dynamic(
    client: &Client,
    discovery: &kube::Discovery,
    obj: &serde_json::Value,
) -> anyhow::Result<()> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
    let (ar, caps) = discovery
        .resolve_gvk(&gvk)
        .with_context(|| format!("the API server does not serve {api_version} {kind}"))?;
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let api: Api<kube::api::DynamicObject> =
        match (caps.scope, obj["metadata"]["namespace"].as_str()) {
            (kube::discovery::Scope::Namespaced, Some(ns)) => {
                Api::namespaced_with(client.clone(), ns, &ar)
            }
            _ => Api::all_with(client.clone(), &ar),
        };
    // A claim's creation can meet a conflict on the namespace's quota, which
    // the API server's quota admission updates for every concurrent claim:
    // the client retries, as the operators do.
    let mut attempt = 0;
    loop {
        match api
            .patch(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(obj),
            )
            .await
        {
            Err(kube::Error::Api(e)) if e.code == 409 && attempt < 10 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            done => {
                done.with_context(|| format!("cannot apply {kind} {name}"))?;
                return Ok(());
            }
        }
    }
}

/// Sites Ready over time, for the operators and for the bulk apply.
fn svg(r: &Results) -> String {
    let (w, h, m) = (800.0, 480.0, 60.0);
    let t_max = r
        .operator_curve
        .iter()
        .chain(r.raw_curve.iter())
        .map(|c| c.0)
        .fold(1.0_f64, f64::max);
    let n = f64::from(r.sites.max(1));
    let x = |t: f64| m + (w - 2.0 * m) * t / t_max;
    let y = |v: u32| h - m - (h - 2.0 * m) * f64::from(v) / n;
    // A phase not measured has no curve, and no legend.
    let series = |curve: &[(f64, u32)], colour: &str, dash: &str, ly: f64, legend: &str| {
        if curve.is_empty() {
            return String::new();
        }
        let points = curve
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
            .collect::<Vec<_>>()
            .join(" ");
        format!(
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash} points=\"{points}\"/>\n\
             <text x=\"{lx}\" y=\"{ly}\" fill=\"{colour}\">{legend}</text>\n",
            lx = w - m - 330.0
        )
    };
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="13">
<rect width="100%" height="100%" fill="#fff"/>
<text x="{m}" y="30" font-size="16">{sites} sites: Ready over time</text>
<line x1="{m}" y1="{b}" x2="{r}" y2="{b}" stroke="#333"/>
<line x1="{m}" y1="{m}" x2="{m}" y2="{b}" stroke="#333"/>
<text x="{r}" y="{bl}" text-anchor="end">{t_max:.0} s</text>
<text x="{m}" y="{bl}">0</text>
<text x="{ml}" y="{m}" text-anchor="end">{sites}</text>
{op}{raw}</svg>
"##,
        sites = r.sites,
        b = h - m,
        r = w - m,
        bl = h - m + 20.0,
        ml = m - 6.0,
        op = series(
            &r.operator_curve,
            "#1f6feb",
            "",
            h - m - 40.0,
            &format!("mutu's operators ({:.0} s)", r.converge_s)
        ),
        raw = series(
            &r.raw_curve,
            "#d1242f",
            r#" stroke-dasharray="6 4""#,
            h - m - 20.0,
            &format!(
                "bulk server-side apply, no operator ({:.0} s)",
                r.raw_apply_s
            )
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_count_only_the_kinds_mutu_writes() {
        let text = r#"# HELP apiserver_request_total x
apiserver_request_total{code="201",component="apiserver",dry_run="",group="apps",resource="deployments",scope="resource",subresource="",verb="APPLY",version="v1"} 5
apiserver_request_total{code="200",component="apiserver",dry_run="",group="apps",resource="deployments",scope="resource",subresource="status",verb="PUT",version="v1"} 7
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="status",verb="PATCH",version="v1"} 100
apiserver_request_total{code="200",component="apiserver",dry_run="",group="hosting.imio.be",resource="plonesites",scope="resource",subresource="status",verb="APPLY",version="v1alpha1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="configmaps",scope="resource",subresource="",verb="GET",version="v1"} 9
"#;
        assert_eq!(mutu_kind_writes(text), 8);
    }

    #[test]
    fn a_fleet_has_ten_sites_per_tenant() {
        let plan = fleet_plan("bench", 819);
        assert_eq!(plan.len(), 82);
        assert_eq!(plan.iter().map(|(_, k)| k).sum::<u32>(), 819);
        assert_eq!(plan.last().map(|(_, k)| *k), Some(9));
    }

    fn args(phase: Phase, sites: u32) -> FleetArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            fleet: FleetArgs,
        }
        let mut a = Cli::parse_from(["bench", "--sites", &sites.to_string()]).fleet;
        a.phase = phase;
        a
    }

    /// A directory of this test's own.
    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("mutu-bench-fleet-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        dir
    }

    fn saved(dir: &std::path::Path, s: &Saved) -> PathBuf {
        let path = dir.join("saved.json");
        std::fs::write(
            &path,
            serde_json::to_string(s).unwrap_or_else(|e| panic!("{e}")),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        path
    }

    #[test]
    fn a_saved_bulk_phase_completes_an_operators_run() {
        let dir = scratch("0");
        let bulk = Saved {
            results: Results {
                sites: 20,
                raw_apply_s: 10.0,
                ..Default::default()
            },
            bulk_measured: true,
            raw_curve: vec![(1.0, 5), (10.0, 20)],
            ..Default::default()
        };
        let path = saved(&dir, &bulk);
        let loaded =
            read_saved(&path, &args(Phase::Operators, 20)).unwrap_or_else(|e| panic!("{e}"));
        let ours = Results {
            sites: 20,
            converge_s: 15.0,
            noop_writes: 0,
            peak_rss_mb: 80.0,
            operator_curve: vec![(15.0, 20)],
            ..Default::default()
        };
        let r = merge(ours, Phase::Operators, loaded);
        assert_eq!(
            (r.converge_s, r.raw_apply_s, r.peak_rss_mb),
            (15.0, 10.0, 80.0)
        );
        assert_eq!(r.raw_curve.len(), 2);
        assert_eq!(r.operator_curve.len(), 1);
        let chart = svg(&r);
        assert!(chart.contains("operators (15 s)") && chart.contains("no operator (10 s)"));
    }

    #[test]
    fn a_bulk_run_keeps_the_saved_operators_measures() {
        let dir = scratch("1");
        let ops = Saved {
            results: Results {
                sites: 20,
                converge_s: 15.0,
                p99_change_to_ready_s: 1.5,
                ..Default::default()
            },
            operators_measured: true,
            operator_curve: vec![(15.0, 20)],
            ..Default::default()
        };
        let path = saved(&dir, &ops);
        let loaded = read_saved(&path, &args(Phase::Bulk, 20)).unwrap_or_else(|e| panic!("{e}"));
        let ours = Results {
            sites: 20,
            raw_apply_s: 10.0,
            raw_curve: vec![(10.0, 20)],
            ..Default::default()
        };
        let r = merge(ours, Phase::Bulk, loaded);
        assert_eq!(
            (r.converge_s, r.raw_apply_s, r.p99_change_to_ready_s),
            (15.0, 10.0, 1.5)
        );
        assert_eq!((r.operator_curve.len(), r.raw_curve.len()), (1, 1));
    }

    #[test]
    fn a_saved_run_of_another_size_or_without_the_phase_is_refused() {
        let dir = scratch("2");
        let ops = Saved {
            results: Results {
                sites: 20,
                converge_s: 15.0,
                ..Default::default()
            },
            operators_measured: true,
            ..Default::default()
        };
        let path = saved(&dir, &ops);
        let e = read_saved(&path, &args(Phase::Bulk, 30))
            .err()
            .unwrap_or_else(|| panic!("accepted, but should be refused"));
        assert!(
            e.to_string().contains("measured 20 sites, this one 30"),
            "{e}"
        );
        let e = read_saved(&path, &args(Phase::Operators, 20))
            .err()
            .unwrap_or_else(|| panic!("accepted, but should be refused"));
        assert!(e.to_string().contains("no bulk phase"), "{e}");
        let e = read_saved(&path, &args(Phase::All, 20))
            .err()
            .unwrap_or_else(|| panic!("accepted, but should be refused"));
        assert!(
            e.to_string().contains("--phase operators or --phase bulk"),
            "{e}"
        );
        let e = read_saved(&dir.join("none.json"), &args(Phase::Bulk, 20))
            .err()
            .unwrap_or_else(|| panic!("accepted, but should be refused"));
        assert!(e.to_string().contains("cannot read the saved run"), "{e}");
    }

    #[test]
    fn a_chart_of_one_phase_has_one_curve() {
        let r = Results {
            sites: 20,
            converge_s: 15.0,
            operator_curve: vec![(1.0, 3), (15.0, 20)],
            ..Default::default()
        };
        let chart = svg(&r);
        assert_eq!(chart.matches("<polyline").count(), 1);
        assert!(!chart.contains("no operator"));
    }

    /// The fault of the sixth 10,000-site run: the count started once the
    /// apply had finished, so an apply slower than its servers drew one point.
    #[tokio::test(start_paused = true)]
    async fn the_curve_is_sampled_while_the_apply_runs() {
        let applied = Arc::new(AtomicU64::new(0));
        let work = {
            let applied = applied.clone();
            async move {
                for _ in 0..10 {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    applied.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok("applied")
            }
        };
        let (out, curve) = sample_during(
            work,
            || applied.load(Ordering::Relaxed) as u32,
            10,
            Duration::from_secs(1),
            Duration::from_secs(600),
            "sites ready",
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out, "applied");
        assert_eq!(curve.first(), Some(&(0.0, 0)));
        assert_eq!(curve.last().map(|c| c.1), Some(10));
        let mut counts: Vec<u32> = curve.iter().map(|c| c.1).collect();
        counts.dedup();
        assert_eq!(counts, (0..=10).collect::<Vec<u32>>(), "{curve:?}");
        assert!(curve.windows(2).all(|w| w[0].0 < w[1].0), "{curve:?}");
        assert!(
            (30.0..=31.0).contains(&curve[curve.len() - 1].0),
            "{curve:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_apply_error_or_a_timeout_ends_the_sampling() {
        let failed = sample_during(
            async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                Err::<(), _>(anyhow::anyhow!("the API server refused an object"))
            },
            || 0,
            5,
            Duration::from_secs(1),
            Duration::from_secs(600),
            "sites ready",
        );
        let e = failed.await.err().unwrap_or_else(|| panic!("no error"));
        assert!(e.to_string().contains("refused an object"), "{e}");
        let slow = sample_during(
            async { anyhow::Ok(()) },
            || 3,
            5,
            Duration::from_secs(1),
            Duration::from_secs(10),
            "sites ready",
        );
        let e = slow.await.err().unwrap_or_else(|| panic!("no error"));
        assert_eq!(e.to_string(), "only 3 of 5 sites ready after 10 s");
    }

    #[test]
    fn a_raw_site_is_ready_when_both_its_servers_are() {
        let deployment = |ns: &str, name: &str, ready: i32| {
            Arc::new(
                serde_json::from_value::<Deployment>(json!({
                    "metadata": {"namespace": ns, "name": name},
                    "spec": {"replicas": 1, "selector": {}, "template": {}},
                    "status": {"readyReplicas": ready},
                }))
                .unwrap_or_else(|e| panic!("{e}")),
            )
        };
        let zeo = |ns: &str, name: &str, ready: i32| {
            Arc::new(
                serde_json::from_value::<StatefulSet>(json!({
                    "metadata": {"namespace": ns, "name": format!("{name}-zeo")},
                    "spec": {"selector": {}, "template": {}},
                    "status": {"replicas": 1, "readyReplicas": ready},
                }))
                .unwrap_or_else(|e| panic!("{e}")),
            )
        };
        let raw = mutu_api::tenant_namespace("raw");
        let ns1 = format!("{raw}-0001");
        let deployments = [
            deployment(&ns1, "site-01", 1),
            deployment(&ns1, "site-02", 1),
            deployment(&ns1, "site-03", 0),
            deployment("elsewhere", "site-01", 1),
        ];
        let statefulsets = [
            zeo(&ns1, "site-01", 1),
            zeo(&ns1, "site-02", 0),
            zeo(&ns1, "site-03", 1),
            zeo("elsewhere", "site-01", 1),
        ];
        assert_eq!(raw_sites_ready(&deployments, &statefulsets, &raw), 1);
        assert_eq!(raw_sites_ready(&deployments, &[], &raw), 0);
    }

    #[test]
    fn percentiles_of_a_few_samples() {
        let s = [1.0, 2.0, 3.0, 4.0, 10.0];
        assert_eq!(percentile(&s, 50.0), 3.0);
        assert_eq!(percentile(&s, 99.0), 10.0);
        assert_eq!(percentile(&[], 99.0), 0.0);
    }
}
