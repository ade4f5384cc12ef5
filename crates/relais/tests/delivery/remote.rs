//! Remote delivery on loopback: MX records of the fixture DNS server point to peers on port 25
//! of their own 127.0.0.x — a second `relais serve`, a private Postfix, aiosmtpd — and routes
//! and the relay host send mail where DNS does not.

use std::net::{Ipv4Addr, SocketAddr};

use crate::support::{
    FaultPeer, PyPeer, Refusing, Relais, Script, Setup, WAIT, Zone, dns, header_value, loopback_25,
    message, postfix, self_signed, tempdir, wait_until,
};

/// The first `Received` header of a message, unfolded.
fn first_received(message: &[u8]) -> String {
    let text = String::from_utf8_lossy(message);
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        if !inside && line.to_ascii_lowercase().starts_with("received:") {
            inside = true;
            out.push_str(line.trim_end());
        } else if inside && line.starts_with([' ', '\t']) {
            out.push(' ');
            out.push_str(line.trim());
        } else if inside {
            break;
        }
    }
    out
}

#[test]
fn mx_to_a_second_relais_in_one_transaction_over_starttls() {
    // The preferred MX is there but refuses service (421): relais must go on to the next one.
    let refusing_ip = loopback_25();
    let refusing = FaultPeer::start(
        SocketAddr::from((refusing_ip, 25)),
        Script {
            greeting: "421 4.3.2 mx0 is shutting down".into(),
            ..Script::default()
        },
    );
    let ip = loopback_25();
    let peer_dir = tempdir("relais-peer-");
    let peer = Relais::start(
        "relais peer",
        peer_dir.path(),
        &Setup::peer(ip, "peer.test"),
    );
    let dns = dns(Zone::new()
        .mx("peer.test", 5, "mx0.peer.test")
        .mx("peer.test", 10, "mx.peer.test")
        .a("mx0.peer.test", &refusing_ip.to_string())
        .a("mx.peer.test", &ip.to_string()));
    let dir = tempdir("relais-sender-");
    let relais = Relais::start("relais", dir.path(), &Setup::sender(&dns));

    let mut c = relais.smtp();
    let id = c.send(
        "<sender@relais.test>",
        &["<a@peer.test>", "<b@peer.test>", "<c@peer.test>"],
        &message("three recipients, one domain", "mx-relais"),
    );
    c.quit();

    for who in ["a", "b", "c"] {
        let got = peer.wait_mail(who, 1);
        let text = String::from_utf8_lossy(&got[0]);
        assert!(text.contains("Body of mx-relais."), "{text}");
        // Dot-stuffing undone at each hop: the line is as the client wrote it.
        assert!(text.contains("\r\n.leading dot line\r\n"), "{text}");
        // The peer's own Received header: it was sent over TLS (STARTTLS).
        let received = first_received(&got[0]);
        assert!(received.contains("by mx.peer.test"), "{received}");
        assert!(received.contains("with ESMTPS"), "{received}");
        assert!(received.contains("(using TLS"), "{received}");
    }
    // One transaction for the three recipients.
    let queued = peer.wait_log(&["queued: from=<sender@relais.test>"], 1);
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert!(queued[0].contains("nrcpt=3"), "{queued:?}");
    let sent = relais.wait_log(
        &[&id, "status=sent", &format!("relay=mx.peer.test[{ip}]:25")],
        3,
    );
    assert_eq!(sent.len(), 3, "{sent:?}");
    relais.wait_log(&[&format!("{id}: removed")], 1);
    assert_eq!(
        refusing.connections(),
        1,
        "the preferred MX was tried first"
    );
    let queries = dns.queries();
    assert!(
        queries
            .iter()
            .any(|(n, t)| n.trim_end_matches('.') == "peer.test" && t == "MX"),
        "{queries:?}"
    );
}

