//! DANE (RFC 7672, issue 16 item 3): zones signed at test time with `ldns-signzone` (ED25519
//! keys from `ldns-keygen`: `test.`, delegating with a DS record to `dane.test` and without
//! one to the unsigned `plain.test`), served by a private NSD on 127.0.0.1 (`common::dnssec`,
//! shared with `relais check`'s DANE tests), validated by relais from a trust-anchor file of
//! `test.`'s keys. The MX hosts all lead to one relais peer on port 25 of
//! a 127.0.0.x, whose certificate a test CA signed:
//!
//! - `ee.dane.test`: TLSA 3 1 1 (the server's public key): delivered over TLS;
//! - `ta.dane.test`: TLSA 2 0 1 (the CA in the chain it sends), the name checked: delivered;
//! - `bad.dane.test`: a TLSA record that matches nothing: deferred, never sent in clear;
//! - `none.dane.test`: no TLSA record: as `may`, delivered;
//! - `plain.test`, an unsigned zone whose MX is `bad`'s host: its TLSA records do not count;
//! - and from a relais whose trust anchor is another key, nothing validates: deferred.

use std::fs;
use std::net::Ipv4Addr;

use crate::common::certs::Certs;
use crate::common::dnssec::{Dnssec, SignedDns, Zone, cert_sha256, keys, record_in, spki_sha256};
use crate::support::{Relais, Setup, WAIT, loopback_25, message, tempdir, tls_peer, wait_files};

/// The zones: `test.` delegates to `dane.test` (signed, with its DS) and to `plain.test`
/// (unsigned, no DS). Every MX host of dane.test is at `ip`; TLSA records as the module says.
fn signed_zones(ip: Ipv4Addr, certs: &Certs) -> SignedDns {
    let ee = spki_sha256(&certs.chain);
    let ta = cert_sha256(&certs.ca);
    let dane = format!(
        "ee IN MX 10 mx1.dane.test.\nta IN MX 10 mx2.dane.test.\n\
         bad IN MX 10 mx3.dane.test.\nnone IN MX 10 mx4.dane.test.\n\
         mx1 IN A {ip}\nmx2 IN A {ip}\nmx3 IN A {ip}\nmx4 IN A {ip}\n\
         _25._tcp.mx1 IN TLSA 3 1 1 {ee}\n\
         _25._tcp.mx2 IN TLSA 2 0 1 {ta}\n\
         _25._tcp.mx3 IN TLSA 3 1 1 {}\n",
        "ab".repeat(32)
    );
    // plain.test is not signed: its MX host is bad's, whose TLSA records must not count.
    let plain = "@ IN MX 10 mx3.dane.test.\n".to_string();
    SignedDns::start(
        &[
            Zone {
                name: "dane.test",
                records: dane,
                dnssec: Dnssec::Signed,
            },
            Zone {
                name: "plain.test",
                records: plain,
                dnssec: Dnssec::Unsigned,
            },
        ],
        &[],
    )
}

#[test]
fn tlsa_records_decide_and_a_mismatch_defers() {
    let ip = loopback_25();
    let certs = Certs::signed_for("DANE Test CA", &["mx1.dane.test", "mx2.dane.test"]);
    let signed = signed_zones(ip, &certs);
    let zone_dir = &signed.dir;
    let work = tempdir("relais-dane-peer-");
    let domains = [
        "ee.dane.test",
        "ta.dane.test",
        "bad.dane.test",
        "none.dane.test",
        "plain.test",
    ];
    let peer = tls_peer(work.path(), &format!("{ip}:25"), &domains, &certs);

    let dir = tempdir("relais-dane-");
    let dns = crate::support::dns(crate::support::Zone::new());
    let mut setup = Setup::sender(&dns);
    setup.resolver = Some(signed.addr());
    setup.delivery.extend([
        "tls = \"dane\"".to_string(),
        format!(
            "dnssec_trust_anchor = {:?}",
            signed.anchors.display().to_string()
        ),
    ]);
    let relais = Relais::start("relais", dir.path(), &setup);
    let mut c = relais.smtp();
    let id = c.send(
        "<sender@relais.test>",
        &[
            "<a@ee.dane.test>",
            "<b@ta.dane.test>",
            "<c@bad.dane.test>",
            "<d@none.dane.test>",
            "<g@plain.test>",
        ],
        &message("dane", "dane"),
    );
    c.quit();

    relais.wait_log(&[&id, "to=<a@ee.dane.test>", "status=sent"], 1);
    relais.wait_log(&[&id, "to=<b@ta.dane.test>", "status=sent"], 1);
    let deferred = relais.wait_log(&[&id, "to=<c@bad.dane.test>", "status=deferred"], 1);
    assert!(deferred[0].contains("TLSA"), "{deferred:?}");
    relais.wait_log(&[&id, "to=<d@none.dane.test>", "status=sent"], 1);
    // An MX record DNSSEC does not prove: no DANE, so mx3's mismatching TLSA does not count.
    relais.wait_log(&[&id, "to=<g@plain.test>", "status=sent"], 1);
    for local in ["a", "b", "d"] {
        let got = wait_files(&work.path().join(format!("data/mail/{local}/new")), 1, WAIT);
        let text = fs::read_to_string(&got[0]).unwrap();
        assert!(text.contains("with ESMTPS"), "{local}: {text}");
    }
    assert!(!work.path().join("data/mail/c").exists());

    // A trust anchor the zone was not signed with: every answer is bogus, nothing leaves.
    let [other, _] = keys(zone_dir.path(), "test");
    let wrong = zone_dir.path().join("wrong.keys");
    let record = record_in(zone_dir.path(), &format!("{other}.key"), "DNSKEY");
    fs::write(&wrong, format!("{record}\n")).unwrap();
    let dir2 = tempdir("relais-dane-bogus-");
    let mut setup2 = Setup::sender(&dns);
    setup2.resolver = Some(signed.addr());
    setup2.delivery.extend([
        "tls = \"dane\"".to_string(),
        format!("dnssec_trust_anchor = {:?}", wrong.display().to_string()),
    ]);
    let relais2 = Relais::start("relais (wrong anchor)", dir2.path(), &setup2);
    let mut c = relais2.smtp();
    let id = c.send(
        "<sender@relais.test>",
        &["<e@ee.dane.test>", "<f@none.dane.test>"],
        &message("dane bogus", "dane-bogus"),
    );
    c.quit();
    for to in ["to=<e@ee.dane.test>", "to=<f@none.dane.test>"] {
        let deferred = relais2.wait_log(&[&id, to, "status=deferred"], 1);
        assert!(
            deferred[0].contains("DNSSEC validation failed"),
            "{deferred:?}"
        );
    }
    assert!(!work.path().join("data/mail/e").exists());
    assert!(!work.path().join("data/mail/f").exists());
    drop(peer);
}
