//! Raw dialogues over a TCP socket: BDAT, pipelining, SMTPUTF8 addresses, talking too early.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use crate::support::{Client, Server};

#[test]
fn bdat_chunks_are_stored_verbatim() {
    let server = Server::start();
    let mut c = server.connect();
    c.expect_reply("220 mx.test.example ESMTP");
    let ehlo = c.expect("EHLO client.example.org", "250");
    assert!(
        ehlo.has_keyword("CHUNKING"),
        "CHUNKING not advertised:\n{}",
        ehlo.text()
    );

    // BDAT content is not dot-stuffed: a lone dot line and leading dots are content as they are.
    let chunks: [&[u8]; 3] = [
        b"From: a@example.org\r\nTo: user@localhost\r\nSubject: relais e2e: BDAT\r\n\r\n",
        b"first line\r\n.\r\n..two dots stay two\r\n.one dot stays\r\n",
        b"a chunk that ends mid-line, the next one goes on: ",
    ];
    let last_chunk: &[u8] = b"end of the line\r\n";
    c.expect("MAIL FROM:<a@example.org>", "250 2.1.0");
    c.expect("RCPT TO:<user@localhost>", "250 2.1.5");
    for chunk in chunks {
        c.send(format!("BDAT {}\r\n", chunk.len()).as_bytes());
        c.send(chunk);
        c.expect_reply(&format!("250 2.0.0 Ok: {} octets", chunk.len()));
    }
    c.send(format!("BDAT {}\r\n", last_chunk.len()).as_bytes());
    c.send(last_chunk);
    c.expect_reply("250 2.0.0");
    let id = c
        .expect("BDAT 0 LAST", "250 2.0.0 Ok: queued as")
        .queue_id();

    // A second message in the same session, pipelined: MAIL, RCPT and one BDAT LAST in one write
    // (RFC 3030 §4.2 allows BDAT to be pipelined).
    let second: &[u8] = b"Subject: second\r\n\r\nin one chunk, no final CRLF";
    let mut burst = b"MAIL FROM:<b@example.org>\r\nRCPT TO:<other@localhost>\r\n".to_vec();
    burst.extend_from_slice(format!("BDAT {} LAST\r\n", second.len()).as_bytes());
    burst.extend_from_slice(second);
    c.send(&burst);
    c.expect_reply("250 2.1.0");
    c.expect_reply("250 2.1.5");
    let id2 = c.expect_reply("250 2.0.0 Ok: queued as").queue_id();
    assert_ne!(id, id2);
    c.quit();

    let expected: Vec<u8> = chunks
        .concat()
        .into_iter()
        .chain(last_chunk.to_vec())
        .collect();
    let mail = server.wait_for_one("user");
    mail.assert_trace("a@example.org", "user@localhost", &id);
    mail.assert_message(&expected);
    let mail = server.wait_for_one("other");
    mail.assert_trace("b@example.org", "other@localhost", &id2);
    mail.assert_message(second);
}

#[test]
fn bdat_errors_keep_the_session_in_step() {
    let server = Server::start();
    let mut c = server.connect_ehlo();
    // BDAT without a transaction: the chunk is read and thrown away, then 503.
    c.send(b"BDAT 5\r\nNOOP\n");
    c.expect_reply("503 5.5.1");
    c.expect("NOOP", "250");
    // DATA after BDAT in one transaction.
    c.expect("MAIL FROM:<a@example.org>", "250");
    c.expect("RCPT TO:<user@localhost>", "250");
    c.send(b"BDAT 3\r\nabc");
    c.expect_reply("250 2.0.0");
    c.expect("DATA", "503 5.5.1");
    c.expect("RSET", "250");
    c.expect("BDAT x", "501 5.5.4");
    c.quit();
    assert!(server.mailboxes().is_empty(), "{:?}", server.mailboxes());
}

