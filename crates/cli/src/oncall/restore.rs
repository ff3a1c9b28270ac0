//! `kubectl mutu restore NS/SITE --from BACKUP | --at TIME`: a mutu Restore
//! (restores.hosting.imio.be, not Velero's) of a PloneSite, confirmed by a
//! person, followed until it completes or fails.
//!
//! A Restore replaces the site's data, so the command asks on a terminal for
//! the site's name (`--yes` instead, required without a terminal), and writes
//! that confirmation into `spec.confirm`, which the API requires over a live
//! site. `--at` restores the site as it was at that time (`spec.pointInTime`,
//! ZEO sites): from `--from`, else from the first complete mutu Backup of the
//! site taken after that time.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::time::Duration;

use anyhow::bail;
use clap::{ArgGroup, Args};
use jiff::Timestamp;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use mutu_api::{Backup, PloneSite, Restore};
use serde_json::json;

use super::backup_now::{NAME_MAX, RunOutcome, outcome};
use super::site::run_state;
use super::{KubeArgs, Progress, get, list_all, parse_timeout, poll, stamped_name};

#[derive(Args)]
#[command(group(ArgGroup::new("source").required(true).multiple(true).args(["from", "at"])))]
pub struct RestoreArgs {
    #[command(flatten)]
    kube: KubeArgs,
    /// The PloneSite whose data is replaced, as NS/SITE (or SITE with -n).
    site: String,
    /// The mutu Backup (backups.hosting.imio.be) to restore, of the same site and complete.
    #[arg(long, value_name = "BACKUP")]
    from: Option<String>,
    /// Restore the site as it was at this time (RFC 3339, e.g. 2026-12-07T03:00:00Z; ZEO
    /// sites only), from --from or else from the first complete mutu Backup taken after it.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    at: Option<Timestamp>,
    /// Replace the site's data without asking (required without a terminal).
    #[arg(long, short = 'y')]
    yes: bool,
    /// Name of the mutu Restore (default: SITE-restore-YYYYMMDD-HHMMSS).
    #[arg(long)]
    name: Option<String>,
    /// Create the mutu Restore and return at once.
    #[arg(long)]
    no_wait: bool,
    /// How long to wait for it.
    #[arg(long, value_parser = parse_timeout, default_value = "2h")]
    timeout: Duration,
}

/// `--at`: an RFC 3339 time.
fn parse_time(text: &str) -> Result<Timestamp, String> {
    text.parse::<Timestamp>().map_err(|e| {
        format!(
            "{text:?} is not a time such as 2026-12-07T03:00:00Z or 2026-12-07T04:00:00+01:00: {e}"
        )
    })
}

