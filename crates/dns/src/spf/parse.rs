//! The SPF record grammar (RFC 7208 sections 4.6.1, 5, 6, 7.1 and 12): a record checked term
//! by term and split into its directives and modifiers. Nothing here queries the DNS.
//!
//! The whole record is checked before anything is evaluated (section 4.6: a syntax error
//! anywhere is a `permerror`), so a broken term after the one that would match still counts.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::eval::SpfResult;

/// A valid SPF record, ready to evaluate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Policy {
    /// The mechanisms, in record order.
    pub directives: Vec<Directive>,
    /// `redirect=`, as written and parsed. Section 6.1: used only when no mechanism matched
    /// and the record has no `all`.
    pub redirect: Option<(String, MacroString)>,
    /// `exp=`, as written and parsed: the name whose TXT record explains a `fail`.
    pub exp: Option<(String, MacroString)>,
}

/// A mechanism with its qualifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Directive {
    /// The term as written, for the trace.
    pub text: String,
    /// The result when it matches: `Pass`, `Fail`, `SoftFail` or `Neutral`.
    pub qualifier: SpfResult,
    /// What it tests.
    pub mechanism: Mechanism,
}

/// The eight mechanisms (RFC 7208 section 5). `None` for a domain means the current one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mechanism {
    All,
    Include(MacroString),
    A(Option<MacroString>, DualCidr),
    Mx(Option<MacroString>, DualCidr),
    Ptr(Option<MacroString>),
    Ip4(Ipv4Addr, u8),
    Ip6(Ipv6Addr, u8),
    Exists(MacroString),
}

impl Mechanism {
    /// Whether it counts against the limit of 10 DNS-querying terms (section 4.6.4).
    pub fn queries_dns(&self) -> bool {
        !matches!(
            self,
            Mechanism::All | Mechanism::Ip4(..) | Mechanism::Ip6(..)
        )
    }
}

/// The prefix lengths of `a` and `mx`: `/24`, `//64`, `/24//64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DualCidr {
    pub v4: u8,
    pub v6: u8,
}

/// A macro-string (section 7.1): literal text and macros, expanded at evaluation time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MacroString(pub Vec<Token>);

impl MacroString {
    /// Whether expanding it needs the validated name of the address (`%{p}`, a DNS lookup).
    pub fn uses_p(&self) -> bool {
        self.0
            .iter()
            .any(|t| matches!(t, Token::Macro(m) if m.letter == 'p'))
    }
}

/// One piece of a macro-string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    /// Text taken as it is.
    Literal(String),
    /// `%%`, `%_` or `%-`: `%`, a space, `%20`.
    Escape(&'static str),
    /// `%{...}`.
    Macro(Macro),
}

/// `%{` letter [digits] [`r`] [delimiters] `}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Macro {
    /// The macro letter, lower case.
    pub letter: char,
    /// Written in upper case: the value is URL-escaped.
    pub escape: bool,
    /// Keep only this many right-hand parts (never 0).
    pub keep: Option<usize>,
    /// Reverse the parts.
    pub reverse: bool,
    /// Split on these characters (`.` when none are given).
    pub delimiters: String,
}

/// Where a macro-string appears: the letters `c`, `r` and `t` are allowed only in the
/// explanation text (section 7.1), which may also hold spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Context {
    Domain,
    Explanation,
}

/// Parses an SPF record (which starts with `v=spf1`, see `is_spf`). The error names the
/// first term that is wrong.
pub(crate) fn policy(record: &str) -> Result<Policy, String> {
    let rest = record
        .get(6..)
        .filter(|_| record.is_char_boundary(6) && record[..6].eq_ignore_ascii_case("v=spf1"))
        .ok_or_else(|| "the record does not start with v=spf1".to_string())?;
    if !rest.is_empty() && !rest.starts_with(' ') {
        return Err("v=spf1 must be followed by a space".to_string());
    }
    let mut policy = Policy {
        directives: Vec::new(),
        redirect: None,
        exp: None,
    };
    // Section 4.6.1: terms are separated by spaces (SP), and nothing else.
    for text in rest.split(' ').filter(|t| !t.is_empty()) {
        if let Some((name, value)) = text.split_once('=')
            && is_modifier_name(name)
        {
            modifier(&mut policy, text, name, value)?;
        } else {
            policy.directives.push(directive(text)?);
        }
    }
    Ok(policy)
}

