//! SPF: records parsed, and evaluated to every result with the term that decided; then RFC
//! 7208 rule by rule.

use std::net::IpAddr;

use relais_dns::fixture::{Fault, Zone};
use relais_dns::spf::SpfResult as R;
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
    // RFC 7208 4.5: two records.
    let c = check("twospf.test", "127.0.0.40").await;
    assert_eq!(c.result, SpfResult::PermError);
    assert_eq!(
        c.trace[0].outcome,
        "permerror: 2 SPF records (RFC 7208 4.5 allows one)"
    );
    let c = check("badspf.test", "127.0.0.10").await;
    assert_eq!(c.result, SpfResult::PermError);
    // include:loop.test includes itself until the 10-lookup limit.
    let c = check("loop.test", "127.0.0.10").await;
    assert_eq!(c.result, SpfResult::PermError);
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

// ---------------------------------------------------------------------------------------------
// RFC 7208, rule by rule. Each test has a zone of its own (names under `.test`, documentation
// addresses) and names the section it checks; the cases follow those of the openspf.org RFC
// 7208 test suite, rewritten for the fixture server.
// ---------------------------------------------------------------------------------------------

/// The HELO name of most cases.
const HELO: &str = "mail.example.test";

/// A fixture server for one zone, and checks against it.
struct Rfc {
    f: crate::support::Fixture,
}

impl Rfc {
    fn new(zone: Zone) -> Rfc {
        Rfc { f: with_zone(zone) }
    }

    /// MAIL FROM `sender` (empty: the null reverse path) after HELO `helo`, from `addr`.
    async fn check(&self, sender: &str, helo: &str, addr: &str) -> SpfCheck {
        let query = SpfQuery::mail_from(ip(addr), sender, helo);
        self.f.resolver.spf_check(&query).await
    }

    /// (sender, address, result), all after HELO [`HELO`].
    async fn results(&self, cases: &[(&str, &str, SpfResult)]) {
        for (sender, addr, want) in cases {
            let c = self.check(sender, HELO, addr).await;
            assert_eq!(c.result, *want, "{sender} from {addr}: {:#?}", c.trace);
        }
    }

    /// (sender, HELO, address, result).
    async fn results_with_helo(&self, cases: &[(&str, &str, &str, SpfResult)]) {
        for (sender, helo, addr, want) in cases {
            let c = self.check(sender, helo, addr).await;
            assert_eq!(
                c.result, *want,
                "{sender} / {helo} from {addr}: {:#?}",
                c.trace
            );
        }
    }

    /// (sender, address, result, explanation).
    async fn explained(&self, cases: &[(&str, &str, SpfResult, Option<&str>)]) {
        for (sender, addr, want, explanation) in cases {
            let c = self.check(sender, HELO, addr).await;
            assert_eq!(
                (c.result, c.explanation.as_deref()),
                (*want, *explanation),
                "{sender} from {addr}: {:#?}",
                c.trace
            );
        }
    }
}

/// A label of `len` characters.
fn label(len: usize) -> String {
    format!("a{}", "1234567890".repeat(7))[..len].to_string()
}

// 4.3: initial processing.

#[tokio::test]
async fn s4_3_malformed_domain_is_none() {
    let long_ok = format!("{}.example.test", label(63));
    let rfc = Rfc::new(
        Zone::new()
            .txt("example.test", "v=spf1 -all")
            .txt(&long_ok, "v=spf1 -all")
            .fault("timeout.test", Fault::Silent),
    );
    let too_long_label = format!("lyme.eater@{}.example.test", label(64));
    let too_long_name = format!("x@{}test", "abcdefghi.".repeat(26));
    rfc.results(&[
        (&too_long_label, "192.0.2.5", R::None),
        (&format!("lyme.eater@{long_ok}"), "192.0.2.5", R::Fail),
        ("lyme.eater@A...example.test", "192.0.2.5", R::None),
        (&too_long_name, "192.0.2.5", R::None),
        ("foo@[192.0.2.5]", "192.0.2.5", R::None),
        ("foo@192.0.2.5", "192.0.2.5", R::None),
    ])
    .await;
    // The null reverse path is checked as postmaster@HELO: a single label or an address
    // literal is no domain.
    rfc.results_with_helo(&[
        ("", "A2345678", "192.0.2.5", R::None),
        ("", "[192.0.2.5]", "192.0.2.5", R::None),
        ("", "example.test", "192.0.2.5", R::Fail),
    ])
    .await;
    // Nothing was asked about the malformed names.
    let asked = rfc.f.server.queries();
    assert!(
        asked.iter().all(|(name, _)| !name.contains("...")),
        "{asked:?}"
    );
}

#[tokio::test]
async fn s4_3_no_local_part_is_postmaster() {
    let rfc = Rfc::new(
        Zone::new()
            .txt("example.test", "v=spf1 -all exp=exp.example.test")
            .txt("exp.example.test", "%{l}"),
    );
    rfc.explained(&[("@example.test", "192.0.2.4", R::Fail, Some("postmaster"))])
        .await;
}

// 3.1 and 4.6.1: what a record may hold.

#[tokio::test]
async fn s3_1_non_ascii_in_the_record_is_permerror() {
    let rfc = Rfc::new(
        Zone::new()
            .txt_strings(
                "hosed.test",
                &[b"v=spf1 a:\xEF\xBB\xBFgarbage.example.test -all"],
            )
            .txt_strings("hosed2.test", &[b"v=spf1 \x80a:example.test -all"])
            .txt_strings("hosed3.test", &[b"v=spf1 a:example.test \x96all"])
            // Other TXT records are none of SPF's business.
            .txt("nothosed.test", "v=spf1 a:example.test -all")
            .txt_strings("nothosed.test", &[b"\x96"]),
    );
    rfc.results(&[
        ("foobar@hosed.test", "192.0.2.4", R::PermError),
        ("foobar@hosed2.test", "192.0.2.4", R::PermError),
        ("foobar@hosed3.test", "192.0.2.4", R::PermError),
        ("foobar@nothosed.test", "192.0.2.4", R::Fail),
    ])
    .await;
}

#[tokio::test]
async fn s4_6_1_terms_are_separated_by_spaces_only() {
    let rfc = Rfc::new(
        Zone::new()
            .txt("ctrl.test", "v=spf1 a:ctrl.test\rptr -all")
            .a("ctrl.test", "192.0.2.3")
            .txt("tab.test", "v=spf1 a:tab.test\t-all")
            .a("tab.test", "192.0.2.3")
            .txt("fine.test", "v=spf1 a  -all  ")
            .a("fine.test", "192.0.2.3"),
    );
    rfc.results(&[
        ("foobar@ctrl.test", "192.0.2.3", R::PermError),
        ("foobar@tab.test", "192.0.2.3", R::PermError),
        ("actually@fine.test", "192.0.2.3", R::Pass),
        ("actually@fine.test", "192.0.2.4", R::Fail),
    ])
    .await;
}

// 4.4: record lookup.

#[tokio::test]
async fn s4_4_txt_lookup_failure_is_temperror() {
    let rfc = Rfc::new(
        Zone::new()
            .txt("txt.test", "v=spf1 -all")
            .fault("timeout.test", Fault::Silent)
            .fault("servfail.test", Fault::ServFail),
    );
    rfc.results(&[
        ("foo@txt.test", "192.0.2.4", R::Fail),
        ("foo@notxt.txt.test", "192.0.2.4", R::None),
        ("foo@timeout.test", "192.0.2.4", R::TempError),
        ("foo@servfail.test", "192.0.2.4", R::TempError),
    ])
    .await;
}

