//! `relais-smtpd`: the SMTP door. Listeners, one connection driving one protocol session,
//! STARTTLS and implicit TLS, SMTP AUTH, per-client limits.
//!
//! Floor 4 of the flow of a message: bytes from a client go through the sans-IO session of
//! `relais-proto`; recipients are checked with `relais-route`; a complete message enters the
//! spool through `relais-queue`'s [`Enqueue`](relais_queue::Enqueue), and its queue id goes to
//! the queue manager through a [`QueueHandle`] (the door never imports the queue manager).
//!
//! [`Smtpd::start`] binds every listener once per worker thread (`SO_REUSEPORT`), each worker
//! being a single-threaded event loop; [`Smtpd::stop`] stops accepting, lets sessions end
//! (idle ones get `421`) and joins the workers.

mod auth;
mod connection;
mod context;
mod limits;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use relais_config::{Config, Role};
use relais_proto::{SessionConfig, replies};
use relais_queue::QueueHandle;
use relais_route::Policy;
use relais_spool::Spool;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::{error, info, warn};

pub use auth::hash_password;

use crate::context::Context;

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

/// Why the SMTP door could not open.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SmtpdError {
    /// A listener could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The configuration cannot work (e.g. a submissions listener with TLS disabled).
    #[error("{0}")]
    Config(String),
    /// Another I/O error (TLS files, users file, threads).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// How long connections get to finish after shutdown was asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The running SMTP door: its worker threads and the signal that stops them.
pub struct Smtpd {
    /// Set to true to stop accepting and close idle sessions.
    stop: watch::Sender<bool>,
    /// One thread per worker, joined on stop.
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Smtpd {
    /// Binds every listener of `config` and starts the workers. Messages go into `spool`, and
    /// their ids to `delivery`.
    pub fn start(
        config: Config,
        spool: Spool,
        policy: Policy,
        delivery: QueueHandle,
    ) -> Result<Smtpd, SmtpdError> {
        let ctx = Arc::new(context(config, spool, policy, delivery)?);
        let workers = ctx.config.workers();
        let mut per_worker: Vec<Vec<(std::net::TcpListener, Role)>> =
            (0..workers).map(|_| Vec::new()).collect();
        for l in &ctx.config.listener {
            let sockets =
                bind_reuseport(l.address, workers).map_err(|source| SmtpdError::Bind {
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
        let (stop, stop_rx) = watch::channel(false);
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
        Ok(Smtpd { stop, threads })
    }

    /// Stops accepting, sends `421` to idle sessions, waits for the others to end (at most
    /// [`SHUTDOWN_GRACE`]) and joins the workers. Blocking.
    pub fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// What every connection shares, from the configuration.
fn context(
    config: Config,
    spool: Spool,
    policy: Policy,
    delivery: QueueHandle,
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
    let has_tls = tls.is_some();
    let sessions = [Role::Mx, Role::Submission, Role::Submissions]
        .map(|r| Arc::new(session_config(&config, r, has_tls, &users)));
    let anvil = limits::Anvil::new(
        config.limits.max_connections_per_ip,
        config.limits.connection_rate_per_ip,
        config.auth.max_failures,
        config.auth.failure_window,
    );
    Ok(Context {
        sessions,
        tls,
        users: Arc::new(users),
        anvil,
        relay_networks: config.relay_networks.clone(),
        policy,
        spool,
        delivery,
        config,
    })
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
    let rt = match relais_client::current_thread_runtime() {
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
