//! Submission rules: STARTTLS before anything on a submission listener, AUTH before MAIL on
//! submission and submissions, no AUTH in clear text on the MX listener unless the
//! configuration allows it, `sender_must_match`, the SASL exchange, and logs that never show
//! a password or the base64 that carries it.

use crate::support::{
    BAD_PASSWORD, Client, PASSWORD, Server, Setup, Tls, USER, b64, output_text, plain_blob, python,
    received, swaks,
};

#[test]
fn submission_wants_starttls_before_anything() {
    let server = Server::start(Setup::new(&["submission"]));
    let mut c = Client::connect(server.port("submission"));
    c.greeting();
    let ehlo = c.ehlo();
    assert!(ehlo.mentions("STARTTLS"), "{ehlo}");
    assert!(!ehlo.mentions("AUTH"), "AUTH offered in clear text: {ehlo}");
    let must = "530 5.7.0 Must issue a STARTTLS command first";
    c.expect("MAIL FROM:<alice@local.test>", must);
    c.expect("RCPT TO:<bob@local.test>", must);
    c.expect(&format!("AUTH PLAIN {}", plain_blob(USER, PASSWORD)), must);
    c.expect("DATA", must);
    c.expect("NOOP", "250 ");
    c.expect("RSET", "250 ");
    c.quit();
}

#[test]
fn submission_wants_auth_before_mail() {
    let server = Server::start(Setup::new(&["submission"]));
    let mut c = Client::ready(server.port("submission"), None);
    c.starttls();
    c.expect(
        "MAIL FROM:<alice@local.test>",
        "530 5.7.0 Authentication required",
    );
    c.expect("RCPT TO:<bob@local.test>", "503 5.5.1");
    let r = c.auth_plain(USER, PASSWORD);
    assert!(r.is("235 2.7.0 Authentication successful"), "{r}");
    let r = c.send_mail(
        "alice@local.test",
        &["xena@local.test", "friend@other.test"],
        "submitted",
    );
    assert!(r.is("250 2.0.0 Ok: queued as"), "{r}");
    c.quit();
    let msgs = server.wait_mail("xena", 1);
    let rcv = received(&msgs[0]);
    assert!(rcv.contains("with ESMTPSA id"), "{rcv}");
    assert!(rcv.contains("(using TLSv1.3 with cipher"), "{rcv}");
}

#[test]
fn submissions_wants_auth_before_mail() {
    let server = Server::start(Setup::new(&["submissions"]));
    let mut c = Client::connect_tls(server.port("submissions"), None);
    c.greeting();
    let ehlo = c.ehlo();
    assert!(!ehlo.mentions("STARTTLS"), "{ehlo}");
    assert!(ehlo.mentions("AUTH PLAIN LOGIN"), "{ehlo}");
    c.expect(
        "MAIL FROM:<alice@local.test>",
        "530 5.7.0 Authentication required",
    );
    let r = c.auth_login(USER, PASSWORD);
    assert!(r.is("235 2.7.0"), "{r}");
    let r = c.send_mail("alice@local.test", &["yann@local.test"], "implicit");
    assert!(r.is("250 2.0.0 Ok: queued as"), "{r}");
    c.quit();
    let msgs = server.wait_mail("yann", 1);
    assert!(received(&msgs[0]).contains("with ESMTPSA id"));
}

#[test]
fn submissions_refuses_clear_text() {
    let server = Server::start(Setup::new(&["submissions"]));
    let mut c = Client::connect(server.port("submissions"));
    // a client speaking SMTP in clear text on the TLS port gets nothing usable, never a 220
    c.send("EHLO client.test");
    assert!(c.line().is_none_or(|l| !l.starts_with("220")));
    server.assert_logged("TLS handshake failed with unknown[127.0.0.1]");
}

#[test]
fn mx_refuses_auth_before_starttls() {
    let server = Server::start(Setup::new(&["mx"]));
    let mut c = Client::ready(server.port("mx"), None);
    c.expect(
        &format!("AUTH PLAIN {}", plain_blob(USER, PASSWORD)),
        "538 5.7.11",
    );
    c.expect("AUTH LOGIN", "538 5.7.11");
    // unauthenticated, the MX listener still takes mail for local users
    let r = c.send_mail("s@other.test", &["zoe@local.test"], "mx in clear");
    assert!(r.is("250 2.0.0 Ok: queued as"), "{r}");
    c.starttls();
    let r = c.auth_plain(USER, PASSWORD);
    assert!(r.is("235 2.7.0"), "{r}");
    c.quit();
    let msgs = server.wait_mail("zoe", 1);
    assert!(received(&msgs[0]).contains("with ESMTP id"), "{}", msgs[0]);
}

