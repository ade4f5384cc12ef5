//! The status page itself: plain HTML, a style sheet and a script, built into the binary
//! (`include_str!`), nothing loaded from elsewhere. The page carries this process's CSRF token
//! in a `<meta>` element, which the script sends with every state-changing request; the
//! headers (`secure` in the parent module) forbid framing, inline scripts and loads from
//! other sites.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};

use super::Reply;

const HTML: &str = include_str!("status.html");
/// The files under `/status/`: name, content type, text.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "status.js",
        "text/javascript; charset=utf-8",
        include_str!("status.js"),
    ),
    (
        "status.css",
        "text/css; charset=utf-8",
        include_str!("status.css"),
    ),
];

/// Whether `/status/<name>` is one of the page's files.
pub(super) fn is_asset(name: &str) -> bool {
    ASSETS.iter().any(|(n, _, _)| *n == name)
}

/// The headers every part of the page is served with.
fn reply(content_type: &'static str, body: String) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body)).boxed());
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The page, with the CSRF token in it.
pub(super) fn html(csrf: &str) -> Reply {
    reply("text/html; charset=utf-8", HTML.replace("{{CSRF}}", csrf))
}

/// One of the page's files (see [`is_asset`]).
pub(super) fn asset(name: &str) -> Reply {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, text)) => reply(content_type, text.to_string()),
        None => super::text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_carries_the_token_and_loads_nothing_from_elsewhere() {
        let page = HTML.replace("{{CSRF}}", "abc123");
        assert!(page.contains(r#"<meta name="csrf-token" content="abc123">"#));
        for (name, _, text) in ASSETS.iter().chain([&("status.html", "", HTML)]) {
            // The SVG namespace is a name, not a load.
            let text = text.replace("http://www.w3.org/2000/svg", "");
            assert!(
                !text.contains("http://")
                    && !text.contains("https://")
                    && !text.contains("@import"),
                "{name} loads something from elsewhere"
            );
        }
        assert!(
            !HTML.contains("<script>"),
            "inline scripts are refused by the policy"
        );
    }
}
