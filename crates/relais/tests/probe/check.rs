//! `relais check DOMAIN` against a clean zoo server, with two fixture domains: zoo.test, whose
//! records are all right (no false alarm), and bad.test, with one known fault per record type
//! (each must be named).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use relais_dns::fixture::{Server as DnsServer, Zone};
use serde_json::Value;

use crate::common::certs::Certs;
use crate::common::process::Daemon;

use crate::sender_auth::KEY;
use crate::zoo::{Behaviour, CertKind, HOST, Pki, Zoo, zone};

fn zones() -> Zone {
    zone()
        .txt("_mta-sts.zoo.test", "v=STSv1; id=20260101")
        .a("mta-sts.zoo.test", "127.0.0.1")
        .txt("_smtp._tls.zoo.test", "v=TLSRPTv1; rua=mailto:tls@zoo.test")
        .txt(
            "default._bimi.zoo.test",
            "v=BIMI1; l=https://zoo.test/logo.svg",
        )
        .txt(
            "s1._domainkey.zoo.test",
            &format!("v=DKIM1; k=rsa; p={KEY}"),
        )
        .mx("bad.test", 10, HOST)
        .txt("bad.test", "v=spf1 mx ?all")
        .txt("_dmarc.bad.test", "v=DMARC1; p=none; rua=mailto:d@bad.test")
        .txt("_mta-sts.bad.test", "v=STSv1;")
        .txt("_smtp._tls.bad.test", "v=TLSRPTv1; rua=tls-at-bad.test")
        .txt(
            "default._bimi.bad.test",
            "v=BIMI1; l=http://bad.test/logo.png",
        )
        // The block list: 127.0.0.1 is listed on bad-bl.test, not on bl.test.
        .a("1.0.0.127.bad-bl.test", "127.0.0.2")
        .txt("1.0.0.127.bad-bl.test", "listed for testing")
}

/// The policy host `mta-sts.zoo.test`: an HTTPS server on 127.0.0.1 (the Python one of the
/// delivery tests) serving `policy`, with a certificate from a CA of its own; and a CA file
/// that trusts both that CA and the zoo's, for `--ca-file`.
pub struct PolicyHost {
    pub daemon: Daemon,
    ca_bundle: PathBuf,
    _dir: tempfile::TempDir,
}

impl PolicyHost {
    pub fn start(pki: &Pki, policy: &str) -> PolicyHost {
        let dir = tempfile::tempdir().unwrap();
        crate::common::sts::publish(&dir.path().join("root"), "zoo.test", policy);
        let certs = Certs::signed_for("Policy Test CA", &["mta-sts.zoo.test"]);
        let ca_bundle = dir.path().join("ca-bundle.pem");
        let mut bundle = std::fs::read(&pki.ca_file).unwrap();
        bundle.extend(std::fs::read(&certs.ca).unwrap());
        std::fs::write(&ca_bundle, bundle).unwrap();
        let daemon = crate::common::sts::https(&dir.path().join("root"), &certs);
        PolicyHost {
            daemon,
            ca_bundle,
            _dir: dir,
        }
    }

    /// The arguments that send `relais check` to it.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--mta-sts-port".into(),
            self.daemon.addr().port().to_string(),
            "--ca-file".into(),
            self.ca_bundle.display().to_string(),
        ]
    }
}

/// A good policy for zoo.test: enforce, its MX host listed, a week.
pub fn good_policy() -> String {
    format!("version: STSv1\nmode: enforce\nmx: {HOST}\nmax_age: 604800\n")
}

