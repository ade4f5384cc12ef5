//! Transcript tests straight against the session engine: what the client sends (`C:`) and what
//! the server must answer (`S:`), with no socket and no clock.

use std::sync::Arc;

use relais_proto::replies;
use relais_proto::{Envelope, Event, Session, SessionConfig, Stored, Verdict};

/// A session with a tiny policy: local domains `example.com` and `localhost`, the user
/// `nobody` does not exist, the sender `spammer@bad.example` is refused.
struct Harness {
    session: Session,
    /// Messages the "spool" took: envelope and content.
    stored: Vec<(Envelope, Vec<u8>)>,
    /// Content of the message being received.
    body: Vec<u8>,
    /// Every event, for inspection.
    events: Vec<Event>,
    /// When set, storing fails with this reply.
    fail_store: Option<relais_proto::Reply>,
}

impl Harness {
    fn new() -> Self {
        Self::with(|_| {})
    }

    fn with(f: impl FnOnce(&mut SessionConfig)) -> Self {
        let mut cfg = SessionConfig::new("mx.example.com");
        cfg.max_message_size = 1000;
        cfg.max_recipients = 3;
        cfg.max_errors = 10;
        f(&mut cfg);
        let mut session = Session::new(Arc::new(cfg));
        session.handle_connect();
        let mut h = Harness {
            session,
            stored: Vec::new(),
            body: Vec::new(),
            events: Vec::new(),
            fail_store: None,
        };
        let greeting = h.take_output();
        assert_eq!(greeting, "220 mx.example.com ESMTP relais\r\n");
        h
    }

    fn take_output(&mut self) -> String {
        let out = String::from_utf8_lossy(self.session.output()).into_owned();
        self.session.clear_output();
        out
    }

    fn drive(&mut self) {
        while let Some(ev) = self.session.poll_event() {
            self.events.push(ev.clone());
            match ev {
                Event::CheckSender { from, .. } => {
                    if from.to_string() == "spammer@bad.example" {
                        self.session
                            .handle_verdict(Verdict::Reject(relais_proto::Reply::new(
                                550,
                                Some(relais_proto::EnhancedStatus::new(5, 7, 1)),
                                "Sender rejected",
                            )));
                    } else {
                        self.session.handle_verdict(Verdict::Accept);
                    }
                }
                Event::CheckRecipient { to, .. } => {
                    let d = to.domain_lower();
                    let v = if to.is_bare_postmaster() {
                        Verdict::Accept
                    } else if d != "example.com" && d != "localhost" {
                        Verdict::Reject(replies::relay_denied(&to))
                    } else if to.local == "nobody" {
                        Verdict::Reject(replies::user_unknown(&to))
                    } else {
                        Verdict::Accept
                    };
                    self.session.handle_verdict(v);
                }
                Event::Body(b) => self.body.extend_from_slice(&b),
                Event::MessageComplete(env) => {
                    let body = std::mem::take(&mut self.body);
                    if let Some(r) = self.fail_store.clone() {
                        self.session.handle_stored(Stored::Failed(r));
                    } else {
                        self.stored.push((env, body));
                        let id = format!("ID{}", self.stored.len());
                        self.session.handle_stored(Stored::Queued(id));
                    }
                }
                Event::TransactionAborted => self.body.clear(),
                Event::ContentStart(env) => {
                    assert!(!env.recipients.is_empty());
                    assert!(self.body.is_empty());
                }
                Event::Helo { .. } | Event::Rejected { .. } | Event::Close => {}
            }
        }
    }

    /// Sends bytes, returns everything the server answered.
    fn send(&mut self, input: &str) -> String {
        self.send_bytes(input.as_bytes())
    }

    fn send_bytes(&mut self, input: &[u8]) -> String {
        self.session.handle_bytes(input);
        self.drive();
        self.take_output()
    }

