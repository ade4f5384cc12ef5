//! The status page's view of the queue, in JSON: the listing with its filters (sender,
//! recipient, state, age), one message as `relais queue show` gives it, and the
//! administrator's actions on it. The listing and the message come from `relais_queue::admin`,
//! the actions go through `control::steer`, as the control socket's do.

use hyper::StatusCode;
use relais_queue::QueueHandle;
use relais_queue::admin::{self, QueueEntry, parse_id};
use relais_spool::{QueueId, Spool, SpoolError};
use serde_json::{Value, json};

use super::{Reply, json_reply};
use crate::control::{Steer, steer};

/// Where a message stands, as the filter and the page name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// Not tried yet, or due now.
    Active,
    /// Tried, and waiting for its next attempt.
    Deferred,
    /// Kept by the administrator until released.
    Held,
}

impl State {
    fn of(entry: &QueueEntry) -> State {
        if entry.held {
            State::Held
        } else if entry.attempts > 0 {
            State::Deferred
        } else {
            State::Active
        }
    }

    fn name(self) -> &'static str {
        match self {
            State::Active => "active",
            State::Deferred => "deferred",
            State::Held => "held",
        }
    }
}

/// What the listing keeps; every part is optional.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Filter {
    /// A part of the sender's address (any case).
    sender: Option<String>,
    /// A part of one of the recipients' addresses (any case).
    recipient: Option<String>,
    /// Only messages in this state.
    state: Option<State>,
    /// Only messages that arrived at least this many seconds ago.
    older_than: Option<u64>,
    /// Only messages that arrived at most this many seconds ago.
    newer_than: Option<u64>,
}

impl Filter {
    /// The filter of a query (`sender`, `recipient`, `state`, `older_than`, `newer_than`);
    /// empty values are no filter, unknown names are ignored.
    pub(super) fn parse(query: &[(String, String)]) -> Result<Filter, String> {
        let mut f = Filter::default();
        let seconds = |k: &str, v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{k}: a number of seconds, not {v:?}"))
        };
        for (k, v) in query.iter().filter(|(_, v)| !v.trim().is_empty()) {
            let v = v.trim();
            match k.as_str() {
                "sender" => f.sender = Some(v.to_ascii_lowercase()),
                "recipient" => f.recipient = Some(v.to_ascii_lowercase()),
                "state" => {
                    f.state = Some(match v {
                        "active" => State::Active,
                        "deferred" => State::Deferred,
                        "held" => State::Held,
                        _ => return Err(format!("state: active, deferred or held, not {v:?}")),
                    })
                }
                "older_than" => f.older_than = Some(seconds(k, v)?),
                "newer_than" => f.newer_than = Some(seconds(k, v)?),
                _ => {}
            }
        }
        Ok(f)
    }

    /// Whether a message passes, at `now` (Unix seconds).
    pub(super) fn matches(&self, e: &QueueEntry, now: u64) -> bool {
        let has = |text: &str, part: &Option<String>| {
            part.as_ref()
                .is_none_or(|p| text.to_ascii_lowercase().contains(p.as_str()))
        };
        let age = now.saturating_sub(e.arrival);
        has(&e.sender, &self.sender)
            && (self.recipient.is_none()
                || e.recipients
                    .iter()
                    .any(|r| has(&r.address, &self.recipient)))
            && self.state.is_none_or(|s| s == State::of(e))
            && self.older_than.is_none_or(|s| age >= s)
            && self.newer_than.is_none_or(|s| age <= s)
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `GET /api/queue`: `{"now": …, "messages": [entry + "state", …]}`, oldest first.
pub(super) fn list(spool: &Spool, query: &[(String, String)]) -> Reply {
    let filter = match Filter::parse(query) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let now = now_secs();
    let mut entries: Vec<QueueEntry> = admin::list(spool)
        .into_iter()
        .filter(|e| filter.matches(e, now))
        .collect();
    entries.sort_by(|a, b| (a.arrival, &a.id).cmp(&(b.arrival, &b.id)));
    let messages: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut v = serde_json::to_value(e).unwrap_or_default();
            v["state"] = State::of(e).name().into();
            v
        })
        .collect();
    json_reply(StatusCode::OK, json!({ "now": now, "messages": messages }))
}

/// An error answer: `{"error": …}`.
fn error(status: StatusCode, e: impl std::fmt::Display) -> Reply {
    json_reply(status, json!({ "error": e.to_string() }))
}

