//! Tests of the SPF evaluation trace.

use super::*;

#[test]
fn masks() {
    let ip: IpAddr = "192.0.2.77".parse().unwrap();
    let net: Ipv4Addr = "192.0.2.0".parse().unwrap();
    assert!(in_v4(ip, net, u32::MAX << 8));
    assert!(!in_v4(ip, net, u32::MAX));
    let mapped: IpAddr = "::ffff:192.0.2.77".parse().unwrap();
    assert!(in_v4(mapped, net, u32::MAX << 8));
    let v6: IpAddr = "2001:db8::5".parse().unwrap();
    assert!(!in_v4(v6, net, 0));
    assert!(in_v6(v6, "2001:db8::".parse().unwrap(), u128::MAX << 64));
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
}

#[test]
fn domains() {
    assert!(valid_domain("example.test"));
    assert!(!valid_domain(""));
    assert!(!valid_domain("a..b"));
    assert!(!valid_domain(&"a".repeat(64)));
}
