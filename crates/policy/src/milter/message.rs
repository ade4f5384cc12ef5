//! The message as filters see it and change it, without I/O: the content split into header
//! fields and body as it streams in ([`Splitter`]), and the header changes filters ask for
//! applied to those fields ([`HeaderEdit`], [`apply`]). Pure, tested as tables.
//!
//! The header section ends at the first empty line, as `relais_queue::headers::headers_of`
//! finds it in the spool, so that a changed section replaces exactly the one stored.

/// The most header octets kept for filters; a header section larger than this is passed on
/// as body and cannot be changed (Postfix's `header_size_limit` is a tenth of it).
pub const HEADER_LIMIT: usize = 1024 * 1024;

/// A header field as received: its lines with their CRLFs between them, without the last
/// CRLF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field(pub Vec<u8>);

impl Field {
    /// A field from a filter's name and value (lines separated by LF, as milters send them):
    /// `Name: value`, with CRLF between lines; `lead_space` when the value keeps its own.
    pub fn new(name: &str, value: &str, lead_space: bool) -> Field {
        let value = value.replace("\r\n", "\n").replace('\n', "\r\n");
        let sep = if lead_space { ":" } else { ": " };
        Field(format!("{name}{sep}{value}").into_bytes())
    }

    /// The name (before the colon, trailing blanks dropped); the whole line when it has no
    /// colon.
    pub fn name(&self) -> String {
        let raw = match self.0.iter().position(|&b| b == b':') {
            Some(p) => &self.0[..p],
            None => &self.0[..],
        };
        String::from_utf8_lossy(raw).trim_end().to_string()
    }

    /// The value as a milter gets it: after the colon, one leading space dropped unless
    /// `lead_space`, lines separated by LF.
    pub fn value(&self, lead_space: bool) -> String {
        let Some(p) = self.0.iter().position(|&b| b == b':') else {
            return String::new();
        };
        let mut v = &self.0[p + 1..];
        if !lead_space && v.first() == Some(&b' ') {
            v = &v[1..];
        }
        String::from_utf8_lossy(v).replace("\r\n", "\n")
    }
}

/// What a piece of content turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// A complete header field.
    Field(Field),
    /// The end of the header section.
    EndOfHeaders,
    /// Body octets.
    Body(Vec<u8>),
}

/// Splits content into header fields and body as it streams in.
#[derive(Debug, Default)]
pub struct Splitter {
    /// The field being read: its complete lines.
    pending: Vec<u8>,
    /// The line being read, not complete yet.
    line: Vec<u8>,
    /// Header octets seen so far.
    seen: usize,
    /// In the body (after the empty line, or after too much header).
    in_body: bool,
    /// The header was too large: it went on as body.
    pub overflowed: bool,
}

impl Splitter {
    /// A splitter at the start of the content.
    pub fn new() -> Splitter {
        Splitter::default()
    }

    /// Feeds a chunk; complete parts go to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Part>) {
        if self.in_body {
            if !chunk.is_empty() {
                out.push(Part::Body(chunk.to_vec()));
            }
            return;
        }
        let mut rest = chunk;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let (part, tail) = rest.split_at(nl + 1);
            rest = tail;
            self.line.extend_from_slice(part);
            self.seen += part.len();
            let line = std::mem::take(&mut self.line);
            if line == b"\r\n" || line == b"\n" {
                self.flush_field(out);
                out.push(Part::EndOfHeaders);
                self.in_body = true;
                self.feed(rest, out);
                return;
            }
            if !line.starts_with(b" ") && !line.starts_with(b"\t") {
                self.flush_field(out);
            }
            self.pending.extend_from_slice(&line);
        }
        self.line.extend_from_slice(rest);
        self.seen += rest.len();
        if self.seen > HEADER_LIMIT {
            // Too much header: what was not passed on yet goes on as body.
            self.overflowed = true;
            self.in_body = true;
            if !self.line.starts_with(b" ") && !self.line.starts_with(b"\t") {
                self.flush_field(out);
            }
            out.push(Part::EndOfHeaders);
            let mut held = std::mem::take(&mut self.pending);
            held.append(&mut self.line);
            out.push(Part::Body(held));
        }
    }

    /// The end of the content: a last field without an empty line after it, and the end of
    /// the header when it never came.
    pub fn finish(&mut self, out: &mut Vec<Part>) {
        if !self.in_body {
            if !self.line.is_empty() {
                let line = std::mem::take(&mut self.line);
                if !line.starts_with(b" ") && !line.starts_with(b"\t") {
                    self.flush_field(out);
                }
                self.pending.extend_from_slice(&line);
            }
            self.flush_field(out);
            out.push(Part::EndOfHeaders);
            self.in_body = true;
        }
    }

    fn flush_field(&mut self, out: &mut Vec<Part>) {
        if self.pending.is_empty() {
            return;
        }
        let mut f = std::mem::take(&mut self.pending);
        if f.ends_with(b"\r\n") {
            f.truncate(f.len() - 2);
        } else if f.ends_with(b"\n") {
            f.truncate(f.len() - 1);
        }
        out.push(Part::Field(Field(f)));
    }
}

