//! A large message through a running server to every local agent, byte for byte, each reading
//! it from the spool in pieces: a Maildir, an alias command, an alias mbox file, and Dovecot
//! over LMTP.

use std::fs;

use crate::common::large::{assert_tail, crlf, message};
use crate::dovecot::Dovecot;
use crate::support::{Server, open_dir, send, tempdir, wait};

/// Octets of the message: megabytes, many pieces of every agent.
const SIZE: usize = 6_000_000;

#[test]
fn a_large_message_reaches_a_maildir_a_command_and_an_mbox_byte_for_byte() {
    let dir = tempdir();
    let out = open_dir(&dir.path().join("out"));
    let (piped, mbox) = (out.join("piped"), out.join("big.mbox"));
    fs::write(
        dir.path().join("aliases"),
        format!(
            "bigpipe: \"|cat > {}\"\nbigmbox: {}\n",
            piped.display(),
            mbox.display()
        ),
    )
    .unwrap();
    let s = Server::start(
        dir.path(),
        "local.test",
        &format!(
            "[local]\naliases = {:?}\n",
            dir.path().join("aliases").display().to_string()
        ),
    );
    let text = message("large-local", SIZE);
    let rcpts = [
        "alice@local.test",
        "bigpipe@local.test",
        "bigmbox@local.test",
    ];
    let (replies, last) = send(s.port, "sender@local.test", &rcpts, &text);
    assert!(replies.iter().all(|r| r.starts_with("250")), "{replies:?}");
    assert!(last.starts_with("250"), "{last}");
    s.wait_log("removed");
    let want = crlf(&text);
    let mailbox = s.data_dir.join("mail/alice/new");
    let copy = fs::read_dir(&mailbox)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_tail("the Maildir copy", &fs::read(copy).unwrap(), &want);
    assert_tail("the command's input", &fs::read(&piped).unwrap(), &want);
    // mbox: LF line ends, no line quoted (none starts with "From "), a blank line after it.
    let entry = format!("{text}\n");
    assert_tail(
        "the mbox entry",
        &fs::read(&mbox).unwrap(),
        entry.as_bytes(),
    );
}

#[test]
fn a_large_message_reaches_dovecot_over_lmtp_byte_for_byte() {
    let dovecot = Dovecot::start(&["alice"]);
    let dir = tempdir();
    let s = Server::start(
        dir.path(),
        "local.test",
        &format!("[local]\nlmtp = \"{}\"\n", dovecot.addr),
    );
    let text = message("large-lmtp", SIZE);
    let (_, last) = send(s.port, "sender@local.test", &["alice@local.test"], &text);
    assert!(last.starts_with("250"), "{last}");
    wait(
        "the copy in Dovecot",
        || !dovecot.new_messages("alice").is_empty(),
        &s,
    );
    s.wait_log("removed");
    // Dovecot keeps LF line ends.
    let copy = dovecot
        .new_messages("alice")
        .remove(0)
        .replace("\r\n", "\n");
    assert_tail("Dovecot's copy", copy.as_bytes(), text.as_bytes());
}
