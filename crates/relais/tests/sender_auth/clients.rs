//! Who the client is (issue 12, first part): DNS lists scored at connect, reverse DNS in the
//! log and the `Received` header and as a reason to refuse, HELO names, sender domains on
//! domain lists. Clients come from 127.0.0.2, .3, … (loopback only); every answer from the
//! fixture DNS.

use std::net::Ipv4Addr;

use relais_dns::fixture::Fault;

use crate::common::Zone;
use crate::support::{Client, PASSWORD, Server, USER, received};
use crate::zone::{restart, setup, start_dns};

fn lo(n: u8) -> Option<Ipv4Addr> {
    Some(Ipv4Addr::new(127, 0, 0, n))
}

/// The lists and names of the tests.
fn zone() -> Zone {
    Zone::new()
        // bl.test*3 names .2 and .3; small.test*1 names .4; white.test*-5 names .3;
        // broken.test answers .5 with an error code (RFC 5782 test points style)
        .a("2.0.0.127.bl.test", "127.0.0.2")
        .txt("2.0.0.127.bl.test", "listed: see https://bl.test/127.0.0.2")
        .a("3.0.0.127.bl.test", "127.0.0.2")
        .a("4.0.0.127.small.test", "127.0.0.2")
        .a("3.0.0.127.white.test", "127.0.0.2")
        .a("5.0.0.127.broken.test", "127.255.255.254")
        // all.test names everyone, the RFC 5782 test point 127.0.0.1 included (a dead list
        // whose domain was taken over); failing.test answers SERVFAIL
        .a("1.0.0.127.all.test", "127.0.0.2")
        .a("2.0.0.127.all.test", "127.0.0.2")
        .a("4.0.0.127.all.test", "127.0.0.2")
        .fault("failing.test", Fault::ServFail)
        .fault("slow.test", Fault::Silent)
        // .6 has a confirmed PTR, .7 a PTR that lies, .8 none
        .ptr("127.0.0.6", "good.test")
        .a("good.test", "127.0.0.6")
        .ptr("127.0.0.7", "liar.test")
        .a("liar.test", "192.0.2.1")
        // .10 has a PTR that resolves back but is no host name
        .ptr("127.0.0.10", "odd name\\;<x>.test")
        .a("odd name\\;<x>.test", "127.0.0.10")
        // the sender domain list
        .a("spam.test.dbl.test", "127.0.1.2")
}

/// MAIL FROM after EHLO `helo`, from 127.0.0.`from`: the reply.
fn mail_from(port: u16, from: u8, helo: &str, sender: &str) -> crate::support::Reply {
    let mut c = Client::connect_from(port, lo(from));
    c.greeting();
    c.expect(&format!("EHLO {helo}"), "250 ");
    c.cmd(&format!("MAIL FROM:<{sender}>"))
}

#[test]
fn dns_lists_are_scored_against_the_threshold() {
    let dns = start_dns(zone());
    let s = Server::start(
        setup(
            &dns,
            &[
                "dnsbl = [\"bl.test*3\", \"small.test\", \"white.test*-5\", \"broken.test*3\", \
                 \"all.test*9\", \"failing.test*9\"]",
                "dnsbl_threshold = 3",
            ],
        )
        .auth("allow_plaintext = true"),
    );
    let port = s.port("mx");
    // (client, expected start of the MAIL reply)
    let table: &[(u8, &str)] = &[
        (1, "250 2.1.0"),
        (
            2,
            "554 5.7.1 Service unavailable; client [127.0.0.2] blocked using bl.test",
        ),
        (3, "250 2.1.0"), // listed, but white-listed more
        (4, "250 2.1.0"), // weight 1, under the threshold
        (5, "250 2.1.0"), // the list's error answer counts for nothing
    ];
    for (from, expected) in table {
        let r = mail_from(port, *from, "client.test", "someone@example.test");
        assert!(r.is(expected), "127.0.0.{from}: {r}");
    }
    s.assert_logged("NOQUEUE: dnsbl score 3 (bl.test*3 listed 127.0.0.2");
    s.assert_logged("broken.test error:");
    s.assert_logged("all.test error: names the test point 127.0.0.1");
    s.assert_logged("failing.test error:");
    // an authenticated client is not held to the lists
    let mut c = Client::ready(port, lo(2));
    assert!(c.auth_plain(USER, PASSWORD).is("235 "));
    assert!(c.cmd("MAIL FROM:<alice@local.test>").is("250 "));
}

