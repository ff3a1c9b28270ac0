//! Real nodes for `mutu dev up --nodes real`: instead of kwok's simulated
//! nodes, two real kubelets of the control plane's release, `physical-1` (pool
//! `physical`) and `frontend-1` (pool `frontend`), each with its own
//! containerd and runc, CNI plugins, kube-proxy and kube-router's NetworkPolicy
//! firewall; in the cluster, CoreDNS and the Traefik ingress controller.
//!
//! The network lives on this machine only. Each node is a network namespace
//! (`mutu-physical-1`, `mutu-frontend-1`) on a bridge `mutu0` of the host
//! (10.77.0.1/24); its pods get addresses from the node's own /24 of
//! 10.244.0.0/16 through the `ptp` CNI plugin, so every packet between pods is
//! routed by a node (where kube-proxy's and kube-router's rules see it). The
//! nodes have no default route: nothing leaves for another address. The
//! services of the host that pods need (the API server, Solr, the operator's
//! HTTP-01 solver) are forwarded from 10.77.0.1 to 127.0.0.1 by socat, and the
//! ingress controller's NodePorts are forwarded to 127.0.0.1 for clients and
//! for Pebble's HTTP-01 validations.
//!
//! Processes run on the host's filesystem (one state directory per node) and in
//! the node's network namespace only (`nsenter --net`), so kubelet and runc see
//! the host's cgroup hierarchies; each node's pods live under a cgroup of its
//! own (`/mutu-NODE`).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

mod cluster;
mod teardown;

use super::process::Processes;
use super::{Layout, pki, step};
use cluster::{STORAGE_NAMESPACE, coredns, storage, traefik};
pub use teardown::down;

/// The host's address on the nodes' bridge.
pub const HOST_IP: [u8; 4] = [10, 77, 0, 1];
const BRIDGE: &str = "mutu0";
const BRIDGE_CIDR: &str = "10.77.0.1/24";
/// The Services' virtual addresses (the API server's --service-cluster-ip-range).
const SERVICE_CIDR: &str = "10.96.0.0/16";
/// The cluster DNS Service's address, which the kubelets give every pod.
const CLUSTER_DNS: &str = "10.96.0.10";
const POD_CIDR: &str = "10.244.0.0/16";
/// NodePorts of the ingress controller (HTTP, HTTPS), forwarded to 127.0.0.1.
const INGRESS_NODE_PORTS: (u16, u16) = (30080, 30443);
/// Namespace and IngressClass of the ingress controller.
pub const INGRESS_NAMESPACE: &str = "ingress";
pub const INGRESS_CLASS: &str = "traefik";
const FIELD_MANAGER: &str = "mutu-dev";

/// One real node.
pub struct RealNode {
    pub name: &'static str,
    pub pool: &'static str,
    index: u8,
}

/// The real nodes, in start order.
pub const NODES: [RealNode; 2] = [
    RealNode {
        name: "physical-1",
        pool: mutu_api::POOL_PHYSICAL,
        index: 0,
    },
    RealNode {
        name: "frontend-1",
        pool: mutu_api::POOL_FRONTEND,
        index: 1,
    },
];

impl RealNode {
    fn ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, 0, 11 + self.index)
    }
    fn pod_cidr(&self) -> String {
        format!("10.244.{}.0/24", 1 + self.index)
    }
    fn netns(&self) -> String {
        format!("mutu-{}", self.name)
    }
    /// The host side of the node's veth pair (at most 15 characters).
    fn veth(&self) -> String {
        format!("mutu-veth{}", self.index)
    }
    fn cgroup(&self) -> String {
        format!("mutu-{}", self.name)
    }
    fn dir(&self, layout: &Layout) -> PathBuf {
        layout.state.join("nodes").join(self.name)
    }
    fn socket(&self, layout: &Layout) -> PathBuf {
        self.dir(layout).join("containerd.sock")
    }
    fn process(&self, component: &str) -> String {
        format!("{component}-{}", self.name)
    }
}

/// Which kind of nodes a control plane has, remembered in its state directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum NodeKind {
    /// kwok's simulated nodes: thousands of sites on one machine, no container runs.
    Kwok,
    /// Real kubelets, containerd, CNI, kube-proxy, CoreDNS, a NetworkPolicy
    /// firewall and an ingress controller (Linux, root).
    Real,
}

fn kind_file(layout: &Layout) -> PathBuf {
    layout.state.join("nodes.kind")
}

