//! `mutu completion bash|zsh|fish`: the shell completion script of `mutu`
//! (clap_complete). `kubectl mutu` completes through kubectl itself: kubectl
//! (1.26 and later) asks the executable `kubectl_complete-mutu` on the PATH (a
//! link to `mutu` made beside `kubectl-mutu`, see the Makefile), which
//! answers from the same command line (crate::plugin::complete).

use clap::{Args, CommandFactory, ValueEnum};
use clap_complete::Shell;

#[derive(Args)]
pub struct CompletionArgs {
    /// The shell, e.g. `source <(mutu completion bash)` in ~/.bashrc. For `kubectl mutu`,
    /// kubectl's own completion asks `kubectl_complete-mutu` (linked beside kubectl-mutu).
    shell: Target,
}

#[derive(Clone, Copy, ValueEnum)]
enum Target {
    Bash,
    Zsh,
    Fish,
}

pub fn run(args: CompletionArgs) -> anyhow::Result<()> {
    print!("{}", script(args.shell));
    Ok(())
}

fn script(target: Target) -> String {
    let shell = match target {
        Target::Bash => Shell::Bash,
        Target::Zsh => Shell::Zsh,
        Target::Fish => Shell::Fish,
    };
    let mut cmd = crate::Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "mutu", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_gets_a_script_that_knows_the_on_call_commands() {
        for target in [Target::Bash, Target::Zsh, Target::Fish] {
            let text = script(target);
            for word in [
                "site",
                "certificate",
                "renew",
                "maintenance",
                "plan",
                "report",
            ] {
                assert!(text.contains(word), "{word} missing");
            }
        }
        assert!(script(Target::Bash).contains("complete -F _mutu"));
    }
}
