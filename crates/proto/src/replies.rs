//! Every reply text the server sends, in one place. Wording follows Postfix where it has one,
//! so that operators and scripts that know Postfix recognise them.

use crate::address::Mailbox;
use crate::reply::{EnhancedStatus, Reply};

const fn st(class: u8, subject: u16, detail: u16) -> Option<EnhancedStatus> {
    Some(EnhancedStatus::new(class, subject, detail))
}

/// `220 host ESMTP banner`: the greeting (no enhanced status: RFC 2034 does not use one here).
pub fn greeting(host: &str, banner: &str) -> Reply {
    Reply::new(220, None, format!("{host} ESMTP {banner}"))
}

/// `250 host`: the HELO answer.
pub fn helo(host: &str) -> Reply {
    Reply::new(250, None, host.to_string())
}

/// `250-host` followed by the extensions: the EHLO answer.
pub fn ehlo(host: &str, extensions: &[String]) -> Reply {
    let mut lines = Vec::with_capacity(extensions.len() + 1);
    lines.push(host.to_string());
    lines.extend(extensions.iter().cloned());
    Reply::multiline(250, None, lines)
}

/// `250 2.0.0 Ok`: RSET, NOOP.
pub fn ok() -> Reply {
    Reply::new(250, st(2, 0, 0), "Ok")
}

/// `250 2.1.0 Ok`: MAIL accepted.
pub fn mail_ok() -> Reply {
    Reply::new(250, st(2, 1, 0), "Ok")
}

/// `250 2.1.5 Ok`: RCPT accepted.
pub fn rcpt_ok() -> Reply {
    Reply::new(250, st(2, 1, 5), "Ok")
}

/// `354`: go ahead with the content.
pub fn start_data() -> Reply {
    Reply::new(354, None, "End data with <CR><LF>.<CR><LF>")
}

/// `250 2.0.0 Ok: queued as ID`: the message is on disk.
pub fn queued(id: &str) -> Reply {
    Reply::new(250, st(2, 0, 0), format!("Ok: queued as {id}"))
}

/// `250 2.0.0 Ok: N octets`: a BDAT chunk that is not the last.
pub fn chunk_ok(octets: u64) -> Reply {
    Reply::new(250, st(2, 0, 0), format!("Ok: {octets} octets"))
}

/// `221 2.0.0 Bye`.
pub fn bye() -> Reply {
    Reply::new(221, st(2, 0, 0), "Bye")
}

/// `214`: `HELP` lists the commands (STARTTLS and AUTH when they are offered now); `HELP
/// VERB` gives that command's syntax; an unknown topic is `504 5.5.4`.
pub fn help(topic: &str, starttls: bool, auth: bool) -> Reply {
    let topic = topic.trim().to_ascii_uppercase();
    if topic.is_empty() {
        let mut commands = String::from("Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP VRFY");
        if starttls {
            commands.push_str(" STARTTLS");
        }
        if auth {
            commands.push_str(" AUTH");
        }
        commands.push_str(" HELP QUIT");
        return Reply::multiline(
            214,
            st(2, 0, 0),
            vec![
                commands,
                "HELP <command> gives its syntax; relais explains any reply code: relais explain CODE"
                    .into(),
            ],
        );
    }
    let syntax = match topic.as_str() {
        "EHLO" => "EHLO <domain or [address]>",
        "HELO" => "HELO <domain>",
        "MAIL" => {
            "MAIL FROM:<address> [SIZE=<octets>] [BODY=7BIT|8BITMIME] [SMTPUTF8] [RET=FULL|HDRS] [ENVID=<id>] [AUTH=<address>]"
        }
        "RCPT" => "RCPT TO:<address> [NOTIFY=NEVER|SUCCESS,FAILURE,DELAY] [ORCPT=rfc822;<address>]",
        "DATA" => "DATA, then the message, ended by a line with only a dot",
        "BDAT" => "BDAT <octets> [LAST], then exactly that many octets",
        "RSET" => "RSET: forget the current transaction",
        "NOOP" => "NOOP",
        "VRFY" => "VRFY <address>: answered 252, addresses are not disclosed",
        "STARTTLS" => "STARTTLS, then the TLS handshake; EHLO again after it",
        "AUTH" => "AUTH <mechanism> [initial response]; PLAIN and LOGIN",
        "HELP" => "HELP [command]",
        "QUIT" => "QUIT",
        _ => {
            return Reply::new(
                504,
                st(5, 5, 4),
                format!("HELP: no such command: {}", printable_topic(&topic)),
            );
        }
    };
    Reply::new(214, st(2, 0, 0), syntax)
}

