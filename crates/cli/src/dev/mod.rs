//! `mutu dev up|down|env`: a real Kubernetes control plane on 127.0.0.1 for the
//! demo and the tests: etcd, kube-apiserver, kube-controller-manager and
//! kube-scheduler (built from the upstream Go modules by tests/cluster), kwok
//! for simulated nodes, the node pools, a default StorageClass and the CRDs;
//! beside it Pebble, an ACME server, with pebble-challtestsrv as its DNS server,
//! and the CertificateIssuers `dev-acme` (that Pebble) and `dev-ca` (an
//! internal CA) with the operator's namespace `mutu-system`; and a real Solr
//! (tests/solr) whose admin credentials go into `mutu-system/solr-admin`.

mod acme;
mod bootstrap;
mod faults;
pub mod nodes;
mod pki;
mod process;
mod solr;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use process::Processes;

#[derive(Args)]
pub struct DevArgs {
    #[command(subcommand)]
    command: DevCommand,
    /// State directory (PKI, etcd data, logs, kubeconfig).
    #[arg(long, global = true, env = "MUTU_DEV_DIR", default_value = ".mutu/dev")]
    dir: PathBuf,
    /// Port of the API server; etcd, the controller-manager and the scheduler use
    /// the four ports after it. Pebble's ports derive from it too: for 6443, the
    /// ACME directory is on 14000 (+7557), its management API on 15000 (+8557),
    /// the DNS server on 8053 (+1610, management 8055) and HTTP-01 challenges are
    /// fetched from 127.0.0.1:5002 (-1441).
    #[arg(long, global = true, env = "MUTU_DEV_API_PORT", default_value_t = 6443)]
    api_port: u16,
}

#[derive(Subcommand)]
enum DevCommand {
    /// Build (once, cached) and start the local control plane and Pebble, create
    /// the node pools, the default StorageClass and the dev CertificateIssuers,
    /// install the CRDs. Running it again is harmless.
    Up(UpArgs),
    /// Stop everything `up` started and remove its state directory.
    Down,
    /// Print the `export KUBECONFIG=...` and `export MUTU_ACME_SOLVER_ADDR=...`
    /// lines for this control plane.
    Env,
    /// Stop one component of the running control plane (SIGTERM, SIGKILL after
    /// a grace), to rehearse its failure: etcd, kube-apiserver (or apiserver),
    /// kube-controller-manager (controller-manager), kube-scheduler (scheduler),
    /// kwok, pebble, pebble-challtestsrv, solr, or a real node's process
    /// (e.g. kubelet-physical-1). Stopping a stopped component is harmless.
    Stop(faults::ComponentArgs),
    /// Start a stopped component again with its usual settings, and wait until
    /// it is healthy (the API server's /readyz, Solr's ping, Pebble's directory).
    Start(faults::ComponentArgs),
    /// Stop then start one component.
    Restart(faults::ComponentArgs),
    /// Make a simulated node NotReady as the controller-manager sees it, or
    /// Ready again (on real nodes: `mutu dev stop kubelet-NODE`).
    Node(faults::NodeArgs),
}

#[derive(Args, Clone)]
pub struct UpArgs {
    /// kwok: simulated nodes (no container runs; thousands of sites on one
    /// machine). real: two real kubelets `physical-1` and `frontend-1` with
    /// containerd, CNI, kube-proxy, CoreDNS, a NetworkPolicy firewall
    /// (kube-router) and an ingress controller (Traefik); needs root, and
    /// builds the images the sites run (see README.md, "Real nodes").
    #[arg(long, value_enum, env = "MUTU_DEV_NODES", default_value = "kwok")]
    nodes: nodes::NodeKind,
}

/// Names of the control plane's processes, in start order.
const COMPONENTS: [&str; 5] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
];

/// Where one local control plane keeps its state and which ports it uses.
pub struct Layout {
    root: PathBuf,
    state: PathBuf,
    api_port: u16,
    acme: acme::Ports,
}

