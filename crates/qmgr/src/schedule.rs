//! Which message is due when: the queue manager's timetable, with the time as an argument.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use relais_spool::QueueId;

/// How long the loop sleeps when nothing is scheduled (a command wakes it sooner).
pub const IDLE_WAIT: Duration = Duration::from_secs(3600);

/// Due times (Unix seconds) of the waiting messages, and the held ones.
#[derive(Debug, Default)]
pub struct Schedule {
    /// (due time, id) of every waiting message, earliest first.
    queue: BTreeSet<(u64, QueueId)>,
    /// The due time of each scheduled message.
    due: HashMap<QueueId, u64>,
    /// Held messages: not scheduled until released.
    held: HashSet<QueueId>,
}

impl Schedule {
    /// Schedules `id` at `at` (0: at once), replacing an earlier time.
    pub fn at(&mut self, id: QueueId, at: u64) {
        if let Some(old) = self.due.insert(id, at) {
            self.queue.remove(&(old, id));
        }
        self.queue.insert((at, id));
    }

    /// Takes `id` off the timetable.
    pub fn remove(&mut self, id: QueueId) {
        if let Some(old) = self.due.remove(&id) {
            self.queue.remove(&(old, id));
        }
    }

    /// How many messages wait.
    pub fn len(&self) -> usize {
        self.due.len()
    }

    /// The oldest message waiting or held (queue ids sort by creation time).
    pub fn oldest(&self) -> Option<QueueId> {
        self.due.keys().chain(&self.held).min().copied()
    }

    /// How many messages are held.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Makes `id` due now, if it waits; with no id, every waiting message.
    pub fn flush(&mut self, id: Option<QueueId>) {
        let ids: Vec<QueueId> = match id {
            Some(id) if self.due.contains_key(&id) => vec![id],
            Some(_) => Vec::new(),
            None => self.due.keys().copied().collect(),
        };
        for id in ids {
            self.at(id, 0);
        }
    }

    /// Holds `id`: off the timetable until [`Schedule::release`].
    pub fn hold(&mut self, id: QueueId) {
        self.remove(id);
        self.held.insert(id);
    }

    /// Releases `id` and makes it due now.
    pub fn release(&mut self, id: QueueId) {
        self.held.remove(&id);
        self.at(id, 0);
    }

    /// Forgets `id` altogether (deleted).
    pub fn forget(&mut self, id: QueueId) {
        self.remove(id);
        self.held.remove(&id);
    }

    /// Takes off the timetable, earliest first, at most `max` messages due at `now`.
    pub fn take_due(&mut self, now: u64, max: usize) -> Vec<QueueId> {
        let mut ids = Vec::new();
        while ids.len() < max {
            match self.queue.first() {
                Some(&(t, id)) if t <= now => {
                    self.queue.pop_first();
                    self.due.remove(&id);
                    ids.push(id);
                }
                _ => break,
            }
        }
        ids
    }

    /// How long from `now` until the next message is due.
    pub fn wait(&self, now: u64) -> Duration {
        match self.queue.first() {
            Some(&(t, _)) => Duration::from_secs(t.saturating_sub(now)),
            None => IDLE_WAIT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A step of the table: what is done, then what `take_due(now, max)` gives.
    enum Step {
        At(u64, u64),
        Flush(Option<u64>),
        Hold(u64),
        Release(u64),
        Forget(u64),
        /// (now, max, the ids taken, the wait after)
        Take(u64, usize, &'static [u64], u64),
    }

    fn qid(n: u64) -> QueueId {
        QueueId::from_parts(1_700_000_000_000_000 + n, 1, 0)
    }

    #[test]
    fn timetable() {
        use Step::*;
        let table: &[Step] = &[
            Take(100, 10, &[], 3600),
            At(1, 150),
            At(2, 120),
            At(3, 0),
            Take(100, 10, &[3], 20),
            Take(130, 10, &[2], 20),
            // A new time replaces the old one.
            At(1, 500),
            Take(200, 10, &[], 300),
            Flush(Some(1)),
            Take(200, 10, &[1], 3600),
            // Flushing what does not wait schedules nothing.
            Flush(Some(9)),
            Take(200, 10, &[], 3600),
            At(4, 300),
            At(5, 400),
            At(6, 0),
            Take(0, 1, &[6], 300),
            Flush(None),
            Take(0, 10, &[4, 5], 3600),
            // Held messages wait until released.
            At(7, 0),
            Hold(7),
            Take(1000, 10, &[], 3600),
            Release(7),
            Take(1000, 10, &[7], 3600),
            At(8, 10),
            Forget(8),
            Take(1000, 10, &[], 3600),
        ];
        let mut s = Schedule::default();
        for (i, step) in table.iter().enumerate() {
            match step {
                At(id, t) => s.at(qid(*id), *t),
                Flush(id) => s.flush(id.map(qid)),
                Hold(id) => s.hold(qid(*id)),
                Release(id) => s.release(qid(*id)),
                Forget(id) => s.forget(qid(*id)),
                Take(now, max, want, wait) => {
                    let got = s.take_due(*now, *max);
                    let want: Vec<QueueId> = want.iter().map(|&n| qid(n)).collect();
                    assert_eq!(got, want, "step {i}");
                    assert_eq!(s.wait(*now).as_secs(), *wait, "step {i}");
                }
            }
        }
    }
}
