//! Who the client is: its reverse DNS (PTR, forward-confirmed), its standing on DNS lists
//! (scored as Postfix's postscreen does: the weights of the lists that name it summed against
//! a threshold, white lists with negative weights), its HELO name, and its sender domain on
//! domain lists (RHSBL).
//!
//! The lookups start when the client connects (the door greets at once and asks for the
//! result at MAIL FROM); what the results mean is decided by pure functions
//! ([`decide_client`], [`decide_helo`], [`dnsbl_score`]), tested as tables.

use std::net::IpAddr;

use relais_config::{HeloAction, PolicyConfig, UnknownClient};
use relais_dns::dnsbl::{DnsblStatus, classify};
use relais_dns::reverse::Fcrdns;
use relais_dns::{Outcome, Resolver};
use relais_proto::{Reply, replies};

use crate::SenderAuth;

/// The address no DNS list may name (RFC 5782 §5).
const TEST_POINT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// What one DNS list said about the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListAnswer {
    /// The list's zone.
    pub zone: String,
    /// Its weight.
    pub weight: i32,
    /// Listed (with the codes), not listed, or no verdict (with why: logged, never counted).
    pub status: ListStatus,
}

/// A list's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListStatus {
    /// Named by the list, with its answers (`127.0.0.2`).
    Listed(Vec<String>),
    /// Not named.
    NotListed,
    /// An error answer (RFC 5782 `127.255.255.x`, something outside 127/8) or a DNS failure.
    Error(String),
}

/// What the connect-time lookups found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Screening {
    /// The PTR name that resolves back to the address, when there is one.
    pub name: Option<String>,
    /// The reverse DNS verdict, when it was looked up (`reverse_dns`).
    pub fcrdns: Option<Fcrdns>,
    /// The lists' answers, in the configured order.
    pub lists: Vec<ListAnswer>,
    /// The lookups did not finish within `lookup_timeout`.
    pub timed_out: bool,
}

impl Screening {
    /// True when a white list (a list with a negative weight) names the client.
    pub fn white_listed(&self) -> bool {
        self.lists
            .iter()
            .any(|l| l.weight < 0 && matches!(l.status, ListStatus::Listed(_)))
    }

    /// One line for the log: `dnsbl score 4 (zen.test*3 listed 127.0.0.2, …), ptr confirmed`.
    pub fn summary(&self) -> String {
        let lists: Vec<String> = self
            .lists
            .iter()
            .map(|l| match &l.status {
                ListStatus::Listed(codes) => {
                    format!("{}*{} listed {}", l.zone, l.weight, codes.join(","))
                }
                ListStatus::NotListed => format!("{} not listed", l.zone),
                ListStatus::Error(why) => format!("{} error: {why}", l.zone),
            })
            .collect();
        let mut out = String::new();
        if !self.lists.is_empty() {
            out = format!(
                "dnsbl score {} ({})",
                dnsbl_score(&self.lists).0,
                lists.join(", ")
            );
        }
        if let Some(f) = self.fcrdns {
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(&format!("ptr {}", f.as_str()));
        }
        if self.timed_out {
            out.push_str(" (lookups timed out)");
        }
        out
    }
}

/// The sum of the weights of the lists that name the client, and the listing with the
/// highest weight (named in the refusal).
pub fn dnsbl_score(lists: &[ListAnswer]) -> (i32, Option<&ListAnswer>) {
    let listed = lists
        .iter()
        .filter(|l| matches!(l.status, ListStatus::Listed(_)));
    let score = listed.clone().map(|l| l.weight).sum();
    let top = listed.filter(|l| l.weight > 0).max_by_key(|l| l.weight);
    (score, top)
}

/// Text from the configuration with its placeholders filled in.
fn fill(text: &str, pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .fold(text.to_string(), |t, (k, v)| t.replace(k, v))
}

