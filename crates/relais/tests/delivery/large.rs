//! A large message relayed byte for byte, read from the spool as it is sent: with DATA
//! (dot-stuffed piece by piece) and, with `[delivery] chunking`, in BDAT chunks to a peer that
//! offers CHUNKING. Its bounce returns only its header section.

use std::net::SocketAddr;

use crate::common::large::{assert_tail, crlf, message};
use crate::support::{Dsn, FaultPeer, Relais, Script, Setup, tempdir};

/// A relais on 127.0.0.1 sending mail for big.test to `peer`, with more `[delivery]` lines.
fn sender(dir: &std::path::Path, peer: &FaultPeer, delivery: &[&str]) -> Relais {
    let setup = Setup {
        hostname: "relais.test".into(),
        local_domains: vec!["relais.test".into()],
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        resolver: None,
        routes: vec![(
            "big.test".into(),
            format!("[127.0.0.1]:{}", peer.addr.port()),
        )],
        relayhost: None,
        delivery: delivery.iter().map(|s| s.to_string()).collect(),
        limits: Vec::new(),
    };
    Relais::start("relais", dir, &setup)
}

#[test]
fn a_large_message_goes_byte_for_byte_with_data_and_with_bdat() {
    let peer = FaultPeer::local(Script {
        extensions: vec!["CHUNKING".into()],
        ..Script::default()
    });
    // (configuration, BDAT chunks expected: none for DATA, a 1 MB chunk at a time for BDAT)
    let runs: [(&[&str], bool); 2] = [(&[], false), (&["chunking = true"], true)];
    for (n, (delivery, chunked)) in runs.into_iter().enumerate() {
        let dir = tempdir("relais-large-");
        let relais = sender(dir.path(), &peer, delivery);
        let text = message(&format!("large{n}"), 6_000_000);
        let mut c = relais.smtp();
        c.send("<sender@relais.test>", &["<someone@big.test>"], &text);
        c.quit();
        let taken = peer.wait_taken(n + 1);
        let got = &taken[n];
        assert_tail(&format!("run {n}"), &got.data, &crlf(&text));
        match chunked {
            false => assert_eq!(got.chunks, 0, "sent with DATA"),
            true => assert!(got.chunks >= 6, "{} BDAT chunks", got.chunks),
        }
        relais.wait_log(&["removed"], 1);
    }
}

#[test]
fn the_bounce_of_a_large_message_returns_its_headers_only() {
    let peer = FaultPeer::local(Script {
        data: Box::new(|_| "554 5.6.0 Not this one".into()),
        ..Script::default()
    });
    let dir = tempdir("relais-large-");
    let relais = sender(dir.path(), &peer, &[]);
    let text = message("large-bounce", 200_000);
    let mut c = relais.smtp();
    c.send("<sender@relais.test>", &["<someone@big.test>"], &text);
    c.quit();
    let raw = relais.wait_mail("sender", 1).remove(0);
    // Over the 50,000 octets a bounce returns whole: its header section only.
    assert!(raw.len() < 20_000, "a bounce of {} octets", raw.len());
    let d = Dsn::parse(&raw);
    assert_eq!(d.returned_type, "text/rfc822-headers");
    assert!(
        d.returned.contains("Subject: large-bounce"),
        "{}",
        d.returned
    );
}
