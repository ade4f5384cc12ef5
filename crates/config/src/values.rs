//! The typed values of the configuration that are more than a number or a string: each is
//! parsed once, when the file is read, and every crate above uses the parsed value.
//!
//! - [`Cidr`]: an address block of `relay_networks`;
//! - [`NextHop`]: `[host]:port` of `relayhost` and `routes`;
//! - [`LmtpTarget`]: where `[local] lmtp` delivers;
//! - [`is_safe_local_part`]: which local parts can name a mailbox.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

/// An address block such as `192.0.2.0/24` or `2001:db8::/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The network address.
    addr: IpAddr,
    /// Prefix length in bits.
    len: u8,
}

impl Cidr {
    /// Parses `addr/len`, or a single address (a /32 or /128).
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            Some(l) => l.trim().parse().ok().filter(|&l| l <= max)?,
            None => max,
        };
        Some(Cidr { addr, len })
    }

    /// True if `ip` is inside the block (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.len),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.len),
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let full = usize::from(bits / 8);
    if a[..full] != b[..full] {
        return false;
    }
    let rest = bits % 8;
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    a[full] & mask == b[full] & mask
}

/// Where to send mail for a domain, when not by MX.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextHop {
    /// Host name or IP address (no MX lookup).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl NextHop {
    /// Parses `[host]:port`, `host:port`, `[host]` or `host` (port 25).
    pub fn parse(s: &str) -> Option<NextHop> {
        let s = s.trim();
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, after) = rest.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().ok()?,
                None if after.is_empty() => 25,
                None => return None,
            };
            (h.to_string(), port)
        } else {
            match s.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (h.to_string(), p.parse().ok()?),
                _ => (s.to_string(), 25),
            }
        };
        if host.is_empty() {
            return None;
        }
        Some(NextHop { host, port })
    }
}

impl fmt::Display for NextHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]:{}", self.host, self.port)
    }
}

/// Where the LMTP server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LmtpTarget {
    /// A TCP address (`127.0.0.1:24`).
    Tcp(SocketAddr),
    /// A unix socket (`/run/dovecot/lmtp`).
    Unix(PathBuf),
}

impl LmtpTarget {
    /// Reads `unix:/path`, `/path` or `ip:port` (`[::1]:24`). Host names are not resolved here.
    pub fn parse(s: &str) -> Option<LmtpTarget> {
        let s = s.trim();
        if let Some(path) = s.strip_prefix("unix:") {
            return (!path.is_empty()).then(|| LmtpTarget::Unix(path.into()));
        }
        if s.starts_with('/') {
            return Some(LmtpTarget::Unix(s.into()));
        }
        s.strip_prefix("inet:")
            .unwrap_or(s)
            .parse()
            .ok()
            .map(LmtpTarget::Tcp)
    }
}

impl fmt::Display for LmtpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LmtpTarget::Tcp(a) => write!(f, "{a}"),
            LmtpTarget::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// A local part that can name a mailbox directory: ASCII letters, digits and `._+-=`, not
/// starting with a dot, at most 64 octets. Anything else (a `/`, `%`, `!`, quotes, non-ASCII)
/// is refused as an unknown user rather than guessed at.
pub fn is_safe_local_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-' | b'='))
}

/// A DNS list and its weight: `zen.spamhaus.org*3` (weight 1 when not given; a white list
/// has a negative weight, `list.dnswl.org*-5`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedZone {
    /// The zone, lower case, without a trailing dot.
    pub zone: String,
    /// Its weight in the sum compared with the threshold.
    pub weight: i32,
}

impl WeightedZone {
    /// Parses `zone` or `zone*weight`.
    pub fn parse(s: &str) -> Option<WeightedZone> {
        let (zone, weight) = match s.trim().rsplit_once('*') {
            Some((z, w)) => (z, w.trim().parse().ok()?),
            None => (s.trim(), 1),
        };
        let zone = zone.trim().trim_end_matches('.').to_ascii_lowercase();
        relais_proto::address::is_domain(&zone).then_some(WeightedZone { zone, weight })
    }
}

impl fmt::Display for WeightedZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.weight == 1 {
            f.write_str(&self.zone)
        } else {
            write!(f, "{}*{}", self.zone, self.weight)
        }
    }
}

impl FromStr for WeightedZone {
    type Err = BadValue;
    fn from_str(s: &str) -> Result<Self, BadValue> {
        WeightedZone::parse(s).ok_or_else(|| {
            BadValue(format!(
                "{s:?} is not like \"zen.spamhaus.org\" or \"zen.spamhaus.org*3\""
            ))
        })
    }
}

