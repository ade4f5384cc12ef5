//! Forwards: to another domain (a second relais on loopback, reached by a route), and loops,
//! cut with a bounce to the sender.

use std::fs;
use std::path::Path;

use crate::support::{Server, send, send_ok, tempdir};

/// The receiving side: a relais for remote.test where only `friend` exists.
fn remote(dir: &Path) -> Server {
    Server::start(dir, "remote.test", "[local]\nusers = [\"friend\"]\n")
}

/// A relais for local.test with these aliases, routing remote.test to `remote_port`.
fn local(dir: &Path, aliases: &str, remote_port: u16) -> Server {
    fs::write(dir.join("aliases"), aliases).unwrap();
    Server::start(
        dir,
        "local.test",
        &format!(
            "[local]\naliases = {:?}\n\
             [delivery]\nroutes = {{ \"remote.test\" = \"[127.0.0.1]:{remote_port}\" }}\n",
            dir.join("aliases").display().to_string()
        ),
    )
}

#[test]
fn a_forward_reaches_the_other_domain() {
    let (rdir, ldir) = (tempdir(), tempdir());
    let r = remote(rdir.path());
    let l = local(
        ldir.path(),
        "fwd: friend@remote.test, stranger@remote.test, alice\n",
        r.port,
    );
    send_ok(
        l.port,
        &["fwd@local.test NOTIFY=SUCCESS,FAILURE"],
        "forwarded",
    );
    let got = r.wait_mailbox("friend", 1);
    let m = &got[0];
    assert!(m.contains("Subject: forwarded"), "{m}");
    // The original sender, and the alias it went through.
    assert!(m.starts_with("Return-Path: <sender@local.test>\r\n"), "{m}");
    assert!(m.contains("Delivered-To: fwd@local.test\r\n"), "{m}");
    assert!(l.wait_mailbox("alice", 1)[0].contains("Subject: forwarded"));

    // stranger@remote.test is refused there: that target bounces, naming the alias as the
    // original recipient; the alias itself is reported `expanded`.
    let reports = l.wait_mailbox("sender", 1);
    let all = reports.join("\n");
    for needle in [
        "Final-Recipient: rfc822; stranger@remote.test",
        "Original-Recipient: rfc822; fwd@local.test",
        "Action: failed",
        "Status: 5.1.1",
        "Final-Recipient: rfc822; fwd@local.test",
        "Action: expanded",
    ] {
        assert!(all.contains(needle), "{needle:?} not in\n{all}");
    }
    assert!(
        !all.contains("Final-Recipient: rfc822; friend@remote.test"),
        "a target's success is not reported: {all}"
    );
    l.wait_log("removed");
}

#[test]
fn a_forward_loop_is_cut_with_a_bounce() {
    let dir = tempdir();
    let port_unused = 9; // no remote delivery in this test
    let l = local(
        dir.path(),
        "a: b@local.test\nb: a@local.test\n",
        port_unused,
    );
    let (replies, last) = send(
        l.port,
        "sender@local.test",
        &["a@local.test"],
        &crate::support::message("loop"),
    );
    assert!(replies[0].starts_with("250"), "{replies:?}");
    assert!(last.starts_with("250"), "{last}");
    let bounce = l.wait_mailbox("sender", 1);
    let b = &bounce[0];
    assert!(
        b.contains("Subject: Undelivered Mail Returned to Sender"),
        "{b}"
    );
    assert!(b.contains("Final-Recipient: rfc822; a@local.test"), "{b}");
    assert!(b.contains("Status: 5.4.6"), "{b}");
    assert!(b.contains("mail forwarding loop: a -> b -> a"), "{b}");
    assert!(l.mailbox("a").is_empty() && l.mailbox("b").is_empty());
}

