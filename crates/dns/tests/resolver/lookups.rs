//! Plain lookups, and the outcomes that must stay apart: found, NODATA, NXDOMAIN, failures.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use relais_dns::reverse::Fcrdns;
use relais_dns::{Failure, MxRecord, Outcome};

use crate::support::{TIMEOUT, fixture};

#[tokio::test]
async fn mx_records_come_sorted_by_preference() {
    let f = fixture();
    let mx = f.resolver.mx("example.test").await;
    assert_eq!(mx.record_type, "MX");
    assert_eq!(
        mx.outcome,
        Outcome::Found(vec![
            MxRecord {
                preference: 10,
                exchange: "mx1.example.test".into()
            },
            MxRecord {
                preference: 20,
                exchange: "mx2.example.test".into()
            },
            MxRecord {
                preference: 30,
                exchange: "mx3.example.test".into()
            },
        ])
    );
    // The resolver asked the fixture server, and only as a fully qualified name.
    assert!(
        f.server
            .queries()
            .contains(&("example.test".to_string(), "MX".to_string()))
    );
}

#[tokio::test]
async fn a_aaaa_and_cname() {
    let f = fixture();
    let dual = f.resolver.addresses("dual.example.test").await;
    assert_eq!(
        dual.ips(),
        vec![
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 14)),
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        ]
    );
    let www = f.resolver.a("www.example.test.").await;
    assert_eq!(www.name, "www.example.test");
    assert_eq!(www.records(), &[Ipv4Addr::new(127, 0, 0, 10)]);
    let v4_only = f.resolver.aaaa("mx1.example.test").await;
    assert_eq!(v4_only.outcome, Outcome::NoData);
}

#[tokio::test]
async fn nxdomain_and_nodata_are_told_apart() {
    let f = fixture();
    assert_eq!(
        f.resolver.mx("missing.test").await.outcome,
        Outcome::NxDomain
    );
    assert_eq!(f.resolver.mx("nomx.test").await.outcome, Outcome::NoData);
    assert_eq!(
        f.resolver.addresses("missing.test").await.outcome(),
        Outcome::NxDomain
    );
    assert_eq!(
        f.resolver.addresses("nothing.test").await.outcome(),
        Outcome::NoData
    );
}

#[tokio::test]
async fn dns_failures_are_not_negative_answers() {
    let f = fixture();
    let servfail = f.resolver.a("servfail.test").await;
    assert_eq!(servfail.outcome, Outcome::Failed(Failure::ServFail));
    let refused = f.resolver.a("host.refused.test").await;
    assert_eq!(refused.outcome, Outcome::Failed(Failure::Refused));
    let timeout = f.resolver.a("timeout.test").await;
    assert_eq!(timeout.outcome, Outcome::Failed(Failure::Timeout));
    assert!(timeout.elapsed >= TIMEOUT, "{:?}", timeout.elapsed);
    let invalid = f.resolver.a("bad..name").await;
    assert!(matches!(
        invalid.outcome,
        Outcome::Failed(Failure::InvalidName(_))
    ));
}

#[tokio::test]
async fn big_answers_come_over_tcp() {
    let f = fixture();
    let txt = f.resolver.txt("big.test").await;
    let [record] = txt.records() else {
        panic!("one TXT record expected: {txt:?}");
    };
    assert!(record.len() > 512, "{}", record.len());
    assert!(record.starts_with("v=spf1 ip4:127.0.2.1 ip4:"));
}

#[tokio::test]
async fn txt_records_keep_their_text() {
    let f = fixture();
    let mut txt = f.resolver.txt("example.test").await.records().to_vec();
    txt.sort();
    assert_eq!(
        txt,
        [
            "site-verification=0123456789",
            "v=spf1 ip4:127.0.0.10 mx include:_spf.example.test -all"
        ]
    );
}

#[tokio::test]
async fn ptr_and_forward_confirmed_reverse_dns() {
    let f = fixture();
    let ip = |last| IpAddr::V4(Ipv4Addr::new(127, 0, 0, last));

    let confirmed = f.resolver.reverse(ip(11)).await;
    assert_eq!(confirmed.ptr.records(), ["mx1.example.test"]);
    assert_eq!(confirmed.verdict(), Fcrdns::Confirmed);
    assert_eq!(confirmed.confirmed_name(), Some("mx1.example.test"));

    let mismatch = f.resolver.reverse(ip(12)).await;
    assert_eq!(mismatch.ptr.records(), ["mail.elsewhere.test"]);
    assert_eq!(mismatch.verdict(), Fcrdns::NotConfirmed);
    assert_eq!(
        mismatch.forward[0].addresses.ips(),
        [IpAddr::V4(Ipv4Addr::new(127, 0, 0, 99))]
    );

    let none = f.resolver.reverse(ip(13)).await;
    assert_eq!(none.ptr.outcome, Outcome::NxDomain);
    assert_eq!(none.verdict(), Fcrdns::NoPtr);
}

#[tokio::test]
async fn loopback_ptr_answers_are_kept_for_their_ttl() {
    // Loopback PTRs go to the nameserver without hickory (and its cache): they have a cache
    // of their own, positive and negative answers alike.
    let f = fixture();
    let ip = |last| IpAddr::V4(Ipv4Addr::new(127, 0, 0, last));
    let asked = |server: &relais_dns::fixture::Server, name: &str| {
        server
            .queries()
            .iter()
            .filter(|(n, t)| n.trim_end_matches('.') == name && t == "PTR")
            .count()
    };
    for _ in 0..3 {
        assert_eq!(f.resolver.ptr(ip(11)).await.records(), ["mx1.example.test"]);
        assert_eq!(f.resolver.ptr(ip(13)).await.outcome, Outcome::NxDomain);
    }
    assert_eq!(asked(&f.server, "11.0.0.127.in-addr.arpa"), 1);
    assert_eq!(asked(&f.server, "13.0.0.127.in-addr.arpa"), 1);
}

#[tokio::test]
async fn lookups_serialize_for_json() {
    let f = fixture();
    let json = serde_json::to_value(f.resolver.a("mx2.example.test").await).unwrap();
    assert_eq!(json["name"], "mx2.example.test");
    assert_eq!(json["type"], "A");
    assert_eq!(json["status"], "found");
    assert_eq!(json["records"][0], "127.0.0.12");
    assert!(json["error"].is_null());
    assert!(json["elapsed_ms"].is_number());
    let json = serde_json::to_value(f.resolver.a("servfail.test").await).unwrap();
    assert_eq!(json["status"], "error");
    assert_eq!(json["error"]["kind"], "servfail");
}
