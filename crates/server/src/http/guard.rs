//! Who may ask: the bearer token of `[http] token` (in the `Authorization` header, the
//! `relais_token` cookie, or once as `?token=` on a GET, which sets the cookie), the CSRF token
//! every state-changing request carries, the origin of a browser's request, and the `Host` a
//! page without a token answers to. Pure functions over the request's headers, tested as
//! tables; secrets are compared in constant time.

use hyper::HeaderMap;
use hyper::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN};

/// The cookie that carries the bearer token for a browser.
pub(super) const COOKIE_NAME: &str = "relais_token";
/// The header that carries the CSRF token.
pub(super) const CSRF_HEADER: &str = "x-csrf-token";

/// Equal without telling how much of it matched, by its timing.
pub(super) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What the bearer token check decided.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Access {
    /// No token is needed, or the request carries it.
    Granted,
    /// A GET with the right `?token=`: set the cookie and send the browser on to this
    /// location (the same path and query, without the token).
    SetCookie(String),
    /// The token is missing or wrong.
    Denied,
}

/// Checks the bearer token of `[http] token` (none: everything is granted).
pub(super) fn access(
    token: Option<&str>,
    headers: &HeaderMap,
    is_get: bool,
    path: &str,
    query: &[(String, String)],
) -> Access {
    let Some(token) = token else {
        return Access::Granted;
    };
    let header = |name| headers.get_all(name).iter().filter_map(|v| v.to_str().ok());
    let bearer = header(AUTHORIZATION).filter_map(|v| v.strip_prefix("Bearer "));
    let cookies = header(COOKIE)
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(COOKIE_NAME)?.strip_prefix('='));
    if bearer
        .chain(cookies)
        .any(|t| same(t.as_bytes(), token.as_bytes()))
    {
        return Access::Granted;
    }
    let given = query.iter().find(|(k, _)| k == "token");
    match given {
        Some((_, t)) if is_get && same(t.as_bytes(), token.as_bytes()) => {
            let rest: Vec<String> = query
                .iter()
                .filter(|(k, _)| k != "token")
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect();
            Access::SetCookie(if rest.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{}", rest.join("&"))
            })
        }
        _ => Access::Denied,
    }
}

/// Percent-encodes all but unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `Set-Cookie` value that keeps the token in the browser (not readable by scripts, sent
/// only on requests from this site's own pages).
pub(super) fn cookie(token: &str) -> String {
    format!("{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Strict")
}

/// Why a state-changing request is refused, if it is: it comes from another site
/// (`Sec-Fetch-Site`, `Origin` that is not the `Host`), or lacks the page's CSRF token.
pub(super) fn csrf(headers: &HeaderMap, expected: &str) -> Result<(), &'static str> {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site")
        && site != "same-origin"
        && site != "none"
    {
        return Err("a request from another site");
    }
    if let Some(origin) = headers.get(ORIGIN) {
        let host = text(HOST.as_str()).unwrap_or("");
        let origin = origin.to_str().unwrap_or("");
        let authority = origin.split_once("://").map_or("", |(_, a)| a);
        if host.is_empty() || !authority.eq_ignore_ascii_case(host) {
            return Err("a request from another origin");
        }
    }
    match text(CSRF_HEADER) {
        Some(t) if same(t.as_bytes(), expected.as_bytes()) => Ok(()),
        _ => Err("the page's CSRF token is missing or wrong (reload the page)"),
    }
}

/// Whether a page without `[http] token` answers to this `Host`: an IP address, `localhost`
/// or our host name. Another name could be a DNS rebinding attack: a site whose name now points
/// at 127.0.0.1 would otherwise be "same origin" with the status page.
pub(super) fn host_allowed(headers: &HeaderMap, hostname: &str) -> bool {
    let Some(host) = headers.get(HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    // Without the port: `[::1]:9025`, `127.0.0.1:9025`, `name:9025`, `name`.
    let name = match host.strip_prefix('[') {
        Some(v6) => {
            return v6
                .split(']')
                .next()
                .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok());
        }
        None => host.rsplit_once(':').map_or(host, |(n, _)| n),
    };
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || name.eq_ignore_ascii_case(hostname)
}

