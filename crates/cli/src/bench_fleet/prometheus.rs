//! Reading Prometheus text: the writes the API server served on the kinds
//! mutu writes, and the operators' own counters.

use std::collections::BTreeMap;

use kube::Client;

/// Sum of the samples of `metric` in Prometheus text whose labels pass `keep`.
pub(super) fn sum_where(
    text: &str,
    metric: &str,
    keep: impl Fn(&BTreeMap<String, String>) -> bool,
) -> f64 {
    let mut total = 0.0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(metric) else {
            continue;
        };
        let (labels, value) = if let Some(r) = rest.strip_prefix('{') {
            let Some((l, v)) = r.split_once('}') else {
                continue;
            };
            (l, v)
        } else if rest.starts_with(' ') {
            ("", rest)
        } else {
            continue;
        };
        let map: BTreeMap<String, String> = labels
            .split("\",")
            .filter_map(|kv| kv.split_once("=\""))
            .map(|(k, v)| (k.trim().to_string(), v.trim_end_matches('"').to_string()))
            .collect();
        if keep(&map) {
            total += value.trim().parse::<f64>().unwrap_or(0.0);
        }
    }
    total
}

/// Writes the API server served on the kinds mutu writes (its own status
/// subresources included, the status that Kubernetes' controllers write excluded).
pub(super) fn mutu_kind_writes(apiserver_metrics: &str) -> u64 {
    sum_where(apiserver_metrics, "apiserver_request_total", |l| {
        let verb = l.get("verb").map(String::as_str).unwrap_or_default();
        if !matches!(
            verb,
            "POST" | "PUT" | "PATCH" | "APPLY" | "DELETE" | "DELETECOLLECTION"
        ) {
            return false;
        }
        let group = l.get("group").map(String::as_str).unwrap_or_default();
        let resource = l.get("resource").map(String::as_str).unwrap_or_default();
        let sub = l.get("subresource").map(String::as_str).unwrap_or_default();
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
    }) as u64
}

pub(super) async fn apiserver_metrics(client: &Client) -> anyhow::Result<String> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    Ok(client.request_text(req).await?)
}

pub(super) fn operator_writes(metrics: &str) -> u64 {
    sum_where(metrics, "mutu_api_writes_total", |_| true) as u64
}

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
}