// 4.5: selecting the record.

#[tokio::test]
async fn s4_5_version_is_v_spf1_then_a_space_or_the_end() {
    let rfc = Rfc::new(
        Zone::new()
            .txt("empty.test", "v=spf1")
            .txt("spf10.test", "v=spf10")
            .txt("spf10.test", "v=spf1 mx")
            .mx("spf10.test", 0, "mail.example.test")
            .a("mail.example.test", "192.0.2.4")
            .txt("only10.test", "v=spf10 -all")
            .txt("case.test", "v=SpF1 ~all"),
    );
    rfc.results(&[
        ("foo@empty.test", "192.0.2.4", R::Neutral),
        ("foo@spf10.test", "192.0.2.4", R::Pass),
        ("foo@only10.test", "192.0.2.4", R::None),
        ("foo@case.test", "192.0.2.4", R::SoftFail),
        ("foo@mail.example.test", "192.0.2.4", R::None),
    ])
    .await;
}

#[tokio::test]
async fn s4_5_several_spf_records_are_permerror() {
    let rfc = Rfc::new(
        Zone::new()
            .txt("two.test", "v=spf1 -all")
            .txt("two.test", "v=spf1 +all")
            .txt("case.test", "v=spf1 -all")
            .txt("case.test", "V=sPf1 +all")
            .txt("same.test", "v=spf1 -all")
            .txt("same.test", "v=spf1 -all"),
    );
    rfc.results(&[
        ("foo@two.test", "192.0.2.4", R::PermError),
        ("foo@case.test", "192.0.2.4", R::PermError),
        ("foo@same.test", "192.0.2.4", R::PermError),
    ])
    .await;
}

#[tokio::test]
async fn s4_5_txt_strings_are_joined_without_spaces() {
    let rfc = Rfc::new(
        Zone::new()
            // "v=spf1" "mx" is "v=spf1mx": no SPF record.
            .txt_strings("nospace.test", &[b"v=spf1", b"mx"])
            .txt_strings("split.test", &[b"v=spf1 ip4:192.0.2.", b"4 -all"])
            // An empty TXT record is no SPF record either.
            .txt_strings("empty.test", &[b""])
            .txt_strings("withempty.test", &[b""])
            .txt("withempty.test", "v=spf1 -all"),
    );
    rfc.results(&[
        ("foo@nospace.test", "192.0.2.4", R::None),
        ("foo@split.test", "192.0.2.4", R::Pass),
        ("foo@split.test", "192.0.2.5", R::Fail),
        ("foo@empty.test", "192.0.2.4", R::None),
        ("foo@withempty.test", "192.0.2.4", R::Fail),
    ])
    .await;
}

// 4.6 and 4.7: evaluating the record.

#[tokio::test]
async fn s4_6_a_syntax_error_anywhere_is_permerror() {
    let rfc = Rfc::new(Zone::new().txt("t1.test", "v=spf1 ip4:192.0.2.4 -all moo"));
    // The error is after the term that would match.
    rfc.results(&[("foo@t1.test", "192.0.2.4", R::PermError)])
        .await;
}

#[tokio::test]
async fn s4_6_1_modifier_names_and_mechanism_names() {
    let rfc = Rfc::new(
        Zone::new()
            .txt(
                "t2.test",
                "v=spf1 moo.cow-far_out=man:dog/cat ip4:192.0.2.4 -all",
            )
            .txt(
                "t3.test",
                "v=spf1 moo.cow/far_out=man:dog/cat ip4:192.0.2.4 -all",
            )
            .txt(
                "t4.test",
                "v=spf1 moo.cow:far_out=man:dog/cat ip4:192.0.2.4 -all",
            )
            .txt("t5.test", "v=spf1 ip4:192.0.2.4 redirect:t2.test")
            .txt("t6.test", "v=spf1 1up=foo")
            .txt("t7.test", "v=spf1 =all")
            .txt("t8.test", "v=spf1 IP4:192.0.2.4 -ALL"),
    );
    rfc.results(&[
        ("foo@t2.test", "192.0.2.4", R::Pass),
        ("foo@t3.test", "192.0.2.4", R::PermError),
        ("foo@t4.test", "192.0.2.4", R::PermError),
        // redirect is a modifier, not a mechanism.
        ("foo@t5.test", "192.0.2.4", R::PermError),
        // A modifier name starts with a letter, and is not empty.
        ("foo@t6.test", "192.0.2.4", R::PermError),
        ("foo@t7.test", "192.0.2.4", R::PermError),
        // Names are case-insensitive.
        ("foo@t8.test", "192.0.2.4", R::Pass),
        ("foo@t8.test", "192.0.2.5", R::Fail),
    ])
    .await;
}

#[tokio::test]
async fn s6_1_redirect_is_used_only_when_no_mechanism_matched() {
    let rfc = Rfc::new(
        Zone::new()
            // Never followed: the record has an `all` (else this loop would be a permerror).
            .txt("t5.test", "v=spf1 redirect=t5.test ~all")
            // Written before the mechanisms, applied after them.
            .txt("t6.test", "v=spf1 redirect=t2.test ip4:192.0.2.4")
            .txt("t2.test", "v=spf1 ip4:192.0.2.5 -all"),
    );
    rfc.results(&[
        ("foo@t5.test", "192.0.2.4", R::SoftFail),
        ("foo@t6.test", "192.0.2.4", R::Pass),
        ("foo@t6.test", "192.0.2.5", R::Pass),
        ("foo@t6.test", "192.0.2.6", R::Fail),
    ])
    .await;
    let c = rfc.check("foo@t5.test", HELO, "192.0.2.4").await;
    assert_eq!(c.dns_lookups, 0, "{:#?}", c.trace);
}

#[tokio::test]
async fn s4_7_nothing_matched_is_neutral() {
    let rfc = Rfc::new(Zone::new().txt("t7.test", "v=spf1 ip4:192.0.2.4"));
    rfc.results(&[
        ("foo@t7.test", "192.0.2.5", R::Neutral),
        ("foo@t7.test", "192.0.2.4", R::Pass),
    ])
    .await;
}

