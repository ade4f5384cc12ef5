//! relais-dns against its fixture DNS server on 127.0.0.1 (never the system resolver). One
//! module per RFC; `support` starts a server and a resolver pointed at it.

#[path = "resolver/support.rs"]
mod support;

#[path = "resolver/lookups.rs"]
mod lookups;
#[path = "resolver/rfc5782_dnsbl.rs"]
mod rfc5782_dnsbl;
#[path = "resolver/rfc7208_spf.rs"]
mod rfc7208_spf;
#[path = "resolver/rfc7489_dmarc.rs"]
mod rfc7489_dmarc;
#[path = "resolver/rfc7505_mx.rs"]
mod rfc7505_mx;
