//! End-to-end tests: a real `relais serve` on 127.0.0.1 driven by raw sockets, swaks and
//! Python's smtplib. Run with `cargo test -p relais --test e2e`; `scripts/test.sh` installs the
//! external tools (swaks, python3). The modules live in `tests/e2e/`.

#[path = "common/mod.rs"]
mod common;

#[path = "e2e/support.rs"]
mod support;

#[path = "e2e/bad_input.rs"]
mod bad_input;
#[path = "e2e/raw.rs"]
mod raw;
#[path = "e2e/restart.rs"]
mod restart;
#[path = "e2e/smtplib.rs"]
mod smtplib;
#[path = "e2e/swaks.rs"]
mod swaks;