/// A random token for this process (32 bytes from the kernel, in hex).
pub(super) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    let mut filled = 0;
    while filled < bytes.len() {
        // SAFETY: the pointer and length describe the unfilled part of `bytes`.
        let n = unsafe {
            libc::getrandom(bytes[filled..].as_mut_ptr().cast(), bytes.len() - filled, 0)
        };
        if n > 0 {
            filled += n as usize;
        } else if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            panic!(
                "the kernel gives no random bytes: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::super::route::pairs;
    use super::*;

    fn headers(list: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in list {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn same_compares_whole_values() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
        assert!(same(b"", b""));
    }

    #[test]
    fn the_token_in_a_header_a_cookie_or_once_in_the_query() {
        use Access::*;
        let t = Some("s3cret");
        type Pairs<'a> = &'a [(&'a str, &'a str)];
        // Token, headers, a GET?, path, query; the decision.
        type Case<'a> = (Option<&'a str>, Pairs<'a>, bool, &'a str, Pairs<'a>, Access);
        let table: &[Case] = &[
            (None, &[], true, "/status", &[], Granted),
            (t, &[], true, "/status", &[], Denied),
            (
                t,
                &[("authorization", "Bearer s3cret")],
                true,
                "/metrics",
                &[],
                Granted,
            ),
            (
                t,
                &[("authorization", "Bearer wrong")],
                true,
                "/metrics",
                &[],
                Denied,
            ),
            (
                t,
                &[("authorization", "s3cret")],
                true,
                "/metrics",
                &[],
                Denied,
            ),
            (
                t,
                &[("cookie", "a=b; relais_token=s3cret")],
                false,
                "/api/probe",
                &[],
                Granted,
            ),
            (
                t,
                &[("cookie", "relais_token=s3cre")],
                true,
                "/status",
                &[],
                Denied,
            ),
            (
                t,
                &[("cookie", "other_relais_token=s3cret")],
                true,
                "/status",
                &[],
                Denied,
            ),
            (
                t,
                &[],
                true,
                "/status",
                &[("token", "s3cret")],
                SetCookie("/status".into()),
            ),
            (
                t,
                &[],
                true,
                "/api/queue",
                &[("state", "held"), ("token", "s3cret"), ("sender", "a@b")],
                SetCookie("/api/queue?state=held&sender=a%40b".into()),
            ),
            (t, &[], true, "/status", &[("token", "nope")], Denied),
            // Never from the query of a POST: a link must not change anything.
            (t, &[], false, "/api/probe", &[("token", "s3cret")], Denied),
        ];
        for (token, h, get, path, q, want) in table {
            assert_eq!(
                access(*token, &headers(h), *get, path, &pairs(q)),
                *want,
                "{token:?} {h:?} {path} {q:?}"
            );
        }
    }

    #[test]
    fn csrf_needs_the_token_and_the_same_origin() {
        let ok = ("x-csrf-token", "abc");
        let host = ("host", "127.0.0.1:9025");
        let table: &[(&[(&str, &str)], bool)] = &[
            (&[ok, host], true),
            (&[host], false),
            (&[("x-csrf-token", "abd"), host], false),
            (&[ok, host, ("origin", "http://127.0.0.1:9025")], true),
            (&[ok, host, ("origin", "http://evil.example")], false),
            (&[ok, host, ("origin", "null")], false),
            (&[ok, ("origin", "http://127.0.0.1:9025")], false),
            (&[ok, host, ("sec-fetch-site", "same-origin")], true),
            (&[ok, host, ("sec-fetch-site", "none")], true),
            (&[ok, host, ("sec-fetch-site", "cross-site")], false),
            (&[ok, host, ("sec-fetch-site", "same-site")], false),
        ];
        for (h, want) in table {
            assert_eq!(csrf(&headers(h), "abc").is_ok(), *want, "{h:?}");
        }
    }

    #[test]
    fn without_a_token_only_known_hosts() {
        let table: &[(&str, bool)] = &[
            ("127.0.0.1:9025", true),
            ("127.0.0.1", true),
            ("[::1]:9025", true),
            ("[::1]", true),
            ("localhost:9025", true),
            ("LOCALHOST", true),
            ("mx.example.org:9025", true),
            ("rebound.evil.example:9025", false),
            ("[evil]:80", false),
        ];
        for (host, want) in table {
            assert_eq!(
                host_allowed(&headers(&[("host", host)]), "mx.example.org"),
                *want,
                "{host}"
            );
        }
        assert!(!host_allowed(&HeaderMap::new(), "mx.example.org"));
    }

    #[test]
    fn random_tokens_differ() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
