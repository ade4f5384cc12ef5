//! `relais whoami`: the seeds' own steps (seed 003) in one command. Which address this host's
//! connections toward a given host leave from (the routing table is asked with a UDP socket
//! that is connected but never sends), its PTR, whether the PTR resolves back to it (FCrDNS),
//! and whether the HELO name matches: what receivers look at before anything else.
//!
//! It does not guess. With no route toward the host it says so (exit 2). A private, shared,
//! loopback or documentation address is not what the internet sees behind a NAT; relais asks
//! no outside service for the public one, it says so and takes the public address from
//! `--address` (what whatismyip shows).
//!
//! Exit codes: 0 the address has a forward-confirmed PTR (warnings may have been given: a HELO
//! name that differs, a private address), 1 the options do not make sense, 2 no route toward
//! the host, 3 the reverse DNS could not be checked (DNS failure), 42 no PTR, or a PTR that
//! does not resolve back to the address.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};

use relais_dns::reverse::{Fcrdns, ReverseDns};
use relais_dns::{Resolver, ResolverOptions};
use serde_json::json;

use crate::probe::render::render_verdict;
use crate::probe::report::{Level, Verdict};
use crate::probe::reverse::reverse_verdict;

/// Exit codes of `relais whoami` (see the module documentation).
pub mod exit {
    pub use crate::send::exit::{CONNECT as NO_ROUTE, OK, USAGE};
    /// The reverse DNS could not be checked.
    pub const DNS: u8 = 3;
    /// No PTR, or a PTR that does not resolve back to the address.
    pub const REVERSE_DNS: u8 = 42;
}

/// Toward where, and what to compare.
#[derive(Debug, Clone)]
pub struct WhoamiOptions {
    /// The host whose route is asked for (default: a.root-servers.net, 198.41.0.4).
    pub toward: IpAddr,
    /// The public address, when a NAT hides it (what whatismyip shows).
    pub address: Option<IpAddr>,
    /// The HELO name to compare with the PTR (default: this host's name).
    pub helo: Option<String>,
    /// The resolver for the reverse and forward lookups.
    pub resolver: ResolverOptions,
}

/// The address asked toward by default: a.root-servers.net, stable for decades. No packet is
/// sent to it.
pub const DEFAULT_TOWARD: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 41, 0, 4));

/// What was found.
#[derive(Debug, Clone)]
pub struct WhoamiReport {
    toward: IpAddr,
    /// The address connections leave from; `None` with no route.
    source: Option<IpAddr>,
    /// Why there is no source address (no route).
    no_route: Option<String>,
    /// The address whose reverse DNS was checked: `--address`, else the source.
    checked: Option<IpAddr>,
    helo: String,
    reverse: Option<ReverseDns>,
    verdicts: Vec<Verdict>,
    exit: u8,
}

/// Asks the routing table, then the DNS. An error means nothing was checked (no runtime, no
/// usable resolver): the options' fault.
pub fn run(options: WhoamiOptions) -> Result<WhoamiReport, String> {
    let helo = options.helo.clone().unwrap_or_else(crate::host_name);
    let (source, no_route) = match source_address(options.toward) {
        Ok(ip) => (Some(ip), None),
        Err(e) => (None, Some(e)),
    };
    let checked = options.address.or(source);
    let reverse = match checked {
        Some(ip) => {
            let runtime = relais_client::current_thread_runtime()
                .map_err(|e| format!("cannot start the runtime: {e}"))?;
            let resolver = Resolver::new(&options.resolver).map_err(|e| e.to_string())?;
            Some(runtime.block_on(resolver.reverse(ip)))
        }
        None => None,
    };
    let verdicts = judge(
        options.toward,
        source.ok_or(no_route.as_deref().unwrap_or_default()),
        options.address,
        reverse.as_ref(),
        &helo,
    );
    Ok(WhoamiReport {
        toward: options.toward,
        source,
        no_route,
        checked,
        helo,
        reverse,
        exit: exit_code(&verdicts),
        verdicts,
    })
}

/// The local address the kernel would use toward `toward` (port 25): a UDP socket connected
/// there, which sends nothing.
fn source_address(toward: IpAddr) -> Result<IpAddr, String> {
    let unspecified: SocketAddr = match toward {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(unspecified).map_err(|e| e.to_string())?;
    socket
        .connect(SocketAddr::new(toward, 25))
        .map_err(|e| e.to_string())?;
    socket
        .local_addr()
        .map(|a| a.ip())
        .map_err(|e| e.to_string())
}

/// Whether the internet never sees this address as a source: private (RFC 1918, unique local),
/// shared (RFC 6598, carrier-grade NAT), loopback, link-local or documentation.
pub(crate) fn not_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || (a == 100 && (64..128).contains(&b))
                || matches!((a, b, c), (192, 0, 2) | (198, 51, 100) | (203, 0, 113))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first == 0x2001 && v6.segments()[1] == 0x0db8)
        }
    }
}