pub struct Check {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `relais check DOMAIN ARGS` against `zoo`, with the DNS server at `resolver` and the
/// zoo's CA (unless ARGS give `--ca-file`).
pub fn check(resolver: SocketAddr, pki: &Pki, zoo: &Zoo, domain: &str, args: &[&str]) -> Check {
    let out = Command::new(env!("CARGO_BIN_EXE_relais"))
        .args(["check", domain, "--port", &zoo.addr.port().to_string()])
        .args(["--resolver", &resolver.to_string(), "--dns-timeout", "1"])
        .args(if args.contains(&"--ca-file") {
            Vec::new()
        } else {
            vec!["--ca-file", pki.ca_file.to_str().unwrap()]
        })
        .args(["--helo", "probe.test", "--timeout", "5"])
        .args(args)
        .env_remove("RELAIS_RESOLVER")
        .output()
        .expect("run relais check");
    Check {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every (check, level) that is not ok, from the whole JSON report.
pub fn problems(json: &Value) -> Vec<(String, String)> {
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let p = &json["probe"];
    list(&p["route_verdicts"])
        .into_iter()
        .chain(list(&p["sender_auth"]["verdicts"]))
        .chain(list(&p["hosts"]).iter().flat_map(|h| list(&h["verdicts"])))
        .chain(list(&json["records"]["verdicts"]))
        .filter(|v| v["level"] != "ok")
        .map(|v| {
            (
                v["check"].as_str().unwrap().to_string(),
                v["level"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_clean_domain_raises_no_alarm() {
    let pki = Pki::new();
    let dns = DnsServer::start(zones()).unwrap();
    let zoo = Zoo::start(Behaviour::clean(&pki, CertKind::Good));
    let sts = PolicyHost::start(&pki, &good_policy());
    let sts_args = sts.args();
    let sts_args: Vec<&str> = sts_args.iter().map(String::as_str).collect();
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    let mut args = vec![
        "--dnsbl",
        "bl.test",
        "--dkim-selector",
        "s1",
        "--json",
        "--html",
        html.to_str().unwrap(),
    ];
    args.extend(&sts_args);
    let c = check(dns.addr(), &pki, &zoo, "zoo.test", &args);
    let json: Value = serde_json::from_str(&c.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", c.stdout, c.stderr));
    assert_eq!(problems(&json), vec![], "{}", c.stdout);
    assert_eq!(c.code, 0, "{}", c.stderr);
    let checks: Vec<&str> = json["records"]["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        checks,
        [
            "mta-sts",
            "tls-rpt",
            "bimi",
            "mta-sts-policy",
            "dane",
            "dnsbl"
        ]
    );
    assert!(
        sts.daemon
            .log()
            .contains("GET mta-sts.zoo.test /.well-known/mta-sts.txt 200"),
        "{}",
        sts.daemon.log()
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("Overall <b>OK</b>"));
    assert!(page.contains("class=\"bar\"") && !page.contains("<script"));

    // The text has the waterfall and the same verdict.
    let mut args = vec!["--dnsbl", "bl.test", "--dkim-selector", "s1"];
    args.extend(&sts_args);
    let t = check(dns.addr(), &pki, &zoo, "zoo.test", &args);
    assert_eq!(t.code, 0, "{}", t.stdout);
    assert!(
        t.stdout.contains(&format!("Waterfall of {HOST}")),
        "{}",
        t.stdout
    );
    assert!(t.stdout.contains("overall OK; exit 0"), "{}", t.stdout);
}

#[test]
fn one_fault_per_record_type_is_named() {
    let pki = Pki::new();
    let dns = DnsServer::start(zones()).unwrap();
    let zoo = Zoo::start(Behaviour::clean(&pki, CertKind::Good));
    let c = check(
        dns.addr(),
        &pki,
        &zoo,
        "bad.test",
        &[
            "--dnsbl",
            "bl.test",
            "--dnsbl",
            "bad-bl.test",
            "--dkim-selector",
            "s1",
            "--json",
        ],
    );
    let json: Value = serde_json::from_str(&c.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", c.stdout, c.stderr));
    let mut got = problems(&json);
    got.sort();
    let mut want: Vec<(String, String)> = [
        ("spf", "warn"),
        ("dmarc", "warn"),
        ("dkim", "fail"),
        ("mta-sts", "fail"),
        ("tls-rpt", "fail"),
        ("bimi", "fail"),
        ("dnsbl", "fail"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    want.sort();
    assert_eq!(got, want, "{}", c.stdout);
    assert_eq!(c.code, 2, "{}", c.stderr);
    assert!(
        c.stdout
            .contains("listed on bad-bl.test: listed for testing"),
        "{}",
        c.stdout
    );
}

#[test]
fn an_mta_sts_policy_that_leaves_out_an_mx_host_or_cannot_be_fetched_is_named() {
    let pki = Pki::new();
    let dns = DnsServer::start(zones()).unwrap();
    let zoo = Zoo::start(Behaviour::clean(&pki, CertKind::Good));
    // the policy lists another host, for an hour
    let mut sts = PolicyHost::start(
        &pki,
        "version: STSv1\nmode: enforce\nmx: mx2.zoo.test\nmax_age: 3600\n",
    );
    let sts_args = sts.args();
    let mut args = vec!["--dnsbl", "bl.test", "--json"];
    args.extend(sts_args.iter().map(String::as_str));
    let c = check(dns.addr(), &pki, &zoo, "zoo.test", &args);
    let json: Value = serde_json::from_str(&c.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", c.stdout, c.stderr));
    let mut got = problems(&json);
    got.sort();
    assert_eq!(
        got,
        [
            ("mta-sts-policy".to_string(), "fail".to_string()),
            ("mta-sts-policy".to_string(), "warn".to_string())
        ],
        "{}",
        c.stdout
    );
    assert!(
        c.stdout.contains(&format!(
            "the MX host {HOST} is not in the policy's mx list"
        )),
        "{}",
        c.stdout
    );
    assert_eq!(c.code, 2);
    // the policy host gone: the policy cannot be used
    sts.daemon.stop();
    let c = check(dns.addr(), &pki, &zoo, "zoo.test", &args);
    assert!(
        c.stdout.contains(
            "the MTA-STS policy at https://mta-sts.zoo.test/.well-known/mta-sts.txt cannot be used"
        ),
        "{}",
        c.stdout
    );
    assert_eq!(c.code, 2);
}
