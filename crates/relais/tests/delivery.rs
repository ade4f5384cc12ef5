//! Delivery tests (issue 4): a real `relais serve` delivering to peers on loopback — a second
//! relais, a private Postfix, aiosmtpd and scripted SMTP servers — found through the fixture
//! DNS server's MX records or through routes; retries driven with `relais queue flush`;
//! bounces and receipts parsed with mail-parser; `relais sendmail` and `relais queue` (with
//! selections); a
//! server killed while delivering, and 20 times in a row under 20 senders (`crash_loop`). Run with `cargo test -p relais --test delivery`; needs
//! root (peers on port 25 of 127.0.0.x), Postfix (scripts/deps.sh) and python3 with aiosmtpd.
//! The modules live in `tests/delivery/`.

#[path = "common/mod.rs"]
mod common;

#[path = "delivery/support/mod.rs"]
mod support;

#[path = "delivery/cli.rs"]
mod cli;
#[path = "delivery/crash.rs"]
mod crash;
#[path = "delivery/crash_loop.rs"]
mod crash_loop;
#[path = "delivery/dane.rs"]
mod dane;
#[path = "delivery/dsn.rs"]
mod dsn;
#[path = "delivery/large.rs"]
mod large;
#[path = "delivery/mta_sts.rs"]
mod mta_sts;
#[path = "delivery/remote.rs"]
mod remote;
#[path = "delivery/retry.rs"]
mod retry;
#[path = "delivery/select.rs"]
mod select;
#[path = "delivery/smarthost.rs"]
mod smarthost;
#[path = "delivery/tls_policy.rs"]
mod tls_policy;
