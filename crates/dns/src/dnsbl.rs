//! DNS block lists (RFC 5782): is an address listed, and why.
//!
//! The query for `192.0.2.1` on zone `zen.spamhaus.org` is the A record of
//! `1.2.0.192.zen.spamhaus.org` (IPv6: the 32 nibbles reversed). NXDOMAIN: not listed. An A
//! answer in 127.0.0.0/8: listed, with the TXT record of the same name as the reason.
//!
//! Lists also answer to say "I refuse to answer you", and those answers look like listings.
//! Spamhaus returns `127.255.255.252` (typo in the zone name or unsupported query),
//! `127.255.255.254` (query through a public or open resolver) and `127.255.255.255`
//! (too many queries). Every answer in 127.255.255.0/24 is taken as such an error, as is any
//! answer outside 127.0.0.0/8 (often a resolver that rewrites NXDOMAIN to an ad server).
//! They are reported as errors, never as listings: refusing mail because the list refused to
//! answer would block everyone.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use relais_proto::date::millis;
use serde::ser::{Serialize, SerializeStruct, Serializer};
use tokio::task::JoinSet;

use crate::lookup::normalize;
use crate::{Lookup, Outcome, Resolver};

/// Zones `relais dnsbl` checks when none is given: free for low-volume use, widely used.
pub const DEFAULT_ZONES: &[&str] = &["zen.spamhaus.org", "bl.spamcop.net", "psbl.surriel.com"];

/// The answer of one list for one address.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsblCheck {
    /// The address checked.
    pub ip: IpAddr,
    /// The list's zone.
    pub zone: String,
    /// The name queried.
    pub query: String,
    /// The verdict.
    pub status: DnsblStatus,
    /// The A query.
    pub a: Lookup<Ipv4Addr>,
    /// The TXT query, made when the address is listed.
    pub txt: Option<Lookup<String>>,
    /// Both queries.
    pub elapsed: Duration,
}

/// What a list said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsblStatus {
    /// Listed.
    Listed {
        /// The A answers, each with its meaning when the list is known.
        codes: Vec<Code>,
        /// The TXT reason, when the list gives one.
        reason: Option<String>,
    },
    /// Not listed (NXDOMAIN, or a name without A record).
    NotListed,
    /// No verdict: the list answered with one of its error codes, or something that is no
    /// DNSBL answer, or the DNS failed.
    Error {
        /// The answers, when there were any.
        codes: Vec<Code>,
        /// Why this is not a verdict.
        reason: String,
    },
}

impl DnsblStatus {
    /// `listed`, `not_listed` or `error`.
    pub fn as_str(&self) -> &'static str {
        match self {
            DnsblStatus::Listed { .. } => "listed",
            DnsblStatus::NotListed => "not_listed",
            DnsblStatus::Error { .. } => "error",
        }
    }
}

/// One A answer of a list.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Code {
    /// The address returned.
    pub code: Ipv4Addr,
    /// `listing` or `error`.
    pub kind: &'static str,
    /// What it means, when known.
    pub meaning: Option<&'static str>,
}

/// The name to query for `ip` on `zone`.
pub fn query_name(ip: IpAddr, zone: &str) -> String {
    let zone = normalize(zone);
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.{zone}")
        }
        IpAddr::V6(v6) => {
            let mut name = String::with_capacity(64 + zone.len());
            for byte in v6.octets().iter().rev() {
                name.push_str(&format!("{:x}.{:x}.", byte & 0x0f, byte >> 4));
            }
            name.push_str(&zone);
            name
        }
    }
}

/// What an A answer from `zone` means.
pub fn classify(zone: &str, code: Ipv4Addr) -> Code {
    let [a, b, c, d] = code.octets();
    if a != 127 {
        return Code {
            code,
            kind: "error",
            meaning: Some(
                "not a DNSBL answer (outside 127.0.0.0/8): the resolver may rewrite NXDOMAIN",
            ),
        };
    }
    if b == 255 && c == 255 {
        let meaning = match d {
            252 => "error: typo in the DNSBL name, or a query the list does not support",
            254 => {
                "error: queries through public or open resolvers are refused; use your own resolver"
            }
            255 => "error: too many queries; the list rate-limits this resolver",
            _ => "error code reserved by the list (127.255.255.0/24)",
        };
        return Code {
            code,
            kind: "error",
            meaning: Some(meaning),
        };
    }
    let zone = normalize(zone).to_ascii_lowercase();
    let spamhaus = zone.ends_with("spamhaus.org") || zone.ends_with("spamhaus.net");
    let meaning = match (spamhaus, d) {
        (true, 2) => Some("SBL: a known spam source or spam operation"),
        (true, 3) => Some("SBL CSS: low-reputation or snowshoe spam source"),
        (true, 4..=7) => Some("XBL: an exploited or infected host (botnet, open proxy)"),
        (true, 9) => Some("DROP: a hijacked or criminal network"),
        (true, 10) => Some("PBL: an end-user range its ISP says should not send mail directly"),
        (true, 11) => Some("PBL: an end-user range that should not send mail directly"),
        (false, 2) => Some("listed"),
        _ => None,
    };
    Code {
        code,
        kind: "listing",
        meaning,
    }
}