/// The kind of nodes of the control plane in `layout` (kwok when it was never
/// started with real ones).
pub fn kind(layout: &Layout) -> NodeKind {
    match std::fs::read_to_string(kind_file(layout)) {
        Ok(text) if text.trim() == "real" => NodeKind::Real,
        _ => NodeKind::Kwok,
    }
}

/// Records the kind of nodes; refuses to change it on a running control plane.
pub fn remember(layout: &Layout, wanted: NodeKind) -> anyhow::Result<()> {
    let file = kind_file(layout);
    if file.exists() && kind(layout) != wanted {
        bail!(
            "the control plane in {} runs with {:?} nodes; `mutu dev down` it first to start it \
             with {:?} nodes",
            layout.state.display(),
            kind(layout),
            wanted
        );
    }
    std::fs::create_dir_all(&layout.state)?;
    let text = match wanted {
        NodeKind::Kwok => "kwok\n",
        NodeKind::Real => "real\n",
    };
    std::fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))
}

/// Ports on 127.0.0.1 of a real-node control plane, derived from the API port.
pub struct Ports {
    /// The ingress controller's HTTP entry: also where Pebble fetches HTTP-01
    /// challenges, so they go through the ingress controller.
    pub ingress_http: u16,
    /// The ingress controller's HTTPS entry (the port Pebble would use for
    /// TLS-ALPN-01, which it never does here).
    pub ingress_https: u16,
    /// The operator's HTTP-01 solver, behind the ingress controller.
    pub solver: u16,
}

impl Ports {
    pub fn new(layout: &Layout) -> Self {
        Self {
            ingress_http: layout.acme.http01,
            ingress_https: layout.acme.tls_alpn01,
            solver: layout.acme.http01 + 1,
        }
    }
}

/// The `export` lines of a real-node control plane, beside KUBECONFIG.
pub fn env_lines(layout: &Layout) -> Vec<String> {
    let ports = Ports::new(layout);
    let host = Ipv4Addr::from(HOST_IP);
    let mut lines = vec![
        format!("export MUTU_ACME_SOLVER_ADDR=127.0.0.1:{}", ports.solver),
        format!("export MUTU_INGRESS_HTTP=127.0.0.1:{}", ports.ingress_http),
        format!(
            "export MUTU_INGRESS_HTTPS=127.0.0.1:{}",
            ports.ingress_https
        ),
        format!(
            "export MUTU_SOLR_URL=http://{host}:{}/solr",
            super::solr::port(layout.api_port)
        ),
        // Traefik loads a new challenge route within about a second (its
        // provider throttle is 500 ms here): ask Pebble to validate after that.
        "export MUTU_ACME_PROPAGATION_DELAY=3s".to_string(),
        format!("export MUTU_INGRESS_NAMESPACE={INGRESS_NAMESPACE}"),
        format!("export MUTU_INGRESS_CLASS={INGRESS_CLASS}"),
        // The members' backup volumes are mounted by Jobs on any node.
        format!("export MUTU_BACKUP_STORAGE_CLASS={}", cluster::SHARED_CLASS),
    ];
    if let Ok(image) = std::fs::read_to_string(volume_image_file(layout)) {
        lines.push(format!("export MUTU_BACKUP_VOLUME_IMAGE={}", image.trim()));
    }
    lines
}

/// Runs `program args`, failing with its output when it fails.
fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program).args(args).output().with_context(|| {
        format!("cannot run {program} (is it installed? tests/setup.sh installs it)")
    })?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `program args` succeeds (for existence checks).
fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Refuses early, with what to do, where real nodes cannot run.
fn preflight() -> anyhow::Result<()> {
    if !nix::unistd::Uid::effective().is_root() {
        bail!(
            "real nodes need root (network namespaces, cgroups, mounts); run `mutu dev up --nodes \
             real` as root, or use the default kwok nodes"
        );
    }
    for tool in ["ip", "nsenter", "socat", "iptables", "ipset", "conntrack"] {
        if !succeeds("sh", &["-c", &format!("command -v {tool}")]) {
            bail!("{tool} is required by the real nodes; tests/setup.sh installs it");
        }
    }
    if !Path::new("/sys/fs/cgroup/memory").is_dir()
        && !Path::new("/sys/fs/cgroup/cgroup.controllers").is_file()
    {
        bail!("no cgroup hierarchy under /sys/fs/cgroup: kubelet cannot run here");
    }
    Ok(())
}

