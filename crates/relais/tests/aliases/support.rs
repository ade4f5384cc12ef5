//! Helpers: a real `relais serve` with a configuration of the test's making, a raw SMTP client,
//! Maildir readers and waiting.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::process::Daemon;
use crate::common::serve_command;

/// How long a message may take to arrive where it goes.
pub const DELIVERY: Duration = Duration::from_secs(20);

/// A fresh directory that the `run_as` user (nobody) may traverse: alias commands and files
/// live in it. Put what nobody must write in [`open_dir`].
pub fn tempdir() -> tempfile::TempDir {
    let d = crate::common::wait::tempdir("relais-al-");
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// A directory anyone may write to, for what alias commands and files produce.
pub fn open_dir(path: &Path) -> PathBuf {
    fs::create_dir_all(path).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o777)).unwrap();
    path.to_path_buf()
}

/// The uid of a user, from `id -u`.
pub fn uid_of(user: &str) -> String {
    let out = Command::new("id").arg("-u").arg(user).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A running `relais serve` (a [`Daemon`]: stopped with SIGTERM by PID when dropped, its log
/// printed if the test fails).
pub struct Server {
    process: Daemon,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its `data_dir`.
    pub data_dir: PathBuf,
}

impl Server {
    /// Starts relais in `dir` (`dir/relais.toml`, `dir/data`) for the local domain `domain`;
    /// `extra` is TOML appended to the configuration (sections such as `[local]`).
    pub fn start(dir: &Path, domain: &str, extra: &str) -> Server {
        let data_dir = dir.join("data");
        let config = dir.join("relais.toml");
        let text = format!(
            "hostname = \"mx.{domain}\"\n\
             data_dir = {data:?}\n\
             local_domains = [\"{domain}\"]\n\
             workers = 1\n\
             [[listener]]\n\
             address = \"127.0.0.1:0\"\n\
             [tls]\n\
             enabled = false\n\
             {extra}\n",
            data = data_dir.display().to_string(),
        );
        fs::write(&config, text).unwrap();
        let cmd = serve_command(&config, dir);
        let process = Daemon::start("relais serve", cmd, 1, Duration::from_secs(20));
        Server {
            port: process.addr().port(),
            process,
            data_dir,
        }
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Waits until the log has `needle`, panicking with the log after [`DELIVERY`].
    pub fn wait_log(&self, needle: &str) {
        wait(
            &format!("log line {needle:?}"),
            || self.log().contains(needle),
            self,
        );
    }

    /// The messages in a mailbox's `new/`, sorted by file name.
    pub fn mailbox(&self, name: &str) -> Vec<String> {
        read_dir_sorted(&self.data_dir.join("mail").join(name).join("new"))
    }

    /// Waits until a mailbox has `count` messages and returns them.
    pub fn wait_mailbox(&self, name: &str, count: usize) -> Vec<String> {
        wait(
            &format!("{count} message(s) in mailbox {name}"),
            || self.mailbox(name).len() >= count,
            self,
        );
        self.mailbox(name)
    }

    /// SIGTERM, then wait (SIGKILL after 15 s).
    pub fn stop(&mut self) {
        self.process.stop();
    }
}

/// The contents of the files of a directory, sorted by name; empty if it does not exist.
pub fn read_dir_sorted(dir: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
        Err(_) => return Vec::new(),
    };
    files.sort();
    files
        .iter()
        .filter_map(|p| fs::read_to_string(p).ok())
        .collect()
}

/// Polls `ready` until it holds; panics after [`DELIVERY`] naming `what`.
pub fn wait(what: &str, mut ready: impl FnMut() -> bool, server: &Server) {
    let deadline = Instant::now() + DELIVERY;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n--- relais log ---\n{}",
            server.log()
        );
        thread::sleep(Duration::from_millis(25));
    }
}

/// A raw SMTP client.
pub struct Smtp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Smtp {
    /// Connects and reads the greeting.
    pub fn connect(port: u16) -> Smtp {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut c = Smtp {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
        };
        let greeting = c.reply();
        assert!(greeting.starts_with("220 "), "{greeting}");
        c
    }

    /// One complete reply, its lines joined with `\n`.
    pub fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).unwrap();
            assert!(n > 0, "connection closed after {lines:?}");
            let line = line.trim_end().to_string();
            let last = line.len() < 4 || line.as_bytes()[3] == b' ';
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    /// Sends a command line and returns the reply.
    pub fn cmd(&mut self, line: &str) -> String {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
        self.reply()
    }

    /// Sends a message (LF or CRLF line ends) after DATA, dot-stuffed, and returns the final
    /// reply.
    pub fn data(&mut self, message: &str) -> String {
        let r = self.cmd("DATA");
        assert!(r.starts_with("354"), "{r}");
        let body = message
            .replace("\r\n", "\n")
            .replace("\n.", "\n..")
            .replace('\n', "\r\n");
        let body = match body.starts_with('.') {
            true => format!(".{body}"),
            false => body,
        };
        self.writer.write_all(body.as_bytes()).unwrap();
        if !body.ends_with("\r\n") {
            self.writer.write_all(b"\r\n").unwrap();
        }
        self.writer.write_all(b".\r\n").unwrap();
        self.reply()
    }
}

/// Sends one message: EHLO, MAIL, one RCPT per `rcpts` line (`addr` or `addr PARAMS`), DATA
/// when at least one was accepted. Returns the RCPT replies and the final reply (empty when
/// nothing was sent).
pub fn send(port: u16, from: &str, rcpts: &[&str], message: &str) -> (Vec<String>, String) {
    let mut c = Smtp::connect(port);
    let r = c.cmd("EHLO client.test");
    assert!(r.starts_with("250"), "{r}");
    let r = c.cmd(&format!("MAIL FROM:<{from}>"));
    assert!(r.starts_with("250"), "{r}");
    let mut replies = Vec::new();
    for rcpt in rcpts {
        let (addr, params) = rcpt.split_once(' ').unwrap_or((rcpt, ""));
        let line = format!("RCPT TO:<{addr}> {params}");
        replies.push(c.cmd(line.trim_end()));
    }
    let last = if replies.iter().any(|r| r.starts_with("250")) {
        c.data(message)
    } else {
        String::new()
    };
    let _ = c.cmd("QUIT");
    (replies, last)
}

/// A small message with this subject.
pub fn message(subject: &str) -> String {
    format!(
        "From: sender@local.test\n\
         To: someone@local.test\n\
         Subject: {subject}\n\
         Message-ID: <{}.{subject}@client.test>\n\
         \n\
         Hello {subject}.\n",
        std::process::id()
    )
}

/// Sends `message(subject)` from sender@local.test and asserts that it was queued.
pub fn send_ok(port: u16, rcpts: &[&str], subject: &str) {
    let (replies, last) = send(port, "sender@local.test", rcpts, &message(subject));
    for r in &replies {
        assert!(r.starts_with("250"), "RCPT: {r}");
    }
    assert!(last.starts_with("250"), "DATA: {last}");
}
