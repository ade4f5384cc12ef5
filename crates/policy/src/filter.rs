//! Removes `Authentication-Results` headers that claim our authserv-id from a message as it
//! streams in (RFC 8601 §5: a receiver must not let a sender forge its results). The header
//! section is looked at field by field; the body passes through untouched.

/// The longest header field looked at; a longer one is passed on as it is.
const MAX_FIELD: usize = 64 * 1024;

/// A streaming filter of a message's header section.
#[derive(Debug)]
pub struct HeaderFilter {
    /// Our authserv-id, lower case.
    authserv_id: String,
    /// The field being read (its complete lines).
    field: Vec<u8>,
    /// The line being read.
    line: Vec<u8>,
    /// The header section is over: everything passes.
    in_body: bool,
    /// Fields removed so far.
    removed: usize,
}

impl HeaderFilter {
    /// A filter for headers that claim `authserv_id`.
    pub fn new(authserv_id: &str) -> HeaderFilter {
        HeaderFilter {
            authserv_id: authserv_id.to_ascii_lowercase(),
            field: Vec::new(),
            line: Vec::new(),
            in_body: false,
            removed: 0,
        }
    }

    /// How many fields were removed.
    pub fn removed(&self) -> usize {
        self.removed
    }

    /// Filters `chunk`, appending what passes to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.in_body {
            out.extend_from_slice(chunk);
            return;
        }
        for (i, &b) in chunk.iter().enumerate() {
            self.line.push(b);
            if b != b'\n' {
                if self.line.len() > MAX_FIELD {
                    // Not a header line anyone would write: stop looking.
                    self.flush_field(out);
                    out.append(&mut self.line);
                    self.in_body = true;
                    out.extend_from_slice(&chunk[i + 1..]);
                    return;
                }
                continue;
            }
            let line = std::mem::take(&mut self.line);
            if line == b"\r\n" || line == b"\n" {
                self.flush_field(out);
                out.extend_from_slice(&line);
                self.in_body = true;
                out.extend_from_slice(&chunk[i + 1..]);
                return;
            }
            if matches!(line[0], b' ' | b'\t') && !self.field.is_empty() {
                self.field.extend_from_slice(&line);
                if self.field.len() > MAX_FIELD {
                    out.append(&mut self.field);
                }
            } else {
                self.flush_field(out);
                self.field = line;
            }
        }
    }

    /// The end of the message: what is still held passes.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.flush_field(out);
        out.append(&mut self.line);
        self.in_body = true;
    }

    /// Passes the field read so far on, unless it is a forged one.
    fn flush_field(&mut self, out: &mut Vec<u8>) {
        if self.field.is_empty() {
            return;
        }
        if self.claims_us(&self.field) {
            self.removed += 1;
            self.field.clear();
        } else {
            out.append(&mut self.field);
        }
    }

    /// True for an `Authentication-Results` field whose authserv-id is ours.
    fn claims_us(&self, field: &[u8]) -> bool {
        let Some(colon) = field.iter().position(|&b| b == b':') else {
            return false;
        };
        let (name, value) = field.split_at(colon);
        if !name
            .trim_ascii()
            .eq_ignore_ascii_case(b"authentication-results")
        {
            return false;
        }
        let value = String::from_utf8_lossy(&value[1..]);
        let id = strip_comments(&value);
        let id = id
            .split(|c: char| c == ';' || c.is_whitespace())
            .find(|w| !w.is_empty())
            .unwrap_or("");
        id.eq_ignore_ascii_case(&self.authserv_id)
    }
}

/// The text without its `(comments)` (CFWS, RFC 5322 §3.2.2), nested ones included.
fn strip_comments(text: &str) -> String {
    let mut depth = 0usize;
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in chunks of every size from 1 to its length; all give the same output.
    fn filtered(input: &str) -> (String, usize) {
        let mut first: Option<(String, usize)> = None;
        for size in 1..=input.len().max(1) {
            let mut f = HeaderFilter::new("MX.Example.Test");
            let mut out = Vec::new();
            for chunk in input.as_bytes().chunks(size) {
                f.feed(chunk, &mut out);
            }
            f.finish(&mut out);
            let got = (String::from_utf8(out).unwrap(), f.removed());
            match &first {
                None => first = Some(got),
                Some(f) => assert_eq!(f, &got, "chunk size {size}"),
            }
        }
        first.unwrap()
    }

    #[test]
    fn forged_results_are_removed_others_kept() {
        let input = "Received: from x\r\n\
Authentication-Results: mx.example.test; spf=pass\r\n\
\x20smtp.mailfrom=a@b\r\n\
authentication-results: (comment) MX.EXAMPLE.TEST;\r\n\tdkim=pass\r\n\
Authentication-Results: other.example; dkim=pass\r\n\
Subject: hi\r\n\
\r\n\
Authentication-Results: mx.example.test; in the body, kept\r\n";
        let (out, removed) = filtered(input);
        assert_eq!(removed, 2);
        assert_eq!(
            out,
            "Received: from x\r\n\
Authentication-Results: other.example; dkim=pass\r\n\
Subject: hi\r\n\
\r\n\
Authentication-Results: mx.example.test; in the body, kept\r\n"
        );
    }

    #[test]
    fn messages_without_a_body_or_an_end() {
        assert_eq!(filtered("Subject: x\r\n"), ("Subject: x\r\n".into(), 0));
        assert_eq!(
            filtered("Authentication-Results: mx.example.test; none\r\n"),
            (String::new(), 1)
        );
        assert_eq!(filtered("no colon at all"), ("no colon at all".into(), 0));
        assert_eq!(filtered(""), (String::new(), 0));
    }
}
