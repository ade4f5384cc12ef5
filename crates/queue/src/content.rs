//! [`Content`]: a queued message's content as it goes out, read from the spool each time it
//! is needed, so that a message of any size is delivered in bounded memory.
//!
//! What goes out is the [`Arrival`] header fields, then the header section (the one content
//! filters changed, or the stored one), then the rest of the stored body. The first two are
//! kept in memory (small); the rest is streamed from the spool by every
//! [`reader`](Content::reader), each a fresh one, so an agent that tries twice (the next MX
//! host) reads it again. The header section is read once, when the content is opened: loop
//! checks and delivery reports need only it ([`Content::header`]).

use std::io::{self, Cursor, Read};
use std::sync::Arc;

use relais_spool::{Body, StoredMessage};

use crate::envelope::Arrival;

/// At most this much of a header section is kept in memory. A longer one (a message with no
/// blank line, say) is streamed with the body; [`Content::header`] then holds its first
/// lines, cut at a line end.
pub const MAX_HEADER: usize = 1 << 20;

/// Pieces in which the spool is read while looking for the end of the header section.
const SCAN_PIECE: usize = 64 * 1024;

/// A cheap-to-clone handle on a message's content (see the module's documentation).
#[derive(Clone)]
pub struct Content {
    /// What goes out before the rest of the stored body: the arrival header fields and the
    /// header section, when it is short enough to be kept.
    head: Arc<Vec<u8>>,
    /// The header section as it goes out (at most [`MAX_HEADER`] of it): loop checks, reports.
    header: Arc<Vec<u8>>,
    /// Where the rest comes from.
    body: Arc<Source>,
    /// Octets at the start of the stored body that `head` stands for.
    skip: u64,
    /// The length of the whole content.
    len: u64,
}

/// The stored body.
enum Source {
    /// Bytes in memory (local submissions in tests, reports).
    Bytes(Vec<u8>),
    /// A message in the spool (its body inline or in a file of its own).
    Spool(StoredMessage),
}

impl Source {
    fn reader(&self) -> io::Result<Box<dyn Read + Send + '_>> {
        match self {
            Source::Bytes(b) => Ok(Box::new(&b[..])),
            // An inline body is covered by its record's checksum: read in place.
            Source::Spool(StoredMessage {
                body: Body::Inline(b),
                ..
            }) => Ok(Box::new(&b[..])),
            Source::Spool(m) => m
                .body_reader()
                .map(|r| Box::new(r) as Box<dyn Read + Send>)
                .map_err(io::Error::other),
        }
    }
}

impl Content {
    /// Content held in memory, as is.
    pub fn from_bytes(bytes: Vec<u8>) -> Content {
        let header = crate::headers::headers_of(&bytes).to_vec();
        Content {
            head: Arc::new(Vec::new()),
            header: Arc::new(header),
            len: bytes.len() as u64,
            body: Arc::new(Source::Bytes(bytes)),
            skip: 0,
        }
    }

    /// The content of a spooled message as it goes out with what the door decided at its
    /// arrival: the header section is read from the spool (the rest is not).
    pub fn open(msg: StoredMessage, arrival: &Arrival) -> io::Result<Content> {
        let body = Source::Spool(msg);
        let (stored, stored_len) = match &body {
            Source::Spool(StoredMessage {
                body: Body::Inline(b),
                ..
            }) => {
                let section = crate::headers::headers_of(b);
                let kept = &section[..section.len().min(MAX_HEADER)];
                (kept.to_vec(), section.len() as u64)
            }
            _ => scan_header(&mut body.reader()?)?,
        };
        let Source::Spool(msg) = &body else {
            unreachable!("made above")
        };
        let body_len = msg.body_len();
        let fields = arrival.header_bytes();
        let kept = stored_len <= MAX_HEADER as u64;
        let section = match (&arrival.section, kept) {
            (Some(s), _) => Some(&s[..]),
            (None, true) => Some(&stored[..]),
            (None, false) => None,
        };
        let mut head = fields.clone();
        head.extend_from_slice(section.unwrap_or_default());
        let skip = match section {
            Some(_) => stored_len,
            None => 0,
        };
        let header = match section {
            Some(_) => head.clone(),
            None => [fields, cut_at_line(&stored).to_vec()].concat(),
        };
        Ok(Content {
            len: head.len() as u64 + body_len - skip,
            head: Arc::new(head),
            header: Arc::new(header),
            body: Arc::new(body),
            skip,
        })
    }

