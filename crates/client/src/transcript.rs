//! The transcript: who said what, when, and whether under TLS.
//!
//! Every line the client sends or receives is recorded as an [`Entry`], with the time since the
//! connection attempt started. A caller that wants to show the dialogue as it happens (swaks
//! style) installs a sink with [`Transcript::with_sink`]; every entry goes to it the moment it is
//! recorded, including the ones recorded just before an error is returned.

use std::fmt;
use std::time::{Duration, Instant};

/// Who produced a transcript line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Sent by the client.
    Sent,
    /// Received from the server.
    Received,
    /// A note from the client (connecting, TLS details, a fallback taken).
    Info,
    /// An error the client ran into.
    Error,
}

impl Direction {
    /// A short lower-case name, stable for JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Sent => "sent",
            Direction::Received => "received",
            Direction::Info => "info",
            Direction::Error => "error",
        }
    }
}

/// One line of the transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Time since the connection attempt started.
    pub at: Duration,
    /// Who produced it.
    pub dir: Direction,
    /// True when the line went through TLS.
    pub tls: bool,
    /// The line, without CRLF.
    pub text: String,
}

impl Entry {
    /// The swaks-style marker: `<-` received, ` ->` sent, `<~` and ` ~>` under TLS, `===`
    /// information, `***` errors. Always three characters wide.
    pub fn marker(&self) -> &'static str {
        match (self.dir, self.tls) {
            (Direction::Received, false) => "<- ",
            (Direction::Received, true) => "<~ ",
            (Direction::Sent, false) => " ->",
            (Direction::Sent, true) => " ~>",
            (Direction::Info, _) => "===",
            (Direction::Error, _) => "***",
        }
    }
}

impl fmt::Display for Entry {
    /// `<-  220 mx.example.com ESMTP`: marker and text, without the time.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.marker(), self.text)
    }
}

/// Receives each entry as it is recorded.
pub type Sink = Box<dyn FnMut(&Entry) + Send>;

/// The lines of one session, in order.
pub struct Transcript {
    /// What was recorded so far.
    pub entries: Vec<Entry>,
    /// When the connection attempt started: the zero of every [`Entry::at`].
    start: Instant,
    /// Where live entries go, if anywhere.
    sink: Option<Sink>,
}

impl fmt::Debug for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transcript")
            .field("entries", &self.entries)
            .field("sink", &self.sink.is_some())
            .finish()
    }
}

impl Default for Transcript {
    fn default() -> Self {
        Self::new()
    }
}

impl Transcript {
    /// An empty transcript whose clock starts now.
    pub fn new() -> Self {
        Transcript {
            entries: Vec::new(),
            start: Instant::now(),
            sink: None,
        }
    }

    /// An empty transcript whose clock starts now, sending every entry to `sink` as well.
    pub fn with_sink(sink: Sink) -> Self {
        Transcript {
            sink: Some(sink),
            ..Self::new()
        }
    }

    /// When the clock started.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Time since the clock started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Records a line.
    pub fn record(&mut self, dir: Direction, tls: bool, text: impl Into<String>) {
        let entry = Entry {
            at: self.start.elapsed(),
            dir,
            tls,
            text: text.into(),
        };
        if let Some(sink) = self.sink.as_mut() {
            sink(&entry);
        }
        self.entries.push(entry);
    }

    /// Records a note.
    pub fn info(&mut self, text: impl Into<String>) {
        self.record(Direction::Info, false, text);
    }

    /// Records an error.
    pub fn error(&mut self, text: impl Into<String>) {
        self.record(Direction::Error, false, text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn markers_and_sink() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink_seen = Arc::clone(&seen);
        let mut t = Transcript::with_sink(Box::new(move |e: &Entry| {
            sink_seen.lock().unwrap().push(e.to_string())
        }));
        t.record(Direction::Received, false, "220 mx ESMTP");
        t.record(Direction::Sent, false, "EHLO me");
        t.record(Direction::Sent, true, "EHLO me");
        t.record(Direction::Received, true, "250 mx");
        t.info("TLS started");
        t.error("timed out");
        let want = [
            "<-  220 mx ESMTP",
            " -> EHLO me",
            " ~> EHLO me",
            "<~  250 mx",
            "=== TLS started",
            "*** timed out",
        ];
        assert_eq!(*seen.lock().unwrap(), want);
        assert_eq!(t.entries.len(), 6);
        assert!(t.entries.windows(2).all(|w| w[0].at <= w[1].at));
    }
}
