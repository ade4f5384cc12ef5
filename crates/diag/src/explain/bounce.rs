//! Bounces as they arrive (`relais explain --file BOUNCE`): the machine-readable part of a
//! delivery status notification (RFC 3464 `message/delivery-status`, RFC 6533
//! `message/global-delivery-status`) read recipient by recipient, each with its status and the
//! remote server's words explained. A bounce without that part (old-style or hand-written
//! ones) is searched for the SMTP replies quoted in its text.
//!
//! No I/O: the caller hands the message's bytes; nothing here panics on any input (a fuzz
//! target holds it to that, and to reading back what relais's own DSNs say).

use mail_parser::{MessageParser, MimeHeaders};

use super::{Explanation, explain, explain_str, phrases};

/// What a delivery status notification says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bounce {
    /// The server that wrote the report (`Reporting-MTA`, its type left out).
    pub reporting_mta: Option<String>,
    /// One entry per recipient reported on, in order.
    pub recipients: Vec<RecipientStatus>,
}

/// The report on one recipient (RFC 3464 §2.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecipientStatus {
    /// `Final-Recipient`, its address type left out.
    pub recipient: String,
    /// `Original-Recipient` (the ORCPT of the sender), its address type left out.
    pub original: Option<String>,
    /// `failed`, `delayed`, `delivered`, `relayed` or `expanded`.
    pub action: String,
    /// The enhanced status code (`5.1.1`).
    pub status: String,
    /// `Remote-MTA`, its type left out.
    pub remote_mta: Option<String>,
    /// `Diagnostic-Code`: (type, text), `("smtp", "550 5.1.1 ...")`.
    pub diagnostic: Option<(String, String)>,
}

/// White space in a header field (RFC 5322 WSP): other Unicode spaces, such as a no-break
/// space opening an internationalized address, are part of the value.
const WSP: &[char] = &[' ', '\t', '\r'];

/// The most header fields looked at per group, and groups per report: a report is small.
const MAX_FIELDS: usize = 64;
const MAX_GROUPS: usize = 1000;

/// Reads the delivery status part of a message; `None` when it has none.
pub fn read(message: &[u8]) -> Option<Bounce> {
    let parsed = MessageParser::default().parse(message)?;
    let part = parsed.parts.iter().find(|p| {
        p.content_type().is_some_and(|ct| {
            ct.ctype().eq_ignore_ascii_case("message")
                && ct.subtype().is_some_and(|s| {
                    s.eq_ignore_ascii_case("delivery-status")
                        || s.eq_ignore_ascii_case("global-delivery-status")
                })
        })
    })?;
    Some(read_fields(&String::from_utf8_lossy(part.contents())))
}

/// Reads the groups of fields of a `message/delivery-status` body: the first about the
/// message, each next one about a recipient.
pub fn read_fields(body: &str) -> Bounce {
    let mut bounce = Bounce::default();
    for (i, group) in field_groups(body).into_iter().take(MAX_GROUPS).enumerate() {
        if i == 0 {
            bounce.reporting_mta = field(&group, "reporting-mta").map(typed_value);
            continue;
        }
        let Some(recipient) = field(&group, "final-recipient") else {
            continue;
        };
        bounce.recipients.push(RecipientStatus {
            recipient: typed_value(recipient),
            original: field(&group, "original-recipient").map(typed_value),
            action: field(&group, "action")
                .unwrap_or_default()
                .to_ascii_lowercase(),
            status: field(&group, "status")
                .and_then(|s| s.split_whitespace().next())
                .unwrap_or_default()
                .to_string(),
            remote_mta: field(&group, "remote-mta").map(typed_value),
            diagnostic: field(&group, "diagnostic-code").map(|d| match d.split_once(';') {
                Some((t, v)) => (
                    t.trim_matches(WSP).to_string(),
                    v.trim_matches(WSP).to_string(),
                ),
                None => (String::new(), d.trim_matches(WSP).to_string()),
            }),
        });
    }
    bounce
}

