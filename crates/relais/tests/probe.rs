//! `relais probe` against a zoo of scripted SMTP servers on 127.0.0.1, each with one fault,
//! and against a real `relais serve`: each fault must be named with the right verdict and exit
//! code, and a clean server must raise no warning; a domain's SPF, DMARC and DKIM records are
//! judged beside. DNS (MX, PTR, TXT) comes from the fixture DNS server of relais-dns (and, for
//! `relais check`'s DANE item, from zones signed with ldns-signzone served by a private NSD);
//! certificates from a test CA made with rcgen. Run with
//! `cargo test -p relais --test probe`.

#[path = "common/mod.rs"]
mod common;

#[path = "probe/zoo.rs"]
mod zoo;

#[path = "probe/check.rs"]
mod check;
#[path = "probe/clean.rs"]
mod clean;
#[path = "probe/dane.rs"]
mod dane;
#[path = "probe/faults.rs"]
mod faults;
#[path = "probe/ports.rs"]
mod ports;
#[path = "probe/progress.rs"]
mod progress;
#[path = "probe/sender_auth.rs"]
mod sender_auth;
