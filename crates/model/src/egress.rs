//! Where a member's pods may connect to outside their namespace: the services
//! the platform provides (DNS, Solr, the RelStorage databases, a mail relay),
//! each a list of destinations. The tenant operator writes one NetworkPolicy
//! per purpose from them; nothing else is reachable, least of all another
//! member's pods.
//!
//! A destination is written as one of (the port is the port of the pods or
//! hosts behind it, which a network policy sees, not a Service's port):
//!
//! - `10.0.0.25:25`, `[fd00::25]:25`: one address;
//! - `10.0.0.0/24:5432`, `[fd00::/64]:5432`: an address block (CIDR);
//! - `namespace/databases:5432`: every pod of the namespace `databases`;
//! - `namespace/databases/app=postgres+role=primary:5432`: the pods of that
//!   namespace with these labels;
//! - `postgres.databases.svc:5432` (or `....svc.cluster.local`): a Service's
//!   name, standing for every pod of its namespace (`databases`).
//!
//! An address block is the platform's choice: one that overlaps the pod
//! network lets the members' pods reach whatever pods have addresses in it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use mutu_api::common::is_dns_label;

/// What a destination is: pods of a namespace, or an address block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// The pods of `name` carrying every label of `pods` (all of them when empty).
    Namespace {
        name: String,
        pods: BTreeMap<String, String>,
    },
    /// Addresses in a block, as a canonical CIDR (`10.0.0.25/32`).
    Block(String),
}

/// One place the members' pods may connect to, on one port (TCP; DNS also UDP).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    pub peer: Peer,
    pub port: u16,
}

/// The destinations of each purpose. An empty list allows nothing (and its
/// NetworkPolicy is not written).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Egress {
    /// The cluster's DNS (port 53, UDP and TCP).
    pub dns: Vec<Destination>,
    /// The shared Solr the instances and reindex Jobs query.
    pub solr: Vec<Destination>,
    /// The PostgreSQL servers of RelStorage sites (instances, backup and restore Jobs).
    pub database: Vec<Destination>,
    /// The SMTP relay Plone sends its mail through.
    pub mail_relay: Vec<Destination>,
}

/// Namespace of the cluster's DNS when nothing else is said.
pub const DEFAULT_DNS: &str = "namespace/kube-system:53";

impl Default for Egress {
    fn default() -> Self {
        let dns = Destination {
            peer: Peer::Namespace {
                name: "kube-system".to_string(),
                pods: BTreeMap::new(),
            },
            port: 53,
        };
        let solr = Destination {
            peer: Peer::Namespace {
                name: "solr".to_string(),
                pods: BTreeMap::new(),
            },
            port: 8983,
        };
        Self {
            dns: vec![dns],
            solr: vec![solr],
            database: vec![],
            mail_relay: vec![],
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.peer {
            Peer::Block(cidr) if cidr.contains(':') => write!(f, "[{cidr}]:{}", self.port),
            Peer::Block(cidr) => write!(f, "{cidr}:{}", self.port),
            Peer::Namespace { name, pods } if pods.is_empty() => {
                write!(f, "namespace/{name}:{}", self.port)
            }
            Peer::Namespace { name, pods } => {
                let labels: Vec<String> = pods.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "namespace/{name}/{}:{}", labels.join("+"), self.port)
            }
        }
    }
}

const FORMS: &str = "write ADDRESS:PORT, CIDR:PORT, namespace/NAMESPACE:PORT, \
namespace/NAMESPACE/KEY=VALUE+...:PORT or SERVICE.NAMESPACE.svc:PORT";

