//! Test support for the front-door tests: a real `relais serve` with any listeners (mx,
//! submission, submissions), TLS and an AUTH user, in its own temporary directory; a small
//! blocking SMTP client over TCP or TLS (rustls, trusting any certificate since the server's is
//! self-signed), optionally bound to another loopback address; external clients (swaks,
//! python3); the Maildirs.
//!
//! A [`Server`] is stopped with SIGTERM when dropped, and prints its log when the test is
//! failing, so that a failure always shows what the server said.

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

use crate::common::process::Daemon;
use crate::common::serve_command;
use crate::common::wait::tempdir;

/// Our host name, in the banner and in `Received` headers.
pub const HOSTNAME: &str = "mx.local.test";
/// The only local domain.
pub const LOCAL: &str = "local.test";
/// The AUTH user every server knows.
pub const USER: &str = "alice";
/// Its password: distinctive, so that a log containing it is easy to spot.
pub const PASSWORD: &str = "Corr3ct-Horse-Battery-Staple";
/// A wrong password, just as distinctive.
pub const BAD_PASSWORD: &str = "Wr0ng-Pony-Rechargeable-Clip";

/// How long the server may take to log all its listeners.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// No test waits longer than this for one reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an accepted message may take to reach its Maildir.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The argon2 hash of [`PASSWORD`], made once per test run by `relais user add`.
fn password_hash() -> String {
    crate::common::users::password_hash(USER, PASSWORD)
}

/// What a test sets in the server's configuration.
#[derive(Debug, Clone)]
pub struct Setup {
    roles: Vec<&'static str>,
    relay_networks: Vec<&'static str>,
    tls: bool,
    tls_files: Option<(PathBuf, PathBuf)>,
    max_failures: u32,
    failure_delay_ms: u64,
    auth: Vec<String>,
    limits: Vec<String>,
    addresses: Vec<&'static str>,
    log_level: Option<&'static str>,
    banner: Option<String>,
    users: Vec<&'static str>,
    top: Vec<String>,
    tls_lines: Vec<String>,
    /// `data_dir` somewhere else than in the test's directory (a small file system).
    data_dir: Option<PathBuf>,
}

