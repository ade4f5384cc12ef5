//! The probe behind `relais probe`: what MXToolbox's SMTP test and CheckTLS do, against a
//! domain's MX hosts or one server, with the reasons an administrator needs.
//!
//! For a domain: the MX hosts in preference order (null MX and implicit MX reported), then every
//! address of every host, several at a time ([`ProbeOptions::concurrency`]). For each address
//! the stages run in order, each timed, one file each: `connect` (and the TLS handshake with
//! `tls_on_connect`, port 465, then the banner), `reverse` DNS, `ehlo` (HELO if refused),
//! `starttls` and the certificate (`cert` reads it), EHLO again, `auth` (when asked), then
//! `mail` and `rcpt`: MAIL FROM, the RCPT probes (the given recipient, `postmaster@`, a random
//! local part, an address at a foreign domain), DATA only when asked, VRFY and EXPN, RSET and
//! QUIT. Beside the addresses, for a domain only, `sender_auth` looks up its SPF record (and
//! evaluates it for each MX address), its DMARC record and the DKIM key of each selector in
//! [`ProbeOptions::dkim_selectors`]: DNS only, no connection.
//!
//! Each finding is a verdict (`ok`, `warn`, `fail`) with its reason and what to check. The
//! rules that make them are pure functions of what was observed (a reply, a delay, a DNS
//! answer, a certificate), next to the stage that observes it, and tested on tables. The exit
//! code is that of the first failing stage (in MX order), else of the route, else of the
//! sender authentication records; `report` holds the model, `render` the text.
//!
//! # Exit codes
//!
//! | code | meaning |
//! |-----:|---------|
//! | 0  | every address passed (warnings may have been given) |
//! | 1  | the options do not make sense |
//! | 2  | no connection: refused, timed out (filtered), unreachable |
//! | 3  | DNS: the domain or host does not exist, null MX, no mail host, DNS failure |
//! | 6  | the server closed or reset the connection unexpectedly |
//! | 21 | the greeting was not `220` (e.g. `421`, `554`), or did not come in time |
//! | 22 | EHLO and HELO refused |
//! | 23 | MAIL FROM refused |
//! | 24 | the given recipient or `postmaster@` refused |
//! | 25 | DATA (with `data`) refused |
//! | 28 | AUTH (with `auth`) failed: not offered, mechanism not offered, credentials refused |
//! | 29 | TLS failed: STARTTLS refused, handshake error (also on connect), expired certificate |
//! | 40 | open relay: a recipient at a foreign domain was accepted (without a successful AUTH) |
//! | 41 | sender authentication: no, several or an invalid SPF or DMARC record, or a DKIM key (`dkim_selectors`) missing, revoked or unusable |

mod auth;
mod connect;
mod ehlo;
#[cfg(test)]
pub(crate) mod fixtures;
mod mail;
pub mod ports;
pub mod progress;
mod rcpt;
pub(crate) mod render;
pub(crate) mod report;
pub(crate) mod reverse;
mod sender_auth;
mod session;
mod starttls;
mod target;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use relais_dns::{Resolver, ResolverOptions};

pub use report::ProbeReport;

use crate::Mechanism;

/// Exit codes of `relais probe` (the table is in the module documentation): swaks' numbers,
/// which `relais send` uses too, where they exist.
pub mod exit {
    pub use crate::send::exit::{
        AUTH, BANNER, CLOSED, CONNECT, DATA, HELO, MAIL, OK, RCPT, TLS, USAGE,
    };
    /// DNS: the domain or host does not exist, null MX, no mail host, DNS failure.
    pub const DNS: u8 = 3;
    /// Open relay.
    pub const OPEN_RELAY: u8 = 40;
    /// Sender authentication: no, several or an invalid SPF or DMARC record, or a DKIM key
    /// that is missing, revoked or unusable.
    pub const SENDER_AUTH: u8 = 41;
}

