//! How an envelope is written in the spool: plain text, one item per line, with MAIL and RCPT
//! written as the SMTP commands themselves so the protocol crate's parser reads them back.
//!
//! ```text
//! relais-envelope 1
//! client unknown[127.0.0.1]:50312
//! helo EHLO client.example
//! MAIL FROM:<a@example.org> SIZE=1234 BODY=8BITMIME
//! RCPT TO:<u@example.com> NOTIFY=SUCCESS,FAILURE
//! ```
//!
//! What the door decided at arrival follows, when it decided something: `header <field>` for
//! each header field to put in front of the message at delivery (its `Authentication-Results`,
//! known only at the end of the content, when the content is already in the spool), one line
//! each, unfolded; `junk` when the message goes to the recipients' Junk folders (DMARC
//! `p=quarantine`).
//!
//! Delivery progress follows, once there is some: `attempts`, `next`, `held`, `warned`, one
//! `state <recipient> sent|deferred|bounced …` line per recipient with an outcome, and for a
//! recipient that is an alias, its targets, numbered from 0 in the order of their lines, with
//! their own outcomes:
//!
//! ```text
//! state 0 deferred 4.3.0 command timed out
//! expand 0 mailbox alice
//! expand 0 forward bob@example.org
//! expand 0 pipe /usr/local/bin/archive --list staff
//! expand 0 file /var/mail/staff.mbox
//! expand 0 fail No such person at this address
//! xstate 0 sent delivered to maildir /var/mail/alice/new/…
//! xstate 2 deferred 4.3.0 command "/usr/local/bin/archive --list staff" exited with status 75
//! ```

use std::path::PathBuf;

use relais_proto::session::Recipient;
use relais_proto::{Command, Envelope};

use crate::outcome::Outcome;
use crate::target::Target;

/// First line of every envelope record; the number changes when the format does.
const MAGIC: &str = "relais-envelope 1";

/// An envelope as kept in the spool: the SMTP envelope, where it came from, and how far its
/// delivery got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledEnvelope {
    /// The client, as logged: `name[ip]:port`.
    pub client: String,
    /// The SMTP envelope.
    pub envelope: Envelope,
    /// What the door decided at arrival.
    pub arrival: Arrival,
    /// Delivery progress (all pending for a new message).
    pub state: QueueState,
}

/// What the door decided about a message as it arrived.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Arrival {
    /// Header fields to put in front of the content at delivery, one line each, without CRLF.
    pub headers: Vec<String>,
    /// File into the recipients' Junk folders.
    pub junk: bool,
    /// The header section as content filters changed it (our trace fields first, each field
    /// with its CRLF): at delivery it replaces the one stored with the content, which the
    /// spool never rewrites.
    pub section: Option<Vec<u8>>,
}

impl Arrival {
    /// The header fields, CRLF-terminated, as they go in front of the content.
    pub fn header_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for h in &self.headers {
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out
    }
}

/// Delivery progress of a queued message, rewritten in the spool after each attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueState {
    /// Delivery attempts made so far.
    pub attempts: u32,
    /// Unix time (seconds) of the next attempt; 0 for as soon as possible.
    pub next_attempt: u64,
    /// Kept in the queue by `relais queue hold` until released.
    pub held: bool,
    /// A delay warning was sent already.
    pub warned: bool,
    /// Per recipient (same order as the envelope): `None` while nothing final happened yet,
    /// else the last outcome. A `Deferred` outcome is still pending; it keeps the reason.
    pub recipients: Vec<Option<Outcome>>,
    /// The targets of recipients that are aliases, recorded when first expanded so that a
    /// retry delivers to the same targets and never again to one already done. An expanded
    /// recipient stays pending until all its targets are final.
    pub expansions: Vec<Expansion>,
}

/// One target of an expanded alias, with its own progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expansion {
    /// The index of the recipient (the alias) it came from.
    pub parent: usize,
    /// Where it goes.
    pub target: Target,
    /// `None` until something happened; a `Deferred` outcome is still pending.
    pub outcome: Option<Outcome>,
}

impl Expansion {
    /// True if this target still needs delivering.
    pub fn is_pending(&self) -> bool {
        !self.outcome.as_ref().is_some_and(Outcome::is_final)
    }
}

