//! Leader election on a coordination Lease, so that two replicas of the
//! operator can run and only one reconciles and writes.
//!
//! The rules are those of Kubernetes' own components. A candidate takes the
//! Lease when nobody holds it, or when the record it observes (holder, renew
//! time, transitions) has not changed for a whole lease duration, measured on
//! its own clock from the moment it observed that record, so clock skew
//! between machines does not matter. Every write is a replace over the
//! version read: two candidates never both win. The leader renews every retry
//! period; when it has not renewed for the renew deadline (shorter than the
//! lease duration) it steps down before anyone else may take over, so two
//! leaders never overlap. A leader stopping cleanly releases the Lease, and
//! the standby takes over at its next try.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, PostParams};
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;

/// Where the Lease lives and how long it lasts.
#[derive(Clone, Debug)]
pub struct Config {
    pub namespace: String,
    pub name: String,
    /// This candidate's name in the Lease (unique per process).
    pub identity: String,
    /// How long a leader holds the Lease without renewing it.
    pub lease_duration: Duration,
    /// How long a leader keeps leading while its renewals fail.
    pub renew_deadline: Duration,
    /// Time between two tries (to acquire, or to renew).
    pub retry_period: Duration,
}

impl Config {
    /// Kubernetes' defaults: 15 s lease, 10 s renew deadline, 2 s retries.
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// A candidate's name: the pod's (`POD_NAME`, else `HOSTNAME`) and a suffix
/// unique to this process, so a restarted pod is a new candidate.
pub fn identity() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "mutu".to_string());
    format!("{host}-{:06x}", fastrand::u32(..0x100_0000))
}

/// What a candidate does after reading the Lease.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Write itself as holder (a new term, or its own renewal).
    Take { renewal: bool },
    /// Someone else holds a live Lease.
    Wait,
}

/// The part of a Lease whose change shows its holder is alive.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Record {
    pub holder: String,
    pub renew_time: Option<String>,
    pub transitions: i32,
}

impl Record {
    pub fn of(spec: &LeaseSpec) -> Self {
        Self {
            holder: spec.holder_identity.clone().unwrap_or_default(),
            renew_time: spec.renew_time.as_ref().map(|t| t.0.to_string()),
            transitions: spec.lease_transitions.unwrap_or(0),
        }
    }
}

/// Whether `me` may write the Lease whose record has been `record` since
/// `observed_since` (on this process's clock), at `now`.
pub fn decide(
    me: &str,
    record: &Record,
    observed_since: Instant,
    now: Instant,
    lease_duration: Duration,
) -> Decision {
    if record.holder == me {
        return Decision::Take { renewal: true };
    }
    if record.holder.is_empty() || now.duration_since(observed_since) >= lease_duration {
        return Decision::Take { renewal: false };
    }
    Decision::Wait
}

/// The spec `me` writes: a renewal keeps the term, a take-over starts one.
pub fn next_spec(
    me: &str,
    current: Option<&LeaseSpec>,
    renewal: bool,
    lease_duration: Duration,
    now: jiff::Timestamp,
) -> LeaseSpec {
    let transitions = current.and_then(|s| s.lease_transitions).unwrap_or(0);
    let had_holder = current
        .and_then(|s| s.holder_identity.as_deref())
        .is_some_and(|h| !h.is_empty());
    LeaseSpec {
        holder_identity: Some(me.to_string()),
        lease_duration_seconds: Some(lease_duration.as_secs().max(1) as i32),
        acquire_time: if renewal {
            current.and_then(|s| s.acquire_time.clone())
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if renewal || !had_holder {
            transitions
        } else {
            transitions + 1
        }),
        ..Default::default()
    }
}

/// A candidate of one Lease.
struct Candidate {
    api: Api<Lease>,
    config: Config,
    observed: Option<(Record, Instant)>,
}

/// Why a try to acquire or renew did not make this process the holder.
#[derive(Debug)]
enum Try {
    Held,
    NotHeld,
    Failed(kube::Error),
}

