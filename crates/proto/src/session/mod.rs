//! The server side of an SMTP session, as a state machine with no I/O.
//!
//! # How to drive it
//! 1. [`Session::new`], then [`Session::handle_connect`] (or [`Session::handle_early_talk`] when
//!    the client spoke before the greeting was sent).
//! 2. Loop:
//!    - take every [`Event`] with [`Session::poll_event`] and act on it. Events that ask a
//!      question ([`Event::CheckSender`], [`Event::CheckRecipient`], [`Event::MessageComplete`])
//!      stop the session until the answer comes back through [`Session::handle_verdict`] or
//!      [`Session::handle_stored`]; the answer may come later (after an `await`);
//!    - write [`Session::output`] to the client, then [`Session::clear_output`];
//!    - stop after [`Event::Close`] (once the output is written);
//!    - otherwise read bytes and give them to [`Session::handle_bytes`] (or call
//!      [`Session::handle_eof`], [`Session::handle_timeout`], [`Session::handle_shutdown`]).
//!
//! The session processes pipelined commands in order and stops at each question, so replies
//! always come out in the order of the commands (RFC 2920).

use std::collections::VecDeque;
use std::sync::Arc;

use crate::address::{Mailbox, ReversePath};
use crate::command::{Command, CommandError};
use crate::params::{BodyType, MailParams, ParamError, RcptParams};
use crate::receiver::{DataReceiver, Line, LineReceiver};
use crate::replies;
use crate::reply::Reply;

mod auth;
mod commands;
mod content;
mod envelope;

pub use envelope::{Envelope, Recipient};

/// Longest command line, CRLF included (RFC 5321 §4.5.3.1.4).
pub const MAX_COMMAND_LINE: usize = 512;
/// Longest MAIL/RCPT line: RFC 1870, 3461 and 6531 parameters lengthen the base 512.
pub const MAX_PARAM_LINE: usize = 2048;
/// Content is handed out in pieces of about this size ([`Event::Body`]).
pub const BODY_CHUNK: usize = 64 * 1024;

/// What a session needs to know about the server. Shared by all sessions of a listener.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Our host name: in the greeting, EHLO answer and 421 replies.
    pub hostname: String,
    /// Text after `ESMTP` in the greeting (no version, by default).
    pub banner: String,
    /// Largest message accepted, in octets; 0 for no limit. Advertised as `SIZE`.
    pub max_message_size: u64,
    /// Most recipients in one transaction (`452 4.5.3` beyond).
    pub max_recipients: usize,
    /// Errors after which the session is closed with `421` (Postfix's hard error limit).
    pub max_errors: u32,
    /// Most messages in one session; 0 for no limit (`421 4.7.0` beyond).
    pub max_messages: u32,
    /// Offer STARTTLS (the server has a certificate and the listener allows it).
    pub starttls: bool,
    /// Every command but EHLO, HELO, STARTTLS, NOOP, RSET and QUIT needs TLS first (`530 5.7.0`).
    pub require_tls: bool,
    /// SASL mechanisms offered with AUTH (`PLAIN`, `LOGIN`); empty: no AUTH.
    pub auth_mechanisms: Vec<String>,
    /// Offer AUTH on a connection that is not encrypted (off: `538 5.7.11`).
    pub auth_without_tls: bool,
    /// MAIL needs a successful AUTH first (`530 5.7.0`), as on a submission port.
    pub require_auth: bool,
    /// Close the session (`554 5.5.0`) of a client that sends more commands where RFC 2920 says
    /// it must wait for our reply (after EHLO/HELO, DATA, AUTH, VRFY, EXPN, NOOP), or that
    /// pipelines at all without having been offered PIPELINING. Postfix's
    /// `smtpd_forbid_unauth_pipelining`.
    pub forbid_unauth_pipelining: bool,
}

impl SessionConfig {
    /// A configuration with the defaults Postfix uses where it has one.
    pub fn new(hostname: impl Into<String>) -> Self {
        SessionConfig {
            hostname: hostname.into(),
            banner: "relais".into(),
            max_message_size: 10_240_000,
            max_recipients: 1000,
            max_errors: 20,
            max_messages: 0,
            starttls: false,
            require_tls: false,
            auth_mechanisms: Vec::new(),
            auth_without_tls: false,
            require_auth: false,
            forbid_unauth_pipelining: true,
        }
    }

