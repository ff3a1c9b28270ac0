//! `kubectl mutu maintenance on|off NS/SITE`: the annotation
//! `hosting.imio.be/maintenance` of a PloneSite, as a Restore sets it: the
//! site operator stops the site's servers, its visitors get the maintenance
//! page, and the site says `Ready=False, reason Maintenance`. The value says
//! who asked (`ops/<user>`, the user the API server knows). `off` leaves alone
//! a maintenance that a mutu Restore, a MigrationPlan or a ReleaseRollout set
//! (they lift it themselves) unless `--force`.

use std::time::Duration;

use anyhow::bail;
use clap::{Args, Subcommand};
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use mutu_api::{MAINTENANCE_ANNOTATION, PloneSite};
use serde_json::json;

use super::{KubeArgs, Progress, condition, get, parse_timeout, poll};

#[derive(Args)]
pub struct MaintenanceArgs {
    #[command(flatten)]
    kube: KubeArgs,
    #[command(subcommand)]
    command: MaintenanceCommand,
}

#[derive(Subcommand)]
enum MaintenanceCommand {
    /// Put a PloneSite in maintenance: its servers stop and its visitors get the
    /// maintenance page (annotation hosting.imio.be/maintenance), until `maintenance off`.
    On(Switch),
    /// Take a PloneSite out of maintenance: its servers start again, and the maintenance
    /// page goes once it is Ready.
    Off {
        #[command(flatten)]
        switch: Switch,
        /// Also lift a maintenance that a mutu Restore, a MigrationPlan or a ReleaseRollout
        /// set (it would lift it itself when done).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Args)]
struct Switch {
    /// The PloneSite, as NS/SITE (or SITE with -n).
    site: String,
    /// Change the annotation and return at once, without waiting for the servers.
    #[arg(long)]
    no_wait: bool,
    /// How long to wait for the servers to stop (on) or the site to be Ready (off).
    #[arg(long, value_parser = parse_timeout, default_value = "5m")]
    timeout: Duration,
}

pub async fn run(args: MaintenanceArgs) -> anyhow::Result<()> {
    let kube = args.kube.connect().await?;
    let (on, switch, force) = match args.command {
        MaintenanceCommand::On(s) => (true, s, false),
        MaintenanceCommand::Off { switch, force } => (false, switch, force),
    };
    let (ns, name) = kube.target(&switch.site, "PloneSite")?;
    let api: Api<PloneSite> = Api::namespaced(kube.client.clone(), &ns);
    let site = get(&api, &ns, &name, "PloneSite").await?;
    let current = site.annotations().get(MAINTENANCE_ANNOTATION).cloned();
    let who = if on {
        mutu_portal::decision::whoami(&kube.client)
            .await
            .map(|u| format!("ops/{u}"))
            .unwrap_or_else(|_| "ops/kubectl-mutu".to_string())
    } else {
        String::new()
    };
    let change = match decide(on, current.as_deref(), force, &who) {
        Decision::Nothing(msg) => {
            println!("PloneSite {ns}/{name} {msg}");
            return Ok(());
        }
        Decision::Refuse(msg) => bail!("PloneSite {ns}/{name}: {msg}"),
        Decision::Set(value) => value,
    };
    // Over the version read: a Restore or plan that took the site meanwhile wins.
    let patch = json!({"metadata": {
        "resourceVersion": site.resource_version(),
        "annotations": {MAINTENANCE_ANNOTATION: change},
    }});
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => bail!(
            "PloneSite {ns}/{name} changed while this command read it (a Restore or a plan may have taken it): look again with `kubectl mutu site status {ns}/{name}`"
        ),
        Err(e) => bail!("cannot change the maintenance of PloneSite {ns}/{name}: {e}"),
    }
    match &change {
        Some(value) => {
            println!("PloneSite {ns}/{name}: maintenance on ({MAINTENANCE_ANNOTATION}={value})")
        }
        None => println!("PloneSite {ns}/{name}: maintenance off"),
    }
    if switch.no_wait {
        return Ok(());
    }
    let line = wait(&kube.client, &ns, &name, on, switch.timeout).await?;
    println!("PloneSite {ns}/{name}: {line}");
    Ok(())
}

/// What `on` or `off` does over the current value of the annotation.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to change: why.
    Nothing(String),
    /// Not changed: why, and what to add.
    Refuse(String),
    /// The new value of the annotation (`None`: removed).
    Set(Option<String>),
}

