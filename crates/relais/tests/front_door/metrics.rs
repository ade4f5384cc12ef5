//! The HTTP listener: `/metrics` counts what the test did and passes `promtool check metrics`;
//! `/healthz` and `/readyz` answer; unknown paths are 404, other methods 405, a missing or
//! wrong token 401, an oversized request refused.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::support::{Client, LOCAL, Server, Setup, http};
use crate::common::process::require;

/// One request (`extra` header lines included); (status, body).
fn get(port: u16, method: &str, path: &str, extra: &str) -> (u16, String) {
    let r = http(port, method, path, extra, "");
    (r.status, r.body)
}

/// The value of one sample line (`name{labels}`) of a metrics page.
fn sample(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{page}"))
}

#[test]
fn metrics_count_what_happened_and_pass_promtool() {
    require(
        "sh",
        &["-c", "command -v promtool"],
        "apt-get install prometheus",
    );
    let server = Server::start(
        Setup::new(&["mx"])
            .users(&["alice"])
            .top("http.address = \"127.0.0.1:0\""),
    );
    let port = server.http_port();
    let mut c = Client::ready(server.port("mx"), None);
    for n in 0..2 {
        let r = c.send_mail(
            "s@other.test",
            &[&format!("alice@{LOCAL}")],
            &format!("m{n}"),
        );
        assert!(r.is("250 2.0.0"), "{r}");
    }
    c.expect("MAIL FROM:<s@other.test>", "250");
    c.expect(&format!("RCPT TO:<nobody@{LOCAL}>"), "550 5.1.1");
    c.quit();
    server.wait_mail("alice", 2);
    server.assert_logged("removed");
    std::thread::sleep(Duration::from_millis(200));

    let (status, page) = get(port, "GET", "/metrics", "");
    assert_eq!(status, 200, "{page}");
    assert_eq!(sample(&page, "relais_messages_accepted_total"), 2.0);
    assert_eq!(
        sample(
            &page,
            "relais_deliveries_total{agent=\"maildir\",outcome=\"sent\"}"
        ),
        2.0
    );
    assert_eq!(
        sample(
            &page,
            "relais_policy_decisions_total{check=\"recipient\",result=\"reject\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &page,
            "relais_policy_decisions_total{check=\"recipient\",result=\"accept\"}"
        ),
        2.0
    );
    assert_eq!(sample(&page, "relais_rejects_total"), 1.0);
    assert_eq!(sample(&page, "relais_spool_commit_seconds_count"), 2.0);
    assert_eq!(sample(&page, "relais_delivery_seconds_count"), 2.0);
    assert!(sample(&page, "relais_connections_total") >= 1.0);
    assert!(sample(&page, "relais_replies_total{class=\"5xx\"}") >= 1.0);
    assert!(sample(&page, "relais_received_bytes_total") > 0.0);
    // The self-signed certificate made at first start: valid for years from now.
    let cert = server.data_dir.join("tls/cert.pem");
    let expiry = sample(
        &page,
        &format!(
            "relais_tls_certificate_expiry_timestamp_seconds{{file=\"{}\"}}",
            cert.display()
        ),
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(expiry > now + 86_400.0 * 365.0, "{expiry}");
    assert_eq!(sample(&page, "relais_queue_messages{state=\"held\"}"), 0.0);
    assert_eq!(sample(&page, "relais_queue_oldest_age_seconds"), 0.0);
    // EHLO, 2 × (MAIL, RCPT, DATA), MAIL, QUIT accepted; the RCPT to nobody refused.
    assert_eq!(
        sample(&page, "relais_commands_total{result=\"refused\"}"),
        1.0
    );
    assert_eq!(
        sample(&page, "relais_commands_total{result=\"accepted\"}"),
        9.0
    );

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    assert_eq!(get(port, "GET", "/healthz", "").0, 200);
    assert_eq!(get(port, "GET", "/readyz", "").0, 200);
    assert_eq!(get(port, "GET", "/nope", "").0, 404);
    assert_eq!(
        get(port, "POST", "/metrics", "Content-Length: 0\r\n").0,
        405
    );
    let huge = format!("X-Junk: {}\r\n", "a".repeat(64 * 1024));
    assert_ne!(get(port, "GET", "/metrics", &huge).0, 200);
    // Still serving after the bad requests.
    assert_eq!(get(port, "GET", "/healthz", "").0, 200);
}

#[test]
fn a_token_guards_every_path() {
    let server = Server::start(
        Setup::new(&["mx"])
            .top("http.address = \"127.0.0.1:0\"")
            .top("http.token = \"s3cret-token\""),
    );
    let port = server.http_port();
    assert_eq!(get(port, "GET", "/metrics", "").0, 401);
    assert_eq!(
        get(port, "GET", "/metrics", "Authorization: Bearer wrong\r\n").0,
        401
    );
    let (status, page) = get(
        port,
        "GET",
        "/metrics",
        "Authorization: Bearer s3cret-token\r\n",
    );
    assert_eq!(status, 200);
    assert!(page.contains("relais_connections_total"));
    assert_eq!(
        get(
            port,
            "GET",
            "/readyz",
            "Authorization: Bearer s3cret-token\r\n"
        )
        .0,
        200
    );
}
