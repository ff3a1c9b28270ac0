//! `mutu fleet status`: one screen for the on-call engineer. It reads the fleet from the
//! cluster (I/O, [`run`]) and sums it up ([`summarize`], pure: lists of objects and the time
//! now in, a [`Summary`] out), which prints as text or as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use mutu_api::{
    CONDITION_COMPLETE, CONDITION_PROGRESSING, CONDITION_READY, Certificate, MemberTenant,
    MigrationPlan, PloneSite, Product, ReleaseRollout, WaveStatus,
};
use serde::Serialize;

/// A certificate whose `notAfter` is this close (or past) is listed.
pub const CERTIFICATE_WARNING: SignedDuration = SignedDuration::from_hours(14 * 24);
/// A site whose last successful backup is older than this (or that never had one, once it is
/// this old) is listed.
pub const BACKUP_MAX_AGE: SignedDuration = SignedDuration::from_hours(26);
/// A site not Ready for longer than this is listed.
pub const NOT_READY_GRACE: SignedDuration = SignedDuration::from_mins(10);
/// Lines of each list in the text output; `--output json` has them all.
const TEXT_LIST_LIMIT: usize = 15;

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Args)]
pub struct StatusArgs {
    /// `text`: one screen for a person; `json`: the same data, complete, for a machine:
    /// {"tenants": {"total", "byCategory", "byProvince", ...}, "sites": {"total", "ready",
    /// "byProduct": {"<product>": {"total", "ready", "byRelease"}}}, "certificates":
    /// {"expiringSoon"}, "backups": {"stale"}, "plans", "notReady"}.
    #[arg(long, short, value_enum, default_value = "text")]
    output: Output,
}

/// Everything the summary is computed from, as listed from the cluster.
#[derive(Default)]
pub struct Fleet {
    pub products: Vec<Product>,
    pub tenants: Vec<MemberTenant>,
    pub sites: Vec<PloneSite>,
    pub certificates: Vec<Certificate>,
    pub migrations: Vec<MigrationPlan>,
    pub rollouts: Vec<ReleaseRollout>,
}

pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let client = Client::try_default().await.context(
        "cannot reach the cluster of the current kubeconfig (set KUBECONFIG, or `eval \"$(mutu dev env)\"` for the local control plane)",
    )?;
    let (products, tenants, sites, certificates, migrations, rollouts) = futures::try_join!(
        list::<Product>(Api::all(client.clone()), "Product"),
        list::<MemberTenant>(Api::all(client.clone()), "MemberTenant"),
        list::<PloneSite>(Api::all(client.clone()), "PloneSite"),
        list::<Certificate>(Api::all(client.clone()), "Certificate"),
        list::<MigrationPlan>(Api::all(client.clone()), "MigrationPlan"),
        list::<ReleaseRollout>(Api::all(client.clone()), "ReleaseRollout"),
    )?;
    let fleet = Fleet {
        products,
        tenants,
        sites,
        certificates,
        migrations,
        rollouts,
    };
    let summary = summarize(&fleet, Timestamp::now());
    match args.output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&summary)?),
        Output::Text => print!("{}", render(&summary)),
    }
    Ok(())
}

async fn list<K>(api: Api<K>, kind: &str) -> anyhow::Result<Vec<K>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut out = Vec::new();
    let mut params = ListParams::default().limit(500);
    loop {
        let page = match api.list(&params).await {
            Ok(page) => page,
            Err(kube::Error::Api(status)) if status.is_not_found() => anyhow::bail!(
                "the cluster does not know the kind {kind}: install mutu's CRDs (`mutu crds | kubectl apply -f -`)"
            ),
            Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot list {kind}s"))),
        };
        out.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(out),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The summary (pure)
// ---------------------------------------------------------------------------------------------

/// The state of the fleet at `now`.
#[derive(Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// When the summary was made (RFC 3339).
    pub now: String,
    pub tenants: Tenants,
    pub sites: Sites,
    pub certificates: Certificates,
    pub backups: Backups,
    /// MigrationPlans and ReleaseRollouts not complete yet.
    pub plans: Vec<Plan>,
    /// Sites not Ready for more than [`NOT_READY_GRACE`], longest first.
    pub not_ready: Vec<NotReady>,
}

#[derive(Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Tenants {
    pub total: usize,
    pub ready: usize,
    pub suspended: usize,
    /// Members per category (`commune`, `cpas`, ...).
    pub by_category: BTreeMap<String, usize>,
    /// Members per province; `none` for those without one.
    pub by_province: BTreeMap<String, usize>,
}

#[derive(Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Sites {
    pub total: usize,
    pub ready: usize,
    pub by_product: BTreeMap<String, ProductSites>,
}