#[tokio::test]
async fn s7_1_a_domain_spec_ends_in_a_top_label_or_a_macro() {
    let rfc = Rfc::new(
        Zone::new()
            .txt("t1.test", "v=spf1 a:foo-bar -all")
            .txt("t2.test", "v=spf1 a:museum")
            .txt("t3.test", "v=spf1 a:museum.")
            .txt("t4.test", "v=spf1 a:abc.123")
            .txt("t5.test", "v=spf1 a:192.0.2.4")
            .txt("t6.test", "v=spf1 a:example.-test")
            .txt("t7.test", "v=spf1 a:example.test:8080")
            .txt("t8.test", "v=spf1 mx:example.-test")
            .txt("t9.test", "v=spf1 mx:abc.123")
            .txt("t16.test", "v=spf1 mx:example.test:8080")
            .txt_strings("t10.test", &[b"v=spf1 a:foo.example.test\0"])
            .txt_strings("t11.test", &[b"v=spf1 mx:foo.example.test\0"])
            // A top label may hold hyphens (IDN TLDs), a domain may hold ':' and '/'.
            .txt("t12.test", "v=spf1 a:foo.example.xn--zckzah -all")
            .a("foo.example.xn--zckzah", "192.0.2.4")
            .txt("t13.test", "v=spf1 a:foo:bar/baz.example.test")
            .a("foo:bar/baz.example.test", "192.0.2.4")
            .txt("t14.test", "v=spf1 mx:foo:bar/baz.example.test")
            .mx("foo:bar/baz.example.test", 0, "foo:bar/baz.example.test")
            .txt("t15.test", "v=spf1 a:%{d} -all")
            .a("t15.test", "192.0.2.4"),
    );
    rfc.results(&[
        ("foo@t1.test", "192.0.2.4", R::PermError),
        ("foo@t2.test", "192.0.2.4", R::PermError),
        ("foo@t3.test", "192.0.2.4", R::PermError),
        ("foo@t4.test", "192.0.2.4", R::PermError),
        ("foo@t5.test", "192.0.2.4", R::PermError),
        ("foo@t6.test", "192.0.2.4", R::PermError),
        ("foo@t7.test", "192.0.2.4", R::PermError),
        ("foo@t8.test", "192.0.2.4", R::PermError),
        ("foo@t9.test", "192.0.2.4", R::PermError),
        ("foo@t16.test", "192.0.2.4", R::PermError),
        ("foo@t10.test", "192.0.2.5", R::PermError),
        ("foo@t11.test", "192.0.2.5", R::PermError),
        ("foo@t12.test", "192.0.2.4", R::Pass),
        ("foo@t13.test", "192.0.2.4", R::Pass),
        ("foo@t13.test", "::ffff:192.0.2.4", R::Pass),
        ("foo@t14.test", "192.0.2.4", R::Pass),
        ("foo@t14.test", "::ffff:192.0.2.4", R::Pass),
        ("foo@t15.test", "192.0.2.4", R::Pass),
    ])
    .await;
}

#[tokio::test]
async fn s4_8_a_target_that_cannot_be_a_name_matches_nothing() {
    let rfc = Rfc::new(
        Zone::new()
            .txt("t10.test", "v=spf1 a:mail.example...test -all")
            .txt(
                "t11.test",
                &format!("v=spf1 a:{}.example.test -all", label(64)),
            )
            .txt("t12.test", "v=spf1 a:%{H}.bar -all"),
    );
    rfc.results(&[
        ("foo@t10.test", "192.0.2.4", R::Fail),
        ("foo@t11.test", "192.0.2.4", R::Fail),
    ])
    .await;
    // %{H} escapes each '%' as "%25": a label of 66 characters.
    rfc.results_with_helo(&[("foo@t12.test", &"%".repeat(22), "192.0.2.4", R::Fail)])
        .await;
}

// 5.1: all.

#[tokio::test]
async fn s5_1_all_takes_no_argument() {
    let rfc = Rfc::new(
        Zone::new()
            .txt("e1.test", "v=spf1 -all.")
            .txt("e2.test", "v=spf1 -all:foobar")
            .txt("e3.test", "v=spf1 -all/8")
            .txt("e4.test", "v=spf1 ?all")
            .txt("e5.test", "v=spf1 all -all"),
    );
    rfc.results(&[
        ("foo@e1.test", "192.0.2.4", R::PermError),
        ("foo@e2.test", "192.0.2.4", R::PermError),
        ("foo@e3.test", "192.0.2.4", R::PermError),
        ("foo@e4.test", "192.0.2.4", R::Neutral),
        // The first match decides.
        ("foo@e5.test", "192.0.2.4", R::Pass),
    ])
    .await;
}

// 5.2: include.

#[tokio::test]
async fn s5_2_include_matches_only_on_pass() {
    let rfc = Rfc::new(
        Zone::new()
            .txt("ip5.test", "v=spf1 ip4:192.0.2.5 -all")
            .txt("ip6.test", "v=spf1 ip4:192.0.2.6 ~all")
            .txt("ip7.test", "v=spf1 ip4:192.0.2.7 ?all")
            .fault("ip8.test", Fault::Silent)
            .txt("erehwon.test", "v=spfl am not an SPF record")
            .txt("e1.test", "v=spf1 include:ip5.test ~all")
            .txt("e2.test", "v=spf1 include:ip6.test all")
            .txt("e3.test", "v=spf1 include:ip7.test -all")
            .txt("e4.test", "v=spf1 include:ip8.test -all")
            .txt("e5.test", "v=spf1 include:e6.test -all")
            .txt("e6.test", "v=spf1 include +all")
            .txt("e7.test", "v=spf1 include:erehwon.test -all")
            .txt("e8.test", "v=spf1 include: -all")
            .txt("e9.test", "v=spf1 include:ip5.test/24 -all")
            .txt("e10.test", "v=spf1 -include:ip5.test +all"),
    );
    rfc.results(&[
        // fail, softfail and neutral inside: no match.
        ("foo@e1.test", "192.0.2.4", R::SoftFail),
        ("foo@e2.test", "192.0.2.4", R::Pass),
        ("foo@e3.test", "192.0.2.4", R::Fail),
        // pass inside: a match, with the include's own qualifier.
        ("foo@e1.test", "192.0.2.5", R::Pass),
        ("foo@e10.test", "192.0.2.5", R::Fail),
        // temperror stays temperror; permerror and none are permerror.
        ("foo@e4.test", "192.0.2.4", R::TempError),
        ("foo@e5.test", "192.0.2.4", R::PermError),
        ("foo@e7.test", "192.0.2.4", R::PermError),
        // include needs a domain, and takes no prefix length.
        ("foo@e6.test", "192.0.2.4", R::PermError),
        ("foo@e8.test", "192.0.2.4", R::PermError),
        ("foo@e9.test", "192.0.2.4", R::PermError),
    ])
    .await;
}

// 5.3: a.

/// The zone of the `a` and `mx` tests: (zone, the mechanism's name).
fn host_zone(mech: &str) -> Zone {
    // Each record is "v=spf1 {mech}{arg}", and for mx, each domain is its own MX host.
    let with = |zone: Zone, name: &str, arg: &str| {
        let zone = zone.txt(name, &format!("v=spf1 {mech}{arg}"));
        if mech == "mx" {
            zone.mx(name, 0, name)
        } else {
            zone
        }
    };
    let zone = Zone::new().a("mail.example.test", "192.0.2.4");
    let zone = with(zone, "e1.test", "/0 -all");
    let zone = with(zone, "e2.test", "/0 -all")
        .a("e2.test", "198.51.100.1")
        .aaaa("e2.test", "2001:db8:1234::2");
    let zone = with(zone, "e2a.test", "//0 -all").aaaa("e2a.test", "2001:db8:1234::1");
    let zone = with(zone, "e2b.test", "//0 -all").a("e2b.test", "198.51.100.1");
    let zone = with(zone, "e6.test", "//33 -all");
    let zone = with(zone, "e6a.test", "/33 -all");
    let zone = with(zone, "e7.test", "//129 -all");
    let dual = |zone: Zone, name: &str, arg: &str| {
        with(zone, name, arg)
            .a(name, "192.0.2.5")
            .aaaa(name, "2001:db8:1234::dead:beef")
    };
    let zone = dual(zone, "e8.test", "/24//64 -all");
    let zone = dual(zone, "e8e.test", "/24/64 -all");
    let zone = dual(zone, "e8a.test", "/24 -all");
    let zone = dual(zone, "e8b.test", "//64 -all");
    let zone = with(zone, "e13.test", ": -all");
    let zone = zone
        .txt("ipv6.test", &format!("v=spf1 {mech} -all"))
        .aaaa("ipv6.test", "2001:db8:1234::1")
        .a("ipv6.test", "198.51.100.1");
    let zone = if mech == "mx" {
        zone.mx("ipv6.test", 0, "ipv6.test")
    } else {
        zone
    };
    // A target with several addresses; for mx, the MX host has them.
    let zone = zone.txt("e10.test", &format!("v=spf1 {mech}:foo.example.test/24"));
    if mech == "mx" {
        zone.mx("foo.example.test", 0, "foo1.example.test")
            .a("foo1.example.test", "198.51.100.1")
            .a("foo1.example.test", "192.0.2.5")
    } else {
        zone.a("foo.example.test", "198.51.100.1")
            .a("foo.example.test", "192.0.2.5")
    }
}

