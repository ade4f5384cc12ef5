//! Slow and flooding clients (issue 15, item 2), on 127.0.0.1 with short limits so that each
//! test ends in seconds:
//! - 1,000 slowloris connections, 800 trickling a command line and 200 trickling message
//!   content, one byte a second (so the idle timeout, a minute, never fires), are all closed by
//!   the deadlines (`421 4.4.2`), while a normal client sends messages;
//! - 5,000 connections opened at once with `max_connections = 500`: 500 greetings, 4,500
//!   `421 4.7.0`, and the server keeps serving.
//!
//! The server's resident memory (VmRSS) is read at the peak and printed with the timings; a
//! generous bound is asserted, the figures themselves are measurements, not assertions.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{Client, Server, Setup, tcp};

/// How many of each kind of slow client.
const SLOW_COMMAND: usize = 800;
const SLOW_DATA: usize = 200;
/// The deadlines the server is given, in seconds.
const DEADLINE: u64 = 3;
/// No slow client may be left after this long.
const ALL_CLOSED_WITHIN: Duration = Duration::from_secs(40);
/// Resident memory the server may use at the peak of either test.
const MAX_RSS_KB: u64 = 512 * 1024;

/// The server's VmRSS in kB.
fn rss_kb(server: &Server) -> u64 {
    let status = fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// One connection the test drives without blocking.
struct Peer {
    stream: TcpStream,
    /// Everything the server said.
    got: Vec<u8>,
    /// When its last request began (greeting or 354), and when the server closed it.
    since: Instant,
    closed: Option<Instant>,
}

impl Peer {
    fn new(stream: TcpStream, since: Instant) -> Peer {
        stream.set_nonblocking(true).unwrap();
        Peer {
            stream,
            got: Vec::new(),
            since,
            closed: None,
        }
    }

    /// Reads what is there; notes the close.
    fn poll(&mut self) {
        if self.closed.is_some() {
            return;
        }
        let mut buf = [0u8; 1024];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => break self.closed = Some(Instant::now()),
                Ok(n) => self.got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => break self.closed = Some(Instant::now()),
            }
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.got).into_owned()
    }
}

/// A client in DATA: EHLO, MAIL, RCPT and DATA answered, content not yet sent.
fn in_data(port: u16) -> Peer {
    let mut c = Client::ready(port, None);
    c.expect("MAIL FROM:<slow@other.test>", "250 ");
    c.expect("RCPT TO:<bob@local.test>", "250 ");
    c.expect("DATA", "354 ");
    let stream = c.into_tcp();
    Peer::new(stream, Instant::now())
}

