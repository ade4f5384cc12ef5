//! The one way a message enters the spool: the SMTP door streams a received message through
//! it, the control socket a local submission, the queue manager a delivery report.
//!
//! [`Enqueue::begin`] opens the message under its queue id, [`Enqueue::write`] adds content
//! (trace header first), [`Enqueue::commit`] stores the envelope with fresh delivery progress,
//! waits until both are durable, and logs `ID: queued: from=<…>, size=…, nrcpt=…` once.

use relais_proto::Envelope;
use relais_spool::{Incoming, QueueId, Spool, SpoolError};
use tracing::{info, warn};

use crate::envelope::{QueueState, SpooledEnvelope};

/// A message being written to the spool.
pub struct Enqueue {
    /// Its queue id, allocated before the content (every log line of the message carries it).
    id: QueueId,
    /// The spool's receiver of the content.
    incoming: Incoming,
    /// The first write that failed: the message is refused at commit, but the caller may keep
    /// feeding content so that its session stays in step.
    failed: Option<SpoolError>,
}

impl Enqueue {
    /// Starts message `id` (from [`Spool::new_id`]).
    pub fn begin(spool: &Spool, id: QueueId) -> Enqueue {
        Enqueue {
            id,
            incoming: spool.begin(id),
            failed: None,
        }
    }

    /// The queue id.
    pub fn id(&self) -> QueueId {
        self.id
    }

    /// Appends content; after a failure, further content is dropped and the failure kept for
    /// [`Enqueue::commit`].
    pub fn write(&mut self, bytes: &[u8]) {
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
            id,
            incoming,
            failed,
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
                        ..Default::default()
                    },
                    envelope,
                };
                incoming.commit(record.encode()).await
            }
        };
        match &result {
            Ok(_) => info!("{id}: queued: from=<{from}>, size={size}, nrcpt={nrcpt}{note}"),
            Err(e) => warn!("{id}: not queued: {e}"),
        }
        result
    }
}
