//! `relais check`'s DANE item against zones signed at test time (`common::dnssec`:
//! `ldns-signzone`, a private NSD on 127.0.0.1, `test.`'s keys as the trust anchors given with
//! `--dnssec-trust-anchor`), every MX host at the zoo server of 127.0.0.1:
//!
//! - `zoo.test` (signed): the whole domain right, its MX host's TLSA records (3 1 1 of the
//!   zoo's key, 2 0 1 of its CA) matching: DANE ok, and no alarm anywhere;
//! - `bad.zoo.test` (signed): its MX host `mx2.zoo.test` has a TLSA record that matches
//!   nothing: the DANE failure is named, exit 2; the zoo without STARTTLS: likewise;
//! - `plain.test` (unsigned): TLSA records DNSSEC cannot validate: a warning;
//! - `stale.test` (signed, its signatures expired): no TLSA record, but a validating
//!   resolver cannot resolve the host at all: a failure, not "no TLSA".

use crate::check::{PolicyHost, check, good_policy, problems};
use crate::common::dnssec::{Dnssec, SignedDns, Zone, cert_sha256, spki_sha256};
use crate::zoo::{Behaviour, CertKind, Pki, Zoo};

/// The zones (see the module), with the reverse zone of 127.0.0.1 (PTR mx.zoo.test).
fn signed(pki: &Pki) -> SignedDns {
    let ee = spki_sha256(&pki.good_chain);
    let ta = cert_sha256(&pki.ca_file);
    let zoo = format!(
        "@ IN MX 10 mx.zoo.test.\nmx IN A 127.0.0.1\n\
         _25._tcp.mx IN TLSA 3 1 1 {ee}\n_25._tcp.mx IN TLSA 2 0 1 {ta}\n\
         @ IN TXT \"v=spf1 mx -all\"\n\
         _dmarc IN TXT \"v=DMARC1; p=reject; rua=mailto:dmarc@zoo.test\"\n\
         _mta-sts IN TXT \"v=STSv1; id=20260101\"\nmta-sts IN A 127.0.0.1\n\
         _smtp._tls IN TXT \"v=TLSRPTv1; rua=mailto:tls@zoo.test\"\n\
         bad IN MX 10 mx2.zoo.test.\nmx2 IN A 127.0.0.1\n\
         _25._tcp.mx2 IN TLSA 3 1 1 {}\n",
        "ab".repeat(32)
    );
    let plain =
        format!("@ IN MX 10 mx.plain.test.\nmx IN A 127.0.0.1\n_25._tcp.mx IN TLSA 3 1 1 {ee}\n");
    let stale = "@ IN MX 10 mx.stale.test.\nmx IN A 127.0.0.1\n".to_string();
    SignedDns::start(
        &[
            Zone {
                name: "zoo.test",
                records: zoo,
                dnssec: Dnssec::Signed,
            },
            Zone {
                name: "plain.test",
                records: plain,
                dnssec: Dnssec::Unsigned,
            },
            Zone {
                name: "stale.test",
                records: stale,
                dnssec: Dnssec::Expired,
            },
        ],
        &[(
            "127.in-addr.arpa",
            "1.0.0 IN PTR mx.zoo.test.\n".to_string(),
        )],
    )
}

/// The arguments every run here takes: the anchors, a block list in the signed zone.
fn args<'a>(dns: &'a SignedDns, more: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--dnssec-trust-anchor",
        dns.anchors.to_str().unwrap(),
        "--dnsbl",
        "bl.zoo.test",
    ];
    args.extend(more);
    args
}

/// The (level, reason) of every `dane` verdict of a JSON report.
fn dane(json: &serde_json::Value) -> Vec<(String, String)> {
    json["records"]["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["check"] == "dane")
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap().to_string();
            (s("level"), s("reason"))
        })
        .collect()
}

/// `relais check DOMAIN --json` against `zoo`: its exit code and its `dane` verdicts.
fn dane_of(dns: &SignedDns, pki: &Pki, zoo: &Zoo, domain: &str) -> (i32, Vec<(String, String)>) {
    let c = check(dns.addr(), pki, zoo, domain, &args(dns, &["--json"]));
    (c.code, dane(&json(&c)))
}

