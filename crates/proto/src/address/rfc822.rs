//! Envelope paths read the way Postfix reads them with `strict_rfc821_envelopes = no` (its
//! default): the text inside the angle brackets is an RFC 822 address, so comments, a phrase in
//! front of an inner `<route-addr>`, spaces around `@` and `.`, and local parts mixing atoms
//! and quoted strings are taken, and the address is kept in its canonical form, as Postfix's
//! `Return-Path` shows it:
//!
//! | sent | kept |
//! |---|---|
//! | `<anne(comment)@example.com>`, `<anne@example.com (Anne)>` | `anne@example.com` |
//! | `<Anne <anne@example.com>>`, `<"Anne" <anne@example.com>>` | `anne@example.com` |
//! | `<anne @ example.com>` | `anne@example.com` |
//! | `<much."more\ unusual"@example.com>` | `"much.more unusual"@example.com` |
//!
//! What Postfix also takes and relais still refuses, on purpose (the relay-trick and sanity
//! rules stay as they were): more than one `@` outside quotes (`a@b@example.com`), a backslash
//! outside quotes (`a\@b@example.com`), empty atoms (`a..b@`, `.a@`, `a.@`), a trailing dot in
//! the domain, a phrase that is not words (`<x@y <anne@example.com>>`), an unterminated
//! comment. Like Postfix, a comment or phrase *outside* the brackets
//! (`MAIL FROM:<anne@example.com> (Anne)`, `MAIL FROM: Anne <anne@example.com>`) is not an
//! address: the extra word is an unknown parameter (`555 5.5.4 Unsupported option`).

use super::{AddressError, address_literal, is_atext, is_domain};

/// One lexical token of an RFC 822 address (comments and white space are dropped).
#[derive(Debug, PartialEq, Eq)]
enum Token<'a> {
    /// A run of `atext`.
    Atom(&'a str),
    /// A quoted string, unquoted (`"a\ b"` is `a b`).
    Quoted(String),
    /// A domain literal, brackets included (`[192.0.2.1]`).
    Literal(&'a str),
    /// One of `<>@,;:.`.
    Special(char),
}

/// An address read from an envelope path: the local part unquoted, and the domain if there was
/// an `@` (RCPT's bare `<postmaster>` has none).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Parsed {
    /// The local part in canonical form: its words unquoted, joined by dots.
    pub local: String,
    /// The domain, or `None` for a bare local part.
    pub domain: Option<String>,
}

/// Parses what `split_path` found between the brackets. `Ok(None)`: nothing but comments and
/// white space (Postfix reads `<()>` as the null path).
pub(super) fn parse(inner: &str) -> Result<Option<Parsed>, AddressError> {
    let tokens = tokenize(inner)?;
    if tokens.is_empty() {
        return Ok(None);
    }
    let addr = route_addr(&tokens)?;
    let addr = skip_source_route(addr)?;
    addr_spec(addr).map(Some)
}

/// The tokens of `s`; comments (nested, with quoted pairs) and white space are dropped.
fn tokenize(s: &str) -> Result<Vec<Token<'_>>, AddressError> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        match c {
            ' ' | '\t' => rest = &rest[1..],
            '(' => rest = skip_comment(rest)?,
            '"' => {
                let (word, after) = quoted(rest)?;
                out.push(Token::Quoted(word));
                rest = after;
            }
            '[' => {
                let end = rest.find(']').ok_or(AddressError::Syntax)?;
                out.push(Token::Literal(&rest[..=end]));
                rest = &rest[end + 1..];
            }
            '<' | '>' | '@' | ',' | ';' | ':' | '.' => {
                out.push(Token::Special(c));
                rest = &rest[1..];
            }
            c if is_atext(c) => {
                let end = rest.find(|c| !is_atext(c)).unwrap_or(rest.len());
                out.push(Token::Atom(&rest[..end]));
                rest = &rest[end..];
            }
            // `)`, `]`, `\` outside quotes, control characters.
            _ => return Err(AddressError::Syntax),
        }
    }
    Ok(out)
}

/// Skips the comment that `s` starts with; returns what follows it.
fn skip_comment(s: &str) -> Result<&str, AddressError> {
    let mut depth = 0usize;
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next().ok_or(AddressError::Syntax)?;
            }
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Ok(&s[i + 1..]);
                }
            }
            _ => {}
        }
    }
    Err(AddressError::Syntax)
}

