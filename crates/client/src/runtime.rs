//! The one event loop relais runs everywhere: a single-threaded tokio runtime.
//!
//! The server's workers, the queue manager's thread and every command of the binary each run
//! one of these. A connection then stays on one thread from start to end, which on a small
//! machine costs far less than hand-offs in a work-stealing pool (see ARCHITECTURE.md).

/// A current-thread runtime with I/O and timers enabled.
pub fn current_thread_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}
