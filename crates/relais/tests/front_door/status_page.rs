//! The status page (issue 13) on the HTTP listener: its JSON API over plain HTTP (the queue
//! listed with filters, a message shown, hold, release and delete with the page's CSRF token and
//! refused without it), the live events (server-sent events), the bearer token and its cookie,
//! bad requests (404, 401, 403, 405, 413); and the page itself in headless Chromium
//! ([`super::webdriver`]): a queued message held and released with its buttons, a probe of the
//! server's own listener drawn as a waterfall, a screenshot kept as an artifact.
//!
//! Delivery is paused (`[delivery] paused = true`) so that messages stay in the queue.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use super::support::{Client, HttpReply, LOCAL, Server, Setup, http};
use super::webdriver::{Browser, PAGE_TIMEOUT};
use crate::common::RELAIS;
use crate::common::process::run;

const TOKEN: &str = "s3cret-token";

/// A server with an mx listener, the HTTP listener and delivery paused.
fn paused_server(token: bool) -> Server {
    let mut setup = Setup::new(&["mx"])
        .top("http.address = \"127.0.0.1:0\"")
        .top("delivery.paused = true");
    if token {
        setup = setup.top(&format!("http.token = \"{TOKEN}\""));
    }
    Server::start(setup)
}

/// Sends one message; its queue id.
fn send(server: &Server, from: &str, to: &str, subject: &str) -> String {
    let mut c = Client::ready(server.port("mx"), None);
    let r = c.send_mail(from, &[to], subject);
    assert!(r.is("250 2.0.0"), "{r}");
    c.quit();
    r.lines[0]
        .split_whitespace()
        .last()
        .expect("250 … queued as ID")
        .to_string()
}

