//! `mutu portal`: a small web application for the members' agents, in French,
//! German and English ([`i18n`]: from `Accept-Language`, or the language
//! switch of every page), server-rendered from templates that escape every
//! value ([`html`]) and without script. Agents see their member's sites, ask
//! for new ones (ProvisioningRequests) and follow them; approvers decide.
//!
//! Identity comes from an authenticating reverse proxy (oauth2-proxy in front
//! of the cooperative's OIDC provider): `X-Forwarded-User` and
//! `X-Forwarded-Groups`, believed only on connections from the trusted proxy,
//! each header once and every name in a strict format ([`proxy`] says which).
//! Every read and write a page shows or makes goes to Kubernetes as that user
//! and their groups (impersonation), so Kubernetes RBAC alone decides what an
//! agent may see and do. The portal's own identity only lists MemberTenants to
//! offer each agent the pages of the members naming them as admins.
//!
//! Every form carries a token bound to its user ([`csrf`]), and a form posted
//! without a valid one, or from another site, is refused before anything is
//! read or written. Every response carries a Content-Security-Policy allowing
//! no script and no framing, with the other security headers, and every
//! request is logged with its user.

mod clients;
mod cluster;
pub mod csrf;
pub mod decision;
mod form;
mod handlers;
pub mod html;
pub mod i18n;
mod layers;
pub mod maintenance;
mod model;
pub mod proxy;
mod views;

use std::collections::BTreeSet;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

pub use clients::Clients;
pub use proxy::{Identity, NoIdentity, identity};

/// How the portal runs.
#[derive(Clone)]
pub struct Config {
    /// Addresses whose connections may carry the identity headers: the proxy's.
    pub trusted_proxies: BTreeSet<IpAddr>,
    /// How to reach Kubernetes as the portal itself (impersonation starts from it).
    pub kube: kube::Config,
}

/// Serves the portal on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let own = kube::Client::try_from(config.kube.clone()).map_err(ServeError::Client)?;
    let key = csrf::Key::random().map_err(|_| ServeError::Random)?;
    let app = Arc::new(handlers::App {
        trusted: config.trusted_proxies,
        clients: Clients::new(config.kube),
        own,
        key,
    });
    axum::serve(
        listener,
        handlers::router(app).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .map_err(ServeError::Io)
}

/// Why the portal stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot make a Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    #[error(
        "cannot draw the key of the forms' tokens from the operating system's random generator"
    )]
    Random,
    #[error("the portal's server failed: {0}")]
    Io(#[source] std::io::Error),
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
