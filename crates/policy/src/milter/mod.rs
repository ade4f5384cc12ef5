//! Content filters spoken to with the Sendmail milter protocol (version 6), as Postfix's
//! `smtpd_milters` do: rspamd, clamav-milter and OpenDKIM plug in unchanged.
//!
//! The door keeps one [`Filters`] per SMTP connection; each configured filter gets a socket of
//! its own, opened at the first MAIL FROM (the connection and HELO are told then). The
//! envelope is passed as it comes (MAIL, RCPT, DATA), the content as it streams in (header
//! fields, end of header, body in chunks), and at the end of the message the filters' answers
//! and changes make an [`Outcome`]. What an answer means is [`step`], a pure function; a filter
//! that is down, slow or broken gets its `default_action`.
//!
//! - `codec`: the packets; `message`: header fields, the splitter and the header edits;
//!   `conn`: one socket with its timeouts.

pub mod codec;
pub mod conn;
pub mod message;

use std::net::IpAddr;
use std::sync::Arc;

use relais_config::{MilterAction, MilterConfig};
use relais_proto::{Reply, replies};
use tracing::warn;

use codec::{Command, Response, Stage, steps};
use conn::{Conn, Failure};
pub use message::{Field, HeaderEdit, Part, Splitter};

/// What one answer of a filter means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Go on asking it.
    Continue,
    /// It accepts: no more questions about this message (at connect or HELO: about this
    /// connection).
    Accept,
    /// It refuses, with this reply.
    Refuse(Reply),
    /// Accept the message and drop it.
    Discard,
    /// Not an answer to that question.
    Broken(String),
}

/// What `response` means as an answer to a question (not the end of the message, whose
/// changes come before the answer).
pub fn step(response: &Response) -> Step {
    match response {
        Response::Continue => Step::Continue,
        Response::Accept => Step::Accept,
        Response::Reject => Step::Refuse(replies::milter_reject()),
        Response::Tempfail => Step::Refuse(replies::milter_tempfail()),
        Response::ReplyCode(text) => match replies::milter_reply(text) {
            Some(r) => Step::Refuse(r),
            None => Step::Broken(format!("unusable reply {text:?}")),
        },
        Response::Discard => Step::Discard,
        other => Step::Broken(format!("unexpected answer {other:?}")),
    }
}

/// The decision about a command or a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go on.
    Continue,
    /// Refuse it with this reply; the filter named.
    Refuse(Reply, String),
    /// Accept the message and drop it; the filter named.
    Discard(String),
}

/// Everything the filters decided about a complete message.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Refused or discarded, by whom; `None` when accepted.
    pub verdict: Option<Verdict>,
    /// The header section as changed, when a filter changed it: the content's fields (our
    /// trace fields first), each with its CRLF.
    pub header: Option<Vec<u8>>,
    /// The new body, when a filter replaced it.
    pub body: Option<Vec<u8>>,
    /// Hold the message (`SMFIR_QUARANTINE`), for this reason; the filter named.
    pub hold: Option<(String, String)>,
    /// Notes for the log (a change that could not be made).
    pub notes: Vec<String>,
}

/// Who the client is, as filters are told at connect.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Its address and port.
    pub ip: IpAddr,
    /// Its port.
    pub port: u16,
    /// Its confirmed PTR name, if any.
    pub name: Option<String>,
}

/// What filters are told with each command (Sendmail's macros).
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// The queue id, once there is one.
    pub queue_id: String,
    /// The authenticated user.
    pub user: Option<String>,
    /// TLS version and cipher.
    pub tls: Option<(String, String)>,
}

/// Where one filter stands on this connection.
enum State {
    /// Not connected yet.
    Unopened,
    /// Connected; `message` is where it stands on the current message.
    Open(Box<Conn>, Message),
    /// It decided for the whole connection at connect or HELO.
    Decided(Step),
    /// It failed: its default action from now on.
    Failed,
}

/// Where an open filter stands on the current message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Message {
    /// No transaction.
    #[default]
    Idle,
    /// Told of the transaction; wants the rest.
    Listening,
    /// Needs no more of the body (`SMFIR_SKIP`).
    SkipBody,
    /// Decided about this message before its end (accepted or refused it): asked nothing
    /// more, told `SMFIC_ABORT` when the transaction ends.
    Done,
}

