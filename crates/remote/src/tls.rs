//! The outbound TLS policy, as pure decisions tested as tables: which mode applies to a
//! delivery, what a host's TLSA records make of `dane`, what to do after EHLO, and what a
//! failed handshake means.

use std::collections::HashMap;

use relais_client::Tlsa;
use relais_config::TlsMode;
use relais_dns::{Outcome, TlsaRecord};

/// The TLS settings of remote delivery.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// Where nothing more precise applies.
    pub default: TlsMode,
    /// By destination domain (lower case) or next hop (`[host]:port`, host lower case).
    pub policy: HashMap<String, TlsMode>,
}

impl TlsSettings {
    /// The mode of a delivery to `domain` through the next hop `hop` (`None`: by MX): the
    /// hop's entry, else the domain's, else the default; a hop given credentials needs at
    /// least `encrypt` (they go over TLS only, so a clear-text fallback could not use them).
    pub fn mode(&self, domain: &str, hop: Option<&str>, has_credentials: bool) -> TlsMode {
        let chosen = hop
            .and_then(|h| self.policy.get(h))
            .or_else(|| self.policy.get(domain))
            .copied()
            .unwrap_or(self.default);
        match chosen {
            TlsMode::None | TlsMode::May if has_credentials => TlsMode::Encrypt,
            m => m,
        }
    }
}

/// What to do once the server's EHLO is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterEhlo {
    /// Send STARTTLS.
    StartTls,
    /// Go on in clear text.
    Clear,
    /// Give up on this host: TLS is required and not offered.
    Defer(&'static str),
}

/// After EHLO, in `mode`, the server offering STARTTLS or not.
pub fn after_ehlo(mode: TlsMode, offered: bool) -> AfterEhlo {
    match (mode, offered) {
        (TlsMode::None, _) => AfterEhlo::Clear,
        (_, true) => AfterEhlo::StartTls,
        (TlsMode::May, false) => AfterEhlo::Clear,
        // `dane` is settled before EHLO (see `dane_step`); unsettled, it is `may`.
        (TlsMode::Dane, false) => AfterEhlo::Clear,
        (TlsMode::Encrypt | TlsMode::Verify, false) => {
            AfterEhlo::Defer("TLS is required, but was not offered")
        }
    }
}

/// What `dane` means for one host, from its TLSA lookup (RFC 7672 §2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaneStep {
    /// Validated records: TLS required, the certificate matched against the usable ones
    /// (none usable: TLS required, any certificate).
    Require(Vec<Tlsa>),
    /// No validated records (none, or an unsigned zone): as `may`.
    Opportunistic,
    /// The lookup failed (a bogus signature, a server failure): try later.
    Defer(String),
}

/// How the TLSA `lookup` of a host (validated when `secure`) settles `dane`.
pub fn dane_step(lookup: &Outcome<TlsaRecord>, secure: bool) -> DaneStep {
    match lookup {
        Outcome::Found(records) if secure => DaneStep::Require(
            records
                .iter()
                .filter(|r| matches!(r.usage, 2 | 3) && r.selector <= 1 && r.matching <= 2)
                .map(|r| Tlsa {
                    usage: r.usage,
                    selector: r.selector,
                    matching: r.matching,
                    data: r.data.clone(),
                })
                .collect(),
        ),
        Outcome::Found(_) | Outcome::NoData | Outcome::NxDomain => DaneStep::Opportunistic,
        Outcome::Failed(f) => DaneStep::Defer(format!("TLSA lookup failed: {f}")),
    }
}

/// What a failed TLS handshake (or a refused STARTTLS) means in `mode`: `true` to connect
/// again and go on in clear text (only `may`), `false` to defer.
pub fn fall_back_to_clear(mode: TlsMode) -> bool {
    mode == TlsMode::May
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        let s = TlsSettings {
            default: TlsMode::May,
            policy: [
                ("bank.example".to_string(), TlsMode::Verify),
                ("[smtp.example.net]:587".to_string(), TlsMode::Encrypt),
                ("old.example".to_string(), TlsMode::None),
            ]
            .into(),
        };
        // (domain, hop, credentials, mode)
        let table = [
            ("other.example", None, false, TlsMode::May),
            ("bank.example", None, false, TlsMode::Verify),
            ("old.example", None, false, TlsMode::None),
            ("old.example", None, true, TlsMode::Encrypt),
            (
                "bank.example",
                Some("[smtp.example.net]:587"),
                false,
                TlsMode::Encrypt,
            ),
            (
                "bank.example",
                Some("[other.net]:25"),
                false,
                TlsMode::Verify,
            ),
            (
                "other.example",
                Some("[other.net]:25"),
                true,
                TlsMode::Encrypt,
            ),
        ];
        for (domain, hop, creds, want) in table {
            assert_eq!(s.mode(domain, hop, creds), want, "{domain} {hop:?} {creds}");
        }
    }

    #[test]
    fn dane_steps() {
        let r = |usage, selector, matching| TlsaRecord {
            usage,
            selector,
            matching,
            data: vec![1, 2],
        };
        let t = |usage, selector, matching| Tlsa {
            usage,
            selector,
            matching,
            data: vec![1, 2],
        };
        let found = |v: Vec<TlsaRecord>| Outcome::Found(v);
        // (lookup, secure, step)
        let table = [
            (
                found(vec![r(3, 1, 1), r(2, 0, 1)]),
                true,
                DaneStep::Require(vec![t(3, 1, 1), t(2, 0, 1)]),
            ),
            // PKIX usages and unknown types are unusable: TLS still required.
            (
                found(vec![r(1, 1, 1), r(3, 2, 1), r(3, 1, 9), r(3, 1, 2)]),
                true,
                DaneStep::Require(vec![t(3, 1, 2)]),
            ),
            (found(vec![r(0, 0, 1)]), true, DaneStep::Require(vec![])),
            (found(vec![r(3, 1, 1)]), false, DaneStep::Opportunistic),
            (Outcome::NoData, true, DaneStep::Opportunistic),
            (Outcome::NxDomain, false, DaneStep::Opportunistic),
            (
                Outcome::Failed(relais_dns::Failure::Timeout),
                false,
                DaneStep::Defer("TLSA lookup failed: timed out".into()),
            ),
        ];
        for (lookup, secure, want) in table {
            assert_eq!(dane_step(&lookup, secure), want, "{lookup:?} {secure}");
        }
    }

    #[test]
    fn steps() {
        use AfterEhlo::*;
        // (mode, STARTTLS offered, after EHLO, falls back after a failed handshake)
        let table = [
            (TlsMode::None, true, Clear, false),
            (TlsMode::None, false, Clear, false),
            (TlsMode::May, true, StartTls, true),
            (TlsMode::May, false, Clear, true),
            (TlsMode::Encrypt, true, StartTls, false),
            (
                TlsMode::Encrypt,
                false,
                Defer("TLS is required, but was not offered"),
                false,
            ),
            (TlsMode::Verify, true, StartTls, false),
            (
                TlsMode::Verify,
                false,
                Defer("TLS is required, but was not offered"),
                false,
            ),
        ];
        for (mode, offered, want, fallback) in table {
            assert_eq!(after_ehlo(mode, offered), want, "{mode} {offered}");
            assert_eq!(fall_back_to_clear(mode), fallback, "{mode}");
        }
    }
}
