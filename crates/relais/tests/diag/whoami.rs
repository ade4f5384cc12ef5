//! `relais whoami` toward 127.0.0.1 (its source address is 127.0.0.1) with every answer from
//! the fixture DNS server, and in a network namespace with no route at all (`unshare -rn`).

use std::process::Command;
use std::time::Duration;

use crate::common::process::{Run, require, run};
use crate::common::{Dns, RELAIS, Zone, dns};

fn zone() -> Zone {
    Zone::new()
        .ptr("127.0.0.1", "mail.whoami.test")
        .a("mail.whoami.test", "127.0.0.1")
        .ptr("127.0.0.3", "liar.whoami.test")
        .a("liar.whoami.test", "192.0.2.99")
}

fn whoami(dns: &Dns, args: &[&str]) -> Run {
    let mut cmd = Command::new(RELAIS);
    cmd.arg("whoami")
        .args(["--to", "127.0.0.1", "--json", "--dns-timeout", "1"])
        .args(["--resolver", &dns.addr().to_string()])
        .args(args)
        .env_remove("RELAIS_RESOLVER");
    run(cmd, None, Duration::from_secs(30))
}

/// The (check, level) of each verdict.
fn verdicts(r: &Run) -> Vec<(String, String)> {
    r.json()["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["check"].as_str().unwrap().to_string(),
                v["level"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn the_source_address_its_ptr_and_the_helo_name() {
    let dns = dns(zone());
    let r = whoami(&dns, &["--helo", "mail.whoami.test"]).expect(0);
    let json = r.json();
    assert_eq!(json["source"], "127.0.0.1", "{r}");
    assert_eq!(json["fcrdns"], "confirmed", "{r}");
    assert_eq!(json["confirmed_name"], "mail.whoami.test", "{r}");
    assert_eq!(json["public"], false, "{r}");
    // Loopback is no public address: said, not guessed.
    assert_eq!(
        verdicts(&r),
        pairs(&[("route", "ok"), ("address", "warn"), ("reverse-dns", "ok")])
    );

    // A HELO name that is not the PTR: a warning.
    let r = whoami(&dns, &["--helo", "laptop.example"]).expect(0);
    assert_eq!(
        verdicts(&r),
        pairs(&[
            ("route", "ok"),
            ("address", "warn"),
            ("reverse-dns", "warn")
        ])
    );
    assert!(
        r.stdout
            .contains("HELO name \\\"laptop.example\\\" differs from the PTR"),
        "{r}"
    );
}

#[test]
fn a_missing_or_lying_ptr_fails_with_42() {
    let dns = dns(zone());
    // --address: the public address, as whatismyip shows it; no warning about privacy then.
    let r = whoami(&dns, &["--address", "127.0.0.2", "--helo", "x.test"]).expect(42);
    assert_eq!(r.json()["fcrdns"], "no_ptr", "{r}");
    assert_eq!(
        verdicts(&r),
        pairs(&[("route", "ok"), ("reverse-dns", "fail")])
    );
    let r = whoami(
        &dns,
        &["--address", "127.0.0.3", "--helo", "liar.whoami.test"],
    )
    .expect(42);
    assert_eq!(r.json()["fcrdns"], "not_confirmed", "{r}");
    // The text says it in words.
    let mut cmd = Command::new(RELAIS);
    cmd.args(["whoami", "--to", "127.0.0.1", "--address", "127.0.0.3"])
        .args(["--resolver", &dns.addr().to_string(), "--dns-timeout", "1"]);
    run(cmd, None, Duration::from_secs(30))
        .expect(42)
        .expect_out("PTR             liar.whoami.test")
        .expect_out("does not resolve back to 127.0.0.3");
}

#[test]
fn with_no_route_it_says_so_and_does_not_guess() {
    require(
        "unshare",
        &["-rn", "true"],
        "unshare (util-linux) with user namespaces allowed",
    );
    // A network namespace of its own: not even a default route.
    let mut cmd = Command::new("unshare");
    cmd.args(["-rn", RELAIS, "whoami", "--to", "198.41.0.4"]);
    let r = run(cmd, None, Duration::from_secs(30)).expect(2);
    r.expect_out("source address  none")
        .expect_out("no route toward 198.41.0.4")
        .expect_no_out("PTR");
}
