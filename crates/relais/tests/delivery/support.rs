//! Support for the delivery tests: `relais serve` processes (the relais under test and relais
//! peers), a scripted SMTP peer in this process ([`FaultPeer`]), an aiosmtpd peer
//! ([`PyPeer`]), a private Postfix ([`Postfix`]), a raw SMTP client ([`Smtp`]), the `relais`
//! command line ([`relais`]) and DSN parsing with mail-parser ([`Dsn`]).
//!
//! Only 127.0.0.x is used. Peers that MX records point to listen on port 25 of their own
//! 127.0.0.x address ([`loopback_25`]), since an MX record names no port; everything else
//! listens on a free port of 127.0.0.1. Every process started here is stopped by its PID
//! (SIGTERM, then SIGKILL) when its handle is dropped; a failing test prints the logs.

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::common::certs::Certs;
pub use crate::common::{Dns, Zone, dns};

/// How long a process may take to say where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a test waits for something that should happen soon (a delivery, a log line).
pub const WAIT: Duration = Duration::from_secs(30);
/// Read timeout of the raw client.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

pub use crate::common::process::{self, Daemon, Run};
pub use crate::common::wait::{list_files, tempdir, wait_files, wait_until};
pub use crate::common::{RELAIS, serve_command};

// ------------------------------------------------------------------ loopback addresses

/// Hands out a different 127.0.0.x to every caller of this process.
static NEXT_HOST: AtomicUsize = AtomicUsize::new(0);

/// A 127.0.0.x address (x in 160..=239, never one the other test binaries name) whose port 25
/// is free now, different for every call. Binding port 25 needs root or
/// CAP_NET_BIND_SERVICE, which the MX tests need anyway.
pub fn loopback_25() -> Ipv4Addr {
    let start = std::process::id() as usize % 80;
    for _ in 0..80 {
        let n = NEXT_HOST.fetch_add(1, Ordering::Relaxed);
        let last = 160 + (start + n) % 80;
        if last == 200 {
            continue;
        }
        let ip = Ipv4Addr::new(127, 0, 0, last as u8);
        match TcpListener::bind((ip, 25)) {
            Ok(_) => return ip,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => panic!(
                "cannot bind {ip}:25 ({e}): the MX tests run their peers on port 25 of \
                 127.0.0.x, which needs root or CAP_NET_BIND_SERVICE"
            ),
            Err(_) => continue,
        }
    }
    panic!("no 127.0.0.x (x in 160..=239) with a free port 25");
}

/// Port 25 of a 127.0.0.x that refuses connections (bound, not listening) while this lives:
/// an MX host that is down.
pub struct Refusing {
    _socket: socket2::Socket,
    /// The address.
    pub ip: Ipv4Addr,
}

impl Refusing {
    /// Reserves a fresh address.
    pub fn new() -> Refusing {
        let ip = loopback_25();
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        // Connections of earlier runs may linger in TIME_WAIT on this address.
        socket.set_reuse_address(true).expect("SO_REUSEADDR");
        socket
            .bind(&SocketAddr::from((ip, 25)).into())
            .expect("bind the refusing address");
        Refusing {
            _socket: socket,
            ip,
        }
    }
}

// ------------------------------------------------------------------ relais serve

/// What a test sets in a `relais serve` configuration.
#[derive(Debug, Clone)]
pub struct Setup {
    /// `hostname`.
    pub hostname: String,
    /// `local_domains`.
    pub local_domains: Vec<String>,
    /// The listener address.
    pub listen: SocketAddr,
    /// `[delivery] resolver`.
    pub resolver: Option<SocketAddr>,
    /// `[delivery] routes`.
    pub routes: Vec<(String, String)>,
    /// `[delivery] relayhost`.
    pub relayhost: Option<String>,
    /// More `[delivery]` lines (`lifetime = 3`).
    pub delivery: Vec<String>,
    /// More `[limits]` lines (`max_message_size = 2000`).
    pub limits: Vec<String>,
}

