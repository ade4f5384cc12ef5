//! Who may send to whom: the answers to the session's sender and recipient questions, and where
//! an accepted recipient goes when its message is delivered.
//!
//! Aliases (`[local] aliases`) come first: a local part that is an alias is accepted whether or
//! not it is a user. At RCPT the alias is expanded as the file says ([`Aliases::expand`]); at
//! delivery ([`Policy::destination`]) forwards to addresses in our own domains are followed too,
//! so that `a: b@here` and `b: a@here` are found to loop and bounce instead of circling.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use relais_proto::session::Verdict;
use relais_proto::{Mailbox, replies};

use relais_config::{Config, is_safe_local_part};
use relais_queue::{Outcome, Target};

use crate::aliases::{AliasError, Aliases, MAX_DEPTH};
use crate::srs::{self, Srs, SrsError};

/// Recipient policy built from the configuration.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Domains delivered here, lower case.
    local_domains: Vec<String>,
    /// Existing local parts, lower case; empty for catch-all.
    users: Vec<String>,
    /// The aliases file, when one is configured.
    aliases: Option<Arc<AliasFile>>,
    /// The Sender Rewriting Scheme, when on: its bounce addresses are ours.
    srs: Option<Srs>,
}

/// Where an accepted recipient goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A local mailbox, by its (lower-case, safe) name.
    Local(String),
    /// A local alias, by its (lower-case) name: expanded at delivery.
    Alias(String),
    /// Another domain's mail exchanger: relayed for an authenticated or trusted client.
    Relay(String),
    /// A bounce to an SRS address of ours: goes on to the original sender, by address.
    Srs(String),
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Route::Local(m) => write!(f, "local mailbox {m}"),
            Route::Alias(a) => write!(f, "alias {a}"),
            Route::Relay(d) => write!(f, "relay to {d}"),
            Route::Srs(a) => write!(f, "SRS address of {a}"),
        }
    }
}

/// Where a recipient of a queued message goes, decided when it is delivered (so that a
/// configuration change applies to queued mail, as Postfix does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A local mailbox, by its (lower-case, safe) name.
    Mailbox(String),
    /// An alias, expanded into its final targets: no [`Target::Forward`] in it names one of
    /// our domains (those were followed), and every [`Target::Mailbox`] is a mailbox that
    /// exists (an unknown one is turned into a [`Target::Fail`]).
    Alias(Vec<Target>),
    /// Another domain (lower case).
    Relay(String),
    /// Nowhere: an unknown user, an alias loop (failed), unreadable aliases (deferred).
    Nowhere(Outcome),
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

impl Policy {
    /// The policy of a configuration. An aliases file that cannot be read now is reported
    /// (RCPT answers `451 4.3.0` until it can be).
    pub fn new(config: &Config) -> Self {
        let aliases = config.local.aliases.as_deref().map(|p| {
            let file = AliasFile::new(p);
            match file.get() {
                Ok(a) => tracing::info!("aliases: {} names from {}", a.len(), p.display()),
                Err(e) => tracing::warn!("aliases: {e}"),
            }
            Arc::new(file)
        });
        let srs = Srs::from_config(config).unwrap_or_else(|e| {
            tracing::warn!("SRS is off: {e}");
            None
        });
        Policy {
            local_domains: config.local_domains.clone(),
            users: config.local.users.clone(),
            aliases,
            srs,
        }
    }

    /// The sender rewriting of forwarded copies, when it is on.
    pub fn srs(&self) -> Option<&Srs> {
        self.srs.as_ref()
    }

    /// What an SRS address of ours stands for (`None`: it is not one).
    fn srs_original(&self, to: &Mailbox) -> Option<Result<Mailbox, SrsError>> {
        let srs = self.srs.as_ref()?;
        srs.is_srs(to).then(|| srs.reverse(to, srs::today()))
    }

