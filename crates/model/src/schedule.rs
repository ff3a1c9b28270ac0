//! The night's plan of one BackupPolicy: every site gets a start time inside
//! the window, fixed by a hash of its identity (so the same fleet gets the same
//! plan every night and after any restart), moved later only as far as needed
//! so that no more than `maxConcurrent` backups run at once, and no more than
//! `maxPerNode` on one node. Pure: the engine feeds it the fleet from its index.
//!
//! The night is a line of minutes from the window's opening. A site of
//! expected length `d` prefers minute `hash % (window - d + 1)`, then takes the
//! first minute from there (then from the opening) where `d` minutes are free
//! under both caps. Sites that fit nowhere in the window are still planned,
//! after its end, and counted: the policy's status reports them with numbers.

use std::collections::HashMap;

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, Zoned};
use mutu_api::common::{Window, stable_hash};

/// How long a backup of a site with no history is expected to take.
pub const DEFAULT_EXPECTED_MINUTES: u32 = 10;

/// One site to plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    /// `namespace/name`.
    pub id: String,
    /// The node its data lives on, for the per-node cap.
    pub node: Option<String>,
    /// Expected length of its backup, in minutes (at least 1).
    pub minutes: u32,
}

/// The caps of a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    pub max_concurrent: u32,
    pub max_per_node: Option<u32>,
}

/// One planned backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub site: String,
    pub start: Timestamp,
    pub end: Timestamp,
    /// Planned after the window closes, because the window cannot hold the fleet.
    pub overrun: bool,
}

/// The plan of one night.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub opens: Zoned,
    pub closes: Zoned,
    /// Ordered by start, then site.
    pub runs: Vec<Run>,
    /// Sum of the expected lengths, in minutes.
    pub expected_minutes: u64,
    /// Backups at once the fleet needs to fit in the window (at least).
    pub needed_concurrency: u64,
    /// Runs planned after the window closes.
    pub overruns: usize,
}

impl Plan {
    /// Length of the window in minutes.
    pub fn window_minutes(&self) -> i64 {
        self.closes
            .timestamp()
            .duration_since(self.opens.timestamp())
            .as_secs()
            / 60
    }

    /// Most runs at once (checked, not assumed).
    pub fn peak(&self) -> usize {
        peak(self.runs.iter().map(|r| (r.start, r.end)))
    }

    /// Most runs at once on any one node, given each site's node.
    pub fn peak_per_node(&self, node_of: &HashMap<String, String>) -> usize {
        let mut by_node: HashMap<&str, Vec<(Timestamp, Timestamp)>> = HashMap::new();
        for r in &self.runs {
            if let Some(node) = node_of.get(&r.site) {
                by_node.entry(node).or_default().push((r.start, r.end));
            }
        }
        by_node
            .into_values()
            .map(|v| peak(v.into_iter()))
            .max()
            .unwrap_or(0)
    }
}

fn peak(intervals: impl Iterator<Item = (Timestamp, Timestamp)>) -> usize {
    let mut edges: Vec<(Timestamp, i32)> = Vec::new();
    for (s, e) in intervals {
        edges.push((s, 1));
        edges.push((e, -1));
    }
    // An end and a start at the same instant do not overlap: ends first.
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    most.max(0) as usize
}

/// Errors in a policy's window.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error(
        "spec.window.timeZone: unknown time zone {0:?}; use an IANA name such as Europe/Brussels"
    )]
    TimeZone(String),
    #[error("spec.window.{field}: {value:?} is not a 24-hour time HH:MM")]
    Time { field: &'static str, value: String },
}