impl QueueState {
    /// The outcome so far of recipient `i`.
    pub fn outcome(&self, i: usize) -> Option<&Outcome> {
        self.recipients.get(i).and_then(Option::as_ref)
    }

    /// True if recipient `i` still needs delivering.
    pub fn is_pending(&self, i: usize) -> bool {
        !self.outcome(i).is_some_and(Outcome::is_final)
    }

    /// Records the outcome of recipient `i`.
    pub fn set(&mut self, i: usize, outcome: Outcome) {
        if self.recipients.len() <= i {
            self.recipients.resize(i + 1, None);
        }
        self.recipients[i] = Some(outcome);
    }

    /// True if recipient `i` was expanded (it has targets of its own).
    pub fn is_expanded(&self, i: usize) -> bool {
        self.expansions.iter().any(|x| x.parent == i)
    }

    /// The targets of recipient `i`, with their numbers.
    pub fn expansions_of(&self, i: usize) -> impl Iterator<Item = (usize, &Expansion)> {
        self.expansions
            .iter()
            .enumerate()
            .filter(move |(_, x)| x.parent == i)
    }

    /// Records the targets recipient `i` expands to (all pending); returns their numbers.
    pub fn expand(&mut self, i: usize, targets: Vec<Target>) -> std::ops::Range<usize> {
        let start = self.expansions.len();
        self.expansions
            .extend(targets.into_iter().map(|target| Expansion {
                parent: i,
                target,
                outcome: None,
            }));
        start..self.expansions.len()
    }

    /// Records the outcome of target `n`.
    pub fn set_expansion(&mut self, n: usize, outcome: Outcome) {
        if let Some(x) = self.expansions.get_mut(n) {
            x.outcome = Some(outcome);
        }
    }
}

/// A target as a word and a value, for the `expand` line.
fn target_text(t: &Target) -> (&'static str, String) {
    match t {
        Target::Mailbox(m) => ("mailbox", m.clone()),
        Target::Forward(a) => ("forward", a.clone()),
        Target::Pipe(c) => ("pipe", c.clone()),
        Target::File(p) => ("file", p.to_string_lossy().into_owned()),
        Target::Fail(t) => ("fail", t.clone()),
        // A system user's name has no space: the first one ends it.
        Target::UserPipe(u, c) => ("userpipe", format!("{u} {c}")),
        Target::UserFile(u, p) => ("userfile", format!("{u} {}", p.to_string_lossy())),
    }
}

/// A target read back from its word and value.
fn parse_target(kind: &str, value: &str) -> Option<Target> {
    if value.is_empty() {
        return None;
    }
    let v = value.to_string();
    Some(match kind {
        "mailbox" => Target::Mailbox(v),
        "forward" => Target::Forward(v),
        "pipe" => Target::Pipe(v),
        "file" => Target::File(PathBuf::from(v)),
        "fail" => Target::Fail(v),
        "userpipe" => {
            let (u, c) = value.split_once(' ')?;
            Target::UserPipe(u.to_string(), c.to_string())
        }
        "userfile" => {
            let (u, p) = value.split_once(' ')?;
            Target::UserFile(u.to_string(), PathBuf::from(p))
        }
        _ => return None,
    })
}

/// An outcome as the tail of a `state` or `xstate` line.
fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Delivered(d) => format!("sent {}", one_line(d)),
        Outcome::Deferred { status, reason } => {
            format!("deferred {status} {}", one_line(reason))
        }
        Outcome::Failed { status, reason } => format!("bounced {status} {}", one_line(reason)),
    }
}

/// Reads `<n> <outcome>` (the rest of a `state` or `xstate` line).
fn parse_numbered_outcome(rest: &str) -> Option<(usize, Outcome)> {
    let mut parts = rest.splitn(3, ' ');
    let i: usize = parts.next()?.parse().ok()?;
    let kind = parts.next()?;
    let tail = parts.next().unwrap_or("");
    let (status, reason) = tail.split_once(' ').unwrap_or((tail, ""));
    let outcome = match kind {
        "sent" => Outcome::Delivered(tail.to_string()),
        "deferred" => Outcome::deferred(status, reason),
        "bounced" => Outcome::failed(status, reason),
        _ => return None,
    };
    (i < 10_000).then_some((i, outcome))
}

/// Why a stored envelope could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("bad envelope record: {0}")]
pub struct EnvelopeError(pub String);

