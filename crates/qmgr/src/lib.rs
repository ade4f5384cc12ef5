//! The queue manager: delivers spooled messages, records per-recipient outcomes, retries with
//! backoff, bounces at expiry, and sends delivery status notifications.
//!
//! It runs on a thread of its own with a single-threaded event loop. Local copies are written
//! in batches (one flush for many files, see [`MaildirStore::commit`]); remote transactions run
//! as tasks, at most `remote_concurrency` per destination domain, and report back through a
//! channel, as do LMTP transactions, alias commands and file appends. A message's progress is
//! rewritten in the spool ([`Spool::update_envelope`]) after each attempt, so a restart neither
//! repeats what was delivered nor forgets retry times.
//!
//! A recipient that is an alias is expanded at its first attempt ([`Policy::destination`]) and
//! its targets are recorded in the message's state ([`QueueState::expansions`]), each with its
//! own outcome: a retry delivers to the targets still pending and to no other. The alias itself
//! becomes final once all its targets are; a target that fails is reported to the sender on
//! its own (Final-Recipient the target, Original-Recipient the alias), and a sender who asked
//! for success reports gets `Action: expanded` for the alias (RFC 3461 §6.2.7.4).
//!
//! The retry arithmetic ([`Retry`]) is pure and takes the time as an argument, so tests drive
//! the clock instead of waiting.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use relais_proto::params::xtext_encode;
use relais_proto::{Mailbox, Notify, RcptParams, Recipient, ReversePath};
use relais_spool::{QueueId, Spool};
use tokio::sync::{Semaphore, mpsc};
use tracing::{info, warn};

use relais_config::Config;
use relais_local::maildir::{MaildirStore, Pending};
use relais_local::rules::{self as local, LocalSettings, LoopCheck};
use relais_local::{lmtp, pipe};
use relais_queue::{
    Command, Enqueue, Outcome, QueueHandle, QueueState, SpooledEnvelope, Target, admin, headers,
};
use relais_remote::{self as remote, RemoteSettings};
use relais_route::{Destination, Policy};

use crate::dsn::RecipientReport;

mod dsn;

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

/// `Return-Path` and `Delivered-To`, then the message: what a command or a file receives.
fn with_delivery_headers(sender: &str, recipient: &str, content: &[u8]) -> Vec<u8> {
    let head = headers::delivery_headers(sender, recipient);
    let mut m = Vec::with_capacity(head.len() + content.len());
    m.extend_from_slice(head.as_bytes());
    m.extend_from_slice(content);
    m
}

/// Unix seconds of a time.
fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// How long new messages are gathered before a delivery batch starts.
const COALESCE: Duration = Duration::from_millis(10);
/// Most messages started in one batch.
const MAX_BATCH: usize = 512;

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
    /// Local delivery settings (LMTP, alias commands and files).
    pub local: LocalSettings,
}

impl QueueSettings {
    /// The settings of `[delivery]` and `[local]`; an error names what cannot work.
    pub fn from_config(config: &Config) -> Result<QueueSettings, String> {
        let d = &config.delivery;
        let nameserver = d.resolver.unwrap_or_default();
        let resolver = relais_dns::Resolver::new(&relais_dns::ResolverOptions {
            nameserver,
            ..Default::default()
        })
        .map_err(|e| format!("DNS resolver: {e}"))?;
        let client = relais_client::ClientConfig {
            connect_timeout: d.connect_timeout,
            // Delivery keeps no transcript of message content (the client records dialogue lines
            // for the diagnostics; here they would only cost time).
            transcript_data_lines: 0,
            ..Default::default()
        };
        let routes = d
            .routes
            .iter()
            .map(|(dom, hop)| (dom.to_ascii_lowercase(), hop.clone()))
            .collect();
        Ok(QueueSettings {
            hostname: config.hostname.clone(),
            retry: Retry {
                first: d.first_retry,
                max: d.max_retry,
                lifetime: d.lifetime,
                delay_warning: (!d.delay_warning.is_zero()).then_some(d.delay_warning),
            },
            remote_concurrency: d.remote_concurrency,
            remote: remote::RemoteSettings {
                hostname: config.hostname.clone(),
                routes,
                relayhost: d.relayhost.clone(),
                resolver,
                client,
                cache: remote::ConnectionCache::default(),
            },
            local: LocalSettings::from_config(&config.local)?,
        })
    }
}

