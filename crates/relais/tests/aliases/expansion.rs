//! Expansion of an aliases file by a running server: lists, `:include:`, `|command`,
//! `/path/file`, `:fail:` at RCPT, and retries that repeat no delivered target.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::dovecot::{read_mbox, script};
use crate::support::{Server, open_dir, send, send_ok, tempdir, uid_of, wait};

/// A server for local.test with this aliases file (written as `dir/aliases`).
fn server(dir: &Path, aliases: &str, extra: &str) -> Server {
    fs::write(dir.join("aliases"), aliases).unwrap();
    Server::start(
        dir,
        "local.test",
        &format!(
            "[local]\naliases = {:?}\n{extra}",
            dir.join("aliases").display().to_string()
        ),
    )
}

#[test]
fn a_list_goes_to_every_mailbox() {
    let dir = tempdir();
    let s = server(
        dir.path(),
        "team: alice, Bob\nclub: :include: club.list\n",
        "",
    );
    fs::write(
        dir.path().join("club.list"),
        "# members\ncarol\ndave, alice\n",
    )
    .unwrap();
    send_ok(s.port, &["team@local.test"], "team");
    for user in ["alice", "bob"] {
        let got = s.wait_mailbox(user, 1);
        assert_eq!(got.len(), 1, "{user}: {got:?}");
        assert!(got[0].contains("Subject: team"), "{}", got[0]);
        assert!(
            got[0].contains(&format!("Delivered-To: {user}@local.test\r\n")),
            "{}",
            got[0]
        );
        assert!(
            got[0].starts_with("Return-Path: <sender@local.test>\r\n"),
            "{}",
            got[0]
        );
    }
    assert!(s.mailbox("team").is_empty());

    // :include: is read at delivery; alice is in it once more, in the same message as a
    // direct recipient: one copy.
    send_ok(s.port, &["club@local.test", "alice@local.test"], "club");
    for user in ["carol", "dave"] {
        let got = s.wait_mailbox(user, 1);
        assert!(got[0].contains("Subject: club"), "{}", got[0]);
    }
    s.wait_log("duplicate of a copy to mailbox alice");
    let alice = s.wait_mailbox("alice", 2);
    assert_eq!(alice.len(), 2, "{alice:?}");
    assert!(s.mailbox("club").is_empty());
}

#[test]
fn fail_is_refused_at_rcpt_with_its_text() {
    let dir = tempdir();
    let s = server(
        dir.path(),
        "gone: :fail: No such person at this address\nloop1: loop2\nloop2: loop1\n",
        "users = [\"alice\"]\n",
    );
    let (replies, _) = send(
        s.port,
        "sender@local.test",
        &["gone@local.test", "loop1@local.test", "alice@local.test"],
        &crate::support::message("fail"),
    );
    assert_eq!(
        replies[0],
        "550 5.1.1 <gone@local.test>: No such person at this address"
    );
    assert!(
        replies[1].starts_with("550 5.4.6 <loop1@local.test>:"),
        "{}",
        replies[1]
    );
    assert!(
        replies[1].contains("loop1 -> loop2 -> loop1"),
        "{}",
        replies[1]
    );
    assert!(replies[2].starts_with("250"), "{}", replies[2]);

    // An aliases file that cannot be read: 451, try later.
    fs::write(dir.path().join("aliases"), "not an alias line\n").unwrap();
    let (replies, _) = send(
        s.port,
        "sender@local.test",
        &["gone@local.test"],
        &crate::support::message("x"),
    );
    assert_eq!(
        replies[0],
        "451 4.3.0 <gone@local.test>: Temporary lookup failure"
    );
}

#[test]
fn a_command_gets_the_message_as_nobody() {
    let dir = tempdir();
    let out = open_dir(&dir.path().join("out"));
    let save = dir.path().join("save.sh");
    script(
        &save,
        &format!(
            "out={out}\n\
             cat > \"$out/msg.tmp\"\n\
             id -u > \"$out/uid\"\n\
             printf 'SENDER=%s\\nRECIPIENT=%s\\nORIGINAL_RECIPIENT=%s\\n' \
               \"$SENDER\" \"$RECIPIENT\" \"$ORIGINAL_RECIPIENT\" > \"$out/env\"\n\
             mv \"$out/msg.tmp\" \"$out/msg\"\n",
            out = out.display()
        ),
    );
    let s = server(
        dir.path(),
        &format!("archive: \"|{} --list\"\n", save.display()),
        "",
    );
    send_ok(
        s.port,
        &["archive@local.test ORCPT=rfc822;Archive@local.test"],
        "pipe",
    );
    wait("the command's output", || out.join("msg").exists(), &s);
    let msg = fs::read_to_string(out.join("msg")).unwrap();
    assert!(msg.contains("Subject: pipe"), "{msg}");
    assert!(msg.contains("Hello pipe."), "{msg}");
    assert!(
        msg.starts_with("Return-Path: <sender@local.test>\r\nDelivered-To: archive@local.test\r\n"),
        "{msg}"
    );
    let env = fs::read_to_string(out.join("env")).unwrap();
    assert_eq!(
        env,
        "SENDER=sender@local.test\nRECIPIENT=archive@local.test\n\
         ORIGINAL_RECIPIENT=Archive@local.test\n"
    );
    // SAFETY: no arguments.
    let root = unsafe { libc::geteuid() } == 0;
    let uid = fs::read_to_string(out.join("uid")).unwrap();
    if root {
        assert_eq!(uid.trim(), uid_of("nobody"), "the command ran as root");
    }
    s.wait_log("status=sent (delivered to command:");
    s.wait_log("to=<archive@local.test>, relay=local");
}

