//! Local submission: what `relais sendmail` hands over (through the control socket, or to the
//! spool itself when no server runs) becomes a queued message.

use std::time::SystemTime;

use relais_proto::{Envelope, MailParams, Mailbox, RcptParams, Recipient, ReversePath};
use relais_spool::{QueueId, Spool};
use serde::{Deserialize, Serialize};

use crate::enqueue::Enqueue;
use crate::envelope::Arrival;
use crate::headers;

/// What `sendmail` hands over.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Submission {
    /// Envelope sender (empty for `<>`).
    pub sender: String,
    /// Envelope recipients.
    pub recipients: Vec<String>,
    /// The local user submitting, for the Received header.
    pub user: String,
    /// Octets of message that follow.
    pub size: usize,
}

/// Puts a locally submitted message in the spool; returns its id. The caller then has it
/// delivered (a running server pushes it to its queue; otherwise the next start does).
/// `prepare` sees the message (CRLF line ends) and its queue id, and returns header fields
/// to put in front of it at delivery (its DKIM signature, a missing `Date`).
pub async fn submit(
    spool: &Spool,
    hostname: &str,
    sub: &Submission,
    message: &[u8],
    now: SystemTime,
    prepare: impl AsyncFnOnce(&[u8], QueueId) -> Vec<String>,
) -> Result<QueueId, String> {
    let from = if sub.sender.is_empty() {
        ReversePath::Null
    } else {
        ReversePath::Mailbox(
            Mailbox::parse(&sub.sender).map_err(|e| format!("sender {:?}: {e}", sub.sender))?,
        )
    };
    let mut recipients = Vec::new();
    for r in &sub.recipients {
        let to = relais_proto::address::parse_forward_path(r)
            .map_err(|e| format!("recipient {r:?}: {e}"))?;
        recipients.push(Recipient {
            to,
            params: RcptParams::default(),
        });
    }
    if recipients.is_empty() {
        return Err("no recipients".into());
    }
    let utf8 = !from.mailbox().is_none_or(Mailbox::is_ascii)
        || recipients.iter().any(|r| !r.to.is_ascii());
    let envelope = Envelope {
        helo: hostname.to_string(),
        esmtp: true,
        from,
        mail_params: MailParams {
            smtputf8: utf8,
            ..Default::default()
        },
        recipients,
        size: message.len() as u64,
        chunked: false,
        bare_lf: false,
    };
    let id = spool.new_id();
    let received = headers::received_local(hostname, &sub.user, &id.to_string(), &envelope, now);
    let message = normalize_newlines(message);
    let headers = prepare(&message, id).await;
    let mut message_in = Enqueue::begin(spool, id);
    message_in.set_arrival(Arrival {
        headers,
        ..Arrival::default()
    });
    message_in.write(received.as_bytes());
    message_in.write(&message);
    message_in
        .commit(
            &format!("local user {}", sub.user),
            envelope,
            &format!(" (local submission by {})", sub.user),
        )
        .await
        .map_err(|e| e.to_string())
}

/// LF line ends (as local programs write them) become CRLF, as stored messages have them.
fn normalize_newlines(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 40);
    let mut prev = 0u8;
    for &b in message {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}
