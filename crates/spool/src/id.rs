//! Queue ids: unique, short, time-sortable message identifiers.
//!
//! A [`QueueId`] is printed as 18 characters of Crockford base-32
//! (`0-9A-Z` without `I`, `L`, `O`, `U`), in three fixed-width fields:
//!
//! | chars | bits | meaning                                                   |
//! |-------|------|-----------------------------------------------------------|
//! | 11    | 55   | microseconds since the Unix epoch (good until year ~3100) |
//! | 5     | 25   | process id of the generating process (Linux pids < 2^22)  |
//! | 2     | 10   | per-process sequence within one microsecond               |
//!
//! Eleven time characters are needed rather than ten: ten base-32
//! characters hold 2^50 µs, about 35.7 years, which ran out in 2005.
//!
//! Because every field is fixed-width and the alphabet is in ASCII order,
//! lexicographic order of the strings equals numeric order of the packed
//! value, which is time order. Two processes on the same spool (for example
//! the server and a future `relais sendmail`) never collide because live
//! processes have distinct pids; ids made by one process never repeat
//! because the generator is a monotonic logical clock (see [`QueueId::generate`]).

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Crockford base-32 alphabet, in ASCII order so string order = value order.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Number of characters in the textual form.
pub const QUEUE_ID_LEN: usize = TIME_CHARS + PID_CHARS + SEQ_CHARS;

const TIME_CHARS: usize = 11;
const PID_CHARS: usize = 5;
const SEQ_CHARS: usize = 2;
const PID_BITS: u32 = (PID_CHARS * 5) as u32;
const SEQ_BITS: u32 = (SEQ_CHARS * 5) as u32;
const TIME_BITS: u32 = (TIME_CHARS * 5) as u32;
const SEQ_MAX: u16 = (1 << SEQ_BITS) - 1;
const PID_MASK: u32 = (1 << PID_BITS) - 1;
const TIME_MASK: u64 = (1 << TIME_BITS) - 1;
/// Total number of meaningful bits in the packed value.
const TOTAL_BITS: u32 = TIME_BITS + PID_BITS + SEQ_BITS;

/// Identifier of one spooled message, like a Postfix long queue id.
///
/// Internally the three fields are packed into one `u128`
/// (`time << 35 | pid << 10 | seq`), so the derived `Ord` is time order and
/// agrees with the lexicographic order of the [`Display`](fmt::Display) form.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueId(u128);

/// State of this process's id generator: a logical clock.
struct GenState {
    /// Microsecond timestamp of the last id handed out.
    last_us: u64,
    /// Sequence number used with `last_us`.
    seq: u16,
}

/// One generator per process, shared by every `Spool` in it, so that ids are
/// unique process-wide (the pid field alone only separates processes).
static GENERATOR: Mutex<GenState> = Mutex::new(GenState { last_us: 0, seq: 0 });

impl QueueId {
    /// Makes a new id, unique within this process and (through the pid
    /// field) among all processes alive on this host.
    ///
    /// The time field is `max(now, last)`: if the clock stands still or steps
    /// backwards the previous timestamp is reused with the next sequence
    /// number, and if the 1024 sequence numbers of one microsecond are used up
    /// the timestamp is advanced by one microsecond. Ids from one process are
    /// therefore strictly increasing.
    pub fn generate() -> QueueId {
        let now = now_micros();
        let pid = std::process::id() & PID_MASK;
        let mut state = GENERATOR
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if now > state.last_us {
            state.last_us = now;
            state.seq = 0;
        } else if state.seq < SEQ_MAX {
            state.seq += 1;
        } else {
            state.last_us += 1;
            state.seq = 0;
        }
        QueueId::from_parts(state.last_us, pid, state.seq)
    }

    /// Builds an id from its fields; bits beyond each field's width are dropped.
    pub fn from_parts(micros: u64, pid: u32, seq: u16) -> QueueId {
        let t = u128::from(micros & TIME_MASK);
        let p = u128::from(pid & PID_MASK);
        let s = u128::from(seq & SEQ_MAX);
        QueueId(t << (PID_BITS + SEQ_BITS) | p << SEQ_BITS | s)
    }

    /// Microseconds since the Unix epoch at which the id was made.
    pub fn micros(self) -> u64 {
        (self.0 >> (PID_BITS + SEQ_BITS)) as u64
    }

    /// Time at which the id was made.
    pub fn timestamp(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(self.micros())
    }

    /// Process id field (the pid of the process that made the id, modulo 2^25).
    pub fn pid(self) -> u32 {
        ((self.0 >> SEQ_BITS) as u32) & PID_MASK
    }

    /// Sequence field (distinguishes ids made in the same microsecond).
    pub fn seq(self) -> u16 {
        (self.0 as u16) & SEQ_MAX
    }

    /// The packed value, as stored in spool records.
    pub(crate) fn to_bits(self) -> u128 {
        self.0
    }

    /// Rebuilds an id from [`to_bits`](Self::to_bits); `None` if bits beyond
    /// the id's width are set (i.e. the bytes did not come from an id).
    pub(crate) fn from_bits(bits: u128) -> Option<QueueId> {
        if bits >> TOTAL_BITS == 0 {
            Some(QueueId(bits))
        } else {
            None
        }
    }

    /// Writes the textual form into a fixed buffer (no allocation).
    fn encode(self) -> [u8; QUEUE_ID_LEN] {
        let mut out = [0u8; QUEUE_ID_LEN];
        let mut v = self.0;
        for slot in out.iter_mut().rev() {
            *slot = ALPHABET[(v & 31) as usize];
            v >>= 5;
        }
        out
    }
}

