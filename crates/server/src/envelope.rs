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

use relais_proto::session::Recipient;
use relais_proto::{Command, Envelope};

use crate::outcome::Outcome;

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
    /// Delivery progress (all pending for a new message).
    pub state: QueueState,
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
}

impl QueueState {
    /// The outcome so far of recipient `i`.
    pub fn outcome(&self, i: usize) -> Option<&Outcome> {
        self.recipients.get(i).and_then(Option::as_ref)
    }

    /// True if recipient `i` still needs delivering.
    pub fn is_pending(&self, i: usize) -> bool {
        !matches!(
            self.outcome(i),
            Some(Outcome::Delivered(_) | Outcome::Failed { .. })
        )
    }

    /// Records the outcome of recipient `i`.
    pub fn set(&mut self, i: usize, outcome: Outcome) {
        if self.recipients.len() <= i {
            self.recipients.resize(i + 1, None);
        }
        self.recipients[i] = Some(outcome);
    }
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
            let line = match o {
                None => continue,
                Some(Outcome::Delivered(d)) => format!("state {i} sent {}", one_line(d)),
                Some(Outcome::Deferred { status, reason }) => {
                    format!("state {i} deferred {status} {}", one_line(reason))
                }
                Some(Outcome::Failed { status, reason }) => {
                    format!("state {i} bounced {status} {}", one_line(reason))
                }
            };
            s.push_str(&line);
            s.push('\n');
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
        let mut state = QueueState::default();
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
                "attempts" => state.attempts = rest.parse().map_err(|_| bad(line))?,
                "next" => state.next_attempt = rest.parse().map_err(|_| bad(line))?,
                "held" => state.held = true,
                "warned" => state.warned = true,
                "state" => {
                    let mut parts = rest.splitn(3, ' ');
                    let i: usize = parts
                        .next()
                        .and_then(|n| n.parse().ok())
                        .ok_or_else(|| bad(line))?;
                    let kind = parts.next().ok_or_else(|| bad(line))?;
                    let tail = parts.next().unwrap_or("");
                    let (status, reason) = tail.split_once(' ').unwrap_or((tail, ""));
                    let outcome = match kind {
                        "sent" => Outcome::Delivered(tail.to_string()),
                        "deferred" => Outcome::deferred(status, reason),
                        "bounced" => Outcome::failed(status, reason),
                        _ => return Err(bad(line)),
                    };
                    if i >= 10_000 {
                        return Err(bad(line));
                    }
                    state.set(i, outcome);
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
        Ok(SpooledEnvelope {
            client,
            envelope,
            state,
        })
    }
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
    fn round_trip() {
        let env = SpooledEnvelope {
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