    /// True if mail for this domain is delivered here.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        let d = domain.to_ascii_lowercase();
        self.local_domains.contains(&d)
    }

    /// True if `local` (lower case) names a local mailbox: `postmaster`, a listed user, or with
    /// no user list any local part that can name a directory.
    fn is_user(&self, local: &str) -> bool {
        if local == "postmaster" {
            return true;
        }
        if self.users.is_empty() {
            is_safe_local_part(local)
        } else {
            self.users.iter().any(|u| u == local)
        }
    }

    /// Decides on a recipient: a local alias or mailbox, an unknown user, relaying for a
    /// client that may relay (`may_relay`: authenticated or in `relay_networks`), or
    /// `554 5.7.1 Relay access denied`.
    ///
    /// An alias is accepted when the file expands it: `:fail: text` in the expansion refuses
    /// it with `550 5.1.1` and the text, a loop with `550 5.4.6`, and a file that cannot be
    /// read with `451 4.3.0`. Forwards are not followed here (see [`Policy::destination`]).
    ///
    /// The decision rests on the domain after `@` alone. A local part is never re-parsed for a
    /// route (`user%other@`, `other!user@`, `"user@other"@` are local parts at our domain, and
    /// name no mailbox), so no address form can turn local mail into relayed mail.
    pub fn check_recipient(&self, to: &Mailbox, may_relay: bool) -> Result<Route, Verdict> {
        match self.srs_original(to) {
            Some(Ok(original)) => return Ok(Route::Srs(original.to_string())),
            Some(Err(why)) => {
                return Err(Verdict::Reject(replies::srs_refused(to, &why.to_string())));
            }
            None => {}
        }
        if !to.is_bare_postmaster() && !self.is_local_domain(&to.domain) {
            if may_relay {
                return Ok(Route::Relay(to.domain_lower()));
            }
            return Err(Verdict::Reject(replies::relay_denied(to)));
        }
        let local = to.local.to_ascii_lowercase();
        if let Some(file) = &self.aliases {
            match file.get().and_then(|a| a.expand(&local)) {
                Ok(None) => {}
                Ok(Some(targets)) => {
                    let fail = targets.iter().find_map(|t| match t {
                        Target::Fail(text) => Some(text),
                        _ => None,
                    });
                    return match fail {
                        Some(text) => Err(Verdict::Reject(replies::alias_refused(to, text))),
                        None if targets.is_empty() => {
                            Err(Verdict::Reject(replies::user_unknown(to)))
                        }
                        None => Ok(Route::Alias(local)),
                    };
                }
                Err(e) => {
                    return Err(Verdict::Reject(match e.outcome() {
                        Outcome::Failed { .. } => replies::alias_loop(to, &e.to_string()),
                        _ => {
                            tracing::warn!("aliases: {e}");
                            replies::alias_lookup_failed(to)
                        }
                    }));
                }
            }
        }
        if self.is_user(&local) {
            Ok(Route::Local(local))
        } else {
            Err(Verdict::Reject(replies::user_unknown(to)))
        }
    }

    /// Where a recipient of a stored envelope goes now: its alias expansion (with forwards to
    /// our own domains followed), its mailbox, or another domain.
    pub fn destination(&self, to: &Mailbox) -> Destination {
        match self.srs_original(to) {
            Some(Ok(original)) => {
                return Destination::Alias(vec![Target::Forward(original.to_string())]);
            }
            Some(Err(why)) => {
                return Destination::Nowhere(Outcome::failed("5.1.1", why.to_string()));
            }
            None => {}
        }
        if !to.is_bare_postmaster() && !self.is_local_domain(&to.domain) {
            return Destination::Relay(to.domain_lower());
        }
        let local = to.local.to_ascii_lowercase();
        match self.expand(&local) {
            Err(o) => Destination::Nowhere(o),
            Ok(Some(targets)) if targets.is_empty() => Destination::Nowhere(Outcome::failed(
                "5.1.1",
                format!("alias {local} expands to no recipient"),
            )),
            Ok(Some(targets)) => Destination::Alias(targets),
            Ok(None) if self.is_user(&local) => Destination::Mailbox(local),
            Ok(None) => Destination::Nowhere(Outcome::failed(
                "5.1.1",
                "no such local mailbox (the configuration changed)",
            )),
        }
    }

    /// Expands the alias `name` (lower case) into final targets, following forwards to our
    /// own domains: `Ok(None)` when it is no alias. Errors are outcomes: a loop or an expansion
    /// too deep fails (`5.4.6`), a file that cannot be read defers (`4.3.0`).
    pub fn expand(&self, name: &str) -> Result<Option<Vec<Target>>, Outcome> {
        let Some(file) = &self.aliases else {
            return Ok(None);
        };
        let aliases = file.get().map_err(|e| e.outcome())?;
        if !aliases.contains(name) {
            return Ok(None);
        }
        let mut walk = Expansion {
            policy: self,
            aliases: &aliases,
            chain: Vec::new(),
            seen: HashSet::new(),
            out: Vec::new(),
        };
        walk.alias(name)?;
        Ok(Some(walk.out))
    }

    /// The local part of `address` if its domain is one of ours.
    fn local_part_here(&self, address: &str) -> Option<String> {
        let m = Mailbox::parse(address).ok()?;
        self.is_local_domain(&m.domain)
            .then(|| m.local.to_ascii_lowercase())
    }
}