/// The cases the `a` and `mx` mechanisms share (RFC 7208 5.3 and 5.4).
const HOST_CASES: &[(&str, &str, SpfResult)] = &[
    // No address at all: no match, even with /0.
    ("foo@e1.test", "192.0.2.4", R::Fail),
    // /0 matches any address of the client's family, and only of it.
    ("foo@e2.test", "192.0.2.4", R::Pass),
    ("foo@e2.test", "2001:db8:1234::1", R::Fail),
    ("foo@e2a.test", "192.0.2.4", R::Fail),
    ("foo@e2a.test", "::ffff:192.0.2.4", R::Fail),
    ("foo@e2a.test", "2001:db8:1234::1", R::Pass),
    ("foo@e2b.test", "2001:db8:1234::1", R::Fail),
    ("foo@ipv6.test", "2001:db8:1234::1", R::Pass),
    // Prefix lengths: /33 is an IPv6 length after //, never an IPv4 one.
    ("foo@e6.test", "192.0.2.4", R::Fail),
    ("foo@e6a.test", "192.0.2.4", R::PermError),
    ("foo@e7.test", "192.0.2.4", R::PermError),
    // Dual lengths.
    ("foo@e8.test", "192.0.2.4", R::Pass),
    ("foo@e8.test", "2001:db8:1234::cafe:babe", R::Pass),
    ("foo@e8e.test", "192.0.2.4", R::PermError),
    ("foo@e8a.test", "2001:db8:1234::cafe:babe", R::Fail),
    ("foo@e8b.test", "192.0.2.4", R::Fail),
    // Any address found may match.
    ("foo@e10.test", "192.0.2.4", R::Pass),
    // An empty domain is a syntax error.
    ("foo@e13.test", "192.0.2.4", R::PermError),
];

#[tokio::test]
async fn s5_3_a_matches_addresses_of_the_client_family() {
    Rfc::new(host_zone("a")).results(HOST_CASES).await;
}

// 5.4: mx.

#[tokio::test]
async fn s5_4_mx_matches_addresses_of_the_mx_hosts() {
    Rfc::new(host_zone("mx")).results(HOST_CASES).await;
}

#[tokio::test]
async fn s5_4_mx_without_mx_records_does_not_fall_back_to_a() {
    let rfc = Rfc::new(
        Zone::new()
            .txt("e4.test", "v=spf1 mx")
            .a("e4.test", "192.0.2.4")
            .txt("mail.example.test", "v=spf1 mx")
            .a("mail.example.test", "192.0.2.4")
            .mx("mail.example.test", 0, "."),
    );
    rfc.results(&[("foo@e4.test", "192.0.2.4", R::Neutral)])
        .await;
    // A null MX names no host (the null reverse path: postmaster@HELO).
    rfc.results_with_helo(&[("", "mail.example.test", "192.0.2.4", R::Neutral)])
        .await;
}

// 5.5: ptr.

#[tokio::test]
async fn s5_5_ptr_matches_validated_names_under_the_target() {
    let rfc = Rfc::new(
        Zone::new()
            .a("mail.example.test", "192.0.2.4")
            .aaaa("mail.example.test", "2001:db8::1")
            .txt("e1.example.test", "v=spf1 ptr/0 -all")
            .txt("e2.example.test", "v=spf1 ptr:example.test -all")
            .ptr("192.0.2.4", "e3.example.test")
            .ptr("192.0.2.4", "e4.example.test")
            .ptr("192.0.2.4", "mail.example.test")
            .ptr("2001:db8:cafe::1", "e3.example.test")
            .ptr("2001:db8::1", "mail.Example.test")
            .txt("e3.example.test", "v=spf1 ptr -all")
            .a("e3.example.test", "192.0.2.4")
            .aaaa("e3.example.test", "2001:db8:cafe::1")
            // Named by the PTR record, but without the address: not validated.
            .txt("e4.example.test", "v=spf1 ptr -all")
            .txt("e5.example.test", "v=spf1 ptr:")
            .txt("e6.example.test", "v=spf1 ptr:example.Test -all")
            .fault("5.2.0.192.in-addr.arpa", Fault::ServFail)
            .txt("e7.example.test", "v=spf1 ptr -all"),
    );
    rfc.results(&[
        ("foo@e1.example.test", "192.0.2.4", R::PermError),
        ("foo@e2.example.test", "192.0.2.4", R::Pass),
        ("foo@e3.example.test", "192.0.2.4", R::Pass),
        ("foo@e4.example.test", "192.0.2.4", R::Fail),
        ("foo@e3.example.test", "2001:db8:cafe::1", R::Pass),
        ("foo@e5.example.test", "192.0.2.4", R::PermError),
        ("bar@e6.example.test", "2001:db8::1", R::Pass),
        // A failed PTR query is no match, not a temperror.
        ("foo@e7.example.test", "192.0.2.5", R::Fail),
    ])
    .await;
}

#[tokio::test]
async fn s5_5_ptr_after_mx_and_redirect() {
    let rfc = Rfc::new(
        Zone::new()
            .txt("example.org.test", "v=spf1 mx redirect=_spf.example.com.test")
            .mx("example.org.test", 10, "smtp.example.org.test")
            .mx("example.org.test", 10, "smtp1.example.com.test")
            .a("smtp.example.org.test", "198.51.100.2")
            .aaaa("smtp.example.org.test", "2001:db8:ff0:100::3")
            .a("smtp1.example.com.test", "192.0.2.26")
            .aaaa("smtp1.example.com.test", "2001:db8:ff0:200::2")
            .ptr("2001:db8:ff0:100::2", "smtp6-v.fe.example.org.test")
            .aaaa("smtp6-v.fe.example.org.test", "2001:db8:ff0:100::2")
            .txt(
                "_spf.example.com.test",
                "v=spf1 ptr:fe.example.org.test ptr:sgp.example.com.test exp=_expspf.example.org.test -all",
            )
            .txt(
                "_expspf.example.org.test",
                "Sender domain not allowed from this host. Please see http://www.example.test/Why?s=mfrom&id=%{S}&ip=%{C}&r=%{R}",
            ),
    );
    rfc.results_with_helo(&[(
        "test@example.org.test",
        "example.org.test",
        "2001:db8:ff0:100::2",
        R::Pass,
    )])
    .await;
    let c = rfc
        .check(
            "test@example.org.test",
            "example.org.test",
            "2001:db8:ff0:100::3",
        )
        .await;
    assert_eq!(c.result, R::Pass);
    let c = rfc
        .check(
            "test@example.org.test",
            "example.org.test",
            "2001:db8:ff0:100::4",
        )
        .await;
    assert_eq!(
        (c.result, c.explanation.as_deref()),
        (
            R::Fail,
            Some(
                "Sender domain not allowed from this host. Please see http://www.example.test/Why?s=mfrom&id=test%40example.org.test&ip=2001%3Adb8%3Aff0%3A100%3A%3A4&r=localhost"
            )
        )
    );
}

