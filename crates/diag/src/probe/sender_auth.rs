//! The domain's sender authentication records, looked up while the MX hosts are probed (DNS
//! only, domain targets only): SPF (and what it says of each MX address), DMARC, and the DKIM
//! key of each selector asked for. One verdict per record; the rules are pure functions of
//! what the DNS said.

use std::net::IpAddr;
use std::time::Instant;

use relais_dns::dmarc::{DmarcRecord, DmarcStatus};
use relais_dns::spf::{MAX_DNS_MECHANISMS, RecordStatus, SpfQuery, SpfResult, SpfTerm};
use relais_dns::{Failure, Lookup, Outcome, Resolver};
use serde_json::{Value, json};

use super::exit;
use super::report::{SenderAuth, Verdict};
use relais_dns::dkim;

/// Looks up the records of `domain` side by side, evaluates its SPF record for each MX
/// address (`mx`: host name and address), and judges each record.
pub(super) async fn check(
    resolver: &Resolver,
    domain: &str,
    selectors: &[String],
    mx: &[(String, IpAddr)],
) -> SenderAuth {
    let started = Instant::now();
    let spf = async {
        let record = resolver.spf_record(domain).await;
        let mut checks = Vec::new();
        if record.status == RecordStatus::Found {
            let sender = format!("postmaster@{domain}");
            for (host, ip) in mx {
                let query = SpfQuery::mail_from(*ip, &sender, "");
                checks.push((host, *ip, resolver.spf_check(&query).await));
            }
        }
        (record, checks)
    };
    let keys = async {
        let mut keys = Vec::new();
        for selector in selectors {
            let name = format!("{selector}._domainkey.{domain}").to_ascii_lowercase();
            keys.push((selector, resolver.txt(&name).await));
        }
        keys
    };
    let ((spf, checks), dmarc, keys) = tokio::join!(spf, resolver.dmarc(domain), keys);

    let mut lines = vec![format!(
        "  {:<6} {}",
        "SPF",
        spf.text().map_or_else(
            || format!("{}: {}", spf.domain, spf.status.as_str()),
            |text| format!("{}: {text}", spf.domain),
        )
    )];
    let mut mx_json = Vec::new();
    for (host, ip, check) in &checks {
        lines.push(format!(
            "  {:<6} {}",
            "",
            mx_line(host, *ip, check.result, domain)
        ));
        mx_json.push(json!({
            "host": host,
            "address": ip,
            "result": check.result,
            "matched": check.matched.as_ref().map(|m| &m.term),
        }));
    }
    let at = dmarc.found_at.as_deref().unwrap_or(&dmarc.domain);
    lines.push(format!(
        "  {:<6} _dmarc.{at}: {}",
        "DMARC",
        dmarc.record.as_deref().unwrap_or(dmarc.status.as_str())
    ));
    let mut verdicts = vec![
        spf_verdict(&spf.domain, &spf.status, &spf.terms, spf.candidates.len()),
        dmarc_verdict(&dmarc),
    ];
    let mut dkim_json = Vec::new();
    for (selector, lookup) in &keys {
        let shown = match dkim::key_records(lookup).as_slice() {
            [one] => shorten(one, 60),
            _ => lookup.outcome.status().to_string(),
        };
        lines.push(format!("  {:<6} {}: {shown}", "DKIM", lookup.name));
        verdicts.push(dkim_verdict(lookup));
        dkim_json.push(json!({ "selector": selector, "lookup": lookup }));
    }
    SenderAuth {
        domain: domain.to_string(),
        elapsed: started.elapsed(),
        lines,
        records: json!({
            "spf": spf,
            "mx_spf": mx_json,
            "dmarc": dmarc,
            "dkim": dkim_json,
        }),
        verdicts,
    }
}

