//! The rules of local delivery the queue manager applies: the settings of `[local]` it needs,
//! loop signs in a message's header, and the identity alias commands and files run under.
//!
//! - Loops: a message whose header already has `Delivered-To: <the recipient>` (we add one at
//!   every local delivery and to every forwarded copy), or more than [`MAX_RECEIVED`]
//!   `Received` headers, is not delivered but bounced with `5.4.6`, as Postfix's local(8) does.
//! - Identity: when relais runs as root, `|command` targets run as `[local] run_as` (uid and
//!   primary group, no supplementary groups) and `/path/file` targets are opened with that
//!   user's file-system ids ([`append_file`]), so an alias can only write where that user may.
//!   When relais does not run as root, both run as relais' own user.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use relais_config::{LmtpTarget, LocalConfig};
use relais_queue::Outcome;
use relais_queue::headers::headers_of;

use crate::mbox;

/// More `Received` headers than this and a message is taken to be looping (Postfix's
/// `hopcount_limit`).
pub const MAX_RECEIVED: usize = 50;

/// How long an LMTP server may take for each step (connect, each reply, taking the data).
pub const LMTP_TIMEOUT: Duration = Duration::from_secs(300);

/// What the queue manager needs for local delivery.
#[derive(Debug, Clone, Default)]
pub struct LocalSettings {
    /// Deliver mailboxes over LMTP here instead of to Maildirs.
    pub lmtp: Option<LmtpTarget>,
    /// Run commands and write files as this (uid, gid); `None`: as this process.
    pub run_as: Option<(u32, u32)>,
    /// How long an alias command may run.
    pub command_timeout: Duration,
    /// The mailboxes' limits (`[local] quota`, `[[domain]] quota`).
    pub quotas: crate::quota::Quotas,
}

impl LocalSettings {
    /// The settings of `[local]`. The `run_as` user is looked up only when it matters: relais
    /// runs as root and an aliases file is configured. It may not be root.
    pub fn from_config(local: &LocalConfig) -> Result<LocalSettings, String> {
        let lmtp = local.lmtp.clone();
        // SAFETY: geteuid has no arguments and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        let run_as = if root && local.aliases.is_some() {
            let (uid, gid) = lookup_user(&local.run_as)
                .map_err(|e| format!("[local] run_as = {:?}: {e}", local.run_as))?;
            if uid == 0 {
                return Err(format!(
                    "[local] run_as = {:?}: alias commands and files never run as root",
                    local.run_as
                ));
            }
            Some((uid, gid))
        } else {
            None
        };
        Ok(LocalSettings {
            lmtp,
            run_as,
            command_timeout: local.command_timeout,
            quotas: Default::default(),
        })
    }
}

/// The uid and primary gid of a user, from the password database.
pub fn lookup_user(name: &str) -> Result<(u32, u32), String> {
    match relais_config::system_user(name)? {
        Some(u) => Ok((u.uid, u.gid)),
        None => Err("no such user".into()),
    }
}

/// The ids a command or file of the system user `name`'s `~/.forward` runs with: that user's
/// when relais is root (never root's own: that fails), relais' own otherwise (`None`). A user
/// that is gone fails the target.
pub fn forward_owner(name: &str) -> Result<Option<(u32, u32)>, Outcome> {
    // SAFETY: geteuid has no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    match relais_config::system_user(name) {
        Ok(Some(u)) if u.uid != 0 => Ok(Some((u.uid, u.gid))),
        Ok(Some(_)) => Err(Outcome::failed(
            "5.7.1",
            format!("~{name}/.forward: commands and files never run as root"),
        )),
        Ok(None) => Err(Outcome::failed(
            "5.1.1",
            format!("~{name}/.forward: no such system user any more"),
        )),
        Err(e) => Err(Outcome::deferred(
            "4.3.0",
            format!("cannot look up the system user {name}: {e}"),
        )),
    }
}

/// The loop signs in a message's header.
#[derive(Debug, Clone, Default)]
pub struct LoopCheck {
    /// How many `Received` headers.
    received: usize,
    /// The addresses of the `Delivered-To` headers, lower case.
    delivered_to: HashSet<String>,
}

