//! The record reports: MX (the mail route), A/AAAA, PTR (with forward confirmation) and TXT.

use std::fmt::Write as _;

use relais_dns::mx::{MailRoute, RouteKind};
use relais_dns::reverse::{Fcrdns, ReverseDns};
use relais_dns::{Addresses, Failure, Lookup, Outcome};

use super::{Report, address_cell, exit, failure_line, negative, table, to_json};
use crate::ms;

pub(super) fn mx_report(route: MailRoute) -> Report {
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
        json: to_json(&route),
        text,
        code,
    }
}

pub(super) fn a_report(addresses: Addresses) -> Report {
    let mut text = format!("A/AAAA of {}:\n", addresses.name);
    let a_cell = record_cell(&addresses.a);
    let aaaa_cell = record_cell(&addresses.aaaa);
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
        json: to_json(&addresses),
        text,
        code,
    }
}

/// One record type's answer in a cell: the records, or why there are none.
fn record_cell<T: std::fmt::Display>(lookup: &Lookup<T>) -> String {
    if let Some(f) = lookup.failure() {
        return format!("error: {f}");
    }
    let records: Vec<String> = lookup.records().iter().map(T::to_string).collect();
    if !records.is_empty() {
        return records.join(", ");
    }
    match lookup.outcome.status() {
        "nodata" => "none (NODATA)".to_string(),
        "nxdomain" => "the name does not exist (NXDOMAIN)".to_string(),
        _ => String::new(),
    }
}

pub(super) fn ptr_report(reverse: ReverseDns) -> Report {
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
        json: to_json(&reverse),
        text,
        code,
    }
}

pub(super) fn txt_report(lookup: Lookup<String>) -> Report {
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
        json: to_json(&lookup),
        text,
        code,
    }
}
