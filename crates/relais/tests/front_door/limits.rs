//! Limits, each reached with its reply code and logged with its reason, while the server keeps
//! serving other clients: connections in total, per address and per minute, recipients,
//! messages per session, errors, AUTH failures, the command timeout, and pipelining abuse.

use std::thread;
use std::time::{Duration, Instant};

use crate::support::{BAD_PASSWORD, Client, PASSWORD, Server, Setup, USER, lo, tcp};

/// A client at `from` can still get a message through: the server is serving.
fn still_serving(server: &Server, from: Option<std::net::Ipv4Addr>, user: &str) {
    let before = server.mail_count(user);
    let mut c = Client::ready(server.port("mx"), from);
    let r = c.send_mail(
        "sender@other.test",
        &[&format!("{user}@local.test")],
        "still",
    );
    assert!(r.is("250 2.0.0 Ok: queued as"), "{r}");
    c.quit();
    server.wait_mail(user, before + 1);
}

/// Connects until a client gets the greeting (a slot freed asynchronously), at most 10 s.
fn connect_when_free(server: &Server, from: Option<std::net::Ipv4Addr>) -> Client {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = Client::connect_from(server.port("mx"), from);
        let r = c.reply();
        if r.is("220 ") {
            return c;
        }
        assert!(Instant::now() < deadline, "never served again: {r}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// The refusal a client at the door gets: one `421 4.7.0` line, then the close.
fn assert_refused_at_the_door(server: &Server, from: Option<std::net::Ipv4Addr>) {
    let mut c = Client::connect_from(server.port("mx"), from);
    let r = c.reply();
    assert!(r.is("421 4.7.0"), "{r}");
    c.expect_closed();
}

#[test]
fn max_connections() {
    let server = Server::start(Setup::new(&["mx"]).limit("max_connections = 2"));
    let mut a = Client::connect(server.port("mx"));
    a.greeting();
    let mut b = Client::connect_from(server.port("mx"), lo(3));
    b.greeting();
    // the limit is global: a third address is refused as well
    assert_refused_at_the_door(&server, lo(4));
    server.assert_logged("too many connections: 421 4.7.0");
    // the two sessions being served are not disturbed
    a.ehlo();
    let r = a.send_mail("s@other.test", &["kate@local.test"], "max_connections");
    assert!(r.is("250 2.0.0 Ok: queued as"), "{r}");
    // once one leaves, newcomers are served again
    b.quit();
    let mut c = connect_when_free(&server, lo(4));
    c.ehlo();
    c.quit();
    a.quit();
    server.wait_mail("kate", 1);
}

#[test]
fn max_connections_per_ip() {
    let server = Server::start(Setup::new(&["mx"]).limit("max_connections_per_ip = 2"));
    let mut a = Client::connect(server.port("mx"));
    a.greeting();
    let mut b = Client::connect(server.port("mx"));
    b.greeting();
    assert_refused_at_the_door(&server, None);
    server.assert_logged("too many connections from this address: 421 4.7.0");
    // another address is served meanwhile
    still_serving(&server, lo(3), "liam");
    // and 127.0.0.1 again once one of its sessions is over
    a.quit();
    let mut c = connect_when_free(&server, None);
    c.quit();
    b.quit();
}

#[test]
fn connection_rate_per_ip() {
    let server = Server::start(Setup::new(&["mx"]).limit("connection_rate_per_ip = 3"));
    for _ in 0..3 {
        let mut c = Client::connect(server.port("mx"));
        c.greeting();
        c.quit();
    }
    let mut c = Client::connect(server.port("mx"));
    let r = c.reply();
    assert!(r.is("421 4.7.0"), "fourth connection in a minute: {r}");
    assert!(r.mentions("slow down"), "{r}");
    c.expect_closed();
    server.assert_logged("connection rate limit exceeded");
    // others are not slowed down
    still_serving(&server, lo(3), "mona");
}

#[test]
fn max_recipients() {
    let server = Server::start(Setup::new(&["mx"]).limit("max_recipients = 3"));
    let mut c = Client::ready(server.port("mx"), None);
    c.expect("MAIL FROM:<s@other.test>", "250 ");
    for u in ["nina", "oscar", "paul"] {
        c.expect(&format!("RCPT TO:<{u}@local.test>"), "250 2.1.5");
    }
    c.expect("RCPT TO:<quinn@local.test>", "452 4.5.3");
    // the message goes to the three accepted recipients
    c.expect("DATA", "354 ");
    let r = c.cmd("Subject: three\r\n\r\nthree recipients\r\n.");
    assert!(r.is("250 2.0.0 Ok: queued as"), "{r}");
    // the limit is per message: the next one may have three again
    let r = c.send_mail(
        "s@other.test",
        &["nina@local.test", "oscar@local.test", "paul@local.test"],
        "again",
    );
    assert!(r.is("250 2.0.0 Ok: queued as"), "{r}");
    c.quit();
    for u in ["nina", "oscar", "paul"] {
        server.wait_mail(u, 2);
    }
    assert_eq!(server.mail_count("quinn"), 0);
    server.assert_logged("452 4.5.3");
}

#[test]
fn max_messages_per_session() {
    let server = Server::start(Setup::new(&["mx"]).limit("max_messages_per_session = 2"));
    let mut c = Client::ready(server.port("mx"), None);
    for i in 0..2 {
        let r = c.send_mail("s@other.test", &["rita@local.test"], &format!("m{i}"));
        assert!(r.is("250 2.0.0 Ok: queued as"), "{r}");
    }
    let r = c.cmd("MAIL FROM:<s@other.test>");
    assert!(r.is("421 4.7.0"), "third message: {r}");
    assert!(r.mentions("too many messages"), "{r}");
    c.expect_closed();
    server.assert_logged("too many messages in this session");
    server.wait_mail("rita", 2);
    still_serving(&server, None, "rita");
}

#[test]
fn max_errors() {
    let server = Server::start(Setup::new(&["mx"]).limit("max_errors = 3"));
    let mut c = Client::ready(server.port("mx"), None);
    c.expect("BOGUS 1", "500 5.5.2");
    c.expect("RCPT TO:<x@local.test>", "503 5.5.1");
    c.expect("BOGUS 3", "500 5.5.2");
    let r = c.reply();
    assert!(r.is("421 4.7.0"), "after the third error: {r}");
    assert!(r.mentions("too many errors"), "{r}");
    c.expect_closed();
    server.assert_logged("too many errors");
    still_serving(&server, None, "sam");
}

#[test]
fn auth_failures_per_address() {
    let server = Server::start(Setup::new(&["mx", "submission"]).max_failures(2));
    let mut c = Client::ready(server.port("submission"), None);
    c.starttls();
    for _ in 0..2 {
        let r = c.auth_plain(USER, BAD_PASSWORD);
        assert!(r.is("535 5.7.8"), "{r}");
    }
    // the third attempt is refused even with the right password
    let r = c.auth_plain(USER, PASSWORD);
    assert!(r.is("454 4.7.0"), "third attempt: {r}");
    // in a new session from the same address too
    let mut d = Client::ready(server.port("submission"), None);
    d.starttls();
    let r = d.auth_login(USER, PASSWORD);
    assert!(r.is("454 4.7.0"), "new session, same address: {r}");
    d.quit();
    c.quit();
    server.assert_logged("AUTH refused: too many failures from this address");
    // another address logs in fine
    let mut e = Client::ready(server.port("submission"), lo(3));
    e.starttls();
    let r = e.auth_plain(USER, PASSWORD);
    assert!(r.is("235 2.7.0"), "{r}");
    e.quit();
    still_serving(&server, None, "tina");
}

#[test]
fn auth_failures_are_slowed_down() {
    let server = Server::start(Setup::new(&["submissions"]).failure_delay_ms(1500));
    let mut c = Client::connect_tls(server.port("submissions"), None);
    c.greeting();
    c.ehlo();
    let started = Instant::now();
    let r = c.auth_plain(USER, BAD_PASSWORD);
    let failed_after = started.elapsed();
    assert!(r.is("535 5.7.8"), "{r}");
    assert!(
        failed_after >= Duration::from_millis(1500),
        "535 after {failed_after:?}"
    );
    // a good password is not delayed (argon2 alone takes well under the delay)
    let started = Instant::now();
    let r = c.auth_plain(USER, PASSWORD);
    assert!(r.is("235 2.7.0"), "{r}");
    assert!(
        started.elapsed() < failed_after,
        "235 after {:?}",
        started.elapsed()
    );
    c.quit();
}

#[test]
fn command_timeout() {
    let server = Server::start(Setup::new(&["mx"]).limit("command_timeout = 1"));
    let mut idle = Client::ready(server.port("mx"), None);
    let started = Instant::now();
    let r = idle.reply();
    let waited = started.elapsed();
    assert!(r.is("421 4.4.2"), "{r}");
    assert!(r.mentions("timeout"), "{r}");
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(8),
        "timed out after {waited:?}"
    );
    idle.expect_closed();
    server.assert_logged("timeout after 1s from unknown[127.0.0.1]");
    // a client that keeps talking is served (each command within the second)
    let mut busy = Client::ready(server.port("mx"), None);
    for _ in 0..3 {
        thread::sleep(Duration::from_millis(400));
        busy.expect("NOOP", "250 ");
    }
    busy.quit();
}

#[test]
fn pipelining_after_ehlo_is_refused() {
    let server = Server::start(Setup::new(&["mx"]));
    let mut c = Client::connect(server.port("mx"));
    c.greeting();
    // EHLO must be answered before the client goes on (RFC 2920): one write with both
    c.write_raw(b"EHLO client.test\r\nMAIL FROM:<s@other.test>\r\n");
    let mut r = c.reply();
    if r.is("250 ") {
        // the EHLO reply may come first; the violation follows
        r = c.reply();
    }
    assert!(r.is("554 5.5.0"), "{r}");
    c.expect_closed();
    server.assert_logged("improper command pipelining after EHLO client.test");
    still_serving(&server, None, "uma");
}

#[test]
fn pipelining_without_ehlo_is_refused() {
    let server = Server::start(Setup::new(&["mx"]));
    let mut c = Client::connect(server.port("mx"));
    c.greeting();
    c.expect("HELO client.test", "250 ");
    // HELO clients were not offered PIPELINING
    c.write_raw(b"MAIL FROM:<s@other.test>\r\nRCPT TO:<uma@local.test>\r\n");
    let mut r = c.reply();
    if r.is("250 2.1.0") {
        r = c.reply();
    }
    assert!(r.is("554 5.5.0"), "{r}");
    c.expect_closed();
    server.assert_logged("improper command pipelining after MAIL FROM:<s@other.test>");
}

#[test]
fn lawful_pipelining_is_served() {
    let server = Server::start(Setup::new(&["mx"]));
    let mut c = Client::ready(server.port("mx"), None);
    c.write_raw(b"MAIL FROM:<s@other.test>\r\nRCPT TO:<vera@local.test>\r\nDATA\r\n");
    for want in ["250 2.1.0", "250 2.1.5", "354 "] {
        let r = c.reply();
        assert!(r.is(want), "want {want}, got {r}");
    }
    let r = c.cmd("Subject: pipelined\r\n\r\nok\r\n.");
    assert!(r.is("250 2.0.0 Ok: queued as"), "{r}");
    c.quit();
    server.wait_mail("vera", 1);
}

#[test]
fn talking_before_the_greeting_is_refused() {
    let server = Server::start(Setup::new(&["mx"]));
    // Whether the bytes are there before the server looks is a race: try a few times, accept
    // either outcome, but every early talker must get 554 5.5.0 or a normal session.
    let mut refused = 0;
    for _ in 0..5 {
        let mut s = tcp(server.port("mx"), None).expect("connect");
        std::io::Write::write_all(&mut s, b"EHLO early.test\r\n").expect("write");
        let mut c = Client::from_tcp(s);
        let r = c.reply();
        if r.is("554 5.5.0") {
            refused += 1;
            c.expect_closed();
        } else {
            assert!(r.is("220 "), "{r}");
            let r = c.reply();
            assert!(r.is("250"), "EHLO after the greeting: {r}");
            c.quit();
        }
    }
    if refused > 0 {
        server.assert_logged("pregreet from unknown[127.0.0.1]");
    }
    eprintln!("early talkers refused: {refused} of 5");
    still_serving(&server, None, "walt");
}
