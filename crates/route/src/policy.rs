//! Who may send to whom: the answers to the session's sender and recipient questions, and where
//! an accepted recipient goes when its message is delivered.
//!
//! Aliases come first: a local part that is an alias is accepted whether or not it is a user
//! (the order of the lookups, per kind of domain, is in [`crate::lookup`]). At RCPT the alias
//! is expanded as its file says ([`Aliases::expand`]); at delivery ([`Policy::destination`])
//! forwards to addresses in our own domains are followed too ([`crate::expand`]).

use std::sync::Arc;

use relais_proto::session::Verdict;
use relais_proto::{Mailbox, replies};

use relais_config::Config;
use relais_queue::{Outcome, Target};

use crate::aliases::AliasError;
use crate::expand::Expansion;
pub use crate::lookup::{AliasFile, Policy};
use crate::lookup::{Found, Scope, VirtualDomain};
use crate::srs::{self, Srs, SrsError};

/// Where an accepted recipient goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A local mailbox, by its name (`alice`, or `a.example/alice` in a virtual domain).
    Local(String),
    /// A local alias, by its (lower-case) name: `name` of `[local] aliases`, `user@domain`, or
    /// `@domain` for a catch-all ([`Policy::expand`] takes it). Expanded at delivery.
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
    /// A local mailbox, by its name (as [`Route::Local`]).
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
            domains: config.domain.iter().map(VirtualDomain::new).collect(),
            srs,
            home: config.local.mailbox == relais_config::MailboxKind::Home,
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

    /// True if mail for this domain is delivered here (a `local_domains` one or a virtual one).
    pub fn is_local_domain(&self, domain: &str) -> bool {
        !domain.is_empty() && self.scope_of(domain).is_some()
    }

    /// The namespace and lower-case local part and domain of a recipient, `None` when its
    /// domain is not ours.
    fn here(&self, to: &Mailbox) -> Option<(String, String, Scope)> {
        let domain = if to.is_bare_postmaster() {
            String::new()
        } else {
            to.domain_lower()
        };
        if domain.is_empty() && !to.is_bare_postmaster() {
            return None;
        }
        let scope = self.scope_of(&domain)?;
        Some((to.local.to_ascii_lowercase(), domain, scope))
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
        let Some((local, domain, scope)) = self.here(to) else {
            if may_relay {
                return Ok(Route::Relay(to.domain_lower()));
            }
            return Err(Verdict::Reject(replies::relay_denied(to)));
        };
        let refused = |e: AliasError| {
            Verdict::Reject(match e.outcome() {
                Outcome::Failed { .. } => replies::alias_loop(to, &e.to_string()),
                _ => {
                    tracing::warn!("aliases: {e}");
                    replies::alias_lookup_failed(to)
                }
            })
        };
        let alias = match self.find(&local, &domain, scope).map_err(refused)? {
            Found::Mailbox(m) => return Ok(Route::Local(m)),
            Found::Unknown if scope == Scope::Classic => {
                return Err(Verdict::Reject(replies::user_unknown(to)));
            }
            Found::Unknown => return Err(Verdict::Reject(replies::virtual_user_unknown(to))),
            Found::Alias(a) => a,
        };
        let targets = alias.targets().map_err(refused)?;
        let fail = targets.iter().find_map(|t| match t {
            Target::Fail(text) => Some(text),
            _ => None,
        });
        match fail {
            Some(text) => Err(Verdict::Reject(replies::alias_refused(to, text))),
            None if targets.is_empty() => Err(Verdict::Reject(replies::user_unknown(to))),
            None => Ok(Route::Alias(alias.label)),
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
        let Some((local, domain, scope)) = self.here(to) else {
            return Destination::Relay(to.domain_lower());
        };
        let alias = match self.find(&local, &domain, scope) {
            Err(e) => return Destination::Nowhere(e.outcome()),
            Ok(Found::Mailbox(m)) => return Destination::Mailbox(m),
            Ok(Found::Unknown) => {
                return Destination::Nowhere(Outcome::failed(
                    "5.1.1",
                    "no such local mailbox (the configuration changed)",
                ));
            }
            Ok(Found::Alias(a)) => a,
        };
        let label = alias.label.clone();
        match Expansion::run(self, alias) {
            Err(o) => Destination::Nowhere(o),
            Ok(targets) if targets.is_empty() => Destination::Nowhere(Outcome::failed(
                "5.1.1",
                format!("alias {label} expands to no recipient"),
            )),
            Ok(targets) => Destination::Alias(targets),
        }
    }

    /// Expands the alias `name` (as [`Route::Alias`] names it) into final targets, following
    /// forwards to our own domains: `Ok(None)` when it is no alias. Errors are outcomes: a
    /// loop or an expansion too deep fails (`5.4.6`), a file that cannot be read defers
    /// (`4.3.0`).
    pub fn expand(&self, name: &str) -> Result<Option<Vec<Target>>, Outcome> {
        match self.alias_by_label(name).map_err(|e| e.outcome())? {
            None => Ok(None),
            Some(alias) => Expansion::run(self, alias).map(Some),
        }
    }
}

#[cfg(test)]
mod tests;
