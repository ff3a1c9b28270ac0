//! One configuration file for the operator and the portal (`--config FILE`,
//! or `MUTU_CONFIG`): a YAML mapping with a section per process, whose keys
//! are the long flags' names, and a `log` section:
//!
//! ```yaml
//! operator:
//!   default-pool: frontend
//!   concurrency: 8
//!   only: [tenant, site]
//! portal:
//!   trusted-proxy: [10.0.0.12]
//! log:
//!   level: info
//!   format: json
//! ```
//!
//! A flag on the command line wins over its environment variable, which wins
//! over the file, which wins over the default. The file's settings become
//! flags before clap reads the command line, so they are validated exactly as
//! flags are; an error names the file and the setting.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

/// The sections of the file and the `mutu` command each one configures.
const SECTIONS: &[(&str, &[&str])] = &[("operator", &["operator", "run"]), ("portal", &["portal"])];

/// The `log` section's settings and the environment variables they stand for.
const LOG: &[(&str, &str)] = &[("level", "MUTU_LOG"), ("format", "MUTU_LOG_FORMAT")];

/// What the file added: the flags (to name the setting in an error) and the
/// log settings the environment did not set.
#[derive(Debug, Default, PartialEq)]
pub struct Loaded {
    pub path: Option<PathBuf>,
    pub section: String,
    /// Flag (`--concurrency`) → the file's key (`operator.concurrency`).
    pub flags: BTreeMap<String, String>,
    pub log_level: Option<String>,
    pub log_format: Option<String>,
}

impl Loaded {
    /// How an error names one of the file's settings: `FILE: setting `key``.
    pub fn setting(&self, key: &str) -> String {
        format!(
            "{}: setting `{key}`",
            self.path
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        )
    }

    /// The file's setting behind a clap error, if one of its values was refused.
    pub fn origin(&self, error: &clap::Error) -> Option<String> {
        use clap::error::{ContextKind, ContextValue};
        let arg = match error.get(ContextKind::InvalidArg) {
            Some(ContextValue::String(s)) => s.clone(),
            _ => return None,
        };
        let flag = arg.split([' ', '=']).next().unwrap_or_default();
        let key = self.flags.get(flag)?;
        Some(self.setting(key))
    }
}

