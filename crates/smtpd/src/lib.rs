//! `relais-smtpd`: the SMTP door. Listeners, one connection driving one protocol session,
//! STARTTLS and implicit TLS, SMTP AUTH, per-client limits.
//!
//! Floor 4 of the flow of a message: bytes from a client go through the sans-IO session of
//! `relais-proto`; recipients are checked with `relais-route`; a complete message enters the
//! spool through `relais-queue`'s [`Enqueue`](relais_queue::Enqueue), and its queue id goes to
//! the queue manager through a [`QueueHandle`] (the door never imports the queue manager).
//!
//! [`Smtpd::bind`] binds every listener once per worker thread (`SO_REUSEPORT`), before
//! privileges are dropped; [`Smtpd::start`] starts the workers, each a single-threaded event
//! loop; [`Smtpd::reload`] applies a new configuration to the
//! sessions that start after it (TLS certificate, users, limits, policy, banner) and opens or
//! closes listeners, without touching open sessions; [`Smtpd::stop`] stops accepting, lets
//! sessions end (idle ones get `421`) and joins the workers.

mod auth;
mod connection;
mod context;
mod error;
mod limits;
mod listeners;
mod tls;
pub mod users_file;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use relais_config::Config;
use relais_queue::QueueHandle;
use relais_route::Policy;
use relais_spool::Spool;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

pub use auth::hash_password;
pub use error::SmtpdError;

use crate::context::Context;
use crate::limits::Anvil;
use relais_state::Store;

use crate::listeners::{Door, ListenerKey, WorkerCommand, bind_reuseport, worker};

/// The listeners of a configuration, bound once per worker, not yet served.
pub struct Bound {
    /// Per worker, its socket of every listener.
    per_worker: Vec<Vec<(ListenerKey, std::net::TcpListener)>>,
    /// Each listener as configured, with the address it is bound to.
    listening: BTreeMap<ListenerKey, SocketAddr>,
}

/// The running SMTP door: its worker threads, what they share, and how to reach them.
pub struct Smtpd {
    /// Set to true to stop accepting and close idle sessions.
    stop: watch::Sender<bool>,
    /// One thread per worker, joined on stop.
    threads: Vec<std::thread::JoinHandle<()>>,
    /// One command channel per worker (listeners added and closed by a reload).
    workers: Vec<mpsc::UnboundedSender<WorkerCommand>>,
    /// The settings the workers give new sessions.
    door: Arc<Door>,
    /// The per-client counters, kept across reloads.
    anvil: Arc<Anvil>,
    /// The shared state (greylisting), kept across reloads.
    state: Store,
    /// The listeners open now, as configured, with the address each is bound to.
    listening: BTreeMap<ListenerKey, SocketAddr>,
}

impl Smtpd {
    /// Binds every listener of `config`, once per worker: what needs root for ports below
    /// 1024, so it comes before privileges are dropped.
    pub fn bind(config: &Config) -> Result<Bound, SmtpdError> {
        let workers = config.workers();
        let mut per_worker: Vec<Vec<(ListenerKey, std::net::TcpListener)>> =
            (0..workers).map(|_| Vec::new()).collect();
        let mut listening = BTreeMap::new();
        for key in listener_keys(config) {
            let (bound, sockets) = bind(key, workers)?;
            listening.insert(key, bound);
            for (w, s) in sockets.into_iter().enumerate() {
                per_worker[w].push((key, s));
            }
        }
        Ok(Bound {
            per_worker,
            listening,
        })
    }

    /// Starts the workers on the listeners `bound` for `config`. Messages go into `spool`, and
    /// their ids to `delivery`.
    pub fn start(
        bound: Bound,
        config: Config,
        spool: Spool,
        policy: Policy,
        delivery: QueueHandle,
    ) -> Result<Smtpd, SmtpdError> {
        let anvil = Arc::new(Anvil::default());
        // Greylisting entries and rate counters, kept across reloads and restarts.
        // The embedded store in data_dir, or Redis when `[state] redis` is set.
        let state =
            Store::open_or_connect(&config.data_dir.join("state.redb"), &config.state.redis)
                .map_err(|e| SmtpdError::Config(e.to_string()))?;
        let ctx = Context::build(
            config,
            spool,
            policy,
            delivery,
            anvil.clone(),
            state.clone(),
        )?;
        let Bound {
            per_worker,
            listening,
        } = bound;
        let workers = per_worker.len();
        info!(
            "relais ready: hostname {}, local domains {}, data in {}, {workers} worker(s)",
            ctx.config.hostname,
            ctx.config.local_domains.join(", "),
            ctx.config.data_dir.display()
        );
        let max_connections = ctx.config.limits.max_connections;
        let door = Arc::new(Door::new(ctx, max_connections));
        let (stop, stop_rx) = watch::channel(false);
        let mut threads = Vec::new();
        let mut channels = Vec::new();
        for (w, listeners) in per_worker.into_iter().enumerate() {
            let (door, stop_rx) = (door.clone(), stop_rx.clone());
            let (tx, rx) = mpsc::unbounded_channel();
            let t = std::thread::Builder::new()
                .name(format!("relais-worker-{w}"))
                .spawn(move || worker(listeners, door, stop_rx, rx))?;
            threads.push(t);
            channels.push(tx);
        }
        Ok(Smtpd {
            stop,
            threads,
            workers: channels,
            door,
            anvil,
            state,
            listening,
        })
    }

