//! The bulk phase, the floor the API server allows: the objects the operators
//! would create, rendered by the same build functions, server-side applied in
//! bulk with no operator, until every site's servers are ready.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::api::Api;
use kube::{Client, Discovery};
use mutu_api::{MemberTenant, PloneSite, ProductSpec};
use serde_json::Value;

use super::apply::{all_of, apply_dynamic};
use super::curve::{end_time, sample_during, watched};
use super::objects::{PRODUCT, fleet_plan, product, site, tenant};
use super::{FleetArgs, Results};

/// The floor's phase.
pub(super) async fn bulk(args: &FleetArgs, client: Client, r: &mut Results) -> anyhow::Result<()> {
    let n = args.sites;
    // 5. The floor: the same objects, rendered by the same build functions,
    // applied in bulk with nobody reconciling, until their servers are ready.
    eprintln!("bulk apply of the same objects for {n} sites, no operator");
    let objects = render_fleet(n)?;
    let discovery = Discovery::new(client.clone()).run().await?;
    let (deployments, deployment_watch) = watched(Api::<Deployment>::all(client.clone())).await?;
    let (statefulsets, statefulset_watch) =
        watched(Api::<StatefulSet>::all(client.clone())).await?;
    // Namespaces first, then the rest, as an operator would. The count runs
    // beside the apply from its start: at 10,000 sites the apply itself takes
    // longer than its servers take to become ready.
    let applied = apply_in_order(
        &client,
        &discovery,
        namespaces_first(objects),
        args.concurrency,
    );
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
    r.raw_apply_s = end_time(&r.raw_curve);
    Ok(())
}

/// Applies each batch in turn, the objects of one batch `concurrency` at a time.
async fn apply_in_order(
    client: &Client,
    discovery: &Discovery,
    batches: [Vec<Value>; 2],
    concurrency: u16,
) -> anyhow::Result<()> {
    for batch in batches {
        let applies = batch.into_iter().map(|o| {
            let client = client.clone();
            async move { apply_dynamic(&client, discovery, &o).await }
        });
        all_of(applies, concurrency).await?;
    }
    Ok(())
}

/// The namespaces, then every other object, each in their order.
fn namespaces_first(objects: Vec<Value>) -> [Vec<Value>; 2] {
    let (namespaces, rest): (Vec<_>, Vec<_>) =
        objects.into_iter().partition(|o| o["kind"] == "Namespace");
    [namespaces, rest]
}

/// Every object the operators would create for a fleet of `n` sites, of the
/// tenants named `raw-*`: each tenant's, then each of its sites'. Nothing
/// owns them.
fn render_fleet(n: u32) -> anyhow::Result<Vec<Value>> {
    let product_spec: ProductSpec = serde_json::from_value(product()["spec"].clone())?;
    let catalog = BTreeMap::from([(PRODUCT.to_string(), product_spec.clone())]);
    let mut objects = Vec::new();
    for (t, k) in &fleet_plan("raw", n) {
        objects.extend(render_tenant(t, *k, &catalog)?);
        for i in 1..=*k {
            objects.extend(render_site(t, i, &product_spec)?);
        }
    }
    // Nothing owns them (the owners do not exist): the garbage collector must not take them.
    for o in objects.iter_mut() {
        without_owners(o);
    }
    Ok(objects)
}

/// What the tenant operator builds for the tenant `t` of `k` sites.
fn render_tenant(
    t: &str,
    k: u32,
    catalog: &BTreeMap<String, ProductSpec>,
) -> anyhow::Result<Vec<Value>> {
    let mut tenant_obj: MemberTenant = serde_json::from_value(tenant(t, k))?;
    tenant_obj.metadata.uid = Some(format!("raw-uid-{t}"));
    let d = mutu_tenant::build::build(&tenant_obj, catalog, &Default::default());
    let mut objects = vec![
        serde_json::to_value(&d.namespace)?,
        serde_json::to_value(&d.quota)?,
        serde_json::to_value(&d.limits)?,
    ];
    for p in &d.policies {
        objects.push(serde_json::to_value(p)?);
    }
    objects.push(serde_json::to_value(&d.admins)?);
    objects.push(serde_json::to_value(&d.reader_role)?);
    objects.push(serde_json::to_value(&d.reader_binding)?);
    Ok(objects)
}

