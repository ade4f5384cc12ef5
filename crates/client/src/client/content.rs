//! The message content: `DATA` (dot-stuffed) and `BDAT` (counted chunks), read from any
//! [`Read`] in pieces of [`WRITE_CHUNK`] octets (BDAT: one chunk and the next one read ahead),
//! so a message of any size goes out in bounded memory. The slice forms (`data`, `bdat`) read
//! from the slice.
//!
//! A reader that fails (a spooled body that cannot be read, or whose checksum does not match
//! at its end) ends the dialogue: the connection is closed before the final `.` or
//! `BDAT … LAST`, so the server never takes a cut message; the error is
//! [`ClientError::Content`].

use std::io::{self, Read};

use super::*;

/// At most this many octets of one content line go into the transcript.
const LOGGED_LINE: usize = 1000;

impl SmtpClient {
    /// `DATA`, then the content, dot-stuffed and ended with `.` (bare LF and CR become CRLF).
    /// Returns the server's answer to the message.
    pub async fn data(&mut self, content: &[u8]) -> Result<Reply, ClientError> {
        self.data_from(&mut &content[..]).await
    }

    /// [`data`](SmtpClient::data) with the content read from `content`.
    pub async fn data_from(
        &mut self,
        content: &mut (dyn Read + Send),
    ) -> Result<Reply, ClientError> {
        let reply = self.command(Command::Data).await?;
        expect(Stage::Data, reply, |r| r.code == 354)?;
        self.data_content_from(content).await
    }

    /// The second half of [`data`](SmtpClient::data), for callers that sent DATA themselves
    /// (in a pipelined group) and got `354`.
    pub async fn data_content(&mut self, content: &[u8]) -> Result<Reply, ClientError> {
        self.data_content_from(&mut &content[..]).await
    }

    /// [`data_content`](SmtpClient::data_content) with the content read from `content`.
    pub async fn data_content_from(
        &mut self,
        content: &mut (dyn Read + Send),
    ) -> Result<Reply, ClientError> {
        let started = Instant::now();
        self.send_content_from(content).await?;
        let reply = self.read_reply(Stage::Message).await?;
        self.timings.push(Timing {
            stage: Stage::Message,
            took: started.elapsed(),
        });
        expect(Stage::Message, reply, Reply::is_positive)
    }

    /// Writes the content after `354`, dot-stuffed and ended with `.`, without reading the
    /// answer: an LMTP server then gives one reply per accepted recipient (RFC 2033 §4.2),
    /// each read with [`read_reply`](SmtpClient::read_reply) at [`Stage::Message`].
    pub async fn send_content(&mut self, content: &[u8]) -> Result<(), ClientError> {
        self.send_content_from(&mut &content[..]).await
    }

    /// [`send_content`](SmtpClient::send_content) with the content read from `content`.
    pub async fn send_content_from(
        &mut self,
        content: &mut (dyn Read + Send),
    ) -> Result<(), ClientError> {
        let mut log = ContentLog::new(self.cfg.transcript_data_lines, true);
        let mut stuffer = DotStuffer::new();
        let mut piece = Vec::with_capacity(WRITE_CHUNK);
        let mut out = Vec::with_capacity(WRITE_CHUNK + WRITE_CHUNK / 32);
        // The stuffed form of a piece is written once the next one is read, so the last goes
        // out with the final dot: a small message in one write.
        loop {
            piece.clear();
            if let Err(e) = read_piece(content, WRITE_CHUNK, &mut piece) {
                return Err(self.content_failed(e).await);
            }
            if piece.is_empty() {
                break;
            }
            if !out.is_empty() {
                self.write_content(&out).await?;
                out.clear();
            }
            self.record_piece(&mut log, &piece);
            stuffer.encode(&piece, &mut out);
        }
        self.end_content_log(log);
        self.record_sent(".");
        stuffer.finish(&mut out);
        self.write_content(&out).await
    }

