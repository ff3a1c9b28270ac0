//! Exhaustive checks of the backup operator's decisions, each a breadth-first
//! search over every state of a small world (with a set of the states seen):
//!
//! - the night runner (`fleet::due`, what the engine creates each tick, over
//!   the real `fleet::night_plan`): minute by minute through a night whose
//!   window cannot hold the fleet, with the operator stopping and starting
//!   again, Backups finishing fast or slow (which changes the expected lengths,
//!   so the plan), the engine's cache of Backups lagging behind its own
//!   creations: every site gets its Backup of the night, exactly one;
//! - the Backup and Restore controllers' starts (`backup::hold` and the
//!   counts it is given, `restore::running_backup`): scheduled, manual and
//!   plan-made Backups of two members and a Restore, Jobs whose pods start,
//!   never start (past the start grace), succeed or fail, caches of Jobs,
//!   Backups and Restores lagging behind, the operator stopping (its memory of
//!   the Jobs it made lost): `maxConcurrent` and the manual backups per member
//!   hold whenever a Job is made, a backup Job never runs beside a restore Job
//!   of the same site, every run ends.
//!
//! The number of states is printed (`cargo test -p mutu-backup --test model --
//! --nocapture`) and each check asserts a floor, so that a model that stops
//! exploring fails.

