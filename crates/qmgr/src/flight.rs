//! A message with an attempt under way: what it is, and what the attempt has found so far.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use relais_queue::{Content, Outcome, SpooledEnvelope};
use relais_spool::QueueId;

/// What an outcome is about: a recipient of the envelope, or a target of an expanded alias
/// (an index into [`QueueState::expansions`](relais_queue::QueueState::expansions)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Slot {
    /// Recipient `i` of the envelope.
    Rcpt(usize),
    /// Target `n` of the expansions.
    Exp(usize),
}

/// A message being delivered.
pub struct Flight {
    /// Its envelope and progress.
    pub env: SpooledEnvelope,
    /// When it arrived.
    pub arrival: SystemTime,
    /// Its content as it goes out, read from the spool by each agent (its header section in
    /// memory, for loop checks and reports).
    pub content: Content,
    /// Jobs (remote, LMTP, commands, files) not yet reported back.
    pub outstanding: usize,
    /// Per slot: the host that gave the outcome, and whether it does DSN itself.
    pub remote: HashMap<Slot, (String, bool)>,
    /// Slots tried in this attempt (only their outcomes are logged and reported now).
    pub touched: HashSet<Slot>,
    /// Per slot, how it was delivered, for the log (`local`, `lmtp[…]`, `none`).
    pub via: HashMap<Slot, String>,
    /// Copies not made because the same mailbox had one in this attempt: (slot, the slot
    /// whose copy it shares, the mailbox). They take that slot's outcome.
    pub dups: Vec<(Slot, Slot, String)>,
}

impl Flight {
    /// A message read from the spool, before its attempt is planned.
    pub fn new(env: SpooledEnvelope, arrival: SystemTime, content: Content) -> Flight {
        Flight {
            env,
            arrival,
            content,
            outstanding: 0,
            remote: HashMap::new(),
            touched: HashSet::new(),
            via: HashMap::new(),
            dups: Vec::new(),
        }
    }

    /// The outcome so far of a slot.
    pub fn outcome(&self, slot: Slot) -> Option<&Outcome> {
        match slot {
            Slot::Rcpt(i) => self.env.state.outcome(i),
            Slot::Exp(n) => self
                .env
                .state
                .expansions
                .get(n)
                .and_then(|x| x.outcome.as_ref()),
        }
    }

    /// Records the outcome of a slot.
    pub fn set(&mut self, slot: Slot, outcome: Outcome) {
        match slot {
            Slot::Rcpt(i) => self.env.state.set(i, outcome),
            Slot::Exp(n) => self.env.state.set_expansion(n, outcome),
        }
    }

    /// The relay a slot's outcome came from, for the log: the remote host, else how it was
    /// delivered.
    pub fn relay_of(&self, slot: Slot) -> String {
        match self.remote.get(&slot) {
            Some((h, _)) => h.clone(),
            None => self
                .via
                .get(&slot)
                .cloned()
                .unwrap_or_else(|| "local".into()),
        }
    }
}

/// A job's report: outcomes per slot, and the host that gave them (remote jobs).
pub struct Done {
    /// The message.
    pub id: QueueId,
    /// What happened to each slot.
    pub outcomes: Vec<(Slot, Outcome)>,
    /// The remote host that answered (`name[ip]:port`), for remote jobs.
    pub remote: Option<String>,
    /// True if that host offered DSN (it reports success itself).
    pub remote_dsn: bool,
}

impl Done {
    /// The report of a local job.
    pub fn local(id: QueueId, outcomes: Vec<(Slot, Outcome)>) -> Done {
        Done {
            id,
            outcomes,
            remote: None,
            remote_dsn: false,
        }
    }
}
