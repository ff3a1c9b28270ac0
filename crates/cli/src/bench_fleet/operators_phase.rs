//! The operators' phase: the operators bring the fleet from applied to Ready;
//! then a quiet period, a restart, and one site's changes timed to Ready, with
//! the operators' memory throughout.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use mutu_api::{MemberTenant, PloneSite, PloneSiteStatus, Product};
use mutu_runtime::conditions;
use serde_json::json;

use super::apply::{FIELD_MANAGER, all_of, apply_json};
use super::curve::{end_time, sample_during, watched};
use super::objects::{PRODUCT, fleet_plan, product, site, site_at, site_name, sites_of, tenant};
use super::process::{Launch, Operator, PeakRss};
use super::prometheus::{apiserver_metrics, mutu_kind_writes, operator_writes, reconciles};
use super::{FleetArgs, Results};

/// The operators' phase: converge, quiet period, restart, changes, memory.
pub(super) async fn operators(
    args: &FleetArgs,
    client: Client,
    r: &mut Results,
) -> anyhow::Result<()> {
    let launch = Launch {
        kubeconfig: crate::dev::Local::at(&args.dir, args.api_port)?.kubeconfig,
        metrics_port: args.api_port + 11,
        log: args.dir.join("operator.log"),
    };
    let products: Api<Product> = Api::all(client.clone());
    apply_json(&products, PRODUCT, &product()).await?;

    // 1. The operators bring the fleet from applied to Ready.
    let operator = Operator::start(&launch)?;
    operator.wait_ready().await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    r.baseline_rss_mb = operator.rss_mb();
    let plan = fleet_plan("bench", args.sites);
    r.tenants = plan.len() as u32;
    apply_tenants(args, &client, &plan).await?;
    let peak = PeakRss::start(operator.pid());
    converge(args, &client, &plan, r).await?;

    // 2. Nothing changes: no write.
    quiet_period(args, &client, &operator, r).await?;
    r.peak_rss_mb = peak.stop().await;
    r.steady_rss_mb = operator.rss_mb();
    r.rss_per_site_kb = rss_per_site_kb(r.baseline_rss_mb, r.steady_rss_mb, args.sites);

    // 3. A restart: no write, each object reconciled about once.
    let mut operator = restart(args, &client, operator, &launch, plan.len(), r).await?;

    // 4. One site changes while the fleet sits idle.
    changes(args, &client, &plan, r).await?;
    operator.stop();
    Ok(())
}

/// Applies the tenants of `plan` and waits for their namespaces.
async fn apply_tenants(
    args: &FleetArgs,
    client: &Client,
    plan: &[(String, u32)],
) -> anyhow::Result<()> {
    let tenants: Api<MemberTenant> = Api::all(client.clone());
    eprintln!("applying {} tenants", plan.len());
    let applies = plan.iter().map(|(t, k)| {
        let tenants = tenants.clone();
        async move { apply_json(&tenants, t, &tenant(t, *k)).await }
    });
    all_of(applies, args.concurrency).await?;
    wait_namespaces(client, plan, Duration::from_secs(args.timeout)).await
}

/// Applies the sites of `plan` and counts them Ready every second, from the
/// apply's start until all are: the operators' curve and time.
async fn converge(
    args: &FleetArgs,
    client: &Client,
    plan: &[(String, u32)],
    r: &mut Results,
) -> anyhow::Result<()> {
    let n = args.sites;
    let (site_cache, site_watch) = watched(Api::<PloneSite>::all(client.clone())).await?;
    eprintln!("applying {n} sites; the operators bring them to Ready");
    let applied = all_of(
        sites_of(plan).map(|(t, i)| apply_site(client, t, i)),
        args.concurrency,
    );
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
    r.converge_s = end_time(&r.operator_curve);
    eprintln!("all {n} sites Ready in {:.1} s", r.converge_s);
    Ok(())
}

/// Applies the `i`-th site of `tenant`.
async fn apply_site(client: &Client, tenant: &str, i: u32) -> anyhow::Result<()> {
    let body = site(tenant, i);
    let api: Api<PloneSite> = Api::namespaced(client.clone(), &mutu_api::tenant_namespace(tenant));
    apply_json(&api, &site_name(i), &body).await
}

/// The API writes while nothing changes, counted by the API server and by
/// the operators, once the fleet has had 15 s to settle.
async fn quiet_period(
    args: &FleetArgs,
    client: &Client,
    operator: &Operator,
    r: &mut Results,
) -> anyhow::Result<()> {
    tokio::time::sleep(Duration::from_secs(15)).await;
    let (api0, op0) = writes(client, operator).await?;
    eprintln!("quiet for {} s", args.quiet);
    tokio::time::sleep(Duration::from_secs(args.quiet)).await;
    let (api1, op1) = writes(client, operator).await?;
    r.noop_writes = api1.saturating_sub(api0);
    r.noop_writes_by_operator = op1.saturating_sub(op0);
    Ok(())
}

