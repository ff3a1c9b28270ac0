//! The on-call commands of `kubectl mutu` (also `mutu ...`): one PloneSite on
//! one screen, a mutu Certificate's state and a renewal now, a mutu Backup
//! now, a mutu Restore, a site's maintenance, pausing a MigrationPlan or
//! ReleaseRollout, and a support bundle. Each works from a plain kubeconfig
//! and takes the global options `--kubeconfig`, `--context` and
//! `-n/--namespace` (the namespace of a NAME given without its `NS/`).
//!
//! What each command shows is computed by pure functions from the objects it
//! read (unit-tested on fixed objects); the reading and writing is around them.

pub mod backup_now;
pub mod certificate;
pub mod completion;
pub mod maintenance;
pub mod plan;
pub mod report;
pub mod restore;
pub mod site;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde::Serialize;

/// The options every on-call command takes, wherever they stand on the
/// command line (`kubectl mutu site status -n NS NAME --context prod`).
#[derive(Args, Clone, Debug, Default)]
pub struct KubeArgs {
    /// The kubeconfig file to use (else $KUBECONFIG, else ~/.kube/config, else the
    /// in-cluster service account).
    #[arg(long, global = true, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (else its current context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The namespace of a NAME given without `NS/` (else the context's namespace).
    #[arg(long, short = 'n', global = true, value_name = "NS")]
    pub namespace: Option<String>,
}

/// A client of the cluster the options name, and the namespace of names given alone.
pub struct Kube {
    pub client: Client,
    /// `-n`, else the context's namespace, else `default`.
    pub namespace: String,
    /// `-n` as given.
    explicit_namespace: Option<String>,
}

impl KubeArgs {
    /// Connects to the cluster of `--kubeconfig` and `--context` (or the
    /// environment's), without a request yet.
    pub async fn connect(&self) -> anyhow::Result<Kube> {
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..Default::default()
        };
        let config = match (&self.kubeconfig, &self.context) {
            (Some(path), _) => {
                let file = Kubeconfig::read_from(path)
                    .with_context(|| format!("--kubeconfig {}: cannot read it", path.display()))?;
                Config::from_custom_kubeconfig(file, &options)
                    .await
                    .with_context(|| format!("--kubeconfig {}", path.display()))?
            }
            (None, Some(context)) => Config::from_kubeconfig(&options)
                .await
                .with_context(|| format!("--context {context}: not in the kubeconfig"))?,
            (None, None) => Config::infer().await.context(
                "no kubeconfig: set KUBECONFIG or give --kubeconfig (for the local control plane, `eval \"$(mutu dev env)\"`)",
            )?,
        };
        let namespace = self
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = Client::try_from(config).context("cannot make a client of the cluster")?;
        Ok(Kube {
            client,
            namespace,
            explicit_namespace: self.namespace.clone(),
        })
    }
}

impl Kube {
    /// `NS/NAME`, or `NAME` in the namespace of `-n` (else the context's).
    pub fn target(&self, arg: &str, what: &str) -> anyhow::Result<(String, String)> {
        target(
            arg,
            self.explicit_namespace.as_deref(),
            &self.namespace,
            what,
        )
    }
}

/// Splits `NS/NAME`, or takes `NAME` in `namespace` (`-n`) or else `default_ns`.
/// `what` names the kind in errors, e.g. "PloneSite".
pub fn target(
    arg: &str,
    namespace: Option<&str>,
    default_ns: &str,
    what: &str,
) -> anyhow::Result<(String, String)> {
    let example = "e.g. tenant-mons/delib, or delib -n tenant-mons";
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    };
    match arg.split_once('/') {
        Some((ns, name)) => {
            if !valid(ns) || !valid(name) {
                bail!("{arg:?}: name the {what} as NS/NAME or NAME, {example}");
            }
            if let Some(n) = namespace.filter(|n| *n != ns) {
                bail!("{arg:?} is in namespace {ns}, but -n says {n}: give one of them, {example}");
            }
            Ok((ns.to_string(), name.to_string()))
        }
        None if valid(arg) => Ok((namespace.unwrap_or(default_ns).to_string(), arg.to_string())),
        None => bail!("{arg:?}: name the {what} as NS/NAME or NAME, {example}"),
    }
}

/// Every object of `api` (pages of 500).
pub async fn list_all<K>(api: Api<K>, params: ListParams, what: &str) -> anyhow::Result<Vec<K>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut out = Vec::new();
    let mut params = params.limit(500);
    loop {
        let page = match api.list(&params).await {
            Ok(page) => page,
            Err(kube::Error::Api(status)) if status.is_not_found() => bail!(
                "the cluster does not know {what}: are mutu's CRDs installed (`mutu crds | kubectl apply -f -`)?"
            ),
            Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot list {what}"))),
        };
        out.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(out),
        }
    }
}

/// `api.get(name)`, with an error that names the object and what to check.
pub async fn get<K>(api: &Api<K>, ns: &str, name: &str, what: &str) -> anyhow::Result<K>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.get_opt(name).await {
        Ok(Some(obj)) => Ok(obj),
        Ok(None) => bail!("no {what} {ns}/{name} (kubectl get {})", kubectl_kind(what)),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot read {what} {ns}/{name}"))),
    }
}

