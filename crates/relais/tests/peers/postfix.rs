//! `relais probe` and `relais send` against a private Postfix, and `relais send` side by side
//! with swaks against it.

use crate::support::{Certs, Zone, dns, postfix, probe, send, swaks};

const DOMAIN: &str = "peers.test";
const MX: &str = "mx.peers.test";

/// MX peers.test → mx.peers.test → 127.0.0.1, and the PTR of 127.0.0.1 back to it.
fn zone() -> Zone {
    Zone::new()
        .mx(DOMAIN, 10, MX)
        .a(MX, "127.0.0.1")
        .ptr("127.0.0.1", MX)
        // A domain probe also judges the sender-authentication records: these pass.
        .txt(DOMAIN, "v=spf1 mx -all")
        .txt(
            &format!("_dmarc.{DOMAIN}"),
            "v=DMARC1; p=reject; rua=mailto:postmaster@peers.test",
        )
}

#[test]
fn probe_postfix_without_tls() {
    let pf = postfix(DOMAIN, &["alice", "postmaster"], None);
    let dns = dns(zone());
    let p = probe(&dns, &pf.addr(), &["--rcpt", "alice@peers.test"]);
    p.run.expect_code(0);
    assert_eq!(p.json["exit"], 0, "{}", p.run);
    // Postfix's banner (smtpd_banner = $myhostname ESMTP), matching the PTR of the address.
    assert_eq!(
        p.json["hosts"][0]["banner"], "220 mx.peers.test ESMTP",
        "{}",
        p.run
    );
    p.expect("banner-delay", "ok", &["greeting after"])
        .expect(
            "reverse-dns",
            "ok",
            &["PTR mx.peers.test", "banner says mx.peers.test"],
        )
        .expect("ehlo", "ok", &["EHLO accepted: mx.peers.test"]);
    // No TLS configured: the only warning.
    p.expect("starttls", "warn", &["STARTTLS is not offered"]);
    assert_eq!(
        p.problems(),
        vec![("warn".to_string(), "starttls".to_string())],
        "{}",
        p.run
    );
    assert_eq!(p.stage("starttls"), "not offered", "{}", p.run);
    let keywords = p.keywords();
    for k in [
        "PIPELINING",
        "SIZE",
        "VRFY",
        "ETRN",
        "ENHANCEDSTATUSCODES",
        "8BITMIME",
        "DSN",
    ] {
        assert!(keywords.iter().any(|x| x == k), "{k} not in {keywords:?}");
    }
    assert!(!keywords.iter().any(|x| x == "STARTTLS"), "{keywords:?}");
    // Recipients as Postfix answers them: the listed ones accepted, an unknown one refused at
    // RCPT time (virtual_mailbox_maps), relaying refused (reject_unauth_destination).
    p.expect("rcpt", "ok", &["<alice@peers.test> accepted", "250 2.1.5"])
        .expect("postmaster", "ok", &["<postmaster@peers.test> accepted"])
        .expect(
            "recipient-verification",
            "ok",
            &["550 5.1.1", "User unknown in virtual mailbox table"],
        )
        .expect("open-relay", "ok", &["554 5.7.1", "Relay access denied"]);
    // VRFY: Postfix answers 252 (verified, but no mailbox list), which exposes nothing; EXPN is
    // not a Postfix command.
    p.expect("vrfy", "ok", &["VRFY not exposed"]).expect(
        "expn",
        "ok",
        &[
            "EXPN not exposed",
            "500 5.5.2 Error: command not recognized",
        ],
    );
    assert!(p.stage("vrfy").starts_with("252 "), "{}", p.run);
    // The probe never sends DATA: nothing was delivered, and Postfix saw the session.
    assert_eq!(pf.delivered_count(), 0);
    let log = pf.maillog();
    assert!(log.contains("connect from localhost[127.0.0.1]"), "{log}");
    assert!(!log.contains("status=sent"), "{log}");
}

