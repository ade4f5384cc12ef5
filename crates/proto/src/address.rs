//! Mailbox addresses and the paths of MAIL and RCPT (RFC 5321 §4.1.2, RFC 6531 for UTF-8).
//!
//! Parsing is strict about what an address is (no trailing dots, no `@` in an unquoted local part,
//! RFC length limits) and lenient about how it is written, as Postfix is: angle brackets may be
//! left out (`MAIL FROM:Admin@test.com`, as seed 002 types it) and a source route
//! (`<@a,@b:user@host>`) is accepted and ignored, as RFC 5321 §4.1.1.3 asks.

use std::fmt;

/// Longest local part (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL_PART: usize = 64;
/// Longest domain (RFC 5321 §4.5.3.1.2).
pub const MAX_DOMAIN: usize = 255;
/// Longest path, brackets included (RFC 5321 §4.5.3.1.3).
pub const MAX_PATH: usize = 256;

/// `local@domain`. The local part is kept as written (case matters to the owner of the domain);
/// the domain is kept as written too, and compared without case by [`Mailbox::domain_lower`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mailbox {
    /// The local part, unquoted: `"john doe"` is stored as `john doe`.
    pub local: String,
    /// The domain or address literal (`[192.0.2.1]`); empty only for the bare `<postmaster>`
    /// recipient that RFC 5321 §4.5.1 requires every server to accept.
    pub domain: String,
}

/// Why an address could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AddressError {
    /// Nothing where an address should be.
    Empty,
    /// Not an address: stray characters, `@` missing or doubled, bad quoting.
    Syntax,
    /// The local part is longer than 64 octets.
    LocalPartTooLong,
    /// The domain is longer than 255 octets.
    DomainTooLong,
    /// The whole path is longer than 256 octets.
    PathTooLong,
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressError::Empty => "empty address",
            AddressError::Syntax => "bad address syntax",
            AddressError::LocalPartTooLong => "local part longer than 64 octets",
            AddressError::DomainTooLong => "domain longer than 255 octets",
            AddressError::PathTooLong => "path longer than 256 octets",
        })
    }
}

impl std::error::Error for AddressError {}

impl Mailbox {
    /// Parses `local@domain` (no brackets).
    pub fn parse(s: &str) -> Result<Mailbox, AddressError> {
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        let (local, rest) = parse_local_part(s)?;
        let domain = rest.strip_prefix('@').ok_or(AddressError::Syntax)?;
        if local.len() > MAX_LOCAL_PART {
            return Err(AddressError::LocalPartTooLong);
        }
        if domain.len() > MAX_DOMAIN {
            return Err(AddressError::DomainTooLong);
        }
        if !is_domain_or_literal(domain) {
            return Err(AddressError::Syntax);
        }
        Ok(Mailbox {
            local,
            domain: domain.to_string(),
        })
    }

    /// The domain in lower case, for comparisons.
    pub fn domain_lower(&self) -> String {
        self.domain.to_ascii_lowercase()
    }

    /// True for the bare `<postmaster>` recipient (no domain).
    pub fn is_bare_postmaster(&self) -> bool {
        self.domain.is_empty()
    }

    /// True when the domain is an address literal such as `[192.0.2.1]`.
    pub fn is_address_literal(&self) -> bool {
        self.domain.starts_with('[')
    }

    /// True when local part and domain are ASCII; otherwise SMTPUTF8 is needed.
    pub fn is_ascii(&self) -> bool {
        self.local.is_ascii() && self.domain.is_ascii()
    }
}

impl fmt::Display for Mailbox {
    /// The address as it goes between angle brackets, quoting the local part when it needs it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_dot_string(&self.local) {
            f.write_str(&self.local)?;
        } else {
            f.write_str("\"")?;
            for c in self.local.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\"")?;
        }
        if !self.domain.is_empty() {
            write!(f, "@{}", self.domain)?;
        }
        Ok(())
    }
}

/// The sender of MAIL FROM: an address, or `<>` for bounces and other notifications.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReversePath {
    /// `<>`: the null reverse path. Mail from it is never bounced.
    Null,
    /// A real sender address.
    Mailbox(Mailbox),
}

impl ReversePath {
    /// The address, or `None` for `<>`.
    pub fn mailbox(&self) -> Option<&Mailbox> {
        match self {
            ReversePath::Null => None,
            ReversePath::Mailbox(m) => Some(m),
        }
    }
}

impl fmt::Display for ReversePath {
    /// The path without brackets; empty for `<>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReversePath::Null => Ok(()),
            ReversePath::Mailbox(m) => m.fmt(f),
        }
    }
}

