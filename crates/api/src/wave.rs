//! MigrationPlan and ReleaseRollout: change many sites in waves (move them to another node
//! pool, or upgrade them to a new release), sharing one wave status shape.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::core::Duration;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{DURATION_RULE, Pool, RELEASE_RULE, Window};

/// Move the selected sites from one node pool to another, a wave at a time.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "hosting.imio.be",
    version = "v1alpha1",
    kind = "MigrationPlan",
    status = "WaveStatus",
    cel,
    derive = "PartialEq",
    shortname = "mp",
    category = "mutu",
    doc = "Moves the selected PloneSites from one node pool to another (e.g. physical to frontend) in waves: each site is backed up, moved, checked, and counted done or failed. Pauses by itself when too many fail.",
    printcolumn(name = "From", type_ = "string", json_path = ".spec.from"),
    printcolumn(name = "To", type_ = "string", json_path = ".spec.to"),
    printcolumn(name = "Total", type_ = "integer", json_path = ".status.sites.total"),
    printcolumn(name = "Done", type_ = "integer", json_path = ".status.sites.done"),
    printcolumn(name = "Failed", type_ = "integer", json_path = ".status.sites.failed"),
    printcolumn(name = "Wave", type_ = "integer", json_path = ".status.currentWave"),
    printcolumn(name = "Paused", type_ = "boolean", json_path = ".spec.paused"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.from != self.to").message(
    "spec.to: must differ from spec.from; a plan moves sites from one pool to another"
).field_path(".to"))]
pub struct MigrationPlanSpec {
    /// Which PloneSites to move, by label (all namespaces). Sites already on `to` are done.
    /// An empty selector selects every site on `from`.
    #[serde(default)]
    pub selector: LabelSelector,

    /// Pool the sites leave: `frontend` or `physical`.
    pub from: Pool,

    /// Pool the sites go to: `frontend` or `physical`.
    pub to: Pool,

    /// Sites per wave. A wave starts when the previous one is finished.
    #[x_kube(validation = Rule::new("self >= 1").message("spec.waveSize: must be at least 1 site per wave"))]
    pub wave_size: i32,

    /// Most sites being moved at the same time within a wave.
    #[serde(default = "one")]
    #[x_kube(validation = Rule::new("self >= 1").message("spec.maxInFlight: must be at least 1 site at a time"))]
    pub max_in_flight: i32,

    /// Time window in which sites may be moved, e.g. 22:00 to 05:00 Europe/Brussels. Leave it
    /// out to move at any time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,

    /// Stop starting new moves; moves under way finish. Set back to false to resume.
    #[serde(default)]
    pub paused: bool,

    /// Number of failed sites at which the plan pauses itself, for a person to look.
    #[serde(default = "one")]
    #[x_kube(validation = Rule::new("self >= 1").message(
        "spec.failureThreshold: must be at least 1 failed site"
    ))]
    pub failure_threshold: i32,

    /// How long a moved site's data is kept on the old pool, as a duration such as `168h`,
    /// in case it has to go back. Leave it out for 168h (a week).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::common::read_optional_duration"
    )]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(DURATION_RULE).message(
        "spec.retention: must be a duration in hours, minutes or seconds, e.g. 168h"
    ))]
    pub retention: Option<Duration>,

    /// How long a changed site may take to become Ready before it is put back as it was, as
    /// a duration such as `10m`. Leave it out for 10 minutes.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::common::read_optional_duration"
    )]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(DURATION_RULE).message(
        "spec.verifyTimeout: must be a duration in hours, minutes or seconds, e.g. 10m"
    ))]
    pub verify_timeout: Option<Duration>,
}

/// Upgrade every site of a product to a new release, cohort by cohort, a wave at a time.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "hosting.imio.be",
    version = "v1alpha1",
    kind = "ReleaseRollout",
    status = "WaveStatus",
    cel,
    derive = "PartialEq",
    shortname = "rr",
    category = "mutu",
    doc = "Upgrades every site of a product to a new release in waves, cohort by cohort (e.g. pilot members first): each site is backed up, upgraded, checked, and counted done or failed. Pauses by itself when too many fail.",
    printcolumn(name = "Product", type_ = "string", json_path = ".spec.product"),
    printcolumn(name = "Release", type_ = "string", json_path = ".spec.release"),
    printcolumn(name = "Total", type_ = "integer", json_path = ".status.sites.total"),
    printcolumn(name = "Done", type_ = "integer", json_path = ".status.sites.done"),
    printcolumn(name = "Failed", type_ = "integer", json_path = ".status.sites.failed"),
    printcolumn(name = "Wave", type_ = "integer", json_path = ".status.currentWave"),
    printcolumn(name = "Paused", type_ = "boolean", json_path = ".spec.paused"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseRolloutSpec {
    /// Product whose sites are upgraded, e.g. `delib`.
    #[schemars(length(max = 63))]
    pub product: String,

    /// Release (image tag) to move them to, e.g. `4.2.19`.
    #[schemars(length(max = 128))]
    #[x_kube(validation = Rule::new(RELEASE_RULE).message(
        "spec.release: must be an image tag: letters, digits, '_', '.' and '-', e.g. 4.2.19"
    ))]
    pub release: String,

    /// Groups of sites upgraded one after the other, in order, e.g. a `pilot` cohort before
    /// `all`. A site belongs to the first cohort that selects it. Leave it out for one cohort
    /// of every site of the product.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub cohorts: Vec<Cohort>,

    /// Sites per wave. A wave starts when the previous one is finished.
    #[x_kube(validation = Rule::new("self >= 1").message("spec.waveSize: must be at least 1 site per wave"))]
    pub wave_size: i32,

    /// Most sites being upgraded at the same time within a wave.
    #[serde(default = "one")]
    #[x_kube(validation = Rule::new("self >= 1").message("spec.maxInFlight: must be at least 1 site at a time"))]
    pub max_in_flight: i32,

    /// Time window in which sites may be upgraded, e.g. 22:00 to 05:00 Europe/Brussels. Leave
    /// it out to upgrade at any time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,

    /// Number of failed sites at which the rollout pauses itself, for a person to look.
    #[serde(default = "one")]
    #[x_kube(validation = Rule::new("self >= 1").message(
        "spec.failureThreshold: must be at least 1 failed site"
    ))]
    pub failure_threshold: i32,

    /// Stop starting new upgrades; upgrades under way finish. Set back to false to resume.
    #[serde(default)]
    pub paused: bool,

    /// How long a changed site may take to become Ready before it is put back as it was, as
    /// a duration such as `10m`. Leave it out for 10 minutes.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::common::read_optional_duration"
    )]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(DURATION_RULE).message(
        "spec.verifyTimeout: must be a duration in hours, minutes or seconds, e.g. 10m"
    ))]
    pub verify_timeout: Option<Duration>,
}

