//! Shared pieces of the hosting API: names and labels, node pools, deletion policy, condition
//! types, the night window, and the DNS-name rules used by several kinds.
//!
//! Conventions of the whole crate: every CEL message starts with the path of the field it is
//! about (`spec.hostnames: ...`) and says what is allowed; lists and strings that CEL reads are
//! bounded (`maxItems`, `maxLength`) to keep the API server's cost estimate low; enums carry
//! `#[schemars(description = "")]` because kube's schema rewrite of `Option<enum>` would
//! otherwise replace the field's doc (what `kubectl explain` shows) with the enum's.

use std::fmt;
use std::str::FromStr;

use kube::KubeSchema;
use schemars::{JsonSchema, Schema, json_schema};
use serde::{Deserialize, Serialize};

/// API group of every mutu kind.
pub const GROUP: &str = "hosting.imio.be";
/// API version of every mutu kind.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of every mutu object (`GROUP/VERSION`).
pub const API_VERSION: &str = "hosting.imio.be/v1alpha1";

/// Node label naming the pool a node belongs to (`frontend` or `physical`).
pub const POOL_LABEL: &str = "hosting.imio.be/pool";
/// Label set on every object mutu creates and on every pod of its workloads.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY`] on everything mutu creates.
pub const MANAGED_BY_VALUE: &str = "mutu";
/// Label holding the name of the resource that owns an object mutu created.
pub const INSTANCE: &str = "app.kubernetes.io/instance";
/// Label naming the part an object plays (e.g. `zeo`, `instance`, `backup`).
pub const COMPONENT: &str = "app.kubernetes.io/component";
/// Label on tenant namespaces and their objects naming the MemberTenant.
pub const TENANT_LABEL: &str = "hosting.imio.be/tenant";
/// Label on PloneSites and their children naming the Product the site is an instance of.
pub const PRODUCT_LABEL: &str = "hosting.imio.be/product";
/// Annotation on a PloneSite that stops its servers while someone works on its data (e.g.
/// `restore/<name>` during a Restore); the value says who asked.
pub const MAINTENANCE_ANNOTATION: &str = "hosting.imio.be/maintenance";
/// Annotation set on a PloneSite by mutu while its public sees a maintenance page instead of
/// the site (a MigrationPlan or a ReleaseRollout at work); the value says who set it. The
/// servers keep running unless [`MAINTENANCE_ANNOTATION`] is set too.
pub const OFFLINE_ANNOTATION: &str = "hosting.imio.be/offline";
/// Annotation on a SolrIndex asking its operator to bring the index in line with the site's
/// content now (collective.solr's sync through the alias, in a Job): set it to a new value
/// (e.g. the UID of the Restore that just put older data back) and wait until the index's
/// `status.caughtUp` says that value.
pub const CATCH_UP_ANNOTATION: &str = "hosting.imio.be/catch-up";
/// Annotation set on a PloneSite by a MigrationPlan: the node pool the site runs on. Only a
/// plan writes it, so a GitOps sync (which owns the spec) never undoes a migration.
pub const POOL_ANNOTATION: &str = "hosting.imio.be/pool";
/// Annotation set on a PloneSite by a MigrationPlan: the volume claim holding the site's ZEO
/// data on its pool. Without it the data is in `data-<site>-zeo-0`.
pub const DATA_VOLUME_ANNOTATION: &str = "hosting.imio.be/data-volume";
/// Annotation on a PloneSite naming who works on its data now, one at a time: a Restore
/// (`restore/<name>`), a MigrationPlan (`migration/<plan>`) or a ReleaseRollout
/// (`rollout/<plan>`). Taken and let go by mutu only over the version of the site it read; any
/// other value (e.g. `ops/jdoe`, set by the platform team) holds the site until removed.
pub const HELD_BY_ANNOTATION: &str = "hosting.imio.be/held-by";
/// Annotation set by a MigrationPlan on a site's data volume claim once the site's data lives
/// on another claim (the one it names): durable, so that a site re-created from YAML (without
/// [`DATA_VOLUME_ANNOTATION`]) finds its data by following these from `data-<site>-zeo-0`, and
/// so that no retention deletes a claim that nothing supersedes.
pub const SUPERSEDED_BY_ANNOTATION: &str = "hosting.imio.be/superseded-by";
/// Annotation set on a PloneSite by a ReleaseRollout: the release the site runs, ahead of
/// `spec.release` and the Product's release.
pub const RELEASE_ANNOTATION: &str = "hosting.imio.be/release";

