//! Error numbers of Outlook and Outlook Express (`0x800CCCxx`).
//!
//! They are HRESULTs of the "Internet" facility (12) from Microsoft's mail
//! transport (`imnxport.h`): the low 16 bits say what failed. Numbers
//! 0x800CCC60 to 0x800CCC6F stand for one SMTP reply code each; for those,
//! [`explain`] adds the explanation of that reply code.
//!
//! The symbolic name in each meaning (IXP_E_...) is the one in that header;
//! the causes are field experience, and what is not confirmed says so.

use super::{Entry, Explanation, basic, entry};

/// One Outlook error: its table row and how it relates to SMTP.
struct OutlookCode {
    /// The HRESULT as Outlook shows it.
    code: u32,
    /// The explanation itself.
    entry: Entry,
    /// The SMTP reply code this number stands for, when it stands for one.
    smtp_reply: Option<u16>,
    /// Whether the failure is temporary, when that is known.
    transient: Option<bool>,
}

/// Explains an Outlook error number; for those that stand for an SMTP reply,
/// the explanation of that reply code follows.
pub(super) fn explain(code: u32) -> Vec<Explanation> {
    let text = format!("0x{code:08X}");
    let Some(row) = lookup(code) else {
        return vec![unknown(code, text)];
    };
    let mut out = vec![row.entry.explanation(text, row.transient)];
    if let Some(reply) = row.smtp_reply {
        out.push(basic::explain(reply));
    }
    out
}

/// The Outlook error number that stands for an SMTP reply code, when there is one.
pub(super) fn for_reply(reply: u16) -> Option<u32> {
    CODES
        .iter()
        .find(|c| c.smtp_reply == Some(reply))
        .map(|c| c.code)
}

/// Whether `code` is in the table (used by the tests).
#[cfg(test)]
pub(super) fn is_listed(code: u32) -> bool {
    lookup(code).is_some()
}

fn lookup(code: u32) -> Option<&'static OutlookCode> {
    CODES.iter().find(|c| c.code == code)
}

fn unknown(code: u32, text: String) -> Explanation {
    let (title, meaning) = if code & 0xFFFF_FF00 == 0x800C_CC00 {
        (
            "Outlook mail transport error not in the table",
            format!(
                "{text} belongs to the range of Outlook's Internet mail transport errors \
                 (0x800CCCxx) but is not one relais has an explanation for."
            ),
        )
    } else if code & 0x8000_0000 != 0 {
        (
            "Windows error code not in the table",
            format!(
                "{text} looks like a Windows error code (HRESULT), but not one from Outlook's \
                 Internet mail transport (0x800CCCxx) that relais knows about."
            ),
        )
    } else {
        (
            "Not a known error number",
            format!(
                "{text} is not in relais's table, and it is not a Windows failure code at all \
                 (those start with 0x8); check that it was copied completely."
            ),
        )
    };
    Explanation {
        code: text,
        title: title.to_owned(),
        meaning,
        likely_causes: vec!["Not in the table, so relais cannot say.".to_owned()],
        what_to_check: vec![
            "Copy the number again from the error dialog; Outlook usually shows the server's \
             reply text next to it, which can be explained on its own (for example \
             `relais explain \"550 5.7.1 Relaying denied\"`)."
                .to_owned(),
            "Test the same server, port and encryption with `relais probe` to see the SMTP \
             side directly."
                .to_owned(),
        ],
        transient: None,
    }
}