// 5.6: ip4 and ip6.

#[tokio::test]
async fn s5_6_ip4_networks_are_strict() {
    let rfc = Rfc::new(
        Zone::new()
            .txt("e1.test", "v=spf1 ip4:198.51.100.1/0 -all")
            .txt("e2.test", "v=spf1 ip4:192.0.2.4/32 -all")
            .txt("e3.test", "v=spf1 ip4:192.0.2.4/33 -all")
            .txt("e4.test", "v=spf1 ip4:192.0.2.4/032 -all")
            .txt("e5.test", "v=spf1 ip4")
            .txt("e6.test", "v=spf1 ip4:192.0.2.4//32")
            .txt("e8.test", "v=spf1 ip4:192.0.2.4:8080")
            .txt("e9.test", "v=spf1 ip4:192.0.2")
            .txt("e10.test", "v=spf1 ip4:192.0.2.300 -all")
            .txt("e11.test", "v=spf1 ip4:192.0.2.04 -all")
            .txt("e12.test", "v=spf1 ip4:192.0.2.0/24 -all"),
    );
    rfc.results(&[
        ("foo@e1.test", "192.0.2.4", R::Pass),
        ("foo@e2.test", "192.0.2.4", R::Pass),
        ("foo@e12.test", "192.0.2.4", R::Pass),
        ("foo@e12.test", "192.0.3.4", R::Fail),
        // An IPv6 client never matches ip4, /0 included.
        ("foo@e1.test", "2001:db8::1", R::Fail),
        ("foo@e3.test", "192.0.2.4", R::PermError),
        ("foo@e4.test", "192.0.2.4", R::PermError),
        ("foo@e5.test", "192.0.2.4", R::PermError),
        ("foo@e6.test", "192.0.2.4", R::PermError),
        ("foo@e8.test", "192.0.2.4", R::PermError),
        ("foo@e9.test", "192.0.2.4", R::PermError),
        ("foo@e10.test", "192.0.2.4", R::PermError),
        ("foo@e11.test", "192.0.2.4", R::PermError),
    ])
    .await;
}

#[tokio::test]
async fn s5_6_ip6_networks_are_strict() {
    let rfc = Rfc::new(
        Zone::new()
            .txt("e1.test", "v=spf1 -all ip6")
            .txt("e2.test", "v=spf1 ip6:::198.51.100.1/0")
            .txt("e3.test", "v=spf1 ip6:::198.51.100.1/129")
            .txt("e4.test", "v=spf1 ip6:::198.51.100.1//33")
            .txt("e5.test", "v=spf1 ip6:2001:DB8:8000::/33")
            .txt("e6.test", "v=spf1 ip6::2001::DB8"),
    );
    rfc.results(&[
        ("foo@e1.test", "192.0.2.4", R::PermError),
        // An IPv4 client never matches ip6, /0 included.
        ("foo@e2.test", "192.0.2.4", R::Neutral),
        ("foo@e2.test", "2001:db8:deaf::cab:fee", R::Pass),
        ("foo@e3.test", "192.0.2.4", R::PermError),
        ("foo@e4.test", "192.0.2.4", R::PermError),
        ("foo@e5.test", "2001:db8:8000::", R::Pass),
        ("foo@e5.test", "2001:db8:7fff::", R::Neutral),
        ("foo@e5.test", "192.0.2.4", R::Neutral),
        ("foo@e6.test", "192.0.2.4", R::PermError),
    ])
    .await;
}

#[tokio::test]
async fn s5_ipv4_mapped_ipv6_clients_are_ipv4() {
    let rfc = Rfc::new(
        Zone::new()
            .txt("e7.test", "v=spf1 -ip4:192.0.2.4 ip6:::FFFF:192.0.2.4")
            .txt("e2.test", "v=spf1 ip6:::198.51.100.1/0")
            .txt("e3.test", "v=spf1 exists:%{ir}.%{v}.list.test -all")
            .a("4.2.0.192.in-addr.list.test", "127.0.0.2"),
    );
    rfc.results(&[
        ("foo@e7.test", "::ffff:192.0.2.4", R::Fail),
        ("foo@e2.test", "::ffff:192.0.2.4", R::Neutral),
        // Macros see the IPv4 address too.
        ("foo@e3.test", "::ffff:192.0.2.4", R::Pass),
    ])
    .await;
}

// 5.7: exists.

#[tokio::test]
async fn s5_7_exists_asks_for_an_a_record() {
    let rfc = Rfc::new(
        Zone::new()
            .a("mail.example.test", "192.0.2.4")
            .aaaa("mail6.example.test", "2001:db8:cafe::4")
            .fault("err.example.test", Fault::Silent)
            .txt("e1.test", "v=spf1 exists:")
            .txt("e2.test", "v=spf1 exists")
            .txt("e3.test", "v=spf1 exists:mail.example.test/24")
            .txt("e4.test", "v=spf1 exists:mail.example.test")
            .txt("e5.test", "v=spf1 exists:mail6.example.test -all")
            .txt("e6.test", "v=spf1 exists:err.example.test -all"),
    );
    rfc.results(&[
        ("foo@e1.test", "192.0.2.4", R::PermError),
        ("foo@e2.test", "192.0.2.4", R::PermError),
        ("foo@e3.test", "192.0.2.4", R::PermError),
        ("foo@e4.test", "192.0.2.4", R::Pass),
        // Even for an IPv6 client the question is A, never AAAA.
        ("foo@e4.test", "2001:db8:cafe::3", R::Pass),
        ("foo@e5.test", "2001:db8:cafe::3", R::Fail),
        // A DNS time-out is a temperror.
        ("foo@e6.test", "2001:db8:cafe::3", R::TempError),
    ])
    .await;
}

// 6: modifiers.