#[derive(Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProductSites {
    pub total: usize,
    pub ready: usize,
    /// The Product's current release (`spec.release`), when the Product exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_release: Option<String>,
    /// Sites per release they run (`status.release`; `none` before they first run).
    pub by_release: BTreeMap<String, Count>,
}

#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Count {
    pub total: usize,
    pub ready: usize,
}

#[derive(Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Certificates {
    pub total: usize,
    pub ready: usize,
    /// Certificates expiring within [`CERTIFICATE_WARNING`] or expired, soonest first.
    pub expiring_soon: Vec<ExpiringCertificate>,
}

#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ExpiringCertificate {
    pub namespace: String,
    pub name: String,
    pub not_after: String,
    pub expired: bool,
}

#[derive(Serialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Backups {
    /// Sites without a successful backup for more than [`BACKUP_MAX_AGE`], oldest first
    /// (never backed up first).
    pub stale: Vec<StaleBackup>,
    /// Sites whose scheduled backups are suspended (`spec.backup.suspended`): not in `stale`.
    pub suspended: usize,
}

#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StaleBackup {
    pub namespace: String,
    pub name: String,
    pub product: String,
    /// The last successful backup; `null` when there never was one.
    pub last_backup: Option<String>,
}

#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// `MigrationPlan` or `ReleaseRollout`.
    pub kind: String,
    pub name: String,
    /// What it does: `physical -> frontend`, `delib -> 4.2.19`.
    pub target: String,
    pub total: i32,
    pub done: i32,
    pub failed: i32,
    pub in_flight: i32,
    pub pending: i32,
    pub current_wave: Option<i32>,
    pub paused: bool,
    /// The reason of its `Progressing` condition (`Running`, `Paused`, `Halted`,
    /// `OutsideWindow`, ...), `Pending` before the operator reported on it.
    pub state: String,
    pub message: String,
}

#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NotReady {
    pub namespace: String,
    pub name: String,
    pub product: String,
    pub reason: String,
    pub message: String,
    /// Since when it is not Ready (the condition's last transition, else the site's creation).
    pub since: Option<String>,
}

fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

fn is_true(conditions: &[Condition], type_: &str) -> bool {
    condition(conditions, type_).is_some_and(|c| c.status == "True")
}

fn enum_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn site_conditions(site: &PloneSite) -> &[Condition] {
    site.status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or(&[])
}

