//! The engine behind `relais shell host [port]`: the seeds' `telnet host 25`, forgiving.
//!
//! Replies are shown as they arrive and what is sent is always echoed, marked as in
//! `relais send` (` ->` sent, `<-` received, `~` under TLS, `===` notes, `***` errors). Helpers
//! do the fiddly parts: `:auth login USER` does the base64 exchange, showing both forms;
//! `:data FILE` dot-stuffs a file and ends it with `.`; `:b64` and `:unb64` convert.
//!
//! Lines come in as [`Input`]s over a channel, so the session task ([`Shell::run`]) waits on
//! both the channel and the socket and replies show up even while nothing is typed. Whoever
//! reads the lines ([`parse`]s them and) sends them: the binary's terminal (line editing,
//! password prompts), or [`read_script`], which reads a script one line at a time; the session
//! then waits for the server's reply to each line before the next (no wait for lines of message
//! content between a `354` and the final `.`), so a script runs the same way every time.

mod session;

use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;

use relais_client::TlsPolicy;
use tokio::sync::mpsc;

pub use session::{Shell, StartError};

use crate::Mechanism;

/// The helpers, for `:help` and `--help`.
pub const HELP: &str = "\
Type SMTP commands as in telnet (EHLO, MAIL FROM:<a@b>, RCPT TO:<c@d>, DATA, …, QUIT).
Helpers:
  :auth login USER [PASSWORD]  AUTH LOGIN, base64 done for you (password asked for if missing)
  :auth plain USER [PASSWORD]  AUTH PLAIN, the same
  :auth cram-md5 USER [PASS]   AUTH CRAM-MD5 (RFC 2195): the challenge shown, the digest sent
  :starttls                    STARTTLS and the TLS handshake (send EHLO again after it)
  :data FILE                   DATA (unless already in it), FILE dot-stuffed, then '.'
  :b64 TEXT                    show TEXT in base64 (\\0 stands for a NUL byte)
  :unb64 TEXT                  decode base64 TEXT
  :help                        this list
  :quit                        QUIT and leave (Ctrl-D leaves too)
When standard input is not a terminal, lines are read from it and each waits for its reply.
Exit codes: 0 the session ran; 1 bad options; 2 no connection (not found, refused, timed out, TLS).";

/// Exit codes of `relais shell`.
pub mod exit {
    /// The session ended (whatever the server said).
    pub const OK: u8 = 0;
    /// The options do not make sense.
    pub const USAGE: u8 = 1;
    /// No connection could be made (host not found, refused, timed out, TLS failed).
    pub const CONNECT: u8 = 2;
}

/// Where to connect, and how.
#[derive(Debug, Clone)]
pub struct ShellOptions {
    /// The server's name or address (also the TLS server name).
    pub host: String,
    /// Its port.
    pub port: u16,
    /// TLS from the first byte (SMTPS).
    pub tls_on_connect: bool,
    /// How to judge the certificate.
    pub tls_policy: TlsPolicy,
    /// The wait for the connection and, for a script, for each reply.
    pub timeout: Duration,
}

/// One thing to do, from a typed or scripted line.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    /// A line to send as is.
    Line(String),
    /// `:auth …`.
    Auth {
        /// PLAIN or LOGIN.
        mechanism: Mechanism,
        /// The user name.
        user: String,
        /// The password (never shown decoded).
        password: String,
    },
    /// `:starttls`.
    StartTls,
    /// `:data FILE`.
    Data(PathBuf),
    /// `:b64 TEXT`.
    B64(String),
    /// `:unb64 TEXT`.
    Unb64(String),
    /// `:help`.
    Help,
    /// `:quit`.
    Quit,
    /// A helper typed wrong: the message to show.
    Bad(String),
    /// End of input.
    Eof,
}

/// What [`parse`] makes of a line: an input, or a helper that still needs a password.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Ready to hand over.
    Ready(Input),
    /// `:auth MECH USER` without a password: ask for it, then make an [`Input::Auth`].
    NeedsPassword {
        /// PLAIN or LOGIN.
        mechanism: Mechanism,
        /// The user name.
        user: String,
    },
}

/// The sending end of the session's input channel.
pub type InputSender = mpsc::Sender<Input>;

/// The channel the input side hands [`Input`]s to [`Shell::run`] over.
pub fn channel() -> (InputSender, mpsc::Receiver<Input>) {
    mpsc::channel(1)
}

/// Reads one line: a raw SMTP line, or a `:helper`.
pub fn parse(line: &str) -> Parsed {
    let Some(helper) = line.strip_prefix(':') else {
        return Parsed::Ready(Input::Line(line.to_string()));
    };
    let (name, rest) = match helper.split_once(' ') {
        Some((n, r)) => (n, r.trim_start()),
        None => (helper, ""),
    };
    let input = match name.to_ascii_lowercase().as_str() {
        "auth" => return parse_auth(rest),
        "starttls" => Input::StartTls,
        "data" if !rest.is_empty() => Input::Data(PathBuf::from(rest)),
        "data" => Input::Bad(":data FILE".into()),
        "b64" => Input::B64(rest.to_string()),
        "unb64" => Input::Unb64(rest.to_string()),
        "help" | "h" | "?" => Input::Help,
        "quit" | "q" | "exit" => Input::Quit,
        other => Input::Bad(format!(":{other} is no helper; :help lists them")),
    };
    Parsed::Ready(input)
}

