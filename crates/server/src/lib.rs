//! `relais-server`: the SMTP server around the protocol engine.
//!
//! - [`config`]: the TOML configuration and its embedded default;
//! - [`run`]: binds the listeners, accepts connections (each served by [`connection`]), stops
//!   gracefully;
//! - [`policy`]: who may send to whom;
//! - [`envelope`]: how an envelope is kept in the spool;
//! - [`delivery`] and [`maildir`]: local delivery;
//! - [`headers`]: `Received`, `Return-Path`, `Delivered-To`.

pub mod config;
pub mod connection;
pub mod delivery;
pub mod envelope;
pub mod headers;
pub mod maildir;
pub mod policy;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use relais_proto::{SessionConfig, replies};
use relais_spool::{Spool, SpoolOptions};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::{error, info, warn};

pub use config::Config;
use delivery::{Delivery, DeliveryQueue};
use maildir::MaildirStore;
use policy::Policy;

/// What every connection shares.
pub struct Context {
    /// The configuration in force.
    pub config: Config,
    /// Protocol settings derived from it.
    pub session: Arc<SessionConfig>,
    /// The EHLO keywords, built once.
    pub extensions: Arc<Vec<String>>,
    /// Recipient policy.
    pub policy: Policy,
    /// The spool.
    pub spool: Spool,
    /// Where committed messages go to be delivered.
    pub delivery: DeliveryQueue,
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
    /// Another I/O error (data directory, delivery thread).
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
    let policy = Policy::new(&config);
    let store = MaildirStore::open(&config.mail_dir(), &config.hostname)?;

    let (delivery, queue) = if config.delivery.paused {
        warn!("delivery is paused: accepted mail stays in the spool");
        (None, DeliveryQueue::paused())
    } else {
        let d = Delivery::start(spool.clone(), store, policy.clone())?;
        let q = d.queue();
        (Some(d), q)
    };
    let pending = spool.pending();
    if !pending.is_empty() {
        info!(
            "{} message(s) in the spool from before: delivering",
            pending.len()
        );
        for id in pending {
            queue.push(id);
        }
    }

    let mut session = SessionConfig::new(config.hostname.clone());
    session.banner = config.banner.clone();
    session.max_message_size = config.limits.max_message_size;
    session.max_recipients = config.limits.max_recipients;
    session.max_errors = config.limits.max_errors;
    let extensions = Arc::new(session.extensions());
    let ctx = Arc::new(Context {
        session: Arc::new(session),
        extensions,
        policy,
        spool: spool.clone(),
        delivery: queue,
        config,
    });

    let mut listeners = Vec::new();
    for l in &ctx.config.listener {
        let listener = TcpListener::bind(l.address)
            .await
            .map_err(|source| ServerError::Bind {
                address: l.address,
                source,
            })?;
        info!("listening on {}", listener.local_addr()?);
        listeners.push(listener);
    }
    info!(
        "relais ready: hostname {}, local domains {}, data in {}",
        ctx.config.hostname,
        ctx.config.local_domains.join(", "),
        ctx.config.data_dir.display()
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a clone of `done_tx`; when all are dropped, `done_rx` ends.
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let limit = Arc::new(Semaphore::new(ctx.config.limits.max_connections));
    let mut accept_tasks = Vec::new();
    for listener in listeners {
        let ctx = ctx.clone();
        let stop_rx = stop_rx.clone();
        let done_tx = done_tx.clone();
        let limit = limit.clone();
        accept_tasks.push(tokio::spawn(accept_loop(
            listener, ctx, stop_rx, done_tx, limit,
        )));
    }
    drop(done_tx);

    shutdown.await;
    info!("shutting down");
    let _ = stop_tx.send(true);
    for t in accept_tasks {
        let _ = t.await;
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, done_rx.recv())
        .await
        .is_err()
    {
        warn!(
            "connections still open after {:?}; closing anyway",
            SHUTDOWN_GRACE
        );
    }
    let ctx = Arc::into_inner(ctx);
    drop(ctx);
    if let Some(d) = delivery {
        tokio::task::spawn_blocking(move || d.stop()).await.ok();
    }
    spool.shutdown();
    info!("stopped");
    Ok(())
}

async fn accept_loop(
    listener: TcpListener,
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
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            warn!("too many connections: refusing {peer}");
            let reply = replies::too_many_connections(&ctx.config.hostname).to_bytes();
            tokio::spawn(async move {
                let _ = stream.write_all(&reply).await;
            });
            continue;
        };
        let ctx = ctx.clone();
        let stop = stop.clone();
        let done = done.clone();
        tokio::spawn(async move {
            connection::serve(stream, peer, ctx, stop).await;
            drop(permit);
            drop(done);
        });
    }
}
