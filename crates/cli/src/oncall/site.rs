//! `kubectl mutu site status NS/NAME`: one PloneSite on one screen: its
//! conditions, what runs for it (workloads, pods and their nodes, the data
//! volume), its mutu Certificate with its expiry, its SolrIndex, its last mutu
//! Backups, what works on it now (a mutu Restore, a MigrationPlan or a
//! ReleaseRollout), and its recent Events.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use mutu_api::wave::{SiteProgress, SiteStep, WaveStatus};
use mutu_api::{
    Backup, Certificate, MigrationPlan, PloneSite, ReleaseRollout, Restore, RunStatus, SolrIndex,
};
use serde::Serialize;

use super::{
    ConditionLine, EventLine, KubeArgs, condition, conditions_table, events_table, get, is_true,
    list_all, relative, table,
};

#[derive(Args)]
pub struct SiteArgs {
    #[command(flatten)]
    kube: KubeArgs,
    #[command(subcommand)]
    command: SiteCommand,
}

#[derive(Subcommand)]
enum SiteCommand {
    /// One PloneSite on one screen: conditions, workloads, pods and nodes, data volume,
    /// mutu Certificate, SolrIndex, last mutu Backups, work in progress, recent Events.
    Status(StatusArgs),
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Args)]
struct StatusArgs {
    /// The PloneSite, as NS/NAME (or NAME with -n).
    site: String,
    /// `text` for a person, `json` for a machine (the same data).
    #[arg(long, short, value_enum, default_value = "text")]
    output: Output,
}

/// Backups listed, the newest first.
const BACKUPS_SHOWN: usize = 5;
/// Events listed, the newest last.
const EVENTS_SHOWN: usize = 15;

pub async fn run(args: SiteArgs) -> anyhow::Result<()> {
    let kube = args.kube.connect().await?;
    match args.command {
        SiteCommand::Status(a) => {
            let (ns, name) = kube.target(&a.site, "PloneSite")?;
            let snapshot = read(&kube.client, &ns, &name).await?;
            let view = view(&snapshot, Timestamp::now());
            match a.output {
                Output::Json => println!("{}", serde_json::to_string_pretty(&view)?),
                Output::Text => print!("{}", render(&view)),
            }
        }
    }
    Ok(())
}

/// What the screen is made of, as read from the cluster.
pub struct Snapshot {
    pub site: PloneSite,
    pub statefulsets: Vec<StatefulSet>,
    pub deployments: Vec<Deployment>,
    pub pods: Vec<Pod>,
    pub claims: Vec<PersistentVolumeClaim>,
    pub certificates: Vec<Certificate>,
    pub solr_indexes: Vec<SolrIndex>,
    /// The site's Backups and Restores (of every state).
    pub backups: Vec<Backup>,
    pub restores: Vec<Restore>,
    pub migrations: Vec<MigrationPlan>,
    pub rollouts: Vec<ReleaseRollout>,
    /// Events of the site and of what belongs to it.
    pub events: Vec<Event>,
}

impl Snapshot {
    /// The site alone, nothing read around it yet.
    pub fn of(site: PloneSite) -> Self {
        Snapshot {
            site,
            statefulsets: Vec::new(),
            deployments: Vec::new(),
            pods: Vec::new(),
            claims: Vec::new(),
            certificates: Vec::new(),
            solr_indexes: Vec::new(),
            backups: Vec::new(),
            restores: Vec::new(),
            migrations: Vec::new(),
            rollouts: Vec::new(),
            events: Vec::new(),
        }
    }
}

