//! The Kubernetes API server answering slowly (a module of the serial tests:
//! it replaces the shared operator for a while).
//!
//! A real fault-injecting proxy, Shopify's Toxiproxy (`tests/cluster/tool.sh
//! toxiproxy` builds its server from the Go module proxy; `tests/run.sh` exports
//! its path as `MUTU_TOXIPROXY`), runs on a free loopback port in front of the
//! API server. It works at the TCP level, so TLS passes through untouched (the
//! API server's certificate is for 127.0.0.1; only the port changes). Its
//! toxics: a latency of 150 ms ± 50 ms on every chunk in each direction (at
//! least 200 ms, about 300 ms on average, added to every request's round
//! trip, and to every watch event), and a slicer cutting the API server's
//! answers into pieces of about 1 KB (TLS records and watch events arrive
//! torn apart).
//!
//! The shared operator is stopped and an operator with the same arguments
//! runs against a copy of the kubeconfig whose server is the proxy. Through
//! it, a new member and a batch of sites of one product converge: the test
//! checks that every site is Ready with its hostname and `SiteCreated`, that
//! each has exactly the children a ZEO site of one replica has (one
//! Deployment, StatefulSet, Ingress, Certificate, data volume claim and
//! ConfigMap, and its two Services, named after the site and labelled with its
//! uid: none lost, none twice, none of a site that does not exist), that each
//! site's creation ran once (one Job, pruned once it succeeded, that made one
//! pod, by the Job controller's Events), that each Certificate is issued, that
//! the site controller wrote no more than a site costs (at most
//! `MAX_WRITES_PER_SITE` per site: about 15 with or without the latency), that
//! the operator's watches stayed healthy (`/readyz`, no broken watch), and
//! prints the time the batch took and what the operator counted. It also
//! checks that the proxy is in the path: a GET through it takes at least the
//! least latency its toxics add, and the operator's connections (from `/proc`)
//! go to the proxy, none to the API server. Then the toxics go, a GET through
//! the proxy is fast again, and a site created afterwards becomes Ready
//! through the same operator and proxy.
//!
//! Measured on two cores: the batch of 30 sites Ready in about 25 s through
//! the toxics, about 12 s through the proxy without latency; the whole test
//! takes about a minute, the member's deletion included.
//!
//! Whatever happens, the proxy and the slowed operator are stopped and the
//! shared operator runs again (with the normal kubeconfig) for the tests
//! after this one; the member and its sites are deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::FutureExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Event, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams, ListParams};
use kube::{Client, Resource, ResourceExt};
use mutu_api::{Certificate, MemberTenant, PloneSite};
use mutu_e2e::{create_product, create_site, member_entitled_to, scrape, site_json};
use mutu_runtime::conditions;
use mutu_runtime::metrics::sum_samples;
use mutu_runtime::testing::{self, eventually, unique_name};
use serde_json::json;

/// Sites of the batch that converges through the slow API server.
const SITES: usize = 30;
/// Latency added to every chunk, in each direction, and its jitter (ms).
const LATENCY_MS: u64 = 150;
const JITTER_MS: u64 = 50;
/// The least a request's round trip takes through the toxics.
const MIN_ROUND_TRIP: Duration = Duration::from_millis(2 * (LATENCY_MS - JITTER_MS));
/// The site controller's writes per site, at most (a ZEO site of one replica
/// costs about 15: its children, its admin Secret, its statuses, its creation
/// Job deleted): more would be work done twice.
const MAX_WRITES_PER_SITE: u64 = 25;
/// How long the batch may take to converge through them.
const CONVERGE: Duration = Duration::from_secs(150);
const PROXY: &str = "kube-api";

