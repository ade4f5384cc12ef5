//! Scripted SMTP servers with one fault each, the test CA, the DNS fixture, and a way to run
//! `relais probe` against them.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use relais_dns::fixture::{Server as DnsServer, Zone};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use serde_json::Value;

/// The name every zoo server announces, and its PTR.
pub const HOST: &str = "mx.zoo.test";

/// The zone of the zoo: MX zoo.test → mx.zoo.test → 127.0.0.1, the PTR back, and the
/// domain's SPF (the MX may send, `-all`) and DMARC (`p=reject`, reports) records.
pub fn zone() -> Zone {
    Zone::new()
        .mx("zoo.test", 10, HOST)
        .a(HOST, "127.0.0.1")
        .ptr("127.0.0.1", HOST)
        .txt("zoo.test", "v=spf1 mx -all")
        .txt(
            "_dmarc.zoo.test",
            "v=DMARC1; p=reject; rua=mailto:dmarc@zoo.test",
        )
}

/// The fixture DNS server with [`zone`].
pub fn dns() -> DnsServer {
    DnsServer::start(zone()).expect("fixture DNS server")
}

/// Which certificate a server presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertKind {
    /// Signed by the test CA, for mx.zoo.test, valid now.
    Good,
    /// Self-signed, for mx.zoo.test.
    SelfSigned,
    /// Signed by the test CA, expired in 2020.
    Expired,
    /// Signed by the test CA, for another name.
    WrongName,
}

/// The test CA, and a certificate of each kind.
pub struct Pki {
    /// PEM file of the CA, for `--ca-file`.
    pub ca_file: PathBuf,
    configs: HashMap<&'static str, Arc<ServerConfig>>,
    /// PEM chain and key of the good certificate, for `relais serve`.
    pub good_chain: PathBuf,
    pub good_key: PathBuf,
    _dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
            date_time_ymd,
        };
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "relais zoo CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf = |name: &str, expired: bool, self_signed: bool| {
            let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
            params.distinguished_name.push(DnType::CommonName, name);
            if expired {
                params.not_before = date_time_ymd(2019, 1, 1);
                params.not_after = date_time_ymd(2020, 1, 1);
            }
            let key = KeyPair::generate().unwrap();
            let cert = if self_signed {
                params.self_signed(&key).unwrap()
            } else {
                params.signed_by(&key, &ca).unwrap()
            };
            (cert, key)
        };
        let mut configs = HashMap::new();
        let mut good_files = None;
        for (kind, name, expired, self_signed) in [
            ("good", HOST, false, false),
            ("self", HOST, false, true),
            ("expired", HOST, true, false),
            ("wrong", "other.example.test", false, false),
        ] {
            let (cert, key) = leaf(name, expired, self_signed);
            let mut chain = vec![cert.der().clone()];
            if !self_signed {
                chain.push(ca.der().clone());
            }
            if kind == "good" {
                let chain_file = dir.path().join("chain.pem");
                let key_file = dir.path().join("key.pem");
                std::fs::write(&chain_file, format!("{}{}", cert.pem(), ca.pem())).unwrap();
                std::fs::write(&key_file, key.serialize_pem()).unwrap();
                good_files = Some((chain_file, key_file));
            }
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
            let config = ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                chain.into_iter().map(CertificateDer::into_owned).collect(),
                key,
            )
            .unwrap();
            configs.insert(kind, Arc::new(config));
        }
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        let (good_chain, good_key) = good_files.unwrap();
        Pki {
            ca_file,
            configs,
            good_chain,
            good_key,
            _dir: dir,
        }
    }

    fn config(&self, kind: CertKind) -> Arc<ServerConfig> {
        let key = match kind {
            CertKind::Good => "good",
            CertKind::SelfSigned => "self",
            CertKind::Expired => "expired",
            CertKind::WrongName => "wrong",
        };
        self.configs[key].clone()
    }
}

/// How a zoo server behaves. The default is a clean server.
#[derive(Clone)]
pub struct Behaviour {
    pub banner_delay: Duration,
    pub silent: bool,
    pub banner: String,
    pub tls: Option<Arc<ServerConfig>>,
    pub open_relay: bool,
    pub catch_all: bool,
    pub greylist: bool,
    pub close_at_rcpt: bool,
    pub vrfy_exposed: bool,
    /// TLS from the first byte (port 465's way), before the banner.
    pub implicit_tls: bool,
}

