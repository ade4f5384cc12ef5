//! `relais dns` and `relais dnsbl`: the `nslookup` half of the seeds, with verdicts.
//!
//! `relais dns mx|a|ptr|txt|spf|dmarc NAME` and `relais dnsbl IP [--zone Z]...`. Every lookup
//! goes to `--resolver IP[:PORT]` (or `$RELAIS_RESOLVER`), else to the nameservers of
//! `/etc/resolv.conf`. The lookups and their meaning live in `relais-dns`; this module reads
//! the arguments, prints (text, or `--json`) and picks the exit code.
//!
//! # Exit codes
//!
//! | code | meaning |
//! |-----:|---------|
//! | 0 | found: records exist; mail hosts with addresses; PTR forward-confirmed; SPF record valid, or `pass` with `--ip`; DMARC record valid; not listed on any zone |
//! | 1 | a negative answer: NXDOMAIN or NODATA; null MX or no reachable mail host; no PTR or PTR not forward-confirmed; no SPF record, an invalid one, or a result other than `pass` (`fail`, `softfail`, `neutral`, `none`, `permerror`); no valid DMARC record; listed on a zone |
//! | 64 | the command line was not understood (any `relais` command) |
//! | 4 | an argument was not understood: a `--resolver` that is no address, a name that cannot be a DNS name |
//! | 5 | the DNS failed: time-out, SERVFAIL, REFUSED, network error, SPF `temperror`, a list answering with one of its error codes (and no zone listing the address), no usable resolver |

use std::fmt::Write as _;
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use relais_dns::dmarc::{DmarcRecord, DmarcStatus};
use relais_dns::dnsbl::{DEFAULT_ZONES, DnsblCheck, DnsblStatus};
use relais_dns::mx::{MailRoute, RouteKind};
use relais_dns::reverse::{Fcrdns, ReverseDns};
use relais_dns::spf::{RecordStatus, SpfCheck, SpfQuery, SpfRecord, SpfResult};
use relais_dns::{
    Addresses, Failure, Lookup, Nameserver, Outcome, RESOLVER_ENV, Resolver, ResolverOptions,
};
use serde_json::{Value, json};

/// A library result as JSON (a macro: the `Serialize` bound would need `serde` here).
macro_rules! to_json {
    ($value:expr) => {
        serde_json::to_value($value).unwrap_or(Value::Null)
    };
}

/// Exit codes of `relais dns` and `relais dnsbl` (the table is in the module documentation
/// and in `--help`).
pub mod exit {
    /// Found, pass, not listed.
    pub const OK: u8 = 0;
    /// A negative answer.
    pub const NEGATIVE: u8 = 1;
    /// An argument was not understood.
    pub const USAGE: u8 = crate::exit::USAGE;
    /// The DNS failed.
    pub const DNS: u8 = 5;
}

const EXIT_TABLE: &str = "\
Exit codes:
  0  found: records exist; mail hosts with addresses; PTR forward-confirmed; SPF record
     valid, or 'pass' with --ip; DMARC record valid; not listed on any zone
  1  a negative answer: NXDOMAIN or NODATA; null MX or no reachable mail host; no PTR or
     PTR not forward-confirmed; no SPF record, an invalid one, or a result other than
     'pass'; no valid DMARC record; listed on a zone
  64 the command line was not understood
  4  an argument was not understood (--resolver, a name that cannot be a DNS name)
  5  the DNS failed: time-out, SERVFAIL, REFUSED, network error, SPF 'temperror', a list
     answering with one of its error codes (and no zone listing the address)

The resolver: --resolver IP[:PORT] (IPv6: [addr]:port), else $RELAIS_RESOLVER, else the
nameservers of /etc/resolv.conf. Names are always queried fully qualified.";

/// Options shared by every DNS command.
#[derive(Args, Debug, Clone)]
pub struct DnsOptions {
    /// Nameserver to ask: IP, IP:PORT or [IPv6]:PORT ("system": /etc/resolv.conf, the default).
    #[arg(long, env = RESOLVER_ENV, value_name = "IP[:PORT]", global = true)]
    pub resolver: Option<String>,
    /// Seconds to wait for each DNS answer (two attempts are made).
    #[arg(
        long = "dns-timeout",
        value_name = "SECONDS",
        default_value_t = 5.0,
        global = true
    )]
    pub dns_timeout: f64,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

