//! `relais probe`: what MXToolbox's SMTP test and CheckTLS do, against a domain's MX hosts or
//! one server, with the reasons an administrator needs.
//!
//! For a domain: the MX hosts in preference order (null MX and implicit MX reported), then every
//! address of every host, several at a time (`--concurrency`). For each address the stages run
//! in order, each timed: connect (and the TLS handshake with `--tls-on-connect`, port 465),
//! banner, reverse DNS, EHLO (HELO if refused), STARTTLS and the certificate, EHLO again, AUTH
//! (with `--auth-user`), MAIL FROM, the RCPT probes (the given recipient, `postmaster@`, a random
//! local part, an address at a foreign domain), VRFY and EXPN, RSET and QUIT. Never DATA unless
//! `--data` says so. Each finding is a verdict (`ok`, `warn`, `fail`) with its reason and what
//! to check; the exit code is that of the first failing stage (in MX order).
//!
//! # Exit codes
//!
//! | code | meaning |
//! |-----:|---------|
//! | 0  | every address passed (warnings may have been given) |
//! | 1  | the options do not make sense |
//! | 2  | no connection: refused, timed out (filtered), unreachable |
//! | 3  | DNS: the domain or host does not exist, null MX, no mail host, DNS failure |
//! | 6  | the server closed or reset the connection unexpectedly |
//! | 21 | the greeting was not `220` (e.g. `421`, `554`), or did not come in time |
//! | 22 | EHLO and HELO refused |
//! | 23 | MAIL FROM refused |
//! | 24 | the given recipient or `postmaster@` refused |
//! | 25 | DATA (with `--data`) refused |
//! | 28 | AUTH (with `--auth-user`) failed: not offered, mechanism not offered, credentials refused |
//! | 29 | TLS failed: STARTTLS refused, handshake error (also on connect), expired certificate |
//! | 40 | open relay: a recipient at a foreign domain was accepted (without a successful AUTH) |

mod cert;

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use relais_client::{CertVerification, ClientConfig, ClientError, SmtpClient, TlsPolicy};
use relais_dns::mx::RouteKind;
use relais_dns::reverse::{Fcrdns, ReverseDns};
use relais_dns::{Outcome, Resolver};
use relais_proto::{EhloResponse, Reply};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::dns::DnsOptions;

/// Exit codes of `relais probe` (the table is in the module documentation and in `--help`).
pub mod exit {
    /// Every address passed.
    pub const OK: u8 = 0;
    /// The options do not make sense.
    pub const USAGE: u8 = 1;
    /// No connection.
    pub const CONNECT: u8 = 2;
    /// DNS.
    pub const DNS: u8 = 3;
    /// Closed or reset unexpectedly.
    pub const CLOSED: u8 = 6;
    /// Bad or missing greeting.
    pub const BANNER: u8 = 21;
    /// EHLO and HELO refused.
    pub const HELO: u8 = 22;
    /// MAIL FROM refused.
    pub const MAIL: u8 = 23;
    /// The given recipient or postmaster refused.
    pub const RCPT: u8 = 24;
    /// DATA refused.
    pub const DATA: u8 = 25;
    /// AUTH failed.
    pub const AUTH: u8 = 28;
    /// TLS failed.
    pub const TLS: u8 = 29;
    /// Open relay.
    pub const OPEN_RELAY: u8 = 40;
}

const EXIT_TABLE: &str = "\
Exit codes (the first failing stage, hosts in MX order; swaks' numbers where they exist):
   0  every address passed (warnings may have been given)
   1  the options do not make sense
   2  no connection: refused, timed out (filtered), unreachable
   3  DNS: the domain or host does not exist, null MX, no mail host, DNS failure
   6  the server closed or reset the connection unexpectedly
  21  the greeting was not 220 (421, 554, ...), or did not come in time
  22  EHLO and HELO refused
  23  MAIL FROM refused
  24  the given recipient or postmaster@ refused
  25  DATA (with --data) refused
  28  AUTH (with --auth-user) failed: not offered, mechanism not offered, credentials refused (535)
  29  TLS failed: STARTTLS refused, handshake error (also --tls-on-connect), expired certificate
  40  open relay: a recipient at a foreign domain was accepted (without a successful AUTH)

Verdicts: ok, warn (works, but worth fixing), fail (mail is lost or refused).

With --auth-user the password comes from --auth-password, else the RELAIS_PROBE_PASSWORD
environment variable, else one line of standard input (asked for without echo on a terminal).
It is never printed; the transcript (-v, --json) shows the AUTH exchange in base64, as sent.";

/// The environment variable `--auth-user` takes the password from.
const PASSWORD_ENV: &str = "RELAIS_PROBE_PASSWORD";

/// A foreign domain for the open-relay test: reserved (RFC 2606), so nothing is ever sent there.
const FOREIGN_DOMAIN: &str = "relay-test.example.net";

/// `relais probe`.
#[derive(Args, Debug)]
#[command(after_long_help = EXIT_TABLE)]
pub struct ProbeArgs {
    /// A mail domain (its MX hosts are probed), or HOST:PORT / IP / IP:PORT (that server only).
    target: String,
    /// The SMTP port of the MX hosts (or of the host, when TARGET has none).
    #[arg(long, default_value_t = 25)]
    port: u16,
    /// Treat TARGET as a host even without a port (no MX lookup).
    #[arg(long)]
    host: bool,
    /// A recipient to test (RCPT TO); its domain is the one postmaster@ and the random local
    /// part are tried at in host mode.
    #[arg(long)]
    rcpt: Option<String>,
    /// The MAIL FROM address (default: probe@ the HELO name).
    #[arg(long)]
    from: Option<String>,
    /// The name to give in EHLO/HELO (default: this machine's host name).
    #[arg(long)]
    helo: Option<String>,
    /// Seconds to wait for each step (connect, banner, each reply).
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// A greeting slower than this many seconds is reported (the seeds' threshold: 10).
    #[arg(long, default_value_t = 10.0)]
    slow_banner: f64,
    /// On a 4xx to RCPT, wait this many seconds and try once more to detect greylisting
    /// (0: do not retry).
    #[arg(long, default_value_t = 0.0)]
    greylist_retry: f64,
    /// How many addresses are probed at the same time.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Extra CA certificates (PEM) to trust when verifying certificates.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Do not try STARTTLS.
    #[arg(long)]
    no_starttls: bool,
    /// TLS from the first byte (implicit TLS, port 465): handshake, then banner and EHLO; no
    /// STARTTLS stage.
    #[arg(long)]
    tls_on_connect: bool,
    /// Test AUTH as this user after the (second) EHLO; MAIL and RCPT then run authenticated.
    #[arg(long, value_name = "USER")]
    auth_user: Option<String>,
    /// The password for --auth-user (else $RELAIS_PROBE_PASSWORD, else standard input).
    #[arg(long, value_name = "PASS", requires = "auth_user")]
    auth_password: Option<String>,
    /// The SASL mechanism (default: the first of PLAIN, LOGIN the server offers).
    #[arg(
        long,
        value_enum,
        value_name = "MECH",
        ignore_case = true,
        requires = "auth_user"
    )]
    auth_mech: Option<AuthMech>,
    /// Send a short test message to --rcpt (DATA); the probe never sends one otherwise.
    #[arg(long, requires = "rcpt")]
    data: bool,
    /// Show the SMTP dialogue of each address.
    #[arg(long, short = 'v')]
    transcript: bool,
    #[command(flatten)]
    dns: DnsOptions,
}