impl Behaviour {
    /// A clean server with the given certificate.
    pub fn clean(pki: &Pki, cert: CertKind) -> Behaviour {
        Behaviour {
            banner_delay: Duration::ZERO,
            silent: false,
            banner: format!("220 {HOST} ESMTP zoo"),
            tls: Some(pki.config(cert)),
            open_relay: false,
            catch_all: false,
            greylist: false,
            close_at_rcpt: false,
            vrfy_exposed: false,
            implicit_tls: false,
        }
    }
}

/// A running zoo server; stopped when dropped.
pub struct Zoo {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Zoo {
    pub fn start(behaviour: Behaviour) -> Zoo {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let thread = thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let behaviour = behaviour.clone();
                let seen = seen.clone();
                thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(20)));
                    let _ = session(stream, &behaviour, &seen);
                });
            }
        });
        Zoo {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Zoo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => &s.sock,
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

fn conn_tcp(conn: Conn) -> io::Result<TcpStream> {
    match conn {
        Conn::Plain(tcp) => Ok(tcp),
        Conn::Tls(_) => Err(io::ErrorKind::InvalidInput.into()),
    }
}

fn read_line(conn: &mut Conn) -> io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        if conn.read(&mut byte)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&line)
        .trim_end_matches('\r')
        .to_string())
}

fn say(conn: &mut Conn, text: &str) -> io::Result<()> {
    conn.write_all(format!("{text}\r\n").as_bytes())?;
    conn.flush()
}

fn session(
    stream: TcpStream,
    b: &Behaviour,
    seen: &Mutex<HashMap<String, Instant>>,
) -> io::Result<()> {
    let mut conn = Conn::Plain(stream);
    if b.implicit_tls {
        let server = ServerConnection::new(b.tls.clone().unwrap()).map_err(io::Error::other)?;
        conn = Conn::Tls(Box::new(StreamOwned::new(server, conn_tcp(conn)?)));
    }
    if b.silent {
        let mut sink = [0u8; 256];
        while conn.read(&mut sink)? > 0 {}
        return Ok(());
    }
    thread::sleep(b.banner_delay);
    say(&mut conn, &b.banner)?;
    if !b.banner.starts_with("220") {
        let _ = conn.tcp().shutdown(Shutdown::Both);
        return Ok(());
    }
    let mut sender = String::new();
    loop {
        let line = read_line(&mut conn)?;
        let verb = line
            .split([' ', ':'])
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let argument = line
            .split_once('<')
            .and_then(|(_, rest)| rest.split_once('>'))
            .map(|(a, _)| a.to_ascii_lowercase())
            .unwrap_or_default();
        match verb.as_str() {
            "EHLO" => {
                let tls = b.tls.is_some() && matches!(conn, Conn::Plain(_));
                say(&mut conn, &format!("250-{HOST}"))?;
                say(&mut conn, "250-PIPELINING")?;
                say(&mut conn, "250-SIZE 10240000")?;
                if tls {
                    say(&mut conn, "250-STARTTLS")?;
                }
                say(&mut conn, "250 ENHANCEDSTATUSCODES")?;
            }
            "HELO" => say(&mut conn, &format!("250 {HOST}"))?,
            "STARTTLS" if b.tls.is_some() => {
                say(&mut conn, "220 2.0.0 Ready to start TLS")?;
                let Conn::Plain(tcp) = conn else {
                    return Ok(());
                };
                let server =
                    ServerConnection::new(b.tls.clone().unwrap()).map_err(io::Error::other)?;
                conn = Conn::Tls(Box::new(StreamOwned::new(server, tcp)));
            }
            "MAIL" => {
                sender = argument;
                say(&mut conn, "250 2.1.0 Ok")?;
            }
            "RCPT" => {
                if b.close_at_rcpt {
                    let _ = conn.tcp().shutdown(Shutdown::Both);
                    return Ok(());
                }
                if b.greylist {
                    let first = *seen
                        .lock()
                        .unwrap()
                        .entry(sender.clone())
                        .or_insert_with(Instant::now);
                    if first.elapsed() < Duration::from_millis(500) {
                        say(&mut conn, "450 4.7.1 Greylisted, try again later")?;
                        continue;
                    }
                }
                let (local, domain) = argument.rsplit_once('@').unwrap_or((&argument, ""));
                // Every domain of the tests (zoo.test, good.test, ...) is local.
                let reply = if domain.ends_with(".test") {
                    if b.catch_all || local == "postmaster" || local == "alice" {
                        "250 2.1.5 Ok"
                    } else {
                        "550 5.1.1 No such user here"
                    }
                } else if b.open_relay {
                    "250 2.1.5 Ok"
                } else {
                    "554 5.7.1 Relay access denied"
                };
                say(&mut conn, reply)?;
            }
            "VRFY" if b.vrfy_exposed => say(&mut conn, "250 2.0.0 <postmaster@zoo.test>")?,
            "VRFY" => say(&mut conn, "252 2.0.0 Cannot VRFY user")?,
            "EXPN" => say(&mut conn, "502 5.5.1 EXPN not available")?,
            "DATA" => {
                say(&mut conn, "354 End data with <CR><LF>.<CR><LF>")?;
                while read_line(&mut conn)? != "." {}
                say(&mut conn, "250 2.0.0 Ok: queued as ZOO1")?;
            }
            "RSET" | "NOOP" => say(&mut conn, "250 2.0.0 Ok")?,
            "QUIT" => {
                say(&mut conn, "221 2.0.0 Bye")?;
                return Ok(());
            }
            _ => say(&mut conn, "500 5.5.2 Error: command not recognized")?,
        }
    }
}

