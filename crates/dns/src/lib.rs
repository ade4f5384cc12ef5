//! `relais-dns`: the lookups a mail administrator makes by hand with `nslookup`, with typed
//! answers instead of text to squint at.
//!
//! Everything goes through one [`Resolver`], which can be pointed at any `IP[:PORT]`
//! ([`Nameserver`], the `--resolver` flag and the [`RESOLVER_ENV`] variable of the CLI) or left
//! on the system's `/etc/resolv.conf`. Every query comes back as a [`Lookup`]: the records, or
//! *why* there are none — the name does not exist (NXDOMAIN), it exists without records of that
//! type (NODATA), or the DNS itself failed (SERVFAIL, REFUSED, a time-out) — with the time the
//! query took. Mail decisions differ on exactly those cases: a time-out is "try again later",
//! NXDOMAIN is "bounce now".
//!
//! On top of the plain lookups (MX, A/AAAA, PTR, TXT):
//! - [`mx`]: where mail for a domain goes — MX hosts sorted by preference with their addresses,
//!   RFC 7505 null MX, and the RFC 5321 implicit MX (the domain's own A/AAAA) when there is none;
//! - [`reverse`]: PTR of an address and forward-confirmed reverse DNS;
//! - [`spf`]: the SPF record parsed term by term, and evaluated for an address by one traced
//!   RFC 7208 `check_host()` that says which mechanism matched and why;
//! - [`dkim`]: DKIM key records read tag by tag, and what makes one unusable;
//! - [`dmarc`]: the DMARC record, found the DMARCbis way (the domain, then its parents);
//! - [`dnsbl`]: DNS block lists, where a list's own error answers (Spamhaus' `127.255.255.254`
//!   for queries through public resolvers, ...) are errors, never listings.
//!
//! The crate prints nothing: the CLI (`relais dns`, `relais dnsbl`, `relais probe`) and the
//! server (SPF on MAIL FROM, DNSBL on connect, MX routing) decide what to show or do.
//! Results implement `serde::Serialize` for `--json` output.
//!
//! With the `fixture` feature, [`fixture`] is a small authoritative DNS server (UDP and TCP on
//! 127.0.0.1) serving test zones, so tests never touch the system resolver or the internet.

mod direct;
pub mod dkim;
pub mod dmarc;
pub mod dnsbl;
#[cfg(feature = "fixture")]
pub mod fixture;
mod lookup;
pub mod mx;
mod resolver;
pub mod reverse;
pub mod spf;

pub use lookup::{Addresses, Failure, Lookup, MxRecord, Outcome, TlsaRecord};
pub use resolver::{
    Nameserver, NameserverError, RESOLVER_ENV, Resolver, ResolverError, ResolverOptions,
};