use std::collections::{HashMap, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;
use std::time::Instant;

use jiff::Timestamp;
use mutu_api::{Backup, BackupPolicy, PloneSite};
use mutu_backup::fleet;

// --- the search ------------------------------------------------------------

/// A world to search: its states, what may happen in each, and what must hold.
trait World {
    type State: Clone + Eq + Hash + Debug;
    fn initial(&self) -> Self::State;
    /// What may happen next, with a description; an error for a step that breaks a
    /// rule as it happens.
    fn next(&self, st: &Self::State, out: &mut Vec<(String, Self::State)>) -> Result<(), String>;
    /// What must hold in every state.
    fn check(&self, st: &Self::State) -> Result<(), String>;
    /// Whether nothing is left to do.
    fn is_final(&self, st: &Self::State) -> bool;
    /// What must hold once nothing is left to do.
    fn check_final(&self, st: &Self::State) -> Result<(), String>;
}

/// Breadth-first over every reachable state: the invariants in each, the final
/// checks in final states, and a final state reachable from every state (no
/// deadlock, no cycle without a way out). A violation panics with its path.
fn explore<W: World>(name: &str, w: &W) -> usize {
    let started = Instant::now();
    let init = w.initial();
    let mut ids: HashMap<W::State, u32> = HashMap::from([(init.clone(), 0)]);
    let mut states = vec![init];
    let mut parent: Vec<(u32, String)> = vec![(0, String::new())];
    let mut edges: Vec<(u32, u32)> = Vec::new();
    let mut finals = Vec::new();
    let mut queue = VecDeque::from([0u32]);
    let path = |parent: &[(u32, String)], states: &[W::State], mut at: u32| {
        let end = at;
        let mut steps = Vec::new();
        while at != 0 {
            steps.push(parent[at as usize].1.clone());
            at = parent[at as usize].0;
        }
        steps.reverse();
        let mut text = String::new();
        for (n, s) in steps.iter().enumerate() {
            text.push_str(&format!("{n:3}. {s}\n"));
        }
        format!("{text}reaching {:#?}", states[end as usize])
    };
    let mut out = Vec::new();
    let mut transitions = 0usize;
    while let Some(here) = queue.pop_front() {
        let st = states[here as usize].clone();
        if let Err(e) = w.check(&st) {
            panic!("{name}: {e}\nafter:\n{}", path(&parent, &states, here));
        }
        if w.is_final(&st) {
            if let Err(e) = w.check_final(&st) {
                panic!("{name}: {e}\nafter:\n{}", path(&parent, &states, here));
            }
            finals.push(here);
        }
        out.clear();
        if let Err(e) = w.next(&st, &mut out) {
            panic!("{name}: {e}\nafter:\n{}", path(&parent, &states, here));
        }
        for (what, n) in out.drain(..) {
            transitions += 1;
            let id = match ids.get(&n) {
                Some(&id) => id,
                None => {
                    let id = states.len() as u32;
                    ids.insert(n.clone(), id);
                    states.push(n);
                    parent.push((here, what));
                    queue.push_back(id);
                    id
                }
            };
            edges.push((id, here));
        }
    }
    edges.sort_unstable();
    edges.dedup();
    let mut first = vec![edges.len(); states.len() + 1];
    for (k, &(to, _)) in edges.iter().enumerate().rev() {
        first[to as usize] = k;
    }
    for s in (0..states.len()).rev() {
        first[s] = first[s].min(first[s + 1]);
    }
    let mut reaches = vec![false; states.len()];
    let mut stack = finals.clone();
    for &f in &finals {
        reaches[f as usize] = true;
    }
    while let Some(s) = stack.pop() {
        for &(_, from) in &edges[first[s as usize]..first[s as usize + 1]] {
            if !reaches[from as usize] {
                reaches[from as usize] = true;
                stack.push(from);
            }
        }
    }
    if let Some(stuck) = reaches.iter().position(|r| !r) {
        panic!(
            "{name}: no final state can be reached from this state:\n{}",
            path(&parent, &states, stuck as u32)
        );
    }
    eprintln!(
        "{name}: {} states, {transitions} transitions, {} final, in {:.1} s",
        states.len(),
        finals.len(),
        started.elapsed().as_secs_f64()
    );
    states.len()
}

// --- the night runner --------------------------------------------------------

/// Minute 0 of the night model: 21:58 UTC, two minutes before the window opens.
const NIGHT: i64 = 1_795_903_080;
const NAMESPACE: &str = "t";

fn at(minute: u8) -> Timestamp {
    Timestamp::from_second(NIGHT + 60 * i64::from(minute)).unwrap_or_default()
}

/// A scheduled Backup of the night, as the API server has it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Night {
    None,
    /// Created at this minute, running.
    Running(u8),
    /// Ran from the first minute to the second.
    Done(u8, u8),
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct NightState {
    minute: u8,
    /// `None` while the operator runs, else the minute it starts again.
    down_until: Option<u8>,
    /// The engine ran at least once since the minute began (it ticks every 10 s).
    ticked: bool,
    /// Operator stops left.
    stops: u8,
    backups: Vec<Night>,
}

/// What `fleet::due` answered, by minute and Backups.
type DueMemo = HashMap<(u8, Vec<Night>), Vec<fleet::Due>>;

struct NightWorld {
    /// What `fleet::due` answered, by minute and Backups (it is pure).
    due: std::cell::RefCell<DueMemo>,
    policy: BackupPolicy,
    sites: Vec<PloneSite>,
    /// The last minute looked at: past every run's catch-up.
    end: u8,
    /// Minutes each Backup may take: it may finish after any of these.
    lengths: Vec<u8>,
}

impl NightWorld {
    fn new(sites: usize, window: (&str, &str), max_concurrent: i32) -> Self {
        let policy: BackupPolicy = serde_json::from_value(serde_json::json!({
            "apiVersion": "hosting.imio.be/v1alpha1", "kind": "BackupPolicy",
            "metadata": {"name": "nightly", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"window": {"start": window.0, "end": window.1, "timeZone": "UTC"},
                     "maxConcurrent": max_concurrent, "default": true},
        }))
        .unwrap_or_else(|e| panic!("a policy: {e}"));
        let sites = (0..sites)
            .map(|i| {
                serde_json::from_value(serde_json::json!({
                    "apiVersion": "hosting.imio.be/v1alpha1", "kind": "PloneSite",
                    "metadata": {"name": format!("s{i}"), "namespace": NAMESPACE},
                    "spec": {"product": "delib", "hostnames": [format!("s{i}.example.be")]},
                    "status": {"nodes": [format!("node-{}", i % 2)]},
                }))
                .unwrap_or_else(|e| panic!("a site: {e}"))
            })
            .collect();
        NightWorld {
            due: Default::default(),
            policy,
            sites,
            end: 105,
            lengths: vec![3, 12],
        }
    }

    fn name(&self, i: usize) -> String {
        let date = at(2).to_zoned(jiff::tz::TimeZone::UTC).date();
        fleet::scheduled_name(&format!("s{i}"), date)
    }

    /// The Backups of the night as objects (those of the sites that have one).
    fn objects(&self, backups: &[Night]) -> Vec<Backup> {
        backups
            .iter()
            .enumerate()
            .filter(|(_, b)| **b != Night::None)
            .map(|(i, b)| {
                let mut status = serde_json::json!({});
                if let Night::Done(from, to) = b {
                    status = serde_json::json!({
                        "startTime": at(*from).to_string(),
                        "completionTime": at(*to).to_string(),
                        "conditions": [{"type": "Complete", "status": "True", "reason": "BackedUp",
                                        "message": "", "lastTransitionTime": at(*to).to_string()}],
                    });
                }
                serde_json::from_value(serde_json::json!({
                    "apiVersion": "hosting.imio.be/v1alpha1", "kind": "Backup",
                    "metadata": {"name": self.name(i), "namespace": NAMESPACE},
                    "spec": {"site": format!("s{i}"), "policy": "nightly", "trigger": "Scheduled"},
                    "status": status,
                }))
                .unwrap_or_else(|e| panic!("a backup: {e}"))
            })
            .collect()
    }
}

impl World for NightWorld {
    type State = NightState;

    fn initial(&self) -> NightState {
        NightState {
            minute: 0,
            down_until: None,
            ticked: false,
            stops: 1,
            backups: vec![Night::None; self.sites.len()],
        }
    }

    fn next(&self, st: &NightState, out: &mut Vec<(String, NightState)>) -> Result<(), String> {
        if st.minute >= self.end {
            return Ok(());
        }
        if st.down_until.is_none() {
            // The engine's tick (`engine::plan_policy`): the Backups due, less those that
            // exist (a Backup made while the cache lags is made once all the same: by name).
            let key = (st.minute, st.backups.clone());
            let due = self.due.borrow().get(&key).cloned();
            let due = due.unwrap_or_else(|| {
                let objects = self.objects(&st.backups);
                let policies = [self.policy.clone()];
                let due = fleet::due(
                    &self.policy,
                    &policies,
                    &self.sites,
                    &objects,
                    at(st.minute),
                )
                .unwrap_or_else(|e| panic!("{e}"));
                self.due.borrow_mut().insert(key, due.clone());
                due
            });
            let mut n = st.clone();
            n.ticked = true;
            let mut made = Vec::new();
            for d in due {
                let i: usize = d.site[1..].parse().unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(d.name, self.name(i), "a Backup of another night");
                if n.backups[i] == Night::None {
                    n.backups[i] = Night::Running(st.minute);
                    made.push(d.name);
                }
            }
            out.push((format!("the engine ticks, creating {made:?}"), n));
            if st.stops > 0 {
                // Down for 10 or 30 minutes (less than the hour of catch-up).
                for minutes in [10, 30] {
                    let mut n = st.clone();
                    n.down_until = Some(st.minute.saturating_add(minutes));
                    n.stops -= 1;
                    out.push((format!("the operator stops for {minutes} minutes"), n));
                }
            }
        }
        for (i, b) in st.backups.iter().enumerate() {
            if let Night::Running(from) = *b
                && self.lengths.contains(&(st.minute - from))
            {
                let mut n = st.clone();
                n.backups[i] = Night::Done(from, st.minute);
                out.push((format!("the Backup of s{i} completes"), n));
            }
        }
        // A minute passes: once the engine ticked in it (every 10 s while it runs).
        if st.ticked || st.down_until.is_some() {
            let mut n = st.clone();
            n.minute += 1;
            n.ticked = false;
            if n.down_until.is_some_and(|m| m <= n.minute) {
                n.down_until = None;
            }
            out.push((format!("minute {} begins", n.minute), n));
        }
        Ok(())
    }

    fn check(&self, _: &NightState) -> Result<(), String> {
        Ok(())
    }

    fn is_final(&self, st: &NightState) -> bool {
        st.minute >= self.end
    }

    fn check_final(&self, st: &NightState) -> Result<(), String> {
        match st.backups.iter().position(|b| *b == Night::None) {
            Some(i) => Err(format!(
                "s{i} got no Backup this night (down at most 30 minutes, less than the catch-up)"
            )),
            None => Ok(()),
        }
    }
}

/// A night whose window (22:00–22:20, one backup at a time) cannot hold three
/// sites of ten minutes each: one is planned after the window closes. Every site
/// gets its Backup, also when the operator is down up to half an hour.
#[test]
fn every_site_gets_its_backup_of_the_night() {
    let w = NightWorld::new(3, ("22:00", "22:20"), 1);
    let states = explore("night runner", &w);
    assert!(states > 5_000, "{states} states");
}

// --- the starts of Backup and Restore Jobs ------------------------------------

use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use mutu_backup::backup::{self as backups, Started};
use mutu_backup::jobs;

/// A Job of a run, as the API server has it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum J {
    None,
    /// Its pod has not started: within the start grace, or past it.
    Pending {
        old: bool,
    },
    Ready,
    Succeeded,
    Failed,
}

