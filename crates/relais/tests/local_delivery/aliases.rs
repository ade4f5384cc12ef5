//! An aliases file read from disk with its `:include:` lists, and its targets delivered by the
//! agents.

use std::fs;
use std::time::{Duration, SystemTime};

use relais_local::{mbox, pipe};
use relais_queue::Outcome;
use relais_queue::Target;
use relais_route::{AliasError, Aliases};

use crate::support::{read_mbox, script, tempdir};

#[tokio::test]
async fn a_real_aliases_file_with_includes() {
    let dir = tempdir();
    let d = dir.path();
    fs::create_dir(d.join("lists")).unwrap();
    script(&d.join("log.sh"), &format!("cat > {}/piped\n", d.display()));
    fs::write(
        d.join("lists/staff"),
        "# staff, one a line or several\nalice, bob\ncarol@example.org\n:include: ../lists/more\n",
    )
    .unwrap();
    fs::write(d.join("lists/more"), "dave\nStaff\n").unwrap();
    let aliases = format!(
        "# test aliases\n\
         postmaster: root\n\
         root:       \\root, ops\n\
         ops:        \"|{d}/log.sh\",\n\
         \x20           {d}/ops.mbox\n\
         staff:      :include: lists/staff\n\
         nobody:     :fail: No such person at this address\n\
         loop1:      loop2\n\
         loop2:      loop1\n",
        d = d.display()
    );
    let path = d.join("aliases");
    fs::write(&path, aliases).unwrap();
    let a = Aliases::load(&path).unwrap();

    assert_eq!(
        a.expand("Staff").unwrap().unwrap(),
        [
            Target::Mailbox("alice".into()),
            Target::Mailbox("bob".into()),
            Target::Forward("carol@example.org".into()),
            Target::Mailbox("dave".into()),
            Target::Mailbox("staff".into()),
        ]
    );
    assert_eq!(
        a.expand("nobody").unwrap().unwrap(),
        [Target::Fail("No such person at this address".into())]
    );
    assert_eq!(a.expand("alice").unwrap(), None);
    match a.expand("loop1") {
        Err(e @ AliasError::Loop { .. }) => {
            assert_eq!(e.to_string(), "alias loop: loop1 -> loop2 -> loop1");
            assert!(matches!(e.outcome(), Outcome::Failed { .. }));
        }
        other => panic!("{other:?}"),
    }

    // postmaster → root's mailbox, a pipe and a file: deliver the last two.
    let targets = a.expand("postmaster").unwrap().unwrap();
    assert_eq!(targets.len(), 3, "{targets:?}");
    assert_eq!(targets[0], Target::Mailbox("root".into()));
    let message = b"Subject: to postmaster\r\n\r\nFrom a human\r\n";
    for t in &targets[1..] {
        let o = match t {
            Target::Pipe(cmd) => {
                pipe::deliver(
                    cmd,
                    message,
                    "a@example.org",
                    "postmaster@example.net",
                    Duration::from_secs(30),
                )
                .await
            }
            Target::File(p) => mbox::append(p, "a@example.org", &message[..], SystemTime::now()),
            t => panic!("{t:?}"),
        };
        assert!(matches!(o, Outcome::Delivered(_)), "{t:?}: {o}");
    }
    assert_eq!(fs::read(d.join("piped")).unwrap(), message);
    let msgs = read_mbox(&d.join("ops.mbox"));
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].body, "Subject: to postmaster\n\nFrom a human\n");

    // A syntax error names the file and the line.
    fs::write(&path, "ok: bob\nbroken line\n").unwrap();
    let e = Aliases::load(&path).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:2: expected 'name: targets', got \"broken line\"",
            path.display()
        )
    );
}