/// The bridge, the nodes' namespaces and veths, and the routes between them.
/// Idempotent.
fn network() -> anyhow::Result<()> {
    if !succeeds("ip", &["link", "show", BRIDGE]) {
        run("ip", &["link", "add", BRIDGE, "type", "bridge"])?;
    }
    if !run("ip", &["-4", "addr", "show", "dev", BRIDGE])?.contains(BRIDGE_CIDR) {
        run("ip", &["addr", "add", BRIDGE_CIDR, "dev", BRIDGE])?;
    }
    run("ip", &["link", "set", BRIDGE, "up"])?;
    let host = Ipv4Addr::from(HOST_IP).to_string();
    for node in &NODES {
        let ns = node.netns();
        if !run("ip", &["netns", "list"])?
            .lines()
            .any(|l| l.split_whitespace().next() == Some(ns.as_str()))
        {
            run("ip", &["netns", "add", &ns])?;
        }
        let veth = node.veth();
        if !succeeds("ip", &["link", "show", &veth]) {
            run(
                "ip",
                &[
                    "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
                ],
            )?;
        }
        run("ip", &["link", "set", &veth, "master", BRIDGE, "up"])?;
        let addr = format!("{}/24", node.ip());
        if !run("ip", &["-n", &ns, "-4", "addr", "show", "dev", "eth0"])?.contains(&addr) {
            run("ip", &["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
        }
        run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
        run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        run(
            "ip",
            &[
                "netns",
                "exec",
                &ns,
                "sysctl",
                "-q",
                "-w",
                "net.ipv4.ip_forward=1",
            ],
        )?;
        // Services are DNATed by kube-proxy, but a connection needs a route
        // before its first packet reaches the rules.
        run(
            "ip",
            &[
                "-n",
                &ns,
                "route",
                "replace",
                SERVICE_CIDR,
                "via",
                &host,
                "dev",
                "eth0",
            ],
        )?;
        for other in NODES.iter().filter(|o| o.index != node.index) {
            run(
                "ip",
                &[
                    "-n",
                    &ns,
                    "route",
                    "replace",
                    &other.pod_cidr(),
                    "via",
                    &other.ip().to_string(),
                    "dev",
                    "eth0",
                ],
            )?;
        }
        run(
            "ip",
            &[
                "route",
                "replace",
                &node.pod_cidr(),
                "via",
                &node.ip().to_string(),
                "dev",
                BRIDGE,
            ],
        )?;
    }
    Ok(())
}

/// The cgroup v1 hierarchies (or the v2 root) under which each node's pods live.
fn cgroup_roots(node: &RealNode) -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.controllers").is_file() {
        return vec![base.join(node.cgroup())];
    }
    let Ok(entries) = std::fs::read_dir(base) else {
        return Vec::new();
    };
    let mut roots: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.join("cgroup.procs").is_file() && p.file_name().is_some_and(|n| n != "unified")
        })
        .map(|p| p.join(node.cgroup()))
        .collect();
    roots.sort();
    roots
}

fn cgroups(node: &RealNode) -> anyhow::Result<()> {
    for dir in cgroup_roots(node) {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        // cpuset: a child starts with no CPUs and no memory nodes.
        if let Some(parent) = dir.parent()
            && parent.join("cpuset.cpus").is_file()
        {
            for file in ["cpuset.cpus", "cpuset.mems"] {
                if std::fs::read_to_string(dir.join(file))
                    .unwrap_or_default()
                    .trim()
                    .is_empty()
                {
                    let value = std::fs::read_to_string(parent.join(file))?;
                    std::fs::write(dir.join(file), value.trim())?;
                }
            }
        }
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn containerd_config(layout: &Layout, node: &RealNode, bin: &Path) -> String {
    let dir = node.dir(layout);
    format!(
        r#"version = 3
root = "{root}"
state = "{state}"
[grpc]
  address = "{socket}"
[ttrpc]
  address = "{socket}.ttrpc"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{pause}"
[plugins."io.containerd.cri.v1.runtime"]
  # The kubelet asks for a negative OOM score for sandboxes and guaranteed pods;
  # without CAP_SYS_RESOURCE (as in this machine's sandbox) runc cannot lower
  # it, so scores are clamped to containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "{runc}"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "{cni}"
"#,
        root = dir.join("containerd").display(),
        state = dir.join("containerd-state").display(),
        socket = node.socket(layout).display(),
        pause = PAUSE_IMAGE,
        runc = bin.join("runc").display(),
        cni = dir.join("cni").display(),
    )
}

/// The sandbox image, built by tests/cluster/node/build.sh.
const PAUSE_IMAGE: &str = "mutu.local/pause:3.10.2";

fn cni_config(layout: &Layout, node: &RealNode) -> String {
    json!({
        "cniVersion": "1.0.0",
        "name": "mutu",
        "plugins": [
            {
                "type": "ptp",
                "ipMasq": false,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": node.pod_cidr()}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": node.dir(layout).join("ipam").display().to_string(),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": true}},
        ],
    })
    .to_string()
}

fn kubelet_config(layout: &Layout, node: &RealNode) -> String {
    format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine mounts cgroup v1 hierarchies; kubelet refuses them unless told.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /{cgroup}
address: {ip}
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: {ca}}}
authorization: {{mode: Webhook}}
clusterDomain: cluster.local
clusterDNS: [{dns}]
# Pods with dnsPolicy Default get no name server: nothing is resolved outside.
resolvConf: ""
failSwapOn: false
containerRuntimeEndpoint: unix://{socket}
# Images are loaded here, never pulled: never collect them.
imageGCHighThresholdPercent: 100
imageMinimumGCAge: 87600h
evictionHard: {{}}
serializeImagePulls: false
maxPods: 60
"#,
        cgroup = node.cgroup(),
        ip = node.ip(),
        ca = layout.pki().join("ca.crt").display(),
        dns = CLUSTER_DNS,
        socket = node.socket(layout).display(),
    )
}

