//! `mailbox = "home"`: the local parts of `local_domains` are the system's users, each with
//! the Maildir in its home (mailbox `~user`, written as that user by relais-local), and
//! `~user/.forward` read as that user's alias with the rules of an aliases file (targets
//! separated by commas or lines, `\user` or the user's own name for a copy in the mailbox,
//! `:include:`, `:fail:`; its commands run and its files are written as the user, never as
//! `run_as`). Root has no mailbox: mail for it must be aliased.
//!
//! A `.forward` is honoured only when it is a regular file (not a link) owned by its user or
//! root and writable by no one else, as a file that others can change would let them read the
//! user's mail; one that is not is ignored, with a warning, and the mail goes to the mailbox.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

use relais_config::system_user;

use crate::aliases::{AliasError, Aliases};
use crate::lookup::{AliasRef, Policy};

/// The label of a user's `.forward` among aliases: `~user`.
pub(crate) fn forward_label(user: &str) -> String {
    format!("~{user}")
}

/// The text of a `.forward` as one entry of an aliases file for `user`: its targets joined
/// with commas, comments and blank lines left out; `None` when it names no target.
pub(crate) fn forward_entry(user: &str, text: &str) -> Option<String> {
    let targets: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    if targets.is_empty() {
        return None;
    }
    Some(format!("{user}: {}\n", targets.join(",\n  ")))
}

impl Policy {
    /// The home mailbox of `local` (lower case): `~local` when it is a system user other than
    /// root (and in `[local] users`, when that list is not empty).
    pub(crate) fn home_mailbox(&self, local: &str) -> Option<String> {
        if !self.users.is_empty() && !self.users.iter().any(|u| u == local) {
            return None;
        }
        match system_user(local) {
            Ok(Some(u)) if u.uid != 0 => Some(format!("~{local}")),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!("cannot look up the system user {local}: {e}");
                None
            }
        }
    }

    /// The `.forward` of the home mailbox `~user` as an alias, when it has a usable one.
    pub(crate) fn dot_forward(&self, user: &str) -> Result<Option<AliasRef>, AliasError> {
        let Some(account) = system_user(user).ok().flatten().filter(|u| u.uid != 0) else {
            return Ok(None);
        };
        let path = account.home.join(".forward");
        let Some(text) = read_forward(&path, account.uid)? else {
            return Ok(None);
        };
        let Some(entry) = forward_entry(user, &text) else {
            return Ok(None);
        };
        let aliases = Arc::new(Aliases::parse(&entry, &path)?);
        Ok(Some(AliasRef::forward(
            forward_label(user),
            aliases,
            user.to_string(),
        )))
    }
}

/// The text of a `.forward`, `None` when there is none or it may not be trusted.
fn read_forward(path: &Path, uid: u32) -> Result<Option<String>, AliasError> {
    let read_error = |source| AliasError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut file = match File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // A link (ELOOP with O_NOFOLLOW) or a home we may not enter: ignored.
        Err(e) => {
            tracing::warn!("{}: ignored: {e}", path.display());
            return Ok(None);
        }
    };
    let meta = file.metadata().map_err(read_error)?;
    let trusted =
        meta.is_file() && (meta.uid() == uid || meta.uid() == 0) && meta.mode() & 0o022 == 0;
    if !trusted {
        tracing::warn!(
            "{}: ignored: not a regular file of its user, or writable by others",
            path.display()
        );
        return Ok(None);
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(read_error)?;
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_files_become_entries() {
        let cases: &[(&str, Option<&str>)] = &[
            ("", None),
            ("# nothing\n\n", None),
            ("bob@example.org\n", Some("alice: bob@example.org\n")),
            (
                "\\alice, bob@example.org\n# away\n\"|/usr/bin/vacation alice\"\n",
                Some("alice: \\alice, bob@example.org,\n  \"|/usr/bin/vacation alice\"\n"),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(forward_entry("alice", text).as_deref(), *want, "{text:?}");
        }
        let e = forward_entry("alice", "\\alice, bob@example.org\ncarol\n").unwrap();
        let a = Aliases::parse(&e, Path::new("/home/alice/.forward")).unwrap();
        assert_eq!(
            a.expand("alice").unwrap().unwrap(),
            [
                relais_queue::Target::Mailbox("alice".into()),
                relais_queue::Target::Forward("bob@example.org".into()),
                relais_queue::Target::Mailbox("carol".into()),
            ]
        );
    }
}
