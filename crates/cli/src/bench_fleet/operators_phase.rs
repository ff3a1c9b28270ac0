//! The operators' phase: the operators bring the fleet from applied to Ready;
//! then a quiet period, a restart, and one site's changes timed to Ready, with
//! the operators' memory throughout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use mutu_api::{MemberTenant, PloneSite, Product};
use mutu_runtime::conditions;
use serde_json::json;

use super::apply::{FIELD_MANAGER, apply_json};
use super::curve::{sample_during, watched};
use super::objects::{PRODUCT, SITES_PER_TENANT, fleet_plan, product, site, tenant};
use super::process::{Operator, rss_kb};
use super::prometheus::{apiserver_metrics, mutu_kind_writes, operator_writes, reconciles};
use super::{FleetArgs, Results};

/// The operators' phase: converge, quiet period, restart, changes, memory.
pub(super) async fn operators(
    args: &FleetArgs,
    client: Client,
    r: &mut Results,
) -> anyhow::Result<()> {
    let n = args.sites;
    let kubeconfig = crate::dev::Local::at(&args.dir, args.api_port)?.kubeconfig;
    let products: Api<Product> = Api::all(client.clone());
    apply_json(&products, PRODUCT, &product()).await?;

    // 1. The operators bring the fleet from applied to Ready.
    let log = args.dir.join("operator.log");
    let metrics_port = args.api_port + 11;
    let mut operator = Operator::start(&kubeconfig, metrics_port, &log)?;
    operator.wait_ready().await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    r.baseline_rss_mb = operator.rss_mb();
    let plan = fleet_plan("bench", n);
    r.tenants = plan.len() as u32;
    let tenants: Api<MemberTenant> = Api::all(client.clone());
    let sites: Api<PloneSite> = Api::all(client.clone());
    eprintln!("applying {} tenants", plan.len());
    futures::stream::iter(plan.iter().map(|(t, k)| {
        let tenants = tenants.clone();
        async move { apply_json(&tenants, t, &tenant(t, *k)).await }
    }))
    .buffer_unordered(usize::from(args.concurrency))
    .try_collect::<Vec<_>>()
    .await?;
    wait_namespaces(&client, &plan, Duration::from_secs(args.timeout)).await?;

    let peak = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling, pid) = (peak.clone(), sampling.clone(), operator.child.id());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kb(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let (site_cache, site_watch) = watched(sites.clone()).await?;
    eprintln!("applying {n} sites; the operators bring them to Ready");
    let applied = {
        let sites_ns = client.clone();
        futures::stream::iter(
            plan.iter()
                .flat_map(|(t, k)| (1..=*k).map(move |i| (t.clone(), i)))
                .map(move |(t, i)| {
                    let client = sites_ns.clone();
                    async move {
                        let body = site(&t, i);
                        let api: Api<PloneSite> =
                            Api::namespaced(client, &mutu_api::tenant_namespace(&t));
                        apply_json(&api, &format!("site-{i:02}"), &body).await
                    }
                }),
        )
        .buffer_unordered(usize::from(args.concurrency))
        .try_collect::<Vec<_>>()
    };
    let sampled = sample_during(
        applied,
        || sites_ready(&site_cache, "bench"),
        n,
        Duration::from_secs(1),
        Duration::from_secs(args.timeout),
        "sites Ready",
    )
    .await;
    site_watch.abort();
    (_, r.operator_curve) = sampled?;
    r.converge_s = r.operator_curve.last().map(|c| c.0).unwrap_or_default();
    eprintln!("all {n} sites Ready in {:.1} s", r.converge_s);

    // 2. Nothing changes: no write.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let (api0, op0) = (
        mutu_kind_writes(&apiserver_metrics(&client).await?),
        operator_writes(&operator.metrics().await?),
    );
    eprintln!("quiet for {} s", args.quiet);
    tokio::time::sleep(Duration::from_secs(args.quiet)).await;
    let (api1, op1) = (
        mutu_kind_writes(&apiserver_metrics(&client).await?),
        operator_writes(&operator.metrics().await?),
    );
    r.noop_writes = api1.saturating_sub(api0);
    r.noop_writes_by_operator = op1.saturating_sub(op0);
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    r.peak_rss_mb = peak.load(Ordering::Relaxed) as f64 / 1024.0;
    r.steady_rss_mb = operator.rss_mb();
    r.rss_per_site_kb = ((r.steady_rss_mb - r.baseline_rss_mb) * 1024.0 / f64::from(n)).max(0.0);

    // 3. A restart: no write, each object reconciled about once.
    eprintln!("restarting the operators");
    operator.stop();
    let before = mutu_kind_writes(&apiserver_metrics(&client).await?);
    let mut operator = Operator::start(&kubeconfig, metrics_port, &log)?;
    operator.wait_ready().await?;
    let mut last = -1.0;
    let settle = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let now = reconciles(&operator.metrics().await?);
        if now == last || settle.elapsed() > Duration::from_secs(args.timeout) {
            break;
        }
        last = now;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after_metrics = operator.metrics().await?;
    r.restart_writes = mutu_kind_writes(&apiserver_metrics(&client).await?).saturating_sub(before);
    r.restart_writes_by_operator = operator_writes(&after_metrics);
    let certificates = Api::<mutu_api::Certificate>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items
        .len();
    let issuers = Api::<mutu_api::CertificateIssuer>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items
        .len();
    let objects = n as usize + plan.len() + certificates + issuers + 1;
    r.reconciles_per_object_after_restart = reconciles(&after_metrics) / objects as f64;

    // 4. One site changes while the fleet sits idle.
    let mut samples = Vec::new();
    let step = (n / args.changes.max(1)).max(1);
    for k in 0..args.changes.min(n) {
        let idx = k * step;
        let (t, _) = &plan[(idx / SITES_PER_TENANT) as usize];
        let name = format!("site-{:02}", idx % SITES_PER_TENANT + 1);
        let api: Api<PloneSite> = Api::namespaced(client.clone(), &mutu_api::tenant_namespace(t));
        let replicas = if k % 2 == 0 { 2 } else { 1 };
        let t0 = Instant::now();
        let patched = api
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER),
                &Patch::Merge(&json!({"spec": {"replicas": replicas}})),
            )
            .await?;
        let generation = patched.metadata.generation;
        loop {
            let s = api.get(&name).await?;
            let st = s.status.clone().unwrap_or_default();
            if st.observed_generation == generation
                && st.ready_replicas == Some(replicas)
                && conditions::is_true(&st.conditions, mutu_api::CONDITION_READY)
            {
                break;
            }
            anyhow::ensure!(
                t0.elapsed() < Duration::from_secs(300),
                "{t}/{name} did not become Ready after its change"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        samples.push(t0.elapsed().as_secs_f64());
    }
    samples.sort_by(f64::total_cmp);
    r.p50_change_to_ready_s = percentile(&samples, 50.0);
    r.p99_change_to_ready_s = percentile(&samples, 99.0);
    operator.stop();
    Ok(())
}

