//! The fleet-wide ACME budget: mutu counts the orders it placed per account,
//! per registered domain and per exact set of names in rolling windows, and
//! lets a new order through only while every count stays under its share of
//! the server's limits. Certificates that must wait are served first come,
//! first served.
//!
//! The counts come from the Certificates' own status (`recentOrders`), so they
//! survive a restart of the operator, plus the orders this process placed
//! that the cache does not show yet.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use mutu_api::issuer::{AcmeRateLimits, RateLimit};

/// How long the status keeps the times of a certificate's orders: the longest
/// window of Let's Encrypt's limits.
pub const HISTORY: SignedDuration = SignedDuration::from_hours(24 * 7);

/// One order placed: by which certificate, for which names, when.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Placed {
    pub certificate: String,
    pub names: Vec<String>,
    pub at: Timestamp,
}

/// Why an order may not be placed now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied {
    /// Which limit: `newOrders`, `certificatesPerDomain` or `duplicateCertificates`.
    pub limit: &'static str,
    /// What it counts in, e.g. the registered domain.
    pub scope: String,
    pub used: u32,
    pub allowed: u32,
    pub window: SignedDuration,
    /// When the oldest counted order leaves the window.
    pub until: Timestamp,
}

impl Denied {
    /// A message for the certificate's condition: stable while it waits (no
    /// counts that change at every order), so waiting writes nothing.
    pub fn message(&self) -> String {
        format!(
            "waiting for the ACME rate-limit budget: {} ({}) allows {} per {}",
            self.limit,
            self.scope,
            self.allowed,
            human(self.window),
        )
    }
}