struct Filter {
    config: MilterConfig,
    state: State,
    /// The HELO name it was told.
    helo: Option<String>,
}

/// The filters of one SMTP connection.
pub struct Filters {
    filters: Vec<Filter>,
    peer: Peer,
    hostname: String,
    /// The content being split.
    splitter: Splitter,
    /// The header fields received.
    fields: Vec<Field>,
    /// Body octets not sent yet (sent in chunks of [`codec::BODY_CHUNK`]).
    body: Vec<u8>,
    /// A decision reached before the end of the message.
    early: Option<Verdict>,
}

impl Filters {
    /// The filters `configs` for a client; nothing is opened until the first MAIL FROM.
    pub fn new(configs: &Arc<[MilterConfig]>, peer: Peer, hostname: &str) -> Filters {
        Filters {
            filters: configs
                .iter()
                .map(|c| Filter {
                    config: c.clone(),
                    state: State::Unopened,
                    helo: None,
                })
                .collect(),
            peer,
            hostname: hostname.to_string(),
            splitter: Splitter::new(),
            fields: Vec::new(),
            body: Vec::new(),
            early: None,
        }
    }

    /// The client's confirmed PTR name, once known (told at connect).
    pub fn set_client_name(&mut self, name: Option<String>) {
        self.peer.name = name;
    }

    /// MAIL FROM `args` (`<sender>` and its parameters), after the HELO name `helo`.
    pub async fn mail(&mut self, helo: &str, args: &[String], facts: &Facts) -> Verdict {
        self.reset();
        for i in 0..self.filters.len() {
            self.open(i, helo, facts).await;
            if let State::Open(_, m) = &mut self.filters[i].state {
                *m = Message::Listening;
            }
            let mut macros = vec![("i", facts.queue_id.clone())];
            if let Some(u) = &facts.user {
                macros.push(("{auth_authen}", u.clone()));
            }
            if let Some(a) = args.first() {
                macros.push(("{mail_addr}", a.trim_matches(['<', '>']).to_string()));
            }
            let v = self
                .ask(
                    i,
                    Stage::Mail,
                    &macros,
                    Command::Mail(args),
                    steps::NO_MAIL,
                    steps::NR_MAIL,
                )
                .await;
            if v != Verdict::Continue {
                return v;
            }
        }
        Verdict::Continue
    }

    /// RCPT TO `args` (`<recipient>` and its parameters).
    pub async fn rcpt(&mut self, args: &[String]) -> Verdict {
        for i in 0..self.filters.len() {
            let macros = vec![(
                "{rcpt_addr}",
                args.first()
                    .map(|a| a.trim_matches(['<', '>']).to_string())
                    .unwrap_or_default(),
            )];
            let v = self
                .ask(
                    i,
                    Stage::Rcpt,
                    &macros,
                    Command::Rcpt(args),
                    steps::NO_RCPT,
                    steps::NR_RCPT,
                )
                .await;
            // A refusal concerns this recipient only: the filter goes on with the message.
            if let (Verdict::Refuse(..), State::Open(_, m)) = (&v, &mut self.filters[i].state) {
                *m = Message::Listening;
            }
            if v != Verdict::Continue {
                return v;
            }
        }
        Verdict::Continue
    }

    /// DATA: the content follows.
    pub async fn data(&mut self) {
        for i in 0..self.filters.len() {
            let v = self
                .ask(
                    i,
                    Stage::Data,
                    &[],
                    Command::Data,
                    steps::NO_DATA,
                    steps::NR_DATA,
                )
                .await;
            self.remember(v);
        }
    }

    /// A chunk of the content as stored (the client's, without our trace fields).
    pub async fn content(&mut self, chunk: &[u8]) {
        let mut parts = Vec::new();
        self.splitter.feed(chunk, &mut parts);
        self.pass(parts).await;
    }

    /// True when some filter is still listening to this message.
    pub fn listening(&self) -> bool {
        self.filters.iter().any(|f| {
            matches!(
                f.state,
                State::Open(_, Message::Listening | Message::SkipBody)
            )
        })
    }

