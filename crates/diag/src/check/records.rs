//! The domain's records beyond SPF, DMARC and DKIM (which the probe judges): MTA-STS (RFC
//! 8461), TLS-RPT (RFC 8460), BIMI, and the DNS block lists of every MX address. Each verdict
//! is a pure function of the DNS answer, tested as a table.

use relais_dns::dnsbl::{DnsblCheck, DnsblStatus};
use relais_dns::{Lookup, Outcome};
use relais_remote::sts::{Mode, StsLookup, mx_matches};

use crate::probe::report::Verdict;

/// The exit code carried by a failing record verdict (the check's own table maps levels).
const FAIL: u8 = 2;

/// The records of `lookup` that start with `version` (compared as the RFCs say: exact).
fn versioned<'a>(lookup: &'a Lookup<String>, version: &str) -> Vec<&'a String> {
    lookup
        .records()
        .iter()
        .filter(|r| {
            r.split(';')
                .next()
                .is_some_and(|v| v.trim().replace(' ', "") == version)
        })
        .collect()
}

/// The value of `tag` in a `tag=value; ...` record.
fn tag<'a>(record: &'a str, name: &str) -> Option<&'a str> {
    record.split(';').find_map(|part| {
        let (k, v) = part.split_once('=')?;
        (k.trim() == name).then(|| v.trim())
    })
}

/// A DNS failure: no verdict on the record, said as a failure to check.
fn dns_failed(check: &'static str, lookup: &Lookup<String>) -> Option<Verdict> {
    match &lookup.outcome {
        Outcome::Failed(f) => Some(Verdict::fail(
            FAIL,
            check,
            format!("the lookup of {} failed: {f}", lookup.name),
            "check the domain's nameservers and the resolver",
        )),
        _ => None,
    }
}

/// `_mta-sts.DOMAIN`: `v=STSv1; id=...`, exactly one.
pub(crate) fn mta_sts(lookup: &Lookup<String>) -> Verdict {
    if let Some(v) = dns_failed("mta-sts", lookup) {
        return v;
    }
    let found = versioned(lookup, "v=STSv1");
    match found.as_slice() {
        [] => Verdict::warn(
            "mta-sts",
            format!(
                "no MTA-STS record at {}: senders cannot insist on TLS to the MX hosts",
                lookup.name
            ),
            "publish _mta-sts TXT \"v=STSv1; id=YYYYMMDD\" and the policy at https://mta-sts.DOMAIN/.well-known/mta-sts.txt (RFC 8461)",
        ),
        [one] => match tag(one, "id") {
            Some(id)
                if !id.is_empty()
                    && id.len() <= 32
                    && id.chars().all(|c| c.is_ascii_alphanumeric()) =>
            {
                Verdict::ok("mta-sts", format!("MTA-STS record: {one}"))
            }
            _ => Verdict::fail(
                FAIL,
                "mta-sts",
                format!("the MTA-STS record has no valid id= (1 to 32 letters and digits): {one}"),
                "senders ignore it: add id=, changed whenever the policy file changes",
            ),
        },
        _ => Verdict::fail(
            FAIL,
            "mta-sts",
            format!(
                "{} MTA-STS records at {}: senders take that as none",
                found.len(),
                lookup.name
            ),
            "keep exactly one v=STSv1 record",
        ),
    }
}

/// The MTA-STS policy file (fetched over HTTPS as a sender fetches it) against the MX hosts:
/// it must be served, and every MX host must be in its `mx` list, or senders that enforce it
/// will not deliver there.
pub(crate) fn mta_sts_policy(
    domain: &str,
    lookup: &StsLookup,
    mx_hosts: &[String],
) -> Vec<Verdict> {
    let url = format!("https://mta-sts.{domain}/.well-known/mta-sts.txt");
    let Some(policy) = &lookup.policy else {
        let why = lookup.fetch_error.as_deref().unwrap_or("no policy");
        return vec![Verdict::fail(
            FAIL,
            "mta-sts-policy",
            format!("the MTA-STS policy at {url} cannot be used: {why}"),
            "serve it over HTTPS with a certificate valid for mta-sts.DOMAIN, as text/plain, no redirect (RFC 8461 §3.3); senders treat the domain as having no policy",
        )];
    };
    let mut out = Vec::new();
    let summary = format!(
        "MTA-STS policy: mode {}, max_age {} s, mx {}",
        policy.mode,
        policy.max_age,
        policy.mx.join(", ")
    );
    out.push(match policy.mode {
        Mode::Enforce => Verdict::ok("mta-sts-policy", summary),
        Mode::Testing => Verdict::ok("mta-sts-policy", format!("{summary} (senders only report)")),
        Mode::None => Verdict::warn(
            "mta-sts-policy",
            format!("{summary}: the policy is withdrawn"),
            "set mode: testing, then enforce, once every MX host has a valid certificate",
        ),
    });
    if policy.mode != Mode::None && policy.max_age < 86_400 {
        out.push(Verdict::warn(
            "mta-sts-policy",
            format!("max_age {} s is under a day", policy.max_age),
            "RFC 8461 recommends weeks (604800 or more), so that an attacker cannot wait it out",
        ));
    }
    for host in mx_hosts {
        if policy.mode != Mode::None && !policy.mx.iter().any(|p| mx_matches(p, host)) {
            out.push(Verdict::fail(
                FAIL,
                "mta-sts-policy",
                format!("the MX host {host} is not in the policy's mx list"),
                "add it to the policy (and change the record's id): senders enforcing it will not deliver there",
            ));
        }
    }
    out
}

