//! `kubectl mutu ...`: the same binary, found by kubectl as `kubectl-mutu` on
//! the PATH (a link to `mutu`, see the Makefile). kubectl runs it with the
//! words after `mutu`; a few short names spare the on-call engineer the
//! command groups, everything else is `mutu`'s own command line.
//!
//! kubectl (1.26 and later) completes a plugin's words by running
//! `kubectl_complete-mutu WORDS... CURRENT` (another link to `mutu`), which
//! answers as cobra's `__complete` does: one candidate a line (`value\tdescription`),
//! then `:DIRECTIVE`.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use clap::{Arg, Command};

/// The file name kubectl looks for on the PATH.
pub const PLUGIN_NAME: &str = "kubectl-mutu";
/// The file name kubectl runs to complete `kubectl mutu ...`.
pub const COMPLETION_NAME: &str = "kubectl_complete-mutu";

/// The on-call commands of the plugin, as the README's table and the krew
/// manifest (plugins/krew/mutu.yaml) list them (a test keeps them together).
pub const ONCALL_COMMANDS: &[&str] = &[
    "site status",
    "certificate status",
    "certificate renew",
    "backup now",
    "restore",
    "maintenance on",
    "maintenance off",
    "plan pause",
    "plan resume",
    "plan status",
    "report",
    "completion",
];

/// Short names of the plugin: `kubectl mutu status` is `mutu fleet status`.
const ALIASES: &[(&str, &[&str])] = &[
    ("status", &["fleet", "status"]),
    ("approve", &["request", "approve"]),
    ("deny", &["request", "deny"]),
    ("render", &["request", "render"]),
];

/// Whether the process was started as the kubectl plugin.
pub fn invoked_as_plugin(argv0: &OsString) -> bool {
    Path::new(argv0)
        .file_name()
        .is_some_and(|n| n == PLUGIN_NAME)
}

/// The command line `mutu` understands for the plugin's arguments.
pub fn translate(args: Vec<OsString>) -> Vec<OsString> {
    let mut out = vec![OsString::from("kubectl mutu")];
    let mut rest = args.into_iter().skip(1);
    if let Some(first) = rest.next() {
        match ALIASES.iter().find(|(alias, _)| first == **alias) {
            Some((_, command)) => out.extend(command.iter().map(OsString::from)),
            None => out.push(first),
        }
    }
    out.extend(rest);
    out
}

/// Whether the process was started by kubectl to complete the plugin's words.
pub fn invoked_for_completion(argv0: &OsString) -> bool {
    Path::new(argv0)
        .file_name()
        .is_some_and(|n| n == COMPLETION_NAME)
}

/// When started as `kubectl_complete-mutu`: prints the candidates for the
/// words of the command line and returns the exit code; else `None`.
pub fn complete_for_kubectl() -> Option<ExitCode> {
    let mut args = std::env::args_os();
    if !args
        .next()
        .is_some_and(|argv0| invoked_for_completion(&argv0))
    {
        return None;
    }
    let words: Vec<String> = args.map(|a| a.to_string_lossy().into_owned()).collect();
    let (candidates, directive) = complete(<crate::Cli as clap::CommandFactory>::command(), &words);
    for c in candidates {
        println!("{c}");
    }
    println!(":{directive}");
    Some(ExitCode::SUCCESS)
}

/// Cobra's directives: complete files (the shell's default), or not.
const FILES: u32 = 0;
const NO_FILES: u32 = 4;

