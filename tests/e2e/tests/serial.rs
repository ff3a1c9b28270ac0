//! End-to-end tests that need the cluster to themselves, run after the others
//! one at a time: a malformed object (stored before a schema change) does not
//! stop the controller, and an unchanged fleet of tenants and sites sees no writes, neither over a
//! quiet period nor from a freshly restarted operator.

mod dev_faults;
mod node_lost;
mod slow_api;
mod solr_down;

use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use mutu_api::MemberTenant;
use mutu_e2e::{create_tenant, operator_metrics, scrape, wait_ready};
use mutu_runtime::metrics::sum_samples;
use mutu_runtime::testing::{self, eventually, unique_name};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(60);
const QUIET: Duration = Duration::from_secs(15);

/// Writes of every controller (tenants, sites, ...).
fn writes(metrics: &str) -> u64 {
    sum_samples(metrics, "mutu_api_writes_total", "controller=")
}

/// Reconciles of tenants, sites and products.
fn owner_reconciles(metrics: &str) -> u64 {
    ["tenant", "site", "product"]
        .iter()
        .map(|c| {
            sum_samples(
                metrics,
                "mutu_reconciles_total",
                &format!("controller=\"{c}\""),
            )
        })
        .sum()
}

#[tokio::test]
async fn a_malformed_tenant_does_not_stop_the_controller() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd_name = "membertenants.hosting.imio.be";
    // An object stored under an older, looser schema: `category` a number.
    let loosen = json!([{
        "op": "replace",
        "path": "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/category",
        "value": {"type": "integer", "description": "temporarily loosened by a test"},
    }]);
    crds.patch(
        crd_name,
        &PatchParams::default(),
        &Patch::Json::<()>(serde_json::from_value(loosen)?),
    )
    .await?;
    let bad = unique_name("malformed");
    let tenants_raw: Api<kube::api::DynamicObject> = Api::all_with(
        client.clone(),
        &kube::api::ApiResource::erase::<MemberTenant>(&()),
    );
    let body: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "hosting.imio.be/v1alpha1", "kind": "MemberTenant",
        "metadata": {"name": bad},
        "spec": {"displayName": "Malformed", "category": 42},
    }))?;
    let created = eventually(TIMEOUT, "the loosened schema to take effect", || async {
        tenants_raw.create(&PostParams::default(), &body).await.ok()
    })
    .await;
    // Whatever happened, put the real schema back.
    crds.patch(
        crd_name,
        &PatchParams::apply("mutu-dev").force(),
        &Patch::Apply(&MemberTenant::crd()),
    )
    .await?;
    let checks = async {
        created?;
        // The API server takes a moment to serve the restored schema.
        let good = unique_name("after-malformed");
        eventually(TIMEOUT, "the real schema to be served again", || async {
            create_tenant(&client, &good, &[format!("{good}.test")], "Delete")
                .await
                .ok()
        })
        .await?;
        wait_ready(&client, &good).await?;

        let events: Api<Event> = Api::all(client.clone());
        eventually(
            TIMEOUT,
            "an InvalidObject event about the malformed tenant",
            || async {
                let list = events
                    .list(&ListParams::default().fields(&format!("involvedObject.name={bad}")))
                    .await
                    .ok()?;
                list.items
                    .iter()
                    .any(|e| e.reason.as_deref() == Some("InvalidObject"))
                    .then_some(())
            },
        )
        .await?;
        let metrics = operator_metrics().await?;
        assert!(
            sum_samples(&metrics, "mutu_reconciles_total", "result=\"invalid\"") >= 1,
            "the malformed object is counted"
        );
        mutu_e2e::fault_scenario_passed(
            "a malformed object stored before a schema change: the controller goes on",
        );
        anyhow::Ok(())
    };
    let result = checks.await;
    tenants_raw.delete(&bad, &DeleteParams::default()).await?;
    result
}

