//! The reverse DNS of the address (looked up while the session starts), against the name the
//! banner gives: PTR, forward confirmation (FCrDNS), and a banner that names the PTR.

use relais_dns::reverse::{Fcrdns, ReverseDns};

use super::report::Verdict;
use super::session::Session;

impl Session<'_> {
    /// Records the reverse DNS verdict and stage.
    pub(super) fn reverse_dns(&mut self, reverse: &ReverseDns, banner_name: &str) {
        self.add(reverse_verdict(reverse, banner_name, "banner"));
        self.report.stage(
            "reverse-dns",
            Some(reverse.elapsed),
            match reverse.confirmed_name() {
                Some(name) => format!("{name} (forward-confirmed)"),
                None => reverse.verdict().as_str().to_string(),
            },
        );
        self.report.reverse = serde_json::to_value(reverse).ok();
    }
}

/// The verdict on an address's reverse DNS, given the name it announces in its `what`
/// (`banner` for a server, `HELO` for this host's own address).
pub(crate) fn reverse_verdict(reverse: &ReverseDns, banner_name: &str, what: &str) -> Verdict {
    let ip = reverse.ip;
    match reverse.verdict() {
        Fcrdns::Confirmed => {
            let name = reverse.confirmed_name().unwrap_or_default();
            if name.eq_ignore_ascii_case(banner_name.trim_end_matches('.')) {
                Verdict::ok(
                    "reverse-dns",
                    format!(
                        "{ip} has PTR {name}, which resolves back to it, and the {what} says {banner_name}"
                    ),
                )
            } else {
                Verdict::warn(
                    "reverse-dns",
                    format!(
                        "the {what} name {banner_name:?} differs from the PTR of {ip} ({name})"
                    ),
                    "make the server announce its PTR name (Postfix: myhostname) so receivers that compare them are satisfied",
                )
            }
        }
        Fcrdns::NotConfirmed => {
            let names: Vec<&str> = reverse.forward.iter().map(|f| f.name.as_str()).collect();
            Verdict::warn(
                "reverse-dns",
                format!(
                    "the PTR of {ip} ({}) does not resolve back to {ip}",
                    names.join(", ")
                ),
                "make the PTR name's A/AAAA record point to this address (forward-confirmed reverse DNS)",
            )
        }
        Fcrdns::NoPtr => Verdict::warn(
            "reverse-dns",
            format!("{ip} has no PTR record"),
            "ask whoever owns the address (hosting provider, ISP) for a PTR naming the mail server; many receivers refuse mail from addresses without one",
        ),
        Fcrdns::Failed => Verdict::warn(
            "reverse-dns",
            format!("the reverse DNS of {ip} could not be checked: DNS failure"),
            "check the resolver, and the reverse zone's nameservers",
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    use relais_dns::reverse::ForwardCheck;
    use relais_dns::{Failure, Outcome};

    use super::super::fixtures::{addresses, lookup};
    use super::super::report::Level;
    use super::*;

    /// 192.0.2.1 with the PTR answer `ptr`, each name resolving to `back`.
    fn reverse(ptr: Outcome<String>, back: Outcome<Ipv4Addr>) -> ReverseDns {
        let ip = Ipv4Addr::new(192, 0, 2, 1);
        let ptr = lookup("1.2.0.192.in-addr.arpa", "PTR", ptr);
        let forward = ptr
            .records()
            .iter()
            .map(|name| {
                let addresses = addresses(name, back.clone());
                ForwardCheck {
                    name: name.clone(),
                    confirms: addresses.ips().contains(&IpAddr::V4(ip)),
                    addresses,
                }
            })
            .collect();
        ReverseDns {
            ip: IpAddr::V4(ip),
            ptr,
            forward,
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn fcrdns_and_banner() {
        let ptr = || Outcome::Found(vec!["mx.example.test".to_string()]);
        let own = || Outcome::Found(vec![Ipv4Addr::new(192, 0, 2, 1)]);
        let other = || Outcome::Found(vec![Ipv4Addr::new(192, 0, 2, 9)]);
        // (PTR, forward answer, banner name, level, words in the reason)
        type Row<'a> = (Outcome<String>, Outcome<Ipv4Addr>, &'a str, Level, &'a str);
        let table: &[Row] = &[
            (
                ptr(),
                own(),
                "mx.example.test",
                Level::Ok,
                "resolves back to it",
            ),
            (
                ptr(),
                own(),
                "MX.example.test.",
                Level::Ok,
                "resolves back to it",
            ),
            (
                ptr(),
                own(),
                "other.test",
                Level::Warn,
                "differs from the PTR",
            ),
            (
                ptr(),
                other(),
                "mx.example.test",
                Level::Warn,
                "does not resolve back",
            ),
            (
                ptr(),
                Outcome::NxDomain,
                "mx.example.test",
                Level::Warn,
                "does not resolve back",
            ),
            (
                ptr(),
                Outcome::Failed(Failure::Timeout),
                "mx.example.test",
                Level::Warn,
                "could not be checked",
            ),
            (
                Outcome::NxDomain,
                own(),
                "mx.example.test",
                Level::Warn,
                "has no PTR record",
            ),
            (
                Outcome::NoData,
                own(),
                "mx.example.test",
                Level::Warn,
                "has no PTR record",
            ),
            (
                Outcome::Failed(Failure::ServFail),
                own(),
                "x",
                Level::Warn,
                "could not be checked",
            ),
        ];
        for (ptr, back, banner, level, words) in table {
            let v = reverse_verdict(&reverse(ptr.clone(), back.clone()), banner, "banner");
            assert_eq!(
                (v.level, v.check),
                (*level, "reverse-dns"),
                "{ptr:?} {back:?} {banner}"
            );
            assert!(v.reason.contains(words), "{}", v.reason);
        }
    }
}
