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
    ArcOutput, AuthenticatedMessage, AuthenticationResults, DkimOutput, DkimResult, DmarcResult,
    Error, SpfOutput,
};
use relais_config::{CheckAction, DmarcAction};
use relais_dns::spf::Identity;
use relais_proto::{replies, reply::Reply};

use crate::{Sealing, SenderAuth, SpfVerdict};

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
    /// The header fields to put in front of the message, one line each, no CRLF: an ARC set
    /// when one was sealed, then `Authentication-Results: authserv-id; spf=…; dkim=…; …`.
    pub headers: Vec<String>,
    /// What to do with the message.
    pub action: Action,
    /// The domain of the ARC set sealed, or why none could be.
    pub sealed: Option<Result<String, String>>,
}

impl ContentVerdict {
    /// The results, for the log: the `Authentication-Results` value after the authserv-id.
    pub fn summary(&self) -> &str {
        self.headers
            .last()
            .and_then(|h| h.split_once("; "))
            .map_or("none", |(_, results)| results)
    }
}

/// The reason of a check not made on a message over `verify_max_size`.
const TOO_LARGE: &str = "reason=\"message too large to verify\"";

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

/// The results of the checks as they are made: the text of our header, and the same results
/// in mail-auth's form for an ARC seal (which takes them whole).
struct Results<'a> {
    id: &'a str,
    /// `; method=result …` parts of the header.
    parts: String,
    /// Everything mail-auth's builders made (not the parts written by hand).
    full: AuthenticationResults<'a>,
}

impl<'a> Results<'a> {
    fn new(id: &'a str) -> Results<'a> {
        Results {
            id,
            parts: String::new(),
            full: AuthenticationResults::new(id),
        }
    }

    /// A result made by one of mail-auth's builders.
    fn add(&mut self, f: impl Fn(AuthenticationResults<'a>) -> AuthenticationResults<'a>) {
        self.parts += &part(f(AuthenticationResults::new(self.id)), self.id);
        self.full = f(self.full.clone());
    }

    /// A result written by hand (`; dkim=none`).
    fn manual(&mut self, text: &str) {
        self.parts += text;
    }

    /// The header, one line (the spool keeps it so; mail-auth folds after each `;`).
    fn header(&self) -> String {
        let parts = if self.parts.is_empty() {
            "; none"
        } else {
            &self.parts
        };
        crate::one_field(&format!("Authentication-Results: {}{parts}", self.id))
    }
}

/// What the content checks need besides the message.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The client's address.
    pub ip: IpAddr,
    /// The SPF check at MAIL FROM, when one was made.
    pub spf: Option<&'a SpfVerdict>,
    /// The key to seal an ARC set with, when the message is forwarded off the machine.
    pub seal: Option<&'a Sealing>,
}

impl SenderAuth {
    /// Checks a received message: `None` when no check is on and nothing is to be sealed
    /// (then no header is added).
    pub async fn check_content(
        &self,
        received: Received<'_>,
        cx: Context<'_>,
    ) -> Option<ContentVerdict> {
        let s = &self.settings;
        let recorded_spf = cx.spf.filter(|v| v.recorded);
        if !s.checks_content() && recorded_spf.is_none() && cx.seal.is_none() {
            return None;
        }
        let (raw, whole) = match received {
            Received::Whole(m) => (m, true),
            Received::HeaderOnly(h) => (h, false),
        };
        let message = AuthenticatedMessage::parse(raw);
        let mut results = Results::new(&s.authserv_id);
        let ip = cx.ip;
        if let Some(v) = recorded_spf {
            let output = v.output();
            results.add(|r| match v.identity {
                Identity::MailFrom => r.with_spf_mailfrom_result(&output, ip, &v.sender, &v.helo),
                Identity::Helo => r.with_spf_ehlo_result(&output, ip, &v.helo),
            });
        }
        let whole_message = message.as_ref().filter(|_| whole);
        let dkim = self.dkim(whole_message, &mut results, whole).await;
        let arc = self.arc(whole_message, &mut results, whole, cx).await;
        let action = match &message {
            Some(m) if s.dmarc != DmarcAction::Off => {
                self.dmarc(m, &dkim, cx.spf, &mut results).await
            }
            None if s.dmarc != DmarcAction::Off => {
                results.manual("; dmarc=none");
                Action::Accept
            }
            _ => Action::Accept,
        };
        let mut headers = Vec::new();
        let mut sealed = None;
        if let (Some(sealing), Some(m), Some(chain)) = (cx.seal, whole_message, &arc) {
            match sealing.seal(m, &results.full, chain) {
                Ok(set) => {
                    headers = set;
                    sealed = Some(Ok(sealing.name().0.to_string()));
                }
                Err(e) => sealed = Some(Err(e)),
            }
        }
        headers.push(results.header());
        Some(ContentVerdict {
            headers,
            action,
            sealed,
        })
    }

