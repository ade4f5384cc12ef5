//! Greylisting: a stranger's first try for a (client network, sender, recipient) triplet is
//! deferred; a retry after `greylist_delay` (within `greylist_window`) is accepted, and the
//! client's network passes from then on for `greylist_whitelist`. Mail servers retry; most
//! spam software does not.
//!
//! The entries live in the shared state ([`relais_state::Store`]); whether a try passes is
//! [`decide`], a pure function of the times, tested as a table.

use std::net::IpAddr;

use relais_config::PolicyConfig;
use relais_proto::{Mailbox, Reply, ReversePath, replies};
use relais_state::Store;

/// What greylisting says of one try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grey {
    /// Accept.
    Pass,
    /// Defer; a retry is accepted after this many seconds.
    Defer(u64),
}

/// A triplet first seen at `first_seen`, tried again at `now`.
pub fn decide(first_seen: u64, now: u64, delay: u64) -> Grey {
    match (first_seen + delay).checked_sub(now) {
        Some(wait) if wait > 0 => Grey::Defer(wait),
        _ => Grey::Pass,
    }
}

/// The network a client is greylisted by: its /24 (IPv4) or /64 (IPv6), as a retry may come
/// from another address of the same server farm.
pub fn network(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// Greylists one recipient of a stranger at `now` (Unix seconds): `None` to go on, or the
/// reply that defers it (`451 4.7.1`), or `451 4.3.0` when the store cannot be reached (a
/// limit never lets through what it should defer).
pub async fn check(
    store: &Store,
    settings: &PolicyConfig,
    ip: IpAddr,
    from: &ReversePath,
    to: &Mailbox,
    now: u64,
) -> Option<(Grey, Reply)> {
    let net = network(ip);
    let passed = format!("gw:{net}");
    let answer = async {
        if store.get(&passed, now).await?.is_some() {
            return Ok(Grey::Pass);
        }
        let triplet = format!(
            "gt:{net}/{}/{}",
            from.to_string().to_ascii_lowercase(),
            to.to_string().to_ascii_lowercase()
        );
        let window = settings.greylist_window.as_secs();
        let first = store.get_or_set(&triplet, now, now, now + window).await?;
        let grey = decide(first, now, settings.greylist_delay.as_secs());
        if grey == Grey::Pass {
            let lifetime = settings.greylist_whitelist.as_secs();
            store.set(&passed, now, now + lifetime).await?;
        }
        Ok::<_, relais_state::StateError>(grey)
    };
    match answer.await {
        Ok(Grey::Pass) => None,
        Ok(Grey::Defer(wait)) => Some((Grey::Defer(wait), replies::greylisted(to, wait))),
        Err(e) => {
            tracing::warn!("greylisting: {e}");
            Some((Grey::Defer(0), replies::state_unavailable(to)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_pass_after_the_delay() {
        // (first seen, now, delay, expected)
        let table: &[(u64, u64, u64, Grey)] = &[
            (1000, 1000, 300, Grey::Defer(300)),
            (1000, 1299, 300, Grey::Defer(1)),
            (1000, 1300, 300, Grey::Pass),
            (1000, 5000, 300, Grey::Pass),
            (1000, 1000, 0, Grey::Pass),
        ];
        for &(first, now, delay, expected) in table {
            assert_eq!(decide(first, now, delay), expected, "{first} {now} {delay}");
        }
    }

    #[test]
    fn networks() {
        let n = |s: &str| network(s.parse().unwrap());
        assert_eq!(n("192.0.2.77"), "192.0.2.0/24");
        assert_eq!(n("::ffff:192.0.2.77"), "192.0.2.0/24");
        assert_eq!(n("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
    }
}