impl Layout {
    fn new(args: &DevArgs) -> anyhow::Result<Self> {
        let cwd = std::env::current_dir()?;
        let root = project_root(&cwd)?;
        let state = if args.dir.is_absolute() {
            args.dir.clone()
        } else {
            root.join(&args.dir)
        };
        Ok(Self {
            root,
            state,
            api_port: args.api_port,
            acme: acme::Ports::new(args.api_port)?,
        })
    }

    fn pki(&self) -> PathBuf {
        self.state.join("pki")
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.state.join("kubeconfig")
    }

    fn component_kubeconfig(&self, stem: &str) -> PathBuf {
        self.state
            .join("kubeconfigs")
            .join(format!("{stem}.kubeconfig"))
    }

    fn server(&self) -> String {
        format!("https://127.0.0.1:{}", self.api_port)
    }

    fn etcd_port(&self) -> u16 {
        self.api_port + 1
    }
}

/// The directory holding tests/cluster (the project checkout), from `MUTU_ROOT`
/// or the nearest parent of the current directory.
fn project_root(cwd: &Path) -> anyhow::Result<PathBuf> {
    if let Ok(root) = std::env::var("MUTU_ROOT") {
        return Ok(PathBuf::from(root));
    }
    cwd.ancestors()
        .find(|d| d.join("tests/cluster/build.sh").is_file())
        .map(Path::to_path_buf)
        .context(
            "cannot find the mutu checkout (tests/cluster/build.sh) above the current directory; \
             run from the checkout or set MUTU_ROOT",
        )
}

/// A local control plane started by another command (the benchmarks): its
/// kubeconfig and the address where Pebble validates HTTP-01 challenges.
pub struct Local {
    layout: Layout,
    pub kubeconfig: PathBuf,
    pub solver_addr: String,
}

/// Starts (or finds running) the local control plane in `dir` on `api_port`.
/// If it does not start, what did start is stopped again, unless `keep` (the
/// error holds the failing component's last log lines either way).
pub async fn start(dir: &Path, api_port: u16, keep: bool) -> anyhow::Result<Local> {
    let local = Local::at(dir, api_port)?;
    if let Err(e) = up(&local.layout, nodes::NodeKind::Kwok).await {
        if !keep && let Err(stop) = down(&local.layout).await {
            eprintln!("could not stop the control plane that failed to start: {stop:#}");
        }
        return Err(e);
    }
    Ok(local)
}

impl Local {
    /// The control plane in `dir` on `api_port`, whether it runs or not.
    pub fn at(dir: &Path, api_port: u16) -> anyhow::Result<Local> {
        let layout = Layout::new(&DevArgs {
            command: DevCommand::Env,
            dir: dir.to_path_buf(),
            api_port,
        })?;
        Ok(Local {
            kubeconfig: layout.kubeconfig(),
            solver_addr: layout.acme.solver_addr(),
            layout,
        })
    }
}

/// Stops a control plane of [`start`] and removes its state.
pub async fn stop(local: Local) -> anyhow::Result<()> {
    down(&local.layout).await
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let layout = Layout::new(&args)?;
    match args.command {
        DevCommand::Up(up_args) => {
            up(&layout, up_args.nodes).await?;
            eprintln!();
            print_env(&layout);
            Ok(())
        }
        DevCommand::Down => down(&layout).await,
        DevCommand::Env => {
            print_env(&layout);
            Ok(())
        }
        DevCommand::Stop(c) => faults::stop(&layout, &c.component).await,
        DevCommand::Start(c) => faults::start(&layout, &c.component).await,
        DevCommand::Restart(c) => {
            faults::stop(&layout, &c.component).await?;
            faults::start(&layout, &c.component).await
        }
        DevCommand::Node(n) => faults::node(&layout, n).await,
    }
}

