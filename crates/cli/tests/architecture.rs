//! The crate graph is the architecture: the `mutu` binary ties everything
//! together; the operators meet only through the API (each creates the
//! others' objects, never calls their code); the hosting rules (`mutu-model`)
//! and the shared plumbing (`mutu-runtime`) sit on the API types alone. This
//! test reads the graph from `cargo metadata` and fails on an edge that
//! breaks it, naming the edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// What each of mutu's crates outside `operators/` may depend on (among mutu's crates).
const ALLOWED: &[(&str, &[&str])] = &[
    ("mutu-api", &[]),
    ("mutu-model", &["mutu-api"]),
    ("mutu-runtime", &["mutu-api"]),
    ("mutu-solr", &[]),
    ("mutu-portal", &["mutu-api", "mutu-model", "mutu-runtime"]),
];

/// What every operator may depend on: the API, the model, the runtime and
/// the clients of outside systems (`crates/<client>`).
const FOR_OPERATORS: &[&str] = &["mutu-api", "mutu-model", "mutu-runtime", "mutu-solr"];

struct Crate {
    name: String,
    operator: bool,
    deps: BTreeSet<String>,
}

/// The workspace's root and its packages, as `cargo metadata` describes them.
fn metadata() -> (std::path::PathBuf, Vec<serde_json::Value>) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| panic!("cargo metadata: {e}"));
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("cargo metadata's output: {e}"));
    let packages = meta["packages"].as_array().cloned().unwrap_or_default();
    (root, packages)
}

fn workspace() -> Vec<Crate> {
    let (root, packages) = metadata();
    let root = root
        .canonicalize()
        .unwrap_or_else(|e| panic!("the workspace root: {e}"));
    let operators = root.join("operators");
    packages
        .iter()
        .map(|p| {
            let manifest = Path::new(p["manifest_path"].as_str().unwrap_or_default());
            Crate {
                name: p["name"].as_str().unwrap_or_default().to_string(),
                operator: manifest.starts_with(&operators),
                deps: p["dependencies"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    // Normal dependencies: what the crate's code may call.
                    .filter(|d| d["kind"].is_null())
                    .filter_map(|d| d["name"].as_str())
                    .filter(|n| n.starts_with("mutu-"))
                    .map(str::to_string)
                    .collect(),
            }
        })
        .collect()
}

#[test]
fn operators_meet_only_through_the_api_and_rules_sit_on_the_types() {
    let crates = workspace();
    let operators: BTreeSet<&str> = crates
        .iter()
        .filter(|c| c.operator)
        .map(|c| c.name.as_str())
        .collect();
    assert!(
        operators.len() >= 7,
        "the operators were not found under operators/: {operators:?}"
    );
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut wrong = Vec::new();
    for c in &crates {
        for dep in &c.deps {
            let ok = if c.operator {
                FOR_OPERATORS.contains(&dep.as_str())
            } else if let Some(may) = allowed.get(c.name.as_str()) {
                may.contains(&dep.as_str())
            } else {
                true // the binary (mutu-cli) and the end-to-end tests use everything
            };
            if !ok {
                wrong.push(format!("{} -> {dep}", c.name));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "dependencies that break the architecture (see crates/cli/tests/architecture.rs): {wrong:?}"
    );
}

#[test]
fn crate_names_match_their_folders() {
    let (_, packages) = metadata();
    let mut wrong = Vec::new();
    for p in packages {
        let name = p["name"].as_str().unwrap_or_default();
        let manifest = Path::new(p["manifest_path"].as_str().unwrap_or_default());
        let folder = manifest
            .parent()
            .and_then(|d| d.file_name())
            .and_then(|f| f.to_str())
            .unwrap_or_default();
        // The binary's crate is `mutu-cli` in crates/cli; every crate is mutu-<folder>.
        if name != format!("mutu-{folder}") {
            wrong.push(format!("{name} in {}", manifest.display()));
        }
    }
    assert!(
        wrong.is_empty(),
        "crates named unlike their folder: {wrong:?}"
    );
}
