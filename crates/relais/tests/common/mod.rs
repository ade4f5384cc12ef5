//! Support shared by every integration-test binary of relais (e2e, front_door, client, dns,
//! probe, local_delivery, delivery, aliases, peers), in one place: each binary includes it with
//! `#[path = "common/mod.rs"] mod common;` and keeps in its own `support.rs` only what is
//! particular to it.
//!
//! - [`wait`]: polling with a deadline, temporary directories, free ports, directory listings.
//! - [`process`]: commands run to their end with a time limit ([`process::Run`]) and server
//!   processes that log where they listen ([`process::Daemon`]), stopped by PID when dropped.
//! - [`postfix`]: a private Postfix instance; [`dovecot`]: a private Dovecot, an mbox reader.
//! - [`users`]: password hashes made by `relais user add`; [`certs`]: test certificates;
//!   [`sts`]: MTA-STS policy hosts over HTTPS; [`dnssec`]: zones signed with ldns-signzone,
//!   served by a private NSD, and TLSA data of certificates (DANE); [`large`]: a large message
//!   and its checks.
//!
//! Each binary uses a subset of these helpers, hence the `allow` below (the usual practice for
//! shared integration-test support; nowhere else).
#![allow(dead_code)]

pub mod certs;
pub mod dnssec;
pub mod dovecot;
pub mod large;
pub mod postfix;
pub mod process;
pub mod sts;
pub mod users;
pub mod wait;

use std::path::Path;
use std::process::Command;

pub use relais_dns::fixture::{Server as Dns, Zone};

/// The relais binary under test.
pub const RELAIS: &str = env!("CARGO_BIN_EXE_relais");

/// `relais serve --config CONFIG` run in `dir`, without colours and without the log settings
/// of the test's environment (`RELAIS_LOG`, `RUST_LOG`): the tests read its log as text.
/// Started with [`process::Daemon::start`].
pub fn serve_command(config: &Path, dir: &Path) -> Command {
    let mut cmd = Command::new(RELAIS);
    cmd.arg("serve")
        .arg("--config")
        .arg(config)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("RELAIS_LOG")
        .env_remove("RUST_LOG");
    cmd
}

/// Starts the fixture DNS server of relais-dns (127.0.0.1, a free port, in this process) with
/// `zone`; stopped when dropped. The tests never ask the system resolver.
pub fn dns(zone: Zone) -> Dns {
    Dns::start(zone).expect("start the fixture DNS server")
}
