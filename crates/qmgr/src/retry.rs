//! Retry and lifetime rules: pure arithmetic over the time given.

use std::time::{Duration, SystemTime};

use relais_queue::Outcome;

/// Retry and lifetime rules (Postfix's defaults: 300 s, doubling up to 4000 s, 5 days).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Wait after the first failed attempt.
    pub first: Duration,
    /// Longest wait between attempts.
    pub max: Duration,
    /// After this long in the queue, what is still undelivered bounces.
    pub lifetime: Duration,
    /// Send a delay warning (to senders who asked with NOTIFY=DELAY) after this long; `None`:
    /// never.
    pub delay_warning: Option<Duration>,
}

impl Retry {
    /// The wait after `attempts` failed attempts: `first`, doubling, capped at `max`.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let shift = attempts.saturating_sub(1).min(20);
        self.first.saturating_mul(1 << shift).min(self.max)
    }

    /// True if a message that arrived at `arrival` has been queued too long at `now`.
    pub fn expired(&self, arrival: SystemTime, now: SystemTime) -> bool {
        now.duration_since(arrival).unwrap_or_default() >= self.lifetime
    }

    /// True if a delay warning is due at `now` for a message that arrived at `arrival`.
    pub fn warning_due(&self, arrival: SystemTime, now: SystemTime) -> bool {
        self.delay_warning
            .is_some_and(|after| now.duration_since(arrival).unwrap_or_default() >= after)
    }
}

/// Expiry turns what is still deferred into a failure.
pub fn expire(o: Outcome, expired: bool) -> Outcome {
    match o {
        Outcome::Deferred { status, reason } if expired => Outcome::failed(
            "5.4.7",
            format!("delivery time expired; last error: {status} {reason}"),
        ),
        o => o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn rules(delay_warning: Option<u64>) -> Retry {
        Retry {
            first: Duration::from_secs(300),
            max: Duration::from_secs(4000),
            lifetime: Duration::from_secs(5 * 86400),
            delay_warning: delay_warning.map(Duration::from_secs),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let r = rules(None);
        let table: &[(u32, u64)] = &[
            (0, 300),
            (1, 300),
            (2, 600),
            (3, 1200),
            (4, 2400),
            (5, 4000),
            (6, 4000),
            (1000, 4000),
        ];
        for &(attempts, wait) in table {
            assert_eq!(r.backoff(attempts).as_secs(), wait, "{attempts}");
        }
    }

    #[test]
    fn lifetime_and_warnings() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |s: u64| t0 + Duration::from_secs(s);
        // (delay_warning, seconds in the queue, expired, warning due)
        let table: &[(Option<u64>, u64, bool, bool)] = &[
            (None, 0, false, false),
            (None, 5 * 86400 - 1, false, false),
            (None, 5 * 86400, true, false),
            (Some(4 * 3600), 4 * 3600 - 1, false, false),
            (Some(4 * 3600), 4 * 3600, false, true),
        ];
        for &(warn, queued, expired, due) in table {
            let r = rules(warn);
            assert_eq!(r.expired(t0, at(queued)), expired, "{queued}");
            assert_eq!(r.warning_due(t0, at(queued)), due, "{warn:?} {queued}");
        }
        // A clock that went backwards is no expiry.
        assert!(!rules(None).expired(at(10), t0));
    }

    #[test]
    fn expiry_fails_only_what_is_deferred() {
        let table: &[(Outcome, bool, Outcome)] = &[
            (
                Outcome::deferred("4.4.1", "no route"),
                true,
                Outcome::failed("5.4.7", "delivery time expired; last error: 4.4.1 no route"),
            ),
            (
                Outcome::deferred("4.4.1", "no route"),
                false,
                Outcome::deferred("4.4.1", "no route"),
            ),
            (
                Outcome::Delivered("ok".into()),
                true,
                Outcome::Delivered("ok".into()),
            ),
            (
                Outcome::failed("5.1.1", "gone"),
                true,
                Outcome::failed("5.1.1", "gone"),
            ),
        ];
        for (o, expired, want) in table {
            assert_eq!(&expire(o.clone(), *expired), want);
        }
    }
}
