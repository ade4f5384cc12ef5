//! `relais send`: its arguments, the options they mean for [`relais_diag::send`], the prompts
//! for a missing user name or password, printing and the exit code. The plan, the dialogue
//! and the message are the library's; the exit code table is in its documentation and in
//! `--help` (a mistyped option is refused by the argument parser before anything runs).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use relais_client::Entry;
use relais_diag::Mechanism;
use relais_diag::send::{self, Credentials, MessageSpec, Plan, SendOptions, TlsMode, exit};
use relais_dns::Nameserver;
use relais_proto::Ret;

use crate::args::{ResolverArgs, TlsArgs, ask};

const EXIT_TABLE: &str = "\
Exit codes (modelled on swaks'; a timeout counts for the stage it happened in):
   0  the message was accepted (or the session stopped where --quit-after said)
   1  the options do not make sense: bad address, unreadable file, no server to send to
   2  no connection: host not found, no usable MX, refused, timed out (filtered), unreachable
   6  the server closed or reset the connection unexpectedly
  21  the greeting was not 220, or did not come in time
  22  EHLO (and the HELO fallback) refused
  23  MAIL FROM refused
  24  no recipient accepted
  25  DATA (or a BDAT chunk before the last) refused
  26  the message was refused after its content (final '.' or BDAT LAST; with LMTP, any
      accepted recipient's reply after it)
  27  QUIT after a successful send was answered with an error
  28  AUTH failed: not offered, mechanism not offered, or credentials refused
  29  TLS failed: STARTTLS not offered (--tls), refused, handshake or certificate error
  30  the server does not offer an extension the options need (CHUNKING, SMTPUTF8, 8BITMIME, DSN)
  32  EHLO refused after TLS started

A mistyped option is refused by the argument parser before anything runs (code 64, EX_USAGE).

Transcript markers: '<-' received, ' ->' sent, '<~' / ' ~>' the same under TLS,
'===' information, '***' errors; each line starts with the seconds since the start.";

/// Where to stop, for `--quit-after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum QuitAfter {
    /// Right after the TCP connection opens (nothing is read or sent).
    Connect,
    /// After the greeting.
    Banner,
    /// After the first EHLO.
    #[value(alias = "helo", alias = "first-helo")]
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

/// The environment variable `--auth xoauth2` takes its token from.
const TOKEN_ENV: &str = "RELAIS_OAUTH_TOKEN";

/// SASL mechanisms for `--auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AuthMechanism {
    /// The first of PLAIN and LOGIN the server offers.
    Any,
    /// AUTH PLAIN.
    Plain,
    /// AUTH LOGIN.
    Login,
    /// AUTH CRAM-MD5 (RFC 2195): the password never travels.
    CramMd5,
    /// AUTH XOAUTH2 (Gmail, Office 365): the secret is an OAuth 2.0 bearer token
    /// (--oauth-token-file, $RELAIS_OAUTH_TOKEN, or --password).
    Xoauth2,
}

/// The protocol spoken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Protocol {
    /// SMTP (EHLO, one reply after the content).
    Smtp,
    /// LMTP (RFC 2033: LHLO, one reply per recipient after the content).
    Lmtp,
}

/// DSN `RET=` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DsnRet {
    /// Return the full message in a failure report.
    Full,
    /// Return its headers only.
    Hdrs,
}