/// The verdicts: the route, whether the address is public, its reverse DNS against the HELO
/// name (no PTR or no confirmation fail here: it is what receivers refuse on). Pure.
pub(crate) fn judge(
    toward: IpAddr,
    source: Result<IpAddr, &str>,
    given: Option<IpAddr>,
    reverse: Option<&ReverseDns>,
    helo: &str,
) -> Vec<Verdict> {
    let mut out = Vec::new();
    match source {
        Ok(ip) => out.push(Verdict::ok(
            "route",
            format!("connections toward {toward} leave from {ip}"),
        )),
        Err(why) => out.push(Verdict::fail(
            exit::NO_ROUTE,
            "route",
            format!("no route toward {toward} from here ({why}): this host cannot reach the internet"),
            "check the network configuration (default route, firewall); nothing else can be checked until then",
        )),
    }
    if let (Ok(ip), None) = (source, given)
        && not_public(ip)
    {
        out.push(Verdict::warn(
            "address",
            format!(
                "{ip} is not a public address: a NAT between here and the internet shows receivers another one, which relais cannot see from here"
            ),
            "find the public address (the seeds' whatismyip, or the router) and check it with --address IP",
        ));
    }
    if let Some(reverse) = reverse {
        let mut v = reverse_verdict(reverse, helo, "HELO");
        match reverse.verdict() {
            Fcrdns::NoPtr | Fcrdns::NotConfirmed => {
                v.level = Level::Fail;
                v.exit = exit::REVERSE_DNS;
            }
            Fcrdns::Failed => {
                v.level = Level::Fail;
                v.exit = exit::DNS;
            }
            Fcrdns::Confirmed => {}
        }
        out.push(v);
    }
    out
}

/// The first failing verdict's code, else 0.
fn exit_code(verdicts: &[Verdict]) -> u8 {
    verdicts
        .iter()
        .find(|v| v.level == Level::Fail)
        .map_or(exit::OK, |v| v.exit)
}

impl WhoamiReport {
    /// The exit code (see the module documentation).
    pub fn exit(&self) -> u8 {
        self.exit
    }

    /// The report as pretty-printed JSON, with a final newline.
    pub fn to_json(&self) -> String {
        let value = json!({
            "toward": self.toward,
            "source": self.source,
            "no_route": self.no_route,
            "checked": self.checked,
            "public": self.checked.map(|ip| !not_public(ip)),
            "ptr": self.reverse.as_ref().map(|r| r.ptr.records().to_vec()),
            "fcrdns": self.reverse.as_ref().map(|r| r.verdict().as_str()),
            "confirmed_name": self.reverse.as_ref().and_then(ReverseDns::confirmed_name),
            "helo": self.helo,
            "reverse": self.reverse,
            "verdicts": self.verdicts,
            "exit": self.exit,
        });
        serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
    }

