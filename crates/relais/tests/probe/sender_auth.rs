//! The sender authentication records of a domain (SPF, DMARC, DKIM keys): one verdict each,
//! beside the MX probes, and the exit code when one fails. Every domain's MX is the zoo
//! server; the records come from the fixture DNS.

use relais_dns::fixture::Server as DnsServer;
use serde_json::Value;

use crate::zoo::{Behaviour, CertKind, HOST, Pki, Probe, Zoo, probe, probe_text, zone};

/// `probe` (JSON) or `probe_text`.
type Run = fn(&DnsServer, &Pki, &str, &[&str]) -> Probe;

/// A DKIM public key as published (only its base64 matters to the probe).
/// A usable RSA public key (DKIM `p=`), shared with the domain check.
pub const KEY: &str = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW/VDL5AaWTg0nLVkjRo9z+40RQzuVaE8AkAFmxZzow3x+VJYKdjykkJ0iT9wCS0DRTXu269V264Vf/3jvredZiKRkgwlL9xNAwxXFg0x/XFw005UWVRIkdgcKWTjpBP2dPwVZ4WWC+9aGVd+Gyn1o0CLelf4rEjGoXbAAEgAqeGUxrcIlbjXfbcmwIDAQAB";

/// The zoo's zone, and three more domains whose MX is the zoo server: good.test (SPF `-all`
/// listing its MX, DMARC `p=reject` with reports, a usable DKIM key `s1` and a revoked one
/// `old`), lax.test (`?all` not listing its MX, `p=none` without reports) and bare.test (no
/// record at all).
fn dns() -> DnsServer {
    let zone = zone()
        .mx("good.test", 10, HOST)
        .txt("good.test", "v=spf1 mx -all")
        .txt(
            "_dmarc.good.test",
            "v=DMARC1; p=reject; rua=mailto:dmarc@good.test",
        )
        .txt(
            "s1._domainkey.good.test",
            &format!("v=DKIM1; k=rsa; p={KEY}"),
        )
        .txt("old._domainkey.good.test", "v=DKIM1; k=rsa; p=")
        .mx("lax.test", 10, HOST)
        .txt("lax.test", "v=spf1 ip4:192.0.2.1 ?all")
        .txt("_dmarc.lax.test", "v=DMARC1; p=none")
        .mx("bare.test", 10, HOST);
    DnsServer::start(zone).expect("fixture DNS server")
}

/// A zoo server (a clean one, changed by `change`), the DNS of [`dns`] and the CA.
struct Setup {
    pki: Pki,
    dns: DnsServer,
    zoo: Zoo,
}

impl Setup {
    fn new(change: impl FnOnce(&mut Behaviour)) -> Setup {
        let pki = Pki::new();
        let mut behaviour = Behaviour::clean(&pki, CertKind::Good);
        change(&mut behaviour);
        Setup {
            dns: dns(),
            zoo: Zoo::start(behaviour),
            pki,
        }
    }

    /// Probes `domain`, whose MX is the zoo server, with `args`.
    fn domain(&self, run: Run, domain: &str, args: &[&str]) -> Probe {
        let port = self.zoo.addr.port().to_string();
        run(
            &self.dns,
            &self.pki,
            domain,
            &[&["--port", &port], args].concat(),
        )
    }
}

