//! One connection to one filter: connect, agree on the protocol, ask and read answers within
//! the configured times. The steps a filter asked to skip are not sent, and the ones it said
//! it does not answer are not waited for.

use std::time::Duration;

use relais_config::{LmtpTarget, MilterConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use super::codec::{self, Command, Response, Stage, actions, steps};

/// Why a filter could not be asked: what the log line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The socket to a filter.
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf).await,
            Stream::Unix(s) => s.read(buf).await,
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.write_all(bytes).await,
            Stream::Unix(s) => s.write_all(bytes).await,
        }
    }
}

/// An open, negotiated connection to a filter.
pub struct Conn {
    stream: Stream,
    /// Octets read and not yet decoded.
    input: Vec<u8>,
    /// Packets being written.
    output: Vec<u8>,
    /// The `SMFIP_*` steps the filter asked for.
    pub steps: u32,
    /// The `SMFIF_*` actions it may use.
    pub actions: u32,
    /// How long to wait for an answer about the envelope and headers.
    command_timeout: Duration,
    /// How long to wait for an answer about the body.
    content_timeout: Duration,
}

impl Conn {
    /// Connects and agrees on the protocol within `connect_timeout`.
    pub async fn open(config: &MilterConfig) -> Result<Conn, Failure> {
        let limit = config.connect_timeout;
        let open = async {
            let stream = match &config.address {
                LmtpTarget::Tcp(addr) => TcpStream::connect(addr).await.map(|s| {
                    let _ = s.set_nodelay(true);
                    Stream::Tcp(s)
                }),
                LmtpTarget::Unix(path) => UnixStream::connect(path).await.map(Stream::Unix),
            }
            .map_err(|e| Failure(format!("cannot connect: {e}")))?;
            let mut conn = Conn {
                stream,
                input: Vec::new(),
                output: Vec::new(),
                steps: 0,
                actions: 0,
                command_timeout: config.command_timeout,
                content_timeout: config.content_timeout,
            };
            conn.negotiate().await?;
            Ok(conn)
        };
        tokio::time::timeout(limit, open)
            .await
            .unwrap_or_else(|_| Err(Failure(format!("no answer within {}s", limit.as_secs()))))
    }

    async fn negotiate(&mut self) -> Result<(), Failure> {
        Command::Negotiate {
            version: codec::VERSION,
            actions: actions::OFFERED,
            steps: steps::OFFERED,
        }
        .encode(&mut self.output);
        self.flush().await?;
        match self.read_one().await? {
            Response::Negotiate {
                version,
                actions: wanted,
                steps: asked,
            } => {
                if !(2..=codec::VERSION).contains(&version) {
                    return Err(Failure(format!("speaks milter protocol version {version}")));
                }
                // What it wants beyond what we offer it cannot use: a change of that kind
                // later is a protocol error.
                self.actions = wanted & actions::OFFERED;
                self.steps = asked & steps::OFFERED;
                Ok(())
            }
            other => Err(Failure(format!("answered {other:?} to the negotiation"))),
        }
    }

    /// True when the filter asked for this step flag.
    pub fn asked(&self, flag: u32) -> bool {
        self.steps & flag != 0
    }

    /// Sends `command` (after `macros`) unless the filter skips it (`skip`), and reads the
    /// answer unless it does not give one (`no_reply`): `Continue` in both cases.
    pub async fn ask(
        &mut self,
        macros: Option<(Stage, &[(&str, String)])>,
        command: Command<'_>,
        skip: u32,
        no_reply: u32,
    ) -> Result<Response, Failure> {
        if self.asked(skip) {
            return Ok(Response::Continue);
        }
        if let Some((stage, pairs)) = macros
            && !pairs.is_empty()
        {
            Command::Macros(stage, pairs).encode(&mut self.output);
        }
        let body = matches!(command, Command::Body(_));
        command.encode(&mut self.output);
        self.flush().await?;
        if self.asked(no_reply) {
            return Ok(Response::Continue);
        }
        let limit = if body {
            self.content_timeout
        } else {
            self.command_timeout
        };
        self.answer(limit).await
    }

    /// Sends the end of the message and reads the changes that come before the final
    /// answer: (answer, changes).
    pub async fn end_of_message(
        &mut self,
        macros: &[(&str, String)],
    ) -> Result<(Response, Vec<Response>), Failure> {
        if !macros.is_empty() {
            Command::Macros(Stage::EndOfMessage, macros).encode(&mut self.output);
        }
        Command::EndOfMessage.encode(&mut self.output);
        self.flush().await?;
        let mut changes = Vec::new();
        loop {
            match self.answer(self.content_timeout).await? {
                r @ (Response::AddHeader(..)
                | Response::InsertHeader(..)
                | Response::ChangeHeader(..)
                | Response::ReplaceBody(_)
                | Response::Quarantine(_)) => {
                    self.check_allowed(&r)?;
                    changes.push(r);
                }
                Response::Other(code) => {
                    return Err(Failure(format!(
                        "sent a change ({:?}) that was not offered",
                        char::from(code)
                    )));
                }
                r => return Ok((r, changes)),
            }
        }
    }

    /// Refuses a change the filter did not ask to make at negotiation.
    fn check_allowed(&self, r: &Response) -> Result<(), Failure> {
        let needed = match r {
            Response::AddHeader(..) => actions::ADD_HEADERS,
            Response::InsertHeader(..) | Response::ChangeHeader(..) => actions::CHANGE_HEADERS,
            Response::ReplaceBody(_) => actions::CHANGE_BODY,
            Response::Quarantine(_) => actions::QUARANTINE,
            _ => 0,
        };
        if self.actions & needed == 0 {
            return Err(Failure(format!(
                "sent {r:?} without asking for it at negotiation"
            )));
        }
        Ok(())
    }

    /// Sends a command that gets no answer (`SMFIC_ABORT`, `SMFIC_QUIT`).
    pub async fn tell(&mut self, command: Command<'_>) -> Result<(), Failure> {
        command.encode(&mut self.output);
        self.flush().await
    }

    async fn flush(&mut self) -> Result<(), Failure> {
        let out = std::mem::take(&mut self.output);
        let written = tokio::time::timeout(self.command_timeout, self.stream.write_all(&out)).await;
        self.output = out;
        self.output.clear();
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Failure(format!("write error: {e}"))),
            Err(_) => Err(Failure("write timed out".into())),
        }
    }

    /// The next answer that is not `SMFIR_PROGRESS`, each within `limit`.
    async fn answer(&mut self, limit: Duration) -> Result<Response, Failure> {
        loop {
            let r = tokio::time::timeout(limit, self.read_one())
                .await
                .map_err(|_| Failure(format!("no answer within {}s", limit.as_secs())))??;
            if r != Response::Progress {
                return Ok(r);
            }
        }
    }

    async fn read_one(&mut self) -> Result<Response, Failure> {
        let mut buf = [0u8; 8192];
        loop {
            match codec::decode(&self.input) {
                Ok(Some((r, used))) => {
                    self.input.drain(..used);
                    return Ok(r);
                }
                Ok(None) => {}
                Err(e) => return Err(Failure(format!("protocol error: {e}"))),
            }
            match self.stream.read(&mut buf).await {
                Ok(0) => return Err(Failure("closed the connection".into())),
                Ok(n) => self.input.extend_from_slice(&buf[..n]),
                Err(e) => return Err(Failure(format!("read error: {e}"))),
            }
        }
    }
}