#[test]
fn mx_to_postfix_in_one_transaction() {
    let ip = loopback_25();
    let postfix = postfix(ip, "postfix.test");
    let dns = dns(Zone::new()
        .mx("postfix.test", 10, "mx.postfix.test")
        .a("mx.postfix.test", &ip.to_string()));
    let dir = tempdir("relais-sender-");
    let relais = Relais::start("relais", dir.path(), &Setup::sender(&dns));

    let mut c = relais.smtp();
    let id = c.send(
        "<sender@relais.test>",
        &["<x@postfix.test>", "<y@postfix.test>", "<z@postfix.test>"],
        &message("to postfix", "mx-postfix"),
    );
    c.quit();

    relais.wait_log(
        &[
            &id,
            "status=sent",
            &format!("relay=mx.postfix.test[{ip}]:25"),
        ],
        3,
    );
    let files = wait_until("3 messages delivered by Postfix", WAIT, || {
        let f = postfix.delivered();
        (f.len() >= 3).then_some(f)
    });
    let mut delivered_to = Vec::new();
    for f in &files {
        let content = std::fs::read(f).unwrap();
        let text = String::from_utf8_lossy(&content);
        assert!(text.contains("Body of mx-postfix."), "{text}");
        assert!(text.contains("Return-Path: <sender@relais.test>"), "{text}");
        delivered_to.push(header_value(&content, "Delivered-To").unwrap_or_default());
    }
    delivered_to.sort();
    assert_eq!(
        delivered_to,
        ["x@postfix.test", "y@postfix.test", "z@postfix.test"]
    );
    // One transaction: Postfix's queue manager saw one message with three recipients, and
    // smtpd's summary of the session says so (the readiness probe's connection has no MAIL).
    let find = |log: &str| -> (Vec<String>, Vec<String>) {
        let pick =
            |f: &dyn Fn(&str) -> bool| log.lines().filter(|l| f(l)).map(String::from).collect();
        (
            pick(&|l| l.contains("qmgr") && l.contains("from=<sender@relais.test>")),
            pick(&|l| l.contains("disconnect from") && l.contains(" mail=")),
        )
    };
    let (qmgr, sessions) = wait_until("Postfix's log of the transaction", WAIT, || {
        let (q, s) = find(&postfix.maillog());
        (!q.is_empty() && !s.is_empty()).then_some((q, s))
    });
    let log = postfix.maillog();
    assert_eq!(qmgr.len(), 1, "{log}");
    assert!(qmgr[0].contains("nrcpt=3"), "{log}");
    assert_eq!(sessions.len(), 1, "{log}");
    assert!(sessions[0].contains(" mail=1 rcpt=3 data=1"), "{log}");
}

#[test]
fn mx_to_aiosmtpd_over_starttls() {
    let ip = loopback_25();
    let work = tempdir("relais-aiosmtpd-");
    let (cert, key) = self_signed(work.path(), "mx.py.test");
    let py = PyPeer::start(
        SocketAddr::from((ip, 25)),
        &work.path().join("out"),
        Some((&cert, &key)),
    );
    let dns = dns(Zone::new()
        .mx("py.test", 10, "mx.py.test")
        .a("mx.py.test", &ip.to_string()));
    let dir = tempdir("relais-sender-");
    let relais = Relais::start("relais", dir.path(), &Setup::sender(&dns));

    let mut c = relais.smtp();
    let id = c.send(
        "<sender@relais.test>",
        &["<one@py.test>", "<two@py.test>"],
        &message("to aiosmtpd", "mx-py"),
    );
    c.quit();

    relais.wait_log(&[&format!("{id}: removed")], 1);
    let got = py.wait_messages(1);
    assert_eq!(got.len(), 1, "one transaction for both recipients");
    let (envelope, content) = &got[0];
    assert_eq!(envelope["mail_from"], "sender@relais.test", "{envelope}");
    assert_eq!(
        envelope["rcpt_tos"],
        serde_json::json!(["one@py.test", "two@py.test"]),
        "{envelope}"
    );
    assert_eq!(envelope["tls"], true, "STARTTLS was not used: {envelope}");
    assert_eq!(envelope["helo"], "relais.test", "{envelope}");
    let text = String::from_utf8_lossy(content);
    assert!(text.contains("Body of mx-py."), "{text}");
    // Our own Received header travels with the message, naming the queue id.
    assert!(first_received(content).contains(&id), "{text}");
    assert_eq!(
        relais
            .lines(&[&id, "status=sent", &format!("relay=mx.py.test[{ip}]:25")])
            .len(),
        2
    );
}

#[test]
fn routes_and_the_relay_host_take_precedence_over_mx() {
    let routed = FaultPeer::local(Script::default());
    let relayed = FaultPeer::local(Script::default());
    // DNS sends routed.test to a host that refuses connections: only the route can deliver.
    let down = Refusing::new();
    let dns = dns(Zone::new()
        .mx("routed.test", 10, "mx.routed.test")
        .a("mx.routed.test", &down.ip.to_string())
        .a("hop.routed.test", "127.0.0.1"));
    let mut setup = Setup::sender(&dns).route("routed.test", &routed.hop("hop.routed.test"));
    setup.relayhost = Some(format!("[127.0.0.1]:{}", relayed.addr.port()));
    let dir = tempdir("relais-sender-");
    let relais = Relais::start("relais", dir.path(), &setup);

    let mut c = relais.smtp();
    let id = c.send(
        "<sender@relais.test>",
        &["<a@routed.test>", "<b@nowhere.test>"],
        &message("routes", "routes"),
    );
    c.quit();

    let r = routed.wait_taken(1);
    assert_eq!(r[0].rcpts, ["RCPT TO:<a@routed.test>"]);
    let s = relayed.wait_taken(1);
    assert_eq!(s[0].rcpts, ["RCPT TO:<b@nowhere.test>"]);
    assert!(String::from_utf8_lossy(&s[0].data).contains("Body of routes."));
    relais.wait_log(&[&format!("{id}: removed")], 1);
    assert_eq!(
        relais
            .lines(&[
                "to=<a@routed.test>",
                &format!("relay=hop.routed.test[127.0.0.1]:{}", routed.addr.port()),
                "status=sent"
            ])
            .len(),
        1,
        "{}",
        relais.log()
    );
}

