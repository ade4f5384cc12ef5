//! The waitable result of a commit: a one-shot slot usable both from plain
//! threads (blocking [`Commit::wait`]) and from any async runtime
//! ([`Commit`] implements `Future`), built on a std `Mutex` + `Condvar` +
//! `Waker`, so the spool needs no runtime.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::error::SpoolError;
use crate::id::QueueId;

/// Result delivered to a [`Commit`].
pub(crate) type CommitResult = Result<QueueId, SpoolError>;

/// Shared one-shot slot between a [`Completer`] and a [`Commit`].
#[derive(Debug, Default)]
struct Slot {
    /// The result once known, and the waker of an async waiter.
    state: Mutex<SlotState>,
    /// Signalled when the result is stored, for blocking waiters.
    ready: Condvar,
}

#[derive(Debug, Default)]
struct SlotState {
    /// `Some` from completion until the waiter takes it.
    result: Option<CommitResult>,
    /// Waker of the last `poll` that found no result.
    waker: Option<Waker>,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, result: CommitResult) {
        let waker = {
            let mut st = self.lock();
            st.result = Some(result);
            st.waker.take()
        };
        self.ready.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Handle to a message handed to the committer; resolves to the message's
/// [`QueueId`] once its record (and data file, if any) is durable on disk,
/// or to an error if it could not be made durable.
///
/// Wait for it either with [`Commit::wait`] (blocking) or by `.await`ing it
/// (it is a runtime-agnostic `Future`). Dropping it does not cancel the
/// commit; the message is still queued.
#[derive(Debug)]
#[must_use = "a commit is only durable once its Commit resolves to Ok"]
pub struct Commit {
    /// Slot the committer fills in.
    slot: Arc<Slot>,
}

/// The committer's side of a [`Commit`]. Dropping it without completing
/// (for instance because the spool shut down with the request still queued)
/// resolves the commit to [`SpoolError::Closed`], so no waiter hangs.
#[derive(Debug)]
pub(crate) struct Completer {
    /// `None` once completed.
    slot: Option<Arc<Slot>>,
}

/// A connected completer / commit pair.
pub(crate) fn channel() -> (Completer, Commit) {
    let slot = Arc::new(Slot::default());
    (
        Completer {
            slot: Some(Arc::clone(&slot)),
        },
        Commit { slot },
    )
}

impl Completer {
    /// Delivers the result to the waiting [`Commit`].
    pub(crate) fn complete(mut self, result: CommitResult) {
        if let Some(slot) = self.slot.take() {
            slot.set(result);
        }
    }
}

impl Drop for Completer {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            slot.set(Err(SpoolError::Closed));
        }
    }
}

impl Commit {
    /// A commit that is already resolved (used when `commit` fails early).
    pub(crate) fn ready(result: CommitResult) -> Commit {
        let (completer, commit) = channel();
        completer.complete(result);
        commit
    }

    /// Blocks the calling thread until the message is durable (`Ok(id)`)
    /// or has failed. Do not call this on an async runtime's worker thread;
    /// `.await` the `Commit` instead.
    pub fn wait(self) -> Result<QueueId, SpoolError> {
        let mut st = self.slot.lock();
        loop {
            if let Some(result) = st.result.take() {
                return result;
            }
            st = self
                .slot
                .ready
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Whether the result is available, i.e. `wait` would not block.
    pub fn is_ready(&self) -> bool {
        self.slot.lock().result.is_some()
    }
}

impl Future for Commit {
    type Output = Result<QueueId, SpoolError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut st = self.slot.lock();
        if let Some(result) = st.result.take() {
            return Poll::Ready(result);
        }
        match &st.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => st.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct CountingWaker(AtomicUsize);
    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn future_is_woken_and_resolves() {
        let (completer, mut commit) = channel();
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&counter));
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut commit).poll(&mut cx).is_pending());
        let id = QueueId::from_parts(5, 6, 7);
        completer.complete(Ok(id));
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        match Pin::new(&mut commit).poll(&mut cx) {
            Poll::Ready(Ok(got)) => assert_eq!(got, id),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn wait_across_threads_and_drop_means_closed() {
        let (completer, commit) = channel();
        let t = std::thread::spawn(move || commit.wait());
        std::thread::sleep(std::time::Duration::from_millis(10));
        drop(completer);
        let result = t.join().expect("waiter panicked");
        assert!(matches!(result, Err(SpoolError::Closed)), "{result:?}");
    }
}
