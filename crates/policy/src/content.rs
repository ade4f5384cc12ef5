//! The checks of a received message's content: DKIM signatures (RFC 6376), the ARC chain
//! (RFC 8617) and DMARC (RFC 7489, with the SPF result of the transaction); what the
//! configured action makes of DMARC ([`decide_dmarc`], pure); the `Authentication-Results`
//! header (RFC 8601) that records everything.
//!
//! A message larger than `verify_max_size` is not held whole in memory: the door keeps its
//! header only, DKIM and ARC are recorded `neutral`/`none` with the reason, and DMARC is
//! decided on SPF alone.

use std::net::IpAddr;

use mail_auth::dkim::DkimError;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimOutput, DkimResult, DmarcResult, Error,
    SpfOutput,
};
use relais_config::{CheckAction, DmarcAction};
use relais_dns::spf::Identity;
use relais_proto::{replies, reply::Reply};

use crate::{SenderAuth, SpfVerdict};

/// What the door kept of a received message for the checks.
#[derive(Debug, Clone, Copy)]
pub enum Received<'a> {
    /// The whole message, as received (without our trace headers).
    Whole(&'a [u8]),
    /// Only its header section: the message is larger than `verify_max_size`.
    HeaderOnly(&'a [u8]),
}

/// What happens to a message after the content checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Queue it.
    Accept,
    /// Queue it, to be filed into the recipients' `Junk` folders (DMARC `p=quarantine`).
    Quarantine,
    /// Refuse it with this reply.
    Reject(Reply),
}

/// The outcome of the content checks.
#[derive(Debug, Clone)]
pub struct ContentVerdict {
    /// `Authentication-Results: authserv-id; spf=…; dkim=…; …`, one line, no CRLF.
    pub header: String,
    /// What to do with the message.
    pub action: Action,
}

impl ContentVerdict {
    /// The results, for the log: the header's value after the authserv-id.
    pub fn summary(&self) -> &str {
        self.header
            .split_once("; ")
            .map_or("none", |(_, results)| results)
    }
}

/// What DMARC asks to do with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmarcDecision {
    /// Nothing to do.
    Accept,
    /// File into Junk.
    Quarantine,
    /// Refuse.
    Reject,
}

/// What the configured action makes of a DMARC evaluation: only a message that fails DMARC
/// (no aligned SPF or DKIM pass) under `enforce` is quarantined or refused, as its domain's
/// policy says. A DNS error never refuses.
pub fn decide_dmarc(action: DmarcAction, failed: bool, policy: Policy) -> DmarcDecision {
    if action != DmarcAction::Enforce || !failed {
        return DmarcDecision::Accept;
    }
    match policy {
        Policy::Reject => DmarcDecision::Reject,
        Policy::Quarantine => DmarcDecision::Quarantine,
        Policy::None | Policy::Unspecified => DmarcDecision::Accept,
    }
}

/// A body that does not match its signature's body hash is `fail` (RFC 6376 §6.1.3: the
/// verification failed), where mail-auth says `neutral`.
fn body_hash_fails<'x>(
    message: &'x AuthenticatedMessage<'x>,
    output: DkimOutput<'x>,
) -> DkimOutput<'x> {
    let body_hash = Error::Dkim(DkimError::FailedBodyHashMatch);
    if output.result() != &DkimResult::Neutral(body_hash.clone()) {
        return output;
    }
    // The signature, borrowed from the message for as long as the message (the output's own
    // reference is only lent for as long as the output).
    let signature = output.signature().and_then(|s| {
        message
            .dkim_headers
            .iter()
            .map(|h| &h.header)
            .find(|h| std::ptr::eq(*h, s))
    });
    match signature {
        Some(signature) => DkimOutput::fail(body_hash).with_signature(signature),
        None => output,
    }
}

/// The `; method=result …` parts mail-auth's builder made (it writes the authserv-id first;
/// it is also in the comments it writes, which is why it is given).
fn part(results: AuthenticationResults<'_>, authserv_id: &str) -> String {
    let all = results.to_string();
    all.strip_prefix(authserv_id).unwrap_or(&all).to_string()
}

