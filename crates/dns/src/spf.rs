//! SPF (RFC 7208): the record of a domain, parsed term by term, and its evaluation for an
//! address.
//!
//! [`Resolver::spf_record`] fetches the TXT records of a domain, picks the `v=spf1` one
//! (none → no SPF; several → a permanent error, RFC 7208 section 4.5), checks it against the
//! RFC's grammar (the `parse` module) and splits it into [`SpfTerm`]s, each with a one-line
//! meaning. [`Resolver::spf_check`] evaluates it: see the `eval` module; `macros` expands
//! `%{...}`.

mod eval;
mod macros;
mod parse;

use serde::ser::{Serialize, SerializeStruct, Serializer};

use crate::lookup::normalize;
use crate::{Failure, Lookup, Outcome, Resolver};

pub use eval::{Identity, MAX_EVALUATION_TIME, SpfCheck, SpfMatch, SpfQuery, SpfResult, SpfStep};

/// RFC 7208 section 4.6.4: at most 10 terms that cause DNS queries, over the whole evaluation.
pub const MAX_DNS_MECHANISMS: u32 = 10;
/// RFC 7208 section 4.6.4: at most 2 of those queries may find nothing (NXDOMAIN or NODATA).
pub const MAX_VOID_LOOKUPS: u32 = 2;

/// The SPF record of a domain.
#[derive(Debug, Clone, PartialEq)]
pub struct SpfRecord {
    /// The domain, without the trailing dot.
    pub domain: String,
    /// The TXT query.
    pub txt: Lookup<String>,
    /// What was found.
    pub status: RecordStatus,
    /// Every TXT record that starts with `v=spf1` (more than one is an error).
    pub candidates: Vec<String>,
    /// The terms of the (first) SPF record, in order.
    pub terms: Vec<SpfTerm>,
    /// The record parsed for evaluation, when it is valid.
    pub(crate) policy: Option<parse::Policy>,
}

/// What the TXT records of a domain say about SPF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordStatus {
    /// One valid SPF record.
    Found,
    /// No SPF record (no TXT, or none starting with `v=spf1`): SPF result `none`.
    NotFound,
    /// The domain does not exist: SPF result `none` as well, but worth telling apart.
    NoSuchDomain,
    /// More than one SPF record: `permerror`.
    Multiple,
    /// The record does not parse: `permerror`. The text says which term is wrong.
    Invalid(String),
    /// The DNS failed: `temperror`.
    Failed(Failure),
}

impl RecordStatus {
    /// `found`, `none`, `nxdomain`, `multiple`, `invalid` or `error`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RecordStatus::Found => "found",
            RecordStatus::NotFound => "none",
            RecordStatus::NoSuchDomain => "nxdomain",
            RecordStatus::Multiple => "multiple",
            RecordStatus::Invalid(_) => "invalid",
            RecordStatus::Failed(_) => "error",
        }
    }
}

/// One term of an SPF record, as written, with what it means.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SpfTerm {
    /// The term as written, e.g. `-all`, `ip4:192.0.2.0/24`, `redirect=_spf.example.org`.
    pub text: String,
    /// `mechanism` or `modifier`.
    pub kind: &'static str,
    /// For a mechanism, the result it gives when it matches: `pass`, `fail`, `softfail`,
    /// `neutral`.
    pub qualifier: Option<&'static str>,
    /// The mechanism or modifier name, lower case: `all`, `ip4`, `include`, `redirect`, ...
    pub name: String,
    /// What follows the name (`:domain`, `/cidr` or `=value`), if anything.
    pub value: Option<String>,
    /// One line in plain words.
    pub meaning: String,
}

impl SpfTerm {
    /// Whether evaluating this term queries the DNS (counted against the limit of 10).
    pub fn queries_dns(&self) -> bool {
        matches!(
            self.name.as_str(),
            "include" | "a" | "mx" | "ptr" | "exists" | "redirect"
        )
    }
}

impl SpfRecord {
    /// The SPF record text, when exactly one was found (valid or not).
    pub fn text(&self) -> Option<&str> {
        match self.candidates.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }

