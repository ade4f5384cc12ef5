//! Text without a code: what people paste from a bounce or a mail client's error box
//! ("Relay access denied", "No such person at this address", "Mailbox unavailable"). Each
//! phrase stands for the reply (or Outlook error) it usually comes with; the explanation is
//! that reply's, with the advice the words themselves call for.

use super::Query;

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
            "recipient not found"
        ],
        550,
        (5, 1, 1)
    ),
    phrase!(
        [
            "spf validation failed",
            "spf check failed",
            "spf fail",
            "rejected by spf"
        ],
        550,
        (5, 7, 23)
    ),
    phrase!(["dmarc"], 550, (5, 7, 26)),
    phrase!(["greylist", "graylist"], 450, (4, 7, 1)),
    phrase!(
        [
            "blocked using",
            "listed at",
            "rbl",
            "spamhaus",
            "blacklist",
            "blocklist",
            "client host rejected"
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
            "connection timed out",
            "timed out",
            "could not be found",
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
            (
                "Sender address rejected: Domain not found",
                Some("553 5.7.1"),
            ),
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
}