/// Outlook error numbers with an entry of their own.
static CODES: &[OutlookCode] = &[
    OutlookCode {
        code: 0x800C_CC0D,
        entry: entry(
            "Cannot find the server (host name lookup failed)",
            "Outlook could not turn the server name in the account settings into an address \
             (IXP_E_CANT_FIND_HOST). The connection never started, so no server was reached.",
            &[
                "The server name is misspelled in the account settings.",
                "The DNS record is missing, or was just created or changed and has not reached \
                 every resolver yet.",
                "The computer's DNS resolver is not working (no network, VPN or split-DNS \
                 problems).",
            ],
            &[
                "Look up the exact server name from the affected computer (nslookup, or \
                 `relais dns`); `relais probe` against it stops at the DNS stage with 'host \
                 not found'.",
                "As a test, the server's IP address can be put in place of the name; if that \
                 works, the problem is DNS (but certificates will then not match the name, so \
                 fix DNS rather than keep the address).",
            ],
        ),
        smtp_reply: None,
        transient: None,
    },
    OutlookCode {
        code: 0x800C_CC0E,
        entry: entry(
            "Cannot connect to the server",
            "The server name resolved, but the connection to it on the configured port failed \
             (IXP_E_FAILED_TO_CONNECT). Nothing was said in SMTP yet.",
            &[
                "The port is blocked: many ISPs block outgoing port 25, shared hosting often \
                 blocks 25 and 26 for ordinary users, and local firewalls or antivirus \
                 products block mail ports.",
                "The port in the account settings is wrong for the service: SMTP submission \
                 587 (STARTTLS) or 465 (TLS), relaying 25; for incoming mail POP3 110/995 and \
                 IMAP 143/993.",
                "The server is down or its mail service is not listening.",
            ],
            &[
                "Run `relais probe` against the server and port from the same network: \
                 'refused' means nothing is listening there (wrong port, or service down), \
                 'timed out' means a firewall drops the connection.",
                "Try port 587 with STARTTLS or 465 with TLS instead of 25, and try from \
                 another network to tell a local block from a server problem.",
            ],
        ),
        smtp_reply: None,
        transient: None,
    },
    OutlookCode {
        code: 0x800C_CC0F,
        entry: entry(
            "The connection to the server was interrupted",
            "The connection was made and then dropped before the work was done \
             (IXP_E_CONNECTION_DROPPED).",
            &[
                "The server closed the connection: an idle or command time-out, too many errors, \
                 or a limit reached (often after sending 421).",
                "Antivirus or firewall software that scans outgoing mail cut the connection.",
                "An unstable link, VPN or proxy, especially with large attachments.",
                "The encryption setting does not match the port, so the exchange stalls and is \
                 cut.",
            ],
            &[
                "Run `relais probe` against the same server and port: it shows at which stage \
                 the connection ends and how long each stage took (a banner later than 10 \
                 seconds is a problem in itself).",
                "Look in the server's log for this client's address: the line about the lost \
                 connection says after which command it happened.",
                "Turn off outgoing mail scanning in the antivirus as a test.",
            ],
        ),
        smtp_reply: None,
        transient: None,
    },
    OutlookCode {
        code: 0x800C_CC10,
        entry: entry(
            "Invalid address",
            "An address in the message or the account was refused as invalid \
             (IXP_E_INVALID_ADDRESS). Whether Outlook raises it itself or after the server \
             refuses a recipient is not confirmed here.",
            &[
                "A malformed recipient: spaces, a missing domain, a pasted display name, \
                 several addresses with the wrong separator.",
                "A malformed sender address in the account settings.",
            ],
            &[
                "Check every address in To, Cc and Bcc, and the account's own address.",
                "Send the same addresses with `relais send` to see the server's reply to each \
                 RCPT TO (a syntax problem comes back as 501 or 553 with 5.1.3).",
            ],
        ),
        smtp_reply: None,
        transient: None,
    },
    OutlookCode {
        code: 0x800C_CC11,
        entry: entry(
            "Invalid address list",
            "The list of recipients as a whole was invalid (IXP_E_INVALID_ADDRESS_LIST); a \
             neighbour of 0x800CCC10.",
            &["An empty or malformed recipient list."],
            &["Check the To, Cc and Bcc fields."],
        ),
        smtp_reply: None,
        transient: None,
    },
    OutlookCode {
        code: 0x800C_CC12,
        entry: entry(
            "Socket read error",
            "Reading from the network connection failed (IXP_E_SOCKET_READ_ERROR).",
            &["The connection was reset by the server, a firewall or the network."],
            &["Same checks as 0x800CCC0F: `relais probe` the server and read its log."],
        ),
        smtp_reply: None,
        transient: None,
    },
    OutlookCode {
        code: 0x800C_CC13,
        entry: entry(
            "Cannot connect to the network (socket write error)",
            "Writing to the network connection failed (IXP_E_SOCKET_WRITE_ERROR). Outlook is \
             widely reported to word it 'Cannot connect to the network. Verify your network \
             connection or modem.' (wording not confirmed here).",
            &[
                "The computer has no working network connection at that moment.",
                "Security software hooked into the Windows network stack blocks or breaks \
                 Outlook's connection.",
                "A damaged Windows network configuration; users report fixing it by repairing \
                 system files or resetting Winsock (not confirmed here).",
            ],
            &[
                "Check that other programs on the same computer reach the network, and run \
                 `relais probe` against the server from that computer.",
                "Disable security software briefly as a test.",
            ],
        ),
        smtp_reply: None,
        transient: None,
    },
    OutlookCode {
        code: 0x800C_CC15,
        entry: entry(
            "Socket connect error",
            "Opening the network connection failed at the socket level \
             (IXP_E_SOCKET_CONNECT_ERROR); a neighbour of 0x800CCC0E.",
            &["Same causes as 0x800CCC0E: a blocked port, a wrong port, a server not listening."],
            &["Same checks as 0x800CCC0E: `relais probe` the server and port."],
        ),
        smtp_reply: None,
        transient: None,
    },
    OutlookCode {
        code: 0x800C_CC18,
        entry: entry(
            "Secure Password Authentication (SPA) logon failed",
            "Logging in with Microsoft's Secure Password Authentication (NTLM, code-named \
             'Sicily') failed (IXP_E_SICILY_LOGON_FAILED).",
            &[
                "'Require logon using Secure Password Authentication (SPA)' is ticked but the \
                 server does not offer NTLM; most non-Exchange servers, relais included, do \
                 not.",
                "The NTLM credentials (domain, user, password) are wrong.",
            ],
            &[
                "Untick SPA and use normal password authentication over TLS (587 with \
                 STARTTLS, or 465).",
                "`relais probe` shows the AUTH line of the EHLO reply: NTLM must be listed for \
                 SPA to work.",
            ],
        ),
        smtp_reply: None,
        transient: None,
    },
    OutlookCode {
        code: 0x800C_CC19,
        entry: entry(
            "Time-out while communicating with the server",
            "The server did not answer within Outlook's time limit (IXP_E_TIMEOUT).",
            &[
                "A slow banner: the server waits on reverse DNS or block list lookups, or is \
                 overloaded or at its connection limit.",
                "A firewall silently dropping packets.",
                "The encryption setting does not match the port: Outlook waits for a banner on \
                 465 (which expects TLS first) or starts TLS on 587 (which expects plain text \
                 and STARTTLS), and both sides wait.",
                "Outlook's server time-out setting is very short.",
            ],
            &[
                "`relais probe` shows how long the banner and each stage take; over 10 seconds \
                 for the banner points at the server's DNS or load.",
                "Match the encryption to the port: 465 = SSL/TLS, 587 = STARTTLS.",
                "Raise the server time-out in Outlook's advanced account settings.",
            ],
        ),
        smtp_reply: None,
        transient: None,
    },
    OutlookCode {
        code: 0x800C_CC1A,
        entry: entry(
            "Secure connection failed (SSL/TLS mismatch)",
            "Setting up the encrypted connection failed (IXP_E_SECURE_CONNECT_FAILED), usually \
             because the encryption type does not match what the port speaks.",
            &[
                "SSL/TLS (encryption from the start) selected on 587 or 25, which expect plain \
                 text and STARTTLS.",
                "STARTTLS selected on 465, which expects TLS from the first byte.",
                "An old Outlook that only speaks old TLS versions the server no longer accepts.",
                "Antivirus software intercepting TLS.",
            ],
            &[
                "Use SSL/TLS on 465 and STARTTLS on 587 (Outlook calls it 'TLS' or 'Auto' \
                 depending on the version).",
                "`relais probe` reports whether a port speaks TLS at once or offers STARTTLS, \
                 and the certificate and TLS version it gets.",
            ],
        ),
        smtp_reply: None,
        transient: None,
    },
    OutlookCode {
        code: 0x800C_CC60,
        entry: entry(
            "SMTP server returned an error",
            "The SMTP server answered with an error that Outlook has no more specific number \
             for (IXP_E_SMTP_RESPONSE_ERROR).",
            &["Any refusal by the server; the reply text shown with the error tells which."],
            &["Explain the reply text Outlook shows next to the number."],
        ),
        smtp_reply: None,
        transient: None,
    },
    OutlookCode {
        code: 0x800C_CC61,
        entry: entry(
            "Unknown SMTP response code",
            "The server answered with a reply code Outlook does not know \
             (IXP_E_SMTP_UNKNOWN_RESPONSE_CODE).",
            &[
                "Not an SMTP server on that port, or something in between (proxy, antivirus) \
                 answering.",
            ],
            &["`relais probe` the same server and port and look at the banner and replies."],
        ),
        smtp_reply: None,
        transient: None,
    },
    OutlookCode {
        code: 0x800C_CC62,
        entry: entry(
            "Server answered 500: syntax error, command unrecognized",
            "Outlook's number for an SMTP reply 500 from the server \
             (IXP_E_SMTP_500_SYNTAX_ERROR).",
            &[
                "A firewall's SMTP inspection rewriting commands, or a non-SMTP service on the \
                 port.",
            ],
            &["`relais probe` the same port and compare the banner with the expected server."],
        ),
        smtp_reply: Some(500),
        transient: Some(false),
    },
    OutlookCode {
        code: 0x800C_CC63,
        entry: entry(
            "Server answered 501: syntax error in parameters",
            "Outlook's number for an SMTP reply 501 from the server \
             (IXP_E_SMTP_501_PARAM_SYNTAX).",
            &[
                "An address the server finds malformed, or a HELO name it refuses (Outlook \
                 greets with the computer's name).",
            ],
            &["Check the account's own address and the recipients."],
        ),
        smtp_reply: Some(501),
        transient: Some(false),
    },
    OutlookCode {
        code: 0x800C_CC64,
        entry: entry(
            "Server answered 502: command not implemented",
            "Outlook's number for an SMTP reply 502 from the server \
             (IXP_E_SMTP_502_COMMAND_NOTIMPL).",
            &["Outlook used a command the server does not offer (often AUTH before STARTTLS)."],
            &["Match the encryption setting to the port so AUTH is offered."],
        ),
        smtp_reply: Some(502),
        transient: Some(false),
    },
    OutlookCode {
        code: 0x800C_CC65,
        entry: entry(
            "Server answered 503: bad sequence of commands",
            "Outlook's number for an SMTP reply 503 from the server \
             (IXP_E_SMTP_503_COMMAND_SEQ).",
            &["An earlier command was refused, so the next one came out of order."],
            &["Look at the server's log for the refused command before it."],
        ),
        smtp_reply: Some(503),
        transient: Some(false),
    },
    OutlookCode {
        code: 0x800C_CC66,
        entry: entry(
            "Server answered 504: command parameter not implemented",
            "Outlook's number for an SMTP reply 504 from the server \
             (IXP_E_SMTP_504_COMMAND_PARAM_NOTIMPL).",
            &["An authentication method the server does not offer (such as SPA/NTLM)."],
            &["Untick SPA; use normal password authentication over TLS."],
        ),
        smtp_reply: Some(504),
        transient: Some(false),
    },
    OutlookCode {
        code: 0x800C_CC67,
        entry: entry(
            "Server answered 421: service not available",
            "Outlook's number for an SMTP reply 421 from the server \
             (IXP_E_SMTP_421_NOT_AVAILABLE): the server, or something pretending to be it, \
             refused to serve and closed the connection. It can mean several things, so it \
             takes some testing.",
            &[
                "Port 25 is blocked or intercepted by the ISP or the mail provider; an ISP's \
                 proxy can answer 421 in place of your server.",
                "A firewall or antivirus on the sender's own computer interferes with SMTP \
                 connections.",
                "Outlook is misconfigured (server, port, encryption or authentication).",
                "The server is overloaded, shutting down, or limiting connections from this \
                 address.",
            ],
            &[
                "Switch the account to port 587 with STARTTLS and authentication.",
                "Run `relais probe` from the same network: if the banner does not show your \
                 server's name, the connection is being intercepted.",
                "Turn off outgoing mail scanning or the local firewall as a test.",
                "On the server, check connection and rate limits for the client's address.",
            ],
        ),
        smtp_reply: Some(421),
        transient: Some(true),
    },
    OutlookCode {
        code: 0x800C_CC68,
        entry: entry(
            "Server answered 450: mailbox busy or unavailable",
            "Outlook's number for an SMTP reply 450 from the server \
             (IXP_E_SMTP_450_MAILBOX_BUSY).",
            &["A temporary refusal: greylisting, a busy mailbox, a DNS lookup that failed."],
            &["Send again a little later."],
        ),
        smtp_reply: Some(450),
        transient: Some(true),
    },
    OutlookCode {
        code: 0x800C_CC69,
        entry: entry(
            "Server answered 550 (Outlook: 'unknown error')",
            "Outlook's number for an SMTP reply 550 from the server \
             (IXP_E_SMTP_550_MAILBOX_NOT_FOUND). The symbolic name speaks of a missing \
             mailbox, but in practice the 550 is usually a policy refusal: the server will \
             only send mail for clients that authenticate.",
            &[
                "Outlook does not authenticate, so the server refuses to relay ('550 5.7.1 \
                 Relaying denied') or rejects its HELO or sender.",
                "The sender address is not accepted for this account.",
                "A recipient really does not exist (550 5.1.1).",
                "A policy block: the client's address is on a block list.",
            ],
            &[
                "Tick 'My outgoing server (SMTP) requires authentication' and use port 587 \
                 with STARTTLS.",
                "Read the server text shown with the error, and explain it too.",
                "Find the refusal in the server's log: it tells which command got the 550 \
                 (MAIL FROM, RCPT TO or after DATA).",
            ],
        ),
        smtp_reply: Some(550),
        transient: Some(false),
    },
    OutlookCode {
        code: 0x800C_CC6A,
        entry: entry(
            "Server answered 451: local error in processing",
            "Outlook's number for an SMTP reply 451 from the server \
             (IXP_E_SMTP_451_ERROR_PROCESSING): a temporary error on the server's side.",
            &[
                "A filter, antivirus or database behind the server failed, or the server is \
                 busy.",
                "Greylisting answered with 451 4.7.1.",
            ],
            &[
                "Send again later; if it persists, the server's log at that moment has the \
                 reason.",
            ],
        ),
        smtp_reply: Some(451),
        transient: Some(true),
    },
    OutlookCode {
        code: 0x800C_CC6B,
        entry: entry(
            "Server answered 551: user not local",
            "Outlook's number for an SMTP reply 551 from the server \
             (IXP_E_SMTP_551_USER_NOT_LOCAL).",
            &["The server will not relay to that recipient; authentication is often missing."],
            &["Enable SMTP authentication; check the recipient address."],
        ),
        smtp_reply: Some(551),
        transient: Some(false),
    },
    OutlookCode {
        code: 0x800C_CC6C,
        entry: entry(
            "Server answered 452: insufficient system storage",
            "Outlook's number for an SMTP reply 452 from the server \
             (IXP_E_SMTP_452_NO_SYSTEM_STORAGE).",
            &["The server's disk or queue is full, or too many recipients at once."],
            &[
                "Send later or to fewer recipients; the server's administrator should check disk space.",
            ],
        ),
        smtp_reply: Some(452),
        transient: Some(true),
    },
    OutlookCode {
        code: 0x800C_CC6D,
        entry: entry(
            "Server answered 552: exceeded storage allocation",
            "Outlook's number for an SMTP reply 552 from the server \
             (IXP_E_SMTP_552_STORAGE_OVERFLOW).",
            &["The message is bigger than the server's SIZE limit, or a mailbox is over quota."],
            &["Compare the message size (attachments grow by a third) with the SIZE limit."],
        ),
        smtp_reply: Some(552),
        transient: Some(false),
    },
    OutlookCode {
        code: 0x800C_CC6E,
        entry: entry(
            "Server answered 553: mailbox name not allowed",
            "Outlook's number for an SMTP reply 553 from the server \
             (IXP_E_SMTP_553_MAILBOX_NAME_SYNTAX).",
            &[
                "A malformed address, a sender address not owned by the account, or a relay \
                 refusal on servers that use 553 for it.",
            ],
            &["Check the account's address and the recipients; enable SMTP authentication."],
        ),
        smtp_reply: Some(553),
        transient: Some(false),
    },
    OutlookCode {
        code: 0x800C_CC6F,
        entry: entry(
            "Server answered 554: transaction failed",
            "Outlook's number for an SMTP reply 554 from the server \
             (IXP_E_SMTP_554_TRANSACT_FAILED).",
            &["A block list listing of the client's address, a relay refusal, or content refused."],
            &["Read the server text; check block lists; enable SMTP authentication."],
        ),
        smtp_reply: Some(554),
        transient: Some(false),
    },
    OutlookCode {
        code: 0x800C_CC78,
        entry: entry(
            "Unable to send: sender rejected",
            "The server refused the sender (the MAIL FROM command) \
             (IXP_E_SMTP_REJECTED_SENDER). Outlook asks to check the e-mail address in the \
             account properties.",
            &[
                "Outlook greets with the computer's name, which is not a valid host name on \
                 the Internet, and servers that check HELO refuse it; authenticating lets the \
                 client past most such checks, so the real fix is SMTP authentication.",
                "SMTP authentication is not enabled or not working, so the server treats the \
                 client as a stranger.",
                "The sender or reply address in the account is not one the server accepts for \
                 this user (for example a different domain).",
            ],
            &[
                "Tick 'My outgoing server (SMTP) requires authentication', on port 587 with \
                 STARTTLS.",
                "Check that the account's e-mail and reply addresses are the account's own.",
                "`relais send` with the same sender address and credentials shows the exact \
                 reply to MAIL FROM; the server's log shows the HELO name Outlook used.",
            ],
        ),
        smtp_reply: None,
        transient: Some(false),
    },
    OutlookCode {
        code: 0x800C_CC79,
        entry: entry(
            "Recipient rejected (often: relaying denied)",
            "The server refused one or more recipients (the RCPT TO command) \
             (IXP_E_SMTP_REJECTED_RECIPIENTS). For outside recipients it usually means the \
             server does not relay for this client.",
            &[
                "Outlook is not authenticated and its address is not in the server's relay \
                 networks, so mail to other domains is refused ('550/554 5.7.1 Relaying \
                 denied').",
                "A recipient in the server's own domain does not exist (5.1.1).",
            ],
            &[
                "Enable SMTP authentication (port 587, STARTTLS), or add the client's network \
                 to the server's relay networks if it is trusted.",
                "`relais probe` or `relais send` with that recipient shows the reply to RCPT \
                 TO.",
            ],
        ),
        smtp_reply: None,
        transient: Some(false),
    },
    OutlookCode {
        code: 0x800C_CC7A,
        entry: entry(
            "No sender address",
            "The message had no sender address to give in MAIL FROM (IXP_E_SMTP_NO_SENDER).",
            &["The account's e-mail address is empty."],
            &["Fill in the e-mail address in the account settings."],
        ),
        smtp_reply: None,
        transient: None,
    },
    OutlookCode {
        code: 0x800C_CC7B,
        entry: entry(
            "No recipients",
            "The message had no recipient to give in RCPT TO (IXP_E_SMTP_NO_RECIPIENTS).",
            &["Empty To, Cc and Bcc, or all recipients invalid."],
            &["Add a valid recipient."],
        ),
        smtp_reply: None,
        transient: None,
    },
    OutlookCode {
        code: 0x800C_CC7C,
        entry: entry(
            "Server requires STARTTLS (530)",
            "The server answered that it requires STARTTLS before going on \
             (IXP_E_SMTP_530_STARTTLS_REQUIRED).",
            &["Encryption is off in the account settings."],
            &["Select STARTTLS ('TLS') on port 587, or SSL/TLS on port 465."],
        ),
        smtp_reply: Some(530),
        transient: Some(false),
    },
    OutlookCode {
        code: 0x800C_CC7D,
        entry: entry(
            "Server does not support secure connections (no STARTTLS)",
            "Outlook was told to use STARTTLS but the server's EHLO reply did not offer it \
             (IXP_E_SMTP_NO_STARTTLS_SUPPORT).",
            &[
                "TLS is not configured on the server (no certificate), or only on another port.",
                "A firewall's SMTP inspection removes STARTTLS from the EHLO reply.",
                "The port is wrong: 465 expects TLS from the start rather than STARTTLS.",
            ],
            &[
                "`relais probe` lists the EHLO reply: check that STARTTLS is there; if it is \
                 there from outside but not from the client's network, something in between \
                 strips it.",
                "Use SSL/TLS on 465 or STARTTLS on 587, whichever the server offers.",
            ],
        ),
        smtp_reply: None,
        transient: Some(false),
    },
    OutlookCode {
        code: 0x800C_CC7E,
        entry: entry(
            "Server does not support delivery status notifications",
            "A delivery receipt (DSN) was requested but the server does not offer DSN \
             (IXP_S_SMTP_NO_DSN_SUPPORT).",
            &["DSN is missing from the server's EHLO reply."],
            &["Send without a delivery receipt, or check DSN in the EHLO list (`relais probe`)."],
        ),
        smtp_reply: None,
        transient: None,
    },
    OutlookCode {
        code: 0x800C_CC7F,
        entry: entry(
            "STARTTLS failed (454)",
            "The server offered STARTTLS but could not start TLS (IXP_E_SMTP_454_STARTTLS_FAILED).",
            &["The server's certificate or key cannot be used, or TLS is misconfigured there."],
            &[
                "`relais probe` shows the STARTTLS stage and certificate; check the server's \
                 TLS log.",
            ],
        ),
        smtp_reply: Some(454),
        transient: Some(true),
    },
    OutlookCode {
        code: 0x800C_CC80,
        entry: entry(
            "No authentication method in common with the server",
            "None of the authentication methods Outlook supports is offered by the server. \
             (Widely reported wording; the symbolic name is not confirmed here.)",
            &[
                "The server does not advertise AUTH on this port, or only after STARTTLS \
                 (relais and Postfix hide AUTH until TLS is on) while Outlook has encryption \
                 off.",
                "The server only offers mechanisms Outlook does not use, or SPA is required on \
                 one side only.",
            ],
            &[
                "`relais probe` shows the AUTH line of the EHLO reply before and after \
                 STARTTLS; on 587 it should list PLAIN and LOGIN after STARTTLS.",
                "Set encryption to STARTTLS (587) or SSL/TLS (465) so that AUTH is offered.",
            ],
        ),
        smtp_reply: None,
        transient: Some(false),
    },
    OutlookCode {
        code: 0x800C_CC90,
        entry: entry(
            "POP3 server returned an error",
            "The incoming-mail (POP3) server answered -ERR (IXP_E_POP3_RESPONSE_ERROR). This is \
             about receiving mail, not SMTP.",
            &["A POP3 logon or mailbox problem; often the mailbox is locked by another session."],
            &[
                "Check the POP3 settings (110, or 995 with SSL) and the server text; relais \
                 does not serve POP3.",
            ],
        ),
        smtp_reply: None,
        transient: None,
    },
    OutlookCode {
        code: 0x800C_CC91,
        entry: entry(
            "POP3 user name rejected",
            "The POP3 server refused the user name (IXP_E_POP3_INVALID_USER_NAME).",
            &["Wrong user name; many servers want the full e-mail address."],
            &["Check the user name in the incoming-mail settings."],
        ),
        smtp_reply: None,
        transient: None,
    },
    OutlookCode {
        code: 0x800C_CC92,
        entry: entry(
            "POP3 logon failed (password rejected)",
            "The POP3 server refused the password (IXP_E_POP3_INVALID_PASSWORD). This is about \
             receiving mail; sending may still work.",
            &[
                "Wrong or changed password, or SPA ticked for a server without it.",
                "If the server allows sending only after a POP3 login ('POP before SMTP'), \
                 sending fails too.",
            ],
            &["Re-enter the password; untick SPA; prefer SMTP authentication for sending."],
        ),
        smtp_reply: None,
        transient: None,
    },
    OutlookCode {
        code: 0x800C_CCD1,
        entry: entry(
            "IMAP login failed",
            "The IMAP server refused the LOGIN (IXP_E_IMAP_LOGINFAILURE). This is about reading \
             mail, not SMTP.",
            &["Wrong user name or password, or an app password is required."],
            &["Check the IMAP credentials (143 with STARTTLS, or 993)."],
        ),
        smtp_reply: None,
        transient: None,
    },
    OutlookCode {
        code: 0x800C_CCDD,
        entry: entry(
            "IMAP server closed the connection",
            "The IMAP server ended the session unasked (IXP_E_IMAP_UNSOLICITED_BYE).",
            &["An idle time-out or a server restart."],
            &["Usually harmless; reconnect."],
        ),
        smtp_reply: None,
        transient: None,
    },
];