#[tokio::test]
async fn an_unchanged_fleet_sees_no_writes_over_a_quiet_period_nor_after_a_restart()
-> anyhow::Result<()> {
    let client = testing::client().await?;
    // Make sure some tenants exist even when run alone.
    let name = unique_name("quiet");
    create_tenant(&client, &name, &[format!("{name}.test")], "Delete").await?;
    wait_ready(&client, &name).await?;
    let tenants = Api::<MemberTenant>::all(client.clone())
        .list_metadata(&ListParams::default())
        .await?;
    let sites = Api::<mutu_api::PloneSite>::all(client.clone())
        .list_metadata(&ListParams::default())
        .await?;
    let products = Api::<mutu_api::Product>::all(client.clone())
        .list_metadata(&ListParams::default())
        .await?;
    let count = (tenants.items.len() + sites.items.len() + products.items.len()) as u64;

    // Let the last reconciles triggered by the new tenant's children settle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = writes(&operator_metrics().await?);
    tokio::time::sleep(QUIET).await;
    let after = writes(&operator_metrics().await?);
    assert_eq!(
        after, before,
        "writes during a {QUIET:?} quiet period with {count} unchanged tenants"
    );

    // A second operator process starting from scratch reconciles every tenant
    // and site, and must find nothing to write.
    let bin = std::env::var("MUTU_BIN")
        .map_err(|_| anyhow::anyhow!("MUTU_BIN is not set; run through `make test`"))?;
    let addr = "127.0.0.1:19098";
    // The same settings as the operator under test, its own metrics address,
    // and no HTTP-01 solver (the port is the other's).
    let shared_args = std::env::var("MUTU_OPERATOR_ARGS")
        .map_err(|_| anyhow::anyhow!("MUTU_OPERATOR_ARGS is not set; run through `make test`"))?;
    let mut args: Vec<String> = shared_args.split_whitespace().map(String::from).collect();
    if let Some(i) = args.iter().position(|a| a == "--metrics-addr") {
        args.drain(i..(i + 2).min(args.len()));
    }
    args.extend(["--metrics-addr", addr, "--acme-solver-addr", "off"].map(String::from));
    // Its log beside the shared operator's, to tell why it wrote if it did.
    let log_path = std::env::var("MUTU_OPERATOR_LOG")
        .map(|l| format!("{l}.restarted"))
        .unwrap_or_else(|_| "/dev/null".into());
    let log = std::fs::File::create(&log_path)?;
    let mut restarted = tokio::process::Command::new(bin)
        .args(&args)
        .kill_on_drop(true)
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let url = format!("http://{addr}/metrics");
    let metrics = eventually(
        TIMEOUT,
        "the restarted operator to reconcile every tenant, site and product",
        || async {
            let text = scrape(&url).await.ok()?;
            (owner_reconciles(&text) >= count).then_some(text)
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let metrics_later = scrape(&url).await.unwrap_or(metrics);
    let _ = restarted.kill().await;
    assert_eq!(
        writes(&metrics_later),
        0,
        "writes after a restart (its log: {log_path}):\n{metrics_later}"
    );
    let reconciles = owner_reconciles(&metrics_later);
    let per_object = reconciles as f64 / count as f64;
    assert!(
        per_object <= 1.2,
        "{reconciles} reconciles for {count} tenants, sites and products after a restart"
    );
    Ok(())
}

/// What Argo CD or Flux does: the same YAML server-side applied under their
/// own field manager, again and again. mutu owns none of its fields, a second
/// apply finds nothing to change (no drift), and mutu writes nothing.
#[tokio::test]
async fn gitops_applies_the_same_yaml_twice_without_drift_nor_writes_from_mutu()
-> anyhow::Result<()> {
    let client = testing::client().await?;
    let name = unique_name("gitops");
    let ns = mutu_api::tenant_namespace(&name);
    let domain = format!("{name}.test");
    let product = json!({
        "apiVersion": "hosting.imio.be/v1alpha1", "kind": "Product",
        "metadata": {"name": format!("{name}-p")},
        "spec": {
            "displayName": "GitOps product", "engine": "plone",
            "image": "registry.imio.be/e2e/gitops", "release": "1.0", "replicas": 1,
            "storage": {"mode": "zeo", "size": "1Gi"},
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
        },
    });
    let mut tenant = mutu_e2e::tenant_json(&name, std::slice::from_ref(&domain), "Delete");
    tenant["spec"]["entitlements"] = json!({ format!("{name}-p"): 1 });
    let mut site =
        mutu_e2e::site_json(&ns, "web", &format!("{name}-p"), &[format!("www.{domain}")]);
    site["spec"]["deletionPolicy"] = json!("Delete");
    let yaml = [&product, &tenant, &site]
        .iter()
        .map(serde_json::to_string_pretty)
        .collect::<Result<Vec<_>, _>>()?
        .join("\n---\n");
    let file = std::env::temp_dir().join(format!("{name}.yaml"));
    std::fs::write(&file, yaml)?;
    let file_arg = file.display().to_string();
    let apply = || {
        mutu_e2e::kubectl([
            "apply",
            "--server-side",
            "--field-manager=argocd-controller",
            "-f",
            &file_arg,
        ])
    };
    // The site's namespace is the tenant's: the first sync may come before it.
    eventually(TIMEOUT, "the first sync to apply everything", || async {
        apply().success.then_some(())
    })
    .await?;
    wait_ready(&client, &name).await?;
    mutu_e2e::wait_site_condition(&client, &ns, "web", "Ready", "True", None, TIMEOUT).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let versions = || async {
        let p = Api::<mutu_api::Product>::all(client.clone())
            .get(&format!("{name}-p"))
            .await?;
        let t = Api::<MemberTenant>::all(client.clone()).get(&name).await?;
        let s = Api::<mutu_api::PloneSite>::namespaced(client.clone(), &ns)
            .get("web")
            .await?;
        anyhow::Ok([
            (
                p.metadata.resource_version.clone(),
                p.metadata.managed_fields.clone(),
            ),
            (
                t.metadata.resource_version.clone(),
                t.metadata.managed_fields.clone(),
            ),
            (
                s.metadata.resource_version.clone(),
                s.metadata.managed_fields.clone(),
            ),
        ])
    };
    let before = versions().await?;
    // mutu writes only the status: every field of the spec is Git's.
    for (_, managed) in &before {
        for entry in managed.iter().flatten() {
            let manager = entry.manager.as_deref().unwrap_or_default();
            if manager == "argocd-controller" {
                continue;
            }
            let owns = entry
                .fields_v1
                .as_ref()
                .map(|f| f.0.clone())
                .unwrap_or_default();
            assert!(
                entry.subresource.as_deref() == Some("status") || owns.get("f:spec").is_none(),
                "{manager} owns spec fields: {owns}"
            );
        }
    }
    // No drift: the live objects are what Git says.
    let diff = mutu_e2e::kubectl([
        "diff",
        "--server-side",
        "--field-manager=argocd-controller",
        "-f",
        &file_arg,
    ]);
    assert!(
        diff.success,
        "drift after the first sync:\n{}{}",
        diff.stdout, diff.stderr
    );

    let writes_before = writes(&operator_metrics().await?);
    let second = apply();
    assert!(second.success, "second sync: {}", second.stderr);
    tokio::time::sleep(QUIET).await;
    let writes_after = writes(&operator_metrics().await?);
    let after = versions().await?;
    for (b, a) in before.iter().zip(after.iter()) {
        assert_eq!(b.0, a.0, "the second sync changed an object");
    }
    assert_eq!(
        writes_after, writes_before,
        "mutu wrote after a sync that changed nothing"
    );
    let _ = std::fs::remove_file(&file);
    Ok(())
}

async fn restart_shared_operator(kill_first: bool) -> anyhow::Result<()> {
    mutu_e2e::restart_operator(kill_first, &[]).await
}

#[tokio::test]
async fn an_operator_killed_during_an_acme_order_resumes_it_without_a_second_order()
-> anyhow::Result<()> {
    use k8s_openapi::api::networking::v1::Ingress;
    use mutu_api::Certificate;
    use mutu_e2e::certs::{
        certificate_json, create_certificate, pebble_root, secret_pems, verify, wait_certificate,
    };

    let client = testing::client().await?;
    let ns = testing::namespace(&client, "cert-restart").await?;
    let want = vec![format!("www.{}.example.be", unique_name("restart"))];
    create_certificate(&client, certificate_json(&ns, "www", &want, "dev-acme")).await?;
    let api: Api<Certificate> = Api::namespaced(client.clone(), &ns);

    // The order is recorded before its challenges are published and validated
    // (the propagation delay): kill the operator as soon as it is recorded.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let order = loop {
        let c = api.get("www").await?;
        if let Some(order) = c.status.and_then(|s| s.order) {
            restart_shared_operator(true).await?;
            break order;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no order was placed"
        );
        tokio::time::sleep(Duration::from_millis(40)).await;
    };
    let routes = Api::<Ingress>::namespaced(client.clone(), "mutu-system");
    let ours = |list: Vec<Ingress>| {
        list.into_iter()
            .filter(|i| {
                i.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("hosting.imio.be/certificate"))
                    == Some(&format!("{ns}/www"))
            })
            .count()
    };

    let cert = wait_certificate(
        &client,
        &ns,
        "www",
        Duration::from_secs(90),
        "the resumed order",
        |_| true,
    )
    .await?;
    let status = cert.status.unwrap_or_default();
    assert_eq!(
        status.recent_orders.len(),
        1,
        "the restarted operator resumed {} instead of placing another: {:?}",
        order.url,
        status.recent_orders
    );
    let metrics = operator_metrics().await?;
    assert_eq!(
        sum_samples(&metrics, "mutu_acme_orders_total", "issuer=\"dev-acme\""),
        0,
        "the restarted operator placed no order"
    );
    let (crt, key, _) = secret_pems(&client, &ns, "www-tls").await?;
    verify(&crt, &key, &pebble_root(&client).await?, &want)?;
    let left = ours(routes.list(&ListParams::default()).await?.items);
    assert_eq!(
        left, 0,
        "the challenge route is gone once the order completed"
    );
    mutu_e2e::fault_scenario_passed(
        "operator SIGKILL during an ACME order: resumed, no second order",
    );
    Ok(())
}