    /// True if AUTH is offered on a connection in this TLS state.
    pub fn auth_offered(&self, tls: bool) -> bool {
        !self.auth_mechanisms.is_empty() && (tls || self.auth_without_tls)
    }

    /// The EHLO keywords we advertise, in order, on a connection in this TLS state.
    pub fn extensions(&self, tls: bool) -> Vec<String> {
        let size = if self.max_message_size > 0 {
            format!("SIZE {}", self.max_message_size)
        } else {
            "SIZE".to_string()
        };
        let mut v = vec!["PIPELINING".to_string(), size];
        if self.starttls && !tls {
            v.push("STARTTLS".into());
        }
        if self.auth_offered(tls) {
            v.push(format!("AUTH {}", self.auth_mechanisms.join(" ")));
        }
        v.extend(
            [
                "ENHANCEDSTATUSCODES",
                "8BITMIME",
                "DSN",
                "SMTPUTF8",
                "CHUNKING",
                "HELP",
            ]
            .map(String::from),
        );
        v
    }
}

/// Something the session needs the driver to do or to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The client greeted us (for the log).
    Helo {
        /// The name it gave.
        name: String,
        /// EHLO rather than HELO.
        esmtp: bool,
    },
    /// May this sender start a transaction? Answer with [`Session::handle_verdict`].
    CheckSender {
        /// The sender.
        from: ReversePath,
        /// Its parameters.
        params: MailParams,
    },
    /// Is this recipient acceptable? Answer with [`Session::handle_verdict`].
    CheckRecipient {
        /// The recipient.
        to: Mailbox,
        /// Its parameters.
        params: RcptParams,
    },
    /// The client is about to send content (354 sent, or the first BDAT chunk of the
    /// transaction arrives): the envelope is complete but for its size. The place to start the
    /// message, e.g. with its `Received` header.
    ContentStart(Envelope),
    /// Content of the current message, in order (after dot-unstuffing).
    Body(Vec<u8>),
    /// The content is complete: store the message durably, then answer with
    /// [`Session::handle_stored`].
    MessageComplete(Envelope),
    /// The transaction whose sender was accepted ended without a message (RSET, EHLO, error,
    /// disconnect): forget its content.
    TransactionAborted,
    /// STARTTLS was accepted: write the output (`220 Ready to start TLS`), run the TLS
    /// handshake, then call [`Session::handle_tls_established`] (or [`Session::handle_eof`] if it
    /// failed). Input the client had pipelined after STARTTLS was thrown away (CVE-2011-0411).
    StartTls {
        /// Octets of clear-text input discarded after the STARTTLS line.
        discarded: usize,
    },
    /// Check these credentials (AUTH PLAIN or LOGIN), then call [`Session::handle_auth`].
    Authenticate {
        /// The SASL mechanism used.
        mechanism: String,
        /// The authorization identity, if the client gave one different from the user.
        authzid: Option<String>,
        /// The user name.
        username: String,
        /// The password.
        password: String,
    },
    /// The client broke the pipelining rules (RFC 2920) and is being disconnected.
    PipeliningViolation {
        /// The command after which more input was waiting.
        after: String,
    },
    /// A command got a 4xx or 5xx reply (for the log).
    Rejected {
        /// The command line, shortened and made printable.
        command: String,
        /// The reply that was sent.
        reply: Reply,
    },
    /// The session is over: write the pending output, then close the connection.
    Close,
}

/// The driver's answer to [`Event::CheckSender`] or [`Event::CheckRecipient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go on.
    Accept,
    /// Refuse with this reply (4xx or 5xx).
    Reject(Reply),
}

/// The driver's answer to [`Event::Authenticate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// The credentials are good: `235 2.7.0`.
    Success,
    /// They are not: send this reply (usually `535 5.7.8`, or `454`/`421` when limited).
    Failure(Reply),
}

/// The driver's answer to [`Event::MessageComplete`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// On disk under this queue id.
    Queued(String),
    /// Not stored; send this reply (451 or 452).
    Failed(Reply),
}