/// `_smtp._tls.DOMAIN`: `v=TLSRPTv1; rua=mailto:...` (or https:), exactly one.
pub(crate) fn tls_rpt(lookup: &Lookup<String>) -> Verdict {
    if let Some(v) = dns_failed("tls-rpt", lookup) {
        return v;
    }
    let found = versioned(lookup, "v=TLSRPTv1");
    match found.as_slice() {
        [] => Verdict::warn(
            "tls-rpt",
            format!(
                "no TLS-RPT record at {}: nobody tells you when TLS to your MX fails",
                lookup.name
            ),
            "publish _smtp._tls TXT \"v=TLSRPTv1; rua=mailto:tls-reports@DOMAIN\" (RFC 8460)",
        ),
        [one] => {
            let good = tag(one, "rua").is_some_and(|rua| {
                rua.split(',').all(|u| {
                    let u = u.trim();
                    u.starts_with("mailto:") || u.starts_with("https:")
                }) && !rua.is_empty()
            });
            if good {
                Verdict::ok("tls-rpt", format!("TLS-RPT record: {one}"))
            } else {
                Verdict::fail(
                    FAIL,
                    "tls-rpt",
                    format!("the TLS-RPT record has no valid rua= (mailto: or https:): {one}"),
                    "add rua=mailto:ADDRESS, or rua=https://URL",
                )
            }
        }
        _ => Verdict::fail(
            FAIL,
            "tls-rpt",
            format!(
                "{} TLS-RPT records at {}: reporters take that as none",
                found.len(),
                lookup.name
            ),
            "keep exactly one v=TLSRPTv1 record",
        ),
    }
}

/// `default._bimi.DOMAIN`: optional; when there, `v=BIMI1; l=https://...svg`.
pub(crate) fn bimi(lookup: &Lookup<String>) -> Verdict {
    if let Some(v) = dns_failed("bimi", lookup) {
        return v;
    }
    let found = versioned(lookup, "v=BIMI1");
    match found.as_slice() {
        [] => Verdict::ok(
            "bimi",
            format!(
                "no BIMI record at {} (optional: a logo in some mail clients)",
                lookup.name
            ),
        ),
        [one] => match tag(one, "l") {
            Some(l) if l.is_empty() || (l.starts_with("https://") && l.ends_with(".svg")) => {
                Verdict::ok("bimi", format!("BIMI record: {one}"))
            }
            _ => Verdict::fail(
                FAIL,
                "bimi",
                format!("the BIMI logo must be an https:// URL of an SVG file: {one}"),
                "set l=https://.../logo.svg (SVG Tiny PS); mail clients ignore anything else",
            ),
        },
        _ => Verdict::fail(
            FAIL,
            "bimi",
            format!("{} BIMI records at {}", found.len(), lookup.name),
            "keep exactly one v=BIMI1 record",
        ),
    }
}

