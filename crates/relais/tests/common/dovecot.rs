//! A private Dovecot (its LMTP server, for mailboxes delivered over LMTP), an mbox reader and
//! executable scripts: the local delivery tests and the alias tests share them.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::wait::free_port;

/// A fresh temporary directory (short path: Dovecot's unix sockets live in it).
pub fn tempdir() -> tempfile::TempDir {
    super::wait::tempdir("relais-ld-")
}

/// Writes an executable shell script.
pub fn script(path: &Path, body: &str) {
    fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// One message read back from an mbox file.
#[derive(Debug)]
pub struct MboxMessage {
    /// The `From ` line, without its newline.
    pub from_line: String,
    /// The message with mboxrd quoting undone and the separating blank line removed.
    pub body: String,
}

/// Splits an mbox (mboxrd) file into its messages.
pub fn read_mbox(path: &Path) -> Vec<MboxMessage> {
    let text = fs::read_to_string(path).unwrap();
    assert!(text.starts_with("From "), "not an mbox: {text:?}");
    assert!(text.ends_with("\n\n"), "no blank line at the end: {text:?}");
    let mut out: Vec<MboxMessage> = Vec::new();
    for line in text.split_inclusive('\n') {
        if line.starts_with("From ") {
            out.push(MboxMessage {
                from_line: line.trim_end().to_string(),
                body: String::new(),
            });
            continue;
        }
        let unquoted = line.trim_start_matches('>');
        let line = if unquoted.starts_with("From ") && line.starts_with('>') {
            &line[1..]
        } else {
            line
        };
        out.last_mut().unwrap().body.push_str(line);
    }
    for m in &mut out {
        assert!(m.body.ends_with("\n\n"), "no separating blank line: {m:?}");
        m.body.pop();
    }
    out
}

/// Where the `dovecot` binary is (it lives in `/usr/sbin`, not always in a user's PATH).
fn dovecot_bin() -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/usr/local/sbin"])
    {
        let p = Path::new(dir).join("dovecot");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "dovecot is not installed: install the Debian packages dovecot-core and dovecot-lmtpd \
         (scripts/deps.sh does it)"
    )
}

/// The output of `id` with this option: user or group name of this process.
fn id(option: &str) -> String {
    let out = Command::new("id").arg(option).output().expect("run id");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A private Dovecot serving LMTP only, from its own temporary directory: its own `base_dir`,
/// no system configuration, users from a passwd-file. Stopped when dropped.
pub struct Dovecot {
    /// The `dovecot -F` master process.
    child: Child,
    /// Its directory: configuration, sockets, log, mail.
    pub dir: tempfile::TempDir,
    /// The LMTP TCP listener.
    pub addr: SocketAddr,
    /// The LMTP unix socket.
    pub socket: PathBuf,
}

/// The uid and gid mail is stored as when the tests run as root: Dovecot never accesses mail as
/// root, and any unused id will do (no passwd entry is needed).
const MAIL_ID: u32 = 60_123;

impl Dovecot {
    /// Starts Dovecot with these users and waits until it greets on LMTP. Users are local
    /// parts (any domain reaches them), or, when one has a domain, whole addresses (mail in
    /// `mail/<address>/Maildir`), as for virtual domains.
    pub fn start(users: &[&str]) -> Dovecot {
        let bin = dovecot_bin();
        let dir = tempdir();
        let d = dir.path();
        let mail = d.join("mail");
        fs::create_dir(&mail).unwrap();
        fs::create_dir(d.join("run")).unwrap();
        fs::create_dir(d.join("state")).unwrap();
        let users_file: String = users.iter().map(|u| format!("{u}:::::::\n")).collect();
        fs::write(d.join("users"), users_file).unwrap();

        // SAFETY: plain system calls without arguments.
        let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let (uid, gid, extra) = if euid == 0 {
            std::os::unix::fs::chown(&mail, Some(MAIL_ID), Some(MAIL_ID)).unwrap();
            (MAIL_ID, MAIL_ID, String::new())
        } else {
            // Not root: everything runs as this user; anvil cannot chroot.
            let me = id("-un");
            let group = id("-gn");
            let extra = format!(
                "default_internal_user = {me}\ndefault_login_user = {me}\n\
                 default_internal_group = {group}\nservice anvil {{\n  chroot =\n}}\n"
            );
            (euid, egid, extra)
        };
        let port = free_port();
        let root = d.display();
        // %n: the local part; %u: the whole address.
        let (n, ln) = match users.iter().any(|u| u.contains('@')) {
            true => ("%u", "%Lu"),
            false => ("%n", "%Ln"),
        };
        let conf = format!(
            "# relais test: a private Dovecot, LMTP only.\n\
             base_dir = {root}/run\n\
             state_dir = {root}/state\n\
             log_path = {root}/dovecot.log\n\
             protocols = lmtp\n\
             ssl = no\n\
             listen = 127.0.0.1\n\
             first_valid_uid = 1\n\
             first_valid_gid = 1\n\
             mail_location = maildir:{root}/mail/{n}/Maildir\n\
             auth_username_format = {ln}\n\
             {extra}\
             passdb {{\n  driver = static\n  args = nopassword=y\n}}\n\
             userdb {{\n  driver = passwd-file\n  args = username_format={n} {root}/users\n  \
               default_fields = uid={uid} gid={gid} home={root}/mail/{n}\n}}\n\
             service lmtp {{\n  inet_listener lmtp {{\n    address = 127.0.0.1\n    \
               port = {port}\n  }}\n  unix_listener lmtp {{\n    path = lmtp\n    \
               mode = 0666\n  }}\n}}\n"
        );
        let conf_path = d.join("dovecot.conf");
        fs::write(&conf_path, conf).unwrap();
        let child = Command::new(&bin)
            .arg("-F")
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(d.join("stderr")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        let mut dovecot = Dovecot {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            socket: d.join("run/lmtp"),
            dir,
        };
        dovecot.wait_ready();
        dovecot
    }

    /// Waits for the LMTP greeting on the TCP port.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("dovecot exited with {status}:\n{}", self.logs());
            }
            if let Ok(mut s) = TcpStream::connect(self.addr) {
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut greeting = String::new();
                let _ = BufReader::new(&s).read_line(&mut greeting);
                let _ = s.write_all(b"QUIT\r\n");
                assert!(
                    greeting.starts_with("220 "),
                    "greeting {greeting:?}\n{}",
                    self.logs()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "dovecot never listened:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its log and what it wrote on stderr, for failure messages.
    pub fn logs(&self) -> String {
        let d = self.dir.path();
        let log = fs::read_to_string(d.join("dovecot.log")).unwrap_or_default();
        let err = fs::read_to_string(d.join("stderr")).unwrap_or_default();
        format!("--- dovecot.log\n{log}--- stderr\n{err}")
    }

    /// The messages in a user's `Maildir/new`, sorted by file name.
    pub fn new_messages(&self, user: &str) -> Vec<String> {
        let new = self.dir.path().join("mail").join(user).join("Maildir/new");
        let mut files: Vec<PathBuf> = match fs::read_dir(&new) {
            Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        };
        files.sort();
        files
            .iter()
            .map(|p| fs::read_to_string(p).unwrap())
            .collect()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the PID of our own child, not yet reaped (so not reused).
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