/// Probes `domain` (its MX a zoo server changed by `change`) with `args`, in JSON, and checks
/// the exit code and the (check, level) of every verdict that is not `ok`.
fn run(
    domain: &str,
    change: impl FnOnce(&mut Behaviour),
    args: &[&str],
    code: i32,
    problems: &[(&str, &str)],
) -> Value {
    let p = Setup::new(change).domain(probe, domain, args);
    assert_eq!(p.code, code, "{}", p.stdout);
    let want: Vec<(String, String)> = problems
        .iter()
        .map(|(c, l)| (c.to_string(), l.to_string()))
        .collect();
    assert_eq!(p.problems(), want, "{}", p.stdout);
    p.json()
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// The (check, level, reason) of each sender authentication verdict, in order.
fn verdicts(json: &Value) -> Vec<(&str, &str, &str)> {
    json["sender_auth"]["verdicts"]
        .as_array()
        .expect("sender_auth verdicts")
        .iter()
        .map(|v| (text(&v["check"]), text(&v["level"]), text(&v["reason"])))
        .collect()
}

/// Asserts that the `n`th sender authentication verdict is `check` at `level`, with `words` in
/// its reason.
fn assert_verdict(json: &Value, n: usize, check: &str, level: &str, words: &[&str]) {
    let all = verdicts(json);
    let (c, l, reason) = all[n];
    assert_eq!((c, l), (check, level), "{all:?}");
    for w in words {
        assert!(reason.contains(w), "{w:?} not in {reason:?}");
    }
}

#[test]
fn good_records_are_ok() {
    let json = run("good.test", |_| {}, &["--dkim-selector", "s1"], 0, &[]);
    assert_verdict(&json, 0, "spf", "ok", &["ending in -all"]);
    assert_verdict(&json, 1, "dmarc", "ok", &["p=reject", "refused"]);
    assert_verdict(&json, 2, "dkim", "ok", &["usable rsa key"]);
    let auth = &json["sender_auth"];
    assert_eq!(auth["domain"], "good.test");
    assert_eq!(auth["spf"]["status"], "found");
    assert_eq!(auth["spf"]["record"], "v=spf1 mx -all");
    assert_eq!(auth["mx_spf"][0]["host"], HOST);
    assert_eq!(auth["mx_spf"][0]["address"], "127.0.0.1");
    assert_eq!(auth["mx_spf"][0]["result"], "pass");
    assert_eq!(auth["dmarc"]["status"], "found");
    assert_eq!(auth["dmarc"]["policy"]["p"], "reject");
    assert_eq!(auth["dkim"][0]["selector"], "s1");
    assert_eq!(auth["dkim"][0]["lookup"]["name"], "s1._domainkey.good.test");
    assert_eq!(json["summary"]["fail"], 0);
}

#[test]
fn the_text_report_has_a_section_with_one_line_per_record() {
    let setup = Setup::new(|_| {});
    let p = setup.domain(probe_text, "good.test", &["--dkim-selector", "s1"]);
    assert_eq!(p.code, 0, "{}", p.stdout);
    for part in [
        "\nSender authentication of good.test (",
        "\n  SPF    good.test: v=spf1 mx -all\n",
        "\n         MX mx.zoo.test [127.0.0.1]: pass, may send mail for good.test\n",
        "\n  DMARC  _dmarc.good.test: v=DMARC1; p=reject; rua=mailto:dmarc@good.test\n",
        "\n  DKIM   s1._domainkey.good.test: v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQ…\n",
        "\n    ok   spf ",
        "\n    ok   dmarc ",
        "\n    ok   dkim ",
        "overall OK; exit 0",
    ] {
        assert!(p.stdout.contains(part), "{part:?} not in:\n{}", p.stdout);
    }
    let section = p.stdout.find("Sender authentication").unwrap();
    let first_host = p.stdout.find("\n== mx.zoo.test").unwrap();
    assert!(section < first_host, "{}", p.stdout);
}

#[test]
fn question_mark_all_and_p_none_are_warnings() {
    let warnings = [("spf", "warn"), ("dmarc", "warn")];
    let json = run("lax.test", |_| {}, &[], 0, &warnings);
    assert_verdict(&json, 0, "spf", "warn", &["ends in ?all"]);
    assert_verdict(&json, 1, "dmarc", "warn", &["p=none", "no rua="]);
    assert_eq!(json["sender_auth"]["mx_spf"][0]["result"], "neutral");
    assert_eq!(json["sender_auth"]["dkim"], serde_json::json!([]));
    assert_eq!(json["summary"]["warn"], 2);
}

#[test]
fn no_records_are_errors() {
    let errors = [("spf", "fail"), ("dmarc", "fail")];
    let json = run("bare.test", |_| {}, &[], 41, &errors);
    assert_verdict(&json, 0, "spf", "fail", &["no SPF record"]);
    assert_verdict(&json, 1, "dmarc", "fail", &["no DMARC record"]);
    assert_eq!(json["exit"], 41);
    assert_eq!(json["sender_auth"]["spf"]["status"], "none");
    assert_eq!(json["sender_auth"]["dmarc"]["status"], "none");
    assert_eq!(json["sender_auth"]["mx_spf"], serde_json::json!([]));
    assert_eq!(json["summary"]["fail"], 2);
}

#[test]
fn a_revoked_or_missing_dkim_key_fails() {
    let selectors = ["s1", "old", "nosuch"].map(|s| ["--dkim-selector", s]);
    let errors = [("dkim", "fail"), ("dkim", "fail")];
    let json = run("good.test", |_| {}, &selectors.concat(), 41, &errors);
    assert_verdict(&json, 2, "dkim", "ok", &["s1._domainkey.good.test"]);
    assert_verdict(&json, 3, "dkim", "fail", &["old._domainkey", "revoked"]);
    assert_verdict(
        &json,
        4,
        "dkim",
        "fail",
        &["no DKIM key at nosuch._domainkey"],
    );
    assert_eq!(json["sender_auth"]["dkim"].as_array().unwrap().len(), 3);
}

#[test]
fn a_failing_address_decides_the_exit_code_before_the_records() {
    let errors = [("spf", "fail"), ("dmarc", "fail"), ("open-relay", "fail")];
    run("bare.test", |b| b.open_relay = true, &[], 40, &errors);
}

#[test]
fn a_host_target_has_no_sender_authentication() {
    let setup = Setup::new(|_| {});
    let target = setup.zoo.addr.to_string();
    let args = ["--rcpt", "alice@bare.test", "--dkim-selector", "s1"];
    let p = probe(&setup.dns, &setup.pki, &target, &args);
    assert_eq!(p.code, 0, "{}", p.stdout);
    assert_eq!(p.json()["sender_auth"], Value::Null);
    assert_eq!(p.problems(), vec![]);
    let text = probe_text(&setup.dns, &setup.pki, &target, &args);
    assert!(
        !text.stdout.contains("Sender authentication"),
        "{}",
        text.stdout
    );
}
