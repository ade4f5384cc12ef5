//! `relais send` and `relais probe` against `relais serve`'s own TLS listeners: `submission`
//! (STARTTLS, then AUTH) and `submissions` (TLS from the first byte), with the self-signed
//! certificate the server generates in `data_dir/tls/`.
//!
//! `relais probe` has no implicit-TLS mode (and no AUTH option): it is tested with STARTTLS on
//! the submission listener, where it stops at MAIL FROM (`530 5.7.0`, exit 23); against the
//! submissions port it can only report the missing greeting.

use crate::support::{HOSTNAME, PASSWORD, Relais, USER, Zone, dns, probe, send};

/// alice → bob@local.test, authenticated, with `extra` options.
fn authenticated<'a>(subject: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "--from",
        "alice@local.test",
        "--to",
        "bob@local.test",
        "--subject",
        subject,
        "--user",
        USER,
        "--password",
        PASSWORD,
    ];
    v.extend_from_slice(extra);
    v
}

#[test]
fn send_over_submissions_with_tls_on_connect_and_auth() {
    let server = Relais::start();
    let addr = server.addr("submissions");
    let run = send(
        &addr,
        &authenticated("over submissions", &["--tls-on-connect", "--auth", "PLAIN"]),
    );
    run.expect_code(0)
        .expect_out("=== TLS started")
        .expect_out(&format!("<~  220 {HOSTNAME}"))
        .expect_out(" ~> AUTH PLAIN ")
        .expect_out("<~  235 2.7.0")
        .expect_out(" ~> MAIL FROM:<alice@local.test>")
        .expect_no_out(" -> ");
    let mail = server.wait_mail("bob", 1);
    assert!(mail[0].contains("Subject: over submissions"), "{}", mail[0]);
    assert!(
        mail[0].contains("TLSv1."),
        "no TLS in Received:\n{}",
        mail[0]
    );
    // A wrong password: AUTH refused (535 5.7.8), exit 28, nothing sent.
    let bad = send(
        &addr,
        &[
            "--tls-on-connect",
            "--from",
            "alice@local.test",
            "--to",
            "bob@local.test",
            "--auth",
            "LOGIN",
            "--user",
            USER,
            "--password",
            "not-the-password",
        ],
    );
    bad.expect_code(28)
        .expect_out("<~  535 5.7.8")
        .expect_no_out("MAIL FROM");
    // Clear text on the implicit-TLS port: no greeting it can read (exit 21).
    send(
        &addr,
        &[
            "--timeout",
            "3",
            "--from",
            "a@local.test",
            "--to",
            "bob@local.test",
        ],
    )
    .expect_code(21);
    assert_eq!(server.wait_mail("bob", 1).len(), 1);
}

#[test]
fn send_over_submission_with_starttls_and_auth() {
    let server = Relais::start();
    let addr = server.addr("submission");
    send(
        &addr,
        &authenticated("over submission", &["--tls", "--auth", "LOGIN"]),
    )
    .expect_code(0)
    .expect_out(" -> STARTTLS")
    .expect_out("=== TLS started")
    .expect_out(" ~> AUTH LOGIN")
    .expect_out("<~  235 2.7.0")
    .expect_out(" ~> MAIL FROM:<alice@local.test>");
    let mail = server.wait_mail("bob", 1);
    assert!(mail[0].contains("Subject: over submission"), "{}", mail[0]);
    // AUTH is not offered before STARTTLS: exit 28 without --tls.
    send(&addr, &authenticated("clear", &["--auth", "PLAIN"]))
        .expect_code(28)
        .expect_no_out("~>");
    // TLS but no AUTH: MAIL FROM refused with 530 5.7.0 (exit 23).
    send(
        &addr,
        &[
            "--tls",
            "--from",
            "alice@local.test",
            "--to",
            "bob@local.test",
        ],
    )
    .expect_code(23)
    .expect_out("<~  530 5.7.0");
    assert_eq!(server.wait_mail("bob", 1).len(), 1);
}

#[test]
fn probe_submission_reports_the_generated_certificate() {
    let server = Relais::start();
    let dns = dns(Zone::new()
        .a(HOSTNAME, "127.0.0.1")
        .ptr("127.0.0.1", HOSTNAME));
    let p = probe(
        &dns,
        &server.addr("submission"),
        &["--rcpt", "bob@local.test"],
    );
    // The certificate relais generated at first start, as the probe saw it.
    let generated = server.data_dir.join("tls");
    assert!(
        generated.read_dir().is_ok_and(|mut d| d.next().is_some()),
        "no certificate in {}",
        generated.display()
    );
    let tls = &p.json["hosts"][0]["tls"];
    assert!(
        tls["version"] == "TLSv1.3" || tls["version"] == "TLSv1.2",
        "{}",
        p.run
    );
    assert_eq!(tls["certificate"]["self_signed"], true, "{}", p.run);
    assert_eq!(tls["name_matches"], true, "{}", p.run);
    p.expect("starttls", "ok", &["STARTTLS: TLSv1."])
        .expect("certificate", "warn", &["self-signed", HOSTNAME])
        .expect("reverse-dns", "ok", &[HOSTNAME]);
    // After STARTTLS the listener offers AUTH; without it, MAIL FROM is refused.
    let keywords = p.keywords();
    assert!(keywords.iter().any(|k| k == "AUTH"), "{keywords:?}");
    p.expect("mail", "fail", &["530 5.7.0"]);
    p.run.expect_code(23);
    // The submissions port speaks TLS first: the probe (STARTTLS only) gets no greeting.
    let p = probe(&dns, &server.addr("submissions"), &["--timeout", "3"]);
    p.expect("banner", "fail", &["no greeting within 3s"]);
    p.run.expect_code(21);
}
