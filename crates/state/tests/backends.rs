//! The same semantics table, through both backends: the embedded store and a real
//! `redis-server` (Debian's, started here on a free port and ended by its PID).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use relais_state::Store;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A `redis-server` of our own, without persistence, on 127.0.0.1. Ended (by its PID) when
/// dropped.
struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    fn start() -> RedisServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/deps.sh installs it)");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server up"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisServer { child, port }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What both backends must do alike. `t` is the current Unix time: Redis expires entries by
/// its own clock, so every expiry here lies in the future of the real one.
async fn semantics(s: &Store, t: u64) {
    assert_eq!(s.get("a", t).await.unwrap(), None, "absent");
    s.set("a", 7, t + 100).await.unwrap();
    assert_eq!(s.get("a", t + 99).await.unwrap(), Some(7));
    assert_eq!(s.get("a", t + 100).await.unwrap(), None, "expired by now");
    // get_or_set keeps a live value, replaces an expired one
    assert_eq!(s.get_or_set("g", 100, t, t + 300).await.unwrap(), 100);
    assert_eq!(s.get_or_set("g", 150, t + 50, t + 350).await.unwrap(), 100);
    assert_eq!(s.get(" g", t).await.unwrap(), None, "keys are exact");
    assert_eq!(s.get_or_set("g", 500, t + 300, t + 800).await.unwrap(), 500);
    assert_eq!(s.get("g", t + 799).await.unwrap(), Some(500));
    // counters: the expiry is set when the counter is new, kept when it grows
    assert_eq!(s.add("c", 1, t, t + 60).await.unwrap(), 1);
    assert_eq!(s.add("c", 2, t + 10, t + 70).await.unwrap(), 3);
    assert_eq!(s.get("c", t + 59).await.unwrap(), Some(3));
    assert_eq!(
        s.get("c", t + 60).await.unwrap(),
        None,
        "the first expiry kept"
    );
    assert_eq!(
        s.add("c", 1, t + 61, t + 121).await.unwrap(),
        1,
        "a new window"
    );
    // big values pass unchanged
    s.set("big", u64::from(u32::MAX) * 1000, t + 100)
        .await
        .unwrap();
    assert_eq!(
        s.get("big", t).await.unwrap(),
        Some(u64::from(u32::MAX) * 1000)
    );
    // remove
    s.remove("a").await.unwrap();
    s.remove("nothing").await.unwrap();
    assert_eq!(s.get("a", t).await.unwrap(), None);
    assert_eq!(s.len().await.unwrap(), 3, "g, c, big");
    // concurrent adds all count
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.add("n", 1, t, t + 60).await.unwrap() })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(s.get("n", t).await.unwrap(), Some(50));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_store_keeps_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&dir.path().join("state.redb")).unwrap();
    semantics(&s, unix_now()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_keeps_the_table_and_expires_entries_on_its_own() {
    let redis = RedisServer::start();
    let s = Store::connect_redis(&redis.url()).unwrap();
    let t = unix_now();
    semantics(&s, t).await;
    // Redis's own expiry: an entry until the next second is gone after it
    s.set("short", 1, unix_now() + 1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(s.get("short", 0).await.unwrap(), None);
    // Two stores (two hosts) share the entries, under `relais:`
    let other = Store::connect_redis(&redis.url()).unwrap();
    assert_eq!(other.add("c", 1, t + 61, t + 121).await.unwrap(), 2);
    let out = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "GET", "relais:c"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2");
}

#[tokio::test]
async fn redis_away_is_an_error_within_the_timeout_and_back_it_recovers() {
    let mut redis = RedisServer::start();
    let port = redis.port;
    let s = Store::connect_redis(&redis.url()).unwrap();
    let t = unix_now();
    assert_eq!(s.add("x", 1, t, t + 60).await.unwrap(), 1);
    redis.child.kill().unwrap();
    redis.child.wait().unwrap();
    let asked = Instant::now();
    assert!(s.add("x", 1, t, t + 60).await.is_err());
    assert!(asked.elapsed() < relais_state::REDIS_TIMEOUT + Duration::from_secs(1));
    assert!(s.get("x", t).await.is_err());
    // back on the same port (empty: no persistence)
    let again = Command::new("redis-server")
        .args(["--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    redis.child = again;
    let started = Instant::now();
    loop {
        match s.add("x", 1, t, t + 60).await {
            Ok(n) => {
                assert_eq!(n, 1);
                break;
            }
            Err(e) => {
                assert!(started.elapsed() < Duration::from_secs(15), "recovers: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    assert!(Store::connect_redis("http://nowhere").is_err());
}
