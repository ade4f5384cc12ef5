//! `[local]` and `[delivery]`: who gets mail here and how it is delivered, and how mail
//! leaves.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use relais_dns::Nameserver;

use crate::{
    HopConfig, LmtpTarget, MailboxKind, MtaStsConfig, NextHop, QuotaTable, TlsMode, duration,
    values,
};

/// Who gets mail in the local domains, and how it is delivered.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalConfig {
    /// Local parts that exist. Empty: every local part exists (catch-all), as the embedded
    /// default has it. `postmaster` always exists (RFC 5321 §4.5.1).
    pub users: Vec<String>,
    /// An aliases file in the `/etc/aliases` format (see [`crate::aliases`]), read again when it
    /// changes. Aliases apply before `users`: an alias need not be a user. At RCPT, an alias
    /// whose expansion has `:fail: text` is refused with `550 5.1.1` and that text, a loop with
    /// `550 5.4.6`, and an unreadable file gives `451 4.3.0`.
    pub aliases: Option<PathBuf>,
    /// Deliver local mailboxes over LMTP instead of to Maildirs: `"127.0.0.1:24"`,
    /// `"unix:/run/dovecot/lmtp"`. One transaction per message for all its mailboxes.
    pub lmtp: Option<LmtpTarget>,
    /// The user that alias commands (`|command`) and files (`/path/file`) run and are written
    /// as, when relais runs as root: never root. The command gets this user's uid and primary
    /// group, no supplementary groups; a file is opened (and created, mode 0600) with this
    /// user's file-system ids, so only files that user may write can be appended to. Not root:
    /// everything runs as relais' own user. Default: `nobody`.
    pub run_as: String,
    /// How long an alias command may run before it is killed and delivery is retried.
    #[serde(with = "duration")]
    pub command_timeout: Duration,
    /// Where the mailboxes are: `"maildir"` (`data_dir/mail/<user>`) or `"home"`
    /// (`~user/Maildir` of system users, with `~/.forward`; see [`MailboxKind`]).
    pub mailbox: MailboxKind,
    /// Bytes each mailbox of `local_domains` may hold (Maildir++ `maildirsize`); 0: no limit.
    /// Over it: `552 5.2.2 Mailbox full` at RCPT, or a bounce when a copy does not fit.
    pub quota: u64,
    /// Limits of single users (local part: bytes, 0 for none), over `quota`.
    pub quotas: std::collections::BTreeMap<String, u64>,
}

impl LocalConfig {
    /// The quota table of `local_domains`.
    pub fn quota_table(&self) -> QuotaTable {
        QuotaTable {
            default: self.quota,
            users: self.quotas.clone(),
        }
    }
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            users: Vec::new(),
            aliases: None,
            lmtp: None,
            run_as: "nobody".into(),
            command_timeout: Duration::from_secs(600),
            mailbox: MailboxKind::Maildir,
            quota: 0,
            quotas: Default::default(),
        }
    }
}

/// Delivery settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Keep accepted mail in the spool without delivering it (like Postfix's
    /// `defer_transports`): for maintenance, and for tests of restart behaviour.
    pub paused: bool,
    /// Wait after a first failed attempt (Postfix's `minimal_backoff_time`).
    #[serde(with = "duration")]
    pub first_retry: Duration,
    /// Longest wait between attempts (`maximal_backoff_time`).
    #[serde(with = "duration")]
    pub max_retry: Duration,
    /// After this long in the queue, undelivered mail bounces (`maximal_queue_lifetime`).
    #[serde(with = "duration")]
    pub lifetime: Duration,
    /// Warn senders who asked (NOTIFY=DELAY) after this long; 0: never
    /// (`delay_warning_time`).
    #[serde(with = "duration")]
    pub delay_warning: Duration,
    /// Send all remote mail through this host, `[host]:port` (Postfix's `relayhost`).
    pub relayhost: Option<NextHop>,
    /// Per-domain next hops, `"example.org" = "[192.0.2.1]:25"` (Postfix's transport map).
    pub routes: std::collections::BTreeMap<String, NextHop>,
    /// DNS server for MX lookups, `IP[:PORT]`; default: the system's resolv.conf.
    #[serde(with = "values::nameserver", skip_serializing_if = "Option::is_none")]
    pub resolver: Option<Nameserver>,
    /// Most simultaneous transactions to one destination domain.
    pub remote_concurrency: usize,
    /// Connect timeout for remote delivery.
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    /// Send remote mail with `BDAT` (RFC 3030 CHUNKING) to servers that offer it, as Exim
    /// does; `false` (the default, as Postfix): always `DATA`.
    pub chunking: bool,
    /// The local addresses remote delivery connects from, at most one IPv4 and one IPv6
    /// (Postfix's `smtp_bind_address` and `smtp_bind_address6`); a peer of the other family
    /// is reached from whatever address the system picks. Empty (default): the system picks.
    pub source_address: Vec<std::net::IpAddr>,
    /// TLS for remote delivery where `tls_policy` says nothing: `none`, `may` (the default:
    /// STARTTLS when offered, clear text if the handshake fails), `encrypt`, `verify`.
    pub tls: TlsMode,
    /// TLS per destination domain or next hop (`"[host]:port"`), over `tls`.
    pub tls_policy: std::collections::BTreeMap<String, TlsMode>,
    /// More trusted CA certificates (PEM) for `verify`, besides the system's.
    pub tls_ca_file: Option<PathBuf>,
    /// Settings per next hop (`[delivery.hop."[host]:port"]`): credentials, TLS on connect.
    pub hop: std::collections::BTreeMap<String, HopConfig>,
    /// Under `verify`, per destination domain or next hop: names the certificate may be valid
    /// for instead of the host's own (Postfix's `match=` of a policy entry).
    pub tls_match: std::collections::BTreeMap<String, Vec<String>>,
    /// MTA-STS (RFC 8461) for delivery by MX: `[delivery.mta_sts]`.
    pub mta_sts: MtaStsConfig,
    /// Where the daily TLS-RPT (RFC 8460) reports are written, one JSON file per policy
    /// domain and day; unset: none.
    pub tls_rpt_dir: Option<PathBuf>,
    /// For `dane`: the DNSKEY records DNSSEC validation starts from (a private zone's);
    /// unset: the root's keys.
    pub dnssec_trust_anchor: Option<PathBuf>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            paused: false,
            first_retry: Duration::from_secs(300),
            max_retry: Duration::from_secs(4000),
            lifetime: Duration::from_secs(5 * 86400),
            delay_warning: Duration::ZERO,
            relayhost: None,
            routes: Default::default(),
            resolver: None,
            remote_concurrency: 20,
            connect_timeout: Duration::from_secs(30),
            chunking: false,
            source_address: Vec::new(),
            tls: TlsMode::May,
            tls_policy: Default::default(),
            tls_ca_file: None,
            hop: Default::default(),
            tls_match: Default::default(),
            mta_sts: MtaStsConfig::default(),
            tls_rpt_dir: None,
            dnssec_trust_anchor: None,
        }
    }
}
