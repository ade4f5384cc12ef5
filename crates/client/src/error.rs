//! What can go wrong, and at which step of the dialogue.
//!
//! The variants keep apart what a diagnosis must keep apart: a name that does not resolve, a port
//! that refuses (nothing listens, or a firewall rejects), a connection attempt that times out (a
//! firewall drops the packets), a server that closes or resets the connection, a TLS failure, a
//! reply that is not SMTP, and a well-formed reply that refuses the step.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use relais_proto::{Reply, ReplyError};

/// A step of the SMTP dialogue. Errors and timeouts name the one they happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stage {
    /// Looking up the server's addresses.
    Resolve,
    /// Opening the TCP connection.
    Connect,
    /// Waiting for the `220` greeting.
    Banner,
    /// `EHLO`.
    Ehlo,
    /// `HELO`.
    Helo,
    /// `STARTTLS` and its `220`.
    StartTls,
    /// The TLS handshake (after STARTTLS, or at once on an implicit-TLS port).
    TlsHandshake,
    /// `AUTH` and its challenges.
    Auth,
    /// `MAIL FROM`.
    Mail,
    /// `RCPT TO`.
    Rcpt,
    /// `DATA` and its `354`.
    Data,
    /// The message content and the reply after the final `.` (or after `BDAT … LAST`).
    Message,
    /// A `BDAT` chunk that is not the last.
    Bdat,
    /// `RSET`.
    Rset,
    /// `QUIT`.
    Quit,
    /// Any other command (`NOOP`, `VRFY`, `HELP`, a raw line).
    Command,
}

impl Stage {
    /// A short lower-case name (`banner`, `rcpt`, …), stable for JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Resolve => "resolve",
            Stage::Connect => "connect",
            Stage::Banner => "banner",
            Stage::Ehlo => "ehlo",
            Stage::Helo => "helo",
            Stage::StartTls => "starttls",
            Stage::TlsHandshake => "tls-handshake",
            Stage::Auth => "auth",
            Stage::Mail => "mail",
            Stage::Rcpt => "rcpt",
            Stage::Data => "data",
            Stage::Message => "message",
            Stage::Bdat => "bdat",
            Stage::Rset => "rset",
            Stage::Quit => "quit",
            Stage::Command => "command",
        }
    }

    /// The stage a command line belongs to, from its verb.
    pub fn of_line(line: &str) -> Stage {
        let verb = line.split([' ', ':']).next().unwrap_or("");
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => Stage::Ehlo,
            "HELO" => Stage::Helo,
            "STARTTLS" => Stage::StartTls,
            "AUTH" => Stage::Auth,
            "MAIL" => Stage::Mail,
            "RCPT" => Stage::Rcpt,
            "DATA" => Stage::Data,
            "BDAT" => Stage::Bdat,
            "RSET" => Stage::Rset,
            "QUIT" => Stage::Quit,
            _ => Stage::Command,
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Resolve => "name lookup",
            Stage::Connect => "connect",
            Stage::Banner => "banner",
            Stage::Ehlo => "EHLO",
            Stage::Helo => "HELO",
            Stage::StartTls => "STARTTLS",
            Stage::TlsHandshake => "TLS handshake",
            Stage::Auth => "AUTH",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::Message => "end of message",
            Stage::Bdat => "BDAT",
            Stage::Rset => "RSET",
            Stage::Quit => "QUIT",
            Stage::Command => "command",
        })
    }
}

