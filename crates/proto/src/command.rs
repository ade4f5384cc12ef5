//! SMTP commands: parsing what a client sends (server half) and writing what a client sends
//! (client half, through `Display`).

use std::fmt;

use crate::address::{self, AddressError, Mailbox, ReversePath};
use crate::params::{MailParams, ParamError, RcptParams};

/// One command line, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `EHLO domain`.
    Ehlo(String),
    /// `HELO domain`.
    Helo(String),
    /// `MAIL FROM:<path> params`.
    Mail {
        /// The sender, `<>` for notifications.
        from: ReversePath,
        /// ESMTP parameters.
        params: MailParams,
    },
    /// `RCPT TO:<path> params`.
    Rcpt {
        /// The recipient (possibly the bare `<postmaster>`).
        to: Mailbox,
        /// ESMTP parameters.
        params: RcptParams,
    },
    /// `DATA`.
    Data,
    /// `BDAT size [LAST]` (RFC 3030); `size` octets of content follow the line.
    Bdat {
        /// Octets in this chunk.
        size: u64,
        /// True for the last chunk of the message.
        last: bool,
    },
    /// `RSET`.
    Rset,
    /// `NOOP [text]`.
    Noop,
    /// `QUIT`.
    Quit,
    /// `VRFY string`.
    Vrfy(String),
    /// `EXPN string`.
    Expn(String),
    /// `HELP [topic]`.
    Help(String),
    /// `STARTTLS` (RFC 3207).
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954).
    Auth {
        /// SASL mechanism name, upper case.
        mechanism: String,
        /// The initial response, base64 (or `=` for an empty one).
        initial: Option<String>,
    },
}

/// Why a command line could not be parsed. Each maps to one reply in [`crate::replies`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandError {
    /// The verb is not one we know.
    Unknown,
    /// A verb that web and proxy clients send (`GET`, `POST`, `CONNECT`, …): not a mail client.
    Forbidden,
    /// The line is not valid UTF-8 or holds control characters.
    BadEncoding,
    /// A known verb with bad syntax; the text is the usage to show (`MAIL FROM:<address>`).
    Syntax(&'static str),
    /// The address of MAIL FROM is not an address.
    BadSender(AddressError),
    /// The address of RCPT TO is not an address.
    BadRecipient(AddressError),
    /// A MAIL or RCPT parameter is wrong.
    Param(ParamError),
}

/// Verbs that are never SMTP and mark a web client or proxy probe (Postfix's
/// `smtpd_forbidden_commands`).
const FORBIDDEN: &[&str] = &["GET", "POST", "HEAD", "PUT", "CONNECT", "USER"];

impl Command {
    /// The verb of a command line, upper-cased, for logs and statistics.
    pub fn verb_of(line: &[u8]) -> String {
        let end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
        String::from_utf8_lossy(&line[..end.min(16)]).to_ascii_uppercase()
    }

