//! Randomized sessions: byte streams drawn from the SMTP alphabet (as Stalwart's fuzz target
//! does, so that random input reaches real paths), cut into random pieces, with random answers
//! to the session's questions. Invariants checked after every step:
//! - no panic, and the session always comes back wanting input (no hang);
//! - every output line is a well-formed reply line (`ddd` + space or dash);
//! - a message is only ever completed after an accepted sender and at least one accepted
//!   recipient, and its content is exactly what was handed out as `Body` since `ContentStart`;
//! - a closed session produces nothing more.
//!
//! Deterministic (a fixed-seed generator), so a failure is reproducible; bounded in count.

use std::sync::Arc;

use relais_proto::replies;
use relais_proto::{AuthOutcome, Event, Session, SessionConfig, Stored, Verdict};

/// A small xorshift generator: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Pieces random input is made of: whole commands, fragments and line ends.
const WORDS: &[&str] = &[
    "EHLO x\r\n",
    "HELO x\r\n",
    "MAIL FROM:<a@b.c>\r\n",
    "MAIL FROM:<>\r\n",
    "MAIL FROM:<a@b.c> SIZE=100 BODY=8BITMIME\r\n",
    "RCPT TO:<u@example.com>\r\n",
    "RCPT TO:<u@example.com> NOTIFY=SUCCESS\r\n",
    "RCPT TO:<x@other.org>\r\n",
    "DATA\r\n",
    "BDAT 5\r\n",
    "BDAT 0 LAST\r\n",
    "BDAT 3 LAST\r\n",
    "RSET\r\n",
    "NOOP\r\n",
    "QUIT\r\n",
    "VRFY u\r\n",
    "STARTTLS\r\n",
    "AUTH PLAIN\r\n",
    "AUTH LOGIN\r\n",
    "AGFsaWNlAHNlY3JldA==\r\n",
    "*\r\n",
    ".\r\n",
    "..\r\n",
    "\r\n",
    "\n",
    "\r",
    ".",
    "\n.\n",
    "\r\n.\r\n",
    "\0",
    "x",
    "Subject: s\r\n",
    "GET / HTTP/1.0\r\n",
    "<",
    ">",
    ":",
    "@",
    " ",
    "=",
    ",",
    ";",
];

/// The SMTP alphabet for single random bytes.
const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz:=-<>,; .@\r\n";

fn random_input(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < len {
        let pick = rng.below(10);
        if pick == 0 {
            // A whole transaction with a random body, so that some messages complete.
            out.extend_from_slice(
                b"EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<u@example.com>\r\nDATA\r\n",
            );
            for _ in 0..rng.below(8) {
                out.extend_from_slice(WORDS[rng.below(WORDS.len())].as_bytes());
            }
            out.extend_from_slice(b"\r\n.\r\n");
        } else if pick < 3 {
            out.push(ALPHABET[rng.below(ALPHABET.len())]);
        } else {
            out.extend_from_slice(WORDS[rng.below(WORDS.len())].as_bytes());
        }
    }
    out
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
        "unterminated output {text:?}"
    );
}