/// Reads the site `ns/name` and everything the screen shows.
pub async fn read(client: &Client, ns: &str, name: &str) -> anyhow::Result<Snapshot> {
    let site: PloneSite = get(&Api::namespaced(client.clone(), ns), ns, name, "PloneSite").await?;
    let labelled =
        ListParams::default().labels(&format!("{}={name}", mutu_api::common::SITE_LABEL));
    let (statefulsets, deployments, pods, claims, certificates, solr_indexes) = futures::try_join!(
        list_all(
            Api::<StatefulSet>::namespaced(client.clone(), ns),
            labelled.clone(),
            "StatefulSets"
        ),
        list_all(
            Api::<Deployment>::namespaced(client.clone(), ns),
            labelled.clone(),
            "Deployments"
        ),
        list_all(
            Api::<Pod>::namespaced(client.clone(), ns),
            labelled.clone(),
            "Pods"
        ),
        list_all(
            Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns),
            ListParams::default(),
            "PersistentVolumeClaims"
        ),
        list_all(
            Api::<Certificate>::namespaced(client.clone(), ns),
            labelled.clone(),
            "certificates.hosting.imio.be"
        ),
        list_all(
            Api::<SolrIndex>::namespaced(client.clone(), ns),
            ListParams::default(),
            "solrindexes.hosting.imio.be"
        ),
    )?;
    let (backups, restores, migrations, rollouts, replicasets, jobs) = futures::try_join!(
        list_all(
            Api::<Backup>::namespaced(client.clone(), ns),
            ListParams::default(),
            "backups.hosting.imio.be"
        ),
        list_all(
            Api::<Restore>::namespaced(client.clone(), ns),
            ListParams::default(),
            "restores.hosting.imio.be"
        ),
        list_all(
            Api::<MigrationPlan>::all(client.clone()),
            ListParams::default(),
            "migrationplans.hosting.imio.be"
        ),
        list_all(
            Api::<ReleaseRollout>::all(client.clone()),
            ListParams::default(),
            "releaserollouts.hosting.imio.be"
        ),
        list_all(
            Api::<ReplicaSet>::namespaced(client.clone(), ns),
            labelled.clone(),
            "ReplicaSets"
        ),
        list_all(Api::<Job>::namespaced(client.clone(), ns), labelled, "Jobs"),
    )?;
    let mut snapshot = Snapshot::of(site);
    snapshot.statefulsets = statefulsets;
    snapshot.deployments = deployments;
    snapshot.pods = pods;
    snapshot.certificates = certificates;
    snapshot.backups = backups
        .into_iter()
        .filter(|b| b.spec.site == name)
        .collect();
    snapshot.restores = restores
        .into_iter()
        .filter(|r| r.spec.site == name)
        .collect();
    snapshot.migrations = migrations;
    snapshot.rollouts = rollouts;
    let data = data_volume(&snapshot.site);
    snapshot.claims = claims
        .into_iter()
        .filter(|c| {
            c.labels()
                .get(mutu_api::common::SITE_LABEL)
                .map(String::as_str)
                == Some(name)
                || data.contains(&c.name_any())
        })
        .collect();
    snapshot.solr_indexes = solr_indexes
        .into_iter()
        .filter(|i| {
            i.labels()
                .get(mutu_api::common::SITE_LABEL)
                .map(String::as_str)
                == Some(name)
                || i.spec.site.as_deref().unwrap_or(&i.name_any()) == name
        })
        .collect();
    let mut names = owned_names(&snapshot);
    names.extend(replicasets.iter().map(|r| r.name_any()));
    names.extend(jobs.iter().map(|j| j.name_any()));
    snapshot.events = super::events_of(client, ns, &names, EVENTS_SHOWN)
        .await
        .context("cannot read the Events")?;
    Ok(snapshot)
}

/// The names of the claims that may hold the site's data: the one a
/// MigrationPlan named, a ZEO site's first claim, a generic product's claim.
fn data_volume(site: &PloneSite) -> Vec<String> {
    let name = site.name_any();
    let mut out: Vec<String> = site
        .annotations()
        .get(mutu_api::DATA_VOLUME_ANNOTATION)
        .cloned()
        .into_iter()
        .collect();
    out.push(mutu_model::names::zeo_data_claim(&name));
    out.push(mutu_model::names::generic_data_claim(&name));
    out
}

/// The names of the site and of what belongs to it, whose Events are shown.
fn owned_names(s: &Snapshot) -> BTreeSet<String> {
    let mut names = BTreeSet::from([s.site.name_any()]);
    names.extend(s.statefulsets.iter().map(|o| o.name_any()));
    names.extend(s.deployments.iter().map(|o| o.name_any()));
    names.extend(s.pods.iter().map(|o| o.name_any()));
    names.extend(s.claims.iter().map(|o| o.name_any()));
    names.extend(s.certificates.iter().map(|o| o.name_any()));
    names.extend(s.solr_indexes.iter().map(|o| o.name_any()));
    for b in &s.backups {
        names.insert(b.name_any());
        names.insert(format!("backup-{}", b.name_any()));
    }
    for r in &s.restores {
        names.insert(r.name_any());
        names.insert(format!("restore-{}", r.name_any()));
    }
    names
}

// ---------------------------------------------------------------------------------------------
// The view (pure)
// ---------------------------------------------------------------------------------------------

