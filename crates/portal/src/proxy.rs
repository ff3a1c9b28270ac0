//! Who is asking, as the authenticating proxy says: `X-Forwarded-User` and
//! `X-Forwarded-Groups`, believed only on connections from a trusted proxy.
//! The portal impersonates that user and those groups toward Kubernetes, so
//! the headers are read strictly, and anything ambiguous is refused rather
//! than guessed at.
//!
//! The accepted format:
//!
//! - each header at most once: a header sent twice (e.g. one from the
//!   browser passed through and one from the proxy) is refused, whatever its
//!   values;
//! - `X-Forwarded-User`: one name; `X-Forwarded-Groups`: names separated by
//!   commas, as oauth2-proxy sends them (`mons-admins,staff`); spaces and tabs
//!   around a name are ignored, empty entries dropped, duplicates kept once;
//!   no groups header means no groups;
//! - a name is 1 to 253 ASCII letters, digits and `.` `_` `@` `+` `-` `:`
//!   `/` (e.g. `jdupont@mons.be`, `mons-admins`, `/imio/approvers`):
//!   anything else (a space or tab inside a name, a quote, a semicolon, a
//!   control character, a byte outside ASCII) refuses the whole request, so
//!   that no name can carry or hide another one;
//! - names Kubernetes reserves for itself (`system:...` in any case, e.g.
//!   `system:masters`) are refused, for the user and for every group.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;

/// The header naming the user.
pub const USER: &str = "x-forwarded-user";
/// The header naming the user's groups, comma-separated.
pub const GROUPS: &str = "x-forwarded-groups";

/// The longest name accepted (Kubernetes' longest object name, as
/// MemberTenants' `spec.admins` allow).
const MAX_NAME: usize = 253;

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
    /// The header was sent more than once.
    Repeated(&'static str),
    /// A name in the header outside the accepted format, as received
    /// (bytes outside ASCII replaced).
    Invalid { header: &'static str, name: String },
}

impl fmt::Display for NoIdentity {
    /// Why, for the logs: received names are quoted and escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoIdentity::Untrusted(ip) => {
                write!(f, "identity headers from {ip}, not a trusted proxy")
            }
            NoIdentity::NoUser => write!(f, "no {USER} header"),
            NoIdentity::Reserved(name) => write!(f, "name reserved by Kubernetes: {name:?}"),
            NoIdentity::Repeated(header) => write!(f, "{header} sent more than once"),
            NoIdentity::Invalid { header, name } => {
                write!(f, "{header}: {name:?} is not an accepted name")
            }
        }
    }
}

/// Whether Kubernetes reserves this user or group name for itself (in any
/// case: a differently cased one is refused too, as a name no honest
/// identity provider sends).
fn reserved(name: &str) -> bool {
    name.get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("system:"))
}

/// Whether `name` is in the accepted format (see the module's doc).
fn well_formed(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@+-:/".contains(&b))
}

/// The one value of `header`, if sent; refused if sent twice.
fn single<'h>(
    headers: &'h HeaderMap,
    header: &'static str,
) -> Result<Option<&'h [u8]>, NoIdentity> {
    let mut values = headers.get_all(header).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(NoIdentity::Repeated(header));
    }
    Ok(first.map(|v| v.as_bytes()))
}

/// `bytes` without the spaces and tabs around them.
fn trim(bytes: &[u8]) -> &[u8] {
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !blank(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !blank(b))
        .map_or(start, |e| e + 1);
    &bytes[start..end]
}

/// A name of `header`, checked.
fn name(header: &'static str, bytes: &[u8]) -> Result<String, NoIdentity> {
    let text = String::from_utf8_lossy(bytes).into_owned();
    if !well_formed(&text) {
        return Err(NoIdentity::Invalid { header, name: text });
    }
    if reserved(&text) {
        return Err(NoIdentity::Reserved(text));
    }
    Ok(text)
}

