//! `/path/file` delivery: mbox entries that read back, and appends that do not interleave.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use relais_local::mbox;
use relais_queue::Outcome;

use crate::support::{read_mbox, tempdir};

#[test]
fn two_appends_read_back_as_two_messages() {
    let dir = tempdir();
    let path = dir.path().join("archive.mbox");
    let first = b"Subject: one\r\n\r\nFrom the start\r\n>From quoted\r\nlast line\r\n";
    let second = b"Subject: two\n\nno final newline";
    let t1 = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    let t2 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let o = mbox::append(&path, "alice@example.org", &first[..], t1);
    assert!(matches!(o, Outcome::Delivered(_)), "{o}");
    let o = mbox::append(&path, "", &second[..], t2);
    assert!(matches!(o, Outcome::Delivered(_)), "{o}");

    let raw = std::fs::read_to_string(&path).unwrap();
    assert!(raw.contains("\n>From the start\n>>From quoted\n"), "{raw}");
    assert!(!raw.contains('\r'), "{raw:?}");

    let msgs = read_mbox(&path);
    assert_eq!(msgs.len(), 2, "{raw}");
    assert_eq!(
        msgs[0].from_line,
        "From alice@example.org Sun Sep  9 01:46:40 2001"
    );
    assert_eq!(
        msgs[0].body,
        "Subject: one\n\nFrom the start\n>From quoted\nlast line\n"
    );
    assert_eq!(
        msgs[1].from_line,
        "From MAILER-DAEMON Tue Nov 14 22:13:20 2023"
    );
    assert_eq!(msgs[1].body, "Subject: two\n\nno final newline\n");
}

#[test]
fn concurrent_appends_do_not_interleave() {
    const THREADS: usize = 8;
    const EACH: usize = 15;
    let dir = tempdir();
    let path = Arc::new(dir.path().join("busy.mbox"));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                for n in 0..EACH {
                    // Big enough (about 200 KB) that an unlocked write could be split.
                    let mut m = format!("Subject: {t}-{n}\r\n\r\n").into_bytes();
                    for line in 0..4000 {
                        m.extend_from_slice(
                            format!("{t}-{n} line {line:05} From x\r\n").as_bytes(),
                        );
                    }
                    let o = mbox::append(
                        &path,
                        &format!("t{t}@example.org"),
                        &m[..],
                        SystemTime::now(),
                    );
                    assert!(matches!(o, Outcome::Delivered(_)), "{o}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let msgs = read_mbox(&path);
    assert_eq!(msgs.len(), THREADS * EACH);
    let mut seen = std::collections::HashSet::new();
    for m in &msgs {
        let mut lines = m.body.lines();
        let subject = lines.next().unwrap();
        let id = subject.strip_prefix("Subject: ").unwrap();
        let t = id.split('-').next().unwrap();
        assert!(
            m.from_line.starts_with(&format!("From t{t}@example.org ")),
            "{}",
            m.from_line
        );
        assert_eq!(lines.next(), Some(""));
        for (i, line) in lines.enumerate() {
            assert_eq!(line, format!("{id} line {i:05} From x"));
        }
        assert_eq!(m.body.lines().count(), 4002, "{id}");
        assert!(seen.insert(id.to_string()), "{id} twice");
    }
}