#[test]
fn probe_postfix_with_starttls_is_clean() {
    let certs = Certs::signed(MX);
    let pf = postfix(DOMAIN, &["alice", "postmaster"], Some(&certs));
    let dns = dns(zone());
    let port = pf.port.to_string();
    // By domain: the MX lookup, then the MX host on the instance's port.
    let p = probe(
        &dns,
        DOMAIN,
        &[
            "--port",
            &port,
            "--rcpt",
            "alice@peers.test",
            "--ca-file",
            certs.ca.to_str().unwrap(),
        ],
    );
    p.run.expect_code(0);
    assert_eq!(p.json["hosts"][0]["host"], MX, "{}", p.run);
    assert_eq!(p.json["hosts"][0]["preference"], 10, "{}", p.run);
    assert_eq!(
        p.problems(),
        vec![],
        "a clean Postfix raises no warning\n{}",
        p.run
    );
    let tls = &p.json["hosts"][0]["tls"];
    assert_eq!(tls["version"], "TLSv1.3", "{}", p.run);
    assert_eq!(tls["verified"], true, "{}", p.run);
    assert_eq!(tls["name_matches"], true, "{}", p.run);
    assert_eq!(tls["certificate"]["self_signed"], false, "{}", p.run);
    p.expect("starttls", "ok", &["STARTTLS: TLSv1.3 with"])
        .expect("certificate", "ok", &["verifies for mx.peers.test"]);
    // EHLO again under TLS: Postfix no longer offers STARTTLS.
    assert!(!p.stage("ehlo-tls").is_empty(), "{}", p.run);
    assert!(!p.keywords().iter().any(|k| k == "STARTTLS"), "{}", p.run);
    let log = pf.maillog();
    assert!(
        log.contains("TLS connection established from localhost[127.0.0.1]: TLSv1.3"),
        "{log}"
    );
}

#[test]
fn send_delivers_to_postfix_like_swaks() {
    let pf = postfix(DOMAIN, &["alice"], None);
    let ours = send(
        &pf.addr(),
        &[
            "--from",
            "sender@client.example",
            "--to",
            "alice@peers.test",
            "--subject",
            "relais send to Postfix",
        ],
    );
    ours.expect_code(0)
        .expect_out("<-  220 mx.peers.test ESMTP")
        .expect_out(" -> RCPT TO:<alice@peers.test>")
        .expect_out("<-  250 2.0.0 Ok: queued as ");
    let delivered = pf.wait_delivered(1);
    assert!(
        delivered[0].contains("Delivered-To: alice@peers.test"),
        "{}",
        delivered[0]
    );
    assert!(
        delivered[0].contains("Subject: relais send to Postfix"),
        "{}",
        delivered[0]
    );
    assert!(
        delivered[0].contains("Return-Path: <sender@client.example>"),
        "{}",
        delivered[0]
    );
    let theirs = swaks(
        &pf.addr(),
        &[
            "--from",
            "sender@client.example",
            "--to",
            "alice@peers.test",
        ],
    );
    theirs.expect_code(0);
    pf.wait_delivered(2);
    let log = pf.maillog();
    assert_eq!(
        log.matches("status=sent (delivered to maildir)").count(),
        2,
        "{log}"
    );
}

