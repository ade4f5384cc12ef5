//! Maildir delivery: write to `tmp/`, make it durable, move to `new/` (the Maildir convention:
//! a reader never sees a partial file).
//!
//! Durability is batched: the delivery worker writes a batch of files to `tmp/`, then one
//! `syncfs` makes all of them durable, then it renames them into `new/` and a second `syncfs`
//! makes the renames durable. Only then are the messages dropped from the spool. Measured here,
//! one flush for many files is several times faster than an fsync per file.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs::{self, DirBuilder, File};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::PIECE;
use crate::quota::{self, Usage, create_private};
use crate::rules::as_user;

/// The tree of Maildirs: `root/<mailbox>/{tmp,new,cur}`, and the home Maildirs of system
/// users (`~user`: `~user/Maildir`, written with that user's file-system ids).
#[derive(Debug)]
pub struct MaildirStore {
    /// `data_dir/mail`.
    root: PathBuf,
    /// Our host name, part of every file name (with `/` and `:` replaced).
    host: String,
    /// Mailboxes whose directories are known to exist.
    created: Mutex<HashSet<String>>,
    /// The file names in `new/` and `cur/` of each Maildir asked about by
    /// [`MaildirStore::already_delivered`], read once (sorted, for prefix lookups) and kept up
    /// to date by [`MaildirStore::commit`] until [`MaildirStore::forget_delivered`].
    seen: Mutex<HashMap<PathBuf, BTreeSet<String>>>,
}

/// Where a mailbox is, and whose ids write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The Maildir.
    pub dir: PathBuf,
    /// The (uid, gid) that writes it: a system user's home Maildir; `None`: relais itself.
    pub owner: Option<(u32, u32)>,
}

impl Place {
    /// Runs `f` with the file-system ids of the owner (when relais is root), so that nothing
    /// in a user's home is ever written, renamed or followed as root.
    pub fn run<T>(&self, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        match self.owner {
            // SAFETY: geteuid has no arguments and cannot fail.
            Some(ids) if unsafe { libc::geteuid() } == 0 => {
                as_user(ids, f).map_err(io::Error::other)?
            }
            _ => f(),
        }
    }
}

/// A message written to `tmp/`, not yet durable nor visible.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The file in `tmp/`.
    pub tmp: PathBuf,
    /// Where it goes in `new/`.
    pub new: PathBuf,
    /// The Maildir it is in, and who writes it.
    pub place: Place,
    /// Its size, for the quota's count.
    pub size: u64,
    /// The Maildir whose quota it counts against (a folder's parent), when it has one.
    pub quota: Option<PathBuf>,
}

impl MaildirStore {
    /// Opens (creates) the tree.
    pub fn open(root: &Path, hostname: &str) -> io::Result<Self> {
        fs::create_dir_all(root)?;
        Ok(MaildirStore {
            root: root.to_path_buf(),
            host: hostname.replace(['/', ':'], "_"),
            created: Mutex::new(HashSet::new()),
            seen: Mutex::new(HashMap::new()),
        })
    }

    /// Where the mailboxes are (`data_dir/mail`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a mailbox is: `root/<mailbox>`, or for `~user[/.folder]` the system user's
    /// `~/Maildir[/.folder]`, written as that user (an unknown user, or root, is an error).
    pub fn place_of(&self, mailbox: &str) -> io::Result<Place> {
        let Some(home) = mailbox.strip_prefix('~') else {
            return Ok(Place {
                dir: self.root.join(mailbox),
                owner: None,
            });
        };
        let (name, folder) = home.split_once('/').unwrap_or((home, ""));
        let user = relais_config::system_user(name)
            .map_err(io::Error::other)?
            .filter(|u| u.uid != 0)
            .ok_or_else(|| io::Error::other(format!("no system user {name} (or it is root)")))?;
        let mut dir = user.home.join("Maildir");
        if !folder.is_empty() {
            dir.push(folder);
        }
        Ok(Place {
            dir,
            owner: Some((user.uid, user.gid)),
        })
    }

