//! `mutu operator run`: connects to the cluster, serves health and metrics, and
//! runs the controllers until SIGTERM or Ctrl-C.

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Args, Subcommand};
use mutu_runtime::{Health, Metrics, Settings};
use tracing::info;

#[derive(Args)]
pub struct OperatorArgs {
    #[command(subcommand)]
    command: OperatorCommand,
}

#[derive(Subcommand)]
enum OperatorCommand {
    /// Run the operators in the foreground until SIGTERM or Ctrl-C.
    Run(Box<RunArgs>),
}

#[derive(Args)]
struct RunArgs {
    /// A YAML file of settings: sections `operator`, `portal` and `log`, whose
    /// keys are the long flags' names (see the README). Flags and environment
    /// variables win over it.
    #[arg(long, env = "MUTU_CONFIG", value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// Address of the health (`/healthz`, `/readyz`) and metrics (`/metrics`) endpoints.
    #[arg(long, env = "MUTU_METRICS_ADDR", default_value = "127.0.0.1:9090")]
    metrics_addr: SocketAddr,
    /// Run only these controllers (comma-separated); all of them when absent.
    #[arg(long, value_delimiter = ',', value_name = "CONTROLLER")]
    only: Vec<String>,
    /// Node pool that new sites are placed on (node label `hosting.imio.be/pool`).
    #[arg(long, env = "MUTU_DEFAULT_POOL", default_value = "frontend")]
    default_pool: String,
    /// Take a coordination Lease (in --namespace) so that only one replica
    /// reconciles at a time; the others stand by and take over within a lease
    /// duration (15 s) when the leader dies.
    #[arg(long, env = "MUTU_LEADER_ELECT")]
    leader_elect: bool,
    /// Name of the leader-election Lease, in --namespace.
    #[arg(long, env = "MUTU_LEADER_ELECT_LEASE", default_value = "mutu-operator")]
    leader_elect_lease: String,
    /// Namespace of the ingress controller, allowed through the tenants' network policies.
    #[arg(long, env = "MUTU_INGRESS_NAMESPACE", default_value = "ingress-nginx")]
    ingress_namespace: String,
    /// Where the members' pods reach the cluster's DNS (port 53, UDP and TCP),
    /// comma-separated destinations (see --solr-egress); `none` for no rule.
    #[arg(
        long,
        env = "MUTU_DNS_EGRESS",
        value_delimiter = ',',
        default_value = mutu_model::egress::DEFAULT_DNS,
        value_parser = parse_destination,
        value_name = "DESTINATION"
    )]
    dns_egress: Vec<Egress>,
    /// Where the members' pods reach Solr, comma-separated destinations:
    /// ADDRESS:PORT, CIDR:PORT, namespace/NAMESPACE:PORT,
    /// namespace/NAMESPACE/KEY=VALUE+...:PORT or SERVICE.NAMESPACE.svc:PORT
    /// (the port of the pods, which network policies see); `none` for no
    /// rule. Derived from --solr-url when absent (the namespace of a Service
    /// host, or its address, with its port).
    #[arg(
        long,
        env = "MUTU_SOLR_EGRESS",
        value_delimiter = ',',
        value_parser = parse_destination,
        value_name = "DESTINATION"
    )]
    solr_egress: Vec<Egress>,
    /// Where the members' pods reach the PostgreSQL servers of RelStorage
    /// sites (instances, backups and restores), comma-separated destinations
    /// (see --solr-egress); none when absent.
    #[arg(
        long,
        env = "MUTU_DATABASE_EGRESS",
        value_delimiter = ',',
        value_parser = parse_destination,
        value_name = "DESTINATION"
    )]
    database_egress: Vec<Egress>,
    /// The SMTP relay the sites send mail through, e.g. 10.0.0.25:25,
    /// comma-separated destinations (see --solr-egress); none when absent.
    #[arg(
        long,
        env = "MUTU_MAIL_RELAY",
        value_delimiter = ',',
        value_parser = parse_destination,
        value_name = "DESTINATION"
    )]
    mail_relay: Vec<Egress>,
    /// CertificateIssuer of sites whose spec.tls names none.
    #[arg(long, env = "MUTU_DEFAULT_ISSUER", default_value = "letsencrypt")]
    default_issuer: String,
    /// IngressClass of the sites' Ingresses.
    #[arg(long, env = "MUTU_INGRESS_CLASS", default_value = "nginx")]
    ingress_class: String,
    /// Base URL of the shared Solr that the sites' instances query.
    #[arg(
        long,
        env = "MUTU_SOLR_URL",
        default_value = "http://solr.solr.svc:8983/solr"
    )]
    solr_url: String,
    /// Namespace of the operator: ACME account keys, CA Secrets and the
    /// Ingresses of HTTP-01 challenges live there.
    #[arg(long, env = "MUTU_NAMESPACE", default_value = "mutu-system")]
    namespace: String,
    /// Address of the HTTP-01 challenge solver (`off` to run without one:
    /// ACME issuers then cannot validate names).
    #[arg(long, env = "MUTU_ACME_SOLVER_ADDR", default_value = "0.0.0.0:8089")]
    acme_solver_addr: String,
    /// Service (in the operator's namespace) in front of the solver, which the
    /// challenge Ingresses route to; its port is the solver's.
    #[arg(
        long,
        env = "MUTU_ACME_SOLVER_SERVICE",
        default_value = "mutu-acme-solver"
    )]
    acme_solver_service: String,
    /// Wait between publishing a challenge route and asking the ACME server to
    /// validate it, for ingress controllers to load the route (e.g. 2s).
    #[arg(long, env = "MUTU_ACME_PROPAGATION_DELAY", default_value = "2s", value_parser = parse_duration)]
    acme_propagation_delay: std::time::Duration,
    /// Only talk to ACME servers whose directory URL starts with one of these
    /// (comma-separated); any server when absent. The demo and the tests allow
    /// only the local ACME server.
    #[arg(
        long,
        env = "MUTU_ACME_SERVER_ALLOW",
        value_delimiter = ',',
        value_name = "URL_PREFIX"
    )]
    acme_server_allow: Vec<String>,
    /// First wait after a failed issuance; doubles with each failure in a row.
    #[arg(long, env = "MUTU_CERTIFICATE_RETRY_BASE", default_value = "1h", value_parser = parse_duration)]
    certificate_retry_base: std::time::Duration,
    /// Longest wait between failed issuances.
    #[arg(long, env = "MUTU_CERTIFICATE_RETRY_CAP", default_value = "24h", value_parser = parse_duration)]
    certificate_retry_cap: std::time::Duration,
    /// Secret (in the operator's namespace) with the Solr admin's `username`,
    /// `password` and, optionally, `url` (else --solr-url).
    #[arg(long, env = "MUTU_SOLR_ADMIN_SECRET", default_value = "solr-admin")]
    solr_admin_secret: String,
    /// How long a SolrIndex keeps the collection its alias left after a
    /// reindex (so it can go back), unless its spec.keepPreviousFor says otherwise.
    #[arg(long, env = "MUTU_SOLR_KEEP_PREVIOUS", default_value = "168h", value_parser = parse_duration)]
    solr_keep_previous: std::time::Duration,
    /// The member's backup volume claim the backup Jobs write to, in each
    /// tenant namespace (created when missing, never deleted by mutu).
    #[arg(long, env = "MUTU_BACKUP_VOLUME_CLAIM", default_value = "backups")]
    backup_volume_claim: String,
    /// Size of a backup volume mutu creates.
    #[arg(long, env = "MUTU_BACKUP_VOLUME_SIZE", default_value = "100Gi")]
    backup_volume_size: String,
    /// StorageClass of the backup volumes mutu creates (ReadWriteMany); the
    /// cluster's default when absent.
    #[arg(long, env = "MUTU_BACKUP_STORAGE_CLASS")]
    backup_storage_class: Option<String>,
    /// How long the data a restore of a ZEO site set aside (before-restore-*,
    /// in the site's data volume) is kept, in case the restore was a mistake;
    /// then a Job deletes it.
    #[arg(long, env = "MUTU_RESTORE_KEEP_BEFORE", default_value = "168h", value_parser = parse_duration)]
    restore_keep_before: std::time::Duration,
    /// How often the backup engine plans the night and starts what is due.
    #[arg(long, env = "MUTU_BACKUP_TICK", default_value = "10s", value_parser = parse_duration)]
    backup_tick: std::time::Duration,
    /// Image with PostgreSQL's client tools (pg_dump, pg_restore, psql), for
    /// the backups and restores of RelStorage sites.
    #[arg(
        long,
        env = "MUTU_BACKUP_POSTGRES_IMAGE",
        default_value = "docker.io/library/postgres:17-alpine"
    )]
    backup_postgres_image: String,
    /// Image with a shell, tar and gzip (busybox), for the backups and
    /// restores of the data volumes of generic products' sites.
    #[arg(
        long,
        env = "MUTU_BACKUP_VOLUME_IMAGE",
        default_value = "docker.io/library/busybox:1.37"
    )]
    backup_volume_image: String,
    /// Service (host:port) of the maintenance page server (`mutu maintenance-page`) that
    /// the Ingress of a site in maintenance sends its visitors to.
    #[arg(
        long,
        env = "MUTU_MAINTENANCE_SERVICE",
        default_value = "mutu-maintenance.mutu-system.svc:8080",
        value_parser = parse_host_port
    )]
    maintenance_service: (String, i32),
    /// How often the MigrationPlans and ReleaseRollouts re-check their sites in flight.
    #[arg(long, env = "MUTU_WAVE_TICK", default_value = "5s", value_parser = parse_duration)]
    wave_tick: std::time::Duration,
    /// Group (as the identity provider sends it, e.g. in X-Forwarded-Groups)
    /// whose members may approve or deny members' requests for new sites.
    #[arg(long, env = "MUTU_APPROVERS_GROUP", default_value = mutu_provisioning::rbac::DEFAULT_APPROVERS_GROUP)]
    approvers_group: String,
    /// Reconciles running at once, per controller.
    #[arg(long, env = "MUTU_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
}

