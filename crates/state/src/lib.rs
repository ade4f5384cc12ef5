//! `relais-state`: what the server remembers beyond one message and one connection:
//! greylisting entries and rate counters, each with its expiry.
//!
//! Floor 1 of the flow of a message, beside the spool: the policy room (floor 3) asks it at
//! RCPT TO, the server (floor 5) opens it once at start and hands it to every reload. One small
//! interface ([`Store`]): a number under a key, until a time. The embedded backend keeps it in
//! `data_dir/state.redb` ([redb]), so it survives a restart; writes are not synced one by one
//! (a greylisting entry lost in a crash costs one more retry), the file is made durable every
//! [`SYNC_EVERY`], every 100 writes (redb reuses freed pages only after a durable commit: with
//! 120,000 entries written in a burst, the file stays at 17 MB instead of 130 MB) and when the
//! store is dropped; its page cache is bounded (16 MB). Expired entries are dropped as the
//! store goes.
//! The Redis backend ([`Store::connect_redis`]) keeps them in a Redis server that several relais
//! hosts share: keys under `relais:`, counters changed atomically by small Lua scripts, expiries
//! Redis's own (`EXAT`), every call bounded by [`REDIS_TIMEOUT`].
//!
//! Time is an argument (Unix seconds), never read here.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod redis_store;

pub use redis_store::REDIS_TIMEOUT;

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};

/// Key → (value, expires at, Unix seconds).
const TABLE: TableDefinition<&str, (u64, u64)> = TableDefinition::new("state");

/// How often writes are made durable.
pub const SYNC_EVERY: Duration = Duration::from_secs(5);

/// Expired entries are swept after this many writes.
const SWEEP_EVERY: u64 = 10_000;

/// Writes between two durable commits at most (see `Embedded::begin_write`).
const DURABLE_EVERY: u64 = 100;

/// A store that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("state store: {0}")]
pub struct StateError(pub String);

fn err(e: impl std::fmt::Display) -> StateError {
    StateError(e.to_string())
}

/// The shared state. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Backend,
}

#[derive(Clone)]
enum Backend {
    Embedded(Arc<Embedded>),
    Redis(Arc<redis_store::Redis>),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Backend::Embedded(_) => f.write_str("Store(embedded)"),
            Backend::Redis(r) => write!(f, "Store(redis {})", r.name()),
        }
    }
}

/// The embedded store's page cache.
const CACHE_SIZE: usize = 16 * 1024 * 1024;

struct Embedded {
    db: Database,
    /// When writes were last made durable, writes in all (a sweep every [`SWEEP_EVERY`]),
    /// and writes since the last durable one.
    book: Mutex<(Instant, u64, u64)>,
}

impl Store {
    /// Opens (creates) the embedded store at `path`.
    pub fn open(path: &Path) -> Result<Store, StateError> {
        Ok(Store {
            inner: Backend::Embedded(Arc::new(Embedded::open(path)?)),
        })
    }

    /// The Redis backend at `url` (`redis://host:port[/db]`). Connects on first use and
    /// reconnects on its own after Redis went away; until then every call fails.
    pub fn connect_redis(url: &str) -> Result<Store, StateError> {
        Ok(Store {
            inner: Backend::Redis(Arc::new(redis_store::Redis::connect(url)?)),
        })
    }

    /// The embedded store at `path` when `redis_url` is empty, else the Redis backend.
    pub fn open_or_connect(path: &Path, redis_url: &str) -> Result<Store, StateError> {
        if redis_url.is_empty() {
            Store::open(path)
        } else {
            Store::connect_redis(redis_url)
        }
    }

    /// The value under `key`, if it has not expired by `now`.
    pub async fn get(&self, key: &str, now: u64) -> Result<Option<u64>, StateError> {
        match &self.inner {
            Backend::Embedded(e) => e.get(key, now),
            Backend::Redis(r) => r.get(key, now).await,
        }
    }

    /// Sets `key` to `value` until `expires`.
    pub async fn set(&self, key: &str, value: u64, expires: u64) -> Result<(), StateError> {
        match &self.inner {
            Backend::Embedded(e) => e.write(key, expires, |_| (value, expires)).map(|_| ()),
            Backend::Redis(r) => r.set(key, value, expires).await,
        }
    }

    /// The value under `key`; when there is none (or it expired by `now`), `value` is set
    /// until `expires` first. Returns what is stored now.
    pub async fn get_or_set(
        &self,
        key: &str,
        value: u64,
        now: u64,
        expires: u64,
    ) -> Result<u64, StateError> {
        match &self.inner {
            Backend::Embedded(e) => e.write(key, now, |old| match old {
                Some(kept) => kept,
                None => (value, expires),
            }),
            Backend::Redis(r) => r.get_or_set(key, value, now, expires).await,
        }
    }

    /// Adds `by` to the counter under `key` (0 when absent or expired by `now`), which expires
    /// at `expires` when it is new. Returns the new count.
    pub async fn add(&self, key: &str, by: u64, now: u64, expires: u64) -> Result<u64, StateError> {
        match &self.inner {
            Backend::Embedded(e) => e.write(key, now, |old| match old {
                Some((count, until)) => (count.saturating_add(by), until),
                None => (by, expires),
            }),
            Backend::Redis(r) => r.add(key, by, now, expires).await,
        }
    }

