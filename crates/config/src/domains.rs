//! `[[domain]]`: virtual domains, each with users, aliases and a catch-all of its own (Postfix's
//! `virtual_mailbox_domains` with `virtual_mailbox_maps` and `virtual_alias_maps`).
//!
//! ```toml
//! [[domain]]
//! name = "a.example"
//! users = ["alice", "bob"]              # mailboxes data_dir/mail/a.example/alice, …
//! aliases = "/etc/relais/a.example.aliases"   # bare names in it are names at a.example
//! catch_all = "alice"                   # or a whole address: "postmaster@b.example"
//! ```
//!
//! The `local_domains` keep their one shared namespace (`[local] users`, mailboxes
//! `mail/<user>`), so a configuration without `[[domain]]` works as before.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{QuotaTable, is_safe_local_part};

/// One virtual domain.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DomainConfig {
    /// The domain, lower case once read.
    pub name: String,
    /// Its mailboxes by local part (lower case once read): `mail/<domain>/<user>`. Unlike
    /// `[local] users`, an empty list means no mailbox: only aliases and the catch-all.
    #[serde(default)]
    pub users: Vec<String>,
    /// An aliases file of this domain: a name in it (`sales: alice, bob`) is a local part at
    /// this domain, and so is a bare target. Entries `user@domain` of `[local] aliases` come
    /// first.
    #[serde(default)]
    pub aliases: Option<PathBuf>,
    /// Where mail for a local part that is neither a user nor an alias goes: a user of this
    /// domain (`"alice"`) or an address (`"postmaster@b.example"`). Unset: such local parts
    /// are refused (`550 5.1.1 … User unknown in virtual mailbox table`).
    #[serde(default)]
    pub catch_all: Option<String>,
    /// Bytes each mailbox of this domain may hold (Maildir++ `maildirsize`); 0: no limit.
    #[serde(default)]
    pub quota: u64,
    /// Limits of single users of this domain (local part: bytes, 0 for none), over `quota`.
    #[serde(default)]
    pub quotas: BTreeMap<String, u64>,
}

impl DomainConfig {
    /// The address the catch-all sends to, if there is one.
    pub fn catch_all_address(&self) -> Option<String> {
        self.catch_all.as_ref().map(|c| {
            if c.contains('@') {
                c.to_ascii_lowercase()
            } else {
                format!("{}@{}", c.to_ascii_lowercase(), self.name)
            }
        })
    }

    /// What is wrong with this domain: (key, message), or `None`.
    pub(crate) fn problem(&self, local_domains: &[String]) -> Option<(&'static str, String)> {
        if !relais_proto::address::is_domain(&self.name) {
            return Some((
                "name",
                format!("[[domain]] {:?} is not a domain", self.name),
            ));
        }
        if local_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(&self.name))
        {
            return Some((
                "name",
                format!(
                    "[[domain]] {:?} is also in local_domains (a domain is one or the other)",
                    self.name
                ),
            ));
        }
        if let Some(u) = self
            .users
            .iter()
            .find(|u| !is_safe_local_part(&u.to_ascii_lowercase()))
        {
            return Some((
                "users",
                format!("[[domain]] {}: {u:?} is not a usable local part", self.name),
            ));
        }
        if let Some(c) = &self.catch_all {
            let ok = match c.rsplit_once('@') {
                Some((local, domain)) => {
                    !local.is_empty() && relais_proto::address::is_domain(domain)
                }
                None => is_safe_local_part(&c.to_ascii_lowercase()),
            };
            if !ok {
                return Some((
                    "catch_all",
                    format!(
                        "[[domain]] {}: {c:?} is neither a user nor an address",
                        self.name
                    ),
                ));
            }
        }
        None
    }

    /// Lower-cases what is compared without case.
    pub(crate) fn complete(&mut self) {
        self.name = self.name.to_ascii_lowercase();
        for u in &mut self.users {
            *u = u.to_ascii_lowercase();
        }
        self.quotas = std::mem::take(&mut self.quotas)
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
    }

    /// The quota table of this domain.
    pub fn quota_table(&self) -> QuotaTable {
        QuotaTable {
            default: self.quota,
            users: self.quotas.clone(),
        }
    }
}

/// The first domain named twice in `[[domain]]`.
pub(crate) fn repeated(domains: &[DomainConfig]) -> Option<&str> {
    domains.iter().enumerate().find_map(|(i, d)| {
        domains[..i]
            .iter()
            .any(|e| e.name.eq_ignore_ascii_case(&d.name))
            .then_some(d.name.as_str())
    })
}

#[cfg(test)]
mod tests {
    use crate::Config;

    #[test]
    fn domains_are_read_and_checked() {
        let c = Config::parse(
            "local_domains = [\"mx.example\"]\n\
             [[domain]]\nname = \"A.Example\"\nusers = [\"Alice\", \"bob\"]\n\
             catch_all = \"Alice\"\n\
             [[domain]]\nname = \"b.example\"\naliases = \"/etc/relais/b.aliases\"\n\
             catch_all = \"postmaster@A.example\"\n",
        )
        .unwrap();
        assert_eq!(c.domain.len(), 2);
        assert_eq!(c.domain[0].name, "a.example");
        assert_eq!(c.domain[0].users, ["alice", "bob"]);
        assert_eq!(
            c.domain[0].catch_all_address().as_deref(),
            Some("alice@a.example")
        );
        assert_eq!(
            c.domain[1].catch_all_address().as_deref(),
            Some("postmaster@a.example")
        );
        assert!(c.domain[1].users.is_empty());
        assert_eq!(c.local_domains, ["mx.example"]);
        let again = Config::parse(&c.to_toml()).unwrap();
        assert_eq!(again.domain[1].aliases, c.domain[1].aliases);
        assert!(Config::parse("").unwrap().domain.is_empty());
    }

    #[test]
    fn errors_name_the_key_and_the_line() {
        let cases: &[(&str, &[&str])] = &[
            ("[[domain]]\nname = \"not a domain\"\n", &["line 2", "name"]),
            (
                "[local]\nusers = [\"ok\"]\n[[domain]]\nname = \"a.example\"\nusers = [\"../x\"]\n",
                &["line 5", "users", "a.example"],
            ),
            (
                "[[domain]]\nname = \"a.example\"\n[[domain]]\nname = \"b.example\"\n\
                 catch_all = \"a b\"\n",
                &["line 5", "catch_all", "b.example"],
            ),
            (
                "local_domains = [\"a.example\"]\n[[domain]]\nname = \"A.example\"\n",
                &["line 3", "name", "also in local_domains"],
            ),
            (
                "[[domain]]\nname = \"a.example\"\n[[domain]]\nname = \"a.example\"\n",
                &["name", "defined twice"],
            ),
            ("[[domain]]\nusers = []\n", &["line 1", "name"]),
            (
                "[[domain]]\nname = \"a.example\"\nuser = []\n",
                &["line 3", "user"],
            ),
        ];
        for (text, needles) in cases {
            let e = Config::parse(text).expect_err(text).to_string();
            for n in *needles {
                assert!(e.contains(n), "{text:?}: {e}");
            }
        }
    }
}