/// At most `max` characters of `text`, and `…` when there were more.
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// What the domain's SPF record says of an MX address: informational, as MX hosts often only
/// receive.
pub(super) fn mx_line(host: &str, ip: IpAddr, result: SpfResult, domain: &str) -> String {
    let meaning = match result {
        SpfResult::Pass => format!("may send mail for {domain}"),
        SpfResult::TempError => "not known (DNS failure)".to_string(),
        _ => format!("may not send mail for {domain} (fine if it only receives)"),
    };
    format!("MX {host} [{ip}]: {}, {meaning}", result.as_str())
}

/// A verdict named `check` that is `ok` with `fine` unless some `warnings` (reason, advice)
/// were found: then a warning with all of them.
fn ok_unless(check: &'static str, fine: String, warnings: &[(String, &str)]) -> Verdict {
    if warnings.is_empty() {
        return Verdict::ok(check, fine);
    }
    let reasons: Vec<&str> = warnings.iter().map(|(r, _)| r.as_str()).collect();
    let advice: Vec<&str> = warnings.iter().map(|(_, a)| *a).collect();
    Verdict::warn(check, reasons.join("; "), &advice.join("; "))
}

/// The verdict on a domain's SPF record: its status, its terms (those of the first record),
/// and how many `v=spf1` records there were.
pub(super) fn spf_verdict(
    domain: &str,
    status: &RecordStatus,
    terms: &[SpfTerm],
    records: usize,
) -> Verdict {
    let (reason, advice) = match status {
        RecordStatus::Found => return valid_spf_verdict(terms),
        RecordStatus::NotFound => (
            format!(
                "{domain} has no SPF record: receivers cannot tell its mail from forgeries (SPF none)"
            ),
            "publish one TXT record listing the hosts that send for the domain, e.g. \"v=spf1 mx -all\"",
        ),
        RecordStatus::NoSuchDomain => (
            format!("{domain} does not exist (NXDOMAIN): no SPF record"),
            "check the spelling; check that the domain is registered and delegated",
        ),
        RecordStatus::Multiple => (
            format!(
                "{domain} has {records} SPF records: RFC 7208 allows one, receivers get permerror"
            ),
            "merge them into one TXT record starting with v=spf1",
        ),
        RecordStatus::Invalid(why) => (
            format!("the SPF record of {domain} is invalid: {why} (permerror)"),
            "fix the record; `relais dns spf DOMAIN` explains it term by term",
        ),
        RecordStatus::Failed(failure) => return lookup_failed("spf", domain, failure),
    };
    Verdict::fail(exit::SENDER_AUTH, "spf", reason, advice)
}

/// A valid record: how it ends (the first `all`, or a `redirect=`), and its DNS-querying terms.
fn valid_spf_verdict(terms: &[SpfTerm]) -> Verdict {
    let all = terms
        .iter()
        .find(|t| t.kind == "mechanism" && t.name == "all");
    let redirect = terms.iter().find(|t| t.name == "redirect");
    let neutral = "the addresses it does not list are neutral, as without SPF";
    let ending = match (all, redirect) {
        (Some(all), _) => match all.qualifier {
            Some("fail") => Ok(
                "one valid SPF record, ending in -all: the addresses it does not list fail"
                    .to_string(),
            ),
            Some("softfail") => Ok(
                "one valid SPF record, ending in ~all: the addresses it does not list soft-fail"
                    .to_string(),
            ),
            Some("pass") => Err((
                format!(
                    "the SPF record ends in {}: every address may send for the domain",
                    all.text
                ),
                "list the hosts that send and end the record with -all or ~all",
            )),
            _ => Err((
                format!("the SPF record ends in {}: {neutral}", all.text),
                "end the record with -all or ~all once it lists every host that sends",
            )),
        },
        (None, Some(redirect)) => Ok(format!(
            "one valid SPF record; {} decides for the addresses it does not list",
            redirect.text
        )),
        (None, None) => Err((
            format!("the SPF record has neither all nor redirect=: {neutral}"),
            "end the record with -all or ~all",
        )),
    };
    let (fine, mut warnings) = match ending {
        Ok(fine) => (fine, Vec::new()),
        Err(warning) => (String::new(), vec![warning]),
    };
    let dns_terms = terms.iter().filter(|t| t.queries_dns()).count();
    if dns_terms > MAX_DNS_MECHANISMS as usize {
        warnings.push((
            format!(
                "{dns_terms} terms query the DNS, more than the {MAX_DNS_MECHANISMS} an evaluation may make: receivers get permerror"
            ),
            "replace includes and a/mx terms by ip4:/ip6: ranges, or remove unused ones",
        ));
    }
    ok_unless("spf", fine, &warnings)
}

