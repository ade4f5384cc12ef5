//! What a query found: [`Lookup`] (the question, its [`Outcome`] and how long it took),
//! records found, NODATA, NXDOMAIN, or a [`Failure`] of the DNS itself; and the shapes of the
//! answers mail asks for ([`MxRecord`], [`Addresses`]). Every report of the crate and of the
//! diagnostics is built from these.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use relais_proto::date::millis;
use serde::ser::{Serialize, SerializeStruct, Serializer};

/// An MX record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MxRecord {
    /// Lower is tried first.
    pub preference: u16,
    /// The mail host, without the trailing dot; `""` for the root (an RFC 7505 null MX).
    pub exchange: String,
}

/// A TLSA record (RFC 6698): how a server's certificate is matched (DANE, RFC 7672).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TlsaRecord {
    /// 3: DANE-EE (the server's own certificate or key), 2: DANE-TA (an authority in its
    /// chain); 0 and 1 (PKIX) are unusable for SMTP.
    pub usage: u8,
    /// 0: the whole certificate, 1: its public key (SubjectPublicKeyInfo).
    pub selector: u8,
    /// 0: exact, 1: SHA-256, 2: SHA-512.
    pub matching: u8,
    /// What is matched.
    pub data: Vec<u8>,
}

/// The answer to one query.
#[derive(Debug, Clone, PartialEq)]
pub struct Lookup<T> {
    /// The name queried, without the trailing dot.
    pub name: String,
    /// `MX`, `A`, `AAAA`, `PTR`, `TXT`, ...
    pub record_type: &'static str,
    /// What came back.
    pub outcome: Outcome<T>,
    /// How long the query took (near zero when answered from the resolver's cache).
    pub elapsed: Duration,
}

impl<T> Lookup<T> {
    /// The records found; empty for every other outcome.
    pub fn records(&self) -> &[T] {
        match &self.outcome {
            Outcome::Found(records) => records,
            _ => &[],
        }
    }

    /// The DNS failure, if the query failed.
    pub fn failure(&self) -> Option<&Failure> {
        match &self.outcome {
            Outcome::Failed(failure) => Some(failure),
            _ => None,
        }
    }
}

/// What a query found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    /// Records of the type asked for (never empty).
    Found(Vec<T>),
    /// NODATA: the name exists, with no record of that type.
    NoData,
    /// NXDOMAIN: the name does not exist at all.
    NxDomain,
    /// The DNS could not answer: retry later, conclude nothing about the name.
    Failed(Failure),
}

impl<T> Outcome<T> {
    /// `found`, `nodata`, `nxdomain` or `error`: the `status` of the JSON output.
    pub fn status(&self) -> &'static str {
        match self {
            Outcome::Found(_) => "found",
            Outcome::NoData => "nodata",
            Outcome::NxDomain => "nxdomain",
            Outcome::Failed(_) => "error",
        }
    }
}

/// Why the DNS could not answer a query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// The server answered SERVFAIL (often: the domain's own nameservers are broken or
    /// unreachable, or a DNSSEC validation failed at the resolver).
    #[error("server failure (SERVFAIL)")]
    ServFail,
    /// The server answered REFUSED (it does not serve us, or not this zone).
    #[error("query refused (REFUSED)")]
    Refused,
    /// Another error response code.
    #[error("error response {0}")]
    Rcode(String),
    /// No answer within the time-out, after every attempt.
    #[error("timed out")]
    Timeout,
    /// Sockets, connection refused, malformed answers, ...
    #[error("network error: {0}")]
    Network(String),
    /// The name could not be a DNS name; nothing was sent.
    #[error("invalid name: {0}")]
    InvalidName(String),
}

impl Failure {
    /// A short machine-readable kind: `servfail`, `refused`, `rcode`, `timeout`, `network`,
    /// `invalid_name`.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::ServFail => "servfail",
            Failure::Refused => "refused",
            Failure::Rcode(_) => "rcode",
            Failure::Timeout => "timeout",
            Failure::Network(_) => "network",
            Failure::InvalidName(_) => "invalid_name",
        }
    }
}

impl Serialize for Failure {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Failure", 2)?;
        s.serialize_field("kind", self.kind())?;
        s.serialize_field("message", &self.to_string())?;
        s.end()
    }
}

impl<T: Serialize> Serialize for Lookup<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Lookup", 6)?;
        s.serialize_field("name", &self.name)?;
        s.serialize_field("type", self.record_type)?;
        s.serialize_field("status", self.outcome.status())?;
        s.serialize_field("records", self.records())?;
        s.serialize_field("error", &self.failure())?;
        s.serialize_field("elapsed_ms", &millis(self.elapsed))?;
        s.end()
    }
}

/// The A and AAAA answers for one host name.
#[derive(Debug, Clone, PartialEq)]
pub struct Addresses {
    /// The host name, without the trailing dot.
    pub name: String,
    /// Its A records.
    pub a: Lookup<Ipv4Addr>,
    /// Its AAAA records.
    pub aaaa: Lookup<Ipv6Addr>,
}

impl Addresses {
    /// Every address found, IPv4 first.
    pub fn ips(&self) -> Vec<IpAddr> {
        let v4 = self.a.records().iter().map(|ip| IpAddr::V4(*ip));
        let v6 = self.aaaa.records().iter().map(|ip| IpAddr::V6(*ip));
        v4.chain(v6).collect()
    }

    /// Both answers as one: found if either has addresses; otherwise a failure of either;
    /// otherwise NXDOMAIN if the name does not exist; otherwise NODATA.
    pub fn outcome(&self) -> Outcome<IpAddr> {
        let ips = self.ips();
        if !ips.is_empty() {
            return Outcome::Found(ips);
        }
        if let Some(failure) = self.a.failure().or(self.aaaa.failure()) {
            return Outcome::Failed(failure.clone());
        }
        if self.a.outcome == Outcome::NxDomain || self.aaaa.outcome == Outcome::NxDomain {
            return Outcome::NxDomain;
        }
        Outcome::NoData
    }

    /// How long the two queries took together (they run at the same time).
    pub fn elapsed(&self) -> Duration {
        self.a.elapsed.max(self.aaaa.elapsed)
    }
}

impl Serialize for Addresses {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let outcome = self.outcome();
        let mut s = serializer.serialize_struct("Addresses", 6)?;
        s.serialize_field("name", &self.name)?;
        s.serialize_field("status", outcome.status())?;
        s.serialize_field("addresses", &self.ips())?;
        s.serialize_field("elapsed_ms", &millis(self.elapsed()))?;
        s.serialize_field("a", &self.a)?;
        s.serialize_field("aaaa", &self.aaaa)?;
        s.end()
    }
}

/// `name` as shown and compared: trimmed, without the trailing dot.
pub(crate) fn normalize(name: &str) -> String {
    name.trim().trim_end_matches('.').to_string()
}