/// Every controller `mutu operator run` knows, for `--only`.
const CONTROLLERS: &[&str] = &[
    mutu_tenant::NAME,
    mutu_site::NAME,
    mutu_certificate::NAME,
    mutu_solr_index::NAME,
    mutu_backup::NAME,
    mutu_wave::NAME,
    mutu_provisioning::NAME,
];

/// `host:port`, e.g. `mutu-maintenance.mutu-system.svc:8080`.
fn parse_host_port(text: &str) -> Result<(String, i32), String> {
    let (host, port) = text.rsplit_once(':').ok_or_else(|| {
        format!("{text:?} is not host:port, e.g. mutu-maintenance.mutu-system.svc:8080")
    })?;
    let port: i32 = port
        .parse()
        .ok()
        .filter(|p| (1..=65535).contains(p))
        .ok_or_else(|| format!("{text:?}: the port must be a number from 1 to 65535"))?;
    if host.is_empty() {
        return Err(format!("{text:?}: the host is empty"));
    }
    Ok((host.to_string(), port))
}

/// One destination of the members' pods, or `none` (nothing).
#[derive(Clone, Debug)]
struct Egress(Option<mutu_model::egress::Destination>);

fn parse_destination(text: &str) -> Result<Egress, String> {
    if text.trim() == "none" {
        return Ok(Egress(None));
    }
    text.parse().map(|d| Egress(Some(d)))
}

