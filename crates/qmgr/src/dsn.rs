//! Delivery status notifications (RFC 3461, 3462, 3464): the bounce that tells a sender a
//! message failed, the receipt for `NOTIFY=SUCCESS`, the warning for `NOTIFY=DELAY`.
//!
//! The MIME is written here rather than with `mail-builder`: a DSN has a fixed shape, and its
//! third part (`message/rfc822`) must stay unencoded (RFC 2046 §5.2.1), while a general builder
//! picks transfer encodings on its own.

use std::time::SystemTime;

use relais_proto::params::xtext_decode;
use relais_proto::{Envelope, Ret};

use relais_queue::headers::rfc5322_date;

/// A failure report returns the whole message only up to this size, as Postfix's
/// `bounce_size_limit` (50,000 octets by default); a larger one comes back as its header
/// section (`text/rfc822-headers`), since a cut `message/rfc822` would be malformed.
pub const RETURN_LIMIT: u64 = 50_000;

/// What happened to one recipient, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientReport {
    /// The recipient as given in RCPT TO.
    pub recipient: String,
    /// ORCPT, if the client gave one: (type, xtext value).
    pub original: Option<(String, String)>,
    /// `failed`, `delayed`, `delivered`, `relayed` or `expanded` (RFC 3464 §2.3.3).
    pub action: &'static str,
    /// The enhanced status code (`5.1.1`).
    pub status: String,
    /// The remote server's reply or our reason (`smtp; 550 5.1.1 …`).
    pub diagnostic: Option<String>,
    /// The host that answered, when it was remote.
    pub remote_mta: Option<String>,
}

/// Everything a report needs.
pub struct Report<'a> {
    /// Our host name (Reporting-MTA, MAILER-DAEMON@).
    pub hostname: &'a str,
    /// The original message's queue id.
    pub queue_id: &'a str,
    /// The original envelope (sender, ENVID, RET).
    pub envelope: &'a Envelope,
    /// When the original arrived.
    pub arrival: SystemTime,
    /// The recipients reported on.
    pub recipients: Vec<RecipientReport>,
    /// The original message's header section, as it went out (what every report returns).
    pub original_header: &'a [u8],
    /// The whole original message as it went out, when it has at most [`RETURN_LIMIT`]
    /// octets: a failure report returns it (unless `RET=HDRS`); a larger one gets its header
    /// section only.
    pub original_full: Option<&'a [u8]>,
    /// Now.
    pub now: SystemTime,
}

/// The kind of report, from the actions in it.
fn kind(recipients: &[RecipientReport]) -> (&'static str, &'static str) {
    if recipients.iter().any(|r| r.action == "failed") {
        (
            "Undelivered Mail Returned to Sender",
            "I'm sorry to have to inform you that your message could not\r\nbe delivered to one or more recipients. It's attached below.",
        )
    } else if recipients.iter().any(|r| r.action == "delayed") {
        (
            "Delayed Mail (still being retried)",
            "Your message could not be delivered yet to one or more recipients.\r\nIt will be tried again; you do not need to send it again.",
        )
    } else {
        (
            "Successful Mail Delivery Report",
            "Your message was successfully delivered to the destination(s)\r\nlisted below, or handed on to a system that does not send reports.",
        )
    }
}

