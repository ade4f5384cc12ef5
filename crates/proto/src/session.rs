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
        }
    }

    /// The EHLO keywords we advertise, in order.
    pub fn extensions(&self) -> Vec<String> {
        let size = if self.max_message_size > 0 {
            format!("SIZE {}", self.max_message_size)
        } else {
            "SIZE".to_string()
        };
        vec![
            "PIPELINING".into(),
            size,
            "ENHANCEDSTATUSCODES".into(),
            "8BITMIME".into(),
            "DSN".into(),
            "SMTPUTF8".into(),
            "CHUNKING".into(),
            "HELP".into(),
        ]
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
    /// Finished.
    Closed,
}

/// Which answer the session waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    Sender,
    Recipient,
    Stored,
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
    /// The EHLO keyword list, built once.
    extensions: Arc<Vec<String>>,
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
}

impl Session {
    /// A new session; nothing is sent until [`Session::handle_connect`].
    pub fn new(config: Arc<SessionConfig>) -> Self {
        let extensions = Arc::new(config.extensions());
        Self::with_extensions(config, extensions)
    }

    /// A new session sharing an already built EHLO list (saves an allocation per connection).
    pub fn with_extensions(config: Arc<SessionConfig>, extensions: Arc<Vec<String>>) -> Self {
        Session {
            config,
            extensions,
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
        }
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
            Stored::Queued(id) => self.reply(replies::queued(&id)),
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
                Mode::Greeting | Mode::Closed => false,
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
        self.current = (index, printable(line));
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
                    replies::ehlo(&self.config.hostname, &self.extensions)
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
            Command::StartTls => self.reply(replies::not_implemented("STARTTLS")),
            Command::Auth { .. } => self.reply(replies::auth_not_enabled()),
        }
    }

    fn handle_mail(&mut self, from: ReversePath, params: MailParams) {
        if self.helo.is_none() {
            return self.reply(replies::need_helo());
        }
        if self.tx.is_some() {
            return self.reply(replies::nested_mail());
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
            replies::too_many_errors(&self.config.hostname).write_to(&mut self.out);
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
