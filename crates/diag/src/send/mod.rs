//! The engine behind `relais send`: one test message and the whole dialogue, as swaks does.
//!
//! The options are read in two steps (ripgrep's "low" and "high" arguments): [`SendOptions`]
//! is what was asked; a [`Plan`] is what it means once files are read, addresses parsed and the
//! message built (`plan`, `message`). The caller adds the credentials it asked for
//! ([`Plan::set_auth`]); only then does the network come in (`dialogue`), and [`run`] returns
//! what happened ([`Sent`]: its exit code and JSON report).
//!
//! # Exit codes
//!
//! Modelled on swaks' (same numbers for the same stage), so scripts written for one read the
//! other. A timeout counts for the stage it happened in.
//!
//! | code | meaning |
//! |-----:|---------|
//! | 0  | the message was accepted (or the session stopped cleanly where `quit_after` said) |
//! | 1  | the options do not make sense: bad address, unreadable file, no server to send to |
//! | 2  | no connection: host not found, no usable MX, connection refused, timed out (filtered), unreachable |
//! | 6  | the server closed or reset the connection unexpectedly |
//! | 21 | the greeting was not `220`, or did not come in time |
//! | 22 | EHLO (and the HELO fallback) refused |
//! | 23 | MAIL FROM refused |
//! | 24 | no recipient accepted |
//! | 25 | DATA (or a BDAT chunk before the last) refused |
//! | 26 | the message was refused after its content (after the final `.` or `BDAT … LAST`) |
//! | 27 | QUIT after a successful send was answered with an error |
//! | 28 | AUTH failed: not offered, mechanism not offered, or credentials refused |
//! | 29 | TLS failed: STARTTLS not offered (when required), refused, handshake or certificate error |
//! | 30 | the server does not offer an extension the options need (CHUNKING, SMTPUTF8, 8BITMIME, DSN) |
//! | 32 | EHLO refused after TLS started |

mod dialogue;
mod message;
mod plan;

use std::path::PathBuf;
use std::time::Duration;

use relais_client::{Sink, SmtpClient, TlsPolicy, Transcript};
use relais_dns::Nameserver;
use relais_proto::Ret;
use relais_proto::date::millis;
use serde_json::{Value, json};

pub use plan::Plan;

use crate::Mechanism;
use dialogue::Outcome;

/// Exit codes of `relais send` (the table is in the module documentation).
pub mod exit {
    /// Accepted, or stopped where `quit_after` said.
    pub const OK: u8 = 0;
    /// The options do not make sense.
    pub const USAGE: u8 = 1;
    /// No connection could be made.
    pub const CONNECT: u8 = 2;
    /// The server closed or reset the connection unexpectedly.
    pub const CLOSED: u8 = 6;
    /// Bad or missing greeting.
    pub const BANNER: u8 = 21;
    /// EHLO / HELO refused.
    pub const HELO: u8 = 22;
    /// MAIL FROM refused.
    pub const MAIL: u8 = 23;
    /// No recipient accepted.
    pub const RCPT: u8 = 24;
    /// DATA or a non-last BDAT chunk refused.
    pub const DATA: u8 = 25;
    /// The message refused after its content.
    pub const MESSAGE: u8 = 26;
    /// QUIT answered with an error.
    pub const QUIT: u8 = 27;
    /// AUTH failed.
    pub const AUTH: u8 = 28;
    /// TLS failed.
    pub const TLS: u8 = 29;
    /// A needed extension is not offered.
    pub const EXTENSION: u8 = 30;
    /// EHLO refused after TLS.
    pub const EHLO_AFTER_TLS: u8 = 32;
}

/// Where to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum QuitAfter {
    /// Right after the TCP connection opens (nothing is read or sent).
    Connect,
    /// After the greeting.
    Banner,
    /// After the first EHLO.
    Ehlo,
    /// After TLS is up (and EHLO sent again).
    Tls,
    /// After AUTH.
    Auth,
    /// After MAIL FROM.
    Mail,
    /// After the recipients.
    Rcpt,
    /// After the server's 354 to DATA: the connection is dropped without sending the content.
    Data,
}

/// How to start TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Never.
    Off,
    /// STARTTLS, required.
    Required,
    /// STARTTLS when offered.
    Optional,
    /// TLS from the first byte.
    OnConnect,
}

/// The message: one given whole, or one to build.
#[derive(Debug, Clone, Default)]
pub struct MessageSpec {
    /// The whole message: `@FILE`, `-` for standard input, or the text itself (`\n` stands
    /// for a line break). The fields below are then unused.
    pub data: Option<String>,
    /// Extra headers, `Name: value`; each replaces a generated header of the same name.
    pub headers: Vec<String>,
    /// The Subject: (default: "test" and the date).
    pub subject: Option<String>,
    /// The body text; `@FILE` reads a file, `-` standard input.
    pub body: Option<String>,
    /// Files to attach.
    pub attach: Vec<PathBuf>,
}

