//! Shared helpers of the `common` module: the Rust hostname check agrees with the CEL rule the
//! API server applies, domains, pools and tenant namespaces.

use serde_json::json;

use super::object;
use crate::PloneSite;
use crate::common::{Pool, is_dns_name, is_within_domain, tenant_namespace};

#[test]
fn rust_hostname_check_agrees_with_the_api_servers_rule() {
    let long_label = "a".repeat(63);
    let too_long_label = "a".repeat(64);
    let samples = [
        "mons.be",
        "deliberations.mons.be",
        "braine-lalleud.be",
        "x",
        "1.2.3.4",
        long_label.as_str(),
        too_long_label.as_str(),
        "Mons.be",
        "mons..be",
        "-mons.be",
        "mons-.be",
        "mons.be.",
        ".mons.be",
        "mons_be",
        "*.mons.be",
        "https://mons.be",
        "",
    ];
    for name in samples {
        let site: PloneSite = object(json!({ "product": "delib", "hostnames": [name] }));
        let by_cel = site.validate_cel().is_ok();
        assert_eq!(
            is_dns_name(name),
            by_cel,
            "{name:?}: Rust says {}, CEL says {by_cel}",
            !by_cel
        );
    }
    // Longer than 253 characters: refused by the schema's maxLength (not a CEL rule).
    assert!(!is_dns_name(&format!(
        "{long_label}.{long_label}.{long_label}.{long_label}"
    )));
}

#[test]
fn hostnames_are_within_a_domain_only_at_a_label_boundary() {
    assert!(is_within_domain("mons.be", "mons.be"));
    assert!(is_within_domain("deliberations.mons.be", "mons.be"));
    assert!(!is_within_domain("notmons.be", "mons.be"));
    assert!(!is_within_domain("mons.be", "deliberations.mons.be"));
}

#[test]
fn pools_read_and_print_as_their_label_values() {
    assert_eq!("frontend".parse::<Pool>(), Ok(Pool::Frontend));
    assert_eq!(Pool::Physical.to_string(), "physical");
    let err = "frontent"
        .parse::<Pool>()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("frontend or physical"), "{err}");
}

#[test]
fn tenant_namespaces_are_prefixed() {
    assert_eq!(tenant_namespace("mons"), "tenant-mons");
}
