use super::*;

fn policy(users: &[&str]) -> Policy {
    let mut c = Config::parse(
        "hostname = \"mx.example.com\"\nlocal_domains = [\"example.com\", \"localhost\"]",
    )
    .unwrap();
    c.local.users = users.iter().map(|s| s.to_string()).collect();
    Policy::new(&c)
}

impl Policy {
    fn check_recipient_unauth(&self, to: &Mailbox) -> Result<Route, Verdict> {
        self.check_recipient(to, false)
    }
}

fn mb(s: &str) -> Mailbox {
    relais_proto::address::parse_forward_path(s).unwrap()
}

#[test]
fn catch_all_and_user_list() {
    let p = policy(&[]);
    assert_eq!(
        p.check_recipient_unauth(&mb("Anyone@Example.COM")),
        Ok(Route::Local("anyone".into()))
    );
    assert_eq!(
        p.check_recipient_unauth(&mb("postmaster")),
        Ok(Route::Local("postmaster".into()))
    );
    let p = policy(&["alice"]);
    assert_eq!(
        p.check_recipient_unauth(&mb("alice@example.com")),
        Ok(Route::Local("alice".into()))
    );
    assert_eq!(
        p.check_recipient_unauth(&mb("Postmaster@localhost")),
        Ok(Route::Local("postmaster".into()))
    );
    match p.check_recipient_unauth(&mb("bob@example.com")) {
        Err(Verdict::Reject(r)) => assert_eq!(
            r.to_string(),
            "550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown in local recipient table"
        ),
        other => panic!("{other:?}"),
    }
}

/// A policy with this aliases file (written in a fresh directory), users `users`, local
/// domains example.com and localhost.
fn with_aliases(text: &str, users: &[&str]) -> (tempfile::TempDir, Policy) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aliases");
    std::fs::write(&path, text).unwrap();
    let mut c = Config::parse(
        "hostname = \"mx.example.com\"\nlocal_domains = [\"example.com\", \"localhost\"]",
    )
    .unwrap();
    c.local.users = users.iter().map(|s| s.to_string()).collect();
    c.local.aliases = Some(path);
    (dir, Policy::new(&c))
}