/// What the site operator builds for the `i`-th site of the tenant `t`.
fn render_site(t: &str, i: u32, product_spec: &ProductSpec) -> anyhow::Result<Vec<Value>> {
    let mut s: PloneSite = serde_json::from_value(site(t, i))?;
    s.metadata.uid = Some(format!("raw-uid-{t}-{i}"));
    let d = mutu_site::build::build(&s, product_spec, &site_plan())?;
    let mut objects = Vec::new();
    for o in d.config.iter() {
        objects.push(serde_json::to_value(o)?);
    }
    for o in d.services.iter() {
        objects.push(serde_json::to_value(o)?);
    }
    for o in d.zeo_data.iter().chain(d.data.iter()) {
        objects.push(serde_json::to_value(o)?);
    }
    for o in d.zeo.iter() {
        objects.push(serde_json::to_value(o)?);
    }
    for o in d.deployment.iter() {
        objects.push(serde_json::to_value(o)?);
    }
    for o in d.pdb.iter() {
        objects.push(serde_json::to_value(o)?);
    }
    for o in d.ingress.iter() {
        objects.push(serde_json::to_value(o)?);
    }
    for o in d.certificate.iter() {
        objects.push(serde_json::to_value(o)?);
    }
    Ok(objects)
}

/// How the site operator would run each site of the bulk apply.
fn site_plan() -> mutu_site::build::Plan {
    mutu_site::build::Plan {
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
    }
}

/// Removes the owner references of an object.
fn without_owners(o: &mut Value) {
    if let Some(m) = o.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        m.remove("ownerReferences");
    }
}

/// Sites of the bulk apply whose two servers (the Plone deployment and its
/// ZEO statefulset `<site>-zeo`) are ready, in the namespaces starting with
/// `raw_ns`.
fn raw_sites_ready(
    deployments: &[Arc<Deployment>],
    statefulsets: &[Arc<StatefulSet>],
    raw_ns: &str,
) -> u32 {
    let mut ready: BTreeMap<(&str, &str), u8> = BTreeMap::new();
    for d in deployments {
        let ns = d.metadata.namespace.as_deref().unwrap_or_default();
        if ns.starts_with(raw_ns) && deployment_ready(d) {
            let name = d.metadata.name.as_deref().unwrap_or_default();
            *ready.entry((ns, name)).or_default() += 1;
        }
    }
    for s in statefulsets {
        let ns = s.metadata.namespace.as_deref().unwrap_or_default();
        if ns.starts_with(raw_ns) && statefulset_ready(s) {
            let name = s.metadata.name.as_deref().unwrap_or_default();
            *ready
                .entry((ns, name.trim_end_matches("-zeo")))
                .or_default() += 1;
        }
    }
    ready.values().filter(|v| **v == 2).count() as u32
}

/// As many replicas ready as wanted (1 if unsaid).
fn deployment_ready(d: &Deployment) -> bool {
    d.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
        >= d.spec.replicas.unwrap_or(1)
}

/// One replica ready at least.
fn statefulset_ready(s: &StatefulSet) -> bool {
    s.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
        >= 1
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

    #[test]
    fn a_rendered_fleet_has_each_site_s_servers_and_no_owner() {
        let objects = render_fleet(12).unwrap_or_else(|e| panic!("{e}"));
        let kinds = |kind: &str| objects.iter().filter(|o| o["kind"] == kind).count();
        assert_eq!(kinds("Namespace"), 2);
        assert_eq!(kinds("Deployment"), 12);
        assert_eq!(kinds("StatefulSet"), 12);
        assert_eq!(
            objects.first().map(|o| o["kind"].clone()),
            Some(json!("Namespace"))
        );
        assert!(
            objects
                .iter()
                .all(|o| o["metadata"].get("ownerReferences").is_none())
        );
        let raw = mutu_api::tenant_namespace("raw");
        let deployments: Vec<&Value> = objects
            .iter()
            .filter(|o| o["kind"] == "Deployment")
            .collect();
        assert!(deployments.iter().all(|d| {
            d["metadata"]["namespace"]
                .as_str()
                .is_some_and(|ns| ns.starts_with(&raw))
        }));
        assert_eq!(deployments[0]["metadata"]["name"], "site-01");
        let [namespaces, rest] = namespaces_first(objects.clone());
        assert_eq!((namespaces.len(), rest.len()), (2, objects.len() - 2));
        assert!(rest.iter().all(|o| o["kind"] != "Namespace"));
    }

    #[test]
    fn owner_references_are_removed() {
        let mut o = json!({"kind": "Service", "metadata": {"name": "a", "ownerReferences": [{"uid": "x"}]}});
        without_owners(&mut o);
        assert_eq!(o, json!({"kind": "Service", "metadata": {"name": "a"}}));
        let mut bare = json!({"kind": "Service"});
        without_owners(&mut bare);
        assert_eq!(bare, json!({"kind": "Service"}));
    }
}