/// `peer` as the set of trusted proxies lists it (an IPv4-mapped IPv6
/// address is its IPv4 address).
fn plain_ip(peer: SocketAddr) -> IpAddr {
    match peer.ip() {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The identity of a request that came through `trusted` proxies from `peer`,
/// from the proxy's headers, in the format of the module's doc.
pub fn identity(
    trusted: &BTreeSet<IpAddr>,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<Identity, NoIdentity> {
    let ip = plain_ip(peer);
    if !trusted.contains(&ip) {
        return Err(NoIdentity::Untrusted(ip));
    }
    let user = single(headers, USER)?.map(trim).unwrap_or_default();
    let groups = single(headers, GROUPS)?.unwrap_or_default();
    if user.is_empty() {
        return Err(NoIdentity::NoUser);
    }
    let user = name(USER, user)?;
    let mut names = groups
        .split(|b| *b == b',')
        .map(trim)
        .filter(|g| !g.is_empty())
        .map(|g| name(GROUPS, g))
        .collect::<Result<Vec<_>, _>>()?;
    names.sort();
    names.dedup();
    Ok(Identity {
        user,
        groups: names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn value(text: &[u8]) -> HeaderValue {
        HeaderValue::from_bytes(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn headers(user: &str, groups: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(USER, value(user.as_bytes()));
        h.insert(GROUPS, value(groups.as_bytes()));
        h
    }

    fn trusted() -> BTreeSet<IpAddr> {
        BTreeSet::from([IpAddr::from([127, 0, 0, 1])])
    }

    fn proxy() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 50000))
    }

    /// The identity of headers `h` from the proxy.
    fn from_proxy(h: &HeaderMap) -> Result<Identity, NoIdentity> {
        identity(&trusted(), proxy(), h)
    }

    /// The identity of these groups for a plain user.
    fn groups(groups: &[u8]) -> Result<Identity, NoIdentity> {
        let mut h = headers("agent@ans.be", "");
        h.insert(GROUPS, value(groups));
        from_proxy(&h)
    }

    fn invalid(header: &'static str, name: &str) -> Result<Identity, NoIdentity> {
        Err(NoIdentity::Invalid {
            header,
            name: name.into(),
        })
    }

    #[test]
    fn the_proxys_headers_name_the_user_and_groups() {
        let id = from_proxy(&headers(
            "agent@ans.be",
            "ans-admins, ,staff,\tans-admins ,/imio/approvers",
        ));
        assert_eq!(
            id,
            Ok(Identity {
                user: "agent@ans.be".into(),
                groups: vec![
                    "/imio/approvers".into(),
                    "ans-admins".into(),
                    "staff".into()
                ]
            })
        );
        let mut h = HeaderMap::new();
        h.insert(USER, value(b" jdupont+portail@mons.be "));
        assert_eq!(
            from_proxy(&h),
            Ok(Identity {
                user: "jdupont+portail@mons.be".into(),
                groups: vec![]
            })
        );
    }

    #[test]
    fn headers_from_anyone_else_are_not_believed() {
        let peer = SocketAddr::from(([127, 0, 0, 2], 50000));
        assert_eq!(
            identity(&trusted(), peer, &headers("admin", "mutu-approvers")),
            Err(NoIdentity::Untrusted(IpAddr::from([127, 0, 0, 2])))
        );
        assert_eq!(from_proxy(&HeaderMap::new()), Err(NoIdentity::NoUser));
        assert_eq!(
            from_proxy(&headers(" \t", "staff")),
            Err(NoIdentity::NoUser)
        );
    }

    #[test]
    fn names_kubernetes_reserves_are_never_believed() {
        assert_eq!(
            from_proxy(&headers("agent@ans.be", "staff,system:masters")),
            Err(NoIdentity::Reserved("system:masters".into()))
        );
        assert_eq!(
            from_proxy(&headers("agent@ans.be", "staff, SYSTEM:Masters")),
            Err(NoIdentity::Reserved("SYSTEM:Masters".into()))
        );
        assert_eq!(
            from_proxy(&headers("system:admin", "")),
            Err(NoIdentity::Reserved("system:admin".into()))
        );
        assert_eq!(
            from_proxy(&headers("system:serviceaccount:mutu-system:mutu", "")),
            Err(NoIdentity::Reserved(
                "system:serviceaccount:mutu-system:mutu".into()
            ))
        );
        // A name that merely contains the word is an ordinary one.
        assert!(from_proxy(&headers("agent@system.be", "my-system:ops")).is_ok());
    }

    #[test]
    fn a_header_sent_twice_is_refused_whatever_its_values() {
        let mut h = headers("agent@ans.be", "ans-admins");
        h.append(GROUPS, value(b"mutu-approvers"));
        assert_eq!(from_proxy(&h), Err(NoIdentity::Repeated(GROUPS)));
        // Even twice the same, or an empty second one.
        let mut h = headers("agent@ans.be", "ans-admins");
        h.append(GROUPS, value(b""));
        assert_eq!(from_proxy(&h), Err(NoIdentity::Repeated(GROUPS)));
        let mut h = headers("agent@ans.be", "ans-admins");
        h.append(USER, value(b"marie@imio.be"));
        assert_eq!(from_proxy(&h), Err(NoIdentity::Repeated(USER)));
        let mut h = headers("agent@ans.be", "");
        h.append(USER, value(b"agent@ans.be"));
        assert_eq!(from_proxy(&h), Err(NoIdentity::Repeated(USER)));
    }

    #[test]
    fn a_group_name_cannot_carry_or_hide_another() {
        // Another separator than the comma.
        assert_eq!(
            groups(b"staff;mutu-approvers"),
            invalid(GROUPS, "staff;mutu-approvers")
        );
        assert_eq!(
            groups(b"staff mutu-approvers"),
            invalid(GROUPS, "staff mutu-approvers")
        );
        assert_eq!(
            groups(b"staff\tmutu-approvers"),
            invalid(GROUPS, "staff\tmutu-approvers")
        );
        // Quoting, as if the comma were inside one name.
        assert_eq!(
            groups(br#""staff,mutu-approvers""#),
            invalid(GROUPS, "\"staff")
        );
        // Lookalikes outside ASCII: a Unicode hyphen, a zero-width space.
        assert_eq!(
            groups("mutu\u{2010}approvers".as_bytes()),
            invalid(GROUPS, "mutu\u{2010}approvers")
        );
        assert_eq!(
            groups("mutu-approvers\u{200b}".as_bytes()),
            invalid(GROUPS, "mutu-approvers\u{200b}")
        );
        assert_eq!(
            groups(b"staff,mutu-approvers\xff"),
            invalid(GROUPS, "mutu-approvers\u{fffd}")
        );
        // Encodings that something downstream could decode.
        assert_eq!(
            groups(b"mutu%2Dapprovers"),
            invalid(GROUPS, "mutu%2Dapprovers")
        );
        assert_eq!(
            groups(b"staff,=?utf-8?q?mutu-approvers?="),
            invalid(GROUPS, "=?utf-8?q?mutu-approvers?=")
        );
        // Too long to be a group an admin list can name.
        let long = "a".repeat(254);
        assert_eq!(groups(long.as_bytes()), invalid(GROUPS, &long));
        assert!(groups("a".repeat(253).as_bytes()).is_ok());
    }

    #[test]
    fn a_user_name_cannot_carry_groups_or_another_user() {
        let mut h = HeaderMap::new();
        for (user, name) in [
            (
                &b"agent@ans.be,mutu-approvers"[..],
                "agent@ans.be,mutu-approvers",
            ),
            (b"agent@ans.be marie@imio.be", "agent@ans.be marie@imio.be"),
            (b"\"agent@ans.be\"", "\"agent@ans.be\""),
            (
                b"agent@ans.be\tmarie@imio.be",
                "agent@ans.be\tmarie@imio.be",
            ),
            (b"agent@ans.be\xc2\xa0", "agent@ans.be\u{a0}"),
        ] {
            h.insert(USER, value(user));
            assert_eq!(from_proxy(&h), invalid(USER, name));
        }
    }

    #[test]
    fn the_reason_is_logged_with_the_names_escaped() {
        let why = NoIdentity::Invalid {
            header: GROUPS,
            name: "a\nb".into(),
        };
        assert_eq!(
            why.to_string(),
            r#"x-forwarded-groups: "a\nb" is not an accepted name"#
        );
        assert_eq!(
            NoIdentity::Repeated(USER).to_string(),
            "x-forwarded-user sent more than once"
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
