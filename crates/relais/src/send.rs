//! `relais send`: send one test message and show the whole dialogue, as swaks does.
//!
//! The options are read in two steps (ripgrep's "low" and "high" arguments): [`SendArgs`] is
//! what was typed; [`Plan`] is what it means once files are read, addresses parsed, the message
//! built and the password asked for. Only then does the network come in.
//!
//! # Exit codes
//!
//! Modelled on swaks' (same numbers for the same stage), so scripts written for one read the
//! other. A timeout counts for the stage it happened in. A mistyped option is refused by the
//! argument parser before anything runs, with its own code 2 (as for every relais command).
//!
//! | code | meaning |
//! |-----:|---------|
//! | 0  | the message was accepted (or the session stopped cleanly where `--quit-after` said) |
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
//! | 29 | TLS failed: STARTTLS not offered (with `--tls`), refused, handshake or certificate error |
//! | 30 | the server does not offer an extension the options need (CHUNKING, SMTPUTF8, 8BITMIME, DSN) |
//! | 32 | EHLO refused after TLS started |

use std::io::{IsTerminal, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use mail_builder::MessageBuilder;
use mail_builder::headers::HeaderType;
use mail_builder::headers::address::Address;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use relais_client::{ClientConfig, ClientError, Entry, SmtpClient, Stage, TlsPolicy, Transcript};
use relais_dns::Nameserver;
use relais_dns::mx::RouteKind;
use relais_proto::params::xtext_encode;
use relais_proto::{BodyType, MailParams, Mailbox, RcptParams, Ret, ReversePath};
use serde_json::{Value, json};

/// Exit codes of `relais send`; the table is in the module documentation and in `--help`.
pub mod exit {
    /// Accepted, or stopped where `--quit-after` said.
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
  26  the message was refused after its content (final '.' or BDAT LAST)
  27  QUIT after a successful send was answered with an error
  28  AUTH failed: not offered, mechanism not offered, or credentials refused
  29  TLS failed: STARTTLS not offered (--tls), refused, handshake or certificate error
  30  the server does not offer an extension the options need (CHUNKING, SMTPUTF8, 8BITMIME, DSN)
  32  EHLO refused after TLS started

A mistyped option is refused by the argument parser before anything runs (code 2).

Transcript markers: '<-' received, ' ->' sent, '<~' / ' ~>' the same under TLS,
'===' information, '***' errors; each line starts with the seconds since the start.";

/// Where to stop, for `--quit-after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum QuitAfter {
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

/// SASL mechanisms for `--auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMechanism {
    /// The first of PLAIN and LOGIN the server offers.
    Any,
    /// AUTH PLAIN.
    Plain,
    /// AUTH LOGIN.
    Login,
}

/// DSN `RET=` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DsnRet {
    /// Return the full message in a failure report.
    Full,
    /// Return its headers only.
    Hdrs,
}

/// `relais send`: what was typed.
#[derive(Args, Debug)]
#[command(after_long_help = EXIT_TABLE)]
pub struct SendArgs {
    /// The server, `host[:port]` (port 25; 465 with --tls-on-connect). Without it, the MX hosts
    /// of the first recipient's domain, in order of preference.
    #[arg(long, short = 's', value_name = "HOST[:PORT]")]
    server: Option<String>,
    /// The port to connect to (overrides the one in --server; for MX hosts too).
    #[arg(long, short = 'p')]
    port: Option<u16>,
    /// The nameserver for the MX lookup (no --server): IP, IP:PORT or [IPv6]:PORT; default
    /// /etc/resolv.conf.
    #[arg(long, env = relais_dns::RESOLVER_ENV, value_name = "IP[:PORT]")]
    resolver: Option<String>,
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
    /// TLS from the first byte (SMTPS, port 465).
    #[arg(long)]
    tls_on_connect: bool,
    /// Refuse a certificate that does not verify (off by default, as in swaks: the result is
    /// shown either way).
    #[arg(long)]
    tls_verify: bool,
    /// Also trust the CA certificates in this PEM file.
    #[arg(long, value_name = "FILE")]
    tls_ca_path: Option<PathBuf>,
    /// Authenticate: PLAIN, LOGIN, or (with no value) the first of them the server offers.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "any", value_name = "MECH", ignore_case = true)]
    auth: Option<AuthMechanism>,
    /// The user name for AUTH (asked for when missing); implies --auth.
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// The password for AUTH; asked for without echo when missing (read from standard input
    /// when it is not a terminal).
    #[arg(long, value_name = "SECRET")]
    password: Option<String>,
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
    /// Print one JSON object (result, TLS, timings, transcript) instead of the transcript.
    #[arg(long)]
    json: bool,
}

