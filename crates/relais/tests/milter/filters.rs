//! Every answer of a filter built on libmilter, carried out by relais.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::common::process::{Daemon, require};
use crate::common::wait::{free_port, tempdir, wait_until};
use crate::support::{Client, Server, Setup};

/// The test filter, running; its story file.
struct TestFilter {
    daemon: Daemon,
    seen: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestFilter {
    fn start() -> TestFilter {
        require(
            "/usr/bin/python3",
            &["-c", "import Milter"],
            "apt-get install python3-milter (scripts/deps.sh does)",
        );
        let dir = tempdir("relais-milter-");
        let seen = dir.path().join("seen.jsonl");
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/milter/py/test_filter.py"
        );
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(script).arg(free_port().to_string()).arg(&seen);
        let daemon = Daemon::start("test_filter", cmd, 1, Duration::from_secs(15));
        TestFilter {
            daemon,
            seen,
            _dir: dir,
        }
    }

    fn port(&self) -> u16 {
        self.daemon.addr().port()
    }

    /// The stories of the messages the filter finished, waiting until there are `n`.
    fn seen(&self, n: usize) -> Vec<serde_json::Value> {
        wait_until("the filter's story", Duration::from_secs(10), || {
            let text = std::fs::read_to_string(&self.seen).unwrap_or_default();
            let stories: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).expect("a JSON line"))
                .collect();
            (stories.len() >= n).then_some(stories)
        })
    }
}

/// A server with `[[milter]]` at `port` and these extra lines in its table.
fn server(port: u16, lines: &[&str]) -> Server {
    let mut milter = format!("[[milter]]\naddress = \"inet:127.0.0.1:{port}\"");
    for l in lines {
        milter.push('\n');
        milter.push_str(l);
    }
    Server::start(Setup::new(&["mx"]).without_tls().top(&milter))
}

/// Sends one message with this subject and extra header lines; the final reply.
fn send(server: &Server, subject: &str, extra: &str) -> crate::support::Reply {
    let mut c = Client::ready(server.port("mx"), None);
    c.expect("MAIL FROM:<sender@other.test>", "250 ");
    c.expect("RCPT TO:<kate@local.test>", "250 ");
    c.expect("DATA", "354 ");
    let r = c.cmd(&format!(
        "From: <sender@other.test>\r\nSubject: {subject}\r\n{extra}\r\nthe body\r\n."
    ));
    c.quit();
    r
}

