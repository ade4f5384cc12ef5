//! Byte receivers: they turn the bytes of a connection into command lines, message content
//! (DATA, dot-unstuffed) or chunks (BDAT), and never hold more than a bounded amount.
//!
//! # Line endings and SMTP smuggling
//! A command line ends at LF; a CR right before it is dropped (a bare LF is accepted as a line
//! end, as Postfix's `smtpd_forbid_bare_newline = normalize` does).
//!
//! DATA ends only at `<CR><LF>.<CR><LF>` (the CRLF before the dot may be the one that ended the
//! DATA command). A bare LF inside the content is stored as CRLF, and a dot line reached through
//! a bare LF or ended by one (`\n.\n`, `\r\n.\n`, `\n.\r\n`) is content, never the end. A bare CR
//! is content as it is (`\r.\r` ends nothing). So a message is never cut short and one message
//! is never turned into two (CVE-2023-51764 and its kind): whatever relais relays later is
//! dot-stuffed again by its own client, with CRLF line ends.

/// Reads command lines, one at a time, with a length cap.
#[derive(Debug)]
pub struct LineReceiver {
    /// Longest line kept, CRLF included. Longer lines are discarded up to their LF and reported.
    max: usize,
    /// True while the rest of an over-long line is being thrown away.
    discarding: bool,
}

/// What [`LineReceiver::next_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line without its line ending; `usize` is how many input bytes it used.
    Complete(Vec<u8>, usize),
    /// A line longer than the cap ended; `usize` input bytes were consumed (and thrown away).
    TooLong(usize),
    /// No full line yet; `usize` bytes may be dropped from the front (part of an over-long line).
    Incomplete(usize),
}

impl LineReceiver {
    /// A receiver for lines of at most `max` bytes, CRLF included.
    pub fn new(max: usize) -> Self {
        LineReceiver {
            max,
            discarding: false,
        }
    }

    /// Looks for the next line at the front of `buf`.
    pub fn next_line(&mut self, buf: &[u8]) -> Line {
        match buf.iter().position(|&b| b == b'\n') {
            Some(lf) => {
                if self.discarding || lf + 1 > self.max {
                    self.discarding = false;
                    return Line::TooLong(lf + 1);
                }
                let mut end = lf;
                if end > 0 && buf[end - 1] == b'\r' {
                    end -= 1;
                }
                Line::Complete(buf[..end].to_vec(), lf + 1)
            }
            None if buf.len() >= self.max => {
                self.discarding = true;
                Line::Incomplete(buf.len())
            }
            None => Line::Incomplete(0),
        }
    }
}

/// Where [`DataReceiver`] stands within the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataState {
    /// At the start of a line; `crlf` tells whether the previous line ended with CRLF.
    LineStart { crlf: bool },
    /// Read `.` at the start of a line.
    Dot { crlf: bool },
    /// Read `.\r` at the start of a line.
    DotCr { crlf: bool },
    /// Inside a line.
    Middle,
    /// Read `\r` inside a line (not yet written out: it may be half of a CRLF).
    Cr,
}

/// Receives DATA content: removes dot-stuffing, normalizes bare LF to CRLF and finds the end.
#[derive(Debug)]
pub struct DataReceiver {
    /// Position in the line grammar, carried across calls.
    state: DataState,
    /// True after a bare LF was seen (for the log: the client is sloppy or up to something).
    pub saw_bare_lf: bool,
}

impl Default for DataReceiver {
    fn default() -> Self {
        Self::new()
    }
}

impl DataReceiver {
    /// A receiver at the start of content, right after the DATA command's CRLF.
    pub fn new() -> Self {
        DataReceiver {
            state: DataState::LineStart { crlf: true },
            saw_bare_lf: false,
        }
    }