fn kube_proxy_config(layout: &Layout, node: &RealNode) -> String {
    format!(
        r#"apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {{kubeconfig: {kubeconfig}}}
hostnameOverride: {name}
bindAddress: {ip}
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
clusterCIDR: {pods}
nodePortAddresses: [{ip}/32]
mode: iptables
conntrack: {{maxPerCore: 0}}
"#,
        kubeconfig = node.dir(layout).join("kube-proxy.kubeconfig").display(),
        name = node.name,
        ip = node.ip(),
        pods = POD_CIDR,
    )
}

/// A process of a node: run by `nsenter` in the node's network namespace,
/// with the node pieces' directory first on its PATH (containerd finds its
/// shim there).
struct NodeProcess {
    name: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl NodeProcess {
    fn start(&self, procs: &Processes) -> anyhow::Result<i32> {
        if let Some(pid) = procs.running(&self.name) {
            return Ok(pid);
        }
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        procs.start(&self.name, Path::new("nsenter"), &self.args, &env)
    }
}

/// Everything one node runs, in start order: containerd, kubelet, kube-proxy,
/// kube-router.
fn node_processes(layout: &Layout, node: &RealNode, bin: &Path) -> Vec<NodeProcess> {
    let dir = node.dir(layout);
    let netns = format!("--net=/run/netns/{}", node.netns());
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into())
    );
    let env = vec![("PATH".to_string(), path)];
    let s = |p: PathBuf| p.display().to_string();
    let entered = |program: PathBuf, args: Vec<String>| {
        let mut all = vec![netns.clone(), s(program)];
        all.extend(args);
        all
    };
    vec![
        NodeProcess {
            name: node.process("containerd"),
            args: entered(
                bin.join("containerd"),
                vec!["--config".into(), s(dir.join("containerd.toml"))],
            ),
            env: env.clone(),
        },
        NodeProcess {
            name: node.process("kubelet"),
            args: entered(
                bin.join("mutu-node"),
                vec![
                    "kubelet".into(),
                    format!("--kubeconfig={}", s(dir.join("kubelet.kubeconfig"))),
                    format!("--config={}", s(dir.join("kubelet.yaml"))),
                    format!("--root-dir={}", s(dir.join("kubelet"))),
                    format!("--cert-dir={}", s(dir.join("kubelet-pki"))),
                    format!("--node-ip={}", node.ip()),
                    format!("--hostname-override={}", node.name),
                    format!("--node-labels={}={}", mutu_api::POOL_LABEL, node.pool),
                ],
            ),
            env: env.clone(),
        },
        NodeProcess {
            name: node.process("kube-proxy"),
            args: entered(
                bin.join("mutu-node"),
                vec![
                    "kube-proxy".into(),
                    format!("--config={}", s(dir.join("kube-proxy.yaml"))),
                ],
            ),
            env: env.clone(),
        },
        NodeProcess {
            name: node.process("kube-router"),
            args: entered(
                bin.join("kube-router"),
                vec![
                    format!("--kubeconfig={}", s(dir.join("kube-router.kubeconfig"))),
                    format!("--hostname-override={}", node.name),
                    "--run-firewall=true".into(),
                    "--run-router=false".into(),
                    "--run-service-proxy=false".into(),
                    "--enable-cni=false".into(),
                    "--enable-ipv6=false".into(),
                    "--health-port=0".into(),
                    "--metrics-port=0".into(),
                ],
            ),
            env,
        },
    ]
}

