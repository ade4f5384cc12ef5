//! `[local] lmtp`: mailboxes, direct or reached through an alias, delivered to a private Dovecot
//! over LMTP (TCP and unix socket) instead of to Maildirs; the mailboxes of virtual domains
//! under their whole addresses.

use std::fs;

use crate::dovecot::Dovecot;
use crate::support::{Server, send_ok, tempdir, wait};

#[test]
fn mailboxes_go_to_dovecot_over_lmtp() {
    let dovecot = Dovecot::start(&["alice", "bob", "sender"]);
    for (n, target) in [
        dovecot.addr.to_string(),
        format!("unix:{}", dovecot.socket.display()),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = tempdir();
        fs::write(dir.path().join("aliases"), "team: alice, bob\n").unwrap();
        let s = Server::start(
            dir.path(),
            "local.test",
            &format!(
                "[local]\naliases = {:?}\nlmtp = {target:?}\n",
                dir.path().join("aliases").display().to_string()
            ),
        );
        let subject = format!("lmtp{n}");
        send_ok(s.port, &["team@local.test", "alice@local.test"], &subject);
        let has = |user: &str| {
            dovecot
                .new_messages(user)
                .iter()
                .filter(|m| m.contains(&format!("Subject: {subject}")))
                .count()
        };
        wait(
            "the copies in Dovecot",
            || has("alice") >= 1 && has("bob") >= 1,
            &s,
        );
        s.wait_log("removed");
        // One copy for alice, though she is named twice (directly and through the list).
        assert_eq!(has("alice"), 1, "{}", dovecot.logs());
        assert_eq!(has("bob"), 1, "{}", dovecot.logs());
        assert!(s.log().contains("relay=lmtp["), "{}", s.log());
        assert!(s.mailbox("alice").is_empty(), "also written to a Maildir");

        // A mailbox Dovecot does not know bounces with its reply; the bounce goes over LMTP
        // too, to the sender's mailbox.
        let unknown = format!("unknown{n}");
        send_ok(s.port, &["carol@local.test"], &unknown);
        let bounce = || {
            dovecot
                .new_messages("sender")
                .into_iter()
                .find(|m| m.contains(&format!("Subject: {unknown}")))
        };
        wait("the bounce in Dovecot", || bounce().is_some(), &s);
        let b = bounce().unwrap();
        assert!(
            b.contains("Final-Recipient: rfc822; carol@local.test"),
            "{b}"
        );
        assert!(b.contains("Status: 5.1.1"), "{b}");
    }
}

#[test]
fn virtual_domain_mailboxes_go_to_dovecot_under_their_addresses() {
    // Dovecot knows whole addresses here: the same local part in two domains is two users.
    let dovecot = Dovecot::start(&["alice@a.example", "alice@b.example", "bob@a.example"]);
    let dir = tempdir();
    let s = Server::start(
        dir.path(),
        "local.test",
        &format!(
            "[local]\nlmtp = {:?}\n\
             [[domain]]\nname = \"a.example\"\nusers = [\"alice\", \"bob\"]\ncatch_all = \"bob\"\n\
             [[domain]]\nname = \"b.example\"\nusers = [\"alice\"]\n",
            dovecot.addr.to_string()
        ),
    );
    send_ok(s.port, &["alice@a.example"], "for-a");
    send_ok(s.port, &["ALICE@B.example"], "for-b");
    send_ok(s.port, &["someone@a.example"], "caught");
    let has = |user: &str, subject: &str| {
        dovecot
            .new_messages(user)
            .iter()
            .any(|m| m.contains(&format!("Subject: {subject}")))
    };
    wait(
        "the copies in Dovecot",
        || {
            has("alice@a.example", "for-a")
                && has("alice@b.example", "for-b")
                && has("bob@a.example", "caught")
        },
        &s,
    );
    assert!(!has("alice@a.example", "for-b"), "{}", dovecot.logs());
    assert!(!has("alice@b.example", "for-a"), "{}", dovecot.logs());
    assert_eq!(dovecot.new_messages("bob@a.example").len(), 1);
    assert!(s.log().contains("relay=lmtp["), "{}", s.log());
    assert!(
        s.mailbox("a.example/alice").is_empty(),
        "also written to a Maildir"
    );
}
