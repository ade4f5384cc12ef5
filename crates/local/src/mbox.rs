//! `/path/file` delivery: append to a file in mbox format (the "mboxrd" variant).
//!
//! Each message becomes
//! ```text
//! From sender@example.org Sun Nov 22 13:45:52 2026
//! <the message, LF line endings, lines matching ^>*From  get one more '>'>
//! <blank line>
//! ```
//! - The date of the `From ` line is `when` in UTC, in `asctime` form. The sender is
//!   `MAILER-DAEMON` for the null sender; white space in it becomes `_` so that the line still
//!   parses.
//! - The file is opened with `O_APPEND` (created `0600` if missing, never through a symbolic link)
//!   and locked with `flock(LOCK_EX)`, which mail readers such as mutt and Dovecot can be set to
//!   honour; no dot-lock and no `fcntl` lock are taken. The whole entry goes out in one write;
//!   on a write error the file is cut back to its size before, so no half message stays.
//! - The data is `fsync`ed (and the directory too when the file was new) before `Delivered`.
//! - A character device (`/dev/null`) is written to without lock or sync.
//!
//! Errors ([`error_outcome`]): a full disk (`ENOSPC` 4.3.1), a quota (`EDQUOT`, `EFBIG` 4.2.2),
//! a lock held too long (4.2.0) and unknown errors (4.3.0) are retried; what an operator must
//! fix (missing directory, no permission, not a regular file) fails with 5.2.0, as Postfix's
//! local(8) does, so the sender learns of it instead of waiting five days.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use relais_proto::date::DateTime;
use relais_queue::Outcome;

/// How long to wait for a lock held by someone else (a mail reader rewriting the file).
pub const LOCK_WAIT: Duration = Duration::from_secs(30);

/// Appends `message` for `sender` to the mbox file `path`. Blocking: call it from a blocking
/// thread.
pub fn append(path: &Path, sender: &str, message: &[u8], when: SystemTime) -> Outcome {
    let entry = entry(sender, message, when);
    match write_entry(path, &entry) {
        Ok(()) => Outcome::Delivered(format!("appended to {}", path.display())),
        Err(Failure::Io(what, e)) => error_outcome(path, what, &e),
        Err(Failure::Locked) => Outcome::deferred(
            "4.2.0",
            format!("{} is locked by another process", path.display()),
        ),
        Err(Failure::NotAFile) => {
            Outcome::failed("5.2.0", format!("{} is not a regular file", path.display()))
        }
    }
}