/// Handle to the queue manager thread.
pub struct QueueManager {
    /// Where commands go; dropped to stop the manager.
    handle: Option<QueueHandle>,
    /// The thread, joined on stop.
    thread: Option<std::thread::JoinHandle<()>>,
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
        let (handle, rx) = QueueHandle::channel();
        let thread = std::thread::Builder::new()
            .name("relais-queue".into())
            .spawn(move || {
                let rt = match relais_client::current_thread_runtime() {
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
            handle: Some(handle),
            thread: Some(thread),
        })
    }

    /// A handle for connections and the control socket.
    pub fn handle(&self) -> QueueHandle {
        self.handle.clone().unwrap_or_else(QueueHandle::paused)
    }

    /// Stops after the work in hand; undelivered mail stays in the spool.
    pub fn stop(mut self) {
        self.handle = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What an outcome is about: a recipient of the envelope, or a target of an expanded alias
/// (an index into [`QueueState::expansions`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Slot {
    Rcpt(usize),
    Exp(usize),
}

/// A message being delivered.
struct Flight {
    /// Its envelope and progress.
    env: SpooledEnvelope,
    /// When it arrived.
    arrival: SystemTime,
    /// Its content as stored (for remote copies and reports).
    content: Arc<Vec<u8>>,
    /// Jobs (remote, LMTP, commands, files) not yet reported back.
    outstanding: usize,
    /// Per slot: the host that gave the outcome, and whether it does DSN itself.
    remote: HashMap<Slot, (String, bool)>,
    /// Slots tried in this attempt (only their outcomes are logged and reported now).
    touched: HashSet<Slot>,
    /// Per slot, how it was delivered, for the log (`local`, `lmtp[…]`, `none`).
    via: HashMap<Slot, String>,
    /// Copies not made because the same mailbox had one in this attempt: (slot, the slot
    /// whose copy it shares, the mailbox). They take that slot's outcome.
    dups: Vec<(Slot, Slot, String)>,
}

impl Flight {
    fn outcome(&self, slot: Slot) -> Option<&Outcome> {
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

    fn set(&mut self, slot: Slot, outcome: Outcome) {
        match slot {
            Slot::Rcpt(i) => self.env.state.set(i, outcome),
            Slot::Exp(n) => self.env.state.set_expansion(n, outcome),
        }
    }
}

/// A job's report: outcomes per slot, and the host that gave them (remote jobs).
struct Done {
    id: QueueId,
    outcomes: Vec<(Slot, Outcome)>,
    remote: Option<String>,
    remote_dsn: bool,
}

impl Done {
    fn local(id: QueueId, outcomes: Vec<(Slot, Outcome)>) -> Done {
        Done {
            id,
            outcomes,
            remote: None,
            remote_dsn: false,
        }
    }
}

/// One remote transaction per destination domain, and per alias for forwarded copies (which
/// carry a `Delivered-To` header of their own): (domain, the alias's recipient index).
type RemoteKey = (String, Option<usize>);

/// What one attempt at one message has to do besides Maildir copies (written at once).
#[derive(Default)]
struct Plan {
    /// Mailboxes given a copy in this attempt, with the slot that has it.
    seen: HashMap<String, Slot>,
    /// LMTP recipients: (slot, address).
    lmtp: Vec<(Slot, String)>,
    /// Remote recipients by (domain, the alias a forward comes from).
    remote: HashMap<RemoteKey, Vec<(Slot, Recipient)>>,
    /// Alias commands: (slot, command, the alias's address, its original address).
    pipes: Vec<(Slot, String, String, String)>,
    /// Alias files: (slot, path, the alias's address).
    files: Vec<(Slot, PathBuf, String)>,
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
        // Idle remote connections are closed once they are too old to reuse.
        let settings = self.settings.clone();
        let reaper = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                settings.remote.cache.reap().await;
            }
        });
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
                        // Gather what arrives in the next few milliseconds too: one batch (one
                        // flush of the Maildirs) for many messages instead of one each.
                        let until = tokio::time::Instant::now() + COALESCE;
                        let mut closed = false;
                        while self.due.len() < MAX_BATCH {
                            match tokio::time::timeout_at(until, rx.recv()).await {
                                Ok(Some(cmd)) => self.command(cmd).await,
                                Ok(None) => {
                                    closed = true;
                                    break;
                                }
                                Err(_) => break,
                            }
                        }
                        if closed {
                            self.run_due().await;
                            break;
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
        reaper.abort();
        // Close the idle connections politely.
        self.settings.remote.cache.close_all().await;
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
                    admin::delete(&self.spool, id)
                        .inspect(|()| info!("{id}: removed (deleted by the administrator)"))
                };
                let _ = reply.send(r);
            }
        }
    }

    async fn set_held(&mut self, id: QueueId, held: bool) -> Result<(), String> {
        if self.flight.contains_key(&id) {
            return Err("delivery in progress; try again in a moment".into());
        }
        admin::set_held(&self.spool, id, held).await?;
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
            if t > now || ids.len() >= MAX_BATCH {
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
        let mut local: Vec<(QueueId, Slot, Pending)> = Vec::new();
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
        for (id, slot, p) in local {
            let outcome = match &committed {
                Ok(()) => Outcome::Delivered(format!("delivered to maildir {}", p.new.display())),
                Err(e) => Outcome::deferred("4.3.0", format!("cannot write to the mailbox: {e}")),
            };
            if let Some(f) = self.flight.get_mut(&id) {
                f.set(slot, outcome);
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

    /// Reads a message, writes its local copies to `tmp/` and starts its other jobs (remote,
    /// LMTP, alias commands and files).
    fn start_attempt(&mut self, id: QueueId, local: &mut Vec<(QueueId, Slot, Pending)>) {
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
            via: HashMap::new(),
            dups: Vec::new(),
        };
        flight.env.state.attempts += 1;
        let loops = LoopCheck::of(&flight.content);
        let recipients = flight.env.envelope.recipients.clone();
        let mut plan = Plan::default();
        for (i, r) in recipients.iter().enumerate() {
            if !flight.env.state.is_pending(i) {
                continue;
            }
            flight.touched.insert(Slot::Rcpt(i));
            if flight.env.state.is_expanded(i) {
                // Expanded at an earlier attempt: the same targets, those still pending.
                let pending: Vec<usize> = flight
                    .env
                    .state
                    .expansions_of(i)
                    .filter(|(_, x)| x.is_pending())
                    .map(|(n, _)| n)
                    .collect();
                for n in pending {
                    self.target(id, &mut flight, &mut plan, local, n, &loops);
                }
                continue;
            }
            let dest = self.policy.destination(&r.to);
            if matches!(dest, Destination::Mailbox(_) | Destination::Alias(_))
                && let Some(o) = loops.check(&r.to.to_string())
            {
                flight.env.state.set(i, o);
                continue;
            }
            match dest {
                Destination::Mailbox(mailbox) => {
                    let base = format!("{}.Q{id}R{i}", secs(flight.arrival));
                    // As the client wrote it; the bare `postmaster` gets our host name.
                    let address = if r.to.domain.is_empty() {
                        self.mailbox_address(&mailbox, &r.to)
                    } else {
                        r.to.to_string()
                    };
                    self.mailbox(
                        id,
                        &mut flight,
                        &mut plan,
                        local,
                        Slot::Rcpt(i),
                        mailbox,
                        address,
                        base,
                    );
                }
                Destination::Alias(targets) => {
                    for n in flight.env.state.expand(i, targets) {
                        self.target(id, &mut flight, &mut plan, local, n, &loops);
                    }
                }
                Destination::Relay(domain) => {
                    flight.via.insert(Slot::Rcpt(i), "none".into());
                    plan.remote
                        .entry((domain, None))
                        .or_default()
                        .push((Slot::Rcpt(i), r.clone()));
                }
                Destination::Nowhere(o) => flight.env.state.set(i, o),
            }
        }
        self.spawn_jobs(id, &mut flight, plan);
        self.flight.insert(id, flight);
    }

    /// The address of a local mailbox reached through `to` (its domain, or our host name for
    /// the bare `postmaster`).
    fn mailbox_address(&self, mailbox: &str, to: &Mailbox) -> String {
        let domain = if to.domain.is_empty() {
            &self.settings.hostname
        } else {
            &to.domain
        };
        format!("{mailbox}@{domain}")
    }

    /// Starts the delivery of target `n` of an expanded alias.
    fn target(
        &self,
        id: QueueId,
        f: &mut Flight,
        plan: &mut Plan,
        local: &mut Vec<(QueueId, Slot, Pending)>,
        n: usize,
        loops: &LoopCheck,
    ) {
        let slot = Slot::Exp(n);
        f.touched.insert(slot);
        let x = f.env.state.expansions[n].clone();
        let parent = f.env.envelope.recipients[x.parent].clone();
        let parent_address = parent.to.to_string();
        match x.target {
            Target::Mailbox(mailbox) => {
                let address = self.mailbox_address(&mailbox, &parent.to);
                if let Some(o) = loops.check(&address) {
                    return f.set(slot, o);
                }
                let base = format!("{}.Q{id}X{n}", secs(f.arrival));
                self.mailbox(id, f, plan, local, slot, mailbox, address, base);
            }
            Target::Forward(address) => {
                let to = match Mailbox::parse(&address) {
                    Ok(m) => m,
                    Err(e) => {
                        return f.set(
                            slot,
                            Outcome::failed(
                                "5.1.3",
                                format!("bad forward address {address:?}: {e:?}"),
                            ),
                        );
                    }
                };
                // The alias reports success itself (`expanded`); failures still go to the
                // sender. ORCPT names the alias.
                let params =
                    RcptParams {
                        notify: parent.params.notify.map(|n| Notify {
                            success: false,
                            ..n
                        }),
                        orcpt: Some(
                            parent.params.orcpt.clone().unwrap_or_else(|| {
                                ("rfc822".into(), xtext_encode(&parent_address))
                            }),
                        ),
                    };
                f.via.insert(slot, "none".into());
                plan.remote
                    .entry((to.domain_lower(), Some(x.parent)))
                    .or_default()
                    .push((slot, Recipient { to, params }));
            }
            Target::Pipe(command) => {
                let original = parent
                    .params
                    .orcpt
                    .as_ref()
                    .map(|(_, v)| relais_proto::params::xtext_decode(v))
                    .unwrap_or_else(|| parent_address.clone());
                f.via.insert(slot, "local".into());
                plan.pipes.push((slot, command, parent_address, original));
            }
            Target::File(path) => {
                f.via.insert(slot, "local".into());
                plan.files.push((slot, path, parent_address));
            }
            Target::Fail(text) => f.set(slot, Outcome::failed("5.1.1", text)),
        }
    }

    /// Gives `mailbox` its copy for `slot`: to `tmp/` of its Maildir now (made durable with
    /// the batch), or into the message's LMTP transaction.
    #[allow(clippy::too_many_arguments)]
    fn mailbox(
        &self,
        id: QueueId,
        f: &mut Flight,
        plan: &mut Plan,
        local: &mut Vec<(QueueId, Slot, Pending)>,
        slot: Slot,
        mailbox: String,
        address: String,
        base: String,
    ) {
        if let Some(&first) = plan.seen.get(&mailbox) {
            // The same mailbox twice in one message: one copy.
            f.dups.push((slot, first, mailbox));
            return;
        }
        plan.seen.insert(mailbox.clone(), slot);
        if let Some(target) = &self.settings.local.lmtp {
            f.via.insert(slot, format!("lmtp[{target}]"));
            plan.lmtp.push((slot, address));
            return;
        }
        f.via.insert(slot, "local".into());
        if self.recovered.contains(&id) && self.store.already_delivered(&mailbox, &base) {
            return f.set(
                slot,
                Outcome::Delivered(format!(
                    "already in maildir of {mailbox} (before a restart)"
                )),
            );
        }
        let sender = f.env.envelope.from.to_string();
        let head = headers::delivery_headers(&sender, &address);
        match self
            .store
            .write_named(&mailbox, &base, head.as_bytes(), &f.content)
        {
            Ok(p) => local.push((id, slot, p)),
            Err(e) => f.set(
                slot,
                Outcome::deferred("4.3.0", format!("cannot write to mailbox {mailbox}: {e}")),
            ),
        }
    }

    /// Starts the tasks of an attempt; each reports back through the results channel.
    fn spawn_jobs(&mut self, id: QueueId, f: &mut Flight, plan: Plan) {
        let sender = f.env.envelope.from.to_string();
        for ((domain, alias), rcpts) in plan.remote {
            f.outstanding += 1;
            let content = match alias {
                // A forwarded copy says which alias it went through: if it ever comes back to
                // that alias, it is a loop (see `LoopCheck`).
                Some(i) => {
                    let alias = f.env.envelope.recipients[i].to.to_string();
                    let mut c = headers::delivered_to(&alias).into_bytes();
                    c.extend_from_slice(&f.content);
                    Arc::new(c)
                }
                None => f.content.clone(),
            };
            let slots: Vec<Slot> = rcpts.iter().map(|(s, _)| *s).collect();
            let job = remote::Job {
                domain: domain.clone(),
                from: f.env.envelope.from.clone(),
                params: f.env.envelope.mail_params.clone(),
                recipients: rcpts
                    .into_iter()
                    .enumerate()
                    .map(|(k, (_, r))| (k, r))
                    .collect(),
                content,
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
                let _ = tx.send(Done {
                    id,
                    outcomes: result
                        .outcomes
                        .into_iter()
                        .filter_map(|(k, o)| Some((*slots.get(k)?, o)))
                        .collect(),
                    remote: result.remote,
                    remote_dsn: result.remote_dsn,
                });
            });
        }
        if let (false, Some(target)) = (plan.lmtp.is_empty(), &self.settings.local.lmtp) {
            f.outstanding += 1;
            let target = target.clone();
            let (slots, addresses): (Vec<Slot>, Vec<String>) = plan.lmtp.into_iter().unzip();
            let (settings, tx, content, sender) = (
                self.settings.clone(),
                self.results_tx.clone(),
                f.content.clone(),
                sender.clone(),
            );
            tokio::spawn(async move {
                let outcomes = lmtp::deliver(
                    &target,
                    &settings.hostname,
                    &sender,
                    &addresses,
                    &content,
                    local::LMTP_TIMEOUT,
                )
                .await;
                let _ = tx.send(Done::local(id, slots.into_iter().zip(outcomes).collect()));
            });
        }
        for (slot, command, recipient, original) in plan.pipes {
            f.outstanding += 1;
            let message = with_delivery_headers(&sender, &recipient, &f.content);
            let (settings, tx, sender) = (
                self.settings.clone(),
                self.results_tx.clone(),
                sender.clone(),
            );
            tokio::spawn(async move {
                let outcome = pipe::run(
                    &pipe::Invocation {
                        command: &command,
                        sender: &sender,
                        recipient: &recipient,
                        original_recipient: &original,
                        user: settings.local.run_as,
                        timeout: settings.local.command_timeout,
                    },
                    &message,
                )
                .await;
                let _ = tx.send(Done::local(id, vec![(slot, outcome)]));
            });
        }
        for (slot, path, recipient) in plan.files {
            f.outstanding += 1;
            let message = with_delivery_headers(&sender, &recipient, &f.content);
            let (user, tx, sender, arrival) = (
                self.settings.local.run_as,
                self.results_tx.clone(),
                sender.clone(),
                f.arrival,
            );
            tokio::spawn(async move {
                let outcome = tokio::task::spawn_blocking(move || {
                    local::append_file(user, &path, &sender, &message, arrival)
                })
                .await
                .unwrap_or_else(|e| Outcome::deferred("4.3.0", format!("file delivery: {e}")));
                let _ = tx.send(Done::local(id, vec![(slot, outcome)]));
            });
        }
    }

    async fn remote_done(&mut self, done: Done) {
        let Some(f) = self.flight.get_mut(&done.id) else {
            return;
        };
        for (slot, o) in done.outcomes {
            if let Some(host) = &done.remote {
                f.remote.insert(slot, (host.clone(), done.remote_dsn));
            }
            f.set(slot, o);
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
        // A copy shared with another recipient or target has its outcome.
        for (dup, first, mailbox) in std::mem::take(&mut f.dups) {
            let o = match f.outcome(first).cloned() {
                Some(Outcome::Delivered(_)) => {
                    Outcome::Delivered(format!("duplicate of a copy to mailbox {mailbox}"))
                }
                Some(o) => o,
                None => continue,
            };
            f.set(dup, o);
        }
        let relay_of = |f: &Flight, slot: Slot| match f.remote.get(&slot) {
            Some((h, _)) => h.clone(),
            None => f.via.get(&slot).cloned().unwrap_or_else(|| "local".into()),
        };
        let env = &f.env.envelope;
        let mut reports: Vec<RecipientReport> = Vec::new();
        // Targets of aliases: logged one by one; a failure is reported on its own.
        for n in 0..f.env.state.expansions.len() {
            let slot = Slot::Exp(n);
            if !f.touched.contains(&slot) {
                continue;
            }
            let x = &f.env.state.expansions[n];
            let Some(o) = x.outcome.clone() else {
                continue;
            };
            let o = expire(o, expired);
            let parent = &env.recipients[x.parent];
            let (shown, final_recipient) =
                target_addresses(&x.target, &parent.to, &self.settings.hostname);
            let relay = relay_of(&f, slot);
            info!(
                "{id}: to=<{shown}>, orig_to=<{}>, relay={relay}, delay={delay:.2}, {o}",
                parent.to
            );
            if let Outcome::Failed { status, reason } = &o
                && parent.params.notify.is_none_or(|n| n.failure)
            {
                reports.push(RecipientReport {
                    recipient: final_recipient,
                    original: Some(parent.params.orcpt.clone().unwrap_or_else(|| {
                        ("rfc822".into(), xtext_encode(&parent.to.to_string()))
                    })),
                    action: "failed",
                    status: status.clone(),
                    diagnostic: Some(reason.clone()),
                    remote_mta: f.remote.get(&slot).map(|(h, _)| h.clone()),
                });
            }
            f.env.state.expansions[n].outcome = Some(o);
        }
        // An alias is final once all its targets are.
        for i in 0..env.recipients.len() {
            if f.touched.contains(&Slot::Rcpt(i)) && f.env.state.is_expanded(i) {
                let o = alias_outcome(&f.env.state, i);
                f.env.state.set(i, o);
            }
        }
        for (i, r) in env.recipients.iter().enumerate() {
            let slot = Slot::Rcpt(i);
            if !f.touched.contains(&slot) {
                continue;
            }
            let Some(o) = f.env.state.outcome(i).cloned() else {
                continue;
            };
            let notify = r.params.notify;
            if f.env.state.is_expanded(i) {
                // Its targets were logged and reported; the alias is told of once final.
                if matches!(o, Outcome::Deferred { .. }) {
                    continue;
                }
                info!("{id}: to=<{}>, relay=local, delay={delay:.2}, {o}", r.to);
                if matches!(o, Outcome::Delivered(_)) && notify.is_some_and(|n| n.success) {
                    reports.push(RecipientReport {
                        recipient: r.to.to_string(),
                        original: r.params.orcpt.clone(),
                        action: "expanded",
                        status: "2.0.0".into(),
                        diagnostic: None,
                        remote_mta: None,
                    });
                }
                continue;
            }
            let relay = relay_of(&f, slot);
            // Expiry turns what is still deferred into a failure.
            let o = expire(o, expired);
            f.env.state.set(i, o.clone());
            let just_now = !matches!(o, Outcome::Deferred { .. });
            info!("{id}: to=<{}>, relay={relay}, delay={delay:.2}, {o}", r.to);
            let report =
                |action: &'static str, status: String, diag: Option<String>| RecipientReport {
                    recipient: r.to.to_string(),
                    original: r.params.orcpt.clone(),
                    action,
                    status,
                    diagnostic: diag,
                    remote_mta: f.remote.get(&slot).map(|(h, _)| h.clone()),
                };
            match &o {
                Outcome::Failed { status, reason }
                    if just_now && notify.is_none_or(|n| n.failure) =>
                {
                    reports.push(report("failed", status.clone(), Some(reason.clone())));
                }
                Outcome::Delivered(_) if just_now && notify.is_some_and(|n| n.success) => {
                    // A next hop that does DSN reports success itself.
                    let (remote_host, remote_dsn) =
                        f.remote.get(&slot).cloned().unwrap_or_default();
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
                        remote_mta: f.remote.get(&Slot::Rcpt(i)).map(|(h, _)| h.clone()),
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
        let mut report = Enqueue::begin(&self.spool, report_id);
        report.write(received.as_bytes());
        report.write(&body);
        if let Ok(rid) = report.commit("local", envelope, "").await {
            info!(
                "{id}: sender delivery status notification: {rid} ({})",
                actions.join(", ")
            );
            self.schedule_at(rid, 0);
        } else {
            warn!("{id}: cannot queue the delivery report");
        }
    }
}

/// Expiry turns what is still deferred into a failure.
fn expire(o: Outcome, expired: bool) -> Outcome {
    match o {
        Outcome::Deferred { status, reason } if expired => Outcome::failed(
            "5.4.7",
            format!("delivery time expired; last error: {status} {reason}"),
        ),
        o => o,
    }
}

/// The outcome of an expanded alias from those of its targets: deferred while one is
/// pending, then delivered if any was, else failed.
fn alias_outcome(state: &QueueState, i: usize) -> Outcome {
    let (mut total, mut delivered, mut failed) = (0, 0, 0);
    let mut pending: Option<(String, String)> = None;
    let mut failure: Option<String> = None;
    for (_, x) in state.expansions_of(i) {
        total += 1;
        match &x.outcome {
            Some(Outcome::Delivered(_)) => delivered += 1,
            Some(Outcome::Failed { status, .. }) => {
                failed += 1;
                failure.get_or_insert_with(|| status.clone());
            }
            Some(Outcome::Deferred { status, reason }) => {
                pending.get_or_insert_with(|| (status.clone(), reason.clone()));
            }
            None => {
                pending.get_or_insert_with(|| ("4.0.0".into(), "not tried yet".into()));
            }
        }
    }
    if let Some((status, reason)) = pending {
        let waiting = total - delivered - failed;
        return Outcome::deferred(
            &status,
            format!("{waiting} of {total} alias targets pending; {reason}"),
        );
    }
    if delivered > 0 {
        let failed = if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        };
        Outcome::Delivered(format!(
            "expanded to {total} alias targets: {delivered} delivered{failed}"
        ))
    } else {
        Outcome::failed(
            failure.as_deref().unwrap_or("5.0.0"),
            format!("expanded to {total} alias targets, all failed"),
        )
    }
}

/// How a target is shown in the log, and its Final-Recipient in a report (an address: the
/// alias itself for a command, a file or a failure).
fn target_addresses(t: &Target, alias: &Mailbox, hostname: &str) -> (String, String) {
    let alias_address = alias.to_string();
    match t {
        Target::Mailbox(m) => {
            let domain = if alias.domain.is_empty() {
                hostname
            } else {
                &alias.domain
            };
            let a = format!("{m}@{domain}");
            (a.clone(), a)
        }
        Target::Forward(a) => (a.clone(), a.clone()),
        Target::Pipe(c) => (format!("|{c}"), alias_address),
        Target::File(p) => (p.display().to_string(), alias_address),
        Target::Fail(_) => (alias_address.clone(), alias_address),
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

    #[test]
    fn an_alias_is_final_when_its_targets_are() {
        let mut st = QueueState {
            recipients: vec![None, None],
            ..Default::default()
        };
        st.expand(
            1,
            vec![
                Target::Mailbox("a".into()),
                Target::Pipe("x".into()),
                Target::Fail("gone".into()),
            ],
        );
        st.expand(0, vec![Target::Mailbox("z".into())]);
        let word = |o: Outcome| match o {
            Outcome::Delivered(d) => format!("sent {d}"),
            Outcome::Deferred { status, reason } => format!("deferred {status} {reason}"),
            Outcome::Failed { status, reason } => format!("bounced {status} {reason}"),
        };
        assert_eq!(
            word(alias_outcome(&st, 1)),
            "deferred 4.0.0 3 of 3 alias targets pending; not tried yet"
        );
        st.set_expansion(0, Outcome::Delivered("ok".into()));
        st.set_expansion(1, Outcome::deferred("4.3.0", "busy"));
        st.set_expansion(2, Outcome::failed("5.1.1", "gone"));
        assert_eq!(
            word(alias_outcome(&st, 1)),
            "deferred 4.3.0 1 of 3 alias targets pending; busy"
        );
        st.set_expansion(1, Outcome::Delivered("ok".into()));
        assert_eq!(
            word(alias_outcome(&st, 1)),
            "sent expanded to 3 alias targets: 2 delivered, 1 failed"
        );
        st.set_expansion(3, Outcome::failed("5.2.0", "no"));
        assert_eq!(
            word(alias_outcome(&st, 0)),
            "bounced 5.2.0 expanded to 1 alias targets, all failed"
        );
    }

    #[test]
    fn how_targets_are_named() {
        let alias = Mailbox::parse("staff@example.com").unwrap();
        let t = |t: Target| target_addresses(&t, &alias, "mx.example.com");
        assert_eq!(
            t(Target::Mailbox("bob".into())),
            ("bob@example.com".into(), "bob@example.com".into())
        );
        assert_eq!(
            t(Target::Forward("x@y.org".into())),
            ("x@y.org".into(), "x@y.org".into())
        );
        assert_eq!(
            t(Target::Pipe("/bin/x -y".into())),
            ("|/bin/x -y".into(), "staff@example.com".into())
        );
        assert_eq!(
            t(Target::File("/m/box".into())),
            ("/m/box".into(), "staff@example.com".into())
        );
        let postmaster = relais_proto::address::parse_forward_path("postmaster").unwrap();
        assert_eq!(
            target_addresses(
                &Target::Mailbox("root".into()),
                &postmaster,
                "mx.example.com"
            )
            .0,
            "root@mx.example.com"
        );
    }
}
