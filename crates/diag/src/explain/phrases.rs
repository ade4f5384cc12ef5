//! Text without a code at its start: what people paste from a bounce or a mail client's error
//! box. A reply quoted inside the text (Postfix's `host mx.example.org[192.0.2.1] said: 550
//! 5.1.1 ...`, Exim's `SMTP error from remote mail server after RCPT TO:<bob@example.org>: 550
//! ...`, Exchange's `Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound ...'`)
//! is found by [`embedded_reply`]; words alone ("Relay access denied", "No such person at this
//! address", "Mailbox unavailable") stand for the reply (or Outlook error) they usually come
//! with ([`lookup`]); the explanation is that reply's, with the advice the words call for.

use super::{Query, split_enhanced};

/// A phrase (lower case, matched anywhere in the text) and the reply it usually comes with:
/// the basic code, and the enhanced code when there is a usual one; or an Outlook error.
struct Phrase {
    /// Lower-case fragments; the first one found decides.
    words: &'static [&'static str],
    /// What it stands for.
    query: fn(String) -> Query,
}

fn reply(basic: u16, enhanced: (u8, u16, u16)) -> impl Fn(String) -> Query {
    move |text| Query::Reply {
        basic,
        enhanced: Some(enhanced),
        text,
    }
}

macro_rules! phrase {
    ([$($w:literal),+], $basic:literal, ($c:literal, $s:literal, $d:literal)) => {
        Phrase {
            words: &[$($w),+],
            query: |text| reply($basic, ($c, $s, $d))(text),
        }
    };
}

/// The phrases, most specific first: servers' wording (Postfix, Exim, Exchange/Office 365,
/// Gmail, Sendmail) and mail clients' (Outlook, Thunderbird).
static PHRASES: &[Phrase] = &[
    // Postfix's reject_unknown_sender_domain / reject_unknown_recipient_domain (temporary
    // while the DNS may still answer) and reject_unknown_client_hostname.
    phrase!(
        ["sender address rejected: domain not found"],
        450,
        (4, 1, 8)
    ),
    phrase!(
        ["recipient address rejected: domain not found"],
        450,
        (4, 1, 2)
    ),
    phrase!(
        [
            "cannot find your hostname",
            "cannot find your reverse hostname"
        ],
        450,
        (4, 7, 25)
    ),
    phrase!(["helo command rejected"], 504, (5, 5, 2)),
    // Exim and Exchange for a domain that cannot be routed.
    phrase!(
        ["unrouteable address", "unroutable address"],
        550,
        (5, 1, 2)
    ),
    // Office 365: the recipient's domain is hosted there, the address is not.
    phrase!(
        ["recipient address rejected: access denied"],
        550,
        (5, 4, 1)
    ),
    phrase!(
        [
            "relay access denied",
            "relaying denied",
            "unable to relay",
            "relay not permitted",
            "we do not relay"
        ],
        554,
        (5, 7, 1)
    ),
    phrase!(["no such person at this address"], 550, (5, 1, 1)),
    phrase!(
        [
            "user unknown",
            "unknown user",
            "no such user",
            "recipient address rejected: user unknown",
            "does not exist",
            "address not found",
            "recipient not found",
            "recipientnotfound",
            "recipnotfound",
            "unknown user account"
        ],
        550,
        (5, 1, 1)
    ),
    phrase!(
        [
            "spf validation failed",
            "spf check failed",
            "spf fail",
            "rejected by spf",
            "sender policy framework",
            "not authorized to send"
        ],
        550,
        (5, 7, 23)
    ),
    phrase!(["dmarc", "is unauthenticated"], 550, (5, 7, 26)),
    phrase!(["greylist", "graylist"], 450, (4, 7, 1)),
    phrase!(
        [
            "blocked using",
            "listed at",
            "rbl",
            "spamhaus",
            "blacklist",
            "blocklist",
            "client host rejected",
            "banned sending ip",
            "likely unsolicited",
            "rejected as spam"
        ],
        554,
        (5, 7, 1)
    ),
    phrase!(
        [
            "sender address rejected",
            "sender rejected",
            "sender denied"
        ],
        553,
        (5, 7, 1)
    ),
    phrase!(
        [
            "mailbox full",
            "over quota",
            "quota exceeded",
            "mailbox is full",
            "insufficient storage"
        ],
        552,
        (5, 2, 2)
    ),
    phrase!(
        [
            "message size exceeds",
            "message too large",
            "message is too big",
            "size limit"
        ],
        552,
        (5, 3, 4)
    ),
    phrase!(
        [
            "must issue a starttls",
            "starttls first",
            "encryption required",
            "tls required"
        ],
        530,
        (5, 7, 0)
    ),
    phrase!(
        [
            "authentication failed",
            "authentication unsuccessful",
            "invalid credentials",
            "username and password not accepted",
            "535"
        ],
        535,
        (5, 7, 8)
    ),
    phrase!(
        [
            "authentication required",
            "auth required",
            "client was not authenticated",
            "sender not authenticated"
        ],
        530,
        (5, 7, 0)
    ),
    phrase!(
        [
            "command not recognized",
            "unrecognized command",
            "command unrecognized",
            "syntax error"
        ],
        500,
        (5, 5, 2)
    ),
    phrase!(
        ["too many connections", "too many recipients"],
        421,
        (4, 7, 0)
    ),
    phrase!(
        [
            "mailbox unavailable",
            "requested action not taken: mailbox",
            "mailbox not found"
        ],
        550,
        (5, 2, 1)
    ),
    phrase!(
        [
            "service not available",
            "service unavailable",
            "try again later",
            "temporarily deferred",
            "temporarily rejected"
        ],
        421,
        (4, 3, 2)
    ),
    phrase!(["access denied"], 550, (5, 7, 1)),
];

