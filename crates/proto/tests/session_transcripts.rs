//! Transcript tests straight against the session engine: what the client sends (`C:`) and what
//! the server must answer (`S:`), with no socket and no clock.

use std::sync::Arc;

use relais_proto::replies;
use relais_proto::{AuthOutcome, Envelope, Event, Session, SessionConfig, Stored, Verdict};

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
        // Most tests send several commands in one write to keep scripts short; the pipelining
        // rules have tests of their own below.
        cfg.forbid_unauth_pipelining = false;
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
                Event::StartTls { .. } => self.session.handle_tls_established(),
                Event::Authenticate {
                    username, password, ..
                } => {
                    let ok = username == "alice" && password == "secret";
                    self.session.handle_auth(if ok {
                        AuthOutcome::Success
                    } else {
                        AuthOutcome::Failure(replies::auth_failed())
                    });
                }
                Event::Helo { .. }
                | Event::Rejected { .. }
                | Event::PipeliningViolation { .. }
                | Event::Close => {}
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

/// Issue 15: envelope addresses as Postfix takes them (`strict_rfc821_envelopes = no`),
/// kept in canonical form; a comment outside the brackets is an unknown option, and the
/// session stays in step.
#[test]
fn rfc822_envelope_addresses_from_the_wild() {
    let mut h = Harness::new();
    h.script(
        "C: HELO test.com
         S: 250 mx.example.com
         C: MAIL FROM:<Anne Smith <anne(home)@example.com>>
         C: RCPT TO:<much.\"more\\ unusual\"@example.com (Bob)>
         C: RCPT TO:<Postmaster (pm)>
         C: RCPT TO:<a@b@example.com>
         C: RCPT TO:<bob@example.com> (Bob)
         C: DATA
         S: 250 2.1.0 Ok
         S: 250 2.1.5 Ok
         S: 250 2.1.5 Ok
         S: 501 5.1.3 Bad recipient address syntax (bad address syntax)
         S: 555 5.5.4 Unsupported option: (Bob)
         S: 354 End data with <CR><LF>.<CR><LF>
         C: x
         C: .
         S: 250 2.0.0 Ok: queued as ID1",
    );
    let (env, _) = &h.stored[0];
    assert_eq!(env.from.to_string(), "anne@example.com");
    let to: Vec<String> = env.recipients.iter().map(|r| r.to.to_string()).collect();
    assert_eq!(to, ["\"much.more unusual\"@example.com", "Postmaster"]);
    let out = h.send("MAIL FROM:<anne@example.com> (Anne)\r\nMAIL FROM:<(nobody)>\r\n");
    assert_eq!(
        out,
        "555 5.5.4 Unsupported option: (Anne)\r\n250 2.1.0 Ok\r\n"
    );
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

fn ehlo_lines(extra: &[&str]) -> String {
    let mut out = String::from("250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 1000\r\n");
    for e in extra {
        out.push_str(&format!("250-{e}\r\n"));
    }
    out.push_str("250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 HELP\r\n");
    out
}

#[test]
fn commands_pipelined_after_ehlo_are_a_protocol_violation() {
    let mut h = Harness::with(|c| c.forbid_unauth_pipelining = true);
    let out = h.send("EHLO x\r\nMAIL FROM:<a@b.c>\r\n");
    assert_eq!(
        out,
        format!(
            "{}554 5.5.0 Error: SMTP protocol synchronization\r\n",
            ehlo_lines(&[])
        )
    );
    assert!(h.session.is_closed());
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, Event::PipeliningViolation { after } if after == "EHLO x"))
    );
}

#[test]
fn allowed_pipelining_is_not_a_violation() {
    let mut h = Harness::with(|c| c.forbid_unauth_pipelining = true);
    h.send("EHLO x\r\n");
    let out = h.send("MAIL FROM:<a@b.c>\r\nRCPT TO:<u@example.com>\r\nDATA\r\n");
    assert_eq!(
        out,
        "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"
    );
    let out =
        h.send("x\r\n.\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<u@example.com>\r\nBDAT 3 LAST\r\nabc");
    assert_eq!(
        out,
        "250 2.0.0 Ok: queued as ID1\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok: queued as ID2\r\n"
    );
    assert!(!h.session.is_closed());
}

