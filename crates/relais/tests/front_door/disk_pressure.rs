//! Disk pressure (issue 15, item 3), on a 32 MB tmpfs the test mounts (as root) as the server's
//! `data_dir` with `min_free_space = "4MB"`:
//! - a file grows until MAIL FROM is refused with `452 4.3.1 Insufficient system storage`, and
//!   the session goes on;
//! - a message accepted while the Maildir has too little room waits in the spool (its copy
//!   deferred with 4.3.1);
//! - a transaction whose content cannot be stored (the disk filled to the last block during
//!   DATA) is refused, never acknowledged;
//! - when the file is removed, every message that got a `250` is delivered, once, and nothing
//!   refused appears.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::wait::tempdir;
use crate::support::{Client, Server, Setup};

const MB: u64 = 1_000_000;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempdir("relais-disk-pressure-");
        let path = dir.path().join("fs");
        fs::create_dir(&path).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(&path)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount a tmpfs (the tests run as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { path, _dir: dir }
    }

    /// Free octets (as `df` shows them).
    fn free(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.path)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df output")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// A file that takes room on the file system, grown and cut by the test.
struct Filler {
    file: File,
    len: u64,
}

impl Filler {
    fn create(path: &Path) -> Filler {
        Filler {
            file: File::create(path).unwrap(),
            len: 0,
        }
    }

    /// Grows by `n` octets (written, so tmpfs really gives the pages); false when the disk is
    /// full.
    fn grow(&mut self, n: u64) -> bool {
        let chunk = vec![0x55u8; 64 * 1024];
        let mut left = n;
        while left > 0 {
            let k = left.min(chunk.len() as u64) as usize;
            match self.file.write_all(&chunk[..k]) {
                Ok(()) => {
                    self.len += k as u64;
                    left -= k as u64;
                }
                Err(e)
                    if e.raw_os_error() == Some(libc::ENOSPC)
                        || e.kind() == ErrorKind::StorageFull =>
                {
                    return false;
                }
                Err(e) => panic!("filler: {e}"),
            }
        }
        true
    }

    /// Leaves `free` octets free on `fs`.
    fn leave(&mut self, fs: &Tmpfs, free: u64) {
        let now = fs.free();
        if now > free {
            self.grow(now - free);
        } else {
            let cut = (free - now).min(self.len);
            self.len -= cut;
            self.file.set_len(self.len).unwrap();
        }
    }
}

/// Sends one message of `body` octets with this subject; the last reply (MAIL's when refused).
fn send(port: u16, subject: &str, body: usize) -> String {
    let mut c = Client::ready(port, None);
    let r = c.cmd("MAIL FROM:<sender@other.test>");
    if !r.is("250 ") {
        // The session goes on after a refusal.
        c.expect("NOOP", "250 ");
        c.quit();
        return r.to_string();
    }
    c.expect("RCPT TO:<bob@local.test>", "250 ");
    c.expect("DATA", "354 ");
    let line = "x".repeat(76);
    let mut content = format!("Subject: {subject}\r\n\r\n");
    while content.len() < body {
        content.push_str(&line);
        content.push_str("\r\n");
    }
    content.push('.');
    let r = c.cmd(&content);
    c.quit();
    r.to_string()
}

fn subjects(messages: &[String]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| m.lines().find_map(|l| l.strip_prefix("Subject: ")))
        .map(str::to_string)
        .collect()
}

