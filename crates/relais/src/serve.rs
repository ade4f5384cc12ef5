//! `relais serve`.

use std::path::Path;
use std::process::ExitCode;

use relais_server::Config;

use crate::exit;

/// Loads the configuration, sets up logging, runs the server until SIGTERM or SIGINT.
pub fn run(config: Option<&Path>) -> ExitCode {
    // Log lines go through a buffer written by a thread of its own: a busy server logs several
    // lines per message, and a write(2) per line would cost more than the message itself.
    // Nothing is dropped (lossy off); the buffer is flushed whenever the queue runs dry and at exit.
    let (writer, _flush_guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RELAIS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = match config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("relais: {e}");
                return ExitCode::from(exit::CONFIG);
            }
        },
        None => Config::embedded(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("relais: cannot start the runtime: {e}");
            return ExitCode::from(exit::SERVER);
        }
    };
    let result = runtime.block_on(relais_server::run(config, stop_signal()));
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
