//! EHLO (HELO when refused): the capabilities with their meaning, and AUTH offered in clear
//! text.

use std::time::Instant;

use relais_proto::EhloResponse;

use super::exit;
use super::report::{Capability, Verdict};
use super::session::{Session, Step, stage_error};

impl Session<'_> {
    /// EHLO, HELO if refused.
    pub(super) async fn ehlo(&mut self) -> Step<EhloResponse> {
        let started = Instant::now();
        let ehlo = match self.client.ehlo_or_helo(&self.context.helo).await {
            Ok(ehlo) => ehlo,
            Err(e) => {
                self.failed("ehlo", started, &e, stage_error(&e, exit::HELO, "ehlo"));
                return self.quit_and_stop().await;
            }
        };
        self.report.stage(
            "ehlo",
            Some(started.elapsed()),
            format!("{} capabilities", ehlo.capabilities.len()),
        );
        self.add(ehlo_verdict(&ehlo));
        self.report.capabilities = capabilities(&ehlo);
        if let Some(v) = auth_cleartext(self.client.is_tls(), &ehlo) {
            self.add(v);
        }
        Ok(ehlo)
    }
}

/// EHLO accepted, or only HELO (no capabilities at all).
pub(super) fn ehlo_verdict(ehlo: &EhloResponse) -> Verdict {
    if ehlo.capabilities.is_empty() {
        Verdict::warn(
            "ehlo",
            "EHLO refused, HELO accepted: an old server without extensions (no STARTTLS, no SIZE)"
                .into(),
            "upgrade or configure the server for ESMTP",
        )
    } else {
        Verdict::ok("ehlo", format!("EHLO accepted: {}", ehlo.domain))
    }
}

/// AUTH offered on a connection without TLS is worth a warning.
pub(super) fn auth_cleartext(tls: bool, ehlo: &EhloResponse) -> Option<Verdict> {
    let mechanisms = ehlo.auth_mechanisms();
    if tls || mechanisms.is_empty() {
        return None;
    }
    Some(Verdict::warn(
        "auth-cleartext",
        format!(
            "AUTH ({}) is offered on a clear-text connection: credentials would cross the network in clear",
            mechanisms.join(" ")
        ),
        "offer AUTH only after STARTTLS (relais: [auth] allow_plaintext = false; Postfix: smtpd_tls_auth_only = yes)",
    ))
}

/// The EHLO keywords with a one-line meaning; unknown ones are kept and said to be unknown.
pub(super) fn capabilities(ehlo: &EhloResponse) -> Vec<Capability> {
    ehlo.capabilities
        .iter()
        .map(|c| Capability {
            keyword: c.keyword.clone(),
            params: c.params.clone(),
            meaning: keyword_meaning(&c.keyword),
        })
        .collect()
}

fn keyword_meaning(keyword: &str) -> &'static str {
    match keyword.to_ascii_uppercase().as_str() {
        "PIPELINING" => "commands may be sent in groups without waiting for each reply (RFC 2920)",
        "SIZE" => "the largest message accepted, in bytes; declared in MAIL FROM (RFC 1870)",
        "8BITMIME" => "8-bit message bodies accepted (RFC 6152)",
        "BINARYMIME" => "binary bodies accepted with BDAT (RFC 3030)",
        "CHUNKING" => "BDAT: the message sent in sized chunks instead of DATA (RFC 3030)",
        "ENHANCEDSTATUSCODES" => "replies carry x.y.z status codes (RFC 2034, RFC 3463)",
        "SMTPUTF8" => "internationalized addresses and headers in UTF-8 (RFC 6531)",
        "DSN" => "delivery status notifications: NOTIFY, RET, ENVID, ORCPT (RFC 3461)",
        "STARTTLS" => "the session can switch to TLS (RFC 3207)",
        "AUTH" => "authentication with the listed SASL mechanisms (RFC 4954)",
        "REQUIRETLS" => "the sender may require TLS all the way (RFC 8689)",
        "DELIVERBY" => "delivery deadline requests (RFC 2852)",
        "MT-PRIORITY" => "message priorities (RFC 6710)",
        "FUTURERELEASE" => "delivery held until a given time (RFC 4865)",
        "ETRN" => "a client may ask the server to flush its queue for a domain (RFC 1985)",
        "ATRN" => "authenticated turn: the roles are swapped to receive queued mail (RFC 2645)",
        "VRFY" => "VRFY is announced: addresses can be verified (RFC 5321)",
        "EXPN" => "EXPN is announced: mailing lists can be expanded (RFC 5321)",
        "HELP" => "HELP answers (RFC 5321)",
        "LIMITS" => "the server announces its limits (RCPTMAX, MAILMAX) (RFC 9422)",
        "NO-SOLICITING" => "the server asks not to be solicited (RFC 3865)",
        "BURL" => "message content taken from an IMAP URL (RFC 4468)",
        "XCLIENT" => "Postfix extension: a trusted proxy passes on the real client",
        "XFORWARD" => "Postfix extension: a trusted filter passes on the original client",
        "SMTPUTF8-ALT" | "X-EXPS" | "X-LINK2STATE" | "XEXCH50" => {
            "a vendor extension (Microsoft Exchange)"
        }
        _ => "unknown extension (kept as sent)",
    }
}

#[cfg(test)]
mod tests {
    use relais_proto::Reply;

    use super::super::report::Level;
    use super::*;

    fn ehlo(lines: &[&str]) -> EhloResponse {
        let mut reply = Reply::new(250, None, lines[0]);
        reply.lines.extend(lines[1..].iter().map(|l| l.to_string()));
        EhloResponse::parse(&reply).expect("a 250 reply")
    }

    #[test]
    fn ehlo_and_clear_text_auth() {
        // (EHLO lines, TLS, ehlo level, auth-cleartext level)
        let table: &[(&[&str], bool, Level, Option<Level>)] = &[
            (&["mx.test"], false, Level::Warn, None),
            (
                &["mx.test", "SIZE 1000", "STARTTLS"],
                false,
                Level::Ok,
                None,
            ),
            (
                &["mx.test", "AUTH PLAIN LOGIN"],
                false,
                Level::Ok,
                Some(Level::Warn),
            ),
            (&["mx.test", "AUTH PLAIN LOGIN"], true, Level::Ok, None),
            (&["mx.test", "AUTH"], false, Level::Ok, None),
        ];
        for (lines, tls, level, cleartext) in table {
            let e = ehlo(lines);
            assert_eq!(ehlo_verdict(&e).level, *level, "{lines:?}");
            assert_eq!(
                auth_cleartext(*tls, &e).map(|v| (v.level, v.check)),
                cleartext.map(|l| (l, "auth-cleartext")),
                "{lines:?} tls={tls}"
            );
        }
    }

    #[test]
    fn keyword_meanings() {
        let e = ehlo(&["mx.test", "SIZE 1000", "X-NEW-THING a b", "chunking"]);
        let caps = capabilities(&e);
        assert_eq!(caps[0].params, vec!["1000"]);
        assert!(caps[0].meaning.contains("RFC 1870"));
        assert_eq!(caps[1].meaning, "unknown extension (kept as sent)");
        assert!(caps[2].meaning.contains("BDAT"));
    }
}