fn human(d: SignedDuration) -> String {
    let secs = d.as_secs();
    if secs % 3600 == 0 {
        format!("{}h", secs / 3600)
    } else if secs % 60 == 0 {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// The part of `limit` mutu may use: `percent` of it, at least one.
pub fn allowed(limit: u32, percent: u8) -> u32 {
    ((u64::from(limit) * u64::from(percent.min(100))) / 100).max(1) as u32
}

fn window(limit: &RateLimit) -> SignedDuration {
    SignedDuration::try_from(std::time::Duration::from(limit.window)).unwrap_or(HISTORY)
}

/// The registered domain of `name` (`www.mons.be` -> `mons.be`), from the
/// public suffix list; the name itself when the list does not know it.
pub fn registered_domain(name: &str) -> String {
    let name = name.trim_start_matches("*.");
    psl::domain_str(name).unwrap_or(name).to_string()
}

/// Checks one limit over the orders `counted` (each matching the limit's
/// scope): the count of those in the window ending now against the budget.
fn check(
    limit_name: &'static str,
    scope: String,
    limit: &RateLimit,
    percent: u8,
    counted: &mut Vec<Timestamp>,
    now: Timestamp,
) -> Result<(), Denied> {
    let window = window(limit);
    let allowed = allowed(limit.limit, percent);
    // Orders exactly one window old still count: times are kept to the second.
    counted.retain(|t| *t + window >= now);
    counted.sort();
    let used = counted.len() as u32;
    if used < allowed {
        return Ok(());
    }
    // The order that must leave the window before one more fits.
    let oldest = counted[(used - allowed) as usize];
    Err(Denied {
        limit: limit_name,
        scope,
        used,
        allowed,
        window,
        until: oldest + window + SignedDuration::from_secs(1),
    })
}

/// Whether an order for `names` fits every limit, given the orders in `history`.
pub fn evaluate(
    limits: &AcmeRateLimits,
    history: &[Placed],
    names: &[String],
    now: Timestamp,
) -> Result<(), Denied> {
    let pct = limits.budget_percent;
    let mut all: Vec<Timestamp> = history.iter().map(|p| p.at).collect();
    check(
        "newOrders",
        "account".into(),
        &limits.new_orders,
        pct,
        &mut all,
        now,
    )?;
    let domains: BTreeSet<String> = names.iter().map(|n| registered_domain(n)).collect();
    for domain in domains {
        let mut counted: Vec<Timestamp> = history
            .iter()
            .filter(|p| p.names.iter().any(|n| registered_domain(n) == domain))
            .map(|p| p.at)
            .collect();
        check(
            "certificatesPerDomain",
            domain,
            &limits.certificates_per_domain,
            pct,
            &mut counted,
            now,
        )?;
    }
    let set = name_set(names);
    let mut same: Vec<Timestamp> = history
        .iter()
        .filter(|p| name_set(&p.names) == set)
        .map(|p| p.at)
        .collect();
    check(
        "duplicateCertificates",
        "the same names".into(),
        &limits.duplicate_certificates,
        pct,
        &mut same,
        now,
    )
}

/// The names of an order, sorted and deduplicated: its identity.
pub fn name_set(names: &[String]) -> Vec<String> {
    let set: BTreeSet<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    set.into_iter().collect()
}

/// A certificate waiting for budget.
struct Waiting {
    since: Instant,
    seen: Instant,
}

/// Waiters not seen for this long (deleted, or no longer needing an order) are forgotten.
const STALE: Duration = Duration::from_secs(300);

#[derive(Default)]
struct State {
    /// Orders this process placed, by issuer.
    placed: HashMap<String, Vec<Placed>>,
    /// Certificates waiting for budget, by issuer.
    waiting: HashMap<String, HashMap<String, Waiting>>,
}

/// The budget of every ACME issuer, shared by the certificate reconciles of
/// one process. Checking and reserving happen under one lock, so two
/// reconciles never take the same slot.
#[derive(Default)]
pub struct Budget {
    state: Mutex<State>,
}

/// The answer to [`Budget::reserve`].
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// The order may be placed now; it is counted from `at`.
    Granted { at: Timestamp },
    /// Not now: retry at `until`.
    Wait { denied: Denied, ahead: usize },
}

impl Budget {
    /// Decides whether `certificate` may place an order for `names` now.
    /// `stored` are the orders the cached Certificates of this issuer record.
    /// On success the order is counted at once (call [`Budget::release`] if
    /// it could not be placed after all).
    pub fn reserve(
        &self,
        issuer: &str,
        limits: &AcmeRateLimits,
        stored: Vec<Placed>,
        certificate: &str,
        names: &[String],
        now: Timestamp,
    ) -> Decision {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let placed = state.placed.entry(issuer.to_string()).or_default();
        placed.retain(|p| p.at + HISTORY >= now);
        let mut history: BTreeSet<Placed> = stored.into_iter().collect();
        history.extend(placed.iter().cloned());
        let history: Vec<Placed> = history.into_iter().collect();

        let waiting = state.waiting.entry(issuer.to_string()).or_default();
        let instant = Instant::now();
        waiting.retain(|_, w| instant.duration_since(w.seen) < STALE);
        let since = waiting.get(certificate).map_or(instant, |w| w.since);
        let ahead = waiting
            .iter()
            .filter(|(key, w)| key.as_str() != certificate && w.since < since)
            .count();

        let verdict = evaluate(limits, &history, names, now).and_then(|()| {
            // Free slots of the account-wide limit go to those who waited longest.
            let free = free_slots(limits, &history, now);
            if ahead >= free {
                Err(Denied {
                    limit: "newOrders",
                    scope: "account".into(),
                    used: allowed(limits.new_orders.limit, limits.budget_percent)
                        .saturating_sub(free as u32),
                    allowed: allowed(limits.new_orders.limit, limits.budget_percent),
                    window: window(&limits.new_orders),
                    until: now + SignedDuration::from_secs(2),
                })
            } else {
                Ok(())
            }
        });
        match verdict {
            Ok(()) => {
                waiting.remove(certificate);
                state
                    .placed
                    .entry(issuer.to_string())
                    .or_default()
                    .push(Placed {
                        certificate: certificate.to_string(),
                        names: name_set(names),
                        at: now,
                    });
                Decision::Granted { at: now }
            }
            Err(denied) => {
                waiting
                    .entry(certificate.to_string())
                    .and_modify(|w| w.seen = instant)
                    .or_insert(Waiting {
                        since: instant,
                        seen: instant,
                    });
                Decision::Wait { denied, ahead }
            }
        }
    }

    /// Forgets a reservation whose order was not placed (the server refused it
    /// before creating anything).
    pub fn release(&self, issuer: &str, certificate: &str, at: Timestamp) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(placed) = state.placed.get_mut(issuer) {
            placed.retain(|p| !(p.certificate == certificate && p.at == at));
        }
    }

    /// Forgets that `certificate` waits (it no longer needs an order).
    pub fn not_waiting(&self, issuer: &str, certificate: &str) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(waiting) = state.waiting.get_mut(issuer) {
            waiting.remove(certificate);
        }
    }

    /// Certificates waiting for budget, per issuer.
    pub fn queue_lengths(&self) -> Vec<(String, usize)> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        state
            .waiting
            .iter()
            .map(|(issuer, w)| {
                (
                    issuer.clone(),
                    w.values()
                        .filter(|w| now.duration_since(w.seen) < STALE)
                        .count(),
                )
            })
            .collect()
    }
}

