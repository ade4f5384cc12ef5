//! How a spool is opened: segment size, inline body limit, fsync.

/// Largest accepted [`SpoolOptions::inline_limit`]: an inline body is part
/// of one log record, and records are limited to 1 GiB.
pub const MAX_INLINE_LIMIT: usize = 256 << 20;

/// Tuning and safety options for [`Spool::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolOptions {
    /// Size in bytes after which the committer starts a new segment file.
    /// Bounds how much disk a few long-lived messages can pin, since a
    /// segment is deleted only when all its messages are done. A record
    /// larger than this still fits: it gets a segment to itself.
    /// Default 64 MiB.
    pub segment_size: u64,
    /// Bodies larger than this many bytes are streamed to their own file
    /// in `data/` instead of being kept in memory and written into the log,
    /// so memory use per session stays bounded and large messages do not
    /// delay other sessions' commits. Default 256 KiB.
    pub inline_limit: usize,
    /// Whether to `fsync` at all. Only tests and benchmarks of the rest of
    /// the system should set this to `false`: without it nothing survives a
    /// power failure. Default `true`.
    pub fsync: bool,
}

impl Default for SpoolOptions {
    fn default() -> SpoolOptions {
        SpoolOptions {
            segment_size: 64 << 20,
            inline_limit: 256 << 10,
            fsync: true,
        }
    }
}