    /// Consumes bytes from `input`, appending content to `out`. Returns how many input bytes were
    /// used and whether the end of data was reached (then the bytes after it are not consumed).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, bool) {
        use DataState::*;
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            i += 1;
            self.state = match (self.state, b) {
                (LineStart { crlf }, b'.') => Dot { crlf },
                (LineStart { .. } | Middle, b'\r') => Cr,
                (LineStart { .. } | Middle, b'\n') => {
                    self.saw_bare_lf = true;
                    out.extend_from_slice(b"\r\n");
                    LineStart { crlf: false }
                }
                (LineStart { .. } | Middle, b) => {
                    out.push(b);
                    Middle
                }
                (Cr, b'\n') => {
                    out.extend_from_slice(b"\r\n");
                    LineStart { crlf: true }
                }
                (Cr, b'\r') => {
                    out.push(b'\r');
                    Cr
                }
                (Cr, b) => {
                    out.push(b'\r');
                    out.push(b);
                    Middle
                }
                (Dot { crlf }, b'\r') => DotCr { crlf },
                (Dot { .. }, b'\n') => {
                    // ".<LF>": not an end of data; keep the line as it is.
                    self.saw_bare_lf = true;
                    out.extend_from_slice(b".\r\n");
                    LineStart { crlf: false }
                }
                (Dot { .. }, b) => {
                    // A stuffed dot: drop it, keep the rest of the line.
                    out.push(b);
                    Middle
                }
                (DotCr { crlf: true }, b'\n') => {
                    self.state = LineStart { crlf: true };
                    return (i, true);
                }
                (DotCr { crlf: false }, b'\n') => {
                    // "<LF>.<CR><LF>": a dot line after a bare LF is content.
                    out.extend_from_slice(b".\r\n");
                    LineStart { crlf: true }
                }
                (DotCr { .. }, b'\r') => {
                    // ".\r\r": stuffed dot dropped, the first CR is content, the second may
                    // start a CRLF.
                    out.push(b'\r');
                    Cr
                }
                (DotCr { .. }, b) => {
                    out.push(b'\r');
                    out.push(b);
                    Middle
                }
            };
        }
        (i, false)
    }
}

/// Dot-stuffs content for DATA (client half): a line starting with `.` gets another one, bare LF
/// and bare CR become CRLF, and [`DotStuffer::finish`] adds the final CRLF (if missing) and `.`.
#[derive(Debug)]
pub struct DotStuffer {
    /// True at the start of a line.
    at_line_start: bool,
    /// True when the last byte seen was a CR whose LF has not come yet.
    pending_cr: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl DotStuffer {
    /// A stuffer at the start of the content.
    pub fn new() -> Self {
        DotStuffer {
            at_line_start: true,
            pending_cr: false,
        }
    }

    /// Appends the stuffed form of `input` to `out`.
    pub fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 64 + 2);
        for &b in input {
            if self.pending_cr {
                self.pending_cr = false;
                out.extend_from_slice(b"\r\n");
                self.at_line_start = true;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' => self.pending_cr = true,
                b'\n' => {
                    out.extend_from_slice(b"\r\n");
                    self.at_line_start = true;
                }
                _ => {
                    if self.at_line_start && b == b'.' {
                        out.push(b'.');
                    }
                    out.push(b);
                    self.at_line_start = false;
                }
            }
        }
    }

    /// Ends the content: a CRLF if the last line lacks one, then `.` CRLF.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        if self.pending_cr {
            self.pending_cr = false;
            out.extend_from_slice(b"\r\n");
            self.at_line_start = true;
        }
        if !self.at_line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