impl DnsOptions {
    /// The resolver these options describe, or the exit code and message for why not.
    pub fn resolver(&self) -> Result<Resolver, (u8, String)> {
        let nameserver = match self.resolver.as_deref() {
            None | Some("") => Nameserver::System,
            Some(text) => text
                .parse::<Nameserver>()
                .map_err(|e| (exit::USAGE, format!("--resolver: {e}")))?,
        };
        if !(self.dns_timeout.is_finite() && self.dns_timeout > 0.0) {
            return Err((
                exit::USAGE,
                "--dns-timeout: a positive number of seconds".to_string(),
            ));
        }
        Resolver::new(&ResolverOptions {
            nameserver,
            timeout: Duration::from_secs_f64(self.dns_timeout),
            attempts: 2,
        })
        .map_err(|e| (exit::DNS, e.to_string()))
    }
}

/// `relais dns`.
#[derive(Args, Debug)]
#[command(after_long_help = EXIT_TABLE)]
pub struct DnsArgs {
    #[command(subcommand)]
    query: DnsQuery,
    #[command(flatten)]
    options: DnsOptions,
}

#[derive(Subcommand, Debug)]
enum DnsQuery {
    /// Where mail for a domain goes: MX hosts by preference with their addresses, null MX
    /// (RFC 7505), or the domain's own address when it has no MX (implicit MX).
    Mx {
        /// The mail domain.
        domain: String,
    },
    /// The A and AAAA records of a host.
    #[command(alias = "aaaa")]
    A {
        /// The host name.
        host: String,
    },
    /// The PTR of an address, and whether it is forward-confirmed (the PTR name resolves
    /// back to the address).
    Ptr {
        /// The address (IPv4 or IPv6).
        ip: IpAddr,
    },
    /// The TXT records of a name.
    Txt {
        /// The name.
        name: String,
    },
    /// The SPF record of a domain, term by term; with --ip, evaluated for that address.
    Spf {
        /// The domain (of the MAIL FROM address).
        domain: String,
        /// Evaluate the record for this client address.
        #[arg(long)]
        ip: Option<IpAddr>,
        /// The HELO name the client gave (for %{h} macros; default: the domain).
        #[arg(long)]
        helo: Option<String>,
        /// The MAIL FROM address (for %{s} and %{l} macros; default: postmaster@DOMAIN). Its
        /// domain must be DOMAIN.
        #[arg(long)]
        sender: Option<String>,
    },
    /// The DMARC record that applies to a domain (its own, or a parent's).
    Dmarc {
        /// The domain (of the From: header).
        domain: String,
    },
}

/// `relais dnsbl`.
#[derive(Args, Debug)]
#[command(after_long_help = EXIT_TABLE)]
pub struct DnsblArgs {
    /// The address to check.
    ip: IpAddr,
    /// A DNSBL zone to ask (repeat for several). Default: zen.spamhaus.org, bl.spamcop.net,
    /// psbl.surriel.com.
    #[arg(long = "zone", value_name = "ZONE")]
    zones: Vec<String>,
    #[command(flatten)]
    options: DnsOptions,
}

/// What a command prints and returns.
struct Report {
    text: String,
    json: Value,
    code: u8,
}

/// Runs `relais dns`.
pub fn run(args: DnsArgs) -> ExitCode {
    let DnsArgs { query, options } = args;
    if let DnsQuery::Spf {
        domain,
        sender: Some(sender),
        ..
    } = &query
    {
        let sender_domain = sender.rsplit_once('@').map_or(sender.as_str(), |(_, d)| d);
        if !same_domain(sender_domain.trim_end_matches('>'), domain) {
            eprintln!(
                "relais: --sender {sender}: its domain must be {domain} (SPF checks the MAIL FROM domain)"
            );
            return ExitCode::from(exit::USAGE);
        }
    }
    let kind = match &query {
        DnsQuery::Mx { .. } => "mx",
        DnsQuery::A { .. } => "a",
        DnsQuery::Ptr { .. } => "ptr",
        DnsQuery::Txt { .. } => "txt",
        DnsQuery::Spf { .. } => "spf",
        DnsQuery::Dmarc { .. } => "dmarc",
    };
    execute(kind, &options, |resolver| async move {
        match query {
            DnsQuery::Mx { domain } => mx_report(resolver.mail_route(&domain).await),
            DnsQuery::A { host } => a_report(resolver.addresses(&host).await),
            DnsQuery::Ptr { ip } => ptr_report(resolver.reverse(ip).await),
            DnsQuery::Txt { name } => txt_report(resolver.txt(&name).await),
            DnsQuery::Spf {
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
                spf_report(record, check)
            }
            DnsQuery::Dmarc { domain } => dmarc_report(resolver.dmarc(&domain).await),
        }
    })
}

