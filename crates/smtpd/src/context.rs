//! What every connection of the SMTP door shares: settings per listener role, TLS, AUTH
//! users, per-client counters, relay networks, recipient policy, the spool, the queue handle.

use std::sync::Arc;

use relais_config::{Cidr, Config, MilterConfig, Role};
use relais_local::maildir::MaildirStore;
use relais_local::quota::Quotas;
use relais_policy::{SenderAuth, Signers};
use relais_proto::SessionConfig;
use relais_queue::QueueHandle;
use relais_route::Policy;
use relais_spool::Spool;
use relais_state::Store;

use tracing::warn;

use crate::auth::{self, Users};
use crate::error::SmtpdError;
use crate::limits::Anvil;
use crate::tls;

/// What every connection shares.
pub struct Context {
    /// The configuration in force.
    pub config: Config,
    /// Protocol settings for each listener role: MX, submission, submissions.
    pub sessions: [Arc<SessionConfig>; 3],
    /// TLS, when enabled.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// AUTH users.
    pub users: Arc<Users>,
    /// Per-client counters.
    pub anvil: Arc<Anvil>,
    /// Networks allowed to relay without AUTH.
    pub relay_networks: Vec<Cidr>,
    /// Recipient policy.
    pub policy: Policy,
    /// Sender authentication: SPF, DKIM, ARC, DMARC.
    pub auth: SenderAuth,
    /// DKIM keys for what authenticated users send.
    pub signers: Signers,
    /// Greylisting entries (and, later, rate counters).
    pub state: Store,
    /// The spool.
    pub spool: Spool,
    /// Where committed messages go to be delivered.
    pub delivery: QueueHandle,
    /// The content filters (`[[milter]]`), shared by the connections.
    pub milters: Arc<[MilterConfig]>,
    /// The Maildirs and their limits, when some have one and relais writes them (no LMTP):
    /// a mailbox already full is refused at RCPT.
    pub quotas: Option<Arc<(MaildirStore, Quotas)>>,
}

impl Context {
    /// The protocol settings of a listener role.
    pub fn session_config(&self, role: Role) -> Arc<SessionConfig> {
        self.sessions[match role {
            Role::Mx => 0,
            Role::Submission => 1,
            Role::Submissions => 2,
        }]
        .clone()
    }
}

impl Context {
    /// What every connection shares, from the configuration: the TLS certificate and the users
    /// file are read now. The per-client counters are `anvil`'s, kept across reloads; their
    /// limits are set from `config`.
    pub fn build(
        config: Config,
        spool: Spool,
        policy: Policy,
        delivery: QueueHandle,
        anvil: Arc<Anvil>,
        state: Store,
    ) -> Result<Context, SmtpdError> {
        let tls = if config.tls.enabled {
            Some(tls::acceptor(&config)?)
        } else {
            if config.listener.iter().any(|l| l.role == Role::Submissions) {
                return Err(SmtpdError::Config(
                    "a submissions listener needs TLS: set [tls] enabled = true".into(),
                ));
            }
            None
        };
        let users = auth::Users::load(&config)?;
        if tls.is_none()
            && !config.auth.allow_plaintext
            && config.listener.iter().any(|l| l.role == Role::Submission)
        {
            warn!(
                "TLS is disabled and [auth] allow_plaintext is off: the submission listener offers no AUTH, so nobody can submit"
            );
        }
        let auth = SenderAuth::new(&config).map_err(SmtpdError::Config)?;
        let signers = Signers::load(&config).map_err(SmtpdError::Config)?;
        let has_tls = tls.is_some();
        let sessions = [Role::Mx, Role::Submission, Role::Submissions]
            .map(|r| Arc::new(session_config(&config, r, has_tls, &users)));
        anvil.set_limits(
            config.limits.max_connections_per_ip,
            config.limits.connection_rate_per_ip,
            config.auth.max_failures,
            config.auth.failure_window,
        );
        let quotas = Quotas::from_config(&config);
        let quotas = match config.local.lmtp.is_none() && quotas.any() {
            true => Some(Arc::new((
                MaildirStore::open(&config.mail_dir(), &config.hostname)
                    .map_err(|e| SmtpdError::Config(format!("mailboxes: {e}")))?,
                quotas,
            ))),
            false => None,
        };
        Ok(Context {
            quotas,
            sessions,
            tls,
            users: Arc::new(users),
            anvil,
            relay_networks: config.relay_networks.clone(),
            policy,
            auth,
            signers,
            state,
            spool,
            delivery,
            milters: config.milter.clone().into(),
            config,
        })
    }
}

/// The protocol settings for one listener role.
fn session_config(config: &Config, role: Role, tls: bool, users: &Users) -> SessionConfig {
    let mut s = SessionConfig::new(config.hostname.clone());
    s.banner = config.banner.clone();
    s.max_message_size = config.limits.max_message_size;
    s.max_recipients = config.limits.max_recipients;
    s.max_errors = config.limits.max_errors;
    s.max_messages = config.limits.max_messages_per_session;
    s.forbid_unauth_pipelining = config.limits.forbid_unauth_pipelining;
    if !users.is_empty() {
        s.auth_mechanisms = config.auth.mechanisms.clone();
    }
    // AUTH is offered in clear text only when the configuration says so, even when TLS is off
    // altogether (Postfix's smtpd_tls_auth_only): a password never crosses the network in
    // clear text by default.
    s.auth_without_tls = config.auth.allow_plaintext;
    match role {
        Role::Mx => s.starttls = tls,
        Role::Submission => {
            s.starttls = tls;
            s.require_tls = tls;
            s.require_auth = true;
        }
        Role::Submissions => s.require_auth = true,
    }
    s
}
