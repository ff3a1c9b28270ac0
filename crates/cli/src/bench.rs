//! `mutu bench certificates --count N`: on a local control plane of its own,
//! the certificate operator issues N certificates through the internal CA and
//! N through the ACME server (Pebble, real HTTP-01 validation), and a plain
//! loop of the same ACME client, with no operator around it, orders N more
//! from the same server. Prints certificates per second for each and the
//! operator's overhead over the plain loop.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use clap::{Args, Subcommand};
use futures::StreamExt;
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, RetryPolicy,
};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, PostParams};
use mutu_api::{Certificate, CertificateIssuer};
use mutu_runtime::{Health, Metrics, Settings, conditions};
use serde_json::json;

#[path = "bench_fleet/mod.rs"]
mod fleet;

#[derive(Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Certificates per second through the internal CA and the ACME server,
    /// beside a plain ACME client loop against the same server.
    Certificates(CertArgs),
    /// A fleet of N sites from applied to Ready, beside a plain bulk apply of
    /// the same objects; API writes when nothing changes and after a restart;
    /// the operators' memory; one site's change to Ready.
    Fleet(fleet::FleetArgs),
}

#[derive(Args)]
struct CertArgs {
    /// Certificates to issue through each path.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=5000))]
    count: u32,
    /// Orders (and reconciles) in flight at once, for the operator and the plain loop alike.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    /// State directory of the benchmark's own control plane.
    #[arg(long, default_value = ".mutu/bench")]
    dir: PathBuf,
    /// API server port of the benchmark's control plane (the ACME server's ports derive from it).
    #[arg(long, default_value_t = 22643)]
    api_port: u16,
    /// Leave the control plane running afterwards.
    #[arg(long)]
    keep: bool,
    /// Print the results as JSON.
    #[arg(long, value_parser = ["json"])]
    output: Option<String>,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Certificates(a) => certificates(a).await,
        BenchCommand::Fleet(a) => fleet::fleet(a).await,
    }
}

/// One measured path.
struct Measured {
    name: &'static str,
    seconds: f64,
    count: u32,
}

impl Measured {
    fn rate(&self) -> f64 {
        f64::from(self.count) / self.seconds.max(1e-9)
    }
}

async fn certificates(args: CertArgs) -> anyhow::Result<()> {
    eprintln!(
        "starting the benchmark's control plane in {}",
        args.dir.display()
    );
    let local = crate::dev::start(&args.dir, args.api_port, args.keep).await?;
    let result = measure(&args, &local).await;
    if !args.keep {
        crate::dev::stop(local).await?;
    }
    let (results, plain) = result?;
    let ca = &results[0];
    let acme = &results[1];
    let overhead = acme.seconds / plain.seconds.max(1e-9);
    if args.output.is_some() {
        let entry =
            |m: &Measured| json!({"count": m.count, "seconds": m.seconds, "perSecond": m.rate()});
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "count": args.count,
                "concurrency": args.concurrency,
                "operatorCA": entry(ca),
                "operatorACME": entry(acme),
                "plainACME": entry(&plain),
                "acmeOverhead": overhead,
            }))?
        );
    } else {
        println!(
            "{:<36} {:>6} {:>9} {:>10}",
            "path", "certs", "seconds", "certs/s"
        );
        for m in [ca, acme, &plain] {
            println!(
                "{:<36} {:>6} {:>9.2} {:>10.2}",
                m.name,
                m.count,
                m.seconds,
                m.rate()
            );
        }
        println!(
            "operator over the plain ACME loop: {overhead:.2}x the time (concurrency {})",
            args.concurrency
        );
    }
    Ok(())
}

