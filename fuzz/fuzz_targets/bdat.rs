//! BDAT on its own (RFC 3030): the server session fed chunks whose content the fuzzer picks
//! (command lines, dots, `BDAT … LAST` included), with RSET and new transactions between them
//! and the whole wire cut in arbitrary pieces. Checked against a model of the transaction:
//! - the reply to every command is the one the model expects (250, 503 for a chunk without a
//!   transaction, 552 once over the size limit), in order, and nothing more: a chunk's content
//!   is never read as commands, even when its chunk is refused;
//! - every message completed is exactly the chunks of its transaction put together, nothing
//!   is completed over the size limit or without a LAST chunk;
//! - never a panic, the session never closes.
#![no_main]

use std::sync::Arc;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use relais_proto::{Event, Session, SessionConfig, Stored, Verdict};

#[derive(Debug, Arbitrary)]
enum Step {
    Chunk { content: Vec<u8>, last: bool },
    Rset,
    /// MAIL and RCPT when no transaction is open (NOOP may only end a pipelined group).
    Mail,
}

#[derive(Debug, Arbitrary)]
struct Script {
    cut: u8,
    max_size: u16,
    steps: Vec<Step>,
}

/// What the model expects: the wire, the reply codes in order, the messages completed.
struct Model {
    wire: Vec<u8>,
    codes: Vec<u16>,
    messages: Vec<Vec<u8>>,
    /// The open transaction's content so far, if one is open.
    tx: Option<Vec<u8>>,
    max: usize,
}

impl Model {
    fn command(&mut self, line: &str, code: u16) {
        self.wire.extend_from_slice(line.as_bytes());
        self.wire.extend_from_slice(b"\r\n");
        self.codes.push(code);
    }

    fn step(&mut self, step: &Step) {
        match step {
            Step::Rset => {
                self.command("RSET", 250);
                self.tx = None;
            }
            Step::Mail if self.tx.is_none() => {
                self.command("MAIL FROM:<a@example.net>", 250);
                self.command("RCPT TO:<u@example.com>", 250);
                self.tx = Some(Vec::new());
            }
            Step::Mail => {}
            Step::Chunk { content, last } => {
                let verb = format!("BDAT {}{}", content.len(), if *last { " LAST" } else { "" });
                self.wire.extend_from_slice(verb.as_bytes());
                self.wire.extend_from_slice(b"\r\n");
                self.wire.extend_from_slice(content);
                let Some(body) = &mut self.tx else {
                    self.codes.push(503);
                    return;
                };
                body.extend_from_slice(content);
                if self.max > 0 && body.len() > self.max {
                    self.codes.push(552);
                    self.tx = None;
                } else if *last {
                    self.codes.push(250);
                    self.messages.push(self.tx.take().unwrap_or_default());
                } else {
                    self.codes.push(250);
                }
            }
        }
    }
}

/// The codes of the final lines of the replies in `out`.
fn codes(out: &[u8]) -> Vec<u16> {
    String::from_utf8_lossy(out)
        .split_terminator("\r\n")
        .filter(|l| l.as_bytes().get(3) == Some(&b' '))
        .map(|l| l[..3].parse().expect("a reply code"))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(script) = Script::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let mut model = Model {
        wire: Vec::new(),
        codes: Vec::new(),
        messages: Vec::new(),
        tx: None,
        max: usize::from(script.max_size),
    };
    // EHLO alone: a client pipelines only once it has seen PIPELINING.
    model.command("EHLO client.example.net", 250);
    let ehlo = model.wire.len();
    model.step(&Step::Mail);
    for step in script.steps.iter().take(64) {
        model.step(step);
    }
    model.command("NOOP", 250);

    let mut cfg = SessionConfig::new("mx.example.com");
    cfg.max_message_size = u64::from(script.max_size);
    cfg.max_errors = 1000;
    let mut s = Session::new(Arc::new(cfg));
    s.handle_connect();
    let mut out = Vec::new();
    let mut messages = Vec::new();
    let mut body: Option<Vec<u8>> = None;
    let (first, rest) = model.wire.split_at(ehlo);
    let pieces = std::iter::once(first).chain(rest.chunks(usize::from(script.cut) + 1));
    for piece in pieces {
        s.handle_bytes(piece);
        while let Some(ev) = s.poll_event() {
            match ev {
                Event::CheckSender { .. } | Event::CheckRecipient { .. } => {
                    s.handle_verdict(Verdict::Accept)
                }
                Event::ContentStart(_) => {
                    assert!(body.is_none(), "content started twice");
                    body = Some(Vec::new());
                }
                Event::Body(b) => body
                    .as_mut()
                    .expect("body outside content")
                    .extend_from_slice(&b),
                Event::MessageComplete(env) => {
                    let b = body.take().expect("a message without content start");
                    assert_eq!(env.size as usize, b.len(), "size and content differ");
                    messages.push(b);
                    s.handle_stored(Stored::Queued(format!("ID{}", messages.len())));
                }
                Event::TransactionAborted => body = None,
                Event::Close => panic!(
                    "the session closed: {:?} after {:?}",
                    String::from_utf8_lossy(s.output()),
                    String::from_utf8_lossy(&model.wire)
                ),
                _ => {}
            }
        }
        out.extend_from_slice(s.output());
        s.clear_output();
    }
    assert!(!s.is_closed(), "the session closed");
    let got = codes(&out);
    // The greeting comes first.
    assert_eq!(got.first(), Some(&220));
    assert_eq!(got[1..], model.codes[..], "replies out of step");
    assert_eq!(messages, model.messages, "messages differ from their chunks");
});
