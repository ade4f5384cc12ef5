//! Enhanced status codes `class.subject.detail` (RFC 3463, RFC 2034).
//!
//! The table holds every code of the IANA "SMTP Enhanced Status Codes"
//! registry as relais knows it, keyed by subject and detail (the class only
//! says success, temporary or permanent). A few codes mean something more
//! specific in one class, for example 4.7.1 (often greylisting) against
//! 5.7.1 (often relaying denied): [`CLASS_NOTES`] adds that advice. Codes not
//! in the table fall back to their class and subject.

use super::{Entry, Explanation, entry, to_strings, transient_for_class};

/// Explains `class.subject.detail`; unknown details fall back to the subject.
pub(super) fn explain(class: u8, subject: u16, detail: u16) -> Explanation {
    let code = format!("{class}.{subject}.{detail}");
    let transient = transient_for_class(u16::from(class));
    let Some(class_meaning) = class_meaning(class) else {
        return Explanation {
            code,
            title: "Not a valid enhanced status code".to_owned(),
            meaning: format!(
                "The class (first number) of an enhanced status code is 2, 4 or 5; {class} is \
                 none of them."
            ),
            likely_causes: vec!["A typing mistake, or a code from another system.".to_owned()],
            what_to_check: vec!["Copy the code again from the log or bounce message.".to_owned()],
            transient: None,
        };
    };
    let mut exp = match lookup(subject, detail) {
        Some(e) => {
            let mut exp = e.explanation(code, transient);
            // Failures are labelled temporary or permanent by `transient`;
            // success needs saying, since the title may sound like an error.
            if class == 2 {
                exp.meaning.push(' ');
                exp.meaning.push_str(class_meaning);
            }
            exp
        }
        None => fallback(code, class_meaning, subject, detail, transient),
    };
    if let Some(note) = CLASS_NOTES
        .iter()
        .find(|n| (n.class, n.subject, n.detail) == (class, subject, detail))
    {
        exp.meaning.push(' ');
        exp.meaning.push_str(note.meaning);
        // The class-specific causes are the likelier ones: put them first.
        let mut causes = to_strings(note.causes);
        causes.append(&mut exp.likely_causes);
        exp.likely_causes = causes;
        let mut checks = to_strings(note.checks);
        checks.append(&mut exp.what_to_check);
        exp.what_to_check = checks;
    }
    exp
}

/// The table row for `X.subject.detail`, if registered.
pub(super) fn lookup(subject: u16, detail: u16) -> Option<&'static Entry> {
    CODES
        .iter()
        .find(|(s, d, _)| (*s, *d) == (subject, detail))
        .map(|(_, _, e)| e)
}

/// What the class says (RFC 3463 section 3.1).
fn class_meaning(class: u8) -> Option<&'static str> {
    Some(match class {
        2 => "Class 2 is success: this reports something that worked, not an error.",
        4 => {
            "Class 4 is a persistent transient failure: the message itself is fine and \
              sending it again later may work; mail servers retry on their own."
        }
        5 => {
            "Class 5 is a permanent failure: sending the same message the same way will fail \
              again; something must change first."
        }
        _ => return None,
    })
}

/// Name and meaning of each subject (RFC 3463 section 3.2).
fn subject_meaning(subject: u16) -> Option<(&'static str, &'static str)> {
    Some(match subject {
        0 => (
            "Other or undefined status",
            "Subject 0 gives no further information about what went wrong.",
        ),
        1 => (
            "Addressing status",
            "Subject 1 is about an address, the sender's or a recipient's: its syntax or \
             whether it is valid. The sender can usually correct it.",
        ),
        2 => (
            "Mailbox status",
            "Subject 2 is about the recipient's mailbox (full, disabled, ...), which is in the \
             recipient's hands.",
        ),
        3 => (
            "Mail system status",
            "Subject 3 is about the receiving mail system as a whole (storage, size limits, \
             configuration), which is in the hands of its administrators.",
        ),
        4 => (
            "Network and routing status",
            "Subject 4 is about the network or routing between the servers: DNS, connections, \
             loops, delays.",
        ),
        5 => (
            "Mail delivery protocol status",
            "Subject 5 is about the SMTP conversation itself: commands, syntax, protocol \
             versions.",
        ),
        6 => (
            "Message content or media status",
            "Subject 6 is about the content of the message: its format, encoding or conversion.",
        ),
        7 => (
            "Security or policy status",
            "Subject 7 is about security or policy: authentication, encryption, permissions, \
             anti-spam checks.",
        ),
        _ => return None,
    })
}

