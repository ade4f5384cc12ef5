//! `relais dnsbl`: listed, not listed, and the lists' error codes reported as errors.

use crate::support::{relais, server};

#[test]
fn listed_with_code_and_reason() {
    let s = server();
    relais(&s, &["dnsbl", "127.0.0.2", "--zone", "bl.test"])
        .expect(1)
        .shows(&[
            "bl.test  LISTED",
            "127.0.0.2 (listed): 127.0.0.2 is listed for testing, see https://bl.test/query/127.0.0.2",
            "summary: listed on 1 of 1 zone(s)",
        ]);
}

#[test]
fn not_listed() {
    let s = server();
    relais(&s, &["dnsbl", "127.0.0.1", "--zone", "bl.test"])
        .expect(0)
        .shows(&["bl.test  not listed", "summary: listed on 0 of 1 zone(s)"]);
}

#[test]
fn an_error_code_is_an_error_never_a_listing() {
    let s = server();
    let run = relais(&s, &["dnsbl", "127.0.0.3", "--zone", "bl.test"])
        .expect(5)
        .shows(&[
            "bl.test  ERROR",
            "answered 127.255.255.254: error: queries through public or open resolvers are refused",
            "summary: listed on 0 of 1 zone(s); 1 zone(s) gave no verdict",
        ]);
    assert!(!run.stdout.contains("LISTED"));
    let json = relais(&s, &["dnsbl", "127.0.0.3", "--zone", "bl.test", "--json"])
        .expect(5)
        .json();
    assert_eq!(json["result"]["listed"], 0);
    assert_eq!(json["result"]["errors"], 1);
    assert_eq!(json["result"]["zones"][0]["status"], "error");
    assert_eq!(json["result"]["zones"][0]["codes"][0]["kind"], "error");
}

#[test]
fn several_zones_listed_wins_over_errors() {
    let s = server();
    let json = relais(
        &s,
        &[
            "dnsbl",
            "127.0.0.2",
            "--zone",
            "bl.test",
            "--zone",
            "servfail.test",
            "--zone",
            "clean.test",
            "--json",
        ],
    )
    .expect(1)
    .json();
    let statuses: Vec<&str> = json["result"]["zones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["listed", "error", "not_listed"]);
    relais(
        &s,
        &[
            "dnsbl",
            "127.0.0.1",
            "--zone",
            "servfail.test",
            "--zone",
            "bl.test",
        ],
    )
    .expect(5);
}

#[test]
fn lists_are_checked_on_their_test_points() {
    let s = server();
    // bl.test names 127.0.0.2 and not 127.0.0.1: working; all.test names everything, so its
    // listing of 192.0.2.1 is no verdict; dead.test names nothing, not even the test point
    let run = relais(
        &s,
        &[
            "dnsbl",
            "192.0.2.1",
            "--zone",
            "bl.test",
            "--zone",
            "all.test",
            "--zone",
            "dead.test",
        ],
    )
    .expect(5)
    .shows(&[
        "zone health (RFC 5782 test points):",
        "bl.test    working (names the test point 127.0.0.2, not 127.0.0.1)",
        "all.test   LISTS EVERYTHING: 127.0.0.1 is listed",
        "dead.test  DEAD? the test point 127.0.0.2 is not listed",
        "all.test   ERROR",
        "summary: listed on 0 of 3 zone(s)",
    ]);
    let _ = run;
    let json = relais(&s, &["dnsbl", "192.0.2.1", "--zone", "all.test", "--json"])
        .expect(5)
        .json();
    assert_eq!(
        json["result"]["health"][0]["health"], "lists_everything",
        "{json}"
    );
}
