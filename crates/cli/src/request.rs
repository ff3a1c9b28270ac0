//! `mutu request approve|deny|render NS/NAME`: an approver's decision on a
//! member's ProvisioningRequest, and the site YAML of a GitOps request. The
//! decision is recorded by `mutu_portal::decision`, as the portal does.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use kube::Client;
use mutu_api::provisioning::Decision;
use mutu_portal::decision::{self, Recorded};

#[derive(Args)]
pub struct RequestArgs {
    #[command(subcommand)]
    command: RequestCommand,
}

#[derive(Subcommand)]
enum RequestCommand {
    /// Approve a request that passes every check: mutu then creates its site
    /// (or, in GitOps mode, renders it for a pull request).
    Approve {
        /// The request, as NAMESPACE/NAME, e.g. tenant-ans/web.
        request: String,
        /// A note kept with the decision.
        #[arg(long)]
        message: Option<String>,
    },
    /// Deny a request, with the reason the member will read.
    Deny {
        /// The request, as NAMESPACE/NAME, e.g. tenant-ans/web.
        request: String,
        /// Why: shown to the member in the request's status and the portal.
        #[arg(long)]
        reason: String,
    },
    /// Print the PloneSite an approved request renders to, as YAML, for a pull
    /// request to the GitOps repository.
    Render {
        /// The request, as NAMESPACE/NAME, e.g. tenant-ans/web.
        request: String,
    },
}

pub async fn run(args: RequestArgs) -> anyhow::Result<()> {
    let client = Client::try_default()
        .await
        .context("cannot connect to Kubernetes (set KUBECONFIG, or run `mutu dev up`)")?;
    match args.command {
        RequestCommand::Approve { request, message } => {
            let (ns, name) = parse_target(&request)?;
            match decision::decide(&client, &ns, &name, Decision::Approved, message).await? {
                Recorded::Now(me) => println!(
                    "{ns}/{name} approved by {me}; mutu now fulfils it (kubectl get provisioningrequest -n {ns} {name})"
                ),
                Recorded::Already(by) => println!("{ns}/{name} is already approved by {by}"),
            }
        }
        RequestCommand::Deny { request, reason } => {
            let (ns, name) = parse_target(&request)?;
            match decision::decide(&client, &ns, &name, Decision::Denied, Some(reason)).await? {
                Recorded::Now(me) => println!("{ns}/{name} denied by {me}"),
                Recorded::Already(by) => println!("{ns}/{name} is already denied by {by}"),
            }
        }
        RequestCommand::Render { request } => {
            let (ns, name) = parse_target(&request)?;
            let found = decision::get(&client, &ns, &name).await?;
            print!("{}", decision::rendered(&found)?);
        }
    }
    Ok(())
}

/// `NAMESPACE/NAME` split in two.
pub fn parse_target(target: &str) -> anyhow::Result<(String, String)> {
    match target.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => bail!(
            "{target:?}: name the request as NAMESPACE/NAME, e.g. tenant-ans/web (see kubectl get provisioningrequests -A)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_namespace_slash_name() {
        assert_eq!(
            parse_target("tenant-ans/web").ok(),
            Some(("tenant-ans".to_string(), "web".to_string()))
        );
        for bad in ["web", "/web", "tenant-ans/", "a/b/c"] {
            let e = parse_target(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains("NAMESPACE/NAME"), "{bad}: {e}");
        }
    }
}
