//! The waves of MigrationPlans and ReleaseRollouts: which sites change
//! together and in which order. One function, [`waves`], gives both what
//! `mutu migrate preview` / `mutu rollout preview` print and what the engine
//! records in the plan's status, so what is previewed is what runs: the waves
//! already recorded stay as they are, new sites come in new waves after them.
//!
//! - [`progress`]: the bookkeeping of a plan's status (which sites may start,
//!   the counts, the waves' times, the window).

pub mod progress;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};
use mutu_api::wave::{SiteProgress, SiteStep, WaveProgress};
use mutu_api::{MigrationPlanSpec, PloneSite, ReleaseRolloutSpec};

/// Name of the cohort of the sites no cohort of a rollout selects.
pub const REST: &str = "rest";

/// One wave: the sites (`namespace/name`, in order) that change together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wave {
    /// 1 for the first wave.
    pub index: i32,
    pub cohort: Option<String>,
    pub sites: Vec<String>,
}

impl Wave {
    /// `{"index", "cohort", "sites"}`, without `cohort` when there is none.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({"index": self.index, "sites": self.sites});
        if let (Some(c), Some(o)) = (&self.cohort, v.as_object_mut()) {
            o.insert("cohort".into(), serde_json::json!(c));
        }
        v
    }
}

/// The sites a plan should change, in order, under the name of their cohort
/// (`None` for a migration): never two cohorts in one group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cohort {
    pub name: Option<String>,
    pub sites: Vec<String>,
}

/// A selector that cannot be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SelectorError {
    pub field: String,
    pub message: String,
}

fn selector(field: &str, s: &LabelSelector) -> Result<Selector, SelectorError> {
    Selector::try_from(s.clone()).map_err(|e| SelectorError {
        field: field.to_string(),
        message: format!("{e}; write matchLabels or matchExpressions with the operators In, NotIn, Exists or DoesNotExist"),
    })
}

/// `namespace/name` of a site.
pub fn id(site: &PloneSite) -> String {
    format!(
        "{}/{}",
        site.namespace().unwrap_or_default(),
        site.name_any()
    )
}

/// The sites a migration moves: those the selector matches that run on the
/// `from` pool now (sites already on `to` have nothing to do), in namespace
/// and name order.
pub fn migration_candidates(
    spec: &MigrationPlanSpec,
    sites: &[PloneSite],
) -> Result<Vec<Cohort>, SelectorError> {
    let sel = selector("spec.selector", &spec.selector)?;
    let mut ids: Vec<String> = sites
        .iter()
        .filter(|s| s.metadata.deletion_timestamp.is_none())
        .filter(|s| sel.matches(s.labels()))
        .filter(|s| s.status.as_ref().and_then(|st| st.pool.as_deref()) == Some(spec.from.as_str()))
        .map(id)
        .collect();
    ids.sort();
    Ok(vec![Cohort {
        name: None,
        sites: ids,
    }])
}

/// The sites a rollout upgrades: the product's sites not on the release yet,
/// cohort by cohort in the order given (a site goes to the first cohort that
/// selects it; those none selects come last, as cohort `rest`), each in
/// namespace and name order.
pub fn rollout_candidates(
    spec: &ReleaseRolloutSpec,
    sites: &[PloneSite],
) -> Result<Vec<Cohort>, SelectorError> {
    let cohorts = spec
        .cohorts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Ok((
                c.name.clone(),
                selector(&format!("spec.cohorts[{i}].selector"), &c.selector)?,
            ))
        })
        .collect::<Result<Vec<_>, SelectorError>>()?;
    let mut candidates: Vec<&PloneSite> = sites
        .iter()
        .filter(|s| s.metadata.deletion_timestamp.is_none())
        .filter(|s| s.spec.product == spec.product)
        .filter(|s| {
            s.status.as_ref().and_then(|st| st.release.as_deref()) != Some(spec.release.as_str())
        })
        .collect();
    candidates.sort_by_key(|s| id(s));
    let mut taken: BTreeSet<String> = BTreeSet::new();
    let mut groups: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for s in &candidates {
        let cohort = cohorts
            .iter()
            .position(|(_, sel)| sel.matches(s.labels()))
            .unwrap_or(cohorts.len());
        if taken.insert(id(s)) {
            groups.entry(cohort).or_default().push(id(s));
        }
    }
    Ok(groups
        .into_iter()
        .map(|(i, sites)| Cohort {
            name: Some(
                cohorts
                    .get(i)
                    .map(|(n, _)| n.as_str())
                    .unwrap_or(REST)
                    .into(),
            ),
            sites,
        })
        .collect())
}

