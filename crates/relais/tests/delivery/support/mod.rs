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

mod dsn;
mod fault_peer;
mod peers;
mod smtp;
pub use dsn::*;
pub use fault_peer::*;
pub use peers::*;
pub use smtp::*;

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