/// `name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." )`.
pub(crate) fn is_modifier_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn modifier(policy: &mut Policy, text: &str, name: &str, value: &str) -> Result<(), String> {
    let slot = if name.eq_ignore_ascii_case("redirect") {
        &mut policy.redirect
    } else if name.eq_ignore_ascii_case("exp") {
        &mut policy.exp
    } else {
        // Section 6.3: unknown modifiers are ignored, but must be well formed.
        return macro_string(value, Context::Domain)
            .map(|_| ())
            .map_err(|why| format!("invalid term {text:?}: {why}"));
    };
    if slot.is_some() {
        let name = name.to_ascii_lowercase();
        return Err(format!("{name}= appears more than once"));
    }
    let spec = domain_spec(value).map_err(|why| format!("invalid term {text:?}: {why}"))?;
    *slot = Some((text.to_string(), spec));
    Ok(())
}

fn directive(text: &str) -> Result<Directive, String> {
    let (qualifier, rest) = match text.as_bytes().first() {
        Some(b'+') => (SpfResult::Pass, &text[1..]),
        Some(b'-') => (SpfResult::Fail, &text[1..]),
        Some(b'~') => (SpfResult::SoftFail, &text[1..]),
        Some(b'?') => (SpfResult::Neutral, &text[1..]),
        _ => (SpfResult::Pass, text),
    };
    let split = rest.find([':', '/']).unwrap_or(rest.len());
    let (name, after) = rest.split_at(split);
    let invalid = |why: &str| format!("invalid term {text:?}: {why}");
    let target = || match after.strip_prefix(':') {
        Some(spec) => domain_spec(spec).map_err(|why| invalid(&why)),
        None => Err(invalid("a domain is required")),
    };
    let mechanism = match name.to_ascii_lowercase().as_str() {
        "all" if after.is_empty() => Mechanism::All,
        "all" => return Err(invalid("all takes no argument")),
        "include" => Mechanism::Include(target()?),
        "exists" => Mechanism::Exists(target()?),
        "ptr" if after.is_empty() => Mechanism::Ptr(None),
        "ptr" => Mechanism::Ptr(Some(target()?)),
        "a" => {
            let (spec, cidr) = host_and_cidr(after).map_err(|why| invalid(&why))?;
            Mechanism::A(spec, cidr)
        }
        "mx" => {
            let (spec, cidr) = host_and_cidr(after).map_err(|why| invalid(&why))?;
            Mechanism::Mx(spec, cidr)
        }
        "ip4" => {
            let network = after.strip_prefix(':').unwrap_or("");
            let (addr, len) = split_prefix(network);
            match (addr.parse::<Ipv4Addr>(), prefix(len, 32)) {
                (Ok(ip), Some(len)) if is_ip4_network(addr) => Mechanism::Ip4(ip, len),
                _ => return Err(format!("invalid address in {text:?}")),
            }
        }
        "ip6" => {
            let network = after.strip_prefix(':').unwrap_or("");
            let (addr, len) = split_prefix(network);
            match (addr.parse::<Ipv6Addr>(), prefix(len, 128)) {
                (Ok(ip), Some(len)) => Mechanism::Ip6(ip, len),
                _ => return Err(format!("invalid address in {text:?}")),
            }
        }
        _ => return Err(format!("unknown mechanism {text:?}")),
    };
    Ok(Directive {
        text: text.to_string(),
        qualifier,
        mechanism,
    })
}

/// `addr[/len]` as (addr, len).
fn split_prefix(network: &str) -> (&str, Option<&str>) {
    match network.split_once('/') {
        Some((addr, len)) => (addr, Some(len)),
        None => (network, None),
    }
}

