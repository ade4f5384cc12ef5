//! The knowledge base behind `relais explain`.
//!
//! Administrators paste what they saw: a basic reply code (`550`), an enhanced
//! status code (`5.1.1`), a whole reply line (`550 5.1.1 <bob@example.org>: User
//! unknown`, or a continuation line `550-5.1.1 ...`), or an error number from
//! Outlook (`0x800CCC0E`, also written `800CCC0E`). [`parse_query`] turns that
//! text into a [`Query`], [`explain`] looks it up and [`render_text`] prints it.
//!
//! Sources, in order of authority:
//! - RFC 5321 section 4.2 for the basic reply codes, plus the extensions that
//!   added codes of their own (RFC 3207 STARTTLS, RFC 4954 AUTH, RFC 7504 for
//!   521/556);
//! - RFC 3463 and the IANA "SMTP Enhanced Status Codes" registry (RFC 5248)
//!   for `class.subject.detail` codes, including later additions (RFC 3886,
//!   4468, 4954, 6531, 6710, 7293, 7372, 7505, 8617, 8689);
//! - Microsoft's `imnxport.h` (the Internet mail transport used by Outlook and
//!   Outlook Express) for which `0x800CCCxx` number stands for what; the
//!   causes listed for those codes are field experience, and anything not
//!   confirmed is said to be unconfirmed in the text itself.
//!
//! Everything here is plain data plus a few lookups: no I/O, no allocation
//! until an [`Explanation`] is built, and no panics on any input.
//!
//! [`bounce`] reads a whole bounce (its RFC 3464 delivery status part) and explains each
//! recipient's status.
//!
//! The tables live in submodules, one per kind of code: `basic`, `enhanced`,
//! `outlook`, and `hints` for the advice that depends on the words of a
//! reply (SPF, relaying, greylisting, ...).

mod basic;
pub mod bounce;
mod enhanced;
mod hints;
mod outlook;
mod phrases;
#[cfg(test)]
mod tests;

use std::fmt;

/// What the user asked about, as understood by [`parse_query`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// A three-digit SMTP reply code such as `550` (RFC 5321 section 4.2).
    Basic(u16),
    /// An enhanced status code `class.subject.detail` such as `5.1.1` (RFC 3463).
    Enhanced {
        /// 2 success, 4 persistent transient failure, 5 permanent failure.
        class: u8,
        /// What the code is about: 1 addressing, 2 mailbox, ... 7 security or policy.
        subject: u16,
        /// The precise condition within the subject.
        detail: u16,
    },
    /// An error number from Outlook or another Windows mail client, such as `0x800CCC0E`.
    Outlook(u32),
    /// A whole reply line as a server sent it: basic code, optional enhanced
    /// code, and the server's own text (kept because it often names the real
    /// reason: "Relay access denied", "SPF fail", "Greylisted", ...).
    Reply {
        /// The three-digit code at the start of the line.
        basic: u16,
        /// The enhanced code at the start of the text, when the server sent one.
        enhanced: Option<(u8, u16, u16)>,
        /// The rest of the line (all lines of a multi-line reply, joined by spaces).
        text: String,
    },
}

/// Why some input could not be understood as a code.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExplainError {
    /// The input was empty or only white space.
    Empty,
    /// A three-digit code whose first digit is not 1 to 5, so not an SMTP reply (`999`).
    BasicOutOfRange(u16),
    /// An enhanced status code whose class is not 2, 4 or 5 (`6.1.1`).
    EnhancedClass(u8),
    /// Something shaped like an enhanced status code but not a valid one
    /// (a part with more than three digits, or a class with several digits).
    EnhancedMalformed(String),
    /// A hexadecimal error number with bad digits or more than 8 of them.
    BadHex(String),
    /// None of the accepted forms.
    Unrecognized(String),
}

impl fmt::Display for ExplainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const FORMS: &str = "expected a reply code like 550, an enhanced status code like 5.1.1, \
                             a reply line like \"550 5.1.1 User unknown\", \
                             an Outlook error like 0x800CCC0E, \
                             or the words of a known bounce or client error";
        match self {
            Self::Empty => write!(f, "nothing to explain: {FORMS}"),
            Self::BasicOutOfRange(code) => write!(
                f,
                "{code:03} is not an SMTP reply code: the first digit must be 2, 3, 4 or 5 \
                 (1 is reserved and unused)"
            ),
            Self::EnhancedClass(class) => write!(
                f,
                "{class} is not a class of enhanced status code: the class (first number) \
                 must be 2 (success), 4 (temporary failure) or 5 (permanent failure)"
            ),
            Self::EnhancedMalformed(s) => write!(
                f,
                "{s:?} is not a valid enhanced status code: it must be class.subject.detail, \
                 a one-digit class and up to three digits each for subject and detail"
            ),
            Self::BadHex(s) => write!(
                f,
                "{s:?} is not a valid error number: expected up to 8 hexadecimal digits, \
                 such as 0x800CCC0E"
            ),
            Self::Unrecognized(s) => write!(f, "not recognised: {s:?}; {FORMS}"),
        }
    }
}