fn fallback(
    code: String,
    class_meaning: &str,
    subject: u16,
    detail: u16,
    transient: Option<bool>,
) -> Explanation {
    let Some((name, subject_meaning)) = subject_meaning(subject) else {
        return Explanation {
            title: format!("Unregistered subject {subject}"),
            meaning: format!(
                "{code} is not a registered enhanced status code, and subject {subject} is not \
                 one of the subjects 0 to 7 defined by RFC 3463, so only the class can be read. \
                 {class_meaning}"
            ),
            likely_causes: vec![
                "A server-specific or mistyped code; the text of the reply says more.".to_owned(),
            ],
            what_to_check: vec![
                "Read the text after the code and the basic reply code.".to_owned(),
            ],
            code,
            transient,
        };
    };
    Explanation {
        title: format!("{name} (unregistered detail {detail})"),
        meaning: format!(
            "The detail {detail} of {code} is not in the IANA registry of enhanced status codes \
             as relais knows it, so the code is explained by its class and subject only. \
             {class_meaning} {subject_meaning}"
        ),
        likely_causes: vec![
            "A server-specific detail code, a newer registration, or a typing mistake.".to_owned(),
        ],
        what_to_check: vec![
            "Read the text of the reply; servers that invent detail codes usually explain them \
             there."
                .to_owned(),
            format!(
                "Look at the subject's general code, {}.{subject}.0, for the broad meaning.",
                code.split('.').next().unwrap_or("5")
            ),
        ],
        code,
        transient,
    }
}

/// Advice that only applies to one class of a code.
struct ClassNote {
    /// The class this advice is for.
    class: u8,
    /// The subject of the code.
    subject: u16,
    /// The detail of the code.
    detail: u16,
    /// Appended to the general meaning.
    meaning: &'static str,
    /// Put before the general causes.
    causes: &'static [&'static str],
    /// Put before the general checks.
    checks: &'static [&'static str],
}

static CLASS_NOTES: &[ClassNote] = &[
    ClassNote {
        class: 4,
        subject: 7,
        detail: 0,
        meaning: "As a temporary code, 4.7.0 is used for greylisting and other deferrals on \
                  policy grounds, for a temporary authentication failure (454 4.7.0) and for \
                  TLS being unavailable for now.",
        causes: &[
            "Greylisting: the first attempt from an unknown sender/address pair is deferred on \
             purpose; a retry after a few minutes is accepted.",
            "Rate or connection limits for the sending address.",
            "The authentication or TLS service of the server is temporarily unavailable.",
        ],
        checks: &[
            "Wait and retry from the same address: mail servers do this by themselves, and a \
             greylisting server accepts the retry (usually after 1 to 15 minutes).",
            "If it never clears, read the receiving server's log for the policy involved.",
        ],
    },
    ClassNote {
        class: 4,
        subject: 7,
        detail: 1,
        meaning: "As a temporary code, 4.7.1 very often means greylisting ('451 4.7.1 \
                  Greylisted, try again later') or another temporary policy decision.",
        causes: &[
            "Greylisting: the first attempt from an unknown sender/address pair is deferred on \
             purpose.",
            "A temporary policy block: rate limit, DNS block list lookup that failed, \
             temporary SPF or DNS error.",
        ],
        checks: &[
            "Retry later from the same address; a mail server's queue does it by itself, and \
             greylisting lets the retry through after a few minutes.",
            "If the deferral repeats for hours, it is not greylisting: read the reply text and \
             check block lists and rate limits.",
        ],
    },
    ClassNote {
        class: 5,
        subject: 7,
        detail: 1,
        meaning: "As a permanent code, 5.7.1 is what servers send for 'relay access denied', \
                  for senders or addresses they block, and for SPF or DMARC rejections.",
        causes: &[],
        checks: &[],
    },
    ClassNote {
        class: 4,
        subject: 4,
        detail: 1,
        meaning: "In a delay warning this usually means the receiving server could not be \
                  reached at all so far.",
        causes: &[],
        checks: &[
            "`relais probe` the recipient domain: it tells 'refused' (nothing listening) from \
             'timed out' (a firewall dropping packets) and 'host not found' (DNS).",
        ],
    },
    ClassNote {
        class: 2,
        subject: 0,
        detail: 0,
        meaning: "2.0.0 is the plain 'OK' of servers that send enhanced codes with every \
                  reply.",
        causes: &[],
        checks: &[],
    },
];

