//! `relais-spool`: a durable message spool with group commit.
//!
//! An SMTP server may only answer `250 Ok: queued as <id>` once the message
//! and its envelope are on stable storage. An `fsync` per message file caps a
//! typical disk at a few thousand messages per second, so this spool is an
//! **append-only segmented log with group commit**: one background thread
//! (the committer) takes the records of every session that is waiting,
//! writes them together, and makes them durable with a single `fdatasync`.
//!
//! The spool is generic: per message it stores an opaque envelope (bytes the
//! server produces and parses) and the body. It knows nothing about SMTP.
//!
//! # Layout of the spool directory
//!
//! ```text
//! dir/LOCK                 exclusive flock held by the process that has the spool open
//! dir/log/<number>.seg     append-only log segments (see `record` for the format)
//! dir/data/<queue id>      bodies larger than `inline_limit`, one file each
//! ```
//!
//! # Life of a message
//!
//! 1. [`Spool::new_id`] then [`Spool::begin`] give an [`Incoming`];
//! 2. [`Incoming::write`] appends body bytes (spilling to `data/<id>` past
//!    `inline_limit`);
//! 3. [`Incoming::commit`] hands it to the committer and returns a
//!    [`Commit`]; once that resolves to `Ok(id)` the message is durable;
//! 4. [`Spool::pending`] / [`Spool::read`] find it again, also after a
//!    restart;
//! 5. [`Spool::mark_done`] forgets it once delivered. Segments whose
//!    messages are all done are deleted.
//!
//! # Crash safety
//!
//! Every record carries a CRC-32C. On [`Spool::open`] the segments are
//! replayed; a torn record at the end of the last segment (a crash during a
//! write) is ignored and cut off — it was never acknowledged — and a new
//! segment is started. A body in its own file is synced (file and
//! directory) before the record referring to it is written, and deleted only
//! after its Done record is durable.
//!
//! # Concurrency between processes
//!
//! Only one process may have a spool directory open: [`Spool::open`] takes an
//! exclusive `flock` on `dir/LOCK` and fails with [`SpoolError::Locked`] if
//! another process (or another `Spool` in this one) holds it. A future
//! `relais sendmail` must therefore hand messages to the running server
//! rather than write to the spool directly, or wait for the lock.

#![warn(missing_docs)]

mod commit;
mod committer;
mod crc;
mod error;
mod id;
mod incoming;
mod index;
mod message;
mod options;
mod record;
mod recover;
mod shared;
mod syncer;

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use commit::Commit;
pub use error::SpoolError;
pub use id::{ParseQueueIdError, QUEUE_ID_LEN, QueueId};
pub use incoming::Incoming;
pub use message::{Body, StoredMessage};
pub use options::{MAX_INLINE_LIMIT, SpoolOptions};

use committer::{Committer, DoneRequest, Request};
use index::BodyLoc;
use record::{Record, decode_frame, encode_done};
use shared::Shared;
use syncer::SyncJob;

/// A durable message spool. Cheap to clone (all clones share one spool);
/// the committer thread stops when [`shutdown`](Spool::shutdown) is called
/// or the last clone (and the last [`Incoming`]) is dropped.
#[derive(Debug, Clone)]
pub struct Spool {
    /// The shared spool.
    inner: Arc<Inner>,
}

/// The spool behind all [`Spool`] clones and [`Incoming`]s.
#[derive(Debug)]
pub(crate) struct Inner {
    /// Paths, options, index: also used by the committer and sync workers.
    pub(crate) shared: Arc<Shared>,
    /// The spool directory.
    dir: PathBuf,
    /// Channel to the committer; `None` after shutdown. Taking it (and the
    /// workers' clones going away) is what stops the committer.
    tx: Mutex<Option<Sender<Request>>>,
    /// Channel to the sync workers; `None` after shutdown.
    sync_tx: Mutex<Option<Sender<SyncJob>>>,
    /// Thread handles, joined by shutdown.
    threads: Mutex<Threads>,
    /// The open `LOCK` file; closing it releases the `flock`.
    lock_file: Mutex<Option<File>>,
    /// Set by shutdown; later operations fail with `Closed`.
    closed: AtomicBool,
}

/// Background threads of one spool.
#[derive(Debug, Default)]
struct Threads {
    /// The committer.
    committer: Option<JoinHandle<()>>,
    /// The sync workers for large bodies.
    syncers: Vec<JoinHandle<()>>,
}