    /// DKIM signatures, verified when DKIM or DMARC is on (and the message is whole).
    async fn dkim<'m>(
        &self,
        message: Option<&'m AuthenticatedMessage<'m>>,
        results: &mut Results<'_>,
        whole: bool,
    ) -> Vec<DkimOutput<'m>> {
        let s = &self.settings;
        let wants = s.dkim != CheckAction::Off || s.dmarc != DmarcAction::Off;
        let dkim: Vec<DkimOutput<'m>> = match message {
            Some(m) if wants => self
                .resolver
                .authenticator()
                .verify_dkim(m)
                .await
                .into_iter()
                .map(|o| body_hash_fails(m, o))
                .collect(),
            _ => Vec::new(),
        };
        if s.dkim != CheckAction::Off {
            if !whole {
                results.manual(&format!("; dkim=neutral {TOO_LARGE}"));
            } else if dkim.is_empty() {
                results.manual("; dkim=none");
            } else {
                let from = message.map(|m| m.from()).unwrap_or("");
                results.add(|r| r.with_dkim_results(&dkim, from));
            }
        }
        dkim
    }

    /// The ARC chain, verified when ARC is on or a set is to be sealed.
    async fn arc<'m>(
        &self,
        message: Option<&'m AuthenticatedMessage<'m>>,
        results: &mut Results<'_>,
        whole: bool,
        cx: Context<'_>,
    ) -> Option<ArcOutput<'m>> {
        let on = self.settings.arc != CheckAction::Off;
        let chain = match message {
            Some(m) if on || cx.seal.is_some() => {
                Some(self.resolver.authenticator().verify_arc(m).await)
            }
            _ => None,
        };
        if on {
            match &chain {
                Some(c) => results.add(|r| r.with_arc_result(c, cx.ip)),
                None if !whole => results.manual(&format!("; arc=none {TOO_LARGE}")),
                None => results.manual("; arc=none"),
            }
        }
        chain
    }

    /// DMARC of the `From:` domain, and what the configured action makes of it.
    async fn dmarc(
        &self,
        m: &AuthenticatedMessage<'_>,
        dkim: &[DkimOutput<'_>],
        spf: Option<&SpfVerdict>,
        results: &mut Results<'_>,
    ) -> Action {
        let (spf_output, mail_from_domain) = match spf {
            Some(v) => (v.output(), v.domain.as_str()),
            None => (SpfOutput::default(), ""),
        };
        let dmarc = self
            .resolver
            .authenticator()
            .verify_dmarc(DmarcParameters::new(m, dkim, mail_from_domain, &spf_output))
            .await;
        if dmarc.domain().is_empty() {
            // No single author domain (none, or several: RFC 7489 §6.6.1).
            results.manual("; dmarc=none");
        } else {
            results.add(|r| r.with_dmarc_result(&dmarc));
        }
        let failed = matches!(dmarc.result(), DmarcResult::Fail(_));
        match decide_dmarc(self.settings.dmarc, failed, dmarc.policy()) {
            DmarcDecision::Accept => Action::Accept,
            DmarcDecision::Quarantine => Action::Quarantine,
            DmarcDecision::Reject => Action::Reject(replies::dmarc_reject(dmarc.domain())),
        }
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
