//! The delivery worker: takes committed messages from the spool and delivers them locally.
//!
//! One thread, fed over a channel with queue ids. It takes everything waiting (a batch), writes
//! each recipient's copy to its Maildir's `tmp/`, makes the batch durable with one flush
//! ([`MaildirStore::commit`]), and only then marks the messages done in the spool. A crash
//! between the two delivers a message twice at worst, never loses it. A batch that cannot be
//! written (disk full, permissions) stays in the spool and is tried again later.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use relais_spool::{QueueId, Spool, StoredMessage};
use tracing::{info, warn};

use crate::envelope::SpooledEnvelope;
use crate::headers;
use crate::maildir::{MaildirStore, Pending};
use crate::policy::{Policy, Route};

/// Most messages delivered in one batch (one flush).
const MAX_BATCH: usize = 256;
/// How long a message that could not be delivered waits before the next try.
const RETRY_AFTER: Duration = Duration::from_secs(60);

/// Handle to the delivery thread.
#[derive(Debug)]
pub struct Delivery {
    /// Where new work is sent; `None` once stopped.
    tx: Option<Sender<QueueId>>,
    /// The thread, joined on stop.
    thread: Option<JoinHandle<()>>,
}

impl Delivery {
    /// Starts the worker.
    pub fn start(spool: Spool, store: MaildirStore, policy: Policy) -> std::io::Result<Delivery> {
        let (tx, rx) = mpsc::channel();
        let worker = Worker {
            spool,
            store: Arc::new(store),
            policy,
            retry: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name("relais-delivery".into())
            .spawn(move || worker.run(rx))?;
        Ok(Delivery {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// A handle that queues work without owning the thread (for connections).
    pub fn queue(&self) -> DeliveryQueue {
        DeliveryQueue {
            tx: self.tx.clone(),
        }
    }

    /// Finishes the batch in progress and stops. Mail not yet delivered stays in the spool.
    pub fn stop(mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends queue ids to the delivery worker (or nowhere, when delivery is paused).
#[derive(Debug, Clone)]
pub struct DeliveryQueue {
    /// The worker's channel; `None` when delivery is paused.
    tx: Option<Sender<QueueId>>,
}

impl DeliveryQueue {
    /// A queue that delivers nothing: messages stay in the spool.
    pub fn paused() -> Self {
        DeliveryQueue { tx: None }
    }

    /// Asks for a message to be delivered.
    pub fn push(&self, id: QueueId) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(id);
        }
    }
}

/// State of the delivery thread.
struct Worker {
    spool: Spool,
    store: Arc<MaildirStore>,
    policy: Policy,
    /// Messages to try again, and when.
    retry: Vec<(Instant, QueueId)>,
}

/// One message of a batch and the copies written for it.
struct Prepared {
    msg: StoredMessage,
    /// (recipient as given, file written to `tmp/`)
    copies: Vec<(String, Pending)>,
}

impl Worker {
    fn run(mut self, rx: Receiver<QueueId>) {
        loop {
            let wait = self
                .retry
                .iter()
                .map(|(at, _)| at.saturating_duration_since(Instant::now()))
                .min()
                .unwrap_or(Duration::from_secs(3600));
            let first = match rx.recv_timeout(wait) {
                Ok(id) => Some(id),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let mut batch: Vec<QueueId> = first.into_iter().collect();
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(id) => batch.push(id),
                    Err(_) => break,
                }
            }
            let now = Instant::now();
            let (due, later): (Vec<_>, Vec<_>) =
                self.retry.drain(..).partition(|(at, _)| *at <= now);
            self.retry = later;
            batch.extend(due.into_iter().map(|(_, id)| id));
            if !batch.is_empty() {
                self.deliver_batch(&batch);
            }
        }
    }

    fn deliver_batch(&mut self, ids: &[QueueId]) {
        let mut prepared = Vec::with_capacity(ids.len());
        for &id in ids {
            match self.prepare(id) {
                Ok(Some(p)) => prepared.push(p),
                Ok(None) => {}
                Err(reason) => {
                    warn!("{id}: status=deferred ({reason})");
                    self.retry.push((Instant::now() + RETRY_AFTER, id));
                }
            }
        }
        let files: Vec<Pending> = prepared
            .iter()
            .flat_map(|p| p.copies.iter().map(|(_, f)| f.clone()))
            .collect();
        if let Err(e) = self.store.commit(&files) {
            self.store.discard(&files);
            for p in &prepared {
                warn!(
                    "{}: status=deferred (cannot write to the mailbox: {e})",
                    p.msg.id
                );
                self.retry.push((Instant::now() + RETRY_AFTER, p.msg.id));
            }
            return;
        }
        for p in prepared {
            let delay = SystemTime::now()
                .duration_since(p.msg.arrival)
                .unwrap_or_default()
                .as_secs_f64();
            for (rcpt, file) in &p.copies {
                info!(
                    "{}: to=<{rcpt}>, relay=local, delay={delay:.2}, status=sent (delivered to maildir {})",
                    p.msg.id,
                    file.new.display()
                );
            }
            match self.spool.mark_done(p.msg.id) {
                Ok(()) => info!("{}: removed", p.msg.id),
                Err(e) => warn!(
                    "{}: delivered but not removed from the spool: {e}",
                    p.msg.id
                ),
            }
        }
    }

    /// Reads a message and writes its copies to `tmp/`. `Ok(None)`: nothing left to deliver.
    fn prepare(&self, id: QueueId) -> Result<Option<Prepared>, String> {
        let msg = match self.spool.read(id) {
            Ok(m) => m,
            Err(relais_spool::SpoolError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let env = SpooledEnvelope::decode(&msg.envelope).map_err(|e| e.to_string())?;
        let sender = env.envelope.from.to_string();
        let mut copies: Vec<(String, Pending)> = Vec::new();
        let mut seen = HashSet::new();
        let give_up = |copies: &[(String, Pending)], reason: String| {
            let files: Vec<Pending> = copies.iter().map(|(_, f)| f.clone()).collect();
            self.store.discard(&files);
            Err(reason)
        };
        for r in &env.envelope.recipients {
            let rcpt = r.to.to_string();
            let mailbox = match self.policy.route(&r.to) {
                Some(Route::Local(mailbox)) => mailbox,
                Some(Route::Relay(domain)) => {
                    // Remote delivery (MX lookup, SMTP client, per-recipient outcomes) is the
                    // queue manager's job (issue 4); until it lands, relayed mail waits in the
                    // spool, whole, so that no local copy is delivered twice.
                    return give_up(
                        &copies,
                        format!("to=<{rcpt}>: remote delivery to {domain} is not available yet"),
                    );
                }
                None => {
                    // The configuration changed since the message was accepted. Bounces come
                    // with the queue manager; until then the refusal is logged.
                    warn!("{id}: to=<{rcpt}>, relay=none, status=bounced (no such local mailbox any more)");
                    continue;
                }
            };
            if !seen.insert(mailbox.clone()) {
                continue;
            }
            let head = headers::delivery_headers(&sender, &rcpt);
            let mut body = match msg.body_reader() {
                Ok(b) => b,
                Err(e) => return give_up(&copies, e.to_string()),
            };
            match self.store.write_tmp(&mailbox, head.as_bytes(), &mut body) {
                Ok(p) => copies.push((rcpt, p)),
                Err(e) => {
                    return give_up(&copies, format!("cannot write to mailbox {mailbox}: {e}"));
                }
            }
        }
        Ok(Some(Prepared { msg, copies }))
    }
}
