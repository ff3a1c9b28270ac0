//! The certificate operator: CertificateIssuers (an ACME account, an internal
//! CA, or self-signed) and Certificates kept valid in `kubernetes.io/tls`
//! Secrets, renewed on time, re-issued when the Secret is lost or tampered
//! with, with ACME orders counted against a fleet-wide rate-limit budget and
//! HTTP-01 challenges answered by the operator itself.
//! This crate exposes its controllers and nothing else.

mod acme;
mod budget;
mod issuer;
mod metrics;
mod pki;
mod reconcile;
mod solver;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use mutu_api::common::TENANT_NAMESPACE_PREFIX;
use mutu_api::{Certificate, CertificateIssuer, MemberTenant};
use mutu_runtime::watch::{after_initial_list, children_watch, main_watch};
use mutu_runtime::{Context, Health, Metrics, Settings};

pub use reconcile::Config;
/// A renewal asked for by a person: the annotation, the status condition that
/// records it, and where a Certificate's request stands.
pub use reconcile::{RENEW_REQUESTED_ANNOTATION, RENEWAL_REQUESTED, RenewRequest, renew_request};
pub use solver::Route;

/// Name of the certificate controller in metrics, events and its field manager.
pub const NAME: &str = "certificate";
/// Name of the issuer controller.
pub const ISSUER_NAME: &str = "issuer";

/// Why the operator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("--acme-solver-addr: cannot listen on {addr}: {source}")]
    Solver {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// What of an issuer its certificates read: its generation (spec) and its
/// status. Any other change (labels, annotations, its resourceVersion alone)
/// gives the same value, and does not re-check its certificates.
fn issuer_change(issuer: &DeserializeGuard<CertificateIssuer>) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    issuer.meta().generation.hash(&mut h);
    match &issuer.0 {
        Ok(i) => serde_json::to_string(&i.status).ok()?.hash(&mut h),
        Err(e) => e.to_string().hash(&mut h),
    }
    Some(h.finish())
}

/// The Certificate a Secret or challenge Ingress belongs to, from its annotation.
fn owning_certificate<K: kube::Resource>(
    obj: &K,
    in_own_namespace: bool,
) -> Option<ObjectRef<DeserializeGuard<Certificate>>> {
    let value = obj
        .meta()
        .annotations
        .as_ref()?
        .get(reconcile::CERTIFICATE_ANNOTATION)?;
    if in_own_namespace {
        Some(ObjectRef::new(value).within(obj.meta().namespace.as_deref()?))
    } else {
        let (ns, name) = value.split_once('/')?;
        Some(ObjectRef::new(name).within(ns))
    }
}