    async fn pass(&mut self, parts: Vec<Part>) {
        for part in parts {
            match part {
                Part::Field(f) => {
                    for i in 0..self.filters.len() {
                        let lead = self.lead_space(i);
                        let (name, value) = (f.name(), f.value(lead));
                        let cmd = Command::Header(&name, &value);
                        let v = self
                            .ask_content(
                                i,
                                Stage::EndOfHeaders,
                                cmd,
                                steps::NO_HEADERS,
                                steps::NR_HEADER,
                            )
                            .await;
                        self.remember(v);
                    }
                    if !self.splitter.overflowed {
                        self.fields.push(f);
                    }
                }
                Part::EndOfHeaders => {
                    for i in 0..self.filters.len() {
                        let v = self
                            .ask_content(
                                i,
                                Stage::EndOfHeaders,
                                Command::EndOfHeaders,
                                steps::NO_EOH,
                                steps::NR_EOH,
                            )
                            .await;
                        self.remember(v);
                    }
                }
                Part::Body(bytes) => {
                    self.body.extend_from_slice(&bytes);
                    while self.body.len() >= codec::BODY_CHUNK {
                        let chunk: Vec<u8> = self.body.drain(..codec::BODY_CHUNK).collect();
                        self.send_body(&chunk).await;
                    }
                }
            }
        }
    }

    async fn send_body(&mut self, chunk: &[u8]) {
        for i in 0..self.filters.len() {
            // Only a filter still listening wants body (not after `SMFIR_SKIP`).
            let State::Open(conn, m) = &mut self.filters[i].state else {
                continue;
            };
            if *m != Message::Listening {
                continue;
            }
            let r = conn
                .ask(None, Command::Body(chunk), steps::NO_BODY, steps::NR_BODY)
                .await;
            let v = match r {
                Ok(Response::Skip) => {
                    *m = Message::SkipBody;
                    Verdict::Continue
                }
                Ok(r) => self.decided(i, step(&r)),
                Err(e) => self.failed(i, &e),
            };
            self.remember(v);
        }
    }

    /// The end of the message: the filters' final answers and changes. `trace` are the
    /// fields we put on top of the content (`Received`, `Received-SPF`), kept first.
    pub async fn end(&mut self, facts: &Facts, trace: &[Field]) -> Outcome {
        let mut parts = Vec::new();
        self.splitter.finish(&mut parts);
        self.pass(parts).await;
        let rest = std::mem::take(&mut self.body);
        if !rest.is_empty() {
            self.send_body(&rest).await;
        }
        let mut out = Outcome::default();
        let mut edits = Vec::new();
        let mut body: Option<Vec<u8>> = None;
        let macros = vec![("i", facts.queue_id.clone())];
        for i in 0..self.filters.len() {
            if self.early.is_some() {
                break;
            }
            let State::Open(conn, m) = &mut self.filters[i].state else {
                let v = self.standing(i);
                self.remember(v);
                continue;
            };
            if !matches!(*m, Message::Listening | Message::SkipBody) {
                continue;
            }
            *m = Message::Idle;
            let lead = conn.asked(steps::HEADER_LEADING_SPACE);
            let (answer, changes) = match conn.end_of_message(&macros).await {
                Ok(x) => x,
                Err(e) => {
                    let v = self.failed(i, &e);
                    self.remember(v);
                    continue;
                }
            };
            let name = self.filters[i].config.address.to_string();
            // Accepting at the end is going on: the message is over for it either way.
            let s = match step(&answer) {
                Step::Accept => Step::Continue,
                s => s,
            };
            let v = self.decided(i, s);
            if v != Verdict::Continue {
                self.remember(v);
                break;
            }
            for c in changes {
                match c {
                    Response::AddHeader(n, v) => {
                        edits.push(HeaderEdit::Add(Field::new(&n, &v, lead)))
                    }
                    Response::InsertHeader(at, n, v) => edits.push(HeaderEdit::Insert(
                        usize::try_from(at).unwrap_or(usize::MAX),
                        Field::new(&n, &v, lead),
                    )),
                    Response::ChangeHeader(nth, n, v) => {
                        let field = (!v.is_empty()).then(|| Field::new(&n, &v, lead));
                        edits.push(HeaderEdit::Change(
                            usize::try_from(nth).unwrap_or(usize::MAX),
                            n,
                            field,
                        ));
                    }
                    Response::ReplaceBody(chunk) => body.get_or_insert_with(Vec::new).extend(chunk),
                    Response::Quarantine(why) => out.hold = Some((why, name.clone())),
                    _ => {}
                }
            }
        }
        out.verdict = self.early.take();
        if !edits.is_empty() || body.is_some() {
            if self.splitter.overflowed {
                out.notes
                    .push("header too large: the filters' header changes were not made".into());
            } else {
                let mut fields: Vec<Field> = trace.to_vec();
                fields.append(&mut self.fields);
                message::apply(&mut fields, trace.len(), &edits);
                out.header = Some(message::section(&fields));
            }
        }
        out.body = body;
        // Those that decided before the end, or were not asked because another refused.
        self.abort().await;
        out
    }