/// A topic as it can be echoed: at most 32 printable characters.
fn printable_topic(topic: &str) -> String {
    topic.chars().filter(|c| !c.is_control()).take(32).collect()
}

/// `252`: VRFY is off, as RFC 5321 §3.5.3 suggests answering.
pub fn vrfy_disabled() -> Reply {
    Reply::new(
        252,
        st(2, 0, 0),
        "Cannot VRFY user, but will accept message and attempt delivery",
    )
}

/// `502 5.5.1`: EXPN is never offered.
pub fn expn_disabled() -> Reply {
    Reply::new(502, st(5, 5, 1), "Error: EXPN not available")
}

/// `502 5.5.1`: a known command that is not available in this configuration.
pub fn not_implemented(verb: &str) -> Reply {
    Reply::new(502, st(5, 5, 1), format!("Error: {verb} not available"))
}

/// `500 5.5.2`: unknown command.
pub fn unknown_command() -> Reply {
    Reply::new(500, st(5, 5, 2), "Error: command not recognized")
}

/// `500 5.5.2`: the line was not UTF-8 or held control characters.
pub fn bad_encoding() -> Reply {
    Reply::new(
        500,
        st(5, 5, 2),
        "Error: bad UTF-8 syntax or control characters",
    )
}

/// `500 5.5.2`: a command line over the limit.
pub fn line_too_long() -> Reply {
    Reply::new(500, st(5, 5, 2), "Error: line too long")
}

/// `501 5.5.4 Syntax: …`.
pub fn syntax(usage: &str) -> Reply {
    Reply::new(501, st(5, 5, 4), format!("Syntax: {usage}"))
}

/// `501 5.1.7`: the sender is not an address.
pub fn bad_sender(reason: &str) -> Reply {
    Reply::new(
        501,
        st(5, 1, 7),
        format!("Bad sender address syntax ({reason})"),
    )
}

/// `501 5.1.3`: the recipient is not an address.
pub fn bad_recipient(reason: &str) -> Reply {
    Reply::new(
        501,
        st(5, 1, 3),
        format!("Bad recipient address syntax ({reason})"),
    )
}

/// `555 5.5.4`: an ESMTP parameter we do not support.
pub fn unsupported_param(name: &str) -> Reply {
    Reply::new(555, st(5, 5, 4), format!("Unsupported option: {name}"))
}

/// `501 5.5.4`: a parameter with a bad value or syntax.
pub fn bad_param(what: &str) -> Reply {
    Reply::new(
        501,
        st(5, 5, 4),
        format!("Error: bad {what} parameter syntax"),
    )
}

/// `553 5.6.7`: UTF-8 address without SMTPUTF8.
pub fn utf8_not_declared() -> Reply {
    Reply::new(
        553,
        st(5, 6, 7),
        "Must declare SMTPUTF8 to send unicode address",
    )
}

/// `503 5.5.1`: MAIL before HELO/EHLO.
pub fn need_helo() -> Reply {
    Reply::new(503, st(5, 5, 1), "Error: send HELO/EHLO first")
}

/// `503 5.5.1`: a second MAIL inside a transaction.
pub fn nested_mail() -> Reply {
    Reply::new(503, st(5, 5, 1), "Error: nested MAIL command")
}

