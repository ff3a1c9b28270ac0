//! `kubectl mutu plan pause|resume|status NAME`: a MigrationPlan or a
//! ReleaseRollout (both cluster-scoped), found by its name among both kinds
//! (`--kind` when both have it). `pause` and `resume` set `spec.paused` (no
//! new site starts; those in flight finish); `status` shows each wave as a
//! progress bar, the sites in flight, and the failed ones with their reasons.

use std::fmt::Write as _;

use anyhow::bail;
use clap::{Args, Subcommand, ValueEnum};
use jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use mutu_api::wave::{SiteCounts, SiteStep, WaveStatus};
use mutu_api::{MigrationPlan, ReleaseRollout};
use serde::Serialize;
use serde_json::json;

use super::site::Output;
use super::{ConditionLine, KubeArgs, conditions_table, is_true, relative, table};

#[derive(Args)]
pub struct PlanArgs {
    #[command(flatten)]
    kube: KubeArgs,
    #[command(subcommand)]
    command: PlanCommand,
}

#[derive(Subcommand)]
enum PlanCommand {
    /// Pause a MigrationPlan or ReleaseRollout (spec.paused): no new site starts, those in
    /// flight finish. A GitOps tool that owns spec.paused may set it back.
    Pause(Which),
    /// Resume a paused MigrationPlan or ReleaseRollout (spec.paused false).
    Resume(Which),
    /// A MigrationPlan or ReleaseRollout on one screen: per-wave progress bars, sites in
    /// flight, failed sites with their reasons.
    Status {
        #[command(flatten)]
        which: Which,
        /// `text` for a person, `json` for a machine.
        #[arg(long, short, value_enum, default_value = "text")]
        output: Output,
    },
}

#[derive(Args)]
struct Which {
    /// Name of the MigrationPlan or ReleaseRollout.
    name: String,
    /// Which kind, when a MigrationPlan and a ReleaseRollout have the same name.
    #[arg(long, value_enum)]
    kind: Option<Kind>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    #[value(name = "migrationplan", alias = "mp", alias = "migration-plan")]
    MigrationPlan,
    #[value(name = "releaserollout", alias = "rr", alias = "release-rollout")]
    ReleaseRollout,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::MigrationPlan => "MigrationPlan",
            Kind::ReleaseRollout => "ReleaseRollout",
        }
    }
}

/// Which kind has the name: `kind` when given, else the only one that has it.
pub fn pick(
    name: &str,
    kind: Option<Kind>,
    migration: bool,
    rollout: bool,
) -> Result<Kind, String> {
    match (kind, migration, rollout) {
        (Some(Kind::MigrationPlan), true, _) => Ok(Kind::MigrationPlan),
        (Some(Kind::ReleaseRollout), _, true) => Ok(Kind::ReleaseRollout),
        (Some(k), _, _) => Err(format!("no {} {name}", k.name())),
        (None, true, true) => Err(format!(
            "{name} is both a MigrationPlan and a ReleaseRollout: add --kind migrationplan or --kind releaserollout"
        )),
        (None, true, false) => Ok(Kind::MigrationPlan),
        (None, false, true) => Ok(Kind::ReleaseRollout),
        (None, false, false) => Err(format!(
            "no MigrationPlan nor ReleaseRollout {name} (kubectl get migrationplans.hosting.imio.be,releaserollouts.hosting.imio.be)"
        )),
    }
}

/// The plan as the commands see it, of either kind.
struct Found {
    kind: Kind,
    name: String,
    paused: bool,
    /// `from -> to` or `product -> release`.
    what: String,
    wave_size: i32,
    max_in_flight: i32,
    failure_threshold: i32,
    status: WaveStatus,
}

async fn find(client: &Client, which: &Which) -> anyhow::Result<Found> {
    let mps: Api<MigrationPlan> = Api::all(client.clone());
    let rrs: Api<ReleaseRollout> = Api::all(client.clone());
    let (mp, rr) = futures::try_join!(mps.get_opt(&which.name), rrs.get_opt(&which.name))?;
    let kind = pick(&which.name, which.kind, mp.is_some(), rr.is_some())
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok(match (kind, mp, rr) {
        (Kind::MigrationPlan, Some(p), _) => Found {
            kind,
            name: p.name_any(),
            paused: p.spec.paused,
            what: format!("pool {} to pool {}", p.spec.from, p.spec.to),
            wave_size: p.spec.wave_size,
            max_in_flight: p.spec.max_in_flight,
            failure_threshold: p.spec.failure_threshold,
            status: p.status.unwrap_or_default(),
        },
        (Kind::ReleaseRollout, _, Some(p)) => Found {
            kind,
            name: p.name_any(),
            paused: p.spec.paused,
            what: format!("product {} to release {}", p.spec.product, p.spec.release),
            wave_size: p.spec.wave_size,
            max_in_flight: p.spec.max_in_flight,
            failure_threshold: p.spec.failure_threshold,
            status: p.status.unwrap_or_default(),
        },
        _ => bail!("no {} {}", kind.name(), which.name),
    })
}

