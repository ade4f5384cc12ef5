//! Macro expansion (RFC 7208 section 7.3 and 7.4): what `%{i}`, `%{l2r-}`, `%{D2}` ... become
//! for one check. The values that need the DNS (`%{p}`) are looked up by the evaluator first.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use super::parse::{MacroString, Token};

/// The longest domain name a macro expansion may give (section 7.3).
const MAX_DOMAIN: usize = 253;

/// What the macro letters stand for in one `check_host()`.
pub(crate) struct Values<'a> {
    /// `s`: the sender, `local@domain`.
    pub sender: &'a str,
    /// `d`: the domain whose record is evaluated.
    pub domain: &'a str,
    /// `i`, `c`, `v`: the client address, an IPv4-mapped IPv6 address already made IPv4.
    pub ip: IpAddr,
    /// `h`: the HELO/EHLO name.
    pub helo: &'a str,
    /// `r`: the receiving host.
    pub receiver: &'a str,
    /// `p`: the validated name of the address, when the macro-string uses it.
    pub validated: &'a str,
}

impl Values<'_> {
    fn value(&self, letter: char) -> String {
        let (local, sender_domain) = self.sender.rsplit_once('@').unwrap_or(("", self.sender));
        match letter {
            's' => self.sender.to_string(),
            'l' if local.is_empty() => "postmaster".to_string(),
            'l' => local.to_string(),
            'o' => sender_domain.to_string(),
            'd' => self.domain.to_string(),
            'i' => dotted(self.ip),
            'p' => self.validated.to_string(),
            'v' if self.ip.is_ipv4() => "in-addr".to_string(),
            'v' => "ip6".to_string(),
            'h' => self.helo.to_string(),
            'c' => self.ip.to_string(),
            'r' if self.receiver.is_empty() => "unknown".to_string(),
            'r' => self.receiver.to_string(),
            't' => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
                .to_string(),
            _ => String::new(),
        }
    }
}

/// `i`: IPv4 dotted, IPv6 as 32 dot-separated nibbles (section 7.3).
fn dotted(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let nibbles: Vec<String> = v6
                .octets()
                .iter()
                .flat_map(|b| [b >> 4, b & 0x0f])
                .map(|n| format!("{n:x}"))
                .collect();
            nibbles.join(".")
        }
    }
}

/// Expands `text` for `values`.
pub(crate) fn expand(text: &MacroString, values: &Values<'_>) -> String {
    let mut out = String::new();
    for token in &text.0 {
        match token {
            Token::Literal(literal) => out.push_str(literal),
            Token::Escape(escape) => out.push_str(escape),
            Token::Macro(m) => {
                let value = values.value(m.letter);
                let mut parts: Vec<&str> = value.split(|c| m.delimiters.contains(c)).collect();
                if m.reverse {
                    parts.reverse();
                }
                if let Some(keep) = m.keep
                    && keep < parts.len()
                {
                    parts.drain(..parts.len() - keep);
                }
                let joined = parts.join(".");
                if m.escape {
                    out.push_str(&url_escape(&joined));
                } else {
                    out.push_str(&joined);
                }
            }
        }
    }
    out
}

/// Expands a domain-spec into the name to query: without the trailing dot, and cut from the
/// left, label by label, to at most 253 characters (section 7.3).
pub(crate) fn expand_domain(text: &MacroString, values: &Values<'_>) -> String {
    let expanded = expand(text, values);
    let mut name = expanded.strip_suffix('.').unwrap_or(&expanded);
    while name.len() > MAX_DOMAIN {
        match name.split_once('.') {
            Some((_, rest)) => name = rest,
            None => return String::new(),
        }
    }
    name.to_string()
}

/// An upper-case macro's value: everything but RFC 3986's unreserved characters escaped.
fn url_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::parse::{Context, macro_string};
    use super::*;

    fn values(ip: &str) -> Values<'static> {
        Values {
            sender: "strong-bad@email.example.com",
            domain: "email.example.com",
            ip: ip.parse().unwrap(),
            helo: "mx.example.org",
            receiver: "",
            validated: "mx.example.org",
        }
    }

    fn x(text: &str, ip: &str) -> String {
        let parsed = macro_string(text, Context::Explanation).unwrap();
        expand(&parsed, &values(ip))
    }

    /// The examples of RFC 7208 section 7.4.
    #[test]
    fn rfc_examples() {
        let v4 = "192.0.2.3";
        assert_eq!(x("%{s}", v4), "strong-bad@email.example.com");
        assert_eq!(x("%{o}", v4), "email.example.com");
        assert_eq!(x("%{d}", v4), "email.example.com");
        assert_eq!(x("%{d4}", v4), "email.example.com");
        assert_eq!(x("%{d3}", v4), "email.example.com");
        assert_eq!(x("%{d2}", v4), "example.com");
        assert_eq!(x("%{d1}", v4), "com");
        assert_eq!(x("%{dr}", v4), "com.example.email");
        assert_eq!(x("%{d2r}", v4), "example.email");
        assert_eq!(x("%{l}", v4), "strong-bad");
        assert_eq!(x("%{l-}", v4), "strong.bad");
        assert_eq!(x("%{lr}", v4), "strong-bad");
        assert_eq!(x("%{lr-}", v4), "bad.strong");
        assert_eq!(x("%{l1r-}", v4), "strong");
        assert_eq!(
            x("%{ir}.%{v}._spf.%{d2}", v4),
            "3.2.0.192.in-addr._spf.example.com"
        );
        assert_eq!(
            x("%{lr-}.lp._spf.%{d2}", v4),
            "bad.strong.lp._spf.example.com"
        );
        assert_eq!(
            x("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", v4),
            "3.2.0.192.in-addr.strong.lp._spf.example.com"
        );
        assert_eq!(
            x("%{d2}.trusted-domains.example.net", v4),
            "example.com.trusted-domains.example.net"
        );
        assert_eq!(
            x("%{ir}.%{v}._spf.%{d2}", "2001:db8::cb01"),
            "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"
        );
        assert_eq!(
            x("%{c} %{r} %%%_%-", "2001:db8::cb01"),
            "2001:db8::cb01 unknown % %20"
        );
        assert_eq!(x("%{p}", v4), "mx.example.org");
    }

    #[test]
    fn upper_case_escapes() {
        let mut v = values("192.0.2.3");
        v.sender = "~jack&jill=up-a_b3.c@example.com";
        let parsed = macro_string("%{L} %{S}", Context::Explanation).unwrap();
        assert_eq!(
            expand(&parsed, &v),
            "~jack%26jill%3Dup-a_b3.c ~jack%26jill%3Dup-a_b3.c%40example.com"
        );
    }

    #[test]
    fn long_names_lose_labels_on_the_left() {
        let v = values("192.0.2.3");
        let long = format!("{}example.com.", "abcdefghi.".repeat(30));
        let parsed = macro_string(&long, Context::Domain).unwrap();
        let name = expand_domain(&parsed, &v);
        assert!(name.len() <= 253 && name.len() > 240, "{}", name.len());
        assert!(name.ends_with("abcdefghi.example.com"));
        assert!(name.starts_with("abcdefghi."));
    }
}
