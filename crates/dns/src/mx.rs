//! Where mail for a domain goes: RFC 5321 section 5.1 and RFC 7505.
//!
//! - MX records found: their hosts, by preference (then name, so the order is stable; a sender
//!   may shuffle hosts of equal preference), each with its A/AAAA addresses.
//! - One MX whose exchange is the root `.`: a *null MX*, the domain accepts no mail (RFC 7505).
//! - No MX records (NODATA): the domain itself, by its A/AAAA, is the *implicit MX*.
//! - NXDOMAIN: the domain does not exist.
//! - A DNS failure on the MX query: no fallback to A/AAAA — that would deliver to the wrong
//!   place whenever the MX query merely timed out. The caller retries later.

use std::time::{Duration, Instant};

use relais_proto::date::millis;
use serde::ser::{Serialize, SerializeStruct, Serializer};
use tokio::task::JoinSet;

use crate::lookup::normalize;
use crate::{Addresses, Failure, Lookup, MxRecord, Outcome, Resolver};

/// How mail for a domain is routed.
#[derive(Debug, Clone, PartialEq)]
pub struct MailRoute {
    /// The domain, without the trailing dot.
    pub domain: String,
    /// The MX query itself.
    pub mx: Lookup<MxRecord>,
    /// What the answers mean.
    pub kind: RouteKind,
    /// The hosts to try, in order: the MX hosts, or the domain itself for an implicit MX.
    /// Empty for a null MX and when nothing was found.
    pub hosts: Vec<MailHost>,
    /// A null MX listed next to real MX records: a misconfiguration RFC 7505 forbids. The
    /// null entry is ignored and the other hosts are used.
    pub null_mx_with_others: bool,
    /// How long the whole resolution took (MX, then the addresses of the hosts).
    pub elapsed: Duration,
}

/// What the MX answer means for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteKind {
    /// MX records name the mail hosts.
    Mx,
    /// RFC 7505 null MX: the domain says it accepts no mail.
    NullMx,
    /// No MX records: the domain's own A/AAAA records are the implicit MX.
    Implicit,
    /// The domain does not exist (NXDOMAIN).
    NoSuchDomain,
    /// The domain exists with neither MX nor A/AAAA records: no host can receive its mail.
    NoMailHost,
    /// The DNS failed; nothing can be concluded. Try again later.
    Failed(Failure),
}

impl RouteKind {
    /// `mx`, `null_mx`, `implicit`, `nxdomain`, `no_mail_host` or `error`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RouteKind::Mx => "mx",
            RouteKind::NullMx => "null_mx",
            RouteKind::Implicit => "implicit",
            RouteKind::NoSuchDomain => "nxdomain",
            RouteKind::NoMailHost => "no_mail_host",
            RouteKind::Failed(_) => "error",
        }
    }
}

/// One host that may receive the domain's mail.
#[derive(Debug, Clone, PartialEq)]
pub struct MailHost {
    /// The MX preference (0 for an implicit MX).
    pub preference: u16,
    /// The host name.
    pub name: String,
    /// Its addresses. A host without any cannot be reached; the caller reports it.
    pub addresses: Addresses,
}

impl Resolver {
    /// Resolves where mail for `domain` goes: MX (or implicit MX), then every host's addresses,
    /// queried concurrently.
    pub async fn mail_route(&self, domain: &str) -> MailRoute {
        let started = Instant::now();
        let mx = self.mx(domain).await;
        let mut null_mx_with_others = false;
        let (kind, hosts) = match &mx.outcome {
            Outcome::Found(records) => {
                let real: Vec<MxRecord> = records
                    .iter()
                    .filter(|r| !r.exchange.is_empty())
                    .cloned()
                    .collect();
                if real.is_empty() {
                    (RouteKind::NullMx, Vec::new())
                } else {
                    null_mx_with_others = real.len() < records.len();
                    (RouteKind::Mx, self.resolve_hosts(real).await)
                }
            }
            Outcome::NoData => {
                let addresses = self.addresses(domain).await;
                match addresses.outcome() {
                    Outcome::Found(_) => {
                        let host = MailHost {
                            preference: 0,
                            name: normalize(domain),
                            addresses,
                        };
                        (RouteKind::Implicit, vec![host])
                    }
                    Outcome::NoData => (RouteKind::NoMailHost, Vec::new()),
                    Outcome::NxDomain => (RouteKind::NoSuchDomain, Vec::new()),
                    Outcome::Failed(failure) => (RouteKind::Failed(failure), Vec::new()),
                }
            }
            Outcome::NxDomain => (RouteKind::NoSuchDomain, Vec::new()),
            Outcome::Failed(failure) => (RouteKind::Failed(failure.clone()), Vec::new()),
        };
        MailRoute {
            domain: normalize(domain),
            mx,
            kind,
            hosts,
            null_mx_with_others,
            elapsed: started.elapsed(),
        }
    }

    /// The addresses of every MX host, looked up at the same time, kept in MX order.
    async fn resolve_hosts(&self, records: Vec<MxRecord>) -> Vec<MailHost> {
        let mut tasks = JoinSet::new();
        for (index, record) in records.iter().enumerate() {
            let resolver = self.clone();
            let name = record.exchange.clone();
            tasks.spawn(async move { (index, resolver.addresses(&name).await) });
        }
        let mut found: Vec<Option<Addresses>> = vec![None; records.len()];
        while let Some(joined) = tasks.join_next().await {
            if let Ok((index, addresses)) = joined {
                found[index] = Some(addresses);
            }
        }
        let mut hosts = Vec::with_capacity(records.len());
        for (record, addresses) in records.into_iter().zip(found) {
            // A lookup task only ends without a value if it panicked; query again in place.
            let addresses = match addresses {
                Some(addresses) => addresses,
                None => self.addresses(&record.exchange).await,
            };
            hosts.push(MailHost {
                preference: record.preference,
                name: record.exchange,
                addresses,
            });
        }
        hosts
    }
}

impl Serialize for MailHost {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("MailHost", 3)?;
        s.serialize_field("preference", &self.preference)?;
        s.serialize_field("name", &self.name)?;
        s.serialize_field("addresses", &self.addresses)?;
        s.end()
    }
}

impl Serialize for MailRoute {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let error = match &self.kind {
            RouteKind::Failed(failure) => Some(failure),
            _ => None,
        };
        let mut s = serializer.serialize_struct("MailRoute", 7)?;
        s.serialize_field("domain", &self.domain)?;
        s.serialize_field("route", self.kind.as_str())?;
        s.serialize_field("error", &error)?;
        s.serialize_field("null_mx_with_others", &self.null_mx_with_others)?;
        s.serialize_field("hosts", &self.hosts)?;
        s.serialize_field("mx", &self.mx)?;
        s.serialize_field("elapsed_ms", &millis(self.elapsed))?;
        s.end()
    }
}
