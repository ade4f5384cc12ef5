//! ESMTP parameters of MAIL and RCPT: SIZE (RFC 1870), BODY (RFC 6152), SMTPUTF8 (RFC 6531),
//! RET / ENVID / NOTIFY / ORCPT (RFC 3461, DSN) and AUTH (RFC 4954).
//!
//! Parsing checks syntax only. Whether a parameter is allowed (its extension advertised, the
//! size under the limit) is the session's business.

use std::fmt;

/// What BODY= says the content is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyType {
    /// `BODY=7BIT`: plain ASCII.
    SevenBit,
    /// `BODY=8BITMIME`: may contain 8-bit octets in lines of normal length.
    EightBitMime,
    /// `BODY=BINARYMIME` (RFC 3030): only with BDAT. Not advertised by relais.
    BinaryMime,
}

impl BodyType {
    /// The keyword as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            BodyType::SevenBit => "7BIT",
            BodyType::EightBitMime => "8BITMIME",
            BodyType::BinaryMime => "BINARYMIME",
        }
    }
}

/// DSN `RET=`: how much of the message a failure report returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ret {
    /// The whole message.
    Full,
    /// Only its headers.
    Hdrs,
}

/// DSN `NOTIFY=` for one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Notify {
    /// Report successful delivery.
    pub success: bool,
    /// Report failure (the default when NOTIFY is absent).
    pub failure: bool,
    /// Report delays.
    pub delay: bool,
}

impl Notify {
    /// `NOTIFY=NEVER`.
    pub const NEVER: Notify = Notify {
        success: false,
        failure: false,
        delay: false,
    };

    /// True for NOTIFY=NEVER.
    pub fn is_never(&self) -> bool {
        *self == Notify::NEVER
    }
}

impl fmt::Display for Notify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_never() {
            return f.write_str("NEVER");
        }
        let mut parts = Vec::new();
        if self.success {
            parts.push("SUCCESS");
        }
        if self.failure {
            parts.push("FAILURE");
        }
        if self.delay {
            parts.push("DELAY");
        }
        f.write_str(&parts.join(","))
    }
}

/// Parameters of MAIL FROM.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MailParams {
    /// `SIZE=`: the size the client declares, in octets.
    pub size: Option<u64>,
    /// `BODY=`.
    pub body: Option<BodyType>,
    /// `SMTPUTF8`: addresses and headers may be UTF-8.
    pub smtputf8: bool,
    /// DSN `RET=`.
    pub ret: Option<Ret>,
    /// DSN `ENVID=`, still xtext-encoded as received (it is passed on as is).
    pub envid: Option<String>,
    /// `AUTH=`: the submitter's identity, xtext as received (`<>` when unknown).
    pub auth: Option<String>,
}

/// Parameters of RCPT TO.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RcptParams {
    /// DSN `NOTIFY=`; `None` means the default (failure and, at the server's choice, delay).
    pub notify: Option<Notify>,
    /// DSN `ORCPT=`: address type (`rfc822`, `utf-8`) and the address, xtext as received.
    pub orcpt: Option<(String, String)>,
}

/// A parameter that could not be accepted, with the reply it deserves.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParamError {
    /// Not `KEY` or `KEY=VALUE` with a valid value character set.
    Syntax(String),
    /// A keyword this server does not know.
    Unsupported(String),
    /// The same keyword twice.
    Duplicate(String),
    /// A known keyword with a bad value; the string names the keyword.
    BadValue(&'static str),
}

impl fmt::Display for ParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamError::Syntax(p) => write!(f, "bad parameter syntax: {p}"),
            ParamError::Unsupported(p) => write!(f, "unsupported option: {p}"),
            ParamError::Duplicate(p) => write!(f, "duplicate option: {p}"),
            ParamError::BadValue(k) => write!(f, "bad {k} parameter"),
        }
    }
}

impl std::error::Error for ParamError {}

/// Splits `A=1 B C=x` into (keyword, value) pairs, checking the RFC 5321 esmtp-param syntax
/// (values: printable ASCII but `=` and space; UTF-8 allowed as RFC 6531 extends it).
fn split_params(s: &str) -> Result<Vec<(&str, Option<&str>)>, ParamError> {
    let mut out = Vec::new();
    for p in s.split(' ').filter(|p| !p.is_empty()) {
        let (k, v) = match p.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (p, None),
        };
        let key_ok = !k.is_empty()
            && k.as_bytes()[0].is_ascii_alphanumeric()
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let value_ok = v.is_none_or(|v| {
            !v.is_empty()
                && v.chars()
                    .all(|c| (('!'..='~').contains(&c) && c != '=') || !c.is_ascii())
        });
        if !key_ok && v.is_none() {
            // Not a keyword at all (a comment after the path, `(Anne)`): Postfix calls it an
            // unsupported option.
            return Err(ParamError::Unsupported(p.to_string()));
        }
        if !key_ok || !value_ok {
            return Err(ParamError::Syntax(p.to_string()));
        }
        if out
            .iter()
            .any(|(seen, _): &(&str, _)| seen.eq_ignore_ascii_case(k))
        {
            return Err(ParamError::Duplicate(k.to_ascii_uppercase()));
        }
        out.push((k, v));
    }
    Ok(out)
}