impl std::error::Error for ExplainError {}

/// A plain-words explanation of one code, ready to print or (later) serialize.
///
/// The fields are plain strings, lists and options so that `serde::Serialize`
/// can be derived on it as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// The code as it is usually written: `550`, `5.1.1`, `0x800CCC0E`.
    pub code: String,
    /// A short name for the condition.
    pub title: String,
    /// What the code says happened, in plain words.
    pub meaning: String,
    /// The usual reasons behind it, most frequent first.
    pub likely_causes: Vec<String>,
    /// What an administrator can check or do about it.
    pub what_to_check: Vec<String>,
    /// `Some(true)`: temporary, the sender should retry later (4xx, 4.x.x);
    /// `Some(false)`: permanent, retrying the same thing will not help (5xx, 5.x.x);
    /// `None`: not a failure, or not known.
    pub transient: Option<bool>,
}

/// One row of a knowledge table: static text, turned into an [`Explanation`] on demand.
struct Entry {
    /// Short name of the condition.
    title: &'static str,
    /// What it means, in plain words.
    meaning: &'static str,
    /// Usual causes, most frequent first.
    causes: &'static [&'static str],
    /// What to check, in the order an administrator would check it.
    checks: &'static [&'static str],
}

/// Builds an [`Entry`]; keeps the tables short.
const fn entry(
    title: &'static str,
    meaning: &'static str,
    causes: &'static [&'static str],
    checks: &'static [&'static str],
) -> Entry {
    Entry {
        title,
        meaning,
        causes,
        checks,
    }
}

impl Entry {
    fn explanation(&self, code: String, transient: Option<bool>) -> Explanation {
        Explanation {
            code,
            title: self.title.to_owned(),
            meaning: self.meaning.to_owned(),
            likely_causes: to_strings(self.causes),
            what_to_check: to_strings(self.checks),
            transient,
        }
    }
}

fn to_strings(lines: &[&str]) -> Vec<String> {
    lines.iter().map(|s| (*s).to_owned()).collect()
}

/// Whether a failure of this class (first digit of either kind of code) is temporary.
fn transient_for_class(class: u16) -> Option<bool> {
    match class {
        4 => Some(true),
        5 => Some(false),
        _ => None,
    }
}

/// Parses what a user typed or pasted into a [`Query`].
///
/// Accepted, case-insensitively and with surrounding white space ignored:
/// - `550`: a basic reply code;
/// - `5.1.1`: an enhanced status code (anything after it is ignored);
/// - `550 5.1.1 User unknown`, `550-5.1.1 ...`, `550 User unknown`: a reply
///   line; further lines of a multi-line reply with the same code add their
///   text;
/// - `0x800CCC0E` or `800CCC0E`: a Windows mail-client error number; a `0x`
///   number inside a longer message (`Error Number: 0x800CCC0E`) is found too.
pub fn parse_query(input: &str) -> Result<Query, ExplainError> {
    let mut lines = input.lines().map(str::trim).filter(|l| !l.is_empty());
    let Some(first) = lines.next() else {
        return Err(ExplainError::Empty);
    };
    let query = parse_line(first)?;
    let Query::Reply {
        basic,
        enhanced,
        mut text,
    } = query
    else {
        return Ok(query);
    };
    // Continuation lines of the same reply: "550-5.1.1 ...", then "550 5.1.1 ...".
    for line in lines {
        let Some((code, rest)) = split_reply(line) else {
            break;
        };
        if code != basic {
            break;
        }
        let rest = match (enhanced, split_enhanced(rest)) {
            (Some(e), Some((again, after))) if e == again => after,
            _ => rest,
        };
        if !rest.is_empty() {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(rest);
        }
    }
    Ok(Query::Reply {
        basic,
        enhanced,
        text,
    })
}

