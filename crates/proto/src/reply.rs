//! Replies: the server's answer to a command, and how to put one on the wire or read one back.
//!
//! A [`Reply`] is a three-digit code, an optional RFC 3463 [`EnhancedStatus`] and one or more lines
//! of text. The server encodes them with [`Reply::write_to`]; the client half reads them with
//! [`ReplyParser`], which understands multi-line replies (`250-…` then `250 …`).

use std::fmt;

/// An RFC 3463 enhanced status code, `class.subject.detail` (for example `5.1.1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedStatus {
    /// 2 (success), 4 (persistent transient failure) or 5 (permanent failure).
    pub class: u8,
    /// What the status is about: 1 addressing, 2 mailbox, 3 mail system, 4 network, 5 protocol,
    /// 6 content, 7 security or policy.
    pub subject: u16,
    /// The precise condition within the subject.
    pub detail: u16,
}

impl EnhancedStatus {
    /// Builds a status from its three parts.
    pub const fn new(class: u8, subject: u16, detail: u16) -> Self {
        EnhancedStatus {
            class,
            subject,
            detail,
        }
    }

    /// Parses `x.y.z` where x is 2, 4 or 5 and y, z have one to three digits.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('.');
        let class = parts.next()?;
        let subject = parts.next()?;
        let detail = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        let digits = |p: &str, max: usize| {
            !p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit())
        };
        if !digits(class, 1) || !digits(subject, 3) || !digits(detail, 3) {
            return None;
        }
        let class: u8 = class.parse().ok()?;
        if !matches!(class, 2 | 4 | 5) {
            return None;
        }
        Some(EnhancedStatus {
            class,
            subject: subject.parse().ok()?,
            detail: detail.parse().ok()?,
        })
    }
}

impl fmt::Display for EnhancedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// One SMTP reply: code, optional enhanced status, and text lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code (RFC 5321 §4.2).
    pub code: u16,
    /// The enhanced status code put in front of every line's text, when there is one.
    pub status: Option<EnhancedStatus>,
    /// The text of each line, without code or status. Never empty.
    pub lines: Vec<String>,
}

impl Reply {
    /// A one-line reply.
    pub fn new(code: u16, status: Option<EnhancedStatus>, text: impl Into<String>) -> Self {
        Reply {
            code,
            status,
            lines: vec![text.into()],
        }
    }

    /// A multi-line reply; `lines` must not be empty.
    pub fn multiline(code: u16, status: Option<EnhancedStatus>, lines: Vec<String>) -> Self {
        debug_assert!(!lines.is_empty());
        Reply {
            code,
            status,
            lines,
        }
    }

    /// 2yz: the command succeeded.
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// 3yz: go on (354 after DATA, 334 during AUTH).
    pub fn is_intermediate(&self) -> bool {
        (300..400).contains(&self.code)
    }

    /// 4yz: failed this time, may work later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5yz: failed for good.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }

    /// The text of all lines joined by a space, with the status in front if there is one:
    /// what a log line or an error message shows.
    pub fn text(&self) -> String {
        let body = self.lines.join(" ");
        match self.status {
            Some(s) => format!("{s} {body}"),
            None => body,
        }
    }

    /// Appends the wire form (every line CRLF-terminated) to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            // Writing to a Vec cannot fail.
            let _ = match self.status {
                Some(s) => write!(out, "{}{}{} {}\r\n", self.code, sep, s, line),
                None => write!(out, "{}{}{}\r\n", self.code, sep, line),
            };
        }
    }

    /// The wire form as a byte vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write_to(&mut v);
        v
    }
}

impl fmt::Display for Reply {
    /// One line: `550 5.1.1 text…` (multi-line texts joined by a space).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.text())
    }
}

/// Why a reply from a server could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplyError {
    /// A line did not start with three digits followed by space, dash or end of line.
    Malformed(String),
    /// The lines of one multi-line reply carried different codes.
    CodeMismatch { first: u16, then: u16 },
    /// A line or a multi-line reply grew past the limit without ending.
    TooLong,
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::Malformed(l) => write!(f, "malformed reply line: {l:?}"),
            ReplyError::CodeMismatch { first, then } => {
                write!(f, "multi-line reply changed code from {first} to {then}")
            }
            ReplyError::TooLong => write!(f, "reply too long"),
        }
    }
}

impl std::error::Error for ReplyError {}

/// Reads replies from the bytes a server sends (client half).
///
/// Feed received bytes with [`ReplyParser::push`], then call [`ReplyParser::next_reply`] until it
/// returns `Ok(None)` (need more bytes).
#[derive(Debug, Default)]
pub struct ReplyParser {
    /// Bytes received and not yet consumed.
    buf: Vec<u8>,
    /// Lines of the multi-line reply being read: code and text (status still attached).
    pending: Vec<(u16, String)>,
}

/// Longest reply line accepted (RFC 5321 says 512; be generous with real servers).
const MAX_REPLY_LINE: usize = 8192;
/// Most lines in one reply (EHLO lists are the longest seen in practice).
const MAX_REPLY_LINES: usize = 512;

impl ReplyParser {
    /// A parser with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes received from the server.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet part of a complete reply line.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Takes away whatever is buffered (used after STARTTLS: nothing sent in clear may be kept).
    pub fn discard_buffered(&mut self) -> Vec<u8> {
        self.pending.clear();
        std::mem::take(&mut self.buf)
    }

