//! Support for the peer tests: the servers ([`Postfix`], [`PyServer`] for aiosmtpd,
//! [`Relais`] for `relais serve`), test certificates ([`Certs`]), the fixture DNS server, and
//! runners for `relais send`, `relais probe` and swaks with a time limit.
//!
//! Only 127.0.0.1 and free ports are used. Every process started here is stopped by its PID
//! (SIGTERM, then SIGKILL) when its handle is dropped, Postfix with `postfix -c DIR stop` (then
//! its master's PID if it stays); a failing test prints their logs.

use std::fs;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

pub use crate::common::{Dns, Zone, dns};
use serde_json::Value;

pub use crate::common::{RELAIS, serve_command};
/// How long a server may take to say where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long any client run may take before the test gives up on it.
const RUN_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a test waits for something that should happen soon (a delivery, a log line).
pub const WAIT: Duration = Duration::from_secs(30);

pub use crate::common::process::{self, require};
pub use crate::common::wait::{free_port, tempdir, wait_files};

// ------------------------------------------------------------------ client runs

pub use crate::common::process::Run;

/// Runs `program args` (stdin closed) with a time limit.
pub fn run(program: &str, args: &[&str]) -> Run {
    run_with(program, args, &[], None)
}

/// Runs `program args` with a time limit, extra environment variables `env`, and `stdin` as
/// its standard input (closed when `None`); no resolver nor probe password from the
/// environment of the test.
pub fn run_with(program: &str, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("NO_COLOR", "1")
        .env_remove("RELAIS_RESOLVER")
        .env_remove("RELAIS_PROBE_PASSWORD")
        .envs(env.iter().copied());
    process::run(cmd, stdin.map(str::as_bytes), RUN_TIMEOUT)
}

/// `relais send --server SERVER --timeout 10 ARGS` (no `--timeout 10` when ARGS has one).
pub fn send(server: &str, args: &[&str]) -> Run {
    run(RELAIS, &process::send_args(server, args))
}

/// `swaks --server SERVER --timeout 10 ARGS`.
pub fn swaks(server: &str, args: &[&str]) -> Run {
    require(
        "swaks",
        &["--version"],
        "Debian package `swaks` (TLS needs `libnet-ssleay-perl`); scripts/deps.sh installs it",
    );
    run("swaks", &process::swaks_args(server, args))
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

// ------------------------------------------------------------------ certificates

pub use crate::common::certs::Certs;

impl Certs {
    /// A certificate for `name` signed by a fresh test CA.
    pub fn signed(name: &str) -> Certs {
        Certs::signed_by("relais peers test CA", name, &[])
    }
}

// ------------------------------------------------------------------ daemons

pub use crate::common::process::Daemon;

/// Starts `cmd` and waits until it has logged `count` listeners.
fn daemon(name: &str, cmd: Command, count: usize) -> Daemon {
    Daemon::start(name, cmd, count, START_TIMEOUT)
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
fn password_hash() -> String {
    crate::common::users::password_hash(USER, PASSWORD)
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
        let cmd = serve_command(&config_path, dir.path());
        Relais {
            daemon: daemon("relais serve", cmd, roles.len()),
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
        wait_files(&dir, n, WAIT)
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
            daemon: daemon("aiosmtpd", cmd, 1),
            _dir: dir,
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.daemon.port(""))
    }
}

// ------------------------------------------------------------------ Postfix

pub use crate::common::postfix::Postfix;

/// A private Postfix instance (see [`crate::common::postfix`]): smtpd on a free port of
/// 127.0.0.1, mail for `users` at `domain` (unknown recipients refused at RCPT time), STARTTLS
/// when `tls` gives a certificate. The client (127.0.0.1) is not in `mynetworks`: relaying is
/// refused to it.
pub fn postfix(domain: &str, users: &[&str], tls: Option<&Certs>) -> Postfix {
    Postfix::start(&crate::common::postfix::Setup {
        listen: SocketAddrV4::new(Ipv4Addr::LOCALHOST, free_port()),
        domain,
        mynetworks: "192.0.2.0/24",
        users: Some(users),
        tls: tls.map(|c| (c.chain.as_path(), c.key.as_path())),
        prefix: "relais-peers-postfix-",
    })
}
