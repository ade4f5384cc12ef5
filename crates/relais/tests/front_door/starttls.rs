//! STARTTLS: commands pipelined after it in clear text are thrown away, never executed
//! (CVE-2011-0411); the session starts over after the handshake; TLS 1.2 and 1.3 work and are
//! recorded; the certificate comes from the configuration or is generated and kept.

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::support::{Client, HOSTNAME, PASSWORD, Server, Setup, Tls, USER, plain_blob, received};

/// Asserts `r` is our EHLO reply (not the `250 2.0.0 Ok` of an injected command).
fn assert_ehlo_reply(r: &crate::support::Reply) {
    assert!(
        r.lines.len() > 1 && r.lines[0] == format!("250-{HOSTNAME}"),
        "expected the EHLO reply, got {r}"
    );
}

#[test]
fn starttls_injection_rset_is_never_answered() {
    let server = Server::start(Setup::new(&["mx"]));
    let mut c = Client::ready(server.port("mx"), None);
    c.write_raw(b"STARTTLS\r\nRSET\r\n");
    let r = c.reply();
    assert!(r.is("220 2.0.0"), "STARTTLS: {r}");
    // nothing else in clear text: the RSET is not answered before the handshake ...
    assert_eq!(c.unread_bytes(), 0, "clear text after the 220");
    c.handshake(Tls::Any);
    // ... nor after it: the first reply inside TLS is the one to our EHLO
    let r = c.cmd("EHLO client.test");
    assert_ehlo_reply(&r);
    c.expect("NOOP", "250 2.0.0 Ok");
    c.quit();
    server.assert_logged("discarded 6 bytes sent in clear text after STARTTLS");
}

#[test]
fn starttls_injection_of_auth_and_a_transaction_is_never_executed() {
    let server = Server::start(Setup::new(&["submission"]));
    let mut c = Client::ready(server.port("submission"), None);
    let injected = format!(
        "STARTTLS\r\nEHLO evil.test\r\nAUTH PLAIN {}\r\nMAIL FROM:<alice@local.test>\r\n\
         RCPT TO:<victim@other.test>\r\n",
        plain_blob(USER, PASSWORD)
    );
    c.write_raw(injected.as_bytes());
    let r = c.reply();
    assert!(r.is("220 2.0.0"), "STARTTLS: {r}");
    assert_eq!(c.unread_bytes(), 0, "clear text after the 220");
    c.handshake(Tls::Any);
    let r = c.cmd("EHLO client.test");
    assert_ehlo_reply(&r);
    // the injected AUTH did not log us in, the injected MAIL opened no transaction
    c.expect("RCPT TO:<bob@local.test>", "503 5.5.1");
    c.expect(
        "MAIL FROM:<alice@local.test>",
        "530 5.7.0 Authentication required",
    );
    c.quit();
    // The session's last line is in the log: so is everything the session logged.
    server.assert_logged("disconnect from");
    let log = server.log();
    assert!(!log.contains("sasl_username"), "{log}");
    assert!(!log.contains("victim"), "{log}");
}

#[test]
fn starttls_starts_the_session_over() {
    let server = Server::start(Setup::new(&["mx"]));
    let mut c = Client::ready(server.port("mx"), None);
    c.expect("MAIL FROM:<a@other.test>", "250 2.1.0");
    c.expect("STARTTLS", "220 2.0.0");
    c.handshake(Tls::Any);
    // the EHLO from before TLS is forgotten (RFC 3207 §4.2), and so is the transaction
    c.expect("MAIL FROM:<a@other.test>", "503 5.5.1");
    c.ehlo();
    c.expect("RCPT TO:<bob@local.test>", "503 5.5.1");
    c.quit();
}