/// True if `s` is valid xtext (RFC 3461 §4): printable ASCII but `+` and `=`, and `+XX` hex escapes.
pub fn is_xtext(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                let hex = |c: u8| c.is_ascii_digit() || (b'A'..=b'F').contains(&c);
                if i + 2 >= b.len() || !hex(b[i + 1]) || !hex(b[i + 2]) {
                    return false;
                }
                i += 3;
            }
            b'=' => return false,
            c if (b'!'..=b'~').contains(&c) => i += 1,
            _ => return false,
        }
    }
    true
}

/// Decodes xtext (`+2B` → `+`). Invalid escapes are left as they are.
pub fn xtext_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'+'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encodes text as xtext: `+`, `=`, controls, space and non-ASCII become `+XX`.
pub fn xtext_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

impl MailParams {
    /// Parses the parameters after the reverse path.
    pub fn parse(s: &str) -> Result<MailParams, ParamError> {
        let mut p = MailParams::default();
        for (k, v) in split_params(s)? {
            let key = k.to_ascii_uppercase();
            match (key.as_str(), v) {
                ("SIZE", Some(v)) => {
                    if v.len() > 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(ParamError::BadValue("SIZE"));
                    }
                    // An absurd size is still a size: saturate and let the limit refuse it.
                    p.size = Some(v.parse().unwrap_or(u64::MAX));
                }
                ("BODY", Some(v)) => {
                    p.body = Some(match v.to_ascii_uppercase().as_str() {
                        "7BIT" => BodyType::SevenBit,
                        "8BITMIME" => BodyType::EightBitMime,
                        "BINARYMIME" => BodyType::BinaryMime,
                        _ => return Err(ParamError::BadValue("BODY")),
                    })
                }
                ("SMTPUTF8", None) => p.smtputf8 = true,
                ("RET", Some(v)) => {
                    p.ret = Some(match v.to_ascii_uppercase().as_str() {
                        "FULL" => Ret::Full,
                        "HDRS" => Ret::Hdrs,
                        _ => return Err(ParamError::BadValue("RET")),
                    })
                }
                ("ENVID", Some(v)) => {
                    if v.len() > 100 || !is_xtext(v) {
                        return Err(ParamError::BadValue("ENVID"));
                    }
                    p.envid = Some(v.to_string());
                }
                ("AUTH", Some(v)) => {
                    if v != "<>" && !is_xtext(v) {
                        return Err(ParamError::BadValue("AUTH"));
                    }
                    p.auth = Some(v.to_string());
                }
                ("SIZE" | "BODY" | "RET" | "ENVID" | "AUTH", None) => {
                    return Err(ParamError::BadValue(static_name(&key)));
                }
                ("SMTPUTF8", Some(_)) => return Err(ParamError::BadValue("SMTPUTF8")),
                _ => return Err(ParamError::Unsupported(k.to_string())),
            }
        }
        Ok(p)
    }
}

impl RcptParams {
    /// Parses the parameters after the forward path.
    pub fn parse(s: &str) -> Result<RcptParams, ParamError> {
        let mut p = RcptParams::default();
        for (k, v) in split_params(s)? {
            let key = k.to_ascii_uppercase();
            match (key.as_str(), v) {
                ("NOTIFY", Some(v)) => p.notify = Some(parse_notify(v)?),
                ("ORCPT", Some(v)) => {
                    let (t, a) = v.split_once(';').ok_or(ParamError::BadValue("ORCPT"))?;
                    let type_ok =
                        !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
                    let addr_ok = !a.is_empty()
                        && a.len() <= 500
                        && (is_xtext(a) || t.eq_ignore_ascii_case("utf-8"));
                    if !type_ok || !addr_ok {
                        return Err(ParamError::BadValue("ORCPT"));
                    }
                    p.orcpt = Some((t.to_string(), a.to_string()));
                }
                ("NOTIFY" | "ORCPT", None) => {
                    return Err(ParamError::BadValue(static_name(&key)));
                }
                _ => return Err(ParamError::Unsupported(k.to_string())),
            }
        }
        Ok(p)
    }
}

/// `NEVER` alone, or a comma list of SUCCESS, FAILURE, DELAY (any case, no repeats).
fn parse_notify(v: &str) -> Result<Notify, ParamError> {
    let bad = ParamError::BadValue("NOTIFY");
    if v.eq_ignore_ascii_case("NEVER") {
        return Ok(Notify::NEVER);
    }
    let mut n = Notify::default();
    for word in v.split(',') {
        let flag = match word.to_ascii_uppercase().as_str() {
            "SUCCESS" => &mut n.success,
            "FAILURE" => &mut n.failure,
            "DELAY" => &mut n.delay,
            _ => return Err(bad),
        };
        if *flag {
            return Err(bad);
        }
        *flag = true;
    }
    Ok(n)
}