#[test]
fn a_slow_list_does_not_hold_mail_back() {
    let dns = start_dns(zone());
    let s = Server::start(setup(
        &dns,
        &["dnsbl = [\"slow.test*5\"]", "lookup_timeout = \"700ms\""],
    ));
    let started = std::time::Instant::now();
    let r = mail_from(s.port("mx"), 2, "client.test", "someone@example.test");
    assert!(r.is("250 2.1.0"), "{r}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    s.assert_logged("(lookups timed out)");
}

#[test]
fn reverse_dns_names_the_client_and_refuses_the_unknown() {
    let dns = start_dns(zone());
    let s = Server::start(setup(
        &dns,
        &[
            "reverse_dns = true",
            "reject_unknown_client = \"permanent\"",
        ],
    ));
    let port = s.port("mx");
    let mut c = Client::ready(port, lo(6));
    assert!(
        c.send_mail("someone@example.test", &["bob@local.test"], "named")
            .is("250 ")
    );
    let mail = s.wait_mail("bob", 1).remove(0);
    let r = received(&mail);
    assert!(r.contains("(good.test [127.0.0.6])"), "{r}");
    s.assert_logged("client=good.test[127.0.0.6]");
    for from in [7, 8, 10] {
        let r = mail_from(port, from, "client.test", "someone@example.test");
        assert!(
            r.is(&format!("550 5.7.25 Client host rejected: cannot find your reverse hostname, [127.0.0.{from}]")),
            "{r}"
        );
    }
    // the odd name resolves back, but names nobody: it shows nowhere
    s.assert_logged(
        "NOQUEUE: ptr not_confirmed: from=<someone@example.test> refused for unknown[127.0.0.10]",
    );
    assert!(!s.log().contains("<x>.test"), "{}", s.log());
    let s = Server::start(setup(
        &dns,
        &[
            "reverse_dns = true",
            "reject_unknown_client = \"temporary\"",
        ],
    ));
    assert!(mail_from(s.port("mx"), 8, "client.test", "x@example.test").is("450 4.7.25"));
}

#[test]
fn helo_names_are_checked_only_when_asked() {
    let dns = start_dns(zone());
    let s = Server::start(setup(&dns, &["helo = \"reject\""]));
    let port = s.port("mx");
    let table: &[(&str, &str)] = &[
        ("client.test", "250 2.1.0"),
        ("[127.0.0.1]", "250 2.1.0"),
        (
            "x",
            "504 5.5.2 <x>: Helo command rejected: need fully-qualified hostname",
        ),
        (
            "bad_name.test",
            "501 5.5.2 <bad_name.test>: Helo command rejected: Invalid name",
        ),
        (
            "mx.local.test",
            "550 5.7.1 <mx.local.test>: Helo command rejected: that is my name",
        ),
    ];
    for (helo, expected) in table {
        let r = mail_from(port, 1, helo, "someone@example.test");
        assert!(r.is(expected), "EHLO {helo}: {r}");
    }
    // a 10 kB HELO gets an answer and the session goes on
    let mut c = Client::connect(port);
    c.greeting();
    let r = c.cmd(&format!("EHLO {}", "a".repeat(10_000)));
    assert!(r.is("500 ") || r.is("501 "), "{r}");
    c.expect("EHLO client.test", "250 ");
    // off (the default): seed 000's `helo x` works
    let s = Server::start(setup(&dns, &[]));
    assert!(mail_from(s.port("mx"), 1, "x", "someone@example.test").is("250 2.1.0"));
}

#[test]
fn sender_domains_on_a_domain_list_are_refused() {
    let dns = start_dns(zone());
    let s = Server::start(setup(&dns, &["rhsbl = [\"dbl.test\"]"]));
    let port = s.port("mx");
    let r = mail_from(port, 1, "client.test", "a@spam.test");
    assert!(
        r.is("554 5.7.1 Service unavailable; Sender address [a@spam.test] blocked using dbl.test"),
        "{r}"
    );
    assert!(mail_from(port, 1, "client.test", "a@clean.test").is("250 2.1.0"));
    assert!(mail_from(port, 1, "client.test", "").is("250 2.1.0"));
}

#[test]
fn own_refusal_texts() {
    let dns = start_dns(zone());
    let s = Server::start(setup(
        &dns,
        &[
            "dnsbl = [\"bl.test*3\"]",
            "dnsbl_threshold = 3",
            "[policy.texts]",
            "dnsbl = \"{client} is on {list}; write to postmaster@local.test\"",
        ],
    ));
    let r = mail_from(s.port("mx"), 2, "client.test", "x@example.test");
    assert!(
        r.is("554 5.7.1 127.0.0.2 is on bl.test; write to postmaster@local.test"),
        "{r}"
    );
}

/// RCPT TO after MAIL FROM, from 127.0.0.`from`: the reply.
fn rcpt(port: u16, from: u8, sender: &str, to: &str) -> crate::support::Reply {
    let mut c = Client::ready(port, lo(from));
    c.expect(&format!("MAIL FROM:<{sender}>"), "250 ");
    c.cmd(&format!("RCPT TO:<{to}>"))
}

#[test]
fn greylisting_defers_a_first_try_and_takes_the_retry_even_after_a_restart() {
    let dns = start_dns(zone());
    let mut s = Server::start(
        setup(
            &dns,
            &[
                "greylist = true",
                "greylist_delay = \"2s\"",
                "dnsbl = [\"white.test*-5\"]",
            ],
        )
        .auth("allow_plaintext = true"),
    );
    let port = s.port("mx");
    let r = rcpt(port, 2, "alice@example.test", "bob@local.test");
    assert!(
        r.is("451 4.7.1 <bob@local.test>: Recipient address rejected: Greylisted, please try again in 2 seconds"),
        "{r}"
    );
    s.assert_logged("greylisted (a retry passes in 2 s): to=<bob@local.test> deferred");
    // too early: still deferred
    assert!(rcpt(port, 2, "alice@example.test", "bob@local.test").is("451 4.7.1"));
    // the entry is on disk: a restart keeps it
    restart(&mut s);
    let port = s.port("mx");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert!(rcpt(port, 2, "alice@example.test", "bob@local.test").is("250 2.1.5"));
    // the network passed: another sender, another recipient, another address of it
    assert!(rcpt(port, 4, "carol@example.test", "dave@local.test").is("250 2.1.5"));
    // a white-listed client (DNSWL, negative weight) and an authenticated one skip it
    assert!(rcpt(s.port("mx"), 3, "x@example.test", "bob@local.test").is("250 2.1.5"));
    let mut c = Client::ready(port, Some(Ipv4Addr::new(127, 0, 1, 9)));
    assert!(c.auth_plain(USER, PASSWORD).is("235 "));
    c.expect("MAIL FROM:<alice@local.test>", "250 ");
    assert!(c.cmd("RCPT TO:<bob@local.test>").is("250 2.1.5"));
    // a stranger from another network is greylisted
    let mut c = Client::ready(port, Some(Ipv4Addr::new(127, 0, 1, 10)));
    c.expect("MAIL FROM:<eve@example.test>", "250 ");
    assert!(c.cmd("RCPT TO:<bob@local.test>").is("451 4.7.1"));
}

#[test]
fn rate_limits_per_address_and_per_user_and_the_tarpit() {
    let dns = start_dns(zone());
    let s = Server::start(
        setup(&dns, &[])
            .auth("allow_plaintext = true")
            .relay_networks(&["127.0.0.9/32"])
            .limit("message_rate_per_ip = 2")
            .limit("recipient_rate_per_user = 3")
            .limit("soft_error_limit = 2")
            .limit("error_sleep = 300"),
    );
    let port = s.port("mx");
    // two messages a minute from 127.0.0.2, then 450 4.7.1; other addresses are counted apart
    let mut c = Client::ready(port, lo(2));
    for _ in 0..2 {
        c.expect("MAIL FROM:<a@example.test>", "250 ");
        c.expect("RSET", "250 ");
    }
    let r = c.cmd("MAIL FROM:<a@example.test>");
    assert!(r.is("450 4.7.1 Error: too much mail from 127.0.0.2"), "{r}");
    s.assert_logged("NOQUEUE: message rate over 2 a minute: from=<a@example.test> refused");
    assert!(mail_from(port, 3, "client.test", "a@example.test").is("250 "));
    // a relay network is not counted
    let mut c = Client::ready(port, lo(9));
    for _ in 0..4 {
        c.expect("MAIL FROM:<a@local.test>", "250 ");
        c.expect("RSET", "250 ");
    }
    // three recipients an hour for alice, then 450 4.7.1 and a log line naming her
    let mut c = Client::ready(port, lo(4));
    assert!(c.auth_plain(USER, PASSWORD).is("235 "));
    c.expect("MAIL FROM:<alice@local.test>", "250 ");
    for n in 0..3 {
        c.expect(&format!("RCPT TO:<r{n}@example.org>"), "250 ");
    }
    let r = c.cmd("RCPT TO:<r3@example.org>");
    assert!(
        r.is("450 4.7.1 <r3@example.org>: Recipient address rejected: too many recipients from user alice this hour"),
        "{r}"
    );
    s.assert_logged("rate limit: user alice reached 4 recipients this hour (limit 3)");
    // the tarpit: beyond two errors, each error reply waits 300 ms more
    let mut c = Client::ready(port, lo(5));
    let mut times = Vec::new();
    for _ in 0..4 {
        let started = std::time::Instant::now();
        assert!(c.cmd("BOGUS").is("500 "));
        times.push(started.elapsed());
    }
    assert!(
        times[0] < std::time::Duration::from_millis(250),
        "{times:?}"
    );
    assert!(
        times[2] >= std::time::Duration::from_millis(300),
        "{times:?}"
    );
    assert!(
        times[3] >= std::time::Duration::from_millis(600),
        "{times:?}"
    );
}

#[test]
fn a_message_rate_limit_is_released_in_the_next_window() {
    let dns = start_dns(zone());
    let s = Server::start(
        setup(&dns, &[])
            .limit("message_rate_per_ip = 2")
            .limit("rate_time_unit = 2"),
    );
    let port = s.port("mx");
    let mut c = Client::ready(port, lo(6));
    for _ in 0..2 {
        c.expect("MAIL FROM:<a@example.test>", "250 ");
        c.expect("RSET", "250 ");
    }
    let r = c.cmd("MAIL FROM:<a@example.test>");
    assert!(r.is("450 4.7.1 Error: too much mail from 127.0.0.6"), "{r}");
    s.assert_logged("NOQUEUE: message rate over 2 in 2 s: from=<a@example.test> refused");
    // the next window (at most 2 s away) lets the same client send again, in the same session
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let r = c.cmd("MAIL FROM:<a@example.test>");
        if r.is("250 ") {
            break;
        }
        assert!(r.is("450 4.7.1"), "{r}");
        assert!(std::time::Instant::now() < deadline, "never released: {r}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    c.expect("RCPT TO:<bob@local.test>", "250 ");
    c.expect("DATA", "354 ");
    assert!(
        c.cmd("Subject: released\r\n\r\nhi\r\n.")
            .is("250 2.0.0 Ok: queued as")
    );
}

/// A `redis-server` of the test's own (Debian's; scripts/deps.sh installs it) on a free port of
/// 127.0.0.1, without persistence. Stopped by its PID, never by name.
struct RedisServer {
    child: Option<std::process::Child>,
    port: u16,
}

impl RedisServer {
    fn start() -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = RedisServer { child: None, port };
        r.again();
        r
    }

    /// Starts it (again) on its port.
    fn again(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (scripts/deps.sh installs it)");
        self.child = Some(child);
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(started.elapsed().as_secs() < 10, "redis-server up");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Stops it (SIGKILL to its PID) and waits for it.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn two_servers_share_greylisting_and_limits_through_redis_and_survive_its_absence() {
    let dns = start_dns(zone());
    let mut redis = RedisServer::start();
    let start = || {
        Server::start(
            setup(&dns, &["greylist = true", "greylist_delay = \"2s\""])
                .top(&format!(
                    "[state]\nredis = \"redis://127.0.0.1:{}\"",
                    redis.port
                ))
                .auth("allow_plaintext = true")
                .limit("recipient_rate_per_user = 3"),
        )
    };
    let (a, b) = (start(), start());
    let (pa, pb) = (a.port("mx"), b.port("mx"));
    // greylisted through the first, the retry taken by the second
    assert!(rcpt(pa, 2, "alice@example.test", "bob@local.test").is("451 4.7.1"));
    assert!(
        rcpt(pb, 2, "alice@example.test", "bob@local.test").is("451 4.7.1"),
        "too early"
    );
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let r = rcpt(pb, 2, "alice@example.test", "bob@local.test");
    assert!(r.is("250 2.1.5"), "{r}");
    // alice's three recipients an hour, counted across both
    let mut c = Client::ready(pa, lo(4));
    assert!(c.auth_plain(USER, PASSWORD).is("235 "));
    c.expect("MAIL FROM:<alice@local.test>", "250 ");
    c.expect("RCPT TO:<r0@example.org>", "250 ");
    c.expect("RCPT TO:<r1@example.org>", "250 ");
    let mut c = Client::ready(pb, lo(4));
    assert!(c.auth_plain(USER, PASSWORD).is("235 "));
    c.expect("MAIL FROM:<alice@local.test>", "250 ");
    c.expect("RCPT TO:<r2@example.org>", "250 ");
    let r = c.cmd("RCPT TO:<r3@example.org>");
    assert!(r.is("450 4.7.1"), "{r}");
    b.assert_logged("rate limit: user alice reached 4 recipients this hour (limit 3)");
    // Redis away: temporary failures, nothing let through
    redis.stop();
    let r = rcpt(pa, 3, "carol@example.test", "bob@local.test");
    assert!(
        r.is("451 4.3.0 <bob@local.test>: Recipient address rejected: temporary failure"),
        "{r}"
    );
    let mut c = Client::ready(pb, lo(5));
    assert!(c.auth_plain(USER, PASSWORD).is("235 "));
    c.expect("MAIL FROM:<alice@local.test>", "250 ");
    let r = c.cmd("RCPT TO:<r4@example.org>");
    assert!(r.is("451 4.3.0"), "{r}");
    // back (empty, on the same port): both recover as the connection manager reconnects
    redis.again();
    let started = std::time::Instant::now();
    for port in [pa, pb] {
        loop {
            let r = rcpt(port, 3, "carol@example.test", "bob@local.test");
            if r.is("451 4.7.1") {
                break;
            }
            assert!(r.is("451 4.3.0"), "{r}");
            assert!(started.elapsed().as_secs() < 20, "recovers: {r}");
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
    }
    let mut c = Client::ready(pb, lo(5));
    assert!(c.auth_plain(USER, PASSWORD).is("235 "));
    c.expect("MAIL FROM:<alice@local.test>", "250 ");
    let r = c.cmd("RCPT TO:<r5@example.org>");
    assert!(r.is("250 2.1.5"), "{r}");
}
