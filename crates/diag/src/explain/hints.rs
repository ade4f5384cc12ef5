//! Advice drawn from the words of a reply.
//!
//! The same code covers many situations (550 5.7.1 can be relaying, SPF, a
//! block list...), and servers usually name the real one in their text. Each
//! [`Hint`] fires when the reply text contains one of its keywords and adds a
//! cause and a check, ahead of the general ones.

use super::Explanation;

/// One piece of advice, triggered by words in the reply text.
struct Hint {
    /// Lower-case fragments; any one of them in the text triggers the hint.
    keywords: &'static [&'static str],
    /// Lower-case fragments that mark a line of the explanation as being
    /// about the same thing already.
    topics: &'static [&'static str],
    /// Added to the likely causes, unless a cause is already on the topic.
    cause: &'static str,
    /// Added to what to check, unless a check is already on the topic.
    check: &'static str,
}

/// Puts the advice matching the words of `text` first in `exp`'s causes and
/// checks: the lines `exp` already has on that topic move to the front, and
/// where it has none, the hint's own line is added in front.
pub(super) fn apply(exp: &mut Explanation, text: &str) {
    let lower = text.to_ascii_lowercase();
    let mut causes = Vec::new();
    let mut checks = Vec::new();
    for hint in HINTS {
        if hint.keywords.iter().any(|k| lower.contains(k)) {
            promote(&mut causes, &mut exp.likely_causes, hint.topics, hint.cause);
            promote(&mut checks, &mut exp.what_to_check, hint.topics, hint.check);
        }
    }
    causes.append(&mut exp.likely_causes);
    exp.likely_causes = causes;
    checks.append(&mut exp.what_to_check);
    exp.what_to_check = checks;
}

/// Moves the lines of `existing` that mention one of `topics` to `front`, or
/// adds `line` to `front` when none does (and `front` has none either).
fn promote(front: &mut Vec<String>, existing: &mut Vec<String>, topics: &[&str], line: &str) {
    let on_topic = |l: &String| {
        let l = l.to_lowercase();
        topics.iter().any(|t| l.contains(t))
    };
    let (matching, rest): (Vec<String>, Vec<String>) = existing.drain(..).partition(on_topic);
    *existing = rest;
    if !matching.is_empty() {
        front.extend(matching);
    } else if !front.iter().any(on_topic) {
        front.push(line.to_owned());
    }
}

