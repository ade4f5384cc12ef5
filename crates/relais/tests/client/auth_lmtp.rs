//! `relais send`'s second round (issue 17, item 7): AUTH CRAM-MD5 and XOAUTH2 against
//! aiosmtpd (mechanisms written in its handler, sharing no code with relais), and LMTP to a
//! private Dovecot over TCP and over its Unix socket.

use std::process::Command;
use std::time::Duration;

use crate::common::dovecot::Dovecot;
use crate::common::process;
use crate::support::{Certs, PyOptions, PyServer, send, tempdir};

const BASE: [&str; 4] = ["--from", "alice@client.example", "--to", "bob@py.example"];

fn with<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = BASE.to_vec();
    v.extend_from_slice(extra);
    v
}

#[test]
fn auth_cram_md5_good_and_bad() {
    let certs = Certs::new();
    let server = PyServer::start(PyOptions {
        tls: Some(&certs),
        auth: Some("alice:s3cret"),
        ..PyOptions::default()
    });
    let good = with(&[
        "--tls",
        "--auth",
        "cram-md5",
        "--user",
        "alice",
        "--password",
        "s3cret",
    ]);
    let run = send(&server.addr(), &good).expect(0);
    run.expect_out(" ~> AUTH CRAM-MD5")
        .expect_out("=== challenge: <")
        .expect_out("<~  235 ")
        // The password never travels, not even in base64.
        .expect_no_out("czNjcmV0");
    let bad = with(&[
        "--tls",
        "--auth",
        "cram-md5",
        "--user",
        "alice",
        "--password",
        "wrong",
    ]);
    send(&server.addr(), &bad)
        .expect_code(28)
        .expect_out("<~  535 ");
    let messages = server.messages(1);
    assert_eq!(messages[0].1["authenticated"], true);
}

#[test]
fn auth_xoauth2_token_from_a_file_or_the_environment() {
    let certs = Certs::new();
    let server = PyServer::start(PyOptions {
        tls: Some(&certs),
        auth: Some("alice:ya29.token-for-tests"),
        ..PyOptions::default()
    });
    let dir = tempdir();
    let file = dir.path().join("token");
    std::fs::write(&file, "ya29.token-for-tests\n").unwrap();
    let file = file.to_str().unwrap();
    // base64("user=alice\x01auth=Bearer ya29.token-for-tests\x01\x01"), as Gmail expects it.
    let blob = "dXNlcj1hbGljZQFhdXRoPUJlYXJlciB5YTI5LnRva2VuLWZvci10ZXN0cwEB";
    let args = with(&[
        "--tls",
        "--auth",
        "xoauth2",
        "--user",
        "alice",
        "--oauth-token-file",
        file,
    ]);
    send(&server.addr(), &args)
        .expect(0)
        .expect_out(&format!(" ~> AUTH XOAUTH2 {blob}"))
        .expect_out("<~  235 ");
    // From the environment.
    let mut cmd = Command::new(crate::support::relais_bin());
    let addr = server.addr();
    cmd.args(process::send_args(
        &addr,
        &with(&["--tls", "--auth", "xoauth2", "--user", "alice"]),
    ))
    .env("RELAIS_OAUTH_TOKEN", "ya29.token-for-tests");
    process::run(cmd, None, Duration::from_secs(60)).expect(0);
    // A stale token: the JSON error shown, then 535.
    let mut cmd = Command::new(crate::support::relais_bin());
    cmd.args(process::send_args(
        &addr,
        &with(&["--tls", "--auth", "xoauth2", "--user", "alice"]),
    ))
    .env("RELAIS_OAUTH_TOKEN", "expired");
    process::run(cmd, None, Duration::from_secs(60))
        .expect(28)
        .expect_out("=== error: {\"status\": \"401\"")
        .expect_out("<~  535 ");
    assert_eq!(server.messages(2).len(), 2);
}

#[test]
fn lmtp_to_dovecot_over_tcp_and_its_socket() {
    let dovecot = Dovecot::start(&["alice", "bob"]);
    let addr = dovecot.addr.to_string();
    let run = send(
        &addr,
        &[
            "--protocol",
            "lmtp",
            "--from",
            "app@client.example",
            "--to",
            "alice@local.test",
            "--to",
            "bob@local.test",
            "--to",
            "nobody@local.test",
            "--subject",
            "over lmtp",
        ],
    )
    .expect(0);
    run.expect_out(" -> LHLO ")
        // Dovecot refuses the unknown user at RCPT, then answers once per accepted recipient.
        .expect_out("<-  550 5.1.1 <nobody@local.test> User doesn't exist");
    let after_dot = run
        .stdout
        .split("  -> .\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        after_dot.matches("<-  250 2.0.0 <").count(),
        2,
        "{}",
        run.stdout
    );
    for user in ["alice", "bob"] {
        let got = dovecot.new_messages(user);
        assert_eq!(got.len(), 1, "{user}: {}", dovecot.logs());
        assert!(got[0].contains("Subject: over lmtp"));
    }
    // Its Unix socket, by path.
    let socket = dovecot.socket.to_str().unwrap().to_string();
    let mut cmd = Command::new(crate::support::relais_bin());
    cmd.args([
        "send",
        "--server",
        &socket,
        "--protocol",
        "lmtp",
        "--timeout",
        "10",
    ])
    .args(["--from", "app@client.example", "--to", "alice@local.test"]);
    process::run(cmd, None, Duration::from_secs(60)).expect(0);
    assert_eq!(dovecot.new_messages("alice").len(), 2);
    // No recipient at all: exit 24, as with SMTP; a socket without --protocol lmtp: exit 1.
    send(&addr, &["--protocol", "lmtp", "--to", "nobody@local.test"]).expect(24);
    let mut cmd = Command::new(crate::support::relais_bin());
    cmd.args(["send", "--server", &socket, "--to", "alice@local.test"]);
    process::run(cmd, None, Duration::from_secs(60)).expect(1);
}