/// Runs `relais dnsbl`.
pub fn run_dnsbl(args: DnsblArgs) -> ExitCode {
    let DnsblArgs { ip, zones, options } = args;
    let zones: Vec<String> = if zones.is_empty() {
        DEFAULT_ZONES.iter().map(|z| z.to_string()).collect()
    } else {
        zones
    };
    execute("dnsbl", &options, |resolver| async move {
        dnsbl_report(ip, resolver.dnsbl(ip, &zones).await)
    })
}

/// Builds the resolver, runs `work` on a small runtime, prints, returns the exit code.
fn execute<F, Fut>(kind: &str, options: &DnsOptions, work: F) -> ExitCode
where
    F: FnOnce(Resolver) -> Fut,
    Fut: std::future::Future<Output = Report>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("relais: cannot start the runtime: {e}");
            return ExitCode::from(exit::DNS);
        }
    };
    let resolver = match runtime.block_on(async { options.resolver() }) {
        Ok(resolver) => resolver,
        Err((code, message)) => {
            eprintln!("relais: {message}");
            return ExitCode::from(code);
        }
    };
    let servers = servers(&resolver);
    let report = runtime.block_on(work(resolver));
    let output = if options.json {
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
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), output.as_bytes());
    ExitCode::from(report.code)
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

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
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

fn mx_report(route: MailRoute) -> Report {
    let mut text = String::new();
    let domain = &route.domain;
    let reachable = route.hosts.iter().any(|h| !h.addresses.ips().is_empty());
    let host_failure = route
        .hosts
        .iter()
        .find_map(|h| match h.addresses.outcome() {
            Outcome::Failed(f) => Some(f),
            _ => None,
        });
    let code = match &route.kind {
        RouteKind::Mx | RouteKind::Implicit => {
            match &route.kind {
                RouteKind::Mx => {
                    let _ = writeln!(text, "MX of {domain}:");
                }
                _ => {
                    let _ = writeln!(
                        text,
                        "MX of {domain}: no MX records; mail goes to the domain's own address (implicit MX, RFC 5321 5.1)"
                    );
                }
            }
            let mut rows = vec![vec![
                "pref".to_string(),
                "host".to_string(),
                "addresses".to_string(),
            ]];
            for host in &route.hosts {
                rows.push(vec![
                    host.preference.to_string(),
                    host.name.clone(),
                    address_cell(&host.addresses),
                ]);
            }
            text.push_str(&table(&rows, "  "));
            if route.null_mx_with_others {
                text.push_str("warning: a null MX (\".\") is listed next to real MX hosts; RFC 7505 forbids it; it is ignored\n");
            }
            if reachable {
                exit::OK
            } else if host_failure.is_some() {
                text.push_str("error: the addresses of the mail hosts could not be looked up\n");
                exit::DNS
            } else {
                text.push_str(
                    "no mail host has an address: mail for this domain cannot be delivered\n",
                );
                exit::NEGATIVE
            }
        }
        RouteKind::NullMx => {
            let _ = writeln!(
                text,
                "MX of {domain}: null MX (RFC 7505): the domain accepts no mail"
            );
            exit::NEGATIVE
        }
        RouteKind::NoSuchDomain => {
            let _ = writeln!(text, "MX of {domain}: {domain} does not exist (NXDOMAIN)");
            exit::NEGATIVE
        }
        RouteKind::NoMailHost => {
            let _ = writeln!(
                text,
                "MX of {domain}: no MX and no A/AAAA record: no host receives mail for {domain}"
            );
            exit::NEGATIVE
        }
        RouteKind::Failed(failure) => {
            let (code, line) = failure_line(domain, "MX", failure);
            let _ = writeln!(text, "MX of {domain}: {line}");
            code
        }
    };
    let _ = writeln!(
        text,
        "time: MX query {}, with addresses {}",
        ms(route.mx.elapsed),
        ms(route.elapsed)
    );
    Report {
        json: to_json!(&route),
        text,
        code,
    }
}

