//! Bad input over a raw socket: unknown commands, overlong lines, wrong order, oversized
//! messages, and SMTP smuggling. Every test checks the session stays usable afterwards.

use crate::support::{Options, Server};

#[test]
fn unknown_commands_and_overlong_lines() {
    let server = Server::start();
    let mut c = server.connect_ehlo();
    c.expect("FROBNICATE now", "500 5.5.2");
    c.expect("XYZZY", "500 5.5.2");
    c.expect(&format!("NOOP {}", "x".repeat(10_000)), "500 5.5.2");
    c.expect(
        &format!("MAIL FROM:<{}@example.org>", "a".repeat(5_000)),
        "500 5.5.2",
    );
    // After all that the session works: exactly one answer per line, then a message goes through.
    let r = c.command("NOOP");
    assert_eq!(r.lines, ["250 2.0.0 Ok"], "NOOP after bad lines");
    let content = b"Subject: after errors\r\n\r\nstill fine\r\n";
    let id = c.send_message("a@example.org", "user@localhost", content);
    c.quit();
    let m = server.wait_for_one("user");
    m.assert_trace("a@example.org", "user@localhost", &id);
    m.assert_message(content);
}

#[test]
fn commands_out_of_sequence_and_bad_syntax() {
    let server = Server::start();
    let mut c = server.connect();
    c.expect_reply("220 ");
    c.expect("MAIL FROM:<a@example.org>", "503 5.5.1");
    c.expect("RCPT TO:<user@localhost>", "503 5.5.1");
    c.expect("EHLO", "501 5.5.4");
    c.expect("EHLO client.example.org", "250");
    c.expect("RCPT TO:<user@localhost>", "503 5.5.1");
    c.expect("DATA", "503 5.5.1");
    c.expect("MAIL", "501 5.5.4");
    c.expect("MAIL FROM:", "501 5.5.4");
    c.expect("MAIL FROM:<a@example.org>", "250 2.1.0");
    c.expect("MAIL FROM:<a@example.org>", "503 5.5.1");
    c.expect("DATA", "503 5.5.1");
    c.expect("RCPT TO:", "501 5.5.4");
    c.expect("RSET", "250 2.0.0");
    c.expect("RCPT TO:<user@localhost>", "503 5.5.1");
    c.quit();
    assert!(server.mailboxes().is_empty(), "{:?}", server.mailboxes());
}

#[test]
fn messages_over_the_size_limit_are_refused_and_the_session_goes_on() {
    let server = Server::start_with(Options {
        max_message_size: 10_000,
        ..Options::default()
    });
    let mut c = server.connect();
    c.expect_reply("220 ");
    let ehlo = c.expect("EHLO client.example.org", "250");
    assert!(
        ehlo.lines.iter().any(|l| l.ends_with("SIZE 10000")),
        "SIZE 10000 not advertised:\n{}",
        ehlo.text()
    );

    // Announced too big.
    c.expect("MAIL FROM:<a@example.org> SIZE=20000", "552 5.3.4");
    c.expect("NOOP", "250");

    // Not announced, but too big: the whole content is read, then refused.
    c.expect("MAIL FROM:<a@example.org>", "250");
    c.expect("RCPT TO:<user@localhost>", "250");
    c.expect("DATA", "354");
    let line = format!("{}\r\n", "y".repeat(98));
    let mut big = b"Subject: too big\r\n\r\n".to_vec();
    for _ in 0..300 {
        big.extend_from_slice(line.as_bytes());
    }
    c.send(&big);
    c.send(b".\r\n");
    c.expect_reply("552 5.3.4");
    let r = c.command("NOOP");
    assert_eq!(r.lines, ["250 2.0.0 Ok"], "NOOP after 552");

    // Too big through BDAT.
    c.expect("MAIL FROM:<a@example.org>", "250");
    c.expect("RCPT TO:<user@localhost>", "250");
    c.send(format!("BDAT {} LAST\r\n", big.len()).as_bytes());
    c.send(&big);
    c.expect_reply("552 5.3.4");
    let r = c.command("NOOP");
    assert_eq!(r.lines, ["250 2.0.0 Ok"], "NOOP after 552 for BDAT");

    // A message within the limit still goes through, and it is the only one delivered.
    let small = b"Subject: small\r\n\r\nfits\r\n";
    let id = c.send_message("a@example.org", "user@localhost", small);
    c.quit();
    let m = server.wait_for_one("user");
    m.assert_trace("a@example.org", "user@localhost", &id);
    m.assert_message(small);
}

/// SMTP smuggling (CVE-2023-51764 and its kind): a client hides a second transaction behind a
/// sloppy end of data. relais ends DATA only at CRLF.CRLF, so each attempt below must give ONE
/// message (holding the smuggled one as text), ONE reply, and nothing for the victim.
#[test]
fn smuggled_end_of_data_never_splits_a_message() {
    let variants: [(&str, &[u8]); 6] = [
        ("LF.LF", b"\n.\n"),
        ("CRLF.LF", b"\r\n.\n"),
        ("LF.CRLF", b"\n.\r\n"),
        ("CR.CR", b"\r.\r"),
        ("CRLF.CR", b"\r\n.\r"),
        ("LF.CR", b"\n.\r"),
    ];
    let server = Server::start();
    for (i, (name, ending)) in variants.iter().enumerate() {
        let mailbox = format!("smuggle{i}");
        let mut c = server.connect_ehlo();
        c.expect("MAIL FROM:<attacker@example.org>", "250");
        c.expect(&format!("RCPT TO:<{mailbox}@localhost>"), "250");
        c.expect("DATA", "354");
        let mut payload = format!("Subject: smuggling {name}\r\n\r\nbefore\0").into_bytes();
        payload.extend_from_slice(ending);
        payload.extend_from_slice(
            b"\0MAIL FROM:<evil@example.org>\r\n\
RCPT TO:<victim@localhost>\r\n\
DATA\r\n\
Subject: smuggled\r\n\
\r\n\
SMUGGLED-MARKER\r\n\
.\r\n",
        );
        c.send(&payload);
        let r = c.reply();
        assert!(
            r.starts_with("250 2.0.0 Ok: queued as"),
            "{name}: the real end of data should queue one message, got: {}",
            r.text()
        );
        // In step: the next reply is the NOOP's, not one for a smuggled command.
        let r = c.command("NOOP");
        assert_eq!(
            r.lines,
            ["250 2.0.0 Ok"],
            "{name}: the session is out of step"
        );
        c.quit();

        let m = server.wait_for_one(&mailbox);
        let text = String::from_utf8_lossy(&m.message).into_owned();
        assert!(
            text.starts_with(&format!("Subject: smuggling {name}\r\n")) && text.contains("before"),
            "{name}: the message lost its start:\n{text:?}"
        );
        assert!(
            text.contains("MAIL FROM:<evil@example.org>") && text.ends_with("SMUGGLED-MARKER\r\n"),
            "{name}: the smuggled part should be inside the one message:\n{text:?}"
        );
    }
    assert_eq!(
        server.mailboxes(),
        (0..variants.len())
            .map(|i| format!("smuggle{i}"))
            .collect::<Vec<_>>(),
        "no mail for the victim, one mailbox per attempt"
    );
}
