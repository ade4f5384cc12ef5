//! One fault per server; the probe must name it, with the right level and exit code, and
//! nothing else.

use std::net::TcpListener;
use std::time::Duration;

use crate::zoo::{Behaviour, CertKind, Pki, Zoo, dns, probe};

fn pair(check: &str, level: &str) -> (String, String) {
    (check.to_string(), level.to_string())
}

/// Starts a zoo server with `change` applied to a clean one and probes it with `args`.
fn run(change: impl FnOnce(&mut Behaviour, &Pki), args: &[&str]) -> crate::zoo::Probe {
    let pki = Pki::new();
    let dns = dns();
    let mut behaviour = Behaviour::clean(&pki, CertKind::Good);
    change(&mut behaviour, &pki);
    let zoo = Zoo::start(behaviour);
    let mut all = vec!["--rcpt", "alice@zoo.test"];
    all.extend_from_slice(args);
    probe(&dns, &pki, &zoo.addr.to_string(), &all)
}

#[test]
fn a_clean_zoo_server_raises_nothing() {
    let p = run(|_, _| {}, &[]);
    assert_eq!(p.code, 0, "{}", p.stdout);
    assert_eq!(p.problems(), vec![], "{}", p.stdout);
    let json = p.json();
    let host = &json["hosts"][0];
    assert_eq!(host["tls"]["verified"], true);
    let stages: Vec<&str> = host["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    for stage in [
        "connect",
        "banner",
        "reverse-dns",
        "ehlo",
        "starttls",
        "ehlo-tls",
        "mail",
        "rcpt",
        "vrfy",
        "expn",
        "rset",
        "quit",
    ] {
        assert!(stages.contains(&stage), "{stage} missing: {stages:?}");
    }
    assert!(!stages.contains(&"data"), "never DATA unless asked");
    let keywords: Vec<&str> = host["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["keyword"].as_str().unwrap())
        .collect();
    assert_eq!(keywords, ["PIPELINING", "SIZE", "ENHANCEDSTATUSCODES"]);
    assert!(
        host["capabilities"][0]["meaning"]
            .as_str()
            .unwrap()
            .contains("RFC 2920")
    );
}

#[test]
fn closed_port_is_refused_with_the_outlook_code() {
    let pki = Pki::new();
    let dns = dns();
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let p = probe(&dns, &pki, &format!("127.0.0.1:{port}"), &[]);
    assert_eq!(p.code, 2, "{}", p.stdout);
    assert_eq!(p.problems(), vec![pair("connect", "fail")]);
    let reason = p.reason("connect");
    assert!(
        reason.contains("refused") && reason.contains("0x800CCC0E"),
        "{reason}"
    );
}

#[test]
fn slow_banner_is_a_warning_not_a_failure() {
    let p = run(
        |b, _| b.banner_delay = Duration::from_millis(1300),
        &["--slow-banner", "1"],
    );
    assert_eq!(p.code, 0, "{}", p.stdout);
    assert_eq!(p.problems(), vec![pair("banner-delay", "warn")]);
    assert!(p.reason("banner-delay").contains("greet-pause"));
}

#[test]
fn silent_after_connect_fails_the_banner() {
    let p = run(|b, _| b.silent = true, &["--timeout", "1"]);
    assert_eq!(p.code, 21, "{}{}", p.stdout, p.stderr);
    assert_eq!(p.problems(), vec![pair("banner", "fail")]);
    assert!(p.reason("banner").contains("no greeting within 1s"));
}

#[test]
fn a_421_banner_refuses_the_session() {
    let p = run(
        |b, _| b.banner = "421 4.3.2 mx.zoo.test Service not available, too busy".into(),
        &[],
    );
    assert_eq!(p.code, 21, "{}", p.stdout);
    assert_eq!(p.problems(), vec![pair("banner", "fail")]);
    assert!(p.reason("banner").contains("421") && p.reason("banner").contains("0x800CCC67"));
}

#[test]
fn no_starttls() {
    let p = run(|b, _| b.tls = None, &[]);
    assert_eq!(p.code, 0, "{}", p.stdout);
    assert_eq!(p.problems(), vec![pair("starttls", "warn")]);
}

#[test]
fn self_signed_certificate() {
    let p = run(
        |b, pki| *b = Behaviour::clean(pki, CertKind::SelfSigned),
        &[],
    );
    assert_eq!(p.code, 0, "{}", p.stdout);
    assert_eq!(p.problems(), vec![pair("certificate", "warn")]);
    assert!(p.reason("certificate").contains("self-signed"));
}

#[test]
fn expired_certificate() {
    let p = run(|b, pki| *b = Behaviour::clean(pki, CertKind::Expired), &[]);
    assert_eq!(p.code, 29, "{}", p.stdout);
    assert_eq!(p.problems(), vec![pair("certificate", "fail")]);
    assert!(p.reason("certificate").contains("EXPIRED"));
}

#[test]
fn certificate_for_another_name() {
    let p = run(
        |b, pki| *b = Behaviour::clean(pki, CertKind::WrongName),
        &[],
    );
    assert_eq!(p.code, 0, "{}", p.stdout);
    assert_eq!(p.problems(), vec![pair("certificate", "warn")]);
    assert!(
        p.reason("certificate")
            .contains("does not name mx.zoo.test")
    );
}

#[test]
fn open_relay() {
    let p = run(|b, _| b.open_relay = true, &[]);
    assert_eq!(p.code, 40, "{}", p.stdout);
    assert_eq!(p.problems(), vec![pair("open-relay", "fail")]);
    assert!(p.reason("open-relay").contains("OPEN RELAY"));
}

#[test]
fn catch_all() {
    let p = run(|b, _| b.catch_all = true, &[]);
    assert_eq!(p.code, 0, "{}", p.stdout);
    assert_eq!(p.problems(), vec![pair("recipient-verification", "warn")]);
}

#[test]
fn greylisting_450_then_accept() {
    let p = run(|b, _| b.greylist = true, &["--greylist-retry", "0.8"]);
    assert_eq!(p.code, 0, "{}", p.stdout);
    assert_eq!(p.problems(), vec![pair("greylisting", "warn")]);
    assert!(p.reason("greylisting").contains("450"));
}

#[test]
fn connection_closed_mid_transaction() {
    let p = run(|b, _| b.close_at_rcpt = true, &[]);
    assert_eq!(p.code, 6, "{}", p.stdout);
    assert_eq!(p.problems(), vec![pair("rcpt", "fail")]);
    assert!(
        p.reason("rcpt").contains("0x800CCC0F"),
        "{}",
        p.reason("rcpt")
    );
}

#[test]
fn vrfy_exposed() {
    let p = run(|b, _| b.vrfy_exposed = true, &[]);
    assert_eq!(p.code, 0, "{}", p.stdout);
    assert_eq!(p.problems(), vec![pair("vrfy", "warn")]);
}

#[test]
fn domain_mode_walks_the_mx() {
    let pki = Pki::new();
    let dns = dns();
    let zoo = Zoo::start(Behaviour::clean(&pki, CertKind::Good));
    let port = zoo.addr.port().to_string();
    let p = probe(&dns, &pki, "zoo.test", &["--port", &port]);
    assert_eq!(p.code, 0, "{}", p.stdout);
    assert_eq!(p.problems(), vec![]);
    let json = p.json();
    assert_eq!(json["route"]["route"], "mx");
    assert_eq!(json["hosts"][0]["host"], "mx.zoo.test");
    assert_eq!(json["hosts"][0]["preference"], 10);
    let missing = probe(&dns, &pki, "nowhere.test", &[]);
    assert_eq!(missing.code, 3, "{}", missing.stdout);
    assert!(missing.reason("dns").contains("0x800CCC0D"));
}

#[test]
fn data_only_when_asked() {
    let p = run(|_, _| {}, &["--data"]);
    assert_eq!(p.code, 0, "{}", p.stdout);
    assert_eq!(p.problems(), vec![]);
    let json = p.json();
    let data = json["hosts"][0]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "data")
        .cloned()
        .expect("a data stage");
    assert!(data["result"].as_str().unwrap().contains("queued as ZOO1"));
}

#[test]
fn text_output_has_the_table_verdicts_and_summary() {
    let pki = Pki::new();
    let dns = dns();
    let mut behaviour = Behaviour::clean(&pki, CertKind::Good);
    behaviour.catch_all = true;
    let zoo = Zoo::start(behaviour);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_relais"))
        .args([
            "probe",
            &zoo.addr.to_string(),
            "--rcpt",
            "alice@zoo.test",
            "--helo",
            "probe.test",
        ])
        .args([
            "--resolver",
            &dns.addr().to_string(),
            "--ca-file",
            pki.ca_file.to_str().unwrap(),
        ])
        .env_remove("RELAIS_RESOLVER")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    for part in [
        &format!("== 127.0.0.1 [{}]", zoo.addr),
        "  banner ",
        "220 mx.zoo.test ESMTP zoo",
        "  reverse-dns ",
        "mx.zoo.test (forward-confirmed)",
        "PIPELINING ",
        " WARN  recipient-verification",
        "summary: 1 address(es) probed;",
        "overall WARN; exit 0",
    ] {
        assert!(text.contains(part), "{part:?} not in:\n{text}");
    }
}