    /// Removes `key`.
    pub async fn remove(&self, key: &str) -> Result<(), StateError> {
        match &self.inner {
            Backend::Embedded(e) => e.remove(key),
            Backend::Redis(r) => r.remove(key).await,
        }
    }

    /// The number of entries (for the figures in notes and tests): in the embedded store,
    /// expired ones included; in Redis, the keys under `relais:` (Redis drops expired ones).
    pub async fn len(&self) -> Result<u64, StateError> {
        match &self.inner {
            Backend::Embedded(e) => e.len(),
            Backend::Redis(r) => r.len().await,
        }
    }

    /// True when the store holds nothing.
    pub async fn is_empty(&self) -> Result<bool, StateError> {
        Ok(self.len().await? == 0)
    }
}

impl Embedded {
    fn open(path: &Path) -> Result<Embedded, StateError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        // redb's page cache would grow to 1 GiB by default; a few MB hold the hot entries of
        // a busy MX (measured: `cargo run --release -p relais-state --example state_memory`).
        let db = redb::Builder::new()
            .set_cache_size(CACHE_SIZE)
            .create(path)
            .map_err(|e| StateError(format!("{}: {e}", path.display())))?;
        let txn = db.begin_write().map_err(err)?;
        txn.open_table(TABLE).map_err(err)?;
        txn.commit().map_err(err)?;
        Ok(Embedded {
            db,
            book: Mutex::new((Instant::now(), 0, 0)),
        })
    }

    fn get(&self, key: &str, now: u64) -> Result<Option<u64>, StateError> {
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(TABLE).map_err(err)?;
        Ok(table
            .get(key)
            .map_err(err)?
            .map(|v| v.value())
            .filter(|(_, expires)| *expires > now)
            .map(|(value, _)| value))
    }

    fn remove(&self, key: &str) -> Result<(), StateError> {
        let txn = self.begin_write()?;
        txn.open_table(TABLE)
            .map_err(err)?
            .remove(key)
            .map_err(err)?;
        txn.commit().map_err(err)
    }

    fn len(&self) -> Result<u64, StateError> {
        let txn = self.db.begin_read().map_err(err)?;
        txn.open_table(TABLE).map_err(err)?.len().map_err(err)
    }

    /// A write transaction, durable when [`SYNC_EVERY`] has passed since the last durable
    /// one, or after [`DURABLE_EVERY`] writes: redb reuses the pages of earlier transactions
    /// only once a durable one committed, so a burst of writes would otherwise grow the file.
    fn begin_write(&self) -> Result<redb::WriteTransaction, StateError> {
        let mut txn = self.db.begin_write().map_err(err)?;
        let mut book = self.book.lock().unwrap_or_else(|e| e.into_inner());
        let durable = book.0.elapsed() >= SYNC_EVERY || book.2 >= DURABLE_EVERY;
        if durable {
            book.0 = Instant::now();
            book.2 = 0;
        }
        book.1 += 1;
        book.2 += 1;
        txn.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })
        .map_err(err)?;
        Ok(txn)
    }

    /// Reads `key` (live at `now`), stores what `f` makes of it, returns the stored value.
    fn write(
        &self,
        key: &str,
        now: u64,
        f: impl FnOnce(Option<(u64, u64)>) -> (u64, u64),
    ) -> Result<u64, StateError> {
        let txn = self.begin_write()?;
        let stored = {
            let mut table = txn.open_table(TABLE).map_err(err)?;
            let old = table
                .get(key)
                .map_err(err)?
                .map(|v| v.value())
                .filter(|(_, expires)| *expires > now);
            let new = f(old);
            table.insert(key, new).map_err(err)?;
            if self.sweep_due() {
                table.retain(|_, (_, expires)| expires > now).map_err(err)?;
            }
            new.0
        };
        txn.commit().map_err(err)?;
        Ok(stored)
    }

    fn sweep_due(&self) -> bool {
        let book = self.book.lock().unwrap_or_else(|e| e.into_inner());
        book.1.is_multiple_of(SWEEP_EVERY)
    }
}

impl Drop for Embedded {
    /// Makes everything written durable.
    fn drop(&mut self) {
        if let Ok(mut txn) = self.db.begin_write() {
            let _ = txn.set_durability(Durability::Immediate);
            let _ = txn.commit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn values_expire_counters_add_and_everything_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let s = Store::open(&path).unwrap();
            assert_eq!(s.get("a", 100).await.unwrap(), None);
            s.set("a", 7, 200).await.unwrap();
            assert_eq!(s.get("a", 199).await.unwrap(), Some(7));
            assert_eq!(s.get("a", 200).await.unwrap(), None, "expired");
            // get_or_set keeps a live value, replaces an expired one
            assert_eq!(s.get_or_set("g", 100, 100, 400).await.unwrap(), 100);
            assert_eq!(s.get_or_set("g", 150, 150, 450).await.unwrap(), 100);
            assert_eq!(s.get_or_set("g", 500, 500, 900).await.unwrap(), 500);
            // counters
            assert_eq!(s.add("c", 1, 10, 70).await.unwrap(), 1);
            assert_eq!(s.add("c", 2, 20, 80).await.unwrap(), 3);
            assert_eq!(s.add("c", 1, 71, 131).await.unwrap(), 1, "a new window");
            s.remove("a").await.unwrap();
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(s.get("g", 600).await.unwrap(), Some(500));
        assert_eq!(s.get("c", 100).await.unwrap(), Some(1));
        assert_eq!(s.get("a", 0).await.unwrap(), None);
    }
}