#[test]
fn a_thousand_slowloris_are_closed_by_deadlines_while_a_client_is_served() {
    let server = Server::start(
        Setup::new(&["mx"])
            .limit("max_connections_per_ip = 0")
            .limit("command_timeout = 60")
            .limit("data_timeout = 60")
            .limit(&format!("command_deadline = {DEADLINE}"))
            .limit(&format!("data_deadline = {DEADLINE}"))
            .limit("min_data_rate = 1000"),
    );
    let port = server.port("mx");
    let rss_idle = rss_kb(&server);
    // A baseline: what 20 messages cost on an idle server.
    let normal = |tag: &str| {
        let started = Instant::now();
        let mut c = Client::ready(port, None);
        for i in 0..20 {
            let r = c.send_mail(
                "fast@other.test",
                &["alice@local.test"],
                &format!("{tag} {i}"),
            );
            assert!(r.is("250 2.0.0 Ok: queued as"), "{r}");
        }
        c.quit();
        started.elapsed()
    };
    normal("warm-up");
    let idle_time = normal("idle");

    let started = Instant::now();
    let mut peers: Vec<Peer> = (0..SLOW_COMMAND)
        .map(|_| Peer::new(tcp(port, None).expect("connect"), Instant::now()))
        .collect();
    peers.extend((0..SLOW_DATA).map(|_| in_data(port)));
    let opened = started.elapsed();
    // One byte a second each, never a line end: neither a command nor the end of the content.
    let mut rss_peak = rss_kb(&server);
    let mut loaded_time = None;
    let mut tick = Instant::now();
    while peers.iter().any(|p| p.closed.is_none()) && started.elapsed() < ALL_CLOSED_WITHIN {
        if tick.elapsed() >= Duration::from_secs(1) {
            tick = Instant::now();
            for p in peers.iter_mut().filter(|p| p.closed.is_none()) {
                let _ = p.stream.write(b"X");
            }
            rss_peak = rss_peak.max(rss_kb(&server));
        }
        if loaded_time.is_none() {
            // The normal client, while every slow one is still connected.
            loaded_time = Some(normal("loaded"));
        }
        for p in &mut peers {
            p.poll();
        }
        thread::sleep(Duration::from_millis(20));
    }
    let all_closed = started.elapsed();
    let rss_after = rss_kb(&server);
    println!(
        "slowloris: {} connections opened in {opened:?}, all closed after {all_closed:?}; \
         20 messages idle {idle_time:?}, under slowloris {loaded_time:?}; VmRSS idle {rss_idle} kB, \
         peak {rss_peak} kB, after {rss_after} kB",
        peers.len()
    );
    let deadline = Duration::from_secs(DEADLINE);
    let mut wrong = Vec::new();
    for (i, p) in peers.iter().enumerate() {
        let text = p.text();
        let ok_reply = text.contains("421 4.4.2");
        let lived = p.closed.map(|c| c - p.since);
        // Closed by the deadline: not before it, and not by the idle timeout (a minute).
        let ok_time = lived.is_some_and(|l| l >= deadline - Duration::from_millis(300));
        if !ok_reply || !ok_time {
            wrong.push(format!("#{i}: lived {lived:?}, said {text:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(10)].join("\n")
    );
    assert_eq!(
        server.mail_count("bob"),
        0,
        "a trickled content was delivered"
    );
    server.wait_mail("alice", 60);
    assert!(rss_peak < MAX_RSS_KB, "VmRSS {rss_peak} kB");
    server.assert_logged("deadline exceeded from unknown[127.0.0.1]");
}

#[test]
fn five_thousand_at_once_beyond_max_connections_get_421_and_the_server_keeps_serving() {
    const LIMIT: usize = 500;
    const FLOOD: usize = 5000;
    let server = Server::start(
        Setup::new(&["mx"])
            .limit(&format!("max_connections = {LIMIT}"))
            .limit("max_connections_per_ip = 0")
            .limit("command_deadline = 60"),
    );
    let port = server.port("mx");
    let started = Instant::now();
    // Ten threads open 500 connections each, as fast as they can.
    let handles: Vec<_> = (0..10)
        .map(|_| {
            thread::spawn(move || {
                (0..FLOOD / 10)
                    .map(|_| tcp(port, None).expect("connect"))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut peers: Vec<Peer> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .map(|s| Peer::new(s, Instant::now()))
        .collect();
    let opened = started.elapsed();
    // Every connection gets its first line: a greeting or the refusal.
    let wait_until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < wait_until
        && peers
            .iter()
            .any(|p| !p.got.ends_with(b"\r\n") && p.closed.is_none())
    {
        for p in &mut peers {
            p.poll();
        }
        thread::sleep(Duration::from_millis(20));
    }
    let answered = started.elapsed();
    let rss_peak = rss_kb(&server);
    let greeted = peers
        .iter()
        .filter(|p| p.text().starts_with("220 "))
        .count();
    let refused = peers
        .iter()
        .filter(|p| p.text().starts_with("421 4.7.0") && p.text().contains("too many connections"))
        .count();
    println!(
        "flood: {FLOOD} connections opened in {opened:?}, all answered after {answered:?}: \
         {greeted} greeted, {refused} refused; VmRSS {rss_peak} kB"
    );
    assert_eq!((greeted, refused), (LIMIT, FLOOD - LIMIT));
    assert!(rss_peak < MAX_RSS_KB, "VmRSS {rss_peak} kB");
    // The sessions inside are served: one of them sends a message.
    let inside = peers
        .iter()
        .position(|p| p.text().starts_with("220 "))
        .unwrap();
    let stream = peers.swap_remove(inside).stream;
    stream.set_nonblocking(false).unwrap();
    let mut c = Client::from_tcp(stream);
    c.ehlo();
    let r = c.send_mail("s@other.test", &["carol@local.test"], "inside the flood");
    assert!(r.is("250 2.0.0 Ok: queued as"), "{r}");
    c.quit();
    // Once the flood leaves, newcomers are served.
    drop(peers);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = Client::connect(port);
        let r = c.reply();
        if r.is("220 ") {
            c.ehlo();
            let r = c.send_mail("s@other.test", &["carol@local.test"], "after the flood");
            assert!(r.is("250 2.0.0 Ok: queued as"), "{r}");
            c.quit();
            break;
        }
        assert!(Instant::now() < deadline, "never served again: {r}");
        thread::sleep(Duration::from_millis(50));
    }
    server.wait_mail("carol", 2);
}