/// Who sets maintenance by themselves and lifts it when done.
fn set_by_mutu(value: &str) -> Option<&'static str> {
    let who = value.split('/').next().unwrap_or_default();
    match who {
        "restore" => Some("a mutu Restore"),
        "migration" => Some("a MigrationPlan"),
        "rollout" => Some("a ReleaseRollout"),
        _ => None,
    }
}

/// What to do for `on` (as `who`) or off, when the annotation is `current`.
pub fn decide(on: bool, current: Option<&str>, force: bool, who: &str) -> Decision {
    match (on, current) {
        (true, Some(v)) => Decision::Nothing(format!("is already in maintenance ({v})")),
        (true, None) => Decision::Set(Some(who.to_string())),
        (false, None) => Decision::Nothing("is not in maintenance".into()),
        (false, Some(v)) => match set_by_mutu(v) {
            Some(what) if !force => Decision::Refuse(format!(
                "the maintenance was set by {what} at work ({v}), which lifts it when done; add --force to lift it now anyway"
            )),
            _ => Decision::Set(None),
        },
    }
}

/// Waits until the servers of the site have stopped (on) or it is Ready again (off).
async fn wait(
    client: &Client,
    ns: &str,
    name: &str,
    on: bool,
    timeout: Duration,
) -> anyhow::Result<String> {
    let api: Api<PloneSite> = Api::namespaced(client.clone(), ns);
    let progress = Progress::default();
    let waiting = if on {
        format!(
            "the servers of PloneSite {ns}/{name} have not stopped (kubectl mutu site status {ns}/{name})"
        )
    } else {
        format!("PloneSite {ns}/{name} is not Ready (kubectl mutu site status {ns}/{name})")
    };
    poll(timeout, Duration::from_secs(1), &waiting, || {
        let (api, progress) = (api.clone(), &progress);
        async move {
            let site = api.get(name).await?;
            let status = site.status.unwrap_or_default();
            let ready = condition(&status.conditions, mutu_api::CONDITION_READY);
            let servers = status.ready_replicas.unwrap_or(0);
            let done = match ready {
                Some(c) if on => c.status == "False" && c.reason == "Maintenance" && servers == 0,
                Some(c) => c.status == "True",
                None => false,
            };
            if done {
                return Ok(Some(if on {
                    "in maintenance: servers stopped, visitors get the maintenance page".into()
                } else {
                    "Ready: serving again".into()
                }));
            }
            if let Some(c) = ready {
                progress.show(format!(
                    "Ready={} {}: {} ({servers} instances ready)",
                    c.status, c.reason, c.message
                ));
            }
            Ok(None)
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_and_off_respect_who_set_the_maintenance() {
        assert_eq!(
            decide(true, None, false, "ops/jdoe"),
            Decision::Set(Some("ops/jdoe".into()))
        );
        assert_eq!(
            decide(true, Some("restore/undo"), false, "ops/jdoe"),
            Decision::Nothing("is already in maintenance (restore/undo)".into())
        );
        assert_eq!(
            decide(false, None, false, ""),
            Decision::Nothing("is not in maintenance".into())
        );
        assert_eq!(
            decide(false, Some("ops/jdoe"), false, ""),
            Decision::Set(None)
        );
        for (value, what) in [
            ("restore/undo", "a mutu Restore"),
            ("migration/physical-to-frontend", "a MigrationPlan"),
            ("rollout/delib-4-3", "a ReleaseRollout"),
        ] {
            match decide(false, Some(value), false, "") {
                Decision::Refuse(msg) => {
                    assert!(msg.contains(what) && msg.contains("--force"), "{msg}")
                }
                other => panic!("{value}: {other:?}"),
            }
            assert_eq!(decide(false, Some(value), true, ""), Decision::Set(None));
        }
    }
}
