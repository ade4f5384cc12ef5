//! The outbound TLS policy, as pure decisions tested as tables: which mode applies to a
//! delivery, what to do after EHLO, and what a failed handshake means.

use std::collections::HashMap;

use relais_config::TlsMode;

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
        (TlsMode::Encrypt | TlsMode::Verify, false) => {
            AfterEhlo::Defer("TLS is required, but was not offered")
        }
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