    /// The same content with `prefix` (header fields, CRLF-terminated) in front.
    pub fn with_prefix(&self, prefix: &[u8]) -> Content {
        Content {
            head: Arc::new([prefix, &self.head].concat()),
            header: Arc::new([prefix, &self.header].concat()),
            len: self.len + prefix.len() as u64,
            ..self.clone()
        }
    }

    /// Its length in octets.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty message.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The header section as it goes out (up to the blank line, not included; at most
    /// [`MAX_HEADER`] octets of it).
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// A reader over the whole content, from its start. Reading a spooled body to its end
    /// fails with `InvalidData` when its checksum does not match.
    pub fn reader(&self) -> io::Result<Box<dyn Read + Send + '_>> {
        let mut body = self.body.reader()?;
        io::copy(&mut (&mut body).take(self.skip), &mut io::sink())?;
        Ok(Box::new(Cursor::new(&self.head[..]).chain(body)))
    }

    /// The whole content in memory, when it has at most `limit` octets.
    pub fn to_vec_upto(&self, limit: u64) -> io::Result<Option<Vec<u8>>> {
        if self.len > limit {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(self.len as usize);
        self.reader()?.read_to_end(&mut out)?;
        Ok(Some(out))
    }
}

/// Reads the header section at the start of `body` (up to `\r\n\r\n`, the blank line not
/// included, or all of it, as [`headers_of`](crate::headers::headers_of) reads it): its first
/// [`MAX_HEADER`] octets, and its whole length.
fn scan_header(body: &mut dyn Read) -> io::Result<(Vec<u8>, u64)> {
    const END: &[u8] = b"\r\n\r\n";
    let mut kept = Vec::new();
    let mut piece = vec![0u8; SCAN_PIECE];
    // Octets of END matched so far, and octets read.
    let (mut matched, mut offset) = (0usize, 0u64);
    loop {
        let n = match body.read(&mut piece) {
            Ok(0) => return Ok((kept, offset)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        for (i, &b) in piece[..n].iter().enumerate() {
            matched = match b == END[matched] {
                true => matched + 1,
                false => usize::from(b == b'\r'),
            };
            if matched == END.len() {
                // The section ends after the first CRLF of the match.
                let len = offset + i as u64 + 1 - 2;
                let room = (len as usize).min(MAX_HEADER).saturating_sub(kept.len());
                kept.extend_from_slice(&piece[..n.min(room)]);
                return Ok((kept, len));
            }
        }
        let room = MAX_HEADER.saturating_sub(kept.len());
        kept.extend_from_slice(&piece[..n.min(room)]);
        offset += n as u64;
    }
}

/// `bytes` up to its last line end.
fn cut_at_line(bytes: &[u8]) -> &[u8] {
    match bytes.iter().rposition(|&b| b == b'\n') {
        Some(p) => &bytes[..=p],
        None => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(c: &Content) -> Vec<u8> {
        let mut out = Vec::new();
        c.reader().unwrap().read_to_end(&mut out).unwrap();
        assert_eq!(out.len() as u64, c.len());
        out
    }

    /// A spooled message with `body`.
    fn spooled(body: &[u8]) -> (tempfile::TempDir, StoredMessage) {
        let dir = tempfile::tempdir().unwrap();
        let spool = relais_spool::Spool::open(dir.path(), Default::default()).unwrap();
        let id = spool.new_id();
        let mut inc = spool.begin(id);
        inc.write(body).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(inc.commit(b"env".to_vec())).unwrap();
        let msg = spool.read(id).unwrap();
        (dir, msg)
    }

    #[test]
    fn changed_header_sections() {
        let arrival = |section: Option<&str>| Arrival {
            headers: vec!["A-R: x".into()],
            junk: false,
            section: section.map(|s| s.as_bytes().to_vec()),
        };
        // (stored, changed section, what goes out, its header section)
        let table: &[(&str, Option<&str>, &str, &str)] = &[
            (
                "S: 1\r\n\r\nbody",
                None,
                "A-R: x\r\nS: 1\r\n\r\nbody",
                "A-R: x\r\nS: 1\r\n",
            ),
            (
                "S: 1\r\nT: 2\r\n\r\nbody\r\n\r\nmore",
                Some("S: 1\r\nX: new\r\n"),
                "A-R: x\r\nS: 1\r\nX: new\r\n\r\nbody\r\n\r\nmore",
                "A-R: x\r\nS: 1\r\nX: new\r\n",
            ),
            (
                "S: 1\r\n",
                Some("S: 2\r\n"),
                "A-R: x\r\nS: 2\r\n",
                "A-R: x\r\nS: 2\r\n",
            ),
            ("", None, "A-R: x\r\n", "A-R: x\r\n"),
            (
                "\r\n\r\nbody",
                None,
                "A-R: x\r\n\r\n\r\nbody",
                "A-R: x\r\n\r\n",
            ),
        ];
        for (stored, section, want, header) in table {
            let (_dir, msg) = spooled(stored.as_bytes());
            let c = Content::open(msg, &arrival(*section)).unwrap();
            assert_eq!(String::from_utf8_lossy(&read_all(&c)), *want, "{stored:?}");
            assert_eq!(String::from_utf8_lossy(c.header()), *header, "{stored:?}");
            // a second reader reads it all again
            assert_eq!(String::from_utf8_lossy(&read_all(&c)), *want);
            let p = c.with_prefix(b"D: y\r\n");
            assert_eq!(read_all(&p), [&b"D: y\r\n"[..], want.as_bytes()].concat());
            assert!(p.header().starts_with(b"D: y\r\nA-R: x\r\n"));
        }
    }

    #[test]
    fn the_end_of_the_header_section_is_found_across_pieces() {
        let mut stored = vec![b'X'; SCAN_PIECE - 2];
        stored.extend_from_slice(b"\r\n\r\nbody");
        let (section, len) = scan_header(&mut &stored[..]).unwrap();
        assert_eq!(len as usize, SCAN_PIECE);
        assert_eq!(section, &stored[..SCAN_PIECE]);
        assert_eq!(section, crate::headers::headers_of(&stored));
    }

    #[test]
    fn a_header_section_too_long_to_keep_is_streamed() {
        // a message with no blank line: all of it is the header section
        let mut stored = Vec::new();
        while stored.len() <= MAX_HEADER + 1000 {
            stored.extend_from_slice(b"X-Long: 0123456789abcdef\r\n");
        }
        let (_dir, msg) = spooled(&stored);
        let c = Content::open(msg, &Arrival::default()).unwrap();
        assert_eq!(read_all(&c), stored);
        assert!(c.header().len() <= MAX_HEADER && c.header().ends_with(b"\r\n"));
        assert!(stored.starts_with(c.header()));
        assert_eq!(c.to_vec_upto(1000).unwrap(), None);
    }

    #[test]
    fn a_body_in_a_file_of_its_own_with_a_changed_section() {
        let mut stored = b"S: 1\r\nT: 2\r\n\r\n".to_vec();
        stored.extend(std::iter::repeat_n(b'z', 300 * 1024));
        let (_dir, msg) = spooled(&stored);
        assert!(matches!(msg.body, Body::File(_)));
        let arrival = Arrival {
            section: Some(b"S: 3\r\n".to_vec()),
            ..Arrival::default()
        };
        let c = Content::open(msg, &arrival).unwrap();
        assert_eq!(read_all(&c), [&b"S: 3\r\n"[..], &stored[12..]].concat());
        assert_eq!(c.header(), b"S: 3\r\n");
    }

    #[test]
    fn bytes_in_memory() {
        let c = Content::from_bytes(b"A: 1\r\n\r\nbody".to_vec());
        assert_eq!(read_all(&c), b"A: 1\r\n\r\nbody");
        assert_eq!(c.header(), b"A: 1\r\n");
        assert_eq!(c.to_vec_upto(100).unwrap().unwrap(), b"A: 1\r\n\r\nbody");
    }
}
