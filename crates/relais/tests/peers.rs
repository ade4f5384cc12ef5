//! `relais probe` and `relais send` against real SMTP servers that share no code with relais,
//! all on 127.0.0.1 and free ports:
//!
//! - a private Postfix instance (its own main.cf and master.cf in a temporary directory, mail
//!   for one virtual domain into a Maildir), without and with STARTTLS, side by side with swaks;
//! - aiosmtpd with STARTTLS and a self-signed certificate (`tests/client/py/smtpd.py`);
//! - `relais serve` with its `submission` (STARTTLS, AUTH) and `submissions` (implicit TLS)
//!   listeners and the self-signed certificate it generates.
//!
//! Run with `cargo test -p relais --test peers`. Needs Postfix (run as root: the instance is
//! started with `postfix -c DIR start`), swaks, and python3 with aiosmtpd, as installed by
//! scripts/deps.sh; a missing tool fails the test and says so. The modules live in
//! `tests/peers/`.

#[path = "common/mod.rs"]
mod common;

#[path = "peers/support.rs"]
mod support;

#[path = "peers/aiosmtpd.rs"]
mod aiosmtpd;
#[path = "peers/listeners.rs"]
mod listeners;
#[path = "peers/postfix.rs"]
mod postfix;