/// Which input the session reads now.
#[derive(Debug)]
enum Mode {
    /// Before [`Session::handle_connect`].
    Greeting,
    /// Command lines.
    Command,
    /// DATA content.
    Data(DataReceiver),
    /// A BDAT chunk: `remaining` octets still to read; `error` is the reply to send once the
    /// chunk is consumed when the chunk cannot be accepted.
    Bdat {
        remaining: u64,
        size: u64,
        last: bool,
        error: Option<Reply>,
    },
    /// An AUTH exchange: the next line is a SASL response.
    Sasl(Sasl),
    /// STARTTLS accepted; waiting for the driver's handshake.
    TlsHandshake,
    /// Finished.
    Closed,
}

/// Where an AUTH exchange stands.
#[derive(Debug)]
enum Sasl {
    /// AUTH PLAIN without initial response: waiting for it.
    Plain,
    /// AUTH LOGIN: waiting for the user name.
    LoginUser,
    /// AUTH LOGIN: waiting for the password of this user.
    LoginPassword(String),
}

/// Which answer the session waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    Sender,
    Recipient,
    Stored,
    Auth,
}

/// Counters per command for the disconnect log line, in the order Postfix prints them.
const VERBS: [&str; 14] = [
    "helo", "ehlo", "starttls", "auth", "mail", "rcpt", "data", "bdat", "rset", "noop", "vrfy",
    "help", "quit", "unknown",
];

/// A mail transaction in progress.
#[derive(Debug)]
struct Transaction {
    from: ReversePath,
    params: MailParams,
    /// Recipients accepted so far.
    recipients: Vec<Recipient>,
    /// Recipient waiting for its verdict.
    pending: Option<Recipient>,
    /// True once any RCPT was tried (to tell "need RCPT" from "no valid recipients").
    rcpt_tried: bool,
    /// Content octets received.
    size: u64,
    /// The content went over the size limit: keep reading, refuse at the end.
    too_big: bool,
    /// BDAT has been used in this transaction.
    chunked: bool,
    /// Bare LF seen in the content.
    bare_lf: bool,
    /// False until the sender was accepted (the driver knows about the transaction then).
    accepted: bool,
}

/// The server side of one SMTP session.
#[derive(Debug)]
pub struct Session {
    /// Shared server settings.
    config: Arc<SessionConfig>,
    /// Bytes received and not yet processed; `input[pos..]` is what is left.
    input: Vec<u8>,
    /// Start of unprocessed input.
    pos: usize,
    /// Reply bytes waiting to be written.
    out: Vec<u8>,
    /// Events waiting for the driver.
    events: VecDeque<Event>,
    /// Which receiver is active.
    mode: Mode,
    /// Reads command lines.
    lines: LineReceiver,
    /// The answer the session waits for, if any.
    waiting: Option<Waiting>,
    /// The HELO/EHLO name and whether it was EHLO.
    helo: Option<(String, bool)>,
    /// The current mail transaction.
    tx: Option<Transaction>,
    /// Content not yet handed out as [`Event::Body`].
    body: Vec<u8>,
    /// 4xx/5xx replies sent so far.
    errors: u32,
    /// The command being answered: index into [`VERBS`] and its printable text.
    current: (usize, String),
    /// Per verb: (accepted, total).
    counts: [(u32, u32); VERBS.len()],
    /// True once TLS is established.
    tls: bool,
    /// The authenticated user, once AUTH succeeded.
    authenticated: Option<String>,
    /// The user name of the AUTH exchange in progress.
    auth_user: Option<String>,
    /// Messages accepted in this session.
    messages: u32,
}

impl Session {
    /// A new session; nothing is sent until [`Session::handle_connect`].
    pub fn new(config: Arc<SessionConfig>) -> Self {
        Session {
            config,
            input: Vec::new(),
            pos: 0,
            out: Vec::with_capacity(256),
            events: VecDeque::new(),
            mode: Mode::Greeting,
            lines: LineReceiver::new(MAX_PARAM_LINE),
            waiting: None,
            helo: None,
            tx: None,
            body: Vec::new(),
            errors: 0,
            current: (VERBS.len() - 1, String::new()),
            counts: [(0, 0); VERBS.len()],
            tls: false,
            authenticated: None,
            auth_user: None,
            messages: 0,
        }
    }

    /// A session on a connection that is already encrypted (implicit TLS, port 465).
    pub fn new_tls(config: Arc<SessionConfig>) -> Self {
        let mut s = Self::new(config);
        s.tls = true;
        s
    }