/// `relais send` and swaks against the same Postfix: same exit code, same reply.
#[test]
fn refusals_at_rcpt_match_swaks() {
    let pf = postfix(DOMAIN, &["alice"], None);
    let cases: [(&str, &str, i32, &str); 3] = [
        // Relaying for an unknown domain: refused at RCPT, swaks' 24.
        (
            "x@unknown-domain.example",
            "rcpt",
            24,
            "554 5.7.1 <x@unknown-domain.example>: Relay access denied",
        ),
        // An unknown user of the virtual domain.
        (
            "nobody@peers.test",
            "rcpt",
            24,
            "550 5.1.1 <nobody@peers.test>: Recipient address rejected: User unknown in virtual mailbox table",
        ),
        // A good recipient, stopping after RCPT: success, nothing sent.
        ("alice@peers.test", "rcpt", 0, "250 2.1.5 Ok"),
    ];
    let mut failures = Vec::new();
    for (to, stage, code, reply) in cases {
        let envelope = ["--from", "sender@client.example", "--to", to];
        let mut ours_args = envelope.to_vec();
        ours_args.extend(["--quit-after", stage]);
        let mut swaks_args = envelope.to_vec();
        let upper = stage.to_ascii_uppercase();
        swaks_args.extend(["--quit-after", &upper]);
        let ours = send(&pf.addr(), &ours_args);
        let theirs = swaks(&pf.addr(), &swaks_args);
        let ok = ours.code == code
            && theirs.code == code
            && ours.stdout.contains(&format!("<-  {reply}"))
            // swaks marks an error reply `<**`.
            && theirs
                .stdout
                .contains(&format!("{} {reply}", if code == 0 { "<- " } else { "<**" }))
            && !ours.stdout.contains("DATA")
            && ours.stdout.contains(" -> QUIT");
        if !ok {
            failures.push(format!(
                "RCPT TO:<{to}>: expected exit {code} and {reply:?}\n{ours}\n{theirs}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert_eq!(pf.delivered_count(), 0);
    let log = pf.maillog();
    assert!(log.contains("Relay access denied"), "{log}");
}

/// `relais check` of a domain whose MX is a real Postfix with STARTTLS and whose records are
/// all right (its MTA-STS policy served over HTTPS): no false alarm, exit 0; the same domain with a weak SPF (a warning) and a BIMI
/// logo over plain HTTP (a failure): each named, exit 2 by the worst.
#[test]
fn check_a_domain_served_by_postfix() {
    let certs = Certs::signed_for("Peers Test CA", &[MX, "mta-sts.peers.test"]);
    let pf = postfix(DOMAIN, &["alice", "postmaster"], Some(&certs));
    // the policy host: enforce, the MX host listed
    let root = crate::support::tempdir("relais-peers-sts-");
    crate::common::sts::publish(
        root.path(),
        DOMAIN,
        &format!("version: STSv1\nmode: enforce\nmx: {MX}\nmax_age: 604800\n"),
    );
    let https = crate::common::sts::https(root.path(), &certs);
    let sts_port = https.addr().port().to_string();
    let clean = zone()
        .txt("_mta-sts.peers.test", "v=STSv1; id=20260101")
        .a("mta-sts.peers.test", "127.0.0.1")
        .txt(
            "_smtp._tls.peers.test",
            "v=TLSRPTv1; rua=mailto:tls@peers.test",
        )
        .txt(
            "default._bimi.peers.test",
            "v=BIMI1; l=https://peers.test/logo.svg",
        );
    let check = |zone: Zone| {
        let dns = dns(zone);
        let resolver = dns.addr().to_string();
        let port = pf.port.to_string();
        let run = crate::support::process::run(
            {
                let mut c = std::process::Command::new(crate::support::RELAIS);
                c.args(["check", DOMAIN, "--json", "--port", &port])
                    .args(["--resolver", &resolver, "--dns-timeout", "1"])
                    .args(["--ca-file", certs.ca.to_str().unwrap()])
                    .args([
                        "--helo",
                        "probe.test",
                        "--timeout",
                        "10",
                        "--dnsbl",
                        "bl.test",
                        "--mta-sts-port",
                        &sts_port,
                    ]);
                c
            },
            None,
            std::time::Duration::from_secs(60),
        );
        let json: serde_json::Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("relais check did not print JSON ({e})\n{run}"));
        (run, json)
    };
    let problems = |json: &serde_json::Value| {
        let list = |v: &serde_json::Value| v.as_array().cloned().unwrap_or_default();
        let p = &json["probe"];
        let mut out: Vec<(String, String)> = list(&p["route_verdicts"])
            .into_iter()
            .chain(list(&p["sender_auth"]["verdicts"]))
            .chain(list(&p["hosts"]).iter().flat_map(|h| list(&h["verdicts"])))
            .chain(list(&json["records"]["verdicts"]))
            .filter(|v| v["level"] != "ok")
            .map(|v| (v["check"].to_string(), v["level"].to_string()))
            .collect();
        out.sort();
        out
    };
    let (run, json) = check(clean);
    assert_eq!(problems(&json), vec![], "{run}");
    run.expect_code(0);
    assert_eq!(
        json["probe"]["hosts"][0]["banner"],
        "220 mx.peers.test ESMTP"
    );
    // The same domain with two faults.
    let faulty = Zone::new()
        .mx(DOMAIN, 10, MX)
        .a(MX, "127.0.0.1")
        .ptr("127.0.0.1", MX)
        .txt(DOMAIN, "v=spf1 mx ?all")
        .txt(
            &format!("_dmarc.{DOMAIN}"),
            "v=DMARC1; p=reject; rua=mailto:postmaster@peers.test",
        )
        .txt("_mta-sts.peers.test", "v=STSv1; id=20260101")
        .a("mta-sts.peers.test", "127.0.0.1")
        .txt(
            "_smtp._tls.peers.test",
            "v=TLSRPTv1; rua=mailto:tls@peers.test",
        )
        .txt(
            "default._bimi.peers.test",
            "v=BIMI1; l=http://peers.test/logo.svg",
        );
    let (run, json) = check(faulty);
    let want: Vec<(String, String)> = [("bimi", "fail"), ("spf", "warn")]
        .iter()
        .map(|(c, l)| (format!("\"{c}\""), format!("\"{l}\"")))
        .collect();
    assert_eq!(problems(&json), want, "{run}");
    run.expect_code(2);
}
