//! SPF at MAIL FROM through `relais serve`: every result under `reject`, `tag` and `off`, the
//! replies' codes and texts, and the headers of the delivered copy.

use std::net::Ipv4Addr;

use crate::support::{Client, PASSWORD, Server, USER, output_text, swaks};
use crate::zone::{header, server, setup, spf_zone, start_dns};

/// MAIL FROM `from` after EHLO `helo`: the reply.
fn mail_from(port: u16, helo: &str, from: &str) -> crate::support::Reply {
    let mut c = Client::connect(port);
    c.greeting();
    c.expect(&format!("EHLO {helo}"), "250 ");
    c.cmd(&format!("MAIL FROM:<{from}>"))
}

#[test]
fn reject_refuses_fail_permerror_and_temperror_with_their_codes() {
    let dns = start_dns(spf_zone());
    let s = server(&dns, &["spf = \"reject\""]);
    let port = s.port("mx");
    // (sender, HELO, expected reply start, words the reply must have)
    let cases: &[(&str, &str, &str, &[&str])] = &[
        ("alice@pass.test", "client.test", "250 2.1.0", &[]),
        ("alice@neutral.test", "client.test", "250 2.1.0", &[]),
        ("alice@nospf.test", "client.test", "250 2.1.0", &[]),
        ("alice@soft.test", "client.test", "250 2.1.0", &[]),
        (
            "alice@fail.test",
            "client.test",
            "550 5.7.23",
            &[
                "<alice@fail.test>: Sender address rejected: SPF fail",
                "fail.test does not authorize 127.0.0.1",
            ],
        ),
        (
            "bob@exp.test",
            "client.test",
            "550 5.7.23",
            &["exp.test explains: 127.0.0.1 may not send mail for exp.test"],
        ),
        (
            "alice@broken.test",
            "client.test",
            "550 5.7.24",
            &["SPF permanent error", "broken.test"],
        ),
        (
            "alice@servfail.test",
            "client.test",
            "451 4.7.24",
            &["SPF temporary error", "servfail.test", "try again later"],
        ),
        // the null sender: the HELO name is checked
        (
            "",
            "helo-fail.test",
            "550 5.7.23",
            &[
                "<>: Sender address rejected",
                "helo-fail.test does not authorize",
            ],
        ),
        ("", "helo-pass.test", "250 2.1.0", &[]),
    ];
    for (from, helo, code, words) in cases {
        let r = mail_from(port, helo, from);
        assert!(r.is(code), "MAIL FROM:<{from}> (HELO {helo}): {r}");
        for w in *words {
            assert!(r.mentions(w), "MAIL FROM:<{from}>: {r} lacks {w:?}");
        }
    }
    s.assert_logged("NOQUEUE: spf=fail (mailfrom fail.test, -all): from=<alice@fail.test> refused");
    s.assert_logged("spf=pass (mailfrom pass.test, ip4:127.0.0.1)");
    s.assert_logged("spf=fail (helo helo-fail.test, -all)");
}

#[test]
fn softfail_is_refused_only_when_configured() {
    let dns = start_dns(spf_zone());
    let s = server(&dns, &["spf = \"reject\"", "softfail_reject = true"]);
    let r = mail_from(s.port("mx"), "client.test", "alice@soft.test");
    assert!(r.is("550 5.7.23"), "{r}");
    assert!(r.mentions("SPF softfail"), "{r}");
}