fn rejection(r: Result<Route, Verdict>) -> String {
    match r {
        Err(Verdict::Reject(r)) => r.to_string(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn aliases_at_rcpt() {
    let (dir, p) = with_aliases(
        "staff: alice, bob@other.org, |/bin/cat, /tmp/x.mbox\n\
         gone: :fail: No such person at this address\n\
         half: alice, :fail: moved away\n\
         a: b\nb: a\n\
         list: :include: list.txt\n\
         empty: :include: empty.txt\n\
         postmaster: alice\n",
        &["alice"],
    );
    std::fs::write(dir.path().join("list.txt"), "alice\n").unwrap();
    std::fs::write(dir.path().join("empty.txt"), "# nobody yet\n").unwrap();
    // An alias need not be a user.
    assert_eq!(
        p.check_recipient_unauth(&mb("Staff@Example.com")),
        Ok(Route::Alias("staff".into()))
    );
    assert_eq!(
        p.check_recipient_unauth(&mb("postmaster")),
        Ok(Route::Alias("postmaster".into()))
    );
    assert_eq!(
        p.check_recipient_unauth(&mb("list@localhost")),
        Ok(Route::Alias("list".into()))
    );
    assert_eq!(
        rejection(p.check_recipient_unauth(&mb("gone@example.com"))),
        "550 5.1.1 <gone@example.com>: No such person at this address"
    );
    assert_eq!(
        rejection(p.check_recipient_unauth(&mb("half@example.com"))),
        "550 5.1.1 <half@example.com>: moved away"
    );
    let r = rejection(p.check_recipient_unauth(&mb("a@example.com")));
    assert!(r.starts_with("550 5.4.6 <a@example.com>: "), "{r}");
    assert!(r.contains("alias loop: a -> b -> a"), "{r}");
    assert!(rejection(p.check_recipient_unauth(&mb("empty@example.com"))).starts_with("550 5.1.1"));
    // Not an alias: the user list as before.
    assert_eq!(
        p.check_recipient_unauth(&mb("alice@example.com")),
        Ok(Route::Local("alice".into()))
    );
    assert!(rejection(p.check_recipient_unauth(&mb("carol@example.com"))).starts_with("550"));
    // Not our domain: aliases do not apply.
    assert!(rejection(p.check_recipient_unauth(&mb("staff@other.org"))).starts_with("554"));

    // An edited file is read again; an unreadable one gives 451.
    std::fs::write(dir.path().join("aliases"), "carol: alice\n").unwrap();
    assert_eq!(
        p.check_recipient_unauth(&mb("carol@example.com")),
        Ok(Route::Alias("carol".into()))
    );
    assert!(rejection(p.check_recipient_unauth(&mb("staff@example.com"))).starts_with("550"));
    std::fs::write(dir.path().join("aliases"), "broken line\n").unwrap();
    assert_eq!(
        rejection(p.check_recipient_unauth(&mb("carol@example.com"))),
        "451 4.3.0 <carol@example.com>: Temporary lookup failure"
    );
    std::fs::remove_file(dir.path().join("aliases")).unwrap();
    assert!(rejection(p.check_recipient_unauth(&mb("alice@example.com"))).starts_with("451"));
}

fn mailbox(n: &str) -> Target {
    Target::Mailbox(n.into())
}

#[test]
fn destinations_follow_local_forwards() {
    let (_dir, p) = with_aliases(
        "staff: alice, Bob@Example.COM, carol@other.org, |/bin/prog, /tmp/f\n\
         bob: \\bob, bob@localhost\n\
         keep: keep@example.com, x@other.org\n\
         a: b@example.com\nb: a@localhost\n\
         c: d@example.com\nd: e@example.com\ne: :fail: gone\n\
         typo: zed@example.com, ../etc\n",
        &["alice", "bob", "keep"],
    );
    assert_eq!(
        p.destination(&mb("staff@example.com")),
        Destination::Alias(vec![
            mailbox("alice"),
            mailbox("bob"),
            Target::Forward("carol@other.org".into()),
            Target::Pipe("/bin/prog".into()),
            Target::File("/tmp/f".into()),
        ])
    );
    assert_eq!(
        p.destination(&mb("keep@example.com")),
        Destination::Alias(vec![mailbox("keep"), Target::Forward("x@other.org".into())])
    );
    match p.destination(&mb("a@example.com")) {
        Destination::Nowhere(Outcome::Failed { status, reason }) => {
            assert_eq!(status, "5.4.6");
            assert_eq!(reason, "mail forwarding loop: a -> b -> a");
        }
        d => panic!("{d:?}"),
    }
    assert_eq!(
        p.destination(&mb("c@example.com")),
        Destination::Alias(vec![Target::Fail("gone".into())])
    );
    match p.destination(&mb("typo@example.com")) {
        Destination::Alias(t) => {
            assert_eq!(t.len(), 2);
            assert!(t.iter().all(|t| matches!(t, Target::Fail(_))), "{t:?}");
        }
        d => panic!("{d:?}"),
    }
    assert_eq!(
        p.destination(&mb("alice@localhost")),
        Destination::Mailbox("alice".into())
    );
    assert_eq!(
        p.destination(&mb("x@Other.org")),
        Destination::Relay("other.org".into())
    );
    assert!(matches!(
        p.destination(&mb("zed@example.com")),
        Destination::Nowhere(Outcome::Failed { .. })
    ));
}

#[test]
fn nothing_relays() {
    let p = policy(&[]);
    for addr in [
        "user@other.org",
        "user%other.org@elsewhere.net",
        "user@[127.0.0.1]",
        "user@example.com.evil.org",
        "\"user@other.org\"@evil.org",
    ] {
        match p.check_recipient_unauth(&mb(addr)) {
            Err(Verdict::Reject(r)) => assert_eq!(r.code, 554, "{addr}"),
            other => panic!("{addr}: {other:?}"),
        }
    }
    // a client that may relay gets relaying, and still never a rerouted local part
    assert_eq!(
        p.check_recipient(&mb("user@other.org"), true),
        Ok(Route::Relay("other.org".into()))
    );
    assert!(
        p.check_recipient(&mb("user%other.org@example.com"), true)
            .is_err()
    );
    // tricks at a local domain are local parts that name no mailbox
    for addr in [
        "user%other.org@example.com",
        "other!user@example.com",
        "\"user@other.org\"@example.com",
        "\"../../etc\"@example.com",
    ] {
        match p.check_recipient_unauth(&mb(addr)) {
            Err(Verdict::Reject(r)) => assert_eq!(r.code, 550, "{addr}"),
            other => panic!("{addr}: {other:?}"),
        }
    }
}

/// Two virtual domains beside the classic example.com: a.example (users alice and bob, its own
/// aliases file, catch-all alice) and b.example (user alice, no catch-all), with entries
/// `user@domain` and `@domain` in the global aliases file.
fn virtual_domains() -> (tempfile::TempDir, Policy) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("aliases"),
        "postmaster: root\n\
         sales@b.example: alice, bob@a.example\n\
         gone@a.example: :fail: Left a.example in 2023\n\
         gone@b.example: :fail: Ask at the b.example front desk\n\
         @example.com: root\n\
         loop@b.example: ring@a.example\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("a.aliases"),
        "info: bob, alice@b.example\n\
         ring: loop@b.example\n\
         team: \\alice, bob, nobody\n\
         self: self@a.example, bob\n",
    )
    .unwrap();
    let path = |f: &str| dir.path().join(f).display().to_string();
    let c = Config::parse(&format!(
        "hostname = \"mx.example.com\"\nlocal_domains = [\"example.com\"]\n\
         [local]\nusers = [\"alice\", \"root\"]\naliases = {:?}\n\
         [[domain]]\nname = \"a.example\"\nusers = [\"alice\", \"bob\"]\n\
         aliases = {:?}\ncatch_all = \"alice\"\n\
         [[domain]]\nname = \"B.example\"\nusers = [\"alice\"]\n",
        path("aliases"),
        path("a.aliases"),
    ))
    .unwrap();
    (dir, Policy::new(&c))
}

#[test]
fn virtual_domains_at_rcpt() {
    let (_dir, p) = virtual_domains();
    // (recipient, the route or the refusal)
    let table: &[(&str, &str)] = &[
        ("alice@a.example", "local mailbox a.example/alice"),
        ("Alice@B.Example", "local mailbox b.example/alice"),
        ("alice@example.com", "local mailbox alice"),
        ("bob@a.example", "local mailbox a.example/bob"),
        ("info@a.example", "alias info@a.example"),
        ("sales@b.example", "alias sales@b.example"),
        // a.example's catch-all; b.example has none.
        ("whoever@a.example", "alias @a.example"),
        (
            "bob@b.example",
            "550 5.1.1 <bob@b.example>: Recipient address rejected: User unknown in virtual mailbox table",
        ),
        // The global file's bare names are example.com's only.
        (
            "root@b.example",
            "550 5.1.1 <root@b.example>: Recipient address rejected: User unknown in virtual mailbox table",
        ),
        // Each domain its own :fail: text.
        (
            "gone@a.example",
            "550 5.1.1 <gone@a.example>: Left a.example in 2023",
        ),
        (
            "gone@b.example",
            "550 5.1.1 <gone@b.example>: Ask at the b.example front desk",
        ),
        // postmaster exists everywhere: the global one.
        ("postmaster@b.example", "alias postmaster"),
        // example.com has a user list and a catch-all in the global file.
        ("carol@example.com", "alias @example.com"),
        (
            "alice@c.example",
            "554 5.7.1 <alice@c.example>: Relay access denied",
        ),
    ];
    for (to, want) in table {
        let got = match p.check_recipient(&mb(to), false) {
            Ok(route) => route.to_string(),
            Err(Verdict::Reject(r)) => r.to_string(),
            Err(v) => format!("{v:?}"),
        };
        assert_eq!(got, *want, "{to}");
    }
    assert!(p.is_local_domain("B.EXAMPLE"));
    assert!(!p.is_local_domain("c.example"));
}

#[test]
fn virtual_domains_at_delivery() {
    let (_dir, p) = virtual_domains();
    let mbx = |n: &str| Target::Mailbox(n.into());
    assert_eq!(
        p.destination(&mb("alice@a.example")),
        Destination::Mailbox("a.example/alice".into())
    );
    assert_eq!(
        p.destination(&mb("alice@b.example")),
        Destination::Mailbox("b.example/alice".into())
    );
    // Bare targets of a domain's file are that domain's; addresses go where they say.
    assert_eq!(
        p.destination(&mb("info@a.example")),
        Destination::Alias(vec![mbx("a.example/bob"), mbx("b.example/alice")])
    );
    // Bare targets of the global file are example.com's.
    assert_eq!(
        p.destination(&mb("sales@b.example")),
        Destination::Alias(vec![mbx("alice"), mbx("a.example/bob")])
    );
    assert_eq!(
        p.destination(&mb("whoever@a.example")),
        Destination::Alias(vec![mbx("a.example/alice")])
    );
    match p.destination(&mb("team@a.example")) {
        Destination::Alias(t) => {
            assert_eq!(t[..2], [mbx("a.example/alice"), mbx("a.example/bob")]);
            assert!(
                matches!(&t[2], Target::Fail(why) if why.contains("nobody")),
                "{t:?}"
            );
        }
        d => panic!("{d:?}"),
    }
    // Keeping one's own copy works with full addresses too.
    assert_eq!(
        p.destination(&mb("self@a.example")),
        Destination::Alias(vec![
            Target::Fail("alias target self: no such local mailbox".into()),
            mbx("a.example/bob")
        ])
    );
    match p.destination(&mb("loop@b.example")) {
        Destination::Nowhere(Outcome::Failed { status, reason }) => {
            assert_eq!(status, "5.4.6");
            assert_eq!(
                reason,
                "mail forwarding loop: loop@b.example -> ring@a.example -> loop@b.example"
            );
        }
        d => panic!("{d:?}"),
    }
    assert_eq!(
        p.destination(&mb("postmaster@a.example")),
        Destination::Alias(vec![mbx("root")])
    );
    assert_eq!(
        p.destination(&mb("carol@example.com")),
        Destination::Alias(vec![mbx("root")])
    );
    // What the door's routes name, expanded again (the door's check of forwards off the
    // machine uses this).
    assert_eq!(
        p.expand("info@a.example"),
        Ok(Some(vec![mbx("a.example/bob"), mbx("b.example/alice")]))
    );
    assert_eq!(
        p.expand("@a.example"),
        Ok(Some(vec![mbx("a.example/alice")]))
    );
    assert_eq!(p.expand("postmaster"), Ok(Some(vec![mbx("root")])));
    assert_eq!(p.expand("alice@a.example"), Ok(None));
}
