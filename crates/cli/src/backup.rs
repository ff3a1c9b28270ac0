//! `mutu backup schedule`: the night's plan of a BackupPolicy, computed from
//! the cluster exactly as the operator's engine computes it.

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use jiff::civil::Date;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use mutu_api::{Backup, BackupPolicy, PloneSite};

#[derive(Args)]
pub struct BackupArgs {
    #[command(subcommand)]
    command: BackupCommand,
}

#[derive(Subcommand)]
enum BackupCommand {
    /// Print the plan of one night: each site's backup start and expected end.
    Schedule(ScheduleArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Args)]
struct ScheduleArgs {
    /// The BackupPolicy.
    #[arg(long)]
    policy: String,
    /// The local date the night starts on (its window opens that day), YYYY-MM-DD.
    /// Tonight's when absent.
    #[arg(long)]
    date: Option<String>,
    /// `json` prints {"runs": [{"site", "start", "end"}, ...]} and the totals.
    #[arg(long, short, value_enum, default_value = "table")]
    output: Output,
}

pub async fn run(args: BackupArgs) -> anyhow::Result<()> {
    match args.command {
        BackupCommand::Schedule(a) => schedule(a).await,
    }
}

async fn list<K>(api: Api<K>) -> anyhow::Result<Vec<K>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut out = Vec::new();
    let mut params = ListParams::default().limit(500);
    loop {
        let page = api.list(&params).await?;
        out.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(out),
        }
    }
}

async fn schedule(args: ScheduleArgs) -> anyhow::Result<()> {
    let client = Client::try_default()
        .await
        .context("cannot reach the cluster of the current kubeconfig")?;
    let policies = list(Api::<BackupPolicy>::all(client.clone())).await?;
    let Some(policy) = policies.iter().find(|p| p.name_any() == args.policy) else {
        let names: Vec<String> = policies.iter().map(|p| p.name_any()).collect();
        anyhow::bail!(
            "--policy: no BackupPolicy {:?}; the policies: {}",
            args.policy,
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        );
    };
    let date = match &args.date {
        Some(d) => d
            .parse::<Date>()
            .map_err(|e| anyhow::anyhow!("--date: {d:?} is not a date YYYY-MM-DD ({e})"))?,
        None => mutu_backup::fleet::tonight(policy, jiff::Timestamp::now())?,
    };
    let sites = list(Api::<PloneSite>::all(client.clone())).await?;
    let backups = list(Api::<Backup>::all(client.clone())).await?;
    let plan = mutu_backup::fleet::night_plan(policy, &policies, &sites, &backups, date)?;
    match args.output {
        Output::Json => {
            let runs: Vec<serde_json::Value> = plan
                .runs
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "site": r.site, "start": r.start.to_string(), "end": r.end.to_string(),
                        "overrun": r.overrun,
                    })
                })
                .collect();
            let out = serde_json::json!({
                "policy": args.policy,
                "date": date.to_string(),
                "window": {"opens": plan.opens.timestamp().to_string(), "closes": plan.closes.timestamp().to_string()},
                "expectedMinutes": plan.expected_minutes,
                "neededConcurrency": plan.needed_concurrency,
                "peakConcurrency": plan.peak(),
                "overruns": plan.overruns,
                "runs": runs,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Output::Table => {
            let tz = plan.opens.time_zone().clone();
            println!(
                "policy {} — night of {date}: {}",
                args.policy,
                mutu_backup::fleet::describe_window(&plan.opens, &plan.closes)
            );
            println!(
                "{} sites, {} min of backups expected, at most {} at once (maxConcurrent {}), {} after the window",
                plan.runs.len(),
                plan.expected_minutes,
                plan.peak(),
                policy.spec.max_concurrent,
                plan.overruns
            );
            let width = plan
                .runs
                .iter()
                .map(|r| r.site.len())
                .max()
                .unwrap_or(4)
                .max(4);
            println!("{:<width$}  START  END", "SITE");
            for r in &plan.runs {
                println!(
                    "{:<width$}  {}  {}{}",
                    r.site,
                    r.start.to_zoned(tz.clone()).strftime("%H:%M"),
                    r.end.to_zoned(tz.clone()).strftime("%H:%M"),
                    if r.overrun {
                        "  (after the window)"
                    } else {
                        ""
                    }
                );
            }
        }
    }
    Ok(())
}