/// What to probe and how.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// A mail domain (its MX hosts are probed), or HOST:PORT / IP / IP:PORT (that server only).
    pub target: String,
    /// The SMTP port of the MX hosts (or of the host, when the target has none).
    pub port: u16,
    /// Treat the target as a host even without a port (no MX lookup).
    pub host: bool,
    /// A recipient to test; in host mode its domain is where postmaster@ and the random local
    /// part are tried.
    pub rcpt: Option<String>,
    /// The MAIL FROM address (default: probe@ the HELO name).
    pub from: Option<String>,
    /// The EHLO/HELO name (default: this machine's host name).
    pub helo: Option<String>,
    /// The wait for each step (connect, banner, each reply); more than zero.
    pub timeout: Duration,
    /// A greeting slower than this is reported.
    pub slow_banner: Duration,
    /// On a 4xx to RCPT, wait this long and try once more (zero: no retry).
    pub greylist_retry: Duration,
    /// How many addresses are probed at the same time (at least one is).
    pub concurrency: usize,
    /// Extra CA certificates (PEM) to trust when verifying certificates.
    pub ca_file: Option<PathBuf>,
    /// Try STARTTLS when offered.
    pub starttls: bool,
    /// TLS from the first byte (implicit TLS, port 465); no STARTTLS stage.
    pub tls_on_connect: bool,
    /// The AUTH test, when asked for.
    pub auth: Option<AuthTest>,
    /// Send a short test message to the recipient (DATA).
    pub data: bool,
    /// DKIM selectors whose keys (`SELECTOR._domainkey.DOMAIN`) are checked, for a domain.
    pub dkim_selectors: Vec<String>,
    /// The resolver for the MX, address and reverse lookups.
    pub resolver: ResolverOptions,
    /// With [`ports::run`]: the ports to check on each address, all at once.
    pub ports: Vec<u16>,
    /// Where live progress is told (a terminal); none: nothing is told.
    pub progress: Option<progress::Progress>,
}

/// What the AUTH test uses (the password is not shown by `Debug`).
#[derive(Clone)]
pub struct AuthTest {
    /// The user name.
    pub user: String,
    /// The password (never shown).
    pub password: String,
    /// The mechanism; default: the first of PLAIN, LOGIN the server offers.
    pub mechanism: Option<Mechanism>,
}

impl std::fmt::Debug for AuthTest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthTest")
            .field("user", &self.user)
            .field("mechanism", &self.mechanism)
            .finish_non_exhaustive()
    }
}

/// A foreign domain for the open-relay test: reserved (RFC 2606), so nothing is ever sent there.
const FOREIGN_DOMAIN: &str = "relay-test.example.net";

/// What every address probe needs.
struct Context {
    resolver: Resolver,
    helo: String,
    from: String,
    rcpt: Option<String>,
    /// The domain for postmaster@ and the random local part (None: skip those probes).
    domain: Option<String>,
    timeout: Duration,
    slow_banner: Duration,
    greylist_retry: Duration,
    ca_file: Option<PathBuf>,
    starttls: bool,
    tls_on_connect: bool,
    auth: Option<AuthTest>,
    data: bool,
    /// The DKIM selectors to check (domain targets only).
    dkim_selectors: Vec<String>,
    /// Where live progress is told, if anywhere.
    progress: Option<progress::Progress>,
}

/// Runs the probe on a runtime of its own. An error (no runtime, no usable resolver) means
/// nothing was probed: the options' fault, exit code [`exit::USAGE`].
pub fn run(options: ProbeOptions) -> Result<ProbeReport, String> {
    let runtime = relais_client::current_thread_runtime()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let concurrency = options.concurrency.max(1);
        let (context, target) = context(options)?;
        Ok(target::probe(Arc::new(context), target, concurrency).await)
    })
}

/// The context every address shares, and the target, from the options.
fn context(options: ProbeOptions) -> Result<(Context, target::Target), String> {
    let resolver = Resolver::new(&options.resolver).map_err(|e| e.to_string())?;
    let target = target::Target::parse(&options.target, options.port, options.host);
    let helo = options.helo.clone().unwrap_or_else(crate::host_name);
    let from = options
        .from
        .clone()
        .unwrap_or_else(|| format!("probe@{helo}"));
    let domain = target.domain(options.rcpt.as_deref());
    let context = Context {
        resolver,
        helo,
        from,
        rcpt: options.rcpt,
        domain,
        timeout: options.timeout,
        slow_banner: options.slow_banner,
        greylist_retry: options.greylist_retry,
        ca_file: options.ca_file,
        starttls: options.starttls,
        tls_on_connect: options.tls_on_connect,
        auth: options.auth,
        data: options.data,
        dkim_selectors: options.dkim_selectors,
        progress: options.progress,
    };
    Ok((context, target))
}
