//! LMTP delivery to Dovecot (TCP and unix socket), and to a scripted fault server that answers
//! each recipient differently.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::time::Duration;

use relais_config::LmtpTarget;
use relais_local::lmtp;
use relais_queue::Outcome;

use crate::support::{Dovecot, tempdir};

const TIMEOUT: Duration = Duration::from_secs(30);

fn message(subject: &str) -> Vec<u8> {
    format!(
        "Return-Path: <sender@example.org>\r\n\
         From: sender@example.org\r\n\
         To: alice@example.net, bob@example.net\r\n\
         Subject: {subject}\r\n\
         Message-ID: <{subject}@example.org>\r\n\
         \r\n\
         Hello over LMTP.\r\n\
         .a line that starts with a dot\r\n\
         .\r\n"
    )
    .into_bytes()
}

fn rcpts(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn status(o: &Outcome) -> String {
    match o {
        Outcome::Delivered(_) => "sent".into(),
        Outcome::Deferred { status, .. } => format!("deferred {status}"),
        Outcome::Failed { status, .. } => format!("bounced {status}"),
    }
}

#[tokio::test]
async fn dovecot_stores_what_lmtp_delivers() {
    let dovecot = Dovecot::start(&["alice", "bob"]);
    let out = lmtp::deliver(
        &LmtpTarget::Tcp(dovecot.addr),
        "relais.test",
        "sender@example.org",
        &rcpts(&["alice@example.net", "Bob@example.net", "nobody@example.net"]),
        &message("tcp")[..],
        TIMEOUT,
    )
    .await;
    let got: Vec<String> = out.iter().map(status).collect();
    assert_eq!(
        got,
        ["sent", "sent", "bounced 5.1.1"],
        "{out:?}\n{}",
        dovecot.logs()
    );
    let Outcome::Failed { reason, .. } = &out[2] else {
        unreachable!()
    };
    assert!(reason.contains("nobody@example.net"), "{reason}");

    for user in ["alice", "bob"] {
        let msgs = dovecot.new_messages(user);
        assert_eq!(msgs.len(), 1, "{user}: {msgs:?}\n{}", dovecot.logs());
        let m = &msgs[0];
        assert!(m.contains("Subject: tcp"), "{m}");
        assert!(m.contains("\nHello over LMTP.\n"), "{m}");
        // Dot-stuffing undone by the server: one dot at the start of the line, and the lone
        // dot line of the content kept as content.
        assert!(m.contains("\n.a line that starts with a dot\n.\n"), "{m}");
    }

    // The unix socket of the same server.
    let out = lmtp::deliver(
        &LmtpTarget::Unix(dovecot.socket.clone()),
        "relais.test",
        "",
        &rcpts(&["alice@example.net"]),
        &message("unix")[..],
        TIMEOUT,
    )
    .await;
    assert!(
        matches!(out[..], [Outcome::Delivered(_)]),
        "{out:?}\n{}",
        dovecot.logs()
    );
    let msgs = dovecot.new_messages("alice");
    assert_eq!(msgs.len(), 2, "{}", dovecot.logs());
    assert!(msgs.iter().any(|m| m.contains("Subject: unix")), "{msgs:?}");
}

/// A scripted LMTP server on a unix socket: 452 for `full@`, 550 for `gone@`, 250 for the
/// others at RCPT; after the dot, 250 for the first accepted recipient and 451 for the next.
/// Returns the lines it received.
fn fault_server(path: &std::path::Path) -> std::thread::JoinHandle<Vec<String>> {
    let listener = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut w = stream.try_clone().unwrap();
        let mut r = BufReader::new(stream);
        let mut seen = Vec::new();
        let mut accepted = 0;
        w.write_all(b"220 fault.test LMTP\r\n").unwrap();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap() == 0 {
                return seen;
            }
            let line = line.trim_end().to_string();
            seen.push(line.clone());
            let reply: String = match line.split(' ').next().unwrap() {
                "LHLO" => "250-fault.test\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES".into(),
                "MAIL" => "250 2.1.0 Ok".into(),
                "RCPT" if line.contains("full@") => "452 4.2.2 Mailbox full".into(),
                "RCPT" if line.contains("gone@") => "550 5.1.1 No such user here".into(),
                "RCPT" => {
                    accepted += 1;
                    "250 2.1.5 Ok".into()
                }
                "DATA" => {
                    w.write_all(b"354 go ahead\r\n").unwrap();
                    loop {
                        let mut l = String::new();
                        r.read_line(&mut l).unwrap();
                        if l == ".\r\n" {
                            break;
                        }
                    }
                    let mut replies = vec!["250 2.0.0 Saved".to_string()];
                    for _ in 1..accepted {
                        replies.push("451 4.3.0 Temporary index error".into());
                    }
                    replies.join("\r\n")
                }
                "QUIT" => {
                    w.write_all(b"221 2.0.0 Bye\r\n").unwrap();
                    return seen;
                }
                _ => "502 5.5.2 What?".into(),
            };
            w.write_all(format!("{reply}\r\n").as_bytes()).unwrap();
        }
    })
}

#[tokio::test]
async fn one_outcome_per_recipient_from_a_fault_server() {
    let dir = tempdir();
    let socket = dir.path().join("lmtp.sock");
    let server = fault_server(&socket);
    let out = lmtp::deliver(
        &LmtpTarget::Unix(socket),
        "relais.test",
        "sender@example.org",
        &rcpts(&[
            "ok@example.net",
            "full@example.net",
            "gone@example.net",
            "later@example.net",
        ]),
        &message("faults")[..],
        TIMEOUT,
    )
    .await;
    let got: Vec<String> = out.iter().map(status).collect();
    assert_eq!(
        got,
        ["sent", "deferred 4.2.2", "bounced 5.1.1", "deferred 4.3.0"],
        "{out:?}"
    );
    match &out[2] {
        Outcome::Failed { reason, .. } => {
            assert!(reason.contains("550 5.1.1 No such user here"), "{reason}")
        }
        o => panic!("{o}"),
    }
    match &out[3] {
        Outcome::Deferred { reason, .. } => {
            assert!(reason.contains("Temporary index error"), "{reason}")
        }
        o => panic!("{o}"),
    }
    let seen = server.join().unwrap();
    assert_eq!(
        seen,
        [
            "LHLO relais.test",
            "MAIL FROM:<sender@example.org>",
            "RCPT TO:<ok@example.net>",
            "RCPT TO:<full@example.net>",
            "RCPT TO:<gone@example.net>",
            "RCPT TO:<later@example.net>",
            "DATA",
            "QUIT",
        ]
    );
}