fn var(k: &str) -> anyhow::Result<String> {
    std::env::var(k).map_err(|_| anyhow::anyhow!("{k} is not set; run through `make test`"))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
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

/// A child process killed (and reaped) when dropped.
struct Process(std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A toxiproxy server of the test's own, and its HTTP API.
struct Toxiproxy {
    _process: Process,
    api: String,
    http: reqwest::Client,
}

impl Toxiproxy {
    /// Starts `bin` on a free loopback port, its log in `log`, and waits until it answers.
    async fn start(bin: &str, log: &Path) -> anyhow::Result<Self> {
        let port = free_port()?.to_string();
        let out = std::fs::File::create(log)?;
        let child = std::process::Command::new(bin)
            .args(["-host", "127.0.0.1", "-port", &port])
            .env("LOG_LEVEL", "info")
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot run toxiproxy {bin}: {e}"))?;
        let mut process = Process(child);
        let api = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(r) = http.get(format!("{api}/version")).send().await
                && r.status().is_success()
            {
                println!("toxiproxy {} on {api}", r.text().await?.trim());
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline && process.0.try_wait()?.is_none(),
                "toxiproxy did not start: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self {
            _process: process,
            api,
            http,
        })
    }

    async fn post(&self, path: &str, body: serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let r = self
            .http
            .post(format!("{}{path}", self.api))
            .json(&body)
            .send()
            .await?;
        let status = r.status();
        let text = r.text().await?;
        anyhow::ensure!(
            status.is_success(),
            "toxiproxy POST {path}: {status} {text}"
        );
        Ok(serde_json::from_str(&text)?)
    }

    /// A proxy to `upstream` on a free loopback port; returns where it listens.
    async fn proxy(&self, name: &str, upstream: &str) -> anyhow::Result<String> {
        let created = self
            .post(
                "/proxies",
                json!({"name": name, "listen": "127.0.0.1:0", "upstream": upstream}),
            )
            .await?;
        let listen = created["listen"].as_str().unwrap_or_default().to_string();
        anyhow::ensure!(
            listen.starts_with("127.0.0.1:")
                && !listen.ends_with(":0")
                && created["enabled"] == true,
            "toxiproxy made no usable proxy: {created}"
        );
        Ok(listen)
    }

    async fn add_toxic(&self, proxy: &str, toxic: serde_json::Value) -> anyhow::Result<()> {
        self.post(&format!("/proxies/{proxy}/toxics"), toxic)
            .await?;
        Ok(())
    }

    /// The names of the toxics of `proxy`.
    async fn toxics(&self, proxy: &str) -> anyhow::Result<Vec<String>> {
        let list: serde_json::Value = self
            .http
            .get(format!("{}/proxies/{proxy}/toxics", self.api))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(list
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["name"].as_str().map(String::from))
            .collect())
    }

    async fn remove_toxics(&self, proxy: &str) -> anyhow::Result<()> {
        for name in self.toxics(proxy).await? {
            self.http
                .delete(format!("{}/proxies/{proxy}/toxics/{name}", self.api))
                .send()
                .await?
                .error_for_status()?;
        }
        Ok(())
    }
}

/// The operator that `make test` runs, stopped for the test's time: started
/// again with its own kubeconfig by [`SharedOperator::restore`], or else when
/// dropped (without waiting until it is ready).
struct SharedOperator {
    stopped: bool,
}

impl SharedOperator {
    /// Stops it (SIGTERM, SIGKILL after 10 s) and waits until it is gone, so
    /// its metrics port is free.
    async fn stop() -> anyhow::Result<Self> {
        let pid: u32 = std::fs::read_to_string(var("MUTU_OPERATOR_PID_FILE")?)?
            .trim()
            .parse()?;
        let guard = Self { stopped: true };
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if alive(pid) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while alive(pid) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        anyhow::ensure!(!alive(pid), "the shared operator (pid {pid}) does not stop");
        Ok(guard)
    }

    /// Starts it again, as before, and waits until it is ready.
    async fn restore(&mut self) -> anyhow::Result<()> {
        if self.stopped {
            self.stopped = false;
            mutu_e2e::restart_operator(false, &[]).await?;
        }
        Ok(())
    }
}