/// A change a filter asked for, in the order it asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderEdit {
    /// Add at the end of the header.
    Add(Field),
    /// Insert at this position of the header as delivered, our trace fields included (0: on
    /// top).
    Insert(usize, Field),
    /// Replace the nth (from 1) field of this name in the header as received (our trace
    /// fields not counted); `None` deletes it. A field that is not there is added (with a
    /// value).
    Change(usize, String, Option<Field>),
}

/// Applies `edits` in order to `fields`, whose first `trace` are our own (`Received`,
/// `Received-SPF`).
pub fn apply(fields: &mut Vec<Field>, trace: usize, edits: &[HeaderEdit]) {
    for edit in edits {
        match edit {
            HeaderEdit::Add(f) => fields.push(f.clone()),
            HeaderEdit::Insert(at, f) => {
                let at = (*at).min(fields.len());
                fields.insert(at, f.clone());
            }
            HeaderEdit::Change(nth, name, new) => {
                let found = fields
                    .iter()
                    .enumerate()
                    .skip(trace)
                    .filter(|(_, f)| f.name().eq_ignore_ascii_case(name))
                    .nth(nth.saturating_sub(1))
                    .map(|(i, _)| i);
                match (found, new) {
                    (Some(i), Some(f)) => fields[i] = f.clone(),
                    (Some(i), None) => {
                        fields.remove(i);
                    }
                    (None, Some(f)) => fields.push(f.clone()),
                    (None, None) => {}
                }
            }
        }
    }
}

