//! The spool's error type.

use std::io;
use std::path::PathBuf;

use crate::id::QueueId;

/// Errors returned by the spool.
///
/// For an SMTP server the rule of thumb is: any error from
/// [`Commit`](crate::Commit) means the message is *not* safely queued and the
/// client must get a temporary failure (`451`, or `452` for [`Full`](Self::Full)).
#[non_exhaustive]
#[derive(thiserror::Error, Debug)]
pub enum SpoolError {
    /// An I/O error other than a full disk (permissions, EIO, ...).
    #[error("spool I/O error: {0}")]
    Io(io::Error),
    /// The file system is full or a quota is exhausted (`ENOSPC`, `EDQUOT`).
    /// Retrying later may succeed once deliveries free space.
    #[error("spool disk full: {0}")]
    Full(io::Error),
    /// Data on disk is not what the spool wrote: a bad segment header, a
    /// record that fails its checksum where no crash can explain it, a data
    /// file that is missing or has the wrong size or checksum.
    #[error("spool corrupt: {0}")]
    Corrupt(String),
    /// No pending message has this id (never committed, or already done).
    #[error("message {0} is not in the spool")]
    NotFound(QueueId),
    /// The spool has been shut down (or its committer thread died); nothing
    /// more can be committed.
    #[error("spool is shut down")]
    Closed,
    /// Another process holds the spool directory's `LOCK` file
    /// (an exclusive `flock`), so this one must not write to it.
    #[error("spool directory {} is locked by another process", .0.display())]
    Locked(PathBuf),
    /// The options passed to [`Spool::open`](crate::Spool::open) are unusable.
    #[error("invalid spool options: {0}")]
    InvalidOptions(&'static str),
}

impl From<io::Error> for SpoolError {
    /// Classifies an I/O error: a full disk or exhausted quota becomes
    /// [`SpoolError::Full`], anything else [`SpoolError::Io`].
    fn from(e: io::Error) -> SpoolError {
        if is_full(&e) {
            SpoolError::Full(e)
        } else {
            SpoolError::Io(e)
        }
    }
}

/// Whether an I/O error means "no space left" (device full or quota).
fn is_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || e.kind() == io::ErrorKind::StorageFull
        || e.kind() == io::ErrorKind::QuotaExceeded
}

/// An equivalent copy of an I/O error (`io::Error` is not `Clone`), used
/// when one failed write must be reported to every commit in its batch.
/// The OS error code is kept, so classification and messages are the same.
pub(crate) fn copy_io_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}

impl SpoolError {
    /// An equivalent copy of this error, for reporting one failure to
    /// several waiters.
    pub(crate) fn duplicate(&self) -> SpoolError {
        match self {
            SpoolError::Io(e) => SpoolError::Io(copy_io_error(e)),
            SpoolError::Full(e) => SpoolError::Full(copy_io_error(e)),
            SpoolError::Corrupt(s) => SpoolError::Corrupt(s.clone()),
            SpoolError::NotFound(id) => SpoolError::NotFound(*id),
            SpoolError::Closed => SpoolError::Closed,
            SpoolError::Locked(p) => SpoolError::Locked(p.clone()),
            SpoolError::InvalidOptions(s) => SpoolError::InvalidOptions(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_and_edquot_map_to_full() {
        for code in [libc::ENOSPC, libc::EDQUOT] {
            let e = SpoolError::from(io::Error::from_raw_os_error(code));
            assert!(matches!(e, SpoolError::Full(_)), "{e:?}");
            assert!(matches!(e.duplicate(), SpoolError::Full(_)));
        }
        let e = SpoolError::from(io::Error::from_raw_os_error(libc::EIO));
        assert!(matches!(e, SpoolError::Io(_)), "{e:?}");
        let copy = e.duplicate();
        assert_eq!(copy.to_string(), e.to_string());
    }
}