/// Builds the complete report message (headers and body, CRLF line ends).
pub fn build(r: &Report<'_>) -> Vec<u8> {
    let sender = r.envelope.from.to_string();
    let (subject, intro) = kind(&r.recipients);
    let boundary = format!("{}.relais-dsn/{}", r.queue_id, r.hostname);
    let mut m = String::with_capacity(2048 + r.original_header.len());
    m.push_str(&format!(
        "From: Mail Delivery System <MAILER-DAEMON@{}>\r\n",
        r.hostname
    ));
    m.push_str(&format!("To: {sender}\r\n"));
    m.push_str(&format!("Subject: {subject}\r\n"));
    m.push_str(&format!("Date: {}\r\n", rfc5322_date(r.now)));
    m.push_str(&format!(
        "Message-ID: <{}.dsn@{}>\r\n",
        r.queue_id, r.hostname
    ));
    m.push_str("Auto-Submitted: auto-replied\r\n");
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str(&format!(
        "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n"
    ));
    m.push_str("Content-Transfer-Encoding: 8bit\r\n\r\n");
    m.push_str("This is a MIME-encapsulated message.\r\n\r\n");

    // 1. For people.
    m.push_str(&format!("--{boundary}\r\nContent-Description: Notification\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"));
    m.push_str(&format!(
        "This is the mail system at host {}.\r\n\r\n{intro}\r\n\r\n",
        r.hostname
    ));
    for rr in &r.recipients {
        m.push_str(&format!(
            "<{}>: {} ({})",
            rr.recipient, rr.action, rr.status
        ));
        if let Some(d) = &rr.diagnostic {
            m.push_str(&format!(": {d}"));
        }
        m.push_str("\r\n");
    }
    m.push_str("\r\n");

    // 2. For programs (RFC 3464).
    m.push_str(&format!("--{boundary}\r\nContent-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n"));
    m.push_str(&format!("Reporting-MTA: dns; {}\r\n", r.hostname));
    m.push_str(&format!("X-Relais-Queue-ID: {}\r\n", r.queue_id));
    if let Some(envid) = &r.envelope.mail_params.envid {
        m.push_str(&format!(
            "Original-Envelope-Id: {}\r\n",
            xtext_decode(envid)
        ));
    }
    m.push_str(&format!("Arrival-Date: {}\r\n", rfc5322_date(r.arrival)));
    for rr in &r.recipients {
        m.push_str("\r\n");
        if let Some((t, v)) = &rr.original {
            m.push_str(&format!("Original-Recipient: {t}; {}\r\n", xtext_decode(v)));
        }
        m.push_str(&format!("Final-Recipient: rfc822; {}\r\n", rr.recipient));
        m.push_str(&format!("Action: {}\r\n", rr.action));
        m.push_str(&format!("Status: {}\r\n", rr.status));
        if let Some(mta) = &rr.remote_mta {
            // `name[ip]:port` as logged; the report wants the host name.
            let name = mta.split('[').next().unwrap_or(mta);
            m.push_str(&format!("Remote-MTA: dns; {name}\r\n"));
        }
        if let Some(d) = &rr.diagnostic {
            // The remote reply itself when there is one (`host X said: 550 …`), of type `smtp`
            // (RFC 3464 §2.3.6); a reason of our own is no SMTP reply: `X-Relais`, as Postfix
            // writes `X-Postfix`.
            match d.split_once(" said: ") {
                Some((_, reply)) => m.push_str(&format!("Diagnostic-Code: smtp; {reply}\r\n")),
                None => m.push_str(&format!("Diagnostic-Code: X-Relais; {d}\r\n")),
            }
        }
        m.push_str(&format!("Last-Attempt-Date: {}\r\n", rfc5322_date(r.now)));
    }
    m.push_str("\r\n");

    // 3. The message, or its headers (RET=HDRS, a message over RETURN_LIMIT; a success report
    // carries headers only too).
    let failed = r.recipients.iter().any(|x| x.action == "failed");
    let full = match r.original_full {
        Some(original) if failed && r.envelope.mail_params.ret != Some(Ret::Hdrs) => Some(original),
        _ => None,
    };
    let mut out = m.into_bytes();
    if let Some(original) = full {
        out.extend_from_slice(
            format!("--{boundary}\r\nContent-Description: Undelivered Message\r\nContent-Type: message/rfc822\r\n\r\n").as_bytes(),
        );
        out.extend_from_slice(original);
        if !original.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
    } else {
        out.extend_from_slice(
            format!("--{boundary}\r\nContent-Description: Message Headers\r\nContent-Type: text/rfc822-headers\r\n\r\n").as_bytes(),
        );
        out.extend_from_slice(r.original_header);
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}
