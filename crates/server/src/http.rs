//! The HTTP listener of `[http] address`: `/metrics` (Prometheus text format), `/healthz`
//! (the process answers) and `/readyz` (the listeners are bound and the spool is writable).
//! GET and HEAD only; with `[http] token`, every request must carry `Authorization: Bearer
//! TOKEN` (401 otherwise). Requests are small: a header over 16 KiB is refused by hyper.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use relais_metrics::METRICS;
use tokio::net::TcpListener;
use tracing::warn;

/// Largest request header block, in octets.
const MAX_REQUEST: usize = 16 * 1024;

/// What the handlers need.
pub(crate) struct Http {
    /// The bearer token requests must carry, if any.
    pub token: Option<String>,
    /// The spool directory, whose writability `/readyz` checks.
    pub spool_dir: PathBuf,
}

/// Binds `[http] address`, if set (before privileges are dropped).
pub(crate) fn bind(
    config: &relais_config::Config,
) -> Result<Option<std::net::TcpListener>, crate::ServerError> {
    let Some(address) = config.http.address else {
        return Ok(None);
    };
    let l = std::net::TcpListener::bind(address)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|source| {
            crate::ServerError::Smtpd(relais_smtpd::SmtpdError::Bind { address, source })
        })?;
    tracing::info!("HTTP on {}: /metrics, /healthz, /readyz", l.local_addr()?);
    Ok(Some(l))
}

/// Serves the listener until the task is dropped.
pub(crate) async fn serve(listener: std::net::TcpListener, http: Arc<Http>) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            warn!("cannot use the HTTP listener: {e}");
            return;
        }
    };
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let http = http.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let http = http.clone();
                async move { Ok::<_, Infallible>(handle(&req, &http)) }
            });
            let _ = http1::Builder::new()
                .max_buf_size(MAX_REQUEST)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        "text/plain; charset=utf-8".parse().expect("a header value"),
    );
    r
}

/// Equal without telling how much of it matched, by its timing.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn handle(req: &Request<Incoming>, http: &Http) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD only\n");
    }
    if let Some(token) = &http.token {
        let given = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !same(given.as_bytes(), token.as_bytes()) {
            let mut r = text(StatusCode::UNAUTHORIZED, "a bearer token is needed\n");
            r.headers_mut().insert(
                WWW_AUTHENTICATE,
                "Bearer realm=\"relais\"".parse().expect("a header value"),
            );
            return r;
        }
    }
    match req.uri().path() {
        "/metrics" => {
            let mut r = text(StatusCode::OK, METRICS.render());
            r.headers_mut().insert(
                CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8"
                    .parse()
                    .expect("a header value"),
            );
            r
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => match spool_writable(&http.spool_dir) {
            Ok(()) => text(StatusCode::OK, "ready\n"),
            Err(e) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the spool is not writable: {e}\n"),
            ),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Creates and removes a file in the spool directory.
fn spool_writable(dir: &std::path::Path) -> std::io::Result<()> {
    let probe = dir.join(".readyz");
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}