/// The writes so far: the API server's on mutu's kinds, the operators' own.
async fn writes(client: &Client, operator: &Operator) -> anyhow::Result<(u64, u64)> {
    Ok((
        mutu_kind_writes(&apiserver_metrics(client).await?),
        operator_writes(&operator.metrics().await?),
    ))
}

/// Stops the operators and starts them again, until their reconciles settle:
/// the API writes meanwhile, and the reconciles per object. The new
/// operators are returned.
async fn restart(
    args: &FleetArgs,
    client: &Client,
    mut operator: Operator,
    launch: &Launch,
    tenants: usize,
    r: &mut Results,
) -> anyhow::Result<Operator> {
    eprintln!("restarting the operators");
    operator.stop();
    let before = mutu_kind_writes(&apiserver_metrics(client).await?);
    let operator = Operator::start(launch)?;
    operator.wait_ready().await?;
    wait_settled(&operator, Duration::from_secs(args.timeout)).await?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after_metrics = operator.metrics().await?;
    r.restart_writes = mutu_kind_writes(&apiserver_metrics(client).await?).saturating_sub(before);
    r.restart_writes_by_operator = operator_writes(&after_metrics);
    let objects = reconciled_objects(client, args.sites, tenants).await?;
    r.reconciles_per_object_after_restart = reconciles(&after_metrics) / objects as f64;
    Ok(operator)
}

/// Waits until the operators' count of reconciles holds still for 5 s, or
/// for `timeout` at most.
async fn wait_settled(operator: &Operator, timeout: Duration) -> anyhow::Result<()> {
    let mut last = -1.0;
    let settle = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let now = reconciles(&operator.metrics().await?);
        if now == last || settle.elapsed() > timeout {
            return Ok(());
        }
        last = now;
    }
}

/// The objects the operators reconcile: the sites, the tenants, the
/// certificates, the issuers, and the product.
async fn reconciled_objects(client: &Client, sites: u32, tenants: usize) -> anyhow::Result<usize> {
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
    Ok(sites as usize + tenants + certificates + issuers + 1)
}

/// One site's spec change at a time, the fleet idle, timed to Ready: the
/// median and the 99th percentile.
async fn changes(
    args: &FleetArgs,
    client: &Client,
    plan: &[(String, u32)],
    r: &mut Results,
) -> anyhow::Result<()> {
    let mut samples = Vec::new();
    for (k, idx) in change_targets(args.sites, args.changes)
        .into_iter()
        .enumerate()
    {
        let (t, name) = site_at(plan, idx);
        let replicas = if k % 2 == 0 { 2 } else { 1 };
        samples.push(time_change(client, t, &name, replicas).await?);
    }
    samples.sort_by(f64::total_cmp);
    r.p50_change_to_ready_s = percentile(&samples, 50.0);
    r.p99_change_to_ready_s = percentile(&samples, 99.0);
    Ok(())
}

/// The sites that the changes go to, by their place in the fleet of `n`:
/// `changes` of them spread evenly, or every site if the fleet has fewer.
fn change_targets(n: u32, changes: u32) -> Vec<u32> {
    let step = (n / changes.max(1)).max(1);
    (0..changes.min(n)).map(|k| k * step).collect()
}

