//! Faults a real server does not produce on demand, played by a tiny scripted server on
//! 127.0.0.1: silence, a connection closed mid-transaction, lines that are not SMTP, clear text
//! injected after STARTTLS. Everything else is tested against real servers in
//! `crates/relais/tests/client.rs`.

use std::net::SocketAddr;
use std::time::Duration;

use relais_client::{ClientConfig, ClientError, Direction, SmtpClient, Stage};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One step of a scripted server: send bytes, or wait for one line from the client.
enum Step {
    Send(&'static [u8]),
    Expect(&'static str),
    Sleep(Duration),
}

/// Starts a server that plays `script` for one connection, then closes it.
async fn scripted(script: Vec<Step>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let Ok((sock, _)) = listener.accept().await else {
            return;
        };
        play(sock, script).await;
    });
    addr
}

async fn play(sock: TcpStream, script: Vec<Step>) {
    let mut sock = BufReader::new(sock);
    for step in script {
        match step {
            Step::Send(bytes) => {
                if sock.get_mut().write_all(bytes).await.is_err() {
                    return;
                }
            }
            Step::Expect(prefix) => {
                let mut line = String::new();
                if sock.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                assert!(
                    line.to_ascii_uppercase().starts_with(prefix),
                    "expected {prefix:?}, got {line:?}"
                );
            }
            Step::Sleep(d) => tokio::time::sleep(d).await,
        }
    }
}

fn quick() -> ClientConfig {
    ClientConfig::with_timeout(Duration::from_millis(300))
}

#[tokio::test]
async fn a_silent_server_times_out_at_the_banner() {
    let addr = scripted(vec![Step::Sleep(Duration::from_secs(5))]).await;
    let mut c = SmtpClient::new(quick());
    let err = c.connect(addr).await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::TimedOut {
                stage: Stage::Banner,
                ..
            }
        ),
        "{err:?}"
    );
    let last = c.transcript().entries.last().unwrap();
    assert_eq!(last.dir, Direction::Error);
    assert!(last.text.contains("banner"), "{}", last.text);
    assert_eq!(c.timings()[0].stage, Stage::Connect);
}

#[tokio::test]
async fn a_closed_port_is_refused_not_timed_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut c = SmtpClient::new(quick());
    let err = c.connect(addr).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Refused { addr: a } if a == addr),
        "{err:?}"
    );
    assert_eq!(err.stage(), Stage::Connect);
}

#[tokio::test]
async fn a_connection_closed_mid_transaction_names_the_stage() {
    let addr = scripted(vec![
        Step::Send(b"220 fault.test ESMTP\r\n"),
        Step::Expect("EHLO"),
        Step::Send(b"250-fault.test\r\n250 PIPELINING\r\n"),
        Step::Expect("MAIL"),
        Step::Send(b"250 2.1.0 Ok\r\n"),
        Step::Expect("RCPT"),
    ])
    .await;
    let mut c = SmtpClient::new(quick());
    assert_eq!(c.connect(addr).await.unwrap().code, 220);
    assert!(c.ehlo("me.test").await.unwrap().has("PIPELINING"));
    assert_eq!(c.command("MAIL FROM:<a@b.test>").await.unwrap().code, 250);
    let err = c.command("RCPT TO:<c@d.test>").await.unwrap_err();
    assert!(
        matches!(err, ClientError::Closed { stage: Stage::Rcpt }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_reply_split_across_writes_and_a_line_that_is_not_smtp() {
    let addr = scripted(vec![
        Step::Send(b"220-fault.test first\r\n22"),
        Step::Sleep(Duration::from_millis(30)),
        Step::Send(b"0 second\r\n"),
        Step::Expect("NOOP"),
        Step::Send(b"HTTP/1.1 400 Bad Request\r\n"),
        Step::Sleep(Duration::from_secs(1)),
    ])
    .await;
    let mut c = SmtpClient::new(quick());
    let banner = c.connect(addr).await.unwrap();
    assert_eq!(banner.lines, vec!["fault.test first", "second"]);
    let err = c.command("NOOP").await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Protocol {
                stage: Stage::Command,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn clear_text_after_the_starttls_go_ahead_is_discarded_and_reported() {
    let addr = scripted(vec![
        Step::Send(b"220 fault.test ESMTP\r\n"),
        Step::Expect("STARTTLS"),
        // The 220 and an injected reply in the same packet: the injection must never be read
        // as the answer to the first command under TLS.
        Step::Send(b"220 2.0.0 Ready\r\n250 injected\r\n"),
        Step::Sleep(Duration::from_millis(100)),
    ])
    .await;
    let mut c = SmtpClient::new(quick());
    c.connect(addr).await.unwrap();
    let err = c.starttls("fault.test").await.unwrap_err();
    assert_eq!(err.stage(), Stage::TlsHandshake, "{err:?}");
    assert!(
        c.transcript()
            .entries
            .iter()
            .any(|e| e.dir == Direction::Error && e.text.contains("in clear after its 220")),
        "{:#?}",
        c.transcript().entries
    );
}

#[tokio::test]
async fn starttls_refused_is_a_reply_and_the_session_goes_on() {
    let addr = scripted(vec![
        Step::Send(b"220 fault.test ESMTP\r\n"),
        Step::Expect("STARTTLS"),
        Step::Send(b"454 4.7.0 TLS not available due to local problem\r\n"),
        Step::Expect("QUIT"),
        Step::Send(b"221 2.0.0 Bye\r\n"),
    ])
    .await;
    let mut c = SmtpClient::new(quick());
    c.connect(addr).await.unwrap();
    let err = c.starttls("fault.test").await.unwrap_err();
    assert!(err.connection_usable());
    assert_eq!(err.reply().map(|r| r.code), Some(454));
    assert_eq!(c.quit().await.unwrap().map(|r| r.code), Some(221));
    assert!(!c.is_connected());
}

#[tokio::test]
async fn helo_fallback_when_ehlo_is_unknown() {
    let addr = scripted(vec![
        Step::Send(b"220 old.test SMTP\r\n"),
        Step::Expect("EHLO"),
        Step::Send(b"500 5.5.2 Command not recognized\r\n"),
        Step::Expect("HELO"),
        Step::Send(b"250 old.test\r\n"),
    ])
    .await;
    let mut c = SmtpClient::new(quick());
    c.connect(addr).await.unwrap();
    let e = c.ehlo_or_helo("me.test").await.unwrap();
    assert_eq!(e.domain, "old.test");
    assert!(e.capabilities.is_empty());
}