#[test]
fn a_clean_message_gets_the_filters_header_and_the_filter_is_told_everything() {
    let filter = TestFilter::start();
    let server = server(filter.port(), &[]);
    let r = send(&server, "hello", "X-One: 1\r\n");
    assert!(r.is("250 2.0.0 Ok: queued as"), "{r}");
    let mail = &server.wait_mail("kate", 1)[0];
    assert!(mail.contains("\r\nX-Test-Filter: seen\r\n"), "{mail}");
    // added at the end of the header, after the client's own fields
    assert!(mail.find("X-One: 1").unwrap() < mail.find("X-Test-Filter").unwrap());
    let story = &filter.seen(1)[0];
    assert_eq!(story["connect"]["addr"][0], "127.0.0.1");
    assert_eq!(story["connect"]["client_addr"], "127.0.0.1");
    assert_eq!(story["from"], "<sender@other.test>");
    assert_eq!(story["rcpts"][0], "<kate@local.test>");
    assert_eq!(story["helo"], "client.test");
    // the message as the client sent it: our Received is not shown
    let names: Vec<&str> = story["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h[0].as_str().unwrap())
        .collect();
    assert_eq!(names, ["From", "Subject", "X-One"]);
    assert_eq!(story["headers"][1][1], "hello");
    assert_eq!(story["body_tail"], "the body\r\n");
    // the queue id is the one relais logs
    let id = story["queue_id"].as_str().unwrap().to_string();
    assert!(r.mentions(&id), "{r} vs {id}");
    assert_eq!(story["macros"]["j"], crate::support::HOSTNAME);
}

/// The queue id in a `250 2.0.0 Ok: queued as ID` reply.
fn queue_id(r: &crate::support::Reply) -> String {
    let last = r.lines.last().expect("a reply line");
    last.rsplit(' ').next().unwrap().to_string()
}

/// `relais queue -c CONFIG ARGS…` against the running server.
fn queue(server: &Server, args: &[&str]) -> crate::common::process::Run {
    let mut cmd = Command::new(crate::common::RELAIS);
    cmd.arg("queue").arg("-c").arg(&server.config).args(args);
    crate::common::process::run(cmd, None, Duration::from_secs(20))
}

#[test]
fn refusals_at_mail_rcpt_and_end_carry_the_filters_text_and_the_session_goes_on() {
    let filter = TestFilter::start();
    let server = server(filter.port(), &[]);
    let mut c = Client::ready(server.port("mx"), None);
    let r = c.cmd("MAIL FROM:<spammer@other.test>");
    assert!(r.is("550 5.7.1 Sender refused by the test filter"), "{r}");
    // a new transaction in the same session
    c.expect("MAIL FROM:<sender@other.test>", "250 ");
    let r = c.cmd("RCPT TO:<blocked@local.test>");
    assert!(
        r.is("550 5.1.1 Recipient refused by the test filter"),
        "{r}"
    );
    c.expect("RCPT TO:<kate@local.test>", "250 ");
    c.expect("DATA", "354 ");
    let r = c.cmd("Subject: please reject-me\r\n\r\nbody\r\n.");
    assert!(r.is("550 5.7.1 Rejected by the test filter"), "{r}");
    c.expect("MAIL FROM:<sender@other.test>", "250 ");
    c.expect("RCPT TO:<kate@local.test>", "250 ");
    c.expect("DATA", "354 ");
    let r = c.cmd("Subject: tempfail-me\r\n\r\nbody\r\n.");
    assert!(
        r.is("451 4.7.1 Service unavailable - try again later"),
        "{r}"
    );
    // the next message of the session is accepted
    let r = c.send_mail("sender@other.test", &["kate@local.test"], "fine");
    assert!(r.is("250 2.0.0 Ok: queued as"), "{r}");
    c.quit();
    let mail = server.wait_mail("kate", 1);
    assert_eq!(mail.len(), 1);
    assert!(mail[0].contains("Subject: fine"), "{}", mail[0]);
    server.assert_logged("milter-reject: MAIL from unknown[127.0.0.1]");
    server.assert_logged("milter-reject: RCPT from unknown[127.0.0.1]:");
    server.assert_logged("550 5.7.1 Rejected by the test filter; from=<sender@other.test>");
}

#[test]
fn discard_answers_250_and_delivers_nothing() {
    let filter = TestFilter::start();
    let server = server(filter.port(), &[]);
    let r = send(&server, "discard-me", "");
    assert!(r.is("250 2.0.0 Ok: queued as"), "{r}");
    let id = queue_id(&r);
    server.assert_logged(&format!("{id}: milter-discard: END-OF-MESSAGE from "));
    let r = send(&server, "after", "");
    assert!(r.is("250 2.0.0 Ok: queued as"), "{r}");
    let mail = server.wait_mail("kate", 1);
    assert_eq!(mail.len(), 1, "the discarded message was delivered");
    assert!(mail[0].contains("Subject: after"));
    assert!(!server.log().contains(&format!("{id}: queued")));
}

#[test]
fn quarantine_holds_the_message_until_released() {
    let filter = TestFilter::start();
    let server = server(filter.port(), &[]);
    let r = send(&server, "quarantine-me", "");
    assert!(r.is("250 2.0.0 Ok: queued as"), "{r}");
    let id = queue_id(&r);
    server.assert_logged(&format!(
        "{id}: milter-hold: END-OF-MESSAGE from unknown[127.0.0.1]"
    ));
    queue(&server, &["show", &id])
        .expect(0)
        .shows(&[&format!("Queue ID:  {id} (held)"), "X-Test-Filter: seen"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.mail_count("kate"), 0, "a held message was delivered");
    queue(&server, &["release", &id]).expect(0);
    let mail = &server.wait_mail("kate", 1)[0];
    assert!(mail.contains("Subject: quarantine-me"), "{mail}");
}

#[test]
fn header_changes_are_made_where_the_filter_asked() {
    let filter = TestFilter::start();
    let server = server(filter.port(), &[]);
    let r = send(
        &server,
        "change-me",
        "Received: from earlier.test by relay.test\r\nX-Remove: secret\r\nX-Keep: kept\r\n",
    );
    assert!(r.is("250 2.0.0 Ok: queued as"), "{r}");
    let mail = &server.wait_mail("kate", 1)[0];
    let header = &mail[..mail.find("\r\n\r\n").unwrap()];
    assert!(
        header.contains("\r\nSubject: [filtered] change-me\r\n"),
        "{header}"
    );
    assert!(!header.contains("X-Remove"), "{header}");
    assert!(header.contains("X-Keep: kept"), "{header}");
    assert!(
        header.contains("\r\nX-Added: a long value\r\n\tfolded on two lines"),
        "{header}"
    );
    // inserted on top of the header as delivered: above our own Received
    let top = header.find("X-Top: inserted on top").expect("X-Top");
    let ours = header
        .find("by mx.local.test (relais)")
        .expect("our Received");
    assert!(top < ours, "{header}");
    // the client's own Received is still there, after ours
    assert!(header.find("from earlier.test").unwrap() > ours, "{header}");
    assert!(mail.ends_with("\r\n\r\nthe body\r\n"), "{mail}");
}

#[test]
fn a_replaced_body_is_what_is_delivered() {
    let filter = TestFilter::start();
    let server = server(filter.port(), &[]);
    let r = send(&server, "replace-body", "");
    assert!(r.is("250 2.0.0 Ok: queued as"), "{r}");
    let mail = &server.wait_mail("kate", 1)[0];
    assert!(mail.contains("\r\nSubject: replace-body\r\n"), "{mail}");
    assert!(
        mail.ends_with("\r\n\r\nThe test filter replaced this body.\r\n"),
        "{mail}"
    );
    assert!(!mail.contains("the body"), "{mail}");
    // our Received header is there once
    assert_eq!(
        mail.matches("by mx.local.test (relais)").count(),
        1,
        "{mail}"
    );
}

#[test]
fn a_large_message_replaced_by_a_large_body() {
    // both larger than what the spool keeps inline: each has a data file named after the id
    let filter = TestFilter::start();
    let server = server(filter.port(), &[]);
    let big =
        "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxy\r\n".repeat(5000);
    let r = send(
        &server,
        "replace-big",
        &format!("X-Size: large\r\n\r\n{big}"),
    );
    assert!(r.is("250 2.0.0 Ok: queued as"), "{r}");
    let mail = &server.wait_mail("kate", 1)[0];
    let body = &mail[mail.find("\r\n\r\n").unwrap() + 4..];
    assert_eq!(body.len(), 8 * 1000 * 61, "{}", &mail[..400]);
    assert!(body.starts_with("The test filter replaced this body with a long one"));
    assert!(!mail.contains("0123456789abcdef"));
}

#[test]
fn a_filter_that_is_down_gets_the_default_action() {
    // nothing listens on this port
    let port = free_port();
    let server = server(port, &[]);
    let mut c = Client::ready(server.port("mx"), None);
    let r = c.cmd("MAIL FROM:<sender@other.test>");
    assert!(
        r.is("451 4.7.1 Service unavailable - try again later"),
        "{r}"
    );
    c.quit();
    server.assert_logged(&format!(
        "milter 127.0.0.1:{port}: cannot connect: Connection refused"
    ));
    // with default_action = "accept", mail goes through without it
    let server = self::server(port, &["default_action = \"accept\""]);
    let r = send(&server, "unfiltered", "");
    assert!(r.is("250 2.0.0 Ok: queued as"), "{r}");
    let mail = &server.wait_mail("kate", 1)[0];
    assert!(!mail.contains("X-Test-Filter"), "{mail}");
}

#[test]
fn a_filter_that_is_too_slow_gets_the_default_action() {
    let filter = TestFilter::start();
    let server = server(filter.port(), &["content_timeout = 1"]);
    let started = std::time::Instant::now();
    let r = send(&server, "slow-me", "");
    assert!(
        r.is("451 4.7.1 Service unavailable - try again later"),
        "{r}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    server.assert_logged("no answer within 1s; default action tempfail");
    assert_eq!(server.mail_count("kate"), 0);
}
