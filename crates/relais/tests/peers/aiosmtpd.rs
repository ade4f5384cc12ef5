//! `relais probe` against aiosmtpd with STARTTLS and a self-signed certificate.

use crate::support::{Certs, PyServer, Zone, dns, probe};

#[test]
fn probe_aiosmtpd_reports_tls_and_self_signed_certificate() {
    let certs = Certs::self_signed("localhost");
    let server = PyServer::start(&certs);
    let dns = dns(Zone::new().a("localhost", "127.0.0.1"));
    let p = probe(&dns, &server.addr(), &["--rcpt", "bob@py.test"]);
    // The TLS stage: version and cipher, in the table and the verdict.
    let tls = &p.json["hosts"][0]["tls"];
    assert_eq!(tls["version"], "TLSv1.3", "{}", p.run);
    assert!(
        tls["cipher"]
            .as_str()
            .is_some_and(|c| c.starts_with("TLS13_")),
        "{}",
        p.run
    );
    assert!(
        p.stage("starttls").starts_with("TLSv1.3 TLS13_"),
        "{}",
        p.run
    );
    p.expect("starttls", "ok", &["STARTTLS: TLSv1.3 with TLS13_"]);
    // The certificate: self-signed, not verified, described.
    assert_eq!(tls["verified"], false, "{}", p.run);
    assert_eq!(tls["certificate"]["self_signed"], true, "{}", p.run);
    let certificate = p.verdict("certificate");
    assert!(
        certificate.iter().any(|(level, reason)| level == "warn"
            && reason.contains("the certificate is self-signed")
            && reason.contains("names [localhost]")),
        "{certificate:?}\n{}",
        p.run
    );
    assert!(
        !certificate.iter().any(|(level, _)| level == "fail"),
        "a self-signed certificate is a warning, not a failure: {certificate:?}"
    );
    // aiosmtpd's EHLO under TLS, and its answers: the test handler takes every recipient but
    // `nobody@`, so the probe finds a catch-all and an open relay (exit 40), and VRFY says 252.
    assert!(!p.stage("ehlo-tls").is_empty(), "{}", p.run);
    p.expect("rcpt", "ok", &["<bob@py.test> accepted"])
        .expect("recipient-verification", "warn", &["was accepted"])
        .expect("open-relay", "fail", &["OPEN RELAY"])
        .expect("vrfy", "ok", &["252"]);
    p.run.expect_code(40);
    // Without STARTTLS (--no-starttls) the certificate is not looked at.
    let plain = probe(&dns, &server.addr(), &["--no-starttls"]);
    assert!(plain.json["hosts"][0]["tls"].is_null(), "{}", plain.run);
    assert!(plain.verdict("certificate").is_empty(), "{}", plain.run);
}
