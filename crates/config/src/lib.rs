//! `relais-config`: the server configuration, a TOML file or the embedded default when there
//! is none, read into typed values.
//!
//! Floor 2 of the flow of a message: every crate of the server above the protocol, the spool
//! and DNS reads its settings from here. Values with a grammar of their own ([`Cidr`],
//! [`NextHop`], [`LmtpTarget`], the resolver's [`Nameserver`]) are parsed once, when the file
//! is read, so that no crate above parses them again.
//!
//! Every field has a default, so an empty file is a working configuration: listen on
//! `127.0.0.1:2525`, the system host name, local domains `localhost` and that host name, every
//! local part delivered to a Maildir under `./relais-data/mail`. Unknown keys are errors, and
//! every error names the key and the line.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use relais_dns::Nameserver;
use serde::{Deserialize, Serialize};

mod domains;
mod free_space;
mod mailbox;
mod outbound;
mod policy;
mod values;

pub use domains::DomainConfig;
pub use free_space::FreeSpace;
pub use mailbox::{MailboxKind, QuotaTable, SystemUser, system_user};
pub use outbound::{HopConfig, MtaStsConfig, TlsMode, hop_key};
pub use policy::{
    CheckAction, DkimKeyConfig, DmarcAction, HeloAction, MilterAction, MilterConfig, PolicyConfig,
    PolicyTexts, SpfAction, SrsConfig, StateConfig, UnknownClient,
};
pub use values::{BadValue, Cidr, LmtpTarget, NextHop, WeightedZone, is_safe_local_part};

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Our host name: in the banner, EHLO and `Received` headers. Default: the system's.
    pub hostname: String,
    /// Text after `ESMTP` in the banner. No version by default, so nothing leaks.
    pub banner: String,
    /// Where the spool (`spool/`) and the mailboxes (`mail/`) live.
    pub data_dir: PathBuf,
    /// Domains whose mail is delivered here. Default: `localhost` and the host name.
    pub local_domains: Vec<String>,
    /// The listening sockets.
    pub listener: Vec<ListenerConfig>,
    /// Limits on clients and messages.
    pub limits: Limits,
    /// Local recipients.
    pub local: LocalConfig,
    /// Delivery settings.
    pub delivery: DeliveryConfig,
    /// Event-loop threads serving connections; 0 means one per CPU.
    pub workers: usize,
    /// Client networks allowed to relay without AUTH (Postfix's `mynetworks`), as CIDR blocks
    /// (`192.0.2.0/24`, `::1/128`). Empty by default: nobody relays unauthenticated.
    pub relay_networks: Vec<Cidr>,
    /// TLS certificate.
    pub tls: TlsConfig,
    /// SMTP AUTH.
    pub auth: AuthConfig,
    /// Started as root, relais binds its listeners, gives `data_dir` to this user and its
    /// primary group, and runs as that user from then on (no supplementary groups). Unset: it
    /// runs as it was started.
    pub user: Option<String>,
    /// The HTTP listener: Prometheus metrics, health checks.
    pub http: HttpConfig,
    /// Where log lines go: a file (appended to; reopened on SIGUSR1 and on reload, for
    /// logrotate), or standard error when unset.
    pub log_file: Option<PathBuf>,
    /// `text` (one line per event, Postfix's wording) or `json` (one object per line with
    /// fixed field names: `ts`, `level`, `event`, `queue_id`, `client`, `from`, `to`, …).
    pub log_format: LogFormat,
    /// Keep running as root with a listener on an address other than loopback. Off: `relais
    /// serve` started as root with such a listener and no `user` refuses to start.
    pub allow_root: bool,
    /// The DNS server of every lookup of the server (SPF, DKIM, DMARC, MX), `IP[:PORT]`;
    /// default: `[delivery] resolver` when set, else the system's resolv.conf.
    #[serde(with = "values::nameserver", skip_serializing_if = "Option::is_none")]
    pub resolver: Option<Nameserver>,
    /// Sender authentication at the door: SPF, DKIM, DMARC, ARC.
    pub policy: PolicyConfig,
    /// DKIM signing keys, one per sender domain (`[[dkim]]`): mail from authenticated
    /// submission and local submission is signed with the key of its `From:` domain.
    pub dkim: Vec<DkimKeyConfig>,
    /// The Sender Rewriting Scheme for mail aliases forward off the machine.
    pub srs: SrsConfig,
    /// Where greylisting entries and rate counters live.
    pub state: StateConfig,
    /// Content filters asked about every message received by SMTP (`[[milter]]`), in order.
    pub milter: Vec<MilterConfig>,
    /// Virtual domains (`[[domain]]`), each with its own users, aliases and catch-all.
    pub domain: Vec<DomainConfig>,
}

