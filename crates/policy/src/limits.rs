//! Rate limits kept in the shared state (so that several hosts of one domain share them once
//! the state is in Redis): messages a minute per client address, recipients an hour per
//! authenticated user; and the error tarpit. Windows are fixed (this minute, this hour), keyed
//! by the window's number; the delay of the tarpit is [`tarpit`], pure.

use std::net::IpAddr;
use std::time::Duration;

use relais_proto::{Mailbox, Reply, replies};
use relais_state::Store;

/// Counts one message from `ip` in this minute; the refusal beyond `limit` (or when the store
/// cannot be reached: a limit never lets through what it should refuse).
pub async fn message(
    store: &Store,
    ip: IpAddr,
    limit: u64,
    unit: Duration,
    now: u64,
) -> Option<Reply> {
    if limit == 0 {
        return None;
    }
    let unit = unit.as_secs().max(1);
    let window = now / unit;
    let key = format!("rm:{}:{unit}:{window}", ip.to_canonical());
    match store.add(&key, 1, now, (window + 2) * unit).await {
        Ok(n) if n > limit => Some(replies::too_much_mail(ip)),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!("message rate: {e}");
            Some(replies::state_unavailable_at_mail())
        }
    }
}

/// Counts one recipient for `user` in this hour; the refusal beyond `limit`, with the count.
pub async fn recipient(
    store: &Store,
    user: &str,
    to: &Mailbox,
    limit: u64,
    now: u64,
) -> Option<(u64, Reply)> {
    if limit == 0 {
        return None;
    }
    let hour = now / 3600;
    let key = format!("ru:{}:{hour}", user.to_ascii_lowercase());
    match store.add(&key, 1, now, (hour + 2) * 3600).await {
        Ok(n) if n > limit => Some((n, replies::too_many_recipients_for_user(to, user))),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!("recipient rate: {e}");
            Some((0, replies::state_unavailable(to)))
        }
    }
}

/// How long to hold back an error reply: nothing up to `soft_limit` errors, then `sleep` for
/// the first error beyond, twice as much for the second, … at most ten times `sleep`.
pub fn tarpit(errors: u32, soft_limit: u32, sleep: Duration) -> Duration {
    if soft_limit == 0 || errors <= soft_limit {
        return Duration::ZERO;
    }
    sleep * (errors - soft_limit).min(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tarpit_grows_then_stops_growing() {
        let s = Duration::from_millis(100);
        // (errors, soft limit, delay in ms)
        let table: &[(u32, u32, u64)] = &[
            (0, 10, 0),
            (10, 10, 0),
            (11, 10, 100),
            (12, 10, 200),
            (20, 10, 1000),
            (50, 10, 1000),
            (50, 0, 0),
        ];
        for &(errors, soft, ms) in table {
            assert_eq!(
                tarpit(errors, soft, s),
                Duration::from_millis(ms),
                "{errors}/{soft}"
            );
        }
    }

    #[tokio::test]
    async fn limits_count_in_their_window() {
        let dir = std::env::temp_dir().join(format!("relais-limits-{}", std::process::id()));
        let store = Store::open(&dir.join("state.redb")).unwrap();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t = 6000; // the start of a minute and of an hour... of sorts
        let minute = Duration::from_secs(60);
        assert_eq!(message(&store, ip, 2, minute, t).await, None);
        assert_eq!(message(&store, ip, 2, minute, t + 1).await, None);
        let r = message(&store, ip, 2, minute, t + 2)
            .await
            .unwrap()
            .to_string();
        assert_eq!(r, "450 4.7.1 Error: too much mail from 192.0.2.1");
        assert!(message(&store, ip, 2, minute, t + 59).await.is_some());
        assert_eq!(
            message(&store, ip, 2, minute, t + 60).await,
            None,
            "a new minute"
        );
        assert_eq!(message(&store, ip, 0, minute, t).await, None, "no limit");
        // another window: 10 s
        let ten = Duration::from_secs(10);
        assert_eq!(message(&store, ip, 1, ten, t).await, None);
        assert!(message(&store, ip, 1, ten, t + 9).await.is_some());
        assert_eq!(message(&store, ip, 1, ten, t + 10).await, None, "released");
        let to = Mailbox::parse("x@example.org").unwrap();
        assert_eq!(recipient(&store, "Alice", &to, 1, t).await, None);
        let (n, r) = recipient(&store, "alice", &to, 1, t + 10).await.unwrap();
        assert_eq!(n, 2);
        assert!(
            r.to_string().starts_with("450 4.7.1 <x@example.org>"),
            "{r}"
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
