//! Test support: start a real `relais serve` on a free port with its own data directory, talk
//! to it over raw TCP, run external clients (swaks, Python's smtplib), and read its Maildirs.
//!
//! A [`Server`] is stopped with SIGTERM when dropped; when the test is failing (panicking) the
//! server's log is printed, so a failure always shows what the server said.

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::process::Daemon;
use crate::common::serve_command;
pub use crate::common::wait::{list_files, tempdir};

/// How long the server may take to say where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long an accepted message may take to reach the Maildir.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Read timeout on raw client sockets: no test waits longer than this for a reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// What a test may change in the server's configuration.
#[derive(Debug, Clone)]
pub struct Options {
    /// `[local] users`: empty for catch-all.
    pub users: Vec<String>,
    /// `[limits] max_message_size`.
    pub max_message_size: u64,
    /// `[delivery] paused`.
    pub paused: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            users: Vec::new(),
            max_message_size: 10_240_000,
            paused: false,
        }
    }
}

impl Options {
    /// The TOML configuration for a server keeping its data in `data_dir`.
    pub fn to_toml(&self, data_dir: &Path) -> String {
        let users: Vec<String> = self.users.iter().map(|u| format!("{u:?}")).collect();
        format!(
            r#"hostname = "mx.test.example"
data_dir = {data_dir:?}
local_domains = ["localhost", "test.example"]

[[listener]]
address = "127.0.0.1:0"

[limits]
max_message_size = {size}
max_recipients = 1000
max_connections = 1000

[local]
users = [{users}]

[delivery]
paused = {paused}
"#,
            data_dir = data_dir.display().to_string(),
            size = self.max_message_size,
            users = users.join(", "),
            paused = self.paused,
        )
    }
}

/// A running `relais serve` (a [`Daemon`]: its log drained, stopped by PID when dropped).
pub struct Server {
    process: Daemon,
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    /// Its `data_dir`.
    pub data_dir: PathBuf,
    /// Owned when the server made its own directory; None when the test owns it (restarts).
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// A catch-all server with the default limits, in a fresh temporary directory.
    pub fn start() -> Server {
        Server::start_with(Options::default())
    }

    /// A server with these options, in a fresh temporary directory.
    pub fn start_with(options: Options) -> Server {
        let dir = tempdir("relais-e2e-");
        let mut server = Server::start_in(dir.path(), options);
        server._dir = Some(dir);
        server
    }

    /// A server whose configuration and data live in `dir` (`dir/relais.toml`, `dir/data`),
    /// which the caller keeps: a second server started in the same `dir` finds the same spool.
    pub fn start_in(dir: &Path, options: Options) -> Server {
        let data_dir = dir.join("data");
        let config = dir.join("relais.toml");
        fs::write(&config, options.to_toml(&data_dir)).expect("write the configuration");

        let cmd = serve_command(&config, dir);
        let name = format!("relais (data {})", data_dir.display());
        let process = Daemon::start(&name, cmd, 1, START_TIMEOUT);
        Server {
            port: process.addr().port(),
            process,
            data_dir,
            _dir: None,
        }
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Panics (with the log) if the server process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.process.exited() {
            panic!(
                "relais exited: {status}\n--- relais log ---\n{}",
                self.log()
            );
        }
    }

