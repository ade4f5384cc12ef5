//! DANE for SMTP (RFC 7672) of every MX host: its `_25._tcp.HOST` TLSA records, whether DNSSEC
//! proves them (and the MX records that named the host), and whether the certificate each
//! address offered in STARTTLS matches them, judged as a DANE sender would
//! (`relais_remote::tls::dane_step` picks the usable records, `relais_client::dane_verify`
//! matches a chain, both what delivery with `tls = "dane"` uses). The verdicts are pure
//! functions of what the DNS said and what the probe saw, tested as tables.

use std::time::{Duration, Instant};

use relais_client::{Tlsa, dane_matches, dane_verify};
use relais_dns::{Lookup, Outcome, Resolver, TlsaRecord};
use relais_remote::tls::{DaneStep, dane_step};
use serde_json::{Value, json};

use super::exit::FAIL;
use crate::probe::report::{HostReport, Verdict};

/// What the DNS says of one MX host's TLSA records.
#[derive(Debug, Clone)]
pub(super) struct HostTlsa {
    /// The MX host.
    pub(super) host: String,
    /// The lookup of `_25._tcp.HOST`: the validating resolver's when the other one found
    /// records (without records there is nothing to validate).
    pub(super) lookup: Lookup<TlsaRecord>,
    /// DNSSEC proved the records.
    pub(super) secure: bool,
    /// The lookup without validation answered and the validating one failed: the host's
    /// zone is bogus (expired signatures, a DS for a key no longer published).
    pub(super) bogus: bool,
    /// DNSSEC proved the domain's MX records too (asked only for secure records): without
    /// that, DANE senders never look the TLSA records up (RFC 7672 §2.2.1).
    pub(super) mx_secure: bool,
    /// How long its lookups took.
    pub(super) elapsed: Duration,
}

/// What the probe saw of one address of the host.
#[derive(Debug, Clone, Copy)]
pub(super) struct Seen<'a> {
    /// `IP:PORT`.
    pub(super) address: &'a str,
    /// Whether EHLO offered STARTTLS; `None`: the session never got that far.
    pub(super) starttls: Option<bool>,
    /// The chain the server sent in STARTTLS (end-entity first, DER); empty without a
    /// handshake.
    pub(super) chain: &'a [Vec<u8>],
}

/// The advice of every verdict that stops DANE senders.
const NOT_DELIVERED: &str = "DANE senders will not deliver to this MX";

/// `u s m` of a record, and its data in hex (cut after 16 bytes when `short`).
fn describe(r: &TlsaRecord, short: bool) -> String {
    let data: String = r
        .data
        .iter()
        .take(if short { 16 } else { usize::MAX })
        .map(|b| format!("{b:02x}"))
        .collect();
    let more = if short && r.data.len() > 16 {
        "…"
    } else {
        ""
    };
    format!("{} {} {} {data}{more}", r.usage, r.selector, r.matching)
}

/// Why a record DANE senders ignore is unusable (`None`: usable).
fn unusable(r: &TlsaRecord) -> Option<&'static str> {
    match (r.usage, r.selector, r.matching) {
        (0 | 1, _, _) => {
            Some("usages 0 and 1 (PKIX-TA, PKIX-EE) are not used for SMTP (RFC 7672 §3.1.3)")
        }
        (2 | 3, 0 | 1, 0..=2) => None,
        (2 | 3, 0 | 1, _) => Some("an unknown matching type (0, 1 or 2 are defined)"),
        (2 | 3, _, _) => Some("an unknown selector (0 or 1 are defined)"),
        _ => Some("an unknown usage (2 DANE-TA and 3 DANE-EE are used for SMTP)"),
    }
}