/// Locks a mutex, ignoring poisoning (the data behind these mutexes stays
/// valid even if a holder panicked).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Current time in microseconds since the Unix epoch.
pub(crate) fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Spool {
    /// Opens (creating if needed) the spool in `dir`: takes the `LOCK`,
    /// recovers the index from the log, deletes spent segments and orphaned
    /// data files, and starts the committer and sync worker threads.
    ///
    /// Fails with [`SpoolError::Locked`] if another process has the spool
    /// open, and with [`SpoolError::Corrupt`] if a segment file is not a
    /// spool segment at all (a torn tail is not an error).
    pub fn open(dir: &Path, opts: SpoolOptions) -> Result<Spool, SpoolError> {
        if opts.segment_size == 0 {
            return Err(SpoolError::InvalidOptions("segment_size must be positive"));
        }
        if opts.inline_limit > MAX_INLINE_LIMIT {
            return Err(SpoolError::InvalidOptions(
                "inline_limit must be at most 256 MiB",
            ));
        }
        ensure_dir(dir, opts.fsync)?;
        let lock_file = take_lock(dir)?;
        let log_dir = dir.join("log");
        let data_dir = dir.join("data");
        ensure_dir(&log_dir, opts.fsync)?;
        ensure_dir(&data_dir, opts.fsync)?;

        let recovered = recover::recover(&log_dir, &data_dir, opts.fsync)?;
        let shared = Arc::new(Shared {
            log_dir_handle: File::open(&log_dir)?,
            data_dir_handle: File::open(&data_dir)?,
            log_dir,
            data_dir,
            opts,
            index: Mutex::new(recovered.index),
            receiving: std::sync::atomic::AtomicUsize::new(0),
        });
        shared.collect_garbage();

        let (tx, rx) = mpsc::channel();
        let (sync_tx, sync_rx) = mpsc::channel();
        let committer = Committer::new(Arc::clone(&shared), rx, recovered.next_segment);
        let committer_handle = std::thread::Builder::new()
            .name("spool-committer".into())
            .spawn(move || committer.run())?;
        // From here on, dropping `inner` (also on error) shuts the threads down.
        let inner = Arc::new(Inner {
            shared: Arc::clone(&shared),
            dir: dir.to_path_buf(),
            tx: Mutex::new(Some(tx.clone())),
            sync_tx: Mutex::new(Some(sync_tx)),
            threads: Mutex::new(Threads {
                committer: Some(committer_handle),
                syncers: Vec::new(),
            }),
            lock_file: Mutex::new(Some(lock_file)),
            closed: AtomicBool::new(false),
        });
        let syncers = syncer::spawn_workers(&shared, sync_rx, &tx)?;
        drop(tx);
        lock(&inner.threads).syncers = syncers;
        Ok(Spool { inner })
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Free and total octets of the file system the spool is on, as [`disk_space`] counts
    /// them; asked through the open `log/` directory (no path to look up: the server asks
    /// before every message).
    pub fn disk_space(&self) -> std::io::Result<(u64, u64)> {
        use std::os::fd::AsRawFd;
        let fd = self.inner.shared.log_dir_handle.as_raw_fd();
        let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
        // SAFETY: `fd` is open for as long as `self.inner` lives, and `st` is a buffer of the
        // right type; fstatvfs(3) fills it when it returns 0.
        let rc = unsafe { libc::fstatvfs(fd, st.as_mut_ptr()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fstatvfs returned 0, so the struct is filled.
        Ok(space(&unsafe { st.assume_init() }))
    }

    /// A new unique queue id (see [`QueueId`]).
    pub fn new_id(&self) -> QueueId {
        QueueId::generate()
    }

    /// Starts receiving the body of a message that will be stored as `id`.
    pub fn begin(&self, id: QueueId) -> Incoming {
        Incoming::new(Arc::clone(&self.inner), id)
    }

    /// How many messages are being received: begun and neither committed nor dropped.
    pub fn receiving(&self) -> usize {
        self.inner
            .shared
            .receiving
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Ids of the committed messages not yet marked done, oldest first.
    /// Right after [`open`](Spool::open) this is everything recovered from
    /// disk.
    pub fn pending(&self) -> Vec<QueueId> {
        self.inner
            .shared
            .lock_index()
            .messages
            .keys()
            .copied()
            .collect()
    }

    /// Reads a pending message (envelope, body or body location, arrival
    /// time) with one positioned read of its record.
    pub fn read(&self, id: QueueId) -> Result<StoredMessage, SpoolError> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(SpoolError::Closed);
        }
        let (entry, file) = {
            let idx = self.inner.shared.lock_index();
            let entry = *idx.messages.get(&id).ok_or(SpoolError::NotFound(id))?;
            let file = idx
                .segments
                .get(&entry.segment)
                .map(|s| Arc::clone(&s.file))
                .ok_or_else(|| {
                    SpoolError::Corrupt(format!(
                        "segment {} of message {id} is gone",
                        entry.segment
                    ))
                })?;
            (entry, file)
        };
        let mut buf = vec![0u8; entry.len as usize];
        file.read_exact_at(&mut buf, entry.offset)?;
        let corrupt = |what: &dyn std::fmt::Display| {
            SpoolError::Corrupt(format!(
                "record of message {id} (segment {}, offset {}): {what}",
                entry.segment, entry.offset
            ))
        };
        let (record, _) = decode_frame(&buf).map_err(|e| corrupt(&e))?;
        let Record::Message(m) = record else {
            return Err(corrupt(&"not a Message record"));
        };
        if m.id != id {
            return Err(corrupt(&format_args!("holds message {}", m.id)));
        }
        let (body, body_crc) = match m.body {
            record::BodyRef::Inline(b) => (Body::Inline(b.to_vec()), None),
            record::BodyRef::File { crc, .. } => {
                (Body::File(self.inner.shared.data_path(id)), Some(crc))
            }
        };
        Ok(StoredMessage {
            id,
            envelope: m.envelope.to_vec(),
            body,
            arrival: UNIX_EPOCH + Duration::from_micros(m.arrival_us),
            body_len: entry.body.len(),
            body_crc,
        })
    }

    /// Replaces the envelope of a pending message, keeping its id, arrival time and body: how
    /// the queue records per-recipient progress (delivered, deferred until, failed) so that a
    /// restart neither repeats finished deliveries nor forgets retry times. The new record is
    /// appended to the log; once the returned [`Commit`] resolves, [`read`](Spool::read) and a
    /// recovery after a crash both see the new envelope.
    pub fn update_envelope(&self, id: QueueId, envelope: Vec<u8>) -> Commit {
        let current = match self.read(id) {
            Ok(m) => m,
            Err(e) => return Commit::ready(Err(e)),
        };
        let entry = match self.inner.shared.lock_index().messages.get(&id) {
            Some(e) => *e,
            None => return Commit::ready(Err(SpoolError::NotFound(id))),
        };
        let arrival_us = current
            .arrival
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        let body = match (&current.body, current.body_crc) {
            (Body::Inline(b), _) => record::BodyRef::Inline(b),
            (Body::File(_), Some(crc)) => record::BodyRef::File {
                len: current.body_len,
                crc,
            },
            (Body::File(_), None) => {
                return Commit::ready(Err(SpoolError::Corrupt(format!(
                    "message {id}: file body without checksum"
                ))));
            }
        };
        let record = record::MessageRecord {
            id,
            arrival_us,
            envelope: &envelope,
            body,
        };
        let frame = match record::encode_message(&record) {
            Ok(f) => f,
            Err(e) => {
                return Commit::ready(Err(SpoolError::Io(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    e.to_string(),
                ))));
            }
        };
        let (completer, commit) = commit::channel();
        let request = committer::MessageRequest {
            id,
            frame,
            body: entry.body,
            // The data file belongs to the record already on disk: never remove it here.
            data_path: None,
            completer,
            replace: true,
        };
        let _ = self.inner.send(Request::Message(request));
        commit
    }

    /// Marks a message as finished (delivered, bounced or deleted): it
    /// leaves [`pending`](Spool::pending) at once, a Done record is appended
    /// with the next batch (not waited for: if it is lost in a crash the
    /// message is delivered again, never lost), and its data file is
    /// removed once that record is durable.
    pub fn mark_done(&self, id: QueueId) -> Result<(), SpoolError> {
        let tx = lock(&self.inner.tx);
        let Some(tx) = tx.as_ref() else {
            return Err(SpoolError::Closed);
        };
        let entry = self
            .inner
            .shared
            .lock_index()
            .remove_message(id)
            .ok_or(SpoolError::NotFound(id))?;
        let data_path = match entry.body {
            BodyLoc::File { .. } => Some(self.inner.shared.data_path(id)),
            BodyLoc::Inline { .. } => None,
        };
        let request = DoneRequest {
            frame: encode_done(id, now_micros()),
            message_segment: entry.segment,
            data_path,
        };
        tx.send(Request::Done(request))
            .map_err(|_| SpoolError::Closed)
    }

    /// Flushes everything already handed over (commits in flight complete
    /// normally), stops the background threads and releases the `LOCK`.
    /// Afterwards commits, reads and `mark_done` fail with
    /// [`SpoolError::Closed`]. Idempotent; also done when the last clone of
    /// the spool and the last [`Incoming`] are dropped.
    pub fn shutdown(&self) {
        self.inner.shutdown();
    }
}

impl Inner {
    /// Sends a request to the committer; gives it back if the spool is shut
    /// down.
    pub(crate) fn send(&self, request: Request) -> Result<(), Request> {
        match lock(&self.tx).as_ref() {
            Some(tx) => tx.send(request).map_err(|e| e.0),
            None => Err(request),
        }
    }

    /// Sends a job to the sync workers; gives it back if the spool is shut
    /// down.
    pub(crate) fn send_sync(&self, job: SyncJob) -> Result<(), SyncJob> {
        match lock(&self.sync_tx).as_ref() {
            Some(tx) => tx.send(job).map_err(|e| e.0),
            None => Err(job),
        }
    }

    fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        // Sync workers first: they drain their queue and forward to the
        // committer, which must still be running.
        drop(lock(&self.sync_tx).take());
        let (syncers, committer) = {
            let mut threads = lock(&self.threads);
            (
                std::mem::take(&mut threads.syncers),
                threads.committer.take(),
            )
        };
        for handle in syncers {
            if handle.join().is_err() {
                tracing::error!("spool sync worker panicked");
            }
        }
        // With the last sender gone the committer drains its queue and exits.
        drop(lock(&self.tx).take());
        if let Some(handle) = committer
            && handle.join().is_err()
        {
            tracing::error!("spool committer panicked");
        }
        drop(lock(&self.lock_file).take());
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Free and total octets of the file system holding `path` (`statvfs`; free as a user other
/// than root sees it, so the blocks kept for root do not count). The spool and the Maildirs
/// ask before they take more (`[limits] min_free_space`).
pub fn disk_space(path: &Path) -> io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a NUL-terminated path and `st` a buffer of the right type; statvfs(3)
    // fills it when it returns 0.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so the struct is filled.
    Ok(space(&unsafe { st.assume_init() }))
}

/// Free (for a user other than root) and total octets of a `statvfs` answer.
// The casts are no-ops on 64-bit Linux, not on 32-bit targets.
#[allow(clippy::unnecessary_cast)]
fn space(st: &libc::statvfs) -> (u64, u64) {
    let unit = st.f_frsize as u64;
    (
        (st.f_bavail as u64).saturating_mul(unit),
        (st.f_blocks as u64).saturating_mul(unit),
    )
}

/// Creates `path` and any missing ancestors (mode 0700), then fsyncs the
/// parent of each directory created so the new entries are durable.
fn ensure_dir(path: &Path, fsync: bool) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut p = path;
    while !p.as_os_str().is_empty() && !p.is_dir() {
        missing.push(p);
        match p.parent() {
            Some(parent) => p = parent,
            None => break,
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    DirBuilder::new().recursive(true).mode(0o700).create(path)?;
    if fsync {
        // Deepest first: each directory's own entry lives in its parent.
        for created in missing {
            let parent = match created.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            File::open(parent)?.sync_all()?;
        }
    }
    Ok(())
}

/// Opens `dir/LOCK` and takes an exclusive, non-blocking `flock` on it; the
/// lock lasts as long as the returned file is open. The holder's pid is
/// written into the file for operators.
fn take_lock(dir: &Path) -> Result<File, SpoolError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(dir.join("LOCK"))?;
    // A lock held a moment longer than its owner wants (a process exiting, or a child forked
    // while the descriptor was open and not yet past its exec, which closes it) is waited for
    // briefly; a lock still held after that belongs to a running process.
    let mut tries = 0;
    loop {
        // SAFETY: `flock` only operates on the descriptor, which is valid for
        // the duration of the call because `file` is alive.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            break;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EWOULDBLOCK) if tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Some(libc::EWOULDBLOCK) => return Err(SpoolError::Locked(dir.to_path_buf())),
            _ => return Err(SpoolError::from(e)),
        }
    }
    file.set_len(0)?;
    writeln!(file, "{}", std::process::id())?;
    Ok(file)
}
