//! SPF: records parsed, and evaluated to every result with the term that decided.

use std::net::IpAddr;

use relais_dns::fixture::Zone;
use relais_dns::spf::{RecordStatus, SpfCheck, SpfQuery, SpfResult};

use crate::support::{fixture, with_zone};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

async fn check(domain: &str, addr: &str) -> SpfCheck {
    let f = fixture();
    f.resolver
        .spf_check(&SpfQuery::mail_from(
            ip(addr),
            &format!("alice@{domain}"),
            "client.test",
        ))
        .await
}

/// The result, the matched term, and the domain whose record holds it.
async fn verdict(domain: &str, addr: &str) -> (SpfResult, Option<(String, String)>) {
    let c = check(domain, addr).await;
    assert_eq!(c.result, c.trace_result, "{c:#?}");
    (c.result, c.matched.map(|m| (m.term, m.domain)))
}

fn matched(term: &str, domain: &str) -> Option<(String, String)> {
    Some((term.to_string(), domain.to_string()))
}

#[tokio::test]
async fn record_is_parsed_term_by_term() {
    let f = fixture();
    let record = f.resolver.spf_record("example.test").await;
    assert_eq!(record.status, RecordStatus::Found);
    assert_eq!(
        record.text(),
        Some("v=spf1 ip4:127.0.0.10 mx include:_spf.example.test -all")
    );
    let names: Vec<&str> = record.terms.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["ip4", "mx", "include", "all"]);
    assert_eq!(record.dns_terms(), 2);
    assert_eq!(record.terms[3].qualifier, Some("fail"));
}

#[tokio::test]
async fn records_that_are_not_there_or_not_right() {
    let f = fixture();
    let status = |d: &'static str| {
        let r = f.resolver.clone();
        async move { r.spf_record(d).await.status }
    };
    assert_eq!(status("nothing.test").await, RecordStatus::NotFound);
    assert_eq!(status("missing.test").await, RecordStatus::NoSuchDomain);
    assert_eq!(status("twospf.test").await, RecordStatus::Multiple);
    assert_eq!(
        status("badspf.test").await,
        RecordStatus::Invalid("invalid address in \"ip4:300.1.1.1\"".into())
    );
    assert!(matches!(
        status("timeout.test").await,
        RecordStatus::Failed(_)
    ));
}

#[tokio::test]
async fn pass_by_ip4_mx_and_include() {
    assert_eq!(
        verdict("example.test", "127.0.0.10").await,
        (SpfResult::Pass, matched("ip4:127.0.0.10", "example.test"))
    );
    assert_eq!(
        verdict("example.test", "127.0.0.12").await,
        (SpfResult::Pass, matched("mx", "example.test"))
    );
    let c = check("example.test", "127.0.1.5").await;
    assert_eq!(c.result, SpfResult::Pass);
    let m = c.matched.unwrap();
    assert_eq!(
        (m.term.as_str(), m.domain.as_str()),
        ("ip4:127.0.1.0/24", "_spf.example.test")
    );
    assert_eq!(m.via, ["example.test: include:_spf.example.test"]);
    assert_eq!(c.dns_lookups, 2);
}

#[tokio::test]
async fn fail_softfail_and_neutral() {
    assert_eq!(
        verdict("example.test", "127.0.0.200").await,
        (SpfResult::Fail, matched("-all", "example.test"))
    );
    assert_eq!(
        verdict("softfail.test", "127.0.0.200").await,
        (SpfResult::SoftFail, matched("~all", "softfail.test"))
    );
    assert_eq!(
        verdict("neutral.test", "127.0.0.200").await,
        (SpfResult::Neutral, matched("?all", "neutral.test"))
    );
    assert_eq!(
        verdict("softfail.test", "127.0.0.30").await,
        (SpfResult::Pass, matched("ip4:127.0.0.30", "softfail.test"))
    );
}

