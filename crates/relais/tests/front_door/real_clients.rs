//! Real clients against the TLS and AUTH front door: swaks (STARTTLS, implicit TLS, AUTH LOGIN
//! and PLAIN with good and bad passwords, relaying) and Python's smtplib (`starttls()`,
//! `login()`, `SMTP_SSL`). Accepted mail lands in the Maildir with a `Received` header that
//! says ESMTPS / ESMTPSA and the TLS version.

use crate::support::{
    BAD_PASSWORD, PASSWORD, Server, Setup, USER, output_text, python, received, swaks,
};

fn port_arg(server: &Server, role: &str) -> String {
    format!("127.0.0.1:{}", server.port(role))
}

#[test]
fn swaks_starttls_on_mx_delivers_with_esmtps() {
    let server = Server::start(Setup::new(&["mx"]));
    let out = swaks(&[
        "--server",
        &port_arg(&server, "mx"),
        "--tls",
        "--from",
        "sender@other.test",
        "--to",
        "bob@local.test",
    ]);
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("220 2.0.0 Ready to start TLS"), "{text}");
    assert!(text.contains("queued as"), "{text}");
    // before TLS, AUTH is not offered on the MX port; STARTTLS is
    let before_tls = &text[..text.find(" -> STARTTLS").expect("swaks sent STARTTLS")];
    assert!(before_tls.contains("250-STARTTLS"), "{text}");
    assert!(
        !before_tls.contains("AUTH"),
        "AUTH offered in clear text:\n{text}"
    );

    let msgs = server.wait_mail("bob", 1);
    let rcv = received(&msgs[0]);
    assert!(rcv.contains("from client.test"), "{rcv}");
    assert!(rcv.contains("with ESMTPS id"), "{rcv}");
    assert!(rcv.contains("(using TLSv1.3 with cipher TLS13_"), "{rcv}");
}

#[test]
fn swaks_tls_on_connect_with_auth_on_submissions() {
    let server = Server::start(Setup::new(&["submissions"]));
    let out = swaks(&[
        "--server",
        &port_arg(&server, "submissions"),
        "--tls-on-connect",
        "--auth",
        "PLAIN",
        "--auth-user",
        USER,
        "--auth-password",
        PASSWORD,
        "--from",
        "alice@local.test",
        "--to",
        "carol@local.test",
    ]);
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("235 2.7.0"), "{text}");
    assert!(text.contains("queued as"), "{text}");
    // implicit TLS: no STARTTLS offered on an encrypted connection
    assert!(!text.contains("250-STARTTLS"), "{text}");

    let msgs = server.wait_mail("carol", 1);
    let rcv = received(&msgs[0]);
    assert!(rcv.contains("with ESMTPSA id"), "{rcv}");
    assert!(rcv.contains("(using TLSv1.3 with cipher"), "{rcv}");
}

#[test]
fn swaks_auth_login_and_plain_good_and_bad_passwords() {
    let server = Server::start(Setup::new(&["submission"]));
    let port = port_arg(&server, "submission");
    for mech in ["LOGIN", "PLAIN"] {
        let run = |password: &str| {
            swaks(&[
                "--server",
                &port,
                "--tls",
                "--auth",
                mech,
                "--auth-user",
                USER,
                "--auth-password",
                password,
                "--from",
                "alice@local.test",
                "--to",
                "dave@local.test",
            ])
        };
        let good = run(PASSWORD);
        let text = output_text(&good);
        assert!(good.status.success(), "{mech}, good password: {text}");
        assert!(
            text.contains("235 2.7.0 Authentication successful"),
            "{text}"
        );
        assert!(text.contains("queued as"), "{text}");

        let bad = run(BAD_PASSWORD);
        let text = output_text(&bad);
        assert!(!bad.status.success(), "{mech}, bad password: {text}");
        assert!(text.contains("535 5.7.8"), "{mech}, bad password: {text}");
        assert!(!text.contains("235 "), "{mech}, bad password: {text}");
        assert!(
            !text.contains("MAIL FROM"),
            "sent mail after a failed AUTH: {text}"
        );
    }
    let msgs = server.wait_mail("dave", 2);
    for m in &msgs {
        assert!(received(m).contains("with ESMTPSA id"), "{m}");
    }
    // both failures are logged, with the mechanism
    server.assert_logged("SASL LOGIN authentication failed");
    server.assert_logged("SASL PLAIN authentication failed");
}

