//! Basic reply codes: the three digits at the start of every SMTP reply.
//!
//! RFC 5321 section 4.2 defines the codes and the meaning of each digit; the
//! AUTH (RFC 4954), STARTTLS (RFC 3207) and null-MX (RFC 7504) extensions
//! added a few more. A code that is not in [`CODES`] is explained from its
//! first two digits.

use super::{Entry, Explanation, entry, transient_for_class};

/// Explains a basic reply code; codes not in the table fall back to their
/// first two digits.
pub(super) fn explain(code: u16) -> Explanation {
    let transient = transient_for_class(code / 100);
    match lookup(code) {
        Some(e) => e.explanation(code.to_string(), transient),
        None => fallback(code, transient),
    }
}

/// The table row for `code`, if it has one.
pub(super) fn lookup(code: u16) -> Option<&'static Entry> {
    CODES.iter().find(|(c, _)| *c == code).map(|(_, e)| e)
}

/// What the first digit says (RFC 5321 section 4.2.1).
fn first_digit(d: u16) -> Option<(&'static str, &'static str)> {
    Some(match d {
        1 => (
            "positive preliminary",
            "1yz means 'accepted, but wait for another reply before going on'. SMTP itself has \
             no command that uses it, so a 1yz reply points at a non-SMTP service or a broken one.",
        ),
        2 => (
            "positive completion",
            "2yz means the command succeeded and the client may send the next one.",
        ),
        3 => (
            "positive intermediate",
            "3yz means the server accepted the command and waits for more (message data after \
             DATA, the next step of AUTH).",
        ),
        4 => (
            "transient negative completion",
            "4yz means the command failed for a reason that may go away: the client should try \
             again later, and a mail server keeps the message queued and retries by itself.",
        ),
        5 => (
            "permanent negative completion",
            "5yz means the command failed and repeating it unchanged will fail again: a mail \
             server bounces the message back to its sender.",
        ),
        _ => return None,
    })
}

/// What the second digit says (RFC 5321 section 4.2.1).
fn second_digit(d: u16) -> (&'static str, &'static str) {
    match d {
        0 => (
            "syntax",
            "x0z replies are about syntax: a command that is wrong, unknown or out of place.",
        ),
        1 => (
            "information",
            "x1z replies answer requests for information, such as status or help.",
        ),
        2 => (
            "connections",
            "x2z replies are about the connection itself (the transmission channel).",
        ),
        3 | 4 => (
            "unspecified",
            "RFC 5321 leaves x3z and x4z unspecified; the text of the reply is the only guide.",
        ),
        5 => (
            "mail system",
            "x5z replies report on the receiving mail system: mailboxes, storage, policy.",
        ),
        _ => (
            "not defined",
            "RFC 5321 defines second digits 0 to 5 only; this server does not follow the \
             standard here, so read the text of the reply.",
        ),
    }
}

fn fallback(code: u16, transient: Option<bool>) -> Explanation {
    let (first, second) = (code / 100, code / 10 % 10);
    let Some((kind, first_meaning)) = first_digit(first) else {
        return Explanation {
            code: format!("{code:03}"),
            title: "Not an SMTP reply code".to_owned(),
            meaning: format!(
                "SMTP reply codes start with a digit from 1 to 5; {code:03} does not, so it \
                 did not come from an SMTP server speaking the protocol."
            ),
            likely_causes: vec![
                "A typing mistake, or a number from another protocol or product.".to_owned(),
            ],
            what_to_check: vec![
                "Copy the code again from the log or the bounce message.".to_owned(),
            ],
            transient: None,
        };
    };
    let (group, second_meaning) = second_digit(second);
    Explanation {
        code: code.to_string(),
        title: format!("Unlisted {first}yz reply ({kind}, {group})"),
        meaning: format!(
            "{code} is not one of the reply codes defined by RFC 5321 or its extensions, so it \
             is read from its digits. {first_meaning} {second_meaning}"
        ),
        likely_causes: vec![
            "A server-specific code; its text usually says more than the number.".to_owned(),
        ],
        what_to_check: vec![
            "Read the text after the code, and the enhanced status code (x.y.z) if the server \
             sent one."
                .to_owned(),
            "Look for the same moment in the receiving server's log, which may give the \
             internal reason."
                .to_owned(),
        ],
        transient,
    }
}