impl J {
    fn running(self) -> bool {
        matches!(self, J::Pending { .. } | J::Ready)
    }
    /// Takes a place among its policy's running backups (`backup::takes_a_place`).
    fn takes_a_place(self) -> bool {
        matches!(self, J::Pending { old: false } | J::Ready)
    }
}

/// A run's status: whether it says it started, and whether it finished.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
struct RunSt {
    started: bool,
    finished: bool,
}

/// One run of the world: a Backup (scheduled or manual) or the Restore.
struct Spec {
    namespace: &'static str,
    site: &'static str,
    manual: bool,
    restore: bool,
}

/// Runs in each world.
const N: usize = 4;

const fn run(namespace: &'static str, site: &'static str, manual: bool, restore: bool) -> Spec {
    Spec {
        namespace,
        site,
        manual,
        restore,
    }
}

/// The caps: three manual Backups of member `a`, a scheduled one of member `b`.
const CAPS: [Spec; N] = [
    run("a", "a1", true, false),
    run("a", "a2", true, false),
    run("a", "a3", true, false),
    run("b", "b1", false, false),
];

/// One run of a site at a time: a manual and a scheduled Backup of `a1`, a Restore of
/// it, and a Backup of another site.
const ONE_AT_A_TIME: [Spec; N] = [
    run("a", "a1", true, false),
    run("a", "a1", false, false),
    run("a", "a1", false, true),
    run("a", "a2", true, false),
];

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct StartState {
    jobs: [J; N],
    status: [RunSt; N],
    /// Whether the cache of Jobs shows each Job yet (once shown, it follows it).
    job_seen: [bool; N],
    /// Whether the caches of Backups and Restores show each run's last status write
    /// (else they show the one before).
    status_seen: [bool; N],
    /// The Jobs this process made that its cache does not show yet (its memory).
    unseen: [bool; N],
    /// Operator stops still allowed.
    stops: u8,
}

