//! The HTTP listener of `[http] address`: `/metrics` (Prometheus text format), `/healthz`
//! (the process answers), `/readyz` (the listeners are bound and the spool is writable), and
//! the status page for a person at `/status` with its JSON API under `/api/`:
//!
//! ```text
//! GET  /status                    the page (HTML; its script and style under /status/)
//! GET  /api/queue?sender=&recipient=&state=active|deferred|held&older_than=S&newer_than=S
//! GET  /api/queue/ID              envelope, headers, each recipient's history
//! POST /api/queue/ID/hold|release|flush|delete,  POST /api/queue/flush
//! GET  /api/events                recent events, then live ones (text/event-stream)
//! POST /api/probe                 {"target": …, "port": …, "host": …} → the probe's report
//! ```
//!
//! With `[http] token`, every request must carry it: `Authorization: Bearer TOKEN`, or the
//! `relais_token` cookie, which a GET with `?token=TOKEN` sets (then the browser is sent on
//! to the same address without it); 401 otherwise. A POST must carry the page's CSRF token
//! (`X-CSRF-Token`, random per process) and come from the page's own origin (403 otherwise).
//! Without a token the page answers only to a `Host` that is an IP address, `localhost` or the
//! host name (no DNS rebinding). Requests are small: a header over 16 KiB is refused by hyper,
//! a body over 16 KiB with 413.

mod api;
mod guard;
mod page;
mod probe;
mod route;
mod sse;

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{
    ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, LOCATION, SET_COOKIE, WWW_AUTHENTICATE,
};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use relais_metrics::METRICS;
use relais_queue::QueueHandle;
use relais_spool::Spool;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::warn;

pub use probe::{ProbeRequest, Prober};

use crate::events::EventHub;
use guard::Access;
use route::Route;

/// Largest request header block, in octets.
const MAX_REQUEST: usize = 16 * 1024;
/// Largest request body (a probe request; the actions have none), in octets.
const MAX_BODY: usize = 16 * 1024;
/// How many pages may watch the events at once.
const MAX_WATCHERS: usize = 32;

/// What the binary gives the status page.
#[derive(Clone, Default)]
pub struct StatusPage {
    /// The recent events, fed by the layer ([`EventHub::layer`]) installed beside the log
    /// writer.
    pub events: EventHub,
    /// The probe engine; without one the probe form answers 501.
    pub probe: Option<Prober>,
}

/// What the handlers need.
pub(crate) struct Http {
    /// The bearer token requests must carry, if any.
    token: Option<String>,
    /// The spool directory, whose writability `/readyz` checks.
    spool_dir: PathBuf,
    /// Our host name: a `Host` the page answers to without a token.
    hostname: String,
    /// The token state-changing requests must carry (in the page, random per process).
    csrf: String,
    /// The queue the page lists.
    spool: Spool,
    /// Where the page's actions go (as the control socket's).
    queue: QueueHandle,
    /// The events the page shows.
    events: EventHub,
    /// The probe form's engine, one probe at a time.
    probe: probe::ProbeSlot,
    /// Places for pages watching the events.
    watchers: Arc<Semaphore>,
}

impl Http {
    pub(crate) fn new(
        config: &relais_config::Config,
        spool: Spool,
        queue: QueueHandle,
        status: StatusPage,
    ) -> Http {
        status.events.open();
        Http {
            token: config.http.token.clone(),
            spool_dir: config.spool_dir(),
            hostname: config.hostname.clone(),
            csrf: guard::random_token(),
            spool,
            queue,
            events: status.events,
            probe: probe::ProbeSlot::new(status.probe),
            watchers: Arc::new(Semaphore::new(MAX_WATCHERS)),
        }
    }
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
    tracing::info!(
        "HTTP on {}: /metrics, /healthz, /readyz, /status",
        l.local_addr()?
    );
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
                async move { Ok::<_, Infallible>(handle(req, &http).await) }
            });
            let _ = http1::Builder::new()
                .max_buf_size(MAX_REQUEST)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// An answer, whole or streamed.
pub(crate) type Reply = Response<BoxBody<Bytes, Infallible>>;

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    reply(status, "text/plain; charset=utf-8", body)
}

