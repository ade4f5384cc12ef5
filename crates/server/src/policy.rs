//! Who may send to whom: the answers to the session's sender and recipient questions.

use relais_proto::session::Verdict;
use relais_proto::{Mailbox, replies};

use crate::config::Config;

/// Recipient policy built from the configuration.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Domains delivered here, lower case.
    local_domains: Vec<String>,
    /// Existing local parts, lower case; empty for catch-all.
    users: Vec<String>,
}

/// Where an accepted recipient goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A local mailbox, by its (lower-case, safe) name.
    Local(String),
    /// Another domain's mail exchanger: relayed for an authenticated or trusted client.
    Relay(String),
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Route::Local(m) => write!(f, "local mailbox {m}"),
            Route::Relay(d) => write!(f, "relay to {d}"),
        }
    }
}

impl Policy {
    /// The policy of a configuration.
    pub fn new(config: &Config) -> Self {
        Policy {
            local_domains: config.local_domains.clone(),
            users: config.local.users.clone(),
        }
    }

    /// True if mail for this domain is delivered here.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        let d = domain.to_ascii_lowercase();
        self.local_domains.contains(&d)
    }

    /// Decides on a recipient: a local mailbox, an unknown user, relaying for a client that
    /// may relay (`may_relay`: authenticated or in `relay_networks`), or `554 5.7.1 Relay
    /// access denied`.
    ///
    /// The decision rests on the domain after `@` alone. A local part is never re-parsed for a
    /// route (`user%other@`, `other!user@`, `"user@other"@` are local parts at our domain, and
    /// name no mailbox), so no address form can turn local mail into relayed mail.
    pub fn check_recipient(&self, to: &Mailbox, may_relay: bool) -> Result<Route, Verdict> {
        if !to.is_bare_postmaster() && !self.is_local_domain(&to.domain) {
            if may_relay {
                return Ok(Route::Relay(to.domain_lower()));
            }
            return Err(Verdict::Reject(replies::relay_denied(to)));
        }
        let local = to.local.to_ascii_lowercase();
        if local == "postmaster" {
            return Ok(Route::Local(local));
        }
        let exists = if self.users.is_empty() {
            is_safe_local_part(&local)
        } else {
            self.users.contains(&local)
        };
        if exists {
            Ok(Route::Local(local))
        } else {
            Err(Verdict::Reject(replies::user_unknown(to)))
        }
    }

    /// The mailbox a recipient of a stored envelope goes to (recomputed at delivery so a
    /// configuration change applies to queued mail, as Postfix does).
    pub fn route(&self, to: &Mailbox) -> Option<Route> {
        self.check_recipient(to, true).ok()
    }
}

/// A local part that can name a mailbox directory: ASCII letters, digits and `._+-=`, not
/// starting with a dot, at most 64 octets. Anything else (a `/`, `%`, `!`, quotes, non-ASCII)
/// is refused as an unknown user rather than guessed at.
pub fn is_safe_local_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-' | b'='))
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
