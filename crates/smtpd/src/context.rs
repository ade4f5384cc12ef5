//! What every connection of the SMTP door shares: settings per listener role, TLS, AUTH
//! users, per-client counters, relay networks, recipient policy, the spool, the queue handle.

use std::sync::Arc;

use relais_config::{Cidr, Config, Role};
use relais_proto::SessionConfig;
use relais_queue::QueueHandle;
use relais_route::Policy;
use relais_spool::Spool;

use crate::auth::Users;
use crate::limits::Anvil;

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
    pub anvil: Anvil,
    /// Networks allowed to relay without AUTH.
    pub relay_networks: Vec<Cidr>,
    /// Recipient policy.
    pub policy: Policy,
    /// The spool.
    pub spool: Spool,
    /// Where committed messages go to be delivered.
    pub delivery: QueueHandle,
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
