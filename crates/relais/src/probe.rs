//! `relais probe`: its arguments, the options they mean for [`relais_diag::probe`], the
//! password prompt, printing and the exit code. The stages, verdicts and rendering are the
//! library's; the exit code table is in its documentation and in `--help`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser};
use relais_diag::Mechanism;
use relais_diag::probe::{self, AuthTest, ProbeOptions, exit};
use relais_server::{ProbeRequest, Prober};
use serde_json::{Value, json};

use crate::args::{DnsOptions, TlsOnConnect};

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
  41  sender authentication: no, several or an invalid SPF or DMARC record, or a DKIM key
      (--dkim-selector) missing, revoked or unusable; only when every address passed

Verdicts: ok, warn (works, but worth fixing), fail (mail is lost or refused).

With --ports, each port of each address is checked at once (clear text first, then TLS on
connect if it stays silent; 465 the other way round) and named open, tls-only, refused,
filtered, unreachable, silent, closed, not-smtp, refusing (a greeting other than 220) or
tls-failed, with the Outlook error number a mail client shows for it. Exit 0 when every
address has a port that greets with 220; else the first failing port's code above.

For a domain the probe also checks its sender authentication records (DNS only): SPF (ok
when it ends in -all or ~all; warn for ?all, +all, no all, more than 10 DNS-querying terms;
it also says whether each MX address may send for the domain), DMARC (ok for p=reject or
p=quarantine; warn for p=none or no rua=) and, with --dkim-selector, each DKIM key (ok when
usable). A missing, duplicated or invalid record fails (exit 41; a DNS failure, exit 3).

With --auth-user the password comes from --auth-password, else the RELAIS_PROBE_PASSWORD
environment variable, else one line of standard input (asked for without echo on a terminal).
It is never printed; the transcript (-v, --json) shows the AUTH exchange in base64, as sent.";

/// The environment variable `--auth-user` takes the password from.
const PASSWORD_ENV: &str = "RELAIS_PROBE_PASSWORD";

/// `relais probe`.
#[derive(Args, Debug)]
#[command(
    after_long_help = EXIT_TABLE,
    mut_arg("tls_on_connect", |a| a.help(
        "TLS from the first byte (implicit TLS, port 465): handshake, then banner and EHLO; no \
         STARTTLS stage"
    )),
)]
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
    #[command(flatten)]
    tls: TlsOnConnect,
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
    /// Check the DKIM key of this selector (SEL._domainkey.DOMAIN); may be repeated. Domain
    /// targets only.
    #[arg(long = "dkim-selector", value_name = "SEL")]
    dkim_selectors: Vec<String>,
    /// Check these ports of each address at once (e.g. 25,26,465,587,2525; 465 with TLS on
    /// connect) and report each as open, tls-only, refused, filtered, ... instead of probing.
    #[arg(long, value_delimiter = ',', value_name = "PORT,...")]
    ports: Vec<u16>,
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

/// Runs `relais probe`.
pub fn run(args: ProbeArgs) -> ExitCode {
    let options = match options(&args) {
        Ok(options) => options,
        Err(message) => return usage(&message),
    };
    if !args.ports.is_empty() {
        return match probe::ports::run(options) {
            Ok(report) => {
                let output = if args.dns.json {
                    report.to_json()
                } else {
                    report.to_text()
                };
                crate::args::print_out(&output);
                ExitCode::from(report.exit())
            }
            Err(message) => usage(&message),
        };
    }
    let live = crate::progress::live(args.dns.json, args.transcript);
    let mut options = options;
    options.progress = live.as_ref().map(|l| l.progress.clone());
    match probe::run(options) {
        Ok(report) => {
            let output = if args.dns.json {
                report.to_json()
            } else if let Some(live) = &live {
                live.finish();
                report.to_text_after_progress()
            } else {
                report.to_text(args.transcript)
            };
            crate::args::print_out(&output);
            ExitCode::from(report.exit())
        }
        Err(message) => usage(&message),
    }
}