/// What to send, and how.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// The server, `host[:port]`; without it, the MX hosts of the first recipient's domain.
    pub server: Option<String>,
    /// The port (overrides the one in `server`; for MX hosts too).
    pub port: Option<u16>,
    /// The nameserver for the MX lookup.
    pub nameserver: Nameserver,
    /// The envelope sender and From:; `<>` or "" for the null sender (default: $USER@host).
    pub from: Option<String>,
    /// The recipients (RCPT TO and To:).
    pub to: Vec<String>,
    /// The message.
    pub message: MessageSpec,
    /// The EHLO name (default: this host's name).
    pub ehlo: Option<String>,
    /// How to start TLS.
    pub tls: TlsMode,
    /// How to judge the certificate.
    pub tls_policy: TlsPolicy,
    /// MAIL, RCPT and DATA as one group when the server offers PIPELINING.
    pub pipeline: bool,
    /// BDAT (CHUNKING) with chunks of this many octets instead of DATA.
    pub bdat: Option<usize>,
    /// Declare SMTPUTF8 (set by itself for a non-ASCII address).
    pub smtputf8: bool,
    /// Declare BODY=8BITMIME.
    pub eight_bit_mime: bool,
    /// DSN NOTIFY=: `NEVER` or a list of SUCCESS, FAILURE, DELAY.
    pub dsn_notify: Option<String>,
    /// DSN RET=.
    pub dsn_ret: Option<Ret>,
    /// DSN ENVID=.
    pub envid: Option<String>,
    /// Where to stop.
    pub quit_after: Option<QuitAfter>,
    /// The wait for the connection and for each reply.
    pub timeout: Duration,
    /// Connect from this local address.
    pub local_address: Option<std::net::IpAddr>,
    /// Speak LMTP (RFC 2033): LHLO, and one reply per recipient after the content. The
    /// server may be a Unix socket's path.
    pub lmtp: bool,
    /// DSN `ORCPT=rfc822;…` on each RCPT: `Some(None)`, each recipient's own address;
    /// `Some(Some(a))`, the address `a`.
    pub orcpt: Option<Option<String>>,
}

/// Credentials for AUTH (the password is not shown by `Debug`).
#[derive(Clone)]
pub struct Credentials {
    /// The mechanism; `None`: the first of PLAIN and LOGIN the server offers.
    pub mechanism: Option<Mechanism>,
    /// The user name.
    pub user: String,
    /// The password (the bearer token for XOAUTH2).
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("mechanism", &self.mechanism)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// What happened: the exit code and, for `--json`, the report.
pub struct Sent {
    outcome: Outcome,
    client: SmtpClient,
    /// The server (or MX) as shown in the report.
    server: String,
}

/// Sends on a runtime of its own. `live` sees each transcript entry as it happens (a terminal
/// shows the dialogue that way); without it the transcript is only in the report. An error
/// means nothing was tried (no runtime).
pub fn run(plan: &Plan, live: Option<Sink>) -> Result<Sent, String> {
    let runtime = relais_client::current_thread_runtime()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let transcript = match live {
        Some(sink) => Transcript::with_sink(sink),
        None => Transcript::new(),
    };
    let mut client = SmtpClient::with_transcript(plan.config.clone(), transcript);
    let outcome = runtime.block_on(dialogue::session(plan, &mut client));
    Ok(Sent {
        outcome,
        client,
        server: plan.server(),
    })
}

impl Sent {
    /// The exit code (see [`exit`]).
    pub fn code(&self) -> u8 {
        self.outcome.code
    }

    /// The JSON report: result, failed stage, reply, TLS, timings, transcript.
    pub fn to_json(&self) -> String {
        self.json().to_string()
    }

    fn json(&self) -> Value {
        let (client, o) = (&self.client, &self.outcome);
        let tls = client.tls_info().map(|t| {
            let (verified, why) = match &t.verification {
                relais_client::CertVerification::Verified => (true, None),
                relais_client::CertVerification::Failed(w) => (false, Some(w.clone())),
            };
            json!({
                "version": t.version,
                "cipher": t.cipher,
                "server_name": t.server_name,
                "certificates": t.peer_certificates.len(),
                "verified": verified,
                "verification_error": why,
            })
        });
        let reply = o.reply.as_ref().map(|r| {
            json!({
                "code": r.code,
                "status": r.status.map(|s| s.to_string()),
                "text": r.lines.join("\n"),
            })
        });
        let timings: Vec<Value> = client
            .timings()
            .iter()
            .map(|t| json!({"stage": t.stage.as_str(), "ms": millis(t.took)}))
            .collect();
        let transcript: Vec<Value> = client
            .transcript()
            .entries
            .iter()
            .map(|e| {
                json!({
                    "at_ms": millis(e.at),
                    "dir": e.dir.as_str(),
                    "tls": e.tls,
                    "text": e.text,
                })
            })
            .collect();
        json!({
            "server": self.server,
            "address": client.peer().map(|a| a.to_string()),
            "ok": o.code == exit::OK,
            "exit_code": o.code,
            "failed_stage": o.stage.map(|s| s.as_str()),
            "error": o.error,
            "reply": reply,
            "tls": tls,
            "timings": timings,
            "transcript": transcript,
        })
    }
}
