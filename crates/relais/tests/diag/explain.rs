//! `relais explain` as an administrator uses it: a code, a whole bounce line, or the words a
//! mail client showed; unknown text says "not recognised" and exits 4.

use std::process::Command;
use std::time::Duration;

use crate::common::RELAIS;
use crate::common::process::{Run, run};

fn explain(args: &[&str]) -> Run {
    let mut cmd = Command::new(RELAIS);
    cmd.arg("explain").args(args);
    run(cmd, None, Duration::from_secs(20))
}

#[test]
fn words_without_a_code_are_explained_as_their_usual_reply() {
    // (text pasted, words the explanation must hold)
    let table: &[(&str, &[&str])] = &[
        (
            "Relay access denied",
            &["usually come with 554 5.7.1", "relay"],
        ),
        (
            "No such person at this address",
            &["usually come with 550 5.1.1", "5.1.1"],
        ),
        ("Mailbox unavailable", &["usually come with 550 5.2.1"]),
        (
            "Sender address rejected: Domain not found",
            &["usually come with 450 4.1.8", "Temporary failure"],
        ),
        ("SPF validation failed", &["usually come with 550 5.7.23"]),
        (
            "Connection timed out",
            &["usually come with 0x800CCC0E", "0x800CCC0E"],
        ),
    ];
    for (text, words) in table {
        let r = explain(&[text]).expect(0);
        for w in *words {
            r.expect_out(w);
        }
    }
}

#[test]
fn a_bounce_line_is_explained_by_the_reply_it_quotes() {
    let bounce = "<bob@example.org>: host mx.example.org[192.0.2.1] said: 450 4.7.25 Client host \
                  rejected: cannot find your hostname, [198.51.100.7] (in reply to RCPT TO command)";
    let r = explain(&[bounce]).expect(0);
    // The code the server sent decides, not the code the words usually come with.
    r.expect_out("4.7.25")
        .expect_out("450")
        .expect_out("Temporary failure");
    r.expect_no_out("No code was given");
    // Several arguments are one text, as the shell split it.
    explain(&[
        "said:",
        "554",
        "5.7.1",
        "<bob@example.org>:",
        "Relay",
        "access",
        "denied",
    ])
    .expect(0)
    .expect_out("5.7.1");
}

#[test]
fn unknown_text_is_not_recognised_and_exits_4() {
    let r = explain(&["the weather is nice today"]).expect(4);
    assert!(r.stderr.contains("not recognised"), "{r}");
    assert!(r.stdout.is_empty(), "{r}");
}
