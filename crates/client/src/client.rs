//! [`SmtpClient`]: one SMTP session over TCP (and TLS), step by step, with a transcript.

use std::fmt;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use relais_proto::{
    Command, DotStuffer, EhloResponse, MailParams, Mailbox, RcptParams, Reply, ReplyParser,
    ReversePath,
};
use tokio::net::{TcpStream, UnixStream};

use crate::config::ClientConfig;
use crate::error::{ClientError, Stage};
use crate::stream::Stream;
use crate::tls::{self, TlsInfo, TlsSetup};
use crate::transcript::{Direction, Transcript};

mod content;
mod steps;

/// How long one step took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// The step.
    pub stage: Stage,
    /// From the moment the step started (command written, connection attempted) to its answer.
    pub took: Duration,
}

/// Size of the socket read buffer.
const READ_BUF: usize = 16 * 1024;
/// Message content is written in pieces of this size, each under the data-block timeout.
const WRITE_CHUNK: usize = 64 * 1024;
/// How long a polite close (TLS close_notify, TCP FIN) may take.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// One SMTP session.
///
/// Create it with [`SmtpClient::new`] (or [`SmtpClient::with_transcript`] to watch the dialogue
/// live), then [`connect`](SmtpClient::connect) or [`connect_tls`](SmtpClient::connect_tls). The
/// same client may connect again (to the next MX host, say) after a failure or a QUIT; the
/// transcript and timings go on.
///
/// Step methods (`ehlo`, `starttls`, `auth_*`, `mail`, `rcpt`, `data`, `bdat`) return
/// [`ClientError::UnexpectedReply`] when the server refuses the step; the connection is still
/// usable then ([`ClientError::connection_usable`]). [`command`](SmtpClient::command) and
/// [`pipeline`](SmtpClient::pipeline) return whatever reply came.
#[derive(Debug)]
pub struct SmtpClient {
    /// Timeouts and TLS policy.
    cfg: ClientConfig,
    /// The transport.
    stream: Stream,
    /// Turns received bytes into replies; kept across reads so no partial reply is lost.
    parser: ReplyParser,
    /// Scratch space for socket reads.
    buf: Box<[u8]>,
    /// Everything said so far.
    transcript: Transcript,
    /// How long each step took, in order.
    timings: Vec<Timing>,
    /// The server we are connected to.
    peer: Option<SocketAddr>,
    /// The last EHLO answer; forgotten after STARTTLS, as RFC 3207 requires.
    ehlo: Option<EhloResponse>,
    /// What the TLS handshake gave, once there was one.
    tls: Option<TlsInfo>,
    /// The rustls setup, built on first use.
    tls_setup: Option<TlsSetup>,
}

/// Looks up the addresses of `host` (a name or an IP literal, brackets allowed) with the system
/// resolver. A name with no address is [`ClientError::Resolve`]: "host not found".
pub async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, ClientError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let fail = |reason: String| ClientError::Resolve {
        host: host.to_string(),
        reason,
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|e| fail(e.to_string()))?
        .collect();
    if addrs.is_empty() {
        return Err(fail("no address".into()));
    }
    Ok(addrs)
}

impl SmtpClient {
    /// A client that is not connected yet; its transcript clock starts now.
    pub fn new(cfg: ClientConfig) -> SmtpClient {
        SmtpClient::with_transcript(cfg, Transcript::new())
    }