    /// Parses one command line (without its CRLF).
    pub fn parse(line: &[u8]) -> Result<Command, CommandError> {
        let line = std::str::from_utf8(line).map_err(|_| CommandError::BadEncoding)?;
        if line.chars().any(|c| c.is_control() && c != '\t') {
            return Err(CommandError::BadEncoding);
        }
        let line = line.trim_end_matches([' ', '\t']);
        let (verb, arg) = match line.find([' ', '\t']) {
            Some(i) => (&line[..i], line[i + 1..].trim_start_matches([' ', '\t'])),
            None => (line, ""),
        };
        let verb = verb.to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" | "HELO" => {
                if arg.is_empty() {
                    return Err(CommandError::Syntax(if verb == "EHLO" {
                        "EHLO hostname"
                    } else {
                        "HELO hostname"
                    }));
                }
                let name = arg.to_string();
                Ok(if verb == "EHLO" {
                    Command::Ehlo(name)
                } else {
                    Command::Helo(name)
                })
            }
            "MAIL" => {
                let rest = strip_keyword(arg, "FROM:")
                    .ok_or(CommandError::Syntax("MAIL FROM:<address>"))?;
                let (path, params) = address::split_path(rest).map_err(|e| match e {
                    AddressError::Empty => CommandError::Syntax("MAIL FROM:<address>"),
                    e => CommandError::BadSender(e),
                })?;
                let from = address::parse_reverse_path(path).map_err(CommandError::BadSender)?;
                let params = MailParams::parse(params).map_err(CommandError::Param)?;
                Ok(Command::Mail { from, params })
            }
            "RCPT" => {
                let rest =
                    strip_keyword(arg, "TO:").ok_or(CommandError::Syntax("RCPT TO:<address>"))?;
                let (path, params) = address::split_path(rest).map_err(|e| match e {
                    AddressError::Empty => CommandError::Syntax("RCPT TO:<address>"),
                    e => CommandError::BadRecipient(e),
                })?;
                let to = address::parse_forward_path(path).map_err(CommandError::BadRecipient)?;
                let params = RcptParams::parse(params).map_err(CommandError::Param)?;
                Ok(Command::Rcpt { to, params })
            }
            "DATA" => no_arg(arg, Command::Data, "DATA"),
            "RSET" => no_arg(arg, Command::Rset, "RSET"),
            "QUIT" => no_arg(arg, Command::Quit, "QUIT"),
            "STARTTLS" => no_arg(arg, Command::StartTls, "STARTTLS"),
            "NOOP" => Ok(Command::Noop),
            "HELP" => Ok(Command::Help(arg.to_string())),
            "VRFY" | "EXPN" => {
                if arg.is_empty() {
                    return Err(CommandError::Syntax(if verb == "VRFY" {
                        "VRFY address"
                    } else {
                        "EXPN address"
                    }));
                }
                Ok(if verb == "VRFY" {
                    Command::Vrfy(arg.to_string())
                } else {
                    Command::Expn(arg.to_string())
                })
            }
            "BDAT" => {
                let usage = CommandError::Syntax("BDAT count [LAST]");
                let mut words = arg.split(' ').filter(|w| !w.is_empty());
                let size = words.next().ok_or(usage.clone())?;
                if size.is_empty() || size.len() > 19 || !size.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(usage);
                }
                let size: u64 = size.parse().map_err(|_| usage.clone())?;
                let last = match words.next() {
                    None => false,
                    Some(w) if w.eq_ignore_ascii_case("LAST") => true,
                    Some(_) => return Err(usage),
                };
                if words.next().is_some() {
                    return Err(usage);
                }
                Ok(Command::Bdat { size, last })
            }
            "AUTH" => {
                let mut words = arg.split(' ').filter(|w| !w.is_empty());
                let mechanism = words
                    .next()
                    .ok_or(CommandError::Syntax("AUTH mechanism"))?
                    .to_ascii_uppercase();
                let initial = words.next().map(str::to_string);
                if words.next().is_some() {
                    return Err(CommandError::Syntax("AUTH mechanism"));
                }
                Ok(Command::Auth { mechanism, initial })
            }
            v if FORBIDDEN.contains(&v) => Err(CommandError::Forbidden),
            _ => Err(CommandError::Unknown),
        }
    }

    /// The verb, upper case.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Ehlo(_) => "EHLO",
            Command::Helo(_) => "HELO",
            Command::Mail { .. } => "MAIL",
            Command::Rcpt { .. } => "RCPT",
            Command::Data => "DATA",
            Command::Bdat { .. } => "BDAT",
            Command::Rset => "RSET",
            Command::Noop => "NOOP",
            Command::Quit => "QUIT",
            Command::Vrfy(_) => "VRFY",
            Command::Expn(_) => "EXPN",
            Command::Help(_) => "HELP",
            Command::StartTls => "STARTTLS",
            Command::Auth { .. } => "AUTH",
        }
    }
}

/// Strips `FROM:` / `TO:` (any case; Postfix also allows spaces before the colon's argument).
fn strip_keyword<'a>(arg: &'a str, kw: &str) -> Option<&'a str> {
    let head = arg.get(..kw.len())?;
    if head.eq_ignore_ascii_case(kw) {
        Some(&arg[kw.len()..])
    } else {
        None
    }
}

fn no_arg(arg: &str, cmd: Command, verb: &'static str) -> Result<Command, CommandError> {
    if arg.is_empty() {
        Ok(cmd)
    } else {
        Err(CommandError::Syntax(verb))
    }
}