impl StartState {
    fn jobs_view(&self) -> [J; N] {
        std::array::from_fn(|i| {
            if self.job_seen[i] {
                self.jobs[i]
            } else {
                J::None
            }
        })
    }

    fn status_view(&self) -> [RunSt; N] {
        std::array::from_fn(|i| {
            let s = self.status[i];
            match (self.status_seen[i], s.finished, s.started) {
                (true, ..) => s,
                (false, true, _) => RunSt {
                    started: true,
                    finished: false,
                },
                (false, false, _) => RunSt::default(),
            }
        })
    }

    /// A status write of run `i`; the caches show it later.
    fn write(&mut self, i: usize, status: RunSt) {
        if self.status[i] != status {
            self.status[i] = status;
            self.status_seen[i] = false;
        }
    }
}

/// What the caches show of the Jobs and the runs, and the Jobs the process remembers.
type Seen = ([J; N], [RunSt; N], [bool; N]);

struct StartWorld {
    runs: &'static [Spec; N],
    max_concurrent: i32,
    /// Why each run without a Job waits, if it does, by what the caches show and what
    /// the process remembers (the decisions are pure).
    waits: std::cell::RefCell<HashMap<Seen, [Option<String>; N]>>,
}

impl StartWorld {
    fn name(&self, i: usize) -> String {
        if self.runs[i].restore {
            jobs::job_name(jobs::RESTORE, "restore")
        } else {
            jobs::job_name(jobs::BACKUP, &format!("backup-{i}"))
        }
    }

