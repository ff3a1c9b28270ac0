//! `kubectl mutu report [-o FILE]`: a support bundle (`.tar.gz`) of the
//! cluster's mutu state for whoever helps the on-call engineer: the fleet
//! summary (`mutu fleet status`), every mutu object that is not Ready (or
//! failed, or not finished) with its conditions and Events, the logs of the
//! last hour of mutu's operator pods (found by label; the bundle says so when
//! there is none, as when the operator runs outside the cluster), and the
//! versions (API server, this mutu, mutu's CRDs in the cluster and whether
//! they are this mutu's).
//!
//! No Secret is ever read, and no Secret can end up in the bundle: every
//! object goes through [`scrub`], which drops anything of kind Secret (and
//! `managedFields` and `last-applied-configuration`) before it is written.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, LogParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use super::{EventLine, KubeArgs, list_all, parse_timeout};
use crate::fleet::status::{Fleet, render as render_fleet, summarize};

/// Labels of the operator's pods that the Helm chart installs.
pub const OPERATOR_SELECTOR: &str =
    "app.kubernetes.io/name=mutu,app.kubernetes.io/component=operator";
/// Events kept per object.
const EVENTS_PER_OBJECT: usize = 20;

#[derive(Args)]
pub struct ReportArgs {
    #[command(flatten)]
    kube: KubeArgs,
    /// Where to write the bundle (default: mutu-report-YYYYMMDD-HHMMSS.tar.gz here).
    #[arg(long, short, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    output: Option<PathBuf>,
    /// How far back the operator's logs go.
    #[arg(long, value_parser = parse_timeout, default_value = "1h")]
    since: Duration,
    /// Label selector of the operator's pods (in every namespace).
    #[arg(long, value_name = "SELECTOR", default_value = OPERATOR_SELECTOR)]
    operator_selector: String,
}

pub async fn run(args: ReportArgs) -> anyhow::Result<()> {
    let kube = args.kube.connect().await?;
    let now = Timestamp::now();
    let stamp = now.strftime("%Y%m%d-%H%M%S").to_string();
    let path = args
        .output
        .unwrap_or_else(|| PathBuf::from(format!("mutu-report-{stamp}.tar.gz")));
    eprintln!("gathering the report…");
    let input = gather(&kube.client, &args.operator_selector, args.since, now).await;
    let bundle = assemble(&input, &format!("mutu-report-{stamp}"));
    let bytes = bundle.to_tar_gz().context("cannot pack the report")?;
    std::fs::write(&path, &bytes).with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "wrote {} ({} files, {} bytes): {} mutu objects not Ready, {} operator log(s){}",
        path.display(),
        bundle.files.len(),
        bytes.len(),
        input.not_ready.len(),
        input.logs.len(),
        if input.errors.is_empty() {
            String::new()
        } else {
            format!(
                ", {} part(s) could not be read (see errors.txt)",
                input.errors.len()
            )
        }
    );
    Ok(())
}

/// What the report is made of, as read from the cluster.
#[derive(Default)]
pub struct Input {
    pub generated_at: String,
    pub versions: Value,
    /// `mutu fleet status` as text and JSON.
    pub fleet_text: Option<String>,
    pub fleet_json: Option<Value>,
    /// mutu objects that need a look (JSON, as read), with why.
    pub not_ready: Vec<(Value, String)>,
    /// Events by (namespace, kind, name) of their object.
    pub events: BTreeMap<(String, String, String), Vec<EventLine>>,
    /// Operator logs: (namespace/pod/container, text).
    pub logs: Vec<(String, String)>,
    /// What was looked for when no operator pod was found.
    pub no_operator: Option<String>,
    /// Parts that could not be read.
    pub errors: Vec<String>,
}

