//! The queue as an administrator sees it: list, show, hold, release and delete queued
//! messages. The running server's control socket answers with these functions (hold, release
//! and delete through the queue manager, which must know); `relais queue` calls them on the
//! spool itself when no server runs. The spool's lock keeps the two from mixing.

use std::time::SystemTime;

use relais_proto::date::unix_secs;
use relais_spool::{QueueId, Spool};
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::envelope::SpooledEnvelope;
use crate::outcome::Outcome;

/// One recipient in a queue listing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecipientStatus {
    /// The address.
    pub address: String,
    /// `pending`, `sent`, `deferred` or `bounced`.
    pub status: String,
    /// The last reason, if any.
    pub reason: Option<String>,
}

/// One message in a queue listing (like a `mailq` line).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueEntry {
    /// Queue id.
    pub id: String,
    /// Octets of content.
    pub size: u64,
    /// Arrival time, Unix seconds.
    pub arrival: u64,
    /// Sender (empty for `<>`).
    pub sender: String,
    /// Held by the administrator.
    pub held: bool,
    /// Attempts so far.
    pub attempts: u32,
    /// Next attempt, Unix seconds (0: as soon as possible).
    pub next_attempt: u64,
    /// Recipients and their status.
    pub recipients: Vec<RecipientStatus>,
}

/// A message in detail.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueDetail {
    /// The listing entry.
    pub entry: QueueEntry,
    /// The client it came from.
    pub client: String,
    /// The envelope as the spool keeps it (MAIL and RCPT lines with their parameters).
    pub envelope: String,
    /// The message headers.
    pub headers: String,
}

fn entry_of(id: QueueId, size: u64, arrival: SystemTime, env: &SpooledEnvelope) -> QueueEntry {
    QueueEntry {
        id: id.to_string(),
        size,
        arrival: unix_secs(arrival).max(0) as u64,
        sender: env.envelope.from.to_string(),
        held: env.state.held,
        attempts: env.state.attempts,
        next_attempt: env.state.next_attempt,
        recipients: env
            .envelope
            .recipients
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let (status, reason) = match env.state.outcome(i) {
                    None => ("pending", None),
                    Some(Outcome::Delivered(d)) => ("sent", Some(d.clone())),
                    Some(Outcome::Deferred { status, reason }) => {
                        ("deferred", Some(format!("{status} {reason}")))
                    }
                    Some(Outcome::Failed { status, reason }) => {
                        ("bounced", Some(format!("{status} {reason}")))
                    }
                };
                RecipientStatus {
                    address: r.to.to_string(),
                    status: status.into(),
                    reason,
                }
            })
            .collect(),
    }
}

/// Every message in the spool.
pub fn list(spool: &Spool) -> Vec<QueueEntry> {
    spool
        .pending()
        .into_iter()
        .filter_map(|id| {
            let m = spool.read(id).ok()?;
            let env = SpooledEnvelope::decode(&m.envelope).ok()?;
            Some(entry_of(id, m.body_len(), m.arrival, &env))
        })
        .collect()
}

/// One message in detail.
pub fn show(spool: &Spool, id: &str) -> Result<QueueDetail, String> {
    let id = parse_id(id)?;
    let m = spool.read(id).map_err(|e| e.to_string())?;
    let env = SpooledEnvelope::decode(&m.envelope).map_err(|e| e.to_string())?;
    let body_len = m.body_len();
    let arrival = m.arrival;
    let content = crate::Content::open(m, &env.arrival).map_err(|e| e.to_string())?;
    let headers = String::from_utf8_lossy(content.header()).into_owned();
    Ok(QueueDetail {
        entry: entry_of(id, body_len, arrival, &env),
        client: env.client.clone(),
        envelope: String::from_utf8_lossy(&env.encode()).into_owned(),
        headers,
    })
}

/// Reads a queue id as the administrator typed it.
pub fn parse_id(id: &str) -> Result<QueueId, String> {
    id.parse().map_err(|_| format!("{id:?} is not a queue id"))
}

/// Marks a message held (kept until released) or releases it, in its stored progress; logs it.
pub async fn set_held(spool: &Spool, id: QueueId, held: bool) -> Result<(), String> {
    let msg = spool.read(id).map_err(|e| e.to_string())?;
    let mut env = SpooledEnvelope::decode(&msg.envelope).map_err(|e| e.to_string())?;
    env.state.held = held;
    spool
        .update_envelope(id, env.encode())
        .await
        .map_err(|e| e.to_string())?;
    if held {
        info!(event = "held", queue_id = %id, "{id}: held by the administrator");
    } else {
        info!(event = "released", queue_id = %id, "{id}: released by the administrator");
    }
    Ok(())
}

/// Makes a message due at once (its next attempt now), for the server to try when it starts:
/// `relais queue requeue` without a running server; logs it.
pub async fn requeue(spool: &Spool, id: QueueId) -> Result<(), String> {
    let msg = spool.read(id).map_err(|e| e.to_string())?;
    let mut env = SpooledEnvelope::decode(&msg.envelope).map_err(|e| e.to_string())?;
    env.state.next_attempt = 0;
    spool
        .update_envelope(id, env.encode())
        .await
        .map_err(|e| e.to_string())?;
    info!(event = "requeued", queue_id = %id, "{id}: requeued by the administrator");
    Ok(())
}

/// Removes a message without delivering or bouncing it; logs it.
pub fn delete(spool: &Spool, id: QueueId) -> Result<(), String> {
    spool.mark_done(id).map_err(|e| e.to_string())?;
    info!(
        event = "deleted",
        queue_id = %id,
        "{id}: removed (deleted by the administrator)"
    );
    Ok(())
}