fn a_report(addresses: Addresses) -> Report {
    let mut text = format!("A/AAAA of {}:\n", addresses.name);
    let cell = |status: String, records: Vec<String>| {
        if records.is_empty() {
            status
        } else {
            records.join(", ")
        }
    };
    let status = |outcome: &str| match outcome {
        "nodata" => "none (NODATA)".to_string(),
        "nxdomain" => "the name does not exist (NXDOMAIN)".to_string(),
        _ => String::new(),
    };
    let a_cell = match addresses.a.failure() {
        Some(f) => format!("error: {f}"),
        None => cell(
            status(addresses.a.outcome.status()),
            addresses
                .a
                .records()
                .iter()
                .map(|ip| ip.to_string())
                .collect(),
        ),
    };
    let aaaa_cell = match addresses.aaaa.failure() {
        Some(f) => format!("error: {f}"),
        None => cell(
            status(addresses.aaaa.outcome.status()),
            addresses
                .aaaa
                .records()
                .iter()
                .map(|ip| ip.to_string())
                .collect(),
        ),
    };
    let rows = vec![
        vec!["A".to_string(), a_cell, ms(addresses.a.elapsed)],
        vec!["AAAA".to_string(), aaaa_cell, ms(addresses.aaaa.elapsed)],
    ];
    text.push_str(&table(&rows, "  "));
    let code = match addresses.outcome() {
        Outcome::Found(_) => exit::OK,
        Outcome::NoData | Outcome::NxDomain => exit::NEGATIVE,
        Outcome::Failed(Failure::InvalidName(_)) => exit::USAGE,
        Outcome::Failed(_) => exit::DNS,
    };
    Report {
        json: to_json!(&addresses),
        text,
        code,
    }
}

fn ptr_report(reverse: ReverseDns) -> Report {
    let ip = reverse.ip;
    let mut text = format!("PTR of {ip} ({}):\n", reverse.ptr.name);
    let code = match &reverse.ptr.outcome {
        Outcome::Found(_) => {
            let rows: Vec<Vec<String>> = reverse
                .forward
                .iter()
                .map(|check| {
                    let verdict = if check.confirms {
                        "forward-confirmed".to_string()
                    } else {
                        format!("does not resolve back to {ip}")
                    };
                    vec![
                        check.name.clone(),
                        format!("-> {}", address_cell(&check.addresses)),
                        verdict,
                    ]
                })
                .collect();
            text.push_str(&table(&rows, "  "));
            match reverse.verdict() {
                Fcrdns::Confirmed => {
                    let _ = writeln!(
                        text,
                        "FCrDNS: confirmed ({})",
                        reverse.confirmed_name().unwrap_or_default()
                    );
                    exit::OK
                }
                Fcrdns::Failed => {
                    text.push_str("FCrDNS: unknown: a forward lookup failed\n");
                    exit::DNS
                }
                _ => {
                    let _ = writeln!(
                        text,
                        "FCrDNS: NOT confirmed: no PTR name resolves back to {ip}; receivers may refuse or score mail from this address"
                    );
                    exit::NEGATIVE
                }
            }
        }
        _ => {
            let (code, line) = negative(&reverse.ptr);
            let _ = writeln!(text, "  {line}");
            if code == exit::NEGATIVE {
                let _ = writeln!(
                    text,
                    "FCrDNS: no PTR record; many receivers refuse mail from addresses without reverse DNS"
                );
            }
            code
        }
    };
    let _ = writeln!(text, "time: {}", ms(reverse.elapsed));
    Report {
        json: to_json!(&reverse),
        text,
        code,
    }
}

fn txt_report(lookup: Lookup<String>) -> Report {
    let mut text = format!("TXT of {}:\n", lookup.name);
    let (code, line) = negative(&lookup);
    if code == exit::OK {
        for record in lookup.records() {
            let _ = writeln!(text, "  {record:?}");
        }
    } else {
        let _ = writeln!(text, "  {line}");
    }
    let _ = writeln!(text, "time: {}", ms(lookup.elapsed));
    Report {
        json: to_json!(&lookup),
        text,
        code,
    }
}

