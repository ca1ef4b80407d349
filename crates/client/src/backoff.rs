//! The workspace's one jittered exponential backoff (style.md §4).
//!
//! Owns the arithmetic only: [`Backoff::next_delay`] says how long to wait
//! before the next attempt, [`Backoff::reset`] starts over after a success.
//! It does not sleep and does not decide *whether* to retry: that is the
//! caller's policy (see [`crate::Error::is_transient`]). The supervisor's
//! refresher and the log shipper use it.
//!
//! The delay before attempt `n` (counting from 0) is
//! `min(initial × factorⁿ, max)`, then spread by a random factor in
//! `[1 − jitter, 1 + jitter]` so that many runners that failed together do
//! not retry together, and finally capped at `max` again: no delay is ever
//! longer than `max`.

use std::time::Duration;

use rand::Rng;

/// A jittered exponential backoff. Cheap to clone; each clone counts on its
/// own.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    factor: f64,
    jitter: f64,
    attempt: u32,
}

impl Default for Backoff {
    /// 500 ms, doubling, capped at 60 s, ±20 % jitter.
    fn default() -> Self {
        Backoff::new(Backoff::DEFAULT_INITIAL, Backoff::DEFAULT_MAX)
    }
}

impl Backoff {
    /// The default first delay.
    pub const DEFAULT_INITIAL: Duration = Duration::from_millis(500);
    /// The default cap.
    pub const DEFAULT_MAX: Duration = Duration::from_secs(60);
    /// The default growth factor.
    pub const DEFAULT_FACTOR: f64 = 2.0;
    /// The default jitter, as a fraction of the delay.
    pub const DEFAULT_JITTER: f64 = 0.2;

    /// A backoff from `initial` up to `max` (raised to `initial` if smaller),
    /// doubling, with ±20 % jitter.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            factor: Self::DEFAULT_FACTOR,
            jitter: Self::DEFAULT_JITTER,
            attempt: 0,
        }
    }

    /// Sets the growth factor; values below 1 (or not finite) are taken as 1.
    pub fn with_factor(mut self, factor: f64) -> Self {
        self.factor = if factor.is_finite() && factor >= 1.0 {
            factor
        } else {
            1.0
        };
        self
    }

    /// Sets the jitter as a fraction of the delay, clamped to `0.0..=1.0`;
    /// `0.0` makes the delays exact.
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// The delay to wait before the next attempt; each call moves one step up.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.base_delay(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        let spread = if self.jitter > 0.0 {
            rand::rng().random_range(-self.jitter..=self.jitter)
        } else {
            0.0
        };
        base.mul_f64(1.0 + spread).min(self.max)
    }

    /// Starts over from `initial`: call it after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// How many delays were handed out since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// The cap.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The un-jittered delay before attempt `n`, capped at `max`.
    fn base_delay(&self, n: u32) -> Duration {
        // Past ~1000 doublings f64 overflows to infinity; cap the exponent
        // long before that (the cap is reached far earlier anyway).
        let exp = i32::try_from(n.min(1000)).expect("n is at most 1000");
        let secs = self.initial.as_secs_f64() * self.factor.powi(exp);
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(secs)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn without_jitter_the_delays_double_up_to_the_cap() {
        let mut b = Backoff::new(100 * MS, 1000 * MS).with_jitter(0.0);
        let got: Vec<_> = (0..6).map(|_| b.next_delay()).collect();
        assert_eq!(
            got,
            [100 * MS, 200 * MS, 400 * MS, 800 * MS, 1000 * MS, 1000 * MS]
        );
        assert_eq!(b.attempts(), 6);
    }

    #[test]
    fn reset_starts_over_from_the_initial_delay() {
        let mut b = Backoff::new(100 * MS, 10_000 * MS).with_jitter(0.0);
        for _ in 0..5 {
            b.next_delay();
        }
        b.reset();
        assert_eq!(b.attempts(), 0);
        assert_eq!(b.next_delay(), 100 * MS);
    }

    #[test]
    fn jittered_delays_stay_within_the_band_and_under_the_cap() {
        let mut b = Backoff::new(1000 * MS, 4000 * MS).with_jitter(0.25);
        for n in 0..2000u32 {
            let step = n % 4;
            if step == 0 {
                b.reset();
            }
            let base = [1000.0, 2000.0, 4000.0, 4000.0][step as usize];
            let d = b.next_delay().as_secs_f64() * 1000.0;
            assert!(d >= base * 0.75 - 1e-6, "attempt {step}: {d} ms");
            assert!(
                d <= (base * 1.25).min(4000.0) + 1e-6,
                "attempt {step}: {d} ms"
            );
        }
    }

    #[test]
    fn jitter_actually_spreads_the_delays() {
        let mut b = Backoff::new(1000 * MS, 1000 * MS);
        let draws: std::collections::BTreeSet<_> = (0..50).map(|_| b.next_delay()).collect();
        assert!(draws.len() > 10, "only {} distinct delays", draws.len());
    }

    #[test]
    fn a_custom_factor_is_used() {
        let mut b = Backoff::new(10 * MS, 10_000 * MS)
            .with_factor(3.0)
            .with_jitter(0.0);
        let got: Vec<_> = (0..4).map(|_| b.next_delay()).collect();
        assert_eq!(got, [10 * MS, 30 * MS, 90 * MS, 270 * MS]);
    }

    #[test]
    fn nonsense_settings_are_tamed() {
        let mut b = Backoff::new(100 * MS, 10 * MS)
            .with_factor(f64::NAN)
            .with_jitter(7.0);
        assert_eq!(b.max(), 100 * MS, "max is raised to initial");
        for _ in 0..20 {
            assert!(b.next_delay() <= 100 * MS);
        }
        let mut shrink = Backoff::new(100 * MS, 1000 * MS)
            .with_factor(0.5)
            .with_jitter(0.0);
        assert_eq!(shrink.next_delay(), 100 * MS);
        assert_eq!(shrink.next_delay(), 100 * MS, "a factor below 1 is 1");
    }

    #[test]
    fn a_very_long_failure_streak_stays_at_the_cap_without_overflow() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(300)).with_jitter(0.0);
        for _ in 0..5000 {
            b.next_delay();
        }
        assert_eq!(b.next_delay(), Duration::from_secs(300));
    }

    #[tokio::test(start_paused = true)]
    async fn delays_drive_a_retry_loop_in_paused_time() {
        let start = tokio::time::Instant::now();
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8)).with_jitter(0.0);
        for _ in 0..5 {
            tokio::time::sleep(b.next_delay()).await;
        }
        // 1 + 2 + 4 + 8 + 8
        assert_eq!(start.elapsed(), Duration::from_secs(23));
    }
}