/// Why a step of the dialogue failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The host name has no address (or the resolver failed): "host not found".
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// The name that was looked up.
        host: String,
        /// What the resolver said.
        reason: String,
    },
    /// The connection was actively refused: nothing listens on the port, or a firewall rejects.
    #[error("connection to {addr} refused")]
    Refused {
        /// The address tried.
        addr: SocketAddr,
    },
    /// The host or its network cannot be reached (no route).
    #[error("{addr} unreachable: {reason}")]
    Unreachable {
        /// The address tried.
        addr: SocketAddr,
        /// What the system said.
        reason: String,
    },
    /// Nothing came back in time. At [`Stage::Connect`] this usually means a firewall drops the
    /// packets (the port is filtered); later, a server that stalls.
    #[error("timed out after {}s during {stage}", after.as_secs_f64())]
    TimedOut {
        /// Where it happened.
        stage: Stage,
        /// How long we waited.
        after: Duration,
    },
    /// The server closed the connection cleanly where a reply was due.
    #[error("connection closed by the server during {stage}")]
    Closed {
        /// Where it happened.
        stage: Stage,
    },
    /// The connection was reset (or the pipe broke) by the peer.
    #[error("connection reset during {stage}")]
    Reset {
        /// Where it happened.
        stage: Stage,
    },
    /// TLS failed: handshake error, or a certificate refused when the policy enforces checks.
    #[error("TLS error during {stage}: {message}")]
    Tls {
        /// Where it happened.
        stage: Stage,
        /// What went wrong, in rustls' words.
        message: String,
    },
    /// The server sent something that is not an SMTP reply.
    #[error("bad reply during {stage}: {error}")]
    Protocol {
        /// Where it happened.
        stage: Stage,
        /// What was wrong with it.
        error: ReplyError,
    },
    /// A well-formed reply that refuses the step (or that the step does not expect).
    #[error("{stage} refused: {reply}")]
    UnexpectedReply {
        /// Where it happened.
        stage: Stage,
        /// The server's reply.
        reply: Reply,
    },
    /// The message content could not be read (from the spool, say): the connection was closed
    /// before its end, so the server did not take a cut message.
    #[error("cannot read the message content: {source}")]
    Content {
        /// What reading said.
        #[source]
        source: std::io::Error,
    },
    /// Any other I/O error.
    #[error("I/O error during {stage}: {source}")]
    Io {
        /// Where it happened.
        stage: Stage,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl ClientError {
    /// The stage the error happened in.
    pub fn stage(&self) -> Stage {
        match self {
            ClientError::Resolve { .. } => Stage::Resolve,
            ClientError::Refused { .. } | ClientError::Unreachable { .. } => Stage::Connect,
            ClientError::Content { .. } => Stage::Message,
            ClientError::TimedOut { stage, .. }
            | ClientError::Closed { stage }
            | ClientError::Reset { stage }
            | ClientError::Tls { stage, .. }
            | ClientError::Protocol { stage, .. }
            | ClientError::UnexpectedReply { stage, .. }
            | ClientError::Io { stage, .. } => *stage,
        }
    }

    /// The server's reply, when the error is a refusal.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            ClientError::UnexpectedReply { reply, .. } => Some(reply),
            _ => None,
        }
    }

    /// True when the connection can still be used (the server answered, and answered SMTP).
    pub fn connection_usable(&self) -> bool {
        matches!(self, ClientError::UnexpectedReply { .. })
    }

    /// Classifies an I/O error from a socket at `stage`.
    pub(crate) fn from_io(stage: Stage, e: std::io::Error) -> ClientError {
        use std::io::ErrorKind;
        if let Some(tls) = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return ClientError::Tls {
                stage,
                message: tls.to_string(),
            };
        }
        match e.kind() {
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
                ClientError::Reset { stage }
            }
            ErrorKind::UnexpectedEof => ClientError::Closed { stage },
            ErrorKind::TimedOut => ClientError::TimedOut {
                stage,
                after: Duration::ZERO,
            },
            _ => ClientError::Io { stage, source: e },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_of_a_line() {
        let cases = [
            ("EHLO x", Stage::Ehlo),
            ("mail from:<a@b>", Stage::Mail),
            ("MAIL FROM:<a@b>", Stage::Mail),
            ("RCPT TO:<a@b>", Stage::Rcpt),
            ("data", Stage::Data),
            ("BDAT 10 LAST", Stage::Bdat),
            ("AUTH PLAIN AAAA", Stage::Auth),
            ("NOOP", Stage::Command),
            ("", Stage::Command),
        ];
        for (line, stage) in cases {
            assert_eq!(Stage::of_line(line), stage, "{line}");
        }
    }

    #[test]
    fn io_errors_are_classified() {
        use std::io::{Error, ErrorKind};
        let e = ClientError::from_io(Stage::Rcpt, Error::from(ErrorKind::ConnectionReset));
        assert!(matches!(e, ClientError::Reset { stage: Stage::Rcpt }));
        let e = ClientError::from_io(Stage::Banner, Error::from(ErrorKind::UnexpectedEof));
        assert!(matches!(
            e,
            ClientError::Closed {
                stage: Stage::Banner
            }
        ));
        let e = ClientError::from_io(
            Stage::TlsHandshake,
            Error::new(ErrorKind::InvalidData, rustls::Error::DecryptError),
        );
        assert!(matches!(e, ClientError::Tls { .. }), "{e:?}");
        assert_eq!(e.stage(), Stage::TlsHandshake);
    }
}