    /// SIGTERM, then waits for the exit (SIGKILL after a while) and for the end of the log.
    /// Returns the exit status, or None if it had to be killed.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.process.stop()
    }

    /// A raw client connected to the server, greeting not yet read.
    pub fn connect(&self) -> Client {
        Client::connect(self.port)
    }

    /// A raw client that has read the 220 greeting and sent EHLO (reply checked).
    pub fn connect_ehlo(&self) -> Client {
        let mut c = self.connect();
        c.expect_reply("220");
        c.expect("EHLO client.example.org", "250");
        c
    }

    /// `data_dir/mail/<local>/new`.
    pub fn maildir_new(&self, local: &str) -> PathBuf {
        self.data_dir.join("mail").join(local).join("new")
    }

    /// The files in `data_dir/mail/<local>/new`, sorted (none if the Maildir does not exist).
    pub fn mail_files(&self, local: &str) -> Vec<PathBuf> {
        list_files(&self.maildir_new(local))
    }

    /// The local parts that have a Maildir.
    pub fn mailboxes(&self) -> Vec<String> {
        let mut names: Vec<String> = match fs::read_dir(self.data_dir.join("mail")) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }

    /// Waits until `<local>` holds at least `n` messages and returns them all (panics after
    /// [`DELIVERY_TIMEOUT`]).
    pub fn wait_for_mail(&self, local: &str, n: usize) -> Vec<Delivered> {
        let deadline = Instant::now() + DELIVERY_TIMEOUT;
        loop {
            let files = self.mail_files(local);
            if files.len() >= n {
                return files.iter().map(|p| Delivered::read(p)).collect();
            }
            if Instant::now() >= deadline {
                panic!(
                    "{} message(s) for {local:?} after {DELIVERY_TIMEOUT:?}, expected {n}; \
                     mailboxes: {:?}",
                    files.len(),
                    self.mailboxes()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for exactly one message for `<local>` and returns it.
    pub fn wait_for_one(&self, local: &str) -> Delivered {
        let mut all = self.wait_for_mail(local, 1);
        assert_eq!(all.len(), 1, "more than one message for {local:?}");
        all.remove(0)
    }
}

/// One delivered Maildir file, split into the trace headers relais added and the message.
#[derive(Debug)]
pub struct Delivered {
    pub path: PathBuf,
    /// `Return-Path`, `Delivered-To` and `Received` as stored (with their line ends).
    pub trace: String,
    /// Everything after them: the message as the client sent it.
    pub message: Vec<u8>,
}

impl Delivered {
    /// Reads and splits a delivered file; panics if it does not start with the trace headers.
    pub fn read(path: &Path) -> Delivered {
        let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let (trace, message) = split_trace(&bytes).unwrap_or_else(|why| {
            panic!(
                "{}: {why}; it starts with:\n{}",
                path.display(),
                String::from_utf8_lossy(&bytes[..bytes.len().min(600)])
            )
        });
        Delivered {
            path: path.to_path_buf(),
            trace,
            message,
        }
    }

    /// The value of a trace header (first line only, trimmed), if present.
    pub fn trace_header(&self, name: &str) -> Option<String> {
        self.trace.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// The whole `Received` header, unfolded.
    pub fn received(&self) -> String {
        let mut out = String::new();
        let mut inside = false;
        for l in self.trace.lines() {
            if l.to_ascii_lowercase().starts_with("received:") {
                inside = true;
                out.push_str(l.trim_end());
            } else if inside && (l.starts_with(' ') || l.starts_with('\t')) {
                out.push(' ');
                out.push_str(l.trim());
            } else {
                inside = false;
            }
        }
        out
    }

    /// Asserts the trace headers name this sender, recipient and queue id.
    pub fn assert_trace(&self, sender: &str, rcpt: &str, queue_id: &str) {
        assert_eq!(
            self.trace_header("Return-Path").as_deref(),
            Some(format!("<{sender}>").as_str()),
            "Return-Path in {}:\n{}",
            self.path.display(),
            self.trace
        );
        let delivered_to = self.trace_header("Delivered-To").unwrap_or_default();
        assert!(
            delivered_to.trim_matches(['<', '>']) == rcpt,
            "Delivered-To should name {rcpt}:\n{}",
            self.trace
        );
        let received = self.received();
        assert!(
            received.contains(queue_id),
            "Received should hold the queue id {queue_id}:\n{}",
            self.trace
        );
    }

    /// Asserts the message is exactly `expected`, with a readable report when it is not.
    pub fn assert_message(&self, expected: &[u8]) {
        assert_same_bytes(&self.message, expected, &self.path.display().to_string());
    }
}

/// Splits off the leading `Return-Path`, `Delivered-To` and `Received` headers (each once,
/// `Return-Path` first, continuation lines included, CRLF or LF line ends).
pub fn split_trace(bytes: &[u8]) -> Result<(String, Vec<u8>), String> {
    const NAMES: [&str; 3] = ["return-path", "delivered-to", "received"];
    let mut seen = [0usize; 3];
    let mut pos = 0;
    let mut current: Option<usize> = None;
    while pos < bytes.len() {
        let end = bytes[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| pos + i + 1);
        let line = &bytes[pos..end];
        let folded = matches!(line.first(), Some(b' ' | b'\t'));
        if folded && current.is_some() {
            pos = end;
            continue;
        }
        let name = line
            .iter()
            .position(|&b| b == b':')
            .map(|i| String::from_utf8_lossy(&line[..i]).to_ascii_lowercase());
        let Some(index) = name.and_then(|n| NAMES.iter().position(|&k| k == n)) else {
            break;
        };
        if pos == 0 && index != 0 {
            return Err("the first line is not Return-Path".into());
        }
        if seen[..].iter().sum::<usize>() == 3 {
            break; // all three seen: a further Received belongs to the message
        }
        seen[index] += 1;
        if seen[index] > 1 {
            return Err(format!("two {} headers added", NAMES[index]));
        }
        current = Some(index);
        pos = end;
    }
    if seen != [1, 1, 1] {
        return Err(format!(
            "expected Return-Path, Delivered-To and Received once each, found {seen:?}"
        ));
    }
    Ok((
        String::from_utf8_lossy(&bytes[..pos]).into_owned(),
        bytes[pos..].to_vec(),
    ))
}

/// Asserts two byte strings are equal; on a difference shows where and the text around it
/// (never megabytes of it).
pub fn assert_same_bytes(actual: &[u8], expected: &[u8], what: &str) {
    if actual == expected {
        return;
    }
    let at = actual
        .iter()
        .zip(expected)
        .position(|(a, b)| a != b)
        .unwrap_or(actual.len().min(expected.len()));
    let around = |b: &[u8]| {
        let from = at.saturating_sub(60);
        let to = (at + 60).min(b.len());
        format!("{:?}", String::from_utf8_lossy(&b[from..to]))
    };
    panic!(
        "{what}: content differs at octet {at} (stored {} octets, sent {}):\n  stored: {}\n  sent:   {}",
        actual.len(),
        expected.len(),
        around(actual),
        around(expected)
    );
}

/// One SMTP reply: its code and its lines (without CRLF).
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// All lines joined with newlines, as sent (`250-…`, `250 …`).
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// True if the last line starts with `prefix` (`"250"`, `"500 5.5.2"`).
    pub fn starts_with(&self, prefix: &str) -> bool {
        self.lines.last().is_some_and(|l| l.starts_with(prefix))
    }

    /// The queue id in `250 2.0.0 Ok: queued as ID`.
    pub fn queue_id(&self) -> String {
        queue_id_in(&self.text())
            .unwrap_or_else(|| panic!("no `queued as ID` in the reply: {}", self.text()))
    }

    /// True if a line of a multi-line reply (EHLO) names this keyword.
    pub fn has_keyword(&self, keyword: &str) -> bool {
        self.lines.iter().any(|l| {
            l.get(4..)
                .and_then(|rest| rest.split_whitespace().next())
                .is_some_and(|k| k.eq_ignore_ascii_case(keyword))
        })
    }
}

/// The id after `queued as ` in some text.
pub fn queue_id_in(text: &str) -> Option<String> {
    let at = text.find("queued as ")? + "queued as ".len();
    let id: String = text[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    (!id.is_empty()).then_some(id)
}

/// A raw SMTP client over std's TcpStream, with a read timeout on every reply.
pub struct Client {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    /// Connects to 127.0.0.1:port.
    pub fn connect(port: u16) -> Client {
        Client::from_stream(TcpStream::connect(("127.0.0.1", port)).expect("connect to relais"))
    }

    /// Wraps a connected stream (read and write timeouts set here).
    pub fn from_stream(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(REPLY_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
        }
    }

    /// Writes raw bytes, in one write.
    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write to relais");
    }

    /// Writes `line` and CRLF.
    pub fn send_line(&mut self, line: &str) {
        self.send(format!("{line}\r\n").as_bytes());
    }

    /// Reads one reply; Ok(None) on a clean end of stream before any of it.
    pub fn try_reply(&mut self) -> io::Result<Option<Reply>> {
        let mut lines = Vec::new();
        loop {
            let mut raw = Vec::new();
            let n = self.reader.read_until(b'\n', &mut raw)?;
            if n == 0 {
                if lines.is_empty() {
                    return Ok(None);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("connection closed inside a reply: {lines:?}"),
                ));
            }
            let line = String::from_utf8_lossy(&raw)
                .trim_end_matches(['\r', '\n'])
                .to_string();
            let bad =
                || io::Error::new(io::ErrorKind::InvalidData, format!("not a reply: {line:?}"));
            if line.len() < 3 || !line.as_bytes()[..3].iter().all(u8::is_ascii_digit) {
                return Err(bad());
            }
            let code: u16 = line[..3].parse().map_err(|_| bad())?;
            let more = line.as_bytes().get(3) == Some(&b'-');
            lines.push(line);
            if !more {
                return Ok(Some(Reply { code, lines }));
            }
        }
    }

    /// Reads one reply; panics on a timeout or an end of stream.
    pub fn reply(&mut self) -> Reply {
        match self.try_reply() {
            Ok(Some(r)) => r,
            Ok(None) => panic!("the server closed the connection instead of replying"),
            Err(e) => panic!("no reply: {e}"),
        }
    }

    /// Reads one reply and asserts it starts with `prefix`.
    pub fn expect_reply(&mut self, prefix: &str) -> Reply {
        let r = self.reply();
        assert!(
            r.starts_with(prefix),
            "expected a reply starting {prefix:?}, got:\n{}",
            r.text()
        );
        r
    }

    /// Sends a command line and reads its reply.
    pub fn command(&mut self, line: &str) -> Reply {
        self.send_line(line);
        self.reply()
    }

    /// Sends a command line and asserts its reply starts with `prefix`.
    pub fn expect(&mut self, line: &str, prefix: &str) -> Reply {
        self.send_line(line);
        let r = self.reply();
        let shown: String = line.chars().take(80).collect();
        assert!(
            r.starts_with(prefix),
            "{shown:?}: expected a reply starting {prefix:?}, got:\n{}",
            r.text()
        );
        r
    }

    /// Reads until the server closes the connection (or the read timeout); returns what came.
    pub fn read_to_end(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        let _ = self.reader.read_to_end(&mut rest);
        rest
    }

    /// Sends QUIT, expects 221 and the end of the connection.
    pub fn quit(mut self) {
        self.expect("QUIT", "221");
        let rest = self.read_to_end();
        assert!(
            rest.is_empty(),
            "bytes after 221: {:?}",
            String::from_utf8_lossy(&rest)
        );
        let _ = self.writer.shutdown(Shutdown::Both);
    }

    /// MAIL, RCPT, DATA, content (dot-stuffed here, CRLF line ends expected), end; returns the
    /// queue id.
    pub fn send_message(&mut self, from: &str, to: &str, content: &[u8]) -> String {
        self.expect(&format!("MAIL FROM:<{from}>"), "250");
        self.expect(&format!("RCPT TO:<{to}>"), "250");
        self.expect("DATA", "354");
        self.send(&dot_stuff(content));
        self.send(b".\r\n");
        self.expect_reply("250 2.0.0").queue_id()
    }
}

/// Dot-stuffs CRLF content and makes sure it ends with CRLF (the final `.` is not added).
pub fn dot_stuff(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 16);
    let mut at_line_start = true;
    for &b in content {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Runs an external program to its end; panics with a hint if it is not installed.
pub fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program}: {e} (scripts/test.sh installs the test tools)")
        })
}

/// stdout and stderr of a finished program, as text.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The path of a Python helper script under `tests/e2e/py/`.
pub fn python_script(name: &str) -> String {
    format!("{}/tests/e2e/py/{name}", env!("CARGO_MANIFEST_DIR"))
}