/// TLS settings. Without `cert` and `key`, a self-signed certificate for the host name is made
/// at first start and kept in `data_dir/tls/`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Offer TLS at all (STARTTLS on mx, required on submission, implicit on submissions).
    pub enabled: bool,
    /// PEM certificate chain.
    pub cert: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
    /// The oldest protocol version offered: `"1.2"` (the default) or `"1.3"`.
    pub min_version: TlsVersion,
    /// More certificates, each served to the clients that ask (SNI) for one of its DNS names
    /// (wildcards included); `cert` and `key` serve every other client.
    pub sni: Vec<CertificatePair>,
}

/// A certificate chain and its key, PEM files.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CertificatePair {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum TlsVersion {
    /// TLS 1.2 (and 1.3).
    #[default]
    #[serde(rename = "1.2")]
    V1_2,
    /// TLS 1.3 only.
    #[serde(rename = "1.3")]
    V1_3,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            enabled: true,
            cert: None,
            key: None,
            min_version: TlsVersion::V1_2,
            sni: Vec::new(),
        }
    }
}

/// SMTP AUTH settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Mechanisms offered (`PLAIN`, `LOGIN`). AUTH is offered only when users exist.
    pub mechanisms: Vec<String>,
    /// Offer AUTH on clear-text connections too (off: `538 5.7.11` until STARTTLS).
    pub allow_plaintext: bool,
    /// Users and their argon2 password hashes (`relais user add NAME` makes one).
    pub users: Vec<AuthUser>,
    /// A file of `name:argon2-hash` lines, read at start, in addition to `users`.
    pub users_file: Option<PathBuf>,
    /// An authenticated user may only send as its own addresses (`name@` a local domain, or
    /// the addresses listed for it).
    pub sender_must_match: bool,
    /// Failed AUTH attempts allowed per client address within `failure_window`; beyond, AUTH
    /// is refused with `454 4.7.0` until the window passes.
    pub max_failures: u32,
    /// The window for `max_failures`.
    #[serde(with = "duration")]
    pub failure_window: Duration,
    /// Delay before answering a failed AUTH, to slow down guessing.
    #[serde(with = "duration_ms")]
    pub failure_delay: Duration,
}

/// One AUTH user.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthUser {
    /// The login name.
    pub name: String,
    /// Its argon2 hash in PHC format (`$argon2id$v=19$…`).
    pub hash: String,
    /// Extra sender addresses this user may use when `sender_must_match` is on.
    #[serde(default)]
    pub addresses: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            mechanisms: vec!["PLAIN".into(), "LOGIN".into()],
            allow_plaintext: false,
            users: Vec::new(),
            users_file: None,
            sender_must_match: false,
            max_failures: 5,
            failure_window: Duration::from_secs(600),
            failure_delay: Duration::from_millis(1000),
        }
    }
}

/// One listening socket.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Address and port; port 0 lets the system pick one (it is logged).
    pub address: SocketAddr,
    /// What the port is for.
    #[serde(default)]
    pub role: Role,
}

/// The HTTP listener (off unless `address` is set).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Where `/metrics`, `/healthz` and `/readyz` are served, e.g. `127.0.0.1:9025`.
    pub address: Option<SocketAddr>,
    /// A bearer token every request must carry (`Authorization: Bearer TOKEN`); required when
    /// `address` is not a loopback address.
    pub token: Option<String>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line per event: the time, the level, the message.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The job of a listener, which sets its rules.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Port 25: mail for our domains from anyone; STARTTLS offered; AUTH only under TLS; relay
    /// only for authenticated clients and `relay_networks`.
    #[default]
    Mx,
    /// Port 587 (RFC 6409): STARTTLS required before anything else, AUTH required before MAIL.
    Submission,
    /// Port 465 (RFC 8314): TLS from the first byte, AUTH required before MAIL.
    Submissions,
}

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

