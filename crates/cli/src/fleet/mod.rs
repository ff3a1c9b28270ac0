//! `mutu fleet`: whole-fleet views. `generate` prints the YAML of a fleet drawn from a profile
//! (e.g. iMio's hosting in 2019); `status` sums up the fleet of the cluster for the on-call
//! engineer.

pub mod generate;
pub mod profile;
pub mod status;

use clap::{Args, Subcommand};

#[derive(Args)]
pub struct FleetArgs {
    #[command(subcommand)]
    command: FleetCommand,
}

#[derive(Subcommand)]
enum FleetCommand {
    /// Print the YAML of a whole fleet drawn from a profile: products, members and sites.
    ///
    /// The product catalog (Products), the members (MemberTenants with their domains and
    /// entitlements) and their sites (PloneSites, in the members' namespaces), ready for
    /// `kubectl apply -f` or a GitOps repository. The same profile and seed always give the
    /// same bytes.
    Generate(generate::GenerateArgs),
    /// One screen for the on-call engineer: what in the fleet needs a look now.
    ///
    /// Read from the cluster of the current kubeconfig: sites by product and release (Ready or
    /// not), members by category and province, certificates expiring within 14 days, sites
    /// without a successful backup in 26 hours, migrations and rollouts in progress, and every
    /// site not Ready for more than 10 minutes with its Ready condition's reason and message.
    Status(status::StatusArgs),
}

pub async fn run(args: FleetArgs) -> anyhow::Result<()> {
    match args.command {
        FleetCommand::Generate(args) => generate::run(args),
        FleetCommand::Status(args) => status::run(args).await,
    }
}