    /// The report as text.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "relais whoami (toward {})", self.toward);
        let source = match (&self.source, &self.no_route) {
            (Some(ip), _) => ip.to_string(),
            (None, Some(why)) => format!("none: {why}"),
            (None, None) => "none".to_string(),
        };
        let _ = writeln!(out, "  source address  {source}");
        if let Some(ip) = self.checked.filter(|ip| Some(*ip) != self.source) {
            let _ = writeln!(out, "  checked         {ip} (--address)");
        }
        if let Some(r) = &self.reverse {
            let names = r.ptr.records();
            let ptr = match r.verdict() {
                _ if !names.is_empty() => names.join(", "),
                Fcrdns::Failed => "not known: DNS failure".to_string(),
                _ => "none".to_string(),
            };
            let confirmed = match r.confirmed_name() {
                Some(name) => format!("{name} resolves back to {}", r.ip),
                None => "not confirmed".to_string(),
            };
            let _ = writeln!(out, "  PTR             {ptr}");
            let _ = writeln!(out, "  forward         {confirmed}");
        }
        let _ = writeln!(out, "  HELO name       {}", self.helo);
        for v in &self.verdicts {
            render_verdict(&mut out, v);
        }
        let worst = self
            .verdicts
            .iter()
            .map(|v| v.level)
            .max()
            .unwrap_or(Level::Ok);
        let _ = writeln!(
            out,
            "summary: overall {}; exit {}",
            worst.as_str().to_uppercase(),
            self.exit
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use relais_dns::reverse::ForwardCheck;
    use relais_dns::{Failure, Outcome};

    use super::*;
    use crate::probe::fixtures::{addresses, lookup};

    const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 7));

    fn reverse(ptr: Outcome<String>, confirms: bool) -> ReverseDns {
        let ptr = lookup("7.0.18.198.in-addr.arpa", "PTR", ptr);
        let forward = ptr
            .records()
            .iter()
            .map(|name| ForwardCheck {
                name: name.clone(),
                addresses: addresses(name, Outcome::Found(vec![Ipv4Addr::new(198, 18, 0, 7)])),
                confirms,
            })
            .collect();
        ReverseDns {
            ip: IP,
            ptr,
            forward,
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn public_or_not() {
        let table: &[(&str, bool)] = &[
            ("10.1.2.3", false),
            ("172.16.0.1", false),
            ("192.168.1.1", false),
            ("100.64.0.1", false),
            ("100.128.0.1", true),
            ("127.0.0.1", false),
            ("169.254.1.1", false),
            ("192.0.2.2", false),
            ("198.41.0.4", true),
            ("198.18.0.7", true),
            ("fd00::2", false),
            ("fe80::1", false),
            ("::1", false),
            ("2001:db8::1", false),
            ("2001:500:2f::f", true),
        ];
        for (ip, public) in table {
            assert_eq!(!not_public(ip.parse().unwrap()), *public, "{ip}");
        }
    }

    #[test]
    fn verdicts() {
        let name = || Outcome::Found(vec!["mail.example.test".to_string()]);
        let private: IpAddr = "192.168.1.5".parse().unwrap();
        // (source, --address, reverse, HELO, [(check, level)], exit)
        type Row = (
            Result<IpAddr, &'static str>,
            Option<IpAddr>,
            Option<ReverseDns>,
            &'static str,
            Vec<(&'static str, Level)>,
            u8,
        );
        let table: Vec<Row> = vec![
            (
                Ok(IP),
                None,
                Some(reverse(name(), true)),
                "mail.example.test",
                vec![("route", Level::Ok), ("reverse-dns", Level::Ok)],
                exit::OK,
            ),
            (
                Ok(IP),
                None,
                Some(reverse(name(), true)),
                "laptop.local",
                vec![("route", Level::Ok), ("reverse-dns", Level::Warn)],
                exit::OK,
            ),
            (
                Ok(IP),
                None,
                Some(reverse(name(), false)),
                "mail.example.test",
                vec![("route", Level::Ok), ("reverse-dns", Level::Fail)],
                exit::REVERSE_DNS,
            ),
            (
                Ok(IP),
                None,
                Some(reverse(Outcome::NxDomain, false)),
                "mail.example.test",
                vec![("route", Level::Ok), ("reverse-dns", Level::Fail)],
                exit::REVERSE_DNS,
            ),
            (
                Ok(IP),
                None,
                Some(reverse(Outcome::Failed(Failure::Timeout), false)),
                "mail.example.test",
                vec![("route", Level::Ok), ("reverse-dns", Level::Fail)],
                exit::DNS,
            ),
            (
                Ok(private),
                None,
                Some(reverse(Outcome::NxDomain, false)),
                "x",
                vec![
                    ("route", Level::Ok),
                    ("address", Level::Warn),
                    ("reverse-dns", Level::Fail),
                ],
                exit::REVERSE_DNS,
            ),
            (
                Ok(private),
                Some(IP),
                Some(reverse(name(), true)),
                "mail.example.test",
                vec![("route", Level::Ok), ("reverse-dns", Level::Ok)],
                exit::OK,
            ),
            (
                Err("Network is unreachable"),
                None,
                None,
                "x",
                vec![("route", Level::Fail)],
                exit::NO_ROUTE,
            ),
        ];
        for (source, given, reverse, helo, want, code) in table {
            let got = judge(DEFAULT_TOWARD, source, given, reverse.as_ref(), helo);
            let pairs: Vec<(&str, Level)> = got.iter().map(|v| (v.check, v.level)).collect();
            assert_eq!(pairs, want, "{source:?} {given:?} {helo}");
            assert_eq!(exit_code(&got), code, "{source:?} {given:?} {helo}");
        }
    }
}