impl Setup {
    /// A server with these listeners (in this order), TLS on (self-signed certificate), the
    /// user alice, no relay networks, no AUTH delay and a generous AUTH failure limit.
    pub fn new(roles: &[&'static str]) -> Setup {
        Setup {
            roles: roles.to_vec(),
            relay_networks: Vec::new(),
            tls: true,
            tls_files: None,
            max_failures: 100,
            failure_delay_ms: 0,
            auth: Vec::new(),
            limits: Vec::new(),
            addresses: Vec::new(),
            log_level: None,
            banner: None,
            users: Vec::new(),
            top: Vec::new(),
            tls_lines: Vec::new(),
            data_dir: None,
        }
    }

    /// `data_dir` at `path` (a file system the test made) instead of the test's directory.
    pub fn data_dir(mut self, path: &Path) -> Setup {
        self.data_dir = Some(path.to_path_buf());
        self
    }

    /// One more line after `[tls]` (`min_version = "1.3"`, a `[[tls.sni]]` table).
    pub fn tls_line(mut self, line: &str) -> Setup {
        self.tls_lines.push(line.to_string());
        self
    }

    /// One more top-level line (`user = "nobody"`).
    pub fn top(mut self, line: &str) -> Setup {
        self.top.push(line.to_string());
        self
    }

    /// `[local] users`: the local parts that exist (default: all).
    pub fn users(mut self, users: &[&'static str]) -> Setup {
        self.users = users.to_vec();
        self
    }

    /// `banner`: the text after `ESMTP` in the greeting.
    pub fn banner(mut self, text: &str) -> Setup {
        self.banner = Some(text.to_string());
        self
    }

    /// `relay_networks`.
    pub fn relay_networks(mut self, nets: &[&'static str]) -> Setup {
        self.relay_networks = nets.to_vec();
        self
    }

    /// `[tls] enabled = false`.
    pub fn without_tls(mut self) -> Setup {
        self.tls = false;
        self
    }

    /// `[tls] cert` and `key`: PEM files.
    pub fn tls_files(mut self, cert: &Path, key: &Path) -> Setup {
        self.tls_files = Some((cert.to_path_buf(), key.to_path_buf()));
        self
    }

    /// `[auth] max_failures`.
    pub fn max_failures(mut self, n: u32) -> Setup {
        self.max_failures = n;
        self
    }

    /// `[auth] failure_delay`, in milliseconds.
    pub fn failure_delay_ms(mut self, ms: u64) -> Setup {
        self.failure_delay_ms = ms;
        self
    }

    /// One more line in `[auth]` (not `max_failures` nor `failure_delay`: see above).
    pub fn auth(mut self, line: &str) -> Setup {
        self.auth.push(line.to_string());
        self
    }

    /// One more line in `[limits]`.
    pub fn limit(mut self, line: &str) -> Setup {
        self.limits.push(line.to_string());
        self
    }

    /// Extra sender addresses of alice (for `sender_must_match`).
    pub fn alice_addresses(mut self, addrs: &[&'static str]) -> Setup {
        self.addresses = addrs.to_vec();
        self
    }

    /// `RELAIS_LOG` (default: the server's own, `info`).
    pub fn log_level(mut self, level: &'static str) -> Setup {
        self.log_level = Some(level);
        self
    }

    /// Writes `dir/relais.toml` (data in `dir/data`) and returns its path.
    pub fn write_config(&self, dir: &Path) -> PathBuf {
        let config = dir.join("relais.toml");
        let data_dir = self.data_dir.clone().unwrap_or_else(|| dir.join("data"));
        fs::write(&config, self.to_toml(&data_dir)).expect("write the configuration");
        config
    }

    fn to_toml(&self, data_dir: &Path) -> String {
        let quoted = |v: &[&str]| {
            v.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut t = format!(
            "hostname = {HOSTNAME:?}\ndata_dir = {:?}\nlocal_domains = [{LOCAL:?}]\n\
             relay_networks = [{}]\n",
            data_dir.display().to_string(),
            quoted(&self.relay_networks),
        );
        if let Some(b) = &self.banner {
            t.push_str(&format!("banner = {b:?}\n"));
        }
        for l in &self.top {
            t.push_str(l);
            t.push('\n');
        }
        for role in &self.roles {
            t.push_str(&format!(
                "\n[[listener]]\naddress = \"127.0.0.1:0\"\nrole = {role:?}\n"
            ));
        }
        t.push_str(&format!("\n[tls]\nenabled = {}\n", self.tls));
        if let Some((cert, key)) = &self.tls_files {
            t.push_str(&format!(
                "cert = {:?}\nkey = {:?}\n",
                cert.display().to_string(),
                key.display().to_string()
            ));
        }
        for l in &self.tls_lines {
            t.push_str(l);
            t.push('\n');
        }
        t.push_str(&format!(
            "\n[auth]\nusers = [{{ name = {USER:?}, hash = '{}', addresses = [{}] }}]\n\
             failure_delay = {}\nmax_failures = {}\n",
            password_hash(),
            quoted(&self.addresses),
            self.failure_delay_ms,
            self.max_failures
        ));
        for l in &self.auth {
            t.push_str(l);
            t.push('\n');
        }
        if !self.users.is_empty() {
            t.push_str(&format!("\n[local]\nusers = [{}]\n", quoted(&self.users)));
        }
        t.push_str("\n[limits]\n");
        for l in &self.limits {
            t.push_str(l);
            t.push('\n');
        }
        t
    }
}

/// A running `relais serve` (a [`Daemon`]: its log drained, stopped by PID when dropped).
pub struct Server {
    /// The process (a test may stop and start it again).
    pub process: Daemon,
    /// Its `data_dir`.
    pub data_dir: PathBuf,
    /// Its configuration file (a test may rewrite it, then reload).
    pub config: PathBuf,
    /// Its directory (configuration, data).
    pub dir: tempfile::TempDir,
}

impl Server {
    /// Starts a server and waits until every listener is logged.
    pub fn start(setup: Setup) -> Server {
        let dir = tempdir("relais-front-door-");
        // A server that gives up root must still reach its data directory.
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
                .expect("open the test directory");
        }
        let data_dir = setup
            .data_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("data"));
        let config = setup.write_config(dir.path());
        let mut cmd = serve_command(&config, dir.path());
        if let Some(level) = setup.log_level {
            cmd.env("RELAIS_LOG", level);
        }
        Server {
            process: Daemon::start("relais", cmd, setup.roles.len(), START_TIMEOUT),
            data_dir,
            config,
            dir,
        }
    }

    /// Rewrites the configuration file with `setup` (the same data directory); the server
    /// reads it at its next reload.
    pub fn rewrite_config(&self, setup: &Setup) {
        setup.write_config(self.dir.path());
    }

    /// The server's process id.
    pub fn pid(&self) -> libc::pid_t {
        self.process.pid().expect("a running server")
    }

    /// Sends the server a signal (SIGHUP: reload).
    pub fn signal(&self, sig: libc::c_int) {
        self.process.signal(sig);
    }

    /// The port of the listener with this role that was opened last (a reload may open one).
    pub fn last_port(&self, role: &str) -> Option<u16> {
        let suffix = format!(" ({role})");
        self.log()
            .lines()
            .filter_map(|l| {
                let rest = &l[l.find("listening on ")? + "listening on ".len()..];
                let addr = rest.strip_suffix(&suffix)?;
                addr.parse::<SocketAddr>().ok()
            })
            .map(|a| a.port())
            .next_back()
    }

    /// The port of the first listener with this role.
    pub fn port(&self, role: &str) -> u16 {
        self.process.port(role)
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Waits until the log contains `needle`; false after [`REPLY_TIMEOUT`].
    pub fn wait_log(&self, needle: &str) -> bool {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Asserts that the log says `needle` (soon).
    pub fn assert_logged(&self, needle: &str) {
        assert!(
            self.wait_log(needle),
            "the log never said {needle:?}:\n{}",
            self.log()
        );
    }

    /// The port of the HTTP listener (`[http] address`), from the log.
    pub fn http_port(&self) -> u16 {
        self.assert_logged("HTTP on ");
        let log = self.log();
        let line = log.lines().find(|l| l.contains("HTTP on ")).unwrap();
        let addr = line
            .split("HTTP on ")
            .nth(1)
            .unwrap()
            .split(':')
            .nth(1)
            .unwrap();
        addr.parse()
            .unwrap_or_else(|_| panic!("no port in {line:?}"))
    }

    /// Stops the server (SIGTERM) and returns its whole log.
    pub fn stop(&mut self) -> String {
        self.process.stop();
        self.log()
    }

    /// The messages in the Maildir of `user` (its `new/`), waiting until there are `n`.
    pub fn wait_mail(&self, user: &str, n: usize) -> Vec<String> {
        let dir = self.data_dir.join("mail").join(user).join("new");
        let deadline = Instant::now() + DELIVERY_TIMEOUT;
        loop {
            let mut files: Vec<PathBuf> = fs::read_dir(&dir)
                .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            if files.len() >= n || Instant::now() > deadline {
                files.sort();
                let msgs: Vec<String> = files
                    .iter()
                    .map(|f| fs::read_to_string(f).expect("read a message"))
                    .collect();
                assert!(
                    msgs.len() >= n,
                    "{} message(s) in {}, expected {n}\n--- relais log ---\n{}",
                    msgs.len(),
                    dir.display(),
                    self.log()
                );
                return msgs;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The number of messages in the Maildir of `user` now.
    pub fn mail_count(&self, user: &str) -> usize {
        let dir = self.data_dir.join("mail").join(user).join("new");
        fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
    }
}

/// One reply: its lines as received (without CRLF).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Every line, `250-…` and the last `250 …`.
    pub lines: Vec<String>,
}

impl Reply {
    /// True if the last line starts with `prefix` (`"250 2.1.5"`, `"554 5.7.1"`).
    pub fn is(&self, prefix: &str) -> bool {
        self.lines.last().is_some_and(|l| l.starts_with(prefix))
    }

    /// True if any line contains `needle`, case-insensitively.
    pub fn mentions(&self, needle: &str) -> bool {
        let n = needle.to_ascii_lowercase();
        self.lines
            .iter()
            .any(|l| l.to_ascii_lowercase().contains(&n))
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines.join(" / "))
    }
}

/// A certificate verifier that trusts anything (the server's certificate is self-signed) but
/// still checks the handshake signatures.
#[derive(Debug)]
struct TrustAnything(Arc<CryptoProvider>);

impl ServerCertVerifier for TrustAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Which TLS versions the test client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// 1.2 and 1.3 (1.3 wins).
    Any,
    /// TLS 1.2 only.
    V12,
    /// 1.2 and 1.3, asking (SNI) for this name instead of the server's host name.
    Sni(&'static str),
}

fn tls_connection(versions: Tls) -> ClientConnection {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let name = match versions {
        Tls::Sni(name) => name,
        _ => HOSTNAME,
    };
    let versions: &[&rustls::SupportedProtocolVersion] = match versions {
        Tls::Any | Tls::Sni(_) => &[&rustls::version::TLS13, &rustls::version::TLS12],
        Tls::V12 => &[&rustls::version::TLS12],
    };
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .expect("TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(TrustAnything(provider)))
        .with_no_client_auth();
    let name = ServerName::try_from(name.to_string()).expect("server name");
    ClientConnection::new(Arc::new(config), name).expect("TLS client")
}

/// The byte stream of a client.
enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    Gone,
}

/// A blocking SMTP client for tests: sends lines, reads replies, can start TLS.
pub struct Client {
    stream: Stream,
    /// Bytes read and not yet returned as lines.
    buf: Vec<u8>,
}

/// Connects a TCP socket to the server's `port` on 127.0.0.1, from `from` (another loopback
/// address) when given.
pub fn tcp(port: u16, from: Option<Ipv4Addr>) -> io::Result<TcpStream> {
    let server = SocketAddr::from(([127, 0, 0, 1], port));
    let stream = match from {
        None => TcpStream::connect_timeout(&server, REPLY_TIMEOUT)?,
        Some(ip) => {
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            s.bind(&SocketAddr::new(IpAddr::V4(ip), 0).into())?;
            s.connect_timeout(&server.into(), REPLY_TIMEOUT)?;
            s.into()
        }
    };
    stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
    stream.set_write_timeout(Some(REPLY_TIMEOUT))?;
    Ok(stream)
}

impl Client {
    /// Connects in clear text from 127.0.0.1; the greeting is not read yet.
    pub fn connect(port: u16) -> Client {
        Client::connect_from(port, None)
    }

    /// Connects in clear text from `from` (e.g. 127.0.0.2); the greeting is not read yet.
    pub fn connect_from(port: u16, from: Option<Ipv4Addr>) -> Client {
        let stream = tcp(port, from).unwrap_or_else(|e| panic!("connect to port {port}: {e}"));
        Client::from_tcp(stream)
    }

    /// A client on a socket the test connected itself.
    pub fn from_tcp(stream: TcpStream) -> Client {
        Client {
            stream: Stream::Plain(stream),
            buf: Vec::new(),
        }
    }

    /// The plain TCP socket back, for a test that drives it itself (nothing unread kept).
    pub fn into_tcp(self) -> TcpStream {
        assert!(
            self.buf.is_empty(),
            "unread: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        match self.stream {
            Stream::Plain(s) => s,
            _ => panic!("not a plain TCP client"),
        }
    }

    /// Connects with TLS from the first byte (a submissions listener); the greeting is not
    /// read yet.
    pub fn connect_tls(port: u16, from: Option<Ipv4Addr>) -> Client {
        let mut c = Client::connect_from(port, from);
        c.handshake(Tls::Any);
        c
    }

    /// Reads the greeting and asserts it is `220`.
    pub fn greeting(&mut self) -> Reply {
        let r = self.reply();
        assert!(r.is("220 "), "greeting: {r}");
        r
    }

    /// Connects, reads the greeting and says EHLO: ready for MAIL (or STARTTLS, AUTH).
    pub fn ready(port: u16, from: Option<Ipv4Addr>) -> Client {
        let mut c = Client::connect_from(port, from);
        c.greeting();
        c.ehlo();
        c
    }

    /// `EHLO client.test`, asserting `250`.
    pub fn ehlo(&mut self) -> Reply {
        let r = self.cmd("EHLO client.test");
        assert!(r.is("250 "), "EHLO: {r}");
        r
    }

    /// Writes bytes as they are (one write).
    pub fn write_raw(&mut self, bytes: &[u8]) {
        let res = match &mut self.stream {
            Stream::Plain(s) => s.write_all(bytes).and_then(|_| s.flush()),
            Stream::Tls(s) => s.write_all(bytes).and_then(|_| s.flush()),
            Stream::Gone => Err(io::ErrorKind::NotConnected.into()),
        };
        res.unwrap_or_else(|e| panic!("write {:?}: {e}", String::from_utf8_lossy(bytes)));
    }

    /// Sends one command line (CRLF added).
    pub fn send(&mut self, line: &str) {
        self.write_raw(format!("{line}\r\n").as_bytes());
    }

    /// Sends a command and reads its reply.
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send(line);
        self.reply()
    }

    /// Sends a command and asserts its reply starts with `prefix`.
    pub fn expect(&mut self, line: &str, prefix: &str) -> Reply {
        let r = self.cmd(line);
        assert!(r.is(prefix), "{line:?}: expected {prefix:?}, got {r}");
        r
    }

    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 4096];
        let n = match &mut self.stream {
            Stream::Plain(s) => s.read(&mut chunk),
            Stream::Tls(s) => s.read(&mut chunk),
            Stream::Gone => Ok(0),
        }?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// The next line, or None at the end of the stream (or a reset).
    pub fn line(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Some(line);
            }
            match self.fill() {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) if is_closed(&e) => return None,
                Err(e) => panic!(
                    "reading a reply: {e} (so far: {:?})",
                    String::from_utf8_lossy(&self.buf)
                ),
            }
        }
    }

    /// The next reply, which must come.
    pub fn reply(&mut self) -> Reply {
        self.try_reply()
            .unwrap_or_else(|| panic!("connection closed while waiting for a reply"))
    }

    /// The next reply, or None if the connection closes first.
    pub fn try_reply(&mut self) -> Option<Reply> {
        let mut lines = Vec::new();
        loop {
            let line = self.line()?;
            assert!(
                line.len() >= 3 && line.as_bytes()[..3].iter().all(u8::is_ascii_digit),
                "not a reply line: {line:?}"
            );
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return Some(Reply { lines });
            }
        }
    }

