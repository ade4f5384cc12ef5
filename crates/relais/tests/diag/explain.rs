//! `relais explain` as an administrator uses it: a code, a whole bounce line, or the words a
//! mail client showed; unknown text says "not recognised" and exits 4.

use std::process::Command;
use std::time::Duration;

use crate::common::RELAIS;
use crate::common::process::{Run, run};

fn explain(args: &[&str]) -> Run {
    let mut cmd = Command::new(RELAIS);
    cmd.arg("explain").args(args);
    run(cmd, None, Duration::from_secs(20))
}

#[test]
fn words_without_a_code_are_explained_as_their_usual_reply() {
    // (text pasted, words the explanation must hold)
    let table: &[(&str, &[&str])] = &[
        (
            "Relay access denied",
            &["usually come with 554 5.7.1", "relay"],
        ),
        (
            "No such person at this address",
            &["usually come with 550 5.1.1", "5.1.1"],
        ),
        ("Mailbox unavailable", &["usually come with 550 5.2.1"]),
        (
            "Sender address rejected: Domain not found",
            &["usually come with 450 4.1.8", "Temporary failure"],
        ),
        ("SPF validation failed", &["usually come with 550 5.7.23"]),
        (
            "Connection timed out",
            &["usually come with 0x800CCC0E", "0x800CCC0E"],
        ),
    ];
    for (text, words) in table {
        let r = explain(&[text]).expect(0);
        for w in *words {
            r.expect_out(w);
        }
    }
}

#[test]
fn a_bounce_line_is_explained_by_the_reply_it_quotes() {
    let bounce = "<bob@example.org>: host mx.example.org[192.0.2.1] said: 450 4.7.25 Client host \
                  rejected: cannot find your hostname, [198.51.100.7] (in reply to RCPT TO command)";
    let r = explain(&[bounce]).expect(0);
    // The code the server sent decides, not the code the words usually come with.
    r.expect_out("4.7.25")
        .expect_out("450")
        .expect_out("Temporary failure");
    r.expect_no_out("No code was given");
    // Several arguments are one text, as the shell split it.
    explain(&[
        "said:",
        "554",
        "5.7.1",
        "<bob@example.org>:",
        "Relay",
        "access",
        "denied",
    ])
    .expect(0)
    .expect_out("5.7.1");
}

#[test]
fn unknown_text_is_not_recognised_and_exits_4() {
    let r = explain(&["the weather is nice today"]).expect(4);
    assert!(r.stderr.contains("not recognised"), "{r}");
    assert!(r.stdout.is_empty(), "{r}");
}

/// A whole bounce on standard input (`--file -`).
fn explain_bounce(bounce: &str) -> Run {
    let mut cmd = Command::new(RELAIS);
    cmd.args(["explain", "--file", "-"]);
    run(cmd, Some(bounce.as_bytes()), Duration::from_secs(20))
}

#[test]
fn a_whole_bounce_is_explained_recipient_by_recipient() {
    // A report as Postfix writes it: one recipient failed, one delayed; folded fields, an
    // Original-Recipient, a status with a comment.
    let dsn = "From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\r\n\
        To: anne@example.net\r\n\
        Subject: Undelivered Mail Returned to Sender\r\n\
        MIME-Version: 1.0\r\n\
        Content-Type: multipart/report; report-type=delivery-status;\r\n\
        \tboundary=\"B1\"\r\n\
        \r\n\
        --B1\r\n\
        Content-Type: text/plain\r\n\
        \r\n\
        This is the mail system at host mx.example.org.\r\n\
        \r\n\
        --B1\r\n\
        Content-Type: message/delivery-status\r\n\
        \r\n\
        Reporting-MTA: dns; mx.example.org\r\n\
        Arrival-Date: Sat,  5 Dec 2026 10:00:00 +0000 (UTC)\r\n\
        \r\n\
        Final-Recipient: rfc822; bob@example.com\r\n\
        Original-Recipient: rfc822;Bob@Example.com\r\n\
        Action: failed\r\n\
        Status: 5.1.1\r\n\
        Remote-MTA: dns; mx.example.com\r\n\
        Diagnostic-Code: smtp; 550 5.1.1 <bob@example.com>: Recipient address\r\n\
        \x20   rejected: User unknown in virtual mailbox table\r\n\
        \r\n\
        Final-Recipient: rfc822; carol@example.com\r\n\
        Action: delayed\r\n\
        Status: 4.4.1 (connection refused)\r\n\
        Diagnostic-Code: X-Postfix; connect to mx2.example.com[192.0.2.2]:25: Connection refused\r\n\
        \r\n\
        --B1--\r\n";
    let r = explain_bounce(dsn).expect(0);
    for words in [
        "Delivery status report from mx.example.org: 2 recipients",
        "bob@example.com: failed (5.1.1)",
        "originally addressed to Bob@Example.com",
        "mx.example.com said: 550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown",
        "carol@example.com: delayed (4.4.1)",
        "reason: connect to mx2.example.com",
        "Permanent failure",
        "Temporary failure",
    ] {
        r.expect_out(words);
    }
}

#[test]
fn a_bounce_without_a_report_is_explained_by_the_replies_it_quotes() {
    // As Exim writes it: no message/delivery-status part, the reply quoted in the text.
    let exim = "Subject: Mail delivery failed: returning message to sender\n\
        \n\
        This message was created automatically by mail delivery software.\n\
        \n\
        A message that you sent could not be delivered to one or more of its\n\
        recipients. This is a permanent error. The following address(es) failed:\n\
        \n\
        \x20 dave@example.com\n\
        \x20   host mx.example.com [192.0.2.1]\n\
        \x20   SMTP error from remote mail server after RCPT TO:<dave@example.com>:\n\
        \x20   550 5.7.1 Relaying denied\n";
    let r = explain_bounce(exim).expect(0);
    r.expect_out("No delivery status report")
        .expect_out("5.7.1");
    // Text with neither is not recognised.
    let r = explain_bounce("Subject: hello\n\nJust a note, no bounce here.\n").expect(4);
    assert!(r.stderr.contains("not recognised"), "{r}");
}