/// `503 5.5.1`: RCPT before MAIL.
pub fn need_mail() -> Reply {
    Reply::new(503, st(5, 5, 1), "Error: need MAIL command")
}

/// `503 5.5.1`: DATA or BDAT before any RCPT was given.
pub fn need_rcpt() -> Reply {
    Reply::new(503, st(5, 5, 1), "Error: need RCPT command")
}

/// `554 5.5.1`: DATA or BDAT when every RCPT was refused.
pub fn no_valid_recipients() -> Reply {
    Reply::new(554, st(5, 5, 1), "Error: no valid recipients")
}

/// `503 5.5.1`: DATA in a transaction that started BDAT.
pub fn data_after_bdat() -> Reply {
    Reply::new(503, st(5, 5, 1), "Error: DATA after BDAT")
}

/// `503 5.5.1`: BDAT of a BINARYMIME message announced for DATA, or the reverse.
pub fn binarymime_needs_bdat() -> Reply {
    Reply::new(503, st(5, 5, 1), "Error: BODY=BINARYMIME requires BDAT")
}

/// `552 5.3.4`: SIZE= over the limit.
pub fn size_exceeds_limit() -> Reply {
    Reply::new(552, st(5, 3, 4), "Message size exceeds fixed limit")
}

/// `552 5.3.4`: the content grew over the limit.
pub fn message_too_big() -> Reply {
    Reply::new(552, st(5, 3, 4), "Error: message file too big")
}

/// `452 4.5.3`: more recipients than allowed in one transaction.
pub fn too_many_recipients() -> Reply {
    Reply::new(452, st(4, 5, 3), "Error: too many recipients")
}

/// `550 5.1.1`: no such local user (the text may be set per address by the policy).
pub fn user_unknown(rcpt: &Mailbox) -> Reply {
    Reply::new(
        550,
        st(5, 1, 1),
        format!("<{rcpt}>: Recipient address rejected: User unknown in local recipient table"),
    )
}

/// `552 5.2.2`: the recipient's mailbox is at or over its quota (Postfix's wording for a
/// policy service's answer, as Dovecot's quota-status gives it).
pub fn mailbox_full(rcpt: &Mailbox) -> Reply {
    Reply::new(
        552,
        st(5, 2, 2),
        format!("<{rcpt}>: Recipient address rejected: Mailbox full"),
    )
}

/// `550 5.1.1`: no such user in a virtual domain (Postfix's `virtual_mailbox_maps` wording).
pub fn virtual_user_unknown(rcpt: &Mailbox) -> Reply {
    Reply::new(
        550,
        st(5, 1, 1),
        format!("<{rcpt}>: Recipient address rejected: User unknown in virtual mailbox table"),
    )
}

/// `550 5.1.1`: the recipient is an alias that says `:fail: text`; the text is the operator's.
pub fn alias_refused(rcpt: &Mailbox, text: &str) -> Reply {
    Reply::new(550, st(5, 1, 1), format!("<{rcpt}>: {text}"))
}

/// `550 5.4.6`: the recipient is an alias whose expansion loops or goes too deep.
pub fn alias_loop(rcpt: &Mailbox, why: &str) -> Reply {
    Reply::new(
        550,
        st(5, 4, 6),
        format!("<{rcpt}>: Recipient address rejected: {why}"),
    )
}

/// `451 4.3.0`: the aliases could not be read (Postfix's wording for a failed table lookup).
pub fn alias_lookup_failed(rcpt: &Mailbox) -> Reply {
    Reply::new(
        451,
        st(4, 3, 0),
        format!("<{rcpt}>: Temporary lookup failure"),
    )
}

/// `554 5.7.1`: the recipient's domain is not ours and the client may not relay.
pub fn relay_denied(rcpt: &Mailbox) -> Reply {
    Reply::new(554, st(5, 7, 1), format!("<{rcpt}>: Relay access denied"))
}

