//! What a local part at one of our domains is: an alias (of `[local] aliases` or of its
//! domain's file, or a catch-all), a mailbox, or nobody. The order is Postfix's: the address's
//! own alias first, then the domain's users, then the catch-all.
//!
//! | domain                    | looked up, in order                                              |
//! |---------------------------|------------------------------------------------------------------|
//! | a `local_domains` one `d` | `user@d` then `user` in `[local] aliases`; `[local] users` (all when empty, `postmaster` always); `@d` in `[local] aliases` |
//! | a `[[domain]]` `d`        | `user@d` in `[local] aliases`; `user` in d's aliases file; d's users; `postmaster` as in `local_domains`; `@d` in `[local] aliases`; d's `catch_all` |
//!
//! Mailboxes of `local_domains` are named by their local part (`alice`, Maildir
//! `mail/alice`), or with `mailbox = "home"` by `~` and the system user (`~alice`,
//! `~alice/Maildir`, its `.forward` an alias labelled `~alice` found before the mailbox); those of a virtual domain by domain and local part (`a.example/alice`, Maildir
//! `mail/a.example/alice`), so the same local part in two domains is two mailboxes.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use relais_config::{DomainConfig, is_safe_local_part};
use relais_queue::Target;

use crate::aliases::{AliasError, Aliases};
use crate::srs::Srs;

/// Recipient policy built from the configuration.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Domains delivered here that share one namespace of users, lower case.
    pub(crate) local_domains: Vec<String>,
    /// Existing local parts of `local_domains`, lower case; empty for catch-all.
    pub(crate) users: Vec<String>,
    /// The aliases file (`[local] aliases`), when one is configured.
    pub(crate) aliases: Option<Arc<AliasFile>>,
    /// Virtual domains, each its own namespace.
    pub(crate) domains: Vec<VirtualDomain>,
    /// The Sender Rewriting Scheme, when on: its bounce addresses are ours.
    pub(crate) srs: Option<Srs>,
    /// `mailbox = "home"`: the local parts of `local_domains` are system users (`~user`).
    pub(crate) home: bool,
}

/// The aliases file, parsed again when it changes on disk (size, time or inode).
#[derive(Debug)]
pub struct AliasFile {
    /// The file.
    path: PathBuf,
    /// The last parse, with the stamp of the file it came from.
    cache: Mutex<Option<(FileStamp, Arc<Aliases>)>>,
}

/// What tells one version of a file from the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl AliasFile {
    /// The aliases at `path`, read on first use.
    pub fn new(path: &Path) -> AliasFile {
        AliasFile {
            path: path.to_path_buf(),
            cache: Mutex::new(None),
        }
    }

    /// The current aliases: the cached parse while the file is unchanged, else a new one.
    pub fn get(&self) -> Result<Arc<Aliases>, AliasError> {
        let meta = std::fs::metadata(&self.path).map_err(|source| AliasError::Read {
            path: self.path.clone(),
            source,
        })?;
        let stamp = FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((s, a)) = cache.as_ref()
            && *s == stamp
        {
            return Ok(a.clone());
        }
        let aliases = Arc::new(Aliases::load(&self.path)?);
        *cache = Some((stamp, aliases.clone()));
        Ok(aliases)
    }
}

/// A virtual domain, as routing sees it.
#[derive(Debug, Clone)]
pub(crate) struct VirtualDomain {
    /// The domain, lower case.
    pub name: String,
    /// Its users' local parts, lower case.
    pub users: Vec<String>,
    /// Its own aliases file.
    pub aliases: Option<Arc<AliasFile>>,
    /// The address its unknown local parts go to.
    pub catch_all: Option<String>,
}

impl VirtualDomain {
    pub fn new(d: &DomainConfig) -> VirtualDomain {
        VirtualDomain {
            name: d.name.clone(),
            users: d.users.clone(),
            aliases: d.aliases.as_deref().map(|p| {
                let file = AliasFile::new(p);
                match file.get() {
                    Ok(a) => tracing::info!("aliases of {}: {} names", d.name, a.len()),
                    Err(e) => tracing::warn!("aliases of {}: {e}", d.name),
                }
                Arc::new(file)
            }),
            catch_all: d.catch_all_address(),
        }
    }
}

/// Which namespace a local part belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The shared namespace of `local_domains` (and of the bare `postmaster`).
    Classic,
    /// A virtual domain, by its index in the policy.
    Virtual(usize),
}

/// Where an alias's targets come from.
#[derive(Debug, Clone)]
enum Source {
    /// An entry of an aliases file.
    File(Arc<Aliases>, String),
    /// A domain's `catch_all`: one address.
    CatchAll(String),
    /// A user's `~/.forward`, read as the entry of that user: its commands and files run as
    /// that user.
    Forward(Arc<Aliases>, String),
}

/// An alias that was found.
#[derive(Debug, Clone)]
pub(crate) struct AliasRef {
    /// Its name for routes, logs and loop chains: `name` for one of `[local] aliases` without
    /// a domain, else `user@domain` (`@domain` for a catch-all).
    pub label: String,
    /// Where its targets are.
    source: Source,
    /// The namespace of its bare targets: that of the file it is written in.
    pub scope: Scope,
}

impl AliasRef {
    /// The `.forward` of `user` (read as the entry `user` of `aliases`), found under `label`.
    pub(crate) fn forward(label: String, aliases: Arc<Aliases>, user: String) -> Self {
        AliasRef {
            label,
            source: Source::Forward(aliases, user),
            scope: Scope::Classic,
        }
    }