    /// How many terms of this record query the DNS (the limit, 10, is for the whole
    /// evaluation, includes and redirects included).
    pub fn dns_terms(&self) -> usize {
        self.terms.iter().filter(|t| t.queries_dns()).count()
    }
}

impl Resolver {
    /// Fetches and parses the SPF record of `domain`.
    pub async fn spf_record(&self, domain: &str) -> SpfRecord {
        let txt = self.txt(domain).await;
        let candidates: Vec<String> = txt
            .records()
            .iter()
            .filter(|r| is_spf(r))
            .cloned()
            .collect();
        let mut policy = None;
        let status = match &txt.outcome {
            Outcome::Failed(failure) => RecordStatus::Failed(failure.clone()),
            Outcome::NxDomain => RecordStatus::NoSuchDomain,
            _ => match candidates.as_slice() {
                [] => RecordStatus::NotFound,
                [one] => match parse::policy(one) {
                    Ok(parsed) => {
                        policy = Some(parsed);
                        RecordStatus::Found
                    }
                    Err(why) => RecordStatus::Invalid(why),
                },
                _ => RecordStatus::Multiple,
            },
        };
        let terms = candidates.first().map(|r| terms(r)).unwrap_or_default();
        SpfRecord {
            domain: normalize(domain),
            txt,
            status,
            candidates,
            terms,
            policy,
        }
    }
}

/// Whether a TXT record is an SPF record: `v=spf1` alone or followed by a space.
pub fn is_spf(record: &str) -> bool {
    let bytes = record.as_bytes();
    bytes.len() >= 6
        && bytes[..6].eq_ignore_ascii_case(b"v=spf1")
        && (bytes.len() == 6 || bytes[6] == b' ')
}

/// Whether an SPF record parses for evaluation (RFC 7208 §4.6); the error names the bad term.
/// What the evaluator does with a record it finds, without the DNS (for `relais dns spf` and
/// the fuzz target).
pub fn validate(record: &str) -> Result<(), String> {
    parse::policy(record).map(|_| ())
}

/// Splits an SPF record into its terms (the `v=spf1` version is not a term).
pub fn terms(record: &str) -> Vec<SpfTerm> {
    record
        .split(' ')
        .filter(|t| !t.is_empty())
        .skip(1)
        .map(parse_term)
        .collect()
}

fn parse_term(text: &str) -> SpfTerm {
    if let Some((name, value)) = text.split_once('=')
        && parse::is_modifier_name(name)
    {
        let name = name.to_ascii_lowercase();
        let meaning = match name.as_str() {
            "redirect" => format!("if no mechanism matches, the SPF record of {value} decides"),
            "exp" => format!("the explanation for a fail is the TXT record of {value}"),
            _ => "unknown modifier, ignored".to_string(),
        };
        return SpfTerm {
            text: text.to_string(),
            kind: "modifier",
            qualifier: None,
            name,
            value: Some(value.to_string()),
            meaning,
        };
    }
    let (qualifier, rest) = match text.as_bytes().first() {
        Some(b'+') => ("pass", &text[1..]),
        Some(b'-') => ("fail", &text[1..]),
        Some(b'~') => ("softfail", &text[1..]),
        Some(b'?') => ("neutral", &text[1..]),
        _ => ("pass", text),
    };
    let split = rest.find([':', '/']).unwrap_or(rest.len());
    let name = rest[..split].to_ascii_lowercase();
    let value = rest[split..].strip_prefix(':').unwrap_or(&rest[split..]);
    let value = (!value.is_empty()).then(|| value.to_string());
    let target = |default: &str| match value.as_deref() {
        Some(v) if v.starts_with('/') => format!("{default}{v}"),
        Some(v) => v.to_string(),
        None => default.to_string(),
    };
    let meaning = match name.as_str() {
        "all" => format!("{qualifier} for every address not matched before"),
        "ip4" | "ip6" => format!("{qualifier} if the address is in {}", target("?")),
        "a" => format!(
            "{qualifier} if the address is an A/AAAA of {}",
            target("the domain")
        ),
        "mx" => format!(
            "{qualifier} if the address is one of the MX hosts of {}",
            target("the domain")
        ),
        "include" => format!(
            "{qualifier} if the SPF record of {} passes",
            target("(missing domain)")
        ),
        "exists" => format!(
            "{qualifier} if {} has an A record",
            target("(missing domain)")
        ),
        "ptr" => format!(
            "{qualifier} if the address's confirmed PTR name is under {} (deprecated, RFC 7208 5.5)",
            target("the domain")
        ),
        _ => "unknown mechanism: the record is invalid (permerror)".to_string(),
    };
    SpfTerm {
        text: text.to_string(),
        kind: "mechanism",
        qualifier: Some(qualifier),
        name,
        value,
        meaning,
    }
}

