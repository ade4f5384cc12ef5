//! `relais dns mx|a|ptr|txt`: answers, and the exit code of each kind of outcome.

use crate::support::{relais, server};

#[test]
fn mx_lists_hosts_by_preference_with_addresses() {
    let s = server();
    let run = relais(&s, &["dns", "mx", "example.test"]).expect(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines[0], "MX of example.test:");
    assert!(lines[2].contains("10") && lines[2].contains("mx1.example.test  127.0.0.11"));
    assert!(lines[3].contains("20") && lines[3].contains("mx2.example.test  127.0.0.12"));
    assert!(lines[4].contains("30") && lines[4].contains("mx3.example.test  127.0.0.13"));
    let json = relais(&s, &["dns", "mx", "example.test", "--json"])
        .expect(0)
        .json();
    assert_eq!(json["query"], "mx");
    assert_eq!(json["exit"], 0);
    assert_eq!(json["resolver"], s.addr().to_string());
    assert_eq!(json["result"]["route"], "mx");
    assert_eq!(json["result"]["hosts"][0]["name"], "mx1.example.test");
    assert_eq!(
        json["result"]["hosts"][2]["addresses"]["addresses"][0],
        "127.0.0.13"
    );
}

#[test]
fn mx_null_implicit_and_missing() {
    let s = server();
    relais(&s, &["dns", "mx", "nullmx.test"])
        .expect(1)
        .shows(&["null MX (RFC 7505): the domain accepts no mail"]);
    relais(&s, &["dns", "mx", "nomx.test"])
        .expect(0)
        .shows(&["implicit MX", "nomx.test  127.0.0.21"]);
    relais(&s, &["dns", "mx", "missing.test"])
        .expect(1)
        .shows(&["missing.test does not exist (NXDOMAIN)"]);
    relais(&s, &["dns", "mx", "nothing.test"])
        .expect(1)
        .shows(&["no MX and no A/AAAA record"]);
}

#[test]
fn dns_failures_exit_5_and_say_try_later() {
    let s = server();
    relais(&s, &["dns", "mx", "timeout.test"])
        .expect(5)
        .shows(&["timed out", "try again later"]);
    relais(&s, &["dns", "a", "servfail.test"])
        .expect(5)
        .shows(&["error: server failure (SERVFAIL)"]);
    let json = relais(&s, &["dns", "txt", "refused.test", "--json"])
        .expect(5)
        .json();
    assert_eq!(json["result"]["status"], "error");
    assert_eq!(json["result"]["error"]["kind"], "refused");
}

#[test]
fn names_that_cannot_be_names_exit_4() {
    let s = server();
    relais(&s, &["dns", "mx", "bad..name"])
        .expect(4)
        .shows(&["not a DNS name"]);
    assert!(
        s.queries().is_empty(),
        "nothing may be sent: {:?}",
        s.queries()
    );
}

#[test]
fn a_and_aaaa() {
    let s = server();
    relais(&s, &["dns", "a", "dual.example.test"])
        .expect(0)
        .shows(&["A     127.0.0.14", "AAAA  ::1"]);
    relais(&s, &["dns", "aaaa", "mx1.example.test"])
        .expect(0)
        .shows(&["A     127.0.0.11", "AAAA  none (NODATA)"]);
    relais(&s, &["dns", "a", "missing.test"]).expect(1);
    let json = relais(&s, &["dns", "a", "www.example.test", "--json"])
        .expect(0)
        .json();
    assert_eq!(json["result"]["addresses"][0], "127.0.0.10");
}

#[test]
fn ptr_forward_confirmed_or_not() {
    let s = server();
    relais(&s, &["dns", "ptr", "127.0.0.11"]).expect(0).shows(&[
        "mx1.example.test  -> 127.0.0.11  forward-confirmed",
        "FCrDNS: confirmed",
    ]);
    relais(&s, &["dns", "ptr", "127.0.0.12"]).expect(1).shows(&[
        "mail.elsewhere.test  -> 127.0.0.99",
        "FCrDNS: NOT confirmed",
    ]);
    relais(&s, &["dns", "ptr", "127.0.0.13"]).expect(1).shows(&[
        "13.0.0.127.in-addr.arpa does not exist (NXDOMAIN)",
        "no PTR record",
    ]);
    let json = relais(&s, &["dns", "ptr", "127.0.0.12", "--json"])
        .expect(1)
        .json();
    assert_eq!(json["result"]["fcrdns"], "not_confirmed");
    assert_eq!(json["result"]["ptr"]["records"][0], "mail.elsewhere.test");
    // Not an address: clap refuses it.
    relais(&s, &["dns", "ptr", "mx1.example.test"]).expect(64);
}

#[test]
fn txt_including_an_answer_too_big_for_udp() {
    let s = server();
    relais(&s, &["dns", "txt", "example.test"])
        .expect(0)
        .shows(&["\"site-verification=0123456789\""]);
    let json = relais(&s, &["dns", "txt", "big.test", "--json"])
        .expect(0)
        .json();
    let record = json["result"]["records"][0].as_str().unwrap();
    assert!(record.len() > 512, "{record}");
    relais(&s, &["dns", "txt", "nomx.test"])
        .expect(1)
        .shows(&["no TXT record: nomx.test exists but has none (NODATA)"]);
}
