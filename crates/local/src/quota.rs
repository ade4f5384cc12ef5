//! Maildir++ quotas: the `maildirsize` file of a Maildir (as Courier and Dovecot keep it) and
//! the verdict on a message.
//!
//! `maildirsize` holds the limit on its first line (`104857600S`, bytes; a count `…,1000C` may
//! follow) and then one line per change, `bytes count` (negative for removals): the usage is
//! their sum. Writers append a line; the file is made again from the Maildir's files (its own
//! `new/` and `cur/` and those of its `.folders`) when it is missing, unreadable, 5120 bytes or
//! longer, or written for another limit, as the Maildir++ rules say.
//!
//! The verdict ([`fits`]) is pure: the usage, the limit and the message's size in, tested as a
//! table. At RCPT the size is not known yet (1 byte: a mailbox at or over its limit is full);
//! at delivery it is the copy's.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use relais_config::{Config, QuotaTable};

/// The limits of every mailbox: those of `local_domains` (and home mailboxes), and those of
/// each virtual domain.
#[derive(Debug, Clone, Default)]
pub struct Quotas {
    /// `[local] quota` and `quotas`.
    local: QuotaTable,
    /// Each `[[domain]]`'s, by name.
    domains: HashMap<String, QuotaTable>,
}

impl Quotas {
    /// The limits a configuration sets.
    pub fn from_config(config: &Config) -> Quotas {
        Quotas {
            local: config.local.quota_table(),
            domains: config
                .domain
                .iter()
                .map(|d| (d.name.clone(), d.quota_table()))
                .collect(),
        }
    }

    /// True if some mailbox has a limit.
    pub fn any(&self) -> bool {
        self.local.default > 0
            || self.local.users.values().any(|&b| b > 0)
            || self
                .domains
                .values()
                .any(|t| t.default > 0 || t.users.values().any(|&b| b > 0))
    }

    /// The limit in bytes of a mailbox as routing names it (`alice`, `~alice`,
    /// `a.example/alice`), `None` when it has none.
    pub fn limit_of(&self, mailbox: &str) -> Option<u64> {
        let name = mailbox.strip_prefix('~').unwrap_or(mailbox);
        match name.split_once('/') {
            Some((domain, local)) => self.domains.get(domain)?.limit_of(local),
            None => self.local.limit_of(name),
        }
    }
}

/// A `maildirsize` this long or longer is made again (the Maildir++ rule).
const MAX_FILE: u64 = 5120;

/// What a Maildir holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes of its messages.
    pub bytes: u64,
    /// Its messages.
    pub messages: u64,
}

/// True if a message of `size` bytes fits in a mailbox holding `usage` under `limit` bytes.
pub fn fits(usage: Usage, limit: u64, size: u64) -> bool {
    usage.bytes.saturating_add(size.max(1)) <= limit
}

/// Reads `maildirsize`: the limit in bytes of its first line (0: none given) and the usage,
/// `None` when the text is not in the format.
pub fn parse(text: &str) -> Option<(u64, Usage)> {
    let mut lines = text.lines();
    let header = lines.next()?;
    let mut limit = 0;
    for part in header.split(',') {
        let part = part.trim();
        if let Some(n) = part.strip_suffix('S') {
            limit = n.parse().ok()?;
        } else if part
            .strip_suffix('C')
            .is_none_or(|n| n.parse::<u64>().is_err())
        {
            return None;
        }
    }
    let (mut bytes, mut messages) = (0i64, 0i64);
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let mut fields = line.split_whitespace();
        let b: i64 = fields.next()?.parse().ok()?;
        let m: i64 = fields.next()?.parse().ok()?;
        bytes = bytes.saturating_add(b);
        messages = messages.saturating_add(m);
    }
    Some((
        limit,
        Usage {
            bytes: bytes.max(0) as u64,
            messages: messages.max(0) as u64,
        },
    ))
}

/// The usage of the Maildir `dir` under `limit`, from its `maildirsize`, made again when it
/// is missing, too long or for another limit.
pub fn usage(dir: &Path, limit: u64) -> io::Result<Usage> {
    let path = dir.join("maildirsize");
    if let Ok(mut f) = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        && f.metadata()
            .is_ok_and(|m| m.is_file() && m.len() < MAX_FILE)
    {
        let mut text = String::new();
        if f.read_to_string(&mut text).is_ok()
            && let Some((l, u)) = parse(&text)
            && l == limit
        {
            return Ok(u);
        }
    }
    let u = count(dir)?;
    let tmp = dir
        .join("tmp")
        .join(format!("maildirsize.{}", std::process::id()));
    let mut f = create_private(&tmp)?;
    f.write_all(format!("{limit}S\n{} {}\n", u.bytes, u.messages).as_bytes())?;
    fs::rename(&tmp, &path)?;
    Ok(u)
}