/// The zone of the modifier tests.
fn modifier_zone() -> Zone {
    Zone::new()
        .a("mail.example.test", "192.0.2.4")
        .txt("e1.test", "v=spf1 exp=exp1.example.test redirect=e2.test")
        .txt("e2.test", "v=spf1 -all")
        .txt("e3.test", "v=spf1 exp=exp1.example.test redirect=e4.test")
        .txt("e4.test", "v=spf1 -all exp=exp2.example.test")
        .txt("exp1.example.test", "No-see-um")
        .txt("exp2.example.test", "See me.")
        .txt("exp3.example.test", "Correct!")
        .txt("exp4.example.test", "%{l} in implementation")
        .txt(
            "e7.test",
            "v=spf1 include:e3.test -all exp=exp3.example.test",
        )
        .txt("e8.test", "v=spf1 -all exp=exp4.example.test")
        .txt("e9.test", "v=spf1 -all foo=%abc")
        .txt("e10.test", "v=spf1 redirect=erehwon.example.test")
        .txt("e11.test", "v=spf1 -all exp=e11msg.example.test")
        .txt(
            "e11msg.example.test",
            "Answer a fool according to his folly.",
        )
        .txt(
            "e11msg.example.test",
            "Do not answer a fool according to his folly.",
        )
        .txt("e12.test", "v=spf1 exp= -all")
        .txt("e13.test", "v=spf1 exp=e13msg.example.test -all")
        .txt("e13msg.example.test", "The %{x}-files.")
        .txt(
            "e14.test",
            "v=spf1 exp=e13msg.example.test -all exp=e11msg.example.test",
        )
        .txt(
            "e15.test",
            "v=spf1 redirect=e12.test -all redirect=e12.test",
        )
        .txt("e16.test", "v=spf1 exp=-all")
        .txt("e17.test", "v=spf1 redirect=-all ?all")
        .txt("e18.test", "v=spf1 ?all redirect=")
        .txt("e19.test", "v=spf1 default=pass")
        .txt("e20.test", "v=spf1 default=+")
        .txt("e21.test", "v=spf1 exp=e21msg.example.test -all")
        .fault("e21msg.example.test", Fault::Silent)
        .txt("e22.test", "v=spf1 exp=mail.example.test -all")
        .txt(
            "e23.test",
            "v=spf1 a:erehwon.example.test a:foobar.test exp=nxdomain.test -all",
        )
        .txt("e24.test", "v=spf1 redirect=testimplicit.example.test")
        .a("e24.test", "192.0.2.1")
        .txt("testimplicit.example.test", "v=spf1 a -all")
        .a("testimplicit.example.test", "192.0.2.2")
        .txt("e25.test", "v=spf1 exp=exp2.example.test -all")
        .txt("e26.test", "v=spf1 ?all exp=exp2.example.test")
        .txt("nonascii.test", "v=spf1 exp=badexp.example.test -all")
        .txt_strings("badexp.example.test", &[b"\xEF\xBB\xBFExplanation"])
        .txt("tworecs.test", "v=spf1 exp=twoexp.example.test -all")
        .txt("twoexp.example.test", "one")
        .txt("twoexp.example.test", "two")
        .txt("split.test", "v=spf1 exp=splitexp.example.test -all")
        .txt_strings("splitexp.example.test", &[b"Not ", b"from ", b"%{i}."])
}

#[tokio::test]
async fn s6_redirect_and_exp_appear_at_most_once() {
    let rfc = Rfc::new(modifier_zone());
    rfc.results(&[
        ("foo@e14.test", "192.0.2.4", R::PermError),
        ("foo@e15.test", "192.0.2.4", R::PermError),
    ])
    .await;
}

#[tokio::test]
async fn s6_modifier_syntax_errors_are_permerror() {
    let rfc = Rfc::new(modifier_zone());
    rfc.results(&[
        // exp= and redirect= need a domain-spec.
        ("foo@e12.test", "192.0.2.4", R::PermError),
        ("foo@e16.test", "192.0.2.4", R::PermError),
        ("foo@e17.test", "192.0.2.4", R::PermError),
        ("foo@e18.test", "192.0.2.4", R::PermError),
        // An unknown modifier must be a valid macro-string.
        ("foo@e9.test", "192.0.2.4", R::PermError),
    ])
    .await;
}

#[tokio::test]
async fn s6_3_unknown_modifiers_are_ignored() {
    let rfc = Rfc::new(modifier_zone());
    rfc.results(&[
        ("foo@e19.test", "192.0.2.4", R::Neutral),
        ("foo@e20.test", "192.0.2.4", R::Neutral),
    ])
    .await;
}

#[tokio::test]
async fn s6_1_redirect_to_a_domain_without_a_record_is_permerror() {
    let rfc = Rfc::new(modifier_zone());
    rfc.results(&[("foo@e10.test", "192.0.2.4", R::PermError)])
        .await;
}

#[tokio::test]
async fn s6_1_redirect_changes_the_current_domain() {
    let rfc = Rfc::new(modifier_zone());
    rfc.results_with_helo(&[
        ("bar@e24.test", "e24.test", "192.0.2.2", R::Pass),
        ("bar@e24.test", "e24.test", "192.0.2.1", R::Fail),
    ])
    .await;
}

#[tokio::test]
async fn s6_2_the_explanation_comes_from_the_record_that_failed() {
    let rfc = Rfc::new(modifier_zone());
    rfc.explained(&[
        ("foo@e25.test", "192.0.2.4", R::Fail, Some("See me.")),
        // Only a fail is explained.
        ("foo@e26.test", "192.0.2.4", R::Neutral, None),
        // Not from a record that redirected...
        ("foo@e1.test", "192.0.2.4", R::Fail, None),
        ("foo@e3.test", "192.0.2.4", R::Fail, Some("See me.")),
        // ... nor from an included one.
        ("foo@e7.test", "192.0.2.4", R::Fail, Some("Correct!")),
        // Macros in the text; a sender's local part may hold a space.
        (
            "Macro Error@e8.test",
            "192.0.2.4",
            R::Fail,
            Some("Macro Error in implementation"),
        ),
        // A TXT record in several strings is one text.
        (
            "foo@split.test",
            "192.0.2.4",
            R::Fail,
            Some("Not from 192.0.2.4."),
        ),
    ])
    .await;
}

#[tokio::test]
async fn s6_2_a_problem_with_the_explanation_leaves_none() {
    let rfc = Rfc::new(modifier_zone());
    rfc.explained(&[
        // Several TXT records, none, a DNS time-out.
        ("foo@e11.test", "192.0.2.4", R::Fail, None),
        ("foo@tworecs.test", "192.0.2.4", R::Fail, None),
        ("foo@e22.test", "192.0.2.4", R::Fail, None),
        ("foo@e21.test", "192.0.2.4", R::Fail, None),
        // A syntax error in the text, text that is not ASCII.
        ("foo@e13.test", "192.0.2.4", R::Fail, None),
        ("foo@nonascii.test", "192.0.2.4", R::Fail, None),
    ])
    .await;
}

#[tokio::test]
async fn s6_2_the_explanation_lookup_is_not_a_void_lookup() {
    let rfc = Rfc::new(modifier_zone());
    // Two void lookups, then exp= names a domain that does not exist.
    let c = rfc.check("foo@e23.test", HELO, "192.0.2.4").await;
    assert_eq!((c.result, c.explanation), (R::Fail, None));
    assert_eq!((c.dns_lookups, c.void_lookups), (2, 2));
}

// 7: macros.

