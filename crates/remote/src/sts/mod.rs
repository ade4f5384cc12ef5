//! MTA-STS (RFC 8461): a domain says, in a TXT record and a policy file served over HTTPS,
//! which MX hosts may take its mail and whether senders must insist on verified TLS to them.
//!
//! The pure parts live here and are tested as tables: the `_mta-sts` TXT record ([`record_id`]),
//! the policy file ([`Policy::parse`]), an MX host against the policy's patterns
//! ([`mx_matches`]), and what the policy means for one MX host ([`judge`]). Fetching and
//! caching are `fetch.rs`'s. `mode: enforce` makes the delivery `verify` (the certificate
//! valid for the MX host's name) and skips MX hosts the policy does not list; `mode: testing`
//! changes nothing but what is logged and reported (TLS-RPT); `mode: none` is no policy.

mod fetch;

pub use fetch::{StsCache, StsLookup};

/// The most a policy may be cached for (RFC 8461 §3.2: about a year).
pub const MAX_AGE_LIMIT: u64 = 31_557_600;

/// What a policy asks of senders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Deliver only to listed MX hosts, over TLS verified for their names.
    Enforce,
    /// Deliver as usual; report what enforcing would have refused.
    Testing,
    /// No policy (a domain withdrawing one).
    None,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        })
    }
}

/// A domain's policy, as its file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Its mode.
    pub mode: Mode,
    /// The MX patterns (`mail.example.com`, `*.example.net`), lower case.
    pub mx: Vec<String>,
    /// How long it may be cached, seconds.
    pub max_age: u64,
}

impl Policy {
    /// Parses a policy file (RFC 8461 §3.2): `key: value` lines, `version: STSv1`, a `mode`,
    /// a `max_age`, and at least one `mx` unless the mode is `none`; unknown keys are skipped.
    pub fn parse(text: &str) -> Result<Policy, String> {
        let (mut version, mut mode, mut max_age, mut mx) = (None, None, None, Vec::new());
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (key, value) = line
                .split_once(':')
                .ok_or_else(|| format!("not a key: value line: {line:?}"))?;
            let value = value.trim();
            match key.trim() {
                "version" => version = Some(value.to_string()),
                "mode" => {
                    mode = Some(match value {
                        "enforce" => Mode::Enforce,
                        "testing" => Mode::Testing,
                        "none" => Mode::None,
                        other => return Err(format!("unknown mode {other:?}")),
                    })
                }
                "max_age" => {
                    let n: u64 = value
                        .parse()
                        .map_err(|_| format!("max_age {value:?} is not a number"))?;
                    max_age = Some(n.min(MAX_AGE_LIMIT));
                }
                "mx" => mx.push(value.to_ascii_lowercase()),
                _ => {}
            }
        }
        if version.as_deref() != Some("STSv1") {
            return Err("no version: STSv1".into());
        }
        let mode = mode.ok_or("no mode")?;
        let max_age = max_age.ok_or("no max_age")?;
        if mx.is_empty() && mode != Mode::None {
            return Err("no mx".into());
        }
        Ok(Policy { mode, mx, max_age })
    }

    /// The policy as TLS-RPT reports it (`policy-string`): its lines.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec!["version: STSv1".to_string(), format!("mode: {}", self.mode)];
        out.extend(self.mx.iter().map(|m| format!("mx: {m}")));
        out.push(format!("max_age: {}", self.max_age));
        out
    }
}

/// The `id` of a domain's `_mta-sts` TXT records: exactly one must start with `v=STSv1`, with
/// an `id` of 1 to 32 letters and digits. `None`: no usable record.
pub fn record_id(records: &[String]) -> Option<String> {
    let sts: Vec<&String> = records
        .iter()
        .filter(|r| r.split(';').next().is_some_and(|v| v.trim() == "v=STSv1"))
        .collect();
    let [record] = sts.as_slice() else {
        return None;
    };
    record.split(';').find_map(|field| {
        let (k, v) = field.split_once('=')?;
        let v = v.trim();
        let ok = k.trim() == "id"
            && (1..=32).contains(&v.len())
            && v.bytes().all(|b| b.is_ascii_alphanumeric());
        ok.then(|| v.to_string())
    })
}

/// True if the MX host `host` matches `pattern` (RFC 8461 §4.1): the same name, or
/// `*.suffix` for a host one label to the left of the suffix. Without case, trailing dots
/// ignored.
pub fn mx_matches(pattern: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => host == pattern,
    }
}

/// What a policy means for one MX host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// No policy applies: the configured TLS mode.
    Free,
    /// `enforce`, a listed host: TLS with a certificate valid for its name.
    Verify,
    /// `enforce`, a host the policy does not list: not tried.
    Skip,
    /// `testing`: as configured; whether the host is listed, for the report.
    Testing {
        /// The policy lists the host.
        listed: bool,
    },
}