/// The screen's data: what `--output json` prints.
#[derive(Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SiteView {
    pub namespace: String,
    pub name: String,
    pub product: String,
    pub release: Option<String>,
    pub url: Option<String>,
    pub hostnames: Vec<String>,
    pub pool: Option<String>,
    pub nodes: Vec<String>,
    pub ready_replicas: Option<i32>,
    /// Who holds the site (`hosting.imio.be/held-by`).
    pub held_by: Option<String>,
    /// Who stopped its servers (`hosting.imio.be/maintenance`).
    pub maintenance: Option<String>,
    /// Who sent its visitors to the maintenance page (`hosting.imio.be/offline`).
    pub offline: Option<String>,
    pub last_backup: Option<String>,
    pub conditions: Vec<ConditionLine>,
    pub workloads: Vec<Workload>,
    pub pods: Vec<PodLine>,
    pub volumes: Vec<Volume>,
    pub certificates: Vec<CertificateLine>,
    pub solr_indexes: Vec<IndexLine>,
    /// The newest first.
    pub backups: Vec<RunLine>,
    pub in_progress: Vec<Work>,
    /// The newest last.
    pub events: Vec<EventLine>,
    pub generated_at: String,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    pub kind: String,
    pub name: String,
    pub ready: i32,
    pub desired: i32,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodLine {
    pub name: String,
    pub component: String,
    /// The phase, or why a container waits or ended (e.g. CrashLoopBackOff).
    pub state: String,
    pub ready: String,
    pub node: Option<String>,
    pub restarts: i32,
    pub created: Option<String>,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    pub phase: String,
    pub capacity: Option<String>,
    /// The claim the site's data is on.
    pub data: bool,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CertificateLine {
    pub name: String,
    pub ready: String,
    pub reason: String,
    pub not_after: Option<String>,
    pub renewal_time: Option<String>,
    pub issuer: String,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IndexLine {
    pub name: String,
    pub ready: String,
    pub reason: String,
    pub alias: Option<String>,
    pub collection: Option<String>,
    pub documents: Option<i64>,
}

/// A mutu Backup or Restore.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunLine {
    pub name: String,
    pub trigger: Option<String>,
    /// `Complete`, `Failed`, or the `Progressing` reason.
    pub state: String,
    pub message: String,
    pub created: Option<String>,
    pub finished: Option<String>,
    pub size: Option<i64>,
}

/// Something that works on the site now.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Work {
    /// `Restore`, `MigrationPlan` or `ReleaseRollout`.
    pub kind: String,
    pub name: String,
    pub state: String,
    pub message: String,
    pub since: Option<String>,
}

/// `Complete`, `Failed`, or where a run stands (its `Progressing` reason).
pub fn run_state(status: Option<&RunStatus>) -> (String, String) {
    let conds = status.map(|s| s.conditions.as_slice()).unwrap_or_default();
    if is_true(conds, mutu_api::CONDITION_COMPLETE) {
        let msg = condition(conds, mutu_api::CONDITION_COMPLETE)
            .map(|c| c.message.clone())
            .unwrap_or_default();
        return ("Complete".into(), msg);
    }
    if let Some(c) = condition(conds, mutu_api::CONDITION_FAILED).filter(|c| c.status == "True") {
        return ("Failed".into(), format!("{}: {}", c.reason, c.message));
    }
    match condition(conds, mutu_api::CONDITION_PROGRESSING) {
        Some(c) => (c.reason.clone(), c.message.clone()),
        None => ("Pending".into(), String::new()),
    }
}

/// Whether a run is over (complete or failed).
pub fn finished(status: Option<&RunStatus>) -> bool {
    let conds = status.map(|s| s.conditions.as_slice()).unwrap_or_default();
    is_true(conds, mutu_api::CONDITION_COMPLETE) || is_true(conds, mutu_api::CONDITION_FAILED)
}

fn created<K: kube::Resource>(o: &K) -> Option<String> {
    o.meta()
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
}

fn ready_of(
    conds: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> (String, String) {
    match condition(conds, mutu_api::CONDITION_READY) {
        Some(c) => (c.status.clone(), c.reason.clone()),
        None => ("Unknown".into(), String::new()),
    }
}

fn pod_line(p: &Pod) -> PodLine {
    let status = p.status.clone().unwrap_or_default();
    let containers = status.container_statuses.clone().unwrap_or_default();
    let total = p.spec.as_ref().map(|s| s.containers.len()).unwrap_or(0);
    let ready = containers.iter().filter(|c| c.ready).count();
    let restarts = containers.iter().map(|c| c.restart_count).sum();
    let trouble = containers.iter().find_map(|c| {
        let state = c.state.as_ref()?;
        state
            .waiting
            .as_ref()
            .and_then(|w| w.reason.clone())
            .or_else(|| {
                state
                    .terminated
                    .as_ref()
                    .filter(|t| t.exit_code != 0)
                    .and_then(|t| t.reason.clone())
            })
    });
    let mut state = trouble.unwrap_or_else(|| status.phase.clone().unwrap_or("Unknown".into()));
    if p.metadata.deletion_timestamp.is_some() {
        state = "Terminating".into();
    }
    PodLine {
        name: p.name_any(),
        component: p
            .labels()
            .get(mutu_api::COMPONENT)
            .cloned()
            .unwrap_or_default(),
        state,
        ready: format!("{ready}/{total}"),
        node: p.spec.as_ref().and_then(|s| s.node_name.clone()),
        restarts,
        created: created(p),
    }
}

/// Where the site stands in a plan's status, when it is in flight there.
fn in_flight<'a>(status: Option<&'a WaveStatus>, ns: &str, name: &str) -> Option<&'a SiteProgress> {
    status?.site_progress.iter().find(|p| {
        p.namespace == ns
            && p.name == name
            && !matches!(
                p.step,
                SiteStep::Pending | SiteStep::Done | SiteStep::Failed
            )
    })
}

