//! DMARC (RFC 7489, and the DMARCbis tree walk): the policy record of a domain.
//!
//! The record is the TXT record at `_dmarc.<domain>` that starts with `v=DMARC1`. When the
//! domain has none, its parents are tried in turn (`_dmarc.mail.example.org`, then
//! `_dmarc.example.org`), stopping before the top-level domain: the DMARCbis tree walk, which
//! finds the organizational domain's record without a public-suffix list. mail-auth's parser
//! checks the record; the tags are also listed as written, with their meaning.

use std::time::{Duration, Instant};

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::dmarc::{Alignment, Dmarc, Policy};
use relais_proto::date::millis;
use serde::ser::{Serialize, SerializeStruct, Serializer};

use crate::lookup::normalize;
use crate::{Failure, Lookup, Resolver};

/// DMARCbis: names of more than 8 labels are shortened to 8 before walking up.
const MAX_WALK_LABELS: usize = 8;

/// The DMARC record that applies to a domain.
#[derive(Debug, Clone, PartialEq)]
pub struct DmarcRecord {
    /// The domain asked about.
    pub domain: String,
    /// Each `_dmarc` TXT query made, in order.
    pub lookups: Vec<Lookup<String>>,
    /// What was found.
    pub status: DmarcStatus,
    /// The domain whose `_dmarc` record applies: the domain itself or a parent.
    pub found_at: Option<String>,
    /// The record text.
    pub record: Option<String>,
    /// The policy, as mail-auth reads it (valid records only).
    pub policy: Option<DmarcPolicy>,
    /// The tags as written, with their meaning.
    pub tags: Vec<DmarcTag>,
    /// Things an administrator should know (`p=none` only monitors, `pct` below 100, ...).
    pub warnings: Vec<String>,
    /// All queries together.
    pub elapsed: Duration,
}

/// What the `_dmarc` queries found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DmarcStatus {
    /// A valid record (at the domain or a parent).
    Found,
    /// No record at the domain nor at any parent.
    NotFound,
    /// More than one `v=DMARC1` record at the same name: receivers ignore them all.
    Multiple,
    /// The record does not parse.
    Invalid(String),
    /// The DNS failed.
    Failed(Failure),
}

impl DmarcStatus {
    /// `found`, `none`, `multiple`, `invalid` or `error`.
    pub fn as_str(&self) -> &'static str {
        match self {
            DmarcStatus::Found => "found",
            DmarcStatus::NotFound => "none",
            DmarcStatus::Multiple => "multiple",
            DmarcStatus::Invalid(_) => "invalid",
            DmarcStatus::Failed(_) => "error",
        }
    }
}

/// The policy of a valid record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DmarcPolicy {
    /// `p`: for the domain itself: `none`, `quarantine`, `reject` (`unspecified` if missing).
    pub p: &'static str,
    /// `sp`: for subdomains (defaults to `p`).
    pub sp: &'static str,
    /// `np`: for subdomains that do not exist (defaults to `sp`).
    pub np: &'static str,
    /// `adkim`: DKIM alignment, `relaxed` or `strict`.
    pub adkim: &'static str,
    /// `aspf`: SPF alignment, `relaxed` or `strict`.
    pub aspf: &'static str,
    /// `rua`: where aggregate reports go.
    pub rua: Vec<String>,
    /// `ruf`: where failure reports go.
    pub ruf: Vec<String>,
    /// `t=y`: testing mode (DMARCbis).
    pub testing: bool,
}

/// One tag of the record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DmarcTag {
    /// The tag name, lower case.
    pub name: String,
    /// Its value as written.
    pub value: String,
    /// What it means.
    pub meaning: String,
}