/// Reads the quoted string `s` starts with; returns it unquoted and what follows it.
pub(super) fn quoted(s: &str) -> Result<(String, &str), AddressError> {
    let q = s.strip_prefix('"').ok_or(AddressError::Syntax)?;
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
    Err(AddressError::Syntax)
}

/// `phrase <route-addr>` or a plain `addr-spec`: the tokens of the address itself. The phrase
/// may only hold words and dots; exactly one `<…>` may appear, and nothing after it.
fn route_addr<'t, 'a>(tokens: &'t [Token<'a>]) -> Result<&'t [Token<'a>], AddressError> {
    let Some(open) = tokens.iter().position(|t| *t == Token::Special('<')) else {
        return Ok(tokens);
    };
    let phrase_ok = tokens[..open]
        .iter()
        .all(|t| matches!(t, Token::Atom(_) | Token::Quoted(_) | Token::Special('.')));
    if !phrase_ok || tokens.last() != Some(&Token::Special('>')) {
        return Err(AddressError::Syntax);
    }
    let inner = &tokens[open + 1..tokens.len() - 1];
    if inner
        .iter()
        .any(|t| matches!(t, Token::Special('<') | Token::Special('>')))
    {
        return Err(AddressError::Syntax);
    }
    if inner.is_empty() {
        return Err(AddressError::Empty);
    }
    Ok(inner)
}

/// Drops `@a,@b:` in front of the mailbox (RFC 5321 §4.1.1.3: accepted, then ignored).
fn skip_source_route<'t, 'a>(tokens: &'t [Token<'a>]) -> Result<&'t [Token<'a>], AddressError> {
    if tokens.first() != Some(&Token::Special('@')) {
        return Ok(tokens);
    }
    let colon = tokens
        .iter()
        .position(|t| *t == Token::Special(':'))
        .ok_or(AddressError::Syntax)?;
    for hop in tokens[..colon].split(|t| *t == Token::Special(',')) {
        let domain = match hop.split_first() {
            Some((Token::Special('@'), rest)) => domain(rest)?,
            _ => return Err(AddressError::Syntax),
        };
        if domain.is_empty() {
            return Err(AddressError::Syntax);
        }
    }
    let rest = &tokens[colon + 1..];
    if rest.is_empty() {
        return Err(AddressError::Syntax);
    }
    Ok(rest)
}

