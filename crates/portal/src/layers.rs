//! What every response gets, whatever answered it (a page, a refusal, a
//! redirection, axum's own 404 or 405): the security headers, and one log
//! line naming the user.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::handlers::App;

/// The pages' Content-Security-Policy: nothing but the portal's own
/// stylesheet, no script at all, never in a frame, no `<base>`. (No
/// `form-action`: a form posted once the proxy's session has expired is
/// redirected to the identity provider, which it would block.)
pub const CSP: &str =
    "default-src 'none'; style-src 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The headers every response carries.
const HEADERS: [(HeaderName, &str); 5] = [
    (header::CONTENT_SECURITY_POLICY, CSP),
    // For browsers that do not know `frame-ancestors`.
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "same-origin"),
    (
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    ),
];

/// Adds the security headers to the response.
pub async fn secure(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Logs one line per request: method, path (the URI's path, which holds no
/// control character), status, duration, the peer, and the user (or why
/// there is none, its names escaped). The health probe's only at debug level.
pub async fn log(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let user = match peer {
        Some(peer) => {
            crate::identity(&app.trusted, peer, request.headers()).map_err(|e| e.to_string())
        }
        None => Err("no peer address".to_string()),
    };
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let peer = peer.map(|p| p.ip().to_string()).unwrap_or_default();
    if path == "/healthz" {
        tracing::debug!(%method, %path, status, ms, %peer, "request");
        return response;
    }
    match user {
        Ok(id) => tracing::info!(%method, %path, status, ms, %peer, user = %id.user, "request"),
        Err(why) => tracing::info!(%method, %path, status, ms, %peer, no_user = %why, "request"),
    }
    response
}
