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

mod delivery;
mod domains;
mod durations;
mod free_space;
mod limits;
mod mailbox;
mod outbound;
mod policy;
mod values;

pub use delivery::{DeliveryConfig, LocalConfig};
pub use domains::DomainConfig;
pub(crate) use durations::{duration, duration_ms};
pub use free_space::FreeSpace;
pub use limits::Limits;
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

#[cfg(test)]
mod tests;
