//! Accepted mail survives a graceful restart.

use std::thread;
use std::time::Duration;

use crate::support::{Options, Server};

/// With delivery paused (`[delivery] paused = true`) five accepted messages stay in the spool;
/// after SIGTERM and a start without the pause on the same data directory, each is delivered
/// exactly once.
#[test]
fn accepted_mail_is_delivered_after_a_restart() {
    let dir = tempfile::Builder::new()
        .prefix("relais-e2e-restart-")
        .tempdir()
        .unwrap();
    let messages: Vec<Vec<u8>> = (0..5)
        .map(|i| format!("Subject: restart {i}\r\n\r\nmessage number {i}\r\n").into_bytes())
        .collect();

    let mut first = Server::start_in(
        dir.path(),
        Options {
            paused: true,
            ..Options::default()
        },
    );
    let mut c = first.connect_ehlo();
    let ids: Vec<String> = messages
        .iter()
        .map(|m| c.send_message("a@example.org", "user@localhost", m))
        .collect();
    c.quit();
    // Paused: nothing may reach the Maildir (else this test would not test the restart).
    thread::sleep(Duration::from_millis(300));
    assert!(
        first.mail_files("user").is_empty(),
        "delivered although [delivery] paused = true"
    );
    let status = first.stop();
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGTERM should end relais cleanly, got {status:?}\n--- log ---\n{}",
        first.log()
    );
    drop(first);

    let second = Server::start_in(dir.path(), Options::default());
    let mut delivered = second.wait_for_mail("user", messages.len());
    // Nothing more arrives (no duplicate delivery of a recovered message).
    thread::sleep(Duration::from_millis(500));
    assert_eq!(
        second.mail_files("user").len(),
        messages.len(),
        "duplicates after restart"
    );
    delivered.sort_by_key(|d| d.message.clone());
    for (i, (mail, expected)) in delivered.iter().zip(&messages).enumerate() {
        mail.assert_trace("a@example.org", "user@localhost", &ids[i]);
        mail.assert_message(expected);
    }
}