/// The verdict on the DMARC record that applies to a domain.
pub(super) fn dmarc_verdict(record: &DmarcRecord) -> Verdict {
    let domain = &record.domain;
    let at = record.found_at.as_deref().unwrap_or(domain);
    let (reason, advice) = match (&record.status, &record.policy) {
        (DmarcStatus::Found, Some(policy)) => {
            let inherited = if at == domain {
                String::new()
            } else {
                format!(" (the record of {at} applies)")
            };
            let mut warnings = Vec::new();
            match policy.p {
                "reject" | "quarantine" => {}
                "none" => warnings.push((
                    format!(
                        "p=none{inherited}: monitoring only, mail that fails DMARC is delivered as usual"
                    ),
                    "once the reports show the domain's own mail passing, move to p=quarantine, then p=reject",
                )),
                other => warnings.push((
                    format!("p={other}{inherited}: receivers treat the record as p=none"),
                    "give the record a p= tag: quarantine or reject",
                )),
            }
            if policy.rua.is_empty() {
                warnings.push((
                    "no rua=: the domain receives no aggregate reports".to_string(),
                    "add rua=mailto:ADDRESS to learn who sends mail in the domain's name",
                ));
            }
            let fine = format!(
                "p={}{inherited}: mail that fails DMARC is {}; reports to {}",
                policy.p,
                if policy.p == "reject" {
                    "refused"
                } else {
                    "quarantined"
                },
                policy.rua.join(", ")
            );
            return ok_unless("dmarc", fine, &warnings);
        }
        (DmarcStatus::NotFound, _) => {
            let tried: Vec<String> = record.lookups.iter().map(|l| l.name.clone()).collect();
            (
                format!(
                    "{domain} has no DMARC record (tried {}): receivers apply no DMARC policy",
                    tried.join(", ")
                ),
                "publish a TXT record at _dmarc.DOMAIN, e.g. \"v=DMARC1; p=none; rua=mailto:ADDRESS\", then tighten p=",
            )
        }
        (DmarcStatus::Multiple, _) => (
            format!("several DMARC records at _dmarc.{at}: receivers ignore them all"),
            "keep one record",
        ),
        (DmarcStatus::Invalid(_) | DmarcStatus::Found, _) => {
            let why = match &record.status {
                DmarcStatus::Invalid(why) => why.as_str(),
                _ => "it does not parse",
            };
            (
                format!("the DMARC record at _dmarc.{at} is invalid: {why}"),
                "fix the record; `relais dns dmarc DOMAIN` explains it tag by tag",
            )
        }
        (DmarcStatus::Failed(failure), _) => {
            return lookup_failed("dmarc", &format!("_dmarc.{at}"), failure);
        }
    };
    Verdict::fail(exit::SENDER_AUTH, "dmarc", reason, advice)
}