/// One address on every list: listed anywhere fails; a list without a verdict warns.
pub(crate) fn dnsbl(checks: &[DnsblCheck]) -> Vec<Verdict> {
    let mut out = Vec::new();
    let mut clean = Vec::new();
    for c in checks {
        match &c.status {
            DnsblStatus::Listed { reason, .. } => out.push(Verdict::fail(
                FAIL,
                "dnsbl",
                format!(
                    "{} is listed on {}{}",
                    c.ip,
                    c.zone,
                    reason
                        .as_ref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default()
                ),
                "find out why (the list's lookup page), fix the cause, then ask for removal",
            )),
            DnsblStatus::Error { reason, .. } => out.push(Verdict::warn(
                "dnsbl",
                format!("{} gave no verdict for {}: {reason}", c.zone, c.ip),
                "query the list through your own resolver, not a public one",
            )),
            DnsblStatus::NotListed => clean.push(c.zone.as_str()),
        }
    }
    if let (false, Some(first)) = (clean.is_empty(), checks.first()) {
        out.insert(
            0,
            Verdict::ok(
                "dnsbl",
                format!("{} is not listed on {}", first.ip, clean.join(", ")),
            ),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::fixtures::lookup;
    use crate::probe::report::Level;

    fn txt(records: &[&str]) -> Lookup<String> {
        let outcome = if records.is_empty() {
            Outcome::NxDomain
        } else {
            Outcome::Found(records.iter().map(|r| r.to_string()).collect())
        };
        lookup("x.example.test", "TXT", outcome)
    }

    #[test]
    fn record_verdicts() {
        type Judge = fn(&Lookup<String>) -> Verdict;
        // (judge, records, level)
        let table: &[(Judge, &[&str], Level)] = &[
            (mta_sts, &["v=STSv1; id=20240101"], Level::Ok),
            (mta_sts, &["v=STSv1; id=2024-01-01"], Level::Fail),
            (mta_sts, &["v=STSv1;"], Level::Fail),
            (mta_sts, &["v=STSv1; id=a", "v=STSv1; id=b"], Level::Fail),
            (mta_sts, &[], Level::Warn),
            (mta_sts, &["v=spf1 -all"], Level::Warn),
            (
                tls_rpt,
                &["v=TLSRPTv1; rua=mailto:tls@example.test"],
                Level::Ok,
            ),
            (
                tls_rpt,
                &["v=TLSRPTv1; rua=https://r.example.test/x"],
                Level::Ok,
            ),
            (tls_rpt, &["v=TLSRPTv1; rua=tls@example.test"], Level::Fail),
            (tls_rpt, &["v=TLSRPTv1"], Level::Fail),
            (tls_rpt, &[], Level::Warn),
            (bimi, &[], Level::Ok),
            (
                bimi,
                &["v=BIMI1; l=https://example.test/logo.svg"],
                Level::Ok,
            ),
            (
                bimi,
                &["v=BIMI1; l=http://example.test/logo.svg"],
                Level::Fail,
            ),
            (
                bimi,
                &["v=BIMI1; l=https://example.test/logo.png"],
                Level::Fail,
            ),
        ];
        for (judge, records, level) in table {
            assert_eq!(judge(&txt(records)).level, *level, "{records:?}");
        }
        let failed = lookup(
            "_mta-sts.x",
            "TXT",
            Outcome::Failed(relais_dns::Failure::ServFail),
        );
        assert_eq!(mta_sts(&failed).level, Level::Fail);
    }

    #[test]
    fn mta_sts_policies_against_the_mx_hosts() {
        use relais_remote::sts::Policy;
        let policy = |mode, mx: &[&str], max_age| StsLookup {
            policy: Some(Policy {
                mode,
                mx: mx.iter().map(|m| m.to_string()).collect(),
                max_age,
            }),
            fetch_error: None,
        };
        let hosts = [
            "mx1.example.test".to_string(),
            "mx2.example.test".to_string(),
        ];
        // (lookup, the levels of its verdicts)
        let table: Vec<(StsLookup, Vec<Level>)> = vec![
            (
                policy(Mode::Enforce, &["*.example.test"], 604_800),
                vec![Level::Ok],
            ),
            (
                policy(Mode::Enforce, &["mx1.example.test"], 604_800),
                vec![Level::Ok, Level::Fail],
            ),
            (
                policy(
                    Mode::Testing,
                    &["mx1.example.test", "mx2.example.test"],
                    3600,
                ),
                vec![Level::Ok, Level::Warn],
            ),
            (policy(Mode::None, &[], 86_400), vec![Level::Warn]),
            (
                StsLookup {
                    policy: None,
                    fetch_error: Some("connection refused".into()),
                },
                vec![Level::Fail],
            ),
        ];
        for (lookup, want) in table {
            let got: Vec<Level> = mta_sts_policy("example.test", &lookup, &hosts)
                .iter()
                .map(|v| v.level)
                .collect();
            assert_eq!(got, want, "{lookup:?}");
        }
    }
}