/// The forwarders between 127.0.0.1 and the nodes' network, as (process
/// name, listen address, target address).
fn forwards(layout: &Layout) -> Vec<(String, String, String)> {
    let host = Ipv4Addr::from(HOST_IP);
    let ports = Ports::new(layout);
    let frontend = NODES[1].ip();
    let solr = super::solr::port(layout.api_port);
    vec![
        (
            "forward-api".into(),
            format!("{host}:{}", layout.api_port),
            format!("127.0.0.1:{}", layout.api_port),
        ),
        (
            "forward-solr".into(),
            format!("{host}:{solr}"),
            format!("127.0.0.1:{solr}"),
        ),
        (
            "forward-solver".into(),
            format!("{host}:{}", ports.solver),
            format!("127.0.0.1:{}", ports.solver),
        ),
        (
            "ingress-http".into(),
            format!("127.0.0.1:{}", ports.ingress_http),
            format!("{frontend}:{}", INGRESS_NODE_PORTS.0),
        ),
        (
            "ingress-https".into(),
            format!("127.0.0.1:{}", ports.ingress_https),
            format!("{frontend}:{}", INGRESS_NODE_PORTS.1),
        ),
    ]
}

fn socat_args(listen: &str, target: &str) -> Vec<String> {
    let (addr, port) = listen.rsplit_once(':').unwrap_or((listen, ""));
    vec![
        format!("TCP-LISTEN:{port},bind={addr},fork,reuseaddr"),
        format!("TCP:{target}"),
    ]
}

/// Names of every process of the real nodes, in stop order.
pub fn process_names(layout: &Layout) -> Vec<String> {
    let mut names: Vec<String> = forwards(layout).into_iter().map(|(n, _, _)| n).collect();
    for component in ["kube-router", "kube-proxy", "kubelet", "containerd"] {
        for node in &NODES {
            names.push(node.process(component));
        }
    }
    names
}

/// Builds the node pieces (tests/cluster/node/build.sh, cached) and the
/// workload images (images/build.sh, cached); returns the pieces' directory and
/// the images as (reference, archive).
fn build(layout: &Layout) -> anyhow::Result<(PathBuf, Vec<(String, PathBuf)>)> {
    let dir = PathBuf::from(super::run_build_script(
        &layout.root.join("tests/cluster/node/build.sh"),
    )?);
    let mut images = vec![(PAUSE_IMAGE.to_string(), dir.join("images/pause.tar"))];
    for name in ["coredns", "traefik", "local-path-provisioner"] {
        images.push((
            image_ref(name)?,
            dir.join("images").join(format!("{name}.tar")),
        ));
    }
    images.push((busybox_ref(&dir)?, dir.join("images/busybox.tar")));
    let workloads = layout.root.join("images/build.sh");
    if workloads.is_file() {
        let out = super::run_build_script_all(&workloads)?;
        for line in out.lines() {
            if let Some((reference, path)) = line.split_once('\t') {
                images.push((reference.trim().to_string(), PathBuf::from(path.trim())));
            }
        }
    }
    Ok((dir, images))
}

/// The reference of an infrastructure image, from tests/cluster/node/versions.env.
fn image_ref(name: &str) -> anyhow::Result<String> {
    let versions = include_str!("../../../../../tests/cluster/node/versions.env");
    let key = match name {
        "coredns" => "COREDNS_VERSION",
        "traefik" => "TRAEFIK_VERSION",
        "local-path-provisioner" => "LOCAL_PATH_PROVISIONER_VERSION",
        _ => bail!("unknown image {name}"),
    };
    let version = versions
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .with_context(|| format!("{key} missing from tests/cluster/node/versions.env"))?;
    Ok(format!(
        "mutu.local/{name}:{}",
        version.trim().trim_start_matches('v')
    ))
}

/// Where `dev up` notes the image (busybox, on every node) that the operator
/// runs the volume backups in: `dev env` prints it.
fn volume_image_file(layout: &Layout) -> PathBuf {
    layout.state.join("nodes/volume-image.ref")
}

/// The reference of the provisioner's helper image (named after the Debian
/// package it was made from, written by build.sh).
fn busybox_ref(dir: &Path) -> anyhow::Result<String> {
    let file = dir.join("images/busybox.ref");
    Ok(std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?
        .trim()
        .to_string())
}