/// On a Backup or Restore a plan made: the plan (`migration/NAME` or
/// `rollout/NAME`). A plan's Backups are not owned by it, so that deleting
/// the plan deletes no backup data.
pub const MADE_BY_ANNOTATION: &str = "hosting.imio.be/made-by";

/// Label on a site's children, their pods and its Jobs naming the PloneSite they belong to
/// (in the same namespace).
pub const SITE_LABEL: &str = "hosting.imio.be/site";

/// Label of a PloneSite created for a ProvisioningRequest: the request's name (in the
/// same namespace).
pub const REQUEST_LABEL: &str = "hosting.imio.be/request";

/// Pool of the new virtualised frontend nodes, where new sites go by default.
pub const POOL_FRONTEND: &str = "frontend";
/// Pool of the legacy physical servers being retired.
pub const POOL_PHYSICAL: &str = "physical";

/// The one stable 64-bit hash of mutu (FNV-1a): the same in every build, process and
/// release, so what is derived from it (a site's backup minute, the fingerprint of what
/// was applied, a migrated volume's name) never moves when the operator is upgraded.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Prefix of the namespace mutu creates for each MemberTenant (`tenant-<name>`).
pub const TENANT_NAMESPACE_PREFIX: &str = "tenant-";

/// The namespace mutu creates for the MemberTenant named `tenant`.
pub fn tenant_namespace(tenant: &str) -> String {
    format!("{TENANT_NAMESPACE_PREFIX}{tenant}")
}

/// Condition type every kind reports: the object is in the state its spec asks for.
pub const CONDITION_READY: &str = "Ready";
/// Condition type of finished runs (Backup, Restore, MigrationPlan, ReleaseRollout).
pub const CONDITION_COMPLETE: &str = "Complete";
/// Condition type of runs that gave up (Backup, Restore, waves over their failure threshold).
pub const CONDITION_FAILED: &str = "Failed";
/// Condition type of work under way (a certificate being issued, a wave moving).
pub const CONDITION_PROGRESSING: &str = "Progressing";

/// A node pool: the value of the [`POOL_LABEL`] node label.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
#[schemars(description = "")] // keep the field's doc in the CRD: see the `common` module doc
pub enum Pool {
    /// The new virtualised frontend nodes.
    Frontend,
    /// The legacy physical servers being retired.
    Physical,
}

impl Pool {
    /// The label value of this pool.
    pub fn as_str(self) -> &'static str {
        match self {
            Pool::Frontend => POOL_FRONTEND,
            Pool::Physical => POOL_PHYSICAL,
        }
    }
}

impl fmt::Display for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A pool name that is not one of mutu's pools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPool(pub String);

impl fmt::Display for UnknownPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown node pool {:?}: use {POOL_FRONTEND} or {POOL_PHYSICAL}",
            self.0
        )
    }
}

impl std::error::Error for UnknownPool {}

impl FromStr for Pool {
    type Err = UnknownPool;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            POOL_FRONTEND => Ok(Pool::Frontend),
            POOL_PHYSICAL => Ok(Pool::Physical),
            other => Err(UnknownPool(other.to_string())),
        }
    }
}

/// What happens to the data when the object is deleted.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[schemars(description = "")] // keep the field's doc in the CRD: see the `common` module doc
pub enum DeletionPolicy {
    /// Keep volumes, databases, indexes and backups; only the workloads go.
    #[default]
    Retain,
    /// Delete the data with the object.
    Delete,
}

