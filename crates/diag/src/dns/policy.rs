//! The policy reports: SPF (the record term by term, and its evaluation for an address),
//! DMARC, and DNSBL listings.

use std::fmt::Write as _;
use std::net::IpAddr;

use relais_dns::dmarc::{DmarcRecord, DmarcStatus};
use relais_dns::dnsbl::{DnsblCheck, DnsblStatus};
use relais_dns::spf::{RecordStatus, SpfCheck, SpfRecord, SpfResult};
use serde_json::json;

use super::{Report, exit, failure_line, table, to_json};
use crate::ms;

pub(super) fn spf_report(record: SpfRecord, check: Option<SpfCheck>) -> Report {
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
        Some(check) => spf_check_text(&mut text, check),
    };
    let json = json!({"record": to_json(&record), "check": check.as_ref().map(to_json)});
    Report { text, json, code }
}

/// The evaluation of the record for an address, step by step; returns its exit code.
fn spf_check_text(text: &mut String, check: &SpfCheck) -> u8 {
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

pub(super) fn dmarc_report(record: DmarcRecord) -> Report {
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
        json: to_json(&record),
        text,
        code,
    }
}

/// Whether a list answers its RFC 5782 test points as a working list does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum ZoneHealth {
    /// 127.0.0.2 listed, 127.0.0.1 not.
    Working,
    /// 127.0.0.2 not listed (or an error): the list is gone, unreachable or refuses us; its
    /// "not listed" means nothing.
    Dead,
    /// 127.0.0.1 listed: the list names every address (shut down with a wildcard, or
    /// hijacked); its "listed" means nothing.
    ListsEverything,
}

impl ZoneHealth {
    /// From the answers for 127.0.0.2 and 127.0.0.1.
    pub(super) fn of(two: &DnsblCheck, one: &DnsblCheck) -> ZoneHealth {
        match (&two.status, &one.status) {
            (_, DnsblStatus::Listed { .. }) => ZoneHealth::ListsEverything,
            (DnsblStatus::Listed { .. }, _) => ZoneHealth::Working,
            _ => ZoneHealth::Dead,
        }
    }

    fn line(self) -> &'static str {
        match self {
            ZoneHealth::Working => "working (names the test point 127.0.0.2, not 127.0.0.1)",
            ZoneHealth::Dead => {
                "DEAD? the test point 127.0.0.2 is not listed: the list is gone, unreachable or refuses this resolver; its answers mean nothing (RFC 5782 §5)"
            }
            ZoneHealth::ListsEverything => {
                "LISTS EVERYTHING: 127.0.0.1 is listed; a list that was shut down or hijacked answers every address: remove it from your configuration"
            }
        }
    }
}

pub(super) fn dnsbl_report(ip: IpAddr, checks: Vec<DnsblCheck>, health: Vec<ZoneHealth>) -> Report {
    let mut text = format!("DNSBL check of {ip} on {} zone(s):\n", checks.len());
    let mut rows = Vec::new();
    let (mut listed, mut errors) = (0, 0);
    for (check, health) in checks.iter().zip(&health) {
        let (status, detail) = match &check.status {
            DnsblStatus::Listed { .. } if *health == ZoneHealth::ListsEverything => {
                errors += 1;
                (
                    "ERROR",
                    "the list names every address (see below): no verdict".to_string(),
                )
            }
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
    text.push_str("zone health (RFC 5782 test points):\n");
    let rows: Vec<Vec<String>> = checks
        .iter()
        .zip(&health)
        .map(|(c, h)| vec![c.zone.clone(), h.line().to_string()])
        .collect();
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
    let health: Vec<_> = checks
        .iter()
        .zip(&health)
        .map(|(c, h)| json!({ "zone": c.zone, "health": h }))
        .collect();
    let json = json!({
        "ip": ip,
        "listed": listed,
        "errors": errors,
        "zones": to_json(&checks),
        "health": health,
    });
    Report { text, json, code }
}