/// Why a write did not happen.
enum Failure {
    /// A system call failed: which step, and how.
    Io(&'static str, io::Error),
    /// The lock could not be had within [`LOCK_WAIT`].
    Locked,
    /// The path names a directory, a FIFO, a socket.
    NotAFile,
}

fn io_step(what: &'static str) -> impl FnOnce(io::Error) -> Failure {
    move |e| Failure::Io(what, e)
}

fn write_entry(path: &Path, entry: &[u8]) -> Result<(), Failure> {
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(io_step("open"))?;
    let meta = file.metadata().map_err(io_step("stat"))?;
    if meta.file_type().is_char_device() {
        return file.write_all(entry).map_err(io_step("write"));
    }
    if !meta.is_file() {
        return Err(Failure::NotAFile);
    }
    lock(&file)?;
    // Under the lock, nobody else appends: this is where our entry starts.
    let before = file.metadata().map_err(io_step("stat"))?.len();
    if let Err(e) = file.write_all(entry).and_then(|()| file.sync_data()) {
        let _ = file.set_len(before);
        let _ = file.sync_data();
        return Err(Failure::Io("write", e));
    }
    if before == 0
        && let Some(dir) = path.parent()
    {
        // A new file: make its directory entry durable too.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_step("sync the directory of"))?;
    }
    Ok(())
    // The lock goes with the descriptor.
}

/// Takes an exclusive `flock`, waiting up to [`LOCK_WAIT`].
fn lock(file: &File) -> Result<(), Failure> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        // SAFETY: flock(2) on a descriptor we own; no memory is passed.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EWOULDBLOCK) && e.kind() != io::ErrorKind::Interrupted {
            return Err(Failure::Io("lock", e));
        }
        if start.elapsed() >= LOCK_WAIT {
            return Err(Failure::Locked);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// What an I/O error during `what` means for the recipient.
pub fn error_outcome(path: &Path, what: &str, e: &io::Error) -> Outcome {
    let reason = format!("cannot {what} {}: {e}", path.display());
    match e.raw_os_error() {
        Some(libc::ENOSPC) => Outcome::deferred("4.3.1", reason),
        Some(libc::EDQUOT | libc::EFBIG) => Outcome::deferred("4.2.2", reason),
        Some(
            libc::ENOENT
            | libc::ENOTDIR
            | libc::EACCES
            | libc::EPERM
            | libc::EISDIR
            | libc::ELOOP
            | libc::ENXIO,
        ) => Outcome::failed("5.2.0", reason),
        _ => Outcome::deferred("4.3.0", reason),
    }
}

/// The bytes of one mbox entry: `From ` line, quoted message with LF endings, blank line.
pub fn entry(sender: &str, message: &[u8], when: SystemTime) -> Vec<u8> {
    let sender = if sender.is_empty() {
        "MAILER-DAEMON".to_string()
    } else {
        sender
            .chars()
            .map(|c| {
                if c.is_whitespace() || c.is_control() {
                    '_'
                } else {
                    c
                }
            })
            .collect()
    };
    let mut out = Vec::with_capacity(message.len() + message.len() / 50 + 80);
    out.extend_from_slice(format!("From {sender} {}\n", asctime(when)).as_bytes());
    for line in message.split_inclusive(|&b| b == b'\n') {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        let unquoted = body.iter().position(|&b| b != b'>').unwrap_or(body.len());
        if body[unquoted..].starts_with(b"From ") {
            out.push(b'>');
        }
        out.extend_from_slice(body);
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

/// `when` in UTC as `asctime` writes it: `Sun Nov 22 13:45:52 2026` (day padded with a space).
pub fn asctime(when: SystemTime) -> String {
    DateTime::from_system(when).asctime()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::UNIX_EPOCH;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn asctime_dates() {
        assert_eq!(asctime(at(0)), "Thu Jan  1 00:00:00 1970");
        assert_eq!(asctime(at(1_795_873_552)), "Sat Nov 28 13:45:52 2026");
        assert_eq!(asctime(at(951_782_400)), "Tue Feb 29 00:00:00 2000");
    }

    #[test]
    fn entries_are_quoted_and_terminated() {
        let table: &[(&str, &[u8], &str)] = &[
            (
                "a@example.org",
                b"Subject: x\r\n\r\nFrom here\r\n>From there\r\n>>From far\r\nFrom\r\n Fromage\r\n",
                "Subject: x\n\n>From here\n>>From there\n>>>From far\nFrom\n Fromage\n\n",
            ),
            ("", b"no newline at the end", "no newline at the end\n\n"),
            ("a b@c", b"bare\nLF\n", "bare\nLF\n\n"),
            ("x@y", b"", "\n"),
        ];
        for (sender, message, body) in table {
            let e = String::from_utf8(entry(sender, message, at(0))).unwrap();
            let shown = match *sender {
                "" => "MAILER-DAEMON",
                "a b@c" => "a_b@c",
                s => s,
            };
            assert_eq!(
                e,
                format!("From {shown} Thu Jan  1 00:00:00 1970\n{body}"),
                "{message:?}"
            );
        }
    }

    #[test]
    fn appends_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("box");
        for _ in 0..2 {
            let o = append(&mbox, "a@b", b"Subject: s\r\n\r\nhi\r\n", at(0));
            assert!(matches!(o, Outcome::Delivered(_)), "{o}");
        }
        let text = std::fs::read_to_string(&mbox).unwrap();
        let one = "From a@b Thu Jan  1 00:00:00 1970\nSubject: s\n\nhi\n\n";
        assert_eq!(text, format!("{one}{one}"));
        let mode = std::fs::metadata(&mbox).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let o = append(&dir.path().join("no/such/dir"), "a@b", b"x", at(0));
        assert!(
            matches!(&o, Outcome::Failed { status, .. } if status == "5.2.0"),
            "{o}"
        );
        let o = append(dir.path(), "a@b", b"x", at(0));
        assert!(
            matches!(&o, Outcome::Failed { status, .. } if status == "5.2.0"),
            "{o}"
        );
        std::os::unix::fs::symlink(&mbox, dir.path().join("link")).unwrap();
        let o = append(&dir.path().join("link"), "a@b", b"x", at(0));
        assert!(
            matches!(&o, Outcome::Failed { status, .. } if status == "5.2.0"),
            "{o}"
        );
        let o = append(Path::new("/dev/null"), "a@b", b"x", at(0));
        assert!(matches!(o, Outcome::Delivered(_)), "{o}");
    }

    #[test]
    fn error_mapping() {
        let p = Path::new("/m");
        let table: &[(i32, &str)] = &[
            (libc::ENOSPC, "4.3.1"),
            (libc::EDQUOT, "4.2.2"),
            (libc::EACCES, "5.2.0"),
            (libc::ENOENT, "5.2.0"),
            (libc::EIO, "4.3.0"),
        ];
        for &(errno, status) in table {
            let o = error_outcome(p, "write", &io::Error::from_raw_os_error(errno));
            let got = match &o {
                Outcome::Deferred { status, .. } | Outcome::Failed { status, .. } => status,
                Outcome::Delivered(_) => panic!("{o}"),
            };
            assert_eq!(got, status, "{o}");
            assert_eq!(
                matches!(o, Outcome::Failed { .. }),
                status.starts_with('5'),
                "{o}"
            );
        }
    }
}