/// Reads everything; a part that cannot be read is recorded in `errors`.
async fn gather(client: &Client, selector: &str, since: Duration, now: Timestamp) -> Input {
    let mut input = Input {
        generated_at: now.to_string(),
        ..Default::default()
    };
    input.versions = versions(client, &mut input.errors).await;
    match fleet(client).await {
        Ok(fleet) => {
            let summary = summarize(&fleet, now);
            input.fleet_text = Some(render_fleet(&summary));
            input.fleet_json = serde_json::to_value(&summary).ok();
        }
        Err(e) => input.errors.push(format!("fleet summary: {e:#}")),
    }
    for crd in mutu_api::crds() {
        let Some(version) = crd.spec.versions.iter().find(|v| v.storage) else {
            continue;
        };
        let ar = ApiResource {
            group: crd.spec.group.clone(),
            version: version.name.clone(),
            api_version: format!("{}/{}", crd.spec.group, version.name),
            kind: crd.spec.names.kind.clone(),
            plural: crd.spec.names.plural.clone(),
        };
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        match list_all(api, ListParams::default(), &format!("{}s", ar.kind)).await {
            Ok(objects) => {
                for o in objects {
                    let mut value = serde_json::to_value(&o).unwrap_or(Value::Null);
                    value["apiVersion"] = json!(ar.api_version);
                    value["kind"] = json!(ar.kind);
                    if let Some(why) = needs_a_look(&value) {
                        input.not_ready.push((value, why));
                    }
                }
            }
            Err(e) => input
                .errors
                .push(format!("{}: {e:#}", crd.spec.names.plural)),
        }
    }
    match list_all(
        Api::<Event>::all(client.clone()),
        ListParams::default(),
        "Events",
    )
    .await
    {
        Ok(events) => {
            let mut by_object: BTreeMap<(String, String, String), Vec<Event>> = BTreeMap::new();
            for e in events {
                let o = &e.involved_object;
                let key = (
                    o.namespace.clone().unwrap_or_default(),
                    o.kind.clone().unwrap_or_default(),
                    o.name.clone().unwrap_or_default(),
                );
                by_object.entry(key).or_default().push(e);
            }
            for (value, _) in &input.not_ready {
                let key = object_key(value);
                if let Some(events) = by_object.remove(&key) {
                    let mut events = events;
                    events.sort_by_key(super::event_time);
                    let skip = events.len().saturating_sub(EVENTS_PER_OBJECT);
                    input.events.insert(
                        key,
                        events
                            .iter()
                            .skip(skip)
                            .map(EventLine::from_event)
                            .collect(),
                    );
                }
            }
        }
        Err(e) => input.errors.push(format!("Events: {e:#}")),
    }
    operator_logs(client, selector, since, &mut input).await;
    input
}

/// The fleet as `mutu fleet status` reads it.
async fn fleet(client: &Client) -> anyhow::Result<Fleet> {
    let p = ListParams::default;
    let (products, tenants, sites, certificates, migrations, rollouts) = futures::try_join!(
        list_all(Api::all(client.clone()), p(), "products.hosting.imio.be"),
        list_all(
            Api::all(client.clone()),
            p(),
            "membertenants.hosting.imio.be"
        ),
        list_all(Api::all(client.clone()), p(), "plonesites.hosting.imio.be"),
        list_all(
            Api::all(client.clone()),
            p(),
            "certificates.hosting.imio.be"
        ),
        list_all(
            Api::all(client.clone()),
            p(),
            "migrationplans.hosting.imio.be"
        ),
        list_all(
            Api::all(client.clone()),
            p(),
            "releaserollouts.hosting.imio.be"
        ),
    )?;
    Ok(Fleet {
        products,
        tenants,
        sites,
        certificates,
        migrations,
        rollouts,
    })
}

/// The API server's version, this mutu's, and mutu's CRDs in the cluster.
async fn versions(client: &Client, errors: &mut Vec<String>) -> Value {
    let server = match client.apiserver_version().await {
        Ok(info) => json!({"gitVersion": info.git_version, "platform": info.platform}),
        Err(e) => {
            errors.push(format!("API server version: {e}"));
            Value::Null
        }
    };
    let mut crds = Vec::new();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for ours in mutu_api::crds() {
        let name = ours.name_any();
        match api.get_opt(&name).await {
            Ok(Some(theirs)) => crds.push(crd_version(&ours, &theirs)),
            Ok(None) => crds.push(json!({"name": name, "installed": false})),
            Err(e) => {
                errors.push(format!("CRD {name}: {e}"));
                break;
            }
        }
    }
    json!({
        "mutu": env!("CARGO_PKG_VERSION"),
        "server": server,
        "crds": crds,
    })
}

