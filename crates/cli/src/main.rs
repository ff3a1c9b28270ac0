//! `mutu`: the one binary of the hosting control plane. It runs the operators,
//! prints the CRDs, and starts the local control plane used by the demo and tests.

mod backup;
mod bench;
mod crds;
mod dev;
mod fleet;
mod maintenance;
mod operator;
mod portal;
mod request;
mod tenant;
mod wave;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mutu: declarative hosting for the cooperative's Plone fleet on Kubernetes.
#[derive(Parser)]
#[command(name = "mutu", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start, stop or use the local control plane (etcd, kube-apiserver,
    /// controller-manager, scheduler and simulated nodes on 127.0.0.1).
    Dev(dev::DevArgs),
    /// Print the CustomResourceDefinitions of every mutu kind, or write them to a directory.
    Crds(crds::CrdsArgs),
    /// Run mutu's operators against the cluster of the current kubeconfig.
    Operator(operator::OperatorArgs),
    /// Serve the members' portal (behind the authenticating proxy) until SIGTERM or Ctrl-C.
    Portal(portal::PortalArgs),
    /// Members' requests for new sites: approve, deny, or render one for GitOps.
    Request(request::RequestArgs),
    /// Member tenants: import a member register.
    Tenant(tenant::TenantArgs),
    /// Benchmarks on a local control plane of their own.
    Bench(bench::BenchArgs),
    /// Backups: the night's plan of a policy.
    Backup(backup::BackupArgs),
    /// The whole fleet: generate it from a profile (e.g. imio-2019), or sum up the
    /// cluster's for the on-call engineer.
    Fleet(fleet::FleetArgs),
    /// Migrations between node pools: preview a MigrationPlan's waves.
    Migrate(wave::MigrateArgs),
    /// Release rollouts: preview a ReleaseRollout's waves.
    Rollout(wave::RolloutArgs),
    /// Serve the page the public sees while a site is in maintenance
    /// (503 with Retry-After), until SIGTERM or Ctrl-C.
    MaintenancePage(maintenance::MaintenanceArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The dev commands poll the API server while it starts; the client's own
    // connection errors are expected there and would only be noise.
    let default_filter = match cli.command {
        Command::Dev(_)
        | Command::Bench(_)
        | Command::Backup(_)
        | Command::Fleet(_)
        | Command::Migrate(_)
        | Command::Rollout(_)
        | Command::Request(_) => "warn,kube_client=off",
        _ => "info",
    };
    init_logging(default_filter);
    // One TLS stack, one crypto provider, chosen here for the whole process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Dev(args) => dev::run(args).await,
            Command::Crds(args) => crds::run(args),
            Command::Operator(args) => operator::run(args).await,
            Command::Tenant(args) => tenant::run(args),
            Command::Request(args) => request::run(args).await,
            Command::Portal(args) => portal::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Backup(args) => backup::run(args).await,
            Command::Fleet(args) => fleet::run(args).await,
            Command::Migrate(args) => wave::migrate(args).await,
            Command::Rollout(args) => wave::rollout(args).await,
            Command::MaintenancePage(args) => maintenance::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(default_filter: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("MUTU_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