fn step_name(step: SiteStep) -> String {
    serde_json::to_value(step)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| format!("{step:?}"))
}

/// The screen's data from what was read, at `now`.
pub fn view(s: &Snapshot, now: Timestamp) -> SiteView {
    let site = &s.site;
    let ns = site.namespace().unwrap_or_default();
    let name = site.name_any();
    let status = site.status.clone().unwrap_or_default();
    let annotation = |k: &str| site.annotations().get(k).cloned();
    let data = data_volume(site);
    // The claim in use: the one named by the plan, else the first that exists.
    let in_use = data
        .iter()
        .find(|d| s.claims.iter().any(|c| &c.name_any() == *d))
        .cloned();

    let mut workloads: Vec<Workload> = s
        .statefulsets
        .iter()
        .map(|o| Workload {
            kind: "StatefulSet".into(),
            name: o.name_any(),
            ready: o
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0),
            desired: o.spec.replicas.unwrap_or(1),
        })
        .collect();
    workloads.extend(s.deployments.iter().map(|o| {
        Workload {
            kind: "Deployment".into(),
            name: o.name_any(),
            ready: o
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0),
            desired: o.spec.replicas.unwrap_or(1),
        }
    }));

    let mut pods: Vec<PodLine> = s.pods.iter().map(pod_line).collect();
    // The servers first, then the Jobs' pods.
    let rank = |p: &PodLine| match p.component.as_str() {
        "zeo" => 0,
        "instance" => 1,
        _ => 2,
    };
    pods.sort_by(|a, b| (rank(a), &a.component, &a.name).cmp(&(rank(b), &b.component, &b.name)));

    let mut volumes: Vec<Volume> = s
        .claims
        .iter()
        .map(|c| Volume {
            name: c.name_any(),
            phase: c
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or("Pending".into()),
            capacity: c
                .status
                .as_ref()
                .and_then(|s| s.capacity.as_ref())
                .and_then(|c| c.get("storage"))
                .map(|q| q.0.clone()),
            data: in_use.as_deref() == Some(c.name_any().as_str()),
        })
        .collect();
    volumes.sort_by(|a, b| (!a.data, &a.name).cmp(&(!b.data, &b.name)));

    let certificates = s
        .certificates
        .iter()
        .map(|c| {
            let st = c.status.clone().unwrap_or_default();
            let (ready, reason) = ready_of(&st.conditions);
            CertificateLine {
                name: c.name_any(),
                ready,
                reason,
                not_after: st.not_after.map(|t| t.0.to_string()),
                renewal_time: st.renewal_time.map(|t| t.0.to_string()),
                issuer: c.spec.issuer_ref.name.clone(),
            }
        })
        .collect();
    let solr_indexes = s
        .solr_indexes
        .iter()
        .map(|i| {
            let st = i.status.clone().unwrap_or_default();
            let (ready, reason) = ready_of(&st.conditions);
            IndexLine {
                name: i.name_any(),
                ready,
                reason,
                alias: st.alias,
                collection: st.collection,
                documents: st.documents,
            }
        })
        .collect();

    let mut backups: Vec<&Backup> = s.backups.iter().collect();
    backups.sort_by_key(|b| std::cmp::Reverse(b.metadata.creation_timestamp.clone()));
    let backups = backups
        .into_iter()
        .take(BACKUPS_SHOWN)
        .map(|b| {
            let (state, message) = run_state(b.status.as_ref());
            RunLine {
                name: b.name_any(),
                trigger: Some(format!("{:?}", b.spec.trigger)),
                state,
                message,
                created: created(b),
                finished: b
                    .status
                    .as_ref()
                    .and_then(|s| s.completion_time.as_ref())
                    .map(|t| t.0.to_string()),
                size: b.status.as_ref().and_then(|s| s.size),
            }
        })
        .collect();

    let mut in_progress: Vec<Work> = s
        .restores
        .iter()
        .filter(|r| !finished(r.status.as_ref()))
        .map(|r| {
            let (state, message) = run_state(r.status.as_ref());
            Work {
                kind: "Restore".into(),
                name: r.name_any(),
                state,
                message: if message.is_empty() {
                    format!("from mutu Backup {}", r.spec.backup)
                } else {
                    format!("from mutu Backup {}; {message}", r.spec.backup)
                },
                since: created(r),
            }
        })
        .collect();
    let plans = s
        .migrations
        .iter()
        .map(|p| ("MigrationPlan", p.name_any(), p.status.as_ref()))
        .chain(
            s.rollouts
                .iter()
                .map(|p| ("ReleaseRollout", p.name_any(), p.status.as_ref())),
        );
    for (kind, plan, status) in plans {
        if let Some(p) = in_flight(status, &ns, &name) {
            in_progress.push(Work {
                kind: kind.into(),
                name: plan,
                state: step_name(p.step),
                message: format!(
                    "wave {}{}",
                    p.wave,
                    p.reason
                        .as_ref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
                since: p.since.as_ref().map(|t| t.0.to_string()),
            });
        }
    }

    SiteView {
        namespace: ns,
        name,
        product: site.spec.product.clone(),
        release: status.release.clone(),
        url: status.url.clone(),
        hostnames: site.spec.hostnames.clone(),
        pool: status.pool.clone(),
        nodes: status.nodes.clone(),
        ready_replicas: status.ready_replicas,
        held_by: annotation(mutu_api::HELD_BY_ANNOTATION).or(status.held_by.clone()),
        maintenance: annotation(mutu_api::MAINTENANCE_ANNOTATION),
        offline: annotation(mutu_api::OFFLINE_ANNOTATION),
        last_backup: status.last_backup.as_ref().map(|t| t.0.to_string()),
        conditions: status
            .conditions
            .iter()
            .map(ConditionLine::from_condition)
            .collect(),
        workloads,
        pods,
        volumes,
        certificates,
        solr_indexes,
        backups,
        in_progress,
        events: s.events.iter().map(EventLine::from_event).collect(),
        generated_at: now.to_string(),
    }
}

