//! Support for the peer tests: the servers ([`Postfix`], [`PyServer`] for aiosmtpd,
//! [`Relais`] for `relais serve`), test certificates ([`Certs`]), the fixture DNS server, and
//! runners for `relais send`, `relais probe` and swaks with a time limit.
//!
//! Only 127.0.0.1 and free ports are used. Every process started here is stopped by its PID
//! (SIGTERM, then SIGKILL) when its handle is dropped, Postfix with `postfix -c DIR stop` (then
//! its master's PID if it stays); a failing test prints their logs.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

pub use relais_dns::fixture::{Server as Dns, Zone};
use serde_json::Value;

/// The relais binary under test.
pub const RELAIS: &str = env!("CARGO_BIN_EXE_relais");
/// How long a server may take to say where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long any client run may take before the test gives up on it.
const RUN_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a test waits for something that should happen soon (a delivery, a log line).
pub const WAIT: Duration = Duration::from_secs(30);
/// How long a stopped process may take to exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Polls `f` until it gives a value; panics naming `what` after `timeout`.
#[track_caller]
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(25));
    }
}

/// A new temporary directory (kept by the caller).
pub fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("create a temporary directory")
}

/// A port of 127.0.0.1 that is free now (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// The regular files in `dir`, sorted (none if it does not exist).
pub fn list_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Fails the test unless `program args` runs and succeeds; `hint` says what to install.
fn require(program: &str, args: &[&str], hint: &str) {
    let ok = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "{program} is needed: {hint}");
}

// ------------------------------------------------------------------ client runs

