//! When the next bootstrap happens: a pure function of the clock, the
//! interval, the earliest expiry among the held entries and a jitter draw, so
//! its table test needs no timer.
//!
//! - Every `interval` (the platform's `refresh_after_s`, or
//!   `SPEDY_REFRESH_INTERVAL`), spread by ±10% jitter so runners that started
//!   together do not refresh together.
//! - Earlier when an entry expires before that: about `lead` (5 minutes)
//!   before its `expires_at`; when the entry has less than `2 × lead` left,
//!   at half its remaining lifetime instead, so a short-lived entry is never
//!   refreshed after it expired and a refresh is never scheduled in the past.
//! - Never sooner than `min` after now, so an already expired entry cannot
//!   make the runner spin.

use std::time::Duration;

use time::OffsetDateTime;

/// The jitter on the refresh interval, as a fraction (±10%).
pub const JITTER: f64 = 0.10;

/// The inputs of [`next_refresh`].
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// The refresh interval before jitter.
    pub interval: Duration,
    /// How long before an entry's expiry to refresh.
    pub lead: Duration,
    /// The shortest delay.
    pub min: Duration,
}

impl Schedule {
    /// The delay until the next bootstrap. `jitter` is a draw in
    /// `-1.0..=1.0`, scaled to ±[`JITTER`] of the interval.
    pub fn next_refresh(
        &self,
        now: OffsetDateTime,
        earliest_expiry: Option<OffsetDateTime>,
        jitter: f64,
    ) -> Duration {
        let spread = 1.0 + jitter.clamp(-1.0, 1.0) * JITTER;
        let mut delay = self.interval.mul_f64(spread);
        if let Some(expiry) = earliest_expiry {
            let remaining = Duration::try_from(expiry - now).unwrap_or(Duration::ZERO);
            let before_expiry = if remaining > self.lead * 2 {
                remaining - self.lead
            } else {
                remaining / 2
            };
            delay = delay.min(before_expiry);
        }
        delay.max(self.min)
    }
}

/// A jitter draw in `-1.0..=1.0`.
pub fn draw() -> f64 {
    use rand::Rng;
    rand::rng().random_range(-1.0..=1.0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn mins(m: u64) -> Duration {
        Duration::from_secs(m * 60)
    }

    #[test]
    fn the_refresh_schedule_follows_interval_expiry_and_jitter() {
        let now = datetime!(2026-12-03 12:00 UTC);
        let s = Schedule {
            interval: mins(15),
            lead: mins(5),
            min: Duration::from_secs(1),
        };
        // (earliest expiry, jitter draw, expected delay)
        let table: [(Option<OffsetDateTime>, f64, Duration); 9] = [
            (None, 0.0, mins(15)),
            (None, 1.0, Duration::from_secs(990)),  // +10%
            (None, -1.0, Duration::from_secs(810)), // -10%
            (None, 5.0, Duration::from_secs(990)),  // draws are clamped
            // A GitHub App token valid 60 min: the interval comes first.
            (Some(datetime!(2026-12-03 13:00 UTC)), 0.0, mins(15)),
            // Expiring in 18 min: 5 min before it, before the interval.
            (Some(datetime!(2026-12-03 12:18 UTC)), 0.0, mins(13)),
            // Expiring in 8 min (< 2 × lead): at half the remaining lifetime.
            (Some(datetime!(2026-12-03 12:08 UTC)), 0.0, mins(4)),
            // Expiring in 2 s: at half, but never under the minimum.
            (
                Some(datetime!(2026-12-03 12:00:02 UTC)),
                0.0,
                Duration::from_secs(1),
            ),
            // Already expired: the minimum, not a delay in the past.
            (
                Some(datetime!(2026-12-03 11:00 UTC)),
                0.0,
                Duration::from_secs(1),
            ),
        ];
        for (expiry, jitter, want) in table {
            assert_eq!(
                s.next_refresh(now, expiry, jitter),
                want,
                "{expiry:?} {jitter}"
            );
        }
    }

    #[test]
    fn a_short_interval_and_its_jitter_stay_within_ten_percent() {
        let now = datetime!(2026-12-03 12:00 UTC);
        let s = Schedule {
            interval: Duration::from_secs(1),
            lead: mins(5),
            min: Duration::from_millis(10),
        };
        for _ in 0..1000 {
            let d = s.next_refresh(now, None, draw());
            assert!(
                d >= Duration::from_millis(900) && d <= Duration::from_millis(1100),
                "{d:?}"
            );
        }
    }
}
