//! `relais-server`: the wiring of `relais serve`. It opens the spool, starts the queue manager
//! and the SMTP door, serves the control socket and the HTTP listener (metrics, health, the
//! status page and its live events), reloads the configuration on SIGHUP, on `relais reload`
//! and when the TLS certificate changes, and stops them in order.
//!
//! Floor 5 of the flow of a message: it owns no decision of its own. The door (`relais-smtpd`)
//! and the queue manager (`relais-qmgr`) never import each other; new queue ids reach the
//! queue manager through the [`QueueHandle`] made here and given to both.

pub mod control;
pub mod events;
mod http;
mod privileges;
mod reload;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use relais_local::maildir::MaildirStore;
use relais_qmgr::{QueueManager, QueueSettings};
use relais_queue::QueueHandle;
use relais_route::Policy;
use relais_smtpd::{Smtpd, SmtpdError};
use relais_spool::{Spool, SpoolOptions};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::control::{Control, ReloadRequest};
use crate::reload::Source;

pub use http::{ProbeRequest, Prober, StatusPage};
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

/// How often the certificate files and the users file are looked at for a change.
const FILE_WATCH: Duration = Duration::from_secs(2);

/// Starts the queue manager on what the spool holds, unless delivery is paused.
fn start_delivery(
    config: &Config,
    spool: &Spool,
    store: MaildirStore,
    policy: &Policy,
) -> Result<(Option<QueueManager>, QueueHandle), ServerError> {
    let pending = spool.pending();
    if !pending.is_empty() {
        info!("{} message(s) in the spool from before", pending.len());
    }
    if config.delivery.paused {
        warn!("delivery is paused: accepted mail stays in the spool");
        return Ok((None, QueueHandle::paused()));
    }
    let settings = QueueSettings::from_config(config).map_err(ServerError::Config)?;
    let m = QueueManager::start(spool.clone(), store, policy.clone(), settings, pending)?;
    let q = m.handle();
    Ok((Some(m), q))
}

/// Reads the configuration again and applies it; on an error the one in force stays.
fn reload(
    source: &mut Source,
    in_force: &mut Config,
    smtpd: &mut Smtpd,
    delivery: Option<&QueueManager>,
    why: &str,
) -> Result<(), String> {
    let mut attempt = || -> Result<Config, String> {
        let config = source.load()?;
        if config.delivery.paused != in_force.delivery.paused {
            warn!("reload: delivery.paused changes at the next start only");
        }
        if config.user != in_force.user || config.allow_root != in_force.allow_root {
            warn!("reload: user and allow_root change at the next start only");
        }
        if config.log_file != in_force.log_file || config.log_format != in_force.log_format {
            warn!("reload: log_file and log_format change at the next start only");
        }
        if config.http.address != in_force.http.address || config.http.token != in_force.http.token
        {
            warn!("reload: [http] changes at the next start only");
        }
        let settings = QueueSettings::from_config(&config)?;
        let policy = Policy::new(&config);
        smtpd
            .reload(config.clone(), policy.clone())
            .map_err(|e| e.to_string())?;
        if let Some(d) = delivery {
            d.reload(settings, policy);
        }
        Ok(config)
    };
    match attempt() {
        Ok(config) => {
            source.loaded(&config);
            *in_force = config;
            info!("reloaded the configuration from {} ({why})", source.name());
            Ok(())
        }
        Err(e) => {
            warn!("reload refused ({why}), the configuration in force stays: {e}");
            Err(e)
        }
    }
}

/// Runs the server until `shutdown` completes, then stops gracefully: stop accepting, send
/// `421` to idle sessions, let messages being stored finish, stop delivery, flush the spool.
/// `config` was read from `path` (`None`: the embedded default), where a reload reads it again;
/// `after_reload` runs after each reload that took (the binary reopens its log file);
/// `status` is what the status page shows beside the queue (recent events, the probe form).
pub async fn run(
    config: Config,
    path: Option<PathBuf>,
    shutdown: impl Future<Output = ()>,
    after_reload: impl Fn(),
    status: StatusPage,
) -> Result<(), ServerError> {
    let mut source = Source::new(path, &config);
    // SIGHUP's default action ends the process: take it over before anything else.
    let mut hangup = signal(SignalKind::hangup())?;
    privileges::check(&config).map_err(ServerError::Config)?;
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
    // Listeners need root for ports below 1024; then root is given up for `user`.
    let bound = Smtpd::bind(&config)?;
    let http_listener = http::bind(&config)?;
    privileges::settle(&config).map_err(ServerError::Config)?;
    let policy = Policy::new(&config);
    let store = MaildirStore::open(&config.mail_dir(), &config.hostname)?;

    let (delivery, queue) = start_delivery(&config, &spool, store, &policy)?;

    let (reload_tx, mut reload_rx) = mpsc::unbounded_channel::<ReloadRequest>();
    let mut in_force = config.clone();
    let hostname = config.hostname.clone();
    let mut smtpd = Smtpd::start(bound, config, spool.clone(), policy, queue.clone())?;
    let control = Control {
        spool: spool.clone(),
        queue: queue.clone(),
        hostname,
        signers: Arc::new(smtpd.signers()),
        reload: reload_tx,
    };
    let control = control_listener.map(|l| tokio::spawn(control::serve(l, control)));
    let http = http_listener.map(|l| {
        let state = http::Http::new(&in_force, spool.clone(), queue.clone(), status);
        tokio::spawn(http::serve(l, Arc::new(state)))
    });

    let mut file_watch = tokio::time::interval(FILE_WATCH);
    tokio::pin!(shutdown);
    loop {
        let why = tokio::select! {
            _ = &mut shutdown => break,
            _ = hangup.recv() => "SIGHUP".to_string(),
            Some(answer) = reload_rx.recv() => {
                let r = reload(&mut source, &mut in_force, &mut smtpd, delivery.as_ref(), "relais reload");
                if r.is_ok() {
                    after_reload();
                }
                let _ = answer.send(r);
                continue;
            }
            _ = file_watch.tick() => match source.files_changed(&in_force) {
                Some(what) => what.to_string(),
                None => continue,
            },
        };
        let _ = reload(
            &mut source,
            &mut in_force,
            &mut smtpd,
            delivery.as_ref(),
            &why,
        );
    }
    info!("shutting down");
    if let Some(c) = control {
        c.abort();
    }
    if let Some(h) = http {
        h.abort();
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
