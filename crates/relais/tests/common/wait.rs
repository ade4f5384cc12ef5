//! Waiting, temporary directories, free ports and directory listings.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

/// Polls `f` until it gives a value; panics naming `what` after `timeout`.
#[track_caller]
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(25));
    }
}

/// A new temporary directory whose name starts with `prefix` (kept by the caller: dropping it
/// removes the directory).
pub fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("create a temporary directory")
}

/// A port of 127.0.0.1 free a moment ago (bound, then released): a server can be told to
/// listen there, or a client shown that nothing does.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (up to `timeout`) until `dir` holds at least `n` regular files; returns them all,
/// sorted (Maildir file names start with the delivery time: oldest first).
#[track_caller]
pub fn wait_files(dir: &Path, n: usize, timeout: Duration) -> Vec<PathBuf> {
    wait_until(
        &format!("{n} message(s) in {}", dir.display()),
        timeout,
        || {
            let files = list_files(dir);
            (files.len() >= n).then_some(files)
        },
    )
}

/// The regular files in `dir`, sorted (none if it does not exist): Maildir `new/`
/// directories, spools.
pub fn list_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}
