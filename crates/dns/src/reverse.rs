//! Reverse DNS: the PTR of an address, and whether it is *forward-confirmed* (FCrDNS): some
//! name of the PTR answer resolves back (A/AAAA) to the same address. Receivers check it on
//! connect; a sending host without it is often refused or scored as spam.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use relais_proto::date::millis;
use serde::ser::{Serialize, SerializeStruct, Serializer};

use crate::{Addresses, Lookup, Outcome, Resolver};

/// At most this many PTR names are checked forward (as receivers do, to bound the work an
/// address with hundreds of PTR records could cause).
pub const MAX_PTR_NAMES: usize = 10;

/// The reverse DNS of one address.
#[derive(Debug, Clone, PartialEq)]
pub struct ReverseDns {
    /// The address.
    pub ip: IpAddr,
    /// Its PTR answer.
    pub ptr: Lookup<String>,
    /// The forward lookup of each PTR name (at most [`MAX_PTR_NAMES`]).
    pub forward: Vec<ForwardCheck>,
    /// PTR plus forward lookups.
    pub elapsed: Duration,
}

/// The forward lookup of one PTR name.
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardCheck {
    /// The PTR name.
    pub name: String,
    /// Its A/AAAA answers.
    pub addresses: Addresses,
    /// Whether they contain the address: this name is forward-confirmed.
    pub confirms: bool,
}

/// The verdict on an address's reverse DNS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fcrdns {
    /// A PTR name resolves back to the address.
    Confirmed,
    /// PTR names exist, but none resolves back to the address.
    NotConfirmed,
    /// The address has no PTR record (NXDOMAIN or NODATA).
    NoPtr,
    /// A DNS failure prevented the check.
    Failed,
}

impl Fcrdns {
    /// `confirmed`, `not_confirmed`, `no_ptr` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Fcrdns::Confirmed => "confirmed",
            Fcrdns::NotConfirmed => "not_confirmed",
            Fcrdns::NoPtr => "no_ptr",
            Fcrdns::Failed => "error",
        }
    }
}

impl ReverseDns {
    /// The first PTR name that resolves back to the address.
    pub fn confirmed_name(&self) -> Option<&str> {
        self.forward
            .iter()
            .find(|check| check.confirms)
            .map(|check| check.name.as_str())
    }

    /// The verdict.
    pub fn verdict(&self) -> Fcrdns {
        match &self.ptr.outcome {
            Outcome::Failed(_) => Fcrdns::Failed,
            Outcome::NxDomain | Outcome::NoData => Fcrdns::NoPtr,
            Outcome::Found(_) => {
                if self.confirmed_name().is_some() {
                    Fcrdns::Confirmed
                } else if self
                    .forward
                    .iter()
                    .any(|check| matches!(check.addresses.outcome(), Outcome::Failed(_)))
                {
                    Fcrdns::Failed
                } else {
                    Fcrdns::NotConfirmed
                }
            }
        }
    }
}

impl Resolver {
    /// PTR of `ip`, then the A/AAAA of each name: forward-confirmed reverse DNS.
    pub async fn reverse(&self, ip: IpAddr) -> ReverseDns {
        let started = Instant::now();
        let ip = ip.to_canonical();
        let ptr = self.ptr(ip).await;
        let mut forward = Vec::new();
        for name in ptr.records().iter().take(MAX_PTR_NAMES) {
            let addresses = self.addresses(name).await;
            let confirms = addresses.ips().contains(&ip);
            forward.push(ForwardCheck {
                name: name.clone(),
                addresses,
                confirms,
            });
        }
        ReverseDns {
            ip,
            ptr,
            forward,
            elapsed: started.elapsed(),
        }
    }
}

impl Serialize for ForwardCheck {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("ForwardCheck", 3)?;
        s.serialize_field("name", &self.name)?;
        s.serialize_field("confirms", &self.confirms)?;
        s.serialize_field("addresses", &self.addresses)?;
        s.end()
    }
}

impl Serialize for ReverseDns {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("ReverseDns", 6)?;
        s.serialize_field("ip", &self.ip)?;
        s.serialize_field("fcrdns", self.verdict().as_str())?;
        s.serialize_field("confirmed_name", &self.confirmed_name())?;
        s.serialize_field("ptr", &self.ptr)?;
        s.serialize_field("forward", &self.forward)?;
        s.serialize_field("elapsed_ms", &millis(self.elapsed))?;
        s.end()
    }
}