/// The status page's probe form, as `relais probe TARGET --port PORT [--host] --json` with a
/// 10 s wait per step: the same options, the same engine, its JSON report (or `{"error": …}`).
/// It runs on a thread of its own, as the command does on the main one.
pub fn prober() -> Prober {
    Arc::new(|request: ProbeRequest| {
        Box::pin(async move {
            tokio::task::spawn_blocking(move || probe_json(&request))
                .await
                .unwrap_or_else(|e| json!({ "error": format!("the probe failed: {e}") }))
        })
    })
}

/// `relais probe`'s arguments, parsed on their own.
#[derive(Parser)]
struct ProbeCommand {
    #[command(flatten)]
    args: ProbeArgs,
}

fn probe_json(request: &ProbeRequest) -> Value {
    let port = request.port.to_string();
    let mut argv = vec!["probe", "--port", &port, "--timeout", "10", "--json"];
    if request.host {
        argv.push("--host");
    }
    argv.extend(["--", request.target.as_str()]);
    let args = match ProbeCommand::try_parse_from(argv) {
        Ok(c) => c.args,
        Err(e) => {
            let first = e.to_string().lines().next().unwrap_or_default().to_string();
            return json!({ "error": first });
        }
    };
    match options(&args).and_then(probe::run) {
        Ok(report) => serde_json::from_str(&report.to_json())
            .unwrap_or_else(|e| json!({ "error": format!("the report: {e}") })),
        Err(e) => json!({ "error": e }),
    }
}

/// What the arguments ask of the probe (the password is asked for here).
fn options(args: &ProbeArgs) -> Result<ProbeOptions, String> {
    let seconds = |v: f64, name: &str| {
        if v.is_finite() && v >= 0.0 {
            Ok(Duration::from_secs_f64(v))
        } else {
            Err(format!("--{name}: a number of seconds"))
        }
    };
    let timeout = seconds(args.timeout, "timeout")?;
    let slow_banner = seconds(args.slow_banner, "slow-banner")?;
    let greylist_retry = seconds(args.greylist_retry, "greylist-retry")?;
    if timeout.is_zero() {
        return Err("--timeout: must be more than 0".into());
    }
    let resolver = args.dns.resolver_options()?;
    if let Some(bad) = args
        .dkim_selectors
        .iter()
        .find(|s| s.is_empty() || s.contains(|c: char| c.is_whitespace() || c == '@'))
    {
        return Err(format!(
            "--dkim-selector {bad:?}: a selector is a DNS label, e.g. s2024"
        ));
    }
    let auth = match &args.auth_user {
        Some(user) => Some(AuthTest {
            user: user.clone(),
            password: password(args.auth_password.as_deref())?,
            mechanism: args.auth_mech.map(|m| match m {
                AuthMech::Plain => Mechanism::Plain,
                AuthMech::Login => Mechanism::Login,
            }),
        }),
        None => None,
    };
    Ok(ProbeOptions {
        target: args.target.clone(),
        port: args.port,
        host: args.host,
        rcpt: args.rcpt.clone(),
        from: args.from.clone(),
        helo: args.helo.clone(),
        timeout,
        slow_banner,
        greylist_retry,
        concurrency: args.concurrency,
        ca_file: args.ca_file.clone(),
        starttls: !args.no_starttls,
        tls_on_connect: args.tls.tls_on_connect,
        auth,
        data: args.data,
        dkim_selectors: args.dkim_selectors.clone(),
        resolver,
        ports: args.ports.clone(),
        progress: None,
    })
}

/// The password for `--auth-user`: `--auth-password`, else the environment, else asked for
/// without echo on a terminal, else one line of standard input.
fn password(given: Option<&str>) -> Result<String, String> {
    if let Some(p) = given {
        return Ok(p.to_string());
    }
    if let Ok(p) = std::env::var(PASSWORD_ENV) {
        return Ok(p);
    }
    crate::args::ask(
        "Password: ",
        true,
        &format!(
            "--auth-user needs a password: --auth-password, {PASSWORD_ENV}, or a line on standard input"
        ),
    )
}

fn usage(message: &str) -> ExitCode {
    eprintln!("relais: {message}");
    ExitCode::from(exit::USAGE)
}
