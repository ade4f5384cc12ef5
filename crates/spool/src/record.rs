//! On-disk format of segments and records.
//!
//! A segment file (`log/<number>.seg`) is a 16-byte header followed by
//! records appended back to back:
//!
//! ```text
//! segment header: magic "RLSPOOL\0" (8) | format version u32 LE | reserved u32 (0)
//! record frame:   payload_len u32 LE | crc32c u32 LE | payload (payload_len bytes)
//! ```
//!
//! The CRC covers the 4 length bytes and the payload, so a torn write, a
//! zero-filled tail (a size extended by the file system before the data
//! reached the disk) or random garbage is detected. A zero length is never
//! valid. Every payload starts with the same prefix:
//!
//! ```text
//! kind u8 | flags u8 (reserved, written 0, ignored when read) | queue id u128 LE (16)
//! ```
//!
//! followed by the kind-specific fields (all integers little-endian):
//!
//! ```text
//! Message (1): arrival_us u64 | envelope_len u32 | envelope
//!              | body tag u8 = 0 (inline): body_len u64 | body
//!              | body tag u8 = 1 (file data/<id>): body_len u64 | body crc32c u32
//! Done    (2): done_at_us u64
//! ```
//!
//! Kinds other than these are reserved for future records (per-recipient
//! status, hold, delete, ...). Because every record is length-prefixed, an
//! older reader skips kinds it does not know instead of failing.

use crate::crc::Crc32c;
use crate::id::QueueId;

/// First 8 bytes of every segment file.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"RLSPOOL\0";
/// Current segment format version.
pub(crate) const FORMAT_VERSION: u32 = 1;
/// Size of the segment header; the first record starts here.
pub(crate) const SEGMENT_HEADER_LEN: u64 = 16;
/// Size of a record frame's header (length + CRC).
pub(crate) const FRAME_HEADER_LEN: usize = 8;
/// Upper bound on a payload: anything larger is a corrupt length field.
/// Inline bodies are limited by `SpoolOptions::inline_limit` and envelopes
/// are small, so 1 GiB leaves ample room.
pub(crate) const MAX_PAYLOAD: u32 = 1 << 30;

/// Record kind: a message was accepted.
const KIND_MESSAGE: u8 = 1;
/// Record kind: a message was delivered (or dropped) and may be forgotten.
const KIND_DONE: u8 = 2;

/// Body tag: body bytes follow in the record.
const BODY_INLINE: u8 = 0;
/// Body tag: body is in `data/<id>`.
const BODY_FILE: u8 = 1;

/// Bytes before the kind-specific part: kind, flags, id.
const PREFIX_LEN: usize = 1 + 1 + 16;

/// The segment header as written at the start of each segment file.
pub(crate) fn segment_header() -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    h[..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

/// Where a message's body lives, as recorded in its Message record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyRef<'a> {
    /// The body bytes are in the record itself.
    Inline(&'a [u8]),
    /// The body is in `data/<id>`; `len` and `crc` let readers verify it.
    File {
        /// Body length in bytes (the data file's expected size).
        len: u64,
        /// CRC-32C of the whole body.
        crc: u32,
    },
}

/// A decoded Message record, borrowing from the frame buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MessageRecord<'a> {
    /// The message's queue id.
    pub id: QueueId,
    /// Acceptance time, microseconds since the Unix epoch.
    pub arrival_us: u64,
    /// Opaque envelope bytes produced by the server.
    pub envelope: &'a [u8],
    /// Where the body is.
    pub body: BodyRef<'a>,
}

/// A decoded record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record<'a> {
    /// A message was accepted.
    Message(MessageRecord<'a>),
    /// A message was finished with.
    Done {
        /// The finished message.
        id: QueueId,
        /// When `mark_done` was called, microseconds since the epoch
        /// (kept for audits; recovery does not need it).
        at_us: u64,
    },
    /// A record of a kind this version does not know; skipped.
    Unknown {
        /// The kind byte.
        kind: u8,
    },
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    /// The buffer ends before the frame does (torn write at the end of a log).
    #[error("record truncated")]
    Truncated,
    /// The length field is zero or implausibly large.
    #[error("record length {0} out of range")]
    BadLength(u32),
    /// The checksum does not match.
    #[error("record checksum mismatch")]
    Checksum,
    /// The checksum matches but the fields are inconsistent (a bug or a
    /// newer, incompatible writer).
    #[error("malformed record: {0}")]
    Malformed(&'static str),
}

/// Encodes a Message record into a complete frame.
///
/// Fails only if the envelope is 4 GiB or more, or the whole payload
/// exceeds [`MAX_PAYLOAD`].
pub(crate) fn encode_message(rec: &MessageRecord<'_>) -> Result<Vec<u8>, FrameError> {
    let env_len = u32::try_from(rec.envelope.len())
        .map_err(|_| FrameError::Malformed("envelope too large"))?;
    let body_part = match rec.body {
        BodyRef::Inline(b) => 1 + 8 + b.len(),
        BodyRef::File { .. } => 1 + 8 + 4,
    };
    let payload_len = PREFIX_LEN + 8 + 4 + rec.envelope.len() + body_part;
    let payload_len32 = u32::try_from(payload_len)
        .ok()
        .filter(|&l| l <= MAX_PAYLOAD)
        .ok_or(FrameError::BadLength(u32::MAX))?;
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + payload_len);
    out.extend_from_slice(&payload_len32.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // CRC, filled in below
    put_prefix(&mut out, KIND_MESSAGE, rec.id);
    out.extend_from_slice(&rec.arrival_us.to_le_bytes());
    out.extend_from_slice(&env_len.to_le_bytes());
    out.extend_from_slice(rec.envelope);
    match rec.body {
        BodyRef::Inline(b) => {
            out.push(BODY_INLINE);
            out.extend_from_slice(&(b.len() as u64).to_le_bytes());
            out.extend_from_slice(b);
        }
        BodyRef::File { len, crc } => {
            out.push(BODY_FILE);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&crc.to_le_bytes());
        }
    }
    debug_assert_eq!(out.len(), FRAME_HEADER_LEN + payload_len);
    seal(&mut out);
    Ok(out)
}