/// What the lookups mean for a client that is neither authenticated nor a relay network:
/// refused by the DNS lists' score, or for its reverse DNS; `None` to go on.
pub fn decide_client(settings: &PolicyConfig, s: &Screening, ip: IpAddr) -> Option<Reply> {
    let client = ip.to_string();
    let (score, top) = dnsbl_score(&s.lists);
    if let Some(top) = top
        && score >= settings.dnsbl_threshold
    {
        let text = settings
            .texts
            .dnsbl
            .as_deref()
            .map(|t| fill(t, &[("{client}", &client), ("{list}", &top.zone)]));
        return Some(replies::dnsbl_blocked(ip, &top.zone, text.as_deref()));
    }
    let temporary = match (settings.reject_unknown_client, s.fcrdns) {
        (UnknownClient::Off, _) | (_, None | Some(Fcrdns::Confirmed)) => return None,
        // A DNS failure may pass: Postfix answers it with a temporary error too.
        (_, Some(Fcrdns::Failed)) => true,
        (UnknownClient::Temporary, _) => true,
        (UnknownClient::Permanent, _) => false,
    };
    let text = settings
        .texts
        .unknown_client
        .as_deref()
        .map(|t| fill(t, &[("{client}", &client)]));
    Some(replies::unknown_client(ip, temporary, text.as_deref()))
}

/// Why a HELO name is refused, if it is: not a fully-qualified name nor an address literal,
/// not a name at all, or our own name.
pub fn decide_helo(settings: &PolicyConfig, helo: &str, hostname: &str) -> Option<Reply> {
    if settings.helo != HeloAction::Reject {
        return None;
    }
    let shown: String = helo.chars().filter(|c| !c.is_control()).take(255).collect();
    let custom = |why: &str| {
        settings
            .texts
            .helo
            .as_deref()
            .map(|t| fill(t, &[("{helo}", &shown), ("{why}", why)]))
    };
    let literal = helo
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .map(|h| h.strip_prefix("IPv6:").unwrap_or(h));
    let name = helo.strip_suffix('.').unwrap_or(helo);
    let why = match literal {
        Some(addr) if addr.parse::<IpAddr>().is_ok() => return None,
        Some(_) => replies::HeloProblem::Invalid,
        None if !relais_proto::address::is_domain(name) => replies::HeloProblem::Invalid,
        None if !name.contains('.') => replies::HeloProblem::NotFqdn,
        None if name.eq_ignore_ascii_case(hostname) => replies::HeloProblem::OurName,
        None => return None,
    };
    Some(replies::helo_rejected(
        &shown,
        why,
        custom(why.as_str()).as_deref(),
    ))
}

/// Looks a domain up on one RHSBL zone: the codes when listed.
async fn rhsbl_one(resolver: &Resolver, domain: &str, zone: &str) -> ListStatus {
    let name = format!("{}.{zone}", domain.trim_end_matches('.'));
    let a = resolver.a(&name).await;
    match &a.outcome {
        Outcome::NxDomain | Outcome::NoData => ListStatus::NotListed,
        Outcome::Failed(f) => ListStatus::Error(format!("the query failed: {f}")),
        Outcome::Found(answers) => {
            let codes: Vec<_> = answers.iter().map(|c| classify(zone, *c)).collect();
            match codes.iter().find(|c| c.kind == "error") {
                Some(e) => ListStatus::Error(e.meaning.unwrap_or("error answer").to_string()),
                None => ListStatus::Listed(codes.iter().map(|c| c.code.to_string()).collect()),
            }
        }
    }
}

impl SenderAuth {
    /// True when clients are screened at connect (reverse DNS or DNS lists).
    pub fn screens_clients(&self) -> bool {
        self.settings.reverse_dns || !self.settings.dnsbl.is_empty()
    }

