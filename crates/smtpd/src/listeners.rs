//! Listeners and workers: each listener address is bound once per worker with `SO_REUSEPORT`,
//! and each worker is a single-threaded event loop that accepts and serves its share of the
//! connections. A reload adds and closes listeners through [`WorkerCommand`]s and swaps the
//! [`Context`] in the [`Door`] for the sessions that start after it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use relais_config::Role;
use relais_proto::replies;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::{error, warn};

use relais_metrics::{METRICS, Refused};

use crate::connection;
use crate::context::Context;
use crate::limits;

/// How long connections get to finish after shutdown was asked for.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A listener as configured: its address (port 0 stays 0) and its role. A reload keeps a
/// listener whose key is unchanged.
pub type ListenerKey = (SocketAddr, Role);

/// What the workers share.
pub struct Door {
    /// The settings for new sessions.
    current: RwLock<Arc<Context>>,
    /// Open sessions, at most `max_connections` (fixed at start).
    pub limit: Arc<Semaphore>,
}

impl Door {
    /// A door with these settings and this many sessions at most.
    pub fn new(ctx: Context, max_connections: usize) -> Door {
        Door {
            current: RwLock::new(Arc::new(ctx)),
            limit: Arc::new(Semaphore::new(max_connections)),
        }
    }

    /// The settings in force.
    pub fn current(&self) -> Arc<Context> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// New settings for the sessions that start from now on.
    pub fn replace(&self, ctx: Context) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(ctx);
    }
}

/// What a worker is told after it started.
pub enum WorkerCommand {
    /// Accept on this socket too.
    Listen(ListenerKey, std::net::TcpListener),
    /// Stop accepting on this listener.
    Close(ListenerKey),
}

/// Binds `count` sockets to one address with `SO_REUSEPORT`, so that each worker accepts its
/// own connections (the kernel spreads them). Port 0 is resolved by the first bind.
pub fn bind_reuseport(
    addr: SocketAddr,
    count: usize,
) -> std::io::Result<Vec<std::net::TcpListener>> {
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
pub fn worker(
    listeners: Vec<(ListenerKey, std::net::TcpListener)>,
    door: Arc<Door>,
    stop: watch::Receiver<bool>,
    mut commands: mpsc::UnboundedReceiver<WorkerCommand>,
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
        let mut open: HashMap<ListenerKey, (watch::Sender<bool>, tokio::task::JoinHandle<()>)> =
            HashMap::new();
        let listen = |key: ListenerKey, l: std::net::TcpListener, open: &mut HashMap<_, _>| {
            match TcpListener::from_std(l) {
                Ok(l) => {
                    let (close_tx, close_rx) = watch::channel(false);
                    let task = tokio::spawn(accept_loop(
                        l,
                        key.1,
                        door.clone(),
                        stop.clone(),
                        close_rx,
                        done_tx.clone(),
                    ));
                    open.insert(key, (close_tx, task));
                }
                Err(e) => error!("cannot use a listener: {e}"),
            }
        };
        for (key, l) in listeners {
            listen(key, l, &mut open);
        }
        let mut stop_rx = stop.clone();
        loop {
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(WorkerCommand::Listen(key, l)) => {
                        if let Some((close, _)) = open.remove(&key) {
                            let _ = close.send(true);
                        }
                        listen(key, l, &mut open);
                    }
                    Some(WorkerCommand::Close(key)) => {
                        if let Some((close, _)) = open.remove(&key) {
                            let _ = close.send(true);
                        }
                    }
                    None => break,
                },
                _ = stop_rx.changed() => break,
            }
        }
        for (_, (_, task)) in open {
            let _ = task.await;
        }
        drop(done_tx);
        if tokio::time::timeout(SHUTDOWN_GRACE, done_rx.recv())
            .await
            .is_err()
        {
            warn!("connections still open after {SHUTDOWN_GRACE:?}; closing anyway");
        }
    });
}

/// Accepts on one listener until the server stops or the listener is closed (a reload that
/// removed it); sessions already open go on.
async fn accept_loop(
    listener: TcpListener,
    role: Role,
    door: Arc<Door>,
    mut stop: watch::Receiver<bool>,
    mut close: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
            _ = close.changed() => return,
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
        METRICS.connections.inc();
        // The settings in force now: a reload changes them for the sessions that start after it.
        let ctx = door.current();
        let refusal = match door.limit.clone().try_acquire_owned() {
            Err(_) => Err((
                Refused::TooMany,
                "too many connections",
                replies::too_many_connections(&ctx.config.hostname),
            )),
            Ok(permit) => match ctx.anvil.connect(peer.ip(), std::time::Instant::now()) {
                Ok(()) => Ok(permit),
                Err(limits::Refusal::Concurrency) => Err((
                    Refused::PerAddress,
                    "too many connections from this address",
                    replies::too_many_connections(&ctx.config.hostname),
                )),
                Err(limits::Refusal::Rate) => Err((
                    Refused::Rate,
                    "connection rate limit exceeded",
                    replies::connection_rate_exceeded(&ctx.config.hostname),
                )),
            },
        };
        let permit = match refusal {
            Ok(permit) => permit,
            Err((reason, why, reply)) => {
                METRICS.refused(reason);
                warn!("refusing {peer}: {why}: {reply}");
                tokio::spawn(async move {
                    let _ = stream.write_all(&reply.to_bytes()).await;
                    let _ = stream.shutdown().await;
                });
                continue;
            }
        };
        let stop = stop.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let ip = peer.ip();
            METRICS.connections_open.inc();
            // Boxed, so the task holds the connection's state once (an async block awaiting a
            // large future keeps room for it twice).
            Box::pin(connection::serve(stream, peer, role, ctx.clone(), stop)).await;
            METRICS.connections_open.dec();
            ctx.anvil.disconnect(ip);
            drop(permit);
            drop(done);
        });
    }
}
