//! Receiving one message body: [`Incoming`].

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::Inner;
use crate::commit::{self, Commit};
use crate::committer::{MessageRequest, Request};
use crate::crc::Crc32c;
use crate::error::SpoolError;
use crate::id::QueueId;
use crate::index::BodyLoc;
use crate::record::{BodyRef, MessageRecord, encode_message};
use crate::syncer::SyncJob;

/// Write buffer size for spill files: large enough that a session sending
/// small chunks does not make a system call per chunk.
const SPILL_BUFFER: usize = 64 * 1024;

/// A message body being received.
///
/// Bytes are buffered in memory up to
/// [`SpoolOptions::inline_limit`](crate::SpoolOptions::inline_limit);
/// past that, everything is streamed to
/// `data/<id>`, so a huge message is never held in memory. Nothing is
/// durable until [`commit`](Incoming::commit)'s [`Commit`] resolves.
/// Dropping an `Incoming` without committing discards the message and
/// removes its data file.
#[derive(Debug)]
pub struct Incoming {
    /// The spool (kept alive while a message is being received).
    inner: Arc<Inner>,
    /// Id the message will be stored under.
    id: QueueId,
    /// Body bytes received so far.
    len: u64,
    /// Body bytes while the body is small enough to be inline.
    buf: Vec<u8>,
    /// The data file once the body has outgrown `inline_limit`.
    spill: Option<Spill>,
    /// Running CRC of the body, stored in the record so a data file can be
    /// verified when read back.
    crc: Crc32c,
    /// The first write error; later writes and the commit fail with it.
    failed: Option<SpoolError>,
    /// Counted in `Shared::receiving` (until its commit is sent or it is dropped).
    counted: bool,
}

/// A body being streamed to its own file.
#[derive(Debug)]
struct Spill {
    /// Buffered writer on `data/<id>`.
    writer: BufWriter<File>,
    /// Its path, to remove it if the message is abandoned.
    path: PathBuf,
}

impl Incoming {
    pub(crate) fn new(inner: Arc<Inner>, id: QueueId) -> Incoming {
        inner.shared.receiving.fetch_add(1, Ordering::Relaxed);
        Incoming {
            inner,
            id,
            len: 0,
            buf: Vec::new(),
            spill: None,
            crc: Crc32c::new(),
            failed: None,
            counted: true,
        }
    }

    /// No longer counts the message as being received (once).
    fn uncount(&mut self) {
        if std::mem::take(&mut self.counted) {
            self.inner.shared.receiving.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The id the message will be stored under.
    pub fn id(&self) -> QueueId {
        self.id
    }

    /// Appends body bytes. After an error the message cannot be saved:
    /// later writes and [`commit`](Self::commit) return the same error.
    /// A full disk is reported as [`SpoolError::Full`].
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), SpoolError> {
        if let Some(e) = &self.failed {
            return Err(e.duplicate());
        }
        match self.write_inner(bytes) {
            Ok(()) => {
                self.crc.update(bytes);
                self.len += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                let e = SpoolError::from(e);
                self.failed = Some(e.duplicate());
                Err(e)
            }
        }
    }

    fn write_inner(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some(spill) = &mut self.spill {
            return spill.writer.write_all(bytes);
        }
        if self.buf.len() + bytes.len() <= self.inner.shared.opts.inline_limit {
            self.buf.extend_from_slice(bytes);
            return Ok(());
        }
        let path = self.inner.shared.data_path(self.id);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        // Stored before writing so that Drop removes the file on failure.
        let spill = self.spill.insert(Spill {
            writer: BufWriter::with_capacity(SPILL_BUFFER, file),
            path,
        });
        spill.writer.write_all(&self.buf)?;
        spill.writer.write_all(bytes)?;
        self.buf = Vec::new();
        Ok(())
    }

    /// Body bytes received so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no body bytes have been received.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Hands the message, with its opaque `envelope`, to the committer.
    ///
    /// Never blocks on disk I/O: a spilled body's data file is synced by a
    /// worker thread before the record is committed. The returned
    /// [`Commit`] resolves once everything is durable; only then may the
    /// server acknowledge the message.
    pub fn commit(mut self, envelope: Vec<u8>) -> Commit {
        // Before the request goes: the committer must not wait for this message itself.
        self.uncount();
        if let Some(e) = self.failed.take() {
            return Commit::ready(Err(e));
        }
        let arrival_us = crate::now_micros();
        let (completer, commit) = commit::channel();
        match self.spill.take() {
            None => {
                let body = std::mem::take(&mut self.buf);
                let record = MessageRecord {
                    id: self.id,
                    arrival_us,
                    envelope: &envelope,
                    body: BodyRef::Inline(&body),
                };
                let frame = match encode_message(&record) {
                    Ok(f) => f,
                    Err(e) => return Commit::ready(Err(invalid_input(e))),
                };
                let request = MessageRequest {
                    id: self.id,
                    frame,
                    body: BodyLoc::Inline { len: self.len },
                    data_path: None,
                    completer,
                    replace: false,
                };
                // On failure the request is dropped, which resolves the
                // commit to `Closed`.
                let _ = self.inner.send(Request::Message(request));
            }
            Some(Spill { writer, path }) => {
                let file = match writer.into_inner() {
                    Ok(f) => f,
                    Err(e) => {
                        let _ = std::fs::remove_file(&path);
                        return Commit::ready(Err(e.into_error().into()));
                    }
                };
                let crc = self.crc.finish();
                let record = MessageRecord {
                    id: self.id,
                    arrival_us,
                    envelope: &envelope,
                    body: BodyRef::File { len: self.len, crc },
                };
                let frame = match encode_message(&record) {
                    Ok(f) => f,
                    Err(e) => {
                        let _ = std::fs::remove_file(&path);
                        return Commit::ready(Err(invalid_input(e)));
                    }
                };
                let request = MessageRequest {
                    id: self.id,
                    frame,
                    body: BodyLoc::File { len: self.len, crc },
                    data_path: Some(path),
                    completer,
                    replace: false,
                };
                // If the spool is shut down the job comes back: remove its
                // file; dropping the job resolves the commit to `Closed`.
                if let Err(job) = self.inner.send_sync(SyncJob { file, request })
                    && let Some(path) = &job.request.data_path
                {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        commit
    }
}

fn invalid_input(e: impl std::fmt::Display) -> SpoolError {
    SpoolError::Io(io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
}

impl Drop for Incoming {
    /// Discards an uncommitted message: its data file is removed.
    fn drop(&mut self) {
        self.uncount();
        if let Some(Spill { writer, path }) = self.spill.take() {
            // `into_parts` drops the buffered bytes instead of writing them.
            drop(writer.into_parts());
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(file = %path.display(), error = %e, "cannot remove abandoned spool data file");
            }
        }
    }
}