/// Imports `images` into a node's containerd unless it has them already.
fn import_images(
    layout: &Layout,
    node: &RealNode,
    bin: &Path,
    images: &[(String, PathBuf)],
) -> anyhow::Result<()> {
    let ctr = bin.join("ctr").display().to_string();
    let socket = node.socket(layout).display().to_string();
    let have = run(&ctr, &["-a", &socket, "-n", "k8s.io", "images", "ls", "-q"])?;
    // Which archive each reference was imported from: archives are named by a
    // hash of their inputs, so a rebuilt image under the same reference (a
    // changed application, the operator's new binary) is imported again.
    let imported = node.dir(layout).join("imported");
    std::fs::create_dir_all(&imported)?;
    for (reference, archive) in images {
        let marker = imported.join(reference.replace(['/', ':'], "_"));
        let source = archive.display().to_string();
        if have.lines().any(|l| l.trim() == reference)
            && std::fs::read_to_string(&marker).is_ok_and(|m| m == source)
        {
            continue;
        }
        let base = reference
            .rsplit_once(':')
            .map(|(b, _)| b)
            .unwrap_or(reference);
        run(
            &ctr,
            &[
                "-a",
                &socket,
                "-n",
                "k8s.io",
                "images",
                "import",
                "--base-name",
                base,
                &archive.display().to_string(),
            ],
        )?;
        let now = run(&ctr, &["-a", &socket, "-n", "k8s.io", "images", "ls", "-q"])?;
        if !now.lines().any(|l| l.trim() == reference) {
            bail!(
                "importing {} into {} did not give an image named {reference}",
                archive.display(),
                node.name
            );
        }
        std::fs::write(&marker, &source)?;
    }
    Ok(())
}