/// Sums up `fleet` as it is at `now`.
pub fn summarize(fleet: &Fleet, now: Timestamp) -> Summary {
    let mut summary = Summary {
        now: Timestamp::from_second(now.as_second())
            .unwrap_or(now)
            .to_string(),
        ..Summary::default()
    };
    let age = |t: &Timestamp| now.duration_since(*t);

    // Members.
    let t = &mut summary.tenants;
    for tenant in &fleet.tenants {
        t.total += 1;
        let conditions = tenant
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or(&[]);
        t.ready += usize::from(is_true(conditions, CONDITION_READY));
        t.suspended += usize::from(tenant.spec.suspended);
        *t.by_category
            .entry(enum_name(&tenant.spec.category))
            .or_default() += 1;
        let province = tenant
            .spec
            .province
            .map(|p| enum_name(&p))
            .unwrap_or_else(|| "none".to_string());
        *t.by_province.entry(province).or_default() += 1;
    }

    // Sites: by product and release, backups, readiness.
    let releases: BTreeMap<String, String> = fleet
        .products
        .iter()
        .map(|p| (p.name_any(), p.spec.release.clone()))
        .collect();
    for site in &fleet.sites {
        let conditions = site_conditions(site);
        let ready = is_true(conditions, CONDITION_READY);
        let namespace = site.namespace().unwrap_or_default();
        let name = site.name_any();
        let product = site.spec.product.clone();
        summary.sites.total += 1;
        summary.sites.ready += usize::from(ready);
        let p = summary
            .sites
            .by_product
            .entry(product.clone())
            .or_insert_with(|| ProductSites {
                current_release: releases.get(&product).cloned(),
                ..ProductSites::default()
            });
        p.total += 1;
        p.ready += usize::from(ready);
        let release = site
            .status
            .as_ref()
            .and_then(|s| s.release.clone())
            .unwrap_or_else(|| "none".to_string());
        let r = p.by_release.entry(release).or_default();
        r.total += 1;
        r.ready += usize::from(ready);

        let created = site.creation_timestamp().map(|t| t.0);
        if site.spec.backup.as_ref().is_some_and(|b| b.suspended) {
            summary.backups.suspended += 1;
        } else {
            let last = site.status.as_ref().and_then(|s| s.last_backup.as_ref());
            let stale = match (last, created) {
                (Some(last), _) => age(&last.0) > BACKUP_MAX_AGE,
                // Never backed up: late only once the site is older than a backup cycle.
                (None, Some(created)) => age(&created) > BACKUP_MAX_AGE,
                (None, None) => true,
            };
            if stale {
                summary.backups.stale.push(StaleBackup {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    product: product.clone(),
                    last_backup: last.map(|t| t.0.to_string()),
                });
            }
        }

        if !ready {
            let ready_condition = condition(conditions, CONDITION_READY);
            let since = ready_condition
                .map(|c| c.last_transition_time.0)
                .or(created);
            if since.is_none_or(|s| age(&s) > NOT_READY_GRACE) {
                let (reason, message) = match ready_condition {
                    Some(c) => (c.reason.clone(), c.message.clone()),
                    None => (
                        "NoStatus".to_string(),
                        "mutu has not reported on this site yet: is `mutu operator run` (the site controller) running?".to_string(),
                    ),
                };
                summary.not_ready.push(NotReady {
                    namespace,
                    name,
                    product,
                    reason,
                    message,
                    since: since.map(|s| s.to_string()),
                });
            }
        }
    }
    // RFC 3339 strings of one format sort as the times they stand for.
    summary.backups.stale.sort_by(|a, b| {
        (
            a.last_backup.is_some(),
            &a.last_backup,
            &a.namespace,
            &a.name,
        )
            .cmp(&(
                b.last_backup.is_some(),
                &b.last_backup,
                &b.namespace,
                &b.name,
            ))
    });
    summary
        .not_ready
        .sort_by(|a, b| (&a.since, &a.namespace, &a.name).cmp(&(&b.since, &b.namespace, &b.name)));

    // Certificates.
    let mut expiring: Vec<(Timestamp, ExpiringCertificate)> = Vec::new();
    for cert in &fleet.certificates {
        summary.certificates.total += 1;
        let status = cert.status.as_ref();
        let conditions = status.map(|s| s.conditions.as_slice()).unwrap_or(&[]);
        summary.certificates.ready += usize::from(is_true(conditions, CONDITION_READY));
        if let Some(not_after) = status.and_then(|s| s.not_after.as_ref()) {
            let left = not_after.0.duration_since(now);
            if left <= CERTIFICATE_WARNING {
                expiring.push((
                    not_after.0,
                    ExpiringCertificate {
                        namespace: cert.namespace().unwrap_or_default(),
                        name: cert.name_any(),
                        not_after: not_after.0.to_string(),
                        expired: left <= SignedDuration::ZERO,
                    },
                ));
            }
        }
    }
    expiring
        .sort_by(|a, b| (a.0, &a.1.namespace, &a.1.name).cmp(&(b.0, &b.1.namespace, &b.1.name)));
    summary.certificates.expiring_soon = expiring.into_iter().map(|(_, c)| c).collect();

    // Plans in progress.
    for plan in &fleet.migrations {
        if let Some(p) = plan_summary(
            "MigrationPlan",
            plan.name_any(),
            format!("{} -> {}", plan.spec.from, plan.spec.to),
            plan.spec.paused,
            plan.status.as_ref(),
        ) {
            summary.plans.push(p);
        }
    }
    for rollout in &fleet.rollouts {
        if let Some(p) = plan_summary(
            "ReleaseRollout",
            rollout.name_any(),
            format!("{} -> {}", rollout.spec.product, rollout.spec.release),
            rollout.spec.paused,
            rollout.status.as_ref(),
        ) {
            summary.plans.push(p);
        }
    }
    summary
}

/// A plan's progress, or `None` when it is complete.
fn plan_summary(
    kind: &str,
    name: String,
    target: String,
    paused: bool,
    status: Option<&WaveStatus>,
) -> Option<Plan> {
    let conditions = status.map(|s| s.conditions.as_slice()).unwrap_or(&[]);
    if is_true(conditions, CONDITION_COMPLETE) {
        return None;
    }
    let counts = status.map(|s| s.sites.clone()).unwrap_or_default();
    let (state, message) = match condition(conditions, CONDITION_PROGRESSING) {
        Some(c) => (c.reason.clone(), c.message.clone()),
        None => (
            "Pending".to_string(),
            "the wave engine has not reported on it yet".to_string(),
        ),
    };
    Some(Plan {
        kind: kind.to_string(),
        name,
        target,
        total: counts.total,
        done: counts.done,
        failed: counts.failed,
        in_flight: counts.in_flight,
        pending: counts.pending,
        current_wave: status.and_then(|s| s.current_wave),
        paused,
        state,
        message,
    })
}