/// Dot-stuffs a whole message and terminates it: the bytes to send after `354`.
pub fn dot_stuff(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 8);
    let mut s = DotStuffer::new();
    s.encode(content, &mut out);
    s.finish(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes; returns (content, bytes consumed, ended).
    fn receive(input: &[u8], step: usize) -> (Vec<u8>, usize, bool) {
        let mut r = DataReceiver::new();
        let mut out = Vec::new();
        let mut used = 0;
        for chunk in input.chunks(step) {
            let (n, end) = r.feed(chunk, &mut out);
            used += n;
            if end {
                return (out, used, true);
            }
        }
        (out, used, false)
    }

    #[test]
    fn data_receiver_table() {
        let cases: &[(&[u8], &[u8], Option<usize>)] = &[
            (b"Hello\r\n.\r\n", b"Hello\r\n", Some(10)),
            (b".\r\n", b"", Some(3)),
            (b"..leading dot\r\n.\r\nMAIL", b".leading dot\r\n", Some(18)),
            (b"a\r\n..\r\n.\r\n", b"a\r\n.\r\n", Some(10)),
            (b"bare\nlf\r\n.\r\n", b"bare\r\nlf\r\n", Some(12)),
            // smuggling endings: none of them ends the data
            (
                b"x\n.\nMAIL FROM:<a@b>\r\n",
                b"x\r\n.\r\nMAIL FROM:<a@b>\r\n",
                None,
            ),
            (b"x\r\n.\nMAIL\r\n", b"x\r\n.\r\nMAIL\r\n", None),
            (b"x\n.\r\nMAIL\r\n", b"x\r\n.\r\nMAIL\r\n", None),
            (b"x\r.\rMAIL\r\n", b"x\r.\rMAIL\r\n", None),
            (b"x\r\n.\rMAIL\r\n", b"x\r\n\rMAIL\r\n", None),
            (b"x\n.\rMAIL\r\n", b"x\r\n\rMAIL\r\n", None),
            (b"x\0\n.\n\0\r\n", b"x\0\r\n.\r\n\0\r\n", None),
            // a proper end after a smuggling attempt ends the one message
            (b"x\n.\r\n.\r\n", b"x\r\n.\r\n", Some(8)),
            (b"no end", b"no end", None),
            (b"cr\r\r\n.\r\n", b"cr\r\r\n", Some(8)),
        ];
        for (input, content, end) in cases {
            for step in [1, 2, 3, 7, input.len().max(1)] {
                let (out, used, ended) = receive(input, step);
                assert_eq!(
                    String::from_utf8_lossy(&out),
                    String::from_utf8_lossy(content),
                    "{input:?} step {step}"
                );
                assert_eq!(ended, end.is_some(), "{input:?} step {step}");
                if let Some(n) = end {
                    assert_eq!(used, *n, "{input:?} step {step}");
                }
            }
        }
    }

    #[test]
    fn dot_stuffer_round_trips() {
        let cases: &[&[u8]] = &[
            b"",
            b"Hello",
            b"Hello\r\n",
            b".\r\n",
            b".hidden\r\n..two\r\n",
            b"line\n.\nmore",
            b"cr only\r.\r",
            b"\r\n\r\n.",
        ];
        for c in cases {
            let wire = dot_stuff(c);
            assert!(wire.ends_with(b"\r\n.\r\n") || wire == b".\r\n", "{c:?}");
            let (out, used, ended) = receive(&wire, 1);
            assert!(ended, "{c:?}");
            assert_eq!(used, wire.len());
            // what comes back is the content with CRLF line ends
            let expect: Vec<u8> = {
                let mut e = String::from_utf8_lossy(c)
                    .replace("\r\n", "\n")
                    .replace('\r', "\n")
                    .replace('\n', "\r\n");
                if !e.is_empty() && !e.ends_with("\r\n") {
                    e.push_str("\r\n");
                }
                e.into_bytes()
            };
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&expect),
                "{c:?}"
            );
        }
    }

    #[test]
    fn line_receiver_caps_length() {
        let mut r = LineReceiver::new(10);
        assert_eq!(
            r.next_line(b"NOOP\r\nQUIT"),
            Line::Complete(b"NOOP".to_vec(), 6)
        );
        assert_eq!(r.next_line(b"QUIT"), Line::Incomplete(0));
        assert_eq!(r.next_line(b"bare\n"), Line::Complete(b"bare".to_vec(), 5));
        assert_eq!(r.next_line(b"0123456789abc"), Line::Incomplete(13));
        assert_eq!(r.next_line(b"def\r\nNOOP\r\n"), Line::TooLong(5));
        assert_eq!(
            r.next_line(b"NOOP\r\n"),
            Line::Complete(b"NOOP".to_vec(), 6)
        );
        assert_eq!(r.next_line(b"0123456789\r\n"), Line::TooLong(12));
    }
}