    /// The content in `BDAT` chunks of at most `chunk` octets, the last one marked `LAST`
    /// (RFC 3030). No dot-stuffing: the content goes as is. Returns the answer to the last
    /// chunk.
    pub async fn bdat(&mut self, content: &[u8], chunk: usize) -> Result<Reply, ClientError> {
        self.bdat_from(&mut &content[..], chunk).await
    }

    /// [`bdat`](SmtpClient::bdat) with the content read from `content`: a chunk is sent once
    /// the next one is read (or the end is reached), so that the last is known as `LAST`.
    pub async fn bdat_from(
        &mut self,
        content: &mut (dyn Read + Send),
        chunk: usize,
    ) -> Result<Reply, ClientError> {
        let chunk = chunk.max(1);
        let mut log = ContentLog::new(self.cfg.transcript_data_lines, false);
        let (mut piece, mut next) = (Vec::new(), Vec::new());
        if let Err(e) = read_piece(content, chunk, &mut piece) {
            return Err(self.content_failed(e).await);
        }
        loop {
            next.clear();
            // A short piece was ended by the end of the content: nothing more to read.
            if piece.len() == chunk
                && let Err(e) = read_piece(content, chunk, &mut next)
            {
                return Err(self.content_failed(e).await);
            }
            let last = next.is_empty();
            let stage = if last { Stage::Message } else { Stage::Bdat };
            let started = Instant::now();
            let line = Command::Bdat {
                size: piece.len() as u64,
                last,
            }
            .to_string();
            self.record_sent(&line);
            self.record_piece(&mut log, &piece);
            if last {
                self.end_content_log(std::mem::take(&mut log));
            }
            // The command and its chunk in one write.
            let mut wire = Vec::with_capacity(line.len() + 2 + piece.len());
            wire.extend_from_slice(line.as_bytes());
            wire.extend_from_slice(b"\r\n");
            wire.extend_from_slice(&piece);
            self.write(Stage::Bdat, &wire).await?;
            let reply = self.read_reply(stage).await?;
            self.timings.push(Timing {
                stage,
                took: started.elapsed(),
            });
            let reply = expect(stage, reply, Reply::is_positive)?;
            if last {
                return Ok(reply);
            }
            std::mem::swap(&mut piece, &mut next);
        }
    }

    /// The content could not be read: the connection is closed in the middle of the content,
    /// so that the server does not take a cut message.
    async fn content_failed(&mut self, source: io::Error) -> ClientError {
        let e = self.fail(ClientError::Content { source });
        self.close().await;
        e
    }

    /// Records the content lines `piece` completes while the transcript's budget lasts.
    fn record_piece(&mut self, log: &mut ContentLog, piece: &[u8]) {
        let tls = self.stream.is_tls();
        for line in log.feed(piece) {
            self.transcript.record(Direction::Sent, tls, line);
        }
    }

    /// Records the last line of the content, if it had no line end, and how many lines were
    /// left out of the transcript.
    fn end_content_log(&mut self, log: ContentLog) {
        let (last, skipped) = log.finish();
        if let Some(line) = last {
            let tls = self.stream.is_tls();
            self.transcript.record(Direction::Sent, tls, line);
        }
        if skipped > 0 {
            self.transcript
                .info(format!("({skipped} more lines of content not shown)"));
        }
    }
}

/// Reads up to `max` octets of `content` into `into` (empty at the end of the content). Only
/// a read that returns nothing ends it, so that a checking reader sees its end.
fn read_piece(content: &mut (dyn Read + Send), max: usize, into: &mut Vec<u8>) -> io::Result<()> {
    content.take(max as u64).read_to_end(into).map(drop)
}