    /// The next complete reply, `Ok(None)` if more bytes are needed.
    pub fn next_reply(&mut self) -> Result<Option<Reply>, ReplyError> {
        loop {
            let Some(pos) = self.buf.iter().position(|&b| b == b'\n') else {
                if self.buf.len() > MAX_REPLY_LINE {
                    return Err(ReplyError::TooLong);
                }
                return Ok(None);
            };
            let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            let (code, more, text) = parse_reply_line(&line)?;
            if let Some(&(first, _)) = self.pending.first()
                && first != code
            {
                self.pending.clear();
                return Err(ReplyError::CodeMismatch { first, then: code });
            }
            self.pending.push((code, text));
            if self.pending.len() > MAX_REPLY_LINES {
                self.pending.clear();
                return Err(ReplyError::TooLong);
            }
            if !more {
                let lines = std::mem::take(&mut self.pending);
                return Ok(Some(assemble(code, lines)));
            }
        }
    }
}

/// Splits `250-text` into (250, true, "text").
fn parse_reply_line(line: &str) -> Result<(u16, bool, String), ReplyError> {
    let b = line.as_bytes();
    if b.len() < 3 || !b[..3].iter().all(|c| c.is_ascii_digit()) || b[0] < b'2' || b[0] > b'5' {
        return Err(ReplyError::Malformed(line.to_string()));
    }
    let code: u16 = line[..3]
        .parse()
        .map_err(|_| ReplyError::Malformed(line.to_string()))?;
    match b.get(3) {
        None => Ok((code, false, String::new())),
        Some(b' ') => Ok((code, false, line[4..].to_string())),
        Some(b'-') => Ok((code, true, line[4..].to_string())),
        Some(_) => Err(ReplyError::Malformed(line.to_string())),
    }
}

/// Builds a reply from its lines, lifting an enhanced status off the first line when present
/// (and off every later line that repeats it).
fn assemble(code: u16, lines: Vec<(u16, String)>) -> Reply {
    let first = lines.first().map(|(_, t)| t.as_str()).unwrap_or("");
    let status = first
        .split_once(' ')
        .map(|(s, _)| s)
        .or(Some(first))
        .and_then(EnhancedStatus::parse)
        .filter(|s| u16::from(s.class) == code / 100);
    let lines = lines
        .into_iter()
        .map(|(_, text)| match status {
            Some(s) => {
                let prefix = s.to_string();
                match text.strip_prefix(&prefix) {
                    Some(rest) => rest.strip_prefix(' ').unwrap_or(rest).to_string(),
                    None => text,
                }
            }
            None => text,
        })
        .collect();
    Reply {
        code,
        status,
        lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_single_and_multi_line() {
        let r = Reply::new(250, Some(EnhancedStatus::new(2, 0, 0)), "Ok");
        assert_eq!(r.to_bytes(), b"250 2.0.0 Ok\r\n");
        let r = Reply::multiline(250, None, vec!["host".into(), "PIPELINING".into()]);
        assert_eq!(r.to_bytes(), b"250-host\r\n250 PIPELINING\r\n");
    }

    #[test]
    fn parses_replies_table() {
        type Case<'a> = (&'a [u8], u16, Option<&'a str>, &'a [&'a str]);
        let cases: &[Case] = &[
            (
                b"220 mx.example.com ESMTP\r\n",
                220,
                None,
                &["mx.example.com ESMTP"],
            ),
            (b"250 2.1.0 Ok\r\n", 250, Some("2.1.0"), &["Ok"]),
            (
                b"250-mx\r\n250-PIPELINING\r\n250 SIZE 100\r\n",
                250,
                None,
                &["mx", "PIPELINING", "SIZE 100"],
            ),
            (
                b"550-5.1.1 No such\r\n550 5.1.1 user\r\n",
                550,
                Some("5.1.1"),
                &["No such", "user"],
            ),
            (
                b"354 End data with <CR><LF>.<CR><LF>\n",
                354,
                None,
                &["End data with <CR><LF>.<CR><LF>"],
            ),
            (b"250\r\n", 250, None, &[""]),
            // a status of the wrong class is text, not a status
            (b"550 2.0.0 odd\r\n", 550, None, &["2.0.0 odd"]),
        ];
        for (input, code, status, lines) in cases {
            let mut p = ReplyParser::new();
            p.push(input);
            let r = p.next_reply().unwrap().expect("complete reply");
            assert_eq!(r.code, *code, "{input:?}");
            assert_eq!(
                r.status.map(|s| s.to_string()).as_deref(),
                *status,
                "{input:?}"
            );
            assert_eq!(
                r.lines,
                lines.iter().map(|s| s.to_string()).collect::<Vec<_>>()
            );
            assert_eq!(p.next_reply().unwrap(), None);
        }
    }

    #[test]
    fn parser_waits_for_more_bytes_and_rejects_garbage() {
        let mut p = ReplyParser::new();
        p.push(b"250-a\r\n25");
        assert_eq!(p.next_reply().unwrap(), None);
        p.push(b"0 b\r\n");
        assert_eq!(p.next_reply().unwrap().unwrap().lines, vec!["a", "b"]);
        let mut p = ReplyParser::new();
        p.push(b"hello\r\n");
        assert!(matches!(p.next_reply(), Err(ReplyError::Malformed(_))));
        let mut p = ReplyParser::new();
        p.push(b"250-a\r\n251 b\r\n");
        assert!(matches!(
            p.next_reply(),
            Err(ReplyError::CodeMismatch { .. })
        ));
    }

    #[test]
    fn enhanced_status_parse() {
        assert_eq!(
            EnhancedStatus::parse("5.7.1"),
            Some(EnhancedStatus::new(5, 7, 1))
        );
        assert_eq!(
            EnhancedStatus::parse("4.7.30"),
            Some(EnhancedStatus::new(4, 7, 30))
        );
        for bad in ["3.0.0", "5.1", "5.1.1.1", "5..1", "x.1.1", "5.1000.1", ""] {
            assert_eq!(EnhancedStatus::parse(bad), None, "{bad}");
        }
    }
}