/// The verdict on the TXT lookup of a DKIM key (`SELECTOR._domainkey.DOMAIN`).
pub(super) fn dkim_verdict(lookup: &Lookup<String>) -> Verdict {
    let name = &lookup.name;
    let records = dkim::key_records(lookup);
    let (reason, advice) = match (&lookup.outcome, records.as_slice()) {
        (Outcome::Found(_), [record]) => {
            let tags = dkim::tags(record);
            match dkim::problem(record) {
                None => {
                    let kind = tags
                        .iter()
                        .find(|(t, _)| t == "k")
                        .map_or("rsa", |(_, k)| k.as_str());
                    return Verdict::ok(
                        "dkim",
                        format!(
                            "a usable {kind} key at {name}: signatures with this selector can be verified"
                        ),
                    );
                }
                Some(why) => (
                    format!(
                        "the DKIM key at {name} is unusable: {why}; signatures with this selector fail"
                    ),
                    "publish the public key of the selector (`relais dkim keygen` prints the record), or sign with another selector",
                ),
            }
        }
        (Outcome::Found(_), []) => (
            format!("TXT records at {name}, but none is a DKIM key (no p= tag)"),
            "publish the public key of the selector (`relais dkim keygen` prints the record)",
        ),
        (Outcome::Found(_), _) => (
            format!("several DKIM key records at {name}: verifiers may pick any"),
            "keep one record",
        ),
        (Outcome::NoData | Outcome::NxDomain, _) => (
            format!("no DKIM key at {name}: signatures with this selector fail"),
            "check the selector's spelling; publish its public key (`relais dkim keygen` prints the record)",
        ),
        (Outcome::Failed(failure), _) => return lookup_failed("dkim", name, failure),
    };
    Verdict::fail(exit::SENDER_AUTH, "dkim", reason, advice)
}

/// The verdict on a TXT lookup (of the `check` record at `name`) that failed: nothing is
/// known about the record.
fn lookup_failed(check: &'static str, name: &str, failure: &Failure) -> Verdict {
    Verdict::fail(
        exit::DNS,
        check,
        format!(
            "the {} lookup (TXT {name}) failed: {failure}; nothing is known of the record",
            check.to_ascii_uppercase()
        ),
        "check the domain's nameservers (SERVFAIL, lame delegation) and the resolver",
    )
}

impl SenderAuth {
    /// The JSON of `--json`: the domain, the records, the verdicts.
    pub(super) fn to_json(&self) -> Value {
        let mut value = self.records.clone();
        value["domain"] = json!(self.domain);
        value["elapsed_ms"] = json!(relais_proto::date::millis(self.elapsed));
        value["verdicts"] = json!(self.verdicts);
        value
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use relais_dns::dmarc::DmarcPolicy;
    use relais_dns::spf::terms;

    use super::super::fixtures::lookup;
    use super::super::report::Level;
    use super::*;

    /// The level and exit code of a verdict.
    type Expect = (Level, u8);
    const OK: Expect = (Level::Ok, exit::OK);
    const WARN: Expect = (Level::Warn, exit::OK);
    const FAIL: Expect = (Level::Fail, exit::SENDER_AUTH);
    const DNS: Expect = (Level::Fail, exit::DNS);

    #[test]
    fn spf_verdicts() {
        let found = &RecordStatus::Found;
        let many = format!("v=spf1 {}-all", "include:a.test ".repeat(11));
        let many_and_neutral = "v=spf1 a mx ptr exists:x.test include:a include:b include:c \
            include:d include:e include:f include:g ?all";
        let invalid = &RecordStatus::Invalid("unknown mechanism \"frob\"".into());
        let failed = &RecordStatus::Failed(Failure::Timeout);
        // (status, record, records, (level, exit), words in the reason)
        type Row<'a> = (&'a RecordStatus, &'a str, usize, Expect, &'a str);
        let table: &[Row] = &[
            (found, "v=spf1 mx -all", 1, OK, "ending in -all"),
            (found, "v=spf1 mx ~all", 1, OK, "ending in ~all"),
            (found, "v=spf1 mx ?all", 1, WARN, "ends in ?all"),
            (found, "v=spf1 mx +all", 1, WARN, "every address"),
            (found, "v=spf1 all", 1, WARN, "every address"),
            (found, "v=spf1 mx", 1, WARN, "neither all nor"),
            (
                found,
                "v=spf1 redirect=_spf.o.test",
                1,
                OK,
                "redirect=_spf.o.test decides",
            ),
            (found, &many, 1, WARN, "11 terms query the DNS"),
            (
                found,
                many_and_neutral,
                1,
                WARN,
                "as without SPF; 11 terms query the DNS",
            ),
            (&RecordStatus::NotFound, "", 0, FAIL, "no SPF record"),
            (&RecordStatus::NoSuchDomain, "", 0, FAIL, "NXDOMAIN"),
            (
                &RecordStatus::Multiple,
                "v=spf1 -all",
                2,
                FAIL,
                "has 2 SPF records",
            ),
            (
                invalid,
                "v=spf1 frob -all",
                1,
                FAIL,
                "invalid: unknown mechanism",
            ),
            (failed, "", 0, DNS, "lookup (TXT example.test) failed"),
        ];
        for (status, record, records, (level, code), words) in table {
            let v = spf_verdict("example.test", status, &terms(record), *records);
            assert_eq!(
                (v.level, v.exit, v.check),
                (*level, *code, "spf"),
                "{record}"
            );
            assert!(v.reason.contains(words), "{record}: {}", v.reason);
            assert_eq!(v.advice.is_empty(), *level == Level::Ok, "{record}");
        }
    }