/// The command line with the file's settings added as flags, for the command
/// of `args` (the operator or the portal); unchanged without a file.
/// `env` reads an environment variable (the process's own, or a test's).
pub fn apply(
    cli: &clap::Command,
    args: Vec<OsString>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(Vec<OsString>, Loaded), String> {
    let words: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let Some(section) = SECTIONS
        .iter()
        .find(|(_, command)| {
            words
                .get(1..=command.len())
                .is_some_and(|at| at.iter().zip(command.iter()).all(|(a, c)| a == c))
        })
        .map(|(section, _)| *section)
    else {
        return Ok((args, Loaded::default()));
    };
    let Some(file) = config_path(&words).or_else(|| env("MUTU_CONFIG").filter(|p| !p.is_empty()))
    else {
        return Ok((args, Loaded::default()));
    };
    let file = PathBuf::from(file);
    let text = std::fs::read_to_string(&file)
        .map_err(|e| format!("cannot read the configuration file {}: {e}", file.display()))?;
    let doc: serde_json::Value = if text.trim().is_empty() {
        serde_json::json!({})
    } else {
        serde_saphyr::from_str(&text).map_err(|e| format!("{}: not YAML: {e}", file.display()))?
    };
    let serde_json::Value::Object(top) = doc else {
        return Err(format!(
            "{}: expected a mapping with the sections operator, portal and log",
            file.display()
        ));
    };
    let mut loaded = Loaded {
        path: Some(file.clone()),
        section: section.to_string(),
        ..Default::default()
    };
    for key in top.keys() {
        if key != "log" && !SECTIONS.iter().any(|(s, _)| s == key) {
            return Err(format!(
                "{}: `{key}` is not a section; the sections are operator, portal and log",
                file.display()
            ));
        }
    }
    if let Some(log) = top.get("log") {
        let serde_json::Value::Object(log) = log else {
            return Err(format!("{}: `log` must be a mapping", file.display()));
        };
        for (key, value) in log {
            let Some((_, var)) = LOG.iter().find(|(k, _)| k == key) else {
                return Err(format!(
                    "{}: `log.{key}` is not a setting; the log settings are level and format",
                    file.display()
                ));
            };
            let value = scalar(value)
                .ok_or_else(|| format!("{}: `log.{key}` must be a string", file.display()))?;
            if env(var).is_none_or(|v| v.is_empty()) {
                match key.as_str() {
                    "level" => loaded.log_level = Some(value),
                    _ => loaded.log_format = Some(value),
                }
            }
        }
    }
    let command_path = SECTIONS
        .iter()
        .find(|(s, _)| *s == section)
        .map(|(_, c)| *c)
        .unwrap_or_default();
    let mut sub = cli;
    for word in command_path {
        sub = sub
            .find_subcommand(word)
            .ok_or_else(|| format!("no command {word}"))?;
    }
    let mut args = args;
    if let Some(settings) = top.get(section) {
        let serde_json::Value::Object(settings) = settings else {
            return Err(format!("{}: `{section}` must be a mapping", file.display()));
        };
        for (key, value) in settings {
            let known = || {
                sub.get_arguments()
                    .filter_map(|a| a.get_long())
                    .filter(|l| *l != "config" && *l != "help" && *l != "version")
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let Some(arg) = sub
                .get_arguments()
                .find(|a| a.get_long() == Some(key.as_str()) && key != "config")
            else {
                return Err(format!(
                    "{}: `{section}.{key}` is not a setting; the {section}'s settings are: {}",
                    file.display(),
                    known()
                ));
            };
            let flag = format!("--{key}");
            // The command line wins, then the environment.
            if words
                .iter()
                .any(|w| *w == flag || w.starts_with(&format!("{flag}=")))
            {
                continue;
            }
            if let Some(var) = arg.get_env()
                && env(&var.to_string_lossy()).is_some_and(|v| !v.is_empty())
            {
                continue;
            }
            let takes_value = arg.get_action().takes_values();
            let value = match value {
                serde_json::Value::Bool(b) if !takes_value => {
                    if *b {
                        args.push(OsString::from(&flag));
                        loaded.flags.insert(flag, format!("{section}.{key}"));
                    }
                    continue;
                }
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(scalar)
                    .collect::<Option<Vec<_>>>()
                    .map(|v| v.join(",")),
                other => scalar(other),
            }
            .ok_or_else(|| {
                format!(
                    "{}: `{section}.{key}` must be a value or a list of values",
                    file.display()
                )
            })?;
            if !takes_value {
                return Err(format!(
                    "{}: `{section}.{key}` is a switch: give true or false",
                    file.display()
                ));
            }
            args.push(OsString::from(format!("{flag}={value}")));
            loaded.flags.insert(flag, format!("{section}.{key}"));
        }
    }
    Ok((args, loaded))
}

/// `--config FILE` or `--config=FILE` on the command line.
fn config_path(words: &[String]) -> Option<String> {
    let mut it = words.iter();
    while let Some(w) = it.next() {
        if w == "--config" {
            return it.next().cloned();
        }
        if let Some(v) = w.strip_prefix("--config=") {
            return Some(v.to_string());
        }
    }
    None
}

fn scalar(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mutu-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        path
    }

    fn words(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_files_settings_become_flags_below_the_command_line_and_the_environment() {
        let path = file(
            "ok.yaml",
            "operator:\n  default-pool: physical\n  concurrency: 4\n  only: [tenant, site]\n  leader-elect: false\n  ingress-class: traefik\nlog:\n  level: debug\n  format: json\n",
        );
        let p = path.display().to_string();
        let cli = crate::Cli::command();
        let (args, loaded) = apply(
            &cli,
            words(&[
                "mutu",
                "operator",
                "run",
                "--config",
                &p,
                "--concurrency",
                "2",
            ]),
            |var| (var == "MUTU_INGRESS_CLASS").then(|| "nginx".to_string()),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let args = strings(&args);
        assert!(
            args.contains(&"--default-pool=physical".to_string()),
            "{args:?}"
        );
        assert!(args.contains(&"--only=tenant,site".to_string()), "{args:?}");
        // The command line's --concurrency wins; the environment's ingress class too.
        assert!(
            !args.iter().any(|a| a.starts_with("--concurrency=")),
            "{args:?}"
        );
        assert!(
            !args.iter().any(|a| a.starts_with("--ingress-class")),
            "{args:?}"
        );
        // A switch set to false adds nothing.
        assert!(
            !args.iter().any(|a| a.starts_with("--leader-elect")),
            "{args:?}"
        );
        assert_eq!(loaded.log_level.as_deref(), Some("debug"));
        assert_eq!(loaded.log_format.as_deref(), Some("json"));
        // And clap accepts the result.
        assert!(
            cli.clone()
                .try_get_matches_from(args.iter().filter(|a| !a.starts_with("--leader")))
                .is_ok()
        );
    }

    #[test]
    fn the_members_egress_is_set_in_the_file_as_lists() {
        let path = file(
            "egress.yaml",
            "operator:\n  mail-relay: 10.0.0.25:25\n  database-egress: [namespace/databases:5432, 10.20.0.0/24:5432]\n",
        );
        let p = path.display().to_string();
        let cli = crate::Cli::command();
        let (args, _) = apply(
            &cli,
            words(&["mutu", "operator", "run", "--config", &p]),
            no_env,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let args = strings(&args);
        assert!(
            args.contains(&"--mail-relay=10.0.0.25:25".to_string()),
            "{args:?}"
        );
        assert!(
            args.contains(
                &"--database-egress=namespace/databases:5432,10.20.0.0/24:5432".to_string()
            ),
            "{args:?}"
        );
        assert!(cli.try_get_matches_from(args).is_ok());
    }

    #[test]
    fn mistakes_name_the_file_and_the_setting() {
        let cli = crate::Cli::command();
        let case = |name: &str, text: &str| {
            let path = file(name, text);
            let p = path.display().to_string();
            apply(
                &cli,
                words(&["mutu", "operator", "run", "--config", &p]),
                no_env,
            )
            .err()
            .unwrap_or_else(|| panic!("{name} was accepted"))
        };
        let e = case("typo.yaml", "operator:\n  defualt-pool: frontend\n");
        assert!(
            e.contains("operator.defualt-pool") && e.contains("default-pool"),
            "{e}"
        );
        let e = case("section.yaml", "operater: {}\n");
        assert!(e.contains("`operater` is not a section"), "{e}");
        let e = case("log.yaml", "log:\n  colour: true\n");
        assert!(e.contains("log.colour"), "{e}");
        let e = case("nested.yaml", "operator:\n  solr-url: {host: solr}\n");
        assert!(e.contains("operator.solr-url"), "{e}");
        let e = case("list.yaml", "- a\n- b\n");
        assert!(e.contains("expected a mapping"), "{e}");
        let missing = apply(
            &cli,
            words(&[
                "mutu",
                "operator",
                "run",
                "--config",
                "/nonexistent/mutu.yaml",
            ]),
            no_env,
        )
        .err()
        .unwrap_or_default();
        assert!(missing.contains("/nonexistent/mutu.yaml"), "{missing}");
    }

    #[test]
    fn a_refused_value_is_traced_to_its_setting_in_the_file() {
        let path = file("bad-value.yaml", "operator:\n  concurrency: 0\n");
        let p = path.display().to_string();
        let cli = crate::Cli::command();
        let (args, loaded) = apply(
            &cli,
            words(&["mutu", "operator", "run", "--config", &p]),
            no_env,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let error = cli
            .try_get_matches_from(args)
            .err()
            .unwrap_or_else(|| panic!("concurrency 0 was accepted"));
        let origin = loaded.origin(&error).unwrap_or_default();
        assert!(
            origin.contains("operator.concurrency") && origin.contains(&p),
            "{origin}"
        );
    }

    #[test]
    fn the_environment_names_the_file_and_other_commands_are_untouched() {
        let path = file(
            "portal.yaml",
            "portal:\n  trusted-proxy: [10.0.0.12, 10.0.0.13]\n",
        );
        let p = path.display().to_string();
        let cli = crate::Cli::command();
        let (args, _) = apply(&cli, words(&["mutu", "portal"]), |var| {
            (var == "MUTU_CONFIG").then(|| p.clone())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(strings(&args).contains(&"--trusted-proxy=10.0.0.12,10.0.0.13".to_string()));
        let (args, loaded) = apply(&cli, words(&["mutu", "crds"]), |var| {
            (var == "MUTU_CONFIG").then(|| p.clone())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(strings(&args), vec!["mutu", "crds"]);
        assert_eq!(loaded, Loaded::default());
    }
}
