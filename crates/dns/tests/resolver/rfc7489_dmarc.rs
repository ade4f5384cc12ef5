//! DMARC: the record, its policy, and the walk up to a parent's record.

use relais_dns::dmarc::DmarcStatus;

use crate::support::fixture;

#[tokio::test]
async fn record_and_policy() {
    let f = fixture();
    let d = f.resolver.dmarc("example.test").await;
    assert_eq!(d.status, DmarcStatus::Found);
    assert_eq!(d.found_at.as_deref(), Some("example.test"));
    let p = d.policy.unwrap();
    assert_eq!(
        (p.p, p.sp, p.adkim, p.aspf),
        ("reject", "quarantine", "strict", "relaxed")
    );
    // mail-auth keeps the address of a `mailto:` URI.
    assert_eq!(p.rua, ["dmarc-reports@example.test"]);
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    assert_eq!(d.lookups.len(), 1);
}

#[tokio::test]
async fn subdomains_use_the_parent_record() {
    let f = fixture();
    let d = f.resolver.dmarc("sub.example.test").await;
    assert_eq!(d.status, DmarcStatus::Found);
    assert_eq!(d.found_at.as_deref(), Some("example.test"));
    let names: Vec<&str> = d.lookups.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["_dmarc.sub.example.test", "_dmarc.example.test"]);
    assert!(d.warnings[0].contains("the record of example.test applies"));
}

#[tokio::test]
async fn no_record_and_dns_failure() {
    let f = fixture();
    let none = f.resolver.dmarc("nodmarc.test").await;
    assert_eq!(none.status, DmarcStatus::NotFound);
    assert!(none.record.is_none());
    let failed = f.resolver.dmarc("timeout.test").await;
    assert!(matches!(failed.status, DmarcStatus::Failed(_)));
    let json = serde_json::to_value(&failed).unwrap();
    assert_eq!(json["status"], "error");
    assert_eq!(json["error"]["kind"], "timeout");
}
