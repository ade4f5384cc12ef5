//! `relais sink`: its arguments, the rules they give [`relais_diag::sink`], the lines it
//! prints (where it listens, each captured message) and its exit code. The server, the rules
//! and the store are the library's.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use relais_diag::sink::{Rule, Sink, SinkOptions, rules};

const RULES_HELP: &str = "\
Fault rules: STAGE[:PATTERN]=ACTION, the first whose stage and pattern match wins.
  STAGE    connect (PATTERN: the client's address), helo (the name), starttls, auth (the
           user), mail (the sender), rcpt (the recipient), data, content, dot (the sender
           or any recipient); PATTERN uses * and ?, case ignored; none: *.
  ACTION   CODE [X.Y.Z] TEXT   that reply (4xx or 5xx; 421 closes the connection)
           close               drop the connection without a word
           delay SECONDS       answer as usual after a while (a slow banner)
           silent              never answer
           greylist [SECONDS]  rcpt: 450 4.2.0 to a new client/sender/recipient until then
           tls-fail            starttls: 220, then no TLS
           disconnect [OCTETS] content: drop the connection in the middle of DATA
           rate COUNT/SECONDS  connect: 421 4.7.0 beyond COUNT connections per address
Examples:
  relais sink --listen 127.0.0.1:2526 --fault 'rcpt:*@full.test=452 4.2.2 Mailbox full'
  relais sink --fault 'connect=delay 15' --fault 'content=disconnect 100' --http 127.0.0.1:8025
In a --rules file: [[fault]] tables with stage, match (optional) and action.

Mail is captured, never delivered: GET /api/messages (JSON), /api/messages/ID (with raw),
/api/messages/ID/raw, DELETE /api/messages, on --http. AUTH PLAIN and LOGIN take any
credentials (an auth rule refuses them); STARTTLS is offered only with a starttls rule.
Stops on SIGTERM or SIGINT (exit 0); exit 1 when the options or the addresses are wrong.";

/// `relais sink`.
#[derive(Args, Debug)]
#[command(after_long_help = RULES_HELP)]
pub struct SinkArgs {
    /// Listen for SMTP here (repeatable; port 0: any free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:2525")]
    listen: Vec<SocketAddr>,
    /// Serve the captured messages as JSON here.
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// A fault rule, STAGE[:PATTERN]=ACTION (repeatable; see below).
    #[arg(long = "fault", value_name = "RULE")]
    faults: Vec<Rule>,
    /// A TOML file of [[fault]] rules (after those of --fault).
    #[arg(long, value_name = "FILE")]
    rules: Option<PathBuf>,
    /// The name in the greeting and the EHLO answer.
    #[arg(long, default_value = "sink.relais.test")]
    hostname: String,
    /// How many captured messages are kept (the oldest are dropped).
    #[arg(long, default_value_t = 1000)]
    keep: usize,
    /// The largest message accepted, in octets.
    #[arg(long, default_value_t = 10_240_000)]
    max_size: u64,
}

/// Runs `relais sink` until SIGTERM or SIGINT.
pub fn run(args: SinkArgs) -> ExitCode {
    let mut all = args.faults.clone();
    if let Some(file) = &args.rules {
        match std::fs::read_to_string(file)
            .map_err(|e| e.to_string())
            .and_then(|t| rules::parse_file(&t))
        {
            Ok(more) => all.extend(more),
            Err(e) => return fail(&format!("{}: {e}", file.display())),
        }
    }
    let options = SinkOptions {
        listen: args.listen.clone(),
        http: args.http,
        rules: all,
        hostname: args.hostname.clone(),
        keep: args.keep,
        max_size: args.max_size,
    };
    let sink = match Sink::bind(options, |line| eprintln!("relais sink: {line}")) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    for addr in sink.smtp_addresses() {
        eprintln!("relais sink: listening on {addr} (smtp)");
    }
    if let Some(addr) = sink.http_address() {
        eprintln!("relais sink: listening on {addr} (http)");
    }
    sink.run(crate::serve::stop_signal());
    ExitCode::SUCCESS
}

fn fail(message: &str) -> ExitCode {
    eprintln!("relais sink: {message}");
    ExitCode::from(1)
}
