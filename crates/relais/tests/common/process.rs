//! Processes: commands run to their end ([`run`]) and servers that say where they listen
//! ([`Daemon`]). Every process started here is stopped by its own PID, never by name.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

// ------------------------------------------------------------------ commands run to their end

/// What a finished command gave.
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

    /// Asserts the exit code (showing the output when it differs), by value.
    #[track_caller]
    pub fn expect(self, code: i32) -> Run {
        self.expect_code(code);
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

    /// Asserts that stdout contains every one of `parts`.
    #[track_caller]
    pub fn shows(self, parts: &[&str]) -> Run {
        for part in parts {
            self.expect_out(part);
        }
        self
    }

    /// The standard output as JSON (`--json`).
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{self}"))
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

/// Runs `cmd` to its end, its output captured: `stdin` is written by a thread then closed
/// (no standard input at all when `None`), so that neither side blocks on a full pipe. Killed
/// (and the test failed) after `timeout`: a hung client must not hang the test run.
#[track_caller]
pub fn run(mut cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> Run {
    let what = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let writer = stdin.map(|data| {
        let mut input = child.stdin.take().expect("piped stdin");
        let data = data.to_vec();
        thread::spawn(move || {
            let _ = input.write_all(&data);
        })
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
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} ran longer than {timeout:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    Run {
        what,
        code: status.code().unwrap_or(-1),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// The arguments of `relais send --server SERVER --timeout 10 ARGS` (no `--timeout 10` when
/// ARGS has one): a client run never waits for long.
pub fn send_args<'a>(server: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["send", "--server", server];
    if !args.contains(&"--timeout") {
        all.extend(["--timeout", "10"]);
    }
    all.extend_from_slice(args);
    all
}

/// The arguments of `swaks --server SERVER --timeout 10 ARGS`.
pub fn swaks_args<'a>(server: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["--server", server, "--timeout", "10"];
    all.extend_from_slice(args);
    all
}

/// Fails the test unless `program args` runs and succeeds; `hint` says what to install.
pub fn require(program: &str, args: &[&str], hint: &str) {
    let ok = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "{program} is needed: {hint}");
}

// ------------------------------------------------------------------ servers

/// A server process that logs `listening on IP:PORT[ (ROLE)]` (relais serve, the Python
/// peers), once per listener. Its stdout and stderr are drained into one log for as long as it
/// runs, so that it never blocks on a full pipe; a failing test prints that log. Stopped by its
/// PID (SIGTERM, then SIGKILL after `STOP_TIMEOUT`) when dropped.
pub struct Daemon {
    name: String,
    child: Option<Child>,
    /// `(role, address)` of each listener, in the order they were logged (role empty if none).
    pub listeners: Vec<(String, SocketAddr)>,
    log: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

/// How long a stopped process may take to exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// `(role, address)` from `… listening on IP:PORT (ROLE)` (role empty if none).
pub fn listening(line: &str) -> Option<(String, SocketAddr)> {
    let at = line.find("listening on ")? + "listening on ".len();
    let rest = &line[at..];
    let token = rest.split_whitespace().next()?;
    let addr: SocketAddr = token.parse().ok().filter(|a: &SocketAddr| a.port() != 0)?;
    let after = &rest[rest.find(token)? + token.len()..];
    let role = after
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.split(')').next())
        .unwrap_or("")
        .to_string();
    Some((role, addr))
}

impl Daemon {
    /// Starts `cmd` and waits (up to `timeout`) until it has logged `count` listeners.
    pub fn start(name: &str, mut cmd: Command, count: usize, timeout: Duration) -> Daemon {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let mut readers = Vec::new();
        let out: Box<dyn Read + Send> = Box::new(child.stdout.take().expect("stdout"));
        let err: Box<dyn Read + Send> = Box::new(child.stderr.take().expect("stderr"));
        for stream in [out, err] {
            let log = log.clone();
            let tx = tx.clone();
            readers.push(thread::spawn(move || drain(stream, &log, &tx)));
        }
        drop(tx);
        let mut daemon = Daemon {
            name: name.to_string(),
            child: Some(child),
            listeners: Vec::new(),
            log,
            readers,
        };
        let deadline = Instant::now() + timeout;
        while daemon.listeners.len() < count {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(l) => daemon.listeners.push(l),
                Err(e) => {
                    daemon.stop();
                    panic!(
                        "{name} did not log its {count} listener(s) ({e})\n--- {name} log ---\n{}",
                        daemon.log()
                    );
                }
            }
        }
        daemon
    }

    /// The name it was started with, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address of the first listener.
    pub fn addr(&self) -> SocketAddr {
        self.listeners[0].1
    }

    /// The port of the first listener with this role.
    #[track_caller]
    pub fn port(&self, role: &str) -> u16 {
        self.listeners
            .iter()
            .find(|(r, _)| r == role)
            .map(|(_, a)| a.port())
            .unwrap_or_else(|| panic!("no {role} listener in {:?}", self.listeners))
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Its PID, while it has not been reaped.
    pub fn pid(&self) -> Option<libc::pid_t> {
        self.child.as_ref().map(|c| c.id() as libc::pid_t)
    }

    /// Sends a signal to the process (never reaped before, so the PID is still ours).
    pub fn signal(&self, sig: libc::c_int) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on the PID of our own child, which has not been reaped yet.
            unsafe {
                libc::kill(pid, sig);
            }
        }
    }

    /// Its exit status if it has exited on its own (it is still reaped by [`Daemon::stop`]).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().expect("try_wait")
    }

    /// SIGTERM, wait (SIGKILL after `STOP_TIMEOUT`), then the end of its output. Returns the
    /// exit status, or None if it had to be killed (or was stopped before).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.signal(libc::SIGTERM);
        self.reap()
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        self.reap();
    }

    fn reap(&mut self) -> Option<ExitStatus> {
        let mut status = None;
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + STOP_TIMEOUT;
            loop {
                match child.try_wait() {
                    Ok(Some(s)) => {
                        status = Some(s);
                        break;
                    }
                    Ok(None) if Instant::now() < deadline => {
                        thread::sleep(Duration::from_millis(20))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        status
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        if thread::panicking() {
            eprintln!(
                "--- {} log ---\n{}--- end of {} log ---",
                self.name,
                self.log(),
                self.name
            );
        }
    }
}

/// Collects the lines of `stream` into `log`; sends every listener it logs.
fn drain(stream: impl Read, log: &Mutex<String>, tx: &mpsc::Sender<(String, SocketAddr)>) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = strip_ansi(&String::from_utf8_lossy(&line));
        if let Some(l) = listening(&text) {
            let _ = tx.send(l);
        }
        log.lock().unwrap().push_str(&text);
    }
}

/// Removes terminal colour sequences (`ESC [ ... letter`): a log line is matched as text.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