/// A queue id that names a message in the spool, or why not (404 when there is none).
fn find(spool: &Spool, id: &str) -> Result<QueueId, (StatusCode, String)> {
    let qid = parse_id(id).map_err(|e| (StatusCode::NOT_FOUND, e))?;
    match spool.read(qid) {
        Ok(_) => Ok(qid),
        Err(e @ SpoolError::NotFound(_)) => Err((StatusCode::NOT_FOUND, e.to_string())),
        Err(e) => Err((StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

/// `GET /api/queue/ID`: envelope, headers and each recipient's history, with its state.
pub(super) fn show(spool: &Spool, id: &str) -> Reply {
    let qid = match find(spool, id) {
        Ok(q) => q,
        Err((status, e)) => return error(status, e),
    };
    match admin::show(spool, &qid.to_string()) {
        Ok(d) => {
            let mut v = serde_json::to_value(&d).unwrap_or_default();
            v["entry"]["state"] = State::of(&d.entry).name().into();
            json_reply(StatusCode::OK, v)
        }
        Err(e) => error(StatusCode::NOT_FOUND, e),
    }
}

/// `POST /api/queue/ID/ACTION` (`None`: `POST /api/queue/flush`, every message).
pub(super) async fn act(spool: &Spool, queue: &QueueHandle, target: Option<(&str, &str)>) -> Reply {
    let what = match target {
        None => Steer::Flush(None),
        Some((id, action)) => match find(spool, id) {
            Ok(qid) => match Steer::of(action, qid) {
                Some(s) => s,
                None => return error(StatusCode::NOT_FOUND, "no such action"),
            },
            Err((status, e)) => return error(status, e),
        },
    };
    match steer(spool, queue, what).await {
        Ok(()) => json_reply(StatusCode::OK, json!({ "ok": true })),
        Err(e) => error(StatusCode::CONFLICT, e),
    }
}

#[cfg(test)]
mod tests {
    use super::super::route::pairs;
    use super::*;
    use relais_queue::admin::RecipientStatus;

    fn entry(sender: &str, to: &[&str], arrival: u64, held: bool, attempts: u32) -> QueueEntry {
        QueueEntry {
            id: "X".into(),
            size: 10,
            arrival,
            sender: sender.into(),
            held,
            attempts,
            next_attempt: 0,
            recipients: to
                .iter()
                .map(|a| RecipientStatus {
                    address: a.to_string(),
                    status: "pending".into(),
                    reason: None,
                })
                .collect(),
        }
    }

    #[test]
    fn states() {
        assert_eq!(State::of(&entry("a", &[], 0, false, 0)), State::Active);
        assert_eq!(State::of(&entry("a", &[], 0, false, 2)), State::Deferred);
        assert_eq!(State::of(&entry("a", &[], 0, true, 2)), State::Held);
    }

    #[test]
    fn filters() {
        let now = 10_000;
        let fresh = entry("Alice@Example.org", &["bob@local.test"], now - 30, false, 0);
        let old = entry(
            "",
            &["carol@local.test", "dave@x.test"],
            now - 7200,
            false,
            3,
        );
        let held = entry("spam@junk.test", &["bob@local.test"], now - 600, true, 1);
        type Query<'a> = &'a [(&'a str, &'a str)];
        let table: &[(Query, [bool; 3])] = &[
            (&[], [true, true, true]),
            (&[("sender", "")], [true, true, true]),
            (&[("sender", "alice@example")], [true, false, false]),
            (&[("sender", "EXAMPLE.ORG")], [true, false, false]),
            (&[("recipient", "bob@")], [true, false, true]),
            (&[("recipient", "dave")], [false, true, false]),
            (&[("state", "active")], [true, false, false]),
            (&[("state", "deferred")], [false, true, false]),
            (&[("state", "held")], [false, false, true]),
            (&[("older_than", "600")], [false, true, true]),
            (&[("newer_than", "600")], [true, false, true]),
            (
                &[("older_than", "60"), ("newer_than", "3600")],
                [false, false, true],
            ),
            (
                &[("recipient", "bob"), ("state", "held")],
                [false, false, true],
            ),
            (&[("unknown", "x")], [true, true, true]),
        ];
        for (query, want) in table {
            let f = Filter::parse(&pairs(query)).unwrap();
            let got = [&fresh, &old, &held].map(|e| f.matches(e, now));
            assert_eq!(got, *want, "{query:?}");
        }
    }

    #[test]
    fn bad_filters_are_refused() {
        for query in [
            &[("state", "frozen")][..],
            &[("older_than", "ten")],
            &[("newer_than", "-1")],
        ] {
            assert!(Filter::parse(&pairs(query)).is_err(), "{query:?}");
        }
    }
}
