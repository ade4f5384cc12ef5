//! The server session driven by structured sequences of inputs (or, for inputs that start
//! with `T`, a client transcript as it is) (bytes, from the SMTP alphabet
//! or raw, and the answers to its questions, chosen by the fuzzer), with the invariants of
//! `crates/proto/tests/random_sessions.rs` checked after every step:
//! - never a panic, never a session stuck with events (bounded);
//! - every output line a well-formed reply line (`ddd` and a space or a dash), CRLF-ended;
//! - a message completed only after an accepted MAIL and at least one accepted RCPT, with the
//!   content handed out since `ContentStart`, within the size limit;
//! - nothing after the close.
#![no_main]

use std::sync::Arc;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use relais_proto::replies;
use relais_proto::{AuthOutcome, Event, Session, SessionConfig, Stored, Verdict};

/// The SMTP alphabet: random bytes mapped onto it reach real paths (as Stalwart's target does).
const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz:=-<>,;. @\r\n\"()\\";

/// Whole pieces the fuzzer may pick.
const WORDS: &[&str] = &[
    "EHLO x\r\n",
    "MAIL FROM:<a@b.c>\r\n",
    "MAIL FROM:<Anne <a(c)@b.c>>\r\n",
    "RCPT TO:<u@example.com>\r\n",
    "RCPT TO:<postmaster>\r\n",
    "DATA\r\n",
    "BDAT 5\r\n",
    "BDAT 3 LAST\r\n",
    "\r\n.\r\n",
    "RSET\r\n",
    "STARTTLS\r\n",
    "AUTH PLAIN\r\n",
    "AGFsaWNlAHNlY3JldA==\r\n",
    "QUIT\r\n",
];

#[derive(Debug, Arbitrary)]
enum Input {
    /// Bytes mapped onto the SMTP alphabet.
    Smtp(Vec<u8>),
    /// Raw bytes.
    Raw(Vec<u8>),
    /// A whole command or ending.
    Word(u8),
    /// The idle timeout fired.
    Timeout,
    /// The client went away.
    Eof,
    /// The server stops.
    Shutdown,
}

#[derive(Debug, Arbitrary)]
struct Script {
    starttls: bool,
    auth_without_tls: bool,
    forbid_pipelining: bool,
    max_errors: u8,
    /// Answers to the session's questions, used in turn (accept when true).
    answers: Vec<bool>,
    inputs: Vec<Input>,
}

impl Script {
    /// A transcript as it is (the seeds from `session_transcripts.rs`, `T` then the client's
    /// bytes): cut in pieces of 7, every question answered yes.
    fn transcript(bytes: &[u8]) -> Script {
        Script {
            starttls: true,
            auth_without_tls: false,
            forbid_pipelining: false,
            max_errors: 20,
            answers: vec![true],
            inputs: bytes.chunks(7).map(|c| Input::Raw(c.to_vec())).collect(),
        }
    }
}

fn check_output(out: &[u8]) {
    let text = String::from_utf8_lossy(out);
    for line in text.split_terminator("\r\n") {
        let b = line.as_bytes();
        assert!(
            b.len() >= 4 && b[..3].iter().all(u8::is_ascii_digit) && (b[3] == b' ' || b[3] == b'-'),
            "malformed reply line {line:?} in {text:?}"
        );
    }
    assert!(
        out.is_empty() || out.ends_with(b"\r\n"),
        "unterminated {text:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let script = match data.strip_prefix(b"T") {
        Some(t) => Script::transcript(t),
        None => match Script::arbitrary_take_rest(Unstructured::new(data)) {
            Ok(s) => s,
            Err(_) => return,
        },
    };
    let mut cfg = SessionConfig::new("mx.example.com");
    cfg.max_message_size = 300;
    cfg.max_recipients = 3;
    cfg.max_errors = 3 + u32::from(script.max_errors % 40);
    cfg.starttls = script.starttls;
    cfg.auth_mechanisms = vec!["PLAIN".into(), "LOGIN".into()];
    cfg.auth_without_tls = script.auth_without_tls;
    cfg.forbid_unauth_pipelining = script.forbid_pipelining;
    let mut s = Session::new(Arc::new(cfg));
    s.handle_connect();
    let mut answers = script.answers.iter().copied().cycle();
    let mut answer = move || answers.next().unwrap_or(true);
    let (mut sender_ok, mut rcpts_ok, mut in_content) = (false, 0usize, false);
    let mut body = Vec::new();
    let mut stored = 0;
    for input in script.inputs.iter().take(400) {
        if s.is_closed() {
            s.handle_bytes(b"NOOP\r\n");
            assert!(s.output().is_empty(), "output after the close");
            assert!(s.poll_event().is_none(), "events after the close");
            return;
        }
        match input {
            Input::Smtp(b) => {
                let mapped: Vec<u8> = b
                    .iter()
                    .map(|x| ALPHABET[usize::from(*x) % ALPHABET.len()])
                    .collect();
                s.handle_bytes(&mapped);
            }
            Input::Raw(b) => s.handle_bytes(b),
            Input::Word(w) => s.handle_bytes(WORDS[usize::from(*w) % WORDS.len()].as_bytes()),
            Input::Timeout => s.handle_timeout(),
            Input::Eof => s.handle_eof(),
            Input::Shutdown => s.handle_shutdown(),
        }
        let mut events = 0;
        while let Some(ev) = s.poll_event() {
            events += 1;
            assert!(events < 100_000, "endless events");
            match ev {
                Event::CheckSender { .. } => {
                    let ok = answer();
                    if ok {
                        (sender_ok, rcpts_ok, in_content) = (true, 0, false);
                        body.clear();
                    }
                    s.handle_verdict(if ok {
                        Verdict::Accept
                    } else {
                        Verdict::Reject(replies::auth_required())
                    });
                }
                Event::CheckRecipient { to, .. } => {
                    let ok = answer();
                    rcpts_ok += usize::from(ok);
                    s.handle_verdict(if ok {
                        Verdict::Accept
                    } else {
                        Verdict::Reject(replies::user_unknown(&to))
                    });
                }
                Event::ContentStart(env) => {
                    assert!(
                        sender_ok && !env.recipients.is_empty(),
                        "content without MAIL, RCPT"
                    );
                    in_content = true;
                    body.clear();
                }
                Event::Body(b) => {
                    assert!(in_content, "body outside content");
                    body.extend_from_slice(&b);
                }
                Event::MessageComplete(env) => {
                    assert!(sender_ok && rcpts_ok > 0, "a message without MAIL and RCPT");
                    assert_eq!(env.recipients.len(), rcpts_ok);
                    assert_eq!(env.size as usize, body.len(), "size and content differ");
                    assert!(env.size <= 300, "over the size limit");
                    (sender_ok, in_content) = (false, false);
                    stored += 1;
                    s.handle_stored(if answer() {
                        Stored::Queued(format!("ID{stored}"))
                    } else {
                        Stored::Failed(replies::queue_write_error())
                    });
                }
                Event::TransactionAborted => {
                    (sender_ok, in_content) = (false, false);
                    body.clear();
                }
                Event::StartTls { .. } => {
                    sender_ok = false;
                    if answer() {
                        s.handle_tls_established();
                    } else {
                        s.handle_eof();
                    }
                }
                Event::Authenticate { .. } => s.handle_auth(if answer() {
                    AuthOutcome::Success
                } else {
                    AuthOutcome::Failure(replies::auth_failed())
                }),
                Event::Helo { .. }
                | Event::Rejected { .. }
                | Event::PipeliningViolation { .. }
                | Event::Close => {}
            }
        }
        check_output(s.output());
        s.clear_output();
    }
});
