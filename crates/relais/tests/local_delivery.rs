//! Local delivery agents of `relais-server` against real programs: `|command` through
//! `/bin/sh`, mbox files under concurrent appends, LMTP to Dovecot and to a scripted fault server,
//! and aliases files with `:include:` read from disk. Run with
//! `cargo test -p relais --test local_delivery`.
//! Needs Dovecot's LMTP server (Debian: `dovecot-core dovecot-lmtpd`); a missing one fails the
//! test and says what to install. The modules live in `tests/local_delivery/`.

#[path = "common/mod.rs"]
mod common;

#[path = "local_delivery/support.rs"]
mod support;

#[path = "local_delivery/aliases.rs"]
mod aliases;
#[path = "local_delivery/lmtp.rs"]
mod lmtp;
#[path = "local_delivery/mbox.rs"]
mod mbox;
#[path = "local_delivery/pipe.rs"]
mod pipe;
