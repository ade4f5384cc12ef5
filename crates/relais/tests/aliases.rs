//! Aliases wired into a real `relais serve` (issue 4): lists and `:include:` into Maildirs,
//! `|command` and `/path/file` run as `nobody`, `:fail:` in the RCPT reply, forwards to another
//! domain (a second relais), loops cut with a bounce, retries that repeat no delivered target,
//! mailboxes delivered to a private Dovecot over LMTP, virtual domains, and home mailboxes,
//! `.forward` and quotas (issue 16; the home tests make system users with `useradd`, as root). Run with
//! `cargo test -p relais --test aliases`. Needs Dovecot's LMTP server (Debian:
//! `dovecot-core dovecot-lmtpd`). The modules live in `tests/aliases/`.

#[path = "common/mod.rs"]
mod common;

// The private Dovecot and the mbox reader of the local delivery tests, shared as they are.
use common::dovecot;
#[path = "aliases/support.rs"]
mod support;

#[path = "aliases/domains.rs"]
mod domains;
#[path = "aliases/expansion.rs"]
mod expansion;
#[path = "aliases/forward.rs"]
mod forward;
#[path = "aliases/home.rs"]
mod home;
#[path = "aliases/large.rs"]
mod large;
#[path = "aliases/lmtp.rs"]
mod lmtp;
