//! Sites Ready over time: caches kept by watches, and the count read every
//! second beside the apply that the curve times.

use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::{self, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;

/// A cache of every `K`, kept by a watch: what the benchmark reads every
/// second to draw its curves. Listing thousands of objects every second would
/// load the API server as much as what is measured; a watch sends each change
/// once. The watch runs until the returned task is aborted.
pub(super) async fn watched<K>(
    api: Api<K>,
) -> anyhow::Result<(Store<K>, tokio::task::JoinHandle<()>)>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(api, watcher::Config::default().page_size(500)).default_backoff(),
    );
    let task = tokio::spawn(stream.for_each(|_| std::future::ready(())));
    reader
        .wait_until_ready()
        .await
        .context("the benchmark's watch stopped before its first list")?;
    Ok((reader, task))
}

/// Runs `work` (an apply) and, beside it from its start, counts `ready()`
/// every `every` until `n` are ready and the work is done: the curve of
/// sites ready over time, in seconds since the start. An error of the work
/// ends it at once; `timeout` bounds the wait for `n`.
pub(super) async fn sample_during<T>(
    work: impl std::future::Future<Output = anyhow::Result<T>>,
    ready: impl Fn() -> u32,
    n: u32,
    every: Duration,
    timeout: Duration,
    what: &str,
) -> anyhow::Result<(T, Vec<(f64, u32)>)> {
    let started = tokio::time::Instant::now();
    let sampling = async {
        let mut curve = Vec::new();
        loop {
            let count = ready();
            curve.push((started.elapsed().as_secs_f64(), count));
            if count >= n {
                return anyhow::Ok(curve);
            }
            anyhow::ensure!(
                started.elapsed() < timeout,
                "only {count} of {n} {what} after {} s",
                timeout.as_secs()
            );
            tokio::time::sleep(every).await;
        }
    };
    futures::try_join!(work, sampling)
}

/// When a curve reached its last count, in seconds since its start; 0 for no curve.
pub(super) fn end_time(curve: &[(f64, u32)]) -> f64 {
    curve.last().map(|c| c.0).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// The fault of the sixth 10,000-site run: the count started once the
    /// apply had finished, so an apply slower than its servers drew one point.
    #[tokio::test(start_paused = true)]
    async fn the_curve_is_sampled_while_the_apply_runs() {
        let applied = Arc::new(AtomicU64::new(0));
        let work = {
            let applied = applied.clone();
            async move {
                for _ in 0..10 {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    applied.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok("applied")
            }
        };
        let (out, curve) = sample_during(
            work,
            || applied.load(Ordering::Relaxed) as u32,
            10,
            Duration::from_secs(1),
            Duration::from_secs(600),
            "sites ready",
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out, "applied");
        assert_eq!(curve.first(), Some(&(0.0, 0)));
        assert_eq!(curve.last().map(|c| c.1), Some(10));
        let mut counts: Vec<u32> = curve.iter().map(|c| c.1).collect();
        counts.dedup();
        assert_eq!(counts, (0..=10).collect::<Vec<u32>>(), "{curve:?}");
        assert!(curve.windows(2).all(|w| w[0].0 < w[1].0), "{curve:?}");
        assert!(
            (30.0..=31.0).contains(&curve[curve.len() - 1].0),
            "{curve:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_apply_error_or_a_timeout_ends_the_sampling() {
        let failed = sample_during(
            async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                Err::<(), _>(anyhow::anyhow!("the API server refused an object"))
            },
            || 0,
            5,
            Duration::from_secs(1),
            Duration::from_secs(600),
            "sites ready",
        );
        let e = failed.await.err().unwrap_or_else(|| panic!("no error"));
        assert!(e.to_string().contains("refused an object"), "{e}");
        let slow = sample_during(
            async { anyhow::Ok(()) },
            || 3,
            5,
            Duration::from_secs(1),
            Duration::from_secs(10),
            "sites ready",
        );
        let e = slow.await.err().unwrap_or_else(|| panic!("no error"));
        assert_eq!(e.to_string(), "only 3 of 5 sites ready after 10 s");
    }

    #[test]
    fn a_curve_ends_at_its_last_sample() {
        assert_eq!(end_time(&[(0.0, 0), (1.0, 4), (2.5, 9)]), 2.5);
        assert_eq!(end_time(&[]), 0.0);
    }
}
