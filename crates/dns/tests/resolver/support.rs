//! A fixture server and a resolver that asks only it.

use std::time::Duration;

use relais_dns::fixture::{Server, Zone, standard};
use relais_dns::{Nameserver, Resolver, ResolverOptions};

/// Short, so the time-out tests stay quick; the fixture answers in well under a millisecond.
pub const TIMEOUT: Duration = Duration::from_millis(400);

/// The server must stay alive as long as the resolver is used: keep both.
pub struct Fixture {
    pub server: Server,
    pub resolver: Resolver,
}

pub fn fixture() -> Fixture {
    with_zone(standard())
}

pub fn with_zone(zone: Zone) -> Fixture {
    let server = Server::start(zone).expect("start the fixture DNS server");
    let resolver = Resolver::new(&ResolverOptions {
        nameserver: Nameserver::At(server.addr()),
        timeout: TIMEOUT,
        attempts: 1,
        dnssec: None,
    })
    .expect("resolver");
    Fixture { server, resolver }
}
