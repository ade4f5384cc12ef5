//! `relais serve`.

use std::path::Path;
use std::process::ExitCode;

use relais_config::{Config, LogFormat};
use relais_server::StatusPage;
use relais_server::events::EventHub;
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::exit;

/// Loads the configuration, sets up logging (and the status page's events), runs the server until SIGTERM or SIGINT (SIGHUP
/// reads the configuration again).
pub fn run(config_path: Option<&Path>) -> ExitCode {
    let config = match config_path {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("relais: {e}");
                return ExitCode::from(exit::CONFIG);
            }
        },
        None => Config::embedded(),
    };
    // Log lines go to a buffer that a thread of its own writes out (see logbuf.rs).
    let (writer, _flush_guard) = match crate::logbuf::open(config.log_file.as_deref()) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("relais: log_file: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    // Beside the log writer, the status page's recent events (they never wait for a page).
    let status = StatusPage {
        events: EventHub::new(),
        probe: Some(crate::probe::prober()),
    };
    tracing_subscriber::fmt()
        .event_format(crate::logfmt::LogFormat {
            json: config.log_format == LogFormat::Json,
        })
        .with_writer(writer.clone())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RELAIS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .finish()
        .with(status.events.layer())
        .init();
    let runtime = match relais_client::current_thread_runtime() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("relais: cannot start the runtime: {e}");
            return ExitCode::from(exit::SERVER);
        }
    };
    let path = config_path.map(Path::to_path_buf);
    let result = runtime.block_on(async {
        // SIGUSR1 (logrotate's postrotate) and every reload reopen the log file.
        if let Ok(mut usr1) = signal(SignalKind::user_defined1()) {
            let writer = writer.clone();
            tokio::spawn(async move {
                while usr1.recv().await.is_some() {
                    writer.reopen();
                }
            });
        }
        let reopen = move || writer.reopen();
        relais_server::run(config, path, stop_signal(), reopen, status).await
    });
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("relais: {e}");
            ExitCode::from(exit::SERVER)
        }
    }
}

/// Completes on SIGTERM or SIGINT.
pub(crate) async fn stop_signal() {
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// `relais reload`: asks the running server to read its configuration again. Exit 0 when the
/// new configuration is in force, 2 when it was refused (the error names key and line; the
/// old one stays), 3 when no server answers.
pub fn reload(config_path: Option<&Path>) -> ExitCode {
    let config = match crate::queue::load_config(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match relais_server::control::request(&config.data_dir, "RELOAD", b"") {
        None => {
            eprintln!(
                "relais reload: no server is running on {}",
                config.data_dir.display()
            );
            ExitCode::from(exit::SERVER)
        }
        Some(Err(e)) => {
            eprintln!("relais reload: {e}");
            ExitCode::from(exit::SERVER)
        }
        Some(Ok(answer)) => {
            let v: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
            match v.get("error").and_then(|e| e.as_str()) {
                Some(e) => {
                    eprintln!("relais reload: refused, the configuration in force stays: {e}");
                    ExitCode::from(exit::CONFIG)
                }
                None => {
                    println!("reloaded");
                    ExitCode::from(exit::OK)
                }
            }
        }
    }
}