    /// Runs a `C:`/`S:` script: each `C:` line is sent with CRLF, and the `S:` lines that
    /// follow are what the server must have answered.
    fn script(&mut self, script: &str) {
        let mut expected = String::new();
        let mut pending_input = String::new();
        let flush = |h: &mut Harness, input: &mut String, expected: &mut String| {
            if input.is_empty() && expected.is_empty() {
                return;
            }
            let got = h.send(input);
            assert_eq!(got, *expected, "after sending {input:?}");
            input.clear();
            expected.clear();
        };
        for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(c) = line.strip_prefix("C:") {
                if !expected.is_empty() {
                    flush(self, &mut pending_input, &mut expected);
                }
                pending_input.push_str(c.strip_prefix(' ').unwrap_or(c));
                pending_input.push_str("\r\n");
            } else if let Some(s) = line.strip_prefix("S:") {
                expected.push_str(s.strip_prefix(' ').unwrap_or(s));
                expected.push_str("\r\n");
            } else {
                panic!("bad script line {line}");
            }
        }
        flush(self, &mut pending_input, &mut expected);
    }
}

#[test]
fn seed_001_telnet_dialogue_with_helo() {
    let mut h = Harness::new();
    h.script(
        "C: helo x
         S: 250 mx.example.com
         C: mail from:<source@example.org>
         S: 250 2.1.0 Ok
         C: rcpt to:<destination@example.com>
         S: 250 2.1.5 Ok
         C: data
         S: 354 End data with <CR><LF>.<CR><LF>
         C: Subject: test
         C:
         C: Il s'agit d'un message de test de telnet
         C: .
         S: 250 2.0.0 Ok: queued as ID1
         C: quit
         S: 221 2.0.0 Bye",
    );
    assert!(h.session.is_closed());
    assert_eq!(h.stored.len(), 1);
    let (env, body) = &h.stored[0];
    assert_eq!(env.from.to_string(), "source@example.org");
    assert_eq!(env.recipients[0].to.to_string(), "destination@example.com");
    assert!(!env.esmtp);
    assert_eq!(
        body,
        b"Subject: test\r\n\r\nIl s'agit d'un message de test de telnet\r\n"
    );
    assert_eq!(
        h.session.stats(),
        "helo=1 mail=1 rcpt=1 data=1 quit=1 commands=5"
    );
}

#[test]
fn seed_002_ehlo_unbracketed_addresses_and_notify() {
    let mut h = Harness::new();
    h.script(
        "C: EHLO test.com
         S: 250-mx.example.com
         S: 250-PIPELINING
         S: 250-SIZE 1000
         S: 250-ENHANCEDSTATUSCODES
         S: 250-8BITMIME
         S: 250-DSN
         S: 250-SMTPUTF8
         S: 250-CHUNKING
         S: 250 HELP
         C: MAIL FROM:Admin@test.com
         S: 250 2.1.0 Ok
         C: RCPT TO:Utilisateur@Example.Com notify=success,failure
         S: 250 2.1.5 Ok
         C: DATA
         S: 354 End data with <CR><LF>.<CR><LF>
         C: Subject: Test from Telnet
         C:
         C: This is a test
         C: .
         S: 250 2.0.0 Ok: queued as ID1",
    );
    let (env, _) = &h.stored[0];
    assert!(env.esmtp);
    let notify = env.recipients[0].params.notify.unwrap();
    assert!(notify.success && notify.failure && !notify.delay);
}

#[test]
fn pipelined_group_gets_replies_in_order() {
    let mut h = Harness::new();
    h.send("EHLO c\r\n");
    let out = h.send(
        "MAIL FROM:<a@example.org>\r\nRCPT TO:<u1@example.com>\r\nRCPT TO:<nobody@example.com>\r\nRCPT TO:<x@elsewhere.org>\r\nRCPT TO:<u2@localhost>\r\nDATA\r\n",
    );
    assert_eq!(
        out,
        "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown in local recipient table\r\n554 5.7.1 <x@elsewhere.org>: Relay access denied\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
    );
    // content, end of data and the next transaction in one write
    let out = h.send("hi\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<postmaster>\r\nBDAT 5 LAST\r\nhello");
    assert_eq!(
        out,
        "250 2.0.0 Ok: queued as ID1\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok: queued as ID2\r\n"
    );
    assert_eq!(h.stored[0].0.recipients.len(), 2);
    assert_eq!(h.stored[1].1, b"hello");
    assert!(h.stored[1].0.chunked);
}

