//! swaks, the administrator's SMTP test tool, as an independent client.

use std::fs;
use std::path::Path;

use crate::support::{Options, Server, output_text, queue_id_in, run};

/// Runs swaks against the server with `--server 127.0.0.1:PORT` and a 30 s timeout.
fn swaks(server: &Server, args: &[&str]) -> (bool, String) {
    let target = format!("127.0.0.1:{}", server.port);
    let mut all = vec![
        "--server",
        target.as_str(),
        "--helo",
        "client.example.org",
        "--timeout",
        "30",
    ];
    all.extend_from_slice(args);
    let out = run("swaks", &all);
    (out.status.success(), output_text(&out))
}

/// Writes the DATA swaks sends (`--data @FILE`) and returns what the server must store: swaks
/// sends the file as is (it has CRLF line ends already), dot-stuffed, and adds CRLF at the end.
fn data_file(dir: &Path, content: &[u8]) -> (String, Vec<u8>) {
    assert!(
        !content.ends_with(b"\n"),
        "swaks adds the last line end itself"
    );
    let path = dir.join("message.eml");
    fs::write(&path, content).unwrap();
    let mut expected = content.to_vec();
    expected.extend_from_slice(b"\r\n");
    (format!("@{}", path.display()), expected)
}

const PLAIN: &[u8] = b"From: Alice <a@example.org>\r\n\
To: user@localhost\r\n\
Subject: relais e2e: swaks\r\n\
Message-ID: <swaks.e2e@example.org>\r\n\
\r\n\
Hello through swaks.\r\n\
.a dot starts this line (stuffed by swaks, unstuffed by relais)\r\n\
..two dots\r\n\
\r\n\
Last line without a break";

/// The queue id in swaks' transcript.
fn swaks_queue_id(transcript: &str) -> String {
    queue_id_in(transcript)
        .unwrap_or_else(|| panic!("no `queued as ID` in swaks' transcript:\n{transcript}"))
}

#[test]
fn swaks_plain_message_is_delivered_intact() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let (data, expected) = data_file(tmp.path(), PLAIN);
    let (ok, transcript) = swaks(
        &server,
        &[
            "--to",
            "user@localhost",
            "--from",
            "a@example.org",
            "--data",
            &data,
        ],
    );
    assert!(ok, "swaks failed:\n{transcript}");
    assert!(
        transcript.contains("<-  220 mx.test.example ESMTP"),
        "banner:\n{transcript}"
    );
    assert!(
        transcript.contains("250 2.0.0 Ok: queued as"),
        "{transcript}"
    );
    let id = swaks_queue_id(&transcript);

    let mail = server.wait_for_one("user");
    mail.assert_trace("a@example.org", "user@localhost", &id);
    mail.assert_message(&expected);
}

#[test]
fn swaks_pipelined_message_reaches_every_recipient() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let (data, expected) = data_file(tmp.path(), PLAIN);
    let (ok, transcript) = swaks(
        &server,
        &[
            "--pipeline",
            "--to",
            "user@localhost,Second@test.example",
            "--from",
            "a@example.org",
            "--data",
            &data,
        ],
    );
    assert!(ok, "swaks --pipeline failed:\n{transcript}");
    assert!(
        transcript.contains("PIPELINING"),
        "PIPELINING not advertised:\n{transcript}"
    );
    // swaks only pipelines when the server offers it; without it this prints a warning.
    assert!(
        !transcript.contains("does not support PIPELINING"),
        "{transcript}"
    );
    let id = swaks_queue_id(&transcript);

    let first = server.wait_for_one("user");
    first.assert_trace("a@example.org", "user@localhost", &id);
    first.assert_message(&expected);
    // Maildir names are lower-cased local parts.
    let second = server.wait_for_one("second");
    second.assert_trace("a@example.org", "Second@test.example", &id);
    second.assert_message(&expected);
}

#[test]
fn swaks_8bit_body_is_delivered_intact() {
    let server = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let mut content = b"From: a@example.org\r\n\
To: user@localhost\r\n\
Subject: relais e2e: 8-bit body\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n"
        .to_vec();
    content.extend_from_slice("Grüße aus Köln, ça va ? 日本語 ✉\r\n".as_bytes());
    content.extend_from_slice(b"octets that are not UTF-8: \xe9\xff\x80\x81");
    let (data, expected) = data_file(tmp.path(), &content);
    let (ok, transcript) = swaks(
        &server,
        &[
            "--to",
            "user@localhost",
            "--from",
            "a@example.org",
            "--data",
            &data,
        ],
    );
    assert!(ok, "swaks failed:\n{transcript}");
    assert!(
        transcript.contains("8BITMIME"),
        "8BITMIME not advertised:\n{transcript}"
    );
    let id = swaks_queue_id(&transcript);
    let mail = server.wait_for_one("user");
    mail.assert_trace("a@example.org", "user@localhost", &id);
    mail.assert_message(&expected);
}

#[test]
fn swaks_relay_to_foreign_domain_is_denied() {
    let server = Server::start();
    let (ok, transcript) = swaks(
        &server,
        &[
            "--to",
            "victim@elsewhere.example",
            "--from",
            "a@example.org",
            "--quit-after",
            "RCPT",
        ],
    );
    assert!(!ok, "swaks should report the refused RCPT:\n{transcript}");
    assert!(
        transcript.contains("554 5.7.1 <victim@elsewhere.example>: Relay access denied"),
        "expected 554 5.7.1 Relay access denied:\n{transcript}"
    );
    assert!(server.mailboxes().is_empty(), "{:?}", server.mailboxes());
}

#[test]
fn swaks_unknown_local_user_is_refused() {
    let server = Server::start_with(Options {
        users: vec!["alice".into()],
        ..Options::default()
    });
    let (ok, transcript) = swaks(
        &server,
        &[
            "--to",
            "bob@localhost",
            "--from",
            "a@example.org",
            "--quit-after",
            "RCPT",
        ],
    );
    assert!(!ok, "swaks should report the refused RCPT:\n{transcript}");
    assert!(
        transcript.contains("550 5.1.1") && transcript.contains("User unknown"),
        "expected 550 5.1.1 ... User unknown:\n{transcript}"
    );

    // The listed user gets mail (so the refusal above is about bob, not about everyone).
    let (ok, transcript) = swaks(
        &server,
        &["--to", "Alice@localhost", "--from", "a@example.org"],
    );
    assert!(ok, "mail to alice failed:\n{transcript}");
    let id = swaks_queue_id(&transcript);
    server
        .wait_for_one("alice")
        .assert_trace("a@example.org", "Alice@localhost", &id);
    assert_eq!(server.mailboxes(), vec!["alice".to_string()]);
}