impl Resolver {
    /// Checks `ip` on every zone, all at the same time; results in the order of `zones`.
    pub async fn dnsbl(&self, ip: IpAddr, zones: &[String]) -> Vec<DnsblCheck> {
        let mut tasks = JoinSet::new();
        for (index, zone) in zones.iter().enumerate() {
            let resolver = self.clone();
            let zone = zone.clone();
            tasks.spawn(async move { (index, resolver.dnsbl_one(ip, &zone).await) });
        }
        let mut checks: Vec<Option<DnsblCheck>> = vec![None; zones.len()];
        while let Some(joined) = tasks.join_next().await {
            if let Ok((index, check)) = joined {
                checks[index] = Some(check);
            }
        }
        let mut out = Vec::with_capacity(zones.len());
        for (zone, check) in zones.iter().zip(checks) {
            out.push(match check {
                Some(check) => check,
                None => self.dnsbl_one(ip, zone).await,
            });
        }
        out
    }

    /// Checks `ip` on one zone.
    pub async fn dnsbl_one(&self, ip: IpAddr, zone: &str) -> DnsblCheck {
        let started = Instant::now();
        let query = query_name(ip, zone);
        let a = self.a(&query).await;
        let mut txt = None;
        let status = match &a.outcome {
            Outcome::NxDomain | Outcome::NoData => DnsblStatus::NotListed,
            Outcome::Failed(failure) => DnsblStatus::Error {
                codes: Vec::new(),
                reason: format!("the query failed: {failure}"),
            },
            Outcome::Found(answers) => {
                let codes: Vec<Code> = answers.iter().map(|c| classify(zone, *c)).collect();
                if let Some(error) = codes.iter().find(|c| c.kind == "error") {
                    let reason = error.meaning.unwrap_or("error answer").to_string();
                    DnsblStatus::Error { codes, reason }
                } else {
                    let lookup = self.txt(&query).await;
                    let reason =
                        (!lookup.records().is_empty()).then(|| lookup.records().join(" / "));
                    txt = Some(lookup);
                    DnsblStatus::Listed { codes, reason }
                }
            }
        };
        DnsblCheck {
            ip,
            zone: normalize(zone),
            query,
            status,
            a,
            txt,
            elapsed: started.elapsed(),
        }
    }
}

impl Serialize for DnsblCheck {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (codes, reason): (&[Code], Option<&str>) = match &self.status {
            DnsblStatus::Listed { codes, reason } => (codes, reason.as_deref()),
            DnsblStatus::NotListed => (&[], None),
            DnsblStatus::Error { codes, reason } => (codes, Some(reason)),
        };
        let mut s = serializer.serialize_struct("DnsblCheck", 9)?;
        s.serialize_field("ip", &self.ip)?;
        s.serialize_field("zone", &self.zone)?;
        s.serialize_field("query", &self.query)?;
        s.serialize_field("status", self.status.as_str())?;
        s.serialize_field("codes", codes)?;
        s.serialize_field("reason", &reason)?;
        s.serialize_field("a", &self.a)?;
        s.serialize_field("txt", &self.txt)?;
        s.serialize_field("elapsed_ms", &millis(self.elapsed))?;
        s.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_names() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(query_name(v4, "bl.test."), "1.2.0.192.bl.test");
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(query_name(mapped, "bl.test"), "1.2.0.192.bl.test");
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            query_name(v6, "bl.test"),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test"
        );
    }

    #[test]
    fn error_codes_are_never_listings() {
        for last in [252, 254, 255, 1] {
            let code = Ipv4Addr::new(127, 255, 255, last);
            assert_eq!(classify("zen.spamhaus.org", code).kind, "error");
            assert_eq!(classify("bl.test", code).kind, "error");
        }
        let odd = classify("bl.test", Ipv4Addr::new(198, 51, 100, 7));
        assert_eq!(odd.kind, "error");
        let listed = classify("zen.spamhaus.org", Ipv4Addr::new(127, 0, 0, 10));
        assert_eq!(listed.kind, "listing");
        assert!(listed.meaning.unwrap().starts_with("PBL"));
        assert_eq!(
            classify("bl.test", Ipv4Addr::new(127, 0, 0, 2)).meaning,
            Some("listed")
        );
    }
}