impl FromStr for Destination {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (target, port) = text
            .rsplit_once(':')
            .ok_or_else(|| format!("{text:?} has no port; {FORMS}"))?;
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{text:?}: the port must be a number from 1 to 65535"))?;
        let peer = if let Some(rest) = target.strip_prefix("namespace/") {
            let (name, labels) = rest.split_once('/').unwrap_or((rest, ""));
            if !is_dns_label(name) {
                return Err(format!("{text:?}: {name:?} is not a namespace name"));
            }
            Peer::Namespace {
                name: name.to_string(),
                pods: selector(text, labels)?,
            }
        } else if let Some(block) = block(target) {
            Peer::Block(block.map_err(|e| format!("{text:?}: {e}"))?)
        } else if let Some(ns) = service_namespace(target) {
            Peer::Namespace {
                name: ns.to_string(),
                pods: BTreeMap::new(),
            }
        } else {
            return Err(format!(
                "{text:?}: {target:?} is neither an address, a namespace nor a Service name \
                 (network policies cannot name other hosts); {FORMS}"
            ));
        };
        Ok(Destination { peer, port })
    }
}

/// The labels of `key=value+key=value`; none for an empty text.
fn selector(text: &str, labels: &str) -> Result<BTreeMap<String, String>, String> {
    let mut pods = BTreeMap::new();
    if labels.is_empty() {
        return Ok(pods);
    }
    for pair in labels.split('+') {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("{text:?}: {pair:?} is not KEY=VALUE"))?;
        let key_ok = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._/".contains(c));
        let value_ok = value.len() <= 63
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
        if !key_ok || !value_ok {
            return Err(format!("{text:?}: {pair:?} is not a pod label KEY=VALUE"));
        }
        pods.insert(key.to_string(), value.to_string());
    }
    Ok(pods)
}

/// `Some` when `target` is written as an address or a CIDR (IPv6 in brackets):
/// the canonical CIDR, or why it is not one.
fn block(target: &str) -> Option<Result<String, String>> {
    let bracketed = target.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
    let inner = bracketed.unwrap_or(target);
    let (addr, prefix) = match inner.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (inner, None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    if ip.is_ipv6() && bracketed.is_none() {
        return Some(Err(format!(
            "write an IPv6 address or block in brackets, e.g. [{inner}]:PORT"
        )));
    }
    let bits: u8 = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => bits,
        Some(p) => match p.parse::<u8>() {
            Ok(p) if p <= bits => p,
            _ => {
                return Some(Err(format!(
                    "{p:?} is not a prefix length from 0 to {bits}"
                )));
            }
        },
    };
    let masked = mask(ip, prefix);
    if masked != ip {
        return Some(Err(format!(
            "{inner} has bits set beyond its prefix; the block is {masked}/{prefix}"
        )));
    }
    Some(Ok(format!("{ip}/{prefix}")))
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & m).into())
        }
        IpAddr::V6(v6) => {
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & m).into())
        }
    }
}

/// The namespace of a Service's name `NAME.NAMESPACE.svc[.cluster.local]`.
fn service_namespace(host: &str) -> Option<&str> {
    let host = host.trim_end_matches('.');
    let host = host.strip_suffix(".cluster.local").unwrap_or(host);
    let mut parts = host.strip_suffix(".svc")?.split('.');
    let (service, ns) = (parts.next()?, parts.next()?);
    (parts.next().is_none() && is_dns_label(service) && is_dns_label(ns)).then_some(ns)
}

/// Parses a list of destinations; `none` (alone) stands for the empty list.
pub fn parse_list(items: &[String]) -> Result<Vec<Destination>, String> {
    if let [only] = items
        && only.trim() == "none"
    {
        return Ok(vec![]);
    }
    items
        .iter()
        .filter(|i| !i.trim().is_empty())
        .map(|i| i.parse())
        .collect()
}