/// Current time in microseconds since the Unix epoch (0 if the clock is
/// before 1970, which only a broken clock can produce).
fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let buf = self.encode();
        // The alphabet is ASCII, so this cannot fail.
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QueueId({self})")
    }
}

/// Error returned when parsing a [`QueueId`] from text fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid queue id: expected {QUEUE_ID_LEN} characters of 0-9A-Z (Crockford base-32)")]
pub struct ParseQueueIdError;

impl FromStr for QueueId {
    type Err = ParseQueueIdError;

    /// Parses the 18-character form. Lowercase is accepted; the letters
    /// Crockford leaves out (`I`, `L`, `O`, `U`) are rejected so that every
    /// accepted string is the canonical form of exactly one id.
    fn from_str(s: &str) -> Result<QueueId, ParseQueueIdError> {
        let bytes = s.as_bytes();
        if bytes.len() != QUEUE_ID_LEN {
            return Err(ParseQueueIdError);
        }
        let mut v: u128 = 0;
        for &b in bytes {
            let upper = b.to_ascii_uppercase();
            let digit = ALPHABET
                .iter()
                .position(|&a| a == upper)
                .ok_or(ParseQueueIdError)?;
            v = v << 5 | digit as u128;
        }
        QueueId::from_bits(v).ok_or(ParseQueueIdError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn display_parse_round_trip() {
        let id = QueueId::generate();
        let text = id.to_string();
        assert_eq!(text.len(), QUEUE_ID_LEN);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        );
        assert_eq!(text.parse::<QueueId>(), Ok(id));
        assert_eq!(text.to_ascii_lowercase().parse::<QueueId>(), Ok(id));
    }

    #[test]
    fn parse_rejects_bad_input() {
        assert!("".parse::<QueueId>().is_err());
        assert!("0123456789ABCDEFG".parse::<QueueId>().is_err()); // 17 chars
        assert!("0123456789ABCDEFGHJ".parse::<QueueId>().is_err()); // 19 chars
        assert!("0123456789ABCDEFGI".parse::<QueueId>().is_err()); // I not in alphabet
        assert!("0123456789ABCDEF-H".parse::<QueueId>().is_err());
        assert!("0123456789ABCDEFGH".parse::<QueueId>().is_ok());
    }

    #[test]
    fn fields_round_trip() {
        let id = QueueId::from_parts(1_700_000_000_123_456, 4_194_303, 1023);
        assert_eq!(id.micros(), 1_700_000_000_123_456);
        assert_eq!(id.pid(), 4_194_303);
        assert_eq!(id.seq(), 1023);
        assert_eq!(QueueId::from_bits(id.to_bits()), Some(id));
        assert_eq!(QueueId::from_bits(1u128 << 100), None);
    }

    #[test]
    fn string_order_equals_value_order() {
        let a = QueueId::from_parts(1_000, 7, 3);
        let b = QueueId::from_parts(1_000, 7, 4);
        let c = QueueId::from_parts(1_001, 0, 0);
        let d = QueueId::from_parts(2_000_000_000_000_000, 0, 0);
        let ids = [a, b, c, d];
        for x in ids {
            for y in ids {
                assert_eq!(x.cmp(&y), x.to_string().cmp(&y.to_string()), "{x} vs {y}");
            }
        }
    }

    #[test]
    fn timestamp_is_now() {
        let before = now_micros();
        let id = QueueId::generate();
        let after = now_micros();
        // The logical clock may run at most a little ahead of the wall
        // clock when other tests generate ids concurrently.
        assert!(id.micros() >= before, "{} < {before}", id.micros());
        assert!(
            id.micros() <= after + 1_000_000,
            "{} far after {after}",
            id.micros()
        );
        assert_eq!(id.pid(), std::process::id() & PID_MASK);
    }

    #[test]
    fn unique_across_threads_and_sorted_in_time_order() {
        const THREADS: usize = 8;
        const PER_THREAD: usize = 10_000;
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                std::thread::spawn(move || {
                    (0..PER_THREAD)
                        .map(|i| (QueueId::generate(), t, i))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all = Vec::with_capacity(THREADS * PER_THREAD);
        for h in handles {
            let ids = h.join().expect("id thread panicked");
            // Within one thread, later ids are strictly greater.
            assert!(ids.windows(2).all(|w| w[0].0 < w[1].0));
            all.extend(ids);
        }
        let unique: HashSet<QueueId> = all.iter().map(|x| x.0).collect();
        assert_eq!(unique.len(), THREADS * PER_THREAD, "duplicate ids");
        let strings: HashSet<String> = all.iter().map(|x| x.0.to_string()).collect();
        assert_eq!(strings.len(), THREADS * PER_THREAD, "duplicate id strings");

        // Sorted by id, each thread's ids appear in the order it made them
        // (sorted order = creation order), and timestamps never go down.
        all.sort_by_key(|x| x.0);
        let mut next_index = [0usize; THREADS];
        for (id, t, i) in &all {
            assert_eq!(*i, next_index[*t], "thread {t} ids out of order at {id}");
            next_index[*t] += 1;
        }
        assert!(all.windows(2).all(|w| w[0].0.micros() <= w[1].0.micros()));
    }

    #[test]
    fn later_ids_sort_after_earlier_ones() {
        let first = QueueId::generate();
        std::thread::sleep(Duration::from_millis(2));
        let second = QueueId::generate();
        assert!(second > first);
        assert!(second.to_string() > first.to_string());
        assert!(second.micros() >= first.micros() + 1_000);
    }
}