/// The verdicts on one host's records, whatever its addresses showed.
pub(super) fn record_verdicts(domain: &str, t: &HostTlsa) -> Vec<Verdict> {
    let name = &t.lookup.name;
    let found = match &t.lookup.outcome {
        Outcome::Failed(f) if t.bogus => {
            return vec![Verdict::fail(
                FAIL,
                "dane",
                format!(
                    "DNSSEC validation fails at {name} ({f}) where a lookup without validation answers: validating resolvers, and every DANE sender, cannot resolve this MX host"
                ),
                "senders that validate DNSSEC defer mail to this host until it validates: re-sign the zone (its RRSIGs may have expired) or publish the DS of its current key at the parent",
            )];
        }
        Outcome::Failed(f) => {
            return vec![Verdict::fail(
                FAIL,
                "dane",
                format!("the TLSA lookup of {name} failed: {f}"),
                "DANE senders defer mail to this MX host until it answers: check the zone's DNSSEC signatures (expired RRSIGs, a DS for a key no longer published) and its nameservers",
            )];
        }
        Outcome::NoData | Outcome::NxDomain => {
            return vec![Verdict::ok(
                "dane",
                format!(
                    "no TLSA record at {name} (DANE is optional: senders that use it fall back to opportunistic TLS)"
                ),
            )];
        }
        Outcome::Found(records) => records,
    };
    if !t.secure {
        return vec![Verdict::warn(
            "dane",
            format!(
                "TLSA records at {name}, but DNSSEC does not validate them: DANE senders ignore unauthenticated TLSA records (RFC 7672 §2.2)"
            ),
            "sign the host's zone with DNSSEC and publish its DS record at the parent, or remove the TLSA records",
        )];
    }
    let mut out = Vec::new();
    let usable = found.iter().filter(|r| unusable(r).is_none()).count();
    if !t.mx_secure {
        out.push(Verdict::warn(
            "dane",
            format!(
                "the TLSA records at {name} validate, but the MX records of {domain} do not: DANE senders look up TLSA records only for MX hosts that DNSSEC-signed MX records name (RFC 7672 §2.2.1)"
            ),
            "sign the domain's zone with DNSSEC too, so that DANE applies",
        ));
    } else if usable > 0 {
        out.push(Verdict::ok(
            "dane",
            format!("{usable} DNSSEC-validated TLSA record(s) at {name} usable for SMTP"),
        ));
    }
    for r in found {
        if let Some(why) = unusable(r) {
            out.push(Verdict::warn(
                "dane",
                format!(
                    "the TLSA record {} at {name} is not usable: {why}",
                    describe(r, true)
                ),
                "DANE senders ignore it: publish DANE-EE (3 1 1) or DANE-TA (2 1 1) records",
            ));
        }
    }
    if usable == 0 {
        out.push(Verdict::warn(
            "dane",
            format!("none of the TLSA records at {name} is usable for SMTP"),
            "DANE senders insist on TLS but cannot authenticate the server: publish a 3 1 1 record of its public key",
        ));
    }
    out
}