/// The destinations of a list of [`Egress`] (`none` is nothing).
fn destinations(list: &[Egress]) -> Vec<mutu_model::egress::Destination> {
    list.iter().filter_map(|e| e.0.clone()).collect()
}

/// Where the members' pods may connect outside their namespace: the
/// settings, with Solr's derived from its URL when not given.
fn egress(args: &RunArgs) -> anyhow::Result<mutu_model::egress::Egress> {
    let solr = if args.solr_egress.is_empty() {
        vec![mutu_model::egress::from_url(&args.solr_url).map_err(|e| {
            anyhow::anyhow!(
                "--solr-egress: {e}; say where the members' pods reach Solr, e.g. --solr-egress 10.0.0.30:8983 or namespace/solr:8983 (or none)"
            )
        })?]
    } else {
        destinations(&args.solr_egress)
    };
    Ok(mutu_model::egress::Egress {
        dns: destinations(&args.dns_egress),
        solr,
        database: destinations(&args.database_egress),
        mail_relay: destinations(&args.mail_relay),
    })
}

/// A duration such as `90s`, `2m`, `1h30m` or `500ms`.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    mutu_api::common::parse_duration(text)
        .map(std::time::Duration::from)
        .map_err(|e| format!("{e}; write a duration such as 2s, 5m or 1h"))
}