fn macro_zone() -> Zone {
    let long_sender_domain = "somewhat.long.ex.example.test";
    let long_target = format!("{}example.test", format!("{long_sender_domain}.").repeat(8));
    Zone::new()
        .txt(
            "example.test.d.spf.example.test",
            "v=spf1 redirect=a.spf.example.test",
        )
        .txt(
            "a.spf.example.test",
            "v=spf1 include:o.spf.example.test. ~all",
        )
        .txt("o.spf.example.test", "v=spf1 ip4:192.0.2.40")
        .a("msgbas2x.cos.example.test", "192.0.2.40")
        .a("example.test", "198.51.100.76")
        .txt("example.test", "v=spf1 redirect=%{d}.d.spf.example.test.")
        .txt("exp.example.test", "v=spf1 exp=msg.example.test. -all")
        .txt("msg.example.test", "This is a test.")
        .txt(
            "e1.example.test",
            "v=spf1 -exists:%(ir).sbl.example.test ?all",
        )
        .txt(
            "e1e.example.test",
            "v=spf1 exists:foo%(ir).sbl.example.test ?all",
        )
        .txt(
            "e1t.example.test",
            "v=spf1 exists:foo%.sbl.example.test ?all",
        )
        .txt(
            "e1a.example.test",
            "v=spf1 a:macro%%percent%_%_space%-url-space.example.test -all",
        )
        .a("macro%percent  space%20url-space.example.test", "192.0.2.4")
        .txt("e2.example.test", "v=spf1 -all exp=%{r}.example.test")
        .txt("e3.example.test", "v=spf1 -all exp=%{ir}.example.test")
        .txt(
            "40.2.0.192.example.test",
            "Connections from %{c} not authorized.",
        )
        .txt(
            long_sender_domain,
            "v=spf1 -all exp=foobar.%{o}.%{o}.%{o}.%{o}.%{o}.%{o}.%{o}.%{o}.example.test",
        )
        .txt(&long_target, "Congratulations!  That was tricky.")
        .txt("e4.example.test", "v=spf1 -all exp=e4msg.example.test")
        .txt("e4msg.example.test", "%{c} is queried as %{ir}.%{v}.arpa")
        .txt("e5.example.test", "v=spf1 a:%{a}.example.test -all")
        .txt("e6.example.test", "v=spf1 -all exp=e6msg.example.test")
        .txt("e6msg.example.test", "connect from %{p}")
        .a("mx.example.test", "192.0.2.41")
        .a("mx.example.test", "192.0.2.42")
        .aaaa("mx.example.test", "2001:db8:cafe::2")
        .aaaa("mx.example.test", "2001:db8:cafe::3")
        .ptr("192.0.2.40", "mx.example.test")
        .ptr("192.0.2.41", "mx.example.test")
        .ptr("192.0.2.42", "mx.example.test")
        .ptr("192.0.2.42", "mx.e7.example.test")
        .ptr("2001:db8:cafe::1", "mx.example.test")
        .ptr("2001:db8:cafe::3", "mx.example.test")
        .a("mx.e7.example.test", "192.0.2.42")
        .a("mx.e7.example.test.should.example.test", "127.0.0.2")
        .a("mx.example.test.ok.example.test", "127.0.0.2")
        .txt(
            "e7.example.test",
            "v=spf1 exists:%{p}.should.example.test ~exists:%{p}.ok.example.test",
        )
        .txt("e8.example.test", "v=spf1 -all exp=msg8.%{D2}")
        .txt("msg8.example.test", "http://example.test/why.html?l=%{L}")
        .txt("e9.example.test", "v=spf1 a:%{H} -all")
        .txt(
            "e10.example.test",
            "v=spf1 -include:_spfh.%{d2} ip4:192.0.2.0/24 -all",
        )
        .txt("_spfh.example.test", "v=spf1 -a:%{h} +all")
        .txt("e11.example.test", "v=spf1 exists:%{i}.%{l2r-}.user.%{d2}")
        .a("192.0.2.4.gladstone.philip.user.example.test", "127.0.0.2")
        .txt("e12.example.test", "v=spf1 exists:%{l2r+-}.user.%{d2}")
        .a("bar.foo.user.example.test", "127.0.0.2")
}

/// The HELO name of the macro tests.
const MSGBAS: &str = "msgbas2x.cos.example.test";

#[tokio::test]
async fn s7_1_macro_syntax_errors_are_permerror() {
    let rfc = Rfc::new(macro_zone());
    rfc.results_with_helo(&[
        // c, r and t only in the explanation text.
        ("test@e2.example.test", MSGBAS, "192.0.2.40", R::PermError),
        // '%' followed by anything but '{', '%', '_', '-'.
        ("test@e1.example.test", MSGBAS, "192.0.2.40", R::PermError),
        ("test@e1e.example.test", MSGBAS, "192.0.2.40", R::PermError),
        ("test@e1t.example.test", MSGBAS, "192.0.2.40", R::PermError),
        // An unknown macro letter.
        (
            "test@e5.example.test",
            MSGBAS,
            "2001:db8:cafe::c0a8:da28",
            R::PermError,
        ),
    ])
    .await;
}

#[tokio::test]
async fn s7_3_macros_expand_in_domains() {
    let rfc = Rfc::new(macro_zone());
    rfc.results_with_helo(&[
        // %{d}, and a trailing dot that changes nothing.
        ("test@example.test", MSGBAS, "192.0.2.40", R::Pass),
        // %% %_ %-
        ("test@e1a.example.test", HELO, "192.0.2.4", R::Pass),
        // %{h}, and a HELO that is no domain: the mechanism just does not match.
        ("test@e9.example.test", MSGBAS, "192.0.2.40", R::Pass),
        (
            "test@e9.example.test",
            "JUMPIN' JUPITER",
            "192.0.2.40",
            R::Fail,
        ),
        (
            "test@e9.example.test",
            "[192.0.2.40]",
            "192.0.2.40",
            R::Fail,
        ),
        ("test@e10.example.test", "OEMCOMPUTER", "192.0.2.4", R::Fail),
        // Splitting on other delimiters, reversing, keeping the right-hand parts.
        (
            "philip-gladstone-test@e11.example.test",
            HELO,
            "192.0.2.4",
            R::Pass,
        ),
        (
            "foo-bar+zip+quux@e12.example.test",
            HELO,
            "192.0.2.4",
            R::Pass,
        ),
        // %{p}: a validated name under the domain is preferred.
        ("test@e7.example.test", MSGBAS, "192.0.2.42", R::Pass),
    ])
    .await;
}

#[tokio::test]
async fn s7_3_macros_expand_in_explanations() {
    let rfc = Rfc::new(macro_zone());
    let v6_reversed = format!("1.{}e.f.a.c.8.b.d.0.1.0.0.2", "0.".repeat(19));
    let v6_explanation = format!("2001:db8:cafe::1 is queried as {v6_reversed}.ip6.arpa");
    let cases: &[(&str, &str, Option<&str>)] = &[
        // A trailing dot stays in the text.
        (
            "test@exp.example.test",
            "192.0.2.40",
            Some("This is a test."),
        ),
        // %{ir} in the exp= domain, %{c} in the text.
        (
            "test@e3.example.test",
            "192.0.2.40",
            Some("Connections from 192.0.2.40 not authorized."),
        ),
        (
            "test@e4.example.test",
            "192.0.2.40",
            Some("192.0.2.40 is queried as 40.2.0.192.in-addr.arpa"),
        ),
        (
            "test@e4.example.test",
            "2001:db8:cafe::1",
            Some(&v6_explanation),
        ),
        // %{p}: "unknown" without a validated name.
        (
            "test@e6.example.test",
            "192.0.2.40",
            Some("connect from unknown"),
        ),
        (
            "test@e6.example.test",
            "192.0.2.41",
            Some("connect from mx.example.test"),
        ),
        (
            "test@e6.example.test",
            "2001:db8:cafe::1",
            Some("connect from unknown"),
        ),
        (
            "test@e6.example.test",
            "2001:db8:cafe::3",
            Some("connect from mx.example.test"),
        ),
        // Upper-case macros are URL-escaped.
        (
            "~jack&jill=up-a_b3.c@e8.example.test",
            "192.0.2.42",
            Some("http://example.test/why.html?l=~jack%26jill%3Dup-a_b3.c"),
        ),
    ];
    for (sender, addr, want) in cases {
        let c = rfc.check(sender, MSGBAS, addr).await;
        assert_eq!(
            (c.result, c.explanation.as_deref()),
            (R::Fail, *want),
            "{sender} from {addr}: {:#?}",
            c.trace
        );
    }
}