#[test]
fn sequence_errors() {
    let mut h = Harness::new();
    h.script(
        "C: MAIL FROM:<a@b.c>
         S: 503 5.5.1 Error: send HELO/EHLO first
         C: RCPT TO:<a@example.com>
         S: 503 5.5.1 Error: need MAIL command
         C: DATA
         S: 503 5.5.1 Error: need RCPT command
         C: EHLO x
         C: MAIL FROM:<a@b.c>
         C: MAIL FROM:<a@b.c>
         S: 250-mx.example.com
         S: 250-PIPELINING
         S: 250-SIZE 1000
         S: 250-ENHANCEDSTATUSCODES
         S: 250-8BITMIME
         S: 250-DSN
         S: 250-SMTPUTF8
         S: 250-CHUNKING
         S: 250 HELP
         S: 250 2.1.0 Ok
         S: 503 5.5.1 Error: nested MAIL command
         C: DATA
         S: 503 5.5.1 Error: need RCPT command
         C: RCPT TO:<nobody@example.com>
         S: 550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown in local recipient table
         C: DATA
         S: 554 5.5.1 Error: no valid recipients
         C: RSET
         S: 250 2.0.0 Ok
         C: RCPT TO:<a@example.com>
         S: 503 5.5.1 Error: need MAIL command",
    );
}

#[test]
fn syntax_and_unknown_commands() {
    let mut h = Harness::with(|c| c.max_errors = 50);
    h.script(
        "C: FOO bar
         S: 500 5.5.2 Error: command not recognized
         C: EHLO
         S: 501 5.5.4 Syntax: EHLO hostname
         C: HELO x
         S: 250 mx.example.com
         C: MAIL FROM <a@b.c>
         S: 501 5.5.4 Syntax: MAIL FROM:<address>
         C: MAIL FROM:<a@b.c.>
         S: 501 5.1.7 Bad sender address syntax (bad address syntax)
         C: MAIL FROM:<a@b.c> FOO=BAR
         S: 555 5.5.4 Unsupported option: FOO
         C: MAIL FROM:<a@b.c> BODY=11BIT
         S: 501 5.5.4 Error: bad BODY parameter syntax
         C: MAIL FROM:<a@b.c> SIZE=5000
         S: 552 5.3.4 Message size exceeds fixed limit
         C: MAIL FROM:<jöran@b.c>
         S: 553 5.6.7 Must declare SMTPUTF8 to send unicode address
         C: MAIL FROM:<jöran@b.c> SMTPUTF8
         S: 250 2.1.0 Ok
         C: RCPT TO:<a@b@example.com>
         S: 501 5.1.3 Bad recipient address syntax (bad address syntax)
         C: RCPT TO:<u@example.com> NOTIFY=SOMETIMES
         S: 501 5.5.4 Error: bad NOTIFY parameter syntax
         C: RCPT TO:<ü@example.com>
         S: 250 2.1.5 Ok
         C: NOOP
         S: 250 2.0.0 Ok
         C: VRFY root
         S: 252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery
         C: EXPN staff
         S: 502 5.5.1 Error: EXPN not available",
    );
    let out = h.send("HELP\r\n");
    assert!(out.starts_with("214-2.0.0 Commands:"), "{out}");
}

#[test]
fn commands_are_case_insensitive_and_bare_lf_ends_command_lines() {
    let mut h = Harness::new();
    let out = h.send("eHlO x\nmAiL fRoM:<a@b.c>\nrCpT tO:<u@EXAMPLE.COM>\n");
    assert!(out.ends_with("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"), "{out}");
}

#[test]
fn overlong_lines_are_refused_and_the_session_stays_in_step() {
    let mut h = Harness::new();
    let long = format!("NOOP {}\r\nNOOP\r\n", "x".repeat(600));
    assert_eq!(
        h.send(&long),
        "500 5.5.2 Error: line too long\r\n250 2.0.0 Ok\r\n"
    );
    // a line far beyond the receiver cap, fed in pieces, is discarded without growing memory
    h.send(&"y".repeat(3000));
    h.send(&"y".repeat(3000));
    assert_eq!(
        h.send("\r\nNOOP\r\n"),
        "500 5.5.2 Error: line too long\r\n250 2.0.0 Ok\r\n"
    );
    // MAIL may be longer than 512 because of its parameters, up to 2048
    h.send("EHLO x\r\n");
    let mail = format!("MAIL FROM:<a@b.c> ENVID={}\r\n", "e".repeat(90));
    assert_eq!(h.send(&mail), "250 2.1.0 Ok\r\n");
}

