//! Sync workers for large bodies.
//!
//! A body spilled to `data/<id>` must be durable (file data and the `data/`
//! directory entry) before its Message record is committed, or a crash could
//! leave a committed message without its body. Syncing a multi-megabyte file
//! takes milliseconds, so it is done here, by a small pool of threads, and
//! neither in the committer (which would stall every other session's commit)
//! nor in `Incoming::commit` (which would block an async caller).
//! Once synced, the message goes on to the committer like any other.

use std::fs::File;
use std::io;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use crate::committer::{MessageRequest, Request};
use crate::error::SpoolError;
use crate::shared::Shared;

/// Number of sync worker threads.
pub(crate) const SYNC_WORKERS: usize = 4;

/// A spilled message waiting for its data file to be synced.
#[derive(Debug)]
pub(crate) struct SyncJob {
    /// The finished data file.
    pub file: File,
    /// What to send to the committer afterwards (`data_path` is set).
    pub request: MessageRequest,
}

/// Starts the workers. They exit once every sender of `rx` is dropped and
/// the queue is drained, so pending jobs are finished on shutdown.
pub(crate) fn spawn_workers(
    shared: &Arc<Shared>,
    rx: Receiver<SyncJob>,
    committer: &Sender<Request>,
) -> io::Result<Vec<JoinHandle<()>>> {
    let rx = Arc::new(Mutex::new(rx));
    let mut handles = Vec::with_capacity(SYNC_WORKERS);
    for n in 0..SYNC_WORKERS {
        let shared = Arc::clone(shared);
        let rx = Arc::clone(&rx);
        let committer = committer.clone();
        let handle = std::thread::Builder::new()
            .name(format!("spool-sync-{n}"))
            .spawn(move || worker(&shared, &rx, &committer))?;
        handles.push(handle);
    }
    Ok(handles)
}

fn worker(shared: &Shared, rx: &Mutex<Receiver<SyncJob>>, committer: &Sender<Request>) {
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(PoisonError::into_inner);
            rx.recv()
        };
        let Ok(SyncJob { file, request }) = job else {
            return;
        };
        let synced = shared
            .sync_data(&file)
            .and_then(|()| shared.sync_dir(&shared.data_dir_handle));
        drop(file);
        match synced {
            Ok(()) => {
                if let Err(unsent) = committer.send(Request::Message(request)) {
                    // The committer is gone: the record was never written.
                    if let Request::Message(m) = unsent.0 {
                        discard(m, SpoolError::Closed);
                    }
                }
            }
            Err(e) => {
                tracing::error!(id = %request.id, error = %e, "cannot sync spool data file");
                discard(request, SpoolError::from(e));
            }
        }
    }
}

/// Fails a message that never reached the log, removing its data file.
fn discard(m: MessageRequest, e: SpoolError) {
    if let Some(path) = &m.data_path {
        let _ = std::fs::remove_file(path);
    }
    m.completer.complete(Err(e));
}