impl SpooledEnvelope {
    /// The spool form.
    pub fn encode(&self) -> Vec<u8> {
        let e = &self.envelope;
        let mut s = String::with_capacity(256);
        s.push_str(MAGIC);
        s.push('\n');
        s.push_str(&format!("client {}\n", self.client));
        s.push_str(&format!(
            "helo {} {}\n",
            if e.esmtp { "EHLO" } else { "HELO" },
            e.helo
        ));
        s.push_str(&format!("size {}\n", e.size));
        if e.chunked {
            s.push_str("chunked\n");
        }
        if e.bare_lf {
            s.push_str("bare-lf\n");
        }
        let mail = Command::Mail {
            from: e.from.clone(),
            params: e.mail_params.clone(),
        };
        s.push_str(&format!("{mail}\n"));
        for r in &e.recipients {
            let rcpt = Command::Rcpt {
                to: r.to.clone(),
                params: r.params.clone(),
            };
            s.push_str(&format!("{rcpt}\n"));
        }
        for h in &self.arrival.headers {
            s.push_str(&format!("header {}\n", one_line(h)));
        }
        if self.arrival.junk {
            s.push_str("junk\n");
        }
        if let Some(section) = &self.arrival.section {
            s.push_str(&format!("section {}\n", escape(section)));
        }
        let st = &self.state;
        if st.attempts > 0 {
            s.push_str(&format!("attempts {}\n", st.attempts));
        }
        if st.next_attempt > 0 {
            s.push_str(&format!("next {}\n", st.next_attempt));
        }
        if st.held {
            s.push_str("held\n");
        }
        if st.warned {
            s.push_str("warned\n");
        }
        for (i, o) in st.recipients.iter().enumerate() {
            if let Some(o) = o {
                s.push_str(&format!("state {i} {}\n", outcome_text(o)));
            }
        }
        for x in &st.expansions {
            let (kind, value) = target_text(&x.target);
            s.push_str(&format!(
                "expand {} {kind} {}\n",
                x.parent,
                one_line(&value)
            ));
        }
        for (n, x) in st.expansions.iter().enumerate() {
            if let Some(o) = &x.outcome {
                s.push_str(&format!("xstate {n} {}\n", outcome_text(o)));
            }
        }
        s.into_bytes()
    }

    /// Reads the spool form back.
    pub fn decode(bytes: &[u8]) -> Result<SpooledEnvelope, EnvelopeError> {
        let text = std::str::from_utf8(bytes).map_err(|_| EnvelopeError("not UTF-8".into()))?;
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(EnvelopeError("unknown format".into()));
        }
        let mut client = String::new();
        let mut envelope = Envelope {
            helo: String::new(),
            esmtp: false,
            from: relais_proto::ReversePath::Null,
            mail_params: Default::default(),
            recipients: Vec::new(),
            size: 0,
            chunked: false,
            bare_lf: false,
        };
        let mut saw_mail = false;
        let mut arrival = Arrival::default();
        let mut state = QueueState::default();
        let mut xstates = Vec::new();
        let bad = |line: &str| EnvelopeError(format!("bad line {line:?}"));
        for line in lines {
            let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "client" => client = rest.to_string(),
                "helo" => {
                    let (verb, name) = rest.split_once(' ').unwrap_or((rest, ""));
                    envelope.esmtp = verb == "EHLO";
                    envelope.helo = name.to_string();
                }
                "size" => {
                    envelope.size = rest
                        .parse()
                        .map_err(|_| EnvelopeError(format!("bad size {rest:?}")))?
                }
                "header" if !rest.is_empty() => arrival.headers.push(rest.to_string()),
                "junk" => arrival.junk = true,
                "section" => arrival.section = Some(unescape(rest).ok_or_else(|| bad(line))?),
                "attempts" => state.attempts = rest.parse().map_err(|_| bad(line))?,
                "next" => state.next_attempt = rest.parse().map_err(|_| bad(line))?,
                "held" => state.held = true,
                "warned" => state.warned = true,
                "state" => {
                    let (i, outcome) = parse_numbered_outcome(rest).ok_or_else(|| bad(line))?;
                    state.set(i, outcome);
                }
                "expand" => {
                    let mut parts = rest.splitn(3, ' ');
                    let parent: usize = parts
                        .next()
                        .and_then(|n| n.parse().ok())
                        .ok_or_else(|| bad(line))?;
                    let kind = parts.next().unwrap_or("");
                    let target =
                        parse_target(kind, parts.next().unwrap_or("")).ok_or_else(|| bad(line))?;
                    if state.expansions.len() >= 100_000 {
                        return Err(bad(line));
                    }
                    state.expansions.push(Expansion {
                        parent,
                        target,
                        outcome: None,
                    });
                }
                "xstate" => {
                    let (n, outcome) = parse_numbered_outcome(rest).ok_or_else(|| bad(line))?;
                    xstates.push((n, outcome, line));
                }
                "chunked" => envelope.chunked = true,
                "bare-lf" => envelope.bare_lf = true,
                "MAIL" | "RCPT" => match Command::parse(line.as_bytes()) {
                    Ok(Command::Mail { from, params }) => {
                        envelope.from = from;
                        envelope.mail_params = params;
                        saw_mail = true;
                    }
                    Ok(Command::Rcpt { to, params }) => {
                        envelope.recipients.push(Recipient { to, params })
                    }
                    _ => return Err(EnvelopeError(format!("bad line {line:?}"))),
                },
                _ => return Err(EnvelopeError(format!("unknown line {line:?}"))),
            }
        }
        if !saw_mail || envelope.recipients.is_empty() {
            return Err(EnvelopeError("no sender or no recipients".into()));
        }
        state.recipients.resize(envelope.recipients.len(), None);
        if let Some(x) = state
            .expansions
            .iter()
            .find(|x| x.parent >= envelope.recipients.len())
        {
            return Err(EnvelopeError(format!(
                "expansion of recipient {}, which does not exist",
                x.parent
            )));
        }
        for (n, outcome, line) in xstates {
            match state.expansions.get_mut(n) {
                Some(x) => x.outcome = Some(outcome),
                None => return Err(bad(line)),
            }
        }
        Ok(SpooledEnvelope {
            client,
            envelope,
            arrival,
            state,
        })
    }
}