    /// TLS is up after [`Event::StartTls`]: the session starts over, waiting for EHLO (RFC 3207).
    pub fn handle_tls_established(&mut self) {
        if matches!(self.mode, Mode::TlsHandshake) {
            self.tls = true;
            self.helo = None;
            // RFC 3207 §4.2: forget everything learnt in clear text, a login included.
            self.authenticated = None;
            self.auth_user = None;
            self.mode = Mode::Command;
            self.process();
        }
    }

    /// The answer to [`Event::Authenticate`].
    pub fn handle_auth(&mut self, outcome: AuthOutcome) {
        if self.waiting != Some(Waiting::Auth) {
            return;
        }
        self.waiting = None;
        let user = self.auth_user.take();
        match outcome {
            AuthOutcome::Success => {
                self.authenticated = user;
                self.reply(replies::auth_ok());
            }
            AuthOutcome::Failure(r) => self.reply(r),
        }
        self.process();
    }

    /// True once TLS is established.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The authenticated user, if any.
    pub fn authenticated(&self) -> Option<&str> {
        self.authenticated.as_deref()
    }

    /// Sends the greeting.
    pub fn handle_connect(&mut self) {
        if matches!(self.mode, Mode::Greeting) {
            let r = replies::greeting(&self.config.hostname, &self.config.banner);
            r.write_to(&mut self.out);
            self.mode = Mode::Command;
            self.process();
        }
    }

    /// The client sent bytes before the greeting: refuse and close, as Postfix does.
    pub fn handle_early_talk(&mut self) {
        replies::protocol_sync().write_to(&mut self.out);
        self.close();
    }

    /// Bytes from the client.
    pub fn handle_bytes(&mut self, bytes: &[u8]) {
        if matches!(self.mode, Mode::Closed) {
            return;
        }
        self.input.extend_from_slice(bytes);
        self.process();
    }

    /// The client closed its side.
    pub fn handle_eof(&mut self) {
        if !matches!(self.mode, Mode::Closed) {
            self.abort_transaction();
            self.close();
        }
    }

    /// No input for too long.
    pub fn handle_timeout(&mut self) {
        if !matches!(self.mode, Mode::Closed) {
            replies::timeout(&self.config.hostname).write_to(&mut self.out);
            self.abort_transaction();
            self.close();
        }
    }

    /// The server is stopping.
    pub fn handle_shutdown(&mut self) {
        if !matches!(self.mode, Mode::Closed) && self.waiting != Some(Waiting::Stored) {
            replies::shutting_down(&self.config.hostname).write_to(&mut self.out);
            self.abort_transaction();
            self.close();
        }
    }

    /// The answer to [`Event::CheckSender`] or [`Event::CheckRecipient`].
    pub fn handle_verdict(&mut self, verdict: Verdict) {
        match self.waiting.take() {
            Some(Waiting::Sender) => match verdict {
                Verdict::Accept => {
                    if let Some(tx) = &mut self.tx {
                        tx.accepted = true;
                    }
                    self.reply(replies::mail_ok());
                }
                Verdict::Reject(r) => {
                    self.tx = None;
                    self.reply(r);
                }
            },
            Some(Waiting::Recipient) => {
                let pending = self.tx.as_mut().and_then(|tx| tx.pending.take());
                match (verdict, pending) {
                    (Verdict::Accept, Some(rcpt)) => {
                        if let Some(tx) = &mut self.tx {
                            tx.recipients.push(rcpt);
                        }
                        self.reply(replies::rcpt_ok());
                    }
                    (Verdict::Reject(r), _) => self.reply(r),
                    (Verdict::Accept, None) => {}
                }
            }
            other => self.waiting = other,
        }
        self.process();
    }

    /// The answer to [`Event::MessageComplete`].
    pub fn handle_stored(&mut self, stored: Stored) {
        if self.waiting != Some(Waiting::Stored) {
            return;
        }
        self.waiting = None;
        self.tx = None;
        match stored {
            Stored::Queued(id) => {
                self.messages += 1;
                self.reply(replies::queued(&id))
            }
            Stored::Failed(r) => self.reply(r),
        }
        self.process();
    }

    /// The next event for the driver.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Reply bytes to write to the client.
    pub fn output(&self) -> &[u8] {
        &self.out
    }

    /// Forget the output once written.
    pub fn clear_output(&mut self) {
        self.out.clear();
    }

    /// True once the session is over.
    pub fn is_closed(&self) -> bool {
        matches!(self.mode, Mode::Closed)
    }

