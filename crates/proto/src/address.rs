//! Mailbox addresses and the paths of MAIL and RCPT (RFC 5321 §4.1.2, RFC 6531 for UTF-8).
//!
//! Parsing is strict about what an address is (no trailing dots, no `@` in an unquoted local part,
//! the domain and path length limits) and lenient about how it is written, as Postfix is with
//! `strict_rfc821_envelopes = no`: angle brackets may be left out (`MAIL FROM:Admin@test.com`,
//! as seed 002 types it), a source route (`<@a,@b:user@host>`) is accepted and ignored, as
//! RFC 5321 §4.1.1.3 asks, and the path is read as an RFC 822 address (comments, a phrase,
//! mixed local parts: [`rfc822`]), kept in canonical form. A local part may be longer than the
//! 64 octets of RFC 5321 §4.5.3.1.1 ("accept longer where possible"): only the whole path is
//! limited.

use std::fmt;

mod rfc822;

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
        Mailbox::checked(local, domain.to_string())
    }

    /// The mailbox if the domain is one and the path fits in [`MAX_PATH`].
    fn checked(local: String, domain: String) -> Result<Mailbox, AddressError> {
        if domain.len() > MAX_DOMAIN {
            return Err(AddressError::DomainTooLong);
        }
        if !is_domain_or_literal(&domain) {
            return Err(AddressError::Syntax);
        }
        let m = Mailbox { local, domain };
        if m.to_string().len() + 2 > MAX_PATH {
            return Err(AddressError::PathTooLong);
        }
        Ok(m)
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
/// brackets. Returns the text inside the outer brackets (or the bare address, which ends at the
/// first space outside quotes, as Postfix's tokenizer reads it) and the parameters.
pub fn split_path(arg: &str) -> Result<(&str, &str), AddressError> {
    let arg = arg.trim_start_matches(' ');
    if arg.is_empty() {
        return Err(AddressError::Empty);
    }
    let (inner, rest) = if let Some(after) = arg.strip_prefix('<') {
        let end = closing_bracket(after).ok_or(AddressError::Syntax)?;
        (&after[..end], &after[end + 1..])
    } else {
        let end = word_end(arg);
        (&arg[..end], &arg[end..])
    };
    if !rest.is_empty() && !rest.starts_with(' ') {
        return Err(AddressError::Syntax);
    }
    Ok((inner, rest.trim_matches(' ')))
}

/// Parses the path of MAIL FROM (the text `split_path` returned): `<>`, or an RFC 822 address
/// in canonical form (a path of nothing but comments is `<>` too, as for Postfix).
pub fn parse_reverse_path(inner: &str) -> Result<ReversePath, AddressError> {
    match rfc822::parse(inner)? {
        None => Ok(ReversePath::Null),
        Some(p) => match p.domain {
            Some(domain) => Mailbox::checked(p.local, domain).map(ReversePath::Mailbox),
            None => Err(AddressError::Syntax),
        },
    }
}

/// Parses the path of RCPT TO, accepting the bare `postmaster` (any case, comments around it
/// allowed).
pub fn parse_forward_path(inner: &str) -> Result<Mailbox, AddressError> {
    let p = rfc822::parse(inner)?.ok_or(AddressError::Empty)?;
    match p.domain {
        Some(domain) => Mailbox::checked(p.local, domain),
        None if p.local.eq_ignore_ascii_case("postmaster") => Ok(Mailbox {
            local: p.local,
            domain: String::new(),
        }),
        None => Err(AddressError::Syntax),
    }
}

/// Index of the `>` that closes a path: quoted strings and backslash pairs are skipped and inner
/// `<…>` pairs counted, as Postfix's `smtp_quoted` does (`<Anne <anne@example.com>>`).
fn closing_bracket(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_quote = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' => in_quote = !in_quote,
            '<' if !in_quote => depth += 1,
            '>' if !in_quote && depth == 0 => return Some(i),
            '>' if !in_quote => depth -= 1,
            _ => {}
        }
    }
    None
}