fn spf_report(record: SpfRecord, check: Option<SpfCheck>) -> Report {
    let domain = &record.domain;
    let mut text = format!("SPF of {domain}:\n");
    let record_code = match &record.status {
        RecordStatus::Found | RecordStatus::Invalid(_) => {
            let _ = writeln!(text, "  {}", record.text().unwrap_or_default());
            let rows: Vec<Vec<String>> = record
                .terms
                .iter()
                .map(|t| vec![t.text.clone(), t.meaning.clone()])
                .collect();
            text.push_str(&table(&rows, "    "));
            let _ = writeln!(
                text,
                "  DNS-querying terms: {} (at most 10 over the whole evaluation, includes counted)",
                record.dns_terms()
            );
            if let RecordStatus::Invalid(why) = &record.status {
                let _ = writeln!(text, "  INVALID: {why} (result: permerror)");
                exit::NEGATIVE
            } else {
                exit::OK
            }
        }
        RecordStatus::Multiple => {
            let _ = writeln!(
                text,
                "  {} SPF records: RFC 7208 4.5 allows one; the result is permerror",
                record.candidates.len()
            );
            for candidate in &record.candidates {
                let _ = writeln!(text, "    {candidate}");
            }
            exit::NEGATIVE
        }
        RecordStatus::NotFound => {
            text.push_str("  no SPF record (no TXT record starting with v=spf1): result none\n");
            exit::NEGATIVE
        }
        RecordStatus::NoSuchDomain => {
            let _ = writeln!(text, "  {domain} does not exist (NXDOMAIN): result none");
            exit::NEGATIVE
        }
        RecordStatus::Failed(failure) => {
            let (code, line) = failure_line(domain, "TXT", failure);
            let _ = writeln!(text, "  {line}");
            code
        }
    };
    let code = match &check {
        None => record_code,
        Some(check) => {
            let q = &check.query;
            let _ = writeln!(
                text,
                "\ncheck_host({}, {}), sender {}, HELO {}:",
                q.ip,
                q.domain(),
                q.sender,
                q.helo
            );
            for step in &check.trace {
                let indent = "  ".repeat(step.depth + 1);
                if step.outcome == "record" {
                    let _ = writeln!(text, "{indent}{}: {}", step.domain, step.term);
                } else if step.term == "(default)" {
                    let _ = writeln!(text, "{indent}  {}", step.outcome);
                } else if step.term.starts_with('(') {
                    let _ = writeln!(text, "{indent}{}: {}", step.domain, step.outcome);
                } else {
                    let _ = writeln!(text, "{indent}  {:<28} {}", step.term, step.outcome);
                }
            }
            let _ = write!(text, "result: {}", check.result.as_str());
            match &check.matched {
                Some(m) => {
                    let _ = write!(text, ", matched {} in {}", m.term, m.domain);
                    if !m.via.is_empty() {
                        let _ = write!(text, " (via {})", m.via.join(", then "));
                    }
                }
                None if check.result == SpfResult::Neutral => {
                    text.push_str(", no mechanism matched");
                }
                None => {}
            }
            text.push('\n');
            let _ = writeln!(text, "meaning: {}", meaning(check.result));
            if let Some(explanation) = &check.explanation {
                let _ = writeln!(text, "explanation from the domain: {explanation}");
            }
            for note in &check.notes {
                let _ = writeln!(text, "note: {note}");
            }
            let _ = writeln!(
                text,
                "DNS lookups: {} of 10, void: {} of 2; time: {}",
                check.dns_lookups,
                check.void_lookups,
                ms(check.elapsed)
            );
            match check.result {
                SpfResult::Pass => exit::OK,
                SpfResult::TempError => exit::DNS,
                _ => exit::NEGATIVE,
            }
        }
    };
    let json = json!({"record": to_json!(&record), "check": check.as_ref().map(|c| to_json!(c))});
    Report { text, json, code }
}

fn meaning(result: SpfResult) -> &'static str {
    match result {
        SpfResult::Pass => "the address is authorized to send for the domain",
        SpfResult::Fail => {
            "the domain says this address must not send its mail: receivers reject it (5.7.23)"
        }
        SpfResult::SoftFail => {
            "probably not authorized: receivers usually accept the mail but mark it as suspect"
        }
        SpfResult::Neutral => "the domain says nothing about this address: treated like none",
        SpfResult::None => "no SPF policy: nothing is known",
        SpfResult::PermError => {
            "the SPF record is broken: receivers may reject (5.5.2) or ignore SPF; fix the record"
        }
        SpfResult::TempError => "a DNS failure: receivers defer the mail (4.4.3); try again later",
    }
}

