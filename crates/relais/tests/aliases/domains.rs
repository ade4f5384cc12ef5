//! Virtual domains (issue 16, item 1) through a running server: the same local part in two
//! domains reaches two Maildirs (`mail/<domain>/<user>`), a catch-all, aliases written as full
//! addresses and in a domain's own file, and each domain's `:fail:` text at RCPT.

use std::fs;
use std::path::Path;

use crate::support::{Server, send, send_ok, tempdir};

/// local.test (the classic domain) with a.example and b.example beside it.
fn server(dir: &Path) -> Server {
    fs::write(
        dir.join("aliases"),
        "sales@b.example: alice@a.example, alice\n\
         gone@a.example: :fail: Left a.example in 2023\n\
         gone@b.example: :fail: Ask at the b.example front desk\n",
    )
    .unwrap();
    fs::write(dir.join("a.aliases"), "info: bob, alice@b.example\n").unwrap();
    let path = |f: &str| dir.join(f).display().to_string();
    Server::start(
        dir,
        "local.test",
        &format!(
            "[local]\naliases = {:?}\n\
             [[domain]]\nname = \"a.example\"\nusers = [\"alice\", \"bob\"]\n\
             aliases = {:?}\ncatch_all = \"bob\"\n\
             [[domain]]\nname = \"b.example\"\nusers = [\"alice\"]\n",
            path("aliases"),
            path("a.aliases"),
        ),
    )
}

#[test]
fn the_same_local_part_in_two_domains_is_two_mailboxes() {
    let dir = tempdir();
    let s = server(dir.path());
    send_ok(s.port, &["alice@a.example"], "for-a");
    send_ok(s.port, &["ALICE@B.example"], "for-b");
    let a = s.wait_mailbox("a.example/alice", 1);
    let b = s.wait_mailbox("b.example/alice", 1);
    assert_eq!((a.len(), b.len()), (1, 1), "{a:?} {b:?}");
    assert!(a[0].contains("Subject: for-a"), "{}", a[0]);
    assert!(
        a[0].contains("Delivered-To: alice@a.example\r\n"),
        "{}",
        a[0]
    );
    assert!(b[0].contains("Subject: for-b"), "{}", b[0]);
    assert!(
        b[0].contains("Delivered-To: ALICE@B.example\r\n"),
        "{}",
        b[0]
    );
    // The classic namespace is untouched.
    assert!(s.mailbox("alice").is_empty());
}

#[test]
fn aliases_and_the_catch_all_reach_each_domains_mailboxes() {
    let dir = tempdir();
    let s = server(dir.path());
    // info@a.example (a.example's own file): bob there, and alice at b.example.
    send_ok(s.port, &["info@a.example"], "info");
    // sales@b.example (the global file, a full address): alice at a.example, and the bare
    // `alice`, which in the global file is local.test's.
    send_ok(s.port, &["sales@b.example"], "sales");
    // Anyone else at a.example: the catch-all, bob.
    send_ok(s.port, &["nobody-here@a.example"], "catch-all");
    let bob = s.wait_mailbox("a.example/bob", 2);
    assert!(bob.iter().any(|m| m.contains("Subject: info")), "{bob:?}");
    assert!(
        bob.iter()
            .any(|m| m.contains("Subject: catch-all")
                && m.contains("Delivered-To: bob@a.example\r\n")),
        "{bob:?}"
    );
    let b_alice = s.wait_mailbox("b.example/alice", 1);
    assert!(b_alice[0].contains("Subject: info"), "{}", b_alice[0]);
    let a_alice = s.wait_mailbox("a.example/alice", 1);
    assert!(a_alice[0].contains("Subject: sales"), "{}", a_alice[0]);
    let local_alice = s.wait_mailbox("alice", 1);
    assert!(
        local_alice[0].contains("Subject: sales"),
        "{}",
        local_alice[0]
    );
    // Nothing went to a mailbox named after an alias.
    assert!(s.mailbox("a.example/info").is_empty());
    assert!(s.mailbox("b.example/sales").is_empty());
}

#[test]
fn each_domain_refuses_with_its_own_text() {
    let dir = tempdir();
    let s = server(dir.path());
    let (replies, _) = send(
        s.port,
        "sender@local.test",
        &[
            "gone@a.example",
            "gone@b.example",
            "bob@b.example",
            "bob@c.example",
        ],
        &crate::support::message("refused"),
    );
    assert_eq!(
        replies,
        [
            "550 5.1.1 <gone@a.example>: Left a.example in 2023",
            "550 5.1.1 <gone@b.example>: Ask at the b.example front desk",
            "550 5.1.1 <bob@b.example>: Recipient address rejected: User unknown in virtual mailbox table",
            "554 5.7.1 <bob@c.example>: Relay access denied",
        ]
    );
}
