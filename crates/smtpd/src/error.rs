//! Why the SMTP door could not open, or a reload could not be applied.

use std::net::SocketAddr;

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
