//! DNS block lists: listed with reason, not listed, and error codes that are no listing.

use std::net::{IpAddr, Ipv4Addr};

use relais_dns::dnsbl::DnsblStatus;

use crate::support::fixture;

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

#[tokio::test]
async fn listed_with_code_and_reason() {
    let f = fixture();
    let check = f.resolver.dnsbl_one(ip(2), "bl.test").await;
    assert_eq!(check.query, "2.0.0.127.bl.test");
    let DnsblStatus::Listed { codes, reason } = &check.status else {
        panic!("listed expected: {check:?}");
    };
    assert_eq!(codes[0].code, Ipv4Addr::new(127, 0, 0, 2));
    assert_eq!(
        reason.as_deref(),
        Some("127.0.0.2 is listed for testing, see https://bl.test/query/127.0.0.2")
    );
}

#[tokio::test]
async fn not_listed() {
    let f = fixture();
    let check = f.resolver.dnsbl_one(ip(1), "bl.test").await;
    assert_eq!(check.status, DnsblStatus::NotListed);
    assert!(check.txt.is_none());
}

#[tokio::test]
async fn error_codes_are_errors_not_listings() {
    let f = fixture();
    let check = f.resolver.dnsbl_one(ip(3), "bl.test").await;
    let DnsblStatus::Error { codes, reason } = &check.status else {
        panic!("error expected: {check:?}");
    };
    assert_eq!(codes[0].code, Ipv4Addr::new(127, 255, 255, 254));
    assert!(reason.contains("public or open resolvers"), "{reason}");
    assert!(check.txt.is_none(), "no reason is fetched for an error");
}

#[tokio::test]
async fn several_zones_at_once_in_order() {
    let f = fixture();
    let zones = [
        "bl.test".to_string(),
        "servfail.test".to_string(),
        "other.test".to_string(),
    ];
    let checks = f.resolver.dnsbl(ip(2), &zones).await;
    let statuses: Vec<&str> = checks.iter().map(|c| c.status.as_str()).collect();
    assert_eq!(statuses, ["listed", "error", "not_listed"]);
    let json = serde_json::to_value(&checks).unwrap();
    assert_eq!(json[0]["status"], "listed");
    assert_eq!(json[0]["codes"][0]["code"], "127.0.0.2");
    assert_eq!(json[1]["status"], "error");
}