impl Serialize for SpfRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (invalid, error) = match &self.status {
            RecordStatus::Invalid(why) => (Some(why.as_str()), None),
            RecordStatus::Failed(failure) => (None, Some(failure)),
            _ => (None, None),
        };
        let mut s = serializer.serialize_struct("SpfRecord", 9)?;
        s.serialize_field("domain", &self.domain)?;
        s.serialize_field("status", self.status.as_str())?;
        s.serialize_field("record", &self.text())?;
        s.serialize_field("invalid", &invalid)?;
        s.serialize_field("error", &error)?;
        s.serialize_field("candidates", &self.candidates)?;
        s.serialize_field("terms", &self.terms)?;
        s.serialize_field("dns_terms", &self.dns_terms())?;
        s.serialize_field("txt", &self.txt)?;
        s.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spf_records_are_recognised() {
        assert!(is_spf("v=spf1 -all"));
        assert!(is_spf("V=SPF1"));
        assert!(!is_spf("v=spf10 -all"));
        assert!(!is_spf("v=DMARC1; p=none"));
        assert!(!is_spf("spf1"));
    }

    #[test]
    fn terms_are_split_and_explained() {
        let t = terms(
            "v=spf1 ip4:192.0.2.0/24 a/24 ~mx:mail.example.test -include:_spf.example.test ?all redirect=other.test exp=why.test foo=bar",
        );
        let shape: Vec<(&str, &str, Option<&str>, Option<&str>)> = t
            .iter()
            .map(|t| (t.kind, t.name.as_str(), t.qualifier, t.value.as_deref()))
            .collect();
        assert_eq!(
            shape,
            vec![
                ("mechanism", "ip4", Some("pass"), Some("192.0.2.0/24")),
                ("mechanism", "a", Some("pass"), Some("/24")),
                (
                    "mechanism",
                    "mx",
                    Some("softfail"),
                    Some("mail.example.test")
                ),
                (
                    "mechanism",
                    "include",
                    Some("fail"),
                    Some("_spf.example.test")
                ),
                ("mechanism", "all", Some("neutral"), None),
                ("modifier", "redirect", None, Some("other.test")),
                ("modifier", "exp", None, Some("why.test")),
                ("modifier", "foo", None, Some("bar")),
            ]
        );
        assert_eq!(t[0].meaning, "pass if the address is in 192.0.2.0/24");
        assert_eq!(
            t[1].meaning,
            "pass if the address is an A/AAAA of the domain/24"
        );
        assert_eq!(t[4].meaning, "neutral for every address not matched before");
        assert_eq!(t[7].meaning, "unknown modifier, ignored");
        assert_eq!(t.iter().filter(|t| t.queries_dns()).count(), 4);
    }

    #[test]
    fn invalid_records_name_the_bad_term() {
        assert_eq!(validate("v=spf1 ip4:192.0.2.1 -all"), Ok(()));
        assert_eq!(
            validate("v=spf1 ip4:192.0.2.1 ip4:300.1.1.1 -all"),
            Err("invalid address in \"ip4:300.1.1.1\"".to_string())
        );
        assert!(validate("v=spf1 frobnicate -all").is_err());
        assert!(validate("v=spf1 ip4:192.0.2.0/33 -all").is_err());
        assert!(validate("v=spf1 ip6:192.0.2.0 -all").is_err());
        assert_eq!(
            validate("v=spf1 ip6:2001:db8::/32 ip4:192.0.2.0/24 -all"),
            Ok(())
        );
    }
}
