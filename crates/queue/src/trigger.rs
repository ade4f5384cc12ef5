//! How the rest of the server reaches the queue manager without depending on it: the SMTP door
//! and the control socket hold a [`QueueHandle`] and send it [`Command`]s; the queue manager
//! owns the receiving end.

use relais_spool::QueueId;
use tokio::sync::{mpsc, oneshot};

/// The answer to an administrator's request: done, or why not.
pub type Answer = oneshot::Sender<Result<(), String>>;

/// Requests to the queue manager.
#[derive(Debug)]
pub enum Command {
    /// A message was just committed: deliver it.
    New(QueueId),
    /// Try now: one message, or every message that is not held.
    Flush(Option<QueueId>),
    /// Keep a message in the queue until released.
    Hold(QueueId, Answer),
    /// Release a held message (and try it now).
    Release(QueueId, Answer),
    /// Drop a message without delivering it or bouncing it.
    Delete(QueueId, Answer),
}

/// A cheap, cloneable sender of commands (connections hold one).
#[derive(Debug, Clone)]
pub struct QueueHandle {
    /// `None` when delivery is paused.
    tx: Option<mpsc::UnboundedSender<Command>>,
}

impl QueueHandle {
    /// A handle and the receiving end for the queue manager.
    pub fn channel() -> (QueueHandle, mpsc::UnboundedReceiver<Command>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (QueueHandle { tx: Some(tx) }, rx)
    }

    /// A handle that delivers nothing: messages stay in the spool.
    pub fn paused() -> Self {
        QueueHandle { tx: None }
    }

    /// True when delivery is paused: no queue manager runs, the spool is the server's alone.
    pub fn is_paused(&self) -> bool {
        self.tx.is_none()
    }

    /// Sends a command; false if the manager is not running.
    pub fn send(&self, cmd: Command) -> bool {
        self.tx.as_ref().is_some_and(|t| t.send(cmd).is_ok())
    }

    /// Asks for a new message to be delivered.
    pub fn push(&self, id: QueueId) {
        self.send(Command::New(id));
    }

    /// Sends an administrator's request and waits for its answer.
    pub async fn ask(&self, make: impl FnOnce(Answer) -> Command) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        if !self.send(make(tx)) {
            return Err("delivery is paused: the queue manager is not running".into());
        }
        rx.await
            .unwrap_or_else(|_| Err("the queue manager stopped".into()))
    }
}