    /// True while the client is sending message content (DATA or BDAT): the driver may use a
    /// longer timeout.
    pub fn in_content(&self) -> bool {
        matches!(self.mode, Mode::Data(_) | Mode::Bdat { .. })
    }

    /// The HELO/EHLO name, once given.
    pub fn helo_name(&self) -> Option<&str> {
        self.helo.as_ref().map(|(n, _)| n.as_str())
    }

    /// Commands read so far: (accepted, all) — the `commands=` of [`Session::stats`].
    pub fn command_count(&self) -> (u64, u64) {
        self.counts.iter().fold((0, 0), |(a, t), &(x, y)| {
            (a + u64::from(x), t + u64::from(y))
        })
    }

    /// Errors so far in the session (the count `max_errors` is compared with).
    pub fn errors(&self) -> u32 {
        self.errors
    }

    /// Command counts as Postfix logs them at disconnect: `ehlo=1 mail=1 rcpt=0/1 … commands=3/4`.
    pub fn stats(&self) -> String {
        let mut parts = Vec::new();
        let (mut ok, mut total) = (0, 0);
        for (verb, &(a, t)) in VERBS.iter().zip(self.counts.iter()) {
            if t == 0 {
                continue;
            }
            ok += a;
            total += t;
            parts.push(if a == t {
                format!("{verb}={t}")
            } else {
                format!("{verb}={a}/{t}")
            });
        }
        parts.push(if ok == total {
            format!("commands={total}")
        } else {
            format!("commands={ok}/{total}")
        });
        parts.join(" ")
    }

    /// Runs as far as the input and the pending questions allow.
    fn process(&mut self) {
        loop {
            if self.waiting.is_some() {
                break;
            }
            let progressed = match self.mode {
                Mode::Greeting | Mode::Closed | Mode::TlsHandshake => false,
                Mode::Sasl(_) => self.process_sasl(),
                Mode::Command => self.process_command(),
                Mode::Data(_) => self.process_data(),
                Mode::Bdat { .. } => self.process_bdat(),
            };
            if !progressed {
                break;
            }
        }
        if matches!(self.mode, Mode::Closed) {
            self.input.clear();
            self.pos = 0;
        } else if self.pos > 0 {
            self.input.drain(..self.pos);
            self.pos = 0;
        }
    }

    /// Reads and handles one command line; false if none is complete.
    fn process_command(&mut self) -> bool {
        match self.lines.next_line(&self.input[self.pos..]) {
            Line::Complete(line, used) => {
                self.pos += used;
                self.handle_line(&line);
                true
            }
            Line::TooLong(used) => {
                self.pos += used;
                self.current = (VERBS.len() - 1, "(line too long)".into());
                self.reply(replies::line_too_long());
                true
            }
            Line::Incomplete(drop) => {
                self.pos += drop;
                false
            }
        }
    }

    /// Sends a reply to the current command, counts it, and logs refusals.
    fn reply(&mut self, reply: Reply) {
        reply.write_to(&mut self.out);
        if reply.is_intermediate() {
            // 354 and 334 are not the outcome of the command: count the final reply only.
            return;
        }
        let (index, ref command) = self.current;
        self.counts[index].1 += 1;
        if reply.code < 400 {
            self.counts[index].0 += 1;
            return;
        }
        self.events.push_back(Event::Rejected {
            command: command.clone(),
            reply,
        });
        self.errors += 1;
        if self.errors >= self.config.max_errors && !matches!(self.mode, Mode::Closed) {
            let limit = replies::too_many_errors(&self.config.hostname);
            limit.write_to(&mut self.out);
            // Logged like any refusal, so the disconnect has its reason in the log.
            self.events.push_back(Event::Rejected {
                command: self.current.1.clone(),
                reply: limit,
            });
            self.abort_transaction();
            self.close();
        }
    }

    /// Drops the transaction, telling the driver if it knew about it.
    fn abort_transaction(&mut self) {
        self.body.clear();
        if let Some(tx) = self.tx.take()
            && tx.accepted
        {
            self.events.push_back(Event::TransactionAborted);
        }
    }

    fn close(&mut self) {
        if !matches!(self.mode, Mode::Closed) {
            self.mode = Mode::Closed;
            self.waiting = None;
            self.events.push_back(Event::Close);
        }
    }
}
