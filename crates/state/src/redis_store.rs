//! The Redis backend: several relais hosts share one greylist and one set of counters.
//!
//! Keys are `relais:` and the store's key; a value is a plain number under its key, with Redis's
//! own expiry (`EXAT`, the given Unix seconds), so entries go away on their own. What reads and
//! then writes (`get_or_set`, `add`) is one Lua script, atomic in Redis: no race between hosts.
//! The scripts also honour the caller's `now` (a key whose expiry is at or before it counts as
//! absent), as the embedded store does.
//!
//! The connection (redis-rs's connection manager, which reconnects on its own) lives on a small
//! runtime of its own, on one thread: the server's workers each run their own event loop, and a
//! connection tied to one of them would die with it. Every call is bounded by
//! [`REDIS_TIMEOUT`]; an error or a timeout is a [`StateError`] (the callers answer `451 4.3.0`).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, FromRedisValue};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::StateError;

/// How long one Redis call may take, connecting included.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// What every key starts with.
const PREFIX: &str = "relais:";

/// The value, if the key is live at ARGV[1].
const GET: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return false end
local e = redis.call('EXPIRETIME', KEYS[1])
if e >= 0 and e <= tonumber(ARGV[1]) then return false end
return v";

/// GET_OR_SET key value now expires: the live value, else `value` until `expires`.
const GET_OR_SET: &str = r"
local v = redis.call('GET', KEYS[1])
if v then
  local e = redis.call('EXPIRETIME', KEYS[1])
  if e < 0 or e > tonumber(ARGV[2]) then return v end
end
redis.call('SET', KEYS[1], ARGV[1], 'EXAT', ARGV[3])
return ARGV[1]";

/// ADD key by now expires: INCRBY a live counter (its expiry kept), else a new one until
/// `expires`.
const ADD: &str = r"
local v = redis.call('GET', KEYS[1])
if v then
  local e = redis.call('EXPIRETIME', KEYS[1])
  if e < 0 or e > tonumber(ARGV[2]) then return redis.call('INCRBY', KEYS[1], ARGV[1]) end
end
redis.call('SET', KEYS[1], ARGV[1], 'EXAT', ARGV[3])
return ARGV[1]";

/// Counts the keys under the prefix (SCAN, never KEYS).
const COUNT: &str = r"
local n, cursor = 0, '0'
repeat
  local r = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
  cursor = r[1]
  n = n + #r[2]
until cursor == '0'
return n";

pub(crate) struct Redis {
    conn: ConnectionManager,
    handle: Handle,
    /// Where it is, without a password.
    name: String,
    /// Dropped with the store: its runtime thread ends.
    _stop: oneshot::Sender<()>,
}

impl Redis {
    pub(crate) fn connect(url: &str) -> Result<Redis, StateError> {
        // The URL may hold a password: never in an error or a log line.
        let client = redis::Client::open(url).map_err(|e| StateError(format!("redis URL: {e}")))?;
        let name = client.get_connection_info().addr().to_string();
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("relais-redis".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(StateError(format!("redis runtime: {e}"))));
                        return;
                    }
                };
                let made = {
                    let _in = rt.enter();
                    ConnectionManager::new_lazy_with_config(client, config)
                        .map(|conn| (conn, rt.handle().clone()))
                        .map_err(|e| StateError(format!("redis: {e}")))
                };
                let ok = made.is_ok();
                let _ = ready_tx.send(made);
                if ok {
                    let _ = rt.block_on(stop_rx);
                }
            })
            .map_err(|e| StateError(format!("redis thread: {e}")))?;
        let (conn, handle) = ready_rx
            .recv()
            .map_err(|_| StateError("redis runtime did not start".into()))??;
        Ok(Redis {
            conn,
            handle,
            name,
            _stop: stop,
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Runs `cmd` on the connection's runtime, within [`REDIS_TIMEOUT`].
    async fn run<T: FromRedisValue + Send + 'static>(&self, cmd: Cmd) -> Result<T, StateError> {
        let mut conn = self.conn.clone();
        let job = self.handle.spawn(async move {
            tokio::time::timeout(REDIS_TIMEOUT, cmd.query_async::<T>(&mut conn)).await
        });
        match job.await {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(e))) => Err(StateError(format!("redis {}: {e}", self.name))),
            Ok(Err(_)) => Err(StateError(format!(
                "redis {}: no answer in {} s",
                self.name,
                REDIS_TIMEOUT.as_secs()
            ))),
            Err(e) => Err(StateError(format!("redis {}: {e}", self.name))),
        }
    }

    fn script(body: &str, key: &str) -> Cmd {
        let mut c = redis::cmd("EVAL");
        c.arg(body).arg(1).arg(format!("{PREFIX}{key}"));
        c
    }

    pub(crate) async fn get(&self, key: &str, now: u64) -> Result<Option<u64>, StateError> {
        let mut c = Self::script(GET, key);
        c.arg(now);
        self.run(c).await
    }

    pub(crate) async fn set(&self, key: &str, value: u64, expires: u64) -> Result<(), StateError> {
        let mut c = redis::cmd("SET");
        c.arg(format!("{PREFIX}{key}"))
            .arg(value)
            .arg("EXAT")
            .arg(expires.max(1));
        self.run::<()>(c).await
    }

    pub(crate) async fn get_or_set(
        &self,
        key: &str,
        value: u64,
        now: u64,
        expires: u64,
    ) -> Result<u64, StateError> {
        let mut c = Self::script(GET_OR_SET, key);
        c.arg(value).arg(now).arg(expires.max(1));
        self.run(c).await
    }

    pub(crate) async fn add(
        &self,
        key: &str,
        by: u64,
        now: u64,
        expires: u64,
    ) -> Result<u64, StateError> {
        let mut c = Self::script(ADD, key);
        c.arg(by).arg(now).arg(expires.max(1));
        self.run(c).await
    }

    pub(crate) async fn remove(&self, key: &str) -> Result<(), StateError> {
        let mut c = redis::cmd("DEL");
        c.arg(format!("{PREFIX}{key}"));
        self.run::<()>(c).await
    }

    pub(crate) async fn len(&self) -> Result<u64, StateError> {
        let mut c = redis::cmd("EVAL");
        c.arg(COUNT).arg(0).arg(format!("{PREFIX}*"));
        self.run(c).await
    }
}
