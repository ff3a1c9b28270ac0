//! The preview of MigrationPlans and ReleaseRollouts: `mutu migrate preview`
//! and `mutu rollout preview` print the waves a plan would go through, over
//! the sites of the real control plane, before anything moves.

use std::time::Duration;

use kube::api::{Api, DeleteParams, ListParams};
use mutu_api::{MemberTenant, PloneSite};
use mutu_e2e::{create_product, create_site, create_tenant_with, site_json, wait_ready};
use mutu_runtime::testing::{self, eventually, unique_name};
use serde_json::json;

fn preview(kind: &str, yaml: &str) -> anyhow::Result<serde_json::Value> {
    let bin = std::env::var("MUTU_BIN")
        .map_err(|_| anyhow::anyhow!("MUTU_BIN is not set; run through `make test`"))?;
    let file = std::env::temp_dir().join(format!("{}.yaml", unique_name("preview")));
    std::fs::write(&file, yaml)?;
    let out = std::process::Command::new(bin)
        .args([
            kind,
            "preview",
            "--file",
            &file.display().to_string(),
            "--output",
            "json",
        ])
        .output()?;
    let _ = std::fs::remove_file(&file);
    anyhow::ensure!(
        out.status.success(),
        "mutu {kind} preview: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn sizes(v: &serde_json::Value) -> Vec<(usize, String)> {
    v["waves"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|w| {
            (
                w["sites"].as_array().map(Vec::len).unwrap_or(0),
                w["cohort"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn previews_show_the_waves_of_a_migration_and_a_rollout_before_anything_moves()
-> anyhow::Result<()> {
    let client = testing::client().await?;
    let product = unique_name("wave-p");
    create_product(&client, &product, json!({"replicas": 1})).await?;
    let tenant = unique_name("wave");
    let domain = format!("{tenant}.test");
    create_tenant_with(
        &client,
        &tenant,
        std::slice::from_ref(&domain),
        json!({ product.clone(): 12 }),
    )
    .await?;
    wait_ready(&client, &tenant).await?;
    let ns = format!("tenant-{tenant}");
    let group = unique_name("batch");
    for i in 0..12 {
        let mut site = site_json(
            &ns,
            &format!("s{i:02}"),
            &product,
            &[format!("s{i}.{domain}")],
        );
        site["metadata"]["labels"] =
            json!({"batch": group, "canary": if i < 2 { "yes" } else { "no" }});
        site["spec"]["deletionPolicy"] = json!("Delete");
        create_site(&client, site).await?;
    }
    let sites: Api<PloneSite> = Api::namespaced(client.clone(), &ns);
    eventually(Duration::from_secs(120), "the 12 sites to run", || {
        let sites = sites.clone();
        async move {
            let list = sites.list(&ListParams::default()).await.ok()?;
            let placed = list
                .items
                .iter()
                .filter(|s| {
                    s.status
                        .as_ref()
                        .is_some_and(|st| st.pool.is_some() && st.release.is_some())
                })
                .count();
            (placed == 12).then_some(())
        }
    })
    .await?;

    let plan = format!(
        "apiVersion: hosting.imio.be/v1alpha1\nkind: MigrationPlan\nmetadata:\n  name: to-physical\nspec:\n  selector:\n    matchLabels:\n      batch: {group}\n  from: frontend\n  to: physical\n  waveSize: 5\n  maxInFlight: 2\n"
    );
    let first = preview("migrate", &plan)?;
    assert_eq!(
        sizes(&first),
        [(5, String::new()), (5, String::new()), (2, String::new())]
    );
    assert_eq!(
        preview("migrate", &plan)?,
        first,
        "the same waves when asked twice"
    );
    let listed: Vec<String> = first["waves"][0]["sites"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect();
    assert_eq!(listed[0], format!("{ns}/s00"));

    let rollout = format!(
        "apiVersion: hosting.imio.be/v1alpha1\nkind: ReleaseRollout\nmetadata:\n  name: next\nspec:\n  product: {product}\n  release: \"2.0\"\n  cohorts:\n    - name: canary\n      selector:\n        matchLabels:\n          canary: \"yes\"\n  waveSize: 5\n  maxInFlight: 2\n"
    );
    let waves = preview("rollout", &rollout)?;
    assert_eq!(
        sizes(&waves),
        [
            (2, "canary".to_string()),
            (5, "rest".to_string()),
            (5, "rest".to_string())
        ]
    );
    // Nothing moved: every site is still where it was, on its release.
    for s in sites.list(&ListParams::default()).await?.items {
        let st = s.status.unwrap_or_default();
        assert_eq!(st.pool.as_deref(), Some("frontend"));
        assert_eq!(st.release.as_deref(), Some("1.0"));
    }
    Api::<MemberTenant>::all(client.clone())
        .delete(&tenant, &DeleteParams::default())
        .await?;
    Ok(())
}
