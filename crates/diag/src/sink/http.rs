//! The sink's small JSON API and its pages over HTTP/1.1 (one request per connection):
//!
//! | request | answer |
//! |---|---|
//! | `GET /` | the captured messages as an HTML page |
//! | `GET /messages/ID` | one message as an HTML page |
//! | `GET /api/messages` | `{"total": N, "messages": [...]}` without contents |
//! | `GET /api/messages/ID` | one message, its content under `raw` |
//! | `GET /api/messages/ID/raw` | the content as `message/rfc822` |
//! | `DELETE /api/messages` | every message forgotten (`204`) |

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::page;
use super::store::Store;

/// Serves the API on `listener` for as long as the sink runs.
pub(super) async fn serve(listener: TcpListener, store: Arc<Store>) {
    while let Ok((stream, _)) = listener.accept().await {
        let store = store.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), answer(stream, &store)).await;
        });
    }
}

async fn answer(mut stream: TcpStream, store: &Store) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let mut words = head.lines().next().unwrap_or_default().split(' ');
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (status, kind, body) = route(store, method, path);
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.write_all(&body).await?;
    stream.shutdown().await
}

/// (status line, content type, body) for a request.
fn route(store: &Store, method: &str, path: &str) -> (&'static str, &'static str, Vec<u8>) {
    const JSON: &str = "application/json";
    let not_found = ("404 Not Found", JSON, br#"{"error":"not found"}"#.to_vec());
    let path = path.split('?').next().unwrap_or_default();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    const HTML: &str = "text/html; charset=utf-8";
    match (method, parts.as_slice()) {
        ("GET", [""]) => ("200 OK", HTML, page::list(&store.all())),
        ("GET", ["messages", id]) => match id.parse().ok().and_then(|id| store.get(id)) {
            Some(m) => ("200 OK", HTML, page::one(&m)),
            None => not_found,
        },
        ("GET", ["api", "messages"]) => ("200 OK", JSON, store.list().to_string().into_bytes()),
        ("DELETE", ["api", "messages"]) => {
            store.clear();
            ("204 No Content", JSON, Vec::new())
        }
        ("GET", ["api", "messages", id, rest @ ..]) => {
            let Some(m) = id.parse().ok().and_then(|id| store.get(id)) else {
                return not_found;
            };
            match rest {
                [] => {
                    let mut value = json!(m);
                    value["raw"] = json!(m.raw);
                    ("200 OK", JSON, value.to_string().into_bytes())
                }
                ["raw"] => ("200 OK", "message/rfc822", m.raw.into_bytes()),
                _ => not_found,
            }
        }
        _ => not_found,
    }
}