/// SASL mechanisms for `--auth-mech`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum AuthMech {
    /// AUTH PLAIN.
    Plain,
    /// AUTH LOGIN.
    Login,
}

impl AuthMech {
    fn name(self) -> &'static str {
        match self {
            AuthMech::Plain => "PLAIN",
            AuthMech::Login => "LOGIN",
        }
    }
}

/// What `--auth-user` asks for.
struct AuthTest {
    user: String,
    password: String,
    mech: Option<AuthMech>,
}

/// `ok`, `warn` or `fail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
enum Level {
    Ok,
    Warn,
    Fail,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "fail",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
struct Verdict {
    level: Level,
    /// A stable name: `connect`, `banner`, `banner-delay`, `reverse-dns`, `ehlo`, `starttls`,
    /// `tls` (with `--tls-on-connect`), `certificate`, `auth-cleartext`, `auth`, `mail`, `rcpt`,
    /// `postmaster`, `recipient-verification`, `open-relay`, `greylisting`, `vrfy`, `expn`,
    /// `data`, `dns`.
    check: &'static str,
    reason: String,
    /// What to look at; empty for `ok`.
    advice: String,
}

/// One stage's timing and result, for the table.
#[derive(Debug, Clone, Serialize)]
struct StageRow {
    /// `connect`, `tls` (with `--tls-on-connect`), `banner`, `reverse-dns`, `ehlo`, `starttls`,
    /// `ehlo-tls`, `auth`, `mail`, `rcpt`, `data`, `vrfy`, `expn`, `rset`, `quit`.
    stage: &'static str,
    ms: Option<f64>,
    result: String,
}

/// Everything found about one address.
#[derive(Debug, Clone, Default, Serialize)]
struct HostReport {
    host: String,
    preference: Option<u16>,
    address: String,
    stages: Vec<StageRow>,
    verdicts: Vec<Verdict>,
    banner: Option<String>,
    capabilities: Vec<Value>,
    tls: Option<Value>,
    reverse: Option<Value>,
    exit: u8,
    transcript: Vec<String>,
}

impl HostReport {
    fn stage(&mut self, stage: &'static str, took: Option<Duration>, result: impl Into<String>) {
        self.stages.push(StageRow {
            stage,
            ms: took.map(millis),
            result: result.into(),
        });
    }

    fn verdict(&mut self, level: Level, check: &'static str, reason: String, advice: &str) {
        self.verdicts.push(Verdict {
            level,
            check,
            reason,
            advice: advice.to_string(),
        });
    }

    /// A failing verdict that decides the exit code (the first one does).
    fn fail(&mut self, code: u8, check: &'static str, reason: String, advice: &str) {
        self.verdict(Level::Fail, check, reason, advice);
        if self.exit == exit::OK {
            self.exit = code;
        }
    }

    fn worst(&self) -> Level {
        self.verdicts
            .iter()
            .map(|v| v.level)
            .max()
            .unwrap_or(Level::Ok)
    }
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// What every address probe needs.
struct Context {
    resolver: Resolver,
    helo: String,
    from: String,
    rcpt: Option<String>,
    /// The domain for postmaster@ and the random local part (None: skip those probes).
    domain: Option<String>,
    timeout: Duration,
    slow_banner: Duration,
    greylist_retry: Duration,
    ca_file: Option<PathBuf>,
    starttls: bool,
    tls_on_connect: bool,
    auth: Option<AuthTest>,
    data: bool,
}

/// Runs `relais probe`.
pub fn run(args: ProbeArgs) -> ExitCode {
    let seconds = |v: f64, name: &str| {
        if v.is_finite() && v >= 0.0 {
            Ok(Duration::from_secs_f64(v))
        } else {
            Err(format!("--{name}: a number of seconds"))
        }
    };
    let durations = (|| {
        Ok::<_, String>((
            seconds(args.timeout, "timeout")?,
            seconds(args.slow_banner, "slow-banner")?,
            seconds(args.greylist_retry, "greylist-retry")?,
        ))
    })();
    let (timeout, slow_banner, greylist_retry) = match durations {
        Ok(d) if !d.0.is_zero() => d,
        Ok(_) => return usage("--timeout: must be more than 0"),
        Err(e) => return usage(&e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return usage(&format!("cannot start the runtime: {e}")),
    };
    let resolver = match runtime.block_on(async { args.dns.resolver() }) {
        Ok(resolver) => resolver,
        Err((_, message)) => return usage(&message),
    };
    let target = parse_target(&args.target, args.port, args.host);
    let helo = args.helo.clone().unwrap_or_else(|| {
        gethostname::gethostname()
            .to_string_lossy()
            .trim()
            .to_string()
    });
    let helo = if helo.is_empty() {
        "localhost".to_string()
    } else {
        helo
    };
    let auth = match &args.auth_user {
        Some(user) => {
            let password = match args.auth_password.clone() {
                Some(p) => p,
                None => match std::env::var(PASSWORD_ENV) {
                    Ok(p) => p,
                    Err(_) => match read_password() {
                        Ok(p) => p,
                        Err(e) => return usage(&e),
                    },
                },
            };
            Some(AuthTest {
                user: user.clone(),
                password,
                mech: args.auth_mech,
            })
        }
        None => None,
    };
    let from = args.from.clone().unwrap_or_else(|| format!("probe@{helo}"));
    let domain = match &target {
        Target::Domain { domain, .. } => Some(domain.clone()),
        Target::Host { .. } => args
            .rcpt
            .as_deref()
            .and_then(|r| r.rsplit_once('@'))
            .map(|(_, d)| d.to_string()),
    };
    let context = Arc::new(Context {
        resolver,
        helo,
        from,
        rcpt: args.rcpt.clone(),
        domain,
        timeout,
        slow_banner,
        greylist_retry,
        ca_file: args.ca_file.clone(),
        starttls: !args.no_starttls,
        tls_on_connect: args.tls_on_connect,
        auth,
        data: args.data,
    });
    let report = runtime.block_on(probe(context, target, args.concurrency.max(1)));
    let output = if args.dns.json {
        serde_json::to_string_pretty(&report.json).unwrap_or_default() + "\n"
    } else {
        render(&report, args.transcript)
    };
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), output.as_bytes());
    ExitCode::from(report.exit)
}

/// The password for `--auth-user` when neither `--auth-password` nor the environment gives
/// one: asked for without echo on a terminal, else one line of standard input.
fn read_password() -> Result<String, String> {
    use std::io::IsTerminal as _;
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return rpassword::prompt_password("Password: ").map_err(|e| format!("password: {e}"));
    }
    let mut line = String::new();
    stdin
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        return Err(format!(
            "--auth-user needs a password: --auth-password, {PASSWORD_ENV}, or a line on standard input"
        ));
    }
    Ok(password)
}