impl Default for Config {
    fn default() -> Self {
        Config {
            hostname: String::new(),
            banner: "relais".into(),
            data_dir: PathBuf::from("./relais-data"),
            local_domains: Vec::new(),
            listener: vec![ListenerConfig {
                address: SocketAddr::from(([127, 0, 0, 1], 2525)),
                role: Role::Mx,
            }],
            limits: Limits::default(),
            local: LocalConfig::default(),
            delivery: DeliveryConfig::default(),
            workers: 0,
            relay_networks: Vec::new(),
            tls: TlsConfig::default(),
            auth: AuthConfig::default(),
            user: None,
            allow_root: false,
            log_file: None,
            log_format: LogFormat::Text,
            http: HttpConfig::default(),
            resolver: None,
            policy: PolicyConfig::default(),
            dkim: Vec::new(),
            srs: SrsConfig::default(),
            state: StateConfig::default(),
            milter: Vec::new(),
            domain: Vec::new(),
        }
    }
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

/// A configuration that could not be read.
#[derive(Debug)]
pub struct ConfigError {
    /// The file, when there is one.
    pub path: Option<PathBuf>,
    /// What is wrong, naming the key and the line.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "{}: {}", p.display(), self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// The embedded default, completed with the system's host name.
    pub fn embedded() -> Config {
        let mut c = Config::default();
        c.complete();
        c
    }

