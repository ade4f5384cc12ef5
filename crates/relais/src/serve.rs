//! `relais serve`.

use std::path::Path;
use std::process::ExitCode;

use relais_config::Config;

use crate::exit;

/// Loads the configuration, sets up logging, runs the server until SIGTERM or SIGINT (SIGHUP
/// reads the configuration again).
pub fn run(config_path: Option<&Path>) -> ExitCode {
    // Log lines go to a buffer that a thread of its own writes out (see logbuf.rs).
    let (writer, _flush_guard) = crate::logbuf::start(std::io::stderr());
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RELAIS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
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
    let runtime = match relais_client::current_thread_runtime() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("relais: cannot start the runtime: {e}");
            return ExitCode::from(exit::SERVER);
        }
    };
    let path = config_path.map(Path::to_path_buf);
    let result = runtime.block_on(relais_server::run(config, path, stop_signal()));
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
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
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