    /// A client recording into `transcript` (one made with [`Transcript::with_sink`] shows the
    /// dialogue as it happens).
    pub fn with_transcript(cfg: ClientConfig, transcript: Transcript) -> SmtpClient {
        SmtpClient {
            cfg,
            stream: Stream::None,
            parser: ReplyParser::new(),
            buf: vec![0; READ_BUF].into_boxed_slice(),
            transcript,
            timings: Vec::new(),
            peer: None,
            ehlo: None,
            tls: None,
            tls_setup: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    /// Everything said so far.
    pub fn transcript(&self) -> &Transcript {
        &self.transcript
    }

    /// Mutable access, to add notes of the caller's own.
    pub fn transcript_mut(&mut self) -> &mut Transcript {
        &mut self.transcript
    }

    /// The transcript, keeping nothing else.
    pub fn into_transcript(self) -> Transcript {
        self.transcript
    }

    /// How long each step took, in order.
    pub fn timings(&self) -> &[Timing] {
        &self.timings
    }

    /// The server's address, when connected.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// True while connected.
    pub fn is_connected(&self) -> bool {
        self.stream.is_open()
    }

    /// True under TLS.
    pub fn is_tls(&self) -> bool {
        self.stream.is_tls()
    }

    /// The last EHLO answer (none after STARTTLS until EHLO is sent again).
    pub fn capabilities(&self) -> Option<&EhloResponse> {
        self.ehlo.as_ref()
    }

    /// Whether the certificate the server sent verifies for `name` (another name than the one
    /// of the handshake: a `verify` match list, an MTA-STS policy's MX pattern) against the
    /// trust store; a failure when there was no TLS.
    pub fn verify_peer_for(&self, name: &str) -> tls::CertVerification {
        let (Some(setup), Some(info)) = (self.tls_setup.as_ref(), self.tls_info()) else {
            return tls::CertVerification::Failed("no TLS session".into());
        };
        let name = match tls::server_name(name) {
            Ok(n) => n,
            Err(e) => return tls::CertVerification::Failed(e),
        };
        let chain: Vec<_> = info
            .peer_certificates
            .iter()
            .map(|c| rustls::pki_types::CertificateDer::from(c.clone()))
            .collect();
        setup.verify(&chain, &name)
    }

    /// What the TLS handshake negotiated, once there was one.
    pub fn tls_info(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }

    // ----- connecting -----

    /// Connects in clear text and reads the greeting. The greeting is returned whatever its code:
    /// after a `554` banner the caller should still [`quit`](SmtpClient::quit).
    pub async fn connect(&mut self, addr: SocketAddr) -> Result<Reply, ClientError> {
        self.open(addr).await?;
        self.banner().await
    }

    /// Connects with TLS from the first byte (port 465) and reads the greeting under TLS.
    /// `server_name` is sent as SNI and used to check the certificate (unless the policy names
    /// another).
    pub async fn connect_tls(
        &mut self,
        addr: SocketAddr,
        server_name: &str,
    ) -> Result<Reply, ClientError> {
        self.open(addr).await?;
        self.tls_handshake(server_name).await?;
        self.banner().await
    }

    /// Opens the TCP connection only (no greeting read): `connect` in two halves, for callers
    /// that time or stop between them.
    pub async fn open(&mut self, addr: SocketAddr) -> Result<(), ClientError> {
        let started = self.reset(&addr.to_string()).await;
        let limit = self.cfg.connect_timeout;
        let tcp = match tokio::time::timeout(limit, tcp_connect(addr, self.cfg.local_address)).await
        {
            Err(_) => return Err(self.connect_timed_out()),
            Ok(Err(e)) => return Err(self.fail(connect_error(addr, e))),
            Ok(Ok(tcp)) => tcp,
        };
        // Commands are small and each waits for its reply: do not let Nagle hold them back.
        let _ = tcp.set_nodelay(true);
        self.connected(Stream::Plain(tcp), &addr.to_string(), started);
        self.peer = Some(addr);
        Ok(())
    }

    /// Opens a Unix socket (an LMTP server's, RFC 2033) in place of TCP; the greeting is read
    /// with [`banner`](SmtpClient::banner). A failure is a connect error.
    pub async fn open_unix(&mut self, path: &std::path::Path) -> Result<(), ClientError> {
        let shown = path.display().to_string();
        let started = self.reset(&shown).await;
        let limit = self.cfg.connect_timeout;
        let unix = match tokio::time::timeout(limit, UnixStream::connect(path)).await {
            Err(_) => return Err(self.connect_timed_out()),
            Ok(Err(e)) => return Err(self.fail(ClientError::from_io(Stage::Connect, e))),
            Ok(Ok(unix)) => unix,
        };
        self.connected(Stream::Unix(unix), &shown, started);
        Ok(())
    }

    /// Forgets the previous connection before a new one to `to`; the connect clock starts.
    async fn reset(&mut self, to: &str) -> Instant {
        self.stream.shutdown().await;
        self.parser = ReplyParser::new();
        self.ehlo = None;
        self.tls = None;
        self.peer = None;
        self.transcript.info(format!("Trying {to}..."));
        Instant::now()
    }

    /// The connect stage ran out of time.
    fn connect_timed_out(&mut self) -> ClientError {
        let after = self.cfg.connect_timeout;
        self.fail(ClientError::TimedOut {
            stage: Stage::Connect,
            after,
        })
    }

    /// A connection to `to` is open: its time is recorded.
    fn connected(&mut self, stream: Stream, to: &str, started: Instant) {
        let took = started.elapsed();
        self.timings.push(Timing {
            stage: Stage::Connect,
            took,
        });
        self.transcript
            .info(format!("Connected to {to} in {:.3}s.", took.as_secs_f64()));
        self.stream = stream;
    }

    /// Reads the greeting after [`open`](SmtpClient::open).
    pub async fn banner(&mut self) -> Result<Reply, ClientError> {
        let started = Instant::now();
        let reply = self.read_reply(Stage::Banner).await?;
        self.timings.push(Timing {
            stage: Stage::Banner,
            took: started.elapsed(),
        });
        Ok(reply)
    }

    /// Drops the connection without QUIT (what `--quit-after connect` does).
    pub async fn close(&mut self) {
        if self.stream.is_open() {
            let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, self.stream.shutdown()).await;
            self.stream = Stream::None;
            self.transcript.info("Connection closed.");
        }
    }

    // ----- the raw layer -----

    /// Writes one command line (CRLF added) and records it. The reply is not read.
    pub async fn send_line(&mut self, line: &str) -> Result<(), ClientError> {
        let stage = Stage::of_line(line);
        self.record_sent(line);
        let mut wire = Vec::with_capacity(line.len() + 2);
        wire.extend_from_slice(line.as_bytes());
        wire.extend_from_slice(b"\r\n");
        self.write(stage, &wire).await
    }

    /// Reads the next reply, waiting at most the timeout that `stage` has.
    pub async fn read_reply(&mut self, stage: Stage) -> Result<Reply, ClientError> {
        let limit = self.cfg.timeout_for(stage);
        match tokio::time::timeout(limit, self.next_reply(stage)).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => Err(self.fail(e)),
            Err(_) => Err(self.fail(ClientError::TimedOut {
                stage,
                after: limit,
            })),
        }
    }

