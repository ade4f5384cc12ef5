//! Live progress of a probe (and of `relais check`): what the engine tells as it goes, for a
//! terminal to show. The engine only calls [`Progress`]; how it is drawn (indicatif bars, in
//! the binary) is the caller's business. Without a `Progress` nothing is told.

use std::sync::Arc;

/// One thing the probe tells as it goes.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// The route is known: its text (MX hosts and their verdicts), and one label per address
    /// about to be probed (`host [address]`), in the order of the `index`es below.
    Route {
        /// The route's lines, as the report shows them.
        text: &'a str,
        /// `host [address]`, one per address.
        addresses: &'a [String],
    },
    /// Address `index` starts a stage (`connect`, `banner`, `ehlo`, `starttls`, …).
    Stage {
        /// Which address (see [`Event::Route`]).
        index: usize,
        /// The stage's name.
        stage: &'static str,
    },
    /// Address `index` is done: its section of the report, as text, and its worst verdict.
    Done {
        /// Which address.
        index: usize,
        /// The address's section, ready to print.
        section: &'a str,
        /// `ok`, `warn` or `fail`.
        worst: &'static str,
    },
    /// A step that is not one address's: `check`'s look-up of the other records.
    Step {
        /// What is being done.
        what: &'static str,
    },
}

/// Where the probe tells its progress, and how an address's section is written.
#[derive(Clone)]
pub struct Progress {
    /// The receiver of the events (called on the probe's thread, in order).
    sink: Arc<dyn Fn(Event<'_>) + Send + Sync>,
    /// A section carries the SMTP dialogue (`-v`).
    pub(crate) transcript: bool,
    /// A section carries its timing waterfall (`relais check`).
    pub(crate) waterfall: bool,
    /// The command whose title heads the route: `probe` or `check`.
    pub(crate) command: &'static str,
}

impl Progress {
    /// Progress told to `sink`; sections with the dialogue when `transcript`.
    pub fn new(transcript: bool, sink: impl Fn(Event<'_>) + Send + Sync + 'static) -> Progress {
        Progress {
            sink: Arc::new(sink),
            transcript,
            waterfall: false,
            command: "probe",
        }
    }

    pub(crate) fn emit(&self, event: Event<'_>) {
        (self.sink)(event);
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("transcript", &self.transcript)
            .field("waterfall", &self.waterfall)
            .field("command", &self.command)
            .finish_non_exhaustive()
    }
}
