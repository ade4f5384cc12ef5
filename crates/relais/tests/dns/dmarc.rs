//! `relais dns dmarc`.

use crate::support::{relais, server};

#[test]
fn record_tags_and_policy() {
    let s = server();
    relais(&s, &["dns", "dmarc", "example.test"])
        .expect(0)
        .shows(&[
            "_dmarc.example.test: v=DMARC1; p=reject;",
            "p      reject",
            "policy for the domain: failing mail is refused",
            "sp     quarantine",
        ]);
    let json = relais(&s, &["dns", "dmarc", "example.test", "--json"])
        .expect(0)
        .json();
    assert_eq!(json["result"]["policy"]["p"], "reject");
    assert_eq!(json["result"]["policy"]["adkim"], "strict");
}

#[test]
fn a_subdomain_uses_the_parent_record() {
    let s = server();
    relais(&s, &["dns", "dmarc", "sub.example.test"])
        .expect(0)
        .shows(&[
            "_dmarc.example.test: v=DMARC1",
            "warning: no record at _dmarc.sub.example.test",
        ]);
}

#[test]
fn no_record_and_failure() {
    let s = server();
    relais(&s, &["dns", "dmarc", "nodmarc.test"])
        .expect(1)
        .shows(&["no DMARC record (tried _dmarc.nodmarc.test)"]);
    relais(&s, &["dns", "dmarc", "timeout.test"]).expect(5);
}
