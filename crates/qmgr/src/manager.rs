//! The queue manager's event loop: commands and new ids from the [`QueueHandle`]
//! (relais_queue), reports from the tasks, and the timetable. Each turn reads the clock once
//! and hands it to the pure parts: [`Schedule`], [`plan`](crate::plan::plan),
//! [`settle`](crate::settle::settle).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use relais_local::maildir::{MaildirStore, Pending};
use relais_local::rules::LoopCheck;
use relais_metrics::{Agent, METRICS};
use relais_proto::ReversePath;
use relais_proto::date::unix_secs;
use relais_queue::{Command, Content, Outcome, SpooledEnvelope, admin};
use relais_route::Policy;
use relais_spool::{QueueId, Spool};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::flight::{Done, Flight};
use crate::jobs::{Jobs, Written, write_maildir};
use crate::plan::{PlanContext, plan};
use crate::schedule::Schedule;
use crate::settings::QueueSettings;
use crate::settle::{LogLine, settle};

/// How long new messages are gathered before a delivery batch starts.
const COALESCE: Duration = Duration::from_millis(10);
/// Most messages started in one batch.
const MAX_BATCH: usize = 512;
/// How often the age of the oldest queued message is worked out.
const GAUGES_EVERY: Duration = Duration::from_secs(1);
/// How long a message that could not be read waits before the next try.
const READ_RETRY: u64 = 60;

/// The agent a logged outcome came from: the relay says LMTP, a remote host or nowhere
/// (`none`); a local target is a command (`|…`), a file (`/…`) or a Maildir.
fn agent_of(line: &LogLine) -> Agent {
    match line.relay.as_str() {
        "none" => Agent::None,
        "local" if line.to.starts_with('|') => Agent::Pipe,
        "local" if line.to.starts_with('/') => Agent::File,
        "local" => Agent::Maildir,
        r if r.starts_with("lmtp[") => Agent::Lmtp,
        _ => Agent::Smtp,
    }
}

/// Unix seconds now: the one clock reading of a loop turn.
fn now_secs() -> u64 {
    unix_secs(SystemTime::now()).max(0) as u64
}

/// New settings, from a reload.
pub struct Reload {
    /// Retry rules, remote and local delivery settings.
    pub settings: QueueSettings,
    /// Local domains, users, aliases.
    pub policy: Policy,
}

/// Closes the idle connections of `settings`' cache once they are too old to reuse, every
/// second, until aborted.
fn reaper(settings: Arc<QueueSettings>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            settings.remote.cache.reap().await;
        }
    })
}

/// The manager's state (owned by its thread).
pub struct Manager {
    /// The spool: messages are read from it and their progress written back.
    spool: Spool,
    /// Local mailboxes.
    store: Arc<MaildirStore>,
    /// Where each recipient goes.
    policy: Policy,
    /// The settings, shared with the tasks.
    settings: Arc<QueueSettings>,
    /// When each waiting message is due, and which are held.
    schedule: Schedule,
    /// Messages with an attempt under way.
    flight: HashMap<QueueId, Flight>,
    /// Messages found at start: a crash may have left copies already delivered.
    recovered: HashSet<QueueId>,
    /// Starts the tasks of attempts.
    jobs: Jobs,
}

impl Manager {
    /// A manager whose tasks report to `results`; `recovered` are due at once.
    pub fn new(
        spool: Spool,
        store: MaildirStore,
        policy: Policy,
        settings: QueueSettings,
        recovered: Vec<QueueId>,
        results: mpsc::UnboundedSender<Done>,
    ) -> Manager {
        let settings = Arc::new(settings);
        let mut schedule = Schedule::default();
        for &id in &recovered {
            schedule.at(id, 0);
        }
        Manager {
            spool,
            store: Arc::new(store),
            policy,
            jobs: Jobs::new(settings.clone(), results),
            settings,
            schedule,
            flight: HashMap::new(),
            recovered: recovered.into_iter().collect(),
        }
    }