async fn measure(
    args: &CertArgs,
    local: &crate::dev::Local,
) -> anyhow::Result<(Vec<Measured>, Measured)> {
    // Kube's own timeouts: the dev client's short read timeout would cut the
    // operator's watches.
    let kubeconfig = kube::config::Kubeconfig::read_from(&local.kubeconfig)?;
    let client = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?,
    )?;
    let solver: SocketAddr = local.solver_addr.parse()?;

    // The operator, in this process, with nothing in between: no ingress
    // controller to wait for, so no propagation delay.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let config = mutu_certificate::Config {
        namespace: "mutu-system".into(),
        route: mutu_certificate::Route {
            namespace: "mutu-system".into(),
            service: "mutu-acme-solver".into(),
            port: solver.port(),
            ingress_class: "nginx".into(),
        },
        propagation_delay: Duration::ZERO,
        retry_base: Duration::from_secs(5),
        retry_cap: Duration::from_secs(60),
        acme_server_allow: vec!["https://127.0.0.1:".into()],
    };
    let settings = Settings {
        concurrency: args.concurrency,
        debounce: Duration::from_millis(50),
        ..Settings::default()
    };
    let operator = tokio::spawn(mutu_certificate::run(
        client.clone(),
        Metrics::new(),
        Health::default(),
        config,
        Some(solver),
        settings,
        stopped(),
    ));

    // The ACME issuer of the benchmark: dev-acme's server and trust, a budget
    // that never holds an order back (Pebble has no rate limits; the budget's
    // own behaviour is tested elsewhere).
    let issuers: Api<CertificateIssuer> = Api::all(client.clone());
    let mut acme = serde_json::to_value(
        issuers
            .get("dev-acme")
            .await?
            .spec
            .acme
            .context("dev-acme has no ACME settings")?,
    )?;
    acme["accountKeySecretRef"] = json!({"name": "bench-acme-account"});
    let unlimited = json!({"limit": 1_000_000, "window": "1h"});
    acme["rateLimits"] = json!({
        "newOrders": unlimited, "certificatesPerDomain": unlimited,
        "duplicateCertificates": unlimited, "budgetPercent": 100,
    });
    let bench_issuer = json!({
        "apiVersion": mutu_api::API_VERSION, "kind": "CertificateIssuer",
        "metadata": {"name": "bench-acme"}, "spec": {"acme": acme},
    });
    issuers
        .patch(
            "bench-acme",
            &kube::api::PatchParams::apply("mutu-bench").force(),
            &kube::api::Patch::Apply(&bench_issuer),
        )
        .await?;
    for name in ["dev-ca", "bench-acme"] {
        wait(
            Duration::from_secs(60),
            &format!("issuer {name} to be Ready"),
            || {
                let issuers = issuers.clone();
                async move {
                    let i = issuers.get(name).await.ok()?;
                    i.status
                        .is_some_and(|s| conditions::is_true(&s.conditions, "Ready"))
                        .then_some(())
                }
            },
        )
        .await?;
    }

    let run = std::process::id();
    let mut results = Vec::new();
    for (issuer, label) in [
        ("dev-ca", "operator, internal CA"),
        ("bench-acme", "operator, ACME (Pebble, HTTP-01)"),
    ] {
        let ns = format!("bench-{issuer}-{run}");
        Api::<Namespace>::all(client.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
            )
            .await
            .with_context(|| format!("cannot create namespace {ns}"))?;
        let certs: Api<Certificate> = Api::namespaced(client.clone(), &ns);
        eprintln!("issuing {} certificates through {issuer} ...", args.count);
        let started = Instant::now();
        for i in 0..args.count {
            let cert: Certificate = serde_json::from_value(json!({
                "apiVersion": mutu_api::API_VERSION, "kind": "Certificate",
                "metadata": {"name": format!("c{i}"), "namespace": ns},
                "spec": {
                    "dnsNames": [format!("www.{issuer}-{run}-{i}.be")],
                    "secretName": format!("c{i}-tls"),
                    "issuerRef": {"name": issuer},
                },
            }))?;
            certs.create(&PostParams::default(), &cert).await?;
        }
        let count = args.count as usize;
        wait(
            Duration::from_secs(600),
            "every certificate to be Ready",
            || {
                let certs = certs.clone();
                async move {
                    let list = certs.list(&ListParams::default()).await.ok()?;
                    let ready = list
                        .items
                        .iter()
                        .filter(|c| {
                            c.status
                                .as_ref()
                                .is_some_and(|s| conditions::is_true(&s.conditions, "Ready"))
                        })
                        .count();
                    (ready == count).then_some(())
                }
            },
        )
        .await?;
        results.push(Measured {
            name: label,
            seconds: started.elapsed().as_secs_f64(),
            count: args.count,
        });
    }
    let _ = stop_tx.send(true);
    let _ = operator.await;

    // The plain loop: the same ACME client, the same server, its own account
    // and challenge responder on the same port, no Kubernetes.
    let acme = issuers
        .get("dev-acme")
        .await?
        .spec
        .acme
        .context("dev-acme has no ACME settings")?;
    let bundle = args.dir.join("acme-ca.pem");
    std::fs::write(&bundle, acme.ca_bundle.unwrap_or_default())?;
    eprintln!(
        "ordering {} certificates with a plain ACME client loop ...",
        args.count
    );
    let plain = plain_loop(
        &acme.server,
        &bundle,
        solver,
        args.count,
        args.concurrency,
        run,
    )
    .await?;
    Ok((results, plain))
}

