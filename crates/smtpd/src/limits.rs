//! Per-client limits shared by all workers (Postfix's anvil): simultaneous connections and
//! connection rate per address, failed AUTH attempts per address.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What is known about one client address.
#[derive(Debug, Default)]
struct Client {
    /// Connections open now.
    open: usize,
    /// When its recent connections started (for the rate).
    recent: VecDeque<Instant>,
    /// When its recent AUTH attempts failed.
    auth_failures: VecDeque<Instant>,
}

/// Why a connection is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many open connections from this address.
    Concurrency,
    /// Connections arrive too fast from this address.
    Rate,
}

/// The shared counters. Their limits can change while they count (a reload).
#[derive(Debug, Default)]
pub struct Anvil {
    /// Per address.
    clients: Mutex<HashMap<IpAddr, Client>>,
    /// Most open connections per address; 0 for no limit.
    max_open: AtomicUsize,
    /// Most new connections per minute per address; 0 for no limit.
    max_rate: AtomicU32,
    /// Most failed AUTH attempts per address within the window.
    max_auth_failures: AtomicU32,
    /// The AUTH failure window, in milliseconds.
    window_ms: AtomicU64,
}

/// How far back the connection rate looks.
const RATE_WINDOW: Duration = Duration::from_secs(60);

impl Anvil {
    /// Counters with these limits.
    #[cfg(test)]
    pub fn new(max_open: usize, max_rate: u32, max_auth_failures: u32, window: Duration) -> Self {
        let anvil = Anvil::default();
        anvil.set_limits(max_open, max_rate, max_auth_failures, window);
        anvil
    }

    /// New limits; the counts so far are kept.
    pub fn set_limits(
        &self,
        max_open: usize,
        max_rate: u32,
        max_auth_failures: u32,
        window: Duration,
    ) {
        self.max_open.store(max_open, Ordering::Relaxed);
        self.max_rate.store(max_rate, Ordering::Relaxed);
        self.max_auth_failures
            .store(max_auth_failures, Ordering::Relaxed);
        let ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        self.window_ms.store(ms, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Client>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection from `ip` arrives at `now`: counts it, or says why it is refused.
    /// Every accepted connection must be matched by [`Anvil::disconnect`].
    pub fn connect(&self, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        let max_open = self.max_open.load(Ordering::Relaxed);
        let max_rate = self.max_rate.load(Ordering::Relaxed);
        let mut map = self.lock();
        let c = map.entry(ip).or_default();
        while c
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > RATE_WINDOW)
        {
            c.recent.pop_front();
        }
        if max_open > 0 && c.open >= max_open {
            return Err(Refusal::Concurrency);
        }
        if max_rate > 0 && c.recent.len() >= max_rate as usize {
            return Err(Refusal::Rate);
        }
        c.open += 1;
        if max_rate > 0 {
            c.recent.push_back(now);
        }
        Ok(())
    }

    /// A connection from `ip` closed.
    pub fn disconnect(&self, ip: IpAddr) {
        let mut map = self.lock();
        if let Some(c) = map.get_mut(&ip) {
            c.open = c.open.saturating_sub(1);
            if c.open == 0 && c.recent.is_empty() && c.auth_failures.is_empty() {
                map.remove(&ip);
            }
        }
    }

    /// True if `ip` may try AUTH now.
    pub fn auth_allowed(&self, ip: IpAddr, now: Instant) -> bool {
        let window = Duration::from_millis(self.window_ms.load(Ordering::Relaxed));
        let max_failures = self.max_auth_failures.load(Ordering::Relaxed);
        let mut map = self.lock();
        let Some(c) = map.get_mut(&ip) else {
            return true;
        };
        while c
            .auth_failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            c.auth_failures.pop_front();
        }
        max_failures == 0 || c.auth_failures.len() < max_failures as usize
    }

    /// A failed AUTH from `ip`.
    pub fn auth_failed(&self, ip: IpAddr, now: Instant) {
        self.lock()
            .entry(ip)
            .or_default()
            .auth_failures
            .push_back(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        let a = Anvil::new(2, 3, 2, Duration::from_secs(60));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t = Instant::now();
        assert_eq!(a.connect(ip, t), Ok(()));
        assert_eq!(a.connect(ip, t), Ok(()));
        assert_eq!(a.connect(ip, t), Err(Refusal::Concurrency));
        a.disconnect(ip);
        assert_eq!(a.connect(ip, t), Ok(()));
        a.disconnect(ip);
        a.disconnect(ip);
        assert_eq!(a.connect(ip, t), Err(Refusal::Rate));
        assert_eq!(a.connect(ip, t + Duration::from_secs(61)), Ok(()));
        assert!(a.auth_allowed(ip, t));
        a.auth_failed(ip, t);
        a.auth_failed(ip, t);
        assert!(!a.auth_allowed(ip, t));
        assert!(a.auth_allowed(ip, t + Duration::from_secs(61)));
    }

    #[test]
    fn limits_change_and_counts_stay() {
        let a = Anvil::new(1, 0, 0, Duration::from_secs(60));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t = Instant::now();
        assert_eq!(a.connect(ip, t), Ok(()));
        assert_eq!(a.connect(ip, t), Err(Refusal::Concurrency));
        a.set_limits(2, 0, 0, Duration::from_secs(60));
        assert_eq!(a.connect(ip, t), Ok(()));
        assert_eq!(a.connect(ip, t), Err(Refusal::Concurrency));
        a.set_limits(0, 0, 1, Duration::from_secs(60));
        assert_eq!(a.connect(ip, t), Ok(()));
        a.auth_failed(ip, t);
        assert!(!a.auth_allowed(ip, t));
    }
}