#[test]
fn message_too_big_keeps_session_in_step() {
    let mut h = Harness::new();
    h.send("EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<u@example.com>\r\nDATA\r\n");
    let big = format!("{}\r\n", "z".repeat(1500));
    assert_eq!(h.send(&big), "");
    assert_eq!(
        h.send(".\r\nNOOP\r\n"),
        "552 5.3.4 Error: message file too big\r\n250 2.0.0 Ok\r\n"
    );
    assert!(h.stored.is_empty());
    assert!(h.events.contains(&Event::TransactionAborted));
    // next transaction works; BDAT too big as well
    let out = h.send("MAIL FROM:<a@b.c>\r\nRCPT TO:<u@example.com>\r\nBDAT 600\r\n");
    assert_eq!(out, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
    let out = h.send(&format!(
        "{}BDAT 600 LAST\r\n{}NOOP\r\n",
        "a".repeat(600),
        "b".repeat(600)
    ));
    assert_eq!(
        out,
        "250 2.0.0 Ok: 600 octets\r\n552 5.3.4 Error: message file too big\r\n250 2.0.0 Ok\r\n"
    );
    assert!(h.stored.is_empty());
}

#[test]
fn bdat_errors_consume_the_chunk() {
    let mut h = Harness::new();
    h.send("EHLO x\r\n");
    // no transaction: the 10 octets are read and thrown away, then the error
    assert_eq!(
        h.send("BDAT 10\r\nMAIL FROM:NOOP\r\n"),
        "503 5.5.1 Error: need RCPT command\r\n250 2.0.0 Ok\r\n"
    );
    h.send("MAIL FROM:<a@b.c>\r\nRCPT TO:<u@example.com>\r\n");
    assert_eq!(
        h.send("BDAT 3\r\nabcBDAT 0 LAST\r\n"),
        "250 2.0.0 Ok: 3 octets\r\n250 2.0.0 Ok: queued as ID1\r\n"
    );
    assert_eq!(h.stored[0].1, b"abc");
    h.send("MAIL FROM:<a@b.c>\r\nRCPT TO:<u@example.com>\r\n");
    assert_eq!(
        h.send("BDAT 1\r\nxDATA\r\n"),
        "250 2.0.0 Ok: 1 octets\r\n503 5.5.1 Error: DATA after BDAT\r\n"
    );
    assert_eq!(
        h.send("BDAT x\r\n"),
        "501 5.5.4 Syntax: BDAT count [LAST]\r\n"
    );
}

/// Smuggling endings from the issue, each with NULs around, must never end DATA early nor
/// split one message into two.
#[test]
fn smuggling_endings_never_split_a_message() {
    let endings: &[&[u8]] = &[
        b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n.\r", b"\n.\r",
    ];
    for ending in endings {
        for nul in [false, true] {
            let mut h = Harness::new();
            h.send("EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<u@example.com>\r\nDATA\r\n");
            let mut payload = Vec::new();
            payload.extend_from_slice(b"Subject: one\r\n\r\nfirst part");
            if nul {
                payload.push(0);
            }
            payload.extend_from_slice(ending);
            if nul {
                payload.push(0);
            }
            payload.extend_from_slice(b"MAIL FROM:<evil@b.c>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nSubject: smuggled\r\n\r\nsecond\r\n.\r\n");
            let out = h.send_bytes(&payload);
            assert_eq!(
                out, "250 2.0.0 Ok: queued as ID1\r\n",
                "ending {ending:?} nul {nul}"
            );
            assert_eq!(h.stored.len(), 1, "ending {ending:?}");
            let (env, body) = &h.stored[0];
            assert_eq!(env.recipients.len(), 1);
            assert_eq!(env.recipients[0].to.local, "u");
            let body = String::from_utf8_lossy(body);
            assert!(
                body.contains("Subject: smuggled"),
                "content kept in the one message: {body:?}"
            );
            // the session is in step: a new command is answered normally
            assert_eq!(h.send("NOOP\r\n"), "250 2.0.0 Ok\r\n");
        }
    }
}

#[test]
fn dot_unstuffing_and_empty_message() {
    let mut h = Harness::new();
    h.send("HELO x\r\nMAIL FROM:<>\r\nRCPT TO:<u@example.com>\r\nDATA\r\n");
    assert_eq!(
        h.send("..dot\r\n...two\r\n.\r\n"),
        "250 2.0.0 Ok: queued as ID1\r\n"
    );
    assert_eq!(h.stored[0].1, b".dot\r\n..two\r\n");
    h.send("MAIL FROM:<>\r\nRCPT TO:<u@example.com>\r\nDATA\r\n");
    assert_eq!(h.send(".\r\n"), "250 2.0.0 Ok: queued as ID2\r\n");
    assert_eq!(h.stored[1].1, b"");
}

#[test]
fn sender_refused_and_recipient_limit() {
    let mut h = Harness::new();
    h.script(
        "C: EHLO x
         S: 250-mx.example.com
         S: 250-PIPELINING
         S: 250-SIZE 1000
         S: 250-ENHANCEDSTATUSCODES
         S: 250-8BITMIME
         S: 250-DSN
         S: 250-SMTPUTF8
         S: 250-CHUNKING
         S: 250 HELP
         C: MAIL FROM:<spammer@bad.example>
         S: 550 5.7.1 Sender rejected
         C: MAIL FROM:<a@b.c>
         S: 250 2.1.0 Ok
         C: RCPT TO:<1@example.com>
         C: RCPT TO:<2@example.com>
         C: RCPT TO:<3@example.com>
         C: RCPT TO:<4@example.com>
         S: 250 2.1.5 Ok
         S: 250 2.1.5 Ok
         S: 250 2.1.5 Ok
         S: 452 4.5.3 Error: too many recipients",
    );
}

#[test]
fn too_many_errors_closes_with_421() {
    let mut h = Harness::new();
    let out = h.send(&"BOGUS\r\n".repeat(12));
    assert_eq!(out.matches("500 5.5.2").count(), 10);
    assert!(
        out.ends_with("421 4.7.0 mx.example.com Error: too many errors\r\n"),
        "{out}"
    );
    assert!(h.session.is_closed());
    assert_eq!(h.send("NOOP\r\n"), "");
}

#[test]
fn web_clients_are_sent_away() {
    let mut h = Harness::new();
    let out = h.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        out,
        "521 5.7.0 Error: this is an SMTP server, not a web server or proxy\r\n"
    );
    assert!(h.session.is_closed());
}

