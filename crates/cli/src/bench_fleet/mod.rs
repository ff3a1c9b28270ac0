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

mod apply;
mod bulk_phase;
mod control_plane;
mod curve;
mod objects;
mod operators_phase;
mod plot;
mod process;
mod prometheus;
mod saved;

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde::{Deserialize, Serialize};

use bulk_phase::bulk;
use control_plane::on_fresh_control_plane;
use objects::fleet_plan;
use operators_phase::operators;

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
    /// Run even though this mutu is a debug build (its operators are slower
    /// than the release build's, so the ratios are not the operators').
    #[arg(long)]
    allow_debug_build: bool,
}

/// The build of this mutu: `release` (optimised, as deployed) or `debug`.
pub fn build_kind() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// Refuses a debug build unless it is allowed, and says how to get the release one.
fn check_build(build: &str, allowed: bool) -> anyhow::Result<()> {
    if build == "release" {
        return Ok(());
    }
    if allowed {
        eprintln!(
            "WARNING: this mutu is a {build} build: its operators are slower than the release \
             build's (1.55 against 1.19 at 819 sites), so these numbers are not the operators'"
        );
        return Ok(());
    }
    anyhow::bail!(
        "this mutu is a {build} build, whose operators are slower than the release build's \
         (a debug build measured 1.55 where the release build measured 1.19 at 819 sites): \
         run `make release` and then `target/release/mutu bench fleet ...` (or, to measure \
         the debug build anyway, add --allow-debug-build)"
    )
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
    /// The build that ran: `release` or `debug`.
    #[serde(default)]
    build: String,
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
    check_build(build_kind(), args.allow_debug_build)?;
    let mut r = Results {
        build: build_kind().to_string(),
        sites: args.sites,
        tenants: fleet_plan("bench", args.sites).len() as u32,
        ..Default::default()
    };
    // Read the saved run first: a wrong file fails before hours of work.
    let merged = match &args.merge {
        Some(path) => Some(saved::read_saved(path, &args)?),
        None => None,
    };
    if args.phase.operators() {
        let keep = args.keep && !args.phase.bulk();
        on_fresh_control_plane(&args, keep, |client| operators(&args, client, &mut r)).await?;
    }
    if args.phase.bulk() {
        on_fresh_control_plane(&args, args.keep, |client| bulk(&args, client, &mut r)).await?;
    }
    if let Some(other) = merged {
        r = saved::merge(r, args.phase, other);
    }
    if let Some(ratio) = ratio(r.converge_s, r.raw_apply_s) {
        r.ratio = ratio;
    }
    if let Some(path) = &args.save {
        saved::save(path, &r)?;
    }
    if let Some(path) = &args.plot {
        std::fs::write(path, plot::svg(&r))
            .with_context(|| format!("cannot write the chart {}", path.display()))?;
        eprintln!("chart: {}", path.display());
    }
    if args.output.is_some() {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        for line in report(&r, args.quiet) {
            println!("{line}");
        }
    }
    Ok(())
}

/// The operators' time to Ready over the bulk apply's, when both were measured.
fn ratio(converge_s: f64, raw_apply_s: f64) -> Option<f64> {
    (converge_s > 0.0 && raw_apply_s > 0.0).then(|| converge_s / raw_apply_s)
}