/// `451 4.3.0`: the spool could not take the message.
pub fn queue_write_error() -> Reply {
    Reply::new(451, st(4, 3, 0), "Error: queue file write error")
}

/// `452 4.3.1` at MAIL FROM: less room than `min_free_space` (its SIZE counted), in
/// Postfix's words (`queue_minfree`); the session goes on.
pub fn storage_below_minimum() -> Reply {
    Reply::new(452, st(4, 3, 1), "Insufficient system storage")
}

/// `452 4.3.1`: the disk is (nearly) full.
pub fn insufficient_storage() -> Reply {
    Reply::new(452, st(4, 3, 1), "Error: insufficient system storage")
}

/// `421 4.4.2`: the client was idle for too long.
pub fn timeout(host: &str) -> Reply {
    Reply::new(421, st(4, 4, 2), format!("{host} Error: timeout exceeded"))
}

/// `421 4.7.0`: too many errors in one session.
pub fn too_many_errors(host: &str) -> Reply {
    Reply::new(421, st(4, 7, 0), format!("{host} Error: too many errors"))
}

/// `421 4.3.2`: the server is shutting down.
pub fn shutting_down(host: &str) -> Reply {
    Reply::new(
        421,
        st(4, 3, 2),
        format!("{host} Service shutting down, closing transmission channel"),
    )
}

/// `421 4.7.0`: too many connections (in total or from this client).
pub fn too_many_connections(host: &str) -> Reply {
    Reply::new(
        421,
        st(4, 7, 0),
        format!("{host} Error: too many connections"),
    )
}

/// `554 5.5.0`: the client talked before it was its turn (before the greeting, or pipelined
/// where RFC 2920 says it must wait).
pub fn protocol_sync() -> Reply {
    Reply::new(554, st(5, 5, 0), "Error: SMTP protocol synchronization")
}

/// `521 5.7.0`: a web or proxy client.
pub fn forbidden_command() -> Reply {
    Reply::new(
        521,
        st(5, 7, 0),
        "Error: this is an SMTP server, not a web server or proxy",
    )
}

/// `503 5.5.1`: AUTH when it is not offered.
pub fn auth_not_enabled() -> Reply {
    Reply::new(503, st(5, 5, 1), "Error: authentication not enabled")
}

/// `220 2.0.0`: go ahead with the TLS handshake.
pub fn ready_to_start_tls() -> Reply {
    Reply::new(220, st(2, 0, 0), "Ready to start TLS")
}

/// `554 5.5.1`: STARTTLS on a connection that is already encrypted.
pub fn tls_already_active() -> Reply {
    Reply::new(554, st(5, 5, 1), "Error: TLS already active")
}

/// `530 5.7.0`: this listener wants TLS before anything else.
pub fn must_starttls() -> Reply {
    Reply::new(530, st(5, 7, 0), "Must issue a STARTTLS command first")
}

/// `530 5.7.0`: MAIL before AUTH on a submission listener.
pub fn auth_required() -> Reply {
    Reply::new(530, st(5, 7, 0), "Authentication required")
}

/// `538 5.7.11`: AUTH on a clear-text connection.
pub fn encryption_required_for_auth() -> Reply {
    Reply::new(
        538,
        st(5, 7, 11),
        "Encryption required for requested authentication mechanism",
    )
}

/// `334 base64(text)`: a SASL challenge.
pub fn auth_challenge(text: &str) -> Reply {
    use base64::Engine;
    Reply::new(
        334,
        None,
        base64::engine::general_purpose::STANDARD.encode(text),
    )
}

/// `235 2.7.0`: AUTH succeeded.
pub fn auth_ok() -> Reply {
    Reply::new(235, st(2, 7, 0), "Authentication successful")
}