/// How `policy` judges the MX host `host`.
pub fn judge(policy: Option<&Policy>, host: &str) -> Judgement {
    let Some(p) = policy else {
        return Judgement::Free;
    };
    let listed = p.mx.iter().any(|m| mx_matches(m, host));
    match (p.mode, listed) {
        (Mode::None, _) => Judgement::Free,
        (Mode::Enforce, true) => Judgement::Verify,
        (Mode::Enforce, false) => Judgement::Skip,
        (Mode::Testing, listed) => Judgement::Testing { listed },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies() {
        let ok = |mode, mx: &[&str], max_age| {
            Ok(Policy {
                mode,
                mx: mx.iter().map(|s| s.to_string()).collect(),
                max_age,
            })
        };
        let cases: &[(&str, Result<Policy, String>)] = &[
            (
                "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.Example.NET\r\nmax_age: 86400\r\n",
                ok(Mode::Enforce, &["mail.example.com", "*.example.net"], 86400),
            ),
            (
                "version: STSv1\nmode: testing\nmx: mx.example.com\nmax_age: 604800\nextension: x\n",
                ok(Mode::Testing, &["mx.example.com"], 604800),
            ),
            (
                "version: STSv1\nmode: none\nmax_age: 1\n",
                ok(Mode::None, &[], 1),
            ),
            (
                "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 99999999999\n",
                ok(Mode::Enforce, &["a.example"], MAX_AGE_LIMIT),
            ),
            (
                "mode: enforce\nmx: a.example\nmax_age: 1\n",
                Err("no version: STSv1".into()),
            ),
            (
                "version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n",
                Err("unknown mode \"strict\"".into()),
            ),
            (
                "version: STSv1\nmode: enforce\nmax_age: 1\n",
                Err("no mx".into()),
            ),
            (
                "version: STSv1\nmode: enforce\nmx: a\n",
                Err("no max_age".into()),
            ),
            (
                "version: STSv1\nmode: enforce\nmx: a\nmax_age: soon\n",
                Err("max_age \"soon\" is not a number".into()),
            ),
            ("<html>", Err("not a key: value line: \"<html>\"".into())),
        ];
        for (text, want) in cases {
            assert_eq!(&Policy::parse(text), want, "{text:?}");
        }
        let p =
            Policy::parse("version: STSv1\nmode: testing\nmx: a.example\nmax_age: 5\n").unwrap();
        assert_eq!(
            p.lines(),
            [
                "version: STSv1",
                "mode: testing",
                "mx: a.example",
                "max_age: 5"
            ]
        );
    }

    #[test]
    fn records() {
        let r = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: &[(&[&str], Option<&str>)] = &[
            (&["v=STSv1; id=20160831085700Z;"], Some("20160831085700Z")),
            (&["v=STSv1;id=abc"], Some("abc")),
            (&["v=spf1 -all", "v=STSv1; id=1"], Some("1")),
            (&["v=STSv1; id=1", "v=STSv1; id=2"], None),
            (&["v=STSv1; id=not-alnum"], None),
            (&["v=STSv1;"], None),
            (&["v=STSv10; id=1"], None),
            (&[], None),
        ];
        for (list, want) in cases {
            assert_eq!(record_id(&r(list)).as_deref(), *want, "{list:?}");
        }
    }

    #[test]
    fn mx_patterns_and_judgements() {
        // (pattern, host, matches)
        let cases = [
            ("mail.example.com", "mail.example.com", true),
            ("mail.example.com", "MAIL.Example.com.", true),
            ("mail.example.com", "mx.example.com", false),
            ("*.example.com", "mx1.example.com", true),
            ("*.example.com", "a.b.example.com", false),
            ("*.example.com", "example.com", false),
            ("*.example.com", ".example.com", false),
        ];
        for (pattern, host, want) in cases {
            assert_eq!(mx_matches(pattern, host), want, "{pattern} {host}");
        }
        let policy = |mode| Policy {
            mode,
            mx: vec!["*.example.com".into()],
            max_age: 60,
        };
        let (enforce, testing, none) = (
            policy(Mode::Enforce),
            policy(Mode::Testing),
            policy(Mode::None),
        );
        // (policy, host, judgement)
        let table = [
            (None, "mx.example.com", Judgement::Free),
            (Some(&none), "mx.example.com", Judgement::Free),
            (Some(&enforce), "mx.example.com", Judgement::Verify),
            (Some(&enforce), "mx.other.net", Judgement::Skip),
            (
                Some(&testing),
                "mx.example.com",
                Judgement::Testing { listed: true },
            ),
            (
                Some(&testing),
                "mx.other.net",
                Judgement::Testing { listed: false },
            ),
        ];
        for (p, host, want) in table {
            assert_eq!(judge(p, host), want, "{p:?} {host}");
        }
    }
}
