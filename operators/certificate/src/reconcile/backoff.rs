//! Waiting after failed issuances: the delay doubles with each failure in a
//! row, up to a cap.

use std::time::Duration;

/// Backoff after `failures` failed issuances in a row: base doubling to the cap.
pub fn retry_delay(base: Duration, cap: Duration, failures: i32) -> Duration {
    let n = failures.clamp(1, 30) as u32 - 1;
    base.saturating_mul(2u32.saturating_pow(n)).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_backoff_doubles_from_the_base_to_the_cap() {
        let base = Duration::from_secs(3600);
        let cap = Duration::from_secs(24 * 3600);
        let got: Vec<u64> = (1..=7)
            .map(|n| retry_delay(base, cap, n).as_secs() / 3600)
            .collect();
        assert_eq!(got, vec![1, 2, 4, 8, 16, 24, 24]);
    }
}