async fn wait<F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<()>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await.is_some() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

type Answers = Arc<RwLock<HashMap<String, String>>>;

async fn answer(State(answers): State<Answers>, Path(token): Path<String>) -> (StatusCode, String) {
    let map = answers.read().unwrap_or_else(|e| e.into_inner());
    match map.get(&token) {
        Some(a) => (StatusCode::OK, a.clone()),
        None => (StatusCode::NOT_FOUND, String::new()),
    }
}

async fn plain_loop(
    server: &str,
    bundle: &std::path::Path,
    solver: SocketAddr,
    count: u32,
    concurrency: u16,
    run: u32,
) -> anyhow::Result<Measured> {
    let answers: Answers = Arc::default();
    let listener = tokio::net::TcpListener::bind(solver).await?;
    let app = Router::new()
        .route("/.well-known/acme-challenge/{token}", get(answer))
        .with_state(answers.clone());
    let responder = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let (account, _) = Account::builder_with_root(bundle)?
        .create(
            &NewAccount {
                contact: &[],
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            server.to_string(),
            None,
        )
        .await?;
    let started = Instant::now();
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..count)
        .map(|i| {
            let account = account.clone();
            let answers = answers.clone();
            async move {
                let name = format!("www.plain-{run}-{i}.be");
                one_order(&account, &answers, &name).await
            }
        })
        .buffer_unordered(usize::from(concurrency))
        .collect()
        .await;
    let seconds = started.elapsed().as_secs_f64();
    responder.abort();
    for r in results {
        r?;
    }
    Ok(Measured {
        name: "plain ACME client loop",
        seconds,
        count,
    })
}

async fn one_order(account: &Account, answers: &Answers, name: &str) -> anyhow::Result<()> {
    let ids = [Identifier::Dns(name.to_string())];
    let mut order = account.new_order(&NewOrder::new(&ids)).await?;
    let mut authzs = order.authorizations();
    while let Some(authz) = authzs.next().await {
        let mut authz = authz?;
        if authz.status != AuthorizationStatus::Pending {
            continue;
        }
        let mut challenge = authz
            .challenge(ChallengeType::Http01)
            .context("no HTTP-01 challenge")?;
        answers.write().unwrap_or_else(|e| e.into_inner()).insert(
            challenge.token.clone(),
            challenge.key_authorization().as_str().to_string(),
        );
        challenge.set_ready().await?;
    }
    // Polls soon and often: the loop is the floor the server allows.
    let retries = RetryPolicy::new()
        .initial_delay(Duration::from_millis(10))
        .backoff(1.5)
        .timeout(Duration::from_secs(60));
    order.poll_ready(&retries).await?;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()])?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key)?;
    order.finalize_csr(csr.der()).await?;
    order.poll_certificate(&retries).await?;
    Ok(())
}