    /// The mailbox name of a Maildir++ folder of `mailbox` (`alice/.Junk`), its parent
    /// Maildir created when it is new, as mail readers expect a folder's parent to be one.
    pub fn folder_of(&self, mailbox: &str, folder: &str) -> String {
        let _ = self.ensure(mailbox);
        format!("{mailbox}/.{folder}")
    }

    fn ensure(&self, mailbox: &str) -> io::Result<Place> {
        let place = self.place_of(mailbox)?;
        let mut created = self.created.lock().unwrap_or_else(|e| e.into_inner());
        if !created.contains(mailbox) {
            place.run(|| {
                for sub in ["tmp", "new", "cur"] {
                    DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(place.dir.join(sub))?;
                }
                Ok(())
            })?;
            created.insert(mailbox.to_string());
        }
        Ok(place)
    }

    /// Writes `head` then `body` (read to its end, in pieces of [`PIECE`] octets) to
    /// `tmp/<base>.<host>` in the mailbox: a name made from the queue id and recipient, so that
    /// a delivery repeated after a crash can be recognised
    /// ([`MaildirStore::already_delivered`]).
    pub fn write_named(
        &self,
        mailbox: &str,
        base: &str,
        head: &[u8],
        mut body: impl Read,
    ) -> io::Result<Pending> {
        let place = self.ensure(mailbox)?;
        let name = format!("{base}.{}", self.host);
        let tmp = place.dir.join("tmp").join(&name);
        let size = place.run(|| {
            let f = create_private(&tmp)?;
            let mut out = io::BufWriter::with_capacity(PIECE, f);
            let written = out
                .write_all(head)
                .and_then(|()| io::copy(&mut body, &mut out))
                .and_then(|n| out.flush().map(|()| head.len() as u64 + n));
            if written.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            written
        })?;
        Ok(Pending {
            new: place.dir.join("new").join(format!("{name},S={size}")),
            tmp,
            place,
            size,
            quota: None,
        })
    }

    /// How much the mailbox holds, by its Maildir++ `maildirsize` (made again from the
    /// files when it is missing, too long, or written for another limit).
    pub fn usage(&self, mailbox: &str, limit: u64) -> io::Result<Usage> {
        let place = self.ensure(mailbox)?;
        place.run(|| quota::usage(&place.dir, limit))
    }

    /// True if a file whose name starts with `base` is in the mailbox's `new/` or `cur/`
    /// (a reader moves files to `cur/` and appends flags, never changing the start). The
    /// directories are read once per Maildir, not once per message: after a crash with a
    /// large mailbox, every recovered message asks.
    pub fn already_delivered(&self, mailbox: &str, base: &str) -> bool {
        let Ok(place) = self.place_of(mailbox) else {
            return false;
        };
        let prefix = format!("{base}.");
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let names = seen.entry(place.dir.clone()).or_insert_with_key(|dir| {
            let mut names = BTreeSet::new();
            for sub in ["new", "cur"] {
                let read = place.run(|| {
                    Ok(fs::read_dir(dir.join(sub))?
                        .flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect::<Vec<_>>())
                });
                names.extend(read.unwrap_or_default());
            }
            names
        });
        names
            .range(prefix.clone()..)
            .next()
            .is_some_and(|n| n.starts_with(&prefix))
    }

