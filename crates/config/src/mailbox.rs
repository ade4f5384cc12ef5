//! Where the mailboxes of `local_domains` are, and how much they may hold.
//!
//! ```toml
//! [local]
//! mailbox = "home"          # ~user/Maildir of system users, written as that user
//! quota = 104857600         # bytes per mailbox (Maildir++ `maildirsize`); 0: none
//! quotas = { alice = 1048576 }   # per user, over `quota`
//!
//! [[domain]]
//! name = "a.example"
//! quota = 52428800          # each mailbox of this domain
//! quotas = { bob = 0 }      # bob has none
//! ```
//!
//! The system's password database is read here too ([`system_user`]): `mailbox = "home"`
//! names its users, and `user` and `run_as` are accounts of it.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where a mailbox of `local_domains` is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MailboxKind {
    /// `data_dir/mail/<user>`, written as relais (the default).
    #[default]
    Maildir,
    /// `~user/Maildir` of the system user named by the local part, written with that user's
    /// ids (never root's: root has no mailbox of its own, alias it); `~user/.forward` read
    /// as an alias of that user. relais must run as root for it (no `user` to become).
    Home,
}

/// A quota table: a limit for every mailbox of a namespace, and exceptions by local part.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuotaTable {
    /// Bytes per mailbox; 0: no limit.
    pub default: u64,
    /// Per local part (lower case): bytes, 0 for no limit.
    pub users: BTreeMap<String, u64>,
}

impl QuotaTable {
    /// The limit of `local` (lower case) in bytes, `None` when it has none.
    pub fn limit_of(&self, local: &str) -> Option<u64> {
        let bytes = self.users.get(local).copied().unwrap_or(self.default);
        (bytes > 0).then_some(bytes)
    }
}

/// An account of the system's password database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemUser {
    /// Its user id.
    pub uid: u32,
    /// Its primary group id.
    pub gid: u32,
    /// Its home directory.
    pub home: PathBuf,
}

/// The account `name` of the password database (`getpwnam_r`): `Ok(None)` when there is
/// none, `Err` when the database cannot be read.
pub fn system_user(name: &str) -> Result<Option<SystemUser>, String> {
    let cname = CString::new(name).map_err(|_| "a NUL in the user name".to_string())?;
    let mut size = 1024;
    loop {
        let mut buf = vec![0 as libc::c_char; size];
        // SAFETY: passwd is plain data; zeroed is a valid value to be overwritten.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call, and `buf` is as long as we say.
        let rc = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && size < 1 << 20 {
            size *= 4;
            continue;
        }
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc).to_string());
        }
        if result.is_null() {
            return Ok(None);
        }
        let home = if pwd.pw_dir.is_null() {
            PathBuf::new()
        } else {
            // SAFETY: getpwnam_r filled pw_dir with a NUL-terminated string inside `buf`.
            let dir = unsafe { CStr::from_ptr(pwd.pw_dir) };
            PathBuf::from(
                <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(dir.to_bytes()),
            )
        };
        return Ok(Some(SystemUser {
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
            home,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    #[test]
    fn mailboxes_and_quotas_are_read() {
        let c = Config::parse(
            "[local]\nmailbox = \"home\"\nquota = 100\nquotas = { Alice = 0, bob = 7 }\n",
        )
        .unwrap();
        assert_eq!(c.local.mailbox, MailboxKind::Home);
        let t = c.local.quota_table();
        assert_eq!(
            (t.limit_of("alice"), t.limit_of("bob"), t.limit_of("carol")),
            (None, Some(7), Some(100))
        );
        assert_eq!(
            Config::parse("").unwrap().local.mailbox,
            MailboxKind::Maildir
        );
        let again = Config::parse(&c.to_toml()).unwrap();
        assert_eq!(again.local.quotas, c.local.quotas);
        for (text, needles) in [
            (
                "user = \"relais\"\n[local]\nmailbox = \"home\"\n",
                ["line 3", "must stay root"],
            ),
            ("[local]\nmailbox = \"mbox\"\n", ["line 2", "mailbox"]),
        ] {
            let e = Config::parse(text).expect_err(text).to_string();
            for n in needles {
                assert!(e.contains(n), "{text:?}: {e}");
            }
        }
    }

    #[test]
    fn system_users_are_looked_up() {
        let root = system_user("root").unwrap().unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert!(!root.home.as_os_str().is_empty());
        assert_eq!(system_user("no-such-user-here"), Ok(None));
        assert!(system_user("a\0b").is_err());
    }
}