#[tokio::test]
async fn s7_3_every_macro_letter_in_an_explanation() {
    let rfc = Rfc::new(
        Zone::new()
            .txt("letters.example.test", "v=spf1 -all exp=why.%{d}")
            .txt(
                "why.letters.example.test",
                "s=%{s} l=%{l} o=%{o} d=%{d} i=%{i} p=%{p} v=%{v} h=%{h} c=%{c} r=%{r} t=%{t}",
            )
            .ptr("192.0.2.9", "mail.letters.example.test")
            .a("mail.letters.example.test", "192.0.2.9"),
    );
    let c = rfc
        .check(
            "user@letters.example.test",
            "helo.example.test",
            "192.0.2.9",
        )
        .await;
    assert_eq!(c.result, R::Fail);
    let text = c.explanation.unwrap_or_default();
    let (text, t) = text.rsplit_once(" t=").unwrap();
    assert_eq!(
        text,
        "s=user@letters.example.test l=user o=letters.example.test d=letters.example.test \
         i=192.0.2.9 p=mail.letters.example.test v=in-addr h=helo.example.test c=192.0.2.9 \
         r=localhost"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let t: u64 = t.parse().unwrap();
    assert!(t <= now && now - t < 60, "{t} {now}");
}

#[tokio::test]
async fn s7_3_a_name_over_253_characters_loses_labels_on_the_left() {
    let rfc = Rfc::new(macro_zone());
    let c = rfc
        .check("test@somewhat.long.ex.example.test", MSGBAS, "192.0.2.40")
        .await;
    assert_eq!(
        (c.result, c.explanation.as_deref()),
        (R::Fail, Some("Congratulations!  That was tricky."))
    );
}

// 4.6.4: processing limits.

fn limits_zone() -> Zone {
    let mut zone = Zone::new()
        .a("mail.example.test", "192.0.2.4")
        .txt("e1.test", "v=spf1 ip4:198.51.100.1 redirect=e1.test")
        .a("e1.test", "192.0.2.6")
        .txt("e2.test", "v=spf1 include:e3.test")
        .a("e2.test", "192.0.2.7")
        .txt("e3.test", "v=spf1 include:e2.test")
        .a("e3.test", "192.0.2.8")
        .txt("e4.test", "v=spf1 mx")
        .mx("e4.test", 10, "e4.test")
        .a("e4.test", "192.0.2.5")
        .txt("e5.test", "v=spf1 ptr")
        .a("e5.test", "192.0.2.5")
        .txt(
            "e6.test",
            "v=spf1 a mx a mx a mx a mx a ptr ip4:192.0.2.4 -all",
        )
        .a("e6.test", "192.0.2.8")
        .mx("e6.test", 10, "e6.test")
        .txt(
            "e7.test",
            "v=spf1 a mx a mx a mx a mx a ptr a ip4:192.0.2.4 -all",
        )
        .a("e7.test", "192.0.2.20")
        .mx("e7.test", 10, "e7.test")
        .txt("e8.test", "v=spf1 a include:inc.test ip4:192.0.2.4 mx -all")
        .a("e8.test", "192.0.2.4")
        .txt("inc.test", "v=spf1 a a a a a a a a")
        .a("inc.test", "192.0.2.10")
        .txt("e9.test", "v=spf1 a include:inc.test a ip4:192.0.2.4 -all")
        .a("e9.test", "192.0.2.21")
        .txt("e10.test", "v=spf1 a -all")
        .txt("e11.test", "v=spf1 a:err.test a:err1.test a:err2.test ?all")
        .txt("e12.test", "v=spf1 a:err.test a:err1.test ?all")
        .txt("e13.test", "v=spf1 mx")
        .a("e13.test", "192.0.2.5");
    // Ten MX hosts that do not match before the one that would: more than 10 MX records.
    for preference in 0..10 {
        zone = zone.mx("e4.test", preference, "mail.example.test");
    }
    // Exactly ten MX records.
    for preference in 0..9 {
        zone = zone.mx("e13.test", preference, "mail.example.test");
    }
    zone = zone.mx("e13.test", 10, "e13.test");
    for last in 1..=12 {
        zone = zone.a("e10.test", &format!("192.0.2.{last}"));
    }
    // Eleven PTR names: the one that would match is the eleventh.
    for name in [
        "e1.test",
        "e2.test",
        "e3.test",
        "e4.test",
        "example.test",
        "e6.test",
        "e7.test",
        "e8.test",
        "e9.test",
        "e10.test",
        "e5.test",
    ] {
        zone = zone.ptr("192.0.2.5", name);
    }
    zone
}

#[tokio::test]
async fn s4_6_4_more_than_10_dns_mechanisms_is_permerror() {
    let rfc = Rfc::new(limits_zone());
    rfc.results(&[
        // Ten: the term after them is still evaluated.
        ("foo@e6.test", "192.0.2.4", R::Pass),
        ("foo@e8.test", "192.0.2.4", R::Pass),
        // Eleven, includes counted.
        ("foo@e7.test", "192.0.2.4", R::PermError),
        ("foo@e9.test", "192.0.2.4", R::PermError),
        // Loops end at the limit.
        ("foo@e1.test", "192.0.2.4", R::PermError),
        ("foo@e2.test", "192.0.2.4", R::PermError),
    ])
    .await;
    let c = rfc.check("foo@e7.test", HELO, "192.0.2.4").await;
    assert_eq!(c.dns_lookups, 11);
    assert!(
        c.trace
            .iter()
            .any(|s| s.outcome == "permerror: more than 10 DNS lookups"),
        "{:#?}",
        c.trace
    );
}

#[tokio::test]
async fn s4_6_4_more_than_2_void_lookups_is_permerror() {
    let rfc = Rfc::new(limits_zone());
    rfc.results(&[
        ("foo@e12.test", "192.0.2.4", R::Neutral),
        ("foo@e11.test", "192.0.2.4", R::PermError),
    ])
    .await;
}

#[tokio::test]
async fn s4_6_4_more_than_10_mx_records_is_permerror() {
    let rfc = Rfc::new(limits_zone());
    rfc.results(&[
        ("foo@e4.test", "192.0.2.5", R::PermError),
        ("foo@e13.test", "192.0.2.5", R::Pass),
    ])
    .await;
}

#[tokio::test]
async fn s4_6_4_only_10_ptr_names_are_looked_at() {
    let rfc = Rfc::new(limits_zone());
    rfc.results(&[("foo@e5.test", "192.0.2.5", R::Neutral)])
        .await;
}

#[tokio::test]
async fn s4_6_4_a_records_have_no_limit() {
    let rfc = Rfc::new(limits_zone());
    rfc.results(&[("foo@e10.test", "192.0.2.12", R::Pass)])
        .await;
}

#[tokio::test]
async fn s4_6_4_a_slow_evaluation_ends_in_temperror() {
    let rfc = Rfc::new(
        Zone::new()
            .txt("slow.test", "v=spf1 a:a.slow.test a:b.slow.test -all")
            .fault("a.slow.test", Fault::Silent),
    );
    let query = SpfQuery::mail_from(ip("192.0.2.4"), "foo@slow.test", HELO);
    let started = std::time::Instant::now();
    let c = rfc
        .f
        .resolver
        .spf_check_within(&query, std::time::Duration::from_millis(100))
        .await;
    assert!(
        started.elapsed() < crate::support::TIMEOUT,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(c.result, R::TempError);
    assert_eq!(
        c.trace.last().map(|s| s.term.as_str()),
        Some("(time limit)")
    );
}
