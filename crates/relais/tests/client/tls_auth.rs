//! `relais send` with TLS and AUTH against aiosmtpd, a server that shares no code with relais.

use crate::support::{Certs, PyOptions, PyServer, relais_bin, run, send};

const BASE: [&str; 4] = ["--from", "alice@client.example", "--to", "bob@py.example"];

fn with<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = BASE.to_vec();
    v.extend_from_slice(extra);
    v
}

#[test]
fn starttls_reports_or_enforces_certificate_verification() {
    let certs = Certs::new();
    let server = PyServer::start(PyOptions {
        tls: Some(&certs),
        ..PyOptions::default()
    });
    let ca = certs.ca.to_str().unwrap();
    // Not verified: reported, not fatal (swaks' default).
    send(&server.addr(), &with(&["--tls"]))
        .expect_code(0)
        .expect_out("=== Certificate NOT verified for 127.0.0.1")
        .expect_out("UnknownIssuer");
    // Enforced without the CA: TLS stage, 29, nothing sent after.
    let refused = send(&server.addr(), &with(&["--tls", "--tls-verify"]));
    refused.expect_code(29);
    assert!(!refused.stdout.contains("MAIL FROM"), "{}", refused.stdout);
    // Enforced with the CA: verified for the IP address in the certificate.
    send(
        &server.addr(),
        &with(&["--tls", "--tls-verify", "--tls-ca-path", ca]),
    )
    .expect_code(0)
    .expect_out("=== Certificate verified for 127.0.0.1")
    .expect_out(" ~> MAIL FROM:<alice@client.example>");
    let messages = server.messages(2);
    assert!(messages.iter().all(|(_, env)| env["tls"] == true));
}

#[test]
fn tls_on_connect() {
    let certs = Certs::new();
    let server = PyServer::start(PyOptions {
        tls: Some(&certs),
        implicit_tls: true,
        auth: Some("alice:s3cret"),
        // aiosmtpd does not see that an implicit-TLS session is encrypted.
        auth_in_clear: true,
    });
    let ca = certs.ca.to_str().unwrap();
    let run = send(
        &server.addr(),
        &with(&[
            "--tls-on-connect",
            "--tls-verify",
            "--tls-ca-path",
            ca,
            "--auth",
            "--user",
            "alice",
            "--password",
            "s3cret",
        ]),
    );
    run.expect_code(0)
        .expect_out("=== TLS started")
        .expect_out("<~  220 ")
        .expect_out(" ~> AUTH PLAIN ");
    assert!(
        !run.stdout.contains(" -> "),
        "clear text seen:\n{}",
        run.stdout
    );
    // (aiosmtpd does not record implicit TLS in its session; the transcript above shows it.)
    let (_, env) = &server.messages(1)[0];
    assert_eq!(env["authenticated"], true);
    // A clear-text client on a TLS port: no banner it can read.
    send(&server.addr(), &with(&["--timeout", "2"])).expect_code(21);
}

#[test]
fn auth_plain_and_login_good_and_bad() {
    let certs = Certs::new();
    let server = PyServer::start(PyOptions {
        tls: Some(&certs),
        auth: Some("alice:s3cret"),
        ..PyOptions::default()
    });
    let good_plain = with(&[
        "--tls",
        "--auth",
        "PLAIN",
        "--user",
        "alice",
        "--password",
        "s3cret",
    ]);
    send(&server.addr(), &good_plain)
        .expect_code(0)
        // base64("\0alice\0s3cret"): shown as swaks shows it.
        .expect_out(" ~> AUTH PLAIN AGFsaWNlAHMzY3JldA==")
        .expect_out("<~  235 ");
    let good_login = with(&[
        "--tls",
        "--auth",
        "LOGIN",
        "--user",
        "alice",
        "--password",
        "s3cret",
    ]);
    send(&server.addr(), &good_login)
        .expect_code(0)
        .expect_out(" ~> AUTH LOGIN")
        .expect_out(" ~> YWxpY2U=")
        .expect_out(" ~> czNjcmV0")
        .expect_out("<~  235 ");
    for mech in ["PLAIN", "LOGIN"] {
        send(
            &server.addr(),
            &with(&[
                "--tls",
                "--auth",
                mech,
                "--user",
                "alice",
                "--password",
                "wrong",
            ]),
        )
        .expect_code(28)
        .expect_out("<~  535 ")
        .expect_out("*** AUTH refused: 535");
    }
    // The password from standard input when it is not a terminal.
    let mut args = vec!["send", "--server"];
    let addr = server.addr();
    args.push(&addr);
    args.extend(with(&[
        "--tls",
        "--auth",
        "LOGIN",
        "--user",
        "alice",
        "--timeout",
        "10",
    ]));
    run(relais_bin(), &args, b"s3cret\n").expect_code(0);
    let messages = server.messages(3);
    assert!(messages.iter().all(|(_, env)| env["authenticated"] == true));
}

#[test]
fn what_the_server_does_not_offer() {
    // AUTH is offered only under TLS: in clear text it is missing, 28.
    let certs = Certs::new();
    let tls_server = PyServer::start(PyOptions {
        tls: Some(&certs),
        auth: Some("alice:s3cret"),
        ..PyOptions::default()
    });
    send(
        &tls_server.addr(),
        &with(&["--auth", "--user", "alice", "--password", "s3cret"]),
    )
    .expect_code(28)
    .expect_out("*** the server does not offer AUTH");

    // No STARTTLS: --tls stops (29), --tls-optional goes on in clear text.
    let plain = PyServer::start(PyOptions::default());
    send(&plain.addr(), &with(&["--tls"]))
        .expect_code(29)
        .expect_out("*** the server does not offer STARTTLS");
    send(&plain.addr(), &with(&["--tls-optional"]))
        .expect_code(0)
        .expect_out("=== STARTTLS not offered; going on in clear text");
    // aiosmtpd has no CHUNKING: --bdat is refused before MAIL (30).
    send(&plain.addr(), &with(&["--bdat"]))
        .expect_code(30)
        .expect_out("CHUNKING");
    // The seeds' "No such person at this address": RCPT, 24.
    send(
        &plain.addr(),
        &["--from", "a@client.example", "--to", "nobody@py.example"],
    )
    .expect_code(24)
    .expect_out("<-  550 5.1.1 No such person at this address");
    assert_eq!(plain.messages(1).len(), 1);
    assert_eq!(plain.count(), 1);
}
