//! What the session hands over with a complete message: the envelope.

use crate::address::{Mailbox, ReversePath};
use crate::params::{MailParams, RcptParams};

/// One accepted recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The address as given in RCPT TO.
    pub to: Mailbox,
    /// Its DSN parameters.
    pub params: RcptParams,
}

/// Everything about one message except its content: what the spool keeps beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The HELO/EHLO name the client gave.
    pub helo: String,
    /// True if the client used EHLO (the `Received` header says ESMTP).
    pub esmtp: bool,
    /// MAIL FROM.
    pub from: ReversePath,
    /// MAIL FROM parameters.
    pub mail_params: MailParams,
    /// Accepted recipients, in order.
    pub recipients: Vec<Recipient>,
    /// Octets of content received (after dot-unstuffing).
    pub size: u64,
    /// True if the content came with BDAT.
    pub chunked: bool,
    /// True if the content had bare LF line ends (stored as CRLF).
    pub bare_lf: bool,
}
