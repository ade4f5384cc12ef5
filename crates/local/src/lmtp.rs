//! LMTP delivery (RFC 2033): hand a message to a local delivery server such as Dovecot or Cyrus,
//! over TCP or a unix socket, and get one answer per recipient.
//!
//! The dialogue is SMTP's with `LHLO` for `EHLO`, except that after the final dot the server
//! answers once for every recipient it accepted, in RCPT order. The dialogue runs on
//! `relais-client`'s [`SmtpClient`] (TCP or a Unix socket, `LHLO`, the content dot-stuffed and
//! the replies after it read one per recipient), the same engine as remote delivery.
//!
//! How replies become outcomes:
//! - a refused greeting or `LHLO` is the server's problem, not the message's: every recipient is
//!   deferred (`4.4.2`, or the server's own 4.x.x status);
//! - `MAIL`: 4xx defers and 5xx fails every recipient; `RCPT`, `DATA` and the per-recipient
//!   replies after the dot: 4xx defers and 5xx fails the recipients they are about, with the
//!   server's enhanced status (or `4.0.0`/`5.0.0` when it gives none) and its text;
//! - no connection: every recipient deferred with `4.4.1`; a connection lost, a reply that does
//!   not come within `timeout`, or a reply that cannot be read: the recipients not yet answered
//!   are deferred with `4.4.2` (after the dot this may mean a duplicate later: nothing in LMTP
//!   can tell);
//! - an address that is not valid for the wire fails before anything is sent (`5.1.3` for a
//!   recipient, `5.1.7` for the sender), as does a UTF-8 address when the server does not
//!   offer `SMTPUTF8` (`5.6.7`).
//!
//! The message is read as it is sent (in pieces, see `relais-client`); one that cannot be read
//! to its end closes the connection before the final dot, and every recipient is deferred.
//!
//! `MAIL` and the `RCPT`s go in one write when the server offers `PIPELINING`.

use std::io::Read;
use std::time::Duration;

use relais_client::{ClientConfig, ClientError, SmtpClient};
use relais_config::LmtpTarget;
use relais_proto::{Command, MailParams, Mailbox, RcptParams, Reply, ReversePath};
use relais_queue::Outcome;

/// How long to wait for the reply to QUIT: the outcomes are known by then.
const QUIT_WAIT: Duration = Duration::from_secs(1);

/// Delivers `message` to `recipients` over LMTP: one [`Outcome`] per recipient, in order.
/// `timeout` bounds the connection and each wait for a reply or for the server to take data.
pub async fn deliver(
    target: &LmtpTarget,
    lhlo_name: &str,
    sender: &str,
    recipients: &[String],
    mut message: impl Read + Send,
    timeout: Duration,
) -> Vec<Outcome> {
    let mut results: Vec<Option<Outcome>> = vec![None; recipients.len()];
    let Some(plan) = plan(sender, recipients, &mut results) else {
        return settle(results, "4.4.2", "not sent");
    };
    if plan.rcpts.is_empty() {
        return settle(results, "4.4.2", "not sent");
    }
    let mut client = SmtpClient::new(ClientConfig {
        // Delivery keeps no transcript of message content.
        transcript_data_lines: 0,
        ..ClientConfig::with_timeout(timeout)
    });
    let opened = match target {
        LmtpTarget::Tcp(addr) => client.open(*addr).await,
        LmtpTarget::Unix(path) => client.open_unix(path).await,
    };
    if let Err(e) = opened {
        let reason = format!("cannot connect to {target}: {e}");
        return settle(results, "4.4.1", &reason);
    }
    let peer = target.to_string();
    match transaction(
        &mut client,
        &peer,
        lhlo_name,
        &plan,
        &mut message,
        &mut results,
    )
    .await
    {
        Ok(()) => {
            // Best effort: the outcomes are known whatever QUIT does.
            let _ = tokio::time::timeout(QUIT_WAIT, client.quit()).await;
            settle(results, "4.4.2", "no reply")
        }
        Err(e) => {
            client.close().await;
            let reason = format!("lost connection with {peer}: {e}");
            settle(results, "4.4.2", &reason)
        }
    }
}

