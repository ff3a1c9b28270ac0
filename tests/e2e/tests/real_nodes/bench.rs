//! The migration benchmark on real nodes (not part of `make test`: run it with
//! `tests/bench/migration.sh`): N ZEO sites with content move from frontend-1
//! to physical-1 in one MigrationPlan at `maxInFlight` M; prints the sites per
//! hour and how long each site showed the maintenance page.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use mutu_api::wave::SiteStep;
use mutu_api::{MigrationPlan, PloneSite};
use mutu_e2e::create_site;
use mutu_e2e::real::{PloneContent, client, member, site_ready};
use mutu_runtime::testing::unique_name;
use serde_json::json;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn seconds(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64())
}

#[tokio::test]
#[ignore = "a benchmark: tests/bench/migration.sh runs it"]
async fn bench_migration() -> anyhow::Result<()> {
    let sites = setting("MUTU_BENCH_SITES", 6);
    let in_flight = setting("MUTU_BENCH_MAX_IN_FLIGHT", 3);
    let client = client().await?;
    let (_, ns, domain) = member(&client, "bench-move", json!({"dev-plone": sites})).await?;
    let run = unique_name("bench");
    let names: Vec<String> = (0..sites).map(|i| format!("s{i}")).collect();
    for name in &names {
        create_site(
            &client,
            json!({
                "apiVersion": "hosting.imio.be/v1alpha1", "kind": "PloneSite",
                "metadata": {"name": name, "namespace": ns, "labels": {"migration": run}},
                "spec": {"product": "dev-plone", "hostnames": [format!("{name}.{domain}")]},
            }),
        )
        .await?;
    }
    for name in &names {
        site_ready(&client, &ns, name).await?;
    }
    // Some content in each, read back after the move.
    for name in &names {
        let site = PloneContent::of(&client, &ns, name, &format!("{name}.{domain}")).await?;
        site.wait_serving().await?;
        site.create_document("page", &format!("<p>{name}</p>"))
            .await?;
    }

    let plan = unique_name("bench-to-physical");
    let body: MigrationPlan = serde_json::from_value(json!({
        "apiVersion": "hosting.imio.be/v1alpha1", "kind": "MigrationPlan",
        "metadata": {"name": plan},
        "spec": {"selector": {"matchLabels": {"migration": run}}, "from": "frontend",
                 "to": "physical", "waveSize": sites, "maxInFlight": in_flight,
                 "failureThreshold": sites, "verifyTimeout": "900s"},
    }))?;
    let plans: Api<MigrationPlan> = Api::all(client.clone());
    let site_api: Api<PloneSite> = Api::namespaced(client.clone(), &ns);
    let started = Instant::now();
    plans.create(&PostParams::default(), &body).await?;
    // Every 250 ms: which sites show the maintenance page (the annotation the
    // plan sets while visitors see it), until every site is Done or Failed.
    let mut offline: BTreeMap<String, Duration> = BTreeMap::new();
    let mut last = Instant::now();
    let outcome = loop {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(3600),
            "the plan did not finish within an hour"
        );
        let listed = site_api.list(&ListParams::default()).await?;
        let now = Instant::now();
        for s in &listed.items {
            if s.annotations().contains_key(mutu_api::OFFLINE_ANNOTATION) {
                *offline.entry(s.name_any()).or_default() += now - last;
            }
        }
        last = now;
        let p = plans.get(&plan).await?;
        let progress = p.status.map(|s| s.site_progress).unwrap_or_default();
        let finished = progress
            .iter()
            .filter(|p| matches!(p.step, SiteStep::Done | SiteStep::Failed))
            .count();
        if finished == sites {
            break progress;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let elapsed = started.elapsed();
    let failed: Vec<_> = outcome
        .iter()
        .filter(|p| p.step != SiteStep::Done)
        .map(|p| format!("{}: {}", p.name, p.reason.clone().unwrap_or_default()))
        .collect();
    anyhow::ensure!(failed.is_empty(), "sites not moved: {failed:?}");
    for name in &names {
        let site = PloneContent::of(&client, &ns, name, &format!("{name}.{domain}")).await?;
        site.wait_serving().await?;
        anyhow::ensure!(
            site.document_text("page").await?.as_deref() == Some(&format!("<p>{name}</p>")),
            "{name} lost its page"
        );
    }
    let mut times: Vec<Duration> = names
        .iter()
        .map(|n| offline.get(n).copied().unwrap_or_default())
        .collect();
    times.sort();
    println!(
        "migration bench: {sites} ZEO sites frontend-1 -> physical-1, maxInFlight {in_flight}: {} s in all, {:.0} sites per hour; maintenance page per site: min {} s, median {} s, max {} s",
        seconds(elapsed),
        sites as f64 * 3600.0 / elapsed.as_secs_f64(),
        seconds(times[0]),
        seconds(times[times.len() / 2]),
        seconds(times[times.len() - 1]),
    );
    plans.delete(&plan, &Default::default()).await?;
    mutu_e2e::real::free(&[&ns]);
    Ok(())
}