fn usage(message: &str) -> ExitCode {
    eprintln!("relais: {message}");
    ExitCode::from(exit::USAGE)
}

enum Target {
    /// A mail domain, and the port of its MX hosts.
    Domain { domain: String, port: u16 },
    /// One server.
    Host { host: String, port: u16 },
}

/// `example.org` → a domain; `mx.example.org:2525`, `192.0.2.1`, `[2001:db8::1]:25` → a host.
fn parse_target(text: &str, default_port: u16, force_host: bool) -> Target {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Target::Host {
            host: addr.ip().to_string(),
            port: addr.port(),
        };
    }
    let bare = text.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Target::Host {
            host: ip.to_string(),
            port: default_port,
        };
    }
    if let Some((host, port)) = text.rsplit_once(':')
        && let Ok(port) = port.parse::<u16>()
    {
        return Target::Host {
            host: host.to_string(),
            port,
        };
    }
    if force_host {
        Target::Host {
            host: text.to_string(),
            port: default_port,
        }
    } else {
        Target::Domain {
            domain: text.trim_end_matches('.').to_string(),
            port: default_port,
        }
    }
}

struct ProbeReport {
    exit: u8,
    json: Value,
    target: String,
    route: Vec<String>,
    route_verdicts: Vec<Verdict>,
    hosts: Vec<HostReport>,
}

/// One address to probe.
struct Job {
    host: String,
    preference: Option<u16>,
    address: SocketAddr,
}

async fn probe(context: Arc<Context>, target: Target, concurrency: usize) -> ProbeReport {
    let mut route_lines = Vec::new();
    let mut route_verdicts = Vec::new();
    let mut dns_exit = exit::OK;
    let mut jobs = Vec::new();
    let mut route_json = Value::Null;
    let target_text = match &target {
        Target::Domain { domain, .. } => domain.clone(),
        Target::Host { host, port } => format!("{host}:{port}"),
    };
    match &target {
        Target::Domain { domain, port } => {
            let port = *port;
            let route = context.resolver.mail_route(domain).await;
            route_json = serde_json::to_value(&route).unwrap_or(Value::Null);
            let took = format!("{:.1} ms", route.elapsed.as_secs_f64() * 1000.0);
            match &route.kind {
                RouteKind::Mx | RouteKind::Implicit => {
                    if route.kind == RouteKind::Implicit {
                        route_lines.push(format!(
                            "{domain} has no MX records: the implicit MX is the domain itself ({took})"
                        ));
                        route_verdicts.push(Verdict {
                            level: Level::Warn,
                            check: "dns",
                            reason: format!(
                                "{domain} has no MX record; senders fall back to its A/AAAA address"
                            ),
                            advice: "publish an MX record naming the mail host".into(),
                        });
                    } else {
                        route_lines.push(format!("MX of {domain} ({took}):"));
                    }
                    for host in &route.hosts {
                        let ips = host.addresses.ips();
                        route_lines.push(format!(
                            "  {:>5}  {}  {}",
                            host.preference,
                            host.name,
                            if ips.is_empty() {
                                "no address".to_string()
                            } else {
                                ips.iter()
                                    .map(|ip| ip.to_string())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            }
                        ));
                        if ips.is_empty() {
                            let why = match host.addresses.outcome() {
                                Outcome::Failed(f) => format!("its address lookup failed: {f}"),
                                _ => "it has no A/AAAA record".to_string(),
                            };
                            route_verdicts.push(Verdict {
                                level: Level::Fail,
                                check: "dns",
                                reason: format!("MX host {} cannot be reached: {why}", host.name),
                                advice: "give the MX host an A/AAAA record, or fix the MX record"
                                    .into(),
                            });
                            if dns_exit == exit::OK {
                                dns_exit = exit::DNS;
                            }
                        }
                        for ip in ips {
                            jobs.push(Job {
                                host: host.name.clone(),
                                preference: Some(host.preference),
                                address: SocketAddr::new(ip, port),
                            });
                        }
                    }
                    if route.null_mx_with_others {
                        route_verdicts.push(Verdict {
                            level: Level::Warn,
                            check: "dns",
                            reason: "a null MX (\".\") is listed next to real MX hosts".into(),
                            advice: "RFC 7505 forbids mixing them: remove the null MX".into(),
                        });
                    }
                }
                kind => {
                    let (reason, advice) = match kind {
                        RouteKind::NullMx => (
                            format!("{domain} publishes a null MX (RFC 7505): it accepts no mail"),
                            "if the domain should receive mail, replace the null MX with real MX records",
                        ),
                        RouteKind::NoSuchDomain => (
                            format!(
                                "{domain} does not exist (NXDOMAIN): host not found (Outlook 0x800CCC0D)"
                            ),
                            "check the spelling; check that the domain is registered and delegated",
                        ),
                        RouteKind::NoMailHost => (
                            format!(
                                "{domain} has neither MX nor A/AAAA records: no host receives its mail"
                            ),
                            "publish an MX record",
                        ),
                        RouteKind::Failed(f) => (
                            format!("the MX lookup of {domain} failed: {f}"),
                            "check the domain's nameservers (SERVFAIL, lame delegation) and the resolver",
                        ),
                        _ => (String::new(), ""),
                    };
                    route_lines.push(format!("MX of {domain}: {reason} ({took})"));
                    route_verdicts.push(Verdict {
                        level: Level::Fail,
                        check: "dns",
                        reason,
                        advice: advice.into(),
                    });
                    dns_exit = exit::DNS;
                }
            }
        }
        Target::Host { host, port } => match host.parse::<IpAddr>() {
            Ok(ip) => jobs.push(Job {
                host: host.clone(),
                preference: None,
                address: SocketAddr::new(ip, *port),
            }),
            Err(_) => {
                let addresses = context.resolver.addresses(host).await;
                match addresses.outcome() {
                    Outcome::Found(ips) => {
                        for ip in ips {
                            jobs.push(Job {
                                host: host.clone(),
                                preference: None,
                                address: SocketAddr::new(ip, *port),
                            });
                        }
                    }
                    other => {
                        let reason = match other {
                            Outcome::Failed(f) => {
                                format!("the address lookup of {host} failed: {f}")
                            }
                            _ => format!(
                                "{host} has no address: host not found (Outlook 0x800CCC0D)"
                            ),
                        };
                        route_verdicts.push(Verdict {
                            level: Level::Fail,
                            check: "dns",
                            reason,
                            advice: "check the host name and its A/AAAA records".into(),
                        });
                        dns_exit = exit::DNS;
                    }
                }
            }
        },
    }

    let semaphore = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    let count = jobs.len();
    for (index, job) in jobs.into_iter().enumerate() {
        let context = context.clone();
        let semaphore = semaphore.clone();
        tasks.spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            (index, probe_address(&context, job).await)
        });
    }
    let mut hosts: Vec<Option<HostReport>> = vec![None; count];
    while let Some(joined) = tasks.join_next().await {
        if let Ok((index, report)) = joined {
            hosts[index] = Some(report);
        }
    }
    let hosts: Vec<HostReport> = hosts.into_iter().flatten().collect();
    let exit = if dns_exit != exit::OK && hosts.is_empty() {
        dns_exit
    } else {
        hosts
            .iter()
            .map(|h| h.exit)
            .find(|&e| e != exit::OK)
            .unwrap_or(dns_exit)
    };
    let count_level = |level: Level| {
        hosts
            .iter()
            .flat_map(|h| h.verdicts.iter())
            .chain(route_verdicts.iter())
            .filter(|v| v.level == level)
            .count()
    };
    let json = json!({
        "target": target_text,
        "exit": exit,
        "route": route_json,
        "route_verdicts": route_verdicts,
        "hosts": hosts,
        "summary": {
            "addresses": hosts.len(),
            "ok": count_level(Level::Ok),
            "warn": count_level(Level::Warn),
            "fail": count_level(Level::Fail),
        },
    });
    ProbeReport {
        exit,
        json,
        target: target_text,
        route: route_lines,
        route_verdicts,
        hosts,
    }
}

