//! The resolver wrapper: where queries go, and what an answer (or its absence) means.
//!
//! hickory's errors mix "the name does not exist" with "the network is down"; mail needs them
//! apart, so every query ends as an [`Outcome`]: records found, NODATA, NXDOMAIN, or a
//! [`Failure`] of the DNS itself. Names are always queried fully qualified (no search domains)
//! and the hosts file is never consulted: an answer always comes from the nameserver.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::dnssec::{Proof, TrustAnchors};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use mail_auth::MessageAuthenticator;

use crate::direct;
use crate::lookup::{Addresses, Failure, Lookup, MxRecord, Outcome, TlsaRecord, normalize};

/// The environment variable the CLI reads when `--resolver` is not given.
pub const RESOLVER_ENV: &str = "RELAIS_RESOLVER";

/// The DNS port used when a nameserver is given without one.
const DEFAULT_PORT: u16 = 53;

/// Where queries are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Nameserver {
    /// The nameservers of the system's `/etc/resolv.conf`.
    #[default]
    System,
    /// One nameserver, over UDP with TCP for truncated answers. Tests and air-gapped users
    /// point this at their own server, on any port.
    At(SocketAddr),
}

/// A `--resolver` value that is no `IP`, `IP:PORT`, `[IPv6]:PORT` nor `system`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a nameserver address: expected IP, IP:PORT, [IPv6]:PORT or \"system\"")]
pub struct NameserverError(pub String);

impl FromStr for Nameserver {
    type Err = NameserverError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("system") {
            return Ok(Nameserver::System);
        }
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(Nameserver::At(addr));
        }
        let bare = s
            .strip_prefix('[')
            .and_then(|v| v.strip_suffix(']'))
            .unwrap_or(s);
        match bare.parse::<IpAddr>() {
            Ok(ip) => Ok(Nameserver::At(SocketAddr::new(ip, DEFAULT_PORT))),
            Err(_) => Err(NameserverError(s.to_string())),
        }
    }
}

impl fmt::Display for Nameserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Nameserver::System => f.write_str("system (/etc/resolv.conf)"),
            Nameserver::At(addr) => write!(f, "{addr}"),
        }
    }
}

/// How the [`Resolver`] is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverOptions {
    /// Where queries go.
    pub nameserver: Nameserver,
    /// How long one attempt of one query may take.
    pub timeout: Duration,
    /// How many times a query is sent before it is declared timed out.
    pub attempts: usize,
    /// Validate answers with DNSSEC (DANE needs it), from the root's keys or, when given,
    /// the DNSKEY records of this file (a private zone's, in tests).
    pub dnssec: Option<Option<PathBuf>>,
}

impl Default for ResolverOptions {
    fn default() -> Self {
        ResolverOptions {
            nameserver: Nameserver::System,
            timeout: Duration::from_secs(5),
            attempts: 2,
            dnssec: None,
        }
    }
}

/// Why a [`Resolver`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolverError {
    /// `/etc/resolv.conf` could not be read or parsed.
    #[error("cannot read the system resolver configuration (/etc/resolv.conf): {0}")]
    SystemConfig(String),
    /// `/etc/resolv.conf` names no nameserver.
    #[error("/etc/resolv.conf names no nameserver; give one with --resolver IP[:PORT]")]
    NoNameserver,
    /// hickory refused the configuration.
    #[error("cannot set up the resolver: {0}")]
    Setup(String),
}

/// A DNS resolver that keeps "no such name", "no such record" and "DNS failure" apart.
///
/// Cheap to clone (the state is shared). Lookups need a tokio runtime.
#[derive(Clone)]
pub struct Resolver {
    inner: Arc<Inner>,
}

struct Inner {
    /// The resolver every lookup of this crate goes through.
    hickory: TokioResolver,
    /// The same resolver, as mail-auth's verifiers take it.
    auth: MessageAuthenticator,
    /// What the user asked for, to say where answers came from.
    nameserver: Nameserver,
    /// The nameservers actually used (for `System`, those of resolv.conf).
    servers: Vec<SocketAddr>,
    /// Per-attempt time-out, for the queries sent without hickory (see `direct`).
    timeout: Duration,
    /// Attempts per server, likewise.
    attempts: usize,
    /// The answers of those queries, kept for their TTL (hickory keeps its own).
    direct_cache: Mutex<DirectCache>,
}

/// Answers of queries sent without hickory: name → (answer, until).
type DirectCache = HashMap<String, (Outcome<String>, Instant)>;