/// Octets on one line of the record: printable ASCII as is, `\\` for a backslash, `\xHH` for
/// the rest.
fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => s.push_str("\\\\"),
            b' '..=b'~' => s.push(char::from(b)),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

/// The octets of [`escape`]d text; `None` when it is not.
fn unescape(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b.get(i + 1)? {
            b'\\' => {
                out.push(b'\\');
                i += 2;
            }
            b'x' => {
                let hex = std::str::from_utf8(b.get(i + 2..i + 4)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 4;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Text made safe for one line of the record.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use relais_proto::{MailParams, Mailbox, RcptParams, ReversePath};

    #[test]
    fn bad_escapes() {
        for bad in ["\\q", "\\x4", "\\xzz", "end\\"] {
            assert_eq!(unescape(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn round_trip() {
        let env = SpooledEnvelope {
            arrival: Arrival {
                headers: vec![
                    "Authentication-Results: mx.example.com; spf=pass smtp.mailfrom=a@b".into(),
                    "X-Second: two".into(),
                ],
                junk: true,
                section: Some(b"Received: x\r\nX-Spam: \\yes\xe9\r\n\tfolded\r\n".to_vec()),
            },
            client: "unknown[127.0.0.1]:4000".into(),
            envelope: Envelope {
                helo: "client.example".into(),
                esmtp: true,
                from: ReversePath::Mailbox(Mailbox::parse("\"odd sender\"@example.org").unwrap()),
                mail_params: MailParams::parse(
                    "SIZE=10 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x+2By",
                )
                .unwrap(),
                recipients: vec![
                    Recipient {
                        to: Mailbox::parse("jöran@example.com").unwrap(),
                        params: RcptParams::parse("NOTIFY=SUCCESS,DELAY ORCPT=rfc822;j+40x")
                            .unwrap(),
                    },
                    Recipient {
                        to: relais_proto::address::parse_forward_path("postmaster").unwrap(),
                        params: RcptParams::default(),
                    },
                ],
                size: 10,
                chunked: true,
                bare_lf: true,
            },
            state: QueueState {
                attempts: 2,
                next_attempt: 1_795_356_537,
                held: true,
                warned: false,
                recipients: vec![
                    Some(Outcome::Delivered("maildir /x/new/1".into())),
                    Some(Outcome::deferred(
                        "4.4.1",
                        "connect to mx.example.org[192.0.2.1]:25: Connection refused",
                    )),
                ],
                expansions: vec![
                    Expansion {
                        parent: 1,
                        target: Target::Mailbox("alice".into()),
                        outcome: Some(Outcome::Delivered("maildir /x/new/2".into())),
                    },
                    Expansion {
                        parent: 1,
                        target: Target::Forward("Bob@example.org".into()),
                        outcome: None,
                    },
                    Expansion {
                        parent: 1,
                        target: Target::Pipe("/usr/bin/archive --list \"staff\", x".into()),
                        outcome: Some(Outcome::deferred("4.3.0", "command timed out after 600s")),
                    },
                    Expansion {
                        parent: 0,
                        target: Target::File("/var/mail/my box".into()),
                        outcome: Some(Outcome::failed("5.2.0", "cannot open")),
                    },
                    Expansion {
                        parent: 1,
                        target: Target::Fail("No such person at this address".into()),
                        outcome: None,
                    },
                    Expansion {
                        parent: 1,
                        target: Target::UserPipe("alice".into(), "/usr/bin/vacation a b".into()),
                        outcome: None,
                    },
                    Expansion {
                        parent: 1,
                        target: Target::UserFile("alice".into(), "/home/alice/my mbox".into()),
                        outcome: None,
                    },
                ],
            },
        };
        let bytes = env.encode();
        assert_eq!(SpooledEnvelope::decode(&bytes).unwrap(), env);
        let null = SpooledEnvelope {
            envelope: Envelope {
                from: ReversePath::Null,
                ..env.envelope.clone()
            },
            ..env
        };
        assert_eq!(SpooledEnvelope::decode(&null.encode()).unwrap(), null);
    }

    #[test]
    fn expansions_are_readable_lines() {
        let mut state = QueueState {
            recipients: vec![None],
            ..Default::default()
        };
        let n = state.expand(
            0,
            vec![
                Target::Mailbox("alice".into()),
                Target::Pipe("/bin/x a\nb".into()),
            ],
        );
        assert_eq!(n, 0..2);
        state.set_expansion(1, Outcome::deferred("4.3.0", "busy\r\nnow"));
        assert!(state.is_expanded(0));
        assert_eq!(state.expansions_of(0).count(), 2);
        assert!(state.expansions[0].is_pending() && state.expansions[1].is_pending());
        let env = SpooledEnvelope {
            arrival: Arrival::default(),
            client: "local".into(),
            envelope: Envelope {
                helo: "h".into(),
                esmtp: true,
                from: ReversePath::Null,
                mail_params: MailParams::default(),
                recipients: vec![Recipient {
                    to: Mailbox::parse("staff@example.com").unwrap(),
                    params: RcptParams::default(),
                }],
                size: 1,
                chunked: false,
                bare_lf: false,
            },
            state,
        };
        let text = String::from_utf8(env.encode()).unwrap();
        assert!(
            text.ends_with(
                "expand 0 mailbox alice\nexpand 0 pipe /bin/x a b\nxstate 1 deferred 4.3.0 busy  now\n"
            ),
            "{text}"
        );
        let back = SpooledEnvelope::decode(text.as_bytes()).unwrap();
        assert_eq!(back.state.expansions.len(), 2);
        assert_eq!(
            back.state.expansions[1].target,
            Target::Pipe("/bin/x a b".into())
        );
        // Lines that do not make sense are errors, not guesses.
        let base = text[..text.find("expand").unwrap()].to_string();
        for bad in [
            "expand 1 mailbox bob\n",
            "expand 0 socket x\n",
            "expand 0 mailbox\n",
            "expand x mailbox bob\n",
            "expand 0 mailbox bob\nxstate 1 sent x\n",
            "expand 0 mailbox bob\nxstate 0 lost x\n",
        ] {
            let r = SpooledEnvelope::decode(format!("{base}{bad}").as_bytes());
            assert!(r.is_err(), "{bad:?}: {r:?}");
        }
    }

    #[test]
    fn garbage_is_an_error() {
        for bad in [
            &b"nope"[..],
            b"relais-envelope 1\nMAIL FROM:<a@b.c>\n",
            b"relais-envelope 1\nwhat\n",
            b"\xff",
        ] {
            assert!(SpooledEnvelope::decode(bad).is_err());
        }
    }
}
