//! The outbound TLS policy (issue 16, item 3): `may` goes on in clear text after a failed
//! handshake, `encrypt` defers instead, `verify` refuses a certificate made for another name
//! and takes the right one (a real `relais serve` peer with a test CA's certificate).

use std::fs;

use crate::common::certs::Certs;
use crate::support::{
    FaultPeer, Relais, Script, Setup, WAIT, Zone, dns, message, tempdir, tls_peer, wait_files,
};

#[test]
fn may_falls_back_encrypt_defers_verify_checks_the_name() {
    let broken = FaultPeer::local(Script {
        extensions: vec!["STARTTLS".into()],
        ..Script::default()
    });
    let certs = Certs::signed_by("TLS Policy Test CA", "mx.right.test", &[]);
    let work = tempdir("relais-tlspeer-");
    let peer = tls_peer(
        work.path(),
        "127.0.0.1:0",
        &["verify.test", "verify-ok.test"],
        &certs,
    );
    let port = peer.addr().port();
    let dns = dns(Zone::new()
        .a("mx.broken.test", "127.0.0.1")
        .a("mx.right.test", "127.0.0.1")
        .a("mx.wrong.test", "127.0.0.1"));
    let dir = tempdir("relais-tls-");
    let mut setup = Setup::sender(&dns)
        .route("may.test", &broken.hop("mx.broken.test"))
        .route("encrypt.test", &broken.hop("mx.broken.test"))
        .route("verify.test", &format!("[mx.wrong.test]:{port}"))
        .route("verify-ok.test", &format!("[mx.right.test]:{port}"));
    setup.delivery.extend([
        format!("tls_ca_file = {:?}", certs.ca.display().to_string()),
        "tls_policy = { \"encrypt.test\" = \"encrypt\", \"verify.test\" = \"verify\", \
         \"verify-ok.test\" = \"verify\" }"
            .to_string(),
    ]);
    let relais = Relais::start("relais", dir.path(), &setup);
    let mut c = relais.smtp();
    let id = c.send(
        "<sender@relais.test>",
        &[
            "<a@may.test>",
            "<b@encrypt.test>",
            "<c@verify.test>",
            "<d@verify-ok.test>",
        ],
        &message("tls policy", "tls-policy"),
    );
    c.quit();

    // may: the broken handshake, then the same peer in clear text.
    relais.wait_log(&[&id, "to=<a@may.test>", "status=sent"], 1);
    let taken = broken.wait_taken(1);
    assert_eq!(taken[0].rcpts, ["RCPT TO:<a@may.test>"]);
    assert!(
        relais.log().contains("STARTTLS failed") && relais.log().contains("tls = may"),
        "{}",
        relais.log()
    );
    // encrypt: deferred, never sent in clear.
    let deferred = relais.wait_log(&[&id, "to=<b@encrypt.test>", "status=deferred"], 1);
    assert!(deferred[0].contains("STARTTLS failed"), "{deferred:?}");
    // verify: a certificate for mx.right.test does not do for mx.wrong.test.
    let deferred = relais.wait_log(&[&id, "to=<c@verify.test>", "status=deferred"], 1);
    assert!(deferred[0].contains("STARTTLS failed"), "{deferred:?}");
    // verify with the right name: delivered, over TLS.
    relais.wait_log(&[&id, "to=<d@verify-ok.test>", "status=sent"], 1);
    let got = wait_files(&work.path().join("data/mail/d/new"), 1, WAIT);
    let text = fs::read_to_string(&got[0]).unwrap();
    assert!(text.contains("with ESMTPS"), "{text}");
    assert!(!work.path().join("data/mail/c").exists());
    assert_eq!(broken.taken().len(), 1);
}
