//! Startup recovery: rebuild the index from the segments on disk.
//!
//! Segments are scanned in order; Message records add index entries, Done
//! records remove them. Scanning a segment stops at the first record that is
//! truncated or fails its checksum:
//!
//! * in the **last** segment this is the expected result of a crash during a
//!   write: none of the records from there on were acknowledged (a commit
//!   completes only after the `fdatasync` that covers it, and records are
//!   written in order), so the tail is logged with `warn`, cut off, and the
//!   file is never appended to again (the committer starts a new segment);
//! * in an **older** segment it is not explained by a crash (media
//!   corruption, or a failed write that could not be rolled back): it is
//!   logged with `error`, the rest of that segment is ignored, and the
//!   segment is pinned (never deleted automatically) for an operator to
//!   inspect.
//!
//! A segment may end in zeros: the committer keeps the segment it appends to
//! zero-filled ahead of its last record (see `committer`). Zeros from a
//! record boundary to the end of the file are read as the end of the
//! segment, in any segment, and cut off.
//!
//! Finally `data/` is reconciled with the index: data files no pending
//! message refers to (left by a crash before commit, or whose Done record
//! was written but whose deletion was lost) are removed, and missing or
//! wrongly sized ones are reported.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use crate::error::SpoolError;
use crate::id::QueueId;
use crate::index::{BodyLoc, Entry, Index, SegmentInfo};
use crate::record::{
    BodyRef, FORMAT_VERSION, FRAME_HEADER_LEN, FrameError, Record, SEGMENT_HEADER_LEN,
    SEGMENT_MAGIC, decode_payload, parse_frame_header, verify_payload,
};
use crate::shared::{parse_segment_name, segment_path};

/// What recovery found.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// Index of pending messages and existing segments (all sealed).
    pub index: Index,
    /// Number for the first segment this run will create.
    pub next_segment: u64,
}

/// How the scan of one segment ended.
enum ScanEnd {
    /// Every byte was a valid record.
    Clean,
    /// Valid records up to `offset`, zeros from there to the end of the file.
    ZeroTail {
        /// First zero byte.
        offset: u64,
    },
    /// Invalid data starting at `offset`.
    Bad {
        /// First byte not trusted.
        offset: u64,
        /// Why.
        reason: String,
    },
}

/// Rebuilds the index from `log_dir` and cleans up `data_dir`. `fsync`
/// says whether to sync truncations (the spool's `fsync` option).
pub(crate) fn recover(
    log_dir: &Path,
    data_dir: &Path,
    fsync: bool,
) -> Result<Recovered, SpoolError> {
    let mut numbers = Vec::new();
    for entry in std::fs::read_dir(log_dir)? {
        let entry = entry?;
        match entry.file_name().to_str().and_then(parse_segment_name) {
            Some(n) => numbers.push(n),
            None => {
                tracing::warn!(file = ?entry.path(), "ignoring unexpected file in spool log directory")
            }
        }
    }
    numbers.sort_unstable();
    let last = numbers.last().copied();

    let mut index = Index::default();
    let mut buf = Vec::new();
    for &number in &numbers {
        let path = segment_path(log_dir, number);
        let file = Arc::new(OpenOptions::new().read(true).write(true).open(&path)?);
        let file_len = file.metadata()?.len();
        // Registered before the scan so its records can count as live in it.
        index
            .segments
            .insert(number, SegmentInfo::new(Arc::clone(&file), true));
        let end = scan_records(&file, file_len, number, &mut index, &mut buf)
            .map_err(|e| annotate(e, &path))?;
        let (offset, reason) = match end {
            ScanEnd::Clean => continue,
            ScanEnd::ZeroTail { offset } => {
                // The segment being written when the server stopped has one, unless it was cut
                // at shutdown; an older one only when the cut at its sealing was lost.
                if Some(number) == last {
                    tracing::debug!(segment = %path.display(), offset, "spool: cutting off the zero tail of the last segment");
                } else {
                    tracing::info!(segment = %path.display(), offset, zero_bytes = file_len - offset, "spool: cutting off the zero tail of a sealed segment");
                }
                file.set_len(offset)?;
                if fsync {
                    file.sync_data()?;
                }
                continue;
            }
            ScanEnd::Bad { offset, reason } => (offset, reason),
        };
        let ignored = file_len - offset;
        if Some(number) == last {
            tracing::warn!(
                segment = %path.display(), offset, ignored_bytes = ignored, %reason,
                "spool: ignoring torn tail of last segment (crash during write); truncating it"
            );
            // A segment without a valid header is cut to nothing and later
            // deleted as empty.
            let keep = if offset <= SEGMENT_HEADER_LEN {
                0
            } else {
                offset
            };
            file.set_len(keep)?;
            if fsync {
                file.sync_data()?;
            }
        } else if file_len == 0 {
            // Created, then a crash before anything was written: harmless,
            // and deleted as empty.
        } else {
            tracing::error!(
                segment = %path.display(), offset, ignored_bytes = ignored, %reason,
                "spool: corrupt record in the middle of the log; ignoring the rest of this segment and keeping the file for inspection"
            );
            if let Some(info) = index.segments.get_mut(&number) {
                info.pinned = true;
            }
        }
    }

    reconcile_data_dir(data_dir, &index, fsync)?;
    tracing::info!(
        pending = index.messages.len(),
        segments = index.segments.len(),
        "spool recovered"
    );
    let next_segment = last.map_or(1, |n| n + 1);
    Ok(Recovered {
        index,
        next_segment,
    })
}

/// Adds the segment's path to an error message where that helps.
fn annotate(e: SpoolError, path: &Path) -> SpoolError {
    match e {
        SpoolError::Corrupt(msg) => SpoolError::Corrupt(format!("{}: {msg}", path.display())),
        other => other,
    }
}

