//! `relais-server`: the SMTP server around the protocol engine.
//!
//! - [`config`]: the TOML configuration and its embedded default;
//! - [`run`]: binds the listeners, accepts connections (each served by [`connection`]), stops
//!   gracefully;
//! - [`policy`]: who may send to whom;
//! - [`envelope`]: how an envelope is kept in the spool;
//! - [`queue`], [`remote`], [`maildir`], [`dsn`]: the queue manager, remote and local
//!   delivery, delivery status notifications;
//! - [`headers`]: `Received`, `Return-Path`, `Delivered-To`;
//! - [`tls`], [`auth`], [`limits`]: STARTTLS and implicit TLS, SMTP AUTH users, per-client
//!   limits and relay networks.

pub mod agents;
pub mod aliases;
pub mod auth;
pub mod config;
pub mod connection;
pub mod control;
pub mod dsn;
pub mod envelope;
pub mod headers;
pub mod limits;
pub mod local;
pub mod maildir;
pub mod outcome;
pub mod policy;
pub mod queue;
pub mod remote;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use relais_proto::{SessionConfig, replies};
use relais_spool::{Spool, SpoolOptions};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::{error, info, warn};

pub use config::Config;
use config::Role;
use maildir::MaildirStore;
use policy::Policy;
use queue::{QueueHandle, QueueManager};