    /// A DMARC answer for example.test: a record found at `at` (parsed as far as the rule
    /// looks: `p` and `rua`), or `status` without one.
    fn dmarc(status: DmarcStatus, at: &str, p: &'static str, rua: &[&str]) -> DmarcRecord {
        let found = status == DmarcStatus::Found;
        DmarcRecord {
            domain: "example.test".into(),
            lookups: vec![lookup("_dmarc.example.test", "TXT", Outcome::NoData)],
            found_at: (!at.is_empty()).then(|| at.to_string()),
            record: found.then(|| format!("v=DMARC1; p={p}")),
            policy: found.then(|| DmarcPolicy {
                p,
                sp: p,
                np: p,
                adkim: "relaxed",
                aspf: "relaxed",
                rua: rua.iter().map(|r| r.to_string()).collect(),
                ruf: Vec::new(),
                testing: false,
            }),
            status,
            tags: Vec::new(),
            warnings: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn dmarc_verdicts() {
        let found = |at, p, rua: &[&str]| dmarc(DmarcStatus::Found, at, p, rua);
        let other = |status| dmarc(status, "example.test", "", &[]);
        let (here, rua) = ("example.test", &["mailto:d@example.test"][..]);
        // (answer, (level, exit), words in the reason)
        let table: Vec<(DmarcRecord, Expect, &str)> = vec![
            (
                found(here, "reject", rua),
                OK,
                "is refused; reports to mailto:d@",
            ),
            (found(here, "quarantine", rua), OK, "is quarantined"),
            (
                found("parent.test", "reject", rua),
                OK,
                "(the record of parent.test applies)",
            ),
            (found(here, "none", rua), WARN, "monitoring only"),
            (found(here, "reject", &[]), WARN, "no rua="),
            (
                found(here, "none", &[]),
                WARN,
                "delivered as usual; no rua=",
            ),
            (found(here, "unspecified", rua), WARN, "as p=none"),
            (
                dmarc(DmarcStatus::NotFound, "", "", &[]),
                FAIL,
                "no DMARC record (tried _dmarc.e",
            ),
            (other(DmarcStatus::Multiple), FAIL, "several DMARC records"),
            (
                other(DmarcStatus::Invalid("bad p".into())),
                FAIL,
                "invalid: bad p",
            ),
            (other(DmarcStatus::Failed(Failure::ServFail)), DNS, "failed"),
        ];
        for (record, (level, code), words) in table {
            let v = dmarc_verdict(&record);
            let what = format!("{:?} {:?}", record.status, record.policy);
            assert_eq!((v.level, v.exit, v.check), (level, code, "dmarc"), "{what}");
            assert!(v.reason.contains(words), "{what}: {}", v.reason);
        }
    }

    /// Public keys made with openssl (RSA 1024 as SubjectPublicKeyInfo, Ed25519 raw).
    const RSA: &str = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDaXGhDI7uGXB2TU2uCWhfuJpIraCYkc1/G1RyKDcrIoPhdXvKtD/Kd+gghVHxXSRUg+5BrgDDD6+SznScGkq78a3nktgne/fGE9mx9gl9seCIAxFscvSHL+cAn6Slo5pzIiPS3tgCrxaeUY9kETmrp4USDHiaejlCK/vYraVFXnQIDAQAB";
    const ED25519: &str = "rodNP/PPDc7oo3da3/3NxO2kdTiee1mikrf+uWfKdi0=";

    #[test]
    fn dkim_verdicts() {
        let txt =
            |records: &[&str]| Outcome::Found(records.iter().map(|r| r.to_string()).collect());
        // (answer, (level, exit), words in the reason)
        let table: &[(Outcome<String>, Expect, &str)] = &[
            (
                txt(&[&format!("v=DKIM1; k=rsa; p={RSA}")]),
                OK,
                "a usable rsa key",
            ),
            (txt(&[&format!("p={RSA}")]), OK, "a usable rsa key"),
            (
                txt(&[&format!("v=DKIM1; k=ed25519; p={ED25519}")]),
                OK,
                "a usable ed25519 key",
            ),
            (
                txt(&["v=DKIM1; k=rsa; p=AAAA"]),
                FAIL,
                "not an RSA public key",
            ),
            (txt(&["v=DKIM1; k=rsa; p="]), FAIL, "revoked"),
            (txt(&["v=DKIM1; k=dsa; p=AAAA"]), FAIL, "unknown key type"),
            (txt(&["v=DKIM1; p=!!!"]), FAIL, "not base64"),
            (txt(&["v=DKIM2; p=AAAA"]), FAIL, "not DKIM1"),
            (txt(&["v=spf1 -all"]), FAIL, "none is a DKIM key"),
            (txt(&["p=AAAA", "p=BBBB"]), FAIL, "several"),
            (
                Outcome::NxDomain,
                FAIL,
                "no DKIM key at sel._domainkey.example.test",
            ),
            (Outcome::NoData, FAIL, "no DKIM key"),
            (Outcome::Failed(Failure::Timeout), DNS, "failed"),
        ];
        for (outcome, (level, code), words) in table {
            let v = dkim_verdict(&lookup(
                "sel._domainkey.example.test",
                "TXT",
                outcome.clone(),
            ));
            assert_eq!(
                (v.level, v.exit, v.check),
                (*level, *code, "dkim"),
                "{outcome:?}"
            );
            assert!(v.reason.contains(words), "{outcome:?}: {}", v.reason);
        }
    }

    #[test]
    fn what_spf_says_of_the_mx_hosts() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let not = "may not send mail for example.test (fine if it only receives)";
        // (result, line after the address)
        let table: &[(SpfResult, &str)] = &[
            (SpfResult::Pass, "pass, may send mail for example.test"),
            (SpfResult::Fail, &format!("fail, {not}")),
            (SpfResult::SoftFail, &format!("softfail, {not}")),
            (SpfResult::Neutral, &format!("neutral, {not}")),
            (SpfResult::TempError, "temperror, not known (DNS failure)"),
        ];
        for (result, words) in table {
            let line = mx_line("mx.example.test", ip, *result, "example.test");
            assert_eq!(line, format!("MX mx.example.test [192.0.2.1]: {words}"));
        }
        assert_eq!(shorten("abcdef", 3), "abc…");
        assert_eq!(shorten("abc", 3), "abc");
    }
}
