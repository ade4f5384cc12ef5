//! `relais send` and `relais probe` against `relais serve`'s own TLS listeners: `submission`
//! (STARTTLS, then AUTH) and `submissions` (TLS from the first byte), with the self-signed
//! certificate the server generates in `data_dir/tls/`.
//!
//! `relais probe` without `--auth-user` stops at MAIL FROM on the submission listener
//! (`530 5.7.0`, exit 23), and without `--tls-on-connect` gets no greeting from the submissions
//! port (exit 21); with them it authenticates (STARTTLS then AUTH, or TLS on connect then AUTH)
//! and MAIL and RCPT pass. A second server with an `mx` listener and `allow_plaintext = true`
//! offers AUTH in clear text, which the probe warns about.

use crate::support::{
    Dns, HOSTNAME, PASSWORD, Probe, Relais, USER, Zone, dns, probe, probe_with, send,
};

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
    // The submissions port speaks TLS first: without --tls-on-connect the probe gets no
    // greeting.
    let p = probe(&dns, &server.addr("submissions"), &["--timeout", "3"]);
    p.expect("banner", "fail", &["no greeting within 3s"]);
    p.run.expect_code(21);
}

/// The fixture DNS for [`Relais`]: its host name and the matching PTR.
fn relais_dns() -> Dns {
    dns(Zone::new()
        .a(HOSTNAME, "127.0.0.1")
        .ptr("127.0.0.1", HOSTNAME))
}

