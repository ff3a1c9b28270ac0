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
//!
//! The command, its options and its report are here; the rest lives in
//! `bench_fleet/`, one file per part.

// `bench.rs` names this file with `#[path]`, which makes its submodules
// siblings of it: their paths are given.
#[path = "bench_fleet/apply.rs"]
mod apply;
#[path = "bench_fleet/bulk_phase.rs"]
mod bulk_phase;
#[path = "bench_fleet/control_plane.rs"]
mod control_plane;
#[path = "bench_fleet/curve.rs"]
mod curve;
#[path = "bench_fleet/objects.rs"]
mod objects;
#[path = "bench_fleet/operators_phase.rs"]
mod operators_phase;
#[path = "bench_fleet/plot.rs"]
mod plot;
#[path = "bench_fleet/process.rs"]
mod process;
#[path = "bench_fleet/prometheus.rs"]
mod prometheus;
#[path = "bench_fleet/saved.rs"]
mod saved;

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde::{Deserialize, Serialize};

use bulk_phase::bulk;
use control_plane::on_fresh_control_plane;
use objects::fleet_plan;
use operators_phase::operators;
use plot::svg;
use saved::{Saved, merge, read_saved};

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