pub async fn run(args: PlanArgs) -> anyhow::Result<()> {
    let kube = args.kube.connect().await?;
    let client = &kube.client;
    match args.command {
        PlanCommand::Pause(which) => set_paused(client, &which, true).await,
        PlanCommand::Resume(which) => set_paused(client, &which, false).await,
        PlanCommand::Status { which, output } => {
            let found = find(client, &which).await?;
            let view = view(&found, Timestamp::now());
            match output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&view)?),
                Output::Text => print!("{}", render(&view)),
            }
            Ok(())
        }
    }
}

async fn set_paused(client: &Client, which: &Which, paused: bool) -> anyhow::Result<()> {
    let found = find(client, which).await?;
    let (kind, name) = (found.kind.name(), &found.name);
    let in_flight = found.status.sites.in_flight;
    if found.paused == paused {
        println!(
            "{kind} {name} is already {}",
            if paused {
                "paused"
            } else {
                "running (not paused)"
            }
        );
        return Ok(());
    }
    let patch = json!({"spec": {"paused": paused}});
    let params = PatchParams::default();
    let result = match found.kind {
        Kind::MigrationPlan => Api::<MigrationPlan>::all(client.clone())
            .patch(name, &params, &Patch::Merge(&patch))
            .await
            .map(|_| ()),
        Kind::ReleaseRollout => Api::<ReleaseRollout>::all(client.clone())
            .patch(name, &params, &Patch::Merge(&patch))
            .await
            .map(|_| ()),
    };
    result.map_err(|e| anyhow::anyhow!("cannot set spec.paused of {kind} {name}: {e}"))?;
    if paused {
        println!(
            "{kind} {name} paused: no new site starts; {in_flight} in flight finish (kubectl mutu plan status {name})"
        );
    } else {
        println!("{kind} {name} resumed");
        if is_true(&found.status.conditions, mutu_api::CONDITION_FAILED) {
            println!(
                "  it is halted: {} sites failed (spec.failureThreshold {}); raise spec.failureThreshold to go on",
                found.status.sites.failed, found.failure_threshold
            );
        }
    }
    Ok(())
}

/// The screen's data.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlanView {
    pub kind: String,
    pub name: String,
    pub what: String,
    pub paused: bool,
    pub wave_size: i32,
    pub max_in_flight: i32,
    pub failure_threshold: i32,
    pub current_wave: Option<i32>,
    pub sites: SiteCounts,
    pub waves: Vec<WaveLine>,
    pub in_flight: Vec<SiteLine>,
    pub failed: Vec<SiteLine>,
    pub cordoned_nodes: Vec<String>,
    pub conditions: Vec<ConditionLine>,
    pub generated_at: String,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WaveLine {
    pub index: i32,
    pub cohort: Option<String>,
    pub sites: SiteCounts,
    pub started: Option<String>,
    pub finished: Option<String>,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SiteLine {
    pub site: String,
    pub wave: i32,
    pub step: String,
    pub reason: Option<String>,
    pub since: Option<String>,
}

fn step_name(step: SiteStep) -> String {
    serde_json::to_value(step)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| format!("{step:?}"))
}

fn view(found: &Found, now: Timestamp) -> PlanView {
    let st = &found.status;
    let line = |p: &mutu_api::wave::SiteProgress, step: SiteStep| SiteLine {
        site: format!("{}/{}", p.namespace, p.name),
        wave: p.wave,
        step: step_name(step),
        reason: p.reason.clone(),
        since: p.since.as_ref().map(|t| t.0.to_string()),
    };
    PlanView {
        kind: found.kind.name().into(),
        name: found.name.clone(),
        what: found.what.clone(),
        paused: found.paused,
        wave_size: found.wave_size,
        max_in_flight: found.max_in_flight,
        failure_threshold: found.failure_threshold,
        current_wave: st.current_wave,
        sites: st.sites.clone(),
        waves: st
            .waves
            .iter()
            .map(|w| WaveLine {
                index: w.index,
                cohort: w.cohort.clone(),
                sites: w.sites.clone(),
                started: w.start_time.as_ref().map(|t| t.0.to_string()),
                finished: w.completion_time.as_ref().map(|t| t.0.to_string()),
            })
            .collect(),
        in_flight: st
            .site_progress
            .iter()
            .filter(|p| {
                !matches!(
                    p.step,
                    SiteStep::Pending | SiteStep::Done | SiteStep::Failed
                )
            })
            .map(|p| line(p, p.step))
            .collect(),
        failed: st
            .site_progress
            .iter()
            .filter(|p| p.step == SiteStep::Failed)
            .map(|p| line(p, p.failed_step.unwrap_or(SiteStep::Failed)))
            .collect(),
        cordoned_nodes: st.cordoned_nodes.clone(),
        conditions: st
            .conditions
            .iter()
            .map(ConditionLine::from_condition)
            .collect(),
        generated_at: now.to_string(),
    }
}

