//! The bulk phase, the floor the API server allows: the objects the operators
//! would create, rendered by the same build functions, server-side applied in
//! bulk with no operator, until every site's servers are ready.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::Client;
use kube::api::Api;
use mutu_api::{MemberTenant, PloneSite};

use super::apply::apply_dynamic;
use super::curve::{sample_during, watched};
use super::objects::{PRODUCT, fleet_plan, product, site, tenant};
use super::{FleetArgs, Results};

/// The floor's phase.
pub(super) async fn bulk(args: &FleetArgs, client: Client, r: &mut Results) -> anyhow::Result<()> {
    let n = args.sites;
    // 5. The floor: the same objects, rendered by the same build functions,
    // applied in bulk with nobody reconciling, until their servers are ready.
    eprintln!("bulk apply of the same objects for {n} sites, no operator");
    let raw_plan = fleet_plan("raw", n);
    let product_spec: mutu_api::ProductSpec = serde_json::from_value(product()["spec"].clone())?;
    let catalog = BTreeMap::from([(PRODUCT.to_string(), product_spec.clone())]);
    let mut objects: Vec<serde_json::Value> = Vec::new();
    for (t, k) in &raw_plan {
        let mut tenant_obj: MemberTenant = serde_json::from_value(tenant(t, *k))?;
        tenant_obj.metadata.uid = Some(format!("raw-uid-{t}"));
        let d = mutu_tenant::build::build(&tenant_obj, &catalog, &Default::default());
        objects.push(serde_json::to_value(&d.namespace)?);
        objects.push(serde_json::to_value(&d.quota)?);
        objects.push(serde_json::to_value(&d.limits)?);
        for p in &d.policies {
            objects.push(serde_json::to_value(p)?);
        }
        objects.push(serde_json::to_value(&d.admins)?);
        objects.push(serde_json::to_value(&d.reader_role)?);
        objects.push(serde_json::to_value(&d.reader_binding)?);
        for i in 1..=*k {
            let mut s: PloneSite = serde_json::from_value(site(t, i))?;
            s.metadata.uid = Some(format!("raw-uid-{t}-{i}"));
            let plan = mutu_site::build::Plan {
                product: PRODUCT.into(),
                release: "1.0".into(),
                upgrade_to: None,
                pool: mutu_api::POOL_FRONTEND.into(),
                suspended: false,
                issuer: "dev-ca".into(),
                ingress_class: "nginx".into(),
                solr_env: BTreeMap::new(),
                create_site: false,
                data_volume: None,
                offline: false,
                maintenance_backend: ("mutu-maintenance.mutu-system.svc".into(), 8080),
            };
            let d = mutu_site::build::build(&s, &product_spec, &plan)?;
            let mut push = |v: serde_json::Value| objects.push(v);
            for o in d.config.iter() {
                push(serde_json::to_value(o)?);
            }
            for o in d.services.iter() {
                push(serde_json::to_value(o)?);
            }
            for o in d.zeo_data.iter().chain(d.data.iter()) {
                push(serde_json::to_value(o)?);
            }
            for o in d.zeo.iter() {
                push(serde_json::to_value(o)?);
            }
            for o in d.deployment.iter() {
                push(serde_json::to_value(o)?);
            }
            for o in d.pdb.iter() {
                push(serde_json::to_value(o)?);
            }
            for o in d.ingress.iter() {
                push(serde_json::to_value(o)?);
            }
            for o in d.certificate.iter() {
                push(serde_json::to_value(o)?);
            }
        }
    }
    // Nothing owns them (the owners do not exist): the garbage collector must not take them.
    for o in objects.iter_mut() {
        if let Some(m) = o.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            m.remove("ownerReferences");
        }
    }
    let discovery = kube::Discovery::new(client.clone()).run().await?;
    let (deployments, deployment_watch) = watched(Api::<Deployment>::all(client.clone())).await?;
    let (statefulsets, statefulset_watch) =
        watched(Api::<StatefulSet>::all(client.clone())).await?;
    // Namespaces first, then the rest, as an operator would. The count runs
    // beside the apply from its start: at 10,000 sites the apply itself takes
    // longer than its servers take to become ready.
    let (namespaces, rest): (Vec<_>, Vec<_>) =
        objects.into_iter().partition(|o| o["kind"] == "Namespace");
    let applied = async {
        for batch in [namespaces, rest] {
            futures::stream::iter(batch.into_iter().map(|o| {
                let client = client.clone();
                let discovery = &discovery;
                async move { apply_dynamic(&client, discovery, &o).await }
            }))
            .buffer_unordered(usize::from(args.concurrency))
            .try_collect::<Vec<_>>()
            .await?;
        }
        anyhow::Ok(())
    };
    let raw_ns = mutu_api::tenant_namespace("raw");
    let sampled = sample_during(
        applied,
        || raw_sites_ready(&deployments.state(), &statefulsets.state(), &raw_ns),
        n,
        Duration::from_secs(1),
        Duration::from_secs(args.timeout),
        "bulk-applied sites ready",
    )
    .await;
    deployment_watch.abort();
    statefulset_watch.abort();
    (_, r.raw_curve) = sampled?;
    r.raw_apply_s = r.raw_curve.last().map(|c| c.0).unwrap_or_default();
    Ok(())
}