/// How to start TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsMode {
    /// Never.
    Off,
    /// STARTTLS, required.
    Required,
    /// STARTTLS when offered.
    Optional,
    /// TLS from the first byte.
    OnConnect,
}

/// Credentials for AUTH.
struct Auth {
    mechanism: AuthMechanism,
    user: String,
    password: String,
}

/// Where to send.
enum Target {
    /// `--server`.
    Server { host: String },
    /// The MX hosts of the first recipient's domain.
    Mx {
        domain: String,
        resolver: Nameserver,
    },
}

/// `relais send`: what it means.
struct Plan {
    target: Target,
    port: u16,
    ehlo: String,
    from: ReversePath,
    to: Vec<Mailbox>,
    message: Vec<u8>,
    tls: TlsMode,
    auth: Option<Auth>,
    pipeline: bool,
    bdat: Option<usize>,
    mail_params: MailParams,
    rcpt_params: RcptParams,
    quit_after: Option<QuitAfter>,
    config: ClientConfig,
}

/// How a session ended.
struct Outcome {
    code: u8,
    /// The stage that failed, if one did.
    stage: Option<Stage>,
    /// What went wrong, in one line.
    error: Option<String>,
    /// The server's reply that ended it, if a reply did.
    reply: Option<relais_proto::Reply>,
}

impl Outcome {
    fn ok() -> Outcome {
        Outcome {
            code: exit::OK,
            stage: None,
            error: None,
            reply: None,
        }
    }

    fn fail(code: u8, stage: Stage, error: impl Into<String>) -> Outcome {
        Outcome {
            code,
            stage: Some(stage),
            error: Some(error.into()),
            reply: None,
        }
    }
}