#[tokio::test]
async fn an_index_created_while_solr_is_down_is_degraded_then_recovers_without_a_duplicate()
-> anyhow::Result<()> {
    use mutu_api::SolrIndex;
    use mutu_runtime::conditions;

    let var = |k: &str| {
        std::env::var(k).map_err(|_| anyhow::anyhow!("{k} is not set; run through `make test`"))
    };
    let state = var("MUTU_DEV_DIR")?;
    let bin = var("MUTU_BIN")?;
    let pid: i32 = std::fs::read_to_string(format!("{state}/pids/solr.pid"))?
        .trim()
        .parse()?;
    let status = std::process::Command::new("kill")
        .arg(pid.to_string())
        .status()?;
    anyhow::ensure!(status.success(), "cannot stop Solr (pid {pid})");
    eventually(TIMEOUT, "Solr to stop", || async move {
        (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    })
    .await?;

    let client = testing::client().await?;
    let ns = testing::namespace(&client, "solr-down").await?;
    let idx: SolrIndex = serde_json::from_value(json!({
        "apiVersion": mutu_api::API_VERSION, "kind": "SolrIndex",
        "metadata": {"name": "delib", "namespace": ns},
        "spec": {"deletionPolicy": "Delete"},
    }))?;
    let api: Api<SolrIndex> = Api::namespaced(client.clone(), &ns);
    api.create(&PostParams::default(), &idx).await?;
    let degraded = testing::wait_for(
        &api,
        "delib",
        TIMEOUT,
        "Degraded",
        |i: Option<&SolrIndex>| {
            i.and_then(|i| i.status.as_ref())
                .is_some_and(|s| conditions::is_true(&s.conditions, "Degraded"))
        },
    )
    .await?;
    let conds = degraded.status.unwrap_or_default().conditions;
    assert!(!conditions::is_true(&conds, "Ready"));
    assert_eq!(
        conditions::find(&conds, "Degraded")
            .map(|c| c.reason.clone())
            .as_deref(),
        Some("SolrUnreachable")
    );

    // Solr back (dev up starts what is missing): the index recovers by itself.
    let up = tokio::process::Command::new(&bin)
        .args(["dev", "up"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await?;
    anyhow::ensure!(up.success(), "mutu dev up could not restart Solr");
    let ready = testing::wait_for(
        &api,
        "delib",
        Duration::from_secs(400),
        "recovery",
        |i: Option<&SolrIndex>| {
            i.and_then(|i| i.status.as_ref()).is_some_and(|s| {
                conditions::is_true(&s.conditions, "Ready")
                    && !conditions::is_true(&s.conditions, "Degraded")
            })
        },
    )
    .await?;
    let collection = ready.status.and_then(|s| s.collection).unwrap_or_default();
    assert_eq!(collection, format!("{ns}.delib_v1"));
    // Through Solr: one collection of this index, not one per attempt.
    let solr = mutu_e2e::solr_admin(&client).await?;
    let ours: Vec<String> = solr
        .collections()
        .await?
        .into_iter()
        .filter(|c| c.starts_with(&format!("{ns}.delib")))
        .collect();
    assert_eq!(ours, vec![collection]);
    mutu_e2e::fault_scenario_passed(
        "Solr down while an index is created: degraded, then recovered, no duplicate collection",
    );
    api.delete("delib", &DeleteParams::default()).await?;
    Ok(())
}

/// The local hour, in Brussels, `hours` from now, as HH:00.
fn brussels_hour_from_now(hours: i64) -> String {
    let tz = jiff::tz::TimeZone::get("Europe/Brussels").unwrap_or(jiff::tz::TimeZone::UTC);
    let then = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(hours);
    format!("{:02}:00", then.to_zoned(tz).hour())
}

/// `mutu backup schedule ... --output json`, parsed.
fn schedule(policy: &str, date: &str) -> anyhow::Result<serde_json::Value> {
    let bin = std::env::var("MUTU_BIN")
        .map_err(|_| anyhow::anyhow!("MUTU_BIN is not set; run through `make test`"))?;
    let out = std::process::Command::new(bin)
        .args([
            "backup", "schedule", "--policy", policy, "--date", date, "--output", "json",
        ])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "mutu backup schedule failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

#[tokio::test]
async fn a_policys_plan_is_the_same_twice_and_after_a_restart_and_a_small_window_is_reported()
-> anyhow::Result<()> {
    use mutu_api::BackupPolicy;
    let client = testing::client().await?;
    let product = unique_name("plan-p");
    mutu_e2e::create_product(&client, &product, json!({"replicas": 1})).await?;
    let tenant = unique_name("plan");
    let domain = format!("{tenant}.test");
    mutu_e2e::create_tenant_with(
        &client,
        &tenant,
        std::slice::from_ref(&domain),
        json!({ product.clone(): 40 }),
    )
    .await?;
    wait_ready(&client, &tenant).await?;
    let ns = format!("tenant-{tenant}");
    for i in 0..40 {
        let mut site = mutu_e2e::site_json(
            &ns,
            &format!("site-{i:02}"),
            &product,
            &[format!("s{i}.{domain}")],
        );
        site["spec"]["deletionPolicy"] = json!("Delete");
        mutu_e2e::create_site(&client, site).await?;
    }
    // Where each site runs is part of the plan (the per-node cap): wait until all run.
    let site_api: Api<mutu_api::PloneSite> = Api::namespaced(client.clone(), &ns);
    eventually(Duration::from_secs(180), "the 40 sites to be Ready", || {
        let site_api = site_api.clone();
        async move {
            let list = site_api.list(&ListParams::default()).await.ok()?;
            let ready = list
                .items
                .iter()
                .filter(|s| {
                    s.status.as_ref().is_some_and(|st| {
                        mutu_runtime::conditions::is_true(&st.conditions, "Ready")
                    })
                })
                .count();
            (ready == 40).then_some(())
        }
    })
    .await?;
    // Tonight's window opens in three hours and lasts seven: 40 sites of 10 minutes fit.
    let policy = unique_name("plan");
    let body: BackupPolicy = serde_json::from_value(json!({
        "apiVersion": mutu_api::API_VERSION, "kind": "BackupPolicy",
        "metadata": {"name": policy},
        "spec": {
            "window": {"start": brussels_hour_from_now(3), "end": brussels_hour_from_now(10)},
            "maxConcurrent": 3, "maxPerNode": 2, "products": [product],
        },
    }))?;
    let policies: Api<BackupPolicy> = Api::all(client.clone());
    policies.create(&PostParams::default(), &body).await?;
    let planned = eventually(TIMEOUT, "the policy to plan its 40 sites", || {
        let policies = policies.clone();
        let policy = policy.clone();
        async move {
            let p = policies.get(&policy).await.ok()?;
            let s = p.status.clone()?;
            (s.sites == Some(40) && mutu_runtime::conditions::is_true(&s.conditions, "Ready"))
                .then_some(p)
        }
    })
    .await?;
    let status = planned.status.clone().unwrap_or_default();
    let opens = status.opens.clone().map(|t| t.0).unwrap_or_default();
    let closes = status.closes.clone().map(|t| t.0).unwrap_or_default();
    let tz = jiff::tz::TimeZone::get("Europe/Brussels").unwrap_or(jiff::tz::TimeZone::UTC);
    let date = opens.to_zoned(tz).date().to_string();

    let first = schedule(&policy, &date)?;
    let second = schedule(&policy, &date)?;
    assert_eq!(first, second, "the same plan when asked twice");
    let runs = first["runs"].as_array().cloned().unwrap_or_default();
    assert_eq!(runs.len(), 40);
    let mut edges = Vec::new();
    for r in &runs {
        let start: jiff::Timestamp = r["start"].as_str().unwrap_or_default().parse()?;
        let end: jiff::Timestamp = r["end"].as_str().unwrap_or_default().parse()?;
        assert!(
            start >= opens && end <= closes,
            "{r} is outside {opens}..{closes}"
        );
        edges.push((start, 1i32));
        edges.push((end, -1));
    }
    edges.sort();
    let (mut now, mut peak) = (0, 0);
    for (_, d) in edges {
        now += d;
        peak = peak.max(now);
    }
    assert!(peak <= 3, "{peak} backups at once with maxConcurrent 3");
    assert_eq!(status.peak_concurrency, Some(peak));

    // After the operator's death and restart: the same plan, and nothing rewritten.
    let version = planned.metadata.resource_version.clone();
    restart_shared_operator(true).await?;
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(
        schedule(&policy, &date)?,
        first,
        "the same plan after a restart"
    );
    let after = policies.get(&policy).await?;
    assert_eq!(
        after.metadata.resource_version, version,
        "the restarted engine rewrote the policy: {:?}",
        after.status
    );

    // A window of one hour cannot hold 400 minutes with 3 at a time: the status says so.
    policies
        .patch(
            &policy,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"window": {"end": brussels_hour_from_now(4)}}})),
        )
        .await?;
    let refused = eventually(TIMEOUT, "the policy to report its window too small", || {
        let policies = policies.clone();
        let policy = policy.clone();
        async move {
            let p = policies.get(&policy).await.ok()?;
            let c =
                mutu_runtime::conditions::find(&p.status.as_ref()?.conditions, "Ready")?.clone();
            (c.reason == "WindowTooSmall").then_some(c)
        }
    })
    .await?;
    assert_eq!(refused.status, "False");
    for part in ["40 sites", "6 h 40 min", "at least 7", "maxConcurrent is 3"] {
        assert!(
            refused.message.contains(part),
            "{part:?} not in: {}",
            refused.message
        );
    }
    let small = schedule(&policy, &date)?;
    assert!(small["overruns"].as_u64().unwrap_or(0) > 0, "{small}");

    policies.delete(&policy, &DeleteParams::default()).await?;
    // Gone before the next serial test, which counts the fleet and its writes.
    let tenants = Api::<MemberTenant>::all(client.clone());
    tenants.delete(&tenant, &DeleteParams::default()).await?;
    eventually(
        Duration::from_secs(240),
        "the member and its 40 sites to be gone",
        || {
            let tenants = tenants.clone();
            let tenant = tenant.clone();
            async move { tenants.get_opt(&tenant).await.ok()?.is_none().then_some(()) }
        },
    )
    .await?;
    Ok(())
}
