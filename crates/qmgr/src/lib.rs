//! `relais-qmgr`: the queue manager. It delivers spooled messages, records per-recipient
//! outcomes, retries with backoff, bounces at expiry, and sends delivery status notifications.
//!
//! Floor 4 of the flow of a message, beside the SMTP door (the two never import each other:
//! new queue ids arrive through `relais-queue`'s [`QueueHandle`]). It routes with
//! `relais-route` and delivers with `relais-local` and `relais-remote`.
//!
//! It runs on a thread of its own with a single-threaded event loop ([`manager`]). Split by
//! job, with the time passed in, so that the decisions are pure and tested as tables:
//! - [`schedule`]: which message is due when, which are held;
//! - [`plan`]: where each pending recipient's copy goes in this attempt (named jobs);
//! - [`jobs`]: carrying a plan out: Maildir copies in batches (one flush for many files),
//!   tasks for remote transactions (at most `remote_concurrency` per domain), the LMTP
//!   transaction, alias commands and files, all reporting through one channel;
//! - [`settle`]: once every job reported: duplicates, expiry, alias aggregation, log lines,
//!   which reports to send; [`retry`]: backoff and lifetime;
//! - [`report`] and [`dsn`]: building and queueing delivery status notifications.
//!
//! A message's progress is rewritten in the spool (`Spool::update_envelope`) after each
//! attempt, so a restart neither repeats what was delivered nor forgets retry times.
//!
//! A recipient that is an alias is expanded at its first attempt (`Policy::destination`) and
//! its targets are recorded in the message's state (`QueueState::expansions`), each with its
//! own outcome: a retry delivers to the targets still pending and to no other. The alias itself
//! becomes final once all its targets are; a target that fails is reported to the sender on
//! its own (Final-Recipient the target, Original-Recipient the alias), and a sender who asked
//! for success reports gets `Action: expanded` for the alias (RFC 3461 §6.2.7.4).

pub mod dsn;
mod flight;
mod jobs;
mod manager;
mod plan;
mod report;
mod retry;
mod schedule;
mod settings;
mod settle;
#[cfg(test)]
mod testutil;

use relais_local::maildir::MaildirStore;
use relais_queue::QueueHandle;
use relais_route::Policy;
use relais_spool::{QueueId, Spool};
use tokio::sync::mpsc;

use crate::manager::Manager;

pub use retry::Retry;
pub use settings::QueueSettings;

/// Handle to the queue manager thread.
pub struct QueueManager {
    /// Where commands go; dropped to stop the manager.
    handle: Option<QueueHandle>,
    /// The thread, joined on stop.
    thread: Option<std::thread::JoinHandle<()>>,
    /// New settings for the manager (a reload).
    reload: mpsc::UnboundedSender<manager::Reload>,
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
        let (reload, reload_rx) = mpsc::unbounded_channel();
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
                let mut m = Manager::new(spool, store, policy, settings, recovered, results_tx);
                rt.block_on(m.run(rx, results_rx, reload_rx));
            })?;
        Ok(QueueManager {
            handle: Some(handle),
            thread: Some(thread),
            reload,
        })
    }

    /// New settings and routing for the attempts that start from now on; attempts under way
    /// finish with the old ones. Idle remote connections of the old settings are closed.
    pub fn reload(&self, settings: QueueSettings, policy: Policy) {
        let _ = self.reload.send(manager::Reload { settings, policy });
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
