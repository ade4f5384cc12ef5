//! `relais dns` and `relais dnsbl` against the fixture DNS server of relais-dns, in-process on
//! 127.0.0.1 (UDP and TCP, a free port). Every run of the binary is pointed at it with
//! `--resolver` and `RELAIS_RESOLVER`: these tests never ask the system resolver nor the
//! internet. Run with `cargo test -p relais --test dns`; the modules live in `tests/dns/`.

#[path = "common/mod.rs"]
mod common;

#[path = "dns/support.rs"]
mod support;

#[path = "dns/dmarc.rs"]
mod dmarc;
#[path = "dns/dnsbl.rs"]
mod dnsbl;
#[path = "dns/lookups.rs"]
mod lookups;
#[path = "dns/resolver.rs"]
mod resolver;
#[path = "dns/spf.rs"]
mod spf;
