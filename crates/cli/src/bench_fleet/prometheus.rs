//! Reading Prometheus text: the writes the API server served on the kinds
//! mutu writes, and the operators' own counters.

use std::collections::BTreeMap;

use kube::Client;

/// The labels of one sample, by name.
type Labels = BTreeMap<String, String>;

/// Sum of the samples of `metric` in Prometheus text whose labels pass `keep`.
/// A value that is not a number counts as 0.
pub(super) fn sum_where(text: &str, metric: &str, keep: impl Fn(&Labels) -> bool) -> f64 {
    text.lines()
        .filter_map(|line| sample(line, metric))
        .filter(|(labels, _)| keep(&parse_labels(labels)))
        .map(|(_, value)| value.trim().parse::<f64>().unwrap_or(0.0))
        .sum()
}

/// The labels (between the braces, unparsed) and the value of a line that is
/// a sample of `metric`; none for any other line, a sample of a metric whose
/// name merely starts with `metric` included.
fn sample<'a>(line: &'a str, metric: &str) -> Option<(&'a str, &'a str)> {
    let rest = line.strip_prefix(metric)?;
    if let Some(r) = rest.strip_prefix('{') {
        r.split_once('}')
    } else if rest.starts_with(' ') {
        Some(("", rest))
    } else {
        None
    }
}

/// `a="x",b="y"` as a map.
fn parse_labels(labels: &str) -> Labels {
    labels
        .split("\",")
        .filter_map(|kv| kv.split_once("=\""))
        .map(|(k, v)| (k.trim().to_string(), v.trim_end_matches('"').to_string()))
        .collect()
}

/// Writes the API server served on the kinds mutu writes (its own status
/// subresources included, the status that Kubernetes' controllers write excluded).
pub(super) fn mutu_kind_writes(apiserver_metrics: &str) -> u64 {
    sum_where(apiserver_metrics, "apiserver_request_total", |l| {
        let label = |name: &str| l.get(name).map(String::as_str).unwrap_or_default();
        is_write(label("verb"))
            && is_mutu_kind(label("group"), label("resource"), label("subresource"))
    }) as u64
}

/// A request verb that changes something.
fn is_write(verb: &str) -> bool {
    matches!(
        verb,
        "POST" | "PUT" | "PATCH" | "APPLY" | "DELETE" | "DELETECOLLECTION"
    )
}

/// A resource (or subresource, `sub`) that mutu writes: every one of its own
/// group, and the main resource of the Kubernetes kinds its operators create.
fn is_mutu_kind(group: &str, resource: &str, sub: &str) -> bool {
    match group {
        "hosting.imio.be" => true,
        "" => {
            sub.is_empty()
                && matches!(
                    resource,
                    "configmaps"
                        | "services"
                        | "persistentvolumeclaims"
                        | "secrets"
                        | "namespaces"
                        | "resourcequotas"
                        | "limitranges"
                )
        }
        "apps" => sub.is_empty() && matches!(resource, "statefulsets" | "deployments"),
        "networking.k8s.io" => {
            sub.is_empty() && matches!(resource, "ingresses" | "networkpolicies")
        }
        "policy" => sub.is_empty() && resource == "poddisruptionbudgets",
        "rbac.authorization.k8s.io" => {
            sub.is_empty()
                && matches!(
                    resource,
                    "rolebindings" | "clusterroles" | "clusterrolebindings"
                )
        }
        "batch" => sub.is_empty() && resource == "jobs",
        _ => false,
    }
}

/// The API server's own metrics, as Prometheus text.
pub(super) async fn apiserver_metrics(client: &Client) -> anyhow::Result<String> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    Ok(client.request_text(req).await?)
}

/// The writes the operators count themselves.
pub(super) fn operator_writes(metrics: &str) -> u64 {
    sum_where(metrics, "mutu_api_writes_total", |_| true) as u64
}

/// The reconciles the operators count themselves.
pub(super) fn reconciles(metrics: &str) -> f64 {
    sum_where(metrics, "mutu_reconciles_total", |_| true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_count_only_the_kinds_mutu_writes() {
        let text = r#"# HELP apiserver_request_total x
apiserver_request_total{code="201",component="apiserver",dry_run="",group="apps",resource="deployments",scope="resource",subresource="",verb="APPLY",version="v1"} 5
apiserver_request_total{code="200",component="apiserver",dry_run="",group="apps",resource="deployments",scope="resource",subresource="status",verb="PUT",version="v1"} 7
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="status",verb="PATCH",version="v1"} 100
apiserver_request_total{code="200",component="apiserver",dry_run="",group="hosting.imio.be",resource="plonesites",scope="resource",subresource="status",verb="APPLY",version="v1alpha1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="configmaps",scope="resource",subresource="",verb="GET",version="v1"} 9
"#;
        assert_eq!(mutu_kind_writes(text), 8);
    }

    #[test]
    fn samples_with_and_without_labels_are_summed() {
        let text = "# TYPE mutu_reconciles_total counter
mutu_reconciles_total{controller=\"site\"} 3
mutu_reconciles_total{controller=\"tenant\"} 4.5
mutu_reconciles_total 2
mutu_reconciles_total_other 100
mutu_reconciles_total{controller=\"bad\"} not-a-number
";
        assert_eq!(reconciles(text), 9.5);
        let site_only = sum_where(text, "mutu_reconciles_total", |l| {
            l.get("controller").map(String::as_str) == Some("site")
        });
        assert_eq!(site_only, 3.0);
        assert_eq!(operator_writes(text), 0);
    }

    #[test]
    fn a_sample_line_splits_into_labels_and_value() {
        assert_eq!(sample("m{a=\"1\"} 5", "m"), Some(("a=\"1\"", " 5")));
        assert_eq!(sample("m 5", "m"), Some(("", " 5")));
        assert_eq!(sample("mx 5", "m"), None);
        assert_eq!(sample("m{a=\"1\" 5", "m"), None);
        assert_eq!(sample("# HELP m x", "m"), None);
    }

    #[test]
    fn labels_parse_into_a_map() {
        let l = parse_labels("code=\"200\",group=\"\",verb=\"APPLY\"");
        assert_eq!(l.get("code").map(String::as_str), Some("200"));
        assert_eq!(l.get("group").map(String::as_str), Some(""));
        assert_eq!(l.get("verb").map(String::as_str), Some("APPLY"));
        assert!(parse_labels("").is_empty());
    }

    #[test]
    fn status_writes_count_for_mutu_kinds_only() {
        assert!(is_mutu_kind("hosting.imio.be", "plonesites", "status"));
        assert!(is_mutu_kind("", "namespaces", ""));
        assert!(!is_mutu_kind("", "namespaces", "status"));
        assert!(!is_mutu_kind("apps", "deployments", "status"));
        assert!(!is_mutu_kind("", "pods", ""));
        assert!(is_write("DELETECOLLECTION") && !is_write("GET") && !is_write("WATCH"));
    }
}