#[test]
fn auth_in_clear_text_is_forgotten_after_starttls() {
    let server = Server::start(Setup::new(&["mx"]).auth("allow_plaintext = true"));
    let mut c = Client::ready(server.port("mx"), None);
    c.expect(
        &format!("AUTH PLAIN {}", plain_blob(USER, PASSWORD)),
        "235 2.7.0",
    );
    c.expect("STARTTLS", "220 2.0.0");
    c.handshake(Tls::Any);
    c.ehlo();
    // RFC 3207 §4.2: everything learnt before TLS is discarded, AUTH included: no relaying
    c.expect("MAIL FROM:<alice@local.test>", "250 2.1.0");
    c.expect("RCPT TO:<someone@other.test>", "554 5.7.1");
    c.expect("RSET", "250 ");
    // logging in again inside TLS works (it would be `503 already authenticated` otherwise)
    c.expect(
        &format!("AUTH PLAIN {}", plain_blob(USER, PASSWORD)),
        "235 2.7.0",
    );
    c.expect("MAIL FROM:<alice@local.test>", "250 2.1.0");
    c.expect("RCPT TO:<someone@other.test>", "250 2.1.5");
    c.quit();
}

#[test]
fn ehlo_offers_auth_only_under_tls_and_starttls_only_once() {
    let server = Server::start(Setup::new(&["mx"]));
    let mut c = Client::connect(server.port("mx"));
    c.greeting();
    let before = c.ehlo();
    assert!(before.mentions("STARTTLS"), "{before}");
    assert!(!before.mentions("AUTH"), "{before}");
    c.expect("STARTTLS", "220 2.0.0");
    c.handshake(Tls::Any);
    let after = c.ehlo();
    assert!(!after.mentions("STARTTLS"), "{after}");
    assert!(
        after.lines.iter().any(|l| l == "250-AUTH PLAIN LOGIN"),
        "{after}"
    );
    c.expect("STARTTLS", "554 5.5.1");
    c.quit();
}

#[test]
fn tls_1_2_works_and_is_recorded() {
    let server = Server::start(Setup::new(&["mx"]));
    let mut c = Client::ready(server.port("mx"), None);
    c.starttls_with(Tls::V12);
    assert_eq!(c.tls_version().as_deref(), Some("TLSv1_2"));
    let r = c.send_mail("sender@other.test", &["hank@local.test"], "tls 1.2");
    assert!(r.is("250 2.0.0 Ok: queued as"), "{r}");
    c.quit();
    let msgs = server.wait_mail("hank", 1);
    let rcv = received(&msgs[0]);
    assert!(
        rcv.contains("(using TLSv1.2 with cipher TLS_ECDHE_"),
        "{rcv}"
    );
    assert!(rcv.contains("with ESMTPS id"), "{rcv}");
    server.assert_logged("STARTTLS from unknown[127.0.0.1]");
}

#[test]
fn certificate_is_generated_once_or_taken_from_the_config() {
    let first = Server::start(Setup::new(&["submissions"]));
    first.assert_logged("generated a self-signed one for mx.local.test");
    let cert = first.data_dir.join("tls/cert.pem");
    let key = first.data_dir.join("tls/key.pem");
    assert!(cert.is_file() && key.is_file());
    let pem = CertificateDer::from_pem_file(&cert).expect("a PEM certificate");
    let mut c = Client::connect_tls(first.port("submissions"), None);
    assert_eq!(c.peer_certificate().as_deref(), Some(pem.as_ref()));
    c.greeting();
    c.quit();

    // the same files, configured: a second server presents that certificate, makes none
    let kept = tempfile::tempdir().unwrap();
    let (cert2, key2) = (kept.path().join("c.pem"), kept.path().join("k.pem"));
    std::fs::copy(&cert, &cert2).unwrap();
    std::fs::copy(&key, &key2).unwrap();
    let second = Server::start(Setup::new(&["mx"]).tls_files(&cert2, &key2));
    let mut c = Client::ready(second.port("mx"), None);
    c.starttls();
    assert_eq!(c.peer_certificate().as_deref(), Some(pem.as_ref()));
    c.quit();
    assert!(!second.log().contains("generated a self-signed"));
    assert!(!second.data_dir.join("tls/cert.pem").exists());
}