    /// The cache of Jobs as objects.
    fn job_objects(&self, view: &[J; N], now: Timestamp) -> Vec<Arc<Job>> {
        view.iter()
            .enumerate()
            .filter(|(_, j)| **j != J::None)
            .map(|(i, j)| {
                let r = &self.runs[i];
                let mut labels = serde_json::json!({
                    mutu_api::COMPONENT: if r.restore { jobs::RESTORE } else { jobs::BACKUP },
                    jobs::SITE_LABEL: r.site,
                });
                if !r.restore {
                    labels[jobs::POLICY_LABEL] = serde_json::json!("nightly");
                }
                if r.manual {
                    labels[backups::MANUAL_LABEL] = serde_json::json!("true");
                }
                let made = match j {
                    J::Pending { old: true } => now - jiff::SignedDuration::from_mins(11),
                    _ => now,
                };
                let condition = |t: &str| {
                    serde_json::json!([{"type": t, "status": "True", "lastTransitionTime": now.to_string()}])
                };
                let status = match j {
                    J::Ready => serde_json::json!({"active": 1, "ready": 1}),
                    J::Succeeded => serde_json::json!({"conditions": condition("Complete")}),
                    J::Failed => serde_json::json!({"conditions": condition("Failed")}),
                    _ => serde_json::json!({"active": 1, "ready": 0}),
                };
                Arc::new(
                    serde_json::from_value(serde_json::json!({
                        "metadata": {"name": self.name(i), "namespace": r.namespace,
                                     "labels": labels, "creationTimestamp": made.to_string()},
                        "status": status,
                    }))
                    .unwrap_or_else(|e| panic!("a job: {e}")),
                )
            })
            .collect()
    }

    fn unseen(&self, st: &StartState) -> Vec<Started> {
        (0..N)
            .filter(|&i| st.unseen[i])
            .map(|i| Started {
                namespace: self.runs[i].namespace.into(),
                site: self.runs[i].site.into(),
                kind: if self.runs[i].restore {
                    jobs::RESTORE
                } else {
                    jobs::BACKUP
                },
                owner: format!("run-{i}"),
                policy: (!self.runs[i].restore).then(|| "nightly".into()),
                manual: self.runs[i].manual,
                at: std::time::Instant::now(),
            })
            .collect()
    }

    /// The Backups as the Restore controller's cache shows them.
    fn backup_objects(&self, status: &[RunSt; N]) -> Vec<Arc<Backup>> {
        (0..N)
            .filter(|&i| !self.runs[i].restore)
            .map(|i| {
                let r = &self.runs[i];
                let s = status[i];
                let mut st = serde_json::json!({});
                if s.started {
                    st["startTime"] = serde_json::json!("2026-11-28T22:00:00Z");
                }
                if s.finished {
                    st["conditions"] = serde_json::json!([{"type": "Complete", "status": "True",
                        "reason": "BackedUp", "message": "", "lastTransitionTime": "2026-11-28T22:00:00Z"}]);
                }
                Arc::new(
                    serde_json::from_value(serde_json::json!({
                        "apiVersion": "hosting.imio.be/v1alpha1", "kind": "Backup",
                        "metadata": {"name": format!("backup-{i}"), "namespace": r.namespace},
                        "spec": {"site": r.site},
                        "status": st,
                    }))
                    .unwrap_or_else(|e| panic!("a backup: {e}")),
                )
            })
            .collect()
    }