    /// Waits for the next reply with no time limit, for interactive use. Cancel-safe: dropping
    /// the future loses no byte, so it can sit in a `select!` with the user's input. A line
    /// that is not SMTP is returned as [`ClientError::Protocol`] and skipped; the next call
    /// goes on after it.
    pub async fn receive(&mut self) -> Result<Reply, ClientError> {
        match self.next_reply(Stage::Command).await {
            Ok(reply) => Ok(reply),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Sends one command and reads its reply, whatever the code. `cmd` is a [`Command`] or a
    /// raw line.
    pub async fn command(&mut self, cmd: impl fmt::Display) -> Result<Reply, ClientError> {
        let line = cmd.to_string();
        let stage = Stage::of_line(&line);
        let started = Instant::now();
        self.send_line(&line).await?;
        let reply = self.read_reply(stage).await?;
        self.timings.push(Timing {
            stage,
            took: started.elapsed(),
        });
        Ok(reply)
    }

    /// Sends a group of commands in one write and reads one reply per command (RFC 2920). Only
    /// for servers that advertise PIPELINING; the group should end with DATA, QUIT or a command
    /// that changes nothing (RFC 2920 §3.1).
    pub async fn pipeline(&mut self, cmds: &[String]) -> Result<Vec<Reply>, ClientError> {
        let started = Instant::now();
        let mut wire = Vec::new();
        for line in cmds {
            self.record_sent(line);
            wire.extend_from_slice(line.as_bytes());
            wire.extend_from_slice(b"\r\n");
        }
        let first = cmds
            .first()
            .map(|l| Stage::of_line(l))
            .unwrap_or(Stage::Command);
        self.write(first, &wire).await?;
        let mut replies = Vec::with_capacity(cmds.len());
        for line in cmds {
            let stage = Stage::of_line(line);
            replies.push(self.read_reply(stage).await?);
            self.timings.push(Timing {
                stage,
                took: started.elapsed(),
            });
        }
        Ok(replies)
    }

    // ----- internals -----

    /// Records an error in the transcript and hands it back.
    fn fail(&mut self, e: ClientError) -> ClientError {
        self.transcript.error(e.to_string());
        e
    }

    fn record_sent(&mut self, line: &str) {
        let tls = self.stream.is_tls();
        self.transcript.record(Direction::Sent, tls, line);
    }

    /// Writes bytes under the timeout of `stage`.
    async fn write(&mut self, stage: Stage, bytes: &[u8]) -> Result<(), ClientError> {
        let limit = self.cfg.timeout_for(stage);
        let result = tokio::time::timeout(limit, self.stream.write_all(bytes)).await;
        self.settle(stage, limit, result)
    }

    async fn write_content(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let limit = self.cfg.data_block_timeout;
        let result = tokio::time::timeout(limit, self.stream.write_all(bytes)).await;
        self.settle(Stage::Message, limit, result)
    }

    fn settle(
        &mut self,
        stage: Stage,
        limit: Duration,
        result: Result<std::io::Result<()>, tokio::time::error::Elapsed>,
    ) -> Result<(), ClientError> {
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.fail(ClientError::from_io(stage, e))),
            Err(_) => Err(self.fail(ClientError::TimedOut {
                stage,
                after: limit,
            })),
        }
    }