/// Splits the argument of `MAIL FROM:` / `RCPT TO:` into the path and the rest (parameters).
///
/// Accepts `<path> params`, ` <path>` (space after the colon), and `addr params` without
/// brackets. Returns the text inside the brackets (source route removed) and the parameters.
pub fn split_path(arg: &str) -> Result<(&str, &str), AddressError> {
    let arg = arg.trim_start_matches(' ');
    if arg.is_empty() {
        return Err(AddressError::Empty);
    }
    let (inner, rest) = if let Some(after) = arg.strip_prefix('<') {
        let end = closing_bracket(after).ok_or(AddressError::Syntax)?;
        if end + 2 > MAX_PATH {
            return Err(AddressError::PathTooLong);
        }
        (&after[..end], &after[end + 1..])
    } else {
        let end = arg.find(' ').unwrap_or(arg.len());
        if end > MAX_PATH {
            return Err(AddressError::PathTooLong);
        }
        (&arg[..end], &arg[end..])
    };
    if !rest.is_empty() && !rest.starts_with(' ') {
        return Err(AddressError::Syntax);
    }
    Ok((strip_source_route(inner)?, rest.trim_matches(' ')))
}

/// Parses the path of MAIL FROM (the text `split_path` returned).
pub fn parse_reverse_path(inner: &str) -> Result<ReversePath, AddressError> {
    if inner.is_empty() {
        return Ok(ReversePath::Null);
    }
    Mailbox::parse(inner).map(ReversePath::Mailbox)
}

/// Parses the path of RCPT TO, accepting the bare `postmaster` (any case).
pub fn parse_forward_path(inner: &str) -> Result<Mailbox, AddressError> {
    if inner.eq_ignore_ascii_case("postmaster") {
        return Ok(Mailbox {
            local: inner.to_string(),
            domain: String::new(),
        });
    }
    Mailbox::parse(inner)
}

/// Index of the `>` that closes a path, skipping quoted strings.
fn closing_bracket(s: &str) -> Option<usize> {
    let mut in_quote = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quote => escaped = true,
            '"' => in_quote = !in_quote,
            '>' if !in_quote => return Some(i),
            _ => {}
        }
    }
    None
}

/// Removes `@a,@b:` in front of a mailbox (RFC 5321 §4.1.1.3: accept, then ignore).
fn strip_source_route(inner: &str) -> Result<&str, AddressError> {
    if !inner.starts_with('@') {
        return Ok(inner);
    }
    let colon = inner.find(':').ok_or(AddressError::Syntax)?;
    for hop in inner[..colon].split(',') {
        let domain = hop.strip_prefix('@').ok_or(AddressError::Syntax)?;
        if !is_domain_or_literal(domain) {
            return Err(AddressError::Syntax);
        }
    }
    let rest = &inner[colon + 1..];
    if rest.is_empty() {
        return Err(AddressError::Syntax);
    }
    Ok(rest)
}

/// Reads a local part (dot-string or quoted string) from the front of `s`; returns it unquoted
/// and the remainder (which must start with `@`).
fn parse_local_part(s: &str) -> Result<(String, &str), AddressError> {
    if let Some(q) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = q.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    let (_, e) = chars.next().ok_or(AddressError::Syntax)?;
                    if !(' '..='~').contains(&e) {
                        return Err(AddressError::Syntax);
                    }
                    out.push(e);
                }
                '"' => return Ok((out, &q[i + 1..])),
                c if c.is_ascii_control() => return Err(AddressError::Syntax),
                c => out.push(c),
            }
        }
        return Err(AddressError::Syntax);
    }
    let end = s.find('@').ok_or(AddressError::Syntax)?;
    let local = &s[..end];
    if !is_dot_string(local) {
        return Err(AddressError::Syntax);
    }
    Ok((local.to_string(), &s[end..]))
}

/// `atext` of RFC 5322, extended with every non-ASCII character (RFC 6531).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

/// `Dot-string`: atoms of atext separated by single dots, no leading or trailing dot.
pub fn is_dot_string(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
}

/// A domain name (letters, digits, hyphens, non-ASCII labels; no empty label, so no trailing
/// dot) or an address literal `[IPv4]` / `[IPv6:…]`.
pub fn is_domain_or_literal(d: &str) -> bool {
    if d.starts_with('[') {
        return address_literal(d).is_some();
    }
    is_domain(d)
}

/// The address an address literal names (RFC 5321 §4.1.3): `[192.0.2.1]`, `[IPv6:2001:db8::1]`
/// (the tag in any case); `None` for anything else.
pub fn address_literal(d: &str) -> Option<std::net::IpAddr> {
    let lit = d.strip_prefix('[')?.strip_suffix(']')?;
    match lit.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => lit[5..]
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(std::net::IpAddr::V6),
        _ => lit
            .parse::<std::net::Ipv4Addr>()
            .ok()
            .map(std::net::IpAddr::V4),
    }
}

