//! mutu's API against the real API server: every CRD is established and
//! documented, every example applies, and every CEL rule rejects what it must
//! with a message that names the field.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams};
use mutu_e2e::{kubectl, repo_root, yaml_files};
use mutu_runtime::testing::{self, eventually};

#[tokio::test]
async fn every_crd_is_installed_and_established() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    let wanted: BTreeSet<String> = mutu_api::crds()
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert!(wanted.len() >= 12, "expected every kind, got {wanted:?}");
    let established = eventually(Duration::from_secs(30), "every CRD established", || async {
        let list = crds.list(&ListParams::default()).await.ok()?;
        let ok: BTreeSet<String> = list
            .items
            .into_iter()
            .filter(|crd| {
                crd.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c.type_ == "Established" && c.status == "True")
                    })
            })
            .filter_map(|crd| crd.metadata.name)
            .collect();
        wanted.is_subset(&ok).then_some(ok)
    })
    .await?;
    assert!(wanted.is_subset(&established));
    Ok(())
}

#[test]
fn kubectl_explain_shows_the_field_docs() {
    let out = kubectl(["explain", "plonesites.spec.hostnames"]);
    assert!(out.success, "kubectl explain failed: {}", out.stderr);
    assert!(out.stdout.contains("FIELD:"), "{}", out.stdout);
    let description = out
        .stdout
        .split("DESCRIPTION:")
        .nth(1)
        .unwrap_or_default()
        .trim()
        .to_string();
    assert!(
        description.len() > 40,
        "kubectl explain shows no useful description:\n{}",
        out.stdout
    );
}

/// Namespaces named by the examples, created so the examples can be applied
/// before any operator has created the tenants' namespaces.
async fn ensure_namespaces(client: &kube::Client, names: &BTreeSet<String>) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    for name in names {
        let ns = serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {testing::TEST_LABEL: "examples"}},
        });
        api.patch(name, &PatchParams::apply("e2e"), &Patch::Apply(&ns))
            .await?;
    }
    Ok(())
}

fn namespaces_in(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("namespace:"))
        .map(|n| n.trim().trim_matches('"').to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

#[tokio::test]
async fn every_example_applies_server_side() -> anyhow::Result<()> {
    let client = testing::client().await?;
    let files = yaml_files(&repo_root().join("examples"));
    assert!(files.len() >= 5, "examples/ has only {} files", files.len());
    let mut namespaces = BTreeSet::new();
    for file in &files {
        namespaces.extend(namespaces_in(&std::fs::read_to_string(file)?));
    }
    ensure_namespaces(&client, &namespaces).await?;
    for file in &files {
        let out = kubectl([
            "apply",
            "--server-side",
            "--field-manager=e2e-examples",
            "-f",
            &file.display().to_string(),
        ]);
        assert!(
            out.success,
            "{} does not apply:\n{}",
            file.display(),
            out.stderr
        );
    }
    // The example backup policies would schedule backups of every test site
    // at night, and the example plans would move and upgrade them: the other
    // tests make their own.
    for example in ["backups.yaml", "migration.yaml", "rollout.yaml"] {
        let file = repo_root().join("examples").join(example);
        let out = kubectl([
            "delete",
            "--ignore-not-found",
            "--wait=false",
            "-f",
            &file.display().to_string(),
        ]);
        assert!(out.success, "{}", out.stderr);
    }
    Ok(())
}

/// A fixture: the documents to apply in order (all but the last must be
/// accepted) and the substring the rejection must contain.
struct Fixture {
    expect: String,
    documents: Vec<String>,
}

fn read_fixture(path: &std::path::Path) -> anyhow::Result<Fixture> {
    let text = std::fs::read_to_string(path)?;
    let expect = text
        .lines()
        .find_map(|l| l.strip_prefix("# expect:"))
        .map(|s| s.trim().to_string())
        .ok_or_else(|| anyhow::anyhow!("{} has no `# expect:` line", path.display()))?;
    let documents = text
        .split("\n---")
        .map(str::to_string)
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.starts_with('#'))
        })
        .collect();
    Ok(Fixture { expect, documents })
}

fn apply_stdin(document: &str) -> mutu_e2e::Kubectl {
    let dir = std::env::temp_dir().join(testing::unique_name("mutu-fixture"));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("doc.yaml");
    let _ = std::fs::write(&path, document);
    let out = kubectl([
        "apply",
        "--server-side",
        "--field-manager=e2e-invalid",
        "-f",
        &path.display().to_string(),
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    out
}

#[tokio::test]
async fn every_invalid_manifest_is_rejected_naming_its_field() -> anyhow::Result<()> {
    let client = testing::client().await?;
    ensure_namespaces(&client, &BTreeSet::from(["default".to_string()]))
        .await
        .ok();
    let files = yaml_files(&repo_root().join("tests/fixtures/invalid"));
    assert!(files.len() >= 8, "only {} invalid fixtures", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let fixture = read_fixture(file)?;
        let Some((last, before)) = fixture.documents.split_last() else {
            failures.push(format!("{}: no document", file.display()));
            continue;
        };
        for doc in before {
            let out = apply_stdin(doc);
            if !out.success {
                failures.push(format!(
                    "{}: the valid original was refused: {}",
                    file.display(),
                    out.stderr
                ));
            }
        }
        let out = apply_stdin(last);
        if out.success {
            failures.push(format!("{}: accepted, but must be refused", file.display()));
        } else if !out.stderr.contains(&fixture.expect) {
            failures.push(format!(
                "{}: refused, but the message does not name `{}`:\n{}",
                file.display(),
                fixture.expect,
                out.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    Ok(())
}