/// Runs `relais send`.
pub fn run(args: SendArgs) -> ExitCode {
    let plan = match Plan::from_args(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("relais send: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("relais send: cannot start the runtime: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let transcript = if args.json {
        Transcript::new()
    } else {
        Transcript::with_sink(Box::new(|e: &Entry| println!("{}", show(e))))
    };
    let mut client = SmtpClient::with_transcript(plan.config.clone(), transcript);
    let outcome = runtime.block_on(session(&plan, &mut client));
    if args.json {
        println!("{}", to_json(&plan, &client, &outcome));
    }
    ExitCode::from(outcome.code)
}

/// One transcript line for the terminal: seconds since the start, marker, text.
pub fn show(e: &Entry) -> String {
    format!("{:>8.3} {e}", e.at.as_secs_f64())
}

impl Plan {
    fn from_args(a: &SendArgs) -> Result<Plan, String> {
        if !(a.timeout > 0.0 && a.timeout.is_finite()) {
            return Err("--timeout must be a positive number of seconds".into());
        }
        let tls = if a.tls_on_connect {
            TlsMode::OnConnect
        } else if a.tls {
            TlsMode::Required
        } else if a.tls_optional {
            TlsMode::Optional
        } else {
            TlsMode::Off
        };
        let to: Vec<Mailbox> =
            a.to.iter()
                .map(|t| t.trim())
                .filter(|t| !t.is_empty())
                .map(|t| parse_mailbox(t).map_err(|e| format!("--to {t:?}: {e}")))
                .collect::<Result<_, _>>()?;
        if to.is_empty() {
            return Err("no recipient: give --to ADDRESS".into());
        }
        let from_text = match &a.from {
            Some(f) => f.clone(),
            None => default_sender(),
        };
        let from = if matches!(from_text.trim(), "" | "<>") {
            ReversePath::Null
        } else {
            ReversePath::Mailbox(
                parse_mailbox(from_text.trim())
                    .map_err(|e| format!("--from {from_text:?}: {e}"))?,
            )
        };
        let default_port = if tls == TlsMode::OnConnect { 465 } else { 25 };
        let (target, port) = match &a.server {
            Some(s) => {
                let (host, port) = split_server(s, default_port)?;
                (Target::Server { host }, port)
            }
            None => {
                let resolver = match a.resolver.as_deref() {
                    None | Some("") => Nameserver::System,
                    Some(r) => r
                        .parse::<Nameserver>()
                        .map_err(|e| format!("--resolver: {e}"))?,
                };
                if to[0].is_address_literal() {
                    let host = to[0].domain.trim_matches(['[', ']']).to_string();
                    (Target::Server { host }, default_port)
                } else {
                    let domain = to[0].domain.clone();
                    (Target::Mx { domain, resolver }, default_port)
                }
            }
        };
        let port = a.port.unwrap_or(port);
        let ehlo = a.ehlo.clone().unwrap_or_else(local_hostname);

        let message = match &a.data {
            Some(d) => read_data(d)?,
            None => build_message(a, &from_text, &to)?,
        };

        let auth = if a.auth.is_some() || a.user.is_some() {
            let user = match &a.user {
                Some(u) => u.clone(),
                None => ask("Username: ", false)?,
            };
            let password = match &a.password {
                Some(p) => p.clone(),
                None => {
                    if a.data.as_deref() == Some("-") || a.body.as_deref() == Some("-") {
                        return Err(
                            "standard input carries the message: give --password too".into()
                        );
                    }
                    ask("Password: ", true)?
                }
            };
            Some(Auth {
                mechanism: a.auth.unwrap_or(AuthMechanism::Any),
                user,
                password,
            })
        } else {
            None
        };

        let mut mail_params = MailParams::default();
        let needs_utf8 =
            to.iter().any(|m| !m.is_ascii()) || from.mailbox().is_some_and(|m| !m.is_ascii());
        mail_params.smtputf8 = a.smtputf8 || needs_utf8;
        if a.eight_bit_mime {
            mail_params.body = Some(BodyType::EightBitMime);
        }
        mail_params.ret = a.dsn_ret.map(|r| match r {
            DsnRet::Full => Ret::Full,
            DsnRet::Hdrs => Ret::Hdrs,
        });
        mail_params.envid = a.envid.as_deref().map(xtext_encode);
        let rcpt_params = match &a.dsn_notify {
            Some(n) => RcptParams::parse(&format!("NOTIFY={n}"))
                .map_err(|e| format!("--dsn-notify {n:?}: {e:?}"))?,
            None => RcptParams::default(),
        };

        let mut config = ClientConfig::with_timeout(Duration::from_secs_f64(a.timeout));
        config.tls = TlsPolicy {
            verify: a.tls_verify,
            server_name: None,
            ca_file: a.tls_ca_path.clone(),
            ca_file_only: false,
        };
        Ok(Plan {
            target,
            port,
            ehlo,
            from,
            to,
            message,
            tls,
            auth,
            pipeline: a.pipeline,
            bdat: a.bdat.then_some(a.bdat_chunk_size.max(1)),
            mail_params,
            rcpt_params,
            quit_after: a.quit_after,
            config,
        })
    }

    fn stops_after(&self, stage: QuitAfter) -> bool {
        self.quit_after == Some(stage)
    }

    /// True when anything of DSN was asked for.
    fn wants_dsn(&self) -> bool {
        self.rcpt_params.notify.is_some()
            || self.mail_params.ret.is_some()
            || self.mail_params.envid.is_some()
    }
}

/// The whole dialogue. Never panics on the network; every way out is an [`Outcome`].
async fn session(plan: &Plan, client: &mut SmtpClient) -> Outcome {
    let outcome = dialogue(plan, client).await;
    // Client errors are already in the transcript; refusals and missing extensions are not.
    let recorded = client
        .transcript()
        .entries
        .last()
        .is_some_and(|e| e.dir == relais_client::Direction::Error);
    if let Some(e) = &outcome.error
        && !recorded
    {
        client.transcript_mut().error(e.clone());
    }
    if outcome.code != exit::OK && client.is_connected() {
        // Be polite after a refusal, as swaks is; whatever happens now changes nothing.
        let _ = client.quit().await;
    }
    outcome
}

/// The hosts to try, in order, each with its addresses.
async fn candidates(
    plan: &Plan,
    client: &mut SmtpClient,
) -> Result<Vec<(String, Vec<SocketAddr>)>, Outcome> {
    let (domain, nameserver) = match &plan.target {
        Target::Server { host } => {
            return match relais_client::resolve(host, plan.port).await {
                Ok(a) => Ok(vec![(host.clone(), a)]),
                Err(e) => {
                    client.transcript_mut().error(e.to_string());
                    Err(Outcome::fail(exit::CONNECT, Stage::Resolve, e.to_string()))
                }
            };
        }
        Target::Mx { domain, resolver } => (domain, *resolver),
    };
    let fail = |client: &mut SmtpClient, why: String| {
        client.transcript_mut().error(why.clone());
        Err(Outcome::fail(exit::CONNECT, Stage::Resolve, why))
    };
    client.transcript_mut().info(format!(
        "Looking up the MX of {domain} (nameserver: {nameserver})"
    ));
    let options = relais_dns::ResolverOptions {
        nameserver,
        ..relais_dns::ResolverOptions::default()
    };
    let resolver = match relais_dns::Resolver::new(&options) {
        Ok(r) => r,
        Err(e) => return fail(client, e.to_string()),
    };
    let route = resolver.mail_route(domain).await;
    let hosts: Vec<(String, Vec<SocketAddr>)> = route
        .hosts
        .iter()
        .map(|h| {
            let addrs: Vec<SocketAddr> = h
                .addresses
                .ips()
                .into_iter()
                .map(|ip| SocketAddr::new(ip, plan.port))
                .collect();
            let shown: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
            client.transcript_mut().info(format!(
                "{} {} {} [{}]",
                if route.kind == RouteKind::Implicit {
                    "no MX, the domain itself:"
                } else {
                    "MX"
                },
                h.preference,
                h.name,
                shown.join(", ")
            ));
            (h.name.clone(), addrs)
        })
        .collect();
    let why = match &route.kind {
        RouteKind::Mx | RouteKind::Implicit => None,
        RouteKind::NullMx => Some(format!("{domain} accepts no mail (null MX, RFC 7505)")),
        RouteKind::NoSuchDomain => Some(format!("{domain} does not exist (NXDOMAIN)")),
        RouteKind::NoMailHost => Some(format!("{domain} has neither MX nor address records")),
        RouteKind::Failed(f) => Some(format!("the MX lookup of {domain} failed: {f}")),
    };
    if let Some(why) = why {
        return fail(client, why);
    }
    if hosts.iter().all(|(_, a)| a.is_empty()) {
        return fail(client, format!("no MX host of {domain} has an address"));
    }
    Ok(hosts)
}

async fn dialogue(plan: &Plan, client: &mut SmtpClient) -> Outcome {
    // Connect: every address of every host in turn, until one answers.
    let hosts = match candidates(plan, client).await {
        Ok(h) => h,
        Err(outcome) => return outcome,
    };
    let mut connected = None;
    let mut last_error = None;
    'hosts: for (name, addrs) in &hosts {
        for addr in addrs {
            match client.open(*addr).await {
                Ok(()) => {
                    connected = Some(name.clone());
                    break 'hosts;
                }
                Err(e) => last_error = Some(e),
            }
        }
    }
    let Some(host) = connected else {
        let why =
            last_error.map_or_else(|| "no address to connect to".to_string(), |e| e.to_string());
        return Outcome::fail(exit::CONNECT, Stage::Connect, why);
    };
    let host = host.as_str();
    if plan.stops_after(QuitAfter::Connect) {
        client.close().await;
        return Outcome::ok();
    }
    if plan.tls == TlsMode::OnConnect
        && let Err(e) = client.tls_handshake(host).await
    {
        return failed(e, exit::TLS);
    }
    match client.banner().await {
        Ok(b) if b.code == 220 => {}
        Ok(b) => return refused(Stage::Banner, exit::BANNER, b),
        Err(e) => return failed(e, exit::BANNER),
    }
    if plan.stops_after(QuitAfter::Banner) {
        return quit(client).await;
    }

    let mut ehlo = match client.ehlo_or_helo(&plan.ehlo).await {
        Ok(e) => e,
        Err(e) => return failed(e, exit::HELO),
    };
    if plan.stops_after(QuitAfter::Ehlo) {
        return quit(client).await;
    }

    if matches!(plan.tls, TlsMode::Required | TlsMode::Optional) {
        let required = plan.tls == TlsMode::Required;
        if !ehlo.has("STARTTLS") {
            if required {
                return Outcome::fail(
                    exit::TLS,
                    Stage::StartTls,
                    "the server does not offer STARTTLS",
                );
            }
            client
                .transcript_mut()
                .info("STARTTLS not offered; going on in clear text");
        } else {
            match client.starttls(host).await {
                Ok(_) => match client.ehlo(&plan.ehlo).await {
                    Ok(e) => ehlo = e,
                    Err(e) => return failed(e, exit::EHLO_AFTER_TLS),
                },
                Err(e) if !required && e.connection_usable() => {
                    client
                        .transcript_mut()
                        .info("STARTTLS refused; going on in clear text");
                }
                Err(e) => return failed(e, exit::TLS),
            }
        }
    }
    if plan.stops_after(QuitAfter::Tls) {
        return quit(client).await;
    }

    if let Some(auth) = &plan.auth {
        let offered = ehlo.auth_mechanisms();
        if offered.is_empty() {
            return Outcome::fail(exit::AUTH, Stage::Auth, "the server does not offer AUTH");
        }
        let mechanism = match auth.mechanism {
            AuthMechanism::Any => {
                if offered.iter().any(|m| m == "PLAIN") {
                    AuthMechanism::Plain
                } else if offered.iter().any(|m| m == "LOGIN") {
                    AuthMechanism::Login
                } else {
                    return Outcome::fail(
                        exit::AUTH,
                        Stage::Auth,
                        format!(
                            "the server offers neither PLAIN nor LOGIN (offers {})",
                            offered.join(" ")
                        ),
                    );
                }
            }
            m => m,
        };
        let name = if mechanism == AuthMechanism::Plain {
            "PLAIN"
        } else {
            "LOGIN"
        };
        if !offered.iter().any(|m| m == name) {
            return Outcome::fail(
                exit::AUTH,
                Stage::Auth,
                format!(
                    "the server does not offer AUTH {name} (offers {})",
                    offered.join(" ")
                ),
            );
        }
        let result = if mechanism == AuthMechanism::Plain {
            client.auth_plain(&auth.user, &auth.password).await
        } else {
            client.auth_login(&auth.user, &auth.password).await
        };
        if let Err(e) = result {
            return failed(e, exit::AUTH);
        }
    }
    if plan.stops_after(QuitAfter::Auth) {
        return quit(client).await;
    }

    // Extensions the options need.
    let mut mail_params = plan.mail_params.clone();
    let needed = [
        (plan.bdat.is_some(), "CHUNKING", "--bdat"),
        (mail_params.smtputf8, "SMTPUTF8", "SMTPUTF8"),
        (mail_params.body.is_some(), "8BITMIME", "--8bitmime"),
        (plan.wants_dsn(), "DSN", "the --dsn-* / --envid options"),
    ];
    for (wanted, keyword, why) in needed {
        if wanted && !ehlo.has(keyword) {
            return Outcome::fail(
                exit::EXTENSION,
                Stage::Mail,
                format!("{why} needs {keyword}, which the server does not offer"),
            );
        }
    }
    if ehlo.has("SIZE") {
        mail_params.size = Some(plan.message.len() as u64);
    }
    let mail = relais_proto::Command::Mail {
        from: plan.from.clone(),
        params: mail_params,
    }
    .to_string();
    let rcpts: Vec<String> = plan
        .to
        .iter()
        .map(|to| {
            relais_proto::Command::Rcpt {
                to: to.clone(),
                params: plan.rcpt_params.clone(),
            }
            .to_string()
        })
        .collect();

    let mut pipeline =
        plan.pipeline && !matches!(plan.quit_after, Some(QuitAfter::Mail | QuitAfter::Rcpt));
    if pipeline && !ehlo.has("PIPELINING") {
        client
            .transcript_mut()
            .info("PIPELINING not offered; sending one command at a time");
        pipeline = false;
    }

    if pipeline {
        return pipelined(plan, client, mail, rcpts).await;
    }

    match client.command(&mail).await {
        Ok(r) if r.is_positive() => {}
        Ok(r) => return refused(Stage::Mail, exit::MAIL, r),
        Err(e) => return failed(e, exit::MAIL),
    }
    if plan.stops_after(QuitAfter::Mail) {
        return quit(client).await;
    }
    let mut accepted = 0;
    let mut last_refusal = None;
    for rcpt in &rcpts {
        match client.command(rcpt).await {
            Ok(r) if r.is_positive() => accepted += 1,
            Ok(r) => last_refusal = Some(r),
            Err(e) => return failed(e, exit::RCPT),
        }
    }
    if accepted == 0 {
        return match last_refusal {
            Some(r) => refused(Stage::Rcpt, exit::RCPT, r),
            None => Outcome::fail(exit::RCPT, Stage::Rcpt, "no recipient accepted"),
        };
    }
    if plan.stops_after(QuitAfter::Rcpt) {
        return quit(client).await;
    }
    send_content(plan, client, false).await
}

/// MAIL, RCPT… and DATA in one group (RFC 2920); BDAT, which carries content, goes after.
async fn pipelined(
    plan: &Plan,
    client: &mut SmtpClient,
    mail: String,
    rcpts: Vec<String>,
) -> Outcome {
    let mut group = vec![mail];
    group.extend(rcpts);
    let with_data = plan.bdat.is_none();
    if with_data {
        group.push("DATA".to_string());
    }
    let replies = match client.pipeline(&group).await {
        Ok(r) => r,
        Err(e) => {
            let code = exit_for_stage(e.stage());
            return failed(e, code);
        }
    };
    let data_reply = if with_data { replies.last() } else { None };
    let rcpt_replies = &replies[1..1 + plan.to.len()];
    let mail_ok = replies[0].is_positive();
    let accepted = rcpt_replies.iter().filter(|r| r.is_positive()).count();
    let failure = if !mail_ok {
        Some(refused(Stage::Mail, exit::MAIL, replies[0].clone()))
    } else if accepted == 0 {
        let last = rcpt_replies.iter().rev().find(|r| !r.is_positive());
        Some(match last {
            Some(r) => refused(Stage::Rcpt, exit::RCPT, r.clone()),
            None => Outcome::fail(exit::RCPT, Stage::Rcpt, "no recipient accepted"),
        })
    } else {
        None
    };
    if let Some(failure) = failure {
        if data_reply.is_some_and(|r| r.code == 354) {
            // The server wants content it will throw away: end it at once.
            let _ = client.data_content(b"").await;
        }
        return failure;
    }
    match data_reply {
        Some(r) if r.code != 354 => refused(Stage::Data, exit::DATA, r.clone()),
        Some(_) => send_content(plan, client, true).await,
        None => send_content(plan, client, false).await,
    }
}

/// DATA (unless already accepted in a pipelined group) or BDAT, the message, then QUIT.
async fn send_content(plan: &Plan, client: &mut SmtpClient, data_accepted: bool) -> Outcome {
    let result = if let Some(chunk) = plan.bdat {
        if plan.stops_after(QuitAfter::Data) {
            return quit(client).await;
        }
        client.bdat(&plan.message, chunk).await
    } else {
        if !data_accepted {
            match client.command("DATA").await {
                Ok(r) if r.code == 354 => {}
                Ok(r) => return refused(Stage::Data, exit::DATA, r),
                Err(e) => return failed(e, exit::DATA),
            }
        }
        if plan.stops_after(QuitAfter::Data) {
            client.close().await;
            return Outcome::ok();
        }
        client.data_content(&plan.message).await
    };
    if let Err(e) = result {
        let code = exit_for_stage(e.stage());
        return failed(e, code);
    }
    match client.quit().await {
        Ok(Some(r)) if !r.is_positive() => refused(Stage::Quit, exit::QUIT, r),
        Ok(_) => Outcome::ok(),
        Err(e) => failed(e, exit::QUIT),
    }
}

/// QUIT after `--quit-after`: success whatever the reply.
async fn quit(client: &mut SmtpClient) -> Outcome {
    let _ = client.quit().await;
    Outcome::ok()
}

/// The exit code for a failure at `stage`.
fn exit_for_stage(stage: Stage) -> u8 {
    match stage {
        Stage::Resolve | Stage::Connect => exit::CONNECT,
        Stage::Banner => exit::BANNER,
        Stage::Ehlo | Stage::Helo => exit::HELO,
        Stage::StartTls | Stage::TlsHandshake => exit::TLS,
        Stage::Auth => exit::AUTH,
        Stage::Mail => exit::MAIL,
        Stage::Rcpt => exit::RCPT,
        Stage::Data | Stage::Bdat => exit::DATA,
        Stage::Message => exit::MESSAGE,
        Stage::Quit => exit::QUIT,
        _ => exit::CLOSED,
    }
}

/// A client error at a stage whose exit code is `code` (or 6 when the server hung up).
fn failed(e: ClientError, code: u8) -> Outcome {
    let stage = e.stage();
    let code = match &e {
        ClientError::Closed { .. } | ClientError::Reset { .. } => exit::CLOSED,
        _ => code,
    };
    match e {
        ClientError::UnexpectedReply { stage, reply } => refused(stage, code, reply),
        e => Outcome::fail(code, stage, e.to_string()),
    }
}

/// A reply that refuses `stage`.
fn refused(stage: Stage, code: u8, reply: relais_proto::Reply) -> Outcome {
    Outcome {
        code,
        stage: Some(stage),
        error: Some(format!("{stage} refused: {reply}")),
        reply: Some(reply),
    }
}

/// The JSON report.
fn to_json(plan: &Plan, client: &SmtpClient, o: &Outcome) -> Value {
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
        "server": match &plan.target {
            Target::Server { host } => format!("{host}:{}", plan.port),
            Target::Mx { domain, .. } => format!("MX of {domain}, port {}", plan.port),
        },
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

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

// ----- reading the options -----

/// `host`, `host:port`, `[v6]:port`, `v6`.
fn split_server(s: &str, default_port: u16) -> Result<(String, u16), String> {
    let s = s.trim();
    let bad = || format!("--server {s:?}: expected HOST[:PORT]");
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if after.is_empty() => default_port,
            None => return Err(bad()),
        };
        return Ok((host.to_string(), port));
    }
    match s.matches(':').count() {
        0 if !s.is_empty() => Ok((s.to_string(), default_port)),
        1 => {
            let (host, port) = s.split_once(':').ok_or_else(bad)?;
            if host.is_empty() {
                return Err(bad());
            }
            Ok((host.to_string(), port.parse().map_err(|_| bad())?))
        }
        // A bare IPv6 address.
        _ if s.parse::<std::net::Ipv6Addr>().is_ok() => Ok((s.to_string(), default_port)),
        _ => Err(bad()),
    }
}