/// The groups of a `message/delivery-status` body (RFC 3464 §2.1): runs of lines between
/// blank lines, as (lower-case name, unfolded value) fields.
pub fn field_groups(body: &str) -> Vec<Vec<(String, String)>> {
    let mut out: Vec<Vec<(String, String)>> = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    for line in body.lines() {
        if line.trim_matches(WSP).is_empty() {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
        } else if line.starts_with([' ', '\t']) {
            // A folded line continues the field before it.
            if let Some((_, value)) = current.last_mut() {
                value.push(' ');
                value.push_str(line.trim_matches(WSP));
            }
        } else if let Some((name, value)) = line.split_once(':')
            && current.len() < MAX_FIELDS
        {
            current.push((
                name.trim_matches(WSP).to_ascii_lowercase(),
                value.trim_matches(WSP).to_string(),
            ));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The value of the first field of that (lower-case) name.
fn field<'a>(group: &'a [(String, String)], name: &str) -> Option<&'a str> {
    group
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// `rfc822; bob@example.org` → `bob@example.org` (a value without a type stays whole).
fn typed_value(v: &str) -> String {
    v.split_once(';')
        .map_or(v, |(_, rest)| rest)
        .trim_matches(WSP)
        .to_string()
}

/// The explanations of one recipient's report: the remote server's reply when it gave one
/// (its words say more), otherwise the status code, otherwise the words of the diagnostic.
pub fn explain_recipient(r: &RecipientStatus) -> Vec<Explanation> {
    let diagnostic = r.diagnostic.as_ref();
    if let Some((_, reply)) = diagnostic.filter(|(t, _)| t.eq_ignore_ascii_case("smtp"))
        && let Ok(exps) = explain_str(reply)
    {
        return exps;
    }
    explain_str(&r.status)
        .ok()
        .or_else(|| explain_str(&diagnostic?.1).ok())
        .unwrap_or_default()
}

/// The explanations of a bounce given as text, when it has no delivery status part: every
/// SMTP reply quoted in it (`... said: 550 5.1.1 ...`, `550-5.1.1 ...`), once each.
pub fn quoted_replies(text: &str) -> Vec<Explanation> {
    let mut out: Vec<Explanation> = Vec::new();
    for line in text.lines() {
        let Some(q) = phrases::embedded_reply(line).or_else(|| {
            let t = line.trim_start();
            let code = t.get(..4)?;
            (code.as_bytes()[..3].iter().all(u8::is_ascii_digit)
                && matches!(code.as_bytes()[3], b' ' | b'-'))
            .then(|| super::parse_query(t).ok())
            .flatten()
        }) else {
            continue;
        };
        for e in explain(&q) {
            if !out.iter().any(|o| o.code == e.code) {
                out.push(e);
            }
        }
    }
    out
}

/// The report for a terminal: each recipient with what happened, then what it means.
pub fn render(b: &Bounce) -> String {
    let mut out = format!(
        "Delivery status report from {}: {} recipient{}\n",
        b.reporting_mta.as_deref().unwrap_or("an unnamed server"),
        b.recipients.len(),
        if b.recipients.len() == 1 { "" } else { "s" }
    );
    for r in &b.recipients {
        out.push_str(&format!(
            "\n{}: {} ({})\n",
            r.recipient,
            if r.action.is_empty() {
                "no action given"
            } else {
                &r.action
            },
            if r.status.is_empty() {
                "no status"
            } else {
                &r.status
            }
        ));
        if let Some(o) = &r.original {
            out.push_str(&format!("  originally addressed to {o}\n"));
        }
        match (&r.remote_mta, &r.diagnostic) {
            (Some(mta), Some((_, text))) => out.push_str(&format!("  {mta} said: {text}\n")),
            (None, Some((_, text))) => out.push_str(&format!("  reason: {text}\n")),
            (Some(mta), None) => out.push_str(&format!("  remote server: {mta}\n")),
            (None, None) => {}
        }
        out.push('\n');
        out.push_str(&super::render_text(&explain_recipient(r)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_per_recipient() {
        let b = read_fields(
            "Reporting-MTA: dns;mx.example.org\n\n\
             Final-Recipient: rfc822; a@example.com\nACTION: Failed\nStatus: 5.2.2 (full)\n\
             Diagnostic-Code: smtp; 552 5.2.2 Mailbox\n  full\n\n\
             Action: failed\nStatus: 5.0.0\n\n\
             Final-Recipient: b@example.com\nDiagnostic-Code: no type here\n",
        );
        assert_eq!(b.reporting_mta.as_deref(), Some("mx.example.org"));
        // The group without Final-Recipient names nobody and is left out.
        assert_eq!(b.recipients.len(), 2, "{b:?}");
        let a = &b.recipients[0];
        assert_eq!(
            (a.recipient.as_str(), a.action.as_str(), a.status.as_str()),
            ("a@example.com", "failed", "5.2.2")
        );
        assert_eq!(
            a.diagnostic,
            Some(("smtp".into(), "552 5.2.2 Mailbox full".into()))
        );
        let b2 = &b.recipients[1];
        assert_eq!(b2.recipient, "b@example.com");
        assert_eq!(b2.diagnostic, Some((String::new(), "no type here".into())));
        assert_eq!(b2.status, "");
        // Nothing at all, and a message without the report part.
        assert_eq!(read_fields(""), Bounce::default());
        assert_eq!(read(b"Subject: hi\r\n\r\nno report\r\n"), None);
    }

    #[test]
    fn a_reply_explains_before_the_status() {
        let mut r = RecipientStatus {
            status: "5.0.0".into(),
            diagnostic: Some(("smtp".into(), "550 5.1.1 User unknown".into())),
            ..RecipientStatus::default()
        };
        assert_eq!(explain_recipient(&r)[0].code, "5.1.1");
        // A reason of the reporting server's own: the status decides.
        r.diagnostic = Some(("X-Postfix".into(), "550 5.1.1 words".into()));
        assert_eq!(explain_recipient(&r)[0].code, "5.0.0");
        r.status = "junk".into();
        assert_eq!(explain_recipient(&r)[0].code, "5.1.1");
    }

    #[test]
    fn quoted_replies_are_found_once_each() {
        let text = "host x said: 550 5.1.1 no\n    550 5.1.1 no again\n421-4.7.0 busy\nnothing\n";
        let codes: Vec<String> = quoted_replies(text).into_iter().map(|e| e.code).collect();
        assert!(codes.contains(&"5.1.1".to_string()), "{codes:?}");
        assert!(codes.contains(&"4.7.0".to_string()), "{codes:?}");
        assert_eq!(
            codes.iter().filter(|c| *c == "5.1.1").count(),
            1,
            "{codes:?}"
        );
    }

    /// Found by the `dsn` fuzz target (artifact crash-ac8bc499…): the recipient
    /// `\u{a0}u@example.com` (an internationalized local part opening with a no-break space)
    /// was read back as `u@example.com`, every Unicode space trimmed as if it were WSP.
    #[test]
    fn crash_ac8bc499_only_wsp_is_trimmed() {
        let b = read_fields(
            "Reporting-MTA: dns; mx\r\n\r\nFinal-Recipient: rfc822; \u{a0}u@example.com \t\r\n\
             Action: failed\r\nStatus: 5.1.1\r\n",
        );
        assert_eq!(b.recipients[0].recipient, "\u{a0}u@example.com");
        assert_eq!(b.recipients[0].action, "failed");
    }
}
