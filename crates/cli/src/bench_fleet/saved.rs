//! Runs saved with `--save`, and the phase a run did not measure filled from
//! one with `--merge`.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::{FleetArgs, Phase, Results};

/// Results saved with their curves, and which phases they hold.
#[derive(Serialize, Deserialize, Debug, Default)]
pub(super) struct Saved {
    #[serde(flatten)]
    results: Results,
    operators_measured: bool,
    bulk_measured: bool,
    operator_curve: Vec<(f64, u32)>,
    raw_curve: Vec<(f64, u32)>,
}

impl Saved {
    /// `r` with its curves; a phase counts as measured if it took some time.
    fn of(r: &Results) -> Self {
        Self {
            results: r.clone(),
            operators_measured: r.converge_s > 0.0,
            bulk_measured: r.raw_apply_s > 0.0,
            operator_curve: r.operator_curve.clone(),
            raw_curve: r.raw_curve.clone(),
        }
    }
}

/// Saves `r` with its curves into `path`, for a later `--merge`.
pub(super) fn save(path: &Path, r: &Results) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_string(&Saved::of(r))?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("saved: {}", path.display());
    Ok(())
}

/// Reads a run saved with `--save`, for the phase this run does not measure.
pub(super) fn read_saved(path: &Path, args: &FleetArgs) -> anyhow::Result<Saved> {
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
pub(super) fn merge(mut r: Results, phase: Phase, saved: Saved) -> Results {
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::plot::svg;
    use super::*;

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

    fn saved(dir: &Path, s: &Saved) -> PathBuf {
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
    fn a_saved_run_reads_back_with_its_curves() {
        let dir = scratch("3");
        let path = dir.join("run.json");
        let r = Results {
            sites: 20,
            converge_s: 15.0,
            p50_change_to_ready_s: 0.5,
            operator_curve: vec![(0.0, 0), (15.0, 20)],
            ..Default::default()
        };
        save(&path, &r).unwrap_or_else(|e| panic!("{e}"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(json["sites"], 20);
        assert_eq!(json["operators_measured"], true);
        assert_eq!(json["bulk_measured"], false);
        assert_eq!(
            json["operator_curve"],
            serde_json::json!([[0.0, 0], [15.0, 20]])
        );
        let loaded = read_saved(&path, &args(Phase::Bulk, 20)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.results.p50_change_to_ready_s, 0.5);
        assert_eq!(loaded.operator_curve, r.operator_curve);
        assert!(loaded.raw_curve.is_empty());
    }
}