/// An address, with or without angle brackets.
fn parse_mailbox(s: &str) -> Result<Mailbox, String> {
    let bare = s
        .strip_prefix('<')
        .and_then(|r| r.strip_suffix('>'))
        .unwrap_or(s);
    Mailbox::parse(bare).map_err(|e| e.to_string())
}

fn local_hostname() -> String {
    gethostname::gethostname()
        .into_string()
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// `$USER@host`, as swaks does.
fn default_sender() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "relais".to_string());
    format!("{user}@{}", local_hostname())
}

/// `@FILE`, `-` or the text itself.
fn read_source(what: &str, value: &str) -> Result<Vec<u8>, String> {
    if value == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| format!("{what}: cannot read standard input: {e}"))?;
        Ok(buf)
    } else if let Some(path) = value.strip_prefix('@') {
        std::fs::read(path).map_err(|e| format!("{what}: cannot read {path}: {e}"))
    } else {
        Ok(value.as_bytes().to_vec())
    }
}

/// `--data`: the message as is (`\n` in literal text is a line break).
fn read_data(value: &str) -> Result<Vec<u8>, String> {
    let literal = value != "-" && !value.starts_with('@');
    let bytes = read_source("--data", value)?;
    if literal {
        Ok(String::from_utf8_lossy(&bytes)
            .replace("\\n", "\r\n")
            .into_bytes())
    } else {
        Ok(bytes)
    }
}