#[test]
fn content_before_354_and_helo_pipelining_are_violations() {
    let mut h = Harness::with(|c| c.forbid_unauth_pipelining = true);
    h.send("EHLO x\r\n");
    let out = h.send(
        "MAIL FROM:<a@b.c>\r\nRCPT TO:<u@example.com>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n",
    );
    assert!(out.ends_with("354 End data with <CR><LF>.<CR><LF>\r\n554 5.5.0 Error: SMTP protocol synchronization\r\n"), "{out}");
    assert!(h.stored.is_empty());

    // a HELO client was never offered PIPELINING
    let mut h = Harness::with(|c| c.forbid_unauth_pipelining = true);
    h.send("HELO x\r\n");
    let out = h.send("MAIL FROM:<a@b.c>\r\nRCPT TO:<u@example.com>\r\n");
    // the MAIL is not answered: the client is cut off as soon as it is caught
    assert_eq!(out, "554 5.5.0 Error: SMTP protocol synchronization\r\n");
    assert!(h.session.is_closed());
}

#[test]
fn starttls_discards_pipelined_plaintext() {
    let mut h = Harness::with(|c| c.starttls = true);
    assert_eq!(h.send("EHLO x\r\n"), ehlo_lines(&["STARTTLS"]));
    // CVE-2011-0411: the RSET was sent in clear before TLS; it must never be answered.
    let out = h.send("STARTTLS\r\nRSET\r\n");
    assert_eq!(out, "220 2.0.0 Ready to start TLS\r\n");
    assert!(h.events.contains(&Event::StartTls { discarded: 6 }));
    assert!(h.session.is_tls());
    // the session starts over: EHLO again, now without STARTTLS
    assert_eq!(
        h.send("MAIL FROM:<a@b.c>\r\n"),
        "503 5.5.1 Error: send HELO/EHLO first\r\n"
    );
    assert_eq!(h.send("EHLO x\r\n"), ehlo_lines(&[]));
    assert_eq!(
        h.send("STARTTLS\r\n"),
        "554 5.5.1 Error: TLS already active\r\n"
    );
    // no TLS configured: not implemented
    let mut h = Harness::new();
    assert_eq!(
        h.send("STARTTLS\r\n"),
        "502 5.5.1 Error: STARTTLS not available\r\n"
    );
}

fn auth_harness(f: impl FnOnce(&mut SessionConfig)) -> Harness {
    let mut h = Harness::with(|c| {
        c.starttls = true;
        c.auth_mechanisms = vec!["PLAIN".into(), "LOGIN".into()];
        f(c)
    });
    h.send("EHLO x\r\n");
    h
}

#[test]
fn auth_needs_tls_unless_allowed() {
    let mut h = auth_harness(|_| {});
    assert_eq!(
        h.send("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"),
        "538 5.7.11 Encryption required for requested authentication mechanism\r\n"
    );
    h.send("STARTTLS\r\n");
    assert_eq!(h.send("EHLO x\r\n"), ehlo_lines(&["AUTH PLAIN LOGIN"]));
    assert_eq!(
        h.send("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"),
        "235 2.7.0 Authentication successful\r\n"
    );
    assert_eq!(h.session.authenticated(), Some("alice"));
    assert_eq!(
        h.send("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"),
        "503 5.5.1 Error: already authenticated\r\n"
    );

    let mut h = auth_harness(|c| c.auth_without_tls = true);
    assert!(!h.session.is_tls());
    assert_eq!(
        h.send("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"),
        "235 2.7.0 Authentication successful\r\n"
    );
}

#[test]
fn auth_exchanges() {
    let mut h = auth_harness(|c| c.auth_without_tls = true);
    h.script(
        "C: AUTH LOGIN
         S: 334 VXNlcm5hbWU6
         C: YWxpY2U=
         S: 334 UGFzc3dvcmQ6
         C: d3Jvbmc=
         S: 535 5.7.8 Error: authentication failed
         C: AUTH PLAIN not-base64!
         S: 501 5.5.2 Error: invalid base64 data or malformed response
         C: AUTH PLAIN bm9udWxz
         S: 501 5.5.2 Error: invalid base64 data or malformed response
         C: AUTH CRAM-MD5
         S: 504 5.5.4 Error: unsupported authentication mechanism
         C: MAIL FROM:<a@b.c>
         S: 250 2.1.0 Ok
         C: AUTH PLAIN AGFsaWNlAHNlY3JldA==
         S: 503 5.5.1 Error: MAIL transaction in progress
         C: RSET
         S: 250 2.0.0 Ok
         C: AUTH LOGIN YWxpY2U=
         S: 334 UGFzc3dvcmQ6
         C: c2VjcmV0
         S: 235 2.7.0 Authentication successful",
    );
    assert_eq!(h.session.authenticated(), Some("alice"));
    // credentials never reach the log
    for e in &h.events {
        if let Event::Rejected { command, .. } = e {
            assert!(
                !command.contains("AGFsaWNl") && !command.contains("d3Jvbmc"),
                "{command}"
            );
        }
    }
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, Event::Rejected { command, .. } if command == "AUTH PLAIN ***"))
    );
    let mut h = auth_harness(|c| c.auth_without_tls = true);
    assert_eq!(h.send("AUTH PLAIN\r\n"), "334 \r\n");
    assert_eq!(h.send("*\r\n"), "501 5.7.0 Authentication aborted\r\n");
    assert_eq!(h.send("AUTH PLAIN\r\n"), "334 \r\n");
    assert_eq!(
        h.send("AGFsaWNlAHNlY3JldA==\r\n"),
        "235 2.7.0 Authentication successful\r\n"
    );
    // without mechanisms configured
    let mut h = Harness::new();
    h.send("EHLO x\r\n");
    assert_eq!(
        h.send("AUTH PLAIN\r\n"),
        "503 5.5.1 Error: authentication not enabled\r\n"
    );
}