/// Where an address written without brackets ends: the first space outside quotes.
fn word_end(s: &str) -> usize {
    let mut in_quote = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' => in_quote = !in_quote,
            ' ' if !in_quote => return i,
            _ => {}
        }
    }
    s.len()
}

/// Reads a local part (dot-string or quoted string) from the front of `s`; returns it unquoted
/// and the remainder (which must start with `@`).
fn parse_local_part(s: &str) -> Result<(String, &str), AddressError> {
    if s.starts_with('"') {
        return rfc822::quoted(s);
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
                "@hosta.int,@jkl.org:userc@d.bar.org",
                "",
            ),
            ("<\"a>b\"@c.d>", "\"a>b\"@c.d", ""),
            ("<Anne <a@b.c>> SIZE=1", "Anne <a@b.c>", "SIZE=1"),
            ("\" \"@b.c BODY=7BIT", "\" \"@b.c", "BODY=7BIT"),
            ("<a@b.c> (Anne)", "a@b.c", "(Anne)"),
        ];
        for (input, path, rest) in ok {
            assert_eq!(split_path(input), Ok((*path, *rest)), "{input}");
        }
        let bad: &[(&str, AddressError)] = &[
            ("", AddressError::Empty),
            ("<a@b.c", AddressError::Syntax),
            ("<a@b.c>x", AddressError::Syntax),
            ("<<a@b.c>", AddressError::Syntax),
            // A `>` in a comment closes the path, as for Postfix.
            ("<a@b.c (A>)>", AddressError::Syntax),
        ];
        for (input, err) in bad {
            assert_eq!(split_path(input), Err(*err), "{input}");
        }
    }

    #[test]
    fn envelope_paths_are_kept_canonical() {
        let ok: &[(&str, &str)] = &[
            ("<@a:>", ""),
            ("Anne <anne@example.com>", "anne@example.com"),
            (
                "much.\"more\\ unusual\"@example.com",
                "\"much.more unusual\"@example.com",
            ),
            ("@hosta.int,@jkl.org:userc@d.bar.org", "userc@d.bar.org"),
        ];
        for (inner, want) in ok {
            match parse_reverse_path(inner) {
                Ok(p) => assert_eq!(p.to_string(), *want, "{inner}"),
                Err(e) => assert!(want.is_empty(), "{inner}: {e}"),
            }
        }
        assert_eq!(parse_reverse_path("()"), Ok(ReversePath::Null));
        assert_eq!(parse_reverse_path("anne"), Err(AddressError::Syntax));
        assert_eq!(parse_forward_path("()"), Err(AddressError::Empty));
        assert!(
            parse_forward_path("Postmaster (pm)")
                .unwrap()
                .is_bare_postmaster()
        );
        assert_eq!(parse_forward_path("anne"), Err(AddressError::Syntax));
        // Local parts over 64 octets are taken (RFC 5321 §4.5.3.1.1 allows it); the path stays
        // limited to 256 octets, brackets included.
        let long_local = format!("{}@x.y", "a".repeat(250));
        assert_eq!(parse_forward_path(&long_local).unwrap().local.len(), 250);
        let too_long = format!("{}@x.y", "a".repeat(251));
        assert_eq!(
            parse_forward_path(&too_long),
            Err(AddressError::PathTooLong)
        );
        let long = format!("{}@{}", "a".repeat(60), vec!["b".repeat(60); 4].join("."));
        assert_eq!(parse_reverse_path(&long), Err(AddressError::PathTooLong));
        // A long comment or phrase does not count: only the address kept does.
        let commented = format!("\"{}\" <a@b.c> ({})", "p".repeat(300), "c".repeat(300));
        assert_eq!(parse_forward_path(&commented).unwrap().to_string(), "a@b.c");
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
        assert_eq!(Mailbox::parse(&long_local).unwrap().local.len(), 65);
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
