//! Client half: reading the EHLO answer into capabilities.

use crate::reply::Reply;

/// One EHLO keyword with its parameters (`SIZE 10240000`, `AUTH PLAIN LOGIN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    /// The keyword, upper case.
    pub keyword: String,
    /// Its parameters as written.
    pub params: Vec<String>,
}

/// A server's EHLO answer: its name, greeting text and capabilities, unknown ones kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EhloResponse {
    /// The domain on the first line.
    pub domain: String,
    /// Anything after the domain on the first line.
    pub text: String,
    /// Capabilities in the order given.
    pub capabilities: Vec<Capability>,
}

impl EhloResponse {
    /// Reads a 250 reply to EHLO. Returns `None` for any other code.
    pub fn parse(reply: &Reply) -> Option<EhloResponse> {
        if reply.code != 250 {
            return None;
        }
        let mut lines = reply.lines.iter();
        let first = lines.next()?;
        let (domain, text) = match first.split_once(' ') {
            Some((d, t)) => (d.to_string(), t.to_string()),
            None => (first.clone(), String::new()),
        };
        let capabilities = lines
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                let keyword = words.next()?.to_ascii_uppercase();
                // Old servers write `AUTH=LOGIN`; treat it as `AUTH LOGIN`.
                let (keyword, mut params) = match keyword.split_once('=') {
                    Some((k, v)) => (k.to_string(), vec![v.to_string()]),
                    None => (keyword, Vec::new()),
                };
                params.extend(words.map(str::to_string));
                Some(Capability { keyword, params })
            })
            .collect();
        Some(EhloResponse {
            domain,
            text,
            capabilities,
        })
    }

    /// The capability with this keyword (any case).
    pub fn get(&self, keyword: &str) -> Option<&Capability> {
        self.capabilities
            .iter()
            .find(|c| c.keyword.eq_ignore_ascii_case(keyword))
    }

    /// True if the keyword was advertised.
    pub fn has(&self, keyword: &str) -> bool {
        self.get(keyword).is_some()
    }

    /// The SIZE limit, if one was given (`SIZE` alone or `SIZE 0` means no fixed limit).
    pub fn size_limit(&self) -> Option<u64> {
        self.get("SIZE")
            .and_then(|c| c.params.first())
            .and_then(|p| p.parse().ok())
            .filter(|&n| n > 0)
    }

    /// The SASL mechanisms offered with AUTH, upper case.
    pub fn auth_mechanisms(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for c in self.capabilities.iter().filter(|c| c.keyword == "AUTH") {
            for p in &c.params {
                let p = p.to_ascii_uppercase();
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::ReplyParser;

    #[test]
    fn parses_an_ehlo_answer() {
        let mut p = ReplyParser::new();
        p.push(b"250-mx.example.com Hello client [192.0.2.1]\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-AUTH PLAIN LOGIN\r\n250-AUTH=LOGIN\r\n250-X-ODD thing\r\n250 8BITMIME\r\n");
        let e = EhloResponse::parse(&p.next_reply().unwrap().unwrap()).unwrap();
        assert_eq!(e.domain, "mx.example.com");
        assert_eq!(e.text, "Hello client [192.0.2.1]");
        assert!(e.has("pipelining"));
        assert!(e.has("X-ODD"));
        assert!(!e.has("STARTTLS"));
        assert_eq!(e.size_limit(), Some(10_240_000));
        assert_eq!(e.auth_mechanisms(), vec!["PLAIN", "LOGIN"]);
        assert_eq!(e.capabilities.len(), 6);
    }

    #[test]
    fn non_250_is_not_an_ehlo_answer() {
        let r = Reply::new(502, None, "no");
        assert_eq!(EhloResponse::parse(&r), None);
    }
}
