//! The one way a message enters the spool: the SMTP door streams a received message through
//! it, the control socket a local submission, the queue manager a delivery report.
//!
//! [`Enqueue::begin`] opens the message under its queue id, [`Enqueue::write`] adds content
//! (trace header first), [`Enqueue::commit`] stores the envelope with fresh delivery progress,
//! waits until both are durable, and logs `ID: queued: from=<…>, size=…, nrcpt=…` once.

use relais_proto::Envelope;
use relais_spool::{Incoming, QueueId, Spool, SpoolError};
use tracing::{info, warn};

use crate::envelope::{Arrival, QueueState, SpooledEnvelope};

/// How much of the start of a message is kept to find its `Message-ID` (the header ends well
/// before in practice; one that does not gets no message id logged).
const HEAD_KEPT: usize = 32 * 1024;

/// A message being written to the spool.
pub struct Enqueue {
    /// The first octets written (trace header, then the message's header), for its
    /// `Message-ID`.
    head: Vec<u8>,
    /// The header's end is in `head` (or `head` is full): nothing more is kept.
    head_done: bool,
    /// Its queue id, allocated before the content (every log line of the message carries it).
    id: QueueId,
    /// The spool's receiver of the content.
    incoming: Incoming,
    /// The first write that failed: the message is refused at commit, but the caller may keep
    /// feeding content so that its session stays in step.
    failed: Option<SpoolError>,
    /// What the door decided at the end of the content, kept with the envelope.
    arrival: Arrival,
    /// Kept in the queue until released (a content filter's quarantine).
    hold: bool,
}

impl Enqueue {
    /// Starts message `id` (from [`Spool::new_id`]).
    pub fn begin(spool: &Spool, id: QueueId) -> Enqueue {
        Enqueue {
            head: Vec::new(),
            head_done: false,
            id,
            incoming: spool.begin(id),
            failed: None,
            arrival: Arrival::default(),
            hold: false,
        }
    }

    /// Keeps the message in the queue, held, until `relais queue release`.
    pub fn hold(&mut self) {
        self.hold = true;
    }

    /// Sets what the door decided (headers to add in front at delivery, Junk), before
    /// [`Enqueue::commit`].
    pub fn set_arrival(&mut self, arrival: Arrival) {
        self.arrival = arrival;
    }

    /// The queue id.
    pub fn id(&self) -> QueueId {
        self.id
    }

    /// Appends content; after a failure, further content is dropped and the failure kept for
    /// [`Enqueue::commit`].
    pub fn write(&mut self, bytes: &[u8]) {
        if !self.head_done {
            // Look for the blank line from a little before the new bytes (it may straddle).
            let from = self.head.len().saturating_sub(3);
            let room = HEAD_KEPT - self.head.len();
            self.head.extend_from_slice(&bytes[..bytes.len().min(room)]);
            self.head_done = self.head.len() >= HEAD_KEPT
                || self.head[from..].windows(4).any(|w| w == b"\r\n\r\n");
        }
        if self.failed.is_none()
            && let Err(e) = self.incoming.write(bytes)
        {
            self.failed = Some(e);
        }
    }

    /// Makes the message durable with `envelope` (all recipients pending) and logs it as
    /// queued, with `note` after the counts (e.g. ` (local submission by alice)`). The caller
    /// answers `250` only after this returned `Ok`.
    pub async fn commit(
        self,
        client: &str,
        envelope: Envelope,
        note: &str,
    ) -> Result<QueueId, SpoolError> {
        let Enqueue {
            head,
            head_done: _,
            id,
            incoming,
            failed,
            arrival,
            hold,
        } = self;
        let (from, size, nrcpt) = (
            envelope.from.to_string(),
            envelope.size,
            envelope.recipients.len(),
        );
        let result = match failed {
            Some(e) => Err(e),
            None => {
                let record = SpooledEnvelope {
                    client: client.to_string(),
                    state: QueueState {
                        recipients: vec![None; nrcpt],
                        held: hold,
                        ..Default::default()
                    },
                    arrival,
                    envelope,
                };
                let started = std::time::Instant::now();
                let committed = incoming.commit(record.encode()).await;
                relais_metrics::METRICS
                    .commit_seconds
                    .observe(started.elapsed());
                committed
            }
        };
        match &result {
            Ok(_) => {
                let message_id = message_id(&head).unwrap_or_default();
                if !message_id.is_empty() {
                    info!("{id}: message-id={message_id}");
                }
                info!(
                    event = "queued",
                    queue_id = %id,
                    from = %from,
                    size,
                    nrcpt,
                    message_id,
                    "{id}: queued: from=<{from}>, size={size}, nrcpt={nrcpt}{note}"
                );
            }
            Err(e) => warn!(
                event = "not_queued",
                queue_id = %id,
                reason = %e,
                "{id}: not queued: {e}"
            ),
        }
        result
    }
}

/// The `Message-ID` of a message's header (unfolded, trimmed, control characters dropped),
/// as the seeds trace messages by it.
fn message_id(head: &[u8]) -> Option<String> {
    let end = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(head.len(), |p| p + 2);
    let text = String::from_utf8_lossy(&head[..end]);
    let mut lines = text.split("\r\n").peekable();
    while let Some(line) = lines.next() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if !name.eq_ignore_ascii_case("message-id") {
            continue;
        }
        let mut value = value.to_string();
        while let Some(next) = lines.peek() {
            if !next.starts_with([' ', '\t']) {
                break;
            }
            value.push_str(next);
            lines.next();
        }
        let value: String = value.chars().filter(|c| !c.is_control()).collect();
        let value = value.trim();
        return (!value.is_empty()).then(|| value.chars().take(998).collect());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids() {
        let table: &[(&str, Option<&str>)] = &[
            (
                "Received: x\r\nMessage-ID: <a@b>\r\n\r\nbody",
                Some("<a@b>"),
            ),
            ("message-id:<a@b>\r\nSubject: x\r\n\r\n", Some("<a@b>")),
            ("Message-Id:\r\n <folded@b>\r\n\r\n", Some("<folded@b>")),
            ("Subject: x\r\n\r\nMessage-ID: <in-body@b>\r\n", None),
            ("Message-ID: \r\n\r\n", None),
            ("X-Message-ID: <not@this>\r\n\r\n", None),
        ];
        for (head, want) in table {
            assert_eq!(message_id(head.as_bytes()).as_deref(), *want, "{head:?}");
        }
    }
}