/// Encodes a Done record into a complete frame.
pub(crate) fn encode_done(id: QueueId, at_us: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + PREFIX_LEN + 8);
    out.extend_from_slice(&((PREFIX_LEN + 8) as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    put_prefix(&mut out, KIND_DONE, id);
    out.extend_from_slice(&at_us.to_le_bytes());
    seal(&mut out);
    out
}

fn put_prefix(out: &mut Vec<u8>, kind: u8, id: QueueId) {
    out.push(kind);
    out.push(0); // flags
    out.extend_from_slice(&id.to_bits().to_le_bytes());
}

/// Computes the CRC over length + payload and stores it in the frame header.
fn seal(frame: &mut [u8]) {
    let crc = frame_crc(&frame[0..4], &frame[FRAME_HEADER_LEN..]);
    frame[4..8].copy_from_slice(&crc.to_le_bytes());
}

fn frame_crc(len_bytes: &[u8], payload: &[u8]) -> u32 {
    let mut h = Crc32c::new();
    h.update(len_bytes);
    h.update(payload);
    h.finish()
}

/// Parses a frame header, returning `(payload_len, crc)`.
pub(crate) fn parse_frame_header(hdr: &[u8; FRAME_HEADER_LEN]) -> Result<(u32, u32), FrameError> {
    let len = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
    let crc = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
    if len < PREFIX_LEN as u32 || len > MAX_PAYLOAD {
        return Err(FrameError::BadLength(len));
    }
    Ok((len, crc))
}

/// Checks a payload against the CRC from its frame header.
pub(crate) fn verify_payload(payload_len: u32, crc: u32, payload: &[u8]) -> Result<(), FrameError> {
    if frame_crc(&payload_len.to_le_bytes(), payload) == crc {
        Ok(())
    } else {
        Err(FrameError::Checksum)
    }
}

/// Decodes one complete frame at the start of `buf`, returning the record
/// and the frame's total length.
pub(crate) fn decode_frame(buf: &[u8]) -> Result<(Record<'_>, usize), FrameError> {
    let hdr: &[u8; FRAME_HEADER_LEN] = buf
        .get(..FRAME_HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(FrameError::Truncated)?;
    let (len, crc) = parse_frame_header(hdr)?;
    let end = FRAME_HEADER_LEN + len as usize;
    let payload = buf
        .get(FRAME_HEADER_LEN..end)
        .ok_or(FrameError::Truncated)?;
    verify_payload(len, crc, payload)?;
    Ok((decode_payload(payload)?, end))
}

/// Decodes a payload whose CRC has already been verified.
pub(crate) fn decode_payload(payload: &[u8]) -> Result<Record<'_>, FrameError> {
    let mut r = Reader { buf: payload };
    let kind = r.u8()?;
    let _flags = r.u8()?;
    let id_bits = u128::from_le_bytes(r.array::<16>()?);
    let id = QueueId::from_bits(id_bits);
    let rec = match kind {
        KIND_MESSAGE => {
            let id = id.ok_or(FrameError::Malformed("bad queue id"))?;
            let arrival_us = r.u64()?;
            let env_len = r.u32()? as usize;
            let envelope = r.bytes(env_len)?;
            let body = match r.u8()? {
                BODY_INLINE => {
                    let len = usize::try_from(r.u64()?)
                        .map_err(|_| FrameError::Malformed("body length"))?;
                    BodyRef::Inline(r.bytes(len)?)
                }
                BODY_FILE => {
                    let len = r.u64()?;
                    let crc = r.u32()?;
                    BodyRef::File { len, crc }
                }
                _ => return Err(FrameError::Malformed("unknown body tag")),
            };
            Record::Message(MessageRecord {
                id,
                arrival_us,
                envelope,
                body,
            })
        }
        KIND_DONE => Record::Done {
            id: id.ok_or(FrameError::Malformed("bad queue id"))?,
            at_us: r.u64()?,
        },
        other => return Ok(Record::Unknown { kind: other }),
    };
    if !r.buf.is_empty() {
        return Err(FrameError::Malformed("trailing bytes in record"));
    }
    Ok(rec)
}

/// Bounds-checked little-endian reader over a payload; never panics.
struct Reader<'a> {
    /// Bytes not consumed yet.
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.buf.len() < n {
            return Err(FrameError::Malformed("field runs past end of record"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], FrameError> {
        let b = self.bytes(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, FrameError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, FrameError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_id() -> QueueId {
        QueueId::from_parts(1_750_000_000_000_000, 4242, 7)
    }

    #[test]
    fn message_inline_round_trip() {
        let rec = MessageRecord {
            id: sample_id(),
            arrival_us: 1_750_000_000_123_456,
            envelope: b"MAIL FROM:<a@b>\0RCPT TO:<c@d>",
            body: BodyRef::Inline(b"Subject: hi\r\n\r\nhello\r\n"),
        };
        let frame = encode_message(&rec).expect("encode");
        let (decoded, used) = decode_frame(&frame).expect("decode");
        assert_eq!(used, frame.len());
        assert_eq!(decoded, Record::Message(rec));
    }

    #[test]
    fn message_file_and_empty_round_trip() {
        for body in [
            BodyRef::File {
                len: 5 << 20,
                crc: 0xDEAD_BEEF,
            },
            BodyRef::Inline(b""),
        ] {
            let rec = MessageRecord {
                id: sample_id(),
                arrival_us: 0,
                envelope: b"",
                body,
            };
            let frame = encode_message(&rec).expect("encode");
            assert_eq!(
                decode_frame(&frame).expect("decode").0,
                Record::Message(rec)
            );
        }
    }

    #[test]
    fn done_round_trip() {
        let frame = encode_done(sample_id(), 99);
        let (rec, used) = decode_frame(&frame).expect("decode");
        assert_eq!(used, frame.len());
        assert_eq!(
            rec,
            Record::Done {
                id: sample_id(),
                at_us: 99
            }
        );
    }

    #[test]
    fn frames_decode_back_to_back() {
        let mut buf = encode_done(sample_id(), 1);
        let second = encode_message(&MessageRecord {
            id: sample_id(),
            arrival_us: 2,
            envelope: b"env",
            body: BodyRef::Inline(b"body"),
        })
        .expect("encode");
        buf.extend_from_slice(&second);
        let (_, first_len) = decode_frame(&buf).expect("first");
        let (rec, _) = decode_frame(&buf[first_len..]).expect("second");
        assert!(matches!(rec, Record::Message(m) if m.envelope == b"env"));
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let frame = encode_message(&MessageRecord {
            id: sample_id(),
            arrival_us: 5,
            envelope: b"envelope",
            body: BodyRef::Inline(b"some body"),
        })
        .expect("encode");
        for byte in 0..frame.len() {
            for bit in 0..8 {
                let mut bad = frame.clone();
                bad[byte] ^= 1 << bit;
                assert!(
                    decode_frame(&bad).is_err(),
                    "flip of byte {byte} bit {bit} not detected"
                );
            }
        }
    }

    #[test]
    fn truncation_and_garbage_are_errors_not_panics() {
        let frame = encode_done(sample_id(), 1);
        for cut in 0..frame.len() {
            assert!(decode_frame(&frame[..cut]).is_err(), "cut at {cut}");
        }
        assert_eq!(
            decode_frame(&[0u8; 64]).unwrap_err(),
            FrameError::BadLength(0)
        );
        assert_eq!(
            decode_frame(&[0xFFu8; 64]).unwrap_err(),
            FrameError::BadLength(u32::MAX)
        );
        // Pseudo-random garbage of many lengths.
        let mut x: u32 = 12345;
        for len in 0..300 {
            let garbage: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            assert!(decode_frame(&garbage).is_err());
        }
    }

    #[test]
    fn unknown_kinds_are_skippable() {
        let mut frame = encode_done(sample_id(), 1);
        frame[FRAME_HEADER_LEN] = 77; // future kind
        seal(&mut frame);
        let (rec, used) = decode_frame(&frame).expect("decode");
        assert_eq!(rec, Record::Unknown { kind: 77 });
        assert_eq!(used, frame.len());
    }

    #[test]
    fn segment_header_layout() {
        let h = segment_header();
        assert_eq!(&h[..8], b"RLSPOOL\0");
        assert_eq!(
            u32::from_le_bytes([h[8], h[9], h[10], h[11]]),
            FORMAT_VERSION
        );
    }
}