#[test]
fn full_disk_refuses_at_mail_waits_to_deliver_and_loses_nothing() {
    let fs = Tmpfs::mount("32m");
    let server = Server::start(
        Setup::new(&["mx"])
            .data_dir(&fs.path.join("data"))
            .limit("min_free_space = \"4MB\"")
            .top("[delivery]\nfirst_retry = \"1s\"\nmax_retry = \"1s\""),
    );
    let port = server.port("mx");
    let mut filler = Filler::create(&fs.path.join("filler"));
    let mut accepted = BTreeSet::new();
    let mut refused = BTreeSet::new();
    let started = Instant::now();

    // 1. Fill 1 MB at a time, a message after each step, until MAIL FROM is refused.
    let mut refusal = None;
    for step in 0..40 {
        filler.grow(MB);
        let subject = format!("fill {step}");
        let r = send(port, &subject, 20_000);
        if r.starts_with("452 4.3.1 Insufficient system storage") {
            refused.insert(subject);
            refusal = Some((step, fs.free()));
            break;
        }
        assert!(r.starts_with("250 2.0.0 Ok: queued as"), "{subject}: {r}");
        accepted.insert(subject);
    }
    let (step, free_at_refusal) = refusal.expect("MAIL FROM never refused");
    assert!(
        free_at_refusal < 4 * MB,
        "refused with {free_at_refusal} free"
    );
    // SIZE counts: with 4.5 MB free, a 1 MB message is refused, a small one is not.
    filler.leave(&fs, 4 * MB + MB / 2);
    let mut c = Client::ready(port, None);
    c.expect("MAIL FROM:<s@other.test> SIZE=1000000", "452 4.3.1");
    c.expect("MAIL FROM:<s@other.test> SIZE=1000", "250 ");
    c.quit();

    // 2. Room for the spool, not for the Maildir copy after the threshold: accepted, waits.
    filler.leave(&fs, 4 * MB + 300_000);
    let r = send(port, "waits", 600_000);
    assert!(r.starts_with("250 2.0.0 Ok: queued as"), "{r}");
    accepted.insert("waits".to_string());
    server.assert_logged("insufficient system storage for mailbox bob");

    // 3. The disk fills up during DATA: the content is refused, never acknowledged.
    filler.leave(&fs, 5 * MB);
    let mut c = Client::ready(port, None);
    c.expect("MAIL FROM:<sender@other.test>", "250 ");
    c.expect("RCPT TO:<bob@local.test>", "250 ");
    c.expect("DATA", "354 ");
    filler.grow(u64::MAX / 2);
    assert!(fs.free() < 100_000, "{} free", fs.free());
    let mut content = "Subject: never\r\n\r\n".to_string();
    while content.len() < 2 * MB as usize {
        content.push_str(&"y".repeat(76));
        content.push_str("\r\n");
    }
    content.push('.');
    let r = c.cmd(&content);
    println!("content on a full disk: {r}");
    assert!(r.is("452 4.3.1") || r.is("451 4.3.0"), "{r}");
    refused.insert("never".to_string());
    // The session is still in step.
    c.expect("NOOP", "250 ");
    c.quit();

    // 4. Room again: everything accepted is delivered, once; nothing refused appears.
    drop(filler);
    fs::remove_file(fs.path.join("filler")).unwrap();
    let r = send(port, "after", 20_000);
    assert!(r.starts_with("250 2.0.0 Ok: queued as"), "{r}");
    accepted.insert("after".to_string());
    let delivered = subjects(&server.wait_mail("bob", accepted.len()));
    let unique: BTreeSet<String> = delivered.iter().cloned().collect();
    assert_eq!(delivered.len(), unique.len(), "a duplicate: {delivered:?}");
    assert_eq!(unique, accepted);
    assert!(unique.is_disjoint(&refused));
    // The spool holds nothing more.
    std::thread::sleep(Duration::from_millis(300));
    println!(
        "disk pressure: refused at MAIL after {step} MB filled ({free_at_refusal} octets free), \
         {} accepted and delivered, {} refused, in {:?}",
        accepted.len(),
        refused.len(),
        started.elapsed()
    );
    let queue = Command::new(crate::common::RELAIS)
        .args(["queue", "--config"])
        .arg(&server.config)
        .arg("list")
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&queue.stdout);
    assert!(
        queue.status.success(),
        "{listing}{}",
        String::from_utf8_lossy(&queue.stderr)
    );
    assert!(!listing.contains("bob@local.test"), "{listing}");
}