    /// Runs until the command channel closes, then lets the transactions under way finish.
    pub async fn run(
        &mut self,
        mut rx: mpsc::UnboundedReceiver<Command>,
        mut results: mpsc::UnboundedReceiver<Done>,
        mut reloads: mpsc::UnboundedReceiver<Reload>,
    ) {
        // Idle remote connections are closed once they are too old to reuse.
        let mut reaper = reaper(self.settings.clone());
        let mut gauged = std::time::Instant::now() - GAUGES_EVERY;
        loop {
            let wait = self.schedule.wait(now_secs());
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => {
                        self.command(cmd).await;
                        if self.gather(&mut rx).await {
                            self.run_due().await;
                            break;
                        }
                    }
                    None => break,
                },
                Some(done) = results.recv() => self.job_done(done).await,
                Some(r) = reloads.recv() => {
                    let old = std::mem::replace(&mut self.settings, Arc::new(r.settings));
                    self.policy = r.policy;
                    self.jobs.settings = self.settings.clone();
                    reaper.abort();
                    reaper = self::reaper(self.settings.clone());
                    // The old cache's idle connections get their QUIT; jobs under way keep
                    // the old settings until they end.
                    tokio::spawn(async move { old.remote.cache.close_all().await });
                    info!("queue manager: new settings in force");
                }
                _ = tokio::time::sleep(wait) => {}
            }
            self.run_due().await;
            self.gauges(&mut gauged);
        }
        // Let transactions under way finish, so that nothing is half done.
        while !self.flight.is_empty() {
            match tokio::time::timeout(Duration::from_secs(30), results.recv()).await {
                Ok(Some(done)) => self.job_done(done).await,
                _ => break,
            }
        }
        reaper.abort();
        // Close the idle connections politely.
        self.settings.remote.cache.close_all().await;
    }

    /// Takes what arrives in the next few milliseconds too: one batch (one flush of the
    /// Maildirs) for many messages instead of one each. True if the channel closed.
    async fn gather(&mut self, rx: &mut mpsc::UnboundedReceiver<Command>) -> bool {
        let until = tokio::time::Instant::now() + COALESCE;
        while self.schedule.len() < MAX_BATCH {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(cmd)) => self.command(cmd).await,
                Ok(None) => return true,
                Err(_) => break,
            }
        }
        false
    }

    /// The queue's size now, and at most once a [`GAUGES_EVERY`] the age of its oldest message
    /// (which looks at every id).
    fn gauges(&self, last: &mut std::time::Instant) {
        METRICS.queue_size(self.flight.len(), self.schedule.len(), self.schedule.held());
        if last.elapsed() < GAUGES_EVERY {
            return;
        }
        *last = std::time::Instant::now();
        let oldest = self
            .flight
            .keys()
            .min()
            .copied()
            .into_iter()
            .chain(self.schedule.oldest())
            .min();
        let age = oldest.map_or(0, |id| {
            SystemTime::now()
                .duration_since(id.timestamp())
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        });
        METRICS.queue_oldest_seconds.set(age);
    }

    async fn command(&mut self, cmd: Command) {
        match cmd {
            Command::New(id) => self.schedule.at(id, 0),
            Command::Flush(id) => self.schedule.flush(id),
            Command::Hold(id, reply) => {
                let _ = reply.send(self.set_held(id, true).await);
            }
            Command::Release(id, reply) => {
                let _ = reply.send(self.set_held(id, false).await);
            }
            Command::Delete(id, reply) => {
                let r = if self.flight.contains_key(&id) {
                    Err("delivery in progress; try again in a moment".to_string())
                } else {
                    self.schedule.forget(id);
                    admin::delete(&self.spool, id)
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
            self.schedule.hold(id);
        } else {
            self.schedule.release(id);
        }
        Ok(())
    }

    /// Starts an attempt for every message that is due.
    async fn run_due(&mut self) {
        let now = now_secs();
        let ids: Vec<QueueId> = self
            .schedule
            .take_due(now, MAX_BATCH)
            .into_iter()
            .filter(|id| !self.flight.contains_key(id))
            .collect();
        if ids.is_empty() {
            return;
        }
        let mut written: Vec<Written> = Vec::new();
        for id in ids {
            self.start_attempt(id, now, &mut written);
        }
        // One flush for every local copy of the batch.
        let files: Vec<Pending> = written.iter().map(|w| w.file.clone()).collect();
        let committed = self.store.commit(&files);
        if let Err(e) = &committed {
            self.store.discard(&files);
            warn!("cannot make local deliveries durable: {e}");
        }
        for w in written {
            let outcome = match &committed {
                Ok(()) => {
                    Outcome::Delivered(format!("delivered to maildir {}", w.file.new.display()))
                }
                Err(e) => Outcome::deferred("4.3.0", format!("cannot write to the mailbox: {e}")),
            };
            if let Some(f) = self.flight.get_mut(&w.id) {
                f.set(w.slot, outcome);
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

    /// Reads a message, plans its attempt, writes its Maildir copies to `tmp/` and starts its
    /// other jobs.
    fn start_attempt(&mut self, id: QueueId, now: u64, written: &mut Vec<Written>) {
        let Some(mut f) = self.read(id, now) else {
            return;
        };
        let loops = LoopCheck::of(f.content.header());
        let cx = PlanContext {
            id,
            hostname: &self.settings.hostname,
            lmtp: self.settings.local.lmtp.as_ref().map(ToString::to_string),
            arrival: unix_secs(f.arrival).max(0) as u64,
        };
        let policy = &self.policy;
        let mut plan = plan(&mut f, &cx, &loops, |to| policy.destination(to));
        let maildir = std::mem::take(&mut plan.maildir);
        let recovered = self.recovered.contains(&id);
        write_maildir(
            &self.store,
            &self.settings,
            recovered,
            id,
            &mut f,
            maildir,
            written,
        );
        self.jobs.start(id, &mut f, plan);
        self.flight.insert(id, f);
    }

    /// A message from the spool, ready for an attempt; `None` when it is gone, held, or cannot
    /// be read (then it is tried again later).
    fn read(&mut self, id: QueueId, now: u64) -> Option<Flight> {
        let msg = match self.spool.read(id) {
            Ok(m) => m,
            Err(relais_spool::SpoolError::NotFound(_)) => return None,
            Err(e) => {
                warn!("{id}: cannot read from the spool: {e}; retrying later");
                self.schedule.at(id, now + READ_RETRY);
                return None;
            }
        };
        let env = match SpooledEnvelope::decode(&msg.envelope) {
            Ok(e) => e,
            Err(e) => {
                warn!("{id}: unreadable envelope ({e}); left in the spool for inspection");
                return None;
            }
        };
        if env.state.held {
            self.schedule.hold(id);
            return None;
        }
        // The headers the door decided at the end of the content go in front of it, a header
        // section changed by content filters in place of the stored one; the rest is read from
        // the spool by each agent.
        let arrival = msg.arrival;
        let content = match Content::open(msg, &env.arrival) {
            Ok(c) => c,
            Err(e) => {
                warn!("{id}: cannot read the message: {e}; retrying later");
                self.schedule.at(id, now + READ_RETRY);
                return None;
            }
        };
        Some(Flight::new(env, arrival, content))
    }

    /// A task reported: record its outcomes; the attempt is over when none is left.
    async fn job_done(&mut self, done: Done) {
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
        if self.recovered.remove(&id) && self.recovered.is_empty() {
            // Every message found at start was tried once: the Maildirs read to recognise
            // copies made before a crash are not needed any more.
            self.store.forget_delivered();
        }
        let now = SystemTime::now();
        let s = settle(&mut f, now, &self.settings.retry, &self.settings.hostname);
        for line in &s.log {
            if !line.aggregate {
                METRICS.delivery(agent_of(line), line.outcome.word());
                if line.outcome.is_final() {
                    METRICS
                        .delivery_seconds
                        .observe(Duration::from_secs_f64(line.delay.max(0.0)));
                }
            }
            let (status, reason) = match &line.outcome {
                Outcome::Delivered(how) => ("2.0.0", how.as_str()),
                Outcome::Deferred { status, reason } | Outcome::Failed { status, reason } => {
                    (status.as_str(), reason.as_str())
                }
            };
            info!(
                event = line.outcome.word(),
                queue_id = %id,
                to = %line.to,
                orig_to = line.orig_to.as_deref().unwrap_or(""),
                relay = %line.relay,
                delay = line.delay,
                status = line.outcome.word(),
                dsn = status,
                reason,
                "{id}: {line}"
            );
        }
        // Reports are sent only for real senders, and never about a report (null sender).
        // Only what was decided in this attempt is reported: earlier outcomes were reported then.
        if f.env.envelope.from != ReversePath::Null
            && !s.reports.is_empty()
            && let Some(rid) =
                crate::report::enqueue(&self.spool, &self.settings.hostname, id, &f, s.reports, now)
                    .await
        {
            self.schedule.at(rid, 0);
        }
        if s.done {
            match self.spool.mark_done(id) {
                Ok(()) => info!(event = "removed", queue_id = %id, "{id}: removed"),
                Err(e) => warn!("{id}: finished but not removed from the spool: {e}"),
            }
            return;
        }
        if let Err(e) = self.spool.update_envelope(id, f.env.encode()).await {
            warn!("{id}: cannot record delivery progress: {e}");
        }
        self.schedule.at(id, s.next_attempt);
    }
}
