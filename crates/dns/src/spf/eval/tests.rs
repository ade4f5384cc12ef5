//! Tests of the SPF evaluation's helpers (the evaluation itself is tested against the fixture
//! DNS server, in `tests/resolver/rfc7208_spf.rs`).

use super::*;

#[test]
fn networks() {
    let ip: IpAddr = "192.0.2.77".parse().unwrap();
    let net: Ipv4Addr = "192.0.2.0".parse().unwrap();
    assert!(in_v4(ip, net, 24));
    assert!(!in_v4(ip, net, 32));
    assert!(in_v4(ip, "10.0.0.0".parse().unwrap(), 0));
    let v6: IpAddr = "2001:db8::5".parse().unwrap();
    assert!(!in_v4(v6, net, 0));
    assert!(in_v6(v6, "2001:db8::".parse().unwrap(), 64));
    assert!(in_v6(v6, "::".parse().unwrap(), 0));
    assert!(!in_v6(ip, "::".parse().unwrap(), 0));
    let cidr = DualCidr { v4: 24, v6: 128 };
    assert!(in_network(
        ip,
        IpAddr::V4("192.0.2.1".parse().unwrap()),
        cidr
    ));
    assert!(!in_network(v6, "2001:db8::6".parse().unwrap(), cidr));
}

#[test]
fn queries() {
    let ip: IpAddr = "192.0.2.1".parse().unwrap();
    let q = SpfQuery::mail_from(ip, "<Alice@Example.Test.>", "");
    assert_eq!(q.sender, "Alice@Example.Test");
    assert_eq!(q.domain(), "Example.Test");
    assert_eq!(q.helo, "Example.Test");
    let q = SpfQuery::mail_from(ip, "example.test", "mx.example.test");
    assert_eq!(q.sender, "postmaster@example.test");
    assert_eq!(q.helo, "mx.example.test");
    let q = SpfQuery::helo(ip, "mx.example.test.");
    assert_eq!(q.domain(), "mx.example.test");
    assert_eq!(q.identity, Identity::Helo);
    // RFC 7208 2.4: the null reverse path is checked as postmaster@HELO.
    let q = SpfQuery::mail_from(ip, "<>", "mx.example.test");
    assert_eq!(q.sender, "postmaster@mx.example.test");
    assert_eq!(q.domain(), "mx.example.test");
    let q = SpfQuery::mail_from(ip, "@example.test", "mx.example.test");
    assert_eq!(q.sender, "postmaster@example.test");
}

#[test]
fn domains() {
    assert!(valid_domain("example.test"));
    assert!(valid_domain("_spf.example.test"));
    assert!(valid_domain("foo.example.xn--zckzah"));
    assert!(!valid_domain(""));
    assert!(!valid_domain("example"));
    assert!(!valid_domain("a..b"));
    assert!(!valid_domain(&format!("{}.test", "a".repeat(64))));
    assert!(!valid_domain(&format!("{}test", "abcdefghi.".repeat(26))));
    assert!(!valid_domain("[192.0.2.1]"));
    assert!(!valid_domain("192.0.2.1"));
    assert!(queryable("foo:bar/baz.example.com"));
    assert!(!queryable("mail.example...com"));
    assert!(!queryable(&format!("{}.test", "a".repeat(64))));
}