/// `ip4-network = qnum "." qnum "." qnum "." qnum`, no leading zeros (section 5.6).
fn is_ip4_network(addr: &str) -> bool {
    let parts: Vec<&str> = addr.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && p.bytes().all(|b| b.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
                && p.parse::<u16>().is_ok_and(|n| n <= 255)
        })
}

/// A prefix length after its `/`: none given is the full length; otherwise digits without a
/// leading zero, at most `max`.
fn prefix(len: Option<&str>, max: u8) -> Option<u8> {
    let Some(len) = len else {
        return Some(max);
    };
    if len.is_empty()
        || !len.bytes().all(|b| b.is_ascii_digit())
        || (len.len() > 1 && len.starts_with('0'))
    {
        return None;
    }
    len.parse::<u8>().ok().filter(|n| *n <= max)
}

/// What follows `a` or `mx`: `[":" domain-spec] [dual-cidr-length]`. The lengths are read from
/// the end, so a domain may hold `/` and `:` (`a:foo:bar/baz.example.com`).
fn host_and_cidr(after: &str) -> Result<(Option<MacroString>, DualCidr), String> {
    let (spec, cidr) = match after.strip_prefix(':') {
        Some(arg) => {
            let (spec, cidr) = split_dual_cidr(arg);
            (Some(spec), cidr)
        }
        None => {
            let (rest, cidr) = split_dual_cidr(after);
            if !rest.is_empty() {
                return Err("invalid prefix length".to_string());
            }
            (None, cidr)
        }
    };
    let (v4, v6) = cidr;
    let v4 = prefix(v4, 32).ok_or("invalid IPv4 prefix length")?;
    let v6 = prefix(v6, 128).ok_or("invalid IPv6 prefix length")?;
    let spec = spec.map(domain_spec).transpose()?;
    Ok((spec, DualCidr { v4, v6 }))
}

/// Splits `[/v4][//v6]` off the end of `s`: (the rest, v4 digits, v6 digits).
fn split_dual_cidr(s: &str) -> (&str, (Option<&str>, Option<&str>)) {
    fn trailing_digits(s: &str) -> Option<(&str, &str)> {
        let start = s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        (start < s.len()).then(|| s.split_at(start))
    }
    let mut rest = s;
    let mut v6 = None;
    if let Some((head, digits)) = trailing_digits(rest)
        && let Some(head) = head.strip_suffix("//")
    {
        v6 = Some(digits);
        rest = head;
    }
    let mut v4 = None;
    if let Some((head, digits)) = trailing_digits(rest)
        && let Some(head) = head.strip_suffix('/')
        && !head.ends_with('/')
    {
        v4 = Some(digits);
        rest = head;
    }
    (rest, (v4, v6))
}

/// `domain-spec = macro-string domain-end`, `domain-end = ( "." toplabel [ "." ] ) /
/// macro-expand` (section 7.1): a macro-string that ends in a macro or in a real top label.
pub(crate) fn domain_spec(text: &str) -> Result<MacroString, String> {
    if text.is_empty() {
        return Err("the domain is empty".to_string());
    }
    let parsed = macro_string(text, Context::Domain)?;
    let tail = match parsed.0.last() {
        Some(Token::Literal(tail)) => tail.as_str(),
        _ => return Ok(parsed),
    };
    let tail = tail.strip_suffix('.').unwrap_or(tail);
    match tail.rsplit_once('.') {
        Some((_, top)) if is_toplabel(top) => Ok(parsed),
        _ => Err(format!("{text:?} does not end in a valid top label")),
    }
}

/// `toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum )`:
/// letters, digits and inner hyphens, not all digits.
pub(crate) fn is_toplabel(label: &str) -> bool {
    !label.is_empty()
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
        && !label.bytes().all(|b| b.is_ascii_digit())
}