/// A daily time window (typically the night), in a named time zone.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.start != self.end").message(
    "spec.window: start and end must differ; a window that crosses midnight is written start 22:00, end 05:00"
))]
pub struct Window {
    /// Local time the window opens, 24-hour HH:MM (e.g. `22:00`).
    #[schemars(length(max = 5))]
    #[x_kube(validation = Rule::new(HH_MM_RULE).message(
        "spec.window.start: must be a 24-hour time HH:MM between 00:00 and 23:59, e.g. 22:00"
    ))]
    pub start: String,
    /// Local time the window closes, 24-hour HH:MM (e.g. `05:00`). When it is earlier than
    /// `start`, the window ends the next day.
    #[schemars(length(max = 5))]
    #[x_kube(validation = Rule::new(HH_MM_RULE).message(
        "spec.window.end: must be a 24-hour time HH:MM between 00:00 and 23:59, e.g. 05:00"
    ))]
    pub end: String,
    /// IANA time zone that `start` and `end` are read in, e.g. `Europe/Brussels` (the default).
    /// Summer and winter time follow the zone.
    #[serde(default = "default_time_zone")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new(TIME_ZONE_RULE).message(
        "spec.window.timeZone: must be an IANA time zone name such as Europe/Brussels or UTC"
    ))]
    pub time_zone: String,
}

/// The time zone of the cooperative and its members.
pub const DEFAULT_TIME_ZONE: &str = "Europe/Brussels";

fn default_time_zone() -> String {
    DEFAULT_TIME_ZONE.to_string()
}

/// CEL rule: a 24-hour `HH:MM` time.
pub(crate) const HH_MM_RULE: &str = "self.matches('^([01][0-9]|2[0-3]):[0-5][0-9]$')";
/// CEL rule: an IANA time zone name (shape only: `Area/Location` or `UTC`).
pub(crate) const TIME_ZONE_RULE: &str =
    "self.matches('^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$')";
/// CEL rule: a container image tag (the release of a product).
pub(crate) const RELEASE_RULE: &str = "self.matches('^[A-Za-z0-9_][A-Za-z0-9_.-]*$')";
/// RE2 expression of a duration mutu's kinds accept: Go-style, such as `2160h` or `1h30m`,
/// each number of at most 9 digits (with `maxLength` 32, far below what a duration holds).
pub(crate) const DURATION_PATTERN: &str = "^([0-9]{1,9}(h|m|s|ms))+$";
/// CEL rule: a Go-style duration such as `2160h` or `1h30m` ([`DURATION_PATTERN`]).
pub(crate) const DURATION_RULE: &str = "self.matches('^([0-9]{1,9}(h|m|s|ms))+$')";

/// Longest duration read from a resource: 100 years. Longer ones (which the API server
/// refuses, but an object stored before that rule may hold) fail to read with a message
/// instead of overflowing.
const MAX_DURATION_SECONDS: f64 = 100.0 * 366.0 * 86400.0;

/// Reads a Go-style duration as [`kube::core::Duration`] does, refusing one that is not a
/// finite number of seconds up to [`MAX_DURATION_SECONDS`] (kube's parser panics on a duration
/// beyond what `std::time::Duration` holds).
pub fn parse_duration(text: &str) -> Result<kube::core::Duration, String> {
    let refuse =
        || format!("{text:?} is not a duration of at most 100 years in hours, minutes or seconds");
    let mut rest = text.trim_start_matches(['+', '-']);
    let mut seconds = 0.0_f64;
    while !rest.is_empty() && rest != "0" {
        let unit_start = rest.find(char::is_alphabetic).ok_or_else(refuse)?;
        let (number, after) = rest.split_at(unit_start);
        let unit_end = after
            .find(|c: char| !c.is_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "\u{00b5}s" | "\u{03bc}s" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(refuse()),
        };
        let value: f64 = number.parse().map_err(|_| refuse())?;
        seconds += value * scale;
        if !seconds.is_finite() || seconds > MAX_DURATION_SECONDS {
            return Err(refuse());
        }
        rest = after;
    }
    text.parse().map_err(|_| refuse())
}

/// `#[serde(deserialize_with)]` of a duration field: [`parse_duration`].
pub(crate) fn read_duration<'de, D>(deserializer: D) -> Result<kube::core::Duration, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let text = String::deserialize(deserializer)?;
    parse_duration(&text).map_err(|e| serde::de::Error::custom(format!("{e}, such as 720h")))
}

/// `#[serde(deserialize_with)]` of an optional duration field: [`parse_duration`].
pub(crate) fn read_optional_duration<'de, D>(
    deserializer: D,
) -> Result<Option<kube::core::Duration>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Option::<String>::deserialize(deserializer)?
        .map(|text| {
            parse_duration(&text)
                .map_err(|e| serde::de::Error::custom(format!("{e}, such as 720h")))
        })
        .transpose()
}

