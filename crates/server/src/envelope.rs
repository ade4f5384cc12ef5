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

/// First line of every envelope record; the number changes when the format does.
const MAGIC: &str = "relais-envelope 1";

/// An envelope as kept in the spool: the SMTP envelope and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledEnvelope {
    /// The client, as logged: `name[ip]:port`.
    pub client: String,
    /// The SMTP envelope.
    pub envelope: Envelope,
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
        Ok(SpooledEnvelope { client, envelope })
    }
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