/// Where the members' pods reach the Solr of `url` (`http://solr.solr.svc:8983/solr`):
/// every pod of a Service's namespace, or the address written in it, on its
/// port (the scheme's when it has none). `Err` when the URL names another
/// host, which a network policy cannot name.
pub fn from_url(url: &str) -> Result<Destination, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url:?} is not a URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.contains(']') => (h, Some(p)),
        _ => (authority, None),
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("{url:?}: {p:?} is not a port"))?,
        None if scheme == "https" => 443,
        None => 80,
    };
    let text = if let Some(ns) = service_namespace(host) {
        format!("namespace/{ns}:{port}")
    } else if matches!(block(host), Some(Ok(_))) {
        format!("{host}:{port}")
    } else {
        return Err(format!(
            "the host of {url:?} is neither a Service (NAME.NAMESPACE.svc) nor an address, \
             so a network policy cannot name it"
        ));
    };
    text.parse()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Destination {
        text.parse()
            .unwrap_or_else(|e| panic!("{text} refused: {e}"))
    }

    fn ns(name: &str, port: u16) -> Destination {
        Destination {
            peer: Peer::Namespace {
                name: name.to_string(),
                pods: BTreeMap::new(),
            },
            port,
        }
    }

    #[test]
    fn every_written_form_is_understood_and_written_back() {
        assert_eq!(
            parse("10.0.0.25:25").peer,
            Peer::Block("10.0.0.25/32".to_string())
        );
        assert_eq!(
            parse("10.0.0.0/24:5432").peer,
            Peer::Block("10.0.0.0/24".to_string())
        );
        assert_eq!(
            parse("[fd00::25]:25").peer,
            Peer::Block("fd00::25/128".to_string())
        );
        assert_eq!(parse("namespace/databases:5432"), ns("databases", 5432));
        assert_eq!(parse("postgres.databases.svc:5432"), ns("databases", 5432));
        assert_eq!(
            parse("postgres.databases.svc.cluster.local:5432"),
            ns("databases", 5432)
        );
        let labelled = parse("namespace/db/app.kubernetes.io/name=postgresql+role=primary:5432");
        assert_eq!(
            labelled.peer,
            Peer::Namespace {
                name: "db".to_string(),
                pods: BTreeMap::from([
                    (
                        "app.kubernetes.io/name".to_string(),
                        "postgresql".to_string()
                    ),
                    ("role".to_string(), "primary".to_string()),
                ]),
            }
        );
        for text in [
            "10.0.0.25/32:25",
            "[fd00::/64]:5432",
            "namespace/db:5432",
            "namespace/db/app.kubernetes.io/name=postgresql+role=primary:5432",
        ] {
            assert_eq!(parse(text).to_string(), text);
        }
    }

    #[test]
    fn mistakes_are_refused_saying_what_to_write() {
        for (text, says) in [
            ("10.0.0.25", "no port"),
            ("10.0.0.25:0", "port"),
            ("10.0.0.25:smtp", "port"),
            ("10.0.0.5/24:25", "10.0.0.0/24"),
            ("10.0.0.0/33:25", "prefix"),
            ("smtp.example.org:25", "neither"),
            ("namespace/Bad_Name:25", "namespace name"),
            ("namespace/db/app:5432", "KEY=VALUE"),
        ] {
            let e = text
                .parse::<Destination>()
                .err()
                .unwrap_or_else(|| panic!("{text} was accepted"));
            assert!(e.contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn none_is_the_empty_list() {
        assert_eq!(parse_list(&["none".to_string()]), Ok(vec![]));
        assert_eq!(
            parse_list(&["10.0.0.25:25".to_string(), "namespace/mail:25".to_string()])
                .map(|l| l.len()),
            Ok(2)
        );
    }

    #[test]
    fn solr_is_found_from_its_url() {
        assert_eq!(
            from_url("http://solr.solr.svc:8983/solr"),
            Ok(ns("solr", 8983))
        );
        assert_eq!(
            from_url("https://search.platform.svc.cluster.local/solr"),
            Ok(ns("platform", 443))
        );
        assert_eq!(
            from_url("http://10.1.2.3:8983/solr").map(|d| d.peer),
            Ok(Peer::Block("10.1.2.3/32".to_string()))
        );
        assert_eq!(
            from_url("http://[fd00::3]:8983/solr").map(|d| d.to_string()),
            Ok("[fd00::3/128]:8983".to_string())
        );
        assert!(from_url("http://solr.example.org:8983/solr").is_err());
        // The default matches the default URL.
        assert_eq!(
            Egress::default().solr,
            vec![from_url("http://solr.solr.svc:8983/solr").unwrap_or_else(|e| panic!("{e}"))]
        );
        assert_eq!(Egress::default().dns, vec![parse(DEFAULT_DNS)]);
    }
}