impl Drop for SharedOperator {
    fn drop(&mut self) {
        if !self.stopped {
            return;
        }
        // The same command as `restart_operator`, in its log and pid file.
        let spawned = (|| {
            let log = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(var("MUTU_OPERATOR_LOG")?)?;
            let child = std::process::Command::new(var("MUTU_BIN")?)
                .args(var("MUTU_OPERATOR_ARGS")?.split_whitespace())
                .stdin(std::process::Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()?;
            std::fs::write(var("MUTU_OPERATOR_PID_FILE")?, format!("{}\n", child.id()))?;
            anyhow::Ok(())
        })();
        if let Err(e) = spawned {
            eprintln!("cannot start the shared operator again: {e}");
        }
    }
}

/// The API server's URL in the kubeconfig (`KUBECONFIG`), and its address.
fn api_server() -> anyhow::Result<(String, String)> {
    let path = var("KUBECONFIG")?;
    let config = kube::config::Kubeconfig::read_from(&path)?;
    let server = config
        .clusters
        .iter()
        .filter_map(|c| c.cluster.as_ref()?.server.clone())
        .next()
        .ok_or_else(|| anyhow::anyhow!("no server in {path}"))?;
    let address = server
        .strip_prefix("https://")
        .ok_or_else(|| anyhow::anyhow!("not an https server: {server}"))?
        .trim_end_matches('/')
        .to_string();
    anyhow::ensure!(
        address.starts_with("127.0.0.1:"),
        "not the local control plane: {server}"
    );
    Ok((server, address))
}

/// Writes to `copy` the kubeconfig (`KUBECONFIG`) with `listen` as its server instead of `server`.
fn kubeconfig_through(server: &str, listen: &str, copy: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(var("KUBECONFIG")?)?;
    anyhow::ensure!(
        text.matches(server).count() == 1,
        "the kubeconfig names {server} once"
    );
    std::fs::write(copy, text.replace(server, &format!("https://{listen}")))?;
    Ok(())
}

/// The remote ports of the established TCP connections of process `pid` to 127.0.0.1, with how
/// many go to each (from `/proc`: its sockets, and the connections of its network namespace).
fn connections(pid: u32) -> anyhow::Result<BTreeMap<u16, usize>> {
    let mut inodes = BTreeSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let target = std::fs::read_link(fd?.path()).unwrap_or_default();
        let target = target.to_string_lossy();
        if let Some(inode) = target
            .strip_prefix("socket:[")
            .and_then(|t| t.strip_suffix(']'))
        {
            inodes.insert(inode.to_string());
        }
    }
    let mut ports = BTreeMap::new();
    for line in std::fs::read_to_string(format!("/proc/{pid}/net/tcp"))?
        .lines()
        .skip(1)
    {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(remote), Some(state), Some(inode)) =
            (fields.get(2), fields.get(3), fields.get(9))
        else {
            continue;
        };
        // 01: established; 0100007F: 127.0.0.1.
        if *state != "01" || !inodes.contains(*inode) {
            continue;
        }
        if let Some(("0100007F", port)) = remote.split_once(':') {
            *ports.entry(u16::from_str_radix(port, 16)?).or_default() += 1;
        }
    }
    Ok(ports)
}

/// The shortest of 3 round trips of `client` to the API server (after one to connect).
async fn round_trip(client: &Client) -> anyhow::Result<Duration> {
    client.apiserver_version().await?;
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        client.apiserver_version().await?;
        best = best.min(start.elapsed());
    }
    Ok(best)
}

/// Names of children, each with the owner uid it carries, by the site they belong to.
type BySite = BTreeMap<String, Vec<(String, String)>>;