// ---------------------------------------------------------------------------------------------
// Text
// ---------------------------------------------------------------------------------------------

/// `3d 4h`, `5h 07m`, `12m`, `40s`.
fn human(d: SignedDuration) -> String {
    let s = d.as_secs().abs();
    let (days, hours, mins) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {mins:02}m")
    } else if mins > 0 {
        format!("{mins}m")
    } else {
        format!("{s}s")
    }
}

fn ago(now: Option<Timestamp>, t: &str) -> String {
    match (now, t.parse::<Timestamp>()) {
        (Some(now), Ok(t)) => {
            let d = now.duration_since(t);
            if d >= SignedDuration::ZERO {
                format!("{} ago", human(d))
            } else {
                format!("in {}", human(d))
            }
        }
        _ => String::new(),
    }
}

fn counts(map: &BTreeMap<String, usize>) -> String {
    let mut items: Vec<(&String, &usize)> = map.iter().collect();
    items.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    items
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// At most [`TEXT_LIST_LIMIT`] lines of `items`, then how many were left out.
fn limited<T>(out: &mut String, items: &[T], line: impl Fn(&T) -> String) {
    for item in items.iter().take(TEXT_LIST_LIMIT) {
        let _ = writeln!(out, "  {}", line(item));
    }
    if items.len() > TEXT_LIST_LIMIT {
        let _ = writeln!(
            out,
            "  ... and {} more (`--output json` lists them all)",
            items.len() - TEXT_LIST_LIMIT
        );
    }
}

/// The summary as one screen of text.
pub fn render(s: &Summary) -> String {
    let now = s.now.parse::<Timestamp>().ok();
    let mut out = String::new();
    let _ = writeln!(out, "mutu fleet status at {}", s.now);
    let _ = writeln!(out);
    let t = &s.tenants;
    let _ = writeln!(
        out,
        "Members: {} ({} Ready, {} suspended)",
        t.total, t.ready, t.suspended
    );
    if t.total > 0 {
        let _ = writeln!(out, "  by category: {}", counts(&t.by_category));
        let _ = writeln!(out, "  by province: {}", counts(&t.by_province));
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Sites: {} ({} Ready, {} not Ready)",
        s.sites.total,
        s.sites.ready,
        s.sites.total - s.sites.ready
    );
    if !s.sites.by_product.is_empty() {
        let width = s
            .sites
            .by_product
            .keys()
            .map(String::len)
            .max()
            .unwrap_or(0)
            .max(7);
        let _ = writeln!(
            out,
            "  {:<width$}  {:<12}  {:>5}  {:>5}  {:>9}",
            "PRODUCT", "RELEASE", "SITES", "READY", "NOT READY"
        );
        for (product, p) in &s.sites.by_product {
            for (release, c) in &p.by_release {
                let current = if p.current_release.as_deref() == Some(release.as_str()) {
                    " (current)"
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "  {product:<width$}  {:<12}  {:>5}  {:>5}  {:>9}{current}",
                    release,
                    c.total,
                    c.ready,
                    c.total - c.ready
                );
            }
        }
    }
    let _ = writeln!(out);
    let c = &s.certificates.expiring_soon;
    let _ = writeln!(
        out,
        "Certificates expiring within {} days: {}",
        CERTIFICATE_WARNING.as_hours() / 24,
        if c.is_empty() {
            "none".to_string()
        } else {
            c.len().to_string()
        }
    );
    limited(&mut out, c, |c| {
        format!(
            "{}/{}  notAfter {}  ({}{})",
            c.namespace,
            c.name,
            c.not_after,
            if c.expired { "EXPIRED " } else { "" },
            ago(now, &c.not_after)
        )
    });
    let _ = writeln!(out);
    let b = &s.backups.stale;
    let _ = writeln!(
        out,
        "Sites without a successful backup in {} hours: {}{}",
        BACKUP_MAX_AGE.as_hours(),
        if b.is_empty() {
            "none".to_string()
        } else {
            b.len().to_string()
        },
        if s.backups.suspended > 0 {
            format!(" ({} more with backups suspended)", s.backups.suspended)
        } else {
            String::new()
        }
    );
    limited(&mut out, b, |b| match &b.last_backup {
        Some(last) => format!(
            "{}/{} ({})  last backup {last} ({})",
            b.namespace,
            b.name,
            b.product,
            ago(now, last)
        ),
        None => format!(
            "{}/{} ({})  never backed up",
            b.namespace, b.name, b.product
        ),
    });
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Migrations and rollouts in progress: {}",
        if s.plans.is_empty() {
            "none".to_string()
        } else {
            s.plans.len().to_string()
        }
    );
    limited(&mut out, &s.plans, |p| {
        format!(
            "{} {} ({}): {}/{} done, {} failed, {} in flight{}{}; {}: {}",
            p.kind,
            p.name,
            p.target,
            p.done,
            p.total,
            p.failed,
            p.in_flight,
            p.current_wave
                .map(|w| format!(", wave {w}"))
                .unwrap_or_default(),
            if p.paused { ", paused" } else { "" },
            p.state,
            p.message
        )
    });
    let _ = writeln!(out);
    let n = &s.not_ready;
    let _ = writeln!(
        out,
        "Sites not Ready for more than {} minutes: {}",
        NOT_READY_GRACE.as_mins(),
        if n.is_empty() {
            "none".to_string()
        } else {
            n.len().to_string()
        }
    );
    limited(&mut out, n, |n| {
        format!(
            "{}/{} ({})  {}: {}{}",
            n.namespace,
            n.name,
            n.product,
            n.reason,
            n.message,
            n.since
                .as_deref()
                .map(|t| format!("  (since {})", ago(now, t)))
                .unwrap_or_default()
        )
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn now() -> Timestamp {
        "2026-03-10T12:00:00Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `now` moved by `d` (negative: in the past).
    fn at(d: SignedDuration) -> String {
        now()
            .checked_add(d)
            .unwrap_or_else(|e| panic!("{e}"))
            .to_string()
    }

    fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    fn ready(status: bool, reason: &str, since: SignedDuration) -> Value {
        json!({
            "type": "Ready",
            "status": if status { "True" } else { "False" },
            "reason": reason,
            "message": format!("{reason} message"),
            "lastTransitionTime": at(since),
        })
    }

    fn tenant(name: &str, category: &str, province: Option<&str>, is_ready: bool) -> MemberTenant {
        let mut spec =
            json!({"displayName": name, "category": category, "domains": [format!("{name}.be")]});
        if let Some(p) = province {
            spec["province"] = json!(p);
        }
        from(json!({
            "apiVersion": mutu_api::API_VERSION, "kind": "MemberTenant",
            "metadata": {"name": name},
            "spec": spec,
            "status": {"conditions": [ready(is_ready, "Provisioned", SignedDuration::from_hours(-48))]},
        }))
    }

    struct SiteAt {
        ns: &'static str,
        name: &'static str,
        product: &'static str,
        release: Option<&'static str>,
        ready: Option<(bool, &'static str, SignedDuration)>,
        last_backup: Option<SignedDuration>,
        created: SignedDuration,
        backups_suspended: bool,
    }

    impl Default for SiteAt {
        fn default() -> Self {
            Self {
                ns: "tenant-mons",
                name: "web",
                product: "web",
                release: Some("6.0.9"),
                ready: Some((true, "Ready", SignedDuration::from_hours(-100))),
                last_backup: Some(SignedDuration::from_hours(-10)),
                created: SignedDuration::from_hours(-1000),
                backups_suspended: false,
            }
        }
    }

    fn site(s: SiteAt) -> PloneSite {
        let mut status = json!({});
        if let Some(r) = s.release {
            status["release"] = json!(r);
        }
        if let Some((ok, reason, since)) = s.ready {
            status["conditions"] = json!([ready(ok, reason, since)]);
        }
        if let Some(b) = s.last_backup {
            status["lastBackup"] = json!(at(b));
        }
        let mut spec =
            json!({"product": s.product, "hostnames": [format!("{}.example.be", s.name)]});
        if s.backups_suspended {
            spec["backup"] = json!({"suspended": true});
        }
        from(json!({
            "apiVersion": mutu_api::API_VERSION, "kind": "PloneSite",
            "metadata": {"name": s.name, "namespace": s.ns, "creationTimestamp": at(s.created)},
            "spec": spec,
            "status": status,
        }))
    }

    fn certificate(name: &str, not_after: Option<SignedDuration>) -> Certificate {
        let mut status =
            json!({"conditions": [ready(true, "Issued", SignedDuration::from_hours(-1))]});
        if let Some(t) = not_after {
            status["notAfter"] = json!(at(t));
        }
        from(json!({
            "apiVersion": mutu_api::API_VERSION, "kind": "Certificate",
            "metadata": {"name": name, "namespace": "tenant-mons"},
            "spec": {"dnsNames": ["www.mons.be"], "secretName": format!("{name}-tls"), "issuerRef": {"name": "letsencrypt"}},
            "status": status,
        }))
    }

    fn days(n: i64) -> SignedDuration {
        SignedDuration::from_hours(24 * n)
    }

    fn mins(n: i64) -> SignedDuration {
        SignedDuration::from_mins(n)
    }

    #[test]
    fn members_are_counted_by_category_and_province() {
        let fleet = Fleet {
            tenants: vec![
                tenant("mons", "commune", Some("hainaut"), true),
                tenant("clavier", "commune", Some("liege"), true),
                tenant("cpas-wanze", "cpas", Some("liege"), false),
                tenant("ores", "intercommunale", None, true),
            ],
            ..Fleet::default()
        };
        let s = summarize(&fleet, now());
        assert_eq!(s.tenants.total, 4);
        assert_eq!(s.tenants.ready, 3);
        assert_eq!(s.tenants.by_category["commune"], 2);
        assert_eq!(s.tenants.by_category["cpas"], 1);
        assert_eq!(s.tenants.by_category["intercommunale"], 1);
        assert_eq!(s.tenants.by_province["liege"], 2);
        assert_eq!(s.tenants.by_province["hainaut"], 1);
        assert_eq!(s.tenants.by_province["none"], 1);
    }

    #[test]
    fn sites_are_counted_by_product_and_release() {
        let fleet = Fleet {
            products: vec![from(json!({
                "apiVersion": mutu_api::API_VERSION, "kind": "Product", "metadata": {"name": "delib"},
                "spec": {"displayName": "ia.Délib", "engine": "plone", "image": "registry.imio.be/imio/delib", "release": "4.2.19"},
            }))],
            sites: vec![
                site(SiteAt {
                    name: "web",
                    ..SiteAt::default()
                }),
                site(SiteAt {
                    ns: "tenant-clavier",
                    ..SiteAt::default()
                }),
                site(SiteAt {
                    name: "delib",
                    product: "delib",
                    release: Some("4.2.18"),
                    ..SiteAt::default()
                }),
                site(SiteAt {
                    ns: "tenant-clavier",
                    name: "delib",
                    product: "delib",
                    release: Some("4.2.19"),
                    ready: Some((false, "UpgradeFailed", mins(-3))),
                    ..SiteAt::default()
                }),
                site(SiteAt {
                    ns: "tenant-ans",
                    name: "delib",
                    product: "delib",
                    release: None,
                    ready: None,
                    created: mins(-1),
                    ..SiteAt::default()
                }),
            ],
            ..Fleet::default()
        };
        let s = summarize(&fleet, now());
        assert_eq!((s.sites.total, s.sites.ready), (5, 3));
        let web = &s.sites.by_product["web"];
        assert_eq!((web.total, web.ready), (2, 2));
        assert_eq!(web.by_release["6.0.9"], Count { total: 2, ready: 2 });
        assert_eq!(web.current_release, None, "no Product web listed");
        let delib = &s.sites.by_product["delib"];
        assert_eq!((delib.total, delib.ready), (3, 1));
        assert_eq!(delib.current_release.as_deref(), Some("4.2.19"));
        assert_eq!(delib.by_release["4.2.18"], Count { total: 1, ready: 1 });
        assert_eq!(delib.by_release["4.2.19"], Count { total: 1, ready: 0 });
        assert_eq!(delib.by_release["none"], Count { total: 1, ready: 0 });
        assert!(
            s.not_ready.is_empty(),
            "both not Ready sites are within the grace: {:?}",
            s.not_ready
        );
    }

    #[test]
    fn certificates_expiring_within_14_days_are_listed_soonest_first() {
        let fleet = Fleet {
            certificates: vec![
                certificate("later", Some(days(14) + SignedDuration::from_secs(1))),
                certificate("edge", Some(days(14))),
                certificate("soon", Some(days(2))),
                certificate("expired", Some(-days(1))),
                certificate("unissued", None),
            ],
            ..Fleet::default()
        };
        let s = summarize(&fleet, now());
        let names: Vec<&str> = s
            .certificates
            .expiring_soon
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["expired", "soon", "edge"]);
        assert!(s.certificates.expiring_soon[0].expired);
        assert!(!s.certificates.expiring_soon[1].expired);
        assert_eq!(s.certificates.expiring_soon[1].not_after, at(days(2)));
        assert_eq!(s.certificates.total, 5);
    }

    #[test]
    fn backups_older_than_26_hours_are_stale() {
        let hours = SignedDuration::from_hours;
        let fleet = Fleet {
            sites: vec![
                site(SiteAt {
                    name: "fresh",
                    last_backup: Some(hours(-25)),
                    ..SiteAt::default()
                }),
                site(SiteAt {
                    name: "edge",
                    last_backup: Some(hours(-26)),
                    ..SiteAt::default()
                }),
                site(SiteAt {
                    name: "old",
                    last_backup: Some(hours(-26) - mins(1)),
                    ..SiteAt::default()
                }),
                site(SiteAt {
                    name: "never",
                    last_backup: None,
                    ..SiteAt::default()
                }),
                site(SiteAt {
                    name: "new",
                    last_backup: None,
                    created: hours(-3),
                    ..SiteAt::default()
                }),
                site(SiteAt {
                    name: "suspended",
                    last_backup: None,
                    backups_suspended: true,
                    ..SiteAt::default()
                }),
            ],
            ..Fleet::default()
        };
        let s = summarize(&fleet, now());
        let names: Vec<&str> = s.backups.stale.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(
            names,
            ["never", "old"],
            "never backed up first, then oldest"
        );
        assert_eq!(s.backups.stale[0].last_backup, None);
        assert_eq!(
            s.backups.stale[1].last_backup,
            Some(at(hours(-26) - mins(1)))
        );
        assert_eq!(s.backups.suspended, 1);
    }

    #[test]
    fn sites_not_ready_for_more_than_10_minutes_are_listed_with_their_reason() {
        let fleet = Fleet {
            sites: vec![
                site(SiteAt {
                    name: "ok",
                    ..SiteAt::default()
                }),
                site(SiteAt {
                    name: "recent",
                    ready: Some((false, "Progressing", mins(-9))),
                    ..SiteAt::default()
                }),
                site(SiteAt {
                    name: "edge",
                    ready: Some((false, "Progressing", mins(-10))),
                    ..SiteAt::default()
                }),
                site(SiteAt {
                    name: "stuck",
                    ready: Some((false, "HostnameTaken", mins(-11))),
                    ..SiteAt::default()
                }),
                site(SiteAt {
                    name: "long",
                    ready: Some((false, "NotEntitled", days(-2))),
                    ..SiteAt::default()
                }),
                site(SiteAt {
                    name: "silent",
                    ready: None,
                    created: mins(-30),
                    ..SiteAt::default()
                }),
            ],
            ..Fleet::default()
        };
        let s = summarize(&fleet, now());
        let got: Vec<(&str, &str)> = s
            .not_ready
            .iter()
            .map(|n| (n.name.as_str(), n.reason.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("long", "NotEntitled"),
                ("silent", "NoStatus"),
                ("stuck", "HostnameTaken")
            ]
        );
        assert_eq!(s.not_ready[2].message, "HostnameTaken message");
        assert_eq!(s.not_ready[2].since, Some(at(mins(-11))));
        assert_eq!(s.not_ready[0].namespace, "tenant-mons");
        assert_eq!(s.not_ready[0].product, "web");
    }

    #[test]
    fn plans_in_progress_are_listed_and_complete_ones_are_not() {
        let status = |complete: bool| {
            json!({
                "conditions": [
                    {"type": "Complete", "status": if complete { "True" } else { "False" }, "reason": "SitesLeft", "message": "", "lastTransitionTime": at(mins(-5))},
                    {"type": "Progressing", "status": "True", "reason": "Running", "message": "wave 3: 5 in flight", "lastTransitionTime": at(mins(-5))},
                ],
                "sites": {"total": 159, "pending": 110, "inFlight": 5, "done": 40, "failed": 4},
                "currentWave": 3,
            })
        };
        let rollout = |name: &str, complete: bool| -> ReleaseRollout {
            from(json!({
                "apiVersion": mutu_api::API_VERSION, "kind": "ReleaseRollout", "metadata": {"name": name},
                "spec": {"product": "delib", "release": "4.2.19", "waveSize": 20},
                "status": status(complete),
            }))
        };
        let migration: MigrationPlan = from(json!({
            "apiVersion": mutu_api::API_VERSION, "kind": "MigrationPlan", "metadata": {"name": "physical-to-frontend"},
            "spec": {"from": "physical", "to": "frontend", "waveSize": 10, "paused": true},
        }));
        let fleet = Fleet {
            rollouts: vec![
                rollout("delib-4.2.19", false),
                rollout("delib-4.2.18", true),
            ],
            migrations: vec![migration],
            ..Fleet::default()
        };
        let s = summarize(&fleet, now());
        assert_eq!(s.plans.len(), 2);
        let m = &s.plans[0];
        assert_eq!(
            (m.kind.as_str(), m.name.as_str(), m.target.as_str()),
            (
                "MigrationPlan",
                "physical-to-frontend",
                "physical -> frontend"
            )
        );
        assert_eq!(
            (m.state.as_str(), m.paused, m.total, m.current_wave),
            ("Pending", true, 0, None)
        );
        let r = &s.plans[1];
        assert_eq!(
            (r.name.as_str(), r.target.as_str()),
            ("delib-4.2.19", "delib -> 4.2.19")
        );
        assert_eq!(
            (r.done, r.total, r.failed, r.in_flight, r.current_wave),
            (40, 159, 4, 5, Some(3))
        );
        assert_eq!(r.state, "Running");
        let text = render(&s);
        assert!(
            text.contains("ReleaseRollout delib-4.2.19 (delib -> 4.2.19): 40/159 done, 4 failed, 5 in flight, wave 3; Running: wave 3: 5 in flight"),
            "{text}"
        );
        assert!(
            text.contains("MigrationPlan physical-to-frontend (physical -> frontend): 0/0 done, 0 failed, 0 in flight, paused; Pending:"),
            "{text}"
        );
    }

    #[test]
    fn the_json_has_the_documented_shape() {
        let fleet = Fleet {
            tenants: vec![tenant("mons", "commune", Some("hainaut"), true)],
            sites: vec![
                site(SiteAt::default()),
                site(SiteAt {
                    name: "stuck",
                    ready: Some((false, "HostnameTaken", days(-1))),
                    last_backup: None,
                    ..SiteAt::default()
                }),
            ],
            certificates: vec![certificate("web-tls", Some(days(3)))],
            ..Fleet::default()
        };
        let v = serde_json::to_value(summarize(&fleet, now())).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v["now"], "2026-03-10T12:00:00Z");
        assert_eq!(v["tenants"]["total"], 1);
        assert_eq!(v["tenants"]["byCategory"]["commune"], 1);
        assert_eq!(v["tenants"]["byProvince"]["hainaut"], 1);
        assert_eq!(v["sites"]["total"], 2);
        assert_eq!(v["sites"]["ready"], 1);
        assert_eq!(v["sites"]["byProduct"]["web"]["total"], 2);
        assert_eq!(v["sites"]["byProduct"]["web"]["ready"], 1);
        assert_eq!(
            v["sites"]["byProduct"]["web"]["byRelease"]["6.0.9"],
            json!({"total": 2, "ready": 1})
        );
        assert_eq!(
            v["certificates"]["expiringSoon"][0],
            json!({"namespace": "tenant-mons", "name": "web-tls", "notAfter": at(days(3)), "expired": false})
        );
        assert_eq!(
            v["backups"]["stale"][0],
            json!({"namespace": "tenant-mons", "name": "stuck", "product": "web", "lastBackup": null})
        );
        assert_eq!(v["plans"], json!([]));
        assert_eq!(v["notReady"][0]["name"], "stuck");
        assert_eq!(v["notReady"][0]["reason"], "HostnameTaken");
        assert_eq!(v["notReady"][0]["message"], "HostnameTaken message");
        assert_eq!(v["notReady"][0]["since"], at(days(-1)));
    }

    #[test]
    fn the_text_fits_a_screen_and_names_what_is_wrong() {
        let sites: Vec<PloneSite> = (0..40)
            .map(|i| {
                let name: &'static str = Box::leak(format!("site-{i:02}").into_boxed_str());
                site(SiteAt {
                    name,
                    ready: Some((false, "Degraded", days(-1))),
                    ..SiteAt::default()
                })
            })
            .collect();
        let fleet = Fleet {
            tenants: vec![tenant("mons", "commune", Some("hainaut"), true)],
            sites,
            certificates: vec![certificate("web-tls", Some(days(3)))],
            ..Fleet::default()
        };
        let text = render(&summarize(&fleet, now()));
        assert!(text.contains("Members: 1 (1 Ready, 0 suspended)"), "{text}");
        assert!(text.contains("by category: commune 1"), "{text}");
        assert!(
            text.contains("tenant-mons/web-tls  notAfter 2026-03-13T12:00:00Z  (in 3d 0h)"),
            "{text}"
        );
        assert!(
            text.contains("Sites not Ready for more than 10 minutes: 40"),
            "{text}"
        );
        assert!(
            text.contains(
                "tenant-mons/site-00 (web)  Degraded: Degraded message  (since 1d 0h ago)"
            ),
            "{text}"
        );
        assert!(
            text.contains("... and 25 more (`--output json` lists them all)"),
            "{text}"
        );
        assert!(
            text.contains("Migrations and rollouts in progress: none"),
            "{text}"
        );
        assert!(text.lines().count() < 60, "{text}");
    }

    #[test]
    fn durations_read_like_a_person_writes_them() {
        assert_eq!(human(SignedDuration::from_secs(40)), "40s");
        assert_eq!(human(mins(12)), "12m");
        assert_eq!(human(mins(65)), "1h 05m");
        assert_eq!(human(days(3) + SignedDuration::from_hours(4)), "3d 4h");
    }
}
