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
//!   honour; no dot-lock and no `fcntl` lock are taken. The entry is written under the lock in
//!   pieces of [`PIECE`] octets as the message is read ([`Quoter`]), so a message of any size
//!   takes bounded memory; on a write or read error the file is cut back to its size before, so
//!   no half message stays.
//! - The data is `fsync`ed (and the directory too when the file was new) before `Delivered`.
//! - A character device (`/dev/null`) is written to without lock or sync.
//!
//! Errors ([`error_outcome`]): a full disk (`ENOSPC` 4.3.1), a quota (`EDQUOT`, `EFBIG` 4.2.2),
//! a lock held too long (4.2.0) and unknown errors (4.3.0) are retried; what an operator must
//! fix (missing directory, no permission, not a regular file) fails with 5.2.0, as Postfix's
//! local(8) does, so the sender learns of it instead of waiting five days.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use relais_proto::date::DateTime;
use relais_queue::Outcome;

use crate::PIECE;

/// How long to wait for a lock held by someone else (a mail reader rewriting the file).
pub const LOCK_WAIT: Duration = Duration::from_secs(30);

/// Appends `message` for `sender` to the mbox file `path`. Blocking: call it from a blocking
/// thread.
pub fn append(path: &Path, sender: &str, message: impl Read, when: SystemTime) -> Outcome {
    match write_entry(path, &from_line(sender, when), message) {
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

/// Writes the `From ` line, then the message quoted as it is read.
fn write_quoted(file: &mut File, from: &str, mut message: impl Read) -> Result<(), Failure> {
    file.write_all(from.as_bytes()).map_err(io_step("write"))?;
    let mut quoter = Quoter::default();
    let mut piece = vec![0u8; PIECE];
    let mut out = Vec::with_capacity(PIECE + PIECE / 16);
    loop {
        let n = match message.read(&mut piece) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Failure::Io("read the message for", e)),
        };
        out.clear();
        quoter.feed(&piece[..n], &mut out);
        file.write_all(&out).map_err(io_step("write"))?;
    }
    out.clear();
    quoter.finish(&mut out);
    file.write_all(&out).map_err(io_step("write"))
}

