//! What happened when delivering to one recipient: the common currency of every delivery agent
//! (Maildir, pipe, file, LMTP, remote SMTP) and of the queue manager that retries and bounces.

use std::fmt;

use relais_proto::Reply;

/// The result of one delivery attempt for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered; the text says where (`maildir /path`, `250 2.0.0 Ok: queued as X` from a
    /// remote host, …).
    Delivered(String),
    /// Not delivered this time; try again later. The status (4.x.x) and text say why.
    Deferred {
        /// Enhanced status code, e.g. `4.4.1`.
        status: String,
        /// Human-readable reason, with the remote reply when there is one.
        reason: String,
    },
    /// Not deliverable: bounce. The status (5.x.x) and text say why.
    Failed {
        /// Enhanced status code, e.g. `5.1.1`.
        status: String,
        /// Human-readable reason, with the remote reply when there is one.
        reason: String,
    },
}

impl Outcome {
    /// A deferral with this status and reason.
    pub fn deferred(status: &str, reason: impl Into<String>) -> Outcome {
        Outcome::Deferred {
            status: status.to_string(),
            reason: reason.into(),
        }
    }

    /// A permanent failure with this status and reason.
    pub fn failed(status: &str, reason: impl Into<String>) -> Outcome {
        Outcome::Failed {
            status: status.to_string(),
            reason: reason.into(),
        }
    }

    /// The outcome a server's reply stands for: delivered for 2xx, deferred for 4xx, failed
    /// for 5xx, with the reply's enhanced status (or `4.0.0`/`5.0.0` when it has none). The
    /// reason reads `host NAME said: CODE TEXT`, and ` (in reply to STAGE)` when the stage is
    /// given, as Postfix logs it; a report quotes what follows `said: ` as the SMTP diagnostic.
    pub fn from_reply(reply: &Reply, host: &str, stage: Option<&str>) -> Outcome {
        let status = reply
            .status
            .map(|s| s.to_string())
            .unwrap_or_else(|| format!("{}.0.0", reply.code / 100));
        let mut reason = format!("host {host} said: {reply}");
        if let Some(stage) = stage {
            reason.push_str(&format!(" (in reply to {stage})"));
        }
        if reply.is_positive() {
            Outcome::Delivered(reason)
        } else if reply.is_transient() {
            Outcome::deferred(&status, reason)
        } else {
            Outcome::failed(&status, reason)
        }
    }

    /// The same outcome as a deferral: what a refused greeting or a broken connection says is
    /// nothing final about the mail.
    pub fn into_deferred(self) -> Outcome {
        match self {
            Outcome::Failed { reason, .. } => Outcome::deferred("4.4.2", reason),
            other => other,
        }
    }

    /// True once nothing more will be tried: delivered or failed.
    pub fn is_final(&self) -> bool {
        !matches!(self, Outcome::Deferred { .. })
    }

    /// `sent`, `deferred` or `bounced`, as the log says it.
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Delivered(_) => "sent",
            Outcome::Deferred { .. } => "deferred",
            Outcome::Failed { .. } => "bounced",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Delivered(d) => write!(f, "status=sent ({d})"),
            Outcome::Deferred { status, reason } => {
                write!(f, "status=deferred ({status} {reason})")
            }
            Outcome::Failed { status, reason } => write!(f, "status=bounced ({status} {reason})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_become_outcomes() {
        let reply = |text: &str| {
            let (code, rest) = text.split_at(3);
            let rest = rest.trim_start();
            let status = rest
                .split(' ')
                .next()
                .and_then(relais_proto::EnhancedStatus::parse);
            let text = if status.is_some() {
                rest.split_once(' ').map_or("", |(_, t)| t)
            } else {
                rest
            };
            Reply::new(code.parse().unwrap(), status, text)
        };
        let table: &[(&str, Option<&str>, Outcome)] = &[
            (
                "250 2.0.0 Ok: queued as X",
                None,
                Outcome::Delivered("host mx said: 250 2.0.0 Ok: queued as X".into()),
            ),
            (
                "451 4.3.0 Not today",
                None,
                Outcome::deferred("4.3.0", "host mx said: 451 4.3.0 Not today"),
            ),
            (
                "550 No such user",
                Some("RCPT TO"),
                Outcome::failed(
                    "5.0.0",
                    "host mx said: 550 No such user (in reply to RCPT TO)",
                ),
            ),
            (
                "421 busy",
                Some("end of data"),
                Outcome::deferred("4.0.0", "host mx said: 421 busy (in reply to end of data)"),
            ),
        ];
        for (text, stage, want) in table {
            let reply = reply(text);
            assert_eq!(&Outcome::from_reply(&reply, "mx", *stage), want, "{text}");
        }
    }
}