/// One expansion at delivery time.
struct Expansion<'a> {
    policy: &'a Policy,
    aliases: &'a Aliases,
    /// The aliases being expanded, reached through forwards to our domains.
    chain: Vec<String>,
    /// Targets already emitted.
    seen: HashSet<Target>,
    /// The result, in order.
    out: Vec<Target>,
}

impl Expansion<'_> {
    fn alias(&mut self, name: &str) -> Result<(), Outcome> {
        self.chain.push(name.to_string());
        if self.chain.len() > MAX_DEPTH {
            return Err(Outcome::failed(
                "5.4.6",
                format!(
                    "alias expansion deeper than {MAX_DEPTH}: {}",
                    self.chain.join(" -> ")
                ),
            ));
        }
        let targets = self
            .aliases
            .expand(name)
            .map_err(|e| e.outcome())?
            .unwrap_or_default();
        for t in targets {
            match t {
                Target::Forward(address) => match self.policy.local_part_here(&address) {
                    None => self.emit(Target::Forward(address)),
                    // `bob: bob@here`: bob keeps his own copy.
                    Some(local) if local == name => self.mailbox(local),
                    Some(local) if self.chain.contains(&local) => {
                        let mut chain = self.chain.clone();
                        chain.push(local);
                        return Err(Outcome::failed(
                            "5.4.6",
                            format!("mail forwarding loop: {}", chain.join(" -> ")),
                        ));
                    }
                    Some(local) if self.aliases.contains(&local) => self.alias(&local)?,
                    Some(local) => self.mailbox(local),
                },
                Target::Mailbox(m) => self.mailbox(m),
                other => self.emit(other),
            }
        }
        self.chain.pop();
        Ok(())
    }

    /// A mailbox target: kept if the mailbox exists, else a failure with the reason.
    fn mailbox(&mut self, name: String) {
        if self.policy.is_user(&name) {
            self.emit(Target::Mailbox(name));
        } else {
            self.emit(Target::Fail(format!(
                "alias target {name}: no such local mailbox"
            )));
        }
    }

    fn emit(&mut self, t: Target) {
        if self.seen.insert(t.clone()) {
            self.out.push(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(users: &[&str]) -> Policy {
        let mut c = Config::parse(
            "hostname = \"mx.example.com\"\nlocal_domains = [\"example.com\", \"localhost\"]",
        )
        .unwrap();
        c.local.users = users.iter().map(|s| s.to_string()).collect();
        Policy::new(&c)
    }

    impl Policy {
        fn check_recipient_unauth(&self, to: &Mailbox) -> Result<Route, Verdict> {
            self.check_recipient(to, false)
        }
    }

    fn mb(s: &str) -> Mailbox {
        relais_proto::address::parse_forward_path(s).unwrap()
    }

    #[test]
    fn catch_all_and_user_list() {
        let p = policy(&[]);
        assert_eq!(
            p.check_recipient_unauth(&mb("Anyone@Example.COM")),
            Ok(Route::Local("anyone".into()))
        );
        assert_eq!(
            p.check_recipient_unauth(&mb("postmaster")),
            Ok(Route::Local("postmaster".into()))
        );
        let p = policy(&["alice"]);
        assert_eq!(
            p.check_recipient_unauth(&mb("alice@example.com")),
            Ok(Route::Local("alice".into()))
        );
        assert_eq!(
            p.check_recipient_unauth(&mb("Postmaster@localhost")),
            Ok(Route::Local("postmaster".into()))
        );
        match p.check_recipient_unauth(&mb("bob@example.com")) {
            Err(Verdict::Reject(r)) => assert_eq!(
                r.to_string(),
                "550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown in local recipient table"
            ),
            other => panic!("{other:?}"),
        }
    }

    /// A policy with this aliases file (written in a fresh directory), users `users`, local
    /// domains example.com and localhost.
    fn with_aliases(text: &str, users: &[&str]) -> (tempfile::TempDir, Policy) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aliases");
        std::fs::write(&path, text).unwrap();
        let mut c = Config::parse(
            "hostname = \"mx.example.com\"\nlocal_domains = [\"example.com\", \"localhost\"]",
        )
        .unwrap();
        c.local.users = users.iter().map(|s| s.to_string()).collect();
        c.local.aliases = Some(path);
        (dir, Policy::new(&c))
    }

    fn rejection(r: Result<Route, Verdict>) -> String {
        match r {
            Err(Verdict::Reject(r)) => r.to_string(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn aliases_at_rcpt() {
        let (dir, p) = with_aliases(
            "staff: alice, bob@other.org, |/bin/cat, /tmp/x.mbox\n\
             gone: :fail: No such person at this address\n\
             half: alice, :fail: moved away\n\
             a: b\nb: a\n\
             list: :include: list.txt\n\
             empty: :include: empty.txt\n\
             postmaster: alice\n",
            &["alice"],
        );
        std::fs::write(dir.path().join("list.txt"), "alice\n").unwrap();
        std::fs::write(dir.path().join("empty.txt"), "# nobody yet\n").unwrap();
        // An alias need not be a user.
        assert_eq!(
            p.check_recipient_unauth(&mb("Staff@Example.com")),
            Ok(Route::Alias("staff".into()))
        );
        assert_eq!(
            p.check_recipient_unauth(&mb("postmaster")),
            Ok(Route::Alias("postmaster".into()))
        );
        assert_eq!(
            p.check_recipient_unauth(&mb("list@localhost")),
            Ok(Route::Alias("list".into()))
        );
        assert_eq!(
            rejection(p.check_recipient_unauth(&mb("gone@example.com"))),
            "550 5.1.1 <gone@example.com>: No such person at this address"
        );
        assert_eq!(
            rejection(p.check_recipient_unauth(&mb("half@example.com"))),
            "550 5.1.1 <half@example.com>: moved away"
        );
        let r = rejection(p.check_recipient_unauth(&mb("a@example.com")));
        assert!(r.starts_with("550 5.4.6 <a@example.com>: "), "{r}");
        assert!(r.contains("alias loop: a -> b -> a"), "{r}");
        assert!(
            rejection(p.check_recipient_unauth(&mb("empty@example.com"))).starts_with("550 5.1.1")
        );
        // Not an alias: the user list as before.
        assert_eq!(
            p.check_recipient_unauth(&mb("alice@example.com")),
            Ok(Route::Local("alice".into()))
        );
        assert!(rejection(p.check_recipient_unauth(&mb("carol@example.com"))).starts_with("550"));
        // Not our domain: aliases do not apply.
        assert!(rejection(p.check_recipient_unauth(&mb("staff@other.org"))).starts_with("554"));

        // An edited file is read again; an unreadable one gives 451.
        std::fs::write(dir.path().join("aliases"), "carol: alice\n").unwrap();
        assert_eq!(
            p.check_recipient_unauth(&mb("carol@example.com")),
            Ok(Route::Alias("carol".into()))
        );
        assert!(rejection(p.check_recipient_unauth(&mb("staff@example.com"))).starts_with("550"));
        std::fs::write(dir.path().join("aliases"), "broken line\n").unwrap();
        assert_eq!(
            rejection(p.check_recipient_unauth(&mb("carol@example.com"))),
            "451 4.3.0 <carol@example.com>: Temporary lookup failure"
        );
        std::fs::remove_file(dir.path().join("aliases")).unwrap();
        assert!(rejection(p.check_recipient_unauth(&mb("alice@example.com"))).starts_with("451"));
    }

    fn mailbox(n: &str) -> Target {
        Target::Mailbox(n.into())
    }

    #[test]
    fn destinations_follow_local_forwards() {
        let (_dir, p) = with_aliases(
            "staff: alice, Bob@Example.COM, carol@other.org, |/bin/prog, /tmp/f\n\
             bob: \\bob, bob@localhost\n\
             keep: keep@example.com, x@other.org\n\
             a: b@example.com\nb: a@localhost\n\
             c: d@example.com\nd: e@example.com\ne: :fail: gone\n\
             typo: zed@example.com, ../etc\n",
            &["alice", "bob", "keep"],
        );
        assert_eq!(
            p.destination(&mb("staff@example.com")),
            Destination::Alias(vec![
                mailbox("alice"),
                mailbox("bob"),
                Target::Forward("carol@other.org".into()),
                Target::Pipe("/bin/prog".into()),
                Target::File("/tmp/f".into()),
            ])
        );
        assert_eq!(
            p.destination(&mb("keep@example.com")),
            Destination::Alias(vec![mailbox("keep"), Target::Forward("x@other.org".into())])
        );
        match p.destination(&mb("a@example.com")) {
            Destination::Nowhere(Outcome::Failed { status, reason }) => {
                assert_eq!(status, "5.4.6");
                assert_eq!(reason, "mail forwarding loop: a -> b -> a");
            }
            d => panic!("{d:?}"),
        }
        assert_eq!(
            p.destination(&mb("c@example.com")),
            Destination::Alias(vec![Target::Fail("gone".into())])
        );
        match p.destination(&mb("typo@example.com")) {
            Destination::Alias(t) => {
                assert_eq!(t.len(), 2);
                assert!(t.iter().all(|t| matches!(t, Target::Fail(_))), "{t:?}");
            }
            d => panic!("{d:?}"),
        }
        assert_eq!(
            p.destination(&mb("alice@localhost")),
            Destination::Mailbox("alice".into())
        );
        assert_eq!(
            p.destination(&mb("x@Other.org")),
            Destination::Relay("other.org".into())
        );
        assert!(matches!(
            p.destination(&mb("zed@example.com")),
            Destination::Nowhere(Outcome::Failed { .. })
        ));
    }

    #[test]
    fn nothing_relays() {
        let p = policy(&[]);
        for addr in [
            "user@other.org",
            "user%other.org@elsewhere.net",
            "user@[127.0.0.1]",
            "user@example.com.evil.org",
            "\"user@other.org\"@evil.org",
        ] {
            match p.check_recipient_unauth(&mb(addr)) {
                Err(Verdict::Reject(r)) => assert_eq!(r.code, 554, "{addr}"),
                other => panic!("{addr}: {other:?}"),
            }
        }
        // a client that may relay gets relaying, and still never a rerouted local part
        assert_eq!(
            p.check_recipient(&mb("user@other.org"), true),
            Ok(Route::Relay("other.org".into()))
        );
        assert!(
            p.check_recipient(&mb("user%other.org@example.com"), true)
                .is_err()
        );
        // tricks at a local domain are local parts that name no mailbox
        for addr in [
            "user%other.org@example.com",
            "other!user@example.com",
            "\"user@other.org\"@example.com",
            "\"../../etc\"@example.com",
        ] {
            match p.check_recipient_unauth(&mb(addr)) {
                Err(Verdict::Reject(r)) => assert_eq!(r.code, 550, "{addr}"),
                other => panic!("{addr}: {other:?}"),
            }
        }
    }
}