impl Resolver {
    /// Finds the DMARC record that applies to `domain`.
    pub async fn dmarc(&self, domain: &str) -> DmarcRecord {
        let started = Instant::now();
        let domain = normalize(domain);
        let mut lookups = Vec::new();
        let mut result = (DmarcStatus::NotFound, None, None);
        for candidate in walk(&domain) {
            let lookup = self.txt(&format!("_dmarc.{candidate}")).await;
            let records: Vec<String> = lookup
                .records()
                .iter()
                .filter(|r| is_dmarc(r))
                .cloned()
                .collect();
            let failure = lookup.failure().cloned();
            lookups.push(lookup);
            if let Some(failure) = failure {
                result = (DmarcStatus::Failed(failure), Some(candidate), None);
                break;
            }
            match records.as_slice() {
                [] => continue,
                [one] => {
                    let status = match Dmarc::parse(one.as_bytes()) {
                        Ok(_) => DmarcStatus::Found,
                        Err(e) => DmarcStatus::Invalid(e.to_string()),
                    };
                    result = (status, Some(candidate), Some(one.clone()));
                }
                _ => result = (DmarcStatus::Multiple, Some(candidate), None),
            }
            break;
        }
        let (status, found_at, record) = result;
        let tags = record.as_deref().map(tags).unwrap_or_default();
        let policy = record
            .as_deref()
            .and_then(|r| Dmarc::parse(r.as_bytes()).ok())
            .map(|d| policy(&d));
        let warnings = warnings(&tags, policy.as_ref(), found_at.as_deref(), &domain);
        DmarcRecord {
            domain,
            lookups,
            status,
            found_at,
            record,
            policy,
            tags,
            warnings,
            elapsed: started.elapsed(),
        }
    }
}

/// Whether a TXT record is a DMARC record: it starts with `v=DMARC1` (spaces allowed around
/// `=`), then `;` or its end.
pub fn is_dmarc(record: &str) -> bool {
    let Some((key, rest)) = record.split_once('=') else {
        return false;
    };
    let value = rest.split(';').next().unwrap_or_default().trim();
    key.trim().eq_ignore_ascii_case("v") && value == "DMARC1"
}

/// The names whose `_dmarc` record may apply to `domain`, most specific first.
fn walk(domain: &str) -> Vec<String> {
    let labels: Vec<&str> = domain.split('.').filter(|l| !l.is_empty()).collect();
    let mut names = vec![labels.join(".")];
    let start = labels.len().saturating_sub(MAX_WALK_LABELS).max(1);
    for first in start..labels.len().saturating_sub(1) {
        let name = labels[first..].join(".");
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// Splits a record into its `tag=value` pairs.
pub fn tags(record: &str) -> Vec<DmarcTag> {
    record
        .split(';')
        .filter_map(|part| part.split_once('='))
        .map(|(name, value)| {
            let name = name.trim().to_ascii_lowercase();
            let value = value.trim().to_string();
            let meaning = meaning(&name, &value);
            DmarcTag {
                name,
                value,
                meaning,
            }
        })
        .collect()
}

fn meaning(name: &str, value: &str) -> String {
    let policy = |who: &str| match value.to_ascii_lowercase().as_str() {
        "none" => format!("{who}: no action, only reports (monitoring)"),
        "quarantine" => format!("{who}: failing mail goes to spam/quarantine"),
        "reject" => format!("{who}: failing mail is refused"),
        _ => format!("{who}: unknown policy {value:?}"),
    };
    let alignment = |what: &str| match value.to_ascii_lowercase().as_str() {
        "s" => format!("{what} alignment strict: the domains must be identical"),
        "r" => format!("{what} alignment relaxed: the same organizational domain is enough"),
        _ => format!("{what} alignment: unknown value {value:?}"),
    };
    match name {
        "v" => "version".to_string(),
        "p" => policy("policy for the domain"),
        "sp" => policy("policy for subdomains"),
        "np" => policy("policy for non-existent subdomains"),
        "adkim" => alignment("DKIM"),
        "aspf" => alignment("SPF"),
        "pct" => format!("the policy applies to {value}% of failing mail"),
        "rua" => "aggregate reports are sent to these addresses".to_string(),
        "ruf" => "failure (forensic) reports are sent to these addresses".to_string(),
        "fo" => "when failure reports are generated".to_string(),
        "rf" => "the format of failure reports".to_string(),
        "ri" => format!("aggregate reports every {value} seconds"),
        "t" if value.eq_ignore_ascii_case("y") => {
            "testing: the policy is not applied strictly".to_string()
        }
        "t" => "not in testing mode".to_string(),
        "psd" => "public suffix domain flag".to_string(),
        _ => "unknown tag, ignored".to_string(),
    }
}

fn policy_name(policy: &Policy) -> &'static str {
    match policy {
        Policy::None => "none",
        Policy::Quarantine => "quarantine",
        Policy::Reject => "reject",
        Policy::Unspecified => "unspecified",
    }
}

fn alignment_name(alignment: &Alignment) -> &'static str {
    match alignment {
        Alignment::Relaxed => "relaxed",
        Alignment::Strict => "strict",
    }
}