/// Sites Ready among those in the namespaces of the fleet `prefix`.
pub(super) fn sites_ready(store: &Store<PloneSite>, prefix: &str) -> u32 {
    let ns_prefix = mutu_api::tenant_namespace(prefix);
    store
        .state()
        .iter()
        .filter(|s| {
            s.namespace().is_some_and(|n| n.starts_with(&ns_prefix))
                && s.status.as_ref().is_some_and(|st| {
                    conditions::is_true(&st.conditions, mutu_api::CONDITION_READY)
                })
        })
        .count() as u32
}

/// Waits until every tenant's namespace exists.
pub(super) async fn wait_namespaces(
    client: &Client,
    plan: &[(String, u32)],
    timeout: Duration,
) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let started = Instant::now();
    loop {
        let names: std::collections::BTreeSet<String> = api
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .map(|n| n.name_any())
            .collect();
        let missing = plan
            .iter()
            .filter(|(t, _)| !names.contains(&mutu_api::tenant_namespace(t)))
            .count();
        if missing == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < timeout,
            "{missing} tenant namespaces missing"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

pub(super) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_few_samples() {
        let s = [1.0, 2.0, 3.0, 4.0, 10.0];
        assert_eq!(percentile(&s, 50.0), 3.0);
        assert_eq!(percentile(&s, 99.0), 10.0);
        assert_eq!(percentile(&[], 99.0), 0.0);
    }
}