    /// Drops what [`MaildirStore::already_delivered`] read (once no recovered message is left).
    pub fn forget_delivered(&self) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        *seen = HashMap::new();
    }

    /// Makes a batch durable and visible: flush, rename into `new/`, flush the renames; then
    /// counts each copy in its mailbox's `maildirsize`.
    pub fn commit(&self, batch: &[Pending]) -> io::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let roots = self.file_systems(batch);
        sync_all(&roots)?;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for p in batch {
            p.place.run(|| fs::rename(&p.tmp, &p.new))?;
            // A Maildir read for recovery stays true to what it holds.
            if let (Some(dir), Some(name)) =
                (p.new.parent().and_then(Path::parent), p.new.file_name())
                && let Some(names) = seen.get_mut(dir)
            {
                names.insert(name.to_string_lossy().into_owned());
            }
        }
        drop(seen);
        sync_all(&roots)?;
        for p in batch {
            if let Some(dir) = &p.quota
                && let Err(e) = p.place.run(|| quota::add(dir, p.size, 1))
            {
                tracing::warn!(
                    "cannot count a message in {}/maildirsize: {e}",
                    dir.display()
                );
            }
        }
        Ok(())
    }

    /// Throws away files of a batch that could not be committed.
    pub fn discard(&self, batch: &[Pending]) {
        for p in batch {
            let _ = p.place.run(|| fs::remove_file(&p.tmp));
        }
    }

    /// One directory on each file system a batch was written to: the tree's root, and the
    /// home Maildirs on other file systems.
    fn file_systems(&self, batch: &[Pending]) -> Vec<PathBuf> {
        let mut devices = Vec::new();
        let mut dirs = Vec::new();
        let candidates =
            std::iter::once(self.root.clone()).chain(batch.iter().map(|p| p.place.dir.clone()));
        for dir in candidates {
            let dev = fs::metadata(&dir).map(|m| m.dev()).ok();
            if !devices.contains(&dev) {
                devices.push(dev);
                dirs.push(dir);
            }
        }
        dirs
    }
}

/// `syncfs` on the file systems that hold these directories (opened as directories only: a
/// user's `~/Maildir` that is something else cannot make this wait).
fn sync_all(dirs: &[PathBuf]) -> io::Result<()> {
    for d in dirs {
        let dir = File::options()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NONBLOCK)
            .open(d)?;
        // SAFETY: syncfs takes a valid open file descriptor and has no memory effects.
        let rc = unsafe { libc::syncfs(dir.as_raw_fd()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmp_then_new() {
        let dir = tempfile::tempdir().unwrap();
        let store = MaildirStore::open(dir.path(), "host/with:odd").unwrap();
        let p = store
            .write_named("alice", "1.Q1R0", b"Head: 1\r\n", &b"body\r\n"[..])
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
        let q = store
            .write_named("alice", "1.Q1R1", b"", &b"x"[..])
            .unwrap();
        assert_ne!(p.new, q.new);
    }

    #[test]
    fn copies_made_before_a_restart_are_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let store = MaildirStore::open(dir.path(), "mx").unwrap();
        let a = store
            .write_named("alice", "1.Q1R0", b"", &b"a"[..])
            .unwrap();
        store.commit(std::slice::from_ref(&a)).unwrap();
        // a reader moved this one to cur/ and flagged it
        let b = store
            .write_named("alice", "1.Q2R0", b"", &b"b"[..])
            .unwrap();
        store.commit(std::slice::from_ref(&b)).unwrap();
        let name = b.new.file_name().unwrap().to_string_lossy().into_owned();
        fs::rename(
            &b.new,
            dir.path().join("alice/cur").join(format!("{name}:2,S")),
        )
        .unwrap();
        // a restart: a new store reads the Maildir once
        let store = MaildirStore::open(dir.path(), "mx").unwrap();
        // (base, delivered?)
        let table: &[(&str, bool)] = &[
            ("1.Q1R0", true),
            ("1.Q2R0", true),
            ("1.Q1R1", false),
            ("1.Q1R", false),
            ("1.Q1", false),
            ("0.Q1R0", false),
        ];
        for (base, want) in table {
            assert_eq!(store.already_delivered("alice", base), *want, "{base}");
        }
        // what is committed after the Maildir was read is known too
        let c = store
            .write_named("alice", "1.Q1R1", b"", &b"c"[..])
            .unwrap();
        store.commit(std::slice::from_ref(&c)).unwrap();
        assert!(store.already_delivered("alice", "1.Q1R1"));
        store.forget_delivered();
        assert!(store.already_delivered("alice", "1.Q2R0"), "read again");
        assert!(!store.already_delivered("bob", "1.Q1R0"), "no such Maildir");
    }
}