/// The candidates (`value\tdescription`) for the last of `words` (the word
/// being completed, maybe empty) after the others, and the directive.
pub fn complete(mut cli: Command, words: &[String]) -> (Vec<String>, u32) {
    cli.build();
    let (current, before) = match words.split_last() {
        Some((c, b)) => (c.as_str(), b.to_vec()),
        None => ("", Vec::new()),
    };
    // The short names expand as on the command line.
    let mut before = before;
    if let Some((_, command)) = before
        .first()
        .and_then(|first| ALIASES.iter().find(|(alias, _)| first == alias))
    {
        before.splice(0..1, command.iter().map(|w| w.to_string()));
    }
    let mut cmd = &cli;
    let mut value_of: Option<&Arg> = None;
    let mut positionals = 0;
    for word in &before {
        if value_of.take().is_some() {
            continue;
        }
        if let Some(long) = word.strip_prefix("--") {
            if !long.contains('=') {
                value_of = cmd
                    .get_arguments()
                    .find(|a| a.get_long() == Some(long))
                    .filter(|a| a.get_action().takes_values());
            }
        } else if let Some(short) = word.strip_prefix('-').filter(|s| !s.is_empty()) {
            let last = short.chars().last();
            if short.chars().count() == 1 {
                value_of = cmd
                    .get_arguments()
                    .find(|a| a.get_short() == last)
                    .filter(|a| a.get_action().takes_values());
            }
        } else if let Some(sub) = cmd.find_subcommand(word) {
            cmd = sub;
            positionals = 0;
        } else {
            positionals += 1;
        }
    }
    let matching = |candidates: Vec<(String, String)>| -> Vec<String> {
        candidates
            .into_iter()
            .filter(|(v, _)| v.starts_with(current))
            .map(|(v, about)| {
                if about.is_empty() {
                    v
                } else {
                    format!("{v}\t{about}")
                }
            })
            .collect()
    };
    if let Some(arg) = value_of {
        if arg.get_id() == "context" {
            let contexts = kube::config::Kubeconfig::read()
                .map(|k| {
                    k.contexts
                        .into_iter()
                        .map(|c| (c.name, String::new()))
                        .collect()
                })
                .unwrap_or_default();
            return (matching(contexts), NO_FILES);
        }
        let values = possible_values(arg);
        if !values.is_empty() {
            return (matching(values), NO_FILES);
        }
        let files = matches!(
            arg.get_value_hint(),
            clap::ValueHint::FilePath | clap::ValueHint::AnyPath | clap::ValueHint::DirPath
        );
        return (Vec::new(), if files { FILES } else { NO_FILES });
    }
    if current.starts_with('-') {
        let flags = cmd
            .get_arguments()
            .filter(|a| !a.is_hide_set())
            .filter_map(|a| {
                a.get_long()
                    .map(|l| (format!("--{l}"), first_line(a.get_help())))
            })
            .collect();
        return (matching(flags), NO_FILES);
    }
    let mut candidates: Vec<(String, String)> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .map(|s| (s.get_name().to_string(), first_line(s.get_about())))
        .collect();
    if std::ptr::eq(cmd, &cli) {
        candidates.extend(
            ALIASES
                .iter()
                .map(|(alias, command)| (alias.to_string(), format!("mutu {}", command.join(" ")))),
        );
    }
    if candidates.is_empty()
        && let Some(arg) = cmd.get_positionals().nth(positionals)
    {
        candidates = possible_values(arg);
    }
    (matching(candidates), NO_FILES)
}

fn possible_values(arg: &Arg) -> Vec<(String, String)> {
    arg.get_possible_values()
        .into_iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| (v.get_name().to_string(), first_line(v.get_help())))
        .collect()
}

fn first_line(text: Option<&clap::builder::StyledStr>) -> String {
    text.map(|t| t.to_string())
        .and_then(|t| t.lines().next().map(str::to_string))
        .unwrap_or_default()
}