/// Parses a macro-string (section 7.1); in the explanation context, spaces and the letters
/// `c`, `r`, `t` are allowed too.
pub(crate) fn macro_string(text: &str, context: Context) -> Result<MacroString, String> {
    let mut tokens = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            let visible = c.is_ascii_graphic() || (c == ' ' && context == Context::Explanation);
            if !visible {
                return Err(format!("{c:?} is not allowed"));
            }
            literal.push(c);
            continue;
        }
        let escape = match chars.next() {
            Some('%') => "%",
            Some('_') => " ",
            Some('-') => "%20",
            Some('{') => "",
            Some(other) => return Err(format!("%{other} is not a macro")),
            None => return Err("a lone % ends the text".to_string()),
        };
        if !literal.is_empty() {
            tokens.push(Token::Literal(std::mem::take(&mut literal)));
        }
        if !escape.is_empty() {
            tokens.push(Token::Escape(escape));
            continue;
        }
        let mut body = String::new();
        loop {
            match chars.next() {
                Some('}') => break,
                Some(c) => body.push(c),
                None => return Err("a macro is not closed with }".to_string()),
            }
        }
        tokens.push(Token::Macro(macro_expand(&body, context)?));
    }
    if !literal.is_empty() {
        tokens.push(Token::Literal(literal));
    }
    Ok(MacroString(tokens))
}