impl Candidate {
    /// One try: read the Lease, and write it if this process may.
    async fn try_once(&mut self) -> Try {
        let now = Instant::now();
        let current = match self.api.get_opt(&self.config.name).await {
            Ok(current) => current,
            Err(e) => return Try::Failed(e),
        };
        let Some(lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(next_spec(
                    &self.config.identity,
                    None,
                    false,
                    self.config.lease_duration,
                    jiff::Timestamp::now(),
                )),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Try::Held,
                Err(kube::Error::Api(e)) if e.code == 409 => Try::NotHeld,
                Err(e) => Try::Failed(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let record = Record::of(&spec);
        let since = match &self.observed {
            Some((seen, since)) if *seen == record => *since,
            _ => now,
        };
        self.observed = Some((record.clone(), since));
        let renewal = match decide(
            &self.config.identity,
            &record,
            since,
            now,
            self.config.lease_duration,
        ) {
            Decision::Wait => return Try::NotHeld,
            Decision::Take { renewal } => renewal,
        };
        let mut next = lease;
        next.spec = Some(next_spec(
            &self.config.identity,
            Some(&spec),
            renewal,
            self.config.lease_duration,
            jiff::Timestamp::now(),
        ));
        // Over the version read: a 409 means someone else wrote first.
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &next)
            .await
        {
            Ok(_) => Try::Held,
            Err(kube::Error::Api(e)) if e.code == 409 => Try::NotHeld,
            Err(e) => Try::Failed(e),
        }
    }
}

/// The leadership of this process, once acquired: watch [`Leadership::lost`],
/// and [`Leadership::release`] it on a clean stop.
pub struct Leadership {
    fence: crate::fence::Fence,
    lost: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
    renewing: tokio::task::JoinHandle<Candidate>,
    gauge: Gauge,
}

impl Leadership {
    /// The fence of this leadership's writes (see [`crate::fence`]): open until
    /// the renew deadline after each renewal, closed once the leadership is lost.
    pub fn fence(&self) -> crate::fence::Fence {
        self.fence.clone()
    }

    /// Completes when this process is no longer the leader: its renewals
    /// failed for the renew deadline, or someone else holds the Lease.
    pub async fn lost(&self) {
        let mut rx = self.lost.clone();
        let _ = rx.wait_for(|lost| *lost).await;
    }

    /// Stops renewing and hands the Lease back (holder cleared), so the
    /// standby takes over at once instead of after a lease duration.
    pub async fn release(self) {
        let _ = self.stop.send(true);
        self.gauge.set(0);
        let Ok(candidate) = self.renewing.await else {
            return;
        };
        if *self.lost.borrow() {
            return;
        }
        let Ok(Some(mut lease)) = candidate.api.get_opt(&candidate.config.name).await else {
            return;
        };
        let ours = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            == Some(candidate.config.identity.as_str());
        if !ours {
            return;
        }
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
        }
        match candidate
            .api
            .replace(&candidate.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(lease = %candidate.config.name, "lease released"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot release the lease; the standby takes over when it expires")
            }
        }
    }
}