/// Parses one trimmed, non-empty line.
fn parse_line(line: &str) -> Result<Query, ExplainError> {
    let first_token = line.split(is_token_separator).next().unwrap_or(line);
    if let Some(hex) = strip_hex_prefix(first_token) {
        return parse_hex(hex, first_token).map(Query::Outlook);
    }
    if line.len() == 3 && line.bytes().all(|b| b.is_ascii_digit()) {
        return basic_code(line).map(Query::Basic);
    }
    if let Some((code, rest)) = split_reply(line) {
        let basic = check_basic(code)?;
        return Ok(match split_enhanced(rest) {
            Some((enhanced, text)) => Query::Reply {
                basic,
                enhanced: Some(enhanced),
                text: text.to_owned(),
            },
            None if rest.is_empty() => Query::Basic(basic),
            None => Query::Reply {
                basic,
                enhanced: None,
                text: rest.to_owned(),
            },
        });
    }
    let first_word = line.split_whitespace().next().unwrap_or(line);
    if looks_enhanced(first_word) {
        let (class, subject, detail) = parse_enhanced(first_word)?;
        return Ok(Query::Enhanced {
            class,
            subject,
            detail,
        });
    }
    if first_token.len() == 8 && first_token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return parse_hex(first_token, first_token).map(Query::Outlook);
    }
    // An error number inside a longer message: "Error Number: 0x800CCC0E".
    for token in line.split(is_token_separator) {
        if let Some(hex) = strip_hex_prefix(token)
            && let Ok(n) = parse_hex(hex, token)
        {
            return Ok(Query::Outlook(n));
        }
    }
    Err(ExplainError::Unrecognized(line.to_owned()))
}

/// What separates an error number from the words around it in a pasted message.
fn is_token_separator(c: char) -> bool {
    c.is_whitespace() || "()[]{},;:'\"".contains(c)
}

/// Validates a three-digit string as a basic reply code.
fn basic_code(digits: &str) -> Result<u16, ExplainError> {
    let code: u16 = digits
        .parse()
        .map_err(|_| ExplainError::Unrecognized(digits.to_owned()))?;
    check_basic(code)
}

/// Reply codes run from 1yz to 5yz (RFC 5321 section 4.2.1).
fn check_basic(code: u16) -> Result<u16, ExplainError> {
    if (100..600).contains(&code) {
        Ok(code)
    } else {
        Err(ExplainError::BasicOutOfRange(code))
    }
}

/// Splits `"550 text"` or `"550-text"` into the code and the trimmed text.
/// A bare `"550-"` gives an empty text.
fn split_reply(line: &str) -> Option<(u16, &str)> {
    let bytes = line.as_bytes();
    if bytes.len() < 4 || !bytes[..3].iter().all(u8::is_ascii_digit) {
        return None;
    }
    if !matches!(bytes[3], b' ' | b'-' | b'\t') {
        return None;
    }
    let code = line[..3].parse().ok()?;
    Some((code, line[4..].trim()))
}

/// If `text` starts with a valid enhanced status code followed by white space
/// or the end, returns it and the rest of the text.
fn split_enhanced(text: &str) -> Option<((u8, u16, u16), &str)> {
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    let token = &text[..end];
    if !looks_enhanced(token) {
        return None;
    }
    let code = parse_enhanced(token).ok()?;
    Some((code, text[end..].trim_start()))
}

/// Three dot-separated groups of digits.
fn looks_enhanced(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

fn parse_enhanced(token: &str) -> Result<(u8, u16, u16), ExplainError> {
    let malformed = || ExplainError::EnhancedMalformed(token.to_owned());
    let mut parts = token.split('.');
    let (Some(c), Some(s), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    if c.len() != 1 || s.is_empty() || s.len() > 3 || d.is_empty() || d.len() > 3 {
        return Err(malformed());
    }
    let class: u8 = c.parse().map_err(|_| malformed())?;
    let subject: u16 = s.parse().map_err(|_| malformed())?;
    let detail: u16 = d.parse().map_err(|_| malformed())?;
    if !matches!(class, 2 | 4 | 5) {
        return Err(ExplainError::EnhancedClass(class));
    }
    Ok((class, subject, detail))
}

fn strip_hex_prefix(s: &str) -> Option<&str> {
    s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))
}

fn parse_hex(digits: &str, original: &str) -> Result<u32, ExplainError> {
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ExplainError::BadHex(original.to_owned()));
    }
    u32::from_str_radix(digits, 16).map_err(|_| ExplainError::BadHex(original.to_owned()))
}

/// Explains a query. Never empty, never panics.
///
/// - a basic or enhanced code gives one explanation; a code that is not in
///   the tables is explained by its class and category, and the explanation
///   says that the exact code is not a registered one;
/// - a reply line with both codes gives two: the enhanced code first (it is
///   the more precise), then the basic code; advice drawn from the server's
///   words ("relay", "SPF", "greylisted", ...) is added to the first;
/// - an Outlook error that stands for an SMTP reply (`0x800CCC69` is "the
///   server answered 550") gives the Outlook explanation and then the one for
///   that reply code.
pub fn explain(q: &Query) -> Vec<Explanation> {
    match q {
        Query::Basic(code) => vec![basic::explain(*code)],
        Query::Enhanced {
            class,
            subject,
            detail,
        } => vec![enhanced::explain(*class, *subject, *detail)],
        Query::Outlook(code) => outlook::explain(*code),
        Query::Reply {
            basic,
            enhanced,
            text,
        } => explain_reply(*basic, *enhanced, text),
    }
}