    /// Reads a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: Some(path.to_path_buf()),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text).map_err(|mut e| {
            e.path = Some(path.to_path_buf());
            e
        })
    }

    /// Parses TOML text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let mut c: Config = toml::from_str(text).map_err(|e| ConfigError {
            path: None,
            message: describe_toml_error(text, &e),
        })?;
        c.validate(text)?;
        c.complete();
        Ok(c)
    }

    /// Checks what serde cannot: values that parse but make no sense.
    fn validate(&self, text: &str) -> Result<(), ConfigError> {
        let err = |key: &str, msg: String| ConfigError {
            path: None,
            message: format!("{}key `{key}`: {msg}", line_of(text, key)),
        };
        if self.listener.is_empty() {
            return Err(err(
                "listener",
                "at least one [[listener]] is needed".into(),
            ));
        }
        if self.limits.rate_time_unit.as_secs() == 0 {
            return Err(err("rate_time_unit", "must be at least one second".into()));
        }
        if !self.hostname.is_empty() && !relais_proto::address::is_domain(&self.hostname) {
            return Err(err(
                "hostname",
                format!("{:?} is not a host name", self.hostname),
            ));
        }
        for d in &self.local_domains {
            if !relais_proto::address::is_domain(d) {
                return Err(err("local_domains", format!("{d:?} is not a domain")));
            }
        }
        let v4 = self.delivery.source_address.iter().filter(|a| a.is_ipv4());
        if v4.count() > 1
            || self
                .delivery
                .source_address
                .iter()
                .filter(|a| a.is_ipv6())
                .count()
                > 1
        {
            return Err(err(
                "source_address",
                "at most one IPv4 and one IPv6 address".into(),
            ));
        }
        if let Some((key, msg)) = outbound::problem(&self.delivery.hop, &self.delivery.tls_policy) {
            return Err(err(key, msg));
        }
        for d in &self.domain {
            if let Some((key, msg)) = d.problem(&self.local_domains) {
                return Err(ConfigError {
                    path: None,
                    message: format!("{}key `{key}`: {msg}", line_of_domain(text, key, d)),
                });
            }
        }
        if let Some(name) = domains::repeated(&self.domain) {
            return Err(err("name", format!("[[domain]] {name:?} is defined twice")));
        }
        for u in &self.local.users {
            if !is_safe_local_part(&u.to_ascii_lowercase()) {
                return Err(err("users", format!("{u:?} is not a usable local part")));
            }
        }
        if let Some(a) = self.http.address
            && !a.ip().is_loopback()
            && self.http.token.as_deref().is_none_or(str::is_empty)
        {
            return Err(err(
                "address",
                format!("[http] on {a}, off loopback, needs a token"),
            ));
        }
        if self.user.as_deref().is_some_and(|u| u.trim().is_empty()) {
            return Err(err("user", "needs a user name".into()));
        }
        if self.local.mailbox == MailboxKind::Home
            && let Some(u) = &self.user
        {
            return Err(err(
                "mailbox",
                format!(
                    "mailbox = \"home\" writes each user's Maildir as that user: relais must \
                     stay root, so it cannot also become user = {u:?}"
                ),
            ));
        }
        if self.local.run_as.trim().is_empty() {
            return Err(err("run_as", "needs a user name".into()));
        }
        if self.local.command_timeout.is_zero() {
            return Err(err("command_timeout", "must be more than 0".into()));
        }
        for m in &self.auth.mechanisms {
            if !matches!(m.to_ascii_uppercase().as_str(), "PLAIN" | "LOGIN") {
                return Err(err(
                    "mechanisms",
                    format!("{m:?}: only PLAIN and LOGIN are supported"),
                ));
            }
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err(err("cert", "`cert` and `key` go together".into()));
        }
        for u in &self.auth.users {
            if !u.hash.starts_with("$argon2") {
                return Err(err(
                    "hash",
                    format!(
                        "user {:?}: not an argon2 hash (make one with `relais user add`)",
                        u.name
                    ),
                ));
            }
        }
        for (key, d) in [
            ("command_timeout", self.limits.command_timeout),
            ("data_timeout", self.limits.data_timeout),
            ("command_deadline", self.limits.command_deadline),
            ("data_deadline", self.limits.data_deadline),
        ] {
            if d.is_zero() {
                return Err(err(key, "must be more than 0".into()));
            }
        }
        if self.limits.max_connections == 0 {
            return Err(err("max_connections", "must be at least 1".into()));
        }
        if self.limits.max_errors == 0 {
            return Err(err("max_errors", "must be at least 1".into()));
        }
        for z in &self.policy.rhsbl {
            if !relais_proto::address::is_domain(z.trim_end_matches('.')) {
                return Err(err("rhsbl", format!("{z:?} is not a DNS zone")));
            }
        }
        if self.policy.reject_unknown_client != UnknownClient::Off && !self.policy.reverse_dns {
            return Err(err(
                "reject_unknown_client",
                "needs reverse_dns = true".into(),
            ));
        }
        if !self.srs.domain.is_empty() && !relais_proto::address::is_domain(&self.srs.domain) {
            return Err(err(
                "domain",
                format!("[srs] {:?} is not a domain", self.srs.domain),
            ));
        }
        if !self.state.redis.is_empty() && !is_redis_url(&self.state.redis) {
            return Err(err(
                "redis",
                format!(
                    "[state] {:?} is not a Redis URL (redis://host:port[/db])",
                    self.state.redis
                ),
            ));
        }
        for k in &self.dkim {
            if !relais_proto::address::is_domain(&k.domain) {
                return Err(err(
                    "domain",
                    format!("[[dkim]] {:?} is not a domain", k.domain),
                ));
            }
            if !relais_proto::address::is_domain(&k.selector) {
                return Err(err(
                    "selector",
                    format!("[[dkim]] {:?} is not a usable selector", k.selector),
                ));
            }
        }
        Ok(())
    }

    /// Fills what depends on the system: the host name and the local domains.
    fn complete(&mut self) {
        if self.hostname.is_empty() {
            self.hostname = system_hostname();
        }
        if self.local_domains.is_empty() {
            self.local_domains.push("localhost".into());
            if self.hostname != "localhost" {
                self.local_domains.push(self.hostname.clone());
            }
        }
        for d in &mut self.local_domains {
            *d = d.to_ascii_lowercase();
        }
        for u in &mut self.local.users {
            *u = u.to_ascii_lowercase();
        }
        self.local.quotas = std::mem::take(&mut self.local.quotas)
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        for d in &mut self.domain {
            d.complete();
        }
        let canonical = |k: &String| match k.starts_with('[') {
            true => hop_key(k).unwrap_or_else(|| k.clone()),
            false => k.to_ascii_lowercase(),
        };
        self.delivery.tls_match = std::mem::take(&mut self.delivery.tls_match)
            .into_iter()
            .map(|(k, v)| (canonical(&k), v))
            .collect();
        self.delivery.tls_policy = std::mem::take(&mut self.delivery.tls_policy)
            .into_iter()
            .map(|(k, v)| (canonical(&k), v))
            .collect();
        self.delivery.hop = std::mem::take(&mut self.delivery.hop)
            .into_iter()
            .map(|(k, v)| (hop_key(&k).unwrap_or(k), v))
            .collect();
        for m in &mut self.auth.mechanisms {
            *m = m.to_ascii_uppercase();
        }
        if self.policy.authserv_id.is_empty() {
            self.policy.authserv_id = self.hostname.clone();
        }
        for k in &mut self.dkim {
            k.domain = k.domain.to_ascii_lowercase();
        }
        self.srs.domain = self.srs.domain.to_ascii_lowercase();
        for z in &mut self.policy.rhsbl {
            *z = z.trim_end_matches('.').to_ascii_lowercase();
        }
    }

    /// The DNS server of the server's lookups: the top-level `resolver`, else `[delivery]
    /// resolver`, else the system's.
    pub fn nameserver(&self) -> Nameserver {
        self.resolver.or(self.delivery.resolver).unwrap_or_default()
    }

    /// The effective settings as TOML, for `relais config check`.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot show the configuration: {e}\n"))
    }

    /// How many worker threads serve connections.
    pub fn workers(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }

    /// Where the spool lives.
    pub fn spool_dir(&self) -> PathBuf {
        self.data_dir.join("spool")
    }

    /// Where the Maildirs live.
    pub fn mail_dir(&self) -> PathBuf {
        self.data_dir.join("mail")
    }
}