#[test]
fn submission_requires_tls_and_auth() {
    let mut h = auth_harness(|c| {
        c.require_auth = true;
        c.require_tls = true;
    });
    h.script(
        "C: MAIL FROM:<a@b.c>
         S: 530 5.7.0 Must issue a STARTTLS command first
         C: AUTH PLAIN AGFsaWNlAHNlY3JldA==
         S: 530 5.7.0 Must issue a STARTTLS command first
         C: STARTTLS
         S: 220 2.0.0 Ready to start TLS
         C: EHLO x
         S: 250-mx.example.com
         S: 250-PIPELINING
         S: 250-SIZE 1000
         S: 250-AUTH PLAIN LOGIN
         S: 250-ENHANCEDSTATUSCODES
         S: 250-8BITMIME
         S: 250-DSN
         S: 250-SMTPUTF8
         S: 250-CHUNKING
         S: 250 HELP
         C: MAIL FROM:<a@b.c>
         S: 530 5.7.0 Authentication required
         C: AUTH PLAIN AGFsaWNlAHNlY3JldA==
         S: 235 2.7.0 Authentication successful
         C: MAIL FROM:<a@b.c>
         S: 250 2.1.0 Ok",
    );
}

#[test]
fn messages_per_session_limit() {
    let mut h = Harness::with(|c| c.max_messages = 1);
    h.send("EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<u@example.com>\r\nDATA\r\n");
    assert_eq!(h.send("x\r\n.\r\n"), "250 2.0.0 Ok: queued as ID1\r\n");
    assert_eq!(
        h.send("MAIL FROM:<a@b.c>\r\n"),
        "421 4.7.0 mx.example.com Error: too many messages in this session\r\n"
    );
    assert!(h.session.is_closed());
}

#[test]
fn help_gives_each_command_its_syntax_and_lists_what_is_offered() {
    // (HELP argument, the reply's start)
    let table: &[(&str, &str)] = &[
        ("MAIL", "214 2.0.0 MAIL FROM:<address> [SIZE=<octets>]"),
        ("mail", "214 2.0.0 MAIL FROM:<address> [SIZE=<octets>]"),
        (
            "RCPT",
            "214 2.0.0 RCPT TO:<address> [NOTIFY=NEVER|SUCCESS,FAILURE,DELAY]",
        ),
        ("BDAT", "214 2.0.0 BDAT <octets> [LAST]"),
        ("STARTTLS", "214 2.0.0 STARTTLS, then the TLS handshake"),
        ("QUIT", "214 2.0.0 QUIT\r\n"),
        ("FROB", "504 5.5.4 HELP: no such command: FROB\r\n"),
    ];
    let mut h = Harness::new();
    for (topic, want) in table {
        let out = h.send(&format!("HELP {topic}\r\n"));
        assert!(out.starts_with(want), "HELP {topic}: {out}");
    }
    // The list says STARTTLS and AUTH only when they are offered now.
    let out = h.send("HELP\r\n");
    assert!(
        out.starts_with(
            "214-2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT\r\n"
        ),
        "{out}"
    );
    let mut h = Harness::with(|c| {
        c.starttls = true;
        c.auth_mechanisms = vec!["PLAIN".into()];
    });
    let out = h.send("HELP\r\n");
    assert!(
        out.contains(" VRFY STARTTLS HELP QUIT\r\n"),
        "AUTH only under TLS: {out}"
    );
    h.send("EHLO client.test\r\n");
    h.send("STARTTLS\r\n");
    let out = h.send("HELP\r\n");
    assert!(
        out.contains(" VRFY AUTH HELP QUIT\r\n"),
        "after STARTTLS: {out}"
    );
    // An unknown topic is an error that counts, and the session stays in step.
    let out = h.send("HELP FROB\r\nNOOP\r\n");
    assert_eq!(
        out,
        "504 5.5.4 HELP: no such command: FROB\r\n250 2.0.0 Ok\r\n"
    );
}
