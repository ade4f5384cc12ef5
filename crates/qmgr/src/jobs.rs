//! Carrying out a plan: Maildir copies are written at once (made durable with the batch), the
//! other copies become tasks (remote transactions, the LMTP transaction, alias commands and
//! files) that report back with a [`Done`] through one channel.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use std::path::PathBuf;

use relais_local::maildir::{MaildirStore, Pending};
use relais_local::quota;
use relais_local::rules as local;
use relais_local::{lmtp, pipe};
use relais_queue::{Content, Outcome, headers};
use relais_remote as remote;
use relais_spool::QueueId;
use tokio::sync::{Semaphore, mpsc};

use crate::flight::{Done, Flight, Slot};
use crate::plan::{FileJob, MaildirCopy, PipeJob, Plan, RemoteBatch};
use crate::settings::QueueSettings;

/// A Maildir copy written to `tmp/`, waiting for the batch to be made durable.
pub struct Written {
    /// The message.
    pub id: QueueId,
    /// Whose copy it is.
    pub slot: Slot,
    /// The file.
    pub file: Pending,
}

/// Writes the Maildir copies of a plan to `tmp/`. A message found in the spool at start
/// (`recovered`) may have copies from before a crash: those are not written again. A copy
/// that does not fit in its mailbox's quota fails (`5.2.2 Mailbox full`): the sender gets a
/// bounce. A copy that would leave less room than `min_free_space` on the file system of
/// `data_dir/mail` waits for the next attempt (`4.3.1`), as a failed write does.
pub fn write_maildir(
    store: &MaildirStore,
    settings: &QueueSettings,
    recovered: bool,
    id: QueueId,
    f: &mut Flight,
    copies: Vec<MaildirCopy>,
    out: &mut Vec<Written>,
) {
    let sender = f.env.envelope.from.to_string();
    let junk = f.env.arrival.junk;
    for c in copies {
        // DMARC quarantine: the Maildir++ folder `.Junk` of the mailbox.
        let mailbox = match junk {
            true => store.folder_of(&c.mailbox, "Junk"),
            false => c.mailbox.clone(),
        };
        if recovered && store.already_delivered(&mailbox, &c.base) {
            let how = format!("already in maildir of {mailbox} (before a restart)");
            f.set(c.slot, Outcome::Delivered(how));
            continue;
        }
        let head = headers::delivery_headers(&sender, &c.address);
        let size = head.len() as u64 + f.content.len();
        if let Ok((free, total)) = relais_spool::disk_space(store.root())
            && !settings.min_free_space.allows(free, total, size)
        {
            let why = format!(
                "insufficient system storage for mailbox {}: {free} octets free, {} kept free",
                c.mailbox,
                settings.min_free_space.threshold(total)
            );
            f.set(c.slot, Outcome::deferred("4.3.1", why));
            continue;
        }
        let quota = match settings.local.quotas.limit_of(&c.mailbox) {
            None => None,
            Some(limit) => match room(store, &c.mailbox, limit, size, out) {
                Ok(dir) => Some(dir),
                Err(o) => {
                    f.set(c.slot, o);
                    continue;
                }
            },
        };
        let written = f
            .content
            .reader()
            .and_then(|body| store.write_named(&mailbox, &c.base, head.as_bytes(), body));
        match written {
            Ok(mut file) => {
                file.quota = quota;
                out.push(Written {
                    id,
                    slot: c.slot,
                    file,
                })
            }
            Err(e) => {
                let why = format!("cannot write to mailbox {mailbox}: {e}");
                f.set(c.slot, Outcome::deferred("4.3.0", why));
            }
        }
    }
}

