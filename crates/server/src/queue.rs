//! The queue manager: delivers spooled messages, records per-recipient outcomes, retries with
//! backoff, bounces at expiry, and sends delivery status notifications.
//!
//! It runs on a thread of its own with a single-threaded event loop. Local copies are written
//! in batches (one flush for many files, see [`MaildirStore::commit`]); remote transactions run
//! as tasks, at most `remote_concurrency` per destination domain, and report back through a
//! channel. A message's progress is rewritten in the spool ([`Spool::update_envelope`]) after
//! each attempt, so a restart neither repeats what was delivered nor forgets retry times.
//!
//! The retry arithmetic ([`Retry`]) is pure and takes the time as an argument, so tests drive
//! the clock instead of waiting.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use relais_proto::{Recipient, ReversePath};
use relais_spool::{QueueId, Spool};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::{info, warn};

use crate::dsn::{self, RecipientReport};
use crate::envelope::{QueueState, SpooledEnvelope};
use crate::headers;
use crate::maildir::{MaildirStore, Pending};
use crate::outcome::Outcome;
use crate::policy::{Policy, Route};
use crate::remote::{self, RemoteSettings};

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
}

/// Unix seconds of a time.
fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Requests to the queue manager.
#[derive(Debug)]
pub enum Command {
    /// A message was just committed: deliver it.
    New(QueueId),
    /// Try now: one message, or every message that is not held.
    Flush(Option<QueueId>),
    /// Keep a message in the queue until released.
    Hold(QueueId, oneshot::Sender<Result<(), String>>),
    /// Release a held message (and try it now).
    Release(QueueId, oneshot::Sender<Result<(), String>>),
    /// Drop a message without delivering it or bouncing it.
    Delete(QueueId, oneshot::Sender<Result<(), String>>),
}

/// Everything the manager needs.
pub struct QueueSettings {
    /// Our host name (Received, DSN).
    pub hostname: String,
    /// Retry rules.
    pub retry: Retry,
    /// Most simultaneous transactions per destination domain.
    pub remote_concurrency: usize,
    /// Remote delivery settings.
    pub remote: RemoteSettings,
}

/// Handle to the queue manager thread.
pub struct QueueManager {
    /// Where commands go; dropped to stop the manager.
    tx: Option<mpsc::UnboundedSender<Command>>,
    /// The thread, joined on stop.
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A cheap, cloneable sender of commands (connections hold one).
#[derive(Debug, Clone)]
pub struct QueueHandle {
    /// `None` when delivery is paused.
    tx: Option<mpsc::UnboundedSender<Command>>,
}

impl QueueHandle {
    /// A handle that delivers nothing: messages stay in the spool.
    pub fn paused() -> Self {
        QueueHandle { tx: None }
    }

    /// Sends a command; false if the manager is not running.
    pub fn send(&self, cmd: Command) -> bool {
        self.tx.as_ref().is_some_and(|t| t.send(cmd).is_ok())
    }