impl LoopCheck {
    /// Reads the header of a stored message (CRLF line ends, up to the first empty line).
    pub fn of(message: &[u8]) -> LoopCheck {
        let mut check = LoopCheck::default();
        for line in headers_of(message).split(|&b| b == b'\n') {
            if let Some(_value) = header_value(line, "received") {
                check.received += 1;
            } else if let Some(value) = header_value(line, "delivered-to") {
                let v = String::from_utf8_lossy(value);
                let v = v.trim();
                let v = v
                    .strip_prefix('<')
                    .and_then(|x| x.strip_suffix('>'))
                    .unwrap_or(v);
                check.delivered_to.insert(v.to_lowercase());
            }
        }
        check
    }

    /// `Some(failure)` if delivering to `address` would continue a loop.
    pub fn check(&self, address: &str) -> Option<Outcome> {
        if self.received > MAX_RECEIVED {
            return Some(Outcome::failed(
                "5.4.6",
                format!(
                    "mail forwarding loop: {} Received headers (more than {MAX_RECEIVED})",
                    self.received
                ),
            ));
        }
        if self.delivered_to.contains(&address.to_lowercase()) {
            return Some(Outcome::failed(
                "5.4.6",
                format!("mail forwarding loop for {address}: it has a Delivered-To header for it"),
            ));
        }
        None
    }
}

/// The value of a header line if its name is `name` (any case).
fn header_value<'a>(line: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let n = name.len();
    if line.len() > n && line[..n].eq_ignore_ascii_case(name.as_bytes()) && line[n] == b':' {
        Some(&line[n + 1..])
    } else {
        None
    }
}

/// Appends `message` to the mbox file `path` (see [`mbox::append`]), with the file-system ids
/// of `user` when given. Blocking: call it from a blocking thread.
pub fn append_file(
    user: Option<(u32, u32)>,
    path: &Path,
    sender: &str,
    message: impl std::io::Read,
    when: SystemTime,
) -> Outcome {
    match user {
        None => mbox::append(path, sender, message, when),
        Some(ids) => match as_user(ids, || mbox::append(path, sender, message, when)) {
            Ok(o) => o,
            Err(e) => Outcome::deferred(
                "4.3.0",
                format!(
                    "cannot take uid {} gid {} to write {}: {e}",
                    ids.0,
                    ids.1,
                    path.display()
                ),
            ),
        },
    }
}