/// The commands to send, once the addresses are checked.
struct Plan {
    /// The MAIL FROM line.
    mail: Command,
    /// RCPT TO lines with the index of their recipient.
    rcpts: Vec<(usize, Command)>,
    /// True when some address is UTF-8: the server must offer SMTPUTF8.
    utf8: bool,
}

/// Checks the addresses; recipients that cannot be sent get their outcome now.
fn plan(sender: &str, recipients: &[String], results: &mut [Option<Outcome>]) -> Option<Plan> {
    let from = if sender.is_empty() {
        ReversePath::Null
    } else {
        match Mailbox::parse(sender) {
            Ok(m) => ReversePath::Mailbox(m),
            Err(e) => {
                let reason = format!("bad sender address {sender:?}: {e}");
                for r in results.iter_mut() {
                    *r = Some(Outcome::failed("5.1.7", reason.clone()));
                }
                return None;
            }
        }
    };
    let mut utf8 = !sender.is_ascii();
    let mut rcpts = Vec::new();
    for (i, rcpt) in recipients.iter().enumerate() {
        match Mailbox::parse(rcpt) {
            Ok(to) => {
                utf8 |= !to.is_ascii();
                rcpts.push((
                    i,
                    Command::Rcpt {
                        to,
                        params: RcptParams::default(),
                    },
                ))
            }
            Err(e) => {
                let reason = format!("bad recipient address {rcpt:?}: {e}");
                results[i] = Some(Outcome::failed("5.1.3", reason));
            }
        }
    }
    let mail = Command::Mail {
        from,
        params: MailParams {
            smtputf8: utf8,
            ..MailParams::default()
        },
    };
    Some(Plan { mail, rcpts, utf8 })
}

/// Gives every recipient still without an outcome a deferral with this status and reason.
fn settle(results: Vec<Option<Outcome>>, status: &str, reason: &str) -> Vec<Outcome> {
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Outcome::deferred(status, reason)))
        .collect()
}