    /// The transaction ended without a message (RSET, a new MAIL, a refusal).
    pub async fn abort(&mut self) {
        for f in &mut self.filters {
            if let State::Open(conn, m) = &mut f.state
                && *m != Message::Idle
            {
                if let Err(e) = conn.tell(Command::Abort).await {
                    warn!("milter {}: {e}", f.config.address);
                    f.state = State::Failed;
                    continue;
                }
                *m = Message::Idle;
            }
        }
        self.reset();
    }

    /// The client left: the filters are told and their sockets closed.
    pub async fn quit(&mut self) {
        for f in &mut self.filters {
            if let State::Open(conn, _) = &mut f.state {
                let _ = conn.tell(Command::Quit).await;
            }
            f.state = State::Failed;
        }
    }

    fn reset(&mut self) {
        self.splitter = Splitter::new();
        self.fields.clear();
        self.body.clear();
        self.early = None;
    }

    fn remember(&mut self, v: Verdict) {
        if v != Verdict::Continue && self.early.is_none() {
            self.early = Some(v);
        }
    }

    fn lead_space(&self, i: usize) -> bool {
        matches!(&self.filters[i].state, State::Open(c, _) if c.asked(steps::HEADER_LEADING_SPACE))
    }

    /// Connects filter `i` if not yet, and tells it the connection and the HELO name.
    async fn open(&mut self, i: usize, helo: &str, facts: &Facts) {
        if matches!(self.filters[i].state, State::Unopened) {
            match Conn::open(&self.filters[i].config).await {
                Ok(c) => self.filters[i].state = State::Open(Box::new(c), Message::Idle),
                Err(e) => {
                    self.failed(i, &e);
                    return;
                }
            }
            let name = self
                .peer
                .name
                .clone()
                .unwrap_or_else(|| format!("[{}]", self.peer.ip));
            let macros = vec![
                ("j", self.hostname.clone()),
                ("{daemon_name}", "relais".to_string()),
                ("_", format!("{name} [{}]", self.peer.ip)),
                ("{client_addr}", self.peer.ip.to_string()),
                ("{client_port}", self.peer.port.to_string()),
                (
                    "{client_name}",
                    self.peer.name.clone().unwrap_or("unknown".into()),
                ),
            ];
            let cmd = Command::Connect {
                name: &name,
                addr: Some((self.peer.ip, self.peer.port)),
            };
            self.ask(
                i,
                Stage::Connect,
                &macros,
                cmd,
                steps::NO_CONNECT,
                steps::NR_CONNECT,
            )
            .await;
        }
        if matches!(self.filters[i].state, State::Open(..))
            && !helo.is_empty()
            && self.filters[i].helo.as_deref() != Some(helo)
        {
            self.filters[i].helo = Some(helo.to_string());
            let mut macros = Vec::new();
            if let Some((version, cipher)) = &facts.tls {
                macros.push(("{tls_version}", version.clone()));
                macros.push(("{cipher}", cipher.clone()));
            }
            self.ask(
                i,
                Stage::Helo,
                &macros,
                Command::Helo(helo),
                steps::NO_HELO,
                steps::NR_HELO,
            )
            .await;
        }
    }

