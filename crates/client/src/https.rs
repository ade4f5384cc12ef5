//! One HTTPS GET, for the MTA-STS policy file (RFC 8461 §3.3): TLS with the same trust store
//! as the SMTP client (the system's roots and a configured CA file), the certificate verified
//! for the host name, HTTP/1.1 with `Connection: close`, no redirects, the body read by its
//! `Content-Length`, in chunks, or to the end, never beyond a size limit.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::TlsPolicy;
use crate::tls::{self, TlsSetup};

/// What an HTTPS server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The `Content-Type` header, lower case (empty when there is none).
    pub content_type: String,
    /// The body, decoded from chunks when it came in chunks.
    pub body: Vec<u8>,
}

/// GETs `https://host/path` from `addr`, verifying the certificate for `host` against `tls`'s
/// trust store (its `verify` is taken to be on). The whole exchange takes at most `timeout`;
/// a response longer than `max_len` bytes is an error.
pub async fn https_get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    tls: &TlsPolicy,
    timeout: Duration,
    max_len: usize,
) -> Result<HttpResponse, String> {
    let policy = TlsPolicy {
        verify: true,
        ..tls.clone()
    };
    let exchange = async {
        let setup = TlsSetup::new(&policy)?;
        let name = tls::server_name(host)?;
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        let mut s = setup
            .connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {host} ({addr}): {e}"))?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: relais\r\nAccept: text/plain\r\n\
             Connection: close\r\n\r\n"
        );
        s.write_all(request.as_bytes())
            .await
            .map_err(|e| format!("{host}: {e}"))?;
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = match s.read(&mut buf).await {
                Ok(n) => n,
                // Servers often end without close_notify: what came is what there is.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                Err(e) => return Err(format!("{host}: {e}")),
            };
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&buf[..n]);
            if raw.len() > max_len + 16 * 1024 {
                return Err(format!(
                    "{host}: the response is longer than {max_len} bytes"
                ));
            }
        }
        parse_response(&raw, max_len).map_err(|e| format!("{host}: {e}"))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("{host}: no complete answer within {timeout:?}"))?
}

/// Reads a complete HTTP/1.1 response (the connection closed after it).
pub fn parse_response(raw: &[u8], max_len: usize) -> Result<HttpResponse, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of the header section")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "a header that is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP/1.x answer: {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let (mut content_type, mut length, mut chunked) = (String::new(), None, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-type" => content_type = value.to_ascii_lowercase(),
            "content-length" => {
                length = Some(value.parse::<usize>().map_err(|_| "bad Content-Length")?)
            }
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            _ => {}
        }
    }
    let rest = &raw[end + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(n) = length {
        if rest.len() < n {
            return Err(format!("the body ended after {} of {n} bytes", rest.len()));
        }
        rest[..n].to_vec()
    } else {
        rest.to_vec()
    };
    if body.len() > max_len {
        return Err(format!("the body is longer than {max_len} bytes"));
    }
    Ok(HttpResponse {
        status,
        content_type,
        body,
    })
}

/// The body of a chunked transfer (RFC 9112 §7.1), up to the last chunk.
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a chunk size line without its end")?;
        let line = std::str::from_utf8(&rest[..eol]).map_err(|_| "a bad chunk size")?;
        let hex = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(hex, 16).map_err(|_| format!("bad chunk size {hex:?}"))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            return Err("the body ended inside a chunk".into());
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses() {
        let ok = |status, ct: &str, body: &[u8]| {
            Ok(HttpResponse {
                status,
                content_type: ct.into(),
                body: body.to_vec(),
            })
        };
        let cases: &[(&[u8], Result<HttpResponse, String>)] = &[
            (
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
                ok(200, "text/plain", b"hello"),
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2;x=y\r\nlo\r\n0\r\n\r\n",
                ok(200, "", b"hello"),
            ),
            (b"HTTP/1.0 404 Not Found\r\n\r\ngone", ok(404, "", b"gone")),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort",
                Err("the body ended after 5 of 9 bytes".into()),
            ),
            (b"SSH-2.0-x\r\n\r\n", Err("not an HTTP/1.x answer: \"SSH-2.0-x\"".into())),
            (b"HTTP/1.1 200 OK\r\n", Err("no end of the header section".into())),
            (
                b"HTTP/1.1 200 OK\r\n\r\n0123456789ABCDEF",
                Err("the body is longer than 10 bytes".into()),
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(
                &parse_response(raw, 10),
                want,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }
}