    /// The DKIM keys in force, read anew at each call (a reload changes them): for local
    /// submissions, which do not pass through the door.
    pub fn signers(&self) -> impl Fn() -> relais_policy::Signers + Send + Sync + 'static {
        let door = self.door.clone();
        move || door.current().signers.clone()
    }

    /// Applies `config` to the sessions that start from now on: TLS certificate and key, AUTH
    /// users, limits, banner, relay networks, `policy`; listeners that appeared are opened and
    /// those that went away closed. Open sessions keep the settings they started with. On an
    /// error (a certificate that does not load, an address that cannot be bound) nothing
    /// changes. What only a restart changes (`workers`, `data_dir`,
    /// `limits.max_connections`) is logged and left as it was.
    pub fn reload(&mut self, config: Config, policy: Policy) -> Result<(), SmtpdError> {
        let old = self.door.current();
        for (what, before, after) in [
            (
                "workers",
                old.config.workers().to_string(),
                config.workers().to_string(),
            ),
            (
                "data_dir",
                old.config.data_dir.display().to_string(),
                config.data_dir.display().to_string(),
            ),
            (
                "limits.max_connections",
                old.config.limits.max_connections.to_string(),
                config.limits.max_connections.to_string(),
            ),
        ] {
            if before != after {
                warn!("reload: {what} changes from {before} to {after} at the next start only");
            }
        }
        let (spool, delivery) = (old.spool.clone(), old.delivery.clone());
        drop(old);
        let keys = listener_keys(&config);
        let ctx = Context::build(
            config,
            spool,
            policy,
            delivery,
            self.anvil.clone(),
            self.state.clone(),
        )?;
        // Bind what is new before changing anything, so that a failure changes nothing.
        let mut opened = Vec::new();
        for &key in keys.iter().filter(|k| !self.listening.contains_key(k)) {
            opened.push((key, bind(key, self.workers.len())?));
        }
        self.door.replace(ctx);
        for (key, (bound, sockets)) in opened {
            for (tx, s) in self.workers.iter().zip(sockets) {
                let _ = tx.send(WorkerCommand::Listen(key, s));
            }
            self.listening.insert(key, bound);
        }
        let gone: Vec<ListenerKey> = self
            .listening
            .keys()
            .filter(|k| !keys.contains(k))
            .copied()
            .collect();
        for key in gone {
            for tx in &self.workers {
                let _ = tx.send(WorkerCommand::Close(key));
            }
            if let Some(bound) = self.listening.remove(&key) {
                info!("closed the listener on {bound} ({})", role_name(key));
            }
        }
        Ok(())
    }

    /// Stops accepting, sends `421` to idle sessions, waits for the others to end (at most
    /// [`listeners::SHUTDOWN_GRACE`]) and joins the workers. Blocking.
    pub fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// The listeners of a configuration, each once.
fn listener_keys(config: &Config) -> Vec<ListenerKey> {
    let mut keys: Vec<ListenerKey> = Vec::new();
    for key in config.listener.iter().map(|l| (l.address, l.role)) {
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys
}

/// `mx`, `submission`, `submissions`.
fn role_name(key: ListenerKey) -> String {
    format!("{:?}", key.1).to_ascii_lowercase()
}

/// Binds a listener once per worker and logs where it listens.
fn bind(
    key: ListenerKey,
    workers: usize,
) -> Result<(SocketAddr, Vec<std::net::TcpListener>), SmtpdError> {
    let sockets = bind_reuseport(key.0, workers).map_err(|source| SmtpdError::Bind {
        address: key.0,
        source,
    })?;
    let bound = sockets[0].local_addr()?;
    info!("listening on {bound} ({})", role_name(key));
    Ok((bound, sockets))
}
