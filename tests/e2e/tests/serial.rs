//! End-to-end tests that need the cluster to themselves, run after the others
//! one at a time: a malformed object (stored before a schema change) does not
//! stop the controller, and an unchanged fleet of tenants and sites sees no writes, neither over a
//! quiet period nor from a freshly restarted operator.

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
    let mut restarted = tokio::process::Command::new(bin)
        .args(["operator", "run", "--metrics-addr", addr])
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let url = format!("http://{addr}/metrics");
    let metrics = eventually(
        TIMEOUT,
        "the restarted operator to reconcile every tenant, site and product",
        || async {
            let text = scrape(&url).await.ok()?;
            (sum_samples(&text, "mutu_reconciles_total", "controller=") >= count).then_some(text)
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let metrics_later = scrape(&url).await.unwrap_or(metrics);
    let _ = restarted.kill().await;
    assert_eq!(
        writes(&metrics_later),
        0,
        "writes after a restart:\n{metrics_later}"
    );
    let reconciles = sum_samples(&metrics_later, "mutu_reconciles_total", "controller=");
    let per_object = reconciles as f64 / count as f64;
    assert!(
        per_object <= 1.2,
        "{reconciles} reconciles for {count} tenants, sites and products after a restart"
    );
    Ok(())
}