/// Orders the account-wide limit still allows now.
fn free_slots(limits: &AcmeRateLimits, history: &[Placed], now: Timestamp) -> usize {
    let window = window(&limits.new_orders);
    let used = history.iter().filter(|p| p.at + window >= now).count();
    (allowed(limits.new_orders.limit, limits.budget_percent) as usize).saturating_sub(used)
}

/// Orders placed in `window` before `now` (for the metrics).
pub fn used_in_window(history: &[Placed], limit: &RateLimit, now: Timestamp) -> usize {
    let window = window(limit);
    history.iter().filter(|p| p.at + window >= now).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(orders: u32, secs: u64, percent: u8) -> AcmeRateLimits {
        AcmeRateLimits {
            new_orders: RateLimit {
                limit: orders,
                window: std::time::Duration::from_secs(secs).into(),
            },
            budget_percent: percent,
            ..AcmeRateLimits::default()
        }
    }

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn placed(cert: &str, names: &[&str], at: Timestamp) -> Placed {
        Placed {
            certificate: cert.into(),
            names: names.iter().map(|n| n.to_string()).collect(),
            at,
        }
    }

    fn n(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn the_share_of_a_limit_is_rounded_down_but_never_zero() {
        assert_eq!(allowed(300, 80), 240);
        assert_eq!(allowed(5, 80), 4);
        assert_eq!(allowed(1, 10), 1);
        assert_eq!(allowed(3, 100), 3);
    }

    #[test]
    fn registered_domains_follow_the_public_suffix_list() {
        assert_eq!(registered_domain("deliberations.mons.be"), "mons.be");
        assert_eq!(registered_domain("mons.be"), "mons.be");
        assert_eq!(registered_domain("*.cpas.namur.be"), "namur.be");
        assert_eq!(registered_domain("www.example.co.uk"), "example.co.uk");
    }

    #[test]
    fn orders_beyond_the_account_budget_wait_until_the_oldest_leaves_the_window() {
        let l = limits(3, 20, 100);
        let history = vec![
            placed("a", &["a.mons.be"], t(0)),
            placed("b", &["b.namur.be"], t(5)),
            placed("c", &["c.liege.be"], t(10)),
        ];
        let denied = evaluate(&l, &history, &n(&["d.huy.be"]), t(12)).err();
        let denied = denied.unwrap_or_else(|| panic!("a fourth order in 20s must wait"));
        assert_eq!(denied.limit, "newOrders");
        assert_eq!((denied.used, denied.allowed), (3, 3));
        assert_eq!(denied.until, t(21));
        assert!(evaluate(&l, &history, &n(&["d.huy.be"]), t(21)).is_ok());
    }

    #[test]
    fn the_per_domain_and_duplicate_limits_count_only_their_scope() {
        let mut l = limits(100, 3600, 100);
        l.certificates_per_domain.limit = 2;
        l.duplicate_certificates.limit = 1;
        let history = vec![
            placed("a", &["a.mons.be"], t(0)),
            placed("b", &["b.mons.be"], t(1)),
            placed("c", &["c.namur.be"], t(2)),
        ];
        let denied = evaluate(&l, &history, &n(&["x.mons.be"]), t(3)).err();
        assert_eq!(
            denied.map(|d| (d.limit, d.scope)),
            Some(("certificatesPerDomain", "mons.be".to_string()))
        );
        let denied = evaluate(&l, &history, &n(&["c.namur.be"]), t(3)).err();
        assert_eq!(denied.map(|d| d.limit), Some("duplicateCertificates"));
        assert!(evaluate(&l, &history, &n(&["d.namur.be"]), t(3)).is_ok());
    }

    #[test]
    fn a_burst_never_exceeds_the_budget_in_any_window() {
        // 50 certificates asking every second for 5 minutes against 3 orders per 20s.
        let budget = Budget::default();
        let l = limits(3, 20, 100);
        let mut granted: Vec<Timestamp> = Vec::new();
        let mut done = BTreeSet::new();
        for s in 0..300 {
            for c in 0..50 {
                let cert = format!("ns/c{c}");
                if done.contains(&cert) {
                    continue;
                }
                let name = format!("c{c}.mons.be");
                if let Decision::Granted { at } =
                    budget.reserve("dev", &l, Vec::new(), &cert, &[name], t(s))
                {
                    granted.push(at);
                    done.insert(cert);
                }
            }
        }
        // 3 per 20 s: 45 in 300 s.
        assert_eq!(granted.len(), 45, "orders in 300s");
        for (i, a) in granted.iter().enumerate() {
            let in_window = granted[i..]
                .iter()
                .filter(|b| **b < *a + SignedDuration::from_secs(20))
                .count();
            assert!(in_window <= 3, "{in_window} orders within 20s of {a}");
        }
    }

    #[test]
    fn waiting_certificates_are_served_first_come_first_served() {
        let budget = Budget::default();
        let l = limits(1, 10, 100);
        let names = |c: &str| vec![format!("{c}.mons.be")];
        assert!(matches!(
            budget.reserve("dev", &l, Vec::new(), "ns/a", &names("a"), t(0)),
            Decision::Granted { .. }
        ));
        // b then c queue behind the full budget.
        assert!(matches!(
            budget.reserve("dev", &l, Vec::new(), "ns/b", &names("b"), t(1)),
            Decision::Wait { ahead: 0, .. }
        ));
        std::thread::sleep(Duration::from_millis(5));
        assert!(matches!(
            budget.reserve("dev", &l, Vec::new(), "ns/c", &names("c"), t(2)),
            Decision::Wait { ahead: 1, .. }
        ));
        assert_eq!(budget.queue_lengths(), vec![("dev".to_string(), 2)]);
        // When the slot frees, c asking first still lets b go first.
        assert!(matches!(
            budget.reserve("dev", &l, Vec::new(), "ns/c", &names("c"), t(12)),
            Decision::Wait { .. }
        ));
        assert!(matches!(
            budget.reserve("dev", &l, Vec::new(), "ns/b", &names("b"), t(12)),
            Decision::Granted { .. }
        ));
    }

    #[test]
    fn orders_recorded_in_the_status_count_after_a_restart_and_are_not_counted_twice() {
        let budget = Budget::default();
        let l = limits(2, 60, 100);
        let stored = vec![placed("ns/a", &["a.mons.be"], t(0))];
        assert!(matches!(
            budget.reserve("dev", &l, stored.clone(), "ns/b", &n(&["b.mons.be"]), t(1)),
            Decision::Granted { .. }
        ));
        // The status now shows b's order too: still two orders, not three.
        let mut stored = stored;
        stored.push(placed("ns/b", &["b.mons.be"], t(1)));
        let d = budget.reserve("dev", &l, stored, "ns/c", &n(&["c.mons.be"]), t(2));
        assert!(
            matches!(&d, Decision::Wait { denied, .. } if denied.used == 2),
            "{d:?}"
        );
    }
}