#[test]
fn address_literals_go_to_their_address_from_the_source_address_over_ipv4_and_ipv6() {
    let ip = loopback_25();
    let v4 = FaultPeer::start(SocketAddr::from((ip, 25)), Script::default());
    let v6 = FaultPeer::start("[::1]:25".parse().unwrap(), Script::default());
    // No record for the literals (a lookup would find nothing); six.test's only MX host has
    // only an IPv6 address.
    let dns = dns(Zone::new()
        .mx("six.test", 10, "mx.six.test")
        .aaaa("mx.six.test", "::1"));
    let dir = tempdir("relais-literal-");
    let mut setup = Setup::sender(&dns);
    // An IPv6 listener; delivery from 127.0.0.77 and ::1.
    setup.listen = "[::1]:0".parse().unwrap();
    setup
        .delivery
        .push("source_address = [\"127.0.0.77\", \"::1\"]".into());
    let relais = Relais::start("relais", dir.path(), &setup);
    assert!(relais.addr.is_ipv6(), "{}", relais.addr);

    let mut c = relais.smtp();
    let id = c.send(
        "<sender@relais.test>",
        &[&format!("<a@[{ip}]>"), "<b@[IPv6:::1]>", "<c@six.test>"],
        &message("to literals", "literal"),
    );
    c.quit();
    relais.wait_log(&[&id, &format!("to=<a@[{ip}]>"), "status=sent"], 1);
    relais.wait_log(&[&id, "to=<b@[IPv6:::1]>", "status=sent"], 1);
    let got4 = v4.wait_taken(1);
    assert_eq!(got4[0].rcpts, [format!("RCPT TO:<a@[{ip}]>")]);
    relais.wait_log(
        &[
            &id,
            "to=<c@six.test>",
            "status=sent",
            "relay=mx.six.test[::1]:25",
        ],
        1,
    );
    let got6 = v6.wait_taken(2);
    let mut rcpts: Vec<String> = got6.iter().flat_map(|t| t.rcpts.clone()).collect();
    rcpts.sort();
    assert_eq!(rcpts, ["RCPT TO:<b@[IPv6:::1]>", "RCPT TO:<c@six.test>"]);
    assert!(
        v4.clients()
            .iter()
            .all(|a| a.ip().to_string() == "127.0.0.77"),
        "{:?}",
        v4.clients()
    );
    assert!(
        v6.clients().iter().all(|a| a.ip().to_string() == "::1"),
        "{:?}",
        v6.clients()
    );
    assert!(
        relais
            .lines(&[&id, &format!("relay={ip}[{ip}]:25")])
            .iter()
            .any(|l| l.contains("status=sent")),
        "{}",
        relais.log()
    );
    let queries = dns.queries();
    assert!(
        queries.iter().all(|(name, _)| name.contains("six.test")),
        "{queries:?}"
    );
}

#[test]
fn relais_to_relais_over_ipv6_listeners_and_routes() {
    // The receiving relais listens on [::1] only; the sender too, and routes six.test there.
    let dns = dns(Zone::new());
    let pdir = tempdir("relais-six-peer-");
    let mut peer_setup = Setup::peer(Ipv4Addr::LOCALHOST, "six.test");
    peer_setup.listen = "[::1]:0".parse().unwrap();
    let peer = Relais::start("peer", pdir.path(), &peer_setup);
    assert!(peer.addr.is_ipv6(), "{}", peer.addr);
    let dir = tempdir("relais-six-");
    let mut setup = Setup::sender(&dns).route("six.test", &format!("[::1]:{}", peer.addr.port()));
    setup.listen = "[::1]:0".parse().unwrap();
    let relais = Relais::start("relais", dir.path(), &setup);
    let mut c = relais.smtp();
    let id = c.send(
        "<sender@relais.test>",
        &["<friend@six.test>"],
        &message("over ipv6", "six"),
    );
    c.quit();
    relais.wait_log(
        &[
            &id,
            "to=<friend@six.test>",
            "status=sent",
            &format!("relay=::1[::1]:{}", peer.addr.port()),
        ],
        1,
    );
    let got = peer.wait_mail("friend", 1);
    let text = String::from_utf8_lossy(&got[0]);
    assert!(text.contains("Subject: over ipv6"), "{text}");
    // Both hops name the IPv6 client in their Received headers.
    assert_eq!(text.matches("(unknown [IPv6:::1])").count(), 2, "{text}");
    assert!(
        relais.log().contains("connect from unknown[::1]"),
        "{}",
        relais.log()
    );
    assert!(
        peer.log().contains("connect from unknown[::1]"),
        "{}",
        peer.log()
    );
}