#[tokio::test]
async fn redirect_hands_over_to_another_record() {
    let c = check("redirect.test", "127.0.0.10").await;
    assert_eq!(c.result, SpfResult::Pass);
    let m = c.matched.unwrap();
    assert_eq!(m.domain, "example.test");
    assert_eq!(m.via, ["redirect.test: redirect=example.test"]);
    assert_eq!(
        verdict("redirect.test", "127.0.0.200").await.0,
        SpfResult::Fail
    );
}

#[tokio::test]
async fn none_without_a_record() {
    assert_eq!(
        verdict("nothing.test", "127.0.0.10").await,
        (SpfResult::None, None)
    );
    assert_eq!(
        verdict("missing.test", "127.0.0.10").await,
        (SpfResult::None, None)
    );
}

#[tokio::test]
async fn permerrors() {
    // RFC 7208 4.5: two records. mail-auth alone would use the first; the RFC result wins.
    let c = check("twospf.test", "127.0.0.40").await;
    assert_eq!(c.result, SpfResult::PermError);
    assert!(!c.notes.is_empty() || c.trace_result == SpfResult::PermError);
    let c = check("badspf.test", "127.0.0.10").await;
    assert_eq!(c.result, SpfResult::PermError);
    // include:loop.test includes itself until the 10-lookup limit.
    let c = check("loop.test", "127.0.0.10").await;
    assert_eq!(c.result, SpfResult::PermError);
    assert_eq!(c.trace_result, SpfResult::PermError);
    assert_eq!(c.dns_lookups, 11);
}

#[tokio::test]
async fn temperror_when_the_dns_fails() {
    assert_eq!(
        verdict("tempspf.test", "127.0.0.10").await.0,
        SpfResult::TempError
    );
    assert_eq!(
        verdict("timeout.test", "127.0.0.10").await.0,
        SpfResult::TempError
    );
}

#[tokio::test]
async fn helo_identity() {
    let f = fixture();
    let c = f
        .resolver
        .spf_check(&SpfQuery::helo(ip("127.0.0.10"), "example.test"))
        .await;
    assert_eq!(c.result, SpfResult::Pass);
    assert_eq!(c.query.domain(), "example.test");
}

#[tokio::test]
async fn void_lookups_and_macros() {
    let zone = Zone::new()
        .txt(
            "void.test",
            "v=spf1 a:n1.void.test a:n2.void.test a:n3.void.test +all",
        )
        .txt("macro.test", "v=spf1 exists:%{i}.ok.macro.test -all")
        .a("127.0.0.70.ok.macro.test", "127.0.0.2");
    let f = with_zone(zone);
    let c = f
        .resolver
        .spf_check(&SpfQuery::mail_from(ip("127.0.0.1"), "void.test", ""))
        .await;
    assert_eq!(c.result, SpfResult::PermError, "{c:#?}");
    assert_eq!(c.void_lookups, 3);
    let pass = f
        .resolver
        .spf_check(&SpfQuery::mail_from(ip("127.0.0.70"), "macro.test", ""))
        .await;
    assert_eq!(pass.result, SpfResult::Pass);
    assert_eq!(pass.matched.unwrap().term, "exists:%{i}.ok.macro.test");
    let fail = f
        .resolver
        .spf_check(&SpfQuery::mail_from(ip("127.0.0.71"), "macro.test", ""))
        .await;
    assert_eq!(fail.result, SpfResult::Fail);
}

#[tokio::test]
async fn the_trace_shows_every_term() {
    let c = check("example.test", "127.0.0.200").await;
    let steps: Vec<(usize, &str, &str)> = c
        .trace
        .iter()
        .map(|s| (s.depth, s.term.as_str(), s.outcome.as_str()))
        .collect();
    assert_eq!(
        steps[0].1,
        "v=spf1 ip4:127.0.0.10 mx include:_spf.example.test -all"
    );
    assert!(steps.contains(&(0, "ip4:127.0.0.10", "no match")));
    assert!(steps.contains(&(1, "ip4:127.0.1.0/24", "no match")));
    assert!(steps.contains(&(1, "-all", "match: fail")));
    assert!(steps.contains(&(0, "-all", "match: fail")));
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["result"], "fail");
    assert_eq!(json["matched"]["term"], "-all");
    assert_eq!(json["query"]["domain"], "example.test");
}