/// The screen as text.
pub fn render(v: &SiteView) -> String {
    let now: Timestamp = v.generated_at.parse().unwrap_or(Timestamp::UNIX_EPOCH);
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    let list = |l: &[String]| {
        if l.is_empty() {
            "-".to_string()
        } else {
            l.join(", ")
        }
    };
    let mut out = String::new();
    let ready = v
        .conditions
        .iter()
        .find(|c| c.type_ == mutu_api::CONDITION_READY);
    let _ = writeln!(
        out,
        "PloneSite {}/{}: {}",
        v.namespace,
        v.name,
        match ready {
            Some(c) if c.status == "True" => "Ready".to_string(),
            Some(c) => format!("not Ready ({}), {}", c.reason, relative(now, &c.since)),
            None => "no status yet".to_string(),
        }
    );
    let _ = writeln!(
        out,
        "  product {}, release {}, url {}",
        v.product,
        opt(&v.release),
        opt(&v.url)
    );
    let _ = writeln!(out, "  hostnames {}", list(&v.hostnames));
    let _ = writeln!(
        out,
        "  pool {}, nodes {}, ready instances {}",
        opt(&v.pool),
        list(&v.nodes),
        v.ready_replicas
            .map(|r| r.to_string())
            .unwrap_or("-".into())
    );
    let _ = writeln!(
        out,
        "  held by {}, maintenance {}, offline {}",
        opt(&v.held_by),
        opt(&v.maintenance),
        opt(&v.offline)
    );
    let _ = writeln!(
        out,
        "  last successful backup {}",
        v.last_backup
            .as_deref()
            .map(|t| format!("{t} ({})", relative(now, t)))
            .unwrap_or("never".into())
    );

    out.push_str("\nConditions\n");
    conditions_table(&mut out, now, &v.conditions);

    out.push_str("\nWorkloads\n");
    if v.workloads.is_empty() {
        out.push_str("  (none)\n");
    } else {
        let rows: Vec<Vec<String>> = v
            .workloads
            .iter()
            .map(|w| {
                vec![
                    w.kind.clone(),
                    w.name.clone(),
                    format!("{}/{}", w.ready, w.desired),
                ]
            })
            .collect();
        table(&mut out, &["KIND", "NAME", "READY"], &rows);
    }

    out.push_str("\nPods\n");
    if v.pods.is_empty() {
        out.push_str("  (none)\n");
    } else {
        let rows: Vec<Vec<String>> = v
            .pods
            .iter()
            .map(|p| {
                vec![
                    p.name.clone(),
                    p.component.clone(),
                    p.state.clone(),
                    p.ready.clone(),
                    opt(&p.node),
                    p.restarts.to_string(),
                    super::age(now, p.created.as_deref()),
                ]
            })
            .collect();
        table(
            &mut out,
            &[
                "NAME",
                "COMPONENT",
                "STATE",
                "READY",
                "NODE",
                "RESTARTS",
                "AGE",
            ],
            &rows,
        );
    }

    out.push_str("\nVolumes (PersistentVolumeClaims)\n");
    if v.volumes.is_empty() {
        out.push_str("  (none)\n");
    } else {
        let rows: Vec<Vec<String>> = v
            .volumes
            .iter()
            .map(|c| {
                vec![
                    c.name.clone(),
                    c.phase.clone(),
                    opt(&c.capacity),
                    if c.data { "data volume" } else { "" }.into(),
                ]
            })
            .collect();
        table(&mut out, &["NAME", "PHASE", "SIZE", ""], &rows);
    }

    out.push_str("\nmutu Certificate (certificates.hosting.imio.be)\n");
    if v.certificates.is_empty() {
        out.push_str("  (none)\n");
    } else {
        let rows: Vec<Vec<String>> = v
            .certificates
            .iter()
            .map(|c| {
                vec![
                    c.name.clone(),
                    c.ready.clone(),
                    c.reason.clone(),
                    c.not_after
                        .as_deref()
                        .map(|t| format!("{t} ({})", relative(now, t)))
                        .unwrap_or("-".into()),
                    c.renewal_time
                        .as_deref()
                        .map(|t| relative(now, t))
                        .unwrap_or("-".into()),
                    c.issuer.clone(),
                ]
            })
            .collect();
        table(
            &mut out,
            &["NAME", "READY", "REASON", "EXPIRES", "RENEWAL", "ISSUER"],
            &rows,
        );
    }

    out.push_str("\nSolrIndex\n");
    if v.solr_indexes.is_empty() {
        out.push_str("  (none)\n");
    } else {
        let rows: Vec<Vec<String>> = v
            .solr_indexes
            .iter()
            .map(|i| {
                vec![
                    i.name.clone(),
                    i.ready.clone(),
                    i.reason.clone(),
                    opt(&i.alias),
                    opt(&i.collection),
                    i.documents.map(|d| d.to_string()).unwrap_or("-".into()),
                ]
            })
            .collect();
        table(
            &mut out,
            &[
                "NAME",
                "READY",
                "REASON",
                "ALIAS",
                "COLLECTION",
                "DOCUMENTS",
            ],
            &rows,
        );
    }

    out.push_str("\nLast mutu Backups (backups.hosting.imio.be, newest first)\n");
    if v.backups.is_empty() {
        out.push_str("  (none)\n");
    } else {
        let rows: Vec<Vec<String>> = v
            .backups
            .iter()
            .map(|b| {
                vec![
                    b.name.clone(),
                    opt(&b.trigger),
                    b.state.clone(),
                    super::age(now, b.created.as_deref()),
                    b.size.map(human_bytes).unwrap_or("-".into()),
                    if b.state == "Complete" {
                        String::new()
                    } else {
                        b.message.clone()
                    },
                ]
            })
            .collect();
        table(
            &mut out,
            &["NAME", "TRIGGER", "STATE", "AGE", "SIZE", "MESSAGE"],
            &rows,
        );
    }

    out.push_str("\nIn progress (mutu Restores, MigrationPlans, ReleaseRollouts)\n");
    if v.in_progress.is_empty() {
        out.push_str("  (nothing)\n");
    } else {
        let rows: Vec<Vec<String>> = v
            .in_progress
            .iter()
            .map(|w| {
                vec![
                    format!("{}/{}", w.kind, w.name),
                    w.state.clone(),
                    super::age(now, w.since.as_deref()),
                    w.message.clone(),
                ]
            })
            .collect();
        table(&mut out, &["WHAT", "STATE", "SINCE", "MESSAGE"], &rows);
    }

    out.push_str("\nRecent Events (newest last)\n");
    events_table(&mut out, now, &v.events);
    out
}

