//! Maildir delivery: write to `tmp/`, make it durable, move to `new/` (the Maildir convention:
//! a reader never sees a partial file).
//!
//! Durability is batched: the delivery worker writes a batch of files to `tmp/`, then one
//! `syncfs` makes all of them durable, then it renames them into `new/` and a second `syncfs`
//! makes the renames durable. Only then are the messages dropped from the spool. Measured here,
//! one flush for many files is several times faster than an fsync per file.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The tree of Maildirs: `root/<mailbox>/{tmp,new,cur}`.
#[derive(Debug)]
pub struct MaildirStore {
    /// `data_dir/mail`.
    root: PathBuf,
    /// Our host name, part of every file name (with `/` and `:` replaced).
    host: String,
    /// Mailboxes whose directories are known to exist.
    created: Mutex<HashSet<String>>,
}

/// A message written to `tmp/`, not yet durable nor visible.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The file in `tmp/`.
    pub tmp: PathBuf,
    /// Where it goes in `new/`.
    pub new: PathBuf,
}

impl MaildirStore {
    /// Opens (creates) the tree.
    pub fn open(root: &Path, hostname: &str) -> io::Result<Self> {
        fs::create_dir_all(root)?;
        Ok(MaildirStore {
            root: root.to_path_buf(),
            host: hostname.replace(['/', ':'], "_"),
            created: Mutex::new(HashSet::new()),
        })
    }

    /// Where the mailboxes are (`data_dir/mail`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The Maildir of a mailbox.
    pub fn path_of(&self, mailbox: &str) -> PathBuf {
        self.root.join(mailbox)
    }

    /// The mailbox name of a Maildir++ folder of `mailbox` (`alice/.Junk`), its parent
    /// Maildir created when it is new, as mail readers expect a folder's parent to be one.
    pub fn folder_of(&self, mailbox: &str, folder: &str) -> String {
        let _ = self.ensure(mailbox);
        format!("{mailbox}/.{folder}")
    }

    fn ensure(&self, mailbox: &str) -> io::Result<PathBuf> {
        let dir = self.path_of(mailbox);
        let mut created = self.created.lock().unwrap_or_else(|e| e.into_inner());
        if !created.contains(mailbox) {
            for sub in ["tmp", "new", "cur"] {
                fs::create_dir_all(dir.join(sub))?;
            }
            created.insert(mailbox.to_string());
        }
        Ok(dir)
    }

    /// Writes `head` then `body` to `tmp/<base>.<host>` in the mailbox: a name made from the
    /// queue id and recipient, so that a delivery repeated after a crash can be recognised
    /// ([`MaildirStore::already_delivered`]).
    pub fn write_named(
        &self,
        mailbox: &str,
        base: &str,
        head: &[u8],
        body: &[u8],
    ) -> io::Result<Pending> {
        let dir = self.ensure(mailbox)?;
        let name = format!("{base}.{}", self.host);
        let tmp = dir.join("tmp").join(&name);
        let mut f = File::options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        let written = f.write_all(head).and_then(|()| f.write_all(body));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        let size = head.len() + body.len();
        Ok(Pending {
            new: dir.join("new").join(format!("{name},S={size}")),
            tmp,
        })
    }

    /// True if a file whose name starts with `base` is in the mailbox's `new/` or `cur/`
    /// (a reader moves files to `cur/` and appends flags, never changing the start).
    pub fn already_delivered(&self, mailbox: &str, base: &str) -> bool {
        let dir = self.path_of(mailbox);
        let prefix = format!("{base}.");
        ["new", "cur"].iter().any(|sub| {
            fs::read_dir(dir.join(sub)).is_ok_and(|entries| {
                entries
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            })
        })
    }

    /// Makes a batch durable and visible: flush, rename into `new/`, flush the renames.
    pub fn commit(&self, batch: &[Pending]) -> io::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.sync()?;
        for p in batch {
            fs::rename(&p.tmp, &p.new)?;
        }
        self.sync()
    }

    /// Throws away files of a batch that could not be committed.
    pub fn discard(&self, batch: &[Pending]) {
        for p in batch {
            let _ = fs::remove_file(&p.tmp);
        }
    }

    /// `syncfs` on the file system that holds the Maildirs.
    fn sync(&self) -> io::Result<()> {
        let dir = File::open(&self.root)?;
        // SAFETY: syncfs takes a valid open file descriptor and has no memory effects.
        let rc = unsafe { libc::syncfs(dir.as_raw_fd()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmp_then_new() {
        let dir = tempfile::tempdir().unwrap();
        let store = MaildirStore::open(dir.path(), "host/with:odd").unwrap();
        let p = store
            .write_named("alice", "1.Q1R0", b"Head: 1\r\n", b"body\r\n")
            .unwrap();
        assert!(p.tmp.exists());
        assert!(
            fs::read_dir(dir.path().join("alice/new"))
                .unwrap()
                .next()
                .is_none()
        );
        store.commit(std::slice::from_ref(&p)).unwrap();
        assert!(!p.tmp.exists());
        assert_eq!(fs::read(&p.new).unwrap(), b"Head: 1\r\nbody\r\n");
        let name = p.new.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.ends_with(".host_with_odd,S=15"), "{name}");
        assert!(dir.path().join("alice/cur").is_dir());
        let q = store.write_named("alice", "1.Q1R1", b"", b"x").unwrap();
        assert_ne!(p.new, q.new);
    }
}