impl Setup {
    /// The relais under test: `relais.test`, relaying for 127.0.0.0/8 and ::1, MX lookups at `dns`.
    pub fn sender(dns: &Dns) -> Setup {
        Setup {
            hostname: "relais.test".into(),
            local_domains: vec!["localhost".into(), "relais.test".into()],
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            resolver: Some(dns.addr()),
            routes: Vec::new(),
            relayhost: None,
            delivery: Vec::new(),
            limits: Vec::new(),
        }
    }

    /// A relais peer: mail for `domain`, on port 25 of `ip`.
    pub fn peer(ip: Ipv4Addr, domain: &str) -> Setup {
        Setup {
            hostname: format!("mx.{domain}"),
            local_domains: vec![domain.to_string()],
            listen: SocketAddr::from((ip, 25)),
            resolver: None,
            routes: Vec::new(),
            relayhost: None,
            delivery: Vec::new(),
            limits: Vec::new(),
        }
    }

    /// Adds a route, `domain` → `hop` (`[host]:port`).
    pub fn route(mut self, domain: &str, hop: &str) -> Setup {
        self.routes.push((domain.into(), hop.into()));
        self
    }

    /// The TOML text, with the data in `data_dir`. Retries wait an hour: tests drive them
    /// with `relais queue flush`.
    pub fn toml(&self, data_dir: &Path) -> String {
        let list = |v: &[String]| {
            v.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut t = format!(
            "hostname = {:?}\ndata_dir = {:?}\nlocal_domains = [{}]\n\
             relay_networks = [\"127.0.0.0/8\", \"::1/128\"]\nworkers = 1\n\n\
             [[listener]]\naddress = \"{}\"\n\n\
             [limits]\nmax_connections_per_ip = 0\nconnection_rate_per_ip = 0\n{}\n\
             [delivery]\nfirst_retry = \"1h\"\nmax_retry = \"1h\"\nconnect_timeout = \"5s\"\n",
            self.hostname,
            data_dir.display().to_string(),
            list(&self.local_domains),
            self.listen,
            self.limits.join("\n"),
        );
        if let Some(r) = self.resolver {
            t.push_str(&format!("resolver = \"{r}\"\n"));
        }
        if let Some(r) = &self.relayhost {
            t.push_str(&format!("relayhost = {r:?}\n"));
        }
        if !self.routes.is_empty() {
            let routes: Vec<String> = self
                .routes
                .iter()
                .map(|(d, h)| format!("{d:?} = {h:?}"))
                .collect();
            t.push_str(&format!("routes = {{ {} }}\n", routes.join(", ")));
        }
        for line in &self.delivery {
            t.push_str(line);
            t.push('\n');
        }
        t
    }

    /// Writes `dir/relais.toml` (data in `dir/data`) and returns its path.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join("relais.toml");
        fs::write(&path, self.toml(&dir.join("data"))).expect("write the configuration");
        path
    }
}

/// A relais named `mx.good.test` listening on `listen`, taking mail for `domains` over
/// STARTTLS with `certs` (configuration and data in `dir`).
pub fn tls_peer(dir: &Path, listen: &str, domains: &[&str], certs: &Certs) -> Daemon {
    let config = dir.join("peer.toml");
    let list: Vec<String> = domains.iter().map(|d| format!("{d:?}")).collect();
    fs::write(
        &config,
        format!(
            "hostname = \"mx.good.test\"\ndata_dir = {:?}\n\
             local_domains = [{}]\nworkers = 1\n\
             [[listener]]\naddress = \"{listen}\"\n\
             [tls]\ncert = {:?}\nkey = {:?}\n",
            dir.join("data").display().to_string(),
            list.join(", "),
            certs.chain.display().to_string(),
            certs.key.display().to_string(),
        ),
    )
    .unwrap();
    Daemon::start("tls peer", serve_command(&config, dir), 1, START_TIMEOUT)
}

/// A running `relais serve` whose configuration and data live in a directory the test keeps
/// (so that a second one started there finds the same spool).
pub struct Relais {
    process: Daemon,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its configuration file.
    pub config: PathBuf,
    /// Its `data_dir`.
    pub data: PathBuf,
}