/// One line per short name, for `kubectl mutu --help`.
pub fn aliases_help() -> String {
    let mut text = String::from("Short names (kubectl mutu):\n");
    for (alias, command) in ALIASES {
        text.push_str(&format!("  {alias:<10} mutu {}\n", command.join(" ")));
    }
    text.push_str("\nOn call (kubectl mutu <command> --help):\n");
    for command in ONCALL_COMMANDS {
        text.push_str(&format!("  {command}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_plugin_is_known_by_its_file_name() {
        assert!(invoked_as_plugin(&OsString::from(
            "/usr/local/bin/kubectl-mutu"
        )));
        assert!(invoked_as_plugin(&OsString::from("kubectl-mutu")));
        assert!(!invoked_as_plugin(&OsString::from("/usr/local/bin/mutu")));
        assert!(!invoked_as_plugin(&OsString::from("kubectl-mutu-old")));
    }

    #[test]
    fn short_names_expand_and_the_rest_passes_through() {
        assert_eq!(
            translate(words(&["kubectl-mutu", "status", "--output", "json"])),
            words(&["kubectl mutu", "fleet", "status", "--output", "json"])
        );
        assert_eq!(
            translate(words(&["kubectl-mutu", "approve", "tenant-a/r1"])),
            words(&["kubectl mutu", "request", "approve", "tenant-a/r1"])
        );
        assert_eq!(
            translate(words(&["kubectl-mutu", "migrate", "preview", "p"])),
            words(&["kubectl mutu", "migrate", "preview", "p"])
        );
        assert_eq!(
            translate(words(&["kubectl-mutu"])),
            words(&["kubectl mutu"])
        );
        // An argument that merely looks like a short name is left alone.
        assert_eq!(
            translate(words(&["kubectl-mutu", "fleet", "status"])),
            words(&["kubectl mutu", "fleet", "status"])
        );
    }

    #[test]
    fn every_short_name_leads_to_a_real_command() {
        use clap::CommandFactory;
        let cli = crate::Cli::command();
        for (alias, command) in ALIASES {
            let mut cmd = &cli;
            for word in *command {
                cmd = cmd
                    .find_subcommand(word)
                    .unwrap_or_else(|| panic!("{alias}: no command {word}"));
            }
        }
    }

    /// The command that `text` (e.g. `kubectl mutu plan pause NAME`) names: its
    /// words while they are subcommands of mutu's command line (`a|b` for
    /// either), without `kubectl mutu`.
    fn commands_named(cli: &clap::Command, text: &str) -> Vec<String> {
        let text = text.trim().trim_start_matches("kubectl mutu").trim();
        let mut found = vec![(cli, String::new())];
        for word in text.split_whitespace() {
            let alternatives: Vec<&str> = word.split('|').map(|w| w.trim_matches('\\')).collect();
            let next: Vec<(&clap::Command, String)> = found
                .iter()
                .flat_map(|(cmd, path)| {
                    alternatives.iter().filter_map(move |alt| {
                        cmd.find_subcommand(alt)
                            .map(|sub| (sub, format!("{path} {alt}").trim().to_string()))
                    })
                })
                .collect();
            if next.len() != alternatives.len() * found.len() {
                break;
            }
            found = next;
        }
        found
            .into_iter()
            .map(|(_, path)| path)
            .filter(|p| !p.is_empty())
            .collect()
    }

    /// The commands of the first column of the table under `heading` in `markdown`.
    fn table_commands(cli: &clap::Command, markdown: &str, heading: &str) -> Vec<String> {
        let section = markdown
            .split_once(heading)
            .map(|(_, rest)| rest)
            .unwrap_or_else(|| panic!("no {heading:?} in the README"));
        let section = section.split("\n#").next().unwrap_or_default();
        let mut out = Vec::new();
        for line in section.lines().filter(|l| l.starts_with('|')) {
            // The first cell, where `\|` is a `|` of the text.
            let mut cell = String::new();
            let mut escaped = false;
            for c in line[1..].chars() {
                match c {
                    '|' if !escaped => break,
                    _ => {
                        escaped = c == '\\';
                        cell.push(c);
                    }
                }
            }
            if let Some(code) = cell.split('`').nth(1) {
                out.extend(commands_named(cli, code));
            }
        }
        out
    }

    #[test]
    fn the_readme_the_krew_manifest_and_the_help_list_the_same_on_call_commands() {
        use clap::CommandFactory;
        let cli = crate::Cli::command();
        let expected: Vec<String> = ONCALL_COMMANDS.iter().map(|c| c.to_string()).collect();
        // Each is a command of `mutu --help`, and each leaf of the on-call groups is listed
        // (`backup schedule` is the night's plan, not an on-call command).
        for command in ONCALL_COMMANDS {
            assert_eq!(commands_named(&cli, command), vec![command.to_string()]);
        }
        let help = cli.clone().render_help().to_string();
        for group in [
            "site",
            "certificate",
            "backup",
            "restore",
            "maintenance",
            "plan",
            "report",
            "completion",
        ] {
            assert!(
                help.contains(&format!("  {group} ")),
                "mutu --help lacks {group}"
            );
            let Some(cmd) = cli.find_subcommand(group) else {
                panic!("no {group}");
            };
            let leaves: Vec<String> = if cmd.has_subcommands() {
                cmd.get_subcommands()
                    .filter(|s| s.get_name() != "help" && s.get_name() != "schedule")
                    .map(|s| format!("{group} {}", s.get_name()))
                    .collect()
            } else {
                vec![group.to_string()]
            };
            for leaf in leaves {
                assert!(expected.contains(&leaf), "{leaf} is not in ONCALL_COMMANDS");
            }
        }

        let root = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
            .join("../..");
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap_or_default();
        let mut in_readme = table_commands(&cli, &readme, "### `kubectl mutu`: on-call commands");
        in_readme.sort();
        let mut sorted = expected.clone();
        sorted.sort();
        assert_eq!(in_readme, sorted, "the README's table of on-call commands");

        let manifest =
            std::fs::read_to_string(root.join("plugins/krew/mutu.yaml")).unwrap_or_default();
        let plugin: serde_json::Value = serde_saphyr::from_str(&manifest)
            .unwrap_or_else(|e| panic!("plugins/krew/mutu.yaml: {e}"));
        assert_eq!(plugin["kind"], "Plugin");
        assert_eq!(
            plugin["apiVersion"],
            "krew.googlecontainertools.github.com/v1alpha2"
        );
        assert_eq!(plugin["metadata"]["name"], "mutu");
        let description = plugin["spec"]["description"].as_str().unwrap_or_default();
        let mut in_krew: Vec<String> = description
            .lines()
            .filter(|l| l.starts_with("  kubectl mutu "))
            .flat_map(|l| commands_named(&cli, l))
            .collect();
        in_krew.sort();
        assert_eq!(in_krew, sorted, "the krew manifest's description");
        for platform in plugin["spec"]["platforms"].as_array().into_iter().flatten() {
            assert_eq!(platform["bin"], "mutu");
            let sha = platform["sha256"].as_str().unwrap_or_default();
            assert!(
                sha.len() == 64 && sha.chars().all(|c| c.is_ascii_hexdigit()),
                "{sha}"
            );
        }
    }

    fn complete_words(words: &[&str]) -> (Vec<String>, u32) {
        use clap::CommandFactory;
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        complete(crate::Cli::command(), &words)
    }

    fn values(candidates: &[String]) -> Vec<&str> {
        candidates
            .iter()
            .map(|c| c.split('\t').next().unwrap_or_default())
            .collect()
    }

    #[test]
    fn kubectl_completes_commands_options_and_values() {
        let (c, directive) = complete_words(&[""]);
        let v = values(&c);
        for word in [
            "site",
            "certificate",
            "backup",
            "restore",
            "maintenance",
            "plan",
            "report",
            "status",
            "approve",
        ] {
            assert!(v.contains(&word), "{word} in {v:?}");
        }
        assert!(!v.contains(&"help"));
        assert_eq!(directive, NO_FILES);
        assert!(
            c.iter().any(|l| l.starts_with("site\t")),
            "descriptions: {c:?}"
        );

        let (c, _) = complete_words(&["ma"]);
        let mut v = values(&c);
        v.sort();
        assert_eq!(v, vec!["maintenance", "maintenance-page"]);
        let (c, _) = complete_words(&["maintenance", ""]);
        assert_eq!(values(&c), vec!["on", "off"]);
        let (c, _) = complete_words(&["plan", "status", "p1", "--kind", ""]);
        assert_eq!(values(&c), vec!["migrationplan", "releaserollout"]);
        // Global options after the command's words, and the value of an option skipped.
        let (c, _) = complete_words(&["site", "status", "-n", "tenant-mons", "--c"]);
        assert_eq!(values(&c), vec!["--context"]);
        let (c, _) = complete_words(&["certificate", "renew", "--"]);
        let v = values(&c);
        for flag in ["--no-wait", "--timeout", "--kubeconfig", "--namespace"] {
            assert!(v.contains(&flag), "{flag} in {v:?}");
        }
        // Files where a file is asked for.
        let (c, directive) = complete_words(&["report", "--output", ""]);
        assert!(c.is_empty());
        assert_eq!(directive, FILES);
        let (c, _) = complete_words(&["completion", ""]);
        assert_eq!(values(&c), vec!["bash", "zsh", "fish"]);
        // A short name completes as its command.
        let (c, _) = complete_words(&["status", "--o"]);
        assert_eq!(values(&c), vec!["--output"]);
    }

    #[test]
    fn the_completion_executable_is_known_by_its_file_name() {
        assert!(invoked_for_completion(&OsString::from(
            "/usr/local/bin/kubectl_complete-mutu"
        )));
        assert!(!invoked_for_completion(&OsString::from("kubectl-mutu")));
    }
}
