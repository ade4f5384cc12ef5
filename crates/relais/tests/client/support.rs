//! Support for the client tests: real servers on 127.0.0.1 (`relais serve`, an aiosmtpd script),
//! a test CA, and runners for `relais send`, `relais shell` and swaks with a time limit.
//!
//! Servers are stopped with SIGTERM (by PID) when dropped; if the test is panicking, their log
//! is printed first. A missing tool (python3 with aiosmtpd, swaks) fails the test with a message
//! that says what to install: nothing is skipped silently.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

/// How long a server may take to say where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long any client run may take before the test gives up on it.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a delivered message may take to show up.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The relais binary under test.
pub fn relais_bin() -> &'static str {
    env!("CARGO_BIN_EXE_relais")
}

/// A fresh temporary directory.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("relais-client-test-")
        .tempdir()
        .expect("create a temporary directory")
}

/// A server process that announced `listening on 127.0.0.1:PORT` on stderr.
pub struct Daemon {
    name: &'static str,
    child: Child,
    /// The port it listens on.
    pub port: u16,
    log: Arc<Mutex<String>>,
}

impl Daemon {
    /// Starts `cmd` and waits for its `listening on 127.0.0.1:PORT` line, draining stderr from
    /// then on so the server never blocks on a full pipe.
    pub fn start(name: &'static str, mut cmd: Command) -> Daemon {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let thread_log = Arc::clone(&log);
        thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = listening_port(&line)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(port);
                }
                let mut log = thread_log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(port) => Daemon {
                name,
                child,
                port,
                log,
            },
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                thread::sleep(Duration::from_millis(100));
                panic!(
                    "{name} did not say `listening on 127.0.0.1:PORT` (exit: {status:?})\n--- log ---\n{}",
                    log.lock().unwrap()
                );
            }
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

/// The port in `... listening on 127.0.0.1:PORT ...`.
fn listening_port(line: &str) -> Option<u16> {
    let rest = line.split("listening on 127.0.0.1:").nth(1)?;
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("--- {} log ---\n{}", self.name, self.log());
        }
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on the PID of a child we started and have not reaped.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
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
        let mut cmd = Command::new(relais_bin());
        cmd.arg("serve")
            .arg("--config")
            .arg(&config_path)
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .env_remove("RELAIS_LOG");
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
    let ok = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "these tests need python3 with aiosmtpd: `pip install aiosmtpd` (PyPI), \
         or the Debian package python3-aiosmtpd"
    );
}

/// Fails the test unless swaks runs.
pub fn require_swaks() {
    let ok = Command::new("swaks")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "these tests need swaks (Debian package `swaks`; TLS needs `libnet-ssleay-perl`)"
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

/// A test CA and a server certificate it signed for `localhost` and 127.0.0.1, as PEM files.
pub struct Certs {
    /// The CA certificate (what `--tls-ca-path` trusts).
    pub ca: PathBuf,
    /// The server certificate followed by the CA's.
    pub chain: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
    _dir: tempfile::TempDir,
}

impl Certs {
    /// Generates the CA and the server certificate.
    pub fn new() -> Certs {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType,
        };
        let dir = tempdir();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "relais test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        leaf.subject_alt_names
            .push(SanType::IpAddress(Ipv4Addr::LOCALHOST.into()));
        leaf.distinguished_name
            .push(DnType::CommonName, "localhost");
        let leaf_key = KeyPair::generate().unwrap();
        let leaf_cert = leaf.signed_by(&leaf_key, &ca).unwrap();
        let certs = Certs {
            ca: dir.path().join("ca.pem"),
            chain: dir.path().join("chain.pem"),
            key: dir.path().join("key.pem"),
            _dir: dir,
        };
        fs::write(&certs.ca, ca.pem()).unwrap();
        fs::write(&certs.chain, format!("{}{}", leaf_cert.pem(), ca.pem())).unwrap();
        fs::write(&certs.key, leaf_key.serialize_pem()).unwrap();
        certs
    }
}

/// What a finished client run gave.
#[derive(Debug)]
pub struct Run {
    /// The exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Asserts the exit code, showing the output when it differs.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "exit code {} instead of {code}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// Asserts that stdout contains `text`.
    #[track_caller]
    pub fn expect_out(&self, text: &str) -> &Run {
        assert!(
            self.stdout.contains(text),
            "{text:?} not in the output\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs `program args` with `stdin` (closed after) and a time limit.
pub fn run(program: &str, args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(program)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let mut input = child.stdin.take().expect("piped stdin");
    let stdin = stdin.to_vec();
    let writer = thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let reader = |mut r: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = reader(Box::new(child.stdout.take().expect("piped stdout")));
    let err = reader(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{program} {args:?} ran longer than {RUN_TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// `relais ARGS` with empty stdin.
pub fn relais(args: &[&str]) -> Run {
    run(relais_bin(), args, b"")
}

/// `relais send --server SERVER --timeout 10 ARGS` (no `--timeout 10` when ARGS has one).
pub fn send(server: &str, args: &[&str]) -> Run {
    let mut all = vec!["send", "--server", server];
    if !args.contains(&"--timeout") {
        all.extend(["--timeout", "10"]);
    }
    all.extend_from_slice(args);
    relais(&all)
}

/// `swaks --server SERVER --timeout 10 ARGS`.
pub fn swaks(server: &str, args: &[&str]) -> Run {
    require_swaks();
    let mut all = vec!["--server", server, "--timeout", "10"];
    all.extend_from_slice(args);
    run("swaks", &all, b"")
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