/// At most this many answers are kept in the direct cache.
const DIRECT_CACHE_MAX: usize = 10_000;

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("nameserver", &self.inner.nameserver)
            .field("servers", &self.inner.servers)
            .finish()
    }
}

impl Resolver {
    /// Builds a resolver. Reads `/etc/resolv.conf` for [`Nameserver::System`]; sends nothing.
    pub fn new(options: &ResolverOptions) -> Result<Resolver, ResolverError> {
        let (config, mut opts) = match options.nameserver {
            Nameserver::System => hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| ResolverError::SystemConfig(e.to_string()))?,
            Nameserver::At(addr) => {
                let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                for connection in &mut server.connections {
                    connection.port = addr.port();
                }
                let config = ResolverConfig::from_parts(None, Vec::new(), vec![server]);
                (config, ResolverOpts::default())
            }
        };
        let servers: Vec<SocketAddr> = config
            .name_servers
            .iter()
            .flat_map(|ns| {
                ns.connections
                    .iter()
                    .map(|c| SocketAddr::new(ns.ip, c.port))
            })
            .fold(Vec::new(), |mut acc, addr| {
                if !acc.contains(&addr) {
                    acc.push(addr);
                }
                acc
            });
        if servers.is_empty() {
            return Err(ResolverError::NoNameserver);
        }
        opts.timeout = options.timeout;
        opts.attempts = options.attempts.max(1);
        opts.use_hosts_file = ResolveHosts::Never;
        if options.dnssec.is_some() {
            opts.validate = true;
        }
        let mut builder =
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
                .with_options(opts);
        if let Some(Some(file)) = &options.dnssec {
            // hickory reads only the builder's anchors (its option's file is not used).
            let anchors = TrustAnchors::from_file(file).map_err(|e| {
                ResolverError::Setup(format!("DNSSEC trust anchors {}: {e}", file.display()))
            })?;
            builder = builder.with_trust_anchor(Arc::new(anchors));
        }
        let hickory = builder
            .build()
            .map_err(|e| ResolverError::Setup(e.to_string()))?;
        Ok(Resolver {
            inner: Arc::new(Inner {
                auth: MessageAuthenticator(hickory.clone()),
                hickory,
                nameserver: options.nameserver,
                servers,
                timeout: options.timeout,
                attempts: options.attempts.max(1),
                direct_cache: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Where queries go, as configured.
    pub fn nameserver(&self) -> Nameserver {
        self.inner.nameserver
    }

    /// The nameserver addresses in use (those of resolv.conf for [`Nameserver::System`]).
    pub fn servers(&self) -> &[SocketAddr] {
        &self.inner.servers
    }

    /// mail-auth's view of the same resolver (the same hickory instance and cache): DKIM, ARC
    /// and DMARC verification (relais-policy) ask the DNS through it.
    pub fn authenticator(&self) -> &MessageAuthenticator {
        &self.inner.auth
    }

    /// MX records of `domain`, sorted by preference then name. See [`crate::mx`] for what mail
    /// does with them (null MX, implicit MX).
    pub async fn mx(&self, domain: &str) -> Lookup<MxRecord> {
        let mut lookup = self
            .query(domain, RecordType::MX, |data| match data {
                RData::MX(mx) => Some(MxRecord {
                    preference: mx.preference,
                    exchange: display_name(&mx.exchange),
                }),
                _ => None,
            })
            .await;
        if let Outcome::Found(records) = &mut lookup.outcome {
            records.sort_by(|a, b| {
                (a.preference, &a.exchange.to_ascii_lowercase())
                    .cmp(&(b.preference, &b.exchange.to_ascii_lowercase()))
            });
        }
        lookup
    }

    /// A records of `host`.
    pub async fn a(&self, host: &str) -> Lookup<Ipv4Addr> {
        self.query(host, RecordType::A, |data| match data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .await
    }

    /// AAAA records of `host`.
    pub async fn aaaa(&self, host: &str) -> Lookup<Ipv6Addr> {
        self.query(host, RecordType::AAAA, |data| match data {
            RData::AAAA(aaaa) => Some(aaaa.0),
            _ => None,
        })
        .await
    }

    /// A and AAAA records of `host`, queried together.
    pub async fn addresses(&self, host: &str) -> Addresses {
        let (a, aaaa) = tokio::join!(self.a(host), self.aaaa(host));
        Addresses {
            name: normalize(host),
            a,
            aaaa,
        }
    }

    /// PTR records of `ip` (the name queried is its `in-addr.arpa` / `ip6.arpa` form).
    ///
    /// For loopback addresses the nameserver is asked directly: hickory would answer
    /// `localhost` itself (see the `direct` module).
    pub async fn ptr(&self, ip: IpAddr) -> Lookup<String> {
        let ip = ip.to_canonical();
        let pick = |data: &RData| match data {
            RData::PTR(ptr) => Some(display_name(&ptr.0)),
            _ => None,
        };
        if !ip.is_loopback() {
            return self.query(&reverse_name(ip), RecordType::PTR, pick).await;
        }
        let name = reverse_name(ip);
        let started = Instant::now();
        let outcome = match self.cached(&name, started) {
            Some(outcome) => outcome,
            None => {
                let (outcome, ttl) = match fqdn(&name) {
                    Err(failure) => (Outcome::Failed(failure), Duration::ZERO),
                    Ok(fqdn) => {
                        let inner = &self.inner;
                        let (answer, ttl) = direct::query(
                            &inner.servers,
                            fqdn,
                            RecordType::PTR,
                            inner.timeout,
                            inner.attempts,
                        )
                        .await;
                        let outcome = match answer {
                            Outcome::Found(data) => {
                                let names: Vec<String> = data.iter().filter_map(pick).collect();
                                if names.is_empty() {
                                    Outcome::NoData
                                } else {
                                    Outcome::Found(names)
                                }
                            }
                            Outcome::NoData => Outcome::NoData,
                            Outcome::NxDomain => Outcome::NxDomain,
                            Outcome::Failed(failure) => Outcome::Failed(failure),
                        };
                        (outcome, ttl)
                    }
                };
                self.keep(&name, &outcome, started + ttl);
                outcome
            }
        };
        Lookup {
            name,
            record_type: "PTR",
            outcome,
            elapsed: started.elapsed(),
        }
    }

    /// A direct answer still in the cache at `now`.
    fn cached(&self, name: &str, now: Instant) -> Option<Outcome<String>> {
        let cache = self
            .inner
            .direct_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        cache
            .get(name)
            .filter(|(_, until)| *until > now)
            .map(|(outcome, _)| outcome.clone())
    }

    /// Keeps a direct answer until `until` (not a failure, nor an answer with a zero TTL).
    fn keep(&self, name: &str, outcome: &Outcome<String>, until: Instant) {
        let now = Instant::now();
        if matches!(outcome, Outcome::Failed(_)) || until <= now {
            return;
        }
        let mut cache = self
            .inner
            .direct_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if cache.len() >= DIRECT_CACHE_MAX {
            cache.retain(|_, (_, until)| *until > now);
            if cache.len() >= DIRECT_CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(name.to_string(), (outcome.clone(), until));
    }

    /// TXT records of `name`, each record's character-strings joined without separator (as
    /// SPF and DMARC read them). Bytes that are not UTF-8 are replaced.
    pub async fn txt(&self, name: &str) -> Lookup<String> {
        self.query(name, RecordType::TXT, |data| match data {
            RData::TXT(txt) => {
                let bytes: Vec<u8> = txt
                    .txt_data
                    .iter()
                    .flat_map(|s| s.iter().copied())
                    .collect();
                Some(String::from_utf8_lossy(&bytes).into_owned())
            }
            _ => None,
        })
        .await
    }

    /// Whether DNSSEC proves the MX records of `domain` (on a validating resolver): `Ok(false)`
    /// when there are none or they are not signed, `Err` when the lookup fails (a bogus
    /// signature among others).
    pub async fn mx_secure(&self, domain: &str) -> Result<bool, Failure> {
        let fqdn = fqdn(domain)?;
        match self.inner.hickory.lookup(fqdn, RecordType::MX).await {
            Ok(lookup) => {
                let answers: Vec<_> = lookup
                    .answers()
                    .iter()
                    .filter(|r| r.record_type() == RecordType::MX)
                    .collect();
                Ok(!answers.is_empty() && answers.iter().all(|r| r.proof == Proof::Secure))
            }
            Err(err) => match classify::<()>(err) {
                Outcome::Failed(f) => Err(f),
                _ => Ok(false),
            },
        }
    }

    /// Whether the zone that holds `name` is meant to be signed: its parent publishes a DS
    /// record for it (asked without validation). A validating lookup that fails in such a zone
    /// meets a broken signature (bogus); in a zone without DS the resolver may merely be unable
    /// to validate (a forwarder that drops DNSSEC records).
    pub async fn zone_signed(&self, name: &str) -> Result<bool, Failure> {
        let mut name = fqdn(name)?;
        // Asked at a name that is no zone's apex, DS is answered by the zone holding the name,
        // with that zone's SOA: its owner is the apex to ask again (once).
        for _ in 0..2 {
            match self
                .inner
                .hickory
                .lookup(name.clone(), RecordType::DS)
                .await
            {
                Ok(lookup) => {
                    return Ok(lookup
                        .answers()
                        .iter()
                        .any(|r| r.record_type() == RecordType::DS));
                }
                Err(NetError::Dns(DnsError::NoRecordsFound(no))) => match no.soa {
                    Some(soa) if soa.name != name => name = soa.name.clone(),
                    _ => return Ok(false),
                },
                Err(err) => {
                    return match classify::<()>(err) {
                        Outcome::Failed(f) => Err(f),
                        _ => Ok(false),
                    };
                }
            }
        }
        Ok(false)
    }

    /// TLSA records of `name` (`_25._tcp.mx.example.com`), and whether DNSSEC proved them
    /// (true only on a validating resolver, for an answer whose every record is secure).
    pub async fn tlsa(&self, name: &str) -> (Lookup<TlsaRecord>, bool) {
        let started = Instant::now();
        let (outcome, secure) = match fqdn(name) {
            Err(failure) => (Outcome::Failed(failure), false),
            Ok(fqdn) => match self.inner.hickory.lookup(fqdn, RecordType::TLSA).await {
                Ok(lookup) => {
                    let answers: Vec<_> = lookup
                        .answers()
                        .iter()
                        .filter(|r| r.record_type() == RecordType::TLSA)
                        .collect();
                    let secure =
                        !answers.is_empty() && answers.iter().all(|r| r.proof == Proof::Secure);
                    let records: Vec<TlsaRecord> = answers
                        .iter()
                        .filter_map(|r| match &r.data {
                            RData::TLSA(t) => Some(TlsaRecord {
                                usage: t.cert_usage.into(),
                                selector: t.selector.into(),
                                matching: t.matching.into(),
                                data: t.cert_data.clone(),
                            }),
                            _ => None,
                        })
                        .collect();
                    match records.is_empty() {
                        true => (Outcome::NoData, false),
                        false => (Outcome::Found(records), secure),
                    }
                }
                Err(err) => (classify(err), false),
            },
        };
        let lookup = Lookup {
            name: normalize(name),
            record_type: type_name(RecordType::TLSA),
            outcome,
            elapsed: started.elapsed(),
        };
        (lookup, secure)
    }

    /// One query, timed, with its answer classified.
    async fn query<T>(
        &self,
        name: &str,
        record_type: RecordType,
        pick: impl Fn(&RData) -> Option<T>,
    ) -> Lookup<T> {
        let started = Instant::now();
        let outcome = match fqdn(name) {
            Err(failure) => Outcome::Failed(failure),
            Ok(fqdn) => match self.inner.hickory.lookup(fqdn, record_type).await {
                Ok(lookup) => {
                    let records: Vec<T> = lookup
                        .answers()
                        .iter()
                        .filter(|r| r.record_type() == record_type)
                        .filter_map(|r| pick(&r.data))
                        .collect();
                    if records.is_empty() {
                        Outcome::NoData
                    } else {
                        Outcome::Found(records)
                    }
                }
                Err(err) => classify(err),
            },
        };
        Lookup {
            name: normalize(name),
            record_type: type_name(record_type),
            outcome,
            elapsed: started.elapsed(),
        }
    }
}

/// A name as shown: ASCII (punycode), without the trailing dot; the root is `""`.
fn display_name(name: &Name) -> String {
    name.to_ascii().trim_end_matches('.').to_string()
}

/// The fully qualified form of `name`, so no search domain is ever appended.
///
/// Names are read as IDNA (a UTF-8 name becomes punycode). An ASCII name that IDNA refuses
/// (`dis_allowed.example`, `foo:bar/baz.example`, labels an SPF macro filled with spaces or
/// `%`) is sent as it is, label by label: the DNS allows any octet in a label.
pub(crate) fn fqdn(name: &str) -> Result<Name, Failure> {
    let trimmed = name.trim().trim_end_matches('.');
    if trimmed.is_empty() {
        return Err(Failure::InvalidName(format!("{name:?} is empty")));
    }
    let mut parsed = Name::from_utf8(trimmed)
        .or_else(|e| match raw_labels(trimmed) {
            Some(labels) if trimmed.is_ascii() => Name::from_labels(labels),
            _ => Err(e),
        })
        .map_err(|e| Failure::InvalidName(format!("{name:?}: {e}")))?;
    parsed.set_fqdn(true);
    Ok(parsed)
}

/// The labels of a name in presentation form, with hickory's escapes (`\:`, and `\040` in
/// octal), as [`display_name`] writes them.
fn raw_labels(name: &str) -> Option<Vec<Vec<u8>>> {
    let mut labels = vec![Vec::new()];
    let mut bytes = name.bytes();
    while let Some(b) = bytes.next() {
        let byte = match b {
            b'.' => {
                labels.push(Vec::new());
                continue;
            }
            b'\\' => match bytes.next()? {
                d if d.is_ascii_digit() => {
                    let (d2, d3) = (bytes.next()?, bytes.next()?);
                    let octal = [d, d2, d3].iter().try_fold(0u16, |acc, d| match d {
                        b'0'..=b'7' => Some(acc * 8 + u16::from(d - b'0')),
                        _ => None,
                    })?;
                    u8::try_from(octal).ok()?
                }
                other => other,
            },
            other => other,
        };
        labels.last_mut()?.push(byte);
    }
    Some(labels)
}

/// The reverse-lookup name of `ip`: `4.3.2.1.in-addr.arpa` or the `ip6.arpa` nibble form.
pub(crate) fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let mut name = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                name.push_str(&format!("{:x}.{:x}.", byte & 0x0f, byte >> 4));
            }
            name.push_str("ip6.arpa");
            name
        }
    }
}

fn type_name(record_type: RecordType) -> &'static str {
    match record_type {
        RecordType::A => "A",
        RecordType::AAAA => "AAAA",
        RecordType::MX => "MX",
        RecordType::PTR => "PTR",
        RecordType::TXT => "TXT",
        RecordType::CNAME => "CNAME",
        RecordType::NS => "NS",
        RecordType::SOA => "SOA",
        RecordType::TLSA => "TLSA",
        _ => "other",
    }
}

/// hickory's error, as what it means for the name.
fn classify<T>(err: NetError) -> Outcome<T> {
    match err {
        NetError::Dns(DnsError::NoRecordsFound(no_records)) => {
            if no_records.response_code == ResponseCode::NXDomain {
                Outcome::NxDomain
            } else {
                Outcome::NoData
            }
        }
        NetError::Dns(DnsError::ResponseCode(code)) => Outcome::Failed(match code {
            ResponseCode::ServFail => Failure::ServFail,
            ResponseCode::Refused => Failure::Refused,
            ResponseCode::NXDomain => return Outcome::NxDomain,
            other => Failure::Rcode(other.to_string()),
        }),
        NetError::Timeout => Outcome::Failed(Failure::Timeout),
        other => Outcome::Failed(Failure::Network(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameserver_forms() {
        let at = |s: &str| Nameserver::At(s.parse().unwrap());
        assert_eq!("127.0.0.1".parse(), Ok(at("127.0.0.1:53")));
        assert_eq!("127.0.0.1:5353".parse(), Ok(at("127.0.0.1:5353")));
        assert_eq!("::1".parse(), Ok(at("[::1]:53")));
        assert_eq!("[::1]".parse(), Ok(at("[::1]:53")));
        assert_eq!("[::1]:5353".parse(), Ok(at("[::1]:5353")));
        assert_eq!(" System ".parse(), Ok(Nameserver::System));
        assert!("dns.example".parse::<Nameserver>().is_err());
        assert!("127.0.0.1:99999".parse::<Nameserver>().is_err());
        assert!("".parse::<Nameserver>().is_err());
    }

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("192.0.2.1".parse().unwrap()),
            "1.2.0.192.in-addr.arpa"
        );
        assert_eq!(
            reverse_name("2001:db8::1".parse().unwrap()),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
    }

    #[test]
    fn names_are_fully_qualified() {
        assert_eq!(fqdn("example.test").unwrap().to_ascii(), "example.test.");
        assert_eq!(fqdn("example.test.").unwrap().to_ascii(), "example.test.");
        assert!(matches!(fqdn(" "), Err(Failure::InvalidName(_))));
        assert!(matches!(
            fqdn(&"a".repeat(64)),
            Err(Failure::InvalidName(_))
        ));
    }
}