/// The verdict on one address's certificate against the host's secure, usable records (none
/// without such records), and a short result for its stage row.
pub(super) fn address_verdict(t: &HostTlsa, seen: Seen<'_>) -> Option<(Verdict, String)> {
    let usable: Vec<Tlsa> = match dane_step(&t.lookup.outcome, t.secure) {
        DaneStep::Require(records) if !records.is_empty() => records,
        _ => return None,
    };
    let (host, name, at) = (&t.host, &t.lookup.name, seen.address);
    // Without DNSSEC-signed MX records no sender applies them: what would fail only warns.
    let fail = |reason: String, advice: &str| {
        let advice = format!("{NOT_DELIVERED}: {advice}");
        if t.mx_secure {
            Verdict::fail(FAIL, "dane", reason, &advice)
        } else {
            Verdict::warn("dane", reason, &advice)
        }
    };
    let verdict = match (seen.starttls, seen.chain.split_first()) {
        (None, _) => (
            Verdict::warn(
                "dane",
                format!(
                    "the certificate of {host} [{at}] was not matched against {name}: the probe did not get to STARTTLS"
                ),
                "see the address's own verdicts",
            ),
            "not matched".to_string(),
        ),
        (Some(false), _) => (
            fail(
                format!(
                    "{host} [{at}] does not offer STARTTLS, but {name} has DNSSEC-validated TLSA records"
                ),
                "enable STARTTLS with a certificate the TLSA records match",
            ),
            "STARTTLS not offered".to_string(),
        ),
        (Some(true), None) => (
            fail(
                format!(
                    "no certificate of {host} [{at}] to match against {name}: the TLS handshake failed"
                ),
                "fix STARTTLS (see the starttls verdict)",
            ),
            "no certificate".to_string(),
        ),
        (Some(true), Some((leaf, authorities))) => match dane_verify(&usable, seen.chain, host) {
            Ok(()) => {
                // DANE-EE first, as a sender tries them.
                let matched = usable
                    .iter()
                    .find(|r| r.usage == 3 && dane_matches(r, leaf))
                    .or_else(|| {
                        usable.iter().find(|r| {
                            r.usage == 2 && authorities.iter().any(|a| dane_matches(r, a))
                        })
                    });
                let which = matched.map_or("a TLSA record".to_string(), |r| {
                    let kind = if r.usage == 3 { "DANE-EE" } else { "DANE-TA" };
                    format!("TLSA {} {} {} ({kind})", r.usage, r.selector, r.matching)
                });
                (
                    Verdict::ok(
                        "dane",
                        format!("the certificate of {host} [{at}] matches {which} at {name}"),
                    ),
                    format!("matches {which}"),
                )
            }
            Err(why) => (
                fail(
                    format!(
                        "the certificate of {host} [{at}] matches none of the {} usable TLSA records at {name} ({why})",
                        usable.len()
                    ),
                    "publish a TLSA record of the certificate the server presents (3 1 1: the SHA-256 of its public key), or install the certificate the records name; when changing keys, publish the new record two TTLs before",
                ),
                "no match".to_string(),
            ),
        },
    };
    Some(verdict)
}

/// The DANE item of the check: text lines, verdicts, JSON; a `dane` stage row is added to each
/// address's report.
#[derive(Debug, Clone, Default)]
pub(super) struct Dane {
    pub(super) lines: Vec<String>,
    pub(super) verdicts: Vec<Verdict>,
    pub(super) json: Value,
}

/// Looks up every MX host's TLSA records (`plain` first, then through `validating`, which
/// must prove the records or their absence; with secure records, whether the domain's MX
/// records validate) and judges them against each address of the host.
pub(super) async fn check(
    plain: &Resolver,
    validating: &Resolver,
    domain: &str,
    hosts: &mut [HostReport],
) -> Dane {
    let mut names: Vec<String> = Vec::new();
    for h in hosts.iter() {
        if !names.contains(&h.host) {
            names.push(h.host.clone());
        }
    }
    let mut mx_secure: Option<bool> = None;
    let mut dane = Dane::default();
    let mut json = Vec::new();
    for host in names {
        let started = Instant::now();
        let name = format!("_25._tcp.{host}");
        let (mut lookup, _) = plain.tlsa(&name).await;
        let mut secure = false;
        let mut bogus = false;
        if !matches!(lookup.outcome, Outcome::Failed(_)) {
            // Records are validated; so is their absence, which DANE senders need proven
            // (or shown unsigned) too: a zone whose DNSSEC is broken fails either way.
            let (checked, proven) = validating.tlsa(&name).await;
            // A failure where no DS says the zone is signed is the resolver's, not the zone's.
            bogus = matches!(checked.outcome, Outcome::Failed(_))
                && plain.zone_signed(&name).await.unwrap_or(false);
            if bogus || matches!(lookup.outcome, Outcome::Found(_)) {
                // Records the validating resolver cannot get are judged by its failure.
                (lookup, secure) = (checked, proven);
            }
        }
        if secure && mx_secure.is_none() {
            mx_secure = Some(validating.mx_secure(domain).await.unwrap_or(false));
        }
        let t = HostTlsa {
            host,
            lookup,
            secure,
            bogus,
            mx_secure: secure && mx_secure == Some(true),
            elapsed: started.elapsed(),
        };
        dane.lines.push(line(&t));
        dane.verdicts.extend(record_verdicts(domain, &t));
        let mut matched = Vec::new();
        for h in hosts.iter_mut().filter(|h| h.host == t.host) {
            let seen = Seen {
                address: &h.address,
                starttls: h.starttls_offered,
                chain: &h.peer_chain,
            };
            let (verdict, result) = match address_verdict(&t, seen) {
                Some((v, result)) => (Some(v), result),
                None => (None, summary(&t)),
            };
            matched.push(json!({"address": h.address, "result": result}));
            h.stage("dane", Some(t.elapsed), result);
            dane.verdicts.extend(verdict);
        }
        json.push(json!({
            "host": t.host,
            "name": t.lookup.name,
            "records": t.lookup.records().iter().map(|r| describe(r, false)).collect::<Vec<_>>(),
            "error": t.lookup.failure().map(|f| f.to_string()),
            "secure": t.secure,
            "bogus": t.bogus,
            "mx_secure": t.mx_secure,
            "addresses": matched,
        }));
    }
    dane.json = Value::Array(json);
    dane
}

