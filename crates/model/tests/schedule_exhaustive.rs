//! An exhaustive check of the backup night planner (`schedule::plan`): every fleet of
//! up to four sites (each of 1, 2, 3 or 5 minutes, on no node, node 1 or node 2), in
//! windows of 0, 3, 6 and 10 minutes, under every `maxConcurrent` from 1 to 3 and
//! `maxPerNode` none, 1 or 2. In every plan: each site planned once, for its whole
//! length; never more than `maxConcurrent` at once, nor more than `maxPerNode` on a
//! node, also after the window; a run inside the window unless it is counted as
//! planned after it; the same plan for the fleet in any order. The number of plans
//! checked is printed and must stay above a floor.

use std::collections::HashMap;

use jiff::Zoned;
use mutu_model::schedule::{Caps, Plan, Site, plan};

const MINUTES: [u32; 4] = [1, 2, 3, 5];
const NODES: [Option<&str>; 3] = [None, Some("node-1"), Some("node-2")];

fn window(minutes: i64) -> (Zoned, Zoned) {
    let opens: Zoned = "2026-11-28T22:00:00+00:00[UTC]"
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let closes = opens
        .checked_add(jiff::SignedDuration::from_mins(minutes))
        .unwrap_or_else(|e| panic!("{e}"));
    (opens, closes)
}

/// Most runs at once among `runs` (an end and a start at one instant do not overlap).
fn peak<'a>(runs: impl Iterator<Item = &'a mutu_model::schedule::Run>) -> usize {
    let mut edges: Vec<(jiff::Timestamp, i32)> = Vec::new();
    for r in runs {
        edges.push((r.start, 1));
        edges.push((r.end, -1));
    }
    edges.sort();
    let (mut now, mut most) = (0, 0);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    most as usize
}

fn check(sites: &[Site], caps: Caps, window_minutes: i64, p: &Plan) -> Result<(), String> {
    if p.runs.len() != sites.len() {
        return Err(format!("{} runs for {} sites", p.runs.len(), sites.len()));
    }
    let by_id: HashMap<&str, &Site> = sites.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut seen = std::collections::HashSet::new();
    let (opens, closes) = (p.opens.timestamp(), p.closes.timestamp());
    let mut overruns = 0;
    for r in &p.runs {
        let site = by_id
            .get(r.site.as_str())
            .ok_or_else(|| format!("a run of an unknown site {}", r.site))?;
        if !seen.insert(r.site.as_str()) {
            return Err(format!("{} planned twice", r.site));
        }
        if r.end.duration_since(r.start).as_mins() != i64::from(site.minutes.max(1)) {
            return Err(format!("{} not planned for its whole length", r.site));
        }
        if r.start < opens {
            return Err(format!("{} starts before the window", r.site));
        }
        if r.overrun {
            overruns += 1;
        } else if r.end > closes {
            return Err(format!(
                "{} ends after the window, not counted as planned after it",
                r.site
            ));
        }
    }
    if overruns != p.overruns {
        return Err(format!(
            "{overruns} runs after the window, {} said",
            p.overruns
        ));
    }
    let most = peak(p.runs.iter());
    if most > caps.max_concurrent as usize {
        return Err(format!(
            "{most} at once, maxConcurrent {}",
            caps.max_concurrent
        ));
    }
    if let Some(cap) = caps.max_per_node {
        for node in NODES.iter().flatten() {
            let on = peak(p.runs.iter().filter(|r| {
                by_id
                    .get(r.site.as_str())
                    .is_some_and(|s| s.node.as_deref() == Some(*node))
            }));
            if on > cap as usize {
                return Err(format!("{on} at once on {node}, maxPerNode {cap}"));
            }
        }
    }
    if p.window_minutes() != window_minutes {
        return Err("the window is not the one given".into());
    }
    Ok(())
}

#[test]
fn every_small_night_is_planned_within_its_caps() {
    let options: Vec<(u32, Option<&str>)> = MINUTES
        .iter()
        .flat_map(|m| NODES.iter().map(move |n| (*m, *n)))
        .collect();
    // Every multiset of up to four sites' (length, node).
    let mut fleets: Vec<Vec<usize>> = vec![Vec::new()];
    let mut frontier: Vec<Vec<usize>> = vec![Vec::new()];
    for _ in 0..4 {
        let mut next = Vec::new();
        for f in &frontier {
            let from = f.last().copied().unwrap_or(0);
            for o in from..options.len() {
                let mut g = f.clone();
                g.push(o);
                next.push(g);
            }
        }
        fleets.extend(next.iter().cloned());
        frontier = next;
    }
    let mut checked = 0usize;
    for fleet in &fleets {
        let sites: Vec<Site> = fleet
            .iter()
            .enumerate()
            .map(|(i, &o)| Site {
                id: format!("tenant-{}/site-{i}", i % 2),
                node: options[o].1.map(str::to_string),
                minutes: options[o].0,
            })
            .collect();
        let mut reversed = sites.clone();
        reversed.reverse();
        for window_minutes in [0, 3, 6, 10] {
            let (opens, closes) = window(window_minutes);
            for max_concurrent in 1..=3 {
                for max_per_node in [None, Some(1), Some(2)] {
                    let caps = Caps {
                        max_concurrent,
                        max_per_node,
                    };
                    let p = plan(opens.clone(), closes.clone(), &sites, caps);
                    if let Err(e) = check(&sites, caps, window_minutes, &p) {
                        panic!(
                            "{e}: {sites:?} in {window_minutes} minutes under {caps:?}: {:#?}",
                            p.runs
                        );
                    }
                    let again = plan(opens.clone(), closes.clone(), &reversed, caps);
                    assert_eq!(
                        again.runs, p.runs,
                        "the plan depends on the order of the fleet: {sites:?}"
                    );
                    checked += 1;
                }
            }
        }
    }
    eprintln!(
        "night planner: {checked} plans checked ({} fleets of up to 4 sites, 4 windows, 9 caps)",
        fleets.len()
    );
    assert!(checked > 50_000, "{checked} plans");
}
