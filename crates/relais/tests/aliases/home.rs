//! System mailboxes (issue 16, item 2): `mailbox = "home"` delivers to a system user's
//! `~/Maildir` with that user's ids, honours `~/.forward` as an alias (its commands and files
//! run as the user; forwards off the machine leave with an SRS sender), and quotas (Maildir++
//! `maildirsize`) refuse a full mailbox (or one without room for a declared SIZE) at RCPT and
//! bounce a copy that does not fit. Test users are made with `useradd` under unique names and
//! removed with `userdel` when the test ends.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::{Server, Smtp, read_dir_sorted, send, send_ok, tempdir, uid_of, wait};

/// A system user made for one test, removed when dropped.
struct SystemUser {
    name: String,
    home: PathBuf,
}

impl SystemUser {
    /// `useradd` with a unique name, its home in `dir`.
    fn create(dir: &Path) -> SystemUser {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "rlh{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let home = dir.join(&name);
        let out = Command::new("useradd")
            .args(["-m", "-d"])
            .arg(&home)
            .args(["-s", "/usr/sbin/nologin", &name])
            .output()
            .expect("useradd (scripts/deps.sh: passwd)");
        assert!(out.status.success(), "useradd {name}: {out:?}");
        SystemUser { name, home }
    }

    fn uid(&self) -> u32 {
        uid_of(&self.name).parse().unwrap()
    }

    /// The messages in `~/Maildir/new`.
    fn mailbox(&self) -> Vec<String> {
        read_dir_sorted(&self.home.join("Maildir/new"))
    }
}

impl Drop for SystemUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

/// Waits until `user` has `count` messages.
fn wait_home(s: &Server, user: &SystemUser, count: usize) -> Vec<String> {
    wait(
        &format!("{count} message(s) in ~{}/Maildir", user.name),
        || user.mailbox().len() >= count,
        s,
    );
    user.mailbox()
}

/// A relais for local.test with home mailboxes; `extra` appended.
fn home_server(dir: &Path, extra: &str) -> Server {
    Server::start(
        dir,
        "local.test",
        &format!("[local]\nmailbox = \"home\"\n{extra}"),
    )
}

#[test]
fn a_system_user_gets_mail_in_its_home_written_as_itself() {
    let dir = tempdir();
    let alice = SystemUser::create(dir.path());
    let s = home_server(dir.path(), "");
    send_ok(s.port, &[&format!("{}@local.test", alice.name)], "home");
    let got = wait_home(&s, &alice, 1);
    assert!(got[0].contains("Subject: home"), "{}", got[0]);
    assert!(
        got[0].contains(&format!("Delivered-To: {}@local.test\r\n", alice.name)),
        "{}",
        got[0]
    );
    let new = alice.home.join("Maildir/new");
    let file = fs::read_dir(&new).unwrap().next().unwrap().unwrap().path();
    for p in [&file, &new, &alice.home.join("Maildir")] {
        let meta = fs::metadata(p).unwrap();
        assert_eq!(meta.uid(), alice.uid(), "{} is not the user's", p.display());
        assert_eq!(meta.mode() & 0o077, 0, "{} is open to others", p.display());
    }
    // Nothing went to relais' own tree.
    assert!(!s.data_dir.join("mail").join(&alice.name).exists());
    // Neither root (no mailbox of its own) nor a name with no account gets mail.
    let (replies, _) = send(
        s.port,
        "sender@local.test",
        &["root@local.test", "no-such-account-here@local.test"],
        "x",
    );
    for r in &replies {
        assert!(r.starts_with("550 5.1.1"), "{replies:?}");
    }
}