fn one() -> i32 {
    1
}

/// A named group of sites in a rollout.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Cohort {
    /// Name of the cohort, e.g. `pilot`.
    #[schemars(length(max = 63))]
    pub name: String,

    /// Which of the product's PloneSites belong to it, by label. An empty selector selects all
    /// the remaining ones.
    #[serde(default)]
    pub selector: LabelSelector,
}

/// Progress of a MigrationPlan or a ReleaseRollout.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WaveStatus {
    /// The `metadata.generation` this status describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Current state: `Progressing` while waves run, `Complete` when every site is done,
    /// `Failed` when the failure threshold paused it, `Ready` when nothing is left to do.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// Site counts across all waves.
    #[serde(default)]
    pub sites: SiteCounts,

    /// Number (from 1) of the wave under way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_wave: Option<i32>,

    /// Progress of each wave, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waves: Vec<WaveProgress>,

    /// Every site of the plan, in order: its wave, the step it is at, and why failed ones
    /// failed. Recorded before each step starts, so a restarted operator resumes there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub site_progress: Vec<SiteProgress>,

    /// Nodes of the `from` pool the plan cordoned once they held no more sites
    /// (MigrationPlan only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cordoned_nodes: Vec<String>,
}

/// Site counts of a plan.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SiteCounts {
    /// Sites the plan covers.
    #[serde(default)]
    pub total: i32,

    /// Sites not started yet.
    #[serde(default)]
    pub pending: i32,

    /// Sites being changed now.
    #[serde(default)]
    pub in_flight: i32,

    /// Sites changed and checked.
    #[serde(default)]
    pub done: i32,

    /// Sites that failed and were put back as they were.
    #[serde(default)]
    pub failed: i32,
}

/// Progress of one wave.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WaveProgress {
    /// Number of the wave, from 1.
    pub index: i32,

    /// Cohort the wave belongs to (ReleaseRollout only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cohort: Option<String>,

    /// Site counts of this wave.
    #[serde(default)]
    pub sites: SiteCounts,

    /// When the wave started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,

    /// When its last site finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
}

/// Where one site is in a plan.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SiteProgress {
    /// Name of the PloneSite.
    pub name: String,

    /// Namespace of the PloneSite.
    pub namespace: String,

    /// Wave the site is in.
    pub wave: i32,

    /// Step the site is at.
    pub step: SiteStep,

    /// Why the site is at this step: the error for `Failed`, what it waits for otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,

    /// When the site entered this step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<Time>,

    /// Where the site was before the plan changed it, to put it back: its pool (MigrationPlan)
    /// or its release (ReleaseRollout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,

    /// Volume claim of the site's data before the move (MigrationPlan, ZEO sites): kept until
    /// the plan's retention has passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin_volume: Option<String>,

    /// Step at which the site failed, for a failed site.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<SiteStep>,

    /// When the site finished (done or failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished: Option<Time>,
}

/// Steps a site goes through in a wave.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[schemars(description = "")] // keep the field's doc in the CRD: see the `common` module doc
pub enum SiteStep {
    /// Not started.
    Pending,
    /// Checking the site can go (room on the target pool, a valid certificate) and taking a
    /// fresh backup.
    Preflight,
    /// The public sees a maintenance page; the servers still run (MigrationPlan).
    Maintenance,
    /// Placing the site's data on storage of the target pool (MigrationPlan).
    CopyingData,
    /// Starting the site's servers on the target pool (MigrationPlan).
    Moving,
    /// Running the upgrade command and restarting on the new release (ReleaseRollout).
    Upgrading,
    /// Waiting for the site to be Ready, then ending the maintenance.
    Verifying,
    /// Putting a failed site back as it was.
    RollingBack,
    /// Changed and checked.
    Done,
    /// Failed and put back as it was.
    Failed,
}