/// Maps a known keyword to a static name for error messages.
fn static_name(key: &str) -> &'static str {
    match key {
        "SIZE" => "SIZE",
        "BODY" => "BODY",
        "RET" => "RET",
        "ENVID" => "ENVID",
        "AUTH" => "AUTH",
        "NOTIFY" => "NOTIFY",
        "ORCPT" => "ORCPT",
        _ => "parameter",
    }
}

impl fmt::Display for MailParams {
    /// The parameters as they go on the wire, each preceded by a space.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = self.size {
            write!(f, " SIZE={s}")?;
        }
        if let Some(b) = self.body {
            write!(f, " BODY={}", b.as_str())?;
        }
        if self.smtputf8 {
            f.write_str(" SMTPUTF8")?;
        }
        if let Some(r) = self.ret {
            f.write_str(match r {
                Ret::Full => " RET=FULL",
                Ret::Hdrs => " RET=HDRS",
            })?;
        }
        if let Some(e) = &self.envid {
            write!(f, " ENVID={e}")?;
        }
        if let Some(a) = &self.auth {
            write!(f, " AUTH={a}")?;
        }
        Ok(())
    }
}

impl fmt::Display for RcptParams {
    /// The parameters as they go on the wire, each preceded by a space.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = self.notify {
            write!(f, " NOTIFY={n}")?;
        }
        if let Some((t, a)) = &self.orcpt {
            write!(f, " ORCPT={t};{a}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_params_table() {
        let p =
            MailParams::parse("SIZE=1000 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ314159 AUTH=<>")
                .unwrap();
        assert_eq!(p.size, Some(1000));
        assert_eq!(p.body, Some(BodyType::EightBitMime));
        assert!(p.smtputf8);
        assert_eq!(p.ret, Some(Ret::Hdrs));
        assert_eq!(p.envid.as_deref(), Some("QQ314159"));
        assert_eq!(p.auth.as_deref(), Some("<>"));
        assert_eq!(
            p.to_string(),
            " SIZE=1000 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ314159 AUTH=<>"
        );
        assert_eq!(MailParams::parse("size=5 body=7bit").unwrap().size, Some(5));
        assert_eq!(MailParams::parse("").unwrap(), MailParams::default());
        assert_eq!(
            MailParams::parse("SIZE=99999999999999999999").unwrap().size,
            Some(u64::MAX)
        );

        let bad: &[(&str, ParamError)] = &[
            ("SIZE=abc", ParamError::BadValue("SIZE")),
            ("SIZE", ParamError::BadValue("SIZE")),
            ("SIZE=-1", ParamError::BadValue("SIZE")),
            ("BODY=9BIT", ParamError::BadValue("BODY")),
            ("RET=ALL", ParamError::BadValue("RET")),
            ("ENVID=a+zz", ParamError::BadValue("ENVID")),
            ("SMTPUTF8=yes", ParamError::BadValue("SMTPUTF8")),
            ("FOO=1", ParamError::Unsupported("FOO".into())),
            ("SIZE=1 size=2", ParamError::Duplicate("SIZE".into())),
            ("=x", ParamError::Syntax("=x".into())),
            ("(Anne)", ParamError::Unsupported("(Anne)".into())),
            ("SIZE=1=2", ParamError::Syntax("SIZE=1=2".into())),
        ];
        for (input, err) in bad {
            assert_eq!(MailParams::parse(input).as_ref(), Err(err), "{input}");
        }
    }

    #[test]
    fn rcpt_params_table() {
        let p =
            RcptParams::parse("NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;user+40example.com").unwrap();
        assert_eq!(
            p.notify,
            Some(Notify {
                success: true,
                failure: true,
                delay: false
            })
        );
        assert_eq!(
            p.orcpt,
            Some(("rfc822".into(), "user+40example.com".into()))
        );
        assert_eq!(
            p.to_string(),
            " NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;user+40example.com"
        );
        assert_eq!(
            RcptParams::parse("notify=never").unwrap().notify,
            Some(Notify::NEVER)
        );
        assert_eq!(
            RcptParams::parse("notify=success,failure")
                .unwrap()
                .notify
                .unwrap()
                .to_string(),
            "SUCCESS,FAILURE"
        );
        for bad in [
            "NOTIFY=NEVER,SUCCESS",
            "NOTIFY=SOMETIMES",
            "NOTIFY=SUCCESS,SUCCESS",
            "NOTIFY=",
            "ORCPT=nosemicolon",
            "ORCPT=rfc822;",
            "ORCPT=;a@b",
        ] {
            assert!(RcptParams::parse(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            RcptParams::parse("SIZE=1"),
            Err(ParamError::Unsupported(_))
        ));
    }

    #[test]
    fn xtext_round_trip() {
        assert!(is_xtext("abc+2Bdef"));
        assert!(!is_xtext("abc+2"));
        assert!(!is_xtext("abc+zz"));
        assert!(!is_xtext("a=b"));
        assert!(!is_xtext("a b"));
        assert_eq!(xtext_decode("user+40example.com"), "user@example.com");
        for s in ["plain", "a+b=c", "sp ace", "ünï"] {
            let e = xtext_encode(s);
            assert!(is_xtext(&e), "{e}");
            assert_eq!(xtext_decode(&e), s);
        }
    }
}
