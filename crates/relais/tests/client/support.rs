//! Support for the client tests: real servers on 127.0.0.1 (`relais serve`, an aiosmtpd script),
//! a test CA, and runners for `relais send`, `relais shell` and swaks with a time limit.
//!
//! Servers are stopped with SIGTERM (by PID) when dropped; if the test is panicking, their log
//! is printed first. A missing tool (python3 with aiosmtpd, swaks) fails the test with a message
//! that says what to install: nothing is skipped silently.

use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::process::{self, require};
use crate::common::wait::{self, free_port};
use crate::common::{RELAIS, serve_command};

/// How long a server may take to say where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long any client run may take before the test gives up on it.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a delivered message may take to show up.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The relais binary under test.
pub fn relais_bin() -> &'static str {
    RELAIS
}

/// A fresh temporary directory.
pub fn tempdir() -> tempfile::TempDir {
    wait::tempdir("relais-client-test-")
}

/// A server process that announced `listening on 127.0.0.1:PORT` on stderr (see
/// [`process::Daemon`]: drained, stopped by PID when dropped).
pub struct Daemon {
    /// The process.
    pub process: process::Daemon,
    /// The port it listens on.
    pub port: u16,
}

impl Daemon {
    /// Starts `cmd` and waits for its `listening on 127.0.0.1:PORT` line.
    pub fn start(name: &'static str, cmd: Command) -> Daemon {
        let process = process::Daemon::start(name, cmd, 1, START_TIMEOUT);
        let port = process.addr().port();
        Daemon { process, port }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        self.process.log()
    }
}