/// The lines of content that go into a transcript: the first `budget` lines, each as sent
/// (`stuffed`: with its dot doubled), the rest only counted. Fed piece by piece, it keeps at
/// most [`LOGGED_LINE`] octets of a line that a piece cut.
#[derive(Debug, Default)]
struct ContentLog {
    /// Lines that may still be recorded.
    budget: usize,
    /// Whether lines starting with `.` are shown doubled (DATA).
    stuffed: bool,
    /// The start of the line the last piece cut (only while the budget lasts).
    partial: Vec<u8>,
    /// Whether a line is under way (something after the last line end).
    open: bool,
    /// Lines left out.
    skipped: usize,
}

impl ContentLog {
    fn new(budget: usize, stuffed: bool) -> ContentLog {
        ContentLog {
            budget,
            stuffed,
            ..ContentLog::default()
        }
    }

    /// The lines `piece` completes, to record.
    fn feed(&mut self, piece: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        let mut rest = piece;
        while !rest.is_empty() {
            let (part, ended) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..i], true),
                None => (rest, false),
            };
            rest = &rest[(part.len() + usize::from(ended))..];
            if self.budget > 0 {
                let room = LOGGED_LINE.saturating_sub(self.partial.len());
                self.partial
                    .extend_from_slice(&part[..part.len().min(room)]);
            }
            self.open = !ended;
            if ended {
                lines.extend(self.take_line());
            }
        }
        lines
    }

    /// The line under way is complete: its text, or counted as left out.
    fn take_line(&mut self) -> Option<String> {
        if self.budget == 0 {
            self.skipped += 1;
            return None;
        }
        self.budget -= 1;
        let line = std::mem::take(&mut self.partial);
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        let mut text = String::from_utf8_lossy(line).into_owned();
        if self.stuffed && text.starts_with('.') {
            text.insert(0, '.');
        }
        Some(text)
    }

    /// The last line if it had no line end, and how many lines were left out.
    fn finish(mut self) -> (Option<String>, usize) {
        let last = match self.open {
            true => self.take_line(),
            false => None,
        };
        (last, self.skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `content` in pieces of `step` octets; the lines recorded, then the count left out.
    fn logged(content: &[u8], step: usize, budget: usize) -> (Vec<String>, usize) {
        let mut log = ContentLog::new(budget, true);
        let mut lines = Vec::new();
        for piece in content.chunks(step) {
            lines.extend(log.feed(piece));
        }
        let (last, skipped) = log.finish();
        lines.extend(last);
        (lines, skipped)
    }

    #[test]
    fn content_lines_in_the_transcript_whatever_the_pieces() {
        // (content, budget, lines, left out)
        let table: &[(&[u8], usize, &[&str], usize)] = &[
            (b"", 10, &[], 0),
            (b"a\r\nb\r\n", 10, &["a", "b"], 0),
            (b"a\r\n.b\r\nc", 10, &["a", "..b", "c"], 0),
            (b"a\n\nb", 10, &["a", "", "b"], 0),
            (b"a\r\nb\r\nc\r\n", 1, &["a"], 2),
            (b"a\r\nb", 0, &[], 2),
        ];
        for (content, budget, want, skipped) in table {
            for step in [1, 2, 3, 100] {
                let (lines, left) = logged(content, step, *budget);
                assert_eq!(lines, *want, "{content:?} in pieces of {step}");
                assert_eq!(left, *skipped, "{content:?} in pieces of {step}");
            }
        }
    }

    #[test]
    fn a_long_line_is_cut_in_the_transcript() {
        let line = vec![b'x'; 3 * LOGGED_LINE];
        let (lines, _) = logged(&line, 7, 5);
        assert_eq!(lines, vec!["x".repeat(LOGGED_LINE)]);
    }

    #[test]
    fn pieces_end_at_the_end_of_the_reader() {
        let mut content: &[u8] = b"abcdefg";
        let mut piece = Vec::new();
        let mut pieces = Vec::new();
        loop {
            piece.clear();
            read_piece(&mut content, 3, &mut piece).unwrap();
            if piece.is_empty() {
                break;
            }
            pieces.push(String::from_utf8(piece.clone()).unwrap());
        }
        assert_eq!(pieces, ["abc", "def", "g"]);
    }
}