    /// The connect-time lookups of a client, in parallel, within `lookup_timeout`; a `trusted`
    /// client (a relay network) gets its reverse DNS only.
    pub async fn screen(&self, ip: IpAddr, trusted: bool) -> Screening {
        let s = &self.settings;
        let reverse = async {
            if s.reverse_dns {
                Some(self.resolver.reverse(ip).await)
            } else {
                None
            }
        };
        let zones: Vec<String> = if trusted {
            Vec::new()
        } else {
            s.dnsbl.iter().map(|z| z.zone.clone()).collect()
        };
        let lists = async {
            if zones.is_empty() {
                (Vec::new(), Vec::new())
            } else {
                // RFC 5782 §5: no list may name 127.0.0.1; one that does names everyone (a
                // dead list whose domain was taken over, or a wildcard): it is not believed.
                // The answer is cached like any other, so this costs a query per TTL.
                tokio::join!(
                    self.resolver.dnsbl(ip, &zones),
                    self.resolver.dnsbl(TEST_POINT, &zones)
                )
            }
        };
        let both = async { tokio::join!(reverse, lists) };
        let Ok((reverse, (checks, probes))) = tokio::time::timeout(s.lookup_timeout, both).await
        else {
            return Screening {
                timed_out: true,
                ..Default::default()
            };
        };
        let lists = checks
            .into_iter()
            .zip(&s.dnsbl)
            .zip(
                probes
                    .iter()
                    .map(|p| matches!(p.status, DnsblStatus::Listed { .. })),
            )
            .map(|((c, z), names_everyone)| ListAnswer {
                zone: z.zone.clone(),
                weight: z.weight,
                status: match c.status {
                    _ if names_everyone => ListStatus::Error(
                        "names the test point 127.0.0.1, as a dead or hijacked list does: ignored"
                            .into(),
                    ),
                    DnsblStatus::Listed { codes, .. } => {
                        ListStatus::Listed(codes.iter().map(|c| c.code.to_string()).collect())
                    }
                    DnsblStatus::NotListed => ListStatus::NotListed,
                    DnsblStatus::Error { reason, .. } => ListStatus::Error(reason),
                },
            })
            .collect();
        // A name that is no host name (spaces, quotes, control characters: a PTR record can
        // hold anything) names nobody, as Postfix's valid_hostname() has it: the client is
        // unknown, and nothing of it reaches the log or the Received header.
        let name = reverse
            .as_ref()
            .and_then(|r| r.confirmed_name())
            .map(|n| n.trim_end_matches('.'));
        let malformed = name.is_some_and(|n| !relais_proto::address::is_domain(n));
        Screening {
            name: name.filter(|_| !malformed).map(str::to_string),
            fcrdns: reverse.as_ref().map(|r| {
                if malformed {
                    Fcrdns::NotConfirmed
                } else {
                    r.verdict()
                }
            }),
            lists,
            timed_out: false,
        }
    }