/// The names of the objects of kind `K` in `ns` that mutu manages, by the site they belong to,
/// each with the owner uid it carries.
async fn children<K>(client: &Client, ns: &str) -> anyhow::Result<BySite>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let list = Api::<K>::namespaced(client.clone(), ns)
        .list_metadata(&ListParams::default().labels("app.kubernetes.io/managed-by=mutu"))
        .await?;
    let mut by_site = BySite::new();
    for o in list.items {
        let labels = o.labels();
        let site = labels
            .get(mutu_api::common::SITE_LABEL)
            .cloned()
            .unwrap_or_default();
        let owner = labels
            .get("hosting.imio.be/owner-uid")
            .cloned()
            .unwrap_or_default();
        by_site.entry(site).or_default().push((o.name_any(), owner));
    }
    Ok(by_site)
}

/// [`exactly_the_children`], given 15 s for the Job controller's Events to
/// be written (a child too many or too few stays so).
async fn settled_children(
    client: &Client,
    ns: &str,
    sites: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match exactly_the_children(client, ns, sites).await {
            Err(e) if Instant::now() < deadline => {
                println!("not yet: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            done => return done,
        }
    }
}

/// Checks that each of `sites` (name, uid) has exactly the children of a ZEO
/// site of one replica, named after it and labelled with its uid, and that
/// nothing else of mutu's (bar the member's own objects) is in `ns`.
async fn exactly_the_children(
    client: &Client,
    ns: &str,
    sites: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    type Names = fn(&str) -> Vec<String>;
    let kinds: Vec<(&str, BySite, Names)> = vec![
        (
            "Deployment",
            children::<Deployment>(client, ns).await?,
            |s| vec![s.to_string()],
        ),
        (
            "StatefulSet",
            children::<StatefulSet>(client, ns).await?,
            |s| vec![format!("{s}-zeo")],
        ),
        ("Service", children::<Service>(client, ns).await?, |s| {
            vec![s.to_string(), format!("{s}-zeo")]
        }),
        ("Ingress", children::<Ingress>(client, ns).await?, |s| {
            vec![s.to_string()]
        }),
        (
            "Certificate",
            children::<Certificate>(client, ns).await?,
            |s| vec![format!("{s}-tls")],
        ),
        (
            "PersistentVolumeClaim",
            children::<PersistentVolumeClaim>(client, ns).await?,
            |s| vec![format!("data-{s}-zeo-0")],
        ),
        ("ConfigMap", children::<ConfigMap>(client, ns).await?, |s| {
            vec![format!("{s}-mutu")]
        }),
    ];
    let mut problems = Vec::new();
    for (kind, by_site, names) in &kinds {
        for (site, uid) in sites {
            let mut want = names(site);
            want.sort();
            let got = by_site.get(site).cloned().unwrap_or_default();
            let mut got_names: Vec<String> = got.iter().map(|(n, _)| n.clone()).collect();
            got_names.sort();
            if got_names != want {
                problems.push(format!("{kind} of {site}: {got_names:?}, want {want:?}"));
            }
            for (name, owner) in &got {
                if owner != uid {
                    problems.push(format!(
                        "{kind} {name} of {site} owned by {owner}, not {uid}"
                    ));
                }
            }
        }
        let strays: Vec<&String> = by_site
            .keys()
            .filter(|s| !s.is_empty() && !sites.contains_key(*s))
            .collect();
        if !strays.is_empty() {
            problems.push(format!("{kind} of sites that do not exist: {strays:?}"));
        }
        if let Some(unlabelled) = by_site.get("") {
            problems.push(format!("{kind} of no site: {unlabelled:?}"));
        }
    }
    // Each site's creation ran once: one Job (pruned once it succeeded, as
    // `SiteCreated` says), which made one pod, as the Job controller's Events tell.
    let events = Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default().fields("involvedObject.kind=Job"))
        .await?;
    for site in sites.keys() {
        let job = format!("{site}-create");
        let of_job: Vec<&Event> = events
            .items
            .iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(job.as_str()))
            .collect();
        let jobs: BTreeSet<&str> = of_job
            .iter()
            .filter_map(|e| e.involved_object.uid.as_deref())
            .collect();
        let pods: i32 = of_job
            .iter()
            .filter(|e| e.reason.as_deref() == Some("SuccessfulCreate"))
            .map(|e| e.count.unwrap_or(1))
            .sum();
        if jobs.len() != 1 || pods != 1 {
            problems.push(format!(
                "{job}: {} Jobs made {pods} pods: {:?}",
                jobs.len(),
                of_job
                    .iter()
                    .map(|e| format!("{:?} {:?}", e.reason, e.message))
                    .collect::<Vec<_>>()
            ));
        }
    }
    anyhow::ensure!(
        problems.is_empty(),
        "{} problems with the sites' children:\n{}",
        problems.len(),
        problems.join("\n")
    );
    Ok(())
}