/// The names of the stages, in order.
fn stage_names(p: &Probe) -> Vec<String> {
    p.json["hosts"][0]["stages"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter_map(|r| r["stage"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// What a probe authenticated as alice must show: AUTH ok, MAIL and RCPT accepted, the foreign
/// recipient accepted as expected, and the password nowhere in the output.
#[track_caller]
fn expect_authenticated(p: &Probe, mech: &str) {
    p.expect(
        "auth",
        "ok",
        &[&format!("AUTH {mech} as {USER}"), "235 2.7.0"],
    )
    .expect("mail", "ok", &["MAIL FROM accepted"])
    .expect("rcpt", "ok", &["<bob@local.test> accepted"])
    .expect(
        "open-relay",
        "ok",
        &["relaying allowed for the authenticated user (expected)"],
    );
    assert!(
        p.stage("auth").contains("235"),
        "auth stage: {}\n{}",
        p.stage("auth"),
        p.run
    );
    let timed = p.json["hosts"][0]["stages"]
        .as_array()
        .and_then(|s| s.iter().find(|r| r["stage"] == "auth"))
        .is_some_and(|r| r["ms"].is_number());
    assert!(timed, "the auth stage has no timing\n{}", p.run);
    assert!(
        !p.run.stdout.contains(PASSWORD) && !p.run.stderr.contains(PASSWORD),
        "the password was printed\n{}",
        p.run
    );
    p.run.expect_code(0);
}

#[test]
fn probe_submissions_with_tls_on_connect_and_auth() {
    let server = Relais::start();
    let dns = relais_dns();
    let addr = server.addr("submissions");
    let p = probe(
        &dns,
        &addr,
        &[
            "--tls-on-connect",
            "--auth-user",
            USER,
            "--auth-password",
            PASSWORD,
            "--rcpt",
            "bob@local.test",
        ],
    );
    expect_authenticated(&p, "PLAIN");
    let tls = &p.json["hosts"][0]["tls"];
    assert!(
        tls["version"] == "TLSv1.3" || tls["version"] == "TLSv1.2",
        "{}",
        p.run
    );
    assert_eq!(tls["name_matches"], true, "{}", p.run);
    p.expect("tls", "ok", &["TLS on connect: TLSv1."]).expect(
        "certificate",
        "warn",
        &["self-signed", HOSTNAME],
    );
    assert!(p.verdict("auth-cleartext").is_empty(), "{}", p.run);
    // TLS before the banner, AUTH after EHLO, no STARTTLS stage.
    let stages = stage_names(&p);
    let at = |name: &str| stages.iter().position(|s| s == name);
    assert!(at("starttls").is_none(), "{stages:?}");
    assert!(
        at("connect") < at("tls") && at("tls") < at("banner"),
        "{stages:?}"
    );
    assert!(
        at("ehlo") < at("auth") && at("auth") < at("mail"),
        "{stages:?}"
    );
    assert_eq!(server.wait_mail("bob", 0).len(), 0, "the probe sent mail");

    // A wrong password: 535 in the report, exit 28.
    let bad = probe(
        &dns,
        &addr,
        &[
            "--tls-on-connect",
            "--auth-user",
            USER,
            "--auth-password",
            "not-the-password",
        ],
    );
    bad.expect("auth", "fail", &["535 5.7.8", USER]);
    assert!(bad.stage("auth").contains("535"), "{}", bad.run);
    bad.run.expect_code(28);

    // The password from the environment, AUTH LOGIN, and the text report with its transcript:
    // credentials in base64 as sent, never in clear.
    let p = probe_with(
        &dns,
        &addr,
        &[
            "--tls-on-connect",
            "--auth-user",
            USER,
            "--auth-mech",
            "login",
            "--rcpt",
            "bob@local.test",
        ],
        &[("RELAIS_PROBE_PASSWORD", PASSWORD)],
        None,
    );
    expect_authenticated(&p, "LOGIN");
    let transcript = p.json["hosts"][0]["transcript"].to_string();
    assert!(transcript.contains("AUTH LOGIN"), "{}", p.run);

    // TLS on connect without AUTH: the submissions listener wants AUTH before MAIL.
    let p = probe(&dns, &addr, &["--tls-on-connect"]);
    p.expect("tls", "ok", &["TLSv1."])
        .expect("mail", "fail", &["530 5.7.0"]);
    p.run.expect_code(23);

    // TLS on connect to a port that speaks clear text first: a TLS failure, exit 29.
    let p = probe(
        &dns,
        &server.addr("submission"),
        &["--tls-on-connect", "--timeout", "3"],
    );
    p.expect("tls", "fail", &["TLS handshake on connect failed"]);
    p.run.expect_code(29);
}

#[test]
fn probe_submission_with_starttls_and_auth() {
    let server = Relais::start();
    let dns = relais_dns();
    let addr = server.addr("submission");
    // The password on standard input (not a terminal).
    let p = probe_with(
        &dns,
        &addr,
        &["--auth-user", USER, "--rcpt", "bob@local.test"],
        &[],
        Some(&format!("{PASSWORD}\n")),
    );
    expect_authenticated(&p, "PLAIN");
    p.expect("starttls", "ok", &["STARTTLS: TLSv1."]);
    // AUTH is offered only after STARTTLS here: nothing sent in clear.
    assert!(p.verdict("auth-cleartext").is_empty(), "{}", p.run);
    let stages = stage_names(&p);
    let at = |name: &str| stages.iter().position(|s| s == name);
    assert!(
        at("starttls") < at("ehlo-tls") && at("ehlo-tls") < at("auth"),
        "{stages:?}"
    );

    // Without STARTTLS the listener offers no AUTH: "AUTH not offered", exit 28.
    let p = probe(
        &dns,
        &addr,
        &[
            "--no-starttls",
            "--auth-user",
            USER,
            "--auth-password",
            PASSWORD,
        ],
    );
    p.expect("auth", "fail", &["AUTH not offered"]);
    p.run.expect_code(28);

    // A mechanism the server does not offer: exit 28.
    let restricted = Relais::start_with(&["submission"], "mechanisms = [\"LOGIN\"]");
    let p = probe(
        &dns,
        &restricted.addr("submission"),
        &[
            "--auth-user",
            USER,
            "--auth-password",
            PASSWORD,
            "--auth-mech",
            "PLAIN",
        ],
    );
    p.expect("auth", "fail", &["AUTH PLAIN not offered", "LOGIN"]);
    p.run.expect_code(28);
    // The default takes the first of PLAIN and LOGIN offered.
    let p = probe(
        &dns,
        &restricted.addr("submission"),
        &[
            "--auth-user",
            USER,
            "--auth-password",
            PASSWORD,
            "--rcpt",
            "bob@local.test",
        ],
    );
    expect_authenticated(&p, "LOGIN");
}

#[test]
fn probe_mx_in_clear_text_warns_about_auth_without_tls() {
    let server = Relais::start_with(&["mx"], "allow_plaintext = true");
    let dns = relais_dns();
    let addr = server.addr("mx");
    // No AUTH test asked: the server still offers AUTH in clear text, which is a warning.
    let p = probe(&dns, &addr, &["--no-starttls", "--rcpt", "bob@local.test"]);
    p.expect("auth-cleartext", "warn", &["clear-text", "PLAIN"]);
    assert!(p.verdict("auth").is_empty(), "{}", p.run);
    p.expect("open-relay", "ok", &["relaying refused"]);
    p.run.expect_code(0);
    // With the AUTH test: accepted in clear text, with the same warning.
    let p = probe(
        &dns,
        &addr,
        &[
            "--no-starttls",
            "--auth-user",
            USER,
            "--auth-password",
            PASSWORD,
            "--rcpt",
            "bob@local.test",
        ],
    );
    p.expect(
        "auth-cleartext",
        "warn",
        &["credentials would cross the network in clear"],
    );
    expect_authenticated(&p, "PLAIN");
    p.expect("auth", "ok", &["in clear text"]);
    assert!(p.json["hosts"][0]["tls"].is_null(), "{}", p.run);
}