    /// The sender domain on the RHSBL zones: the refusal when a list names it.
    pub async fn check_rhsbl(&self, sender: &str) -> Option<(String, Reply)> {
        let s = &self.settings;
        let domain = sender.rsplit_once('@')?.1;
        if s.rhsbl.is_empty() || domain.is_empty() {
            return None;
        }
        for zone in &s.rhsbl {
            let answer =
                tokio::time::timeout(s.lookup_timeout, rhsbl_one(&self.resolver, domain, zone))
                    .await
                    .unwrap_or_else(|_| ListStatus::Error("timed out".into()));
            match answer {
                ListStatus::Listed(codes) => {
                    let text = s
                        .texts
                        .rhsbl
                        .as_deref()
                        .map(|t| fill(t, &[("{sender}", sender), ("{list}", zone.as_str())]));
                    let reply = replies::rhsbl_blocked(sender, zone, text.as_deref());
                    return Some((format!("{zone} listed {}", codes.join(",")), reply));
                }
                ListStatus::Error(why) => {
                    tracing::info!("rhsbl {zone}: no verdict for {domain}: {why}");
                }
                ListStatus::NotListed => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relais_config::WeightedZone;

    fn settings(lists: &[&str], threshold: i32) -> PolicyConfig {
        PolicyConfig {
            dnsbl: lists
                .iter()
                .map(|z| WeightedZone::parse(z).unwrap())
                .collect(),
            dnsbl_threshold: threshold,
            ..Default::default()
        }
    }

    fn answer(zone: &str, weight: i32, listed: bool) -> ListAnswer {
        ListAnswer {
            zone: zone.into(),
            weight,
            status: if listed {
                ListStatus::Listed(vec!["127.0.0.2".into()])
            } else {
                ListStatus::NotListed
            },
        }
    }

    #[test]
    fn scores_against_the_threshold() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let s = settings(&["a.test*3", "b.test*2", "white.test*-5"], 3);
        // (a listed, b listed, white listed, refused by)
        let table: &[(bool, bool, bool, Option<&str>)] = &[
            (false, false, false, None),
            (true, false, false, Some("a.test")),
            (false, true, false, None),
            (true, true, false, Some("a.test")),
            (true, true, true, None),
            (false, false, true, None),
        ];
        for &(a, b, w, expected) in table {
            let screening = Screening {
                lists: vec![
                    answer("a.test", 3, a),
                    answer("b.test", 2, b),
                    answer("white.test", -5, w),
                ],
                ..Default::default()
            };
            let reply = decide_client(&s, &screening, ip);
            match expected {
                None => assert_eq!(reply, None, "{a} {b} {w}"),
                Some(zone) => {
                    let r = reply.unwrap().to_string();
                    assert_eq!(
                        r,
                        format!(
                            "554 5.7.1 Service unavailable; client [192.0.2.1] blocked using {zone}"
                        )
                    );
                }
            }
        }
        // a list's error answer counts for nothing
        let screening = Screening {
            lists: vec![ListAnswer {
                zone: "a.test".into(),
                weight: 3,
                status: ListStatus::Error("127.255.255.254".into()),
            }],
            ..Default::default()
        };
        assert_eq!(decide_client(&s, &screening, ip), None);
    }

    #[test]
    fn unknown_clients() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let table: &[(UnknownClient, Option<Fcrdns>, Option<&str>)] = &[
            (UnknownClient::Off, Some(Fcrdns::NoPtr), None),
            (UnknownClient::Temporary, Some(Fcrdns::Confirmed), None),
            (
                UnknownClient::Temporary,
                Some(Fcrdns::NoPtr),
                Some("450 4.7.25"),
            ),
            (
                UnknownClient::Permanent,
                Some(Fcrdns::NoPtr),
                Some("550 5.7.25"),
            ),
            (
                UnknownClient::Permanent,
                Some(Fcrdns::NotConfirmed),
                Some("550 5.7.25"),
            ),
            (
                UnknownClient::Permanent,
                Some(Fcrdns::Failed),
                Some("450 4.7.25"),
            ),
            (UnknownClient::Permanent, None, None),
        ];
        for &(action, fcrdns, expected) in table {
            let s = PolicyConfig {
                reject_unknown_client: action,
                reverse_dns: true,
                ..Default::default()
            };
            let screening = Screening {
                fcrdns,
                ..Default::default()
            };
            let got = decide_client(&s, &screening, ip).map(|r| r.to_string());
            match expected {
                None => assert_eq!(got, None, "{action:?} {fcrdns:?}"),
                Some(code) => assert!(
                    got.as_deref()
                        .is_some_and(|g| g.starts_with(code) && g.contains("[192.0.2.1]")),
                    "{action:?} {fcrdns:?}: {got:?}"
                ),
            }
        }
    }

    #[test]
    fn helo_names() {
        let s = PolicyConfig {
            helo: HeloAction::Reject,
            ..Default::default()
        };
        let table: &[(&str, Option<&str>)] = &[
            ("mail.example.org", None),
            ("mail.example.org.", None),
            ("[192.0.2.1]", None),
            ("[IPv6:2001:db8::1]", None),
            (
                "x",
                Some("504 5.5.2 <x>: Helo command rejected: need fully-qualified hostname"),
            ),
            ("localhost", Some("504 5.5.2")),
            ("DESKTOP-1234", Some("504 5.5.2")),
            (
                "bad_name!.example",
                Some("501 5.5.2 <bad_name!.example>: Helo command rejected: Invalid name"),
            ),
            ("[999.1.1.1]", Some("501 5.5.2")),
            (
                "MX.Example.COM",
                Some("550 5.7.1 <MX.Example.COM>: Helo command rejected: that is my name"),
            ),
        ];
        for (helo, expected) in table {
            let got = decide_helo(&s, helo, "mx.example.com").map(|r| r.to_string());
            match expected {
                None => assert_eq!(got, None, "{helo}"),
                Some(start) => assert!(
                    got.as_deref().is_some_and(|g| g.starts_with(start)),
                    "{helo}: {got:?}"
                ),
            }
        }
        let off = PolicyConfig::default();
        assert_eq!(
            decide_helo(&off, "x", "mx.example.com"),
            None,
            "seed 000's `helo x`"
        );
        let custom = PolicyConfig {
            helo: HeloAction::Reject,
            texts: relais_config::PolicyTexts {
                helo: Some("{helo} is {why}; see https://example.com/helo".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let got = decide_helo(&custom, "x", "mx.example.com")
            .unwrap()
            .to_string();
        assert_eq!(
            got,
            "504 5.5.2 x is not a fully-qualified host name; see https://example.com/helo"
        );
    }
}
