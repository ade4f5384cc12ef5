//! One client of the sink: relais-proto's `Session` carries the dialogue; the fault rules are
//! applied where it asks for a decision (MAIL, RCPT, AUTH, the end of the content) and, for
//! the commands it answers alone (EHLO, STARTTLS, DATA), to each command line before it is
//! fed. Accepted messages go to the capture store.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use relais_proto::session::{AuthOutcome, Event, Session, Stored, Verdict};
use relais_proto::{EnhancedStatus, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Shared;
use super::rules::{Action, Stage, find, greylist_passes, rate_allows};
use super::store::Captured;

/// How long a client may say nothing (also how long `silent` holds a connection).
const IDLE: Duration = Duration::from_secs(300);

/// What the connection does after a step.
enum Next {
    Go,
    /// Close the connection (after writing what is pending).
    Close,
    /// Say nothing more until the client leaves.
    Silent,
}

struct Conn {
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    session: Session,
    /// The sender and recipients accepted so far in this transaction.
    from: String,
    rcpts: Vec<String>,
    content: Vec<u8>,
    /// Close the connection once this many octets of content came (`content=disconnect`).
    disconnect_at: Option<u64>,
}

/// Serves one client to its end.
pub(super) async fn serve(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let session = Session::new(shared.config.clone());
    let mut conn = Conn {
        shared,
        stream,
        peer,
        session,
        from: String::new(),
        rcpts: Vec::new(),
        content: Vec::new(),
        disconnect_at: None,
    };
    let next = match conn.greet().await {
        Next::Go => conn.dialogue().await,
        other => other,
    };
    if let Next::Silent = next {
        conn.hold().await;
    }
    let _ = conn.stream.shutdown().await;
}

impl Conn {
    /// The `connect` rules, then the greeting.
    async fn greet(&mut self) -> Next {
        let ip = self.peer.ip().to_string();
        let rules = &self.shared.rules;
        if let Some(Action::Rate { count, per }) = find(rules, Stage::Connect, &[&ip]) {
            let recent = self.shared.connected(self.peer.ip(), *per);
            if !rate_allows(recent, *count) {
                let host = &self.shared.config.hostname;
                let r = Reply::new(
                    421,
                    Some(EnhancedStatus::new(4, 7, 0)),
                    format!("{host} Error: too many connections from {ip}"),
                );
                return self.say(&r).await;
            }
        }
        match find(rules, Stage::Connect, &[&ip]).cloned() {
            Some(Action::Reply(r)) => {
                let next = self.say(&r).await;
                if let Next::Go = next {
                    return self.no_greeting().await;
                }
                next
            }
            Some(Action::Close) => Next::Close,
            Some(Action::Silent) => Next::Silent,
            Some(Action::Delay(d)) => {
                tokio::time::sleep(d).await;
                self.session.handle_connect();
                self.flush().await
            }
            _ => {
                self.session.handle_connect();
                self.flush().await
            }
        }
    }

    /// After a greeting other than 220: QUIT is answered, every other command refused (RFC
    /// 5321 §3.1), until the client leaves.
    async fn no_greeting(&mut self) -> Next {
        let mut pending = Vec::new();
        loop {
            let Some(line) = self.line(&mut pending).await else {
                return Next::Close;
            };
            if line.trim_ascii().eq_ignore_ascii_case(b"QUIT") {
                return self.say(&Reply::new(221, None, "Bye")).await;
            }
            let r = Reply::new(503, None, "5.5.0 Error: no valid greeting");
            if let Next::Close = self.say(&r).await {
                return Next::Close;
            }
        }
    }

    /// The dialogue after the greeting, to its end.
    async fn dialogue(&mut self) -> Next {
        let mut pending: Vec<u8> = Vec::new();
        loop {
            if self.session.in_content() {
                if pending.is_empty() && !self.read(&mut pending).await {
                    self.session.handle_eof();
                    return Next::Close;
                }
                let mut take = pending.len();
                if let Some(limit) = self.disconnect_at {
                    let room = limit.saturating_sub(self.content.len() as u64) as usize;
                    if room < take {
                        let bytes: Vec<u8> = pending.drain(..room).collect();
                        self.session.handle_bytes(&bytes);
                        return Next::Close;
                    }
                    take = take.min(room);
                }
                let bytes: Vec<u8> = pending.drain(..take).collect();
                self.session.handle_bytes(&bytes);
            } else {
                let Some(line) = self.line(&mut pending).await else {
                    self.session.handle_eof();
                    return Next::Close;
                };
                match self.command(&line).await {
                    Next::Go => {}
                    other => return other,
                }
            }
            // What the session said goes out first, even when the rules end the connection.
            let next = self.events().await;
            let flushed = self.flush().await;
            for n in [next, flushed] {
                if let n @ (Next::Close | Next::Silent) = n {
                    return n;
                }
            }
        }
    }

    /// One command line: the rules of the commands the session answers alone, then the
    /// session.
    async fn command(&mut self, line: &[u8]) -> Next {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end();
        let (verb, arg) = text.split_once(' ').unwrap_or((text, ""));
        let helo = self.session.helo_name().unwrap_or_default().to_string();
        let stage = match verb.to_ascii_uppercase().as_str() {
            "EHLO" | "HELO" => Some((Stage::Helo, vec![arg.trim().to_string()])),
            "STARTTLS" => Some((Stage::StartTls, vec![helo])),
            "DATA" | "BDAT" => {
                let mut subjects = vec![self.from.clone()];
                subjects.extend(self.rcpts.iter().cloned());
                Some((Stage::Data, subjects))
            }
            _ => None,
        };
        if let Some((stage, subjects)) = stage {
            let subjects: Vec<&str> = subjects.iter().map(String::as_str).collect();
            match find(&self.shared.rules, stage, &subjects).cloned() {
                Some(Action::Reply(r)) => return self.say(&r).await,
                Some(Action::Close) => return Next::Close,
                Some(Action::Silent) => return Next::Silent,
                Some(Action::Delay(d)) => tokio::time::sleep(d).await,
                Some(Action::TlsFail) => {
                    let r = Reply::new(
                        220,
                        Some(EnhancedStatus::new(2, 0, 0)),
                        "Ready to start TLS",
                    );
                    let _ = self.say(&r).await;
                    let _ = self.stream.write_all(b"this is not TLS\r\n").await;
                    return Next::Close;
                }
                _ => {}
            }
        }
        self.session.handle_bytes(line);
        Next::Go
    }

    /// Carries out the session's events, with the rules where it asks for a decision.
    async fn events(&mut self) -> Next {
        while let Some(event) = self.session.poll_event() {
            let next = match event {
                Event::CheckSender { from, .. } => {
                    let from = from.to_string();
                    let action = find(&self.shared.rules, Stage::Mail, &[&from]).cloned();
                    let next = self.verdict(action).await;
                    self.from = from;
                    self.rcpts.clear();
                    next
                }
                Event::CheckRecipient { to, .. } => {
                    let to = to.to_string();
                    let mut action = find(&self.shared.rules, Stage::Rcpt, &[&to]).cloned();
                    if let Some(Action::Greylist(delay)) = action {
                        action = self.greylist(&to, delay);
                    }
                    let accepted = action.is_none();
                    let next = self.verdict(action).await;
                    if accepted {
                        self.rcpts.push(to);
                    }
                    next
                }
                Event::Authenticate { username, .. } => {
                    match find(&self.shared.rules, Stage::Auth, &[&username]).cloned() {
                        Some(Action::Reply(r)) => {
                            self.session.handle_auth(AuthOutcome::Failure(r));
                            Next::Go
                        }
                        Some(Action::Close) => Next::Close,
                        Some(Action::Silent) => Next::Silent,
                        other => {
                            if let Some(Action::Delay(d)) = other {
                                tokio::time::sleep(d).await;
                            }
                            self.session.handle_auth(AuthOutcome::Success);
                            Next::Go
                        }
                    }
                }
                Event::ContentStart(_) => {
                    self.content.clear();
                    self.disconnect_at = match self.transaction_rule(Stage::Content) {
                        Some(Action::Disconnect(n)) => Some(n),
                        Some(Action::Close | Action::Silent) => Some(0),
                        _ => None,
                    };
                    Next::Go
                }
                Event::Body(chunk) => {
                    self.content.extend_from_slice(&chunk);
                    Next::Go
                }
                Event::MessageComplete(envelope) => self.complete(envelope).await,
                Event::TransactionAborted => {
                    self.content.clear();
                    Next::Go
                }
                // STARTTLS is offered only for the `starttls` rules; one that did not match
                // has no certificate to go on with.
                Event::StartTls { .. } | Event::Close => Next::Close,
                _ => Next::Go,
            };
            if !matches!(next, Next::Go) {
                return next;
            }
        }
        Next::Go
    }

    /// The rule for a stage of the transaction (the sender and each recipient are matched).
    fn transaction_rule(&self, stage: Stage) -> Option<Action> {
        let mut subjects: Vec<&str> = vec![&self.from];
        subjects.extend(self.rcpts.iter().map(String::as_str));
        find(&self.shared.rules, stage, &subjects).cloned()
    }

    /// The answer to MAIL or RCPT: accept, or the rule's reply (421 closes).
    async fn verdict(&mut self, action: Option<Action>) -> Next {
        match action {
            Some(Action::Reply(r)) => {
                let closes = r.code == 421;
                self.session.handle_verdict(Verdict::Reject(r));
                if closes {
                    let _ = self.flush().await;
                    return Next::Close;
                }
                Next::Go
            }
            Some(Action::Close) => Next::Close,
            Some(Action::Silent) => Next::Silent,
            other => {
                if let Some(Action::Delay(d)) = other {
                    tokio::time::sleep(d).await;
                }
                self.session.handle_verdict(Verdict::Accept);
                Next::Go
            }
        }
    }

    /// `450 4.2.0` for a new (client, sender, recipient) until `delay` has passed.
    fn greylist(&self, to: &str, delay: Duration) -> Option<Action> {
        let key = format!("{}\0{}\0{to}", self.peer.ip(), self.from);
        let now = self.shared.started.elapsed();
        let mut seen = self
            .shared
            .greylist
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let first = seen.get(&key).copied();
        if greylist_passes(first, now, delay) {
            return None;
        }
        seen.entry(key).or_insert(now);
        Some(Action::Reply(Reply::new(
            450,
            Some(EnhancedStatus::new(4, 2, 0)),
            format!("<{to}>: Recipient address rejected: Greylisted, try again later"),
        )))
    }

    /// The end of the content: the `dot` rules, else the message is captured.
    async fn complete(&mut self, envelope: relais_proto::session::Envelope) -> Next {
        match self.transaction_rule(Stage::Dot) {
            Some(Action::Reply(r)) => {
                let closes = r.code == 421;
                self.session.handle_stored(Stored::Failed(r));
                if closes {
                    let _ = self.flush().await;
                    return Next::Close;
                }
                return Next::Go;
            }
            Some(Action::Close) => return Next::Close,
            Some(Action::Silent) => return Next::Silent,
            Some(Action::Delay(d)) => tokio::time::sleep(d).await,
            _ => {}
        }
        let raw = String::from_utf8_lossy(&std::mem::take(&mut self.content)).into_owned();
        let captured = Captured {
            id: 0,
            date: relais_proto::date::DateTime::from_system(std::time::SystemTime::now()).rfc5322(),
            client: self.peer.ip().to_string(),
            helo: envelope.helo.clone(),
            from: envelope.from.to_string(),
            mail_params: envelope.mail_params.to_string().trim().to_string(),
            to: envelope
                .recipients
                .iter()
                .map(|r| r.to.to_string())
                .collect(),
            rcpt_params: envelope
                .recipients
                .iter()
                .map(|r| r.params.to_string().trim().to_string())
                .collect(),
            subject: None,
            size: raw.len(),
            raw,
        };
        let (from, to) = (captured.from.clone(), captured.to.join(","));
        let id = self.shared.store.add(captured);
        (self.shared.log)(&format!(
            "captured message {id} from <{from}> to <{to}> ({} octets)",
            envelope.size
        ));
        self.session
            .handle_stored(Stored::Queued(format!("SINK{id}")));
        Next::Go
    }

    /// Writes a reply of our own; a `421` closes the connection.
    async fn say(&mut self, reply: &Reply) -> Next {
        let mut out = Vec::new();
        reply.write_to(&mut out);
        if self.stream.write_all(&out).await.is_err() || reply.code == 421 {
            return Next::Close;
        }
        Next::Go
    }

    /// Writes what the session has to say.
    async fn flush(&mut self) -> Next {
        let out = self.session.output().to_vec();
        self.session.clear_output();
        if !out.is_empty() && self.stream.write_all(&out).await.is_err() {
            return Next::Close;
        }
        if self.session.is_closed() {
            Next::Close
        } else {
            Next::Go
        }
    }

    /// Reads more input; false at the end (or after [`IDLE`]).
    async fn read(&mut self, pending: &mut Vec<u8>) -> bool {
        let mut buf = [0u8; 16 * 1024];
        match tokio::time::timeout(IDLE, self.stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                pending.extend_from_slice(&buf[..n]);
                true
            }
            _ => false,
        }
    }

    /// The next line (with its end), reading as needed; None at the end of input. A line
    /// longer than the session's cap is handed over as it is (the session refuses it).
    async fn line(&mut self, pending: &mut Vec<u8>) -> Option<Vec<u8>> {
        loop {
            if let Some(end) = pending.iter().position(|&b| b == b'\n') {
                return Some(pending.drain(..=end).collect());
            }
            if pending.len() > 64 * 1024 {
                return Some(std::mem::take(pending));
            }
            if !self.read(pending).await {
                return None;
            }
        }
    }

    /// `silent`: reads and forgets until the client leaves (or [`IDLE`]).
    async fn hold(&mut self) {
        let mut sink = Vec::new();
        while self.read(&mut sink).await {
            sink.clear();
        }
    }
}
