//! Bad input meets the sender checks: broken and missing records, DNS failures and silence,
//! huge and duplicate headers, content that is no message at all. Each gets the right
//! temporary or permanent answer (or is accepted and recorded), never a panic, and nothing
//! accepted is lost.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use relais_dns::fixture::Fault;

use crate::common::Zone;
use crate::support::Client;
use crate::zone::{dkim_tool, header, headers, server, start_dns};

/// A DNS zone of broken things.
fn broken_zone() -> Zone {
    Zone::new()
        .txt(
            "badkey._domainkey.broken.test",
            "v=DKIM1; k=rsa; p=!!not base64!!",
        )
        .txt("rsa._domainkey.broken.test", "v=DKIM1; k=rsa; p=")
        .txt("broken.test", "v=spf1 ip4:127.0.0.1 -all")
        .txt("_dmarc.broken.test", "v=DMARC1; p=bogus; rua=nonsense")
        .txt("silent-spf.test", "v=spf1 include:deaf.test -all")
        .fault("deaf.test", Fault::Silent)
        .fault("servfail-key.test", Fault::ServFail)
        .txt("_dmarc.strict.test", "v=DMARC1; p=reject")
        .txt("strict.test", "v=spf1 -all")
}

/// Sends `content` (already dot-safe) as one message and returns the final reply line.
fn send_raw(port: u16, from: &str, to: &str, content: &[u8]) -> String {
    let mut c = Client::ready(port, None);
    c.expect(&format!("MAIL FROM:<{from}>"), "250 ");
    c.expect(&format!("RCPT TO:<{to}>"), "250 ");
    c.expect("DATA", "354 ");
    c.write_raw(content);
    c.write_raw(b"\r\n.\r\n");
    c.reply().lines.join(" / ")
}

#[test]
fn broken_and_unreachable_keys_are_recorded_and_refuse_nothing() {
    // Real signatures (dkimpy's, with a real key), whose published keys are broken, revoked
    // or unreachable.
    let dir = crate::common::wait::tempdir("relais-badkeys-");
    let key = dir.path().join("rsa.key");
    dkim_tool(&["keygen", "rsa", key.to_str().unwrap()]);
    let dns = start_dns(broken_zone());
    let s = server(
        &dns,
        &[
            "spf = \"reject\"",
            "dkim = \"tag\"",
            "dmarc = \"enforce\"",
            "arc = \"tag\"",
        ],
    );
    let port = s.port("mx").to_string();
    let sign = |d: &str, sel: &str| format!("{d}:{sel}:{}:rsa:relaxed/relaxed", key.display());
    let (bad, revoked, unreachable) = (
        sign("broken.test", "badkey"),
        sign("broken.test", "rsa"),
        sign("servfail-key.test", "x"),
    );
    let out = dkim_tool(&[
        "send",
        &port,
        "alice@broken.test",
        "bob@local.test",
        "--sign",
        &bad,
        "--sign",
        &revoked,
        "--sign",
        &unreachable,
        "--extra",
        "DKIM-Signature: this is not a signature at all",
    ]);
    let reply = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let mail = s.wait_mail("bob", 1).remove(0);
    let ar = header(&mail, "Authentication-Results").unwrap();
    assert!(!ar.contains("dkim=pass"), "{ar}");
    assert!(ar.contains("dkim=temperror"), "the unreachable key: {ar}");
    assert!(ar.contains("header.s=badkey"), "{ar}");
    assert!(ar.contains("header.s=rsa"), "{ar}");
    assert!(
        ar.contains("spf=pass (mx.local.test: domain of alice@broken.test designates 127.0.0.1"),
        "{ar}"
    );
    // the DMARC record is broken: recorded, nothing refused
    assert!(ar.contains("dmarc=permerror"), "{ar}");
    assert_eq!(
        headers(&mail, "DKIM-Signature").len(),
        4,
        "the signatures stay as they came"
    );
}

