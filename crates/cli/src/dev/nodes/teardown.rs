//! `mutu dev down` of real nodes: their processes and containers stopped, what
//! they mounted unmounted, their network namespaces, bridge and cgroups removed.

use std::path::Path;
use std::time::Duration;

use super::Processes;
use super::{BRIDGE, Layout, NODES, RealNode, cgroup_roots, process_names, run, succeeds};

/// Stops the real nodes' processes and their containers, unmounts and removes
/// what they left, and takes the network down.
pub async fn down(layout: &Layout, procs: &Processes) -> anyhow::Result<()> {
    for name in process_names(layout) {
        if procs.stop(&name, Duration::from_secs(10)).await {
            eprintln!("stopped {name}");
        }
    }
    // The containers and their shims outlive containerd: kill every process in
    // the nodes' cgroups, and the shims serving this state directory.
    let state = layout.state.display().to_string();
    let pod_netns = pod_namespaces(&NODES);
    for _ in 0..20 {
        let mut pids = Vec::new();
        for node in &NODES {
            for root in cgroup_roots(node) {
                collect_pids(&root, &mut pids);
            }
        }
        pids.extend(shims(&state));
        pids.sort_unstable();
        pids.dedup();
        if pids.is_empty() {
            break;
        }
        for pid in &pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    unmount_under(&layout.state.join("nodes"));
    for ns in pod_netns {
        let _ = run("ip", &["netns", "del", &ns]);
    }
    for node in &NODES {
        for root in cgroup_roots(node) {
            remove_cgroup(&root);
        }
        if succeeds("ip", &["netns", "list"])
            && run("ip", &["netns", "list"])
                .unwrap_or_default()
                .lines()
                .any(|l| l.split_whitespace().next() == Some(node.netns().as_str()))
        {
            run("ip", &["netns", "del", &node.netns()])?;
        }
        let _ = run("ip", &["link", "del", &node.veth()]);
    }
    let _ = run("ip", &["link", "del", BRIDGE]);
    Ok(())
}

/// The named network namespaces (`/run/netns/cni-*`, made by CNI for the
/// pods) that a process of the nodes' cgroups lives in.
fn pod_namespaces(nodes: &[RealNode]) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut pids = Vec::new();
    for node in nodes {
        for root in cgroup_roots(node) {
            collect_pids(&root, &mut pids);
        }
    }
    let inodes: Vec<u64> = pids
        .iter()
        .filter_map(|pid| std::fs::metadata(format!("/proc/{pid}/ns/net")).ok())
        .map(|m| m.ino())
        .collect();
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("cni-"))
        .filter(|e| e.metadata().is_ok_and(|m| inodes.contains(&m.ino())))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn collect_pids(dir: &Path, pids: &mut Vec<i32>) {
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.filter_map(Result::ok) {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_pids(&e.path(), pids);
            }
        }
    }
}

/// The containerd shims whose command line names `state`.
fn shims(state: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c);
                c.contains("containerd-shim") && c.contains(state)
            })
        })
        .collect()
}

/// Unmounts every mount under `dir`, deepest first (lazily: a mount still in
/// use goes when its last user does).
fn unmount_under(dir: &Path) {
    let prefix = dir.display().to_string();
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|p| p.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = nix::mount::umount2(p.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Removes a cgroup and its children, deepest first.
fn remove_cgroup(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.filter_map(Result::ok) {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}
