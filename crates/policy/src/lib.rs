//! `relais-policy`: sender authentication at the SMTP door: SPF of the sender at MAIL FROM;
//! DKIM, ARC and DMARC of the message at the end of its content; the verdict and the headers
//! that record it (`Received-SPF`, `Authentication-Results`).
//!
//! Floor 3 of the flow of a message, beside routing: the door (`relais-smtpd`) asks
//! [`SenderAuth`] at MAIL FROM and at the end of DATA, and carries out the answer. The
//! lookups go through `relais-dns` (the SPF evaluator with its trace, the same resolver for
//! mail-auth's DKIM, ARC and DMARC verifiers); what a result means for the message is decided
//! by pure functions of the result and the configured action ([`spf::decide`],
//! [`content::decide_dmarc`]), tested as tables.
//!
//! Each check is `off` unless `[policy]` turns it on, so the embedded default asks no DNS.

pub mod client;
pub mod content;
pub mod filter;
pub mod greylist;
pub mod keygen;
pub mod limits;
pub mod milter;
pub mod sign;
pub mod spf;

use std::net::IpAddr;

use relais_config::{Config, PolicyConfig, SpfAction};
use relais_dns::{Resolver, ResolverOptions};
use relais_proto::ReversePath;

pub use client::{Screening, decide_client, decide_helo};
pub use content::{Action, ContentVerdict, Context, Received};
pub use filter::HeaderFilter;
pub use sign::{Outgoing, Prepared, Sealing, Signers, prepare_local};
pub use spf::SpfVerdict;

/// The sender checks of the door, with their settings and resolver.
#[derive(Debug, Clone)]
pub struct SenderAuth {
    /// `[policy]`.
    settings: PolicyConfig,
    /// The resolver of every check.
    resolver: Resolver,
    /// Our host name, in `Received-SPF`.
    hostname: String,
}

impl SenderAuth {
    /// The checks `config` asks for, on the server's resolver (the top-level `resolver`).
    pub fn new(config: &Config) -> Result<SenderAuth, String> {
        let resolver = Resolver::new(&ResolverOptions {
            nameserver: config.nameserver(),
            ..Default::default()
        })
        .map_err(|e| format!("DNS resolver: {e}"))?;
        Ok(SenderAuth::with_resolver(config, resolver))
    }

    /// The checks `config` asks for, on `resolver`.
    pub fn with_resolver(config: &Config, resolver: Resolver) -> SenderAuth {
        SenderAuth {
            settings: config.policy.clone(),
            resolver,
            hostname: config.hostname.clone(),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &PolicyConfig {
        &self.settings
    }

    /// True when SPF is evaluated at MAIL FROM: asked for itself, or needed by DMARC.
    pub fn checks_spf(&self) -> bool {
        self.settings.spf != SpfAction::Off || self.settings.dmarc != Default::default()
    }

    /// SPF of the sender (of the HELO name for the null sender), with the verdict of the
    /// configured action; `None` when SPF is not evaluated at all.
    pub async fn check_spf(
        &self,
        ip: IpAddr,
        helo: &str,
        from: &ReversePath,
    ) -> Option<SpfVerdict> {
        if !self.checks_spf() {
            return None;
        }
        Some(spf::check(self, ip, helo, from).await)
    }
}

/// Header fields as mail-auth writes them (folded, CRLF-ended) as one line each, without
/// CRLF: the spool keeps the headers it adds so. Safe with relaxed canonicalization, which
/// unfolds anyway.
pub(crate) fn fields(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        match out.last_mut() {
            Some(last) if line.starts_with([' ', '\t']) => {
                last.push(' ');
                last.push_str(line.trim_start());
            }
            _ => out.push(line.to_string()),
        }
    }
    out
}

/// One header field on one line (see [`fields`]).
pub(crate) fn one_field(text: &str) -> String {
    fields(text).concat()
}