/// The host's records in one text line.
fn line(t: &HostTlsa) -> String {
    let shown = match &t.lookup.outcome {
        Outcome::Found(records) => {
            let all: Vec<String> = records.iter().map(|r| describe(r, true)).collect();
            let proof = if t.secure {
                "DNSSEC: secure"
            } else {
                "DNSSEC: not validated"
            };
            format!("{} ({proof})", all.join(" | "))
        }
        Outcome::Failed(f) if t.bogus => format!("DNSSEC validation failed: {f}"),
        Outcome::Failed(f) => format!("lookup failed: {f}"),
        Outcome::NoData | Outcome::NxDomain => "none".to_string(),
    };
    format!("  DANE     {}: {shown}", t.lookup.name)
}

/// The stage row's result of an address with nothing to match.
fn summary(t: &HostTlsa) -> String {
    match &t.lookup.outcome {
        Outcome::Found(_) if !t.secure => "TLSA not validated".into(),
        Outcome::Found(_) => "no usable TLSA".into(),
        Outcome::Failed(_) => "lookup failed".into(),
        Outcome::NoData | Outcome::NxDomain => "no TLSA".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::fixtures::lookup;
    use crate::probe::report::Level;

    fn record(usage: u8, selector: u8, matching: u8, data: &[u8]) -> TlsaRecord {
        TlsaRecord {
            usage,
            selector,
            matching,
            data: data.to_vec(),
        }
    }

    fn host(outcome: Outcome<TlsaRecord>, secure: bool, mx_secure: bool) -> HostTlsa {
        HostTlsa {
            host: "mx.example.test".into(),
            lookup: lookup("_25._tcp.mx.example.test", "TLSA", outcome),
            secure,
            bogus: false,
            mx_secure,
            elapsed: Duration::ZERO,
        }
    }

    fn seen(starttls: Option<bool>, chain: &[Vec<u8>]) -> Seen<'_> {
        Seen {
            address: "192.0.2.1:25",
            starttls,
            chain,
        }
    }

    fn levels(verdicts: &[Verdict]) -> Vec<Level> {
        verdicts.iter().map(|v| v.level).collect()
    }

    #[test]
    fn records() {
        let (ok, warn, fail) = (Level::Ok, Level::Warn, Level::Fail);
        let found = |r: Vec<TlsaRecord>| Outcome::Found(r);
        // (outcome, secure, MX records secure, levels, words in the first reason)
        type Row = (Outcome<TlsaRecord>, bool, bool, Vec<Level>, &'static str);
        let table: Vec<Row> = vec![
            (Outcome::NoData, false, false, vec![ok], "DANE is optional"),
            (Outcome::NxDomain, false, false, vec![ok], "no TLSA record"),
            (
                Outcome::Failed(relais_dns::Failure::ServFail),
                false,
                false,
                vec![fail],
                "lookup of _25._tcp.mx.example.test failed",
            ),
            (
                found(vec![record(3, 1, 1, &[1; 32])]),
                false,
                false,
                vec![warn],
                "DNSSEC does not validate them",
            ),
            (
                found(vec![record(3, 1, 1, &[1; 32])]),
                true,
                true,
                vec![ok],
                "1 DNSSEC-validated TLSA record(s)",
            ),
            (
                found(vec![record(3, 1, 1, &[1; 32])]),
                true,
                false,
                vec![warn],
                "the MX records of example.test do not",
            ),
            (
                found(vec![record(1, 1, 1, &[1; 32]), record(2, 0, 1, &[2; 32])]),
                true,
                true,
                vec![ok, warn],
                "1 DNSSEC-validated",
            ),
            (
                found(vec![record(0, 0, 1, &[1; 32]), record(3, 2, 1, &[1])]),
                true,
                true,
                vec![warn, warn, warn],
                "PKIX-TA, PKIX-EE",
            ),
        ];
        for (outcome, secure, mx_secure, want, words) in table {
            let t = host(outcome, secure, mx_secure);
            let got = record_verdicts("example.test", &t);
            assert_eq!(levels(&got), want, "{t:?}");
            assert!(got[0].reason.contains(words), "{}", got[0].reason);
            assert!(got.iter().all(|v| v.check == "dane"));
        }
        // Answered without validation, failed with it: the zone is bogus, whatever it holds.
        let t = HostTlsa {
            bogus: true,
            ..host(Outcome::Failed(relais_dns::Failure::ServFail), false, false)
        };
        let got = record_verdicts("example.test", &t);
        assert_eq!(levels(&got), vec![fail]);
        assert!(
            got[0]
                .reason
                .contains("DNSSEC validation fails at _25._tcp.mx.example.test"),
            "{}",
            got[0].reason
        );
        assert!(line(&t).ends_with(": DNSSEC validation failed: server failure (SERVFAIL)"));
    }

    #[test]
    fn certificates() {
        let leaf = b"the end-entity certificate".to_vec();
        let chain = [leaf.clone(), b"its authority".to_vec()];
        let other = [b"another certificate".to_vec()];
        let (chain, other) = (&chain[..], &other[..]);
        let secure = |mx_secure| {
            host(
                Outcome::Found(vec![record(1, 0, 0, &leaf), record(3, 0, 0, &leaf)]),
                true,
                mx_secure,
            )
        };
        let (ok, warn, fail) = (Level::Ok, Level::Warn, Level::Fail);
        // (host, what the probe saw, level, result, words in the reason)
        let table = [
            (
                secure(true),
                seen(Some(true), chain),
                ok,
                "matches TLSA 3 0 0 (DANE-EE)",
                "192.0.2.1:25] matches",
            ),
            (
                secure(true),
                seen(Some(true), other),
                fail,
                "no match",
                "matches none of the 1 usable",
            ),
            (
                secure(false),
                seen(Some(true), other),
                warn,
                "no match",
                "matches none",
            ),
            (
                secure(true),
                seen(Some(false), &[]),
                fail,
                "STARTTLS not offered",
                "does not offer STARTTLS",
            ),
            (
                secure(true),
                seen(Some(true), &[]),
                fail,
                "no certificate",
                "the TLS handshake failed",
            ),
            (
                secure(true),
                seen(None, &[]),
                warn,
                "not matched",
                "did not get to STARTTLS",
            ),
        ];
        for (t, seen, level, result, words) in table {
            let (v, got) = address_verdict(&t, seen).expect("a verdict");
            assert_eq!((v.level, got.as_str()), (level, result), "{seen:?}");
            assert!(v.reason.contains(words), "{}", v.reason);
            if level == fail {
                assert!(v.advice.starts_with(NOT_DELIVERED), "{}", v.advice);
            }
        }
        // Nothing to match: no records, unauthenticated ones, or none usable.
        for t in [
            host(Outcome::NoData, false, false),
            host(Outcome::Found(vec![record(3, 0, 0, &leaf)]), false, false),
            host(Outcome::Found(vec![record(1, 0, 0, &leaf)]), true, true),
        ] {
            assert!(
                address_verdict(&t, seen(Some(false), &[])).is_none(),
                "{t:?}"
            );
        }
    }
}