    /// The next reply, reading as needed. Records each reply line.
    async fn next_reply(&mut self, stage: Stage) -> Result<Reply, ClientError> {
        loop {
            match self.parser.next_reply() {
                Ok(Some(reply)) => {
                    let tls = self.stream.is_tls();
                    let wire = reply.to_bytes();
                    for line in String::from_utf8_lossy(&wire).split_terminator("\r\n") {
                        self.transcript.record(Direction::Received, tls, line);
                    }
                    return Ok(reply);
                }
                Ok(None) => {}
                Err(error) => return Err(ClientError::Protocol { stage, error }),
            }
            let n = self
                .stream
                .read(&mut self.buf)
                .await
                .map_err(|e| ClientError::from_io(stage, e))?;
            if n == 0 {
                return Err(ClientError::Closed { stage });
            }
            self.parser.push(&self.buf[..n]);
        }
    }

    /// Runs the TLS handshake on the open clear-text connection: what
    /// [`connect_tls`](SmtpClient::connect_tls) does after [`open`](SmtpClient::open), for
    /// callers that time or stop between the steps. After STARTTLS use
    /// [`starttls`](SmtpClient::starttls) instead.
    pub async fn tls_handshake(&mut self, server_name: &str) -> Result<TlsInfo, ClientError> {
        let stage = Stage::TlsHandshake;
        let tls_err = |message: String| ClientError::Tls { stage, message };
        if self.tls_setup.is_none() {
            match TlsSetup::new(&self.cfg.tls) {
                Ok(s) => self.tls_setup = Some(s),
                Err(m) => return Err(self.fail(tls_err(m))),
            }
        }
        let name_text = self
            .cfg
            .tls
            .server_name
            .clone()
            .unwrap_or_else(|| server_name.to_string());
        let name = match tls::server_name(&name_text) {
            Ok(n) => n,
            Err(m) => return Err(self.fail(tls_err(m))),
        };
        let tcp = match std::mem::take(&mut self.stream) {
            Stream::Plain(tcp) => tcp,
            other => {
                self.stream = other;
                return Err(self.fail(tls_err("no clear-text connection to secure".into())));
            }
        };
        let Some(setup) = self.tls_setup.as_ref() else {
            return Err(self.fail(tls_err("TLS is not set up".into())));
        };
        let started = Instant::now();
        let limit = self.cfg.connect_timeout;
        let connecting = setup.connector.connect(name.clone(), tcp);
        let tls_stream = match with_timeout(limit, connecting).await {
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                let e = match ClientError::from_io(stage, e) {
                    ClientError::Closed { .. } | ClientError::Reset { .. } => {
                        tls_err("the server closed the connection during the handshake".into())
                    }
                    e => e,
                };
                self.peer = None;
                return Err(self.fail(e));
            }
            None => {
                self.peer = None;
                return Err(self.fail(ClientError::TimedOut {
                    stage,
                    after: limit,
                }));
            }
        };
        let info = tls::info(setup, tls_stream.get_ref().1, &name);
        self.timings.push(Timing {
            stage,
            took: started.elapsed(),
        });
        self.stream = Stream::Tls(Box::new(tls_stream));
        self.ehlo = None;
        self.transcript.info(format!(
            "TLS started with {} {} ({} certificate{} from the server)",
            info.version,
            info.cipher,
            info.peer_certificates.len(),
            if info.peer_certificates.len() == 1 {
                ""
            } else {
                "s"
            },
        ));
        match &info.verification {
            tls::CertVerification::Verified => self
                .transcript
                .info(format!("Certificate verified for {}", info.server_name)),
            tls::CertVerification::Failed(why) => self.transcript.info(format!(
                "Certificate NOT verified for {}: {why}",
                info.server_name
            )),
        }
        self.tls = Some(info.clone());
        Ok(info)
    }
}

