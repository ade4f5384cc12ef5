//! Reading a stored message back: [`StoredMessage`] and [`Body`].

use std::fs::File;
use std::io::{self, Cursor, Read};
use std::path::PathBuf;
use std::time::SystemTime;

use crate::crc::Crc32c;
use crate::error::SpoolError;
use crate::id::QueueId;

/// Where a stored message's body is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// The body itself (bodies up to `SpoolOptions::inline_limit`).
    Inline(Vec<u8>),
    /// Path of the file holding the body (larger bodies), so a 100 MB
    /// message need not be loaded into memory. Prefer
    /// [`StoredMessage::body_reader`], which also verifies the checksum.
    File(PathBuf),
}

/// A pending message as read from the spool.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    /// The message's queue id.
    pub id: QueueId,
    /// The opaque envelope given to [`Incoming::commit`](crate::Incoming::commit).
    pub envelope: Vec<u8>,
    /// The body, or where to find it.
    pub body: Body,
    /// When the message was committed (accepted).
    pub arrival: SystemTime,
    /// Body length, known without touching a data file.
    pub(crate) body_len: u64,
    /// CRC-32C of a file body (inline bodies are covered by the record's
    /// own checksum).
    pub(crate) body_crc: Option<u32>,
}

impl StoredMessage {
    /// Body length in bytes.
    pub fn body_len(&self) -> u64 {
        self.body_len
    }

    /// A reader over the body. For a file body the data is streamed from
    /// disk, and reading it to the end fails with `InvalidData` if its
    /// checksum does not match what was committed. A missing or short data
    /// file is reported as [`SpoolError::Corrupt`].
    pub fn body_reader(&self) -> Result<Box<dyn Read + Send>, SpoolError> {
        match &self.body {
            Body::Inline(bytes) => Ok(Box::new(Cursor::new(bytes.clone()))),
            Body::File(path) => {
                let file = File::open(path).map_err(|e| match e.kind() {
                    io::ErrorKind::NotFound => {
                        SpoolError::Corrupt(format!("data file of message {} is missing", self.id))
                    }
                    _ => SpoolError::from(e),
                })?;
                let actual = file.metadata()?.len();
                if actual < self.body_len {
                    return Err(SpoolError::Corrupt(format!(
                        "data file of message {} has {actual} bytes, expected {}",
                        self.id, self.body_len
                    )));
                }
                Ok(Box::new(VerifyingReader {
                    inner: file.take(self.body_len),
                    crc: Crc32c::new(),
                    expected: self.body_crc,
                }))
            }
        }
    }
}

/// Reads a data file and checks its CRC when the end is reached.
struct VerifyingReader {
    /// The data file, limited to the committed length.
    inner: io::Take<File>,
    /// CRC of the bytes returned so far.
    crc: Crc32c,
    /// The committed CRC; `None` once checked (or if unknown).
    expected: Option<u32>,
}

impl Read for VerifyingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.crc.update(&buf[..n]);
        } else if !buf.is_empty()
            && let Some(expected) = self.expected.take()
            && self.crc.finish() != expected
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "spooled message body does not match its checksum",
            ));
        }
        Ok(n)
    }
}