#[test]
fn swaks_relay_refused_in_the_open_allowed_from_relay_network() {
    let server = Server::start(Setup::new(&["mx"]).relay_networks(&["127.0.0.2/32"]));
    let port = port_arg(&server, "mx");
    let refused = swaks(&[
        "--server",
        &port,
        "--from",
        "sender@other.test",
        "--to",
        "user@other.test",
    ]);
    let text = output_text(&refused);
    assert!(!refused.status.success(), "{text}");
    assert!(
        text.contains("554 5.7.1 <user@other.test>: Relay access denied"),
        "{text}"
    );

    let allowed = swaks(&[
        "--server",
        &port,
        "--local-interface",
        "127.0.0.2",
        "--from",
        "sender@local.test",
        "--to",
        "user@other.test",
    ]);
    let text = output_text(&allowed);
    assert!(allowed.status.success(), "{text}");
    assert!(text.contains("queued as"), "{text}");
    server.assert_logged("to=<user@other.test> accepted (relay to other.test)");
}

fn py_args(port: u16, mode: &str, extra: &[&str]) -> Vec<String> {
    let mut v = vec![
        "--port".to_string(),
        port.to_string(),
        "--mode".to_string(),
        mode.to_string(),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

#[test]
fn python_smtplib_starttls_and_login() {
    let server = Server::start(Setup::new(&["submission"]));
    let port = server.port("submission");
    for mech in ["auto", "PLAIN", "LOGIN"] {
        let out = python(
            "smtp_client.py",
            &py_args(
                port,
                "starttls",
                &[
                    "--user",
                    USER,
                    "--password",
                    PASSWORD,
                    "--mech",
                    mech,
                    "--mail-from",
                    "alice@local.test",
                    "--rcpt",
                    "erin@local.test",
                ],
            ),
        );
        let text = output_text(&out);
        assert!(out.status.success(), "{mech}: {text}");
        for needle in [
            "starttls=220",
            "tls=TLSv1.3",
            "ehlo_auth=PLAIN LOGIN",
            "auth=235",
            "sent=250 2.0.0 Ok: queued as",
        ] {
            assert!(text.contains(needle), "{mech}: no {needle:?} in {text}");
        }
    }
    let msgs = server.wait_mail("erin", 3);
    for m in &msgs {
        let rcv = received(m);
        assert!(rcv.contains("with ESMTPSA id"), "{rcv}");
        assert!(rcv.contains("(using TLSv1.3 with cipher"), "{rcv}");
    }

    let out = python(
        "smtp_client.py",
        &py_args(
            port,
            "starttls",
            &["--user", USER, "--password", BAD_PASSWORD],
        ),
    );
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("auth=535 5.7.8"), "{text}");
}

#[test]
fn python_smtplib_implicit_tls_relays_when_authenticated() {
    let server = Server::start(Setup::new(&["submissions"]));
    let out = python(
        "smtp_client.py",
        &py_args(
            server.port("submissions"),
            "implicit",
            &[
                "--user",
                USER,
                "--password",
                PASSWORD,
                "--mail-from",
                "alice@local.test",
                "--rcpt",
                "friend@other.test",
                "--rcpt",
                "frank@local.test",
            ],
        ),
    );
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("tls=TLSv1.3"), "{text}");
    assert!(text.contains("auth=235"), "{text}");
    assert!(text.contains("sent=250 2.0.0 Ok: queued as"), "{text}");
    server.assert_logged("to=<friend@other.test> accepted (relay to other.test)");
    let msgs = server.wait_mail("frank", 1);
    assert!(received(&msgs[0]).contains("with ESMTPSA id"));
}

#[test]
fn python_smtplib_sees_no_auth_in_clear_text_on_mx() {
    let server = Server::start(Setup::new(&["mx"]));
    let out = python(
        "smtp_client.py",
        &py_args(
            server.port("mx"),
            "plain",
            &["--user", USER, "--password", PASSWORD],
        ),
    );
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("ehlo_auth=\n"),
        "AUTH offered in clear text: {text}"
    );
    assert!(text.contains("auth=error"), "{text}");
    // and mail to a local user still works without TLS or AUTH on the MX listener
    let out = python(
        "smtp_client.py",
        &py_args(
            server.port("mx"),
            "plain",
            &["--mail-from", "a@other.test", "--rcpt", "gina@local.test"],
        ),
    );
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    let msgs = server.wait_mail("gina", 1);
    assert!(received(&msgs[0]).contains("with ESMTP id"), "{}", msgs[0]);
}
