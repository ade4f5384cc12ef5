//! DNS answers made up for the tests of the verdict rules.

use std::net::Ipv4Addr;
use std::time::Duration;

use relais_dns::{Addresses, Lookup, Outcome};

/// An answer that took no time.
pub(crate) fn lookup<T>(name: &str, record_type: &'static str, outcome: Outcome<T>) -> Lookup<T> {
    Lookup {
        name: name.into(),
        record_type,
        outcome,
        elapsed: Duration::ZERO,
    }
}

/// A host's addresses: the A answer `a`, no AAAA record.
pub(crate) fn addresses(name: &str, a: Outcome<Ipv4Addr>) -> Addresses {
    Addresses {
        name: name.into(),
        a: lookup(name, "A", a),
        aaaa: lookup(name, "AAAA", Outcome::NoData),
    }
}