/// RE2 expression of a lower-case RFC 1123 DNS name: dot-separated labels of `a-z`, `0-9` and
/// `-`, each 1 to 63 characters, not starting or ending with `-`.
pub const DNS_NAME_PATTERN: &str =
    "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?([.][a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$";
/// [`DNS_NAME_PATTERN`] with an optional leading `*.` wildcard label.
pub const WILDCARD_DNS_NAME_PATTERN: &str =
    "^([*][.])?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?([.][a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$";

/// Longest DNS name (RFC 1123).
pub const MAX_DNS_NAME_LENGTH: usize = 253;

/// Whether `name` is a lower-case RFC 1123 DNS name, the rule the API server applies to
/// hostnames, domains and certificate names (without the wildcard).
pub fn is_dns_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_DNS_NAME_LENGTH && name.split('.').all(is_dns_label)
}

/// Whether `name` is a DNS label: 1 to 63 of `a-z`, `0-9`, `-`, not starting or ending with `-`.
pub fn is_dns_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

/// Whether `hostname` is `domain` itself or a name under it (`deliberations.mons.be` is under
/// `mons.be`; `notmons.be` is not).
pub fn is_within_domain(hostname: &str, domain: &str) -> bool {
    hostname == domain
        || hostname
            .strip_suffix(domain)
            .is_some_and(|prefix| prefix.ends_with('.'))
}

/// Schema of a list of DNS names whose every item is checked by CEL, with messages naming
/// `field`. Bounded (`maxItems`, `maxLength`) so the API server's CEL cost estimate stays low.
/// With `required`, an empty list is refused too.
pub(crate) fn dns_name_list(
    field: &str,
    example: &str,
    wildcard: bool,
    required: bool,
    max_items: u32,
) -> Schema {
    let (pattern, wildcard_note) = if wildcard {
        (
            WILDCARD_DNS_NAME_PATTERN,
            "; the first label may be * for a wildcard",
        )
    } else {
        (DNS_NAME_PATTERN, "")
    };
    let mut schema = json_schema!({
        "type": "array",
        "maxItems": max_items,
        "x-kubernetes-list-type": "set",
        "items": {
            "type": "string",
            "maxLength": MAX_DNS_NAME_LENGTH,
            "x-kubernetes-validations": [{
                "rule": format!("self.matches('{pattern}')"),
                "message": format!(
                    "{field}: each name must be a lower-case DNS name (RFC 1123): letters a-z, digits and '-' in dot-separated labels{wildcard_note}, e.g. {example}"
                ),
            }],
        },
    });
    if required {
        schema.insert(
            "x-kubernetes-validations".into(),
            serde_json::json!([{
                "rule": "size(self) > 0",
                "message": format!("{field}: at least one name is required, e.g. {example}"),
            }]),
        );
    }
    schema
}

/// A reference to a Secret by name.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
pub struct SecretRef {
    /// Name of the Secret.
    #[schemars(length(max = 253))]
    pub name: String,
}

#[cfg(test)]
mod duration_tests {
    use super::*;

    #[test]
    fn a_duration_reads_as_kube_reads_it_up_to_a_hundred_years() {
        for text in ["2160h", "1h30m", "90s", "500ms", "0", "1.5h", "876000h"] {
            let kube: kube::core::Duration = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(parse_duration(text), Ok(kube), "{text}");
        }
        for text in ["878500h", "310000000000000000m", "1e3h", "h", "5d", "1"] {
            let refused = parse_duration(text);
            assert!(
                refused
                    .as_ref()
                    .is_err_and(|e| e.contains("is not a duration")),
                "{text}: {refused:?}"
            );
        }
        let huge = format!("1{}h", "0".repeat(400));
        assert!(
            parse_duration(&huge).is_err(),
            "no panic on an infinite number"
        );
    }

    #[test]
    fn the_rule_of_the_kinds_is_the_pattern_the_issuer_rules_use() {
        assert_eq!(
            DURATION_RULE,
            format!("self.matches('{DURATION_PATTERN}')"),
            "one pattern"
        );
    }
}