/// Probes one address, stage by stage.
async fn probe_address(context: &Context, job: Job) -> HostReport {
    let mut r = HostReport {
        host: job.host.clone(),
        preference: job.preference,
        address: job.address.to_string(),
        ..HostReport::default()
    };
    let mut config = ClientConfig::with_timeout(context.timeout);
    config.tls = TlsPolicy {
        verify: false,
        server_name: None,
        ca_file: context.ca_file.clone(),
        ca_file_only: false,
    };
    let mut client = SmtpClient::new(config);
    let reverse = {
        let resolver = context.resolver.clone();
        let ip = job.address.ip();
        tokio::spawn(async move { resolver.reverse(ip).await })
    };
    session(context, &job, &mut client, &mut r, reverse).await;
    client.close().await;
    r.transcript = client
        .transcript()
        .entries
        .iter()
        .map(|e| format!("{:>8.3} {e}", e.at.as_secs_f64()))
        .collect();
    r
}

/// The dialogue; returns early at the first stage that makes going on pointless.
async fn session(
    context: &Context,
    job: &Job,
    client: &mut SmtpClient,
    r: &mut HostReport,
    reverse: tokio::task::JoinHandle<ReverseDns>,
) {
    // Connect.
    let started = Instant::now();
    if let Err(e) = client.open(job.address).await {
        r.stage("connect", Some(started.elapsed()), e.to_string());
        let (reason, advice) = match &e {
            ClientError::Refused { .. } => (
                format!(
                    "connection to {} refused: nothing listens on the port, or a firewall rejects (Outlook 0x800CCC0E)",
                    job.address
                ),
                "check that the server runs and listens on this address and port; check firewalls",
            ),
            ClientError::TimedOut { after, .. } => (
                format!(
                    "no answer to the connection within {}s: the port is filtered by a firewall, or the host is down (Outlook 0x800CCC0E)",
                    after.as_secs_f64()
                ),
                "check firewalls between here and the server (many ISPs block outgoing port 25)",
            ),
            _ => (
                format!(
                    "cannot connect to {}: {e} (Outlook 0x800CCC0E)",
                    job.address
                ),
                "check the network route to the server",
            ),
        };
        r.fail(exit::CONNECT, "connect", reason, advice);
        return;
    }
    r.stage("connect", Some(started.elapsed()), "connected");
    r.verdict(
        Level::Ok,
        "connect",
        format!("connected to {}", job.address),
        "",
    );

    // TLS from the first byte (port 465): the handshake before the banner.
    let mut implicit_tls = None;
    if context.tls_on_connect {
        let started = Instant::now();
        match client.tls_handshake(&job.host).await {
            Ok(info) => {
                r.stage(
                    "tls",
                    Some(started.elapsed()),
                    format!("{} {}", info.version, info.cipher),
                );
                r.verdict(
                    Level::Ok,
                    "tls",
                    format!("TLS on connect: {} with {}", info.version, info.cipher),
                    "",
                );
                implicit_tls = Some(info);
            }
            Err(e) => {
                r.stage("tls", Some(started.elapsed()), e.to_string());
                r.fail(
                    exit::TLS,
                    "tls",
                    format!("the TLS handshake on connect failed: {e}"),
                    "check that this port speaks TLS from the first byte (465, not 25 or 587, which use STARTTLS: drop --tls-on-connect there) and the server's TLS configuration",
                );
                return;
            }
        }
    }

    // Banner.
    let started = Instant::now();
    let banner = match client.banner().await {
        Ok(reply) => reply,
        Err(e) => {
            r.stage("banner", Some(started.elapsed()), e.to_string());
            stage_error(r, &e, exit::BANNER, "banner");
            return;
        }
    };
    let took = started.elapsed();
    r.banner = Some(banner.to_string());
    r.stage("banner", Some(took), banner.to_string());
    if banner.code != 220 {
        let outlook = if banner.code == 421 {
            " (Outlook 0x800CCC67)"
        } else {
            ""
        };
        r.fail(
            exit::BANNER,
            "banner",
            format!("the server refuses the session: {banner}{outlook}"),
            "a 421 is temporary (overload, connection limits, maintenance); a 554 banner refuses this client (blocklist, policy); read the server's log",
        );
        let _ = client.quit().await;
        return;
    }
    if took > context.slow_banner {
        r.verdict(
            Level::Warn,
            "banner-delay",
            format!(
                "the greeting took {:.1} s (more than {} s): a greet-pause or an overloaded server, not a dead one",
                took.as_secs_f64(),
                context.slow_banner.as_secs_f64()
            ),
            "check the server's greet-pause / tarpit settings, DNS lookups it does on connect (reverse DNS, DNSBL) and its load; impatient clients give up",
        );
    } else {
        r.verdict(
            Level::Ok,
            "banner-delay",
            format!("greeting after {:.1} ms", took.as_secs_f64() * 1000.0),
            "",
        );
    }
    let banner_name = banner
        .lines
        .first()
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_default()
        .to_string();
    // The name the certificate must carry: the MX host, or the banner's name for an address.
    let tls_name = if job.host.parse::<IpAddr>().is_ok() {
        banner_name.clone()
    } else {
        job.host.clone()
    };
    if let Some(info) = &implicit_tls {
        certificate_verdicts(r, info, &tls_name);
    }

    // Reverse DNS of the address, against the banner name.
    if let Ok(reverse) = reverse.await {
        reverse_verdict(r, &reverse, &banner_name);
        r.stage(
            "reverse-dns",
            Some(reverse.elapsed),
            match reverse.confirmed_name() {
                Some(name) => format!("{name} (forward-confirmed)"),
                None => reverse.verdict().as_str().to_string(),
            },
        );
        r.reverse = serde_json::to_value(&reverse).ok();
    }

    // EHLO, HELO if refused.
    let started = Instant::now();
    let mut ehlo = match client.ehlo_or_helo(&context.helo).await {
        Ok(ehlo) => ehlo,
        Err(e) => {
            r.stage("ehlo", Some(started.elapsed()), e.to_string());
            stage_error(r, &e, exit::HELO, "ehlo");
            let _ = client.quit().await;
            return;
        }
    };
    r.stage(
        "ehlo",
        Some(started.elapsed()),
        format!("{} capabilities", ehlo.capabilities.len()),
    );
    if ehlo.capabilities.is_empty() {
        r.verdict(
            Level::Warn,
            "ehlo",
            "EHLO refused, HELO accepted: an old server without extensions (no STARTTLS, no SIZE)"
                .into(),
            "upgrade or configure the server for ESMTP",
        );
    } else {
        r.verdict(
            Level::Ok,
            "ehlo",
            format!("EHLO accepted: {}", ehlo.domain),
            "",
        );
    }
    r.capabilities = capabilities(&ehlo);
    if !client.is_tls() && !ehlo.auth_mechanisms().is_empty() {
        r.verdict(
            Level::Warn,
            "auth-cleartext",
            format!(
                "AUTH ({}) is offered on a clear-text connection: credentials would cross the network in clear",
                ehlo.auth_mechanisms().join(" ")
            ),
            "offer AUTH only after STARTTLS (relais: [auth] allow_plaintext = false; Postfix: smtpd_tls_auth_only = yes)",
        );
    }

    // STARTTLS (not with TLS on connect: the session is encrypted already).
    if context.tls_on_connect {
        // No STARTTLS stage.
    } else if !ehlo.has("STARTTLS") {
        r.stage("starttls", None, "not offered");
        r.verdict(
            Level::Warn,
            "starttls",
            "STARTTLS is not offered: mail to this server travels in clear text".into(),
            "configure a certificate and enable STARTTLS on the server",
        );
    } else if context.starttls {
        let started = Instant::now();
        match client.starttls(&tls_name).await {
            Ok(info) => {
                r.stage(
                    "starttls",
                    Some(started.elapsed()),
                    format!("{} {}", info.version, info.cipher),
                );
                r.verdict(
                    Level::Ok,
                    "starttls",
                    format!("STARTTLS: {} with {}", info.version, info.cipher),
                    "",
                );
                certificate_verdicts(r, &info, &tls_name);
                let started = Instant::now();
                match client.ehlo(&context.helo).await {
                    Ok(again) => {
                        r.stage("ehlo-tls", Some(started.elapsed()), "EHLO again under TLS");
                        r.capabilities = capabilities(&again);
                        ehlo = again;
                    }
                    Err(e) => {
                        r.stage("ehlo-tls", Some(started.elapsed()), e.to_string());
                        stage_error(r, &e, exit::HELO, "ehlo");
                        let _ = client.quit().await;
                        return;
                    }
                }
            }
            Err(e) => {
                r.stage("starttls", Some(started.elapsed()), e.to_string());
                let reason = format!("STARTTLS failed: {e}");
                if client.is_connected() && e.connection_usable() {
                    r.fail(
                        exit::TLS,
                        "starttls",
                        reason,
                        "check the server's TLS configuration and certificate files",
                    );
                } else {
                    r.fail(exit::TLS, "starttls", reason, "check the server's TLS configuration (protocol versions, ciphers, certificate and key)");
                    return;
                }
            }
        }
    }

    // AUTH, when asked.
    let mut authenticated = false;
    if let Some(auth) = &context.auth {
        match auth_test(client, r, &ehlo, auth).await {
            Some(ok) => authenticated = ok,
            None => return,
        }
    }

    // MAIL FROM.
    let started = Instant::now();
    let reply = match client
        .command(format!("MAIL FROM:<{}>", context.from))
        .await
    {
        Ok(reply) => reply,
        Err(e) => {
            r.stage("mail", Some(started.elapsed()), e.to_string());
            stage_error(r, &e, exit::MAIL, "mail");
            return;
        }
    };
    r.stage("mail", Some(started.elapsed()), reply.to_string());
    if !reply.is_positive() {
        r.fail(
            exit::MAIL,
            "mail",
            format!("MAIL FROM:<{}> refused: {reply} (Outlook 0x800CCC78)", context.from),
            "the server refuses this sender: SPF, sender verification, or a policy; try --from with an address of a domain you control",
        );
        let _ = client.quit().await;
        return;
    }
    r.verdict(
        Level::Ok,
        "mail",
        format!("MAIL FROM accepted: {reply}"),
        "",
    );

    // RCPT probes.
    if !rcpt_probes(context, client, r, authenticated).await {
        return;
    }

    // DATA, only when asked.
    if context.data
        && r.exit == exit::OK
        && let Some(rcpt) = &context.rcpt
    {
        let message = format!(
            "From: <{from}>\r\nTo: <{rcpt}>\r\nSubject: relais probe test\r\nDate: {date}\r\n\r\nA test message sent by relais probe.\r\n",
            from = context.from,
            date = rfc5322_date(),
        );
        let started = Instant::now();
        match client.data(message.as_bytes()).await {
            Ok(reply) => {
                r.stage("data", Some(started.elapsed()), reply.to_string());
                r.verdict(Level::Ok, "data", format!("message accepted: {reply}"), "");
            }
            Err(e) => {
                r.stage("data", Some(started.elapsed()), e.to_string());
                stage_error(r, &e, exit::DATA, "data");
                if !e.connection_usable() {
                    return;
                }
            }
        }
    }

    // VRFY and EXPN exposure.
    for (verb, check) in [("VRFY", "vrfy"), ("EXPN", "expn")] {
        let started = Instant::now();
        match client.command(format!("{verb} postmaster")).await {
            Ok(reply) => {
                let stage = if verb == "VRFY" { "vrfy" } else { "expn" };
                r.stage(stage, Some(started.elapsed()), reply.to_string());
                if reply.code == 250 || reply.code == 251 {
                    r.verdict(
                        Level::Warn,
                        check,
                        format!("{verb} answers with addresses: {reply}"),
                        "spammers harvest valid addresses this way: disable it (Postfix: disable_vrfy_command = yes)",
                    );
                } else {
                    r.verdict(Level::Ok, check, format!("{verb} not exposed: {reply}"), "");
                }
            }
            Err(e) => {
                stage_error(r, &e, exit::CLOSED, check);
                return;
            }
        }
    }

    // RSET and QUIT.
    let started = Instant::now();
    if let Ok(reply) = client.command("RSET").await {
        r.stage("rset", Some(started.elapsed()), reply.to_string());
    }
    let started = Instant::now();
    match client.quit().await {
        Ok(reply) => r.stage(
            "quit",
            Some(started.elapsed()),
            reply.map_or("closed".to_string(), |r| r.to_string()),
        ),
        Err(e) => r.stage("quit", Some(started.elapsed()), e.to_string()),
    }
}