/// Sets the replicas of the site `name` of `tenant`: the seconds until the
/// site is Ready with them.
async fn time_change(
    client: &Client,
    tenant: &str,
    name: &str,
    replicas: i32,
) -> anyhow::Result<f64> {
    let api: Api<PloneSite> = Api::namespaced(client.clone(), &mutu_api::tenant_namespace(tenant));
    let t0 = Instant::now();
    let patched = api
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Merge(&json!({"spec": {"replicas": replicas}})),
        )
        .await?;
    let generation = patched.metadata.generation;
    loop {
        let s = api.get(name).await?;
        if changed(&s.status.unwrap_or_default(), generation, replicas) {
            return Ok(t0.elapsed().as_secs_f64());
        }
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(300),
            "{tenant}/{name} did not become Ready after its change"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A site's status shows its change (of `generation`) done: `replicas`
/// ready, and the site Ready.
fn changed(st: &PloneSiteStatus, generation: Option<i64>, replicas: i32) -> bool {
    st.observed_generation == generation
        && st.ready_replicas == Some(replicas)
        && conditions::is_true(&st.conditions, mutu_api::CONDITION_READY)
}

/// The operators' memory per site: what the fleet added to the empty
/// operators' (never below 0), in kB.
fn rss_per_site_kb(baseline_mb: f64, steady_mb: f64, sites: u32) -> f64 {
    ((steady_mb - baseline_mb) * 1024.0 / f64::from(sites)).max(0.0)
}

/// Sites Ready among those in the namespaces of the fleet `prefix`.
fn sites_ready(store: &Store<PloneSite>, prefix: &str) -> u32 {
    ready_among(&store.state(), &mutu_api::tenant_namespace(prefix))
}

/// Sites Ready among `sites`, counting those in namespaces starting with `ns_prefix`.
fn ready_among(sites: &[Arc<PloneSite>], ns_prefix: &str) -> u32 {
    sites
        .iter()
        .filter(|s| {
            s.namespace().is_some_and(|n| n.starts_with(ns_prefix))
                && s.status.as_ref().is_some_and(|st| {
                    conditions::is_true(&st.conditions, mutu_api::CONDITION_READY)
                })
        })
        .count() as u32
}

/// Waits until every tenant's namespace exists.
async fn wait_namespaces(
    client: &Client,
    plan: &[(String, u32)],
    timeout: Duration,
) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let started = Instant::now();
    loop {
        let names: BTreeSet<String> = api
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .map(|n| n.name_any())
            .collect();
        let missing = missing_namespaces(plan, &names);
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

/// The tenants of `plan` whose namespace is not among `names`.
fn missing_namespaces(plan: &[(String, u32)], names: &BTreeSet<String>) -> usize {
    plan.iter()
        .filter(|(t, _)| !names.contains(&mutu_api::tenant_namespace(t)))
        .count()
}

/// The `p`-th percentile of `sorted` (nearest rank); 0 for no sample.
fn percentile(sorted: &[f64], p: f64) -> f64 {
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

    #[test]
    fn changes_spread_over_the_fleet() {
        let targets = change_targets(819, 40);
        assert_eq!(targets.len(), 40);
        assert_eq!(targets.first(), Some(&0));
        assert_eq!(targets.last(), Some(&(39 * 20)));
        assert_eq!(change_targets(5, 40), vec![0, 1, 2, 3, 4]);
        assert_eq!(change_targets(10, 0), Vec::<u32>::new());
        let plan = fleet_plan("bench", 819);
        for idx in change_targets(819, 40) {
            let (t, name) = site_at(&plan, idx);
            assert!(sites_of(&plan).any(|(pt, i)| pt == t && site_name(i) == name));
        }
    }

    fn ready_condition(status: &str) -> serde_json::Value {
        json!({
            "type": mutu_api::CONDITION_READY, "status": status,
            "lastTransitionTime": "2025-01-01T00:00:00Z", "reason": "Test", "message": "",
        })
    }

    #[test]
    fn a_change_is_done_when_observed_with_its_replicas_and_ready() {
        let status = |generation: i64, ready: i32, condition: &str| {
            serde_json::from_value::<PloneSiteStatus>(json!({
                "observedGeneration": generation,
                "readyReplicas": ready,
                "conditions": [ready_condition(condition)],
            }))
            .unwrap_or_else(|e| panic!("{e}"))
        };
        assert!(changed(&status(3, 2, "True"), Some(3), 2));
        assert!(!changed(&status(2, 2, "True"), Some(3), 2));
        assert!(!changed(&status(3, 1, "True"), Some(3), 2));
        assert!(!changed(&status(3, 2, "False"), Some(3), 2));
        assert!(!changed(&PloneSiteStatus::default(), Some(3), 2));
    }

    #[test]
    fn sites_ready_count_in_the_fleet_only() {
        let site = |ns: &str, condition: Option<&str>| {
            let mut s = site("x", 1);
            s["metadata"]["namespace"] = json!(ns);
            if let Some(c) = condition {
                s["status"] = json!({"conditions": [ready_condition(c)]});
            }
            Arc::new(serde_json::from_value::<PloneSite>(s).unwrap_or_else(|e| panic!("{e}")))
        };
        let bench = mutu_api::tenant_namespace("bench");
        let sites = [
            site(&format!("{bench}-00000"), Some("True")),
            site(&format!("{bench}-00001"), Some("True")),
            site(&format!("{bench}-00001"), Some("False")),
            site(&format!("{bench}-00002"), None),
            site("elsewhere", Some("True")),
        ];
        assert_eq!(ready_among(&sites, &bench), 2);
        assert_eq!(ready_among(&[], &bench), 0);
    }

    #[test]
    fn namespaces_missing_from_a_plan() {
        let plan = fleet_plan("bench", 25);
        let mut names: BTreeSet<String> = ["default".to_string()].into();
        assert_eq!(missing_namespaces(&plan, &names), 3);
        names.insert(mutu_api::tenant_namespace("bench-00000"));
        names.insert(mutu_api::tenant_namespace("bench-00002"));
        assert_eq!(missing_namespaces(&plan, &names), 1);
        names.insert(mutu_api::tenant_namespace("bench-00001"));
        assert_eq!(missing_namespaces(&plan, &names), 0);
    }

    #[test]
    fn memory_per_site_is_what_the_fleet_added() {
        assert_eq!(rss_per_site_kb(40.0, 50.0, 1024), 10.0);
        assert_eq!(rss_per_site_kb(50.0, 40.0, 1024), 0.0);
    }
}