async fn wait_file(
    path: &Path,
    what: &str,
    procs: &Processes,
    name: &str,
    pid: i32,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        if Instant::now() > deadline || !procs.started_alive(pid) {
            bail!(
                "{what} did not start; last lines of {}:\n{}",
                procs.log_file(name).display(),
                procs.log_tail(name, 20)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Stops (`run` false) or starts again the kubelet of the real node `name`: the node
/// stops reporting to the API server, or reports again.
pub async fn kubelet(
    layout: &Layout,
    procs: &Processes,
    name: &str,
    run: bool,
) -> anyhow::Result<()> {
    let node = NODES
        .iter()
        .find(|n| n.name == name)
        .with_context(|| format!("there is no real node {name}"))?;
    let process = node.process("kubelet");
    if !run {
        procs.stop(&process, Duration::from_secs(10)).await;
        return Ok(());
    }
    let (bin, _) = build(layout)?;
    let kubelet = node_processes(layout, node, &bin)
        .into_iter()
        .find(|p| p.name == process)
        .with_context(|| format!("node {name} has no kubelet"))?;
    kubelet.start(procs)?;
    Ok(())
}

/// Starts the real nodes and what runs on them. Idempotent.
pub async fn up(
    layout: &Layout,
    procs: &Processes,
    client: &Client,
    started: Instant,
) -> anyhow::Result<()> {
    preflight()?;
    let (bin, images) = build(layout)?;
    step(
        started,
        &format!("real-node binaries and {} images ready", images.len()),
    );
    network()?;
    let server = format!("https://{}:{}", Ipv4Addr::from(HOST_IP), layout.api_port);
    for (name, listen, target) in forwards(layout) {
        if procs.running(&name).is_none() {
            procs.start(
                &name,
                Path::new("socat"),
                &socat_args(&listen, &target),
                &[],
            )?;
        }
    }
    for node in &NODES {
        cgroups(node)?;
        let dir = node.dir(layout);
        write(
            &dir.join("containerd.toml"),
            &containerd_config(layout, node, &bin),
        )?;
        write(&dir.join("cni/10-mutu.conflist"), &cni_config(layout, node))?;
        write(&dir.join("kubelet.yaml"), &kubelet_config(layout, node))?;
        write(
            &dir.join("kube-proxy.yaml"),
            &kube_proxy_config(layout, node),
        )?;
        for (file, stem) in [
            ("kubelet.kubeconfig", format!("node-{}", node.name)),
            ("kube-proxy.kubeconfig", "kube-proxy".to_string()),
            ("kube-router.kubeconfig", "kube-router".to_string()),
        ] {
            write(
                &dir.join(file),
                &pki::kubeconfig(&layout.pki(), &server, &stem)?,
            )?;
        }
        let processes = node_processes(layout, node, &bin);
        let containerd = &processes[0];
        let pid = containerd.start(procs)?;
        wait_file(
            &node.socket(layout),
            "containerd",
            procs,
            &containerd.name,
            pid,
        )
        .await?;
        import_images(layout, node, &bin, &images)?;
        // kubelet now; kube-proxy and kube-router once the node is registered
        // (kube-router gives up on a node it cannot find).
        processes[1].start(procs)?;
        step(
            started,
            &format!(
                "node {} started ({}, pods {})",
                node.name,
                node.ip(),
                node.pod_cidr()
            ),
        );
    }
    wait_ready(client, procs, started).await?;
    for node in &NODES {
        for process in &node_processes(layout, node, &bin)[2..] {
            process.start(procs)?;
        }
    }
    let busybox = busybox_ref(&bin)?;
    // The image the backup Jobs of generic products' volumes run here.
    std::fs::write(volume_image_file(layout), &busybox)?;
    cluster_objects(layout, client, &busybox).await?;
    wait_deployments(client, started).await?;
    for name in process_names(layout) {
        if procs.running(&name).is_none() {
            bail!(
                "{name} exited during start-up; last lines of {}:\n{}",
                procs.log_file(&name).display(),
                procs.log_tail(&name, 20)
            );
        }
    }
    Ok(())
}

async fn wait_ready(client: &Client, procs: &Processes, started: Instant) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let list = nodes.list(&ListParams::default()).await?;
        let ready: Vec<String> = list
            .items
            .iter()
            .filter(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        if NODES.iter().all(|n| ready.iter().any(|r| r == n.name)) {
            step(started, "real nodes Ready");
            return Ok(());
        }
        if Instant::now() > deadline {
            let node = NODES
                .iter()
                .find(|n| !ready.iter().any(|r| r == n.name))
                .map(|n| n.process("kubelet"))
                .unwrap_or_default();
            bail!(
                "node(s) not Ready after 120 s (Ready: {ready:?}); last lines of {}:\n{}",
                procs.log_file(&node).display(),
                procs.log_tail(&node, 30)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn wait_deployments(client: &Client, started: Instant) -> anyhow::Result<()> {
    use k8s_openapi::api::apps::v1::Deployment;
    let deadline = Instant::now() + Duration::from_secs(180);
    for (ns, name) in [
        ("kube-system", "coredns"),
        (INGRESS_NAMESPACE, "traefik"),
        (STORAGE_NAMESPACE, "local-path-provisioner"),
    ] {
        let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
        loop {
            let d = api.get_opt(name).await?;
            let available = d
                .as_ref()
                .and_then(|d| d.status.as_ref())
                .and_then(|s| s.available_replicas)
                .unwrap_or(0);
            if available > 0 {
                step(started, &format!("{ns}/{name} available"));
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "{ns}/{name} has no available pod after 180 s; see `kubectl -n {ns} describe \
                     pods` and the kubelet logs in the state directory"
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    Ok(())
}

/// Applies `objects` server-side (kinds known to the API server).
async fn apply_all(client: &Client, objects: Vec<Value>) -> anyhow::Result<()> {
    let ssa = PatchParams::apply(FIELD_MANAGER).force();
    for obj in objects {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
        let gvk = kube::api::GroupVersionKind::gvk(group, version, &kind);
        let (resource, caps) = kube::discovery::pinned_kind(client, &gvk)
            .await
            .with_context(|| format!("unknown kind {api_version} {kind}"))?;
        let api: Api<DynamicObject> = match (caps.scope, obj["metadata"]["namespace"].as_str()) {
            (kube::discovery::Scope::Namespaced, Some(ns)) => {
                Api::namespaced_with(client.clone(), ns, &resource)
            }
            _ => Api::all_with(client.clone(), &resource),
        };
        api.patch(&name, &ssa, &Patch::Apply(&obj))
            .await
            .with_context(|| format!("cannot apply {kind} {name}"))?;
    }
    Ok(())
}

/// What the cluster itself runs on real nodes: the API server's and the host
/// services' endpoints for pods, CoreDNS, Traefik, and kube-router's access.
async fn cluster_objects(layout: &Layout, client: &Client, busybox: &str) -> anyhow::Result<()> {
    let host = Ipv4Addr::from(HOST_IP).to_string();
    let ports = Ports::new(layout);
    let coredns_image = image_ref("coredns")?;
    let traefik_image = image_ref("traefik")?;
    let endpoint_slice = |ns: &str, service: &str, port_name: &str, port: u16| {
        json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": service, "namespace": ns,
                "labels": {
                    "kubernetes.io/service-name": service,
                    "endpointslice.kubernetes.io/managed-by": "mutu-dev",
                },
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [host], "conditions": {"ready": true}}],
            "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
        })
    };
    let objects = vec![
        // The API server does not publish its own endpoint (it listens on
        // 127.0.0.1): pods reach it through the forwarder on the bridge.
        endpoint_slice("default", "kubernetes", "https", layout.api_port),
        // The operator's HTTP-01 solver, where challenge Ingresses point (on the
        // port the operator listens on, as the route it writes names it).
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": super::bootstrap::OPERATOR_NAMESPACE}}),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "mutu-acme-solver", "namespace": super::bootstrap::OPERATOR_NAMESPACE},
            "spec": {"ports": [{"name": "http", "port": ports.solver, "targetPort": ports.solver, "protocol": "TCP"}]},
        }),
        endpoint_slice(
            super::bootstrap::OPERATOR_NAMESPACE,
            "mutu-acme-solver",
            "http",
            ports.solver,
        ),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "mutu-dev:kube-router"},
            "rules": [
                {"apiGroups": [""], "resources": ["pods", "namespaces", "nodes", "services", "endpoints"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
            ],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "mutu-dev:kube-router"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "mutu-dev:kube-router"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "mutu-dev:kube-router"}],
        }),
    ];
    let mut objects = objects;
    objects.extend(storage(
        layout,
        &image_ref("local-path-provisioner")?,
        busybox,
    )?);
    objects.extend(coredns(&coredns_image));
    objects.extend(traefik(&traefik_image));
    apply_all(client, objects).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_have_distinct_addresses_pod_ranges_and_short_interface_names() {
        let ips: Vec<_> = NODES.iter().map(RealNode::ip).collect();
        assert_eq!(
            ips,
            vec![Ipv4Addr::new(10, 77, 0, 11), Ipv4Addr::new(10, 77, 0, 12)]
        );
        assert_ne!(NODES[0].pod_cidr(), NODES[1].pod_cidr());
        for node in &NODES {
            assert!(node.veth().len() <= 15, "{}", node.veth());
            assert!(node.pod_cidr().starts_with("10.244."));
        }
        assert_eq!(NODES[0].pool, mutu_api::POOL_PHYSICAL);
        assert_eq!(NODES[1].pool, mutu_api::POOL_FRONTEND);
    }

    #[test]
    fn the_env_of_real_nodes_names_the_ingress_on_loopback_and_solr_on_the_bridge() {
        let layout = Layout::new(&super::super::DevArgs {
            command: super::super::DevCommand::Env,
            dir: PathBuf::from("/nonexistent/mutu-real"),
            api_port: 16443,
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let lines = env_lines(&layout);
        for wanted in [
            "export MUTU_INGRESS_HTTP=127.0.0.1:15002",
            "export MUTU_INGRESS_HTTPS=127.0.0.1:15001",
            "export MUTU_ACME_SOLVER_ADDR=127.0.0.1:15003",
            "export MUTU_SOLR_URL=http://10.77.0.1:18983/solr",
            "export MUTU_INGRESS_CLASS=traefik",
            "export MUTU_INGRESS_NAMESPACE=ingress",
            "export MUTU_BACKUP_STORAGE_CLASS=shared",
        ] {
            assert!(
                lines.iter().any(|l| l == wanted),
                "{wanted} not in {lines:?}"
            );
        }
        // Pebble fetches HTTP-01 challenges where the ingress controller listens.
        assert_eq!(Ports::new(&layout).ingress_http, layout.acme.http01);
        // Every forwarder listens on loopback or on the host's bridge address only.
        for (name, listen, _) in forwards(&layout) {
            assert!(
                listen.starts_with("127.0.0.1:") || listen.starts_with("10.77.0.1:"),
                "{name} listens on {listen}"
            );
        }
    }

    #[test]
    fn socat_listens_on_the_given_address_only() {
        assert_eq!(
            socat_args("127.0.0.1:15002", "10.77.0.12:30080"),
            vec![
                "TCP-LISTEN:15002,bind=127.0.0.1,fork,reuseaddr",
                "TCP:10.77.0.12:30080"
            ]
        );
    }

    #[test]
    fn infrastructure_images_are_named_from_the_versions_file() {
        let r = image_ref("traefik").unwrap_or_else(|e| panic!("{e}"));
        assert!(r.starts_with("mutu.local/traefik:3."), "{r}");
        assert!(image_ref("nginx").is_err());
    }
}