/// The `export` lines for the clients of this control plane: kubectl and the
/// tests (`KUBECONFIG`), and the operator's HTTP-01 solver, where Pebble
/// fetches the challenge responses (`MUTU_ACME_SOLVER_ADDR`).
/// With real nodes, also where the ingress controller listens
/// (`MUTU_INGRESS_HTTP`, `MUTU_INGRESS_HTTPS`) and the operator settings that
/// fit them (Solr's address as pods reach it, the ingress namespace and class).
fn print_env(layout: &Layout) {
    println!("export KUBECONFIG={}", layout.kubeconfig().display());
    match nodes::kind(layout) {
        nodes::NodeKind::Kwok => {
            println!("export MUTU_ACME_SOLVER_ADDR={}", layout.acme.solver_addr())
        }
        nodes::NodeKind::Real => {
            for line in nodes::env_lines(layout) {
                println!("{line}");
            }
        }
    }
}

/// The ports a control plane on `layout.api_port` listens on: the API server,
/// etcd (client and peer), the controller-manager and scheduler, Solr and its
/// ZooKeeper, Pebble and its DNS server, and the operator's HTTP-01 solver.
fn listening_ports(layout: &Layout) -> Vec<u16> {
    let p = layout.api_port;
    let a = &layout.acme;
    vec![
        p,
        p + 1,
        p + 2,
        p + 3,
        p + 4,
        solr::port(p),
        solr::port(p) + 1000,
        a.directory,
        a.management,
        a.dns,
        a.dns_management,
        a.http01,
    ]
}

/// The kernel's range of ephemeral ports, `low..=high`, from which it picks
/// the local port of each outgoing connection (`net.ipv4.ip_local_port_range`).
fn ephemeral_range() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<u16>().ok());
    Some((it.next()??, it.next()??))
}

/// A warning when some of `ports` lie in the ephemeral range `low..=high`:
/// any outgoing connection (the API server's to etcd, a client's to the API
/// server) may hold one of them when its server starts, which then fails with
/// "address already in use".
fn ephemeral_warning(api_port: u16, ports: &[u16], (low, high): (u16, u16)) -> Option<String> {
    let clash: Vec<String> = ports
        .iter()
        .filter(|p| (low..=high).contains(*p))
        .map(u16::to_string)
        .collect();
    if clash.is_empty() {
        return None;
    }
    let highest_offset = ports
        .iter()
        .map(|p| p.saturating_sub(api_port))
        .max()
        .unwrap_or(0);
    let hint = match low.checked_sub(highest_offset + 1) {
        Some(max) if max >= 2466 => {
            format!("choose an --api-port between 2466 and {max}, whose ports all lie below {low}")
        }
        _ => format!("choose an --api-port whose ports all lie below {low}"),
    };
    Some(format!(
        "warning: ports {} of this control plane lie in the kernel's ephemeral port range \
         {low}-{high} (net.ipv4.ip_local_port_range): an outgoing connection may take one of them \
         first, and the server meant for it then fails with \"address already in use\"; {hint}",
        clash.join(", ")
    ))
}

fn step(started: Instant, message: &str) {
    eprintln!("[{:>5.1}s] {message}", started.elapsed().as_secs_f64());
}

