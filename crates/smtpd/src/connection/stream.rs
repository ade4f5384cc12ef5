//! The byte stream under a session (clear text, then TLS after STARTTLS) and how it is read:
//! an idle clear-text session holds no read buffer.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// Size of the read buffer of a connection.
pub(super) const READ_BUFFER: usize = 8 * 1024;

/// The byte stream under a session: clear text until STARTTLS, then TLS.
pub(super) enum Conn {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP (after STARTTLS, or from the start on a submissions port).
    Tls(Box<TlsStream<TcpStream>>),
    /// Lost during a failed handshake.
    Gone,
}

impl Conn {
    /// Reads what has arrived into `buf`, emptied first. A clear-text connection waits for
    /// data before it takes the memory to read it, so an idle session holds no read buffer
    /// (the caller drops it between commands); the buffer is filled without zeroing it.
    pub(super) async fn read_into(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        buf.clear();
        match self {
            Conn::Plain(s) => loop {
                s.readable().await?;
                buf.reserve(READ_BUFFER);
                match s.try_read_buf(buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    done => return done,
                }
            },
            Conn::Tls(s) => {
                buf.reserve(READ_BUFFER);
                s.read_buf(buf).await
            }
            Conn::Gone => Ok(0),
        }
    }

    pub(super) async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.write_all(bytes).await,
            Conn::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Conn::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    /// Ends the connection: TLS says close_notify first; a clear-text socket is closed, which
    /// sends the FIN (a `shutdown(2)` before it would be one more system call per session).
    pub(super) async fn shutdown(&mut self) {
        match self {
            Conn::Plain(_) => *self = Conn::Gone,
            Conn::Tls(s) => {
                let _ = s.shutdown().await;
            }
            Conn::Gone => {}
        }
    }
}
