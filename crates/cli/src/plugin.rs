//! `kubectl mutu ...`: the same binary, found by kubectl as `kubectl-mutu` on
//! the PATH (a link to `mutu`, see the Makefile). kubectl runs it with the
//! words after `mutu`; a few short names spare the on-call engineer the
//! command groups, everything else is `mutu`'s own command line.

use std::ffi::OsString;
use std::path::Path;

/// The file name kubectl looks for on the PATH.
pub const PLUGIN_NAME: &str = "kubectl-mutu";

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

/// One line per short name, for `kubectl mutu --help`.
pub fn aliases_help() -> String {
    let mut text = String::from("Short names (kubectl mutu):\n");
    for (alias, command) in ALIASES {
        text.push_str(&format!("  {alias:<10} mutu {}\n", command.join(" ")));
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
}
