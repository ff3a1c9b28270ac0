//! The HTTP endpoints of an operator process: `/healthz` (the process answers),
//! `/readyz` (it is connected and its controllers are watching), `/metrics`,
//! and `/log-level` (GET the filter in force; PUT a new one, from the loopback
//! address only, e.g. through `kubectl port-forward`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::Metrics;

/// How long a watch may stay broken before `/readyz` turns false.
pub const WATCH_GRACE: Duration = Duration::from_secs(60);

/// Readiness of the process, shared between the controllers and the server:
/// ready once started, and not ready while any watch has been failing for
/// longer than [`WATCH_GRACE`].
#[derive(Clone, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
    /// By watched kind and watch (several controllers may watch one kind).
    broken_since: Arc<Mutex<HashMap<(String, usize), Instant>>>,
}

impl Health {
    /// Marks the process ready (or not) for `/readyz`.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Records that watch `id` of `name` delivered an event (it works); returns
    /// whether a watch of `name` is still broken.
    pub fn watch_ok(&self, name: &str, id: usize) -> bool {
        let mut broken = self.broken_since.lock().unwrap_or_else(|e| e.into_inner());
        broken.remove(&(name.to_string(), id));
        broken.keys().any(|(n, _)| n == name)
    }

    /// Records that watch `id` of `name` failed; its first failure starts the clock.
    pub fn watch_failed(&self, name: &str, id: usize) {
        let mut broken = self.broken_since.lock().unwrap_or_else(|e| e.into_inner());
        broken
            .entry((name.to_string(), id))
            .or_insert_with(Instant::now);
    }

    /// The names of the watches broken for longer than `grace`.
    pub fn broken_watches(&self, grace: Duration) -> Vec<String> {
        let broken = self.broken_since.lock().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<String> = broken
            .iter()
            .filter(|(_, since)| since.elapsed() > grace)
            .map(|((name, _), _)| name.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// Whether `/readyz` currently answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && self.broken_watches(WATCH_GRACE).is_empty()
    }
}

#[derive(Clone)]
struct AppState {
    health: Health,
    metrics: Metrics,
}

/// The router serving the health and metrics endpoints.
pub fn router(health: Health, metrics: Metrics) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/log-level", get(log_level).put(set_log_level))
        .with_state(AppState { health, metrics })
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let broken = state.health.broken_watches(WATCH_GRACE);
    if !broken.is_empty() {
        let body = format!(
            "not ready: watches broken for over {WATCH_GRACE:?}: {}\n",
            broken.join(", ")
        );
        (StatusCode::SERVICE_UNAVAILABLE, body)
    } else if state.health.is_ready() {
        (StatusCode::OK, "ready\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: starting\n".to_string(),
        )
    }
}

async fn log_level() -> impl IntoResponse {
    match crate::logging::current() {
        Some(filter) => (StatusCode::OK, format!("{filter}\n")),
        None => (
            StatusCode::NOT_FOUND,
            "this process cannot change its log level\n".to_string(),
        ),
    }
}

/// A new filter in the body. Only from the loopback address: anyone who can
/// reach the port over the network could otherwise flood the logs.
async fn set_log_level(
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: String,
) -> impl IntoResponse {
    if !peer.ip().is_loopback()
        && !matches!(peer.ip(), std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()))
    {
        return (
            StatusCode::FORBIDDEN,
            format!(
                "the log level is changed from the loopback address only (e.g. through `kubectl port-forward`), not from {}\n",
                peer.ip()
            ),
        );
    }
    match crate::logging::set(&body) {
        Ok(()) => (StatusCode::OK, format!("{}\n", body.trim())),
        Err(crate::logging::SetError::NotInstalled) => (
            StatusCode::NOT_FOUND,
            "this process cannot change its log level\n".to_string(),
        ),
        Err(e) => (StatusCode::BAD_REQUEST, format!("not a log filter: {e}\n")),
    }
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

/// Binds `addr` and serves the endpoints until `shutdown` completes.
/// Returns the address actually bound (useful with port 0).
pub async fn serve(
    addr: SocketAddr,
    health: Health,
    metrics: Metrics,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = router(health, metrics);
    let handle = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
    });
    Ok((bound, handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_broken_longer_than_the_grace_makes_the_process_unready() {
        let health = Health::default();
        health.set_ready(true);
        assert!(health.is_ready());
        health.watch_failed("plonesites", 1);
        assert!(
            health.is_ready(),
            "a fresh failure is within the grace period"
        );
        assert_eq!(
            health.broken_watches(Duration::ZERO),
            vec!["plonesites".to_string()]
        );
        // Another controller's watch of the same kind works: this one is still broken.
        health.watch_failed("plonesites", 2);
        assert!(health.watch_ok("plonesites", 2));
        assert_eq!(
            health.broken_watches(Duration::ZERO),
            vec!["plonesites".to_string()]
        );
        assert!(!health.watch_ok("plonesites", 1));
        assert!(
            health.broken_watches(Duration::ZERO).is_empty(),
            "a working watch clears it"
        );
    }
}