/// A bar of `width` characters: `#` done, `x` failed, `>` in flight, `.` pending;
/// each part that is not zero gets at least one character.
pub fn bar(c: &SiteCounts, width: usize) -> String {
    let n = |v: i32| v.max(0) as usize;
    let started = n(c.done) + n(c.failed) + n(c.in_flight);
    let pending = n(c.pending).max(n(c.total).saturating_sub(started));
    let parts = [
        ('#', n(c.done)),
        ('x', n(c.failed)),
        ('>', n(c.in_flight)),
        ('.', pending),
    ];
    let total = started + pending;
    if total == 0 || width == 0 {
        return format!("[{}]", " ".repeat(width));
    }
    // Largest remainder: the sizes add up to the width.
    let mut sizes: Vec<usize> = parts.iter().map(|p| p.1 * width / total).collect();
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(parts[i].1 * width % total));
    let left = width - sizes.iter().sum::<usize>();
    for &i in order.iter().take(left) {
        sizes[i] += 1;
    }
    // A part that is not zero shows, taken from the largest.
    for i in 0..parts.len() {
        if parts[i].1 > 0
            && sizes[i] == 0
            && let Some(j) = (0..parts.len())
                .filter(|&j| sizes[j] > 1)
                .max_by_key(|&j| sizes[j])
        {
            sizes[j] -= 1;
            sizes[i] += 1;
        }
    }
    let text: String = parts
        .iter()
        .zip(&sizes)
        .map(|(p, k)| p.0.to_string().repeat(*k))
        .collect();
    format!("[{text}]")
}

fn counts(c: &SiteCounts) -> String {
    format!(
        "{}/{} done, {} failed, {} in flight, {} pending",
        c.done, c.total, c.failed, c.in_flight, c.pending
    )
}