/// Whether a copy of `size` bytes fits in `mailbox` under `limit`, counting the copies of this
/// batch not yet in its `maildirsize`: its Maildir when it does, else the outcome.
fn room(
    store: &MaildirStore,
    mailbox: &str,
    limit: u64,
    size: u64,
    batch: &[Written],
) -> Result<PathBuf, Outcome> {
    let unreadable = |e: std::io::Error| {
        Outcome::deferred("4.3.0", format!("cannot read the quota of {mailbox}: {e}"))
    };
    let dir = store.place_of(mailbox).map_err(unreadable)?.dir;
    let mut usage = store.usage(mailbox, limit).map_err(unreadable)?;
    for w in batch.iter().filter(|w| w.file.quota.as_ref() == Some(&dir)) {
        usage.bytes += w.file.size;
        usage.messages += 1;
    }
    if quota::fits(usage, limit, size) {
        return Ok(dir);
    }
    Err(Outcome::failed(
        "5.2.2",
        format!(
            "Mailbox full: {mailbox} holds {} of its {limit} bytes, the message has {size}",
            usage.bytes
        ),
    ))
}

/// Starts the tasks of attempts.
pub struct Jobs {
    /// The queue manager's settings.
    pub settings: Arc<QueueSettings>,
    /// Where every task reports.
    pub results: mpsc::UnboundedSender<Done>,
    /// Per destination domain, the limit on simultaneous transactions.
    domains: HashMap<String, Arc<Semaphore>>,
}

impl Jobs {
    /// Tasks that report to `results`.
    pub fn new(settings: Arc<QueueSettings>, results: mpsc::UnboundedSender<Done>) -> Jobs {
        Jobs {
            settings,
            results,
            domains: HashMap::new(),
        }
    }

    /// Starts every task of `plan` but its Maildir copies.
    pub fn start(&mut self, id: QueueId, f: &mut Flight, mut plan: Plan) {
        for batch in plan.remote() {
            self.remote(id, f, batch);
        }
        self.lmtp(id, f, std::mem::take(&mut plan.lmtp));
        for job in std::mem::take(&mut plan.pipes) {
            self.pipe(id, f, job);
        }
        for job in std::mem::take(&mut plan.files) {
            self.file(id, f, job);
        }
    }

    /// The ids a command or file runs with: its `.forward`'s user, else `[local] run_as`.
    fn identity(&self, user: &Option<String>) -> Result<Option<(u32, u32)>, Outcome> {
        match user {
            Some(name) => local::forward_owner(name),
            None => Ok(self.settings.local.run_as),
        }
    }

    /// The one way a task starts: counted in its message, its report sent when it ends.
    fn spawn(&self, f: &mut Flight, job: impl Future<Output = Done> + Send + 'static) {
        f.outstanding += 1;
        let tx = self.results.clone();
        tokio::spawn(async move {
            let _ = tx.send(job.await);
        });
    }

    /// One SMTP transaction for the recipients at one domain.
    fn remote(&mut self, id: QueueId, f: &mut Flight, batch: RemoteBatch) {
        let content = match batch.alias {
            // A forwarded copy says which alias it went through: if it ever comes back to
            // that alias, it is a loop (see `LoopCheck`).
            Some(i) => {
                let alias = f.env.envelope.recipients[i].to.to_string();
                f.content
                    .with_prefix(headers::delivered_to(&alias).as_bytes())
            }
            None => f.content.clone(),
        };
        let slots: Vec<Slot> = batch.recipients.iter().map(|(s, _)| *s).collect();
        // A forwarded copy leaves with a sender at our domain (SRS), so that it passes SPF
        // where it lands; bounces to that address come back and go on to the sender.
        let from = match (&batch.alias, &self.settings.srs) {
            (Some(_), Some(srs)) => srs.forward(&f.env.envelope.from, relais_route::srs::today()),
            _ => f.env.envelope.from.clone(),
        };
        let job = remote::Job {
            domain: batch.domain.clone(),
            from,
            params: f.env.envelope.mail_params.clone(),
            recipients: batch
                .recipients
                .into_iter()
                .enumerate()
                .map(|(k, (_, r))| (k, r))
                .collect(),
            content,
        };
        let per_domain = self.settings.remote_concurrency.max(1);
        let limit = self
            .domains
            .entry(batch.domain)
            .or_insert_with(|| Arc::new(Semaphore::new(per_domain)))
            .clone();
        let settings = self.settings.clone();
        self.spawn(f, async move {
            let _permit = limit.acquire_owned().await;
            let result = remote::deliver(&settings.remote, &job).await;
            Done {
                id,
                outcomes: result
                    .outcomes
                    .into_iter()
                    .filter_map(|(k, o)| Some((*slots.get(k)?, o)))
                    .collect(),
                remote: result.remote,
                remote_dsn: result.remote_dsn,
            }
        });
    }