/// A domain name: labels of letters, digits and inner hyphens (non-ASCII allowed for SMTPUTF8).
pub fn is_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= MAX_DOMAIN
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || !c.is_ascii())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(local: &str, domain: &str) -> Mailbox {
        Mailbox {
            local: local.into(),
            domain: domain.into(),
        }
    }

    #[test]
    fn address_literals() {
        let table = [
            ("[192.0.2.1]", Some("192.0.2.1")),
            ("[IPv6:2001:db8::1]", Some("2001:db8::1")),
            ("[ipv6:::1]", Some("::1")),
            ("[2001:db8::1]", None),
            ("[IPv6:192.0.2.1]", None),
            ("[192.0.2.256]", None),
            ("192.0.2.1", None),
            ("[192.0.2.1", None),
            ("example.com", None),
        ];
        for (d, want) in table {
            let got = address_literal(d).map(|ip| ip.to_string());
            assert_eq!(got.as_deref(), want, "{d}");
            assert_eq!(
                is_domain_or_literal(d),
                want.is_some() || is_domain(d),
                "{d}"
            );
        }
    }

    #[test]
    fn split_path_table() {
        let ok: &[(&str, &str, &str)] = &[
            ("<a@b.c>", "a@b.c", ""),
            (" <a@b.c>", "a@b.c", ""),
            ("<a@b.c> SIZE=10", "a@b.c", "SIZE=10"),
            ("Admin@test.com", "Admin@test.com", ""),
            (
                "Utilisateur@Site.Domaine.Com notify=success,failure",
                "Utilisateur@Site.Domaine.Com",
                "notify=success,failure",
            ),
            ("<>", "", ""),
            ("<> BODY=8BITMIME", "", "BODY=8BITMIME"),
            (
                "<@hosta.int,@jkl.org:userc@d.bar.org>",
                "userc@d.bar.org",
                "",
            ),
            ("<\"a>b\"@c.d>", "\"a>b\"@c.d", ""),
        ];
        for (input, path, rest) in ok {
            assert_eq!(split_path(input), Ok((*path, *rest)), "{input}");
        }
        let bad: &[(&str, AddressError)] = &[
            ("", AddressError::Empty),
            ("<a@b.c", AddressError::Syntax),
            ("<a@b.c>x", AddressError::Syntax),
            ("<@a:>", AddressError::Syntax),
            ("<@a,b:c@d>", AddressError::Syntax),
        ];
        for (input, err) in bad {
            assert_eq!(split_path(input), Err(*err), "{input}");
        }
        let long = format!("<{}@{}>", "a".repeat(60), "b".repeat(250));
        assert_eq!(split_path(&long), Err(AddressError::PathTooLong));
    }

    #[test]
    fn mailbox_table() {
        let ok: &[(&str, Mailbox)] = &[
            ("user@example.com", mb("user", "example.com")),
            ("first.last@Example.COM", mb("first.last", "Example.COM")),
            ("\"john doe\"@example.com", mb("john doe", "example.com")),
            ("\"a\\\"b\"@x.y", mb("a\"b", "x.y")),
            ("user%other@local.test", mb("user%other", "local.test")),
            ("user@[192.0.2.1]", mb("user", "[192.0.2.1]")),
            ("user@[IPv6:2001:db8::1]", mb("user", "[IPv6:2001:db8::1]")),
            ("jöran@exämple.de", mb("jöran", "exämple.de")),
            ("a@localhost", mb("a", "localhost")),
        ];
        for (input, want) in ok {
            assert_eq!(Mailbox::parse(input).as_ref(), Ok(want), "{input}");
        }
        let bad: &[(&str, AddressError)] = &[
            ("", AddressError::Empty),
            ("user", AddressError::Syntax),
            ("user@", AddressError::Syntax),
            ("@example.com", AddressError::Syntax),
            ("user@other@local", AddressError::Syntax),
            ("user@example.com.", AddressError::Syntax),
            (".user@example.com", AddressError::Syntax),
            ("us..er@example.com", AddressError::Syntax),
            ("us er@example.com", AddressError::Syntax),
            ("user@exa mple.com", AddressError::Syntax),
            ("user@-bad.com", AddressError::Syntax),
            ("user@[300.1.1.1]", AddressError::Syntax),
            ("user@[1.2.3.4", AddressError::Syntax),
            ("\"unterminated@x.y", AddressError::Syntax),
            ("user@a..b", AddressError::Syntax),
        ];
        for (input, err) in bad {
            assert_eq!(Mailbox::parse(input), Err(*err), "{input}");
        }
        let long_local = format!("{}@x.y", "a".repeat(65));
        assert_eq!(
            Mailbox::parse(&long_local),
            Err(AddressError::LocalPartTooLong)
        );
        let ok_local = format!("{}@x.y", "a".repeat(64));
        assert!(Mailbox::parse(&ok_local).is_ok());
        let long_domain = format!("a@{}", vec!["b".repeat(63); 5].join("."));
        assert_eq!(
            Mailbox::parse(&long_domain),
            Err(AddressError::DomainTooLong)
        );
    }

    #[test]
    fn display_quotes_when_needed() {
        assert_eq!(mb("john doe", "x.y").to_string(), "\"john doe\"@x.y");
        assert_eq!(mb("a\"b", "x.y").to_string(), "\"a\\\"b\"@x.y");
        assert_eq!(mb("plain", "x.y").to_string(), "plain@x.y");
        for s in ["\"john doe\"@x.y", "plain@x.y", "\"a\\\"b\"@x.y"] {
            assert_eq!(Mailbox::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn postmaster_and_null() {
        assert!(
            parse_forward_path("Postmaster")
                .unwrap()
                .is_bare_postmaster()
        );
        assert_eq!(parse_reverse_path(""), Ok(ReversePath::Null));
        assert!(parse_forward_path("").is_err());
    }
}
