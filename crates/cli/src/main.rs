//! `mutu`: the one binary of the hosting control plane. It runs the operators,
//! prints the CRDs, and starts the local control plane used by the demo and tests.

mod backup;
mod bench;
mod config;
mod crds;
mod dev;
mod fleet;
mod maintenance;
mod oncall;
mod operator;
mod plugin;
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
    /// mutu Backups: the night's plan of a BackupPolicy, or a PloneSite's backup now.
    Backup(oncall::backup_now::BackupArgs),
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
    /// On call: one PloneSite on one screen (`site status`).
    Site(oncall::site::SiteArgs),
    /// On call: a mutu Certificate's state, or its renewal now.
    Certificate(oncall::certificate::CertificateArgs),
    /// On call: restore a PloneSite from a mutu Backup, or to a point in time.
    Restore(oncall::restore::RestoreArgs),
    /// On call: put a PloneSite in maintenance (servers stopped), or take it out.
    Maintenance(oncall::maintenance::MaintenanceArgs),
    /// On call: pause, resume or follow a MigrationPlan or ReleaseRollout.
    Plan(oncall::plan::PlanArgs),
    /// On call: a support bundle (.tar.gz) of the cluster's mutu state, without Secrets.
    Report(oncall::report::ReportArgs),
    /// The shell completion script of mutu (bash, zsh, fish).
    Completion(oncall::completion::CompletionArgs),
}

fn main() -> ExitCode {
    if let Some(code) = plugin::complete_for_kubectl() {
        return code;
    }
    let (cli, loaded) = parse();
    // The dev commands poll the API server while it starts; the client's own
    // connection errors are expected there and would only be noise.
    let default_filter = match cli.command {
        Command::Dev(_)
        | Command::Bench(_)
        | Command::Backup(_)
        | Command::Fleet(_)
        | Command::Migrate(_)
        | Command::Rollout(_)
        | Command::Request(_)
        | Command::Site(_)
        | Command::Certificate(_)
        | Command::Restore(_)
        | Command::Maintenance(_)
        | Command::Plan(_)
        | Command::Report(_)
        | Command::Completion(_) => "warn,kube_client=off",
        _ => "info",
    };
    if let Err(e) = init_logging(default_filter, &loaded) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
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
            Command::Backup(args) => oncall::backup_now::run(args).await,
            Command::Fleet(args) => fleet::run(args).await,
            Command::Migrate(args) => wave::migrate(args).await,
            Command::Rollout(args) => wave::rollout(args).await,
            Command::MaintenancePage(args) => maintenance::run(args).await,
            Command::Site(args) => oncall::site::run(args).await,
            Command::Certificate(args) => oncall::certificate::run(args).await,
            Command::Restore(args) => oncall::restore::run(args).await,
            Command::Maintenance(args) => oncall::maintenance::run(args).await,
            Command::Plan(args) => oncall::plan::run(args).await,
            Command::Report(args) => oncall::report::run(args).await,
            Command::Completion(args) => oncall::completion::run(args),
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

/// The command line, as `mutu` or as the kubectl plugin `kubectl-mutu`, with
/// the settings of a configuration file (`--config`, `MUTU_CONFIG`) added.
fn parse() -> (Cli, config::Loaded) {
    use clap::{CommandFactory, FromArgMatches};
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut command = Cli::command();
    if args.first().is_some_and(plugin::invoked_as_plugin) {
        args = plugin::translate(args);
        command = command
            .name("kubectl mutu")
            .bin_name("kubectl mutu")
            .after_help(plugin::aliases_help());
    }
    let (args, loaded) = match config::apply(&command, args, |var| std::env::var(var).ok()) {
        Ok(applied) => applied,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let matches = match command.try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => {
            if let Some(origin) = loaded.origin(&e) {
                eprintln!("error: {origin}:\n{}", e.render());
                std::process::exit(2);
            }
            e.exit()
        }
    };
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    (cli, loaded)
}

/// Logging to standard error: the filter from `MUTU_LOG` (else `default_filter`),
/// changeable while the process runs (`/log-level` of the operator), as text
/// or, with `MUTU_LOG_FORMAT=json`, one JSON object per line. Lines logged
/// during a reconcile carry its controller, namespace, object and reconcile id.
fn init_logging(default_filter: &str, file: &config::Loaded) -> Result<(), String> {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, fmt, reload};
    // The environment, then the configuration file's `log` section.
    let (level_source, initial) = match std::env::var("MUTU_LOG") {
        Ok(text) if !text.trim().is_empty() => ("MUTU_LOG".to_string(), text.trim().to_string()),
        _ => match &file.log_level {
            Some(level) => (file.setting("log.level"), level.clone()),
            None => ("MUTU_LOG".to_string(), default_filter.to_string()),
        },
    };
    let filter = EnvFilter::try_new(&initial).map_err(|e| {
        format!("{level_source}: {initial:?} is not a log filter ({e}); give e.g. `info` or `info,mutu_site=debug`")
    })?;
    let (format_source, format) = match std::env::var("MUTU_LOG_FORMAT") {
        Ok(text) if !text.is_empty() => ("MUTU_LOG_FORMAT".to_string(), text),
        _ => match &file.log_format {
            Some(format) => (file.setting("log.format"), format.clone()),
            None => ("MUTU_LOG_FORMAT".to_string(), "text".to_string()),
        },
    };
    let json = match format.as_str() {
        "text" => false,
        "json" => true,
        other => {
            return Err(format!(
                "{format_source}: {other:?} is not a log format; use `text` or `json`"
            ));
        }
    };
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    let installed = if json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init()
    } else {
        registry
            .with(
                fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init()
    };
    if installed.is_ok() {
        mutu_runtime::logging::install(
            &initial,
            std::sync::Arc::new(move |text: &str| {
                let filter = EnvFilter::try_new(text).map_err(|e| e.to_string())?;
                handle.reload(filter).map_err(|e| e.to_string())
            }),
        );
    }
    Ok(())
}
