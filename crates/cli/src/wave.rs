//! `mutu migrate preview` and `mutu rollout preview`: the waves of a
//! MigrationPlan or ReleaseRollout (from the cluster, or from a YAML file not
//! applied yet) over the sites of the cluster. A plan under way shows its
//! recorded waves as they are and the sites it would add after them: what
//! the engine records.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use mutu_api::wave::WaveStatus;
use mutu_api::{MigrationPlan, PloneSite, ReleaseRollout};
use mutu_wave::{Cohort, Wave};

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Args)]
pub struct PreviewArgs {
    /// Name of the object in the cluster (ignored with --file).
    name: Option<String>,
    /// Read the object from this YAML file instead of the cluster.
    #[arg(long, short)]
    file: Option<PathBuf>,
    /// `json` prints {"waves": [{"index", "cohort", "sites"}, ...]}.
    #[arg(long, short, value_enum, default_value = "table")]
    output: Output,
}

#[derive(Args)]
pub struct MigrateArgs {
    #[command(subcommand)]
    command: MigrateCommand,
}

#[derive(Subcommand)]
enum MigrateCommand {
    /// Print the waves of a MigrationPlan with their sites, before anything moves.
    Preview(PreviewArgs),
}

#[derive(Args)]
pub struct RolloutArgs {
    #[command(subcommand)]
    command: RolloutCommand,
}

#[derive(Subcommand)]
enum RolloutCommand {
    /// Print the waves of a ReleaseRollout with their sites, before anything is upgraded.
    Preview(PreviewArgs),
}

async fn object<K>(client: &Client, args: &PreviewArgs, kind: &str) -> anyhow::Result<K>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::ClusterResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    if let Some(file) = &args.file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("--file: cannot read {}", file.display()))?;
        return serde_saphyr::from_str(&text)
            .map_err(|e| anyhow::anyhow!("--file: {} is not a {kind}: {e}", file.display()));
    }
    let Some(name) = &args.name else {
        anyhow::bail!("name the {kind} in the cluster, or give its YAML with --file");
    };
    Api::<K>::all(client.clone())
        .get_opt(name)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no {kind} {name:?} in the cluster"))
}

async fn sites(client: &Client) -> anyhow::Result<Vec<PloneSite>> {
    let api: Api<PloneSite> = Api::all(client.clone());
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

fn print(name: &str, waves: &[Wave], output: Output) -> anyhow::Result<()> {
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "name": name,
                "waves": waves.iter().map(Wave::to_json).collect::<Vec<_>>(),
            }))?
        ),
        Output::Table => {
            let total: usize = waves.iter().map(|w| w.sites.len()).sum();
            println!("{name}: {total} sites in {} waves", waves.len());
            for w in waves {
                let cohort = w
                    .cohort
                    .as_ref()
                    .map(|c| format!(" (cohort {c})"))
                    .unwrap_or_default();
                println!("wave {}{cohort}: {} sites", w.index, w.sites.len());
                for s in &w.sites {
                    println!("  {s}");
                }
            }
        }
    }
    Ok(())
}

async fn client() -> anyhow::Result<Client> {
    Client::try_default()
        .await
        .context("cannot reach the cluster of the current kubeconfig")
}

/// The waves the engine records for a plan with this `status` over `sites`.
fn planned(
    status: Option<&WaveStatus>,
    sites: &[PloneSite],
    candidates: &[Cohort],
    wave_size: i32,
) -> Vec<Wave> {
    let status = status.cloned().unwrap_or_default();
    let existing: std::collections::BTreeSet<String> = sites.iter().map(mutu_wave::id).collect();
    mutu_wave::waves(
        &status.site_progress,
        &status.waves,
        candidates,
        wave_size,
        |k| existing.contains(k),
    )
}

pub async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let MigrateCommand::Preview(args) = args.command;
    let client = client().await?;
    let plan: MigrationPlan = object(&client, &args, "MigrationPlan").await?;
    let sites = sites(&client).await?;
    let candidates = mutu_wave::migration_candidates(&plan.spec, &sites)?;
    let waves = planned(
        plan.status.as_ref(),
        &sites,
        &candidates,
        plan.spec.wave_size,
    );
    print(&plan.name_any(), &waves, args.output)
}

pub async fn rollout(args: RolloutArgs) -> anyhow::Result<()> {
    let RolloutCommand::Preview(args) = args.command;
    let client = client().await?;
    let rollout: ReleaseRollout = object(&client, &args, "ReleaseRollout").await?;
    let sites = sites(&client).await?;
    let candidates = mutu_wave::rollout_candidates(&rollout.spec, &sites)?;
    let waves = planned(
        rollout.status.as_ref(),
        &sites,
        &candidates,
        rollout.spec.wave_size,
    );
    print(&rollout.name_any(), &waves, args.output)
}
