//! The bookkeeping of a plan's status, pure: which sites may start now, the
//! counts, the waves' times and the window. The engine records the result in the plan's
//! status before it acts on it.

use std::collections::BTreeSet;

use jiff::Timestamp;
use mutu_api::Window;
use mutu_api::wave::{SiteCounts, SiteProgress, SiteStep, WaveProgress};

/// A site is in flight from the moment it starts until it is done or failed.
pub fn in_flight(step: SiteStep) -> bool {
    !matches!(step, SiteStep::Pending | SiteStep::Done | SiteStep::Failed)
}

/// A site that has nothing left to do.
pub fn finished(step: SiteStep) -> bool {
    matches!(step, SiteStep::Done | SiteStep::Failed)
}

/// `namespace/name` of a site of the plan.
pub fn key(p: &SiteProgress) -> String {
    format!("{}/{}", p.namespace, p.name)
}

/// A site that joins the plan in wave `wave`, not started.
pub fn pending(namespace: &str, name: &str, wave: i32) -> SiteProgress {
    SiteProgress {
        name: name.to_string(),
        namespace: namespace.to_string(),
        wave,
        step: SiteStep::Pending,
        reason: None,
        since: None,
        origin: None,
        origin_volume: None,
        failed_step: None,
        finished: None,
    }
}

/// The wave under way: the first with a site not finished.
pub fn current_wave(progress: &[SiteProgress]) -> Option<i32> {
    progress
        .iter()
        .filter(|p| !finished(p.step))
        .map(|p| p.wave)
        .min()
}

/// Why no site may start now, if none may.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hold {
    Paused,
    Halted { failed: i32, threshold: i32 },
    OutsideWindow(String),
}

/// The pending sites to start now (indexes into `progress`): those of the
/// current wave, in order, while fewer than `max_in_flight` are in flight,
/// skipping sites `busy` elsewhere (another plan works on them).
pub fn to_start(
    progress: &[SiteProgress],
    max_in_flight: i32,
    busy: &BTreeSet<String>,
) -> Vec<usize> {
    let Some(wave) = current_wave(progress) else {
        return Vec::new();
    };
    let flying = progress.iter().filter(|p| in_flight(p.step)).count();
    let room = (max_in_flight.max(1) as usize).saturating_sub(flying);
    progress
        .iter()
        .enumerate()
        .filter(|(_, p)| p.wave == wave && p.step == SiteStep::Pending)
        .filter(|(_, p)| !busy.contains(&key(p)))
        .map(|(i, _)| i)
        .take(room)
        .collect()
}

/// Site counts of `progress`.
pub fn counts<'a>(progress: impl Iterator<Item = &'a SiteProgress>) -> SiteCounts {
    let mut c = SiteCounts::default();
    for p in progress {
        c.total += 1;
        match p.step {
            SiteStep::Pending => c.pending += 1,
            SiteStep::Done => c.done += 1,
            SiteStep::Failed => c.failed += 1,
            _ => c.in_flight += 1,
        }
    }
    c
}

/// Progress of every wave, keeping the start and completion times already
/// recorded in `before`.
pub fn waves(
    progress: &[SiteProgress],
    before: &[WaveProgress],
    cohort_of: impl Fn(i32) -> Option<String>,
    now: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) -> Vec<WaveProgress> {
    let numbers: BTreeSet<i32> = progress.iter().map(|p| p.wave).collect();
    numbers
        .into_iter()
        .map(|index| {
            let sites = counts(progress.iter().filter(|p| p.wave == index));
            let old = before.iter().find(|w| w.index == index);
            let started = sites.pending < sites.total;
            let complete = sites.done + sites.failed == sites.total;
            WaveProgress {
                index,
                cohort: cohort_of(index),
                start_time: old
                    .and_then(|w| w.start_time.clone())
                    .or_else(|| started.then(|| now.clone())),
                completion_time: old
                    .and_then(|w| w.completion_time.clone())
                    .filter(|_| complete)
                    .or_else(|| complete.then(|| now.clone())),
                sites,
            }
        })
        .collect()
}

/// Whether `now` is inside `window` (tonight's, or last night's when it
/// crosses midnight). An unreadable window says why.
pub fn window_open(window: &Window, now: Timestamp) -> Result<bool, String> {
    let tz = jiff::tz::TimeZone::get(&window.time_zone).map_err(|_| {
        format!(
            "spec.window.timeZone: {:?} is not a known time zone",
            window.time_zone
        )
    })?;
    let today = now.to_zoned(tz).date();
    for date in [today.yesterday().unwrap_or(today), today] {
        let (opens, closes) =
            crate::schedule::window_of(window, date).map_err(|e| e.to_string())?;
        if opens.timestamp() <= now && now < closes.timestamp() {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(ns: &str, name: &str, wave: i32, step: SiteStep) -> SiteProgress {
        SiteProgress {
            step,
            ..pending(ns, name, wave)
        }
    }

    #[test]
    fn only_the_current_wave_starts_and_never_more_than_max_in_flight() {
        let mut p = vec![
            site("a", "1", 1, SiteStep::Done),
            site("a", "2", 1, SiteStep::CopyingData),
            site("a", "3", 1, SiteStep::Pending),
            site("a", "4", 1, SiteStep::Pending),
            site("a", "5", 2, SiteStep::Pending),
        ];
        assert_eq!(to_start(&p, 2, &BTreeSet::new()), [2]);
        assert_eq!(to_start(&p, 1, &BTreeSet::new()), Vec::<usize>::new());
        assert_eq!(
            to_start(&p, 3, &BTreeSet::from(["a/3".to_string()])),
            [3],
            "a site busy in another plan waits"
        );
        for s in &mut p[..4] {
            s.step = SiteStep::Failed;
        }
        assert_eq!(current_wave(&p), Some(2));
        assert_eq!(to_start(&p, 3, &BTreeSet::new()), [4]);
        let c = counts(p.iter());
        assert_eq!((c.total, c.failed, c.pending, c.in_flight), (5, 4, 1, 0));
    }

    #[test]
    fn wave_times_are_kept_once_recorded() {
        let t1 = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-11-28T22:00:00Z".parse().unwrap_or_default(),
        );
        let t2 = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-11-28T23:00:00Z".parse().unwrap_or_default(),
        );
        let p = vec![
            site("a", "1", 1, SiteStep::Done),
            site("a", "2", 2, SiteStep::Pending),
        ];
        let first = waves(&p, &[], |_| None, &t1);
        assert_eq!(first[0].start_time, Some(t1.clone()));
        assert_eq!(first[0].completion_time, Some(t1.clone()));
        assert_eq!(first[1].start_time, None);
        let again = waves(&p, &first, |_| None, &t2);
        assert_eq!(again, first);
    }

    #[test]
    fn a_window_across_midnight_is_open_after_midnight_and_closed_at_noon() {
        let w = Window {
            start: "22:00".into(),
            end: "05:00".into(),
            time_zone: "Europe/Brussels".into(),
        };
        let at = |s: &str| s.parse::<Timestamp>().unwrap_or_else(|e| panic!("{e}"));
        // 02:30 in Brussels (winter, UTC+1).
        assert_eq!(window_open(&w, at("2026-11-29T01:30:00Z")), Ok(true));
        assert_eq!(window_open(&w, at("2026-11-28T22:30:00Z")), Ok(true));
        assert_eq!(window_open(&w, at("2026-11-29T11:00:00Z")), Ok(false));
        let bad = Window {
            time_zone: "Mars/Olympus".into(),
            ..w
        };
        assert!(window_open(&bad, at("2026-11-29T01:30:00Z")).is_err());
    }
}