/// The recipient probes. Returns false when the connection is gone.
async fn rcpt_probes(
    context: &Context,
    client: &mut SmtpClient,
    r: &mut HostReport,
    authenticated: bool,
) -> bool {
    let mut probes: Vec<(&'static str, String)> = Vec::new();
    if let Some(rcpt) = &context.rcpt {
        probes.push(("rcpt", rcpt.clone()));
    }
    if let Some(domain) = &context.domain {
        let postmaster = format!("postmaster@{domain}");
        if !context
            .rcpt
            .as_deref()
            .is_some_and(|r| r.eq_ignore_ascii_case(&postmaster))
        {
            probes.push(("postmaster", postmaster));
        }
        probes.push((
            "recipient-verification",
            format!("{}@{domain}", random_local()),
        ));
    }
    probes.push(("open-relay", format!("{}@{FOREIGN_DOMAIN}", random_local())));

    let mut greylist_checked = false;
    for (check, address) in probes {
        let started = Instant::now();
        let mut reply = match client.command(format!("RCPT TO:<{address}>")).await {
            Ok(reply) => reply,
            Err(e) => {
                r.stage("rcpt", Some(started.elapsed()), e.to_string());
                stage_error(r, &e, exit::RCPT, check);
                return false;
            }
        };
        r.stage(
            "rcpt",
            Some(started.elapsed()),
            format!("<{address}>: {reply}"),
        );
        if reply.is_transient() && !greylist_checked && !context.greylist_retry.is_zero() {
            greylist_checked = true;
            match retry_rcpt(context, client, &address).await {
                Ok(again) => {
                    r.stage(
                        "rcpt",
                        None,
                        format!(
                            "<{address}> again after {:.1} s: {again}",
                            context.greylist_retry.as_secs_f64()
                        ),
                    );
                    if again.is_positive() {
                        r.verdict(
                            Level::Warn,
                            "greylisting",
                            format!("greylisting: {reply}, then accepted {:.1} s later", context.greylist_retry.as_secs_f64()),
                            "first mail from a new sender is delayed; make sure legitimate senders retry (they do) and whitelist partners if the delay hurts",
                        );
                    }
                    reply = again;
                }
                Err(e) => {
                    stage_error(r, &e, exit::RCPT, check);
                    return false;
                }
            }
        }
        rcpt_verdict(r, check, &address, &reply, authenticated);
    }
    true
}

/// RSET, wait, MAIL and RCPT again.
async fn retry_rcpt(
    context: &Context,
    client: &mut SmtpClient,
    address: &str,
) -> Result<Reply, ClientError> {
    client.command("RSET").await?;
    tokio::time::sleep(context.greylist_retry).await;
    client
        .command(format!("MAIL FROM:<{}>", context.from))
        .await?;
    client.command(format!("RCPT TO:<{address}>")).await
}

fn rcpt_verdict(
    r: &mut HostReport,
    check: &'static str,
    address: &str,
    reply: &Reply,
    authenticated: bool,
) {
    let accepted = reply.is_positive();
    match check {
        "rcpt" | "postmaster" => {
            if accepted {
                r.verdict(
                    Level::Ok,
                    check,
                    format!("<{address}> accepted: {reply}"),
                    "",
                );
            } else if reply.is_transient() {
                r.verdict(
                    Level::Warn,
                    if check == "rcpt" {
                        "greylisting"
                    } else {
                        check
                    },
                    format!("<{address}> deferred: {reply}: greylisting or a temporary problem"),
                    "retry later (--greylist-retry SECONDS retries in the same session)",
                );
            } else {
                let advice = if check == "postmaster" {
                    "RFC 5321 4.5.1 requires every domain to accept mail for postmaster: add the alias"
                } else {
                    "check the address, the server's recipient maps and aliases, and its log"
                };
                let outlook = if reply.code == 550 {
                    " (Outlook 0x800CCC69)"
                } else {
                    ""
                };
                r.fail(
                    exit::RCPT,
                    check,
                    format!("<{address}> refused: {reply}{outlook}"),
                    advice,
                );
            }
        }
        "recipient-verification" => {
            if accepted {
                r.verdict(
                    Level::Warn,
                    check,
                    format!("a random address <{address}> was accepted: a catch-all, or recipients are not verified at RCPT time"),
                    "unknown recipients should be refused with 550 5.1.1 during the SMTP dialogue, or the server sends bounces to forged senders (backscatter)",
                );
            } else {
                r.verdict(
                    Level::Ok,
                    check,
                    format!("unknown recipients are refused: {reply}"),
                    "",
                );
            }
        }
        _ => {
            if accepted && authenticated {
                r.verdict(
                    Level::Ok,
                    "open-relay",
                    format!("relaying allowed for the authenticated user (expected): <{address}>: {reply}"),
                    "",
                );
            } else if accepted {
                r.fail(
                    exit::OPEN_RELAY,
                    "open-relay",
                    format!("OPEN RELAY: <{address}>, at a domain this server does not handle, was accepted from an unauthenticated client: {reply}"),
                    "restrict relaying to authenticated users and your own networks (Postfix: smtpd_relay_restrictions); spammers find open relays within hours",
                );
            } else {
                r.verdict(
                    Level::Ok,
                    "open-relay",
                    format!("relaying refused: {reply}"),
                    "",
                );
            }
        }
    }
}

/// The AUTH test on the last EHLO's mechanisms. `Some(true)` when authenticated, `Some(false)`
/// when not (the session goes on unauthenticated), `None` when the connection is gone.
async fn auth_test(
    client: &mut SmtpClient,
    r: &mut HostReport,
    ehlo: &EhloResponse,
    auth: &AuthTest,
) -> Option<bool> {
    let offered = ehlo.auth_mechanisms();
    let clear = !client.is_tls();
    if offered.is_empty() {
        r.stage("auth", None, "not offered");
        r.fail(
            exit::AUTH,
            "auth",
            if clear {
                "AUTH not offered (on this clear-text connection; servers often offer it only after STARTTLS)".into()
            } else {
                "AUTH not offered".into()
            },
            "enable AUTH on this listener (relais: users in [auth]; Postfix: smtpd_sasl_auth_enable), or probe the submission port (587, 465)",
        );
        return Some(false);
    }
    let mech = match auth.mech {
        Some(m) if offered.iter().any(|o| o == m.name()) => m,
        Some(m) => {
            r.stage("auth", None, format!("{} not offered", m.name()));
            r.fail(
                exit::AUTH,
                "auth",
                format!(
                    "AUTH {} not offered (offers {})",
                    m.name(),
                    offered.join(" ")
                ),
                "choose one of the offered mechanisms with --auth-mech",
            );
            return Some(false);
        }
        None => match [AuthMech::Plain, AuthMech::Login]
            .into_iter()
            .find(|m| offered.iter().any(|o| o == m.name()))
        {
            Some(m) => m,
            None => {
                r.stage("auth", None, "neither PLAIN nor LOGIN offered");
                r.fail(
                    exit::AUTH,
                    "auth",
                    format!(
                        "the server offers neither PLAIN nor LOGIN (offers {})",
                        offered.join(" ")
                    ),
                    "relais probe tests PLAIN and LOGIN only",
                );
                return Some(false);
            }
        },
    };
    let started = Instant::now();
    let result = match mech {
        AuthMech::Plain => client.auth_plain(&auth.user, &auth.password).await,
        AuthMech::Login => client.auth_login(&auth.user, &auth.password).await,
    };
    let took = started.elapsed();
    let name = mech.name();
    let user = &auth.user;
    match result {
        Ok(reply) => {
            r.stage(
                "auth",
                Some(took),
                format!("AUTH {name} as {user}: {reply}"),
            );
            r.verdict(
                Level::Ok,
                "auth",
                format!(
                    "AUTH {name} as {user} accepted{}: {reply}",
                    if clear { " in clear text" } else { "" }
                ),
                "",
            );
            Some(true)
        }
        Err(ClientError::UnexpectedReply { reply, .. }) => {
            r.stage(
                "auth",
                Some(took),
                format!("AUTH {name} as {user}: {reply}"),
            );
            let (reason, advice) = if reply.code == 535 {
                (
                    format!("AUTH {name}: the credentials of {user} were refused: {reply}"),
                    "check the user name and password; the server's log says whether the user exists",
                )
            } else {
                (
                    format!("AUTH {name} as {user} refused: {reply}"),
                    "read the reply text (538: TLS needed first; 454: too many failures, or a temporary problem); `relais explain` explains the code",
                )
            };
            r.fail(exit::AUTH, "auth", reason, advice);
            Some(false)
        }
        Err(e) => {
            r.stage("auth", Some(took), e.to_string());
            stage_error(r, &e, exit::AUTH, "auth");
            None
        }
    }
}

/// A verdict for an error at a stage: closed/reset, timed out, refused by a reply.
fn stage_error(r: &mut HostReport, e: &ClientError, code: u8, check: &'static str) {
    match e {
        ClientError::Closed { stage } | ClientError::Reset { stage } => r.fail(
            exit::CLOSED,
            check,
            format!("the server dropped the connection during {stage} (Outlook 0x800CCC0F)"),
            "read the server's log at that time: a crash, a policy that disconnects, or a connection limit",
        ),
        ClientError::TimedOut { stage, after } => {
            let reason = if check == "banner" {
                format!(
                    "no greeting within {}s: the server accepts the connection but says nothing (a tarpit, a stuck server, or a middlebox) (Outlook 0x800CCC19)",
                    after.as_secs_f64()
                )
            } else {
                format!("no reply within {}s during {stage} (Outlook 0x800CCC19)", after.as_secs_f64())
            };
            r.fail(code, check, reason, "check the server's load and logs; try a longer --timeout");
        }
        ClientError::UnexpectedReply { stage, reply } => r.fail(
            code,
            check,
            format!("{stage} refused: {reply}"),
            "read the reply text; `relais explain` explains the code",
        ),
        other => r.fail(code, check, other.to_string(), "read the transcript (-v)"),
    }
}

fn reverse_verdict(r: &mut HostReport, reverse: &ReverseDns, banner_name: &str) {
    let ip = reverse.ip;
    match reverse.verdict() {
        Fcrdns::Confirmed => {
            let name = reverse.confirmed_name().unwrap_or_default();
            if name.eq_ignore_ascii_case(banner_name.trim_end_matches('.')) {
                r.verdict(
                    Level::Ok,
                    "reverse-dns",
                    format!("{ip} has PTR {name}, which resolves back to it, and the banner says {banner_name}"),
                    "",
                );
            } else {
                r.verdict(
                    Level::Warn,
                    "reverse-dns",
                    format!("the banner name {banner_name:?} differs from the PTR of {ip} ({name})"),
                    "make the server announce its PTR name (Postfix: myhostname) so receivers that compare them are satisfied",
                );
            }
        }
        Fcrdns::NotConfirmed => {
            let names: Vec<&str> = reverse.forward.iter().map(|f| f.name.as_str()).collect();
            r.verdict(
                Level::Warn,
                "reverse-dns",
                format!("the PTR of {ip} ({}) does not resolve back to {ip}", names.join(", ")),
                "make the PTR name's A/AAAA record point to this address (forward-confirmed reverse DNS)",
            );
        }
        Fcrdns::NoPtr => r.verdict(
            Level::Warn,
            "reverse-dns",
            format!("{ip} has no PTR record"),
            "ask whoever owns the address (hosting provider, ISP) for a PTR naming the mail server; many receivers refuse mail from addresses without one",
        ),
        Fcrdns::Failed => r.verdict(
            Level::Warn,
            "reverse-dns",
            format!("the reverse DNS of {ip} could not be checked: DNS failure"),
            "check the resolver, and the reverse zone's nameservers",
        ),
    }
}

fn certificate_verdicts(r: &mut HostReport, info: &relais_client::TlsInfo, name: &str) {
    let summary = info
        .peer_certificates
        .first()
        .and_then(|der| cert::summarize(der));
    let days_left = summary.as_ref().map(cert::CertSummary::days_left);
    let covers = summary.as_ref().map(|s| s.covers(name));
    let (verified, why) = match &info.verification {
        CertVerification::Verified => (true, String::new()),
        CertVerification::Failed(why) => (false, why.clone()),
    };
    let lower = why.to_ascii_lowercase();
    let expired = days_left.is_some_and(|d| d < 0) || lower.contains("expired");
    let not_yet = lower.contains("notvalidyet") || lower.contains("not valid yet");
    let wrong_name =
        covers == Some(false) || lower.contains("notvalidforname") || lower.contains("name");
    let self_signed = summary.as_ref().is_some_and(|s| s.self_signed);
    let unknown_issuer = lower.contains("unknownissuer") || lower.contains("unknown issuer");
    let described = summary.as_ref().map(|s| {
        format!(
            "subject {}, issuer {}, names [{}], valid {} to {}",
            s.subject.as_deref().unwrap_or("?"),
            s.issuer.as_deref().unwrap_or("?"),
            s.dns_names.join(", "),
            cert::date(s.not_before),
            cert::date(s.not_after)
        )
    });
    r.tls = Some(json!({
        "version": info.version,
        "cipher": info.cipher,
        "server_name": info.server_name,
        "verified": verified,
        "verification_error": (!verified).then_some(why.clone()),
        "certificate": summary,
        "days_left": days_left,
        "name_matches": covers,
    }));
    let described = described.unwrap_or_else(|| "certificate not readable".to_string());
    if expired {
        r.fail(
            exit::TLS,
            "certificate",
            format!("the certificate has EXPIRED ({described})"),
            "renew the certificate; senders that verify refuse to deliver, others warn",
        );
        return;
    }
    if not_yet {
        r.fail(
            exit::TLS,
            "certificate",
            format!("the certificate is not valid yet ({described})"),
            "check the server's clock and the certificate's dates",
        );
        return;
    }
    if self_signed {
        r.verdict(
            Level::Warn,
            "certificate",
            format!("the certificate is self-signed ({described})"),
            "use a certificate from a public CA (Let's Encrypt); senders enforcing DANE or MTA-STS refuse self-signed certificates",
        );
    } else if unknown_issuer {
        r.verdict(
            Level::Warn,
            "certificate",
            format!("the certificate's issuer is not trusted: {why} ({described})"),
            "send the whole chain (intermediate certificates) and use a public CA",
        );
    }
    if wrong_name {
        r.verdict(
            Level::Warn,
            "certificate",
            format!("the certificate does not name {name} ({described})"),
            "get a certificate whose subjectAltName lists the MX host name",
        );
    }
    if verified && !wrong_name {
        let soon = days_left.is_some_and(|d| d < 14);
        r.verdict(
            if soon { Level::Warn } else { Level::Ok },
            "certificate",
            format!(
                "the certificate verifies for {name}{} ({described})",
                days_left.map_or(String::new(), |d| format!(", {d} days left"))
            ),
            if soon {
                "renew the certificate soon"
            } else {
                ""
            },
        );
    } else if !verified && !self_signed && !unknown_issuer && !wrong_name {
        r.verdict(
            Level::Warn,
            "certificate",
            format!("the certificate does not verify: {why} ({described})"),
            "check the certificate chain",
        );
    }
}

/// The EHLO keywords with a one-line meaning; unknown ones are kept and said to be unknown.
fn capabilities(ehlo: &EhloResponse) -> Vec<Value> {
    ehlo.capabilities
        .iter()
        .map(|c| {
            json!({
                "keyword": c.keyword,
                "params": c.params,
                "meaning": keyword_meaning(&c.keyword),
            })
        })
        .collect()
}

fn keyword_meaning(keyword: &str) -> &'static str {
    match keyword.to_ascii_uppercase().as_str() {
        "PIPELINING" => "commands may be sent in groups without waiting for each reply (RFC 2920)",
        "SIZE" => "the largest message accepted, in bytes; declared in MAIL FROM (RFC 1870)",
        "8BITMIME" => "8-bit message bodies accepted (RFC 6152)",
        "BINARYMIME" => "binary bodies accepted with BDAT (RFC 3030)",
        "CHUNKING" => "BDAT: the message sent in sized chunks instead of DATA (RFC 3030)",
        "ENHANCEDSTATUSCODES" => "replies carry x.y.z status codes (RFC 2034, RFC 3463)",
        "SMTPUTF8" => "internationalized addresses and headers in UTF-8 (RFC 6531)",
        "DSN" => "delivery status notifications: NOTIFY, RET, ENVID, ORCPT (RFC 3461)",
        "STARTTLS" => "the session can switch to TLS (RFC 3207)",
        "AUTH" => "authentication with the listed SASL mechanisms (RFC 4954)",
        "REQUIRETLS" => "the sender may require TLS all the way (RFC 8689)",
        "DELIVERBY" => "delivery deadline requests (RFC 2852)",
        "MT-PRIORITY" => "message priorities (RFC 6710)",
        "FUTURERELEASE" => "delivery held until a given time (RFC 4865)",
        "ETRN" => "a client may ask the server to flush its queue for a domain (RFC 1985)",
        "ATRN" => "authenticated turn: the roles are swapped to receive queued mail (RFC 2645)",
        "VRFY" => "VRFY is announced: addresses can be verified (RFC 5321)",
        "EXPN" => "EXPN is announced: mailing lists can be expanded (RFC 5321)",
        "HELP" => "HELP answers (RFC 5321)",
        "LIMITS" => "the server announces its limits (RCPTMAX, MAILMAX) (RFC 9422)",
        "NO-SOLICITING" => "the server asks not to be solicited (RFC 3865)",
        "BURL" => "message content taken from an IMAP URL (RFC 4468)",
        "XCLIENT" => "Postfix extension: a trusted proxy passes on the real client",
        "XFORWARD" => "Postfix extension: a trusted filter passes on the original client",
        "SMTPUTF8-ALT" | "X-EXPS" | "X-LINK2STATE" | "XEXCH50" => {
            "a vendor extension (Microsoft Exchange)"
        }
        _ => "unknown extension (kept as sent)",
    }
}

