//! State shared by the public handles, the committer and the sync workers.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::id::QueueId;
use crate::index::Index;
use crate::options::SpoolOptions;

/// Paths, directory handles, options and the index of one open spool.
#[derive(Debug)]
pub(crate) struct Shared {
    /// `dir/log`: the segment files.
    pub log_dir: PathBuf,
    /// `dir/data`: bodies too large to inline, one file per message.
    pub data_dir: PathBuf,
    /// Open handle on `log/`, fsync'd after creating or deleting segments
    /// so those directory entries are durable.
    pub log_dir_handle: File,
    /// Open handle on `data/`, fsync'd after a data file is complete so its
    /// directory entry is durable before the Message record refers to it.
    pub data_dir_handle: File,
    /// Options the spool was opened with.
    pub opts: SpoolOptions,
    /// The in-memory index; one mutex, held only briefly.
    pub index: Mutex<Index>,
    /// Messages being received: begun ([`Incoming`](crate::Incoming)) and neither committed
    /// nor dropped yet. Their commits are likely to come soon: the committer may wait a
    /// moment for them, so that one sync serves them too.
    pub receiving: AtomicUsize,
}

impl Shared {
    /// Locks the index, ignoring poisoning (the index stays consistent
    /// because no code panics while holding it in a half-updated state).
    pub(crate) fn lock_index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Path of segment `number`.
    pub(crate) fn segment_path(&self, number: u64) -> PathBuf {
        segment_path(&self.log_dir, number)
    }

    /// Path of the data file of message `id`.
    pub(crate) fn data_path(&self, id: QueueId) -> PathBuf {
        self.data_dir.join(id.to_string())
    }

    /// `fsync`s a file's data if the spool is configured to sync.
    pub(crate) fn sync_data(&self, file: &File) -> io::Result<()> {
        if self.opts.fsync {
            file.sync_data()
        } else {
            Ok(())
        }
    }

    /// `fsync`s a directory handle if the spool is configured to sync.
    pub(crate) fn sync_dir(&self, dir: &File) -> io::Result<()> {
        if self.opts.fsync {
            dir.sync_all()
        } else {
            Ok(())
        }
    }

    /// Deletes the segments that have become garbage (see
    /// [`Index::collectable`]), oldest first, making each deletion durable
    /// before the next, and stopping at the first failure.
    pub(crate) fn collect_garbage(&self) {
        let victims = {
            let mut idx = self.lock_index();
            idx.gc_wanted = false;
            idx.collectable()
        };
        for number in victims {
            let path = self.segment_path(number);
            let result = match std::fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => self.sync_dir(&self.log_dir_handle),
            };
            if let Err(e) = result {
                tracing::warn!(segment = %path.display(), error = %e, "cannot delete spent spool segment; will retry");
                self.lock_index().gc_wanted = true;
                return;
            }
            tracing::debug!(segment = %path.display(), "deleted spent spool segment");
            self.lock_index().segments.remove(&number);
        }
    }
}

/// Path of segment `number` under `log_dir`: 16 zero-padded decimal digits,
/// so a plain directory listing is in log order.
pub(crate) fn segment_path(log_dir: &Path, number: u64) -> PathBuf {
    log_dir.join(format!("{number:016}.seg"))
}

/// Parses a segment file name back to its number (`None` for other files).
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip() {
        let p = segment_path(Path::new("/x"), 42);
        assert_eq!(p, Path::new("/x/0000000000000042.seg"));
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        assert_eq!(parse_segment_name(name), Some(42));
        assert_eq!(parse_segment_name("7.seg"), Some(7));
        assert_eq!(parse_segment_name(".seg"), None);
        assert_eq!(parse_segment_name("12.seg.tmp"), None);
        assert_eq!(parse_segment_name("+1.seg"), None);
    }
}
