//! Client tests: `relais send` and `relais shell` (and under them `relais-client`) against real
//! servers on 127.0.0.1 — `relais serve` itself, an aiosmtpd script with STARTTLS, implicit
//! TLS and AUTH, and the fixture DNS server of `relais-dns` for MX routing — and side by side with swaks. Run with `cargo test -p relais --test client`.
//! Needs python3 with aiosmtpd and swaks; a missing tool fails the test and says what to install.
//! The modules live in `tests/client/`.

#[path = "common/mod.rs"]
mod common;

#[path = "client/support.rs"]
mod support;

#[path = "client/auth_lmtp.rs"]
mod auth_lmtp;
#[path = "client/mx.rs"]
mod mx;
#[path = "client/send.rs"]
mod send;
#[path = "client/shell.rs"]
mod shell;
#[path = "client/swaks.rs"]
mod swaks;
#[path = "client/tls_auth.rs"]
mod tls_auth;