fn explain_reply(basic: u16, enhanced: Option<(u8, u16, u16)>, text: &str) -> Vec<Explanation> {
    let mut out = Vec::with_capacity(2);
    if let Some((class, subject, detail)) = enhanced {
        out.push(enhanced::explain(class, subject, detail));
    }
    let mut basic_exp = basic::explain(basic);
    if let Some((class, _, _)) = enhanced
        && u16::from(class) != basic / 100
    {
        basic_exp.likely_causes.push(format!(
            "The enhanced code's class ({class}) disagrees with the reply code's first digit \
             ({}); RFC 3463 requires them to match, so the server is misbehaving. Clients act \
             on the reply code.",
            basic / 100
        ));
    }
    out.push(basic_exp);
    if let Some(first) = out.first_mut() {
        if !text.is_empty() {
            first
                .meaning
                .push_str(&format!(" The server's own words: \"{text}\"."));
        }
        hints::apply(first, text);
    }
    out
}

/// Parses and explains in one step, for callers that do not need the [`Query`]. Text with no
/// code at its start is looked at further: a reply quoted inside it (a bounce's `... said: 550
/// 5.1.1 ...`) is explained as that reply; words alone (`Relay access denied`, an error box's
/// words) are matched against known phrases and explained as the reply they usually come
/// with; unknown text stays an error.
pub fn explain_str(input: &str) -> Result<Vec<Explanation>, ExplainError> {
    match parse_query(input) {
        Err(ExplainError::Unrecognized(text)) => {
            if let Some(q) = phrases::embedded_reply(input) {
                return Ok(explain(&q));
            }
            let Some(q) = phrases::lookup(&text) else {
                return Err(ExplainError::Unrecognized(text));
            };
            let usual = match &q {
                Query::Reply {
                    basic,
                    enhanced: Some((c, s, d)),
                    ..
                } => format!("{basic} {c}.{s}.{d}"),
                Query::Outlook(code) => format!("0x{code:08X}"),
                _ => "the code below".to_string(),
            };
            let mut exps = explain(&q);
            if let Some(first) = exps.first_mut() {
                first.meaning = format!(
                    "No code was given; these words usually come with {usual}. {}",
                    first.meaning
                );
            }
            Ok(exps)
        }
        other => other.map(|q| explain(&q)),
    }
}

/// The Outlook error number a client shows for this SMTP reply code (`421` is `0x800CCC67`),
/// when Outlook has one of its own.
pub fn outlook_for_reply(code: u16) -> Option<u32> {
    outlook::for_reply(code)
}

/// Width `render_text` wraps lines at.
const WIDTH: usize = 78;

/// Renders explanations for a terminal: code and title on one line, then the
/// meaning, the likely causes and what to check, wrapped at 78 columns.
pub fn render_text(exps: &[Explanation]) -> String {
    let mut out = String::new();
    for (i, e) in exps.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&e.code);
        out.push_str("  ");
        out.push_str(&e.title);
        out.push('\n');
        match e.transient {
            Some(true) => wrap_into(
                &mut out,
                "  ",
                "  ",
                "Temporary failure: the sender should retry later.",
            ),
            Some(false) => wrap_into(
                &mut out,
                "  ",
                "  ",
                "Permanent failure: sending the same thing again will not help; something must \
                 change first.",
            ),
            None => {}
        }
        wrap_into(&mut out, "  ", "  ", &e.meaning);
        if !e.likely_causes.is_empty() {
            out.push_str("  Likely causes:\n");
            for line in &e.likely_causes {
                wrap_into(&mut out, "    - ", "      ", line);
            }
        }
        if !e.what_to_check.is_empty() {
            out.push_str("  What to check:\n");
            for line in &e.what_to_check {
                wrap_into(&mut out, "    - ", "      ", line);
            }
        }
    }
    out
}

/// Appends `text` word-wrapped at [`WIDTH`], the first line after `first`, the
/// others after `rest`. A word longer than the line is kept whole.
fn wrap_into(out: &mut String, first: &str, rest: &str, text: &str) {
    let mut prefix = first;
    let mut line_len = 0;
    for word in text.split_whitespace() {
        let word_len = word.chars().count();
        if line_len > 0 && line_len + 1 + word_len > WIDTH {
            out.push('\n');
            line_len = 0;
        }
        if line_len == 0 {
            out.push_str(prefix);
            line_len = prefix.chars().count();
            prefix = rest;
        } else {
            out.push(' ');
            line_len += 1;
        }
        out.push_str(word);
        line_len += word_len;
    }
    if line_len > 0 {
        out.push('\n');
    }
}