fn hh_mm(field: &'static str, value: &str) -> Result<Time, WindowError> {
    let bad = || WindowError::Time {
        field,
        value: value.to_string(),
    };
    let (h, m) = value.split_once(':').ok_or_else(bad)?;
    let (h, m): (i8, i8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    Time::new(h, m, 0, 0).map_err(|_| bad())
}

/// The window of the night that starts on `date` (local to the window's time
/// zone): opens at `start` that day, closes at `end` the same day, or the next
/// day when `end` is not after `start`.
pub fn window_of(window: &Window, date: Date) -> Result<(Zoned, Zoned), WindowError> {
    let tz = TimeZone::get(&window.time_zone)
        .map_err(|_| WindowError::TimeZone(window.time_zone.clone()))?;
    let start = hh_mm("start", &window.start)?;
    let end = hh_mm("end", &window.end)?;
    let end_date = if end > start {
        date
    } else {
        date.tomorrow().unwrap_or(date)
    };
    // A local time skipped by a clock change resolves to the instant after it.
    let opens = date
        .to_datetime(start)
        .to_zoned(tz.clone())
        .map_err(|_| WindowError::TimeZone(window.time_zone.clone()))?;
    let closes = end_date
        .to_datetime(end)
        .to_zoned(tz)
        .map_err(|_| WindowError::TimeZone(window.time_zone.clone()))?;
    Ok((opens, closes))
}

/// Minutes of use, globally and per node, along the night.
struct Line {
    caps: Caps,
    global: Vec<u32>,
    nodes: HashMap<String, Vec<u32>>,
}

impl Line {
    fn ensure(&mut self, len: usize) {
        if self.global.len() < len {
            self.global.resize(len, 0);
        }
    }

    /// The last minute in `[t, t + d)` where one more run would break a cap.
    fn last_blocked(&mut self, node: Option<&str>, t: usize, d: usize) -> Option<usize> {
        self.ensure(t + d);
        let per_node = match (node, self.caps.max_per_node) {
            (Some(n), Some(cap)) => self.nodes.get(n).map(|v| (v, cap)),
            _ => None,
        };
        (t..t + d).rev().find(|&m| {
            self.global[m] >= self.caps.max_concurrent
                || per_node.is_some_and(|(v, cap)| v.get(m).copied().unwrap_or(0) >= cap)
        })
    }

    /// The first start in `[from, to]` with `d` free minutes.
    fn first_fit(&mut self, node: Option<&str>, from: usize, to: usize, d: usize) -> Option<usize> {
        let mut t = from;
        while t <= to {
            match self.last_blocked(node, t, d) {
                None => return Some(t),
                Some(b) => t = b + 1,
            }
        }
        None
    }

    fn take(&mut self, node: Option<&str>, t: usize, d: usize) {
        self.ensure(t + d);
        for m in &mut self.global[t..t + d] {
            *m += 1;
        }
        if let Some(n) = node {
            let v = self.nodes.entry(n.to_string()).or_default();
            if v.len() < t + d {
                v.resize(t + d, 0);
            }
            for m in &mut v[t..t + d] {
                *m += 1;
            }
        }
    }
}

/// Plans `sites` in the window `opens`..`closes` under `caps`.
pub fn plan(opens: Zoned, closes: Zoned, sites: &[Site], caps: Caps) -> Plan {
    let caps = Caps {
        max_concurrent: caps.max_concurrent.max(1),
        max_per_node: caps.max_per_node.map(|c| c.max(1)),
    };
    let window = (closes
        .timestamp()
        .duration_since(opens.timestamp())
        .as_secs()
        / 60)
        .max(0) as usize;
    let mut order: Vec<&Site> = sites.iter().collect();
    order.sort_by(|a, b| {
        (stable_hash(a.id.as_bytes()), &a.id).cmp(&(stable_hash(b.id.as_bytes()), &b.id))
    });
    let mut line = Line {
        caps,
        global: vec![0; window],
        nodes: HashMap::new(),
    };
    let mut runs = Vec::with_capacity(sites.len());
    let mut overruns = 0;
    let mut expected: u64 = 0;
    for site in order {
        let d = site.minutes.max(1) as usize;
        expected += d as u64;
        let node = site.node.as_deref();
        let placed = if d <= window {
            let last = window - d;
            let preferred = (stable_hash(site.id.as_bytes()) % (last as u64 + 1)) as usize;
            line.first_fit(node, preferred, last, d)
                .or_else(|| line.first_fit(node, 0, preferred, d))
        } else {
            None
        };
        let (t, overrun) = match placed {
            Some(t) => (t, false),
            None => {
                // After the window: the first free place from its end.
                let from = window.saturating_sub(d.min(window));
                let t = line
                    .first_fit(node, from.max(window), usize::MAX - d, d)
                    .unwrap_or(window);
                overruns += 1;
                (t, true)
            }
        };
        line.take(node, t, d);
        let start = opens.timestamp() + SignedDuration::from_mins(t as i64);
        runs.push(Run {
            site: site.id.clone(),
            start,
            end: start + SignedDuration::from_mins(d as i64),
            overrun,
        });
    }
    runs.sort_by(|a, b| (a.start, &a.site).cmp(&(b.start, &b.site)));
    let needed = if window == 0 {
        expected
    } else {
        expected.div_ceil(window as u64)
    };
    Plan {
        opens,
        closes,
        runs,
        expected_minutes: expected,
        needed_concurrency: needed,
        overruns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(start: &str, end: &str) -> Window {
        Window {
            start: start.into(),
            end: end.into(),
            time_zone: "Europe/Brussels".into(),
        }
    }

    fn fleet(n: usize, minutes: u32, nodes: usize) -> Vec<Site> {
        (0..n)
            .map(|i| Site {
                id: format!("tenant-{}/site-{i}", i % 310),
                node: Some(format!("node-{}", i % nodes)),
                minutes: minutes + (i % 7) as u32,
            })
            .collect()
    }

    fn night(w: &Window) -> (Zoned, Zoned) {
        window_of(w, Date::constant(2026, 11, 28)).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_window_across_midnight_follows_the_time_zone_and_its_clock_changes() {
        let (opens, closes) = night(&window("22:00", "05:00"));
        assert_eq!(
            opens.to_string(),
            "2026-11-28T22:00:00+01:00[Europe/Brussels]"
        );
        assert_eq!(
            closes.to_string(),
            "2026-11-29T05:00:00+01:00[Europe/Brussels]"
        );
        // The night summer time ends is an hour longer.
        let (o, c) = window_of(&window("22:00", "05:00"), Date::constant(2026, 10, 24))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.timestamp().duration_since(o.timestamp()).as_hours(), 8);
        assert!(matches!(
            window_of(
                &Window {
                    time_zone: "Mars/Olympus".into(),
                    ..window("22:00", "05:00")
                },
                Date::constant(2026, 1, 1)
            ),
            Err(WindowError::TimeZone(_))
        ));
    }

    #[test]
    fn three_hundred_sites_fit_the_window_under_both_caps() {
        let w = window("22:00", "05:00");
        let (opens, closes) = night(&w);
        let sites = fleet(300, 8, 5);
        let caps = Caps {
            max_concurrent: 10,
            max_per_node: Some(3),
        };
        let p = plan(opens.clone(), closes.clone(), &sites, caps);
        assert_eq!(p.runs.len(), 300);
        assert_eq!(p.overruns, 0);
        assert!(
            p.runs
                .iter()
                .all(|r| r.start >= opens.timestamp() && r.end <= closes.timestamp())
        );
        assert!(p.peak() <= 10, "peak {}", p.peak());
        let node_of: HashMap<String, String> = sites
            .iter()
            .map(|s| (s.id.clone(), s.node.clone().unwrap_or_default()))
            .collect();
        assert!(p.peak_per_node(&node_of) <= 3);
        // Spread across the night, not all at the opening.
        let first_hour = p
            .runs
            .iter()
            .filter(|r| r.start < opens.timestamp() + SignedDuration::from_hours(1))
            .count();
        assert!(first_hour < 100, "{first_hour} of 300 in the first hour");
        // The same fleet, in another order, gets the same plan.
        let mut shuffled = sites.clone();
        shuffled.reverse();
        assert_eq!(plan(opens, closes, &shuffled, caps), p);
    }

    #[test]
    fn a_window_too_small_is_counted_and_still_never_breaks_the_caps() {
        let (opens, closes) = night(&window("01:00", "02:00"));
        let sites = fleet(100, 20, 5);
        let p = plan(
            opens,
            closes,
            &sites,
            Caps {
                max_concurrent: 4,
                max_per_node: None,
            },
        );
        assert_eq!(p.runs.len(), 100, "every site is still planned");
        assert!(p.overruns > 0);
        assert!(p.needed_concurrency > 4, "{}", p.needed_concurrency);
        assert!(p.peak() <= 4);
        assert_eq!(p.runs.iter().filter(|r| r.overrun).count(), p.overruns);
    }

    #[test]
    fn a_site_keeps_its_time_when_another_site_joins_elsewhere_in_the_night() {
        let (opens, closes) = night(&window("22:00", "05:00"));
        let caps = Caps {
            max_concurrent: 50,
            max_per_node: None,
        };
        let sites = fleet(40, 5, 3);
        let before = plan(opens.clone(), closes.clone(), &sites, caps);
        let mut more = sites.clone();
        more.push(Site {
            id: "tenant-new/site".into(),
            node: None,
            minutes: 5,
        });
        let after = plan(opens, closes, &more, caps);
        let moved = before
            .runs
            .iter()
            .filter(|r| !after.runs.contains(r))
            .count();
        assert_eq!(moved, 0, "with room to spare nobody moves");
    }

    #[test]
    fn ten_thousand_sites_are_planned_at_once() {
        let (opens, closes) = night(&window("20:00", "06:00"));
        let sites = fleet(10_000, 3, 40);
        let p = plan(
            opens,
            closes,
            &sites,
            Caps {
                max_concurrent: 60,
                max_per_node: Some(4),
            },
        );
        assert_eq!(p.runs.len(), 10_000);
        assert!(p.peak() <= 60);
    }
}