    /// Makes the Job of run `i` (once, by name), checking what must hold when a Job starts.
    fn make(&self, st: &mut StartState, i: usize) -> Result<(), String> {
        let r = &self.runs[i];
        if st.jobs[i] != J::None {
            return Ok(());
        }
        let other_kind = (0..N).find(|&k| {
            self.runs[k].restore != r.restore
                && self.runs[k].namespace == r.namespace
                && self.runs[k].site == r.site
                && st.jobs[k].running()
        });
        if let Some(k) = other_kind {
            return Err(format!(
                "the Job of run {i} starts while the Job of run {k} of the same site runs (a backup beside a restore)"
            ));
        }
        if !r.restore {
            let places = (0..N)
                .filter(|&k| !self.runs[k].restore && st.jobs[k].takes_a_place())
                .count();
            if places >= self.max_concurrent as usize {
                return Err(format!(
                    "the Job of run {i} starts while {places} backups take the policy's places (maxConcurrent {})",
                    self.max_concurrent
                ));
            }
            if r.manual {
                let manual = (0..N)
                    .filter(|&k| {
                        self.runs[k].manual
                            && self.runs[k].namespace == r.namespace
                            && st.jobs[k].running()
                    })
                    .count();
                if manual >= backups::MANUAL_PER_MEMBER {
                    return Err(format!(
                        "the manual Job of run {i} starts while {manual} manual backups of its member run"
                    ));
                }
            }
        }
        st.jobs[i] = J::Pending { old: false };
        st.unseen[i] = true;
        Ok(())
    }
}

impl World for StartWorld {
    type State = StartState;

    fn initial(&self) -> StartState {
        StartState {
            jobs: [J::None; N],
            status: [RunSt::default(); N],
            job_seen: [false; N],
            status_seen: [true; N],
            unseen: [false; N],
            stops: 1,
        }
    }

    fn next(&self, st: &StartState, out: &mut Vec<(String, StartState)>) -> Result<(), String> {
        let jobs_view = st.jobs_view();
        let status_view = st.status_view();
        // The cache shows a Job, or its run finished: this process forgets it made it.
        let mut base = st.clone();
        for ((unseen, job), run) in base.unseen.iter_mut().zip(jobs_view).zip(status_view) {
            if job != J::None || run.finished {
                *unseen = false;
            }
        }
        let key = (jobs_view, status_view, base.unseen);
        let cached = self.waits.borrow().get(&key).cloned();
        let waits = match cached {
            Some(w) => w,
            None => {
                let w = self.decide(&jobs_view, &status_view, &base);
                self.waits.borrow_mut().insert(key, w.clone());
                w
            }
        };
        for i in 0..N {
            if st.status[i].finished {
                continue;
            }
            let mut n = base.clone();
            match jobs_view[i] {
                J::None => {
                    if let Some(why) = &waits[i] {
                        out.push((format!("run {i} waits: {why}"), n));
                        continue;
                    }
                    self.make(&mut n, i)
                        .map_err(|e| format!("run {i} makes its Job: {e}"))?;
                    if st.stops > 0 {
                        // Its status not written: the caches, listed again, show every Job.
                        let mut c = n.clone();
                        c.stops -= 1;
                        c.unseen = [false; N];
                        c.job_seen = std::array::from_fn(|k| c.jobs[k] != J::None);
                        c.status_seen = [true; N];
                        out.push((format!("run {i} makes its Job; the operator stops"), c));
                    }
                    n.write(
                        i,
                        RunSt {
                            started: true,
                            finished: false,
                        },
                    );
                    out.push((format!("run {i} makes its Job"), n));
                }
                J::Pending { .. } | J::Ready => {
                    n.write(
                        i,
                        RunSt {
                            started: true,
                            finished: st.status[i].finished,
                        },
                    );
                    out.push((format!("run {i} says it runs"), n));
                }
                J::Succeeded | J::Failed => {
                    n.write(
                        i,
                        RunSt {
                            started: true,
                            finished: true,
                        },
                    );
                    out.push((format!("run {i} says it ended"), n));
                }
            }
        }
        self.environment(st, out);
        Ok(())
    }

    fn check(&self, _: &StartState) -> Result<(), String> {
        Ok(())
    }

