//! Argument groups several subcommands share, each defined once and flattened
//! (`#[command(flatten)]`) into the subcommands that take it, so a flag keeps one spelling, one
//! environment variable and one meaning everywhere. Also the prompt for a missing secret.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use relais_client::TlsPolicy;
use relais_dns::{Nameserver, RESOLVER_ENV, ResolverOptions};

/// `--resolver`: `send` (its MX lookup), `probe`, `dns` and `dnsbl`.
#[derive(Args, Debug, Clone)]
pub struct ResolverArgs {
    /// Nameserver to ask: IP, IP:PORT or [IPv6]:PORT ("system": /etc/resolv.conf, the default).
    #[arg(long, env = RESOLVER_ENV, value_name = "IP[:PORT]", global = true)]
    pub resolver: Option<String>,
}

impl ResolverArgs {
    /// The nameserver asked for (the system's when none or an empty one is given).
    pub fn nameserver(&self) -> Result<Nameserver, String> {
        match self.resolver.as_deref() {
            None | Some("") => Ok(Nameserver::System),
            Some(text) => text
                .parse::<Nameserver>()
                .map_err(|e| format!("--resolver: {e}")),
        }
    }
}

/// The DNS options of `dns`, `dnsbl` and `probe`: the resolver, its time-out, JSON output.
#[derive(Args, Debug, Clone)]
pub struct DnsOptions {
    #[command(flatten)]
    pub resolver: ResolverArgs,
    /// Seconds to wait for each DNS answer (two attempts are made).
    #[arg(
        long = "dns-timeout",
        value_name = "SECONDS",
        default_value_t = 5.0,
        global = true
    )]
    pub dns_timeout: f64,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

impl DnsOptions {
    /// The resolver these options describe, or why they describe none.
    pub fn resolver_options(&self) -> Result<ResolverOptions, String> {
        let nameserver = self.resolver.nameserver()?;
        if !(self.dns_timeout.is_finite() && self.dns_timeout > 0.0) {
            return Err("--dns-timeout: a positive number of seconds".to_string());
        }
        Ok(ResolverOptions {
            nameserver,
            timeout: Duration::from_secs_f64(self.dns_timeout),
            attempts: 2,
            dnssec: None,
        })
    }
}

/// `--tls-on-connect`: `send`, `shell` and `probe`.
#[derive(Args, Debug, Clone)]
pub struct TlsOnConnect {
    /// TLS from the first byte (SMTPS, port 465).
    #[arg(long)]
    pub tls_on_connect: bool,
}

/// The TLS options of `send` and `shell`.
#[derive(Args, Debug, Clone)]
pub struct TlsArgs {
    #[command(flatten)]
    pub on_connect: TlsOnConnect,
    /// Refuse a certificate that does not verify (off by default, as in swaks: the result is
    /// shown either way).
    #[arg(long)]
    pub tls_verify: bool,
    /// Also trust the CA certificates in this PEM file.
    #[arg(long, value_name = "FILE")]
    pub tls_ca_path: Option<PathBuf>,
}

impl TlsArgs {
    /// TLS from the first byte.
    pub fn on_connect(&self) -> bool {
        self.on_connect.tls_on_connect
    }

    /// The verification policy these options ask for.
    pub fn policy(&self) -> TlsPolicy {
        TlsPolicy {
            verify: self.tls_verify,
            server_name: None,
            ca_file: self.tls_ca_path.clone(),
            ca_file_only: false,
            dane: Vec::new(),
        }
    }
}

/// Asks for a value: on the terminal (without echo for a secret), or as one line of standard
/// input when that is not a terminal; nothing there is the error `missing`.
pub fn ask(prompt: &str, secret: bool, missing: &str) -> Result<String, String> {
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    if terminal {
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
    if value.is_empty() && !terminal {
        return Err(missing.to_string());
    }
    Ok(value)
}

/// Writes a command's output to standard output; a closed pipe (`| head`) is not an error
/// worth a panic, nor a message.
pub fn print_out(text: &str) {
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes());
}