/// A running `relais serve` with its own data directory.
pub struct Relais {
    /// The process.
    pub daemon: Daemon,
    /// Its `data_dir`.
    pub data_dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl Relais {
    /// A server for `test.example` whose local users are `users` (empty: every local part).
    pub fn start(users: &[&str]) -> Relais {
        let dir = tempdir();
        let data_dir = dir.path().join("data");
        let users: Vec<String> = users.iter().map(|u| format!("{u:?}")).collect();
        let config = format!(
            "hostname = \"mx.test.example\"\n\
             data_dir = {data:?}\n\
             local_domains = [\"test.example\"]\n\n\
             [[listener]]\n\
             address = \"127.0.0.1:0\"\n\n\
             [limits]\n\
             max_message_size = 1000000\n\n\
             [local]\n\
             users = [{users}]\n",
            data = data_dir.display().to_string(),
            users = users.join(", "),
        );
        let config_path = dir.path().join("relais.toml");
        fs::write(&config_path, config).expect("write the configuration");
        let cmd = serve_command(&config_path, dir.path());
        Relais {
            daemon: Daemon::start("relais serve", cmd),
            data_dir,
            _dir: dir,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.daemon.addr()
    }

    /// Waits until `user`'s Maildir holds `count` messages and returns them, oldest first.
    pub fn mailbox(&self, user: &str, count: usize) -> Vec<String> {
        let dir = self.data_dir.join("mail").join(user).join("new");
        wait_for_files(&dir, "", count, &self.daemon)
    }
}

/// Waits until `dir` holds `count` files whose name ends with `suffix`; returns their contents
/// in name order.
fn wait_for_files(dir: &Path, suffix: &str, count: usize, daemon: &Daemon) -> Vec<String> {
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    loop {
        let mut names: Vec<PathBuf> = fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.to_string_lossy().ends_with(suffix))
                    .collect()
            })
            .unwrap_or_default();
        if names.len() >= count {
            names.sort();
            return names
                .iter()
                .map(|p| String::from_utf8_lossy(&fs::read(p).unwrap()).into_owned())
                .collect();
        }
        if Instant::now() > deadline {
            panic!(
                "{} holds {} of the {count} expected messages\n--- server log ---\n{}",
                dir.display(),
                names.len(),
                daemon.log()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Fails the test unless python3 can import aiosmtpd.
fn require_aiosmtpd() {
    require(
        "python3",
        &["-c", "import aiosmtpd"],
        "these tests need python3 with aiosmtpd: `pip install aiosmtpd` (PyPI), \
         or the Debian package python3-aiosmtpd",
    );
}

/// Fails the test unless swaks runs.
pub fn require_swaks() {
    require(
        "swaks",
        &["--version"],
        "these tests need swaks (Debian package `swaks`; TLS needs `libnet-ssleay-perl`)",
    );
}

/// How to set up the aiosmtpd server.
#[derive(Default)]
pub struct PyOptions<'a> {
    /// Offer STARTTLS (or, with `implicit_tls`, TLS from the first byte) with these certificates.
    pub tls: Option<&'a Certs>,
    /// TLS on connect instead of STARTTLS.
    pub implicit_tls: bool,
    /// `user:password` for AUTH PLAIN and LOGIN.
    pub auth: Option<&'a str>,
    /// Offer AUTH in clear text too.
    pub auth_in_clear: bool,
}

/// A running aiosmtpd (`tests/client/py/smtpd.py`).
pub struct PyServer {
    /// The process.
    pub daemon: Daemon,
    outdir: PathBuf,
    _dir: tempfile::TempDir,
}

impl PyServer {
    /// Starts the script with `opts`.
    pub fn start(opts: PyOptions) -> PyServer {
        require_aiosmtpd();
        let dir = tempdir();
        let outdir = dir.path().join("out");
        fs::create_dir(&outdir).unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/client/py/smtpd.py");
        let mut cmd = Command::new("python3");
        cmd.arg("-u").arg(script).arg("--outdir").arg(&outdir);
        if let Some(certs) = opts.tls {
            cmd.arg("--cert")
                .arg(&certs.chain)
                .arg("--key")
                .arg(&certs.key);
            if opts.implicit_tls {
                cmd.arg("--implicit-tls");
            }
        }
        if let Some(auth) = opts.auth {
            cmd.arg("--auth").arg(auth);
        }
        if opts.auth_in_clear {
            cmd.arg("--auth-in-clear");
        }
        PyServer {
            daemon: Daemon::start("aiosmtpd", cmd),
            outdir,
            _dir: dir,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.daemon.addr()
    }

    /// Waits for `count` accepted messages; returns them with their envelopes (JSON).
    pub fn messages(&self, count: usize) -> Vec<(String, serde_json::Value)> {
        let bodies = wait_for_files(&self.outdir, ".eml", count, &self.daemon);
        (1..=bodies.len())
            .zip(bodies)
            .map(|(i, body)| {
                let env = fs::read_to_string(self.outdir.join(format!("{i}.json"))).unwrap();
                (body, serde_json::from_str(&env).unwrap())
            })
            .collect()
    }

    /// How many messages were accepted so far.
    pub fn count(&self) -> usize {
        fs::read_dir(&self.outdir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                    .count()
            })
            .unwrap_or(0)
    }
}

pub use crate::common::certs::Certs;

impl Certs {
    /// A test CA and a server certificate it signed for `localhost` and 127.0.0.1.
    pub fn new() -> Certs {
        Certs::signed_by("relais test CA", "localhost", &[Ipv4Addr::LOCALHOST.into()])
    }
}

pub use crate::common::process::Run;

/// Runs `program args` with `stdin` (closed after) and a time limit.
pub fn run(program: &str, args: &[&str], stdin: &[u8]) -> Run {
    let mut cmd = Command::new(program);
    cmd.args(args).env("NO_COLOR", "1");
    process::run(cmd, Some(stdin), RUN_TIMEOUT)
}

/// `relais ARGS` with empty stdin.
pub fn relais(args: &[&str]) -> Run {
    run(relais_bin(), args, b"")
}

/// `relais send --server SERVER --timeout 10 ARGS` (no `--timeout 10` when ARGS has one).
pub fn send(server: &str, args: &[&str]) -> Run {
    relais(&process::send_args(server, args))
}

/// `swaks --server SERVER --timeout 10 ARGS`.
pub fn swaks(server: &str, args: &[&str]) -> Run {
    require_swaks();
    run("swaks", &process::swaks_args(server, args), b"")
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
pub fn closed_port() -> u16 {
    free_port()
}
