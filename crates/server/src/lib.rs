//! `relais-server`: the wiring of `relais serve`. It opens the spool, starts the queue manager
//! and the SMTP door, serves the control socket, and stops them in order.
//!
//! Floor 5 of the flow of a message: it owns no decision of its own. The door (`relais-smtpd`)
//! and the queue manager (`relais-qmgr`) never import each other; new queue ids reach the
//! queue manager through the [`QueueHandle`] made here and given to both.

pub mod control;

use std::future::Future;

use relais_local::maildir::MaildirStore;
use relais_qmgr::{QueueManager, QueueSettings};
use relais_queue::QueueHandle;
use relais_route::Policy;
use relais_smtpd::{Smtpd, SmtpdError};
use relais_spool::{Spool, SpoolOptions};
use tracing::{info, warn};

pub use relais_config::Config;

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
    /// The SMTP door could not open (a listener, TLS, the users file).
    #[error(transparent)]
    Smtpd(#[from] SmtpdError),
    /// The configuration cannot work.
    #[error("{0}")]
    Config(String),
    /// Another I/O error (data directory, delivery thread).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

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
        let settings = QueueSettings::from_config(&config).map_err(ServerError::Config)?;
        let m = QueueManager::start(spool.clone(), store, policy.clone(), settings, pending)?;
        let q = m.handle();
        (Some(m), q)
    };

    let hostname = config.hostname.clone();
    let smtpd = Smtpd::start(config, spool.clone(), policy, queue.clone())?;
    let control = control_listener
        .map(|l| tokio::spawn(control::serve(l, spool.clone(), queue.clone(), hostname)));

    shutdown.await;
    info!("shutting down");
    if let Some(c) = control {
        c.abort();
    }
    let _ = std::fs::remove_file(&control_path);
    tokio::task::spawn_blocking(move || smtpd.stop()).await.ok();
    drop(queue);
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