/// `relais send`: what was typed.
#[derive(Args, Debug)]
#[command(
    after_long_help = EXIT_TABLE,
    mut_arg("resolver", |a| a.help(
        "The nameserver for the MX lookup (no --server): IP, IP:PORT or [IPv6]:PORT; default \
         /etc/resolv.conf"
    )),
)]
pub struct SendArgs {
    /// The server, `host[:port]` (port 25; 465 with --tls-on-connect). Without it, the MX hosts
    /// of the first recipient's domain, in order of preference.
    #[arg(long, short = 's', value_name = "HOST[:PORT]")]
    server: Option<String>,
    /// The port to connect to (overrides the one in --server; for MX hosts too).
    #[arg(long, short = 'p')]
    port: Option<u16>,
    #[command(flatten)]
    resolver: ResolverArgs,
    /// The envelope sender (MAIL FROM) and From: header; `<>` or "" for the null sender.
    /// Default: $USER@<this host>.
    #[arg(long, short = 'f', value_name = "ADDRESS")]
    from: Option<String>,
    /// A recipient (RCPT TO and To: header); repeat it or give a comma list.
    #[arg(
        long,
        short = 't',
        value_name = "ADDRESS",
        required = true,
        value_delimiter = ','
    )]
    to: Vec<String>,
    /// An extra header, `Name: value`; it replaces a generated header of the same name.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// The Subject: header (default: "test" and the date).
    #[arg(long)]
    subject: Option<String>,
    /// The body text; `@FILE` reads a file, `-` standard input.
    #[arg(long, value_name = "TEXT|@FILE|-")]
    body: Option<String>,
    /// A file to attach (MIME); repeatable.
    #[arg(long = "attach", value_name = "FILE")]
    attach: Vec<PathBuf>,
    /// Send this whole message as is instead of building one: `@FILE`, `-` for standard input,
    /// or the text itself (where `\n` stands for a line break).
    #[arg(long, value_name = "@FILE|-|TEXT", conflicts_with_all = ["headers", "subject", "body", "attach"])]
    data: Option<String>,
    /// The name to give in EHLO (default: this host's name).
    #[arg(long, value_name = "NAME")]
    ehlo: Option<String>,
    /// Require STARTTLS: stop (exit 29) if the server does not offer it or it fails.
    #[arg(long, conflicts_with_all = ["tls_optional", "tls_on_connect"])]
    tls: bool,
    /// Use STARTTLS when offered; go on in clear text when it is not or is refused.
    #[arg(long, conflicts_with = "tls_on_connect")]
    tls_optional: bool,
    #[command(flatten)]
    tls_args: TlsArgs,
    /// Authenticate: PLAIN, LOGIN, CRAM-MD5, XOAUTH2, or (with no value) the first of PLAIN
    /// and LOGIN the server offers.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "any", value_name = "MECH", ignore_case = true)]
    auth: Option<AuthMechanism>,
    /// The user name for AUTH (asked for when missing); implies --auth.
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// The password for AUTH; asked for without echo when missing (read from standard input
    /// when it is not a terminal).
    #[arg(long, value_name = "SECRET")]
    password: Option<String>,
    /// The OAuth 2.0 bearer token for --auth xoauth2, read from this file (else
    /// $RELAIS_OAUTH_TOKEN, else --password).
    #[arg(long, value_name = "FILE")]
    oauth_token_file: Option<std::path::PathBuf>,
    /// SMTP, or LMTP (RFC 2033) to a delivery agent such as Dovecot's lmtp; with lmtp,
    /// --server may be a Unix socket's path.
    #[arg(long, value_enum, default_value = "smtp", ignore_case = true)]
    protocol: Protocol,
    /// Send MAIL, RCPT and DATA as one group (RFC 2920) when the server offers PIPELINING.
    #[arg(long)]
    pipeline: bool,
    /// Send the message with BDAT (RFC 3030 CHUNKING) instead of DATA.
    #[arg(long)]
    bdat: bool,
    /// The size of each BDAT chunk, in octets.
    #[arg(
        long,
        value_name = "OCTETS",
        default_value_t = 65536,
        requires = "bdat"
    )]
    bdat_chunk_size: usize,
    /// DSN: when to report, `NEVER` or a list of SUCCESS, FAILURE, DELAY (RCPT NOTIFY=).
    #[arg(long, value_name = "LIST")]
    dsn_notify: Option<String>,
    /// DSN: how much of the message a failure report returns (MAIL RET=).
    #[arg(long, value_enum, ignore_case = true)]
    dsn_ret: Option<DsnRet>,
    /// DSN: an envelope identifier returned in reports (MAIL ENVID=).
    #[arg(long, value_name = "ID")]
    envid: Option<String>,
    /// DSN: the original recipient (RCPT ORCPT=rfc822;ADDRESS); with no value, each
    /// recipient's own address.
    #[arg(long, value_name = "ADDRESS", num_args = 0..=1, default_missing_value = "")]
    orcpt: Option<String>,
    /// Declare SMTPUTF8 on MAIL (needed for non-ASCII addresses; set by itself when one is).
    #[arg(long)]
    smtputf8: bool,
    /// Declare BODY=8BITMIME on MAIL.
    #[arg(long = "8bitmime")]
    eight_bit_mime: bool,
    /// Stop after this stage, with QUIT (or by dropping the connection for `connect` and
    /// `data`).
    #[arg(long, value_enum, value_name = "STAGE", ignore_case = true)]
    quit_after: Option<QuitAfter>,
    /// Seconds to wait for the connection and for each reply.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    timeout: f64,
    /// Connect from this local address (one of this machine's), like swaks'
    /// --local-interface: to test what a server says to another client address.
    #[arg(long, value_name = "IP", visible_alias = "local-interface")]
    local_address: Option<std::net::IpAddr>,
    /// Print one JSON object (result, TLS, timings, transcript) instead of the transcript.
    #[arg(long)]
    json: bool,
}

/// Runs `relais send`.
pub fn run(args: SendArgs) -> ExitCode {
    let plan = match plan(&args) {
        Ok(plan) => plan,
        Err(e) => return usage(&e),
    };
    let live: Option<relais_client::Sink> = if args.json {
        None
    } else {
        Some(Box::new(|e: &Entry| println!("{}", relais_diag::show(e))))
    };
    match send::run(&plan, live) {
        Ok(sent) => {
            if args.json {
                println!("{}", sent.to_json());
            }
            ExitCode::from(sent.code())
        }
        Err(e) => usage(&e),
    }
}

