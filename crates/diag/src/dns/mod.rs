//! The reports behind `relais dns mx|a|ptr|txt|spf|dmarc NAME` and `relais dnsbl IP`: the
//! `nslookup` half of the seeds, with verdicts. The lookups and their meaning live in
//! `relais-dns`; this module runs them, renders them (text, or JSON) and picks the exit code.
//!
//! # Exit codes
//!
//! | code | meaning |
//! |-----:|---------|
//! | 0 | found: records exist; mail hosts with addresses; PTR forward-confirmed; SPF record valid, or `pass` with an address; DMARC record valid; not listed on any zone |
//! | 1 | a negative answer: NXDOMAIN or NODATA; null MX or no reachable mail host; no PTR or PTR not forward-confirmed; no SPF record, an invalid one, or a result other than `pass` (`fail`, `softfail`, `neutral`, `none`, `permerror`); no valid DMARC record; listed on a zone |
//! | 4 | an argument was not understood: a resolver that is no address, a name that cannot be a DNS name |
//! | 5 | the DNS failed: time-out, SERVFAIL, REFUSED, network error, SPF `temperror`, a list answering with one of its error codes (and no zone listing the address), no usable resolver |

pub(crate) mod dkim;
mod policy;
mod records;

use std::fmt::Write as _;
use std::net::IpAddr;

use relais_dns::dnsbl::DEFAULT_ZONES;
use relais_dns::spf::SpfQuery;
use relais_dns::{Addresses, Failure, Lookup, Nameserver, Outcome, Resolver, ResolverOptions};
use serde_json::{Value, json};

/// Exit codes of `relais dns` and `relais dnsbl` (the table is in the module documentation).
pub mod exit {
    /// Found, pass, not listed.
    pub const OK: u8 = 0;
    /// A negative answer.
    pub const NEGATIVE: u8 = 1;
    /// An argument was not understood (the binary's code for bad input).
    pub const USAGE: u8 = 4;
    /// The DNS failed.
    pub const DNS: u8 = 5;
}

/// What to look up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// Where mail for a domain goes.
    Mx(String),
    /// The A and AAAA records of a host.
    A(String),
    /// The PTR of an address, forward-confirmed or not.
    Ptr(IpAddr),
    /// The TXT records of a name.
    Txt(String),
    /// The SPF record of a domain; with `ip`, evaluated for that client.
    Spf {
        /// The MAIL FROM domain.
        domain: String,
        /// The client address to evaluate the record for.
        ip: Option<IpAddr>,
        /// The HELO name (for `%{h}`).
        helo: Option<String>,
        /// The MAIL FROM address (default: the domain); its domain must be `domain`.
        sender: Option<String>,
    },
    /// The DMARC record that applies to a domain.
    Dmarc(String),
    /// The DKIM key published at `SELECTOR._domainkey.DOMAIN`; with `key`, compared with that
    /// local private key.
    Dkim {
        /// The name of the key record.
        name: String,
        /// A private key file (PEM).
        key: Option<std::path::PathBuf>,
    },
    /// An address on DNS block lists (no zones: [`DEFAULT_ZONES`]).
    Dnsbl {
        /// The address.
        ip: IpAddr,
        /// The zones to ask.
        zones: Vec<String>,
    },
}

/// What a command prints, and its exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Text or JSON, ending with a newline.
    pub output: String,
    /// See [`exit`].
    pub code: u8,
}

/// One report: its text, its JSON and its exit code.
struct Report {
    text: String,
    json: Value,
    code: u8,
}

impl Query {
    /// The name of the query in the JSON output.
    fn kind(&self) -> &'static str {
        match self {
            Query::Mx(_) => "mx",
            Query::A(_) => "a",
            Query::Ptr(_) => "ptr",
            Query::Txt(_) => "txt",
            Query::Spf { .. } => "spf",
            Query::Dmarc(_) => "dmarc",
            Query::Dkim { .. } => "dkim",
            Query::Dnsbl { .. } => "dnsbl",
        }
    }

    /// Whether the query makes sense before anything is sent: an SPF sender must be at the
    /// domain (SPF checks the MAIL FROM domain). The error is the message for exit code 4.
    pub fn check(&self) -> Result<(), String> {
        if let Query::Dkim { name, .. } = self
            && !name.to_ascii_lowercase().contains("._domainkey.")
        {
            return Err(format!(
                "{name}: a DKIM key is published at SELECTOR._domainkey.DOMAIN"
            ));
        }
        if let Query::Spf {
            domain,
            sender: Some(sender),
            ..
        } = self
        {
            let sender_domain = sender.rsplit_once('@').map_or(sender.as_str(), |(_, d)| d);
            if !same_domain(sender_domain.trim_end_matches('>'), domain) {
                return Err(format!(
                    "--sender {sender}: its domain must be {domain} (SPF checks the MAIL FROM domain)"
                ));
            }
        }
        Ok(())
    }

    /// Looks it up and reports.
    async fn report(self, resolver: &Resolver) -> Report {
        match self {
            Query::Mx(domain) => records::mx_report(resolver.mail_route(&domain).await),
            Query::A(host) => records::a_report(resolver.addresses(&host).await),
            Query::Ptr(ip) => records::ptr_report(resolver.reverse(ip).await),
            Query::Txt(name) => records::txt_report(resolver.txt(&name).await),
            Query::Spf {
                domain,
                ip,
                helo,
                sender,
            } => {
                let record = resolver.spf_record(&domain).await;
                let check = match ip {
                    Some(ip) => {
                        let sender = sender.unwrap_or_else(|| domain.clone());
                        let query = SpfQuery::mail_from(ip, &sender, helo.as_deref().unwrap_or(""));
                        Some(resolver.spf_check(&query).await)
                    }
                    None => None,
                };
                policy::spf_report(record, check)
            }
            Query::Dmarc(domain) => policy::dmarc_report(resolver.dmarc(&domain).await),
            Query::Dkim { name, key } => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                dkim::dkim_report(&name, resolver.txt(&name).await, key.as_deref())
            }
            Query::Dnsbl { ip, zones } => {
                let zones: Vec<String> = if zones.is_empty() {
                    DEFAULT_ZONES.iter().map(|z| z.to_string()).collect()
                } else {
                    zones
                };
                // RFC 5782 §5: every list names 127.0.0.2 and never 127.0.0.1; a list that
                // does not is dead, or answers everything.
                let (checks, two, one) = tokio::join!(
                    resolver.dnsbl(ip, &zones),
                    resolver.dnsbl(std::net::Ipv4Addr::new(127, 0, 0, 2).into(), &zones),
                    resolver.dnsbl(std::net::Ipv4Addr::LOCALHOST.into(), &zones),
                );
                let health = two
                    .iter()
                    .zip(&one)
                    .map(|(two, one)| policy::ZoneHealth::of(two, one))
                    .collect();
                policy::dnsbl_report(ip, checks, health)
            }
        }
    }
}