impl fmt::Display for Command {
    /// The command line as a client sends it, without CRLF.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Ehlo(d) => write!(f, "EHLO {d}"),
            Command::Helo(d) => write!(f, "HELO {d}"),
            Command::Mail { from, params } => write!(f, "MAIL FROM:<{from}>{params}"),
            Command::Rcpt { to, params } => write!(f, "RCPT TO:<{to}>{params}"),
            Command::Data => f.write_str("DATA"),
            Command::Bdat { size, last } => {
                write!(f, "BDAT {size}{}", if *last { " LAST" } else { "" })
            }
            Command::Rset => f.write_str("RSET"),
            Command::Noop => f.write_str("NOOP"),
            Command::Quit => f.write_str("QUIT"),
            Command::Vrfy(s) => write!(f, "VRFY {s}"),
            Command::Expn(s) => write!(f, "EXPN {s}"),
            Command::Help(s) if s.is_empty() => f.write_str("HELP"),
            Command::Help(s) => write!(f, "HELP {s}"),
            Command::StartTls => f.write_str("STARTTLS"),
            Command::Auth {
                mechanism,
                initial: None,
            } => write!(f, "AUTH {mechanism}"),
            Command::Auth {
                mechanism,
                initial: Some(i),
            } => write!(f, "AUTH {mechanism} {i}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Notify;

    fn parse(s: &str) -> Result<Command, CommandError> {
        Command::parse(s.as_bytes())
    }

    #[test]
    fn parses_the_seed_dialogues() {
        assert_eq!(parse("helo x"), Ok(Command::Helo("x".into())));
        assert_eq!(parse("EHLO test.com"), Ok(Command::Ehlo("test.com".into())));
        match parse("MAIL FROM:Admin@test.com").unwrap() {
            Command::Mail { from, .. } => assert_eq!(from.to_string(), "Admin@test.com"),
            c => panic!("{c:?}"),
        }
        match parse("RCPT TO: Utilisateur@Domaine.Com").unwrap() {
            Command::Rcpt { to, .. } => assert_eq!(to.to_string(), "Utilisateur@Domaine.Com"),
            c => panic!("{c:?}"),
        }
        match parse("RCPT TO:Utilisateur@Site.Domaine.Com notify=success,failure").unwrap() {
            Command::Rcpt { params, .. } => {
                assert_eq!(
                    params.notify,
                    Some(Notify {
                        success: true,
                        failure: true,
                        delay: false
                    })
                )
            }
            c => panic!("{c:?}"),
        }
        assert_eq!(parse("data"), Ok(Command::Data));
        assert_eq!(parse("quit"), Ok(Command::Quit));
    }

    #[test]
    fn command_table() {
        let ok: &[(&str, &str)] = &[
            ("MAIL FROM:<>", "MAIL FROM:<>"),
            ("mail from:<a@b.c> size=10", "MAIL FROM:<a@b.c> SIZE=10"),
            ("MAIL FROM: <a@b.c>", "MAIL FROM:<a@b.c>"),
            ("RCPT TO:<postmaster>", "RCPT TO:<postmaster>"),
            ("RCPT TO:<@relay.example:u@x.y>", "RCPT TO:<u@x.y>"),
            ("BDAT 100", "BDAT 100"),
            ("bdat 0 last", "BDAT 0 LAST"),
            ("NOOP anything here", "NOOP"),
            ("HELP", "HELP"),
            ("HELP mail", "HELP mail"),
            ("VRFY user", "VRFY user"),
            ("AUTH plain AGZvbwBiYXI=", "AUTH PLAIN AGZvbwBiYXI="),
            ("AUTH LOGIN", "AUTH LOGIN"),
            ("STARTTLS", "STARTTLS"),
            ("RSET  ", "RSET"),
            ("EHLO [192.0.2.1]", "EHLO [192.0.2.1]"),
        ];
        for (input, shown) in ok {
            let c = parse(input).unwrap_or_else(|e| panic!("{input}: {e:?}"));
            assert_eq!(c.to_string(), *shown, "{input}");
        }
        let bad: &[(&str, CommandError)] = &[
            ("", CommandError::Unknown),
            ("FOO", CommandError::Unknown),
            ("MAILFROM:<a@b.c>", CommandError::Unknown),
            ("GET / HTTP/1.0", CommandError::Forbidden),
            ("EHLO", CommandError::Syntax("EHLO hostname")),
            ("HELO", CommandError::Syntax("HELO hostname")),
            (
                "MAIL TO:<a@b.c>",
                CommandError::Syntax("MAIL FROM:<address>"),
            ),
            ("MAIL FROM:", CommandError::Syntax("MAIL FROM:<address>")),
            (
                "MAIL FROM:<a@b.c.>",
                CommandError::BadSender(AddressError::Syntax),
            ),
            (
                "RCPT TO:<a@b@c>",
                CommandError::BadRecipient(AddressError::Syntax),
            ),
            ("RCPT TO:", CommandError::Syntax("RCPT TO:<address>")),
            (
                "RCPT FROM:<a@b.c>",
                CommandError::Syntax("RCPT TO:<address>"),
            ),
            ("DATA now", CommandError::Syntax("DATA")),
            ("BDAT", CommandError::Syntax("BDAT count [LAST]")),
            ("BDAT x", CommandError::Syntax("BDAT count [LAST]")),
            ("BDAT 10 FIRST", CommandError::Syntax("BDAT count [LAST]")),
            ("BDAT -1", CommandError::Syntax("BDAT count [LAST]")),
            ("VRFY", CommandError::Syntax("VRFY address")),
            (
                "MAIL FROM:<a@b.c> FOO=1",
                CommandError::Param(ParamError::Unsupported("FOO".into())),
            ),
        ];
        for (input, err) in bad {
            assert_eq!(parse(input).as_ref(), Err(err), "{input}");
        }
        assert_eq!(Command::parse(b"HELO \xff"), Err(CommandError::BadEncoding));
        assert_eq!(Command::parse(b"HELO a\0b"), Err(CommandError::BadEncoding));
    }
}