pub async fn run(args: OperatorArgs) -> anyhow::Result<()> {
    match args.command {
        OperatorCommand::Run(args) => run_operators(*args).await,
    }
}

async fn run_operators(args: RunArgs) -> anyhow::Result<()> {
    if let Some(file) = &args.config {
        tracing::info!(file = %file.display(), "settings read from the configuration file");
    }
    if !mutu_api::common::is_dns_label(&args.default_pool) {
        anyhow::bail!(
            "--default-pool: {:?} is not a pool name; use the value of the nodes' hosting.imio.be/pool label, e.g. frontend",
            args.default_pool
        );
    }
    if let Some(unknown) = args
        .only
        .iter()
        .find(|c| !CONTROLLERS.contains(&c.as_str()))
    {
        anyhow::bail!(
            "--only: unknown controller {unknown:?}; known controllers: {}",
            CONTROLLERS.join(", ")
        );
    }
    let solver_addr: Option<SocketAddr> = match args.acme_solver_addr.as_str() {
        "off" | "" => None,
        addr => Some(addr.parse().map_err(|e| {
            anyhow::anyhow!(
                "--acme-solver-addr: {addr:?} is not an address ({e}); write e.g. 0.0.0.0:8089, or off"
            )
        })?),
    };
    if !mutu_api::common::is_dns_label(&args.namespace) {
        anyhow::bail!(
            "--namespace: {:?} is not a namespace name; e.g. mutu-system",
            args.namespace
        );
    }
    let egress = egress(&args)?;
    let enabled = |name: &str| args.only.is_empty() || args.only.iter().any(|c| c == name);
    let client = kube::Client::try_default()
        .await
        .context("cannot connect to Kubernetes (set KUBECONFIG, or run `mutu dev up`)")?;
    let version = client
        .apiserver_version()
        .await
        .context("the Kubernetes API server does not answer")?;
    info!(
        server = %version.git_version,
        default_pool = %args.default_pool,
        leader_elect = args.leader_elect,
        only = ?args.only,
        "connected"
    );

    let health = Health::default();
    let metrics = Metrics::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let (bound, server) = mutu_runtime::serve(
        args.metrics_addr,
        health.clone(),
        metrics.clone(),
        stopped(),
    )
    .await
    .with_context(|| format!("cannot listen on {}", args.metrics_addr))?;
    info!(addr = %bound, "serving /healthz, /readyz and /metrics");

    // With --leader-elect, nothing below runs before this process leads. A
    // standby is ready: it serves, and waits to take over.
    let leadership = if args.leader_elect {
        health.set_ready(true);
        let config = mutu_runtime::leader::Config::new(
            &args.namespace,
            &args.leader_elect_lease,
            &mutu_runtime::leader::identity(),
        );
        match mutu_runtime::leader::acquire(client.clone(), config, &metrics, shutdown_signal())
            .await
        {
            Some(leadership) => Some(leadership),
            None => {
                health.set_ready(false);
                let _ = stop_tx.send(true);
                let _ = server.await;
                info!("stopped while standing by");
                return Ok(());
            }
        }
    } else {
        None
    };
    // A leader's controllers write only while its leadership is current by its
    // own clock (see mutu_runtime::fence): a leader frozen past its Lease
    // wakes unable to write before it notices it lost it.
    let client = match &leadership {
        Some(leadership) => {
            let config = kube::Config::infer()
                .await
                .context("cannot read the Kubernetes client configuration")?;
            kube::client::ClientBuilder::try_from(config)
                .context("cannot make the Kubernetes client")?
                .with_layer(&mutu_runtime::fence::FenceLayer(leadership.fence()))
                .build()
        }
        None => client,
    };
    let lost = async {
        match &leadership {
            Some(l) => l.lost().await,
            None => std::future::pending().await,
        }
    };

    let settings = Settings {
        concurrency: args.concurrency,
        ..Settings::default()
    };
    let mut controllers = tokio::task::JoinSet::new();
    // How tenants' quotas are sized: the tenant controller applies them, the
    // provisioning controller checks requests against them.
    let tenant_config = mutu_tenant::Config {
        ingress_namespace: args.ingress_namespace.clone(),
        backup_volume_size: k8s_openapi::apimachinery::pkg::api::resource::Quantity(
            args.backup_volume_size.clone(),
        ),
        egress,
    };
    if enabled(mutu_tenant::NAME) {
        let run = mutu_tenant::run(
            client.clone(),
            metrics.clone(),
            health.clone(),
            tenant_config.clone(),
            settings.clone(),
            stopped(),
        );
        controllers.spawn(async move { run.await.map_err(anyhow::Error::from) });
    }
    if enabled(mutu_site::NAME) {
        let config = mutu_site::Config {
            default_pool: args.default_pool.clone(),
            default_issuer: args.default_issuer.clone(),
            ingress_class: args.ingress_class.clone(),
            solr_url: args.solr_url.clone(),
            maintenance_backend: args.maintenance_service.clone(),
        };
        let run = mutu_site::run(
            client.clone(),
            metrics.clone(),
            health.clone(),
            config,
            settings.clone(),
            stopped(),
        );
        controllers.spawn(async move {
            run.await;
            Ok(())
        });
    }
    if enabled(mutu_certificate::NAME) {
        let config = mutu_certificate::Config {
            namespace: args.namespace.clone(),
            route: mutu_certificate::Route {
                namespace: args.namespace.clone(),
                service: args.acme_solver_service.clone(),
                port: solver_addr.map_or(8089, |a| a.port()),
                ingress_class: args.ingress_class.clone(),
            },
            propagation_delay: args.acme_propagation_delay,
            retry_base: args.certificate_retry_base,
            retry_cap: args.certificate_retry_cap,
            acme_server_allow: args.acme_server_allow.clone(),
        };
        let run = mutu_certificate::run(
            client.clone(),
            metrics.clone(),
            health.clone(),
            config,
            solver_addr,
            settings.clone(),
            stopped(),
        );
        controllers.spawn(async move { run.await.map_err(anyhow::Error::from) });
    }
    if enabled(mutu_backup::NAME) {
        let config = mutu_backup::Config {
            volume_claim: args.backup_volume_claim.clone(),
            volume_size: args.backup_volume_size.clone(),
            storage_class: args.backup_storage_class.clone(),
            tick: args.backup_tick,
            postgres_image: args.backup_postgres_image.clone(),
            volume_image: args.backup_volume_image.clone(),
            keep_before_restore: args.restore_keep_before,
        };
        let run = mutu_backup::run(
            client.clone(),
            metrics.clone(),
            health.clone(),
            config,
            settings.clone(),
            stopped(),
        );
        controllers.spawn(async move {
            run.await;
            Ok(())
        });
    }
    if enabled(mutu_solr_index::NAME) {
        let config = mutu_solr_index::Config {
            namespace: args.namespace.clone(),
            admin_secret: args.solr_admin_secret.clone(),
            default_url: args.solr_url.clone(),
            keep_previous: args.solr_keep_previous,
        };
        let run = mutu_solr_index::run(
            client.clone(),
            metrics.clone(),
            health.clone(),
            config,
            settings.clone(),
            stopped(),
        );
        controllers.spawn(async move {
            run.await;
            Ok(())
        });
    }
    if enabled(mutu_wave::NAME) {
        let config = mutu_wave::Config {
            tick: args.wave_tick,
        };
        let run = mutu_wave::run(
            client.clone(),
            metrics.clone(),
            health.clone(),
            config,
            settings.clone(),
            stopped(),
        );
        controllers.spawn(async move {
            run.await;
            Ok(())
        });
    }
    if enabled(mutu_provisioning::NAME) {
        let config = mutu_provisioning::Config {
            tenant: tenant_config.clone(),
            approvers_group: args.approvers_group.clone(),
        };
        let run = mutu_provisioning::run(
            client.clone(),
            metrics.clone(),
            health.clone(),
            config,
            settings.clone(),
            stopped(),
        );
        controllers.spawn(async move { run.await.map_err(anyhow::Error::from) });
    }
    health.set_ready(true);
    info!(controllers = controllers.len(), "controllers started");

    tokio::select! {
        () = shutdown_signal() => {}
        () = lost => {
            // Another process may lead already: stop reconciling at once.
            controllers.abort_all();
            anyhow::bail!(
                "lost the leadership Lease {}/{}; stopping so that the new leader works alone (the pod restarts as a standby)",
                args.namespace,
                args.leader_elect_lease
            );
        }
        Some(result) = controllers.join_next() => {
            match result {
                Ok(Ok(())) => anyhow::bail!("a controller stopped unexpectedly"),
                Ok(Err(e)) => return Err(e.context("a controller could not start")),
                Err(e) => anyhow::bail!("a controller panicked: {e}"),
            }
        }
    }
    health.set_ready(false);
    let _ = stop_tx.send(true);
    // Reconciles in flight finish first, but a stop never waits longer than
    // this (e.g. on calls to an API server that went away).
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while let Some(result) = controllers.join_next().await {
            if let Ok(Err(e)) = result {
                tracing::warn!(error = %e, "controller stopped with an error");
            }
        }
        let _ = server.await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!(grace = ?SHUTDOWN_GRACE, "controllers still busy after the grace period; stopping anyway");
        controllers.abort_all();
    }
    // The standby takes over at once rather than after a lease duration.
    if let Some(leadership) = leadership {
        leadership.release().await;
    }
    if drained.is_err() {
        return Ok(());
    }
    info!("stopped cleanly");
    Ok(())
}