    fn is_final(&self, st: &StartState) -> bool {
        st.status.iter().all(|s| s.finished)
    }

    fn check_final(&self, _: &StartState) -> Result<(), String> {
        Ok(())
    }
}

impl StartWorld {
    /// Why each run without a Job waits, if it does: the controllers' own decisions.
    fn decide(
        &self,
        jobs_view: &[J; N],
        status_view: &[RunSt; N],
        base: &StartState,
    ) -> [Option<String>; N] {
        let now = Timestamp::from_second(NIGHT).unwrap_or_default();
        let objects = self.job_objects(jobs_view, now);
        let unseen = self.unseen(base);
        std::array::from_fn(|i| {
            let r = &self.runs[i];
            if r.restore {
                // `restore::RestoreRun::start`, then `create_job` under the lock.
                mutu_backup::restore::backup_running(
                    r.namespace,
                    r.site,
                    &self.backup_objects(status_view),
                    &objects,
                    &unseen,
                )
            } else {
                // `backup::reconcile`'s start, under the lock.
                let restore_running = (0..N)
                    .find(|&k| {
                        let o = &self.runs[k];
                        o.restore
                            && o.namespace == r.namespace
                            && o.site == r.site
                            && status_view[k].started
                            && !status_view[k].finished
                    })
                    .map(|_| "restore".to_string());
                backups::weigh(&backups::Weigh {
                    namespace: r.namespace,
                    site: r.site,
                    manual: r.manual,
                    policy: Some(("nightly", self.max_concurrent)),
                    restore_running,
                    jobs: &objects,
                    unseen: &unseen,
                    now,
                })
                .map(|h| format!("{h:?}"))
            }
        })
    }

    /// The Jobs' pods, and the caches.
    fn environment(&self, st: &StartState, out: &mut Vec<(String, StartState)>) {
        // The Jobs.
        for i in 0..N {
            let mut step = |j: J, what: &str| {
                let mut n = st.clone();
                n.jobs[i] = j;
                out.push((format!("the Job of run {i} {what}"), n));
            };
            match st.jobs[i] {
                J::Pending { old: false } => {
                    step(J::Ready, "starts its pod");
                    step(J::Pending { old: true }, "is past its start grace");
                }
                // A pod that never started: the Job's deadline fails it.
                J::Pending { old: true } => step(J::Failed, "reaches its deadline"),
                // Failing or succeeding frees the same place.
                J::Ready => step(J::Succeeded, "ends"),
                _ => {}
            }
        }
        // The caches.
        for i in 0..N {
            if st.jobs[i] != J::None && !st.job_seen[i] {
                let mut n = st.clone();
                n.job_seen[i] = true;
                out.push((format!("the cache of Jobs shows the Job of run {i}"), n));
            }
            if !st.status_seen[i] {
                let mut n = st.clone();
                n.status_seen[i] = true;
                out.push((format!("the caches show the status of run {i}"), n));
            }
        }
    }
}

/// Three manual Backups of one member and a scheduled one of another, `maxConcurrent`
/// 2: the policy's places and the member's manual backups hold whenever a Job starts,
/// with the caches lagging behind the Jobs and the runs' statuses, and the operator
/// stopping right after it made a Job (its memory of it lost).
#[test]
fn backup_jobs_start_within_their_caps() {
    let states = explore(
        "caps of backup Jobs",
        &StartWorld {
            runs: &CAPS,
            max_concurrent: 2,
            waits: Default::default(),
        },
    );
    assert!(states > 20_000, "{states} states");
}

/// A manual and a scheduled Backup of a site, a Restore of it and a Backup of another
/// site: a backup Job never starts beside a restore Job of the same site (nor the
/// reverse), whatever the caches show.
#[test]
fn a_site_is_backed_up_or_restored_one_run_at_a_time() {
    let states = explore(
        "one run of a site at a time",
        &StartWorld {
            runs: &ONE_AT_A_TIME,
            max_concurrent: 2,
            waits: Default::default(),
        },
    );
    assert!(states > 20_000, "{states} states");
}
