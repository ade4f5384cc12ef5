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

/// One accepted recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The address as given in RCPT TO.
    pub to: Mailbox,
    /// Its DSN parameters.
    pub params: RcptParams,
}

/// Everything about one message except its content: what the spool keeps beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The HELO/EHLO name the client gave.
    pub helo: String,
    /// True if the client used EHLO (the `Received` header says ESMTP).
    pub esmtp: bool,
    /// MAIL FROM.
    pub from: ReversePath,
    /// MAIL FROM parameters.
    pub mail_params: MailParams,
    /// Accepted recipients, in order.
    pub recipients: Vec<Recipient>,
    /// Octets of content received (after dot-unstuffing).
    pub size: u64,
    /// True if the content came with BDAT.
    pub chunked: bool,
    /// True if the content had bare LF line ends (stored as CRLF).
    pub bare_lf: bool,
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

    /// Reads one SASL response line; false if none is complete.
    fn process_sasl(&mut self) -> bool {
        match self.lines.next_line(&self.input[self.pos..]) {
            Line::Complete(line, used) => {
                self.pos += used;
                let Mode::Sasl(step) = std::mem::replace(&mut self.mode, Mode::Command) else {
                    return true;
                };
                self.handle_sasl_line(step, &line);
                true
            }
            Line::TooLong(used) => {
                self.pos += used;
                self.mode = Mode::Command;
                self.reply(replies::line_too_long());
                true
            }
            Line::Incomplete(drop) => {
                self.pos += drop;
                false
            }
        }
    }

    fn handle_sasl_line(&mut self, step: Sasl, line: &[u8]) {
        if line == b"*" {
            return self.reply(replies::auth_aborted());
        }
        let Some(decoded) = decode_b64(line) else {
            return self.reply(replies::auth_bad_base64());
        };
        match step {
            Sasl::Plain => self.finish_plain(&decoded),
            Sasl::LoginUser => {
                let user = String::from_utf8_lossy(&decoded).into_owned();
                self.reply(replies::auth_challenge("Password:"));
                self.mode = Mode::Sasl(Sasl::LoginPassword(user));
            }
            Sasl::LoginPassword(user) => {
                let password = String::from_utf8_lossy(&decoded).into_owned();
                self.ask_auth("LOGIN", None, user, password);
            }
        }
    }

    /// Splits a PLAIN response (`authzid NUL user NUL password`) and asks for a check.
    fn finish_plain(&mut self, decoded: &[u8]) {
        let parts: Vec<&[u8]> = decoded.split(|&b| b == 0).collect();
        let [authzid, user, password] = parts.as_slice() else {
            return self.reply(replies::auth_bad_base64());
        };
        let authzid = String::from_utf8_lossy(authzid).into_owned();
        let user = String::from_utf8_lossy(user).into_owned();
        let authzid = (!authzid.is_empty() && authzid != user).then_some(authzid);
        let password = String::from_utf8_lossy(password).into_owned();
        self.ask_auth("PLAIN", authzid, user, password);
    }

    fn ask_auth(
        &mut self,
        mechanism: &str,
        authzid: Option<String>,
        username: String,
        password: String,
    ) {
        self.auth_user = Some(username.clone());
        self.events.push_back(Event::Authenticate {
            mechanism: mechanism.to_string(),
            authzid,
            username,
            password,
        });
        self.waiting = Some(Waiting::Auth);
    }

    fn handle_auth_command(&mut self, mechanism: &str, initial: Option<String>) {
        let tls = self.tls;
        if self.config.auth_mechanisms.is_empty() {
            return self.reply(replies::auth_not_enabled());
        }
        if !self.config.auth_offered(tls) {
            return self.reply(replies::encryption_required_for_auth());
        }
        if self.helo.is_none() {
            return self.reply(replies::need_helo());
        }
        if self.authenticated.is_some() {
            return self.reply(replies::already_authenticated());
        }
        if self.tx.is_some() {
            return self.reply(replies::auth_in_transaction());
        }
        if !self.config.auth_mechanisms.iter().any(|m| m == mechanism) {
            return self.reply(replies::auth_unsupported_mechanism());
        }
        match (mechanism, initial) {
            ("PLAIN", None) => {
                self.reply(replies::auth_challenge(""));
                self.mode = Mode::Sasl(Sasl::Plain);
            }
            ("PLAIN", Some(i)) => {
                if i == "*" {
                    return self.reply(replies::auth_aborted());
                }
                match decode_b64(i.as_bytes()) {
                    Some(d) => self.finish_plain(&d),
                    None => self.reply(replies::auth_bad_base64()),
                }
            }
            ("LOGIN", None) => {
                self.reply(replies::auth_challenge("Username:"));
                self.mode = Mode::Sasl(Sasl::LoginUser);
            }
            ("LOGIN", Some(i)) => match decode_b64(i.as_bytes()) {
                Some(d) => {
                    let user = String::from_utf8_lossy(&d).into_owned();
                    self.reply(replies::auth_challenge("Password:"));
                    self.mode = Mode::Sasl(Sasl::LoginPassword(user));
                }
                None => self.reply(replies::auth_bad_base64()),
            },
            _ => self.reply(replies::auth_unsupported_mechanism()),
        }
    }

    fn handle_starttls(&mut self) {
        if !self.config.starttls {
            return self.reply(replies::not_implemented("STARTTLS"));
        }
        if self.tls {
            return self.reply(replies::tls_already_active());
        }
        self.reply(replies::ready_to_start_tls());
        self.abort_transaction();
        let discarded = self.input.len() - self.pos;
        self.pos = self.input.len();
        self.mode = Mode::TlsHandshake;
        self.events.push_back(Event::StartTls { discarded });
    }

    /// After a command the client must wait for: more input already there breaks RFC 2920.
    fn check_sync(&mut self, must_be_last: bool) -> bool {
        if !self.config.forbid_unauth_pipelining || self.pos >= self.input.len() {
            return true;
        }
        let pipelining = self.helo.as_ref().is_some_and(|(_, esmtp)| *esmtp);
        if !must_be_last && pipelining {
            return true;
        }
        let after = self.current.1.clone();
        self.events.push_back(Event::PipeliningViolation { after });
        replies::protocol_sync().write_to(&mut self.out);
        self.abort_transaction();
        self.close();
        false
    }

    /// Feeds DATA content; false when more input is needed.
    fn process_data(&mut self) -> bool {
        let Mode::Data(rx) = &mut self.mode else {
            return false;
        };
        let before = self.body.len();
        let (used, ended) = rx.feed(&self.input[self.pos..], &mut self.body);
        let bare_lf = rx.saw_bare_lf;
        self.pos += used;
        let added = (self.body.len() - before) as u64;
        self.account_content(added, bare_lf);
        if ended {
            self.mode = Mode::Command;
            self.current = (6, "DATA".into());
            self.finish_message();
            return true;
        }
        false
    }

    /// Feeds a BDAT chunk; false when more input is needed.
    fn process_bdat(&mut self) -> bool {
        let Mode::Bdat {
            remaining,
            size,
            last,
            ref error,
        } = self.mode
        else {
            return false;
        };
        let avail = (self.input.len() - self.pos) as u64;
        let take = remaining.min(avail) as usize;
        if error.is_none() {
            self.body
                .extend_from_slice(&self.input[self.pos..self.pos + take]);
            self.account_content(take as u64, false);
        }
        self.pos += take;
        let remaining = remaining - take as u64;
        if remaining > 0 {
            if let Mode::Bdat { remaining: r, .. } = &mut self.mode {
                *r = remaining;
            }
            return false;
        }
        let Mode::Bdat { error, .. } = std::mem::replace(&mut self.mode, Mode::Command) else {
            return false;
        };
        self.current = (7, format!("BDAT {size}{}", if last { " LAST" } else { "" }));
        if let Some(reply) = error {
            self.reply(reply);
        } else if self.tx.as_ref().is_some_and(|t| t.too_big) {
            self.abort_transaction();
            self.reply(replies::message_too_big());
        } else if last {
            self.finish_message();
        } else {
            self.reply(replies::chunk_ok(size));
        }
        true
    }

    /// Counts content octets, enforces the size limit and hands out full chunks.
    fn account_content(&mut self, added: u64, bare_lf: bool) {
        let max = self.config.max_message_size;
        let Some(tx) = &mut self.tx else {
            self.body.clear();
            return;
        };
        tx.size += added;
        tx.bare_lf |= bare_lf;
        if max > 0 && tx.size > max {
            tx.too_big = true;
        }
        if tx.too_big {
            self.body.clear();
        } else if self.body.len() >= BODY_CHUNK {
            let chunk = std::mem::replace(&mut self.body, Vec::with_capacity(BODY_CHUNK + 4096));
            self.events.push_back(Event::Body(chunk));
        }
    }

    /// End of content: refuse it if too big, otherwise ask for it to be stored.
    fn finish_message(&mut self) {
        let Some(tx) = &self.tx else {
            return;
        };
        if tx.too_big {
            self.abort_transaction();
            self.reply(replies::message_too_big());
            return;
        }
        if !self.body.is_empty() {
            let chunk = std::mem::take(&mut self.body);
            self.events.push_back(Event::Body(chunk));
        }
        let envelope = self.envelope(tx);
        self.events.push_back(Event::MessageComplete(envelope));
        self.waiting = Some(Waiting::Stored);
    }

    /// The envelope of a transaction as it stands.
    fn envelope(&self, tx: &Transaction) -> Envelope {
        let (helo, esmtp) = self.helo.clone().unwrap_or_default();
        Envelope {
            helo,
            esmtp,
            from: tx.from.clone(),
            mail_params: tx.params.clone(),
            recipients: tx.recipients.clone(),
            size: tx.size,
            chunked: tx.chunked,
            bare_lf: tx.bare_lf,
        }
    }

    /// Handles one complete command line.
    fn handle_line(&mut self, line: &[u8]) {
        let verb = Command::verb_of(line);
        let index = VERBS
            .iter()
            .position(|v| v.eq_ignore_ascii_case(&verb))
            .unwrap_or(VERBS.len() - 1);
        // Never log credentials: AUTH keeps only its mechanism.
        let shown = if VERBS[index] == "auth" {
            let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
            let _ = words.next();
            let mech = words.next().map(printable).unwrap_or_default();
            let more = if words.next().is_some() { " ***" } else { "" };
            format!("AUTH {mech}{more}")
        } else {
            printable(line)
        };
        self.current = (index, shown);
        let limit = if matches!(index, 4 | 5) {
            MAX_PARAM_LINE
        } else {
            MAX_COMMAND_LINE
        };
        if line.len() + 2 > limit {
            self.reply(replies::line_too_long());
            return;
        }
        let cmd = match Command::parse(line) {
            Ok(cmd) => cmd,
            Err(e) => {
                let reply = match e {
                    CommandError::Unknown => replies::unknown_command(),
                    CommandError::Forbidden => {
                        self.reply(replies::forbidden_command());
                        self.abort_transaction();
                        self.close();
                        return;
                    }
                    CommandError::BadEncoding => replies::bad_encoding(),
                    CommandError::Syntax(usage) => replies::syntax(usage),
                    CommandError::BadSender(e) => replies::bad_sender(&e.to_string()),
                    CommandError::BadRecipient(e) => replies::bad_recipient(&e.to_string()),
                    CommandError::Param(p) => param_reply(&p),
                };
                self.reply(reply);
                return;
            }
        };
        if self.config.require_tls
            && !self.tls
            && !matches!(
                cmd,
                Command::Ehlo(_)
                    | Command::Helo(_)
                    | Command::StartTls
                    | Command::Noop
                    | Command::Rset
                    | Command::Quit
            )
        {
            return self.reply(replies::must_starttls());
        }
        let must_be_last = matches!(
            cmd,
            Command::Ehlo(_)
                | Command::Helo(_)
                | Command::Data
                | Command::Noop
                | Command::Vrfy(_)
                | Command::Expn(_)
                | Command::Auth { .. }
        );
        // STARTTLS discards what follows instead; BDAT is followed by its chunk by design.
        let exempt = matches!(cmd, Command::StartTls | Command::Bdat { .. });
        self.dispatch(cmd, line);
        if !exempt && !self.is_closed() {
            self.check_sync(must_be_last);
        }
    }

    /// Carries out one parsed command.
    fn dispatch(&mut self, cmd: Command, line: &[u8]) {
        match cmd {
            Command::Ehlo(name) | Command::Helo(name) => {
                let esmtp = line[..4].eq_ignore_ascii_case(b"EHLO");
                self.abort_transaction();
                self.events.push_back(Event::Helo {
                    name: name.clone(),
                    esmtp,
                });
                self.helo = Some((name, esmtp));
                let r = if esmtp {
                    replies::ehlo(&self.config.hostname, &self.config.extensions(self.tls))
                } else {
                    replies::helo(&self.config.hostname)
                };
                self.reply(r);
            }
            Command::Mail { from, params } => self.handle_mail(from, params),
            Command::Rcpt { to, params } => self.handle_rcpt(to, params),
            Command::Data => self.handle_data(),
            Command::Bdat { size, last } => self.handle_bdat(size, last),
            Command::Rset => {
                self.abort_transaction();
                self.reply(replies::ok());
            }
            Command::Noop => self.reply(replies::ok()),
            Command::Quit => {
                self.reply(replies::bye());
                self.abort_transaction();
                self.close();
            }
            Command::Vrfy(_) => self.reply(replies::vrfy_disabled()),
            Command::Expn(_) => self.reply(replies::expn_disabled()),
            Command::Help(_) => self.reply(replies::help()),
            Command::StartTls => self.handle_starttls(),
            Command::Auth { mechanism, initial } => self.handle_auth_command(&mechanism, initial),
        }
    }

    fn handle_mail(&mut self, from: ReversePath, params: MailParams) {
        if self.helo.is_none() {
            return self.reply(replies::need_helo());
        }
        if self.tx.is_some() {
            return self.reply(replies::nested_mail());
        }
        if self.config.require_auth && self.authenticated.is_none() {
            return self.reply(replies::auth_required());
        }
        if self.config.max_messages > 0 && self.messages >= self.config.max_messages {
            self.reply(replies::too_many_messages(&self.config.hostname));
            self.close();
            return;
        }
        let max = self.config.max_message_size;
        if max > 0 && params.size.is_some_and(|s| s > max) {
            return self.reply(replies::size_exceeds_limit());
        }
        if params.body == Some(BodyType::BinaryMime) {
            return self.reply(replies::unsupported_param("BODY=BINARYMIME"));
        }
        if !params.smtputf8 && from.mailbox().is_some_and(|m| !m.is_ascii()) {
            return self.reply(replies::utf8_not_declared());
        }
        self.tx = Some(Transaction {
            from: from.clone(),
            params: params.clone(),
            recipients: Vec::new(),
            pending: None,
            rcpt_tried: false,
            size: 0,
            too_big: false,
            chunked: false,
            bare_lf: false,
            accepted: false,
        });
        self.events.push_back(Event::CheckSender { from, params });
        self.waiting = Some(Waiting::Sender);
    }

    fn handle_rcpt(&mut self, to: Mailbox, params: RcptParams) {
        let max = self.config.max_recipients;
        let Some(tx) = &mut self.tx else {
            return self.reply(replies::need_mail());
        };
        tx.rcpt_tried = true;
        if tx.recipients.len() >= max {
            return self.reply(replies::too_many_recipients());
        }
        if !tx.params.smtputf8 && !to.is_ascii() {
            return self.reply(replies::utf8_not_declared());
        }
        tx.pending = Some(Recipient {
            to: to.clone(),
            params: params.clone(),
        });
        self.events.push_back(Event::CheckRecipient { to, params });
        self.waiting = Some(Waiting::Recipient);
    }

    /// The reply that refuses DATA/BDAT in the current state, if any.
    fn content_refusal(&self) -> Option<Reply> {
        match &self.tx {
            None => Some(replies::need_rcpt()),
            Some(tx) if tx.recipients.is_empty() && tx.rcpt_tried => {
                Some(replies::no_valid_recipients())
            }
            Some(tx) if tx.recipients.is_empty() => Some(replies::need_rcpt()),
            Some(_) => None,
        }
    }

    fn handle_data(&mut self) {
        if let Some(r) = self.content_refusal() {
            return self.reply(r);
        }
        if self.tx.as_ref().is_some_and(|t| t.chunked) {
            return self.reply(replies::data_after_bdat());
        }
        self.reply(replies::start_data());
        if let Some(tx) = &self.tx {
            let envelope = self.envelope(tx);
            self.events.push_back(Event::ContentStart(envelope));
        }
        self.mode = Mode::Data(DataReceiver::new());
    }

    fn handle_bdat(&mut self, size: u64, last: bool) {
        let error = self.content_refusal();
        if error.is_none()
            && let Some(tx) = &mut self.tx
            && !tx.chunked
        {
            tx.chunked = true;
            let envelope = self.envelope(self.tx.as_ref().expect("checked above"));
            self.events.push_back(Event::ContentStart(envelope));
        }
        self.mode = Mode::Bdat {
            remaining: size,
            size,
            last,
            error,
        };
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

/// The reply for a bad MAIL/RCPT parameter.
fn param_reply(e: &ParamError) -> Reply {
    match e {
        ParamError::Unsupported(name) => replies::unsupported_param(name),
        ParamError::Syntax(_) | ParamError::Duplicate(_) => replies::bad_param("parameter"),
        ParamError::BadValue(name) => replies::bad_param(name),
    }
}

/// A command line made safe for a log: printable, at most 100 characters.
fn printable(line: &[u8]) -> String {
    let s = String::from_utf8_lossy(line);
    let mut out: String = s
        .chars()
        .take(100)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > 100 {
        out.push('…');
    }
    out
}

/// Decodes a SASL response; `=` is the empty response (RFC 4954).
fn decode_b64(line: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine;
    if line == b"=" {
        return Some(Vec::new());
    }
    base64::engine::general_purpose::STANDARD.decode(line).ok()
}
