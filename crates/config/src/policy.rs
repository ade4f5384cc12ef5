//! The tables of what the door checks of a sender and what outgoing mail gets: `[policy]`
//! (sender authentication, client checks, greylisting), `[[dkim]]` (signing keys), `[srs]`
//! (the sender of forwarded copies) and `[state]` (where greylisting and counters live).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{LmtpTarget, WeightedZone};

/// `[state]`: where greylisting entries and rate counters live.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// A Redis server that several relais hosts share (`redis://host:port[/db]`, with
    /// `user:password@` if it asks); empty (the default): the embedded store in
    /// `data_dir/state.redb`.
    pub redis: String,
}

/// `[srs]`: copies an alias forwards to another domain leave with an envelope sender at our
/// domain (`SRS0=…@domain`), so they pass SPF where they land; bounces to such an address
/// come back and go on to the original sender.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SrsConfig {
    /// Rewrite at all.
    pub enabled: bool,
    /// The domain of rewritten addresses; default: the host name. Bounces to it are
    /// accepted (when their hash is good) whether or not it is a local domain.
    pub domain: String,
    /// The secret of the hashes; default: a random one made at first start and kept in
    /// `data_dir/srs.secret`. Every MX of a domain needs the same.
    pub secret: String,
    /// How long a rewritten address takes bounces.
    #[serde(with = "crate::duration")]
    pub max_age: Duration,
}

impl Default for SrsConfig {
    fn default() -> Self {
        SrsConfig {
            enabled: true,
            domain: String::new(),
            secret: String::new(),
            max_age: Duration::from_secs(21 * 86_400),
        }
    }
}

/// `[policy]`: what the door checks of a sender, and what it does with the answer. Every
/// check is `off` by default, so the embedded default needs no DNS.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// SPF of the MAIL FROM domain (of the HELO name for the null sender).
    pub spf: SpfAction,
    /// With `spf = "reject"`, also refuse `softfail` (`~all`).
    pub softfail_reject: bool,
    /// DKIM signatures of every received message, verified and recorded.
    pub dkim: CheckAction,
    /// DMARC of the `From:` domain: `enforce` refuses `p=reject` and files `p=quarantine`
    /// into the Maildir's `Junk` folder.
    pub dmarc: DmarcAction,
    /// ARC chains (RFC 8617), verified and recorded.
    pub arc: CheckAction,
    /// Messages larger than this are not held in memory for DKIM, DMARC and ARC: they are
    /// recorded `dkim=neutral (message too large to verify)`, and DMARC relies on SPF alone.
    pub verify_max_size: u64,
    /// The name in our `Authentication-Results` headers (RFC 8601's authserv-id); default:
    /// the host name. Incoming headers that claim it are removed.
    pub authserv_id: String,
    /// Look up every client's PTR and whether it resolves back (forward-confirmed reverse
    /// DNS), for the log (`client=name[ip]`), the `Received` header and
    /// `reject_unknown_client`. Off in the embedded default, which asks no DNS.
    pub reverse_dns: bool,
    /// DNS lists asked about every client at connect (`zone` or `zone*weight`; a white list
    /// has a negative weight), in parallel, as Postfix's postscreen does.
    pub dnsbl: Vec<WeightedZone>,
    /// The sum of the weights of the lists that name a client at which it is refused.
    pub dnsbl_threshold: i32,
    /// Lists of sender domains (RHSBL) asked about at MAIL FROM.
    pub rhsbl: Vec<String>,
    /// Refuse clients without a forward-confirmed PTR: `temporary` (`450 4.7.25`) or
    /// `permanent` (`550 5.7.25`). Needs `reverse_dns`.
    pub reject_unknown_client: UnknownClient,
    /// Refuse a HELO that is no fully-qualified name nor an address literal, or that claims
    /// to be us (`504 5.5.2`, at MAIL FROM as Postfix does).
    pub helo: HeloAction,
    /// How long the connect-time lookups (PTR, DNS lists) may take before MAIL FROM goes on
    /// without them.
    #[serde(with = "crate::duration_ms")]
    pub lookup_timeout: Duration,
    /// Greylist strangers: the first try of a (client network, sender, recipient) is deferred
    /// (`451 4.7.1`), a retry after `greylist_delay` accepted.
    pub greylist: bool,
    /// How long a client must wait before its retry is accepted.
    #[serde(with = "crate::duration")]
    pub greylist_delay: Duration,
    /// How long a first try is remembered; a retry after that counts as a first try.
    #[serde(with = "crate::duration")]
    pub greylist_window: Duration,
    /// How long a client network that retried correctly passes without greylisting.
    #[serde(with = "crate::duration")]
    pub greylist_whitelist: Duration,
    /// Own texts for the refusals, instead of Postfix's: `{client}` is the client's address,
    /// `{list}` the list that named it, `{helo}` the HELO name, `{sender}` the sender.
    pub texts: PolicyTexts,
}

