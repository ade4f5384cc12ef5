//! SMTP AUTH (RFC 4954): the AUTH command, PLAIN and LOGIN exchanges, the answer from the
//! driver.

use super::*;

impl Session {
    /// Reads one SASL response line; false if none is complete.
    pub(super) fn process_sasl(&mut self) -> bool {
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

    pub(super) fn handle_sasl_line(&mut self, step: Sasl, line: &[u8]) {
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
    pub(super) fn finish_plain(&mut self, decoded: &[u8]) {
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

    pub(super) fn ask_auth(
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

    pub(super) fn handle_auth_command(&mut self, mechanism: &str, initial: Option<String>) {
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
}

/// Decodes a SASL response; `=` is the empty response (RFC 4954).
fn decode_b64(line: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine;
    if line == b"=" {
        return Some(Vec::new());
    }
    base64::engine::general_purpose::STANDARD.decode(line).ok()
}
