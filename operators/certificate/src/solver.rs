//! The HTTP-01 solver: a small HTTP server in the operator that answers
//! `/.well-known/acme-challenge/<token>` for the orders in progress, and the
//! Ingress that routes those paths of the names being validated to it, which
//! exists only while an order is pending.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, ServiceBackendPort,
};
use kube::api::ObjectMeta;

use crate::acme::Token;

/// Path prefix the ACME server fetches.
pub const PREFIX: &str = "/.well-known/acme-challenge/";

/// The tokens being answered, by certificate (`namespace/name`).
#[derive(Clone, Default)]
pub struct Tokens {
    by_cert: Arc<RwLock<HashMap<String, Vec<Token>>>>,
}

impl Tokens {
    /// Answers `tokens` for `certificate` (replacing what it answered before).
    pub fn set(&self, certificate: &str, tokens: Vec<Token>) {
        let mut map = self.by_cert.write().unwrap_or_else(|e| e.into_inner());
        map.insert(certificate.to_string(), tokens);
    }

    /// Stops answering for `certificate`.
    pub fn clear(&self, certificate: &str) {
        let mut map = self.by_cert.write().unwrap_or_else(|e| e.into_inner());
        map.remove(certificate);
    }

    fn answer(&self, token: &str) -> Option<String> {
        let map = self.by_cert.read().unwrap_or_else(|e| e.into_inner());
        map.values()
            .flatten()
            .find(|t| t.token == token)
            .map(|t| t.key_authorization.clone())
    }
}

async fn challenge(
    State(tokens): State<Tokens>,
    Path(token): Path<String>,
) -> (StatusCode, String) {
    match tokens.answer(&token) {
        Some(answer) => (StatusCode::OK, answer),
        None => (StatusCode::NOT_FOUND, "no such ACME challenge\n".into()),
    }
}

/// The solver's routes.
pub fn router(tokens: Tokens) -> Router {
    Router::new()
        .route("/.well-known/acme-challenge/{token}", get(challenge))
        .with_state(tokens)
}

/// Listens on `addr` and serves the challenges until `shutdown` completes.
/// Returns the bound address and the server task.
pub async fn serve(
    addr: SocketAddr,
    tokens: Tokens,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(tokens))
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "the HTTP-01 solver stopped");
        }
    });
    Ok((bound, task))
}

/// Where challenge Ingresses send traffic: the operator's solver Service.
#[derive(Clone, Debug)]
pub struct Route {
    pub namespace: String,
    pub service: String,
    pub port: u16,
    pub ingress_class: String,
}

/// Label of a challenge Ingress naming its certificate (`namespace.name`).
pub const CERTIFICATE_LABEL: &str = "hosting.imio.be/certificate";

/// Name of the challenge Ingress of a certificate: unique per certificate,
/// within the 253 characters of a name.
pub fn ingress_name(cert_namespace: &str, cert_name: &str) -> String {
    let hash = mutu_runtime::apply::fingerprint(&(cert_namespace, cert_name)).unwrap_or_default();
    let stem: String = cert_name.chars().take(200).collect();
    format!("acme-{stem}-{}", &hash[..8.min(hash.len())])
}

/// The Ingress routing the challenge path of `hostnames` to the solver.
pub fn ingress(
    route: &Route,
    cert_namespace: &str,
    cert_name: &str,
    owner_uid: &str,
    hostnames: &[String],
    ingress_class: Option<&str>,
) -> Ingress {
    let mut labels = mutu_runtime::labels::standard(cert_name, owner_uid, "acme-challenge");
    let cert_label: String = format!("{cert_namespace}.{cert_name}")
        .chars()
        .take(63)
        .collect();
    labels.insert(
        CERTIFICATE_LABEL.to_string(),
        cert_label.trim_end_matches(['-', '.', '_']).to_string(),
    );
    let backend = IngressBackend {
        service: Some(IngressServiceBackend {
            name: route.service.clone(),
            port: Some(ServiceBackendPort {
                number: Some(i32::from(route.port)),
                ..Default::default()
            }),
        }),
        ..Default::default()
    };
    let mut hosts: Vec<&String> = hostnames.iter().collect();
    hosts.sort();
    hosts.dedup();
    Ingress {
        metadata: ObjectMeta {
            name: Some(ingress_name(cert_namespace, cert_name)),
            namespace: Some(route.namespace.clone()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                "hosting.imio.be/certificate".to_string(),
                format!("{cert_namespace}/{cert_name}"),
            )])),
            ..Default::default()
        },
        spec: Some(IngressSpec {
            ingress_class_name: Some(ingress_class.unwrap_or(&route.ingress_class).to_string()),
            rules: Some(
                hosts
                    .into_iter()
                    .map(|h| IngressRule {
                        host: Some(h.clone()),
                        http: Some(HTTPIngressRuleValue {
                            paths: vec![HTTPIngressPath {
                                path: Some(PREFIX.to_string()),
                                path_type: "Prefix".into(),
                                backend: backend.clone(),
                            }],
                        }),
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_route_covers_exactly_the_names_being_validated() {
        let route = Route {
            namespace: "mutu-system".into(),
            service: "mutu-acme-solver".into(),
            port: 8089,
            ingress_class: "nginx".into(),
        };
        let ing = ingress(
            &route,
            "tenant-mons",
            "www-tls",
            "uid-1",
            &["www.mons.be".into(), "mons.be".into()],
            None,
        );
        assert_eq!(ing.metadata.namespace.as_deref(), Some("mutu-system"));
        let spec = ing.spec.unwrap_or_default();
        assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
        let rules = spec.rules.unwrap_or_default();
        let hosts: Vec<_> = rules.iter().filter_map(|r| r.host.clone()).collect();
        assert_eq!(hosts, vec!["mons.be", "www.mons.be"]);
        for r in &rules {
            let paths = &r.http.as_ref().map(|h| h.paths.clone()).unwrap_or_default();
            assert_eq!(paths.len(), 1);
            assert_eq!(paths[0].path.as_deref(), Some(PREFIX));
        }
        assert_ne!(
            ingress_name("tenant-mons", "www-tls"),
            ingress_name("tenant-namur", "www-tls"),
            "two namespaces' certificates never share a challenge Ingress"
        );
    }

    #[tokio::test]
    async fn the_solver_answers_known_tokens_only() {
        let tokens = Tokens::default();
        tokens.set(
            "ns/c",
            vec![Token {
                hostname: "www.mons.be".into(),
                token: "abc".into(),
                key_authorization: "abc.thumb".into(),
            }],
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (addr, task) = serve(
            "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!()),
            tokens.clone(),
            async {
                let _ = rx.await;
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let get = |path: &str| {
            let url = format!("http://{addr}{path}");
            async move {
                let out = tokio::process::Command::new("curl")
                    .args(["-s", "-o", "-", "-w", "\n%{http_code}", &url])
                    .output()
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                String::from_utf8_lossy(&out.stdout).to_string()
            }
        };
        assert_eq!(
            get("/.well-known/acme-challenge/abc").await,
            "abc.thumb\n200"
        );
        assert!(
            get("/.well-known/acme-challenge/zzz")
                .await
                .ends_with("404")
        );
        tokens.clear("ns/c");
        assert!(
            get("/.well-known/acme-challenge/abc")
                .await
                .ends_with("404")
        );
        let _ = tx.send(());
        let _ = task.await;
    }
}
