//! BackupPolicy, Backup and Restore: when and how sites are backed up, one backup run of a
//! site, and one restore of a site to a backup.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{HH_MM_RULE, Window};

/// When, how often and how many sites at once are backed up, and how long backups are kept.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "hosting.imio.be",
    version = "v1alpha1",
    kind = "BackupPolicy",
    plural = "backuppolicies",
    status = "BackupPolicyStatus",
    cel,
    derive = "PartialEq",
    shortname = "bp",
    category = "mutu",
    doc = "When sites are backed up (a nightly window), how many at once, and how long backups are kept. One policy is the default; others apply to the products they list or to the sites that name them.",
    printcolumn(name = "Default", type_ = "boolean", json_path = ".spec.default"),
    printcolumn(name = "Start", type_ = "string", json_path = ".spec.window.start"),
    printcolumn(name = "End", type_ = "string", json_path = ".spec.window.end"),
    printcolumn(
        name = "Max Concurrent",
        type_ = "integer",
        json_path = ".spec.maxConcurrent"
    ),
    printcolumn(name = "Sites", type_ = "integer", json_path = ".status.sites"),
    printcolumn(
        name = "Needed",
        type_ = "integer",
        json_path = ".status.neededConcurrency"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BackupPolicySpec {
    /// Nightly window in which backups start, e.g. 22:00 to 05:00 Europe/Brussels. Each site
    /// gets a fixed start time inside it, spread so that at most `maxConcurrent` run at once.
    pub window: Window,

    /// Most backups running at the same time across the cluster. At least 1.
    #[x_kube(validation = Rule::new("self >= 1").message(
        "spec.maxConcurrent: must be at least 1 backup at a time"
    ))]
    pub max_concurrent: i32,

    /// Most backups running at the same time on one node. Leave it out for no per-node limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message(
        "spec.maxPerNode: must be at least 1 backup at a time per node (leave it out for no limit)"
    ))]
    pub max_per_node: Option<i32>,

    /// How many backups are kept.
    #[serde(default)]
    pub retention: Retention,

    /// Weekly ZODB pack (removes old object revisions) before that night's backup. Leave it
    /// out to never pack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pack: Option<Pack>,

    /// Products whose sites use this policy unless they name another one, e.g. `delib`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub products: Vec<String>,

    /// Whether this is the default policy, used by sites no other policy covers. Only one
    /// policy should be the default; when several are, mutu uses the oldest and reports it.
    #[serde(default)]
    pub default: bool,
}

/// How many backups are kept, per period.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.daily + self.weekly + self.monthly > 0").message(
    "spec.retention: daily, weekly and monthly are all 0, which would keep no backup at all; keep at least one, e.g. daily: 7"
))]
pub struct Retention {
    /// Daily backups kept (the most recent ones).
    #[serde(default = "default_daily")]
    #[x_kube(validation = Rule::new("self >= 0").message("spec.retention.daily: must be 0 or more"))]
    pub daily: i32,

    /// Weekly backups kept (the last of each week).
    #[serde(default = "default_weekly")]
    #[x_kube(validation = Rule::new("self >= 0").message("spec.retention.weekly: must be 0 or more"))]
    pub weekly: i32,

    /// Monthly backups kept (the last of each month).
    #[serde(default = "default_monthly")]
    #[x_kube(validation = Rule::new("self >= 0").message("spec.retention.monthly: must be 0 or more"))]
    pub monthly: i32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            daily: default_daily(),
            weekly: default_weekly(),
            monthly: default_monthly(),
        }
    }
}

fn default_daily() -> i32 {
    7
}

fn default_weekly() -> i32 {
    4
}

fn default_monthly() -> i32 {
    6
}

/// Weekly ZODB pack.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Pack {
    /// Day of the week the pack runs, e.g. `sunday`.
    pub day: Weekday,

    /// Local time (in the window's time zone) the pack starts, HH:MM. Leave it out to start at
    /// the window's start.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 5))]
    #[x_kube(validation = Rule::new(HH_MM_RULE).message(
        "spec.pack.start: must be a 24-hour time HH:MM between 00:00 and 23:59, e.g. 21:00"
    ))]
    pub start: Option<String>,

    /// Days of history the pack keeps (undo stays possible within them).
    #[serde(default)]
    #[x_kube(validation = Rule::new("self >= 0").message("spec.pack.keepDays: must be 0 or more days"))]
    pub keep_days: i32,
}

/// A day of the week.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[schemars(description = "")] // keep the field's doc in the CRD: see the `common` module doc
pub enum Weekday {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

/// What mutu observed about a backup policy.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackupPolicyStatus {
    /// The `metadata.generation` this status describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Current state: `Ready` when every covered site has a start time inside the window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// Number of sites this policy covers now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sites: Option<i32>,