impl Relais {
    /// Writes the configuration into `dir` and starts `relais serve`.
    pub fn start(name: &str, dir: &Path, setup: &Setup) -> Relais {
        let config = setup.write(dir);
        let cmd = serve_command(&config, dir);
        let process = Daemon::start(name, cmd, 1, START_TIMEOUT);
        let addr = process.addr();
        Relais {
            process,
            addr,
            config,
            data: dir.join("data"),
        }
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// The log lines that contain every one of `needles`.
    pub fn lines(&self, needles: &[&str]) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .map(String::from)
            .collect()
    }

    /// Waits for `n` log lines that contain every one of `needles`; returns them all.
    #[track_caller]
    pub fn wait_log(&self, needles: &[&str], n: usize) -> Vec<String> {
        wait_until(
            &format!(
                "{n} log line(s) of {} with {needles:?}",
                self.process.name()
            ),
            WAIT,
            || {
                let l = self.lines(needles);
                (l.len() >= n).then_some(l)
            },
        )
    }

    /// Ends it with SIGKILL: no chance to finish anything.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// The files in the Maildir `new/` of a local part.
    pub fn mail(&self, local: &str) -> Vec<PathBuf> {
        list_files(&self.data.join("mail").join(local).join("new"))
    }

    /// Waits until the Maildir of `local` holds at least `n` messages; returns their contents.
    #[track_caller]
    pub fn wait_mail(&self, local: &str, n: usize) -> Vec<Vec<u8>> {
        let files = wait_files(&self.data.join("mail").join(local).join("new"), n, WAIT);
        files.iter().map(|p| fs::read(p).expect("read")).collect()
    }

    /// A raw client connected to it, after EHLO.
    pub fn smtp(&self) -> Smtp {
        Smtp::connect(self.addr)
    }

    /// `relais queue -c CONFIG ARGS…`.
    pub fn queue(&self, args: &[&str]) -> Run {
        queue(&self.config, args)
    }

    /// `relais queue -c CONFIG list --json`.
    pub fn queue_json(&self) -> Vec<serde_json::Value> {
        let run = self.queue(&["list", "--json"]).expect(0);
        match run.json() {
            serde_json::Value::Array(a) => a,
            other => panic!("queue list --json gave no array: {other}"),
        }
    }
}

/// `relais queue -c CONFIG ARGS…`.
pub fn queue(config: &Path, args: &[&str]) -> Run {
    let mut all = vec!["queue", "-c", config.to_str().expect("UTF-8 path")];
    all.extend_from_slice(args);
    relais(&all, b"", &[])
}

// ------------------------------------------------------------------ the command line

/// Runs `relais ARGS…` with `stdin` and extra environment.
pub fn relais(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(RELAIS);
    cmd.args(args);
    run(cmd, stdin, env)
}

/// Runs a command to its end (killed after a minute), feeding it `stdin`; no `RELAIS_CONFIG`
/// from the environment of the test.
pub fn run(mut cmd: Command, stdin: &[u8], env: &[(&str, &str)]) -> Run {
    cmd.env_remove("RELAIS_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env("NO_COLOR", "1");
    process::run(cmd, Some(stdin), Duration::from_secs(60))
}

// ------------------------------------------------------------------ raw SMTP client

/// One SMTP reply.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    /// All lines, joined with newlines.
    pub text: String,
}

/// A raw SMTP client.
pub struct Smtp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Smtp {
    /// Connects, reads the greeting and says EHLO.
    pub fn connect(addr: SocketAddr) -> Smtp {
        let stream = TcpStream::connect(addr).expect("connect to relais");
        stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        let mut c = Smtp {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        };
        let greeting = c.reply().expect("greeting");
        assert_eq!(greeting.code, 220, "{}", greeting.text);
        c.expect("EHLO client.test", 250);
        c
    }