/// `local-part [@ domain]`: words separated by single dots, then one `@` and a domain.
fn addr_spec(tokens: &[Token<'_>]) -> Result<Parsed, AddressError> {
    let (local_tokens, domain_tokens) = match tokens.iter().position(|t| *t == Token::Special('@'))
    {
        Some(at) => (&tokens[..at], Some(&tokens[at + 1..])),
        None => (tokens, None),
    };
    let mut local = String::new();
    let mut want_word = true;
    for t in local_tokens {
        match (t, want_word) {
            (Token::Atom(a), true) => local.push_str(a),
            (Token::Quoted(q), true) => local.push_str(q),
            (Token::Special('.'), false) => local.push('.'),
            _ => return Err(AddressError::Syntax),
        }
        want_word = !want_word;
    }
    if want_word {
        // Empty, or a trailing dot.
        return Err(AddressError::Syntax);
    }
    let domain = match domain_tokens {
        Some(d) => Some(domain(d)?),
        None => None,
    };
    Ok(Parsed { local, domain })
}

/// A domain (atoms joined by dots, checked by [`is_domain`]) or an address literal.
fn domain(tokens: &[Token<'_>]) -> Result<String, AddressError> {
    if let [Token::Literal(l)] = tokens {
        return match address_literal(l) {
            Some(_) => Ok(l.to_string()),
            None => Err(AddressError::Syntax),
        };
    }
    let mut out = String::new();
    let mut want_atom = true;
    for t in tokens {
        match (t, want_atom) {
            (Token::Atom(a), true) => out.push_str(a),
            (Token::Special('.'), false) => out.push('.'),
            _ => return Err(AddressError::Syntax),
        }
        want_atom = !want_atom;
    }
    if want_atom || !is_domain(&out) {
        return Err(AddressError::Syntax);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(local: &str, domain: &str) -> Result<Option<Parsed>, AddressError> {
        Ok(Some(Parsed {
            local: local.into(),
            domain: Some(domain.into()),
        }))
    }

    /// Every form, with what Postfix 3.7 answers to it (`250` or a refusal) and what relais
    /// keeps; `Postfix: 250` next to an error marks where relais is stricter on purpose.
    #[test]
    fn rfc822_paths_table() {
        use AddressError::*;
        let table: &[(&str, Result<Option<Parsed>, AddressError>)] = &[
            // Postfix: 250, kept as anne@example.com.
            ("anne(comment)@example.com", ok("anne", "example.com")),
            ("(comment)anne@example.com", ok("anne", "example.com")),
            ("anne(c(nested)d)@example.com", ok("anne", "example.com")),
            ("anne@example(c).com", ok("anne", "example.com")),
            ("anne@example.com (Anne)", ok("anne", "example.com")),
            ("anne @ example.com", ok("anne", "example.com")),
            ("Anne <anne@example.com>", ok("anne", "example.com")),
            ("\"Anne\" <anne@example.com>", ok("anne", "example.com")),
            ("Anne Smith <anne@example.com>", ok("anne", "example.com")),
            ("Anne.Smith <anne@example.com>", ok("anne", "example.com")),
            ("<anne@example.com>", ok("anne", "example.com")),
            ("Anne <@x.org:anne@example.com>", ok("anne", "example.com")),
            ("\"anne\"@example.com", ok("anne", "example.com")),
            ("anne@[127.0.0.1] (c)", ok("anne", "[127.0.0.1]")),
            // Postfix: 250, kept with the local part's words joined and quoted when needed.
            (
                "much.\"more\\ unusual\"@example.com",
                ok("much.more unusual", "example.com"),
            ),
            ("\"an ne\".x@example.com", ok("an ne.x", "example.com")),
            ("x.\"an\\ne\"@example.com", ok("x.anne", "example.com")),
            ("\" \"@example.com", ok(" ", "example.com")),
            ("\"a\\\"b\"@example.com", ok("a\"b", "example.com")),
            // Postfix: 250 (null sender).
            ("()", Ok(None)),
            ("(c) ", Ok(None)),
            // Postfix: 501.
            ("<a@b.com> <c@d.com>", Err(Syntax)),
            ("anne;x@example.com", Err(Syntax)),
            ("anne[x]@example.com", Err(Syntax)),
            ("ann e@example.com", Err(Syntax)),
            ("anne@exa mple.com", Err(Syntax)),
            ("anne@example.com, bob@example.com", Err(Syntax)),
            // Postfix: 250; relais stricter (relay tricks and sanity, as before).
            ("a@b@example.com", Err(Syntax)),
            ("a\\@b@example.com", Err(Syntax)),
            ("a..b@example.com", Err(Syntax)),
            (".a@example.com", Err(Syntax)),
            ("a.@example.com", Err(Syntax)),
            ("anne@example.com.", Err(Syntax)),
            ("evil@other.com <anne@example.com>", Err(Syntax)),
            ("anne@example.com (unterminated", Err(Syntax)),
            ("a:b@example.com", Err(Syntax)),
            // Never addresses.
            ("anne@example.com)", Err(Syntax)),
            ("\"unterminated@example.com", Err(Syntax)),
            ("anne@[300.1.1.1]", Err(Syntax)),
            ("anne@[127.0.0.1", Err(Syntax)),
            ("Anne <>", Err(Empty)),
            ("Anne <anne@example.com", Err(Syntax)),
        ];
        for (input, want) in table {
            assert_eq!(&parse(input), want, "{input}");
        }
    }

    #[test]
    fn bare_local_parts_and_routes() {
        assert_eq!(
            parse("Postmaster (pm)"),
            Ok(Some(Parsed {
                local: "Postmaster".into(),
                domain: None
            }))
        );
        assert_eq!(parse("@a.org,@[192.0.2.1]:u@b.org"), ok("u", "b.org"));
        for bad in [
            "@a.org:",
            "@a.org u@b.org",
            "@:u@b.org",
            "@a.org,b.org:u@b.org",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