    /// Tonight's window (the one open now, else the next): when it opens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opens: Option<Time>,

    /// When tonight's window closes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closes: Option<Time>,

    /// Sum of the covered sites' expected backup lengths, in minutes (from their recent
    /// backups).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_minutes: Option<i64>,

    /// Backups at once the fleet needs to fit in the window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needed_concurrency: Option<i64>,

    /// Most backups at once in tonight's plan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_concurrency: Option<i32>,

    /// Backups planned after the window closes because it cannot hold them all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overruns: Option<i32>,
}

/// One backup of one site.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "hosting.imio.be",
    version = "v1alpha1",
    kind = "Backup",
    namespaced,
    status = "RunStatus",
    cel,
    derive = "PartialEq",
    shortname = "bk",
    category = "mutu",
    doc = "One backup run of one site (ZODB with repozo, or a PostgreSQL dump for RelStorage, plus blobs). Created by the backup schedule, before migrations and upgrades, or by hand. Reports Complete or Failed.",
    printcolumn(name = "Site", type_ = "string", json_path = ".spec.site"),
    printcolumn(name = "Trigger", type_ = "string", json_path = ".spec.trigger"),
    printcolumn(
        name = "Complete",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Complete\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Complete\")].reason"
    ),
    printcolumn(name = "Size", type_ = "integer", json_path = ".status.size"),
    printcolumn(name = "Started", type_ = "date", json_path = ".status.startTime"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self == oldSelf").message(
    "spec: a Backup cannot be changed once created; create a new Backup instead"
))]
pub struct BackupSpec {
    /// PloneSite to back up, in the same namespace.
    #[schemars(length(max = 253))]
    pub site: String,

    /// BackupPolicy whose retention applies. Leave it out for the site's policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub policy: Option<String>,

    /// Why the backup was taken: `Manual` (the default), `Scheduled`, `Migration` or
    /// `Rollout`. Migration and rollout backups are kept until their plan is deleted.
    #[serde(default)]
    pub trigger: BackupTrigger,
}

/// Why a backup was taken.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[schemars(description = "")] // keep the field's doc in the CRD: see the `common` module doc
pub enum BackupTrigger {
    /// Asked for by a person.
    #[default]
    Manual,
    /// By the policy's nightly schedule.
    Scheduled,
    /// Before a MigrationPlan moved the site.
    Migration,
    /// Before a ReleaseRollout upgraded the site.
    Rollout,
}

/// Restore of one site to one of its backups.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "hosting.imio.be",
    version = "v1alpha1",
    kind = "Restore",
    namespaced,
    status = "RunStatus",
    cel,
    derive = "PartialEq",
    shortname = "rst",
    category = "mutu",
    doc = "One restore of a site to one of its Backups. The site is stopped, its database replaced, then started again. Reports Complete or Failed.",
    printcolumn(name = "Site", type_ = "string", json_path = ".spec.site"),
    printcolumn(name = "Backup", type_ = "string", json_path = ".spec.backup"),
    printcolumn(
        name = "Complete",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Complete\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Complete\")].reason"
    ),
    printcolumn(name = "Started", type_ = "date", json_path = ".status.startTime"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self == oldSelf").message(
    "spec: a Restore cannot be changed once created; create a new Restore instead"
))]
#[x_kube(validation = Rule::new("!has(self.confirm) || self.confirm == self.site").message(
    "spec.confirm: write the site's name (spec.site) to confirm that its current data is replaced"
))]
pub struct RestoreSpec {
    /// PloneSite to restore, in the same namespace. Its current data is replaced.
    #[schemars(length(max = 253))]
    pub site: String,

    /// Backup (in the same namespace) to restore from.
    #[schemars(length(max = 253))]
    pub backup: String,

    /// Restore the database as it was at this time (RFC 3339, e.g.
    /// `2019-12-31T03:00:00Z`), within what the backup holds. Leave it out for the backup's
    /// end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub point_in_time: Option<Time>,

    /// The site's name again (as in `spec.site`), to confirm that its current data is
    /// replaced. Required when the site is live (Ready): without it, the Restore fails and
    /// changes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub confirm: Option<String>,
}

/// What mutu observed about a backup or restore run.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RunStatus {
    /// The `metadata.generation` this status describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Current state: `Complete` when the run succeeded, `Failed` when it gave up (the
    /// message says why), and `Ready`: for a Backup, whether it can be restored from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// When the run started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,

    /// When the run finished, successfully or not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,

    /// Size of the backup in bytes (Backup only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,

    /// Where the backup is stored, e.g. `tenant-mons/delib/2019-12-31T03-00-00Z` (Backup only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,

    /// Attempts made so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i32>,
}