    /// Reads one reply.
    pub fn reply(&mut self) -> io::Result<Reply> {
        let mut text = Vec::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("connection closed after {text:?}"),
                ));
            }
            let line = line.trim_end().to_string();
            let more = line.as_bytes().get(3) == Some(&b'-');
            text.push(line);
            if !more {
                break;
            }
        }
        let code = text
            .last()
            .and_then(|l| l.get(..3))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        Ok(Reply {
            code,
            text: text.join("\n"),
        })
    }

    /// Sends a command line and reads the reply.
    pub fn cmd(&mut self, line: &str) -> io::Result<Reply> {
        self.writer.write_all(format!("{line}\r\n").as_bytes())?;
        self.reply()
    }

    /// Sends a command line and asserts the reply code.
    #[track_caller]
    pub fn expect(&mut self, line: &str, code: u16) -> Reply {
        let r = self
            .cmd(line)
            .unwrap_or_else(|e| panic!("{line}: no reply: {e}"));
        assert_eq!(r.code, code, "{line} → {}", r.text);
        r
    }

    /// One transaction: `from` and each of `rcpts` are the arguments of MAIL FROM: and RCPT
    /// TO: (with their parameters, `<a@b> RET=HDRS`); the message gets CRLF line ends and
    /// dot-stuffing. Returns the queue id.
    pub fn try_send(&mut self, from: &str, rcpts: &[&str], message: &str) -> io::Result<String> {
        let bad = |r: Reply| io::Error::other(r.text);
        let r = self.cmd(&format!("MAIL FROM:{from}"))?;
        if r.code != 250 {
            return Err(bad(r));
        }
        for to in rcpts {
            let r = self.cmd(&format!("RCPT TO:{to}"))?;
            if r.code != 250 {
                return Err(bad(r));
            }
        }
        let r = self.cmd("DATA")?;
        if r.code != 354 {
            return Err(bad(r));
        }
        let mut data = String::with_capacity(message.len() + 64);
        for line in message.lines() {
            if line.starts_with('.') {
                data.push('.');
            }
            data.push_str(line);
            data.push_str("\r\n");
        }
        data.push_str(".\r\n");
        self.writer.write_all(data.as_bytes())?;
        let r = self.reply()?;
        if r.code != 250 {
            return Err(bad(r));
        }
        let at = r.text.find("queued as ").map(|i| i + "queued as ".len());
        let id: String = at
            .map(|i| {
                r.text[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect()
            })
            .unwrap_or_default();
        if id.is_empty() {
            return Err(io::Error::other(format!("no queue id in {:?}", r.text)));
        }
        Ok(id)
    }

    /// [`Smtp::try_send`] that must succeed.
    #[track_caller]
    pub fn send(&mut self, from: &str, rcpts: &[&str], message: &str) -> String {
        self.try_send(from, rcpts, message)
            .unwrap_or_else(|e| panic!("sending from {from} to {rcpts:?}: {e}"))
    }

    /// QUIT.
    pub fn quit(mut self) {
        let _ = self.cmd("QUIT");
    }
}

/// A small message with a unique Message-ID `<tag@client.test>` and a body line naming `tag`.
pub fn message(subject: &str, tag: &str) -> String {
    format!(
        "From: Sender <sender@relais.test>\nTo: someone@elsewhere.test\nSubject: {subject}\n\
         Message-ID: <{tag}@client.test>\nDate: Mon, 1 Jun 2026 10:00:00 +0000\n\n\
         Body of {tag}.\n.leading dot line\nLast line.\n"
    )
}

