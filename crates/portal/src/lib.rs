//! `mutu portal`: a small web application for the members' agents, in French,
//! server-rendered and without script. Agents see their member's sites, ask
//! for new ones (ProvisioningRequests) and follow them; approvers decide.
//!
//! Identity comes from an authenticating reverse proxy (oauth2-proxy in front
//! of the cooperative's OIDC provider): `X-Forwarded-User` and
//! `X-Forwarded-Groups`, believed only on connections from the trusted proxy.
//! Every read and write a page shows or makes goes to Kubernetes as that user
//! and their groups (impersonation), so Kubernetes RBAC alone decides what an
//! agent may see and do. The portal's own identity only lists MemberTenants to
//! offer each agent the pages of the members naming them as admins.

mod clients;
mod cluster;
pub mod decision;
mod form;
mod handlers;
pub mod html;
mod model;
mod views;

use std::collections::BTreeSet;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::http::HeaderMap;

pub use clients::Clients;

/// How the portal runs.
#[derive(Clone)]
pub struct Config {
    /// Addresses whose connections may carry the identity headers: the proxy's.
    pub trusted_proxies: BTreeSet<IpAddr>,
    /// How to reach Kubernetes as the portal itself (impersonation starts from it).
    pub kube: kube::Config,
}

/// Who is asking: as the proxy says.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

/// Why a request has no identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoIdentity {
    /// The connection does not come from the trusted proxy.
    Untrusted(IpAddr),
    /// The proxy sent no user.
    NoUser,
    /// A user or group name Kubernetes reserves for itself (`system:...`,
    /// e.g. `system:masters`): the portal never impersonates one, whatever
    /// the identity provider says.
    Reserved(String),
}

/// Whether Kubernetes reserves this user or group name for itself.
fn reserved(name: &str) -> bool {
    name.starts_with("system:")
}

/// The identity of a request that came through `trusted` proxies from `peer`,
/// from the proxy's headers. Groups are comma-separated, as oauth2-proxy sends
/// them; empty ones are dropped.
pub fn identity(
    trusted: &BTreeSet<IpAddr>,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<Identity, NoIdentity> {
    let ip = match peer.ip() {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    if !trusted.contains(&ip) {
        return Err(NoIdentity::Untrusted(ip));
    }
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    };
    let user = text("x-forwarded-user");
    if user.is_empty() {
        return Err(NoIdentity::NoUser);
    }
    if reserved(&user) {
        return Err(NoIdentity::Reserved(user));
    }
    let mut groups: Vec<String> = text("x-forwarded-groups")
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_string)
        .collect();
    if let Some(group) = groups.iter().find(|g| reserved(g)) {
        return Err(NoIdentity::Reserved(group.clone()));
    }
    groups.sort();
    groups.dedup();
    Ok(Identity { user, groups })
}

/// Serves the portal on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let own = kube::Client::try_from(config.kube.clone()).map_err(ServeError::Client)?;
    let app = Arc::new(handlers::App {
        trusted: config.trusted_proxies,
        clients: Clients::new(config.kube),
        own,
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
    #[error("the portal's server failed: {0}")]
    Io(#[source] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(user: &str, groups: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-user",
            HeaderValue::from_str(user).unwrap_or_else(|e| panic!("{e}")),
        );
        h.insert(
            "x-forwarded-groups",
            HeaderValue::from_str(groups).unwrap_or_else(|e| panic!("{e}")),
        );
        h
    }

    fn trusted() -> BTreeSet<IpAddr> {
        BTreeSet::from([IpAddr::from([127, 0, 0, 1])])
    }

    #[test]
    fn the_proxys_headers_name_the_user_and_groups() {
        let peer: SocketAddr = "127.0.0.1:50000".parse().unwrap_or_else(|e| panic!("{e}"));
        let id = identity(
            &trusted(),
            peer,
            &headers("agent@ans.be", "ans-admins, ,staff,ans-admins"),
        );
        assert_eq!(
            id,
            Ok(Identity {
                user: "agent@ans.be".into(),
                groups: vec!["ans-admins".into(), "staff".into()]
            })
        );
    }

    #[test]
    fn headers_from_anyone_else_are_not_believed() {
        let peer: SocketAddr = "127.0.0.2:50000".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            identity(&trusted(), peer, &headers("admin", "mutu-approvers")),
            Err(NoIdentity::Untrusted(IpAddr::from([127, 0, 0, 2])))
        );
        let peer: SocketAddr = "127.0.0.1:50000".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            identity(&trusted(), peer, &HeaderMap::new()),
            Err(NoIdentity::NoUser)
        );
    }

    #[test]
    fn names_kubernetes_reserves_are_never_believed() {
        let peer: SocketAddr = "127.0.0.1:50000".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            identity(
                &trusted(),
                peer,
                &headers("agent@ans.be", "staff,system:masters")
            ),
            Err(NoIdentity::Reserved("system:masters".into()))
        );
        assert_eq!(
            identity(&trusted(), peer, &headers("system:admin", "")),
            Err(NoIdentity::Reserved("system:admin".into()))
        );
        assert_eq!(
            identity(
                &trusted(),
                peer,
                &headers("system:serviceaccount:mutu-system:mutu", "")
            ),
            Err(NoIdentity::Reserved(
                "system:serviceaccount:mutu-system:mutu".into()
            ))
        );
        // A name that merely contains the word is an ordinary one.
        assert!(
            identity(
                &trusted(),
                peer,
                &headers("agent@system.be", "my-system:ops")
            )
            .is_ok()
        );
    }

    #[test]
    fn an_ipv4_mapped_peer_is_its_ipv4_address() {
        let peer: SocketAddr = "[::ffff:127.0.0.1]:50000"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(identity(&trusted(), peer, &headers("a", "")).is_ok());
    }
}
