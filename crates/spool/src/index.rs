//! In-memory index of the spool: where each pending message's record is,
//! and the bookkeeping that decides when a segment file may be deleted.
//!
//! # Segment garbage collection
//!
//! A sealed segment can be deleted when no live message record is in it
//! **and** deleting it cannot resurrect a message. The second condition is
//! about Done records: if segment 7 holds the Done record of a message whose
//! Message record is in segment 3, deleting 7 while 3 still exists would make
//! recovery see the message in 3 without its Done, so it would be delivered
//! again. Each segment therefore remembers which older segments its Done
//! records refer to (`refs`), and is only deleted once all of those are gone.
//! Segments are deleted oldest first, so a chain of such dependencies is
//! resolved in one pass.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::sync::Arc;

use crate::id::QueueId;

/// Where a pending message's body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyLoc {
    /// In the Message record.
    Inline {
        /// Body length in bytes.
        len: u64,
    },
    /// In `data/<id>`.
    File {
        /// Expected size of the data file.
        len: u64,
        /// CRC-32C of the body, checked when the body is read to its end.
        crc: u32,
    },
}

impl BodyLoc {
    /// Body length in bytes.
    pub(crate) fn len(self) -> u64 {
        match self {
            BodyLoc::Inline { len } | BodyLoc::File { len, .. } => len,
        }
    }
}

/// Index entry of one pending (committed, not done) message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Segment number holding the Message record.
    pub segment: u64,
    /// Byte offset of the record's frame in the segment (for `pread`).
    pub offset: u64,
    /// Length of the whole frame, header included.
    pub len: u32,
    /// Where the body is (also tells `mark_done` whether a data file must go).
    pub body: BodyLoc,
}

/// Bookkeeping for one segment file.
#[derive(Debug)]
pub(crate) struct SegmentInfo {
    /// Open handle used by readers (`pread`); kept here so a reader never
    /// has to open files, and so a reader racing with deletion still reads
    /// from the (unlinked but open) file.
    pub file: Arc<File>,
    /// Number of pending messages whose Message record is in this segment.
    pub live: u64,
    /// Older segments holding messages whose Done records are in this one;
    /// this segment must outlive them (see the module docs).
    pub refs: BTreeSet<u64>,
    /// No more records will be appended (rotated, or found at startup).
    pub sealed: bool,
    /// Recovery found corruption in the middle of this segment; it is kept
    /// for an operator to inspect and never deleted automatically.
    pub pinned: bool,
}

impl SegmentInfo {
    /// A segment with no records accounted yet.
    pub(crate) fn new(file: Arc<File>, sealed: bool) -> SegmentInfo {
        SegmentInfo {
            file,
            live: 0,
            refs: BTreeSet::new(),
            sealed,
            pinned: false,
        }
    }
}

/// The whole in-memory state shared by sessions, readers and the committer
/// (behind one mutex; every operation on it is short).
#[derive(Debug, Default)]
pub(crate) struct Index {
    /// Pending messages, ordered by id, i.e. by arrival time.
    pub messages: BTreeMap<QueueId, Entry>,
    /// Every segment file that exists, by number.
    pub segments: BTreeMap<u64, SegmentInfo>,
    /// Set when a segment may have become deletable; the committer then
    /// runs a collection pass after its current batch.
    pub gc_wanted: bool,
}

impl Index {
    /// Records a committed message. Returns `false` (and changes nothing) if
    /// the id is already present or its segment is unknown.
    pub(crate) fn insert_message(&mut self, id: QueueId, entry: Entry) -> bool {
        if self.messages.contains_key(&id) {
            return false;
        }
        let Some(seg) = self.segments.get_mut(&entry.segment) else {
            return false;
        };
        seg.live += 1;
        self.messages.insert(id, entry);
        true
    }

    /// Points a pending message at a newer record of itself (same id and body, new envelope).
    /// The newer record's segment must outlive the older one's: if the older segment survived
    /// and the newer were deleted, recovery would bring back the outdated envelope. Returns
    /// `false` (and changes nothing) if the message is not pending.
    pub(crate) fn replace_message(&mut self, id: QueueId, entry: Entry) -> bool {
        if !self.messages.contains_key(&id) || !self.segments.contains_key(&entry.segment) {
            return false;
        }
        let new_segment = entry.segment;
        if let Some(old) = self.remove_message(id) {
            self.add_done_ref(new_segment, old.segment);
        }
        self.insert_message(id, entry)
    }