/// Sites of the bulk apply whose two servers (the Plone deployment and its
/// ZEO statefulset `<site>-zeo`) are ready, in the namespaces starting with
/// `raw_ns`.
pub(super) fn raw_sites_ready(
    deployments: &[Arc<Deployment>],
    statefulsets: &[Arc<StatefulSet>],
    raw_ns: &str,
) -> u32 {
    let mut ready: BTreeMap<(&str, &str), u8> = BTreeMap::new();
    for d in deployments {
        let ns = d.metadata.namespace.as_deref().unwrap_or_default();
        if ns.starts_with(raw_ns)
            && d.status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0)
                >= d.spec.replicas.unwrap_or(1)
        {
            let name = d.metadata.name.as_deref().unwrap_or_default();
            *ready.entry((ns, name)).or_default() += 1;
        }
    }
    for s in statefulsets {
        let ns = s.metadata.namespace.as_deref().unwrap_or_default();
        if ns.starts_with(raw_ns)
            && s.status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0)
                >= 1
        {
            let name = s.metadata.name.as_deref().unwrap_or_default();
            *ready
                .entry((ns, name.trim_end_matches("-zeo")))
                .or_default() += 1;
        }
    }
    ready.values().filter(|v| **v == 2).count() as u32
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_raw_site_is_ready_when_both_its_servers_are() {
        let deployment = |ns: &str, name: &str, ready: i32| {
            Arc::new(
                serde_json::from_value::<Deployment>(json!({
                    "metadata": {"namespace": ns, "name": name},
                    "spec": {"replicas": 1, "selector": {}, "template": {}},
                    "status": {"readyReplicas": ready},
                }))
                .unwrap_or_else(|e| panic!("{e}")),
            )
        };
        let zeo = |ns: &str, name: &str, ready: i32| {
            Arc::new(
                serde_json::from_value::<StatefulSet>(json!({
                    "metadata": {"namespace": ns, "name": format!("{name}-zeo")},
                    "spec": {"selector": {}, "template": {}},
                    "status": {"replicas": 1, "readyReplicas": ready},
                }))
                .unwrap_or_else(|e| panic!("{e}")),
            )
        };
        let raw = mutu_api::tenant_namespace("raw");
        let ns1 = format!("{raw}-0001");
        let deployments = [
            deployment(&ns1, "site-01", 1),
            deployment(&ns1, "site-02", 1),
            deployment(&ns1, "site-03", 0),
            deployment("elsewhere", "site-01", 1),
        ];
        let statefulsets = [
            zeo(&ns1, "site-01", 1),
            zeo(&ns1, "site-02", 0),
            zeo(&ns1, "site-03", 1),
            zeo("elsewhere", "site-01", 1),
        ];
        assert_eq!(raw_sites_ready(&deployments, &statefulsets, &raw), 1);
        assert_eq!(raw_sites_ready(&deployments, &[], &raw), 0);
    }
}