/// What every connection shares.
pub struct Context {
    /// The configuration in force.
    pub config: Config,
    /// Protocol settings for each listener role: MX, submission, submissions.
    pub sessions: [Arc<SessionConfig>; 3],
    /// TLS, when enabled.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// AUTH users.
    pub users: Arc<auth::Users>,
    /// Per-client counters.
    pub anvil: limits::Anvil,
    /// Networks allowed to relay without AUTH.
    pub relay_networks: Vec<limits::Cidr>,
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

/// The queue manager's settings.
fn queue_settings(config: &Config) -> Result<queue::QueueSettings, ServerError> {
    let d = &config.delivery;
    let nameserver = match &d.resolver {
        Some(r) => r
            .parse::<relais_dns::Nameserver>()
            .map_err(|e| ServerError::Config(e.to_string()))?,
        None => relais_dns::Nameserver::System,
    };
    let resolver = relais_dns::Resolver::new(&relais_dns::ResolverOptions {
        nameserver,
        ..Default::default()
    })
    .map_err(|e| ServerError::Config(format!("DNS resolver: {e}")))?;
    let client = relais_client::ClientConfig {
        connect_timeout: d.connect_timeout,
        // Delivery keeps no transcript of message content (the client records dialogue lines
        // for the diagnostics; here they would only cost time).
        transcript_data_lines: 0,
        ..Default::default()
    };
    let routes = d
        .routes
        .iter()
        .filter_map(|(dom, hop)| Some((dom.to_ascii_lowercase(), remote::NextHop::parse(hop)?)))
        .collect();
    Ok(queue::QueueSettings {
        hostname: config.hostname.clone(),
        retry: queue::Retry {
            first: d.first_retry,
            max: d.max_retry,
            lifetime: d.lifetime,
            delay_warning: (!d.delay_warning.is_zero()).then_some(d.delay_warning),
        },
        remote_concurrency: d.remote_concurrency,
        remote: remote::RemoteSettings {
            hostname: config.hostname.clone(),
            routes,
            relayhost: d.relayhost.as_deref().and_then(remote::NextHop::parse),
            resolver,
            client,
            cache: remote::ConnectionCache::default(),
        },
        local: local::LocalSettings::from_config(&config.local).map_err(ServerError::Config)?,
    })
}

/// The protocol settings for one listener role.
fn session_config(config: &Config, role: Role, tls: bool, users: &auth::Users) -> SessionConfig {
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

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The spool could not be opened.
    #[error("cannot open the spool in {path}: {source}")]
    Spool {
        /// The spool directory.
        path: String,
        /// What went wrong.
        source: relais_spool::SpoolError,
    },
    /// A listener could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: std::net::SocketAddr,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The configuration cannot work (e.g. a submissions listener with TLS disabled).
    #[error("{0}")]
    Config(String),
    /// Another I/O error (data directory, delivery thread, TLS files, users file).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// How long connections get to finish after shutdown was asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Runs the server until `shutdown` completes, then stops gracefully: stop accepting, send
/// `421` to idle sessions, let messages being stored finish, stop delivery, flush the spool.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    std::fs::create_dir_all(&config.data_dir)?;
    let spool_dir = config.spool_dir();
    let spool =
        Spool::open(&spool_dir, SpoolOptions::default()).map_err(|source| ServerError::Spool {
            path: spool_dir.display().to_string(),
            source,
        })?;
    // The control socket is bound as soon as the spool is ours: `relais queue` and `relais
    // sendmail` that find the spool locked then always find a server to ask.
    let control_path = control::socket_path(&config.data_dir);
    let control_listener = match control::bind(&control_path) {
        Ok(l) => Some(l),
        Err(e) => {
            warn!(
                "cannot open the control socket {}: {e}",
                control_path.display()
            );
            None
        }
    };
    let policy = Policy::new(&config);
    let store = MaildirStore::open(&config.mail_dir(), &config.hostname)?;

    let pending = spool.pending();
    if !pending.is_empty() {
        info!("{} message(s) in the spool from before", pending.len());
    }
    let (delivery, queue) = if config.delivery.paused {
        warn!("delivery is paused: accepted mail stays in the spool");
        (None, QueueHandle::paused())
    } else {
        let m = QueueManager::start(
            spool.clone(),
            store,
            policy.clone(),
            queue_settings(&config)?,
            pending,
        )?;
        let q = m.handle();
        (Some(m), q)
    };

    let tls = if config.tls.enabled {
        Some(tls::acceptor(&config)?)
    } else {
        if config.listener.iter().any(|l| l.role == Role::Submissions) {
            return Err(ServerError::Config(
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
    let has_tls = tls.is_some();
    let sessions = [Role::Mx, Role::Submission, Role::Submissions]
        .map(|r| Arc::new(session_config(&config, r, has_tls, &users)));
    let relay_networks = config
        .relay_networks
        .iter()
        .filter_map(|n| limits::Cidr::parse(n))
        .collect();
    let anvil = limits::Anvil::new(
        config.limits.max_connections_per_ip,
        config.limits.connection_rate_per_ip,
        config.auth.max_failures,
        config.auth.failure_window,
    );
    let ctx = Arc::new(Context {
        sessions,
        tls,
        users: Arc::new(users),
        anvil,
        relay_networks,
        policy,
        spool: spool.clone(),
        delivery: queue,
        config,
    });

    let workers = ctx.config.workers();
    let mut per_worker: Vec<Vec<(std::net::TcpListener, Role)>> =
        (0..workers).map(|_| Vec::new()).collect();
    for l in &ctx.config.listener {
        let sockets = bind_reuseport(l.address, workers).map_err(|source| ServerError::Bind {
            address: l.address,
            source,
        })?;
        info!(
            "listening on {} ({})",
            sockets[0].local_addr()?,
            format!("{:?}", l.role).to_ascii_lowercase()
        );
        for (w, s) in sockets.into_iter().enumerate() {
            per_worker[w].push((s, l.role));
        }
    }
    info!(
        "relais ready: hostname {}, local domains {}, data in {}, {workers} worker(s)",
        ctx.config.hostname,
        ctx.config.local_domains.join(", "),
        ctx.config.data_dir.display()
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    let limit = Arc::new(Semaphore::new(ctx.config.limits.max_connections));
    let mut threads = Vec::new();
    for (w, listeners) in per_worker.into_iter().enumerate() {
        let ctx = ctx.clone();
        let stop_rx = stop_rx.clone();
        let limit = limit.clone();
        let t = std::thread::Builder::new()
            .name(format!("relais-worker-{w}"))
            .spawn(move || worker(listeners, ctx, stop_rx, limit))?;
        threads.push(t);
    }

    let control = control_listener.map(|l| {
        tokio::spawn(control::serve(
            l,
            spool.clone(),
            ctx.delivery.clone(),
            ctx.config.hostname.clone(),
        ))
    });

    shutdown.await;
    info!("shutting down");
    if let Some(c) = control {
        c.abort();
    }
    let _ = std::fs::remove_file(&control_path);
    let _ = stop_tx.send(true);
    tokio::task::spawn_blocking(move || {
        for t in threads {
            let _ = t.join();
        }
    })
    .await
    .ok();
    let ctx = Arc::into_inner(ctx);
    drop(ctx);
    if let Some(d) = delivery {
        tokio::task::spawn_blocking(move || d.stop()).await.ok();
    }
    let spool2 = spool.clone();
    tokio::task::spawn_blocking(move || spool2.shutdown())
        .await
        .ok();
    drop(spool);
    info!("stopped");
    Ok(())
}

/// Binds `count` sockets to one address with `SO_REUSEPORT`, so that each worker accepts its
/// own connections (the kernel spreads them). Port 0 is resolved by the first bind.
fn bind_reuseport(addr: SocketAddr, count: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    let mut out = Vec::with_capacity(count);
    let mut addr = addr;
    for _ in 0..count {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        let listener: std::net::TcpListener = socket.into();
        addr = listener.local_addr()?;
        out.push(listener);
    }
    Ok(out)
}

/// One worker: a single-threaded event loop that accepts and serves its share of connections.
/// Each connection stays on one thread from accept to close: no hand-offs between threads on
/// the per-message path (measured here: far lower latency than a work-stealing pool when
/// every message waits for a shared fsync).
fn worker(
    listeners: Vec<(std::net::TcpListener, Role)>,
    ctx: Arc<Context>,
    stop: watch::Receiver<bool>,
    limit: Arc<Semaphore>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start a worker: {e}");
            return;
        }
    };
    rt.block_on(async move {
        // Every connection task holds a clone of `done_tx`; when all are dropped, `done_rx` ends.
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        let mut accepts = Vec::new();
        for (l, role) in listeners {
            match TcpListener::from_std(l) {
                Ok(l) => accepts.push(tokio::spawn(accept_loop(
                    l,
                    role,
                    ctx.clone(),
                    stop.clone(),
                    done_tx.clone(),
                    limit.clone(),
                ))),
                Err(e) => error!("cannot use a listener: {e}"),
            }
        }
        drop(done_tx);
        for a in accepts {
            let _ = a.await;
        }
        if tokio::time::timeout(SHUTDOWN_GRACE, done_rx.recv())
            .await
            .is_err()
        {
            warn!("connections still open after {SHUTDOWN_GRACE:?}; closing anyway");
        }
    });
}

async fn accept_loop(
    listener: TcpListener,
    role: Role,
    ctx: Arc<Context>,
    mut stop: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
    limit: Arc<Semaphore>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let (mut stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                error!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let refusal = match limit.clone().try_acquire_owned() {
            Err(_) => Err((
                "too many connections",
                replies::too_many_connections(&ctx.config.hostname),
            )),
            Ok(permit) => match ctx.anvil.connect(peer.ip(), std::time::Instant::now()) {
                Ok(()) => Ok(permit),
                Err(limits::Refusal::Concurrency) => Err((
                    "too many connections from this address",
                    replies::too_many_connections(&ctx.config.hostname),
                )),
                Err(limits::Refusal::Rate) => Err((
                    "connection rate limit exceeded",
                    replies::connection_rate_exceeded(&ctx.config.hostname),
                )),
            },
        };
        let permit = match refusal {
            Ok(permit) => permit,
            Err((why, reply)) => {
                warn!("refusing {peer}: {why}: {reply}");
                tokio::spawn(async move {
                    let _ = stream.write_all(&reply.to_bytes()).await;
                    let _ = stream.shutdown().await;
                });
                continue;
            }
        };
        let ctx = ctx.clone();
        let stop = stop.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let ip = peer.ip();
            connection::serve(stream, peer, role, ctx.clone(), stop).await;
            ctx.anvil.disconnect(ip);
            drop(permit);
            drop(done);
        });
    }
}