/// The system's host name, or `localhost` when it has none that is a valid domain.
pub fn system_hostname() -> String {
    let h = gethostname::gethostname()
        .to_string_lossy()
        .to_ascii_lowercase();
    if relais_proto::address::is_domain(&h) {
        h
    } else {
        "localhost".into()
    }
}

/// A duration as the configuration writes it (`300`, `"300s"`, `"5m"`, `"1h"`, `"2d"`), for
/// command-line options that take one too.
pub fn parse_duration(text: &str) -> Option<Duration> {
    duration::parse(text)
}

/// `redis://[user:password@]host[:port][/db]`: a host, a port that is a number, a database
/// that is a number. (No `rediss://`: relais builds its Redis client without TLS.)
fn is_redis_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("redis://") else {
        return false;
    };
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let (addr, db) = rest.split_once('/').unwrap_or((rest, ""));
    if !db.is_empty() && db.parse::<u32>().is_err() {
        return false;
    }
    let (host, port) = match addr.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((h, p)) if h.parse::<std::net::Ipv6Addr>().is_ok() => (h, p),
            _ => return false,
        },
        None => addr.rsplit_once(':').map_or((addr, ""), |(h, p)| (h, p)),
    };
    let port = port.strip_prefix(':').unwrap_or(port);
    if !port.is_empty() && port.parse::<u16>().map_or(true, |p| p == 0) {
        return false;
    }
    !host.is_empty()
        && (host.parse::<std::net::IpAddr>().is_ok()
            || relais_proto::address::is_domain(host)
            || host == "localhost")
}

/// `line N: ` for the first line that sets `key`, or nothing if it is not found.
fn line_of(text: &str, key: &str) -> String {
    for (i, line) in text.lines().enumerate() {
        let l = line.trim_start();
        if l.starts_with(key) && l[key.len()..].trim_start().starts_with('=') {
            return format!("line {}: ", i + 1);
        }
    }
    String::new()
}

/// `line N: ` for `key` in the `[[domain]]` table of `d` (the first line setting `key` after
/// the line `name = "<d.name>"`), or [`line_of`] when that is not found.
fn line_of_domain(text: &str, key: &str, d: &DomainConfig) -> String {
    let mut inside = false;
    for (i, line) in text.lines().enumerate() {
        let l = line.trim_start();
        if l.starts_with('[') {
            inside = false;
        }
        let sets = |k: &str| l.starts_with(k) && l[k.len()..].trim_start().starts_with('=');
        if sets("name") && l.contains(&format!("{:?}", d.name)) {
            inside = true;
        }
        if inside && sets(key) {
            return format!("line {}: ", i + 1);
        }
    }
    line_of(text, key)
}

/// Turns a TOML error into one line naming the line, the key and what is wrong.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim().to_string();
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            let src = text.lines().nth(line - 1).unwrap_or("").trim();
            format!("line {line}: {msg} (in `{src}`)")
        }
        None => msg,
    }
}

/// Short durations written in milliseconds (`1000`) or with a unit (`"1s"`, `"250ms"`).
mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", d.as_millis()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Millis(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Millis(ms) => Ok(Duration::from_millis(ms)),
            Raw::Text(t) => match t.strip_suffix("ms") {
                Some(ms) => ms.trim().parse().map(Duration::from_millis).ok(),
                None => super::duration::parse(&t),
            }
            .ok_or_else(|| {
                D::Error::custom(format!(
                    "{t:?} is not a duration (like 1000, \"250ms\", \"1s\")"
                ))
            }),
        }
    }
}

/// Durations written as `300`, `"300s"`, `"5m"` or `"1h"`.
mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}s", d.as_secs()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(s) => Ok(Duration::from_secs(s)),
            Raw::Text(t) => parse(&t).ok_or_else(|| {
                D::Error::custom(format!(
                    "{t:?} is not a duration (like 300, \"300s\", \"5m\", \"1h\")"
                ))
            }),
        }
    }

    pub fn parse(t: &str) -> Option<Duration> {
        let t = t.trim();
        let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
        let n: u64 = num.parse().ok()?;
        let mult = match unit {
            "" | "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86400,
            _ => return None,
        };
        Some(Duration::from_secs(n.checked_mul(mult)?))
    }
}

#[cfg(test)]
mod tests;