/// What a value that does not parse is refused with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadValue(pub(crate) String);

impl fmt::Display for BadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Cidr {
    type Err = BadValue;
    fn from_str(s: &str) -> Result<Self, BadValue> {
        Cidr::parse(s).ok_or_else(|| BadValue(format!("{s:?} is not a network like 192.0.2.0/24")))
    }
}

impl FromStr for NextHop {
    type Err = BadValue;
    fn from_str(s: &str) -> Result<Self, BadValue> {
        NextHop::parse(s).ok_or_else(|| BadValue(format!("{s:?} is not like [host]:port")))
    }
}

impl FromStr for LmtpTarget {
    type Err = BadValue;
    fn from_str(s: &str) -> Result<Self, BadValue> {
        LmtpTarget::parse(s).ok_or_else(|| {
            BadValue(format!(
                "{s:?} is not like \"127.0.0.1:24\" or \"unix:/path\""
            ))
        })
    }
}

/// Serde through `FromStr` and `Display`: the file holds the text, the program the value.
macro_rules! serde_as_text {
    ($($t:ty),*) => {$(
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}
serde_as_text!(Cidr, NextHop, LmtpTarget, WeightedZone);

/// `[delivery] resolver`: a nameserver of relais-dns, written `IP` or `IP:PORT`.
pub(crate) mod nameserver {
    use relais_dns::Nameserver;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(n: &Option<Nameserver>, s: S) -> Result<S::Ok, S::Error> {
        match n {
            Some(n) => s.collect_str(n),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Nameserver>, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("{text:?} is not like IP or IP:PORT")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr() {
        let n = Cidr::parse("192.0.2.0/24").unwrap();
        assert!(n.contains("192.0.2.77".parse().unwrap()));
        assert!(!n.contains("192.0.3.1".parse().unwrap()));
        assert!(n.contains("::ffff:192.0.2.1".parse().unwrap()));
        let n = Cidr::parse("10.0.0.0/9").unwrap();
        assert!(n.contains("10.127.0.1".parse().unwrap()));
        assert!(!n.contains("10.128.0.1".parse().unwrap()));
        assert!(Cidr::parse("::1").unwrap().contains("::1".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        for bad in ["", "192.0.2.0/33", "nonsense/8", "::/129", "1.2.3.4/x"] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(
            Cidr::parse("192.0.2.0/24").unwrap().to_string(),
            "192.0.2.0/24"
        );
    }

    #[test]
    fn next_hops() {
        let cases = [
            ("[127.0.0.1]:2526", Some(("127.0.0.1", 2526))),
            ("[mx.example.org]", Some(("mx.example.org", 25))),
            ("relay.example.org:587", Some(("relay.example.org", 587))),
            ("relay.example.org", Some(("relay.example.org", 25))),
            ("[::1]:25", Some(("::1", 25))),
            ("[]:25", None),
            ("[host]x", None),
            ("host:notaport", None),
        ];
        for (s, want) in cases {
            let got = NextHop::parse(s).map(|h| (h.host, h.port));
            assert_eq!(got, want.map(|(h, p)| (h.to_string(), p)), "{s}");
        }
    }

    #[test]
    fn lmtp_targets() {
        let table: &[(&str, Option<LmtpTarget>)] = &[
            (
                "127.0.0.1:24",
                Some(LmtpTarget::Tcp("127.0.0.1:24".parse().unwrap())),
            ),
            (
                "inet:[::1]:2424",
                Some(LmtpTarget::Tcp("[::1]:2424".parse().unwrap())),
            ),
            (
                "/run/dovecot/lmtp",
                Some(LmtpTarget::Unix("/run/dovecot/lmtp".into())),
            ),
            ("unix:/run/x", Some(LmtpTarget::Unix("/run/x".into()))),
            ("unix:", None),
            ("localhost:24", None),
        ];
        for (s, want) in table {
            assert_eq!(&LmtpTarget::parse(s), want, "{s}");
            if let Some(t) = want {
                assert_eq!(LmtpTarget::parse(&t.to_string()).as_ref(), Some(t));
            }
        }
    }

    #[test]
    fn values_read_back_as_written() {
        for s in ["[mx.example.org]:25", "[::1]:2526"] {
            assert_eq!(NextHop::parse(s).unwrap().to_string(), s);
        }
        for s in ["unix:/run/dovecot/lmtp", "127.0.0.1:24", "[::1]:24"] {
            assert_eq!(LmtpTarget::parse(s).unwrap().to_string(), s);
        }
    }
}