/// `:auth login|plain|cram-md5 USER [PASSWORD]`.
fn parse_auth(rest: &str) -> Parsed {
    let bad = || {
        Parsed::Ready(Input::Bad(
            ":auth login|plain|cram-md5 USER [PASSWORD]".into(),
        ))
    };
    let words: Vec<&str> = rest.split_whitespace().collect();
    let mechanism = match words.first().map(|w| w.to_ascii_lowercase()).as_deref() {
        Some("login") => Mechanism::Login,
        Some("plain") => Mechanism::Plain,
        Some("cram-md5") => Mechanism::CramMd5,
        _ => return bad(),
    };
    match words.as_slice() {
        [_, user] => Parsed::NeedsPassword {
            mechanism,
            user: user.to_string(),
        },
        [_, user, password] => Parsed::Ready(Input::Auth {
            mechanism,
            user: user.to_string(),
            password: password.to_string(),
        }),
        _ => bad(),
    }
}

/// The input side of a script: one line at a time from `input`; a password a helper needs is
/// the next line. Ends with [`Input::Eof`] (or after [`Input::Quit`]).
pub fn read_script(input: impl BufRead, tx: InputSender) {
    let mut lines = input.lines();
    let mut next = || match lines.next() {
        Some(Ok(l)) => Some(l.trim_end_matches('\r').to_string()),
        _ => None,
    };
    while let Some(line) = next() {
        let input = match parse(&line) {
            Parsed::Ready(i) => i,
            Parsed::NeedsPassword { mechanism, user } => match next() {
                Some(password) => Input::Auth {
                    mechanism,
                    user,
                    password,
                },
                None => Input::Bad(format!("no password for {user} on standard input")),
            },
        };
        let last = input == Input::Quit;
        if tx.blocking_send(input).is_err() || last {
            return;
        }
    }
    let _ = tx.blocking_send(Input::Eof);
}

/// `\0` → NUL, `\\` → `\`, for `:b64`.
fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'\\' {
            match bytes.next() {
                Some(b'0') => out.push(0),
                Some(b'\\') => out.push(b'\\'),
                Some(other) => out.extend_from_slice(&[b'\\', other]),
                None => out.push(b'\\'),
            }
        } else {
            out.push(b);
        }
    }
    out
}

/// Decoded bytes shown as text, NUL as `\0`.
fn show_decoded(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).replace('\0', "\\0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_parse() {
        let ready = |l: &str| match parse(l) {
            Parsed::Ready(i) => i,
            p => panic!("{l}: {p:?}"),
        };
        assert_eq!(ready("EHLO x"), Input::Line("EHLO x".into()));
        assert_eq!(ready(""), Input::Line(String::new()));
        assert_eq!(ready(":b64 \\0u\\0p"), Input::B64("\\0u\\0p".into()));
        assert_eq!(ready(":unb64 dXNlcg=="), Input::Unb64("dXNlcg==".into()));
        assert_eq!(ready(":starttls"), Input::StartTls);
        assert_eq!(ready(":data /tmp/m.eml"), Input::Data("/tmp/m.eml".into()));
        assert_eq!(ready(":quit"), Input::Quit);
        assert_eq!(ready(":help"), Input::Help);
        assert!(matches!(ready(":data"), Input::Bad(_)));
        assert!(matches!(ready(":auth digest-md5 u"), Input::Bad(_)));
        assert!(matches!(
            parse(":auth CRAM-MD5 u"),
            Parsed::NeedsPassword {
                mechanism: Mechanism::CramMd5,
                ..
            }
        ));
        assert!(matches!(ready(":nope"), Input::Bad(_)));
        assert_eq!(
            ready(":auth LOGIN alice secret"),
            Input::Auth {
                mechanism: Mechanism::Login,
                user: "alice".into(),
                password: "secret".into()
            }
        );
        assert_eq!(
            parse(":auth plain alice"),
            Parsed::NeedsPassword {
                mechanism: Mechanism::Plain,
                user: "alice".into()
            }
        );
    }

    #[test]
    fn b64_escapes() {
        assert_eq!(unescape("\\0u\\0p"), b"\0u\0p");
        assert_eq!(unescape("a\\\\b\\n"), b"a\\b\\n");
        assert_eq!(show_decoded(b"\0u\0p"), "\\0u\\0p");
    }

    /// What `read_script` hands over for a script.
    fn script(text: &str) -> Vec<Input> {
        let (tx, mut rx) = channel();
        let text = text.to_string();
        let reader = std::thread::spawn(move || read_script(text.as_bytes(), tx));
        let mut got = Vec::new();
        while let Some(input) = rx.blocking_recv() {
            got.push(input);
        }
        reader.join().unwrap();
        got
    }

    #[test]
    fn scripts() {
        let auth = |password: &str| Input::Auth {
            mechanism: Mechanism::Login,
            user: "alice".into(),
            password: password.into(),
        };
        // (script, inputs handed over)
        let table: Vec<(&str, Vec<Input>)> = vec![
            ("EHLO x\r\n", vec![Input::Line("EHLO x".into()), Input::Eof]),
            (
                ":auth login alice\nsecret\n",
                vec![auth("secret"), Input::Eof],
            ),
            (
                ":auth login alice",
                vec![
                    Input::Bad("no password for alice on standard input".into()),
                    Input::Eof,
                ],
            ),
            (
                "NOOP\n:quit\nNOT SENT\n",
                vec![Input::Line("NOOP".into()), Input::Quit],
            ),
            ("", vec![Input::Eof]),
        ];
        for (text, want) in table {
            assert_eq!(script(text), want, "{text:?}");
        }
    }
}