#[test]
fn early_talk_timeout_and_shutdown() {
    let mut s = Session::new(Arc::new(SessionConfig::new("h")));
    s.handle_early_talk();
    assert_eq!(
        s.output(),
        b"554 5.5.0 Error: SMTP protocol synchronization\r\n"
    );
    assert!(s.is_closed());

    let mut h = Harness::new();
    h.send("EHLO x\r\nMAIL FROM:<a@b.c>\r\n");
    h.session.handle_timeout();
    h.drive();
    assert_eq!(
        h.take_output(),
        "421 4.4.2 mx.example.com Error: timeout exceeded\r\n"
    );
    assert!(h.events.contains(&Event::TransactionAborted));

    let mut h = Harness::new();
    h.session.handle_shutdown();
    assert_eq!(
        h.take_output(),
        "421 4.3.2 mx.example.com Service shutting down, closing transmission channel\r\n"
    );
}

#[test]
fn storage_failure_is_a_451_and_the_session_goes_on() {
    let mut h = Harness::new();
    h.fail_store = Some(replies::queue_write_error());
    h.send("EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<u@example.com>\r\nDATA\r\n");
    assert_eq!(
        h.send("x\r\n.\r\n"),
        "451 4.3.0 Error: queue file write error\r\n"
    );
    h.fail_store = None;
    assert_eq!(h.send("MAIL FROM:<a@b.c>\r\n"), "250 2.1.0 Ok\r\n");
}

#[test]
fn large_content_is_handed_out_in_chunks() {
    let mut h = Harness::with(|c| c.max_message_size = 0);
    h.send("EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<u@example.com>\r\nDATA\r\n");
    let line = format!("{}\r\n", "q".repeat(998));
    for _ in 0..300 {
        assert_eq!(h.send(&line), "");
    }
    assert_eq!(h.send(".\r\n"), "250 2.0.0 Ok: queued as ID1\r\n");
    assert_eq!(h.stored[0].1.len(), 300 * 1000);
    assert_eq!(h.stored[0].0.size, 300 * 1000);
    let bodies = h
        .events
        .iter()
        .filter(|e| matches!(e, Event::Body(_)))
        .count();
    assert!(
        bodies >= 4,
        "content must be streamed in pieces, got {bodies}"
    );
}