/// Mail-client wording that stands for an Outlook error number (connection problems).
static CLIENT: &[(&[&str], u32)] = &[
    (
        &[
            "server could not be found",
            "host not found",
            "could not be found",
        ],
        0x800C_CC0D,
    ),
    (
        &[
            "connection timed out",
            "timed out",
            "cannot connect",
            "could not connect",
            "unable to connect",
            "connection refused",
        ],
        0x800C_CC0E,
    ),
    (
        &[
            "server unexpectedly terminated",
            "connection was closed",
            "connection reset",
        ],
        0x800C_CC0F,
    ),
];

/// A reply quoted inside a longer text: a code from 200 to 599 that starts a word, followed by
/// an enhanced code of the same class (`said: 550 5.1.1 <bob@...>`), or, without one, right
/// after a colon or a quote (`said: 550 Relay access denied`, `returned '554 ...'`). Numbers
/// that merely look like codes (a port, an address, a count) are not taken. The reply's text
/// is the rest of the line, without Postfix's `(in reply to ... command)` and closing quotes.
pub(super) fn embedded_reply(input: &str) -> Option<Query> {
    input.lines().find_map(reply_in_line)
}

fn reply_in_line(line: &str) -> Option<Query> {
    let bytes = line.as_bytes();
    for i in 0..bytes.len().saturating_sub(4) {
        let before = if i == 0 { b' ' } else { bytes[i - 1] };
        if !matches!(before, b' ' | b'\t' | b':' | b'\'' | b'"' | b'(' | b'=')
            || !(b'2'..=b'5').contains(&bytes[i])
            || !bytes[i + 1..i + 3].iter().all(u8::is_ascii_digit)
            || !matches!(bytes[i + 3], b' ' | b'-')
        {
            continue;
        }
        let Ok(basic) = line[i..i + 3].parse::<u16>() else {
            continue;
        };
        let rest = line[i + 4..].trim();
        let enhanced =
            split_enhanced(rest).filter(|((class, _, _), _)| u16::from(*class) == basic / 100);
        let quoted = line[..i].trim_end().ends_with([':', '\'', '"', '(']);
        let (enhanced, text) = match enhanced {
            Some((code, text)) => (Some(code), text),
            None if quoted && !rest.is_empty() => (None, rest),
            None => continue,
        };
        return Some(Query::Reply {
            basic,
            enhanced,
            text: reply_text(text),
        });
    }
    None
}

/// The server's words without what the bounce wrapped them in.
fn reply_text(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let cut = lower.find("(in reply to ").unwrap_or(text.len());
    text[..cut]
        .trim()
        .trim_end_matches(['\'', '"'])
        .trim()
        .to_string()
}