/// One probe run.
#[derive(Debug)]
pub struct Probe {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Probe {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", self.stdout, self.stderr))
    }

    /// The (check, level) pairs of every verdict that is not `ok`: the route's, the sender
    /// authentication records', then every address's.
    pub fn problems(&self) -> Vec<(String, String)> {
        let json = self.json();
        let mut out: Vec<(String, String)> = Vec::new();
        let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
        let hosts = list(&json["hosts"]);
        let verdicts = list(&json["route_verdicts"])
            .into_iter()
            .chain(list(&json["sender_auth"]["verdicts"]))
            .chain(hosts.iter().flat_map(|h| list(&h["verdicts"])));
        for v in verdicts {
            if v["level"] != "ok" {
                out.push((
                    v["check"].as_str().unwrap_or_default().to_string(),
                    v["level"].as_str().unwrap_or_default().to_string(),
                ));
            }
        }
        out
    }

    /// The reason of the first verdict named `check`.
    pub fn reason(&self, check: &str) -> String {
        let json = self.json();
        json["hosts"][0]["verdicts"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(json["route_verdicts"].as_array().into_iter().flatten())
            .chain(
                json["sender_auth"]["verdicts"]
                    .as_array()
                    .into_iter()
                    .flatten(),
            )
            .find(|v| v["check"] == check)
            .and_then(|v| v["reason"].as_str())
            .unwrap_or_default()
            .to_string()
    }
}

/// Runs `relais probe TARGET ARGS --json` with the zoo's DNS and CA.
pub fn probe(dns: &DnsServer, pki: &Pki, target: &str, args: &[&str]) -> Probe {
    run_probe(dns, pki, target, &[&["--json"], args].concat())
}

/// Runs `relais probe TARGET ARGS` (text) with the zoo's DNS and CA.
pub fn probe_text(dns: &DnsServer, pki: &Pki, target: &str, args: &[&str]) -> Probe {
    run_probe(dns, pki, target, args)
}

fn run_probe(dns: &DnsServer, pki: &Pki, target: &str, args: &[&str]) -> Probe {
    let output = Command::new(env!("CARGO_BIN_EXE_relais"))
        .arg("probe")
        .arg(target)
        .args(["--resolver", &dns.addr().to_string(), "--dns-timeout", "1"])
        .args(["--ca-file", pki.ca_file.to_str().unwrap()])
        .args(["--helo", "probe.test"])
        .args(if args.contains(&"--timeout") {
            &[][..]
        } else {
            &["--timeout", "5"][..]
        })
        .args(args)
        .env_remove("RELAIS_RESOLVER")
        .output()
        .expect("run relais probe");
    Probe {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