    /// Its targets as its file says (forwards not followed).
    pub fn targets(&self) -> Result<Vec<Target>, AliasError> {
        match &self.source {
            Source::File(aliases, key) => Ok(aliases.expand(key)?.unwrap_or_default()),
            Source::CatchAll(address) => Ok(vec![Target::Forward(address.clone())]),
            Source::Forward(aliases, user) => Ok(aliases
                .expand(user)?
                .unwrap_or_default()
                .into_iter()
                .map(|t| match t {
                    Target::Pipe(c) => Target::UserPipe(user.clone(), c),
                    Target::File(p) => Target::UserFile(user.clone(), p),
                    other => other,
                })
                .collect()),
        }
    }
}

/// What a local part is.
#[derive(Debug, Clone)]
pub(crate) enum Found {
    /// An alias.
    Alias(AliasRef),
    /// A mailbox, by its name.
    Mailbox(String),
    /// Nobody.
    Unknown,
}

impl Policy {
    /// The namespace of `domain` (any case), `None` when it is not ours. The empty domain is
    /// that of the bare `postmaster`.
    pub(crate) fn scope_of(&self, domain: &str) -> Option<Scope> {
        let d = domain.to_ascii_lowercase();
        if d.is_empty() || self.local_domains.contains(&d) {
            return Some(Scope::Classic);
        }
        self.domains
            .iter()
            .position(|v| v.name == d)
            .map(Scope::Virtual)
    }

    /// The entry `key` of `[local] aliases`, if the file has it.
    fn global_alias(&self, key: &str, label: &str) -> Result<Option<AliasRef>, AliasError> {
        let Some(file) = &self.aliases else {
            return Ok(None);
        };
        let aliases = file.get()?;
        Ok(aliases.contains(key).then(|| AliasRef {
            label: label.to_string(),
            source: Source::File(aliases, key.to_string()),
            scope: Scope::Classic,
        }))
    }

    /// What `local` (lower case) at `domain` (lower case, empty for the bare `postmaster`) in
    /// namespace `scope` is. An aliases file that cannot be read is an error.
    pub(crate) fn find(
        &self,
        local: &str,
        domain: &str,
        scope: Scope,
    ) -> Result<Found, AliasError> {
        let full = format!("{local}@{domain}");
        if !domain.is_empty()
            && let Some(a) = self.global_alias(&full, &full)?
        {
            return Ok(Found::Alias(a));
        }
        match scope {
            Scope::Classic => {
                if let Some(a) = self.global_alias(local, local)? {
                    return Ok(Found::Alias(a));
                }
                if let Some(m) = self.mailbox_of(local, scope) {
                    if m.starts_with('~')
                        && let Some(forward) = self.dot_forward(local)?
                    {
                        return Ok(Found::Alias(forward));
                    }
                    return Ok(Found::Mailbox(m));
                }
            }
            Scope::Virtual(i) => {
                let v = &self.domains[i];
                if let Some(file) = &v.aliases {
                    let aliases = file.get()?;
                    if aliases.contains(local) {
                        return Ok(Found::Alias(AliasRef {
                            label: full,
                            source: Source::File(aliases, local.to_string()),
                            scope,
                        }));
                    }
                }
                if let Some(m) = self.mailbox_of(local, scope) {
                    return Ok(Found::Mailbox(m));
                }
                if local == "postmaster" {
                    return self.find(local, "", Scope::Classic);
                }
            }
        }
        Ok(self
            .catch_all(domain, scope)?
            .map_or(Found::Unknown, Found::Alias))
    }

    /// The catch-all of `domain`: `@domain` in `[local] aliases`, else a virtual domain's
    /// `catch_all`.
    fn catch_all(&self, domain: &str, scope: Scope) -> Result<Option<AliasRef>, AliasError> {
        if domain.is_empty() {
            return Ok(None);
        }
        let key = format!("@{domain}");
        if let Some(a) = self.global_alias(&key, &key)? {
            return Ok(Some(a));
        }
        let Scope::Virtual(i) = scope else {
            return Ok(None);
        };
        Ok(self.domains[i].catch_all.clone().map(|address| AliasRef {
            label: key,
            source: Source::CatchAll(address),
            scope,
        }))
    }

    /// The alias a label names (see [`AliasRef::label`]), if it is still one.
    pub(crate) fn alias_by_label(&self, label: &str) -> Result<Option<AliasRef>, AliasError> {
        if let Some(user) = label.strip_prefix('~') {
            return self.dot_forward(user);
        }
        let Some((local, domain)) = label.rsplit_once('@') else {
            return self.global_alias(label, label);
        };
        let Some(scope) = self.scope_of(domain) else {
            return Ok(None);
        };
        if local.is_empty() {
            return self.catch_all(domain, scope);
        }
        Ok(match self.find(local, domain, scope)? {
            Found::Alias(a) if a.label == label => Some(a),
            _ => None,
        })
    }

    /// The mailbox `local` (lower case) names in `scope`: in `local_domains` `postmaster`, a
    /// listed user, or with no user list any local part that can name a directory (with
    /// `mailbox = "home"`, a system user: `~user`); in a virtual domain one of its users.
    pub(crate) fn mailbox_of(&self, local: &str, scope: Scope) -> Option<String> {
        match scope {
            Scope::Classic if self.home => self
                .home_mailbox(local)
                .or_else(|| (local == "postmaster").then(|| local.to_string())),
            Scope::Classic => {
                let known = if local == "postmaster" {
                    true
                } else if self.users.is_empty() {
                    is_safe_local_part(local)
                } else {
                    self.users.iter().any(|u| u == local)
                };
                known.then(|| local.to_string())
            }
            Scope::Virtual(i) => {
                let v = &self.domains[i];
                v.users
                    .iter()
                    .any(|u| u == local)
                    .then(|| format!("{}/{local}", v.name))
            }
        }
    }
}