fn usage(message: &str) -> ExitCode {
    eprintln!("relais send: {message}");
    ExitCode::from(exit::USAGE)
}

/// What the arguments mean, credentials included (asked for when missing).
fn plan(a: &SendArgs) -> Result<Plan, String> {
    if !(a.timeout > 0.0 && a.timeout.is_finite()) {
        return Err("--timeout must be a positive number of seconds".into());
    }
    let tls = if a.tls_args.on_connect() {
        TlsMode::OnConnect
    } else if a.tls {
        TlsMode::Required
    } else if a.tls_optional {
        TlsMode::Optional
    } else {
        TlsMode::Off
    };
    let nameserver = match &a.server {
        // The resolver is only for the MX lookup.
        Some(_) => Nameserver::System,
        None => a.resolver.nameserver()?,
    };
    let mut plan = Plan::new(&SendOptions {
        server: a.server.clone(),
        port: a.port,
        nameserver,
        from: a.from.clone(),
        to: a.to.clone(),
        message: MessageSpec {
            data: a.data.clone(),
            headers: a.headers.clone(),
            subject: a.subject.clone(),
            body: a.body.clone(),
            attach: a.attach.clone(),
        },
        ehlo: a.ehlo.clone(),
        tls,
        tls_policy: a.tls_args.policy(),
        pipeline: a.pipeline,
        bdat: a.bdat.then_some(a.bdat_chunk_size),
        smtputf8: a.smtputf8,
        eight_bit_mime: a.eight_bit_mime,
        dsn_notify: a.dsn_notify.clone(),
        dsn_ret: a.dsn_ret.map(|r| match r {
            DsnRet::Full => Ret::Full,
            DsnRet::Hdrs => Ret::Hdrs,
        }),
        envid: a.envid.clone(),
        quit_after: a.quit_after.map(QuitAfter::stage),
        timeout: Duration::from_secs_f64(a.timeout),
        local_address: a.local_address,
        lmtp: a.protocol == Protocol::Lmtp,
        orcpt: a
            .orcpt
            .as_ref()
            .map(|o| Some(o.clone()).filter(|o| !o.trim().is_empty())),
    })?;
    if a.auth.is_some() || a.user.is_some() {
        plan.set_auth(credentials(a)?);
    }
    Ok(plan)
}

/// `--auth`, `--user`, `--password`; the missing ones asked for.
fn credentials(a: &SendArgs) -> Result<Credentials, String> {
    let user = match &a.user {
        Some(u) => u.clone(),
        None => ask(
            "Username: ",
            false,
            "Username needed and none on standard input",
        )?,
    };
    let token = match (&a.oauth_token_file, a.auth) {
        (Some(file), _) => Some(
            std::fs::read_to_string(file)
                .map(|t| t.trim().to_string())
                .map_err(|e| format!("--oauth-token-file {}: {e}", file.display()))?,
        ),
        (None, Some(AuthMechanism::Xoauth2)) => std::env::var(TOKEN_ENV).ok(),
        _ => None,
    };
    let password = match (&a.password, token) {
        (_, Some(token)) => token,
        (Some(p), None) => p.clone(),
        (None, None) => {
            if a.data.as_deref() == Some("-") || a.body.as_deref() == Some("-") {
                return Err("standard input carries the message: give --password too".into());
            }
            ask(
                "Password: ",
                true,
                "Password needed and none on standard input",
            )?
        }
    };
    Ok(Credentials {
        mechanism: match a.auth {
            None | Some(AuthMechanism::Any) => None,
            Some(AuthMechanism::Plain) => Some(Mechanism::Plain),
            Some(AuthMechanism::Login) => Some(Mechanism::Login),
            Some(AuthMechanism::CramMd5) => Some(Mechanism::CramMd5),
            Some(AuthMechanism::Xoauth2) => Some(Mechanism::XOAuth2),
        },
        user,
        password,
    })
}

impl QuitAfter {
    fn stage(self) -> send::QuitAfter {
        match self {
            QuitAfter::Connect => send::QuitAfter::Connect,
            QuitAfter::Banner => send::QuitAfter::Banner,
            QuitAfter::Ehlo => send::QuitAfter::Ehlo,
            QuitAfter::Tls => send::QuitAfter::Tls,
            QuitAfter::Auth => send::QuitAfter::Auth,
            QuitAfter::Mail => send::QuitAfter::Mail,
            QuitAfter::Rcpt => send::QuitAfter::Rcpt,
            QuitAfter::Data => send::QuitAfter::Data,
        }
    }
}