/// Runs `f` on this thread with the file-system user and group ids `(uid, gid)` and no
/// supplementary groups, then puts the thread's ids back.
///
/// Linux keeps credentials per thread: `setfsuid`, `setfsgid` and the raw `setgroups` system
/// call (not the C library's, which changes every thread) change this thread only, so the rest
/// of the server keeps running as root meanwhile. A file-system uid other than 0 also drops the
/// file capabilities (`CAP_DAC_OVERRIDE`, …); they come back with uid 0.
pub(crate) fn as_user<T>((uid, gid): (u32, u32), f: impl FnOnce() -> T) -> Result<T, String> {
    // SAFETY: getgroups with a zero size only counts.
    let count = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    let mut groups: Vec<libc::gid_t> = vec![0; count.max(0) as usize];
    // SAFETY: `groups` has room for `count` entries.
    let count = unsafe { libc::getgroups(count, groups.as_mut_ptr()) };
    if count < 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    groups.truncate(count as usize);
    // SAFETY: setgroups(0, NULL) on this thread; no memory is written.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_setgroups,
            0 as libc::size_t,
            std::ptr::null::<libc::gid_t>(),
        )
    };
    if rc != 0 {
        return Err(format!("setgroups: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: these calls change ids of this thread and touch no memory. An invalid id (-1)
    // changes nothing and returns the current id: that is how the switch is checked.
    let (old_gid, old_uid, now_uid, now_gid) = unsafe {
        let old_gid = libc::setfsgid(gid);
        let old_uid = libc::setfsuid(uid);
        (
            old_gid,
            old_uid,
            libc::setfsuid(u32::MAX),
            libc::setfsgid(u32::MAX),
        )
    };
    let result = if now_uid as u32 == uid && now_gid as u32 == gid {
        Ok(f())
    } else {
        Err(format!(
            "the file-system ids stayed {now_uid}:{now_gid} (is relais root?)"
        ))
    };
    // SAFETY: as above; `groups` holds `groups.len()` entries.
    unsafe {
        libc::setfsuid(old_uid as u32);
        libc::setfsgid(old_gid as u32);
        libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr());
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(head: &str) -> Vec<u8> {
        format!("{head}\r\nSubject: x\r\n\r\nReceived: in the body\r\nDelivered-To: b@x\r\n")
            .into_bytes()
    }

    #[test]
    fn loop_signs() {
        let m = message("Received: from a\r\n\tby b; date\r\nDelivered-To: Alice@Example.com");
        let c = LoopCheck::of(&m);
        assert_eq!(c.received, 1);
        assert!(c.check("bob@example.com").is_none());
        // Only the header counts, not the body.
        assert!(c.check("b@x").is_none());
        match c.check("alice@EXAMPLE.com") {
            Some(Outcome::Failed { status, reason }) => {
                assert_eq!(status, "5.4.6");
                assert!(reason.contains("mail forwarding loop"), "{reason}");
            }
            o => panic!("{o:?}"),
        }
        let c = LoopCheck::of(&message("delivered-to:<carol@example.com>"));
        assert!(c.check("carol@example.com").is_some());

        let hops = |n: usize| message(&"Received: from x by y; date\r\n".repeat(n));
        assert!(LoopCheck::of(&hops(50)).check("a@b").is_none());
        match LoopCheck::of(&hops(51)).check("a@b") {
            Some(Outcome::Failed { status, reason }) => {
                assert_eq!(status, "5.4.6");
                assert!(reason.contains("51 Received"), "{reason}");
            }
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn users_are_looked_up() {
        assert_eq!(lookup_user("root"), Ok((0, 0)));
        assert!(lookup_user("no-such-user-here").is_err());
        assert!(lookup_user("a\0b").is_err());
    }

    #[test]
    fn settings_from_config() {
        let mut c = LocalConfig {
            lmtp: LmtpTarget::parse("unix:/run/lmtp"),
            ..LocalConfig::default()
        };
        let s = LocalSettings::from_config(&c).unwrap();
        assert_eq!(s.lmtp, Some(LmtpTarget::Unix("/run/lmtp".into())));
        assert_eq!(s.run_as, None, "no aliases, no user needed");
        // SAFETY: no arguments.
        if unsafe { libc::geteuid() } == 0 {
            c.aliases = Some("/etc/aliases".into());
            c.run_as = "root".into();
            let e = LocalSettings::from_config(&c).unwrap_err();
            assert!(e.contains("never run as root"), "{e}");
            c.run_as = "no-such-user-here".into();
            assert!(LocalSettings::from_config(&c).is_err());
        }
    }

    /// The file-system uid of the calling thread, from /proc.
    fn thread_fsuid() -> u32 {
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
        let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        uid.split_whitespace().nth(4).unwrap().parse().unwrap()
    }

    #[test]
    fn files_are_written_as_the_user_on_this_thread_only() {
        // SAFETY: no arguments.
        if unsafe { libc::geteuid() } != 0 {
            return; // Only root can switch; otherwise files are written as ourselves.
        }
        let Ok(nobody) = lookup_user("nobody") else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let closed = dir.path().join("closed");
        std::fs::create_dir(&closed).unwrap();
        std::fs::set_permissions(&closed, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();

        let before = thread_fsuid();
        let other = std::thread::spawn(|| {
            std::thread::sleep(Duration::from_millis(200));
            thread_fsuid()
        });
        let inside = as_user(nobody, thread_fsuid).unwrap();
        assert_eq!(inside, nobody.0);
        assert_eq!(other.join().unwrap(), before, "another thread was changed");
        assert_eq!(thread_fsuid(), before, "not put back");

        let when = SystemTime::UNIX_EPOCH;
        let o = append_file(Some(nobody), &open.join("box"), "a@b", &b"hi\r\n"[..], when);
        assert!(matches!(o, Outcome::Delivered(_)), "{o}");
        let meta = std::fs::metadata(open.join("box")).unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), nobody.0);
        // Root may write there; nobody may not.
        let o = append_file(
            Some(nobody),
            &closed.join("box"),
            "a@b",
            &b"hi\r\n"[..],
            when,
        );
        assert!(
            matches!(&o, Outcome::Failed { status, .. } if status == "5.2.0"),
            "{o}"
        );
        let o = append_file(None, &closed.join("box"), "a@b", &b"hi\r\n"[..], when);
        assert!(matches!(o, Outcome::Delivered(_)), "{o}");
    }
}