/// The waves of a plan, as the engine records them: the recorded waves of
/// `progress` unchanged (less the pending sites that no longer exist, which
/// leave the plan), then the candidates not recorded yet in new waves after
/// the last one, `wave_size` at a time, never two cohorts in one wave. A
/// recorded wave's cohort is the one `recorded` gives it, else its sites'.
pub fn waves(
    progress: &[SiteProgress],
    recorded: &[WaveProgress],
    candidates: &[Cohort],
    wave_size: i32,
    exists: impl Fn(&str) -> bool,
) -> Vec<Wave> {
    let cohort_of_site: BTreeMap<&str, &str> = candidates
        .iter()
        .filter_map(|c| Some((c.name.as_deref()?, &c.sites)))
        .flat_map(|(name, sites)| sites.iter().map(move |s| (s.as_str(), name)))
        .collect();
    let mut out: Vec<Wave> = Vec::new();
    let mut numbers: BTreeMap<i32, usize> = BTreeMap::new();
    for p in progress.iter().filter(|p| stays(p, &exists)) {
        let site = progress::key(p);
        let at = *numbers.entry(p.wave).or_insert_with(|| {
            out.push(Wave {
                index: p.wave,
                cohort: recorded
                    .iter()
                    .find(|w| w.index == p.wave)
                    .and_then(|w| w.cohort.clone()),
                sites: Vec::new(),
            });
            out.len() - 1
        });
        let wave = &mut out[at];
        if wave.cohort.is_none() {
            wave.cohort = cohort_of_site.get(site.as_str()).map(|c| c.to_string());
        }
        wave.sites.push(site);
    }
    out.sort_by_key(|w| w.index);
    let known: BTreeSet<&str> = out
        .iter()
        .flat_map(|w| w.sites.iter().map(String::as_str))
        .collect();
    let size = wave_size.max(1) as usize;
    let mut next = out.last().map(|w| w.index).unwrap_or(0) + 1;
    let mut fresh = Vec::new();
    for cohort in candidates {
        let sites: Vec<String> = cohort
            .sites
            .iter()
            .filter(|s| !known.contains(s.as_str()))
            .cloned()
            .collect();
        for chunk in sites.chunks(size) {
            fresh.push(Wave {
                index: next,
                cohort: cohort.name.clone(),
                sites: chunk.to_vec(),
            });
            next += 1;
        }
    }
    out.extend(fresh);
    out
}

/// A recorded site stays in the plan unless it is pending and gone.
fn stays(p: &SiteProgress, exists: &impl Fn(&str) -> bool) -> bool {
    p.step != SiteStep::Pending || exists(&progress::key(p))
}

/// Records `waves` (from [`waves`] over the same `progress`) in `progress`:
/// drops the pending sites that no longer exist and adds the sites not
/// recorded yet, pending, in their wave. Returns whether anything changed.
pub fn record(
    progress: &mut Vec<SiteProgress>,
    waves: &[Wave],
    exists: impl Fn(&str) -> bool,
) -> bool {
    let before = progress.len();
    progress.retain(|p| stays(p, &exists));
    let mut changed = progress.len() != before;
    let known: BTreeSet<String> = progress.iter().map(progress::key).collect();
    for w in waves {
        for site in w.sites.iter().filter(|s| !known.contains(*s)) {
            let (namespace, name) = site.split_once('/').unwrap_or(("", site.as_str()));
            progress.push(progress::pending(namespace, name, w.index));
            changed = true;
        }
    }
    changed
}

/// The waves of a plan not started yet: every candidate, `waveSize` at a time.
pub fn migration_waves(
    spec: &MigrationPlanSpec,
    sites: &[PloneSite],
) -> Result<Vec<Wave>, SelectorError> {
    let candidates = migration_candidates(spec, sites)?;
    Ok(waves(&[], &[], &candidates, spec.wave_size, |_| true))
}