    /// One LMTP transaction for all the mailboxes of the message.
    fn lmtp(&self, id: QueueId, f: &mut Flight, copies: Vec<crate::plan::LmtpCopy>) {
        let Some(target) = self.settings.local.lmtp.clone() else {
            return;
        };
        if copies.is_empty() {
            return;
        }
        let (slots, addresses): (Vec<Slot>, Vec<String>) =
            copies.into_iter().map(|c| (c.slot, c.address)).unzip();
        let (settings, content) = (self.settings.clone(), f.content.clone());
        let sender = f.env.envelope.from.to_string();
        self.spawn(f, async move {
            let outcomes = match content.reader() {
                Ok(message) => {
                    lmtp::deliver(
                        &target,
                        &settings.hostname,
                        &sender,
                        &addresses,
                        message,
                        local::LMTP_TIMEOUT,
                    )
                    .await
                }
                Err(e) => {
                    let o = unreadable(&e);
                    addresses.iter().map(|_| o.clone()).collect()
                }
            };
            Done::local(id, slots.into_iter().zip(outcomes).collect())
        });
    }

    /// An alias command, the message on its standard input.
    fn pipe(&self, id: QueueId, f: &mut Flight, job: PipeJob) {
        let user = match self.identity(&job.user) {
            Ok(user) => user,
            Err(o) => return f.set(job.slot, o),
        };
        let sender = f.env.envelope.from.to_string();
        let message = with_delivery_headers(&sender, &job.recipient, &f.content);
        let settings = self.settings.clone();
        self.spawn(f, async move {
            let inv = pipe::Invocation {
                command: &job.command,
                sender: &sender,
                recipient: &job.recipient,
                original_recipient: &job.original,
                user,
                timeout: settings.local.command_timeout,
            };
            let outcome = match message.reader() {
                Ok(reader) => pipe::run(&inv, reader).await,
                Err(e) => unreadable(&e),
            };
            Done::local(id, vec![(job.slot, outcome)])
        });
    }

    /// An alias file, appended to as its user on a blocking thread.
    fn file(&self, id: QueueId, f: &mut Flight, job: FileJob) {
        let user = match self.identity(&job.user) {
            Ok(user) => user,
            Err(o) => return f.set(job.slot, o),
        };
        let sender = f.env.envelope.from.to_string();
        let message = with_delivery_headers(&sender, &job.recipient, &f.content);
        let arrival = f.arrival;
        self.spawn(f, async move {
            let FileJob { slot, path, .. } = job;
            let outcome = tokio::task::spawn_blocking(move || match message.reader() {
                Ok(reader) => local::append_file(user, &path, &sender, reader, arrival),
                Err(e) => unreadable(&e),
            })
            .await
            .unwrap_or_else(|e| Outcome::deferred("4.3.0", format!("file delivery: {e}")));
            Done::local(id, vec![(slot, outcome)])
        });
    }
}

/// `Return-Path` and `Delivered-To`, then the message: what a command or a file receives.
fn with_delivery_headers(sender: &str, recipient: &str, content: &Content) -> Content {
    content.with_prefix(headers::delivery_headers(sender, recipient).as_bytes())
}

/// The outcome of a copy whose message the spool could not give: tried again later.
fn unreadable(e: &std::io::Error) -> Outcome {
    Outcome::deferred(
        "4.3.0",
        format!("cannot read the message from the spool: {e}"),
    )
}