impl SenderAuth {
    /// Checks a received message: `None` when no check is on (then no header is added).
    pub async fn check_content(
        &self,
        received: Received<'_>,
        ip: IpAddr,
        spf: Option<&SpfVerdict>,
    ) -> Option<ContentVerdict> {
        let s = &self.settings;
        let recorded_spf = spf.filter(|v| v.recorded);
        if !s.checks_content() && recorded_spf.is_none() {
            return None;
        }
        let (raw, whole) = match received {
            Received::Whole(m) => (m, true),
            Received::HeaderOnly(h) => (h, false),
        };
        let message = AuthenticatedMessage::parse(raw);
        let mut parts = String::new();
        let id = s.authserv_id.as_str();
        let new = || AuthenticationResults::new(id);

        if let Some(v) = recorded_spf {
            parts += &part(
                match v.identity {
                    Identity::MailFrom => {
                        new().with_spf_mailfrom_result(&v.output(), ip, &v.sender, &v.helo)
                    }
                    Identity::Helo => new().with_spf_ehlo_result(&v.output(), ip, &v.helo),
                },
                id,
            );
        }

        let too_large = "reason=\"message too large to verify\"";
        let wants_dkim = s.dkim != CheckAction::Off || s.dmarc != DmarcAction::Off;
        let dkim = match &message {
            Some(m) if whole && wants_dkim => self
                .resolver
                .authenticator()
                .verify_dkim(m)
                .await
                .into_iter()
                .map(|o| body_hash_fails(m, o))
                .collect(),
            _ => Vec::new(),
        };
        let from = message.as_ref().map(|m| m.from()).unwrap_or("");
        if s.dkim != CheckAction::Off {
            if !whole {
                parts += &format!("; dkim=neutral {too_large}");
            } else if dkim.is_empty() {
                parts += "; dkim=none";
            } else {
                parts += &part(new().with_dkim_results(&dkim, from), id);
            }
        }

        if s.arc != CheckAction::Off {
            match &message {
                Some(m) if whole => {
                    let arc = self.resolver.authenticator().verify_arc(m).await;
                    parts += &part(new().with_arc_result(&arc, ip), id);
                }
                _ if !whole => parts += &format!("; arc=none {too_large}"),
                _ => parts += "; arc=none",
            }
        }

        let mut action = Action::Accept;
        if s.dmarc != DmarcAction::Off {
            match &message {
                Some(m) => {
                    let none = SpfOutput::default();
                    let (spf_output, mail_from_domain) = match spf {
                        Some(v) => (v.output(), v.domain.as_str()),
                        None => (none, ""),
                    };
                    let dmarc = self
                        .resolver
                        .authenticator()
                        .verify_dmarc(DmarcParameters::new(
                            m,
                            &dkim,
                            mail_from_domain,
                            &spf_output,
                        ))
                        .await;
                    if dmarc.domain().is_empty() {
                        // No single author domain (none, or several: RFC 7489 §6.6.1).
                        parts += "; dmarc=none";
                    } else {
                        parts += &part(new().with_dmarc_result(&dmarc), id);
                    }
                    let failed = matches!(dmarc.result(), DmarcResult::Fail(_));
                    action = match decide_dmarc(s.dmarc, failed, dmarc.policy()) {
                        DmarcDecision::Accept => Action::Accept,
                        DmarcDecision::Quarantine => Action::Quarantine,
                        DmarcDecision::Reject => {
                            Action::Reject(replies::dmarc_reject(dmarc.domain()))
                        }
                    };
                }
                None => parts += "; dmarc=none",
            }
        }

        if parts.is_empty() {
            parts = "; none".into();
        }
        let value = format!("{}{parts}", s.authserv_id);
        // One line: the spool keeps it so (mail-auth folds after each `;`).
        let value = value.replace("\r\n\t", " ").replace(['\r', '\n'], "");
        Some(ContentVerdict {
            header: format!("Authentication-Results: {value}"),
            action,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dmarc_actions() {
        use DmarcAction::*;
        use DmarcDecision as D;
        let table: &[(DmarcAction, bool, Policy, DmarcDecision)] = &[
            (Off, true, Policy::Reject, D::Accept),
            (Tag, true, Policy::Reject, D::Accept),
            (Tag, true, Policy::Quarantine, D::Accept),
            (Enforce, false, Policy::Reject, D::Accept),
            (Enforce, true, Policy::Reject, D::Reject),
            (Enforce, true, Policy::Quarantine, D::Quarantine),
            (Enforce, true, Policy::None, D::Accept),
            (Enforce, true, Policy::Unspecified, D::Accept),
            (Enforce, false, Policy::Quarantine, D::Accept),
        ];
        for &(action, failed, policy, expected) in table {
            assert_eq!(
                decide_dmarc(action, failed, policy),
                expected,
                "{action:?} failed={failed} {policy:?}"
            );
        }
    }
}