/// The full resource name kubectl knows a kind by, for the hints of errors.
fn kubectl_kind(what: &str) -> String {
    let kind = what.trim_start_matches("mutu ");
    match kind {
        "PloneSite" => "plonesites.hosting.imio.be -A".into(),
        "Certificate" => "certificates.hosting.imio.be -A".into(),
        "Backup" => "backups.hosting.imio.be -A".into(),
        "Restore" => "restores.hosting.imio.be -A".into(),
        other => format!("{}s.hosting.imio.be", other.to_lowercase()),
    }
}

/// The events of the objects named `names` in `ns`, oldest first, the last `limit`.
pub async fn events_of(
    client: &Client,
    ns: &str,
    names: &BTreeSet<String>,
    limit: usize,
) -> anyhow::Result<Vec<Event>> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let all = list_all(api, ListParams::default(), "Events").await?;
    Ok(last_events(all, names, limit))
}

/// Of `events`, those of the objects named `names`, oldest first, the last `limit`.
pub fn last_events(events: Vec<Event>, names: &BTreeSet<String>, limit: usize) -> Vec<Event> {
    let mut mine: Vec<Event> = events
        .into_iter()
        .filter(|e| {
            e.involved_object
                .name
                .as_ref()
                .is_some_and(|n| names.contains(n))
        })
        .collect();
    mine.sort_by_key(event_time);
    let skip = mine.len().saturating_sub(limit);
    mine.into_iter().skip(skip).collect()
}

/// When an event last happened.
pub fn event_time(e: &Event) -> Option<Timestamp> {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// One event as the views show it.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EventLine {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    pub type_: String,
    pub reason: String,
    /// `Kind/name` of the object.
    pub object: String,
    pub message: String,
    pub count: i32,
}

impl EventLine {
    pub fn from_event(e: &Event) -> Self {
        EventLine {
            time: event_time(e).map(|t| t.to_string()),
            type_: e.type_.clone().unwrap_or_default(),
            reason: e.reason.clone().unwrap_or_default(),
            object: format!(
                "{}/{}",
                e.involved_object.kind.as_deref().unwrap_or("?"),
                e.involved_object.name.as_deref().unwrap_or("?")
            ),
            message: e.message.clone().unwrap_or_default().trim().to_string(),
            count: e.count.unwrap_or(1),
        }
    }
}

/// A condition as the views show it.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConditionLine {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    pub since: String,
}

impl ConditionLine {
    pub fn from_condition(c: &Condition) -> Self {
        ConditionLine {
            type_: c.type_.clone(),
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
            since: c.last_transition_time.0.to_string(),
        }
    }
}