/// Bytes as a person reads them: `512 B`, `1.5 MiB`.
pub fn human_bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml<T: serde::de::DeserializeOwned>(text: &str) -> T {
        serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// A site in the middle of a migration, with one pod waiting, a certificate, an index,
    /// backups and a restore queued behind the plan.
    fn snapshot() -> Snapshot {
        Snapshot {
            site: yaml(
                r#"
apiVersion: hosting.imio.be/v1alpha1
kind: PloneSite
metadata:
  name: delib
  namespace: tenant-mons
  annotations:
    hosting.imio.be/held-by: migration/physical-to-frontend
    hosting.imio.be/data-volume: data-delib-zeo-1a2b
spec:
  product: delib
  hostnames: [deliberations.mons.be]
status:
  url: https://deliberations.mons.be
  release: "4.2.19"
  pool: physical
  nodes: [physical-1]
  readyReplicas: 1
  lastBackup: "2026-12-07T03:00:00Z"
  conditions:
  - {type: Ready, status: "False", reason: Offline, message: visitors get the maintenance page, lastTransitionTime: "2026-12-07T11:55:00Z"}
"#,
            ),
            statefulsets: vec![yaml(
                "metadata: {name: delib-zeo}\nspec: {replicas: 1, serviceName: delib-zeo, selector: {}, template: {}}\nstatus: {replicas: 1, readyReplicas: 1}\n",
            )],
            deployments: vec![yaml(
                "metadata: {name: delib}\nspec: {replicas: 2, selector: {}, template: {}}\nstatus: {readyReplicas: 1}\n",
            )],
            pods: vec![
                yaml(
                    r#"
metadata: {name: delib-zeo-0, labels: {app.kubernetes.io/component: zeo}, creationTimestamp: "2026-12-07T10:00:00Z"}
spec: {nodeName: physical-1, containers: [{name: zeo}]}
status: {phase: Running, containerStatuses: [{name: zeo, ready: true, restartCount: 0, image: i, imageID: i}]}
"#,
                ),
                yaml(
                    r#"
metadata: {name: delib-6f7-abcde, labels: {app.kubernetes.io/component: instance}, creationTimestamp: "2026-12-07T11:50:00Z"}
spec: {nodeName: physical-1, containers: [{name: instance}]}
status: {phase: Pending, containerStatuses: [{name: instance, ready: false, restartCount: 3, image: i, imageID: i, state: {waiting: {reason: CrashLoopBackOff}}}]}
"#,
                ),
            ],
            claims: vec![
                yaml(
                    "metadata: {name: data-delib-zeo-0}\nstatus: {phase: Bound, capacity: {storage: 1Gi}}\n",
                ),
                yaml(
                    "metadata: {name: data-delib-zeo-1a2b}\nstatus: {phase: Bound, capacity: {storage: 2Gi}}\n",
                ),
            ],
            certificates: vec![yaml(
                r#"
apiVersion: hosting.imio.be/v1alpha1
kind: Certificate
metadata: {name: delib-tls}
spec: {dnsNames: [deliberations.mons.be], secretName: delib-tls, issuerRef: {name: letsencrypt}}
status:
  notAfter: "2027-03-07T12:00:00Z"
  renewalTime: "2027-02-05T12:00:00Z"
  conditions:
  - {type: Ready, status: "True", reason: Issued, message: ok, lastTransitionTime: "2026-12-07T10:00:00Z"}
"#,
            )],
            solr_indexes: vec![yaml(
                r#"
apiVersion: hosting.imio.be/v1alpha1
kind: SolrIndex
metadata: {name: delib}
spec: {}
status:
  alias: tenant-mons-delib
  collection: tenant-mons-delib-v1
  documents: 1234
  conditions:
  - {type: Ready, status: "True", reason: Ready, message: ok, lastTransitionTime: "2026-12-07T10:00:00Z"}
"#,
            )],
            backups: vec![
                yaml(
                    r#"
apiVersion: hosting.imio.be/v1alpha1
kind: Backup
metadata: {name: delib-20261206, creationTimestamp: "2026-12-06T03:00:00Z"}
spec: {site: delib, trigger: Scheduled}
status:
  size: 1572864
  completionTime: "2026-12-06T03:05:00Z"
  conditions:
  - {type: Complete, status: "True", reason: Succeeded, message: done, lastTransitionTime: "2026-12-06T03:05:00Z"}
"#,
                ),
                yaml(
                    r#"
apiVersion: hosting.imio.be/v1alpha1
kind: Backup
metadata: {name: physical-to-frontend-delib-pre, creationTimestamp: "2026-12-07T11:50:00Z"}
spec: {site: delib, trigger: Migration}
status:
  conditions:
  - {type: Failed, status: "True", reason: JobFailed, message: the Job failed, lastTransitionTime: "2026-12-07T11:52:00Z"}
"#,
                ),
            ],
            restores: vec![yaml(
                r#"
apiVersion: hosting.imio.be/v1alpha1
kind: Restore
metadata: {name: undo, creationTimestamp: "2026-12-07T11:58:00Z"}
spec: {site: delib, backup: delib-20261206, confirm: delib}
status:
  conditions:
  - {type: Progressing, status: "True", reason: WaitingForSite, message: the site is held by migration/physical-to-frontend, lastTransitionTime: "2026-12-07T11:58:00Z"}
"#,
            )],
            migrations: vec![yaml(
                r#"
apiVersion: hosting.imio.be/v1alpha1
kind: MigrationPlan
metadata: {name: physical-to-frontend}
spec: {from: physical, to: frontend, waveSize: 10}
status:
  sites: {total: 2, inFlight: 1, done: 1}
  siteProgress:
  - {name: delib, namespace: tenant-mons, wave: 1, step: Moving, since: "2026-12-07T11:56:00Z", reason: servers starting}
  - {name: delib, namespace: tenant-other, wave: 1, step: Done}
"#,
            )],
            rollouts: Vec::new(),
            events: vec![yaml(
                r#"
metadata: {name: e1}
involvedObject: {kind: Pod, name: delib-6f7-abcde}
type: Warning
reason: BackOff
message: Back-off restarting failed container
count: 4
lastTimestamp: "2026-12-07T11:59:00Z"
"#,
            )],
        }
    }

    fn now() -> Timestamp {
        "2026-12-07T12:00:00Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn the_view_gathers_the_sites_state() {
        let v = view(&snapshot(), now());
        assert_eq!(
            (v.namespace.as_str(), v.name.as_str()),
            ("tenant-mons", "delib")
        );
        assert_eq!(v.held_by.as_deref(), Some("migration/physical-to-frontend"));
        assert_eq!(v.maintenance, None);
        // The data volume is the one the plan named, listed first.
        assert_eq!(v.volumes[0].name, "data-delib-zeo-1a2b");
        assert!(v.volumes[0].data && !v.volumes[1].data);
        // A waiting container shows why.
        let instance = v.pods.iter().find(|p| p.component == "instance");
        assert_eq!(instance.map(|p| p.state.as_str()), Some("CrashLoopBackOff"));
        assert_eq!(instance.map(|p| p.restarts), Some(3));
        // Backups newest first, a failed one with its reason.
        assert_eq!(v.backups[0].name, "physical-to-frontend-delib-pre");
        assert_eq!(v.backups[0].state, "Failed");
        assert!(v.backups[0].message.contains("JobFailed"));
        assert_eq!(v.backups[1].state, "Complete");
        // The restore waiting and the plan moving it; not the other site of the plan.
        let work: Vec<(&str, &str)> = v
            .in_progress
            .iter()
            .map(|w| (w.kind.as_str(), w.state.as_str()))
            .collect();
        assert_eq!(
            work,
            vec![("Restore", "WaitingForSite"), ("MigrationPlan", "Moving")]
        );
        assert_eq!(v.events.len(), 1);
        assert_eq!(
            v.workloads
                .iter()
                .map(|w| (w.kind.as_str(), w.ready, w.desired))
                .collect::<Vec<_>>(),
            vec![("StatefulSet", 1, 1), ("Deployment", 1, 2)]
        );
    }

    #[test]
    fn the_screen_shows_every_part() {
        let text = render(&view(&snapshot(), now()));
        for expected in [
            "PloneSite tenant-mons/delib: not Ready (Offline), 5m ago",
            "product delib, release 4.2.19, url https://deliberations.mons.be",
            "pool physical, nodes physical-1, ready instances 1",
            "held by migration/physical-to-frontend, maintenance -, offline -",
            "last successful backup 2026-12-07T03:00:00Z (9h ago)",
            "Ready  False   Offline  5m   visitors get the maintenance page",
            "Deployment   delib      1/2",
            "delib-6f7-abcde  instance   CrashLoopBackOff  0/1    physical-1  3         10m",
            "data-delib-zeo-1a2b  Bound  2Gi   data volume",
            "mutu Certificate (certificates.hosting.imio.be)",
            "delib-tls  True   Issued  2027-03-07T12:00:00Z (in 90d)  in 60d   letsencrypt",
            "delib  True   Ready   tenant-mons-delib  tenant-mons-delib-v1  1234",
            "delib-20261206                  Scheduled  Complete  33h  1.5 MiB",
            "Restore/undo                        WaitingForSite",
            "MigrationPlan/physical-to-frontend  Moving          4m     wave 1: servers starting",
            "Warning  BackOff  Pod/delib-6f7-abcde  Back-off restarting failed container (x4)",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }

    #[test]
    fn a_site_without_anything_yet_still_renders() {
        let s = Snapshot::of(yaml(
            "apiVersion: hosting.imio.be/v1alpha1\nkind: PloneSite\nmetadata: {name: web, namespace: tenant-ans}\nspec: {product: web, hostnames: [www.ans.be]}\n",
        ));
        let text = render(&view(&s, now()));
        assert!(
            text.starts_with("PloneSite tenant-ans/web: no status yet\n"),
            "{text}"
        );
        assert!(text.contains("last successful backup never"));
        assert!(text.contains("(none yet)") && text.contains("(nothing)"));
        let json = serde_json::to_value(view(&s, now())).unwrap_or_default();
        assert_eq!(json["name"], "web");
        assert!(json["pods"].as_array().is_some_and(|p| p.is_empty()));
    }

    #[test]
    fn sizes_read_as_a_person_reads_them() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1_572_864), "1.5 MiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