/// Runs the issuer and certificate controllers (and, when `solver_addr` is
/// set, the HTTP-01 solver) until `shutdown` completes.
pub async fn run(
    client: Client,
    metrics: Metrics,
    health: Health,
    config: Config,
    solver_addr: Option<SocketAddr>,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), StartError> {
    let shutdown = shutdown.shared();
    let tokens = solver::Tokens::default();
    let solver_task = match solver_addr {
        Some(addr) => {
            let (bound, task) = solver::serve(addr, tokens.clone(), shutdown.clone())
                .await
                .map_err(|source| StartError::Solver { addr, source })?;
            tracing::info!(addr = %bound, "answering ACME HTTP-01 challenges");
            Some(task)
        }
        None => {
            tracing::warn!("no --acme-solver-addr: ACME issuers cannot validate names");
            None
        }
    };

    let (certificates, cert_stream) = main_watch(
        Api::<DeserializeGuard<Certificate>>::all(client.clone()),
        watcher::Config::default(),
        &health,
        &metrics,
    );
    let (issuers, issuer_stream) = main_watch(
        Api::<DeserializeGuard<CertificateIssuer>>::all(client.clone()),
        watcher::Config::default(),
        &health,
        &metrics,
    );
    let (tenants, tenant_stream) = main_watch(
        Api::<DeserializeGuard<MemberTenant>>::all(client.clone()),
        watcher::Config::default(),
        &health,
        &metrics,
    );
    let secret_selector = format!(
        "{}={},{}={}",
        mutu_api::MANAGED_BY,
        mutu_api::MANAGED_BY_VALUE,
        mutu_api::COMPONENT,
        reconcile::SECRET_COMPONENT
    );
    let (secrets, secret_stream) = main_watch(
        Api::<Secret>::all(client.clone()),
        watcher::Config::default().labels(&secret_selector),
        &health,
        &metrics,
    );
    let (ingresses, ingress_stream) = children_watch::<Ingress>(&client, &health, &metrics);

    let cert_metrics = metrics::CertMetrics::default();
    cert_metrics.register(&metrics);
    let accounts = Arc::new(acme::Accounts::new(config.acme_server_allow.clone()));
    let data = reconcile::Caches {
        config: config.clone(),
        certificates: certificates.clone(),
        issuers: issuers.clone(),
        tenants: tenants.clone(),
        secrets: secrets.clone(),
        ingresses: ingresses.clone(),
        accounts: accounts.clone(),
        budget: budget::Budget::default(),
        tokens,
        metrics: cert_metrics.clone(),
        presented: Mutex::new(HashMap::new()),
        ari: Mutex::new(HashMap::new()),
    };
    let ctx = Arc::new(Context::new(
        NAME,
        client.clone(),
        metrics.clone(),
        health.clone(),
        settings.clone(),
        data,
    ));
    let queue = ctx.queue.clone();

    // An issuer change (became ready, new settings) re-checks its certificates;
    // a tenant change (domains) re-checks the certificates of its namespace.
    let certs_of_issuer = certificates.clone();
    let certs_of_tenant = certificates.clone();
    let controller = Controller::for_stream(queue.watch(cert_stream), certificates.clone())
        .watches_stream(
            secret_stream,
            queue.via(|s: Secret| owning_certificate(&s, true)),
        )
        .watches_stream(ingress_stream, queue.via(|i| owning_certificate(&i, false)))
        // Only an issuer change that matters to its certificates (its spec,
        // or its status: ready or not, its CA) re-checks them: each re-check
        // reads every certificate of the fleet.
        .watches_stream(
            after_initial_list(
                issuer_stream.predicate_filter(issuer_change, Default::default()),
                issuers,
            ),
            move |i: DeserializeGuard<CertificateIssuer>| {
                let name = i.name_any();
                certs_of_issuer
                    .state()
                    .into_iter()
                    .filter(|c| c.0.as_ref().is_ok_and(|c| c.spec.issuer_ref.name == name))
                    .map(|c| ObjectRef::from_obj(&*c))
                    .collect::<Vec<_>>()
            },
        )
        // Of a tenant, certificates read only its spec and the domains it was
        // admitted with: the rest of its status counts its sites, and changes with
        // each of them.
        .watches_stream(
            after_initial_list(
                tenant_stream
                    .predicate_filter(mutu_runtime::watch::tenant_admission, Default::default()),
                tenants,
            ),
            move |t: DeserializeGuard<MemberTenant>| {
                let ns = format!("{TENANT_NAMESPACE_PREFIX}{}", t.name_any());
                certs_of_tenant
                    .state()
                    .into_iter()
                    .filter(|c| c.meta().namespace.as_deref() == Some(ns.as_str()))
                    .map(|c| ObjectRef::from_obj(&*c))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(shutdown.clone());

    let issuer_ctx = Arc::new(Context::new(
        ISSUER_NAME,
        client.clone(),
        metrics.clone(),
        health.clone(),
        settings,
        issuer::Caches {
            namespace: config.namespace.clone(),
            accounts,
        },
    ));
    let (issuers_of_controller, issuer_controller_stream) = main_watch(
        Api::<DeserializeGuard<CertificateIssuer>>::all(client.clone()),
        watcher::Config::default(),
        &health,
        &metrics,
    );
    let issuer_controller = Controller::for_stream(issuer_controller_stream, issuers_of_controller)
        .graceful_shutdown_on(shutdown.clone());

    let sweep = sweep(ctx.clone(), cert_metrics, shutdown.clone());
    let certs_done = mutu_runtime::controller::run(controller, ctx, reconcile::reconcile);
    let issuers_done =
        mutu_runtime::controller::run(issuer_controller, issuer_ctx, issuer::reconcile);
    futures::join!(certs_done, issuers_done, sweep);
    if let Some(task) = solver_task {
        let _ = task.await;
    }
    Ok(())
}

/// Every minute: removes challenge Ingresses whose Certificate is gone (deleted
/// during an order) and the expiry series of deleted Certificates.
async fn sweep(
    ctx: Arc<Context<reconcile::Caches>>,
    cert_metrics: metrics::CertMetrics,
    shutdown: impl Future<Output = ()> + Send,
) {
    let work = async {
        while !ctx.data.ready().await {}
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            let exists = |ns: &str, name: &str| {
                ctx.data
                    .certificates
                    .get(&ObjectRef::new(name).within(ns))
                    .is_some()
            };
            cert_metrics.retain(exists);
            for ing in ctx.data.ingresses.state() {
                let Some(owner) = owning_certificate(&*ing, false) else {
                    continue;
                };
                let ns = owner.namespace.clone().unwrap_or_default();
                if ing.labels().get(mutu_api::COMPONENT).map(String::as_str)
                    != Some("acme-challenge")
                    || exists(&ns, &owner.name)
                {
                    continue;
                }
                let ing_ns = ing.namespace().unwrap_or_default();
                if let Err(e) = ctx
                    .applier
                    .delete::<Ingress>(Some(&ing_ns), &ing.name_any())
                    .await
                {
                    tracing::warn!(error = %e, "cannot remove an orphaned challenge Ingress");
                }
            }
        }
    };
    tokio::select! {
        () = work => {}
        () = shutdown => {}
    }
}