#[test]
fn pipelined_commands_in_one_write() {
    let server = Server::start();
    let mut c = server.connect();
    c.expect_reply("220");
    let ehlo = c.expect("EHLO client.example.org", "250");
    assert!(ehlo.has_keyword("PIPELINING"), "{}", ehlo.text());

    // Group 1: the envelope and DATA in one write (RFC 2920: DATA ends a group).
    c.send(
        b"MAIL FROM:<a@example.org>\r\nRCPT TO:<one@localhost>\r\nRCPT TO:<nobody@elsewhere.example>\r\n\
RCPT TO:<two@localhost>\r\nDATA\r\n",
    );
    c.expect_reply("250 2.1.0");
    c.expect_reply("250 2.1.5");
    c.expect_reply("554 5.7.1");
    c.expect_reply("250 2.1.5");
    c.expect_reply("354");

    // Group 2: the content, its end, and the next transaction up to DATA, in one write.
    let first: &[u8] = b"Subject: pipelined 1\r\n\r\nbody one\r\n";
    let second: &[u8] = b"Subject: pipelined 2\r\n\r\nbody two\r\n";
    let mut burst = first.to_vec();
    burst.extend_from_slice(
        b".\r\nMAIL FROM:<b@example.org>\r\nRCPT TO:<three@localhost>\r\nDATA\r\n",
    );
    c.send(&burst);
    let id1 = c.expect_reply("250 2.0.0 Ok: queued as").queue_id();
    c.expect_reply("250 2.1.0");
    c.expect_reply("250 2.1.5");
    c.expect_reply("354");

    // Group 3: the content, its end, RSET and QUIT, in one write (QUIT ends a group; NOOP would
    // too, so it may not come before QUIT here: RFC 2920 §3.1).
    let mut burst = second.to_vec();
    burst.extend_from_slice(b".\r\nRSET\r\nQUIT\r\n");
    c.send(&burst);
    let id2 = c.expect_reply("250 2.0.0 Ok: queued as").queue_id();
    c.expect_reply("250 2.0.0");
    c.expect_reply("221");
    assert!(c.read_to_end().is_empty());
    assert_ne!(id1, id2);

    for local in ["one", "two"] {
        let m = server.wait_for_one(local);
        m.assert_trace("a@example.org", &format!("{local}@localhost"), &id1);
        m.assert_message(first);
    }
    let m = server.wait_for_one("three");
    m.assert_trace("b@example.org", "three@localhost", &id2);
    m.assert_message(second);
    assert_eq!(server.mailboxes(), ["one", "three", "two"]);
}

#[test]
fn smtputf8_addresses_need_the_parameter() {
    let server = Server::start();
    let mut c = server.connect_ehlo();
    // A UTF-8 address without SMTPUTF8 is refused (RFC 6531 §3.4).
    c.expect("MAIL FROM:<rené@example.org>", "553 5.6.7");
    // With it, the sender is fine; a UTF-8 recipient local part is parsed (never 501/553). The
    // server may deliver it or refuse it as an unknown user (relais only names Maildirs after
    // ASCII local parts), but nothing in between.
    c.expect("MAIL FROM:<rené@example.org> SMTPUTF8", "250 2.1.0");
    let r = c.command("RCPT TO:<jösé@localhost>");
    assert!(
        r.starts_with("250 2.1.5") || r.starts_with("550 5.1.1"),
        "RCPT of a UTF-8 local part: {}",
        r.text()
    );
    let accepted = r.code == 250;
    c.expect("RCPT TO:<user@localhost>", "250 2.1.5");
    c.expect("DATA", "354");
    c.send("Subject: ünïcödé\r\n\r\nbody ✓\r\n.\r\n".as_bytes());
    let id = c.expect_reply("250 2.0.0 Ok: queued as").queue_id();
    c.quit();
    let m = server.wait_for_one("user");
    m.assert_trace("rené@example.org", "user@localhost", &id);
    m.assert_message("Subject: ünïcödé\r\n\r\nbody ✓\r\n".as_bytes());
    if accepted {
        server.wait_for_one("jösé");
    }
}

/// A client that speaks before the banner. relais looks for input right after accepting and
/// answers `554 5.5.0` then closes (as Postfix's postscreen does). Whether the client's bytes
/// have arrived by then is a race with the kernel: the connection is complete (and the client
/// may write) before the server's accept returns, but the server may also have sent its banner
/// first. So either outcome is accepted: `554 5.5.0` and the end of the connection, or the
/// banner followed by a normal answer to the EHLO. What must never happen is a crash, a hang,
/// or anything else.
#[test]
fn talking_before_the_banner() {
    let mut server = Server::start();
    let mut refused = 0;
    for _ in 0..5 {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        stream.write_all(b"EHLO early.example.org\r\n").unwrap();
        let mut c = Client::from_stream(stream);
        let first = c.reply();
        if first.starts_with("554 5.5.0") {
            refused += 1;
            let rest = c.read_to_end();
            assert!(
                rest.is_empty(),
                "bytes after 554: {:?}",
                String::from_utf8_lossy(&rest)
            );
        } else {
            assert!(first.starts_with("220 "), "first reply: {}", first.text());
            c.expect_reply("250");
            c.expect("NOOP", "250");
            c.quit();
        }
    }
    eprintln!("early talker refused with 554 in {refused} of 5 tries");
    std::thread::sleep(Duration::from_millis(20));
    server.assert_running();
    // And the server still serves an orderly client.
    let mut c = server.connect_ehlo();
    c.expect("NOOP", "250 2.0.0");
    c.quit();
}
