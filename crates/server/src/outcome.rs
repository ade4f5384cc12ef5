//! What happened when delivering to one recipient: the common currency of every delivery agent
//! (Maildir, pipe, file, LMTP, remote SMTP) and of the queue manager that retries and bounces.

use std::fmt;

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
