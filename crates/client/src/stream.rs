//! The socket under the session: plain TCP, TLS over TCP, a Unix socket (LMTP to a local
//! mailbox server), or nothing (before connecting, after QUIT, or after a failed handshake
//! consumed it).

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::client::TlsStream;

/// The connection's current transport.
#[derive(Debug, Default)]
pub(crate) enum Stream {
    /// Not connected.
    #[default]
    None,
    /// Clear text.
    Plain(TcpStream),
    /// Under TLS (after STARTTLS or on an implicit-TLS port).
    Tls(Box<TlsStream<TcpStream>>),
    /// A Unix socket (clear text; LMTP).
    Unix(UnixStream),
}

fn not_connected() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "not connected")
}

impl Stream {
    /// True under TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// True when there is a connection.
    pub fn is_open(&self) -> bool {
        !matches!(self, Stream::None)
    }

    /// Reads what is available. Cancel-safe: nothing is lost if the future is dropped.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::None => Err(not_connected()),
            Stream::Plain(s) => s.read(buf).await,
            Stream::Tls(s) => s.read(buf).await,
            Stream::Unix(s) => s.read(buf).await,
        }
    }

    /// Writes all of `data` and flushes it to the socket.
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Stream::None => Err(not_connected()),
            Stream::Plain(s) => s.write_all(data).await,
            Stream::Tls(s) => {
                s.write_all(data).await?;
                s.flush().await
            }
            Stream::Unix(s) => s.write_all(data).await,
        }
    }

    /// Closes the connection (a TLS close_notify first, when under TLS); errors are ignored.
    pub async fn shutdown(&mut self) {
        match std::mem::take(self) {
            Stream::None => {}
            Stream::Plain(mut s) => {
                let _ = s.shutdown().await;
            }
            Stream::Tls(mut s) => {
                let _ = s.shutdown().await;
            }
            Stream::Unix(mut s) => {
                let _ = s.shutdown().await;
            }
        }
    }
}