/// The waves of a rollout not started yet: every candidate, cohort by
/// cohort, `waveSize` at a time.
pub fn rollout_waves(
    spec: &ReleaseRolloutSpec,
    sites: &[PloneSite],
) -> Result<Vec<Wave>, SelectorError> {
    let candidates = rollout_candidates(spec, sites)?;
    Ok(waves(&[], &[], &candidates, spec.wave_size, |_| true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn site(
        ns: &str,
        name: &str,
        labels: serde_json::Value,
        pool: &str,
        release: &str,
    ) -> PloneSite {
        serde_json::from_value(json!({
            "apiVersion": "hosting.imio.be/v1alpha1", "kind": "PloneSite",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"product": "delib", "hostnames": [format!("{name}.example.be")]},
            "status": {"pool": pool, "release": release},
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn fleet() -> Vec<PloneSite> {
        (0..25)
            .map(|i| {
                site(
                    &format!("tenant-{:02}", i % 5),
                    &format!("site-{i:02}"),
                    json!({"canary": if i % 10 == 0 { "yes" } else { "no" }, "migrate": "yes"}),
                    if i == 24 { "frontend" } else { "physical" },
                    if i == 23 { "4.3.0" } else { "4.2.18" },
                )
            })
            .collect()
    }

    fn step(ns: &str, name: &str, wave: i32, step: SiteStep) -> SiteProgress {
        SiteProgress {
            step,
            ..progress::pending(ns, name, wave)
        }
    }

    fn ids(sites: &[&str]) -> Vec<String> {
        sites.iter().map(|s| s.to_string()).collect()
    }

    fn migration(wave_size: i32) -> MigrationPlanSpec {
        serde_json::from_value(json!({
            "selector": {"matchLabels": {"migrate": "yes"}},
            "from": "physical", "to": "frontend", "waveSize": wave_size, "maxInFlight": 3,
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The waves as recorded in `progress`, numbered as there.
    fn recorded_waves(progress: &[SiteProgress]) -> Vec<(i32, Vec<String>)> {
        let mut by: BTreeMap<i32, Vec<String>> = BTreeMap::new();
        for p in progress {
            by.entry(p.wave).or_default().push(progress::key(p));
        }
        by.into_iter().collect()
    }

    #[test]
    fn a_migration_moves_the_selected_sites_on_the_from_pool_in_waves() {
        let spec = migration(10);
        let waves = migration_waves(&spec, &fleet()).unwrap_or_else(|e| panic!("{e}"));
        let sizes: Vec<usize> = waves.iter().map(|w| w.sites.len()).collect();
        assert_eq!(sizes, [10, 10, 4], "site-24 is on frontend already");
        assert_eq!(waves[0].index, 1);
        assert!(
            waves
                .iter()
                .all(|w| w.sites.windows(2).all(|p| p[0] < p[1]))
        );
        let all: Vec<&String> = waves.iter().flat_map(|w| &w.sites).collect();
        assert!(!all.iter().any(|s| s.ends_with("site-24")));
        // The same answer for the fleet in another order.
        let mut reversed = fleet();
        reversed.reverse();
        assert_eq!(migration_waves(&spec, &reversed).ok(), Some(waves));
    }

    #[test]
    fn a_rollout_goes_cohort_by_cohort_and_skips_sites_on_the_release() {
        let spec: ReleaseRolloutSpec = serde_json::from_value(json!({
            "product": "delib", "release": "4.3.0",
            "cohorts": [{"name": "canary", "selector": {"matchLabels": {"canary": "yes"}}}],
            "waveSize": 10, "maxInFlight": 2,
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let waves = rollout_waves(&spec, &fleet()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(waves[0].cohort.as_deref(), Some("canary"));
        assert_eq!(waves[0].sites.len(), 3, "site-00, site-10, site-20");
        assert!(waves[1..].iter().all(|w| w.cohort.as_deref() == Some(REST)));
        let total: usize = waves.iter().map(|w| w.sites.len()).sum();
        assert_eq!(total, 24, "site-23 runs 4.3.0 already");
        let indexes: Vec<i32> = waves.iter().map(|w| w.index).collect();
        assert_eq!(indexes, [1, 2, 3, 4]);
    }

    #[test]
    fn a_selector_that_cannot_be_read_names_its_field() {
        let spec: MigrationPlanSpec = serde_json::from_value(json!({
            "selector": {"matchExpressions": [{"key": "migrate", "operator": "Near", "values": ["x"]}]},
            "from": "physical", "to": "frontend", "waveSize": 10,
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let err = migration_waves(&spec, &fleet())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("spec.selector:"), "{err}");
    }

    #[test]
    fn a_new_plan_records_its_waves_and_later_sites_come_after_them() {
        let first = [Cohort {
            name: None,
            sites: ids(&["a/1", "a/2", "a/3"]),
        }];
        let mut p = Vec::new();
        let planned = waves(&p, &[], &first, 2, |_| true);
        assert!(record(&mut p, &planned, |_| true));
        assert_eq!(
            p.iter()
                .map(|s| (progress::key(s), s.wave))
                .collect::<Vec<_>>(),
            [("a/1".into(), 1), ("a/2".into(), 1), ("a/3".into(), 2)]
        );
        let again = waves(&p, &[], &first, 2, |_| true);
        assert_eq!(again, planned);
        assert!(!record(&mut p, &again, |_| true), "nothing new");
        // A site that appears later joins a new wave; moved sites (gone from
        // the candidates) stay where they are.
        let later = [Cohort {
            name: None,
            sites: ids(&["a/0", "a/3"]),
        }];
        let planned = waves(&p, &[], &later, 2, |_| true);
        assert!(record(&mut p, &planned, |_| true));
        assert_eq!(
            p.last().map(|s| (progress::key(s), s.wave)),
            Some(("a/0".into(), 3))
        );
        assert_eq!(p.len(), 4);
    }

    #[test]
    fn a_deleted_pending_site_leaves_the_plan_but_one_in_flight_stays() {
        let mut p = vec![
            step("a", "1", 1, SiteStep::Pending),
            step("a", "2", 1, SiteStep::Moving),
        ];
        let planned = waves(&p, &[], &[], 2, |_| false);
        assert_eq!(planned.len(), 1);
        assert_eq!(planned[0].sites, ids(&["a/2"]));
        assert!(record(&mut p, &planned, |_| false));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].name, "2");
    }

    #[test]
    fn cohorts_never_share_a_wave() {
        let candidates = [
            Cohort {
                name: Some("pilot".into()),
                sites: ids(&["a/1"]),
            },
            Cohort {
                name: Some(REST.into()),
                sites: ids(&["a/2", "a/3"]),
            },
        ];
        let planned = waves(&[], &[], &candidates, 5, |_| true);
        let mut p = Vec::new();
        record(&mut p, &planned, |_| true);
        assert_eq!(p.iter().map(|s| s.wave).collect::<Vec<_>>(), [1, 2, 2]);
        assert_eq!(planned[1].cohort.as_deref(), Some(REST));
    }

    #[test]
    fn the_preview_shows_what_the_engine_records_for_a_plan_under_way() {
        // Recorded: wave 1 done, wave 2 with one site in flight and one pending
        // (site-13, since deleted), wave 3 pending. The recorded waves were cut
        // by an older waveSize of 2; it is 10 now.
        let recorded = vec![
            step("tenant-00", "site-00", 1, SiteStep::Done),
            step("tenant-01", "site-01", 1, SiteStep::Done),
            step("tenant-02", "site-02", 2, SiteStep::CopyingData),
            step("tenant-03", "site-13", 2, SiteStep::Pending),
            step("tenant-04", "site-04", 3, SiteStep::Pending),
        ];
        let mut sites: Vec<PloneSite> = fleet()
            .into_iter()
            .filter(|s| s.name_any() != "site-13")
            .collect();
        for s in sites.iter_mut() {
            // The done sites run on the new pool now.
            if ["site-00", "site-01"].contains(&s.name_any().as_str())
                && let Some(st) = s.status.as_mut()
            {
                st.pool = Some("frontend".into());
            }
        }
        let spec = migration(10);
        let existing: BTreeSet<String> = sites.iter().map(id).collect();
        let exists = |k: &str| existing.contains(k);
        let candidates = migration_candidates(&spec, &sites).unwrap_or_else(|e| panic!("{e}"));

        // What `mutu migrate preview` prints.
        let preview = waves(&recorded, &[], &candidates, spec.wave_size, exists);
        // What the engine records.
        let mut engine = recorded.clone();
        let planned = waves(&engine, &[], &candidates, spec.wave_size, exists);
        assert!(record(&mut engine, &planned, exists));

        let shown: Vec<(i32, Vec<String>)> =
            preview.iter().map(|w| (w.index, w.sites.clone())).collect();
        assert_eq!(shown, recorded_waves(&engine), "preview and engine agree");
        // The recorded waves are unchanged (less the deleted pending site)…
        assert_eq!(
            shown[0],
            (1, ids(&["tenant-00/site-00", "tenant-01/site-01"]))
        );
        assert_eq!(shown[1], (2, ids(&["tenant-02/site-02"])));
        assert_eq!(shown[2], (3, ids(&["tenant-04/site-04"])));
        // …and the new sites come after them, waveSize at a time.
        let sizes: Vec<usize> = shown[3..].iter().map(|(_, s)| s.len()).collect();
        assert_eq!(
            sizes,
            [10, 9],
            "24 on physical, less 02 and 04 recorded, 13 gone"
        );
        assert_eq!(shown[3].0, 4);
        // And the engine's next reconcile finds nothing to add.
        assert_eq!(
            waves(&engine, &[], &candidates, spec.wave_size, exists),
            preview
        );
    }
}