/// The results as text, line by line; the operators' measures only if they
/// were taken. `quiet` is the quiet period, in seconds.
fn report(r: &Results, quiet: u64) -> Vec<String> {
    let mut lines = vec![format!(
        "sites {} ({} tenants), {} build",
        r.sites,
        r.tenants,
        if r.build.is_empty() {
            "unknown"
        } else {
            &r.build
        }
    )];
    if r.ratio > 0.0 {
        lines.push(format!(
            "applied to all Ready: operators {:.1} s, bulk apply {:.1} s: ratio {:.2}",
            r.converge_s, r.raw_apply_s, r.ratio
        ));
    } else if r.raw_apply_s > 0.0 {
        lines.push(format!(
            "applied to all Ready: bulk apply {:.1} s",
            r.raw_apply_s
        ));
    }
    if r.converge_s == 0.0 {
        return lines;
    }
    if r.ratio == 0.0 {
        lines.push(format!(
            "applied to all Ready: operators {:.1} s",
            r.converge_s
        ));
    }
    lines.extend([
        format!(
            "API writes in {} s with nothing changed: {} (operator's own count {})",
            quiet, r.noop_writes, r.noop_writes_by_operator
        ),
        format!(
            "API writes after a restart: {} (operator's own count {}); reconciles per object: {:.2}",
            r.restart_writes, r.restart_writes_by_operator, r.reconciles_per_object_after_restart
        ),
        format!(
            "operator memory: {:.0} MB empty, {:.0} MB peak, {:.0} MB steady, {:.1} kB per site",
            r.baseline_rss_mb, r.peak_rss_mb, r.steady_rss_mb, r.rss_per_site_kb
        ),
        format!(
            "one site's spec change to Ready, the fleet idle: p50 {:.2} s, p99 {:.2} s",
            r.p50_change_to_ready_s, r.p99_change_to_ready_s
        ),
    ]);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_debug_build_is_refused_unless_allowed_and_the_release_build_runs() {
        let refused = check_build("debug", false).map_err(|e| e.to_string());
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.contains("make release") && e.contains("--allow-debug-build")),
            "{refused:?}"
        );
        assert!(check_build("debug", true).is_ok());
        assert!(check_build("release", false).is_ok());
        assert_eq!(
            build_kind(),
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
        );
    }

    #[test]
    fn the_ratio_needs_both_phases() {
        assert_eq!(ratio(30.0, 10.0), Some(3.0));
        assert_eq!(ratio(30.0, 0.0), None);
        assert_eq!(ratio(0.0, 10.0), None);
    }

    #[test]
    fn a_bulk_run_reports_the_bulk_apply_alone() {
        let r = Results {
            build: "release".into(),
            sites: 20,
            tenants: 2,
            raw_apply_s: 10.04,
            ..Default::default()
        };
        assert_eq!(
            report(&r, 60),
            [
                "sites 20 (2 tenants), release build",
                "applied to all Ready: bulk apply 10.0 s"
            ]
        );
    }

    #[test]
    fn an_operators_run_reports_every_measure() {
        let r = Results {
            sites: 20,
            tenants: 2,
            converge_s: 15.26,
            noop_writes: 1,
            noop_writes_by_operator: 2,
            restart_writes: 3,
            restart_writes_by_operator: 4,
            reconciles_per_object_after_restart: 1.234,
            baseline_rss_mb: 40.4,
            peak_rss_mb: 80.6,
            steady_rss_mb: 60.0,
            rss_per_site_kb: 1024.04,
            p50_change_to_ready_s: 0.5,
            p99_change_to_ready_s: 1.456,
            ..Default::default()
        };
        let lines = report(&r, 60);
        assert_eq!(lines.len(), 6, "{lines:?}");
        assert_eq!(lines[1], "applied to all Ready: operators 15.3 s");
        assert_eq!(
            lines[2],
            "API writes in 60 s with nothing changed: 1 (operator's own count 2)"
        );
        assert_eq!(
            lines[3],
            "API writes after a restart: 3 (operator's own count 4); reconciles per object: 1.23"
        );
        assert_eq!(
            lines[4],
            "operator memory: 40 MB empty, 81 MB peak, 60 MB steady, 1024.0 kB per site"
        );
        assert_eq!(
            lines[5],
            "one site's spec change to Ready, the fleet idle: p50 0.50 s, p99 1.46 s"
        );
    }

    #[test]
    fn a_run_of_both_phases_reports_the_ratio_once() {
        let r = Results {
            sites: 20,
            tenants: 2,
            converge_s: 30.0,
            raw_apply_s: 10.0,
            ratio: 3.0,
            ..Default::default()
        };
        let lines = report(&r, 60);
        assert_eq!(
            lines[1],
            "applied to all Ready: operators 30.0 s, bulk apply 10.0 s: ratio 3.00"
        );
        assert_eq!(lines.iter().filter(|l| l.starts_with("applied")).count(), 1);
        assert_eq!(lines.len(), 6);
    }
}