/// Fields written back as a header section, each with its CRLF.
pub fn section(fields: &[Field]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        out.extend_from_slice(&f.0);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&str]) -> Vec<Part> {
        let mut s = Splitter::new();
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c.as_bytes(), &mut out);
        }
        s.finish(&mut out);
        out
    }

    fn f(s: &str) -> Part {
        Part::Field(Field(s.as_bytes().to_vec()))
    }

    fn body(s: &str) -> Part {
        Part::Body(s.as_bytes().to_vec())
    }

    #[test]
    fn splitting() {
        let table: Vec<(Vec<&str>, Vec<Part>)> = vec![
            (
                vec!["Subject: hi\r\nFrom: a@b\r\n\r\nbody\r\n"],
                vec![
                    f("Subject: hi"),
                    f("From: a@b"),
                    Part::EndOfHeaders,
                    body("body\r\n"),
                ],
            ),
            (
                // folded, split anywhere
                vec!["Subj", "ect: a\r\n", " b\r\nX: 1\r", "\n\r", "\nbo", "dy"],
                vec![
                    f("Subject: a\r\n b"),
                    f("X: 1"),
                    Part::EndOfHeaders,
                    body("bo"),
                    body("dy"),
                ],
            ),
            (
                vec!["\r\nonly body\r\n"],
                vec![Part::EndOfHeaders, body("only body\r\n")],
            ),
            (
                vec!["Subject: no body\r\n"],
                vec![f("Subject: no body"), Part::EndOfHeaders],
            ),
            (vec!["X: 1"], vec![f("X: 1"), Part::EndOfHeaders]),
            (vec![""], vec![Part::EndOfHeaders]),
        ];
        for (chunks, want) in table {
            assert_eq!(split(&chunks), want, "{chunks:?}");
        }
    }

    #[test]
    fn oversized_header_goes_on_as_body() {
        let big = format!("X: {}", "a".repeat(HEADER_LIMIT));
        let mut s = Splitter::new();
        let mut out = Vec::new();
        s.feed(b"Subject: x\r\n", &mut out);
        s.feed(big.as_bytes(), &mut out);
        s.feed(b"\r\n\r\nbody", &mut out);
        assert!(s.overflowed);
        assert_eq!(out[0], f("Subject: x"));
        assert_eq!(out[1], Part::EndOfHeaders);
        assert_eq!(out.len(), 4);
    }

    #[test]
    fn names_and_values() {
        let table: &[(&str, bool, &str, &str)] = &[
            ("Subject: hi", false, "Subject", "hi"),
            ("Subject: hi", true, "Subject", " hi"),
            ("Subject:hi", false, "Subject", "hi"),
            ("X-Long: a\r\n\tb", false, "X-Long", "a\n\tb"),
            ("Odd Name : v", false, "Odd Name", "v"),
            ("no colon", false, "no colon", ""),
        ];
        for (raw, lead, name, value) in table {
            let field = Field(raw.as_bytes().to_vec());
            assert_eq!(field.name(), *name, "{raw:?}");
            assert_eq!(field.value(*lead), *value, "{raw:?}");
        }
        assert_eq!(Field::new("X-Spam", "a\n\tb", false).0, b"X-Spam: a\r\n\tb");
        assert_eq!(Field::new("X-Spam", " yes", true).0, b"X-Spam: yes");
    }

    #[test]
    fn edits() {
        let fields = || -> Vec<Field> {
            [
                "Received: ours",
                "Received: theirs",
                "Subject: s",
                "X: 1",
                "X: 2",
            ]
            .iter()
            .map(|s| Field(s.as_bytes().to_vec()))
            .collect()
        };
        let field = |s: &str| Field(s.as_bytes().to_vec());
        let change =
            |n, name: &str, to: Option<&str>| HeaderEdit::Change(n, name.into(), to.map(field));
        let table: Vec<(Vec<HeaderEdit>, &str)> = vec![
            (
                vec![HeaderEdit::Add(field("X-Spam: no"))],
                "Received: ours|Received: theirs|Subject: s|X: 1|X: 2|X-Spam: no",
            ),
            (
                vec![HeaderEdit::Insert(0, field("DKIM-Signature: v=1"))],
                "DKIM-Signature: v=1|Received: ours|Received: theirs|Subject: s|X: 1|X: 2",
            ),
            (
                vec![HeaderEdit::Insert(99, field("Y: 9"))],
                "Received: ours|Received: theirs|Subject: s|X: 1|X: 2|Y: 9",
            ),
            (
                // the first Received a filter saw is theirs: ours is not counted
                vec![change(1, "received", None)],
                "Received: ours|Subject: s|X: 1|X: 2",
            ),
            (
                vec![change(2, "X", Some("X: two"))],
                "Received: ours|Received: theirs|Subject: s|X: 1|X: two",
            ),
            (
                vec![change(1, "Subject", Some("Subject: [SPAM] s"))],
                "Received: ours|Received: theirs|Subject: [SPAM] s|X: 1|X: 2",
            ),
            (
                vec![change(3, "X", Some("X: 3")), change(5, "Z", None)],
                "Received: ours|Received: theirs|Subject: s|X: 1|X: 2|X: 3",
            ),
            (
                // in order: the second change sees the first one's result
                vec![change(1, "X", None), change(1, "X", None)],
                "Received: ours|Received: theirs|Subject: s",
            ),
        ];
        for (edits, want) in table {
            let mut got = fields();
            apply(&mut got, 1, &edits);
            let got: Vec<String> = got
                .iter()
                .map(|f| String::from_utf8_lossy(&f.0).into_owned())
                .collect();
            assert_eq!(got.join("|"), want, "{edits:?}");
        }
        assert_eq!(
            section(&[field("A: 1"), field("B: 2\r\n 3")]),
            b"A: 1\r\nB: 2\r\n 3\r\n"
        );
    }
}