/// Header names whose generated value a `--header` replaces, in their canonical spelling.
const GENERATED: &[&str] = &[
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
];

/// Builds the message: From, To, Subject, Date, Message-ID, MIME-Version, X-Mailer, the extra
/// headers, a text body and attachments.
fn build_message(a: &SendArgs, from: &str, to: &[Mailbox]) -> Result<Vec<u8>, String> {
    let mut extra: Vec<(String, String)> = Vec::new();
    for h in &a.headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| format!("--header {h:?}: expected \"Name: value\""))?;
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
            return Err(format!("--header {h:?}: bad header name"));
        }
        let canonical = GENERATED
            .iter()
            .find(|g| g.eq_ignore_ascii_case(name))
            .map_or(name, |g| *g);
        extra.push((canonical.to_string(), value.trim().to_string()));
    }
    let overridden = |name: &str| extra.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));

    let mut b = MessageBuilder::new();
    if !overridden("From") {
        let from = from.trim();
        let shown = if matches!(from, "" | "<>") {
            "MAILER-DAEMON".to_string()
        } else {
            from.trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        };
        b = b.from(Address::from(shown));
    }
    if !overridden("To") {
        let list: Vec<Address> = to.iter().map(|m| Address::from(m.to_string())).collect();
        b = b.to(list);
    }
    if !overridden("Subject") {
        let subject = match &a.subject {
            Some(s) => s.clone(),
            None => format!(
                "test {}",
                mail_builder::headers::date::Date::now().to_rfc822()
            ),
        };
        b = b.subject(subject);
    }
    b = b.header("X-Mailer", Raw::new("relais send"));
    for (name, value) in extra {
        let value: HeaderType = if value.is_ascii() {
            Raw::new(value).into()
        } else {
            Text::new(value).into()
        };
        b = b.header(name, value);
    }
    let body = match &a.body {
        Some(v) => String::from_utf8_lossy(&read_source("--body", v)?).into_owned(),
        None => "This is a test message sent by relais send.\n".to_string(),
    };
    b = b.text_body(body);
    for path in &a.attach {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("--attach {}: cannot read: {e}", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "attachment".to_string());
        b = b.attachment(content_type(path), name, bytes);
    }
    b.write_to_vec()
        .map_err(|e| format!("cannot build the message: {e}"))
}

