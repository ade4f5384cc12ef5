//! The diagnostics that need no SMTP server of their own: `relais explain` from codes and from
//! the words of a bounce, and `relais whoami` against the fixture DNS server of relais-dns.
//! Run with `cargo test -p relais --test diag`.

#[path = "common/mod.rs"]
mod common;

#[path = "diag/explain.rs"]
mod explain;
#[path = "diag/whoami.rs"]
mod whoami;