/// `535 5.7.8`: bad credentials.
pub fn auth_failed() -> Reply {
    Reply::new(535, st(5, 7, 8), "Error: authentication failed")
}

/// `501 5.7.0`: the client cancelled with `*`.
pub fn auth_aborted() -> Reply {
    Reply::new(501, st(5, 7, 0), "Authentication aborted")
}

/// `501 5.5.2`: a SASL response that is not base64 (or not the mechanism's format).
pub fn auth_bad_base64() -> Reply {
    Reply::new(
        501,
        st(5, 5, 2),
        "Error: invalid base64 data or malformed response",
    )
}

/// `504 5.5.4`: a mechanism we do not offer.
pub fn auth_unsupported_mechanism() -> Reply {
    Reply::new(
        504,
        st(5, 5, 4),
        "Error: unsupported authentication mechanism",
    )
}

/// `503 5.5.1`: AUTH twice.
pub fn already_authenticated() -> Reply {
    Reply::new(503, st(5, 5, 1), "Error: already authenticated")
}

/// `503 5.5.1`: AUTH inside a mail transaction.
pub fn auth_in_transaction() -> Reply {
    Reply::new(503, st(5, 5, 1), "Error: MAIL transaction in progress")
}

/// `454 4.7.0`: too many failed AUTH attempts from this client for now.
pub fn auth_rate_limited() -> Reply {
    Reply::new(
        454,
        st(4, 7, 0),
        "Error: too many authentication failures, try again later",
    )
}

/// `421 4.7.0`: too many messages in one session.
pub fn too_many_messages(host: &str) -> Reply {
    Reply::new(
        421,
        st(4, 7, 0),
        format!("{host} Error: too many messages in this session"),
    )
}

/// `421 4.7.0`: connections from this client arrive too fast.
pub fn connection_rate_exceeded(host: &str) -> Reply {
    Reply::new(
        421,
        st(4, 7, 0),
        format!("{host} Error: too many connections from your address, slow down"),
    )
}

/// `550 5.1.1`: an SRS bounce address that is not ours, or no longer good.
pub fn srs_refused(rcpt: &Mailbox, why: &str) -> Reply {
    Reply::new(
        550,
        st(5, 1, 1),
        format!("<{rcpt}>: Recipient address rejected: {why}"),
    )
}

/// `553 5.7.1`: an authenticated user sending as someone else.
pub fn sender_not_owned(user: &str, from: &str) -> Reply {
    Reply::new(
        553,
        st(5, 7, 1),
        format!("<{from}>: Sender address rejected: not owned by user {user}"),
    )
}

/// Text from elsewhere (a domain's SPF explanation) as it can go in a reply: printable ASCII,
/// at most 200 characters.
fn printable_text(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_graphic() { c } else { ' ' })
        .take(200)
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `550 5.7.23`: SPF says the client may not send as this sender (`fail`, or `softfail` when
/// the configuration refuses it). The domain's own explanation (`exp=`) when it has one.
pub fn spf_fail(
    sender: &str,
    result: &str,
    domain: &str,
    ip: std::net::IpAddr,
    explanation: Option<&str>,
) -> Reply {
    let why = match explanation.map(printable_text).filter(|e| !e.is_empty()) {
        Some(e) => format!("{domain} explains: {e}"),
        None => format!("{domain} does not authorize {ip} to send its mail"),
    };
    Reply::new(
        550,
        st(5, 7, 23),
        format!("<{sender}>: Sender address rejected: SPF {result}: {why}"),
    )
}

/// `451 4.7.24`: the SPF check met a DNS failure; the client tries again later.
pub fn spf_temperror(sender: &str, domain: &str) -> Reply {
    Reply::new(
        451,
        st(4, 7, 24),
        format!(
            "<{sender}>: Sender address rejected: SPF temporary error: DNS lookup for {domain} failed, try again later"
        ),
    )
}

/// `550 5.7.24`: the sender domain's SPF record is broken.
pub fn spf_permerror(sender: &str, domain: &str, detail: &str) -> Reply {
    let detail = printable_text(detail);
    let detail = if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    };
    Reply::new(
        550,
        st(5, 7, 24),
        format!(
            "<{sender}>: Sender address rejected: SPF permanent error: the SPF record of {domain} is invalid{detail}"
        ),
    )
}