/// `[policy.texts]`: the human part of each refusal.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyTexts {
    /// A client on DNS lists.
    pub dnsbl: Option<String>,
    /// A sender domain on a list.
    pub rhsbl: Option<String>,
    /// A client without a confirmed PTR.
    pub unknown_client: Option<String>,
    /// A bad HELO.
    pub helo: Option<String>,
}

/// `reject_unknown_client`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownClient {
    /// No check.
    #[default]
    Off,
    /// `450 4.7.25`: the client may try again (its DNS may be fixed).
    Temporary,
    /// `550 5.7.25`.
    Permanent,
}

/// `helo`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HeloAction {
    /// Any HELO name goes (seed 000's `helo x`).
    #[default]
    Off,
    /// `504 5.5.2`.
    Reject,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            spf: SpfAction::Off,
            softfail_reject: false,
            dkim: CheckAction::Off,
            dmarc: DmarcAction::Off,
            arc: CheckAction::Off,
            verify_max_size: 10_240_000,
            authserv_id: String::new(),
            reverse_dns: false,
            dnsbl: Vec::new(),
            dnsbl_threshold: 1,
            rhsbl: Vec::new(),
            reject_unknown_client: UnknownClient::Off,
            helo: HeloAction::Off,
            lookup_timeout: Duration::from_secs(5),
            greylist: false,
            greylist_delay: Duration::from_secs(300),
            greylist_window: Duration::from_secs(4 * 3600),
            greylist_whitelist: Duration::from_secs(7 * 86_400),
            texts: PolicyTexts::default(),
        }
    }
}

impl PolicyConfig {
    /// True when any check needs the message's content (DKIM, DMARC or ARC).
    pub fn checks_content(&self) -> bool {
        self.dkim != CheckAction::Off
            || self.dmarc != DmarcAction::Off
            || self.arc != CheckAction::Off
    }
}

/// What the SPF check does with its result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpfAction {
    /// No check.
    #[default]
    Off,
    /// Check and record (`Received-SPF`, `Authentication-Results`), refuse nothing.
    Tag,
    /// Refuse `fail` (`550 5.7.23`), `permerror` (`550 5.7.24`) and, for a while,
    /// `temperror` (`451 4.7.24`); record the rest.
    Reject,
}

/// A check that only records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckAction {
    /// No check.
    #[default]
    Off,
    /// Check and record in `Authentication-Results`.
    Tag,
}

/// What the DMARC check does with its result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DmarcAction {
    /// No check.
    #[default]
    Off,
    /// Check and record, refuse nothing.
    Tag,
    /// Apply the domain's policy: `p=reject` refused (`550 5.7.1`), `p=quarantine` to Junk.
    Enforce,
}

/// `[[dkim]]`: the signing key of one sender domain.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DkimKeyConfig {
    /// The domain (`d=`): mail whose `From:` is in this domain (or under it) is signed.
    pub domain: String,
    /// The selector (`s=`): the key is published at `SELECTOR._domainkey.DOMAIN`.
    pub selector: String,
    /// The private key, PEM (RSA in PKCS#1 or PKCS#8, Ed25519 in PKCS#8), as written by
    /// `relais dkim keygen`.
    pub key: PathBuf,
}

/// `[[milter]]`: a content filter spoken to with the Sendmail milter protocol (rspamd,
/// clamav-milter, OpenDKIM), as Postfix's `smtpd_milters`. Filters are asked in the order of
/// the file; each SMTP connection has its own connection to each filter.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MilterConfig {
    /// `inet:127.0.0.1:11332`, `127.0.0.1:11332` or `unix:/run/rspamd/milter.sock`.
    pub address: LmtpTarget,
    /// What a filter that is down, times out or breaks the protocol means for the message:
    /// `tempfail` (`451 4.7.1`, the default, as Postfix's `milter_default_action`), `accept`
    /// (go on without it), or `reject` (`550 5.7.1`).
    #[serde(default)]
    pub default_action: MilterAction,
    /// Connecting and agreeing on the protocol (Postfix's `milter_connect_timeout`).
    #[serde(default = "thirty_seconds", with = "crate::duration")]
    pub connect_timeout: Duration,
    /// Each answer about the connection, HELO, sender, recipients and headers
    /// (`milter_command_timeout`).
    #[serde(default = "thirty_seconds", with = "crate::duration")]
    pub command_timeout: Duration,
    /// The answers about the body and its end (`milter_content_timeout`).
    #[serde(default = "five_minutes", with = "crate::duration")]
    pub content_timeout: Duration,
}

fn thirty_seconds() -> Duration {
    Duration::from_secs(30)
}

fn five_minutes() -> Duration {
    Duration::from_secs(300)
}

/// What a filter that cannot be asked means for a message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MilterAction {
    /// `451 4.7.1 Service unavailable - try again later`: the client retries later.
    #[default]
    Tempfail,
    /// Go on as if the filter had accepted.
    Accept,
    /// `550 5.7.1 Command rejected`.
    Reject,
}