fn json(c: &crate::check::Check) -> serde_json::Value {
    serde_json::from_str(&c.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", c.stdout, c.stderr))
}

#[test]
fn matching_secure_tlsa_records_are_ok_and_raise_no_alarm() {
    let pki = Pki::new();
    let dns = signed(&pki);
    let zoo = Zoo::start(Behaviour::clean(&pki, CertKind::Good));
    let sts = PolicyHost::start(&pki, &good_policy());
    let sts_args = sts.args();
    let mut more: Vec<&str> = sts_args.iter().map(String::as_str).collect();
    more.push("--json");
    let c = check(dns.addr(), &pki, &zoo, "zoo.test", &args(&dns, &more));
    let report = json(&c);
    assert_eq!(problems(&report), vec![], "{}", c.stdout);
    assert_eq!(c.code, 0, "{}", c.stderr);
    let verdicts = dane(&report);
    assert_eq!(verdicts.len(), 2, "{verdicts:?}");
    assert!(
        verdicts[0]
            .1
            .contains("2 DNSSEC-validated TLSA record(s) at _25._tcp.mx.zoo.test"),
        "{verdicts:?}"
    );
    // DANE-EE before DANE-TA: the first a sender tries.
    assert!(
        verdicts[1].1.contains("matches TLSA 3 1 1 (DANE-EE)"),
        "{verdicts:?}"
    );
    let host = &report["records"]["records"]["dane"][0];
    assert_eq!(
        (&host["secure"], &host["mx_secure"]),
        (&serde_json::json!(true), &serde_json::json!(true)),
        "{host}"
    );
    let stages = report["probe"]["hosts"][0]["stages"].as_array().unwrap();
    let last = stages.last().unwrap();
    assert_eq!(last["stage"], "dane", "{stages:?}");
    assert_eq!(last["result"], "matches TLSA 3 1 1 (DANE-EE)");

    // The text: the records' line, the verdict, the waterfall's stage.
    more.pop();
    let t = check(dns.addr(), &pki, &zoo, "zoo.test", &args(&dns, &more));
    assert_eq!(t.code, 0, "{}", t.stdout);
    for words in [
        "DANE     _25._tcp.mx.zoo.test: ",
        "(DNSSEC: secure)",
        "  ok   dane ",
        "  dane         ",
    ] {
        assert!(t.stdout.contains(words), "{words:?} in\n{}", t.stdout);
    }
}

#[test]
fn a_mismatch_or_no_starttls_is_named_and_an_unsigned_zone_warns() {
    let pki = Pki::new();
    let dns = signed(&pki);
    let zoo = Zoo::start(Behaviour::clean(&pki, CertKind::Good));
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    let html_args = ["--json", "--html", html.to_str().unwrap()];
    let c = check(
        dns.addr(),
        &pki,
        &zoo,
        "bad.zoo.test",
        &args(&dns, &html_args),
    );
    let report = json(&c);
    assert!(
        problems(&report).contains(&("dane".to_string(), "fail".to_string())),
        "{}",
        c.stdout
    );
    assert_eq!(c.code, 2, "{}", c.stderr);
    let fail = dane(&report)
        .into_iter()
        .find(|(level, _)| level == "fail")
        .unwrap();
    assert!(
        fail.1
            .contains("matches none of the 1 usable TLSA records at _25._tcp.mx2.zoo.test"),
        "{fail:?}"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("DANE senders will not deliver to this MX"),
        "{page}"
    );

    // The same domain's MX host without STARTTLS.
    let clear = Zoo::start(Behaviour {
        tls: None,
        ..Behaviour::clean(&pki, CertKind::Good)
    });
    let (code, verdicts) = dane_of(&dns, &pki, &clear, "zoo.test");
    assert!(
        verdicts.iter().any(|(level, reason)| level == "fail"
            && reason.contains("does not offer STARTTLS, but _25._tcp.mx.zoo.test has DNSSEC-validated TLSA records")),
        "{verdicts:?}"
    );
    assert_eq!(code, 2, "{verdicts:?}");

    // TLSA records in a zone DNSSEC does not sign: a warning, never a failure.
    let (_, verdicts) = dane_of(&dns, &pki, &zoo, "plain.test");
    assert_eq!(verdicts.len(), 1, "{verdicts:?}");
    assert_eq!(verdicts[0].0, "warn", "{verdicts:?}");
    assert!(
        verdicts[0].1.contains("DNSSEC does not validate them"),
        "{verdicts:?}"
    );
}

#[test]
fn a_zone_whose_signatures_expired_is_a_failure_not_an_absent_tlsa() {
    let pki = Pki::new();
    let dns = signed(&pki);
    let zoo = Zoo::start(Behaviour::clean(&pki, CertKind::Good));
    let (code, verdicts) = dane_of(&dns, &pki, &zoo, "stale.test");
    assert!(
        !verdicts
            .iter()
            .any(|(_, reason)| reason.contains("no TLSA record")),
        "{verdicts:?}"
    );
    let fail = verdicts
        .iter()
        .find(|(level, _)| level == "fail")
        .unwrap_or_else(|| panic!("{verdicts:?}"));
    assert!(
        fail.1.contains("_25._tcp.mx.stale.test") && fail.1.contains("DNSSEC"),
        "{fail:?}"
    );
    assert_eq!(code, 2, "{verdicts:?}");
}
