//! Python's standard smtplib as a client (`tests/e2e/py/smtp_client.py`).

use std::fs;

use crate::support::{Delivered, Options, Server, output_text, python_script, queue_id_in, run};

/// Runs `smtp_client.py MODE PORT EXPECTED [extra]`; returns the queue id from its last line and
/// the octets the server must have stored.
fn smtp_client(server: &Server, mode: &str, extra: &[&str]) -> (String, Vec<u8>) {
    let tmp = tempfile::tempdir().unwrap();
    let expected_path = tmp.path().join("expected.eml");
    let script = python_script("smtp_client.py");
    let port = server.port.to_string();
    let expected_arg = expected_path.display().to_string();
    let mut args = vec![script.as_str(), mode, port.as_str(), expected_arg.as_str()];
    args.extend_from_slice(extra);
    let out = run("python3", &args);
    let text = output_text(&out);
    assert!(
        out.status.success(),
        "smtp_client.py {mode} failed:\n{text}"
    );
    let last = text.lines().last().unwrap_or_default().to_string();
    assert!(
        last.starts_with("250 2.0.0 Ok: queued as "),
        "the end of DATA got: {last:?}\n{text}"
    );
    let id = queue_id_in(&last).unwrap();
    let expected = fs::read(&expected_path).expect("smtp_client.py wrote the expected message");
    (id, expected)
}

fn check(mail: &Delivered, sender: &str, id: &str, expected: &[u8]) {
    mail.assert_trace(sender, "user@localhost", id);
    mail.assert_message(expected);
}

#[test]
fn smtplib_send_message_plain() {
    let server = Server::start();
    let (id, expected) = smtp_client(&server, "plain", &[]);
    // The lone-dot line and the leading dots must come back as written.
    assert!(
        expected.windows(5).any(|w| w == b"\r\n.\r\n".as_slice()),
        "the test message should hold a lone dot line"
    );
    check(
        &server.wait_for_one("user"),
        "a@example.org",
        &id,
        &expected,
    );
}

#[test]
fn smtplib_8bitmime_body_is_delivered_intact() {
    let server = Server::start();
    let (id, expected) = smtp_client(&server, "8bitmime", &[]);
    check(
        &server.wait_for_one("user"),
        "a@example.org",
        &id,
        &expected,
    );
}

#[test]
fn smtplib_smtputf8_sender_and_subject() {
    let server = Server::start();
    let (id, expected) = smtp_client(&server, "smtputf8", &[]);
    assert!(
        String::from_utf8_lossy(&expected).contains("Grüße aus relais ✉"),
        "the test message should carry a raw UTF-8 Subject"
    );
    let mail = server.wait_for_one("user");
    check(&mail, "rené@example.org", &id, &expected);
    assert!(
        mail.received().contains("UTF8SMTP"),
        "Received should say UTF8SMTP (RFC 6531 §4.3):\n{}",
        mail.trace
    );
}

#[test]
fn smtplib_ten_megabyte_message_is_delivered_intact() {
    const SIZE: usize = 10 * 1024 * 1024;
    let server = Server::start_with(Options {
        max_message_size: 20_000_000,
        ..Options::default()
    });
    let (id, expected) = smtp_client(&server, "big", &[&SIZE.to_string()]);
    assert!(expected.len() >= SIZE, "{} octets", expected.len());
    let mail = server.wait_for_one("user");
    mail.assert_trace("a@example.org", "user@localhost", &id);
    // Octet for octet (a hash would only say "different"; this says where).
    mail.assert_message(&expected);
}