#[test]
fn a_file_is_appended_to_as_nobody() {
    let dir = tempdir();
    let out = open_dir(&dir.path().join("out"));
    let mbox = out.join("box.mbox");
    // SAFETY: no arguments.
    let root = unsafe { libc::geteuid() } == 0;
    let closed = dir.path().join("closed");
    fs::create_dir(&closed).unwrap();
    let s = server(
        dir.path(),
        &format!(
            "box: {}\nprivate: {}/box\n",
            mbox.display(),
            closed.display()
        ),
        "",
    );
    send_ok(s.port, &["box@local.test"], "one");
    send_ok(s.port, &["box@local.test"], "two");
    wait(
        "two messages in the mbox",
        || mbox.exists() && read_mbox(&mbox).len() == 2,
        &s,
    );
    let msgs = read_mbox(&mbox);
    assert!(
        msgs[0].from_line.starts_with("From sender@local.test "),
        "{msgs:?}"
    );
    let subjects: Vec<bool> = ["one", "two"]
        .iter()
        .map(|sub| {
            msgs.iter()
                .any(|m| m.body.contains(&format!("Subject: {sub}\n")))
        })
        .collect();
    assert_eq!(subjects, [true, true], "{msgs:?}");
    assert!(
        msgs[0].body.contains("Delivered-To: box@local.test\n"),
        "{msgs:?}"
    );
    if root {
        let meta = fs::metadata(&mbox).unwrap();
        assert_eq!(meta.uid().to_string(), uid_of("nobody"));
        assert_eq!(meta.mode() & 0o777, 0o600);

        // A directory only root may write to is refused to the alias, and the sender told.
        send_ok(s.port, &["private@local.test"], "private");
        let bounce = s.wait_mailbox("sender", 1);
        assert!(bounce[0].contains("Action: failed"), "{}", bounce[0]);
        assert!(bounce[0].contains("Status: 5.2.0"), "{}", bounce[0]);
        assert!(
            bounce[0].contains("Original-Recipient: rfc822; private@local.test"),
            "{}",
            bounce[0]
        );
        assert!(!closed.join("box").exists());
    }
}

#[test]
fn a_retry_repeats_no_delivered_target() {
    let dir = tempdir();
    let out = open_dir(&dir.path().join("out"));
    let flaky = dir.path().join("flaky.sh");
    // Fails with EX_TEMPFAIL until `out/ok` exists; counts its runs.
    script(
        &flaky,
        &format!(
            "out={out}\n\
             cat > /dev/null\n\
             echo run >> \"$out/runs\"\n\
             [ -e \"$out/ok\" ] || {{ echo 'not yet' >&2; exit 75; }}\n\
             touch \"$out/done\"\n",
            out = out.display()
        ),
    );
    let aliases = format!("half: alice, \"|{}\"\n", flaky.display());
    let mut s = server(dir.path(), &aliases, "[delivery]\nfirst_retry = 1\n");
    send_ok(s.port, &["half@local.test NOTIFY=SUCCESS,FAILURE"], "retry");
    s.wait_mailbox("alice", 1);
    let runs = || {
        fs::read_to_string(out.join("runs"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    wait("a second run", || runs() >= 2, &s);
    s.wait_log("status=deferred (4.3.0 command");

    // Across a restart too: the state in the spool says alice has her copy.
    s.stop();
    fs::write(out.join("ok"), "").unwrap();
    let s = server(dir.path(), &aliases, "[delivery]\nfirst_retry = 1\n");
    wait("the command to succeed", || out.join("done").exists(), &s);
    s.wait_log("removed");
    assert_eq!(s.mailbox("alice").len(), 1, "alice got a second copy");
    // The alias is reported `expanded` to a sender who asked for success reports.
    let receipts = s.wait_mailbox("sender", 1);
    assert!(receipts[0].contains("Action: expanded"), "{}", receipts[0]);
    assert!(
        receipts[0].contains("Final-Recipient: rfc822; half@local.test"),
        "{}",
        receipts[0]
    );
}