async fn up(layout: &Layout, kind: nodes::NodeKind) -> anyhow::Result<()> {
    let started = Instant::now();
    step(started, &format!("state in {}", layout.state.display()));
    nodes::remember(layout, kind)?;
    let real = kind == nodes::NodeKind::Real;
    if let Some(warning) = ephemeral_range()
        .and_then(|range| ephemeral_warning(layout.api_port, &listening_ports(layout), range))
    {
        eprintln!("{warning}");
    }
    let bin = build(layout)?;
    step(
        started,
        &format!("control-plane binaries ready in {}", bin.display()),
    );

    pki::ensure(&layout.pki())?;
    write_kubeconfigs(layout)?;

    let procs = Processes::new(&layout.state);
    let mut crds_installed = false;
    for name in COMPONENTS {
        if real && name == "kwok" {
            continue;
        }
        if let Some(pid) = procs.running(name) {
            step(started, &format!("{name} already running (pid {pid})"));
            continue;
        }
        let (program, args) = component_command(layout, &bin, name);
        let pid = procs.start(name, &program, &args, &[])?;
        step(started, &format!("started {name} (pid {pid})"));
        match name {
            "etcd" => {
                wait_port(
                    &procs,
                    name,
                    pid,
                    layout.etcd_port(),
                    Duration::from_secs(30),
                )
                .await?
            }
            "kube-apiserver" => {}
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
        if name == "kube-apiserver" {
            wait_apiserver(layout, &procs, pid, started).await?;
            // Before the controller-manager starts, so that its quota
            // controller finds mutu's kinds on its first discovery.
            let client = bootstrap::client(&layout.kubeconfig()).await?;
            bootstrap::install_crds(&client, started).await?;
            crds_installed = true;
        }
    }
    for name in COMPONENTS {
        if real && name == "kwok" {
            continue;
        }
        if procs.running(name).is_none() {
            bail!(
                "{name} exited during start-up; last lines of {}:\n{}",
                procs.log_file(name).display(),
                procs.log_tail(name, 20)
            );
        }
    }

    acme::up(layout, &procs, &bin, started).await?;
    // Solr starts in the background while the cluster is prepared.
    let (solr_pid, _) = solr::start(layout, &procs, started)?;

    let client = bootstrap::client(&layout.kubeconfig()).await?;
    if !crds_installed {
        bootstrap::install_crds(&client, started).await?;
    }
    bootstrap::apply(&client, !real, started).await?;
    let ca_path = layout.pki().join("ca.crt");
    let ca = std::fs::read_to_string(&ca_path)
        .with_context(|| format!("cannot read {}", ca_path.display()))?;
    bootstrap::issuers(&client, &layout.acme.directory_url(), &ca, started).await?;
    solr::ready(
        layout,
        &procs,
        solr_pid,
        &client,
        bootstrap::OPERATOR_NAMESPACE,
        started,
    )
    .await?;
    if real {
        nodes::up(layout, &procs, &client, started).await?;
    }
    step(started, "control plane ready");
    Ok(())
}

async fn down(layout: &Layout) -> anyhow::Result<()> {
    let procs = Processes::new(&layout.state);
    if nodes::kind(layout) == nodes::NodeKind::Real {
        nodes::down(layout, &procs).await?;
    }
    if procs.stop(solr::COMPONENT, Duration::from_secs(30)).await {
        eprintln!("stopped {}", solr::COMPONENT);
    }
    for name in COMPONENTS.iter().chain(acme::COMPONENTS.iter()).rev() {
        if procs.stop(name, Duration::from_secs(10)).await {
            eprintln!("stopped {name}");
        }
    }
    if layout.state.exists() {
        std::fs::remove_dir_all(&layout.state)
            .with_context(|| format!("cannot remove {}", layout.state.display()))?;
        eprintln!("removed {}", layout.state.display());
    }
    Ok(())
}

/// Runs tests/cluster/build.sh, which builds once and caches by a hash of its
/// inputs; returns the directory holding the binaries.
fn build(layout: &Layout) -> anyhow::Result<PathBuf> {
    run_build_script(&layout.root.join("tests/cluster/build.sh")).map(PathBuf::from)
}

/// Runs a build script that caches by a hash of its inputs; returns the last
/// line it printed (where its output lives).
fn run_build_script(script: &Path) -> anyhow::Result<String> {
    let stdout = run_build_script_all(script)?;
    let dir = stdout
        .lines()
        .last()
        .with_context(|| format!("{} printed nothing", script.display()))?;
    Ok(dir.trim().to_string())
}

/// Runs a build script, its progress on our stderr; returns what it printed.
fn run_build_script_all(script: &Path) -> anyhow::Result<String> {
    let output = std::process::Command::new("bash")
        .arg(script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "{} failed ({}); its output is above",
            script.display(),
            output.status
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn write_kubeconfigs(layout: &Layout) -> anyhow::Result<()> {
    let pki = layout.pki();
    std::fs::create_dir_all(layout.state.join("kubeconfigs"))?;
    for id in pki::IDENTITIES {
        let text = pki::kubeconfig(&pki, &layout.server(), id.stem)?;
        std::fs::write(layout.component_kubeconfig(id.stem), &text)?;
        if id.stem == "admin" {
            std::fs::write(layout.kubeconfig(), &text)?;
        }
    }
    Ok(())
}

fn component_args(layout: &Layout, name: &str) -> Vec<String> {
    let pki = layout.pki();
    let p = |f: &str| pki.join(f).display().to_string();
    let kc = |stem: &str| layout.component_kubeconfig(stem).display().to_string();
    let port = layout.api_port;
    let flags: Vec<String> = match name {
        "etcd" => {
            let client = format!("http://127.0.0.1:{}", port + 1);
            let peer = format!("http://127.0.0.1:{}", port + 2);
            vec![
                format!("--data-dir={}", layout.state.join("etcd").display()),
                "--name=mutu-dev".into(),
                format!("--listen-client-urls={client}"),
                format!("--advertise-client-urls={client}"),
                format!("--listen-peer-urls={peer}"),
                format!("--initial-advertise-peer-urls={peer}"),
                format!("--initial-cluster=mutu-dev={peer}"),
                "--unsafe-no-fsync=true".into(),
                "--quota-backend-bytes=8589934592".into(),
                "--log-level=warn".into(),
            ]
        }
        "kube-apiserver" => vec![
            format!("--etcd-servers=http://127.0.0.1:{}", port + 1),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={port}"),
            format!("--tls-cert-file={}", p("apiserver.crt")),
            format!("--tls-private-key-file={}", p("apiserver.key")),
            format!("--client-ca-file={}", p("ca.crt")),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!("--service-account-key-file={}", p("sa.pub")),
            format!("--service-account-signing-key-file={}", p("sa.key")),
            "--service-cluster-ip-range=10.96.0.0/16".into(),
            "--authorization-mode=Node,RBAC".into(),
            "--endpoint-reconciler-type=none".into(),
            "--allow-privileged=true".into(),
            "--profiling=false".into(),
            // Real nodes: the API server reaches kubelets at their InternalIP,
            // as a client they authorize (logs, exec, port-forward).
            "--kubelet-preferred-address-types=InternalIP".into(),
            format!(
                "--kubelet-client-certificate={}",
                p("apiserver-kubelet-client.crt")
            ),
            format!("--kubelet-client-key={}", p("apiserver-kubelet-client.key")),
            format!(
                "--cert-dir={}",
                layout.state.join("apiserver-certs").display()
            ),
        ],
        "kube-controller-manager" => vec![
            format!("--kubeconfig={}", kc("controller-manager")),
            format!("--authentication-kubeconfig={}", kc("controller-manager")),
            format!("--authorization-kubeconfig={}", kc("controller-manager")),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={}", port + 3),
            format!("--cert-dir={}", layout.state.join("kcm-certs").display()),
            format!("--service-account-private-key-file={}", p("sa.key")),
            format!("--root-ca-file={}", p("ca.crt")),
            format!("--cluster-signing-cert-file={}", p("ca.crt")),
            format!("--cluster-signing-key-file={}", p("ca.key")),
            "--use-service-account-credentials=true".into(),
            "--leader-elect=false".into(),
            "--enable-hostpath-provisioner=true".into(),
            "--concurrent-deployment-syncs=10".into(),
            "--concurrent-replicaset-syncs=10".into(),
            "--kube-api-qps=200".into(),
            "--kube-api-burst=400".into(),
        ],
        "kube-scheduler" => vec![
            format!("--kubeconfig={}", kc("scheduler")),
            format!("--authentication-kubeconfig={}", kc("scheduler")),
            format!("--authorization-kubeconfig={}", kc("scheduler")),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={}", port + 4),
            format!(
                "--cert-dir={}",
                layout.state.join("scheduler-certs").display()
            ),
            "--leader-elect=false".into(),
            "--kube-api-qps=200".into(),
            "--kube-api-burst=400".into(),
        ],
        _ => Vec::new(),
    };
    flags
}

/// The program and arguments of one of [`COMPONENTS`].
fn component_command(layout: &Layout, bin: &Path, name: &str) -> (PathBuf, Vec<String>) {
    if name == "kwok" {
        (bin.join("kwok"), kwok_args(layout, bin))
    } else {
        let mut args = vec![name.to_string()];
        args.extend(component_args(layout, name));
        (bin.join("mutu-cluster"), args)
    }
}

fn kwok_args(layout: &Layout, bin: &Path) -> Vec<String> {
    vec![
        format!(
            "--kubeconfig={}",
            layout.component_kubeconfig("kwok").display()
        ),
        format!("--config={}", bin.join("kwok-stages.yaml").display()),
        format!(
            "--manage-nodes-with-annotation-selector={}=fake",
            bootstrap::KWOK_ANNOTATION
        ),
        "--cidr=10.244.0.0/16".into(),
        "--node-ip=127.0.0.1".into(),
        "--node-lease-duration-seconds=40".into(),
    ]
}

async fn wait_port(
    procs: &Processes,
    name: &str,
    pid: i32,
    port: u16,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if !procs.started_alive(pid) || Instant::now() > deadline {
            bail!(
                "{name} did not start listening on 127.0.0.1:{port}; last lines of {}:\n{}",
                procs.log_file(name).display(),
                procs.log_tail(name, 20)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_apiserver(
    layout: &Layout,
    procs: &Processes,
    pid: i32,
    started: Instant,
) -> anyhow::Result<()> {
    let client = bootstrap::client(&layout.kubeconfig()).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last_report = Instant::now();
    loop {
        match bootstrap::readyz(&client).await {
            Ok(()) => {
                step(started, "kube-apiserver is ready (/readyz)");
                return Ok(());
            }
            Err(e) => {
                if !procs.started_alive(pid) || Instant::now() > deadline {
                    bail!(
                        "kube-apiserver did not become ready ({e}); last lines of {}:\n{}",
                        procs.log_file("kube-apiserver").display(),
                        procs.log_tail("kube-apiserver", 30)
                    );
                }
                if last_report.elapsed() > Duration::from_secs(5) {
                    step(started, "waiting for kube-apiserver /readyz ...");
                    last_report = Instant::now();
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(api_port: u16) -> Layout {
        Layout::new(&DevArgs {
            command: DevCommand::Env,
            dir: PathBuf::from("/nonexistent/mutu-ports"),
            api_port,
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    const LINUX_DEFAULT: (u16, u16) = (32768, 60999);

    #[test]
    fn the_default_and_test_ports_stay_below_the_ephemeral_range() {
        for api_port in [6443, 16443, 19443, 21443, 22643, 23443, 24210] {
            let ports = listening_ports(&layout(api_port));
            assert_eq!(
                ephemeral_warning(api_port, &ports, LINUX_DEFAULT),
                None,
                "{api_port}: {ports:?}"
            );
        }
    }

    #[test]
    fn ports_in_the_ephemeral_range_are_named_with_a_port_that_avoids_them() {
        let ports = listening_ports(&layout(37443));
        let w = ephemeral_warning(37443, &ports, LINUX_DEFAULT)
            .unwrap_or_else(|| panic!("no warning for {ports:?}"));
        assert!(w.contains("ports 37443, 37444,"), "{w}");
        assert!(w.contains("45000, 46000"), "{w}");
        assert!(w.contains("32768-60999"), "{w}");
        assert!(w.contains("between 2466 and 24210"), "{w}");
        // The highest port that passes is the one the warning suggests.
        let ports = listening_ports(&layout(24211));
        let w = ephemeral_warning(24211, &ports, LINUX_DEFAULT)
            .unwrap_or_else(|| panic!("no warning for {ports:?}"));
        assert!(w.contains("ports 32768 "), "{w}");
        // A range starting too low for any API port still says what to do.
        let w = ephemeral_warning(6443, &listening_ports(&layout(6443)), (1024, 65535))
            .unwrap_or_else(|| panic!("no warning"));
        assert!(
            w.ends_with("choose an --api-port whose ports all lie below 1024"),
            "{w}"
        );
    }
}