/// One CRD of the cluster against this mutu's: its versions, and whether
/// their schemas are this mutu's.
pub fn crd_version(ours: &CustomResourceDefinition, theirs: &CustomResourceDefinition) -> Value {
    let schemas = |c: &CustomResourceDefinition| -> Vec<(String, Value)> {
        c.spec
            .versions
            .iter()
            .map(|v| {
                (
                    v.name.clone(),
                    serde_json::to_value(&v.schema).unwrap_or(Value::Null),
                )
            })
            .collect()
    };
    let versions: Vec<Value> = theirs
        .spec
        .versions
        .iter()
        .map(|v| json!({"name": v.name, "served": v.served, "storage": v.storage}))
        .collect();
    json!({
        "name": theirs.name_any(),
        "installed": true,
        "versions": versions,
        "sameAsThisMutu": schemas(ours) == schemas(theirs),
    })
}

/// The logs of the operator's pods since `since`, or a note that none was found.
async fn operator_logs(client: &Client, selector: &str, since: Duration, input: &mut Input) {
    let pods = match list_all(
        Api::<Pod>::all(client.clone()),
        ListParams::default().labels(selector),
        "Pods",
    )
    .await
    {
        Ok(pods) => pods,
        Err(e) => {
            input
                .errors
                .push(format!("operator pods ({selector}): {e:#}"));
            return;
        }
    };
    if pods.is_empty() {
        input.no_operator = Some(selector.to_string());
        return;
    }
    for pod in pods {
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let containers: Vec<String> = pod
            .spec
            .as_ref()
            .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default();
        for container in containers {
            let params = LogParams {
                container: Some(container.clone()),
                since_seconds: Some(since.as_secs().max(1) as i64),
                timestamps: true,
                ..Default::default()
            };
            match api.logs(&name, &params).await {
                Ok(text) => input.logs.push((format!("{ns}/{name}/{container}"), text)),
                Err(e) => input
                    .errors
                    .push(format!("logs of {ns}/{name} ({container}): {e}")),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The bundle (pure)
// ---------------------------------------------------------------------------------------------

/// Why a mutu object needs a look: `Ready` not True; else (kinds without
/// `Ready`) `Failed` True or `Complete` not True; or no conditions at all.
pub fn needs_a_look(object: &Value) -> Option<String> {
    let conditions = object["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let find = |t: &str| conditions.iter().find(|c| c["type"] == t);
    let said = |c: &Value| {
        format!(
            "{}={} {}: {}",
            c["type"].as_str().unwrap_or_default(),
            c["status"].as_str().unwrap_or_default(),
            c["reason"].as_str().unwrap_or_default(),
            c["message"].as_str().unwrap_or_default()
        )
    };
    if conditions.is_empty() {
        return Some("no conditions yet (not reconciled?)".into());
    }
    if let Some(ready) = find("Ready") {
        return (ready["status"] != "True").then(|| said(ready));
    }
    if let Some(failed) = find("Failed").filter(|c| c["status"] == "True") {
        return Some(said(failed));
    }
    if let Some(complete) = find("Complete") {
        return (complete["status"] != "True").then(|| said(complete));
    }
    None
}

/// (namespace, kind, name) of an object.
fn object_key(o: &Value) -> (String, String, String) {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (
        s(&o["metadata"]["namespace"]),
        s(&o["kind"]),
        s(&o["metadata"]["name"]),
    )
}

/// Whether `v` is a Secret (of the core API).
fn is_secret(v: &Value) -> bool {
    v.get("kind").and_then(Value::as_str) == Some("Secret")
        && v.get("apiVersion")
            .and_then(Value::as_str)
            .is_none_or(|a| a == "v1")
}

/// Drops from `v`, at any depth, every Secret, and the fields that may copy
/// other objects (`managedFields`, `last-applied-configuration`). Returns how
/// many Secrets were dropped; a `v` that is itself a Secret becomes null.
pub fn scrub(v: &mut Value) -> usize {
    if is_secret(v) {
        *v = Value::Null;
        return 1;
    }
    let mut dropped = 0;
    match v {
        Value::Array(items) => {
            let before = items.len();
            items.retain(|i| !is_secret(i));
            dropped += before - items.len();
            for i in items.iter_mut() {
                dropped += scrub(i);
            }
        }
        Value::Object(map) => {
            map.remove("managedFields");
            map.remove("kubectl.kubernetes.io/last-applied-configuration");
            for (_, child) in map.iter_mut() {
                dropped += scrub(child);
            }
        }
        _ => {}
    }
    dropped
}

/// The files of a report, under one directory.
pub struct Bundle {
    root: String,
    pub files: Vec<(String, Vec<u8>)>,
}

impl Bundle {
    pub fn new(root: &str) -> Self {
        Bundle {
            root: root.to_string(),
            files: Vec::new(),
        }
    }

    pub fn text(&mut self, path: &str, text: &str) {
        self.files
            .push((format!("{}/{path}", self.root), text.as_bytes().to_vec()));
    }

    /// Adds `value` as YAML, scrubbed; a Secret is never added.
    pub fn yaml(&mut self, path: &str, value: &Value) {
        let mut value = value.clone();
        scrub(&mut value);
        if value.is_null() {
            return;
        }
        let text = serde_saphyr::to_string(&value).unwrap_or_else(|e| format!("# {e}\n"));
        self.text(path, &text);
    }

    /// Adds `value` as JSON, scrubbed; a Secret is never added.
    pub fn json(&mut self, path: &str, value: &Value) {
        let mut value = value.clone();
        scrub(&mut value);
        if value.is_null() {
            return;
        }
        let text = serde_json::to_string_pretty(&value).unwrap_or_default();
        self.text(path, &format!("{text}\n"));
    }

    /// The files as a gzip-compressed tar archive.
    pub fn to_tar_gz(&self) -> std::io::Result<Vec<u8>> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        let mtime = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        for (path, bytes) in &self.files {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(mtime);
            header.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut header, path, bytes.as_slice())?;
        }
        tar.into_inner()?.finish()
    }
}

/// A file name part from a Kubernetes name (they hold no `/` already).
fn part(s: &str) -> String {
    if s.is_empty() {
        "_cluster".into()
    } else {
        s.replace(['/', '\\'], "_")
    }
}

/// The report's files from what was read.
pub fn assemble(input: &Input, root: &str) -> Bundle {
    let mut b = Bundle::new(root);
    let mut readme = String::new();
    let _ = writeln!(readme, "mutu support bundle, made {}", input.generated_at);
    readme.push_str(
        "\nversions.json          API server, this mutu, mutu's CRDs in the cluster (sameAsThisMutu)\n\
         fleet-status.txt/json  `mutu fleet status` at that time\n\
         not-ready.txt          every mutu object not Ready (or failed, or not finished), and why\n\
         not-ready/KIND/NS/NAME.yaml  each of them, with its conditions and Events\n\
         operator-logs/         the logs of mutu's operator pods over the last hour\n\
         errors.txt             what could not be read (absent when everything was)\n\
         \nNo Secret is in this bundle: none is read, and Secrets are dropped from every object written.\n",
    );
    b.text("README.txt", &readme);
    b.json("versions.json", &input.versions);
    if let Some(text) = &input.fleet_text {
        b.text("fleet-status.txt", text);
    }
    if let Some(json) = &input.fleet_json {
        b.json("fleet-status.json", json);
    }

    let mut summary = String::new();
    let mut rows: Vec<Vec<String>> = Vec::new();
    for (object, why) in &input.not_ready {
        if is_secret(object) {
            continue;
        }
        let (ns, kind, name) = object_key(object);
        rows.push(vec![
            kind.clone(),
            if ns.is_empty() {
                name.clone()
            } else {
                format!("{ns}/{name}")
            },
            why.clone(),
        ]);
        let events = input
            .events
            .get(&(ns.clone(), kind.clone(), name.clone()))
            .cloned()
            .unwrap_or_default();
        let doc = json!({
            "why": why,
            "object": object,
            "events": serde_json::to_value(events).unwrap_or(Value::Null),
        });
        b.yaml(
            &format!(
                "not-ready/{}/{}/{}.yaml",
                part(&kind),
                part(&ns),
                part(&name)
            ),
            &doc,
        );
    }
    if rows.is_empty() {
        summary.push_str("every mutu object is Ready (or complete)\n");
    } else {
        let _ = writeln!(summary, "{} mutu objects need a look:", rows.len());
        super::table(&mut summary, &["KIND", "OBJECT", "WHY"], &rows);
    }
    b.text("not-ready.txt", &summary);

    match &input.no_operator {
        Some(selector) => b.text(
            "operator-logs/NONE.txt",
            &format!(
                "No pod of mutu's operator was found in the cluster (label selector {selector}).\n\
                 The operator may run outside the cluster (e.g. `mutu operator run` on a host, as with\n\
                 `mutu dev up` and the test bed): add its log by hand, or give\n\
                 `kubectl mutu report --operator-selector ...` if its pods carry other labels.\n"
            ),
        ),
        None => {
            for (name, text) in &input.logs {
                let path: Vec<String> = name.split('/').map(part).collect();
                b.text(&format!("operator-logs/{}.log", path.join("/")), text);
            }
        }
    }
    if !input.errors.is_empty() {
        b.text("errors.txt", &format!("{}\n", input.errors.join("\n")));
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    const SECRET_VALUE: &str = "hunter2-s3cr3t";

    fn secret() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "solr-admin", "namespace": "mutu-system"},
            "data": {"password": "aHVudGVyMi1zM2NyM3Q="},
            "stringData": {"password": SECRET_VALUE},
        })
    }

    fn site(ready: &str) -> Value {
        json!({
            "apiVersion": "hosting.imio.be/v1alpha1", "kind": "PloneSite",
            "metadata": {
                "name": "delib", "namespace": "tenant-mons",
                "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": format!("{{\"password\": \"{SECRET_VALUE}\"}}")},
            },
            "spec": {"product": "delib", "hostnames": ["deliberations.mons.be"]},
            "status": {"conditions": [{"type": "Ready", "status": ready, "reason": "Maintenance", "message": "servers stopped"}]},
        })
    }

    /// Every file of a `.tar.gz`, by path.
    fn unpack(bytes: &[u8]) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
        for entry in archive.entries().unwrap_or_else(|e| panic!("{e}")) {
            let mut entry = entry.unwrap_or_else(|e| panic!("{e}"));
            let path = entry
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let mut text = String::new();
            entry
                .read_to_string(&mut text)
                .unwrap_or_else(|e| panic!("{e}"));
            out.insert(path, text);
        }
        out
    }

    #[test]
    fn objects_that_need_a_look_are_those_not_ready_failed_or_running() {
        assert!(needs_a_look(&site("True")).is_none());
        assert_eq!(
            needs_a_look(&site("False")).as_deref(),
            Some("Ready=False Maintenance: servers stopped")
        );
        let run = |conds: Value| json!({"status": {"conditions": conds}});
        assert!(needs_a_look(&run(json!([{"type": "Complete", "status": "True"}]))).is_none());
        assert!(
            needs_a_look(&run(json!([{"type": "Progressing", "status": "True"}, {"type": "Complete", "status": "False", "reason": "Running"}])))
                .is_some()
        );
        assert!(
            needs_a_look(&run(
                json!([{"type": "Failed", "status": "True", "reason": "NoBackup"}])
            ))
            .is_some_and(|w| w.contains("NoBackup"))
        );
        assert!(needs_a_look(&json!({"metadata": {"name": "new"}})).is_some());
    }

    #[test]
    fn scrub_drops_secrets_at_any_depth() {
        let mut v = json!({"items": [secret(), site("False")], "nested": {"s": secret()}});
        assert_eq!(scrub(&mut v), 2);
        let text = v.to_string();
        assert!(
            !text.contains(SECRET_VALUE) && !text.contains("aHVudGVy"),
            "{text}"
        );
        assert!(text.contains("deliberations.mons.be"));
        assert!(!text.contains("managedFields"));
        let mut s = secret();
        assert_eq!(scrub(&mut s), 1);
        assert!(s.is_null());
        // A ConfigMap or a CRD named Secret-something is kept.
        let mut other = json!({"kind": "Secret", "apiVersion": "example.org/v1", "spec": {}});
        assert_eq!(scrub(&mut other), 0);
    }

    #[test]
    fn the_bundle_holds_every_part_and_no_secret_data() {
        let mut events = BTreeMap::new();
        events.insert(
            (
                "tenant-mons".to_string(),
                "PloneSite".to_string(),
                "delib".to_string(),
            ),
            vec![EventLine {
                time: Some("2026-12-07T12:00:00Z".into()),
                type_: "Normal".into(),
                reason: "Maintenance".into(),
                object: "PloneSite/delib".into(),
                message: "servers stopping".into(),
                count: 1,
            }],
        );
        let input = Input {
            generated_at: "2026-12-07T12:00:00Z".into(),
            versions: json!({"mutu": "0.1.0", "server": {"gitVersion": "v1.37.0"}, "crds": [], "leak": secret()}),
            fleet_text: Some("mutu fleet status at 2026-12-07T12:00:00Z\n".into()),
            fleet_json: Some(json!({"sites": {"total": 1}})),
            not_ready: vec![
                (
                    site("False"),
                    "Ready=False Maintenance: servers stopped".into(),
                ),
                (secret(), "a Secret that slipped in".into()),
            ],
            events,
            logs: Vec::new(),
            no_operator: Some(OPERATOR_SELECTOR.into()),
            errors: vec!["Events: forbidden".into()],
        };
        let bytes = assemble(&input, "mutu-report-x")
            .to_tar_gz()
            .unwrap_or_else(|e| panic!("{e}"));
        let files = unpack(&bytes);
        let names: Vec<&str> = files.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            vec![
                "mutu-report-x/README.txt",
                "mutu-report-x/errors.txt",
                "mutu-report-x/fleet-status.json",
                "mutu-report-x/fleet-status.txt",
                "mutu-report-x/not-ready.txt",
                "mutu-report-x/not-ready/PloneSite/tenant-mons/delib.yaml",
                "mutu-report-x/operator-logs/NONE.txt",
                "mutu-report-x/versions.json",
            ]
        );
        for (path, text) in &files {
            for leak in [
                SECRET_VALUE,
                "aHVudGVy",
                "kind: Secret",
                "\"Secret\"",
                "solr-admin",
            ] {
                assert!(!text.contains(leak), "{path} holds {leak:?}:\n{text}");
            }
        }
        let site = &files["mutu-report-x/not-ready/PloneSite/tenant-mons/delib.yaml"];
        assert!(
            site.contains("servers stopping") && site.contains("Maintenance"),
            "{site}"
        );
        assert!(files["mutu-report-x/not-ready.txt"].contains("tenant-mons/delib"));
        assert!(files["mutu-report-x/operator-logs/NONE.txt"].contains("outside the cluster"));
    }

    #[test]
    fn operator_logs_are_filed_by_pod_and_container() {
        let input = Input {
            logs: vec![(
                "mutu-system/mutu-operator-abc/operator".into(),
                "started\n".into(),
            )],
            ..Default::default()
        };
        let b = assemble(&input, "r");
        assert!(b.files.iter().any(|(p, t)| p
            == "r/operator-logs/mutu-system/mutu-operator-abc/operator.log"
            && t == b"started\n"));
        assert!(!b.files.iter().any(|(p, _)| p.ends_with("NONE.txt")));
    }
}
