//! Password hashes for the `users` of a test configuration.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// The argon2 hash of `password` for `user`, from `echo PASSWORD | relais user add USER`,
/// made once per test binary and pair (argon2 is slow on purpose).
pub fn password_hash(user: &str, password: &str) -> String {
    static HASHES: OnceLock<Mutex<HashMap<(String, String), String>>> = OnceLock::new();
    let mut hashes = HASHES.get_or_init(Default::default).lock().unwrap();
    hashes
        .entry((user.to_string(), password.to_string()))
        .or_insert_with(|| make_hash(user, password))
        .clone()
}

fn make_hash(user: &str, password: &str) -> String {
    let mut child = Command::new(super::RELAIS)
        .args(["user", "add", user])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn relais user add");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write the password");
    let out = child.wait_with_output().expect("relais user add");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "relais user add: {out:?}");
    let hash = stdout
        .lines()
        .next()
        .and_then(|l| l.strip_prefix(&format!("{user}:")))
        .unwrap_or_else(|| panic!("relais user add printed {stdout:?}"));
    assert!(hash.starts_with("$argon2"), "{hash}");
    assert!(
        !stdout.contains(password),
        "the hash output shows the password"
    );
    hash.to_string()
}