/// The inside of `%{...}`: `macro-letter transformers *delimiter`.
fn macro_expand(body: &str, context: Context) -> Result<Macro, String> {
    let mut chars = body.chars();
    let letter = chars.next().ok_or("an empty macro %{}")?;
    let lower = letter.to_ascii_lowercase();
    let allowed = match context {
        Context::Domain => "slodipvh",
        Context::Explanation => "slodipvhcrt",
    };
    if !allowed.contains(lower) {
        return Err(format!("%{{{letter}}} is not a macro here"));
    }
    let rest = chars.as_str();
    let digits_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (digits, rest) = rest.split_at(digits_end);
    let keep = match digits {
        "" => None,
        digits => match digits.parse::<usize>() {
            Ok(0) => return Err(format!("%{{{body}}} keeps 0 parts")),
            Ok(n) => Some(n),
            // More parts than any name has.
            Err(_) => Some(usize::MAX),
        },
    };
    let (reverse, delimiters) = match rest.strip_prefix(['r', 'R']) {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    if let Some(bad) = delimiters.chars().find(|c| !".-+,/_=".contains(*c)) {
        return Err(format!("{bad:?} is not a delimiter in %{{{body}}}"));
    }
    Ok(Macro {
        letter: lower,
        escape: letter.is_ascii_uppercase(),
        keep,
        reverse,
        delimiters: if delimiters.is_empty() {
            ".".to_string()
        } else {
            delimiters.to_string()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(record: &str) -> Policy {
        policy(record).unwrap_or_else(|e| panic!("{record}: {e}"))
    }

    #[test]
    fn valid_records() {
        let p = ok(
            "v=spf1 ip4:192.0.2.0/24 a/24//64 ~mx:mail.example.test -include:_spf.example.test ?all redirect=other.test exp=why.%{d} foo=bar",
        );
        assert_eq!(p.directives.len(), 5);
        assert_eq!(
            p.directives[1].mechanism,
            Mechanism::A(None, DualCidr { v4: 24, v6: 64 })
        );
        assert!(p.redirect.is_some() && p.exp.is_some());
        for record in [
            "v=spf1",
            "V=SPF1 ALL",
            "v=spf1  a  -all ",
            "v=spf1 a:foo:bar/baz.example.com",
            "v=spf1 mx:foo.example.com/24",
            "v=spf1 a:foo.example.xn--zckzah -all",
            "v=spf1 ip6:::1.1.1.1/0 ip6:2001:db8::/32",
            "v=spf1 exists:%{i}.%{l2r-}.user.%{d2}",
            "v=spf1 a:macro%%percent%_%_space%-url-space.example.com",
            "v=spf1 moo.cow-far_out=man:dog/cat default=+",
            "v=spf1 a:museum.example. ptr:example.com",
        ] {
            ok(record);
        }
    }

    #[test]
    fn invalid_records() {
        for record in [
            "v=spf1 ip4:1.2.3.4 -all moo",
            "v=spf1 moo.cow/far_out=man:dog/cat",
            "v=spf1 1up=foo",
            "v=spf1 =all",
            "v=spf1 redirect:t2.example.com",
            "v=spf1 a:foo-bar",
            "v=spf1 a:museum",
            "v=spf1 a:museum.",
            "v=spf1 a:abc.123",
            "v=spf1 a:111.222.33.44",
            "v=spf1 a:example.-com",
            "v=spf1 a:example.com:8080",
            "v=spf1 a:foo.example.com\0",
            "v=spf1 a:",
            "v=spf1 a/33",
            "v=spf1 a//129",
            "v=spf1 a/24/64",
            "v=spf1 -all.",
            "v=spf1 -all:foobar",
            "v=spf1 -all/8",
            "v=spf1 ptr/0",
            "v=spf1 ptr:",
            "v=spf1 include",
            "v=spf1 include:",
            "v=spf1 include:ip5.example.com/24",
            "v=spf1 exists",
            "v=spf1 exists:mail.example.com/24",
            "v=spf1 ip4",
            "v=spf1 ip4:1.2.3.4/33",
            "v=spf1 ip4:1.2.3.4/032",
            "v=spf1 ip4:1.2.3.4//32",
            "v=spf1 ip4:1.2.3.4:8080",
            "v=spf1 ip4:1.2.3",
            "v=spf1 ip4:1.2.3.4/",
            "v=spf1 ip4:01.2.3.4",
            "v=spf1 ip6",
            "v=spf1 ip6:::1.1.1.1/129",
            "v=spf1 ip6:::1.1.1.1//33",
            "v=spf1 ip6::CAFE::BABE",
            "v=spf1 exp= -all",
            "v=spf1 exp=-all",
            "v=spf1 redirect=-all",
            "v=spf1 ?all redirect=",
            "v=spf1 -all foo=%abc",
            "v=spf1 exp=a.test exp=b.test",
            "v=spf1 redirect=a.test redirect=b.test",
            "v=spf1 -all exp=%{r}.example.com",
            "v=spf1 a:%{a}.example.com",
            "v=spf1 exists:%(ir).sbl.example.com",
            "v=spf1 exists:foo%.sbl.example.com",
            "v=spf1 exists:%{d0}.example.com",
            "v=spf1 a:ctrl.example.com\rptr -all",
            "v=spf1 a:\u{feff}garbage.example.net -all",
            "v=spf1 a:example.net \u{96}all",
            "v=spf1\ta",
            "v=spf10",
        ] {
            assert!(policy(record).is_err(), "{record:?} should be invalid");
        }
    }

    #[test]
    fn errors_name_the_term() {
        assert_eq!(
            policy("v=spf1 ip4:192.0.2.1 ip4:300.1.1.1 -all"),
            Err("invalid address in \"ip4:300.1.1.1\"".to_string())
        );
        assert_eq!(
            policy("v=spf1 frobnicate -all"),
            Err("unknown mechanism \"frobnicate\"".to_string())
        );
        assert_eq!(
            policy("v=spf1 redirect=a.test -all REDIRECT=b.test"),
            Err("redirect= appears more than once".to_string())
        );
    }

    #[test]
    fn macros() {
        let m = macro_string("%{L2r+-}.%%%_%-x", Context::Domain).unwrap();
        assert_eq!(
            m.0,
            vec![
                Token::Macro(Macro {
                    letter: 'l',
                    escape: true,
                    keep: Some(2),
                    reverse: true,
                    delimiters: "+-".into(),
                }),
                Token::Literal(".".into()),
                Token::Escape("%"),
                Token::Escape(" "),
                Token::Escape("%20"),
                Token::Literal("x".into()),
            ]
        );
        assert!(macro_string("%{c} is %{t}", Context::Explanation).is_ok());
        assert!(macro_string("%{c}", Context::Domain).is_err());
        assert!(macro_string("a b", Context::Domain).is_err());
        assert!(macro_string("The %{x}-files.", Context::Explanation).is_err());
        assert!(macro_string("%{p}", Context::Domain).unwrap().uses_p());
    }
}