pub async fn run(args: RestoreArgs) -> anyhow::Result<()> {
    let kube = args.kube.connect().await?;
    let (ns, site) = kube.target(&args.site, "PloneSite")?;
    let sites: Api<PloneSite> = Api::namespaced(kube.client.clone(), &ns);
    get(&sites, &ns, &site, "PloneSite").await?;
    let backups = list_all(
        Api::<Backup>::namespaced(kube.client.clone(), &ns),
        ListParams::default(),
        "backups.hosting.imio.be",
    )
    .await?;
    let backup = choose_backup(&backups, &ns, &site, args.from.as_deref(), args.at)
        .map_err(|e| anyhow::anyhow!(e))?;
    eprintln!(
        "This replaces the current data of PloneSite {ns}/{site} with mutu Backup {backup}{}.\n\
         The site stops meanwhile (its visitors get the maintenance page); its current data is set aside.",
        args.at
            .map(|t| format!(" as it was at {t}"))
            .unwrap_or_default()
    );
    let stdin = std::io::stdin();
    confirm(&site, args.yes, stdin.is_terminal(), || {
        eprint!("Type the site's name ({site}) to confirm: ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        Ok(line)
    })
    .map_err(|e| anyhow::anyhow!(e))?;

    let name = args
        .name
        .unwrap_or_else(|| stamped_name(&site, "restore", Timestamp::now(), NAME_MAX));
    let mut spec = json!({"site": site, "backup": backup, "confirm": site});
    if let Some(at) = args.at {
        spec["pointInTime"] = json!(at.to_string());
    }
    let body: Restore = serde_json::from_value(json!({
        "apiVersion": mutu_api::API_VERSION, "kind": "Restore",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }))?;
    let api: Api<Restore> = Api::namespaced(kube.client.clone(), &ns);
    api.create(&PostParams::default(), &body)
        .await
        .map_err(|e| anyhow::anyhow!("cannot create mutu Restore {ns}/{name}: {e}"))?;
    println!("mutu Restore {ns}/{name} of PloneSite {ns}/{site} from mutu Backup {backup} created");
    if args.no_wait {
        println!("follow it with: kubectl get restores.hosting.imio.be -n {ns} {name} -w");
        return Ok(());
    }
    let message = follow(&kube.client, &ns, &name, args.timeout).await?;
    println!("mutu Restore {ns}/{name} complete: {message}");
    Ok(())
}

/// Follows the mutu Restore `ns/name` until it completes (its message) or fails (an error).
async fn follow(
    client: &Client,
    ns: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
    let api: Api<Restore> = Api::namespaced(client.clone(), ns);
    let progress = Progress::default();
    let waiting = format!(
        "mutu Restore {ns}/{name} has not finished (kubectl mutu site status, kubectl get restores.hosting.imio.be -n {ns} {name})"
    );
    poll(timeout, Duration::from_secs(1), &waiting, || {
        let (api, progress) = (api.clone(), &progress);
        async move {
            let restore = api.get(name).await?;
            match outcome(restore.status.as_ref()) {
                RunOutcome::Running(line) => {
                    progress.show(line);
                    Ok(None)
                }
                RunOutcome::Complete(message) => Ok(Some(message)),
                RunOutcome::Failed(why) => {
                    bail!("mutu Restore {ns}/{}: failed: {why}", restore.name_any())
                }
            }
        }
    })
    .await
}

/// When a backup started (else when it was made).
fn started(b: &Backup) -> Option<Timestamp> {
    b.status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .or(b.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
}

/// The mutu Backup to restore the site `ns/site` from: `from` when it is one
/// of the site's complete backups, else (with `at` alone) the first complete
/// backup of the site started at or after `at`. The error says what to give
/// instead.
pub fn choose_backup(
    backups: &[Backup],
    ns: &str,
    site: &str,
    from: Option<&str>,
    at: Option<Timestamp>,
) -> Result<String, String> {
    let mut restorable: Vec<&Backup> = backups
        .iter()
        .filter(|b| b.spec.site == site && run_state(b.status.as_ref()).0 == "Complete")
        .collect();
    restorable.sort_by_key(|b| std::cmp::Reverse(started(b)));
    let listed = || {
        if restorable.is_empty() {
            format!(
                "PloneSite {ns}/{site} has no complete mutu Backup; take one with `kubectl mutu backup now {ns}/{site}`"
            )
        } else {
            let names: Vec<String> = restorable.iter().take(5).map(|b| b.name_any()).collect();
            format!(
                "complete mutu Backups of PloneSite {ns}/{site}, newest first: {}",
                names.join(", ")
            )
        }
    };
    match (from, at) {
        (Some(name), _) => {
            let Some(b) = backups.iter().find(|b| b.name_any() == name) else {
                return Err(format!("no mutu Backup {ns}/{name}; {}", listed()));
            };
            if b.spec.site != site {
                return Err(format!(
                    "mutu Backup {ns}/{name} is of PloneSite {}, not {site}; {}",
                    b.spec.site,
                    listed()
                ));
            }
            let (state, message) = run_state(b.status.as_ref());
            if state != "Complete" {
                return Err(format!(
                    "mutu Backup {ns}/{name} is not complete ({state}{}); {}",
                    if message.is_empty() {
                        String::new()
                    } else {
                        format!(": {message}")
                    },
                    listed()
                ));
            }
            Ok(name.to_string())
        }
        (None, Some(at)) => restorable
            .iter()
            .filter(|b| started(b).is_some_and(|s| s >= at))
            .min_by_key(|b| started(b))
            .map(|b| b.name_any())
            .ok_or_else(|| {
                let newest = restorable
                    .first()
                    .and_then(|b| started(b))
                    .map(|t| format!(" (the newest started at {t})"))
                    .unwrap_or_default();
                format!(
                    "no complete mutu Backup of PloneSite {ns}/{site} was taken after {at}{newest}: a time after the last backup cannot be restored; take one with `kubectl mutu backup now {ns}/{site}` first, or give an earlier --at"
                )
            }),
        (None, None) => Err("give --from BACKUP or --at TIME".into()),
    }
}

/// Whether the person confirms: `--yes`, else the site's name typed on a terminal.
pub fn confirm(
    site: &str,
    yes: bool,
    terminal: bool,
    ask: impl FnOnce() -> std::io::Result<String>,
) -> Result<(), String> {
    if yes {
        return Ok(());
    }
    if !terminal {
        return Err(format!(
            "not restoring without a confirmation: there is no terminal to ask on; add --yes to replace the data of PloneSite {site}"
        ));
    }
    let answer = ask().map_err(|e| format!("cannot read the confirmation: {e}"))?;
    if answer.trim() == site {
        Ok(())
    } else {
        Err(format!(
            "not confirmed ({:?} is not {site:?}); nothing was changed",
            answer.trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(name: &str, site: &str, started: &str, complete: bool) -> Backup {
        let cond = if complete {
            "Complete, status: \"True\", reason: Succeeded"
        } else {
            "Failed, status: \"True\", reason: JobFailed"
        };
        serde_saphyr::from_str(&format!(
            "apiVersion: hosting.imio.be/v1alpha1\nkind: Backup\nmetadata: {{name: {name}, creationTimestamp: \"{started}\"}}\nspec: {{site: {site}}}\nstatus:\n  startTime: \"{started}\"\n  conditions:\n  - {{type: {cond}, message: m, lastTransitionTime: \"{started}\"}}\n"
        ))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn backups() -> Vec<Backup> {
        vec![
            backup("d1", "delib", "2026-12-05T03:00:00Z", true),
            backup("d2", "delib", "2026-12-06T03:00:00Z", true),
            backup("d3", "delib", "2026-12-07T03:00:00Z", false),
            backup("w1", "web", "2026-12-06T04:00:00Z", true),
        ]
    }

    #[test]
    fn from_names_one_of_the_sites_complete_backups() {
        let b = backups();
        let choose = |from| choose_backup(&b, "tenant-mons", "delib", Some(from), None);
        assert_eq!(choose("d1"), Ok("d1".into()));
        let e = choose("nope").err().unwrap_or_default();
        assert!(
            e.contains("no mutu Backup tenant-mons/nope") && e.contains("newest first: d2, d1"),
            "{e}"
        );
        let e = choose("w1").err().unwrap_or_default();
        assert!(e.contains("is of PloneSite web, not delib"), "{e}");
        let e = choose("d3").err().unwrap_or_default();
        assert!(e.contains("is not complete (Failed: JobFailed: m)"), "{e}");
        // --from with --at: the backup given.
        assert_eq!(
            choose_backup(
                &b,
                "tenant-mons",
                "delib",
                Some("d1"),
                Some(t("2026-12-05T12:00:00Z"))
            ),
            Ok("d1".into())
        );
    }

    #[test]
    fn at_alone_takes_the_first_complete_backup_after_that_time() {
        let b = backups();
        let at = |s| choose_backup(&b, "tenant-mons", "delib", None, Some(t(s)));
        assert_eq!(at("2026-12-04T00:00:00Z"), Ok("d1".into()));
        assert_eq!(at("2026-12-05T12:00:00Z"), Ok("d2".into()));
        assert_eq!(at("2026-12-06T03:00:00Z"), Ok("d2".into()));
        // After the last complete one (d3 failed): refused, saying what to do.
        let e = at("2026-12-06T12:00:00Z").err().unwrap_or_default();
        assert!(
            e.contains(
                "was taken after 2026-12-06T12:00:00Z (the newest started at 2026-12-06T03:00:00Z)"
            ) && e.contains("kubectl mutu backup now tenant-mons/delib"),
            "{e}"
        );
        let e = choose_backup(&[], "tenant-mons", "delib", Some("x"), None)
            .err()
            .unwrap_or_default();
        assert!(e.contains("has no complete mutu Backup"), "{e}");
    }

    #[test]
    fn a_restore_is_confirmed_by_typing_the_sites_name_or_with_yes() {
        let never = || -> std::io::Result<String> { panic!("asked") };
        assert_eq!(confirm("delib", true, false, never), Ok(()));
        let e = confirm("delib", false, false, never)
            .err()
            .unwrap_or_default();
        assert!(e.contains("no terminal") && e.contains("add --yes"), "{e}");
        assert_eq!(
            confirm("delib", false, true, || Ok("delib\n".into())),
            Ok(())
        );
        let e = confirm("delib", false, true, || Ok("web\n".into()))
            .err()
            .unwrap_or_default();
        assert!(
            e.contains("not confirmed") && e.contains("nothing was changed"),
            "{e}"
        );
    }

    #[test]
    fn from_or_at_is_required() {
        use clap::{CommandFactory, FromArgMatches as _};
        let parse = |args: &[&str]| {
            crate::Cli::command()
                .try_get_matches_from(args)
                .and_then(|m| crate::Cli::from_arg_matches(&m))
        };
        assert!(parse(&["mutu", "restore", "tenant-mons/delib"]).is_err());
        assert!(
            parse(&[
                "mutu",
                "restore",
                "tenant-mons/delib",
                "--from",
                "d1",
                "--yes"
            ])
            .is_ok()
        );
        assert!(
            parse(&[
                "mutu",
                "restore",
                "delib",
                "-n",
                "tenant-mons",
                "--at",
                "2026-12-07T03:00:00Z"
            ])
            .is_ok()
        );
        let e = parse(&["mutu", "restore", "delib", "--at", "yesterday"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("is not a time such as"), "{e}");
    }
}
