//! SPF at MAIL FROM (RFC 7208): the evaluation (relais-dns), what the configured action makes
//! of its result ([`decide`], pure), the reply of a refusal and the `Received-SPF` header.

use std::net::IpAddr;

use mail_auth::common::headers::HeaderWriter;
use relais_config::SpfAction;
use relais_dns::spf::{Identity, SpfQuery, SpfResult};
use relais_proto::{ReversePath, replies, reply::Reply};

use crate::SenderAuth;

/// Why SPF refuses a sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `fail`, or `softfail` when configured: `550 5.7.23`.
    NotAuthorized,
    /// `temperror`: `451 4.7.24`.
    Temporary,
    /// `permerror`: `550 5.7.24`.
    BrokenRecord,
}

/// What the configured action makes of an SPF result: `None` to accept (and record).
pub fn decide(action: SpfAction, softfail_reject: bool, result: SpfResult) -> Option<Refusal> {
    if action != SpfAction::Reject {
        return None;
    }
    match result {
        SpfResult::Fail => Some(Refusal::NotAuthorized),
        SpfResult::SoftFail if softfail_reject => Some(Refusal::NotAuthorized),
        SpfResult::TempError => Some(Refusal::Temporary),
        SpfResult::PermError => Some(Refusal::BrokenRecord),
        _ => None,
    }
}

/// The SPF check of one transaction.
#[derive(Debug, Clone)]
pub struct SpfVerdict {
    /// The result.
    pub result: SpfResult,
    /// The identity checked: MAIL FROM, or HELO for the null sender.
    pub identity: Identity,
    /// The domain whose record was evaluated.
    pub domain: String,
    /// The MAIL FROM address (empty for the null sender).
    pub sender: String,
    /// The HELO name.
    pub helo: String,
    /// The client's address.
    pub ip: IpAddr,
    /// The domain's explanation of a `fail`.
    pub explanation: Option<String>,
    /// The term that decided, as written (`-all`, `ip4:192.0.2.0/24`), for the log.
    pub matched: Option<String>,
    /// The refusal, when the action refuses this result.
    pub reply: Option<Reply>,
    /// `[policy] spf` is on: the result goes in a `Received-SPF` header (with SPF off and
    /// DMARC on, SPF is evaluated for DMARC only).
    pub recorded: bool,
}

impl SpfVerdict {
    /// The `Received-SPF:` header (RFC 7208 §9.1), CRLF-terminated, to go above our
    /// `Received:`.
    pub fn received_spf(&self, hostname: &str) -> String {
        mail_auth::ReceivedSpf::new(&self.output(), self.ip, &self.helo, &self.sender, hostname)
            .to_header()
    }

    /// The result as mail-auth's type, for DMARC and `Authentication-Results`.
    pub fn output(&self) -> mail_auth::SpfOutput {
        let result = match self.result {
            SpfResult::Pass => mail_auth::SpfResult::Pass,
            SpfResult::Fail => mail_auth::SpfResult::Fail,
            SpfResult::SoftFail => mail_auth::SpfResult::SoftFail,
            SpfResult::Neutral => mail_auth::SpfResult::Neutral,
            SpfResult::None => mail_auth::SpfResult::None,
            SpfResult::PermError => mail_auth::SpfResult::PermError,
            SpfResult::TempError => mail_auth::SpfResult::TempError,
        };
        let mut output = mail_auth::SpfOutput::new(self.domain.clone()).with_result(result);
        if let Some(e) = &self.explanation {
            output = output.with_explanation(e.clone());
        }
        output
    }

    /// One line for the log: `spf=fail (example.org, -all)`.
    pub fn summary(&self) -> String {
        let via = self
            .matched
            .as_deref()
            .map(|t| format!(", {t}"))
            .unwrap_or_default();
        let identity = match self.identity {
            Identity::MailFrom => "mailfrom",
            Identity::Helo => "helo",
        };
        format!(
            "spf={} ({identity} {}{via})",
            self.result.as_str(),
            self.domain
        )
    }
}

/// Evaluates SPF for a transaction and applies the configured action.
pub(crate) async fn check(
    auth: &SenderAuth,
    ip: IpAddr,
    helo: &str,
    from: &ReversePath,
) -> SpfVerdict {
    let (query, sender) = match from.mailbox() {
        Some(m) => {
            let sender = m.to_string();
            (SpfQuery::mail_from(ip, &sender, helo), sender)
        }
        None => (SpfQuery::helo(ip, helo), String::new()),
    };
    let mut query = query;
    query.receiver = auth.hostname.clone();
    let check = auth.resolver.spf_check(&query).await;
    let settings = &auth.settings;
    let domain = query.domain().to_string();
    let shown = if sender.is_empty() { "" } else { &sender };
    let reply = decide(settings.spf, settings.softfail_reject, check.result).map(|r| match r {
        Refusal::NotAuthorized => replies::spf_fail(
            shown,
            check.result.as_str(),
            &domain,
            ip,
            check.explanation.as_deref(),
        ),
        Refusal::Temporary => replies::spf_temperror(shown, &domain),
        Refusal::BrokenRecord => {
            let detail = check
                .trace
                .iter()
                .rev()
                .find_map(|s| s.outcome.strip_prefix("permerror: "))
                .unwrap_or("");
            replies::spf_permerror(shown, &domain, detail)
        }
    });
    SpfVerdict {
        result: check.result,
        identity: query.identity,
        domain,
        sender,
        helo: helo.to_string(),
        ip,
        explanation: check.explanation.clone(),
        matched: check.matched.map(|m| m.term),
        reply,
        recorded: settings.spf != SpfAction::Off,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions() {
        use Refusal::*;
        use SpfAction::*;
        use SpfResult as R;
        let table: &[(SpfAction, bool, SpfResult, Option<Refusal>)] = &[
            (Off, false, R::Fail, None),
            (Off, true, R::TempError, None),
            (Tag, false, R::Fail, None),
            (Tag, true, R::SoftFail, None),
            (Tag, false, R::PermError, None),
            (Reject, false, R::Pass, None),
            (Reject, false, R::Neutral, None),
            (Reject, false, R::None, None),
            (Reject, false, R::Fail, Some(NotAuthorized)),
            (Reject, false, R::SoftFail, None),
            (Reject, true, R::SoftFail, Some(NotAuthorized)),
            (Reject, true, R::Neutral, None),
            (Reject, false, R::TempError, Some(Temporary)),
            (Reject, false, R::PermError, Some(BrokenRecord)),
        ];
        for &(action, softfail, result, expected) in table {
            assert_eq!(
                decide(action, softfail, result),
                expected,
                "{action:?} softfail_reject={softfail} {result:?}"
            );
        }
    }
}
