//! Command lines: parsing, pipelining synchronisation (RFC 2920), and the handlers of MAIL,
//! RCPT and STARTTLS; the other verbs are answered in `dispatch` itself.

use super::*;

impl Session {
    /// Handles one complete command line.
    pub(super) fn handle_line(&mut self, line: &[u8]) {
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
    pub(super) fn dispatch(&mut self, cmd: Command, line: &[u8]) {
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
            Command::Help(topic) => {
                let tls = self.is_tls();
                let starttls = self.config.starttls && !tls;
                let auth = self.config.auth_offered(tls);
                self.reply(replies::help(&topic, starttls, auth));
            }
            Command::StartTls => self.handle_starttls(),
            Command::Auth { mechanism, initial } => self.handle_auth_command(&mechanism, initial),
        }
    }

    pub(super) fn handle_mail(&mut self, from: ReversePath, params: MailParams) {
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

    pub(super) fn handle_rcpt(&mut self, to: Mailbox, params: RcptParams) {
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

    pub(super) fn handle_starttls(&mut self) {
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
    pub(super) fn check_sync(&mut self, must_be_last: bool) -> bool {
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