fn json_reply(status: StatusCode, value: serde_json::Value) -> Reply {
    reply(status, "application/json", value.to_string())
}

/// `303 See Other` to `location`, setting a cookie when given.
fn see_other(location: &str, cookie: Option<String>) -> Reply {
    let mut r = text(StatusCode::SEE_OTHER, "");
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(LOCATION, v);
    }
    if let Some(v) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r.headers_mut().insert(SET_COOKIE, v);
    }
    r
}

/// The headers of every answer of the status page: no framing (clickjacking), no scripts or
/// styles but the page's own, no loads from elsewhere, no guessing of content types.
fn secure(h: &mut HeaderMap) {
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
         img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    );
    set(h, "x-frame-options", "DENY");
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "no-referrer");
}

async fn handle(req: Request<Incoming>, http: &Http) -> Reply {
    let path = req.uri().path().to_string();
    let query = route::query(req.uri().query());
    let is_get = req.method() == Method::GET || req.method() == Method::HEAD;
    match guard::access(http.token.as_deref(), req.headers(), is_get, &path, &query) {
        Access::Granted => {}
        Access::SetCookie(location) => {
            let token = http.token.as_deref().unwrap_or_default();
            return see_other(&location, Some(guard::cookie(token)));
        }
        Access::Denied => {
            let mut r = text(StatusCode::UNAUTHORIZED, "a bearer token is needed\n");
            r.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"relais\""),
            );
            return r;
        }
    }
    match route::route(req.method(), &path) {
        Route::Metrics => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            METRICS.render(),
        ),
        Route::Healthz => text(StatusCode::OK, "ok\n"),
        Route::Readyz => match spool_writable(&http.spool_dir) {
            Ok(()) => text(StatusCode::OK, "ready\n"),
            Err(e) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the spool is not writable: {e}\n"),
            ),
        },
        Route::NotFound => text(StatusCode::NOT_FOUND, "not found\n"),
        Route::WrongMethod(allow) => {
            let mut r = text(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{} only\n", allow.replace(", ", " or ")),
            );
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
            r
        }
        page_route => {
            let mut r = status_page(req, page_route, &query, http).await;
            secure(r.headers_mut());
            r
        }
    }
}

/// The page and its API, once the bearer token (if any) was checked.
async fn status_page(
    req: Request<Incoming>,
    route: Route<'_>,
    query: &[(String, String)],
    http: &Http,
) -> Reply {
    if http.token.is_none() && !guard::host_allowed(req.headers(), &http.hostname) {
        return text(
            StatusCode::FORBIDDEN,
            "unknown Host: use an IP address, localhost or the host name, or set [http] token\n",
        );
    }
    let body = if route.changes_state() {
        if let Err(why) = guard::csrf(req.headers(), &http.csrf) {
            return text(StatusCode::FORBIDDEN, format!("{why}\n"));
        }
        match read_body(req).await {
            Ok(b) => b,
            Err(r) => return r,
        }
    } else {
        Bytes::new()
    };
    let (spool, queue) = (&http.spool, &http.queue);
    match route {
        Route::Root => see_other("/status", None),
        Route::Page => page::html(&http.csrf),
        Route::Asset(name) => page::asset(name),
        Route::Queue => api::list(spool, query),
        Route::Message(id) => api::show(spool, id),
        Route::Steer(id, action) => api::act(spool, queue, Some((id, action))).await,
        Route::FlushAll => api::act(spool, queue, None).await,
        Route::Events => sse::watch(&http.events, &http.watchers),
        Route::Probe => http.probe.run(&body).await,
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// The body of a POST, at most [`MAX_BODY`] octets (413 beyond).
async fn read_body(req: Request<Incoming>) -> Result<Bytes, Reply> {
    let too_large = || text(StatusCode::PAYLOAD_TOO_LARGE, "the request is too large\n");
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(too_large()),
        Err(e) => Err(text(StatusCode::BAD_REQUEST, format!("{e}\n"))),
    }
}

/// Creates and removes a file in the spool directory.
fn spool_writable(dir: &std::path::Path) -> std::io::Result<()> {
    let probe = dir.join(".readyz");
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}