    /// Asks for a new message to be delivered.
    pub fn push(&self, id: QueueId) {
        self.send(Command::New(id));
    }
}

impl QueueManager {
    /// Starts the manager; `recovered` are the messages found in the spool at start.
    pub fn start(
        spool: Spool,
        store: MaildirStore,
        policy: Policy,
        settings: QueueSettings,
        recovered: Vec<QueueId>,
    ) -> std::io::Result<QueueManager> {
        let (tx, rx) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("relais-queue".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!("cannot start the queue manager: {e}");
                        return;
                    }
                };
                let (results_tx, results_rx) = mpsc::unbounded_channel();
                let mut m = Manager {
                    spool,
                    store: Arc::new(store),
                    policy,
                    settings: Arc::new(settings),
                    schedule: BTreeSet::new(),
                    due: HashMap::new(),
                    flight: HashMap::new(),
                    held: HashSet::new(),
                    recovered: recovered.iter().copied().collect(),
                    results_tx,
                    domains: HashMap::new(),
                };
                for id in recovered {
                    m.schedule_at(id, 0);
                }
                rt.block_on(m.run(rx, results_rx));
            })?;
        Ok(QueueManager {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// A handle for connections and the control socket.
    pub fn handle(&self) -> QueueHandle {
        QueueHandle {
            tx: self.tx.clone(),
        }
    }

    /// Stops after the work in hand; undelivered mail stays in the spool.
    pub fn stop(mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A message being delivered.
struct Flight {
    /// Its envelope and progress.
    env: SpooledEnvelope,
    /// When it arrived.
    arrival: SystemTime,
    /// Its content as stored (for remote copies and reports).
    content: Arc<Vec<u8>>,
    /// Remote jobs not yet reported back.
    outstanding: usize,
    /// Per recipient index: the host that gave the outcome, and whether it does DSN itself.
    remote: HashMap<usize, (String, bool)>,
    /// Recipients tried in this attempt (only their outcomes are logged and reported now).
    touched: HashSet<usize>,
}

/// A remote job's report.
struct Done {
    id: QueueId,
    result: remote::JobResult,
}

/// The manager's state (owned by its thread).
struct Manager {
    spool: Spool,
    store: Arc<MaildirStore>,
    policy: Policy,
    settings: Arc<QueueSettings>,
    /// (due time in unix seconds, id) of every waiting message.
    schedule: BTreeSet<(u64, QueueId)>,
    /// The due time of each scheduled message.
    due: HashMap<QueueId, u64>,
    /// Messages with an attempt under way.
    flight: HashMap<QueueId, Flight>,
    /// Held messages (not scheduled).
    held: HashSet<QueueId>,
    /// Messages found at start: a crash may have left copies already delivered.
    recovered: HashSet<QueueId>,
    /// Where remote jobs report.
    results_tx: mpsc::UnboundedSender<Done>,
    /// Per destination domain, the limit on simultaneous transactions.
    domains: HashMap<String, Arc<Semaphore>>,
}

impl Manager {
    async fn run(
        &mut self,
        mut rx: mpsc::UnboundedReceiver<Command>,
        mut results: mpsc::UnboundedReceiver<Done>,
    ) {
        loop {
            let now = secs(SystemTime::now());
            let wait = match self.schedule.first() {
                Some(&(t, _)) if t <= now => Duration::ZERO,
                Some(&(t, _)) => Duration::from_secs(t - now),
                None => Duration::from_secs(3600),
            };
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => {
                        self.command(cmd).await;
                        // take whatever else is waiting, to batch it
                        while let Ok(cmd) = rx.try_recv() {
                            self.command(cmd).await;
                        }
                    }
                    None => break,
                },
                Some(done) = results.recv() => self.remote_done(done).await,
                _ = tokio::time::sleep(wait) => {}
            }
            self.run_due().await;
        }
        // Let transactions under way finish, so that nothing is half done.
        while !self.flight.is_empty() {
            match tokio::time::timeout(Duration::from_secs(30), results.recv()).await {
                Ok(Some(done)) => self.remote_done(done).await,
                _ => break,
            }
        }
    }

    fn schedule_at(&mut self, id: QueueId, at: u64) {
        if let Some(old) = self.due.insert(id, at) {
            self.schedule.remove(&(old, id));
        }
        self.schedule.insert((at, id));
    }

    fn unschedule(&mut self, id: QueueId) {
        if let Some(old) = self.due.remove(&id) {
            self.schedule.remove(&(old, id));
        }
    }

    async fn command(&mut self, cmd: Command) {
        match cmd {
            Command::New(id) => self.schedule_at(id, 0),
            Command::Flush(Some(id)) => {
                if self.due.contains_key(&id) {
                    self.schedule_at(id, 0);
                }
            }
            Command::Flush(None) => {
                let ids: Vec<QueueId> = self.due.keys().copied().collect();
                for id in ids {
                    self.schedule_at(id, 0);
                }
            }
            Command::Hold(id, reply) => {
                let r = self.set_held(id, true).await;
                let _ = reply.send(r);
            }
            Command::Release(id, reply) => {
                let r = self.set_held(id, false).await;
                let _ = reply.send(r);
            }
            Command::Delete(id, reply) => {
                let r = if self.flight.contains_key(&id) {
                    Err("delivery in progress; try again in a moment".to_string())
                } else {
                    self.unschedule(id);
                    self.held.remove(&id);
                    match self.spool.mark_done(id) {
                        Ok(()) => {
                            info!("{id}: removed (deleted by the administrator)");
                            Ok(())
                        }
                        Err(e) => Err(e.to_string()),
                    }
                };
                let _ = reply.send(r);
            }
        }
    }

    async fn set_held(&mut self, id: QueueId, held: bool) -> Result<(), String> {
        if self.flight.contains_key(&id) {
            return Err("delivery in progress; try again in a moment".into());
        }
        let msg = self.spool.read(id).map_err(|e| e.to_string())?;
        let mut env = SpooledEnvelope::decode(&msg.envelope).map_err(|e| e.to_string())?;
        env.state.held = held;
        self.spool
            .update_envelope(id, env.encode())
            .await
            .map_err(|e| e.to_string())?;
        if held {
            self.unschedule(id);
            self.held.insert(id);
            info!("{id}: held by the administrator");
        } else {
            self.held.remove(&id);
            self.schedule_at(id, 0);
            info!("{id}: released by the administrator");
        }
        Ok(())
    }

    /// Starts an attempt for every message that is due.
    async fn run_due(&mut self) {
        let now = secs(SystemTime::now());
        let mut ids = Vec::new();
        while let Some(&(t, id)) = self.schedule.first() {
            if t > now || ids.len() >= 512 {
                break;
            }
            self.schedule.pop_first();
            self.due.remove(&id);
            if !self.flight.contains_key(&id) {
                ids.push(id);
            }
        }
        if ids.is_empty() {
            return;
        }
        let mut local: Vec<(QueueId, usize, Pending)> = Vec::new();
        for id in ids {
            self.start_attempt(id, &mut local);
        }
        // One flush for every local copy of the batch.
        let files: Vec<Pending> = local.iter().map(|(_, _, p)| p.clone()).collect();
        let committed = self.store.commit(&files);
        if let Err(e) = &committed {
            self.store.discard(&files);
            warn!("cannot make local deliveries durable: {e}");
        }
        for (id, i, p) in local {
            let outcome = match &committed {
                Ok(()) => Outcome::Delivered(format!("delivered to maildir {}", p.new.display())),
                Err(e) => Outcome::deferred("4.3.0", format!("cannot write to the mailbox: {e}")),
            };
            if let Some(f) = self.flight.get_mut(&id) {
                f.env.state.set(i, outcome);
            }
        }
        let ready: Vec<QueueId> = self
            .flight
            .iter()
            .filter(|(_, f)| f.outstanding == 0)
            .map(|(id, _)| *id)
            .collect();
        for id in ready {
            self.finish(id).await;
        }
    }

    /// Reads a message, writes its local copies to `tmp/` and starts its remote jobs.
    fn start_attempt(&mut self, id: QueueId, local: &mut Vec<(QueueId, usize, Pending)>) {
        let msg = match self.spool.read(id) {
            Ok(m) => m,
            Err(relais_spool::SpoolError::NotFound(_)) => return,
            Err(e) => {
                warn!("{id}: cannot read from the spool: {e}; retrying later");
                self.schedule_at(id, secs(SystemTime::now()) + 60);
                return;
            }
        };
        let env = match SpooledEnvelope::decode(&msg.envelope) {
            Ok(e) => e,
            Err(e) => {
                warn!("{id}: unreadable envelope ({e}); left in the spool for inspection");
                return;
            }
        };
        if env.state.held {
            self.held.insert(id);
            return;
        }
        let mut content = Vec::with_capacity(msg.body_len() as usize);
        if let Err(e) = msg
            .body_reader()
            .and_then(|mut r| r.read_to_end(&mut content).map_err(Into::into))
        {
            warn!("{id}: cannot read the message body: {e}; retrying later");
            self.schedule_at(id, secs(SystemTime::now()) + 60);
            return;
        }
        let mut flight = Flight {
            env,
            arrival: msg.arrival,
            content: Arc::new(content),
            outstanding: 0,
            remote: HashMap::new(),
            touched: HashSet::new(),
        };
        flight.env.state.attempts += 1;
        let sender = flight.env.envelope.from.to_string();
        let recipients = flight.env.envelope.recipients.clone();
        let mut seen = HashSet::new();
        let mut groups: HashMap<String, Vec<(usize, Recipient)>> = HashMap::new();
        for (i, r) in recipients.iter().enumerate() {
            if !flight.env.state.is_pending(i) {
                continue;
            }
            flight.touched.insert(i);
            match self.policy.route(&r.to) {
                Some(Route::Local(mailbox)) => {
                    if !seen.insert(mailbox.clone()) {
                        // The same mailbox twice in one message: one copy.
                        flight.env.state.set(
                            i,
                            Outcome::Delivered(format!("duplicate of a copy to mailbox {mailbox}")),
                        );
                        continue;
                    }
                    let base = format!("{}.Q{id}R{i}", secs(msg.arrival));
                    if self.recovered.contains(&id) && self.store.already_delivered(&mailbox, &base)
                    {
                        flight.env.state.set(
                            i,
                            Outcome::Delivered(format!(
                                "already in maildir of {mailbox} (before a restart)"
                            )),
                        );
                        continue;
                    }
                    let head = headers::delivery_headers(&sender, &r.to.to_string());
                    match self
                        .store
                        .write_named(&mailbox, &base, head.as_bytes(), &flight.content)
                    {
                        Ok(p) => local.push((id, i, p)),
                        Err(e) => flight.env.state.set(
                            i,
                            Outcome::deferred(
                                "4.3.0",
                                format!("cannot write to mailbox {mailbox}: {e}"),
                            ),
                        ),
                    }
                }
                Some(Route::Relay(domain)) => {
                    groups.entry(domain).or_default().push((i, r.clone()))
                }
                None => flight.env.state.set(
                    i,
                    Outcome::failed("5.1.1", "no such local mailbox (the configuration changed)"),
                ),
            }
        }
        for (domain, rcpts) in groups {
            flight.outstanding += 1;
            let job = remote::Job {
                domain: domain.clone(),
                from: flight.env.envelope.from.clone(),
                params: flight.env.envelope.mail_params.clone(),
                recipients: rcpts,
                content: flight.content.clone(),
            };
            let limit = self
                .domains
                .entry(domain)
                .or_insert_with(|| {
                    Arc::new(Semaphore::new(self.settings.remote_concurrency.max(1)))
                })
                .clone();
            let settings = self.settings.clone();
            let tx = self.results_tx.clone();
            tokio::spawn(async move {
                let _permit = limit.acquire_owned().await;
                let result = remote::deliver(&settings.remote, &job).await;
                let _ = tx.send(Done { id, result });
            });
        }
        self.flight.insert(id, flight);
    }

    async fn remote_done(&mut self, done: Done) {
        let Some(f) = self.flight.get_mut(&done.id) else {
            return;
        };
        for (i, o) in done.result.outcomes {
            if let Some(host) = &done.result.remote {
                f.remote.insert(i, (host.clone(), done.result.remote_dsn));
            }
            f.env.state.set(i, o);
        }
        f.outstanding = f.outstanding.saturating_sub(1);
        if f.outstanding == 0 {
            self.finish(done.id).await;
        }
    }

    /// An attempt is over: log, report, then either finish the message or schedule a retry.
    async fn finish(&mut self, id: QueueId) {
        let Some(mut f) = self.flight.remove(&id) else {
            return;
        };
        self.recovered.remove(&id);
        let now = SystemTime::now();
        let delay = now
            .duration_since(f.arrival)
            .unwrap_or_default()
            .as_secs_f64();
        let expired = self.settings.retry.expired(f.arrival, now);
        let env = &f.env.envelope;
        let mut reports: Vec<RecipientReport> = Vec::new();
        for (i, r) in env.recipients.iter().enumerate() {
            if !f.touched.contains(&i) {
                continue;
            }
            let Some(o) = f.env.state.outcome(i).cloned() else {
                continue;
            };
            let relay = match f.remote.get(&i) {
                Some((h, _)) => h.clone(),
                None if matches!(self.policy.route(&r.to), Some(Route::Relay(_))) => "none".into(),
                None => "local".into(),
            };
            // Expiry turns what is still deferred into a failure.
            let o = match o {
                Outcome::Deferred { status, reason } if expired => {
                    let o = Outcome::failed(
                        "5.4.7",
                        format!("delivery time expired; last error: {status} {reason}"),
                    );
                    f.env.state.set(i, o.clone());
                    o
                }
                o => o,
            };
            let just_now = !matches!(o, Outcome::Deferred { .. });
            info!("{id}: to=<{}>, relay={relay}, delay={delay:.2}, {o}", r.to);
            let notify = r.params.notify;
            let report =
                |action: &'static str, status: String, diag: Option<String>| RecipientReport {
                    recipient: r.to.to_string(),
                    original: r.params.orcpt.clone(),
                    action,
                    status,
                    diagnostic: diag,
                    remote_mta: f.remote.get(&i).map(|(h, _)| h.clone()),
                };
            match &o {
                Outcome::Failed { status, reason }
                    if just_now && notify.is_none_or(|n| n.failure) =>
                {
                    reports.push(report("failed", status.clone(), Some(reason.clone())));
                }
                Outcome::Delivered(_) if just_now && notify.is_some_and(|n| n.success) => {
                    // A next hop that does DSN reports success itself.
                    let (remote_host, remote_dsn) = f.remote.get(&i).cloned().unwrap_or_default();
                    if !remote_dsn {
                        let action = if remote_host.is_empty() {
                            "delivered"
                        } else {
                            "relayed"
                        };
                        reports.push(report(action, "2.0.0".into(), None));
                    }
                }
                _ => {}
            }
        }
        let all_final = (0..env.recipients.len()).all(|i| !f.env.state.is_pending(i));
        // Delay warning: once, to senders who asked for it.
        if !all_final
            && !f.env.state.warned
            && let Some(after) = self.settings.retry.delay_warning
            && now.duration_since(f.arrival).unwrap_or_default() >= after
        {
            for (i, r) in env.recipients.iter().enumerate() {
                if let (true, Some(Outcome::Deferred { status, reason })) = (
                    r.params.notify.is_some_and(|n| n.delay),
                    f.env.state.outcome(i),
                ) {
                    reports.push(RecipientReport {
                        recipient: r.to.to_string(),
                        original: r.params.orcpt.clone(),
                        action: "delayed",
                        status: status.clone(),
                        diagnostic: Some(reason.clone()),
                        remote_mta: f.remote.get(&i).map(|(h, _)| h.clone()),
                    });
                }
            }
            f.env.state.warned = true;
        }
        // Reports are sent only for real senders, and never about a report (null sender).
        // Only what was decided in this attempt is reported: earlier outcomes were reported then.
        if env.from != ReversePath::Null && !reports.is_empty() {
            self.send_report(id, &f, reports, now).await;
        }
        if all_final {
            match self.spool.mark_done(id) {
                Ok(()) => info!("{id}: removed"),
                Err(e) => warn!("{id}: finished but not removed from the spool: {e}"),
            }
            return;
        }
        let next = secs(now) + self.settings.retry.backoff(f.env.state.attempts).as_secs();
        f.env.state.next_attempt = next;
        if let Err(e) = self.spool.update_envelope(id, f.env.encode()).await {
            warn!("{id}: cannot record delivery progress: {e}");
        }
        self.schedule_at(id, next);
    }

    /// Queues a delivery status notification to the sender of `id`.
    async fn send_report(
        &mut self,
        id: QueueId,
        f: &Flight,
        reports: Vec<RecipientReport>,
        now: SystemTime,
    ) {
        let ReversePath::Mailbox(sender) = &f.env.envelope.from else {
            return;
        };
        let actions: Vec<&str> = reports.iter().map(|r| r.action).collect();
        let body = dsn::build(&dsn::Report {
            hostname: &self.settings.hostname,
            queue_id: &id.to_string(),
            envelope: &f.env.envelope,
            arrival: f.arrival,
            recipients: reports,
            original: &f.content,
            now,
        });
        let report_id = self.spool.new_id();
        let envelope = relais_proto::Envelope {
            helo: self.settings.hostname.clone(),
            esmtp: true,
            from: ReversePath::Null,
            mail_params: relais_proto::MailParams {
                smtputf8: !sender.is_ascii(),
                ..Default::default()
            },
            recipients: vec![Recipient {
                to: sender.clone(),
                params: relais_proto::RcptParams {
                    notify: Some(relais_proto::Notify::NEVER),
                    orcpt: None,
                },
            }],
            size: body.len() as u64,
            chunked: false,
            bare_lf: false,
        };
        let received = headers::received(&headers::ReceivedInfo {
            envelope: &envelope,
            client_ip: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            client_name: Some("localhost"),
            hostname: &self.settings.hostname,
            id: &report_id.to_string(),
            when: now,
            tls: None,
            authenticated: false,
        });
        let mut incoming = self.spool.begin(report_id);
        let record = SpooledEnvelope {
            client: "local".into(),
            state: QueueState {
                recipients: vec![None],
                ..Default::default()
            },
            envelope,
        };
        let written = incoming
            .write(received.as_bytes())
            .and_then(|()| incoming.write(&body));
        if let Err(e) = written {
            warn!("{id}: cannot queue the delivery report: {e}");
            return;
        }
        match incoming.commit(record.encode()).await {
            Ok(rid) => {
                info!(
                    "{id}: sender delivery status notification: {rid} ({})",
                    actions.join(", ")
                );
                info!("{rid}: queued: from=<>, size={}, nrcpt=1", body.len());
                self.schedule_at(rid, 0);
            }
            Err(e) => warn!("{id}: cannot queue the delivery report: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let r = Retry {
            first: Duration::from_secs(300),
            max: Duration::from_secs(4000),
            lifetime: Duration::from_secs(5 * 86400),
            delay_warning: None,
        };
        let waits: Vec<u64> = (1..=6).map(|a| r.backoff(a).as_secs()).collect();
        assert_eq!(waits, vec![300, 600, 1200, 2400, 4000, 4000]);
        assert_eq!(r.backoff(1000).as_secs(), 4000);
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert!(!r.expired(t0, t0 + Duration::from_secs(5 * 86400 - 1)));
        assert!(r.expired(t0, t0 + Duration::from_secs(5 * 86400)));
    }
}