#[test]
fn random_sessions_keep_their_invariants() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut messages = 0;
    for round in 0..3000 {
        let mut cfg = SessionConfig::new("mx.example.com");
        cfg.max_message_size = 200;
        cfg.max_recipients = 3;
        cfg.max_errors = 5 + rng.below(40) as u32;
        cfg.starttls = rng.below(2) == 0;
        cfg.auth_mechanisms = vec!["PLAIN".into(), "LOGIN".into()];
        cfg.auth_without_tls = rng.below(2) == 0;
        cfg.forbid_unauth_pipelining = rng.below(4) == 0;
        let mut s = Session::new(Arc::new(cfg));
        s.handle_connect();
        let len = 50 + rng.below(600);
        let input = random_input(&mut rng, len);
        let mut pos = 0;
        let mut sender_ok = false;
        let mut rcpts_ok = 0;
        let mut in_content = false;
        let mut body = Vec::new();
        let mut steps = 0;
        while pos < input.len() && !s.is_closed() {
            steps += 1;
            assert!(steps < 10_000, "round {round}: no progress");
            let n = 1 + rng.below(40).min(input.len() - pos - 1);
            s.handle_bytes(&input[pos..pos + n]);
            pos += n;
            // Answer every question at random until the session wants input again.
            let mut answers = 0;
            while let Some(ev) = s.poll_event() {
                answers += 1;
                assert!(answers < 10_000, "round {round}: endless events");
                match ev {
                    Event::CheckSender { .. } => {
                        let ok = rng.below(5) != 0;
                        if ok {
                            sender_ok = true;
                            rcpts_ok = 0;
                            body.clear();
                            in_content = false;
                        }
                        s.handle_verdict(if ok {
                            Verdict::Accept
                        } else {
                            Verdict::Reject(replies::auth_required())
                        });
                    }
                    Event::CheckRecipient { to, .. } => {
                        let ok = rng.below(4) != 0;
                        if ok {
                            rcpts_ok += 1;
                        }
                        s.handle_verdict(if ok {
                            Verdict::Accept
                        } else {
                            Verdict::Reject(replies::user_unknown(&to))
                        });
                    }
                    Event::ContentStart(env) => {
                        assert!(sender_ok, "round {round}: content without a sender");
                        assert!(
                            !env.recipients.is_empty(),
                            "round {round}: content without recipients"
                        );
                        in_content = true;
                        body.clear();
                    }
                    Event::Body(b) => {
                        assert!(in_content, "round {round}: body outside content");
                        body.extend_from_slice(&b);
                    }
                    Event::MessageComplete(env) => {
                        assert!(
                            sender_ok && rcpts_ok > 0,
                            "round {round}: message without MAIL and RCPT"
                        );
                        assert_eq!(env.recipients.len(), rcpts_ok, "round {round}");
                        assert_eq!(
                            env.size as usize,
                            body.len(),
                            "round {round}: size and content differ"
                        );
                        assert!(env.size <= 200, "round {round}: over the size limit");
                        messages += 1;
                        sender_ok = false;
                        in_content = false;
                        s.handle_stored(if rng.below(6) == 0 {
                            Stored::Failed(replies::queue_write_error())
                        } else {
                            Stored::Queued(format!("ID{messages}"))
                        });
                    }
                    Event::TransactionAborted => {
                        sender_ok = false;
                        in_content = false;
                        body.clear();
                    }
                    Event::StartTls { .. } => {
                        sender_ok = false;
                        if rng.below(3) == 0 {
                            s.handle_eof();
                        } else {
                            s.handle_tls_established();
                        }
                    }
                    Event::Authenticate { .. } => s.handle_auth(if rng.below(2) == 0 {
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
        if s.is_closed() {
            s.handle_bytes(b"NOOP\r\n");
            assert!(s.output().is_empty(), "round {round}: output after close");
            assert!(
                s.poll_event().is_none(),
                "round {round}: events after close"
            );
        }
    }
    // The generator reaches the paths that matter: some sessions do complete messages.
    assert!(
        messages > 50,
        "only {messages} messages in 3000 random sessions"
    );
}

/// The parsers on their own: random lines never panic, and what parses prints back to
/// something that parses to the same thing.
#[test]
fn random_lines_through_the_parsers() {
    use relais_proto::{Command, Mailbox, ReplyParser};
    let mut rng = Rng(0x0dd5_eed5_0000_0002);
    for _ in 0..20_000 {
        let len = 1 + rng.below(80);
        let line = random_input(&mut rng, len);
        let line: Vec<u8> = line.split(|&b| b == b'\n').next().unwrap_or(&[]).to_vec();
        if let Ok(cmd) = Command::parse(&line) {
            let again = Command::parse(cmd.to_string().as_bytes())
                .unwrap_or_else(|e| panic!("{cmd} does not parse back: {e:?}"));
            assert_eq!(again, cmd);
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        if let Ok(m) = Mailbox::parse(&text) {
            assert_eq!(Mailbox::parse(&m.to_string()), Ok(m.clone()), "{text:?}");
        }
        let mut p = ReplyParser::new();
        p.push(&line);
        p.push(b"\r\n");
        let _ = p.next_reply();
    }
}