/// The CSRF token in the page (`auth`: header lines that pass the bearer token, if any).
fn csrf(port: u16, auth: &str) -> String {
    let page = http(port, "GET", "/status", auth, "");
    assert_eq!(page.status, 200, "{}", page.body);
    let at = page
        .body
        .find(r#"name="csrf-token" content=""#)
        .expect("the CSRF token in the page")
        + r#"name="csrf-token" content=""#.len();
    page.body[at..at + 64].to_string()
}

/// A POST with no body.
fn post(port: u16, path: &str, extra: &str) -> HttpReply {
    http(
        port,
        "POST",
        path,
        &format!("{extra}Content-Length: 0\r\n"),
        "",
    )
}

/// The ids the listing gives for a query.
fn listed(port: u16, query: &str) -> Vec<String> {
    let r = http(port, "GET", &format!("/api/queue{query}"), "", "");
    assert_eq!(r.status, 200, "{query}: {}", r.body);
    r.json()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_api_lists_filters_shows_and_steers_the_queue() {
    let server = paused_server(false);
    let port = server.http_port();
    let a = send(
        &server,
        "alice@other.test",
        &format!("alice@{LOCAL}"),
        "first",
    );
    let b = send(&server, "spam@junk.test", &format!("bob@{LOCAL}"), "second");

    assert_eq!(listed(port, ""), [a.as_str(), b.as_str()]);
    assert_eq!(listed(port, "?sender=JUNK.test"), [b.as_str()]);
    assert_eq!(listed(port, "?recipient=alice%40"), [a.as_str()]);
    assert_eq!(listed(port, "?state=active"), [a.as_str(), b.as_str()]);
    assert!(listed(port, "?state=held").is_empty());
    assert!(listed(port, "?older_than=3600").is_empty());
    assert_eq!(listed(port, "?newer_than=3600").len(), 2);
    assert_eq!(
        http(port, "GET", "/api/queue?state=frozen", "", "").status,
        400
    );

    let shown = http(port, "GET", &format!("/api/queue/{a}"), "", "");
    assert_eq!(shown.status, 200, "{}", shown.body);
    let d = shown.json();
    assert_eq!(d["entry"]["id"], a.as_str());
    assert_eq!(d["entry"]["state"], "active");
    assert_eq!(
        d["entry"]["recipients"][0]["address"],
        format!("alice@{LOCAL}")
    );
    assert!(
        d["envelope"].as_str().unwrap().contains("alice@other.test"),
        "{d}"
    );
    assert!(
        d["headers"].as_str().unwrap().contains("Subject: first"),
        "{d}"
    );
    assert!(d["client"].as_str().unwrap().contains("127.0.0.1"), "{d}");
    assert_eq!(
        http(port, "GET", "/api/queue/not-an-id", "", "").status,
        404
    );

    // No state change without the page's token, or from another origin.
    let token = csrf(port, "");
    let with = format!("X-CSRF-Token: {token}\r\n");
    assert_eq!(post(port, &format!("/api/queue/{a}/hold"), "").status, 403);
    let wrong = "X-CSRF-Token: 00000000\r\n";
    assert_eq!(
        post(port, &format!("/api/queue/{a}/hold"), wrong).status,
        403
    );
    let elsewhere = format!("{with}Origin: http://evil.example\r\n");
    assert_eq!(
        post(port, &format!("/api/queue/{a}/hold"), &elsewhere).status,
        403
    );
    let cross = format!("{with}Sec-Fetch-Site: cross-site\r\n");
    assert_eq!(
        post(port, &format!("/api/queue/{a}/hold"), &cross).status,
        403
    );
    assert!(listed(port, "?state=held").is_empty());

    let held = post(port, &format!("/api/queue/{a}/hold"), &with);
    assert_eq!(held.status, 200, "{}", held.body);
    assert_eq!(listed(port, "?state=held"), [a.as_str()]);
    server.assert_logged(&format!("{a}: held by the administrator"));
    let released = post(port, &format!("/api/queue/{a}/release"), &with);
    assert_eq!(released.status, 200, "{}", released.body);
    assert!(listed(port, "?state=held").is_empty());
    server.assert_logged(&format!("{a}: released by the administrator"));
    // Delivery is paused: nothing to flush with.
    assert_eq!(
        post(port, &format!("/api/queue/{a}/flush"), &with).status,
        409
    );

    let deleted = post(port, &format!("/api/queue/{b}/delete"), &with);
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(listed(port, ""), [a.as_str()]);
    assert_eq!(
        http(port, "GET", &format!("/api/queue/{b}"), "", "").status,
        404
    );
    assert_eq!(
        post(port, &format!("/api/queue/{b}/hold"), &with).status,
        404
    );

    // The control socket steers the paused queue the same way.
    let mut hold = Command::new(RELAIS);
    hold.args(["queue", "hold", &a, "--config"])
        .arg(&server.config);
    run(hold, None, Duration::from_secs(10)).expect_code(0);
    assert_eq!(listed(port, "?state=held"), [a.as_str()]);
}

#[test]
fn bad_requests_are_refused() {
    let server = paused_server(false);
    let port = server.http_port();
    let token = csrf(port, "");
    let with = format!("X-CSRF-Token: {token}\r\n");
    assert_eq!(http(port, "GET", "/nope", "", "").status, 404);
    assert_eq!(
        http(port, "GET", "/status/../../etc/passwd", "", "").status,
        404
    );
    assert_eq!(
        http(port, "GET", "/api/queue/ABC/explode", "", "").status,
        404
    );
    assert_eq!(http(port, "GET", "/api/queue/ABC/hold", "", "").status, 405);
    assert_eq!(post(port, "/api/queue", &with).status, 405);
    // A body over 16 KiB: refused from its declared length, or as it comes.
    let big = http(
        port,
        "POST",
        "/api/probe",
        &format!("{with}Content-Length: 1000000\r\n"),
        "",
    );
    assert_eq!(big.status, 413, "{}", big.body);
    let body = format!(r#"{{"target":"{}"}}"#, "a".repeat(20_000));
    let big = http(port, "POST", "/api/probe", &with, &body);
    assert_eq!(big.status, 413, "{}", big.body);
    // A probe request that is not one.
    let bad = http(port, "POST", "/api/probe", &with, r#"{"target":"a b; c"}"#);
    assert_eq!(bad.status, 400, "{}", bad.body);
    // Without [http] token, a page under a name we do not know could be DNS rebinding.
    let rebound = http(port, "GET", "/status", "Host: rebound.evil.example\r\n", "");
    assert_ne!(rebound.status, 200);
    // Still serving, and /metrics is as it was.
    assert_eq!(http(port, "GET", "/healthz", "", "").status, 200);
    let metrics = http(port, "GET", "/metrics", "", "");
    assert_eq!(metrics.status, 200);
    assert!(metrics.body.contains("relais_messages_accepted_total"));
}

#[test]
fn a_token_guards_the_page_and_a_link_with_it_sets_a_cookie() {
    let server = paused_server(true);
    let port = server.http_port();
    assert_eq!(http(port, "GET", "/status", "", "").status, 401);
    assert_eq!(http(port, "GET", "/api/queue", "", "").status, 401);
    assert_eq!(http(port, "GET", "/status?token=wrong", "", "").status, 401);
    let bearer = format!("Authorization: Bearer {TOKEN}\r\n");
    assert_eq!(http(port, "GET", "/api/queue", &bearer, "").status, 200);

    let link = http(port, "GET", &format!("/status?token={TOKEN}"), "", "");
    assert_eq!(link.status, 303, "{link:?}");
    assert_eq!(link.header("location"), Some("/status"));
    let cookie = link.header("set-cookie").expect("a cookie").to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let jar = format!("Cookie: {}\r\n", cookie.split(';').next().unwrap());
    assert_eq!(http(port, "GET", "/status", &jar, "").status, 200);
    assert_eq!(http(port, "GET", "/metrics", &jar, "").status, 200);

    // The cookie alone changes nothing: a POST needs the page's token too.
    let id = send(&server, "alice@other.test", &format!("alice@{LOCAL}"), "x");
    let path = format!("/api/queue/{id}/hold");
    assert_eq!(post(port, &path, &jar).status, 403);
    let token = csrf(port, &jar);
    let r = post(port, &path, &format!("{jar}X-CSRF-Token: {token}\r\n"));
    assert_eq!(r.status, 200, "{}", r.body);
    // Never from a link: the query token does not work for a POST.
    let r = post(
        port,
        &format!("{path}?token={TOKEN}"),
        &format!("X-CSRF-Token: {token}\r\n"),
    );
    assert_eq!(r.status, 401);
}

#[test]
fn the_event_stream_shows_a_message_queued_while_watching() {
    let server = paused_server(false);
    let port = server.http_port();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s.write_all(
        format!("GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut seen = String::new();
    let mut read_until = |needle: &str, seen: &mut String| {
        let deadline = Instant::now() + PAGE_TIMEOUT;
        let mut buf = [0u8; 4096];
        while !seen.contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the stream:\n{seen}"
            );
            if let Ok(n) = s.read(&mut buf) {
                assert!(n > 0, "the stream ended:\n{seen}");
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    };
    read_until("retry: 3000", &mut seen);
    assert!(seen.contains("text/event-stream"), "{seen}");
    let id = send(
        &server,
        "alice@other.test",
        &format!("alice@{LOCAL}"),
        "live",
    );
    read_until(&format!("\"queue_id\":\"{id}\""), &mut seen);
    read_until("\"event\":\"queued\"", &mut seen);
    let line = seen
        .lines()
        .find(|l| l.contains("\"event\":\"queued\"") && l.contains(&id))
        .expect("the queued event");
    let event: serde_json::Value =
        serde_json::from_str(line.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(event["from"], "alice@other.test");
    assert_eq!(event["level"], "info");

    // A page opened later gets it from the backlog.
    let mut later = TcpStream::connect(("127.0.0.1", port)).unwrap();
    later
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    later
        .write_all(format!("GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
        .unwrap();
    let mut backlog = String::new();
    let mut buf = [0u8; 65536];
    while !backlog.contains(&format!("\"queue_id\":\"{id}\"")) {
        let n = later.read(&mut buf).expect("the backlog");
        assert!(n > 0, "{backlog}");
        backlog.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

#[test]
fn the_page_in_headless_chromium_holds_releases_and_probes() {
    let started = Instant::now();
    let server = paused_server(true);
    let port = server.http_port();
    let id = send(
        &server,
        "alice@other.test",
        &format!("alice@{LOCAL}"),
        "browser",
    );
    let browser = Browser::start();
    // The link with the token sets the cookie, and the browser is sent on to the page.
    browser.go(&format!("http://127.0.0.1:{port}/status?token={TOKEN}"));
    let row = format!("#queue-table tr[data-id=\"{id}\"]");
    let state = |want: &str| {
        format!(
            "const r = document.querySelector('{row}'); return !!r && r.dataset.state === '{want}';"
        )
    };
    browser.wait_true("the queued message, active", &state("active"));
    assert_eq!(
        browser.script("return location.pathname + location.search"),
        "/status"
    );

    // Hold, with the page's confirmation.
    browser.click(&format!("{row} button.act-hold"));
    browser.wait_true(
        "the confirmation",
        "return document.querySelector('#confirm').open",
    );
    assert!(browser.text("#confirm-text").contains(&id));
    browser.click("#confirm-ok");
    browser.wait_true("the message held", &state("held"));
    browser.wait_true(
        "the held event in the live list",
        "return !!document.querySelector('#event-list li[data-event=\"held\"]')",
    );
    // Release: cancelled first, then confirmed.
    browser.click(&format!("{row} button.act-release"));
    browser.click("#confirm-cancel");
    assert_eq!(browser.script(&state("held")), true);
    browser.click(&format!("{row} button.act-release"));
    browser.click("#confirm-ok");
    browser.wait_true("the message released", &state("active"));

    // The message's details.
    browser.click(&format!("{row} a.qid"));
    browser.wait_true(
        "the message's headers",
        "return document.querySelector('#message-headers').textContent.includes('Subject: browser')",
    );

    // A probe of the server's own listener, by address and port.
    browser.type_into("#probe-target", "127.0.0.1");
    browser.type_into("#probe-port", &server.port("mx").to_string());
    browser.click("#probe-host");
    browser.click("#probe-run");
    browser.wait_true(
        "the probe's waterfall",
        "return document.querySelectorAll('#probe-result .waterfall .row').length >= 4",
    );
    let stages = browser.script(
        "return [...document.querySelectorAll('#probe-result .waterfall .row')].map(r => r.dataset.stage)",
    );
    for stage in ["connect", "banner", "ehlo", "mail"] {
        assert!(
            stages.as_array().unwrap().iter().any(|s| s == stage),
            "{stage} in {stages}"
        );
    }
    let verdicts = browser.text("#probe-result .verdicts");
    assert!(verdicts.contains("banner"), "{verdicts}");

    // The counters, drawn from /metrics.
    browser.wait_true(
        "six charts",
        "return document.querySelectorAll('#chart-grid .chart svg').length === 6",
    );

    browser.script("window.scrollTo(0, 0)");
    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("status_page.png");
    std::fs::write(&path, &png).unwrap();
    eprintln!(
        "status page screenshot: {} ({} s)",
        path.display(),
        started.elapsed().as_secs()
    );
}