/// The sites of `ns` that are Ready, by name, with their uid.
async fn ready_sites(api: &Api<PloneSite>) -> anyhow::Result<(usize, BTreeMap<String, String>)> {
    let list = api.list(&ListParams::default()).await?;
    let all = list.items.len();
    let ready = list
        .items
        .iter()
        .filter(|s| {
            s.status
                .as_ref()
                .is_some_and(|st| conditions::is_true(&st.conditions, "Ready"))
        })
        .map(|s| (s.name_any(), s.uid().unwrap_or_default()))
        .collect();
    Ok((all, ready))
}

/// The operator's `/metrics`, and `/readyz` answering "ready".
async fn healthy_operator(metrics_url: &str) -> anyhow::Result<String> {
    let ready = scrape(&metrics_url.replace("/metrics", "/readyz")).await?;
    anyhow::ensure!(ready.trim() == "ready", "the operator's /readyz: {ready}");
    let metrics = scrape(metrics_url).await?;
    let broken: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("mutu_watch_broken{") && l.ends_with("} 1"))
        .collect();
    anyhow::ensure!(broken.is_empty(), "broken watches: {broken:?}");
    Ok(metrics)
}

fn mean_seconds(metrics: &str, name: &str, filter: &str) -> f64 {
    let sum = sum_samples_f64(metrics, &format!("{name}_sum"), filter);
    let count = sum_samples_f64(metrics, &format!("{name}_count"), filter);
    if count > 0.0 { sum / count } else { 0.0 }
}