/// Waits until this process holds the Lease (`None` if `shutdown` completes
/// first), then keeps renewing it in the background.
pub async fn acquire(
    client: Client,
    config: Config,
    metrics: &crate::Metrics,
    shutdown: impl Future<Output = ()>,
) -> Option<Leadership> {
    let gauge = Gauge::default();
    metrics.register(|r| {
        r.register(
            "leader",
            "1 while this process holds the leader-election Lease and reconciles, 0 while it stands by",
            gauge.clone(),
        );
    });
    let mut candidate = Candidate {
        api: Api::namespaced(client, &config.namespace),
        config: config.clone(),
        observed: None,
    };
    tracing::info!(lease = %config.name, namespace = %config.namespace, identity = %config.identity, "standing by for the lease");
    let waiting = async {
        loop {
            match candidate.try_once().await {
                Try::Held => return,
                Try::NotHeld => {}
                Try::Failed(e) => {
                    tracing::warn!(error = %e, "cannot read or write the lease; retrying")
                }
            }
            tokio::time::sleep(config.retry_period).await;
        }
    };
    tokio::select! {
        () = waiting => {}
        () = shutdown => return None,
    }
    tracing::info!(lease = %config.name, identity = %config.identity, "leading");
    gauge.set(1);
    // Taken just now: writes may go for a renew deadline, then each renewal
    // extends them by one from the moment it was tried.
    let fence = crate::fence::Fence::until(Instant::now() + config.renew_deadline);
    let (lost_tx, lost) = watch::channel(false);
    let (stop, mut stop_rx) = watch::channel(false);
    let renewing = tokio::spawn({
        let gauge = gauge.clone();
        let fence = fence.clone();
        async move {
            let mut renewed = Instant::now();
            loop {
                tokio::select! {
                    _ = stop_rx.wait_for(|s| *s) => return candidate,
                    () = tokio::time::sleep(candidate.config.retry_period) => {}
                }
                let tried = Instant::now();
                match candidate.try_once().await {
                    Try::Held => {
                        renewed = tried;
                        fence.extend(tried + candidate.config.renew_deadline);
                    }
                    Try::NotHeld => {
                        tracing::error!(lease = %candidate.config.name, "another process holds the lease; stepping down");
                        break;
                    }
                    Try::Failed(e) => tracing::warn!(error = %e, "cannot renew the lease"),
                }
                if renewed.elapsed() >= candidate.config.renew_deadline {
                    tracing::error!(lease = %candidate.config.name, deadline = ?candidate.config.renew_deadline, "the lease could not be renewed in time; stepping down");
                    break;
                }
            }
            fence.close();
            gauge.set(0);
            let _ = lost_tx.send(true);
            candidate
        }
    });
    Some(Leadership {
        fence,
        lost,
        stop,
        renewing,
        gauge,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(holder: &str, renew: &str) -> Record {
        Record {
            holder: holder.into(),
            renew_time: Some(renew.into()),
            transitions: 0,
        }
    }

    #[test]
    fn a_live_lease_of_another_is_waited_for_until_it_stops_changing_for_a_duration() {
        let t0 = Instant::now();
        let d = Duration::from_secs(15);
        let r = record("a", "t1");
        assert_eq!(
            decide("b", &r, t0, t0 + Duration::from_secs(14), d),
            Decision::Wait
        );
        assert_eq!(
            decide("b", &r, t0, t0 + Duration::from_secs(15), d),
            Decision::Take { renewal: false }
        );
    }

    #[test]
    fn its_own_lease_is_renewed_and_a_released_one_taken_at_once() {
        let t0 = Instant::now();
        let d = Duration::from_secs(15);
        assert_eq!(
            decide("a", &record("a", "t1"), t0, t0, d),
            Decision::Take { renewal: true }
        );
        assert_eq!(
            decide("b", &record("", "t1"), t0, t0, d),
            Decision::Take { renewal: false }
        );
    }

    #[test]
    fn a_take_over_starts_a_term_and_a_renewal_keeps_it() {
        let d = Duration::from_secs(15);
        let t1: jiff::Timestamp = "2026-01-01T00:00:00Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let t2: jiff::Timestamp = "2026-01-01T00:00:05Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let first = next_spec("a", None, false, d, t1);
        assert_eq!(first.lease_transitions, Some(0));
        assert_eq!(first.lease_duration_seconds, Some(15));
        let renewed = next_spec("a", Some(&first), true, d, t2);
        assert_eq!(renewed.acquire_time, first.acquire_time);
        assert_eq!(renewed.renew_time, Some(MicroTime(t2)));
        assert_eq!(renewed.lease_transitions, Some(0));
        let taken = next_spec("b", Some(&renewed), false, d, t2);
        assert_eq!(taken.holder_identity.as_deref(), Some("b"));
        assert_eq!(taken.acquire_time, Some(MicroTime(t2)));
        assert_eq!(taken.lease_transitions, Some(1));
    }

    #[test]
    fn identities_differ_between_processes_of_one_pod() {
        let a = identity();
        assert!(a.len() > 7, "{a}");
    }
}
