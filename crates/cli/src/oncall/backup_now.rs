//! `kubectl mutu backup now NS/SITE`: a manual mutu Backup
//! (backups.hosting.imio.be, not Velero's) of a PloneSite, followed until it
//! completes or fails. It is the same Backup a person writes by hand
//! (`spec.site`, trigger `Manual`): it waits while a mutu Restore of the site
//! runs, counts against its BackupPolicy's `maxConcurrent`, and a member runs
//! at most two manual backups at once (the others are `Queued`, and say so).
//!
//! The command joins the `mutu backup` group of `backup schedule`
//! (crates/cli/src/backup.rs), whose command line is taken as it is.

use std::time::Duration;

use anyhow::bail;
use clap::{ArgMatches, Args, Command, FromArgMatches};
use jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use mutu_api::{Backup, PloneSite, RunStatus};
use serde_json::json;

use super::site::{human_bytes, run_state};
use super::{KubeArgs, Progress, get, parse_timeout, poll, stamped_name};

/// `mutu backup`: `schedule` (the night's plan) and `now` (a manual Backup).
pub struct BackupArgs(Group);

enum Group {
    Now(NowArgs),
    Schedule(crate::backup::BackupArgs),
}

impl FromArgMatches for BackupArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        match matches.subcommand() {
            Some(("now", sub)) => Ok(BackupArgs(Group::Now(NowArgs::from_arg_matches(sub)?))),
            _ => Ok(BackupArgs(Group::Schedule(
                crate::backup::BackupArgs::from_arg_matches(matches)?,
            ))),
        }
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Args for BackupArgs {
    fn augment_args(cmd: Command) -> Command {
        let now = NowArgs::augment_args(Command::new("now"))
            .about("Back up a PloneSite now (a manual mutu Backup) and follow it until it completes or fails")
            .long_about(
                "Back up a PloneSite now: a manual mutu Backup (backups.hosting.imio.be), followed \
                 until it completes (exit 0) or fails (exit 1).\n\n\
                 It waits while a mutu Restore of the site runs, counts against its BackupPolicy's \
                 maxConcurrent, and a member runs at most 2 manual backups at once: the others are \
                 Queued until one finishes (the progress says so).",
            );
        crate::backup::BackupArgs::augment_args(cmd).subcommand(now)
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

#[derive(Args)]
pub struct NowArgs {
    #[command(flatten)]
    kube: KubeArgs,
    /// The PloneSite, as NS/SITE (or SITE with -n).
    site: String,
    /// Name of the mutu Backup (default: SITE-manual-YYYYMMDD-HHMMSS).
    #[arg(long)]
    name: Option<String>,
    /// Create the mutu Backup and return at once.
    #[arg(long)]
    no_wait: bool,
    /// How long to wait for it (a backup Job's own deadline is 6 h).
    #[arg(long, value_parser = parse_timeout, default_value = "6h")]
    timeout: Duration,
}

pub async fn run(args: BackupArgs) -> anyhow::Result<()> {
    match args.0 {
        Group::Schedule(a) => crate::backup::run(a).await,
        Group::Now(a) => now(a).await,
    }
}

/// Most characters of a name made here: its Job `backup-<name>` stays within 63.
pub const NAME_MAX: usize = 56;

async fn now(args: NowArgs) -> anyhow::Result<()> {
    let kube = args.kube.connect().await?;
    let (ns, site) = kube.target(&args.site, "PloneSite")?;
    let sites: Api<PloneSite> = Api::namespaced(kube.client.clone(), &ns);
    get(&sites, &ns, &site, "PloneSite").await?;
    let name = args
        .name
        .unwrap_or_else(|| stamped_name(&site, "manual", Timestamp::now(), NAME_MAX));
    let backups: Api<Backup> = Api::namespaced(kube.client.clone(), &ns);
    let body: Backup = serde_json::from_value(json!({
        "apiVersion": mutu_api::API_VERSION, "kind": "Backup",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"site": site, "trigger": "Manual"},
    }))?;
    backups
        .create(&PostParams::default(), &body)
        .await
        .map_err(|e| anyhow::anyhow!("cannot create mutu Backup {ns}/{name}: {e}"))?;
    println!("mutu Backup {ns}/{name} of PloneSite {ns}/{site} created");
    if args.no_wait {
        println!("follow it with: kubectl get backups.hosting.imio.be -n {ns} {name} -w");
        return Ok(());
    }
    let done = follow(&kube.client, &ns, &name, args.timeout).await?;
    let status = done.status.unwrap_or_default();
    println!(
        "mutu Backup {ns}/{name} complete: {}{}",
        status
            .size
            .map(human_bytes)
            .unwrap_or("size unknown".into()),
        status
            .location
            .map(|l| format!(", stored at {l}"))
            .unwrap_or_default()
    );
    Ok(())
}

/// Follows the mutu Backup `ns/name` until it completes (its last state) or fails (an error).
async fn follow(
    client: &Client,
    ns: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<Backup> {
    let api: Api<Backup> = Api::namespaced(client.clone(), ns);
    let progress = Progress::default();
    let waiting = format!(
        "mutu Backup {ns}/{name} has not finished (kubectl get backups.hosting.imio.be -n {ns} {name})"
    );
    poll(timeout, Duration::from_secs(1), &waiting, || {
        let (api, progress) = (api.clone(), &progress);
        async move {
            let backup = api.get(name).await?;
            match outcome(backup.status.as_ref()) {
                RunOutcome::Running(line) => {
                    progress.show(line);
                    Ok(None)
                }
                RunOutcome::Complete(_) => Ok(Some(backup)),
                RunOutcome::Failed(why) => {
                    bail!("mutu Backup {ns}/{}: failed: {why}", backup.name_any())
                }
            }
        }
    })
    .await
}

/// Where a mutu Backup or Restore stands.
#[derive(Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// Still running: what it does now.
    Running(String),
    /// Complete, with the message of its `Complete` condition.
    Complete(String),
    /// Failed: the reason and message.
    Failed(String),
}

/// Where a run with this status stands.
pub fn outcome(status: Option<&RunStatus>) -> RunOutcome {
    let (state, message) = run_state(status);
    match state.as_str() {
        "Complete" => RunOutcome::Complete(message),
        "Failed" => RunOutcome::Failed(message),
        "Pending" => RunOutcome::Running("waiting for mutu's backup operator".into()),
        _ if message.is_empty() => RunOutcome::Running(state),
        _ => RunOutcome::Running(format!("{state}: {message}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(conditions: &str) -> RunStatus {
        serde_saphyr::from_str(&format!("conditions:\n{conditions}"))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn cond(type_: &str, s: &str, reason: &str, message: &str) -> String {
        format!(
            "- {{type: {type_}, status: \"{s}\", reason: {reason}, message: \"{message}\", lastTransitionTime: \"2026-12-07T12:00:00Z\"}}\n"
        )
    }

    #[test]
    fn a_run_is_followed_through_its_conditions() {
        assert_eq!(
            outcome(None),
            RunOutcome::Running("waiting for mutu's backup operator".into())
        );
        let queued = status(&cond(
            "Progressing",
            "False",
            "Queued",
            "2 manual backups of this member run already (at most 2 at once)",
        ));
        assert_eq!(
            outcome(Some(&queued)),
            RunOutcome::Running(
                "Queued: 2 manual backups of this member run already (at most 2 at once)".into()
            )
        );
        let done = status(&format!(
            "{}{}",
            cond("Complete", "True", "Succeeded", "backed up"),
            cond("Progressing", "False", "Done", "")
        ));
        assert_eq!(
            outcome(Some(&done)),
            RunOutcome::Complete("backed up".into())
        );
        let failed = status(&format!(
            "{}{}",
            cond("Complete", "False", "JobFailed", "the Job failed"),
            cond(
                "Failed",
                "True",
                "JobFailed",
                "the Job failed: BackoffLimitExceeded"
            )
        ));
        assert_eq!(
            outcome(Some(&failed)),
            RunOutcome::Failed("JobFailed: the Job failed: BackoffLimitExceeded".into())
        );
    }

    #[test]
    fn backup_now_joins_the_backup_group_beside_schedule() {
        use clap::CommandFactory;
        let cli = crate::Cli::command();
        let backup = cli.find_subcommand("backup");
        for sub in ["now", "schedule"] {
            assert!(
                backup.and_then(|b| b.find_subcommand(sub)).is_some(),
                "mutu backup {sub}"
            );
        }
        use clap::FromArgMatches as _;
        let m = cli
            .clone()
            .try_get_matches_from(["mutu", "backup", "now", "tenant-mons/delib", "--no-wait"])
            .unwrap_or_else(|e| panic!("{e}"));
        let parsed = crate::Cli::from_arg_matches(&m).unwrap_or_else(|e| panic!("{e}"));
        match parsed.command {
            crate::Command::Backup(BackupArgs(Group::Now(a))) => {
                assert_eq!(a.site, "tenant-mons/delib");
                assert!(a.no_wait);
                assert_eq!(a.timeout, Duration::from_secs(6 * 3600));
            }
            _ => panic!("not backup now"),
        }
        let m = cli
            .try_get_matches_from(["mutu", "backup", "schedule", "--policy", "nightly"])
            .unwrap_or_else(|e| panic!("{e}"));
        let parsed = crate::Cli::from_arg_matches(&m).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            parsed.command,
            crate::Command::Backup(BackupArgs(Group::Schedule(_)))
        ));
    }
}