    /// Forgets a message (it is done). Returns its entry if it was pending.
    pub(crate) fn remove_message(&mut self, id: QueueId) -> Option<Entry> {
        let entry = self.messages.remove(&id)?;
        if let Some(seg) = self.segments.get_mut(&entry.segment) {
            seg.live = seg.live.saturating_sub(1);
            if seg.live == 0 && seg.sealed {
                self.gc_wanted = true;
            }
        }
        Some(entry)
    }

    /// Notes that segment `done_segment` holds a Done record for a message
    /// whose Message record is in `message_segment`.
    pub(crate) fn add_done_ref(&mut self, done_segment: u64, message_segment: u64) {
        if done_segment == message_segment || !self.segments.contains_key(&message_segment) {
            return;
        }
        if let Some(seg) = self.segments.get_mut(&done_segment) {
            seg.refs.insert(message_segment);
        }
    }

    /// Marks a segment as sealed (no more appends).
    pub(crate) fn seal(&mut self, number: u64) {
        if let Some(seg) = self.segments.get_mut(&number) {
            seg.sealed = true;
            if seg.live == 0 {
                self.gc_wanted = true;
            }
        }
    }

    /// Segments that may be deleted now, oldest first. A segment qualifies
    /// if it is sealed, not pinned, has no live messages, and every segment
    /// it refers to is gone or itself earlier in the returned list. The
    /// caller must delete them in order and stop at the first failure.
    pub(crate) fn collectable(&self) -> Vec<u64> {
        let mut out: Vec<u64> = Vec::new();
        for (&number, seg) in &self.segments {
            let dead = seg.sealed && !seg.pinned && seg.live == 0;
            let free = seg
                .refs
                .iter()
                .all(|r| !self.segments.contains_key(r) || out.binary_search(r).is_ok());
            if dead && free {
                out.push(number);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_with_segments(n: u64) -> Index {
        let mut idx = Index::default();
        for number in 1..=n {
            let file = Arc::new(tempfile::tempfile().expect("tempfile"));
            idx.segments.insert(number, SegmentInfo::new(file, true));
        }
        idx
    }

    fn entry(segment: u64) -> Entry {
        Entry {
            segment,
            offset: 16,
            len: 40,
            body: BodyLoc::Inline { len: 0 },
        }
    }

    #[test]
    fn live_counts_follow_inserts_and_removes() {
        let mut idx = index_with_segments(1);
        let a = QueueId::from_parts(1, 1, 1);
        assert!(idx.insert_message(a, entry(1)));
        assert!(!idx.insert_message(a, entry(1)), "duplicate accepted");
        assert!(
            !idx.insert_message(QueueId::from_parts(2, 1, 1), entry(9)),
            "unknown segment"
        );
        assert_eq!(idx.segments[&1].live, 1);
        assert!(idx.collectable().is_empty());
        assert_eq!(idx.remove_message(a), Some(entry(1)));
        assert_eq!(idx.remove_message(a), None);
        assert!(idx.gc_wanted);
        assert_eq!(idx.collectable(), vec![1]);
    }

    #[test]
    fn segment_with_done_records_outlives_the_messages_segment() {
        // Message m in segment 1 stays pending; message d in segment 1 is
        // done, its Done record in segment 2. Segment 2 has no live messages
        // but must not go while segment 1 exists.
        let mut idx = index_with_segments(3);
        let m = QueueId::from_parts(1, 1, 1);
        let d = QueueId::from_parts(1, 1, 2);
        idx.insert_message(m, entry(1));
        idx.insert_message(d, entry(1));
        idx.remove_message(d);
        idx.add_done_ref(2, 1);
        assert_eq!(
            idx.collectable(),
            vec![3],
            "segment 2 must wait for segment 1"
        );
        idx.remove_message(m);
        assert_eq!(
            idx.collectable(),
            vec![1, 2, 3],
            "dependencies resolve in one pass"
        );
    }

    #[test]
    fn unsealed_and_pinned_segments_are_kept() {
        let mut idx = index_with_segments(2);
        if let Some(s) = idx.segments.get_mut(&1) {
            s.pinned = true;
        }
        if let Some(s) = idx.segments.get_mut(&2) {
            s.sealed = false;
        }
        assert!(idx.collectable().is_empty());
        idx.seal(2);
        assert_eq!(idx.collectable(), vec![2]);
    }
}