/// Every reply code of RFC 5321 plus the ones added by AUTH, STARTTLS and RFC 7504.
static CODES: &[(u16, Entry)] = &[
    (
        211,
        entry(
            "System status, or system help reply",
            "An informational reply to a request for status or help. Rarely seen in practice.",
            &["The client sent HELP or a server-specific status command."],
            &["Nothing to fix: it is information, not an error."],
        ),
    ),
    (
        214,
        entry(
            "Help message",
            "The answer to HELP: text meant for a person, such as the list of supported \
             commands.",
            &["The client sent HELP."],
            &[
                "Nothing to fix. To see what the server really supports, read its EHLO reply \
                 (`relais probe` lists and explains each extension).",
            ],
        ),
    ),
    (
        220,
        entry(
            "Service ready",
            "The greeting (banner) a server sends as soon as a connection opens, usually \
             '220 <host name> ESMTP ...'. The same code answers STARTTLS: 'go ahead, start \
             TLS now'.",
            &[
                "Normal start of a session.",
                "If it arrives slowly: the server looks up the client's reverse DNS or checks \
                 DNS block lists before greeting, and its resolver is slow; the server is \
                 overloaded or at its connection limit; an antivirus or filtering proxy sits \
                 in front of it.",
            ],
            &[
                "The banner should come within a few seconds; the troubleshooting guides treat \
                 10 seconds as the point where something is wrong. `relais probe` times it.",
                "The host name in the banner should match the server's reverse DNS (PTR) name; \
                 `relais probe` compares the two.",
                "If the banner names a host you do not run, something between you and the \
                 server (often an ISP on port 25) is intercepting the connection.",
            ],
        ),
    ),
    (
        221,
        entry(
            "Service closing transmission channel",
            "The normal answer to QUIT: the server says goodbye and closes the connection.",
            &["The client sent QUIT."],
            &["Nothing to fix. A server that closes without being asked sends 421 instead."],
        ),
    ),
    (
        235,
        entry(
            "Authentication successful",
            "The answer to a successful AUTH (RFC 4954): the client is now logged in, and \
             servers usually let authenticated users relay mail to any destination.",
            &["Correct user name and password."],
            &["Nothing to fix."],
        ),
    ),
    (
        250,
        entry(
            "Requested mail action okay, completed",
            "The command worked. After the final '.' of DATA it means much more: the server has \
             taken responsibility for the message, and the text usually carries the queue id \
             it was filed under. After EHLO, the 250 lines list the server's extensions.",
            &["Normal success."],
            &[
                "To follow a message, search the server's log for the queue id in this reply \
                 (for example `grep <id> /var/log/exim_mainlog`, or the relais log, where \
                 every line about a message carries its id).",
            ],
        ),
    ),
    (
        251,
        entry(
            "User not local; will forward",
            "The recipient is accepted, but the server will forward the message to another \
             address or system rather than deliver it locally.",
            &["A forward or alias is set up for this recipient."],
            &[
                "Nothing to fix, unless the forwarding is a surprise: then check aliases and forwards.",
            ],
        ),
    ),
    (
        252,
        entry(
            "Cannot verify user, but will accept message and attempt delivery",
            "The usual answer to VRFY on a server that does not reveal which addresses exist \
             (to stop address harvesting). It does not mean the address exists.",
            &[
                "VRFY is disabled, as it should be on an Internet-facing server (relais answers \
                 VRFY with 252 by default).",
            ],
            &["To test an address, use RCPT TO in a session instead of VRFY."],
        ),
    ),
    (
        334,
        entry(
            "Server challenge (AUTH in progress)",
            "Sent during AUTH (RFC 4954): the server waits for the next base64 line. With AUTH \
             LOGIN the prompts decode to 'Username:' (VXNlcm5hbWU6) and 'Password:' \
             (UGFzc3dvcmQ6).",
            &["Normal step of AUTH."],
            &[
                "Answer each prompt with base64 of exactly the text, no newline: \
                 `printf '%s' 'user@example.org' | base64` (plain `echo` adds a newline and \
                 gives the wrong value). `relais shell` can do the encoding for you.",
            ],
        ),
    ),
    (
        354,
        entry(
            "Start mail input; end with <CRLF>.<CRLF>",
            "The answer to DATA: send the message now, headers first, then an empty line, then \
             the body, and finish with a line holding only a dot.",
            &["Normal step after DATA."],
            &[
                "A body line that starts with a dot must be sent with the dot doubled \
                 (dot-stuffing); `relais send` and `relais shell` do it for you.",
                "If the server never answers after your final dot, the dot was not alone on \
                 its line.",
            ],
        ),
    ),
    (
        421,
        entry(
            "Service not available, closing transmission channel",
            "The server will not continue this session now and closes the connection. It is \
             temporary: a mail server keeps the message and tries again later. It can come \
             instead of the banner, or in the middle of a session.",
            &[
                "Too many connections or messages from your address: connection or rate \
                 limits.",
                "The server is shutting down, restarting or overloaded.",
                "You were idle too long, or made too many errors, and the server timed you out.",
                "A policy deferral at connection time, often with 4.7.x: greylisting, or a DNS \
                 block list lookup that failed.",
                "An ISP blocks or intercepts outgoing port 25 and its proxy answers 421 (Outlook \
                 shows this as 0x800CCC67).",
            ],
            &[
                "Read the text and the enhanced code: 4.7.x points at policy (greylisting, \
                 limits, block lists), 4.3.x at the server's own state.",
                "Wait and retry; for a mail server this is automatic.",
                "On the receiving side, check the connection and rate limits per client \
                 address.",
                "From a desktop, try the submission port 587 with authentication instead of 25, \
                 and run `relais probe` from another network to see if the 421 follows you.",
            ],
        ),
    ),
    (
        432,
        entry(
            "A password transition is needed",
            "Sent with 4.7.12 in answer to AUTH (RFC 4954): the account must log in once with \
             the PLAIN mechanism (over TLS) before the mechanism just tried can work.",
            &["The server stores passwords in a form the requested mechanism cannot use yet."],
            &["Authenticate once with AUTH PLAIN over TLS, then retry with the other mechanism."],
        ),
    ),
    (
        450,
        entry(
            "Requested mail action not taken: mailbox unavailable (temporary)",
            "The server cannot accept this recipient or message right now but might later. \
             A mail server keeps the message queued and retries.",
            &[
                "Greylisting: the first attempt from an unknown sender is deferred on purpose \
                 (often '450 4.2.0' or '450 4.7.1 Greylisted').",
                "The mailbox is busy or locked.",
                "A DNS lookup needed to check the sender or the recipient failed for now \
                 (for example 4.1.8: sender domain not found).",
                "A recipient check against another server (callout, LDAP) did not answer.",
            ],
            &[
                "Retry later; a greylisting server accepts the retry after a few minutes.",
                "Read the enhanced code and the text, and look for the same moment in the \
                 receiving server's log.",
            ],
        ),
    ),
    (
        451,
        entry(
            "Requested action aborted: local error in processing",
            "Something went wrong on the receiving server while handling the command; the \
             problem is expected to be temporary. A mail server keeps the message and retries.",
            &[
                "A content filter, antivirus or policy service behind the server failed or \
                 timed out.",
                "A database, LDAP or DNS lookup failed for now.",
                "Greylisting: many servers defer first attempts with '451 4.7.1'.",
                "An SPF check hit a temporary DNS error (4.7.24 on some servers).",
                "The server ran short of resources (disk, memory, processes).",
            ],
            &[
                "Retry later; if it persists, the receiving server's log at that moment has the \
                 real reason.",
                "If you run the receiving side: check the filters and services it calls, and \
                 free disk space on the spool.",
            ],
        ),
    ),
    (
        452,
        entry(
            "Requested action not taken: insufficient system storage",
            "The server has no room for the message now. It also answers 452 (with 4.5.3) when \
             a message has more recipients than it takes at once: the client should send the \
             rest in another transaction.",
            &[
                "The disk or the queue of the receiving server is full; spam flooding the \
                 queue is a classic cause.",
                "Too many recipients in one transaction (4.5.3).",
                "The recipient's mailbox is over quota (4.2.2).",
            ],
            &[
                "On the receiving server: free disk space, look at the queue size and at who \
                 filled it. relais itself refuses with 452 4.3.1 before its disk fills up.",
                "For 4.5.3, nothing to do: a correct client sends the remaining recipients \
                 later.",
            ],
        ),
    ),
    (
        454,
        entry(
            "Temporary authentication failure, or TLS not available",
            "After AUTH (RFC 4954, with 4.7.0): the server could not check the credentials \
             right now. After STARTTLS (RFC 3207): TLS cannot be started for a temporary \
             reason.",
            &[
                "The password database or authentication service behind the server is down or \
                 slow.",
                "The server's certificate or key cannot be read, or TLS is misconfigured.",
            ],
            &[
                "Retry later; if it persists, check the authentication backend and the TLS \
                 configuration in the server's log.",
                "`relais probe` shows whether STARTTLS succeeds and what certificate comes back.",
            ],
        ),
    ),
    (
        455,
        entry(
            "Server unable to accommodate parameters",
            "The server understood the parameters given with MAIL FROM or RCPT TO (such as \
             SIZE= or NOTIFY=) but cannot honour them right now.",
            &["A temporary resource limit tied to an ESMTP parameter."],
            &["Retry later, or send without the optional parameter."],
        ),
    ),
    (
        500,
        entry(
            "Syntax error, command unrecognized",
            "The server did not understand the command at all: 'Command not recognized'. With \
             5.5.6 in answer to AUTH it means the base64 line was too long.",
            &[
                "A typing mistake. Windows telnet sends backspaces as characters, so a corrected \
                 command still arrives wrong.",
                "The line is too long, or commands were sent before the banner.",
                "You are not talking to an SMTP server (wrong port, or a TLS-only port such as \
                 465 spoken to in plain text).",
                "A firewall with 'SMTP inspection' rewrites commands it does not know into \
                 XXXX.",
            ],
            &[
                "Type the command again on a fresh line; `relais shell` offers line editing so \
                 typos do not reach the server.",
                "Check the banner: it must be an SMTP 220 greeting from the server you expect.",
                "Check the EHLO reply for the commands the server supports.",
            ],
        ),
    ),
    (
        501,
        entry(
            "Syntax error in parameters or arguments",
            "The command is known but its argument is wrong.",
            &[
                "An address without angle brackets (`MAIL FROM:user@example.org` instead of \
                 `MAIL FROM:<user@example.org>`) on a strict server.",
                "A malformed address (5.1.3 for a recipient, 5.1.7 for the sender).",
                "HELO or EHLO without a name, or with a name the server rejects (5.5.4).",
                "A line of AUTH that is not valid base64 (5.5.2).",
            ],
            &[
                "Write MAIL FROM:<address> and RCPT TO:<address> exactly, brackets included.",
                "Give EHLO a fully qualified host name that resolves.",
            ],
        ),
    ),
    (
        502,
        entry(
            "Command not implemented",
            "The server knows the command but does not offer it.",
            &[
                "VRFY, EXPN, ETRN or TURN are turned off.",
                "AUTH is not offered on this port, or not before STARTTLS.",
            ],
            &[
                "Read the EHLO reply: only the extensions listed there are available. \
                 `relais probe` shows the list before and after STARTTLS.",
            ],
        ),
    ),
    (
        503,
        entry(
            "Bad sequence of commands",
            "The command came at the wrong moment.",
            &[
                "RCPT before MAIL, DATA before any accepted RCPT, MAIL before EHLO/HELO.",
                "Every RCPT was rejected earlier, so DATA has no recipient: look at the earlier \
                 replies.",
                "AUTH sent twice, or AUTH sent when the server does not offer it ('503 5.5.1 \
                 authentication not enabled').",
                "A client pipelining commands to a server that did not advertise PIPELINING.",
            ],
            &[
                "Replay the session in order: EHLO, (STARTTLS, EHLO, AUTH), MAIL FROM, RCPT TO, \
                 DATA.",
                "Look at the reply to each RCPT TO before DATA.",
            ],
        ),
    ),
    (
        504,
        entry(
            "Command parameter not implemented",
            "The command is known but this parameter of it is not supported.",
            &[
                "AUTH with a mechanism the server does not offer (often 504 5.7.4 \
                 'Unrecognized authentication type').",
            ],
            &["Use a mechanism listed on the AUTH line of the EHLO reply."],
        ),
    ),
    (
        521,
        entry(
            "Host does not accept mail",
            "This host never accepts mail (RFC 7504, with 5.3.2). A host can answer this way on \
             port 25 to say that it is not a mail server.",
            &[
                "The MX or A record of the domain points at a machine that is not the mail \
                 server.",
                "The domain deliberately accepts no mail.",
            ],
            &[
                "Check the MX records of the recipient domain (`relais dns`), and that they \
                 name the real mail servers.",
            ],
        ),
    ),
    (
        530,
        entry(
            "Authentication required, or must issue STARTTLS first",
            "The server wants the client to log in (RFC 4954, '530 5.7.0 Authentication \
             required') or to start TLS (RFC 3207, '530 5.7.0 Must issue a STARTTLS command \
             first') before it will go on.",
            &[
                "The mail client sends without logging in: in Outlook, 'My outgoing server \
                 (SMTP) requires authentication' is not ticked.",
                "The client tried AUTH or MAIL before STARTTLS on a server that requires TLS.",
            ],
            &[
                "Turn on SMTP authentication in the client, with STARTTLS on port 587 or TLS \
                 on port 465.",
                "`relais probe` shows whether the server offers AUTH before TLS, after TLS, or \
                 not at all.",
            ],
        ),
    ),
    (
        534,
        entry(
            "Authentication mechanism is too weak",
            "Sent with 5.7.9 (RFC 4954): the server refuses this mechanism for this account; \
             a stronger one is required.",
            &["The client chose a mechanism the server's policy no longer allows for this user."],
            &["Use another mechanism from the AUTH line of the EHLO reply, over TLS."],
        ),
    ),
    (
        535,
        entry(
            "Authentication credentials invalid",
            "Sent with 5.7.8 (RFC 4954): the user name or password was not accepted.",
            &[
                "Wrong password or user name; many servers want the full e-mail address as the \
                 user name.",
                "When testing by hand: the base64 was made with a trailing newline, or of the \
                 wrong string. AUTH PLAIN takes base64 of '\\0user\\0password'; AUTH LOGIN takes \
                 the user name and the password separately.",
                "The account needs an app password (multi-factor authentication), is locked, \
                 or is being rate-limited after failures.",
            ],
            &[
                "Encode with `printf '\\0%s\\0%s' user password | base64` for PLAIN, or \
                 `printf '%s' user | base64` for each LOGIN step; never plain `echo`. \
                 `relais shell` can do it for you.",
                "Look at the server's log for the failed login and its reason.",
            ],
        ),
    ),
    (
        538,
        entry(
            "Encryption required for requested authentication mechanism",
            "Sent with 5.7.11 (RFC 4954): this mechanism (typically PLAIN or LOGIN, which send \
             the password readably) is only allowed over an encrypted connection.",
            &["The client tried to authenticate before STARTTLS."],
            &["Issue STARTTLS first (port 587), or use TLS from the start (port 465)."],
        ),
    ),
    (
        550,
        entry(
            "Requested action not taken: mailbox unavailable",
            "The general permanent refusal. The reason is in the enhanced code and the text: at \
             RCPT TO it is usually 'no such user' (5.1.1) or 'relaying denied' (5.7.1); at \
             MAIL FROM a rejected sender (SPF, unknown domain); at the banner or after DATA a \
             policy decision (block list, spam, content).",
            &[
                "The recipient does not exist (5.1.1); servers may use their own wording, such \
                 as 'No such person at this address'.",
                "Relaying refused: the client is neither authenticated nor in the server's \
                 trusted networks (5.7.1).",
                "The sender failed SPF or another authentication check (5.7.1, 5.7.23, 5.7.26).",
                "The sending address is on a DNS block list.",
            ],
            &[
                "For an unknown recipient: check the spelling, then the receiving server's \
                 user table, aliases and virtual domains.",
                "For relaying: authenticate (port 587), or add the client's network to the \
                 relay networks of the server.",
                "For SPF: check the SPF record of the sender's domain lists the sending address \
                 (`relais dns`).",
            ],
        ),
    ),
    (
        551,
        entry(
            "User not local; please try <forward-path>",
            "The recipient is not handled here; the server may give the address to use \
             instead, but will not forward the message itself.",
            &[
                "The person moved and the old server knows the new address.",
                "Some servers use 551 to refuse relaying.",
            ],
            &[
                "Send to the address given in the text, or authenticate if this was meant to be \
                 relayed.",
            ],
        ),
    ),
    (
        552,
        entry(
            "Requested mail action aborted: exceeded storage allocation",
            "The message does not fit: it is larger than the server accepts (5.3.4), or the \
             recipient's mailbox is over its quota (5.2.2).",
            &[
                "The message is bigger than the SIZE limit the server advertises in its EHLO \
                 reply. Attachments grow by about a third when encoded in base64.",
                "The recipient's mailbox is full.",
            ],
            &[
                "Compare the message size with the SIZE value in the EHLO reply \
                 (`relais probe` shows it).",
                "Send large files another way, or ask the recipient to clear their mailbox.",
            ],
        ),
    ),
    (
        553,
        entry(
            "Requested action not taken: mailbox name not allowed",
            "The address is refused as written or as used.",
            &[
                "Malformed address (5.1.3, 5.1.7).",
                "The authenticated user may not send as this sender address ('Sender address \
                 rejected: not owned by user').",
                "Some servers (qmail among them) use 553 for 'relaying denied: the domain is \
                 not in my list of allowed recipient hosts'.",
            ],
            &[
                "Check the address syntax and that the sender address belongs to the account \
                 that logged in.",
                "For relaying, authenticate or send from a trusted network.",
            ],
        ),
    ),
    (
        554,
        entry(
            "Transaction failed",
            "A permanent failure that fits no narrower code. As the banner it means 'no SMTP \
             service here' for you; after DATA, the message was refused; at RCPT TO it is often \
             a relay refusal ('554 5.7.1 Relay access denied', as Postfix and relais say it).",
            &[
                "The connecting address is on a DNS block list ('Client host blocked using ...').",
                "Relaying refused: not authenticated, not from a trusted network.",
                "The content was judged spam or carried a virus.",
            ],
            &[
                "Check whether the sending address is listed on block lists (`relais dns`) and \
                 request delisting after fixing the cause.",
                "For relaying, authenticate (port 587) or add the client network to the relay \
                 networks.",
                "Read the receiving server's log or the text for the filter that decided.",
            ],
        ),
    ),
    (
        555,
        entry(
            "MAIL FROM/RCPT TO parameters not recognized or not implemented",
            "The client added an ESMTP parameter (such as SIZE=, BODY=8BITMIME, SMTPUTF8, \
             NOTIFY=) that the server does not support.",
            &[
                "The client used an extension the server never advertised, for example after \
                 greeting with HELO instead of EHLO.",
            ],
            &["Compare the parameters sent with the extensions listed in the EHLO reply."],
        ),
    ),
    (
        556,
        entry(
            "Domain does not accept mail",
            "The recipient's domain publishes that it accepts no mail (RFC 7504, usually with \
             5.1.10): its MX record is the 'null MX' (preference 0, host '.').",
            &["The domain is not used for mail, or the address is mistyped."],
            &["Look up the domain's MX record (`relais dns`); check the address."],
        ),
    ),
];