/// Runs `query` against the resolver `options` describe, on a runtime of its own, and renders
/// it (JSON with `json`). An error is an exit code and a message: nothing was looked up.
pub fn run(query: Query, options: &ResolverOptions, json: bool) -> Result<Answer, (u8, String)> {
    let runtime = relais_client::current_thread_runtime()
        .map_err(|e| (exit::DNS, format!("cannot start the runtime: {e}")))?;
    let kind = query.kind();
    runtime.block_on(async {
        let resolver = Resolver::new(options).map_err(|e| (exit::DNS, e.to_string()))?;
        let servers = servers(&resolver);
        let report = query.report(&resolver).await;
        let output = if json {
            let out = json!({
                "query": kind,
                "resolver": servers,
                "exit": report.code,
                "result": report.json,
            });
            serde_json::to_string_pretty(&out).unwrap_or_default() + "\n"
        } else {
            format!("{}resolver: {servers}\n", report.text)
        };
        Ok(Answer {
            output,
            code: report.code,
        })
    })
}

/// A library result as JSON.
fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn servers(resolver: &Resolver) -> String {
    let list: Vec<String> = resolver.servers().iter().map(|s| s.to_string()).collect();
    match resolver.nameserver() {
        Nameserver::System => format!("{} (/etc/resolv.conf)", list.join(", ")),
        Nameserver::At(addr) => addr.to_string(),
    }
}

fn same_domain(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// Exit code and one line for a lookup that found nothing or failed.
fn negative<T>(lookup: &Lookup<T>) -> (u8, String) {
    match &lookup.outcome {
        Outcome::Found(_) => (exit::OK, String::new()),
        Outcome::NoData => (
            exit::NEGATIVE,
            format!(
                "no {} record: {} exists but has none (NODATA)",
                lookup.record_type, lookup.name
            ),
        ),
        Outcome::NxDomain => (
            exit::NEGATIVE,
            format!("{} does not exist (NXDOMAIN)", lookup.name),
        ),
        Outcome::Failed(failure) => failure_line(&lookup.name, lookup.record_type, failure),
    }
}

fn failure_line(name: &str, record_type: &str, failure: &Failure) -> (u8, String) {
    match failure {
        Failure::InvalidName(why) => (
            exit::USAGE,
            format!("error: not a DNS name ({why}); nothing was sent"),
        ),
        _ => (
            exit::DNS,
            format!(
                "error: the {record_type} query for {name} failed: {failure}; nothing is known about the name, try again later"
            ),
        ),
    }
}

/// Left-aligned columns.
fn table(rows: &[Vec<String>], indent: &str) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = indent.to_string();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn address_cell(addresses: &Addresses) -> String {
    match addresses.outcome() {
        Outcome::Found(ips) => ips
            .iter()
            .map(|ip| ip.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        Outcome::NoData => "no address (NODATA)".to_string(),
        Outcome::NxDomain => "no address: the name does not exist (NXDOMAIN)".to_string(),
        Outcome::Failed(failure) => format!("error: {failure}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spf_sender_must_be_at_the_domain() {
        let spf = |sender: Option<&str>| Query::Spf {
            domain: "Example.test.".into(),
            ip: None,
            helo: None,
            sender: sender.map(str::to_string),
        };
        // (sender, accepted)
        let table: &[(Option<&str>, bool)] = &[
            (None, true),
            (Some("bob@example.test"), true),
            (Some("<bob@EXAMPLE.test>"), true),
            (Some("example.test"), true),
            (Some("bob@other.test"), false),
        ];
        for (sender, ok) in table {
            assert_eq!(spf(*sender).check().is_ok(), *ok, "{sender:?}");
        }
        assert!(Query::Mx("x".into()).check().is_ok());
    }

    #[test]
    fn columns() {
        let rows = vec![
            vec![
                "pref".to_string(),
                "host".to_string(),
                "addresses".to_string(),
            ],
            vec![
                "10".to_string(),
                "mx.example.test".to_string(),
                "192.0.2.1".to_string(),
            ],
        ];
        assert_eq!(
            table(&rows, "  "),
            "  pref  host             addresses\n  10    mx.example.test  192.0.2.1\n"
        );
    }
}