/// The value (first line, trimmed) of the first header `name` of a message.
pub fn header_value(message: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(message);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

// ------------------------------------------------------------------ a scripted SMTP peer

/// Chooses the reply to a RCPT: (connection number from 1, address) → reply line.
pub type RcptRule = Box<dyn Fn(usize, &str) -> String + Send + Sync>;
/// Chooses the reply after the message content: connection number → reply line.
pub type DataRule = Box<dyn Fn(usize) -> String + Send + Sync>;

/// How a [`FaultPeer`] behaves.
pub struct Script {
    /// The greeting line (a `421` one makes a mail host that is there but refuses service).
    pub greeting: String,
    /// EHLO keywords besides 8BITMIME (`DSN`).
    pub extensions: Vec<String>,
    /// The RCPT replies.
    pub rcpt: RcptRule,
    /// The reply after DATA's final dot.
    pub data: DataRule,
    /// Wait this long before that reply (a slow peer).
    pub data_delay: Duration,
}

impl Default for Script {
    /// Accepts everything at once.
    fn default() -> Self {
        Script {
            greeting: "220 fault.test ESMTP scripted peer".into(),
            extensions: Vec::new(),
            rcpt: Box::new(|_, _| "250 2.1.5 Ok".into()),
            data: Box::new(|conn| format!("250 2.0.0 Ok: queued as FAULT{conn}")),
            data_delay: Duration::ZERO,
        }
    }
}

/// A message a [`FaultPeer`] took.
#[derive(Debug, Clone)]
pub struct Taken {
    /// Transaction number (from 1, over all connections).
    pub conn: usize,
    /// The MAIL command line.
    pub mail: String,
    /// The RCPT command lines it accepted.
    pub rcpts: Vec<String>,
    /// The content, dot-stuffing undone.
    pub data: Vec<u8>,
    /// How many `BDAT` chunks it came in (0: with DATA).
    pub chunks: usize,
}

struct PeerState {
    script: Script,
    connections: AtomicUsize,
    /// MAIL commands so far: relais reuses connections, so attempts are counted by transaction.
    transactions: AtomicUsize,
    /// Every RCPT: (connection, command line, reply).
    rcpts: Mutex<Vec<(usize, String, String)>>,
    /// Every message that got a 2xx after its content.
    taken: Mutex<Vec<Taken>>,
    /// The address of every client that connected.
    clients: Mutex<Vec<SocketAddr>>,
}

/// An SMTP server in this process that answers as its [`Script`] says: the peer that defers,
/// refuses one recipient, or is slow.
pub struct FaultPeer {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<PeerState>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FaultPeer {
    /// Listens on `addr` (port 0: a free one).
    pub fn start(addr: SocketAddr, script: Script) -> FaultPeer {
        let listener =
            TcpListener::bind(addr).unwrap_or_else(|e| panic!("fault peer on {addr}: {e}"));
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(PeerState {
            script,
            connections: AtomicUsize::new(0),
            transactions: AtomicUsize::new(0),
            rcpts: Mutex::new(Vec::new()),
            taken: Mutex::new(Vec::new()),
            clients: Mutex::new(Vec::new()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (st, stop2) = (state.clone(), stop.clone());
        let thread = thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, client)) => {
                        st.clients.lock().unwrap().push(client);
                        let conn = st.connections.fetch_add(1, Ordering::SeqCst) + 1;
                        let st = st.clone();
                        thread::spawn(move || {
                            let _ = s.set_nonblocking(false);
                            let _ = serve_fault(s, conn, &st);
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FaultPeer {
            addr,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// On a free port of 127.0.0.1.
    pub fn local(script: Script) -> FaultPeer {
        FaultPeer::start(SocketAddr::from(([127, 0, 0, 1], 0)), script)
    }

    /// `[host]:port` for a route to it, naming it `host` (which DNS must resolve to
    /// 127.0.0.1).
    pub fn hop(&self, host: &str) -> String {
        format!("[{host}]:{}", self.addr.port())
    }

    /// The addresses clients connected from.
    pub fn clients(&self) -> Vec<SocketAddr> {
        self.state.clients.lock().unwrap().clone()
    }

    /// Connections so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Transactions (MAIL commands) so far: the delivery attempts that reached this peer.
    pub fn transactions(&self) -> usize {
        self.state.transactions.load(Ordering::SeqCst)
    }

    /// Every RCPT so far: (connection, command line, reply).
    pub fn rcpts(&self) -> Vec<(usize, String, String)> {
        self.state.rcpts.lock().unwrap().clone()
    }

    /// The messages taken so far.
    pub fn taken(&self) -> Vec<Taken> {
        self.state.taken.lock().unwrap().clone()
    }

    /// Waits until at least `n` messages were taken.
    #[track_caller]
    pub fn wait_taken(&self, n: usize) -> Vec<Taken> {
        wait_until(&format!("{n} message(s) at the fault peer"), WAIT, || {
            let t = self.taken();
            (t.len() >= n).then_some(t)
        })
    }
}

impl Drop for FaultPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if thread::panicking() {
            eprintln!(
                "--- fault peer {}: {} connection(s), RCPTs {:?}, {} message(s) ---",
                self.addr,
                self.connections(),
                self.rcpts(),
                self.taken().len()
            );
        }
    }
}

/// Serves one connection. The script's rules are given the transaction number (from 1, over
/// all connections), which is also what [`Taken::conn`] records.
fn serve_fault(stream: TcpStream, _conn: usize, st: &PeerState) -> io::Result<()> {
    let mut conn = 0;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    w.write_all(format!("{}\r\n", st.script.greeting).as_bytes())?;
    if !st.script.greeting.starts_with('2') {
        return Ok(());
    }
    let mut mail = String::new();
    let mut rcpts: Vec<String> = Vec::new();
    // The BDAT chunks of the message so far, and how many.
    let (mut chunked, mut chunks) = (Vec::new(), 0);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        let reply = if upper.starts_with("EHLO") {
            let mut kw = vec!["fault.test".to_string(), "8BITMIME".to_string()];
            kw.extend(st.script.extensions.iter().cloned());
            let n = kw.len();
            kw.iter()
                .enumerate()
                .map(|(i, k)| format!("250{}{k}", if i + 1 == n { ' ' } else { '-' }))
                .collect::<Vec<_>>()
                .join("\r\n")
        } else if upper.starts_with("HELO") || upper == "NOOP" {
            "250 fault.test".into()
        } else if upper.starts_with("MAIL FROM:") {
            conn = st.transactions.fetch_add(1, Ordering::SeqCst) + 1;
            mail = cmd.clone();
            rcpts.clear();
            "250 2.1.0 Ok".into()
        } else if upper.starts_with("RCPT TO:") {
            let addr = cmd["RCPT TO:".len()..]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .trim_matches(['<', '>'])
                .to_string();
            let reply = (st.script.rcpt)(conn, &addr);
            st.rcpts
                .lock()
                .unwrap()
                .push((conn, cmd.clone(), reply.clone()));
            if reply.starts_with('2') {
                rcpts.push(cmd.clone());
            }
            reply
        } else if upper == "DATA" {
            if rcpts.is_empty() {
                "503 5.5.1 No valid recipients".into()
            } else {
                w.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")?;
                let mut data = Vec::new();
                loop {
                    let mut l = Vec::new();
                    if r.read_until(b'\n', &mut l)? == 0 {
                        return Ok(());
                    }
                    if l == b".\r\n" || l == b".\n" {
                        break;
                    }
                    let body = if l.starts_with(b".") { &l[1..] } else { &l[..] };
                    data.extend_from_slice(body);
                }
                message_end(st, conn, &mail, &mut rcpts, data, 0)
            }
        } else if let Some(args) = upper.strip_prefix("BDAT ") {
            // RFC 3030: the chunk is read whole; `LAST` ends the message.
            let mut words = args.split_whitespace();
            let size: usize = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            let last = words.next() == Some("LAST");
            let at = chunked.len();
            chunked.resize(at + size, 0);
            r.read_exact(&mut chunked[at..])?;
            chunks += 1;
            if !last {
                "250 2.0.0 chunk taken".into()
            } else {
                let data = std::mem::take(&mut chunked);
                message_end(
                    st,
                    conn,
                    &mail,
                    &mut rcpts,
                    data,
                    std::mem::take(&mut chunks),
                )
            }
        } else if upper == "STARTTLS" {
            // A peer whose TLS is broken: it agrees, then answers the handshake with text.
            w.write_all(b"220 2.0.0 Ready to start TLS\r\n")?;
            w.write_all(b"this is not TLS\r\n")?;
            return Ok(());
        } else if upper == "RSET" {
            rcpts.clear();
            "250 2.0.0 Ok".into()
        } else if upper == "QUIT" {
            w.write_all(b"221 2.0.0 Bye\r\n")?;
            return Ok(());
        } else {
            "502 5.5.2 Command not recognized".into()
        };
        w.write_all(format!("{reply}\r\n").as_bytes())?;
    }
}

/// The end of a message's content (DATA's dot, or `BDAT … LAST` after `chunks` chunks): the
/// script's reply, the message kept when it is positive.
fn message_end(
    st: &PeerState,
    conn: usize,
    mail: &str,
    rcpts: &mut Vec<String>,
    data: Vec<u8>,
    chunks: usize,
) -> String {
    thread::sleep(st.script.data_delay);
    let reply = (st.script.data)(conn);
    if reply.starts_with('2') {
        st.taken.lock().unwrap().push(Taken {
            conn,
            mail: mail.to_string(),
            rcpts: std::mem::take(rcpts),
            data,
            chunks,
        });
    }
    rcpts.clear();
    reply
}

// ------------------------------------------------------------------ aiosmtpd

/// An aiosmtpd server (`tests/delivery/py/peer.py`) writing what it receives to a directory:
/// `N.eml` (the content) and `N.json` (envelope, TLS), one pair per transaction.
pub struct PyPeer {
    _process: Daemon,
    /// Where the messages go.
    pub outdir: PathBuf,
}

impl PyPeer {
    /// Starts it on `addr`, with STARTTLS when a certificate and key are given.
    pub fn start(addr: SocketAddr, outdir: &Path, tls: Option<(&Path, &Path)>) -> PyPeer {
        let check = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .status();
        assert!(
            check.is_ok_and(|s| s.success()),
            "python3 with aiosmtpd is needed: pip install aiosmtpd"
        );
        fs::create_dir_all(outdir).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/delivery/py/peer.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--outdir")
            .arg(outdir)
            .env("PYTHONDONTWRITEBYTECODE", "1");
        if let Some((cert, key)) = tls {
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        let process = Daemon::start("aiosmtpd peer", cmd, 1, START_TIMEOUT);
        PyPeer {
            _process: process,
            outdir: outdir.to_path_buf(),
        }
    }

    /// The transactions so far: (envelope JSON, content).
    pub fn messages(&self) -> Vec<(serde_json::Value, Vec<u8>)> {
        let mut out = Vec::new();
        for n in 1.. {
            let json = self.outdir.join(format!("{n}.json"));
            let eml = self.outdir.join(format!("{n}.eml"));
            let (Ok(j), Ok(m)) = (fs::read(&json), fs::read(&eml)) else {
                break;
            };
            out.push((serde_json::from_slice(&j).expect("envelope JSON"), m));
        }
        out
    }

    /// Waits for `n` transactions.
    #[track_caller]
    pub fn wait_messages(&self, n: usize) -> Vec<(serde_json::Value, Vec<u8>)> {
        wait_until(&format!("{n} message(s) at aiosmtpd"), WAIT, || {
            let m = self.messages();
            (m.len() >= n).then_some(m)
        })
    }
}

/// A self-signed certificate for `name`, written to `dir` as (cert.pem, key.pem).
pub fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("certificate");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    fs::write(&cert, ck.cert.pem()).unwrap();
    fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

// ------------------------------------------------------------------ Postfix

pub use crate::common::postfix::Postfix;

/// A private Postfix instance (see PERFORMANCE.md "Running the peers"): smtpd on port 25 of
/// one 127.0.0.x (an MX record names no port), mail for one virtual domain into one Maildir,
/// `vmail/box/`, as nobody; 127.0.0.0/8 may relay.
pub fn postfix(ip: Ipv4Addr, domain: &str) -> Postfix {
    Postfix::start(&crate::common::postfix::Setup {
        listen: SocketAddrV4::new(ip, 25),
        domain,
        mynetworks: "127.0.0.0/8",
        users: None,
        tls: None,
        prefix: "relais-postfix-",
    })
}

// ------------------------------------------------------------------ DSN

/// A delivery status notification, parsed with mail-parser.
#[derive(Debug)]
pub struct Dsn {
    /// `Subject`.
    pub subject: String,
    /// The root content type, `type/subtype`.
    pub content_type: String,
    /// Its `report-type` parameter.
    pub report_type: String,
    /// The per-message fields of `message/delivery-status`.
    pub message_fields: Vec<(String, String)>,
    /// The per-recipient field groups.
    pub recipients: Vec<Vec<(String, String)>>,
    /// The content type of the third part.
    pub returned_type: String,
    /// The third part's content (for `message/rfc822`, the whole returned message).
    pub returned: String,
    /// The human-readable first part.
    pub notification: String,
}

/// The value of `name` among `fields` (case-insensitive name).
pub fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn content_type_of(part: &mail_parser::MessagePart<'_>) -> (String, Option<String>) {
    use mail_parser::MimeHeaders;
    match part.content_type() {
        Some(ct) => (
            format!(
                "{}/{}",
                ct.ctype().to_ascii_lowercase(),
                ct.subtype().unwrap_or("").to_ascii_lowercase()
            ),
            ct.attribute("report-type").map(str::to_string),
        ),
        None => ("text/plain".into(), None),
    }
}

impl Dsn {
    /// Parses a report as delivered to a Maildir (trace headers first); panics with the text
    /// when it is not a `multipart/report` of three parts.
    #[track_caller]
    pub fn parse(raw: &[u8]) -> Dsn {
        let text = String::from_utf8_lossy(raw).into_owned();
        let msg = mail_parser::MessageParser::default()
            .parse(raw)
            .unwrap_or_else(|| panic!("mail-parser cannot read the report:\n{text}"));
        let root = msg.root_part();
        let (content_type, report_type) = content_type_of(root);
        let ids = root
            .sub_parts()
            .unwrap_or_else(|| panic!("the report is not multipart:\n{text}"))
            .to_vec();
        assert_eq!(ids.len(), 3, "a report has three parts:\n{text}");
        let parts: Vec<&mail_parser::MessagePart<'_>> =
            ids.iter().map(|&i| &msg.parts[i as usize]).collect();
        let (status_type, _) = content_type_of(parts[1]);
        assert_eq!(status_type, "message/delivery-status", "{text}");
        let status = String::from_utf8_lossy(parts[1].contents()).into_owned();
        let mut groups = relais_diag::explain::bounce::field_groups(&status);
        assert!(groups.len() >= 2, "no per-recipient fields:\n{status}");
        let message_fields = groups.remove(0);
        let (returned_type, _) = content_type_of(parts[2]);
        let returned = match parts[2].message() {
            Some(m) => String::from_utf8_lossy(m.raw_message()).into_owned(),
            None => String::from_utf8_lossy(parts[2].contents()).into_owned(),
        };
        Dsn {
            subject: msg.subject().unwrap_or_default().to_string(),
            content_type,
            report_type: report_type.unwrap_or_default(),
            message_fields,
            recipients: groups,
            returned_type,
            returned,
            notification: parts[0].text_contents().unwrap_or_default().to_string(),
        }
    }

    /// The original message's queue id (`X-Relais-Queue-ID`).
    pub fn queue_id(&self) -> &str {
        field(&self.message_fields, "X-Relais-Queue-ID").unwrap_or("")
    }

    /// The per-recipient fields of `rcpt` (by `Final-Recipient`).
    #[track_caller]
    pub fn recipient(&self, rcpt: &str) -> &[(String, String)] {
        self.recipients
            .iter()
            .find(|g| {
                field(g, "Final-Recipient")
                    .is_some_and(|v| v.eq_ignore_ascii_case(&format!("rfc822; {rcpt}")))
            })
            .unwrap_or_else(|| panic!("no Final-Recipient {rcpt} in {:?}", self.recipients))
    }
}