#[test]
fn a_silent_dns_server_makes_spf_a_temporary_failure() {
    let dns = start_dns(broken_zone());
    let s = server(&dns, &["spf = \"reject\""]);
    // The include's server never answers: after the resolver's time-outs, 451 4.7.24. The
    // client waits longer than the support client's usual 10 s.
    let mut stream = TcpStream::connect(("127.0.0.1", s.port("mx"))).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let read = |stream: &mut TcpStream| {
        let mut buf = [0u8; 1024];
        let n = stream.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(read(&mut stream).starts_with("220 "));
    stream.write_all(b"EHLO client.test\r\n").unwrap();
    let mut ehlo = read(&mut stream);
    while !ehlo.contains("250 ") {
        ehlo += &read(&mut stream);
    }
    stream
        .write_all(b"MAIL FROM:<alice@silent-spf.test>\r\n")
        .unwrap();
    let reply = read(&mut stream);
    assert!(reply.starts_with("451 4.7.24 "), "{reply}");
    assert!(reply.contains("silent-spf.test"), "{reply}");
    // the session goes on
    stream.write_all(b"NOOP\r\n").unwrap();
    assert!(read(&mut stream).starts_with("250 "));
}

/// The one message in the Maildir of `user`, as bytes (it need not be text).
fn wait_bytes(s: &crate::support::Server, user: &str) -> Vec<u8> {
    let dir = s.data_dir.join("mail").join(user).join("new");
    crate::common::wait::wait_until(
        &format!("a message for {user}"),
        Duration::from_secs(10),
        || {
            let file = std::fs::read_dir(&dir).ok()?.next()?.ok()?.path();
            std::fs::read(file).ok()
        },
    )
}

#[test]
fn huge_duplicate_and_odd_headers_get_an_answer_and_are_kept() {
    let dns = start_dns(broken_zone());
    let s = server(
        &dns,
        &["dkim = \"tag\"", "dmarc = \"enforce\"", "arc = \"tag\""],
    );
    let port = s.port("mx");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // a 200 kB header field, folded into 1000-octet lines
        ("huge", {
            let mut m = b"From: <alice@strict.test>\r\nX-Big: start".to_vec();
            for _ in 0..200 {
                m.extend_from_slice(b"\r\n ");
                m.extend_from_slice(&[b'x'; 998]);
            }
            m.extend_from_slice(b"\r\n\r\nbody\r\n");
            m
        }),
        // 5,000 header fields
        ("many", {
            let mut m = b"From: <alice@strict.test>\r\n".to_vec();
            for i in 0..5000 {
                m.extend_from_slice(format!("X-Field-{i}: {i}\r\n").as_bytes());
            }
            m.extend_from_slice(b"\r\nbody\r\n");
            m
        }),
        // two From: fields from two domains (DMARC does not apply: RFC 7489 6.6.1)
        (
            "twofrom",
            b"From: <alice@strict.test>\r\nFrom: <bob@other.test>\r\n\r\nbody\r\n".to_vec(),
        ),
        // no header at all, and bytes that are no text
        ("noheader", b"just a line, no header\r\n".to_vec()),
        ("binary", vec![0x80, 0xff, 0x00, 0x1b, b'\r', b'\n', 0xfe]),
        // a header section that never ends
        (
            "noend",
            b"From: <alice@strict.test>\r\nSubject: no body".to_vec(),
        ),
    ];
    for (rcpt, content) in &cases {
        let reply = send_raw(
            port,
            "alice@elsewhere.test",
            &format!("{rcpt}@local.test"),
            content,
        );
        assert!(
            reply.starts_with("250 2.0.0") || reply.starts_with("550 5.7.1"),
            "{rcpt}: {reply}"
        );
        if reply.starts_with("250") {
            let mail = wait_bytes(&s, rcpt);
            let mail = String::from_utf8_lossy(&mail);
            assert!(
                mail.contains("\nAuthentication-Results: mx.local.test;"),
                "{rcpt}: {mail:.300}"
            );
            assert!(mail.len() >= content.len(), "{rcpt}: content lost");
        }
    }
    // the duplicated From: is exempt from DMARC rather than refused
    let mail = s.wait_mail("twofrom", 1).remove(0);
    assert!(
        header(&mail, "Authentication-Results")
            .unwrap()
            .contains("dmarc=none"),
        "{mail}"
    );
    // the server is still there
    assert!(
        send_raw(
            port,
            "x@elsewhere.test",
            "last@local.test",
            b"Subject: x\r\n\r\nx\r\n"
        )
        .starts_with("250 ")
    );
}

#[test]
fn a_dkim_key_lookup_failure_never_refuses_under_dmarc_enforce() {
    // SPF fails for temp-key.test, its only signature's key lookup fails: DMARC can neither
    // pass nor fail, so its p=reject is not applied.
    let dir = crate::common::wait::tempdir("relais-tempkey-");
    let key = dir.path().join("rsa.key");
    dkim_tool(&["keygen", "rsa", key.to_str().unwrap()]);
    let dns = start_dns(
        broken_zone()
            .txt("temp-key.test", "v=spf1 -all")
            .txt("_dmarc.temp-key.test", "v=DMARC1; p=reject")
            .fault("x._domainkey.temp-key.test", Fault::ServFail),
    );
    let s = server(
        &dns,
        &["spf = \"tag\"", "dkim = \"tag\"", "dmarc = \"enforce\""],
    );
    let sig = format!("temp-key.test:x:{}:rsa:relaxed/relaxed", key.display());
    let port = s.port("mx").to_string();
    let out = dkim_tool(&[
        "send",
        &port,
        "alice@temp-key.test",
        "bob@local.test",
        "--sign",
        &sig,
    ]);
    let reply = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let ar = header(&s.wait_mail("bob", 1).remove(0), "Authentication-Results").unwrap();
    assert!(ar.contains("dkim=temperror"), "{ar}");
    assert!(ar.contains("dmarc=temperror"), "{ar}");
}