/// Applies the valid records of one segment (already registered in
/// `index`) to `index`, and says how the scan ended.
fn scan_records(
    file: &File,
    file_len: u64,
    number: u64,
    index: &mut Index,
    buf: &mut Vec<u8>,
) -> Result<ScanEnd, SpoolError> {
    let bad = |offset: u64, reason: &str| {
        Ok(ScanEnd::Bad {
            offset,
            reason: reason.to_owned(),
        })
    };
    if file_len < SEGMENT_HEADER_LEN {
        return bad(0, "segment shorter than its header");
    }
    let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
    file.read_exact_at(&mut header, 0)?;
    if header.iter().all(|&b| b == 0) {
        return bad(0, "segment header is zero-filled");
    }
    if header[..8] != SEGMENT_MAGIC {
        return Err(SpoolError::Corrupt(
            "not a spool segment (bad magic)".into(),
        ));
    }
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if version != FORMAT_VERSION {
        return Err(SpoolError::Corrupt(format!(
            "unsupported segment format version {version}"
        )));
    }

    let mut reader = BufReader::with_capacity(1 << 20, file);
    reader.seek(SeekFrom::Start(SEGMENT_HEADER_LEN))?;
    let mut offset = SEGMENT_HEADER_LEN;
    while offset < file_len {
        let remaining = file_len - offset;
        if remaining < FRAME_HEADER_LEN as u64 {
            return bad(offset, &FrameError::Truncated.to_string());
        }
        let mut frame_header = [0u8; FRAME_HEADER_LEN];
        reader.read_exact(&mut frame_header)?;
        let (len, crc) = match parse_frame_header(&frame_header) {
            Ok(h) => h,
            Err(_) if frame_header == [0; FRAME_HEADER_LEN] && zeros_to_end(&mut reader)? => {
                return Ok(ScanEnd::ZeroTail { offset });
            }
            Err(e) => return bad(offset, &e.to_string()),
        };
        if u64::from(len) > remaining - FRAME_HEADER_LEN as u64 {
            return bad(offset, &FrameError::Truncated.to_string());
        }
        buf.resize(len as usize, 0);
        reader.read_exact(buf)?;
        if let Err(e) = verify_payload(len, crc, buf) {
            return bad(offset, &e.to_string());
        }
        let record = match decode_payload(buf) {
            Ok(r) => r,
            Err(e) => return bad(offset, &e.to_string()),
        };
        let frame_len = FRAME_HEADER_LEN as u32 + len;
        apply(index, record, number, offset, frame_len);
        offset += u64::from(frame_len);
    }
    Ok(ScanEnd::Clean)
}

/// Whether everything `reader` has left is zeros.
fn zeros_to_end(reader: &mut impl Read) -> std::io::Result<bool> {
    let mut chunk = [0u8; 8192];
    loop {
        match reader.read(&mut chunk)? {
            0 => return Ok(true),
            n if chunk[..n].iter().any(|&b| b != 0) => return Ok(false),
            _ => {}
        }
    }
}

/// Applies one valid record to the index.
fn apply(index: &mut Index, record: Record<'_>, number: u64, offset: u64, frame_len: u32) {
    match record {
        Record::Message(m) => {
            let body = match m.body {
                BodyRef::Inline(b) => BodyLoc::Inline {
                    len: b.len() as u64,
                },
                BodyRef::File { len, crc } => BodyLoc::File { len, crc },
            };
            let entry = Entry {
                segment: number,
                offset,
                len: frame_len,
                body,
            };
            // A later record of a pending message supersedes the earlier one (an envelope
            // update); the log is replayed in order, so the last one wins.
            let ok = if index.messages.contains_key(&m.id) {
                index.replace_message(m.id, entry)
            } else {
                index.insert_message(m.id, entry)
            };
            if !ok {
                tracing::warn!(id = %m.id, segment = number, offset, "Message record ignored");
            }
        }
        Record::Done { id, .. } => {
            // A Done whose Message is not found refers to a segment already
            // deleted: nothing to do.
            if let Some(entry) = index.remove_message(id) {
                index.add_done_ref(number, entry.segment);
            }
        }
        Record::Unknown { kind } => {
            tracing::debug!(
                kind,
                segment = number,
                offset,
                "skipping spool record of unknown kind"
            );
        }
    }
}

/// Removes data files no pending message refers to and reports pending
/// messages whose data file is missing or has the wrong size.
fn reconcile_data_dir(data_dir: &Path, index: &Index, fsync: bool) -> Result<(), SpoolError> {
    let mut present: HashSet<QueueId> = HashSet::new();
    let mut removed = 0usize;
    for entry in std::fs::read_dir(data_dir)? {
        let entry = entry?;
        let path = entry.path();
        let Some(id) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<QueueId>().ok())
        else {
            tracing::warn!(file = %path.display(), "ignoring unexpected file in spool data directory");
            continue;
        };
        match index.messages.get(&id).map(|e| e.body) {
            Some(BodyLoc::File { len, .. }) => {
                present.insert(id);
                let actual = entry.metadata()?.len();
                if actual != len {
                    tracing::error!(%id, expected = len, actual, "spool data file has the wrong size");
                }
            }
            _ => {
                tracing::debug!(file = %path.display(), "removing orphaned spool data file");
                std::fs::remove_file(&path)?;
                removed += 1;
            }
        }
    }
    for (id, entry) in &index.messages {
        if matches!(entry.body, BodyLoc::File { .. }) && !present.contains(id) {
            tracing::error!(%id, "spool data file of a pending message is missing");
        }
    }
    if removed > 0 {
        tracing::info!(removed, "removed orphaned spool data files");
        if fsync {
            File::open(data_dir)?.sync_all()?;
        }
    }
    Ok(())
}
