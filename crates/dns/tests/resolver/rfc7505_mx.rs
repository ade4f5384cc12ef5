//! Where mail goes: MX order, RFC 7505 null MX, RFC 5321 implicit MX, and no fallback to A
//! when the MX query fails.

use std::net::{IpAddr, Ipv4Addr};

use relais_dns::Failure;
use relais_dns::fixture::{Fault, Zone};
use relais_dns::mx::RouteKind;

use crate::support::{fixture, with_zone};

#[tokio::test]
async fn mx_hosts_in_order_with_their_addresses() {
    let f = fixture();
    let route = f.resolver.mail_route("example.test").await;
    assert_eq!(route.kind, RouteKind::Mx);
    let hosts: Vec<(u16, &str, Vec<IpAddr>)> = route
        .hosts
        .iter()
        .map(|h| (h.preference, h.name.as_str(), h.addresses.ips()))
        .collect();
    let ip = |last| vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))];
    assert_eq!(
        hosts,
        vec![
            (10, "mx1.example.test", ip(11)),
            (20, "mx2.example.test", ip(12)),
            (30, "mx3.example.test", ip(13)),
        ]
    );
    assert!(!route.null_mx_with_others);
}

#[tokio::test]
async fn rfc7505_null_mx_means_no_mail() {
    let f = fixture();
    let route = f.resolver.mail_route("nullmx.test").await;
    assert_eq!(route.kind, RouteKind::NullMx);
    assert!(route.hosts.is_empty(), "the A record must not be used");
}

#[tokio::test]
async fn rfc5321_implicit_mx_is_the_domain_itself() {
    let f = fixture();
    let route = f.resolver.mail_route("nomx.test").await;
    assert_eq!(route.kind, RouteKind::Implicit);
    assert_eq!(route.hosts.len(), 1);
    assert_eq!(route.hosts[0].name, "nomx.test");
    assert_eq!(
        route.hosts[0].addresses.ips(),
        [IpAddr::V4(Ipv4Addr::new(127, 0, 0, 21))]
    );
}

#[tokio::test]
async fn no_mx_no_address_and_no_domain() {
    let f = fixture();
    assert_eq!(
        f.resolver.mail_route("nothing.test").await.kind,
        RouteKind::NoMailHost
    );
    assert_eq!(
        f.resolver.mail_route("missing.test").await.kind,
        RouteKind::NoSuchDomain
    );
}

#[tokio::test]
async fn a_failed_mx_query_does_not_fall_back_to_a() {
    let zone = Zone::new()
        .a("flaky.test", "127.0.0.50")
        .fault("flaky.test", Fault::ServFail);
    let f = with_zone(zone);
    let route = f.resolver.mail_route("flaky.test").await;
    assert_eq!(route.kind, RouteKind::Failed(Failure::ServFail));
    assert!(route.hosts.is_empty());
    let timeout = fixture().resolver.mail_route("timeout.test").await;
    assert_eq!(timeout.kind, RouteKind::Failed(Failure::Timeout));
}

#[tokio::test]
async fn null_mx_next_to_real_hosts_is_flagged_and_ignored() {
    let zone = Zone::new()
        .mx("mixed.test", 0, ".")
        .mx("mixed.test", 10, "mx.mixed.test")
        .a("mx.mixed.test", "127.0.0.60");
    let f = with_zone(zone);
    let route = f.resolver.mail_route("mixed.test").await;
    assert_eq!(route.kind, RouteKind::Mx);
    assert!(route.null_mx_with_others);
    assert_eq!(route.hosts.len(), 1);
    assert_eq!(route.hosts[0].name, "mx.mixed.test");
}

#[tokio::test]
async fn mx_host_without_address_is_kept_and_reported() {
    let zone = Zone::new()
        .mx("half.test", 10, "gone.half.test")
        .mx("half.test", 20, "mx.half.test")
        .a("mx.half.test", "127.0.0.61");
    let f = with_zone(zone);
    let route = f.resolver.mail_route("half.test").await;
    assert_eq!(route.hosts.len(), 2);
    assert!(route.hosts[0].addresses.ips().is_empty());
    assert_eq!(route.hosts[1].addresses.ips().len(), 1);
    let json = serde_json::to_value(&route).unwrap();
    assert_eq!(json["route"], "mx");
    assert_eq!(json["hosts"][0]["addresses"]["status"], "nxdomain");
}