/// What a finished client run gave.
#[derive(Debug)]
pub struct Run {
    /// What it ran, for messages.
    pub what: String,
    /// The exit code (-1 when killed by a signal).
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
            "exit code {} instead of {code}\n{self}",
            self.code
        );
        self
    }

    /// Asserts that stdout contains `text`.
    #[track_caller]
    pub fn expect_out(&self, text: &str) -> &Run {
        assert!(
            self.stdout.contains(text),
            "{text:?} not in the output\n{self}"
        );
        self
    }

    /// Asserts that stdout does not contain `text`.
    #[track_caller]
    pub fn expect_no_out(&self, text: &str) -> &Run {
        assert!(
            !self.stdout.contains(text),
            "{text:?} in the output\n{self}"
        );
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "--- {} (exit {}) ---\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what, self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `program args` (stdin closed) with a time limit.
pub fn run(program: &str, args: &[&str]) -> Run {
    run_with(program, args, &[], None)
}

/// Runs `program args` with a time limit, extra environment variables `env`, and `stdin` as
/// its standard input (closed when `None`).
pub fn run_with(program: &str, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
    let mut child = Command::new(program)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("RELAIS_RESOLVER")
        .env_remove("RELAIS_PROBE_PASSWORD")
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(text.as_bytes())
            .expect("write standard input");
    }
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
    Run {
        what: format!("{program} {}", args.join(" ")),
        code: status.code().unwrap_or(-1),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// `relais send --server SERVER --timeout 10 ARGS` (no `--timeout 10` when ARGS has one).
pub fn send(server: &str, args: &[&str]) -> Run {
    let mut all = vec!["send", "--server", server];
    if !args.contains(&"--timeout") {
        all.extend(["--timeout", "10"]);
    }
    all.extend_from_slice(args);
    run(RELAIS, &all)
}

/// `swaks --server SERVER --timeout 10 ARGS`.
pub fn swaks(server: &str, args: &[&str]) -> Run {
    require(
        "swaks",
        &["--version"],
        "Debian package `swaks` (TLS needs `libnet-ssleay-perl`); scripts/deps.sh installs it",
    );
    let mut all = vec!["--server", server, "--timeout", "10"];
    all.extend_from_slice(args);
    run("swaks", &all)
}

/// A `relais probe --json` run.
pub struct Probe {
    /// The run.
    pub run: Run,
    /// Its JSON report.
    pub json: Value,
}

impl Probe {
    /// The verdicts of the first (only) address.
    pub fn verdicts(&self) -> Vec<Value> {
        self.json["hosts"][0]["verdicts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The verdicts named `check`, as `(level, reason)`.
    pub fn verdict(&self, check: &str) -> Vec<(String, String)> {
        self.verdicts()
            .iter()
            .filter(|v| v["check"] == check)
            .map(|v| {
                (
                    v["level"].as_str().unwrap_or("").to_string(),
                    v["reason"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    /// Asserts that `check` has exactly one verdict, of `level`, whose reason contains every
    /// one of `texts`.
    #[track_caller]
    pub fn expect(&self, check: &str, level: &str, texts: &[&str]) -> &Probe {
        let found = self.verdict(check);
        assert!(
            found.len() == 1 && found[0].0 == level && texts.iter().all(|t| found[0].1.contains(t)),
            "expected one {level} verdict `{check}` saying {texts:?}, found {found:?}\n{}",
            self.run
        );
        self
    }

    /// Every verdict that is not `ok`, as `(level, check)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        self.verdicts()
            .iter()
            .filter(|v| v["level"] != "ok")
            .map(|v| {
                (
                    v["level"].as_str().unwrap_or("").to_string(),
                    v["check"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    /// The result column of the first stage named `stage`.
    pub fn stage(&self, stage: &str) -> String {
        self.json["hosts"][0]["stages"]
            .as_array()
            .and_then(|s| s.iter().find(|r| r["stage"] == stage))
            .and_then(|r| r["result"].as_str())
            .unwrap_or("")
            .to_string()
    }

    /// The EHLO keywords (the last EHLO's).
    pub fn keywords(&self) -> Vec<String> {
        self.json["hosts"][0]["capabilities"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter_map(|c| c["keyword"].as_str().map(str::to_ascii_uppercase))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// `relais probe TARGET --json --resolver DNS --helo probe.test --timeout 10 ARGS`.
pub fn probe(dns: &Dns, target: &str, args: &[&str]) -> Probe {
    probe_with(dns, target, args, &[], None)
}

/// [`probe`] with extra environment variables and a standard input.
pub fn probe_with(
    dns: &Dns,
    target: &str,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
) -> Probe {
    let resolver = dns.addr().to_string();
    let mut all = vec![
        "probe",
        target,
        "--json",
        "--resolver",
        &resolver,
        "--dns-timeout",
        "1",
        "--helo",
        "probe.test",
    ];
    if !args.contains(&"--timeout") {
        all.extend(["--timeout", "10"]);
    }
    all.extend_from_slice(args);
    let run = run_with(RELAIS, &all, env, stdin);
    let json = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("relais probe did not print JSON ({e})\n{run}"));
    Probe { run, json }
}

/// Starts the fixture DNS server with `zone`.
pub fn dns(zone: Zone) -> Dns {
    Dns::start(zone).expect("start the fixture DNS server")
}

// ------------------------------------------------------------------ certificates

/// A server certificate and its key as PEM files, and the CA that signed it (if any).
pub struct Certs {
    /// The CA certificate to trust (`--ca-file`); the certificate itself when self-signed.
    pub ca: PathBuf,
    /// The server certificate, followed by the CA's when there is one.
    pub chain: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
    _dir: tempfile::TempDir,
}

impl Certs {
    /// A certificate for `name` signed by a fresh test CA.
    pub fn signed(name: &str) -> Certs {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "relais peers test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let mut leaf = CertificateParams::new(vec![name.to_string()]).unwrap();
        leaf.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = leaf.signed_by(&key, &ca).unwrap();
        Certs::write(
            &ca.pem(),
            &format!("{}{}", cert.pem(), ca.pem()),
            &key.serialize_pem(),
        )
    }

    /// A self-signed certificate for `name`.
    pub fn self_signed(name: &str) -> Certs {
        use rcgen::{CertificateParams, DnType, KeyPair};
        let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Certs::write(&cert.pem(), &cert.pem(), &key.serialize_pem())
    }

    fn write(ca: &str, chain: &str, key: &str) -> Certs {
        let dir = tempdir("relais-peers-certs-");
        let certs = Certs {
            ca: dir.path().join("ca.pem"),
            chain: dir.path().join("chain.pem"),
            key: dir.path().join("key.pem"),
            _dir: dir,
        };
        fs::write(&certs.ca, ca).unwrap();
        fs::write(&certs.chain, chain).unwrap();
        fs::write(&certs.key, key).unwrap();
        certs
    }
}

// ------------------------------------------------------------------ daemons

/// A server process that logs `listening on 127.0.0.1:PORT[ (ROLE)]` on stderr, once per
/// listener; stopped by its PID when dropped.
pub struct Daemon {
    name: &'static str,
    child: Child,
    /// `(role, port)` of each listener, in the order they were logged (role empty if none).
    listeners: Vec<(String, u16)>,
    log: Arc<Mutex<String>>,
}

/// `(role, port)` from `... listening on 127.0.0.1:PORT (ROLE)`.
fn listening(line: &str) -> Option<(String, u16)> {
    let rest = line.split("listening on 127.0.0.1:").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let port = digits.parse().ok()?;
    let role = rest[digits.len()..]
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.split(')').next())
        .unwrap_or("")
        .to_string();
    Some((role, port))
}

impl Daemon {
    /// Starts `cmd` and waits until it has logged `count` listeners; stderr is drained from
    /// then on so that the server never blocks on a full pipe.
    pub fn start(name: &'static str, mut cmd: Command, count: usize) -> Daemon {
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
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(l) = listening(&line) {
                    let _ = tx.send(l);
                }
                let mut log = thread_log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut daemon = Daemon {
            name,
            child,
            listeners: Vec::new(),
            log,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while daemon.listeners.len() < count {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(l) => daemon.listeners.push(l),
                Err(e) => panic!("{name} did not log its {count} listener(s) ({e})"),
            }
        }
        daemon
    }

    /// The port of the first listener with this role.
    #[track_caller]
    pub fn port(&self, role: &str) -> u16 {
        self.listeners
            .iter()
            .find(|(r, _)| r == role)
            .map(|(_, p)| *p)
            .unwrap_or_else(|| panic!("no {role} listener in {:?}", self.listeners))
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "--- {} log ---\n{}--- end of {} log ---",
                self.name,
                self.log(),
                self.name
            );
        }
        // SAFETY: kill(2) on the PID of a child we started and have not reaped.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
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

// ------------------------------------------------------------------ relais serve

/// The AUTH user of [`Relais`].
pub const USER: &str = "alice";
/// Its password.
pub const PASSWORD: &str = "Peers-Test-S3cret";
/// The local domain of [`Relais`].
pub const LOCAL: &str = "local.test";
/// Its host name (banner, and the name in its generated certificate).
pub const HOSTNAME: &str = "mx.local.test";

/// The argon2 hash of [`PASSWORD`], from `echo PASSWORD | relais user add alice`.
fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        let mut child = Command::new(RELAIS)
            .args(["user", "add", USER])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn relais user add");
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(format!("{PASSWORD}\n").as_bytes())
            .expect("write the password");
        let out = child.wait_with_output().expect("relais user add");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "relais user add: {out:?}");
        let hash = stdout
            .lines()
            .next()
            .and_then(|l| l.strip_prefix(&format!("{USER}:")))
            .unwrap_or_else(|| panic!("relais user add printed {stdout:?}"));
        assert!(hash.starts_with("$argon2"), "{hash}");
        hash.to_string()
    })
}

/// A running `relais serve` with a `submission` and a `submissions` listener, TLS with the
/// certificate it generates, and the AUTH user alice.
pub struct Relais {
    /// The process.
    pub daemon: Daemon,
    /// Its `data_dir`.
    pub data_dir: PathBuf,
    _dir: tempfile::TempDir,
}

impl Relais {
    /// Starts the server.
    pub fn start() -> Relais {
        Relais::start_with(&["submission", "submissions"], "")
    }

    /// Starts a server with one listener per role in `roles` and `auth` added to its `[auth]`
    /// section (`allow_plaintext = true`, say).
    pub fn start_with(roles: &[&str], auth: &str) -> Relais {
        let dir = tempdir("relais-peers-serve-");
        let data_dir = dir.path().join("data");
        let listeners: String = roles
            .iter()
            .map(|role| format!("[[listener]]\naddress = \"127.0.0.1:0\"\nrole = {role:?}\n\n"))
            .collect();
        let config = format!(
            "hostname = {HOSTNAME:?}\n\
             data_dir = {data:?}\n\
             local_domains = [{LOCAL:?}]\n\n\
             {listeners}\
             [tls]\nenabled = true\n\n\
             [auth]\nusers = [{{ name = {USER:?}, hash = '{hash}' }}]\nfailure_delay = 0\n{auth}\n",
            data = data_dir.display().to_string(),
            hash = password_hash(),
        );
        let config_path = dir.path().join("relais.toml");
        fs::write(&config_path, config).expect("write the configuration");
        let mut cmd = Command::new(RELAIS);
        cmd.arg("serve")
            .arg("--config")
            .arg(&config_path)
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .env_remove("RELAIS_LOG")
            .env_remove("RUST_LOG");
        Relais {
            daemon: Daemon::start("relais serve", cmd, roles.len()),
            data_dir,
            _dir: dir,
        }
    }

    /// `127.0.0.1:PORT` of the listener with this role.
    pub fn addr(&self, role: &str) -> String {
        format!("127.0.0.1:{}", self.daemon.port(role))
    }

    /// Waits until `user`'s Maildir holds `n` messages; returns them, oldest first.
    pub fn wait_mail(&self, user: &str, n: usize) -> Vec<String> {
        let dir = self.data_dir.join("mail").join(user).join("new");
        let files = wait_until(
            &format!("{n} message(s) in {}", dir.display()),
            WAIT,
            || {
                let files = list_files(&dir);
                (files.len() >= n).then_some(files)
            },
        );
        files
            .iter()
            .map(|f| fs::read_to_string(f).expect("read a message"))
            .collect()
    }
}

// ------------------------------------------------------------------ aiosmtpd

/// aiosmtpd with STARTTLS (`tests/client/py/smtpd.py`, shared with the client tests).
pub struct PyServer {
    /// The process.
    pub daemon: Daemon,
    _dir: tempfile::TempDir,
}

impl PyServer {
    /// Starts it, offering STARTTLS with `certs`.
    pub fn start(certs: &Certs) -> PyServer {
        require(
            "python3",
            &["-c", "import aiosmtpd"],
            "python3 with aiosmtpd (`pip install aiosmtpd` or Debian's python3-aiosmtpd)",
        );
        let dir = tempdir("relais-peers-aiosmtpd-");
        let outdir = dir.path().join("out");
        fs::create_dir(&outdir).unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/client/py/smtpd.py");
        let mut cmd = Command::new("python3");
        cmd.arg("-u")
            .arg(script)
            .arg("--outdir")
            .arg(&outdir)
            .arg("--cert")
            .arg(&certs.chain)
            .arg("--key")
            .arg(&certs.key);
        PyServer {
            daemon: Daemon::start("aiosmtpd", cmd, 1),
            _dir: dir,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.daemon.port(""))
    }
}

// ------------------------------------------------------------------ Postfix

/// A private Postfix instance: its own main.cf and master.cf in a temporary directory, smtpd on
/// a free port of 127.0.0.1, mail for one virtual domain whose users are listed in a texthash
/// map (so that unknown recipients are refused at RCPT time), delivered by the virtual agent
/// into one Maildir, `vmail/box/`, as nobody. The client (127.0.0.1) is not in `mynetworks`:
/// relaying is refused to it. `inet_interfaces = loopback-only`; chroot off everywhere.
pub struct Postfix {
    dir: tempfile::TempDir,
    /// The smtpd port on 127.0.0.1.
    pub port: u16,
    running: bool,
}

/// uid and gid of a system user, from /etc/passwd.
fn user_ids(name: &str) -> (u32, u32) {
    let passwd = fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3 && f[0] == name).then(|| (f[2].parse().ok(), f[3].parse().ok()))
        })
        .and_then(|(u, g)| Some((u?, g?)))
        .unwrap_or_else(|| panic!("no user {name} (is Postfix installed? scripts/deps.sh)"))
}

impl Postfix {
    /// Starts an instance taking mail for `users` at `domain` (host name `mx.DOMAIN`), with
    /// STARTTLS when `tls` gives a certificate.
    pub fn start(domain: &str, users: &[&str], tls: Option<&Certs>) -> Postfix {
        assert!(
            Path::new("/usr/sbin/postfix").exists(),
            "Postfix is needed (scripts/deps.sh installs it)"
        );
        let dir = tempdir("relais-peers-postfix-");
        let d = dir.path();
        for sub in ["etc", "queue", "data", "vmail", "tls"] {
            fs::create_dir_all(d.join(sub)).unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        for p in [d.to_path_buf(), d.join("etc"), d.join("queue")] {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let (postfix_uid, _) = user_ids("postfix");
        let (nobody_uid, nobody_gid) = user_ids("nobody");
        std::os::unix::fs::chown(d.join("data"), Some(postfix_uid), None).unwrap();
        std::os::unix::fs::chown(d.join("vmail"), Some(nobody_uid), Some(nobody_gid)).unwrap();
        let mailboxes: String = users
            .iter()
            .map(|u| format!("{u}@{domain} box/\n"))
            .collect();
        fs::write(d.join("etc/vmailbox"), mailboxes).unwrap();
        let tls_lines = match tls {
            Some(certs) => {
                fs::copy(&certs.chain, d.join("tls/chain.pem")).unwrap();
                fs::copy(&certs.key, d.join("tls/key.pem")).unwrap();
                format!(
                    "smtpd_tls_cert_file = {dir}/tls/chain.pem\n\
                     smtpd_tls_key_file = {dir}/tls/key.pem\n\
                     smtpd_tls_security_level = may\n\
                     smtpd_tls_loglevel = 1\n",
                    dir = d.display()
                )
            }
            None => "smtpd_tls_security_level = none\n".to_string(),
        };
        let port = free_port();
        let main_cf = format!(
            "compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
myhostname = mx.{domain}
mydomain = {domain}
myorigin = $myhostname
inet_interfaces = loopback-only
inet_protocols = ipv4
mydestination =
relay_domains =
relayhost =
mynetworks = 192.0.2.0/24
alias_maps =
alias_database =
local_recipient_maps =
biff = no
smtpd_banner = $myhostname ESMTP
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
virtual_mailbox_domains = {domain}
virtual_mailbox_base = {dir}/vmail
virtual_mailbox_maps = texthash:{dir}/etc/vmailbox
virtual_uid_maps = static:{nobody_uid}
virtual_gid_maps = static:{nobody_gid}
virtual_minimum_uid = 1
{tls_lines}",
            dir = d.display(),
        );
        fs::write(d.join("etc/main.cf"), main_cf).unwrap();
        let master_cf = format!(
            "127.0.0.1:{port} inet n - n - - smtpd
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
proxywrite unix - - n - 1 proxymap
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
virtual   unix  - n n - - virtual
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"
        );
        fs::write(d.join("etc/master.cf"), master_cf).unwrap();
        let mut pf = Postfix {
            dir,
            port,
            running: false,
        };
        let out = Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(pf.dir.path().join("etc"))
            .arg("start")
            .output()
            .expect("run postfix start");
        pf.running = true;
        assert!(
            out.status.success(),
            "postfix start failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            pf.maillog()
        );
        wait_until(
            &format!("Postfix listening on 127.0.0.1:{port}"),
            WAIT,
            || TcpStream::connect((Ipv4Addr::LOCALHOST, port)).ok(),
        );
        pf
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Its log.
    pub fn maillog(&self) -> String {
        fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// Waits until its virtual agent has delivered `n` messages; returns them.
    pub fn wait_delivered(&self, n: usize) -> Vec<String> {
        let dir = self.dir.path().join("vmail/box/new");
        let files = wait_until(
            &format!("{n} message(s) in {}", dir.display()),
            WAIT,
            || {
                let files = list_files(&dir);
                (files.len() >= n).then_some(files)
            },
        );
        files
            .iter()
            .map(|f| String::from_utf8_lossy(&fs::read(f).unwrap()).into_owned())
            .collect()
    }

    /// How many messages its virtual agent has delivered so far.
    pub fn delivered_count(&self) -> usize {
        list_files(&self.dir.path().join("vmail/box/new")).len()
    }

    fn master_pid(&self) -> Option<libc::pid_t> {
        fs::read_to_string(self.dir.path().join("queue/pid/master.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        if !self.running {
            return;
        }
        let pid = self.master_pid();
        let _ = Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(self.dir.path().join("etc"))
            .arg("stop")
            .output();
        if let Some(pid) = pid {
            // The master of this instance (its own pid file): wait for it, kill it if it stays.
            // SAFETY: kill(2) with signal 0 only checks that the PID exists.
            let alive = || unsafe { libc::kill(pid, 0) } == 0;
            let deadline = Instant::now() + STOP_TIMEOUT;
            while alive() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(50));
            }
            if alive() {
                // SAFETY: kill(2) on the master PID this instance wrote.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        if thread::panicking() {
            eprintln!("--- postfix maillog ---\n{}", self.maillog());
        }
    }
}
