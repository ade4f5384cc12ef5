//! Table tests of the aliases file: syntax, expansion, loops, includes.

use super::*;

fn mailbox(n: &str) -> Target {
    Target::Mailbox(n.into())
}
fn forward(a: &str) -> Target {
    Target::Forward(a.into())
}
fn pipe(c: &str) -> Target {
    Target::Pipe(c.into())
}
fn file(p: &str) -> Target {
    Target::File(p.into())
}
fn fail(t: &str) -> Target {
    Target::Fail(t.into())
}

fn parse(text: &str) -> Aliases {
    Aliases::parse(text, Path::new("/etc/aliases")).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn expand(a: &Aliases, name: &str) -> Vec<Target> {
    a.expand(name)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .unwrap_or_else(|| panic!("{name}: not an alias"))
}

#[test]
fn every_target_form() {
    let table: &[(&str, &str, Vec<Target>)] = &[
        ("user", "a: bob", vec![mailbox("bob")]),
        ("user, any case", "a: Bob", vec![mailbox("bob")]),
        (
            "list",
            "a: bob, carol,dave",
            vec![mailbox("bob"), mailbox("carol"), mailbox("dave")],
        ),
        (
            "forward",
            "a: Bob@Example.ORG",
            vec![forward("Bob@example.org")],
        ),
        (
            "forward in brackets",
            "a: <bob@example.org>",
            vec![forward("bob@example.org")],
        ),
        ("pipe", "a: |/usr/bin/prog", vec![pipe("/usr/bin/prog")]),
        (
            "quoted pipe with commas",
            r#"a: "|/usr/bin/prog -x a,b", bob"#,
            vec![pipe("/usr/bin/prog -x a,b"), mailbox("bob")],
        ),
        (
            "quoted pipe with escapes",
            r#"a: "|echo \"hi\" \\ there""#,
            vec![pipe(r#"echo "hi" \ there"#)],
        ),
        (
            "file",
            "a: /var/mail/a.mbox",
            vec![file("/var/mail/a.mbox")],
        ),
        (
            "quoted file",
            r#"a: "/var/mail/my box""#,
            vec![file("/var/mail/my box")],
        ),
        (
            "fail",
            "a: :fail: No such person at this address",
            vec![fail("No such person at this address")],
        ),
        (
            "fail keeps commas",
            "a: :FAIL: gone, moved away",
            vec![fail("gone, moved away")],
        ),
        ("backslash", r"a: \bob", vec![mailbox("bob")]),
        (
            "self",
            "a: a, bob@example.org",
            vec![mailbox("a"), forward("bob@example.org")],
        ),
        (
            "self with backslash",
            r"a: \a, bob",
            vec![mailbox("a"), mailbox("bob")],
        ),
        (
            "empty items",
            "a: bob,, ,carol,",
            vec![mailbox("bob"), mailbox("carol")],
        ),
        ("comment after", "a: bob # the boss", vec![mailbox("bob")]),
        (
            "hash in a command",
            "a: |/bin/prog#1",
            vec![pipe("/bin/prog#1")],
        ),
        (
            "hash in quotes",
            r#"a: "|prog # x""#,
            vec![pipe("prog # x")],
        ),
        ("quoted name", "\"John Doe\": bob", vec![mailbox("bob")]),
        ("spaces around colon", "a  :   bob", vec![mailbox("bob")]),
        (
            "duplicates",
            "a: bob, Bob, \\bob, bob",
            vec![mailbox("bob")],
        ),
    ];
    for (what, text, want) in table {
        let a = parse(text);
        let name = if text.starts_with('"') {
            "john doe"
        } else {
            "A"
        };
        assert_eq!(&expand(&a, name), want, "{what}: {text}");
    }
}

#[test]
fn continuation_lines_and_comments() {
    let a = parse(
        "# the staff\n\
         staff: alice,\n\
         \tbob,\n\
         # a comment between continuation lines\n\
         \n   carol@example.org\n\
         other: x\n",
    );
    assert_eq!(
        expand(&a, "staff"),
        [
            mailbox("alice"),
            mailbox("bob"),
            forward("carol@example.org")
        ]
    );
    assert_eq!(expand(&a, "other"), [mailbox("x")]);
    assert_eq!(a.len(), 2);
}

#[test]
fn not_an_alias() {
    let a = parse("a: b\n");
    assert_eq!(a.expand("nobody").unwrap(), None);
    assert!(a.contains("A"));
    assert!(!a.contains("b"));
}

#[test]
fn recursive_expansion() {
    let a = parse(
        "postmaster: root\n\
         root: admins, \\root\n\
         admins: alice, bob\n\
         bob: bob, bob@example.org\n\
         alice: |/bin/alice-filter\n",
    );
    assert_eq!(
        expand(&a, "postmaster"),
        [
            pipe("/bin/alice-filter"),
            mailbox("bob"),
            forward("bob@example.org"),
            mailbox("root"),
        ]
    );
}

#[test]
fn loops_are_refused() {
    let table: &[(&str, &str, &[&str])] = &[
        ("two", "a: b\nb: a\n", &["a", "b", "a"]),
        ("three", "a: x, b\nb: c\nc: a\n", &["a", "b", "c", "a"]),
        ("inner", "a: b\nb: c\nc: b\n", &["a", "b", "c", "b"]),
    ];
    for (what, text, chain) in table {
        let a = parse(text);
        match a.expand("a") {
            Err(AliasError::Loop { chain: got }) => assert_eq!(&got, chain, "{what}"),
            other => panic!("{what}: {other:?}"),
        }
        let e = a.expand("a").unwrap_err();
        assert_eq!(e.outcome(), Outcome::failed("5.4.6", e.to_string()));
    }
}

#[test]
fn depth_is_limited() {
    let mut text = String::new();
    for i in 0..30 {
        text.push_str(&format!("n{i}: n{}\n", i + 1));
    }
    let a = parse(&text);
    assert!(matches!(a.expand("n0"), Err(AliasError::TooDeep { .. })));
    // 19 levels are fine.
    assert_eq!(expand(&a, "n11"), [mailbox("n30")]);
}

#[test]
fn syntax_errors_name_file_and_line() {
    let table: &[(&str, usize, &str)] = &[
        ("  bob\n", 1, "continuation"),
        ("a: b\nno colon here\n", 2, "expected"),
        ("a: b\n\nb c: d\n", 3, "white space in the name"),
        (": bob\n", 1, "empty alias name"),
        ("a:\n", 1, "no target"),
        ("a: b\nA: c\n", 2, "defined twice"),
        ("a: \"|prog\n", 1, "unterminated"),
        ("a: \"|prog\" x\n", 1, "unexpected text"),
        ("a: :fail:\n", 1, ":fail: needs a text"),
        ("a: |\n", 1, "no command"),
        ("a: :include:\n", 1, "no file"),
        ("a: bob smith\n", 1, "white space in the target"),
        ("a: @example.org\n", 1, "bad address"),
        ("a: b\nc: d,\n  \\x y\n", 2, "bad mailbox"),
    ];
    for (text, line, message) in table {
        match Aliases::parse(text, Path::new("/etc/aliases")) {
            Err(e @ AliasError::Syntax { .. }) => {
                let AliasError::Syntax { line: got, .. } = &e else {
                    unreachable!()
                };
                assert_eq!(got, line, "{text:?}: {e}");
                let shown = e.to_string();
                assert!(
                    shown.starts_with(&format!("/etc/aliases:{line}: ")),
                    "{shown}"
                );
                assert!(shown.contains(message), "{text:?}: {shown}");
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
}

#[test]
fn includes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(
        d.join("team.list"),
        "# the team\nalice, bob\ncarol@example.org\n\"|/bin/log team\"\n:include: more.list\n\nteam\n",
    )
    .unwrap();
    fs::create_dir(d.join("sub")).unwrap();
    fs::write(d.join("more.list"), "dave\n:include: sub/last.list\n").unwrap();
    fs::write(d.join("sub/last.list"), "/var/mail/last, bob\n").unwrap();
    fs::write(d.join("self.list"), "x\n:include: self.list\n").unwrap();
    fs::write(d.join("bad.list"), "ok\n\"unterminated\n").unwrap();
    let a = Aliases::parse(
        "team: :include: team.list\n\
         abs: :include:/nonexistent/list\n\
         selfish: :include: self.list\n\
         bad: :include: bad.list\n\
         bob: robert\n",
        &d.join("aliases"),
    )
    .unwrap();
    assert_eq!(
        expand(&a, "team"),
        [
            mailbox("alice"),
            mailbox("robert"),
            forward("carol@example.org"),
            pipe("/bin/log team"),
            mailbox("dave"),
            file("/var/mail/last"),
            mailbox("team"),
        ]
    );
    let e = a.expand("abs").unwrap_err();
    assert!(matches!(e, AliasError::Read { .. }), "{e}");
    assert!(e.to_string().contains("/nonexistent/list"), "{e}");
    assert!(matches!(e.outcome(), Outcome::Deferred { ref status, .. } if status == "4.3.0"));
    let e = a.expand("selfish").unwrap_err();
    assert!(matches!(e, AliasError::Loop { .. }), "{e}");
    match a.expand("bad").unwrap_err() {
        AliasError::Syntax { path, line, .. } => {
            assert_eq!(path, d.join("bad.list"));
            assert_eq!(line, 2);
        }
        e => panic!("{e}"),
    }
    // Edited lists are seen without reloading.
    fs::write(d.join("team.list"), "zoe\n").unwrap();
    assert_eq!(expand(&a, "team"), [mailbox("zoe")]);
}

#[test]
fn load_reports_missing_files() {
    let e = Aliases::load(Path::new("/nonexistent/aliases")).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("cannot read /nonexistent/aliases"),
        "{e}"
    );
}
