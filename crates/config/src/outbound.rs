//! How remote delivery talks to the next hop: the TLS policy (`[delivery] tls`, `tls_policy`,
//! `tls_ca_file`) and per-hop settings (`[delivery.hop."[host]:port"]`: credentials for a
//! smarthost, TLS from the first byte on port 465), Postfix's `smtp_tls_security_level`,
//! `smtp_tls_policy_maps`, `smtp_sasl_password_maps` and `smtp_tls_wrappermode`.
//!
//! ```toml
//! [delivery]
//! relayhost = "[smtp.provider.example]:465"
//! tls = "may"                                  # none | may | encrypt | verify
//! tls_policy = { "bank.example" = "verify", "[smtp.provider.example]:465" = "verify" }
//! [delivery.hop."[smtp.provider.example]:465"]
//! user = "me@provider.example"
//! password_file = "/etc/relais/provider.password"   # its first line
//! tls_on_connect = true
//! ```

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::NextHop;

/// How much TLS a delivery needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Never STARTTLS.
    None,
    /// STARTTLS when offered, any certificate; a failed handshake is tried again in clear
    /// text (opportunistic, RFC 7435).
    #[default]
    May,
    /// TLS required, any certificate: no STARTTLS or a failed handshake defers.
    Encrypt,
    /// TLS required with a certificate valid for the host's name (the next hop's or the MX
    /// host's), from the system's roots or `tls_ca_file`.
    Verify,
    /// DANE (RFC 7672): when the host has DNSSEC-validated TLSA records, TLS required and the
    /// certificate matched against them (DANE-EE, DANE-TA); without them, as `may`.
    Dane,
}

impl std::fmt::Display for TlsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsMode::None => "none",
            TlsMode::May => "may",
            TlsMode::Encrypt => "encrypt",
            TlsMode::Verify => "verify",
            TlsMode::Dane => "dane",
        })
    }
}

/// `[delivery.mta_sts]`: MTA-STS (RFC 8461) for mail delivered by MX to a domain that has no
/// `tls_policy` entry of its own.
///
/// ```toml
/// [delivery]
/// tls_match = { "bank.example" = ["mx.provider.example"] }  # names `verify` accepts
/// tls_rpt_dir = "/var/lib/relais/tls-rpt"                  # daily TLS-RPT reports
/// [delivery.mta_sts]
/// enabled = true
/// ```
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MtaStsConfig {
    /// Fetch, cache and apply the policies (`enforce`: `verify` to listed MX hosts only;
    /// `testing`: logged and reported). Off by default.
    pub enabled: bool,
    /// The HTTPS port of the `mta-sts.DOMAIN` policy hosts: 443 (tests serve elsewhere).
    pub https_port: u16,
}

impl Default for MtaStsConfig {
    fn default() -> Self {
        MtaStsConfig {
            enabled: false,
            https_port: 443,
        }
    }
}

/// Settings of one next hop, `[delivery.hop."[host]:port"]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HopConfig {
    /// The AUTH user name; with `password_file`, relais authenticates (PLAIN or LOGIN, over
    /// TLS only).
    pub user: String,
    /// A file whose first line is the password (kept out of the configuration file).
    pub password_file: Option<PathBuf>,
    /// TLS from the first byte (port 465, RFC 8314) instead of STARTTLS.
    pub tls_on_connect: bool,
}

/// The canonical key of a next hop (`[host]:port`, host in lower case), `None` when `key` is
/// not one.
pub fn hop_key(key: &str) -> Option<String> {
    NextHop::parse(key).map(|h| {
        NextHop {
            host: h.host.to_ascii_lowercase(),
            port: h.port,
        }
        .to_string()
    })
}

/// What is wrong with the `[delivery.hop]` table or `tls_policy`: (key, message), or `None`.
pub(crate) fn problem(
    hops: &std::collections::BTreeMap<String, HopConfig>,
    policy: &std::collections::BTreeMap<String, TlsMode>,
) -> Option<(&'static str, String)> {
    for (k, h) in hops {
        if hop_key(k).is_none() {
            return Some(("hop", format!("{k:?} is not like [host]:port")));
        }
        if h.user.is_empty() != h.password_file.is_none() {
            return Some((
                "password_file",
                format!("[delivery.hop.{k:?}]: `user` and `password_file` go together"),
            ));
        }
    }
    for k in policy.keys() {
        let ok = if k.starts_with('[') {
            hop_key(k).is_some()
        } else {
            relais_proto::address::is_domain(k)
        };
        if !ok {
            return Some((
                "tls_policy",
                format!("{k:?} is neither a domain nor a [host]:port"),
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    #[test]
    fn hops_and_tls_policy() {
        let c = Config::parse(
            "[delivery]\nrelayhost = \"[smtp.example.net]:465\"\ntls = \"encrypt\"\n\
             tls_policy = { \"Bank.example\" = \"verify\", \"[MX.example.org]:25\" = \"none\" }\n\
             [delivery.hop.\"[SMTP.example.net]:465\"]\nuser = \"me\"\n\
             password_file = \"/etc/relais/pw\"\ntls_on_connect = true\n",
        )
        .unwrap();
        assert_eq!(c.delivery.tls, TlsMode::Encrypt);
        assert_eq!(c.delivery.tls_policy["bank.example"], TlsMode::Verify);
        assert_eq!(c.delivery.tls_policy["[mx.example.org]:25"], TlsMode::None);
        let h = &c.delivery.hop["[smtp.example.net]:465"];
        assert_eq!(h.user, "me");
        assert!(h.tls_on_connect);
        let again = Config::parse(&c.to_toml()).unwrap();
        assert_eq!(again.delivery.hop.len(), 1);
        assert_eq!(Config::parse("").unwrap().delivery.tls, TlsMode::May);
        assert_eq!(
            hop_key("smtp.EXAMPLE.net").as_deref(),
            Some("[smtp.example.net]:25")
        );
    }

    #[test]
    fn errors_name_the_key_and_the_line() {
        let cases: &[(&str, &[&str])] = &[
            ("[delivery]\ntls = \"strict\"\n", &["line 2", "tls"]),
            (
                "[delivery]\ntls_policy = { \"a b\" = \"may\" }\n",
                &["line 2", "tls_policy"],
            ),
            (
                "[delivery.hop.\"[h]:x\"]\nuser = \"me\"\n",
                &["hop", "not like [host]:port"],
            ),
            (
                "[delivery.hop.\"[h]:587\"]\nuser = \"me\"\n",
                &["password_file", "go together"],
            ),
            (
                "[delivery.hop.\"[h]:587\"]\npasword_file = \"x\"\n",
                &["line 2", "pasword_file"],
            ),
        ];
        for (text, needles) in cases {
            let e = Config::parse(text).expect_err(text).to_string();
            for n in *needles {
                assert!(e.contains(n), "{text:?}: {e}");
            }
        }
    }
}