#[test]
fn allow_plaintext_offers_auth_without_tls() {
    let server = Server::start(Setup::new(&["mx"]).auth("allow_plaintext = true"));
    let mut c = Client::ready(server.port("mx"), None);
    let ehlo = c.cmd("EHLO client.test");
    assert!(
        ehlo.lines.iter().any(|l| l == "250-AUTH PLAIN LOGIN"),
        "{ehlo}"
    );
    let r = c.auth_login(USER, PASSWORD);
    assert!(r.is("235 2.7.0"), "{r}");
    let r = c.send_mail(
        "alice@local.test",
        &["abe@local.test", "friend@other.test"],
        "plaintext auth",
    );
    assert!(r.is("250 2.0.0 Ok: queued as"), "{r}");
    c.quit();
    let msgs = server.wait_mail("abe", 1);
    let rcv = received(&msgs[0]);
    assert!(rcv.contains("with ESMTPA id"), "{rcv}");
    assert!(!rcv.contains("using TLS"), "{rcv}");

    // and through a real client: smtplib logs in without STARTTLS
    let out = python(
        "smtp_client.py",
        &[
            "--port".into(),
            server.port("mx").to_string(),
            "--mode".into(),
            "plain".into(),
            "--user".into(),
            USER.into(),
            "--password".into(),
            PASSWORD.into(),
        ],
    );
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("auth=235"), "{text}");
}

#[test]
fn sender_must_match_the_login() {
    let server = Server::start(
        Setup::new(&["mx", "submission"])
            .auth("sender_must_match = true")
            .alice_addresses(&["alice.smith@other.test"]),
    );
    let mut c = Client::ready(server.port("submission"), None);
    c.starttls();
    let r = c.auth_plain(USER, PASSWORD);
    assert!(r.is("235 2.7.0"), "{r}");
    for own in [
        "alice@local.test",
        "ALICE@Local.Test",
        "alice.smith@other.test",
    ] {
        c.expect(&format!("MAIL FROM:<{own}>"), "250 2.1.0");
        c.expect("RSET", "250 ");
    }
    for other in [
        "bob@local.test",
        "alice@other.test",
        "alice%other.test@local.test",
        "\"alice\"@local.test.other.test",
        "alicex@local.test",
    ] {
        let r = c.cmd(&format!("MAIL FROM:<{other}>"));
        assert!(r.is("553 5.7.1"), "MAIL FROM:<{other}>: {r}");
        assert!(r.mentions("not owned by user alice"), "{r}");
    }
    let r = c.send_mail("alice@local.test", &["bea@local.test"], "own address");
    assert!(r.is("250 2.0.0 Ok: queued as"), "{r}");
    c.quit();
    server.wait_mail("bea", 1);
    server.assert_logged("553 5.7.1 <bob@local.test>: Sender address rejected");

    // unauthenticated MX traffic is not concerned: anybody may write from bob@local.test
    let mut m = Client::ready(server.port("mx"), None);
    m.expect("MAIL FROM:<bob@local.test>", "250 2.1.0");
    m.quit();
}

#[test]
fn sender_may_be_anyone_by_default() {
    let server = Server::start(Setup::new(&["submission"]));
    let mut c = Client::ready(server.port("submission"), None);
    c.starttls();
    let r = c.auth_plain(USER, PASSWORD);
    assert!(r.is("235 2.7.0"), "{r}");
    c.expect("MAIL FROM:<bob@local.test>", "250 2.1.0");
    c.quit();
}

