//! The whole time a client may take for one request (issue 15): a command line from the reply
//! before it to its end, the content of a message from `354` (or a BDAT line) to its end, the
//! latter growing with what arrived (`min_data_rate`). The idle timeouts alone let a client
//! that sends a byte every few seconds hold a connection for ever (slowloris); this closes it.
//! Pure: time comes in as an argument.

use std::time::{Duration, Instant};

use relais_config::Limits;

/// The deadline of the request being received.
#[derive(Debug, Clone)]
pub(super) struct Deadline {
    /// When the request began: the last reply written (or the greeting).
    start: Instant,
    /// True while message content is being received.
    content: bool,
    /// Content octets received since `start`.
    received: u64,
    /// `[limits] command_deadline`.
    command: Duration,
    /// `[limits] data_deadline`.
    data: Duration,
    /// `[limits] min_data_rate`.
    rate: u64,
}

impl Deadline {
    /// A command line is awaited from `now` on.
    pub(super) fn new(now: Instant, limits: &Limits) -> Deadline {
        Deadline {
            start: now,
            content: false,
            received: 0,
            command: limits.command_deadline,
            data: limits.data_deadline,
            rate: limits.min_data_rate,
        }
    }

    /// A reply went out: a new request (a command, or content when `content`) starts `now`.
    pub(super) fn restart(&mut self, now: Instant, content: bool) {
        self.start = now;
        self.content = content;
        self.received = 0;
    }

    /// `n` octets arrived.
    pub(super) fn received(&mut self, n: usize) {
        if self.content {
            self.received = self.received.saturating_add(n as u64);
        }
    }

    /// When the request must be complete.
    pub(super) fn at(&self) -> Instant {
        if !self.content {
            return self.start + self.command;
        }
        let earned = match self.rate {
            0 => Duration::ZERO,
            rate => Duration::from_secs_f64(self.received as f64 / rate as f64),
        };
        self.start + self.data + earned.min(Duration::from_secs(86_400))
    }

    /// How long to wait for bytes at `now`: the idle timeout or what is left before the
    /// deadline, whichever is shorter; and whether the deadline is what ends the wait.
    pub(super) fn wait(&self, now: Instant, idle: Duration) -> (Duration, bool) {
        let left = self.at().saturating_duration_since(now);
        if left < idle {
            (left, true)
        } else {
            (idle, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(command: u64, data: u64, rate: u64) -> Limits {
        Limits {
            command_deadline: Duration::from_secs(command),
            data_deadline: Duration::from_secs(data),
            min_data_rate: rate,
            ..Limits::default()
        }
    }

    #[test]
    fn deadlines_table() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        /// (content, octets received, seconds since start, idle timeout) → (wait, deadline
        /// ends it).
        type Row = (bool, usize, u64, u64, (u64, bool));
        let table: &[Row] = &[
            // A command line: 10 s in all, whatever arrives.
            (false, 0, 0, 300, (10, true)),
            (false, 5000, 4, 300, (6, true)),
            (false, 0, 10, 300, (0, true)),
            (false, 0, 30, 300, (0, true)),
            // The idle timeout is shorter: it decides.
            (false, 0, 0, 3, (3, false)),
            // Content: 20 s, plus a second for each 100 octets.
            (true, 0, 0, 600, (20, true)),
            (true, 1000, 25, 600, (5, true)),
            (true, 100_000, 25, 600, (600, false)),
            (true, 100, 21, 600, (0, true)),
        ];
        for &(content, octets, since, idle, (wait, by_deadline)) in table {
            let mut d = Deadline::new(t0, &limits(10, 20, 100));
            d.restart(t0, content);
            d.received(octets);
            let got = d.wait(t0 + s(since), s(idle));
            let want_wait = if wait == 0 { Duration::ZERO } else { s(wait) };
            assert_eq!(
                got,
                (want_wait, by_deadline),
                "{content} {octets} {since} {idle}"
            );
        }
    }

    #[test]
    fn a_reply_starts_a_new_request_and_rate_zero_is_fixed() {
        let t0 = Instant::now();
        let mut d = Deadline::new(t0, &limits(10, 20, 0));
        d.received(1_000_000);
        assert_eq!(
            d.at(),
            t0 + Duration::from_secs(10),
            "octets of a command line count for nothing"
        );
        d.restart(t0 + Duration::from_secs(9), true);
        d.received(1_000_000);
        assert_eq!(d.at(), t0 + Duration::from_secs(29));
        d.restart(t0 + Duration::from_secs(40), false);
        assert_eq!(d.at(), t0 + Duration::from_secs(50));
    }
}