/// The screen as text.
pub fn render(v: &PlanView) -> String {
    let now: Timestamp = v.generated_at.parse().unwrap_or(Timestamp::UNIX_EPOCH);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {}: {}{}",
        v.kind,
        v.name,
        v.what,
        if v.paused { " (paused)" } else { "" }
    );
    let _ = writeln!(
        out,
        "  waves of {} sites, at most {} in flight, halts at {} failed",
        v.wave_size, v.max_in_flight, v.failure_threshold
    );
    let _ = writeln!(out, "  {} {}", bar(&v.sites, 30), counts(&v.sites));
    if !v.cordoned_nodes.is_empty() {
        let _ = writeln!(out, "  cordoned nodes: {}", v.cordoned_nodes.join(", "));
    }

    out.push_str("\nWaves\n");
    if v.waves.is_empty() {
        out.push_str("  (none recorded yet)\n");
    }
    for w in &v.waves {
        let current = if v.current_wave == Some(w.index) && w.finished.is_none() {
            " <- current"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  wave {:<3}{} {} {}{}",
            w.index,
            w.cohort
                .as_ref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default(),
            bar(&w.sites, 20),
            counts(&w.sites),
            current
        );
    }

    let sites = |out: &mut String, title: &str, lines: &[SiteLine]| {
        let _ = writeln!(out, "\n{title}");
        if lines.is_empty() {
            out.push_str("  (none)\n");
            return;
        }
        let rows: Vec<Vec<String>> = lines
            .iter()
            .map(|l| {
                vec![
                    l.site.clone(),
                    l.wave.to_string(),
                    l.step.clone(),
                    l.since
                        .as_deref()
                        .map(|t| relative(now, t))
                        .unwrap_or("-".into()),
                    l.reason.clone().unwrap_or_default(),
                ]
            })
            .collect();
        table(out, &["SITE", "WAVE", "STEP", "SINCE", "REASON"], &rows);
    };
    sites(&mut out, "Sites in flight", &v.in_flight);
    sites(
        &mut out,
        "Failed sites (the step they failed in)",
        &v.failed,
    );

    out.push_str("\nConditions\n");
    conditions_table(&mut out, now, &v.conditions);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(total: i32, done: i32, failed: i32, in_flight: i32) -> SiteCounts {
        SiteCounts {
            total,
            done,
            failed,
            in_flight,
            pending: total - done - failed - in_flight,
        }
    }

    #[test]
    fn progress_bars_add_up_to_their_width() {
        assert_eq!(bar(&c(10, 10, 0, 0), 10), "[##########]");
        assert_eq!(bar(&c(10, 5, 1, 2), 10), "[#####x>>..]");
        assert_eq!(bar(&c(0, 0, 0, 0), 5), "[     ]");
        // A single failure among many still shows.
        let b = bar(&c(1000, 990, 1, 0), 20);
        assert!(b.contains('x') && b.contains('.'), "{b}");
        for (total, done, failed, in_flight) in
            [(7, 3, 1, 1), (3, 1, 1, 1), (100, 33, 33, 33), (1, 0, 0, 1)]
        {
            let b = bar(&c(total, done, failed, in_flight), 20);
            assert_eq!(b.chars().count(), 22, "{b}");
        }
    }

    #[test]
    fn a_name_of_both_kinds_needs_kind() {
        assert_eq!(pick("p", None, true, false), Ok(Kind::MigrationPlan));
        assert_eq!(pick("p", None, false, true), Ok(Kind::ReleaseRollout));
        let e = pick("p", None, true, true).err().unwrap_or_default();
        assert!(e.contains("both") && e.contains("--kind"), "{e}");
        assert_eq!(
            pick("p", Some(Kind::ReleaseRollout), true, true),
            Ok(Kind::ReleaseRollout)
        );
        let e = pick("p", Some(Kind::MigrationPlan), false, true)
            .err()
            .unwrap_or_default();
        assert_eq!(e, "no MigrationPlan p");
        let e = pick("p", None, false, false).err().unwrap_or_default();
        assert!(
            e.starts_with("no MigrationPlan nor ReleaseRollout p"),
            "{e}"
        );
    }

    #[test]
    fn the_screen_shows_waves_sites_in_flight_and_failures() {
        let status: WaveStatus = serde_saphyr::from_str(
            r#"
sites: {total: 5, pending: 1, inFlight: 1, done: 2, failed: 1}
currentWave: 2
waves:
- {index: 1, cohort: pilot, sites: {total: 3, done: 2, failed: 1}, startTime: "2026-12-07T10:00:00Z", completionTime: "2026-12-07T11:00:00Z"}
- {index: 2, sites: {total: 2, pending: 1, inFlight: 1}, startTime: "2026-12-07T11:00:00Z"}
siteProgress:
- {name: a, namespace: tenant-mons, wave: 1, step: Done}
- {name: b, namespace: tenant-mons, wave: 1, step: Failed, failedStep: Upgrading, reason: "the upgrade Job failed: BackoffLimitExceeded"}
- {name: c, namespace: tenant-ans, wave: 2, step: Verifying, since: "2026-12-07T11:57:00Z", reason: "2 of 3 instances ready"}
- {name: d, namespace: tenant-ans, wave: 2, step: Pending}
conditions:
- {type: Progressing, status: "True", reason: Running, message: wave 2 of 2, lastTransitionTime: "2026-12-07T10:00:00Z"}
"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let found = Found {
            kind: Kind::ReleaseRollout,
            name: "delib-4-3".into(),
            paused: true,
            what: "product delib to release 4.3".into(),
            wave_size: 3,
            max_in_flight: 1,
            failure_threshold: 2,
            status,
        };
        let now = "2026-12-07T12:00:00Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let v = view(&found, now);
        assert_eq!(v.in_flight.len(), 1);
        assert_eq!(v.failed[0].step, "Upgrading");
        let text = render(&v);
        for expected in [
            "ReleaseRollout delib-4-3: product delib to release 4.3 (paused)",
            "waves of 3 sites, at most 1 in flight, halts at 2 failed",
            "2/5 done, 1 failed, 1 in flight, 1 pending",
            "wave 1   (pilot) [#############xxxxxxx] 2/3 done, 1 failed, 0 in flight, 0 pending\n",
            "wave 2   [>>>>>>>>>>..........] 0/2 done, 0 failed, 1 in flight, 1 pending <- current",
            "<- current",
            "tenant-ans/c  2     Verifying  3m ago  2 of 3 instances ready",
            "tenant-mons/b  1     Upgrading  -      the upgrade Job failed: BackoffLimitExceeded",
            "Progressing  True    Running",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }
}