    /// Asserts the server closes the connection with nothing more to say.
    pub fn expect_closed(&mut self) {
        if let Some(l) = self.line() {
            panic!("expected the connection to close, got {l:?}");
        }
    }

    /// How many bytes are waiting that no command asked for (waits 300 ms for them, in clear
    /// text only).
    pub fn unread_bytes(&mut self) -> usize {
        let set = |c: &Client, t: Duration| {
            if let Stream::Plain(s) = &c.stream {
                let _ = s.set_read_timeout(Some(t));
            }
        };
        if matches!(self.stream, Stream::Plain(_)) {
            set(self, Duration::from_millis(300));
            let _ = self.fill();
            set(self, REPLY_TIMEOUT);
        }
        self.buf.len()
    }

    /// Runs the TLS handshake on the connection as it is now (after `220 Ready to start TLS`,
    /// or at once for implicit TLS).
    pub fn handshake(&mut self, versions: Tls) {
        if let Err(e) = self.try_handshake(versions) {
            panic!("TLS handshake: {e}");
        }
    }

    /// [`Client::handshake`], with its failure as an error.
    pub fn try_handshake(&mut self, versions: Tls) -> io::Result<()> {
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            panic!("handshake on a connection that is not plain TCP");
        };
        let mut tls = StreamOwned::new(tls_connection(versions), tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock)?;
        }
        self.stream = Stream::Tls(Box::new(tls));
        Ok(())
    }

    /// `STARTTLS` (asserting `220 2.0.0`), then the handshake, then EHLO again.
    pub fn starttls(&mut self) {
        self.starttls_with(Tls::Any);
    }

    /// [`Client::starttls`] offering only these TLS versions.
    pub fn starttls_with(&mut self, versions: Tls) {
        self.expect("STARTTLS", "220 2.0.0");
        assert!(self.buf.is_empty(), "clear text after 220: {:?}", self.buf);
        self.handshake(versions);
        self.ehlo();
    }

    /// The negotiated TLS version (`TLSv1_3`), if encrypted.
    pub fn tls_version(&self) -> Option<String> {
        match &self.stream {
            Stream::Tls(s) => s.conn.protocol_version().map(|v| format!("{v:?}")),
            _ => None,
        }
    }

    /// The DER of the certificate the server presented, if encrypted.
    pub fn peer_certificate(&self) -> Option<Vec<u8>> {
        match &self.stream {
            Stream::Tls(s) => s
                .conn
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.as_ref().to_vec()),
            _ => None,
        }
    }

    /// `AUTH PLAIN` with an initial response.
    pub fn auth_plain(&mut self, user: &str, password: &str) -> Reply {
        self.cmd(&format!("AUTH PLAIN {}", plain_blob(user, password)))
    }

    /// `AUTH LOGIN` without initial response: user and password in answer to 334s.
    pub fn auth_login(&mut self, user: &str, password: &str) -> Reply {
        self.expect("AUTH LOGIN", "334 ");
        self.expect(&b64(user), "334 ");
        self.cmd(&b64(password))
    }

    /// MAIL, RCPT (all must be accepted), DATA with a small message: returns the final reply.
    pub fn send_mail(&mut self, from: &str, to: &[&str], subject: &str) -> Reply {
        self.expect(&format!("MAIL FROM:<{from}>"), "250 ");
        for t in to {
            self.expect(&format!("RCPT TO:<{t}>"), "250 ");
        }
        self.expect("DATA", "354 ");
        self.cmd(&format!(
            "From: <{from}>\r\nTo: <{}>\r\nSubject: {subject}\r\n\r\nfront door test\r\n.",
            to[0]
        ))
    }

    /// `QUIT`, expecting `221` and the close.
    pub fn quit(&mut self) {
        self.expect("QUIT", "221 ");
        self.expect_closed();
    }
}