/// `Some(result)`, or `None` when `limit` passed first.
/// Opens a TCP connection to `addr`, from `local` when given (port chosen by the system).
async fn tcp_connect(
    addr: SocketAddr,
    local: Option<std::net::IpAddr>,
) -> std::io::Result<TcpStream> {
    let Some(local) = local else {
        return TcpStream::connect(addr).await;
    };
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.bind(SocketAddr::new(local, 0))?;
    socket.connect(addr).await
}

async fn with_timeout<T>(limit: Duration, f: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(limit, f).await.ok()
}

/// `Ok(reply)` when `ok(reply)`, else the refusal as an error of `stage`.
fn expect(stage: Stage, reply: Reply, ok: impl Fn(&Reply) -> bool) -> Result<Reply, ClientError> {
    if ok(&reply) {
        Ok(reply)
    } else {
        Err(ClientError::UnexpectedReply { stage, reply })
    }
}

/// Classifies a failed TCP connect.
fn connect_error(addr: SocketAddr, e: std::io::Error) -> ClientError {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => ClientError::Refused { addr },
        ErrorKind::HostUnreachable | ErrorKind::NetworkUnreachable => ClientError::Unreachable {
            addr,
            reason: e.to_string(),
        },
        _ => ClientError::from_io(Stage::Connect, e),
    }
}

/// The CRAM-MD5 response (RFC 2195): `user`, a space, HMAC-MD5(password, challenge) in
/// lower-case hex.
pub fn cram_md5(user: &str, password: &str, challenge: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<md5::Md5> as Mac>::new_from_slice(password.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(challenge);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{user} {hex}")
}

/// The SASL PLAIN response for `user` and `password`, base64 (RFC 4616: empty authzid, NUL,
/// authcid, NUL, password).
pub fn sasl_plain(user: &str, password: &str) -> String {
    B64.encode(format!("\0{user}\0{password}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_plain_matches_rfc_4616() {
        // RFC 4616 §4 example without authzid: "\0tim\0tanstaaftanstaaf".
        assert_eq!(
            sasl_plain("tim", "tanstaaftanstaaf"),
            "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"
        );
    }

    #[test]
    fn cram_md5_matches_rfc_2195() {
        // RFC 2195 §2's example.
        let challenge = b"<1896.697170952@postoffice.reston.mci.net>";
        assert_eq!(
            cram_md5("tim", "tanstaaftanstaaf", challenge),
            "tim b913a602c7eda7a495b4e6e7334d3890"
        );
    }

    #[tokio::test]
    async fn ip_literals_resolve_without_a_lookup() {
        let a = resolve("[::1]", 25).await.unwrap();
        assert_eq!(a, vec!["[::1]:25".parse().unwrap()]);
        let a = resolve("127.0.0.1", 587).await.unwrap();
        assert_eq!(a, vec!["127.0.0.1:587".parse().unwrap()]);
    }
}
