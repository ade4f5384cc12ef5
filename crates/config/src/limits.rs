//! `[limits]`: what one client, one session and one message may do.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{FreeSpace, duration, duration_ms};

/// Limits, with Postfix's defaults where it has them.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest message in octets (Postfix's `message_size_limit`); 0 for none.
    pub max_message_size: u64,
    /// Most recipients per message (`452 4.5.3` beyond).
    pub max_recipients: usize,
    /// Most simultaneous connections; beyond, `421 4.7.0` and close.
    pub max_connections: usize,
    /// Errors in a session before `421` and close (Postfix's `smtpd_hard_error_limit`).
    pub max_errors: u32,
    /// Waiting for a command (RFC 5321 §4.5.3.2.7: at least 5 minutes).
    #[serde(with = "duration")]
    pub command_timeout: Duration,
    /// Simultaneous connections from one client address (`421 4.7.0` beyond); 0 for no limit.
    pub max_connections_per_ip: usize,
    /// New connections per minute from one client address (`421 4.7.0` beyond); 0 for no limit
    /// (Postfix's `smtpd_client_connection_rate_limit`).
    pub connection_rate_per_ip: u32,
    /// Messages in one session (`421 4.7.0` beyond); 0 for no limit.
    pub max_messages_per_session: u32,
    /// Disconnect clients that pipeline where RFC 2920 forbids it (`554 5.5.0`).
    pub forbid_unauth_pipelining: bool,
    /// Messages (MAIL FROM) a minute from one client address, counted in the shared state
    /// (`450 4.7.1` beyond, Postfix's `smtpd_client_message_rate_limit`); 0 for no limit.
    /// Relay networks are not counted.
    pub message_rate_per_ip: u64,
    /// The window of `message_rate_per_ip` (Postfix's `anvil_rate_time_unit`): a minute by
    /// default; the count starts again with each window.
    #[serde(with = "duration")]
    pub rate_time_unit: Duration,
    /// Recipients an hour for one authenticated user (`450 4.7.1` beyond, and a log line
    /// naming the user: a stolen password sending spam stops there); 0 for no limit.
    pub recipient_rate_per_user: u64,
    /// Errors in a session after which every error reply is delayed (the tarpit of Postfix's
    /// `smtpd_soft_error_limit`, 10 there); 0 (the default) for never. `max_errors` still
    /// ends the session.
    pub soft_error_limit: u32,
    /// The delay of each error reply beyond `soft_error_limit`, growing by as much with each
    /// error (at most 10 times as much).
    #[serde(with = "duration_ms")]
    pub error_sleep: Duration,
    /// Waiting for more message content (RFC 5321 §4.5.3.2.5 gives the client 3 minutes a block
    /// and 10 minutes for the final dot; we wait as long as the longest).
    #[serde(with = "duration")]
    pub data_timeout: Duration,
    /// The whole time a client may take to send one command line, from the reply before it to
    /// its end, however often it sends a byte (a slowloris is closed with `421 4.4.2`; as
    /// Postfix's `smtpd_timeout` with `smtpd_per_request_deadline = yes`).
    #[serde(with = "duration")]
    pub command_deadline: Duration,
    /// The whole time a client may take to send a message's content, from `354` (or a BDAT
    /// line) to its end, before `min_data_rate` adds to it.
    #[serde(with = "duration")]
    pub data_deadline: Duration,
    /// Octets a second the content must arrive at, at least: each `min_data_rate` octets
    /// received add a second to `data_deadline` (Postfix's `smtpd_min_data_rate`); 0: the
    /// deadline does not grow.
    pub min_data_rate: u64,
    /// Room the file system of the spool and the Maildirs must keep: MAIL FROM is answered
    /// `452 4.3.1 Insufficient system storage` below it (its SIZE counted), and deliveries to
    /// Maildirs wait (as Postfix's `queue_minfree`, which it also checks at MAIL).
    pub min_free_space: FreeSpace,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 10_240_000,
            max_recipients: 1000,
            max_connections: 10_000,
            max_errors: 20,
            max_connections_per_ip: 50,
            connection_rate_per_ip: 0,
            max_messages_per_session: 0,
            forbid_unauth_pipelining: true,
            message_rate_per_ip: 0,
            rate_time_unit: Duration::from_secs(60),
            recipient_rate_per_user: 0,
            soft_error_limit: 0,
            error_sleep: Duration::from_secs(1),
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
            command_deadline: Duration::from_secs(300),
            data_deadline: Duration::from_secs(600),
            min_data_rate: 500,
            min_free_space: FreeSpace::default(),
        }
    }
}