/// Longest wait for the controllers to stop after SIGTERM.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(20);

/// Completes on SIGTERM (Kubernetes stopping the pod) or Ctrl-C.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => info!("Ctrl-C received, stopping"),
        () = term => info!("SIGTERM received, stopping"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use mutu_model::egress::Peer;

    #[derive(Parser)]
    struct Run {
        #[command(flatten)]
        run: RunArgs,
    }

    fn parse(args: &[&str]) -> Result<RunArgs, clap::Error> {
        Run::try_parse_from(std::iter::once("run").chain(args.iter().copied())).map(|r| r.run)
    }

    fn egress_of(args: &[&str]) -> mutu_model::egress::Egress {
        let args = parse(args).unwrap_or_else(|e| panic!("{e}"));
        egress(&args).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_members_egress_defaults_to_dns_and_the_solr_of_the_url() {
        let e = egress_of(&[]);
        assert_eq!(e, mutu_model::egress::Egress::default());
        let e = egress_of(&["--solr-url", "http://10.1.2.3:8983/solr"]);
        assert_eq!(e.solr[0].peer, Peer::Block("10.1.2.3/32".to_string()));
        assert!(e.database.is_empty() && e.mail_relay.is_empty());
    }

    #[test]
    fn the_members_egress_is_set_by_flags_and_none_removes_a_rule() {
        let e = egress_of(&[
            "--mail-relay",
            "10.0.0.25:25",
            "--database-egress",
            "postgres.databases.svc:5432,10.20.0.0/24:5432",
            "--solr-egress",
            "none",
            "--dns-egress",
            "169.254.20.10:53",
        ]);
        assert_eq!(e.mail_relay.len(), 1);
        assert_eq!(e.mail_relay[0].to_string(), "10.0.0.25/32:25");
        assert_eq!(e.database.len(), 2);
        assert!(e.solr.is_empty());
        assert_eq!(e.dns[0].to_string(), "169.254.20.10/32:53");
    }

    #[test]
    fn a_solr_that_no_policy_can_name_needs_its_egress_said() {
        let args = parse(&["--solr-url", "https://search.example.org/solr"])
            .unwrap_or_else(|e| panic!("{e}"));
        let e = egress(&args)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("--solr-egress"), "{e}");
        let args = parse(&[
            "--solr-url",
            "https://search.example.org/solr",
            "--solr-egress",
            "192.0.2.0/28:443",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(egress(&args).is_ok());
    }

    #[test]
    fn a_bad_destination_is_refused_by_its_flag() {
        let e = parse(&["--mail-relay", "smtp.example.org:25"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("--mail-relay") && e.contains("neither"), "{e}");
    }
}