/// A MIME type from the file name's extension.
fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" | "log" | "conf" => "text/plain",
        "csv" => "text/csv",
        "htm" | "html" => "text/html",
        "eml" => "message/rfc822",
        "json" => "application/json",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        _ => "application/octet-stream",
    }
}

/// Asks for a value: on the terminal (without echo for a secret), or as one line of standard
/// input when that is not a terminal.
fn ask(prompt: &str, secret: bool) -> Result<String, String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        if secret {
            return rpassword::prompt_password(prompt).map_err(|e| format!("{prompt}{e}"));
        }
        eprint!("{prompt}");
    }
    let mut line = String::new();
    stdin
        .read_line(&mut line)
        .map_err(|e| format!("cannot read {}: {e}", prompt.trim_end_matches([':', ' '])))?;
    let value = line.trim_end_matches(['\r', '\n']).to_string();
    if value.is_empty() && !stdin.is_terminal() {
        return Err(format!(
            "{} needed and none on standard input",
            prompt.trim_end_matches([':', ' '])
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_forms() {
        let ok = [
            ("mx.example.com", ("mx.example.com", 25)),
            ("mx.example.com:587", ("mx.example.com", 587)),
            ("127.0.0.1:2525", ("127.0.0.1", 2525)),
            ("[::1]:26", ("::1", 26)),
            ("[::1]", ("::1", 25)),
            ("::1", ("::1", 25)),
        ];
        for (input, (host, port)) in ok {
            assert_eq!(
                split_server(input, 25).unwrap(),
                (host.to_string(), port),
                "{input}"
            );
        }
        for bad in ["", ":25", "host:port", "[::1", "a:b:c"] {
            assert!(split_server(bad, 25).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_stage_has_its_exit_code() {
        assert_eq!(exit_for_stage(Stage::Rcpt), 24);
        assert_eq!(exit_for_stage(Stage::Message), 26);
        assert_eq!(exit_for_stage(Stage::TlsHandshake), 29);
        let closed = failed(ClientError::Closed { stage: Stage::Mail }, exit::MAIL);
        assert_eq!(closed.code, exit::CLOSED);
    }
}