/// An HTTP answer, read to the end of the connection.
#[derive(Debug)]
pub struct HttpReply {
    /// The status code (0 when none came).
    pub status: u16,
    /// The header lines, CRLF-separated.
    pub headers: String,
    /// The body as text (a chunked body keeps its chunk sizes).
    pub body: String,
}

impl HttpReply {
    /// The value of a header, by name (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The body as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

/// One HTTP/1.1 request to 127.0.0.1:`port` on a connection of its own (`extra`: header lines,
/// each ending in CRLF, a `Host` among them replacing `127.0.0.1:PORT`; `body` sent with its
/// length when not empty).
pub fn http(port: u16, method: &str, path: &str, extra: &str, body: &str) -> HttpReply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the HTTP listener");
    s.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    let length = if body.is_empty() {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    let host = if extra.to_ascii_lowercase().contains("host:") {
        String::new()
    } else {
        format!("Host: 127.0.0.1:{port}\r\n")
    };
    let req =
        format!("{method} {path} HTTP/1.1\r\n{host}{extra}{length}Connection: close\r\n\r\n{body}");
    let _ = s.write_all(req.as_bytes());
    let out = read_answer(&mut s);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let (first, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    HttpReply {
        status: first
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        headers: headers.to_string(),
        body: body.to_string(),
    }
}

/// An HTTP answer's bytes: up to the end of its `Content-Length` body, or of the connection
/// when it has none (some servers, chromedriver among them, keep it open after an answer).
fn read_answer(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
            let length = head.lines().find_map(|l| {
                l.strip_prefix("content-length:")
                    .and_then(|v| v.trim().parse::<usize>().ok())
            });
            if length.is_some_and(|n| out.len() >= end + 4 + n) {
                return out;
            }
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
    }
}

/// True for the errors a closed peer gives.
fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

/// Standard base64.
pub fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The SASL PLAIN response of `user` and `password`, in base64.
pub fn plain_blob(user: &str, password: &str) -> String {
    b64(&format!("\0{user}\0{password}"))
}

/// Runs an external program, with its output captured.
pub fn run(program: &str, args: &[String]) -> Output {
    Command::new(program)
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {program} (is it installed?): {e}"))
}

/// Runs swaks with these arguments (and `--helo client.test`).
pub fn swaks(args: &[&str]) -> Output {
    let mut all: Vec<String> = vec!["--helo".into(), "client.test".into()];
    all.extend(args.iter().map(|s| s.to_string()));
    run("swaks", &all)
}

/// Runs one of the Python scripts in `tests/front_door/py/`.
pub fn python(script: &str, args: &[String]) -> Output {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/front_door/py")
        .join(script);
    let mut all = vec![path.display().to_string()];
    all.extend(args.iter().cloned());
    run("python3", &all)
}

/// Stdout and stderr of a finished program, for assertions and messages.
pub fn output_text(out: &Output) -> String {
    format!(
        "exit: {}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The `Received` header relais added (the first one of the message), unfolded.
pub fn received(message: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in message.lines() {
        if inside {
            if line.starts_with([' ', '\t']) {
                out.push(' ');
                out.push_str(line.trim());
                continue;
            }
            break;
        }
        if line.starts_with("Received:") {
            inside = true;
            out.push_str(line);
        }
    }
    assert!(!out.is_empty(), "no Received header in:\n{message}");
    out
}

/// The loopback address 127.0.0.N.
pub fn lo(n: u8) -> Option<Ipv4Addr> {
    Some(Ipv4Addr::new(127, 0, 0, n))
}
