//! `relais dns spf`: the record term by term, and every result of the evaluation with the
//! term that decided and the exit code.

use crate::support::{relais, server};

#[test]
fn record_term_by_term() {
    let s = server();
    relais(&s, &["dns", "spf", "example.test"])
        .expect(0)
        .shows(&[
            "v=spf1 ip4:127.0.0.10 mx include:_spf.example.test -all",
            "include:_spf.example.test  pass if the SPF record of _spf.example.test passes",
            "-all                       fail for every address not matched before",
            "DNS-querying terms: 2",
        ]);
    relais(&s, &["dns", "spf", "nothing.test"])
        .expect(1)
        .shows(&["no SPF record"]);
    relais(&s, &["dns", "spf", "badspf.test"])
        .expect(1)
        .shows(&["INVALID: invalid address in \"ip4:300.1.1.1\""]);
    relais(&s, &["dns", "spf", "twospf.test"])
        .expect(1)
        .shows(&["2 SPF records: RFC 7208 4.5 allows one"]);
}

/// (domain, ip, result, matched term, exit code)
const CASES: &[(&str, &str, &str, Option<&str>, i32)] = &[
    (
        "example.test",
        "127.0.0.10",
        "pass",
        Some("ip4:127.0.0.10"),
        0,
    ),
    ("example.test", "127.0.0.13", "pass", Some("mx"), 0),
    (
        "example.test",
        "127.0.1.5",
        "pass",
        Some("ip4:127.0.1.0/24"),
        0,
    ),
    ("example.test", "127.0.0.200", "fail", Some("-all"), 1),
    (
        "redirect.test",
        "127.0.0.10",
        "pass",
        Some("ip4:127.0.0.10"),
        0,
    ),
    ("redirect.test", "127.0.0.200", "fail", Some("-all"), 1),
    ("softfail.test", "127.0.0.200", "softfail", Some("~all"), 1),
    ("neutral.test", "127.0.0.200", "neutral", Some("?all"), 1),
    ("nothing.test", "127.0.0.10", "none", None, 1),
    ("missing.test", "127.0.0.10", "none", None, 1),
    ("twospf.test", "127.0.0.40", "permerror", None, 1),
    ("badspf.test", "127.0.0.10", "permerror", None, 1),
    ("loop.test", "127.0.0.10", "permerror", None, 1),
    ("tempspf.test", "127.0.0.10", "temperror", None, 5),
    ("timeout.test", "127.0.0.10", "temperror", None, 5),
];

#[test]
fn every_result_with_its_term_and_exit_code() {
    let s = server();
    for (domain, ip, result, term, code) in CASES {
        let run = relais(&s, &["dns", "spf", domain, "--ip", ip, "--json"]);
        assert_eq!(run.code, *code, "{domain} {ip}: {}", run.stdout);
        let json = run.json();
        let check = &json["result"]["check"];
        assert_eq!(check["result"], *result, "{domain} {ip}: {check:#}");
        match term {
            Some(term) => assert_eq!(check["matched"]["term"], *term, "{domain} {ip}"),
            None => assert!(check["matched"].is_null(), "{domain} {ip}: {check:#}"),
        }
    }
}

#[test]
fn the_text_tells_the_way_to_the_decision() {
    let s = server();
    relais(&s, &["dns", "spf", "example.test", "--ip", "127.0.1.5"])
        .expect(0)
        .shows(&[
            "check_host(127.0.1.5, example.test), sender postmaster@example.test, HELO example.test:",
            "_spf.example.test: v=spf1 ip4:127.0.1.0/24 -all",
            "result: pass, matched ip4:127.0.1.0/24 in _spf.example.test (via example.test: include:_spf.example.test)",
            "DNS lookups: 2 of 10",
        ]);
    relais(&s, &["dns", "spf", "twospf.test", "--ip", "127.0.0.40"])
        .expect(1)
        .shows(&[
            "twospf.test: permerror: 2 SPF records (RFC 7208 4.5 allows one)",
            "result: permerror",
        ]);
}

#[test]
fn sender_and_helo_feed_the_check() {
    let s = server();
    let json = relais(
        &s,
        &[
            "dns",
            "spf",
            "example.test",
            "--ip",
            "127.0.0.10",
            "--sender",
            "bob@example.test",
            "--helo",
            "client.test",
            "--json",
        ],
    )
    .expect(0)
    .json();
    let query = &json["result"]["check"]["query"];
    assert_eq!(query["sender"], "bob@example.test");
    assert_eq!(query["helo"], "client.test");
    relais(
        &s,
        &[
            "dns",
            "spf",
            "example.test",
            "--ip",
            "127.0.0.10",
            "--sender",
            "bob@other.test",
        ],
    )
    .expect(4);
}