/// `550 5.7.1`: the `From:` domain's DMARC policy is `reject` and the message fails DMARC.
pub fn dmarc_reject(domain: &str) -> Reply {
    Reply::new(
        550,
        st(5, 7, 1),
        format!(
            "Message rejected: DMARC policy of {domain} (p=reject): the message fails SPF and DKIM alignment with {domain}"
        ),
    )
}

/// `554 5.7.1`: the client is on DNS lists whose weights reach the threshold (postscreen's and
/// `reject_rbl_client`'s wording). `text` replaces the words after the status code.
pub fn dnsbl_blocked(ip: std::net::IpAddr, zone: &str, text: Option<&str>) -> Reply {
    let text = text.map_or_else(
        || format!("Service unavailable; client [{ip}] blocked using {zone}"),
        printable_text,
    );
    Reply::new(554, st(5, 7, 1), text)
}

/// `554 5.7.1`: the sender's domain is on a domain list (`reject_rhsbl_sender`).
pub fn rhsbl_blocked(sender: &str, zone: &str, text: Option<&str>) -> Reply {
    let text = text.map_or_else(
        || format!("Service unavailable; Sender address [{sender}] blocked using {zone}"),
        printable_text,
    );
    Reply::new(554, st(5, 7, 1), text)
}

/// `450 4.7.25` or `550 5.7.25`: the client has no PTR that resolves back to its address
/// (`reject_unknown_client_hostname`; temporary when the DNS failed).
pub fn unknown_client(ip: std::net::IpAddr, temporary: bool, text: Option<&str>) -> Reply {
    let text = text.map_or_else(
        || format!("Client host rejected: cannot find your reverse hostname, [{ip}]"),
        printable_text,
    );
    if temporary {
        Reply::new(450, st(4, 7, 25), text)
    } else {
        Reply::new(550, st(5, 7, 25), text)
    }
}

/// What is wrong with a HELO name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeloProblem {
    /// One label only (`x`, `localhost`, `DESKTOP-1234`).
    NotFqdn,
    /// Not a host name nor an address literal.
    Invalid,
    /// Our own name.
    OurName,
}

impl HeloProblem {
    /// In words, for a configured text's `{why}`.
    pub fn as_str(self) -> &'static str {
        match self {
            HeloProblem::NotFqdn => "not a fully-qualified host name",
            HeloProblem::Invalid => "not a valid host name",
            HeloProblem::OurName => "our own name",
        }
    }
}

/// A refused HELO name, in Postfix's words: `504 5.5.2 <x>: Helo command rejected: need
/// fully-qualified hostname`, `501 5.5.2 … Invalid name`, `550 5.7.1 … that is my name`.
pub fn helo_rejected(helo: &str, why: HeloProblem, text: Option<&str>) -> Reply {
    let (code, status, words) = match why {
        HeloProblem::NotFqdn => (504, st(5, 5, 2), "need fully-qualified hostname"),
        HeloProblem::Invalid => (501, st(5, 5, 2), "Invalid name"),
        HeloProblem::OurName => (550, st(5, 7, 1), "that is my name"),
    };
    let text = text.map_or_else(
        || format!("<{}>: Helo command rejected: {words}", printable_text(helo)),
        printable_text,
    );
    Reply::new(code, status, text)
}

/// `451 4.7.1`: greylisted; a retry after `wait` seconds is accepted.
pub fn greylisted(rcpt: &Mailbox, wait: u64) -> Reply {
    Reply::new(
        451,
        st(4, 7, 1),
        format!(
            "<{rcpt}>: Recipient address rejected: Greylisted, please try again in {wait} seconds"
        ),
    )
}