fn write_entry(path: &Path, from: &str, message: impl Read) -> Result<(), Failure> {
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(io_step("open"))?;
    let meta = file.metadata().map_err(io_step("stat"))?;
    if meta.file_type().is_char_device() {
        return write_quoted(&mut file, from, message);
    }
    if !meta.is_file() {
        return Err(Failure::NotAFile);
    }
    lock(&file)?;
    // Under the lock, nobody else appends: this is where our entry starts.
    let before = file.metadata().map_err(io_step("stat"))?.len();
    let written = write_quoted(&mut file, from, message)
        .and_then(|()| file.sync_data().map_err(io_step("write")));
    if let Err(e) = written {
        let _ = file.set_len(before);
        let _ = file.sync_data();
        return Err(e);
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

/// The `From ` line of an entry (with its LF).
fn from_line(sender: &str, when: SystemTime) -> String {
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
    format!("From {sender} {}\n", asctime(when))
}

/// The bytes of one mbox entry: `From ` line, quoted message with LF endings, blank line.
pub fn entry(sender: &str, message: &[u8], when: SystemTime) -> Vec<u8> {
    let mut out = from_line(sender, when).into_bytes();
    let mut quoter = Quoter::default();
    quoter.feed(message, &mut out);
    quoter.finish(&mut out);
    out
}

/// A message turned into the body of an mbox entry piece by piece, whatever the pieces: CRLF
/// (and a CR at the very end) becomes LF, a line matching `^>*From ` gets one more `>`, the
/// last line gets its LF, and a blank line ends the entry ([`finish`](Quoter::finish)). It keeps
/// no bytes of its own: the `>` of a quote run go out as they come (the added one is put after
/// them, which gives the same bytes), only a partial `From ` is held (four octets at most).
#[derive(Debug, Default)]
pub struct Quoter {
    /// Inside a line, past the point where quoting is decided.
    middle: bool,
    /// Octets of `From ` matched at the start of the line (after its `>`).
    from: usize,
    /// A CR that may be the first half of a line end.
    cr: bool,
    /// Something was read since the last LF.
    open: bool,
}

impl Quoter {
    const FROM: &[u8] = b"From ";

    /// Appends the entry form of `piece` to `out`.
    pub fn feed(&mut self, piece: &[u8], out: &mut Vec<u8>) {
        for &b in piece {
            if std::mem::take(&mut self.cr) && b != b'\n' {
                self.octet(b'\r', out);
            }
            match b {
                b'\r' => self.cr = true,
                b'\n' => {
                    self.flush_from(out);
                    out.push(b'\n');
                    (self.middle, self.open) = (false, false);
                    continue;
                }
                _ => self.octet(b, out),
            }
            self.open = true;
        }
    }

    /// Ends the entry: the last line's LF if it had none, then the blank line.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        self.flush_from(out);
        if self.open {
            out.push(b'\n');
        }
        out.push(b'\n');
    }

    /// One octet of a line (not a line end).
    fn octet(&mut self, b: u8, out: &mut Vec<u8>) {
        if self.middle {
            return out.push(b);
        }
        if self.from == 0 && b == b'>' {
            return out.push(b);
        }
        if b == Self::FROM[self.from] {
            self.from += 1;
            if self.from == Self::FROM.len() {
                out.extend_from_slice(b">From ");
                (self.from, self.middle) = (0, true);
            }
            return;
        }
        self.flush_from(out);
        out.push(b);
        self.middle = true;
    }

    /// The part of `From ` held, when it turned out not to be one.
    fn flush_from(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&Self::FROM[..self.from]);
        self.from = 0;
    }
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
            ("x@y", b"cr\r", "cr\n\n"),
            ("x@y", b"a\rb\r\r\nFro\rm\r\n>\r\n", "a\rb\r\nFro\rm\n>\n\n"),
            ("x@y", b">>Fr\nFrom x", ">>Fr\n>From x\n\n"),
            ("x@y", b"From", "From\n\n"),
        ];
        for (sender, message, body) in table {
            let e = String::from_utf8(entry(sender, message, at(0))).unwrap();
            // the same, whatever the pieces
            for step in 1..4 {
                let mut q = Quoter::default();
                let mut out = Vec::new();
                for piece in message.chunks(step) {
                    q.feed(piece, &mut out);
                }
                q.finish(&mut out);
                assert!(
                    e.as_bytes().ends_with(&out),
                    "{message:?} in pieces of {step}"
                );
                assert_eq!(out.len() + from_line(sender, at(0)).len(), e.len());
            }
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
            let o = append(&mbox, "a@b", &b"Subject: s\r\n\r\nhi\r\n"[..], at(0));
            assert!(matches!(o, Outcome::Delivered(_)), "{o}");
        }
        let text = std::fs::read_to_string(&mbox).unwrap();
        let one = "From a@b Thu Jan  1 00:00:00 1970\nSubject: s\n\nhi\n\n";
        assert_eq!(text, format!("{one}{one}"));
        let mode = std::fs::metadata(&mbox).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let o = append(&dir.path().join("no/such/dir"), "a@b", &b"x"[..], at(0));
        assert!(
            matches!(&o, Outcome::Failed { status, .. } if status == "5.2.0"),
            "{o}"
        );
        let o = append(dir.path(), "a@b", &b"x"[..], at(0));
        assert!(
            matches!(&o, Outcome::Failed { status, .. } if status == "5.2.0"),
            "{o}"
        );
        std::os::unix::fs::symlink(&mbox, dir.path().join("link")).unwrap();
        let o = append(&dir.path().join("link"), "a@b", &b"x"[..], at(0));
        assert!(
            matches!(&o, Outcome::Failed { status, .. } if status == "5.2.0"),
            "{o}"
        );
        let o = append(Path::new("/dev/null"), "a@b", &b"x"[..], at(0));
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