/// Every registered `X.subject.detail`, with the RFC that registered it in the meaning.
static CODES: &[(u16, u16, Entry)] = &[
    // X.0.x: other
    (
        0,
        0,
        entry(
            "Other undefined status",
            "Only the class is known: the server gives no more detail in the code (RFC 3463).",
            &["Many servers send x.0.0 with every reply of a class; the text is what counts."],
            &["Read the text of the reply and the basic reply code."],
        ),
    ),
    // X.1.x: addressing
    (
        1,
        0,
        entry(
            "Other address status",
            "Something about an address caused this, without more detail (RFC 3463). Servers \
             send 2.1.0 to accept a sender.",
            &["A problem with the sender or a recipient address."],
            &["Read the text; check both addresses."],
        ),
    ),
    (
        1,
        1,
        entry(
            "Bad destination mailbox address",
            "The recipient's mailbox does not exist: the part before the '@' is unknown at the \
             receiving server (RFC 3463).",
            &[
                "A typing mistake in the address.",
                "The account was deleted or renamed.",
                "The address is missing from the receiving server's user table, aliases or \
                 virtual domain maps.",
                "A reject rule with a custom text, such as 'No such person at this address'.",
            ],
            &[
                "Check the spelling of the recipient.",
                "On the receiving server, check the local user table, the aliases file \
                 (/etc/aliases and its rebuilt database) and the virtual domain maps for this \
                 address.",
                "`relais probe` with the recipient stops after RCPT TO and shows the server's \
                 exact answer.",
            ],
        ),
    ),
    (
        1,
        2,
        entry(
            "Bad destination system address",
            "The part after the '@' is wrong: that domain does not exist or does not take mail \
             (RFC 3463).",
            &[
                "A typing mistake in the domain.",
                "The domain has expired or has no MX or address records.",
            ],
            &["Look up the domain's MX and A/AAAA records (`relais dns`)."],
        ),
    ),
    (
        1,
        3,
        entry(
            "Bad destination mailbox address syntax",
            "The recipient address is not a valid address at all (RFC 3463).",
            &[
                "Spaces, a double '@', a trailing dot, missing angle brackets.",
                "Non-ASCII characters sent to a server without SMTPUTF8.",
            ],
            &["Write it as RCPT TO:<local@domain> and check each character."],
        ),
    ),
    (
        1,
        4,
        entry(
            "Destination mailbox address ambiguous",
            "The address matches more than one mailbox at the receiving system, which cannot \
             choose (RFC 3463).",
            &["The receiving system matches names loosely (for example on a directory)."],
            &["Use a more precise address."],
        ),
    ),
    (
        1,
        5,
        entry(
            "Destination address valid",
            "The recipient is accepted; this is a success code (RFC 3463), typically '250 \
             2.1.5'.",
            &["Normal acceptance of RCPT TO."],
            &["Nothing to fix."],
        ),
    ),
    (
        1,
        6,
        entry(
            "Destination mailbox has moved, no forwarding address",
            "The address used to work but no longer takes mail, and no new address is known \
             (RFC 3463).",
            &["The person left or changed address."],
            &["Ask the recipient for their new address; remove the old one from lists."],
        ),
    ),
    (
        1,
        7,
        entry(
            "Bad sender's mailbox address syntax",
            "The sender address given in MAIL FROM is not valid (RFC 3463).",
            &[
                "Missing angle brackets or a malformed address in MAIL FROM.",
                "A script or device sending with an empty or local-only address.",
            ],
            &["Use MAIL FROM:<user@your-domain> with a full, valid address."],
        ),
    ),
    (
        1,
        8,
        entry(
            "Bad sender's system address",
            "The domain of the sender address does not exist or cannot take replies (RFC \
             3463): it has no MX and no address record. In class 4 it is often a DNS lookup \
             that failed for now ('450 4.1.8 Sender address rejected: Domain not found').",
            &[
                "The sender uses a made-up or internal domain (such as a .local name).",
                "The sender domain's DNS is broken or temporarily unreachable.",
            ],
            &[
                "Send with an address in a real domain you own, the same as the mail server's.",
                "Look up the sender domain's MX and A records (`relais dns`).",
            ],
        ),
    ),
    (
        1,
        9,
        entry(
            "Message relayed to non-compliant mailer",
            "The address was valid but the message was passed to a system that does not \
             report delivery status, so nothing more can be said (RFC 3886).",
            &["A gateway to another mail system or an old server along the path."],
            &["Usually nothing to fix; ask the recipient whether it arrived."],
        ),
    ),
    (
        1,
        10,
        entry(
            "Recipient address has null MX",
            "The recipient's domain publishes a 'null MX' (preference 0, host '.'): it accepts \
             no mail at all (RFC 7505). Often sent with 556.",
            &["The domain is not meant to receive mail, or the address is mistyped."],
            &["Look up the domain's MX record (`relais dns`) and check the address."],
        ),
    ),
    // X.2.x: mailbox
    (
        2,
        0,
        entry(
            "Other or undefined mailbox status",
            "The mailbox exists but something about it caused this (RFC 3463).",
            &["A mailbox-level problem the server does not detail."],
            &["Read the text; ask the recipient or their administrator."],
        ),
    ),
    (
        2,
        1,
        entry(
            "Mailbox disabled, not accepting messages",
            "The mailbox exists but does not take mail, for now or for good (RFC 3463).",
            &["The account is suspended, locked or being migrated."],
            &["Contact the recipient by other means; their administrator can re-enable it."],
        ),
    ),
    (
        2,
        2,
        entry(
            "Mailbox full",
            "The recipient is over their quota (RFC 3463). It is meant to be temporary (4.2.2) \
             since the recipient can delete mail, but many servers send 5.2.2.",
            &["The recipient's mailbox reached its size or message-count limit."],
            &[
                "Nothing to fix on the sending side: the recipient must make room. Mail servers \
                 retry 4.2.2 for a while.",
            ],
        ),
    ),
    (
        2,
        3,
        entry(
            "Message length exceeds administrative limit",
            "The message is bigger than the limit set for this mailbox, which is lower than the \
             system's general limit (RFC 3463).",
            &["A per-mailbox size limit."],
            &["Send a smaller message, or share large files another way."],
        ),
    ),
    (
        2,
        4,
        entry(
            "Mailing list expansion problem",
            "The address is a mailing list that could not be expanded into its members (RFC \
             3463).",
            &["The list's member source (file, database, LDAP) failed or is empty."],
            &["On the list server, check the list definition and where it reads members from."],
        ),
    ),
    // X.3.x: mail system
    (
        3,
        0,
        entry(
            "Other or undefined mail system status",
            "The receiving system normally takes mail, but something about it caused this \
             (RFC 3463).",
            &["A problem on the receiving server that the code does not detail."],
            &["Read the text; the receiving server's log has the reason."],
        ),
    ),
    (
        3,
        1,
        entry(
            "Mail system full",
            "The receiving system has run out of storage (RFC 3463); this is a system limit, \
             not one recipient's quota. relais answers '452 4.3.1' before its own disk fills.",
            &[
                "The spool or mailbox disk is full.",
                "The queue was filled by spam or a loop.",
            ],
            &[
                "On the receiving server: check free disk space on the spool and mailbox \
                 filesystems and the size of the queue.",
            ],
        ),
    ),
    (
        3,
        2,
        entry(
            "System not accepting network messages",
            "The receiving host is not taking mail now (shutdown, maintenance, overload) or at \
             all (RFC 3463; '521 5.3.2' in RFC 7504).",
            &["Maintenance, overload, or a host that is not a mail server."],
            &["Retry later; check that the MX records point at the right hosts (`relais dns`)."],
        ),
    ),
    (
        3,
        3,
        entry(
            "System not capable of selected features",
            "The message asks for features the receiving system does not support (RFC 3463).",
            &["An ESMTP feature or parameter the next hop cannot provide."],
            &["Compare what the message needs with the EHLO reply of the next hop."],
        ),
    ),
    (
        3,
        4,
        entry(
            "Message too big for system",
            "The message is larger than the receiving system's size limit (RFC 3463), usually \
             sent as '552 5.3.4'.",
            &[
                "The message, after base64 encoding of attachments (about a third larger), \
                 exceeds the SIZE limit advertised in the EHLO reply.",
            ],
            &[
                "Compare the message size with the SIZE value in the EHLO reply (`relais probe` \
                 shows it); on your own server, raise the message size limit if it is too low.",
                "Share large files by another means.",
            ],
        ),
    ),
    (
        3,
        5,
        entry(
            "System incorrectly configured",
            "The receiving system is set up in a way that prevents it from accepting this \
             message (RFC 3463).",
            &[
                "The domain is pointed at this server (MX) but the server is not configured to \
                 accept mail for it.",
                "A broken transport or delivery setting on the receiving side.",
            ],
            &["Check the receiving server's list of local and relay domains and its log."],
        ),
    ),
    (
        3,
        6,
        entry(
            "Requested priority was changed",
            "The message was accepted, but not at the priority asked for (RFC 6710, \
             MT-PRIORITY); the text gives the new priority.",
            &["The server's policy caps the priority this sender may use."],
            &["Nothing to fix unless the priority matters."],
        ),
    ),
    // X.4.x: network and routing
    (
        4,
        0,
        entry(
            "Other or undefined network or routing status",
            "Something went wrong in the network or routing, without more detail (RFC 3463).",
            &["A network or DNS problem between the servers."],
            &["Read the text; `relais probe` the destination to see which stage fails."],
        ),
    ),
    (
        4,
        1,
        entry(
            "No answer from host",
            "The connection attempt to the next server got no answer (RFC 3463).",
            &[
                "The destination server is down or not listening on port 25.",
                "A firewall drops the packets; many ISPs block outgoing port 25 from \
                 residential and cloud networks.",
            ],
            &[
                "`relais probe` the destination: 'refused' means nothing listens, 'timed out' \
                 means a firewall drops the packets.",
                "If your own outgoing port 25 is blocked, relay through your provider's \
                 submission server (port 587, with authentication).",
            ],
        ),
    ),
    (
        4,
        2,
        entry(
            "Bad connection",
            "The connection was made but broke before the message was through, by a time-out \
             or a poor connection (RFC 3463). Typical log wording: 'lost connection', \
             'conversation timed out'.",
            &[
                "A time-out on a slow link or a slow server, especially during large messages.",
                "A firewall or middle box cutting idle or long connections.",
                "A failed TLS handshake after STARTTLS.",
            ],
            &[
                "Retry; a mail server does so on its own.",
                "If it repeats with one destination, `relais probe` it and look at the timing \
                 of each stage and at STARTTLS.",
            ],
        ),
    ),
    (
        4,
        3,
        entry(
            "Directory server failure",
            "A directory the server needed (DNS, LDAP) did not answer, so the message could \
             not be routed (RFC 3463).",
            &["The server's DNS resolver or LDAP directory is down or unreachable."],
            &["On the server that reported it, test its resolver and directory connections."],
        ),
    ),
    (
        4,
        4,
        entry(
            "Unable to route",
            "No route to the destination could be found: DNS gave no usable MX or address for \
             the domain (RFC 3463).",
            &[
                "The domain has no MX and no A/AAAA record, or only an SOA.",
                "A typing mistake in the domain.",
            ],
            &["Look up the domain's MX and A/AAAA records (`relais dns`)."],
        ),
    ),
    (
        4,
        5,
        entry(
            "Mail system congestion",
            "The mail system was too busy to deliver the message now (RFC 3463).",
            &["The receiving side or a relay on the way is overloaded."],
            &["Retry later; if it is your server, look at its queue and load."],
        ),
    ),
    (
        4,
        6,
        entry(
            "Routing loop detected",
            "The message went round in circles and was stopped (RFC 3463): too many hops \
             (Received headers), or a server that finds it would send the mail to itself.",
            &[
                "An MX record pointing back at the sending server ('mail for domain loops back \
                 to myself').",
                "Two forwards or aliases pointing at each other.",
                "Two servers each thinking the other is the final destination.",
            ],
            &[
                "Check the domain's MX records and the local-domain list of each server.",
                "Check forwards and aliases of the addresses involved.",
            ],
        ),
    ),
    (
        4,
        7,
        entry(
            "Delivery time expired",
            "The message stayed in a queue longer than allowed and was given up (RFC 3463).",
            &[
                "Repeated temporary failures over days; the real reason is the earlier \
                 deferral.",
            ],
            &[
                "Look in the bounce or the queue log for the last temporary error before the \
                 expiry, and fix that.",
            ],
        ),
    ),
    // X.5.x: protocol
    (
        5,
        0,
        entry(
            "Other or undefined protocol status",
            "Something was wrong in the SMTP exchange, without more detail (RFC 3463).",
            &["A protocol problem the server does not detail."],
            &["Replay the session with `relais send` or `relais shell` and read each reply."],
        ),
    ),
    (
        5,
        1,
        entry(
            "Invalid command",
            "A command came out of order or is not supported (RFC 3463), as in '503 5.5.1' or \
             '502 5.5.1'.",
            &[
                "RCPT before MAIL, DATA before an accepted RCPT, AUTH twice.",
                "A command the server does not offer.",
            ],
            &["Check the order of commands and the EHLO list."],
        ),
    ),
    (
        5,
        2,
        entry(
            "Syntax error",
            "A command could not be understood, because its syntax is wrong or it is unknown \
             (RFC 3463); usually '500 5.5.2' or '501 5.5.2'.",
            &[
                "A typing mistake: telnet sends backspaces as characters.",
                "Talking to the wrong service or port.",
                "Invalid base64 during AUTH.",
            ],
            &[
                "Type the command again; `relais shell` offers line editing.",
                "Check that the banner is an SMTP 220 greeting.",
            ],
        ),
    ),
    (
        5,
        3,
        entry(
            "Too many recipients",
            "The message has more recipients than the server takes in one transaction (RFC \
             3463). As 4.5.3 (often '452 4.5.3') the client should send the rest in another \
             transaction.",
            &["A message to a long list of recipients."],
            &["Split the recipients into several transactions or messages."],
        ),
    ),
    (
        5,
        4,
        entry(
            "Invalid command arguments",
            "A valid command had an argument out of range or not recognized (RFC 3463); often \
             '501 5.5.4'.",
            &[
                "HELO/EHLO without a host name, or with one the server refuses.",
                "An unknown ESMTP parameter or a bad value for it.",
            ],
            &["Give EHLO a fully qualified name; use only parameters from the EHLO list."],
        ),
    ),
    (
        5,
        5,
        entry(
            "Wrong protocol version",
            "Client and server disagree on the protocol version and could not settle it (RFC \
             3463).",
            &[
                "A client speaking LMTP to an SMTP port, or the reverse.",
                "A client that needs an extension the server does not have.",
            ],
            &["Check the port and protocol the client is configured for."],
        ),
    ),
    (
        5,
        6,
        entry(
            "Authentication exchange line is too long",
            "A base64 line sent during AUTH was longer than the server accepts for this \
             mechanism (RFC 4954), typically '500 5.5.6'.",
            &["Very large credentials or tokens (such as OAuth tokens) in one line."],
            &["Check the client's AUTH mechanism and the server's line length limit."],
        ),
    ),
    // X.6.x: content and media
    (
        6,
        0,
        entry(
            "Other or undefined media error",
            "Something in the content made the message undeliverable, without more detail (RFC \
             3463). Content and spam filters often use it.",
            &["A content filter rejected the message."],
            &["Read the text; check what the filter objected to."],
        ),
    ),
    (
        6,
        1,
        entry(
            "Media not supported",
            "The kind of content is not supported by the delivery protocol or the next system \
             (RFC 3463).",
            &["A content type or attachment type blocked or not handled by the receiver."],
            &["Send the content in another format or as another attachment type."],
        ),
    ),
    (
        6,
        2,
        entry(
            "Conversion required and prohibited",
            "The content would have to be converted to be delivered, and conversion is not \
             allowed by the sender or the sending host (RFC 3463).",
            &["8-bit or binary content towards a hop that needs 7-bit, with conversion forbidden."],
            &["Send the message in a 7-bit safe encoding (quoted-printable or base64)."],
        ),
    ),
    (
        6,
        3,
        entry(
            "Conversion required but not supported",
            "The content would have to be converted for the next hop but this host cannot do \
             it (RFC 3463), for example downgrading 8-bit to 7-bit.",
            &["A next hop without 8BITMIME receiving 8-bit content."],
            &["Send the message in a 7-bit safe encoding."],
        ),
    ),
    (
        6,
        4,
        entry(
            "Conversion with loss performed",
            "The message was delivered but had to be converted, and some data was lost (RFC \
             3463). It is a failure if the sender forbade lossy conversion.",
            &["A gateway converted content it could not represent exactly."],
            &["Check with the recipient what arrived."],
        ),
    ),
    (
        6,
        5,
        entry(
            "Conversion failed",
            "A needed conversion of the content did not succeed (RFC 3463).",
            &["Malformed content, or a converter error."],
            &["Check the message's MIME structure and encoding."],
        ),
    ),
    (
        6,
        6,
        entry(
            "Message content not available",
            "The content to send could not be fetched from the place it is stored (RFC 4468, \
             BURL submission).",
            &["The submission server could not retrieve the message from the IMAP server."],
            &["Check the URL and the trust between the submission server and the IMAP server."],
        ),
    ),
    (
        6,
        7,
        entry(
            "Non-ASCII addresses not permitted for that sender/recipient",
            "An address with non-ASCII characters was given, and it is not allowed here (RFC \
             6531, SMTPUTF8).",
            &[
                "The server or this hop does not support SMTPUTF8.",
                "The client did not ask for SMTPUTF8 (MAIL FROM:<...> SMTPUTF8).",
            ],
            &[
                "Check that SMTPUTF8 appears in the EHLO reply (`relais probe`) and that the \
                 client uses it; otherwise use an ASCII address.",
            ],
        ),
    ),
    (
        6,
        8,
        entry(
            "UTF-8 string reply is required, but not permitted by the SMTP client",
            "The server would have to answer with UTF-8 (to show a mailbox name), but the \
             client did not allow it (RFC 6531).",
            &["A client without SMTPUTF8 asking about an internationalized mailbox."],
            &["Use a client that supports SMTPUTF8."],
        ),
    ),
    (
        6,
        9,
        entry(
            "UTF-8 header message cannot be transferred to one or more recipients",
            "The message has UTF-8 headers and cannot be passed on to a recipient whose \
             server lacks SMTPUTF8, so it is rejected (RFC 6531).",
            &["A recipient's server does not support SMTPUTF8."],
            &["Send to that recipient with ASCII-only headers and address."],
        ),
    ),
    (
        6,
        10,
        entry(
            "Duplicate of X.6.8 (deprecated)",
            "Registered by mistake as a copy of X.6.8 and deprecated; read it as X.6.8: a \
             UTF-8 reply is needed but the client does not allow it (RFC 6531).",
            &["A server still using the deprecated code."],
            &["Treat as X.6.8."],
        ),
    ),
    // X.7.x: security and policy
    (
        7,
        0,
        entry(
            "Other or undefined security status",
            "Something related to security or policy caused this, without more detail (RFC \
             3463). Common forms: '530 5.7.0 Authentication required', '454 4.7.0' \
             (temporary authentication failure) and '235 2.7.0' (authentication succeeded).",
            &[
                "The server requires authentication or TLS first.",
                "A policy the server prefers not to describe.",
            ],
            &[
                "Enable SMTP authentication in the client, over STARTTLS (587) or TLS (465).",
                "Read the text of the reply.",
            ],
        ),
    ),
    (
        7,
        1,
        entry(
            "Delivery not authorized, message refused",
            "The sender is not allowed to send this message to this destination (RFC 3463). It \
             covers any filtering by host, sender or recipient, so the text matters.",
            &[
                "Relaying refused: the client asked for delivery to an outside domain without \
                 being authenticated or in the server's relay networks ('554 5.7.1 Relay \
                 access denied').",
                "The sender failed SPF, DKIM or DMARC checks at the receiver.",
                "The sending address is on a block list, or the sender or recipient is on a \
                 local deny list.",
            ],
            &[
                "Read the text: 'relay', 'SPF', 'blocked using', 'policy' each point to a \
                 different fix.",
                "For relaying: authenticate (SMTP AUTH on port 587 with STARTTLS) or add the \
                 client's network to the relay networks of the server.",
                "For SPF: check that the SPF record of the sender's domain lists the sending \
                 address (`relais dns` evaluates it).",
                "Check DNS block lists for the sending address (`relais dns`).",
            ],
        ),
    ),
    (
        7,
        2,
        entry(
            "Mailing list expansion prohibited",
            "The sender may not send to this mailing list (RFC 3463).",
            &["The list accepts posts from members or moderators only."],
            &["Post from a subscribed address, or ask the list owner."],
        ),
    ),
    (
        7,
        3,
        entry(
            "Security conversion required but not possible",
            "Delivery needed converting from one secure messaging format to another, which \
             could not be done (RFC 3463).",
            &["A gateway between secure messaging systems."],
            &["Send without that protection, or through a compatible path."],
        ),
    ),
    (
        7,
        4,
        entry(
            "Security features not supported",
            "A security feature of the message or session is not supported here (RFC 3463). \
             Servers also use it for an unknown AUTH mechanism ('504 5.7.4 Unrecognized \
             authentication type').",
            &["An AUTH mechanism or security feature the server does not offer."],
            &["Use a mechanism from the AUTH line of the EHLO reply."],
        ),
    ),
    (
        7,
        5,
        entry(
            "Cryptographic failure",
            "A system entitled to check or decrypt the message could not, because a key or \
             similar information was missing or wrong (RFC 3463).",
            &["Missing or invalid key material."],
            &["Check the keys and certificates involved."],
        ),
    ),
    (
        7,
        6,
        entry(
            "Cryptographic algorithm not supported",
            "A system entitled to check or decrypt the message does not support the algorithm \
             used (RFC 3463).",
            &["An old or unusual algorithm."],
            &["Use a widely supported algorithm."],
        ),
    ),
    (
        7,
        7,
        entry(
            "Message integrity failure",
            "The message was altered or corrupted on its way, so its integrity check failed \
             (RFC 3463).",
            &["Something on the path modified a signed message."],
            &["Find which hop rewrites the message (footers, encodings, line endings)."],
        ),
    ),
    (
        7,
        8,
        entry(
            "Authentication credentials invalid",
            "AUTH failed because the credentials are wrong or insufficient (RFC 4954), \
             normally '535 5.7.8'.",
            &[
                "Wrong user name or password; many servers want the full e-mail address as the \
                 user name.",
                "When testing by hand, base64 of the wrong text: a trailing newline from \
                 `echo`, or AUTH PLAIN without the two NUL separators ('\\0user\\0password').",
                "The account needs an app password, or is locked after failures.",
            ],
            &[
                "Encode with `printf '\\0%s\\0%s' user password | base64` for AUTH PLAIN, or \
                 `printf '%s' value | base64` for each AUTH LOGIN step; `relais shell` can do \
                 it for you.",
                "Read the failed login in the server's log.",
            ],
        ),
    ),
    (
        7,
        9,
        entry(
            "Authentication mechanism is too weak",
            "The chosen AUTH mechanism is weaker than the server's policy allows for this user \
             (RFC 4954), normally '534 5.7.9'.",
            &["The client picked an old mechanism."],
            &["Use a stronger mechanism from the EHLO list, over TLS."],
        ),
    ),
    (
        7,
        10,
        entry(
            "Encryption needed",
            "The requested authentication mechanism needs an encrypted connection first (RFC \
             5248; registered with the basic code 523).",
            &["A plain-text mechanism tried without TLS."],
            &["STARTTLS first (port 587), or TLS from the start (port 465)."],
        ),
    ),
    (
        7,
        11,
        entry(
            "Encryption required for requested authentication mechanism",
            "This mechanism may only be used over an encrypted connection (RFC 4954), normally \
             '538 5.7.11'.",
            &["AUTH PLAIN or LOGIN attempted before STARTTLS."],
            &["STARTTLS first (port 587), or TLS from the start (port 465)."],
        ),
    ),
    (
        7,
        12,
        entry(
            "A password transition is needed",
            "The user must first log in once with PLAIN (over TLS) before this mechanism can \
             work (RFC 4954), normally '432 4.7.12'.",
            &["The server lacks the stored secret this mechanism needs."],
            &["Authenticate once with AUTH PLAIN over TLS."],
        ),
    ),
    (
        7,
        13,
        entry(
            "User account disabled",
            "The login worked but the account is disabled, so retrying will not help until an \
             administrator re-enables it (RFC 5248; registered with the basic code 525).",
            &["Suspended for abuse, non-payment or suspected compromise."],
            &["Contact the administrator of the account."],
        ),
    ),
    (
        7,
        14,
        entry(
            "Trust relationship required",
            "The submission server needs a configured trust with a third-party server to fetch \
             the message content (RFC 5248; BURL).",
            &["BURL submission without the needed trust between servers."],
            &["Configure the trust between the submission and the IMAP server."],
        ),
    ),
    (
        7,
        15,
        entry(
            "Priority level is too low",
            "The message's priority is below what the server accepts now (RFC 6710); this may \
             be temporary.",
            &["The server only takes higher-priority messages at the moment."],
            &["Retry later or with a higher priority, if allowed."],
        ),
    ),
    (
        7,
        16,
        entry(
            "Message is too big for the specified priority",
            "The server accepts messages of this priority only below a certain size (RFC 6710).",
            &["A size cap tied to priority levels."],
            &["Send a smaller message or use another priority."],
        ),
    ),
    (
        7,
        17,
        entry(
            "Mailbox owner has changed",
            "The sender required that the mailbox has had the same owner since a given date \
             (RRVS, RFC 7293), and it has not.",
            &["The address was reassigned to a new person."],
            &["Confirm the recipient's current address before sending again."],
        ),
    ),
    (
        7,
        18,
        entry(
            "Domain owner has changed",
            "The sender required continuity of ownership (RRVS, RFC 7293), and the recipient's \
             domain changed owner since that date.",
            &["The domain was sold or expired and re-registered."],
            &["Confirm the recipient's address through another channel."],
        ),
    ),
    (
        7,
        19,
        entry(
            "RRVS test cannot be completed",
            "The receiver cannot check the ownership date asked for (RRVS, RFC 7293), because \
             it did not record it.",
            &["The receiver does not keep the needed history."],
            &["Decide whether to send again without the RRVS requirement."],
        ),
    ),
    (
        7,
        20,
        entry(
            "No passing DKIM signature found",
            "The receiver requires a valid DKIM signature and the message had none that \
             verified (RFC 7372).",
            &[
                "The sending server does not sign.",
                "The signature broke on the way (a footer added, headers rewritten).",
                "The public key is missing from DNS.",
            ],
            &[
                "Check DKIM signing on the sending side and the public key record \
                 (selector._domainkey.domain).",
            ],
        ),
    ),
    (
        7,
        21,
        entry(
            "No acceptable DKIM signature found",
            "The message had valid DKIM signatures, but none the receiver finds acceptable \
             (RFC 7372), for example from an unrelated domain or with a weak key.",
            &["Signed by a third party only, or with a key the receiver considers too weak."],
            &["Sign with the sender's own domain and a 2048-bit key."],
        ),
    ),
    (
        7,
        22,
        entry(
            "No valid author-matched DKIM signature found",
            "No valid DKIM signature matches the domain in the From header (RFC 7372), which is \
             what DMARC alignment needs.",
            &["The message is signed, but by a domain other than the From domain."],
            &["Sign with the From domain (or a parent of it)."],
        ),
    ),
    (
        7,
        23,
        entry(
            "SPF validation failed",
            "The sending server's address is not allowed by the SPF record of the sender's \
             domain, and the receiver refuses on that ground (RFC 7372).",
            &[
                "The sender's domain SPF record does not list this server (a new server, a \
                 new provider, a third-party sender).",
                "The mail was forwarded, so it comes from the forwarder's address.",
            ],
            &[
                "Check the SPF record of the sender's domain (the MAIL FROM domain) and that \
                 it includes the sending server's public address (`relais dns` evaluates it \
                 for an address).",
                "For forwarded mail, the forwarder should rewrite the sender (SRS).",
            ],
        ),
    ),
    (
        7,
        24,
        entry(
            "SPF validation error",
            "The SPF check could not be completed (RFC 7372): a temporary DNS error (4.7.24) or \
             a broken record (5.7.24).",
            &[
                "A syntax error in the SPF record, or more than one SPF record.",
                "More than 10 DNS lookups through include:, a, mx and redirect.",
                "The sender domain's DNS servers time out.",
            ],
            &[
                "Look up and check the sender domain's SPF record (`relais dns`); flatten \
                 includes if it needs more than 10 lookups.",
            ],
        ),
    ),
    (
        7,
        25,
        entry(
            "Reverse DNS validation failed",
            "The sending server's address has no reverse DNS (PTR) name, or that name does not \
             resolve back to the same address (RFC 7372).",
            &[
                "No PTR record for the sending address (the owner of the address block must \
                 set it, often the hosting provider).",
                "The PTR name does not point back to the address (not forward-confirmed).",
            ],
            &[
                "Look up the PTR of the sending address and the A/AAAA of that name (`relais \
                 dns`); the name should also match the HELO name and the banner.",
            ],
        ),
    ),
    (
        7,
        26,
        entry(
            "Multiple authentication checks failed",
            "Several sender authentication checks failed together, for example SPF and DKIM \
             (RFC 7372); in practice often a DMARC failure.",
            &["Neither SPF nor DKIM passes in alignment with the From domain."],
            &[
                "Check SPF for the sending address and DKIM signing for the From domain, then \
                 the domain's DMARC record (_dmarc.domain).",
            ],
        ),
    ),
    (
        7,
        27,
        entry(
            "Sender address has null MX",
            "The sender's domain publishes a 'null MX': it takes no mail, so replies and \
             bounces could never reach it, and the receiver refuses (RFC 7505).",
            &["Sending with an address in a domain that declares it receives no mail."],
            &["Send from a domain that can receive mail; check its MX (`relais dns`)."],
        ),
    ),
    (
        7,
        28,
        entry(
            "Mail flood detected",
            "The receiver sees this message as part of a flood of similar unwanted messages. \
             (The reference document of this registration is not confirmed here.)",
            &[
                "A burst of similar messages from the sender, such as a compromised account or \
                 a spam script.",
            ],
            &[
                "Look at what the sending server sent recently (queue size, per-user counts) \
                 and slow down or stop the source.",
            ],
        ),
    ),
    (
        7,
        29,
        entry(
            "ARC validation failure",
            "The message's ARC (Authenticated Received Chain) headers failed validation (RFC \
             8617).",
            &["An intermediary's ARC seal is broken or invalid."],
            &["Check the ARC sealing of the forwarders on the path."],
        ),
    ),
    (
        7,
        30,
        entry(
            "REQUIRETLS support required",
            "The message must travel over TLS all the way (REQUIRETLS, RFC 8689) and the next \
             hop does not support that, so it cannot be passed on.",
            &["A server on the path lacks REQUIRETLS or valid TLS."],
            &["Check REQUIRETLS in the EHLO reply of each hop, or send without the requirement."],
        ),
    ),
];