#[test]
fn a_message_with_our_delivered_to_is_bounced() {
    let dir = tempdir();
    let l = local(dir.path(), "list: alice, bob\n", 9);
    let looped = "Delivered-To: list@local.test\n\
                  Received: from elsewhere by mx.other.test; Thu, 1 Jan 2026 00:00:00 +0000\n\
                  From: sender@local.test\n\
                  Subject: came back\n\
                  \n\
                  I was here before.\n";
    let (replies, last) = send(
        l.port,
        "sender@local.test",
        &["list@local.test", "carol@local.test"],
        looped,
    );
    assert!(replies.iter().all(|r| r.starts_with("250")), "{replies:?}");
    assert!(last.starts_with("250"), "{last}");
    let bounce = l.wait_mailbox("sender", 1);
    let b = &bounce[0];
    assert!(
        b.contains("Final-Recipient: rfc822; list@local.test"),
        "{b}"
    );
    assert!(b.contains("Status: 5.4.6"), "{b}");
    assert!(
        b.contains("mail forwarding loop for list@local.test"),
        "{b}"
    );
    // carol, whom the header does not name, has it.
    assert!(l.wait_mailbox("carol", 1)[0].contains("Subject: came back"));
    assert!(l.mailbox("alice").is_empty());

    // More than 50 Received headers: a loop, whoever the recipient.
    let hops = "Received: from x by y; Thu, 1 Jan 2026 00:00:00 +0000\n".repeat(51);
    let (_, last) = send(
        l.port,
        "sender@local.test",
        &["dave@local.test"],
        &format!("{hops}Subject: hops\n\nround and round\n"),
    );
    assert!(last.starts_with("250"), "{last}");
    let bounces = l.wait_mailbox("sender", 2);
    let all = bounces.join("\n");
    assert!(
        all.contains("Final-Recipient: rfc822; dave@local.test"),
        "{all}"
    );
    assert!(all.contains("Received headers (more than 50)"), "{all}");
    assert!(l.mailbox("dave").is_empty());
}

#[test]
fn a_strangers_forwarded_mail_leaves_with_an_srs_sender_and_its_bounce_comes_back() {
    let (rdir, odir, ldir) = (tempdir(), tempdir(), tempdir());
    let r = remote(rdir.path());
    // example.org: where the original sender lives
    let o = Server::start(odir.path(), "example.org", "[local]\nusers = [\"alice\"]\n");
    fs::write(ldir.path().join("aliases"), "fwd: friend@remote.test\n").unwrap();
    let l = Server::start(
        ldir.path(),
        "local.test",
        &format!(
            "[local]\naliases = {:?}\n\
             [delivery]\nroutes = {{ \"remote.test\" = \"[127.0.0.1]:{}\", \"example.org\" = \"[127.0.0.1]:{}\" }}\n",
            ldir.path().join("aliases").display().to_string(),
            r.port,
            o.port
        ),
    );
    let (replies, last) = send(
        l.port,
        "alice@example.org",
        &["fwd@local.test"],
        &crate::support::message("srs"),
    );
    assert!(
        replies[0].starts_with("250") && last.starts_with("250"),
        "{replies:?} {last}"
    );
    let got = r.wait_mailbox("friend", 1);
    let m = &got[0];
    let return_path = m.lines().next().unwrap();
    assert!(return_path.starts_with("Return-Path: <SRS0="), "{m}");
    assert!(
        return_path.ends_with("=example.org=alice@mx.local.test>"),
        "{return_path}"
    );
    let srs = &return_path["Return-Path: <".len()..return_path.len() - 1];
    // the secret was made at first start, for our eyes only
    let secret = l.data_dir.join("srs.secret");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&secret).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // remote.test bounces it later: to the SRS address, which goes on to alice@example.org
    let (replies, last) = send(
        l.port,
        "",
        &[srs],
        "Subject: Undelivered Mail\n\nIt bounced.\n",
    );
    assert!(replies[0].starts_with("250 2.1.5"), "{replies:?}");
    assert!(last.starts_with("250"), "{last}");
    let back = o.wait_mailbox("alice", 1);
    assert!(back[0].starts_with("Return-Path: <>\r\n"), "{}", back[0]);
    assert!(back[0].contains("It bounced."), "{}", back[0]);

    // an SRS address we did not make, and one changed by a single character, are refused
    let forged = "SRS0=AAAA=AB=example.org=victim@mx.local.test";
    let mut tampered = srs.to_string();
    tampered.replace_range(5..6, if &srs[5..6] == "x" { "y" } else { "x" });
    for bad in [forged, tampered.as_str()] {
        let (replies, _) = send(l.port, "", &[bad], "x");
        assert!(replies[0].starts_with("550 5.1.1"), "{bad}: {replies:?}");
        assert!(
            replies[0].contains("the SRS address was not made here"),
            "{replies:?}"
        );
    }
}