fn dmarc_report(record: DmarcRecord) -> Report {
    let domain = &record.domain;
    let mut text = format!("DMARC of {domain}:\n");
    let code = match &record.status {
        DmarcStatus::Found | DmarcStatus::Invalid(_) => {
            let at = record.found_at.as_deref().unwrap_or(domain);
            let _ = writeln!(
                text,
                "  _dmarc.{at}: {}",
                record.record.as_deref().unwrap_or_default()
            );
            let rows: Vec<Vec<String>> = record
                .tags
                .iter()
                .map(|t| vec![t.name.clone(), t.value.clone(), t.meaning.clone()])
                .collect();
            text.push_str(&table(&rows, "    "));
            if let DmarcStatus::Invalid(why) = &record.status {
                let _ = writeln!(text, "  INVALID: {why}");
                exit::NEGATIVE
            } else {
                exit::OK
            }
        }
        DmarcStatus::NotFound => {
            let tried: Vec<&str> = record.lookups.iter().map(|l| l.name.as_str()).collect();
            let _ = writeln!(
                text,
                "  no DMARC record (tried {}): receivers apply no DMARC policy",
                tried.join(", ")
            );
            exit::NEGATIVE
        }
        DmarcStatus::Multiple => {
            let at = record.found_at.as_deref().unwrap_or(domain);
            let _ = writeln!(
                text,
                "  several DMARC records at _dmarc.{at}: receivers ignore them all"
            );
            exit::NEGATIVE
        }
        DmarcStatus::Failed(failure) => {
            let at = record.found_at.as_deref().unwrap_or(domain);
            let (code, line) = failure_line(&format!("_dmarc.{at}"), "TXT", failure);
            let _ = writeln!(text, "  {line}");
            code
        }
    };
    for warning in &record.warnings {
        let _ = writeln!(text, "warning: {warning}");
    }
    let _ = writeln!(text, "time: {}", ms(record.elapsed));
    Report {
        json: to_json!(&record),
        text,
        code,
    }
}

fn dnsbl_report(ip: IpAddr, checks: Vec<DnsblCheck>) -> Report {
    let mut text = format!("DNSBL check of {ip} on {} zone(s):\n", checks.len());
    let mut rows = Vec::new();
    let (mut listed, mut errors) = (0, 0);
    for check in &checks {
        let (status, detail) = match &check.status {
            DnsblStatus::Listed { codes, reason } => {
                listed += 1;
                let codes: Vec<String> = codes
                    .iter()
                    .map(|c| match c.meaning {
                        Some(m) => format!("{} ({m})", c.code),
                        None => c.code.to_string(),
                    })
                    .collect();
                let mut detail = codes.join(", ");
                if let Some(reason) = reason {
                    let _ = write!(detail, ": {reason}");
                }
                ("LISTED", detail)
            }
            DnsblStatus::NotListed => ("not listed", String::new()),
            DnsblStatus::Error { codes, reason } => {
                errors += 1;
                let codes: Vec<String> = codes.iter().map(|c| c.code.to_string()).collect();
                let detail = if codes.is_empty() {
                    reason.clone()
                } else {
                    format!("answered {}: {reason}", codes.join(", "))
                };
                ("ERROR", detail)
            }
        };
        rows.push(vec![
            check.zone.clone(),
            status.to_string(),
            ms(check.elapsed),
            detail,
        ]);
    }
    text.push_str(&table(&rows, "  "));
    let _ = writeln!(
        text,
        "summary: listed on {listed} of {} zone(s){}",
        checks.len(),
        match errors {
            0 => String::new(),
            n => format!("; {n} zone(s) gave no verdict (errors are never counted as listings)"),
        }
    );
    let code = if listed > 0 {
        exit::NEGATIVE
    } else if errors > 0 {
        exit::DNS
    } else {
        exit::OK
    };
    let json = json!({
        "ip": ip,
        "listed": listed,
        "errors": errors,
        "zones": to_json!(&checks),
    });
    Report { text, json, code }
}