#[test]
fn accepted_mail_carries_received_spf_and_authentication_results() {
    let dns = start_dns(spf_zone());
    let s = server(&dns, &["spf = \"reject\""]);
    let mut c = Client::ready(s.port("mx"), None);
    let r = c.send_mail("alice@pass.test", &["bob@local.test"], "spf pass");
    assert!(r.is("250 2.0.0"), "{r}");
    let mail = s.wait_mail("bob", 1).remove(0);
    let spf = header(&mail, "Received-SPF").expect("a Received-SPF header");
    assert!(spf.starts_with("pass (mx.local.test: domain of alice@pass.test designates 127.0.0.1 as permitted sender)"), "{spf}");
    assert!(spf.contains("client-ip=127.0.0.1;"), "{spf}");
    assert!(spf.contains("envelope-from=\"alice@pass.test\""), "{spf}");
    assert!(spf.contains("helo=client.test"), "{spf}");
    let ar = header(&mail, "Authentication-Results").expect("an Authentication-Results header");
    assert!(ar.starts_with("mx.local.test;"), "{ar}");
    assert!(ar.contains("spf=pass"), "{ar}");
    assert!(ar.contains("smtp.mailfrom=alice@pass.test"), "{ar}");
    // Authentication-Results on top, then Received-SPF above our Received (RFC 7208 §9.1)
    let order: Vec<&str> = mail
        .lines()
        .filter_map(|l| l.split_once(':').map(|(n, _)| n))
        .filter(|n| ["Authentication-Results", "Received-SPF", "Received"].contains(n))
        .collect();
    assert_eq!(
        order,
        ["Authentication-Results", "Received-SPF", "Received"]
    );
}

#[test]
fn tag_records_a_fail_and_delivers() {
    let dns = start_dns(spf_zone());
    let s = server(&dns, &["spf = \"tag\""]);
    let mut c = Client::ready(s.port("mx"), None);
    let r = c.send_mail("alice@fail.test", &["bob@local.test"], "spf fail, tagged");
    assert!(r.is("250 2.0.0"), "{r}");
    let mail = s.wait_mail("bob", 1).remove(0);
    let spf = header(&mail, "Received-SPF").unwrap();
    assert!(spf.starts_with("fail (mx.local.test: domain of alice@fail.test does not designate 127.0.0.1 as permitted sender)"), "{spf}");
    assert!(
        header(&mail, "Authentication-Results")
            .unwrap()
            .contains("spf=fail")
    );
}

#[test]
fn off_and_trusted_clients_are_not_checked() {
    let dns = start_dns(spf_zone());
    // off: no lookup, no header
    let s = server(&dns, &["spf = \"off\""]);
    let mut c = Client::ready(s.port("mx"), None);
    assert!(
        c.send_mail("alice@fail.test", &["bob@local.test"], "off")
            .is("250 ")
    );
    let mail = s.wait_mail("bob", 1).remove(0);
    assert_eq!(header(&mail, "Received-SPF"), None);
    assert_eq!(header(&mail, "Authentication-Results"), None);
    assert!(
        dns.queries()
            .iter()
            .all(|(name, _)| !name.contains("fail.test")),
        "{:?}",
        dns.queries()
    );

    // authenticated clients and relay networks send as they like: SPF is for strangers
    let s = Server::start(
        setup(&dns, &["spf = \"reject\""])
            .auth("allow_plaintext = true")
            .relay_networks(&["127.0.0.2/32"]),
    );
    let mut c = Client::ready(s.port("mx"), None);
    assert!(c.auth_plain(USER, PASSWORD).is("235 "));
    let r = c.cmd("MAIL FROM:<alice@fail.test>");
    assert!(r.is("250 "), "{r}");
    let mut c = Client::ready(s.port("mx"), Some(Ipv4Addr::new(127, 0, 0, 2)));
    let r = c.cmd("MAIL FROM:<alice@fail.test>");
    assert!(r.is("250 "), "{r}");
    let mut c = Client::ready(s.port("mx"), None);
    let r = c.cmd("MAIL FROM:<alice@fail.test>");
    assert!(r.is("550 5.7.23"), "{r}");
}

#[test]
fn swaks_sees_the_refusal() {
    let dns = start_dns(spf_zone());
    let s = server(&dns, &["spf = \"reject\""]);
    let port = s.port("mx").to_string();
    let out = swaks(&[
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--from",
        "mallory@fail.test",
        "--to",
        "bob@local.test",
    ]);
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("<** 550 5.7.23 <mallory@fail.test>: Sender address rejected: SPF fail: fail.test does not authorize 127.0.0.1 to send its mail"),
        "{text}"
    );
    assert_eq!(s.mail_count("bob"), 0);
}
