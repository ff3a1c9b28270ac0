//! `mutu crds`: the CustomResourceDefinitions generated from crates/api.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

#[derive(Args)]
pub struct CrdsArgs {
    /// Write one YAML file per kind into this directory (e.g. `crds/`) instead of
    /// printing them all to standard output.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,

    /// Also write the admission policy of the platform's fields (mutu-platform-fields) to
    /// this file, for an operator in `--operator-namespace`.
    #[arg(long, value_name = "FILE")]
    admission_policy: Option<PathBuf>,

    /// Namespace of mutu's operator and portal, exempt from the admission policy.
    #[arg(long, value_name = "NS", default_value = "mutu-system")]
    operator_namespace: String,

    /// Name of the policy and its binding.
    #[arg(long, value_name = "NAME", default_value = mutu_api::policy::PLATFORM_FIELDS_POLICY)]
    policy_name: String,

    /// Write the Helm chart's version instead (named after the release, for the release's
    /// namespace).
    #[arg(long)]
    helm: bool,
}

/// The Helm chart's admission policy: where `make crds` writes it, its name and namespace.
#[cfg(test)]
const CHART_POLICY: &str = "charts/mutu/templates/platform-fields-policy.yaml";
const CHART_POLICY_NAME: &str = "{{ include \"mutu.fullname\" . }}-platform-fields";
const CHART_CONFINEMENT_NAME: &str = "{{ include \"mutu.fullname\" . }}-operator-confinement";
const CHART_NAMESPACE: &str = "{{ .Release.Namespace }}";

/// The chart's admission policies (the platform's fields, and the confinement of mutu's
/// service accounts to tenant namespaces): named after the release, for the release's
/// namespace. The
/// name is left unquoted so that Helm, which renders the text before YAML reads it, sees
/// plain template actions.
fn chart_policy_yaml() -> Result<String, serde_saphyr::SerializeError> {
    let text = mutu_api::policy::chart_policies_yaml(
        CHART_POLICY_NAME,
        CHART_CONFINEMENT_NAME,
        CHART_NAMESPACE,
    )?;
    let mut text = text;
    for name in [CHART_POLICY_NAME, CHART_CONFINEMENT_NAME] {
        text = text.replace(&format!("{name:?}"), name);
    }
    Ok(text)
}

pub fn run(args: CrdsArgs) -> anyhow::Result<()> {
    let crds = mutu_api::crds();
    if let Some(path) = &args.admission_policy {
        let text = if args.helm {
            chart_policy_yaml()?
        } else {
            mutu_api::policy::platform_fields_yaml(&args.policy_name, &args.operator_namespace)?
        };
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote the admission policy to {}", path.display());
    }
    match args.dir {
        None => {
            for crd in &crds {
                print!("---\n{}", mutu_api::crd_yaml(crd)?);
            }
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for crd in &crds {
                let path = dir.join(mutu_api::crd_file_name(crd));
                std::fs::write(&path, mutu_api::crd_yaml(crd)?)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            eprintln!("wrote {} CRDs to {}", crds.len(), dir.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// crds/ and the Helm chart's copy are generated from crates/api by
    /// `make crds`; they must never drift.
    #[test]
    fn committed_crds_match_the_types() {
        let root = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
            .join("../..");
        for generated in ["crds", "charts/mutu/crds"] {
            let dir = root.join(generated);
            let mut expected = BTreeSet::new();
            for crd in mutu_api::crds() {
                let file = mutu_api::crd_file_name(&crd);
                let path = dir.join(&file);
                let committed = std::fs::read_to_string(&path).unwrap_or_default();
                assert!(
                    Some(committed) == mutu_api::crd_yaml(&crd).ok(),
                    "{generated}/{file} differs from crates/api; run `make crds` and commit the result"
                );
                expected.insert(file);
            }
            let present: BTreeSet<String> = std::fs::read_dir(&dir)
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| n.ends_with(".yaml"))
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(
                present, expected,
                "{generated}/ holds files that no kind generates (or misses some); run `make crds`"
            );
        }
        let committed = std::fs::read_to_string(root.join(super::CHART_POLICY)).unwrap_or_default();
        assert!(
            Some(committed) == super::chart_policy_yaml().ok(),
            "{} differs from crates/api/src/policy.rs; run `make crds` and commit the result",
            super::CHART_POLICY
        );
    }
}
