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

/// The README's front-door example (`examples/relais.toml`) is a valid configuration, and a
/// server started from it (on free ports instead of the example's fixed ones) opens its three
/// listeners with their roles and lets alice submit over implicit TLS.
#[test]
fn the_example_configuration_runs_mx_submission_and_submissions() {
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/relais.toml");
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_relais"))
        .args(["config", "check"])
        .arg(&example)
        .output()
        .expect("run relais config check");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(&example).expect("read the example");
    let text = text
        .replace("127.0.0.1:2525", "127.0.0.1:0")
        .replace("127.0.0.1:2587", "127.0.0.1:0")
        .replace("127.0.0.1:2465", "127.0.0.1:0")
        .replace(
            "\"./relais-data\"",
            &format!("{:?}", dir.path().join("data")),
        );
    let config = dir.path().join("relais.toml");
    std::fs::write(&config, text).expect("write the config");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_relais"))
        .args(["serve", "--config"])
        .arg(&config)
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start relais serve");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut ports = std::collections::HashMap::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while ports.len() < 3 && std::time::Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(std::time::Duration::from_millis(200))
            && let Some(rest) = line.split("listening on 127.0.0.1:").nth(1)
        {
            let mut parts = rest.split_whitespace();
            let port = parts.next().unwrap_or("").to_string();
            let role = parts
                .next()
                .unwrap_or("")
                .trim_matches(['(', ')'])
                .to_string();
            ports.insert(role, port);
        }
    }
    let roles: Vec<&str> = {
        let mut r: Vec<&str> = ports.keys().map(String::as_str).collect();
        r.sort();
        r
    };
    let swaks = (roles == ["mx", "submission", "submissions"]).then(|| {
        std::process::Command::new("swaks")
            .args([
                "--server",
                &format!("127.0.0.1:{}", ports["submissions"]),
                "--tls-on-connect",
            ])
            .args([
                "--auth",
                "PLAIN",
                "--auth-user",
                "alice",
                "--auth-password",
                "change-me",
            ])
            .args(["--from", "alice@example.test", "--to", "bob@example.test"])
            .output()
            .expect("run swaks")
    });
    // SAFETY: kill only sends a signal to the child this test started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let _ = child.wait();
    assert_eq!(
        roles,
        ["mx", "submission", "submissions"],
        "listeners: {ports:?}"
    );
    let out = swaks.expect("swaks ran");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("235 2.7.0 Authentication successful"),
        "{text}"
    );
    assert!(text.contains("250 2.0.0 Ok: queued as"), "{text}");
}