/// The dialogue from greeting to the replies after the dot. An `Err` leaves the recipients
/// not yet answered without an outcome.
async fn transaction(
    c: &mut SmtpClient,
    peer: &str,
    lhlo_name: &str,
    plan: &Plan,
    message: &mut (dyn Read + Send),
    results: &mut [Option<Outcome>],
) -> Result<(), ClientError> {
    let all: Vec<usize> = plan.rcpts.iter().map(|&(i, _)| i).collect();
    let greeting = c.banner().await?;
    if greeting.code != 220 {
        refused(peer, &greeting, "the greeting", &all, results);
        return Ok(());
    }
    let caps = match c.lhlo(lhlo_name).await {
        Ok(caps) => caps,
        Err(ClientError::UnexpectedReply { reply, .. }) => {
            refused(peer, &reply, "LHLO", &all, results);
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    if plan.utf8 && !caps.has("SMTPUTF8") {
        let reason = format!("{peer} does not support SMTPUTF8");
        for &i in &all {
            results[i] = Some(Outcome::failed("5.6.7", reason.clone()));
        }
        return Ok(());
    }

    // MAIL and RCPT: in one write when pipelining, else one at a time.
    let mut lines = vec![plan.mail.to_string()];
    lines.extend(plan.rcpts.iter().map(|(_, c)| c.to_string()));
    let replies = if caps.has("PIPELINING") {
        c.pipeline(&lines).await?
    } else {
        let mut replies = Vec::with_capacity(lines.len());
        for l in &lines {
            replies.push(c.command(l).await?);
            if !replies[0].is_positive() {
                break;
            }
        }
        replies
    };
    let mail = &replies[0];
    if !mail.is_positive() {
        for &i in &all {
            results[i] = Some(answer(peer, mail, "MAIL FROM"));
        }
        return rset(c).await;
    }
    let mut accepted = Vec::new();
    for (&(i, _), reply) in plan.rcpts.iter().zip(&replies[1..]) {
        if reply.is_positive() {
            accepted.push(i);
        } else {
            results[i] = Some(answer(peer, reply, "RCPT TO"));
        }
    }
    if accepted.is_empty() {
        return rset(c).await;
    }

    let reply = c.command(Command::Data).await?;
    if reply.code != 354 {
        for &i in &accepted {
            results[i] = Some(answer(peer, &reply, "DATA"));
        }
        return rset(c).await;
    }
    c.send_content_from(message).await?;
    // One reply per accepted recipient, in RCPT order (RFC 2033 §4.2).
    for &i in &accepted {
        let reply = c.read_reply(relais_client::Stage::Message).await?;
        results[i] = Some(answer(peer, &reply, "end of data"));
    }
    Ok(())
}

/// Every recipient deferred: the server would not talk (greeting or LHLO refused).
fn refused(
    peer: &str,
    reply: &Reply,
    stage: &str,
    which: &[usize],
    results: &mut [Option<Outcome>],
) {
    let status = match reply.status {
        Some(s) if s.class == 4 => s.to_string(),
        _ => "4.4.2".to_string(),
    };
    let reason = format!(
        "{peer} refused to talk to me: {} {} (in reply to {stage})",
        reply.code,
        reply.text()
    );
    for &i in which {
        results[i] = Some(Outcome::deferred(&status, reason.clone()));
    }
}

/// The outcome a reply gives the recipient it is about.
fn answer(peer: &str, reply: &Reply, stage: &str) -> Outcome {
    Outcome::from_reply(reply, peer, Some(stage))
}

/// Ends a transaction that will not reach DATA, keeping the connection in step.
async fn rset(c: &mut SmtpClient) -> Result<(), ClientError> {
    c.command(Command::Rset).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpListener;

    /// A scripted LMTP server: for each line received, the reply the script gives (by verb or by
    /// recipient); after the dot, `after_dot` replies. Returns what it received.
    async fn scripted(
        pipelining: bool,
        rcpt: fn(&str) -> &'static str,
        after_dot: Vec<&'static str>,
    ) -> (SocketAddr, tokio::task::JoinHandle<Vec<String>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let (r, mut w) = s.into_split();
            let mut r = BufReader::new(r);
            let mut seen = Vec::new();
            w.write_all(b"220 fault LMTP\r\n").await.unwrap();
            let mut in_data = false;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).await.unwrap() == 0 {
                    return seen;
                }
                let line = line.trim_end().to_string();
                seen.push(line.clone());
                if in_data {
                    if line == "." {
                        in_data = false;
                        for a in &after_dot {
                            w.write_all(format!("{a}\r\n").as_bytes()).await.unwrap();
                        }
                    }
                    continue;
                }
                let up = line.to_ascii_uppercase();
                let reply = if up.starts_with("LHLO") {
                    if pipelining {
                        "250-fault\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES".to_string()
                    } else {
                        "250-fault\r\n250 8BITMIME".to_string()
                    }
                } else if up.starts_with("MAIL") {
                    "250 2.1.0 Ok".into()
                } else if up.starts_with("RCPT") {
                    rcpt(&line).into()
                } else if up == "DATA" {
                    in_data = true;
                    "354 go".into()
                } else if up == "QUIT" {
                    w.write_all(b"221 bye\r\n").await.unwrap();
                    return seen;
                } else {
                    "250 Ok".into()
                };
                w.write_all(format!("{reply}\r\n").as_bytes())
                    .await
                    .unwrap();
            }
        });
        (addr, task)
    }

    fn rcpts(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn words(o: &[Outcome]) -> Vec<String> {
        o.iter()
            .map(|o| match o {
                Outcome::Delivered(_) => "sent".into(),
                Outcome::Deferred { status, .. } => format!("deferred {status}"),
                Outcome::Failed { status, .. } => format!("bounced {status}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn per_recipient_replies() {
        for pipelining in [false, true] {
            let (addr, server) = scripted(
                pipelining,
                |l| {
                    if l.contains("full@") {
                        "452 4.2.2 Mailbox full"
                    } else if l.contains("nobody@") {
                        "550 5.1.1 No such user"
                    } else {
                        "250 2.1.5 Ok"
                    }
                },
                vec!["250 2.0.0 <a@x> Saved", "452 4.2.2 <c@x> Quota exceeded"],
            )
            .await;
            let out = deliver(
                &LmtpTarget::Tcp(addr),
                "relais.test",
                "s@example.org",
                &rcpts(&["a@x", "full@x", "nobody@x", "c@x", "bad address"]),
                &b"Subject: t\n\n.leading dot\nbody\n"[..],
                Duration::from_secs(5),
            )
            .await;
            assert_eq!(
                words(&out),
                [
                    "sent",
                    "deferred 4.2.2",
                    "bounced 5.1.1",
                    "deferred 4.2.2",
                    "bounced 5.1.3"
                ],
                "pipelining {pipelining}: {out:?}"
            );
            let Outcome::Failed { reason, .. } = &out[2] else {
                unreachable!()
            };
            assert!(reason.contains("550 5.1.1 No such user"), "{reason}");
            assert!(reason.contains("in reply to RCPT TO"), "{reason}");
            let seen = server.await.unwrap();
            assert_eq!(seen[0], "LHLO relais.test");
            assert_eq!(seen[1], "MAIL FROM:<s@example.org>");
            assert!(seen.contains(&"..leading dot".to_string()), "{seen:?}");
            assert_eq!(seen.last().unwrap(), "QUIT");
        }
    }

    #[tokio::test]
    async fn no_recipient_accepted_means_no_data() {
        let (addr, server) = scripted(true, |_| "550 5.1.1 unknown", vec![]).await;
        let out = deliver(
            &LmtpTarget::Tcp(addr),
            "h",
            "",
            &rcpts(&["a@x", "b@x"]),
            &b"x"[..],
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(words(&out), ["bounced 5.1.1", "bounced 5.1.1"]);
        let seen = server.await.unwrap();
        assert_eq!(seen[1], "MAIL FROM:<>");
        assert!(!seen.iter().any(|l| l == "DATA"), "{seen:?}");
        assert!(seen.iter().any(|l| l == "RSET"), "{seen:?}");
    }

    #[tokio::test]
    async fn connection_failures_defer() {
        // A port nobody listens on.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let out = deliver(
            &LmtpTarget::Tcp(addr),
            "h",
            "s@x",
            &rcpts(&["a@x", "b@x"]),
            &b"x"[..],
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(words(&out), ["deferred 4.4.1", "deferred 4.4.1"]);
        let out = deliver(
            &LmtpTarget::Unix("/nonexistent/lmtp".into()),
            "h",
            "s@x",
            &rcpts(&["a@x"]),
            &b"x"[..],
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(words(&out), ["deferred 4.4.1"]);

        // A server that stops answering after the dot: accepted recipients without a reply
        // are deferred; the one answered keeps its outcome.
        let (addr, _server) = scripted(false, |_| "250 2.1.5 Ok", vec!["250 2.0.0 first"]).await;
        let out = deliver(
            &LmtpTarget::Tcp(addr),
            "h",
            "s@x",
            &rcpts(&["a@x", "b@x"]),
            &b"x"[..],
            Duration::from_millis(300),
        )
        .await;
        assert_eq!(words(&out), ["sent", "deferred 4.4.2"]);
        assert!(out[1].to_string().contains("timed out"), "{}", out[1]);
    }

    #[tokio::test]
    async fn a_refusing_greeting_defers() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            s.write_all(b"554 5.3.2 not now\r\n").await.unwrap();
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink).await;
        });
        let out = deliver(
            &LmtpTarget::Tcp(addr),
            "h",
            "s@x",
            &rcpts(&["a@x"]),
            &b"x"[..],
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(words(&out), ["deferred 4.4.2"]);
        assert!(
            out[0].to_string().contains("554 5.3.2 not now"),
            "{}",
            out[0]
        );
    }
}