/// The sum of the samples of `name` whose labels contain `filter` (floating point).
fn sum_samples_f64(metrics: &str, name: &str, filter: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_batch_of_sites_converges_through_a_slow_api_server_with_nothing_lost_or_twice()
-> anyhow::Result<()> {
    let toxiproxy = var("MUTU_TOXIPROXY")?;
    let operator_log = var("MUTU_OPERATOR_LOG")?;
    let metrics_url = var("MUTU_OPERATOR_METRICS")?;
    let client = testing::client().await?;

    // The shared operator goes first; the guard starts it again whatever happens.
    let mut shared = SharedOperator::stop().await?;
    let mut run = Run {
        toxiproxy,
        metrics_url,
        slow_log: PathBuf::from(format!("{operator_log}.slow-api")),
        proxy_log: PathBuf::from(format!("{operator_log}.toxiproxy")),
        // It holds the admin's key: removed at the end.
        kubeconfig: std::env::temp_dir()
            .join(format!("mutu-slow-api-{}.kubeconfig", std::process::id())),
        proxy: None,
        slow: None,
        member: None,
    };
    let body = std::panic::AssertUnwindSafe(scenario(&client, &mut run))
        .catch_unwind()
        .await;
    // The slowed operator and the proxy stop, then the shared operator runs again.
    drop(run.slow.take());
    drop(run.proxy.take());
    let _ = std::fs::remove_file(&run.kubeconfig);
    let restored = shared.restore().await;
    if let Some((tenant, product)) = run.member.take() {
        // Gone before the next tests, which count the fleet.
        let tenants: Api<MemberTenant> = Api::all(client.clone());
        let _ = tenants.delete(&tenant, &DeleteParams::default()).await;
        let gone = eventually(
            Duration::from_secs(120),
            "the member and its sites to be gone",
            || {
                let tenants = tenants.clone();
                let tenant = tenant.clone();
                async move { tenants.get_opt(&tenant).await.ok()?.is_none().then_some(()) }
            },
        )
        .await;
        let _ = Api::<mutu_api::Product>::all(client.clone())
            .delete(&product, &DeleteParams::default())
            .await;
        if let Err(e) = gone {
            eprintln!("{e}");
        }
    }
    let result = match body {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    if result.is_err() {
        eprintln!(
            "--- last lines of the slowed operator's log ({}):",
            run.slow_log.display()
        );
        let text = std::fs::read_to_string(&run.slow_log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        for line in &lines[lines.len().saturating_sub(30)..] {
            eprintln!("{line}");
        }
    }
    result?;
    restored?;
    mutu_e2e::fault_scenario_passed(&format!(
        "API server slowed by Toxiproxy ({LATENCY_MS} ms ± {JITTER_MS} ms each way, answers torn): \
         {SITES} new sites converge, nothing lost or twice, then a site after the toxics went"
    ));
    Ok(())
}

/// What the scenario starts and makes, stopped or deleted after it whatever happened.
struct Run {
    toxiproxy: String,
    metrics_url: String,
    slow_log: PathBuf,
    proxy_log: PathBuf,
    kubeconfig: PathBuf,
    proxy: Option<Toxiproxy>,
    slow: Option<Process>,
    /// The member and the product, once made.
    member: Option<(String, String)>,
}

async fn scenario(client: &Client, run: &mut Run) -> anyhow::Result<()> {
    let (metrics_url, slow_log, kubeconfig) = (
        run.metrics_url.as_str(),
        run.slow_log.as_path(),
        run.kubeconfig.as_path(),
    );
    // The proxy in front of the API server, and a kubeconfig through it.
    let proxy = run
        .proxy
        .insert(Toxiproxy::start(&run.toxiproxy, &run.proxy_log).await?);
    let (server, upstream) = api_server()?;
    let listen = proxy.proxy(PROXY, &upstream).await?;
    kubeconfig_through(&server, &listen, kubeconfig)?;
    let through = mutu_e2e::plane::client_of(kubeconfig).await?;
    let direct_rtt = round_trip(client).await?;
    let clean_rtt = round_trip(&through).await?;
    for (name, stream) in [("latency-down", "downstream"), ("latency-up", "upstream")] {
        proxy
            .add_toxic(
                PROXY,
                json!({"name": name, "type": "latency", "stream": stream,
                       "attributes": {"latency": LATENCY_MS, "jitter": JITTER_MS}}),
            )
            .await?;
    }
    // Answers torn into pieces of about 1 KB, 100 µs apart.
    proxy
        .add_toxic(
            PROXY,
            json!({"name": "slicer-down", "type": "slicer", "stream": "downstream",
                   "attributes": {"average_size": 1024, "size_variation": 512, "delay": 100}}),
        )
        .await?;
    // The proxy is in the path: a GET through it takes the added latency.
    let slow_rtt = round_trip(&through).await?;
    println!(
        "GET /version: {direct_rtt:?} direct, {clean_rtt:?} through the proxy, \
         {slow_rtt:?} with {LATENCY_MS} ms ± {JITTER_MS} ms each way"
    );
    anyhow::ensure!(
        slow_rtt >= MIN_ROUND_TRIP,
        "a GET through the proxy took {slow_rtt:?}, less than the {MIN_ROUND_TRIP:?} its toxics add"
    );

    // The operator, as the shared one but through the proxy.
    let args = var("MUTU_OPERATOR_ARGS")?;
    let out = std::fs::File::create(slow_log)?;
    let started = Instant::now();
    let child = std::process::Command::new(var("MUTU_BIN")?)
        .args(args.split_whitespace())
        .env("KUBECONFIG", kubeconfig)
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()?;
    let slow = run.slow.insert(Process(child));
    let readyz = metrics_url.replace("/metrics", "/readyz");
    eventually(
        Duration::from_secs(90),
        "the slowed operator to be ready",
        || async { scrape(&readyz).await.ok().filter(|b| b.trim() == "ready") },
    )
    .await?;
    let ready_in = started.elapsed();
    anyhow::ensure!(slow.0.try_wait()?.is_none(), "the slowed operator exited");

    // A member entitled to the batch and one more, then the batch.
    let product = unique_name("slow-p");
    create_product(client, &product, json!({"replicas": 1})).await?;
    let started = Instant::now();
    let (tenant, ns, domain) =
        member_entitled_to(client, "slow", &product, SITES as i32 + 1).await?;
    run.member = Some((tenant.clone(), product.clone()));
    let tenant_in = started.elapsed();
    let names: Vec<String> = (0..SITES).map(|i| format!("s-{i:02}")).collect();
    let started = Instant::now();
    for name in &names {
        let mut site = site_json(&ns, name, &product, &[format!("{name}.{domain}")]);
        site["spec"]["deletionPolicy"] = json!("Delete");
        create_site(client, site).await?;
    }
    let sites: Api<PloneSite> = Api::namespaced(client.clone(), &ns);
    let ready = eventually(CONVERGE, "every site of the batch to be Ready", || {
        let sites = sites.clone();
        async move {
            let (_, ready) = ready_sites(&sites).await.ok()?;
            (ready.len() == SITES).then_some(ready)
        }
    })
    .await;
    let ready = match ready {
        Ok(ready) => ready,
        Err(e) => {
            let (all, ready) = ready_sites(&sites).await?;
            anyhow::bail!("{e}: {} of {all} Ready", ready.len());
        }
    };
    let converged_in = started.elapsed();
    // Their certificates, issued by the certificate controller through the same proxy.
    let certs: Api<Certificate> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    eventually(
        CONVERGE,
        "every certificate of the batch to be issued",
        || {
            let (certs, secrets, ready) = (certs.clone(), secrets.clone(), ready.clone());
            async move {
                let list = certs.list(&ListParams::default()).await.ok()?;
                let issued = list
                    .items
                    .iter()
                    .filter(|c| {
                        c.status
                            .as_ref()
                            .is_some_and(|s| conditions::is_true(&s.conditions, "Ready"))
                    })
                    .count();
                let names: BTreeSet<String> = secrets
                    .list_metadata(&ListParams::default())
                    .await
                    .ok()?
                    .items
                    .iter()
                    .map(|s| s.name_any())
                    .collect();
                let all_secrets = ready.keys().all(|s| {
                    names.contains(&format!("{s}-tls")) && names.contains(&format!("{s}-admin"))
                });
                (issued == SITES && all_secrets).then_some(())
            }
        },
    )
    .await?;
    let issued_in = started.elapsed();
    // The proxy carried the operator's traffic: it has connections to the
    // proxy, none to the API server.
    let ports = connections(slow.0.id())?;
    let port = |address: &str| -> anyhow::Result<u16> {
        Ok(address.rsplit(':').next().unwrap_or_default().parse()?)
    };
    let (to_proxy, to_api) = (port(&listen)?, port(&upstream)?);
    let through_proxy = ports.get(&to_proxy).copied().unwrap_or_default();
    anyhow::ensure!(
        through_proxy > 0 && !ports.contains_key(&to_api),
        "the operator's connections (remote port: how many) are not all through the proxy \
         ({to_proxy}, not {to_api}): {ports:?}"
    );

    // Nothing lost, nothing twice, and the operator healthy.
    let (all, ready) = ready_sites(&sites).await?;
    assert_eq!(all, SITES, "sites in {ns}");
    assert_eq!(
        ready.keys().cloned().collect::<Vec<_>>(),
        names,
        "the Ready sites"
    );
    for site in sites.list(&ListParams::default()).await? {
        let status = site.status.clone().unwrap_or_default();
        let name = site.name_any();
        assert!(
            conditions::is_true(&status.conditions, "SiteCreated"),
            "{name}: {:?}",
            status.conditions
        );
        assert_eq!(status.hostnames, vec![format!("{name}.{domain}")], "{name}");
    }
    settled_children(client, &ns, &ready).await?;
    let metrics = healthy_operator(metrics_url).await?;
    let products: Api<mutu_api::Product> = Api::all(client.clone());
    eventually(CONVERGE, "the product to count its ready sites", || async {
        let status = products.get(&product).await.ok()?.status?;
        (status.sites == Some(SITES as i32)).then_some(())
    })
    .await?;
    let site_writes = sum_samples(&metrics, "mutu_api_writes_total", "controller=\"site\"");
    let site_reconciles = sum_samples(&metrics, "mutu_reconciles_total", "controller=\"site\"");
    let errors = sum_samples(&metrics, "mutu_reconcile_errors_total", "");
    let watch_errors = sum_samples(&metrics, "mutu_watch_errors_total", "");
    let relists = sum_samples(&metrics, "mutu_watch_relists_total", "");
    let log = std::fs::read_to_string(slow_log).unwrap_or_default();
    let watch_failures = log.matches("watch failed").count();
    println!(
        "through {LATENCY_MS} ms ± {JITTER_MS} ms each way: operator ready in {ready_in:.1?}, \
         member Ready in {tenant_in:.1?}, {SITES} sites Ready in {converged_in:.1?}, \
         their certificates issued in {issued_in:.1?}; {through_proxy} connections of the \
         operator through the proxy"
    );
    println!(
        "the operator: {site_reconciles} site reconciles ({:.2} s on average), {site_writes} writes \
         of the site controller ({:.1} per site), {errors} reconcile errors, {watch_errors} watch \
         errors, {relists} relists, {watch_failures} `watch failed` in its log",
        mean_seconds(
            &metrics,
            "mutu_reconcile_duration_seconds",
            "controller=\"site\""
        ),
        site_writes as f64 / SITES as f64,
    );
    anyhow::ensure!(
        site_writes <= MAX_WRITES_PER_SITE * SITES as u64,
        "{site_writes} writes of the site controller for {SITES} new sites"
    );
    for line in metrics.lines().filter(|l| {
        (l.starts_with("mutu_reconcile_errors_total{") || l.starts_with("mutu_watch_errors_total{"))
            && !l.ends_with(" 0")
    }) {
        println!("  {line}");
    }

    // The toxics gone, a GET through the proxy is fast again, and a site
    // created now becomes Ready through the same operator.
    proxy.remove_toxics(PROXY).await?;
    anyhow::ensure!(proxy.toxics(PROXY).await?.is_empty(), "toxics left");
    let healed_rtt = round_trip(&through).await?;
    anyhow::ensure!(
        healed_rtt < MIN_ROUND_TRIP,
        "a GET through the proxy still takes {healed_rtt:?} without its toxics"
    );
    let started = Instant::now();
    let mut site = site_json(&ns, "after", &product, &[format!("after.{domain}")]);
    site["spec"]["deletionPolicy"] = json!("Delete");
    create_site(client, site).await?;
    mutu_e2e::wait_site_condition(
        client,
        &ns,
        "after",
        "Ready",
        "True",
        None,
        Duration::from_secs(60),
    )
    .await?;
    let after_in = started.elapsed();
    let (all, ready) = ready_sites(&sites).await?;
    assert_eq!((all, ready.len()), (SITES + 1, SITES + 1));
    settled_children(client, &ns, &ready).await?;
    healthy_operator(metrics_url).await?;
    anyhow::ensure!(slow.0.try_wait()?.is_none(), "the slowed operator exited");
    println!("without the toxics: GET /version {healed_rtt:?}, a new site Ready in {after_in:.1?}");
    Ok(())
}