/// The condition `type_` of `conditions`.
pub fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition `type_` is `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    condition(conditions, type_).is_some_and(|c| c.status == "True")
}

/// A short duration: `45s`, `12m`, `5h`, `3d`.
pub fn short(d: SignedDuration) -> String {
    let s = d.as_secs().abs();
    if s < 120 {
        format!("{s}s")
    } else if s < 120 * 60 {
        format!("{}m", s / 60)
    } else if s < 48 * 3600 {
        format!("{}h", s / 3600)
    } else {
        format!("{}d", s / 86400)
    }
}

/// How long ago `t` was (`3m ago`), or how far ahead it is (`in 89d`).
pub fn relative(now: Timestamp, t: &str) -> String {
    match t.parse::<Timestamp>() {
        Ok(t) if t <= now => format!("{} ago", short(now.duration_since(t))),
        Ok(t) => format!("in {}", short(t.duration_since(now))),
        Err(_) => t.to_string(),
    }
}

/// `age` column: how old `t` is, `-` without one.
pub fn age(now: Timestamp, t: Option<&str>) -> String {
    match t.and_then(|t| t.parse::<Timestamp>().ok()) {
        Some(t) => short(now.duration_since(t)),
        None => "-".into(),
    }
}

/// Lines of `rows` in columns as wide as their widest cell, two spaces apart;
/// the last column is not padded.
pub fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |out: &mut String, cells: Vec<&str>| {
        let n = cells.len();
        let mut text = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            if i + 1 == n {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<w$}  ", w = widths[i]);
            }
        }
        let _ = writeln!(out, "  {}", text.trim_end());
    };
    line(out, header.to_vec());
    for row in rows {
        line(out, row.iter().map(String::as_str).collect());
    }
}

/// The conditions as a table, or `(none yet)`.
pub fn conditions_table(out: &mut String, now: Timestamp, conditions: &[ConditionLine]) {
    if conditions.is_empty() {
        out.push_str("  (none yet)\n");
        return;
    }
    let rows: Vec<Vec<String>> = conditions
        .iter()
        .map(|c| {
            vec![
                c.type_.clone(),
                c.status.clone(),
                c.reason.clone(),
                age(now, Some(&c.since)),
                c.message.clone(),
            ]
        })
        .collect();
    table(out, &["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"], &rows);
}

/// The events as a table, or `(none)`.
pub fn events_table(out: &mut String, now: Timestamp, events: &[EventLine]) {
    if events.is_empty() {
        out.push_str("  (none)\n");
        return;
    }
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            let count = if e.count > 1 {
                format!(" (x{})", e.count)
            } else {
                String::new()
            };
            vec![
                age(now, e.time.as_deref()),
                e.type_.clone(),
                e.reason.clone(),
                e.object.clone(),
                format!("{}{count}", e.message),
            ]
        })
        .collect();
    table(out, &["AGE", "TYPE", "REASON", "OBJECT", "MESSAGE"], &rows);
}

/// `--timeout`: a duration as Kubernetes writes them (`90s`, `10m`, `1h30m`).
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    mutu_api::common::parse_duration(text)
        .map(Duration::from)
        .map_err(|e| format!("{e}: write a duration such as 90s, 10m or 1h30m"))
}

/// Polls `step` every `every` until it gives a value, an error, or `timeout` passes
/// (then the error says `waiting_for`).
pub async fn poll<T, F, Fut>(
    timeout: Duration,
    every: Duration,
    waiting_for: &str,
    mut step: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = step().await? {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "gave up waiting after {}: {waiting_for}",
                short(SignedDuration::try_from(timeout).unwrap_or_default())
            );
        }
        tokio::time::sleep(every).await;
    }
}

/// Prints `line` to standard error unless it is the last one printed.
#[derive(Default)]
pub struct Progress {
    last: std::sync::Mutex<Option<String>>,
}

impl Progress {
    pub fn show(&self, line: String) {
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        if last.as_ref() != Some(&line) {
            eprintln!("  {line}");
            *last = Some(line);
        }
    }
}

/// The name of an object made now for `base` (e.g. `delib-manual-20261207-134501`),
/// at most `max` characters (a Job named after it must stay within 63).
pub fn stamped_name(base: &str, what: &str, now: Timestamp, max: usize) -> String {
    let stamp = now.strftime("%Y%m%d-%H%M%S").to_string();
    let suffix = format!("-{what}-{stamp}");
    let room = max.saturating_sub(suffix.len());
    let base: String = base.chars().take(room).collect();
    format!("{}{suffix}", base.trim_end_matches(['-', '.']))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn a_target_is_ns_slash_name_or_a_name_with_its_namespace() {
        let ok = |arg, n: Option<&str>| target(arg, n, "default", "PloneSite").ok();
        let pair = |a: &str, b: &str| Some((a.to_string(), b.to_string()));
        assert_eq!(ok("tenant-mons/delib", None), pair("tenant-mons", "delib"));
        assert_eq!(
            ok("tenant-mons/delib", Some("tenant-mons")),
            pair("tenant-mons", "delib")
        );
        assert_eq!(
            ok("delib", Some("tenant-mons")),
            pair("tenant-mons", "delib")
        );
        assert_eq!(ok("delib", None), pair("default", "delib"));
        assert_eq!(ok("delib-tls.v2", None), pair("default", "delib-tls.v2"));
        for bad in [
            "",
            "/delib",
            "tenant-mons/",
            "a/b/c",
            "Delib",
            "tenant mons/delib",
        ] {
            let e = target(bad, None, "default", "PloneSite")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                e.contains("NS/NAME") && e.contains("PloneSite"),
                "{bad}: {e}"
            );
        }
        let e = target(
            "tenant-mons/delib",
            Some("tenant-ans"),
            "default",
            "PloneSite",
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("-n says tenant-ans"), "{e}");
    }

    #[test]
    fn durations_and_times_read_short() {
        let now = t("2026-12-07T12:00:00Z");
        assert_eq!(relative(now, "2026-12-07T11:59:15Z"), "45s ago");
        assert_eq!(relative(now, "2026-12-07T11:00:00Z"), "60m ago");
        assert_eq!(relative(now, "2026-12-06T00:00:00Z"), "36h ago");
        assert_eq!(relative(now, "2027-03-06T12:00:00Z"), "in 89d");
        assert_eq!(relative(now, "soon"), "soon");
        assert_eq!(age(now, None), "-");
        assert_eq!(age(now, Some("2026-12-07T11:58:00Z")), "2m");
        assert_eq!(parse_timeout("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_timeout("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_timeout("soon").is_err());
    }

    #[test]
    fn names_made_now_fit_a_job_name() {
        let now = t("2026-12-07T13:45:01Z");
        assert_eq!(
            stamped_name("delib", "manual", now, 56),
            "delib-manual-20261207-134501"
        );
        let long = "a".repeat(80);
        let name = stamped_name(&long, "restore", now, 56);
        assert_eq!(name.len(), 56);
        assert!(name.ends_with("-restore-20261207-134501"), "{name}");
    }

    #[test]
    fn tables_align_their_columns() {
        let mut out = String::new();
        table(
            &mut out,
            &["NAME", "STATE", "MESSAGE"],
            &[
                vec!["a".into(), "Ready".into(), "fine".into()],
                vec!["longer-name".into(), "-".into(), "".into()],
            ],
        );
        assert_eq!(
            out,
            "  NAME         STATE  MESSAGE\n  a            Ready  fine\n  longer-name  -\n"
        );
    }
}