/// Creates (or empties) a file only its owner may read, never through a link nor waiting on
/// a FIFO put in its place.
pub(crate) fn create_private(path: &Path) -> io::Result<File> {
    File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

/// Counts a change in `dir/maildirsize` (one append), when the file exists.
pub fn add(dir: &Path, bytes: u64, messages: u64) -> io::Result<()> {
    let mut f = match File::options()
        .append(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(dir.join("maildirsize"))
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    f.write_all(format!("{bytes} {messages}\n").as_bytes())
}

/// The messages of a Maildir and of its folders, from their files (the size in a name's
/// `,S=` when there is one, else the file's).
fn count(dir: &Path) -> io::Result<Usage> {
    let mut u = Usage::default();
    let mut maildirs = vec![dir.to_path_buf()];
    for e in fs::read_dir(dir)?.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name != "." && name != ".." && e.path().is_dir() {
            maildirs.push(e.path());
        }
    }
    for m in maildirs {
        for sub in ["new", "cur"] {
            let Ok(entries) = fs::read_dir(m.join(sub)) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let size = size_in_name(&name)
                    .or_else(|| e.metadata().ok().map(|m| m.len()))
                    .unwrap_or(0);
                u.bytes += size;
                u.messages += 1;
            }
        }
    }
    Ok(u)
}

/// The `,S=<bytes>` of a Maildir file name.
fn size_in_name(name: &str) -> Option<u64> {
    let rest = &name[name.find(",S=")? + 3..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_by_mailbox() {
        let c = Config::parse(
            "[local]\nquota = 1000\nquotas = { Bob = 0, carol = 50 }\n\
             [[domain]]\nname = \"a.example\"\nusers = [\"bob\"]\nquota = 70\n\
             [[domain]]\nname = \"b.example\"\nquotas = { dave = 9 }\n",
        )
        .unwrap();
        let q = Quotas::from_config(&c);
        let cases = [
            ("alice", Some(1000)),
            ("~alice", Some(1000)),
            ("bob", None),
            ("carol", Some(50)),
            ("~carol", Some(50)),
            ("a.example/bob", Some(70)),
            ("b.example/bob", None),
            ("b.example/dave", Some(9)),
            ("c.example/x", None),
        ];
        for (mailbox, want) in cases {
            assert_eq!(q.limit_of(mailbox), want, "{mailbox}");
        }
    }

    #[test]
    fn verdicts() {
        let u = |bytes| Usage { bytes, messages: 1 };
        // (usage, limit, size, fits)
        let cases = [
            (u(0), 100, 1, true),
            (u(0), 100, 100, true),
            (u(0), 100, 101, false),
            (u(99), 100, 1, true),
            (u(100), 100, 1, false),
            // At RCPT the size is unknown: 0 counts as 1 byte.
            (u(100), 100, 0, false),
            (u(99), 100, 0, true),
            (u(150), 100, 1, false),
            (u(u64::MAX), 100, 1, false),
        ];
        for (usage, limit, size, want) in cases {
            assert_eq!(fits(usage, limit, size), want, "{usage:?} {limit} {size}");
        }
    }

    #[test]
    fn maildirsize_is_read() {
        // (text, (limit, bytes, messages))
        type Read = Option<(u64, u64, u64)>;
        let cases: &[(&str, Read)] = &[
            ("1000S\n", Some((1000, 0, 0))),
            ("1000S,10C\n200 1\n300 2\n", Some((1000, 500, 3))),
            ("10C\n5 1\n", Some((0, 5, 1))),
            ("1000S\n200 1\n-50 -1\n\n", Some((1000, 150, 0))),
            ("1000S\n-500 -1\n", Some((1000, 0, 0))),
            ("", None),
            ("lots\n", None),
            ("1000S\n12\n", None),
            ("1000S\nx 1\n", None),
        ];
        for (text, want) in cases {
            let got = parse(text).map(|(l, u)| (l, u.bytes, u.messages));
            assert_eq!(&got, want, "{text:?}");
        }
        assert_eq!(size_in_name("1.Q2R0.host,S=1234:2,S"), Some(1234));
        assert_eq!(size_in_name("1.Q2R0.host"), None);
    }

    #[test]
    fn usage_is_counted_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path();
        for sub in ["tmp", "new", "cur", ".Junk/new", ".Junk/cur"] {
            fs::create_dir_all(m.join(sub)).unwrap();
        }
        fs::write(m.join("new/1.a.h,S=300"), b"x").unwrap();
        fs::write(m.join("cur/2.b.h:2,S"), b"12345").unwrap();
        fs::write(m.join(".Junk/new/3.c.h,S=20"), b"x").unwrap();
        let u = usage(m, 1000).unwrap();
        assert_eq!((u.bytes, u.messages), (325, 3));
        assert_eq!(
            fs::read_to_string(m.join("maildirsize")).unwrap(),
            "1000S\n325 3\n"
        );
        add(m, 100, 1).unwrap();
        assert_eq!(usage(m, 1000).unwrap().bytes, 425);
        // Another limit: counted again from the files.
        assert_eq!(usage(m, 2000).unwrap().bytes, 325);
        // No file: nothing to count in.
        fs::remove_file(m.join("maildirsize")).unwrap();
        add(m, 100, 1).unwrap();
        assert!(!m.join("maildirsize").exists());
        // A FIFO where maildirsize goes (a user's prank) makes nothing wait: counted again.
        let fifo = std::ffi::CString::new(m.join("maildirsize").to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo writes no memory of ours.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert!(add(m, 1, 1).is_err());
        assert_eq!(usage(m, 1000).unwrap().bytes, 325);
        assert!(fs::metadata(m.join("maildirsize")).unwrap().is_file());
    }
}