#[test]
fn sasl_exchange() {
    let server = Server::start(Setup::new(&["submissions"]));
    let port = server.port("submissions");
    let mut c = Client::connect_tls(port, None);
    c.greeting();
    c.ehlo();
    // PLAIN without initial response: an empty challenge, then the response
    c.expect("AUTH PLAIN", "334 ");
    c.expect("*", "501 5.7.0");
    c.expect("AUTH PLAIN", "334 ");
    c.expect("not base64!", "501 5.5.2");
    c.expect("AUTH PLAIN not-base64", "501 5.5.2");
    c.expect(&format!("AUTH PLAIN {}", b64("no separators")), "501 5.5.2");
    c.expect("AUTH CRAM-MD5", "504 5.5.4");
    // LOGIN with the user name as initial response; `*` cancels at the password
    c.expect(&format!("AUTH LOGIN {}", b64(USER)), "334 UGFzc3dvcmQ6");
    c.expect("*", "501 5.7.0");
    c.expect("AUTH LOGIN", "334 VXNlcm5hbWU6");
    c.expect(&b64(USER), "334 UGFzc3dvcmQ6");
    c.expect(&b64(BAD_PASSWORD), "535 5.7.8");
    c.expect("AUTH PLAIN", "334 ");
    c.expect(&plain_blob(USER, PASSWORD), "235 2.7.0");
    c.expect(
        &format!("AUTH PLAIN {}", plain_blob(USER, PASSWORD)),
        "503 5.5.1",
    );
    c.quit();
    // user names are not case-sensitive; passwords are
    let mut d = Client::connect_tls(port, None);
    d.greeting();
    d.ehlo();
    d.expect(
        &format!("AUTH PLAIN {}", plain_blob(&USER.to_uppercase(), PASSWORD)),
        "235 2.7.0",
    );
    d.quit();
    let mut e = Client::connect_tls(port, None);
    e.greeting();
    e.ehlo();
    e.expect(
        &format!("AUTH PLAIN {}", plain_blob(USER, &PASSWORD.to_uppercase())),
        "535 5.7.8",
    );
    e.expect(
        &format!("AUTH PLAIN {}", plain_blob("nobody", PASSWORD)),
        "535 5.7.8",
    );
    e.quit();
}

#[test]
fn logs_never_show_passwords() {
    let server = Server::start(
        Setup::new(&["mx", "submission", "submissions"])
            .log_level("trace")
            .max_failures(1000),
    );
    let (mx, sub, subs) = (
        server.port("mx"),
        server.port("submission"),
        server.port("submissions"),
    );
    for password in [PASSWORD, BAD_PASSWORD] {
        // in clear text, refused before any check: 538 on mx, 530 on submission
        let mut c = Client::ready(mx, None);
        c.expect(
            &format!("AUTH PLAIN {}", plain_blob(USER, password)),
            "538 ",
        );
        c.expect(&format!("AUTH LOGIN {}", b64(USER)), "538 ");
        c.quit();
        let mut c = Client::ready(sub, None);
        c.expect(
            &format!("AUTH PLAIN {}", plain_blob(USER, password)),
            "530 ",
        );
        c.quit();
        // every way of sending it, under TLS
        let mut c = Client::ready(sub, None);
        c.starttls_with(Tls::V12);
        c.auth_plain(USER, password);
        c.quit();
        let mut c = Client::connect_tls(subs, None);
        c.greeting();
        c.ehlo();
        c.auth_login(USER, password);
        c.quit();
        let mut c = Client::connect_tls(subs, None);
        c.greeting();
        c.ehlo();
        c.expect("AUTH PLAIN", "334 ");
        c.cmd(&plain_blob(USER, password));
        c.quit();
        // pipelined after AUTH: a protocol violation, logged with the command
        let mut c = Client::connect_tls(subs, None);
        c.greeting();
        c.ehlo();
        c.write_raw(format!("AUTH PLAIN {}\r\nNOOP\r\n", plain_blob(USER, password)).as_bytes());
        while c.try_reply().is_some() {}
        // real clients
        let out = swaks(&[
            "--server",
            &format!("127.0.0.1:{sub}"),
            "--tls",
            "--auth",
            "LOGIN",
            "--auth-user",
            USER,
            "--auth-password",
            password,
            "--quit-after",
            "AUTH",
        ]);
        assert!(
            output_text(&out).contains(if password == PASSWORD { "235 " } else { "535 " }),
            "{}",
            output_text(&out)
        );
        let out = python(
            "smtp_client.py",
            &[
                "--port".into(),
                sub.to_string(),
                "--user".into(),
                USER.into(),
                "--password".into(),
                password.into(),
            ],
        );
        assert!(output_text(&out).contains("auth="), "{}", output_text(&out));
    }
    let mut server = server;
    let log = server.stop();
    // the log did record the attempts ...
    for needle in [
        "sasl_method=PLAIN, sasl_username=alice",
        "sasl_method=LOGIN, sasl_username=alice",
        "SASL PLAIN authentication failed",
        "SASL LOGIN authentication failed",
        "538 5.7.11",
        "improper command pipelining after AUTH PLAIN",
    ] {
        assert!(log.contains(needle), "the log lacks {needle:?}:\n{log}");
    }
    // ... and none of the secrets, in clear or base64, nor the PLAIN responses
    for password in [PASSWORD, BAD_PASSWORD] {
        for secret in [
            password.to_string(),
            b64(password),
            plain_blob(USER, password),
            plain_blob(USER, password).trim_end_matches('=').to_string(),
        ] {
            assert!(!log.contains(&secret), "the log shows {secret:?}:\n{log}");
        }
    }
}