#[test]
fn tls_disabled_offers_no_starttls() {
    let server = Server::start(Setup::new(&["mx"]).without_tls());
    let mut c = Client::ready(server.port("mx"), None);
    let ehlo = c.cmd("EHLO client.test");
    assert!(!ehlo.mentions("STARTTLS"), "{ehlo}");
    c.expect("STARTTLS", "502 5.5.1");
    let r = c.send_mail("s@other.test", &["ivy@local.test"], "no tls");
    assert!(r.is("250 2.0.0 Ok: queued as"), "{r}");
    c.quit();
    assert!(!server.data_dir.join("tls").exists());
}

#[test]
fn submissions_without_tls_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = Setup::new(&["mx", "submissions"])
        .without_tls()
        .write_config(dir.path());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_relais"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env_remove("RELAIS_LOG")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run relais serve");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("a submissions listener needs TLS"), "{err}");
}

/// A certificate for `names` valid until `days` from now, written as PEM files in `dir`.
fn certificate(
    dir: &std::path::Path,
    stem: &str,
    names: &[&str],
    days: i64,
) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    use rcgen::{CertificateParams, DnType, KeyPair};
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name.push(DnType::CommonName, names[0]);
    let now = relais_proto::date::unix_secs(std::time::SystemTime::now());
    let end = relais_proto::date::DateTime::from_unix(now + days * 86_400);
    params.not_after = rcgen::date_time_ymd(end.year as i32, end.month as u8, end.day as u8);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (c, k) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    );
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k, cert.der().to_vec())
}

#[test]
fn certificates_are_chosen_by_the_name_the_client_asks_for() {
    let dir = tempfile::tempdir().unwrap();
    let (dc, dk, default) = certificate(dir.path(), "default", &[HOSTNAME], 90);
    let (oc, ok, other) = certificate(dir.path(), "other", &["mail.other.test", "*.wild.test"], 90);
    let server = Server::start(Setup::new(&["mx"]).tls_files(&dc, &dk).tls_line(&format!(
        "[[tls.sni]]\ncert = {:?}\nkey = {:?}",
        oc.display().to_string(),
        ok.display().to_string()
    )));
    let served = |sni: Tls| {
        let mut c = Client::ready(server.port("mx"), None);
        c.expect("STARTTLS", "220 2.0.0");
        c.handshake(sni);
        let der = c.peer_certificate().expect("a certificate");
        c.ehlo();
        c.quit();
        der
    };
    let table: &[(Tls, &[u8])] = &[
        (Tls::Any, &default),
        (Tls::Sni("mail.other.test"), &other),
        (Tls::Sni("MAIL.OTHER.TEST"), &other),
        (Tls::Sni("a.wild.test"), &other),
        (Tls::Sni("a.b.wild.test"), &default),
        (Tls::Sni("unknown.test"), &default),
    ];
    for (sni, want) in table {
        assert_eq!(served(*sni), *want, "{sni:?}");
    }
}

#[test]
fn a_minimum_version_refuses_older_clients_and_soon_expiring_certificates_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let (c, k, _) = certificate(dir.path(), "soon", &[HOSTNAME], 5);
    let server = Server::start(
        Setup::new(&["mx"])
            .tls_files(&c, &k)
            .tls_line("min_version = \"1.3\""),
    );
    server.assert_logged("expires in");
    assert!(
        server
            .log()
            .contains(&format!("TLS certificate {}", c.display()))
    );
    let mut old = Client::ready(server.port("mx"), None);
    old.expect("STARTTLS", "220 2.0.0");
    assert!(old.try_handshake(Tls::V12).is_err(), "TLS 1.2 was accepted");
    let mut new = Client::ready(server.port("mx"), None);
    new.starttls();
    assert_eq!(new.tls_version().as_deref(), Some("TLSv1_3"));
    new.quit();
}