    /// Asks filter `i` about an envelope command; its standing when it decided already.
    async fn ask(
        &mut self,
        i: usize,
        stage: Stage,
        macros: &[(&str, String)],
        command: Command<'_>,
        skip: u32,
        no_reply: u32,
    ) -> Verdict {
        let State::Open(conn, m) = &mut self.filters[i].state else {
            return self.standing(i);
        };
        if *m == Message::Done {
            return Verdict::Continue;
        }
        let connection_wide = matches!(stage, Stage::Connect | Stage::Helo);
        match conn
            .ask(Some((stage, macros)), command, skip, no_reply)
            .await
        {
            Ok(r) => {
                let s = step(&r);
                if connection_wide && s != Step::Continue {
                    self.filters[i].state = State::Decided(s);
                    return self.standing(i);
                }
                self.decided(i, s)
            }
            Err(e) => self.failed(i, &e),
        }
    }

    /// Asks filter `i` about the content, unless it is done with this message.
    async fn ask_content(
        &mut self,
        i: usize,
        stage: Stage,
        command: Command<'_>,
        skip: u32,
        no_reply: u32,
    ) -> Verdict {
        match &self.filters[i].state {
            State::Open(_, Message::Listening | Message::SkipBody) => {
                self.ask(i, stage, &[], command, skip, no_reply).await
            }
            _ => Verdict::Continue,
        }
    }

    /// What filter `i`'s answer about the current message means.
    fn decided(&mut self, i: usize, s: Step) -> Verdict {
        let name = self.filters[i].config.address.to_string();
        let done = |f: &mut Filter| {
            if let State::Open(_, m) = &mut f.state {
                *m = Message::Done;
            }
        };
        match s {
            Step::Continue => Verdict::Continue,
            Step::Accept => {
                done(&mut self.filters[i]);
                Verdict::Continue
            }
            Step::Refuse(r) => {
                done(&mut self.filters[i]);
                Verdict::Refuse(r, name)
            }
            Step::Discard => {
                done(&mut self.filters[i]);
                Verdict::Discard(name)
            }
            Step::Broken(why) => self.failed(i, &Failure(why)),
        }
    }

    /// Filter `i` failed: logged once, its default action from now on.
    fn failed(&mut self, i: usize, e: &Failure) -> Verdict {
        let f = &mut self.filters[i];
        let action = match f.config.default_action {
            MilterAction::Tempfail => "tempfail",
            MilterAction::Accept => "accept",
            MilterAction::Reject => "reject",
        };
        warn!(
            "milter {}: {e}; default action {action} from now on for this connection",
            f.config.address
        );
        f.state = State::Failed;
        self.standing(i)
    }

    /// The verdict of a filter that decided for the whole connection, or failed.
    fn standing(&self, i: usize) -> Verdict {
        let f = &self.filters[i];
        let name = f.config.address.to_string();
        match &f.state {
            State::Decided(Step::Refuse(r)) => Verdict::Refuse(r.clone(), name),
            State::Decided(Step::Discard) => Verdict::Discard(name),
            State::Failed => match f.config.default_action {
                MilterAction::Accept => Verdict::Continue,
                MilterAction::Tempfail => Verdict::Refuse(replies::milter_tempfail(), name),
                MilterAction::Reject => Verdict::Refuse(replies::milter_reject(), name),
            },
            _ => Verdict::Continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps() {
        let table: Vec<(Response, Step)> = vec![
            (Response::Continue, Step::Continue),
            (Response::Accept, Step::Accept),
            (Response::Reject, Step::Refuse(replies::milter_reject())),
            (Response::Tempfail, Step::Refuse(replies::milter_tempfail())),
            (Response::Discard, Step::Discard),
            (
                Response::ReplyCode("554 5.7.1 Gtube pattern".into()),
                Step::Refuse(replies::milter_reply("554 5.7.1 Gtube pattern").unwrap()),
            ),
            (
                Response::ReplyCode("250 ok".into()),
                Step::Broken("unusable reply \"250 ok\"".into()),
            ),
            (
                Response::AddHeader("X".into(), "1".into()),
                Step::Broken("unexpected answer AddHeader(\"X\", \"1\")".into()),
            ),
        ];
        for (response, want) in table {
            assert_eq!(step(&response), want, "{response:?}");
        }
    }
}