/// A local part nobody has: `relais-probe-` and 12 hexadecimal digits.
fn random_local() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("relais-probe-{:012x}", hasher.finish() & 0xffff_ffff_ffff)
}

/// Now as an RFC 5322 date (UTC).
fn rfc5322_date() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let date = cert::date(now);
    let secs = now.rem_euclid(86_400);
    let (y, rest) = date.split_at(4);
    let month = match &rest[1..3] {
        "01" => "Jan",
        "02" => "Feb",
        "03" => "Mar",
        "04" => "Apr",
        "05" => "May",
        "06" => "Jun",
        "07" => "Jul",
        "08" => "Aug",
        "09" => "Sep",
        "10" => "Oct",
        "11" => "Nov",
        _ => "Dec",
    };
    format!(
        "{} {month} {y} {:02}:{:02}:{:02} +0000",
        &rest[4..6],
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

fn render(report: &ProbeReport, transcript: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "relais probe {}", report.target);
    for line in &report.route {
        let _ = writeln!(out, "{line}");
    }
    for v in &report.route_verdicts {
        render_verdict(&mut out, v);
    }
    for host in &report.hosts {
        let pref = host
            .preference
            .map(|p| format!(" (MX {p})"))
            .unwrap_or_default();
        let _ = writeln!(out, "\n== {} [{}]{pref}", host.host, host.address);
        for stage in &host.stages {
            let ms = stage
                .ms
                .map(|ms| format!("{ms:>9.1} ms"))
                .unwrap_or_else(|| " ".repeat(12));
            let _ = writeln!(out, "  {:<12}{ms}  {}", stage.stage, stage.result);
        }
        if !host.capabilities.is_empty() {
            let _ = writeln!(out, "  capabilities:");
            for c in &host.capabilities {
                let params: Vec<&str> = c["params"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let keyword = format!(
                    "{} {}",
                    c["keyword"].as_str().unwrap_or(""),
                    params.join(" ")
                );
                let _ = writeln!(
                    out,
                    "    {:<28} {}",
                    keyword.trim(),
                    c["meaning"].as_str().unwrap_or("")
                );
            }
        }
        let _ = writeln!(out, "  verdicts:");
        for v in &host.verdicts {
            render_verdict(&mut out, v);
        }
        if transcript {
            let _ = writeln!(out, "  transcript:");
            for line in &host.transcript {
                let _ = writeln!(out, "    {line}");
            }
        }
    }
    let all: Vec<&Verdict> = report
        .route_verdicts
        .iter()
        .chain(report.hosts.iter().flat_map(|h| h.verdicts.iter()))
        .collect();
    let count = |level: Level| all.iter().filter(|v| v.level == level).count();
    let worst = report
        .hosts
        .iter()
        .map(HostReport::worst)
        .chain(report.route_verdicts.iter().map(|v| v.level))
        .max()
        .unwrap_or(Level::Ok);
    let _ = writeln!(
        out,
        "\nsummary: {} address(es) probed; {} ok, {} warn, {} fail; overall {}; exit {}",
        report.hosts.len(),
        count(Level::Ok),
        count(Level::Warn),
        count(Level::Fail),
        worst.as_str().to_uppercase(),
        report.exit
    );
    out
}

fn render_verdict(out: &mut String, v: &Verdict) {
    let tag = match v.level {
        Level::Ok => "  ok ",
        Level::Warn => " WARN",
        Level::Fail => " FAIL",
    };
    let _ = writeln!(out, "  {tag}  {:<22} {}", v.check, v.reason);
    if !v.advice.is_empty() {
        let _ = writeln!(out, "  {:<5}  {:<22} -> {}", "", "", v.advice);
    }
}