#[test]
fn a_home_users_forward_file_is_an_alias_and_leaves_with_an_srs_sender() {
    let (rdir, dir) = (tempdir(), tempdir());
    let remote = Server::start(
        rdir.path(),
        "remote.test",
        "[local]\nusers = [\"friend\"]\n",
    );
    let alice = SystemUser::create(dir.path());
    let bob = SystemUser::create(dir.path());
    let carol = SystemUser::create(dir.path());
    let forward = |u: &SystemUser, text: &str, mode: u32| {
        let p = u.home.join(".forward");
        fs::write(&p, text).unwrap();
        std::os::unix::fs::chown(&p, Some(u.uid()), None).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    };
    // alice keeps a copy, forwards off the machine and to bob, and has a command and a file
    // of her own: they run and are written as her.
    let (uid_file, mbox) = (alice.home.join("piped-uid"), alice.home.join("saved.mbox"));
    forward(
        &alice,
        &format!(
            "# away\n\\{}\nfriend@remote.test, {}@local.test\n\"|id -u > {}\"\n{}\n",
            alice.name,
            bob.name,
            uid_file.display(),
            mbox.display()
        ),
        0o644,
    );
    // carol's .forward may be changed by anyone: ignored, her mail stays with her.
    forward(&carol, "friend@remote.test\n", 0o666);
    let s = home_server(
        dir.path(),
        &format!(
            "[delivery]\nroutes = {{ \"remote.test\" = \"[127.0.0.1]:{}\" }}\n",
            remote.port
        ),
    );
    let (replies, last) = send(
        s.port,
        "someone@example.org",
        &[&format!("{}@local.test", alice.name)],
        &crate::support::message("forwarded"),
    );
    assert!(replies[0].starts_with("250"), "{replies:?}");
    assert!(last.starts_with("250"), "{last}");
    s.wait_log(&format!("accepted (alias ~{})", alice.name));
    let own = wait_home(&s, &alice, 1);
    assert!(own[0].contains("Subject: forwarded"), "{}", own[0]);
    wait(
        "the command and the file",
        || mbox.exists() && uid_file.exists(),
        &s,
    );
    s.wait_log(&format!("to=<|id -u > {}>", uid_file.display()));
    assert_eq!(
        fs::read_to_string(&uid_file).unwrap().trim(),
        alice.uid().to_string()
    );
    assert_eq!(fs::metadata(&mbox).unwrap().uid(), alice.uid());
    assert!(
        fs::read_to_string(&mbox)
            .unwrap()
            .contains("Subject: forwarded"),
        "{}",
        s.log()
    );
    let b = wait_home(&s, &bob, 1);
    assert!(b[0].contains("Subject: forwarded"), "{}", b[0]);
    let away = remote.wait_mailbox("friend", 1);
    let return_path = away[0].lines().next().unwrap();
    assert!(
        return_path.starts_with("Return-Path: <SRS0=")
            && return_path.ends_with("=example.org=someone@mx.local.test>"),
        "{}",
        away[0]
    );
    send_ok(s.port, &[&format!("{}@local.test", carol.name)], "ignored");
    let c = wait_home(&s, &carol, 1);
    assert!(c[0].contains("Subject: ignored"), "{}", c[0]);
    assert!(s.log().contains(".forward: ignored"), "{}", s.log());
}

/// A message of about `size` bytes (lines of 70).
fn sized(subject: &str, size: usize) -> String {
    let line = format!("{}\n", "x".repeat(70));
    format!(
        "From: sender@local.test\nSubject: {subject}\n\n{}",
        line.repeat(size / line.len() + 1)
    )
}

#[test]
fn a_full_mailbox_is_refused_at_rcpt_and_a_copy_that_does_not_fit_bounces() {
    let dir = tempdir();
    let s = Server::start(
        dir.path(),
        "local.test",
        "[[domain]]\nname = \"a.example\"\nusers = [\"full\", \"small\", \"free\"]\n\
         quota = 3000\nquotas = { free = 0 }\n",
    );
    // `full` already holds more than its 3000 bytes (mail of before: no maildirsize yet).
    let full = s.data_dir.join("mail/a.example/full");
    for sub in ["tmp", "new", "cur"] {
        fs::create_dir_all(full.join(sub)).unwrap();
    }
    fs::write(full.join("cur/1.old.host,S=3500:2,S"), "x".repeat(3500)).unwrap();
    let (replies, _) = send(
        s.port,
        "sender@local.test",
        &["full@a.example", "free@a.example"],
        &sized("over", 100),
    );
    assert_eq!(
        replies[0], "552 5.2.2 <full@a.example>: Recipient address rejected: Mailbox full",
        "{replies:?}"
    );
    assert!(replies[1].starts_with("250"), "{replies:?}");
    assert_eq!(
        fs::read_to_string(full.join("maildirsize")).unwrap(),
        "3000S\n3500 1\n"
    );
    // A client that declares the size is told at RCPT when it does not fit.
    let mut c = Smtp::connect(s.port);
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert!(
        c.cmd("MAIL FROM:<sender@local.test> SIZE=5000")
            .starts_with("250")
    );
    assert_eq!(
        c.cmd("RCPT TO:<small@a.example>"),
        "552 5.2.2 <small@a.example>: Recipient address rejected: Mailbox full"
    );
    let _ = c.cmd("QUIT");
    // `small` has room at RCPT, but not for 4000 bytes: a bounce to the sender.
    send_ok(s.port, &["small@a.example"], "fits");
    let first = s.wait_mailbox("a.example/small", 1);
    send(
        s.port,
        "sender@local.test",
        &["small@a.example"],
        &sized("too-big", 4000),
    );
    let bounce = s.wait_mailbox("sender", 1);
    assert!(bounce[0].contains("Status: 5.2.2"), "{}", bounce[0]);
    assert!(bounce[0].contains("Mailbox full"), "{}", bounce[0]);
    assert_eq!(s.mailbox("a.example/small").len(), 1);
    // The copy that was delivered is counted in maildirsize.
    let counted = fs::read_to_string(s.data_dir.join("mail/a.example/small/maildirsize")).unwrap();
    assert_eq!(
        counted,
        format!("3000S\n0 0\n{} 1\n", first[0].len()),
        "{counted}"
    );
    // A mailbox with no limit takes it all.
    send_ok(s.port, &["free@a.example"], "free");
    s.wait_mailbox("a.example/free", 2);
    assert!(!s.data_dir.join("mail/a.example/free/maildirsize").exists());
}