static HINTS: &[Hint] = &[
    Hint {
        keywords: &[
            "relay",
            "not permitted to send",
            "not local host",
            "rcpthosts",
        ],
        topics: &["relay"],
        cause: "The reply names relaying: the server refuses to pass mail on to other domains \
                for a client that is neither authenticated nor in its relay networks.",
        check: "Authenticate (SMTP AUTH on port 587 with STARTTLS), or add the client's \
                network to the server's relay networks if it is trusted.",
    },
    Hint {
        keywords: &["spf"],
        topics: &["spf"],
        cause: "The reply names SPF: the sending server's address is not allowed by the SPF \
                record of the sender's domain.",
        check: "Check the SPF record of the sender's domain (the MAIL FROM domain) and that it \
                lists the sending server's public address (`relais dns` evaluates it).",
    },
    Hint {
        keywords: &["dmarc"],
        topics: &["dmarc"],
        cause: "The reply names DMARC: SPF and DKIM did not pass in alignment with the From \
                domain.",
        check: "Check SPF and DKIM for the From domain and its DMARC record (_dmarc.domain).",
    },
    Hint {
        keywords: &["dkim"],
        topics: &["dkim"],
        cause: "The reply names DKIM: no valid signature was found, or it broke on the way.",
        check: "Check DKIM signing on the sending side and the selector's public key in DNS.",
    },
    Hint {
        keywords: &["greylist", "graylist", "grey-list", "gray-list"],
        topics: &["greylist"],
        cause: "The reply names greylisting: a first attempt from an unknown sender is \
                deferred on purpose.",
        check: "Nothing to fix: retry after a few minutes from the same address (mail servers \
                do it by themselves) and it will be accepted.",
    },
    Hint {
        keywords: &[
            "user unknown",
            "unknown user",
            "no such user",
            "no such person",
            "does not exist",
            "doesn't exist",
            "mailbox unavailable",
            "mailbox not found",
            "recipient rejected",
            "invalid recipient",
        ],
        topics: &["aliases", "does not exist"],
        cause: "The reply says the recipient does not exist there; a custom text such as 'No \
                such person at this address' usually comes from a reject rule or alias.",
        check: "Check the spelling, then the receiving server's local user table, aliases and \
                virtual domain maps for this address.",
    },
    Hint {
        keywords: &[
            "blocked using",
            "blacklist",
            "blocklist",
            "block list",
            "black list",
            "dnsbl",
            "rbl",
            "spamhaus",
            "spamcop",
            "barracuda",
            "listed at",
            "listed on",
            "listed in",
            "is listed",
        ],
        topics: &["block list"],
        cause: "The reply points at a DNS block list: the sending server's address is listed.",
        check: "Check the sending address on the block lists named (`relais dns`), fix what \
                got it listed (open relay, infected machine, spam from a script), then request \
                delisting.",
    },
    Hint {
        keywords: &[
            "too many connections",
            "too many messages",
            "rate limit",
            "ratelimit",
            "throttl",
            "too many concurrent",
        ],
        topics: &["limit"],
        cause: "The reply mentions a limit: too many connections or messages from the same \
                address in a short time.",
        check: "Send more slowly or with fewer parallel connections; on your own server, look \
                at the per-client connection and rate limits.",
    },
    Hint {
        keywords: &[
            "too big",
            "too large",
            "size limit",
            "message size",
            "exceeds size",
        ],
        topics: &["size"],
        cause: "The reply mentions the message size: it is larger than the server accepts.",
        check: "Compare the message size with the SIZE value in the EHLO reply; attachments \
                grow by a third once encoded.",
    },
    Hint {
        keywords: &["quota", "mailbox full", "mailbox is full", "over quota"],
        topics: &["quota", "full"],
        cause: "The reply mentions a quota or full mailbox.",
        check: "The recipient must make room; nothing to change on the sending side.",
    },
    Hint {
        keywords: &["helo", "ehlo"],
        topics: &["helo"],
        cause: "The reply names HELO/EHLO: the name the client greeted with was refused (not \
                a fully qualified name, does not resolve, or pretends to be the server). \
                Outlook, for example, greets with the computer's own name.",
        check: "Greet with a fully qualified host name that resolves to the sending address; \
                for mail clients, authenticate, which skips most HELO checks.",
    },
    Hint {
        keywords: &[
            "reverse dns",
            "rdns",
            "ptr",
            "reverse lookup",
            "reverse-lookup",
        ],
        topics: &["ptr", "reverse dns"],
        cause: "The reply names reverse DNS: the sending address has no PTR name, or the name \
                does not point back to it.",
        check: "Look up the PTR of the sending address and the address of that name (`relais \
                dns`); the owner of the address block sets the PTR.",
    },
    Hint {
        keywords: &[
            "starttls",
            "tls required",
            "encryption required",
            "must issue a starttls",
        ],
        topics: &["starttls"],
        cause: "The reply asks for TLS: the server only goes on over an encrypted connection.",
        check: "Issue STARTTLS first (port 587) or connect with TLS (port 465); `relais probe` \
                shows whether STARTTLS is offered.",
    },
    Hint {
        keywords: &[
            "authentication required",
            "auth required",
            "must authenticate",
            "authentication is required",
            "not authenticated",
        ],
        topics: &["authentication"],
        cause: "The reply asks for authentication.",
        check: "Enable SMTP authentication in the client, over STARTTLS (587) or TLS (465).",
    },
    Hint {
        keywords: &[
            "authentication failed",
            "invalid credentials",
            "password",
            "auth failed",
        ],
        topics: &["base64", "password"],
        cause: "The reply concerns the credentials given to AUTH.",
        check: "Check the user name and password; when testing by hand, build the base64 with \
                printf (no trailing newline): AUTH PLAIN is '\\0user\\0password'.",
    },
    Hint {
        keywords: &["spam", "content rejected", "virus", "malware"],
        topics: &["filter"],
        cause: "The reply points at a content or policy filter on the receiving side.",
        check: "Ask the receiving side which rule matched; check the message for what filters \
                dislike (links, attachments, missing headers such as Date or Message-ID).",
    },
];