/// The query a text without a code stands for, if its words are known.
pub(super) fn lookup(text: &str) -> Option<Query> {
    let lower = text.to_ascii_lowercase();
    for p in PHRASES {
        if p.words.iter().any(|w| lower.contains(w)) {
            return Some((p.query)(text.to_string()));
        }
    }
    CLIENT
        .iter()
        .find(|(words, _)| words.iter().any(|w| lower.contains(w)))
        .map(|&(_, code)| Query::Outlook(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases_stand_for_their_usual_reply() {
        let table: &[(&str, Option<&str>)] = &[
            ("Relay access denied", Some("554 5.7.1")),
            ("No such person at this address", Some("550 5.1.1")),
            (
                "Recipient address rejected: User unknown in local recipient table",
                Some("550 5.1.1"),
            ),
            ("Mailbox unavailable", Some("550 5.2.1")),
            ("Sender address rejected: not logged in", Some("553 5.7.1")),
            ("SPF validation failed", Some("550 5.7.23")),
            (
                "Greylisted, please try again in 300 seconds",
                Some("450 4.7.1"),
            ),
            (
                "Client host rejected: blocked using zen.spamhaus.org",
                Some("554 5.7.1"),
            ),
            ("Must issue a STARTTLS command first", Some("530 5.7.0")),
            ("Authentication unsuccessful", Some("535 5.7.8")),
            ("Command not recognized", Some("500 5.5.2")),
            (
                "The connection to the server has timed out",
                Some("0x800CCC0E"),
            ),
            (
                "The server unexpectedly terminated the connection",
                Some("0x800CCC0F"),
            ),
            (
                "Sender address rejected: Domain not found",
                Some("450 4.1.8"),
            ),
            (
                "Client host rejected: cannot find your hostname, [192.0.2.1]",
                Some("450 4.7.25"),
            ),
            ("Unrouteable address", Some("550 5.1.2")),
            (
                "RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
                Some("550 5.1.1"),
            ),
            (
                "The email account that you tried to reach does not exist.",
                Some("550 5.1.1"),
            ),
            (
                "The server could not be found. (Account: 'mail', SMTP Server: 'smtp.example.org')",
                Some("0x800CCC0D"),
            ),
            ("Connection timed out", Some("0x800CCC0E")),
            ("the weather is nice", None),
        ];
        for (text, want) in table {
            let got = lookup(text).map(|q| match q {
                Query::Reply {
                    basic,
                    enhanced: Some((c, s, d)),
                    text: t,
                } => {
                    assert_eq!(&t, text);
                    format!("{basic} {c}.{s}.{d}")
                }
                Query::Outlook(code) => format!("0x{code:08X}"),
                other => format!("{other:?}"),
            });
            assert_eq!(got.as_deref(), *want, "{text}");
        }
    }

    #[test]
    fn replies_quoted_inside_a_bounce() {
        // (pasted text, the reply found as "basic enhanced|text")
        let table: &[(&str, Option<&str>)] = &[
            (
                "<bob@example.org>: host mx.example.org[192.0.2.1] said: 550 5.1.1 <bob@example.org>: \
                 Recipient address rejected: User unknown in local recipient table (in reply to RCPT TO command)",
                Some(
                    "550 5.1.1|<bob@example.org>: Recipient address rejected: User unknown in local recipient table",
                ),
            ),
            (
                "host mx.example.org[192.0.2.1] said: 450 4.7.25 Client host rejected: cannot find \
                 your hostname, [198.51.100.7] (in reply to RCPT TO command)",
                Some("450 4.7.25|Client host rejected: cannot find your hostname, [198.51.100.7]"),
            ),
            (
                "SMTP error from remote mail server after RCPT TO:<bob@example.org>:\n    \
                 550 5.7.1 <bob@example.org>: Relay access denied",
                Some("550 5.7.1|<bob@example.org>: Relay access denied"),
            ),
            (
                "Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not \
                 found by SMTP address lookup'",
                Some(
                    "550 5.1.10|RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
                ),
            ),
            (
                "The server responded: 554 Transaction failed",
                Some("554 -|Transaction failed"),
            ),
            (
                "The response from the remote server was: 452 4.2.2 The email account that you \
                 tried to reach is over quota.",
                Some("452 4.2.2|The email account that you tried to reach is over quota."),
            ),
            // Numbers that are no reply: a port, an address, a count, a mismatched class.
            (
                "connect to mx.example.org[192.0.2.1]:25: Connection timed out",
                None,
            ),
            ("port 465 is closed", None),
            ("tried 250 times", None),
            ("we saw 550 4.1.1 here", None),
        ];
        for (text, want) in table {
            let got = embedded_reply(text).map(|q| match q {
                Query::Reply {
                    basic,
                    enhanced,
                    text,
                } => {
                    let e = enhanced.map_or("-".to_string(), |(c, s, d)| format!("{c}.{s}.{d}"));
                    format!("{basic} {e}|{text}")
                }
                other => format!("{other:?}"),
            });
            assert_eq!(got.as_deref(), *want, "{text}");
        }
    }
}