fn policy(dmarc: &Dmarc) -> DmarcPolicy {
    DmarcPolicy {
        p: policy_name(&dmarc.p),
        sp: policy_name(&dmarc.sp),
        np: policy_name(&dmarc.np),
        adkim: alignment_name(&dmarc.adkim),
        aspf: alignment_name(&dmarc.aspf),
        rua: dmarc.rua.iter().map(|u| u.uri.clone()).collect(),
        ruf: dmarc.ruf.iter().map(|u| u.uri.clone()).collect(),
        testing: dmarc.t,
    }
}

fn warnings(
    tags: &[DmarcTag],
    policy: Option<&DmarcPolicy>,
    found_at: Option<&str>,
    domain: &str,
) -> Vec<String> {
    let mut warnings = Vec::new();
    if let Some(at) = found_at
        && at != domain
        && policy.is_some()
    {
        warnings.push(format!(
            "no record at _dmarc.{domain}: the record of {at} applies (its sp= policy for subdomains)"
        ));
    }
    let Some(policy) = policy else {
        return warnings;
    };
    match policy.p {
        "unspecified" => warnings.push(
            "no p= tag: RFC 7489 requires one; receivers treat the record as p=none".to_string(),
        ),
        "none" => warnings.push("p=none: failing mail is delivered as usual".to_string()),
        _ => {}
    }
    if let Some(pct) = tags.iter().find(|t| t.name == "pct")
        && pct.value != "100"
    {
        warnings.push(format!(
            "pct={}: the policy applies to part of the failing mail only",
            pct.value
        ));
    }
    if policy.rua.is_empty() {
        warnings.push("no rua=: the domain receives no aggregate reports".to_string());
    }
    warnings
}

impl Serialize for DmarcRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (invalid, error) = match &self.status {
            DmarcStatus::Invalid(why) => (Some(why.as_str()), None),
            DmarcStatus::Failed(failure) => (None, Some(failure)),
            _ => (None, None),
        };
        let mut s = serializer.serialize_struct("DmarcRecord", 11)?;
        s.serialize_field("domain", &self.domain)?;
        s.serialize_field("status", self.status.as_str())?;
        s.serialize_field("found_at", &self.found_at)?;
        s.serialize_field("record", &self.record)?;
        s.serialize_field("invalid", &invalid)?;
        s.serialize_field("error", &error)?;
        s.serialize_field("policy", &self.policy)?;
        s.serialize_field("tags", &self.tags)?;
        s.serialize_field("warnings", &self.warnings)?;
        s.serialize_field("lookups", &self.lookups)?;
        s.serialize_field("elapsed_ms", &millis(self.elapsed))?;
        s.end()
    }
}

impl DmarcRecord {
    /// Whether a valid record applies.
    pub fn is_found(&self) -> bool {
        self.status == DmarcStatus::Found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_walk_stops_before_the_tld() {
        assert_eq!(walk("example.test"), vec!["example.test"]);
        assert_eq!(
            walk("a.b.example.test"),
            vec!["a.b.example.test", "b.example.test", "example.test"]
        );
        let long = "1.2.3.4.5.6.7.8.9.example.test";
        let names = walk(long);
        assert_eq!(names[0], long);
        assert_eq!(names[1], "4.5.6.7.8.9.example.test");
        assert_eq!(names.last().unwrap(), "example.test");
    }

    #[test]
    fn dmarc_records_are_recognised() {
        assert!(is_dmarc("v=DMARC1; p=reject"));
        assert!(is_dmarc("v = DMARC1"));
        assert!(!is_dmarc("v=spf1 -all"));
        assert!(!is_dmarc("v=DMARC10; p=none"));
    }

    #[test]
    fn tags_have_meanings() {
        let t = tags("v=DMARC1; p=quarantine; pct=50; adkim=s; rua=mailto:d@example.test");
        let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["v", "p", "pct", "adkim", "rua"]);
        assert_eq!(
            t[1].meaning,
            "policy for the domain: failing mail goes to spam/quarantine"
        );
        assert_eq!(t[2].meaning, "the policy applies to 50% of failing mail");
    }
}
