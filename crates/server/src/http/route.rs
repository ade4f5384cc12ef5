//! Which handler a request goes to, from its method and path alone, and the query string as
//! name-value pairs: pure functions, tested as tables.

use hyper::Method;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route<'a> {
    /// `GET /metrics`: the Prometheus text format.
    Metrics,
    /// `GET /healthz`.
    Healthz,
    /// `GET /readyz`.
    Readyz,
    /// `GET /`: on to `/status`.
    Root,
    /// `GET /status`: the page.
    Page,
    /// `GET /status/<file>`: its script or style sheet.
    Asset(&'a str),
    /// `GET /api/queue?filters`: the queue.
    Queue,
    /// `GET /api/queue/<id>`: one message.
    Message(&'a str),
    /// `POST /api/queue/<id>/<action>`: hold, release, flush or delete one message.
    Steer(&'a str, &'a str),
    /// `POST /api/queue/flush`: try every message that is not held.
    FlushAll,
    /// `GET /api/events`: recent events, then live ones (server-sent events).
    Events,
    /// `POST /api/probe`: probe a host or domain.
    Probe,
    /// A known path asked with another method; the one it takes.
    WrongMethod(&'static str),
    /// Nothing here.
    NotFound,
}

/// Actions on one message.
const ACTIONS: &[&str] = &["hold", "release", "flush", "delete"];

impl Route<'_> {
    /// Whether the request changes something, and so is a POST that needs the CSRF token.
    pub(super) fn changes_state(self) -> bool {
        matches!(self, Route::Steer(..) | Route::FlushAll | Route::Probe)
    }
}

/// The route of a request. HEAD is GET without the body (hyper leaves the body out).
pub(super) fn route<'a>(method: &Method, path: &'a str) -> Route<'a> {
    let get = method == Method::GET || method == Method::HEAD;
    let post = method == Method::POST;
    let (route, wants_post) = match path {
        "/metrics" => (Route::Metrics, false),
        "/healthz" => (Route::Healthz, false),
        "/readyz" => (Route::Readyz, false),
        "/" => (Route::Root, false),
        "/status" => (Route::Page, false),
        "/api/queue" => (Route::Queue, false),
        "/api/queue/flush" => (Route::FlushAll, true),
        "/api/events" => (Route::Events, false),
        "/api/probe" => (Route::Probe, true),
        _ => match sub_route(path) {
            Some(r) => r,
            None => return Route::NotFound,
        },
    };
    match (wants_post, get, post) {
        (false, true, _) | (true, _, true) => route,
        (false, _, _) => Route::WrongMethod("GET, HEAD"),
        (true, _, _) => Route::WrongMethod("POST"),
    }
}

/// The routes with a part of their own: an asset, a message, an action on it.
fn sub_route(path: &str) -> Option<(Route<'_>, bool)> {
    if let Some(file) = path.strip_prefix("/status/") {
        return super::page::is_asset(file).then_some((Route::Asset(file), false));
    }
    let rest = path.strip_prefix("/api/queue/")?;
    match rest.split_once('/') {
        None if !rest.is_empty() => Some((Route::Message(rest), false)),
        Some((id, action)) if !id.is_empty() && ACTIONS.contains(&action) => {
            Some((Route::Steer(id, action), true))
        }
        _ => None,
    }
}

/// The name-value pairs of a query string (`a=1&b=x%40y`), percent-decoded, `+` as a space;
/// a name without `=` has an empty value.
pub(super) fn query(q: Option<&str>) -> Vec<(String, String)> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// `%XX` escapes and `+` decoded; a bad escape stays as it is.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let hex = |c: &u8| (*c as char).to_digit(16);
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => match (b.get(i + 1).and_then(hex), b.get(i + 2).and_then(hex)) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Name-value pairs as [`query`] gives them, for tests.
#[cfg(test)]
pub(super) fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let get = Method::GET;
        let post = Method::POST;
        let table: &[(&Method, &str, Route)] = &[
            (&get, "/metrics", Route::Metrics),
            (&Method::HEAD, "/metrics", Route::Metrics),
            (&post, "/metrics", Route::WrongMethod("GET, HEAD")),
            (&get, "/healthz", Route::Healthz),
            (&get, "/readyz", Route::Readyz),
            (&get, "/", Route::Root),
            (&get, "/status", Route::Page),
            (&get, "/status/status.js", Route::Asset("status.js")),
            (&get, "/status/status.css", Route::Asset("status.css")),
            (&get, "/status/../Cargo.toml", Route::NotFound),
            (&get, "/status/nope.js", Route::NotFound),
            (&get, "/api/queue", Route::Queue),
            (&post, "/api/queue", Route::WrongMethod("GET, HEAD")),
            (&get, "/api/queue/ABC123", Route::Message("ABC123")),
            (&get, "/api/queue/ABC123/hold", Route::WrongMethod("POST")),
            (&post, "/api/queue/ABC123/explode", Route::NotFound),
            (&post, "/api/queue//hold", Route::NotFound),
            (&get, "/api/queue/", Route::NotFound),
            (&post, "/api/queue/flush", Route::FlushAll),
            (&get, "/api/events", Route::Events),
            (&post, "/api/probe", Route::Probe),
            (&get, "/api/probe", Route::WrongMethod("POST")),
            (&Method::PUT, "/api/probe", Route::WrongMethod("POST")),
            (&get, "/nope", Route::NotFound),
            (&post, "/nope", Route::NotFound),
        ];
        for (method, path, want) in table {
            assert_eq!(route(method, path), *want, "{method} {path}");
        }
        for action in ACTIONS {
            let path = format!("/api/queue/ABC123/{action}");
            assert_eq!(route(&post, &path), Route::Steer("ABC123", action));
        }
    }

    #[test]
    fn only_posts_change_state() {
        assert!(Route::Steer("a", "hold").changes_state());
        assert!(Route::FlushAll.changes_state());
        assert!(Route::Probe.changes_state());
        for r in [
            Route::Queue,
            Route::Message("a"),
            Route::Events,
            Route::Page,
        ] {
            assert!(!r.changes_state(), "{r:?}");
        }
    }

    #[test]
    fn queries() {
        type Pairs<'a> = &'a [(&'a str, &'a str)];
        let table: &[(Option<&str>, Pairs)] = &[
            (None, &[]),
            (Some(""), &[]),
            (Some("a=1&b=2"), &[("a", "1"), ("b", "2")]),
            (Some("sender=a%40b.example"), &[("sender", "a@b.example")]),
            (Some("q=two+words"), &[("q", "two words")]),
            (Some("flag&&x="), &[("flag", ""), ("x", "")]),
            (Some("bad=%zz%4"), &[("bad", "%zz%4")]),
            (Some("end=%41"), &[("end", "A")]),
            (Some("utf=%C3%A9"), &[("utf", "é")]),
        ];
        for (q, want) in table {
            assert_eq!(query(*q), pairs(want), "{q:?}");
        }
    }
}