/// `451 4.3.0`: the shared state (greylisting, rate limits) cannot be reached now.
pub fn state_unavailable(rcpt: &Mailbox) -> Reply {
    Reply::new(
        451,
        st(4, 3, 0),
        format!("<{rcpt}>: Recipient address rejected: temporary failure, try again later"),
    )
}

/// `450 4.7.1`: too many messages a minute from this client (Postfix's words).
pub fn too_much_mail(ip: std::net::IpAddr) -> Reply {
    Reply::new(450, st(4, 7, 1), format!("Error: too much mail from {ip}"))
}

/// `450 4.7.1`: an authenticated user reached its recipients an hour.
pub fn too_many_recipients_for_user(rcpt: &Mailbox, user: &str) -> Reply {
    Reply::new(
        450,
        st(4, 7, 1),
        format!(
            "<{rcpt}>: Recipient address rejected: too many recipients from user {user} this hour, try again later"
        ),
    )
}

/// `451 4.3.0` at MAIL FROM: the shared state (rate limits) cannot be reached now.
pub fn state_unavailable_at_mail() -> Reply {
    Reply::new(
        451,
        st(4, 3, 0),
        "Error: temporary failure, try again later",
    )
}

/// `550 5.7.1` when a content filter (milter) refuses without a text of its own (Postfix's
/// words).
pub fn milter_reject() -> Reply {
    Reply::new(550, st(5, 7, 1), "Command rejected")
}

/// `451 4.7.1` when a content filter asks to try later, or cannot be asked (Postfix's words).
pub fn milter_tempfail() -> Reply {
    Reply::new(451, st(4, 7, 1), "Service unavailable - try again later")
}

/// A content filter's own reply (`SMFIR_REPLYCODE`: `554 5.7.1 Gtube pattern`, possibly
/// several lines): only a 4xx or 5xx reply is taken, with an enhanced status of its class
/// (`x.7.1` when it gives none or one of another class); `None` when it is not a reply.
pub fn milter_reply(text: &str) -> Option<Reply> {
    let mut parser = crate::ReplyParser::new();
    parser.push(text.trim_end().as_bytes());
    parser.push(b"\r\n");
    let mut reply = parser.next_reply().ok()??;
    if !reply.is_transient() && !reply.is_permanent() {
        return None;
    }
    let class = u8::try_from(reply.code / 100).unwrap_or(5);
    if reply.status.is_none_or(|s| s.class != class) {
        reply.status = st(class, 7, 1);
    }
    for line in &mut reply.lines {
        // A status of the wrong class stays in the text: it goes.
        let text = match line.split_once(' ') {
            Some((first, rest)) if EnhancedStatus::parse(first).is_some() => rest,
            _ => line.as_str(),
        };
        *line = printable_text(text);
    }
    Some(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milter_replies() {
        let table: &[(&str, Option<&str>)] = &[
            (
                "554 5.7.1 Gtube pattern",
                Some("554 5.7.1 Gtube pattern\r\n"),
            ),
            ("550 Spam detected", Some("550 5.7.1 Spam detected\r\n")),
            (
                "451 4.7.1 Try again later\0",
                Some("451 4.7.1 Try again later\r\n"),
            ),
            ("450 5.7.1 wrong class", Some("450 4.7.1 wrong class\r\n")),
            (
                "550-5.7.1 first\r\n550 5.7.1 second",
                Some("550-5.7.1 first\r\n550 5.7.1 second\r\n"),
            ),
            ("250 2.0.0 fine", None),
            ("354 go on", None),
            ("hello", None),
            ("", None),
        ];
        for (text, want) in table {
            let got = milter_reply(text).map(|r| String::from_utf8(r.to_bytes()).unwrap());
            assert_eq!(got.as_deref(), *want, "{text:?}");
        }
    }
}
